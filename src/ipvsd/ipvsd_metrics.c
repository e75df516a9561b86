/* ipvsd_metrics.c -- clusterf-ipvs's --metrics-listen. Counts passes, kernel ops, drift
 * repairs and state-file writes from the loop's reconcile results, and once a second (a
 * timerfd on the loop) notes when etcd last answered (the watch's stream, else a probe
 * through the worker), refreshes the gauges, asks the stats
 * thread (ipvsd_stats.c) for the kernel's IPVS counters (only after a scrape, at most every
 * --metrics-kernel-interval: an unscraped daemon never dumps its table for them), renders
 * the registry (again only when scraped since the last render) and publishes the text and
 * the readiness to the HTTP server (metrics/), which serves the stats thread's text after
 * it. The server's thread only ever sees what was published, so a slow scraper never holds
 * up a reconcile, and a large table's counters never hold up the loop. */
#include "ipvsd/ipvsd_int.h"

#include "common/log.h"
#include "etcd/etcd_flags.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PUBLISH_MS 1000
/* etcd is probed (a Status call) when nothing was heard from it for this long (or a third of
 * the readiness bound, when that is shorter). */
#define PROBE_QUIET_MS 2500
/* Without a readiness bound, etcd counts as away after this long without an answer. */
#define ETCD_DOWN_AFTER_MS 15000

struct ipvsd_metrics {
    metrics_registry *reg;
    metrics_server *srv;
    int timer_fd;
    int64_t etcd_seen_ms;     /* last time an etcd call succeeded; 0 = never */
    bool etcd_up, etcd_was_up;
    bool full_done;           /* a full pass completed without error */
    char last_fail[200];      /* why the last pass failed; "" when it succeeded */
    ipvsd_stats *stats;       /* the thread that dumps and renders the kernel's counters */
    int64_t stats_ms;         /* last kernel stats dump asked for; 0 = none yet */
    uint64_t stats_scrapes;   /* scrapes of /metrics as of that dump */
    uint64_t render_scrapes;  /* scrapes of /metrics as of the last render */
    bool rendered;            /* a text was published */
    size_t full_conflicts;    /* conflicts in the tables of the running full pass */
    struct timespec state_mtime;
};

static const metrics_family families[] = {
    {"clusterf_build_info", METRICS_GAUGE, "Always 1; the version in a label."},
    {"clusterf_ready", METRICS_GAUGE, "1 when /readyz answers 200."},
    {"clusterf_services_managed", METRICS_GAUGE, "IPVS services clusterf owns."},
    {"clusterf_destinations_managed", METRICS_GAUGE, "Destinations of the owned IPVS services, as of the last kernel stats dump."},
    {"clusterf_destinations_draining", METRICS_GAUGE, "Destinations at weight 0 waiting for their connections to end."},
    {"clusterf_reconcile_passes_total", METRICS_COUNTER, "Reconcile passes by kind (full, incremental, drain, flush) and result."},
    {"clusterf_reconcile_duration_seconds", METRICS_HISTOGRAM, "Duration of reconcile passes by kind."},
    {"clusterf_reconcile_changes_total", METRICS_COUNTER, "Services and destinations added, changed and deleted, by kind of pass."},
    {"clusterf_kernel_ops_total", METRICS_COUNTER, "IPVS operations the kernel answered, by op and result."},
    {"clusterf_drift_repairs_total", METRICS_COUNTER, "Changes periodic resync passes made to repair drift."},
    {"clusterf_config_invalid_keys", METRICS_GAUGE, "Keys whose current value is invalid, by source."},
    {"clusterf_config_conflicts", METRICS_GAUGE, "Services that lost a conflict over an IPVS service, as of the last full pass."},
    {"clusterf_etcd_connected", METRICS_GAUGE, "1 when the last etcd call succeeded."},
    {"clusterf_etcd_last_contact_age_seconds", METRICS_GAUGE, "Seconds since an etcd call last succeeded (-1: never)."},
    {"clusterf_etcd_reconnects_total", METRICS_COUNTER, "Times etcd was reached again after being unreachable."},
    {"clusterf_etcd_watch_revision", METRICS_GAUGE, "Last etcd revision the watch delivered."},
    {"clusterf_etcd_lease_ttl_seconds", METRICS_GAUGE, "TTL etcd granted the advertised route's lease (0: none held)."},
    {"clusterf_route_advertised", METRICS_GAUGE, "1 while the advertised route is in etcd under a live lease."},
    {"clusterf_state_file_writes_total", METRICS_COUNTER, "Writes of the owned-services state file seen after passes."},
};

