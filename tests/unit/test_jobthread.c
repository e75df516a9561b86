/* test_jobthread.c -- common/jobthread: jobs run on the thread and come back through the
 * eventfd, lowest slot first; one job per slot; free frees the jobs not taken and the
 * context; free during a job waits at most as long as told, and a job left running frees
 * everything itself when it returns (valgrind/ASan check that nothing leaks or is used after
 * free). */
#include "check.h"
#include "common/jobthread.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ctx_freed;      /* ctx_free calls; read after the thread is known gone */
static int jobs_freed;

struct job {
    int in, out;           /* out = in * 2 once run */
    int sleep_ms;          /* how long run() takes (stops early on jobthread_stopping) */
    bool poll_stop;
    bool saw_stop;
    int *order;            /* run order: appended here */
    int *n_order;
};

struct ctx {
    jobthread *t;
    pthread_mutex_t mu;
    bool run_started;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run(void *c, int slot, void *arg)
{
    struct ctx *ctx = c;
    struct job *j = arg;
    (void)slot;
    pthread_mutex_lock(&ctx->mu);
    ctx->run_started = true;
    pthread_mutex_unlock(&ctx->mu);
    for (int64_t end = now_ms() + j->sleep_ms; now_ms() < end;) {
        if (j->poll_stop && jobthread_stopping(ctx->t)) {
            j->saw_stop = true;
            break;
        }
        usleep(1000);
    }
    if (j->order)
        j->order[(*j->n_order)++] = j->in;
    j->out = j->in * 2;
}

static void job_free(void *c, int slot, void *job)
{
    (void)c, (void)slot;
    __atomic_add_fetch(&jobs_freed, 1, __ATOMIC_SEQ_CST);
    free(job);
}

static void ctx_free(void *c)
{
    struct ctx *ctx = c;
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
    __atomic_add_fetch(&ctx_freed, 1, __ATOMIC_SEQ_CST);
}

static const jobthread_ops ops = {.run = run, .job_free = job_free, .ctx_free = ctx_free};

static struct ctx *start(int slots)
{
    struct ctx *ctx = calloc(1, sizeof *ctx);
    pthread_mutex_init(&ctx->mu, NULL);
    if (jobthread_new(&ops, ctx, slots, &ctx->t) < 0) {
        ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

static struct job *job_new(int in, int sleep_ms)
{
    struct job *j = calloc(1, sizeof *j);
    j->in = in;
    j->sleep_ms = sleep_ms;
    return j;
}

/* Wait (at most 10 s) for a done job. */
static bool wait_take(jobthread *t, int *slot, struct job **job)
{
    struct pollfd p = {.fd = jobthread_fd(t), .events = POLLIN};
    for (int64_t end = now_ms() + 10000; now_ms() < end;) {
        void *v;
        if (jobthread_take(t, slot, &v)) {
            *job = v;
            return true;
        }
        poll(&p, 1, 100);
    }
    return false;
}

/* Wait (at most 5 s) until a job has started to run. */
static void wait_started(struct ctx *ctx)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&ctx->mu);
        bool started = ctx->run_started;
        pthread_mutex_unlock(&ctx->mu);
        if (started)
            return;
        usleep(1000);
    }
}

static void wait_ctx_freed(int want)
{
    for (int i = 0; i < 10000 && __atomic_load_n(&ctx_freed, __ATOMIC_SEQ_CST) < want; i++)
        usleep(1000);
}

static void test_run_and_take(void)
{
    ctx_freed = jobs_freed = 0;
    struct ctx *ctx = start(2);
    if (!CHECK(ctx != NULL))
        return;
    int slot;
    void *none;
    CHECK(!jobthread_take(ctx->t, &slot, &none));
    CHECK_INT(slot, -1);
    struct job *a = job_new(21, 50);
    CHECK_INT(jobthread_submit(ctx->t, 1, a), 0);
    CHECK(jobthread_busy(ctx->t, 1));
    CHECK(!jobthread_busy(ctx->t, 0));
    struct job *b = job_new(5, 0);
    CHECK_INT(jobthread_submit(ctx->t, 1, b), -EBUSY); /* the caller keeps b */
    struct job *got = NULL;
    CHECK(wait_take(ctx->t, &slot, &got));
    CHECK_INT(slot, 1);
    CHECK(got == a);
    CHECK_INT(got ? got->out : 0, 42);
    CHECK(!jobthread_busy(ctx->t, 1));
    CHECK_INT(jobthread_submit(ctx->t, 1, b), 0); /* free again once taken */
    CHECK(wait_take(ctx->t, &slot, &got) && got == b && b->out == 10);
    free(a);
    free(b);
    jobthread_free(ctx->t, 0);
    CHECK_INT(ctx_freed, 1);
    CHECK_INT(jobs_freed, 0);
    jobthread_free(NULL, 0);
    CHECK_INT(jobthread_new(&ops, NULL, 0, &(jobthread *){NULL}), -EINVAL);
    CHECK_INT(jobthread_new(&ops, NULL, JOBTHREAD_SLOTS_MAX + 1, &(jobthread *){NULL}), -EINVAL);
}

