/* test_etcd_bounds.c -- the etcd client's memory bounds against a real etcd: a 10k-event
 * burst read by a slow consumer never fills a watch's queue beyond its limit and arrives
 * complete and in order; 1.4 MiB values are read and watched, the byte limit holds them one
 * at a time; a message over the client's receive bound is an error reported to the caller. */
#include "check.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define TXNS 100
#define PER_TXN 100
#define BURST (TXNS * PER_TXN)
#define QUEUE_EVENTS 1000
#define BIG ((size_t)1400 * 1024)  /* under etcd's default 1.5 MiB request limit */

static etcdh H;
static etcd_client *C;
static bool up;

static bool need_etcd(void)
{
    if (!up)
        check_skip("etcd not available (install etcd-server etcd-client)");
    return up;
}

/* Current store revision (from a read of an unused key). */
static int64_t store_revision(void)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    int64_t rev = 0;
    if (etcd_get(C, "/none", 5, &kvs, &rev, &err) < 0)
        check_fail(__FILE__, __LINE__, "get: %s", err.msg);
    etcd_kvs_free(kvs);
    return rev;
}

/* TXNS transactions of PER_TXN puts each: /burst/00000 .. /burst/09999. */
static bool write_burst(void)
{
    static char keys[PER_TXN][24], vals[PER_TXN][24];
    etcd_op ops[PER_TXN];
    for (int t = 0; t < TXNS; t++) {
        for (int i = 0; i < PER_TXN; i++) {
            int n = t * PER_TXN + i;
            ops[i] = (etcd_op){.type = ETCD_OP_PUT, .key = keys[i],
                               .key_len = (size_t)snprintf(keys[i], 24, "/burst/%05d", n),
                               .value = vals[i], .value_len = (size_t)snprintf(vals[i], 24, "v%d", n)};
        }
        etcd_error err = {0};
        bool ok = false;
        if (etcd_txn(C, NULL, 0, ops, PER_TXN, NULL, 0, &ok, NULL, &err) < 0 || !ok)
            return check_fail(__FILE__, __LINE__, "txn %d: %s", t, err.msg);
    }
    return true;
}

/* Event number n of the burst, written at revision first + n / PER_TXN. */
static bool burst_event_ok(const etcd_event *e, int n, int64_t first)
{
    char key[24];
    snprintf(key, sizeof key, "/burst/%05d", n);
    return e->type == ETCD_EVENT_PUT && e->kv.key_len == strlen(key) &&
           memcmp(e->kv.key, key, e->kv.key_len) == 0 && e->kv.mod_revision == first + n / PER_TXN;
}

static void test_burst_slow_consumer(void)
{
    if (!need_etcd())
        return;
    int64_t first = store_revision() + 1;
    etcd_watch *w = NULL;
    etcd_error err = {0};
    CHECK_INT(etcd_watch_new(C, "/burst/", 7, first, &w, &err), 0);
    if (!w)
        return;
    CHECK_INT(etcd_watch_set_queue_limit(w, QUEUE_EVENTS, 64u << 20), 0);
    /* the consumer sleeps through the whole burst, then takes slowly */
    if (write_burst()) {
        int got = 0, takes = 0, bad = -1;
        size_t peak = 0;
        for (int64_t end = clock_now_ms() + 120000; got < BURST && clock_now_ms() < end;) {
            struct pollfd pfd = {.fd = etcd_watch_fd(w), .events = POLLIN};
            etcd_watch_batch *b = NULL;
            if (poll(&pfd, 1, 1000) <= 0 || etcd_watch_take(w, &b) != 1)
                continue;
            takes++;
            peak = b->n > peak ? b->n : peak;
            for (size_t i = 0; i < b->n; i++, got++)
                if (bad < 0 && (got >= BURST || !burst_event_ok(&b->events[i], got, first)))
                    bad = got;
            CHECK_MSG(b->err.code == 0, "watch error: %s", b->err.msg);
            etcd_watch_batch_free(b);
            usleep(10 * 1000);
        }
        printf("  %d events in %d takes, largest take %zu (limit %d)\n", got, takes, peak, QUEUE_EVENTS);
        CHECK_INT(got, BURST);
        CHECK_MSG(bad < 0, "event %d out of order or wrong", bad);
        CHECK_MSG(peak <= QUEUE_EVENTS, "the queue held %zu events, limit %d", peak, QUEUE_EVENTS);
    }
    etcd_watch_free(w);
}

static uint8_t *big_value(char fill)
{
    uint8_t *v = malloc(BIG);
    for (size_t i = 0; v && i < BIG; i++)
        v[i] = (uint8_t)(fill + i % 13);
    return v;
}

