/*
 * sandbox_disk.h — the tree of a session's data directory, walked from the
 * host: measured (for the disk limit) and handed to the sandbox's uid.
 * Internal to sandbox.c. The walks follow no symlink and stay below the
 * directory whatever the sandbox does to it meanwhile.
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

#endif
