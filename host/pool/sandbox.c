/*
 * sandbox.c — one Python interpreter in a sandbox, started by bwrap or forked
 * from the fork server (see sandbox.h).
 *
 * The shape of a sandbox, from the host, on either path:
 *
 *   pool ── fork (spawner thread) ── bwrap (outer, our child, as the sandbox uid)
 *                                       └─ bwrap init, pid 1 of a new pid namespace
 *                                            └─ python3 runner.py, pid 2
 *
 *   pool ── fork server (zygote.h) ┈┈ outer process (our child by CLONE_PARENT; exits)
 *        ├─ init, pid 1 of a new pid namespace (our child by CLONE_PARENT)
 *        │    └─ runner.py, forked with everything loaded, pid 2
 *
 * A pool with a fork server forks sandboxes from it, and starts with bwrap
 * each one the server cannot give (none ready, or one that did not start);
 * after the start nothing here cares which path made a sandbox: "bwrap" below
 * is the sandbox's outer process, our child, which is init on the fork path.
 *
 * sandbox_spawn.c makes the bwrap command line and forks; sandbox_disk.c walks
 * the data directory; cgroup.c makes each sandbox's control group (its
 * processes enter it between fork and exec); this file starts, talks to,
 * watches and ends sandboxes.
 * The descriptors a sandbox gets are listed in sandbox_spawn.h.
 *
 * The interpreter is interrupted by SIGINT sent through a pidfd (never a pid
 * that could have been reused; plain pids only where the kernel, or valgrind,
 * has no pidfd), and killed by SIGKILL to the namespace's init, which takes
 * every process of the sandbox with it.
 */
#include "pool/sandbox.h"
#include "pool/cgroup.h"
#include "pool/json_scan.h"
#include "pool/sandbox_disk.h"
#include "pool/sandbox_spawn.h"
#include "pool/seccomp.h"
#include "pool/util.h"
#include "pool/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char sesh_runner_py[];
extern const unsigned long sesh_runner_py_len;
extern const unsigned char sesh_sandbox_oom_so[];
extern const unsigned long sesh_sandbox_oom_so_len;

#define DEFAULT_PYTHON       "/usr/bin/python3"
#define UID_BASE             1800000000u        /* root pools: one uid per sandbox */
#define UID_RANGE            1000000u
#define DEFAULT_MEMORY       (4UL << 30)
#define DEFAULT_FILE_SIZE    (1UL << 30)
#define DEFAULT_DISK         (1UL << 30)
#define DISK_CHECK_MIN_MS    50         /* the disk watch measures as often as this */
#define DISK_CHECK_MAX_MS    500        /* and at least this often, */
#define DISK_CHECK_SHARE     20         /* walking 1/20 of the time at most */
#define SANDBOX_NICE         10
#define BACKGROUND_NICE      15         /* a warm sandbox while it starts: below the
                                           sessions at work, not starved by them */
#define DEFAULT_TMP_SIZE     (256UL << 20)
#define DEFAULT_SHM_SIZE     (64UL << 20)
#define DEFAULT_PROCESSES    128
#define DEFAULT_OPEN_FILES   1024
#define START_TIMEOUT_MS     60000
#define INTERRUPT_GRACE_MS   2000
#define INTERRUPT_REPEAT_MS  400        /* a KeyboardInterrupt can be lost: Ctrl-C again */
/* The channel is untrusted input (the user's code shares the runner's
 * process): a frame is refused past what its request allows, and its JSON past
 * the shape replies have, before jansson parses it. See "The runner's
 * channel" in DESIGN.md. */
#define RESULT_MAX           (4u << 20) /* bytes of a result as JSON (an image's base64) */
#define JSON_CHAR_MAX        6          /* bytes a character may take in a JSON string */
#define FRAME_MARGIN         (64u << 10) /* an execute reply's keys, numbers and flags */
#define FRAME_MAX            0xffffffffu /* what a 4-byte header can say */
#define EXECUTE_VALUES       64         /* an execute reply has about 20 */
#define EXECUTE_DEPTH        2          /* the reply, an image result in it */
#define SHELL_VALUES         32         /* a shell reply has 18 (keys included) */
#define SHELL_DEPTH          1
#define METADATA_FRAME       (1u << 20) /* a few kB for a hundred packages */
#define METADATA_VALUES      65536      /* 5 per package */
#define METADATA_DEPTH       3          /* the reply, its packages, each package */
#define READY_FRAME          4096
#define READY_VALUES         8
#define TAIL_SIZE            2048
#define HOST_STAGE           "/mnt"     /* where a pool that may mount shows bwrap the data dir */

/* A process, by pidfd where the kernel has them (fd -1 otherwise). */
typedef struct {
    pid_t pid;
    int fd;
} proc_ref;

struct sesh_sandbox {
    proc_ref bwrap;            /* outer bwrap, our child (init, on the fork path) */
    int forked;                /* forked by the fork server */
    int go;                    /* a forked sandbox's init waits on it (zygote_enter.h) */
    proc_ref init;             /* pid 1 of the sandbox */
    proc_ref python;           /* the interpreter */
    int chan;                  /* socket to the runner, non-blocking */
    long long seq;             /* number of the last request; replies echo it */
    int console;               /* read end of the sandbox's stdout and stderr */
    int status_fd;             /* bwrap's JSON status, read end */
    uid_t uid;                 /* host uid of the sandbox's processes */
    int data_fd;               /* the data directory, for measuring it */
    size_t disk_limit;
    size_t min_free_disk;      /* the floor of free space on data_dir's file system */
    atomic_uint disk_gen;      /* bumped when the pool changes files in data_dir */
    unsigned long long disk_last;  /* bytes measured at the end of the last execution, */
    unsigned disk_last_gen;    /* at this disk_gen, */
    int disk_last_ok;          /* if that measure closed the execution */
    long long disk_walk_us;    /* what the last measure took */
    int background;            /* started at BACKGROUND_NICE, not yet lifted */
    int reaped;
    int wait_status;
    atomic_int killed;
    char tail[TAIL_SIZE];      /* last bytes written to the console */
    size_t tail_len;
    sesh_cgroup *cg;           /* its control group, NULL where the pool has none */
    size_t memory;             /* what the group holds its processes to */
};

/* ---- small helpers ---- */

/* Deadlines here are signed: what is left of one may be negative. */
static long long now_ms(void)
{
    return (long long)sesh_now_ms();
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- the sandbox's host uid ----
 * A root pool gives each sandbox a uid of its own, from a range no account
 * uses: what one sandbox owns or runs is then nobody else's on the host. */

static uid_t allocate_uid(void)
{
    static atomic_uint next;
    static atomic_int seeded;
    if (!atomic_exchange(&seeded, 1))
        atomic_store(&next, ((unsigned)getpid() * 7919u) % UID_RANGE);
    return (uid_t)(UID_BASE + atomic_fetch_add(&next, 1) % UID_RANGE);
}

/* ---- console tail ---- */

static void drain_console(sesh_sandbox *sb)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(sb->console, buf, sizeof buf);
        if (n <= 0) {
            if (n == 0)
                close_fd(&sb->console);
            return;
        }
        size_t take = (size_t)n > TAIL_SIZE ? TAIL_SIZE : (size_t)n;
        const char *src = buf + (size_t)n - take;
        if (sb->tail_len + take > TAIL_SIZE) {
            size_t drop = sb->tail_len + take - TAIL_SIZE;
            memmove(sb->tail, sb->tail + drop, sb->tail_len - drop);
            sb->tail_len -= drop;
        }
        memcpy(sb->tail + sb->tail_len, src, take);
        sb->tail_len += take;
    }
}

/* The last line or two the sandbox printed, for an error message. */
static char *console_note(sesh_sandbox *sb)
{
    if (sb->console >= 0)
        drain_console(sb);
    size_t len = sb->tail_len;
    while (len && (sb->tail[len - 1] == '\n' || sb->tail[len - 1] == ' '))
        len--;
    if (!len)
        return strdup("");
    size_t start = len > 400 ? len - 400 : 0;
    return sesh_printf(" (the sandbox said: %.*s)", (int)(len - start), sb->tail + start);
}

