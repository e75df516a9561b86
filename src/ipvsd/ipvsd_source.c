/* ipvsd_source.c -- where the daemon's config comes from: the etcd prefix (one read, then a
 * watch; a re-read after compaction), the -config-path tree (rescanned on inotify), and the
 * route this host advertises into etcd under a lease. The reading itself is cfgsource/ (shared
 * with clusterfctl); this file adds the logging, the watches and the daemon's reactions.
 * Every blocking etcd call (the read, the lease, the put) is a job of the etcd worker
 * (ipvsd_etcd_worker.c): the loop submits it and applies the result, never waiting for etcd.
 * A read's result (the whole prefix: 110,000 keys at 10,000 services) is applied to the store
 * a slice per loop turn, like a full pass, so a signal or an event never waits behind it;
 * passes wait for its last key, and a newer read replaces one still being applied. */
#include "ipvsd/ipvsd_int.h"

#include "cfgsource/cfgsource.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- etcd ---- */

/* cfgsource callback: log what a key did and mark the services it touched (ev NULL: the
 * result of a sync's end). */
static void on_key(const config_event *ev, const config_result *res, void *ctx)
{
    if (ev)
        ipvsd_log_result(config_source_name(ev->source), ev->key, ev->key_len, ev->revision, res);
    ipvsd_mark(ctx, res);
}

static void retry_later(ipvsd *d)
{
    ipvsd_timer(d->retry_fd, backoff_next(&d->retry));
}

/* Add fd (the watch's or the lease's) to the epoll set; on failure log it and arm the retry
 * timer, which adds it again. Returns true when it is in the set. */
static bool add_fd(ipvsd *d, int fd, const char *what)
{
    if (ipvsd_watch_fd(d, fd) == 0 || errno == EEXIST)
        return true;
    log_error("msg=\"cannot add to the event loop; retrying\" fd=%s error=\"%s\"", what,
              strerror(errno));
    retry_later(d);
    return false;
}

int ipvsd_etcd_start(ipvsd *d, etcd_client *etcd)
{
    int rc = ipvsd_worker_new(etcd, d->o, &d->worker);
    if (rc < 0) {
        etcd_client_free(etcd);
        log_error("msg=\"cannot start the etcd worker\" error=\"%s\"", strerror(-rc));
        return -1;
    }
    if (ipvsd_watch_fd(d, ipvsd_worker_fd(d->worker)) < 0) {
        log_error("msg=\"cannot add the etcd worker to the event loop\" error=\"%s\"",
                  strerror(errno));
        return -1;
    }
    return 0;
}

void ipvsd_etcd_stop(ipvsd *d)
{
    etcd_watch_free(d->watch);
    etcd_lease_free(d->lease);
    ipvsd_worker_free(d->worker);
    etcd_kvs_free(d->read_kvs);
    d->read_kvs = NULL;
    d->watch = NULL;
    d->lease = NULL;
    d->worker = NULL;
}

void ipvsd_etcd_load(ipvsd *d)
{
    if (!ipvsd_worker_busy(d->worker, IPVSD_JOB_READ))
        ipvsd_worker_submit(d->worker, IPVSD_JOB_READ, NULL);
}

/* Watch the prefix from rev (a new watch, or the old one restarted after a re-read). */
static void watch_from(ipvsd *d, int64_t rev)
{
    if (d->watch) {
        etcd_watch_restart(d->watch, rev);
        return;
    }
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/", d->o->prefix);
    etcd_error err = {0};
    if (etcd_watch_new(ipvsd_worker_client(d->worker), prefix, strlen(prefix), rev, &d->watch,
                       &err) < 0) {
        log_error("msg=\"cannot start the etcd watch; reading again later\" error=\"%s\"", err.msg);
        d->reread = true;
        retry_later(d);
        return;
    }
    d->watch_added = add_fd(d, etcd_watch_fd(d->watch), "etcd-watch");
}

bool ipvsd_etcd_applying(const ipvsd *d)
{
    return d->read_kvs != NULL;
}

/* The last key of the read is applied: log it, run a full pass and watch from its
 * revision + 1. */
