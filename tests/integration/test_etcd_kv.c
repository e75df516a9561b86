/* test_etcd_kv.c -- the etcd client's KV calls against a real etcd: Range of 0, 1 and 100k
 * keys at one revision, binary keys and values, Delete, Txn compare-and-swap, errors. */
#include "check.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static etcdh H;
static etcd_client *C;
static int etcd_rc;  /* etcdh_start(): 0, -ENOENT (a skip), else a failure */

static bool need_etcd(void)
{
    return check_need(etcd_rc, "etcd (etcd-server etcd-client)");
}

static void test_range_empty_and_one(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_range_prefix(C, "/empty/", 7, 0, &kvs, &err), 0);
    CHECK(kvs && kvs->n == 0 && kvs->revision > 0);
    etcd_kvs_free(kvs);
    int64_t rev = 0;
    CHECK_INT(etcd_put(C, "/one/a", 6, "hello", 5, 0, &rev, &err), 0);
    CHECK(rev > 0);
    CHECK_INT(etcd_range_prefix(C, "/one/", 5, 0, &kvs, &err), 0);
    if (CHECK(kvs && kvs->n == 1)) {
        CHECK_STR((const char *)kvs->kvs[0].key, "/one/a");
        CHECK_STR((const char *)kvs->kvs[0].value, "hello");
        CHECK_INT(kvs->kvs[0].value_len, 5);
        CHECK_INT(kvs->kvs[0].mod_revision, rev);
        CHECK_INT(kvs->revision, rev);
    }
    etcd_kvs_free(kvs);
}

struct loader { int from, to; int failures; };

/* Load keys /big/%06d with Txns of 128 puts each. */
static void *load_keys(void *arg)
{
    struct loader *l = arg;
    char keys[128][32], vals[128][48];
    etcd_op ops[128];
    for (int i = l->from; i < l->to; i += 128) {
        int n = l->to - i < 128 ? l->to - i : 128;
        for (int j = 0; j < n; j++) {
            snprintf(keys[j], sizeof keys[j], "/big/%06d", i + j);
            int vl = snprintf(vals[j], sizeof vals[j], "value-%d-padding-padding", i + j);
            ops[j] = (etcd_op){ETCD_OP_PUT, keys[j], 11, vals[j], (size_t)vl, 0};
        }
        bool ok = false;
        etcd_error err = {0};
        if (etcd_txn(C, NULL, 0, ops, n, NULL, 0, &ok, NULL, &err) < 0 || !ok)
            l->failures++;
    }
    return NULL;
}

static void test_range_100k(void)
{
    if (!need_etcd())
        return;
    enum { N = 100000, T = 4 };
    int64_t t0 = clock_now_ms();
    pthread_t th[T];
    struct loader ld[T];
    for (int i = 0; i < T; i++) {
        ld[i] = (struct loader){N / T * i, N / T * (i + 1), 0};
        pthread_create(&th[i], NULL, load_keys, &ld[i]);
    }
    int fails = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        fails += ld[i].failures;
    }
    CHECK_INT(fails, 0);
    int64_t t1 = clock_now_ms();
    etcd_error err = {0};
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_range_prefix(C, "/big/", 5, 0, &kvs, &err), 0);
    int64_t t2 = clock_now_ms();
    printf("  loaded %d keys in %lld ms, read them in %lld ms\n", N, (long long)(t1 - t0),
           (long long)(t2 - t1));
    if (!CHECK(kvs != NULL))
        return;
    CHECK_INT(kvs->n, N);
    size_t bad = 0;
    for (size_t i = 0; i < kvs->n; i++) {
        char k[32], v[48];
        snprintf(k, sizeof k, "/big/%06zu", i);
        snprintf(v, sizeof v, "value-%zu-padding-padding", i);
        if (strcmp((const char *)kvs->kvs[i].key, k) || strcmp((const char *)kvs->kvs[i].value, v) ||
            kvs->kvs[i].mod_revision > kvs->revision)
            bad++;
    }
    CHECK_INT(bad, 0);
    /* all pages come from one revision: reading at it after another write gives the same set */
    int64_t rev = kvs->revision;
    etcd_kvs_free(kvs);
    CHECK_INT(etcd_put(C, "/big/zzz", 8, "later", 5, 0, NULL, &err), 0);
    CHECK_INT(etcd_range_prefix(C, "/big/", 5, rev, &kvs, &err), 0);
    CHECK(kvs && kvs->n == N && kvs->revision == rev);
    etcd_kvs_free(kvs);
}

