/* test_lb.c -- lb/: the desired IPVS table from a config store, rule by rule (SPEC §3), the
 * seed README walk-through, and a randomized check that recomputing only the services an
 * event touched always equals a full recompute. */
#include "check.h"
#include "config/config.h"
#include "lb/lb.h"
#include "lb_dump.h"

#include <errno.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#define NM4 "netmask=4294967295"

static config_store *new_store(bool filter)
{
    config_options o = {0};
    config_defaults_init(&o.defaults);
    o.filter_etcd_routes = filter;
    return config_store_new(&o);
}

static int put_src(config_store *s, enum config_source src, const char *key, const char *val)
{
    config_result r;
    config_result_init(&r);
    config_event ev = {.source = src, .key = key, .key_len = strlen(key), .value = val,
                       .value_len = strlen(val)};
    int rc = config_store_apply(s, &ev, &r);
    config_result_free(&r);
    return rc;
}

static int put(config_store *s, const char *key, const char *val)
{
    return put_src(s, CONFIG_SOURCE_ETCD, key, val);
}

static void del(config_store *s, const char *key)
{
    config_result r;
    config_result_init(&r);
    config_event ev = {.source = CONFIG_SOURCE_ETCD, .is_delete = true, .key = key,
                       .key_len = strlen(key)};
    config_store_apply(s, &ev, &r);
    config_result_free(&r);
}

/* The table (of one service, or all when svc is NULL) as text; warnings into *warn if set. */
static char *table(config_store *s, const char *svc, lb_table *keep)
{
    lb_table t;
    lb_table_init(&t);
    int r = svc ? lb_compute_service(s, svc, &t) : lb_compute_all(s, &t);
    CHECK_INT(r, 0);
    char *d = lb_dump(&t, NULL);
    if (keep)
        *keep = t;
    else
        lb_table_free(&t);
    return d;
}

#define CHECK_TABLE(s, svc, want) do { char *got_ = table(s, svc, NULL); \
    CHECK_MSG(strcmp(got_, want) == 0, "table:\n%s--- want:\n%s", got_, want); free(got_); } while (0)

static void test_readme(void)
{
    config_store *s = new_store(false);
    CHECK_TABLE(s, NULL, "");
    CHECK_INT(put(s, "services/test/frontend", "{\"ipv4\": \"10.107.107.107\", \"tcp\": 1337}"), 0);
    CHECK_TABLE(s, "test", "TCP 10.107.107.107:1337 wlc flags=0x0 timeout=0 " NM4 " owner=test\n");
    put(s, "services/test/backends/test3-1", "{\"ipv4\": \"10.3.107.1\", \"tcp\": 1337}");
    put(s, "services/test/backends/test3-2", "{\"ipv4\": \"10.3.107.2\", \"tcp\": 1337}");
    CHECK_TABLE(s, "test", "TCP 10.107.107.107:1337 wlc flags=0x0 timeout=0 " NM4 " owner=test\n"
                           "  -> 10.3.107.1:1337 masq 10\n  -> 10.3.107.2:1337 masq 10\n");
    put(s, "services/test/backends/test3-2", "{\"ipv4\": \"10.3.107.2\", \"tcp\": 1338}");
    CHECK_TABLE(s, NULL, "TCP 10.107.107.107:1337 wlc flags=0x0 timeout=0 " NM4 " owner=test\n"
                         "  -> 10.3.107.1:1337 masq 10\n  -> 10.3.107.2:1338 masq 10\n");
    /* the README's routes: masq keeps the backend port, droute via a gateway the frontend's */
    put(s, "routes/test3", "{\"Prefix4\":\"10.3.107.0/24\",\"IpvsMethod\":\"masq\"}");
    put(s, "routes/test6", "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway4\":\"10.107.107.6\",\"IpvsMethod\":\"droute\"}");
    put(s, "services/test/backends/test6-1", "{\"ipv4\": \"10.6.107.1\", \"tcp\": 8080}");
    CHECK_TABLE(s, NULL, "TCP 10.107.107.107:1337 wlc flags=0x0 timeout=0 " NM4 " owner=test\n"
                         "  -> 10.3.107.1:1337 masq 10\n  -> 10.3.107.2:1338 masq 10\n"
                         "  -> 10.107.107.6:1337 droute 10\n");
    /* etcdctl del --prefix services/test: one DELETE per key */
    del(s, "services/test/backends/test3-1");
    del(s, "services/test/backends/test3-2");
    del(s, "services/test/backends/test6-1");
    del(s, "services/test/frontend");
    CHECK_TABLE(s, NULL, "");
    CHECK_INT(config_store_service_count(s), 0);
    config_store_free(s);
}

