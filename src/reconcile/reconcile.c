/* reconcile.c -- diff the desired table against the kernel mirror, apply the ops, and update
 * the mirror and the owned set from what the kernel accepted.
 *
 * Op order inside one pass: unwanted owned services are deleted first (their keys may be
 * reused by a new service in the same pass); then for each desired service: add or edit the
 * service, delete stale dests, edit changed ones, add new ones. The kernel runs a batch in
 * order, so one batch carries a whole pass. */
#include "reconcile/reconcile_int.h"

#include "common/vec.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- conversions ---- */

void reconcile_lb_to_ipvs_service(const lb_service *in, struct ipvs_service *out)
{
    memset(out, 0, sizeof *out);
    out->af = in->af;
    out->fwmark = in->fwmark;
    if (!in->fwmark) {
        out->protocol = in->protocol;
        out->port = in->port;
        memcpy(out->addr, in->addr, sizeof out->addr);
    }
    snprintf(out->sched, sizeof out->sched, "%s", in->sched);
    out->flags = in->flags;
    out->timeout = in->timeout;
    /* lb gives the IPv4 netmask as a mask, ipvs/ takes prefix lengths. */
    out->netmask = in->af == AF_INET ? (uint32_t)__builtin_popcount(in->netmask) : in->netmask;
}

void reconcile_lb_to_ipvs_dest(const lb_dest *in, struct ipvs_dest *out)
{
    memset(out, 0, sizeof *out);
    out->af = in->af;
    memcpy(out->addr, in->addr, sizeof out->addr);
    out->port = in->port;
    out->fwd = in->fwd;
    out->weight = in->weight;
}

/* ---- the mirror ---- */

static void mentry_free(mentry *m)
{
    if (m) {
        free(m->dests);
        free(m);
    }
}

static mentry *mirror_get(const reconcile *r, const svc_id *id)
{
    return bytemap_get(&r->mirror, id, sizeof *id);
}

static void mirror_clear(reconcile *r)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->mirror, &pos, &e))
        mentry_free(e->val);
    bytemap_clear(&r->mirror);
}

static void mirror_remove(reconcile *r, const svc_id *id)
{
    mentry_free(bytemap_del(&r->mirror, id, sizeof *id));
}

/* The mirror entry of svc, created empty when absent (NULL on -ENOMEM). */
static mentry *mirror_upsert(reconcile *r, const struct ipvs_service *svc)
{
    svc_id id;
    svc_id_of(svc, &id);
    mentry *m = mirror_get(r, &id);
    if (!m) {
        m = calloc(1, sizeof *m);
        if (m)
            m->id = id;
        if (!m || bytemap_put(&r->mirror, &m->id, sizeof m->id, m) < 0) {
            free(m);
            return NULL;
        }
    }
    struct ipvs_stats keep = m->svc.stats;
    m->svc = *svc;
    m->svc.stats = keep;
    return m;
}

