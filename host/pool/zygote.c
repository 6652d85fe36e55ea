/*
 * zygote.c — the fork server (see zygote.h): its process, its requests, its
 * replacement.
 *
 * A keeper thread owns the server's life: it starts one, watches its pidfd
 * (death) and its age, and starts the next, swapping it in between two
 * requests. Requests go one at a time on the server's SOCK_SEQPACKET socket:
 * the request's bytes with its descriptors (SCM_RIGHTS), answered with
 * "forked PID" or "refused WHY" (runner.py, ForkServer).
 *
 * Locks: `talk` is held for a whole exchange with the server, and by the
 * keeper to swap servers; `mu` guards the state. Order: talk, then mu.
 */
#include "pool/zygote.h"
#include "pool/log.h"
#include "pool/sandbox_spawn.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char sesh_runner_py[];
extern const unsigned long sesh_runner_py_len;
extern const unsigned char sesh_zygote_enter_so[];
extern const unsigned long sesh_zygote_enter_so_len;

#define START_TIMEOUT_MS  120000        /* its imports, on a loaded machine */
#define REPLY_TIMEOUT_MS  10000         /* a fork takes milliseconds */
#define RETRY_MIN_MS      1000          /* a replacement that did not start: again after */
#define RETRY_MAX_MS      60000
#define FAILURES_OFF      3             /* forked sandboxes failing in a row turn it off */
#define SERVER_NICE       10            /* a sandbox's: what it forks may keep it or go lower */
#define PRIVATE_TMP       (64UL << 20)  /* its imports' folders and matplotlib's font cache */
#define REPLY_MAX         512

/* The server runs runner.py in zygote mode; its descriptors are in runner.py. */
static const char bootstrap[] =
    "import os;f=os.fdopen(4,'rb');s=f.read();f.close();"
    "exec(compile(s,'sesh-runner','exec'),{'__name__':'__sesh_zygote__'})";
enum { FD_CONTROL = 3, FD_RUNNER = 4, FD_LIBRARY = 5, FD_MOUNTS = 6 };

typedef struct {
    pid_t pid;
    int pidfd;
    int control;               /* our end of its socket */
    long forks;
    uint64_t started_ms;
} server;

typedef enum { STARTING, READY, OFF } zstate;

struct sesh_zygote {
    sesh_zygote_config cfg;
    char *python;
    int mount_ns;              /* the pool's mount namespace, handed to each server */
    int wake;                  /* eventfd: the keeper has something to do */
    pthread_t keeper;
    int keeper_started;
    pthread_mutex_t talk;

    pthread_mutex_t mu;        /* what follows */
    pthread_cond_t cv;
    zstate state;
    server cur;                /* READY: the one that forks */
    int replace;               /* the current one should go (why in replace_why) */
    const char *replace_why;
    int stopping;
    char *reason;              /* OFF: why */
    long sandboxes;            /* forked over the pool's life */
    int replacements;
    int failures;              /* forked sandboxes that did not start, in a row */
    int ever_started;          /* one forked sandbox has started */
    int ever_ready;            /* one server has been ready */
};

static const server no_server = { .pid = -1, .pidfd = -1, .control = -1 };

/* ---- a server's process ---- */

static void wake_keeper(sesh_zygote *z)
{
    uint64_t one = 1;
    ssize_t n = write(z->wake, &one, sizeof one);
    (void)n;
}

/* How a process ended, for the log. */
static char *ended(int st)
{
    if (WIFSIGNALED(st))
        return sesh_printf("killed by signal %d", WTERMSIG(st));
    return sesh_printf("exited with status %d", WEXITSTATUS(st));
}

/* Kills a server (its sandboxes are the pool's children: they go on) and
 * reaps it. */
