/* call.c -- synchronous unary gRPC calls to etcd with failover, deadline and auth retry.
 *
 * Each call gets its own pluck completion queue, so any thread may call at any time. A call
 * that fails with UNAVAILABLE moves the client to the next endpoint and is retried there when
 * its retry policy allows (mutating calls only when they cannot have been sent). A missing or
 * rejected token is fetched by the client thread (auth.c); the caller waits for it here.
 * An attempt on a member that a stream of this client has meanwhile found hung (internal.h,
 * "Member liveness"), or that does not answer a Status probe sent while the attempt waits, is
 * given up at once rather than at its deadline, and retried elsewhere when its policy allows. A call that may be sent twice, on a channel not connected yet, waits
 * at most ETCD_ANSWER_MS for it before trying the next member: a hung member accepts TCP
 * connections (the kernel does) but never finishes the HTTP/2 handshake. A Txn or Compact (sent
 * at most once) given up on a hung member returns DEADLINE_EXCEEDED: its outcome is unknown,
 * as after its deadline. */
#include "etcd/internal.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct unary_result {
    grpc_status_code status;
    char details[320];
    uint8_t *resp;
    size_t len;
    bool hung;  /* given up: a stream found the member hung meanwhile */
};

#define HUNG_POLL_MS 100  /* how often a waiting call looks whether its member was found hung */

static void unary_once(etcd_client *c, size_t ep, const char *method, const char *token,
                       int64_t timeout_ms, const uint8_t *req, size_t req_len, bool probe,
                       struct unary_result *r);

/* Ask member ep for its Status (answered locally, leader or not): no answer at all within
 * ETCD_ANSWER_MS marks it hung. Any answer, even a refusal, shows it alive. */
static void probe_member(etcd_client *c, size_t ep)
{
    struct unary_result pr;
    static const uint8_t empty[1];
    unary_once(c, ep, "/etcdserverpb.Maintenance/Status", NULL, ETCD_ANSWER_MS, empty, 0, false, &pr);
    free(pr.resp);
    if (pr.status == GRPC_STATUS_DEADLINE_EXCEEDED)
        etcd_client_mark_hung(c, ep, clock_now_ms());
}

/* Wait for the call's batch; cancel it when endpoint ep is found hung after it started --
 * by a stream, or (probe) by a Status probe sent each ETCD_ANSWER_MS the call goes
 * unanswered, so a call on a member no stream uses does not wait out its deadline.
 * Returns true when it was given up that way. */
static bool wait_call(etcd_client *c, size_t ep, grpc_completion_queue *cq, grpc_call *call,
                      bool probe)
{
    int64_t started = clock_now_ms(), probed = started;
    bool hung = false;
    for (;;) {
        gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(HUNG_POLL_MS, GPR_TIMESPAN));
        if (grpc_completion_queue_pluck(cq, (void *)1, dl, NULL).type != GRPC_QUEUE_TIMEOUT)
            return hung;
        if (probe && !hung && c->n_eps > 1 && clock_now_ms() - probed >= ETCD_ANSWER_MS) {
            probe_member(c, ep);
            probed = clock_now_ms();
        }
        if (!hung && etcd_client_hung_at(c, ep) >= started) {
            hung = true;
            grpc_call_cancel(call, NULL);  /* the batch completes at once */
        }
    }
}

/* Copy a received byte buffer (decompressed) into a malloc'd array. */
int etcd_bb_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb))
        return -EIO;
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    *len = GRPC_SLICE_LENGTH(s);
    *out = malloc(*len ? *len : 1);
    if (*out)
        memcpy(*out, GRPC_SLICE_START_PTR(s), *len);
    grpc_slice_unref(s);
    return *out ? 0 : -ENOMEM;
}

/* Status details plus gRPC's error string when the details alone say little. */
static void set_details(struct unary_result *r, grpc_slice details, const char *errstr)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= sizeof r->details)
        n = sizeof r->details - 1;
    memcpy(r->details, GRPC_SLICE_START_PTR(details), n);
    r->details[n] = '\0';
    if (errstr && r->status != GRPC_STATUS_OK && strncmp(r->details, "etcdserver:", 11) != 0
        && strlen(r->details) < 80) {
        size_t used = strlen(r->details);
        snprintf(r->details + used, sizeof r->details - used, "%s(%s)", used ? " " : "", errstr);
    }
}

/* One attempt on one channel: the six-op batch, waited for on a private pluck queue. Kept in
 * one piece (over the usual length) because every op's buffers live exactly this long. */
