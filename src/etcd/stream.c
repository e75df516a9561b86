/* stream.c -- one bidi gRPC call (Watch or LeaseKeepAlive) on the client thread's queue.
 *
 * Keeps the C core's rules: one outstanding send and one outstanding receive, a status op
 * pending for the life of the call, and every tag drained before the call is released. The
 * owner gets each message and, once, the final status. A request that gets no message back
 * within answer_ms marks the member hung (see internal.h). Used only from the client thread. */
#include "etcd/internal.h"

#include <errno.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_START, TAG_RECV, TAG_SEND, TAG_STATUS };

static void finish(struct etcd_stream *s);

void etcd_stream_init(struct etcd_stream *s, etcd_client *c, const char *method, void *owner,
                      void (*on_message)(void *, const uint8_t *, size_t),
                      void (*on_closed)(void *, int, const char *))
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->method = method;
    s->owner = owner;
    s->on_message = on_message;
    s->on_closed = on_closed;
    s->t_start = (struct etcd_stream_tag){s, TAG_START};
    s->t_recv = (struct etcd_stream_tag){s, TAG_RECV};
    s->t_send = (struct etcd_stream_tag){s, TAG_SEND};
    s->t_status = (struct etcd_stream_tag){s, TAG_STATUS};
    s->answer_ms = ETCD_ANSWER_MS;
}

bool etcd_stream_active(const struct etcd_stream *s)
{
    return s->call != NULL;
}

/* Start one batch; counts it as pending when it was accepted. */
static bool start(struct etcd_stream *s, grpc_op *ops, size_t n, struct etcd_stream_tag *t)
{
    if (grpc_call_start_batch(s->call, ops, n, t, NULL) != GRPC_CALL_OK)
        return false;
    s->pending++;
    return true;
}

static bool arm_recv(struct etcd_stream *s)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_bb;
    return start(s, &op, 1, &s->t_recv);
}

/* 0 when the stream can open with the current token; -EINPROGRESS while a token is fetched
 * (none yet, or etcd rejected the one this stream opened with last time). */
static int stream_auth(struct etcd_stream *s, bool refresh, etcd_error *err)
{
    if (!etcd_auth_needed(s->c))
        return 0;
    return etcd_auth_pending(s->c, refresh, s->auth_gen, &s->auth_fails_seen, err);
}

int etcd_stream_open(struct etcd_stream *s, bool refresh_auth, etcd_error *err)
{
    int rc = stream_auth(s, refresh_auth, err);
    if (rc < 0)
        return rc;
    char *token = NULL;
    s->ep = etcd_client_pick(s->c, &token, &s->auth_gen);
    s->call = grpc_channel_create_call(s->c->eps[s->ep].ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->c->cq,
                                       grpc_slice_from_static_string(s->method), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    s->pending = 0;
    s->sending = s->cancelled = s->status_done = s->paused = s->hung = false;
    s->asked_at = 0;
    s->heard_at = clock_now_ms();
    s->md[0].key = grpc_slice_from_static_string("hasleader");
    s->md[0].value = grpc_slice_from_static_string("true");
    s->n_md = 1;
    if (token) {
        s->md[1].key = grpc_slice_from_static_string("token");
        s->md[1].value = grpc_slice_from_copied_string(token);
        s->n_md = 2;
        free(token);
    }
    grpc_metadata_array_init(&s->recv_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();
    s->error_string = NULL;
    s->status = GRPC_STATUS_UNKNOWN;  /* until the status op reports */
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = s->n_md;
    ops[0].data.send_initial_metadata.metadata = s->md;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &s->recv_md;
    bool ok = start(s, ops, 2, &s->t_start);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[0].data.recv_status_on_client.status = &s->status;
    ops[0].data.recv_status_on_client.status_details = &s->details;
    ops[0].data.recv_status_on_client.error_string = &s->error_string;
    ok = start(s, ops, 1, &s->t_status) && ok;
    ok = ok && arm_recv(s);
    if (!ok) {
        etcd_err_set(err, ETCD_ERR_LOCAL, s->c->eps[s->ep].url, "cannot start %s", s->method);
        etcd_stream_cancel(s);
        if (s->pending == 0)  /* nothing will complete: release the call now */
            finish(s);
        return -EIO;
    }
    return 0;
}

int etcd_stream_send(struct etcd_stream *s, const uint8_t *buf, size_t len)
{
    if (!s->call || s->cancelled)
        return -ENOTCONN;
    if (s->sending)
        return -EBUSY;
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)buf, len);
    s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->send_bb;
    if (!start(s, &op, 1, &s->t_send)) {
        grpc_byte_buffer_destroy(s->send_bb);
        s->send_bb = NULL;
        return -EIO;
    }
    s->sending = true;
    if (s->asked_at == 0)
        s->asked_at = clock_now_ms();
    return 0;
}

