/*
 * cgroup.c — the pool's control groups (see cgroup.h).
 *
 * Everything here is plain file work on the cgroup file system: mkdir makes
 * a group (the kernel fills it with control files), writing a control file
 * sets a limit, rmdir removes a group once no process is left in it.
 */
#include "pool/cgroup.h"
#include "pool/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL_PREFIX       "sesh-pool-"
#define MAX_TEXT          (4 << 20)    /* the mountinfo of a host with many mounts */
#define V1_SHARES         1024         /* a session's cpu.shares: one task at nice 0 */
#define V2_WEIGHT         100          /* a session's cpu.weight: the default */
#define BACKGROUND_PART   3            /* a warm sandbox starting has a third of it */
#define TEARDOWN_WAIT_MS  2000
#define EMPTY_WAIT_MS     1000         /* a freed sandbox's processes exiting */
#define EMPTY_POLL_MS     2
#define TREE_DEPTH        3            /* sesh-pool-<pid>/sessions/sb-<n> */

enum { CTL_MEMORY, CTL_CPU, CTL_PIDS, NCTL };
#define BIT(ctl) (1u << (ctl))

/* One hierarchy the pool uses: v2 has one, v1 one per mounted controller
 * (controllers mounted together share one). */
typedef struct {
    char *pool_dir;            /* <own>/sesh-pool-<pid> */
    char *groups;              /* where sandboxes' groups go: v1 pool_dir, v2 pool_dir/sessions */
    unsigned ctls;             /* our controllers in it */
} hierarchy;

struct sesh_cgroup {
    int n;                     /* one per hierarchy */
    char *dir[NCTL];
    int procs[NCTL];
    unsigned ctls[NCTL];
};

static struct {
    int version;               /* 0: no groups */
    hierarchy h[NCTL];
    int nh;
    const char *name[NCTL];    /* "memory" may be a test's stand-in */
    int real_memory;           /* name[CTL_MEMORY] is "memory": write its limits */
    char controllers[64];
    char *problem;
    char *home;                /* v2: the group the pool started in */
    unsigned home_enabled;     /* v2: controllers we enabled in home's subtree */
    pthread_mutex_t mu;        /* guards what follows */
    char **pending;            /* groups to remove once their last process is gone */
    size_t npending, cap;
    atomic_uint next;
} cgs = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* ---- small helpers ---- */

/* The whole file, NUL-terminated (malloc'd), or NULL with errno. */
static char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            char *bigger = cap < MAX_TEXT ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                buf = NULL;
                errno = EFBIG;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (n == 0) {
            buf[len] = 0;
            break;
        }
        len += (size_t)n;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return buf;
}

static char *read_in(const char *dir, const char *file)
{
    char *path = sesh_printf("%s/%s", dir, file);
    char *text = path ? read_text(path) : NULL;
    free(path);
    return text;
}

/* Writes text to dir/file in one write, as control files want; 0, or -1
 * with errno (the kernel refuses a value at the write). */
