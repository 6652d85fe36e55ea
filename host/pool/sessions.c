/*
 * sessions.c — see sessions.h.
 *
 * Locks: the manager's mutex guards the table, the warm list, counts and
 * every session's refs/gone flag. A session's own mutex guards its ticket
 * queue, its execution records and its sandbox pointer. The thread holding
 * a session's turn is the only one that starts, runs or frees the sandbox;
 * others may only kill it (under the session's mutex). Lock order: manager,
 * then session.
 */
#include "pool/sessions.h"
#include "pool/datadir.h"
#include "pool/files.h"
#include "pool/log.h"
#include "pool/sandbox_disk.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RECORDS     64        /* executions remembered per session */
#define MAX_ASYNC       256       /* background executions in the whole pool */
#define RETRY_START_MS  5000      /* pause after a warm sandbox failed to start */
#define REFILL_DELAY_MS 150       /* after a warm sandbox is taken, before the next starts:
                                     its first execution should not share the CPUs
                                     with a start (about a CPU-second) */

typedef struct warm {
    char *name;                   /* directory name under the work dir */
    int dirfd;
    sesh_sandbox *sb;
    struct warm *next;
} warm;

struct sesh_session {
    sesh_manager *m;
    char *id;
    char guid[37];
    char *name;                   /* directory name under the work dir */
    char *path;                   /* its absolute path (the sandbox's data_dir) */
    int dirfd;
    struct timespec created, last_access;
    uint64_t last_access_ms;
    int refs;                     /* manager lock */
    int gone;                     /* manager lock to set; read under either lock */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next_ticket, serving;
    sesh_sandbox *sb;
    atomic_uint owner;            /* whom files are given to; follows sb */
    pthread_rwlock_t files_lock;  /* uploads (read) against a new sandbox's hand-over */
    atomic_uint handed;           /* uploads' files made or handed over, under files_lock */
    sesh_quota quota;             /* the disk limit, as uploads meet it */
    sesh_execution *records;
    int nrecords;
    size_t kept_bytes;            /* output its records hold */
    sesh_session *next;
};

struct sesh_manager {
    sesh_manager_config cfg;
    char *work_dir;
    char *python;
    int work_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* keeper wake-ups, async drain */
    sesh_session *sessions;
    size_t count;
    uint64_t empty_since_ms;
    warm *warm;
    int nwarm;
    uint64_t taken_ms;            /* when a warm sandbox was last taken */
    int nasync;
    atomic_int stopping;
    int keeper_started;
    pthread_t keeper;

    pthread_mutex_t meta_mu;
    json_t *metadata;
    atomic_size_t kept_bytes;     /* output all records hold */
};

void sesh_run_clear(sesh_run *r)
{
    if (!r) return;
    json_decref(r->reply);
    free(r->error);
    memset(r, 0, sizeof *r);
}

/* ---- directories and sandboxes ---- */

/* A session directory as datadir.h makes it: its own mount, so nothing
 * inside shows where it lives on the host. */
static int make_dir(sesh_manager *m, char **name_out, int *fd_out, char **err)
{
    return sesh_datadir_make(m->work_fd, name_out, fd_out, err);
}

static void drop_dir(sesh_manager *m, char *name, int fd)
{
    if (sesh_datadir_drop(m->work_fd, name, fd) != 0)
        sesh_log("could not remove all of session directory %s/%s", m->work_dir, name);
    free(name);
}

/* background: a warm sandbox, started at low priority (see sandbox.h), with
 * everything loaded; else somebody waits for it, and it is ready sooner. */
static sesh_sandbox *start_sandbox(sesh_manager *m, const char *name, int background, char **err)
{
    sesh_sandbox_config cfg = m->cfg.sandbox;
    cfg.background = background;
    cfg.defer_plots = !background;
    char *path = sesh_printf("%s/%s", m->work_dir, name);
    cfg.data_dir = path;
    sesh_sandbox *sb = sesh_sandbox_start(&cfg, err);
    free(path);
    return sb;
}

/* ---- the table ---- */

