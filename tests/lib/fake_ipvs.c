/* fake_ipvs.c -- the in-memory IPVS table of fake_ipvs.h: a linear array, fine for tests. */
#include "fake_ipvs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_ipvs {
    struct ipvs_table t;
    size_t cap;
    char refuse_sched[IP_VS_SCHEDNAME_MAXLEN];
    bool fail_dumps;
    size_t ops, applies;
};

fake_ipvs *fake_ipvs_new(void)
{
    return calloc(1, sizeof(fake_ipvs));
}

void fake_ipvs_free(fake_ipvs *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->t.n; i++)
        free(f->t.entries[i].dests);
    free(f->t.entries);
    free(f);
}

static struct ipvs_entry *find(const fake_ipvs *f, const struct ipvs_service *svc)
{
    return ipvs_table_find(&f->t, svc);
}

static long find_dest_index(const struct ipvs_entry *e, const struct ipvs_dest *d)
{
    for (size_t i = 0; i < e->n_dests; i++)
        if (ipvs_dest_cmp(&e->svc, &e->dests[i], d) == 0)
            return (long)i;
    return -1;
}

static int add_service(fake_ipvs *f, const struct ipvs_service *svc)
{
    if (find(f, svc))
        return -EEXIST;
    if (f->refuse_sched[0] && strcmp(svc->sched, f->refuse_sched) == 0)
        return -ENOENT;
    if (f->t.n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->t.entries = realloc(f->t.entries, f->cap * sizeof *f->t.entries);
    }
    struct ipvs_entry *e = &f->t.entries[f->t.n++];
    memset(e, 0, sizeof *e);
    e->svc = *svc;
    return 0;
}

static int del_service(fake_ipvs *f, const struct ipvs_service *svc)
{
    struct ipvs_entry *e = find(f, svc);
    if (!e)
        return -ESRCH;
    free(e->dests);
    *e = f->t.entries[--f->t.n];
    return 0;
}

static int dest_op(fake_ipvs *f, enum ipvs_op_kind kind, const struct ipvs_service *svc,
                   const struct ipvs_dest *d)
{
    struct ipvs_entry *e = find(f, svc);
    if (!e)
        return -ESRCH;
    long i = find_dest_index(e, d);
    if (kind == IPVS_OP_ADD_DEST) {
        if (i >= 0)
            return -EEXIST;
        e->dests = realloc(e->dests, (e->n_dests + 1) * sizeof *e->dests);
        e->dests[e->n_dests++] = *d;
        return 0;
    }
    if (i < 0)
        return -ENOENT;
    if (kind == IPVS_OP_EDIT_DEST) {
        uint32_t active = e->dests[i].active_conns;
        e->dests[i] = *d;
        e->dests[i].active_conns = active; /* an edit in place keeps the connections */
    } else {
        e->dests[i] = e->dests[--e->n_dests];
    }
    return 0;
}

static int do_one(fake_ipvs *f, enum ipvs_op_kind kind, const struct ipvs_service *svc,
                  const struct ipvs_dest *d)
{
    switch (kind) {
    case IPVS_OP_ADD_SERVICE: return add_service(f, svc);
    case IPVS_OP_DEL_SERVICE: return del_service(f, svc);
    case IPVS_OP_EDIT_SERVICE: {
        struct ipvs_entry *e = find(f, svc);
        if (!e)
            return -ESRCH;
        if (f->refuse_sched[0] && strcmp(svc->sched, f->refuse_sched) == 0)
            return -ENOENT;
        e->svc = *svc;
        return 0;
    }
    case IPVS_OP_FLUSH:
        while (f->t.n)
            del_service(f, &f->t.entries[0].svc);
        return 0;
    default:
        return dest_op(f, kind, svc, d);
    }
}

size_t fake_ipvs_do(fake_ipvs *f, enum ipvs_op_kind kind, const struct ipvs_service *svc,
                    const struct ipvs_dest *dest)
{
    return do_one(f, kind, svc, dest) < 0;
}

static int fake_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    fake_ipvs *f = self;
    (void)err;
    f->applies++;
    for (size_t i = 0; i < n; i++) {
        int rc = do_one(f, ops[i].kind, &ops[i].svc, &ops[i].dest);
        f->ops++;
        ops[i].error = rc;
        bool idem = (rc == -EEXIST && (ops[i].kind == IPVS_OP_ADD_SERVICE || ops[i].kind == IPVS_OP_ADD_DEST)) ||
                    ((rc == -ESRCH || rc == -ENOENT) &&
                     (ops[i].kind == IPVS_OP_DEL_SERVICE || ops[i].kind == IPVS_OP_DEL_DEST));
        ops[i].outcome = rc == 0 ? IPVS_APPLIED : idem ? IPVS_ALREADY : IPVS_FAILED;
    }
    return 0;
}

static int fake_dump(void *self, struct ipvs_table **out, struct ipvs_err *err)
{
    fake_ipvs *f = self;
    if (f->fail_dumps) {
        err->code = -EIO;
        snprintf(err->msg, sizeof err->msg, "fake dump failure");
        return -EIO;
    }
    struct ipvs_table *t = calloc(1, sizeof *t);
    t->n = f->t.n;
    t->entries = calloc(t->n ? t->n : 1, sizeof *t->entries);
    for (size_t i = 0; i < t->n; i++) {
        t->entries[i] = f->t.entries[i];
        size_t nd = f->t.entries[i].n_dests;
        t->entries[i].dests = malloc((nd ? nd : 1) * sizeof(struct ipvs_dest));
        memcpy(t->entries[i].dests, f->t.entries[i].dests, nd * sizeof(struct ipvs_dest));
    }
    *out = t;
    return 0;
}

struct ipvs_iface fake_ipvs_iface(fake_ipvs *f)
{
    return (struct ipvs_iface){.self = f, .dump = fake_dump, .apply = fake_apply};
}

void fake_ipvs_refuse_sched(fake_ipvs *f, const char *sched)
{
    snprintf(f->refuse_sched, sizeof f->refuse_sched, "%s", sched ? sched : "");
}

void fake_ipvs_fail_dumps(fake_ipvs *f, bool fail) { f->fail_dumps = fail; }
size_t fake_ipvs_n_services(const fake_ipvs *f) { return f->t.n; }
const struct ipvs_entry *fake_ipvs_find(const fake_ipvs *f, const struct ipvs_service *svc) { return find(f, svc); }
size_t fake_ipvs_ops(const fake_ipvs *f) { return f->ops; }
size_t fake_ipvs_applies(const fake_ipvs *f) { return f->applies; }

const struct ipvs_dest *fake_ipvs_find_dest(const fake_ipvs *f, const struct ipvs_service *svc,
                                            const struct ipvs_dest *d)
{
    const struct ipvs_entry *e = find(f, svc);
    long i = e ? find_dest_index(e, d) : -1;
    return i < 0 ? NULL : &e->dests[i];
}
