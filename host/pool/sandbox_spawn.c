/*
 * sandbox_spawn.c — the bwrap command line of a sandbox, and the fork that
 * runs it (see sandbox_spawn.h).
 */
#include "pool/sandbox_spawn.h"
#include "pool/sandbox_system.h"
#include "pool/util.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BWRAP "/usr/bin/bwrap"

/* The runner arrives on descriptor 4. The bootstrap sets the process limit
 * inside the sandbox's user namespace (where it counts the sandbox's own
 * processes only, see sandbox.c), reads the runner, closes every descriptor
 * above the channel, and runs it. */
static const char bootstrap[] =
    "import os,resource;resource.setrlimit(resource.RLIMIT_NPROC,(%d,%d));"
    "f=os.fdopen(4,'rb');s=f.read();f.close();os.closerange(4,65536);"
    "exec(compile(s,'sesh-runner','exec'),{'__name__':'__sesh_runner__'})";

/* ---- string vectors ---- */

typedef struct { char **v; size_t n, cap; int oom; } strvec;

static void add(strvec *a, const char *s)
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

static void addf(strvec *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = sesh_vstrprintf(fmt, ap);
    va_end(ap);
    if (!s) { a->oom = 1; return; }
    add(a, s);
    free(s);
}

/* The vector (kept NULL-terminated by add), or NULL if memory ran out. */
static char **finish(strvec *a)
{
    if (!a->oom)
        return a->v;
    sesh_strv_free(a->v);
    return NULL;
}

void sesh_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* ---- the command line ---- */

/* /lib, /bin and friends: a symlink into /usr on merged-/usr systems. */
static void add_top_link(strvec *a, const char *path)
{
    char target[256];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) {
        target[n] = 0;
        add(a, "--symlink"); add(a, target); add(a, path);
    } else if (access(path, F_OK) == 0) {
        add(a, "--ro-bind"); add(a, path); add(a, path);
    }
}

static void add_ro_try(strvec *a, const char *path)
{
    add(a, "--ro-bind-try"); add(a, path); add(a, path);
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
            add(a, "--ro-bind-try");
            addf(a, "/etc/%s", e->d_name);
            addf(a, "/etc/%s", e->d_name);
        }
    closedir(d);
}

/* What Python and its packages need of the system (sandbox_system.h). */
static void add_system(strvec *a, int network)
{
    add(a, "--ro-bind"); add(a, "/usr"); add(a, "/usr");
    static const char *const tops[] = SESH_SANDBOX_TOPS;
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
        add_top_link(a, tops[i]);
    static const char *const etc[] = SESH_SANDBOX_ETC;
    for (size_t i = 0; i < sizeof etc / sizeof *etc; i++)
        add_ro_try(a, etc[i]);
    add_python_etc(a);
    /* Accounts of the sandbox only: getpass, id and pwd work, no host account shows. */
    add(a, "--ro-bind-data"); addf(a, "%d", SESH_FD_PASSWD); add(a, "/etc/passwd");
    add(a, "--ro-bind-data"); addf(a, "%d", SESH_FD_GROUP); add(a, "/etc/group");
    if (network) {
        static const char *const net[] = SESH_SANDBOX_NET;
        for (size_t i = 0; i < sizeof net / sizeof *net; i++)
            add_ro_try(a, net[i]);
    }
}

char **sesh_bwrap_argv(const sesh_bwrap_options *o)
{
    strvec a = { 0 };
    add(&a, BWRAP);
    add(&a, "--unshare-user");
    add(&a, "--unshare-ipc");
    add(&a, "--unshare-pid");
    add(&a, "--unshare-uts");
    add(&a, "--unshare-cgroup-try");
    if (!o->network)
        add(&a, "--unshare-net");
    add(&a, "--die-with-parent");
    add(&a, "--new-session");
    add(&a, "--cap-drop"); add(&a, "ALL");
    add(&a, "--hostname"); add(&a, SESH_SANDBOX_HOSTNAME);
    add_system(&a, o->network);

    add(&a, "--proc"); add(&a, "/proc");
    add(&a, "--dev"); add(&a, "/dev");
    /* /dev/shm lives in /dev's tmpfs, which has no size: give it its own. */
    add(&a, "--size"); addf(&a, "%zu", o->shm_size);
    add(&a, "--tmpfs"); add(&a, "/dev/shm");
    add(&a, "--remount-ro"); add(&a, "/dev");
    add(&a, "--size"); addf(&a, "%zu", o->tmp_size);
    add(&a, "--tmpfs"); add(&a, "/tmp");
    add(&a, "--bind"); add(&a, o->data_src); add(&a, "/mnt/data");
    /* The interpreter's own directories (a venv, its base): after /tmp's
     * tmpfs, so one that lives under /tmp shows through it. */
    for (const char *const *d = o->python_dirs; d && *d; d++) {
        add(&a, "--ro-bind"); add(&a, *d); add(&a, *d);
    }
    add(&a, "--chdir"); add(&a, "/mnt/data");
    add(&a, "--remount-ro"); add(&a, "/");
    add(&a, "--seccomp"); addf(&a, "%d", SESH_FD_SECCOMP);
    add(&a, "--json-status-fd"); addf(&a, "%d", SESH_FD_STATUS);
    add(&a, "--");
    add(&a, o->python);
    add(&a, "-E");             /* no PYTHON* variable */
    add(&a, "-s");             /* no user site directory */
    add(&a, "-B");             /* no .pyc written */
    add(&a, "-c");
    addf(&a, bootstrap, o->processes, o->processes);
    return finish(&a);
}

