/* lb.c -- the desired IPVS table of one clusterf service or of all of them, from the merged
 * config: service keys and attributes, conflicts, per-backend route lookup, destination
 * address/port/method, merging of equal destinations. Pure: no I/O, no logging. */
#include "common/vec.h"
#include "lb/lb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ip_vs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A destination before merging: seq orders backends by name. */
typedef struct cand {
    lb_dest d;
    size_t seq;
    const char *backend;
} cand;

typedef struct cand_list {
    cand *v;
    size_t n, cap;
} cand_list;

/* The state of one lb_compute_service run. */
typedef struct run {
    config_store *cfg;
    const config_route_ref *routes;
    long n_routes;
    lb_table *out;
    size_t first;                        /* index of this service's first lb_service */
    int n;                               /* lb_services of this clusterf service */
    cand_list cands[CONFIG_SVCKEYS_MAX]; /* one per lb_service */
    size_t seq;
    int err;
} run;


void lb_table_init(lb_table *t)
{
    memset(t, 0, sizeof *t);
}

void lb_table_free(lb_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_services; i++) {
        free(t->services[i].owner);
        free(t->services[i].dests);
    }
    free(t->services);
    config_strs_clear(&t->warnings);
    config_strs_clear(&t->conflicts);
    lb_table_init(t);
}

int lb_table_take(lb_table *dst, lb_table *src)
{
    if (vec_grow((void **)&dst->services, &dst->cap, dst->n_services + src->n_services,
                 sizeof *dst->services) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < src->warnings.n; i++)
        if (config_strs_push(&dst->warnings, src->warnings.v[i]) < 0)
            return -ENOMEM;
    if (src->n_services > 0) /* an empty src may have no array: memcpy(NULL) is undefined */
        memcpy(dst->services + dst->n_services, src->services,
               src->n_services * sizeof *src->services);
    dst->n_services += src->n_services;
    src->n_services = 0;
    lb_table_free(src);
    return 0;
}

const char *lb_fwd_name(uint32_t fwd)
{
    switch (fwd & IP_VS_CONN_F_FWD_MASK) {
    case IP_VS_CONN_F_MASQ: return "masq";
    case IP_VS_CONN_F_DROUTE: return "droute";
    case IP_VS_CONN_F_TUNNEL: return "tunnel";
    default: return "?";
    }
}

static uint32_t method_fwd(enum config_method m)
{
    return m == CONFIG_METHOD_DROUTE ? IP_VS_CONN_F_DROUTE :
           m == CONFIG_METHOD_TUNNEL ? IP_VS_CONN_F_TUNNEL : IP_VS_CONN_F_MASQ;
}

static const char *addr_port_str(int af, const uint8_t *addr, uint16_t port, char *buf, size_t size)
{
    char a[INET6_ADDRSTRLEN];
    inet_ntop(af, addr, a, sizeof a);
    snprintf(buf, size, af == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
    return buf;
}

const char *lb_dest_str(const lb_dest *d, char *buf, size_t size)
{
    return addr_port_str(d->af, d->addr, d->port, buf, size);
}

const char *lb_service_str(const lb_service *s, char *buf, size_t size)
{
    char ap[INET6_ADDRSTRLEN + 10];
    if (s->fwmark)
        snprintf(buf, size, "FWM %u %s", s->fwmark, s->af == AF_INET6 ? "IPv6" : "IPv4");
    else
        snprintf(buf, size, "%s %s", s->protocol == IPPROTO_UDP ? "UDP" : "TCP",
                 addr_port_str(s->af, s->addr, s->port, ap, sizeof ap));
    return buf;
}

int lb_service_cmp(const lb_service *a, const lb_service *b)
{
    if ((a->fwmark != 0) != (b->fwmark != 0))
        return a->fwmark ? 1 : -1;
    if (a->af != b->af)
        return a->af < b->af ? -1 : 1;
    if (a->protocol != b->protocol)
        return a->protocol < b->protocol ? -1 : 1;
    int c = memcmp(a->addr, b->addr, sizeof a->addr);
    if (c)
        return c < 0 ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->fwmark != b->fwmark)
        return a->fwmark < b->fwmark ? -1 : 1;
    return 0;
}

