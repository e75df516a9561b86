/* ipvsd_source.c -- where the daemon's config comes from: the etcd prefix (one read, then a
 * watch; a re-read after compaction), the -config-path tree (rescanned on inotify), and the
 * route this host advertises into etcd under a lease. */
#include "ipvsd/ipvsd_int.h"

#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- etcd ---- */

/* The key relative to the prefix ("services/x/frontend"), or NULL when outside it. */
static const char *relative_key(const ipvsd *d, const uint8_t *key, size_t len, size_t *rel_len)
{
    size_t plen = strlen(d->o->prefix);
    if (len <= plen + 1 || memcmp(key, d->o->prefix, plen) != 0 || key[plen] != '/')
        return NULL;
    *rel_len = len - plen - 1;
    return (const char *)key + plen + 1;
}

/* Apply one etcd key (put or delete) to the store and mark what it touched. */
static void apply_etcd_kv(ipvsd *d, bool is_delete, const etcd_kv *kv)
{
    size_t rel_len;
    const char *rel = relative_key(d, kv->key, kv->key_len, &rel_len);
    if (!rel)
        return;
    config_event ev = {CONFIG_SOURCE_ETCD, is_delete, rel, rel_len, (const char *)kv->value,
                       kv->value_len, kv->mod_revision};
    config_result res;
    config_result_init(&res);
    config_store_apply(d->cfg, &ev, &res);
    ipvsd_log_result("etcd", rel, rel_len, kv->mod_revision, &res);
    ipvsd_mark(d, &res);
    config_result_free(&res);
}

static void retry_later(ipvsd *d)
{
    ipvsd_timer(d->retry_fd, backoff_next(&d->retry));
}

/* Read the whole prefix at one revision into the store (a sync of the etcd source).
 * Returns the revision, or -1 (logged). */
static int64_t read_prefix(ipvsd *d)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/", d->o->prefix);
    if (etcd_range_prefix(d->etcd, prefix, strlen(prefix), 0, &kvs, &err) < 0) {
        log_warn("msg=\"etcd read failed; kernel table kept as it is\" code=%s endpoint=%s error=\"%s\"",
                 etcd_code_name(err.code), err.endpoint[0] ? err.endpoint : "-", err.msg);
        return -1;
    }
    config_result res;
    config_result_init(&res);
    config_store_sync_begin(d->cfg, CONFIG_SOURCE_ETCD);
    for (size_t i = 0; i < kvs->n; i++)
        apply_etcd_kv(d, false, &kvs->kvs[i]);
    config_store_sync_end(d->cfg, CONFIG_SOURCE_ETCD, &res);
    ipvsd_mark(d, &res);
    config_result_free(&res);
    int64_t rev = kvs->revision;
    log_info("msg=\"etcd read\" prefix=%s keys=%zu revision=%lld invalid=%zu", d->o->prefix,
             kvs->n, (long long)rev, config_store_invalid_count(d->cfg));
    etcd_kvs_free(kvs);
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
            apply_etcd_kv(d, b->events[i].type == ETCD_EVENT_DELETE, &b->events[i].kv);
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

/* Read one file of the tree and apply it as a LOCAL put. */
static void local_apply_file(ipvsd *d, const char *path, const char *rel)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *buf = malloc(CONFIG_VALUE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_VALUE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return;
    config_event ev = {CONFIG_SOURCE_LOCAL, false, rel, strlen(rel), buf, n, 0};
    config_result res;
    config_result_init(&res);
    config_store_apply(d->cfg, &ev, &res);
    ipvsd_log_result("local", rel, strlen(rel), 0, &res);
    ipvsd_mark(d, &res);
    config_result_free(&res);
    free(buf);
}

/* Walk dir (rel is its path inside the tree), applying files and watching directories. */
static void local_walk(ipvsd *d, const char *dir, const char *rel, int depth)
{
    if (depth > 4)
        return;
    if (d->inotify_fd >= 0)
        inotify_add_watch(d->inotify_fd, dir, IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
                          IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MODIFY);
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096], r[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            local_walk(d, path, r, depth + 1);
        else if (S_ISREG(st.st_mode))
            local_apply_file(d, path, r);
    }
    closedir(dh);
}

void ipvsd_local_rescan(ipvsd *d)
{
    config_result res;
    config_result_init(&res);
    config_store_sync_begin(d->cfg, CONFIG_SOURCE_LOCAL);
    local_walk(d, d->o->config_path, "", 0);
    config_store_sync_end(d->cfg, CONFIG_SOURCE_LOCAL, &res);
    ipvsd_mark(d, &res);
    config_result_free(&res);
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
