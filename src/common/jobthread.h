/* jobthread.h -- one thread that runs an event loop's blocking jobs (etcd calls, kernel
 * dumps) so that the loop never waits on them.
 *
 * Jobs sit in slots: at most one job per slot is queued, running or done-but-not-taken. The
 * thread runs queued jobs one at a time, lowest slot first, and signals each finished one on
 * an eventfd the loop polls; the loop takes it back. Only the loop submits and takes.
 *
 * Stopping never waits on a job longer than the caller says: a job still running then is
 * left to finish, and the thread frees everything (the jobs, the owner's context, itself)
 * when it returns. */
#ifndef CLUSTERF_COMMON_JOBTHREAD_H
#define CLUSTERF_COMMON_JOBTHREAD_H

#include <stdbool.h>

typedef struct jobthread jobthread;

/* What the owner supplies. ctx is the owner's, passed back to each. */
typedef struct jobthread_ops {
    /* Run job (of slot) on the thread; the results go into the job itself. */
    void (*run)(void *ctx, int slot, void *job);
    /* Free a job nobody will take (queued or done when the thread stops). */
    void (*job_free)(void *ctx, int slot, void *job);
    /* Free the owner's context, after every job; called once, by jobthread_free or by the
     * thread it left running. May be NULL. */
    void (*ctx_free)(void *ctx);
} jobthread_ops;

enum { JOBTHREAD_SLOTS_MAX = 8 };

/* Start the thread with `slots` slots (1..JOBTHREAD_SLOTS_MAX). ops must outlive it.
 * 0 or -errno; on failure nothing of ctx is freed. */
int jobthread_new(const jobthread_ops *ops, void *ctx, int slots, jobthread **out);
/* Readable while a done job waits to be taken. */
int jobthread_fd(const jobthread *t);
/* True while slot holds a job (queued, running, or done and not taken). */
bool jobthread_busy(jobthread *t, int slot);
/* Queue job in slot: 0, or -EBUSY (the slot holds one; the caller keeps job). */
int jobthread_submit(jobthread *t, int slot, void *job);
/* Take a done job (lowest slot first): true with *slot and *job set, false when none. */
bool jobthread_take(jobthread *t, int *slot, void **job);
/* True once jobthread_free was called: a long job may stop early (its result is not taken). */
bool jobthread_stopping(const jobthread *t);
/* Stop taking jobs, wait up to wait_ms for a running one, and free every job not taken, the
 * context (ops->ctx_free) and the thread: now, or on the thread when its job returns. */
void jobthread_free(jobthread *t, unsigned wait_ms);

#endif
