/* config_store.c -- every key per source with its last valid value, the merged view (local
 * beats advertised beats etcd; -filter-etcd-routes), and what each event touched. Indexes:
 * key -> node, service -> its nodes, IPVS service key -> the services producing it, address
 * block -> the backends in force there (so a route change touches only the services with a
 * backend under its prefix), so one event costs O(the services it touches). No I/O. */
#include "common/vec.h"
#include "config/config_int.h"

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One source's view of one key; allocated while the source holds the key (most keys come
 * from one source only, so a node carries pointers, not three slots), and only as large as
 * its kind's value (slot_size): a backend's slot does not carry a frontend's bytes. */
typedef struct cfg_slot {
    bool has_value; /* value is valid: the current one, or the last one when stale */
    bool seen;      /* sync_begin/sync_end mark */
    int64_t revision;
    char *error;    /* why the current text is invalid; NULL when it is valid */
    config_value value; /* only value.kind and the member of the node's kind exist */
} cfg_slot;

typedef struct cfg_svc cfg_svc;

/* One key: one allocation, the key's text at its end (a valid key is at most ~530 bytes:
 * its length and its name's offset fit 16 bits). */
typedef struct cfg_node {
    cfg_svc *svc;     /* frontends and backends */
    cfg_slot *slot[CONFIG_SOURCE_COUNT]; /* NULL: the source does not hold the key */
    uint32_t idx;     /* position in svc->backends or store->routes */
    uint16_t key_len;
    uint16_t name_off; /* the backend or route name: key + name_off */
    uint8_t kind;     /* enum config_kind */
    char key[];       /* canonical relative key, NUL-terminated */
} cfg_node;

/* The backend or route name of n ("" for a frontend). */
static const char *node_name(const cfg_node *n)
{
    return n->key + n->name_off;
}

struct cfg_svc {
    char *name;
    cfg_node *frontend;
    cfg_node **backends;
    size_t n_backends, cap;
    bool sorted;
    config_svckey keys[CONFIG_SVCKEYS_MAX]; /* registered in store->owners */
    int n_keys;
};

/* The services whose frontend in force produces one IPVS service key. */
typedef struct svckey_owners {
    config_svckey key;
    cfg_svc **v;
    size_t n, cap;
} svckey_owners;

/* Backends in force whose address lies in one block (an IPv4 /24 or an IPv6 /64). */
#define BLOCK_PLEN4 24
#define BLOCK_PLEN6 64
typedef struct addr_block {
    uint8_t key[9]; /* family, then the block's leading address bytes (zero-padded) */
    cfg_node **v;
    size_t n, cap;
} addr_block;

struct config_store {
    config_options opt;
    bytemap blocks; /* addr_block.key -> addr_block */
    bytemap nodes;  /* key -> cfg_node */
    bytemap svcs;   /* name -> cfg_svc */
    bytemap owners; /* config_svckey -> svckey_owners */
    cfg_node **routes;
    size_t n_routes, cap_routes;
    config_route_ref *eff; /* routes in force, sorted; rebuilt when dirty */
    size_t n_eff;
    bool routes_dirty;
    size_t n_invalid;
    size_t n_invalid_src[CONFIG_SOURCE_COUNT]; /* the same by source */
};

/* ---- small helpers ---- */


/* The source whose value is in force for node, or -1. */
static int in_force(const config_store *s, const cfg_node *n)
{
    for (int src = 0; src < CONFIG_SOURCE_COUNT; src++) {
        if (!n->slot[src] || !n->slot[src]->has_value)
            continue;
        if (n->kind == CONFIG_ROUTE && src == CONFIG_SOURCE_ETCD && s->opt.filter_etcd_routes)
            continue;
        return src;
    }
    return -1;
}

/* Bytes of a value of kind: its kind and the union member it uses. */
static size_t value_size(enum config_kind kind)
{
    size_t u = offsetof(config_value, u);
    if (kind == CONFIG_FRONTEND)
        return u + sizeof(config_frontend);
    return u + (kind == CONFIG_BACKEND ? sizeof(config_backend) : sizeof(config_route));
}

static const config_value *value_in_force(const config_store *s, const cfg_node *n)
{
    int src = n ? in_force(s, n) : -1;
    return src < 0 ? NULL : &n->slot[src]->value;
}

