/* cfgsource.c -- the etcd prefix and the -config-path tree read into a config_store (see
 * cfgsource.h). No logging and no watching here: results go to the caller's callback. */
#include "cfgsource/cfgsource.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int cfgsource_apply_etcd_range(config_store *cfg, const char *prefix, const etcd_kvs *kvs,
                               cfgsource_key_fn fn, void *ctx)
{
    int rc = config_store_sync_begin(cfg, CONFIG_SOURCE_ETCD);
    for (size_t i = 0; rc == 0 && i < kvs->n; i++)
        if (cfgsource_apply_etcd(cfg, prefix, false, &kvs->kvs[i], fn, ctx) == -ENOMEM)
            rc = -ENOMEM;
    if (rc == 0)
        rc = sync_end(cfg, CONFIG_SOURCE_ETCD, fn, ctx);
    return rc;
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

/* Read one file of the tree and apply it as a LOCAL put; unreadable files are skipped. */
static int local_apply_file(config_store *cfg, const char *path, const char *rel,
                            cfgsource_key_fn fn, void *ctx)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *buf = malloc(CONFIG_VALUE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_VALUE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return -ENOMEM;
    config_event ev = {CONFIG_SOURCE_LOCAL, false, rel, strlen(rel), buf, n, 0};
    config_result res;
    config_result_init(&res);
    int rc = config_store_apply(cfg, &ev, &res);
    if (fn)
        fn(&ev, &res, ctx);
    config_result_free(&res);
    free(buf);
    return rc == -ENOMEM ? rc : 0;
}

struct walk {
    config_store *cfg;
    cfgsource_key_fn fn;
    cfgsource_dir_fn dir_fn;
    void *ctx;
};

/* Walk dir (rel is its path inside the tree), applying files. 0 or -ENOMEM. */
static int local_walk(const struct walk *w, const char *dir, const char *rel, int depth)
{
    if (depth > LOCAL_MAX_DEPTH)
        return 0;
    if (w->dir_fn)
        w->dir_fn(dir, w->ctx);
    DIR *dh = opendir(dir);
    if (!dh)
        return 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096], r[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = local_walk(w, path, r, depth + 1);
        else if (S_ISREG(st.st_mode))
            rc = local_apply_file(w->cfg, path, r, w->fn, w->ctx);
    }
    closedir(dh);
    return rc;
}

int cfgsource_local_read(config_store *cfg, const char *root, cfgsource_key_fn fn,
                         cfgsource_dir_fn dir_fn, void *ctx)
{
    struct walk w = {cfg, fn, dir_fn, ctx};
    struct stat st;
    bool is_dir = stat(root, &st) == 0 && S_ISDIR(st.st_mode);
    int rc = config_store_sync_begin(cfg, CONFIG_SOURCE_LOCAL);
    if (rc == 0 && is_dir)
        rc = local_walk(&w, root, "", 0);
    if (rc == 0)
        rc = sync_end(cfg, CONFIG_SOURCE_LOCAL, fn, ctx);
    if (rc == 0 && !is_dir)
        rc = -ENOTDIR;
    return rc;
}
