/* test_etcd_watch.c -- the etcd client's watch against a real etcd: a put and a delete, a
 * burst of 10k puts in revision order, kill -9 + restart of etcd on the same data dir with
 * writes before, during and after (nothing lost, nothing twice), compaction notices, and the
 * client thread woken by a request rather than by its idle timer. */
#include "check.h"
#include "etcd_collect.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static etcdh H;
static etcd_client *C;
static int etcd_rc;  /* etcdh_start(): 0, -ENOENT (a skip), else a failure */

static bool need_etcd(void)
{
    return check_need(etcd_rc, "etcd (etcd-server etcd-client)");
}

/* Current store revision. */
static int64_t head_revision(void)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    int64_t rev = 0;
    if (etcd_get(C, "/nonexistent", 12, &kvs, &rev, &err) < 0)
        printf("  get failed: %s\n", err.msg);
    etcd_kvs_free(kvs);
    return rev;
}

static void test_put_delete(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_put(C, "/pd/old", 7, "x", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_range_prefix(C, "/pd/", 4, 0, &kvs, &err), 0);
    int64_t rev = kvs ? kvs->revision : 0;
    etcd_kvs_free(kvs);
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(C, "/pd/", 4, rev + 1, &w, &err), 0);
    int64_t r1 = 0, r2 = 0;
    CHECK_INT(etcd_put(C, "/pd/a", 5, "va", 2, 0, &r1, &err), 0);
    CHECK_INT(etcd_put(C, "/other", 6, "no", 2, 0, NULL, &err), 0);
    CHECK_INT(etcd_delete(C, "/pd/a", 5, false, NULL, &err), 0);
    r2 = head_revision();
    etcd_collect col = {0};
    CHECK_INT(etcd_collect_until(w, &col, 2, 10000), 2);
    if (col.n >= 2) {
        CHECK_INT(col.ev[0].type, ETCD_EVENT_PUT);
        CHECK_STR(col.ev[0].key, "/pd/a");
        CHECK_STR(col.ev[0].value, "va");
        CHECK_INT(col.ev[0].mod_revision, r1);
        CHECK_INT(col.ev[1].type, ETCD_EVENT_DELETE);
        CHECK_STR(col.ev[1].key, "/pd/a");
        CHECK_INT(col.ev[1].mod_revision, r2);
    }
    CHECK_INT(etcd_watch_next_revision(w), r2 + 1);
    /* nothing else arrives */
    CHECK_INT(etcd_collect_until(w, &col, 3, 300), 2);
    etcd_collect_free(&col);
    etcd_watch_free(w);
}

struct putter { int id, count, fails; const char *prefix; };

static void *put_many(void *arg)
{
    struct putter *p = arg;
    for (int i = 0; i < p->count; i++) {
        char k[64], v[32];
        int kl = snprintf(k, sizeof k, "%s%d/%05d", p->prefix, p->id, i);
        int vl = snprintf(v, sizeof v, "v%d", i);
        etcd_error err = {0};
        if (etcd_put(C, k, kl, v, vl, 0, NULL, &err) < 0)
            p->fails++;
    }
    return NULL;
}