/* etcd counts as away when not reached for this long. */
static int64_t etcd_bound_ms(const ipvsd *d)
{
    return d->o->ready_etcd_ms > 0 ? d->o->ready_etcd_ms : ETCD_DOWN_AFTER_MS;
}

static void state_mtime(ipvsd *d, struct timespec *out)
{
    struct stat st;
    memset(out, 0, sizeof *out);
    if (d->o->state_path && !d->o->dry_run && stat(d->o->state_path, &st) == 0)
        *out = st.st_mtim;
}

static int declare_families(metrics_registry *reg)
{
    if (metrics_declare_all(reg, families, sizeof families / sizeof families[0]) < 0)
        return -ENOMEM;
    char l[64] = "";
    metrics_label(l, sizeof l, "version", CLUSTERF_VERSION);
    return metrics_set(reg, "clusterf_build_info", l, 1);
}

int ipvsd_metrics_start(ipvsd *d)
{
    if (!d->o->metrics_listen)
        return 0;
    struct ipvsd_metrics *m = calloc(1, sizeof *m);
    char err[300] = "out of memory";
    if (!m || !(m->reg = metrics_registry_new()) || declare_families(m->reg) < 0 ||
        metrics_server_new(d->o->metrics_listen, &m->srv, err, sizeof err) < 0)
        goto fail;
    m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec its = {.it_value.tv_nsec = 1000000,
                             .it_interval.tv_sec = PUBLISH_MS / 1000};
    if (m->timer_fd < 0 || timerfd_settime(m->timer_fd, 0, &its, NULL) < 0 ||
        ipvsd_watch_fd(d, m->timer_fd) < 0) {
        snprintf(err, sizeof err, "timer: %s", strerror(errno));
        goto fail;
    }
    if (!(m->stats = ipvsd_stats_new()) || ipvsd_watch_fd(d, ipvsd_stats_fd(m->stats)) < 0) {
        snprintf(err, sizeof err, "kernel counters thread: %s", strerror(errno));
        goto fail;
    }
    state_mtime(d, &m->state_mtime);
    d->metrics = m;
    log_info("msg=\"serving metrics\" listen=%s port=%d", d->o->metrics_listen,
             metrics_server_port(m->srv));
    return 0;
fail:
    log_error("msg=\"cannot serve metrics\" listen=%s error=\"%s\"", d->o->metrics_listen, err);
    if (m) {
        ipvsd_stats_free(m->stats);
        metrics_server_free(m->srv);
        metrics_registry_free(m->reg);
        if (m->timer_fd > 0)
            close(m->timer_fd);
        free(m);
    }
    return -1;
}

void ipvsd_metrics_stop(ipvsd *d)
{
    struct ipvsd_metrics *m = d->metrics;
    if (!m)
        return;
    ipvsd_stats_free(m->stats);
    metrics_server_free(m->srv);
    metrics_registry_free(m->reg);
    close(m->timer_fd);
    free(m);
    d->metrics = NULL;
}

static bool pass_failed(const reconcile_result *res)
{
    return res->failed || res->error[0];
}

static void count_changes(metrics_registry *reg, const char *kind, const reconcile_result *res)
{
    const struct { const char *obj, *change; size_t n; } c[] = {
        {"service", "added", res->svc_added}, {"service", "changed", res->svc_changed},
        {"service", "deleted", res->svc_deleted}, {"destination", "added", res->dest_added},
        {"destination", "changed", res->dest_changed},
        {"destination", "deleted", res->dest_deleted},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char l[128] = "";
        if (!c[i].n)
            continue;
        metrics_label(l, sizeof l, "kind", kind);
        metrics_label(l, sizeof l, "object", c[i].obj);
        metrics_label(l, sizeof l, "change", c[i].change);
        metrics_add(reg, "clusterf_reconcile_changes_total", l, (double)c[i].n);
    }
}