/* ---- process state ---- */

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV, a segmentation fault";
    case SIGABRT: return "SIGABRT";
    case SIGBUS:  return "SIGBUS";
    case SIGTERM: return "SIGTERM";
    case SIGINT:  return "SIGINT";
    case SIGXCPU: return "SIGXCPU";
    case SIGFPE:  return "SIGFPE";
    case SIGILL:  return "SIGILL";
    case SIGSYS:  return "SIGSYS, a forbidden system call";
    default:      return "a signal";
    }
}

static void ref_open(proc_ref *r, pid_t pid)
{
    r->pid = pid;
    r->fd = pidfd_open(pid, 0);
}

static void ref_signal(const proc_ref *r, int sig)
{
    if (r->fd >= 0)
        pidfd_send_signal(r->fd, sig, NULL, 0);
    else if (r->pid > 0)
        kill(r->pid, sig);
}

/* Waits at most ms for bwrap to exit; 1 if it has been reaped. */
static int reap(sesh_sandbox *sb, int ms)
{
    long long until = now_ms() + ms;
    while (!sb->reaped) {
        int st;
        if (waitpid(sb->bwrap.pid, &st, WNOHANG) == sb->bwrap.pid) {
            sb->reaped = 1;
            sb->wait_status = st;
            break;
        }
        long long left = until - now_ms();
        if (left <= 0)
            break;
        if (sb->bwrap.fd >= 0) {
            struct pollfd p = { .fd = sb->bwrap.fd, .events = POLLIN };
            poll(&p, 1, (int)left);
            until = now_ms();       /* readable or timed out: one last look */
        } else {
            usleep(10000);
        }
    }
    return sb->reaped;
}

/* Why the interpreter is gone, in words. bwrap reports a child killed by
 * signal N as exit code 128 + N. */
static char *death_note(sesh_sandbox *sb)
{
    if (atomic_load(&sb->killed))
        return strdup("the sandbox was killed");
    if (!reap(sb, 1000))
        return strdup("the interpreter closed its channel");
    int st = sb->wait_status;
    if (WIFSIGNALED(st))
        return sesh_printf("the sandbox was killed by signal %d (%s)", WTERMSIG(st),
                      signal_name(WTERMSIG(st)));
    int code = WEXITSTATUS(st);
    if (code > 128)
        return sesh_printf("the interpreter was killed by signal %d (%s)", code - 128,
                      signal_name(code - 128));
    return sesh_printf("the interpreter exited with status %d", code);
}

void sesh_sandbox_interrupt(sesh_sandbox *sb)
{
    if (sb)
        ref_signal(&sb->python, SIGINT);
}

void sesh_sandbox_kill(sesh_sandbox *sb)
{
    if (!sb)
        return;
    atomic_store(&sb->killed, 1);
    /* SIGKILL to a pid namespace's init ends every process in it. */
    ref_signal(&sb->init, SIGKILL);
    ref_signal(&sb->bwrap, SIGKILL);
}

int sesh_sandbox_alive(sesh_sandbox *sb)
{
    if (!sb || atomic_load(&sb->killed) || sb->chan < 0)
        return 0;
    return !reap(sb, 0);
}

void sesh_sandbox_foreground(sesh_sandbox *sb)
{
    if (!sb || !sb->background)
        return;
    sb->background = 0;
    /* Every thread of the uid, which is this sandbox's alone: processes its
     * code forked and threads a library started included. */
    if (setpriority(PRIO_USER, sb->uid, SANDBOX_NICE) < 0) {
        /* it runs at BACKGROUND_NICE: slower, as safe */
    }
    sesh_cgroup_foreground(sb->cg);
}

uid_t sesh_sandbox_uid(sesh_sandbox *sb)
{
    return sb ? sb->uid : (uid_t)-1;
}

pid_t sesh_sandbox_pid(sesh_sandbox *sb)
{
    /* the outer process: bwrap, or init on the fork path */
    return sb ? sb->bwrap.pid : -1;
}