static void test_burst_10k(void)
{
    if (!need_etcd())
        return;
    enum { T = 8, PER = 1250, N = T * PER };
    etcd_error err = {0};
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(C, "/burst/", 7, head_revision() + 1, &w, &err), 0);
    int64_t t0 = clock_now_ms();
    pthread_t th[T];
    struct putter p[T];
    for (int i = 0; i < T; i++) {
        p[i] = (struct putter){i, PER, 0, "/burst/"};
        pthread_create(&th[i], NULL, put_many, &p[i]);
    }
    etcd_collect col = {0};
    etcd_collect_until(w, &col, N, 60000);
    int fails = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        fails += p[i].fails;
    }
    etcd_collect_until(w, &col, N, 60000);
    printf("  %d puts from %d threads watched in %lld ms\n", N, T, (long long)(clock_now_ms() - t0));
    CHECK_INT(fails, 0);
    CHECK_INT(col.n, N);
    size_t out_of_order = 0;
    int next[T] = {0};
    size_t wrong = 0;
    for (size_t i = 0; i < col.n; i++) {
        if (i && col.ev[i].mod_revision <= col.ev[i - 1].mod_revision)
            out_of_order++;
        int id = -1, seq = -1;
        if (sscanf(col.ev[i].key, "/burst/%d/%d", &id, &seq) != 2 || id < 0 || id >= T ||
            seq != next[id]++)
            wrong++;  /* each writer's puts appear once each, in its order */
    }
    CHECK_INT(out_of_order, 0);
    CHECK_INT(wrong, 0);
    etcd_collect_free(&col);
    etcd_watch_free(w);
}

static void test_kill9_restart(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    int64_t start = head_revision() + 1;
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(C, "/kr/", 4, start, &w, &err), 0);
    etcd_writer wr;
    etcd_writer_start(&wr, C, "/kr/");
    etcd_collect col = {0};
    etcd_collect_until(w, &col, 50, 10000);  /* before */
    int before = wr.written;
    etcdh_stop_member(&H, 0, SIGKILL);
    usleep(1500 * 1000);                      /* during: puts fail and are retried */
    CHECK_INT(etcdh_restart_member(&H, 0, true), 0);
    int64_t t_back = clock_now_ms();
    while (wr.written < before + 100 && clock_now_ms() - t_back < 20000)
        usleep(50 * 1000);                   /* after */
    etcd_writer_stop(&wr);
    int64_t last = head_revision();
    printf("  %d puts (%d before the kill), last revision %lld\n", wr.written, before, (long long)last);
    CHECK(wr.written >= before + 100);
    CHECK_MSG(etcd_collect_to(w, &col, last, 30000), "watch stopped at %lld of %lld",
              col.n ? (long long)col.ev[col.n - 1].mod_revision : 0LL, (long long)last);
    CHECK_MSG(col.notices > 0, "the broken stream was not reported");
    /* the history replayed from the same start must be identical: nothing lost or repeated */
    etcd_watch *w2 = NULL;
    etcd_collect ref = {0};
    CHECK_INT(etcd_watch_new(C, "/kr/", 4, start, &w2, &err), 0);
    etcd_collect_to(w2, &ref, last, 30000);
    CHECK_INT(col.n, ref.n);
    CHECK_INT(etcd_collect_diff(&col, &ref), 0);
    CHECK_INT(etcd_writer_missing(&wr, &col), 0);
    etcd_collect_free(&col);
    etcd_collect_free(&ref);
    etcd_watch_free(w);
    etcd_watch_free(w2);
}

static void test_compaction(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    int64_t first = 0, rev = 0;
    CHECK_INT(etcd_put(C, "/cp/a", 5, "1", 1, 0, &first, &err), 0);
    CHECK_INT(etcd_put(C, "/cp/a", 5, "2", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_put(C, "/cp/b", 5, "3", 1, 0, &rev, &err), 0);
    CHECK_INT(etcd_compact(C, rev, &err), 0);
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(C, "/cp/", 4, first, &w, &err), 0);
    etcd_collect col = {0};
    etcd_collect_until(w, &col, 1, 10000);
    CHECK_INT(col.compact_revision, rev);
    CHECK_INT(col.n, 0);
    /* the caller re-reads and restarts from the read's revision + 1 */
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_range_prefix(C, "/cp/", 4, 0, &kvs, &err), 0);
    CHECK(kvs && kvs->n == 2);
    int64_t r = kvs ? kvs->revision : 0;
    etcd_kvs_free(kvs);
    CHECK_INT(etcd_watch_restart(w, r + 1), 0);
    int64_t r2 = 0;
    CHECK_INT(etcd_put(C, "/cp/c", 5, "4", 1, 0, &r2, &err), 0);
    etcd_collect_until(w, &col, 1, 10000);
    CHECK(col.n == 1 && col.ev[0].mod_revision == r2 && strcmp(col.ev[0].key, "/cp/c") == 0);
    CHECK_INT(col.compact_revision, 0);
    etcd_collect_free(&col);
    etcd_watch_free(w);
}

