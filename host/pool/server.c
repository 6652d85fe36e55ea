/*
 * server.c — see server.h.
 */
#include "pool/server.h"
#include "pool/conns.h"
#include "pool/log.h"
#include "pool/tls.h"
#include "pool/util.h"
#include "pool/workers.h"

#include <microhttpd.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
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

#define KEEP_WORKERS 4          /* threads kept when idle, the loop's included */
#define PENDING_MAX (512u << 10) /* upload bytes read ahead of the disk */
#define MHD_LOG_BURST 10        /* libmicrohttpd's messages a second, at most */
/* GnuTLS's usual choices, TLS 1.2 and 1.3 only (libmicrohttpd's "NORMAL"
 * would take 1.0 and 1.1 too) */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct sesh_server {
    struct MHD_Daemon *daemon;
    sesh_api *api;
    char *token;
    sesh_conns *conns;
    sesh_workers *workers;
    sesh_mcp *mcp;              /* serves /mcp; NULL: no /mcp */
    int tls;                    /* HTTPS, with the certificate of tls.h */
    int epoll_fd;               /* libmicrohttpd's */
    int loop_ep;                /* the loop waits on it: epoll_fd and wake_fd */
    pthread_mutex_t loop_mu;    /* one thread at a time runs libmicrohttpd (not held while waiting) */
    int loop_off;               /* stopping: nobody runs it any more */
    int wake_fd;                /* an eventfd: makes the loop's wait end, to stop */
    pthread_mutex_t mu;
    pthread_cond_t drained;
    int suspended;              /* connections a worker holds: stop waits for them */
    unsigned idle_timeout;      /* seconds, libmicrohttpd's default for a connection */
    unsigned max_connections;
    uint64_t log_second;        /* libmicrohttpd's messages this second: */
    unsigned log_lines, log_dropped;
};

/* One request, from its first line to its completion.
 *
 * The operation runs on a worker while the connection is suspended: the loop
 * does not touch the request meanwhile, and the worker lets go of it
 * (MHD_resume_connection) last. A multipart body goes to disk on a worker
 * while the loop reads on: the loop adds pieces to `pending`, one drain job
 * at a time writes what is there; the connection waits (suspended) only
 * while PENDING_MAX bytes wait, or once the body is in and not yet written.
 * While a drain may run, `mu` guards what it shares with the loop (pending,
 * draining, held, drop, operate_after, orphaned) and only the drain reads
 * or writes `failed` and the reply. */
typedef struct request {
    sesh_server *srv;
    struct MHD_Connection *con;
    sesh_conn *conn;            /* the connection's entry in the table (NULL: none) */
    char *raw_uri;
    char *method;               /* ours: the log may outlive the connection's */
    uint64_t t0;
    int started;
    int authed;                 /* carried the token */
    int failed;                 /* reply holds an error; the rest of the body is dropped */
    int answered;               /* a worker did the operation: the reply is ready */
    struct MHD_Response *response;  /* made by that worker, off the loop */
    sesh_job job;               /* the one job of this request at a time */
    pthread_mutex_t mu;
    char *pending;              /* multipart bytes read, not yet written */
    size_t pending_len, pending_cap;
    char *writing;              /* the drain's: what it writes now */
    size_t writing_cap;
    int draining;               /* a drain job is queued or runs */
    int held;                   /* suspended until the drain takes what is pending */
    int drop;                   /* failed: further pieces are dropped */
    int operate_after;          /* the body is in: the drain runs the operation next */
    int orphaned;               /* the connection ended during a drain: it ends the request */
    enum MHD_RequestTerminationCode ended;
    sesh_call call;
    sesh_reply reply;
    char *body;                 /* a JSON body */
    size_t body_len, body_cap;
    int body_too_large;
    int status;                 /* sent, for the log */
    int http11;                 /* may be sent an interim (1xx) answer */
    sesh_watch client;          /* the connection, while code runs for it */
    gnutls_session_t tls;       /* its TLS session (NULL: plain HTTP) */
    int cut_tls;                /* the probe broke the TLS session: end the connection */
    int mcp;                    /* a request for /mcp: sesh_mcp_http() answers it */
    sesh_mcp_http_request mr;   /* ... with these headers (MHD's strings) and the body */
} request;

