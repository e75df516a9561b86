/* ipvsd_etcd_worker.c -- the one thread that makes clusterf-ipvs's blocking etcd calls (the
 * paged Range of the prefix; lease grant, regrant and revoke, and the put of the advertised
 * route; the Status probe of the metrics), so that the event loop never waits on the network.
 * The loop submits a job (at most one per kind in flight: a common/jobthread slot per kind),
 * the thread runs it and hands it back. Nothing is logged here: the loop logs what comes back.
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

#include "common/jobthread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ipvsd_worker {
    jobthread *thread;       /* a slot per enum ipvsd_job_kind */
    etcd_client *etcd;
    char *prefix;            /* "<prefix>/", the Range of a READ */
    char *route_key;         /* "<prefix>/routes/<name>", or NULL without an advertised route */
    char *route_json;
    int64_t ttl_s;
};

/* Free a job and what it still holds (a result nobody took, a lease handed over). */
static void job_free(void *ctx, int slot, void *arg)
{
    (void)ctx, (void)slot;
    ipvsd_job *job = arg;
    etcd_kvs_free(job->kvs);
    etcd_lease_free(job->lease);
    free(job);
}

/* The worker's settings and client, after every job. */
static void worker_destroy(void *arg)
{
    ipvsd_worker *w = arg;
    etcd_client_free(w->etcd);
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

static void run_job(void *ctx, int slot, void *arg)
{
    ipvsd_worker *w = ctx;
    ipvsd_job *job = arg;
    (void)slot;
    if (job->kind == IPVSD_JOB_READ)
        run_read(w, job);
    else if (job->kind == IPVSD_JOB_ADVERTISE)
        run_advertise(w, job);
    else
        run_probe(w, job);
}

static const jobthread_ops worker_ops = {.run = run_job, .job_free = job_free,
                                         .ctx_free = worker_destroy};

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
    int rc = worker_settings(w, o);
    if (rc == 0)
        rc = jobthread_new(&worker_ops, w, IPVSD_JOB_KINDS, &w->thread);
    if (rc < 0) {
        worker_destroy(w); /* etcd still NULL: the caller keeps the client */
        return rc;
    }
    w->etcd = etcd;
    *out = w;
    return 0;
}

void ipvsd_worker_free(ipvsd_worker *w)
{
    if (w)
        jobthread_free(w->thread, 0); /* frees w now, or when a hung call returns */
}

etcd_client *ipvsd_worker_client(const ipvsd_worker *w)
{
    return w->etcd;
}

int ipvsd_worker_fd(const ipvsd_worker *w)
{
    return jobthread_fd(w->thread);
}

bool ipvsd_worker_busy(ipvsd_worker *w, enum ipvsd_job_kind kind)
{
    return jobthread_busy(w->thread, kind);
}

int ipvsd_worker_submit(ipvsd_worker *w, enum ipvsd_job_kind kind, etcd_lease *lease)
{
    if (kind == IPVSD_JOB_ADVERTISE && !w->route_key)
        return -EBUSY;
    ipvsd_job *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    *job = (ipvsd_job){.kind = kind, .lease = lease};
    int rc = jobthread_submit(w->thread, kind, job);
    if (rc < 0)
        free(job); /* the lease stays the caller's */
    return rc;
}

bool ipvsd_worker_take(ipvsd_worker *w, ipvsd_job *out)
{
    int slot;
    void *job;
    if (!jobthread_take(w->thread, &slot, &job))
        return false;
    *out = *(ipvsd_job *)job;
    free(job);
    return true;
}
