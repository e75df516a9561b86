/* ctl_status.c -- `clusterfctl status`: the desired IPVS table (lb_compute_all on the merged
 * config, as clusterf-ipvs computes it) next to the kernel's (ipvs_dump), per service and
 * destination: ok, missing (only desired), differ, extra (a destination only in the kernel, in
 * a managed service), draining (such a destination at weight 0 in a TCP or fwmark service:
 * clusterf-ipvs keeps a removed backend so until its connections end or --drain-timeout; shown
 * with its connection counts), stale (a service only in the kernel that clusterf-ipvs created,
 * per its state file) or foreign (a service only in the kernel that clusterf-ipvs leaves
 * alone). Every row but ok, draining and foreign is drift. Unknown: the rows of a service that
 * depends on an invalid key whose last valid value is gone from etcd's history (ctl_load): what
 * clusterf-ipvs holds for it cannot be known, so they are neither ok nor drift. Read-only:
 * nothing is changed in the kernel. */
#include "ctl/ctl_int.h"

#include "ipvs/ipvs.h"
#include "lb/lb.h"
#include "reconcile/reconcile.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* What the unknown keys (ctl_report's unknown) leave unknown of the desired table. */
struct unknown_scope {
    bool all;             /* a route is unknown: any destination of any service may differ */
    bool frontend;        /* a frontend is unknown: an owned kernel-only service may be its */
    config_strs services; /* clusterf services with an unknown frontend or backend */
};

struct status {
    const ctl_options *o;
    ctl_table table;
    struct json_object *rows;
    size_t drift, foreign, services, dests, draining, unknown;
    struct unknown_scope scope;
    bool in_unknown; /* the rows being added belong to an unknown service */
};

