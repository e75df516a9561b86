/* dockerd_int.h -- inside the clusterf-docker daemon: its --metrics-listen side
 * (dockerd_metrics.c), which dockerd.c feeds with counts of its events and, once a second,
 * with the state it is in. */
#ifndef CLUSTERF_DOCKERD_INT_H
#define CLUSTERF_DOCKERD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dockerd_metrics dockerd_metrics;

/* What the loop knows at a publish. */
typedef struct dockerd_state {
    size_t backends_desired;   /* what the labelled containers ask for */
    size_t backends_written;   /* keys written under the current lease */
    bool docker_synced;        /* events stream open and re-listed */
    bool etcd_ok;              /* the last etcd call succeeded */
    bool lease_held;           /* a live lease (always true in a dry run) */
    int64_t lease_ttl_s;       /* granted TTL, 0 without a lease */
    int64_t etcd_seen_ms;      /* when etcd last answered a keep-alive (clock_now_ms), 0: never */
    bool dry_run;
} dockerd_state;

/* Serve /metrics, /healthz, /readyz on listen. 0 and *out, or -errno (err says why). */
int dockerd_metrics_new(const char *listen, dockerd_metrics **out, char *err, size_t errlen);
/* NULL is a no-op. */
void dockerd_metrics_free(dockerd_metrics *m);
/* A periodic timerfd: when readable, call dockerd_metrics_publish. */
int dockerd_metrics_fd(const dockerd_metrics *m);
/* Count one event on the counter family (a name from dockerd_metrics.c) with the label value
 * of its one label. NULL m is a no-op. */
void dockerd_metrics_count(dockerd_metrics *m, const char *family, const char *label);
/* Drain the timer, refresh the gauges from st, render and publish; readiness from st. */
void dockerd_metrics_publish(dockerd_metrics *m, const dockerd_state *st);

#endif
