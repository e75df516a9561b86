/* ipvs_fake.c -- an in-memory IPVS table with the kernel's answers, behind ipvs_iface.
 *
 * For unit tests of code built on ipvs_apply/ipvs_dump (the reconciler): the same errno for
 * the same mistakes as Linux 6.1's ip_vs_ctl.c (EEXIST, ESRCH, ENOENT for an unknown
 * scheduler or missing dest, ERANGE for weights and thresholds, EINVAL), checked in the same
 * order. tests/vm/guest_ipvs.c replays one random op sequence on both and compares. Also the
 * dry run's table (clusterf-ipvs --dry-run), so it is kept compact: a dest is stored without
 * the counters (always zero here) and filled out to a struct ipvs_dest only when dumped.
 * Services are indexed; dests are searched linearly within their service. */
#include "common/bytemap.h"
#include "common/vec.h"
#include "ipvs/ipvs.h"

#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* A service's identity as index key bytes. */
typedef struct fake_key {
    uint16_t af, protocol, port, pad;
    uint32_t fwmark;
    uint8_t addr[16];
} fake_key;

/* Index entry: identity -> position in t.entries. */
typedef struct fake_slot {
    fake_key key;
    size_t pos;
} fake_slot;

/* A dest as the fake keeps it: struct ipvs_dest without the stats (zero in the fake). */
typedef struct fake_dest {
    uint8_t addr[16];
    uint16_t af, port;
    uint32_t fwd, weight, u_thresh, l_thresh;
    uint32_t active_conns, inact_conns, persist_conns;
    uint16_t tun_port, tun_flags;
    uint8_t tun_type;
} fake_dest;

/* A service with its dests, in add order. */
typedef struct fake_entry {
    struct ipvs_service svc;
    fake_dest *dests;
    size_t n_dests;
} fake_entry;

/* The services in add order (the dump order). */
typedef struct fake_table {
    fake_entry *entries;
    size_t n;
} fake_table;

struct ipvs_fake {
    fake_table t;
    bytemap index; /* fake_key -> fake_slot */
    size_t cap;
    long fail_after;          /* <0: off; else ops to process before failing */
    int fail_code;
    unsigned long applies;
    size_t part_pos;          /* next position of a dump read in parts */
    bool parting;             /* such a dump is under way */
};

/* Schedulers of the Debian 6.1 kernel. */
static const char *const known_scheds[] = {
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    "twos", "none",
};

static bool sched_known(const char *s)
{
    if (!s[0])
        return true;                                 /* sent as "wlc" */
    for (size_t i = 0; i < sizeof(known_scheds) / sizeof(known_scheds[0]); i++)
        if (strncmp(s, known_scheds[i], IP_VS_SCHEDNAME_MAXLEN) == 0)
            return true;
    return false;
}

ipvs_fake *ipvs_fake_new(void)
{
    ipvs_fake *f = calloc(1, sizeof(*f));
    if (f)
        f->fail_after = -1;
    return f;
}

static void key_of(const struct ipvs_service *s, fake_key *k)
{
    memset(k, 0, sizeof *k);
    k->af = s->af;
    if (s->fwmark) {
        k->fwmark = s->fwmark;
        return;
    }
    k->protocol = s->protocol;
    k->port = s->port;
    memcpy(k->addr, s->addr, s->af == AF_INET ? 4 : 16);
}

static fake_entry *find_service(const ipvs_fake *f, const struct ipvs_service *s)
{
    fake_key k;
    key_of(s, &k);
    const fake_slot *slot = bytemap_get(&f->index, &k, sizeof k);
    return slot ? &f->t.entries[slot->pos] : NULL;
}

static void clear(ipvs_fake *f)
{
    for (size_t i = 0; i < f->t.n; i++)
        free(f->t.entries[i].dests);
    f->t.n = 0;
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&f->index, &pos, &e))
        free(e->val);
    bytemap_clear(&f->index);
}

void ipvs_fake_free(ipvs_fake *f)
{
    if (!f)
        return;
    clear(f);
    free(f->t.entries);
    free(f);
}

void ipvs_fake_fail_after(ipvs_fake *f, size_t n_ops, int code)
{
    f->fail_after = (long)n_ops;
    f->fail_code = code;
}

unsigned long ipvs_fake_applies(const ipvs_fake *f)
{
    return f->applies;
}

/* fd as a struct ipvs_dest (counters zero). */
static void dest_expand(const fake_dest *fd, struct ipvs_dest *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->addr, fd->addr, sizeof out->addr);
    out->af = fd->af;
    out->port = fd->port;
    out->fwd = fd->fwd;
    out->weight = fd->weight;
    out->u_thresh = fd->u_thresh;
    out->l_thresh = fd->l_thresh;
    out->tun_type = fd->tun_type;
    out->tun_port = fd->tun_port;
    out->tun_flags = fd->tun_flags;
    out->active_conns = fd->active_conns;
    out->inact_conns = fd->inact_conns;
    out->persist_conns = fd->persist_conns;
}

