/* ipvsd_int.h -- the daemon's state, shared by ipvsd.c (loop, passes) and ipvsd_source.c
 * (etcd read + watch, the local tree, the advertised route). */
#ifndef CLUSTERF_IPVSD_INT_H
#define CLUSTERF_IPVSD_INT_H

#include "common/bytemap.h"
#include "common/timeutil.h"
#include "ipvs/ipvs.h"
#include "ipvsd/ipvsd.h"
#include "reconcile/reconcile.h"

typedef struct ipvsd {
    const ipvsd_options *o;
    int ep;                 /* epoll */
    int sig_fd;             /* signalfd: TERM, INT, HUP */
    int coalesce_fd;        /* timerfd: the pass after a burst of events */
    int resync_fd;          /* timerfd: periodic full pass */
    int retry_fd;           /* timerfd: retry the etcd read / the advertised route */
    int inotify_fd;         /* local tree changes, -1 without -config-path */
    int local_fd;           /* timerfd: rescan the local tree after changes settle */
    etcd_client *etcd;
    etcd_watch *watch;
    etcd_lease *lease;      /* the advertised route's lease */
    ipvs_conn *conn;        /* NULL in dry-run without IPVS */
    ipvs_fake *dry_fake;    /* the stand-in kernel of that dry run */
    struct ipvs_iface kernel;
    reconcile *rec;
    config_store *cfg;
    bytemap dirty;          /* service name -> strdup'd name, to recompute */
    bytemap warned;         /* warnings already logged */
    bool loaded;            /* the first etcd read is done */
    bool advertised;        /* the advertised route is in etcd under a live lease */
    bool stop;
    backoff retry;
    /* The sliced full pass (reconcile_full_begin/add/end) while one runs. */
    config_strs full_names; /* the clusterf services it walks */
    size_t full_next;       /* the next of them */
    reconcile_result full_res;
    char full_why[32];
    int64_t full_t0, full_longest_ms;
    size_t full_slices;
    bool full_again;        /* another full pass was asked for while it ran */
} ipvsd;

/* A full pass gives the loop back after this long, stepping this many services at a time. */
#define FULL_SLICE_MS 20
#define FULL_STEP_SERVICES 32

/* Mark services for the next pass and arm the coalescing timer. */
void ipvsd_mark(ipvsd *d, const config_result *res);
/* Log a config result's warnings and error for key (from source, at revision). */
void ipvsd_log_result(const char *source, const char *key, size_t key_len, int64_t rev,
                      const config_result *res);
/* Run a full pass now (dump + diff of everything). */
void ipvsd_pass_full(ipvsd *d, const char *why);
/* Add an fd created after start (watch, lease, inotify) to the epoll set. 0 or -1. */
int ipvsd_watch_fd(ipvsd *d, int fd);
/* Arm a one-shot timerfd in ms (0 disarms). */
void ipvsd_timer(int fd, int64_t ms);

/* ipvsd_source.c */
/* Read the whole prefix and start the watch; on failure arm the retry timer. */
void ipvsd_etcd_load(ipvsd *d);
/* Handle the watch's eventfd. */
void ipvsd_etcd_watch_ready(ipvsd *d);
/* Publish the advertised route (if configured and not yet done); on failure retry later. */
void ipvsd_advertise(ipvsd *d);
/* Handle the lease's eventfd: re-grant and re-publish when it was lost. */
void ipvsd_lease_ready(ipvsd *d);
/* Set up inotify on the local tree and load it; rescan after changes. 0 or -errno. */
int ipvsd_local_init(ipvsd *d);
void ipvsd_local_changed(ipvsd *d);
void ipvsd_local_rescan(ipvsd *d);

#endif
