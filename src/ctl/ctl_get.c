/* ctl_get.c -- `clusterfctl get` (every key of the merged config, as a table or JSON) and
 * `clusterfctl validate` (errors with their key, warnings, lb conflicts; exit 0/1/2). */
#include "ctl/ctl_int.h"

#include "lb/lb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* "in-force", "shadowed", "in-force/stale", "shadowed/stale", "invalid" or "unknown" (invalid,
 * and its last valid value is gone from etcd's history: see ctl_report's unknown). */
static const char *entry_state(const config_entry *e, const char *unknown)
{
    if (unknown)
        return "unknown";
    if (!e->value)
        return "invalid";
    if (e->stale)
        return e->in_force ? "in-force/stale" : "shadowed/stale";
    return e->in_force ? "in-force" : "shadowed";
}

/* The canonical JSON of v, without json-c's "\\/" escapes. malloc'd, NULL on failure. */
static char *value_json(const config_value *v)
{
    char *canon = config_value_to_json(v);
    struct json_object *j = canon ? json_tokener_parse(canon) : NULL;
    char *s = j ? strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE))
                : NULL;
    json_object_put(j);
    free(canon);
    return s;
}

struct get_ctx {
    const ctl_report *rep;
    ctl_table table;
    config_strs errors;      /* table mode: "<error> (source)" printed under the table */
    struct json_object *keys;
};

/* Why e is unknown (ctl_report's unknown), or NULL. */
static const char *entry_unknown(const struct get_ctx *g, const config_entry *e)
{
    return e->source == CONFIG_SOURCE_ETCD ? ctl_report_unknown(g->rep, e->key) : NULL;
}

static int get_row(const config_entry *e, void *ctx)
{
    struct get_ctx *g = ctx;
    char rev[32] = "-";
    if (e->revision > 0)
        snprintf(rev, sizeof rev, "%lld", (long long)e->revision);
    char *json = e->value ? value_json(e->value) : NULL;
    if (e->value && !json)
        return -ENOMEM;
    const char *cells[] = {e->key, config_source_name(e->source), ctl_kind_name(e->kind),
                           entry_state(e, entry_unknown(g, e)), rev, json};
    int rc = ctl_table_row(&g->table, cells);
    if (rc == 0 && e->error)
        rc = config_strs_pushf(&g->errors, "%s (%s)", e->error, config_source_name(e->source));
    free(json);
    return rc;
}

static int get_json(const config_entry *e, void *ctx)
{
    struct get_ctx *g = ctx;
    struct json_object *o = json_object_new_object();
    char *json = e->value ? config_value_to_json(e->value) : NULL;
    if (!o || (e->value && !json)) {
        json_object_put(o);
        free(json);
        return -ENOMEM;
    }
    json_object_object_add(o, "key", json_object_new_string(e->key));
    json_object_object_add(o, "source", json_object_new_string(config_source_name(e->source)));
    json_object_object_add(o, "kind", json_object_new_string(ctl_kind_name(e->kind)));
    const char *unknown = entry_unknown(g, e);
    json_object_object_add(o, "state", json_object_new_string(entry_state(e, unknown)));
    json_object_object_add(o, "in_force", json_object_new_boolean(e->in_force));
    json_object_object_add(o, "valid", json_object_new_boolean(e->error == NULL));
    json_object_object_add(o, "stale", json_object_new_boolean(e->stale));
    json_object_object_add(o, "revision", json_object_new_int64(e->revision));
    json_object_object_add(o, "value", json ? json_tokener_parse(json) : NULL);
    json_object_object_add(o, "error", e->error ? json_object_new_string(e->error) : NULL);
    json_object_object_add(o, "unknown", unknown ? json_object_new_string(unknown) : NULL);
    json_object_array_add(g->keys, o);
    free(json);
    return 0;
}

/* Print the store as JSON. 0 or -ENOMEM. */
static int print_json(const ctl_options *o, config_store *cfg, const ctl_report *rep)
{
    struct get_ctx g = {.rep = rep, .keys = json_object_new_array()};
    struct json_object *root = json_object_new_object();
    int rc = g.keys && root ? config_store_foreach_entry(cfg, get_json, &g) : -ENOMEM;
    if (rc < 0) {
        json_object_put(g.keys);
        json_object_put(root);
        return rc;
    }
    json_object_object_add(root, "prefix", json_object_new_string(o->prefix));
    json_object_object_add(root, "revision", json_object_new_int64(rep->revision));
    json_object_object_add(root, "config_path",
                           o->config_path ? json_object_new_string(o->config_path) : NULL);
    json_object_object_add(root, "keys", g.keys);
    json_object_object_add(root, "errors", ctl_json_strs(&rep->errors));
    json_object_object_add(root, "warnings", ctl_json_strs(&rep->warnings));
    json_object_object_add(root, "unknown", ctl_json_strs(&rep->unknown));
    ctl_json_print(root, o->out);
    return 0;
}

