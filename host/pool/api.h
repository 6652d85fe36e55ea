/*
 * api.h — the pool management API (pool-api.md) between the HTTP server and
 * the session manager: what a request asks (sesh_call, filled by route.c from
 * the request line), and what goes back (sesh_reply, turned into an HTTP
 * response by server.c). Nothing here knows libmicrohttpd.
 *
 * A request is handled in three steps, as its bytes arrive:
 *   sesh_call_parse()       method and URI: operation, api-version, identifier
 *   sesh_api_begin()        headers known: checks, and the session for uploads
 *   sesh_api_upload_body()  (uploads only) each piece of the raw body as it
 *                           arrives: parsed (multipart.h), the file streamed to disk
 *   sesh_api_finish()       the whole body is in: do the operation
 * Any step may fill the reply with an error instead; then the rest is skipped.
 * The first two run on the server's event loop and must not wait (for a
 * sandbox, a lock held long, the disk); the others run on worker threads.
 */
#ifndef SESH_POOL_API_H
#define SESH_POOL_API_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "pool/sessions.h"
#include "pool/files.h"

#define SESH_MAX_JSON_BODY   (8u << 20)   /* an execute request (code) */
#define SESH_MAX_URI         8192
#define SESH_DEFAULT_STREAM_MAX 4096      /* second generation's outputStreamsMaxLength */
#define SESH_SHELL_TIMEOUT   180          /* seconds: a shell command's default timeout */
/* Positions (sesh_call.rank) of the versions that brought something: the
 * session and pool operations, and shell commands (2025-02-02-preview);
 * stopping a session (2025-10-02-preview). route.c holds the table. */
#define SESH_RANK_2025_02    3
#define SESH_RANK_2025_10    4

typedef enum {
    SESH_OP_NONE = 0,
    SESH_OP_HEALTH,
    SESH_OP_EXECUTE,         /* POST code/execute (1) | POST executions (2) */
    SESH_OP_EXEC_GET,        /* GET executions/{id} */
    SESH_OP_UPLOAD,          /* POST files/upload (1) | POST files (2) */
    SESH_OP_LIST,            /* GET files */
    SESH_OP_FILE_GET,        /* GET files/{name} */
    SESH_OP_FILE_DELETE,     /* DELETE files/{name} */
    SESH_OP_DOWNLOAD,        /* GET files/content/{name} (1) | GET files/{name}/content (2) */
    SESH_OP_SESSION_GET,
    SESH_OP_SESSION_DELETE,
    SESH_OP_LIST_SESSIONS,
    SESH_OP_METADATA,
    SESH_OP_STOP_SESSION
} sesh_op;

typedef enum { SESH_BODY_NONE = 0, SESH_BODY_JSON, SESH_BODY_MULTIPART } sesh_body_kind;

/* The answer, built by the API, sent by the server. */
typedef struct sesh_reply {
    int status;                 /* 0: not decided yet */
    json_t *json;               /* a JSON body, or */
    char *text;                 /* a text body, or */
    const char *text_type;
    int fd;                     /* a file body (-1: none); the server closes it */
    uint64_t fd_size;
    const char *fd_type;
    const char *error_code;     /* set by sesh_reply_error, for the log */
    struct { char *name, *value; } headers[16];
    int nheaders;
} sesh_reply;

void sesh_reply_init(sesh_reply *r);
void sesh_reply_free(sesh_reply *r);
void sesh_reply_header(sesh_reply *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sesh_reply_json(sesh_reply *r, int status, json_t *body);   /* steals body */
/* {"error": {"code", "message", "target"}} with x-ms-error-code: code. */
void sesh_reply_error(sesh_reply *r, int status, const char *code, const char *target,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* One request as the API sees it. */
typedef struct sesh_call {
    const char *method;         /* "GET", ... (the server's string) */
    char *path;                 /* decoded path, for the log */
    char *prefix;               /* the /subscriptions/.../sessionPools/{p} prefix as sent, or "" */
    int gen;                    /* 1 or 2; 0 for operations outside the versioned API */
    int rank;                   /* position of api_version among the known ones */
    const char *api_version;
    sesh_op op;
    sesh_body_kind body;
    char *name;                 /* file name or execution id from the path (decoded) */
    char *identifier;           /* decoded; NULL when absent */
    char *query_path;           /* second generation's `path` */
    char *recursive;
    char *skip;
    int public_op;              /* no token needed (health) */

    /* headers the API needs, set by the server before sesh_api_begin */
    const char *host;
    const char *operation_id;
    const char *content_type;
    int64_t content_length;     /* -1: unknown */
    sesh_watch *client;         /* the client, as the server watches it (NULL: not watched) */

    /* filled while the request runs */
    json_t *json;               /* the parsed JSON body */
    sesh_session *session;
    int session_created;
    uint64_t t_start_ms;
    sesh_upload *upload;
    uint64_t upload_taken;      /* bytes of the session's disk limit the upload took */
    char *upload_name;          /* cleaned remote name of the upload */
    char *upload_boundary;      /* from the Content-Type; NULL: sniffed from the body */
    struct sesh_upload_body *upload_body;   /* the body's parser (api_files.c) */
    int upload_seen;            /* a part named `file` arrived */
    int upload_done;            /* that part ended (a later `file` part is ignored) */
    sesh_file_info upload_info;
    char log_session[9];        /* first characters of the session guid, for the log */
} sesh_call;

typedef struct sesh_api_config {
    int timeout_cap;            /* seconds: default and largest timeout of an execution */
    size_t max_output;          /* characters per stream, cap and first-generation default */
    uint64_t max_upload;        /* bytes */
    uint64_t min_free_disk;     /* bytes kept free on the sessions' file system (--min-free-disk) */
    size_t session_memory;      /* bytes, for /health */
    int max_sessions;           /* for /health */
    const char *limits_warning; /* why sessions are not bounded as a whole (NULL: they
                                   are); outlives the API */
    struct sesh_zygote *fork_server;   /* for /health; NULL: none, for */
    const char *fork_server_off;       /* this reason */
} sesh_api_config;

typedef struct sesh_api sesh_api;

sesh_api *sesh_api_new(sesh_manager *m, const sesh_api_config *cfg);
void sesh_api_free(sesh_api *api);

/* Parses the request line. Returns 0, or fills reply with the error (400, 404, 405, 414). */
int sesh_call_parse(sesh_call *call, const char *method, const char *raw_uri, sesh_reply *reply);
/* The api-version at a rank (SESH_RANK_*), for messages. */
const char *sesh_api_version_name(int rank);
void sesh_call_free(sesh_call *call);

int sesh_api_begin(sesh_api *api, sesh_call *call, sesh_reply *reply);
/* The next piece of an upload's raw body (call->body == SESH_BODY_MULTIPART),
 * in order, any size: the pool's own multipart parser reads it, with the
 * boundary of a multipart/form-data Content-Type, or, under any other type
 * (Semantic Kernel sends its uploads as application/json), the boundary the
 * body starts with when it is a multipart/form-data body (else 415). The
 * part named `file` is streamed to disk. 0, or -1 when the reply holds an
 * error (400 malformed, 413, 415, 507...): feed no more. Whether the body
 * was whole is told by sesh_api_finish. */
int sesh_api_upload_body(sesh_api *api, sesh_call *call, const char *data, size_t size,
                         sesh_reply *reply);
void sesh_api_finish(sesh_api *api, sesh_call *call, const char *body, size_t body_len,
                     sesh_reply *reply);

#endif
