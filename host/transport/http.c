/*
 * http.c — the transport: every request is a transfer on one libcurl multi handle.
 *
 * A transfer lives in three states: RUNNING (its easy handle is in the multi),
 * WAITING (between two attempts, sleeping until next_at) and DONE. Only
 * sesh_http_step() moves transfers between them, so a single request
 * (sesh_http_wait) and a crowd of parallel ones share the retry logic, the
 * connection cache and Ctrl-C.
 *
 * Bodies never have to fit in memory: uploads are read from disk by curl's read
 * callback (or curl_mime_filedata), downloads are written to a temp file beside
 * output_file and renamed over it only when the transfer succeeded.
 *
 * libcurl does what it knows: it parses the answer's headers (read back with
 * curl_easy_nextheader), Retry-After (CURLINFO_RETRY_AFTER) and the bytes moved
 * (the progress callback, summed by sesh_http_progress for whoever draws a bar).
 */
#include "transport/http.h"

#include "common/common.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POLL_SLICE_MS 100            /* how soon a Ctrl-C or a due retry is noticed */
#define MAX_HEADER_BYTES (256 << 10) /* a server sending more is broken or hostile */
#define DOWNLOAD_BUFFER (512 << 10)  /* libcurl's receive buffer for output_file */
#define UPLOAD_BUFFER (512 << 10)    /* and its send buffer for uploads */
/* Idle kept-alive connections older than this are closed by us, not reused: the pool
 * (host/pool/server.c, MHD_OPTION_CONNECTION_TIMEOUT, 60 s by default) and most servers
 * drop idle ones later, so we are the side that closes and a request never races a
 * server's close. */
#define MAX_CONNECTION_IDLE_S 30L

struct sesh_http_client {
    CURL *easy;                      /* reused by one request at a time */
    int busy;                        /* a transfer is using easy */
    int closing;                     /* freed by that transfer when it ends */
    double connect_timeout, timeout;
    char *unix_socket, *user_agent, *ca_file;
};

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

/* A multipart part sent straight from the caller's memory (no copy of a big string). */
typedef struct {
    const char *data;
    size_t len, pos;
} memory_reader;

enum { RUNNING, WAITING, DONE };

struct sesh_http_transfer {
    sesh_http_client *client;
    CURL *easy;
    int own_easy;                    /* a fresh handle: the client's was busy */
    int state;
    struct curl_slist *headers;
    curl_mime *mime;
    memory_reader *readers;          /* one per in-memory part */
    FILE *upload;                    /* body_file */
    int no_rewind;                   /* not idempotent: libcurl must never re-send it */
    int sends;                       /* times libcurl began sending it, this attempt */
    int refused_resend;              /* on_prereq stopped libcurl's silent re-send */
    char *output_file, *tmp_path;
    int out;                         /* output_file's temp file, -1 when none */
    char *out_buf;                   /* DOWNLOAD_BUFFER bytes gathered before a write */
    size_t out_len;
    buffer body;
    size_t max_body;
    sesh_http_header *hdrs;          /* the answer's, copied from libcurl when it ended */
    size_t nhdrs;
    double retry_after;              /* seconds the answer's Retry-After asks; -1: none */
    long status;
    int attempts;
    long connects;                   /* connections opened, over every attempt */
    sesh_http_retry retry;
    int *statuses;
    double started, next_at;
    int too_large, write_errno, to_file;
    size_t header_bytes;
    sesh_http_error err;
    char *what;                      /* "METHOD url" with secrets masked, for messages */
    char errbuf[CURL_ERROR_SIZE];
    int idempotent;
    int progress;                    /* counted in sesh_http_progress */
    curl_off_t up_now, up_total, down_now, down_total;   /* as the progress callback saw */
    struct sesh_http_transfer *prev, *next;
};

static CURLM *multi;
static CURLSH *share;                        /* TLS sessions, shared by every handle */
static sesh_http_transfer *transfers;        /* every transfer not DONE */
static int curl_ready;
static volatile sig_atomic_t cancel_flag;
static int guard_depth;
static struct sigaction previous_sigint;
static uint64_t rng_state;
static sesh_http_progress_hook progress_hook;

/* ---- small helpers ---- */