char **sesh_sandbox_env(void)
{
    strvec e = { 0 };
    add(&e, "HOME=/tmp");
    add(&e, "PATH=/usr/local/bin:/usr/bin:/bin");
    add(&e, "LANG=C.UTF-8");
    add(&e, "MPLBACKEND=Agg");
    add(&e, "MPLCONFIGDIR=/tmp/.config/matplotlib");
    add(&e, "PYTHONDONTWRITEBYTECODE=1");
    add(&e, "PYTHONUNBUFFERED=1");
    return finish(&e);
}

void sesh_spawn_limit(sesh_spawn_plan *p, int id, const char *name, rlim_t value)
{
    if (p->nlimits >= SESH_SPAWN_LIMITS)
        return;
    p->limit_ids[p->nlimits] = id;
    p->limit_names[p->nlimits] = name;
    p->limits[p->nlimits].rlim_cur = value;
    p->limits[p->nlimits].rlim_max = value;
    p->nlimits++;
}

int sesh_may_mount(void)
{
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &head, caps) != 0)
        return geteuid() == 0;
    return (caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

/* ---- the child: from fork to exec, async-signal-safe calls only ---- */

static void child_fail(const char *what)
{
    /* The console pipe is on 2 by now (or will never be). */
    char buf[256];
    int n = snprintf(buf, sizeof buf, "sesh sandbox: %s: %s\n", what, strerror(errno));
    if (n > 0 && write(2, buf, (size_t)n) < 0) { /* nothing more to say */ }
    _exit(127);
}

/* The descriptors go to their numbers, and the child into the sandbox's
 * cgroups (still root, and before bwrap: nothing of the sandbox ever runs
 * outside them); the cgroup descriptors are kept out of the way of the
 * dup2s, then closed with every other one. */
static void child_descriptors(const sesh_spawn_plan *p)
{
    int high[SESH_SPAWN_FDS], cgroups[SESH_SPAWN_CGROUPS];
    for (int i = 0; i < SESH_SPAWN_FDS; i++) {
        high[i] = p->fds[i] < 0 ? -1 : fcntl(p->fds[i], F_DUPFD, 64);
        if (p->fds[i] >= 0 && high[i] < 0)
            child_fail("dup");
    }
    for (int i = 0; i < p->ncgroup_procs; i++) {
        cgroups[i] = fcntl(p->cgroup_procs[i], F_DUPFD, 64);
        if (cgroups[i] < 0)
            child_fail("dup");
    }
    for (int i = 0; i < SESH_SPAWN_FDS; i++) {
        if (high[i] >= 0 && dup2(high[i], i) < 0)
            child_fail("dup2");
        if (high[i] < 0)
            close(i);
    }
    for (int i = 0; i < p->ncgroup_procs; i++)
        if (write(cgroups[i], "0", 1) != 1)
            child_fail("enter the session's cgroup");
    close_range(SESH_SPAWN_FDS, ~0U, 0);
}

static void child_limits(const sesh_spawn_plan *p)
{
    for (int i = 0; i < p->nlimits; i++) {
        /* Never above what the pool itself may have: a lower limit stands. */
        struct rlimit want = p->limits[i], have;
        if (getrlimit(p->limit_ids[i], &have) == 0 && have.rlim_max < want.rlim_max)
            want.rlim_cur = want.rlim_max = have.rlim_max;
        if (setrlimit(p->limit_ids[i], &want) < 0) {
            /* valgrind lets nobody move its own hard limit on descriptors */
            want.rlim_max = have.rlim_max;
            if (setrlimit(p->limit_ids[i], &want) < 0)
                child_fail(p->limit_names[i]);
        }
    }
}

static void child_stage_data(const sesh_spawn_plan *p)
{
    /* bwrap runs unprivileged and must reach the data directory by path,
     * though its parents may be closed to the sandbox uid; and bwrap's
     * command line shows in the sandbox (/proc/1/cmdline): show it at the
     * stage, in a mount namespace of our own. */
    if (unshare(CLONE_NEWNS) < 0)
        child_fail("unshare(CLONE_NEWNS)");
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail("make / private");
    if (mount(p->data_dir, p->stage, "none", MS_BIND, NULL) < 0)
        child_fail("bind the data directory");
}

static void child_drop_root(const sesh_spawn_plan *p)
{
    if (setgroups(0, NULL) < 0)
        child_fail("setgroups");
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        child_fail("setresgid");
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        child_fail("setresuid");
}

#define KEEP_DIRS_MAX 8

/* mkdir -p of path, in the child (no allocation). */
static void child_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        child_fail("a kept directory's path is too long");
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                child_fail("mkdir a kept directory");
            if (!(*s = c))
                break;
        }
    }
}

