/* ipvsd.h -- the clusterf-ipvs daemon: etcd (and a local tree) -> config store -> desired
 * table (lb/) -> reconcile/ -> kernel IPVS, driven by one epoll loop.
 *
 * Start: one consistent read of the prefix, a kernel dump, apply the difference, then watch
 * from the read's revision + 1. Watch events are applied to the config store as they come;
 * the services they touch are recomputed and reconciled after a short coalescing delay. A
 * full pass (dump + diff of everything) runs every resync interval, on SIGHUP, after a
 * compaction re-read, and when an incremental pass finds the mirror out of date. etcd being
 * away changes nothing in the kernel (fail static). Every blocking etcd call (the read, the
 * lease, the put of the advertised route) runs on a worker thread: a slow or hung etcd never
 * holds up the loop, and until the first read arrives the services of the local tree are
 * applied on their own. SIGTERM/SIGINT end the loop at once and leave the kernel table as it
 * is. */
#ifndef CLUSTERF_IPVSD_H
#define CLUSTERF_IPVSD_H

#include "config/config.h"
#include "etcd/etcd.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ipvsd_options {
    etcd_config etcd;
    const char *prefix;          /* "/clusterf" */
    const char *config_path;     /* local tree, or NULL */
    config_options config;       /* defaults (sched, method) and filter_etcd_routes */
    bool flush;                  /* flush the whole IPVS table once at start */
    bool dry_run;                /* log the ops, never change the kernel */
    int64_t resync_ms;           /* full pass period; 0 = never */
    int64_t coalesce_ms;         /* delay that gathers a burst of events into one pass */
    long read_slice_keys;        /* an etcd read is applied at most this many keys per loop
                                  * turn (0 = the default, 2000) */
    int64_t drain_ms;            /* a removed TCP dest drains at weight 0 this long; 0 = off */
    bool ipvs_sysctls;           /* set the IPVS sysctls of graceful removal at start */
    const char *state_path;      /* owned-services file; NULL = none */
    /* -advertise-route-*: publish this route into etcd under a lease (name NULL = off). */
    const char *advertise_name;
    const char *advertise_json;  /* the Route JSON to publish */
    int64_t advertise_ttl_s;
    /* --metrics-listen: Prometheus /metrics, /healthz, /readyz (NULL = off). */
    const char *metrics_listen;
    bool metrics_dests;          /* per-destination kernel counters too */
    int64_t metrics_kernel_ms;   /* the kernel's counters are dumped at most this often */
    int64_t ready_etcd_ms;       /* /readyz needs etcd reached within this long */
} ipvsd_options;

/* Run until SIGTERM/SIGINT. Returns the process exit status: 0 after a signal, 1 when it
 * could not start (no IPVS, bad state file, ...), with the reason logged. */
int ipvsd_run(const ipvsd_options *opts);

#endif
