/* kv.c -- synchronous KV calls: paginated prefix Range at one revision, Get, Put, DeleteRange,
 * Txn, Compact and Status. Requests are packed with protobuf-c and sent with etcd_unary();
 * results are copied out of the protobuf messages, so nothing protobuf leaks into etcd.h. */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MIN 16
#define PAGE_START 1000
#define PAGE_MAX 10000

struct kvs_priv {
    void **blocks;  /* one block per page holding that page's keys and values */
    size_t n, cap;
};

void etcd_kvs_free(etcd_kvs *kvs)
{
    if (!kvs)
        return;
    struct kvs_priv *p = kvs->priv_;
    if (p) {
        for (size_t i = 0; i < p->n; i++)
            free(p->blocks[i]);
        free(p->blocks);
        free(p);
    }
    free(kvs->kvs);
    free(kvs);
}

static etcd_kvs *kvs_new(void)
{
    etcd_kvs *k = calloc(1, sizeof *k);
    if (k && !(k->priv_ = calloc(1, sizeof(struct kvs_priv)))) {
        free(k);
        k = NULL;
    }
    return k;
}

/* Append a page's key-values (copied into one block) to out; returns its size in bytes. */
static int64_t kvs_append(etcd_kvs *out, size_t *cap, Mvccpb__KeyValue **kvs, size_t n)
{
    struct kvs_priv *p = out->priv_;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += kvs[i]->key.len + kvs[i]->value.len + 2;
    if (out->n + n > *cap) {
        size_t nc = (out->n + n) * 2;
        etcd_kv *nk = realloc(out->kvs, nc * sizeof *nk);
        if (!nk)
            return -ENOMEM;
        out->kvs = nk;
        *cap = nc;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 8;
        void **nb = realloc(p->blocks, nc * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        p->blocks = nb;
        p->cap = nc;
    }
    uint8_t *blk = malloc(bytes ? bytes : 1);
    if (!blk)
        return -ENOMEM;
    p->blocks[p->n++] = blk;
    for (size_t i = 0; i < n; i++) {
        const Mvccpb__KeyValue *s = kvs[i];
        etcd_kv *d = &out->kvs[out->n++];
        uint8_t *k = blk, *v = blk + s->key.len + 1;
        if (s->key.len)
            memcpy(k, s->key.data, s->key.len);
        k[s->key.len] = '\0';
        if (s->value.len)
            memcpy(v, s->value.data, s->value.len);
        v[s->value.len] = '\0';
        blk = v + s->value.len + 1;
        *d = (etcd_kv){k, s->key.len, v, s->value.len, s->create_revision, s->mod_revision,
                       s->version, s->lease};
    }
    return (int64_t)bytes;
}

/* One Range call; returns 0 and the decoded response, or -errno. */
static int range_call(etcd_client *c, Etcdserverpb__RangeRequest *req,
                      Etcdserverpb__RangeResponse **out, etcd_error *err)
{
    size_t len = etcdserverpb__range_request__get_packed_size(req), resp_len = 0;
    uint8_t *buf = malloc(len ? len : 1), *resp = NULL;
    if (!buf)
        return -ENOMEM;
    etcdserverpb__range_request__pack(req, buf);
    int rc = etcd_unary(c, "/etcdserverpb.KV/Range", buf, len, ETCD_RETRY_ALWAYS, true, &resp,
                        &resp_len, err);
    free(buf);
    if (rc < 0)
        return rc;
    *out = etcdserverpb__range_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (!*out || !(*out)->header) {
        etcdserverpb__range_response__free_unpacked(*out, NULL);
        *out = NULL;
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable RangeResponse");
        return -EPROTO;
    }
    return 0;
}

/* Next page size: keep pages around 1-8 MiB whatever the value sizes. */
static int64_t next_limit(int64_t limit, int64_t page_bytes)
{
    if (page_bytes > 8 << 20 && limit / 2 >= PAGE_MIN)
        return limit / 2;
    if (page_bytes < 1 << 20 && limit * 2 <= PAGE_MAX)
        return limit * 2;
    return limit;
}

/* The pagination loop of etcd_range_prefix; key/end buffers are sized by the caller. */
static int range_pages(etcd_client *c, uint8_t *key, size_t key_len, const uint8_t *end,
                       size_t end_len, int64_t revision, etcd_kvs *out, etcd_error *err)
{
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.range_end = (ProtobufCBinaryData){end_len, (uint8_t *)end};
    req.limit = PAGE_START;
    req.revision = revision;
    size_t cap = 0;
    uint8_t *next = NULL;
    int rc = 0;
    for (;;) {
        req.key = (ProtobufCBinaryData){key_len, key};
        Etcdserverpb__RangeResponse *r = NULL;
        rc = range_call(c, &req, &r, err);
        if (rc == -ENOSPC && req.limit > 1) {  /* page over max_recv_bytes: smaller pages */
            req.limit = req.limit / 4 > 1 ? req.limit / 4 : 1;
            continue;
        }
        if (rc < 0)
            break;
        if (req.revision <= 0)
            req.revision = r->header->revision;
        int64_t bytes = kvs_append(out, &cap, r->kvs, r->n_kvs);
        bool more = r->more && r->n_kvs > 0;
        if (bytes >= 0 && more) {  /* next page starts right after the last key */
            const ProtobufCBinaryData *last = &r->kvs[r->n_kvs - 1]->key;
            uint8_t *nk = realloc(next, last->len + 1);
            if (nk) {
                memcpy(nk, last->data, last->len);
                nk[last->len] = '\0';
                next = key = nk;
                key_len = last->len + 1;
            }
            bytes = nk ? bytes : -ENOMEM;
        }
        etcdserverpb__range_response__free_unpacked(r, NULL);
        if (bytes < 0) {
            etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
            rc = -ENOMEM;
            break;
        }
        if (!more)
            break;
        req.limit = next_limit(req.limit, bytes);
    }
    out->revision = req.revision;
    free(next);
    return rc;
}

int etcd_range_prefix(etcd_client *c, const void *prefix, size_t prefix_len, int64_t revision,
                      etcd_kvs **out, etcd_error *err)
{
    *out = NULL;
    uint8_t *key = malloc(prefix_len + 1), *end = malloc(prefix_len + 1);
    etcd_kvs *kvs = kvs_new();
    int rc = -ENOMEM;
    if (!key || !end || !kvs) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        goto out;
    }
    size_t key_len = prefix_len, end_len;
    if (prefix_len == 0) {
        key[0] = end[0] = '\0';
        key_len = end_len = 1;
    } else {
        memcpy(key, prefix, prefix_len);
        end_len = etcd_prefix_end(prefix, prefix_len, end);
    }
    rc = range_pages(c, key, key_len, end, end_len, revision, kvs, err);
    if (rc == 0) {
        *out = kvs;
        kvs = NULL;
    }
out:
    etcd_kvs_free(kvs);
    free(key);
    free(end);
    return rc;
}

int etcd_get(etcd_client *c, const void *key, size_t key_len, etcd_kvs **out,
             int64_t *revision, etcd_error *err)
{
    *out = NULL;
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){key_len, (uint8_t *)key};
    Etcdserverpb__RangeResponse *r = NULL;
    int rc = range_call(c, &req, &r, err);
    if (rc < 0)
        return rc;
    if (revision)
        *revision = r->header->revision;
    etcd_kvs *kvs = NULL;
    size_t cap = 0;
    if (r->n_kvs > 0 && (!(kvs = kvs_new()) || kvs_append(kvs, &cap, r->kvs, 1) < 0)) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        rc = -ENOMEM;
    }
    if (kvs)
        kvs->revision = r->header->revision;
    etcdserverpb__range_response__free_unpacked(r, NULL);
    if (rc == 0)
        *out = kvs;
    else
        etcd_kvs_free(kvs);
    return rc;
}