static int write_in(const char *dir, const char *file, const char *text)
{
    char *path = sesh_printf("%s/%s", dir, file);
    int fd = path ? open(path, O_WRONLY | O_CLOEXEC) : -1;
    free(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static int write_number(const char *dir, const char *file, unsigned long long v)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", v);
    return write_in(dir, file, text);
}

/* Is word one of the items of s[0..len), items separated by any of seps? */
static int has_word(const char *s, size_t len, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && s[j] && !strchr(seps, s[j]))
            j++;
        if (j - i == wl && memcmp(s + i, word, wl) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

static int text_has(const char *text, const char *word)
{
    return text && has_word(text, strlen(text), word, " \n");
}

static int is_denied(int err)
{
    return err == EACCES || err == EPERM || err == EROFS;
}

/* ---- where the pool's own groups are ---- */

/* The path of the group of controller (NULL: v2) in /proc/self/cgroup,
 * whose lines are "ID:CONTROLLERS:PATH" (v2: "0::PATH"). */
static int group_path(const char *text, const char *controller, char *out, size_t size)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *c1 = memchr(line, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            const char *ctls = c1 + 1;
            size_t nctls = (size_t)(c2 - ctls);
            int match = controller ? has_word(ctls, nctls, controller, ",")
                                   : nctls == 0 && c1 - line == 1 && line[0] == '0';
            if (match) {
                size_t plen = len - (size_t)(c2 + 1 - line);
                if (plen == 0 || plen >= size)
                    return -1;
                memcpy(out, c2 + 1, plen);
                out[plen] = 0;
                return 0;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return -1;
}

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* One line of mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
 * [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS". Is it the hierarchy of
 * controller (NULL: v2)? Then its root and mount point. */
static int mount_line(char *line, const char *controller, char *root, char *dir, size_t size)
{
    char *f[64];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 64;
         t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    int sep = 6;
    while (sep < n && strcmp(f[sep], "-") != 0)
        sep++;
    if (sep + 3 >= n)
        return -1;
    const char *fstype = f[sep + 1], *super = f[sep + 3];
    int match = controller ? strcmp(fstype, "cgroup") == 0 &&
                             has_word(super, strlen(super), controller, ",")
                           : strcmp(fstype, "cgroup2") == 0;
    if (!match)
        return -1;
    unescape(f[3]);
    unescape(f[4]);
    if (strlen(f[3]) >= size || strlen(f[4]) >= size)
        return -1;
    strcpy(root, f[3]);
    strcpy(dir, f[4]);
    return 0;
}

static int mount_of(const char *text, const char *controller, char *root, char *dir, size_t size)
{
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        int found = copy && mount_line(copy, controller, root, dir, size) == 0;
        free(copy);
        if (found)
            return 0;
        line = end ? end + 1 : NULL;
    }
    return -1;
}

/* A path with a ".." component lies outside what our cgroup namespace shows. */
static int climbs(const char *path)
{
    for (const char *p = path; (p = strstr(p, "/..")); p += 3)
        if (p[3] == '/' || p[3] == 0)
            return 1;
    return 0;
}

char *sesh_cgroup_own_dir(const char *self_cgroup, const char *mountinfo, const char *controller)
{
    char path[PATH_MAX], root[PATH_MAX], mnt[PATH_MAX];
    if (!self_cgroup || !mountinfo ||
        group_path(self_cgroup, controller, path, sizeof path) < 0 ||
        mount_of(mountinfo, controller, root, mnt, sizeof mnt) < 0)
        return NULL;
    if (path[0] != '/' || climbs(path))
        return NULL;
    const char *rest = path;
    if (strcmp(root, "/") != 0) {      /* a mount of part of the hierarchy */
        size_t rl = strlen(root);
        if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != 0))
            return NULL;
        rest = path + rl;
    }
    if (strcmp(rest, "/") == 0)
        rest = "";
    return sesh_printf("%s%s", strcmp(mnt, "/") == 0 && *rest ? "" : mnt, rest);
}

long long sesh_cgroup_count(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoll(p + kl + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* ---- groups left by pools that were killed ---- */

/* Does pid run (a zombie does not: a killed pool may wait to be reaped)?
 * Whatever runs under that pid keeps the group: it may be a pool of
 * another name (a test driving sandboxes). */
static int pid_running(long pid)
{
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    char *stat = read_text(path);
    const char *end = stat ? strrchr(stat, ')') : NULL;
    int zombie = end && (end[1] == ' ') && (end[2] == 'Z' || end[2] == 'X');
    free(stat);
    return !zombie;
}

/* Removes a group and the groups under it, deepest first; rmdir takes the
 * control files with it. */
static int remove_tree(const char *dir, int depth)
{
    DIR *d = depth > 0 ? opendir(dir) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 ||
                strcmp(e->d_name, "..") == 0)
                continue;
            char *sub = sesh_printf("%s/%s", dir, e->d_name);
            if (sub)
                remove_tree(sub, depth - 1);
            free(sub);
        }
        closedir(d);
    }
    return rmdir(dir);
}

/* sesh-pool-<pid> groups under parent whose pool no longer runs. A group
 * whose processes have not all exited yet stays for the next pool. */
static void remove_leftovers(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *e;
    size_t plen = strlen(POOL_PREFIX);
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || strncmp(e->d_name, POOL_PREFIX, plen) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid() || pid_running(pid))
            continue;
        char *dir = sesh_printf("%s/%s", parent, e->d_name);
        if (dir)
            remove_tree(dir, TREE_DEPTH);
        free(dir);
    }
    closedir(d);
}

/* ---- v2 ---- */

/* Turns controllers on for dir's children; the mask of those now on, and
 * in *added those that were off before. */