/* The dest of e with d's identity (ipvs_dest_cmp), or NULL. */
static fake_dest *find_dest(fake_entry *e, const struct ipvs_dest *d)
{
    uint16_t af = d->af ? d->af : e->svc.af;
    size_t alen = af == AF_INET ? 4 : 16;
    for (size_t i = 0; i < e->n_dests; i++) {
        fake_dest *fd = &e->dests[i];
        if (fd->af == af && fd->port == d->port && memcmp(fd->addr, d->addr, alen) == 0)
            return fd;
    }
    return NULL;
}

/* The kernel's service checks (ip_vs_add_service / ip_vs_edit_service). */
static int check_service(const struct ipvs_service *s)
{
    if (!sched_known(s->sched))
        return -ENOENT;
    if (s->pe[0] && strncmp(s->pe, "sip", IP_VS_PENAME_MAXLEN) != 0)
        return -ENOENT;
    return 0;          /* netmask: ipvs_apply sends 0 or out-of-range values as full */
}

/* Copy the config of s into dst, as the kernel stores it (defaults filled, no stats). */
static void store_service(struct ipvs_service *dst, const struct ipvs_service *s)
{
    uint16_t proto = s->protocol;
    *dst = *s;
    if (!dst->sched[0])
        strcpy(dst->sched, "wlc");
    if (!dst->netmask || dst->netmask > (s->af == AF_INET6 ? 128u : 32u))
        dst->netmask = s->af == AF_INET6 ? 128 : 32;
    dst->flags &= ~IP_VS_SVC_F_HASHED;
    if (s->fwmark) {                 /* the kernel keeps neither address nor port */
        memset(dst->addr, 0, sizeof(dst->addr));
        dst->port = 0;
        proto = 0;
    }
    dst->protocol = proto;
    memset(&dst->stats, 0, sizeof(dst->stats));
}

