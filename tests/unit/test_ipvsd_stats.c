/* test_ipvsd_stats.c -- the kernel counters' thread of clusterf-ipvs's /metrics
 * (src/ipvsd/ipvsd_stats.c) on tables built here (the thread is handed a table, as in a dry
 * run): only owned services are rendered, with the labels the loop gave; counts; a second
 * job while one runs is refused; freeing it in the middle of a large table returns. The same
 * thread against the real kernel (its own IPVS connection) is in tests/vm/guest_metrics.sh. */
#include "check.h"
#include "ipvsd/ipvsd_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A table of n services 10.1.x.y:80 with dests 10.2.x.y:8080+k, conns = k + 1. */
static struct ipvs_table *table(size_t n, size_t dests)
{
    struct ipvs_table *t = calloc(1, sizeof *t);
    t->entries = calloc(n, sizeof *t->entries);
    t->n = n;
    for (size_t i = 0; i < n; i++) {
        struct ipvs_entry *e = &t->entries[i];
        e->svc.af = AF_INET;
        e->svc.protocol = IPPROTO_TCP;
        e->svc.port = 80;
        uint32_t a = htonl(0x0a010000u + (uint32_t)i);
        memcpy(e->svc.addr, &a, 4);
        e->svc.stats.conns = 100 + i;
        e->dests = calloc(dests, sizeof *e->dests);
        e->n_dests = dests;
        for (size_t k = 0; k < dests; k++) {
            uint32_t d = htonl(0x0a020000u + (uint32_t)i);
            memcpy(e->dests[k].addr, &d, 4);
            e->dests[k].port = (uint16_t)(8080 + k);
            e->dests[k].stats.conns = k + 1;
        }
    }
    return t;
}

/* The owned list for services [from, to) of table(): keys as ipvs_service_str gives them. */
static ipvsd_stats_owned *owned(size_t from, size_t to)
{
    ipvsd_stats_owned *o = calloc(to - from, sizeof *o);
    for (size_t i = from; i < to; i++) {
        char key[64], labels[128];
        snprintf(key, sizeof key, "tcp 10.1.%zu.%zu:80", i / 256, i % 256);
        snprintf(labels, sizeof labels, "service=\"s%zu\",protocol=\"tcp\",vip=\"10.1.%zu.%zu:80\"",
                 i, i / 256, i % 256);
        o[i - from].key = strdup(key);
        o[i - from].labels = strdup(labels);
    }
    return o;
}

/* Wait (at most 30 s) for the thread's result. */
static ipvsd_stats_result *wait_result(ipvsd_stats *s)
{
    struct pollfd p = {.fd = ipvsd_stats_fd(s), .events = POLLIN};
    if (poll(&p, 1, 30000) != 1)
        return NULL;
    return ipvsd_stats_take(s);
}

static void test_owned_only(void)
{
    ipvsd_stats *s = ipvsd_stats_new();
    if (!CHECK(s != NULL))
        return;
    /* services 0..2 in the table, 1 and 2 owned */
    CHECK_INT(ipvsd_stats_submit(s, owned(1, 3), 2, table(3, 2), true), 0);
    ipvsd_stats_result *r = wait_result(s);
    if (CHECK(r != NULL) && CHECK_MSG(r->text != NULL, "%s", r->error)) {
        CHECK_INT((int)r->services, 2);
        CHECK_INT((int)r->dests, 4);
        CHECK(strstr(r->text, "clusterf_ipvs_service_connections_total{service=\"s1\","
                              "protocol=\"tcp\",vip=\"10.1.0.1:80\"} 101\n") != NULL);
        CHECK(strstr(r->text, "clusterf_ipvs_destination_connections_total{service=\"s2\","
                              "protocol=\"tcp\",vip=\"10.1.0.2:80\",destination=\"10.2.0.2:8081\"} 2\n") != NULL);
        CHECK(strstr(r->text, "# TYPE clusterf_ipvs_destination_active_connections gauge\n") != NULL);
        CHECK_MSG(strstr(r->text, "10.1.0.0:80") == NULL, "a service not owned was rendered");
        CHECK(r->len == strlen(r->text));
    }
    ipvsd_stats_result_free(r);
    /* without the per-destination series */
    CHECK_INT(ipvsd_stats_submit(s, owned(0, 1), 1, table(3, 2), false), 0);
    r = wait_result(s);
    if (CHECK(r != NULL) && CHECK(r->text != NULL)) {
        CHECK_INT((int)r->dests, 2);
        CHECK(strstr(r->text, "clusterf_ipvs_service_packets_total{service=\"s0\"") != NULL);
        CHECK(strstr(r->text, "clusterf_ipvs_destination_connections_total{") == NULL);
    }
    ipvsd_stats_result_free(r);
    ipvsd_stats_free(s);
    ipvsd_stats_free(NULL);
}

/* One job at a time; a job in the middle of a large table when the thread is freed. */
static void test_busy_and_free(void)
{
    ipvsd_stats *s = ipvsd_stats_new();
    if (!CHECK(s != NULL))
        return;
    CHECK_INT(ipvsd_stats_submit(s, owned(0, 20000), 20000, table(20000, 10), true), 0);
    CHECK(ipvsd_stats_busy(s));
    /* refused while busy, and what it was given is freed (ASan/valgrind would say) */
    CHECK_INT(ipvsd_stats_submit(s, owned(0, 1), 1, table(1, 1), true), -EBUSY);
    ipvsd_stats_free(s); /* stops the render at once and joins */
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("owned_only", test_owned_only);
    check_run("busy_and_free", test_busy_and_free);
    return check_end();
}
