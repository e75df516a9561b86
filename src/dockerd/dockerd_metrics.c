/* dockerd_metrics.c -- clusterf-docker's --metrics-listen: counters of the daemon's events
 * (Docker changes seen, etcd writes, etcd errors, lease losses) and gauges of its state,
 * rendered once a second on the loop and published to the HTTP server of metrics/, whose
 * thread only ever sees the published text. */
#include "dockerd/dockerd_int.h"

#include "etcd/etcd_flags.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* How long etcd/ waits for the answer to a keep-alive before it calls the member hung
 * (ETCD_ANSWER_MS there), and the least bound /readyz allows (short TTLs, loaded hosts). */
#define READY_ANSWER_MS 2000
#define READY_MIN_BOUND_MS 3000

struct dockerd_metrics {
    metrics_registry *reg;
    metrics_server *srv;
    int timer_fd;
};

static const struct {
    const char *name, *label;
    enum metrics_type type;
    const char *help;
} families[] = {
    {"clusterf_build_info", NULL, METRICS_GAUGE, "Always 1; the version in a label."},
    {"clusterf_ready", NULL, METRICS_GAUGE, "1 when /readyz answers 200."},
    {"clusterf_docker_connected", NULL, METRICS_GAUGE, "1 while the Docker events stream is open and the containers are listed."},
    {"clusterf_docker_backends_desired", NULL, METRICS_GAUGE, "Backends the labelled containers of this host ask for."},
    {"clusterf_docker_backends_written", NULL, METRICS_GAUGE, "Backend keys written to etcd under the current lease."},
    {"clusterf_docker_events_total", "change", METRICS_COUNTER, "Backend changes the Docker watch reported (put, delete, label_warning, docker_error)."},
    {"clusterf_docker_etcd_writes_total", "op", METRICS_COUNTER, "Backend keys put to or deleted from etcd."},
    {"clusterf_docker_etcd_errors_total", "op", METRICS_COUNTER, "etcd calls that failed (retried with backoff), by op."},
    {"clusterf_docker_lease_losses_total", NULL, METRICS_COUNTER, "Times the lease was lost and every key re-written."},
    {"clusterf_etcd_connected", NULL, METRICS_GAUGE, "1 when the last etcd call succeeded."},
    {"clusterf_docker_lease_held", NULL, METRICS_GAUGE, "1 while the backends' lease is live."},
    {"clusterf_etcd_lease_ttl_seconds", NULL, METRICS_GAUGE, "TTL etcd granted the backends' lease (0: none)."},
};

static int declare_all(metrics_registry *reg)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (metrics_declare(reg, families[i].name, families[i].type, families[i].help) < 0)
            return -ENOMEM;
    char l[64] = "";
    metrics_label(l, sizeof l, "version", CLUSTERF_VERSION);
    return metrics_set(reg, "clusterf_build_info", l, 1);
}

int dockerd_metrics_new(const char *listen, dockerd_metrics **out, char *err, size_t errlen)
{
    *out = NULL;
    dockerd_metrics *m = calloc(1, sizeof *m);
    int rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
    if (m)
        m->timer_fd = -1;
    if (!m || !(m->reg = metrics_registry_new()) || declare_all(m->reg) < 0 ||
        (rc = metrics_server_new(listen, &m->srv, err, errlen)) < 0)
        goto fail;
    struct itimerspec its = {.it_value.tv_nsec = 1000000, .it_interval.tv_sec = 1};
    m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (m->timer_fd < 0 || timerfd_settime(m->timer_fd, 0, &its, NULL) < 0) {
        rc = -errno;
        snprintf(err, errlen, "metrics timer: %s", strerror(errno));
        goto fail;
    }
    *out = m;
    return 0;
fail:
    dockerd_metrics_free(m);
    return rc;
}

void dockerd_metrics_free(dockerd_metrics *m)
{
    if (!m)
        return;
    metrics_server_free(m->srv);
    metrics_registry_free(m->reg);
    if (m->timer_fd >= 0)
        close(m->timer_fd);
    free(m);
}

int dockerd_metrics_fd(const dockerd_metrics *m)
{
    return m->timer_fd;
}

void dockerd_metrics_count(dockerd_metrics *m, const char *family, const char *label)
{
    if (!m)
        return;
    char l[128] = "";
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].name, family) == 0 && families[i].label && label)
            metrics_label(l, sizeof l, families[i].label, label);
    metrics_add(m->reg, family, l, 1);
}

/* How long after the last keep-alive etcd answered (its send time) the daemon stops being
 * ready: the keep-alive deadline, i.e. the next one is overdue -- sent TTL/3 later and not
 * answered within min(READY_ANSWER_MS, TTL/4), as etcd/ judges a member hung -- at least
 * READY_MIN_BOUND_MS; 0 (no bound) in a dry run. */
static int64_t ready_bound_ms(const dockerd_state *st)
{
    if (st->dry_run)
        return 0;
    int64_t answer = st->lease_ttl_s * 1000 / 4;
    int64_t b = st->lease_ttl_s * 1000 / 3 + (answer < READY_ANSWER_MS ? answer : READY_ANSWER_MS);
    return b > READY_MIN_BOUND_MS ? b : READY_MIN_BOUND_MS;
}

/* Why the daemon is not ready ("" when it is). */
static const char *not_ready(const dockerd_state *st)
{
    if (!st->docker_synced)
        return "dockerd not reached (events stream closed or containers not listed)";
    if (st->dry_run)
        return "";
    if (!st->etcd_ok)
        return "etcd unreachable: backends not written";
    if (!st->lease_held)
        return "no live etcd lease";
    return "";
}

void dockerd_metrics_publish(dockerd_metrics *m, const dockerd_state *st)
{
    uint64_t n;
    if (!m || read(m->timer_fd, &n, sizeof n) != sizeof n)
        return;
    const char *why = not_ready(st);
    metrics_set(m->reg, "clusterf_ready", "", !why[0]);
    metrics_set(m->reg, "clusterf_docker_connected", "", st->docker_synced);
    metrics_set(m->reg, "clusterf_docker_backends_desired", "", (double)st->backends_desired);
    metrics_set(m->reg, "clusterf_docker_backends_written", "", (double)st->backends_written);
    metrics_set(m->reg, "clusterf_etcd_connected", "", st->etcd_ok && !st->dry_run);
    metrics_set(m->reg, "clusterf_docker_lease_held", "", st->lease_held);
    metrics_set(m->reg, "clusterf_etcd_lease_ttl_seconds", "", (double)st->lease_ttl_s);
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(m->reg, &text, &len) == 0)
        metrics_server_publish(m->srv, text, len);
    /* Judged by the server thread too, so /readyz turns 503 while the loop waits on a hung etcd. */
    metrics_server_set_ready(m->srv, why, st->etcd_seen_ms, ready_bound_ms(st));
}
