/* reconcile.c -- diff the desired table against the kernel mirror, apply the ops, and update
 * the mirror and the owned set from what the kernel accepted.
 *
 * Op order inside one pass: unwanted owned services are deleted first; then for each desired
 * service: add or edit the service, delete stale dests, edit changed ones, add new ones. Ops
 * go to the kernel in batches of at most BATCH_OPS, in that order, so memory does not grow
 * with the size of a pass. A full pass walks the table one service at a time (its dests are
 * dumped when it is diffed), so it can be sliced; an incremental pass touches only the
 * services of the clusterf services it is given. Every per-service lookup is a hash lookup:
 * no pass does work per service that grows with the size of the table. */
#include "reconcile/reconcile_int.h"

#include "common/timeutil.h"
#include "common/vec.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ops sent per exchange with the kernel; bounds the memory of a pass. */
#define BATCH_OPS 2048
/* Failed ops whose services are told apart in one pass (past that, all are unsettled). */
#define FAIL_IDS_MAX 64
/* Services per part of the service dump that begins a full pass (a datagram more at most). */
#define RECONCILE_LOAD_PART 64
/* During a sliced full pass, the owned set is written at most this often (and at its end). */
#define SAVE_EVERY_MS 1000

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

/* The identity of desired service s. */
static void lb_svc_id(const lb_service *s, svc_id *out)
{
    struct ipvs_service svc;
    reconcile_lb_to_ipvs_service(s, &svc);
    svc_id_of(&svc, out);
}

/* Say in res that the dest dump of svc failed; returns rc. */
static int dump_failed(reconcile_result *res, const struct ipvs_service *svc,
                       const struct ipvs_err *err, int rc)
{
    snprintf(res->error, sizeof res->error, "dump of %s: %s",
             ipvs_service_str(svc, (char[96]){0}, 96), err->msg);
    return rc;
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
    bytemap_clear(&r->draining);
}

static void mirror_remove(reconcile *r, const svc_id *id)
{
    bytemap_del(&r->draining, id, sizeof *id);
    mentry_free(bytemap_del(&r->mirror, id, sizeof *id));
}

