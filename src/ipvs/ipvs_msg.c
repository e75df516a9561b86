/* ipvs_msg.c -- IPVS values to netlink attributes and back.
 *
 * Encodes services and destinations the way ip_vs_ctl.c parses them (PORT and TUN_PORT big
 * endian, the IPv4 netmask a big-endian mask, the IPv6 one a prefix length, flags with a full
 * mask) and decodes dump replies through nla_policy tables, checking every size. */
#include "ipvs/ipvs_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static struct nla_policy cmd_policy[IPVS_CMD_ATTR_MAX + 1] = {
    [IPVS_CMD_ATTR_SERVICE] = { .type = NLA_NESTED },
    [IPVS_CMD_ATTR_DEST] = { .type = NLA_NESTED },
};

static struct nla_policy svc_policy[IPVS_SVC_ATTR_MAX + 1] = {
    [IPVS_SVC_ATTR_AF] = { .type = NLA_U16 },
    [IPVS_SVC_ATTR_PROTOCOL] = { .type = NLA_U16 },
    [IPVS_SVC_ATTR_ADDR] = { .type = NLA_UNSPEC, .minlen = 4, .maxlen = 16 },
    [IPVS_SVC_ATTR_PORT] = { .type = NLA_U16 },
    [IPVS_SVC_ATTR_FWMARK] = { .type = NLA_U32 },
    [IPVS_SVC_ATTR_SCHED_NAME] = { .type = NLA_STRING, .maxlen = IP_VS_SCHEDNAME_MAXLEN },
    [IPVS_SVC_ATTR_FLAGS] = { .type = NLA_UNSPEC, .minlen = sizeof(struct ip_vs_flags) },
    [IPVS_SVC_ATTR_TIMEOUT] = { .type = NLA_U32 },
    [IPVS_SVC_ATTR_NETMASK] = { .type = NLA_U32 },
    [IPVS_SVC_ATTR_STATS] = { .type = NLA_NESTED },
    [IPVS_SVC_ATTR_PE_NAME] = { .type = NLA_STRING, .maxlen = IP_VS_PENAME_MAXLEN },
    [IPVS_SVC_ATTR_STATS64] = { .type = NLA_NESTED },
};

static struct nla_policy dest_policy[IPVS_DEST_ATTR_MAX + 1] = {
    [IPVS_DEST_ATTR_ADDR] = { .type = NLA_UNSPEC, .minlen = 4, .maxlen = 16 },
    [IPVS_DEST_ATTR_PORT] = { .type = NLA_U16 },
    [IPVS_DEST_ATTR_FWD_METHOD] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_WEIGHT] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_U_THRESH] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_L_THRESH] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_ACTIVE_CONNS] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_INACT_CONNS] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_PERSIST_CONNS] = { .type = NLA_U32 },
    [IPVS_DEST_ATTR_STATS] = { .type = NLA_NESTED },
    [IPVS_DEST_ATTR_ADDR_FAMILY] = { .type = NLA_U16 },
    [IPVS_DEST_ATTR_STATS64] = { .type = NLA_NESTED },
    [IPVS_DEST_ATTR_TUN_TYPE] = { .type = NLA_U8 },
    [IPVS_DEST_ATTR_TUN_PORT] = { .type = NLA_U16 },
    [IPVS_DEST_ATTR_TUN_FLAGS] = { .type = NLA_U16 },
};

/* STATS: u32 counters and rates, u64 bytes. STATS64: everything u64. */
static struct nla_policy stats_policy[IPVS_STATS_ATTR_MAX + 1] = {
    [IPVS_STATS_ATTR_CONNS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_INPKTS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_OUTPKTS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_INBYTES] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_OUTBYTES] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_CPS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_INPPS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_OUTPPS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_INBPS] = { .type = NLA_U32 },
    [IPVS_STATS_ATTR_OUTBPS] = { .type = NLA_U32 },
};

static struct nla_policy stats64_policy[IPVS_STATS_ATTR_MAX + 1] = {
    [IPVS_STATS_ATTR_CONNS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_INPKTS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_OUTPKTS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_INBYTES] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_OUTBYTES] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_CPS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_INPPS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_OUTPPS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_INBPS] = { .type = NLA_U64 },
    [IPVS_STATS_ATTR_OUTBPS] = { .type = NLA_U64 },
};

static size_t addr_len(uint16_t af)
{
    return af == AF_INET6 ? 16 : 4;
}

