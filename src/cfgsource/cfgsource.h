/* cfgsource.h -- read the clusterf config into a config_store, the same way in the daemon
 * (clusterf-ipvs) and in the operator tool (clusterfctl): every key under the etcd prefix at
 * one revision, and the -config-path tree (files at services/<svc>/frontend,
 * services/<svc>/backends/<b>, routes/<r>).
 *
 * Each read is a sync of one source (config_store_sync_begin/_end): keys no longer present
 * are dropped. Nothing here logs: what each key did comes back through a callback, for the
 * caller to log (the daemon) or report (clusterfctl). Watching (etcd watch, inotify) stays
 * with the caller. */
#ifndef CLUSTERF_CFGSOURCE_H
#define CLUSTERF_CFGSOURCE_H

#include "config/config.h"
#include "etcd/etcd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called after each key is applied, with the event (source, key relative to the prefix or the
 * tree, not NUL-terminated, value, etcd mod revision or 0) and what it did; and once at the end
 * of a sync with ev NULL and the result of sync_end (keys that disappeared). Both are only
 * valid during the call. */
typedef void (*cfgsource_key_fn)(const config_event *ev, const config_result *res, void *ctx);

/* Called for each directory of the tree (the root first), e.g. to add an inotify watch. */
typedef void (*cfgsource_dir_fn)(const char *path, void *ctx);

/* Apply one etcd key (put, or delete when is_delete) under prefix ("/clusterf") to cfg as a
 * CONFIG_SOURCE_ETCD event; keys outside "<prefix>/" are ignored (fn not called). Returns the
 * config_store_apply result (0, -EINVAL for an invalid value, -ENOMEM), or 0 when ignored. */
int cfgsource_apply_etcd(config_store *cfg, const char *prefix, bool is_delete,
                         const etcd_kv *kv, cfgsource_key_fn fn, void *ctx);

/* Apply the result of a Range of "<prefix>/" (read by the caller, e.g. on another thread) as
 * a sync of the etcd source: each key through cfgsource_apply_etcd, then sync_end. fn (may be
 * NULL) as in cfgsource_etcd_read. Returns 0 or -ENOMEM. */
int cfgsource_apply_etcd_range(config_store *cfg, const char *prefix, const etcd_kvs *kvs,
                               cfgsource_key_fn fn, void *ctx);

/* The same, a part at a time (for a caller that applies a large read between other work):
 * apply up to max keys of kvs from *next on, advancing *next. At *next == 0 the sync begins;
 * after the last key it ends (fn gets its result). Returns 1 while keys remain, 0 once the
 * sync is over, or -ENOMEM (the sync is left unfinished: keys already applied stay). */
int cfgsource_apply_etcd_part(config_store *cfg, const char *prefix, const etcd_kvs *kvs,
                              size_t *next, size_t max, cfgsource_key_fn fn, void *ctx);

/* Read every key under "<prefix>/" at one revision (paginated) as a sync of the etcd source.
 * fn (may be NULL) gets each key's result and the sync_end result. On success returns 0 with
 * *revision and *n_keys (either may be NULL) set; on an etcd failure returns -errno with err
 * filled and the store unchanged. */
int cfgsource_etcd_read(etcd_client *c, const char *prefix, config_store *cfg,
                        cfgsource_key_fn fn, void *ctx, int64_t *revision, size_t *n_keys,
                        etcd_error *err);

/* Walk the tree at root (at most 4 levels, names starting with '.' skipped, symlinks followed)
 * and apply every regular file as a CONFIG_SOURCE_LOCAL put of its relative path, as a sync of
 * the local source. dir_fn (may be NULL) is called for each directory before it is read; fn
 * (may be NULL) for each file's result and the sync_end result. Keys whose file is gone
 * (ENOENT, ENOTDIR) are dropped. A file or directory that is there but cannot be read (EIO,
 * EMFILE, EACCES, not a regular file, ...) keeps the last value of every key in it: fn gets
 * an event for its place in the tree (value NULL) with an invalid, stale result whose error
 * names the path and the reason. Returns 0; -ENOTDIR when root is not a directory (then the
 * sync still ran: every local key is dropped); -ENOMEM; or else the first read error (-errno,
 * -EINVAL for a path that is not a regular file or directory) after a sync that kept the
 * unreadable parts. */
int cfgsource_local_read(config_store *cfg, const char *root, cfgsource_key_fn fn,
                         cfgsource_dir_fn dir_fn, void *ctx);

#endif
