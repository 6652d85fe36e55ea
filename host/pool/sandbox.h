/*
 * sandbox.h — one Python interpreter in a sandbox, started by bubblewrap or
 * forked from the pool's fork server (zygote.h) with the same confinement,
 * and the framed protocol spoken with the runner (host/pool/runner.py).
 *
 * The session manager owns sandboxes; this file knows nothing of HTTP or of
 * session identifiers. Everything that comes back from a sandbox is untrusted:
 * the user's code may have replaced the runner, so replies are size-capped and
 * validated before anyone reads them.
 *
 * Thread rules: one sandbox is used by one thread at a time, except
 * sesh_sandbox_interrupt() and sesh_sandbox_kill(), which may be called from
 * any thread while another one waits in sesh_sandbox_execute().
 */
#ifndef SESH_SANDBOX_H
#define SESH_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

typedef struct sesh_sandbox sesh_sandbox;
typedef struct sesh_zygote sesh_zygote;

typedef struct sesh_sandbox_config {
    const char *python;        /* interpreter inside, default "/usr/bin/python3" */
    const char *const *python_dirs;  /* NULL-terminated (or NULL): host directories bound
                                  read-only at the same paths, where the interpreter
                                  lives beyond /usr (python_env.h) */
    const char *data_dir;      /* host directory mounted at /mnt/data (must exist) */
    int network;               /* non-zero: share the host's network */
    size_t memory_limit;       /* bytes of address space, 0: default */
    size_t file_size_limit;    /* bytes per file written, 0: default */
    size_t tmp_size;           /* bytes of the private /tmp, 0: default */
    int max_processes;         /* 0: default */
    int max_open_files;        /* 0: default */
    uid_t uid;                 /* host uid to run as when the pool is root, 0: one of
                                  its own for each sandbox (so limits are not shared) */
    size_t disk_limit;         /* bytes under data_dir, 0: default (see sesh_sandbox_execute) */
    size_t min_free_disk;      /* bytes the file system of data_dir keeps free: code that
                                  makes data_dir grow below it is stopped; 0: no floor */
    int background;            /* non-zero: start at the lowest CPU priority, so a warm
                                  sandbox starting does not slow the sessions at work;
                                  sesh_sandbox_foreground() lifts it. Only a root pool
                                  with a uid per sandbox (uid 0) can lift a priority,
                                  so elsewhere this is ignored. */
    int defer_plots;           /* non-zero: somebody waits for this sandbox, so the
                                  runner leaves matplotlib to the first code that
                                  plots and is ready in about half the time */
    size_t session_memory;     /* bytes of memory of all its processes together, its
                                  files in /tmp and /dev/shm included, where the pool
                                  has cgroups (cgroup.h); 0: the default below */
    sesh_zygote *zygote;       /* the fork server to fork it from; NULL, or when the
                                  server cannot: bwrap starts it */
    int shell_only;            /* non-zero: a sandbox of a Shell pool, for shell
                                  commands only: the runner loads no IPython, and
                                  answers an execute request as a broken one */
} sesh_sandbox_config;

#define SESH_SANDBOX_DEFAULT_MEMORY (1UL << 30)     /* session_memory: 1 GiB */


/* Outcome of one execution, beyond the runner's own reply. */
typedef enum {
    SESH_RUN_OK = 0,           /* the runner answered (the code may still have failed) */
    SESH_RUN_TIMED_OUT,        /* interrupted at the timeout; state kept; reply holds what ran */
    SESH_RUN_LOST,             /* the interpreter died or was killed; state is gone */
    SESH_RUN_ABANDONED         /* interrupted when its client went away; state kept */
} sesh_run_status;

/* Whoever waits for an execution's reply, as a descriptor to poll while the
 * code runs: when poll reports any of `events` (or an error or hang-up),
 * still_waiting(watch, revents) says whether anybody still waits, and may
 * change fd (-1: stop watching) and events for what it wants to see next. */
