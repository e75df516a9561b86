/* test_etcd_auth.c -- token refresh must not stall the client thread: against a real etcd with
 * auth enabled, simple tokens that expire after 1 s of disuse and a slow password hash
 * (--bcrypt-cost, so each Authenticate takes seconds, longer than a lease's TTL), a short lease
 * is kept alive through several token refreshes, and watches opened while a token is being
 * fetched deliver every event, in revision order, with no gap. A wrong password is reported. */
#include "check.h"
#include "etcd_collect.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define LEASE_TTL 2
#define ROUNDS 3
#define PUTS 10
/* bcrypt cost 15: each Authenticate takes seconds (about 3 s on an idle machine here), longer
 * than the lease's TTL; the test checks that it did, else it would prove nothing */
#define ETCD_ARGS "--auth-token=simple --auth-token-ttl=1 --bcrypt-cost=15"

static bool need_etcd(void)
{
    if (!etcdh_available()) {
        check_skip("etcd not available (install etcd-server etcd-client)");
        return false;
    }
    return true;
}

/* Add a user. With a costly hash etcd may answer "request timed out" and still apply the
 * add a little later: then wait for the user to exist. */
static int add_user(etcdh *h, const char *name, const char *pw)
{
    if (etcdh_ctl(h, "user add %s:%s", name, pw) == 0)
        return 0;
    for (int i = 0; i < 60; i++) {
        if (etcdh_ctl(h, "user get %s", name) == 0)
            return 0;
        sleep(1);
    }
    return -1;
}

/* root + user "app" with readwrite on /app/, then auth enable. */
static int setup_auth(etcdh *h)
{
    return add_user(h, "root", "rootpw") | etcdh_ctl(h, "role add app") |
           etcdh_ctl(h, "role grant-permission app --prefix=true readwrite /app/") |
           add_user(h, "app", "apppw") | etcdh_ctl(h, "user grant-role app app") |
           etcdh_ctl(h, "auth enable");
}

static bool lease_signalled(etcd_lease *l)
{
    struct pollfd pfd = {.fd = etcd_lease_fd(l), .events = POLLIN};
    return poll(&pfd, 1, 0) > 0;
}

/* The events of col must be exactly the puts at revisions first..last, in order. */
static bool contiguous(const etcd_collect *col, int64_t first, int64_t last)
{
    if ((int64_t)col->n != last - first + 1)
        return check_fail(__FILE__, __LINE__, "%zu events, want %lld (revisions %lld..%lld)",
                          col->n, (long long)(last - first + 1), (long long)first, (long long)last);
    for (size_t i = 0; i < col->n; i++)
        if (col->ev[i].mod_revision != first + (int64_t)i || col->ev[i].type != ETCD_EVENT_PUT)
            return check_fail(__FILE__, __LINE__, "event %zu: %s %s at %lld, want a put at %lld", i,
                              col->ev[i].type == ETCD_EVENT_PUT ? "put" : "delete", col->ev[i].key,
                              (long long)col->ev[i].mod_revision, (long long)(first + (int64_t)i));
    return true;
}

/* One round: let the token expire, open a watch from `from` (its stream must fetch a new token
 * on the client thread), put PUTS keys (the puts share that refresh), and check the watch and
 * the long-lived one see every event; the lease must stay alive meanwhile. Returns the last
 * revision put, or 0. */
static int64_t longest_token_wait_ms;

static int64_t round_trip(etcd_client *c, etcd_watch *w_long, etcd_collect *col_long,
                          int64_t from, int round)
{
    etcd_error err = {0};
    sleep(3);  /* > TTL + 1 s tick: the token expires unused (the keep-alive does not use it) */
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(c, "/app/", 5, from, &w, &err), 0);
    int64_t rev = 0;
    for (int i = 0; i < PUTS; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "/app/r%d-%02d", round, i);
        int64_t t0 = clock_now_ms();
        int rc = etcd_put(c, k, (size_t)n, "v", 1, 0, &rev, &err);
        if (i == 0) {
            int64_t took = clock_now_ms() - t0;
            printf("  round %d: first put took %lld ms (it waits for a new token)\n", round,
                   (long long)took);
            longest_token_wait_ms = took > longest_token_wait_ms ? took : longest_token_wait_ms;
        }
        if (rc < 0) {
            check_fail(__FILE__, __LINE__, "put %s: %s: %s", k, etcd_code_name(err.code), err.msg);
            rev = 0;
            break;
        }
    }
    etcd_collect col = {0};
    if (rev && w) {
        CHECK_MSG(etcd_collect_to(w, &col, rev, 60000), "round %d: new watch stopped at %zu events", round, col.n);
        CHECK_MSG(etcd_collect_to(w_long, col_long, rev, 60000), "round %d: long watch behind", round);
        contiguous(&col, from, rev);
    }
    etcd_collect_free(&col);
    etcd_watch_free(w);
    return rev;
}

