/*
 * server.c — see server.h.
 */
#include "pool/server.h"
#include "pool/log.h"
#include "pool/util.h"

#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_Result;
#define MHD_RESULT int
#else
#define MHD_RESULT enum MHD_Result
#endif

#define POST_BUFFER 65536

struct sesh_server {
    struct MHD_Daemon *daemon;
    sesh_api *api;
    char *token;
};

/* One request, from its first line to its completion. */
typedef struct request {
    sesh_server *srv;
    char *raw_uri;
    uint64_t t0;
    int started;
    int failed;                 /* reply holds an error; the rest of the body is dropped */
    sesh_call call;
    sesh_reply reply;
    char *body;                 /* a JSON body */
    size_t body_len, body_cap;
    int body_too_large;
    struct MHD_PostProcessor *pp;
    int status;                 /* sent, for the log */
    int http11;                 /* may be sent an interim (1xx) answer */
    sesh_watch client;          /* the connection, while code runs for it */
} request;

/* Whether the client of a request that runs code still waits for the answer.
 * Its end of the connection closing (a FIN) may be a half-close, which HTTP
 * allows, or the client gone: an interim 102 Processing, which an HTTP/1.1
 * client must accept, tells them apart, since a closed socket answers it with
 * a reset. Nothing may be sent to an HTTP/1.0 client: its code runs on. */