/* Index of the first dest >= d in m (binary search). */
static size_t mentry_lower(const mentry *m, const struct ipvs_dest *d)
{
    size_t lo = 0, hi = m->n_dests;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ipvs_dest_cmp(&m->svc, &m->dests[mid], d) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Insert or replace d in m, keeping dests sorted. 0 or -ENOMEM. */
static int mentry_put_dest(mentry *m, const struct ipvs_dest *d)
{
    size_t i = mentry_lower(m, d);
    if (i < m->n_dests && ipvs_dest_cmp(&m->svc, &m->dests[i], d) == 0) {
        m->dests[i] = *d;
        return 0;
    }
    if (vec_grow((void **)&m->dests, &m->cap, m->n_dests + 1, sizeof *m->dests) < 0)
        return -ENOMEM;
    memmove(&m->dests[i + 1], &m->dests[i], (m->n_dests - i) * sizeof *m->dests);
    m->dests[i] = *d;
    m->n_dests++;
    return 0;
}

static void mentry_del_dest(mentry *m, const struct ipvs_dest *d)
{
    size_t i = mentry_lower(m, d);
    if (i < m->n_dests && ipvs_dest_cmp(&m->svc, &m->dests[i], d) == 0) {
        memmove(&m->dests[i], &m->dests[i + 1], (m->n_dests - i - 1) * sizeof *m->dests);
        m->n_dests--;
    }
}

static int dest_sort_cmp(const void *a, const void *b, void *svc)
{
    return ipvs_dest_cmp(svc, a, b);
}

/* Replace the mirror with a kernel dump. 0 or -ENOMEM. */
static int mirror_load(reconcile *r, const struct ipvs_table *t)
{
    mirror_clear(r);
    for (size_t i = 0; i < t->n; i++) {
        const struct ipvs_entry *e = &t->entries[i];
        mentry *m = mirror_upsert(r, &e->svc);
        if (!m)
            return -ENOMEM;
        if (e->n_dests) {
            m->dests = malloc(e->n_dests * sizeof *m->dests);
            if (!m->dests)
                return -ENOMEM;
            memcpy(m->dests, e->dests, e->n_dests * sizeof *m->dests);
            m->n_dests = m->cap = e->n_dests;
            qsort_r(m->dests, m->n_dests, sizeof *m->dests, dest_sort_cmp, &m->svc);
        }
    }
    return 0;
}

/* ---- diff ---- */

/* Ops that turn the mirror's dests of svc into want (sorted, n entries). */
static int diff_dests(const struct ipvs_service *svc, const mentry *m,
                      const struct ipvs_dest *want, size_t n, struct ipvs_batch *ops)
{
    size_t have_n = m ? m->n_dests : 0, i = 0, j = 0;
    int rc = 0;
    /* Deletes first, then edits and adds: a pass never holds two dests for one slot. */
    for (int phase = 0; phase < 2 && rc == 0; phase++) {
        for (i = 0, j = 0; rc == 0 && (i < have_n || j < n);) {
            int c = i == have_n ? 1 : j == n ? -1 : ipvs_dest_cmp(svc, &m->dests[i], &want[j]);
            if (c < 0) {
                if (phase == 0)
                    rc = ipvs_batch_push(ops, IPVS_OP_DEL_DEST, svc, &m->dests[i]);
                i++;
            } else if (c > 0) {
                if (phase == 1)
                    rc = ipvs_batch_push(ops, IPVS_OP_ADD_DEST, svc, &want[j]);
                j++;
            } else {
                if (phase == 1 && !ipvs_dest_same_config(&m->dests[i], &want[j]))
                    rc = ipvs_batch_push(ops, IPVS_OP_EDIT_DEST, svc, &want[j]);
                i++, j++;
            }
        }
    }
    return rc;
}

/* Ops that make the kernel hold desired service s with its dests. */
static int diff_service(reconcile *r, const lb_service *s, struct ipvs_batch *ops)
{
    struct ipvs_service svc;
    reconcile_lb_to_ipvs_service(s, &svc);
    svc_id id;
    svc_id_of(&svc, &id);
    const mentry *m = mirror_get(r, &id);
    /* A service the config names is clusterf's from now on, even if someone else made it. */
    int rc = m ? owned_add(r, &id) : 0;
    if (rc < 0)
        return rc;
    if (!m)
        rc = ipvs_batch_push(ops, IPVS_OP_ADD_SERVICE, &svc, NULL);
    else if (!ipvs_service_same_config(&m->svc, &svc))
        rc = ipvs_batch_push(ops, IPVS_OP_EDIT_SERVICE, &svc, NULL);
    struct ipvs_dest *want = s->n_dests ? malloc(s->n_dests * sizeof *want) : NULL;
    if (rc == 0 && s->n_dests && !want)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->n_dests; i++)
        reconcile_lb_to_ipvs_dest(&s->dests[i], &want[i]);
    if (rc == 0 && s->n_dests)
        qsort_r(want, s->n_dests, sizeof *want, dest_sort_cmp, &svc);
    if (rc == 0)
        rc = diff_dests(&svc, m, want, s->n_dests, ops);
    free(want);
    return rc;
}

/* Delete svc if clusterf owns it; a foreign service is left alone. */
static int diff_unwanted(reconcile *r, const svc_id *id, struct ipvs_batch *ops)
{
    const mentry *m = mirror_get(r, id);
    if (!m || !owned_has(r, id))
        return 0;
    return ipvs_batch_push(ops, IPVS_OP_DEL_SERVICE, &m->svc, NULL);
}

/* ---- applying and learning from the answers ---- */

static bool op_is_surprise(const struct ipvs_op *op)
{
    return op->outcome == IPVS_ALREADY ||
           (op->outcome == IPVS_FAILED &&
            (op->error == -ESRCH || op->error == -ENOENT || op->error == -EEXIST));
}

