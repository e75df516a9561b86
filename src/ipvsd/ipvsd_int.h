/* ipvsd_int.h -- the daemon's state, shared by ipvsd.c (loop, passes), ipvsd_source.c
 * (etcd read + watch, the local tree, the advertised route) and ipvsd_etcd_worker.c (the
 * thread that makes the blocking etcd calls off the loop). */
#ifndef CLUSTERF_IPVSD_INT_H
#define CLUSTERF_IPVSD_INT_H

#include "common/bytemap.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "ipvs/ipvs.h"
#include "ipvsd/ipvsd.h"
#include "reconcile/reconcile.h"

/* ---- ipvsd_etcd_worker.c ---- */

typedef struct ipvsd_worker ipvsd_worker;

/* PROBE: an etcd Status call, to know etcd is reachable (for /readyz and the metrics). */
enum ipvsd_job_kind { IPVSD_JOB_READ, IPVSD_JOB_ADVERTISE, IPVSD_JOB_PROBE, IPVSD_JOB_KINDS };

/* One etcd job, as handed back by ipvsd_worker_take. */
typedef struct ipvsd_job {
    enum ipvsd_job_kind kind;
    int rc;                 /* 0, or -errno of the call that failed (described in err) */
    etcd_error err;
    etcd_kvs *kvs;          /* READ: every key under "<prefix>/" at one revision; taker frees */
    etcd_lease *lease;      /* ADVERTISE: the lease handed over, back (NULL: none any more) */
    bool revoked;           /* ADVERTISE: the put failed, so the lease was revoked and freed */
    int revoke_rc;          /* ... and how that revoke went */
    etcd_error revoke_err;
} ipvsd_job;

/* Start the worker thread. Takes ownership of etcd on success only. 0 or -errno. */
int ipvsd_worker_new(etcd_client *etcd, const ipvsd_options *o, ipvsd_worker **out);
/* Stop taking jobs and free the worker and its etcd client (free every watch and lease of
 * the client first). Never waits for etcd: a job in progress is abandoned to the thread,
 * which frees everything when its call's deadline has passed. NULL is a no-op. */
void ipvsd_worker_free(ipvsd_worker *w);
/* The etcd client, for non-blocking use on the loop (watches). */
etcd_client *ipvsd_worker_client(const ipvsd_worker *w);
/* An eventfd, readable when a job is done. */
int ipvsd_worker_fd(const ipvsd_worker *w);
/* True while a job of this kind is queued, running, or done and not taken. */
bool ipvsd_worker_busy(ipvsd_worker *w, enum ipvsd_job_kind kind);
/* Queue a job: READ (lease NULL), or ADVERTISE of the route with lease (NULL: grant one;
 * ownership passes to the job). 0, or -EBUSY when one of that kind is in flight (or there is
 * no route to advertise), or -ENOMEM; the lease then stays the caller's. */
int ipvsd_worker_submit(ipvsd_worker *w, enum ipvsd_job_kind kind, etcd_lease *lease);
/* Take one finished job (clears the fd). True and *out, or false when none is done. */
bool ipvsd_worker_take(ipvsd_worker *w, ipvsd_job *out);