void config_result_init(config_result *r)
{
    memset(r, 0, sizeof *r);
}

void config_result_free(config_result *r)
{
    if (!r)
        return;
    config_strs_clear(&r->services);
    config_strs_clear(&r->warnings);
    config_result_init(r);
}

/* ---- store lifetime ---- */

config_store *config_store_new(const config_options *opts)
{
    config_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (opts) {
        s->opt = *opts;
    } else {
        config_defaults_init(&s->opt.defaults);
    }
    return s;
}

static void node_free(cfg_node *n)
{
    for (int i = 0; i < CONFIG_SOURCE_COUNT; i++) {
        if (n->slot[i])
            free(n->slot[i]->error);
        free(n->slot[i]);
    }
    free(n);
}

void config_store_free(config_store *s)
{
    if (!s)
        return;
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&s->nodes, &pos, &e))
        node_free(e->val);
    pos = 0, e = NULL;
    while (bytemap_next(&s->svcs, &pos, &e)) {
        cfg_svc *svc = e->val;
        free(svc->backends);
        free(svc->name);
        free(svc);
    }
    pos = 0, e = NULL;
    while (bytemap_next(&s->owners, &pos, &e)) {
        svckey_owners *o = e->val;
        free(o->v);
        free(o);
    }
    pos = 0, e = NULL;
    while (bytemap_next(&s->blocks, &pos, &e)) {
        addr_block *b = e->val;
        free(b->v);
        free(b);
    }
    bytemap_clear(&s->nodes);
    bytemap_clear(&s->svcs);
    bytemap_clear(&s->owners);
    bytemap_clear(&s->blocks);
    free(s->routes);
    free(s->eff);
    free(s);
}

const config_options *config_store_options(const config_store *s)
{
    return &s->opt;
}

size_t config_store_invalid_count(const config_store *s)
{
    return s->n_invalid;
}

size_t config_store_invalid_count_source(const config_store *s, enum config_source src)
{
    return (unsigned)src < CONFIG_SOURCE_COUNT ? s->n_invalid_src[src] : 0;
}

size_t config_store_service_count(const config_store *s)
{
    return s->svcs.n;
}

/* ---- nodes and services ---- */

static cfg_svc *svc_get(config_store *s, const char *name)
{
    cfg_svc *svc = bytemap_get(&s->svcs, name, strlen(name));
    if (svc)
        return svc;
    svc = calloc(1, sizeof *svc);
    if (!svc || !(svc->name = strdup(name)) ||
        bytemap_put(&s->svcs, svc->name, strlen(svc->name), svc) < 0) {
        if (svc)
            free(svc->name);
        free(svc);
        return NULL;
    }
    return svc;
}

static void svc_gc(config_store *s, cfg_svc *svc)
{
    if (svc->frontend || svc->n_backends)
        return;
    bytemap_del(&s->svcs, svc->name, strlen(svc->name));
    free(svc->backends);
    free(svc->name);
    free(svc);
}

/* Attach a new node to its service or to the route list. */
static int node_attach(config_store *s, cfg_node *n, const config_key *k)
{
    if (n->kind == CONFIG_ROUTE) {
        if (vec_grow((void **)&s->routes, &s->cap_routes, s->n_routes + 1, sizeof *s->routes) < 0)
            return -ENOMEM;
        n->idx = (uint32_t)s->n_routes;
        s->routes[s->n_routes++] = n;
        return 0;
    }
    cfg_svc *svc = svc_get(s, k->service);
    if (!svc)
        return -ENOMEM;
    n->svc = svc;
    if (n->kind == CONFIG_FRONTEND) {
        svc->frontend = n;
        return 0;
    }
    if (vec_grow((void **)&svc->backends, &svc->cap, svc->n_backends + 1, sizeof *svc->backends) < 0) {
        svc_gc(s, svc);
        return -ENOMEM;
    }
    n->idx = (uint32_t)svc->n_backends;
    svc->backends[svc->n_backends++] = n;
    svc->sorted = false;
    return 0;
}

