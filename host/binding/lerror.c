/*
 * lerror.c — the one error value of sesh's Lua side.
 *
 * Whatever fails in sessions.http, sessions.core, the sessions module or the
 * llm library is raised as a table of fields with one metatable (registry
 * key "sessions.error"), built by sesh_error_new here or by core.error(fields)
 * from Lua (sessions/errors.lua adds the redaction of secrets). The fields:
 *
 *   kind        "transport", "interrupted", "too_large", "file", "usage" (the
 *               transport's), "http", "protocol", "auth", "python", "pool",
 *               "timeout" (the module's), "api", "config" (llm's)
 *   module      who raised it: "sessions", "llm"; none for sessions.http's own
 *   op          the operation: "execute", "upload", "chat", ...
 *   status      the HTTP status, when an answer came
 *   code        service error code, Python exception name, CURLcode or errno
 *   message     what the server, libcurl, the system or the library said
 *   request_id, retries, attempts, url, hint, type, param, ...   when known
 *
 * __tostring says it all in one sentence,
 *
 *   <module>: <op> failed (HTTP <status> <code>) from <url>: <message>
 *   [request id <id>] after <n> retries (<hint>)
 *
 * leaving out what is not there; an error of the transport alone (no module,
 * no op) prints as its message, which already names the request.
 */
#include "binding/binding.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define ERROR_MT "sessions.error"
#define MAX_MESSAGE 600                 /* longer messages are cut, with an ellipsis */

/* Kinds whose code means something to a reader (a service code, a Python
 * exception); a CURLcode or errno number stays in the field only. */
static int shows_code(const char *kind)
{
    static const char *const kinds[] = {"http", "python", "protocol", "auth", "api", NULL};
    for (int i = 0; kind && kinds[i]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return 1;
    return 0;
}

/* Pushes s on one line: runs of white space become one space, the ends trimmed,
 * at most MAX_MESSAGE bytes. */
static void push_one_line(lua_State *L, const char *s, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t i = 0, kept = 0;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    while (i < len) {
        if (isspace((unsigned char)s[i])) {
            while (i < len && isspace((unsigned char)s[i]))
                i++;
            if (i == len)
                break;
            luaL_addchar(&b, ' ');
        } else {
            luaL_addchar(&b, s[i++]);
        }
        if (++kept == MAX_MESSAGE && i < len) {
            luaL_addstring(&b, "\xE2\x80\xA6");      /* … */
            break;
        }
    }
    luaL_pushresult(&b);
}

/* Pushes tostring(e[key]) and returns it, or pushes nothing and returns NULL
 * when the field is nil (or false). */
static const char *field(lua_State *L, int e, const char *key, size_t *len)
{
    if (lua_getfield(L, e, key) == LUA_TNIL || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
        lua_pop(L, 1);
        return NULL;
    }
    const char *s = luaL_tolstring(L, -1, len);
    lua_remove(L, -2);
    return s;
}

static int error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t len;
    const char *message = field(L, 1, "message", &len);
    int has_module = lua_getfield(L, 1, "module") != LUA_TNIL;
    int has_op = lua_getfield(L, 1, "op") != LUA_TNIL;
    lua_pop(L, 2);
    if (!has_module && !has_op) {           /* the transport's own: its message */
        if (!message)
            lua_pushliteral(L, "sessions.http error");
        return 1;
    }
    int top = lua_gettop(L);                /* message (or nothing) below; pieces above */
    if (!field(L, 1, "module", NULL))
        lua_pushliteral(L, "sessions");
    lua_pushliteral(L, ": ");
    if (!field(L, 1, "op", NULL))
        lua_pushliteral(L, "request");
    lua_pushliteral(L, " failed");

    lua_getfield(L, 1, "kind");
    int code_shown = shows_code(lua_tostring(L, -1));
    lua_pop(L, 1);
    int what = 0;
    lua_pushliteral(L, " (");
    if (field(L, 1, "status", NULL)) {
        lua_pushliteral(L, "HTTP ");
        lua_insert(L, -2);
        what += 2;
    }
    if (code_shown && field(L, 1, "code", NULL)) {
        if (what) {
            lua_pushliteral(L, " ");
            lua_insert(L, -2);
            what++;
        }
        what++;
    }
    if (what)
        lua_pushliteral(L, ")");
    else
        lua_pop(L, 1);                      /* the " (" */
    if (field(L, 1, "url", NULL)) {
        lua_pushliteral(L, " from ");
        lua_insert(L, -2);
    }
    if (message && len > 0) {
        lua_pushliteral(L, ": ");
        push_one_line(L, message, len);
    }
    if (field(L, 1, "request_id", NULL)) {
        lua_pushliteral(L, " [request id ");
        lua_insert(L, -2);
        lua_pushliteral(L, "]");
    }
    lua_getfield(L, 1, "retries");
    lua_Integer retries = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (retries > 0)
        lua_pushfstring(L, " after %I retr%s", (LUAI_UACINT)retries, retries == 1 ? "y" : "ies");
    if (field(L, 1, "hint", NULL)) {
        lua_pushliteral(L, " (");
        lua_insert(L, -2);
        lua_pushliteral(L, ")");
    }
    lua_concat(L, lua_gettop(L) - top);
    return 1;
}

void sesh_error_metatable(lua_State *L)
{
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
}

void sesh_error_new(lua_State *L, const char *kind, long long code, const char *message)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    sesh_error_metatable(L);
    lua_setmetatable(L, -2);
}

/* core.error(fields) -> fields, now an error value (not raised). */
int sesh_core_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sesh_error_metatable(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* core.is_error(v) -> whether v is an error value. */
int sesh_core_is_error(lua_State *L)
{
    int yes = 0;
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, ERROR_MT);
        yes = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    lua_pushboolean(L, yes);
    return 1;
}