static void test_binary(void)
{
    if (!need_etcd())
        return;
    static const uint8_t key[] = {'/', 'b', 'i', 'n', 0xff, 0x00, 'k', 0xff};
    static const uint8_t val[] = {0x00, 0xff, 0x00, 'v', 0xfe, 0x00};
    static const uint8_t pfx[] = {'/', 'b', 'i', 'n', 0xff};
    etcd_error err = {0};
    int64_t rev = 0;
    CHECK_INT(etcd_put(C, key, sizeof key, val, sizeof val, 0, &rev, &err), 0);
    CHECK_INT(etcd_put(C, "/bin", 4, "", 0, 0, NULL, &err), 0);  /* outside the 0xff prefix */
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_get(C, key, sizeof key, &kvs, NULL, &err), 0);
    if (CHECK(kvs && kvs->n == 1)) {
        CHECK(kvs->kvs[0].key_len == sizeof key && memcmp(kvs->kvs[0].key, key, sizeof key) == 0);
        CHECK(kvs->kvs[0].value_len == sizeof val && memcmp(kvs->kvs[0].value, val, sizeof val) == 0);
        CHECK_INT(kvs->kvs[0].mod_revision, rev);
    }
    etcd_kvs_free(kvs);
    CHECK_INT(etcd_range_prefix(C, pfx, sizeof pfx, 0, &kvs, &err), 0);
    CHECK(kvs && kvs->n == 1 && kvs->kvs[0].key_len == sizeof key);
    etcd_kvs_free(kvs);
    /* the empty value is a value */
    CHECK_INT(etcd_get(C, "/bin", 4, &kvs, NULL, &err), 0);
    CHECK(kvs && kvs->n == 1 && kvs->kvs[0].value_len == 0);
    etcd_kvs_free(kvs);
    int64_t deleted = -1;
    CHECK_INT(etcd_delete(C, key, sizeof key, false, &deleted, &err), 0);
    CHECK_INT(deleted, 1);
    CHECK_INT(etcd_get(C, key, sizeof key, &kvs, NULL, &err), 0);
    CHECK(kvs == NULL);
    /* prefix delete */
    CHECK_INT(etcd_put(C, "/del/a", 6, "1", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_put(C, "/del/b", 6, "2", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_put(C, "/dem", 4, "3", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_delete(C, "/del/", 5, true, &deleted, &err), 0);
    CHECK_INT(deleted, 2);
    CHECK_INT(etcd_get(C, "/dem", 4, &kvs, NULL, &err), 0);
    CHECK(kvs != NULL);
    etcd_kvs_free(kvs);
}

static void test_txn(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    bool ok = false;
    int64_t rev = 0;
    etcd_compare absent = {"/txn/k", 6, ETCD_CMP_VERSION, ETCD_CMP_EQUAL, 0, NULL, 0};
    etcd_op put1 = {ETCD_OP_PUT, "/txn/k", 6, "v1", 2, 0};
    etcd_op put2 = {ETCD_OP_PUT, "/txn/k", 6, "v2", 2, 0};
    etcd_op mark = {ETCD_OP_PUT, "/txn/failed", 11, "yes", 3, 0};
    CHECK_INT(etcd_txn(C, &absent, 1, &put1, 1, NULL, 0, &ok, &rev, &err), 0);
    CHECK(ok);
    CHECK_INT(etcd_txn(C, &absent, 1, &put2, 1, &mark, 1, &ok, NULL, &err), 0);
    CHECK(!ok);
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_get(C, "/txn/k", 6, &kvs, NULL, &err), 0);
    CHECK(kvs && strcmp((const char *)kvs->kvs[0].value, "v1") == 0);
    etcd_kvs_free(kvs);
    CHECK_INT(etcd_get(C, "/txn/failed", 11, &kvs, NULL, &err), 0);
    CHECK(kvs != NULL);
    etcd_kvs_free(kvs);
    /* compare-and-swap on the value, then on the mod revision */
    etcd_compare is_v1 = {"/txn/k", 6, ETCD_CMP_VALUE, ETCD_CMP_EQUAL, 0, "v1", 2};
    CHECK_INT(etcd_txn(C, &is_v1, 1, &put2, 1, NULL, 0, &ok, NULL, &err), 0);
    CHECK(ok);
    CHECK_INT(etcd_txn(C, &is_v1, 1, &put1, 1, NULL, 0, &ok, NULL, &err), 0);
    CHECK(!ok);
    etcd_compare at_rev = {"/txn/k", 6, ETCD_CMP_MOD, ETCD_CMP_EQUAL, rev, NULL, 0};
    CHECK_INT(etcd_txn(C, &at_rev, 1, &put1, 1, NULL, 0, &ok, NULL, &err), 0);
    CHECK(!ok);  /* modified since rev */
    etcd_compare newer = {"/txn/k", 6, ETCD_CMP_MOD, ETCD_CMP_GREATER, rev, NULL, 0};
    etcd_op del = {ETCD_OP_DELETE_PREFIX, "/txn/", 5, NULL, 0, 0};
    CHECK_INT(etcd_txn(C, &newer, 1, &del, 1, NULL, 0, &ok, NULL, &err), 0);
    CHECK(ok);
    CHECK_INT(etcd_range_prefix(C, "/txn/", 5, 0, &kvs, &err), 0);
    CHECK(kvs && kvs->n == 0);
    etcd_kvs_free(kvs);
    /* etcd's own errors come back as values with its message */
    etcd_op many[129];
    for (int i = 0; i < 129; i++)
        many[i] = put1;
    CHECK(etcd_txn(C, NULL, 0, many, 129, NULL, 0, &ok, NULL, &err) < 0);
    CHECK_MSG(strstr(err.msg, "etcdserver: too many operations in txn request") != NULL,
              "message: %s (%s)", err.msg, etcd_code_name(err.code));
}

static void test_errors(void)
{
    if (!need_etcd())
        return;
    etcd_error err = {0};
    int64_t rev = 0;
    CHECK_INT(etcd_put(C, "/cmp/a", 6, "1", 1, 0, &rev, &err), 0);
    CHECK_INT(etcd_put(C, "/cmp/a", 6, "2", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_compact(C, rev + 1, &err), 0);
    etcd_kvs *kvs = NULL;
    int rc = etcd_range_prefix(C, "/cmp/", 5, rev, &kvs, &err);
    CHECK_INT(rc, -ERANGE);
    CHECK_INT(err.code, 11 /* OUT_OF_RANGE */);
    CHECK_MSG(strstr(err.msg, "compacted") != NULL, "message: %s", err.msg);
    /* nothing listening: UNAVAILABLE, not a hang (the cap only catches a hang) */
    etcd_config cfg = {.endpoints = "http://127.0.0.1:1", .timeout_ms = 1500};
    etcd_client *dead = NULL;
    CHECK_INT(etcd_client_new(&cfg, &dead, &err), 0);
    int64_t t0 = clock_now_ms();
    rc = etcd_put(dead, "/x", 2, "y", 1, 0, NULL, &err);
    int64_t took = clock_now_ms() - t0;
    CHECK(rc < 0);
    CHECK_MSG(err.code == 14 || err.code == 4, "code %s: %s", etcd_code_name(err.code), err.msg);
    CHECK_MSG(took < 60000, "took %lld ms: hangs past its 1.5 s timeout", (long long)took);
    printf("  unreachable endpoint: %s %s: %s\n", err.endpoint, etcd_code_name(err.code), err.msg);
    etcd_client_free(dead);
    /* bad config is reported, not fatal */
    cfg.endpoints = "ftp://x";
    dead = NULL;
    CHECK_INT(etcd_client_new(&cfg, &dead, &err), -EINVAL);
    CHECK(dead == NULL && strstr(err.msg, "ftp://x") != NULL);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    etcd_rc = etcdh_start(&H, 1);
    if (etcd_rc == 0) {
        etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 10000};
        etcd_error err = {0};
        if (etcd_client_new(&cfg, &C, &err) < 0)
            etcd_rc = -EIO;
    }
    check_run("range_empty_and_one", test_range_empty_and_one);
    check_run("range_100k", test_range_100k);
    check_run("binary", test_binary);
    check_run("txn", test_txn);
    check_run("errors", test_errors);
    etcd_client_free(C);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
