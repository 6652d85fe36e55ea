/*
 * zygote_enter.c — a sandbox forked from the fork server enters its
 * confinement (see zygote_enter.h for the shape and the contract).
 *
 * This file is a shared library of its own, loaded into the fork server's
 * Python: it links nothing of the pool, exports sesh_enter_fork() only, and
 * takes Python's fork hooks by name from the process it is loaded in. Each
 * step mirrors bubblewrap 0.11 (bubblewrap.c: main, setup_newroot,
 * privileged_op, bind-mount.c: bind_mount, do_init), with the options
 * sandbox_spawn.c gives bwrap; the comments name bwrap's step where the
 * order matters.
 *
 * Between the clone and the end, the outer process and init run this C code
 * only, never Python: the outer process shares the server's memory (on a
 * stack of its own, the server waiting, as vfork does: a copy of the server's
 * page tables costs 3 to 4 ms, and it needs none), and init is a copy made
 * without Python's after-fork work. The runner is made with fork() from init;
 * it goes back to the server's frame in its copy (siglongjmp) and runs
 * Python's PyOS_AfterFork_Child there before it returns.
 */
#include "pool/zygote_enter.h"
#include "pool/sandbox_system.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define BASE "/tmp"                /* where the root tmpfs is mounted (bwrap's base_path) */
#define TMPFS_MODE 0755            /* bwrap's --tmpfs and --dev default */
#define BPF_MAX (64 << 10)         /* bytes of a seccomp program, far above ours */
#define OUTER_STACK (256 << 10)    /* the outer process's, init's and the runner's, to the end */
#define FORGET_MIN (1 << 20)       /* the smallest region of the server's that init unmaps */
#define FORGET_MAX 4096            /* regions init may unmap */

/* What every process of the sandbox inherits from the outer one. */
typedef struct {
    const sesh_enter_request *req;
    struct sigaction saved[_NSIG]; /* the fork server's dispositions, for the runner */
    sigset_t saved_mask;
    int proc_fd;                   /* the host's /proc, for mountinfo during setup */
    struct sock_fprog filter;
} entry;

/* What the outer process finds, in the server's memory (static: the copies
 * init and the runner are made of hold it too). */
static struct {
    entry e;
    const int *fds;
    int nfds, mount_ns;
    sigjmp_buf back;           /* sesh_enter_fork's frame, where the runner returns */
    char stack[OUTER_STACK] __attribute__((aligned(16)));
} outer;

/* ---- failing ---- */

static void die(const char *what)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "sesh sandbox: %s: %s\n", what, strerror(errno));
    if (n > 0 && write(2, buf, (size_t)n) < 0) { /* nothing more to say */ }
    _exit(127);
}

static void die_at(const char *what, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s %s", what, path);
    die(buf);
}

/* ---- Python's fork hooks, from the interpreter this library is loaded in ---- */

static void python_hook(const char *name)
{
    void (*hook)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, name);
    if (hook)
        hook();
}

/* ---- small system helpers ---- */

static pid_t raw_clone(unsigned long flags)
{
    /* fork() cannot make a child of our parent; clone() without a stack
     * continues on a copy of ours, as fork does (bwrap's raw_clone). */
    return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The whole content of a memory file, from its start (malloc'd, NUL-terminated). */
static char *read_fd(int fd, size_t max, size_t *len)
{
    char *buf = malloc(max + 1);
    size_t have = 0;
    if (!buf)
        return NULL;
    for (;;) {
        ssize_t n = pread(fd, buf + have, max - have, (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0 || (have += (size_t)n) == max)
            break;
    }
    buf[have] = 0;
    *len = have;
    return buf;
}

/* ---- the outer process: bwrap's main up to the clone ---- */

/* Every signal to its default action (the server's Python handlers mean
 * nothing here), unblocked; the server's own kept for the runner. */
static void signals_to_default(entry *e)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, &e->saved_mask);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &e->saved[sig]) < 0)
            continue;
        sigaction(sig, &dfl, NULL);
    }
}