/* Fill st->scope from the unknown keys of rep. 0 or -ENOMEM. */
static int scope_of_unknown(struct status *st, const ctl_report *rep)
{
    for (size_t i = 0; i < rep->unknown.n; i++) {
        const char *key = rep->unknown.v[i], *end = strstr(key, ": "); /* "<key>: <why>" */
        config_key k;
        config_error e;
        if (!end || config_parse_key(key, (size_t)(end - key), &k, &e) < 0)
            continue;
        st->scope.all |= k.kind == CONFIG_ROUTE;
        st->scope.frontend |= k.kind == CONFIG_FRONTEND;
        if (k.kind != CONFIG_ROUTE && config_strs_push(&st->scope.services, k.service) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* True when what clusterf-ipvs holds for clusterf service name is unknown. */
static bool service_unknown(const struct status *st, const char *name)
{
    for (size_t i = 0; !st->scope.all && name && i < st->scope.services.n; i++)
        if (strcmp(st->scope.services.v[i], name) == 0)
            return true;
    return st->scope.all;
}

/* One row; counts drift (a stale service counts once, not once per destination). A row of an
 * unknown service (st->in_unknown) is shown as unknown and is no drift. 0 or -ENOMEM. */
static int row(struct status *st, const char *state, const char *svc, const char *dest,
               const char *want, const char *have, const char *owner)
{
    if (st->in_unknown) {
        st->unknown += !dest;
        state = "unknown";
    }
    bool stale = strcmp(state, "stale") == 0;
    bool fine = !strcmp(state, "ok") || !strcmp(state, "foreign") ||
                !strcmp(state, "draining") || !strcmp(state, "unknown");
    if ((stale && !dest) || (!stale && !fine))
        st->drift++;
    st->draining += strcmp(state, "draining") == 0;
    if (!st->rows) {
        const char *cells[] = {state, svc, dest, want, have, owner};
        return ctl_table_row(&st->table, cells);
    }
    struct json_object *r = json_object_new_object();
    if (!r)
        return -ENOMEM;
    json_object_object_add(r, "state", json_object_new_string(state));
    json_object_object_add(r, "service", json_object_new_string(svc));
    json_object_object_add(r, "dest", dest ? json_object_new_string(dest) : NULL);
    json_object_object_add(r, "desired", want ? json_object_new_string(want) : NULL);
    json_object_object_add(r, "kernel", have ? json_object_new_string(have) : NULL);
    json_object_object_add(r, "owner", owner ? json_object_new_string(owner) : NULL);
    return json_object_array_add(st->rows, r) == 0 ? 0 : -ENOMEM;
}

/* "wlc", "sh flags=0x18 persistent=300"; NULL s gives NULL. */
static const char *svc_desc(const struct ipvs_service *s, char *buf, size_t size)
{
    if (!s)
        return NULL;
    int n = snprintf(buf, size, "%s", s->sched[0] ? s->sched : "wlc");
    uint32_t flags = s->flags & ~(uint32_t)IP_VS_SVC_F_PERSISTENT;
    if (flags && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " flags=%#x", flags);
    if ((s->flags & IP_VS_SVC_F_PERSISTENT) && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " persistent=%u", s->timeout);
    return buf;
}

/* "masq w=10"; NULL d gives NULL. */
static const char *dest_desc(const struct ipvs_dest *d, char *buf, size_t size)
{
    if (!d)
        return NULL;
    snprintf(buf, size, "%s w=%u", ipvs_fwd_name(d->fwd), d->weight);
    return buf;
}

static const struct ipvs_dest *find_dest(const struct ipvs_service *svc,
                                         const struct ipvs_entry *e, const struct ipvs_dest *d)
{
    for (size_t i = 0; e && i < e->n_dests; i++)
        if (ipvs_dest_cmp(svc, &e->dests[i], d) == 0)
            return &e->dests[i];
    return NULL;
}

/* Rows of one desired destination. */
static int desired_dest(struct status *st, const struct ipvs_service *svc, const char *sname,
                        const struct ipvs_entry *ke, const lb_dest *ld, const char *owner)
{
    struct ipvs_dest want;
    reconcile_lb_to_ipvs_dest(ld, &want);
    const struct ipvs_dest *have = find_dest(svc, ke, &want);
    char dn[80], a[64], b[64];
    const char *state = !have ? "missing" : ipvs_dest_same_config(&want, have) ? "ok" : "differ";
    st->dests++;
    return row(st, state, sname, ipvs_dest_str(svc, &want, dn, sizeof dn),
               dest_desc(&want, a, sizeof a), dest_desc(have, b, sizeof b), owner);
}

/* Rows of one desired service, its destinations, and kernel destinations it does not want. */
static int desired_service(struct status *st, const lb_service *ls, const struct ipvs_table *k)
{
    struct ipvs_service want;
    reconcile_lb_to_ipvs_service(ls, &want);
    const struct ipvs_entry *ke = ipvs_table_find(k, &want);
    char sn[80], a[96], b[96], dn[80];
    ipvs_service_str(&want, sn, sizeof sn);
    const char *state = !ke ? "missing" : ipvs_service_same_config(&want, &ke->svc) ? "ok" : "differ";
    st->services++;
    st->in_unknown = service_unknown(st, ls->owner);
    int rc = row(st, state, sn, NULL, svc_desc(&want, a, sizeof a),
                 svc_desc(ke ? &ke->svc : NULL, b, sizeof b), ls->owner);
    for (size_t i = 0; rc == 0 && i < ls->n_dests; i++)
        rc = desired_dest(st, &want, sn, ke, &ls->dests[i], ls->owner);
    for (size_t i = 0; rc == 0 && ke && i < ke->n_dests; i++) {
        bool wanted = false;
        for (size_t j = 0; j < ls->n_dests && !wanted; j++) {
            struct ipvs_dest d;
            reconcile_lb_to_ipvs_dest(&ls->dests[j], &d);
            wanted = ipvs_dest_cmp(&want, &d, &ke->dests[i]) == 0;
        }
        if (wanted)
            continue;
        const struct ipvs_dest *kd = &ke->dests[i];
        bool draining = kd->weight == 0 && want.protocol != IPPROTO_UDP;
        if (draining)
            snprintf(a, sizeof a, "%s w=0 active=%u inactive=%u", ipvs_fwd_name(kd->fwd),
                     kd->active_conns, kd->inact_conns);
        rc = row(st, draining ? "draining" : "extra", sn, ipvs_dest_str(&want, kd, dn, sizeof dn),
                 NULL, draining ? a : dest_desc(kd, a, sizeof a), ls->owner);
    }
    st->in_unknown = false;
    return rc;
}

/* True when the desired table has a service with e's identity. */
static bool is_desired(const lb_table *t, const struct ipvs_entry *e)
{
    for (size_t i = 0; i < t->n_services; i++) {
        struct ipvs_service s;
        reconcile_lb_to_ipvs_service(&t->services[i], &s);
        if (ipvs_service_cmp(&s, &e->svc) == 0)
            return true;
    }
    return false;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct ipvs_entry *x = *(const struct ipvs_entry *const *)a;
    const struct ipvs_entry *y = *(const struct ipvs_entry *const *)b;
    return ipvs_service_cmp(&x->svc, &y->svc);
}

/* Rows of the kernel services nothing desires, sorted: stale when owned, else foreign. */
static int kernel_only(struct status *st, const lb_table *t, const struct ipvs_table *k,
                       const reconcile *owned)
{
    const struct ipvs_entry **v = calloc(k->n ? k->n : 1, sizeof *v);
    size_t n = 0;
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < k->n; i++)
        if (!is_desired(t, &k->entries[i]))
            v[n++] = &k->entries[i];
    qsort(v, n, sizeof *v, entry_cmp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool mine = owned && reconcile_owns(owned, &v[i]->svc);
        const char *state = mine ? "stale" : "foreign";
        char sn[80], dn[80], a[96];
        ipvs_service_str(&v[i]->svc, sn, sizeof sn);
        st->foreign += !mine;
        st->in_unknown = mine && st->scope.frontend; /* may be the unknown frontend's */
        rc = row(st, state, sn, NULL, NULL, svc_desc(&v[i]->svc, a, sizeof a), NULL);
        for (size_t j = 0; rc == 0 && j < v[i]->n_dests; j++)
            rc = row(st, state, sn, ipvs_dest_str(&v[i]->svc, &v[i]->dests[j], dn, sizeof dn),
                     NULL, dest_desc(&v[i]->dests[j], a, sizeof a), NULL);
    }
    st->in_unknown = false;
    free(v);
    return rc;
}

/* The owned set clusterf-ipvs saved, or NULL (none, or unreadable: then said on o->err). */
static reconcile *load_owned(const ctl_options *o, ipvs_conn *conn)
{
    if (!o->state_path)
        return NULL;
    struct ipvs_iface k = ipvs_conn_iface(conn);
    k.apply = NULL; /* read-only: status changes neither the kernel nor the state file */
    reconcile *r = NULL;
    char err[320];
    int rc = reconcile_new(&k, o->state_path, &r, err, sizeof err);
    if (rc != 0) { /* < 0, or RECONCILE_STATE_SET_ASIDE: r owns nothing */
        fprintf(o->err, "clusterfctl: status: warning: %s; services only in the kernel are "
                "shown as foreign\n", err);
        reconcile_free(r);
        return NULL;
    }
    return r;
}

/* Print the rows and the summary line. */
static void status_print(struct status *st, const ctl_report *rep)
{
    const ctl_options *o = st->o;
    if (st->rows) {
        struct json_object *root = json_object_new_object();
        json_object_object_add(root, "in_sync",
                               json_object_new_boolean(st->drift == 0 && st->unknown == 0));
        json_object_object_add(root, "drift", json_object_new_int64((int64_t)st->drift));
        json_object_object_add(root, "unknown", json_object_new_int64((int64_t)st->unknown));
        json_object_object_add(root, "unknown_keys", ctl_json_strs(&rep->unknown));
        json_object_object_add(root, "foreign", json_object_new_int64((int64_t)st->foreign));
        json_object_object_add(root, "draining", json_object_new_int64((int64_t)st->draining));
        json_object_object_add(root, "revision", json_object_new_int64(rep->revision));
        json_object_object_add(root, "rows", json_object_get(st->rows));
        json_object_object_add(root, "errors", ctl_json_strs(&rep->errors));
        ctl_json_print(root, o->out);
        return;
    }
    ctl_table_print(&st->table, o->out);
    for (size_t i = 0; i < rep->errors.n; i++)
        fprintf(o->err, "warning: invalid key skipped or kept at its last valid value: %s\n",
                rep->errors.v[i]);
    ctl_print_unknown(rep, o->out);
    if (st->drift)
        fprintf(o->out, "DRIFT: %zu difference(s) between the desired table and the kernel's",
                st->drift);
    else if (st->unknown)
        fprintf(o->out, "UNKNOWN: no drift in what can be checked, but %zu service(s) depend on "
                "keys whose last valid value is gone from etcd's history", st->unknown);
    else
        fprintf(o->out, "in sync: %zu service(s), %zu destination(s)", st->services, st->dests);
    if (st->drift && st->unknown)
        fprintf(o->out, "; %zu service(s) unknown", st->unknown);
    if (st->draining)
        fprintf(o->out, "; %zu destination(s) draining", st->draining);
    fprintf(o->out, "; %zu foreign service(s) left alone\n", st->foreign);
}

/* Read the kernel table: 0, or -errno after saying why on o->err. */
static int kernel_read(const ctl_options *o, ipvs_conn **conn, struct ipvs_table **k)
{
    struct ipvs_err err = {0};
    int rc = ipvs_conn_new(conn, &err);
    if (rc == 0)
        rc = ipvs_dump(*conn, k, &err);
    if (rc < 0)
        fprintf(o->err, "clusterfctl: status: %s\n", err.msg[0] ? err.msg : strerror(-rc));
    return rc;
}

int ctl_status(const ctl_options *o)
{
    config_store *cfg = NULL;
    ctl_report rep = {0};
    lb_table t;
    lb_table_init(&t);
    ipvs_conn *conn = NULL;
    struct ipvs_table *k = NULL;
    reconcile *owned = NULL;
    struct status st = {.o = o, .table = {.ncols = 6}};
    static const char *const head[] = {"STATE", "SERVICE", "DEST", "DESIRED", "KERNEL", "OWNER"};
    int status = CTL_EXIT_USAGE, rc;
    if (ctl_load(o, &cfg, &rep) < 0 || kernel_read(o, &conn, &k) < 0)
        goto out;
    owned = load_owned(o, conn);
    rc = scope_of_unknown(&st, &rep);
    if (rc == 0)
        rc = lb_compute_all(cfg, &t);
    if (rc == 0 && o->json && !(st.rows = json_object_new_array()))
        rc = -ENOMEM;
    if (rc == 0 && !o->json)
        rc = ctl_table_row(&st.table, head);
    for (size_t i = 0; rc == 0 && i < t.n_services; i++)
        rc = desired_service(&st, &t.services[i], k);
    if (rc == 0)
        rc = kernel_only(&st, &t, k, owned);
    if (rc < 0) {
        fprintf(o->err, "clusterfctl: status: %s\n", strerror(-rc));
        goto out;
    }
    status_print(&st, &rep);
    status = st.drift ? CTL_EXIT_PROBLEM : st.unknown ? CTL_EXIT_UNKNOWN : CTL_EXIT_OK;
out:
    config_strs_clear(&st.scope.services);
    json_object_put(st.rows);
    ctl_table_free(&st.table);
    reconcile_free(owned);
    ipvs_table_free(k);
    ipvs_conn_free(conn);
    lb_table_free(&t);
    config_store_free(cfg);
    ctl_report_free(&rep);
    return status;
}
