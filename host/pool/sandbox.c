/*
 * sandbox.c — one Python interpreter in a bubblewrap sandbox (see sandbox.h).
 *
 * The shape of a sandbox, from the host:
 *
 *   pool ── fork (spawner thread) ── bwrap (outer, our child, as the sandbox uid)
 *                                       └─ bwrap init, pid 1 of a new pid namespace
 *                                            └─ python3 runner.py, pid 2
 *
 * Descriptors handed in (numbers as the child sees them):
 *   0 /dev/null   1,2 console pipe (read by us, only its tail is kept, for messages)
 *   3 socket to the runner (frames: 4-byte big-endian length + JSON)
 *   4 memfd holding runner.py (read by the bootstrap, then closed)
 *   5 memfd holding the seccomp filter (read by bwrap)
 *   6 bwrap's --json-status-fd (tells us the host pid of the namespace's init)
 *   7, 8 memfds holding the sandbox's own /etc/passwd and /etc/group
 *
 * The interpreter is interrupted by SIGINT sent through a pidfd (never a pid
 * that could have been reused), and killed by SIGKILL to the namespace's init,
 * which takes every process of the sandbox with it.
 */
#include "pool/sandbox.h"
#include "pool/seccomp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char sesh_runner_py[];
extern const unsigned long sesh_runner_py_len;

#define BWRAP                "/usr/bin/bwrap"
#define DEFAULT_PYTHON       "/usr/bin/python3"
#define UID_BASE             1800000000u        /* root pools: one uid per sandbox */
#define UID_RANGE            1000000u
#define DEFAULT_MEMORY       (4UL << 30)
#define DEFAULT_FILE_SIZE    (1UL << 30)
#define DEFAULT_DISK         (1UL << 30)
#define DISK_CHECK_MS        500
#define DISK_MAX_ENTRIES     100000
#define DISK_MAX_DEPTH       64
#define SANDBOX_NICE         10
#define DEFAULT_TMP_SIZE     (256UL << 20)
#define DEFAULT_SHM_SIZE     (64UL << 20)
#define DEFAULT_PROCESSES    128
#define DEFAULT_OPEN_FILES   1024
#define START_TIMEOUT_MS     60000
#define INTERRUPT_GRACE_MS   2000
#define INTERRUPT_REPEAT_MS  400        /* a KeyboardInterrupt can be lost: Ctrl-C again */
#define MAX_REPLY            (64u << 20)
#define TAIL_SIZE            2048
#define HOST_STAGE           "/mnt"     /* where a root pool shows bwrap the data dir */

/* The runner arrives on descriptor 4; the bootstrap reads it, closes every
 * descriptor above the protocol socket, sets the sandbox's process limit
 * (see start) and runs it. */
static const char bootstrap[] =
    "import os,resource;resource.setrlimit(resource.RLIMIT_NPROC,(%d,%d));"
    "f=os.fdopen(4,'rb');s=f.read();f.close();os.closerange(4,65536);"
    "exec(compile(s,'sesh-runner','exec'),{'__name__':'__sesh_runner__'})";

struct sesh_sandbox {
    pid_t pid;                 /* outer bwrap, our child */
    int pidfd;
    pid_t init_pid;            /* pid 1 of the sandbox */
    int init_pidfd;
    int py_pidfd;              /* the interpreter */
    int chan;                  /* socket to the runner, non-blocking */
    int console;               /* read end of the sandbox's stdout and stderr */
    int status_fd;             /* bwrap's JSON status, read end */
    uid_t uid;                 /* host uid of the sandbox's processes */
    int data_fd;               /* the data directory, for measuring it */
    size_t disk_limit;
    int reaped;
    int wait_status;
    atomic_int killed;
    char tail[TAIL_SIZE];      /* last bytes written to the console */
    size_t tail_len;
};

/* ---- small helpers ---- */

static char *format(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- argument and environment vectors ---- */

typedef struct { char **v; size_t n, cap; int oom; } strvec;

static void vec_add(strvec *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) { a->oom = 1; return; }
        a->v = v;
        a->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy) { a->oom = 1; return; }
    a->v[a->n++] = copy;
    a->v[a->n] = NULL;
}

static void vec_addf(strvec *a, const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0) { a->oom = 1; return; }
    vec_add(a, s);
    free(s);
}

static void vec_free(strvec *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
}

/* /lib, /bin and friends: a symlink into /usr on merged-/usr systems. */
static void add_top_link(strvec *a, const char *path)
{
    char target[256];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) {
        target[n] = 0;
        vec_add(a, "--symlink"); vec_add(a, target); vec_add(a, path);
    } else if (access(path, F_OK) == 0) {
        vec_add(a, "--ro-bind"); vec_add(a, path); vec_add(a, path);
    }
}

static void add_ro_try(strvec *a, const char *path)
{
    vec_add(a, "--ro-bind-try"); vec_add(a, path); vec_add(a, path);
}