/* The request's descriptors to their numbers (zygote_enter.h), the pool's
 * mount namespace just after them; every other descriptor closed. */
static int place_descriptors(const int *fds, int nfds, int mount_ns)
{
    int high[SESH_ENTER_FDS + 1];
    for (int i = 0; i < nfds; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
            die("dup");
    if ((high[nfds] = fcntl(mount_ns, F_DUPFD_CLOEXEC, 64)) < 0)
        die("dup");
    for (int i = 0; i <= nfds; i++)
        if (dup3(high[i], i, i > SESH_ENTER_CHANNEL ? O_CLOEXEC : 0) < 0)
            die("dup2");
    close_range((unsigned)nfds + 1, ~0U, 0);
    return nfds;
}

static void set_limits(const sesh_enter_request *r)
{
    for (int i = 0; i < r->nlimits && i < SESH_ENTER_LIMITS; i++) {
        /* Never above what the server itself may have: a lower limit stands. */
        struct rlimit want = { r->limit_values[i], r->limit_values[i] }, have;
        if (getrlimit(r->limit_ids[i], &have) == 0 && have.rlim_max < want.rlim_max)
            want.rlim_cur = want.rlim_max = have.rlim_max;
        if (setrlimit(r->limit_ids[i], &want) < 0)
            die("setrlimit");
    }
    if (setpriority(PRIO_PROCESS, 0, r->nice) < 0)
        die("setpriority");
}

/* Back in the pool's mount namespace (the server lives in one of its own,
 * with a private /tmp), with the session directory as the working
 * directory: the namespace unshared next is a copy of the pool's, where the
 * working directory is that directory's copy, which init binds at /mnt/data
 * without ever naming its path. */
static void enter_pool_mounts(int mount_ns)
{
    if (setns(mount_ns, CLONE_NEWNS) < 0)
        die("enter the pool's mount namespace");
    close(mount_ns);
    if (fchdir(SESH_ENTER_DATA) < 0)
        die("chdir to the session directory");
    close(SESH_ENTER_DATA);
}

static void drop_root(const sesh_enter_request *r)
{
    if (setgroups(0, NULL) < 0)
        die("setgroups");
    if (setresgid(r->gid, r->gid, r->gid) < 0)
        die("setresgid");
    if (setresuid(r->uid, r->uid, r->uid) < 0)
        die("setresuid");
    /* A change of uid made us undumpable: /proc/self/uid_map would be root's. */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        die("prctl(PR_SET_DUMPABLE)");
}

/* bwrap's clone flags, unshared here so that init can be a child of the
 * pool; the cgroup namespace's comes later (wait_for_cgroups). */
static void unshare_namespaces(const sesh_enter_request *r)
{
    int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
    if (!r->network)
        flags |= CLONE_NEWNET;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(flags) < 0)
        die("unshare the namespaces");
    /* bwrap's write_uid_gid_map: the uid and gid map to themselves. */
    char map[64];
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) < 0)
        die("setting up uid map");
    if (write_file("/proc/self/setgroups", "deny\n") < 0 && errno != ENOENT)
        die("error writing to setgroups");
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0)
        die("setting up gid map");
}

/* Runs in the fork server's child, in its memory; returns only in init.
 * What it changes is its own (signal handlers, descriptors, limits,
 * credentials, namespaces, working directory: none is shared without
 * CLONE_SIGHAND, CLONE_FILES, CLONE_THREAD, CLONE_FS), but for the dumpable
 * flag, which belongs to the memory: a root pool's uid change clears it for
 * the server too, until drop_root sets it again. */
static void outer_process(entry *e, const int *fds, int nfds, int mount_ns)
{
    const sesh_enter_request *r = e->req;
    signals_to_default(e);
    /* Die with the pool (our parent, by CLONE_PARENT), and be sure it is. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != r->pool_pid)
        _exit(127);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)       /* bwrap: first of all */
        die("prctl(PR_SET_NO_NEW_PRIVS)");
    place_descriptors(fds, nfds, mount_ns);
    set_limits(r);
    enter_pool_mounts(nfds);
    if (r->as_root)
        drop_root(r);
    unshare_namespaces(r);
    pid_t init = raw_clone(CLONE_PARENT | SIGCHLD);
    if (init < 0)
        die("clone init");
    if (init == 0)
        return;
    /* bwrap's --json-status-fd line, which the pool reads for either path. */
    char line[64];
    int n = snprintf(line, sizeof line, "{ \"child-pid\": %d }\n", (int)init);
    if (write_all(SESH_ENTER_STATUS, line, (size_t)n) < 0)
        die("report the sandbox's init");
    _exit(0);
}

