/*
 * sandbox_disk.c — walks of a session's data directory (see sandbox_disk.h).
 */
#include "pool/sandbox_disk.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Calls visit(dirfd, name, st, arg) for each entry under dirfd, depth first;
 * a directory is entered after it was visited. */
typedef void visit_fn(int dirfd, const char *name, const struct stat *st, void *arg);

/* What getdents64 fills its buffer with (the kernel's, not glibc's, layout). */
struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

#define DIR_BUFFER 16384

/* getdents64 straight on a descriptor of our own: fdopendir would spend three
 * more system calls per directory, and this walk closes every execution. */
static void walk(int dirfd, int depth, long *entries, int *too_deep, visit_fn *visit, void *arg)
{
    if (depth > SESH_DISK_MAX_DEPTH) {
        *too_deep = 1;
        return;
    }
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *buf = fd >= 0 ? malloc(DIR_BUFFER) : NULL;
    long n;
    while (buf && (n = syscall(SYS_getdents64, fd, buf, DIR_BUFFER)) > 0) {
        for (long off = 0; off < n && *entries <= SESH_DISK_MAX_ENTRIES;) {
            const struct dirent64_raw *e = (const void *)(buf + off);
            off += e->d_reclen;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            struct stat st;
            if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            ++*entries;
            visit(dirfd, e->d_name, &st, arg);
            if (!S_ISDIR(st.st_mode))
                continue;
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                walk(sub, depth + 1, entries, too_deep, visit, arg);
                close(sub);
            }
        }
        if (*entries > SESH_DISK_MAX_ENTRIES)
            break;
    }
    free(buf);
    if (fd >= 0)
        close(fd);
}

static void add_blocks(int dirfd, const char *name, const struct stat *st, void *arg)
{
    sesh_disk_usage *u = arg;
    u->bytes += (unsigned long long)st->st_blocks * 512;
}

void sesh_disk_measure(int dirfd, sesh_disk_usage *u)
{
    u->bytes = 0;
    u->entries = 0;
    u->too_deep = 0;
    walk(dirfd, 0, &u->entries, &u->too_deep, add_blocks, u);
}

static void give(int dirfd, const char *name, const struct stat *st, void *arg)
{
    uid_t uid = *(const uid_t *)arg;
    if ((st->st_uid != uid || st->st_gid != (gid_t)uid) &&
        fchownat(dirfd, name, uid, (gid_t)uid, AT_SYMLINK_NOFOLLOW) < 0) {
        /* left as it was: the code can read it, maybe not change it */
    }
}

void sesh_disk_give(int dirfd, uid_t uid)
{
    long entries = 0;
    int too_deep = 0;
    walk(dirfd, 0, &entries, &too_deep, give, &uid);
}

unsigned long long sesh_disk_available(int fd)
{
    struct statvfs v;
    if (fstatvfs(fd, &v) != 0)
        return ULLONG_MAX;
    return (unsigned long long)v.f_bavail * v.f_frsize;
}