static cfg_node *node_new(config_store *s, const config_key *k, const char *key, size_t len)
{
    if (len > UINT16_MAX)
        return NULL;
    cfg_node *n = calloc(1, offsetof(cfg_node, key) + len + 1);
    if (!n)
        return NULL;
    memcpy(n->key, key, len);
    n->key[len] = '\0';
    n->key_len = (uint16_t)len;
    n->kind = (uint8_t)k->kind;
    n->name_off = (uint16_t)(len - strlen(k->name));
    if (node_attach(s, n, k) < 0)
        goto fail;
    if (bytemap_put(&s->nodes, n->key, len, n) == 0)
        return n;
    /* Detach again: the node is the last one appended. */
    if (n->kind == CONFIG_ROUTE)
        s->n_routes--;
    else if (n->kind == CONFIG_FRONTEND)
        n->svc->frontend = NULL;
    else
        n->svc->n_backends--;
    if (n->svc)
        svc_gc(s, n->svc);
fail:
    free(n);
    return NULL;
}

/* Free the node once no source holds it any more. */
static void node_gc(config_store *s, cfg_node *n)
{
    for (int i = 0; i < CONFIG_SOURCE_COUNT; i++)
        if (n->slot[i])
            return;
    bytemap_del(&s->nodes, n->key, n->key_len);
    if (n->kind == CONFIG_ROUTE) {
        s->routes[n->idx] = s->routes[--s->n_routes];
        s->routes[n->idx]->idx = n->idx;
    } else if (n->kind == CONFIG_FRONTEND) {
        n->svc->frontend = NULL;
    } else {
        cfg_svc *svc = n->svc;
        svc->backends[n->idx] = svc->backends[--svc->n_backends];
        svc->backends[n->idx]->idx = n->idx;
        svc->sorted = false;
    }
    if (n->svc)
        svc_gc(s, n->svc);
    node_free(n);
}

/* ---- the svckey index ---- */

static int owners_touch(config_store *s, const cfg_svc *svc, config_result *out)
{
    for (int i = 0; i < svc->n_keys; i++) {
        svckey_owners *o = bytemap_get(&s->owners, &svc->keys[i], sizeof svc->keys[i]);
        for (size_t j = 0; o && j < o->n; j++)
            if (config_strs_push(&out->services, o->v[j]->name) < 0)
                return -ENOMEM;
    }
    return 0;
}

static void owners_remove(config_store *s, cfg_svc *svc)
{
    for (int i = 0; i < svc->n_keys; i++) {
        svckey_owners *o = bytemap_get(&s->owners, &svc->keys[i], sizeof svc->keys[i]);
        for (size_t j = 0; o && j < o->n; j++) {
            if (o->v[j] == svc) {
                o->v[j] = o->v[--o->n];
                break;
            }
        }
        if (o && o->n == 0) {
            bytemap_del(&s->owners, &o->key, sizeof o->key);
            free(o->v);
            free(o);
        }
    }
    svc->n_keys = 0;
}

static int owners_add_one(config_store *s, cfg_svc *svc, const config_svckey *k)
{
    svckey_owners *o = bytemap_get(&s->owners, k, sizeof *k);
    if (!o) {
        if (!(o = calloc(1, sizeof *o)))
            return -ENOMEM;
        o->key = *k;
        if (bytemap_put(&s->owners, &o->key, sizeof o->key, o) < 0) {
            free(o);
            return -ENOMEM;
        }
    }
    if (vec_grow((void **)&o->v, &o->cap, o->n + 1, sizeof *o->v) < 0)
        return -ENOMEM;
    o->v[o->n++] = svc;
    return 0;
}

/* Re-register svc's keys from its frontend in force (a frontend produces distinct keys). */
static int owners_add(config_store *s, cfg_svc *svc)
{
    const config_value *v = value_in_force(s, svc->frontend);
    config_svckey keys[CONFIG_SVCKEYS_MAX];
    int n = v ? config_frontend_svckeys(&v->u.frontend, keys) : 0;
    for (int i = 0; i < n; i++) {
        if (owners_add_one(s, svc, &keys[i]) < 0)
            return -ENOMEM;
        svc->keys[svc->n_keys++] = keys[i];
    }
    return 0;
}

/* ---- the address index: backends by address block ---- */

