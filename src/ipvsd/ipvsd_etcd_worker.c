/* ipvsd_etcd_worker.c -- the one thread that makes clusterf-ipvs's blocking etcd calls (the
 * paged Range of the prefix; lease grant, regrant and revoke, and the put of the advertised
 * route; the Status probe of the metrics), so that the event loop never waits on the network. The loop submits a job (at most
 * one per kind in flight), the thread runs it, and hands it back through a slot under a mutex
 * and an eventfd the loop polls. Nothing is logged here: the loop logs what comes back.
 *
 * Thread safety (src/etcd/call.c, lease.c): a unary call waits on its own pluck completion
 * queue and takes the client's lock only to pick the endpoint and the token, so this thread
 * may call while the client thread runs the watch and the keep-alives and the loop takes
 * watch batches. A lease is used by one side at a time: the loop hands it over with an
 * ADVERTISE job (after taking its fd out of epoll) and gets it back with the result.
 *
 * The worker owns the etcd client. Free of an idle worker joins the thread and frees the
 * client; free during a call (etcd hung) detaches the thread, which frees everything itself
 * once the call's deadline has passed: the loop does not wait for etcd, even to exit. */
#include "ipvsd/ipvsd_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum slot_state { SLOT_IDLE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

struct ipvsd_worker {
    etcd_client *etcd;
    char *prefix;            /* "<prefix>/", the Range of a READ */
    char *route_key;         /* "<prefix>/routes/<name>", or NULL without an advertised route */
    char *route_json;
    int64_t ttl_s;
    int efd;                 /* readable while a job is DONE */
    pthread_t thread;
    pthread_mutex_t mu;      /* guards everything below */
    pthread_cond_t cond;
    enum slot_state state[IPVSD_JOB_KINDS];
    ipvsd_job job[IPVSD_JOB_KINDS];
    bool stop;               /* free was called: take no more jobs */
    bool abandoned;          /* free was called during a job: the thread frees the worker */
};

/* Free what a job still holds (a result nobody took, a lease handed over). */
static void job_release(ipvsd_job *job)
{
    etcd_kvs_free(job->kvs);
    etcd_lease_free(job->lease);
    job->kvs = NULL;
    job->lease = NULL;
}

/* Everything but the thread; the caller made sure the thread is gone or is the caller. */
static void worker_destroy(ipvsd_worker *w)
{
    for (int k = 0; k < IPVSD_JOB_KINDS; k++)
        job_release(&w->job[k]);
    etcd_client_free(w->etcd);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w->prefix);
    free(w->route_key);
    free(w->route_json);
    free(w);
}

static void run_read(ipvsd_worker *w, ipvsd_job *job)
{
    job->rc = etcd_range_prefix(w->etcd, w->prefix, strlen(w->prefix), 0, &job->kvs, &job->err);
}

/* Grant a lease (or re-grant a lost one) and put the route under it. A lease granted here
 * whose put then failed carries nothing: it is revoked on the server rather than leaked. */
static void run_advertise(ipvsd_worker *w, ipvsd_job *job)
{
    int rc = 0;
    if (!job->lease)
        rc = etcd_lease_new(w->etcd, w->ttl_s, &job->lease, &job->err);
    else if (etcd_lease_lost(job->lease))
        rc = etcd_lease_regrant(job->lease, &job->err);
    if (rc == 0) {
        rc = etcd_put(w->etcd, w->route_key, strlen(w->route_key), w->route_json,
                      strlen(w->route_json), etcd_lease_id(job->lease), NULL, &job->err);
        if (rc < 0) {
            job->revoked = true;
            job->revoke_rc = etcd_lease_revoke(job->lease, &job->revoke_err);
            etcd_lease_free(job->lease);
            job->lease = NULL;
        }
    }
    job->rc = rc;
}

static void run_probe(ipvsd_worker *w, ipvsd_job *job)
{
    uint64_t leader = 0, member = 0;
    job->rc = etcd_status(w->etcd, &leader, &member, &job->err);
    if (job->rc == 0 && !leader)
        job->rc = -EAGAIN; /* reached, but it has no leader: not usable */
}

/* The first queued slot, READ before ADVERTISE; -1 when none. Called under mu. */
static int next_queued(const ipvsd_worker *w)
{
    for (int k = 0; k < IPVSD_JOB_KINDS; k++)
        if (w->state[k] == SLOT_QUEUED)
            return k;
    return -1;
}