/* Python's own configuration (/etc/python3, /etc/python3.11). */
static void add_python_etc(strvec *a)
{
    DIR *d = opendir("/etc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "python3", 7) == 0) {
            vec_add(a, "--ro-bind-try");
            vec_addf(a, "/etc/%s", e->d_name);
            vec_addf(a, "/etc/%s", e->d_name);
        }
    closedir(d);
}

static void build_argv(strvec *a, const sesh_sandbox_config *cfg, const char *data_src,
                       size_t tmp_size, int processes)
{
    vec_add(a, BWRAP);
    vec_add(a, "--unshare-user");
    vec_add(a, "--unshare-ipc");
    vec_add(a, "--unshare-pid");
    vec_add(a, "--unshare-uts");
    vec_add(a, "--unshare-cgroup-try");
    if (!cfg->network)
        vec_add(a, "--unshare-net");
    vec_add(a, "--die-with-parent");
    vec_add(a, "--new-session");
    vec_add(a, "--cap-drop"); vec_add(a, "ALL");
    vec_add(a, "--hostname"); vec_add(a, "sesh");

    vec_add(a, "--ro-bind"); vec_add(a, "/usr"); vec_add(a, "/usr");
    static const char *const tops[] = { "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin" };
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
        add_top_link(a, tops[i]);
    static const char *const etc[] = {
        "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/alternatives", "/etc/localtime",
        "/etc/fonts",
        "/etc/matplotlibrc", "/etc/mime.types", "/etc/os-release",
    };
    for (size_t i = 0; i < sizeof etc / sizeof *etc; i++)
        add_ro_try(a, etc[i]);
    add_python_etc(a);
    /* Accounts of the sandbox only (getpass, id, pwd work; no host account shows). */
    vec_add(a, "--ro-bind-data"); vec_add(a, "7"); vec_add(a, "/etc/passwd");
    vec_add(a, "--ro-bind-data"); vec_add(a, "8"); vec_add(a, "/etc/group");
    if (cfg->network) {
        static const char *const net[] = {
            "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf",
            "/etc/ssl/certs", "/etc/ca-certificates", "/etc/protocols", "/etc/services",
        };
        for (size_t i = 0; i < sizeof net / sizeof *net; i++)
            add_ro_try(a, net[i]);
    }

    vec_add(a, "--proc"); vec_add(a, "/proc");
    vec_add(a, "--dev"); vec_add(a, "/dev");
    /* /dev/shm lives in /dev's tmpfs, which has no size: give it its own. */
    vec_add(a, "--size"); vec_addf(a, "%zu", (size_t)DEFAULT_SHM_SIZE);
    vec_add(a, "--tmpfs"); vec_add(a, "/dev/shm");
    vec_add(a, "--remount-ro"); vec_add(a, "/dev");
    vec_add(a, "--size"); vec_addf(a, "%zu", tmp_size);
    vec_add(a, "--tmpfs"); vec_add(a, "/tmp");
    vec_add(a, "--bind"); vec_add(a, data_src); vec_add(a, "/mnt/data");
    vec_add(a, "--chdir"); vec_add(a, "/mnt/data");
    vec_add(a, "--remount-ro"); vec_add(a, "/");
    vec_add(a, "--seccomp"); vec_add(a, "5");
    vec_add(a, "--json-status-fd"); vec_add(a, "6");
    vec_add(a, "--");
    vec_add(a, cfg->python && *cfg->python ? cfg->python : DEFAULT_PYTHON);
    vec_add(a, "-E");          /* no PYTHON* variable */
    vec_add(a, "-s");          /* no user site directory */
    vec_add(a, "-B");          /* no .pyc written */
    vec_add(a, "-c");
    vec_addf(a, bootstrap, processes, processes);
}

static void build_env(strvec *e)
{
    vec_add(e, "HOME=/tmp");
    vec_add(e, "PATH=/usr/local/bin:/usr/bin:/bin");
    vec_add(e, "LANG=C.UTF-8");
    vec_add(e, "MPLBACKEND=Agg");
    vec_add(e, "MPLCONFIGDIR=/tmp/.config/matplotlib");
    vec_add(e, "PYTHONDONTWRITEBYTECODE=1");
    vec_add(e, "PYTHONUNBUFFERED=1");
}

/* ---- the child: from fork to exec, async-signal-safe calls only ---- */

typedef struct {
    char **argv, **envp;
#define CHILD_FDS 9
    int fds[CHILD_FDS];        /* what lands on descriptors 0..8 */
    int as_root;
    uid_t uid;
    gid_t gid;
    const char *data_dir;      /* staged at HOST_STAGE when as_root */
    struct rlimit limits[6];
    int limit_ids[6];
    int nlimits;
    int nice;
} spawn_plan;

static void child_fail(const char *what)
{
    /* The console pipe is on 1 and 2 by now (or will never be). */
    char buf[256];
    int n = snprintf(buf, sizeof buf, "sesh sandbox: %s: %s\n", what, strerror(errno));
    if (n > 0 && write(2, buf, (size_t)n) < 0) { /* nothing more to say */ }
    _exit(127);
}