/* ---- init: the new root (bwrap's setup_newroot and what surrounds it) ---- */

/* lo up: the kernel gives it 127.0.0.1 and ::1 (bwrap's loopback_setup). */
static void loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = { 0 };
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die("loopback: look up lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        die("loopback: set lo up");
    close(s);
}

static void mkdir_parents(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            die_at("mkdir", buf);
        *p = '/';
    }
}

static void ensure_dir(const char *path)
{
    mkdir_parents(path, 0755);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die_at("mkdir", path);
}

static void ensure_file(const char *path)
{
    mkdir_parents(path, 0755);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0 && errno != EEXIST)
        die_at("create", path);
    if (fd >= 0)
        close(fd);
}

/* A mount point of /proc/self/mountinfo, unescaped (\040 and friends). */
static void unescape(char *s)
{
    char *out = s;
    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 4;
        } else {
            *out++ = *s++;
        }
    }
    *out = 0;
}

/* A mount's flags as statvfs tells them (the ST_ bits are the MS_ bits). */
static unsigned long mount_flags(const char *path)
{
    struct statvfs v;
    if (statvfs(path, &v) < 0)
        return 0;
    return v.f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS |
                       MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
}

enum { BIND_READONLY = 1, BIND_DEVICES = 2, BIND_RECURSIVE = 4 };

static void remount(const char *path, int options)
{
    unsigned long now = mount_flags(path);
    unsigned long want = now | (options & BIND_DEVICES ? 0 : MS_NODEV) | MS_NOSUID |
                         (options & BIND_READONLY ? MS_RDONLY : 0);
    if (want != now && mount("none", path, NULL, MS_SILENT | MS_BIND | MS_REMOUNT | want, NULL) < 0)
        die_at("remount", path);
}

/* The mounts below dest, which a bind's flags do not reach by themselves. */
static void remount_below(const entry *e, const char *dest, int options)
{
    int fd = openat(e->proc_fd, "self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open /proc/self/mountinfo");
    size_t len;
    char *text = read_fd(fd, 4 << 20, &len);
    close(fd);
    if (!text)
        die("read /proc/self/mountinfo");
    size_t dlen = strlen(dest);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char point[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
            continue;
        unescape(point);
        if (strncmp(point, dest, dlen) != 0 || point[dlen] != '/')
            continue;
        unsigned long now = mount_flags(point);
        unsigned long want = now | (options & BIND_DEVICES ? 0 : MS_NODEV) | MS_NOSUID |
                             (options & BIND_READONLY ? MS_RDONLY : 0);
        /* bwrap: a mount it cannot reach is none the sandbox can reach */
        if (want != now && mount("none", point, NULL, MS_SILENT | MS_BIND | MS_REMOUNT | want,
                                 NULL) < 0 && errno != EACCES)
            die_at("remount", point);
    }
    free(text);
}

/* bwrap's bind_mount: bind (recursively for directories, as bwrap always
 * does), then nosuid and nodev (unless devices) and read-only as asked, on
 * the mount and every mount below it. src NULL: only the flags. */
static void bind_mount(const entry *e, const char *src, const char *dest, int options)
{
    if (src && mount(src, dest, NULL, MS_SILENT | MS_BIND | MS_REC, NULL) < 0)
        die_at("bind mount on", dest);
    remount(dest, options);
    if (options & BIND_RECURSIVE)
        remount_below(e, dest, options);
}

/* The host's path, its symbolic links followed as the host sees them (an
 * absolute one, /etc/localtime's, points into the old root), as a path under
 * /oldroot in out: bwrap's resolve_symlinks_in_ops, after the pivot. -1 with
 * errno when it does not resolve. */
