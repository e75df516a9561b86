/* lease.c -- etcd_lease: grant, keep alive at TTL/3 on the LeaseKeepAlive stream, revoke.
 *
 * Grant and revoke are unary calls on the caller's thread; the keep-alive runs on the client
 * thread. The lease counts as lost when etcd answers TTL <= 0 or when no keep-alive succeeded
 * within the TTL; the loss is signalled on an eventfd so the owner can re-grant and re-put.
 * A keep-alive unanswered within min(ETCD_ANSWER_MS, TTL/4) means the member hangs: the
 * stream moves to the next endpoint and sends a keep-alive there at once, well inside the
 * TTL, so a live quorum keeps the lease (internal.h, "Member liveness"). */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define KEEPALIVE_METHOD "/etcdserverpb.Lease/LeaseKeepAlive"

/* LeaseGrant: returns 0 with the ID and granted TTL, or -errno. */
static int grant(etcd_client *c, int64_t ttl, int64_t *id, int64_t *granted, int64_t *sent_at,
                 etcd_error *err)
{
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl;
    uint8_t buf[32], *resp = NULL;
    size_t len = etcdserverpb__lease_grant_request__pack(&req, buf), resp_len = 0;
    int rc = etcd_unary_timed(c, "/etcdserverpb.Lease/LeaseGrant", buf, len, ETCD_RETRY_ALWAYS,
                              true, &resp, &resp_len, sent_at, err);
    if (rc < 0)
        return rc;
    Etcdserverpb__LeaseGrantResponse *r = etcdserverpb__lease_grant_response__unpack(NULL, resp_len, resp);
    free(resp);
    rc = 0;
    if (!r || r->id == 0 || r->ttl <= 0 || (r->error && *r->error)) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "lease grant refused: %s",
                     r && r->error && *r->error ? r->error : "no lease in the answer");
        rc = -EPROTO;
    } else {
        *id = r->id;
        *granted = r->ttl;
    }
    etcdserverpb__lease_grant_response__free_unpacked(r, NULL);
    return rc;
}

/* LeaseRevoke of id: 0 or -errno. */
static int revoke_id(etcd_client *c, int64_t id, etcd_error *err)
{
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = id;
    uint8_t buf[16], *resp = NULL;
    size_t len = etcdserverpb__lease_revoke_request__pack(&req, buf), resp_len = 0;
    int rc = etcd_unary(c, "/etcdserverpb.Lease/LeaseRevoke", buf, len, ETCD_RETRY_ALWAYS, true,
                        &resp, &resp_len, err);
    free(resp);
    return rc;
}

int etcd_lease_time_to_live(etcd_client *c, int64_t id, int64_t *remaining, etcd_error *err)
{
    Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    req.id = id;
    uint8_t buf[16], *resp = NULL;
    size_t len = etcdserverpb__lease_time_to_live_request__pack(&req, buf), resp_len = 0;
    int rc = etcd_unary(c, "/etcdserverpb.Lease/LeaseTimeToLive", buf, len, ETCD_RETRY_ALWAYS,
                        true, &resp, &resp_len, err);
    if (rc < 0)
        return rc;
    Etcdserverpb__LeaseTimeToLiveResponse *r =
        etcdserverpb__lease_time_to_live_response__unpack(NULL, resp_len, resp);
    free(resp);
    if (!r) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "undecodable LeaseTimeToLiveResponse");
        return -EPROTO;
    }
    *remaining = r->ttl;
    etcdserverpb__lease_time_to_live_response__free_unpacked(r, NULL);
    return 0;
}

/* Mark the lease lost, keep why for etcd_lease_loss, and wake the owner (client thread). */
static void lose(etcd_lease *l, int code, const char *why)
{
    etcd_error e = {0};
    const etcd_error *k = &l->kerr;
    etcd_err_set(&e, code, k->endpoint, "lease %llx: %s%s%s", (unsigned long long)l->kid, why,
                 k->code ? "; last keep-alive stream error: " : "", k->code ? k->msg : "");
    l->klost = true;
    pthread_mutex_lock(&l->c->mu);
    if (l->gen == l->kgen) {
        uint64_t one = 1;
        l->lost = true;
        l->loss = e;
        if (write(l->efd, &one, sizeof one) < 0) {
            /* EAGAIN: already readable */
        }
    }
    pthread_mutex_unlock(&l->c->mu);
}

