/* cfgsource.c -- the etcd prefix and the -config-path tree read into a config_store (see
 * cfgsource.h). No logging and no watching here: results go to the caller's callback. A part
 * of the tree that exists but cannot be read keeps its keys; only a path that is gone
 * (ENOENT, ENOTDIR) drops them. */
#include "cfgsource/cfgsource.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCAL_MAX_DEPTH 4

/* The key relative to the prefix ("services/x/frontend"), or NULL when outside it. */
static const char *relative_key(const char *prefix, const uint8_t *key, size_t len,
                                size_t *rel_len)
{
    size_t plen = strlen(prefix);
    if (len <= plen + 1 || memcmp(key, prefix, plen) != 0 || key[plen] != '/')
        return NULL;
    *rel_len = len - plen - 1;
    return (const char *)key + plen + 1;
}

int cfgsource_apply_etcd(config_store *cfg, const char *prefix, bool is_delete,
                         const etcd_kv *kv, cfgsource_key_fn fn, void *ctx)
{
    size_t rel_len;
    const char *rel = relative_key(prefix, kv->key, kv->key_len, &rel_len);
    if (!rel)
        return 0;
    config_event ev = {CONFIG_SOURCE_ETCD, is_delete, rel, rel_len, (const char *)kv->value,
                       kv->value_len, kv->mod_revision};
    config_result res;
    config_result_init(&res);
    int rc = config_store_apply(cfg, &ev, &res);
    if (fn)
        fn(&ev, &res, ctx);
    config_result_free(&res);
    return rc;
}

/* Run sync_end of src and hand its result to fn (with no event). 0 or -ENOMEM. */
static int sync_end(config_store *cfg, enum config_source src, cfgsource_key_fn fn, void *ctx)
{
    config_result res;
    config_result_init(&res);
    int rc = config_store_sync_end(cfg, src, &res);
    if (fn)
        fn(NULL, &res, ctx);
    config_result_free(&res);
    return rc;
}

int cfgsource_apply_etcd_part(config_store *cfg, const char *prefix, const etcd_kvs *kvs,
                              size_t *next, size_t max, cfgsource_key_fn fn, void *ctx)
{
    int rc = *next == 0 ? config_store_sync_begin(cfg, CONFIG_SOURCE_ETCD) : 0;
    size_t end = max < kvs->n - *next ? *next + max : kvs->n;
    for (; rc == 0 && *next < end; (*next)++)
        if (cfgsource_apply_etcd(cfg, prefix, false, &kvs->kvs[*next], fn, ctx) == -ENOMEM)
            rc = -ENOMEM;
    if (rc < 0)
        return rc;
    if (*next < kvs->n)
        return 1;
    return sync_end(cfg, CONFIG_SOURCE_ETCD, fn, ctx);
}

int cfgsource_apply_etcd_range(config_store *cfg, const char *prefix, const etcd_kvs *kvs,
                               cfgsource_key_fn fn, void *ctx)
{
    size_t next = 0;
    return cfgsource_apply_etcd_part(cfg, prefix, kvs, &next, SIZE_MAX, fn, ctx);
}

int cfgsource_etcd_read(etcd_client *c, const char *prefix, config_store *cfg,
                        cfgsource_key_fn fn, void *ctx, int64_t *revision, size_t *n_keys,
                        etcd_error *err)
{
    etcd_kvs *kvs = NULL;
    char p[512];
    snprintf(p, sizeof p, "%s/", prefix);
    int rc = etcd_range_prefix(c, p, strlen(p), 0, &kvs, err);
    if (rc < 0)
        return rc;
    rc = cfgsource_apply_etcd_range(cfg, prefix, kvs, fn, ctx);
    if (revision)
        *revision = kvs->revision;
    if (n_keys)
        *n_keys = kvs->n;
    etcd_kvs_free(kvs);
    return rc;
}

struct walk {
    config_store *cfg;
    cfgsource_key_fn fn;
    cfgsource_dir_fn dir_fn;
    void *ctx;
    int read_err; /* the first read error (-errno); 0 while everything could be read */
};

/* True for the errors that say a path is really gone: only then are its keys dropped. */
static bool local_gone(int e)
{
    return e == ENOENT || e == ENOTDIR;
}

/* A part of the tree (path; rel its place in the tree, "" for all of it; a directory when
 * dir) exists but could not be read (err; why, or strerror): its keys keep their last values,
 * fn gets an invalid result naming the path, and the first such error is kept for the
 * caller. Returns 0. */
