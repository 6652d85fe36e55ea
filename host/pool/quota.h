/*
 * quota.h — a session's disk limit (--max-disk) as uploads meet it: what
 * its /mnt/data holds, plus every upload of the session in flight, may not
 * go past the limit, checked before an upload writes and as it writes.
 * (While code runs, sandbox.c's disk watch enforces the same limit.)
 *
 * What the directory holds comes from a walk (sandbox_disk.h), which costs
 * time in a directory of many files, so a measure is kept: the pool's own
 * changes (an upload stored, a file deleted) are added to it as they
 * happen; the session's code changes the directory behind the pool's back,
 * so after each execution the next upload walks again, and any measure is
 * trusted for a second at most (longer when walks are slow, so walking
 * takes at most a twentieth of the time), since processes a cell left
 * running may still write. The temporary files of uploads in flight are in
 * the directory too: a walk's figure is taken net of the bytes in flight.
 *
 * Thread-safe: one mutex per session; the walk runs under it, so uploads
 * that arrive together share one walk.
 */
#ifndef SESH_POOL_QUOTA_H
#define SESH_POOL_QUOTA_H

#include <pthread.h>
#include <stdint.h>

typedef struct sesh_quota {
    pthread_mutex_t mu;
    uint64_t limit;             /* bytes: --max-disk */
    uint64_t held;              /* what the directory holds, uploads in flight aside */
    uint64_t in_flight;         /* bytes uploads wrote (or are about to) and did not store yet */
    uint64_t measured_ms;       /* when held was walked; 0: never, or stale */
    uint64_t trust_ms;          /* how long a walk is trusted */
    int too_many;               /* the last walk gave up: too many files, or too deep */
} sesh_quota;

typedef enum {
    SESH_QUOTA_OK = 0,
    SESH_QUOTA_OVER,            /* the bytes do not fit under the limit */
    SESH_QUOTA_UNKNOWN          /* /mnt/data holds too many files to be measured */
} sesh_quota_status;

/* The figures a refusal is explained with. */
typedef struct sesh_quota_view {
    uint64_t limit, held, in_flight;
} sesh_quota_view;

void sesh_quota_init(sesh_quota *q, uint64_t limit);
void sesh_quota_destroy(sesh_quota *q);

/* Would n more bytes fit (dirfd: the session's /mnt/data)? Takes nothing. */
sesh_quota_status sesh_quota_check(sesh_quota *q, int dirfd, uint64_t n, sesh_quota_view *v);

/* Takes n more bytes for an upload in flight, when they fit; v (may be
 * NULL) is filled either way. */
sesh_quota_status sesh_quota_take(sesh_quota *q, int dirfd, uint64_t n, sesh_quota_view *v);

/* An upload that took `taken` bytes ended: dropped (stored 0), or stored
 * as a file of `stored` bytes of blocks, replacing one of `replaced`. */
void sesh_quota_done(sesh_quota *q, uint64_t taken, uint64_t stored, uint64_t replaced);

/* The pool removed a file of that many bytes of blocks. */
void sesh_quota_freed(sesh_quota *q, uint64_t bytes);

/* The session's code ran: the next check walks the directory again. */
void sesh_quota_changed(sesh_quota *q);

#endif