/* The interim answer that asks whether the client is still there (below):
 * 1 when it went out. On a TLS connection it goes through the TLS session
 * (raw bytes would break it); a record GnuTLS could not send at once stays
 * in the session ahead of anything libmicrohttpd would send after it, so
 * then the connection is cut before the loop has it back (cut_tls). */
static int send_probe(request *rq, int fd)
{
    static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
    if (!rq->tls) return send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0;
    ssize_t n;
    do n = gnutls_record_send(rq->tls, probe, sizeof probe - 1);
    while (n == GNUTLS_E_INTERRUPTED);
    if (n == (ssize_t)(sizeof probe - 1)) return 1;
    if (n == GNUTLS_E_AGAIN) rq->cut_tls = 1;
    return 0;
}

/* Whether the client of a request that runs code still waits for the answer.
 * Its end of the connection closing (a FIN) may be a half-close, which HTTP
 * allows, or the client gone: an interim 102 Processing, which an HTTP/1.1
 * client must accept, tells them apart, since a closed socket answers it with
 * a reset. Nothing may be sent to an HTTP/1.0 client: its code runs on.
 * Called on a worker while the connection is suspended, so libmicrohttpd
 * neither reads nor writes it meanwhile (its TLS session included). */
static int client_still_waiting(sesh_watch *w, short revents)
{
    request *rq = w->data;
    if (revents & (POLLHUP | POLLERR | POLLNVAL))
        return 0;
    if (revents & POLLRDHUP) {
        w->events = 0;                  /* from now on a reset or a hang-up only */
        if (!rq->http11)
            w->fd = -1;
        else if (!send_probe(rq, w->fd))
            return 0;
    }
    return 1;
}

/* A probe left half sent in the TLS session (send_probe): nothing may go
 * after it, so the connection ends unanswered (the client read nothing for
 * as long as its socket's buffers took to fill: it is not waiting). */
static void cut_tls(request *rq)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->con, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (rq->cut_tls && ci) shutdown(ci->connect_fd, SHUT_RDWR);
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con)
{
    request *rq = sesh_xcalloc(1, sizeof *rq);
    rq->srv = cls;
    rq->raw_uri = sesh_xstrdup(uri);   /* undecoded: route.c decodes its way */
    rq->t0 = sesh_now_ms();
    pthread_mutex_init(&rq->mu, NULL);
    sesh_reply_init(&rq->reply);
    return rq;
}

static void add_common_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Server", "sesh-pool");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

/* The reply as libmicrohttpd's response (NULL: out of memory); any thread. */
static struct MHD_Response *make_response(request *rq)
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
    if (!resp) return NULL;
    add_common_headers(resp);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    /* Not on /mcp: it would make MCP clients try OAuth. */
    if (r->status == 401 && !rq->mcp) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    rq->status = r->status ? r->status : 500;
    return resp;
}