static void retire(server *s)
{
    if (s->pid > 0) {
        if (s->pidfd >= 0)
            pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
        else
            kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (s->pidfd >= 0)
        close(s->pidfd);
    if (s->control >= 0)
        close(s->control);
    *s = no_server;
}

/* Waits for the server's "ready": 0, or -1 with *why. */
static int wait_ready(sesh_zygote *z, server *s, char **why)
{
    uint64_t deadline = sesh_now_ms() + START_TIMEOUT_MS;
    for (;;) {
        uint64_t now = sesh_now_ms();
        if (now >= deadline) {
            *why = sesh_printf("it was not ready within %d s", START_TIMEOUT_MS / 1000);
            return -1;
        }
        struct pollfd p[3] = { { .fd = s->control, .events = POLLIN },
                               { .fd = s->pidfd, .events = POLLIN },
                               { .fd = z->wake, .events = POLLIN } };
        if (poll(p, 3, (int)(deadline - now)) < 0 && errno != EINTR) {
            *why = sesh_printf("poll: %s", strerror(errno));
            return -1;
        }
        if (p[2].revents) {
            pthread_mutex_lock(&z->mu);
            int stop = z->stopping;
            pthread_mutex_unlock(&z->mu);
            if (stop) {
                *why = sesh_xstrdup("the pool is stopping");
                return -1;
            }
            uint64_t drained;
            if (read(z->wake, &drained, sizeof drained) < 0) { /* nothing to drain */ }
        }
        if (p[0].revents & POLLIN) {
            char msg[REPLY_MAX];
            ssize_t n = recv(s->control, msg, sizeof msg, MSG_DONTWAIT);
            if (n == 5 && memcmp(msg, "ready", 5) == 0)
                return 0;
            if (n > 0) {
                *why = sesh_printf("it said '%.*s' instead of ready", (int)(n > 80 ? 80 : n), msg);
                return -1;
            }
        }
        if (p[1].revents || (p[0].revents & (POLLHUP | POLLERR))) {
            int st = 0;
            while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
                ;
            char *how = ended(st);
            *why = sesh_printf("it %s as it loaded (its output is in this log)", how);
            free(how);
            s->pid = -1;
            return -1;
        }
    }
}

/* Starts a server and waits until it is ready: 0, or -1 with *why. */
static int start_server(sesh_zygote *z, server *s, char **why)
{
    *s = no_server;
    int pair[2] = { -1, -1 };
    int runner = sesh_memfd("sesh-runner", sesh_runner_py, sesh_runner_py_len);
    int library = sesh_memfd("sesh-enter", sesh_zygote_enter_so, sesh_zygote_enter_so_len);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    char **envp = sesh_sandbox_env();
    char *argv[] = { z->python, "-E", "-s", "-B", "-c", (char *)bootstrap, NULL };
    int rc = -1;
    if (runner < 0 || library < 0 || null < 0 || !envp ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        *why = sesh_printf("cannot prepare it: %s", strerror(errno));
        goto done;
    }
    /* Its environment is the sandboxes': it is what /proc/1/environ and the
     * runner's own show inside them. Its log is ours (descriptor 2). */
    sesh_spawn_plan plan = {
        .exe = z->python, .argv = argv, .envp = envp, .nice = SERVER_NICE,
        .fds = { null, STDERR_FILENO, STDERR_FILENO, pair[1], runner, library, z->mount_ns,
                 -1, -1 },
        .die_with_parent = 1, .private_tmp = PRIVATE_TMP, .keep_dirs = z->cfg.python_dirs,
        .keep_mount_caps = geteuid() != 0,
    };
    int err = 0;
    uint64_t t0 = sesh_now_ms();
    s->pid = sesh_spawn(&plan, &err);
    if (s->pid < 0) {
        *why = sesh_printf("fork: %s", strerror(err));
        goto done;
    }
    /* Without a pidfd (valgrind has none), its death is its socket's hang-up. */
    s->pidfd = pidfd_open(s->pid, 0);
    s->control = pair[0];
    pair[0] = -1;
    close(pair[1]);
    pair[1] = -1;
    if (wait_ready(z, s, why) < 0)
        goto done;
    s->started_ms = sesh_now_ms();
    sesh_log("fork server: ready (pid %d, loaded in %llu ms)", (int)s->pid,
             (unsigned long long)(s->started_ms - t0));
    rc = 0;
done:
    if (rc < 0)
        retire(s);
    for (int i = 0; i < 2; i++)
        if (pair[i] >= 0)
            close(pair[i]);
    if (runner >= 0) close(runner);
    if (library >= 0) close(library);
    if (null >= 0) close(null);
    sesh_strv_free(envp);
    return rc;
}

/* ---- the state ---- */

/* Under mu. */
static void turn_off(sesh_zygote *z, char *why)
{
    if (z->state == OFF) {
        free(why);
        return;
    }
    z->state = OFF;
    z->reason = why;
    sesh_log("fork server: off: %s; sandboxes start with bwrap", why);
    pthread_cond_broadcast(&z->cv);
    wake_keeper(z);
}

/* Under mu: why the current server should go now, or NULL. */
static const char *due(sesh_zygote *z, uint64_t now)
{
    if (z->replace)
        return z->replace_why;
    if (z->cur.forks >= z->cfg.max_forks)
        return "it forked its allowance of sandboxes (--fork-server-forks)";
    if (now - z->cur.started_ms >= (uint64_t)z->cfg.max_age * 1000)
        return "it reached its age (--fork-server-age)";
    return NULL;
}

/* Under mu, which it leaves and takes again: a new server, then the swap. */
static void replace_server(sesh_zygote *z, const char *why, uint64_t *retry_at, int *retry_ms)
{
    pid_t old = z->cur.pid;
    long forks = z->cur.forks;
    pthread_mutex_unlock(&z->mu);
    server next;
    char *fail = NULL;
    int ok = start_server(z, &next, &fail) == 0;
    pthread_mutex_lock(&z->talk);          /* no request in flight */
    pthread_mutex_lock(&z->mu);
    if (!ok || z->stopping || z->state == OFF) {
        if (!ok && !z->stopping)
            sesh_log("fork server: the replacement of pid %d did not start (%s); trying again "
                     "in %d s", (int)old, fail, *retry_ms / 1000);
        *retry_at = sesh_now_ms() + (uint64_t)*retry_ms;
        *retry_ms = *retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : *retry_ms * 2;
        pthread_mutex_unlock(&z->talk);
        if (ok)
            retire(&next);
        free(fail);
        return;
    }
    server gone = z->cur;
    z->cur = next;
    z->replace = 0;
    z->replacements++;
    *retry_ms = RETRY_MIN_MS;
    *retry_at = 0;
    pthread_mutex_unlock(&z->talk);
    sesh_log("fork server: pid %d replaced pid %d, which forked %ld sandboxes (%s)",
             (int)next.pid, (int)old, forks, why);
    pthread_mutex_unlock(&z->mu);
    retire(&gone);
    pthread_mutex_lock(&z->mu);
}

/* Under mu, which it leaves and takes again: the first server, or one
 * after the last died. */
static void first_server(sesh_zygote *z, int *retry_ms)
{
    pthread_mutex_unlock(&z->mu);
    server s;
    char *why = NULL;
    int ok = start_server(z, &s, &why) == 0;
    pthread_mutex_lock(&z->mu);
    if (ok && !z->stopping && z->state != OFF) {
        z->cur = s;
        z->state = READY;
        z->ever_ready = 1;
        *retry_ms = RETRY_MIN_MS;
        pthread_cond_broadcast(&z->cv);
        return;
    }
    if (ok) {
        pthread_mutex_unlock(&z->mu);
        retire(&s);
        pthread_mutex_lock(&z->mu);
    } else if (!z->stopping && !z->ever_ready) {
        turn_off(z, sesh_printf("the fork server did not start: %s", why));
    } else if (!z->stopping) {
        sesh_log("fork server: a new one did not start (%s); trying again in %d s", why,
                 *retry_ms / 1000);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += *retry_ms / 1000;
        pthread_cond_timedwait(&z->cv, &z->mu, &until);
        *retry_ms = *retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : *retry_ms * 2;
    }
    free(why);
}

/* Under mu, which it leaves and takes again: waits for the server's death
 * (its pidfd, or its socket's hang-up), its age, or a wake-up. */
static void watch_server(sesh_zygote *z, uint64_t wait_ms)
{
    struct pollfd p[3] = { { .fd = z->cur.pidfd, .events = POLLIN },
                           { .fd = z->cur.control, .events = 0 },
                           { .fd = z->wake, .events = POLLIN } };
    pthread_mutex_unlock(&z->mu);
    int n = poll(p, 3, wait_ms > INT32_MAX ? INT32_MAX : (int)wait_ms);
    if (n > 0 && p[2].revents) {
        uint64_t drained;
        if (read(z->wake, &drained, sizeof drained) < 0) { /* nothing to drain */ }
    }
    pthread_mutex_lock(&z->talk);
    pthread_mutex_lock(&z->mu);
    if (n > 0 && (p[0].revents || p[1].revents) && z->state == READY) {
        int st = 0;
        while (waitpid(z->cur.pid, &st, 0) < 0 && errno == EINTR)
            ;
        char *how = ended(st);
        sesh_log("fork server: pid %d %s after %ld forks; starting another", (int)z->cur.pid,
                 how, z->cur.forks);
        free(how);
        z->cur.pid = -1;
        retire(&z->cur);
        z->state = STARTING;
        z->replacements++;
    }
    pthread_mutex_unlock(&z->talk);
}

static void *keeper_main(void *arg)
{
    sesh_zygote *z = arg;
    int retry_ms = RETRY_MIN_MS;
    uint64_t retry_at = 0;
    pthread_mutex_lock(&z->mu);
    while (!z->stopping && z->state != OFF) {
        if (z->state == STARTING) {
            first_server(z, &retry_ms);
            continue;
        }
        uint64_t now = sesh_now_ms();
        const char *why = due(z, now);
        if (why && now >= retry_at) {
            replace_server(z, why, &retry_at, &retry_ms);
            continue;
        }
        uint64_t age_left = (uint64_t)z->cfg.max_age * 1000 - (now - z->cur.started_ms);
        uint64_t wait_ms = why ? retry_at - now : age_left;
        watch_server(z, wait_ms);
    }
    server gone = z->cur;
    z->cur = no_server;
    pthread_mutex_unlock(&z->mu);
    retire(&gone);
    return NULL;
}

/* ---- the pool's side ---- */

/* Why this pool cannot fork sandboxes, or NULL. */
static char *unusable(const sesh_zygote *z)
{
    if (!sesh_may_mount())
        return sesh_xstrdup("the pool cannot mount (it is not root, and has no user namespace "
                            "of its own: see the line on session directories)");
    if (access(z->python, X_OK) != 0)
        return sesh_printf("cannot run %s: %s", z->python, strerror(errno));
    if (z->mount_ns < 0)
        return sesh_printf("cannot open the pool's mount namespace: %s", strerror(errno));
    if (z->wake < 0)
        return sesh_printf("eventfd: %s", strerror(errno));
    return NULL;
}

sesh_zygote *sesh_zygote_new(const sesh_zygote_config *cfg)
{
    sesh_zygote *z = sesh_xcalloc(1, sizeof *z);
    z->cfg = *cfg;
    if (z->cfg.max_forks <= 0) z->cfg.max_forks = SESH_ZYGOTE_FORKS;
    if (z->cfg.max_age <= 0) z->cfg.max_age = SESH_ZYGOTE_AGE;
    z->python = sesh_xstrdup(cfg->python && *cfg->python ? cfg->python : "/usr/bin/python3");
    z->cfg.python = z->python;
    z->cur = no_server;
    pthread_mutex_init(&z->mu, NULL);
    pthread_mutex_init(&z->talk, NULL);
    pthread_cond_init(&z->cv, NULL);
    z->mount_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    z->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    z->state = STARTING;
    char *why = unusable(z);
    int rc = why ? 0 : pthread_create(&z->keeper, NULL, keeper_main, z);
    if (rc)
        why = sesh_printf("cannot start its thread: %s", strerror(rc));
    z->keeper_started = !why;
    if (why) {
        pthread_mutex_lock(&z->mu);
        turn_off(z, why);
        pthread_mutex_unlock(&z->mu);
    }
    return z;
}

void sesh_zygote_free(sesh_zygote *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    z->stopping = 1;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
    if (z->wake >= 0)
        wake_keeper(z);
    if (z->keeper_started)
        pthread_join(z->keeper, NULL);
    retire(&z->cur);
    if (z->mount_ns >= 0) close(z->mount_ns);
    if (z->wake >= 0) close(z->wake);
    pthread_mutex_destroy(&z->mu);
    pthread_mutex_destroy(&z->talk);
    pthread_cond_destroy(&z->cv);
    free(z->reason);
    free(z->python);
    free(z);
}

/* Waits (under mu) while a server starts; 1 when one is ready. */
static int wait_ready_server(sesh_zygote *z)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += START_TIMEOUT_MS / 1000;
    while (z->state == STARTING && !z->stopping)
        if (pthread_cond_timedwait(&z->cv, &z->mu, &until) == ETIMEDOUT)
            break;
    return z->state == READY && !z->stopping;
}