typedef struct ipvsd {
    const ipvsd_options *o;
    int ep;                 /* epoll */
    int sig_fd;             /* signalfd: TERM, INT, HUP */
    int coalesce_fd;        /* timerfd: the pass after a burst of events */
    int resync_fd;          /* timerfd: periodic full pass */
    int retry_fd;           /* timerfd: retry the etcd read / the advertised route */
    int inotify_fd;         /* local tree changes, -1 without -config-path */
    int local_fd;           /* timerfd: rescan the local tree after changes settle */
    int drain_fd;           /* timerfd: check the draining dests */
    ipvsd_worker *worker;   /* owns the etcd client; makes every blocking etcd call */
    etcd_watch *watch;
    etcd_lease *lease;      /* the advertised route's lease, while no job holds it */
    ipvs_conn *conn;        /* NULL in dry-run without IPVS */
    ipvs_fake *dry_fake;    /* the stand-in kernel of that dry run */
    struct ipvs_iface kernel;
    reconcile *rec;
    config_store *cfg;
    bytemap dirty;          /* service name -> strdup'd name, to recompute */
    bytemap warned;         /* warnings already logged */
    bool loaded;            /* the first etcd read is done */
    bool reread;            /* the prefix must be read again (compaction, watch not started) */
    bool watch_added;       /* the watch's fd is in the epoll set */
    bool lease_added;       /* the lease's fd is in the epoll set */
    bool advertised;        /* the advertised route is in etcd under a live lease */
    bool stop;
    backoff retry;
    /* The sliced full pass (reconcile_full_begin/add/end) while one runs. */
    config_strs full_names; /* the clusterf services it walks */
    size_t full_next;       /* the next of them */
    reconcile_result full_res;
    char full_why[32];
    int64_t full_t0, full_longest_ms;
    int64_t full_compute_us;  /* time the full pass spent computing its services */
    size_t full_slices;
    size_t full_load_parts; /* parts of its dump of the kernel's services */
    size_t full_kept;       /* clusterf services it kept unchanged (reconcile_full_keep) */
    bool full_again;        /* another full pass was asked for while it ran */
    bool full_keep;         /* a periodic resync: untouched services are checked, not computed */
    bytemap full_dirty;     /* names events touched before it began (computed by it) */
    bytemap noisy;          /* names whose last computation had a conflict or a warning */
    /* The etcd read being applied to the store a slice per loop turn (NULL: none). */
    etcd_kvs *read_kvs;
    size_t read_next;       /* its next key */
    size_t read_slices;
    int64_t read_t0, read_longest_ms;
    struct ipvsd_metrics *metrics; /* --metrics-listen; NULL when off */
    /* Ops that keep failing (ipvsd_opfail.c), and the pass stamps that tell a retried one
     * from one no longer attempted. */
    bytemap op_fails;          /* opfail key -> opfail* */
    uint64_t op_seq;           /* incremented as each pass begins */
    uint64_t full_seq;         /* op_seq when the running full pass began */
    size_t op_errors_logged;   /* op failures logged at error so far */
    size_t full_errors_base;   /* op_errors_logged when the running full pass began */
} ipvsd;

/* ---- ipvsd_opfail.c ---- */

/* An op the kernel answered: remembers a failure, forgets (logging one info line) a failing
 * op that succeeded. Returns the level of the op's own line: error for a failure first seen
 * (or with another error than last time; op_errors_logged counts them), debug for the same
 * failure again and for a success. owner: its clusterf service, or NULL. */
enum log_level ipvsd_opfail_note(ipvsd *d, const struct ipvs_op *op, const char *owner);
/* After a pass that began at stamp since: the failing ops it did not try again are no longer
 * attempted (their service was removed or fixed otherwise): one info line each, forgotten.
 * names[n]: the clusterf services the pass covered (NULL: every one). */
void ipvsd_opfail_sweep(ipvsd *d, uint64_t since, const char *const *names, size_t n);
/* Forget every failing op (no log). */
void ipvsd_opfail_clear(ipvsd *d);

/* A full pass gives the loop back after this long, stepping this many services at a time. */
#define FULL_SLICE_MS 20
#define FULL_STEP_SERVICES 32
/* An etcd read is applied READ_STEP_KEYS keys at a time, for up to FULL_SLICE_MS and at most
 * -read-slice-keys (default READ_SLICE_KEYS) keys per loop turn. */
#define READ_STEP_KEYS 256
#define READ_SLICE_KEYS 2000
/* After a full pass with failed ops, the next one waits this long. */
#define FULL_RETRY_FAILED_MS 2000
/* While dests drain, their connections are checked this often. */
#define DRAIN_CHECK_MS 1000

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
/* Start the etcd worker (taking ownership of etcd, also on failure). 0 or -1 (logged). */
int ipvsd_etcd_start(ipvsd *d, etcd_client *etcd);
/* Free the watch, the lease and the worker with the client; never waits for etcd. */
void ipvsd_etcd_stop(ipvsd *d);
/* Ask the worker for a read of the whole prefix (unless one is in flight); its result is
 * applied a slice per loop turn, then followed by a full pass and the watch from its
 * revision + 1. */
