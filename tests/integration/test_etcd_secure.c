/* test_etcd_secure.c -- the etcd client with auth and TLS against real etcd servers: a user
 * with a role on a prefix, token expiry and refresh, a wrong password; TLS with a CA made by
 * the test (server and client certificates), a wrong CA, a missing client certificate. */
#include "check.h"
#include "etcd_collect.h"
#include "etcd_harness.h"
#include "etcd/etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static bool need_etcd(void)
{
    if (!etcdh_available()) {
        check_skip("etcd not available (install etcd-server etcd-client)");
        return false;
    }
    return true;
}

static etcd_client *client(const etcd_config *cfg)
{
    etcd_client *c = NULL;
    etcd_error err = {0};
    if (etcd_client_new(cfg, &c, &err) < 0)
        check_fail(__FILE__, __LINE__, "etcd_client_new: %s", err.msg);
    return c;
}

/* root + user "app" with readwrite on /app/, then auth enable (through etcdctl). */
static int setup_auth(etcdh *h)
{
    int rc = etcdh_ctl(h, "user add root:rootpw") | etcdh_ctl(h, "role add app") |
             etcdh_ctl(h, "role grant-permission app --prefix=true readwrite /app/") |
             etcdh_ctl(h, "user add app:apppw") | etcdh_ctl(h, "user grant-role app app") |
             etcdh_ctl(h, "auth enable");
    return rc;
}

static void test_auth(void)
{
    if (!need_etcd())
        return;
    etcdh h = {0};
    snprintf(h.extra_args, sizeof h.extra_args, "--auth-token-ttl=1");
    if (!CHECK_MSG(etcdh_start(&h, 1) == 0, "etcd did not start"))
        return;
    CHECK_INT(setup_auth(&h), 0);
    etcd_config cfg = {.endpoints = h.endpoints, .username = "app", .password = "apppw",
                       .timeout_ms = 5000};
    etcd_client *c = client(&cfg);
    etcd_error err = {0};
    etcd_kvs *kvs = NULL;
    if (!c)
        goto out;
    CHECK_INT(etcd_put(c, "/app/a", 6, "1", 1, 0, NULL, &err), 0);
    CHECK_INT(etcd_get(c, "/app/a", 6, &kvs, NULL, &err), 0);
    CHECK(kvs != NULL);
    etcd_kvs_free(kvs);
    /* outside the role's prefix */
    CHECK_INT(etcd_put(c, "/other", 6, "1", 1, 0, NULL, &err), -EPERM);
    CHECK_MSG(strstr(err.msg, "etcdserver: permission denied") != NULL, "%s: %s",
              etcd_code_name(err.code), err.msg);
    /* tokens expire after 1 s (+1 s resolution) of disuse: calls and new watches re-authenticate */
    sleep(3);
    etcd_watch *w = NULL;
    CHECK_INT(etcd_watch_new(c, "/app/", 5, 0, &w, &err), 0);
    sleep(3);
    int64_t rev = 0;
    CHECK_INT(etcd_put(c, "/app/b", 6, "2", 1, 0, &rev, &err), 0);
    etcd_collect col = {0};
    etcd_collect_until(w, &col, 1, 15000);
    CHECK(col.n == 1 && strcmp(col.ev[0].key, "/app/b") == 0 && col.ev[0].mod_revision == rev);
    etcd_collect_free(&col);
    etcd_watch_free(w);
    /* leases work under auth too */
    etcd_lease *l = NULL;
    CHECK_INT(etcd_lease_new(c, 5, &l, &err), 0);
    CHECK_INT(etcd_lease_revoke(l, &err), 0);
    etcd_lease_free(l);
    etcd_client_free(c);
    /* wrong password: a clear error, no crash */
    cfg.password = "wrong";
    c = client(&cfg);
    if (c) {
        int rc = etcd_put(c, "/app/a", 6, "1", 1, 0, NULL, &err);
        CHECK(rc < 0);
        CHECK_MSG(strstr(err.msg, "authentication failed") != NULL, "%s: %s", etcd_code_name(err.code), err.msg);
        printf("  wrong password: %s: %s\n", etcd_code_name(err.code), err.msg);
    }
    etcd_client_free(c);
    /* no credentials at all on an auth-enabled etcd */
    etcd_config anon = {.endpoints = h.endpoints, .timeout_ms = 3000};
    c = client(&anon);
    if (c) {
        CHECK(etcd_put(c, "/app/a", 6, "1", 1, 0, NULL, &err) < 0);
        printf("  no user: %s: %s\n", etcd_code_name(err.code), err.msg);
    }
    etcd_client_free(c);
out:
    etcdh_destroy(&h);
}

static void test_tls(void)
{
    if (!need_etcd())
        return;
    etcdh h = {.tls = true, .client_cert_auth = true};
    if (!CHECK_MSG(etcdh_start(&h, 1) == 0, "etcd with TLS did not start"))
        return;
    etcd_config cfg = {.endpoints = h.endpoints, .ca_file = h.ca, .cert_file = h.cert,
                       .key_file = h.key, .timeout_ms = 5000};
    etcd_client *c = client(&cfg);
    etcd_error err = {0};
    if (c) {
        int64_t rev = 0;
        etcd_watch *w = NULL;
        CHECK_INT(etcd_watch_new(c, "/tls/", 5, 0, &w, &err), 0);
        usleep(300 * 1000);
        CHECK_INT(etcd_put(c, "/tls/a", 6, "1", 1, 0, &rev, &err), 0);
        etcd_collect col = {0};
        etcd_collect_until(w, &col, 1, 10000);
        CHECK(col.n == 1 && col.ev[0].mod_revision == rev);
        etcd_collect_free(&col);
        etcd_watch_free(w);
    }
    etcd_client_free(c);
    /* a CA that did not sign the server's certificate */
    cfg.ca_file = h.wrong_ca;
    cfg.timeout_ms = 2000;
    c = client(&cfg);
    if (c) {
        CHECK(etcd_put(c, "/tls/b", 6, "1", 1, 0, NULL, &err) < 0);
        CHECK_INT(err.code, 14 /* UNAVAILABLE */);
        CHECK_MSG(strstr(err.msg, "SSL") || strstr(err.msg, "ssl") || strstr(err.msg, "handshake") ||
                  strstr(err.msg, "certificate"), "unclear TLS error: %s", err.msg);
        printf("  wrong CA: %s: %s\n", etcd_code_name(err.code), err.msg);
    }
    etcd_client_free(c);
    /* right CA, but no client certificate where etcd demands one */
    cfg.ca_file = h.ca;
    cfg.cert_file = cfg.key_file = NULL;
    c = client(&cfg);
    if (c) {
        CHECK(etcd_put(c, "/tls/b", 6, "1", 1, 0, NULL, &err) < 0);
        printf("  no client cert: %s: %s\n", etcd_code_name(err.code), err.msg);
    }
    etcd_client_free(c);
    /* a CA file that does not exist */
    cfg.ca_file = "/nonexistent/ca.crt";
    c = NULL;
    CHECK(etcd_client_new(&cfg, &c, &err) < 0 && c == NULL);
    CHECK(strstr(err.msg, "/nonexistent/ca.crt") != NULL);
    etcdh_destroy(&h);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("auth", test_auth);
    check_run("tls", test_tls);
    return check_end();
}
