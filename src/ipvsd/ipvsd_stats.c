/* ipvsd_stats.c -- the kernel's IPVS counters for /metrics, dumped and rendered on a thread
 * of their own. At 100k dests a dump and its 650k series cost the loop over a second at each
 * scrape (measured natively with the dry run's in-memory table; a real kernel's dump is
 * slower still); here the loop only hands over what it alone knows -- which services clusterf
 * owns and their labels -- and later takes the text back (common/jobthread, one slot). The
 * thread has its own IPVS connection (the loop's keeps its dumps in parts), opened on first
 * need. */
#include "ipvsd/ipvsd_int.h"

#include "common/bytemap.h"
#include "common/jobthread.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATS_STOP_WAIT_MS 2000

static const metrics_family families[] = {
    {"clusterf_ipvs_service_connections_total", METRICS_COUNTER, "Connections the kernel scheduled for the service."},
    {"clusterf_ipvs_service_packets_total", METRICS_COUNTER, "Packets of the service by direction."},
    {"clusterf_ipvs_service_bytes_total", METRICS_COUNTER, "Bytes of the service by direction."},
    {"clusterf_ipvs_destination_connections_total", METRICS_COUNTER, "Connections the kernel scheduled to the destination."},
    {"clusterf_ipvs_destination_active_connections", METRICS_GAUGE, "Active connections of the destination."},
    {"clusterf_ipvs_destination_packets_total", METRICS_COUNTER, "Packets of the destination by direction."},
    {"clusterf_ipvs_destination_bytes_total", METRICS_COUNTER, "Bytes of the destination by direction."},
};

/* One collection: the owned services' labels by ipvs_service_str key, and either a table
 * dumped by the loop (the dry run's in-memory stand-in, which only the loop may touch) or
 * NULL (the thread dumps the kernel); then its result. */
struct stats_job {
    ipvsd_stats_owned *owned;
    size_t n_owned;
    struct ipvs_table *table;
    bool dests;
    ipvsd_stats_result *res;
};

struct ipvsd_stats {
    jobthread *thread;        /* one slot */
    ipvs_conn *conn;          /* the thread's own */
};

static void owned_free(ipvsd_stats_owned *o, size_t n)
{
    for (size_t i = 0; o && i < n; i++) {
        free(o[i].key);
        free(o[i].labels);
    }
    free(o);
}

static void job_free(struct stats_job *j)
{
    if (!j)
        return;
    owned_free(j->owned, j->n_owned);
    ipvs_table_free(j->table);
    ipvsd_stats_result_free(j->res);
    free(j);
}

void ipvsd_stats_result_free(ipvsd_stats_result *r)
{
    if (r) {
        free(r->text);
        free(r);
    }
}

/* Set fam's connections, packets and bytes (by direction) series of labels from st. */
static void put_stats(metrics_registry *reg, const char *fam, const char *labels,
                      const struct ipvs_stats *st)
{
    char name[80], l[700];
    snprintf(name, sizeof name, "clusterf_ipvs_%s_connections_total", fam);
    metrics_set(reg, name, labels, (double)st->conns);
    for (int out = 0; out < 2; out++) {
        snprintf(l, sizeof l, "%s", labels);
        metrics_label(l, sizeof l, "direction", out ? "out" : "in");
        snprintf(name, sizeof name, "clusterf_ipvs_%s_packets_total", fam);
        metrics_set(reg, name, l, (double)(out ? st->outpkts : st->inpkts));
        snprintf(name, sizeof name, "clusterf_ipvs_%s_bytes_total", fam);
        metrics_set(reg, name, l, (double)(out ? st->outbytes : st->inbytes));
    }
}

/* The series of the owned services of t (and of their dests when dests) into a new registry
 * rendered as r's text. 0, -ENOMEM, or -ECANCELED when s is being freed. */
