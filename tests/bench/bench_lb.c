/* bench_lb.c -- micro-benchmark of config/ + lb/: load 10k services x 10 backends and 100
 * routes into a config store, compute the whole desired table, then apply one backend event
 * and recompute only the service it touched. Prints the times and their ratio. */
#include "config/config.h"
#include "lb/lb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVICES 10000
#define BACKENDS 10
#define ROUTES 100

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static config_result res;

static void put(config_store *s, const char *key, const char *val)
{
    config_event ev = {.source = CONFIG_SOURCE_ETCD, .key = key, .key_len = strlen(key),
                       .value = val, .value_len = strlen(val)};
    if (config_store_apply(s, &ev, &res) != 0) {
        fprintf(stderr, "bench: %s rejected: %s\n", key, res.error);
        exit(1);
    }
}

static void load(config_store *s)
{
    char key[128], val[256];
    for (int r = 0; r < ROUTES; r++) {
        snprintf(key, sizeof key, "routes/r%03d", r);
        if (r % 4 == 0)
            snprintf(val, sizeof val, "{\"Prefix4\":\"10.%d.0.0/16\",\"Gateway4\":\"192.168.0.%d\","
                     "\"IpvsMethod\":\"droute\"}", r, r + 1);
        else
            snprintf(val, sizeof val, "{\"Prefix4\":\"10.%d.%d.0/%d\",\"IpvsMethod\":\"%s\"}", r,
                     r % 3 == 0 ? 0 : 1, r % 3 == 0 ? 16 : 24, r % 2 ? "masq" : "tunnel");
        put(s, key, val);
    }
    for (int i = 0; i < SERVICES; i++) {
        snprintf(key, sizeof key, "services/svc%05d/frontend", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"172.16.%d.%d\",\"ipv6\":\"2001:db8::%x\",\"tcp\":80%s}",
                 i / 256, i % 256, i + 1, i % 2 ? ",\"udp\":53" : "");
        put(s, key, val);
        for (int b = 0; b < BACKENDS; b++) {
            int n = i * BACKENDS + b;
            snprintf(key, sizeof key, "services/svc%05d/backends/b%02d", i, b);
            snprintf(val, sizeof val, "{\"ipv4\":\"10.%d.%d.%d\",\"tcp\":8080,\"udp\":5353,\"weight\":%d}",
                     n % 110, (n / 110) % 256, (n / 28160) % 256 + 1, 1 + n % 50);
            put(s, key, val);
        }
    }
}

int main(void)
{
    config_result_init(&res);
    config_store *s = config_store_new(NULL);
    double t0 = now_ms();
    load(s);
    double t_load = now_ms() - t0;

    lb_table t;
    lb_table_init(&t);
    t0 = now_ms();
    if (lb_compute_all(s, &t) != 0)
        return 1;
    double t_all = now_ms() - t0;
    size_t n_dests = 0;
    for (size_t i = 0; i < t.n_services; i++)
        n_dests += t.services[i].n_dests;
    printf("bench_lb: loaded %d services x %d backends + %d routes in %.1f ms\n", SERVICES,
           BACKENDS, ROUTES, t_load);
    printf("bench_lb: full table: %zu IPVS services, %zu destinations in %.2f ms\n",
           t.n_services, n_dests, t_all);

    /* one backend event, then recompute only what it touched (median of 101 runs) */
    double best[101];
    for (int k = 0; k < 101; k++) {
        char val[128];
        snprintf(val, sizeof val, "{\"ipv4\":\"10.5.9.%d\",\"tcp\":8081,\"weight\":%d}", 1 + k % 200, 1 + k);
        t0 = now_ms();
        put(s, "services/svc04242/backends/b03", val);
        for (size_t i = 0; i < res.services.n; i++)
            if (lb_compute_service(s, res.services.v[i], &t) != 0)
                return 1;
        best[k] = now_ms() - t0;
    }
    for (int i = 0; i < 101; i++)
        for (int j = i + 1; j < 101; j++)
            if (best[j] < best[i]) {
                double x = best[i];
                best[i] = best[j];
                best[j] = x;
            }
    double t_one = best[50];
    printf("bench_lb: one backend event + recompute of its service: %.4f ms (median of 101; %zu IPVS services)\n",
           t_one, t.n_services);
    printf("bench_lb: full / incremental = %.0fx\n", t_one > 0 ? t_all / t_one : 0.0);
    lb_table_free(&t);
    config_result_free(&res);
    config_store_free(s);
    return 0;
}