static void test_dual_stack(void)
{
    config_store *s = new_store(false);
    put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"ipv6\":\"2001:db8::1\",\"tcp\":80,\"udp\":53}");
    put(s, "services/web/backends/b4", "{\"ipv4\":\"10.1.0.4\",\"tcp\":8080}");
    put(s, "services/web/backends/b6", "{\"ipv6\":\"2001:db8::6\",\"udp\":5353,\"weight\":3}");
    put(s, "services/web/backends/bd", "{\"ipv4\":\"10.1.0.9\",\"ipv6\":\"2001:db8::9\",\"tcp\":80,\"udp\":53}");
    put(s, "services/web/backends/none", "{\"ipv6\":\"2001:db8::7\",\"tcp\":80}");
    CHECK_TABLE(s, "web",
        "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
        "  -> 10.1.0.4:8080 masq 10\n  -> 10.1.0.9:80 masq 10\n"
        "UDP 10.0.0.1:53 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
        "  -> 10.1.0.9:53 masq 10\n"
        "TCP [2001:db8::1]:80 wlc flags=0x0 timeout=0 netmask=128 owner=web\n"
        "  -> [2001:db8::7]:80 masq 10\n  -> [2001:db8::9]:80 masq 10\n"
        "UDP [2001:db8::1]:53 wlc flags=0x0 timeout=0 netmask=128 owner=web\n"
        "  -> [2001:db8::6]:5353 masq 3\n  -> [2001:db8::9]:53 masq 10\n");
    config_store_free(s);
}

static void test_attrs_fwmark(void)
{
    config_store *s = new_store(false);
    put(s, "services/p/frontend", "{\"ipv6\":\"2001:db8::1\",\"tcp\":443,\"scheduler\":\"sh\",\"persistence\":300,"
                                  "\"flags\":[\"sh-port\",\"ops\"]}");
    put(s, "services/p/backends/a", "{\"ipv6\":\"2001:db8::a\",\"tcp\":8443}");
    char want[512];
    snprintf(want, sizeof want, "TCP [2001:db8::1]:443 sh flags=0x%x timeout=300 netmask=128 owner=p\n"
             "  -> [2001:db8::a]:8443 masq 10\n",
             IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_SCHED_SH_PORT | IP_VS_SVC_F_ONEPACKET);
    CHECK_TABLE(s, "p", want);
    put(s, "services/fw/frontend", "{\"fwmark\":7,\"ipv4\":\"10.0.0.1\",\"ipv6\":\"::1\",\"tcp\":80}");
    put(s, "services/fw/backends/a", "{\"ipv4\":\"10.1.0.1\",\"tcp\":8080}");
    put(s, "services/fw/backends/b", "{\"ipv6\":\"2001:db8::b\"}");
    put(s, "routes/d", "{\"Prefix6\":\"2001:db8::/64\",\"IpvsMethod\":\"droute\"}");
    CHECK_TABLE(s, "fw", "FWM 7 IPv4 wlc flags=0x0 timeout=0 " NM4 " owner=fw\n  -> 10.1.0.1:0 masq 10\n"
                         "FWM 7 IPv6 wlc flags=0x0 timeout=0 netmask=128 owner=fw\n  -> [2001:db8::b]:0 droute 10\n");
    put(s, "services/fw4/frontend", "{\"fwmark\":8}");
    CHECK_TABLE(s, "fw4", "FWM 8 IPv4 wlc flags=0x0 timeout=0 " NM4 " owner=fw4\n");
    config_store_free(s);
}