/* Queues the response (made now unless a worker made it); MHD_NO on failure. */
static MHD_RESULT send_reply(struct MHD_Connection *con, request *rq)
{
    struct MHD_Response *resp = rq->response ? rq->response : make_response(rq);
    rq->response = NULL;
    if (!resp) return MHD_NO;
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

/* The connection's entry in the table of connections. */
static sesh_conn *conn_of(struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Whether a worker holds the connection (only the loop changes that). */
static int suspended(struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_SUSPENDED);
    return ci && ci->suspended == MHD_YES;
}

/* Whether a body follows the headers (a length above 0, or chunks). */
static int has_body(struct MHD_Connection *con)
{
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) return strtoll(cl, NULL, 10) > 0;
    return MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* The request's connection, for the code it runs to watch (sesh_watch). */
static void watch_client(request *rq, struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        rq->client = (sesh_watch){ .fd = ci->connect_fd, .events = POLLRDHUP,
                                   .still_waiting = client_still_waiting, .data = rq };
    ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    rq->tls = ci ? ci->tls_session : NULL;
}

static int64_t content_length(struct MHD_Connection *con)
{
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl ? strtoll(cl, NULL, 10) : -1;
}

/* /mcp (a query string aside) goes to the MCP server, when there is one. */
static int is_mcp(const sesh_server *srv, const char *raw_uri)
{
    return srv->mcp && strncmp(raw_uri, "/mcp", 4) == 0 && (raw_uri[4] == '\0' || raw_uri[4] == '?');
}

/* A request for /mcp: the MCP server's own checks (Origin, its key, not the
 * token) before any body is read; the body is gathered as JSON (take_json,
 * up to SESH_MCP_MAX_MESSAGE) for sesh_mcp_http() on a worker. */
static void begin_mcp(request *rq, struct MHD_Connection *con)
{
    sesh_call *call = &rq->call;
    rq->mcp = 1;
    call->method = rq->method;
    call->path = sesh_xstrdup("/mcp");
    call->body = SESH_BODY_JSON;
    call->content_length = content_length(con);
#define H(name) MHD_lookup_connection_value(con, MHD_HEADER_KIND, name)
    rq->mr = (sesh_mcp_http_request){
        .method = rq->method, .api_key = H("x-ms-apikey"), .authorization = H(MHD_HTTP_HEADER_AUTHORIZATION),
        .origin = H(MHD_HTTP_HEADER_ORIGIN), .session_id = H("Mcp-Session-Id"),
        .protocol_version = H("MCP-Protocol-Version"), .accept = H(MHD_HTTP_HEADER_ACCEPT),
        .content_type = H(MHD_HTTP_HEADER_CONTENT_TYPE), .client = &rq->client,
    };
#undef H
    rq->mr.body_len = call->content_length > 0 ? (size_t)call->content_length : 0;
    rq->failed = sesh_mcp_http_admit(rq->srv->mcp, &rq->mr, &rq->reply) != 0;
    rq->authed = !rq->failed || rq->reply.status == 413;     /* the key counts as the token does */
    rq->mr.body_len = 0;
}

/* The first call for a request: headers are in, no body yet. */
static void begin(request *rq, struct MHD_Connection *con, const char *method)
{
    sesh_server *srv = rq->srv;
    sesh_call *call = &rq->call;
    rq->method = sesh_xstrdup(method);
    watch_client(rq, con);
    if (is_mcp(srv, rq->raw_uri)) {
        begin_mcp(rq, con);
        return;
    }
    rq->authed = authorized(srv, con);
    if (sesh_call_parse(call, rq->method, rq->raw_uri, &rq->reply) != 0) {
        /* An unknown path still needs the token: say nothing to strangers. */
        if (!rq->authed) {
            sesh_reply_free(&rq->reply);
            sesh_reply_error(&rq->reply, 401, "Unauthorized", NULL,
                             "a valid 'Authorization: Bearer <token>' header is required");
        }
        rq->failed = 1;
        return;
    }
    if (!call->public_op && !rq->authed) {
        sesh_reply_error(&rq->reply, 401, "Unauthorized", NULL,
                         "a valid 'Authorization: Bearer <token>' header is required");
        rq->failed = 1;
        return;
    }
    call->host = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    call->operation_id = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "operation-id");
    call->content_type = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    call->content_length = content_length(con);
    if (rq->client.still_waiting) call->client = &rq->client;
    if (sesh_api_begin(srv->api, call, &rq->reply) != 0) rq->failed = 1;
}

/* A piece of an upload's raw body, on the drain: the API's multipart parser
 * reads it and streams the file to disk. Once it fails, no more is fed. */
static void take_multipart(request *rq, const char *data, size_t size)
{
    if (!rq->failed && sesh_api_upload_body(rq->srv->api, &rq->call, data, size, &rq->reply) != 0)
        rq->failed = 1;
}