/* The mirror entry of svc, created empty (dests known: none) when absent; NULL on -ENOMEM. */
static mentry *mirror_upsert(reconcile *r, const struct ipvs_service *svc)
{
    svc_id id;
    svc_id_of(svc, &id);
    mentry *m = mirror_get(r, &id);
    if (!m) {
        m = calloc(1, sizeof *m);
        if (m) {
            m->id = id;
            m->dests_known = true;
        }
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

/* d of svc as the mirror keeps it. */
static void mdest_from(const struct ipvs_service *svc, const struct ipvs_dest *d, mdest *out)
{
    memset(out, 0, sizeof *out);
    out->af = d->af ? d->af : svc->af;
    memcpy(out->addr, d->addr, out->af == AF_INET ? 4 : 16);
    out->port = d->port;
    out->fwd = d->fwd;
    out->weight = d->weight;
    out->u_thresh = d->u_thresh;
    out->l_thresh = d->l_thresh;
    out->tun_port = d->tun_port;
    out->tun_flags = d->tun_flags;
    out->tun_type = d->tun_type;
}

static void mdest_to(const mdest *m, struct ipvs_dest *out)
{
    memset(out, 0, sizeof *out);
    out->af = m->af;
    memcpy(out->addr, m->addr, sizeof out->addr);
    out->port = m->port;
    out->fwd = m->fwd;
    out->weight = m->weight;
    out->u_thresh = m->u_thresh;
    out->l_thresh = m->l_thresh;
    out->tun_port = m->tun_port;
    out->tun_flags = m->tun_flags;
    out->tun_type = m->tun_type;
}

/* The order of ipvs_dest_cmp: family, address, port. */
static int mdest_cmp(const void *pa, const void *pb)
{
    const mdest *a = pa, *b = pb;
    if (a->af != b->af)
        return a->af < b->af ? -1 : 1;
    int r = memcmp(a->addr, b->addr, sizeof a->addr);
    if (r)
        return r;
    return a->port < b->port ? -1 : a->port > b->port;
}

/* Index of the first dest >= d in m (binary search). */
static size_t mentry_lower(const mentry *m, const mdest *d)
{
    size_t lo = 0, hi = m->n_dests;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mdest_cmp(&m->dests[mid], d) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Insert or replace d in m, keeping dests sorted. 0 or -ENOMEM. */
static int mentry_put_dest(mentry *m, const struct ipvs_dest *d)
{
    mdest md;
    mdest_from(&m->svc, d, &md);
    size_t i = mentry_lower(m, &md);
    if (i < m->n_dests && mdest_cmp(&m->dests[i], &md) == 0) {
        md.drain_until = m->dests[i].drain_until; /* the drain mark is clusterf's, not the op's */
        m->dests[i] = md;
        return 0;
    }
    if (vec_grow((void **)&m->dests, &m->cap, m->n_dests + 1, sizeof *m->dests) < 0)
        return -ENOMEM;
    memmove(&m->dests[i + 1], &m->dests[i], (m->n_dests - i) * sizeof *m->dests);
    m->dests[i] = md;
    m->n_dests++;
    return 0;
}

/* The dest of m equal to d (by address and port), or NULL. */
static mdest *mentry_find(mentry *m, const struct ipvs_dest *d)
{
    mdest md;
    mdest_from(&m->svc, d, &md);
    size_t i = mentry_lower(m, &md);
    return i < m->n_dests && mdest_cmp(&m->dests[i], &md) == 0 ? &m->dests[i] : NULL;
}

/* Mark md of m draining until `until`, or not draining (until = 0). 0 or -ENOMEM. */
static int drain_mark(reconcile *r, mentry *m, mdest *md, int64_t until)
{
    if (!md->drain_until == !until) {
        md->drain_until = until;
        return 0;
    }
    if (until && !m->n_draining && bytemap_put(&r->draining, &m->id, sizeof m->id, m) < 0)
        return -ENOMEM;
    md->drain_until = until;
    m->n_draining += until ? 1 : -1;
    if (!m->n_draining)
        bytemap_del(&r->draining, &m->id, sizeof m->id);
    return 0;
}

static void mentry_del_dest(reconcile *r, mentry *m, const struct ipvs_dest *d)
{
    mdest *md = mentry_find(m, d);
    if (!md)
        return;
    drain_mark(r, m, md, 0);
    size_t i = (size_t)(md - m->dests);
    memmove(&m->dests[i], &m->dests[i + 1], (m->n_dests - i - 1) * sizeof *m->dests);
    m->n_dests--;
}

static int dest_sort_cmp(const void *a, const void *b, void *svc)
{
    return ipvs_dest_cmp(svc, a, b);
}

/* The kernel's dests of m's service, as the mirror keeps them, sorted: *out (n of them;
 * never NULL on success, caller frees). 0 or -errno (err). */
static int mentry_dump_dests(reconcile *r, const mentry *m, mdest **out, size_t *n,
                             struct ipvs_err *err, int64_t *kernel_us)
{
    struct ipvs_dest *dests = NULL;
    int64_t t0 = clock_now_us();
    int rc = r->kernel.dump_dests(r->kernel.self, &m->svc, &dests, n, err);
    *kernel_us += clock_now_us() - t0;
    if (rc < 0)
        return rc;
    mdest *md = malloc((*n ? *n : 1) * sizeof *md);
    if (!md) {
        free(dests);
        return -ENOMEM;
    }
    for (size_t i = 0; i < *n; i++)
        mdest_from(&m->svc, &dests[i], &md[i]);
    free(dests);
    qsort(md, *n, sizeof *md, mdest_cmp);
    *out = md;
    return 0;
}

/* Make md (n, sorted, from a dump) m's dests; the drain marks of the dests still there are
 * carried over (drains outlive a dump). Takes md. */
static void mentry_set_dests(reconcile *r, mentry *m, mdest *md, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0, j = 0; i < m->n_dests && j < n;) {
        int c = mdest_cmp(&m->dests[i], &md[j]);
        if (c == 0 && m->dests[i].drain_until)
            md[j].drain_until = m->dests[i].drain_until, kept++;
        i += c <= 0, j += c >= 0;
    }
    free(m->dests);
    m->dests = md;
    m->n_dests = m->cap = n;
    m->n_draining = kept;
    if (!kept)
        bytemap_del(&r->draining, &m->id, sizeof m->id);
    m->dests_known = true;
}

/* Make m know its dests: dump them from the kernel when it does not. 0 or -errno (err). */
static int mentry_load_dests(reconcile *r, mentry *m, struct ipvs_err *err, int64_t *kernel_us)
{
    if (m->dests_known)
        return 0;
    mdest *md = NULL;
    size_t n = 0;
    int rc = mentry_dump_dests(r, m, &md, &n, err, kernel_us);
    if (rc == 0)
        mentry_set_dests(r, m, md, n);
    return rc;
}

/* True when the dests a and b (n each, sorted) are the same dests with the same config. */
static bool mdests_same(const struct ipvs_service *svc, const mdest *a, const mdest *b,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ipvs_dest da, db;
        mdest_to(&a[i], &da);
        mdest_to(&b[i], &db);
        if (mdest_cmp(&a[i], &b[i]) != 0 || ipvs_dest_cmp(svc, &da, &db) != 0 ||
            !ipvs_dest_same_config(&da, &db))
            return false;
    }
    return true;
}

/* Merge a part of a service dump (svcs) into the mirror: new services are added, and none of
 * these has its dests known any more. 0 or -ENOMEM. */
static int mirror_sync_part(reconcile *r, const struct ipvs_service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        svc_id id;
        svc_id_of(&svcs[i], &id);
        const mentry *old = mirror_get(r, &id);
        bool changed = !old || !ipvs_service_same_config(&old->svc, &svcs[i]);
        mentry *m = mirror_upsert(r, &svcs[i]);
        if (!m)
            return -ENOMEM;
        m->changed = changed;
        m->seen = r->load;
        m->dests_known = false; /* the dests stay until the next dump: they hold drain marks */
    }
    return 0;
}

/* The service dump is complete: drop the services it did not show. 0 or -ENOMEM. */
static int mirror_drop_unseen(reconcile *r)
{
    svc_id *gone = NULL;
    size_t n_gone = 0, cap = 0, pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->mirror, &pos, &e)) {
        if (((mentry *)e->val)->seen == r->load)
            continue;
        if (vec_grow((void **)&gone, &cap, n_gone + 1, sizeof *gone) < 0) {
            free(gone);
            return -ENOMEM;
        }
        gone[n_gone++] = ((mentry *)e->val)->id;
    }
    for (size_t i = 0; i < n_gone; i++)
        mirror_remove(r, &gone[i]);
    free(gone);
    return 0;
}

