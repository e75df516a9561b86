/* bench_etcd.c -- Range of 100k keys through our client vs `etcdctl get --prefix`, against a
 * real etcd on loopback. Prints both times and the ratio (etcdctl / ours; > 1 = we are faster).
 * etcdctl reads in one unpaginated Range and prints; ours paginates at one revision.
 * BENCH_ETCD_KEYS=N changes the number of keys (the `make test` smoke of `make bench`). */
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>

#define N_DEFAULT 100000

static int N = N_DEFAULT;
#define ROUNDS 3

static int load(etcd_client *c)
{
    char keys[128][32], vals[128][64];
    etcd_op ops[128];
    for (int i = 0; i < N; i += 128) {
        int n = N - i < 128 ? N - i : 128;
        for (int j = 0; j < n; j++) {
            int kl = snprintf(keys[j], sizeof keys[j], "/bench/%06d", i + j);
            int vl = snprintf(vals[j], sizeof vals[j], "{\"ipv4\":\"10.0.%d.%d\",\"tcp\":80}", (i + j) / 250, (i + j) % 250);
            ops[j] = (etcd_op){ETCD_OP_PUT, keys[j], (size_t)kl, vals[j], (size_t)vl, 0};
        }
        bool ok = false;
        etcd_error err = {0};
        if (etcd_txn(c, NULL, 0, ops, n, NULL, 0, &ok, NULL, &err) < 0 || !ok) {
            fprintf(stderr, "bench_etcd: load failed: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

int main(void)
{
    const char *keys = getenv("BENCH_ETCD_KEYS");
    if (keys && atoi(keys) > 0)
        N = atoi(keys);
    if (!etcdh_available()) {
        printf("bench_etcd: etcd not installed, skipped\n");
        return 0;
    }
    etcdh h = {0};
    if (etcdh_start(&h, 1) < 0)
        return 1;
    etcd_config cfg = {.endpoints = h.endpoints, .timeout_ms = 30000};
    etcd_client *c = NULL;
    etcd_error err = {0};
    int rc = 1;
    if (etcd_client_new(&cfg, &c, &err) < 0 || load(c) < 0)
        goto out;
    int64_t ours = INT64_MAX, theirs = INT64_MAX;
    for (int r = 0; r < ROUNDS; r++) {
        int64_t t0 = clock_now_ms();
        etcd_kvs *kvs = NULL;
        if (etcd_range_prefix(c, "/bench/", 7, 0, &kvs, &err) < 0 || kvs->n != (size_t)N) {
            fprintf(stderr, "bench_etcd: range failed: %s\n", err.msg);
            etcd_kvs_free(kvs);
            goto out;
        }
        etcd_kvs_free(kvs);
        int64_t t1 = clock_now_ms();
        if (etcdh_ctl(&h, "get --prefix /bench/ >/dev/null") != 0)
            goto out;
        int64_t t2 = clock_now_ms();
        ours = t1 - t0 < ours ? t1 - t0 : ours;
        theirs = t2 - t1 < theirs ? t2 - t1 : theirs;
    }
    printf("bench_etcd: range %d keys: clusterf %lld ms, etcdctl get --prefix %lld ms, ratio %.2f (best of %d)\n",
           N, (long long)ours, (long long)theirs, ours ? (double)theirs / (double)ours : 0.0, ROUNDS);
    rc = 0;
out:
    etcd_client_free(c);
    etcdh_destroy(&h);
    return rc;
}