static int local_keep(struct walk *w, const char *path, const char *rel, bool dir, int err,
                      const char *why)
{
    if (!w->read_err)
        w->read_err = err;
    config_store_sync_keep(w->cfg, CONFIG_SOURCE_LOCAL, rel, strlen(rel), dir);
    if (!w->fn)
        return 0;
    config_event ev = {CONFIG_SOURCE_LOCAL, false, rel, strlen(rel), NULL, 0, 0};
    config_result res;
    config_result_init(&res);
    res.invalid = res.stale = true;
    snprintf(res.error, sizeof res.error, "cannot read %s: %s; last value (if any) kept", path,
             why ? why : strerror(-err));
    w->fn(&ev, &res, w->ctx);
    config_result_free(&res);
    return 0;
}

/* Read up to size bytes of the regular file at path into buf (*n set). 0, -EINVAL when it is
 * no longer a regular file, or -errno. Never blocks on a FIFO put in the file's place. */
static int local_read_file(const char *path, char *buf, size_t size, size_t *n)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    *n = 0;
    while (rc == 0 && *n < size) {
        ssize_t got = read(fd, buf + *n, size - *n);
        if (got < 0 && errno != EINTR)
            rc = -errno;
        if (got == 0)
            break;
        if (got > 0)
            *n += (size_t)got;
    }
    close(fd);
    return rc;
}

/* Read one file of the tree and apply it as a LOCAL put. A file gone meanwhile is left out
 * (sync_end drops it); one that cannot be read keeps its last value. 0 or -ENOMEM. */
static int local_apply_file(struct walk *w, const char *path, const char *rel)
{
    char *buf = malloc(CONFIG_VALUE_MAX + 1);
    size_t n = 0;
    if (!buf)
        return -ENOMEM;
    int rc = local_read_file(path, buf, CONFIG_VALUE_MAX + 1, &n);
    if (rc < 0) {
        free(buf);
        if (local_gone(-rc))
            return 0;
        return local_keep(w, path, rel, false, rc, rc == -EINVAL ? "not a regular file" : NULL);
    }
    config_event ev = {CONFIG_SOURCE_LOCAL, false, rel, strlen(rel), buf, n, 0};
    config_result res;
    config_result_init(&res);
    rc = config_store_apply(w->cfg, &ev, &res);
    if (w->fn)
        w->fn(&ev, &res, w->ctx);
    config_result_free(&res);
    free(buf);
    return rc == -ENOMEM ? rc : 0;
}

static int local_walk(struct walk *w, const char *dir, const char *rel, int depth);

/* One entry (name) of directory dir (rel in the tree): a directory is walked, a regular file
 * applied; anything else that exists keeps its key's last value. 0 or -ENOMEM. */
static int local_entry(struct walk *w, const char *dir, const char *rel, const char *name,
                       int depth)
{
    char path[PATH_MAX], r[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", name) >= (int)sizeof r)
        return local_keep(w, dir, rel, true, -ENAMETOOLONG, NULL);
    struct stat st;
    if (stat(path, &st) < 0)
        return local_gone(errno) ? 0 : local_keep(w, path, r, true, -errno, NULL);
    if (S_ISDIR(st.st_mode))
        return local_walk(w, path, r, depth + 1);
    if (S_ISREG(st.st_mode))
        return local_apply_file(w, path, r);
    return local_keep(w, path, r, false, -EINVAL, "not a regular file");
}

/* Walk dir (rel is its path inside the tree), applying files. A directory that cannot be
 * opened or read to the end keeps every key under it. 0 or -ENOMEM. */
static int local_walk(struct walk *w, const char *dir, const char *rel, int depth)
{
    if (depth > LOCAL_MAX_DEPTH)
        return 0;
    if (w->dir_fn)
        w->dir_fn(dir, w->ctx);
    DIR *dh = opendir(dir);
    if (!dh)
        return local_gone(errno) ? 0 : local_keep(w, dir, rel, true, -errno, NULL);
    int rc = 0;
    while (rc == 0) {
        errno = 0;
        struct dirent *de = readdir(dh);
        if (!de) {
            if (errno)
                rc = local_keep(w, dir, rel, true, -errno, NULL);
            break;
        }
        if (de->d_name[0] != '.')
            rc = local_entry(w, dir, rel, de->d_name, depth);
    }
    closedir(dh);
    return rc;
}

int cfgsource_local_read(config_store *cfg, const char *root, cfgsource_key_fn fn,
                         cfgsource_dir_fn dir_fn, void *ctx)
{
    struct walk w = {cfg, fn, dir_fn, ctx, 0};
    struct stat st;
    int st_err = stat(root, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    int rc = config_store_sync_begin(cfg, CONFIG_SOURCE_LOCAL);
    if (rc == 0 && st_err == 0)
        rc = local_walk(&w, root, "", 0);
    else if (rc == 0 && !local_gone(st_err))
        rc = local_keep(&w, root, "", true, -st_err, NULL);
    if (rc == 0)
        rc = sync_end(cfg, CONFIG_SOURCE_LOCAL, fn, ctx);
    if (rc == 0 && local_gone(st_err))
        rc = -ENOTDIR;
    return rc == 0 ? w.read_err : rc;
}