/* Stop a service dump under way (nothing of it is kept). */
static void load_stop(reconcile *r)
{
    if (r->loading && r->kernel.dump_services_stop)
        r->kernel.dump_services_stop(r->kernel.self);
    r->loading = false;
    r->load_part.n = 0;
}

/* ---- applying and learning from the answers ---- */

static bool op_is_surprise(const struct ipvs_op *op)
{
    return op->outcome == IPVS_ALREADY ||
           (op->outcome == IPVS_FAILED &&
            (op->error == -ESRCH || op->error == -ENOENT || op->error == -EEXIST));
}

/* Remember that an op on service id failed or surprised (see names_settle). */
static void note_failed(reconcile *r, const svc_id *id)
{
    if (r->fail_ids_lost)
        return;
    if (r->n_fail_ids >= FAIL_IDS_MAX ||
        vec_grow((void **)&r->fail_ids, &r->cap_fail_ids, r->n_fail_ids + 1,
                 sizeof *r->fail_ids) < 0) {
        r->fail_ids_lost = true;
        return;
    }
    r->fail_ids[r->n_fail_ids++] = *id;
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
    if (!ok || op_is_surprise(op))
        note_failed(r, &id);
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
            mentry_del_dest(r, m, &op->dest);
        return 0;
    case IPVS_OP_FLUSH:
        mirror_clear(r);
        return 0;
    }
    return 0;
}

/* Send the pending ops to the kernel, learn from every answer and show each to the caller;
 * the batch is empty afterwards. 0, or -errno when the exchange broke (res->error). */
static int flush_ops(reconcile *r, reconcile_result *res)
{
    struct ipvs_batch *b = &r->batch;
    int rc = 0;
    if (b->n) {
        struct ipvs_err err = {0};
        int64_t t0 = clock_now_us();
        rc = r->kernel.apply(r->kernel.self, b->ops, b->n, &err);
        res->kernel_us += clock_now_us() - t0;
        if (rc < 0) {
            snprintf(res->error, sizeof res->error, "%s", err.msg);
            r->needs_full = true;
        }
    }
    for (size_t i = 0; i < b->n; i++) {
        int lrc = learn_op(r, &b->ops[i], res);
        if (lrc < 0 && rc == 0) {
            snprintf(res->error, sizeof res->error, "%s", strerror(-lrc));
            rc = lrc;
        }
        if (res->on_op)
            res->on_op(res->ctx, &b->ops[i]);
    }
    res->sent += b->n;
    b->n = 0;
    return rc;
}

/* Queue one op; the batch goes to the kernel when it is full. 0 or -errno. */
static int push_op(reconcile *r, reconcile_result *res, enum ipvs_op_kind kind,
                   const struct ipvs_service *svc, const struct ipvs_dest *d)
{
    int rc = ipvs_batch_push(&r->batch, kind, svc, d);
    if (rc < 0)
        return rc;
    return r->batch.n >= BATCH_OPS ? flush_ops(r, res) : 0;
}

/* Write the owned set when it changed (at most every SAVE_EVERY_MS unless forced). */
static int save_owned(reconcile *r, bool force, reconcile_result *res)
{
    int64_t now = clock_now_ms();
    if (!r->owned_dirty || (!force && now - r->saved_ms < SAVE_EVERY_MS))
        return 0;
    r->saved_ms = now;
    int64_t t0 = clock_now_us();
    int rc = state_save(r, res->error, sizeof res->error);
    res->save_us += clock_now_us() - t0;
    return rc;
}

/* ---- diff ---- */

/* Mark the mirror's dest d of svc draining until `until` (0: not draining). */
static int set_drain(reconcile *r, const struct ipvs_service *svc, const struct ipvs_dest *d,
                     int64_t until)
{
    svc_id id;
    svc_id_of(svc, &id);
    mentry *m = mirror_get(r, &id);
    mdest *md = m ? mentry_find(m, d) : NULL;
    return md ? drain_mark(r, m, md, until) : 0;
}

/* A dest the config no longer holds (drain_until: its mark, 0 when not draining). Without a
 * drain (UDP has no end of a connection) it is deleted at once; else it is set to weight 0,
 * so that it takes no new connections, and marked: the drain check deletes it later. */
static int dest_removed(reconcile *r, reconcile_result *res, const struct ipvs_service *svc,
                        const struct ipvs_dest *d, int64_t drain_until)
{
    if (!r->drain_ms || svc->protocol == IPPROTO_UDP)
        return push_op(r, res, IPVS_OP_DEL_DEST, svc, d);
    int64_t now = r->now_ms();
    if (drain_until)
        return now >= drain_until ? push_op(r, res, IPVS_OP_DEL_DEST, svc, d) : 0;
    int rc = set_drain(r, svc, d, now + r->drain_ms);
    res->dest_draining++;
    if (rc == 0 && d->weight != 0) {
        struct ipvs_dest quiet = *d;
        quiet.weight = 0;
        rc = push_op(r, res, IPVS_OP_EDIT_DEST, svc, &quiet);
    }
    return rc;
}

