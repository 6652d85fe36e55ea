/*
 * mcp.c — the JSON-RPC core of the MCP server (see mcp_core.h): the server
 * object, MCP sessions, and the methods (initialize, ping, tools/list,
 * tools/call, notifications). The transports are mcp_http.c and
 * mcp_stdio.c; the tools are mcp_tools.c.
 */
#include "pool/mcp_core.h"
#include "pool/log.h"
#include "pool/mcp_tools.h"
#include "pool/util.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifndef SESH_VERSION
#define SESH_VERSION "0"
#endif

/* A tool call running on stdio, which a notifications/cancelled can stop. */
typedef struct inflight {
    json_t *id;
    int cancelled;
    sesh_watch watch;           /* an eventfd, written when cancelled */
    struct inflight *next;
} inflight;

struct sesh_mcp_session {
    char id[33];
    uint64_t serial;            /* owner of its environments */
    const char *version;        /* negotiated; NULL before initialize */
    int stdio;
    int refs;                   /* the registry's, while live, plus one per request */
    int ended;
    uint64_t last_ms;
    inflight *calls;
    struct sesh_mcp_session *next;
};

static const char INSTRUCTIONS[] =
    "sesh-pool runs Python in sandboxed sessions. Call launchShell once for an environmentId, "
    "then runPythonCodeInRemoteEnvironment with it as often as needed: variables, imports and the "
    "files in /mnt/data (the working directory) persist between calls, and figures come back as "
    "images. runShellCommandInRemoteEnvironment runs shell commands beside it, in a bash that "
    "keeps its working directory and variables too (a Shell pool runs only those). uploadFile, "
    "downloadFile and listFiles move files in and out; closeEnvironment ends the environment "
    "when you are done.";

/* ---- the server ---- */

static char *copy_or_null(const char *s) { return s ? sesh_xstrdup(s) : NULL; }

sesh_mcp *sesh_mcp_new(const sesh_mcp_config *cfg)
{
    sesh_mcp *mcp = sesh_xcalloc(1, sizeof *mcp);
    mcp->cfg = *cfg;
    mcp->key = copy_or_null(cfg->key);
    size_t n = 0;
    while (cfg->allowed_origins && cfg->allowed_origins[n]) n++;
    mcp->origins = sesh_xcalloc(n + 1, sizeof *mcp->origins);
    for (size_t i = 0; i < n; i++) mcp->origins[i] = sesh_xstrdup(cfg->allowed_origins[i]);
    mcp->cfg.key = mcp->key;
    mcp->cfg.allowed_origins = (const char *const *)mcp->origins;
    if (mcp->cfg.cooldown <= 0) mcp->cfg.cooldown = 300;
    if (mcp->cfg.timeout <= 0) mcp->cfg.timeout = 220;
    mcp->envs = sesh_mcp_envs_new(cfg->manager, cfg->max_environments, mcp->cfg.cooldown);
    pthread_mutex_init(&mcp->mu, NULL);
    mcp->next_serial = 1;
    return mcp;
}

static void free_session(sesh_mcp_session *s)
{
    free(s);
}

void sesh_mcp_free(sesh_mcp *mcp)
{
    if (!mcp) return;
    for (;;) {
        pthread_mutex_lock(&mcp->mu);
        sesh_mcp_session *s = mcp->sessions;
        if (s) s->refs++;
        pthread_mutex_unlock(&mcp->mu);
        if (!s) break;
        sesh_mcp_session_end(mcp, s);
        sesh_mcp_session_release(mcp, s);
    }
    sesh_mcp_envs_free(mcp->envs);
    for (char **o = mcp->origins; *o; o++) free(*o);
    free(mcp->origins);
    free(mcp->key);
    pthread_mutex_destroy(&mcp->mu);
    free(mcp);
}

const char *sesh_mcp_supported_version(const char *v)
{
    if (!v) return NULL;
    if (strcmp(v, SESH_MCP_LATEST) == 0) return SESH_MCP_LATEST;
    if (strcmp(v, SESH_MCP_OLDEST) == 0) return SESH_MCP_OLDEST;
    return NULL;
}

