/*
 * lhttp.c — sessions.http: the transport as Lua sees it (see DESIGN.md).
 *
 *   local c = http.client{ timeout = 30, unix_socket = "/run/pool.sock" }
 *   local res = c:request{ method = "POST", url = ..., body = "..." }
 *   local results, errors = http.run{ function() return c:request(a) end, ... }
 *
 * Inside a function run by http.run, client:request (and core.sleep, below)
 * yields to the scheduler instead of blocking, so the same code runs one
 * request or many at once. Failures are raised as the error value of
 * lerror.c: { kind =, code =, message =, attempts = }.
 */
#include "binding/binding.h"
#include "transport/http.h"

#include "common/common.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <string.h>

#define CLIENT_MT   "sessions.http.client"
#define TRANSFER_MT "sessions.http.transfer"
#define SCHEDULED   "sessions.http.scheduled"     /* registry: the coroutines of http.run */
#define MAX_HEADERS 256
#define MAX_PARTS   256
#define MAX_STATUSES 64

typedef struct {
    sesh_http_client *c;
} client_ud;

typedef struct {
    sesh_http_transfer *t;
} transfer_ud;

/* What a coroutine run by http.run yields: a request in flight (and the
 * transfer), or a sleep (and when it ends, in sesh_monotonic time). */
static const char waiting_marker = 'w';
static const char sleeping_marker = 's';

/* ---- errors ---- */

static const char *kind_name(sesh_http_kind k) {
    switch (k) {
    case SESH_HTTP_ETRANSPORT:   return "transport";
    case SESH_HTTP_EINTERRUPTED: return "interrupted";
    case SESH_HTTP_ETOO_LARGE:   return "too_large";
    case SESH_HTTP_EFILE:        return "file";
    case SESH_HTTP_EUSAGE:       return "usage";
    default:                     return "ok";
    }
}

static void push_error(lua_State *L, const sesh_http_error *e, int attempts) {
    sesh_error_new(L, kind_name(e->kind), e->code, e->message);
    if (attempts > 0) {
        lua_pushinteger(L, attempts);
        lua_setfield(L, -2, "attempts");
    }
}

static int raise_interrupted(lua_State *L) {
    sesh_http_error e = {SESH_HTTP_EINTERRUPTED, 0, "interrupted by Ctrl-C"};
    push_error(L, &e, 0);
    return lua_error(L);
}

static int raise_error(lua_State *L, const sesh_http_error *e, int attempts) {
    push_error(L, e, attempts);
    return lua_error(L);
}

/* ---- reading option tables ---- */