static void set_error(sesh_http_error *e, sesh_http_kind kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(sesh_http_error *e, sesh_http_kind kind, int code, const char *fmt, ...) {
    va_list ap;
    e->kind = kind;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static double random01(void) {
    if (rng_state == 0 && sesh_random_fill(&rng_state, sizeof rng_state) != 0)
        rng_state = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
    if (rng_state == 0)
        rng_state = 0x9e3779b97f4a7c15ull;
    rng_state ^= rng_state << 13;      /* xorshift64: jitter needs spread, not secrecy */
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}

static int buffer_append(buffer *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* A query parameter whose name says it is a secret has its value masked. A session
 * identifier is one too: whoever knows it can use the session (pool-api.md, 3). */
static int secret_param(const char *name, size_t len) {
    static const char *words[] = {"token", "sig", "key", "secret", "password", "code", "auth",
                                  "identifier"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t w = strlen(words[i]);
        for (size_t j = 0; j + w <= len; j++)
            if (strncasecmp(name + j, words[i], w) == 0)
                return 1;
    }
    return 0;
}

/* "METHOD url" for messages: no user:password@, no secret query values. */
static char *describe(const char *method, const char *url) {
    buffer b = {0};
    buffer_append(&b, method, strlen(method));
    buffer_append(&b, " ", 1);
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strchr(host, '@'), *slash = strpbrk(host, "/?#");
    buffer_append(&b, url, host - url);
    if (at && (!slash || at < slash))
        host = at + 1;
    const char *q = strchr(host, '?');
    buffer_append(&b, host, q ? (size_t)(q - host) : strlen(host));
    while (q && *q) {
        buffer_append(&b, q, 1);              /* '?' or '&' */
        const char *name = q + 1, *end = name + strcspn(name, "&#");
        const char *eq = memchr(name, '=', end - name);
        if (eq && secret_param(name, eq - name)) {
            buffer_append(&b, name, eq + 1 - name);
            buffer_append(&b, "***", 3);
        } else {
            buffer_append(&b, name, end - name);
        }
        q = *end == '&' ? end : NULL;
    }
    return b.data ? b.data : strdup("?");
}

/* ---- engine list ---- */

static void link_transfer(sesh_http_transfer *t) {
    t->prev = NULL;
    t->next = transfers;
    if (transfers)
        transfers->prev = t;
    transfers = t;
}

static void unlink_transfer(sesh_http_transfer *t) {
    if (t->prev)
        t->prev->next = t->next;
    else if (transfers == t)
        transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* ---- global state ---- */

/* Processes a script starts (the local pool, a shell) must not inherit our sockets:
 * a daemon holding a keep-alive connection open would keep it alive for its life. */
static void set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static int on_socket(void *ud, curl_socket_t fd, curlsocktype purpose) {
    (void)ud;
    (void)purpose;
    set_cloexec(fd);
    return CURL_SOCKOPT_OK;
}

/* The multi handle opens a socketpair (for curl_multi_wakeup) out of our reach:
 * whatever descriptors appear while it is created get close-on-exec. */
static CURLM *new_multi(void) {
    enum { SCAN = 256 };
    unsigned char open_before[SCAN];
    for (int fd = 0; fd < SCAN; fd++)
        open_before[fd] = fcntl(fd, F_GETFD) >= 0;
    CURLM *m = curl_multi_init();
    for (int fd = 0; fd < SCAN; fd++)
        if (!open_before[fd] && fcntl(fd, F_GETFD) >= 0)
            set_cloexec(fd);
    return m;
}

int sesh_http_init(sesh_http_error *err) {
    if (!curl_ready) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            set_error(err, SESH_HTTP_ETRANSPORT, rc, "libcurl: %s", curl_easy_strerror(rc));
            return -1;
        }
        curl_ready = 1;
    }
    if (!multi && !(multi = new_multi())) {
        set_error(err, SESH_HTTP_ETRANSPORT, 0, "libcurl: cannot create a multi handle");
        return -1;
    }
    /* A fresh connection (a POST, a parallel request) resumes a TLS session another
     * handle made, instead of a full handshake. One thread: no lock callbacks. */
    if (!share && (share = curl_share_init()))
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return 0;
}

void sesh_http_shutdown(void) {
    while (transfers)
        sesh_http_transfer_free(transfers);
    if (multi)
        curl_multi_cleanup(multi);
    multi = NULL;
    if (share && curl_share_cleanup(share) == CURLSHE_OK)   /* else a client still uses it */
        share = NULL;
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = 0;
}

/* ---- Ctrl-C ---- */

static void on_sigint(int sig) {
    (void)sig;
    cancel_flag = 1;
}

void sesh_http_cancel_all(void) {
    cancel_flag = 1;
}

int sesh_http_interrupted(void) {
    return cancel_flag != 0;
}

void sesh_http_guard_begin(void) {
    if (guard_depth++ > 0)
        return;
    cancel_flag = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;      /* no SA_RESTART: poll must wake up */
    sigemptyset(&sa.sa_mask);
    /* Swapped in one call (this runs for every request); a background job
     * that ignored Ctrl-C gets its SIG_IGN back and stays deaf to it. */
    sigaction(SIGINT, &sa, &previous_sigint);
    if (previous_sigint.sa_handler == SIG_IGN)
        sigaction(SIGINT, &previous_sigint, NULL);
}

void sesh_http_guard_end(void) {
    if (guard_depth == 0 || --guard_depth > 0)
        return;
    sigaction(SIGINT, &previous_sigint, NULL);
}

/* ---- clients ---- */

static void client_destroy(sesh_http_client *c) {
    curl_easy_cleanup(c->easy);
    free(c->unix_socket);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
}

/* The CA bundle a client trusts when its options name none: the variables
 * curl's own tool reads (CURL_CA_BUNDLE first, then OpenSSL's SSL_CERT_FILE),
 * so a private CA set up for curl, Python's requests or httpx works here too.
 * NULL: libcurl's default, the system's bundle. */
static const char *ca_file_from_env(void) {
    static const char *const names[] = {"CURL_CA_BUNDLE", "SSL_CERT_FILE", NULL};
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && v[0])
            return v;
    }
    return NULL;
}