/* Take batches until n events came; every batch must hold at most max events. */
static int take_big(etcd_watch *w, int n, size_t max, const uint8_t *const *vals)
{
    int got = 0;
    for (int64_t end = clock_now_ms() + 60000; got < n && clock_now_ms() < end;) {
        struct pollfd pfd = {.fd = etcd_watch_fd(w), .events = POLLIN};
        etcd_watch_batch *b = NULL;
        if (poll(&pfd, 1, 1000) <= 0 || etcd_watch_take(w, &b) != 1)
            continue;
        CHECK_MSG(b->n <= max, "a batch of %zu big values (byte limit allows %zu)", b->n, max);
        for (size_t i = 0; i < b->n && got < n; i++, got++)
            CHECK(b->events[i].kv.value_len == BIG && memcmp(b->events[i].kv.value, vals[got], BIG) == 0);
        etcd_watch_batch_free(b);
        usleep(100 * 1000);  /* slow consumer: the next value waits in etcd/gRPC */
    }
    return got;
}

static void test_big_values(void)
{
    if (!need_etcd())
        return;
    uint8_t *vals[3] = {big_value('a'), big_value('b'), big_value('c')};
    int64_t first = store_revision() + 1;
    etcd_watch *w = NULL;
    etcd_error err = {0};
    CHECK_INT(etcd_watch_new(C, "/big/", 5, first, &w, &err), 0);
    /* room for one 1.4 MiB value at a time */
    CHECK_INT(etcd_watch_set_queue_limit(w, 1000, 2u << 20), 0);
    for (int i = 0; i < 3; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "/big/%d", i);
        CHECK_MSG(etcd_put(C, key, (size_t)n, vals[i], BIG, 0, NULL, &err) == 0, "put: %s", err.msg);
    }
    etcd_kvs *kvs = NULL;
    CHECK_MSG(etcd_get(C, "/big/1", 6, &kvs, NULL, &err) == 0, "get: %s", err.msg);
    CHECK(kvs && kvs->n == 1 && kvs->kvs[0].value_len == BIG && memcmp(kvs->kvs[0].value, vals[1], BIG) == 0);
    etcd_kvs_free(kvs);
    kvs = NULL;
    CHECK_MSG(etcd_range_prefix(C, "/big/", 5, 0, &kvs, &err) == 0, "range: %s", err.msg);
    CHECK(kvs && kvs->n == 3);
    etcd_kvs_free(kvs);
    if (w)
        CHECK_INT(take_big(w, 3, 1, (const uint8_t *const *)vals), 3);
    etcd_watch_free(w);
    for (int i = 0; i < 3; i++)
        free(vals[i]);
}

/* A client whose receive bound (1 MiB) is below a stored value: each way of reading it fails
 * with RESOURCE_EXHAUSTED, reported, and nothing crashes. Runs after test_big_values. */
static void test_message_too_large(void)
{
    if (!need_etcd())
        return;
    etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 10000, .max_recv_bytes = 1u << 20};
    etcd_client *c = NULL;
    etcd_error err = {0};
    if (!CHECK_MSG(etcd_client_new(&cfg, &c, &err) == 0, "%s", err.msg))
        return;
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_get(c, "/big/1", 6, &kvs, NULL, &err), -ENOSPC);
    printf("  get: %s: %s\n", etcd_code_name(err.code), err.msg);
    CHECK_STR(etcd_code_name(err.code), "RESOURCE_EXHAUSTED");
    memset(&err, 0, sizeof err);
    CHECK_INT(etcd_range_prefix(c, "/big/", 5, 0, &kvs, &err), -ENOSPC);
    CHECK_STR(etcd_code_name(err.code), "RESOURCE_EXHAUSTED");
    CHECK(kvs == NULL);
    /* small keys still read fine through the same client */
    CHECK_INT(etcd_put(c, "/small", 6, "1", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_get(c, "/small", 6, &kvs, NULL, &err), 0);
    etcd_kvs_free(kvs);
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(c, "/big/", 5, 1, &w, &err), 0);
    etcd_error seen = {0};
    for (int64_t end = clock_now_ms() + 30000; w && !seen.code && clock_now_ms() < end;) {
        struct pollfd pfd = {.fd = etcd_watch_fd(w), .events = POLLIN};
        etcd_watch_batch *b = NULL;
        if (poll(&pfd, 1, 1000) > 0 && etcd_watch_take(w, &b) == 1) {
            CHECK_INT(b->n, 0);
            seen = b->err;
            etcd_watch_batch_free(b);
        }
    }
    printf("  watch: %s: %s\n", etcd_code_name(seen.code), seen.msg);
    CHECK_STR(etcd_code_name(seen.code), "RESOURCE_EXHAUSTED");
    etcd_watch_free(w);
    etcd_client_free(c);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    up = etcdh_available() && etcdh_start(&H, 1) == 0;
    etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 20000};
    etcd_error err = {0};
    if (up && etcd_client_new(&cfg, &C, &err) < 0) {
        fprintf(stderr, "etcd_client_new: %s\n", err.msg);
        up = false;
    }
    check_run("burst_slow_consumer", test_burst_slow_consumer);
    check_run("big_values", test_big_values);
    check_run("message_too_large", test_message_too_large);
    etcd_client_free(C);
    etcdh_destroy(&H);
    return check_end();
}