int lb_dest_cmp(const lb_dest *a, const lb_dest *b)
{
    if (a->af != b->af)
        return a->af < b->af ? -1 : 1;
    int c = memcmp(a->addr, b->addr, sizeof a->addr);
    if (c)
        return c < 0 ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    return 0;
}

bool lb_service_attrs_equal(const lb_service *a, const lb_service *b)
{
    return strcmp(a->sched, b->sched) == 0 && a->flags == b->flags &&
           a->timeout == b->timeout && a->netmask == b->netmask;
}

/* ---- services of one frontend ---- */

static void service_from_key(lb_service *ls, const config_svckey *k, const config_frontend *fe)
{
    memset(ls, 0, sizeof *ls);
    ls->af = k->af;
    ls->protocol = k->protocol;
    ls->port = k->port;
    ls->fwmark = k->fwmark;
    memcpy(ls->addr, k->addr, sizeof ls->addr);
    memcpy(ls->sched, fe->sched, sizeof ls->sched);
    ls->flags = fe->flags;
    if (fe->persistence) {
        ls->flags |= IP_VS_SVC_F_PERSISTENT;
        ls->timeout = fe->persistence;
    }
    ls->netmask = k->af == AF_INET6 ? 128 : 0xffffffffu;
}

/* Append one lb_service per key this service owns; conflicts become warnings. */
static int add_services(run *r, const char *name, const config_frontend *fe)
{
    config_svckey keys[CONFIG_SVCKEYS_MAX];
    int nk = config_frontend_svckeys(fe, keys);
    lb_table *t = r->out;
    for (int i = 0; i < nk; i++) {
        const char *owner = config_store_svckey_owner(r->cfg, &keys[i]);
        lb_service ls;
        char buf[80];
        service_from_key(&ls, &keys[i], fe);
        if (owner && strcmp(owner, name) != 0) {
            if (config_strs_pushf(&t->warnings, "service %s: %s conflicts with service %s, "
                                  "which sorts first and wins", name,
                                  lb_service_str(&ls, buf, sizeof buf), owner) < 0 ||
                config_strs_push(&t->conflicts, name) < 0)
                return -ENOMEM;
            continue;
        }
        if (vec_grow((void **)&t->services, &t->cap, t->n_services + 1, sizeof *t->services) < 0 ||
            !(ls.owner = strdup(name)))
            return -ENOMEM;
        t->services[t->n_services++] = ls;
        r->n++;
    }
    return 0;
}

/* ---- destinations ---- */

/* The route in force for addr (longest prefix, then name), or NULL. */
static const config_route *route_lookup(const run *r, int af, const uint8_t *addr)
{
    for (long i = 0; i < r->n_routes; i++) {
        const config_route *rt = r->routes[i].route;
        if (rt->af != af)
            continue;
        int full = rt->plen / 8, rest = rt->plen % 8;
        if (memcmp(rt->prefix, addr, (size_t)full) != 0)
            continue;
        if (rest && ((addr[full] ^ rt->prefix[full]) & (0xff << (8 - rest)) & 0xff))
            continue;
        return rt;
    }
    return NULL;
}

/* The destination backend be gives in ls; false when it does not join. */
static bool dest_for(const run *r, const lb_service *ls, const config_backend *be, lb_dest *d)
{
    bool v6 = ls->af == AF_INET6;
    if (!(v6 ? be->has_ipv6 : be->has_ipv4))
        return false;
    const uint8_t *addr = v6 ? be->ipv6 : be->ipv4;
    uint16_t be_port = 0;
    if (!ls->fwmark && !(be_port = ls->protocol == IPPROTO_TCP ? be->tcp : be->udp))
        return false;
    const config_route *rt = route_lookup(r, ls->af, addr);
    enum config_method m = rt ? rt->method : config_store_options(r->cfg)->defaults.method;
    if (m == CONFIG_METHOD_FILTER)
        return false;
    memset(d, 0, sizeof *d);
    d->af = ls->af;
    memcpy(d->addr, rt && rt->has_gateway ? rt->gateway : addr, v6 ? 16 : 4);
    d->port = (rt && rt->has_gateway) || m != CONFIG_METHOD_MASQ ? ls->port : be_port;
    d->fwd = method_fwd(m);
    d->weight = be->weight;
    return true;
}

