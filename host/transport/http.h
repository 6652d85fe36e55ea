/*
 * http.h — the transport: HTTP requests through libcurl, knowing nothing of Lua.
 *
 * Every transfer runs on one process-wide libcurl multi handle, so a single
 * request and many parallel ones share one engine: the same retries, the same
 * keep-alive connection cache, the same Ctrl-C. A caller starts transfers,
 * drives the engine with sesh_http_step() (or waits on one transfer with
 * sesh_http_wait()), then reads each finished transfer's result.
 *
 * The transport only moves bytes: it draws nothing and knows no terminal. What
 * libcurl knows it leaves to libcurl (headers, Retry-After); the bytes moved so
 * far are reported by sesh_http_progress() for whoever draws a progress bar.
 *
 * The transport is single-threaded: call it from one thread. The one exception
 * is sesh_http_cancel_all(), which is async-signal-safe.
 */
#ifndef SESH_HTTP_H
#define SESH_HTTP_H

#include <stddef.h>

#ifndef SESH_VERSION               /* the Makefile passes sesh.h's */
#error "SESH_VERSION is not defined: build with the Makefile"
#endif

#define SESH_HTTP_USER_AGENT "sesh/" SESH_VERSION " (Language=Lua)"
#define SESH_HTTP_MAX_BODY_DEFAULT ((size_t)256 << 20)   /* in-memory answer cap */

typedef struct sesh_http_client sesh_http_client;
typedef struct sesh_http_transfer sesh_http_transfer;

/* Why a transfer failed. Messages never hold a header value or a URL's secrets. */
typedef enum {
    SESH_HTTP_OK = 0,
    SESH_HTTP_ETRANSPORT,      /* libcurl: connect, reset, timeout, TLS...; code = CURLcode */
    SESH_HTTP_EINTERRUPTED,    /* Ctrl-C or sesh_http_cancel_all() */
    SESH_HTTP_ETOO_LARGE,      /* in-memory answer above max_body */
    SESH_HTTP_EFILE,           /* a local file: body_file, multipart file, output_file */
    SESH_HTTP_EUSAGE           /* a bad request description (bad method, missing url) */
} sesh_http_kind;

typedef struct {
    sesh_http_kind kind;
    int code;                  /* CURLcode for ETRANSPORT, errno for EFILE, else 0 */
    char message[512];
} sesh_http_error;

typedef struct {
    double connect_timeout;    /* seconds; 0 = libcurl's default (300) */
    double timeout;            /* seconds, whole request; 0 = none */
    const char *unix_socket;   /* NULL: TCP */
    const char *user_agent;    /* NULL: SESH_HTTP_USER_AGENT */
    const char *ca_file;       /* PEM bundle to trust instead of the system's; NULL: system */
} sesh_http_client_options;

/* One part of a multipart/form-data body: in-memory data or a file streamed from disk. */
typedef struct {
    const char *name;
    const char *filename;      /* NULL: none for data, the file's base name for file */
    const char *content_type;  /* NULL: none */
    const char *data;          /* not copied: must live until the transfer is freed */
    size_t data_len;
    const char *file;          /* path; read while sending, never whole */
} sesh_http_part;

/* When to try again. max = attempts in all (1: no retry). */
typedef struct {
    int max;
    double total;              /* seconds from the first attempt; 0 = no limit */
    double base;               /* first backoff ceiling in seconds (full jitter) */
    double cap;                /* backoff ceiling in seconds */
    const int *statuses;       /* HTTP statuses worth another attempt */
    size_t nstatuses;
} sesh_http_retry;