/* ---- sessions ---- */

static int expired(const sesh_mcp *mcp, const sesh_mcp_session *s, uint64_t now)
{
    /* refs == 1: only the registry holds it, so no request runs */
    return !s->stdio && s->refs == 1 && now - s->last_ms >= (uint64_t)mcp->cfg.cooldown * 1000;
}

/* Under mcp->mu: takes s out of the registry (its reference goes to the
 * caller) and cancels its calls. */
static void unregister(sesh_mcp *mcp, sesh_mcp_session *s)
{
    for (sesh_mcp_session **p = &mcp->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            mcp->nsessions--;
            break;
        }
    s->ended = 1;
    for (inflight *c = s->calls; c; c = c->next) {
        c->cancelled = 1;
        if (c->watch.fd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(c->watch.fd, &one, sizeof one);
            (void)w;
        }
    }
}

/* What ending a session does outside the lock: its environments go. */
static void finish_end(sesh_mcp *mcp, sesh_mcp_session *s)
{
    size_t n = sesh_mcp_envs_end_owner(mcp->envs, s->serial);
    sesh_log("mcp session %.8s: ended, %zu environment%s deleted", s->id, n, n == 1 ? "" : "s");
    sesh_mcp_session_release(mcp, s);       /* the registry's reference */
}

/* Ends sessions idle past the cooldown; when still full, the oldest idle
 * one that launched nothing. */
static void make_room(sesh_mcp *mcp)
{
    uint64_t now = sesh_now_ms();
    sesh_mcp_session *gone[16];
    size_t n = 0;
    pthread_mutex_lock(&mcp->mu);
    for (sesh_mcp_session *s = mcp->sessions, *next; s && n < 16; s = next) {
        next = s->next;
        if (expired(mcp, s, now)) {
            unregister(mcp, s);
            gone[n++] = s;
        }
    }
    if (n == 0 && mcp->nsessions >= SESH_MCP_MAX_SESSIONS) {
        sesh_mcp_session *oldest = NULL;
        for (sesh_mcp_session *s = mcp->sessions; s; s = s->next)
            if (!s->stdio && s->refs == 1 && (!oldest || s->last_ms < oldest->last_ms))
                oldest = s;
        if (oldest) {
            unregister(mcp, oldest);
            gone[n++] = oldest;
        }
    }
    pthread_mutex_unlock(&mcp->mu);
    for (size_t i = 0; i < n; i++) finish_end(mcp, gone[i]);
}

sesh_mcp_session *sesh_mcp_session_new(sesh_mcp *mcp, int stdio)
{
    pthread_mutex_lock(&mcp->mu);
    int full = mcp->nsessions >= SESH_MCP_MAX_SESSIONS;
    pthread_mutex_unlock(&mcp->mu);
    if (full) make_room(mcp);
    sesh_mcp_session *s = sesh_xcalloc(1, sizeof *s);
    sesh_random_hex(s->id, 16);
    s->stdio = stdio;
    s->refs = 2;                        /* the registry's and the caller's */
    s->last_ms = sesh_now_ms();
    pthread_mutex_lock(&mcp->mu);
    if (mcp->nsessions >= SESH_MCP_MAX_SESSIONS) {
        pthread_mutex_unlock(&mcp->mu);
        free_session(s);
        return NULL;
    }
    s->serial = mcp->next_serial++;
    s->next = mcp->sessions;
    mcp->sessions = s;
    mcp->nsessions++;
    pthread_mutex_unlock(&mcp->mu);
    return s;
}

sesh_mcp_session *sesh_mcp_session_find(sesh_mcp *mcp, const char *id)
{
    sesh_mcp_session *found = NULL, *stale = NULL;
    uint64_t now = sesh_now_ms();
    size_t len = strlen(id);
    pthread_mutex_lock(&mcp->mu);
    for (sesh_mcp_session *s = mcp->sessions; s; s = s->next) {
        if (!sesh_secret_equal(id, len, s->id, strlen(s->id))) continue;
        if (expired(mcp, s, now)) {
            unregister(mcp, s);
            stale = s;
        } else {
            s->refs++;
            s->last_ms = now;
            found = s;
        }
        break;
    }
    pthread_mutex_unlock(&mcp->mu);
    if (stale) finish_end(mcp, stale);
    return found;
}