void etcd_stream_cancel(struct etcd_stream *s)
{
    if (s->call && !s->cancelled) {
        s->cancelled = true;
        grpc_call_cancel(s->call, NULL);
    }
}

int64_t etcd_stream_check(struct etcd_stream *s, int64_t now)
{
    if (!s->call || s->cancelled || s->paused || s->asked_at == 0)
        return INT64_MAX;  /* (a paused stream reads nothing: its silence says nothing) */
    if (s->c->n_eps < 2)
        return INT64_MAX;  /* nowhere else to go: leaving a slow member would only cost */
    if (now - s->asked_at < s->answer_ms)
        return s->asked_at + s->answer_ms;
    s->hung = true;
    etcd_client_mark_hung(s->c, s->ep, now);
    etcd_stream_cancel(s);
    return INT64_MAX;
}

/* Every tag is back: release the call and tell the owner how it ended. */
static void finish(struct etcd_stream *s)
{
    char details[320];
    size_t n = GRPC_SLICE_LENGTH(s->details);
    n = n < sizeof details - 1 ? n : sizeof details - 1;
    memcpy(details, GRPC_SLICE_START_PTR(s->details), n);
    details[n] = '\0';
    if (s->error_string && n < 80 && s->status != GRPC_STATUS_CANCELLED)
        snprintf(details + n, sizeof details - n, "%s(%s)", n ? " " : "", s->error_string);
    int code = s->status;
    if (s->hung) {  /* we cancelled it: say why */
        code = GRPC_STATUS_DEADLINE_EXCEEDED;
        snprintf(details, sizeof details, "no answer within %lld ms (member hung?)",
                 (long long)s->answer_ms);
    }
    grpc_slice_unref(s->details);
    gpr_free((void *)s->error_string);
    s->error_string = NULL;
    grpc_metadata_array_destroy(&s->recv_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    for (size_t i = 0; i < s->n_md; i++)
        grpc_slice_unref(s->md[i].value);
    s->n_md = 0;
    grpc_call_unref(s->call);
    s->call = NULL;
    s->on_closed(s->owner, code, details);
}

/* A received message (or the end of the stream). */
static void got_message(struct etcd_stream *s, bool ok)
{
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    if (!ok || !bb) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;  /* the stream is over: the status op tells why */
    }
    s->asked_at = 0;  /* any message shows the member is alive */
    s->heard_at = clock_now_ms();
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = etcd_bb_read(bb, &buf, &len);
    grpc_byte_buffer_destroy(bb);
    if (rc == 0 && !s->cancelled)
        s->on_message(s->owner, buf, len);
    free(buf);
    if (rc < 0 || s->cancelled || (!s->paused && !arm_recv(s)))
        etcd_stream_cancel(s);
}

void etcd_stream_resume(struct etcd_stream *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    if (s->asked_at)  /* it was not read meanwhile: wait for the answer afresh */
        s->asked_at = clock_now_ms();
    s->heard_at = clock_now_ms();
    if (s->call && !s->cancelled && !arm_recv(s))
        etcd_stream_cancel(s);
}

void etcd_stream_complete(struct etcd_stream_tag *t, bool ok)
{
    struct etcd_stream *s = t->s;
    s->pending--;
    switch (t->kind) {
    case TAG_RECV:
        got_message(s, ok);
        break;
    case TAG_SEND:
        grpc_byte_buffer_destroy(s->send_bb);
        s->send_bb = NULL;
        s->sending = false;
        break;
    case TAG_STATUS:
        s->status_done = true;
        break;
    default:
        break;
    }
    if (s->pending == 0)
        finish(s);
}
