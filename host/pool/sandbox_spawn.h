/*
 * sandbox_spawn.h — the bwrap command line of a sandbox, and the fork that
 * runs it (or the fork server's interpreter, zygote.c). Internal to
 * sandbox.c and zygote.c, which decide what goes in; this file knows how
 * bubblewrap is driven and what a child may do between fork and exec.
 */
#ifndef SESH_SANDBOX_SPAWN_H
#define SESH_SANDBOX_SPAWN_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* The descriptors a sandbox gets, by the numbers the child sees. 3 and 4 are
 * also known to the bootstrap (sandbox_spawn.c) and to runner.py. The fork
 * server gets its own on these numbers (zygote.c); -1: none there. */
enum {
    SESH_FD_NULL,              /* 0: /dev/null */
    SESH_FD_OUT,               /* 1, 2: the console pipe (its tail goes into messages) */
    SESH_FD_ERR,
    SESH_FD_CHANNEL,           /* 3: socket to the runner: 4-byte length + JSON frames */
    SESH_FD_RUNNER,            /* 4: memfd with runner.py, read by the bootstrap */
    SESH_FD_SECCOMP,           /* 5: memfd with the seccomp filter, read by bwrap */
    SESH_FD_STATUS,            /* 6: bwrap's --json-status-fd */
    SESH_FD_PASSWD,            /* 7, 8: memfds with the sandbox's /etc/passwd, /etc/group */
    SESH_FD_GROUP,
    SESH_SPAWN_FDS
};

typedef struct sesh_bwrap_options {
    const char *python;        /* interpreter inside */
    const char *const *python_dirs;  /* NULL-terminated or NULL: bound read-only at the same paths */
    int network;               /* share the host's network */
    const char *data_src;      /* host path bound at /mnt/data */
    size_t tmp_size, shm_size; /* bytes of /tmp and /dev/shm */
    int processes;             /* RLIMIT_NPROC inside the sandbox's user namespace */
} sesh_bwrap_options;

/* bwrap's argv (NULL-terminated, NULL when out of memory) and the sandbox's
 * whole environment. Free both with sesh_strv_free. */
char **sesh_bwrap_argv(const sesh_bwrap_options *o);
char **sesh_sandbox_env(void);
void sesh_strv_free(char **v);

#define SESH_SPAWN_LIMITS 4
#define SESH_SPAWN_CGROUPS 3

typedef struct sesh_spawn_plan {
    const char *exe;           /* what to run; NULL: bwrap */
    char **argv, **envp;
    int fds[SESH_SPAWN_FDS];   /* what lands on each descriptor of the child */
    struct rlimit limits[SESH_SPAWN_LIMITS];
    int limit_ids[SESH_SPAWN_LIMITS];
    const char *limit_names[SESH_SPAWN_LIMITS];
    int nlimits;
    int nice;
    /* stage (NULL: none): the child shows bwrap data_dir there, in a mount
     * namespace of its own (bwrap, unprivileged, must reach it by path, and
     * its command line should name no host path). as_root: a root pool; the
     * child drops to uid/gid before exec. */
    int as_root;
    uid_t uid;
    gid_t gid;
    const char *data_dir, *stage;
    /* cgroup.procs of the sandbox's groups (cgroup.h), open for writing: the
     * child writes "0" to each before it drops root or runs bwrap, so that
     * it, bwrap and all they start are held to the session's limits. */
    int cgroup_procs[SESH_SPAWN_CGROUPS];
    int ncgroup_procs;
    /* The fork server's: it dies with the pool (SIGKILL), lives in a mount
     * namespace of its own with a private /tmp (tmp_size bytes), and keeps
     * CAP_SYS_ADMIN and CAP_SYS_CHROOT of the pool's user namespace, where
     * the pool has them and is not root, to go back to the pool's mounts. */
    int die_with_parent;
    size_t private_tmp;
    const char *const *keep_dirs;   /* NULL-terminated (or NULL): directories under /tmp the
                                       private /tmp shows still (the interpreter's) */
    int keep_mount_caps;
} sesh_spawn_plan;

void sesh_spawn_limit(sesh_spawn_plan *p, int id, const char *name, rlim_t value);

/* May this process mount: root, or a pool in a user namespace of its own
 * (datadir.h)? Its children may then, before they exec. */
int sesh_may_mount(void);

/* Forks and execs bwrap (or plan->exe) from a thread that lives as long as
 * the process (see sandbox_spawn.c). Returns the child's pid, or -1 with
 * errno in *err. */
pid_t sesh_spawn(const sesh_spawn_plan *plan, int *err);

#endif