static void test_routes(void)
{
    config_store *s = new_store(false);
    put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "services/web/backends/in24", "{\"ipv4\":\"10.2.3.4\",\"tcp\":8080}");
    put(s, "services/web/backends/in16", "{\"ipv4\":\"10.2.9.4\",\"tcp\":8080}");
    put(s, "services/web/backends/none", "{\"ipv4\":\"10.9.9.9\",\"tcp\":8080}");
    put(s, "services/web/backends/filtered", "{\"ipv4\":\"10.5.0.1\",\"tcp\":8080}");
    put(s, "routes/wide", "{\"Prefix4\":\"10.2.0.0/16\",\"IpvsMethod\":\"droute\"}");
    put(s, "routes/b-narrow", "{\"Prefix4\":\"10.2.3.0/24\",\"IpvsMethod\":\"tunnel\"}");
    put(s, "routes/a-narrow", "{\"Prefix4\":\"10.2.3.0/24\",\"IpvsMethod\":\"masq\"}");
    put(s, "routes/f", "{\"Prefix4\":\"10.5.0.0/16\",\"IpvsMethod\":\"filter\"}");
    put(s, "routes/v6", "{\"Prefix6\":\"::/0\",\"IpvsMethod\":\"filter\"}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.2.3.4:8080 masq 10\n  -> 10.2.9.4:80 droute 10\n"
                          "  -> 10.9.9.9:8080 masq 10\n");
    /* the tie goes to the name sorting first: removing a-narrow makes b-narrow apply */
    del(s, "routes/a-narrow");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.2.3.4:80 tunnel 10\n  -> 10.2.9.4:80 droute 10\n"
                          "  -> 10.9.9.9:8080 masq 10\n");
    /* the default method applies to unrouted backends */
    config_options o = {0};
    config_defaults_init(&o.defaults);
    o.defaults.method = CONFIG_METHOD_TUNNEL;
    config_store *t = config_store_new(&o);
    put(t, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(t, "services/web/backends/x", "{\"ipv4\":\"10.9.9.9\",\"tcp\":8080}");
    put(t, "routes/m", "{\"Prefix4\":\"10.8.0.0/16\"}");
    put(t, "services/web/backends/y", "{\"ipv4\":\"10.8.0.1\",\"tcp\":8080}");
    CHECK_TABLE(t, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.8.0.1:80 tunnel 10\n  -> 10.9.9.9:80 tunnel 10\n");
    config_store_free(t);
    config_store_free(s);
}

static void test_route_change(void)
{
    config_store *s = new_store(false);
    put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "services/web/backends/b1", "{\"ipv4\":\"10.6.107.1\",\"tcp\":8080}");
    put(s, "services/web/backends/b2", "{\"ipv4\":\"10.6.107.2\",\"tcp\":8080}");
    put(s, "services/other/backends/b", "{\"ipv4\":\"10.6.107.3\",\"tcp\":8080}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.6.107.1:8080 masq 10\n  -> 10.6.107.2:8080 masq 10\n");
    config_result r;
    config_result_init(&r);
    config_event ev = {.source = CONFIG_SOURCE_ETCD, .key = "routes/gw", .key_len = 9,
                       .value = "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway4\":\"10.107.107.6\",\"IpvsMethod\":\"droute\"}"};
    ev.value_len = strlen(ev.value);
    CHECK_INT(config_store_apply(s, &ev, &r), 0);
    /* the services with a backend under the prefix are touched, and only they */
    CHECK(r.changed);
    CHECK_INT(r.services.n, 2);
    CHECK_STR(r.services.v[0], "other");
    CHECK_STR(r.services.v[1], "web");
    /* existing backends are re-routed at once, and merge behind the gateway: 10 + 10 */
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.107.107.6:80 droute 20\n");
    /* weight 0 is kept and merges too */
    put(s, "services/web/backends/b2", "{\"ipv4\":\"10.6.107.2\",\"tcp\":8080,\"weight\":0}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.107.107.6:80 droute 10\n");
    put(s, "services/web/backends/b1", "{\"ipv4\":\"10.6.107.1\",\"tcp\":8080,\"weight\":0}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.107.107.6:80 droute 0\n");
    /* an invalid route update keeps the old route: nothing changes */
    ev.value = "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway6\":\"2001:db8::6\"}";
    ev.value_len = strlen(ev.value);
    CHECK_INT(config_store_apply(s, &ev, &r), -EINVAL);
    CHECK_STR(r.error, "routes/gw: Gateway6: 2001:db8::6 is an IPv6 gateway for the IPv4 prefix 10.6.107.0/24");
    CHECK(!r.changed && r.services.n == 0);
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.107.107.6:80 droute 0\n");
    ev.is_delete = true;
    CHECK_INT(config_store_apply(s, &ev, &r), 0);
    CHECK_INT(r.services.n, 2);
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n"
                          "  -> 10.6.107.1:8080 masq 0\n  -> 10.6.107.2:8080 masq 0\n");
    config_result_free(&r);
    config_store_free(s);
}