sesh_http_client *sesh_http_client_new(const sesh_http_client_options *opt, sesh_http_error *err) {
    if (sesh_http_init(err) < 0)
        return NULL;
    sesh_http_client *c = calloc(1, sizeof *c);
    if (!c || !(c->easy = curl_easy_init())) {
        free(c);
        set_error(err, SESH_HTTP_ETRANSPORT, 0, "libcurl: cannot create a handle");
        return NULL;
    }
    c->connect_timeout = opt->connect_timeout;
    c->timeout = opt->timeout;
    c->unix_socket = dup_or_null(opt->unix_socket);
    const char *ca_file = opt->ca_file ? opt->ca_file : ca_file_from_env();
    c->ca_file = dup_or_null(ca_file);
    c->user_agent = strdup(opt->user_agent ? opt->user_agent : SESH_HTTP_USER_AGENT);
    /* out of memory must not turn a unix-socket client into a TCP one */
    if ((opt->unix_socket && !c->unix_socket) || (ca_file && !c->ca_file) ||
        !c->user_agent) {
        client_destroy(c);
        set_error(err, SESH_HTTP_ETRANSPORT, 0, "out of memory");
        return NULL;
    }
    return c;
}


void sesh_http_client_free(sesh_http_client *c) {
    if (!c)
        return;
    if (c->busy)
        c->closing = 1;           /* the transfer using it frees it */
    else
        client_destroy(c);
}

/* ---- libcurl callbacks ---- */

static void clear_headers(sesh_http_transfer *t) {
    for (size_t i = 0; i < t->nhdrs; i++) {
        free((char *)t->hdrs[i].name);
        free((char *)t->hdrs[i].value);
    }
    t->nhdrs = 0;
}

/* libcurl parses the headers; this only bounds them: a server sending more than
 * MAX_HEADER_BYTES is broken or hostile, and the transfer stops there. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    sesh_http_transfer *t = ud;
    (void)p;
    t->header_bytes += size * n;
    if (t->header_bytes > MAX_HEADER_BYTES) {
        t->too_large = 1;
        return 0;
    }
    return size * n;
}

/* Copies the last answer's headers out of libcurl (names lower-case, in the
 * order received; an interim 1xx is not the last answer). Out of memory
 * leaves the ones copied so far. */
static void keep_headers(sesh_http_transfer *t) {
    size_t n = 0;
    struct curl_header *h = NULL;
    while ((h = curl_easy_nextheader(t->easy, CURLH_HEADER, -1, h)))
        n++;
    clear_headers(t);
    free(t->hdrs);
    t->hdrs = n ? malloc(n * sizeof *t->hdrs) : NULL;
    if (!t->hdrs)
        return;
    h = NULL;
    while (t->nhdrs < n && (h = curl_easy_nextheader(t->easy, CURLH_HEADER, -1, h))) {
        char *name = strdup(h->name), *value = strdup(h->value);
        if (!name || !value) {
            free(name);
            free(value);
            return;
        }
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        t->hdrs[t->nhdrs].name = name;
        t->hdrs[t->nhdrs].value = value;
        t->nhdrs++;
    }
}

/* Seconds the answer's Retry-After asks for (delta-seconds or an HTTP date, read
 * by libcurl); -1 when the answer has none. */
static double asked_retry_after(sesh_http_transfer *t) {
    struct curl_header *h;
    curl_off_t secs = 0;
    if (curl_easy_header(t->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK ||
        curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &secs) != CURLE_OK)
        return -1;
    return secs > 0 ? (double)secs : 0;
}

static int success_status(long status) {
    return status >= 200 && status < 300;
}

