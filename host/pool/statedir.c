/*
 * statedir.c — see statedir.h.
 */
#include "pool/statedir.h"
#include "pool/files.h"
#include "pool/log.h"
#include "pool/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SWEEP_LOCK "pools.lock"

static int lock_now(int fd)
{
    return flock(fd, LOCK_EX | LOCK_NB) == 0;
}

static int lock_wait(int fd)
{
    int rc;
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
    return rc == 0;
}

/* Opens STATE (made 0700 when missing) and checks it is the user's own and
 * closed to others. follow: an explicit --state-dir may be a link to a
 * directory; the default, in a shared /tmp, may not. */
static int open_state(const char *dir, int follow, char **why)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *why = sesh_printf("cannot create the state directory %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        *why = sesh_printf("the state directory %s is not a directory%s", dir,
                           follow ? "" : " (a symbolic link is not taken there)");
        if (fd >= 0) close(fd);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0077)) {
        *why = sesh_printf("the state directory %s must belong to this user and be closed to "
                           "others (chmod 700)", dir);
        close(fd);
        return -1;
    }
    return fd;
}

/* Removes every pool-* folder whose pool is gone: its lock is free. */
static void sweep(int dfd, const char *dir)
{
    int list = dup(dfd);
    DIR *d = list >= 0 ? fdopendir(list) : NULL;
    if (!d) {
        if (list >= 0) close(list);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "pool-", 5) != 0) continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        if (lock_now(fd)) {
            if (sesh_files_remove_tree(dfd, e->d_name) == 0)
                sesh_log("removed %s/%s, left by a pool that is gone", dir, e->d_name);
            else
                sesh_log("could not remove all of %s/%s, left by a pool that is gone", dir, e->d_name);
        }
        close(fd);
    }
    closedir(d);
}

/* pool-<pid> (or, should a live pool of another pid namespace hold that
 * name, pool-<pid>-<hex>), made and locked. Its name, or NULL with *why. */
static char *make_own(int dfd, const char *dir, int *lock_fd, char **why)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        char hex[17] = "";
        if (attempt) sesh_random_hex(hex, 4);
        char *name = sesh_printf("pool-%d%s%s", (int)getpid(), attempt ? "-" : "", hex);
        if (mkdirat(dfd, name, 0700) != 0) {
            int e = errno;
            free(name);
            if (e == EEXIST) continue;
            *why = sesh_printf("cannot create a folder in %s: %s", dir, strerror(e));
            return NULL;
        }
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || !lock_now(fd)) {
            *why = sesh_printf("cannot lock %s/%s: %s", dir, name, strerror(errno));
            if (fd >= 0) close(fd);
            free(name);
            return NULL;
        }
        *lock_fd = fd;
        return name;
    }
    *why = sesh_printf("cannot find a free folder name in %s", dir);
    return NULL;
}

static int open_in(const char *state, int follow, sesh_statedir *sd, char **err)
{
    int dfd = open_state(state, follow, err);
    if (dfd < 0) return -1;
    int lfd = openat(dfd, SWEEP_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0 || !lock_wait(lfd)) {
        *err = sesh_printf("cannot lock %s/%s: %s", state, SWEEP_LOCK, strerror(errno));
        if (lfd >= 0) close(lfd);
        close(dfd);
        return -1;
    }
    sweep(dfd, state);
    char *name = make_own(dfd, state, &sd->lock_fd, err);
    close(lfd);                         /* the sweep lock; our own stays */
    close(dfd);
    if (!name) return -1;
    sd->dir = sesh_printf("%s/%s", state, name);
    free(name);
    return 0;
}

int sesh_statedir_open(const char *state_dir, sesh_statedir *sd, char **err)
{
    sd->dir = NULL;
    sd->lock_fd = -1;
    *err = NULL;
    if (state_dir) return open_in(state_dir, 1, sd, err);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    char *state = sesh_printf("%s/sesh-pool-%d", tmp, (int)geteuid());
    int rc = open_in(state, 0, sd, err);
    if (rc != 0) {
        /* Another user made it first: a fresh folder, which nobody sweeps. */
        char *templ = sesh_printf("%s/sesh-pool.XXXXXX", tmp);
        if (mkdtemp(templ)) {
            sesh_log("the default state directory is not usable (%s): this pool works in %s, which "
                     "stays if the pool is killed", *err, templ);
            free(*err);
            *err = NULL;
            sd->dir = templ;
            rc = 0;
        } else {
            free(*err);
            *err = sesh_printf("cannot create a directory in %s: %s", tmp, strerror(errno));
            free(templ);
        }
    }
    free(state);
    return rc;
}

void sesh_statedir_close(sesh_statedir *sd, int remove)
{
    if (sd->dir && remove) {
        char *copy = sesh_xstrdup(sd->dir);
        char *slash = strrchr(copy, '/');
        *slash = '\0';
        int dfd = open(*copy ? copy : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (sesh_files_remove_tree(dfd, slash + 1) != 0)
                sesh_log("could not remove all of %s", sd->dir);
            close(dfd);
        }
        free(copy);
    }
    if (sd->lock_fd >= 0) close(sd->lock_fd);
    free(sd->dir);
    sd->dir = NULL;
    sd->lock_fd = -1;
}
