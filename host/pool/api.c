/*
 * api.c — dispatch of the pool management API, the checks every operation
 * shares (identifier, media types, sizes), and the operations on sessions
 * and on the pool itself. Executions are in api_exec.c, files in api_files.c.
 */
#include "pool/api_ops.h"
#include "pool/cgroup.h"
#include "pool/log.h"
#include "pool/multipart.h"
#include "pool/util.h"
#include "pool/zygote.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SESSIONS_PAGE 100

sesh_api *sesh_api_new(sesh_manager *m, const sesh_api_config *cfg)
{
    sesh_api *api = sesh_xcalloc(1, sizeof *api);
    api->m = m;
    api->cfg = *cfg;
    clock_gettime(CLOCK_REALTIME, &api->started);
    return api;
}

void sesh_api_free(sesh_api *api)
{
    free(api);
}

/* pool-api.md section 3: 4 to 128 characters from a fixed set. */
static const char *identifier_problem(const char *id)
{
    static const char allowed[] = "_|}{[]:\";'<>?/.,@#$%^&*()-+=!~`";
    size_t n = strlen(id);
    if (n < 4) return "it is shorter than 4 characters";
    if (n > 128) return "it is longer than 128 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
        if (c && strchr(allowed, c)) continue;
        return "it holds a character outside letters, digits and _|}{[]:\";'<>?/.,@#$%^&*()-+=!~`";
    }
    return NULL;
}

static int needs_identifier(sesh_op op)
{
    return op != SESH_OP_HEALTH && op != SESH_OP_LIST_SESSIONS && op != SESH_OP_METADATA;
}

void sesh_api_session_error(sesh_api *api, sesh_reply *reply, sesh_sess_status st, const char *msg)
{
    switch (st) {
    case SESH_SESS_NOT_FOUND:
        sesh_reply_error(reply, 404, "SessionNotFound", "identifier",
                         "no session with this identifier exists");
        break;
    case SESH_SESS_FULL: {
        int after = sesh_manager_retry_after(api->m);
        sesh_reply_error(reply, 429, "SessionPoolFull", "identifier",
                         "the pool already holds its maximum of sessions; retry in %d s or delete a session",
                         after);
        sesh_reply_header(reply, "Retry-After", "%d", after);
        break;
    }
    case SESH_SESS_BUSY:
        sesh_reply_error(reply, 429, "TooManyRequests", "identifier",
                         "too many executions are waiting on this session; retry later");
        sesh_reply_header(reply, "Retry-After", "1");
        break;
    case SESH_SESS_STOPPING:
        sesh_reply_error(reply, 503, "ServiceUnavailable", NULL, "the pool is shutting down");
        break;
    default:
        sesh_reply_error(reply, 500, "SessionAllocationFailed", NULL, "cannot allocate the session: %s",
                         msg ? msg : "unknown error");
        break;
    }
}

int sesh_api_session(sesh_api *api, sesh_call *call, int create, sesh_reply *reply)
{
    if (call->session) return 0;
    char *err = NULL;
    sesh_sess_status st = sesh_manager_acquire(api->m, call->identifier, create, &call->session,
                                               &call->session_created, &err);
    if (st != SESH_SESS_OK) {
        sesh_api_session_error(api, reply, st, err);
        free(err);
        return -1;
    }
    memcpy(call->log_session, sesh_session_guid(call->session), 8);
    call->log_session[8] = '\0';
    return 0;
}

char *sesh_url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = sesh_xmalloc(strlen(s) * 3 + 1), *w = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = '\0';
    return out;
}

char *sesh_api_url(const sesh_call *call, const char *op_path, const char *extra_query)
{
    char *id = call->identifier ? sesh_url_encode(call->identifier) : NULL;
    char *url = sesh_printf("http://%s%s/%s?%s%s%sapi-version=%s%s%s",
                            call->host && *call->host ? call->host : "localhost",
                            call->prefix, op_path,
                            id ? "identifier=" : "", id ? id : "", id ? "&" : "",
                            call->api_version ? call->api_version : "",
                            extra_query ? "&" : "", extra_query ? extra_query : "");
    free(id);
    return url;
}

static int media_type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The kind of session the pool runs, as Azure names pools' container types. */
static const char *container_type(sesh_api *api)
{
    return sesh_manager_runs_python(api->m) ? "PythonLTS" : "Shell";
}

