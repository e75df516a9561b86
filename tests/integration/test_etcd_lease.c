/* test_etcd_lease.c -- the etcd client's leases against a real etcd: a key attached to a lease
 * stays while the keep-alive runs (several TTLs), and disappears about one TTL after the
 * keep-alive stops; a revoked lease is reported lost on the fd and can be re-granted; a lease
 * granted but not set up locally (no descriptor left) is revoked, not left on the server. */
#include "check.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define TTL 3

static etcdh H;
static etcd_client *C;
static int etcd_rc;  /* etcdh_start(): 0, -ENOENT (a skip), else a failure */

static bool need_etcd(void)
{
    return check_need(etcd_rc, "etcd (etcd-server etcd-client)");
}

static bool key_exists(const char *key)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    if (etcd_get(C, key, strlen(key), &kvs, NULL, &err) < 0)
        printf("  get %s: %s\n", key, err.msg);
    bool there = kvs != NULL;
    etcd_kvs_free(kvs);
    return there;
}

static void test_keepalive_then_expiry(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    etcd_lease *l = NULL;
    CHECK_INT(etcd_lease_new(C, TTL, &l, &err), 0);
    if (!l)
        return;
    CHECK(etcd_lease_id(l) != 0);
    CHECK_INT(etcd_lease_ttl(l), TTL);
    CHECK_INT(etcd_put(C, "/lease/a", 8, "1", 1, etcd_lease_id(l), NULL, &err), 0);
    /* 2.5 TTLs with the keep-alive running: the key stays, the lease is not lost */
    int64_t t0 = clock_now_ms();
    bool stayed = true;
    while (clock_now_ms() - t0 < 5 * TTL * 1000 / 2) {
        stayed = stayed && key_exists("/lease/a");
        usleep(250 * 1000);
    }
    CHECK(stayed);
    struct pollfd pfd = {.fd = etcd_lease_fd(l), .events = POLLIN};
    CHECK_INT(poll(&pfd, 1, 0), 0);
    CHECK(!etcd_lease_lost(l));
    /* stop the keep-alive without revoking: not gone at once (no revoke), but it expires */
    etcd_lease_free(l);
    int64_t t1 = clock_now_ms();
    while (key_exists("/lease/a") && clock_now_ms() - t1 < 60000)
        usleep(100 * 1000);
    int64_t gone = clock_now_ms() - t1;
    printf("  key gone %lld ms after the keep-alive stopped (TTL %d s)\n", (long long)gone, TTL);
    CHECK(!key_exists("/lease/a"));
    CHECK_MSG(gone >= TTL * 1000 / 3, "gone after %lld ms: revoked, not expired", (long long)gone);
}

static void test_lost_and_regrant(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    etcd_lease *l = NULL;
    CHECK_INT(etcd_lease_new(C, TTL, &l, &err), 0);
    if (!l)
        return;
    int64_t id = etcd_lease_id(l);
    CHECK_INT(etcd_put(C, "/lease/b", 8, "1", 1, id, NULL, &err), 0);
    /* someone else revokes it: the keep-alive answer says TTL 0 -> lost */
    CHECK_INT(etcdh_ctl(&H, "lease revoke %llx", (unsigned long long)id), 0);
    struct pollfd pfd = {.fd = etcd_lease_fd(l), .events = POLLIN};
    int64_t t0 = clock_now_ms();
    CHECK_INT(poll(&pfd, 1, 60000), 1);
    printf("  loss reported %lld ms after the revoke\n", (long long)(clock_now_ms() - t0));
    CHECK(etcd_lease_lost(l));
    etcd_error why = {0};
    etcd_lease_loss(l, &why);
    printf("  revoked: %s: %s\n", etcd_code_name(why.code), why.msg);
    CHECK_MSG(strstr(why.msg, "TTL 0"), "loss reason: %s", why.msg);
    CHECK(!key_exists("/lease/b"));
    CHECK_INT(poll(&pfd, 1, 0), 0);  /* the fd was cleared */
    /* re-grant in place and re-put */
    CHECK_INT(etcd_lease_regrant(l, &err), 0);
    CHECK(etcd_lease_id(l) != id);
    CHECK(!etcd_lease_lost(l));
    etcd_lease_loss(l, &why);
    CHECK_INT(why.code, 0);  /* cleared by the re-grant */
    CHECK_INT(etcd_put(C, "/lease/b", 8, "2", 1, etcd_lease_id(l), NULL, &err), 0);
    usleep((TTL * 1000 + 1000) * 1000);
    CHECK(key_exists("/lease/b"));
    CHECK(!etcd_lease_lost(l));
    /* etcd frozen (SIGSTOP): no keep-alive answer within the TTL -> lost */
    kill(H.m[0].pid, SIGSTOP);
    t0 = clock_now_ms();
    int ready = poll(&pfd, 1, 60000);
    int64_t took = clock_now_ms() - t0;
    kill(H.m[0].pid, SIGCONT);
    CHECK_INT(ready, 1);
    CHECK(etcd_lease_lost(l));
    etcd_lease_loss(l, &why);
    printf("  silent etcd: loss reported after %lld ms (TTL %d s): %s: %s\n", (long long)took, TTL,
           etcd_code_name(why.code), why.msg);
    CHECK_MSG(strstr(why.msg, "no keep-alive answer"), "loss reason: %s", why.msg);
    CHECK_INT(etcd_lease_regrant(l, &err), 0);
    CHECK_INT(etcd_put(C, "/lease/b", 8, "3", 1, etcd_lease_id(l), NULL, &err), 0);
    CHECK(key_exists("/lease/b"));
    /* revoke deletes the key at once */
    CHECK_INT(etcd_lease_revoke(l, &err), 0);
    CHECK(!key_exists("/lease/b"));
    etcd_lease_free(l);
}

