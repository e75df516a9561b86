/* fuzz_store.c -- libFuzzer target for config_store + lb: event sequences.
 * Input: byte 0 = options (bit 0 filter_etcd_routes, bit 1 default method droute), then lines
 * "<op><source><key> <value>" with op 'p' (put), 'd' (delete), 'b'/'e' (sync_begin/sync_end;
 * the rest of the line is ignored) and source '0' local, '1' advertised, '2' etcd.
 * Checks: no crash, no leak, and after every event the incrementally maintained tables of the
 * touched services equal a full recompute (the contract the reconciler relies on). */
#include "config/config.h"
#include "lb/lb.h"
#include "lb_dump.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SVCS 64

typedef struct view {
    char *name[MAX_SVCS];
    char *dump[MAX_SVCS];
    int n;
} view;

static int view_find(view *v, const char *name, bool add)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->name[i], name) == 0)
            return i;
    if (!add || v->n == MAX_SVCS)
        return -1;
    v->name[v->n] = strdup(name);
    v->dump[v->n] = strdup("");
    return v->n++;
}

static void view_update(view *v, config_store *s, const char *name)
{
    int i = view_find(v, name, true);
    if (i < 0)
        return;
    lb_table t;
    lb_table_init(&t);
    if (lb_compute_service(s, name, &t) != 0)
        abort();
    free(v->dump[i]);
    v->dump[i] = lb_dump(&t, NULL);
    lb_table_free(&t);
}

/* Apply what the store says was touched. */
static void view_apply(view *v, config_store *s, const config_result *r)
{
    for (size_t i = 0; i < r->services.n; i++)
        view_update(v, s, r->services.v[i]);
}

/* Every service's incremental table must equal the full table. */
static void view_check(view *v, config_store *s)
{
    lb_table all;
    lb_table_init(&all);
    if (lb_compute_all(s, &all) != 0)
        abort();
    for (size_t i = 0; i < all.n_services; i++)
        if (view_find(v, all.services[i].owner, false) < 0 && v->n < MAX_SVCS) {
            fprintf(stderr, "service %s in the full table was never touched\n", all.services[i].owner);
            abort();
        }
    for (int i = 0; i < v->n; i++) {
        char *want = lb_dump(&all, v->name[i]);
        if (strcmp(want, v->dump[i]) != 0) {
            fprintf(stderr, "service %s: incremental\n%s--- full\n%s", v->name[i], v->dump[i], want);
            abort();
        }
        free(want);
    }
    lb_table_free(&all);
}

static void one_line(config_store *s, view *v, const char *line, size_t len, config_result *r)
{
    if (len < 2 || line[1] < '0' || line[1] > '2')
        return;
    enum config_source src = (enum config_source)(line[1] - '0');
    const char *rest = line + 2, *sp = memchr(rest, ' ', len - 2);
    size_t klen = sp ? (size_t)(sp - rest) : len - 2;
    config_event ev = {.source = src, .key = rest, .key_len = klen, .is_delete = line[0] == 'd',
                       .value = sp ? sp + 1 : "", .value_len = sp ? len - 2 - klen - 1 : 0};
    int rc = 0;
    if (line[0] == 'p' || line[0] == 'd')
        rc = config_store_apply(s, &ev, r);
    else if (line[0] == 'b')
        rc = config_store_sync_begin(s, src);
    else if (line[0] == 'e')
        rc = config_store_sync_end(s, src, r);
    else
        return;
    if (rc != 0 && rc != -22)
        abort();
    if (line[0] != 'b')
        view_apply(v, s, r);
}

/* Every entry held must be well formed. */
static int entry_cb(const config_entry *e, void *ctx)
{
    (void)ctx;
    if (!e->key || (!e->value && !e->error) || (e->stale && (!e->value || !e->error)))
        abort();
    char *js = e->value ? config_value_to_json(e->value) : NULL;
    free(js);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    config_options o;
    memset(&o, 0, sizeof o);
    config_defaults_init(&o.defaults);
    o.filter_etcd_routes = data[0] & 1;
    if (data[0] & 2)
        o.defaults.method = CONFIG_METHOD_DROUTE;
    config_store *s = config_store_new(&o);
    view v = {.n = 0};
    config_result r;
    config_result_init(&r);
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    int events = 0;
    while (p < end && events < 256) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        one_line(s, &v, p, len, &r);
        view_check(&v, s);
        events++;
        p += len + 1;
    }
    if (config_store_foreach_entry(s, entry_cb, NULL) != 0)
        abort();
    config_result_free(&r);
    for (int i = 0; i < v.n; i++) {
        free(v.name[i]);
        free(v.dump[i]);
    }
    config_store_free(s);
    return 0;
}
