/* write.c -- the mutating KV calls (Put, DeleteRange, Txn, Compact) and Maintenance/Status.
 * Put and DeleteRange are retried on another endpoint after UNAVAILABLE (applying them twice
 * leaves the same state); Txn and Compact only when they cannot have been sent. */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Pack a message with its protobuf-c descriptor, call method, return the raw answer. */
static int call_msg(etcd_client *c, const char *method, const ProtobufCMessage *m,
                    enum etcd_retry retry, uint8_t **resp, size_t *resp_len, etcd_error *err)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        return -ENOMEM;
    }
    protobuf_c_message_pack(m, buf);
    int rc = etcd_unary(c, method, buf, len, retry, true, resp, resp_len, err);
    free(buf);
    return rc;
}

/* Decode an answer whose only field we need is the header revision (field 1). */
static int header_revision(const ProtobufCMessageDescriptor *d, const uint8_t *resp,
                           size_t len, int64_t *revision, etcd_error *err)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, resp);
    if (!m) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable %s", d->short_name);
        return -EPROTO;
    }
    /* Every etcd response here starts with `ResponseHeader header = 1`. */
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, 1);
    Etcdserverpb__ResponseHeader *h = f ? *(Etcdserverpb__ResponseHeader **)((char *)m + f->offset) : NULL;
    if (revision)
        *revision = h ? h->revision : 0;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int etcd_put(etcd_client *c, const void *key, size_t key_len, const void *value,
             size_t value_len, int64_t lease, int64_t *revision, etcd_error *err)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){key_len, (uint8_t *)key};
    req.value = (ProtobufCBinaryData){value_len, (uint8_t *)value};
    req.lease = lease;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call_msg(c, "/etcdserverpb.KV/Put", &req.base, ETCD_RETRY_ALWAYS, &resp, &len, err);
    if (rc == 0)
        rc = header_revision(&etcdserverpb__put_response__descriptor, resp, len, revision, err);
    free(resp);
    return rc;
}

int etcd_delete(etcd_client *c, const void *key, size_t key_len, bool prefix,
                int64_t *deleted, etcd_error *err)
{
    uint8_t *end = malloc(key_len + 1), *resp = NULL;
    if (!end) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        return -ENOMEM;
    }
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){key_len, (uint8_t *)key};
    if (prefix && key_len == 0) {  /* everything */
        end[0] = '\0';
        req.key = (ProtobufCBinaryData){1, end};
        req.range_end = (ProtobufCBinaryData){1, end};
    } else if (prefix) {
        req.range_end = (ProtobufCBinaryData){etcd_prefix_end(key, key_len, end), end};
    }
    size_t len = 0;
    int rc = call_msg(c, "/etcdserverpb.KV/DeleteRange", &req.base, ETCD_RETRY_ALWAYS, &resp, &len, err);
    free(end);
    if (rc < 0)
        return rc;
    Etcdserverpb__DeleteRangeResponse *r = etcdserverpb__delete_range_response__unpack(NULL, len, resp);
    free(resp);
    if (!r) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable DeleteRangeResponse");
        return -EPROTO;
    }
    if (deleted)
        *deleted = r->deleted;
    etcdserverpb__delete_range_response__free_unpacked(r, NULL);
    return 0;
}

/* Storage for one Txn request built from the public structs. */
struct txn_buf {
    Etcdserverpb__Compare *cmp, **cmpp;
    Etcdserverpb__RequestOp *ops, **opsp;
    Etcdserverpb__PutRequest *puts;
    Etcdserverpb__DeleteRangeRequest *dels;
    uint8_t **ends;
    size_t n_ends;
};

static void txn_buf_free(struct txn_buf *t)
{
    for (size_t i = 0; i < t->n_ends; i++)
        free(t->ends[i]);
    free(t->ends);
    free(t->cmp);
    free(t->cmpp);
    free(t->ops);
    free(t->opsp);
    free(t->puts);
    free(t->dels);
}

static void fill_compare(Etcdserverpb__Compare *d, const etcd_compare *s)
{
    etcdserverpb__compare__init(d);
    d->key = (ProtobufCBinaryData){s->key_len, (uint8_t *)s->key};
    d->result = (Etcdserverpb__Compare__CompareResult)s->result;
    switch (s->target) {
    case ETCD_CMP_VERSION:
        d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
        d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        d->version = s->number;
        break;
    case ETCD_CMP_CREATE:
        d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
        d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        d->create_revision = s->number;
        break;
    case ETCD_CMP_MOD:
        d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        d->mod_revision = s->number;
        break;
    case ETCD_CMP_VALUE:
        d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
        d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        d->value = (ProtobufCBinaryData){s->value_len, (uint8_t *)s->value};
        break;
    }
}

