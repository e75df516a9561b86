/* test_ipvsd_worker.c -- clusterf-ipvs's etcd worker (src/ipvsd/ipvsd_etcd_worker.c) against a
 * real etcd: a READ job hands back the prefix at one revision, an ADVERTISE job grants a lease
 * and puts the route under it (and re-grants a lost one), results arrive through the eventfd;
 * with etcd frozen by SIGSTOP, submitting never blocks and freeing the worker in the middle of
 * a call returns at once (the thread finishes and frees everything after the deadline; run
 * under ASan to see that this is clean). */
#include "check.h"
#include "etcd_harness.h"
#include "ipvsd/ipvsd_int.h"
#include "common/timeutil.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ROUTE_JSON "{\"Prefix4\":\"10.77.0.0/16\"}"
#define CALL_TIMEOUT_MS 3000

static etcdh H;
static bool up;

static const ipvsd_options OPTS = {.prefix = "/w", .advertise_name = "host1",
                                   .advertise_json = ROUTE_JSON, .advertise_ttl_s = 5};

static bool need_etcd(void)
{
    if (!up)
        check_skip("etcd not available (install etcd-server etcd-client)");
    return up;
}

/* A worker over a fresh client, or NULL (recorded as a failure). */
static ipvsd_worker *worker_new(int64_t timeout_ms)
{
    etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = timeout_ms};
    etcd_error err = {0};
    etcd_client *c = NULL;
    ipvsd_worker *w = NULL;
    if (!CHECK_MSG(etcd_client_new(&cfg, &c, &err) == 0, "client: %s", err.msg))
        return NULL;
    if (!CHECK(ipvsd_worker_new(c, &OPTS, &w) == 0))
        etcd_client_free(c);
    return w;
}

/* Wait (up to 30 s) for the worker's fd and take one job. */
static bool take(ipvsd_worker *w, ipvsd_job *job)
{
    struct pollfd pfd = {.fd = ipvsd_worker_fd(w), .events = POLLIN};
    for (int64_t end = clock_now_ms() + 30000; clock_now_ms() < end;) {
        if (poll(&pfd, 1, 1000) > 0 && ipvsd_worker_take(w, job))
            return true;
    }
    return CHECK_MSG(false, "no job came back within 30 s");
}

static void test_read(void)
{
    if (!need_etcd())
        return;
    CHECK_INT(etcdh_ctl(&H, "put /w/services/a/frontend x"), 0);
    CHECK_INT(etcdh_ctl(&H, "put /w/routes/r y"), 0);
    CHECK_INT(etcdh_ctl(&H, "put /wx/other z"), 0);
    ipvsd_worker *w = worker_new(CALL_TIMEOUT_MS);
    if (!w)
        return;
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_READ, NULL), 0);
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_READ, NULL), -EBUSY);
    ipvsd_job job;
    if (take(w, &job)) {
        CHECK_INT(job.kind, IPVSD_JOB_READ);
        CHECK_MSG(job.rc == 0, "read: %s", job.err.msg);
        CHECK(job.kvs && job.kvs->n == 2 && job.kvs->revision > 0);
        if (job.kvs && job.kvs->n == 2)
            CHECK_STR((const char *)job.kvs->kvs[1].key, "/w/services/a/frontend");
        etcd_kvs_free(job.kvs);
    }
    CHECK(!ipvsd_worker_busy(w, IPVSD_JOB_READ));
    ipvsd_worker_free(w);
}

/* The route's lease in etcd, 0 when the key is absent. */
static int64_t route_lease(ipvsd_worker *w)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    etcd_get(ipvsd_worker_client(w), "/w/routes/host1", 15, &kvs, NULL, &err);
    int64_t lease = kvs && kvs->n ? kvs->kvs[0].lease : 0;
    etcd_kvs_free(kvs);
    return lease;
}

static void test_advertise_and_regrant(void)
{
    if (!need_etcd())
        return;
    ipvsd_worker *w = worker_new(CALL_TIMEOUT_MS);
    if (!w)
        return;
    ipvsd_job job = {0};
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_ADVERTISE, NULL), 0);
    if (!take(w, &job) || !CHECK_MSG(job.rc == 0 && job.lease, "advertise: %s", job.err.msg)) {
        ipvsd_worker_free(w);
        return;
    }
    int64_t id1 = etcd_lease_id(job.lease);
    CHECK_INT(route_lease(w), id1);
    /* revoke behind its back: the lease is lost; the next job re-grants and re-puts */
    CHECK_INT(etcdh_ctl(&H, "lease revoke %llx", (unsigned long long)id1), 0);
    struct pollfd pfd = {.fd = etcd_lease_fd(job.lease), .events = POLLIN};
    CHECK_INT(poll(&pfd, 1, 30000), 1);
    CHECK(etcd_lease_lost(job.lease));
    CHECK_INT(route_lease(w), 0);
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_ADVERTISE, job.lease), 0);
    if (take(w, &job) && CHECK_MSG(job.rc == 0 && job.lease, "re-advertise: %s", job.err.msg)) {
        CHECK(etcd_lease_id(job.lease) != id1);
        CHECK_INT(route_lease(w), etcd_lease_id(job.lease));
        CHECK(!job.revoked);
    }
    etcd_lease_free(job.lease);
    ipvsd_worker_free(w);
}

/* etcd frozen: the job hangs in its call; free must not wait for it. */
static void test_free_while_etcd_hangs(void)
{
    if (!need_etcd())
        return;
    ipvsd_worker *w = worker_new(CALL_TIMEOUT_MS);
    if (!w)
        return;
    kill(H.m[0].pid, SIGSTOP);
    int64_t t0 = clock_now_ms();
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_ADVERTISE, NULL), 0);
    CHECK_INT(ipvsd_worker_submit(w, IPVSD_JOB_READ, NULL), 0);
    usleep(300 * 1000); /* let the thread get into its call (free is prompt either way) */
    ipvsd_job job;
    CHECK(!ipvsd_worker_take(w, &job));
    ipvsd_worker_free(w);
    int64_t took = clock_now_ms() - t0;
    printf("  submit + free with etcd frozen: %lld ms (call deadline %d ms)\n", (long long)took,
           CALL_TIMEOUT_MS);
    CHECK_MSG(took < CALL_TIMEOUT_MS, "free waited %lld ms for etcd", (long long)took);
    /* the abandoned thread's call ends at its deadline; then it frees the client */
    usleep(2 * CALL_TIMEOUT_MS * 1000);
    kill(H.m[0].pid, SIGCONT);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    up = etcdh_available() && etcdh_start(&H, 1) == 0;
    check_run("read", test_read);
    check_run("advertise_and_regrant", test_advertise_and_regrant);
    check_run("free_while_etcd_hangs", test_free_while_etcd_hangs);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