/* The fork server's own /tmp, where its imports write (matplotlib's and
 * IPython's folders), in a mount namespace that host mounts still reach.
 * The interpreter's directories under /tmp are bound into it again. */
static void child_private_tmp(const sesh_spawn_plan *p)
{
    char opts[64];
    snprintf(opts, sizeof opts, "mode=0700,size=%zu", p->private_tmp);
    if (unshare(CLONE_NEWNS) < 0)
        child_fail("unshare(CLONE_NEWNS)");
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        child_fail("make / slave");
    int kept[KEEP_DIRS_MAX], n = 0;
    const char *const *d = p->keep_dirs;
    for (; d && *d && n < KEEP_DIRS_MAX; d++)
        if (strncmp(*d, "/tmp/", 5) == 0 &&
            (kept[n++] = open(*d, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            child_fail("open a kept directory");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        child_fail("mount a private /tmp");
    int i = 0;
    for (d = p->keep_dirs; d && *d && i < n; d++) {
        if (strncmp(*d, "/tmp/", 5) != 0)
            continue;
        char src[64];
        snprintf(src, sizeof src, "/proc/self/fd/%d", kept[i]);
        child_mkdirs(*d);
        if (mount(src, *d, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail("bind a kept directory");
        close(kept[i++]);
    }
}

/* A pool that is not root holds CAP_SYS_ADMIN in a user namespace of its
 * own (datadir.h), which an exec drops: kept as ambient capabilities, the
 * fork server's children may go back to the pool's mount namespace. */
static void child_keep_mount_caps(void)
{
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
    static const int keep[] = { CAP_SYS_ADMIN, CAP_SYS_CHROOT };
    if (syscall(SYS_capget, &head, caps) < 0)
        child_fail("capget");
    for (int i = 0; i < 2; i++)
        caps[CAP_TO_INDEX(keep[i])].inheritable |= CAP_TO_MASK(keep[i]);
    if (syscall(SYS_capset, &head, caps) < 0)
        child_fail("capset");
    for (int i = 0; i < 2; i++)
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep[i], 0, 0) < 0)
            child_fail("keep a capability");
}

static void child_run(const sesh_spawn_plan *p)
{
    if (p->die_with_parent && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail("prctl(PR_SET_PDEATHSIG)");
    child_descriptors(p);
    child_limits(p);
    if (p->private_tmp)
        child_private_tmp(p);
    if (p->keep_mount_caps)
        child_keep_mount_caps();
    if (p->stage)
        child_stage_data(p);
    if (p->as_root)
        child_drop_root(p);
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
    const char *exe = p->exe ? p->exe : BWRAP;
    execve(exe, p->argv, p->envp);
    child_fail(exe);
}

/* ---- the spawner thread ----
 * bwrap --die-with-parent ties the sandbox to the *thread* that forked it
 * (PR_SET_PDEATHSIG fires when that thread exits). A pool may start
 * sandboxes from short-lived threads, so every fork happens here, in a
 * thread that lives as long as the process. */

typedef struct {
    const sesh_spawn_plan *plan;
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
    spawn_thread_ok = sesh_thread_start(spawner, NULL) == 0;
}

pid_t sesh_spawn(const sesh_spawn_plan *plan, int *err)
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