/* Jobs queued while another runs go lowest slot first; every done one comes back. */
static void test_slot_order(void)
{
    ctx_freed = jobs_freed = 0;
    struct ctx *ctx = start(3);
    if (!CHECK(ctx != NULL))
        return;
    int order[3], n_order = 0;
    struct job *j[3];
    for (int k = 0; k < 3; k++) {
        j[k] = job_new(10 + k, k == 1 ? 100 : 0);
        j[k]->order = order;
        j[k]->n_order = &n_order;
    }
    CHECK_INT(jobthread_submit(ctx->t, 1, j[1]), 0);
    wait_started(ctx); /* slot 1 runs: queue 2, then 0, behind it */
    CHECK_INT(jobthread_submit(ctx->t, 2, j[2]), 0);
    CHECK_INT(jobthread_submit(ctx->t, 0, j[0]), 0);
    int taken = 0, slot;
    struct job *got;
    while (taken < 3 && wait_take(ctx->t, &slot, &got)) {
        CHECK(got == j[slot]);
        taken++;
    }
    CHECK_INT(taken, 3);
    CHECK_INT(n_order, 3);
    CHECK_INT(order[0], 11);
    CHECK_INT(order[1], 10);
    CHECK_INT(order[2], 12);
    for (int k = 0; k < 3; k++)
        free(j[k]);
    jobthread_free(ctx->t, 0);
    CHECK_INT(ctx_freed, 1);
}

/* Free with a done job and a queued one not taken: both freed, the queued one never run. */
static void test_free_untaken(void)
{
    ctx_freed = jobs_freed = 0;
    struct ctx *ctx = start(2);
    if (!CHECK(ctx != NULL))
        return;
    struct job *done = job_new(1, 0);
    CHECK_INT(jobthread_submit(ctx->t, 0, done), 0);
    struct pollfd p = {.fd = jobthread_fd(ctx->t), .events = POLLIN};
    CHECK_INT(poll(&p, 1, 5000), 1);
    jobthread_free(ctx->t, 0);
    CHECK_INT(jobs_freed, 1);
    CHECK_INT(ctx_freed, 1);
}

/* Free during a long job: a job that looks at jobthread_stopping ends at once and free joins
 * it; one that does not is left running after wait_ms and frees everything when it ends. */
static void test_free_running(void)
{
    ctx_freed = jobs_freed = 0;
    struct ctx *ctx = start(1);
    if (!CHECK(ctx != NULL))
        return;
    struct job *j = job_new(1, 20000);
    j->poll_stop = true;
    CHECK_INT(jobthread_submit(ctx->t, 0, j), 0);
    wait_started(ctx);
    int64_t t0 = now_ms();
    jobthread_free(ctx->t, 5000);
    int64_t waited = now_ms() - t0;
    CHECK(waited < 2000);
    CHECK_INT(jobs_freed, 1);
    CHECK_INT(ctx_freed, 1);

    ctx_freed = jobs_freed = 0;
    ctx = start(1);
    if (!CHECK(ctx != NULL))
        return;
    CHECK_INT(jobthread_submit(ctx->t, 0, job_new(2, 600)), 0);
    wait_started(ctx);
    t0 = now_ms();
    jobthread_free(ctx->t, 100);
    waited = now_ms() - t0;
    CHECK(waited >= 90 && waited < 500);
    CHECK_INT(__atomic_load_n(&ctx_freed, __ATOMIC_SEQ_CST), 0); /* still running */
    wait_ctx_freed(1);
    CHECK_INT(__atomic_load_n(&jobs_freed, __ATOMIC_SEQ_CST), 1);
    CHECK_INT(__atomic_load_n(&ctx_freed, __ATOMIC_SEQ_CST), 1);
    usleep(20000); /* the detached thread returns after ctx_free: let it end before exit */
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("run_and_take", test_run_and_take);
    check_run("slot_order", test_slot_order);
    check_run("free_untaken", test_free_untaken);
    check_run("free_running", test_free_running);
    return check_end();
}
