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
 * Kept loop: when no other job runs and the job is marked keep_loop (its
 * round expects no event for it: the connection waits), the thread keeps the
 * loop while it runs the job, and wakes no other thread; a standby thread
 * watches the loop's descriptor (watch_fd: readable when the loop has work)
 * and its next timeout (timeout_ms(ctx)) meanwhile, and at the first of them
 * hands the loop to another thread, as if the job had not been kept. A lone
 * client's request then costs no hand-over at all.
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
    int keep_loop;                      /* its round's thread may keep the loop (above) */
    struct sesh_job *next;              /* the queue's */
} sesh_job;

typedef struct sesh_workers sesh_workers;

/* Starts `keep` threads (at least 2: the loop's and one more) and the
 * standby. timeout_ms(ctx): milliseconds until the loop must run even with
 * no event (-1: no timeout), called from the thread that keeps the loop.
 * NULL, with a malloc'd *err, when even those cannot be started. The loop is off. */
sesh_workers *sesh_workers_new(int keep, int max, void (*round)(void *ctx), int (*timeout_ms)(void *ctx),
                               void *ctx, char **err);
/* watch_fd: readable when the loop has work (-1: jobs never keep the loop). */
void sesh_workers_start_loop(sesh_workers *w, int watch_fd);
/* Once this returns no thread runs a round, nor will again. wake(ctx) must
 * make a round under way return soon. */
void sesh_workers_stop_loop(sesh_workers *w, void (*wake)(void *ctx));
void sesh_workers_submit(sesh_workers *w, sesh_job *job);
/* Brackets loop work a job does itself (it gives its connection back and
 * runs the loop's work: on = 1 before, 0 after). A thread that keeps the
 * loop has the standby stop watching (the work makes the loop's descriptor
 * readable itself, and does what is ready); the first job the work submits
 * is this thread's, run once the current job returns, as a round's first
 * job is (a kept-alive client's next request, read as its answer went out,
 * runs where the last one did, with no hand-over). */
void sesh_workers_loop_work(sesh_workers *w, int on);
/* Runs every job queued (jobs may still submit more), then ends the threads.
 * The loop must be stopped. */
void sesh_workers_free(sesh_workers *w);

#endif