/* The IPv4 netmask as the kernel wants it: a big-endian mask; IPv6: the prefix length. */
static uint32_t wire_netmask(const struct ipvs_service *s)
{
    uint32_t plen = s->netmask;
    if (s->af == AF_INET6)
        return plen == 0 || plen > 128 ? 128 : plen;
    if (plen == 0 || plen > 32)
        plen = 32;
    return htonl(plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen));
}

static uint32_t prefix_len_v4(uint32_t be_mask)
{
    uint32_t m = ntohl(be_mask), n = 0;
    while (n < 32 && (m & (0x80000000u >> n)))
        n++;
    return n;
}

static int put_service_attrs(struct nl_msg *m, const struct ipvs_service *s, bool full)
{
    NLA_PUT_U16(m, IPVS_SVC_ATTR_AF, s->af);
    if (s->fwmark) {
        NLA_PUT_U32(m, IPVS_SVC_ATTR_FWMARK, s->fwmark);
    } else {
        NLA_PUT_U16(m, IPVS_SVC_ATTR_PROTOCOL, s->protocol);
        NLA_PUT(m, IPVS_SVC_ATTR_ADDR, addr_len(s->af), s->addr);
        NLA_PUT_U16(m, IPVS_SVC_ATTR_PORT, htons(s->port));
    }
    if (!full)
        return 0;
    struct ip_vs_flags flags = { .flags = s->flags & ~IP_VS_SVC_F_HASHED, .mask = ~0u };
    NLA_PUT_STRING(m, IPVS_SVC_ATTR_SCHED_NAME, s->sched[0] ? s->sched : "wlc");
    NLA_PUT(m, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags);
    NLA_PUT_U32(m, IPVS_SVC_ATTR_TIMEOUT, s->timeout);
    NLA_PUT_U32(m, IPVS_SVC_ATTR_NETMASK, wire_netmask(s));
    if (s->pe[0])
        NLA_PUT_STRING(m, IPVS_SVC_ATTR_PE_NAME, s->pe);
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int ipvs_put_service(struct nl_msg *m, const struct ipvs_service *s, bool full)
{
    struct nlattr *nest = nla_nest_start(m, IPVS_CMD_ATTR_SERVICE);
    if (!nest || put_service_attrs(m, s, full) < 0)
        return -EMSGSIZE;
    nla_nest_end(m, nest);
    return 0;
}

static int put_dest_attrs(struct nl_msg *m, const struct ipvs_service *svc,
                          const struct ipvs_dest *d, bool full)
{
    uint16_t af = d->af ? d->af : svc->af;
    NLA_PUT(m, IPVS_DEST_ATTR_ADDR, addr_len(af), d->addr);
    NLA_PUT_U16(m, IPVS_DEST_ATTR_PORT, htons(d->port));
    NLA_PUT_U16(m, IPVS_DEST_ATTR_ADDR_FAMILY, af);
    if (!full)
        return 0;
    NLA_PUT_U32(m, IPVS_DEST_ATTR_FWD_METHOD, d->fwd & IP_VS_CONN_F_FWD_MASK);
    NLA_PUT_U32(m, IPVS_DEST_ATTR_WEIGHT, d->weight);
    NLA_PUT_U32(m, IPVS_DEST_ATTR_U_THRESH, d->u_thresh);
    NLA_PUT_U32(m, IPVS_DEST_ATTR_L_THRESH, d->l_thresh);
    /* Always sent: a SET_DEST without them resets the tunnel to IPIP, port 0. */
    NLA_PUT_U8(m, IPVS_DEST_ATTR_TUN_TYPE, d->tun_type);
    NLA_PUT_U16(m, IPVS_DEST_ATTR_TUN_PORT, htons(d->tun_port));
    NLA_PUT_U16(m, IPVS_DEST_ATTR_TUN_FLAGS, d->tun_flags);
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int ipvs_put_dest(struct nl_msg *m, const struct ipvs_service *svc, const struct ipvs_dest *d,
                  bool full)
{
    struct nlattr *nest = nla_nest_start(m, IPVS_CMD_ATTR_DEST);
    if (!nest || put_dest_attrs(m, svc, d, full) < 0)
        return -EMSGSIZE;
    nla_nest_end(m, nest);
    return 0;
}

static uint64_t stat_get(struct nlattr **tb, int i, bool is64)
{
    if (!tb[i])
        return 0;
    if (is64 || i == IPVS_STATS_ATTR_INBYTES || i == IPVS_STATS_ATTR_OUTBYTES)
        return nla_get_u64(tb[i]);
    return nla_get_u32(tb[i]);
}

/* Fill out from a STATS64 nest if there is one, else from STATS. */
static int parse_stats(struct nlattr *s32, struct nlattr *s64, struct ipvs_stats *out)
{
    struct nlattr *tb[IPVS_STATS_ATTR_MAX + 1];
    struct nlattr *nest = s64 ? s64 : s32;
    bool is64 = s64 != NULL;
    memset(out, 0, sizeof(*out));
    if (!nest)
        return 0;
    if (nla_parse_nested(tb, IPVS_STATS_ATTR_MAX, nest, is64 ? stats64_policy : stats_policy) < 0)
        return -EINVAL;
    out->conns = stat_get(tb, IPVS_STATS_ATTR_CONNS, is64);
    out->inpkts = stat_get(tb, IPVS_STATS_ATTR_INPKTS, is64);
    out->outpkts = stat_get(tb, IPVS_STATS_ATTR_OUTPKTS, is64);
    out->inbytes = stat_get(tb, IPVS_STATS_ATTR_INBYTES, is64);
    out->outbytes = stat_get(tb, IPVS_STATS_ATTR_OUTBYTES, is64);
    out->cps = stat_get(tb, IPVS_STATS_ATTR_CPS, is64);
    out->inpps = stat_get(tb, IPVS_STATS_ATTR_INPPS, is64);
    out->outpps = stat_get(tb, IPVS_STATS_ATTR_OUTPPS, is64);
    out->inbps = stat_get(tb, IPVS_STATS_ATTR_INBPS, is64);
    out->outbps = stat_get(tb, IPVS_STATS_ATTR_OUTBPS, is64);
    return 0;
}

/* Copy a NUL-terminated string attribute (policy checked the terminator and the size). */
static void get_name(struct nlattr *a, char *dst, size_t size)
{
    memset(dst, 0, size);
    if (a)
        nla_strlcpy(dst, a, size);
}

/* The nested attribute `which` of a genl message, parsed with policy into tb. */
static int parse_nest(struct nlmsghdr *nlh, int which, struct nlattr **tb, int max,
                      struct nla_policy *policy, const char **what)
{
    struct nlattr *top[IPVS_CMD_ATTR_MAX + 1];
    if (genlmsg_parse(nlh, 0, top, IPVS_CMD_ATTR_MAX, cmd_policy) < 0) {
        *what = "malformed generic netlink message";
        return -EINVAL;
    }
    if (!top[which]) {
        *what = which == IPVS_CMD_ATTR_SERVICE ? "no SERVICE attribute" : "no DEST attribute";
        return -EINVAL;
    }
    if (nla_parse_nested(tb, max, top[which], policy) < 0) {
        *what = "an attribute fails its policy (type or size)";
        return -EINVAL;
    }
    return 0;
}

static int parse_service_identity(struct nlattr **tb, struct ipvs_service *out, const char **what)
{
    if (!tb[IPVS_SVC_ATTR_AF]) {
        *what = "service without AF";
        return -EINVAL;
    }
    out->af = nla_get_u16(tb[IPVS_SVC_ATTR_AF]);
    if (out->af != AF_INET && out->af != AF_INET6) {
        *what = "service with an unknown address family";
        return -EINVAL;
    }
    if (tb[IPVS_SVC_ATTR_FWMARK]) {
        out->fwmark = nla_get_u32(tb[IPVS_SVC_ATTR_FWMARK]);
        return 0;
    }
    if (!tb[IPVS_SVC_ATTR_PROTOCOL] || !tb[IPVS_SVC_ATTR_ADDR] || !tb[IPVS_SVC_ATTR_PORT]) {
        *what = "service without fwmark or protocol/address/port";
        return -EINVAL;
    }
    if ((size_t)nla_len(tb[IPVS_SVC_ATTR_ADDR]) < addr_len(out->af)) {
        *what = "service address too short for its family";
        return -EINVAL;
    }
    out->protocol = nla_get_u16(tb[IPVS_SVC_ATTR_PROTOCOL]);
    memcpy(out->addr, nla_data(tb[IPVS_SVC_ATTR_ADDR]), addr_len(out->af));
    out->port = ntohs(nla_get_u16(tb[IPVS_SVC_ATTR_PORT]));
    return 0;
}

int ipvs_parse_service_msg(struct nlmsghdr *nlh, struct ipvs_service *out, const char **what)
{
    struct nlattr *tb[IPVS_SVC_ATTR_MAX + 1];
    int rc = parse_nest(nlh, IPVS_CMD_ATTR_SERVICE, tb, IPVS_SVC_ATTR_MAX, svc_policy, what);
    memset(out, 0, sizeof(*out));
    if (rc < 0 || (rc = parse_service_identity(tb, out, what)) < 0)
        return rc;
    get_name(tb[IPVS_SVC_ATTR_SCHED_NAME], out->sched, sizeof(out->sched));
    get_name(tb[IPVS_SVC_ATTR_PE_NAME], out->pe, sizeof(out->pe));
    if (tb[IPVS_SVC_ATTR_FLAGS]) {
        struct ip_vs_flags f;
        memcpy(&f, nla_data(tb[IPVS_SVC_ATTR_FLAGS]), sizeof(f));
        out->flags = f.flags & ~IP_VS_SVC_F_HASHED;
    }
    if (tb[IPVS_SVC_ATTR_TIMEOUT])
        out->timeout = nla_get_u32(tb[IPVS_SVC_ATTR_TIMEOUT]);
    if (tb[IPVS_SVC_ATTR_NETMASK]) {
        uint32_t nm = nla_get_u32(tb[IPVS_SVC_ATTR_NETMASK]);
        out->netmask = out->af == AF_INET6 ? nm : prefix_len_v4(nm);
    }
    if (parse_stats(tb[IPVS_SVC_ATTR_STATS], tb[IPVS_SVC_ATTR_STATS64], &out->stats) < 0) {
        *what = "malformed service STATS";
        return -EINVAL;
    }
    return 0;
}

static uint32_t get_u32(struct nlattr *a)
{
    return a ? nla_get_u32(a) : 0;
}

int ipvs_parse_dest_msg(struct nlmsghdr *nlh, const struct ipvs_service *svc,
                        struct ipvs_dest *out, const char **what)
{
    struct nlattr *tb[IPVS_DEST_ATTR_MAX + 1];
    int rc = parse_nest(nlh, IPVS_CMD_ATTR_DEST, tb, IPVS_DEST_ATTR_MAX, dest_policy, what);
    memset(out, 0, sizeof(*out));
    if (rc < 0)
        return rc;
    if (!tb[IPVS_DEST_ATTR_ADDR] || !tb[IPVS_DEST_ATTR_PORT]) {
        *what = "destination without address or port";
        return -EINVAL;
    }
    out->af = tb[IPVS_DEST_ATTR_ADDR_FAMILY] ? nla_get_u16(tb[IPVS_DEST_ATTR_ADDR_FAMILY])
                                             : svc->af;
    if ((out->af != AF_INET && out->af != AF_INET6) ||
        (size_t)nla_len(tb[IPVS_DEST_ATTR_ADDR]) < addr_len(out->af)) {
        *what = "destination address does not match its family";
        return -EINVAL;
    }
    memcpy(out->addr, nla_data(tb[IPVS_DEST_ATTR_ADDR]), addr_len(out->af));
    out->port = ntohs(nla_get_u16(tb[IPVS_DEST_ATTR_PORT]));
    out->fwd = get_u32(tb[IPVS_DEST_ATTR_FWD_METHOD]) & IP_VS_CONN_F_FWD_MASK;
    out->weight = get_u32(tb[IPVS_DEST_ATTR_WEIGHT]);
    out->u_thresh = get_u32(tb[IPVS_DEST_ATTR_U_THRESH]);
    out->l_thresh = get_u32(tb[IPVS_DEST_ATTR_L_THRESH]);
    out->active_conns = get_u32(tb[IPVS_DEST_ATTR_ACTIVE_CONNS]);
    out->inact_conns = get_u32(tb[IPVS_DEST_ATTR_INACT_CONNS]);
    out->persist_conns = get_u32(tb[IPVS_DEST_ATTR_PERSIST_CONNS]);
    if (tb[IPVS_DEST_ATTR_TUN_TYPE])
        out->tun_type = nla_get_u8(tb[IPVS_DEST_ATTR_TUN_TYPE]);
    if (tb[IPVS_DEST_ATTR_TUN_PORT])
        out->tun_port = ntohs(nla_get_u16(tb[IPVS_DEST_ATTR_TUN_PORT]));
    if (tb[IPVS_DEST_ATTR_TUN_FLAGS])
        out->tun_flags = nla_get_u16(tb[IPVS_DEST_ATTR_TUN_FLAGS]);
    if (parse_stats(tb[IPVS_DEST_ATTR_STATS], tb[IPVS_DEST_ATTR_STATS64], &out->stats) < 0) {
        *what = "malformed destination STATS";
        return -EINVAL;
    }
    return 0;
}