static sesh_session *find(sesh_manager *m, const char *id)
{
    for (sesh_session *s = m->sessions; s; s = s->next)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

static void unlink_session(sesh_manager *m, sesh_session *s)
{
    for (sesh_session **p = &m->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    s->gone = 1;
    if (--m->count == 0) m->empty_since_ms = sesh_now_ms();
}

static void free_records(sesh_session *s, sesh_execution *e)
{
    while (e) {
        sesh_execution *next = e->next;
        s->kept_bytes -= e->kept;
        atomic_fetch_sub(&s->m->kept_bytes, e->kept);
        sesh_run_clear(&e->run);
        free(e->id);
        free(e);
        e = next;
    }
}

/* Frees a session nobody references any more. */
static void destroy(sesh_session *s)
{
    sesh_sandbox_free(s->sb);
    drop_dir(s->m, s->name, s->dirfd);
    sesh_quota_destroy(&s->quota);
    free_records(s, s->records);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_rwlock_destroy(&s->files_lock);
    free(s->path);
    free(s->id);
    free(s);
}

/* Marks a session gone and wakes its waiters; the caller holds the manager lock. */
static void retire(sesh_manager *m, sesh_session *s)
{
    unlink_session(m, s);
    pthread_mutex_lock(&s->mu);
    if (s->sb) sesh_sandbox_kill(s->sb);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Sets s->sb (under s->mu, or before anyone else sees s) and its owner. */
static void set_sandbox(sesh_session *s, sesh_sandbox *sb)
{
    s->sb = sb;
    atomic_store(&s->owner, sb && geteuid() == 0 ? (unsigned)sesh_sandbox_uid(sb) : (unsigned)-1);
}

static void touch(sesh_session *s)
{
    clock_gettime(CLOCK_REALTIME, &s->last_access);
    s->last_access_ms = sesh_now_ms();
}

sesh_sess_status sesh_manager_acquire(sesh_manager *m, const char *identifier, int create,
                                      sesh_session **out, int *created, char **err)
{
    *out = NULL;
    if (created) *created = 0;
    pthread_mutex_lock(&m->mu);
    if (atomic_load(&m->stopping)) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_STOPPING;
    }
    sesh_session *s = find(m, identifier);
    if (s) {
        s->refs++;
        touch(s);
        pthread_mutex_unlock(&m->mu);
        *out = s;
        return SESH_SESS_OK;
    }
    if (!create) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_NOT_FOUND;
    }
    if (m->count >= (size_t)m->cfg.max_sessions) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_FULL;
    }
    s = sesh_xcalloc(1, sizeof *s);
    s->m = m;
    s->id = sesh_xstrdup(identifier);
    s->dirfd = -1;
    set_sandbox(s, NULL);
    sesh_uuid(s->guid);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_rwlock_init(&s->files_lock, NULL);
    sesh_quota_init(&s->quota, m->cfg.sandbox.disk_limit);
    if (m->warm) {                      /* a ready sandbox: the fast path */
        warm *w = m->warm;
        m->warm = w->next;
        m->nwarm--;
        s->name = w->name;
        s->dirfd = w->dirfd;
        set_sandbox(s, w->sb);
        sesh_sandbox_foreground(w->sb);
        free(w);
        m->taken_ms = sesh_now_ms();
        pthread_cond_broadcast(&m->cv); /* the keeper refills */
    } else if (make_dir(m, &s->name, &s->dirfd, err) != 0) {
        pthread_mutex_unlock(&m->mu);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_rwlock_destroy(&s->files_lock);
        sesh_quota_destroy(&s->quota);
        free(s->id);
        free(s);
        return SESH_SESS_FAILED;
    }
    s->path = sesh_printf("%s/%s", m->work_dir, s->name);
    clock_gettime(CLOCK_REALTIME, &s->created);
    touch(s);
    s->refs = 1;
    s->next = m->sessions;
    m->sessions = s;
    m->count++;
    m->empty_since_ms = 0;
    pthread_mutex_unlock(&m->mu);
    if (created) *created = 1;
    *out = s;
    return SESH_SESS_OK;
}

void sesh_session_release(sesh_session *s)
{
    if (!s) return;
    sesh_manager *m = s->m;
    pthread_mutex_lock(&m->mu);
    touch(s);
    int last = --s->refs == 0 && s->gone;
    pthread_mutex_unlock(&m->mu);
    if (last) destroy(s);
}