typedef struct {
    const char *method;        /* NULL: GET, or POST when there is a body */
    const char *url;
    const char *const *headers;    /* "Name: value" lines, copied */
    size_t nheaders;
    const char *body;          /* not copied: must live until the transfer is freed */
    size_t body_len;
    int has_body;
    const char *body_file;     /* streamed from disk */
    const sesh_http_part *parts;
    size_t nparts;
    const char *output_file;   /* stream a 2xx answer body there (temp file, then rename) */
    double timeout;            /* seconds; < 0: the client's */
    double connect_timeout;    /* seconds; < 0: the client's */
    long low_speed_limit;      /* bytes/s; abort when slower for low_speed_time s */
    long low_speed_time;
    size_t max_body;           /* 0: SESH_HTTP_MAX_BODY_DEFAULT */
    sesh_http_retry retry;
    /* May the server see this request twice? -1: by method (GET, HEAD, OPTIONS, PUT,
     * DELETE yes; POST, PATCH no). Yes: with retry.max > 1, failures after sending are
     * retried too. No: libcurl's silent re-send of a request whose reused connection died
     * unanswered is refused (the body cannot rewind), which fails the transfer with a
     * clear error instead; the kept-alive connection is still used. */
    int idempotent;
    int progress;              /* non-zero: counted in sesh_http_progress() */
} sesh_http_request;

typedef struct {
    const char *name;          /* lower-case */
    const char *value;
} sesh_http_header;

/* Clients: options and a reusable easy handle. */
sesh_http_client *sesh_http_client_new(const sesh_http_client_options *opt, sesh_http_error *err);
void sesh_http_client_free(sesh_http_client *c);

/* A request that is set up and queued; NULL (err filled) when it cannot start. */
sesh_http_transfer *sesh_http_start(sesh_http_client *c, const sesh_http_request *r,
                                    sesh_http_error *err);
/* Drive every transfer for up to timeout_ms (at most 100 ms, so that Ctrl-C and due
 * retries are noticed); returns how many are still running. With none in flight
 * it sleeps out the timeout, for callers that wait for time rather than bytes. */
int sesh_http_step(int timeout_ms);
/* Drive the engine until t is done. */
void sesh_http_wait(sesh_http_transfer *t);
int sesh_http_done(const sesh_http_transfer *t);
/* Aborts (if running), removes any temp file and frees. */
void sesh_http_transfer_free(sesh_http_transfer *t);

/* Results of a finished transfer. */
const sesh_http_error *sesh_http_result_error(const sesh_http_transfer *t);  /* kind OK or why */
long sesh_http_result_status(const sesh_http_transfer *t);
/* Seconds the answer's Retry-After asked for (delta-seconds or an HTTP date); -1: none. */
double sesh_http_result_retry_after(const sesh_http_transfer *t);
int sesh_http_result_attempts(const sesh_http_transfer *t);
long sesh_http_result_connects(const sesh_http_transfer *t);  /* new connections it opened */
size_t sesh_http_result_nheaders(const sesh_http_transfer *t);
const sesh_http_header *sesh_http_result_header(const sesh_http_transfer *t, size_t i);
/* In-memory body; NULL when it went to output_file. */
const char *sesh_http_result_body(const sesh_http_transfer *t, size_t *len);
int sesh_http_result_to_file(const sesh_http_transfer *t);

/* What the running transfers that asked for progress have moved, summed: one
 * bar for all of them. uploading: the one counted last is sending its body. */
typedef struct {
    int transfers;
    int uploading;
    long long done, total;     /* bytes */
    double started;            /* when the earliest of them started (sesh_monotonic) */
} sesh_http_progress_figures;
void sesh_http_progress(sesh_http_progress_figures *p);

/* Called with the figures whenever such a transfer moves bytes, and when one ends
 * (then it is no longer counted: transfers == 0 means none is left). From inside
 * sesh_http_step; one hook per process (the binding's progress bar). */
typedef void (*sesh_http_progress_hook)(const sesh_http_progress_figures *p);
void sesh_http_set_progress_hook(sesh_http_progress_hook hook);

/* Ctrl-C: between guard_begin and guard_end (they nest) SIGINT aborts every transfer
 * instead of reaching the previous handler, which is restored at the outermost end. */
void sesh_http_guard_begin(void);
void sesh_http_guard_end(void);
int sesh_http_interrupted(void);   /* SIGINT or cancel seen since the outermost begin */
/* Abort every transfer in flight (async-signal-safe; for the console). */
void sesh_http_cancel_all(void);

/* curl_global_init once; sesh_http_shutdown frees the engine (optional, at exit). */
int sesh_http_init(sesh_http_error *err);
void sesh_http_shutdown(void);

#endif