static int resolve_old(const char *path, char out[PATH_MAX])
{
    char rest[PATH_MAX], link[PATH_MAX];
    size_t base = strlen("/oldroot");
    snprintf(out, PATH_MAX, "/oldroot");
    snprintf(rest, sizeof rest, "%s", path);
    for (int hops = 0; rest[0]; ) {
        char *part = rest;
        while (*part == '/')
            part++;
        size_t len = strcspn(part, "/");
        if (len == 0)
            break;
        char name[NAME_MAX + 1];
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(name, part, len);
        name[len] = 0;
        memmove(rest, part + len, strlen(part + len) + 1);
        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            char *slash = strrchr(out + base, '/');
            if (slash)
                *slash = 0;
            continue;
        }
        size_t at = strlen(out);
        if (at + 1 + len >= PATH_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        out[at] = '/';
        memcpy(out + at + 1, name, len + 1);
        ssize_t n = readlink(out, link, sizeof link - 1);
        if (n < 0) {
            if (errno == EINVAL)
                continue;               /* not a link */
            return -1;
        }
        if (++hops > 40) {
            errno = ELOOP;
            return -1;
        }
        link[n] = 0;
        out[at] = 0;                    /* the link's directory */
        if (link[0] == '/')
            out[base] = 0;
        size_t ll = (size_t)n, rl = strlen(rest);
        if (ll + 1 + rl >= sizeof rest) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memmove(rest + ll + 1, rest, rl + 1);       /* the link's target, then the rest */
        memcpy(rest, link, ll);
        rest[ll] = '/';
    }
    return 0;
}

/* --ro-bind(-try) SRC DEST, SRC seen from the old root. */
static void bind_path(const entry *e, const char *path, int options, int try)
{
    char src[PATH_MAX], dest[PATH_MAX];
    snprintf(dest, sizeof dest, "/newroot%s", path);
    struct stat st;
    if (resolve_old(path, src) < 0 || stat(src, &st) < 0) {
        if (try && errno == ENOENT)
            return;
        die_at("stat", path);
    }
    if (S_ISDIR(st.st_mode))
        ensure_dir(dest);
    else
        ensure_file(dest);
    bind_mount(e, src, dest, options | BIND_RECURSIVE);
}

/* /lib and friends (sandbox_system.h). */
static void top_link(const entry *e, const char *path)
{
    char src[PATH_MAX], dest[PATH_MAX], target[256];
    snprintf(src, sizeof src, "/oldroot%s", path);
    snprintf(dest, sizeof dest, "/newroot%s", path);
    ssize_t n = readlink(src, target, sizeof target - 1);
    if (n > 0) {
        target[n] = 0;
        if (symlink(target, dest) < 0)
            die_at("symlink", path);
    } else if (access(src, F_OK) == 0) {
        bind_path(e, path, BIND_READONLY, 0);
    }
}

/* /etc/python3, /etc/python3.11. */
static void python_etc(const entry *e)
{
    DIR *d = opendir("/oldroot/etc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "python3", 7) == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "/etc/%s", de->d_name);
            bind_path(e, path, BIND_READONLY, 1);
        }
    }
    closedir(d);
}

/* --ro-bind-data: bytes in a file of the root tmpfs (0600, as mkstemp makes
 * it), bound read-only at path, the file itself unlinked. */
static void bind_bytes(const entry *e, const char *data, size_t len, const char *path)
{
    char dest[PATH_MAX], tmp[] = "/bindfileXXXXXX";
    snprintf(dest, sizeof dest, "/newroot%s", path);
    int out = mkstemp(tmp);
    if (out < 0 || fchmod(out, 0600) < 0 || write_all(out, data, len) < 0)
        die_at("write", path);
    close(out);
    ensure_file(dest);
    bind_mount(e, tmp, dest, BIND_READONLY | BIND_RECURSIVE);
    unlink(tmp);
}