static int send_request(int control, const sesh_enter_request *req, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * SESH_ENTER_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)req, .iov_len = sizeof *req };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
    memset(u.buf, 0, sizeof u.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    ssize_t n;
    while ((n = sendmsg(control, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof *req ? 0 : -1;
}

/* The server's answer: the pid it forked, or -1 with *why. */
static pid_t read_answer(int control, char **why)
{
    struct pollfd p = { .fd = control, .events = POLLIN };
    int n = poll(&p, 1, REPLY_TIMEOUT_MS);
    if (n == 0) {
        *why = sesh_printf("it did not answer within %d s", REPLY_TIMEOUT_MS / 1000);
        return -1;
    }
    char msg[REPLY_MAX + 1];
    ssize_t len = n > 0 ? recv(control, msg, REPLY_MAX, MSG_DONTWAIT) : -1;
    if (len <= 0) {
        *why = sesh_printf("it hung up: %s", len < 0 ? strerror(errno) : "end of file");
        return -1;
    }
    msg[len] = 0;
    int pid;
    char end;
    if (sscanf(msg, "forked %d%c", &pid, &end) == 1 && pid > 0)
        return pid;
    *why = sesh_printf("%.200s", msg);
    return -1;
}

pid_t sesh_zygote_fork(sesh_zygote *z, const sesh_enter_request *req, const int *fds, int nfds)
{
    if (!z || nfds < 0 || nfds > SESH_ENTER_FDS)
        return -1;
    pthread_mutex_lock(&z->mu);
    int ready = wait_ready_server(z);
    pthread_mutex_unlock(&z->mu);
    if (!ready)
        return -1;
    pthread_mutex_lock(&z->talk);
    pthread_mutex_lock(&z->mu);
    server s = z->cur;
    ready = z->state == READY && !z->stopping;
    pthread_mutex_unlock(&z->mu);
    char *why = NULL;
    pid_t pid = -1;
    int broken = 0;
    if (ready) {
        if (send_request(s.control, req, fds, nfds) < 0) {
            why = sesh_printf("cannot send it the request: %s", strerror(errno));
            broken = 1;
        } else if ((pid = read_answer(s.control, &why)) < 0) {
            broken = strncmp(why, "refused ", 8) != 0;
        }
    }
    pthread_mutex_lock(&z->mu);
    if (pid > 0) {
        z->cur.forks++;
        z->sandboxes++;
        if (z->cur.forks >= z->cfg.max_forks)
            wake_keeper(z);
    } else if (why) {
        sesh_log("fork server: pid %d could not fork a sandbox (%s); it starts with bwrap",
                 (int)s.pid, why);
        if (broken && z->cur.pid == s.pid) {
            /* Its death is the keeper's to see: it starts the next one. */
            if (z->cur.pidfd < 0 || pidfd_send_signal(z->cur.pidfd, SIGKILL, NULL, 0) < 0)
                kill(z->cur.pid, SIGKILL);
        } else if (strstr(why, "threads are alive")) {
            z->replace = 1;
            z->replace_why = "a thread was alive in it";
            wake_keeper(z);
        }
    }
    pthread_mutex_unlock(&z->mu);
    pthread_mutex_unlock(&z->talk);
    free(why);
    return pid;
}

void sesh_zygote_outcome(sesh_zygote *z, int started, const char *why)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    if (started) {
        z->ever_started = 1;
        z->failures = 0;
    } else if (z->state != OFF) {
        z->failures++;
        sesh_log("fork server: a forked sandbox did not start (%s); it starts with bwrap",
                 why ? why : "no reason given");
        if (!z->ever_started)
            turn_off(z, sesh_printf("the first sandbox it forked did not start (%s)",
                                    why ? why : "no reason given"));
        else if (z->failures >= FAILURES_OFF)
            turn_off(z, sesh_printf("%d sandboxes it forked in a row did not start (the last: %s)",
                                    z->failures, why ? why : "no reason given"));
    }
    pthread_mutex_unlock(&z->mu);
}

json_t *sesh_zygote_status(sesh_zygote *z, const char *off)
{
    if (!z)
        return json_pack("{s:s, s:s}", "state", "off", "reason", off ? off : "none was started");
    pthread_mutex_lock(&z->mu);
    static const char *const names[] = { "starting", "ready", "off" };
    json_t *s = json_pack("{s:s, s:I, s:i}", "state", names[z->state],
                          "sandboxes", (json_int_t)z->sandboxes, "replacements", z->replacements);
    if (s && z->state == READY) {
        json_object_set_new(s, "pid", json_integer(z->cur.pid));
        json_object_set_new(s, "forks", json_integer(z->cur.forks));
    }
    if (s && z->reason)
        json_object_set_new(s, "reason", json_string(z->reason));
    pthread_mutex_unlock(&z->mu);
    return s ? s : json_object();
}