/* The block key of an address of family af (AF_INET: 4 bytes, else 16). */
static void block_key(int af, const uint8_t *addr, uint8_t key[9])
{
    memset(key, 0, 9);
    key[0] = (uint8_t)af;
    memcpy(key + 1, addr, af == AF_INET ? BLOCK_PLEN4 / 8 : BLOCK_PLEN6 / 8);
}

/* Add (add=true) or remove backend node n under the address of family af. 0 or -ENOMEM. */
static int block_update(config_store *s, cfg_node *n, int af, const uint8_t *addr, bool add)
{
    uint8_t key[9];
    block_key(af, addr, key);
    addr_block *b = bytemap_get(&s->blocks, key, sizeof key);
    if (!add) {
        for (size_t i = 0; b && i < b->n; i++)
            if (b->v[i] == n) {
                b->v[i] = b->v[--b->n];
                break;
            }
        if (b && !b->n) {
            bytemap_del(&s->blocks, b->key, sizeof b->key);
            free(b->v);
            free(b);
        }
        return 0;
    }
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return -ENOMEM;
        memcpy(b->key, key, sizeof key);
        if (bytemap_put(&s->blocks, b->key, sizeof b->key, b) < 0) {
            free(b);
            return -ENOMEM;
        }
    }
    if (vec_grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v) < 0)
        return -ENOMEM;
    b->v[b->n++] = n;
    return 0;
}

/* Index (add) or unindex the addresses of backend value v of node n. */
static int blocks_backend(config_store *s, cfg_node *n, const config_backend *v, bool add)
{
    int r = 0;
    if (v->has_ipv4)
        r = block_update(s, n, AF_INET, v->ipv4, add);
    if (r == 0 && v->has_ipv6)
        r = block_update(s, n, AF_INET6, v->ipv6, add);
    return r;
}