/* --ro-bind-data FD DEST: the memory file's bytes. */
static void bind_data(const entry *e, int fd, const char *path)
{
    size_t len;
    char *data = read_fd(fd, 1 << 20, &len);
    if (!data)
        die_at("read the data of", path);
    bind_bytes(e, data, len, path);
    free(data);
    close(fd);
}

/* What this process shares with the fork server (its anonymous pages, the
 * runner's too: a copy of ours), in thousandths of the session's memory:
 * the weight sandbox_oom.c gives every program the sandbox executes. */
static long shared_weight(const entry *e)
{
    int fd = openat(e->proc_fd, "self/status", O_RDONLY | O_CLOEXEC);
    size_t len;
    char *status = fd >= 0 ? read_fd(fd, 64 << 10, &len) : NULL;
    if (fd >= 0)
        close(fd);
    const char *anon = status ? strstr(status, "RssAnon:") : NULL;
    unsigned long long kb = anon ? strtoull(anon + 8, NULL, 10) : 0;
    free(status);
    unsigned long long memory = e->req->session_memory;
    if (!memory)
        return 0;
    unsigned long long weight = (kb * 1024 * 1000 + memory - 1) / memory;
    return weight > 1000 ? 1000 : (long)weight;
}

/* /etc/ld.so.preload naming sandbox_oom.c's library, its weight in its name. */
static void preload_oom(const entry *e)
{
    char lib[64], list[80];
    snprintf(lib, sizeof lib, "/etc/sesh-oom-%ld.so", shared_weight(e));
    int n = snprintf(list, sizeof list, "%s\n", lib);
    bind_data(e, SESH_ENTER_OOM, lib);
    bind_bytes(e, list, (size_t)n, "/etc/ld.so.preload");
}

/* --proc: our own, and its dangerous corners read-only where writable. */
static void mount_proc(const entry *e)
{
    ensure_dir("/newroot/proc");
    if (mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0)
        die("mount proc");
    static const char *const cover[] = { "sys", "sysrq-trigger", "irq", "bus" };
    for (size_t i = 0; i < sizeof cover / sizeof *cover; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "/newroot/proc/%s", cover[i]);
        if (access(sub, W_OK) < 0) {
            if (errno == EACCES || errno == ENOENT || errno == EROFS)
                continue;
            die_at("access", sub);
        }
        bind_mount(e, sub, sub, BIND_READONLY | BIND_RECURSIVE);
    }
}

