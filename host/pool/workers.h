/*
 * workers.h — the pool's threads: they take turns running the HTTP event
 * loop, and run what may block (an execution, anything that waits for a
 * sandbox or a session's lock, a listing, an upload's writes) so that the
 * loop never waits.
 *
 * The loop: while it is on, one thread at a time runs round(ctx) (wait for
 * events, handle them). The first job a round submits stays with the thread
 * that ran it, which hands the loop to another thread when the round is over
 * and runs the job itself: the thread that read a request runs its
 * operation at once, warm, with no hand-over in between (leader and
 * followers). The loop is never left without a thread: when no other can
 * be had (max threads, all busy), that job is queued instead.
 *
 * Jobs: a function and the caller's struct around it (embed sesh_job,
 * recover the struct with offsetof). A job goes to the thread idle most
 * recently, else waits in a queue, in submission order; threads are started
 * on demand up to `max` and kept `keep` at least, an idle one beyond that
 * ends after half a minute. When all `max` are busy jobs wait for the first
 * that frees up (a line in the log says so, at most once a minute): every
 * job ends (executions have a timeout), so nothing waits for ever.
 *
 * Thread rules: sesh_workers_submit() from any thread, jobs and rounds
 * included; the rest from one thread that is not one of these.
 */
#ifndef SESH_POOL_WORKERS_H
#define SESH_POOL_WORKERS_H

typedef struct sesh_job {
    void (*run)(struct sesh_job *job);  /* may free the struct around job */
    struct sesh_job *next;              /* the queue's */
} sesh_job;

typedef struct sesh_workers sesh_workers;

/* Starts `keep` threads (at least 2: the loop's and one more). NULL, with a
 * malloc'd *err, when even those cannot be started. The loop is off. */
sesh_workers *sesh_workers_new(int keep, int max, void (*round)(void *ctx), void *ctx, char **err);
void sesh_workers_start_loop(sesh_workers *w);
/* Once this returns no thread runs a round, nor will again. wake(ctx) must
 * make a round under way return soon. */
void sesh_workers_stop_loop(sesh_workers *w, void (*wake)(void *ctx));
void sesh_workers_submit(sesh_workers *w, sesh_job *job);
/* Runs every job queued (jobs may still submit more), then ends the threads.
 * The loop must be stopped. */
void sesh_workers_free(sesh_workers *w);

#endif
