/* ipvsd_opfail.c -- the kernel ops that keep failing, so that a refusal the daemon retries
 * (a scheduler the kernel lacks: a full pass every 2 s) is logged at error once, then at
 * debug while the same op fails with the same error, and with one info line when it succeeds
 * or is no longer attempted. It decides levels and logs the recoveries; the op lines
 * themselves are written by ipvsd.c. */
#include "ipvsd/ipvsd_int.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An op's identity as plain bytes (zero-filled): its kind, service and dest. */
typedef struct opfail_key {
    uint16_t kind, af, protocol, port;
    uint32_t fwmark;
    uint8_t addr[16];
    uint16_t dest_af, dest_port;
    uint8_t dest_addr[16];
} opfail_key;

/* One op that failed, as first logged. */
typedef struct opfail {
    opfail_key key;
    int error;           /* -errno of its last failure */
    uint64_t tried;      /* the pass stamp (ipvsd.op_seq) of its last failure */
    size_t repeats;      /* failures after the one logged at error */
    int64_t since_ms;    /* when it first failed (monotonic) */
    char what[256];      /* op=... service=... [dest=...] [clusterf_service=...], for the log */
    char owner[128];     /* its clusterf service, "" when unknown */
} opfail;

static void key_of(const struct ipvs_op *op, opfail_key *k)
{
    memset(k, 0, sizeof *k);
    k->kind = (uint16_t)op->kind;
    k->af = op->svc.af;
    k->fwmark = op->svc.fwmark;
    if (!op->svc.fwmark) {
        k->protocol = op->svc.protocol;
        k->port = op->svc.port;
        memcpy(k->addr, op->svc.addr, sizeof k->addr);
    }
    if (op->kind == IPVS_OP_ADD_DEST || op->kind == IPVS_OP_EDIT_DEST ||
        op->kind == IPVS_OP_DEL_DEST) {
        k->dest_af = op->dest.af;
        k->dest_port = op->dest.port;
        memcpy(k->dest_addr, op->dest.addr, sizeof k->dest_addr);
    }
}

/* A new entry for a failed op, or NULL (no memory: the op is then logged at error each time). */
static opfail *opfail_add(ipvsd *d, const opfail_key *k, const struct ipvs_op *op,
                          const char *owner)
{
    opfail *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->key = *k;
    f->since_ms = clock_now_ms();
    snprintf(f->owner, sizeof f->owner, "%s", owner ? owner : "");
    char svc[96], dst[96] = "", q1[128], q2[128] = "";
    ipvs_service_str(&op->svc, svc, sizeof svc);
    if (k->dest_af || k->dest_port)
        ipvs_dest_str(&op->svc, &op->dest, dst, sizeof dst);
    snprintf(f->what, sizeof f->what, "op=%s service=%s%s%s%s%s", ipvs_op_name(op->kind),
             log_quote(q1, sizeof q1, svc), dst[0] ? " dest=" : "",
             dst[0] ? log_quote(q2, sizeof q2, dst) : "", owner ? " clusterf_service=" : "",
             owner ? owner : "");
    if (bytemap_put(&d->op_fails, &f->key, sizeof f->key, f) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

/* Log that f is over (why: "succeeded" or "no longer attempted") and free it. */
static void opfail_resolved(ipvsd *d, opfail *f, const char *why)
{
    bytemap_del(&d->op_fails, &f->key, sizeof f->key);
    log_info("msg=\"ipvs op no longer fails\" %s outcome=\"%s\" failures=%zu failing_ms=%lld",
             f->what, why, f->repeats + 1, (long long)(clock_now_ms() - f->since_ms));
    free(f);
}

enum log_level ipvsd_opfail_note(ipvsd *d, const struct ipvs_op *op, const char *owner)
{
    bool failed = op->outcome == IPVS_FAILED;
    if (!failed && d->op_fails.n == 0)
        return LOG_LEVEL_DEBUG;
    opfail_key k;
    key_of(op, &k);
    opfail *f = bytemap_get(&d->op_fails, &k, sizeof k);
    if (!failed) {
        if (f)
            opfail_resolved(d, f, "succeeded");
        return LOG_LEVEL_DEBUG;
    }
    if (f && f->error == op->error) {
        f->repeats++;
        f->tried = d->op_seq;
        return LOG_LEVEL_DEBUG;
    }
    if (f) { /* another error: logged anew */
        bytemap_del(&d->op_fails, &f->key, sizeof f->key);
        free(f);
    }
    if ((f = opfail_add(d, &k, op, owner)))
        f->error = op->error, f->tried = d->op_seq;
    d->op_errors_logged++;
    return LOG_LEVEL_ERROR;
}

/* True when name is one of names[n]. */
static bool name_in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

void ipvsd_opfail_sweep(ipvsd *d, uint64_t since, const char *const *names, size_t n)
{
    opfail *gone[64];
    size_t n_gone;
    do { /* the map must not change while iterated: collect, then resolve */
        n_gone = 0;
        size_t pos = 0;
        bytemap_entry *e = NULL;
        while (n_gone < 64 && bytemap_next(&d->op_fails, &pos, &e)) {
            opfail *f = e->val;
            if (f->tried < since && (!names || name_in(f->owner, names, n)))
                gone[n_gone++] = f;
        }
        for (size_t i = 0; i < n_gone; i++)
            opfail_resolved(d, gone[i], "no longer attempted");
    } while (n_gone == 64);
}

void ipvsd_opfail_clear(ipvsd *d)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&d->op_fails, &pos, &e))
        free(e->val);
    bytemap_clear(&d->op_fails);
}
