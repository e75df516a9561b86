/* ipvsd_source.c -- where the daemon's config comes from: the etcd prefix (one read, then a
 * watch; a re-read after compaction), the -config-path tree (rescanned on inotify), and the
 * route this host advertises into etcd under a lease. The reading itself is cfgsource/ (shared
 * with clusterfctl); this file adds the logging, the watches and the daemon's reactions. */
#include "ipvsd/ipvsd_int.h"

#include "cfgsource/cfgsource.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

/* Read the whole prefix at one revision into the store (a sync of the etcd source).
 * Returns the revision, or -1 (logged). */
static int64_t read_prefix(ipvsd *d)
{
    etcd_error err = {0};
    int64_t rev = 0;
    size_t n = 0;
    int rc = cfgsource_etcd_read(d->etcd, d->o->prefix, d->cfg, on_key, d, &rev, &n, &err);
    if (rc < 0 && rc != -ENOMEM) {
        log_warn("msg=\"etcd read failed; kernel table kept as it is\" code=%s endpoint=%s error=\"%s\"",
                 etcd_code_name(err.code), err.endpoint[0] ? err.endpoint : "-", err.msg);
        return -1;
    }
    if (rc == -ENOMEM)
        log_error("msg=\"out of memory while reading etcd\" prefix=%s", d->o->prefix);
    log_info("msg=\"etcd read\" prefix=%s keys=%zu revision=%lld invalid=%zu", d->o->prefix,
             n, (long long)rev, config_store_invalid_count(d->cfg));
    return rev;
}

void ipvsd_etcd_load(ipvsd *d)
{
    int64_t rev = read_prefix(d);
    if (rev < 0) {
        retry_later(d);
        return;
    }
    backoff_reset(&d->retry);
    d->loaded = true;
    ipvsd_pass_full(d, d->watch ? "compaction" : "start");
    etcd_error err = {0};
    if (d->watch) {
        etcd_watch_restart(d->watch, rev + 1);
        return;
    }
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/", d->o->prefix);
    if (etcd_watch_new(d->etcd, prefix, strlen(prefix), rev + 1, &d->watch, &err) < 0 ||
        ipvsd_watch_fd(d, etcd_watch_fd(d->watch)) < 0) {
        log_error("msg=\"cannot start the etcd watch\" error=\"%s\"", err.msg);
        etcd_watch_free(d->watch);
        d->watch = NULL;
        d->loaded = false;
        retry_later(d);
    }
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
            d->loaded = false;
            ipvsd_etcd_load(d);
            return;
        }
    }
}

/* ---- the advertised route ---- */

static int put_advertised(ipvsd *d, etcd_error *err)
{
    char key[600];
    snprintf(key, sizeof key, "%s/routes/%s", d->o->prefix, d->o->advertise_name);
    return etcd_put(d->etcd, key, strlen(key), d->o->advertise_json, strlen(d->o->advertise_json),
                    etcd_lease_id(d->lease), NULL, err);
}

void ipvsd_advertise(ipvsd *d)
{
    etcd_error err = {0};
    int rc = 0;
    if (!d->lease) {
        rc = etcd_lease_new(d->etcd, d->o->advertise_ttl_s, &d->lease, &err);
        if (rc == 0 && ipvsd_watch_fd(d, etcd_lease_fd(d->lease)) < 0)
            rc = -errno;
    } else if (etcd_lease_lost(d->lease)) {
        rc = etcd_lease_regrant(d->lease, &err);
    }
    if (rc == 0)
        rc = put_advertised(d, &err);
    if (rc < 0) {
        log_warn("msg=\"cannot advertise the route yet\" route=%s error=\"%s\"",
                 d->o->advertise_name, err.msg);
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
    log_warn("msg=\"advertised route's lease lost; granting a new one\" route=%s",
             d->o->advertise_name);
    d->advertised = false;
    etcd_error err = {0};
    if (etcd_lease_regrant(d->lease, &err) < 0 || put_advertised(d, &err) < 0) {
        log_warn("msg=\"cannot advertise the route yet\" route=%s error=\"%s\"",
                 d->o->advertise_name, err.msg);
        retry_later(d);
        return;
    }
    d->advertised = true;
    log_info("msg=\"route advertised\" route=%s lease=%llx", d->o->advertise_name,
             (unsigned long long)etcd_lease_id(d->lease));
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
