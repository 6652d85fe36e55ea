/*
 * workers.c — see workers.h.
 *
 * One mutex guards the queue and the counts. A job submitted while fewer
 * threads are idle than jobs wait starts a thread (below max), so jobs
 * submitted together run together rather than one after the other on the
 * one thread that happened to be idle. Threads are detached: the last one
 * to end tells sesh_workers_free, which waits for the count to reach zero.
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

struct sesh_workers {
    pthread_mutex_t mu;
    pthread_cond_t work;        /* a job was queued, or stopping */
    pthread_cond_t ended;       /* a thread ended */
    sesh_job *head, *tail;
    int queued;
    int threads, idle, keep, max;
    int stopping;
    uint64_t busy_logged_ms;
};

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

/* Waits for a job; NULL when this thread should end. Lock held. */
static sesh_job *next_job(sesh_workers *w)
{
    while (!w->head) {
        if (w->stopping) return NULL;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += IDLE_END_S;
        w->idle++;
        int rc = pthread_cond_timedwait(&w->work, &w->mu, &until);
        w->idle--;
        if (rc == ETIMEDOUT && !w->head && w->threads > w->keep) return NULL;
    }
    sesh_job *job = w->head;
    w->head = job->next;
    if (!w->head) w->tail = NULL;
    w->queued--;
    return job;
}

static void *worker_main(void *arg)
{
    sesh_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        sesh_job *job = next_job(w);
        if (!job) break;
        pthread_mutex_unlock(&w->mu);
        job->next = NULL;
        job->run(job);
        pthread_mutex_lock(&w->mu);
    }
    if (--w->threads == 0) pthread_cond_broadcast(&w->ended);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

sesh_workers *sesh_workers_new(int keep, int max, char **err)
{
    sesh_workers *w = sesh_xcalloc(1, sizeof *w);
    w->keep = keep < 1 ? 1 : keep;
    w->max = max < w->keep ? w->keep : max;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->ended, NULL);
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

void sesh_workers_submit(sesh_workers *w, sesh_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail) w->tail->next = job;
    else w->head = job;
    w->tail = job;
    w->queued++;
    if (w->queued > w->idle) {
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
    }
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

void sesh_workers_free(sesh_workers *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->work);
    while (w->threads > 0) pthread_cond_wait(&w->ended, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->ended);
    free(w);
}
