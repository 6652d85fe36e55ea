/*
 * mcp_stdio.c — the stdio transport (MCP "Transports": one JSON-RPC message
 * per line on stdin, answers one per line on stdout, nothing else there):
 * sesh_mcp_stdio() of mcp.h.
 *
 * The reader answers quick messages (initialize, ping, tools/list,
 * notifications) itself and gives each tool call (or batch) a thread, at most
 * MAX_WORKERS at once, so a ping or a notifications/cancelled is read while
 * code runs. Answers are written whole, one at a time. A line longer than a
 * message may be is skipped to its end and answered with an error: memory
 * stays bounded whatever the client sends.
 */
#include "pool/mcp_core.h"
#include "pool/log.h"
#include "pool/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define READ_CHUNK  65536

typedef struct conn {
    sesh_mcp *mcp;
    sesh_mcp_session *s;
    int out_fd;
    pthread_mutex_t out_mu;     /* one answer at a time on out_fd */
    int out_broken;
    pthread_mutex_t mu;         /* workers */
    pthread_cond_t cv;
    int workers;
} conn;

typedef struct job {
    conn *c;
    json_t *msg;
} job;

static int out_broken(conn *c)
{
    pthread_mutex_lock(&c->out_mu);
    int broken = c->out_broken;
    pthread_mutex_unlock(&c->out_mu);
    return broken;
}

/* Writes one answer as a line (JSON escapes every newline inside strings). */
static void send_answer(conn *c, json_t *answer)
{
    if (!answer) return;
    char *text = json_dumps(answer, JSON_COMPACT);
    if (!text) return;
    size_t n = strlen(text);
    text[n] = '\n';                     /* json_dumps left room: the NUL becomes the newline */
    pthread_mutex_lock(&c->out_mu);
    for (size_t off = 0; off <= n && !c->out_broken;) {
        ssize_t w = write(c->out_fd, text + off, n + 1 - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            c->out_broken = 1;
            sesh_log("mcp stdio: cannot write to standard output (%s): stopping",
                     w < 0 ? strerror(errno) : "closed");
            break;
        }
        off += (size_t)w;
    }
    pthread_mutex_unlock(&c->out_mu);
    free(text);
}

static void handle(conn *c, json_t *msg)
{
    const char *version = sesh_mcp_session_version(c->mcp, c->s, SESH_MCP_OLDEST);
    json_t *answer = sesh_mcp_handle(c->mcp, c->s, msg, version, NULL);
    send_answer(c, answer);
    json_decref(answer);
}

static void *worker(void *arg)
{
    job *j = arg;
    conn *c = j->c;
    handle(c, j->msg);
    json_decref(j->msg);
    free(j);
    pthread_mutex_lock(&c->mu);
    c->workers--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void dispatch(conn *c, json_t *msg)
{
    if (!sesh_mcp_is_slow(msg)) {
        handle(c, msg);
        json_decref(msg);
        return;
    }
    pthread_mutex_lock(&c->mu);
    while (c->workers >= MAX_WORKERS) pthread_cond_wait(&c->cv, &c->mu);
    c->workers++;
    pthread_mutex_unlock(&c->mu);
    job *j = sesh_xcalloc(1, sizeof *j);
    j->c = c;
    j->msg = msg;
    if (sesh_thread_start(worker, j) != 0)
        worker(j);                      /* no thread: run it here, late but answered */
}

static void take_line(conn *c, char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
    size_t start = 0;
    while (start < len && (line[start] == ' ' || line[start] == '\t')) start++;
    if (start == len) return;           /* a blank line is no message */
    json_error_t jerr;
    json_t *msg = json_loadb(line + start, len - start, JSON_DECODE_ANY, &jerr);
    if (!msg) {
        char text[300];
        snprintf(text, sizeof text, "Parse error: %s (at byte %d)", jerr.text, jerr.position);
        json_t *e = sesh_mcp_error(NULL, SESH_MCP_PARSE_ERROR, text);
        send_answer(c, e);
        json_decref(e);
        return;
    }
    dispatch(c, msg);
}

/* Reads lines until the end of in_fd, stop_fd or a broken out_fd. */
static void read_loop(conn *c, int in_fd, int stop_fd)
{
    size_t cap = READ_CHUNK, len = 0;
    char *buf = sesh_xmalloc(cap);
    int skipping = 0;                   /* inside a line longer than a message may be */
    while (!out_broken(c)) {
        struct pollfd p[2] = { { .fd = in_fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
        if (poll(p, stop_fd >= 0 ? 2 : 1, 1000) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (stop_fd >= 0 && p[1].revents) {
            sesh_log("mcp stdio: stopping on a signal");
            break;
        }
        if (!p[0].revents) continue;
        if (cap - len < READ_CHUNK) {
            cap = len + READ_CHUNK;
            buf = sesh_xrealloc(buf, cap);
        }
        ssize_t r = read(in_fd, buf + len, cap - len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) {                   /* end of input: the client is done */
            if (len > 0 && !skipping) take_line(c, buf, len);   /* a last line without its newline */
            break;
        }
        size_t scan = len;
        len += (size_t)r;
        size_t start = 0;
        for (char *nl; (nl = memchr(buf + scan, '\n', len - scan)) != NULL; scan = start) {
            size_t end = (size_t)(nl - buf);
            if (!skipping) take_line(c, buf + start, end - start);
            skipping = 0;
            start = end + 1;
        }
        memmove(buf, buf + start, len - start);
        len -= start;
        if (skipping) len = 0;          /* still inside the line being skipped */
        if (len > SESH_MCP_MAX_MESSAGE) {
            if (!skipping) {
                json_t *e = sesh_mcp_error(NULL, SESH_MCP_INVALID_REQUEST,
                                           "the message is longer than the 8388608 bytes a message may be");
                send_answer(c, e);
                json_decref(e);
            }
            skipping = 1;
            len = 0;
        }
        if (cap > 4 * READ_CHUNK && len < READ_CHUNK) {    /* give back a big message's room */
            cap = READ_CHUNK;
            buf = sesh_xrealloc(buf, cap);
        }
    }
    free(buf);
}

int sesh_mcp_stdio(sesh_mcp *mcp, int in_fd, int out_fd, int stop_fd)
{
    conn c = { .mcp = mcp, .out_fd = out_fd };
    pthread_mutex_init(&c.out_mu, NULL);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.s = sesh_mcp_session_new(mcp, 1);
    if (!c.s) return -1;
    sesh_log("mcp stdio: serving session %.8s", sesh_mcp_session_id(c.s));
    read_loop(&c, in_fd, stop_fd);
    /* The client is gone or done: calls still running are cancelled (no
     * answer is due), and the environments go with the session. */
    sesh_mcp_session_end(mcp, c.s);
    pthread_mutex_lock(&c.mu);
    while (c.workers > 0) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    sesh_mcp_session_release(mcp, c.s);
    int broken = out_broken(&c);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    pthread_mutex_destroy(&c.out_mu);
    return broken ? -1 : 0;
}