static unsigned enable(const char *dir, unsigned want, unsigned *added, int *memory_errno)
{
    char *had = read_in(dir, "cgroup.subtree_control");
    unsigned on = 0;
    *added = 0;
    for (int c = 0; c < NCTL; c++) {
        if (!(want & BIT(c)))
            continue;
        if (text_has(had, cgs.name[c])) {
            on |= BIT(c);
            continue;
        }
        char op[32];
        snprintf(op, sizeof op, "+%s", cgs.name[c]);
        if (write_in(dir, "cgroup.subtree_control", op) == 0) {
            on |= BIT(c);
            *added |= BIT(c);
        } else if (c == CTL_MEMORY) {
            *memory_errno = errno;
        }
    }
    free(had);
    return on;
}

static void disable(const char *dir, unsigned mask)
{
    for (int c = NCTL - 1; c >= 0; c--)
        if (mask & BIT(c)) {
            char op[32];
            snprintf(op, sizeof op, "-%s", cgs.name[c]);
            if (write_in(dir, "cgroup.subtree_control", op) < 0) {
                /* still used below: it stays, as does what depends on it */
            }
        }
}

/* Gives back what setup_v2 took: the groups it made, the controllers it
 * turned on, the pool's place in the group it started in. What cannot be
 * given back (another pool in the same group uses the controllers) stays
 * for the next pool's setup to remove. */
static void leave_v2(const char *base, unsigned ours)
{
    char *leaf = sesh_printf("%s/pool", base), *sessions = sesh_printf("%s/sessions", base);
    if (leaf && sessions) {
        rmdir(sessions);
        disable(base, ours);
        disable(cgs.home, cgs.home_enabled);
        if (write_number(cgs.home, "cgroup.procs", (unsigned long long)getpid()) == 0) {
            rmdir(leaf);
            rmdir(base);
        }
    }
    free(leaf);
    free(sessions);
}

static char *v2_refusal(int err, const char *step)
{
    const char *user = geteuid() == 0 ? "" : " --user";
    if (is_denied(err))
        return sesh_printf("the pool's cgroup (v2) is not delegated to its user (uid %u): start the "
                      "pool in one of its own that is, e.g. with `systemd-run%s --scope -p "
                      "Delegate=yes sesh-pool ...`", (unsigned)geteuid(), user);
    if (err == EBUSY)
        return sesh_printf("the pool's cgroup (v2) holds other processes, so it cannot hand the "
                      "memory controller down to sessions: start the pool in a cgroup of its "
                      "own, e.g. with `systemd-run%s --scope -p Delegate=yes sesh-pool ...`", user);
    return sesh_printf("cannot %s in the pool's cgroup (v2): %s", step, strerror(err));
}

/* Not applicable (-1, *reason NULL): no v2, or no memory controller in the
 * pool's group. Failed (-1, *reason): it is there but cannot be used. */
static int setup_v2(const char *self, const char *mountinfo, char **reason)
{
    char *home = sesh_cgroup_own_dir(self, mountinfo, NULL);
    char *have = home ? read_in(home, "cgroup.controllers") : NULL;
    if (!text_has(have, cgs.name[CTL_MEMORY])) {
        free(home);
        free(have);
        return -1;
    }
    unsigned want = BIT(CTL_MEMORY);
    for (int c = CTL_CPU; c < NCTL; c++)
        if (text_has(have, cgs.name[c]))
            want |= BIT(c);
    free(have);
    cgs.home = home;
    remove_leftovers(home);

    char *base = sesh_printf("%s/" POOL_PREFIX "%d", home, (int)getpid());
    char *leaf = sesh_printf("%s/pool", base), *sessions = sesh_printf("%s/sessions", base);
    const char *step = "make a group";
    int err = ENOMEM, made = 0, moved = 0;
    unsigned on = 0, also = 0;
    if (!base || !leaf || !sessions)
        goto fail;
    if (mkdir(base, 0755) < 0) {
        err = errno;
        goto fail;
    }
    made = 1;
    if (mkdir(leaf, 0755) < 0) {
        err = errno;
        goto fail;
    }
    /* No process may stay in a group that hands controllers down. */
    step = "move the pool into a group of its own";
    if (write_number(leaf, "cgroup.procs", (unsigned long long)getpid()) < 0) {
        err = errno;
        goto fail;
    }
    moved = 1;
    step = "hand the memory controller down";
    err = 0;
    on = enable(home, want, &cgs.home_enabled, &err);
    if (!(on & BIT(CTL_MEMORY)))
        goto fail;
    if (enable(base, on, &also, &err) != on || mkdir(sessions, 0755) < 0 ||
        enable(sessions, on, &also, &err) != on) {
        err = err ? err : errno;
        goto fail;
    }
    cgs.h[0] = (hierarchy){ .pool_dir = base, .groups = sessions, .ctls = on };
    cgs.nh = 1;
    cgs.version = 2;
    free(leaf);
    return 0;

fail:
    if (moved) {
        leave_v2(base, on);
    } else if (made) {
        rmdir(leaf);
        rmdir(base);
    }
    cgs.home_enabled = 0;
    *reason = v2_refusal(err ? err : EIO, step);
    free(base);
    free(leaf);
    free(sessions);
    return -1;
}

