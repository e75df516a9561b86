/* ctl_load.c -- read the config for clusterfctl through cfgsource/ (the daemon's own reader),
 * collecting each key's errors and warnings. An invalid etcd key is shown with the value a
 * running clusterf-ipvs would keep for it (stale): its last valid version in etcd's history;
 * when that history is gone (compacted) the key is reported as unknown, never guessed.
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
    config_strs_clear(&r->unknown);
}

/* The index of key's entry in rep->unknown, or rep->unknown.n. */
static size_t unknown_index(const ctl_report *rep, const char *key)
{
    size_t len = strlen(key), i = 0;
    while (i < rep->unknown.n && (strncmp(rep->unknown.v[i], key, len) != 0 ||
                                  strncmp(rep->unknown.v[i] + len, ": ", 2) != 0))
        i++;
    return i;
}

const char *ctl_report_unknown(const ctl_report *rep, const char *key)
{
    size_t i = unknown_index(rep, key);
    return i < rep->unknown.n ? rep->unknown.v[i] + strlen(key) + 2 : NULL;
}

void ctl_print_unknown(const ctl_report *rep, FILE *out)
{
    for (size_t i = 0; i < rep->unknown.n; i++)
        fprintf(out, "unknown: %s; clusterf-ipvs keeps what it had for this key (its last valid "
                "value, or nothing if it started since), which clusterfctl cannot know\n",
                rep->unknown.v[i]);
}

/* config_store_foreach_entry callback: a key the local tree gives a value is not unknown (the
 * local value wins over etcd's in clusterf-ipvs too): drop it from ctx's unknown list. */
static int drop_shadowed_unknown(const config_entry *e, void *ctx)
{
    ctl_report *rep = ctx;
    size_t i = e->source == CONFIG_SOURCE_LOCAL && e->value ? unknown_index(rep, e->key)
                                                           : rep->unknown.n;
    if (i < rep->unknown.n) {
        free(rep->unknown.v[i]);
        memmove(&rep->unknown.v[i], &rep->unknown.v[i + 1],
                (rep->unknown.n - i - 1) * sizeof rep->unknown.v[0]);
        rep->unknown.n--;
    }
    return 0;
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

/* How far back the history of one invalid key is walked for its last valid value. */
#define HISTORY_MAX_VERSIONS 64

/* What the history of an invalid key says clusterf-ipvs holds for it. */
enum last_valid {
    LAST_VALID_FOUND,   /* a valid version: kept as the key's stale value */
    LAST_VALID_NONE,    /* no valid version since the key was created: skipped, for certain */
    LAST_VALID_UNKNOWN, /* the history ends first (compacted, too long, etcd error) */
};

/* The version of the etcd key full at revision rev (0: the latest): 1 with *kv pointing into
 * *kvs (free it) when the key existed then, 0 when it did not, or -errno with err filled
 * (-ERANGE: that revision is compacted). */
static int key_at(etcd_client *c, const char *full, int64_t rev, etcd_kvs **kvs,
                  const etcd_kv **kv, etcd_error *err)
{
    size_t len = strlen(full);
    *kv = NULL;
    int rc = etcd_range_prefix(c, full, len, rev, kvs, err);
    if (rc < 0)
        return rc;
    for (size_t j = 0; j < (*kvs)->n && !*kv; j++)
        if ((*kvs)->kvs[j].key_len == len && memcmp((*kvs)->kvs[j].key, full, len) == 0)
            *kv = &(*kvs)->kvs[j];
    return *kv ? 1 : 0;
}

/* The revision that created the life of key full which holds the version of revision rev
 * (the key's versions before it belong to an earlier life, deleted since); 1 when unknown. */
static int64_t created_at(etcd_client *c, const char *full, int64_t rev)
{
    etcd_kvs *kvs = NULL;
    const etcd_kv *kv = NULL;
    etcd_error err = {0};
    int64_t created = 1;
    if (key_at(c, full, 0, &kvs, &kv, &err) > 0 && kv->create_revision <= rev)
        created = kv->create_revision;
    etcd_kvs_free(kvs);
    return created;
}

/* Apply kv (a valid old version of k) and then k's current text again, so that the store
 * holds k as stale with kv's value, as a running clusterf-ipvs does. */
static void apply_stale(config_store *cfg, const struct invalid_key *k, const etcd_kv *kv)
{
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

/* Walk back through the history of one invalid key (at most HISTORY_MAX_VERSIONS versions)
 * for the value a running clusterf-ipvs still holds for it, and make it the key's stale value
 * in cfg. LAST_VALID_UNKNOWN when the history ends before an answer, with why it ended in why. */
static enum last_valid find_last_valid(etcd_client *c, const ctl_options *o, config_store *cfg,
                                       const struct invalid_key *k, char *why, size_t size)
{
    char full[800];
    snprintf(full, sizeof full, "%s/%s", o->prefix, k->key);
    int64_t rev = k->revision;
    config_key ck;
    config_error e;
    if (config_parse_key(k->key, strlen(k->key), &ck, &e) < 0)
        return LAST_VALID_NONE; /* not a config key: no version of it was ever valid */
    int64_t created = created_at(c, full, rev);
    for (int i = 0; i < HISTORY_MAX_VERSIONS; i++) {
        etcd_kvs *kvs = NULL;
        const etcd_kv *kv = NULL;
        etcd_error err = {0};
        int rc = rev > created ? key_at(c, full, rev - 1, &kvs, &kv, &err) : 0;
        if (rc == -ERANGE)
            snprintf(why, size, "invalid since revision %lld at least, and etcd's history "
                     "before it is compacted", (long long)rev);
        else if (rc < 0)
            snprintf(why, size, "invalid since revision %lld at least; reading the version "
                     "before it failed: %s: %s", (long long)rev, etcd_code_name(err.code),
                     err.msg[0] ? err.msg : strerror(-rc));
        bool found = rc > 0 && value_valid(&o->config, k->key, kv);
        if (found)
            apply_stale(cfg, k, kv);
        rev = kv ? kv->mod_revision : 0;
        etcd_kvs_free(kvs);
        if (rc <= 0 || found)
            return rc < 0 ? LAST_VALID_UNKNOWN : found ? LAST_VALID_FOUND : LAST_VALID_NONE;
    }
    snprintf(why, size, "no valid value in its last %d versions (invalid since revision %lld "
             "at least)", HISTORY_MAX_VERSIONS, (long long)rev);
    return LAST_VALID_UNKNOWN;
}

/* Find the last valid value of every invalid etcd key; the keys without an answer go to
 * rep's unknown lists. */
static void find_invalid_history(etcd_client *c, const ctl_options *o, config_store *cfg,
                                 struct load_ctx *l)
{
    for (size_t i = 0; i < l->n_inv; i++) {
        char why[700];
        if (find_last_valid(c, o, cfg, &l->inv[i], why, sizeof why) == LAST_VALID_UNKNOWN)
            config_strs_pushf(&l->rep->unknown, "%s: %s", l->inv[i].key, why);
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
    if (rc == 0)
        find_invalid_history(c, o, cfg, l);
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
        if (rc == 0 && rep->unknown.n)
            rc = config_store_foreach_entry(cfg, drop_shadowed_unknown, rep);
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