/* Ops that turn the mirror's dests of svc into want (sorted, n entries). */
static int diff_dests(reconcile *r, reconcile_result *res, const struct ipvs_service *svc,
                      const mentry *m, const struct ipvs_dest *want, size_t n)
{
    size_t have_n = m ? m->n_dests : 0, i = 0, j = 0;
    int rc = 0;
    /* Deletes (and drains) first, then edits and adds: a pass never holds two dests for one
     * slot. The mirror changes as batches are answered, so copy what is compared. */
    struct ipvs_dest *snap = have_n ? malloc(have_n * sizeof *snap) : NULL;
    int64_t *until = have_n ? malloc(have_n * sizeof *until) : NULL;
    if (have_n && (!snap || !until)) {
        free(snap);
        free(until);
        return -ENOMEM;
    }
    for (size_t k = 0; k < have_n; k++) {
        mdest_to(&m->dests[k], &snap[k]);
        until[k] = m->dests[k].drain_until;
    }
    for (int phase = 0; phase < 2 && rc == 0; phase++) {
        for (i = 0, j = 0; rc == 0 && (i < have_n || j < n);) {
            int c = i == have_n ? 1 : j == n ? -1 : ipvs_dest_cmp(svc, &snap[i], &want[j]);
            if (c < 0) {
                if (phase == 0)
                    rc = dest_removed(r, res, svc, &snap[i], until[i]);
                i++;
            } else if (c > 0) {
                if (phase == 1)
                    rc = push_op(r, res, IPVS_OP_ADD_DEST, svc, &want[j]);
                j++;
            } else {
                if (phase == 0 && until[i]) /* back while draining: restored below */
                    rc = set_drain(r, svc, &snap[i], 0);
                if (phase == 1 && !ipvs_dest_same_config(&snap[i], &want[j]))
                    rc = push_op(r, res, IPVS_OP_EDIT_DEST, svc, &want[j]);
                i++, j++;
            }
        }
    }
    free(snap);
    free(until);
    return rc;
}

/* The desired dests of s in the kernel's terms, sorted; *out is NULL when s has none. */
static int want_dests(const lb_service *s, const struct ipvs_service *svc, struct ipvs_dest **out)
{
    *out = NULL;
    if (!s->n_dests)
        return 0;
    struct ipvs_dest *want = malloc(s->n_dests * sizeof *want);
    if (!want)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_dests; i++)
        reconcile_lb_to_ipvs_dest(&s->dests[i], &want[i]);
    qsort_r(want, s->n_dests, sizeof *want, dest_sort_cmp, (void *)svc);
    *out = want;
    return 0;
}

/* Ops that make the kernel hold desired service s with its dests. */
static int diff_service(reconcile *r, const lb_service *s, reconcile_result *res)
{
    struct ipvs_service svc;
    reconcile_lb_to_ipvs_service(s, &svc);
    svc_id id;
    svc_id_of(&svc, &id);
    mentry *m = mirror_get(r, &id);
    struct ipvs_err err = {0};
    int rc = m ? mentry_load_dests(r, m, &err, &res->kernel_us) : 0;
    if (rc < 0)
        return dump_failed(res, &svc, &err, rc);
    /* A service the config names is clusterf's from now on, even if someone else made it. */
    rc = m ? owned_add(r, &id) : 0;
    if (rc == 0 && !m)
        rc = push_op(r, res, IPVS_OP_ADD_SERVICE, &svc, NULL);
    else if (rc == 0 && !ipvs_service_same_config(&m->svc, &svc))
        rc = push_op(r, res, IPVS_OP_EDIT_SERVICE, &svc, NULL);
    struct ipvs_dest *want = NULL;
    if (rc == 0)
        rc = want_dests(s, &svc, &want);
    if (rc == 0)
        rc = diff_dests(r, res, &svc, mirror_get(r, &id), want, s->n_dests);
    free(want);
    return rc;
}

/* Delete the service id if clusterf owns it; a foreign service is left alone. */
static int diff_unwanted(reconcile *r, const svc_id *id, reconcile_result *res)
{
    const mentry *m = mirror_get(r, id);
    if (!m || !owned_has(r, id))
        return 0;
    struct ipvs_service svc = m->svc;
    return push_op(r, res, IPVS_OP_DEL_SERVICE, &svc, NULL);
}

/* ---- which IPVS services each clusterf service desired: names and claims ---- */

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
    pos = 0, e = NULL;
    while (bytemap_next(&r->claims, &pos, &e))
        free(e->val);
    bytemap_clear(&r->claims);
}

/* Forget what name desired: its entry and the claims that are still its own. */
static void names_drop(reconcile *r, const char *name)
{
    named *nm = bytemap_del(&r->names, name, strlen(name));
    for (size_t i = 0; nm && i < nm->n; i++) {
        claim *c = bytemap_get(&r->claims, &nm->ids[i], sizeof(svc_id));
        if (c && c->by == nm)
            free(bytemap_del(&r->claims, &c->id, sizeof c->id));
    }
    named_free(nm);
}

/* The entry of name, created empty when absent. NULL on -ENOMEM. */
static named *names_upsert(reconcile *r, const char *name)
{
    named *nm = bytemap_get(&r->names, name, strlen(name));
    if (nm)
        return nm;
    nm = calloc(1, sizeof *nm);
    if (nm)
        nm->pass = r->pass;
    if (!nm || !(nm->name = strdup(name)) ||
        bytemap_put(&r->names, nm->name, strlen(nm->name), nm) < 0) {
        named_free(nm);
        return NULL;
    }
    return nm;
}

/* Record that s's owner desires s. The claim moves to the owner even if another name held
 * it (that name lost the key). In a full pass, a name's first claim starts its list anew
 * (entries and claims are reused, not rebuilt: a resync allocates nothing for them).
 * 0 or -ENOMEM. */