/* ---- v1 ---- */

static int setup_v1(const char *self, const char *mountinfo, char **reason)
{
    for (int c = 0; c < NCTL; c++) {
        char *own = sesh_cgroup_own_dir(self, mountinfo, cgs.name[c]);
        if (!own) {
            if (c == CTL_MEMORY)
                return -1;            /* no memory hierarchy: not applicable */
            continue;
        }
        char *dir = sesh_printf("%s/" POOL_PREFIX "%d", own, (int)getpid());
        int shared = 0;
        for (int i = 0; dir && i < cgs.nh; i++)
            if (strcmp(cgs.h[i].pool_dir, dir) == 0) {
                cgs.h[i].ctls |= BIT(c);      /* mounted with an earlier one */
                shared = 1;
            }
        if (!shared && dir) {
            remove_leftovers(own);
            if (mkdir(dir, 0755) == 0) {
                cgs.h[cgs.nh++] = (hierarchy){ .pool_dir = dir, .groups = dir, .ctls = BIT(c) };
                dir = NULL;
            } else if (c == CTL_MEMORY) {
                *reason = is_denied(errno)
                    ? sesh_printf("the memory cgroup (v1) is not writable by the pool's user (uid %u); "
                             "on cgroup v1 only root can bound sessions", (unsigned)geteuid())
                    : sesh_printf("cannot make a group in the memory cgroup (v1): %s", strerror(errno));
                free(dir);
                free(own);
                return -1;
            }
        }
        free(dir);
        free(own);
    }
    cgs.version = 1;
    return 0;
}

/* ---- setup and teardown ---- */

static void name_controllers(void)
{
    unsigned all = 0;
    for (int i = 0; i < cgs.nh; i++)
        all |= cgs.h[i].ctls;
    cgs.controllers[0] = 0;
    for (int c = 0; c < NCTL; c++)
        if (all & BIT(c)) {
            size_t len = strlen(cgs.controllers);
            snprintf(cgs.controllers + len, sizeof cgs.controllers - len, "%s%s",
                     len ? " " : "", cgs.name[c]);
        }
}

static void forget_hierarchies(void)
{
    for (int i = 0; i < cgs.nh; i++) {
        if (cgs.h[i].groups != cgs.h[i].pool_dir)
            free(cgs.h[i].groups);
        free(cgs.h[i].pool_dir);
    }
    memset(cgs.h, 0, sizeof cgs.h);
    cgs.nh = 0;
}