sesh_sess_status sesh_manager_remove(sesh_manager *m, const char *identifier)
{
    pthread_mutex_lock(&m->mu);
    sesh_session *s = find(m, identifier);
    if (!s) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_NOT_FOUND;
    }
    retire(m, s);
    int now = s->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (now) destroy(s);
    return SESH_SESS_OK;
}

size_t sesh_manager_count(sesh_manager *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->count;
    pthread_mutex_unlock(&m->mu);
    return n;
}

int sesh_manager_ready(sesh_manager *m)
{
    pthread_mutex_lock(&m->mu);
    int n = m->nwarm;
    pthread_mutex_unlock(&m->mu);
    return n;
}

uint64_t sesh_manager_idle_ms(sesh_manager *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t since = m->count ? 0 : m->empty_since_ms;
    pthread_mutex_unlock(&m->mu);
    return since ? sesh_now_ms() - since : 0;
}

int sesh_manager_retry_after(sesh_manager *m)
{
    /* The soonest an idle session expires, else a short pause. */
    uint64_t now = sesh_now_ms(), best = UINT64_MAX;
    pthread_mutex_lock(&m->mu);
    for (sesh_session *s = m->sessions; s; s = s->next) {
        if (s->refs) continue;
        uint64_t at = s->last_access_ms + (uint64_t)m->cfg.cooldown * 1000;
        if (at < best) best = at;
    }
    pthread_mutex_unlock(&m->mu);
    if (best == UINT64_MAX) return 10;
    return best <= now ? 1 : (int)((best - now + 999) / 1000);
}

static void info_of(sesh_manager *m, sesh_session *s, sesh_session_info *info)
{
    info->identifier = sesh_xstrdup(s->id);
    memcpy(info->guid, s->guid, sizeof info->guid);
    info->created = s->created;
    info->last_access = s->last_access;
    info->expires = s->last_access;
    info->expires.tv_sec += m->cfg.cooldown;
}

void sesh_session_info_get(sesh_session *s, sesh_session_info *info)
{
    pthread_mutex_lock(&s->m->mu);
    info_of(s->m, s, info);
    pthread_mutex_unlock(&s->m->mu);
}

static int by_creation(const void *a, const void *b)
{
    const sesh_session_info *x = a, *y = b;
    if (x->created.tv_sec != y->created.tv_sec) return x->created.tv_sec < y->created.tv_sec ? -1 : 1;
    if (x->created.tv_nsec != y->created.tv_nsec) return x->created.tv_nsec < y->created.tv_nsec ? -1 : 1;
    return strcmp(x->identifier, y->identifier);
}

void sesh_manager_list(sesh_manager *m, sesh_session_info **out, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    sesh_session_info *infos = sesh_xcalloc(m->count + 1, sizeof *infos);
    size_t i = 0;
    for (sesh_session *s = m->sessions; s; s = s->next) info_of(m, s, &infos[i++]);
    pthread_mutex_unlock(&m->mu);
    qsort(infos, i, sizeof *infos, by_creation);
    *out = infos;
    *n = i;
}

void sesh_session_infos_free(sesh_session_info *infos, size_t n)
{
    for (size_t i = 0; i < n; i++) free(infos[i].identifier);
    free(infos);
}

int sesh_session_dirfd(const sesh_session *s) { return s->dirfd; }
sesh_quota *sesh_session_quota(sesh_session *s) { return &s->quota; }

void sesh_session_files_changed(sesh_session *s)
{
    pthread_mutex_lock(&s->mu);
    sesh_sandbox_files_changed(s->sb);
    pthread_mutex_unlock(&s->mu);
}
const char *sesh_session_guid(const sesh_session *s) { return s->guid; }
void sesh_session_files_begin(sesh_session *s, uid_t *uid, gid_t *gid)
{
    pthread_rwlock_rdlock(&s->files_lock);
    atomic_fetch_add(&s->handed, 1);
    *uid = (uid_t)atomic_load(&s->owner);
    *gid = (gid_t)*uid;
}

void sesh_session_files_end(sesh_session *s)
{
    pthread_rwlock_unlock(&s->files_lock);
}

/* A root pool's new sandbox gave the session's files to its uid when it
 * started, but an upload may have made or handed over a file for the old
 * owner since: then the tree is given once more, with uploads held off. */