void sesh_mcp_session_release(sesh_mcp *mcp, sesh_mcp_session *s)
{
    if (!s) return;
    pthread_mutex_lock(&mcp->mu);
    s->last_ms = sesh_now_ms();
    int last = --s->refs == 0;
    pthread_mutex_unlock(&mcp->mu);
    if (last) free_session(s);
}

void sesh_mcp_session_end(sesh_mcp *mcp, sesh_mcp_session *s)
{
    pthread_mutex_lock(&mcp->mu);
    int live = !s->ended;
    if (live) unregister(mcp, s);
    pthread_mutex_unlock(&mcp->mu);
    if (live) finish_end(mcp, s);
}

const char *sesh_mcp_session_id(const sesh_mcp_session *s) { return s->id; }

const char *sesh_mcp_session_version(sesh_mcp *mcp, sesh_mcp_session *s, const char *dflt)
{
    if (!s) return dflt;
    pthread_mutex_lock(&mcp->mu);
    const char *v = s->version;
    pthread_mutex_unlock(&mcp->mu);
    return v ? v : dflt;
}

static int session_ended(sesh_mcp *mcp, sesh_mcp_session *s)
{
    pthread_mutex_lock(&mcp->mu);
    int ended = s->ended;
    pthread_mutex_unlock(&mcp->mu);
    return ended;
}

/* ---- cancellation (stdio) ---- */

static int nobody_waits(sesh_watch *w, short revents)
{
    (void)w;
    (void)revents;
    return 0;                           /* the eventfd is readable only once cancelled */
}

/* Registers a tool call of s under its request id; NULL when s is gone. */
static inflight *call_begin(sesh_mcp *mcp, sesh_mcp_session *s, json_t *id)
{
    inflight *c = sesh_xcalloc(1, sizeof *c);
    c->id = json_incref(id);
    c->watch = (sesh_watch){ .fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), .events = POLLIN,
                             .still_waiting = nobody_waits, .data = c };
    pthread_mutex_lock(&mcp->mu);
    c->cancelled = s->ended;
    c->next = s->calls;
    s->calls = c;
    pthread_mutex_unlock(&mcp->mu);
    return c;
}

