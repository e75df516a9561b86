/* ipvs_internal.h -- what the files of src/ipvs/ share; not part of the module's API.
 *
 * ipvs_conn.c owns the socket (send, receive with a timeout), ipvs_msg.c turns values into
 * attributes and back (every parsed attribute goes through an nla_policy), ipvs_dump.c and
 * ipvs_apply.c speak the two exchanges, ipvs_value.c holds the pure helpers. */
#ifndef CLUSTERF_IPVS_INTERNAL_H
#define CLUSTERF_IPVS_INTERNAL_H

#include "ipvs/ipvs.h"

#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

struct ipvs_conn {
    struct nl_sock *sk;
    int fd;
    int family;              /* generic netlink id of "IPVS" */
    uint32_t port;           /* our netlink port id */
    uint32_t seq;            /* next sequence number */
    unsigned timeout_ms;
    size_t max_batch;        /* ops per sendmsg in use */
    size_t max_bytes;        /* bytes per sendmsg */
    uint8_t *rbuf;           /* receive buffer, grown to the largest datagram */
    size_t rcap;
    struct ipvs_counters counters;
    /* The service dump read in parts (ipvs_dump_services_part), on a socket of its own. */
    struct nl_sock *part_sk;  /* NULL: none open */
    uint32_t part_seq;
    bool parting;             /* a dump in parts is under way on part_sk */
};

/* Fill err (if not NULL) with code and a printf message; returns code. */
int ipvs_seterr(struct ipvs_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Send one datagram to the kernel. Returns 0 or -errno. */
int ipvs_send(ipvs_conn *c, const void *buf, size_t len);
/* Receive one datagram into c->rbuf; nonblock: do not wait. Returns its length, or -EAGAIN
 * (timeout / nothing queued), -ENOBUFS (the kernel dropped messages), another -errno. */
int ipvs_recv(ipvs_conn *c, bool nonblock);
/* ipvs_send on another socket of c (fd). */
int ipvs_send_fd(int fd, const void *buf, size_t len);
/* Open c's socket for dumps read in parts (no-op when open; the receive timeout is c's).
 * 0 or -errno. */
int ipvs_conn_part_open(ipvs_conn *c, struct ipvs_err *err);
/* Close it (dropping a dump under way); no-op when closed. */
void ipvs_conn_part_close(ipvs_conn *c);
/* ipvs_recv on another socket of c (fd), into the same buffer, reading each datagram with
 * its own length: the kernel then keeps the datagrams of that socket's dumps at about a page
 * (~35 services), so a dump read in parts can stop after few services. */
int ipvs_recv_fd(ipvs_conn *c, int fd, bool nonblock);
/* Throw away whatever is queued (answers to an exchange that timed out). */
void ipvs_drain(ipvs_conn *c);
/* A new message for cmd with the given netlink flags and sequence number, or NULL. */
struct nl_msg *ipvs_msg_new(ipvs_conn *c, uint8_t cmd, int flags, uint32_t seq);

/* Put a nested IPVS_CMD_ATTR_SERVICE: identity only, or full (scheduler, flags, timeout,
 * netmask, PE). Returns 0 or -EMSGSIZE. */
int ipvs_put_service(struct nl_msg *m, const struct ipvs_service *s, bool full);
/* Put a nested IPVS_CMD_ATTR_DEST of svc: identity only, or full. Returns 0 or -EMSGSIZE. */
int ipvs_put_dest(struct nl_msg *m, const struct ipvs_service *svc, const struct ipvs_dest *d,
                  bool full);
/* Parse a NEW_SERVICE / NEW_DEST dump message. Returns 0, or -EINVAL when an attribute is
 * missing, of the wrong size, or out of range (what says which). */
int ipvs_parse_service_msg(struct nlmsghdr *nlh, struct ipvs_service *out, const char **what);
int ipvs_parse_dest_msg(struct nlmsghdr *nlh, const struct ipvs_service *svc,
                        struct ipvs_dest *out, const char **what);

#endif