/* Print the store as an aligned table, each invalid key's error below it. 0 or -ENOMEM. */
static int print_table(const ctl_options *o, config_store *cfg, const ctl_report *rep)
{
    struct get_ctx g = {.rep = rep, .table = {.ncols = 6}};
    static const char *const head[] = {"KEY", "SOURCE", "KIND", "STATE", "REVISION", "VALUE"};
    int rc = ctl_table_row(&g.table, head);
    if (rc == 0)
        rc = config_store_foreach_entry(cfg, get_row, &g);
    if (rc == 0) {
        ctl_table_print(&g.table, o->out);
        for (size_t i = 0; i < g.errors.n; i++)
            fprintf(o->out, "error: %s\n", g.errors.v[i]);
        ctl_print_unknown(rep, o->out);
        for (size_t i = 0; i < rep->warnings.n; i++)
            fprintf(o->err, "warning: %s\n", rep->warnings.v[i]);
    }
    ctl_table_free(&g.table);
    config_strs_clear(&g.errors);
    return rc;
}

int ctl_get(const ctl_options *o)
{
    config_store *cfg = NULL;
    ctl_report rep = {0};
    int status = CTL_EXIT_USAGE;
    if (ctl_load(o, &cfg, &rep) < 0)
        goto out;
    int rc = o->json ? print_json(o, cfg, &rep) : print_table(o, cfg, &rep);
    if (rc < 0)
        fprintf(o->err, "clusterfctl: get: %s\n", strerror(-rc));
    else
        status = CTL_EXIT_OK;
out:
    config_store_free(cfg);
    ctl_report_free(&rep);
    return status;
}

/* Print validate's findings as JSON. */
static void validate_json(const ctl_options *o, const ctl_report *rep, const lb_table *t)
{
    struct json_object *root = json_object_new_object();
    json_object_object_add(root, "valid", json_object_new_boolean(rep->errors.n == 0));
    json_object_object_add(root, "revision", json_object_new_int64(rep->revision));
    json_object_object_add(root, "errors", ctl_json_strs(&rep->errors));
    json_object_object_add(root, "warnings", ctl_json_strs(&rep->warnings));
    json_object_object_add(root, "lb_warnings", ctl_json_strs(&t->warnings));
    json_object_object_add(root, "conflicts", ctl_json_strs(&t->conflicts));
    json_object_object_add(root, "unknown", ctl_json_strs(&rep->unknown));
    ctl_json_print(root, o->out);
}

/* Print validate's findings as text: errors, warnings (lb's include the conflicts), then one
 * summary line. */
static void validate_text(const ctl_options *o, const ctl_report *rep, const lb_table *t)
{
    for (size_t i = 0; i < rep->errors.n; i++)
        fprintf(o->out, "error: %s\n", rep->errors.v[i]);
    ctl_print_unknown(rep, o->out);
    for (size_t i = 0; i < rep->warnings.n; i++)
        fprintf(o->out, "warning: %s\n", rep->warnings.v[i]);
    for (size_t i = 0; i < t->warnings.n; i++)
        fprintf(o->out, "warning: %s\n", t->warnings.v[i]);
    fprintf(o->out, "%s: %zu keys (%zu etcd, %zu local), %zu invalid, %zu warnings, "
            "%zu IPVS services\n", rep->errors.n ? "INVALID" : "valid",
            rep->etcd_keys + rep->local_keys, rep->etcd_keys, rep->local_keys, rep->errors.n,
            rep->warnings.n + t->warnings.n, t->n_services);
}

int ctl_validate(const ctl_options *o)
{
    config_store *cfg = NULL;
    ctl_report rep = {0};
    lb_table t;
    lb_table_init(&t);
    int status = CTL_EXIT_USAGE;
    if (ctl_load(o, &cfg, &rep) < 0)
        goto out;
    if (lb_compute_all(cfg, &t) < 0) {
        fprintf(o->err, "clusterfctl: validate: out of memory\n");
        goto out;
    }
    if (o->json)
        validate_json(o, &rep, &t);
    else
        validate_text(o, &rep, &t);
    status = rep.errors.n ? CTL_EXIT_PROBLEM : CTL_EXIT_OK;
out:
    lb_table_free(&t);
    config_store_free(cfg);
    ctl_report_free(&rep);
    return status;
}