int sesh_cgroup_setup_from(const char *self_cgroup, const char *mountinfo, int version,
                           const char *memory, char **why)
{
    *why = NULL;
    char *self_text = self_cgroup ? NULL : read_text("/proc/self/cgroup");
    char *mount_text = mountinfo ? NULL : read_text("/proc/self/mountinfo");
    const char *self = self_cgroup ? self_cgroup : self_text;
    const char *mounts = mountinfo ? mountinfo : mount_text;
    cgs.name[CTL_MEMORY] = memory ? memory : "memory";
    cgs.name[CTL_CPU] = "cpu";
    cgs.name[CTL_PIDS] = "pids";
    cgs.real_memory = strcmp(cgs.name[CTL_MEMORY], "memory") == 0;
    free(cgs.problem);
    cgs.problem = NULL;

    char *v2_reason = NULL, *v1_reason = NULL;
    int rc = -1;
    if (version != 1)
        rc = setup_v2(self, mounts, &v2_reason);
    if (rc != 0 && version != 2) {
        forget_hierarchies();
        rc = setup_v1(self, mounts, &v1_reason);
        if (rc != 0) {
            for (int i = 0; i < cgs.nh; i++)
                rmdir(cgs.h[i].pool_dir);
            forget_hierarchies();
        }
    }
    free(self_text);
    free(mount_text);
    if (cgs.version != 2) {
        free(cgs.home);       /* v2's, tried and given back */
        cgs.home = NULL;
    }
    if (rc == 0) {
        free(v2_reason);
        free(v1_reason);
        name_controllers();
        return 0;
    }
    /* v2's reason first: a host that has it is where a user can fix it. */
    cgs.problem = v2_reason ? v2_reason : v1_reason ? v1_reason :
        strdup("no cgroup hierarchy with the memory controller is mounted");
    if (v2_reason)
        free(v1_reason);
    *why = cgs.problem ? strdup(cgs.problem) : NULL;
    return -1;
}

int sesh_cgroup_setup(char **why)
{
    return sesh_cgroup_setup_from(NULL, NULL, 0, NULL, why);
}

static void sweep_locked(void)
{
    size_t keep = 0;
    for (size_t i = 0; i < cgs.npending; i++) {
        if (rmdir(cgs.pending[i]) < 0 && errno == EBUSY)
            cgs.pending[keep++] = cgs.pending[i];
        else
            free(cgs.pending[i]);
    }
    cgs.npending = keep;
}

static void sweep(void)
{
    pthread_mutex_lock(&cgs.mu);
    sweep_locked();
    pthread_mutex_unlock(&cgs.mu);
}

void sesh_cgroup_teardown(void)
{
    pthread_mutex_lock(&cgs.mu);
    for (int waited = 0; cgs.npending && waited < TEARDOWN_WAIT_MS; waited += 10) {
        sweep_locked();
        if (cgs.npending)
            usleep(10 * 1000);
    }
    for (size_t i = 0; i < cgs.npending; i++)
        free(cgs.pending[i]);
    free(cgs.pending);
    cgs.pending = NULL;
    cgs.npending = cgs.cap = 0;
    pthread_mutex_unlock(&cgs.mu);
    if (cgs.version == 2)
        leave_v2(cgs.h[0].pool_dir, cgs.h[0].ctls);
    else
        for (int i = 0; i < cgs.nh; i++)
            rmdir(cgs.h[i].pool_dir);
    forget_hierarchies();
    cgs.version = 0;
    cgs.home_enabled = 0;
    cgs.controllers[0] = 0;
    free(cgs.home);
    free(cgs.problem);
    cgs.home = cgs.problem = NULL;
}

const char *sesh_cgroup_version(void)
{
    return cgs.version == 2 ? "v2" : cgs.version == 1 ? "v1" : NULL;
}

const char *sesh_cgroup_controllers(void)
{
    return cgs.controllers;
}

const char *sesh_cgroup_problem(void)
{
    return cgs.version ? NULL : cgs.problem;
}

/* ---- what the host can give ---- */

static size_t mem_total(void)
{
    char *text = read_text("/proc/meminfo");
    const char *line = text ? strstr(text, "MemTotal:") : NULL;
    unsigned long long kb = line ? strtoull(line + 9, NULL, 10) : 0;
    free(text);
    return kb > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)(kb * 1024);
}

/* A v2 group's memory.max, and its parents' up to the mount. */
static size_t v2_limit(const char *self, const char *mounts)
{
    char root[PATH_MAX], mnt[PATH_MAX];
    char *dir = sesh_cgroup_own_dir(self, mounts, NULL);
    size_t lowest = SIZE_MAX;
    if (!dir || mount_of(mounts, NULL, root, mnt, sizeof mnt) < 0) {
        free(dir);
        return lowest;
    }
    for (size_t stop = strlen(mnt); strlen(dir) > stop;) {
        char *max = read_in(dir, "memory.max");
        if (max && max[0] >= '0' && max[0] <= '9') {
            unsigned long long v = strtoull(max, NULL, 10);
            if (v < lowest)
                lowest = (size_t)v;
        }
        free(max);
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = 0;
    }
    free(dir);
    return lowest;
}