int sesh_api_begin(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    call->t_start_ms = sesh_now_ms();
    if (call->gen == 1 && !sesh_manager_runs_python(api->m)) {
        sesh_reply_error(reply, 400, "UnsupportedApiVersion", "api-version",
                         "this pool runs Shell sessions (sesh-pool --container-type Shell), which "
                         "the first API generation (api-version %s) does not serve: use api-version "
                         "%s or later", call->api_version, sesh_api_version_name(SESH_RANK_2025_02));
        return -1;
    }
    if (needs_identifier(call->op)) {
        if (!call->identifier) {
            sesh_reply_error(reply, 400, "MissingIdentifier", "identifier",
                             "the query parameter identifier (the session) is required");
            return -1;
        }
        const char *why = identifier_problem(call->identifier);
        if (why) {
            sesh_reply_error(reply, 400, "InvalidIdentifier", "identifier",
                             "the session identifier is not valid: %s", why);
            return -1;
        }
    }
    if (call->body == SESH_BODY_JSON) {
        if (call->content_type && !media_type_is(call->content_type, "application/json") &&
            !media_type_is(call->content_type, "text/json")) {
            sesh_reply_error(reply, 415, "UnsupportedMediaType", NULL,
                             "the body must be application/json, not '%.100s'", call->content_type);
            return -1;
        }
        if (call->content_length > (int64_t)SESH_MAX_JSON_BODY) {
            sesh_reply_error(reply, 413, "PayloadTooLarge", NULL,
                             "the body is %lld bytes; at most %u are accepted (a fixed limit, no "
                             "option raises it: upload large data as a file)",
                             (long long)call->content_length, SESH_MAX_JSON_BODY);
            return -1;
        }
    } else if (call->body == SESH_BODY_MULTIPART) {
        /* Under another type (or without a boundary), the body's first bytes
         * tell whether it is multipart all the same (sesh_api_upload_body). */
        if (media_type_is(call->content_type, "multipart/form-data")) {
            char boundary[SESH_MULTIPART_MAX_BOUNDARY + 1];
            int found = sesh_multipart_boundary(call->content_type, boundary, sizeof boundary);
            if (found < 0) {
                sesh_reply_error(reply, 400, "InvalidMultipartBody", NULL,
                                 "the boundary of the multipart/form-data Content-Type is empty, "
                                 "badly quoted or longer than %d bytes", SESH_MULTIPART_MAX_BOUNDARY);
                return -1;
            }
            if (found) call->upload_boundary = sesh_xstrdup(boundary);
        }
        /* Room for the multipart framing around the file. */
        if (call->content_length > (int64_t)(api->cfg.max_upload + SESH_MULTIPART_FRAMING)) {
            sesh_reply_error(reply, 413, "PayloadTooLarge", NULL,
                             "the upload is %lld bytes; files up to %llu bytes are accepted "
                             "(sesh-pool --max-upload raises the limit)",
                             (long long)call->content_length, (unsigned long long)api->cfg.max_upload);
            return -1;
        }
        if (sesh_api_session(api, call, 1, reply) != 0) return -1;
        if (sesh_op_upload_room(api, call, reply) != 0) return -1;
    }
    return 0;
}

int sesh_api_upload_body(sesh_api *api, sesh_call *call, const char *data, size_t size,
                         sesh_reply *reply)
{
    return sesh_op_upload_body(api, call, data, size, reply);
}

/* The limits every session has, and whether the kernel enforces them. */
static json_t *limits_json(const sesh_api *api)
{
    const char *version = sesh_cgroup_version();
    json_t *l = json_pack("{s:b, s:s?, s:I, s:i}", "enforced", version != NULL,
                          "cgroup", version, "sessionMemory", (json_int_t)api->cfg.session_memory,
                          "maxSessions", api->cfg.max_sessions);
    if (l && version)
        json_object_set_new(l, "controllers", json_string(sesh_cgroup_controllers()));
    if (l && api->cfg.limits_warning)
        json_object_set_new(l, "warning", json_string(api->cfg.limits_warning));
    return l ? l : json_object();
}

static void op_health(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    /* No token needed here: only counts and settings, nothing about any session. */
    sesh_reply_json(reply, 200, json_pack("{s:s, s:s, s:I, s:i, s:o, s:o}", "status", "Healthy",
                                          "containerType", container_type(api),
                                          "sessions", (json_int_t)sesh_manager_count(api->m),
                                          "readySessions", sesh_manager_ready(api->m),
                                          "limits", limits_json(api),
                                          "forkServer", sesh_zygote_status(api->cfg.fork_server, api->cfg.fork_server_off)));
}

static json_t *session_json(const sesh_session_info *info)
{
    char created[48], accessed[48], expires[48];
    sesh_format_time(created, info->created, 3);
    sesh_format_time(accessed, info->last_access, 3);
    sesh_format_time(expires, info->expires, 3);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "identifier", info->identifier,
                          "createdAt", created, "lastAccessedAt", accessed,
                          "expireAt", expires, "etag", info->guid);
    return j ? j : json_object();
}

static void op_session_get(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    if (sesh_api_session(api, call, 0, reply) != 0) return;
    sesh_session_info info;
    sesh_session_info_get(call->session, &info);
    sesh_reply_json(reply, 200, session_json(&info));
    free(info.identifier);
}