/* Unregisters it; whether it was cancelled (its answer is then dropped). */
static int call_end(sesh_mcp *mcp, sesh_mcp_session *s, inflight *c)
{
    pthread_mutex_lock(&mcp->mu);
    for (inflight **p = &s->calls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    int cancelled = c->cancelled;
    pthread_mutex_unlock(&mcp->mu);
    if (c->watch.fd >= 0) close(c->watch.fd);
    json_decref(c->id);
    free(c);
    return cancelled;
}

static void cancel(sesh_mcp *mcp, sesh_mcp_session *s, json_t *params)
{
    json_t *id = json_object_get(params, "requestId");
    if (!s || !id) return;
    pthread_mutex_lock(&mcp->mu);
    for (inflight *c = s->calls; c; c = c->next)
        if (json_equal(c->id, id) && !c->cancelled) {
            c->cancelled = 1;
            uint64_t one = 1;
            if (c->watch.fd >= 0 && write(c->watch.fd, &one, sizeof one) < 0) { /* the call sees it anyway */ }
        }
    pthread_mutex_unlock(&mcp->mu);
}

/* ---- messages ---- */

json_t *sesh_mcp_error(json_t *id, int code, const char *message)
{
    json_t *m = json_string(message);
    if (!m) m = json_string("invalid request");
    return json_pack("{s:s, s:O, s:{s:i, s:o}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", m);
}

static json_t *answer(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* A client's text for the log: printable ASCII only, bounded. */
static void loggable(char *out, size_t size, const char *in)
{
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < size; i++)
        out[j++] = (in[i] >= 0x20 && in[i] < 0x7f) ? in[i] : '?';
    out[j] = '\0';
}

static json_t *initialize(sesh_mcp *mcp, sesh_mcp_session *s, json_t *id, json_t *params, int in_batch)
{
    if (in_batch)
        return sesh_mcp_error(id, SESH_MCP_INVALID_REQUEST, "initialize cannot be part of a batch");
    json_t *want = json_object_get(params, "protocolVersion");
    if (want && !json_is_string(want))
        return sesh_mcp_error(id, SESH_MCP_INVALID_PARAMS, "params.protocolVersion must be a string");
    /* Ours when we speak it, else our newest (also without params, as Azure's tutorial sends it). */
    const char *version = sesh_mcp_supported_version(json_string_value(want));
    if (!version) version = SESH_MCP_LATEST;
    char client[48], client_version[24];
    json_t *info = json_object_get(params, "clientInfo");
    loggable(client, sizeof client, json_string_value(json_object_get(info, "name")));
    loggable(client_version, sizeof client_version, json_string_value(json_object_get(info, "version")));
    if (s) {
        pthread_mutex_lock(&mcp->mu);
        s->version = version;
        pthread_mutex_unlock(&mcp->mu);
        sesh_log("mcp session %.8s: initialized, protocol %s, client %s %s", s->id, version,
                 *client ? client : "(unnamed)", client_version);
    }
    json_t *server = json_pack("{s:s, s:s}", "name", "sesh-pool", "version", SESH_VERSION);
    if (strcmp(version, SESH_MCP_LATEST) == 0)      /* `title` came with 2025-06-18 */
        json_object_set_new(server, "title", json_string("sesh-pool: sandboxed Python sessions"));
    return answer(id, json_pack("{s:s, s:{s:{s:b}}, s:o, s:s}", "protocolVersion", version,
                                "capabilities", "tools", "listChanged", 0,
                                "serverInfo", server, "instructions", INSTRUCTIONS));
}

static json_t *tools_call(sesh_mcp *mcp, sesh_mcp_session *s, json_t *id, json_t *params,
                          sesh_watch *client)
{
    json_t *name = json_object_get(params, "name");
    json_t *args = json_object_get(params, "arguments");
    if (!json_is_string(name))
        return sesh_mcp_error(id, SESH_MCP_INVALID_PARAMS, "params.name (the tool to call) must be a string");
    if (json_is_null(args)) args = NULL;
    if (args && !json_is_object(args))
        return sesh_mcp_error(id, SESH_MCP_INVALID_PARAMS, "params.arguments must be an object");
    inflight *c = !client && s ? call_begin(mcp, s, id) : NULL;
    if (c && c->cancelled) {            /* its session ended before it began */
        call_end(mcp, s, c);
        return NULL;
    }
    sesh_mcp_tool_call call = { .cfg = &mcp->cfg, .envs = mcp->envs, .owner = s ? s->serial : 0,
                                .watch = c ? (c->watch.fd >= 0 ? &c->watch : NULL) : client };
    uint64_t t0 = sesh_now_ms();
    char *rpc = NULL;
    json_t *result = sesh_mcp_tools_call(&call, json_string_value(name), args, &rpc);
    int cancelled = c ? call_end(mcp, s, c) : 0;
    if (s && session_ended(mcp, s))     /* ended meanwhile: what it launched since goes too */
        sesh_mcp_envs_end_owner(mcp->envs, s->serial);
    char tool[40];
    loggable(tool, sizeof tool, json_string_value(name));
    sesh_log("mcp tools/call %s %llums%s%s%s%s", rpc ? "(refused)" : tool,
             (unsigned long long)(sesh_now_ms() - t0),
             call.log_session[0] ? " session " : "", call.log_session,
             json_is_true(json_object_get(result, "isError")) ? " isError" : "",
             cancelled ? " (cancelled)" : "");
    if (cancelled) {                    /* the client asked us not to answer */
        json_decref(result);
        free(rpc);
        return NULL;
    }
    if (!result) {
        json_t *e = sesh_mcp_error(id, SESH_MCP_INVALID_PARAMS, rpc);
        free(rpc);
        return e;
    }
    return answer(id, result);
}

static void notification(sesh_mcp *mcp, sesh_mcp_session *s, const char *method, json_t *params)
{
    if (strcmp(method, "notifications/cancelled") == 0) cancel(mcp, s, params);
    /* notifications/initialized and any other: nothing to do */
}

static json_t *handle_one(sesh_mcp *mcp, sesh_mcp_session *s, json_t *msg, sesh_watch *client,
                          int in_batch)
{
    if (!json_is_object(msg))
        return sesh_mcp_error(NULL, SESH_MCP_INVALID_REQUEST, "a JSON-RPC message must be an object");
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    int valid_id = json_is_string(id) || json_is_integer(id);
    const char *jsonrpc = json_string_value(json_object_get(msg, "jsonrpc"));
    if (!jsonrpc || strcmp(jsonrpc, "2.0") != 0)
        return sesh_mcp_error(valid_id ? id : NULL, SESH_MCP_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
    if (!method) {
        if (json_object_get(msg, "result") || json_object_get(msg, "error"))
            return NULL;                /* an answer to a request we never send: nothing to do */
        return sesh_mcp_error(valid_id ? id : NULL, SESH_MCP_INVALID_REQUEST,
                              "a message needs a method (or a result or error)");
    }
    if (!json_is_string(method))
        return sesh_mcp_error(valid_id ? id : NULL, SESH_MCP_INVALID_REQUEST, "method must be a string");
    const char *name = json_string_value(method);
    if (!id) {
        notification(mcp, s, name, params);
        return NULL;
    }
    if (!valid_id)
        return sesh_mcp_error(NULL, SESH_MCP_INVALID_REQUEST, "id must be a string or an integer");
    if (params && !json_is_object(params))
        return sesh_mcp_error(id, SESH_MCP_INVALID_PARAMS, "params must be an object");
    if (strcmp(name, "initialize") == 0) return initialize(mcp, s, id, params, in_batch);
    if (strcmp(name, "ping") == 0) return answer(id, json_object());
    if (strcmp(name, "tools/list") == 0) return answer(id, json_pack("{s:o}", "tools", sesh_mcp_tools_list()));
    if (strcmp(name, "tools/call") == 0) return tools_call(mcp, s, id, params, client);
    char text[160];
    char shown[64];
    loggable(shown, sizeof shown, name);
    snprintf(text, sizeof text, "Method not found: %s", shown);
    return sesh_mcp_error(id, SESH_MCP_METHOD_NOT_FOUND, text);
}

json_t *sesh_mcp_handle(sesh_mcp *mcp, sesh_mcp_session *s, json_t *msg, const char *version,
                        sesh_watch *client)
{
    if (!json_is_array(msg)) return handle_one(mcp, s, msg, client, 0);
    if (strcmp(version, SESH_MCP_OLDEST) != 0)
        return sesh_mcp_error(NULL, SESH_MCP_INVALID_REQUEST,
                              "batches are not part of protocol version " SESH_MCP_LATEST);
    size_t n = json_array_size(msg);
    if (n == 0 || n > SESH_MCP_MAX_BATCH)
        return sesh_mcp_error(NULL, SESH_MCP_INVALID_REQUEST,
                              n ? "a batch holds at most 256 messages" : "an empty batch");
    json_t *answers = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *a = handle_one(mcp, s, json_array_get(msg, i), client, 1);
        if (a) json_array_append_new(answers, a);
    }
    if (json_array_size(answers) == 0) {
        json_decref(answers);
        return NULL;
    }
    return answers;
}

int sesh_mcp_is_slow(json_t *msg)
{
    if (json_is_array(msg)) return 1;
    const char *m = json_string_value(json_object_get(msg, "method"));
    return m && strcmp(m, "tools/call") == 0 && json_object_get(msg, "id");
}