/* The number of leases etcd holds (etcdctl lease list: "found N leases"), or -1. */
static int lease_count(void)
{
    char path[300], line[128];
    int n = -1;
    snprintf(path, sizeof path, "%s/leases.txt", H.dir);
    if (etcdh_ctl(&H, "lease list | tee '%s'", path) != 0)
        return -1;
    FILE *f = fopen(path, "r");
    if (f && fgets(line, sizeof line, f) && sscanf(line, "found %d leases", &n) != 1)
        n = -1;
    if (f)
        fclose(f);
    return n;
}

/* Every descriptor taken under a lowered RLIMIT_NOFILE, so the next open fails (EMFILE);
 * fds_release gives them back. */
static int held[1100], n_held;
static struct rlimit saved_limit;

static bool fds_squeeze(void)
{
    if (getrlimit(RLIMIT_NOFILE, &saved_limit) < 0)
        return false;
    struct rlimit low = {1024, saved_limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &low) < 0)
        return false;
    int fd;
    n_held = 0;
    while (n_held < 1100 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        held[n_held++] = fd;
    return errno == EMFILE;
}

static void fds_release(void)
{
    while (n_held > 0)
        close(held[--n_held]);
    setrlimit(RLIMIT_NOFILE, &saved_limit);
}

/* Granted on the server, then unusable here (no descriptor left for its eventfd): the lease is
 * revoked at once instead of staying on the server until its TTL runs out. */
static void test_local_failure_revokes(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    etcd_lease *l = NULL;
    CHECK_INT(etcd_put(C, "/lease/warm", 11, "1", 1, 0, NULL, &err), 0); /* channel up */
    int before = lease_count();
    CHECK_MSG(before >= 0, "etcdctl lease list failed");
    bool squeezed = fds_squeeze();
    int rc = squeezed ? etcd_lease_new(C, 60, &l, &err) : 0;
    fds_release();
    if (!CHECK_MSG(squeezed, "cannot squeeze descriptors: %s", strerror(errno)))
        return;
    printf("  etcd_lease_new without descriptors: %d %s\n", rc, err.msg);
    CHECK_INT(rc, -EMFILE);
    CHECK(l == NULL);
    CHECK_MSG(strstr(err.msg, "revoked") != NULL, "the lease was granted and revoked: %s",
              err.msg);
    CHECK_INT(lease_count(), before);
    etcd_lease_free(l);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    etcd_rc = etcdh_start(&H, 1);
    if (etcd_rc == 0) {
        etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 5000};
        etcd_error err = {0};
        if (etcd_client_new(&cfg, &C, &err) < 0)
            etcd_rc = -EIO;
    }
    check_run("keepalive_then_expiry", test_keepalive_then_expiry);
    check_run("lost_and_regrant", test_lost_and_regrant);
    check_run("local_failure_revokes", test_local_failure_revokes);
    etcd_client_free(C);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