static void mount_tmpfs(const char *dest, size_t size)
{
    char opts[64];
    if (size)
        snprintf(opts, sizeof opts, "mode=%#o,size=%zu", TMPFS_MODE, size);
    else
        snprintf(opts, sizeof opts, "mode=%#o", TMPFS_MODE);
    ensure_dir(dest);
    if (mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        die_at("mount tmpfs on", dest);
}

/* --dev: a tmpfs with the host's harmless devices, the usual links, devpts. */
static void mount_dev(const entry *e)
{
    mount_tmpfs("/newroot/dev", 0);
    static const char *const nodes[] = SESH_SANDBOX_DEVICES;
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        char src[64], dest[64];
        snprintf(src, sizeof src, "/oldroot/dev/%s", nodes[i]);
        snprintf(dest, sizeof dest, "/newroot/dev/%s", nodes[i]);
        ensure_file(dest);
        bind_mount(e, src, dest, BIND_DEVICES | BIND_RECURSIVE);
    }
    static const char *const stdio[] = { "stdin", "stdout", "stderr" };
    for (int i = 0; i < 3; i++) {
        char target[32], dest[64];
        snprintf(target, sizeof target, "/proc/self/fd/%d", i);
        snprintf(dest, sizeof dest, "/newroot/dev/%s", stdio[i]);
        if (symlink(target, dest) < 0)
            die_at("symlink", dest);
    }
    if (symlink("/proc/self/fd", "/newroot/dev/fd") < 0 ||
        symlink("/proc/kcore", "/newroot/dev/core") < 0)
        die("symlink in /dev");
    if (mkdir("/newroot/dev/shm", 0755) < 0 || mkdir("/newroot/dev/pts", 0755) < 0)
        die("mkdir in /dev");
    if (mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=620") < 0)
        die("mount devpts");
    if (symlink("pts/ptmx", "/newroot/dev/ptmx") < 0)
        die("symlink /dev/ptmx");
}

/* --ro-bind DIR DIR for each directory of SESH_ENTER_BINDS: the
 * interpreter's own (a venv, its base), after /tmp's tmpfs, so that one
 * under /tmp shows through it. */
static void bind_dirs(const entry *e)
{
    size_t len;
    char *dirs = read_fd(SESH_ENTER_BINDS, 64 << 10, &len);
    if (!dirs)
        die("read the directories to bind");
    for (size_t at = 0; at < len; at += strlen(dirs + at) + 1)
        if (dirs[at] == '/')
            bind_path(e, dirs + at, BIND_READONLY, 0);
    free(dirs);
    close(SESH_ENTER_BINDS);
}

/* The operations of sandbox_spawn.c's bwrap command line, in its order. */
static void setup_newroot(const entry *e, int data)
{
    const sesh_enter_request *r = e->req;
    if (sethostname(SESH_SANDBOX_HOSTNAME, strlen(SESH_SANDBOX_HOSTNAME)) < 0)
        die("sethostname");
    bind_path(e, "/usr", BIND_READONLY, 0);
    static const char *const tops[] = SESH_SANDBOX_TOPS;
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
        top_link(e, tops[i]);
    static const char *const etc[] = SESH_SANDBOX_ETC;
    for (size_t i = 0; i < sizeof etc / sizeof *etc; i++)
        bind_path(e, etc[i], BIND_READONLY, 1);
    python_etc(e);
    bind_data(e, SESH_ENTER_PASSWD, "/etc/passwd");
    bind_data(e, SESH_ENTER_GROUP, "/etc/group");
    preload_oom(e);
    if (r->network) {
        static const char *const net[] = SESH_SANDBOX_NET;
        for (size_t i = 0; i < sizeof net / sizeof *net; i++)
            bind_path(e, net[i], BIND_READONLY, 1);
    }
    mount_proc(e);
    mount_dev(e);
    mount_tmpfs("/newroot/dev/shm", r->shm_size);
    bind_mount(e, NULL, "/newroot/dev", BIND_READONLY);           /* --remount-ro /dev */
    mount_tmpfs("/newroot/tmp", r->tmp_size);
    /* --bind DATA /mnt/data, from the working directory outer_process set:
     * bwrap's --bind-fd way, through /proc/self/fd of the old root. */
    char src[64];
    snprintf(src, sizeof src, "/oldroot/proc/self/fd/%d", data);
    ensure_dir("/newroot/mnt/data");
    bind_mount(e, src, "/newroot/mnt/data", BIND_RECURSIVE);
    close(data);
    bind_dirs(e);
    bind_mount(e, NULL, "/newroot", BIND_READONLY);               /* --remount-ro / */
}

/* bwrap's main from the slave mount to the second pivot_root. */
static void build_root(entry *e)
{
    /* The session directory, our working directory since outer_process. */
    int data = open(".", O_PATH | O_CLOEXEC);
    if (data < 0)
        die("open the session directory");
    if ((e->proc_fd = open("/proc", O_PATH | O_CLOEXEC)) < 0)
        die("open /proc");
    mode_t old_umask = umask(0);
    if (mount(NULL, "/", NULL, MS_SILENT | MS_SLAVE | MS_REC, NULL) < 0)
        die("make / slave");
    if (mount("tmpfs", BASE, "tmpfs", MS_NODEV | MS_NOSUID, NULL) < 0)
        die("mount the root tmpfs");
    if (chdir(BASE) < 0)
        die("chdir to the root tmpfs");
    if (mkdir("newroot", 0755) < 0)
        die("mkdir newroot");
    if (mount("newroot", "newroot", NULL, MS_SILENT | MS_MGC_VAL | MS_BIND | MS_REC, NULL) < 0)
        die("bind newroot");
    if (mkdir("oldroot", 0755) < 0)
        die("mkdir oldroot");
    if (syscall(SYS_pivot_root, BASE, "oldroot") < 0)
        die("pivot_root");
    if (chdir("/") < 0)
        die("chdir /");
    setup_newroot(e, data);
    close(e->proc_fd);
    if (mount("oldroot", "oldroot", NULL, MS_SILENT | MS_REC | MS_PRIVATE, NULL) < 0)
        die("make the old root private");
    if (umount2("oldroot", MNT_DETACH) < 0)
        die("unmount the old root");
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0 || chdir("/newroot") < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        fchdir(oldroot) < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        die("pivot_root to the new root");
    close(oldroot);
    umask(old_umask);
}

/* bwrap's --cap-drop ALL: the bounding set, the ambient set, and the
 * effective, permitted and inheritable sets all emptied. */
static void drop_capabilities(void)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
            die("drop from the capability bounding set");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        die("clear the ambient capabilities");
    struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { { 0 } };
    if (syscall(SYS_capset, &head, none) < 0)
        die("capset");
}