/* Remember how the pass went, for /readyz. */
static void pass_outcome(struct ipvsd_metrics *m, const char *kind, const reconcile_result *res)
{
    if (!pass_failed(res)) {
        m->last_fail[0] = '\0';
        return;
    }
    if (res->error[0])
        snprintf(m->last_fail, sizeof m->last_fail, "last %s pass failed: %.150s", kind, res->error);
    else
        snprintf(m->last_fail, sizeof m->last_fail, "last %s pass failed: %zu kernel ops refused",
                 kind, res->failed);
}

void ipvsd_metrics_pass(ipvsd *d, const char *kind, const reconcile_result *res, int64_t ms)
{
    struct ipvsd_metrics *m = d->metrics;
    if (!m)
        return;
    char l[96] = "";
    metrics_label(l, sizeof l, "kind", kind);
    metrics_observe(m->reg, "clusterf_reconcile_duration_seconds", l, (double)ms / 1000.0);
    count_changes(m->reg, kind, res);
    metrics_label(l, sizeof l, "result", pass_failed(res) ? "failed" : "ok");
    metrics_add(m->reg, "clusterf_reconcile_passes_total", l, 1);
    pass_outcome(m, kind, res);
    bool full = strcmp(kind, "full") == 0;
    if (full && !pass_failed(res))
        m->full_done = true;
    if (full && strcmp(d->full_why, "resync") == 0)
        metrics_add(m->reg, "clusterf_drift_repairs_total", "", (double)reconcile_result_changes(res));
    if (full) {
        metrics_set(m->reg, "clusterf_config_conflicts", "", (double)m->full_conflicts);
        m->full_conflicts = 0;
    }
    struct timespec t;
    state_mtime(d, &t);
    if (t.tv_sec != m->state_mtime.tv_sec || t.tv_nsec != m->state_mtime.tv_nsec)
        metrics_add(m->reg, "clusterf_state_file_writes_total", "", 1);
    m->state_mtime = t;
}

static const char *outcome_label(enum ipvs_outcome o)
{
    return o == IPVS_APPLIED ? "applied" : o == IPVS_ALREADY ? "already" :
           o == IPVS_FAILED ? "failed" : "unanswered";
}

void ipvsd_metrics_op(ipvsd *d, const struct ipvs_op *op)
{
    if (!d->metrics)
        return;
    char l[96] = "";
    metrics_label(l, sizeof l, "op", ipvs_op_name(op->kind));
    metrics_label(l, sizeof l, "result", outcome_label(op->outcome));
    metrics_add(d->metrics->reg, "clusterf_kernel_ops_total", l, 1);
}

void ipvsd_metrics_table(ipvsd *d, const lb_table *t)
{
    if (d->metrics && reconcile_full_running(d->rec))
        d->metrics->full_conflicts += t->conflicts.n;
}

/* etcd answered at time at (a job that succeeded, or the watch's stream). */
static void etcd_heard(ipvsd *d, struct ipvsd_metrics *m, int64_t at)
{
    if (m->etcd_was_up && (!m->etcd_up || at - m->etcd_seen_ms > etcd_bound_ms(d)))
        metrics_add(m->reg, "clusterf_etcd_reconnects_total", "", 1);
    m->etcd_seen_ms = at;
    m->etcd_was_up = true;
    m->etcd_up = true;
}

void ipvsd_metrics_etcd_job(ipvsd *d, const ipvsd_job *job)
{
    struct ipvsd_metrics *m = d->metrics;
    if (!m)
        return;
    if (job->rc == 0)
        etcd_heard(d, m, clock_now_ms());
    else if (job->kind == IPVSD_JOB_PROBE)
        m->etcd_up = false;
}

/* The labels of an IPVS service: its clusterf service (or "" when the config names none),
 * protocol and VIP ("tcp" "10.0.0.1:80"; "fwm4" "7" for a firewall mark). */
static void service_labels(ipvsd *d, const struct ipvs_service *svc, char *l, size_t size)
{
    config_svckey key = {.af = (uint8_t)svc->af, .fwmark = svc->fwmark};
    if (!svc->fwmark) {
        key.protocol = (uint8_t)svc->protocol;
        key.port = svc->port;
        memcpy(key.addr, svc->addr, sizeof key.addr);
    }
    const char *name = config_store_svckey_owner(d->cfg, &key);
    char s[96];
    ipvs_service_str(svc, s, sizeof s);
    char *space = strchr(s, ' ');
    if (space)
        *space = '\0';
    l[0] = '\0';
    metrics_label(l, size, "service", name ? name : "");
    metrics_label(l, size, "protocol", s);
    metrics_label(l, size, "vip", space ? space + 1 : "");
}