/* v1 keeps the lowest limit of a group and its parents in memory.stat. */
static size_t v1_limit(const char *self, const char *mounts)
{
    char *dir = sesh_cgroup_own_dir(self, mounts, "memory");
    char *stat = dir ? read_in(dir, "memory.stat") : NULL;
    long long v = sesh_cgroup_count(stat, "hierarchical_memory_limit");
    free(stat);
    free(dir);
    return v > 0 && (unsigned long long)v < SIZE_MAX ? (size_t)v : SIZE_MAX;
}

size_t sesh_cgroup_host_memory(void)
{
    char *self = read_text("/proc/self/cgroup"), *mounts = read_text("/proc/self/mountinfo");
    size_t total = mem_total(), limit = SIZE_MAX;
    if (self && mounts) {
        size_t a = v2_limit(self, mounts), b = v1_limit(self, mounts);
        limit = a < b ? a : b;
    }
    free(self);
    free(mounts);
    if (!total)
        return limit == SIZE_MAX ? 0 : limit;
    return limit < total ? limit : total;
}

/* ---- one sandbox's group ---- */

static unsigned cpu_weight(int background)
{
    unsigned full = cgs.version == 2 ? V2_WEIGHT : V1_SHARES;
    return background ? full / BACKGROUND_PART : full;
}

static int set_cpu_weight(const char *dir, int background)
{
    return write_number(dir, cgs.version == 2 ? "cpu.weight" : "cpu.shares",
                        cpu_weight(background));
}

/* The limits of one hierarchy's controllers; NULL, or the file refused. */
static const char *set_limits(const char *dir, unsigned ctls, const sesh_cgroup_limits *l)
{
    if ((ctls & BIT(CTL_MEMORY)) && cgs.real_memory) {
        const char *file = cgs.version == 2 ? "memory.max" : "memory.limit_in_bytes";
        if (write_number(dir, file, l->memory) < 0)
            return file;
        /* Nothing swapped out either, where swap is accounted (absent
         * without swap accounting: then swap is not the group's to use). */
        if (cgs.version == 2)
            write_in(dir, "memory.swap.max", "0");
        else if (write_number(dir, "memory.memsw.limit_in_bytes", l->memory) < 0)
            write_in(dir, "memory.swappiness", "0");
    }
    if ((ctls & BIT(CTL_CPU)) && set_cpu_weight(dir, l->background) < 0)
        return cgs.version == 2 ? "cpu.weight" : "cpu.shares";
    if ((ctls & BIT(CTL_PIDS)) && l->tasks > 0 &&
        write_number(dir, "pids.max", (unsigned long long)l->tasks) < 0)
        return "pids.max";
    return NULL;
}

static void defer_removal(char *dir)
{
    pthread_mutex_lock(&cgs.mu);
    if (cgs.npending == cgs.cap) {
        size_t cap = cgs.cap ? cgs.cap * 2 : 16;
        char **bigger = realloc(cgs.pending, cap * sizeof *bigger);
        if (bigger) {
            cgs.pending = bigger;
            cgs.cap = cap;
        }
    }
    if (cgs.npending < cgs.cap)
        cgs.pending[cgs.npending++] = dir;
    else
        free(dir);           /* the next pool's setup removes it */
    pthread_mutex_unlock(&cgs.mu);
}

/* A sandbox is freed once killed and reaped, but the processes of its pid
 * namespace may take a moment to exit (freeing a large memory): waits for
 * that, at most ms, so the group can go now. 1 when it is empty. */
static int wait_empty(const char *dir, int ms)
{
    for (int waited = 0;; waited += EMPTY_POLL_MS) {
        char *procs = read_in(dir, "cgroup.procs");
        int empty = procs && !*procs;
        free(procs);
        if (empty || !procs || waited >= ms)
            return empty;
        usleep(EMPTY_POLL_MS * 1000);
    }
}

void sesh_cgroup_free(sesh_cgroup *cg)
{
    if (!cg)
        return;
    for (int i = 0; i < cg->n; i++) {
        if (cg->procs[i] >= 0)
            close(cg->procs[i]);
        if (i == 0)
            wait_empty(cg->dir[i], EMPTY_WAIT_MS);   /* one hierarchy says for all */
        if (cg->dir[i] && rmdir(cg->dir[i]) < 0 && errno == EBUSY)
            defer_removal(cg->dir[i]);       /* processes still exiting */
        else
            free(cg->dir[i]);
    }
    free(cg);
    sweep();
}

