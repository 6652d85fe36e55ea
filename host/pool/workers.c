/*
 * workers.c — see workers.h.
 *
 * One mutex guards the queue, the counts and the loop's state. An idle
 * thread waits on a condition of its own, on a stack: a job, or the loop,
 * goes straight to the thread idle most recently (its stack and caches are
 * warm: a request answered in a few hundred microseconds notices). Threads
 * are detached: the last one to end tells sesh_workers_free, which waits for
 * the count to reach zero.
 *
 * The standby (a kept loop, workers.h) sleeps in epoll_wait on a set of its
 * own: the loop's descriptor, one-shot and enabled only while a job keeps
 * the loop, and a timerfd set to the loop's timeout then. Arming and
 * disarming are epoll_ctl and timerfd_settime calls of the keeping thread,
 * which wake nobody; the standby wakes only when the loop has work.
 */
#include "pool/workers.h"
#include "pool/log.h"
#include "pool/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

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
    int (*timeout_ms)(void *ctx);
    void *ctx;
    int loop_on;                /* the loop should run */
    int looping;                /* a thread runs it (or keeps it while it runs a job) */
    int busy;                   /* threads running a job */
    uint64_t busy_logged_ms;
    /* the kept loop */
    int watch_fd;               /* the loop's: readable when it has work; -1: never kept */
    int standby_ep, timer_fd;   /* the standby's epoll set and timer */
    int timer_set;              /* the timer is armed (the leader's) */
    pthread_t standby;
    int standby_started, standby_stop;
    int kept;                   /* the leader runs a job of its round, keeping the loop */
    int kept_lost;              /* ... and the standby handed the loop over meanwhile */
};

/* Loop work this thread does (a round, or sesh_workers_loop_work): the
 * first job it submits is collected, for this thread to run next. */
static __thread sesh_workers *collect_for;
static __thread sesh_job *collected;
static __thread sesh_workers *keeping;      /* this thread keeps the loop, the standby watching */

static void *worker_main(void *arg);

static sesh_job *take_collected(void)
{
    sesh_job *job = collected;
    collected = NULL;
    return job;
}

/* With the lock held. 0, or an errno. */
static int start_thread(sesh_workers *w)
{
    int rc = sesh_thread_start(worker_main, w);
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

/* Runs a job, counted as busy, then any job its loop work collected, in
 * turn. Lock held on entry and on return. */
static void run_jobs(sesh_workers *w, sesh_job *job)
{
    while (job) {
        w->busy++;
        pthread_mutex_unlock(&w->mu);
        job->next = NULL;
        job->run(job);
        pthread_mutex_lock(&w->mu);
        w->busy--;
        job = take_collected();
    }
}

/* ---- the kept loop ---- */

/* The standby watches the loop for the thread that keeps it: the loop's
 * descriptor once (one-shot), and its timeout. The leader's only. */
static void standby_arm(sesh_workers *w, int on)
{
    struct epoll_event ev = { .events = on ? EPOLLIN | EPOLLONESHOT : 0, .data.u32 = 0 };
    epoll_ctl(w->standby_ep, EPOLL_CTL_MOD, w->watch_fd, &ev);
    int ms = on && w->timeout_ms ? w->timeout_ms(w->ctx) : -1;
    if (ms < 0 && !w->timer_set) return;
    struct itimerspec t = { { 0, 0 }, { 0, 0 } };      /* disarmed */
    if (ms >= 0) t.it_value = (struct timespec){ ms / 1000, (long)(ms % 1000) * 1000000L + 1 };
    timerfd_settime(w->timer_fd, 0, &t, NULL);
    w->timer_set = ms >= 0;
}

static void unwatch(sesh_workers *w)
{
    if (keeping != w) return;
    keeping = NULL;
    standby_arm(w, 0);
}

/* Runs a job of the round while keeping the loop. 1 when this thread still
 * leads, 0 when the standby handed the loop over meanwhile. What the job's
 * loop work collected stays collected. Lock held on entry and on return. */
static int run_keeping_loop(sesh_workers *w, sesh_job *job)
{
    w->kept = 1;
    w->kept_lost = 0;
    w->busy++;
    pthread_mutex_unlock(&w->mu);
    keeping = w;
    standby_arm(w, 1);
    job->next = NULL;
    job->run(job);
    unwatch(w);
    pthread_mutex_lock(&w->mu);
    w->busy--;
    w->kept = 0;
    return !w->kept_lost;
}

static void *standby_main(void *arg)
{
    sesh_workers *w = arg;
    for (;;) {
        struct epoll_event ev[2];
        int n = epoll_wait(w->standby_ep, ev, 2, -1);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; i++) {
            uint64_t expired;
            if (ev[i].data.u32 == 1 && read(w->timer_fd, &expired, sizeof expired) < 0) { /* not yet */ }
        }
        pthread_mutex_lock(&w->mu);
        int stop = w->standby_stop;
        if (!stop && n > 0 && w->kept && !w->kept_lost && w->loop_on && hand_loop_over(w)) {
            w->kept_lost = 1;           /* the keeping thread leads no more */
            w->looping = 0;
            pthread_cond_broadcast(&w->changed);
        }
        pthread_mutex_unlock(&w->mu);
        if (stop) break;
    }
    return NULL;
}

