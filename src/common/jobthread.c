/* jobthread.c -- one thread for an event loop's blocking jobs, handed over in slots under a
 * mutex and handed back through an eventfd (see jobthread.h). */
#include "common/jobthread.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum slot_state { SLOT_IDLE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

struct jobthread {
    const jobthread_ops *ops;
    void *ctx;
    int slots;
    int efd;                 /* readable while a job is DONE */
    pthread_t thread;
    pthread_mutex_t mu;      /* guards everything below */
    pthread_cond_t cond;
    enum slot_state state[JOBTHREAD_SLOTS_MAX];
    void *job[JOBTHREAD_SLOTS_MAX];
    bool stop;               /* jobthread_free was called: run no more jobs */
    bool exited;             /* the thread is past its last use of t */
    bool abandoned;          /* freed while a job ran: the thread frees t */
};

/* Everything but the thread, which is gone or is the caller: jobs not taken, then ctx. */
static void destroy(jobthread *t)
{
    for (int k = 0; k < t->slots; k++)
        if (t->state[k] != SLOT_IDLE)
            t->ops->job_free(t->ctx, k, t->job[k]);
    if (t->ops->ctx_free)
        t->ops->ctx_free(t->ctx);
    close(t->efd);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cond);
    free(t);
}

/* The first queued slot, or -1. Called under mu. */
static int next_queued(const jobthread *t)
{
    for (int k = 0; k < t->slots; k++)
        if (t->state[k] == SLOT_QUEUED)
            return k;
    return -1;
}

/* Run slot k's job outside the lock and mark it done. Called and returns with mu held. */
static void run_slot(jobthread *t, int k)
{
    t->state[k] = SLOT_RUNNING;
    void *job = t->job[k];
    pthread_mutex_unlock(&t->mu);
    t->ops->run(t->ctx, k, job);
    pthread_mutex_lock(&t->mu);
    t->state[k] = SLOT_DONE;
    uint64_t one = 1;
    if (write(t->efd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is already non-zero, the loop will look */
    }
}

static void *thread_main(void *arg)
{
    jobthread *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int k = next_queued(t);
        if (k < 0)
            pthread_cond_wait(&t->cond, &t->mu);
        else
            run_slot(t, k);
    }
    bool abandoned = t->abandoned;
    t->exited = true;
    pthread_mutex_unlock(&t->mu);
    if (abandoned)
        destroy(t);
    return NULL;
}

int jobthread_new(const jobthread_ops *ops, void *ctx, int slots, jobthread **out)
{
    *out = NULL;
    if (slots < 1 || slots > JOBTHREAD_SLOTS_MAX)
        return -EINVAL;
    jobthread *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    *t = (jobthread){.ops = ops, .ctx = ctx, .slots = slots};
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->efd < 0) {
        int rc = -errno;
        free(t);
        return rc;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cond, NULL);
    int rc = -pthread_create(&t->thread, NULL, thread_main, t);
    if (rc < 0) {
        close(t->efd);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cond);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int jobthread_fd(const jobthread *t)
{
    return t->efd;
}

bool jobthread_busy(jobthread *t, int slot)
{
    pthread_mutex_lock(&t->mu);
    bool busy = t->state[slot] != SLOT_IDLE;
    pthread_mutex_unlock(&t->mu);
    return busy;
}

int jobthread_submit(jobthread *t, int slot, void *job)
{
    pthread_mutex_lock(&t->mu);
    int rc = -EBUSY;
    if (t->state[slot] == SLOT_IDLE) {
        t->job[slot] = job;
        t->state[slot] = SLOT_QUEUED;
        pthread_cond_signal(&t->cond);
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

bool jobthread_take(jobthread *t, int *slot, void **job)
{
    uint64_t n;
    if (read(t->efd, &n, sizeof n) < 0) {
        /* EAGAIN: nothing signalled since the last take; look anyway */
    }
    bool found = false;
    pthread_mutex_lock(&t->mu);
    for (int k = 0; k < t->slots && !found; k++) {
        if (t->state[k] != SLOT_DONE)
            continue;
        *slot = k;
        *job = t->job[k];
        t->job[k] = NULL;
        t->state[k] = SLOT_IDLE;
        found = true;
    }
    if (!found) {
        *slot = -1;
        *job = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

bool jobthread_stopping(const jobthread *t)
{
    return __atomic_load_n(&t->stop, __ATOMIC_RELAXED); /* read by run() without the lock */
}

/* True when the thread ended within wait_ms (joined). */
static bool join_within(jobthread *t, unsigned wait_ms)
{
    if (!wait_ms)
        return false;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return pthread_timedjoin_np(t->thread, NULL, &until) == 0;
}

void jobthread_free(jobthread *t, unsigned wait_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->stop, true, __ATOMIC_RELAXED);
    bool running = false;
    for (int k = 0; k < t->slots; k++)
        running |= t->state[k] == SLOT_RUNNING;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    if (running && join_within(t, wait_ms)) {
        destroy(t);
        return;
    }
    if (running) {
        pthread_mutex_lock(&t->mu);
        t->abandoned = !t->exited; /* unless it ended just after the wait */
        bool abandoned = t->abandoned;
        pthread_mutex_unlock(&t->mu);
        if (abandoned) {
            pthread_detach(t->thread); /* it frees t when its job returns */
            return;
        }
    }
    pthread_join(t->thread, NULL);
    destroy(t);
}