static void read_applied(ipvsd *d)
{
    int64_t rev = d->read_kvs->revision;
    log_info("msg=\"etcd read\" prefix=%s keys=%zu revision=%lld invalid=%zu slices=%zu"
             " longest_slice_ms=%lld apply_ms=%lld", d->o->prefix, d->read_kvs->n,
             (long long)rev, config_store_invalid_count(d->cfg), d->read_slices,
             (long long)d->read_longest_ms, (long long)(clock_now_ms() - d->read_t0));
    etcd_kvs_free(d->read_kvs);
    d->read_kvs = NULL;
    backoff_reset(&d->retry);
    d->loaded = true;
    ipvsd_pass_full(d, d->watch ? "compaction" : "start");
    watch_from(d, rev + 1);
}

void ipvsd_etcd_read_slice(ipvsd *d)
{
    size_t max = d->o->read_slice_keys > 0 ? (size_t)d->o->read_slice_keys : READ_SLICE_KEYS;
    size_t end = d->read_next + max;
    int64_t t0 = clock_now_ms(), now = t0;
    int rc = 1;
    while (rc > 0 && d->read_next < end && now - t0 < FULL_SLICE_MS) {
        size_t step = end - d->read_next < READ_STEP_KEYS ? end - d->read_next : READ_STEP_KEYS;
        rc = cfgsource_apply_etcd_part(d->cfg, d->o->prefix, d->read_kvs, &d->read_next, step,
                                       on_key, d);
        now = clock_now_ms();
    }
    d->read_slices++;
    if (now - t0 > d->read_longest_ms)
        d->read_longest_ms = now - t0;
    log_debug("msg=\"etcd read slice\" applied=%zu keys=%zu slice_ms=%lld", d->read_next,
              d->read_kvs->n, (long long)(now - t0));
    if (rc == -ENOMEM)
        log_error("msg=\"out of memory while reading etcd\" prefix=%s", d->o->prefix);
    if (rc <= 0)
        read_applied(d);
}

/* A READ came back: keep it, to apply a slice per loop turn (the first one now); a read that
 * was still being applied gives way to it. */
static void read_done(ipvsd *d, ipvsd_job *job)
{
    if (job->rc < 0) {
        log_warn("msg=\"etcd read failed; kernel table kept as it is\" code=%s endpoint=%s error=\"%s\"",
                 etcd_code_name(job->err.code), job->err.endpoint[0] ? job->err.endpoint : "-",
                 job->err.msg);
        retry_later(d);
        return;
    }
    if (d->read_kvs) {
        log_warn("msg=\"etcd read again while the last one was being applied; applying the new one\""
                 " applied=%zu keys=%zu", d->read_next, d->read_kvs->n);
        etcd_kvs_free(d->read_kvs);
    }
    d->read_kvs = job->kvs;
    job->kvs = NULL;
    d->read_next = d->read_slices = 0;
    d->read_t0 = clock_now_ms();
    d->read_longest_ms = 0;
    d->reread = false;
    log_info("msg=\"etcd read received; applying it between events\" prefix=%s keys=%zu revision=%lld",
             d->o->prefix, d->read_kvs->n, (long long)d->read_kvs->revision);
    ipvsd_etcd_read_slice(d);
}

void ipvsd_etcd_watch_ready(ipvsd *d)
{
    etcd_watch_batch *b = NULL;
    while (etcd_watch_take(d->watch, &b) == 1 && b) {
        for (size_t i = 0; i < b->n; i++)
            cfgsource_apply_etcd(d->cfg, d->o->prefix, b->events[i].type == ETCD_EVENT_DELETE,
                                 &b->events[i].kv, on_key, d);
        if (b->err.code)
            log_warn("msg=\"etcd watch interrupted; resuming\" code=%s endpoint=%s error=\"%s\"",
                     etcd_code_name(b->err.code), b->err.endpoint[0] ? b->err.endpoint : "-",
                     b->err.msg);
        int64_t compacted = b->compact_revision;
        etcd_watch_batch_free(b);
        b = NULL;
        if (compacted) {
            log_warn("msg=\"etcd history compacted; re-reading everything\" compact_revision=%lld",
                     (long long)compacted);
            d->reread = true;
            ipvsd_etcd_load(d);
            return;
        }
    }
}

/* ---- the advertised route ---- */

void ipvsd_advertise(ipvsd *d)
{
    if (!d->o->advertise_name || d->advertised ||
        ipvsd_worker_busy(d->worker, IPVSD_JOB_ADVERTISE))
        return;
    /* The job owns the lease until it comes back: out of epoll, off the loop's hands. */
    if (d->lease && d->lease_added &&
        epoll_ctl(d->ep, EPOLL_CTL_DEL, etcd_lease_fd(d->lease), NULL) < 0)
        log_warn("msg=\"cannot remove the lease from the event loop\" error=\"%s\"", strerror(errno));
    if (ipvsd_worker_submit(d->worker, IPVSD_JOB_ADVERTISE, d->lease) < 0) {
        d->lease_added = false;
        retry_later(d);
        return;
    }
    d->lease = NULL;
    d->lease_added = false;
}