static int names_claim(reconcile *r, const lb_service *s)
{
    named *nm = names_upsert(r, s->owner);
    if (nm && r->full && nm->pass != r->pass) {
        nm->n = 0;
        nm->pass = r->pass;
    }
    if (!nm || vec_grow((void **)&nm->ids, &nm->cap, nm->n + 1, sizeof *nm->ids) < 0)
        return -ENOMEM;
    svc_id *id = &nm->ids[nm->n++];
    lb_svc_id(s, id);
    claim *c = bytemap_get(&r->claims, id, sizeof *id);
    if (c) {
        c->by = nm;
        c->pass = r->pass;
        return 0;
    }
    if (!(c = malloc(sizeof *c)))
        return -ENOMEM;
    c->id = *id;
    c->by = nm;
    c->pass = r->pass;
    if (bytemap_put(&r->claims, &c->id, sizeof c->id, c) < 0) {
        free(c);
        return -ENOMEM;
    }
    return 0;
}

/* At the end of a full pass: drop the claims and names it did not stamp (given up since the
 * last one), so they are the desired set. 0 or -ENOMEM. */
static int names_sweep(reconcile *r)
{
    svc_id *ids = NULL;
    named **gone = NULL;
    size_t n = 0, n_gone = 0, pos = 0;
    bytemap_entry *e = NULL;
    if ((r->claims.n && !(ids = malloc(r->claims.n * sizeof *ids))) ||
        (r->names.n && !(gone = malloc(r->names.n * sizeof *gone)))) {
        free(ids);
        return -ENOMEM;
    }
    while (bytemap_next(&r->claims, &pos, &e))
        if (((claim *)e->val)->pass != r->pass)
            ids[n++] = ((claim *)e->val)->id;
    for (size_t i = 0; i < n; i++)
        free(bytemap_del(&r->claims, &ids[i], sizeof ids[i]));
    pos = 0, e = NULL;
    while (bytemap_next(&r->names, &pos, &e))
        if (((named *)e->val)->pass != r->pass)
            gone[n_gone++] = e->val;
    for (size_t i = 0; i < n_gone; i++) {
        bytemap_del(&r->names, gone[i]->name, strlen(gone[i]->name));
        named_free(gone[i]);
    }
    free(ids);
    free(gone);
    return 0;
}

/* True when an op on service id failed since the last names_settle (or that is unknown). */
static bool failed_since(const reconcile *r, const svc_id *id)
{
    for (size_t i = 0; i < r->n_fail_ids; i++)
        if (memcmp(&r->fail_ids[i], id, sizeof *id) == 0)
            return true;
    return r->fail_ids_lost;
}

/* After the ops of the services of t were answered: their clusterf services are settled
 * unless an op on one of their services failed or surprised. Forgets those failures. */
static void names_settle(reconcile *r, const lb_table *t)
{
    for (int phase = 0; phase < 2; phase++) {
        for (size_t i = 0; i < t->n_services; i++) {
            const lb_service *s = &t->services[i];
            named *nm = bytemap_get(&r->names, s->owner, strlen(s->owner));
            svc_id id;
            lb_svc_id(s, &id);
            if (nm && phase == 0)
                nm->settled = true;
            else if (nm && failed_since(r, &id))
                nm->settled = false;
        }
    }
    r->n_fail_ids = 0;
    r->fail_ids_lost = false;
}

/* Shrink *items (cap of them, n used) to n: an array grown op by op doubles, and at a 100k
 * dest table the slack is megabytes. Keeps the array when realloc fails. */
static void fit(void **items, size_t *cap, size_t n, size_t elem)
{
    if (*cap <= n || !n)
        return;
    void *p = realloc(*items, n * elem);
    if (p) {
        *items = p;
        *cap = n;
    }
}

/* After a pass over the services of t: trim their mirror dests and their names' lists. */
static void part_fit(reconcile *r, const lb_table *t)
{
    for (size_t i = 0; i < t->n_services; i++) {
        const lb_service *s = &t->services[i];
        svc_id id;
        lb_svc_id(s, &id);
        mentry *m = mirror_get(r, &id);
        named *nm = bytemap_get(&r->names, s->owner, strlen(s->owner));
        if (m)
            fit((void **)&m->dests, &m->cap, m->n_dests, sizeof *m->dests);
        if (nm)
            fit((void **)&nm->ids, &nm->cap, nm->n, sizeof *nm->ids);
    }
}

/* True when id is claimed by a clusterf service other than those in group (n names). */
static bool claimed_elsewhere(const reconcile *r, const svc_id *id, const char *const *group,
                              size_t n)
{
    const claim *c = bytemap_get(&r->claims, id, sizeof *id);
    if (!c)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(c->by->name, group[i]) == 0)
            return false;
    return true;
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
    r->now_ms = clock_now_ms;
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
    load_stop(r);
    ipvs_service_list_release(&r->load_part);
    mirror_clear(r);
    owned_clear(r);
    names_clear(r);
    bytemap_clear(&r->draining);
    ipvs_batch_release(&r->batch);
    free(r->state_path);
    free(r->journal);
    free(r->fail_ids);
    free(r);
}

void reconcile_result_free(reconcile_result *res)
{
    if (!res)
        return;
    reconcile_op_fn on_op = res->on_op;
    void *ctx = res->ctx;
    memset(res, 0, sizeof *res);
    res->on_op = on_op;
    res->ctx = ctx;
}

size_t reconcile_result_changes(const reconcile_result *res)
{
    return res->svc_added + res->svc_changed + res->svc_deleted + res->dest_added +
           res->dest_changed + res->dest_deleted;
}