/* The owned set as the stats thread needs it: each service's key and labels. */
struct owned_list {
    ipvsd *d;
    ipvsd_stats_owned *v;
    size_t n, cap;
};

static int add_owned(const struct ipvs_service *svc, void *ctx)
{
    struct owned_list *o = ctx;
    char key[96], l[600];
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        ipvsd_stats_owned *v = realloc(o->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        o->v = v, o->cap = cap;
    }
    service_labels(o->d, svc, l, sizeof l);
    ipvsd_stats_owned *e = &o->v[o->n];
    e->key = strdup(ipvs_service_str(svc, key, sizeof key));
    e->labels = strdup(l);
    o->n++;
    return e->key && e->labels ? 0 : -ENOMEM;
}

/* Ask the stats thread for the kernel's counters of the services clusterf owns. The loop's
 * part is O(owned services): their labels, which only it can name. */
static void kernel_stats(ipvsd *d, struct ipvsd_metrics *m)
{
    struct owned_list o = {.d = d};
    struct ipvs_table *t = NULL;
    struct ipvs_err err = {0};
    int rc = reconcile_foreach_owned(d->rec, add_owned, &o);
    /* the dry run's stand-in lives in the loop's memory: the loop dumps it (no syscalls) */
    if (rc == 0 && d->dry_fake && d->kernel.dump(d->kernel.self, &t, &err) < 0) {
        log_warn("msg=\"cannot dump the kernel's counters for metrics\" error=\"%s\"", err.msg);
        rc = -EIO;
    }
    if (rc == 0) {
        rc = ipvsd_stats_submit(m->stats, o.v, o.n, t, d->o->metrics_dests);
        o.v = NULL, o.n = 0, t = NULL; /* taken over */
    }
    if (rc == -ENOMEM)
        log_warn("msg=\"cannot dump the kernel's counters for metrics\" error=\"out of memory\"");
    for (size_t i = 0; i < o.n; i++) {
        free(o.v[i].key);
        free(o.v[i].labels);
    }
    free(o.v);
    ipvs_table_free(t);
}

/* Render the registry and publish it (as of scrapes /metrics requests). */
static void publish(struct ipvsd_metrics *m, uint64_t scrapes)
{
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(m->reg, &text, &len) == 0) {
        metrics_server_publish(m->srv, text, len);
        m->rendered = true;
        m->render_scrapes = scrapes;
    }
}

/* The stats thread is done: publish its text after the registry's. */
static void kernel_stats_done(struct ipvsd_metrics *m)
{
    ipvsd_stats_result *r = ipvsd_stats_take(m->stats);
    if (!r)
        return;
    if (r->text) {
        metrics_set(m->reg, "clusterf_destinations_managed", "", (double)r->dests);
        log_debug("msg=\"kernel counters dumped for metrics\" services=%zu destinations=%zu"
                  " bytes=%zu ms=%.1f", r->services, r->dests, r->len, (double)r->us / 1000);
        /* the registry first, for the gauge above: a scrape with these counters has it too */
        publish(m, m->render_scrapes);
        metrics_server_publish_tail(m->srv, r->text, r->len);
        r->text = NULL;
    } else {
        log_warn("msg=\"cannot dump the kernel's counters for metrics\" error=\"%s\"", r->error);
    }
    ipvsd_stats_result_free(r);
}

/* Invalid keys by source: counts the store keeps (a walk of 110k keys every second would
 * cost the loop more than everything else it does while idle). */
static void config_gauges(ipvsd *d, metrics_registry *reg)
{
    metrics_clear(reg, "clusterf_config_invalid_keys");
    for (int s = 0; s < CONFIG_SOURCE_COUNT; s++) {
        const char *name = config_source_name((enum config_source)s);
        size_t n = config_store_invalid_count_source(d->cfg, (enum config_source)s);
        char l[64] = "";
        if (!name || !n)
            continue;
        metrics_label(l, sizeof l, "source", name);
        metrics_set(reg, "clusterf_config_invalid_keys", l, (double)n);
    }
}