/* Update the mirror, the owned set and the counters from one answered op. */
static int learn_op(reconcile *r, const struct ipvs_op *op, reconcile_result *res)
{
    svc_id id;
    svc_id_of(&op->svc, &id);
    mentry *m = mirror_get(r, &id);
    bool ok = op->outcome == IPVS_APPLIED || op->outcome == IPVS_ALREADY;
    if (op_is_surprise(op)) {
        res->surprises++;
        r->needs_full = true;
    }
    if (!ok) {
        res->failed++;
        return 0;
    }
    bool applied = op->outcome == IPVS_APPLIED;
    switch (op->kind) {
    case IPVS_OP_ADD_SERVICE:
    case IPVS_OP_EDIT_SERVICE:
        res->svc_added += applied && op->kind == IPVS_OP_ADD_SERVICE;
        res->svc_changed += applied && op->kind == IPVS_OP_EDIT_SERVICE;
        if (!mirror_upsert(r, &op->svc))
            return -ENOMEM;
        return owned_add(r, &id);
    case IPVS_OP_DEL_SERVICE:
        res->svc_deleted += applied;
        mirror_remove(r, &id);
        owned_remove(r, &id);
        return 0;
    case IPVS_OP_ADD_DEST:
    case IPVS_OP_EDIT_DEST:
        res->dest_added += applied && op->kind == IPVS_OP_ADD_DEST;
        res->dest_changed += applied && op->kind == IPVS_OP_EDIT_DEST;
        return m ? mentry_put_dest(m, &op->dest) : 0;
    case IPVS_OP_DEL_DEST:
        res->dest_deleted += applied;
        if (m)
            mentry_del_dest(m, &op->dest);
        return 0;
    case IPVS_OP_FLUSH:
        mirror_clear(r);
        return 0;
    }
    return 0;
}

/* Send res->ops to the kernel and learn from every answer; then save the owned set. */
static int apply_ops(reconcile *r, reconcile_result *res)
{
    int rc = 0;
    if (res->ops.n) {
        struct ipvs_err err = {0};
        rc = r->kernel.apply(r->kernel.self, res->ops.ops, res->ops.n, &err);
        if (rc < 0) {
            snprintf(res->error, sizeof res->error, "%s", err.msg);
            r->needs_full = true;
        }
    }
    for (size_t i = 0; i < res->ops.n; i++) {
        int lrc = learn_op(r, &res->ops.ops[i], res);
        if (lrc < 0 && rc == 0)
            rc = lrc;
    }
    int src = state_save(r, res->error, sizeof res->error);
    return rc < 0 ? rc : src;
}

/* ---- the names index: which IPVS services each clusterf service desired ---- */

static void named_free(named *n)
{
    if (n) {
        free(n->name);
        free(n->ids);
        free(n);
    }
}

static void names_clear(reconcile *r)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->names, &pos, &e))
        named_free(e->val);
    bytemap_clear(&r->names);
}

/* Record that `name` now desires the services of t whose owner is name. 0 or -ENOMEM. */
static int names_set(reconcile *r, const char *name, const lb_table *t)
{
    named_free(bytemap_del(&r->names, name, strlen(name)));
    size_t n = 0;
    for (size_t i = 0; i < t->n_services; i++)
        n += strcmp(t->services[i].owner, name) == 0;
    if (!n)
        return 0;
    named *nm = calloc(1, sizeof *nm);
    if (!nm || !(nm->name = strdup(name)) || !(nm->ids = calloc(n, sizeof *nm->ids))) {
        named_free(nm);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->n_services; i++) {
        if (strcmp(t->services[i].owner, name) != 0)
            continue;
        struct ipvs_service svc;
        reconcile_lb_to_ipvs_service(&t->services[i], &svc);
        svc_id_of(&svc, &nm->ids[nm->n++]);
    }
    if (bytemap_put(&r->names, nm->name, strlen(nm->name), nm) < 0) {
        named_free(nm);
        return -ENOMEM;
    }
    return 0;
}

/* True when t holds a service with identity id. */
static bool table_has(const lb_table *t, const svc_id *id)
{
    for (size_t i = 0; i < t->n_services; i++) {
        struct ipvs_service svc;
        svc_id other;
        reconcile_lb_to_ipvs_service(&t->services[i], &svc);
        svc_id_of(&svc, &other);
        if (memcmp(&other, id, sizeof other) == 0)
            return true;
    }
    return false;
}

/* ---- public ---- */