static void hand_over_files(sesh_session *s, sesh_sandbox *sb, unsigned handed_before)
{
    if (geteuid() != 0)
        return;
    pthread_rwlock_wrlock(&s->files_lock);
    if (atomic_load(&s->handed) != handed_before)
        sesh_disk_give(s->dirfd, sesh_sandbox_uid(sb));
    pthread_rwlock_unlock(&s->files_lock);
}


/* ---- executions ---- */

static sesh_execution *record_find(sesh_session *s, const char *id)
{
    for (sesh_execution *e = s->records; e; e = e->next)
        if (strcmp(e->id, id) == 0) return e;
    return NULL;
}

/* Adds a record, forgetting the oldest finished ones beyond the cap. */
static void record_add(sesh_session *s, const char *id, int async)
{
    sesh_execution *e = sesh_xcalloc(1, sizeof *e);
    e->id = sesh_xstrdup(id);
    e->async = async;
    e->next = s->records;
    s->records = e;
    s->nrecords++;
    while (s->nrecords > MAX_RECORDS) {
        sesh_execution **p = &s->records, **victim = NULL;
        for (; *p; p = &(*p)->next)
            if ((*p)->done) victim = p;     /* the last one is the oldest */
        if (!victim) break;
        sesh_execution *v = *victim;
        *victim = v->next;
        v->next = NULL;
        free_records(s, v);
        s->nrecords--;
    }
}

/* Bytes of output a runner's reply holds. */
static size_t output_bytes(json_t *reply)
{
    json_t *result = json_object_get(reply, "result");
    if (json_is_object(result))
        result = json_object_get(result, "base64_data");
    return json_string_length(json_object_get(reply, "stdout")) +
           json_string_length(json_object_get(reply, "stderr")) + json_string_length(result);
}

/* Forgets a finished record's output; the caller holds s->mu. */
static void drop_output(sesh_session *s, sesh_execution *e)
{
    json_decref(e->run.reply);
    e->run.reply = NULL;
    e->dropped = 1;
    s->kept_bytes -= e->kept;
    atomic_fetch_sub(&s->m->kept_bytes, e->kept);
    e->kept = 0;
}

/* The session's oldest record still holding output, among those delivered
 * if any, else among all; never `spare`. The caller holds s->mu. */
static sesh_execution *oldest_kept(sesh_session *s, const sesh_execution *spare)
{
    sesh_execution *oldest = NULL;
    for (int delivered = 1; delivered >= 0 && !oldest; delivered--)
        for (sesh_execution *e = s->records; e; e = e->next)
            if (e->kept && e != spare && e->delivered == delivered)
                oldest = e;             /* the last one is the oldest */
    return oldest;
}

static void record_finish(sesh_session *s, const char *id, const sesh_run *run)
{
    sesh_execution *e = id ? record_find(s, id) : NULL;
    if (!e) return;
    e->done = 1;
    e->run = *run;
    if (run->reply) json_incref(run->reply);
    e->run.error = run->error ? sesh_xstrdup(run->error) : NULL;
    e->delivered = !e->async && run->status != SESH_RUN_ABANDONED;
    e->kept = output_bytes(run->reply);
    s->kept_bytes += e->kept;
    atomic_fetch_add(&s->m->kept_bytes, e->kept);
    sesh_execution *old;
    while (s->kept_bytes > SESH_KEPT_SESSION_BYTES && (old = oldest_kept(s, e)))
        drop_output(s, old);
}

/* Past the pool-wide cap, the session keeping the most output loses its
 * oldest, until the pool is within the cap: one session's output never
 * pushes out everyone else's. Takes the manager's lock, then each session's. */
static void trim_records(sesh_manager *m)
{
    if (atomic_load(&m->kept_bytes) <= SESH_KEPT_POOL_BYTES) return;
    pthread_mutex_lock(&m->mu);
    while (atomic_load(&m->kept_bytes) > SESH_KEPT_POOL_BYTES) {
        sesh_session *most = NULL;
        size_t most_bytes = 0;
        for (sesh_session *s = m->sessions; s; s = s->next) {
            pthread_mutex_lock(&s->mu);
            if (s->kept_bytes > most_bytes) {
                most = s;
                most_bytes = s->kept_bytes;
            }
            pthread_mutex_unlock(&s->mu);
        }
        if (!most) break;               /* what is left is held by sessions being removed */
        pthread_mutex_lock(&most->mu);
        sesh_execution *old = oldest_kept(most, NULL);
        if (old) drop_output(most, old);
        pthread_mutex_unlock(&most->mu);
        if (!old) break;
    }
    pthread_mutex_unlock(&m->mu);
}