void ipvsd_etcd_load(ipvsd *d);
/* True while an etcd read is being applied (a slice per loop turn; passes wait for it). */
bool ipvsd_etcd_applying(const ipvsd *d);
/* Apply the next slice of that read; after its last key, a full pass and the watch begin. */
void ipvsd_etcd_read_slice(ipvsd *d);
/* Handle the worker's eventfd: apply finished reads, take back the advertised lease. */
void ipvsd_etcd_worker_ready(ipvsd *d);
/* The retry timer fired: read again, re-add fds to epoll, advertise, as still needed. */
void ipvsd_etcd_retry(ipvsd *d);
/* Handle the watch's eventfd. */
void ipvsd_etcd_watch_ready(ipvsd *d);
/* Ask the worker to publish the advertised route (if configured, not yet done and not in
 * flight); on failure it is retried later. */
void ipvsd_advertise(ipvsd *d);
/* Handle the lease's eventfd: re-grant and re-publish when it was lost. */
void ipvsd_lease_ready(ipvsd *d);
/* Set up inotify on the local tree and load it; rescan after changes. 0 or -errno. */
int ipvsd_local_init(ipvsd *d);
void ipvsd_local_changed(ipvsd *d);
void ipvsd_local_rescan(ipvsd *d);

/* ipvsd_stats.c: the kernel's IPVS counters for /metrics, dumped and rendered on a thread of
 * their own (the loop only hands over the owned services' labels). */
typedef struct ipvsd_stats ipvsd_stats;
/* An owned IPVS service: key is its ipvs_service_str(), labels its series' label string. */
typedef struct ipvsd_stats_owned {
    char *key, *labels;
} ipvsd_stats_owned;
/* What a collection gave: the rendered families (text, or NULL with error set), the owned
 * services and their dests found in the kernel, and how long it took. */
typedef struct ipvsd_stats_result {
    char *text;
    size_t len, services, dests;
    int64_t us;
    char error[300];
} ipvsd_stats_result;
/* Start the thread. NULL when out of memory or threads. */
ipvsd_stats *ipvsd_stats_new(void);
/* Readable when a collection is done (ipvsd_stats_take). */
int ipvsd_stats_fd(const ipvsd_stats *s);
/* True while a collection runs or its result waits to be taken. */
bool ipvsd_stats_busy(ipvsd_stats *s);
/* Start a collection of the owned services (array of n_owned, taken over) from table (taken
 * over: a dump the loop made of the dry run's stand-in), or from the kernel when table is
 * NULL; dests: also the per-destination series. 0, -EBUSY (one runs) or -ENOMEM. */
int ipvsd_stats_submit(ipvsd_stats *s, ipvsd_stats_owned *owned, size_t n_owned,
                       struct ipvs_table *table, bool dests);
/* The finished collection (caller frees), or NULL. */
ipvsd_stats_result *ipvsd_stats_take(ipvsd_stats *s);
void ipvsd_stats_result_free(ipvsd_stats_result *r);
/* Stop the thread; one in the middle of a dump is left to end on its own. NULL: no-op. */
void ipvsd_stats_free(ipvsd_stats *s);

/* ipvsd_metrics.c: --metrics-listen. Every hook is a no-op while metrics are off. */
/* Start the HTTP server and the publish timer. 0 or -1 (logged). */
int ipvsd_metrics_start(ipvsd *d);
void ipvsd_metrics_stop(ipvsd *d);
/* True when fd is the metrics timer (then handled: probe etcd, ask for the kernel's
 * counters, publish) or the stats thread's (its counters published). */
bool ipvsd_metrics_fd_ready(ipvsd *d, int fd);
/* A pass ended: kind "full", "incremental", "drain" or "flush". */
void ipvsd_metrics_pass(ipvsd *d, const char *kind, const reconcile_result *res, int64_t ms);
/* One op the kernel answered. */
void ipvsd_metrics_op(ipvsd *d, const struct ipvs_op *op);
/* A computed (part of the) table, for its conflicts. */
void ipvsd_metrics_table(ipvsd *d, const lb_table *t);
/* Any etcd job came back (a success shows etcd was reached). */
void ipvsd_metrics_etcd_job(ipvsd *d, const ipvsd_job *job);

#endif