int reconcile_new(const struct ipvs_iface *kernel, const char *state_path, reconcile **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    reconcile *r = calloc(1, sizeof *r);
    if (!r || (state_path && !(r->state_path = strdup(state_path)))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->kernel = *kernel;
    r->needs_full = true;
    int rc = state_load(r, err, errlen);
    if (rc < 0) {
        reconcile_free(r);
        return rc;
    }
    *out = r;
    return rc;
}

void reconcile_free(reconcile *r)
{
    if (!r)
        return;
    mirror_clear(r);
    owned_clear(r);
    names_clear(r);
    free(r->state_path);
    free(r);
}

void reconcile_result_free(reconcile_result *res)
{
    if (!res)
        return;
    ipvs_batch_release(&res->ops);
    memset(res, 0, sizeof *res);
}

size_t reconcile_result_changes(const reconcile_result *res)
{
    return res->svc_added + res->svc_changed + res->svc_deleted + res->dest_added +
           res->dest_changed + res->dest_deleted;
}

int reconcile_flush(reconcile *r, reconcile_result *res)
{
    int rc = ipvs_batch_push(&res->ops, IPVS_OP_FLUSH, NULL, NULL);
    if (rc < 0)
        return rc;
    owned_clear(r);
    return apply_ops(r, res);
}

/* Every owned service in the mirror that desired does not hold: delete ops. */
static int diff_all_unwanted(reconcile *r, const lb_table *desired, bytemap *want,
                             reconcile_result *res)
{
    for (size_t i = 0; i < desired->n_services; i++) {
        struct ipvs_service svc;
        svc_id *id = malloc(sizeof *id);
        if (!id)
            return -ENOMEM;
        reconcile_lb_to_ipvs_service(&desired->services[i], &svc);
        svc_id_of(&svc, id);
        if (bytemap_put(want, id, sizeof *id, id) < 0) {
            free(id);
            return -ENOMEM;
        }
    }
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->mirror, &pos, &e)) {
        const mentry *m = e->val;
        if (!bytemap_get(want, &m->id, sizeof m->id)) {
            int rc = diff_unwanted(r, &m->id, &res->ops);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Drop owned services that are neither in the kernel nor desired: nothing left to clean. */
static int forget_vanished(reconcile *r, const bytemap *want)
{
    svc_id *gone = NULL;
    size_t n = 0, pos = 0;
    bytemap_entry *e = NULL;
    if (r->owned.n && !(gone = malloc(r->owned.n * sizeof *gone)))
        return -ENOMEM;
    while (bytemap_next(&r->owned, &pos, &e))
        if (!mirror_get(r, e->val) && !bytemap_get(want, e->val, sizeof(svc_id)))
            gone[n++] = *(svc_id *)e->val;
    for (size_t i = 0; i < n; i++)
        owned_remove(r, &gone[i]);
    free(gone);
    return 0;
}

int reconcile_full(reconcile *r, const lb_table *desired, reconcile_result *res)
{
    struct ipvs_table *t = NULL;
    struct ipvs_err err = {0};
    int rc = r->kernel.dump(r->kernel.self, &t, &err);
    if (rc < 0) {
        snprintf(res->error, sizeof res->error, "dump: %s", err.msg);
        return rc;
    }
    rc = mirror_load(r, t);
    ipvs_table_free(t);
    r->needs_full = false;
    bytemap want = {0};
    if (rc == 0)
        rc = diff_all_unwanted(r, desired, &want, res);
    if (rc == 0)
        rc = forget_vanished(r, &want);
    for (size_t i = 0; rc == 0 && i < desired->n_services; i++)
        rc = diff_service(r, &desired->services[i], &res->ops);
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&want, &pos, &e))
        free(e->val);
    bytemap_clear(&want);
    names_clear(r);
    for (size_t i = 0; rc == 0 && i < desired->n_services; i++)
        if (!bytemap_get(&r->names, desired->services[i].owner, strlen(desired->services[i].owner)))
            rc = names_set(r, desired->services[i].owner, desired);
    if (rc < 0) {
        snprintf(res->error, sizeof res->error, "%s", strerror(-rc));
        return rc;
    }
    return apply_ops(r, res);
}

int reconcile_service(reconcile *r, const char *name, const lb_table *desired,
                      reconcile_result *res)
{
    const named *old = bytemap_get(&r->names, name, strlen(name));
    int rc = 0;
    for (size_t i = 0; old && rc == 0 && i < old->n; i++)
        if (!table_has(desired, &old->ids[i]))
            rc = diff_unwanted(r, &old->ids[i], &res->ops);
    for (size_t i = 0; rc == 0 && i < desired->n_services; i++)
        rc = diff_service(r, &desired->services[i], &res->ops);
    if (rc == 0)
        rc = names_set(r, name, desired);
    if (rc < 0) {
        snprintf(res->error, sizeof res->error, "%s", strerror(-rc));
        return rc;
    }
    return apply_ops(r, res);
}

bool reconcile_needs_full(const reconcile *r)
{
    return r->needs_full;
}

size_t reconcile_owned_count(const reconcile *r)
{
    return r->owned.n;
}

bool reconcile_owns(const reconcile *r, const struct ipvs_service *svc)
{
    svc_id id;
    svc_id_of(svc, &id);
    return owned_has(r, &id);
}

size_t reconcile_mirror_count(const reconcile *r)
{
    return r->mirror.n;
}
