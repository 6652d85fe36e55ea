/*
 * zygote.h — the fork server: one pre-loaded Python per pool, from which new
 * sandboxes are forked instead of started by bubblewrap.
 *
 * The server is runner.py in zygote mode, a process of the pool's (not a
 * sandbox): it runs --python with the sandboxes' environment, in a mount
 * namespace of its own whose /tmp is private, imports IPython, NumPy,
 * pandas, matplotlib (inline backend ready) and scikit-learn, makes and warms
 * up the shell, freezes its objects for the collector, and then forks one
 * sandbox per request. Each sandbox enters its confinement in C
 * (zygote_enter.h) before anything of the user's runs; its processes are the
 * pool's children (CLONE_PARENT), so a server may die or be replaced while
 * its sandboxes go on.
 *
 * This file starts the server, hands it requests, and replaces it: after
 * max_forks forks, after max_age seconds (Python's hash randomization and
 * the address layout are shared by a server's sandboxes), and whenever it
 * dies. It turns the fork path off, for good, when the pool cannot use it:
 * a pool that cannot mount (see datadir.h), a server that does not start, a
 * first forked sandbox that does not start, or three failures in a row.
 * sandbox.c then starts sandboxes with bwrap, as it does for each start the
 * server cannot serve. Each change is logged ("fork server: ...").
 *
 * Thread rules: every function may be called from any thread, except
 * sesh_zygote_free (once, when no call is under way).
 */
#ifndef SESH_POOL_ZYGOTE_H
#define SESH_POOL_ZYGOTE_H

#include <sys/types.h>
#include <jansson.h>

#include "pool/zygote_enter.h"

typedef struct sesh_zygote sesh_zygote;

typedef struct sesh_zygote_config {
    const char *python;        /* the interpreter sandboxes run */
    const char *const *python_dirs; /* the directories it needs of the host (python_env.h) */
    int max_forks;             /* a server is replaced after so many forks; 0: default */
    int max_age;               /* seconds; a server older is replaced; 0: default */
} sesh_zygote_config;

#define SESH_ZYGOTE_FORKS 1000
#define SESH_ZYGOTE_AGE   3600

/* Starts the fork server in the background (a thread of its own) and
 * returns at once; when this pool cannot fork sandboxes, the server is off
 * from the start, and the log and sesh_zygote_status() say why. Call after
 * sesh_datadir_setup() and sesh_cgroup_setup(). */
sesh_zygote *sesh_zygote_new(const sesh_zygote_config *cfg);

/* Stops the server and its thread. NULL is fine. */
void sesh_zygote_free(sesh_zygote *z);

/* Asks the server for a sandbox (req and fds as zygote_enter.h says; the
 * descriptors stay the caller's). Waits while a server starts. Returns the
 * pid of the sandbox's outer process, a child of the pool, or -1 when no
 * server can fork it now (off, or this request failed, which is logged):
 * start it with bwrap. */
pid_t sesh_zygote_fork(sesh_zygote *z, const sesh_enter_request *req, const int *fds, int nfds);

/* How a sandbox it forked came out: started, or not (why, logged). */
void sesh_zygote_outcome(sesh_zygote *z, int started, const char *why);

/* {"state": "starting"|"ready"|"off", "pid", "forks", "sandboxes",
 * "replacements", "reason"} for /health. z NULL: off, for the reason off. */
json_t *sesh_zygote_status(sesh_zygote *z, const char *off);

#endif