static void test_refresh_does_not_stall_streams(void)
{
    if (!need_etcd())
        return;
    etcdh h = {0};
    etcd_client *c = NULL;
    etcd_lease *l = NULL;
    etcd_watch *w_long = NULL;
    etcd_collect col_long = {0};
    etcd_error err = {0};
    int64_t rev = 0;
    snprintf(h.extra_args, sizeof h.extra_args, ETCD_ARGS);
    if (!CHECK_MSG(etcdh_start(&h, 1) == 0, "etcd did not start"))
        return;
    if (!CHECK_MSG(setup_auth(&h) == 0, "auth setup failed")) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "cat %s/etcdctl.log", h.dir);
        if (system(cmd) != 0)
            printf("  (no etcdctl log)\n");
        goto out;
    }
    etcd_config cfg = {.endpoints = h.endpoints, .username = "app", .password = "apppw",
                       .timeout_ms = 60000};
    if (etcd_client_new(&cfg, &c, &err) < 0 || etcd_lease_new(c, LEASE_TTL, &l, &err) < 0 ||
        etcd_put(c, "/app/lease", 10, "1", 1, etcd_lease_id(l), &rev, &err) < 0 ||
        etcd_watch_new(c, "/app/", 5, rev + 1, &w_long, &err) < 0) {
        check_fail(__FILE__, __LINE__, "setup: %s: %s", etcd_code_name(err.code), err.msg);
        goto out;
    }
    CHECK_INT(etcd_lease_ttl(l), LEASE_TTL);
    int64_t first = rev + 1;
    int64_t t0 = clock_now_ms();
    for (int r = 0; r < ROUNDS && !check_failed(); r++) {
        int64_t last = round_trip(c, w_long, &col_long, rev + 1, r);
        CHECK_MSG(!lease_signalled(l) && !etcd_lease_lost(l), "round %d: lease lost", r);
        rev = last ? last : rev;
    }
    printf("  %d refreshes in %lld ms, lease %s\n", ROUNDS, (long long)(clock_now_ms() - t0),
           etcd_lease_lost(l) ? "LOST" : "alive");
    contiguous(&col_long, first, rev);
    CHECK_MSG(longest_token_wait_ms > LEASE_TTL * 1000, "Authenticate took only %lld ms, not "
              "longer than the lease's TTL: raise --bcrypt-cost", (long long)longest_token_wait_ms);
    etcd_kvs *kvs = NULL;
    CHECK_INT(etcd_get(c, "/app/lease", 10, &kvs, NULL, &err), 0);
    CHECK_MSG(kvs != NULL, "the lease's key is gone");
    etcd_kvs_free(kvs);
out:
    etcd_collect_free(&col_long);
    etcd_watch_free(w_long);
    etcd_lease_free(l);
    etcd_client_free(c);
    etcdh_destroy(&h);
}

/* A wrong password: a unary call fails with etcd's reason, a lease cannot be granted, and a
 * watch (whose token the client thread fetches) reports the reason on its fd. */
