/* test_cfgsource.c -- the -config-path tree reader shared by clusterf-ipvs and clusterfctl:
 * files become LOCAL keys, directories are reported (for inotify), dot files are skipped, a
 * rescan drops removed files, a missing root drops every local key and says -ENOTDIR; a file
 * or directory that is there but cannot be read (a FIFO, EIO, EMFILE) keeps its keys and is
 * reported, while one really gone beside it is still dropped. A Range result applied a part at
 * a time (cfgsource_apply_etcd_part) is one sync: a key gone from etcd is dropped only after
 * the last part. The etcd reads themselves are exercised against a real etcd by
 * tests/integration/test_clusterfctl.c and test_ipvsd_read_slices.c. */
#include "check.h"
#include "cfgsource/cfgsource.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void write_file(const char *rel, const char *text)
{
    char path[256], cmd[400];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

struct seen {
    int keys, invalid, ends, dirs;
    config_strs names;
};

static void on_key(const config_event *ev, const config_result *res, void *ctx)
{
    struct seen *s = ctx;
    if (!ev) {
        s->ends++;
        return;
    }
    CHECK_INT(ev->source, CONFIG_SOURCE_LOCAL);
    CHECK_INT(ev->revision, 0);
    s->keys++;
    s->invalid += res->invalid;
    config_strs_pushf(&s->names, "%.*s", (int)ev->key_len, ev->key);
}

static void on_dir(const char *path, void *ctx)
{
    (void)path;
    ((struct seen *)ctx)->dirs++;
}

static int count_entries(const config_entry *e, void *ctx)
{
    (void)e;
    (*(int *)ctx)++;
    return 0;
}

static int entries(config_store *cfg)
{
    int n = 0;
    config_store_foreach_entry(cfg, count_entries, &n);
    return n;
}

static void test_local_tree(void)
{
    snprintf(root, sizeof root, "/tmp/cfgsource-XXXXXX");
    if (!mkdtemp(root)) {
        check_skip("mkdtemp: %s", strerror(errno));
        return;
    }
    write_file("services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    write_file("services/web/backends/a", "{\"ipv4\":\"10.1.0.1\",\"tcp\":80}");
    write_file("services/web/backends/bad", "{\"ipv4\":\"10.1.0.1\",\"tcp\":0}");
    write_file("services/web/backends/.a.swp", "junk");
    write_file("routes/r", "{\"Prefix4\":\"10.1.0.0/16\"}");
    config_store *cfg = config_store_new(NULL);
    struct seen s = {0};
    CHECK_INT(cfgsource_local_read(cfg, root, on_key, on_dir, &s), 0);
    CHECK_INT(s.keys, 4);
    CHECK_INT(s.invalid, 1);
    CHECK_INT(s.ends, 1);
    CHECK_INT(s.dirs, 5); /* root, services, services/web, .../backends, routes */
    config_strs_sort_unique(&s.names);
    CHECK(s.names.n == 4 && strcmp(s.names.v[0], "routes/r") == 0 &&
          strcmp(s.names.v[1], "services/web/backends/a") == 0);
    CHECK(config_store_frontend(cfg, "web") != NULL);
    CHECK_INT(entries(cfg), 4);
    /* a rescan after a file is removed drops its key */
    char path[256];
    snprintf(path, sizeof path, "%s/services/web/backends/a", root);
    unlink(path);
    struct seen s2 = {0};
    CHECK_INT(cfgsource_local_read(cfg, root, on_key, NULL, &s2), 0);
    CHECK_INT(s2.keys, 3);
    CHECK_INT(entries(cfg), 3);
    /* a root that is not a directory: every local key dropped, -ENOTDIR */
    char gone[128];
    snprintf(gone, sizeof gone, "%s/nonexistent", root);
    CHECK_INT(cfgsource_local_read(cfg, gone, NULL, NULL, NULL), -ENOTDIR);
    CHECK_INT(entries(cfg), 0);
    CHECK(config_store_frontend(cfg, "web") == NULL);
    config_store_free(cfg);
    config_strs_clear(&s.names);
    config_strs_clear(&s2.names);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
}

/* ---- a part of the tree that cannot be read keeps its keys ---- */

struct failures {
    int n;
    char last_key[128], last_error[CONFIG_ERR_MAX];
};

static void on_failure(const config_event *ev, const config_result *res, void *ctx)
{
    struct failures *f = ctx;
    if (!ev || !res->invalid || ev->value)
        return;
    f->n++;
    snprintf(f->last_key, sizeof f->last_key, "%.*s", (int)ev->key_len, ev->key);
    snprintf(f->last_error, sizeof f->last_error, "%s", res->error);
}

static void put_tree(void)
{
    write_file("services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    write_file("services/web/backends/a", "{\"ipv4\":\"10.1.0.1\",\"tcp\":80}");
    write_file("services/web/backends/b", "{\"ipv4\":\"10.1.0.2\",\"tcp\":80}");
    write_file("routes/r", "{\"Prefix4\":\"10.1.0.0/16\"}");
}

static int count_backend(const char *name, const config_backend *be, void *ctx)
{
    (void)name, (void)be;
    (*(int *)ctx)++;
    return 0;
}

static int backends(config_store *cfg)
{
    int n = 0;
    config_store_foreach_backend(cfg, "web", count_backend, &n);
    return n;
}

/* Replace the file at rel (in the tree) with a FIFO / a symlink to target. */
static void replace_with_fifo(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unlink(path);
    CHECK_INT(mkfifo(path, 0644), 0);
}

static void replace_with_symlink(const char *rel, const char *target)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    unlink(path);
    CHECK_INT(symlink(target, path), 0);
}

static bool make_root(void)
{
    snprintf(root, sizeof root, "/tmp/cfgsource-XXXXXX");
    if (mkdtemp(root))
        return true;
    check_skip("mkdtemp: %s", strerror(errno));
    return false;
}

static void remove_root(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK_INT(system(cmd), 0);
}

/* A FIFO in a file's place and a read that fails with EIO (a symlink to /proc/self/mem, as
 * a failing disk would) keep their keys and are reported with the path; a file really gone
 * beside them is still dropped in the same pass. */
static void test_unreadable_file_kept(void)
{
    if (!make_root())
        return;
    put_tree();
    config_store *cfg = config_store_new(NULL);
    CHECK_INT(cfgsource_local_read(cfg, root, NULL, NULL, NULL), 0);
    CHECK_INT(entries(cfg), 4);
    replace_with_fifo("services/web/backends/a");
    char gone[256];
    snprintf(gone, sizeof gone, "%s/services/web/backends/b", root);
    unlink(gone);
    struct failures f = {0};
    CHECK_INT(cfgsource_local_read(cfg, root, on_failure, NULL, &f), -EINVAL);
    CHECK_INT(entries(cfg), 3);
    CHECK_INT(backends(cfg), 1);
    CHECK_INT(f.n, 1);
    CHECK_STR(f.last_key, "services/web/backends/a");
    CHECK_MSG(strstr(f.last_error, root) && strstr(f.last_error, "not a regular file"),
              "error: %s", f.last_error);
    replace_with_symlink("routes/r", "/proc/self/mem");
    struct failures f2 = {0};
    CHECK_INT(cfgsource_local_read(cfg, root, on_failure, NULL, &f2), -EINVAL);
    CHECK_INT(entries(cfg), 3);
    const config_route_ref *routes = NULL;
    CHECK_INT(config_store_routes(cfg, &routes), 1);
    CHECK_INT(f2.n, 2);
    CHECK_MSG(strstr(f2.last_error, "routes/r") || strstr(f2.last_error, "backends/a"),
              "error: %s", f2.last_error);
    /* Once readable again, or gone, all is as the tree says. */
    char path[256];
    snprintf(path, sizeof path, "%s/services/web/backends/a", root);
    unlink(path);
    struct failures f3 = {0};
    CHECK_INT(cfgsource_local_read(cfg, root, on_failure, NULL, &f3), -EIO);
    CHECK_INT(f3.n, 1);
    CHECK_STR(f3.last_key, "routes/r");
    CHECK_MSG(strstr(f3.last_error, "Input/output error") != NULL, "error: %s", f3.last_error);
    CHECK_INT(entries(cfg), 2);
    replace_with_symlink("routes/r", "/nonexistent/route");
    CHECK_INT(cfgsource_local_read(cfg, root, NULL, NULL, NULL), 0);
    CHECK_INT(entries(cfg), 1);
    config_store_free(cfg);
    remove_root();
}

/* Every descriptor but `spare` taken, under a lowered RLIMIT_NOFILE: the next opens fail
 * with EMFILE. fds_release gives them back. */
static int held[128], n_held;
static struct rlimit saved_limit;

static bool fds_squeeze(int spare)
{
    struct rlimit low;
    if (getrlimit(RLIMIT_NOFILE, &saved_limit) < 0)
        return false;
    low = (struct rlimit){64, saved_limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &low) < 0)
        return false;
    int fd;
    n_held = 0;
    while (n_held < 128 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        held[n_held++] = fd;
    bool full = errno == EMFILE && n_held >= spare;
    for (int i = 0; i < spare && n_held > 0; i++)
        close(held[--n_held]);
    return full;
}

static void fds_release(void)
{
    while (n_held > 0)
        close(held[--n_held]);
    setrlimit(RLIMIT_NOFILE, &saved_limit);
}

/* Out of descriptors (EMFILE) at the root, at a directory or at a file (the deepest file
 * needs five: root, services, web, backends, itself): every key stays, the
 * error comes back; with enough descriptors the same tree reads cleanly. */
static void test_emfile_keeps_keys(void)
{
    if (!make_root())
        return;
    put_tree();
    config_store *cfg = config_store_new(NULL);
    CHECK_INT(cfgsource_local_read(cfg, root, NULL, NULL, NULL), 0);
    CHECK_INT(entries(cfg), 4);
    for (int spare = 0; spare <= 6; spare++) {
        struct failures f = {0};
        bool squeezed = fds_squeeze(spare);
        int rc = squeezed ? cfgsource_local_read(cfg, root, on_failure, NULL, &f) : 0;
        fds_release();
        if (!CHECK_MSG(squeezed, "cannot squeeze descriptors: %s", strerror(errno)))
            break;
        CHECK_MSG(rc == (spare <= 4 ? -EMFILE : 0), "%d spare: rc %d", spare, rc);
        CHECK_MSG(entries(cfg) == 4, "%d spare: %d keys left", spare, entries(cfg));
        CHECK_MSG(spare > 4 || (f.n > 0 && strstr(f.last_error, root) &&
                                strstr(f.last_error, "Too many open files")),
                  "%d spare: %d reported, %s", spare, f.n, f.last_error);
    }
    config_store_free(cfg);
    remove_root();
}

/* A directory that is gone drops every key under it. */
static void test_gone_directory_dropped(void)
{
    if (!make_root())
        return;
    put_tree();
    config_store *cfg = config_store_new(NULL);
    CHECK_INT(cfgsource_local_read(cfg, root, NULL, NULL, NULL), 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/services/web/backends'", root);
    CHECK_INT(system(cmd), 0);
    CHECK_INT(cfgsource_local_read(cfg, root, NULL, NULL, NULL), 0);
    CHECK_INT(entries(cfg), 2);
    CHECK_INT(backends(cfg), 0);
    config_store_free(cfg);
    remove_root();
}

/* cfgsource callback of the etcd tests: count keys and sync ends. */
static void on_etcd_key(const config_event *ev, const config_result *res, void *ctx)
{
    struct seen *s = ctx;
    (void)res;
    if (!ev) {
        s->ends++;
        return;
    }
    CHECK_INT(ev->source, CONFIG_SOURCE_ETCD);
    s->keys++;
}

/* An etcd_kv of key = value (both NUL-terminated strings that outlive it). */
static etcd_kv kv_of(const char *key, const char *value)
{
    return (etcd_kv){(const uint8_t *)key, strlen(key), (const uint8_t *)value, strlen(value),
                     1, 7, 1, 0};
}

static void test_etcd_in_parts(void)
{
    config_store *cfg = config_store_new(NULL);
    struct seen s = {0};
    etcd_kv old = kv_of("/c/services/old/frontend", "{\"ipv4\":\"10.0.0.9\",\"tcp\":80}");
    CHECK_INT(cfgsource_apply_etcd(cfg, "/c", false, &old, NULL, NULL), 0);
    etcd_kv kv[] = {
        kv_of("/c/services/web/backends/a", "{\"ipv4\":\"10.1.0.1\",\"tcp\":80}"),
        kv_of("/c/services/web/backends/b", "{\"ipv4\":\"10.1.0.2\",\"tcp\":80}"),
        kv_of("/c/services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}"),
        kv_of("/other/services/x/frontend", "{\"ipv4\":\"10.0.0.2\",\"tcp\":80}"),
        kv_of("/c/routes/r", "{\"Prefix4\":\"10.1.0.0/16\"}"),
    };
    etcd_kvs kvs = {kv, sizeof kv / sizeof kv[0], 7, NULL};
    size_t next = 0;
    CHECK_INT(cfgsource_apply_etcd_part(cfg, "/c", &kvs, &next, 2, on_etcd_key, &s), 1);
    CHECK_INT(next, 2);
    CHECK_INT(entries(cfg), 3); /* the old key stays until the sync ends */
    CHECK_INT(cfgsource_apply_etcd_part(cfg, "/c", &kvs, &next, 2, on_etcd_key, &s), 1);
    CHECK_INT(next, 4);
    CHECK_INT(s.ends, 0);
    CHECK_INT(cfgsource_apply_etcd_part(cfg, "/c", &kvs, &next, 2, on_etcd_key, &s), 0);
    CHECK_INT(next, 5);
    CHECK_INT(s.ends, 1);
    CHECK_INT(s.keys, 4); /* the key outside the prefix is ignored */
    CHECK_INT(entries(cfg), 4);
    /* the whole range at once ends the same way; an empty one drops every etcd key */
    CHECK_INT(cfgsource_apply_etcd_range(cfg, "/c", &kvs, NULL, NULL), 0);
    CHECK_INT(entries(cfg), 4);
    etcd_kvs none = {NULL, 0, 8, NULL};
    next = 0;
    CHECK_INT(cfgsource_apply_etcd_part(cfg, "/c", &none, &next, 2, on_etcd_key, &s), 0);
    CHECK_INT(s.ends, 2);
    CHECK_INT(entries(cfg), 0);
    config_store_free(cfg);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("local_tree", test_local_tree);
    check_run("etcd_in_parts", test_etcd_in_parts);
    check_run("unreadable_file_kept", test_unreadable_file_kept);
    check_run("emfile_keeps_keys", test_emfile_keeps_keys);
    check_run("gone_directory_dropped", test_gone_directory_dropped);
    return check_end();
}