static void test_merge_methods_and_cap(void)
{
    config_store *s = new_store(false);
    put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "routes/r1", "{\"Prefix4\":\"10.6.0.0/24\",\"Gateway4\":\"10.9.9.9\",\"IpvsMethod\":\"droute\"}");
    put(s, "routes/r2", "{\"Prefix4\":\"10.7.0.0/24\",\"Gateway4\":\"10.9.9.9\",\"IpvsMethod\":\"tunnel\"}");
    put(s, "services/web/backends/z", "{\"ipv4\":\"10.6.0.1\",\"tcp\":1}");
    put(s, "services/web/backends/a", "{\"ipv4\":\"10.7.0.1\",\"tcp\":2,\"weight\":5}");
    lb_table t;
    char *d = table(s, "web", &t);
    CHECK_STR(d, "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.9.9.9:80 tunnel 15\n");
    CHECK_INT(t.warnings.n, 1);
    if (t.warnings.n)
        CHECK_STR(t.warnings.v[0], "service web: TCP 10.0.0.1:80: destination 10.9.9.9:80 merges backends "
                                   "a (tunnel) and z (droute); using tunnel");
    free(d);
    lb_table_free(&t);
    lb_table_free(&t);
    lb_table_free(NULL);
    /* 40000 x 65535 > INT_MAX: the merged weight is capped */
    char key[64];
    for (int i = 0; i < 40000; i++) {
        snprintf(key, sizeof key, "services/web/backends/m%05d", i);
        put(s, key, "{\"ipv4\":\"10.6.0.2\",\"tcp\":1,\"weight\":65535}");
    }
    d = table(s, "web", NULL);
    CHECK_STR(d, "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.9.9.9:80 tunnel 2147483647\n");
    free(d);
    config_store_free(s);
}

