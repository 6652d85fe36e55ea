/*
 * workers.h — the threads that run what may block (an execution, anything
 * that waits for a sandbox or a session's lock, a listing, an upload's
 * writes), so that the HTTP event loop never waits.
 *
 * A job is a function and the caller's struct around it (embed sesh_job,
 * recover the struct with offsetof). Jobs run in submission order, each on
 * one thread; threads are started on demand up to `max` and kept `keep` at
 * least, an idle one beyond that ends after half a minute. When all `max`
 * are busy a job waits in the queue for the first that frees up (a line in
 * the log says so, at most once a minute): every job ends (executions have
 * a timeout), so nothing waits forever.
 *
 * Thread rules: sesh_workers_submit() from any thread, jobs included;
 * sesh_workers_free() once, from a thread that is not a worker.
 */
#ifndef SESH_POOL_WORKERS_H
#define SESH_POOL_WORKERS_H

typedef struct sesh_job {
    void (*run)(struct sesh_job *job);  /* may free the struct around job */
    struct sesh_job *next;              /* the queue's */
} sesh_job;

typedef struct sesh_workers sesh_workers;

/* Starts `keep` threads (at least 1). NULL, with a malloc'd *err, when even
 * those cannot be started. */
sesh_workers *sesh_workers_new(int keep, int max, char **err);
void sesh_workers_submit(sesh_workers *w, sesh_job *job);
/* Runs every job queued (jobs may still submit more), then ends the threads. */
void sesh_workers_free(sesh_workers *w);

#endif
