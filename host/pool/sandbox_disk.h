/*
 * sandbox_disk.h — the tree of a session's data directory, walked from the
 * host: measured (for the disk limit) and handed to the sandbox's uid; and
 * the room left on the file system that holds it. Used by sandbox.c and by
 * the uploads' accounting (quota.c). The walks follow no symlink and stay
 * below the directory whatever the sandbox does to it meanwhile.
 */
#ifndef SESH_SANDBOX_DISK_H
#define SESH_SANDBOX_DISK_H

#include <sys/types.h>

#define SESH_DISK_MAX_ENTRIES 100000   /* a walk looks at no more entries */
#define SESH_DISK_MAX_DEPTH   64       /* nor deeper */

typedef struct sesh_disk_usage {
    unsigned long long bytes;  /* blocks in use, in bytes (sparse files count as stored) */
    long entries;
    int too_deep;              /* a directory nested deeper than SESH_DISK_MAX_DEPTH */
} sesh_disk_usage;

void sesh_disk_measure(int dirfd, sesh_disk_usage *u);

/* Gives everything under dirfd (not dirfd itself) to uid:uid. */
void sesh_disk_give(int dirfd, uid_t uid);

/* Bytes an unprivileged writer may still add to the file system holding fd
 * (statvfs's f_bavail: the blocks reserved to root are not counted, so a
 * root pool keeps them for the host too); ULLONG_MAX when it cannot tell. */
unsigned long long sesh_disk_available(int fd);

#endif