/* A piece of a JSON body, kept in memory up to the cap; other bodies are dropped. */
static void take_json(request *rq, const char *data, size_t size)
{
    if (rq->call.body != SESH_BODY_JSON || rq->failed) return;   /* a body nobody asked for */
    if (rq->body_len + size > SESH_MAX_JSON_BODY) {
        rq->body_too_large = 1;
        rq->failed = 1;
        if (rq->mcp) {                  /* its refusal, in its words */
            rq->mr.body_len = rq->body_len + size;
            sesh_mcp_http_admit(rq->srv->mcp, &rq->mr, &rq->reply);
        } else {
            sesh_reply_error(&rq->reply, 413, "PayloadTooLarge", NULL,
                             "the body is larger than %u bytes", SESH_MAX_JSON_BODY);
        }
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

/* ---- steps on a worker ---- */

#define REQUEST_OF(j) ((request *)((char *)(j) - offsetof(request, job)))

/* Suspends the connection for a worker; counted, so that stop waits. */
static void suspend_for_worker(request *rq)
{
    sesh_server *srv = rq->srv;
    pthread_mutex_lock(&srv->mu);
    srv->suspended++;
    pthread_mutex_unlock(&srv->mu);
    sesh_conn_pause(rq->conn);
    MHD_suspend_connection(rq->con);
}

static void wake_loop(void *ctx);
static void run_mhd(sesh_server *srv);

/* The loop takes the connection back; rq may be gone once it has.
 * libmicrohttpd run by the application wakes nobody on a resume: that is
 * ours to do. When no thread runs libmicrohttpd just now (the loop's thread
 * waits for events) and `answer` allows (the caller holds no lock the
 * request's handler takes), this thread runs it itself: the answer goes out
 * at once, without waking the loop's thread. */
static void back_to_loop(request *rq, int answer)
{
    sesh_server *srv = rq->srv;
    if (answer) sesh_workers_loop_work(srv->workers, 1);
    MHD_resume_connection(rq->con);
    int pending = 1;
    if (answer && pthread_mutex_trylock(&srv->loop_mu) == 0) {
        if (!srv->loop_off) {
            MHD_UNSIGNED_LONG_LONG left;
            for (int i = 0; i < 4 && pending; i++) {
                run_mhd(srv);
                pending = MHD_get_timeout(srv->daemon, &left) == MHD_YES && left == 0;
            }
        }
        pthread_mutex_unlock(&srv->loop_mu);
    }
    if (answer) sesh_workers_loop_work(srv->workers, 0);
    if (pending) wake_loop(srv);
    pthread_mutex_lock(&srv->mu);
    if (--srv->suspended == 0) pthread_cond_broadcast(&srv->drained);
    pthread_mutex_unlock(&srv->mu);
}

/* libmicrohttpd (0.9.75) takes a resumed connection back by reading first,
 * as it did before the suspension: a client that half-closed its side would
 * see its connection end before the answer. A connection with a timeout of
 * its own is looked at before any read, and its answer is queued then: so it
 * has one (none) from the hand-over of the operation until the answer. */
static void answer_before_reading(request *rq, int on)
{
    MHD_set_connection_option(rq->con, MHD_CONNECTION_OPTION_TIMEOUT, on ? 0u : rq->srv->idle_timeout);
}

/* The operation. The session is let go of here too: when it was deleted
 * meanwhile, the last one to let go removes its files. */
static void operation_step(sesh_job *job)
{
    request *rq = REQUEST_OF(job);
    if (rq->mcp) {
        rq->mr.body = rq->body;
        rq->mr.body_len = rq->body_len;
        sesh_mcp_http(rq->srv->mcp, &rq->mr, &rq->reply);
    } else if (!rq->failed) {
        sesh_api_finish(rq->srv->api, &rq->call, rq->body, rq->body_len, &rq->reply);
    }
    sesh_session_release(rq->call.session);
    rq->call.session = NULL;
    cut_tls(rq);
    rq->response = make_response(rq);
    rq->answered = 1;
    back_to_loop(rq, 1);
}

/* Has a worker run the operation (the thread that runs this round of the
 * loop, once the round is over: see workers.h); MHD_YES. */
static MHD_RESULT operate_on_worker(request *rq)
{
    sesh_server *srv = rq->srv;
    answer_before_reading(rq, 1);
    suspend_for_worker(rq);
    rq->job.run = operation_step;
    rq->job.keep_loop = 1;              /* its connection waits: no event is due (workers.h) */
    sesh_workers_submit(srv->workers, &rq->job);
    return MHD_YES;
}

static void log_request(request *rq, enum MHD_RequestTerminationCode why);
static void free_request(request *rq);

/* Writes what the loop read of a multipart body, until nothing is pending;
 * then runs the operation if the body is all in, or ends the request if
 * its connection ended meanwhile. */
static void drain_step(sesh_job *job)
{
    request *rq = REQUEST_OF(job);
    pthread_mutex_lock(&rq->mu);
    while (rq->pending_len > 0 && !rq->orphaned) {
        char *data = rq->pending;
        size_t len = rq->pending_len, cap = rq->pending_cap;
        rq->pending = rq->writing;
        rq->pending_cap = rq->writing_cap;
        rq->pending_len = 0;
        rq->writing = data;
        rq->writing_cap = cap;
        if (rq->held) {                         /* room again: read on while this is written */
            rq->held = 0;
            sesh_conn_resume_body(rq->conn);
            back_to_loop(rq, 0);            /* rq->mu held: the handler takes it */
        }
        pthread_mutex_unlock(&rq->mu);
        take_multipart(rq, data, len);
        pthread_mutex_lock(&rq->mu);
        rq->drop = rq->failed;
    }
    rq->draining = 0;
    int operate = rq->operate_after, orphaned = rq->orphaned;
    rq->operate_after = 0;
    pthread_mutex_unlock(&rq->mu);
    if (orphaned) {
        log_request(rq, rq->ended);
        free_request(rq);
    } else if (operate) {
        operation_step(job);
    }
}

/* A piece of a multipart body, for the drain; MHD_YES. */
static MHD_RESULT take_piece(request *rq, const char *data, size_t n)
{
    pthread_mutex_lock(&rq->mu);
    if (!rq->draining) rq->drop = rq->failed;       /* no drain runs: failed is the loop's */
    if (rq->drop) {
        pthread_mutex_unlock(&rq->mu);
        return MHD_YES;
    }
    if (rq->pending_len + n > rq->pending_cap) {
        rq->pending_cap = rq->pending_len + n > PENDING_MAX ? rq->pending_len + n : PENDING_MAX;
        rq->pending = sesh_xrealloc(rq->pending, rq->pending_cap);
    }
    memcpy(rq->pending + rq->pending_len, data, n);
    rq->pending_len += n;
    if (!rq->draining) {
        rq->draining = 1;
        rq->job.run = drain_step;
        rq->job.keep_loop = 0;          /* the loop reads on meanwhile */
        sesh_workers_submit(rq->srv->workers, &rq->job);
    }
    if (rq->pending_len >= PENDING_MAX) {
        rq->held = 1;
        suspend_for_worker(rq);
    }
    pthread_mutex_unlock(&rq->mu);
    return MHD_YES;
}

/* The body is in. MHD_YES when a drain still writes it and will run the
 * operation; MHD_NO when nothing is pending any more. */
static int operate_after_drain(request *rq)
{
    pthread_mutex_lock(&rq->mu);
    int draining = rq->draining;
    if (draining) {
        rq->operate_after = 1;
        answer_before_reading(rq, 1);
        suspend_for_worker(rq);
    }
    pthread_mutex_unlock(&rq->mu);
    return draining;
}

static MHD_RESULT handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                         const char *version, const char *upload_data, size_t *upload_size, void **ctx)
{
    request *rq = *ctx;
    if (!rq) return MHD_NO;                    /* no URI logger call: cannot happen */
    if (rq->answered) {
        answer_before_reading(rq, 0);
        return send_reply(con, rq);
    }
    if (!rq->started) {
        rq->started = 1;
        rq->con = con;
        rq->conn = conn_of(con);
        rq->http11 = version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        begin(rq, con, method);
        sesh_conn_headers_done(rq->conn, rq->authed, has_body(con));
        /* A large body refused at once is not read: answer now (a client
         * that sent Expect: 100-continue never sends it). A small one is
         * read and dropped, so the client is not reset mid-send. */
        if (rq->failed && rq->call.content_length > (1 << 20)) {
            sesh_conn_pause(rq->conn);
            return send_reply(con, rq);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        /* Chunks of a chunked body come in one go even once the connection
         * is suspended: those wait until the loop has it back. */
        if (suspended(con)) return MHD_YES;
        size_t n = *upload_size;
        *upload_size = 0;
        sesh_conn_body(rq->conn, n);
        if (rq->call.body == SESH_BODY_MULTIPART) return take_piece(rq, upload_data, n);
        take_json(rq, upload_data, n);
        return MHD_YES;
    }
    sesh_conn_pause(rq->conn);
    if (rq->call.body == SESH_BODY_MULTIPART && operate_after_drain(rq)) return MHD_YES;
    if (!rq->failed && rq->call.op != SESH_OP_HEALTH) return operate_on_worker(rq);
    if (!rq->failed) sesh_api_finish(rq->srv->api, &rq->call, rq->body, rq->body_len, &rq->reply);
    return send_reply(con, rq);
}

static void free_request(request *rq)
{
    if (rq->response) MHD_destroy_response(rq->response);
    sesh_call_free(&rq->call);
    sesh_reply_free(&rq->reply);
    pthread_mutex_destroy(&rq->mu);
    free(rq->pending);
    free(rq->writing);
    free(rq->body);
    free(rq->raw_uri);
    free(rq->method);
    free(rq);
}

static void free_step(sesh_job *job)
{
    free_request(REQUEST_OF(job));
}

static void log_request(request *rq, enum MHD_RequestTerminationCode why)
{
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
}

static void completed(void *cls, struct MHD_Connection *con, void **ctx, enum MHD_RequestTerminationCode why)
{
    sesh_server *srv = cls;
    request *rq = *ctx;
    if (!rq) return;
    *ctx = NULL;
    sesh_conn_done(conn_of(con));
    pthread_mutex_lock(&rq->mu);
    int draining = rq->draining;
    if (draining) {                             /* the drain ends it */
        rq->orphaned = 1;
        rq->ended = why;
    }
    pthread_mutex_unlock(&rq->mu);
    if (draining) return;
    log_request(rq, why);
    /* A request cut short may still hold a session (whose files may go
     * with it) or an upload's temporary file. */
    if (rq->call.session || rq->call.upload) {
        rq->job.run = free_step;
        rq->job.keep_loop = 1;
        sesh_workers_submit(srv->workers, &rq->job);
        return;
    }
    free_request(rq);
}

/* ---- connections ---- */

static MHD_RESULT admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    sesh_server *srv = cls;
    return sesh_conns_admit(srv->conns, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* libmicrohttpd says CLOSED before it closes the descriptor (daemon.c), so
 * the table never holds a descriptor number that was reused. */
static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    sesh_server *srv = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = sesh_conns_open(srv->conns, fd ? fd->connect_fd : -1,
                                          addr ? addr->client_addr : NULL);
    } else if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
        sesh_conns_close(srv->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* libmicrohttpd's messages, at most MHD_LOG_BURST a second: any client can
 * make it say something (a request cut short says one line), and the log
 * must not grow with an attacker's connections. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    sesh_server *srv = cls;
    uint64_t second = sesh_now_ms() / 1000;
    pthread_mutex_lock(&srv->mu);
    unsigned left_out = 0;
    if (second != srv->log_second) {
        left_out = srv->log_dropped;
        srv->log_second = second;
        srv->log_lines = srv->log_dropped = 0;
    }
    int keep = srv->log_lines++ < MHD_LOG_BURST;
    if (!keep) srv->log_dropped++;
    pthread_mutex_unlock(&srv->mu);
    if (left_out) sesh_log("http: %u more messages left out", left_out);
    if (!keep) return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    sesh_log("http: %s", buf);
}

/* ---- the loop ---- */

static unsigned connections(sesh_server *srv)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

/* Milliseconds until libmicrohttpd must run with no event (-1: never). */
static int loop_timeout(void *ctx)
{
    sesh_server *srv = ctx;
    MHD_UNSIGNED_LONG_LONG left;
    pthread_mutex_lock(&srv->loop_mu);
    int timeout = MHD_get_timeout(srv->daemon, &left) == MHD_YES ? (left > INT_MAX ? INT_MAX : (int)left) : -1;
    pthread_mutex_unlock(&srv->loop_mu);
    return timeout;
}

/* One round of the event loop, on whichever pool thread leads it: wait for
 * libmicrohttpd's sockets (or its next timeout, or a wake-up), then let it
 * handle what is ready. */
static void loop_round(void *ctx)
{
    sesh_server *srv = ctx;
    struct epoll_event ev[2];
    int n = epoll_wait(srv->loop_ep, ev, 2, loop_timeout(srv));
    for (int i = 0; i < n; i++) {
        uint64_t count;
        if (ev[i].data.fd == srv->wake_fd && read(srv->wake_fd, &count, sizeof count) < 0) { /* taken already */ }
    }
    pthread_mutex_lock(&srv->loop_mu);
    run_mhd(srv);
    pthread_mutex_unlock(&srv->loop_mu);
}

/* One run of libmicrohttpd: what is ready is handled. loop_mu held. */
static void run_mhd(sesh_server *srv)
{
    /* At its limit libmicrohttpd stops listening, and listens again only at
     * the start of a run: when this one brought it below, one more. */
    unsigned before = connections(srv);
    MHD_run(srv->daemon);
    if (before >= srv->max_connections && connections(srv) < srv->max_connections) MHD_run(srv->daemon);
}

static void wake_loop(void *ctx)
{
    sesh_server *srv = ctx;
    uint64_t one = 1;
    if (write(srv->wake_fd, &one, sizeof one) < 0) { /* an eventfd only fails when full: awake */ }
}

/* The certificate for HTTPS (tls.h): 0, or -1 with *err. */
static int start_tls(sesh_server *srv, const sesh_server_config *cfg, char **err)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK2) != MHD_YES) {
        *err = sesh_xstrdup("this libmicrohttpd was built without GnuTLS 3.6.3 or later: no --tls-cert");
        return -1;
    }
    char *about = NULL;
    if (sesh_tls_load(cfg->tls_cert, cfg->tls_key, &about, err) != 0) return -1;
    srv->tls = 1;
    sesh_log("tls: certificate %s (%s)", cfg->tls_cert, about ? about : "");
    free(about);
    return 0;
}

