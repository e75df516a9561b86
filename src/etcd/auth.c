/* auth.c -- etcd authentication: one token per client, fetched with Auth/Authenticate as a
 * tagged batch on the client's completion queue, so the client thread never waits for it.
 *
 * Whoever finds the token missing or rejected asks for a new one; one Authenticate is in
 * flight at a time and everyone shares its result. Streams poll for the token from their tick;
 * unary callers (other threads) wait on the client's condition variable. A failed attempt is
 * retried with backoff, and its error (a wrong password, an unreachable member) is kept so
 * that waiters report it. Not here: sending the token (call.c, stream.c). */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUTH_METHOD "/etcdserverpb.Auth/Authenticate"

bool etcd_auth_needed(etcd_client *c)
{
    return c->username != NULL;
}

bool etcd_auth_error(int code, const char *details)
{
    if (code == GRPC_STATUS_UNAUTHENTICATED)
        return strstr(details, "invalid auth token") != NULL;
    if (code == GRPC_STATUS_INVALID_ARGUMENT)
        return strstr(details, "revision of auth store is old") != NULL ||
               strstr(details, "user name is empty") != NULL;
    return false;
}

bool etcd_auth_busy(const etcd_client *c)
{
    return c->auth.call != NULL;
}

/* Called with c->mu held. */
static void want_locked(etcd_client *c, uint64_t seen_gen)
{
    if (c->token_gen == seen_gen)
        c->auth.wanted = true;
}

static void deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (deadline_ms % 1000) * 1000000L;
}

/* A failure another attempt (on another endpoint, after a backoff) may cure. */
static bool transient(int code)
{
    return code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED;
}

int etcd_auth_wait(etcd_client *c, uint64_t seen_gen, int64_t deadline_ms, etcd_error *err)
{
    if (pthread_equal(pthread_self(), c->thread)) {  /* would wait for itself */
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "auth wait on the client thread");
        return -EDEADLK;
    }
    struct timespec ts;
    deadline_ts(deadline_ms, &ts);
    pthread_mutex_lock(&c->mu);
    want_locked(c, seen_gen);
    etcd_client_kick_locked(c);
    const etcd_error *last = &c->auth.last_err;
    uint64_t fails0 = c->auth.fails, fails = fails0;
    bool timed_out = false;
    /* wait for a token, a definitive failure, or the deadline (through transient failures) */
    while (c->token_gen == seen_gen && !c->stopping && !timed_out) {
        if (c->auth.fails != fails && !transient(last->code))
            break;
        fails = c->auth.fails;
        timed_out = pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT;
    }
    int rc = 0;
    if (c->token_gen != seen_gen) {
        rc = 0;
    } else if (c->auth.fails != fails0) {
        if (err)
            *err = *last;
        rc = last->code == ETCD_ERR_LOCAL ? -EPROTO : etcd_errno_of(last->code);
    } else {
        etcd_err_set(err, GRPC_STATUS_DEADLINE_EXCEEDED, NULL, "no auth token in time");
        rc = -ETIMEDOUT;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int etcd_auth_pending(etcd_client *c, bool rejected, uint64_t rejected_gen, uint64_t *seen,
                      etcd_error *err)
{
    pthread_mutex_lock(&c->mu);
    bool wait = !c->token || (rejected && c->token_gen == rejected_gen);
    if (wait)
        c->auth.wanted = true;
    if (wait && c->auth.fails > *seen && err) {
        *err = c->auth.last_err;
        *seen = c->auth.fails;
    }
    pthread_mutex_unlock(&c->mu);
    return wait ? -EINPROGRESS : 0;
}

/* Pack the request and start the six-op batch on the client's queue. Kept in one piece:
 * every op points into struct etcd_auth, released together by auth_release. */
static int auth_start(etcd_client *c)
{
    struct etcd_auth *a = &c->auth;
    Etcdserverpb__AuthenticateRequest req = ETCDSERVERPB__AUTHENTICATE_REQUEST__INIT;
    req.name = c->username;
    req.password = c->password;
    size_t len = etcdserverpb__authenticate_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    etcdserverpb__authenticate_request__pack(&req, buf);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, len);
    free(buf);
    a->ep = etcd_client_pick(c, NULL, NULL);
    gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                   gpr_time_from_millis(c->timeout_ms, GPR_TIMESPAN));
    a->call = grpc_channel_create_call(c->eps[a->ep].ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                       grpc_slice_from_static_string(AUTH_METHOD), NULL, dl, NULL);
    a->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    a->recv_bb = NULL;
    grpc_metadata_array_init(&a->init_md);
    grpc_metadata_array_init(&a->trail_md);
    a->details = grpc_empty_slice();
    a->error_string = NULL;
    a->status = GRPC_STATUS_UNKNOWN;
    a->tag = (struct etcd_stream_tag){NULL, ETCD_TAG_AUTH};
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = a->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &a->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &a->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &a->trail_md;
    ops[5].data.recv_status_on_client.status = &a->status;
    ops[5].data.recv_status_on_client.status_details = &a->details;
    ops[5].data.recv_status_on_client.error_string = &a->error_string;
    if (grpc_call_start_batch(a->call, ops, 6, &a->tag, NULL) != GRPC_CALL_OK) {
        a->status = GRPC_STATUS_INTERNAL;
        etcd_auth_complete(c, false);  /* releases the call and schedules a retry */
        return -EIO;
    }
    return 0;
}