int sesh_session_with_execution(sesh_session *s, const char *id,
                                void (*fn)(const sesh_execution *e, void *ud), void *ud)
{
    pthread_mutex_lock(&s->mu);
    sesh_execution *e = record_find(s, id);
    if (e) {
        fn(e, ud);
        if (e->done) e->delivered = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return e ? 0 : -1;
}

static void detach_sandbox(sesh_session *s)
{
    pthread_mutex_lock(&s->mu);
    sesh_sandbox *sb = s->sb;
    set_sandbox(s, NULL);
    pthread_mutex_unlock(&s->mu);
    sesh_sandbox_free(sb);
}

/* Runs with the session's turn held. */
static void run_turn(sesh_session *s, json_t *request, int timeout_ms, sesh_watch *watch, sesh_run *run)
{
    sesh_manager *m = s->m;
    if (s->sb && !sesh_sandbox_alive(s->sb)) {
        sesh_log("session %.8s: its Python had exited (pid %d); starting a new one",
                 s->guid, (int)sesh_sandbox_pid(s->sb));
        detach_sandbox(s);
        run->state_lost_before = 1;
    }
    if (!s->sb) {
        uint64_t t0 = sesh_now_ms();
        char *err = NULL;
        unsigned handed = atomic_load(&s->handed);
        sesh_sandbox *sb = start_sandbox(m, s->name, 0, &err);
        if (!sb && !atomic_load(&m->stopping)) {
            /* Namespaces or processes can be short for a moment (EAGAIN): once more. */
            sesh_log("session %.8s: a sandbox did not start (%s); trying again", s->guid,
                     err ? err : "unknown error");
            free(err);
            err = NULL;
            usleep(300 * 1000);
            run->allocation_retries = 1;
            sb = start_sandbox(m, s->name, 0, &err);
        }
        run->alloc_ms = sesh_now_ms() - t0;
        if (!sb) {
            sesh_log("session %.8s: cannot start a sandbox: %s", s->guid, err ? err : "unknown error");
            run->error = err ? err : sesh_xstrdup("the sandbox did not start");
            return;
        }
        free(err);
        pthread_mutex_lock(&s->mu);
        set_sandbox(s, sb);
        int dead = s->gone || atomic_load(&m->stopping);
        pthread_mutex_unlock(&s->mu);
        hand_over_files(s, sb, handed);
        if (dead) {                         /* removed while it started */
            detach_sandbox(s);
            run->error = sesh_xstrdup("the session was removed");
            return;
        }
        run->new_allocation = 1;
    }
    run->started = 1;
    uint64_t t0 = sesh_now_ms();
    json_t *reply = NULL;
    char *err = NULL;
    run->status = sesh_sandbox_execute(s->sb, request, timeout_ms, watch, &reply, &err);
    sesh_quota_changed(&s->quota);          /* the code may have changed /mnt/data */
    run->run_ms = sesh_now_ms() - t0;
    run->reply = reply;
    if (run->status == SESH_RUN_LOST) {
        if (!s->gone && !atomic_load(&m->stopping))
            sesh_log("session %.8s: %s lost (%s); the next execution starts a new one", s->guid,
                     run->shell ? "sandbox" : "Python", err ? err : "no reason given");
        run->error = err ? err : sesh_xstrdup("the interpreter died");
        detach_sandbox(s);
    } else {
        free(err);
        if (run->status == SESH_RUN_TIMED_OUT)
            sesh_log("session %.8s: execution interrupted at its timeout of %d ms", s->guid, timeout_ms);
        else if (run->status == SESH_RUN_ABANDONED)
            sesh_log("session %.8s: execution interrupted: its client went away", s->guid);
    }
}

/* Takes a place in the session's queue; the caller holds s->mu. */
static sesh_sess_status take_ticket(sesh_session *s, const char *exec_id, int async, uint64_t *ticket)
{
    if (s->gone) return SESH_SESS_NOT_FOUND;
    if (s->next_ticket - s->serving >= (uint64_t)s->m->cfg.max_queue) return SESH_SESS_BUSY;
    *ticket = s->next_ticket++;
    if (exec_id && !record_find(s, exec_id)) record_add(s, exec_id, async);
    return SESH_SESS_OK;
}

static int is_shell(json_t *request)
{
    const char *op = json_string_value(json_object_get(request, "op"));
    return op && strcmp(op, "shell") == 0;
}

/* Waits for the ticket's turn, runs, and passes the turn on. */
static sesh_sess_status run_ticket(sesh_session *s, uint64_t ticket, json_t *request, int timeout_ms,
                                   const char *exec_id, sesh_watch *watch, uint64_t t0, sesh_run *run)
{
    sesh_manager *m = s->m;
    run->shell = is_shell(request);
    pthread_mutex_lock(&s->mu);
    while (s->serving != ticket && !s->gone && !atomic_load(&m->stopping))
        pthread_cond_wait(&s->cv, &s->mu);
    int gone = s->gone, stopping = atomic_load(&m->stopping);
    pthread_mutex_unlock(&s->mu);

    sesh_sess_status st = SESH_SESS_OK;
    if (stopping) st = SESH_SESS_STOPPING;
    else if (gone) st = SESH_SESS_NOT_FOUND;

    run->wait_ms = sesh_now_ms() - t0;
    if (st == SESH_SESS_OK) run_turn(s, request, timeout_ms, watch, run);
    run->total_ms = sesh_now_ms() - t0;

    pthread_mutex_lock(&s->mu);
    if (s->serving == ticket) s->serving++;
    pthread_cond_broadcast(&s->cv);
    if (st == SESH_SESS_OK) {
        record_finish(s, exec_id, run);
    } else if (exec_id) {
        sesh_run failed = { .shell = run->shell,
                            .error = st == SESH_SESS_STOPPING ? "the pool is stopping" : "the session was removed" };
        record_finish(s, exec_id, &failed);
    }
    pthread_mutex_unlock(&s->mu);
    if (exec_id) trim_records(m);
    if (st != SESH_SESS_OK) sesh_run_clear(run);
    return st;
}

sesh_sess_status sesh_session_execute(sesh_session *s, json_t *request, int timeout_ms,
                                      const char *exec_id, sesh_watch *watch, sesh_run *run)
{
    uint64_t t0 = sesh_now_ms(), ticket;
    memset(run, 0, sizeof *run);
    run->timeout_ms = timeout_ms;
    pthread_mutex_lock(&s->mu);
    sesh_sess_status st = take_ticket(s, exec_id, 0, &ticket);
    pthread_mutex_unlock(&s->mu);
    if (st != SESH_SESS_OK) return st;
    return run_ticket(s, ticket, request, timeout_ms, exec_id, watch, t0, run);
}

typedef struct async_job {
    sesh_session *s;
    json_t *request;
    int timeout_ms;
    char *id;
    uint64_t ticket, t0;
} async_job;

static void *async_main(void *arg)
{
    async_job *job = arg;
    sesh_manager *m = job->s->m;
    sesh_run run;
    memset(&run, 0, sizeof run);
    run.timeout_ms = job->timeout_ms;
    if (run_ticket(job->s, job->ticket, job->request, job->timeout_ms, job->id, NULL, job->t0,
                   &run) == SESH_SESS_OK)
        sesh_run_clear(&run);
    sesh_session_release(job->s);
    json_decref(job->request);
    free(job->id);
    free(job);
    pthread_mutex_lock(&m->mu);
    m->nasync--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

sesh_sess_status sesh_session_execute_async(sesh_session *s, json_t *request, int timeout_ms,
                                            const char *exec_id)
{
    sesh_manager *m = s->m;
    pthread_mutex_lock(&m->mu);
    if (atomic_load(&m->stopping)) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_STOPPING;
    }
    if (m->nasync >= MAX_ASYNC) {
        pthread_mutex_unlock(&m->mu);
        return SESH_SESS_BUSY;
    }
    async_job *job = sesh_xcalloc(1, sizeof *job);
    job->s = s;
    job->request = json_incref(request);
    job->timeout_ms = timeout_ms;
    job->id = sesh_xstrdup(exec_id);
    job->t0 = sesh_now_ms();

    /* The place in the queue is taken here, in the caller's thread, so
     * executions keep their arrival order whoever's thread runs first. */
    pthread_mutex_lock(&s->mu);
    sesh_sess_status st = take_ticket(s, exec_id, 1, &job->ticket);
    int rc = 0;
    if (st == SESH_SESS_OK) {
        rc = sesh_thread_start(async_main, job);
        if (rc == 0) {
            s->refs++;                    /* the worker's; released at its end */
            m->nasync++;
        } else {
            s->next_ticket--;             /* nobody took a ticket meanwhile: we hold the lock */
            sesh_run failed = { .shell = is_shell(request), .error = "the pool could not start a thread for it" };
            record_finish(s, exec_id, &failed);
            sesh_log("cannot start a thread for a background execution: %s", strerror(rc));
            st = SESH_SESS_BUSY;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&m->mu);
    if (st != SESH_SESS_OK) {
        json_decref(job->request);
        free(job->id);
        free(job);
    }
    return st;
}

/* ---- the keeper: cooldown and warm pool ---- */

static void reap_idle(sesh_manager *m)
{
    uint64_t now = sesh_now_ms();
    sesh_session *dead = NULL;
    pthread_mutex_lock(&m->mu);
    for (sesh_session *s = m->sessions, *next; s; s = next) {
        next = s->next;
        if (s->refs == 0 && now - s->last_access_ms >= (uint64_t)m->cfg.cooldown * 1000) {
            retire(m, s);
            s->next = dead;
            dead = s;
        }
    }
    pthread_mutex_unlock(&m->mu);
    while (dead) {
        sesh_session *next = dead->next;
        sesh_log("session %.8s: idle for %d s, removed", dead->guid, m->cfg.cooldown);
        destroy(dead);
        dead = next;
    }
}

static void *keeper_main(void *arg)
{
    sesh_manager *m = arg;
    uint64_t pause_until = 0;
    pthread_mutex_lock(&m->mu);
    while (!atomic_load(&m->stopping)) {
        uint64_t now = sesh_now_ms(), wait_ms = 1000;
        uint64_t refill_at = m->taken_ms + REFILL_DELAY_MS;
        int need = m->nwarm < m->cfg.ready && now >= pause_until;
        if (need && now < refill_at) {
            need = 0;
            wait_ms = refill_at - now;
        }
        if (!need) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)(wait_ms / 1000);
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&m->cv, &m->mu, &until);
        }
        pthread_mutex_unlock(&m->mu);
        reap_idle(m);
        if (need && !atomic_load(&m->stopping)) {
            char *name = NULL, *err = NULL;
            int fd = -1;
            sesh_sandbox *sb = NULL;
            if (make_dir(m, &name, &fd, &err) == 0) {
                sb = start_sandbox(m, name, 1, &err);
                if (!sb) { drop_dir(m, name, fd); name = NULL; fd = -1; }
            }
            if (!sb) {
                sesh_log("cannot start a ready sandbox: %s", err ? err : "unknown error");
                pause_until = sesh_now_ms() + RETRY_START_MS;
            }
            free(err);
            pthread_mutex_lock(&m->mu);
            if (sb) {
                warm *w = sesh_xcalloc(1, sizeof *w);
                w->name = name;
                w->dirfd = fd;
                w->sb = sb;
                w->next = m->warm;
                m->warm = w;
                m->nwarm++;
            }
        } else {
            pthread_mutex_lock(&m->mu);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- metadata ---- */

int sesh_manager_runs_python(sesh_manager *m)
{
    return !m->cfg.sandbox.shell_only;
}

/* Asks one sandbox for {"op":"metadata"}; its user namespace is untouched. */
static json_t *ask_metadata(sesh_sandbox *sb, char **err)
{
    json_t *req = json_pack("{s:s}", "op", "metadata");
    json_t *reply = NULL;
    char *why = NULL;
    sesh_run_status st = sesh_sandbox_execute(sb, req, 60000, NULL, &reply, &why);
    json_decref(req);
    if (st != SESH_RUN_OK || !json_is_object(reply)) {
        if (err) *err = sesh_printf("the runner did not describe itself: %s", why ? why : "no reply");
        json_decref(reply);
        reply = NULL;
    }
    free(why);
    return reply;
}

json_t *sesh_manager_metadata(sesh_manager *m, char **err)
{
    pthread_mutex_lock(&m->meta_mu);
    if (!m->metadata) {
        /* A ready sandbox answers at once and goes back to the warm pool;
         * else a short-lived one is started for the question. */
        pthread_mutex_lock(&m->mu);
        warm *w = m->warm;
        if (w) {
            m->warm = w->next;
            m->nwarm--;
        }
        pthread_mutex_unlock(&m->mu);
        if (w) {
            m->metadata = ask_metadata(w->sb, err);
            pthread_mutex_lock(&m->mu);
            if (m->metadata && !atomic_load(&m->stopping) && sesh_sandbox_alive(w->sb)) {
                w->next = m->warm;
                m->warm = w;
                m->nwarm++;
                w = NULL;
            }
            pthread_cond_broadcast(&m->cv);
            pthread_mutex_unlock(&m->mu);
            if (w) {
                sesh_sandbox_free(w->sb);
                drop_dir(m, w->name, w->dirfd);
                free(w);
            }
        } else {
            char *name = NULL;
            int fd = -1;
            if (make_dir(m, &name, &fd, err) == 0) {
                sesh_sandbox *sb = start_sandbox(m, name, 0, err);
                if (sb) {
                    m->metadata = ask_metadata(sb, err);
                    sesh_sandbox_free(sb);
                }
                drop_dir(m, name, fd);
            }
        }
    }
    json_t *md = m->metadata ? json_incref(m->metadata) : NULL;
    pthread_mutex_unlock(&m->meta_mu);
    return md;
}

/* ---- life cycle ---- */

sesh_manager *sesh_manager_new(const sesh_manager_config *cfg, char **err)
{
    sesh_manager *m = sesh_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->work_dir = sesh_xstrdup(cfg->work_dir);
    m->python = sesh_xstrdup(cfg->sandbox.python ? cfg->sandbox.python : "/usr/bin/python3");
    m->cfg.work_dir = m->work_dir;
    m->cfg.sandbox.python = m->python;
    if (m->cfg.max_queue <= 0) m->cfg.max_queue = 64;
    if (m->cfg.max_sessions <= 0) m->cfg.max_sessions = 600;
    if (m->cfg.sandbox.disk_limit == 0) m->cfg.sandbox.disk_limit = (size_t)1 << 30;  /* sandbox.h's */
    m->work_fd = open(m->work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m->work_fd < 0) {
        if (err) *err = sesh_printf("cannot open %s: %s", m->work_dir, strerror(errno));
        free(m->python);
        free(m->work_dir);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->meta_mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->empty_since_ms = sesh_now_ms();
    int rc = pthread_create(&m->keeper, NULL, keeper_main, m);
    if (rc != 0) {
        if (err) *err = sesh_printf("cannot start the session keeper thread: %s", strerror(rc));
        sesh_manager_free(m);
        return NULL;
    }
    m->keeper_started = 1;
    return m;
}

void sesh_manager_stop(sesh_manager *m)
{
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->stopping, 1);
    for (sesh_session *s = m->sessions; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        if (s->sb) sesh_sandbox_kill(s->sb);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void sesh_manager_free(sesh_manager *m)
{
    if (!m) return;
    sesh_manager_stop(m);
    if (m->keeper_started) pthread_join(m->keeper, NULL);
    pthread_mutex_lock(&m->mu);
    while (m->nasync > 0) pthread_cond_wait(&m->cv, &m->mu);
    sesh_session *all = m->sessions;
    m->sessions = NULL;
    warm *w = m->warm;
    m->warm = NULL;
    pthread_mutex_unlock(&m->mu);
    while (all) {
        sesh_session *next = all->next;
        if (all->refs) sesh_log("session %.8s still had %d users at shutdown", all->guid, all->refs);
        destroy(all);
        all = next;
    }
    while (w) {
        warm *next = w->next;
        sesh_sandbox_free(w->sb);
        drop_dir(m, w->name, w->dirfd);
        free(w);
        w = next;
    }
    json_decref(m->metadata);
    close(m->work_fd);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->meta_mu);
    pthread_cond_destroy(&m->cv);
    free(m->python);
    free(m->work_dir);
    free(m);
}