void sesh_sandbox_free(sesh_sandbox *sb)
{
    if (!sb)
        return;
    if (sb->bwrap.pid > 0 && !sb->reaped) {
        sesh_sandbox_kill(sb);
        while (waitpid(sb->bwrap.pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&sb->bwrap.fd);
    close_fd(&sb->init.fd);
    close_fd(&sb->python.fd);
    close_fd(&sb->chan);
    close_fd(&sb->console);
    close_fd(&sb->status_fd);
    close_fd(&sb->data_fd);
    close_fd(&sb->go);
    sesh_cgroup_free(sb->cg);          /* once its last process is gone */
    free(sb);
}

/* ---- frames ---- */

typedef enum {
    IO_OK, IO_EOF, IO_TIMEOUT, IO_ERROR,
    IO_AGAIN,       /* nothing to read yet */
    IO_GONE         /* the watched descriptor hung up: nobody waits for the reply */
} io_result;

/* Waits until chan is ready for `events` or the deadline passes, draining
 * the console meanwhile. deadline < 0: no deadline. watch (NULL: none): the
 * wait ends with IO_GONE when nobody waits for the reply any more. */
static io_result wait_chan(sesh_sandbox *sb, short events, long long deadline, sesh_watch *watch)
{
    for (;;) {
        struct pollfd p[3] = {
            { .fd = sb->chan, .events = events },
            { .fd = sb->console, .events = POLLIN },
            { .fd = watch ? watch->fd : -1, .events = watch ? watch->events : 0 },
        };
        int timeout = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return IO_TIMEOUT;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        if (sb->console < 0)
            p[1].fd = -1;               /* poll skips negative descriptors */
        int n = poll(p, 3, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return IO_ERROR;
        }
        if (sb->console >= 0 && p[1].revents)
            drain_console(sb);
        if (p[2].revents && !watch->still_waiting(watch, p[2].revents))
            return IO_GONE;
        if (p[0].revents & events)
            return IO_OK;
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
            return IO_EOF;
    }
}

static io_result send_all(sesh_sandbox *sb, const char *buf, size_t len, long long deadline)
{
    while (len) {
        ssize_t n = send(sb->chan, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            io_result r = wait_chan(sb, POLLOUT, deadline, NULL);
            if (r != IO_OK)
                return r;
            continue;
        }
        return IO_EOF;
    }
    return IO_OK;
}

/* Header and body leave in one write: the runner then wakes once per request. */
static io_result send_frame(sesh_sandbox *sb, json_t *obj, long long deadline, char **err)
{
    char *body = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = body ? strlen(body) : 0;
    unsigned char *frame = body ? malloc(4 + len) : NULL;
    if (!frame) {
        free(body);
        *err = strdup("cannot encode the request");
        return IO_ERROR;
    }
    frame[0] = (unsigned char)(len >> 24);
    frame[1] = (unsigned char)(len >> 16);
    frame[2] = (unsigned char)(len >> 8);
    frame[3] = (unsigned char)len;
    memcpy(frame + 4, body, len);
    free(body);
    io_result r = send_all(sb, (const char *)frame, 4 + len, deadline);
    free(frame);
    return r;
}

/* What a frame may be: its request's allowance. */
typedef struct {
    const char *op;            /* the request's */
    size_t max_output;         /* execute: its output cap, in characters */
    size_t limit;              /* bytes of its body */
    unsigned depth;            /* of its JSON, containers in containers */
    size_t values;             /* of its JSON, keys included */
} frame_bounds;

/* Both streams at their cap, each character at its largest in JSON (a
 * control character is \u00XX); FRAME_MAX when that does not fit. */
static size_t streams_bytes(size_t max_output)
{
    if (max_output < FRAME_MAX / (2 * JSON_CHAR_MAX))
        return 2 * JSON_CHAR_MAX * max_output;
    return FRAME_MAX;
}

/* An execute reply: both streams at their cap, the result at its cap, and
 * the rest of the reply. */
static frame_bounds execute_bounds(size_t max_output)
{
    frame_bounds b = { .op = "execute", .max_output = max_output, .limit = FRAME_MAX,
                       .depth = EXECUTE_DEPTH, .values = EXECUTE_VALUES };
    size_t streams = streams_bytes(max_output);
    if (streams < FRAME_MAX - RESULT_MAX - FRAME_MARGIN)
        b.limit = streams + RESULT_MAX + FRAME_MARGIN;
    return b;
}

/* A shell reply: both streams at their cap and the rest (no result). */
static frame_bounds shell_bounds(size_t max_output)
{
    frame_bounds b = { .op = "shell", .max_output = max_output, .limit = FRAME_MAX,
                       .depth = SHELL_DEPTH, .values = SHELL_VALUES };
    size_t streams = streams_bytes(max_output);
    if (streams < FRAME_MAX - FRAME_MARGIN)
        b.limit = streams + FRAME_MARGIN;
    return b;
}

static const frame_bounds metadata_bounds = {
    .op = "metadata", .limit = METADATA_FRAME, .depth = METADATA_DEPTH, .values = METADATA_VALUES,
};
static const frame_bounds ready_bounds = {
    .op = "ready", .limit = READY_FRAME, .depth = 1, .values = READY_VALUES,
};

/* The limit a frame broke, in words. */
static char *over_limit(const frame_bounds *b, size_t len)
{
    if (strcmp(b->op, "shell") == 0)
        return sesh_printf("the runner sent a frame of %zu bytes, over the shell reply's limit "
                           "of %zu bytes (stdout and stderr of %zu characters at %d bytes each, "
                           "%u bytes more)", len, b->limit, b->max_output, JSON_CHAR_MAX,
                           FRAME_MARGIN);
    if (strcmp(b->op, "execute") != 0)
        return sesh_printf("the runner sent a frame of %zu bytes, over the %s reply's limit "
                           "of %zu bytes", len, b->op, b->limit);
    return sesh_printf("the runner sent a frame of %zu bytes, over the execute reply's limit "
                       "of %zu bytes (stdout and stderr of %zu characters at %d bytes each, "
                       "a result of %u bytes, %u bytes more)", len, b->limit, b->max_output,
                       JSON_CHAR_MAX, RESULT_MAX, FRAME_MARGIN);
}

/* A frame being read: the header, then the body, its JSON scanned as it
 * comes. Survives a timeout so the read can resume after the interrupt. */
typedef struct {
    const frame_bounds *bounds;
    unsigned char head[4];
    size_t have_head;
    char *body;
    size_t len, have;
    sesh_json_scan scan;
} frame_reader;

static frame_reader new_reader(const frame_bounds *bounds)
{
    frame_reader f = { .bounds = bounds };
    sesh_json_scan_init(&f.scan, bounds->depth, bounds->values);
    return f;
}

/* The header tells the body's length; a body over the limit is refused
 * before any of it is read. */
static io_result start_body(frame_reader *f, char **err)
{
    f->len = (size_t)f->head[0] << 24 | (size_t)f->head[1] << 16 |
             (size_t)f->head[2] << 8 | f->head[3];
    if (f->len > f->bounds->limit) {
        *err = over_limit(f->bounds, f->len);
        return IO_ERROR;
    }
    f->body = malloc(f->len + 1);
    if (!f->body) {
        *err = sesh_printf("out of memory for a reply of %zu bytes", f->len);
        return IO_ERROR;
    }
    return IO_OK;
}

/* n more bytes of the body arrived at f->body + f->have. */
static io_result took_body(frame_reader *f, size_t n, char **err)
{
    sesh_scan_status st = sesh_json_scan_feed(&f->scan, f->body + f->have, n);
    f->have += n;
    if (st == SESH_SCAN_TOO_DEEP)
        *err = sesh_printf("the runner's reply nests JSON deeper than %u levels, which no "
                           "reply does", f->bounds->depth);
    else if (st == SESH_SCAN_TOO_MANY)
        *err = sesh_printf("the runner's reply holds more than %zu JSON values, which no "
                           "reply does", f->bounds->values);
    return st == SESH_SCAN_OK ? IO_OK : IO_ERROR;
}

/* A small reply (most are) comes in one read, header and body together. The
 * runner speaks only when asked, so bytes past the frame are a broken runner. */
static io_result read_small_frame(sesh_sandbox *sb, frame_reader *f, char **err)
{
    char buf[8192];
    ssize_t n;
    while ((n = recv(sb->chan, buf, sizeof buf, 0)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        return IO_EOF;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_EOF;
    size_t got = (size_t)n, head = got < 4 ? got : 4;
    memcpy(f->head, buf, head);
    f->have_head = head;
    if (head < 4)
        return IO_OK;
    io_result r = start_body(f, err);
    if (r != IO_OK)
        return r;
    if (got - 4 > f->len) {
        *err = sesh_printf("the runner spoke out of turn: %zu bytes came after its reply",
                           got - 4 - f->len);
        return IO_ERROR;
    }
    memcpy(f->body, buf + 4, got - 4);
    return took_body(f, got - 4, err);
}

static io_result read_frame(sesh_sandbox *sb, frame_reader *f, long long deadline,
                            sesh_watch *watch, char **err)
{
    while (f->have_head == 0) {
        io_result r = read_small_frame(sb, f, err);
        if (r == IO_AGAIN)
            r = wait_chan(sb, POLLIN, deadline, watch);
        if (r != IO_OK)
            return r;
    }
    while (f->have_head < 4) {
        size_t want = 4 - f->have_head;
        ssize_t n = recv(sb->chan, f->head + f->have_head, want, 0);
        if (n > 0) { f->have_head += (size_t)n; continue; }
        if (n == 0) return IO_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IO_EOF;
        io_result r = wait_chan(sb, POLLIN, deadline, watch);
        if (r != IO_OK) return r;
    }
    if (!f->body) {
        io_result r = start_body(f, err);
        if (r != IO_OK)
            return r;
    }
    while (f->have < f->len) {
        size_t want = f->len - f->have;
        ssize_t n = recv(sb->chan, f->body + f->have, want, 0);
        if (n > 0) {
            io_result r = took_body(f, (size_t)n, err);
            if (r != IO_OK) return r;
            continue;
        }
        if (n == 0) return IO_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IO_EOF;
        io_result r = wait_chan(sb, POLLIN, deadline, watch);
        if (r != IO_OK) return r;
    }
    return IO_OK;
}

/* Parses a whole frame, whose scan bounded what jansson may build; the body
 * is freed at once, so a reply never costs its text and its values for long. */
static json_t *parse_frame(frame_reader *f, char **err)
{
    json_error_t jerr;
    json_t *v = json_loadb(f->body, f->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    free(f->body);
    f->body = NULL;
    if (!v)
        *err = sesh_printf("the runner's reply is not valid JSON: %s (at byte %d)",
                           jerr.text, jerr.position);
    return v;
}

/* The runner speaks only when asked: bytes waiting before a request were
 * written out of turn (by the user's code, or a second reply). */
static char *out_of_turn(sesh_sandbox *sb)
{
    int pending = 0;
    if (ioctl(sb->chan, FIONREAD, &pending) < 0 || pending <= 0)
        return NULL;
    return sesh_printf("the runner spoke out of turn: %d bytes came while no request was "
                       "pending", pending);
}

/* ---- reply validation ---- */

/* Number of UTF-8 characters, and the byte offset of character `limit`. */
static size_t utf8_cut(const char *s, size_t len, size_t limit, size_t *chars)
{
    size_t count = 0, cut = len;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (count == limit)
                cut = i;
            count++;
        }
    }
    *chars = count;
    return cut;
}

/* Enforces max_output on a stream even if the runner did not. */
static void cap_stream(json_t *reply, const char *key, const char *flag, size_t limit)
{
    json_t *s = json_object_get(reply, key);
    size_t chars;
    size_t len = json_string_length(s);
    size_t cut = utf8_cut(json_string_value(s), len, limit, &chars);
    if (chars > limit) {
        json_object_set_new(reply, key, json_stringn(json_string_value(s), cut));
        json_object_set_new(reply, flag, json_true());
    }
}

/* Every reply echoes its request's number: one that does not answers
 * another request (a second reply, or a frame the user's code wrote). The
 * number is then removed: it is the channel's, not the reply's. */
static char *check_turn(json_t *reply, long long seq)
{
    if (!json_is_object(reply))
        return strdup("the runner's reply is not a JSON object");
    json_t *n = json_object_get(reply, "seq");
    if (!json_is_integer(n))
        return strdup("the runner spoke out of turn: its reply carries no request number");
    if (json_integer_value(n) != seq)
        return sesh_printf("the runner spoke out of turn: its reply answers request %lld, "
                           "not %lld", (long long)json_integer_value(n), seq);
    json_object_del(reply, "seq");
    return NULL;
}

/* A result as section 6 of pool-api.md has it, its text (an image's base64)
 * within the result cap. */
static char *check_result(json_t *r)
{
    size_t len = 0;
    if (json_is_object(r)) {
        json_t *type = json_object_get(r, "type"), *fmt = json_object_get(r, "format"),
               *data = json_object_get(r, "base64_data");
        if (json_object_size(r) != 3 || !json_is_string(type) ||
            strcmp(json_string_value(type), "image") != 0 || !json_is_string(fmt) ||
            strcmp(json_string_value(fmt), "png") != 0 || !json_is_string(data))
            return strdup("the runner's reply has no valid 'result'");
        len = json_string_length(data);
    } else if (json_is_string(r)) {
        len = json_string_length(r);
    } else if (!json_is_number(r) && !json_is_boolean(r) && !json_is_null(r)) {
        return strdup("the runner's reply has no valid 'result'");
    }
    if (len > RESULT_MAX)
        return sesh_printf("the runner's result of %zu bytes is over the result limit of %u "
                           "bytes", len, RESULT_MAX);
    return NULL;
}

/* The runner dropped a result over the cap, and says so with
 * {"kind": "image"|"value", "bytes": N}. */
static char *check_dropped_result(json_t *d)
{
    json_t *kind = json_object_get(d, "kind"), *bytes = json_object_get(d, "bytes");
    const char *k = json_string_value(kind);
    if (!json_is_object(d) || json_object_size(d) != 2 || !k ||
        (strcmp(k, "image") != 0 && strcmp(k, "value") != 0) || !json_is_integer(bytes) ||
        json_integer_value(bytes) <= (json_int_t)RESULT_MAX)
        return strdup("the runner's 'result_too_large' is not {kind, bytes}");
    return NULL;
}

/* Appends `line` to a reply's stderr. */
static void append_stderr(json_t *reply, const char *line)
{
    const char *old = json_string_value(json_object_get(reply, "stderr"));
    char *text = sesh_printf("%s%s%s", old ? old : "", old && *old ? "\n" : "", line);
    json_object_set_new(reply, "stderr", json_string(text));
    free(text);
}

/* Makes a reply a failure whose stderr ends with `line`. */
static void fail_reply(json_t *reply, const char *line)
{
    append_stderr(reply, line);
    json_object_set_new(reply, "status", json_string("Failure"));
    json_object_set_new(reply, "result", json_null());
}

/* A result the runner dropped: the user is told why, and what to do. */
static void mark_dropped_result(json_t *reply)
{
    json_t *d = json_object_get(reply, "result_too_large");
    if (!d)
        return;
    int image = strcmp(json_string_value(json_object_get(d, "kind")), "image") == 0;
    long long bytes = (long long)json_integer_value(json_object_get(d, "bytes"));
    char *line = sesh_printf("sesh: the cell's result (%s %lld bytes as JSON) is over the "
                             "limit of %u bytes and was not returned. %s\n",
                             image ? "an image whose base64 takes" : "a value whose text takes",
                             bytes, RESULT_MAX,
                             image ? "Save the figure to a file in /mnt/data and download it, "
                                     "or make it smaller (figsize, dpi)."
                                   : "Return a part of it, or write it to a file in /mnt/data "
                                     "and download it.");
    fail_reply(reply, line);
    free(line);
    json_object_del(reply, "result_too_large");
}

static char *check_execute_reply(json_t *reply, size_t max_output)
{
    json_t *error = json_object_get(reply, "error");
    if (json_is_string(error))
        return sesh_printf("the runner refused the request: %.200s", json_string_value(error));
    json_t *status = json_object_get(reply, "status");
    if (!json_is_string(status) || (strcmp(json_string_value(status), "Success") != 0 &&
                                    strcmp(json_string_value(status), "Failure") != 0))
        return strdup("the runner's reply has no status Success or Failure");
    static const char *const strings[] = { "stdout", "stderr" };
    for (int i = 0; i < 2; i++)
        if (!json_is_string(json_object_get(reply, strings[i])))
            return sesh_printf("the runner's reply has no string '%s'", strings[i]);
    static const char *const flags[] = { "stdout_truncated", "stderr_truncated" };
    for (int i = 0; i < 2; i++)
        if (!json_is_boolean(json_object_get(reply, flags[i])))
            return sesh_printf("the runner's reply has no boolean '%s'", flags[i]);
    json_t *ms = json_object_get(reply, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0)
        return strdup("the runner's reply has no non-negative integer 'ms'");
    json_t *result = json_object_get(reply, "result");
    char *bad = result ? check_result(result) : strdup("the runner's reply has no 'result'");
    if (bad)
        return bad;
    json_t *dropped = json_object_get(reply, "result_too_large");
    if (dropped && (bad = check_dropped_result(dropped)) != NULL)
        return bad;
    if (json_object_size(reply) != 7u + (dropped != NULL))
        return strdup("the runner's reply has unknown fields");
    cap_stream(reply, "stdout", "stdout_truncated", max_output);
    cap_stream(reply, "stderr", "stderr_truncated", max_output);
    mark_dropped_result(reply);
    return NULL;
}

/* A shell reply (see sandbox.h), its streams within the cap. */
static char *check_shell_reply(json_t *reply, size_t max_output)
{
    json_t *error = json_object_get(reply, "error");
    if (json_is_string(error))
        return sesh_printf("the runner refused the request: %.200s", json_string_value(error));
    json_t *code = json_object_get(reply, "exit_code");
    if (!code || !(json_is_null(code) || (json_is_integer(code) && json_integer_value(code) >= 0 &&
                                          json_integer_value(code) <= 255)))
        return strdup("the runner's reply has no 'exit_code' from 0 to 255 or null");
    static const char *const strings[] = { "stdout", "stderr" };
    for (int i = 0; i < 2; i++)
        if (!json_is_string(json_object_get(reply, strings[i])))
            return sesh_printf("the runner's reply has no string '%s'", strings[i]);
    static const char *const flags[] = { "stdout_truncated", "stderr_truncated", "new_shell",
                                         "shell_ended" };
    for (int i = 0; i < 4; i++)
        if (!json_is_boolean(json_object_get(reply, flags[i])))
            return sesh_printf("the runner's reply has no boolean '%s'", flags[i]);
    json_t *ms = json_object_get(reply, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0)
        return strdup("the runner's reply has no non-negative integer 'ms'");
    if (json_object_size(reply) != 8)
        return strdup("the runner's reply has unknown fields");
    cap_stream(reply, "stdout", "stdout_truncated", max_output);
    cap_stream(reply, "stderr", "stderr_truncated", max_output);
    return NULL;
}

static char *check_metadata_reply(json_t *reply)
{
    json_t *ipython = json_object_get(reply, "ipython");
    if (!json_is_string(json_object_get(reply, "python")) ||
        !json_is_string(json_object_get(reply, "bash")) || (ipython && !json_is_string(ipython)))
        return strdup("the runner's metadata lacks the python or bash version");
    json_t *pkgs = json_object_get(reply, "packages");
    if (!json_is_array(pkgs))
        return strdup("the runner's metadata has no 'packages' array");
    size_t i;
    json_t *p;
    json_array_foreach(pkgs, i, p)
        if (!json_is_object(p) || !json_is_string(json_object_get(p, "name")) ||
            !json_is_string(json_object_get(p, "version")))
            return sesh_printf("package %zu of the runner's metadata is not {name, version}", i);
    return NULL;
}

/* ---- disk use of the data directory ----
 * Watched only while the code makes it grow, so that code deleting files
 * from an over-full directory may still run. */

/* NULL while within the limits or not growing; else what is wrong, in words. */
static char *disk_trouble(sesh_sandbox *sb, unsigned long long before)
{
    sesh_disk_usage u;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    sesh_disk_measure(sb->data_fd, &u);
    clock_gettime(CLOCK_MONOTONIC, &b);
    sb->disk_walk_us = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
    sb->disk_last = u.bytes;
    if (u.too_deep)
        return sesh_printf("/mnt/data has directories nested deeper than %d levels",
                      SESH_DISK_MAX_DEPTH);
    if (u.entries > SESH_DISK_MAX_ENTRIES)
        return sesh_printf("/mnt/data holds more than %d files", SESH_DISK_MAX_ENTRIES);
    if (u.bytes > sb->disk_limit && u.bytes > before)
        return sesh_printf("/mnt/data holds %llu bytes, over the session's limit of %zu bytes",
                      u.bytes, sb->disk_limit);
    unsigned long long free_bytes;
    if (sb->min_free_disk && u.bytes > before &&
        (free_bytes = sesh_disk_available(sb->data_fd)) < sb->min_free_disk)
        return sesh_printf("the pool's disk has %llu bytes free, below the floor of %zu bytes it "
                      "keeps for the host", free_bytes, sb->min_free_disk);
    return NULL;
}

/* When to measure again while code runs: often while a walk of data_dir is
 * cheap, so code filling it fast is stopped soon past the limit; seldom when
 * it holds so many files that walking would take the machine's time. */
static long long next_disk_check(const sesh_sandbox *sb, long long now)
{
    long long ms = sb->disk_walk_us * DISK_CHECK_SHARE / 1000;
    if (ms < DISK_CHECK_MIN_MS)
        ms = DISK_CHECK_MIN_MS;
    if (ms > DISK_CHECK_MAX_MS)
        ms = DISK_CHECK_MAX_MS;
    return now + ms;
}

/* What data_dir held before an execution, for disk_trouble's "is it
 * growing". Any value within the limit gives the same verdict (over the limit
 * at all is then growth), so the last execution's closing measure will do
 * when it was within the limit and the pool changed no file since; else it
 * is measured. (Processes a cell left running may write between executions:
 * growth the next cell is then stopped for, as it should be.) */
static unsigned long long disk_bytes_before(sesh_sandbox *sb)
{
    if (!sb->disk_last_ok || sb->disk_last > sb->disk_limit ||
        atomic_load(&sb->disk_gen) != sb->disk_last_gen) {
        sesh_disk_usage u;
        sesh_disk_measure(sb->data_fd, &u);
        return u.bytes;
    }
    return sb->disk_last;
}

/* The closing measure of an execution, kept for the next one's start. */
static char *disk_trouble_at_end(sesh_sandbox *sb, unsigned long long before)
{
    unsigned gen = atomic_load(&sb->disk_gen);    /* before measuring: a change
                                                     during the walk stays seen */
    char *why = disk_trouble(sb, before);
    sb->disk_last_gen = gen;
    sb->disk_last_ok = 1;
    return why;
}

void sesh_sandbox_files_changed(sesh_sandbox *sb)
{
    if (sb)
        atomic_fetch_add(&sb->disk_gen, 1);
}

/* The reply of code stopped for its disk use: a failure that says why (a
 * shell command's: no exit code, and "stopped" says why). */
static void mark_disk_failure(json_t *reply, const char *why, int shell)
{
    char *line = sesh_printf("sesh: %s; the code was stopped. Delete files to make room.\n", why);
    if (shell) {
        append_stderr(reply, line);
        json_object_set_new(reply, "exit_code", json_null());
        json_object_set_new(reply, "stopped", json_string(why));
    } else {
        fail_reply(reply, line);
    }
    free(line);
}

/* ---- execute ---- */

static char *check_request(json_t *request, const char **op, size_t *max_output)
{
    if (!json_is_object(request))
        return strdup("the request is not a JSON object");
    json_t *o = json_object_get(request, "op");
    *op = json_string_value(o);
    if (!*op)
        return strdup("the request has no string 'op'");
    if (strcmp(*op, "metadata") == 0)
        return NULL;
    if (strcmp(*op, "shell") == 0) {
        json_t *line = json_object_get(request, "command"), *args = json_object_get(request, "args");
        if (!json_is_string(line) == !json_is_array(args))
            return strdup("the shell request has not exactly one of a string 'command' and "
                          "an array 'args'");
    } else if (strcmp(*op, "execute") != 0) {
        return sesh_printf("unknown op '%s' (execute, shell or metadata)", *op);
    } else if (!json_is_string(json_object_get(request, "code"))) {
        return strdup("the execute request has no string 'code'");
    }
    json_t *m = json_object_get(request, "max_output");
    *max_output = 4096;
    if (m) {
        if (!json_is_integer(m) || json_integer_value(m) < 0)
            return strdup("'max_output' must be a non-negative integer");
        *max_output = (size_t)json_integer_value(m);
    }
    return NULL;
}

/* The request as the runner gets it: numbered, and told the result cap. */
static json_t *numbered(sesh_sandbox *sb, json_t *request, int execute)
{
    json_t *sent = json_copy(request);      /* shallow: the code is shared, not copied */
    if (!sent)
        return NULL;
    json_object_set_new(sent, "seq", json_integer(++sb->seq));
    if (execute)
        json_object_set_new(sent, "max_result", json_integer(RESULT_MAX));
    return sent;
}

static sesh_run_status lost(sesh_sandbox *sb, char **err, char *why)
{
    sesh_sandbox_kill(sb);
    reap(sb, 2000);         /* a zombie would still count against the uid's limits */
    char *note = console_note(sb);
    *err = sesh_printf("interpreter lost: %s%s", why ? why : "unknown reason", note ? note : "");
    free(why);
    free(note);
    close_fd(&sb->chan);
    return SESH_RUN_LOST;
}

/* What a reply is waited for with: the timeout, then the interrupt and its
 * repetitions until the grace period ends; the disk watch meanwhile. */
typedef struct {
    long long deadline;        /* the timeout, then the end of the grace; -1: none */
    long long next_interrupt;  /* -1 until the code is interrupted */
    long long next_disk_check; /* -1: not watching */
    unsigned long long disk_before;
    int timed_out;
    sesh_watch *watch;         /* who waits for the reply; NULL: not watched (any more) */
    int abandoned;             /* it hung up: the code was interrupted for that */
    char *disk_stop;           /* why the disk watch stopped the code */
} waiting;

static void start_interrupt(sesh_sandbox *sb, waiting *w, long long now)
{
    sesh_sandbox_interrupt(sb);
    w->deadline = now + INTERRUPT_GRACE_MS;
    w->next_interrupt = now + INTERRUPT_REPEAT_MS;
}

static long long next_wake(const waiting *w)
{
    long long wake = w->deadline;
    const long long others[] = { w->next_interrupt, w->next_disk_check };
    for (int i = 0; i < 2; i++)
        if (others[i] >= 0 && (wake < 0 || others[i] < wake))
            wake = others[i];
    return wake;
}

/* Called each time a wait ends without a reply. 0 to wait on; -1 when the
 * grace period is over: the code would not stop. */
static int on_wake(sesh_sandbox *sb, waiting *w)
{
    long long now = now_ms();
    /* Python may drop a KeyboardInterrupt raised where it cannot propagate
     * (a finalizer, an at-fork hook): press Ctrl-C again. */
    if (w->next_interrupt >= 0 && now >= w->next_interrupt) {
        sesh_sandbox_interrupt(sb);
        w->next_interrupt = now + INTERRUPT_REPEAT_MS;
    }
    if (w->next_disk_check >= 0 && now >= w->next_disk_check) {
        w->disk_stop = disk_trouble(sb, w->disk_before);
        w->next_disk_check = w->disk_stop ? -1 : next_disk_check(sb, now);
        if (w->disk_stop && w->next_interrupt < 0)
            start_interrupt(sb, w, now);
    }
    if (w->deadline < 0 || now < w->deadline)
        return 0;
    if (w->next_interrupt >= 0)
        return -1;
    w->timed_out = 1;
    start_interrupt(sb, w, now);
    return 0;
}

static sesh_run_status execute_frame(sesh_sandbox *sb, json_t *request, int timeout_ms,
                                     sesh_watch *watch, json_t **reply, char **err)
{
    *reply = NULL;
    *err = NULL;
    const char *op = NULL;
    size_t max_output = 4096;
    char *bad = check_request(request, &op, &max_output);
    if (bad) {
        /* The pool's own mistake: the sandbox is fine, but the contract has
         * no outcome for it, so say it as loudly as a loss. */
        *err = sesh_printf("bad request to the sandbox: %s", bad);
        free(bad);
        return SESH_RUN_LOST;
    }
    if (!sb) {
        *err = strdup("interpreter lost: there is no sandbox");
        return SESH_RUN_LOST;
    }
    if (sb->chan < 0 || atomic_load(&sb->killed))
        return lost(sb, err, strdup("the sandbox is no longer running"));
    char *turn = out_of_turn(sb);
    if (turn)
        return lost(sb, err, turn);

    int execute = strcmp(op, "execute") == 0, shell = strcmp(op, "shell") == 0;
    long long now = now_ms();
    waiting w = { .deadline = timeout_ms > 0 ? now + timeout_ms : -1,
                  .next_interrupt = -1, .next_disk_check = -1, .watch = watch };
    if ((execute || shell) && sb->data_fd >= 0) {
        w.disk_before = disk_bytes_before(sb);
        sb->disk_last_ok = 0;          /* until this execution's closing measure */
        w.next_disk_check = next_disk_check(sb, now);
    }

    char *why = NULL;
    json_t *sent = numbered(sb, request, execute);
    io_result r = sent ? send_frame(sb, sent, w.deadline, &why) : IO_ERROR;
    json_decref(sent);
    if (r == IO_TIMEOUT)
        return lost(sb, err, sesh_printf("the runner took no request for %d ms", timeout_ms));
    if (r != IO_OK)
        return lost(sb, err, why ? why : death_note(sb));

    frame_bounds bounds = execute ? execute_bounds(max_output)
                        : shell ? shell_bounds(max_output) : metadata_bounds;
    frame_reader f = new_reader(&bounds);
    while ((r = read_frame(sb, &f, next_wake(&w), w.watch, &why)) == IO_TIMEOUT ||
           r == IO_GONE) {
        if (r == IO_GONE) {             /* nobody waits for what the code computes */
            w.watch = NULL;
            w.abandoned = 1;
            if (w.next_interrupt < 0)
                start_interrupt(sb, &w, now_ms());
            continue;
        }
        if (on_wake(sb, &w) < 0) {
            free(f.body);
            why = sesh_printf("the code did not stop within %d ms of the interrupt %s; the "
                         "sandbox was killed", INTERRUPT_GRACE_MS,
                         w.disk_stop ? w.disk_stop : w.abandoned ?
                         "when its client went away" : "at the timeout");
            free(w.disk_stop);
            return lost(sb, err, why);
        }
    }
    json_t *v = r == IO_OK ? parse_frame(&f, &why) : NULL;
    free(f.body);
    if (v && !why)
        why = check_turn(v, sb->seq);
    if (v && !why)
        why = execute ? check_execute_reply(v, max_output)
            : shell ? check_shell_reply(v, max_output) : check_metadata_reply(v);
    if (!v || why) {
        json_decref(v);
        free(w.disk_stop);
        return lost(sb, err, why ? why : death_note(sb));
    }
    if ((execute || shell) && sb->data_fd >= 0 && !w.disk_stop)
        w.disk_stop = disk_trouble_at_end(sb, w.disk_before);
    if (w.disk_stop) {
        mark_disk_failure(v, w.disk_stop, shell);
        free(w.disk_stop);
    }
    *reply = v;
    return w.timed_out ? SESH_RUN_TIMED_OUT : w.abandoned ? SESH_RUN_ABANDONED : SESH_RUN_OK;
}

/* ---- memory ----
 * Past its memory, the kernel kills the largest process of the sandbox's
 * group (the group's only: no other session's, not the pool). Its count of
 * such kills, read around an execution, tells whether that happened to this
 * one; the answer then says so, as the disk watch says its own. */

static char *memory_note(const sesh_sandbox *sb, const char *victims)
{
    return sesh_printf("the session ran out of memory: its processes may use %zu bytes together, "
                  "its files in /tmp and /dev/shm included (sesh-pool --session-memory), and "
                  "the kernel killed %s", sb->memory, victims);
}

/* A Python reply becomes a Failure; a shell reply keeps its exit code (that
 * of a killed process, most likely) and says why. */
static void mark_memory_failure(sesh_sandbox *sb, json_t *reply, long long kills)
{
    const char *old = json_string_value(json_object_get(reply, "stderr"));
    char victims[64] = "one of them";
    if (kills > 1)
        snprintf(victims, sizeof victims, "%lld of them", kills);
    char *note = memory_note(sb, victims);
    char *text = note ? sesh_printf("%s%ssesh: %s.\n", old ? old : "", old && *old ? "\n" : "", note)
                      : NULL;
    if (text)
        json_object_set_new(reply, "stderr", json_string(text));
    free(text);
    free(note);
    if (json_object_get(reply, "exit_code"))
        return;
    json_object_set_new(reply, "status", json_string("Failure"));
    json_object_set_new(reply, "result", json_null());
}

sesh_run_status sesh_sandbox_execute(sesh_sandbox *sb, json_t *request, int timeout_ms,
                                     sesh_watch *watch, json_t **reply, char **err)
{
    long long before = sb ? sesh_cgroup_oom_kills(sb->cg) : -1;
    sesh_run_status st = execute_frame(sb, request, timeout_ms, watch, reply, err);
    long long kills = before < 0 ? 0 : sesh_cgroup_oom_kills(sb->cg) - before;
    if (kills <= 0)
        return st;
    if (*reply) {
        mark_memory_failure(sb, *reply, kills);
    } else if (st == SESH_RUN_LOST && *err) {
        static const char lost_prefix[] = "interpreter lost: ";
        const char *was = *err;
        if (strncmp(was, lost_prefix, sizeof lost_prefix - 1) == 0)
            was += sizeof lost_prefix - 1;
        char *note = memory_note(sb, "the interpreter");
        char *why = note ? sesh_printf("%s%s (%s)", lost_prefix, note, was) : NULL;
        if (why) {
            free(*err);
            *err = why;
        }
        free(note);
    }
    return st;
}

/* ---- start ---- */

/* bwrap's first status line: { "child-pid": N }; the forked sandbox's outer
 * process writes the same. */
static pid_t read_child_pid(sesh_sandbox *sb, long long deadline, char **why)
{
    const char *who = sb->forked ? "the forked sandbox" : "bwrap";
    char buf[256];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        struct pollfd p = { .fd = sb->status_fd, .events = POLLIN };
        long long left = deadline - now_ms();
        if (left <= 0) {
            *why = sesh_printf("%s did not report its init in time", who);
            return -1;
        }
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            break;
        ssize_t n = read(sb->status_fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        if (memchr(buf, '\n', have))
            break;
    }
    buf[have] = 0;
    json_t *v = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
    json_t *pid = json_object_get(v, "child-pid");
    pid_t result = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : -1;
    json_decref(v);
    if (result <= 0)
        *why = sesh_printf("%s did not start its init", who);
    return result;
}

/* The interpreter is the only child of the namespace's init. */
static pid_t find_interpreter(pid_t init)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)init, (int)init);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int pid = -1;
    if (!fgets(buf, sizeof buf, f) || sscanf(buf, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid;
}

static int wait_ready(sesh_sandbox *sb, long long deadline, char **why)
{
    frame_reader f = new_reader(&ready_bounds);
    io_result r = read_frame(sb, &f, deadline, NULL, why);
    if (r == IO_TIMEOUT) {
        free(f.body);
        *why = sesh_printf("the runner was not ready within %d ms", START_TIMEOUT_MS);
        return -1;
    }
    if (r != IO_OK) {
        free(f.body);
        if (!*why)
            *why = death_note(sb);
        return -1;
    }
    json_t *v = parse_frame(&f, why);
    free(f.body);
    json_t *op = json_object_get(v, "op");
    int ok = json_is_string(op) && strcmp(json_string_value(op), "ready") == 0;
    json_decref(v);
    if (!ok && !*why)
        *why = strdup("the runner's first message is not 'ready'");
    return ok ? 0 : -1;
}

/* A root pool runs the sandbox as another uid, which must own data_dir. */
static char *give_data_dir(sesh_sandbox *sb, const char *data_dir)
{
    if (sb->data_fd < 0 || fchown(sb->data_fd, sb->uid, sb->uid) < 0)
        return sesh_printf("cannot give %s to uid %u: %s", data_dir, (unsigned)sb->uid,
                      strerror(errno));
    sesh_disk_give(sb->data_fd, sb->uid);
    return NULL;
}

/* The sandbox's own accounts, as a memory file. */
static int accounts_fd(const char *name, const char *fmt, uid_t uid)
{
    char text[256];
    snprintf(text, sizeof text, fmt, (unsigned)uid, (unsigned)uid);
    return sesh_memfd(name, text, strlen(text));
}

/* Opens the descriptors the child gets (see sandbox_spawn.h) into fds, and
 * keeps our ends of the channel, console and status pipes in sb. A forked
 * sandbox has its runner already (no SESH_FD_RUNNER). */
static char *open_descriptors(sesh_sandbox *sb, int fds[SESH_SPAWN_FDS], int forked)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        return sesh_printf("socketpair: %s", strerror(errno));
    sb->chan = pair[0];
    fds[SESH_FD_CHANNEL] = pair[1];
    if (pipe2(pair, O_CLOEXEC) < 0)
        return sesh_printf("pipe: %s", strerror(errno));
    sb->console = pair[0];
    fds[SESH_FD_OUT] = pair[1];
    fds[SESH_FD_ERR] = fcntl(pair[1], F_DUPFD_CLOEXEC, 0);
    if (pipe2(pair, O_CLOEXEC) < 0)
        return sesh_printf("pipe: %s", strerror(errno));
    sb->status_fd = pair[0];
    fds[SESH_FD_STATUS] = pair[1];
    fcntl(sb->chan, F_SETFL, O_NONBLOCK);
    fcntl(sb->console, F_SETFL, O_NONBLOCK);
    fcntl(sb->status_fd, F_SETFL, O_NONBLOCK);

    fds[SESH_FD_NULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (!forked)
        fds[SESH_FD_RUNNER] = sesh_memfd("sesh-runner", sesh_runner_py, sesh_runner_py_len);
    fds[SESH_FD_PASSWD] = accounts_fd("sesh-passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                      "sesh:x:%u:%u:sesh:/tmp:/usr/sbin/nologin\n", sb->uid);
    fds[SESH_FD_GROUP] = accounts_fd("sesh-group", "root:x:0:\nsesh:x:%u:\n", sb->uid);
    for (int i = 0; i < SESH_SPAWN_FDS; i++)
        if (i != SESH_FD_SECCOMP && fds[i] < 0 && !(forked && i == SESH_FD_RUNNER))
            return sesh_printf("cannot prepare descriptor %d: %s", i, strerror(errno));
    char *why = NULL;
    fds[SESH_FD_SECCOMP] = sesh_seccomp_filter_fd(&why);
    return why;
}

/* The private /tmp's size. By default below the disk allowance, which also
 * caps any one file (RLIMIT_FSIZE): a full /tmp then says ENOSPC, as a full
 * disk does, not EFBIG. */
static size_t tmp_size(const sesh_sandbox_config *cfg, size_t disk_limit)
{
    if (cfg->tmp_size)
        return cfg->tmp_size;
    size_t most = disk_limit / 4 * 3;
    return DEFAULT_TMP_SIZE < most ? DEFAULT_TMP_SIZE : most;
}

static int max_processes(const sesh_sandbox_config *cfg)
{
    return cfg->max_processes > 0 ? cfg->max_processes : DEFAULT_PROCESSES;
}

/* The sandbox's own control group, where the pool has them: all its
 * processes' memory (its files in /tmp and /dev/shm too), their CPU share,
 * and their number once more, counted by the kernel as a whole. */
static char *make_cgroup(sesh_sandbox *sb, const sesh_sandbox_config *cfg)
{
    sb->memory = cfg->session_memory ? cfg->session_memory : SESH_SANDBOX_DEFAULT_MEMORY;
    sesh_cgroup_limits limits = {
        .memory = sb->memory,
        .tasks = max_processes(cfg) + 2,    /* the outer process and the namespace's init */
        .background = sb->background,
    };
    char *err = NULL;
    sb->cg = sesh_cgroup_new(&limits, &err);
    return err;
}

/* The limits every process of the sandbox starts with, set in its outer
 * process: an address space, the largest file (never above the whole disk
 * allowance), open files, no core dumps. RLIMIT_NPROC is set inside. */
typedef struct {
    int id;
    const char *name;
    rlim_t value;
} limit;

static int sandbox_limits(const sesh_sandbox *sb, const sesh_sandbox_config *cfg,
                          limit out[SESH_SPAWN_LIMITS])
{
    size_t file_size = cfg->file_size_limit ? cfg->file_size_limit : DEFAULT_FILE_SIZE;
    if (file_size > sb->disk_limit)
        file_size = sb->disk_limit;
    int files = cfg->max_open_files > 0 ? cfg->max_open_files : DEFAULT_OPEN_FILES;
    out[0] = (limit){ RLIMIT_AS, "setrlimit(RLIMIT_AS)",
                      cfg->memory_limit ? cfg->memory_limit : DEFAULT_MEMORY };
    out[1] = (limit){ RLIMIT_FSIZE, "setrlimit(RLIMIT_FSIZE)", file_size };
    out[2] = (limit){ RLIMIT_NOFILE, "setrlimit(RLIMIT_NOFILE)", (rlim_t)files };
    out[3] = (limit){ RLIMIT_CORE, "setrlimit(RLIMIT_CORE)", 0 };
    return 4;
}

static char *spawn_bwrap(sesh_sandbox *sb, const sesh_sandbox_config *cfg, int as_root,
                         const int fds[SESH_SPAWN_FDS])
{
    /* A pool that may mount shows bwrap data_dir at HOST_STAGE: its command
     * line, which the sandbox's init shows in /proc/1/cmdline, then names no
     * path of the host. */
    int stage = as_root || sesh_may_mount();
    sesh_bwrap_options o = {
        .python = cfg->python && *cfg->python ? cfg->python : DEFAULT_PYTHON,
        .python_dirs = cfg->python_dirs,
        .network = cfg->network,
        .data_src = stage ? HOST_STAGE : cfg->data_dir,
        .tmp_size = tmp_size(cfg, sb->disk_limit),
        .shm_size = DEFAULT_SHM_SIZE,
        /* RLIMIT_NPROC counts a uid's processes in its user namespace and in
         * every namespace above, against the limit each namespace's creator
         * had. So it is set inside (by the bootstrap), where it counts the
         * sandbox's own processes only; set out here, it would be one
         * allowance shared by every sandbox of the uid, and, for an
         * unprivileged pool, by the user's own processes. */
        .processes = max_processes(cfg),
    };
    sesh_spawn_plan plan = {
        .argv = sesh_bwrap_argv(&o), .envp = sesh_sandbox_env(),
        .nice = sb->background ? BACKGROUND_NICE : SANDBOX_NICE,
        .as_root = as_root, .uid = sb->uid, .gid = (gid_t)sb->uid,
        .data_dir = cfg->data_dir, .stage = stage ? HOST_STAGE : NULL,
    };
    memcpy(plan.fds, fds, sizeof plan.fds);
    plan.ncgroup_procs = sesh_cgroup_procs(sb->cg, plan.cgroup_procs, SESH_SPAWN_CGROUPS);
    limit limits[SESH_SPAWN_LIMITS];
    for (int i = 0, n = sandbox_limits(sb, cfg, limits); i < n; i++)
        sesh_spawn_limit(&plan, limits[i].id, limits[i].name, limits[i].value);

    char *why = NULL;
    if (!plan.argv || !plan.envp) {
        why = strdup("out of memory");
    } else {
        int spawn_err = 0;
        pid_t pid = sesh_spawn(&plan, &spawn_err);
        if (pid < 0)
            why = sesh_printf("fork: %s", strerror(spawn_err));
        else
            ref_open(&sb->bwrap, pid);
    }
    sesh_strv_free(plan.argv);
    sesh_strv_free(plan.envp);
    return why;
}

/* The descriptors of a forked sandbox are a bwrap child's, but for the
 * session directory where bwrap gets runner.py (zygote_enter.h). */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(SESH_ENTER_NULL, SESH_FD_NULL) && SAME(SESH_ENTER_OUT, SESH_FD_OUT) &&
               SAME(SESH_ENTER_ERR, SESH_FD_ERR) && SAME(SESH_ENTER_CHANNEL, SESH_FD_CHANNEL) &&
               SAME(SESH_ENTER_DATA, SESH_FD_RUNNER) && SAME(SESH_ENTER_SECCOMP, SESH_FD_SECCOMP) &&
               SAME(SESH_ENTER_STATUS, SESH_FD_STATUS) && SAME(SESH_ENTER_PASSWD, SESH_FD_PASSWD) &&
               SAME(SESH_ENTER_GROUP, SESH_FD_GROUP) && SAME(SESH_ENTER_GO, SESH_SPAWN_FDS),
               "a forked sandbox's descriptors are a bwrap child's");

/* Asks the fork server for the sandbox. NULL with *forked set when it forked
 * one; NULL with *forked 0 when it could not (start it with bwrap). */
/* SESH_ENTER_BINDS: the directories, each NUL-ended, in a memory file. */
static int bind_list(const char *const *dirs)
{
    size_t len = 0;
    for (const char *const *d = dirs; d && *d; d++)
        len += strlen(*d) + 1;
    char *list = sesh_xmalloc(len + 1), *at = list;
    for (const char *const *d = dirs; d && *d; d++)
        at = stpcpy(at, *d) + 1;
    int fd = sesh_memfd("sesh-binds", list, len);
    free(list);
    return fd;
}

static char *fork_sandbox(sesh_sandbox *sb, const sesh_sandbox_config *cfg, int as_root,
                          const int fds[SESH_SPAWN_FDS], int *forked)
{
    sesh_enter_request req = {
        .version = SESH_ENTER_VERSION, .size = sizeof req, .pool_pid = getpid(),
        .as_root = as_root, .uid = sb->uid, .gid = sb->uid, .network = cfg->network,
        .nice = sb->background ? BACKGROUND_NICE : SANDBOX_NICE,
        .processes = max_processes(cfg),
        .tmp_size = tmp_size(cfg, sb->disk_limit), .shm_size = DEFAULT_SHM_SIZE,
        .session_memory = sb->memory,
    };
    limit limits[SESH_SPAWN_LIMITS];
    req.nlimits = sandbox_limits(sb, cfg, limits);
    for (int i = 0; i < req.nlimits; i++) {
        req.limit_ids[i] = limits[i].id;
        req.limit_values[i] = limits[i].value;
    }
    int enter[SESH_ENTER_FDS], go[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return sesh_printf("pipe: %s", strerror(errno));
    int oom = sesh_memfd("sesh-oom", sesh_sandbox_oom_so, sesh_sandbox_oom_so_len);
    int binds = bind_list(cfg->python_dirs);
    memcpy(enter, fds, sizeof(int) * SESH_SPAWN_FDS);
    enter[SESH_ENTER_DATA] = sb->data_fd;
    enter[SESH_ENTER_GO] = go[0];
    enter[SESH_ENTER_OOM] = oom;
    enter[SESH_ENTER_BINDS] = binds;
    pid_t pid = sb->data_fd >= 0 && oom >= 0 && binds >= 0
                ? sesh_zygote_fork(cfg->zygote, &req, enter, SESH_ENTER_FDS) : -1;
    close(go[0]);
    if (oom >= 0)
        close(oom);
    if (binds >= 0)
        close(binds);
    sb->go = go[1];
    if (pid < 0)
        return strdup("the fork server could not fork it");
    ref_open(&sb->bwrap, pid);
    sb->forked = *forked = 1;
    return NULL;
}

/* A forked sandbox's init goes into the sandbox's cgroups from here, while
 * it builds its mount tree (zygote_enter.h says why), and then is told to go
 * on. Where the pool has no cgroups, it goes on at once. */
static char *move_init(sesh_sandbox *sb, pid_t init)
{
    int procs[SESH_SPAWN_CGROUPS];
    char pid[16];
    int len = snprintf(pid, sizeof pid, "%d", (int)init);
    for (int i = 0, n = sesh_cgroup_procs(sb->cg, procs, SESH_SPAWN_CGROUPS); i < n; i++)
        if (write(procs[i], pid, (size_t)len) != len)
            return sesh_printf("cannot move the sandbox into its cgroup: %s", strerror(errno));
    ssize_t w = write(sb->go, "g", 1);
    close_fd(&sb->go);
    return w == 1 ? NULL : sesh_printf("cannot tell the sandbox to go on: %s", strerror(errno));
}

/* A forked sandbox's outer process exits once it has reported init, which is
 * the sandbox's process, our child, from then on. */
static char *adopt_init(sesh_sandbox *sb, pid_t init)
{
    if (!reap(sb, START_TIMEOUT_MS))
        return strdup("the forked sandbox's outer process did not exit");
    if (!WIFEXITED(sb->wait_status) || WEXITSTATUS(sb->wait_status) != 0)
        return death_note(sb);
    close_fd(&sb->bwrap.fd);
    ref_open(&sb->bwrap, init);
    sb->reaped = 0;
    sb->wait_status = 0;
    return move_init(sb, init);
}

/* The runner's first frame: how to start (see runner.py). It waits in the
 * channel until the runner reads it. */
static char *send_start(sesh_sandbox *sb, const sesh_sandbox_config *cfg)
{
    json_t *start = json_pack("{s:s, s:s, s:s}", "op", "start",
                              "plots", cfg->defer_plots ? "deferred" : "eager",
                              "kind", cfg->shell_only ? "shell" : "python");
    char *why = NULL;
    io_result r = start ? send_frame(sb, start, now_ms() + START_TIMEOUT_MS, &why) : IO_ERROR;
    json_decref(start);
    if (r != IO_OK && !why)
        why = strdup("cannot send the runner its start");
    return r == IO_OK ? NULL : why;
}

/* From bwrap's start (or the fork) to the runner's "ready". */
static char *wait_started(sesh_sandbox *sb)
{
    char *why = NULL;
    long long deadline = now_ms() + START_TIMEOUT_MS;
    pid_t init = read_child_pid(sb, deadline, &why);
    if (init <= 0)
        return why;
    if (sb->forked && (why = adopt_init(sb, init)) != NULL)
        return why;
    ref_open(&sb->init, init);
    if (wait_ready(sb, deadline, &why) < 0)
        return why;
    pid_t py = find_interpreter(init);
    if (py <= 0)
        return strdup("cannot find the interpreter's process");
    ref_open(&sb->python, py);
    return NULL;
}

/* One start, forked by the fork server (fork_it) or by bwrap. *forked: the
 * server forked it (whether it then started or not). */
static sesh_sandbox *start_sandbox(const sesh_sandbox_config *cfg, int fork_it, int *forked,
                                   char **err)
{
    if (fork_it)
        sesh_cgroup_prepare_move();     /* for init's move, in 10 ms (move_init) */
    sesh_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        *err = strdup("sandbox: out of memory");
        return NULL;
    }
    sb->bwrap.fd = sb->init.fd = sb->python.fd = sb->chan = sb->console = sb->status_fd = -1;
    sb->go = -1;
    sb->data_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sb->disk_limit = cfg->disk_limit ? cfg->disk_limit : DEFAULT_DISK;
    sb->min_free_disk = cfg->min_free_disk;
    int as_root = geteuid() == 0;
    sb->uid = !as_root ? getuid() : cfg->uid ? cfg->uid : allocate_uid();
    /* Lifting a priority takes root, and the uid alone must name the sandbox's
     * processes and threads (see sesh_sandbox_foreground). */
    sb->background = cfg->background && as_root && !cfg->uid;

    int fds[SESH_SPAWN_FDS];
    for (int i = 0; i < SESH_SPAWN_FDS; i++)
        fds[i] = -1;
    char *why = as_root ? give_data_dir(sb, cfg->data_dir) : NULL;
    if (!why)
        why = open_descriptors(sb, fds, fork_it);
    if (!why)
        why = make_cgroup(sb, cfg);
    if (!why)
        why = fork_it ? fork_sandbox(sb, cfg, as_root, fds, forked)
                      : spawn_bwrap(sb, cfg, as_root, fds);
    for (int i = 0; i < SESH_SPAWN_FDS; i++)
        close_fd(&fds[i]);          /* the child's now, or nobody's */
    if (!why)
        why = send_start(sb, cfg);
    if (!why)
        why = wait_started(sb);
    if (!why)
        return sb;

    char *note = sb->bwrap.pid > 0 ? console_note(sb) : NULL;
    *err = sesh_printf("sandbox: %s%s", why, note ? note : "");
    free(note);
    free(why);
    sesh_sandbox_free(sb);
    return NULL;
}

sesh_sandbox *sesh_sandbox_start(const sesh_sandbox_config *cfg, char **err)
{
    *err = NULL;
    struct stat st;
    if (!cfg || !cfg->data_dir || stat(cfg->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        *err = sesh_printf("sandbox: data directory %s is not a directory",
                      cfg && cfg->data_dir ? cfg->data_dir : "(none)");
        return NULL;
    }
    if (cfg->zygote) {
        int forked = 0;
        sesh_sandbox *sb = start_sandbox(cfg, 1, &forked, err);
        if (forked)
            sesh_zygote_outcome(cfg->zygote, sb != NULL, *err);
        if (sb)
            return sb;
        free(*err);          /* bwrap's turn */
        *err = NULL;
    }
    return start_sandbox(cfg, 0, NULL, err);
}