static void etcd_gauges(ipvsd *d, struct ipvsd_metrics *m)
{
    int64_t now = clock_now_ms();
    if (m->etcd_seen_ms && now - m->etcd_seen_ms > etcd_bound_ms(d))
        m->etcd_up = false; /* a probe hangs: etcd is away, even before it times out */
    metrics_set(m->reg, "clusterf_etcd_connected", "", m->etcd_up);
    metrics_set(m->reg, "clusterf_etcd_last_contact_age_seconds", "",
                m->etcd_seen_ms ? (double)(now - m->etcd_seen_ms) / 1000.0 : -1);
    if (d->watch)
        metrics_set(m->reg, "clusterf_etcd_watch_revision", "",
                    (double)(etcd_watch_next_revision(d->watch) - 1));
    metrics_set(m->reg, "clusterf_etcd_lease_ttl_seconds", "",
                d->lease ? (double)etcd_lease_ttl(d->lease) : 0);
    metrics_set(m->reg, "clusterf_route_advertised", "", d->advertised);
}

/* Why the daemon is not ready, as far as the loop knows ("" = ready). */
static const char *not_ready(ipvsd *d, struct ipvsd_metrics *m)
{
    if (!d->loaded)
        return "etcd not read yet";
    if (!m->full_done)
        return "first full pass not done";
    return m->last_fail;
}

/* Once a second: probe etcd, refresh the gauges, render and publish. */
static void tick(ipvsd *d, struct ipvsd_metrics *m)
{
    int64_t now = clock_now_ms();
    /* The watch's stream is answered at least every second or so while etcd is reachable
     * (events, or its progress probe): only when it has been quiet longer is etcd asked
     * directly (a Status call each second was most of an idle daemon's CPU). */
    int64_t heard = d->watch ? etcd_watch_last_answer_ms(d->watch) : 0;
    if (heard > m->etcd_seen_ms)
        etcd_heard(d, m, heard);
    int64_t quiet = etcd_bound_ms(d) / 3 < PROBE_QUIET_MS ? etcd_bound_ms(d) / 3 : PROBE_QUIET_MS;
    if (d->worker && now - m->etcd_seen_ms >= quiet &&
        !ipvsd_worker_busy(d->worker, IPVSD_JOB_PROBE))
        ipvsd_worker_submit(d->worker, IPVSD_JOB_PROBE, NULL);
    /* The kernel's counters cost a dump of the whole table: only when /metrics was read since
     * the last one (that scrape got the counters of the dump before; the next one gets these),
     * and at most every --metrics-kernel-interval. */
    uint64_t scrapes = metrics_server_scrapes(m->srv);
    if (scrapes != m->stats_scrapes && !ipvsd_stats_busy(m->stats) &&
        (!m->stats_ms || now - m->stats_ms >= d->o->metrics_kernel_ms)) {
        kernel_stats(d, m);
        m->stats_ms = now;
        m->stats_scrapes = scrapes;
    }
    metrics_set(m->reg, "clusterf_services_managed", "", (double)reconcile_owned_count(d->rec));
    metrics_set(m->reg, "clusterf_destinations_draining", "", (double)reconcile_draining(d->rec));
    config_gauges(d, m->reg);
    etcd_gauges(d, m);
    const char *why = not_ready(d, m);
    bool etcd_recent = m->etcd_seen_ms && now - m->etcd_seen_ms <= d->o->ready_etcd_ms;
    metrics_set(m->reg, "clusterf_ready", "", !why[0] && etcd_recent);
    /* Only the first time and after /metrics was read since the last render (a scrape gets
     * the text of the tick after the one before it). */
    if (!m->rendered || scrapes != m->render_scrapes)
        publish(m, scrapes);
    metrics_server_set_ready(m->srv, why, m->etcd_seen_ms, d->o->ready_etcd_ms);
}

bool ipvsd_metrics_fd_ready(ipvsd *d, int fd)
{
    struct ipvsd_metrics *m = d->metrics;
    if (m && fd == ipvsd_stats_fd(m->stats)) {
        kernel_stats_done(m);
        return true;
    }
    if (!m || fd != m->timer_fd)
        return false;
    uint64_t n;
    if (read(fd, &n, sizeof n) == sizeof n)
        tick(d, m);
    return true;
}
