/* ctl_load.c -- read the config for clusterfctl through cfgsource/ (the daemon's own reader),
 * collecting each key's errors and warnings. An invalid etcd key is shown with the value a
 * running clusterf-ipvs would keep for it (stale): its last valid version in etcd's history.
 * Plus the small output helpers of ctl_int.h. */
#include "ctl/ctl_int.h"

#include "cfgsource/cfgsource.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ctl_report_free(ctl_report *r)
{
    if (!r)
        return;
    config_strs_clear(&r->errors);
    config_strs_clear(&r->warnings);
}

/* An invalid etcd key, kept to look for its last valid value in etcd's history. */
struct invalid_key {
    char *key;
    char *value;
    size_t value_len;
    int64_t revision;
};

struct load_ctx {
    ctl_report *rep;
    struct invalid_key *inv;
    size_t n_inv, cap_inv;
};

/* Remember an invalid etcd key (copies). */
static void remember_invalid(struct load_ctx *l, const config_event *ev)
{
    if (l->n_inv == l->cap_inv) {
        size_t cap = l->cap_inv ? 2 * l->cap_inv : 8;
        struct invalid_key *v = realloc(l->inv, cap * sizeof *v);
        if (!v)
            return;
        l->inv = v;
        l->cap_inv = cap;
    }
    struct invalid_key *k = &l->inv[l->n_inv];
    k->key = strndup(ev->key, ev->key_len);
    k->value = malloc(ev->value_len + 1);
    if (!k->key || !k->value) {
        free(k->key);
        free(k->value);
        return;
    }
    memcpy(k->value, ev->value, ev->value_len);
    k->value_len = ev->value_len;
    k->revision = ev->revision;
    l->n_inv++;
}

/* cfgsource callback: keep the key's warnings and error (with where it came from). */
static void on_key(const config_event *ev, const config_result *res, void *ctx)
{
    struct load_ctx *l = ctx;
    ctl_report *rep = l->rep;
    if (!ev)
        return;
    const char *src = config_source_name(ev->source);
    if (ev->source == CONFIG_SOURCE_ETCD)
        rep->etcd_keys++;
    else
        rep->local_keys++;
    for (size_t i = 0; i < res->warnings.n; i++)
        config_strs_pushf(&rep->warnings, "%s (%s)", res->warnings.v[i], src);
    if (!res->invalid)
        return;
    if (ev->revision > 0)
        config_strs_pushf(&rep->errors, "%s (%s, revision %lld)", res->error, src,
                          (long long)ev->revision);
    else
        config_strs_pushf(&rep->errors, "%s (%s)", res->error, src);
    if (ev->source == CONFIG_SOURCE_ETCD)
        remember_invalid(l, ev);
}

/* True when value is a valid value of key. */
static bool value_valid(const config_options *opts, const char *key, const etcd_kv *kv)
{
    config_key k;
    config_value v;
    config_error e;
    return config_parse_key(key, strlen(key), &k, &e) == 0 &&
           config_parse_value(&k, (const char *)kv->value, kv->value_len, &opts->defaults, &v,
                              NULL, &e) == 0;
}

/* Walk back through the history of one invalid key (at most 16 versions, until compacted)
 * for the value clusterf-ipvs would still hold, and apply it before the current text again,
 * so the store reports the key as stale with that value. Best effort: errors end the walk. */
static void find_last_valid(etcd_client *c, const ctl_options *o, config_store *cfg,
                            const struct invalid_key *k)
{
    char full[800];
    snprintf(full, sizeof full, "%s/%s", o->prefix, k->key);
    int64_t rev = k->revision;
    for (int i = 0; i < 16 && rev > 1; i++) {
        etcd_kvs *kvs = NULL;
        etcd_error err = {0};
        if (etcd_range_prefix(c, full, strlen(full), rev - 1, &kvs, &err) < 0)
            return;
        const etcd_kv *kv = NULL;
        for (size_t j = 0; j < kvs->n && !kv; j++)
            if (kvs->kvs[j].key_len == strlen(full) && memcmp(kvs->kvs[j].key, full, strlen(full)) == 0)
                kv = &kvs->kvs[j];
        bool found = kv && value_valid(&o->config, k->key, kv);
        if (found) {
            config_result res;
            config_result_init(&res);
            config_event old = {CONFIG_SOURCE_ETCD, false, k->key, strlen(k->key),
                                (const char *)kv->value, kv->value_len, kv->mod_revision};
            config_event cur = {CONFIG_SOURCE_ETCD, false, k->key, strlen(k->key), k->value,
                                k->value_len, k->revision};
            if (config_store_apply(cfg, &old, &res) == 0)
                config_store_apply(cfg, &cur, &res);
            config_result_free(&res);
        }
        rev = kv ? kv->mod_revision : 0;
        etcd_kvs_free(kvs);
        if (found || !kv)
            return;
    }
}

