/*
 * datadir.c — see datadir.h.
 */
#include "pool/datadir.h"
#include "pool/files.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOWER "lower"          /* the empty lower layer, in the work directory */

static int overlay_on;         /* set by setup, read-only after */
static int lower_fd = -1;
static int in_userns;          /* a pool that is not root: its overlays need userxattr */

/* ---- the pool's mount namespace ---- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Enters a mount namespace of the process's own, into which the host's
 * mounts still propagate (slave) and from which none leaks out. 0, or -1
 * with errno and *what. */
static int enter_namespace(const char **what)
{
    if (geteuid() != 0) {
        uid_t uid = geteuid();
        gid_t gid = getegid();
        char map[64];
        *what = "unshare a user namespace";
        if (getuid() != uid) {              /* set-uid: one of the two would be unmapped */
            errno = EPERM;
            return -1;
        }
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return -1;
        *what = "map the pool's uid and gid in its user namespace";
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
        if (write_file("/proc/self/uid_map", map) != 0) return -1;
        if (write_file("/proc/self/setgroups", "deny") != 0) return -1;
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
        if (write_file("/proc/self/gid_map", map) != 0) return -1;
        in_userns = 1;
    } else {
        *what = "unshare a mount namespace";
        if (unshare(CLONE_NEWNS) != 0) return -1;
    }
    *what = "make the pool's mounts its own";
    /* Source and type are ignored here; "none" rather than NULL keeps valgrind quiet. */
    return mount("none", "/", "none", MS_REC | MS_SLAVE, NULL);
}

/* ---- one directory ---- */

/* Mounts the overlay of session directory `name` ("s-<hex>", its upper
 * layer) on top of it, with `work` ("w-<hex>") as its work directory.
 * 0, or -1 with errno. */
static int mount_overlay(int work_fd, const char *name, const char *work)
{
    int upper = openat(work_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int wfd = openat(work_fd, work, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = -1;
    if (upper >= 0 && wfd >= 0) {
        char opts[160], target[32];
        snprintf(opts, sizeof opts, "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,"
                 "workdir=/proc/self/fd/%d%s", lower_fd, upper, wfd, in_userns ? ",userxattr" : "");
        snprintf(target, sizeof target, "/proc/self/fd/%d", upper);
        rc = mount("overlay", target, "overlay", MS_NOSUID | MS_NODEV, opts);
    }
    int e = errno;
    if (upper >= 0) close(upper);
    if (wfd >= 0) close(wfd);
    errno = e;
    return rc;
}

static void unmount(int work_fd, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d/%s", work_fd, name);
    if (umount2(path, MNT_DETACH) != 0) { /* not mounted: nothing to undo */ }
}

/* Creates and opens one session directory (its overlay on it when on). */
static int make_at(int work_fd, const char *name, const char *work, int *fd, const char **what)
{
    *what = "create";
    if (mkdirat(work_fd, name, 0700) != 0) return -1;
    if (overlay_on) {
        *what = "create the overlay work directory of";
        if (mkdirat(work_fd, work, 0700) != 0) return -1;
        *what = "mount an overlay on";
        if (mount_overlay(work_fd, name, work) != 0) return -1;
    }
    *what = "open";
    *fd = openat(work_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return *fd < 0 ? -1 : 0;
}

int sesh_datadir_make(int work_fd, char **name_out, int *fd_out, char **err)
{
    char hex[17];
    sesh_random_hex(hex, 8);
    char *name = sesh_printf("s-%s", hex), *work = sesh_printf("w-%s", hex);
    const char *what;
    int fd = -1;
    int rc = make_at(work_fd, name, work, &fd, &what);
    free(work);
    if (rc == 0) {
        *name_out = name;
        *fd_out = fd;
        return 0;
    }
    if (err) *err = sesh_printf("cannot %s a session directory: %s", what, strerror(errno));
    sesh_datadir_drop(work_fd, name, -1);
    free(name);
    return -1;
}

int sesh_datadir_drop(int work_fd, const char *name, int fd)
{
    if (fd >= 0) close(fd);
    if (!name) return 0;
    int rc = 0;
    if (overlay_on) {
        unmount(work_fd, name);
        char *work = sesh_printf("w%s", name + 1);
        rc = sesh_files_remove_tree(work_fd, work);
        free(work);
    }
    return sesh_files_remove_tree(work_fd, name) == 0 ? rc : -1;
}

/* ---- setup ---- */

/* Opens what the overlays need, once in the pool's namespace: a descriptor
 * opened before names the old namespace's mounts, which overlayfs refuses
 * for its layers ("failed to clone upperpath"). */
static int open_lower(const char *work_dir, int *work_fd)
{
    *work_fd = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*work_fd < 0) return -1;
    lower_fd = openat(*work_fd, LOWER, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return lower_fd < 0 ? -1 : 0;
}

/* The same steps as for real, in a child: a namespace, then one session
 * directory. NULL when they worked, else what failed (malloc'd). */
static char *probe(const char *work_dir)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return sesh_printf("cannot make a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        char msg[256] = "";
        const char *what = NULL;
        char *name = NULL, *err = NULL;
        int fd, work_fd;
        if (enter_namespace(&what) != 0) {
            snprintf(msg, sizeof msg, "cannot %s: %s", what, strerror(errno));
        } else if (open_lower(work_dir, &work_fd) != 0) {
            snprintf(msg, sizeof msg, "cannot open %s: %s", work_dir, strerror(errno));
        } else {
            overlay_on = 1;
            if (sesh_datadir_make(work_fd, &name, &fd, &err) != 0)
                snprintf(msg, sizeof msg, "%s", err);
            else
                sesh_datadir_drop(work_fd, name, fd);
        }
        _exit(write(pipefd[1], msg, strlen(msg)) < 0);
    }
    close(pipefd[1]);
    char msg[256];
    ssize_t n = pid < 0 ? -1 : read(pipefd[0], msg, sizeof msg - 1);
    int e = errno;
    close(pipefd[0]);
    if (pid < 0) return sesh_printf("cannot fork: %s", strerror(e));
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (n < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sesh_xstrdup("the trial in a child process failed");
    msg[n] = '\0';
    return n > 0 ? sesh_xstrdup(msg) : NULL;
}

static char *bound_as_they_are(const char *why)
{
    return sesh_printf("session directories are bound as they are (%s): code in a session "
                       "can read their host path in /proc/self/mountinfo", why);
}

char *sesh_datadir_setup(const char *work_dir)
{
    char *lower = sesh_printf("%s/" LOWER, work_dir);
    char *why = NULL;
    if (mkdir(lower, 0755) != 0 || chmod(lower, 0555) != 0)
        why = sesh_printf("cannot make the overlays' lower layer: %s", strerror(errno));
    free(lower);
    if (!why)
        why = probe(work_dir);
    /* The child did the same: what fails now fails for a reason it could
     * not meet, and a half-entered namespace cannot be left. */
    const char *what = NULL;
    int work_fd = -1;
    if (!why && enter_namespace(&what) != 0)
        why = sesh_printf("cannot %s: %s", what, strerror(errno));
    if (!why && open_lower(work_dir, &work_fd) != 0)
        why = sesh_printf("cannot open %s: %s", work_dir, strerror(errno));
    if (work_fd >= 0) close(work_fd);
    if (why) {
        char *note = bound_as_they_are(why);
        free(why);
        return note;
    }
    overlay_on = 1;
    return sesh_printf("session directories are shown to sandboxes through overlay mounts%s",
                       in_userns ? ", in a user namespace of the pool's own" : "");
}