static void test_conflicts(void)
{
    config_store *s = new_store(false);
    put(s, "services/zeta/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"udp\":53}");
    put(s, "services/zeta/backends/z", "{\"ipv4\":\"10.1.0.26\",\"tcp\":80,\"udp\":53}");
    put(s, "services/alpha/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "services/alpha/backends/a", "{\"ipv4\":\"10.1.0.1\",\"tcp\":80}");
    lb_table t;
    char *d = table(s, NULL, &t);
    CHECK_STR(d, "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=alpha\n  -> 10.1.0.1:80 masq 10\n"
                 "UDP 10.0.0.1:53 wlc flags=0x0 timeout=0 " NM4 " owner=zeta\n  -> 10.1.0.26:53 masq 10\n");
    CHECK_INT(t.conflicts.n, 1);
    if (t.conflicts.n)
        CHECK_STR(t.conflicts.v[0], "zeta");
    CHECK_INT(t.warnings.n, 1);
    if (t.warnings.n)
        CHECK_STR(t.warnings.v[0], "service zeta: TCP 10.0.0.1:80 conflicts with service alpha, which sorts first and wins");
    free(d);
    lb_table_free(&t);
    del(s, "services/alpha/frontend");
    CHECK_TABLE(s, "zeta", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=zeta\n  -> 10.1.0.26:80 masq 10\n"
                           "UDP 10.0.0.1:53 wlc flags=0x0 timeout=0 " NM4 " owner=zeta\n  -> 10.1.0.26:53 masq 10\n");
    CHECK_TABLE(s, "alpha", "");
    config_store_free(s);
}

static void test_sources_and_stale(void)
{
    config_store *s = new_store(true);
    put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "services/web/backends/b", "{\"ipv4\":\"10.6.0.1\",\"tcp\":8080}");
    put(s, "routes/etcd", "{\"Prefix4\":\"10.6.0.0/16\",\"Gateway4\":\"10.9.9.9\",\"IpvsMethod\":\"droute\"}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.6.0.1:8080 masq 10\n");
    put_src(s, CONFIG_SOURCE_LOCAL, "routes/local", "{\"Prefix4\":\"10.6.0.0/24\",\"IpvsMethod\":\"tunnel\"}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.6.0.1:80 tunnel 10\n");
    put_src(s, CONFIG_SOURCE_LOCAL, "services/web/backends/b", "{\"ipv4\":\"10.6.0.1\",\"tcp\":8080,\"weight\":4}");
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.6.0.1:80 tunnel 4\n");
    /* a key turning invalid keeps its last valid value */
    CHECK_INT(put_src(s, CONFIG_SOURCE_LOCAL, "services/web/backends/b", "{\"ipv4\":\"10.6.0.1\",\"tcp\":\"8080\"}"), -EINVAL);
    CHECK_INT(put(s, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"udp\":1.5}"), -EINVAL);
    CHECK_TABLE(s, "web", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=web\n  -> 10.6.0.1:80 tunnel 4\n");
    CHECK_INT(config_store_invalid_count(s), 2);
    config_store_free(s);
}

/* Found by fuzz_store: the same route value arriving from a second source moves the route in
 * force to that source's slot; a later change of the first source must not leak through. */
static void test_route_source_switch(void)
{
    config_store *s = new_store(false);
    const char *gw = "{\"Prefix4\":\"10.7.0.0/24\",\"Gateway4\":\"10.9.9.9\",\"IpvsMethod\":\"masq\"}";
    put(s, "services/w/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    put(s, "services/w/backends/a", "{\"ipv4\":\"10.7.0.1\",\"tcp\":2}");
    put(s, "routes/g2", gw);
    CHECK_TABLE(s, "w", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=w\n  -> 10.9.9.9:80 masq 10\n");
    put_src(s, CONFIG_SOURCE_LOCAL, "routes/g2", gw);
    put(s, "routes/g2", "{\"Prefix4\":\"10.7.0.0/24\"}");
    CHECK_TABLE(s, "w", "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=w\n  -> 10.9.9.9:80 masq 10\n");
    config_store_free(s);
}

/* The same keys in two orders give the same table. */
static void test_deterministic(void)
{
    static const char *kv[][2] = {
        {"services/b/frontend", "{\"ipv4\":\"10.0.0.2\",\"tcp\":80}"},
        {"services/a/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"ipv6\":\"::1\"}"},
        {"services/a/backends/x", "{\"ipv4\":\"10.1.0.1\",\"ipv6\":\"::5\",\"tcp\":80}"},
        {"services/a/backends/y", "{\"ipv4\":\"10.1.0.1\",\"tcp\":80,\"weight\":3}"},
        {"services/b/backends/x", "{\"ipv4\":\"10.2.0.1\",\"tcp\":81}"},
        {"routes/r", "{\"Prefix4\":\"10.1.0.0/16\",\"IpvsMethod\":\"droute\"}"},
    };
    size_t n = sizeof kv / sizeof kv[0];
    config_store *s1 = new_store(false), *s2 = new_store(false);
    for (size_t i = 0; i < n; i++) {
        put(s1, kv[i][0], kv[i][1]);
        put(s2, kv[n - 1 - i][0], kv[n - 1 - i][1]);
    }
    char *d1 = table(s1, NULL, NULL), *d2 = table(s2, NULL, NULL);
    CHECK_STR(d1, d2);
    CHECK_STR(d1, "TCP 10.0.0.1:80 wlc flags=0x0 timeout=0 " NM4 " owner=a\n  -> 10.1.0.1:80 droute 13\n"
                  "TCP 10.0.0.2:80 wlc flags=0x0 timeout=0 " NM4 " owner=b\n  -> 10.2.0.1:81 masq 10\n"
                  "TCP [::1]:80 wlc flags=0x0 timeout=0 netmask=128 owner=a\n  -> [::5]:80 masq 10\n");
    free(d1);
    free(d2);
    config_store_free(s1);
    config_store_free(s2);
}

/* ---- randomized: incremental recompute of touched services == full recompute ---- */

#define NSVC 4
static const char *svc_names[NSVC] = {"a", "b", "c", "d"};

static uint64_t rng = 88172645463325252ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static bool route_heavy; /* second phase: mostly route events over few names and values */

/* A random event over a small key space, values often valid, sometimes not. */
static void random_event(char *key, size_t ks, char *val, size_t vs, bool *is_del, int *src)
{
    static const char *vips[] = {"10.0.0.1", "10.0.0.2"};
    static const char *nets[] = {"10.6.0.0/16", "10.6.1.0/24", "10.7.0.0/16", "0.0.0.0/0"};
    static const char *methods[] = {"masq", "droute", "tunnel", "filter"};
    *is_del = rnd(5) == 0;
    *src = rnd(4) == 0 ? CONFIG_SOURCE_LOCAL : rnd(6) == 0 ? CONFIG_SOURCE_ADVERTISED : CONFIG_SOURCE_ETCD;
    unsigned k = route_heavy && rnd(3) ? 2 : rnd(10);
    if (k < 2) {
        snprintf(key, ks, "services/%s/frontend", svc_names[rnd(NSVC)]);
        snprintf(val, vs, "{\"ipv4\":\"%s\",\"tcp\":%u%s}", vips[rnd(2)], 80 + rnd(2),
                 rnd(3) ? ",\"udp\":53" : "");
    } else if (k < 3) {
        snprintf(key, ks, "routes/r%u", rnd(route_heavy ? 2 : 3));
        if (rnd(2)) /* few distinct values, so two sources often hold equal ones */
            snprintf(val, vs, "{\"Prefix4\":\"%s\",\"Gateway4\":\"10.9.9.9\"}", nets[rnd(2)]);
        else
            snprintf(val, vs, "{\"Prefix4\":\"%s\"%s,\"IpvsMethod\":\"%s\"}", nets[rnd(4)],
                     rnd(2) ? ",\"Gateway4\":\"10.9.9.9\"" : "", methods[rnd(4)]);
    } else {
        snprintf(key, ks, "services/%s/backends/b%u", svc_names[rnd(NSVC)], rnd(6));
        snprintf(val, vs, "{\"ipv4\":\"10.%u.%u.%u\",\"tcp\":%u,\"udp\":53,\"weight\":%u}", 6 + rnd(2),
                 rnd(2), rnd(3), 8080 + rnd(2), rnd(8) == 0 ? 70000 : rnd(20));
    }
}

static void incremental_equals_full(void)
{
    config_store *s = new_store(rnd(2));
    char *cur[NSVC] = {0};
    for (int i = 0; i < NSVC; i++)
        cur[i] = strdup("");
    config_result r;
    config_result_init(&r);
    for (int step = 0; step < 3000 && !check_failed(); step++) {
        char key[128], val[256];
        bool is_del;
        int src;
        random_event(key, sizeof key, val, sizeof val, &is_del, &src);
        config_event ev = {.source = src, .is_delete = is_del, .key = key, .key_len = strlen(key),
                           .value = val, .value_len = strlen(val)};
        int rc = config_store_apply(s, &ev, &r);
        CHECK(rc == 0 || rc == -EINVAL);
        for (int i = 0; i < NSVC; i++) {
            bool touched = false;
            for (size_t j = 0; j < r.services.n; j++)
                touched |= strcmp(r.services.v[j], svc_names[i]) == 0;
            if (touched) {
                free(cur[i]);
                cur[i] = table(s, svc_names[i], NULL);
            }
        }
        lb_table all;
        lb_table_init(&all);
        CHECK_INT(lb_compute_all(s, &all), 0);
        for (int i = 0; i < NSVC; i++) {
            char *want = lb_dump(&all, svc_names[i]);
            CHECK_MSG(strcmp(want, cur[i]) == 0, "step %d (%s %s): service %s incremental:\n%s--- full:\n%s",
                      step, key, is_del ? "DELETE" : val, svc_names[i], cur[i], want);
            free(want);
        }
        lb_table_free(&all);
    }
    for (int i = 0; i < NSVC; i++)
        free(cur[i]);
    config_result_free(&r);
    config_store_free(s);
}

static void test_incremental_equals_full(void)
{
    for (int round = 0; round < 4 && !check_failed(); round++) {
        route_heavy = round % 2;
        incremental_equals_full();
    }
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("readme", test_readme);
    check_run("dual_stack", test_dual_stack);
    check_run("attrs_fwmark", test_attrs_fwmark);
    check_run("routes", test_routes);
    check_run("route_change", test_route_change);
    check_run("merge_methods_and_cap", test_merge_methods_and_cap);
    check_run("conflicts", test_conflicts);
    check_run("sources_and_stale", test_sources_and_stale);
    check_run("route_source_switch", test_route_source_switch);
    check_run("deterministic", test_deterministic);
    check_run("incremental_equals_full", test_incremental_equals_full);
    return check_end();
}
