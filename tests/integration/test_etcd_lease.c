/* test_etcd_lease.c -- the etcd client's leases against a real etcd: a key attached to a lease
 * stays while the keep-alive runs (several TTLs), and disappears about one TTL after the
 * keep-alive stops; a revoked lease is reported lost on the fd and can be re-granted. */
#include "check.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define TTL 3

static etcdh H;
static etcd_client *C;
static bool up;

static bool need_etcd(void)
{
    if (!up)
        check_skip("etcd not available (install etcd-server etcd-client)");
    return up;
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
    /* stop the keep-alive without revoking: gone within about one TTL */
    etcd_lease_free(l);
    int64_t t1 = clock_now_ms();
    while (key_exists("/lease/a") && clock_now_ms() - t1 < (TTL + 5) * 1000)
        usleep(100 * 1000);
    int64_t gone = clock_now_ms() - t1;
    printf("  key gone %lld ms after the keep-alive stopped (TTL %d s)\n", (long long)gone, TTL);
    CHECK(!key_exists("/lease/a"));
    CHECK_MSG(gone >= TTL * 1000 / 3 && gone <= (TTL + 3) * 1000, "gone after %lld ms", (long long)gone);
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
    CHECK_INT(poll(&pfd, 1, (TTL + 3) * 1000), 1);
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
    int ready = poll(&pfd, 1, (TTL + 3) * 1000);
    int64_t took = clock_now_ms() - t0;
    kill(H.m[0].pid, SIGCONT);
    CHECK_INT(ready, 1);
    CHECK(etcd_lease_lost(l));
    etcd_lease_loss(l, &why);
    printf("  silent etcd: loss reported after %lld ms: %s: %s\n", (long long)took,
           etcd_code_name(why.code), why.msg);
    CHECK_MSG(strstr(why.msg, "no keep-alive answer"), "loss reason: %s", why.msg);
    CHECK_MSG(took <= (TTL + 2) * 1000, "took %lld ms", (long long)took);
    CHECK_INT(etcd_lease_regrant(l, &err), 0);
    CHECK_INT(etcd_put(C, "/lease/b", 8, "3", 1, etcd_lease_id(l), NULL, &err), 0);
    CHECK(key_exists("/lease/b"));
    /* revoke deletes the key at once */
    CHECK_INT(etcd_lease_revoke(l, &err), 0);
    CHECK(!key_exists("/lease/b"));
    etcd_lease_free(l);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    if (etcdh_available() && etcdh_start(&H, 1) == 0) {
        etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 5000};
        etcd_error err = {0};
        up = etcd_client_new(&cfg, &C, &err) == 0;
    }
    check_run("keepalive_then_expiry", test_keepalive_then_expiry);
    check_run("lost_and_regrant", test_lost_and_regrant);
    etcd_client_free(C);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
