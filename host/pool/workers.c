/*
 * workers.c — see workers.h.
 *
 * One mutex guards the queue, the counts and the loop's state. An idle
 * thread waits on a condition of its own, on a stack: a job, or the loop,
 * goes straight to the thread idle most recently (its stack and caches are
 * warm: a request answered in a few hundred microseconds notices). Threads
 * are detached: the last one to end tells sesh_workers_free, which waits for
 * the count to reach zero.
 */
#include "pool/workers.h"
#include "pool/log.h"
#include "pool/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_END_S      30      /* an idle thread beyond `keep` ends after this */
#define BUSY_LOG_MS     60000   /* "all workers busy" at most this often */

/* An idle thread, waiting for a job or the loop handed to it. */
typedef struct idler {
    pthread_cond_t wake;
    sesh_job *job;
    int lead;
    struct idler *next;
} idler;

struct sesh_workers {
    pthread_mutex_t mu;
    pthread_cond_t changed;     /* a thread ended, or the loop was left */
    sesh_job *head, *tail;      /* jobs no thread was idle for */
    idler *idle;                /* the most recently idle first */
    int threads, keep, max;
    int stopping;
    void (*round)(void *ctx);
    void *ctx;
    int loop_on;                /* the loop should run */
    int looping;                /* a thread runs it */
    uint64_t busy_logged_ms;
};

/* The round this thread runs, and the first job it submitted. */
static __thread sesh_workers *round_of;
static __thread sesh_job *round_job;

static void *worker_main(void *arg);

/* With the lock held. 0, or an errno. */
static int start_thread(sesh_workers *w)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc == 0) w->threads++;
    return rc;
}

static idler *pop_idler(sesh_workers *w)
{
    idler *i = w->idle;
    if (i) w->idle = i->next;
    return i;
}

static void forget_idler(sesh_workers *w, idler *me)
{
    for (idler **p = &w->idle; *p; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            return;
        }
}

static void enqueue(sesh_workers *w, sesh_job *job)
{
    job->next = NULL;
    if (w->tail) w->tail->next = job;
    else w->head = job;
    w->tail = job;
}

/* Has another thread take the loop: 0 when none can be had. Lock held,
 * w->looping still set by the caller. */
static int hand_loop_over(sesh_workers *w)
{
    idler *i = pop_idler(w);
    if (i) {
        i->lead = 1;
        pthread_cond_signal(&i->wake);
        return 1;
    }
    return w->threads < w->max && start_thread(w) == 0;
}

/* Runs rounds while the loop is on, until a round leaves this thread a job
 * and another thread takes the loop; then runs that job. Lock held on
 * entry and on return. */
static void lead(sesh_workers *w)
{
    w->looping = 1;
    while (w->loop_on) {
        pthread_mutex_unlock(&w->mu);
        round_of = w;
        round_job = NULL;
        w->round(w->ctx);
        sesh_job *mine = round_job;
        round_of = NULL;
        round_job = NULL;
        pthread_mutex_lock(&w->mu);
        if (!mine) continue;
        if (w->loop_on && !hand_loop_over(w)) {
            enqueue(w, mine);           /* the loop keeps its thread; the job waits */
            continue;
        }
        w->looping = 0;
        pthread_cond_broadcast(&w->changed);
        pthread_mutex_unlock(&w->mu);
        mine->run(mine);
        pthread_mutex_lock(&w->mu);
        return;
    }
    w->looping = 0;
    pthread_cond_broadcast(&w->changed);
}

/* Waits until handed something or timed out. Lock held. 0: the thread
 * should end. */
static int wait_idle(sesh_workers *w, idler *me)
{
    me->job = NULL;
    me->lead = 0;
    me->next = w->idle;
    w->idle = me;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += IDLE_END_S;
    int rc = 0;
    while (!me->job && !me->lead && !w->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&me->wake, &w->mu, &until);
    if (me->job || me->lead) return 1;          /* handed over: off the stack already */
    forget_idler(w, me);
    return !(rc == ETIMEDOUT && w->threads > w->keep);
}

static void *worker_main(void *arg)
{
    sesh_workers *w = arg;
    idler me = { .job = NULL };
    pthread_cond_init(&me.wake, NULL);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->loop_on && !w->looping) {        /* the loop first: it must never lack a thread */
            lead(w);
            continue;
        }
        sesh_job *job = NULL;
        if (w->head) {
            job = w->head;
            w->head = job->next;
            if (!w->head) w->tail = NULL;
        } else if (w->stopping) {
            break;
        } else {
            if (!wait_idle(w, &me)) break;
            job = me.job;
            if (!job) continue;                 /* led to the loop, or to the queue */
        }
        pthread_mutex_unlock(&w->mu);
        job->next = NULL;
        job->run(job);
        pthread_mutex_lock(&w->mu);
    }
    if (--w->threads == 0) pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&me.wake);
    return NULL;
}

sesh_workers *sesh_workers_new(int keep, int max, void (*round)(void *ctx), void *ctx, char **err)
{
    sesh_workers *w = sesh_xcalloc(1, sizeof *w);
    w->keep = keep < 2 ? 2 : keep;
    w->max = max < w->keep ? w->keep : max;
    w->round = round;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->changed, NULL);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    for (int i = 0; i < w->keep && rc == 0; i++) rc = start_thread(w);
    pthread_mutex_unlock(&w->mu);
    if (rc != 0) {
        if (err) *err = sesh_printf("cannot start worker threads: %s", strerror(rc));
        sesh_workers_free(w);
        return NULL;
    }
    return w;
}

void sesh_workers_start_loop(sesh_workers *w)
{
    pthread_mutex_lock(&w->mu);
    w->loop_on = 1;
    if (!w->looping) {
        idler *i = pop_idler(w);
        if (i) {
            i->lead = 1;
            pthread_cond_signal(&i->wake);
        }                                       /* else a busy thread takes it when free */
    }
    pthread_mutex_unlock(&w->mu);
}

void sesh_workers_stop_loop(sesh_workers *w, void (*wake)(void *ctx))
{
    pthread_mutex_lock(&w->mu);
    w->loop_on = 0;
    pthread_mutex_unlock(&w->mu);
    wake(w->ctx);
    pthread_mutex_lock(&w->mu);
    while (w->looping) pthread_cond_wait(&w->changed, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void sesh_workers_submit(sesh_workers *w, sesh_job *job)
{
    job->next = NULL;
    if (round_of == w && !round_job) {          /* the round's thread runs it next */
        round_job = job;
        return;
    }
    pthread_mutex_lock(&w->mu);
    idler *i = pop_idler(w);
    if (i) {                                    /* straight to a waiting thread */
        i->job = job;
        pthread_cond_signal(&i->wake);
        pthread_mutex_unlock(&w->mu);
        return;
    }
    enqueue(w, job);
    if (w->threads < w->max) {
        int rc = start_thread(w);
        if (rc != 0) sesh_log("cannot start a worker thread (%s): the job waits for a busy one",
                              strerror(rc));
    } else {
        uint64_t now = sesh_now_ms();
        if (!w->busy_logged_ms || now - w->busy_logged_ms >= BUSY_LOG_MS) {
            w->busy_logged_ms = now;
            sesh_log("all %d worker threads are busy: requests wait for one in arrival order", w->max);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

void sesh_workers_free(sesh_workers *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    for (idler *i = w->idle; i; i = i->next) pthread_cond_signal(&i->wake);
    while (w->threads > 0) pthread_cond_wait(&w->changed, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->changed);
    free(w);
}
