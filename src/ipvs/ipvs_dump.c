/* ipvs_dump.c -- read the kernel's IPVS table: GET_SERVICE dump, then a GET_DEST dump per
 * service (the service identity in the request), as ipvsadm does; and GET_INFO.
 *
 * Replies are matched by sequence number (stale answers of a timed-out batch are skipped) and
 * parsed through the policies of ipvs_msg.c. A dump is not a snapshot (see ipvs.h). */
#include "ipvs/ipvs_internal.h"

#include <stdlib.h>
#include <string.h>

/* Growable array of fixed-size items. */
struct vec {
    void *items;
    size_t n, cap, size;
};

static void *vec_next(struct vec *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *p = realloc(v->items, cap * v->size);
        if (!p)
            return NULL;
        v->items = p;
        v->cap = cap;
    }
    return (char *)v->items + v->n++ * v->size;
}

/* What one dump collects: services, or the destinations of svc. */
struct dump_ctx {
    const struct ipvs_service *svc;   /* NULL: a service dump */
    struct vec out;
};

/* One reply message of the dump: parse it into the next item. */
static int take_msg(ipvs_conn *c, struct dump_ctx *d, struct nlmsghdr *nlh, struct ipvs_err *err)
{
    const char *what = "";
    int rc;
    if (nlh->nlmsg_type != c->family)
        return 0;
    void *item = vec_next(&d->out);
    if (!item)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    if (d->svc)
        rc = ipvs_parse_dest_msg(nlh, d->svc, item, &what);
    else
        rc = ipvs_parse_service_msg(nlh, item, &what);
    if (rc < 0)
        return ipvs_seterr(err, rc, "bad %s dump reply from the kernel: %s",
                           d->svc ? "destination" : "service", what);
    return 0;
}