static int render(ipvsd_stats *s, const struct stats_job *j, const struct ipvs_table *t,
                  ipvsd_stats_result *r)
{
    metrics_registry *reg = metrics_registry_new();
    bytemap by_key = {0};
    int rc = reg ? metrics_declare_all(reg, families, sizeof families / sizeof families[0]) :
                   -ENOMEM;
    for (size_t i = 0; rc == 0 && i < j->n_owned; i++)
        rc = bytemap_get(&by_key, j->owned[i].key, strlen(j->owned[i].key)) ? 0 :
             bytemap_put(&by_key, j->owned[i].key, strlen(j->owned[i].key), j->owned[i].labels);
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        if (jobthread_stopping(s->thread)) {
            rc = -ECANCELED; /* the daemon is stopping: its text would never be served */
            break;
        }
        const struct ipvs_entry *e = &t->entries[i];
        char key[96], dl[800], dst[96];
        ipvs_service_str(&e->svc, key, sizeof key);
        const char *labels = bytemap_get(&by_key, key, strlen(key));
        if (!labels)
            continue; /* not clusterf's */
        r->services++;
        r->dests += e->n_dests;
        put_stats(reg, "service", labels, &e->svc.stats);
        for (size_t k = 0; j->dests && k < e->n_dests; k++) {
            snprintf(dl, sizeof dl, "%s", labels);
            metrics_label(dl, sizeof dl, "destination",
                          ipvs_dest_str(&e->svc, &e->dests[k], dst, sizeof dst));
            put_stats(reg, "destination", dl, &e->dests[k].stats);
            metrics_set(reg, "clusterf_ipvs_destination_active_connections", dl,
                        (double)e->dests[k].active_conns);
        }
    }
    if (rc == 0)
        rc = metrics_render(reg, &r->text, &r->len);
    bytemap_clear(&by_key);
    metrics_registry_free(reg);
    return rc;
}

/* Run one job: dump (unless the loop did), render. The result says how it went; NULL only
 * when out of memory for it. */
static ipvsd_stats_result *collect(ipvsd_stats *s, struct stats_job *j)
{
    ipvsd_stats_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    int64_t t0 = clock_now_us();
    struct ipvs_table *t = j->table;
    struct ipvs_err err = {0};
    j->table = NULL;
    if (!t && !s->conn && ipvs_conn_new(&s->conn, &err) < 0)
        snprintf(r->error, sizeof r->error, "cannot open IPVS: %s", err.msg);
    else if (!t && ipvs_dump(s->conn, &t, &err) < 0)
        snprintf(r->error, sizeof r->error, "%s", err.msg);
    else if (render(s, j, t, r) < 0)
        snprintf(r->error, sizeof r->error, "out of memory or stopped");
    ipvs_table_free(t);
    r->us = clock_now_us() - t0;
    return r;
}

static void run_job(void *ctx, int slot, void *job)
{
    struct stats_job *j = job;
    (void)slot;
    j->res = collect(ctx, j);
    owned_free(j->owned, j->n_owned); /* only the result waits for the loop */
    j->owned = NULL;
    j->n_owned = 0;
}

static void free_job(void *ctx, int slot, void *job)
{
    (void)ctx, (void)slot;
    job_free(job);
}

static void destroy(void *ctx)
{
    ipvsd_stats *s = ctx;
    ipvs_conn_free(s->conn);
    free(s);
}

static const jobthread_ops stats_ops = {.run = run_job, .job_free = free_job,
                                        .ctx_free = destroy};

ipvsd_stats *ipvsd_stats_new(void)
{
    ipvsd_stats *s = calloc(1, sizeof *s);
    if (s && jobthread_new(&stats_ops, s, 1, &s->thread) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

int ipvsd_stats_fd(const ipvsd_stats *s)
{
    return jobthread_fd(s->thread);
}

bool ipvsd_stats_busy(ipvsd_stats *s)
{
    return jobthread_busy(s->thread, 0);
}

int ipvsd_stats_submit(ipvsd_stats *s, ipvsd_stats_owned *owned, size_t n_owned,
                       struct ipvs_table *table, bool dests)
{
    struct stats_job *j = calloc(1, sizeof *j);
    if (!j) {
        owned_free(owned, n_owned);
        ipvs_table_free(table);
        return -ENOMEM;
    }
    *j = (struct stats_job){owned, n_owned, table, dests, NULL};
    int rc = jobthread_submit(s->thread, 0, j);
    if (rc < 0)
        job_free(j);
    return rc;
}

ipvsd_stats_result *ipvsd_stats_take(ipvsd_stats *s)
{
    int slot;
    void *job;
    if (!jobthread_take(s->thread, &slot, &job))
        return NULL;
    struct stats_job *j = job;
    ipvsd_stats_result *r = j->res;
    j->res = NULL;
    job_free(j);
    return r;
}

void ipvsd_stats_free(ipvsd_stats *s)
{
    /* The render stops at once; a kernel dump of a large table cannot be cut short: wait for
     * it STATS_STOP_WAIT_MS at most, then let the thread end (and free) on its own. */
    if (s)
        jobthread_free(s->thread, STATS_STOP_WAIT_MS);
}