static double opt_number(lua_State *L, int t, const char *key, double def) {
    double v = def;
    int type = lua_getfield(L, t, key);
    if (type == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (type != LUA_TNIL)
        luaL_error(L, "option '%s': number expected, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* A string option; the value stays anchored in the table at t. */
static const char *opt_string(lua_State *L, int t, const char *key, size_t *len) {
    const char *s = NULL;
    int type = lua_getfield(L, t, key);
    if (type == LUA_TSTRING)
        s = lua_tolstring(L, -1, len);
    else if (type != LUA_TNIL)
        luaL_error(L, "option '%s': string expected, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return s;
}

/* -1 when absent, else the value's truth: "not said" differs from false. */
static int opt_flag(lua_State *L, int t, const char *key) {
    int v = lua_getfield(L, t, key) == LUA_TNIL ? -1 : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---- client ---- */

static client_ud *check_client(lua_State *L, int i) {
    client_ud *u = luaL_checkudata(L, i, CLIENT_MT);
    if (!u->c)
        luaL_error(L, "http client is closed");
    return u;
}

static int l_client(lua_State *L) {
    sesh_http_client_options o = {0};
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        o.connect_timeout = opt_number(L, 1, "connect_timeout", 0);
        o.timeout = opt_number(L, 1, "timeout", 240);
        o.unix_socket = opt_string(L, 1, "unix_socket", NULL);
        o.user_agent = opt_string(L, 1, "user_agent", NULL);
        o.ca_file = opt_string(L, 1, "ca_file", NULL);
    } else {
        o.timeout = 240;
    }
    if (o.connect_timeout < 0 || o.timeout < 0)
        luaL_error(L, "http.client: timeouts must not be negative");
    client_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->c = NULL;
    luaL_setmetatable(L, CLIENT_MT);
    sesh_http_error err;
    if (!(u->c = sesh_http_client_new(&o, &err)))
        return raise_error(L, &err, 0);
    return 1;
}

static int l_client_close(lua_State *L) {
    client_ud *u = luaL_checkudata(L, 1, CLIENT_MT);
    sesh_http_client_free(u->c);
    u->c = NULL;
    return 0;
}

static int l_client_tostring(lua_State *L) {
    client_ud *u = luaL_checkudata(L, 1, CLIENT_MT);
    lua_pushfstring(L, "http.client (%s)", u->c ? "open" : "closed");
    return 1;
}

/* ---- building a request from its table ---- */

/* Scratch arrays live in userdata on the stack, so a Lua error cannot leak them. */
static void *scratch(lua_State *L, size_t size) {
    void *p = lua_newuserdatauv(L, size ? size : 1, 0);
    memset(p, 0, size ? size : 1);
    return p;
}

static int valid_header_name(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s == ':' || *s >= 127)
            return 0;
    return 1;
}

static void read_headers(lua_State *L, int req, sesh_http_request *r) {
    if (lua_getfield(L, req, "headers") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    int h = lua_gettop(L);
    luaL_argexpected(L, lua_istable(L, h), 1, "table for 'headers'");
    const char **lines = scratch(L, MAX_HEADERS * sizeof *lines);
    lua_pushnil(L);
    while (lua_next(L, h)) {
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!name || !valid_header_name(name))
            luaL_error(L, "headers: bad header name");
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "headers: value of '%s' must be a string", name);
        const char *value = lua_tostring(L, -1);
        if (strpbrk(value, "\r\n") || strlen(value) != lua_rawlen(L, -1))
            luaL_error(L, "headers: value of '%s' holds a line break or NUL", name);
        if (r->nheaders == MAX_HEADERS)
            luaL_error(L, "headers: more than %d", MAX_HEADERS);
        /* "Name;" is curl's way to send a header with an empty value */
        lines[r->nheaders++] = *value ? lua_pushfstring(L, "%s: %s", name, value)
                                      : lua_pushfstring(L, "%s;", name);
        lua_insert(L, h + 1);       /* anchor the line below the iteration */
        lua_pop(L, 1);
    }
    r->headers = lines;
}

static void read_parts(lua_State *L, int req, sesh_http_request *r) {
    if (lua_getfield(L, req, "multipart") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    int m = lua_gettop(L);
    luaL_argexpected(L, lua_istable(L, m), 1, "table for 'multipart'");
    size_t n = lua_rawlen(L, m);
    if (n == 0 || n > MAX_PARTS)
        luaL_error(L, "multipart: between 1 and %d parts expected", MAX_PARTS);
    sesh_http_part *parts = scratch(L, n * sizeof *parts);
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, m, (lua_Integer)i + 1) != LUA_TTABLE)
            luaL_error(L, "multipart[%d]: table expected", (int)i + 1);
        int p = lua_gettop(L);
        sesh_http_part *part = &parts[i];
        part->name = opt_string(L, p, "name", NULL);
        part->filename = opt_string(L, p, "filename", NULL);
        part->content_type = opt_string(L, p, "content_type", NULL);
        part->data = opt_string(L, p, "data", &part->data_len);
        part->file = opt_string(L, p, "file", NULL);
        if (!part->name)
            luaL_error(L, "multipart[%d]: 'name' missing", (int)i + 1);
        if (!part->data == !part->file)
            luaL_error(L, "multipart[%d]: give one of 'data' or 'file'", (int)i + 1);
        lua_pop(L, 1);              /* the strings stay anchored by the part table in m */
    }
    r->parts = parts;
    r->nparts = n;
}