/* Fill RequestOp i from op; a prefix delete gets its own range_end buffer. */
static int fill_op(struct txn_buf *t, size_t i, const etcd_op *op)
{
    Etcdserverpb__RequestOp *r = &t->ops[i];
    etcdserverpb__request_op__init(r);
    t->opsp[i] = r;
    if (op->type == ETCD_OP_PUT) {
        Etcdserverpb__PutRequest *p = &t->puts[i];
        etcdserverpb__put_request__init(p);
        p->key = (ProtobufCBinaryData){op->key_len, (uint8_t *)op->key};
        p->value = (ProtobufCBinaryData){op->value_len, (uint8_t *)op->value};
        p->lease = op->lease;
        r->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        r->request_put = p;
        return 0;
    }
    Etcdserverpb__DeleteRangeRequest *d = &t->dels[i];
    etcdserverpb__delete_range_request__init(d);
    d->key = (ProtobufCBinaryData){op->key_len, (uint8_t *)op->key};
    if (op->type == ETCD_OP_DELETE_PREFIX) {
        uint8_t *end = malloc(op->key_len + 1);
        if (!end)
            return -ENOMEM;
        t->ends[t->n_ends++] = end;
        d->range_end = (ProtobufCBinaryData){etcd_prefix_end(op->key, op->key_len, end), end};
    }
    r->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    r->request_delete_range = d;
    return 0;
}

static int txn_build(struct txn_buf *t, Etcdserverpb__TxnRequest *req, const etcd_compare *cmp,
                     size_t n_cmp, const etcd_op *succ, size_t n_succ, const etcd_op *fail,
                     size_t n_fail)
{
    size_t n_ops = n_succ + n_fail;
    t->cmp = calloc(n_cmp + 1, sizeof *t->cmp);
    t->cmpp = calloc(n_cmp + 1, sizeof *t->cmpp);
    t->ops = calloc(n_ops + 1, sizeof *t->ops);
    t->opsp = calloc(n_ops + 1, sizeof *t->opsp);
    t->puts = calloc(n_ops + 1, sizeof *t->puts);
    t->dels = calloc(n_ops + 1, sizeof *t->dels);
    t->ends = calloc(n_ops + 1, sizeof *t->ends);
    if (!t->cmp || !t->cmpp || !t->ops || !t->opsp || !t->puts || !t->dels || !t->ends)
        return -ENOMEM;
    for (size_t i = 0; i < n_cmp; i++) {
        fill_compare(&t->cmp[i], &cmp[i]);
        t->cmpp[i] = &t->cmp[i];
    }
    for (size_t i = 0; i < n_ops; i++)
        if (fill_op(t, i, i < n_succ ? &succ[i] : &fail[i - n_succ]) < 0)
            return -ENOMEM;
    req->n_compare = n_cmp;
    req->compare = t->cmpp;
    req->n_success = n_succ;
    req->success = t->opsp;
    req->n_failure = n_fail;
    req->failure = t->opsp + n_succ;
    return 0;
}

int etcd_txn(etcd_client *c, const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
             size_t n_success, const etcd_op *failure, size_t n_failure, bool *succeeded,
             int64_t *revision, etcd_error *err)
{
    struct txn_buf t = {0};
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = txn_build(&t, &req, cmp, n_cmp, success, n_success, failure, n_failure);
    if (rc < 0)
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
    else
        rc = call_msg(c, "/etcdserverpb.KV/Txn", &req.base, ETCD_RETRY_UNSENT, &resp, &len, err);
    txn_buf_free(&t);
    if (rc < 0)
        return rc;
    Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(NULL, len, resp);
    free(resp);
    if (!r) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable TxnResponse");
        return -EPROTO;
    }
    if (succeeded)
        *succeeded = r->succeeded;
    if (revision)
        *revision = r->header ? r->header->revision : 0;
    etcdserverpb__txn_response__free_unpacked(r, NULL);
    return 0;
}

int etcd_compact(etcd_client *c, int64_t revision, etcd_error *err)
{
    Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    req.revision = revision;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call_msg(c, "/etcdserverpb.KV/Compact", &req.base, ETCD_RETRY_UNSENT, &resp, &len, err);
    free(resp);
    return rc;
}

int etcd_status(etcd_client *c, uint64_t *leader, uint64_t *member_id, etcd_error *err)
{
    Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
    uint8_t *resp = NULL;
    size_t len = 0;
    int rc = call_msg(c, "/etcdserverpb.Maintenance/Status", &req.base, ETCD_RETRY_ALWAYS, &resp, &len, err);
    if (rc < 0)
        return rc;
    Etcdserverpb__StatusResponse *r = etcdserverpb__status_response__unpack(NULL, len, resp);
    free(resp);
    if (!r) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable StatusResponse");
        return -EPROTO;
    }
    if (leader)
        *leader = r->leader;
    if (member_id)
        *member_id = r->header ? r->header->member_id : 0;
    etcdserverpb__status_response__free_unpacked(r, NULL);
    return 0;
}
