/*
 * statedir.h — where a pool keeps its session directories, and how the
 * leftovers of a pool that was killed go.
 *
 * A pool works in STATE/pool-<pid>. STATE is --state-dir, else the user's
 * default, $TMPDIR/sesh-pool-<uid> (/tmp without TMPDIR): one folder per
 * user, so that a pool killed without a chance to clean up (SIGKILL, a
 * crash, a power cut) leaves its folder where the next pool looks. STATE is
 * made 0700 and must be the user's own, closed to others and no symbolic
 * link; a default folder that is not (another user made it first) is
 * passed over for a fresh private one, with a note saying so.
 *
 * A live pool holds an exclusive flock(2) on its own folder for as long as
 * it runs; the kernel drops it however the pool ends. At start, under
 * STATE/pools.lock (so no pool's folder is ever seen between its mkdir and
 * its lock), every pool-* folder whose lock is free is removed: that is
 * "its pool is gone", whatever its pid says now (pids are reused, also by
 * other pools; and a pool in another pid namespace is invisible to kill(2)).
 */
#ifndef SESH_POOL_STATEDIR_H
#define SESH_POOL_STATEDIR_H

typedef struct sesh_statedir {
    char *dir;              /* STATE/pool-<pid>: this pool's folder */
    int lock_fd;            /* its open descriptor, holding the flock; -1: none */
} sesh_statedir;

/* Makes this pool's folder in state_dir (NULL: the default), removing what
 * dead pools left there (each removal is logged). 0, or -1 with a malloc'd
 * message in *err. */
int sesh_statedir_open(const char *state_dir, sesh_statedir *sd, char **err);

/* Removes this pool's folder (at a clean stop) and frees sd. */
void sesh_statedir_close(sesh_statedir *sd, int remove);

#endif