static int backend_cb(const char *name, const config_backend *be, void *ctx)
{
    run *r = ctx;
    size_t seq = r->seq++;
    for (int i = 0; i < r->n; i++) {
        cand c = {.seq = seq, .backend = name};
        cand_list *l = &r->cands[i];
        if (!dest_for(r, &r->out->services[r->first + (size_t)i], be, &c.d))
            continue;
        if (vec_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) < 0)
            return r->err = -ENOMEM;
        l->v[l->n++] = c;
    }
    return 0;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    int c = lb_dest_cmp(&a->d, &b->d);
    return c ? c : a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort the candidates and merge equal addr:port into ls->dests. */
static int merge_dests(lb_table *t, lb_service *ls, cand_list *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cand_cmp);
    if (l->n && !(ls->dests = malloc(l->n * sizeof *ls->dests)))
        return -ENOMEM;
    for (size_t i = 0, j; i < l->n; i = j) {
        uint64_t w = 0;
        for (j = i; j < l->n && lb_dest_cmp(&l->v[i].d, &l->v[j].d) == 0; j++) {
            w += l->v[j].d.weight;
            char sb[80], db[INET6_ADDRSTRLEN + 10];
            if (l->v[j].d.fwd != l->v[i].d.fwd &&
                config_strs_pushf(&t->warnings, "service %s: %s: destination %s merges backends "
                                  "%s (%s) and %s (%s); using %s", ls->owner,
                                  lb_service_str(ls, sb, sizeof sb), lb_dest_str(&l->v[i].d, db, sizeof db),
                                  l->v[i].backend, lb_fwd_name(l->v[i].d.fwd), l->v[j].backend,
                                  lb_fwd_name(l->v[j].d.fwd), lb_fwd_name(l->v[i].d.fwd)) < 0)
                return -ENOMEM;
        }
        lb_dest d = l->v[i].d;
        d.weight = w > LB_WEIGHT_MAX ? LB_WEIGHT_MAX : (uint32_t)w;
        ls->dests[ls->n_dests++] = d;
    }
    return 0;
}

/* Append the lb_services of one clusterf service to r->out (unsorted across services). */
static int compute_one(run *r, const char *name)
{
    const config_frontend *fe = config_store_frontend(r->cfg, name);
    if (!fe)
        return 0;
    r->first = r->out->n_services;
    r->n = 0;
    r->seq = 0;
    r->err = 0;
    int err = add_services(r, name, fe);
    if (err == 0 && r->n)
        err = config_store_foreach_backend(r->cfg, name, backend_cb, r);
    for (int i = 0; i < r->n; i++) {
        if (err == 0)
            err = merge_dests(r->out, &r->out->services[r->first + (size_t)i], &r->cands[i]);
        r->cands[i].n = 0;
    }
    return err;
}

static void run_free(run *r)
{
    for (int i = 0; i < CONFIG_SVCKEYS_MAX; i++)
        free(r->cands[i].v);
}

static int run_init(run *r, config_store *cfg, lb_table *out)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->out = out;
    lb_table_free(out);
    r->n_routes = config_store_routes(cfg, &r->routes);
    return r->n_routes < 0 ? (int)r->n_routes : 0;
}

static int service_sort_cmp(const void *a, const void *b)
{
    return lb_service_cmp(a, b);
}

/* Sort, unique the conflict list, or on error empty the table. */
static int run_finish(run *r, int err)
{
    run_free(r);
    if (err < 0) {
        lb_table_free(r->out);
        return err;
    }
    if (r->out->n_services > 1)
        qsort(r->out->services, r->out->n_services, sizeof *r->out->services, service_sort_cmp);
    config_strs_sort_unique(&r->out->conflicts);
    return 0;
}

int lb_compute_service(config_store *cfg, const char *service, lb_table *out)
{
    run r;
    int err = run_init(&r, cfg, out);
    if (err == 0)
        err = compute_one(&r, service);
    return run_finish(&r, err);
}

static int service_cb(const char *service, void *ctx)
{
    return compute_one(ctx, service);
}

int lb_compute_all(config_store *cfg, lb_table *out)
{
    run r;
    int err = run_init(&r, cfg, out);
    if (err == 0)
        err = config_store_foreach_service(cfg, service_cb, &r);
    return run_finish(&r, err);
}