static int write_all(sesh_http_transfer *t, const char *p, size_t len) {
    for (size_t done = 0; done < len;) {
        ssize_t w = write(t->out, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            t->write_errno = w < 0 ? errno : EIO;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* libcurl reads DOWNLOAD_BUFFER from the socket at once but hands it over in 16 KiB
 * pieces: gathering them here makes one write(2) per half megabyte, not per piece. */
static int flush_output(sesh_http_transfer *t) {
    int rc = write_all(t, t->out_buf, t->out_len);
    t->out_len = 0;
    return rc;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    sesh_http_transfer *t = ud;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->out >= 0 && success_status(status)) {
        if (t->out_len + len > DOWNLOAD_BUFFER && flush_output(t) < 0)
            return 0;
        if (len >= DOWNLOAD_BUFFER)
            return write_all(t, p, len) < 0 ? 0 : len;
        memcpy(t->out_buf + t->out_len, p, len);
        t->out_len += len;
        return len;
    }
    if (t->body.len + len > t->max_body) {
        t->too_large = 1;
        return 0;
    }
    if (buffer_append(&t->body, p, len) < 0) {
        t->write_errno = ENOMEM;
        return 0;
    }
    return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud) {
    sesh_http_transfer *t = ud;
    size_t got = fread(p, 1, size * n, t->upload);
    if (got == 0 && ferror(t->upload)) {
        t->write_errno = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

/* libcurl seeks only to re-send: after a redirect or an authentication round, or when a
 * reused connection died before any answer. The last is its silent retry, which must not
 * happen to a request the server may already have run: refusing the rewind makes libcurl
 * fail with CURLE_SEND_FAIL_REWIND instead. Our own retries rewind the body themselves. */
static int on_seek(void *ud, curl_off_t offset, int origin) {
    sesh_http_transfer *t = ud;
    if (t->no_rewind)
        return CURL_SEEKFUNC_CANTSEEK;
    return fseeko(t->upload, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* Called each time libcurl is about to send the request on a connection. A second call
 * in one attempt is libcurl's silent retry after a reused connection died unanswered;
 * an in-memory body (CURLOPT_POSTFIELDS) needs no seek to go again, so the refusal
 * above does not catch that case: this does, for a request not idempotent. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
    sesh_http_transfer *t = ud;
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    if (t->no_rewind && ++t->sends > 1) {
        t->refused_resend = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

void sesh_http_set_progress_hook(sesh_http_progress_hook hook) {
    progress_hook = hook;
}

/* Hands the figures to the hook: bytes moved by a transfer that asked, or one
 * such transfer ended (it is no longer counted). */
static void report_progress(void) {
    sesh_http_progress_figures p;
    if (!progress_hook)
        return;
    sesh_http_progress(&p);
    progress_hook(&p);
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
    sesh_http_transfer *t = ud;
    if (cancel_flag)
        return 1;                   /* CURLE_ABORTED_BY_CALLBACK */
    int moved = ulnow != t->up_now || dlnow != t->down_now || ultotal != t->up_total ||
                dltotal != t->down_total;
    t->up_now = ulnow;
    t->up_total = ultotal;
    t->down_now = dlnow;
    t->down_total = dltotal;
    if (moved && t->progress)
        report_progress();
    return 0;
}

void sesh_http_progress(sesh_http_progress_figures *p) {
    memset(p, 0, sizeof *p);
    for (sesh_http_transfer *t = transfers; t; t = t->next) {
        if (t->state != RUNNING || !t->progress)
            continue;
        int uploading = t->up_total > 0 && t->up_now < t->up_total;
        p->done += uploading ? t->up_now : t->down_now;
        p->total += uploading ? t->up_total : t->down_total;
        p->uploading = uploading;
        if (p->transfers++ == 0 || t->started < p->started)
            p->started = t->started;
    }
}

/* ---- setting a transfer up ---- */

static int has_header(const sesh_http_request *r, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++)
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return 1;
    return 0;
}

static int add_header(sesh_http_transfer *t, const char *line) {
    struct curl_slist *l = curl_slist_append(t->headers, line);
    if (!l)
        return -1;
    t->headers = l;
    return 0;
}

/* Loopback never goes through a proxy from the environment. */
static void set_noproxy(CURL *e) {
    const char *env = getenv("no_proxy");
    if (!env)
        env = getenv("NO_PROXY");
    if (env && strcmp(env, "*") == 0) {
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
        return;
    }
    char list[1024];
    snprintf(list, sizeof list, "%s%slocalhost,127.0.0.1,::1", env ? env : "",
             env && *env ? "," : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, list);
}

/* 0 when path is a regular file open for reading in *f, else an errno (*f may be open). */
static int open_regular(const char *path, FILE **f, struct stat *st) {
    *f = fopen(path, "rbe");        /* e: O_CLOEXEC, children do not inherit it */
    if (!*f || fstat(fileno(*f), st) != 0)
        return errno;
    return S_ISREG(st->st_mode) ? 0 : S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
}

static size_t read_memory(char *p, size_t size, size_t n, void *ud) {
    memory_reader *m = ud;
    size_t k = m->len - m->pos < size * n ? m->len - m->pos : size * n;
    memcpy(p, m->data + m->pos, k);
    m->pos += k;
    return k;
}

static int seek_memory(void *ud, curl_off_t offset, int origin) {
    memory_reader *m = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > m->len)
        return CURL_SEEKFUNC_CANTSEEK;
    m->pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int build_mime(sesh_http_transfer *t, const sesh_http_request *r, sesh_http_error *err) {
    t->mime = curl_mime_init(t->easy);
    t->readers = calloc(r->nparts, sizeof *t->readers);
    if (!t->mime || !t->readers)
        goto oom;
    for (size_t i = 0; i < r->nparts; i++) {
        const sesh_http_part *p = &r->parts[i];
        curl_mimepart *part = curl_mime_addpart(t->mime);
        if (!part || curl_mime_name(part, p->name) != CURLE_OK)
            goto oom;
        if (p->file) {
            struct stat st;
            FILE *f;
            int e = open_regular(p->file, &f, &st);
            if (f)
                fclose(f);          /* curl opens it again when it sends the part */
            if (e) {
                set_error(err, SESH_HTTP_EFILE, e, "multipart part '%s': cannot read %s: %s",
                          p->name ? p->name : "?", p->file, strerror(e));
                return -1;
            }
            if (curl_mime_filedata(part, p->file) != CURLE_OK)
                goto oom;
        } else {
            memory_reader *m = &t->readers[i];
            m->data = p->data ? p->data : "";
            m->len = p->data_len;
            if (curl_mime_data_cb(part, (curl_off_t)m->len, read_memory, seek_memory, NULL, m)
                != CURLE_OK)
                goto oom;
        }
        if (p->filename && curl_mime_filename(part, p->filename) != CURLE_OK)
            goto oom;
        if (p->content_type && curl_mime_type(part, p->content_type) != CURLE_OK)
            goto oom;
    }
    curl_easy_setopt(t->easy, CURLOPT_MIMEPOST, t->mime);
    curl_easy_setopt(t->easy, CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
    return 0;
oom:
    set_error(err, SESH_HTTP_EUSAGE, ENOMEM, "%s: cannot build the multipart body", t->what);
    return -1;
}

static int open_output(sesh_http_transfer *t, const char *path, sesh_http_error *err) {
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    t->tmp_path = sesh_strprintf("%.*s.%s.sesh-XXXXXX", (int)dirlen, path, base);
    t->output_file = strdup(path);
    if (!t->tmp_path || !t->output_file) {
        set_error(err, SESH_HTTP_EFILE, ENOMEM, "out of memory");
        return -1;
    }
    int fd = mkostemp(t->tmp_path, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(t->tmp_path);
        t->tmp_path = NULL;
        set_error(err, SESH_HTTP_EFILE, e, "%s: cannot write %s: %s", t->what, path,
                  e == ENOENT ? "its folder does not exist" : strerror(e));
        return -1;
    }
    mode_t mask = umask(0);        /* the final file gets the usual 0666 & ~umask */
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    t->out = fd;
    t->out_buf = malloc(DOWNLOAD_BUFFER);
    if (!t->out_buf) {
        set_error(err, SESH_HTTP_EFILE, ENOMEM, "out of memory");
        return -1;
    }
    curl_easy_setopt(t->easy, CURLOPT_BUFFERSIZE, (long)DOWNLOAD_BUFFER);
    return 0;
}

static int open_upload(sesh_http_transfer *t, const char *path, sesh_http_error *err) {
    struct stat st;
    int e = open_regular(path, &t->upload, &st);
    if (e) {
        set_error(err, SESH_HTTP_EFILE, e, "body_file %s: cannot read it: %s", path, strerror(e));
        return -1;
    }
    curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(t->easy, CURLOPT_SEEKDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
    /* libcurl asks the read callback for at most this much at a time (default 64 KiB) */
    curl_easy_setopt(t->easy, CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUFFER);
    return 0;
}

static int valid_method(const char *m) {
    if (!*m)
        return 0;
    for (; *m; m++)
        if (!isupper((unsigned char)*m) && *m != '-' && *m != '_')
            return 0;
    return 1;
}

static int idempotent_method(const char *m) {
    static const char *safe[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
        if (strcmp(m, safe[i]) == 0)
            return 1;
    return 0;
}

static int setup(sesh_http_transfer *t, const sesh_http_request *r, sesh_http_error *err) {
    sesh_http_client *c = t->client;
    CURL *e = t->easy;
    int has_body = r->has_body || r->body_file || r->nparts > 0;
    const char *method = r->method ? r->method : has_body ? "POST" : "GET";

    if (!r->url || !*r->url) {
        set_error(err, SESH_HTTP_EUSAGE, 0, "request without a url");
        return -1;
    }
    if (!valid_method(method)) {
        set_error(err, SESH_HTTP_EUSAGE, 0, "bad method '%.40s' (expected e.g. GET, POST)", method);
        return -1;
    }
    if ((r->has_body != 0) + (r->body_file != NULL) + (r->nparts > 0) > 1) {
        set_error(err, SESH_HTTP_EUSAGE, 0, "give one of body, body_file, multipart");
        return -1;
    }
    t->what = describe(method, r->url);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");   /* no file://, ftp://... */
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_socket);
    if (share)
        curl_easy_setopt(e, CURLOPT_SHARE, share);
    if (c->unix_socket)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
    if (c->ca_file)                 /* verification stays on: this only adds trust */
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    set_noproxy(e);

    double timeout = r->timeout >= 0 ? r->timeout : c->timeout;
    double connect_timeout = r->connect_timeout >= 0 ? r->connect_timeout : c->connect_timeout;
    if (timeout > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000));
    if (connect_timeout > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(connect_timeout * 1000));
    if (r->low_speed_limit > 0 && r->low_speed_time > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, r->low_speed_limit);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, r->low_speed_time);
    }

    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, t);

    for (size_t i = 0; i < r->nheaders; i++)
        if (add_header(t, r->headers[i]) < 0)
            goto oom;
    if ((r->has_body || r->body_file) && !has_header(r, "Content-Type") &&
        add_header(t, "Content-Type: application/octet-stream") < 0)
        goto oom;

    t->idempotent = r->idempotent >= 0 ? r->idempotent : idempotent_method(method);
    if (r->has_body) {
        /* In memory, libcurl sends headers and a small body in one write, so the
         * server wakes once. It would re-send it by itself on a fresh connection,
         * but on_prereq refuses that for a request that is not idempotent. */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_len ? r->body : "");
    } else if (r->body_file) {
        if (open_upload(t, r->body_file, err) < 0)
            return -1;
    } else if (r->nparts > 0) {
        if (build_mime(t, r, err) < 0)
            return -1;
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    /* A request that is not idempotent rides the kept-alive connection like any other,
     * but libcurl may never send it twice: on_seek and on_prereq refuse, and the transfer
     * fails with a clear error instead (see completed). */
    t->no_rewind = !t->idempotent;
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, MAX_CONNECTION_IDLE_S);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") == 0 && !has_body)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (r->output_file && open_output(t, r->output_file, err) < 0)
        return -1;
    return 0;
oom:
    set_error(err, SESH_HTTP_EUSAGE, ENOMEM, "out of memory");
    return -1;
}

static void launch(sesh_http_transfer *t) {
    t->attempts++;
    t->sends = 0;
    t->state = RUNNING;
    CURLMcode mc = curl_multi_add_handle(multi, t->easy);
    if (mc != CURLM_OK) {
        set_error(&t->err, SESH_HTTP_ETRANSPORT, CURLE_FAILED_INIT, "%s: %s", t->what,
                  curl_multi_strerror(mc));
        t->state = DONE;
        unlink_transfer(t);
    }
}

sesh_http_transfer *sesh_http_start(sesh_http_client *c, const sesh_http_request *r,
                                    sesh_http_error *err) {
    if (sesh_http_init(err) < 0)
        return NULL;
    sesh_http_transfer *t = calloc(1, sizeof *t);
    if (!t) {
        set_error(err, SESH_HTTP_EUSAGE, ENOMEM, "out of memory");
        return NULL;
    }
    t->client = c;
    t->state = DONE;
    t->out = -1;
    if (c->busy) {
        t->easy = curl_easy_init();
        t->own_easy = 1;
    } else {
        t->easy = c->easy;
        c->busy = 1;
        curl_easy_reset(t->easy);
    }
    t->retry = r->retry;
    if (t->retry.max < 1)
        t->retry.max = 1;
    if (r->retry.nstatuses) {
        t->statuses = malloc(r->retry.nstatuses * sizeof *t->statuses);
        if (t->statuses)
            memcpy(t->statuses, r->retry.statuses, r->retry.nstatuses * sizeof *t->statuses);
        else
            t->retry.nstatuses = 0;
    }
    t->retry.statuses = t->statuses;
    t->max_body = r->max_body ? r->max_body : SESH_HTTP_MAX_BODY_DEFAULT;
    t->progress = r->progress;
    t->retry_after = -1;
    if (!t->easy || setup(t, r, err) < 0) {
        if (!t->easy)
            set_error(err, SESH_HTTP_ETRANSPORT, 0, "libcurl: cannot create a handle");
        sesh_http_transfer_free(t);
        return NULL;
    }
    t->started = sesh_monotonic();
    link_transfer(t);
    launch(t);
    return t;
}

/* ---- finishing and retrying ---- */

static void discard_output(sesh_http_transfer *t) {
    if (t->out >= 0) {
        close(t->out);
        t->out = -1;
    }
    if (t->tmp_path) {
        unlink(t->tmp_path);
        free(t->tmp_path);
        t->tmp_path = NULL;
    }
}

static void finish(sesh_http_transfer *t) {
    if (t->err.kind == SESH_HTTP_OK && t->out >= 0 && success_status(t->status)) {
        /* No fsync: the rename already guarantees that no reader sees a partial file, and
         * surviving a power cut is not this function's promise; an fsync per download
         * would cost a disk flush (hundreds of ms on a busy disk) for nothing. */
        int bad = flush_output(t) < 0;
        int e = t->write_errno;
        if (close(t->out) != 0 && !bad) {
            bad = 1;
            e = errno;
        }
        t->out = -1;
        if (bad || rename(t->tmp_path, t->output_file) != 0) {
            e = bad ? e : errno;
            set_error(&t->err, SESH_HTTP_EFILE, e, "%s: cannot write %s: %s", t->what,
                      t->output_file, strerror(e));
        } else {
            free(t->tmp_path);
            t->tmp_path = NULL;
            t->to_file = 1;
        }
    }
    discard_output(t);
    if (t->upload) {
        fclose(t->upload);
        t->upload = NULL;
    }
    keep_headers(t);
    t->retry_after = asked_retry_after(t);
    t->state = DONE;
    unlink_transfer(t);
    if (t->progress)
        report_progress();
}

static int retryable_status(const sesh_http_transfer *t) {
    for (size_t i = 0; i < t->retry.nstatuses; i++)
        if (t->retry.statuses[i] == t->status)
            return 1;
    return 0;
}

/* Full jitter: sleep a uniform time below base * 2^(attempt-1), or what the server asked. */
static int schedule_retry(sesh_http_transfer *t, double server_wait) {
    if (t->attempts >= t->retry.max || cancel_flag)
        return 0;
    double base = t->retry.base > 0 ? t->retry.base : 0.25;
    double cap = t->retry.cap > 0 ? t->retry.cap : 30;
    double ceiling = base * pow(2, t->attempts - 1);
    double delay = random01() * (ceiling < cap ? ceiling : cap);
    if (server_wait > delay)
        delay = server_wait;
    double at = sesh_monotonic();
    if (t->retry.total > 0 && at + delay > t->started + t->retry.total)
        return 0;
    /* Rewind the files first: if that fails, the last answer is still intact. */
    t->out_len = 0;
    if (t->out >= 0 && (ftruncate(t->out, 0) != 0 || lseek(t->out, 0, SEEK_SET) != 0))
        return 0;
    if (t->upload && fseeko(t->upload, 0, SEEK_SET) != 0)
        return 0;
    t->next_at = at + delay;
    t->state = WAITING;
    t->body.len = 0;
    t->too_large = 0;
    t->header_bytes = 0;
    t->write_errno = 0;
    t->status = 0;
    return 1;
}

/* What to do about a failed TLS handshake, said after libcurl's words, which
 * name only OpenSSL's state (SSL_ERROR_SYSCALL, wrong version number). */
static const char *tls_hint(CURLcode rc) {
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
        return "; the server did not complete a TLS handshake: if it serves plain http "
               "(as sesh-pool does unless it is given a certificate), use an http:// URL";
    case CURLE_PEER_FAILED_VERIFICATION:
        return "; the server's certificate is not trusted: name the CA that signed it "
               "with ca_file, or in SSL_CERT_FILE or CURL_CA_BUNDLE";
    default:
        return "";
    }
}

static void transport_error(sesh_http_transfer *t, CURLcode rc) {
    if (cancel_flag || rc == CURLE_ABORTED_BY_CALLBACK) {
        set_error(&t->err, SESH_HTTP_EINTERRUPTED, rc, "interrupted by Ctrl-C");
    } else if (t->too_large && t->header_bytes > MAX_HEADER_BYTES) {
        set_error(&t->err, SESH_HTTP_ETOO_LARGE, rc, "%s: answer headers larger than %d bytes",
                  t->what, MAX_HEADER_BYTES);
    } else if (t->too_large) {
        set_error(&t->err, SESH_HTTP_ETOO_LARGE, rc,
                  "%s: answer body larger than max_body (%zu bytes); "
                  "stream it with output_file or raise max_body", t->what, t->max_body);
    } else if (t->write_errno && (rc == CURLE_WRITE_ERROR || rc == CURLE_READ_ERROR ||
                                  rc == CURLE_ABORTED_BY_CALLBACK)) {
        set_error(&t->err, SESH_HTTP_EFILE, t->write_errno, "%s: %s: %s", t->what,
                  rc == CURLE_READ_ERROR ? "reading the body" : "writing the answer",
                  strerror(t->write_errno));
    } else {
        set_error(&t->err, SESH_HTTP_ETRANSPORT, rc, "%s: %s%s%s%s%s", t->what,
                  curl_easy_strerror(rc), t->errbuf[0] ? " (" : "", t->errbuf,
                  t->errbuf[0] ? ")" : "", tls_hint(rc));
    }
}

static void completed(sesh_http_transfer *t, CURLcode rc) {
    long connects = 0;
    curl_multi_remove_handle(multi, t->easy);
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
    if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        t->connects += connects;
    if (!cancel_flag && ((rc == CURLE_SEND_FAIL_REWIND && t->no_rewind) || t->refused_resend)) {
        /* A reused connection died after the request went out and before any answer;
         * libcurl wanted to send it again and we refused (see on_seek, on_prereq). */
        set_error(&t->err, SESH_HTTP_ETRANSPORT, rc,
                  "%s: the connection was lost after the request was sent and before any "
                  "answer; it may or may not have run on the server (not retried)", t->what);
        finish(t);
        return;
    }
    if (rc == CURLE_OK && !cancel_flag) {
        if (retryable_status(t) && schedule_retry(t, asked_retry_after(t)))
            return;
        finish(t);
        return;
    }
    if (!cancel_flag && !t->too_large && !t->write_errno) {
        long sent = 0;
        curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
        /* Nothing sent: the server cannot have acted on it, so any request may go again. */
        if ((sent == 0 || t->idempotent) && schedule_retry(t, -1)) {
            t->errbuf[0] = '\0';
            return;
        }
    }
    transport_error(t, rc);
    finish(t);
}

static void abort_all(void) {
    sesh_http_transfer *t = transfers, *next;
    for (; t; t = next) {
        next = t->next;
        if (t->state == RUNNING)
            curl_multi_remove_handle(multi, t->easy);
        set_error(&t->err, SESH_HTTP_EINTERRUPTED, CURLE_ABORTED_BY_CALLBACK,
                  "interrupted by Ctrl-C");
        finish(t);
    }
}

static void collect(void) {
    int running, left;
    curl_multi_perform(multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        sesh_http_transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = m->data.result;
        if (t)
            completed(t, rc);
    }
}

int sesh_http_step(int timeout_ms) {
    sesh_http_error ignored;
    if (sesh_http_init(&ignored) < 0)
        return 0;
    if (cancel_flag)
        abort_all();
    double at = sesh_monotonic(), wake = at + timeout_ms / 1000.0;
    int idle = transfers == NULL;
    for (sesh_http_transfer *t = transfers, *next; t; t = next) {
        next = t->next;
        if (t->state == WAITING && t->next_at <= at)
            launch(t);
        else if (t->state == WAITING && t->next_at < wake)
            wake = t->next_at;
    }
    collect();
    int wait_ms = (int)ceil((wake - sesh_monotonic()) * 1000);
    if (wait_ms > POLL_SLICE_MS)
        wait_ms = POLL_SLICE_MS;
    if (!transfers) {
        /* Nothing to drive: the caller waits for time (a sleeping coroutine). A
         * transfer that just ended returns at once instead: its caller goes on. */
        if (idle && wait_ms > 0)
            sesh_sleep(wait_ms / 1000.0);
        return 0;
    }
    if (wait_ms > 0)
        curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
    if (cancel_flag)
        abort_all();
    collect();
    int n = 0;
    for (sesh_http_transfer *t = transfers; t; t = t->next)
        n++;
    return n;
}

void sesh_http_wait(sesh_http_transfer *t) {
    sesh_http_guard_begin();
    while (t->state != DONE)
        sesh_http_step(POLL_SLICE_MS);
    sesh_http_guard_end();
}

int sesh_http_done(const sesh_http_transfer *t) {
    return t->state == DONE;
}

void sesh_http_transfer_free(sesh_http_transfer *t) {
    if (!t)
        return;
    if (t->state == RUNNING && multi)
        curl_multi_remove_handle(multi, t->easy);
    if (t->state != DONE) {
        unlink_transfer(t);
        if (t->progress)
            report_progress();
    }
    discard_output(t);
    if (t->upload)
        fclose(t->upload);
    free(t->output_file);
    free(t->out_buf);
    if (t->easy) {
        if (t->own_easy) {
            curl_easy_cleanup(t->easy);
        } else {
            curl_easy_reset(t->easy);   /* forget every pointer into t; keep the caches */
            t->client->busy = 0;
            if (t->client->closing)
                client_destroy(t->client);
        }
    }
    curl_slist_free_all(t->headers);
    curl_mime_free(t->mime);
    free(t->readers);
    clear_headers(t);
    free(t->hdrs);
    free(t->body.data);
    free(t->statuses);
    free(t->what);
    free(t);
}

/* ---- results ---- */

const sesh_http_error *sesh_http_result_error(const sesh_http_transfer *t) {
    return &t->err;
}

long sesh_http_result_status(const sesh_http_transfer *t) {
    return t->status;
}

double sesh_http_result_retry_after(const sesh_http_transfer *t) {
    return t->retry_after;
}

int sesh_http_result_attempts(const sesh_http_transfer *t) {
    return t->attempts;
}

long sesh_http_result_connects(const sesh_http_transfer *t) {
    return t->connects;
}

size_t sesh_http_result_nheaders(const sesh_http_transfer *t) {
    return t->nhdrs;
}

const sesh_http_header *sesh_http_result_header(const sesh_http_transfer *t, size_t i) {
    return i < t->nhdrs ? &t->hdrs[i] : NULL;
}

const char *sesh_http_result_body(const sesh_http_transfer *t, size_t *len) {
    if (t->to_file) {
        *len = 0;
        return NULL;
    }
    *len = t->body.len;
    return t->body.data ? t->body.data : "";
}

int sesh_http_result_to_file(const sesh_http_transfer *t) {
    return t->to_file;
}