static void read_retry(lua_State *L, int req, sesh_http_request *r) {
    r->retry.max = 1;
    if (lua_getfield(L, req, "retry") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    int t = lua_gettop(L);
    luaL_argexpected(L, lua_istable(L, t), 1, "table for 'retry'");
    r->retry.max = (int)opt_number(L, t, "max", 3);
    r->retry.total = opt_number(L, t, "total", 60);
    r->retry.base = opt_number(L, t, "base", 0.25);
    r->retry.cap = opt_number(L, t, "cap", 30);
    if (r->idempotent < 0)          /* the first contract had it here */
        r->idempotent = opt_flag(L, t, "idempotent");
    if (r->retry.max < 1 || r->retry.total < 0 || r->retry.base < 0 || r->retry.cap < 0)
        luaL_error(L, "retry: max must be >= 1, total, base and cap >= 0");
    int *statuses = scratch(L, MAX_STATUSES * sizeof *statuses);
    if (lua_getfield(L, t, "statuses") != LUA_TNIL) {
        int s = lua_gettop(L);
        luaL_argexpected(L, lua_istable(L, s), 1, "table for 'retry.statuses'");
        lua_pushnil(L);
        while (lua_next(L, s)) {    /* { 429, 503 } or { [429] = true, [503] = true } */
            lua_Integer code = 0;
            if (lua_isinteger(L, -2) && lua_toboolean(L, -1) && !lua_isinteger(L, -1))
                code = lua_tointeger(L, -2);
            else if (lua_isinteger(L, -1))
                code = lua_tointeger(L, -1);
            if (code < 100 || code > 599)
                luaL_error(L, "retry.statuses: HTTP statuses (100-599) expected");
            if (r->retry.nstatuses == MAX_STATUSES)
                luaL_error(L, "retry.statuses: more than %d", MAX_STATUSES);
            statuses[r->retry.nstatuses++] = (int)code;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    r->retry.statuses = statuses;   /* the scratch stays on the stack above t */
}

/* Fills r from the table at req; every string stays anchored on the stack. */
static void read_request(lua_State *L, int req, sesh_http_request *r) {
    luaL_checktype(L, req, LUA_TTABLE);
    memset(r, 0, sizeof *r);
    r->method = opt_string(L, req, "method", NULL);
    r->url = opt_string(L, req, "url", NULL);
    if (!r->url)
        luaL_error(L, "request: 'url' missing");
    r->body = opt_string(L, req, "body", &r->body_len);
    r->has_body = r->body != NULL;
    r->body_file = opt_string(L, req, "body_file", NULL);
    r->output_file = opt_string(L, req, "output_file", NULL);
    r->timeout = opt_number(L, req, "timeout", -1);
    r->connect_timeout = opt_number(L, req, "connect_timeout", -1);
    r->low_speed_limit = (long)opt_number(L, req, "low_speed_limit", 0);
    r->low_speed_time = (long)opt_number(L, req, "low_speed_time", 0);
    double max_body = opt_number(L, req, "max_body", 0);
    if (max_body < 0)
        luaL_error(L, "request: 'max_body' must not be negative");
    r->max_body = (size_t)max_body;
    r->progress = sesh_progress_wanted(opt_flag(L, req, "progress"));
    r->idempotent = opt_flag(L, req, "idempotent");
    read_headers(L, req, r);
    read_parts(L, req, r);
    read_retry(L, req, r);
}

/* ---- results ---- */

static void push_result(lua_State *L, sesh_http_transfer *t) {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, sesh_http_result_status(t));
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, sesh_http_result_attempts(t));
    lua_setfield(L, -2, "attempts");
    lua_pushinteger(L, sesh_http_result_connects(t));
    lua_setfield(L, -2, "connects");
    double retry_after = sesh_http_result_retry_after(t);
    if (retry_after >= 0) {
        lua_pushnumber(L, retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    lua_newtable(L);
    for (size_t i = 0, n = sesh_http_result_nheaders(t); i < n; i++) {
        const sesh_http_header *h = sesh_http_result_header(t, i);
        if (lua_getfield(L, -1, h->name) == LUA_TSTRING) {   /* repeated: join them */
            lua_pushliteral(L, ", ");
            lua_pushstring(L, h->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, h->value);
        }
        lua_setfield(L, -2, h->name);
    }
    lua_setfield(L, -2, "headers");
    size_t len;
    const char *body = sesh_http_result_body(t, &len);
    if (body) {
        lua_pushlstring(L, body, len);
        lua_setfield(L, -2, "body");
    }
}

static int transfer_gc(lua_State *L) {
    transfer_ud *u = luaL_checkudata(L, 1, TRANSFER_MT);
    sesh_http_transfer_free(u->t);
    u->t = NULL;
    return 0;
}

/* The result of the finished transfer at index i, or its error raised. */
static int finish_request(lua_State *L, int i) {
    transfer_ud *u = luaL_checkudata(L, i, TRANSFER_MT);
    const sesh_http_error *e = sesh_http_result_error(u->t);
    if (e->kind != SESH_HTTP_OK) {
        push_error(L, e, sesh_http_result_attempts(u->t));
        sesh_http_transfer_free(u->t);
        u->t = NULL;
        return lua_error(L);
    }
    push_result(L, u->t);
    sesh_http_transfer_free(u->t);   /* the client's handle is free again at once */
    u->t = NULL;
    return 1;
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    return finish_request(L, (int)ctx);
}

/* Is L a coroutine started by http.run? */
static int scheduled(lua_State *L) {
    if (!lua_isyieldable(L))
        return 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, SCHEDULED) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushthread(L);
    int yes = lua_rawget(L, -2) == LUA_TBOOLEAN;
    lua_pop(L, 2);
    return yes;
}

/* Bodies are sent from the Lua strings themselves: the transfer keeps them alive,
 * even if the request table changes while a coroutine waits. */
static void anchor_bodies(lua_State *L, int req, int transfer) {
    lua_newtable(L);
    lua_getfield(L, req, "body");
    lua_rawseti(L, -2, 1);
    if (lua_getfield(L, req, "multipart") == LUA_TTABLE) {
        int parts = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, parts, i) == LUA_TTABLE; i++) {
            lua_getfield(L, -1, "data");
            lua_rawseti(L, parts - 1, i + 1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_setiuservalue(L, transfer, 2);
}

static int l_client_request(lua_State *L) {
    client_ud *c = check_client(L, 1);
    sesh_http_request r;
    read_request(L, 2, &r);
    transfer_ud *u = lua_newuserdatauv(L, sizeof *u, 2);
    u->t = NULL;
    luaL_setmetatable(L, TRANSFER_MT);
    int ti = lua_gettop(L);
    lua_pushvalue(L, 1);            /* the client outlives its transfer */
    lua_setiuservalue(L, ti, 1);
    anchor_bodies(L, 2, ti);
    sesh_http_error err;
    if (!(u->t = sesh_http_start(c->c, &r, &err)))
        return raise_error(L, &err, 0);
    if (scheduled(L)) {
        lua_pushlightuserdata(L, (void *)&waiting_marker);
        lua_pushlightuserdata(L, u->t);
        return lua_yieldk(L, 2, (lua_KContext)ti, request_k);
    }
    sesh_http_wait(u->t);
    return finish_request(L, ti);
}

/* ---- core.sleep: waiting for time, as a request waits for bytes ---- */

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    (void)ctx;
    if (sesh_http_interrupted())
        return raise_interrupted(L);
    return 0;
}

int sesh_core_sleep(lua_State *L) {
    double seconds = luaL_checknumber(L, 1);
    luaL_argcheck(L, seconds >= 0 && seconds < 1e9, 1, "seconds from 0 to 1e9");
    double until = sesh_monotonic() + seconds;
    if (scheduled(L)) {             /* the scheduler wakes us; other transfers go on */
        lua_pushlightuserdata(L, (void *)&sleeping_marker);
        lua_pushnumber(L, until);
        return lua_yieldk(L, 2, 0, sleep_k);
    }
    sesh_http_guard_begin();        /* Ctrl-C ends the sleep as it ends a request */
    double left;
    while (!sesh_http_interrupted() && (left = until - sesh_monotonic()) > 0)
        sesh_http_step((int)ceil(left * 1000));
    int interrupted = sesh_http_interrupted();
    sesh_http_guard_end();
    if (interrupted)
        return raise_interrupted(L);
    return 0;
}

/* ---- http.run: many requests at once from coroutines ---- */

typedef struct {
    sesh_http_transfer *waiting;   /* NULL: not waiting on a transfer */
    double wake;                   /* > 0: sleeping until then (sesh_monotonic) */
    int live;
} slot;

/* Resumes coroutine i (at index threads[i]); stores its result or error when it ends. */
static void resume_slot(lua_State *L, int set, int threads, int results, int errors,
                        slot *s, int i) {
    lua_rawgeti(L, threads, i);
    lua_State *co = lua_tothread(L, -1);
    lua_pop(L, 1);
    int nres = 0;
    int status = lua_resume(co, L, 0, &nres);
    s->waiting = NULL;
    s->wake = 0;
    if (status == LUA_YIELD && nres == 2 && lua_touserdata(co, -2) == &waiting_marker) {
        s->waiting = lua_touserdata(co, -1);
        lua_pop(co, 2);
        return;
    }
    if (status == LUA_YIELD && nres == 2 && lua_touserdata(co, -2) == &sleeping_marker) {
        s->wake = lua_tonumber(co, -1);
        lua_pop(co, 2);
        return;
    }
    s->live = 0;
    if (status == LUA_OK) {
        if (nres > 0) {
            lua_pushvalue(co, -nres);
            lua_xmove(co, L, 1);
            lua_rawseti(L, results, i);
        }
        lua_pop(co, nres);
    } else if (status == LUA_YIELD) {
        lua_pop(co, nres);
        lua_pushfstring(L, "http.run: function %d yielded outside a request", i);
        lua_rawseti(L, errors, i);
    } else {
        lua_xmove(co, L, 1);
        if (lua_isnil(L, -1)) {     /* error(nil) must still count as a failure */
            lua_pop(L, 1);
            lua_pushliteral(L, "(error object is a nil value)");
        }
        lua_rawseti(L, errors, i);
    }
    lua_pushthread(co);             /* no longer one of ours */
    lua_xmove(co, L, 1);
    lua_pushnil(L);
    lua_rawset(L, set);
}

static int l_run(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    int set = lua_upvalueindex(1);
    lua_settop(L, 1);
    lua_createtable(L, n, 0);       /* 2: results */
    lua_newtable(L);                /* 3: errors */
    lua_createtable(L, n, 0);       /* 4: threads */
    slot *slots = scratch(L, (size_t)n * sizeof *slots);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        luaL_argexpected(L, lua_isfunction(L, -1), 1, "list of functions");
        lua_State *co = lua_newthread(L);
        lua_insert(L, -2);
        lua_xmove(L, co, 1);        /* the function onto the coroutine */
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
        lua_rawseti(L, 4, i);
        slots[i - 1].live = 1;
    }
    sesh_http_guard_begin();
    for (int i = 1; i <= n; i++)
        resume_slot(L, set, 4, 2, 3, &slots[i - 1], i);
    for (;;) {
        int live = 0;
        double at = sesh_monotonic(), first_wake = at + 0.1;
        for (int i = 1; i <= n; i++) {
            slot *s = &slots[i - 1];
            if (s->live && s->waiting && sesh_http_done(s->waiting))
                resume_slot(L, set, 4, 2, 3, s, i);
            else if (s->live && s->wake > 0 && (s->wake <= at || sesh_http_interrupted()))
                resume_slot(L, set, 4, 2, 3, s, i);     /* a Ctrl-C wakes sleepers to end */
            if (s->live && s->wake > 0 && s->wake < first_wake)
                first_wake = s->wake;
            live += s->live;
        }
        if (live == 0)
            break;
        sesh_http_step((int)ceil((first_wake - sesh_monotonic()) * 1000));
    }
    int interrupted = sesh_http_interrupted();
    sesh_http_guard_end();
    if (interrupted)
        return raise_interrupted(L);
    lua_settop(L, 3);
    lua_pushnil(L);
    if (lua_next(L, 3) == 0) {      /* no error at all: errors is nil */
        lua_pushnil(L);
        lua_replace(L, 3);
    }
    lua_settop(L, 3);
    lua_remove(L, 1);
    return 2;
}

/* ---- module ---- */

static const luaL_Reg client_methods[] = {
    {"request", l_client_request},
    {"close", l_client_close},
    {NULL, NULL}
};

int luaopen_sessions_http(lua_State *L) {
    sesh_http_error err;
    if (sesh_http_init(&err) < 0)
        return luaL_error(L, "sessions.http: %s", err.message);
    sesh_http_set_progress_hook(sesh_progress_draw);

    /* The coroutines run by http.run, weak keys: one set per Lua state, kept in the
     * registry, so a second luaopen (busted reloads modules) shares it with the
     * methods already in CLIENT_MT. */
    if (luaL_getsubtable(L, LUA_REGISTRYINDEX, SCHEDULED) == 0) {
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
    }
    int set = lua_gettop(L);

    if (luaL_newmetatable(L, CLIENT_MT)) {
        lua_newtable(L);
        for (const luaL_Reg *f = client_methods; f->name; f++) {
            lua_pushvalue(L, set);
            lua_pushcclosure(L, f->func, 1);
            lua_setfield(L, -2, f->name);
        }
        lua_setfield(L, -2, "__index");
        sesh_handle_methods(L, l_client_close, l_client_tostring);
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TRANSFER_MT)) {
        sesh_handle_methods(L, transfer_gc, NULL);
    }
    lua_pop(L, 1);
    sesh_error_metatable(L);
    lua_pop(L, 1);

    lua_newtable(L);
    lua_pushcfunction(L, l_client);
    lua_setfield(L, -2, "client");
    lua_pushvalue(L, set);
    lua_pushcclosure(L, l_run, 1);
    lua_setfield(L, -2, "run");
    lua_pushliteral(L, SESH_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, SESH_HTTP_USER_AGENT);
    lua_setfield(L, -2, "user_agent");
    return 1;
}