/* Run one job outside the lock and publish it. Called and returns with mu held. */
static void run_slot(ipvsd_worker *w, int k)
{
    w->state[k] = SLOT_RUNNING;
    ipvsd_job job = w->job[k];
    pthread_mutex_unlock(&w->mu);
    if (job.kind == IPVSD_JOB_READ)
        run_read(w, &job);
    else if (job.kind == IPVSD_JOB_ADVERTISE)
        run_advertise(w, &job);
    else
        run_probe(w, &job);
    pthread_mutex_lock(&w->mu);
    w->job[k] = job;
    w->state[k] = SLOT_DONE;
    uint64_t one = 1;
    if (!w->stop && write(w->efd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is already non-zero, the loop will look */
    }
}

static void *worker_main(void *arg)
{
    ipvsd_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int k = next_queued(w);
        if (k < 0)
            pthread_cond_wait(&w->cond, &w->mu);
        else
            run_slot(w, k);
    }
    bool abandoned = w->abandoned;
    pthread_mutex_unlock(&w->mu);
    if (abandoned)
        worker_destroy(w);
    return NULL;
}

/* Copy the settings; 0 or -ENOMEM. */
static int worker_settings(ipvsd_worker *w, const ipvsd_options *o)
{
    if (asprintf(&w->prefix, "%s/", o->prefix) < 0) {
        w->prefix = NULL;
        return -ENOMEM;
    }
    if (!o->advertise_name)
        return 0;
    if (asprintf(&w->route_key, "%s/routes/%s", o->prefix, o->advertise_name) < 0) {
        w->route_key = NULL;
        return -ENOMEM;
    }
    w->ttl_s = o->advertise_ttl_s;
    return (w->route_json = strdup(o->advertise_json)) ? 0 : -ENOMEM;
}

int ipvsd_worker_new(etcd_client *etcd, const ipvsd_options *o, ipvsd_worker **out)
{
    *out = NULL;
    ipvsd_worker *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = w->efd < 0 ? -errno : worker_settings(w, o);
    if (rc == 0 && (rc = -pthread_create(&w->thread, NULL, worker_main, w)) == 0) {
        w->etcd = etcd;
        *out = w;
        return 0;
    }
    worker_destroy(w); /* etcd still NULL: the caller keeps the client */
    return rc;
}

void ipvsd_worker_free(ipvsd_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    for (int k = 0; k < IPVSD_JOB_KINDS; k++)
        w->abandoned |= w->state[k] == SLOT_RUNNING;
    bool abandoned = w->abandoned;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (abandoned) {
        pthread_detach(w->thread); /* it frees w when its call returns */
        return;
    }
    pthread_join(w->thread, NULL);
    worker_destroy(w);
}

etcd_client *ipvsd_worker_client(const ipvsd_worker *w)
{
    return w->etcd;
}

int ipvsd_worker_fd(const ipvsd_worker *w)
{
    return w->efd;
}

bool ipvsd_worker_busy(ipvsd_worker *w, enum ipvsd_job_kind kind)
{
    pthread_mutex_lock(&w->mu);
    bool busy = w->state[kind] != SLOT_IDLE;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

int ipvsd_worker_submit(ipvsd_worker *w, enum ipvsd_job_kind kind, etcd_lease *lease)
{
    pthread_mutex_lock(&w->mu);
    int rc = -EBUSY;
    if (w->state[kind] == SLOT_IDLE && !(kind == IPVSD_JOB_ADVERTISE && !w->route_key)) {
        w->job[kind] = (ipvsd_job){.kind = kind, .lease = lease};
        w->state[kind] = SLOT_QUEUED;
        pthread_cond_signal(&w->cond);
        rc = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

bool ipvsd_worker_take(ipvsd_worker *w, ipvsd_job *out)
{
    uint64_t n;
    if (read(w->efd, &n, sizeof n) < 0) {
        /* EAGAIN: nothing signalled since the last take; look anyway */
    }
    bool found = false;
    pthread_mutex_lock(&w->mu);
    for (int k = 0; k < IPVSD_JOB_KINDS && !found; k++) {
        if (w->state[k] != SLOT_DONE)
            continue;
        *out = w->job[k];
        w->job[k] = (ipvsd_job){0};
        w->state[k] = SLOT_IDLE;
        found = true;
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}
