/*
 * route.c — from a request line to a sesh_call: the prefix, the operation
 * of the requested API generation, the query. Clients differ in query
 * order, in encoding the identifier or not, and in a trailing slash: all
 * are accepted (pool-api.md section 1).
 */
#include "pool/api_ops.h"
#include "pool/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Oldest first; SESH_RANK_* (api.h) name positions in it. */
static const struct { const char *name; int gen; } versions[] = {
    { "2024-02-02-preview", 1 },
    { "2024-08-02-preview", 1 },
    { "2024-10-02-preview", 2 },
    { "2025-02-02-preview", 2 },
    { "2025-10-02-preview", 2 },
};
#define SUPPORTED "2024-02-02-preview, 2024-08-02-preview, 2024-10-02-preview, " \
                  "2025-02-02-preview, 2025-10-02-preview"

const char *sesh_api_version_name(int rank)
{
    if (rank < 0 || rank >= (int)(sizeof versions / sizeof versions[0])) return "?";
    return versions[rank].name;
}

typedef struct segs {
    char **v;
    int n;
    int nul;                    /* a part decoded to a NUL (%00) */
} segs;

static void segs_free(segs *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

/* Splits the raw path on '/', dropping empty parts, decoding each one. */
static segs split(const char *raw, size_t len)
{
    segs s = { sesh_xcalloc(len / 2 + 2, sizeof(char *)), 0, 0 };
    size_t i = 0;
    while (i < len) {
        while (i < len && raw[i] == '/') i++;
        size_t j = i;
        while (j < len && raw[j] != '/') j++;
        if (j > i) {
            char *part = strndup(raw + i, j - i);
            if (!part) abort();
            if (sesh_percent_decode_text(part, 0) != 0) s.nul = 1;
            s.v[s.n++] = part;
        }
        i = j;
    }
    return s;
}

static char *join(const segs *s, int from, int to)
{
    size_t len = 1;
    for (int i = from; i < to; i++) len += strlen(s->v[i]) + 1;
    char *out = sesh_xmalloc(len);
    out[0] = '\0';
    for (int i = from; i < to; i++) {
        if (i > from) strcat(out, "/");
        strcat(out, s->v[i]);
    }
    return out;
}

static int is(const segs *s, int i, const char *word)
{
    return i < s->n && strcmp(s->v[i], word) == 0;
}

/* The operation a path names in one generation; allow gets the methods
 * the path accepts when it names an operation at all. */
static sesh_op match(const segs *s, int at, int gen, const char *method, sesh_body_kind *body,
                     char **name, const char **allow)
{
    int n = s->n - at;
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    int del = strcmp(method, "DELETE") == 0;
    *allow = NULL;
    *body = SESH_BODY_NONE;
    if (gen == 1) {
        if (n == 2 && is(s, at, "code") && is(s, at + 1, "execute")) {
            *allow = "POST";
            if (post) { *body = SESH_BODY_JSON; return SESH_OP_EXECUTE; }
        } else if (n == 2 && is(s, at, "files") && is(s, at + 1, "upload")) {
            *allow = "POST";
            if (post) { *body = SESH_BODY_MULTIPART; return SESH_OP_UPLOAD; }
        } else if (n == 1 && is(s, at, "files")) {
            *allow = "GET";
            if (get) return SESH_OP_LIST;
        } else if (n >= 3 && is(s, at, "files") && is(s, at + 1, "content")) {
            *allow = "GET";
            if (get) { *name = join(s, at + 2, s->n); return SESH_OP_DOWNLOAD; }
        }
        return SESH_OP_NONE;
    }
    if (n == 1 && is(s, at, "executions")) {
        *allow = "POST";
        if (post) { *body = SESH_BODY_JSON; return SESH_OP_EXECUTE; }
    } else if (n == 2 && is(s, at, "executions")) {
        *allow = "GET";
        if (get) { *name = sesh_xstrdup(s->v[at + 1]); return SESH_OP_EXEC_GET; }
    } else if (n == 1 && is(s, at, "files")) {
        *allow = "GET, POST";
        if (get) return SESH_OP_LIST;
        if (post) { *body = SESH_BODY_MULTIPART; return SESH_OP_UPLOAD; }
    } else if (n >= 3 && is(s, at, "files") && is(s, s->n - 1, "content")) {
        *allow = "GET";
        if (get) { *name = join(s, at + 1, s->n - 1); return SESH_OP_DOWNLOAD; }
    } else if (n >= 2 && is(s, at, "files")) {
        *allow = "GET, DELETE";
        if (get) { *name = join(s, at + 1, s->n); return SESH_OP_FILE_GET; }
        if (del) { *name = join(s, at + 1, s->n); return SESH_OP_FILE_DELETE; }
    } else if (n == 1 && is(s, at, "session")) {
        *allow = "GET, DELETE";
        if (get) return SESH_OP_SESSION_GET;
        if (del) return SESH_OP_SESSION_DELETE;
    } else if (n == 1 && is(s, at, "listSessions")) {
        *allow = "GET";
        if (get) return SESH_OP_LIST_SESSIONS;
    } else if (n == 1 && is(s, at, "metadata")) {
        *allow = "GET";
        if (get) return SESH_OP_METADATA;
    } else if (n == 2 && is(s, at, ".management") && is(s, at + 1, "stopSession")) {
        *allow = "POST";
        if (post) return SESH_OP_STOP_SESSION;
    }
    return SESH_OP_NONE;
}

/* The version an operation of the second generation appeared in. */
static int since(sesh_op op)
{
    switch (op) {
    case SESH_OP_SESSION_GET: case SESH_OP_SESSION_DELETE:
    case SESH_OP_LIST_SESSIONS: case SESH_OP_METADATA:
        return SESH_RANK_2025_02;
    case SESH_OP_STOP_SESSION:
        return SESH_RANK_2025_10;
    default:
        return 0;
    }
}

static void set_param(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

/* Splits the query; returns the api-version given (malloc'd) or NULL.
 * A name or value that decodes to a NUL (%00) would end early as a C string
 * and name something else (identifier=abcd%00x is not session abcd): *nul
 * gets the first such parameter's name, and the request is refused. */
static char *parse_query(sesh_call *call, const char *q, char **nul)
{
    char *version = NULL;
    char *copy = sesh_xstrdup(q), *save = NULL;
    for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        char *value = eq ? eq + 1 : kv + strlen(kv);
        if (eq) *eq = '\0';
        int bad = sesh_percent_decode_text(kv, 1) != 0;
        /* No identifier holds a space, so a '+' in one is a '+'. */
        int plus_is_space = strcmp(kv, "identifier") != 0;
        char *v = sesh_xstrdup(value);
        bad |= sesh_percent_decode_text(v, plus_is_space) != 0;
        if (bad) {
            if (!*nul) *nul = sesh_xstrdup(kv);
            free(v);
            continue;
        }
        if (strcmp(kv, "identifier") == 0) set_param(&call->identifier, v);
        else if (strcasecmp(kv, "api-version") == 0) set_param(&version, v);
        else if (strcmp(kv, "path") == 0) set_param(&call->query_path, v);
        else if (strcmp(kv, "recursive") == 0) set_param(&call->recursive, v);
        else if (strcmp(kv, "skip") == 0) set_param(&call->skip, v);
        else free(v);
    }
    free(copy);
    return version;
}

/* A %00 in the path (param NULL) or in a query parameter: never part of a
 * name, identifier or id, so refused whatever the operation. */
static void refuse_nul(sesh_reply *reply, const char *param)
{
    if (!param)
        sesh_reply_error(reply, 400, "InvalidPath", NULL,
                         "the request path holds an encoded NUL character (%%00), which no file "
                         "name, execution id or other part of a path may hold");
    else if (strcmp(param, "identifier") == 0)
        sesh_reply_error(reply, 400, "InvalidIdentifier", "identifier",
                         "the session identifier holds an encoded NUL character (%%00)");
    else
        sesh_reply_error(reply, 400, "InvalidParameter", param,
                         "the query parameter '%.64s' holds an encoded NUL character (%%00)", param);
}

int sesh_call_parse(sesh_call *call, const char *method, const char *raw_uri, sesh_reply *reply)
{
    call->method = method;
    size_t urilen = strlen(raw_uri);
    const char *qmark = strchr(raw_uri, '?');
    size_t pathlen = qmark ? (size_t)(qmark - raw_uri) : urilen;
    call->path = strndup(raw_uri, pathlen > 512 ? 512 : pathlen);
    if (!call->path) abort();
    call->prefix = sesh_xstrdup("");
    if (urilen > SESH_MAX_URI) {
        sesh_reply_error(reply, 414, "UriTooLong", NULL,
                         "the request URI is %zu bytes long; at most %d are accepted",
                         urilen, SESH_MAX_URI);
        return -1;
    }
    char *nul = NULL;
    char *version = qmark ? parse_query(call, qmark + 1, &nul) : NULL;
    segs s = split(raw_uri, pathlen);
    int at = 0, rc = -1;

    if (nul || s.nul) {
        refuse_nul(reply, s.nul ? NULL : nul);
        free(nul);
        goto done;
    }

    /* The Azure prefix: /subscriptions/{s}/resourceGroups/{g}/sessionPools/{p} */
    if (s.n >= 6 && strcasecmp(s.v[0], "subscriptions") == 0 &&
        strcasecmp(s.v[2], "resourceGroups") == 0 && strcasecmp(s.v[4], "sessionPools") == 0) {
        at = 6;
        free(call->prefix);
        call->prefix = join(&s, 0, 6);
        char *slashed = sesh_printf("/%s", call->prefix);
        free(call->prefix);
        call->prefix = slashed;
    }

    if (s.n - at == 1 && strcmp(s.v[at], "health") == 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            sesh_reply_error(reply, 405, "MethodNotAllowed", NULL, "%s /health: only GET is allowed", method);
            sesh_reply_header(reply, "Allow", "GET");
        } else {
            call->op = SESH_OP_HEALTH;
            call->public_op = 1;
            rc = 0;
        }
        goto done;
    }
    if (!version) {
        sesh_reply_error(reply, 400, "MissingApiVersionParameter", "api-version",
                         "the query parameter api-version is required; supported: " SUPPORTED);
        goto done;
    }
    int rank = -1;
    for (int i = 0; i < (int)(sizeof versions / sizeof versions[0]); i++)
        if (strcasecmp(version, versions[i].name) == 0) rank = i;
    if (rank < 0) {
        sesh_reply_error(reply, 400, "UnsupportedApiVersion", "api-version",
                         "api-version '%.64s' is not supported; supported: " SUPPORTED, version);
        goto done;
    }
    call->rank = rank;
    call->gen = versions[rank].gen;
    call->api_version = versions[rank].name;

    const char *allow = NULL;
    call->op = match(&s, at, call->gen, method, &call->body, &call->name, &allow);
    if (call->op != SESH_OP_NONE && call->rank < since(call->op)) {
        sesh_reply_error(reply, 404, "OperationNotSupported", "api-version",
                         "%s %s needs api-version %s or later (this request asked for %s)",
                         method, call->path, versions[since(call->op)].name, call->api_version);
        goto done;
    }
    if (call->op != SESH_OP_NONE) {
        rc = 0;
        goto done;
    }
    if (allow) {
        sesh_reply_error(reply, 405, "MethodNotAllowed", NULL, "%s is not allowed on %s (allowed: %s)",
                         method, call->path, allow);
        sesh_reply_header(reply, "Allow", "%s", allow);
        goto done;
    }
    /* A path of the other generation: say so, it is the usual mistake. */
    sesh_body_kind ignored;
    char *other_name = NULL;
    sesh_op other = match(&s, at, call->gen == 1 ? 2 : 1, method, &ignored, &other_name, &allow);
    free(other_name);
    if (other != SESH_OP_NONE)
        sesh_reply_error(reply, 404, "OperationNotFound", NULL,
                         "%s %s is an operation of the %s API generation, but api-version %s is of the %s",
                         method, call->path, call->gen == 1 ? "second" : "first", call->api_version,
                         call->gen == 1 ? "first" : "second");
    else
        sesh_reply_error(reply, 404, "OperationNotFound", NULL, "no operation %s %s in api-version %s",
                         method, call->path, call->api_version);
done:
    free(version);
    segs_free(&s);
    return rc;
}

void sesh_call_free(sesh_call *call)
{
    free(call->path);
    free(call->prefix);
    free(call->name);
    free(call->identifier);
    free(call->query_path);
    free(call->recursive);
    free(call->skip);
    json_decref(call->json);
    sesh_op_upload_body_free(call);
    sesh_upload_abort(call->upload);           /* a request that ended mid-upload */
    if (call->upload_taken && call->session)
        sesh_quota_done(sesh_session_quota(call->session), call->upload_taken, 0, 0);
    sesh_session_release(call->session);
    free(call->upload_name);
    sesh_file_info_free(&call->upload_info);
    memset(call, 0, sizeof *call);
}
