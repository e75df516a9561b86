/* ipvs_apply.c -- send a batch of IPVS changes in as few sendmsg calls as possible and match
 * every ACK to its op.
 *
 * Each op is one complete message (NLM_F_REQUEST|NLM_F_ACK, its own sequence number); a chunk
 * of them is concatenated into one datagram, which the kernel processes in order inside
 * sendmsg, answering each with an NLMSG_ERROR (0 or -errno). Chunks are bounded so that all
 * their ACKs fit the receive buffer (NETLINK_CAP_ACK keeps them small). */
#include "ipvs/ipvs_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One chunk on the wire: the datagram being built and the ops it carries. */
struct chunk {
    uint8_t *buf;
    size_t len, cap;
    size_t first, count;      /* ops[first .. first+count) */
    uint32_t seq0;            /* sequence number of ops[first] */
};

static uint8_t op_cmd(enum ipvs_op_kind kind)
{
    switch (kind) {
    case IPVS_OP_ADD_SERVICE: return IPVS_CMD_NEW_SERVICE;
    case IPVS_OP_EDIT_SERVICE: return IPVS_CMD_SET_SERVICE;
    case IPVS_OP_DEL_SERVICE: return IPVS_CMD_DEL_SERVICE;
    case IPVS_OP_ADD_DEST: return IPVS_CMD_NEW_DEST;
    case IPVS_OP_EDIT_DEST: return IPVS_CMD_SET_DEST;
    case IPVS_OP_DEL_DEST: return IPVS_CMD_DEL_DEST;
    case IPVS_OP_FLUSH: return IPVS_CMD_FLUSH;
    }
    return 0;
}

