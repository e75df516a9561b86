/* test_etcd_cluster.c -- the etcd client against a 3-member cluster on loopback, with auth on:
 * kill -9 the member the client is connected to (the leader) while a writer runs, then hang
 * (SIGSTOP) the next one; KV, the lease and the watch carry on through the other members, and
 * the watch misses and repeats nothing. */
#include "check.h"
#include "etcd_collect.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* How many of c's events have mod_revision <= rev (they are in revision order). */
static size_t upto(const etcd_collect *c, int64_t rev)
{
    size_t n = 0;
    while (n < c->n && c->ev[n].mod_revision <= rev)
        n++;
    return n;
}

static void test_failover(void)
{
    if (!etcdh_available()) {
        check_skip("etcd not available (install etcd-server etcd-client)");
        return;
    }
    etcdh h = {0};
    if (!CHECK_MSG(etcdh_start(&h, 3) == 0, "cluster did not start"))
        return;
    /* connect to the leader first: killing it forces an election and a failover at once */
    int leader = etcdh_leader(&h);
    CHECK(leader >= 0);
    char eps[256];
    snprintf(eps, sizeof eps, "%s,%s,%s", h.m[leader < 0 ? 0 : leader].client_url,
             h.m[leader == 1 ? 0 : 1].client_url, h.m[leader == 2 ? 0 : 2].client_url);
    /* with auth on: tokens must keep working (or be refreshed) on the other members */
    int rc = etcdh_ctl(&h, "user add root:rootpw") | etcdh_ctl(&h, "role add cl") |
             etcdh_ctl(&h, "role grant-permission cl --prefix=true readwrite /cl/") |
             etcdh_ctl(&h, "role grant-permission cl --prefix=true readwrite /lease/") |
             etcdh_ctl(&h, "user add app:apppw") | etcdh_ctl(&h, "user grant-role app cl") |
             etcdh_ctl(&h, "auth enable");
    CHECK_INT(rc, 0);
    etcd_config cfg = {.endpoints = eps, .username = "app", .password = "apppw", .timeout_ms = 10000};
    etcd_client *c = NULL;
    etcd_error err = {0};
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_client_new(&cfg, &c, &err), 0);
    if (!c)
        goto out;
    CHECK_INT(etcd_range_prefix(c, "/cl/", 4, 0, &kvs, &err), 0);
    int64_t start = kvs ? kvs->revision + 1 : 1;
    etcd_kvs_free(kvs);
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(c, "/cl/", 4, start, &w, &err), 0);
    /* a lease kept alive through the failover; its TTL must outlast the election (a loss is
     * reported locally when no keep-alive answer came within the TTL) */
    etcd_lease *l = NULL;
    CHECK_INT(etcd_lease_new(c, 6, &l, &err), 0);
    CHECK_INT(etcd_put(c, "/lease/cl", 9, "1", 1, l ? etcd_lease_id(l) : 0, NULL, &err), 0);
    etcd_writer wr;
    etcd_writer_start(&wr, c, "/cl/");
    etcd_collect col = {0};
    etcd_collect_until(w, &col, 30, 15000);
    char url[128];
    int victim = etcdh_member_of(&h, (etcd_client_endpoint(c, url, sizeof url), url));
    CHECK(victim >= 0);
    int before = wr.written;
    int64_t t_kill = clock_now_ms();
    etcdh_stop_member(&h, victim, SIGKILL);
    while (wr.written < before + 100 && clock_now_ms() - t_kill < 30000)
        usleep(50 * 1000);
    int64_t recovered = clock_now_ms() - t_kill;
    etcd_writer_stop(&wr);
    char now_url[128];
    etcd_client_endpoint(c, now_url, sizeof now_url);
    printf("  killed %s; %d puts after it in %lld ms, now on %s\n", url, wr.written - before,
           (long long)recovered, now_url);
    CHECK(wr.written >= before + 100);
    CHECK(strcmp(url, now_url) != 0);
    /* reads still work, and see every write */
    CHECK_INT(etcd_range_prefix(c, "/cl/", 4, 0, &kvs, &err), 0);
    CHECK(kvs && kvs->n >= (size_t)wr.written);
    int64_t last = kvs ? kvs->revision : 0;
    etcd_kvs_free(kvs);
    CHECK_MSG(etcd_collect_to(w, &col, last, 30000), "watch stopped at %lld of %lld",
              col.n ? (long long)col.ev[col.n - 1].mod_revision : 0LL, (long long)last);
    /* the lease survived (etcd extends leases on election; our keep-alive moved over) */
    if (l) {
        CHECK(!etcd_lease_lost(l));
        CHECK_INT(etcd_get(c, "/lease/cl", 9, &kvs, NULL, &err), 0);
        CHECK(kvs != NULL);
        etcd_kvs_free(kvs);
    }
    etcd_lease_free(l);
    /* phase 2: the member we are on now hangs (SIGSTOP: connections stay open, no answers).
     * The watch's progress probe finds it silent within ~3 s (ETCD_PROBE_IDLE_MS +
     * ETCD_ANSWER_MS), the client moves on, and the put waiting on it gives up and is sent
     * to the next member. */
    CHECK_INT(etcdh_restart_member(&h, victim, true), 0);  /* keep a quorum without it */
    int frozen = etcdh_member_of(&h, now_url);
    etcd_writer wr2;
    if (CHECK(frozen >= 0)) {
        int64_t t_stop = clock_now_ms();
        kill(h.m[frozen].pid, SIGSTOP);
        etcd_writer_start(&wr2, c, "/cl/b/");
        int64_t first = -1;  /* when the first put after the freeze landed */
        while (wr2.written < 50 && clock_now_ms() - t_stop < 45000) {
            if (first < 0 && wr2.written > 0)
                first = clock_now_ms() - t_stop;
            usleep(20 * 1000);
        }
        etcd_writer_stop(&wr2);
        CHECK_INT(etcd_range_prefix(c, "/cl/", 4, 0, &kvs, &err), 0);
        last = kvs ? kvs->revision : 0;
        etcd_kvs_free(kvs);
        CHECK_MSG(etcd_collect_to(w, &col, last, 45000), "watch stopped at %lld of %lld",
                  col.n ? (long long)col.ev[col.n - 1].mod_revision : 0LL, (long long)last);
        etcd_client_endpoint(c, url, sizeof url);
        printf("  froze %s; first put after %lld ms; %d puts and the watch caught up in %lld ms, "
               "now on %s\n", now_url, (long long)first, wr2.written,
               (long long)(clock_now_ms() - t_stop), url);
        kill(h.m[frozen].pid, SIGCONT);
        CHECK(wr2.written >= 50);
        CHECK_INT(etcd_writer_missing(&wr2, &col), 0);
    }
    etcd_watch *w2 = NULL;
    etcd_collect ref = {0};
    CHECK_INT(etcd_watch_new(c, "/cl/", 4, start, &w2, &err), 0);
    etcd_collect_to(w2, &ref, last, 30000);
    /* compare up to `last`: a put given up on the frozen member (and sent again elsewhere)
     * may still be applied when that member resumes, as a later revision */
    etcd_collect col_v = col, ref_v = ref;
    col_v.n = upto(&col, last);
    ref_v.n = upto(&ref, last);
    if (ref.n > ref_v.n)
        printf("  %zu event(s) after the last checked revision (a put the frozen member applied "
               "on resuming)\n", ref.n - ref_v.n);
    CHECK_INT(col_v.n, ref_v.n);
    CHECK_INT(etcd_collect_diff(&col_v, &ref_v), 0);
    CHECK_INT(etcd_writer_missing(&wr, &col), 0);
    etcd_collect_free(&col);
    etcd_collect_free(&ref);
    etcd_watch_free(w);
    etcd_watch_free(w2);
    etcd_client_free(c);
out:
    etcdh_destroy(&h);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("failover", test_failover);
    return check_end();
}
