/* ipvs_value.c -- pure helpers on IPVS values: identity order, config equality (with the
 * kernel's defaults normalised), text forms for logs, and the growable op batch. No I/O. */
#include "ipvs/ipvs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u32(uint32_t a, uint32_t b)
{
    return a < b ? -1 : a > b;
}

static size_t alen(uint16_t af)
{
    return af == AF_INET6 ? 16 : 4;
}

int ipvs_service_cmp(const struct ipvs_service *a, const struct ipvs_service *b)
{
    int r = cmp_u32(a->af, b->af);
    if (r)
        return r;
    if ((r = cmp_u32(a->fwmark != 0, b->fwmark != 0)) || a->fwmark)
        return r ? r : cmp_u32(a->fwmark, b->fwmark);
    if ((r = cmp_u32(a->protocol, b->protocol)))
        return r;
    if ((r = memcmp(a->addr, b->addr, alen(a->af))))
        return r;
    return cmp_u32(a->port, b->port);
}

static const char *sched_or_default(const char *s)
{
    return s[0] ? s : "wlc";
}

static uint32_t netmask_or_default(const struct ipvs_service *s)
{
    uint32_t full = s->af == AF_INET6 ? 128 : 32;
    return s->netmask == 0 || s->netmask > full ? full : s->netmask;
}

bool ipvs_service_same_config(const struct ipvs_service *a, const struct ipvs_service *b)
{
    return strncmp(sched_or_default(a->sched), sched_or_default(b->sched),
                   IP_VS_SCHEDNAME_MAXLEN) == 0 &&
           strncmp(a->pe, b->pe, IP_VS_PENAME_MAXLEN) == 0 &&
           (a->flags & ~IP_VS_SVC_F_HASHED) == (b->flags & ~IP_VS_SVC_F_HASHED) &&
           a->timeout == b->timeout &&
           netmask_or_default(a) == netmask_or_default(b);
}

int ipvs_dest_cmp(const struct ipvs_service *svc, const struct ipvs_dest *a,
                  const struct ipvs_dest *b)
{
    uint16_t af_a = a->af ? a->af : svc->af, af_b = b->af ? b->af : svc->af;
    int r = cmp_u32(af_a, af_b);
    if (r)
        return r;
    if ((r = memcmp(a->addr, b->addr, alen(af_a))))
        return r;
    return cmp_u32(a->port, b->port);
}

bool ipvs_dest_same_config(const struct ipvs_dest *a, const struct ipvs_dest *b)
{
    return (a->fwd & IP_VS_CONN_F_FWD_MASK) == (b->fwd & IP_VS_CONN_F_FWD_MASK) &&
           a->weight == b->weight && a->u_thresh == b->u_thresh &&
           a->l_thresh == b->l_thresh && a->tun_type == b->tun_type &&
           a->tun_port == b->tun_port && a->tun_flags == b->tun_flags;
}

static const char *proto_name(uint16_t p)
{
    switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    }
    return "proto?";
}

/* "1.2.3.4:80" or "[::1]:80". */
static void addr_port_str(uint16_t af, const uint8_t *addr, uint16_t port, char *buf,
                          size_t size)
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(af == AF_INET6 ? AF_INET6 : AF_INET, addr, a, sizeof(a));
    snprintf(buf, size, af == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
}

const char *ipvs_service_str(const struct ipvs_service *s, char *buf, size_t size)
{
    char ap[INET6_ADDRSTRLEN + 10];
    if (s->fwmark) {
        snprintf(buf, size, "fwm%s %u", s->af == AF_INET6 ? "6" : "4", s->fwmark);
        return buf;
    }
    addr_port_str(s->af, s->addr, s->port, ap, sizeof(ap));
    snprintf(buf, size, "%s %s", proto_name(s->protocol), ap);
    return buf;
}

const char *ipvs_dest_str(const struct ipvs_service *svc, const struct ipvs_dest *d,
                          char *buf, size_t size)
{
    addr_port_str(d->af ? d->af : svc->af, d->addr, d->port, buf, size);
    return buf;
}

const char *ipvs_fwd_name(uint32_t fwd)
{
    static const char *names[] = { "masq", "local", "tunnel", "droute", "bypass" };
    fwd &= IP_VS_CONN_F_FWD_MASK;
    return fwd < sizeof(names) / sizeof(names[0]) ? names[fwd] : "fwd?";
}

const char *ipvs_op_name(enum ipvs_op_kind kind)
{
    switch (kind) {
    case IPVS_OP_ADD_SERVICE: return "add-service";
    case IPVS_OP_EDIT_SERVICE: return "edit-service";
    case IPVS_OP_DEL_SERVICE: return "delete-service";
    case IPVS_OP_ADD_DEST: return "add-dest";
    case IPVS_OP_EDIT_DEST: return "edit-dest";
    case IPVS_OP_DEL_DEST: return "delete-dest";
    case IPVS_OP_FLUSH: return "flush";
    }
    return "op?";
}

static const char *errno_name(int e)
{
    switch (e) {
    case EEXIST: return "EEXIST";
    case ESRCH: return "ESRCH";
    case ENOENT: return "ENOENT";
    case ERANGE: return "ERANGE";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENOBUFS: return "ENOBUFS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    }
    return "errno";
}

const char *ipvs_op_str(const struct ipvs_op *op, char *buf, size_t size)
{
    char s[96] = "", d[96] = "", what[64];
    if (op->kind != IPVS_OP_FLUSH)
        ipvs_service_str(&op->svc, s, sizeof(s));
    if (op->kind == IPVS_OP_ADD_DEST || op->kind == IPVS_OP_EDIT_DEST ||
        op->kind == IPVS_OP_DEL_DEST) {
        d[0] = ' ', d[1] = '-', d[2] = '>', d[3] = ' ';
        ipvs_dest_str(&op->svc, &op->dest, d + 4, sizeof(d) - 4);
    }
    if (op->outcome == IPVS_PENDING)
        snprintf(what, sizeof(what), "pending");
    else if (op->outcome == IPVS_APPLIED)
        snprintf(what, sizeof(what), "applied");
    else
        snprintf(what, sizeof(what), "%s%s (%s)", op->outcome == IPVS_ALREADY ? "already: " : "",
                 strerror(-op->error), errno_name(-op->error));
    snprintf(buf, size, "%s%s%s%s: %s", ipvs_op_name(op->kind), s[0] ? " " : "", s, d, what);
    return buf;
}

int ipvs_addr_parse(const char *s, uint16_t *af, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, s, addr) == 1) {
        *af = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *af = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

int ipvs_batch_push(struct ipvs_batch *b, enum ipvs_op_kind kind,
                    const struct ipvs_service *svc, const struct ipvs_dest *dest)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct ipvs_op *p = realloc(b->ops, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        b->ops = p;
        b->cap = cap;
    }
    struct ipvs_op *op = &b->ops[b->n++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    if (svc)
        op->svc = *svc;
    if (dest)
        op->dest = *dest;
    return 0;
}

void ipvs_batch_release(struct ipvs_batch *b)
{
    if (!b)
        return;
    free(b->ops);
    memset(b, 0, sizeof(*b));
}