static void on_message(void *owner, const uint8_t *buf, size_t len)
{
    etcd_lease *l = owner;
    Etcdserverpb__LeaseKeepAliveResponse *r =
        etcdserverpb__lease_keep_alive_response__unpack(NULL, len, buf);
    if (!r)
        return;
    if (r->id == l->kid && !l->klost) {
        if (r->ttl <= 0) {
            lose(l, GRPC_STATUS_NOT_FOUND, "etcd answered TTL 0 (expired or revoked)");
        } else {
            l->last_ok = l->sent_at;
            pthread_mutex_lock(&l->c->mu);
            l->answered_at = l->sent_at;
            pthread_mutex_unlock(&l->c->mu);
            l->kttl = r->ttl;
            l->kerr.code = 0;
            backoff_reset(&l->bo);
        }
    }
    etcdserverpb__lease_keep_alive_response__free_unpacked(r, NULL);
}

static void on_closed(void *owner, int code, const char *details)
{
    etcd_lease *l = owner;
    if (l->closing)
        return;
    if (code == GRPC_STATUS_UNAVAILABLE)
        etcd_client_rotate(l->c, l->st.ep);
    l->need_auth = etcd_auth_error(code, details);
    l->retry_at = clock_now_ms() + backoff_next(&l->bo);
    etcd_err_set(&l->kerr, code, l->c->eps[l->st.ep].url, "%s: %s", etcd_code_name(code), details);
}

/* Send one keep-alive when it is due; returns when the next one is due. */
static int64_t keepalive(etcd_lease *l, int64_t now)
{
    if (!etcd_stream_active(&l->st)) {
        if (now < l->retry_at)
            return l->retry_at;
        etcd_error err = {0};
        bool refresh = l->need_auth;
        l->need_auth = false;
        l->closing = false;
        int rc = etcd_stream_open(&l->st, refresh, &err);
        if (rc == -EINPROGRESS) {  /* a token is on its way: look again soon */
            l->need_auth = refresh;
            l->retry_at = now + ETCD_AUTH_POLL_MS;
            return l->retry_at;
        }
        if (rc < 0) {
            l->retry_at = now + backoff_next(&l->bo);
            return l->retry_at;
        }
        int64_t answer = l->kttl * 1000 / 4;
        l->st.answer_ms = answer > ETCD_ANSWER_MS ? ETCD_ANSWER_MS : answer < 500 ? 500 : answer;
        l->next_send = now;  /* a new stream (maybe after a failure): renew on it at once */
    }
    int64_t check = etcd_stream_check(&l->st, now);
    if (!etcd_stream_active(&l->st) || l->st.cancelled)
        return now + 100;  /* closing: on_closed schedules the reopen */
    if (now < l->next_send)
        return l->next_send < check ? l->next_send : check;
    Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    req.id = l->kid;
    uint8_t buf[16];
    size_t len = etcdserverpb__lease_keep_alive_request__pack(&req, buf);
    int rc = etcd_stream_send(&l->st, buf, len);
    if (rc == 0) {
        l->sent_at = now;
        int64_t every = l->kttl * 1000 / 3;
        l->next_send = now + (every < 500 ? 500 : every);
    } else {
        l->next_send = now + 100;
    }
    return l->next_send < check ? l->next_send : check;
}

int64_t etcd_lease_tick(etcd_lease *l, int64_t now)
{
    pthread_mutex_lock(&l->c->mu);
    bool free_req = l->free_req;
    uint64_t gen = l->gen;
    int64_t id = l->id, ttl = l->ttl, at = l->granted_at;
    pthread_mutex_unlock(&l->c->mu);
    if (free_req) {
        l->closing = true;
        etcd_stream_cancel(&l->st);
        return INT64_MAX;
    }
    if (gen != l->kgen) {  /* new lease (first or re-granted) */
        l->kgen = gen;
        l->kid = id;
        l->kttl = ttl;
        l->last_ok = at;
        l->klost = false;
        memset(&l->kerr, 0, sizeof l->kerr);
        l->next_send = at + ttl * 1000 / 3;
    }
    if (l->klost)
        return INT64_MAX;
    if (now - l->last_ok > l->kttl * 1000) {
        lose(l, GRPC_STATUS_DEADLINE_EXCEEDED, "no keep-alive answer within the TTL");
        return INT64_MAX;
    }
    int64_t due = keepalive(l, now);
    int64_t expiry = l->last_ok + l->kttl * 1000 + 1;
    return due < expiry ? due : expiry;
}