void sesh_server_reload_tls(sesh_server *srv)
{
    if (!srv->tls) return;
    char *about = NULL, *why = NULL;
    if (sesh_tls_reload(&about, &why) == 0)
        sesh_log("tls: certificate reloaded (%s): new connections get it", about ? about : "");
    else
        sesh_log("tls: certificate not reloaded, the one in use stays: %s", why ? why : "?");
    free(about);
    free(why);
}

static void free_server(sesh_server *srv)
{
    if (srv->tls) sesh_tls_unload();
    sesh_workers_free(srv->workers);
    sesh_conns_free(srv->conns);
    if (srv->wake_fd >= 0) close(srv->wake_fd);
    if (srv->loop_ep >= 0) close(srv->loop_ep);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->loop_mu);
    pthread_cond_destroy(&srv->drained);
    free(srv->token);
    free(srv);
}

sesh_server *sesh_server_start(const sesh_server_config *cfg, sesh_api *api, char **err)
{
    sesh_server *srv = sesh_xcalloc(1, sizeof *srv);
    srv->api = api;
    srv->token = sesh_xstrdup(cfg->token);
    srv->mcp = cfg->mcp;
    srv->idle_timeout = (unsigned)(cfg->idle_timeout > 0 ? cfg->idle_timeout : 60);
    srv->wake_fd = srv->loop_ep = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->loop_mu, NULL);
    pthread_cond_init(&srv->drained, NULL);
    unsigned max_connections = (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 256);
    srv->max_connections = max_connections;
    unsigned idle_timeout = srv->idle_timeout;
    int header_timeout = cfg->header_timeout > 0 ? cfg->header_timeout : 30;
    sesh_conns_config cc = {
        .max_connections = (int)max_connections, .max_per_client = cfg->max_per_client,
        .header_timeout_ms = header_timeout * 1000,
        .keepalive_timeout_ms = (int)(idle_timeout > (unsigned)header_timeout ? idle_timeout : (unsigned)header_timeout) * 1000,
        .min_body_rate = cfg->min_body_rate,
    };
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->conns = sesh_conns_new(&cc, err);
    srv->workers = srv->conns ? sesh_workers_new(KEEP_WORKERS, cfg->max_workers, loop_round, loop_timeout,
                                                 srv, err) : NULL;
    if (!srv->workers || srv->wake_fd < 0 || (cfg->tls_cert && start_tls(srv, cfg, err) != 0)) {
        if (srv->wake_fd < 0 && err && !*err) *err = sesh_printf("cannot make an eventfd: %s", strerror(errno));
        free_server(srv);
        return NULL;
    }
    /* HTTPS: each handshake asks tls.c for the certificate in use */
    struct MHD_OptionItem tls_options[] = {
        { srv->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK2 : MHD_OPTION_END, 0, (void *)sesh_tls_retrieve },
        { MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES },
        { MHD_OPTION_END, 0, NULL },
    };
    /* epoll, run by the pool's threads in turn (workers.h), not by a thread
     * of libmicrohttpd's own: the thread that reads a request runs it */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (srv->tls ? MHD_USE_TLS : 0);
    srv->daemon = MHD_start_daemon(
        flags, 0, admit, srv, handle, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)cfg->listen_fd,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv,
        MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_LIMIT, max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_ARRAY, tls_options,
        MHD_OPTION_END);
    const union MHD_DaemonInfo *info = srv->daemon ? MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!info) {
        if (err) *err = sesh_xstrdup("libmicrohttpd could not start on the listening socket");
        if (srv->daemon) MHD_stop_daemon(srv->daemon);
        free_server(srv);
        return NULL;
    }
    srv->epoll_fd = info->epoll_fd;
    /* The loop's wait: libmicrohttpd's descriptor and the wake-up, in one
     * descriptor the workers' standby can watch too (workers.h). */
    srv->loop_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event mhd_ev = { .events = EPOLLIN, .data.fd = srv->epoll_fd };
    struct epoll_event wake_ev = { .events = EPOLLIN, .data.fd = srv->wake_fd };
    if (srv->loop_ep < 0 || epoll_ctl(srv->loop_ep, EPOLL_CTL_ADD, srv->epoll_fd, &mhd_ev) != 0 ||
        epoll_ctl(srv->loop_ep, EPOLL_CTL_ADD, srv->wake_fd, &wake_ev) != 0) {
        if (err) *err = sesh_printf("cannot make the loop's epoll set: %s", strerror(errno));
        MHD_stop_daemon(srv->daemon);
        free_server(srv);
        return NULL;
    }
    sesh_workers_start_loop(srv->workers, srv->loop_ep);
    return srv;
}

void sesh_server_stop(sesh_server *srv)
{
    if (!srv) return;
    /* No round runs any more, so nothing is suspended anew; libmicrohttpd
     * must not stop with a connection suspended: the operations under way
     * end (the manager was stopped) and give theirs back. */
    sesh_workers_stop_loop(srv->workers, wake_loop);
    pthread_mutex_lock(&srv->loop_mu);
    srv->loop_off = 1;
    pthread_mutex_unlock(&srv->loop_mu);
    pthread_mutex_lock(&srv->mu);
    while (srv->suspended > 0) pthread_cond_wait(&srv->drained, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    MHD_stop_daemon(srv->daemon);
    free_server(srv);          /* after the daemon: its last completions hand work to the workers */
}
