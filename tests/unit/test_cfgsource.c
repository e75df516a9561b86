/* test_cfgsource.c -- the -config-path tree reader shared by clusterf-ipvs and clusterfctl:
 * files become LOCAL keys, directories are reported (for inotify), dot files are skipped, a
 * rescan drops removed files, a missing root drops every local key and says -ENOTDIR. The etcd
 * half is exercised against a real etcd by tests/integration/test_clusterfctl.c. */
#include "check.h"
#include "cfgsource/cfgsource.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("local_tree", test_local_tree);
    return check_end();
}