/* Encode op as a complete netlink message into a new nl_msg (NULL: -ENOMEM or -EINVAL). */
static int encode_op(ipvs_conn *c, const struct ipvs_op *op, uint32_t seq, struct nl_msg **out)
{
    uint8_t cmd = op_cmd(op->kind);
    int rc = 0;
    *out = NULL;
    if (!cmd)
        return -EINVAL;
    struct nl_msg *m = ipvs_msg_new(c, cmd, NLM_F_REQUEST | NLM_F_ACK, seq);
    if (!m)
        return -ENOMEM;
    switch (op->kind) {
    case IPVS_OP_ADD_SERVICE:
    case IPVS_OP_EDIT_SERVICE:
        rc = ipvs_put_service(m, &op->svc, true);
        break;
    case IPVS_OP_DEL_SERVICE:
        rc = ipvs_put_service(m, &op->svc, false);
        break;
    case IPVS_OP_ADD_DEST:
    case IPVS_OP_EDIT_DEST:
    case IPVS_OP_DEL_DEST:
        rc = ipvs_put_service(m, &op->svc, false);
        if (rc == 0)
            rc = ipvs_put_dest(m, &op->svc, &op->dest, op->kind != IPVS_OP_DEL_DEST);
        break;
    case IPVS_OP_FLUSH:
        break;
    }
    if (rc < 0) {
        nlmsg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static int chunk_append(struct chunk *ch, const struct nlmsghdr *nlh)
{
    size_t len = NLMSG_ALIGN(nlh->nlmsg_len);
    if (ch->len + len > ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 16384;
        while (cap < ch->len + len)
            cap *= 2;
        uint8_t *p = realloc(ch->buf, cap);
        if (!p)
            return -ENOMEM;
        ch->buf = p;
        ch->cap = cap;
    }
    memcpy(ch->buf + ch->len, nlh, nlh->nlmsg_len);
    memset(ch->buf + ch->len + nlh->nlmsg_len, 0, len - nlh->nlmsg_len);
    ch->len += len;
    return 0;
}

/* The outcome of op for the kernel's answer e (0 or -errno). */
static enum ipvs_outcome outcome_of(enum ipvs_op_kind kind, int e)
{
    if (e == 0)
        return IPVS_APPLIED;
    if ((kind == IPVS_OP_ADD_SERVICE || kind == IPVS_OP_ADD_DEST) && e == -EEXIST)
        return IPVS_ALREADY;
    if (kind == IPVS_OP_DEL_SERVICE && e == -ESRCH)
        return IPVS_ALREADY;
    if (kind == IPVS_OP_DEL_DEST && (e == -ENOENT || e == -ESRCH))
        return IPVS_ALREADY;
    return IPVS_FAILED;
}

/* Fill ops of ch from n_ops starting at *next until a bound is hit. Returns 0 or -errno;
 * an op that cannot be encoded is FAILED on the spot and not sent. */
static int chunk_fill(ipvs_conn *c, struct chunk *ch, struct ipvs_op *ops, size_t n, size_t *next)
{
    ch->len = 0;
    ch->first = *next;
    ch->count = 0;
    ch->seq0 = c->seq;
    while (*next < n && ch->count < c->max_batch) {
        struct ipvs_op *op = &ops[*next];
        struct nl_msg *m = NULL;
        int rc = encode_op(c, op, ch->seq0 + (uint32_t)ch->count, &m);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {                /* bad kind or oversize: this op only */
            op->outcome = IPVS_FAILED;
            op->error = rc;
        } else {
            if (ch->count > 0 && ch->len + nlmsg_hdr(m)->nlmsg_len > c->max_bytes) {
                nlmsg_free(m);
                break;
            }
            rc = chunk_append(ch, nlmsg_hdr(m));
            nlmsg_free(m);
            if (rc < 0)
                return rc;
        }
        ch->count++;
        (*next)++;
    }
    c->seq = ch->seq0 + (uint32_t)ch->count;
    return 0;
}

/* Record the ACKs in one received datagram; returns how many pending ops got answered. */
static size_t take_acks(const struct chunk *ch, struct ipvs_op *ops, const uint8_t *buf, int len)
{
    size_t answered = 0;
    const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
    for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
        if (nlh->nlmsg_type != NLMSG_ERROR ||
            nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
            continue;
        uint32_t idx = nlh->nlmsg_seq - ch->seq0;    /* wraps for foreign numbers */
        if (idx >= ch->count)
            continue;
        struct ipvs_op *op = &ops[ch->first + idx];
        if (op->outcome != IPVS_PENDING)
            continue;
        const struct nlmsgerr *e = NLMSG_DATA(nlh);
        op->error = e->error;
        op->outcome = outcome_of(op->kind, e->error);
        answered++;
    }
    return answered;
}

static size_t chunk_pending(const struct chunk *ch, const struct ipvs_op *ops)
{
    size_t n = 0;
    for (size_t i = ch->first; i < ch->first + ch->count; i++)
        n += ops[i].outcome == IPVS_PENDING;
    return n;
}

/* Mark every unanswered op of ch FAILED with code. */
static void chunk_fail(const struct chunk *ch, struct ipvs_op *ops, int code)
{
    for (size_t i = ch->first; i < ch->first + ch->count; i++)
        if (ops[i].outcome == IPVS_PENDING) {
            ops[i].outcome = IPVS_FAILED;
            ops[i].error = code;
        }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Receive ACKs until every op of ch is answered. After ENOBUFS only what is already queued
 * is read (the kernel answered everything inside sendmsg), the rest is lost. */
static int collect_acks(ipvs_conn *c, const struct chunk *ch, struct ipvs_op *ops,
                        struct ipvs_err *err)
{
    size_t pending = chunk_pending(ch, ops);
    bool overrun = false;
    double deadline = now_ms() + c->timeout_ms;
    while (pending > 0) {
        /* Past the deadline (other traffic kept the socket busy), only read what is queued. */
        int len = ipvs_recv(c, overrun || now_ms() > deadline);
        if (len == -ENOBUFS) {
            overrun = true;
            continue;
        }
        if (len == -EAGAIN) {
            int code = overrun ? -ENOBUFS : -ETIMEDOUT;
            chunk_fail(ch, ops, code);
            return ipvs_seterr(err, code, overrun
                ? "IPVS: the kernel dropped %zu answers (receive buffer overrun); re-dump"
                : "IPVS: %zu answers missing after %u ms; re-dump", pending, c->timeout_ms);
        }
        if (len < 0) {
            chunk_fail(ch, ops, len);
            return ipvs_seterr(err, len, "IPVS: receiving answers: %s", strerror(-len));
        }
        size_t got = take_acks(ch, ops, c->rbuf, len);
        pending = got > pending ? 0 : pending - got;
    }
    return 0;
}

static int send_chunk(ipvs_conn *c, const struct chunk *ch, struct ipvs_op *ops,
                      struct ipvs_err *err)
{
    int rc = ipvs_send(c, ch->buf, ch->len);
    c->counters.sendmsgs++;
    c->counters.ops += ch->count;
    if (rc < 0) {
        chunk_fail(ch, ops, rc);
        return ipvs_seterr(err, rc, "IPVS: sending %zu ops (%zu bytes): %s", ch->count,
                           ch->len, strerror(-rc));
    }
    return collect_acks(c, ch, ops, err);
}

int ipvs_apply(ipvs_conn *c, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    struct chunk ch = { 0 };
    size_t next = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ops[i].outcome = IPVS_PENDING;
        ops[i].error = 0;
    }
    ipvs_drain(c);
    while (next < n) {
        rc = chunk_fill(c, &ch, ops, n, &next);
        if (rc < 0) {
            chunk_fail(&ch, ops, rc);
            ipvs_seterr(err, rc, "IPVS: out of memory building a batch");
            break;
        }
        if (ch.len == 0)
            continue;                 /* every op of the chunk failed to encode */
        rc = send_chunk(c, &ch, ops, err);
        if (rc < 0)
            break;
    }
    for (size_t i = next; i < n; i++)
        if (ops[i].outcome == IPVS_PENDING) {
            ops[i].outcome = IPVS_FAILED;
            ops[i].error = rc < 0 ? rc : -ECANCELED;
        }
    free(ch.buf);
    return rc;
}

size_t ipvs_ops_count(const struct ipvs_op *ops, size_t n, enum ipvs_outcome outcome)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ops[i].outcome == outcome;
    return k;
}