static int add_service(ipvs_fake *f, const struct ipvs_service *s)
{
    int rc = check_service(s);
    if (rc < 0)
        return rc;
    if (f->t.n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        fake_entry *p = realloc(f->t.entries, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        f->t.entries = p;
        f->cap = cap;
    }
    fake_slot *slot = malloc(sizeof *slot);
    if (!slot)
        return -ENOMEM;
    key_of(s, &slot->key);
    slot->pos = f->t.n;
    if (bytemap_put(&f->index, &slot->key, sizeof slot->key, slot) < 0) {
        free(slot);
        return -ENOMEM;
    }
    fake_entry *e = &f->t.entries[f->t.n++];
    memset(e, 0, sizeof(*e));
    store_service(&e->svc, s);
    return 0;
}

/* Remove e, keeping the order of the others (the dump order of tests). */
static void del_service(ipvs_fake *f, fake_entry *e)
{
    fake_key k;
    key_of(&e->svc, &k);
    free(bytemap_del(&f->index, &k, sizeof k));
    free(e->dests);
    size_t i = (size_t)(e - f->t.entries);
    memmove(e, e + 1, (f->t.n - i - 1) * sizeof(*e));
    f->t.n--;
    for (; i < f->t.n; i++) {
        key_of(&f->t.entries[i].svc, &k);
        ((fake_slot *)bytemap_get(&f->index, &k, sizeof k))->pos = i;
    }
}

/* ip_vs_genl_parse_dest + the mixed-family rule, then ip_vs_add_dest / ip_vs_edit_dest. */
static int check_dest(const fake_entry *e, const struct ipvs_dest *d)
{
    uint16_t af = d->af ? d->af : e->svc.af;
    if (af != AF_INET && af != AF_INET6)
        return -EAFNOSUPPORT;
    if (af != e->svc.af && (d->fwd & IP_VS_CONN_F_FWD_MASK) != IPVS_FWD_TUNNEL)
        return -EINVAL;
    if (d->u_thresh > INT_MAX || d->l_thresh > INT_MAX)
        return -EINVAL;
    if (d->weight > INT_MAX || d->l_thresh > d->u_thresh)
        return -ERANGE;
    if (d->tun_type == IP_VS_CONN_F_TUNNEL_TYPE_GUE && d->tun_port == 0)
        return -EINVAL;
    return 0;
}

/* Store d's config into dst as the kernel keeps it (family filled, no connections). */
static void store_dest(const fake_entry *e, fake_dest *dst, const struct ipvs_dest *d)
{
    memset(dst, 0, sizeof *dst);
    memcpy(dst->addr, d->addr, sizeof dst->addr);
    dst->af = d->af ? d->af : e->svc.af;
    dst->port = d->port;
    dst->fwd = d->fwd & IP_VS_CONN_F_FWD_MASK;
    dst->weight = d->weight;
    dst->u_thresh = d->u_thresh;
    dst->l_thresh = d->l_thresh;
    dst->tun_type = d->tun_type;
    dst->tun_port = d->tun_port;
    dst->tun_flags = d->tun_flags;
}

static int add_dest(fake_entry *e, const struct ipvs_dest *d)
{
    int rc = check_dest(e, d);
    if (rc < 0)
        return rc;
    if (find_dest(e, d))
        return -EEXIST;
    fake_dest *p = realloc(e->dests, (e->n_dests + 1) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    e->dests = p;
    store_dest(e, &e->dests[e->n_dests++], d);
    return 0;
}

static int edit_dest(fake_entry *e, const struct ipvs_dest *d)
{
    int rc = check_dest(e, d);
    if (rc < 0)
        return rc;
    fake_dest *old = find_dest(e, d);
    if (!old)
        return -ENOENT;
    fake_dest keep = *old; /* an edit keeps the connections */
    store_dest(e, old, d);
    old->active_conns = keep.active_conns;
    old->inact_conns = keep.inact_conns;
    old->persist_conns = keep.persist_conns;
    return 0;
}

static int del_dest(fake_entry *e, const struct ipvs_dest *d)
{
    fake_dest *old = find_dest(e, d);
    if (!old)
        return -ENOENT;
    size_t i = (size_t)(old - e->dests);
    memmove(old, old + 1, (e->n_dests - i - 1) * sizeof(*old));
    e->n_dests--;
    return 0;
}

/* One op against the table: 0 or the kernel's -errno. */
static int apply_one(ipvs_fake *f, const struct ipvs_op *op)
{
    if (op->kind == IPVS_OP_FLUSH) {
        clear(f);
        return 0;
    }
    if (op->svc.af != AF_INET && op->svc.af != AF_INET6)
        return -EAFNOSUPPORT;
    fake_entry *e = find_service(f, &op->svc);
    if (op->kind == IPVS_OP_ADD_SERVICE)
        return e ? -EEXIST : add_service(f, &op->svc);
    if (!e)
        return -ESRCH;
    switch (op->kind) {
    case IPVS_OP_EDIT_SERVICE: {
        int rc = check_service(&op->svc);
        if (rc == 0) {
            struct ipvs_stats keep = e->svc.stats;
            store_service(&e->svc, &op->svc);
            e->svc.stats = keep;
        }
        return rc;
    }
    case IPVS_OP_DEL_SERVICE:
        del_service(f, e);
        return 0;
    case IPVS_OP_ADD_DEST: return add_dest(e, &op->dest);
    case IPVS_OP_EDIT_DEST: return edit_dest(e, &op->dest);
    case IPVS_OP_DEL_DEST: return del_dest(e, &op->dest);
    default: return -EINVAL;
    }
}

/* Same outcome rules as ipvs_apply (ipvs_apply.c). */
static enum ipvs_outcome outcome_of(enum ipvs_op_kind kind, int e)
{
    if (e == 0)
        return IPVS_APPLIED;
    if ((kind == IPVS_OP_ADD_SERVICE || kind == IPVS_OP_ADD_DEST) && e == -EEXIST)
        return IPVS_ALREADY;
    if ((kind == IPVS_OP_DEL_SERVICE && e == -ESRCH) ||
        (kind == IPVS_OP_DEL_DEST && (e == -ENOENT || e == -ESRCH)))
        return IPVS_ALREADY;
    return IPVS_FAILED;
}

int ipvs_fake_apply(ipvs_fake *f, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    f->applies++;
    for (size_t i = 0; i < n; i++) {
        if (f->fail_after >= 0 && (size_t)f->fail_after <= i) {
            int code = f->fail_code;
            for (; i < n; i++) {
                ops[i].outcome = IPVS_FAILED;
                ops[i].error = code;
            }
            f->fail_after = -1;
            if (err) {
                err->code = code;
                strcpy(err->msg, "ipvs_fake: injected failure");
            }
            return code;
        }
        ops[i].error = apply_one(f, &ops[i]);
        ops[i].outcome = outcome_of(ops[i].kind, ops[i].error);
    }
    f->fail_after = f->fail_after > 0 ? f->fail_after - (long)n : f->fail_after;
    return 0;
}

int ipvs_fake_dump(ipvs_fake *f, struct ipvs_table **out, struct ipvs_err *err)
{
    struct ipvs_table *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t || !(t->entries = calloc(f->t.n + 1, sizeof(*t->entries))))
        goto oom;
    for (; t->n < f->t.n; t->n++) {
        const fake_entry *src = &f->t.entries[t->n];
        struct ipvs_entry *dst = &t->entries[t->n];
        dst->svc = src->svc;
        dst->dests = malloc((src->n_dests + 1) * sizeof(*dst->dests));
        if (!dst->dests)
            goto oom;
        for (size_t i = 0; i < src->n_dests; i++)
            dest_expand(&src->dests[i], &dst->dests[i]);
        dst->n_dests = src->n_dests;
    }
    *out = t;
    return 0;
oom:
    ipvs_table_free(t);
    if (err) {
        err->code = -ENOMEM;
        strcpy(err->msg, "out of memory");
    }
    return -ENOMEM;
}

int ipvs_fake_set_conns(ipvs_fake *f, const struct ipvs_service *svc, const struct ipvs_dest *d,
                        uint32_t active, uint32_t inactive)
{
    fake_entry *e = find_service(f, svc);
    fake_dest *dst = e ? find_dest(e, d) : NULL;
    if (!dst)
        return -ENOENT;
    dst->active_conns = active;
    dst->inact_conns = inactive;
    return 0;
}

static int fake_oom(struct ipvs_err *err)
{
    if (err) {
        err->code = -ENOMEM;
        strcpy(err->msg, "out of memory");
    }
    return -ENOMEM;
}

int ipvs_fake_dump_services(ipvs_fake *f, struct ipvs_service **out, size_t *n,
                            struct ipvs_err *err)
{
    *n = 0;
    *out = malloc((f->t.n + 1) * sizeof(**out));
    if (!*out)
        return fake_oom(err);
    for (; *n < f->t.n; (*n)++)
        (*out)[*n] = f->t.entries[*n].svc;
    return 0;
}

int ipvs_fake_dump_services_part(ipvs_fake *f, struct ipvs_service_list *list, size_t max,
                                 struct ipvs_err *err)
{
    if (!f->parting)
        f->part_pos = 0;
    f->parting = true;
    size_t end = f->part_pos + (max ? max : 1);
    for (; f->part_pos < end && f->part_pos < f->t.n; f->part_pos++) {
        if (vec_grow((void **)&list->v, &list->cap, list->n + 1, sizeof *list->v) < 0) {
            f->parting = false;
            return fake_oom(err);
        }
        list->v[list->n++] = f->t.entries[f->part_pos].svc;
    }
    f->parting = f->part_pos < f->t.n;
    return f->parting ? 1 : 0;
}

void ipvs_fake_dump_services_stop(ipvs_fake *f)
{
    f->parting = false;
}

int ipvs_fake_dump_dests(ipvs_fake *f, const struct ipvs_service *svc, struct ipvs_dest **out,
                         size_t *n, struct ipvs_err *err)
{
    *out = NULL;
    *n = 0;
    const fake_entry *e = find_service(f, svc);
    size_t have = e ? e->n_dests : 0; /* unknown service: an empty dump, as the kernel */
    *out = malloc((have + 1) * sizeof(**out));
    if (!*out)
        return fake_oom(err);
    for (size_t i = 0; i < have; i++)
        dest_expand(&e->dests[i], &(*out)[i]);
    *n = have;
    return 0;
}

static int iface_dump(void *self, struct ipvs_table **out, struct ipvs_err *err)
{
    return ipvs_fake_dump(self, out, err);
}

static int iface_dump_services(void *self, struct ipvs_service **out, size_t *n,
                               struct ipvs_err *err)
{
    return ipvs_fake_dump_services(self, out, n, err);
}

static int iface_dump_dests(void *self, const struct ipvs_service *svc, struct ipvs_dest **out,
                            size_t *n, struct ipvs_err *err)
{
    return ipvs_fake_dump_dests(self, svc, out, n, err);
}

static int iface_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    return ipvs_fake_apply(self, ops, n, err);
}

static int iface_dump_services_part(void *self, struct ipvs_service_list *list, size_t max,
                                    struct ipvs_err *err)
{
    return ipvs_fake_dump_services_part(self, list, max, err);
}

static void iface_dump_services_stop(void *self)
{
    ipvs_fake_dump_services_stop(self);
}

struct ipvs_iface ipvs_fake_iface(ipvs_fake *f)
{
    return (struct ipvs_iface){ .self = f, .dump = iface_dump,
                                .dump_services = iface_dump_services,
                                .dump_dests = iface_dump_dests, .apply = iface_apply,
                                .dump_services_part = iface_dump_services_part,
                                .dump_services_stop = iface_dump_services_stop };
}