static void test_wrong_password(void)
{
    if (!need_etcd())
        return;
    etcdh h = {0};
    etcd_client *c = NULL;
    etcd_watch *w = NULL;
    etcd_error err = {0};
    snprintf(h.extra_args, sizeof h.extra_args, "--bcrypt-cost=4");
    if (!CHECK_MSG(etcdh_start(&h, 1) == 0, "etcd did not start"))
        return;
    if (!CHECK_MSG(setup_auth(&h) == 0, "auth setup failed"))
        goto out;
    etcd_config cfg = {.endpoints = h.endpoints, .username = "app", .password = "wrong",
                       .timeout_ms = 20000};
    if (!CHECK_MSG(etcd_client_new(&cfg, &c, &err) == 0, "%s", err.msg))
        goto out;
    CHECK_INT(etcd_put(c, "/app/a", 6, "1", 1, 0, NULL, &err), -EINVAL);
    CHECK_MSG(strstr(err.msg, "authentication failed"), "put: %s", err.msg);
    etcd_lease *l = NULL;
    CHECK(etcd_lease_new(c, 5, &l, &err) < 0 && l == NULL);
    CHECK_MSG(strstr(err.msg, "authentication failed"), "lease: %s", err.msg);
    CHECK_INT(etcd_watch_new(c, "/app/", 5, 0, &w, &err), 0);
    etcd_error seen = {0};
    for (int64_t end = clock_now_ms() + 30000; w && !seen.code && clock_now_ms() < end;) {
        struct pollfd pfd = {.fd = etcd_watch_fd(w), .events = POLLIN};
        etcd_watch_batch *b = NULL;
        if (poll(&pfd, 1, 1000) > 0 && etcd_watch_take(w, &b) == 1) {
            seen = b->err;
            etcd_watch_batch_free(b);
        }
    }
    printf("  watch: %s: %s\n", etcd_code_name(seen.code), seen.msg);
    CHECK_MSG(strstr(seen.msg, "authentication failed"), "watch reported: %s", seen.msg);
out:
    etcd_watch_free(w);
    etcd_client_free(c);
    etcdh_destroy(&h);
}

/* Put n keys /app/<tag>-<i>; returns the last revision, or 0. */
static int64_t put_keys(etcd_client *c, const char *tag, int n)
{
    int64_t rev = 0;
    etcd_error err = {0};
    for (int i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "/app/%s-%02d", tag, i);
        if (etcd_put(c, k, (size_t)kl, "v", 1, 0, &rev, &err) < 0) {
            check_fail(__FILE__, __LINE__, "put %s: %s: %s", k, etcd_code_name(err.code), err.msg);
            return 0;
        }
    }
    return rev;
}

/* etcd restarts and forgets every token: the watch's stream breaks, its reopening is refused
 * until the client thread has fetched a new token, and it resumes with no gap. */
static void test_watch_resumes_with_new_token(void)
{
    if (!need_etcd())
        return;
    etcdh h = {0};
    etcd_client *c = NULL;
    etcd_watch *w = NULL;
    etcd_collect col = {0};
    etcd_error err = {0};
    snprintf(h.extra_args, sizeof h.extra_args, "--bcrypt-cost=4");
    if (!CHECK_MSG(etcdh_start(&h, 1) == 0, "etcd did not start"))
        return;
    if (!CHECK_MSG(setup_auth(&h) == 0, "auth setup failed"))
        goto out;
    etcd_config cfg = {.endpoints = h.endpoints, .username = "app", .password = "apppw",
                       .timeout_ms = 20000};
    int64_t rev0 = 0;
    if (etcd_client_new(&cfg, &c, &err) < 0 || etcd_put(c, "/app/start", 10, "1", 1, 0, &rev0, &err) < 0 ||
        etcd_watch_new(c, "/app/", 5, rev0 + 1, &w, &err) < 0) {
        check_fail(__FILE__, __LINE__, "setup: %s: %s", etcd_code_name(err.code), err.msg);
        goto out;
    }
    int64_t rev = put_keys(c, "before", 5);
    CHECK_MSG(rev && etcd_collect_to(w, &col, rev, 30000), "before the restart: %zu events", col.n);
    etcdh_stop_member(&h, 0, SIGTERM);
    if (!CHECK_MSG(etcdh_restart_member(&h, 0, true) == 0, "etcd did not restart"))
        goto out;
    rev = put_keys(c, "after", 5);
    CHECK_MSG(rev && etcd_collect_to(w, &col, rev, 30000), "after the restart: %zu events", col.n);
    printf("  %zu events, %d stream failures reported\n", col.n, col.notices);
    CHECK_MSG(col.notices > 0, "the watch stream did not break");
    if (rev)
        contiguous(&col, rev0 + 1, rev);
out:
    etcd_collect_free(&col);
    etcd_watch_free(w);
    etcd_client_free(c);
    etcdh_destroy(&h);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("refresh_does_not_stall_streams", test_refresh_does_not_stall_streams);
    check_run("wrong_password", test_wrong_password);
    check_run("watch_resumes_with_new_token", test_watch_resumes_with_new_token);
    return check_end();
}