int64_t etcd_auth_tick(etcd_client *c, int64_t now)
{
    struct etcd_auth *a = &c->auth;
    if (!etcd_auth_needed(c))
        return INT64_MAX;
    pthread_mutex_lock(&c->mu);
    bool stopping = c->stopping;
    bool wanted = a->wanted || !c->token;
    pthread_mutex_unlock(&c->mu);
    if (a->call) {
        if (stopping)
            grpc_call_cancel(a->call, NULL);
        return INT64_MAX;  /* its completion wakes the thread */
    }
    if (stopping || !wanted)
        return INT64_MAX;
    if (now < a->retry_at)
        return a->retry_at;
    if (auth_start(c) == -ENOMEM)
        a->retry_at = now + backoff_next(&a->bo);
    return a->call ? INT64_MAX : a->retry_at;
}

/* The call's outcome: 0 and a malloc'd token, or -errno with err filled. */
static int auth_result(etcd_client *c, bool ok, char **token, etcd_error *err)
{
    struct etcd_auth *a = &c->auth;
    const char *url = c->eps[a->ep].url;
    if (a->status != GRPC_STATUS_OK) {
        size_t n = GRPC_SLICE_LENGTH(a->details);
        const char *d = (const char *)GRPC_SLICE_START_PTR(a->details);
        bool more = a->error_string && n < 80 && (n < 11 || strncmp(d, "etcdserver:", 11) != 0);
        etcd_err_set(err, a->status, url, "authenticate as %s: %.*s%s%s", c->username,
                     (int)(n < 240 ? n : 240), d, more ? " " : "", more ? a->error_string : "");
        return etcd_errno_of(a->status);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    Etcdserverpb__AuthenticateResponse *r = NULL;
    if (ok && a->recv_bb && etcd_bb_read(a->recv_bb, &buf, &len) == 0)
        r = etcdserverpb__authenticate_response__unpack(NULL, len, buf);
    free(buf);
    *token = r && r->token && *r->token ? strdup(r->token) : NULL;
    etcdserverpb__authenticate_response__free_unpacked(r, NULL);
    if (!*token) {
        etcd_err_set(err, ETCD_ERR_LOCAL, url, "bad Authenticate response");
        return -EPROTO;
    }
    return 0;
}

/* Release everything the batch held. */
static void auth_release(struct etcd_auth *a)
{
    if (a->recv_bb)
        grpc_byte_buffer_destroy(a->recv_bb);
    grpc_byte_buffer_destroy(a->send_bb);
    a->recv_bb = a->send_bb = NULL;
    grpc_slice_unref(a->details);
    gpr_free((void *)a->error_string);
    a->error_string = NULL;
    grpc_metadata_array_destroy(&a->init_md);
    grpc_metadata_array_destroy(&a->trail_md);
    grpc_call_unref(a->call);
    a->call = NULL;
}

void etcd_auth_complete(etcd_client *c, bool ok)
{
    struct etcd_auth *a = &c->auth;
    char *token = NULL;
    etcd_error err = {0};
    int rc = auth_result(c, ok, &token, &err);
    int code = a->status;
    size_t ep = a->ep;
    auth_release(a);
    if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED)
        etcd_client_rotate(c, ep);
    if (rc == 0)
        backoff_reset(&a->bo);
    else
        a->retry_at = clock_now_ms() + backoff_next(&a->bo);
    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        free(c->token);
        c->token = token;
        c->token_gen++;
        a->wanted = false;
    } else {
        a->last_err = err;
        a->fails++;
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}
