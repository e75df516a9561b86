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

/* The checker's own code is not what is fuzzed: no coverage feedback (nor its per-compare
 * hooks) from it, which keeps the fuzzer's time on config_store and lb. */
#define CHECKER __attribute__((no_sanitize("coverage")))

/* The incremental table: for each service touched so far (at most MAX_SVCS), its name and its
 * lb_compute_service output as of the last event that named it. */
typedef struct view {
    char *name[MAX_SVCS];
    lb_table table[MAX_SVCS];
    int n;
} view;

CHECKER static int view_find(const view *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->name[i], name) == 0)
            return i;
    return -1;
}

/* Recompute one touched service (a new one is added while there is room). */
CHECKER static void view_update(view *v, config_store *s, const char *name)
{
    int i = view_find(v, name);
    if (i < 0) {
        if (v->n == MAX_SVCS)
            return;
        i = v->n++;
        if (!(v->name[i] = strdup(name)))
            abort();
        lb_table_init(&v->table[i]);
    }
    if (lb_compute_service(s, name, &v->table[i]) != 0)
        abort();
}

/* Apply what the store says was touched. */
CHECKER static void view_apply(view *v, config_store *s, const config_result *r)
{
    for (size_t i = 0; i < r->services.n; i++)
        view_update(v, s, r->services.v[i]);
}

CHECKER static void view_free(view *v)
{
    for (int i = 0; i < v->n; i++) {
        free(v->name[i]);
        lb_table_free(&v->table[i]);
    }
}

/* Same IPVS service with the same attributes, owner and destinations. */
CHECKER static bool service_equal(const lb_service *a, const lb_service *b)
{
    if (lb_service_cmp(a, b) != 0 || !lb_service_attrs_equal(a, b) || strcmp(a->owner, b->owner) != 0 ||
        a->n_dests != b->n_dests)
        return false;
    for (size_t j = 0; j < a->n_dests; j++)
        if (lb_dest_cmp(&a->dests[j], &b->dests[j]) != 0 || a->dests[j].fwd != b->dests[j].fwd ||
            a->dests[j].weight != b->dests[j].weight)
            return false;
    return true;
}

/* Report service i of the view against the full table and stop. */
CHECKER static void view_mismatch(const view *v, int i, const lb_table *all)
{
    char *inc = lb_dump(&v->table[i], NULL), *full = lb_dump(all, v->name[i]);
    fprintf(stderr, "service %s: incremental\n%s--- full\n%s", v->name[i], inc, full);
    abort();
}

/* Every service's incremental table must equal its part of the full table: one pass over the
 * full table (sorted by service key, so each owner's part is in the order of its own table),
 * a cursor per view service. */
CHECKER static void view_check(const view *v, config_store *s)
{
    lb_table all;
    size_t next[MAX_SVCS] = {0};
    int last = -1;
    lb_table_init(&all);
    if (lb_compute_all(s, &all) != 0)
        abort();
    for (size_t k = 0; k < all.n_services; k++) {
        const lb_service *ls = &all.services[k];
        int i = last >= 0 && strcmp(v->name[last], ls->owner) == 0 ? last : view_find(v, ls->owner);
        if (i < 0) {
            if (v->n < MAX_SVCS) {
                fprintf(stderr, "service %s in the full table was never touched\n", ls->owner);
                abort();
            }
            continue;
        }
        last = i;
        if (next[i] == v->table[i].n_services || !service_equal(&v->table[i].services[next[i]], ls))
            view_mismatch(v, i, &all);
        next[i]++;
    }
    for (int i = 0; i < v->n; i++)
        if (next[i] != v->table[i].n_services)
            view_mismatch(v, i, &all);
    lb_table_free(&all);
}

/* Run one line against the store and the view; false when it is not an event (the store and
 * the view are then unchanged, so there is nothing new to check). */
static bool one_line(config_store *s, view *v, const char *line, size_t len, config_result *r)
{
    if (len < 2 || line[1] < '0' || line[1] > '2')
        return false;
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
        return false;
    if (rc != 0 && rc != -22)
        abort();
    if (line[0] != 'b')
        view_apply(v, s, r);
    return true;
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
        if (one_line(s, &v, p, len, &r))
            view_check(&v, s);
        events++;
        p += len + 1;
    }
    if (config_store_foreach_entry(s, entry_cb, NULL) != 0)
        abort();
    config_result_free(&r);
    view_free(&v);
    config_store_free(s);
    return 0;
}
