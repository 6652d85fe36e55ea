/*
 * sessions.h — the session manager: identifiers to sessions, each a
 * directory (the sandbox's /mnt/data) and, once code runs, one sandbox.
 *
 * - Sessions are allocated on first use, taking a ready sandbox from the
 *   warm pool when there is one; a background thread keeps that pool full
 *   and removes sessions idle longer than the cooldown.
 * - Executions of one session run one at a time in arrival order (a ticket
 *   queue); different sessions run in parallel, each in its caller's thread.
 * - An interpreter that died (crash, kill, lost at a timeout) is replaced at
 *   the next execution; the run says its state was lost, the files stay.
 *
 * This layer knows nothing of HTTP: it answers with sesh_sess_status, which
 * the API maps to statuses and error codes.
 */
#ifndef SESH_POOL_SESSIONS_H
#define SESH_POOL_SESSIONS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include "pool/quota.h"
#include "pool/sandbox.h"

typedef struct sesh_manager sesh_manager;
typedef struct sesh_session sesh_session;

typedef struct sesh_manager_config {
    const char *work_dir;          /* existing private directory for session directories */
    sesh_sandbox_config sandbox;   /* template; data_dir is filled per session */
    int ready;                     /* warm sandboxes kept ready */
    int cooldown;                  /* seconds idle before a session is removed */
    int max_sessions;
    int max_queue;                 /* executions waiting on one session */
} sesh_manager_config;

typedef enum {
    SESH_SESS_OK = 0,
    SESH_SESS_NOT_FOUND,           /* no such session (or it was removed meanwhile) */
    SESH_SESS_FULL,                /* max sessions reached */
    SESH_SESS_BUSY,                /* too many executions waiting */
    SESH_SESS_STOPPING,            /* the pool is shutting down */
    SESH_SESS_FAILED               /* could not create what was needed; see the message */
} sesh_sess_status;

/* What one execution came to. */
typedef struct sesh_run {
    int shell;                     /* a shell command (op "shell"), not Python */
    int started;                   /* 0: no sandbox could be started; error says why */
    sesh_run_status status;        /* the sandbox's outcome when started */
    json_t *reply;                 /* the runner's reply (OK, TIMED_OUT), owned */
    char *error;                   /* why it was lost or not started, owned */
    int new_allocation;            /* a sandbox was started for this run */
    int allocation_retries;        /* starts that failed before one worked */
    int state_lost_before;         /* the previous interpreter had died: fresh state */
    int timeout_ms;
    uint64_t wait_ms, alloc_ms, run_ms, total_ms;
} sesh_run;

void sesh_run_clear(sesh_run *r);

/* Output kept for GET executions/{id} (stdout, stderr and result, in bytes).
 * Past either cap, finished records lose their output, oldest first and those
 * whose output was already delivered first; a session always keeps its
 * newest unless the pool-wide cap takes it, which takes from the session
 * keeping the most. */
#define SESH_KEPT_SESSION_BYTES (16u << 20)
#define SESH_KEPT_POOL_BYTES    (256u << 20)

/* A recorded execution (second generation), for GET executions/{id}. */
typedef struct sesh_execution {
    char *id;
    int async;
    int done;
    sesh_run run;                  /* valid when done; run.reply NULL when dropped */
    int dropped;                   /* its output was dropped for the caps above */
    int delivered;                 /* its output reached a client (a synchronous
                                      answer, or a GET after it finished) */
    size_t kept;                   /* bytes of output it holds */
    struct sesh_execution *next;
} sesh_execution;

typedef struct sesh_session_info {
    char *identifier;
    char guid[37];
    struct timespec created, last_access, expires;
} sesh_session_info;

sesh_manager *sesh_manager_new(const sesh_manager_config *cfg, char **err);
void sesh_manager_stop(sesh_manager *m);    /* refuse new work, kill running code */
void sesh_manager_free(sesh_manager *m);    /* waits for workers, removes every session */
size_t sesh_manager_count(sesh_manager *m);
int sesh_manager_ready(sesh_manager *m);          /* warm sandboxes waiting */
uint64_t sesh_manager_idle_ms(sesh_manager *m);   /* since the last session went; 0 with sessions */
int sesh_manager_retry_after(sesh_manager *m);    /* seconds until a slot may free up */

/* Finds the session of an identifier, creating it when `create`. On OK the
 * caller holds a reference (release it) and the idle clock is reset. */
sesh_sess_status sesh_manager_acquire(sesh_manager *m, const char *identifier, int create,
                                      sesh_session **out, int *created, char **err);
void sesh_session_release(sesh_session *s);

/* Removes a session now: kills its code, and its files go with it. */
sesh_sess_status sesh_manager_remove(sesh_manager *m, const char *identifier);

/* Snapshot of all sessions (sorted by creation); free with sesh_session_infos_free. */
void sesh_manager_list(sesh_manager *m, sesh_session_info **out, size_t *n);
void sesh_session_infos_free(sesh_session_info *infos, size_t n);
void sesh_session_info_get(sesh_session *s, sesh_session_info *info);

int sesh_session_dirfd(const sesh_session *s);
/* The session's disk limit as uploads meet it (quota.h): --max-disk. */
sesh_quota *sesh_session_quota(sesh_session *s);
/* The pool added or removed files of the session (see sesh_sandbox_files_changed). */
void sesh_session_files_changed(sesh_session *s);
const char *sesh_session_guid(const sesh_session *s);
/* Around each moment an upload makes or hands over a file (creating its
 * directories and temporary file; the final fchown and rename): whom to give
 * it to. In a root pool the uid of the session's sandbox, so its code can
 * change the file; -1 (leave it the pool's) when the pool is not root or no
 * sandbox runs yet, in which case the next sandbox's start gives it the whole
 * directory. A sandbox that takes over meanwhile waits for _end, then gives
 * it what was made for its predecessor. Keep the section short. */
void sesh_session_files_begin(sesh_session *s, uid_t *uid, gid_t *gid);
void sesh_session_files_end(sesh_session *s);

/* Whether the pool's sessions run Python (else they are of a Shell pool,
 * which runs shell commands only: sandbox config's shell_only). */
int sesh_manager_runs_python(sesh_manager *m);

/* Runs a runner request (execute or shell) in the session, in arrival order. With exec_id the
 * execution is recorded for later lookup. watch: the waiting client, or NULL
 * (see sesh_sandbox_execute). *run is filled on OK. */
sesh_sess_status sesh_session_execute(sesh_session *s, json_t *request, int timeout_ms,
                                      const char *exec_id, sesh_watch *watch, sesh_run *run);

/* Queues the same in the background and returns at once. */
sesh_sess_status sesh_session_execute_async(sesh_session *s, json_t *request, int timeout_ms,
                                            const char *exec_id);

/* Calls fn with the recorded execution, under the session's lock. 0 when
 * found, -1 when the session has no execution of that id. A finished
 * execution looked up counts as delivered (see SESH_KEPT_SESSION_BYTES). */
int sesh_session_with_execution(sesh_session *s, const char *id,
                                void (*fn)(const sesh_execution *e, void *ud), void *ud);

/* The runner's {"op":"metadata"} reply, asked once of a fresh sandbox. New reference. */
json_t *sesh_manager_metadata(sesh_manager *m, char **err);

#endif