static void unary_once(etcd_client *c, size_t ep, const char *method, const char *token,
                       int64_t timeout_ms, const uint8_t *req, size_t req_len, bool probe,
                       struct unary_result *r)
{
    grpc_channel *ch = c->eps[ep].ch;
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                   gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               grpc_slice_from_static_string(method), NULL, dl, NULL);
    grpc_metadata md = {.key = grpc_slice_from_static_string("token"),
                        .value = token ? grpc_slice_from_copied_string(token) : grpc_empty_slice()};
    grpc_slice s = grpc_slice_from_copied_buffer((const char *)req, req_len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1), *recv = NULL;
    grpc_slice_unref(s);
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_slice details = grpc_empty_slice();
    const char *errstr = NULL;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = token ? 1 : 0;
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &r->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &errstr;
    r->resp = NULL;
    r->len = 0;
    r->hung = false;
    if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) {
        r->status = GRPC_STATUS_INTERNAL;
        snprintf(r->details, sizeof r->details, "grpc_call_start_batch failed");
    } else {
        r->hung = wait_call(c, ep, cq, call, probe);
        set_details(r, details, errstr);
        if (r->hung && r->status != GRPC_STATUS_OK) {
            r->status = GRPC_STATUS_DEADLINE_EXCEEDED;
            snprintf(r->details, sizeof r->details, "given up: the member stopped answering (hung?)");
        }
        if (r->status == GRPC_STATUS_OK && (!recv || etcd_bb_read(recv, &r->resp, &r->len) < 0)) {
            r->status = GRPC_STATUS_INTERNAL;
            snprintf(r->details, sizeof r->details, "no response message");
        }
    }
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(md.value);
    grpc_slice_unref(details);
    gpr_free((void *)errstr);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int etcd_unary(etcd_client *c, const char *method, const uint8_t *req, size_t req_len,
               enum etcd_retry retry, bool with_auth, uint8_t **resp, size_t *resp_len,
               etcd_error *err)
{
    return etcd_unary_timed(c, method, req, req_len, retry, with_auth, resp, resp_len, NULL, err);
}

int etcd_unary_timed(etcd_client *c, const char *method, const uint8_t *req, size_t req_len,
                     enum etcd_retry retry, bool with_auth, uint8_t **resp, size_t *resp_len,
                     int64_t *sent_at, etcd_error *err)
{
    if (pthread_equal(pthread_self(), c->thread)) {  /* it must never wait on the network */
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "synchronous etcd call on the client thread");
        return -EDEADLK;
    }
    int64_t deadline = clock_now_ms() + c->timeout_ms;
    bool reauthed = false;
    size_t fails = 0;
    backoff bo;
    backoff_init(&bo, 50, 1000);
    for (;;) {
        char *token = NULL;
        uint64_t gen = 0;
        size_t ep = etcd_client_pick(c, with_auth ? &token : NULL, &gen);
        if (with_auth && c->username && !token) {
            int rc = etcd_auth_wait(c, gen, deadline, err);
            if (rc < 0)
                return rc;
            continue;
        }
        int64_t left = deadline - clock_now_ms();
        if (left <= 0) {
            free(token);
            if (fails == 0)
                etcd_err_set(err, GRPC_STATUS_DEADLINE_EXCEEDED, c->eps[ep].url, "deadline exceeded");
            return fails ? etcd_errno_of(err ? err->code : GRPC_STATUS_UNAVAILABLE) : -ETIMEDOUT;
        }
        grpc_channel *ch = c->eps[ep].ch;
        bool ready = grpc_channel_check_connectivity_state(ch, 0) == GRPC_CHANNEL_READY;
        struct unary_result r;
        int64_t attempt_at = clock_now_ms();
        bool capped = !ready && retry == ETCD_RETRY_ALWAYS && c->n_eps > 1 && left > ETCD_ANSWER_MS;
        unary_once(c, ep, method, token, capped ? ETCD_ANSWER_MS : left, req, req_len, true,
                   &r);
        free(token);
        if (r.status == GRPC_STATUS_OK) {
            *resp = r.resp;
            *resp_len = r.len;
            if (sent_at)
                *sent_at = attempt_at;
            return 0;
        }
        etcd_err_set(err, r.status, c->eps[ep].url, "%s", r.details);
        if (with_auth && c->username && !reauthed && etcd_auth_error(r.status, r.details)) {
            reauthed = true;
            int rc = etcd_auth_wait(c, gen, deadline, err);
            if (rc < 0)
                return rc;
            continue;
        }
        /* No answer in time: the member may be unreachable, or cut off from the leader (a
         * linearizable call then waits for etcd's own 7 s timeout): use another one next. */
        if (r.status == GRPC_STATUS_DEADLINE_EXCEEDED)
            etcd_client_rotate(c, ep);
        if ((r.hung || capped) && r.status == GRPC_STATUS_DEADLINE_EXCEEDED
            && retry == ETCD_RETRY_ALWAYS) {  /* safe to send again, elsewhere */
            fails++;
            continue;
        }
        if (r.status != GRPC_STATUS_UNAVAILABLE)
            return etcd_errno_of(r.status);
        etcd_client_rotate(c, ep);
        if (!(retry == ETCD_RETRY_ALWAYS || (retry == ETCD_RETRY_UNSENT && !ready)))
            return etcd_errno_of(r.status);
        if (++fails % c->n_eps == 0) {
            int64_t d = backoff_next(&bo);
            left = deadline - clock_now_ms();
            sleep_ms(d < left ? d : (left > 0 ? left : 0));
        }
    }
}