typedef struct sesh_watch {
    int fd;
    short events;
    int (*still_waiting)(struct sesh_watch *watch, short revents);
    void *data;
} sesh_watch;

/* Starts a sandbox and waits until the runner inside is ready: forked by
 * cfg->zygote when it can, else (or when that sandbox does not start) by
 * bwrap. NULL on failure, with a malloc'd message in *err. */
sesh_sandbox *sesh_sandbox_start(const sesh_sandbox_config *cfg, char **err);

/* Runs one request (a JSON object, see runner.py: execute, shell or metadata)
 * and waits for the reply, at most timeout_ms; at expiry the code is
 * interrupted as by Ctrl-C (a shell command: every process it started is
 * killed), and if the interpreter does not stop within a grace period it is
 * killed.
 * On SESH_RUN_OK, SESH_RUN_TIMED_OUT and SESH_RUN_ABANDONED, *reply is a new
 * reference to the validated reply object. On SESH_RUN_LOST, *reply is NULL and *err says why.
 * Disk use: while the code runs, data_dir is measured every 50 ms (up to every
 * half second when a measure is long: a twentieth of the time at most); when
 * it grows past disk_limit, or grows while its file system has less than
 * min_free_disk free, the code is interrupted as at a timeout and the
 * reply (status Failure) says so in stderr. The outcome is then SESH_RUN_OK.
 * It is measured again after every execution, however short; what it held
 * before is the last measure, unless sesh_sandbox_files_changed() said the
 * pool changed it since.
 * Memory: where the sandbox has a cgroup, the kernel kills one of its
 * processes when they reach session_memory; when it did during the
 * execution, a reply becomes a Failure whose stderr says the session ran out
 * of memory, and on SESH_RUN_LOST *err says so.
 * watch (NULL: none) stands for the client waiting for the reply: when it
 * says nobody waits any more, the code is interrupted as at a timeout, and
 * the outcome is SESH_RUN_ABANDONED.
 * The reply is read as untrusted input: a frame past the request's allowance
 * (12 x max_output, the 4 MiB result cap and 64 KiB; a shell reply has no
 * result), JSON of another shape, or anything out of turn (bytes before the
 * request, a reply to another) is SESH_RUN_LOST with the rule in *err;
 * reading it costs about three times the frame at most. A result over the
 * cap comes back as a Failure whose stderr says so.
 * A shell reply is {exit_code (0 to 255, or null), stdout, stderr, ms,
 * stdout_truncated, stderr_truncated, new_shell, shell_ended}; where the
 * disk watch stopped the command, exit_code is null and "stopped" says why;
 * where the memory ran out, stderr says so. */
sesh_run_status sesh_sandbox_execute(sesh_sandbox *sb, json_t *request, int timeout_ms,
                                     sesh_watch *watch, json_t **reply, char **err);

/* The pool added or removed files in data_dir (uploads, deletes): the next
 * execution measures data_dir before it starts. Any thread. */
void sesh_sandbox_files_changed(sesh_sandbox *sb);

void sesh_sandbox_interrupt(sesh_sandbox *sb);   /* Ctrl-C to the running code */
void sesh_sandbox_kill(sesh_sandbox *sb);        /* ends every process of the sandbox */
int sesh_sandbox_alive(sesh_sandbox *sb);
pid_t sesh_sandbox_pid(sesh_sandbox *sb);         /* the outer process, for logs */

/* Gives a sandbox started in the background the CPU priority of every other
 * (nice 10): for a warm sandbox taken by a session. Cheap; a no-op otherwise. */
void sesh_sandbox_foreground(sesh_sandbox *sb);

/* The host uid (and gid) the sandbox's processes run as. When the pool runs as
 * root, start gives data_dir and everything in it to this uid; files the pool
 * adds later (uploads) should be given to it too, or the code cannot change
 * them. When the pool is not root, this is the pool's own uid. */
uid_t sesh_sandbox_uid(sesh_sandbox *sb);

/* Kills what is left and frees everything. NULL is fine. */
void sesh_sandbox_free(sesh_sandbox *sb);

#endif
