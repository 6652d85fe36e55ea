/*
 * zygote_enter.h — a sandbox forked from the fork server: the steps its
 * processes take between the fork and the runner's first line of Python,
 * the same steps bubblewrap takes, in bubblewrap's order.
 *
 * zygote_enter.c is built on its own into a small shared library (no
 * sanitizer, nothing of the pool linked in), embedded in sesh-pool like
 * runner.py, and loaded by the fork server (runner.py in zygote mode, see
 * zygote.h) through ctypes from a memory file. This header is the contract
 * between the pool, which writes a request, and the library, which runs it.
 *
 *   fork server (Python, one thread, pre-loaded)
 *     sesh_enter_fork(request, descriptors)          clone(CLONE_PARENT): the
 *     └─ outer process (the pool's child,           pool, not the server, is
 *        in the server's memory, which waits)       the parent of what follows
 *          rlimits, nice, the pool's mount
 *          namespace, uid (root pools), unshare of
 *          user, mount, pid, net, ipc, uts
 *          namespaces, uid and gid maps
 *          clone(CLONE_PARENT), reports its pid on the status pipe, exits
 *          └─ init, pid 1 (the pool's child)
 *               loopback, hostname, the mount tree (tmpfs root, read-only
 *               system, /proc of its own, a minimal /dev, /tmp, /dev/shm,
 *               /mnt/data, the interpreter's directories outside /usr (a
 *               venv's), and sandbox_oom.c's library preloaded by every
 *               program executed), pivot_root, the old root detached;
 *               waits for the pool's "go" (it was moving init into the
 *               sandbox's cgroups meanwhile), unshares the cgroup
 *               namespace, setsid
 *               fork()
 *               ├─ init: undumpable, no capabilities, the seccomp filter,
 *               │    the server's image unmapped, reaps orphans, exits
 *               │    with the runner's status
 *               └─ runner, pid 2: chdir /mnt/data, RLIMIT_NPROC, no
 *                    capabilities, no_new_privs, the seccomp filter,
 *                    descriptors 0-3 only, Python's after-fork work done;
 *                    sesh_enter_fork returns 0 here
 *
 * Errors: the outer process and init write "sesh sandbox: <step>: <error>"
 * on descriptor 2 (the console, which the pool shows in its message) and
 * exit 127; so does the runner, which never returns when it fails.
 *
 * Why the pool moves init into the cgroups, not the outer process itself as
 * bwrap's spawner does: on cgroup v1 the first move into each hierarchy waits
 * for an RCU grace period, 4 to 16 ms on a small machine, which then passes
 * while init builds its mount tree. Nothing but this file's code runs
 * before the move.
 */
#ifndef SESH_ZYGOTE_ENTER_H
#define SESH_ZYGOTE_ENTER_H

#include <stdint.h>

#define SESH_ENTER_VERSION 2

/* The descriptors of a fork request, in the order they travel (SCM_RIGHTS),
 * which is also where the outer process puts them. The runner keeps 0-3. */
enum {
    SESH_ENTER_NULL,           /* 0: /dev/null */
    SESH_ENTER_OUT,            /* 1, 2: the console pipe */
    SESH_ENTER_ERR,
    SESH_ENTER_CHANNEL,        /* 3: the runner's channel */
    SESH_ENTER_DATA,           /* the session directory (bound at /mnt/data) */
    SESH_ENTER_SECCOMP,        /* memfd: the filter as classic BPF (seccomp.h) */
    SESH_ENTER_STATUS,         /* pipe: the outer process writes { "child-pid": N } */
    SESH_ENTER_PASSWD,         /* memfds: the sandbox's /etc/passwd and /etc/group */
    SESH_ENTER_GROUP,
    SESH_ENTER_GO,             /* pipe: the pool writes 'g' once init is in the cgroups */
    SESH_ENTER_OOM,            /* memfd: the library of sandbox_oom.c */
    SESH_ENTER_BINDS,          /* memfd: host directories bound read-only at their own
                                  path, each NUL-ended (the interpreter's, python_env.h) */
    SESH_ENTER_FDS
};

#define SESH_ENTER_LIMITS 4

typedef struct sesh_enter_request {
    uint32_t version;          /* SESH_ENTER_VERSION */
    uint32_t size;             /* sizeof (sesh_enter_request) */
    int32_t pool_pid;          /* the parent the sandbox's processes must have */
    int32_t as_root;           /* a root pool: drop to uid and gid before unsharing */
    uint32_t uid, gid;         /* who the sandbox runs as (root pools) */
    int32_t network;           /* non-zero: keep the host's network */
    int32_t nice;
    int32_t processes;         /* RLIMIT_NPROC, set inside the user namespace */
    int32_t nlimits;
    int32_t limit_ids[SESH_ENTER_LIMITS];
    uint64_t limit_values[SESH_ENTER_LIMITS];
    uint64_t tmp_size, shm_size;   /* bytes of /tmp and /dev/shm */
    uint64_t session_memory;   /* bytes all the sandbox's processes may use (sandbox_oom.c) */
} sesh_enter_request;

/* Called by the fork server with the request's bytes, its SESH_ENTER_FDS
 * descriptors and a descriptor of the pool's mount namespace. Returns, in the fork server: the outer process's pid, or
 * a negative errno; in the runner: 0. Never returns in the other processes. */
long sesh_enter_fork(const void *request, unsigned long size, const int *fds, int nfds,
                     int pool_mount_ns);

#endif