static void read_filter(entry *e)
{
    size_t len;
    char *bpf = read_fd(SESH_ENTER_SECCOMP, BPF_MAX, &len);
    if (!bpf || len == 0 || len % sizeof(struct sock_filter) != 0 || len == BPF_MAX)
        die("read the seccomp filter");
    close(SESH_ENTER_SECCOMP);
    e->filter.len = (unsigned short)(len / sizeof(struct sock_filter));
    e->filter.filter = (struct sock_filter *)bpf;
}

static void apply_filter(const entry *e)
{
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &e->filter, 0, 0) < 0)
        die("load the seccomp filter");
}

/* bwrap's propagate_exit_status: 128 + N for a signal, as a shell says it. */
static int exit_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

/* Does [start, end) hold one of the addresses? */
static int holds(uintptr_t start, uintptr_t end, const uintptr_t *keep, int nkeep)
{
    for (int i = 0; i < nkeep; i++)
        if (keep[i] >= start && keep[i] < end)
            return 1;
    return 0;
}

/* init needs none of the server's memory, which the runner has its own copy
 * of: its large anonymous regions (the interpreter's heap and arenas) are
 * unmapped, so that init is not counted as holding them (resident size, for
 * the kernel's choice out of memory too) nor maps them with page tables of
 * its own. Kept: every region holding what init still uses (its stack, this
 * library's statics, its thread's TLS), and every file's. Nothing is read
 * from the heap after this, nor allocated. */
static void forget_server(void)
{
    static uintptr_t ranges[FORGET_MAX][2];
    int here = 0, n = 0;
    const uintptr_t keep[] = { (uintptr_t)&here, (uintptr_t)ranges, (uintptr_t)&outer,
                               (uintptr_t)pthread_self(), (uintptr_t)&errno };
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    char buf[8192];
    size_t have = 0;
    ssize_t got;
    while (fd >= 0 && (got = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
        have += (size_t)got;
        buf[have] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = 0;
            unsigned long start, end;
            char perms[8], path[16] = "";
            if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %15s", &start, &end, perms, path) >= 3 &&
                (path[0] == 0 || strcmp(path, "[heap]") == 0) &&
                strncmp(perms, "rw-p", 4) == 0 && end - start >= FORGET_MIN &&
                !holds(start, end, keep, sizeof keep / sizeof *keep) && n < FORGET_MAX) {
                ranges[n][0] = start;
                ranges[n][1] = end;
                n++;
            }
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have);
    }
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < n; i++)
        munmap((void *)ranges[i][0], ranges[i][1] - ranges[i][0]);
}

/* bwrap's do_init, except that it ends with the runner: the pool sees the
 * runner's death as init's, and everything left in the namespace goes with
 * init. Undumpable, so nothing of it shows to the runner's /proc/1. */
static void __attribute__((noreturn)) init_loop(const entry *e, pid_t runner)
{
    close_range(3, ~0U, 0);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        die("prctl(PR_SET_DUMPABLE)");
    apply_filter(e);
    forget_server();
    for (;;) {
        int st;
        pid_t child = wait(&st);
        if (child == runner)
            _exit(exit_status(st));
        if (child < 0 && errno != EINTR)
            _exit(255);
    }
}