/* True when addr (af) lies in prefix/plen. */
static bool prefix_covers(int af, const uint8_t *prefix, int plen, const uint8_t *addr)
{
    int full = plen / 8, rest = plen % 8;
    (void)af;
    if (memcmp(prefix, addr, (size_t)full) != 0)
        return false;
    return rest == 0 || ((prefix[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* Name in out every service with a backend of block b whose address lies under route r. */
static int block_touch(const config_store *s, const addr_block *b, const config_route *r,
                       config_result *out)
{
    for (size_t i = 0; i < b->n; i++) {
        const cfg_node *n = b->v[i];
        const config_value *v = value_in_force(s, n);
        const config_backend *be = v ? &v->u.backend : NULL;
        bool hit = be && ((r->af == AF_INET && be->has_ipv4 &&
                           prefix_covers(AF_INET, r->prefix, r->plen, be->ipv4)) ||
                          (r->af == AF_INET6 && be->has_ipv6 &&
                           prefix_covers(AF_INET6, r->prefix, r->plen, be->ipv6)));
        if (hit && config_strs_push(&out->services, n->svc->name) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Name in out every service with a backend under route r: the blocks inside its prefix
 * when there are few of them, else a walk over every block. */
static int route_touch(config_store *s, const config_route *r, config_result *out)
{
    int block_plen = r->af == AF_INET ? BLOCK_PLEN4 : BLOCK_PLEN6;
    int spread = block_plen - (r->plen < block_plen ? r->plen : block_plen);
    if (spread < 20 && ((size_t)1 << spread) <= s->blocks.n) {
        uint8_t addr[16];
        memcpy(addr, r->prefix, sizeof addr);
        for (size_t i = 0; i < ((size_t)1 << spread); i++) {
            /* Block i under the prefix: its bits go just above the block's own length. */
            for (int bit = 0; bit < spread; bit++) {
                int pos = block_plen - 1 - bit;
                uint8_t mask = (uint8_t)(0x80 >> (pos % 8));
                addr[pos / 8] = (i >> bit) & 1 ? addr[pos / 8] | mask : addr[pos / 8] & ~mask;
            }
            uint8_t key[9];
            block_key(r->af, addr, key);
            const addr_block *b = bytemap_get(&s->blocks, key, sizeof key);
            if (b && block_touch(s, b, r, out) < 0)
                return -ENOMEM;
        }
        return 0;
    }
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&s->blocks, &pos, &e))
        if (((addr_block *)e->val)->key[0] == r->af && block_touch(s, e->val, r, out) < 0)
            return -ENOMEM;
    return 0;
}

/* ---- applying events ---- */

/* What was in force before a change, to tell whether the merged view changed. */
typedef struct before {
    int src;
    config_value value;
} before;

static void snapshot(const config_store *s, const cfg_node *n, before *b)
{
    b->src = in_force(s, n);
    if (b->src >= 0)
        memcpy(&b->value, &n->slot[b->src]->value, value_size(n->kind));
}

/* After a slot changed: record what the change touched and update the indexes. */
static int after_change(config_store *s, cfg_node *n, const before *b, config_result *out)
{
    const config_value *now = value_in_force(s, n);
    if (n->kind == CONFIG_ROUTE) /* the route list points at slots: rebuild it even when */
        s->routes_dirty = true;  /* only the slot in force changed, not its value */
    if ((b->src < 0) == !now && (!now || memcmp(&b->value, now, value_size(n->kind)) == 0))
        return 0;
    out->changed = true;
    if (n->kind == CONFIG_ROUTE) { /* the backends under the old and the new prefix */
        int r = b->src >= 0 ? route_touch(s, &b->value.u.route, out) : 0;
        return r == 0 && now ? route_touch(s, &now->u.route, out) : r;
    }
    if (config_strs_push(&out->services, n->svc->name) < 0)
        return -ENOMEM;
    if (n->kind == CONFIG_BACKEND) {
        if (b->src >= 0)
            blocks_backend(s, n, &b->value.u.backend, false);
        return now ? blocks_backend(s, n, &now->u.backend, true) : 0;
    }
    int r = owners_touch(s, n->svc, out);
    owners_remove(s, n->svc);
    if (r == 0)
        r = owners_add(s, n->svc);
    if (r == 0)
        r = owners_touch(s, n->svc, out);
    return r;
}

static void slot_clear_error(config_store *s, cfg_slot *sl, int src)
{
    if (sl->error) {
        free(sl->error);
        sl->error = NULL;
        s->n_invalid--;
        s->n_invalid_src[src]--;
    }
}

/* The slot of src, allocated (empty, sized for the node's kind) when the source did not hold
 * the key; NULL on ENOMEM. */
static cfg_slot *slot_get(cfg_node *n, int src)
{
    if (!n->slot[src])
        n->slot[src] = calloc(1, offsetof(cfg_slot, value) + value_size(n->kind));
    return n->slot[src];
}

static int apply_delete(config_store *s, cfg_node *n, int src, config_result *out)
{
    before b;
    snapshot(s, n, &b);
    slot_clear_error(s, n->slot[src], src);
    free(n->slot[src]);
    n->slot[src] = NULL;
    int r = after_change(s, n, &b, out);
    node_gc(s, n);
    return r;
}

static int apply_valid(config_store *s, cfg_node *n, int src, const config_event *ev,
                       const config_value *v, config_result *out)
{
    before b;
    cfg_slot *sl = slot_get(n, src);
    if (!sl) {
        node_gc(s, n);
        return -ENOMEM;
    }
    snapshot(s, n, &b);
    slot_clear_error(s, sl, src);
    sl->has_value = sl->seen = true;
    sl->revision = ev->revision;
    memcpy(&sl->value, v, value_size(n->kind));
    return after_change(s, n, &b, out);
}

static int apply_invalid(config_store *s, cfg_node *n, int src, const config_event *ev,
                         const char *msg, config_result *out)
{
    cfg_slot *sl = slot_get(n, src);
    char *copy = sl ? strdup(msg) : NULL;
    if (!copy) {
        if (sl && !sl->has_value && !sl->error) {
            free(sl);
            n->slot[src] = NULL;
        }
        node_gc(s, n);
        return -ENOMEM;
    }
    out->repeated = sl->error && strcmp(sl->error, msg) == 0;
    slot_clear_error(s, sl, src);
    sl->error = copy;
    s->n_invalid++;
    s->n_invalid_src[src]++;
    sl->seen = true;
    sl->revision = ev->revision;
    out->invalid = true;
    out->stale = sl->has_value;
    snprintf(out->error, sizeof out->error, "%s", msg);
    return -EINVAL;
}

static void result_reset(config_result *out)
{
    config_strs saved_s = out->services, saved_w = out->warnings;
    for (size_t i = 0; i < saved_s.n; i++)
        free(saved_s.v[i]);
    for (size_t i = 0; i < saved_w.n; i++)
        free(saved_w.v[i]);
    memset(out, 0, sizeof *out);
    out->services = saved_s;
    out->warnings = saved_w;
    out->services.n = out->warnings.n = 0;
}

int config_store_apply(config_store *s, const config_event *ev, config_result *out)
{
    config_key k;
    config_error e;
    result_reset(out);
    if ((unsigned)ev->source >= CONFIG_SOURCE_COUNT)
        return -EINVAL;
    if (!ev->key || config_parse_key(ev->key, ev->key_len, &k, &e) < 0)
        return config_strs_push(&out->warnings, ev->key ? e.msg : "(null key): unknown key, ignored");
    const char *key = ev->key + (ev->key[0] == '/');
    size_t len = ev->key_len - (ev->key[0] == '/');
    cfg_node *n = bytemap_get(&s->nodes, key, len);
    int r;
    if (ev->is_delete) {
        r = n && n->slot[ev->source] ? apply_delete(s, n, ev->source, out) : 0;
    } else {
        config_value v;
        r = config_parse_value(&k, ev->value, ev->value_len, &s->opt.defaults, &v,
                               &out->warnings, &e);
        if (r == -ENOMEM || (!n && !(n = node_new(s, &k, key, len))))
            return -ENOMEM;
        if (r == 0)
            r = apply_valid(s, n, ev->source, ev, &v, out);
        else
            r = apply_invalid(s, n, ev->source, ev, e.msg, out);
    }
    config_strs_sort_unique(&out->services);
    return r;
}

int config_store_sync_begin(config_store *s, enum config_source src)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    if ((unsigned)src >= CONFIG_SOURCE_COUNT)
        return -EINVAL;
    while (bytemap_next(&s->nodes, &pos, &e)) {
        cfg_slot *sl = ((cfg_node *)e->val)->slot[src];
        if (sl)
            sl->seen = false;
    }
    return 0;
}

int config_store_sync_end(config_store *s, enum config_source src, config_result *out)
{
    size_t pos = 0, n = 0, cap = 0;
    bytemap_entry *e = NULL;
    cfg_node **gone = NULL;
    int r = 0;
    result_reset(out);
    if ((unsigned)src >= CONFIG_SOURCE_COUNT)
        return -EINVAL;
    while (r == 0 && bytemap_next(&s->nodes, &pos, &e)) {
        cfg_node *node = e->val;
        if (node->slot[src] && !node->slot[src]->seen &&
            (r = vec_grow((void **)&gone, &cap, n + 1, sizeof *gone)) == 0)
            gone[n++] = node;
    }
    for (size_t i = 0; r == 0 && i < n; i++)
        r = apply_delete(s, gone[i], src, out);
    free(gone);
    config_strs_sort_unique(&out->services);
    return r;
}

/* True when n's key lies under "prefix/" (every key when len is 0). */
static bool key_under(const cfg_node *n, const char *prefix, size_t len)
{
    return len == 0 || (n->key_len > len && memcmp(n->key, prefix, len) == 0 &&
                        n->key[len] == '/');
}

int config_store_sync_keep(config_store *s, enum config_source src, const char *key,
                           size_t len, bool under)
{
    if ((unsigned)src >= CONFIG_SOURCE_COUNT)
        return -EINVAL;
    cfg_node *n = len ? bytemap_get(&s->nodes, key, len) : NULL;
    if (n && n->slot[src])
        n->slot[src]->seen = true;
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (under && bytemap_next(&s->nodes, &pos, &e)) {
        n = e->val;
        if (n->slot[src] && key_under(n, key, len))
            n->slot[src]->seen = true;
    }
    return 0;
}

/* ---- the merged view ---- */

const config_frontend *config_store_frontend(const config_store *s, const char *service)
{
    const cfg_svc *svc = bytemap_get(&s->svcs, service, strlen(service));
    const config_value *v = svc ? value_in_force(s, svc->frontend) : NULL;
    return v ? &v->u.frontend : NULL;
}

static int node_name_cmp(const void *a, const void *b)
{
    return strcmp(node_name(*(cfg_node *const *)a), node_name(*(cfg_node *const *)b));
}

int config_store_foreach_backend(config_store *s, const char *service, config_backend_fn fn,
                                 void *ctx)
{
    cfg_svc *svc = bytemap_get(&s->svcs, service, strlen(service));
    if (!svc)
        return 0;
    if (!svc->sorted) {
        if (svc->n_backends > 1)
            qsort(svc->backends, svc->n_backends, sizeof *svc->backends, node_name_cmp);
        for (size_t i = 0; i < svc->n_backends; i++)
            svc->backends[i]->idx = (uint32_t)i;
        svc->sorted = true;
    }
    for (size_t i = 0; i < svc->n_backends; i++) {
        const config_value *v = value_in_force(s, svc->backends[i]);
        int r = v ? fn(node_name(svc->backends[i]), &v->u.backend, ctx) : 0;
        if (r)
            return r;
    }
    return 0;
}

int config_store_foreach_service(config_store *s, config_service_fn fn, void *ctx)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&s->svcs, &pos, &e)) {
        cfg_svc *svc = e->val;
        int r = value_in_force(s, svc->frontend) ? fn(svc->name, ctx) : 0;
        if (r)
            return r;
    }
    return 0;
}

const char *config_store_svckey_owner(const config_store *s, const config_svckey *key)
{
    config_svckey k = *key;
    const svckey_owners *o = bytemap_get(&s->owners, &k, sizeof k);
    const char *best = NULL;
    for (size_t i = 0; o && i < o->n; i++)
        if (!best || strcmp(o->v[i]->name, best) < 0)
            best = o->v[i]->name;
    return best;
}

static int route_ref_cmp(const void *pa, const void *pb)
{
    const config_route_ref *a = pa, *b = pb;
    if (a->route->af != b->route->af)
        return a->route->af < b->route->af ? -1 : 1;
    if (a->route->plen != b->route->plen)
        return a->route->plen > b->route->plen ? -1 : 1;
    return strcmp(a->name, b->name);
}

long config_store_routes(config_store *s, const config_route_ref **out)
{
    if (s->routes_dirty) {
        config_route_ref *eff = realloc(s->eff, (s->n_routes ? s->n_routes : 1) * sizeof *eff);
        if (!eff)
            return -ENOMEM;
        s->eff = eff;
        s->n_eff = 0;
        for (size_t i = 0; i < s->n_routes; i++) {
            const config_value *v = value_in_force(s, s->routes[i]);
            if (v)
                eff[s->n_eff++] = (config_route_ref){node_name(s->routes[i]), &v->u.route};
        }
        if (s->n_eff > 1)
            qsort(eff, s->n_eff, sizeof *eff, route_ref_cmp);
        s->routes_dirty = false;
    }
    *out = s->eff;
    return (long)s->n_eff;
}

static int node_key_cmp(const void *a, const void *b)
{
    return strcmp((*(cfg_node *const *)a)->key, (*(cfg_node *const *)b)->key);
}

static int entry_emit(config_store *s, const cfg_node *n, config_entry_fn fn, void *ctx)
{
    int force = in_force(s, n);
    for (int src = 0; src < CONFIG_SOURCE_COUNT; src++) {
        const cfg_slot *sl = n->slot[src];
        if (!sl)
            continue;
        config_entry e = {
            .key = n->key, .kind = (enum config_kind)n->kind, .source = (enum config_source)src,
            .value = sl->has_value ? &sl->value : NULL, .in_force = src == force,
            .stale = sl->has_value && sl->error, .error = sl->error, .revision = sl->revision,
        };
        int r = fn(&e, ctx);
        if (r)
            return r;
    }
    return 0;
}

int config_store_foreach_entry(config_store *s, config_entry_fn fn, void *ctx)
{
    size_t pos = 0, n = 0;
    bytemap_entry *e = NULL;
    cfg_node **all = malloc((s->nodes.n ? s->nodes.n : 1) * sizeof *all);
    if (!all)
        return -ENOMEM;
    while (bytemap_next(&s->nodes, &pos, &e))
        all[n++] = e->val;
    qsort(all, n, sizeof *all, node_key_cmp);
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        r = entry_emit(s, all[i], fn, ctx);
    free(all);
    return r;
}