bool etcd_lease_done(etcd_lease *l)
{
    return l->free_req && !etcd_stream_active(&l->st);
}

int etcd_lease_new(etcd_client *c, int64_t ttl_s, etcd_lease **out, etcd_error *err)
{
    *out = NULL;
    int64_t t0 = 0, id = 0, granted = 0;  /* t0: when the granting request was sent */
    int rc = grant(c, ttl_s, &id, &granted, &t0, err);
    if (rc < 0)
        return rc;
    etcd_lease *l = calloc(1, sizeof *l);
    if (!l || (l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = l ? -errno : -ENOMEM;
        free(l);
        etcd_error rerr = {0}; /* granted but unusable here: do not leave it on the server */
        int rrc = revoke_id(c, id, &rerr);
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "cannot set up lease %llx: %s; %s",
                     (unsigned long long)id, strerror(-rc),
                     rrc < 0 ? "revoking it failed, it expires with its TTL" : "revoked");
        return rc;
    }
    l->c = c;
    l->id = id;
    l->ttl = granted;
    l->req_ttl = ttl_s;
    l->granted_at = t0;
    l->gen = 1;
    backoff_init(&l->bo, 100, 2000);
    etcd_stream_init(&l->st, c, KEEPALIVE_METHOD, l, on_message, on_closed);
    pthread_mutex_lock(&c->mu);
    l->next = c->leases;
    c->leases = l;
    etcd_client_kick_locked(c);  /* start its keep-alives now */
    pthread_mutex_unlock(&c->mu);
    *out = l;
    return 0;
}

int64_t etcd_lease_id(etcd_lease *l)
{
    pthread_mutex_lock(&l->c->mu);
    int64_t id = l->id;
    pthread_mutex_unlock(&l->c->mu);
    return id;
}

int64_t etcd_lease_last_answer_ms(etcd_lease *l)
{
    pthread_mutex_lock(&l->c->mu);
    int64_t at = l->answered_at > l->granted_at ? l->answered_at : l->granted_at;
    pthread_mutex_unlock(&l->c->mu);
    return at;
}

int64_t etcd_lease_ttl(etcd_lease *l)
{
    pthread_mutex_lock(&l->c->mu);
    int64_t ttl = l->ttl;
    pthread_mutex_unlock(&l->c->mu);
    return ttl;
}

int etcd_lease_fd(const etcd_lease *l)
{
    return l->efd;
}

bool etcd_lease_lost(etcd_lease *l)
{
    uint64_t v;
    pthread_mutex_lock(&l->c->mu);
    if (read(l->efd, &v, sizeof v) < 0) {
        /* EAGAIN: not signalled */
    }
    bool lost = l->lost;
    pthread_mutex_unlock(&l->c->mu);
    return lost;
}

void etcd_lease_loss(etcd_lease *l, etcd_error *why)
{
    pthread_mutex_lock(&l->c->mu);
    *why = l->loss;
    pthread_mutex_unlock(&l->c->mu);
}

int etcd_lease_regrant(etcd_lease *l, etcd_error *err)
{
    if (l->detached) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "lease was revoked");
        return -EINVAL;
    }
    int64_t t0 = 0, id = 0, granted = 0;  /* t0: when the granting request was sent */
    int rc = grant(l->c, l->req_ttl, &id, &granted, &t0, err);
    if (rc < 0)
        return rc;
    uint64_t v;
    pthread_mutex_lock(&l->c->mu);
    l->id = id;
    l->ttl = granted;
    l->granted_at = t0;
    l->gen++;
    l->lost = false;
    memset(&l->loss, 0, sizeof l->loss);
    if (read(l->efd, &v, sizeof v) < 0) {
        /* EAGAIN: not signalled */
    }
    etcd_client_kick_locked(l->c);
    pthread_mutex_unlock(&l->c->mu);
    return 0;
}

int etcd_lease_revoke(etcd_lease *l, etcd_error *err)
{
    if (!l->detached)
        etcd_client_detach(l->c, &l->free_req, &l->detached);
    return revoke_id(l->c, etcd_lease_id(l), err);
}

void etcd_lease_free(etcd_lease *l)
{
    if (!l)
        return;
    if (!l->detached)
        etcd_client_detach(l->c, &l->free_req, &l->detached);
    close(l->efd);
    free(l);
}