/* The standby's epoll set, timer and thread: 0, or an errno. */
static int start_standby(sesh_workers *w)
{
    w->standby_ep = epoll_create1(EPOLL_CLOEXEC);
    w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
    if (w->standby_ep < 0 || w->timer_fd < 0 || epoll_ctl(w->standby_ep, EPOLL_CTL_ADD, w->timer_fd, &ev) != 0)
        return errno;
    int rc = pthread_create(&w->standby, NULL, standby_main, w);
    if (rc == 0) w->standby_started = 1;
    return rc;
}

static void stop_standby(sesh_workers *w)
{
    if (w->standby_started) {
        pthread_mutex_lock(&w->mu);
        w->standby_stop = 1;
        pthread_mutex_unlock(&w->mu);
        struct itimerspec now = { .it_value = { 0, 1 } };
        timerfd_settime(w->timer_fd, 0, &now, NULL);
        pthread_join(w->standby, NULL);
    }
    if (w->standby_ep >= 0) close(w->standby_ep);
    if (w->timer_fd >= 0) close(w->timer_fd);
}

/* ---- the loop ---- */

/* Runs rounds while the loop is on. The job a round leaves this thread is
 * kept (run here, the loop kept) when it may be; else the loop goes to
 * another thread and this one runs the job. Lock held on entry and on
 * return. */
static void lead(sesh_workers *w)
{
    w->looping = 1;
    sesh_job *mine = NULL;
    while (w->loop_on) {
        if (!mine) {
            pthread_mutex_unlock(&w->mu);
            collect_for = w;
            w->round(w->ctx);
            collect_for = NULL;
            mine = take_collected();
            pthread_mutex_lock(&w->mu);
            if (!mine) continue;
        }
        if (mine->keep_loop && w->busy == 0 && w->watch_fd >= 0) {
            int still = run_keeping_loop(w, mine);
            mine = take_collected();    /* the next request, read as the answer went out */
            if (still) continue;
            run_jobs(w, mine);          /* the standby gave the loop to another thread */
            return;
        }
        if (w->loop_on && !hand_loop_over(w)) {
            enqueue(w, mine);           /* the loop keeps its thread; the job waits */
            mine = NULL;
            continue;
        }
        break;
    }
    w->looping = 0;
    pthread_cond_broadcast(&w->changed);
    run_jobs(w, mine);
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
        run_jobs(w, job);
    }
    if (--w->threads == 0) pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&me.wake);
    return NULL;
}

sesh_workers *sesh_workers_new(int keep, int max, void (*round)(void *ctx), int (*timeout_ms)(void *ctx),
                               void *ctx, char **err)
{
    sesh_workers *w = sesh_xcalloc(1, sizeof *w);
    w->keep = keep < 2 ? 2 : keep;
    w->max = max < w->keep ? w->keep : max;
    w->round = round;
    w->timeout_ms = timeout_ms;
    w->ctx = ctx;
    w->watch_fd = w->standby_ep = w->timer_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->changed, NULL);
    int rc = start_standby(w);
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->keep && rc == 0; i++) rc = start_thread(w);
    pthread_mutex_unlock(&w->mu);
    if (rc != 0) {
        if (err) *err = sesh_printf("cannot start worker threads: %s", strerror(rc));
        sesh_workers_free(w);
        return NULL;
    }
    return w;
}

void sesh_workers_start_loop(sesh_workers *w, int watch_fd)
{
    /* Watched only while a job keeps the loop (standby_arm). */
    struct epoll_event ev = { .events = 0, .data.u32 = 0 };
    if (watch_fd >= 0 && epoll_ctl(w->standby_ep, EPOLL_CTL_ADD, watch_fd, &ev) != 0) watch_fd = -1;
    pthread_mutex_lock(&w->mu);
    w->watch_fd = watch_fd;
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

void sesh_workers_loop_work(sesh_workers *w, int on)
{
    if (on) unwatch(w);
    collect_for = on ? w : NULL;
}

void sesh_workers_submit(sesh_workers *w, sesh_job *job)
{
    job->next = NULL;
    if (collect_for == w && !collected) {       /* this thread runs it next */
        collected = job;
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
    stop_standby(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->changed);
    free(w);
}
