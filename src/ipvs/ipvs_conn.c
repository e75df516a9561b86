/* ipvs_conn.c -- the generic netlink socket to the kernel's IPVS: open, resolve the family,
 * size the buffers, send datagrams and receive them with a timeout.
 *
 * libnl builds the socket and resolves the family; datagrams are sent and received on the raw
 * fd so that a batch is one sendmsg and every answer's error code is read as the kernel wrote
 * it (libnl maps ESRCH and ENOENT to the same code). */
#include "ipvs/ipvs_internal.h"

#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

enum {
    SNDBUF_WANT = 4 << 20,      /* asked for with SO_SNDBUFFORCE (root) */
    RCVBUF_WANT = 8 << 20,      /* asked for with SO_RCVBUFFORCE (root) */
    ACK_TRUESIZE = 2048,        /* generous receive-buffer cost of one ACK skb */
    BATCH_CAP = 1024,           /* ops per sendmsg, at most */
    BYTES_CAP = 256 << 10,      /* bytes per sendmsg, at most */
    RBUF_MIN = 64 << 10,
    TIMEOUT_MS_DEFAULT = 5000,
};

int ipvs_seterr(struct ipvs_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

/* Set a socket buffer with the FORCE option (root), else the plain one; returns the size the
 * kernel granted. */
static int set_buf(int fd, int force_opt, int opt, int want)
{
    int got = 0;
    socklen_t len = sizeof(got);
    if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) < 0)
        setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
    if (getsockopt(fd, SOL_SOCKET, opt, &got, &len) < 0)
        return 0;
    return got;
}

static void apply_timeout(const ipvs_conn *c, int fd)
{
    struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
                          .tv_usec = (c->timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Buffer sizes, and the batch bounds that follow from what the kernel granted. */
static void size_buffers(ipvs_conn *c, int snd_want, int rcv_want)
{
    int sndbuf = set_buf(c->fd, SO_SNDBUFFORCE, SO_SNDBUF, snd_want);
    int rcvbuf = set_buf(c->fd, SO_RCVBUFFORCE, SO_RCVBUF, rcv_want);
    size_t by_rcv = rcvbuf > 0 ? (size_t)rcvbuf / ACK_TRUESIZE : 16;
    c->max_batch = by_rcv < 16 ? 16 : by_rcv > BATCH_CAP ? BATCH_CAP : by_rcv;
    c->max_bytes = sndbuf > 4096 ? (size_t)sndbuf / 2 : 4096;
    if (c->max_bytes > BYTES_CAP)
        c->max_bytes = BYTES_CAP;
}

/* Buffers, capped ACKs (no request echoed in an error) and the receive timeout. */
static void tune_socket(ipvs_conn *c)
{
    int one = 1;
    size_buffers(c, SNDBUF_WANT, RCVBUF_WANT);
    setsockopt(c->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    c->timeout_ms = TIMEOUT_MS_DEFAULT;
    apply_timeout(c, c->fd);
}

void ipvs_conn_set_buffers(ipvs_conn *c, int sndbuf, int rcvbuf)
{
    int cur_snd = 0, cur_rcv = 0;
    socklen_t len = sizeof(int);
    getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &cur_snd, &len);
    len = sizeof(int);
    getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &cur_rcv, &len);
    /* getsockopt reports double what was set; halve it to keep the size. */
    size_buffers(c, sndbuf > 0 ? sndbuf : cur_snd / 2, rcvbuf > 0 ? rcvbuf : cur_rcv / 2);
}

static int resolve_family(ipvs_conn *c, struct ipvs_err *err)
{
    int id = genl_ctrl_resolve(c->sk, IPVS_GENL_NAME);
    if (id == -NLE_OBJ_NOTFOUND)
        return ipvs_seterr(err, IPVS_ERR_ABSENT, IPVS_ABSENT_MSG);
    if (id < 0)
        return ipvs_seterr(err, -EIO, "resolving generic netlink family %s: %s",
                           IPVS_GENL_NAME, nl_geterror(id));
    c->family = id;
    return 0;
}

int ipvs_conn_new(ipvs_conn **out, struct ipvs_err *err)
{
    int rc;
    ipvs_conn *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    c->fd = -1;
    c->sk = nl_socket_alloc();
    if (!c->sk) {
        rc = ipvs_seterr(err, -ENOMEM, "out of memory");
        goto fail;
    }
    rc = genl_connect(c->sk);
    if (rc < 0) {
        rc = ipvs_seterr(err, -EIO, "opening a generic netlink socket: %s", nl_geterror(rc));
        goto fail;
    }
    c->fd = nl_socket_get_fd(c->sk);
    c->port = nl_socket_get_local_port(c->sk);
    rc = resolve_family(c, err);
    if (rc < 0)
        goto fail;
    tune_socket(c);
    c->seq = (uint32_t)random() | 1u;
    *out = c;
    return 0;
fail:
    ipvs_conn_free(c);
    return rc;
}

int ipvs_conn_part_open(ipvs_conn *c, struct ipvs_err *err)
{
    if (c->part_sk)
        return 0;
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    int rc = genl_connect(sk);
    if (rc < 0) {
        nl_socket_free(sk);
        return ipvs_seterr(err, -EIO, "opening a generic netlink socket: %s", nl_geterror(rc));
    }
    c->part_sk = sk;
    apply_timeout(c, nl_socket_get_fd(sk));
    return 0;
}

void ipvs_conn_part_close(ipvs_conn *c)
{
    nl_socket_free(c->part_sk);
    c->part_sk = NULL;
    c->parting = false;
}

void ipvs_conn_free(ipvs_conn *c)
{
    if (!c)
        return;
    ipvs_conn_part_close(c);
    nl_socket_free(c->sk);
    free(c->rbuf);
    free(c);
}

void ipvs_conn_set_timeout_ms(ipvs_conn *c, unsigned ms)
{
    c->timeout_ms = ms ? ms : 1;
    apply_timeout(c, c->fd);
    if (c->part_sk)
        apply_timeout(c, nl_socket_get_fd(c->part_sk));
}

void ipvs_conn_set_max_batch(ipvs_conn *c, size_t max_ops)
{
    c->max_batch = max_ops ? max_ops : 1;
}

size_t ipvs_conn_max_batch(const ipvs_conn *c)
{
    return c->max_batch;
}

void ipvs_conn_counters(const ipvs_conn *c, struct ipvs_counters *out)
{
    *out = c->counters;
}

static int iface_dump(void *self, struct ipvs_table **out, struct ipvs_err *err)
{
    return ipvs_dump(self, out, err);
}

static int iface_dump_services(void *self, struct ipvs_service **out, size_t *n,
                               struct ipvs_err *err)
{
    return ipvs_dump_services(self, out, n, err);
}

static int iface_dump_dests(void *self, const struct ipvs_service *svc, struct ipvs_dest **out,
                            size_t *n, struct ipvs_err *err)
{
    return ipvs_dump_dests(self, svc, out, n, err);
}

static int iface_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    return ipvs_apply(self, ops, n, err);
}