/* Read the etcd prefix into cfg. 0 or -errno (printed). */
static int load_etcd(const ctl_options *o, config_store *cfg, struct load_ctx *l)
{
    etcd_client *c = NULL;
    etcd_error err = {0};
    int rc = etcd_client_new(&o->etcd, &c, &err);
    if (rc < 0) {
        fprintf(o->err, "clusterfctl: etcd settings: %s\n", err.msg);
        return rc;
    }
    rc = cfgsource_etcd_read(c, o->prefix, cfg, on_key, l, &l->rep->revision, NULL, &err);
    if (rc < 0)
        fprintf(o->err, "clusterfctl: etcd: cannot read %s/ from %s: %s: %s\n", o->prefix,
                err.endpoint[0] ? err.endpoint
                                : (o->etcd.endpoints ? o->etcd.endpoints : "http://127.0.0.1:2379"),
                etcd_code_name(err.code), err.msg[0] ? err.msg : strerror(-rc));
    for (size_t i = 0; rc == 0 && i < l->n_inv; i++)
        find_last_valid(c, o, cfg, &l->inv[i]);
    etcd_client_free(c);
    return rc;
}

static void load_ctx_free(struct load_ctx *l)
{
    for (size_t i = 0; i < l->n_inv; i++) {
        free(l->inv[i].key);
        free(l->inv[i].value);
    }
    free(l->inv);
    l->inv = NULL;
    l->n_inv = l->cap_inv = 0;
}

int ctl_load(const ctl_options *o, config_store **out, ctl_report *rep)
{
    struct load_ctx l = {.rep = rep};
    config_store *cfg = config_store_new(&o->config);
    int rc = cfg ? 0 : -ENOMEM;
    if (rc == 0 && !o->no_etcd)
        rc = load_etcd(o, cfg, &l);
    load_ctx_free(&l);
    if (rc == 0 && o->config_path) {
        rc = cfgsource_local_read(cfg, o->config_path, on_key, NULL, &l);
        if (rc == -ENOTDIR)
            fprintf(o->err, "clusterfctl: --config-path: %s is not a directory\n",
                    o->config_path);
        else if (rc < 0 && rc != -ENOMEM)
            rc = 0; /* a part of the tree could not be read: in rep->errors (on_key) */
    }
    if (rc == -ENOMEM)
        fprintf(o->err, "clusterfctl: out of memory\n");
    if (rc < 0) {
        config_store_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* ---- output helpers ---- */

int ctl_table_row(ctl_table *t, const char *const *cells)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (config_strs_push(&t->cells, cells[i] ? cells[i] : "-") < 0)
            return -ENOMEM;
    return 0;
}

void ctl_table_print(const ctl_table *t, FILE *out)
{
    size_t w[16] = {0};
    size_t nc = t->ncols < 16 ? t->ncols : 16;
    for (size_t i = 0; i < t->cells.n; i++) {
        size_t len = strlen(t->cells.v[i]);
        if (len > w[i % t->ncols % 16])
            w[i % t->ncols % 16] = len;
    }
    for (size_t i = 0; i < t->cells.n; i++) {
        size_t col = i % t->ncols;
        bool last = col + 1 == t->ncols;
        if (last || col >= nc)
            fprintf(out, "%s%s", t->cells.v[i], last ? "\n" : "  ");
        else
            fprintf(out, "%-*s  ", (int)w[col], t->cells.v[i]);
    }
}

void ctl_table_free(ctl_table *t)
{
    if (t)
        config_strs_clear(&t->cells);
}

void ctl_json_print(struct json_object *j, FILE *out)
{
    fprintf(out, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
                                                          JSON_C_TO_STRING_SPACED |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(j);
}

struct json_object *ctl_json_strs(const config_strs *l)
{
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < l->n; i++)
        json_object_array_add(a, json_object_new_string(l->v[i]));
    return a;
}

const char *ctl_kind_name(enum config_kind k)
{
    switch (k) {
    case CONFIG_FRONTEND: return "frontend";
    case CONFIG_BACKEND: return "backend";
    case CONFIG_ROUTE: return "route";
    }
    return "?";
}