/* Set the error message from rc when nothing more precise was said. */
static int fail(reconcile_result *res, int rc)
{
    if (!res->error[0])
        snprintf(res->error, sizeof res->error, "%s", strerror(-rc));
    return rc;
}

int reconcile_flush(reconcile *r, reconcile_result *res)
{
    if (r->full)
        return fail(res, -EBUSY);
    int rc = ipvs_batch_push(&r->batch, IPVS_OP_FLUSH, NULL, NULL);
    if (rc < 0)
        return fail(res, rc);
    owned_clear(r);
    rc = flush_ops(r, res);
    int src = save_owned(r, true, res);
    return rc < 0 ? rc : src;
}

/* The identities of desired's services as a set: keys point into *ids (caller frees both). */
static int want_build(const lb_table *desired, bytemap *want, svc_id **ids)
{
    *ids = desired->n_services ? malloc(desired->n_services * sizeof **ids) : NULL;
    if (desired->n_services && !*ids)
        return -ENOMEM;
    for (size_t i = 0; i < desired->n_services; i++) {
        lb_svc_id(&desired->services[i], &(*ids)[i]);
        if (!bytemap_get(want, &(*ids)[i], sizeof **ids) &&
            bytemap_put(want, &(*ids)[i], sizeof **ids, &(*ids)[i]) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Delete every owned service of the mirror that no clusterf service claims. */
static int delete_unclaimed(reconcile *r, reconcile_result *res)
{
    svc_id *del = NULL;
    size_t n = 0, cap = 0, pos = 0;
    bytemap_entry *e = NULL;
    /* Collect first: answered ops change the mirror. */
    while (bytemap_next(&r->mirror, &pos, &e)) {
        const mentry *m = e->val;
        if (bytemap_get(&r->claims, &m->id, sizeof m->id) || !owned_has(r, &m->id))
            continue;
        if (vec_grow((void **)&del, &cap, n + 1, sizeof *del) < 0) {
            free(del);
            return -ENOMEM;
        }
        del[n++] = m->id;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = diff_unwanted(r, &del[i], res);
    free(del);
    return rc;
}

/* Drop owned services that are neither in the kernel nor claimed: nothing left to clean. */
static int forget_vanished(reconcile *r)
{
    svc_id *gone = NULL;
    size_t n = 0, pos = 0;
    bytemap_entry *e = NULL;
    if (r->owned.n && !(gone = malloc(r->owned.n * sizeof *gone)))
        return -ENOMEM;
    while (bytemap_next(&r->owned, &pos, &e))
        if (!mirror_get(r, e->val) && !bytemap_get(&r->claims, e->val, sizeof(svc_id)))
            gone[n++] = *(svc_id *)e->val;
    for (size_t i = 0; i < n; i++)
        owned_remove(r, &gone[i]);
    free(gone);
    return 0;
}

/* End a full pass that broke: the next one starts over. */
static int full_abort(reconcile *r, reconcile_result *res, int rc)
{
    reconcile_full_abort(r);
    return fail(res, rc);
}

/* The next part of the service dump into r->load_part (begun when none runs): in parts when
 * the kernel side can, else whole. 1 while more is left, 0 at its end, -errno (res->error). */
static int load_read(reconcile *r, size_t max, reconcile_result *res)
{
    struct ipvs_err err = {0};
    int rc;
    int64_t t0 = clock_now_us();
    r->load_part.n = 0;
    if (r->kernel.dump_services_part) {
        rc = r->kernel.dump_services_part(r->kernel.self, &r->load_part, max, &err);
    } else {
        ipvs_service_list_release(&r->load_part);
        rc = r->kernel.dump_services(r->kernel.self, &r->load_part.v, &r->load_part.n, &err);
        r->load_part.cap = r->load_part.n;
    }
    res->kernel_us += clock_now_us() - t0;
    if (rc < 0)
        snprintf(res->error, sizeof res->error, "dump: %s", err.msg);
    return rc;
}

/* Read the next part of the kernel's services into the mirror, starting a dump when none
 * runs; at the end of the dump, drop what it did not show (dests are dumped when first
 * needed). 1 while more is left, 0 when the mirror holds the kernel's services, -errno
 * (res->error; the dump is dropped). */
static int mirror_load_part(reconcile *r, reconcile_result *res)
{
    if (!r->loading) {
        r->load++;
        r->loading = true;
    }
    int more = load_read(r, RECONCILE_LOAD_PART, res);
    int rc = more < 0 ? more : mirror_sync_part(r, r->load_part.v, r->load_part.n);
    if (rc == 0 && more == 0)
        rc = mirror_drop_unseen(r);
    if (rc < 0) {
        load_stop(r);
        return res->error[0] ? rc : fail(res, rc);
    }
    if (more)
        return 1;
    r->loading = false;
    r->mirror_loaded = true;
    /* One part's buffer is kept between passes; a whole dump's (no parts) is not. */
    if (r->load_part.cap > 2 * RECONCILE_LOAD_PART)
        ipvs_service_list_release(&r->load_part);
    return 0;
}

/* Read the rest of the kernel's services into the mirror. 0 or -errno (res->error). */
static int mirror_load_rest(reconcile *r, reconcile_result *res)
{
    int rc = r->loading ? 1 : 0;
    while (rc > 0)
        rc = mirror_load_part(r, res);
    return rc;
}

/* Make the mirror's services those of the kernel, in one go. */
static int mirror_load_services(reconcile *r, reconcile_result *res)
{
    int rc = mirror_load_part(r, res);
    return rc > 0 ? mirror_load_rest(r, res) : rc;
}

int reconcile_full_begin(reconcile *r, reconcile_result *res)
{
    if (r->full)
        return fail(res, -EBUSY);
    int rc = mirror_load_part(r, res);
    if (rc < 0)
        return rc;
    r->needs_full = false;
    /* Claims are restamped from what the pass is given; at its end the ones it did not stamp
     * are dropped, so they are the desired set. */
    r->pass++;
    r->full = true;
    return 0;
}

int reconcile_full_load(reconcile *r, reconcile_result *res)
{
    if (!r->full)
        return fail(res, -EINVAL);
    if (!r->loading)
        return 0;
    int rc = mirror_load_part(r, res);
    if (rc < 0)
        return full_abort(r, res, rc);
    return rc;
}

bool reconcile_full_loading(const reconcile *r)
{
    return r->full && r->loading;
}

/* Before a part of a full pass: the rest of the service dump, if any. 0 or -errno (the pass
 * is over). */
static int full_loaded(reconcile *r, reconcile_result *res)
{
    int rc = mirror_load_rest(r, res);
    return rc < 0 ? full_abort(r, res, rc) : 0;
}

int reconcile_full_add(reconcile *r, const lb_table *part, reconcile_result *res)
{
    if (!r->full)
        return fail(res, -EINVAL);
    int rc = full_loaded(r, res);
    if (rc < 0)
        return rc;
    r->n_fail_ids = 0;
    r->fail_ids_lost = false;
    for (size_t i = 0; rc == 0 && i < part->n_services; i++) {
        rc = names_claim(r, &part->services[i]); /* first: its ops' callbacks see the owner */
        if (rc == 0)
            rc = diff_service(r, &part->services[i], res);
    }
    if (rc == 0)
        rc = flush_ops(r, res);
    if (rc == 0) {
        names_settle(r, part);
        part_fit(r, part);
    }
    if (rc < 0)
        return full_abort(r, res, rc);
    save_owned(r, false, res); /* a failed write is reported by the last one */
    return 0;
}

int reconcile_full_end(reconcile *r, reconcile_result *res)
{
    if (!r->full)
        return fail(res, -EINVAL);
    int rc = full_loaded(r, res);
    if (rc < 0)
        return rc;
    rc = names_sweep(r);
    if (rc == 0)
        rc = delete_unclaimed(r, res);
    if (rc == 0)
        rc = forget_vanished(r);
    if (rc == 0)
        rc = flush_ops(r, res);
    if (rc < 0)
        return full_abort(r, res, rc);
    r->full = false;
    return save_owned(r, true, res);
}

/* True when the kernel holds what m held at the last pass (its service config unchanged by
 * the pass's dump, its dests dumped now the same); m then knows its dests. 0 with *same set,
 * or -errno (res->error). */
static int mentry_verify(reconcile *r, mentry *m, bool *same, reconcile_result *res)
{
    *same = false;
    if (m->changed || m->n_draining)
        return 0;
    mdest *md = NULL;
    size_t n = 0;
    struct ipvs_err err = {0};
    int rc = mentry_dump_dests(r, m, &md, &n, &err, &res->kernel_us);
    if (rc < 0)
        return dump_failed(res, &m->svc, &err, rc);
    *same = n == m->n_dests && mdests_same(&m->svc, m->dests, md, n);
    mentry_set_dests(r, m, md, n); /* the diff that may follow needs no second dump */
    return 0;
}

int reconcile_full_keep(reconcile *r, const char *name, reconcile_result *res)
{
    if (!r->full)
        return fail(res, -EINVAL);
    int rc = full_loaded(r, res);
    if (rc < 0)
        return rc;
    named *nm = bytemap_get(&r->names, name, strlen(name));
    if (!nm || !nm->settled || !nm->n)
        return 0;
    for (size_t i = 0; i < nm->n; i++) {
        const claim *c = bytemap_get(&r->claims, &nm->ids[i], sizeof(svc_id));
        mentry *m = mirror_get(r, &nm->ids[i]);
        if (!c || c->by != nm || !m || !owned_has(r, &nm->ids[i]))
            return 0;
        bool same = false;
        rc = mentry_verify(r, m, &same, res);
        if (rc < 0)
            return full_abort(r, res, rc);
        if (!same)
            return 0;
    }
    nm->pass = r->pass;
    for (size_t i = 0; i < nm->n; i++)
        ((claim *)bytemap_get(&r->claims, &nm->ids[i], sizeof(svc_id)))->pass = r->pass;
    return 1;
}

void reconcile_full_abort(reconcile *r)
{
    if (r->full) {
        load_stop(r);
        r->full = false;
        r->needs_full = true;
        r->batch.n = 0;
    }
}

bool reconcile_full_running(const reconcile *r)
{
    return r->full;
}

int reconcile_full(reconcile *r, const lb_table *desired, reconcile_result *res)
{
    int rc = reconcile_full_begin(r, res);
    if (rc == 0)
        rc = reconcile_full_add(r, desired, res);
    if (rc == 0)
        rc = reconcile_full_end(r, res);
    return rc;
}

int reconcile_services(reconcile *r, const char *const *names, size_t n_names,
                       const lb_table *desired, reconcile_result *res)
{
    if (r->full)
        return fail(res, -EBUSY);
    /* Before any full pass (etcd not read yet), learn the kernel's services first. */
    int rc = r->mirror_loaded ? 0 : mirror_load_services(r, res);
    if (rc < 0)
        return rc;
    bytemap want = {0};
    svc_id *ids = NULL;
    r->n_fail_ids = 0;
    r->fail_ids_lost = false;
    rc = want_build(desired, &want, &ids);
    /* What the group desired before and gives up now is deleted, unless a clusterf service
     * outside the group claims it or one inside it takes it over (want holds it). */
    for (size_t k = 0; rc == 0 && k < n_names; k++) {
        const named *old = bytemap_get(&r->names, names[k], strlen(names[k]));
        for (size_t i = 0; old && rc == 0 && i < old->n; i++)
            if (!bytemap_get(&want, &old->ids[i], sizeof(svc_id)) &&
                !claimed_elsewhere(r, &old->ids[i], names, n_names))
                rc = diff_unwanted(r, &old->ids[i], res);
    }
    bytemap_clear(&want);
    free(ids);
    /* The group's claims are renewed before its ops go out, so their callbacks see the
     * owner (reconcile_service_owner); what it gave up was queued for deletion above. */
    for (size_t k = 0; k < n_names; k++)
        names_drop(r, names[k]);
    for (size_t i = 0; rc == 0 && i < desired->n_services; i++)
        rc = names_claim(r, &desired->services[i]);
    for (size_t i = 0; rc == 0 && i < desired->n_services; i++)
        rc = diff_service(r, &desired->services[i], res);
    if (rc == 0)
        rc = flush_ops(r, res);
    if (rc == 0) {
        names_settle(r, desired);
        part_fit(r, desired);
    }
    int src = save_owned(r, true, res);
    if (rc < 0)
        return fail(res, rc);
    return src;
}

int reconcile_service(reconcile *r, const char *name, const lb_table *desired,
                      reconcile_result *res)
{
    return reconcile_services(r, &name, 1, desired, res);
}

void reconcile_set_drain(reconcile *r, int64_t drain_ms, int64_t (*now_ms)(void))
{
    r->drain_ms = drain_ms > 0 ? drain_ms : 0;
    r->now_ms = now_ms ? now_ms : clock_now_ms;
}

size_t reconcile_draining(const reconcile *r)
{
    size_t n = 0, pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->draining, &pos, &e))
        n += ((const mentry *)e->val)->n_draining;
    return n;
}

/* The draining dests of m that are done: gone from the kernel (their mark is dropped), or
 * with no active connection left, or past their deadline (into *done, n_done). */
static int drain_done(reconcile *r, mentry *m, struct ipvs_dest **done, size_t *n_done,
                      struct ipvs_err *err)
{
    struct ipvs_dest *now_in = NULL;
    size_t n = 0, cap = 0;
    int rc = r->kernel.dump_dests(r->kernel.self, &m->svc, &now_in, &n, err);
    if (rc < 0)
        return rc;
    int64_t now = r->now_ms();
    for (size_t k = 0; rc == 0 && k < m->n_dests; k++) {
        if (!m->dests[k].drain_until)
            continue;
        struct ipvs_dest d;
        mdest_to(&m->dests[k], &d);
        const struct ipvs_dest *live = NULL;
        for (size_t i = 0; i < n && !live; i++)
            if (ipvs_dest_cmp(&m->svc, &now_in[i], &d) == 0)
                live = &now_in[i];
        if (!live)
            rc = drain_mark(r, m, &m->dests[k], 0);
        else if (live->active_conns == 0 || now >= m->dests[k].drain_until) {
            if (vec_grow((void **)done, &cap, *n_done + 1, sizeof **done) < 0)
                rc = -ENOMEM;
            else
                (*done)[(*n_done)++] = d;
        }
    }
    free(now_in);
    return rc;
}

int reconcile_drain_check(reconcile *r, reconcile_result *res)
{
    if (r->full || !r->draining.n)
        return 0;
    svc_id *ids = malloc(r->draining.n * sizeof *ids);
    if (!ids)
        return fail(res, -ENOMEM);
    size_t n = 0, pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->draining, &pos, &e))
        ids[n++] = ((const mentry *)e->val)->id;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        mentry *m = mirror_get(r, &ids[i]);
        struct ipvs_dest *done = NULL;
        size_t n_done = 0;
        struct ipvs_err err = {0};
        if (m && (rc = drain_done(r, m, &done, &n_done, &err)) < 0)
            snprintf(res->error, sizeof res->error, "dump: %s", err.msg);
        struct ipvs_service svc = m ? m->svc : (struct ipvs_service){0};
        for (size_t k = 0; rc == 0 && k < n_done; k++)
            rc = push_op(r, res, IPVS_OP_DEL_DEST, &svc, &done[k]);
        free(done);
    }
    free(ids);
    if (rc == 0)
        rc = flush_ops(r, res);
    return rc < 0 ? fail(res, rc) : 0;
}

bool reconcile_needs_full(const reconcile *r)
{
    return r->needs_full;
}

size_t reconcile_owned_count(const reconcile *r)
{
    return r->owned.n;
}

const char *reconcile_service_owner(const reconcile *r, const struct ipvs_service *svc)
{
    svc_id id;
    svc_id_of(svc, &id);
    const claim *c = bytemap_get(&r->claims, &id, sizeof id);
    return c ? c->by->name : NULL;
}

bool reconcile_owns(const reconcile *r, const struct ipvs_service *svc)
{
    svc_id id;
    svc_id_of(svc, &id);
    return owned_has(r, &id);
}
