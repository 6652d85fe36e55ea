/*
 * quota.c — see quota.h.
 */
#include "pool/quota.h"
#include "pool/sandbox_disk.h"
#include "pool/util.h"

#include <string.h>

#define TRUST_MIN_MS   1000     /* a walk is trusted this long at least, */
#define TRUST_MAX_MS   10000    /* and at most this long, */
#define WALK_SHARE     20       /* walking 1/20 of the time at most */

void sesh_quota_init(sesh_quota *q, uint64_t limit)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    q->limit = limit;
}

void sesh_quota_destroy(sesh_quota *q)
{
    pthread_mutex_destroy(&q->mu);
}

/* Walks the directory when the last measure is stale; under q->mu. */
static void refresh(sesh_quota *q, int dirfd)
{
    uint64_t now = sesh_now_ms();
    if (q->measured_ms && now - q->measured_ms < q->trust_ms)
        return;
    sesh_disk_usage u;
    sesh_disk_measure(dirfd, &u);
    uint64_t took = sesh_now_ms() - now;
    /* The temporary files of uploads in flight were walked too. */
    q->held = u.bytes > q->in_flight ? u.bytes - q->in_flight : 0;
    q->too_many = u.too_deep || u.entries > SESH_DISK_MAX_ENTRIES;
    q->measured_ms = sesh_now_ms();
    q->trust_ms = took * WALK_SHARE;
    if (q->trust_ms < TRUST_MIN_MS) q->trust_ms = TRUST_MIN_MS;
    if (q->trust_ms > TRUST_MAX_MS) q->trust_ms = TRUST_MAX_MS;
}

static sesh_quota_status fits(sesh_quota *q, int dirfd, uint64_t n, sesh_quota_view *v)
{
    refresh(q, dirfd);
    if (v) *v = (sesh_quota_view){ .limit = q->limit, .held = q->held, .in_flight = q->in_flight };
    if (q->too_many) return SESH_QUOTA_UNKNOWN;
    uint64_t used = q->held + q->in_flight;
    return used <= q->limit && n <= q->limit - used ? SESH_QUOTA_OK : SESH_QUOTA_OVER;
}

sesh_quota_status sesh_quota_check(sesh_quota *q, int dirfd, uint64_t n, sesh_quota_view *v)
{
    pthread_mutex_lock(&q->mu);
    sesh_quota_status st = fits(q, dirfd, n, v);
    pthread_mutex_unlock(&q->mu);
    return st;
}

sesh_quota_status sesh_quota_take(sesh_quota *q, int dirfd, uint64_t n, sesh_quota_view *v)
{
    pthread_mutex_lock(&q->mu);
    sesh_quota_status st = fits(q, dirfd, n, v);
    if (st == SESH_QUOTA_OK) q->in_flight += n;
    pthread_mutex_unlock(&q->mu);
    return st;
}

void sesh_quota_done(sesh_quota *q, uint64_t taken, uint64_t stored, uint64_t replaced)
{
    pthread_mutex_lock(&q->mu);
    q->in_flight = taken < q->in_flight ? q->in_flight - taken : 0;
    q->held += stored;
    q->held = replaced < q->held ? q->held - replaced : 0;
    pthread_mutex_unlock(&q->mu);
}

void sesh_quota_freed(sesh_quota *q, uint64_t bytes)
{
    pthread_mutex_lock(&q->mu);
    q->held = bytes < q->held ? q->held - bytes : 0;
    pthread_mutex_unlock(&q->mu);
}

void sesh_quota_changed(sesh_quota *q)
{
    pthread_mutex_lock(&q->mu);
    q->measured_ms = 0;
    pthread_mutex_unlock(&q->mu);
}