/* An ADVERTISE came back: take the lease back (and watch its fd), log, retry on failure. */
static void advertise_done(ipvsd *d, ipvsd_job *job)
{
    d->lease = job->lease;
    if (d->lease)
        d->lease_added = add_fd(d, etcd_lease_fd(d->lease), "etcd-lease");
    if (job->revoked)
        log_warn("msg=\"route put failed; revoked the lease granted for it\" route=%s revoke=%s error=\"%s\"",
                 d->o->advertise_name, job->revoke_rc < 0 ? "failed" : "done",
                 job->revoke_rc < 0 ? job->revoke_err.msg : "");
    if (job->rc < 0) {
        log_warn("msg=\"cannot advertise the route yet\" route=%s code=%s error=\"%s\"",
                 d->o->advertise_name, etcd_code_name(job->err.code), job->err.msg);
        d->advertised = false;
        retry_later(d);
        return;
    }
    d->advertised = true;
    log_info("msg=\"route advertised\" route=%s lease=%llx ttl=%lld", d->o->advertise_name,
             (unsigned long long)etcd_lease_id(d->lease), (long long)etcd_lease_ttl(d->lease));
}

void ipvsd_lease_ready(ipvsd *d)
{
    if (!etcd_lease_lost(d->lease))
        return;
    etcd_error why = {0};
    etcd_lease_loss(d->lease, &why);
    char q[600];
    log_warn("msg=\"advertised route's lease lost; granting a new one\" route=%s reason=%s",
             d->o->advertise_name, log_quote(q, sizeof q, why.msg));
    d->advertised = false;
    ipvsd_advertise(d);
}

void ipvsd_etcd_worker_ready(ipvsd *d)
{
    ipvsd_job job;
    while (ipvsd_worker_take(d->worker, &job)) {
        ipvsd_metrics_etcd_job(d, &job);
        if (job.kind == IPVSD_JOB_READ)
            read_done(d, &job);
        else if (job.kind == IPVSD_JOB_ADVERTISE)
            advertise_done(d, &job);
    }
}

void ipvsd_etcd_retry(ipvsd *d)
{
    if ((!d->loaded || d->reread) && !ipvsd_etcd_applying(d))
        ipvsd_etcd_load(d);
    if (d->watch && !d->watch_added)
        d->watch_added = add_fd(d, etcd_watch_fd(d->watch), "etcd-watch");
    if (d->lease && !d->lease_added)
        d->lease_added = add_fd(d, etcd_lease_fd(d->lease), "etcd-lease");
    ipvsd_advertise(d);
}

/* ---- the local tree ---- */

/* cfgsource callback: watch each directory of the tree for changes. */
static void on_dir(const char *path, void *ctx)
{
    ipvsd *d = ctx;
    if (d->inotify_fd >= 0)
        inotify_add_watch(d->inotify_fd, path, IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                          IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MODIFY);
}

void ipvsd_local_rescan(ipvsd *d)
{
    int rc = cfgsource_local_read(d->cfg, d->o->config_path, on_key, on_dir, d);
    if (rc == -ENOMEM)
        log_error("msg=\"out of memory while reading the local tree\" path=%s", d->o->config_path);
    log_debug("msg=\"local tree read\" path=%s", d->o->config_path);
}

void ipvsd_local_changed(ipvsd *d)
{
    char buf[8192];
    while (read(d->inotify_fd, buf, sizeof buf) > 0)
        ;
    ipvsd_timer(d->local_fd, 50); /* let an editor finish writing, then rescan */
}

int ipvsd_local_init(ipvsd *d)
{
    struct stat st;
    if (stat(d->o->config_path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("msg=\"-config-path is not a directory\" path=%s", d->o->config_path);
        return -ENOTDIR;
    }
    d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->inotify_fd < 0 || ipvsd_watch_fd(d, d->inotify_fd) < 0) {
        log_error("msg=\"cannot watch -config-path\" error=\"%s\"", strerror(errno));
        return -errno;
    }
    ipvsd_local_rescan(d);
    return 0;
}