/* The pool moved init into the sandbox's cgroups: the cgroup namespace is
 * rooted there (--unshare-cgroup-try), and whatever init starts is held to
 * the sandbox's limits. */
static void wait_for_cgroups(void)
{
    char go = 0;
    ssize_t n;
    while ((n = read(SESH_ENTER_GO, &go, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1 || go != 'g') {
        errno = n < 0 ? errno : EPIPE;
        die("wait for the pool to move init into the sandbox's cgroups");
    }
    close(SESH_ENTER_GO);
    if (access("/proc/self/ns/cgroup", F_OK) == 0 && unshare(CLONE_NEWCGROUP) < 0)
        die("unshare the cgroup namespace");
}

/* Runs in init; returns only in the runner. */
static void init_process(entry *e)
{
    const sesh_enter_request *r = e->req;
    /* Die with the pool: our parent too, by CLONE_PARENT. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        die("prctl(PR_SET_PDEATHSIG)");
    if (!r->network)
        loopback_up();
    build_root(e);
    wait_for_cgroups();
    drop_capabilities();
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)         /* bwrap's drop_privs */
        die("prctl(PR_SET_DUMPABLE)");
    read_filter(e);
    if (chdir("/mnt/data") < 0)                          /* --chdir */
        die("chdir /mnt/data");
    if (setsid() < 0)                                    /* --new-session */
        die("setsid");
    pid_t runner = fork();
    if (runner < 0)
        die("fork the runner");
    if (runner > 0)
        init_loop(e, runner);
}

/* ---- the runner: the last steps before Python goes on ---- */

static void runner_process(entry *e)
{
    const sesh_enter_request *r = e->req;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)   /* --die-with-parent */
        die("prctl(PR_SET_PDEATHSIG)");
    /* RLIMIT_NPROC counts the uid's processes in this user namespace only:
     * set here, it is this sandbox's own allowance (see sandbox.c). */
    struct rlimit nproc = { (rlim_t)r->processes, (rlim_t)r->processes };
    if (setrlimit(RLIMIT_NPROC, &nproc) < 0)
        die("setrlimit(RLIMIT_NPROC)");
    drop_capabilities();
    apply_filter(e);                    /* bwrap: the last step before exec */
    free(e->filter.filter);
    close_range(SESH_ENTER_CHANNEL + 1, ~0U, 0);
    for (int sig = 1; sig < _NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &e->saved[sig], NULL);
    sigprocmask(SIG_SETMASK, &e->saved_mask, NULL);
}

/* ---- the entry point ---- */

static int outer_main(void *unused)
{
    (void)unused;
    outer_process(&outer.e, outer.fds, outer.nfds, outer.mount_ns);
    init_process(&outer.e);
    runner_process(&outer.e);
    siglongjmp(outer.back, 1);
}

EXPORT long sesh_enter_fork(const void *request, unsigned long size, const int *fds, int nfds,
                            int pool_mount_ns)
{
    const sesh_enter_request *r = request;
    if (size != sizeof *r || r->version != SESH_ENTER_VERSION || r->size != sizeof *r ||
        nfds != SESH_ENTER_FDS)
        return -EINVAL;
    memset(&outer.e, 0, sizeof outer.e);
    outer.e.req = r;
    outer.fds = fds;
    outer.nfds = nfds;
    outer.mount_ns = pool_mount_ns;
    python_hook("PyOS_BeforeFork");
    if (sigsetjmp(outer.back, 0)) {
        /* The runner, on its copy of the server's stack, confined. */
        python_hook("PyOS_AfterFork_Child");
        return 0;
    }
    pid_t pid = clone(outer_main, outer.stack + OUTER_STACK,
                      CLONE_VM | CLONE_VFORK | CLONE_PARENT | SIGCHLD, NULL);
    int saved = errno;
    python_hook("PyOS_AfterFork_Parent");
    return pid > 0 ? pid : -saved;
}