static int client_still_waiting(sesh_watch *w, short revents)
{
    static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
    const request *rq = w->data;
    if (revents & (POLLHUP | POLLERR | POLLNVAL))
        return 0;
    if (revents & POLLRDHUP) {
        w->events = 0;                  /* from now on a reset or a hang-up only */
        if (!rq->http11)
            w->fd = -1;
        else if (send(w->fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            return 0;
    }
    return 1;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con)
{
    request *rq = sesh_xcalloc(1, sizeof *rq);
    rq->srv = cls;
    rq->raw_uri = sesh_xstrdup(uri);   /* undecoded: route.c decodes its way */
    rq->t0 = sesh_now_ms();
    sesh_reply_init(&rq->reply);
    return rq;
}

static void add_common_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Server", "sesh-pool");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

static MHD_RESULT send_reply(struct MHD_Connection *con, request *rq)
{
    sesh_reply *r = &rq->reply;
    struct MHD_Response *resp;
    if (r->fd >= 0) {
        resp = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (resp) r->fd = -1;                  /* MHD closes it */
        if (resp) MHD_add_response_header(resp, "Content-Type", r->fd_type ? r->fd_type : "application/octet-stream");
    } else if (r->json) {
        char *text = json_dumps(r->json, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!text) text = sesh_xstrdup("{}");
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (resp) MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
        else free(text);
    } else if (r->text) {
        resp = MHD_create_response_from_buffer(strlen(r->text), r->text, MHD_RESPMEM_MUST_FREE);
        if (resp) {
            r->text = NULL;
            MHD_add_response_header(resp, "Content-Type", r->text_type ? r->text_type : "text/plain");
        }
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    add_common_headers(resp);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    rq->status = r->status ? r->status : 500;
    MHD_RESULT ret = MHD_queue_response(con, (unsigned)rq->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int authorized(sesh_server *srv, struct MHD_Connection *con)
{
    const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) return 0;
    while (*h == ' ') h++;
    if (strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t')) n--;
    return sesh_secret_equal(h, n, srv->token, strlen(srv->token));
}

static MHD_RESULT on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                          const char *content_type, const char *transfer_encoding,
                          const char *data, uint64_t off, size_t size)
{
    request *rq = cls;
    if (rq->failed) return MHD_YES;
    if (sesh_api_upload(rq->srv->api, &rq->call, key, filename, data, off, size, &rq->reply) != 0) {
        rq->failed = 1;
    }
    return MHD_YES;
}

/* The first call for a request: headers are in, no body yet. */
static void begin(request *rq, struct MHD_Connection *con, const char *method)
{
    sesh_server *srv = rq->srv;
    sesh_call *call = &rq->call;
    if (sesh_call_parse(call, method, rq->raw_uri, &rq->reply) != 0) {
        /* An unknown path still needs the token: say nothing to strangers. */
        if (!authorized(srv, con)) {
            sesh_reply_free(&rq->reply);
            sesh_reply_error(&rq->reply, 401, "Unauthorized", NULL,
                             "a valid 'Authorization: Bearer <token>' header is required");
        }
        rq->failed = 1;
        return;
    }
    if (!call->public_op && !authorized(srv, con)) {
        sesh_reply_error(&rq->reply, 401, "Unauthorized", NULL,
                         "a valid 'Authorization: Bearer <token>' header is required");
        rq->failed = 1;
        return;
    }
    call->host = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    call->operation_id = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "operation-id");
    call->content_type = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    call->content_length = cl ? strtoll(cl, NULL, 10) : -1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        rq->client = (sesh_watch){ .fd = ci->connect_fd, .events = POLLRDHUP,
                                   .still_waiting = client_still_waiting, .data = rq };
        call->client = &rq->client;
    }
    if (sesh_api_begin(srv->api, call, &rq->reply) != 0) {
        rq->failed = 1;
        return;
    }
    if (call->body == SESH_BODY_MULTIPART) {
        rq->pp = MHD_create_post_processor(con, POST_BUFFER, on_part, rq);
        if (!rq->pp) {
            sesh_reply_error(&rq->reply, 415, "UnsupportedMediaType", NULL,
                             "the multipart/form-data body has no usable boundary");
            rq->failed = 1;
        }
    }
}

static void take_body(request *rq, const char *data, size_t size)
{
    if (rq->call.body == SESH_BODY_MULTIPART) {
        if (rq->pp && !rq->failed && MHD_post_process(rq->pp, data, size) != MHD_YES && !rq->failed) {
            sesh_reply_error(&rq->reply, 400, "InvalidMultipartBody", NULL,
                             "the multipart/form-data body is malformed");
            rq->failed = 1;
        }
        return;
    }
    if (rq->call.body != SESH_BODY_JSON || rq->failed) return;   /* a body nobody asked for */
    if (rq->body_len + size > SESH_MAX_JSON_BODY) {
        rq->body_too_large = 1;
        rq->failed = 1;
        sesh_reply_error(&rq->reply, 413, "PayloadTooLarge", NULL,
                         "the body is larger than %u bytes", SESH_MAX_JSON_BODY);
        return;
    }
    if (rq->body_len + size + 1 > rq->body_cap) {
        rq->body_cap = (rq->body_len + size + 1) * 2;
        if (rq->body_cap > SESH_MAX_JSON_BODY + 1) rq->body_cap = SESH_MAX_JSON_BODY + 1;
        rq->body = sesh_xrealloc(rq->body, rq->body_cap);
    }
    memcpy(rq->body + rq->body_len, data, size);
    rq->body_len += size;
}

static MHD_RESULT handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                         const char *version, const char *upload_data, size_t *upload_size, void **ctx)
{
    request *rq = *ctx;
    if (!rq) return MHD_NO;                    /* no URI logger call: cannot happen */
    if (!rq->started) {
        rq->started = 1;
        rq->http11 = version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        begin(rq, con, method);
        /* A large body refused at once is not read: answer now (a client
         * that sent Expect: 100-continue never sends it). A small one is
         * read and dropped, so the client is not reset mid-send. */
        if (rq->failed && rq->call.content_length > (1 << 20)) return send_reply(con, rq);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        take_body(rq, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!rq->failed) {
        if (rq->pp) {
            MHD_destroy_post_processor(rq->pp);
            rq->pp = NULL;
        }
        if (!rq->failed)
            sesh_api_finish(rq->srv->api, &rq->call, rq->body, rq->body_len, &rq->reply);
    }
    return send_reply(con, rq);
}

static void completed(void *cls, struct MHD_Connection *con, void **ctx, enum MHD_RequestTerminationCode why)
{
    request *rq = *ctx;
    if (!rq) return;
    *ctx = NULL;
    if (rq->pp) MHD_destroy_post_processor(rq->pp);
    const char *path = rq->call.path ? rq->call.path : "?";
    char safe[160];
    size_t j = 0;
    for (size_t i = 0; path[i] && j < sizeof safe - 4; i++)   /* no control bytes in the log */
        safe[j++] = ((unsigned char)path[i] < 0x20 || path[i] == 0x7f) ? '?' : path[i];
    if (path[j] && j >= sizeof safe - 4) { memcpy(safe + j, "...", 3); j += 3; }
    safe[j] = '\0';
    const char *status_note = why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)";
    sesh_log("%s %s %d %llums%s%s%s%s%s", rq->call.method ? rq->call.method : "-", safe,
             rq->status, (unsigned long long)(sesh_now_ms() - rq->t0),
             rq->call.log_session[0] ? " session " : "", rq->call.log_session,
             rq->reply.error_code ? " " : "", rq->reply.error_code ? rq->reply.error_code : "",
             status_note);
    sesh_call_free(&rq->call);
    sesh_reply_free(&rq->reply);
    free(rq->body);
    free(rq->raw_uri);
    free(rq);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    sesh_log("http: %s", buf);
}

sesh_server *sesh_server_start(const sesh_server_config *cfg, sesh_api *api, char **err)
{
    sesh_server *srv = sesh_xcalloc(1, sizeof *srv);
    srv->api = api;
    srv->token = sesh_xstrdup(cfg->token);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)cfg->listen_fd,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv,
        MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 256),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->idle_timeout > 0 ? cfg->idle_timeout : 60),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_END);
    if (!srv->daemon) {
        if (err) *err = sesh_xstrdup("libmicrohttpd could not start on the listening socket");
        free(srv->token);
        free(srv);
        return NULL;
    }
    return srv;
}

void sesh_server_stop(sesh_server *srv)
{
    if (!srv) return;
    MHD_stop_daemon(srv->daemon);
    free(srv->token);
    free(srv);
}