static int iface_dump_services_part(void *self, struct ipvs_service_list *list, size_t max,
                                    struct ipvs_err *err)
{
    return ipvs_dump_services_part(self, list, max, err);
}

static void iface_dump_services_stop(void *self)
{
    ipvs_dump_services_stop(self);
}

struct ipvs_iface ipvs_conn_iface(ipvs_conn *c)
{
    return (struct ipvs_iface){ .self = c, .dump = iface_dump,
                                .dump_services = iface_dump_services,
                                .dump_dests = iface_dump_dests, .apply = iface_apply,
                                .dump_services_part = iface_dump_services_part,
                                .dump_services_stop = iface_dump_services_stop };
}

int ipvs_send(ipvs_conn *c, const void *buf, size_t len)
{
    return ipvs_send_fd(c->fd, buf, len);
}

int ipvs_send_fd(int fd, const void *buf, size_t len)
{
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    ssize_t n;
    do
        n = sendto(fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Make c->rbuf hold at least need bytes. */
static int grow_rbuf(ipvs_conn *c, size_t need)
{
    if (need < RBUF_MIN)
        need = RBUF_MIN;
    if (c->rcap >= need)
        return 0;
    uint8_t *p = realloc(c->rbuf, need);
    if (!p)
        return -ENOMEM;
    c->rbuf = p;
    c->rcap = need;
    return 0;
}

/* Receive one datagram from fd into c->rbuf, asking for exactly its length when exact (the
 * kernel sizes the datagrams of a socket's dumps after the largest read it saw, from one page
 * up to 32 KiB). Returns as ipvs_recv. */
static int recv_datagram(ipvs_conn *c, int fd, bool nonblock, bool exact)
{
    int flags = nonblock ? MSG_DONTWAIT : 0;
    ssize_t n;
    do /* peek at the real size first, so no datagram is ever truncated */
        n = recv(fd, NULL, 0, flags | MSG_PEEK | MSG_TRUNC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (grow_rbuf(c, (size_t)n) < 0)
        return -ENOMEM;
    size_t want = exact ? (size_t)n : c->rcap;
    do
        n = recv(fd, c->rbuf, want, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return (int)n;
}

int ipvs_recv(ipvs_conn *c, bool nonblock)
{
    return recv_datagram(c, c->fd, nonblock, false);
}

int ipvs_recv_fd(ipvs_conn *c, int fd, bool nonblock)
{
    return recv_datagram(c, fd, nonblock, true);
}

void ipvs_drain(ipvs_conn *c)
{
    int n;
    do
        n = ipvs_recv(c, true);
    while (n >= 0 || n == -ENOBUFS);
}

struct nl_msg *ipvs_msg_new(ipvs_conn *c, uint8_t cmd, int flags, uint32_t seq)
{
    struct nl_msg *m = nlmsg_alloc();
    if (!m)
        return NULL;
    if (!genlmsg_put(m, c->port, seq, c->family, 0, flags, cmd, IPVS_GENL_VERSION)) {
        nlmsg_free(m);
        return NULL;
    }
    return m;
}
