/* test_etcd.c -- the etcd client's pure parts, without a server: prefix range ends, endpoint
 * URL parsing and config errors, gRPC status names and errno mapping. */
#include "check.h"
#include "etcd/internal.h"

#include <errno.h>
#include <stdio.h>

static void test_prefix_end(void)
{
    uint8_t end[8];
    CHECK_INT(etcd_prefix_end((const uint8_t *)"/a/", 3, end), 3);
    CHECK(memcmp(end, "/a0", 3) == 0);
    const uint8_t ff[] = {'a', 0xff, 0xff};
    CHECK_INT(etcd_prefix_end(ff, 3, end), 1);
    CHECK_INT(end[0], 'b');
    const uint8_t all[] = {0xff, 0xff};
    CHECK_INT(etcd_prefix_end(all, 2, end), 1);
    CHECK_INT(end[0], 0);  /* "\0": every key >= the prefix */
    const uint8_t nul[] = {'k', 0x00};
    CHECK_INT(etcd_prefix_end(nul, 2, end), 2);
    CHECK(end[0] == 'k' && end[1] == 1);
}

static void test_endpoints(void)
{
    etcd_config cfg = {.endpoints = "http://127.0.0.1:2379, http://localhost,https://[::1]:2380/"};
    etcd_client *c = NULL;
    etcd_error err = {0};
    CHECK_INT(etcd_client_new(&cfg, &c, &err), 0);
    if (CHECK(c != NULL) && CHECK(c->n_eps == 3)) {
        CHECK_STR(c->eps[0].target, "127.0.0.1:2379");
        CHECK_STR(c->eps[1].target, "localhost:2379");
        CHECK_STR(c->eps[2].target, "[::1]:2380");
        char url[64];
        CHECK_INT(etcd_client_endpoint(c, url, sizeof url), 0);
        CHECK_STR(url, "http://127.0.0.1:2379");
        etcd_client_rotate(c, 0);
        etcd_client_rotate(c, 0);  /* someone already moved on: no second step */
        CHECK_INT(etcd_client_endpoint(c, url, sizeof url), 1);
    }
    etcd_client_free(c);
    static const char *bad[] = {"127.0.0.1:2379", "ftp://x", "http://", "http:///x", ",", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.endpoints = bad[i];
        c = NULL;
        int rc = etcd_client_new(&cfg, &c, &err);
        if (bad[i][0] == '\0') {  /* empty = the default endpoint */
            CHECK_INT(rc, 0);
        } else {
            CHECK_MSG(rc == -EINVAL && c == NULL, "\"%s\" accepted (rc %d)", bad[i], rc);
            CHECK_MSG(err.msg[0] != '\0', "no message for \"%s\"", bad[i]);
        }
        etcd_client_free(c);
    }
    cfg = (etcd_config){.endpoints = "http://x:1", .username = "u"};
    CHECK_INT(etcd_client_new(&cfg, &c, &err), -EINVAL);
    cfg = (etcd_config){.endpoints = "https://x:1", .cert_file = "/c"};
    CHECK_INT(etcd_client_new(&cfg, &c, &err), -EINVAL);
    etcd_client_free(NULL);
    etcd_watch_free(NULL);
    etcd_lease_free(NULL);
    etcd_kvs_free(NULL);
    etcd_watch_batch_free(NULL);
}

static void test_codes(void)
{
    CHECK_STR(etcd_code_name(14), "UNAVAILABLE");
    CHECK_STR(etcd_code_name(16), "UNAUTHENTICATED");
    CHECK_STR(etcd_code_name(ETCD_ERR_LOCAL), "LOCAL");
    CHECK_STR(etcd_code_name(99), "UNKNOWN");
    CHECK_INT(etcd_errno_of(11), -ERANGE);
    CHECK_INT(etcd_errno_of(7), -EPERM);
    CHECK_INT(etcd_errno_of(0), 0);
    CHECK(etcd_auth_error(16, "etcdserver: invalid auth token"));
    CHECK(etcd_auth_error(3, "etcdserver: revision of auth store is old"));
    CHECK(!etcd_auth_error(3, "etcdserver: authentication failed, invalid user ID or password"));
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("prefix_end", test_prefix_end);
    check_run("endpoints", test_endpoints);
    check_run("codes", test_codes);
    return check_end();
}