static void op_session_delete(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    sesh_sess_status st = sesh_manager_remove(api->m, call->identifier);
    if (st != SESH_SESS_OK) {
        sesh_api_session_error(api, reply, st, NULL);
        return;
    }
    if (call->op == SESH_OP_STOP_SESSION) {
        reply->status = 200;
        reply->text = sesh_xstrdup("Session stopped.");
        reply->text_type = "text/plain; charset=utf-8";
    } else {
        reply->status = 204;
    }
}

static void op_list_sessions(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    long skip = 0;
    if (call->skip) {
        char *end;
        skip = strtol(call->skip, &end, 10);
        if (!*call->skip || *end || skip < 0) {
            sesh_reply_error(reply, 400, "InvalidParameter", "skip",
                             "skip must be a non-negative integer, not '%.32s'", call->skip);
            return;
        }
    }
    sesh_session_info *infos;
    size_t n;
    sesh_manager_list(api->m, &infos, &n);
    json_t *list = json_array();
    for (size_t i = (size_t)skip; i < n && i < (size_t)skip + SESSIONS_PAGE; i++)
        json_array_append_new(list, session_json(&infos[i]));
    json_t *next = json_null();
    if ((size_t)skip + SESSIONS_PAGE < n) {
        char q[32];
        snprintf(q, sizeof q, "skip=%ld", skip + SESSIONS_PAGE);
        char *url = sesh_api_url(call, "listSessions", q);
        next = json_string(url);
        free(url);
    }
    sesh_session_infos_free(infos, n);
    sesh_reply_json(reply, 200, json_pack("{s:o, s:o}", "sessions", list, "nextLink", next));
}

static void op_metadata(sesh_api *api, sesh_call *call, sesh_reply *reply)
{
    char *err = NULL;
    json_t *md = sesh_manager_metadata(api->m, &err);
    if (!md) {
        sesh_reply_error(reply, 500, "MetadataUnavailable", NULL,
                         "cannot ask a sandbox for its interpreter: %s", err ? err : "unknown error");
        free(err);
        return;
    }
    const char *python = json_string_value(json_object_get(md, "python"));
    const char *ipython = json_string_value(json_object_get(md, "ipython"));
    const char *bash = json_string_value(json_object_get(md, "bash"));
    int runs_python = sesh_manager_runs_python(api->m);
    json_t *packages = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(md, "packages"), i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        const char *version = json_string_value(json_object_get(p, "version"));
        if (name && version)
            json_array_append_new(packages, json_pack("{s:s, s:s}", "name", name, "version", version));
    }
    char started[48];
    sesh_format_time(started, api->started, 3);
    /* The session's own runtime first: Python's, or bash's in a Shell pool
     * (whose python3 is one of its tools). */
    json_t *py = json_pack("{s:s, s:s}", "name", "python", "version", python ? python : "unknown");
    json_t *sh = json_pack("{s:s, s:s}", "name", "bash", "version", bash && *bash ? bash : "unknown");
    json_t *body = json_pack("{s:s, s:[o, o], s:o, s:s, s:s}", "containerType", container_type(api),
                             "runtimes", runs_python ? py : sh, runs_python ? sh : py,
                             "preInstalledPackages", packages,
                             "createdAt", started, "lastUpdatedAt", started);
    if (runs_python)
        json_object_set_new(body, "jupyterKernel", json_pack(
            "{s:s, s:s, s:s, s:s}", "name", "IPython", "version", ipython ? ipython : "unknown",
            "projectUrl", "https://ipython.org",
            "description", "IPython's InteractiveShell running each cell in a bubblewrap sandbox"));
    json_decref(md);
    sesh_reply_json(reply, 200, body);
}

void sesh_api_finish(sesh_api *api, sesh_call *call, const char *body, size_t body_len,
                     sesh_reply *reply)
{
    switch (call->op) {
    case SESH_OP_HEALTH: op_health(api, call, reply); break;
    case SESH_OP_EXECUTE: sesh_op_execute(api, call, body, body_len, reply); break;
    case SESH_OP_EXEC_GET: sesh_op_exec_get(api, call, reply); break;
    case SESH_OP_UPLOAD: sesh_op_upload_finish(api, call, reply); break;
    case SESH_OP_LIST: sesh_op_list(api, call, reply); break;
    case SESH_OP_FILE_GET: sesh_op_file_get(api, call, reply); break;
    case SESH_OP_FILE_DELETE: sesh_op_file_delete(api, call, reply); break;
    case SESH_OP_DOWNLOAD: sesh_op_download(api, call, reply); break;
    case SESH_OP_SESSION_GET: op_session_get(api, call, reply); break;
    case SESH_OP_SESSION_DELETE:
    case SESH_OP_STOP_SESSION: op_session_delete(api, call, reply); break;
    case SESH_OP_LIST_SESSIONS: op_list_sessions(api, call, reply); break;
    case SESH_OP_METADATA: op_metadata(api, call, reply); break;
    default:
        sesh_reply_error(reply, 404, "OperationNotFound", NULL, "no such operation");
    }
}