/* Walk one datagram; returns 1 when NLMSG_DONE of our dump was seen, 0 to go on, -errno. */
static int take_datagram(ipvs_conn *c, struct dump_ctx *d, int len, uint32_t seq,
                         struct ipvs_err *err)
{
    struct nlmsghdr *nlh = (struct nlmsghdr *)c->rbuf;
    for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
        if (nlh->nlmsg_seq != seq)
            continue;
        if (nlh->nlmsg_type == NLMSG_DONE)
            return 1;
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(int)))
                return ipvs_seterr(err, -EPROTO, "truncated netlink error message");
            int e = *(int *)NLMSG_DATA(nlh);
            if (e == 0)
                continue;
            return ipvs_seterr(err, e, "IPVS dump: %s", strerror(-e));
        }
        int rc = take_msg(c, d, nlh, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Send a dump request (with svc's identity for GET_DEST) and collect every reply. */
static int run_dump(ipvs_conn *c, struct dump_ctx *d, struct ipvs_err *err)
{
    uint8_t cmd = d->svc ? IPVS_CMD_GET_DEST : IPVS_CMD_GET_SERVICE;
    uint32_t seq = c->seq++;
    int rc;
    ipvs_drain(c);
    struct nl_msg *m = ipvs_msg_new(c, cmd, NLM_F_REQUEST | NLM_F_DUMP, seq);
    if (!m)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    if (d->svc && ipvs_put_service(m, d->svc, false) < 0) {
        nlmsg_free(m);
        return ipvs_seterr(err, -EMSGSIZE, "dump request too large");
    }
    rc = ipvs_send(c, nlmsg_hdr(m), nlmsg_hdr(m)->nlmsg_len);
    nlmsg_free(m);
    c->counters.dumps++;
    if (rc < 0)
        return ipvs_seterr(err, rc, "sending the IPVS dump request: %s", strerror(-rc));
    for (;;) {
        int len = ipvs_recv(c, false);
        if (len == -EAGAIN)
            return ipvs_seterr(err, -ETIMEDOUT, "IPVS dump: no answer within %u ms",
                               c->timeout_ms);
        if (len < 0)
            return ipvs_seterr(err, len, "IPVS dump: receiving: %s", strerror(-len));
        rc = take_datagram(c, d, len, seq, err);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
}

int ipvs_dump_services(ipvs_conn *c, struct ipvs_service **out, size_t *n, struct ipvs_err *err)
{
    struct dump_ctx d = { .svc = NULL, .out = { .size = sizeof(struct ipvs_service) } };
    int rc = run_dump(c, &d, err);
    if (rc < 0) {
        free(d.out.items);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = d.out.items;
    *n = d.out.n;
    return 0;
}

int ipvs_dump_dests(ipvs_conn *c, const struct ipvs_service *svc, struct ipvs_dest **out,
                    size_t *n, struct ipvs_err *err)
{
    struct dump_ctx d = { .svc = svc, .out = { .size = sizeof(struct ipvs_dest) } };
    int rc = run_dump(c, &d, err);
    if (rc < 0) {
        free(d.out.items);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = d.out.items;
    *n = d.out.n;
    return 0;
}

/* Open the parts socket if needed and send a service dump request on it. */
static int part_start(ipvs_conn *c, struct ipvs_err *err)
{
    int rc = ipvs_conn_part_open(c, err);
    if (rc < 0)
        return rc;
    c->part_seq = c->seq++;
    struct nl_msg *m = ipvs_msg_new(c, IPVS_CMD_GET_SERVICE, NLM_F_REQUEST | NLM_F_DUMP,
                                    c->part_seq);
    if (!m)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    rc = ipvs_send_fd(nl_socket_get_fd(c->part_sk), nlmsg_hdr(m), nlmsg_hdr(m)->nlmsg_len);
    nlmsg_free(m);
    c->counters.dumps++;
    if (rc < 0)
        return ipvs_seterr(err, rc, "sending the IPVS dump request: %s", strerror(-rc));
    c->parting = true;
    return 0;
}

/* Read datagrams of the dump in parts until d holds goal items: 1 at NLMSG_DONE, 0 when goal
 * was reached first, -errno. */
static int part_read(ipvs_conn *c, struct dump_ctx *d, size_t goal, struct ipvs_err *err)
{
    int fd = nl_socket_get_fd(c->part_sk), rc = 0;
    while (rc == 0 && d->out.n < goal) {
        int len = ipvs_recv_fd(c, fd, false);
        if (len == -EAGAIN)
            return ipvs_seterr(err, -ETIMEDOUT, "IPVS dump: no answer within %u ms",
                               c->timeout_ms);
        if (len < 0)
            return ipvs_seterr(err, len, "IPVS dump: receiving: %s", strerror(-len));
        rc = take_datagram(c, d, len, c->part_seq, err);
    }
    return rc;
}

int ipvs_dump_services_part(ipvs_conn *c, struct ipvs_service_list *list, size_t max,
                            struct ipvs_err *err)
{
    int rc = c->parting ? 0 : part_start(c, err);
    if (rc < 0) {
        ipvs_conn_part_close(c);
        return rc;
    }
    struct dump_ctx d = { .svc = NULL, .out = { .items = list->v, .n = list->n,
                                                .cap = list->cap, .size = sizeof *list->v } };
    rc = part_read(c, &d, list->n + (max ? max : 1), err);
    list->v = d.out.items;
    list->n = d.out.n;
    list->cap = d.out.cap;
    if (rc < 0)
        ipvs_conn_part_close(c); /* the kernel ends a dump when its socket closes */
    else if (rc == 1)
        c->parting = false;      /* the socket stays open for the next one */
    return rc < 0 ? rc : rc == 1 ? 0 : 1;
}

void ipvs_dump_services_stop(ipvs_conn *c)
{
    if (c->parting)
        ipvs_conn_part_close(c);
}

void ipvs_service_list_release(struct ipvs_service_list *list)
{
    if (!list)
        return;
    free(list->v);
    *list = (struct ipvs_service_list){0};
}

void ipvs_table_free(struct ipvs_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i].dests);
    free(t->entries);
    free(t);
}

int ipvs_dump(ipvs_conn *c, struct ipvs_table **out, struct ipvs_err *err)
{
    struct ipvs_service *svcs = NULL;
    size_t n = 0;
    int rc;
    *out = NULL;
    struct ipvs_table *t = calloc(1, sizeof(*t));
    if (!t)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    rc = ipvs_dump_services(c, &svcs, &n, err);
    if (rc < 0)
        goto fail;
    t->entries = calloc(n ? n : 1, sizeof(*t->entries));
    if (!t->entries) {
        rc = ipvs_seterr(err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (; t->n < n; t->n++) {
        struct ipvs_entry *e = &t->entries[t->n];
        e->svc = svcs[t->n];
        rc = ipvs_dump_dests(c, &e->svc, &e->dests, &e->n_dests, err);
        if (rc < 0)
            goto fail;
    }
    free(svcs);
    *out = t;
    return 0;
fail:
    free(svcs);
    ipvs_table_free(t);
    return rc;
}

/* GET_INFO reuses attribute numbers 1-2 at the top level, hence its own policy. */
static struct nla_policy info_policy[IPVS_INFO_ATTR_MAX + 1] = {
    [IPVS_INFO_ATTR_VERSION] = { .type = NLA_U32 },
    [IPVS_INFO_ATTR_CONN_TAB_SIZE] = { .type = NLA_U32 },
};

/* Parse the GET_INFO reply of our request in one datagram: 1 done, 0 not yet, -errno. */
static int take_info(ipvs_conn *c, int len, uint32_t seq, uint32_t *version, uint32_t *size,
                     struct ipvs_err *err)
{
    struct nlmsghdr *nlh = (struct nlmsghdr *)c->rbuf;
    for (; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
        struct nlattr *tb[IPVS_INFO_ATTR_MAX + 1];
        if (nlh->nlmsg_seq != seq)
            continue;
        if (nlh->nlmsg_type == NLMSG_ERROR) {
            int e = nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) ? *(int *)NLMSG_DATA(nlh) : -EPROTO;
            return ipvs_seterr(err, e ? e : -EPROTO, "IPVS info: %s", strerror(e ? -e : EPROTO));
        }
        if (nlh->nlmsg_type != c->family)
            continue;
        if (genlmsg_parse(nlh, 0, tb, IPVS_INFO_ATTR_MAX, info_policy) < 0 ||
            !tb[IPVS_INFO_ATTR_VERSION] || !tb[IPVS_INFO_ATTR_CONN_TAB_SIZE])
            return ipvs_seterr(err, -EINVAL, "bad IPVS info reply from the kernel");
        *version = nla_get_u32(tb[IPVS_INFO_ATTR_VERSION]);
        *size = nla_get_u32(tb[IPVS_INFO_ATTR_CONN_TAB_SIZE]);
        return 1;
    }
    return 0;
}

int ipvs_info(ipvs_conn *c, uint32_t *version, uint32_t *conn_tab_size, struct ipvs_err *err)
{
    uint32_t seq = c->seq++;
    ipvs_drain(c);
    struct nl_msg *m = ipvs_msg_new(c, IPVS_CMD_GET_INFO, NLM_F_REQUEST, seq);
    if (!m)
        return ipvs_seterr(err, -ENOMEM, "out of memory");
    int rc = ipvs_send(c, nlmsg_hdr(m), nlmsg_hdr(m)->nlmsg_len);
    nlmsg_free(m);
    if (rc < 0)
        return ipvs_seterr(err, rc, "sending the IPVS info request: %s", strerror(-rc));
    for (;;) {
        int len = ipvs_recv(c, false);
        if (len == -EAGAIN)
            return ipvs_seterr(err, -ETIMEDOUT, "IPVS info: no answer within %u ms",
                               c->timeout_ms);
        if (len < 0)
            return ipvs_seterr(err, len, "IPVS info: receiving: %s", strerror(-len));
        rc = take_info(c, len, seq, version, conn_tab_size, err);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
}

struct ipvs_entry *ipvs_table_find(const struct ipvs_table *t, const struct ipvs_service *svc)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (ipvs_service_cmp(&t->entries[i].svc, svc) == 0)
            return &t->entries[i];
    return NULL;
}