sesh_cgroup *sesh_cgroup_new(const sesh_cgroup_limits *limits, char **err)
{
    *err = NULL;
    if (!cgs.version)
        return NULL;
    sweep();
    sesh_cgroup *cg = calloc(1, sizeof *cg);
    if (!cg) {
        *err = strdup("out of memory");
        return NULL;
    }
    unsigned id = atomic_fetch_add(&cgs.next, 1);
    for (int i = 0; i < cgs.nh; i++) {
        char *dir = sesh_printf("%s/sb-%u", cgs.h[i].groups, id);
        if (!dir || mkdir(dir, 0755) < 0) {
            *err = sesh_printf("cannot make the session's cgroup: %s", strerror(dir ? errno : ENOMEM));
            free(dir);
            break;
        }
        cg->dir[cg->n] = dir;
        cg->ctls[cg->n] = cgs.h[i].ctls;
        cg->procs[cg->n] = -1;
        cg->n++;
        const char *refused = set_limits(dir, cgs.h[i].ctls, limits);
        if (refused) {
            *err = sesh_printf("cannot set the session's %s: %s", refused, strerror(errno));
            break;
        }
        char *procs = sesh_printf("%s/cgroup.procs", dir);
        cg->procs[cg->n - 1] = procs ? open(procs, O_WRONLY | O_CLOEXEC) : -1;
        free(procs);
        if (cg->procs[cg->n - 1] < 0) {
            *err = sesh_printf("cannot open the session's cgroup.procs: %s", strerror(errno));
            break;
        }
    }
    if (*err) {
        sesh_cgroup_free(cg);
        return NULL;
    }
    return cg;
}

int sesh_cgroup_procs(const sesh_cgroup *cg, int *fds, int max)
{
    int n = 0;
    for (int i = 0; cg && i < cg->n && n < max; i++)
        fds[n++] = cg->procs[i];
    return n;
}

/* ---- a grace period ahead of a move ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, wanted;
    char *procs;               /* the pool's own group's cgroup.procs */
} ahead = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *move_ahead(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&ahead.mu);
    for (;;) {
        while (!ahead.wanted)
            pthread_cond_wait(&ahead.cv, &ahead.mu);
        ahead.wanted = 0;
        char *procs = ahead.procs ? strdup(ahead.procs) : NULL;
        pthread_mutex_unlock(&ahead.mu);
        int fd = procs ? open(procs, O_WRONLY | O_CLOEXEC) : -1;
        if (fd >= 0 && write(fd, "0", 1) < 0) { /* a move not warmed: slower, as right */ }
        if (fd >= 0)
            close(fd);
        free(procs);
        pthread_mutex_lock(&ahead.mu);
    }
    return NULL;
}

void sesh_cgroup_prepare_move(void)
{
    if (!cgs.version)
        return;
    /* v2: the pool's leaf; v1: the group it stayed in, above its own */
    char *procs = cgs.version == 2 ? sesh_printf("%s/pool/cgroup.procs", cgs.h[0].pool_dir)
                                   : sesh_printf("%s/../cgroup.procs", cgs.h[0].pool_dir);
    pthread_mutex_lock(&ahead.mu);
    free(ahead.procs);
    ahead.procs = procs;
    if (!ahead.started)
        ahead.started = sesh_thread_start(move_ahead, NULL) == 0;
    ahead.wanted = 1;
    pthread_cond_signal(&ahead.cv);
    pthread_mutex_unlock(&ahead.mu);
}

long long sesh_cgroup_oom_kills(const sesh_cgroup *cg)
{
    for (int i = 0; cg && i < cg->n; i++)
        if (cg->ctls[i] & BIT(CTL_MEMORY)) {
            /* v1 counts oom_kill in memory.oom_control since Linux 4.13 */
            char *text = read_in(cg->dir[i], cgs.version == 2 ? "memory.events"
                                                              : "memory.oom_control");
            long long n = sesh_cgroup_count(text, "oom_kill");
            free(text);
            return n;
        }
    return -1;
}

void sesh_cgroup_foreground(sesh_cgroup *cg)
{
    for (int i = 0; cg && i < cg->n; i++)
        if ((cg->ctls[i] & BIT(CTL_CPU)) && set_cpu_weight(cg->dir[i], 0) < 0) {
            /* it keeps the background weight: slower, as safe */
        }
}