/* A watch that catches up over 6 revisions of 1 MiB each gets them in one response of
 * ~6 MiB: above gRPC's default 4 MiB receive limit and above etcd's fragment threshold
 * (--max-request-bytes, 1.5 MiB by default), so the watch must join fragments. */
static void test_fragment(void)
{
    if (!need_etcd())
        return;
    enum { K = 6, SIZE = 1 << 20 };
    char *val = malloc(SIZE);
    if (!CHECK(val != NULL))
        return;
    etcd_error err = {0};
    int64_t start = head_revision() + 1, rev = 0;
    for (int i = 0; i < K; i++) {
        char key[32];
        snprintf(key, sizeof key, "/frag/%d", i);
        memset(val, 'a' + i, SIZE);
        CHECK_INT(etcd_put(C, key, strlen(key), val, SIZE, 0, &rev, &err), 0);
    }
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(C, "/frag/", 6, start, &w, &err), 0);
    etcd_collect col = {0};
    etcd_collect_until(w, &col, K, 20000);
    CHECK_INT(col.n, K);
    size_t bad = 0;
    for (size_t i = 0; i < col.n; i++)
        if (col.ev[i].mod_revision != start + (int64_t)i || col.ev[i].value_len != SIZE ||
            col.ev[i].value[0] != (char)('a' + i) || col.ev[i].value[SIZE - 1] != (char)('a' + i))
            bad++;
    CHECK_INT(bad, 0);
    CHECK_INT(etcd_watch_next_revision(w), rev + 1);
    etcd_collect_free(&col);
    etcd_watch_free(w);
    free(val);
}

/* The client thread is woken when asked something (etcd_client_kick), not at its next idle
 * wake-up (a second): 20 watches each opened, given an event and freed one after the other
 * take well under the 20 s those wake-ups alone would cost. */
static void test_wakes_on_request(void)
{
    if (!need_etcd())
        return;
    enum { ROUNDS = 20, CAP_MS = 8000 };
    etcd_error err = {0};
    int64_t t0 = clock_now_ms();
    int got = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t rev = head_revision();
        etcd_watch *w = NULL;
        if (etcd_watch_new(C, "/wk/", 4, rev + 1, &w, &err) < 0)
            break;
        etcd_put(C, "/wk/a", 5, "v", 1, 0, NULL, &err);
        etcd_collect col = {0};
        got += etcd_collect_until(w, &col, 1, 5000) == 1;
        etcd_collect_free(&col);
        etcd_watch_free(w);
    }
    int64_t ms = clock_now_ms() - t0;
    printf("  %d rounds of watch, event, free: %lld ms\n", ROUNDS, (long long)ms);
    CHECK_INT(got, ROUNDS);
    CHECK(ms < CAP_MS);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    if (getenv("ETCD_TEST_DEBUG"))
        log_set_level(LOG_LEVEL_DEBUG);
    etcd_rc = etcdh_start(&H, 1);
    if (etcd_rc == 0) {
        etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 5000};
        etcd_error err = {0};
        if (etcd_client_new(&cfg, &C, &err) < 0)
            etcd_rc = -EIO;
    }
    check_run("put_delete", test_put_delete);
    check_run("burst_10k", test_burst_10k);
    check_run("compaction", test_compaction);
    check_run("fragment", test_fragment);
    check_run("wakes_on_request", test_wakes_on_request);
    check_run("kill9_restart", test_kill9_restart);
    etcd_client_free(C);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