static void child_run(const spawn_plan *p)
{
    int high[CHILD_FDS];
    for (int i = 0; i < CHILD_FDS; i++) {
        high[i] = fcntl(p->fds[i], F_DUPFD, 64);
        if (high[i] < 0)
            child_fail("dup");
    }
    for (int i = 0; i < CHILD_FDS; i++)
        if (dup2(high[i], i) < 0)
            child_fail("dup2");
    close_range(CHILD_FDS, ~0U, 0);

    for (int i = 0; i < p->nlimits; i++)
        if (setrlimit(p->limit_ids[i], &p->limits[i]) < 0)
            child_fail("setrlimit");
    if (p->as_root) {
        /* bwrap runs unprivileged and must reach the data directory by path,
         * though its parents may be closed to the sandbox uid: show it at
         * HOST_STAGE in a mount namespace of our own. */
        if (unshare(CLONE_NEWNS) < 0)
            child_fail("unshare(CLONE_NEWNS)");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            child_fail("make / private");
        if (mount(p->data_dir, HOST_STAGE, NULL, MS_BIND, NULL) < 0)
            child_fail("bind the data directory");
        if (setgroups(0, NULL) < 0)
            child_fail("setgroups");
        if (setresgid(p->gid, p->gid, p->gid) < 0)
            child_fail("setresgid");
        if (setresuid(p->uid, p->uid, p->uid) < 0)
            child_fail("setresuid");
    }
    /* Untrusted code yields the CPU to the pool that serves everyone. */
    if (setpriority(PRIO_PROCESS, 0, p->nice) < 0)
        child_fail("setpriority");
    if (chdir("/") < 0)
        child_fail("chdir /");
    /* The pool may ignore or block signals; the sandbox starts clean. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    execve(BWRAP, p->argv, p->envp);
    child_fail("exec " BWRAP);
}

/* ---- the spawner thread ----
 * bwrap --die-with-parent ties the sandbox to the *thread* that forked it
 * (PR_SET_PDEATHSIG fires when that thread exits). A pool may start
 * sandboxes from short-lived threads, so every fork happens here, in a
 * thread that lives as long as the process. */

typedef struct {
    const spawn_plan *plan;
    pid_t pid;
    int err;
    int done;
} spawn_job;

static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawn_cond = PTHREAD_COND_INITIALIZER;
static spawn_job *spawn_pending;
static pthread_once_t spawn_once = PTHREAD_ONCE_INIT;
static int spawn_thread_ok;

static void *spawner(void *unused)
{
    pthread_mutex_lock(&spawn_lock);
    for (;;) {
        while (!spawn_pending)
            pthread_cond_wait(&spawn_cond, &spawn_lock);
        spawn_job *job = spawn_pending;
        spawn_pending = NULL;
        pid_t pid = fork();
        if (pid == 0)
            child_run(job->plan);
        job->pid = pid;
        job->err = pid < 0 ? errno : 0;
        job->done = 1;
        pthread_cond_broadcast(&spawn_cond);
    }
    return NULL;
}

static void spawner_start(void)
{
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);     /* no signal is handled there */
    spawn_thread_ok = pthread_create(&t, &attr, spawner, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

static pid_t spawn(const spawn_plan *plan, int *err)
{
    pthread_once(&spawn_once, spawner_start);
    if (!spawn_thread_ok) {
        *err = EAGAIN;
        return -1;
    }
    spawn_job job = { .plan = plan };
    pthread_mutex_lock(&spawn_lock);
    while (spawn_pending)
        pthread_cond_wait(&spawn_cond, &spawn_lock);
    spawn_pending = &job;
    pthread_cond_broadcast(&spawn_cond);
    while (!job.done)
        pthread_cond_wait(&spawn_cond, &spawn_lock);
    pthread_mutex_unlock(&spawn_lock);
    *err = job.err;
    return job.pid;
}

/* ---- the sandbox's host uid ----
 * RLIMIT_NPROC counts every process of a uid, in every user namespace: were
 * all sandboxes one uid, one fork bomb would stop every other session from
 * forking. A root pool therefore gives each sandbox a uid of its own, from a
 * range no account uses. */

static uid_t allocate_uid(void)
{
    static atomic_uint next;
    static atomic_int seeded;
    if (!atomic_exchange(&seeded, 1))
        atomic_store(&next, ((unsigned)getpid() * 7919u) % UID_RANGE);
    return (uid_t)(UID_BASE + atomic_fetch_add(&next, 1) % UID_RANGE);
}

/* Gives the tree under dirfd to uid, following no symlink. */
static void give_tree(int dirfd, uid_t uid, int depth, long *entries)
{
    if (depth > DISK_MAX_DEPTH)
        return;
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && ++*entries <= DISK_MAX_ENTRIES) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fchownat(dirfd, e->d_name, uid, uid, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            give_tree(sub, uid, depth + 1, entries);
            close(sub);
        }
    }
    closedir(d);
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
    return format(" (the sandbox said: %.*s)", (int)(len - start), sb->tail + start);
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

/* Waits at most ms for bwrap to exit; 1 if it has been reaped. */
static int reap(sesh_sandbox *sb, int ms)
{
    if (sb->reaped)
        return 1;
    if (ms > 0 && sb->pidfd >= 0) {
        struct pollfd p = { .fd = sb->pidfd, .events = POLLIN };
        poll(&p, 1, ms);
    }
    int st;
    pid_t r = waitpid(sb->pid, &st, WNOHANG);
    if (r == sb->pid) {
        sb->reaped = 1;
        sb->wait_status = st;
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
        return format("the sandbox was killed by signal %d (%s)", WTERMSIG(st),
                      signal_name(WTERMSIG(st)));
    int code = WEXITSTATUS(st);
    if (code > 128)
        return format("the interpreter was killed by signal %d (%s)", code - 128,
                      signal_name(code - 128));
    return format("the interpreter exited with status %d", code);
}

static int send_signal(int pidfd, int sig)
{
    if (pidfd < 0)
        return -1;
    return pidfd_send_signal(pidfd, sig, NULL, 0);
}

void sesh_sandbox_interrupt(sesh_sandbox *sb)
{
    if (sb)
        send_signal(sb->py_pidfd, SIGINT);
}

void sesh_sandbox_kill(sesh_sandbox *sb)
{
    if (!sb)
        return;
    atomic_store(&sb->killed, 1);
    /* SIGKILL to a pid namespace's init ends every process in it. */
    send_signal(sb->init_pidfd, SIGKILL);
    send_signal(sb->pidfd, SIGKILL);
}

int sesh_sandbox_alive(sesh_sandbox *sb)
{
    if (!sb || atomic_load(&sb->killed) || sb->chan < 0)
        return 0;
    if (sb->reaped)
        return 0;
    struct pollfd p = { .fd = sb->pidfd, .events = POLLIN };
    return poll(&p, 1, 0) == 0;
}

uid_t sesh_sandbox_uid(sesh_sandbox *sb)
{
    return sb ? sb->uid : (uid_t)-1;
}

pid_t sesh_sandbox_pid(sesh_sandbox *sb)
{
    return sb ? sb->pid : -1;
}

void sesh_sandbox_free(sesh_sandbox *sb)
{
    if (!sb)
        return;
    if (sb->pid > 0 && !sb->reaped) {
        sesh_sandbox_kill(sb);
        while (waitpid(sb->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&sb->pidfd);
    close_fd(&sb->init_pidfd);
    close_fd(&sb->py_pidfd);
    close_fd(&sb->chan);
    close_fd(&sb->console);
    close_fd(&sb->status_fd);
    close_fd(&sb->data_fd);
    free(sb);
}

/* ---- frames ---- */

typedef enum { IO_OK, IO_EOF, IO_TIMEOUT, IO_ERROR } io_result;

/* Waits until chan is ready for `events` or the deadline passes, draining
 * the console meanwhile. deadline < 0: no deadline. */
static io_result wait_chan(sesh_sandbox *sb, short events, long long deadline)
{
    for (;;) {
        struct pollfd p[2] = {
            { .fd = sb->chan, .events = events },
            { .fd = sb->console, .events = POLLIN },
        };
        int timeout = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return IO_TIMEOUT;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int n = poll(p, sb->console >= 0 ? 2 : 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return IO_ERROR;
        }
        if (sb->console >= 0 && p[1].revents)
            drain_console(sb);
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
            io_result r = wait_chan(sb, POLLOUT, deadline);
            if (r != IO_OK)
                return r;
            continue;
        }
        return IO_EOF;
    }
    return IO_OK;
}

static io_result send_frame(sesh_sandbox *sb, json_t *obj, long long deadline, char **err)
{
    char *body = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!body) {
        *err = strdup("cannot encode the request");
        return IO_ERROR;
    }
    size_t len = strlen(body);
    unsigned char head[4] = { (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                              (unsigned char)(len >> 8), (unsigned char)len };
    io_result r = send_all(sb, (const char *)head, 4, deadline);
    if (r == IO_OK)
        r = send_all(sb, body, len, deadline);
    free(body);
    return r;
}

/* A frame being read: the header, then the body. Survives a timeout so the
 * read can resume after the interrupt. */
typedef struct {
    unsigned char head[4];
    size_t have_head;
    char *body;
    size_t len, have;
} frame_reader;

static io_result read_frame(sesh_sandbox *sb, frame_reader *f, long long deadline, char **err)
{
    while (f->have_head < 4) {
        size_t want = 4 - f->have_head;
        ssize_t n = recv(sb->chan, f->head + f->have_head, want, 0);
        if (n > 0) { f->have_head += (size_t)n; continue; }
        if (n == 0) return IO_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IO_EOF;
        io_result r = wait_chan(sb, POLLIN, deadline);
        if (r != IO_OK) return r;
    }
    if (!f->body) {
        f->len = (size_t)f->head[0] << 24 | (size_t)f->head[1] << 16 |
                 (size_t)f->head[2] << 8 | f->head[3];
        if (f->len > MAX_REPLY) {
            *err = format("the runner's reply of %zu bytes is over the limit of %u bytes",
                          f->len, MAX_REPLY);
            return IO_ERROR;
        }
        f->body = malloc(f->len + 1);
        if (!f->body) {
            *err = format("out of memory for a reply of %zu bytes", f->len);
            return IO_ERROR;
        }
    }
    while (f->have < f->len) {
        size_t want = f->len - f->have;
        ssize_t n = recv(sb->chan, f->body + f->have, want, 0);
        if (n > 0) { f->have += (size_t)n; continue; }
        if (n == 0) return IO_EOF;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return IO_EOF;
        io_result r = wait_chan(sb, POLLIN, deadline);
        if (r != IO_OK) return r;
    }
    return IO_OK;
}

static json_t *parse_frame(frame_reader *f, char **err)
{
    json_error_t jerr;
    json_t *v = json_loadb(f->body, f->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        *err = format("the runner's reply is not valid JSON: %s (at byte %d)",
                      jerr.text, jerr.position);
    return v;
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

static int valid_result(json_t *r)
{
    if (!json_is_object(r))
        return json_is_string(r) || json_is_number(r) || json_is_boolean(r) || json_is_null(r);
    json_t *type = json_object_get(r, "type"), *fmt = json_object_get(r, "format"),
           *data = json_object_get(r, "base64_data");
    return json_object_size(r) == 3 && json_is_string(type) &&
           strcmp(json_string_value(type), "image") == 0 && json_is_string(fmt) &&
           strcmp(json_string_value(fmt), "png") == 0 && json_is_string(data);
}

static char *check_execute_reply(json_t *reply, size_t max_output)
{
    if (!json_is_object(reply))
        return strdup("the runner's reply is not a JSON object");
    json_t *error = json_object_get(reply, "error");
    if (json_is_string(error))
        return format("the runner refused the request: %s", json_string_value(error));
    json_t *status = json_object_get(reply, "status");
    if (!json_is_string(status) || (strcmp(json_string_value(status), "Success") != 0 &&
                                    strcmp(json_string_value(status), "Failure") != 0))
        return strdup("the runner's reply has no status Success or Failure");
    static const char *const strings[] = { "stdout", "stderr" };
    for (int i = 0; i < 2; i++)
        if (!json_is_string(json_object_get(reply, strings[i])))
            return format("the runner's reply has no string '%s'", strings[i]);
    static const char *const flags[] = { "stdout_truncated", "stderr_truncated" };
    for (int i = 0; i < 2; i++)
        if (!json_is_boolean(json_object_get(reply, flags[i])))
            return format("the runner's reply has no boolean '%s'", flags[i]);
    json_t *ms = json_object_get(reply, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0)
        return strdup("the runner's reply has no non-negative integer 'ms'");
    json_t *result = json_object_get(reply, "result");
    if (!result || !valid_result(result))
        return strdup("the runner's reply has no valid 'result'");
    if (json_object_size(reply) != 7)
        return strdup("the runner's reply has unknown fields");
    cap_stream(reply, "stdout", "stdout_truncated", max_output);
    cap_stream(reply, "stderr", "stderr_truncated", max_output);
    return NULL;
}

static char *check_metadata_reply(json_t *reply)
{
    if (!json_is_object(reply))
        return strdup("the runner's reply is not a JSON object");
    if (!json_is_string(json_object_get(reply, "python")) ||
        !json_is_string(json_object_get(reply, "ipython")))
        return strdup("the runner's metadata lacks the python or ipython version");
    json_t *pkgs = json_object_get(reply, "packages");
    if (!json_is_array(pkgs))
        return strdup("the runner's metadata has no 'packages' array");
    size_t i;
    json_t *p;
    json_array_foreach(pkgs, i, p)
        if (!json_is_object(p) || !json_is_string(json_object_get(p, "name")) ||
            !json_is_string(json_object_get(p, "version")))
            return format("package %zu of the runner's metadata is not {name, version}", i);
    return NULL;
}

/* ---- disk use of the data directory ---- */

typedef struct {
    unsigned long long bytes;
    long entries;
    int too_deep;
} disk_usage;

/* Adds up the blocks under dirfd without following any symlink; the walk
 * stays below the data directory whatever the code does to it meanwhile. */
static void measure(int dirfd, int depth, disk_usage *u)
{
    if (depth > DISK_MAX_DEPTH) {
        u->too_deep = 1;
        return;
    }
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && u->entries <= DISK_MAX_ENTRIES) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        u->entries++;
        u->bytes += (unsigned long long)st.st_blocks * 512;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                measure(sub, depth + 1, u);
                close(sub);
            }
        }
    }
    closedir(d);
}

/* NULL while within the limit; else what is wrong, in words. */
static char *disk_over(sesh_sandbox *sb, unsigned long long *bytes)
{
    disk_usage u = { 0 };
    measure(sb->data_fd, 0, &u);
    *bytes = u.bytes;
    if (u.too_deep)
        return format("/mnt/data has directories nested deeper than %d levels",
                      DISK_MAX_DEPTH);
    if (u.entries > DISK_MAX_ENTRIES)
        return format("/mnt/data holds more than %d files", DISK_MAX_ENTRIES);
    if (u.bytes > sb->disk_limit)
        return format("/mnt/data holds %llu bytes, over the session's limit of %zu bytes",
                      u.bytes, sb->disk_limit);
    return NULL;
}

/* The reply of code stopped for its disk use: a failure that says why. */
static void mark_disk_failure(json_t *reply, const char *why)
{
    const char *old = json_string_value(json_object_get(reply, "stderr"));
    char *text = format("%s%ssesh: %s; the code was stopped. Delete files to make room.\n",
                        old ? old : "", old && *old ? "\n" : "", why);
    if (text)
        json_object_set_new(reply, "stderr", json_string(text));
    free(text);
    json_object_set_new(reply, "status", json_string("Failure"));
    json_object_set_new(reply, "result", json_null());
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
    if (strcmp(*op, "execute") != 0)
        return format("unknown op '%s' (execute or metadata)", *op);
    if (!json_is_string(json_object_get(request, "code")))
        return strdup("the execute request has no string 'code'");
    json_t *m = json_object_get(request, "max_output");
    *max_output = 4096;
    if (m) {
        if (!json_is_integer(m) || json_integer_value(m) < 0)
            return strdup("'max_output' must be a non-negative integer");
        *max_output = (size_t)json_integer_value(m);
    }
    return NULL;
}

static sesh_run_status lost(sesh_sandbox *sb, char **err, char *why)
{
    sesh_sandbox_kill(sb);
    reap(sb, 2000);         /* a zombie would still count against the uid's limits */
    char *note = console_note(sb);
    *err = format("interpreter lost: %s%s", why ? why : "unknown reason", note ? note : "");
    free(why);
    free(note);
    close_fd(&sb->chan);
    return SESH_RUN_LOST;
}

sesh_run_status sesh_sandbox_execute(sesh_sandbox *sb, json_t *request, int timeout_ms,
                                     json_t **reply, char **err)
{
    *reply = NULL;
    *err = NULL;
    const char *op = NULL;
    size_t max_output = 4096;
    char *bad = check_request(request, &op, &max_output);
    if (bad) {
        /* The pool's own mistake: the sandbox is fine, but the contract has
         * no outcome for it, so say it as loudly as a loss. */
        *err = format("bad request to the sandbox: %s", bad);
        free(bad);
        return SESH_RUN_LOST;
    }
    if (!sb || sb->chan < 0 || atomic_load(&sb->killed))
        return lost(sb, err, strdup("the sandbox is no longer running"));

    long long start = now_ms();
    long long deadline = timeout_ms > 0 ? start + timeout_ms : -1;
    int interrupted = 0;
    char *why = NULL;

    io_result r = send_frame(sb, request, deadline, &why);
    if (r == IO_TIMEOUT)
        return lost(sb, err, format("the runner took no request for %d ms", timeout_ms));
    if (r != IO_OK)
        return lost(sb, err, why ? why : death_note(sb));

    /* Disk use is watched only while the code makes it grow, so code that
     * deletes files from an over-full directory may still run. */
    int watch_disk = strcmp(op, "execute") == 0 && sb->data_fd >= 0;
    unsigned long long disk_before = 0, disk_now = 0;
    char *disk_why = NULL;
    if (watch_disk)
        free(disk_over(sb, &disk_before));

    frame_reader f = { .have_head = 0 };
    long long next_interrupt = -1;
    for (;;) {
        long long wake = deadline;
        if (watch_disk && !disk_why) {
            long long check = now_ms() + DISK_CHECK_MS;
            if (wake < 0 || check < wake)
                wake = check;
        }
        if (next_interrupt >= 0 && (wake < 0 || next_interrupt < wake))
            wake = next_interrupt;
        r = read_frame(sb, &f, wake, &why);
        if (r != IO_TIMEOUT)
            break;
        /* Python may drop a KeyboardInterrupt raised where it cannot
         * propagate (a finalizer, an at-fork hook): press Ctrl-C again. */
        if (next_interrupt >= 0 && now_ms() >= next_interrupt) {
            sesh_sandbox_interrupt(sb);
            next_interrupt = now_ms() + INTERRUPT_REPEAT_MS;
        }
        if (watch_disk && !disk_why) {
            disk_why = disk_over(sb, &disk_now);
            if (disk_why && disk_now <= disk_before && !strstr(disk_why, "levels") &&
                !strstr(disk_why, "files")) {
                free(disk_why);       /* over, but not growing */
                disk_why = NULL;
            }
            if (disk_why) {
                sesh_sandbox_interrupt(sb);
                deadline = now_ms() + INTERRUPT_GRACE_MS;
                next_interrupt = now_ms() + INTERRUPT_REPEAT_MS;
                continue;
            }
        }
        if (deadline < 0 || now_ms() < deadline)
            continue;
        if (interrupted || disk_why) {
            free(f.body);
            return lost(sb, err, format("the code did not stop within %d ms of the interrupt "
                                        "%s; the sandbox was killed", INTERRUPT_GRACE_MS,
                                        disk_why ? disk_why : "at the timeout"));
        }
        interrupted = 1;
        sesh_sandbox_interrupt(sb);
        deadline = now_ms() + INTERRUPT_GRACE_MS;
        next_interrupt = now_ms() + INTERRUPT_REPEAT_MS;
    }
    if (r != IO_OK) {
        free(f.body);
        free(disk_why);
        return lost(sb, err, why ? why : death_note(sb));
    }
    json_t *v = parse_frame(&f, &why);
    free(f.body);
    if (!v) {
        free(disk_why);
        return lost(sb, err, why);
    }
    why = strcmp(op, "execute") == 0 ? check_execute_reply(v, max_output)
                                     : check_metadata_reply(v);
    if (why) {
        json_decref(v);
        free(disk_why);
        return lost(sb, err, why);
    }
    if (watch_disk && !disk_why) {
        disk_why = disk_over(sb, &disk_now);
        if (disk_why && disk_now <= disk_before)
            free(disk_why), disk_why = NULL;
    }
    if (disk_why) {
        mark_disk_failure(v, disk_why);
        free(disk_why);
    }
    *reply = v;
    return interrupted ? SESH_RUN_TIMED_OUT : SESH_RUN_OK;
}

/* ---- start ---- */

static int make_memfd(const char *name, const void *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    if (lseek(fd, 0, SEEK_SET) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void add_limit(spawn_plan *p, int id, rlim_t value)
{
    p->limit_ids[p->nlimits] = id;
    p->limits[p->nlimits].rlim_cur = value;
    p->limits[p->nlimits].rlim_max = value;
    p->nlimits++;
}

/* bwrap's first status line: { "child-pid": N }. */
static pid_t read_child_pid(sesh_sandbox *sb, long long deadline, char **why)
{
    char buf[256];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        struct pollfd p = { .fd = sb->status_fd, .events = POLLIN };
        long long left = deadline - now_ms();
        if (left <= 0) {
            *why = strdup("bwrap did not report its child in time");
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
        *why = strdup("bwrap did not start its child");
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
    frame_reader f = { .have_head = 0 };
    io_result r = read_frame(sb, &f, deadline, why);
    if (r == IO_TIMEOUT) {
        free(f.body);
        *why = format("the runner was not ready within %d ms", START_TIMEOUT_MS);
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

sesh_sandbox *sesh_sandbox_start(const sesh_sandbox_config *cfg, char **err)
{
    *err = NULL;
    struct stat st;
    if (!cfg || !cfg->data_dir || stat(cfg->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        *err = format("sandbox: data directory %s is not a directory",
                      cfg && cfg->data_dir ? cfg->data_dir : "(none)");
        return NULL;
    }
    sesh_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb) {
        *err = strdup("sandbox: out of memory");
        return NULL;
    }
    sb->pidfd = sb->init_pidfd = sb->py_pidfd = sb->chan = sb->console = sb->status_fd = -1;
    sb->data_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    sb->disk_limit = cfg->disk_limit ? cfg->disk_limit : DEFAULT_DISK;

    int as_root = geteuid() == 0;
    uid_t uid = !as_root ? getuid() : cfg->uid ? cfg->uid : allocate_uid();
    sb->uid = uid;
    if (as_root) {
        long entries = 0;
        if (sb->data_fd < 0 || fchown(sb->data_fd, uid, uid) < 0) {
            *err = format("sandbox: cannot give %s to uid %d: %s", cfg->data_dir, (int)uid,
                          strerror(errno));
            close_fd(&sb->data_fd);
            free(sb);
            return NULL;
        }
        give_tree(sb->data_fd, uid, 0, &entries);
    }

    int chan[2] = { -1, -1 }, console[2] = { -1, -1 }, status[2] = { -1, -1 };
    int devnull = -1, runner = -1, filter = -1, passwd = -1, group = -1;
    char accounts[256];
    strvec argv = { 0 }, envp = { 0 };
    char *why = NULL;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
        pipe2(console, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0 ||
        (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 ||
        (runner = make_memfd("sesh-runner", sesh_runner_py, sesh_runner_py_len)) < 0) {
        why = format("cannot prepare descriptors: %s", strerror(errno));
        goto fail;
    }
    filter = sesh_seccomp_filter_fd(&why);
    if (filter < 0)
        goto fail;
    snprintf(accounts, sizeof accounts, "root:x:0:0:root:/root:/usr/sbin/nologin\n"
             "sesh:x:%u:%u:sesh:/tmp:/usr/sbin/nologin\n", (unsigned)uid, (unsigned)uid);
    passwd = make_memfd("sesh-passwd", accounts, strlen(accounts));
    snprintf(accounts, sizeof accounts, "root:x:0:\nsesh:x:%u:\n", (unsigned)uid);
    group = make_memfd("sesh-group", accounts, strlen(accounts));
    if (passwd < 0 || group < 0) {
        why = format("cannot prepare the sandbox's accounts: %s", strerror(errno));
        goto fail;
    }

    size_t tmp_size = cfg->tmp_size ? cfg->tmp_size : DEFAULT_TMP_SIZE;
    int processes = cfg->max_processes > 0 ? cfg->max_processes : DEFAULT_PROCESSES;
    build_argv(&argv, cfg, as_root ? HOST_STAGE : cfg->data_dir, tmp_size, processes);
    build_env(&envp);
    if (argv.oom || envp.oom) {
        why = strdup("out of memory");
        goto fail;
    }

    spawn_plan plan = {
        .argv = argv.v, .envp = envp.v,
        .fds = { devnull, console[1], console[1], chan[1], runner, filter, status[1], passwd,
                 group },
        .as_root = as_root, .uid = uid, .gid = (gid_t)uid, .data_dir = cfg->data_dir,
        .nice = SANDBOX_NICE,
    };
    add_limit(&plan, RLIMIT_AS, cfg->memory_limit ? cfg->memory_limit : DEFAULT_MEMORY);
    /* No single file may be larger than the whole disk allowance. */
    size_t file_size = cfg->file_size_limit ? cfg->file_size_limit : DEFAULT_FILE_SIZE;
    if (file_size > sb->disk_limit)
        file_size = sb->disk_limit;
    add_limit(&plan, RLIMIT_FSIZE, file_size);
    /* RLIMIT_NPROC counts a uid's processes in its user namespace and in
     * every namespace above, against the limit each namespace's creator had.
     * So it is set inside, by the bootstrap, where it counts only the
     * sandbox's own processes; set out here, it would be one allowance
     * shared by every sandbox of the uid (and, unprivileged, by the user's
     * own processes). */
    add_limit(&plan, RLIMIT_NOFILE, (rlim_t)(cfg->max_open_files > 0 ? cfg->max_open_files
                                                                     : DEFAULT_OPEN_FILES));
    add_limit(&plan, RLIMIT_CORE, 0);

    int spawn_err = 0;
    sb->pid = spawn(&plan, &spawn_err);
    if (sb->pid < 0) {
        why = format("fork: %s", strerror(spawn_err));
        goto fail;
    }
    sb->pidfd = pidfd_open(sb->pid, 0);
    close_fd(&chan[1]);
    close_fd(&console[1]);
    close_fd(&status[1]);
    close_fd(&devnull);
    close_fd(&runner);
    close_fd(&filter);
    close_fd(&passwd);
    close_fd(&group);
    sb->chan = chan[0];
    sb->console = console[0];
    sb->status_fd = status[0];
    fcntl(sb->chan, F_SETFL, O_NONBLOCK);
    fcntl(sb->console, F_SETFL, O_NONBLOCK);
    fcntl(sb->status_fd, F_SETFL, O_NONBLOCK);
    vec_free(&argv);
    vec_free(&envp);
    if (sb->pidfd < 0) {
        why = format("pidfd_open: %s", strerror(errno));
        goto fail_started;
    }

    long long deadline = now_ms() + START_TIMEOUT_MS;
    sb->init_pid = read_child_pid(sb, deadline, &why);
    if (sb->init_pid <= 0)
        goto fail_started;
    sb->init_pidfd = pidfd_open(sb->init_pid, 0);
    if (sb->init_pidfd < 0) {
        why = format("pidfd_open of the sandbox init: %s", strerror(errno));
        goto fail_started;
    }
    if (wait_ready(sb, deadline, &why) < 0)
        goto fail_started;
    pid_t py = find_interpreter(sb->init_pid);
    if (py <= 0 || (sb->py_pidfd = pidfd_open(py, 0)) < 0) {
        why = strdup("cannot find the interpreter's process");
        goto fail_started;
    }
    return sb;

fail:
    close_fd(&chan[0]); close_fd(&chan[1]);
    close_fd(&console[0]); close_fd(&console[1]);
    close_fd(&status[0]); close_fd(&status[1]);
    close_fd(&devnull); close_fd(&runner); close_fd(&filter);
    close_fd(&passwd); close_fd(&group);
    close_fd(&sb->data_fd);
    vec_free(&argv);
    vec_free(&envp);
    *err = format("sandbox: %s", why ? why : "cannot start");
    free(why);
    free(sb);
    return NULL;

fail_started: {
        char *note = console_note(sb);
        *err = format("sandbox: %s%s", why ? why : "cannot start", note ? note : "");
        free(note);
        free(why);
        sesh_sandbox_free(sb);
        return NULL;
    }
}
