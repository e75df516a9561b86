/* guest_ipvs.c -- src/ipvs/ against the real kernel IPVS, inside the scripts/vm-run guest.
 *
 * Not run on the host (the name does not start with test_): tests/vm/test_ipvs.sh boots the
 * VM with this binary. Every table written through src/ipvs is compared with what the real
 * ipvsadm reads back (`ipvsadm -S -n`), and tables written by ipvsadm with our dump. Usage:
 * guest_ipvs [TEST-SUBSTRING] | guest_ipvs --bench N */
#include "check.h"
#include "ipvs/ipvs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IPVSADM "/sbin/ipvsadm"

static ipvs_conn *conn;   /* opened by test_family, used by every later test */

/* ---------- small helpers ---------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Run a shell command; returns its exit status (or -1). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static struct ipvs_service svc_ip(uint16_t proto, const char *addr, uint16_t port,
                                  const char *sched)
{
    struct ipvs_service s = { .protocol = proto, .port = port };
    if (ipvs_addr_parse(addr, &s.af, s.addr) < 0)
        check_fail(__FILE__, __LINE__, "bad address %s", addr);
    snprintf(s.sched, sizeof(s.sched), "%s", sched);
    return s;
}

static struct ipvs_service svc_fwm(uint16_t af, uint32_t mark, const char *sched)
{
    struct ipvs_service s = { .af = af, .fwmark = mark };
    snprintf(s.sched, sizeof(s.sched), "%s", sched);
    return s;
}

static struct ipvs_dest dest_ip(const char *addr, uint16_t port, uint32_t fwd, uint32_t weight)
{
    struct ipvs_dest d = { .port = port, .fwd = fwd, .weight = weight };
    if (ipvs_addr_parse(addr, &d.af, d.addr) < 0)
        check_fail(__FILE__, __LINE__, "bad address %s", addr);
    return d;
}

/* Apply a batch and require that the exchange worked; returns false otherwise. */
static bool apply(struct ipvs_batch *b)
{
    struct ipvs_err err = { 0 };
    int rc = ipvs_apply(conn, b->ops, b->n, &err);
    return CHECK_MSG(rc == 0, "ipvs_apply: %d %s", rc, err.msg);
}

/* Every op of b APPLIED, else print the failing ones. */
static bool all_applied(const struct ipvs_batch *b)
{
    bool ok = true;
    for (size_t i = 0; i < b->n; i++) {
        const struct ipvs_op *op = &b->ops[i];
        char s[256];
        if (op->outcome == IPVS_APPLIED)
            continue;
        ok = check_fail(__FILE__, __LINE__, "op %zu %s", i, ipvs_op_str(op, s, sizeof(s)));
    }
    return ok;
}

static bool flush(void)
{
    struct ipvs_batch b = { 0 };
    ipvs_batch_push(&b, IPVS_OP_FLUSH, NULL, NULL);
    bool ok = apply(&b) && all_applied(&b);
    ipvs_batch_release(&b);
    return ok;
}

static struct ipvs_table *dump(void)
{
    struct ipvs_table *t = NULL;
    struct ipvs_err err = { 0 };
    int rc = ipvs_dump(conn, &t, &err);
    CHECK_MSG(rc == 0, "ipvs_dump: %d %s", rc, err.msg);
    return t;
}

/* A connection from test_family and an empty table, else a failure. */
static bool ready(void)
{
    struct ipvs_err err = { 0 };
    if (!conn && ipvs_conn_new(&conn, &err) < 0)
        return check_fail(__FILE__, __LINE__, "ipvs_conn_new: %s", err.msg);
    return flush();
}

/* ---------- ipvsadm -S -n as a set of canonical lines ------------------------------------- */

/* Lines are compared as sets of option groups ("-s wlc", "-p 300"), so the order in which
 * ipvsadm prints options does not matter. */
struct lines {
    char **v;
    size_t n, cap;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "-a -t 1.2.3.4:80 -r 5.6.7.8:80 -m -w 1" -> groups sorted and joined with '|'. */
static char *canonical(const char *line)
{
    char *copy = strdup(line), *groups[32], *save = NULL;
    size_t ng = 0;
    char *tok = strtok_r(copy, " \t\n", &save);
    char buf[1024] = "";
    while (tok && ng < 32) {
        char *g = malloc(strlen(tok) + 256);
        strcpy(g, tok);
        tok = strtok_r(NULL, " \t\n", &save);
        if (tok && tok[0] != '-') {           /* the option's argument */
            strcat(g, " ");
            strncat(g, tok, 200);
            tok = strtok_r(NULL, " \t\n", &save);
        }
        groups[ng++] = g;
    }
    qsort(groups, ng, sizeof(groups[0]), cmp_str);
    for (size_t i = 0; i < ng; i++) {
        if (i)
            strncat(buf, "|", sizeof(buf) - strlen(buf) - 1);
        strncat(buf, groups[i], sizeof(buf) - strlen(buf) - 1);
        free(groups[i]);
    }
    free(copy);
    return strdup(buf);
}

static void lines_add(struct lines *l, const char *line)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = canonical(line);
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static void ipvsadm_lines(struct lines *out)
{
    char line[1024];
    FILE *p = popen(IPVSADM " -S -n", "r");
    if (!CHECK(p != NULL))
        return;
    while (fgets(line, sizeof(line), p))
        if (line[0] == '-')
            lines_add(out, line);
    CHECK_INT(pclose(p), 0);
}

/* The service part of an ipvsadm line: "-t 10.0.0.1:80", "-f 7 -6". */
static void svc_spec(const struct ipvs_service *s, char *buf, size_t size)
{
    char ap[80];
    if (s->fwmark) {
        snprintf(buf, size, "-f %u%s", s->fwmark, s->af == AF_INET6 ? " -6" : "");
        return;
    }
    struct ipvs_dest as_dest = { .af = s->af, .port = s->port };
    memcpy(as_dest.addr, s->addr, 16);
    ipvs_dest_str(s, &as_dest, ap, sizeof(ap));
    snprintf(buf, size, "%s %s", s->protocol == IPPROTO_TCP ? "-t" :
             s->protocol == IPPROTO_UDP ? "-u" : "--sctp-service", ap);
}

static void svc_flags(const struct ipvs_service *s, char *buf, size_t size)
{
    bool mh = strcmp(s->sched, "mh") == 0;
    const char *f1 = mh ? "mh-fallback" : "sh-fallback", *f2 = mh ? "mh-port" : "sh-port";
    buf[0] = 0;
    if (s->flags & IP_VS_SVC_F_SCHED1)
        snprintf(buf, size, " -b %s", f1);
    if (s->flags & IP_VS_SVC_F_SCHED2)
        snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? "," : " -b ", f2);
}

/* A service as `ipvsadm -S -n` prints it. */
static void render_service(const struct ipvs_service *s, char *buf, size_t size)
{
    char spec[96], flags[64], persist[64] = "";
    svc_spec(s, spec, sizeof(spec));
    svc_flags(s, flags, sizeof(flags));
    if (s->flags & IP_VS_SVC_F_PERSISTENT) {
        int n = snprintf(persist, sizeof(persist), " -p %u", s->timeout);
        uint32_t full = s->af == AF_INET6 ? 128 : 32, plen = s->netmask ? s->netmask : full;
        if (plen != full && s->af == AF_INET6)
            snprintf(persist + n, sizeof(persist) - n, " -M %u", plen);
        else if (plen != full) {
            struct in_addr m = { htonl(~(0xffffffffu >> plen)) };
            snprintf(persist + n, sizeof(persist) - n, " -M %s", inet_ntoa(m));
        }
    }
    char pe[32] = "";
    if (s->pe[0])
        snprintf(pe, sizeof(pe), " --pe %s", s->pe);
    snprintf(buf, size, "-A %s -s %s%s%s%s%s", spec, s->sched[0] ? s->sched : "wlc", flags,
             persist, pe, s->flags & IP_VS_SVC_F_ONEPACKET ? " -o" : "");
}

static void render_dest(const struct ipvs_service *s, const struct ipvs_dest *d, char *buf,
                        size_t size)
{
    static const char *fwd[] = { "-m", "-?", "-i", "-g", "-?" };
    static const char *tun[] = { "ipip", "gue", "gre" };
    char spec[96], ap[80], extra[96] = "";
    svc_spec(s, spec, sizeof(spec));
    ipvs_dest_str(s, d, ap, sizeof(ap));
    if (d->fwd == IPVS_FWD_TUNNEL) {
        int n = snprintf(extra, sizeof(extra), " --tun-type %s", tun[d->tun_type % 3]);
        if (d->tun_type == IP_VS_CONN_F_TUNNEL_TYPE_GUE)
            n += snprintf(extra + n, sizeof(extra) - n, " --tun-port %u", d->tun_port);
        if (d->tun_type != IP_VS_CONN_F_TUNNEL_TYPE_IPIP)
            snprintf(extra + n, sizeof(extra) - n, " %s",
                     d->tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM ? "--tun-remcsum" :
                     d->tun_flags & IP_VS_TUNNEL_ENCAP_FLAG_CSUM ? "--tun-csum" : "--tun-nocsum");
    }
    snprintf(buf, size, "-a %s -r %s %s -w %u%s", spec, ap, fwd[d->fwd % 5], d->weight, extra);
}

static void table_lines(const struct ipvs_table *t, struct lines *out)
{
    char line[512];
    for (size_t i = 0; t && i < t->n; i++) {
        render_service(&t->entries[i].svc, line, sizeof(line));
        lines_add(out, line);
        for (size_t j = 0; j < t->entries[i].n_dests; j++) {
            render_dest(&t->entries[i].svc, &t->entries[i].dests[j], line, sizeof(line));
            lines_add(out, line);
        }
    }
}

/* The kernel table as ipvsadm reads it equals `want` (canonical lines). */
static bool same_lines(struct lines *got, struct lines *want, const char *what)
{
    bool ok = true;
    qsort(got->v, got->n, sizeof(char *), cmp_str);
    qsort(want->v, want->n, sizeof(char *), cmp_str);
    size_t i = 0, j = 0;
    while (i < got->n || j < want->n) {
        int c = i == got->n ? 1 : j == want->n ? -1 : strcmp(got->v[i], want->v[j]);
        if (c == 0) {
            i++, j++;
            continue;
        }
        if (c < 0)
            ok = check_fail(__FILE__, __LINE__, "%s: unexpected %s", what, got->v[i++]);
        else
            ok = check_fail(__FILE__, __LINE__, "%s: missing %s", what, want->v[j++]);
    }
    return ok;
}

/* ipvsadm -S -n shows exactly the table t. */
static bool ipvsadm_shows(const struct ipvs_table *t)
{
    struct lines got = { 0 }, want = { 0 };
    ipvsadm_lines(&got);
    table_lines(t, &want);
    bool ok = same_lines(&got, &want, "ipvsadm -S -n vs expected");
    lines_free(&got);
    lines_free(&want);
    return ok;
}

/* A table built from a batch's add ops: what the kernel should hold after it. */
static struct ipvs_table *expected_from(const struct ipvs_batch *b)
{
    struct ipvs_table *t = calloc(1, sizeof(*t));
    t->entries = calloc(b->n + 1, sizeof(*t->entries));
    for (size_t i = 0; i < b->n; i++) {
        const struct ipvs_op *op = &b->ops[i];
        if (op->kind == IPVS_OP_ADD_SERVICE) {
            t->entries[t->n++].svc = op->svc;
        } else if (op->kind == IPVS_OP_ADD_DEST) {
            struct ipvs_entry *e = ipvs_table_find(t, &op->svc);
            if (!e)
                continue;
            e->dests = realloc(e->dests, (e->n_dests + 1) * sizeof(*e->dests));
            e->dests[e->n_dests++] = op->dest;
        }
    }
    return t;
}

/* Our dump equals the expected table: same services, dests and configs. */
static bool dump_equals(const struct ipvs_table *got, const struct ipvs_table *want)
{
    bool ok = CHECK_MSG(got->n == want->n, "dump has %zu services, want %zu", got->n, want->n);
    char s[96], d[96];
    for (size_t i = 0; i < want->n; i++) {
        const struct ipvs_entry *w = &want->entries[i];
        const struct ipvs_entry *g = ipvs_table_find(got, &w->svc);
        ipvs_service_str(&w->svc, s, sizeof(s));
        if (!CHECK_MSG(g != NULL, "dump lacks %s", s)) {
            ok = false;
            continue;
        }
        ok &= CHECK_MSG(ipvs_service_same_config(&g->svc, &w->svc),
                        "%s: config differs (sched %s/%s flags %x/%x timeout %u/%u mask %u/%u)",
                        s, g->svc.sched, w->svc.sched, g->svc.flags, w->svc.flags,
                        g->svc.timeout, w->svc.timeout, g->svc.netmask, w->svc.netmask);
        ok &= CHECK_MSG(g->n_dests == w->n_dests, "%s: %zu dests, want %zu", s, g->n_dests,
                        w->n_dests);
        for (size_t j = 0; j < w->n_dests; j++) {
            const struct ipvs_dest *wd = &w->dests[j], *gd = NULL;
            for (size_t k = 0; k < g->n_dests; k++)
                if (ipvs_dest_cmp(&w->svc, &g->dests[k], wd) == 0)
                    gd = &g->dests[k];
            ipvs_dest_str(&w->svc, wd, d, sizeof(d));
            ok &= CHECK_MSG(gd != NULL, "%s: dump lacks dest %s", s, d) &&
                  CHECK_MSG(ipvs_dest_same_config(gd, wd),
                            "%s -> %s: config differs (fwd %u/%u weight %u/%u)", s, d,
                            gd->fwd, wd->fwd, gd->weight, wd->weight);
        }
    }
    return ok;
}

static void table_free_expected(struct ipvs_table *t)
{
    ipvs_table_free(t);
}

/* The mixed table most tests start from: every protocol, both families, fwmarks, schedulers
 * with flags, persistence with a netmask, and every forwarding method. */
static void mixed_batch(struct ipvs_batch *b)
{
    struct ipvs_service s;
    struct ipvs_dest d;
    s = svc_ip(IPPROTO_TCP, "10.0.0.1", 80, "wlc");
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("10.1.0.1", 8080, IPVS_FWD_MASQ, 10);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    d = dest_ip("10.1.0.2", 80, IPVS_FWD_DROUTE, 5);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    d = dest_ip("10.1.0.3", 80, IPVS_FWD_TUNNEL, 0);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    d = dest_ip("10.1.0.4", 80, IPVS_FWD_TUNNEL, 1);
    d.tun_type = IP_VS_CONN_F_TUNNEL_TYPE_GUE;
    d.tun_port = 6080;
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    s = svc_ip(IPPROTO_UDP, "10.0.0.1", 53, "rr");
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("10.1.0.1", 5353, IPVS_FWD_MASQ, 65535);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    s = svc_ip(IPPROTO_SCTP, "10.0.0.2", 9000, "sh");
    s.flags = IP_VS_SVC_F_SCHED_SH_FALLBACK | IP_VS_SVC_F_SCHED_SH_PORT;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("10.1.0.9", 9000, IPVS_FWD_DROUTE, 1);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    s = svc_ip(IPPROTO_TCP, "10.0.0.3", 443, "wlc");
    s.flags = IP_VS_SVC_F_PERSISTENT;
    s.timeout = 300;
    s.netmask = 24;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    s = svc_ip(IPPROTO_UDP, "10.0.0.4", 1194, "rr");
    s.flags = IP_VS_SVC_F_ONEPACKET;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    s = svc_ip(IPPROTO_TCP, "2001:db8::1", 443, "mh");
    s.flags = IP_VS_SVC_F_SCHED1 /* mh-fallback */;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("2001:db8::2", 8443, IPVS_FWD_MASQ, 3);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    d = dest_ip("2001:db8::3", 443, IPVS_FWD_DROUTE, 4);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    s = svc_ip(IPPROTO_UDP, "2001:db8::1", 53, "wrr");
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    s = svc_ip(IPPROTO_SCTP, "2001:db8::5", 9000, "lc");
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    s = svc_ip(IPPROTO_TCP, "2001:db8::6", 80, "sed");
    s.flags = IP_VS_SVC_F_PERSISTENT;
    s.timeout = 60;
    s.netmask = 64;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    s = svc_fwm(AF_INET, 7, "wrr");
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("10.1.0.5", 0, IPVS_FWD_DROUTE, 2);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
    s = svc_fwm(AF_INET6, 8, "rr");
    s.flags = IP_VS_SVC_F_PERSISTENT;
    s.timeout = 60;
    ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
    d = dest_ip("2001:db8::7", 0, IPVS_FWD_TUNNEL, 7);
    ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
}

/* ---------- tests ------------------------------------------------------------------------ */

static void test_family(void)
{
    struct ipvs_err err = { 0 };
    ipvs_conn *c = NULL;
    int rc = ipvs_conn_new(&c, &err);
    if (!CHECK_MSG(rc == 0, "ipvs_conn_new: %d %s", rc, err.msg))
        return;
    CHECK(ipvs_conn_max_batch(c) >= 16);
    uint32_t version = 0, size = 0;
    rc = ipvs_info(c, &version, &size, &err);
    CHECK_MSG(rc == 0, "ipvs_info: %d %s", rc, err.msg);
    CHECK_INT(version, IP_VS_VERSION_CODE);            /* 1.2.1, as ipvsadm -L prints */
    CHECK_INT(size, 4096);
    printf("  IPVS %u.%u.%u (size=%u) resolved; %zu ops per sendmsg\n", version >> 16,
           (version >> 8) & 0xff, version & 0xff, size, ipvs_conn_max_batch(c));
    ipvs_conn_free(c);
}

static void test_add_mixed_matches_ipvsadm(void)
{
    struct ipvs_batch b = { 0 };
    if (!ready())
        return;
    mixed_batch(&b);
    if (apply(&b) && all_applied(&b)) {
        struct ipvs_table *want = expected_from(&b);
        ipvsadm_shows(want);
        struct ipvs_table *got = dump();
        if (got) {
            dump_equals(got, want);
            ipvsadm_shows(got);
        }
        ipvs_table_free(got);
        table_free_expected(want);
    }
    ipvs_batch_release(&b);
}

/* ipvsadm writes, we read: the dump must render back to exactly ipvsadm's own view. */
static void test_dump_of_ipvsadm_rules(void)
{
    if (!ready())
        return;
    int rc = sh("printf '%%s\\n' "
        "'-A -t 10.2.0.1:80 -s rr' '-a -t 10.2.0.1:80 -r 10.3.0.1:81 -m -w 4' "
        "'-a -t 10.2.0.1:80 -r 10.3.0.2:80 -g -w 0' "
        "'-A -u [2001:db8::10]:53 -s wlc -p 120 -M 64' "
        "'-a -u [2001:db8::10]:53 -r [2001:db8::11]:53 -i -w 2' "
        "'-A -f 42 -s sh -b sh-port' '-a -f 42 -r 10.3.0.3:0 -g -w 9' "
        "'-A --sctp-service 10.2.0.2:7 -s dh' "
        "| " IPVSADM " -R");
    if (!CHECK_MSG(rc == 0, "ipvsadm -R exited %d", rc))
        return;
    struct ipvs_table *got = dump();
    if (got) {
        CHECK_INT(got->n, 4);
        ipvsadm_shows(got);
        struct ipvs_service k = svc_ip(IPPROTO_UDP, "2001:db8::10", 53, "");
        struct ipvs_entry *e = ipvs_table_find(got, &k);
        if (CHECK(e != NULL)) {
            CHECK_INT(e->svc.netmask, 64);
            CHECK_INT(e->svc.timeout, 120);
            CHECK_STR(e->svc.sched, "wlc");
            CHECK_INT(e->n_dests, 1);
        }
    }
    ipvs_table_free(got);
}

/* Edits happen in place: a scheduler change keeps the dests, a weight change keeps the dest
 * (its stats and connection counters live on), weight 0 is kept as 0. */
static void test_edit_in_place(void)
{
    struct ipvs_batch b = { 0 };
    if (!ready())
        return;
    mixed_batch(&b);
    if (!apply(&b) || !all_applied(&b))
        goto out;
    struct ipvs_service s = svc_ip(IPPROTO_TCP, "10.0.0.1", 80, "rr");
    struct ipvs_dest d1 = dest_ip("10.1.0.1", 8080, IPVS_FWD_MASQ, 0);
    struct ipvs_dest d4 = dest_ip("10.1.0.4", 80, IPVS_FWD_TUNNEL, 20);
    d4.tun_type = IP_VS_CONN_F_TUNNEL_TYPE_GUE;
    d4.tun_port = 6081;
    d4.tun_flags = IP_VS_TUNNEL_ENCAP_FLAG_CSUM;
    struct ipvs_batch e = { 0 };
    ipvs_batch_push(&e, IPVS_OP_EDIT_SERVICE, &s, NULL);
    ipvs_batch_push(&e, IPVS_OP_EDIT_DEST, &s, &d1);
    ipvs_batch_push(&e, IPVS_OP_EDIT_DEST, &s, &d4);
    if (apply(&e) && all_applied(&e)) {
        struct ipvs_table *want = expected_from(&b);
        struct ipvs_entry *w = ipvs_table_find(want, &s);
        w->svc = s;
        w->dests[0] = d1;
        w->dests[3] = d4;
        struct ipvs_table *got = dump();
        if (got) {
            dump_equals(got, want);
            ipvsadm_shows(got);
            struct ipvs_entry *ge = ipvs_table_find(got, &s);
            CHECK(ge != NULL && ge->n_dests == 4);
        }
        ipvs_table_free(got);
        table_free_expected(want);
    }
    ipvs_batch_release(&e);
out:
    ipvs_batch_release(&b);
}

/* A persistence engine is set by add, kept by an edit that names it, and cleared by an edit
 * that does not (the kernel's rule: SET_SERVICE without PE_NAME clears it). */
static void test_pe_set_and_cleared(void)
{
    struct ipvs_batch b = { 0 };
    if (!ready())
        return;
    struct ipvs_service s = svc_ip(IPPROTO_UDP, "10.0.0.9", 5060, "rr");
    s.flags = IP_VS_SVC_F_PERSISTENT;
    s.timeout = 60;
    snprintf(s.pe, sizeof(s.pe), "sip");
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);
    if (!apply(&b) || !all_applied(&b))
        goto out;
    struct ipvs_table *t = dump();
    if (t && CHECK(t->n == 1)) {
        CHECK_STR(t->entries[0].svc.pe, "sip");
        ipvsadm_shows(t);
    }
    ipvs_table_free(t);
    s.timeout = 120;
    b.ops[0].kind = IPVS_OP_EDIT_SERVICE;
    b.ops[0].svc = s;                          /* still names the PE: kept */
    if (!apply(&b) || !all_applied(&b))
        goto out;
    t = dump();
    if (t && CHECK(t->n == 1))
        CHECK_STR(t->entries[0].svc.pe, "sip");
    ipvs_table_free(t);
    b.ops[0].svc.pe[0] = 0;                    /* no PE: cleared */
    if (!apply(&b) || !all_applied(&b))
        goto out;
    t = dump();
    if (t && CHECK(t->n == 1)) {
        CHECK_STR(t->entries[0].svc.pe, "");
        CHECK_INT(t->entries[0].svc.timeout, 120);
        ipvsadm_shows(t);
    }
    ipvs_table_free(t);
out:
    ipvs_batch_release(&b);
}

static void test_delete(void)
{
    struct ipvs_batch b = { 0 }, del = { 0 };
    if (!ready())
        return;
    mixed_batch(&b);
    if (!apply(&b) || !all_applied(&b))
        goto out;
    struct ipvs_service s80 = svc_ip(IPPROTO_TCP, "10.0.0.1", 80, "");
    struct ipvs_dest d2 = dest_ip("10.1.0.2", 80, 0, 0);
    struct ipvs_service s6 = svc_ip(IPPROTO_TCP, "2001:db8::1", 443, "");
    struct ipvs_service f8 = svc_fwm(AF_INET6, 8, "");
    ipvs_batch_push(&del, IPVS_OP_DEL_DEST, &s80, &d2);
    ipvs_batch_push(&del, IPVS_OP_DEL_SERVICE, &s6, NULL);
    ipvs_batch_push(&del, IPVS_OP_DEL_SERVICE, &f8, NULL);
    if (apply(&del) && all_applied(&del)) {
        struct ipvs_table *got = dump();
        if (got) {
            CHECK(ipvs_table_find(got, &s6) == NULL);
            CHECK(ipvs_table_find(got, &f8) == NULL);
            struct ipvs_entry *e = ipvs_table_find(got, &s80);
            if (CHECK(e != NULL)) {
                CHECK_INT(e->n_dests, 3);
                for (size_t i = 0; i < e->n_dests; i++)
                    CHECK(ipvs_dest_cmp(&s80, &e->dests[i], &d2) != 0);
            }
            ipvsadm_shows(got);
        }
        ipvs_table_free(got);
    }
out:
    ipvs_batch_release(&del);
    ipvs_batch_release(&b);
}

static void expect_op(const struct ipvs_op *op, enum ipvs_outcome outcome, int error)
{
    CHECK_MSG(op->outcome == outcome && op->error == error,
              "%s: outcome %d error %d (%s), want outcome %d error %d", ipvs_op_name(op->kind),
              op->outcome, op->error, strerror(-op->error), outcome, error);
}

/* Adding what exists and deleting what is gone are reported as ALREADY with the kernel's
 * errno; editing what is gone fails. */
static void test_idempotent_outcomes(void)
{
    struct ipvs_batch b = { 0 };
    if (!ready())
        return;
    struct ipvs_service s = svc_ip(IPPROTO_TCP, "10.5.0.1", 80, "wlc");
    struct ipvs_service gone = svc_ip(IPPROTO_TCP, "10.5.0.2", 80, "wlc");
    struct ipvs_dest d = dest_ip("10.6.0.1", 80, IPVS_FWD_MASQ, 1);
    struct ipvs_dest nod = dest_ip("10.6.0.2", 80, IPVS_FWD_MASQ, 1);
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);      /* 0 applied */
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);      /* 1 EEXIST */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);           /* 2 applied */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);           /* 3 EEXIST */
    ipvs_batch_push(&b, IPVS_OP_DEL_DEST, &s, &nod);         /* 4 ENOENT */
    ipvs_batch_push(&b, IPVS_OP_DEL_DEST, &gone, &d);        /* 5 ESRCH */
    ipvs_batch_push(&b, IPVS_OP_DEL_SERVICE, &gone, NULL);   /* 6 ESRCH */
    ipvs_batch_push(&b, IPVS_OP_EDIT_SERVICE, &gone, NULL);  /* 7 ESRCH: failed */
    ipvs_batch_push(&b, IPVS_OP_EDIT_DEST, &s, &nod);        /* 8 ENOENT: failed */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &gone, &d);        /* 9 ESRCH: failed */
    if (!apply(&b))
        goto out;
    expect_op(&b.ops[0], IPVS_APPLIED, 0);
    expect_op(&b.ops[1], IPVS_ALREADY, -EEXIST);
    expect_op(&b.ops[2], IPVS_APPLIED, 0);
    expect_op(&b.ops[3], IPVS_ALREADY, -EEXIST);
    expect_op(&b.ops[4], IPVS_ALREADY, -ENOENT);
    expect_op(&b.ops[5], IPVS_ALREADY, -ESRCH);
    expect_op(&b.ops[6], IPVS_ALREADY, -ESRCH);
    expect_op(&b.ops[7], IPVS_FAILED, -ESRCH);
    expect_op(&b.ops[8], IPVS_FAILED, -ENOENT);
    expect_op(&b.ops[9], IPVS_FAILED, -ESRCH);
    CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_ALREADY), 5);
out:
    ipvs_batch_release(&b);
}

/* One bad op (unknown scheduler, out-of-range weight, bad thresholds) fails alone; the ops
 * around it in the same sendmsg are applied. */
static void test_bad_op_fails_alone(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_counters before, after;
    if (!ready())
        return;
    struct ipvs_service a = svc_ip(IPPROTO_TCP, "10.7.0.1", 80, "rr");
    struct ipvs_service bad = svc_ip(IPPROTO_TCP, "10.7.0.2", 80, "nosuchsched");
    struct ipvs_service c = svc_ip(IPPROTO_UDP, "10.7.0.3", 53, "wrr");
    struct ipvs_dest d = dest_ip("10.8.0.1", 80, IPVS_FWD_MASQ, 1);
    struct ipvs_dest heavy = dest_ip("10.8.0.2", 80, IPVS_FWD_MASQ, 0x80000000u);
    struct ipvs_dest thr = dest_ip("10.8.0.3", 80, IPVS_FWD_MASQ, 1);
    thr.u_thresh = 5;
    thr.l_thresh = 10;
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &a, NULL);
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &bad, NULL);
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &c, NULL);
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &a, &heavy);
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &a, &thr);
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &a, &d);
    ipvs_conn_counters(conn, &before);
    if (!apply(&b))
        goto out;
    ipvs_conn_counters(conn, &after);
    CHECK_INT(after.sendmsgs - before.sendmsgs, 1);
    expect_op(&b.ops[0], IPVS_APPLIED, 0);
    expect_op(&b.ops[1], IPVS_FAILED, -ENOENT);
    expect_op(&b.ops[2], IPVS_APPLIED, 0);
    expect_op(&b.ops[3], IPVS_FAILED, -ERANGE);
    expect_op(&b.ops[4], IPVS_FAILED, -ERANGE);
    expect_op(&b.ops[5], IPVS_APPLIED, 0);
    struct ipvs_table *got = dump();
    if (got) {
        CHECK_INT(got->n, 2);
        CHECK(ipvs_table_find(got, &a) && ipvs_table_find(got, &a)->n_dests == 1);
        CHECK(ipvs_table_find(got, &c) != NULL);
        CHECK(ipvs_table_find(got, &bad) == NULL);
    }
    ipvs_table_free(got);
out:
    ipvs_batch_release(&b);
}

/* A service for index i of a large table: TCP/UDP alternating on 10.100.x.y, port 1000+i%50,
 * one dest each. */
static void big_batch(struct ipvs_batch *b, int n, bool with_dests)
{
    static const char *scheds[] = { "wlc", "rr", "wrr", "lc", "sh" };
    for (int i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.100.%d.%d", i / 250, i % 250 + 1);
        struct ipvs_service s = svc_ip(i % 2 ? IPPROTO_UDP : IPPROTO_TCP, addr,
                                       (uint16_t)(1000 + i % 50), scheds[i % 5]);
        ipvs_batch_push(b, IPVS_OP_ADD_SERVICE, &s, NULL);
        if (with_dests) {
            snprintf(addr, sizeof(addr), "10.200.%d.%d", i / 250, i % 250 + 1);
            struct ipvs_dest d = dest_ip(addr, 8080, IPVS_FWD_MASQ, (uint32_t)(i % 100));
            ipvs_batch_push(b, IPVS_OP_ADD_DEST, &s, &d);
        }
    }
}

static void test_batch_2000(void)
{
    struct ipvs_batch b = { 0 }, del = { 0 };
    struct ipvs_counters before, after;
    if (!ready())
        return;
    big_batch(&b, 2000, true);
    ipvs_conn_counters(conn, &before);
    double t0 = now_ms();
    if (!apply(&b) || !all_applied(&b))
        goto out;
    double t1 = now_ms();
    ipvs_conn_counters(conn, &after);
    size_t per = ipvs_conn_max_batch(conn);
    CHECK_INT(after.sendmsgs - before.sendmsgs, (b.n + per - 1) / per);
    struct ipvs_table *got = dump();
    double t2 = now_ms();
    if (got) {
        struct ipvs_table *want = expected_from(&b);
        dump_equals(got, want);
        ipvsadm_shows(want);
        table_free_expected(want);
    }
    ipvs_table_free(got);
    for (size_t i = 0; i < b.n; i++)
        if (b.ops[i].kind == IPVS_OP_ADD_SERVICE)
            ipvs_batch_push(&del, IPVS_OP_DEL_SERVICE, &b.ops[i].svc, NULL);
    double t3 = now_ms();
    if (apply(&del) && all_applied(&del)) {
        double t4 = now_ms();
        struct ipvs_table *left = dump();
        if (left)
            CHECK_INT(left->n, 0);
        ipvs_table_free(left);
        printf("  2000 services + 2000 dests: apply %.0f ms in %llu sendmsg, dump %.0f ms, "
               "delete %.0f ms\n", t1 - t0,
               (unsigned long long)(after.sendmsgs - before.sendmsgs), t2 - t1, t4 - t3);
    }
out:
    ipvs_batch_release(&del);
    ipvs_batch_release(&b);
}

/* Small forced chunks: 7 ops per sendmsg still map every ACK to the right op. */
static void test_small_chunks(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_counters before, after;
    if (!ready())
        return;
    size_t saved = ipvs_conn_max_batch(conn);
    big_batch(&b, 50, true);
    struct ipvs_service bad = svc_ip(IPPROTO_TCP, "10.9.9.9", 1, "nosuch");
    b.ops[37].kind = IPVS_OP_ADD_SERVICE;    /* a dest op turned into a failing service add */
    b.ops[37].svc = bad;
    ipvs_conn_set_max_batch(conn, 7);
    ipvs_conn_counters(conn, &before);
    bool ok = apply(&b);
    ipvs_conn_counters(conn, &after);
    ipvs_conn_set_max_batch(conn, saved);
    if (!ok)
        goto out;
    CHECK_INT(after.sendmsgs - before.sendmsgs, (100 + 6) / 7);
    for (size_t i = 0; i < b.n; i++)
        if (i == 37)
            expect_op(&b.ops[i], IPVS_FAILED, -ENOENT);
        else
            expect_op(&b.ops[i], IPVS_APPLIED, 0);
out:
    ipvs_batch_release(&b);
}

/* ACKs lost to a receive-buffer overrun: ipvs_apply returns -ENOBUFS promptly (no hang),
 * the unanswered ops are FAILED with -ENOBUFS, and a dump shows what the kernel did. */
static void test_overrun_reported(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_err err = { 0 };
    if (!ready())
        return;
    size_t saved = ipvs_conn_max_batch(conn);
    ipvs_conn_set_buffers(conn, 0, 4096);
    ipvs_conn_set_max_batch(conn, 1000);
    big_batch(&b, 1000, false);
    double t0 = now_ms();
    int rc = ipvs_apply(conn, b.ops, b.n, &err);
    double t1 = now_ms();
    ipvs_conn_set_buffers(conn, 0, 8 << 20);
    ipvs_conn_set_max_batch(conn, saved);
    CHECK_MSG(rc == -ENOBUFS, "ipvs_apply: %d %s, want -ENOBUFS", rc, err.msg);
    size_t applied = ipvs_ops_count(b.ops, b.n, IPVS_APPLIED);
    size_t lost = 0;
    for (size_t i = 0; i < b.n; i++)
        lost += b.ops[i].outcome == IPVS_FAILED && b.ops[i].error == -ENOBUFS;
    CHECK_INT(applied + lost, 1000);
    CHECK(lost > 0);
    CHECK_MSG(t1 - t0 < 4000, "took %.0f ms: it waited for lost answers", t1 - t0);
    struct ipvs_service *svcs = NULL;
    size_t n = 0;
    CHECK_INT(ipvs_dump_services(conn, &svcs, &n, &err), 0);
    CHECK_INT(n, 1000);          /* the kernel applied every op; only answers were lost */
    free(svcs);
    printf("  overrun: %zu answers received, %zu lost, in %.0f ms: %s\n", applied, lost,
           t1 - t0, err.msg);
    ipvs_batch_release(&b);
}

/* The ipvs_iface table works the same as the direct calls. */
static void test_iface(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_err err = { 0 };
    struct ipvs_table *t = NULL;
    if (!ready())
        return;
    struct ipvs_iface k = ipvs_conn_iface(conn);
    struct ipvs_service s = svc_fwm(AF_INET, 99, "rr");
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);
    CHECK_INT(k.apply(k.self, b.ops, b.n, &err), 0);
    expect_op(&b.ops[0], IPVS_APPLIED, 0);
    CHECK_INT(k.dump(k.self, &t, &err), 0);
    if (CHECK(t != NULL) && CHECK(t->n == 1))
        CHECK_INT(t->entries[0].svc.fwmark, 99);
    ipvs_table_free(t);
    ipvs_batch_release(&b);
}

/* Order of service identities, for qsort. */
static int svc_order(const void *a, const void *b)
{
    return ipvs_service_cmp(a, b);
}

/* Read a whole service dump in parts of max into list; between parts, run between(i) (i: the
 * part just read). Returns the number of parts, or 0 after a failure (checked). */
static size_t dump_in_parts(struct ipvs_service_list *list, size_t max, void (*between)(size_t))
{
    struct ipvs_err err = { 0 };
    size_t parts = 0;
    int rc;
    do {
        rc = ipvs_dump_services_part(conn, list, max, &err);
        if (!CHECK_MSG(rc >= 0, "part %zu: %d %s", parts, rc, err.msg))
            return 0;
        parts++;
        if (rc == 1 && between)
            between(parts);
    } while (rc == 1);
    return parts;
}

/* Between two parts of a dump: the connection's other exchanges go on (a dest dump, an op). */
static void exchanges_between(size_t part)
{
    struct ipvs_err err = { 0 };
    char addr[32];
    snprintf(addr, sizeof addr, "10.100.0.%zu", part % 250 + 1);
    struct ipvs_service s = svc_ip(part % 2 ? IPPROTO_UDP : IPPROTO_TCP, addr,
                                   (uint16_t)(1000 + part % 50), "wlc");
    struct ipvs_dest d = dest_ip("10.201.0.1", 80, IPVS_FWD_MASQ, 1), *got = NULL;
    struct ipvs_batch b = { 0 };
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);
    int rc = ipvs_apply(conn, b.ops, b.n, &err);
    if (CHECK_MSG(rc == 0, "apply between parts: %d %s", rc, err.msg))
        expect_op(&b.ops[0], IPVS_APPLIED, 0);
    size_t n = 0;
    CHECK_INT(ipvs_dump_dests(conn, &s, &got, &n, &err), 0);
    CHECK_INT(n, 1);
    free(got);
    ipvs_batch_release(&b);
}

/* A service dump read in parts (issue #8: an event loop never waits for the whole table):
 * parts are small (the kernel's datagrams stay a page), together they are the whole dump, the
 * connection's other exchanges work between them, and a dump stopped half way leaves the
 * connection able to dump again. */
static void test_dump_in_parts(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_err err = { 0 };
    struct ipvs_service *whole = NULL;
    struct ipvs_service_list list = { 0 };
    size_t n = 0;
    if (!ready())
        return;
    big_batch(&b, 1000, false);
    if (!apply(&b) || !all_applied(&b))
        goto out;
    CHECK_INT(ipvs_dump_services(conn, &whole, &n, &err), 0);
    CHECK_INT(n, 1000);
    double t0 = now_ms();
    size_t parts = dump_in_parts(&list, 64, exchanges_between);
    double t1 = now_ms();
    CHECK_MSG(parts >= 1000 / 100, "%zu parts of at most 64 services and a datagram", parts);
    if (CHECK_MSG(list.n == 1000, "the parts gave %zu services, not 1000", list.n)) {
        qsort(whole, n, sizeof *whole, svc_order);
        qsort(list.v, list.n, sizeof *list.v, svc_order);
        for (size_t i = 0; i < n; i++)
            CHECK_MSG(ipvs_service_cmp(&whole[i], &list.v[i]) == 0, "service %zu differs", i);
    }
    list.n = 0;
    CHECK_INT(ipvs_dump_services_part(conn, &list, 64, &err), 1);
    ipvs_dump_services_stop(conn);
    list.n = 0;
    CHECK(dump_in_parts(&list, 64, NULL) > 0);
    CHECK_INT(list.n, 1000);
    printf("  1000 services in %zu parts of 64 (%.0f ms with a dest dump and an op between "
           "parts)\n", parts, t1 - t0);
out:
    free(whole);
    ipvs_service_list_release(&list);
    ipvs_batch_release(&b);
    flush();
}

/* ---------- the in-memory fake answers like the kernel ------------------------------------ */

static unsigned rnd_state = 12345;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static struct ipvs_service random_service(void)
{
    static const char *addrs4[] = { "10.20.0.1", "10.20.0.2" };
    static const char *addrs6[] = { "2001:db8:20::1", "2001:db8:20::2" };
    static const uint16_t protos[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP };
    static const char *scheds[] = { "rr", "wlc", "sh", "mh", "wrr", "" };
    bool v6 = rnd(3) == 0;
    struct ipvs_service s;
    if (rnd(5) == 0)
        s = svc_fwm(v6 ? AF_INET6 : AF_INET, 1 + rnd(2), "");
    else
        s = svc_ip(protos[rnd(3)], v6 ? addrs6[rnd(2)] : addrs4[rnd(2)],
                   (uint16_t)(80 + rnd(2)), "");
    snprintf(s.sched, sizeof(s.sched), "%s", rnd(60) == 0 ? "bogus" : scheds[rnd(6)]);
    if (rnd(4) == 0) {
        s.flags |= IP_VS_SVC_F_PERSISTENT;
        s.timeout = 60 + rnd(3) * 120;
        s.netmask = rnd(2) ? 0 : s.af == AF_INET6 ? 64 : 24;
    }
    if (rnd(5) == 0)
        s.flags |= IP_VS_SVC_F_SCHED1;
    return s;
}

static struct ipvs_dest random_dest(void)
{
    static const char *addrs[] = { "10.21.0.1", "10.21.0.2", "2001:db8:21::1", "10.21.0.3" };
    static const uint32_t fwds[] = { IPVS_FWD_MASQ, IPVS_FWD_DROUTE, IPVS_FWD_TUNNEL };
    static const uint32_t weights[] = { 0, 1, 100, 65535, 0x80000000u };
    struct ipvs_dest d = dest_ip(addrs[rnd(4)], (uint16_t)(80 + rnd(2) * 8000),
                                 fwds[rnd(3)], weights[rnd(5) == 0 ? 4 : rnd(4)]);
    if (rnd(8) == 0)
        d.u_thresh = 10, d.l_thresh = rnd(2) ? 5 : 20;
    if (d.fwd == IPVS_FWD_TUNNEL && rnd(3) == 0) {
        d.tun_type = IP_VS_CONN_F_TUNNEL_TYPE_GUE;
        d.tun_port = rnd(3) ? 6080 : 0;
        d.tun_flags = IP_VS_TUNNEL_ENCAP_FLAG_CSUM;
    }
    return d;
}

static void random_ops(struct ipvs_batch *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned k = rnd(100);
        struct ipvs_service s = random_service();
        struct ipvs_dest d = random_dest();
        enum ipvs_op_kind kind = k < 20 ? IPVS_OP_ADD_SERVICE : k < 30 ? IPVS_OP_EDIT_SERVICE :
                                 k < 37 ? IPVS_OP_DEL_SERVICE : k < 67 ? IPVS_OP_ADD_DEST :
                                 k < 87 ? IPVS_OP_EDIT_DEST : k < 99 ? IPVS_OP_DEL_DEST :
                                 IPVS_OP_FLUSH;
        ipvs_batch_push(b, kind, &s, &d);
    }
}

/* Kernel and fake tables hold the same services and dests with the same configs. */
static bool same_tables(const struct ipvs_table *k, const struct ipvs_table *f, size_t at)
{
    bool ok = CHECK_MSG(k->n == f->n, "after op %zu: kernel %zu services, fake %zu", at, k->n,
                        f->n);
    char s[96], d[96];
    for (size_t i = 0; ok && i < k->n; i++) {
        const struct ipvs_entry *ke = &k->entries[i], *fe = ipvs_table_find(f, &ke->svc);
        ipvs_service_str(&ke->svc, s, sizeof(s));
        ok = CHECK_MSG(fe, "after op %zu: fake lacks %s", at, s) &&
             CHECK_MSG(ipvs_service_same_config(&ke->svc, &fe->svc) &&
                       ke->svc.protocol == fe->svc.protocol,
                       "after op %zu: %s differs (sched %s/%s flags %x/%x proto %u/%u)", at, s,
                       ke->svc.sched, fe->svc.sched, ke->svc.flags, fe->svc.flags,
                       ke->svc.protocol, fe->svc.protocol) &&
             CHECK_MSG(ke->n_dests == fe->n_dests, "after op %zu: %s has %zu dests, fake %zu",
                       at, s, ke->n_dests, fe->n_dests);
        for (size_t j = 0; ok && j < ke->n_dests; j++) {
            const struct ipvs_dest *kd = &ke->dests[j], *fd = NULL;
            for (size_t m = 0; m < fe->n_dests; m++)
                if (ipvs_dest_cmp(&ke->svc, &fe->dests[m], kd) == 0)
                    fd = &fe->dests[m];
            ipvs_dest_str(&ke->svc, kd, d, sizeof(d));
            ok = CHECK_MSG(fd && ipvs_dest_same_config(kd, fd),
                           "after op %zu: %s -> %s differs or missing in the fake", at, s, d);
        }
    }
    return ok;
}

/* One random sequence of 3,000 ops (small key space, so adds collide, deletes miss, bad
 * schedulers, weights, thresholds and tunnel ports occur) applied in random chunks to the
 * kernel and to ipvs_fake: every op must get the same answer, and the tables must agree. */
static void test_fake_matches_kernel(void)
{
    struct ipvs_batch b = { 0 };
    ipvs_fake *fake = ipvs_fake_new();
    struct ipvs_err err = { 0 };
    if (!ready() || !CHECK(fake != NULL))
        goto out;
    random_ops(&b, 3000);
    struct ipvs_op *fops = malloc(b.n * sizeof(*fops));
    memcpy(fops, b.ops, b.n * sizeof(*fops));
    size_t at = 0, mismatches = 0;
    while (at < b.n && mismatches < 5) {
        size_t len = 1 + rnd(300);
        if (len > b.n - at)
            len = b.n - at;
        int krc = ipvs_apply(conn, b.ops + at, len, &err);
        if (!CHECK_MSG(krc == 0, "ipvs_apply: %d %s", krc, err.msg) ||
            !CHECK(ipvs_fake_apply(fake, fops + at, len, &err) == 0))
            break;
        for (size_t i = at; i < at + len && mismatches < 5; i++) {
            char s[96];
            if (b.ops[i].error == fops[i].error && b.ops[i].outcome == fops[i].outcome)
                continue;
            mismatches++;
            check_fail(__FILE__, __LINE__, "op %zu %s %s: kernel %d (%s), fake %d", i,
                       ipvs_op_name(b.ops[i].kind), ipvs_service_str(&b.ops[i].svc, s, sizeof(s)),
                       b.ops[i].error, strerror(-b.ops[i].error), fops[i].error);
        }
        at += len;
        struct ipvs_table *kt = dump(), *ft = NULL;
        ipvs_fake_dump(fake, &ft, &err);
        if (!kt || !ft || !same_tables(kt, ft, at))
            mismatches = 5;
        ipvs_table_free(kt);
        ipvs_table_free(ft);
    }
    int codes[] = { EEXIST, ESRCH, ENOENT, ERANGE, EINVAL };
    size_t hist[5] = { 0 };
    for (size_t i = 0; i < b.n; i++)
        for (int c = 0; c < 5; c++)
            hist[c] += b.ops[i].error == -codes[c];
    printf("  3000 random ops: %zu applied, %zu already, %zu failed (EEXIST %zu ESRCH %zu "
           "ENOENT %zu ERANGE %zu EINVAL %zu)\n", ipvs_ops_count(b.ops, b.n, IPVS_APPLIED),
           ipvs_ops_count(b.ops, b.n, IPVS_ALREADY), ipvs_ops_count(b.ops, b.n, IPVS_FAILED),
           hist[0], hist[1], hist[2], hist[3], hist[4]);
    for (int c = 1; c < 5; c++)
        CHECK_MSG(hist[c] > 0, "the random sequence never produced %s", strerror(codes[c]));
    free(fops);
out:
    ipvs_fake_free(fake);
    ipvs_batch_release(&b);
}

/* ---------- real traffic: edits keep an established connection ----------------------------- */

#define IPC "/bin/ip"

/* Client netns cl (10.8.0.2) -> VIP 10.10.10.10 on a dummy in the root netns -> masq to the
 * backend netns be (10.9.0.2). Returns 0 when the topology is up. */
static int net_setup(void)
{
    return sh("set -e; " IPC " netns add be; " IPC " netns add cl; "
              IPC " link add vb0 type veth peer name vb1; " IPC " link set vb1 netns be; "
              IPC " addr add 10.9.0.1/24 dev vb0; " IPC " link set vb0 up; "
              IPC " -n be addr add 10.9.0.2/24 dev vb1; " IPC " -n be link set vb1 up; "
              IPC " -n be link set lo up; " IPC " -n be route add default via 10.9.0.1; "
              IPC " link add vc0 type veth peer name vc1; " IPC " link set vc1 netns cl; "
              IPC " addr add 10.8.0.1/24 dev vc0; " IPC " link set vc0 up; "
              IPC " -n cl addr add 10.8.0.2/24 dev vc1; " IPC " -n cl link set vc1 up; "
              IPC " -n cl link set lo up; " IPC " -n cl route add default via 10.8.0.1; "
              IPC " link add vip0 type dummy; " IPC " addr add 10.10.10.10/32 dev vip0; "
              IPC " link set vip0 up; echo 1 > /proc/sys/net/ipv4/ip_forward");
}

static void net_teardown(void)
{
    sh(IPC " netns del be 2>/dev/null; " IPC " netns del cl 2>/dev/null; "
       IPC " link del vip0 2>/dev/null; " IPC " link del vb0 2>/dev/null; "
       IPC " link del vc0 2>/dev/null; true");
}

/* Fork a child that enters netns `ns` and runs fn(); returns its pid or -1. */
static pid_t spawn_in_netns(const char *ns, void (*fn)(void))
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char path[64];
    snprintf(path, sizeof(path), "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        _exit(1);
    fn();
    _exit(0);
}

/* Backend: accept one connection on :9000 and count the bytes received in /tmp/be.count. */
static void backend_main(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9000) };
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4) < 0)
        _exit(1);
    int s = accept(ls, NULL, NULL);
    char buf[256];
    long total = 0;
    ssize_t n;
    while (s >= 0 && (n = read(s, buf, sizeof(buf))) > 0) {
        total += n;
        FILE *f = fopen("/tmp/be.count.tmp", "w");
        if (f) {
            fprintf(f, "%ld\n", total);
            fclose(f);
            rename("/tmp/be.count.tmp", "/tmp/be.count");
        }
    }
}

/* Client: connect to the VIP and send a line every 50 ms, for ever. */
static void client_main(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9000) };
    inet_pton(AF_INET, "10.10.10.10", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
        _exit(1);
    for (;;) {
        if (write(s, "ping\n", 5) != 5)
            _exit(1);
        usleep(50 * 1000);
    }
}

/* A second client: exit 0 if a new connection to the VIP is established within 3 s. */
static void probe_main(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9000) };
    struct timeval tv = { .tv_sec = 3 };
    inet_pton(AF_INET, "10.10.10.10", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    _exit(connect(s, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : 1);
}

/* Whether a new connection through the VIP gets established now. */
static bool new_connection_accepted(void)
{
    int st = 0;
    pid_t p = spawn_in_netns("cl", probe_main);
    if (p < 0 || waitpid(p, &st, 0) < 0)
        return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Bytes the backend has received so far. */
static long backend_bytes(void)
{
    long n = 0;
    FILE *f = fopen("/tmp/be.count", "r");
    if (f) {
        if (fscanf(f, "%ld", &n) != 1)
            n = 0;
        fclose(f);
    }
    return n;
}

/* Wait up to ms for the backend's byte count to exceed `than`. */
static bool backend_grows(long than, int ms)
{
    for (int waited = 0; waited < ms; waited += 100) {
        if (backend_bytes() > than)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

/* The one dest of the VIP service as dumped now (false if absent). */
static bool vip_dest(const struct ipvs_service *s, struct ipvs_dest *out)
{
    struct ipvs_dest *d = NULL;
    size_t n = 0;
    struct ipvs_err err = { 0 };
    int rc = ipvs_dump_dests(conn, s, &d, &n, &err);
    bool ok = rc == 0 && n == 1;
    if (ok)
        *out = d[0];
    free(d);
    return ok;
}

/* Poll the VIP's dest until its stats show at least `conns` connections and more than
 * `inpkts` packets, up to ms. */
static bool vip_dest_stats(const struct ipvs_service *s, struct ipvs_dest *out, uint64_t conns,
                           uint64_t inpkts, int ms)
{
    for (int waited = 0; waited < ms; waited += 200) {
        if (vip_dest(s, out) && out->stats.conns >= conns && out->stats.inpkts > inpkts)
            return true;
        usleep(200 * 1000);
    }
    return vip_dest(s, out) && false;
}

/* ActiveConn of dest `addr` in `ipvsadm -L -n`, or -1. */
static int ipvsadm_active(const char *addr)
{
    char line[256], a[64];
    int w, act, inact, found = -1;
    FILE *p = popen(IPVSADM " -L -n", "r");
    while (p && fgets(line, sizeof(line), p))
        if (sscanf(line, " -> %63s %*s %d %d %d", a, &w, &act, &inact) == 4 &&
            strcmp(a, addr) == 0)
            found = act;
    if (p)
        pclose(p);
    return found;
}

/* A TCP connection through a masq VIP stays up, and keeps its destination, stats and
 * connection count, across a scheduler change and a weight change to 0 (drain). */
static void test_edit_keeps_connection(void)
{
    struct ipvs_batch b = { 0 }, e = { 0 };
    struct ipvs_dest d0, d1;
    pid_t be = -1, cl = -1;
    if (!ready())
        return;
    net_teardown();
    if (!CHECK_MSG(net_setup() == 0, "netns/veth setup failed"))
        goto out;
    struct ipvs_service s = svc_ip(IPPROTO_TCP, "10.10.10.10", 9000, "rr");
    struct ipvs_dest d = dest_ip("10.9.0.2", 9000, IPVS_FWD_MASQ, 1);
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);
    if (!apply(&b) || !all_applied(&b))
        goto out;
    unlink("/tmp/be.count");
    be = spawn_in_netns("be", backend_main);
    usleep(300 * 1000);
    cl = spawn_in_netns("cl", client_main);
    if (!CHECK_MSG(backend_grows(20, 20000), "no traffic reached the backend through the VIP"))
        goto out;
    /* Stats are summed from per-CPU counters by a 2 s estimator: poll for them. */
    if (!CHECK(vip_dest_stats(&s, &d0, 1, 3, 20000)))
        goto out;
    CHECK_INT(d0.active_conns, 1);
    CHECK_INT(ipvsadm_active("10.9.0.2:9000"), 1);
    CHECK_INT(d0.stats.conns, 1);
    CHECK(d0.stats.inpkts > 3);
    CHECK_MSG(new_connection_accepted(), "weight 1: a second connection should be scheduled");
    snprintf(s.sched, sizeof(s.sched), "wlc");
    d.weight = 0;
    ipvs_batch_push(&e, IPVS_OP_EDIT_SERVICE, &s, NULL);
    ipvs_batch_push(&e, IPVS_OP_EDIT_DEST, &s, &d);
    if (!apply(&e) || !all_applied(&e))
        goto out;
    long before = backend_bytes();
    CHECK_MSG(backend_grows(before + 20, 20000), "the connection stopped after the edits");
    if (CHECK(vip_dest_stats(&s, &d1, 2, d0.stats.inpkts, 20000))) {
        CHECK_INT(d1.weight, 0);
        CHECK_INT(d1.active_conns, 1);
        CHECK_INT(d1.stats.conns, 2);        /* the first one + the probe */
        CHECK_MSG(d1.stats.inpkts > d0.stats.inpkts, "inpkts %llu -> %llu",
                  (unsigned long long)d0.stats.inpkts, (unsigned long long)d1.stats.inpkts);
        CHECK_INT(ipvsadm_active("10.9.0.2:9000"), 1);
    }
    CHECK_MSG(!new_connection_accepted(), "weight 0 must not take new connections");
    before = backend_bytes();
    CHECK_MSG(backend_grows(before + 20, 20000),
              "the connection stopped after a new one was refused");
    struct ipvs_service *svcs = NULL;
    size_t n = 0;
    struct ipvs_err err = { 0 };
    int rc = ipvs_dump_services(conn, &svcs, &n, &err);
    if (CHECK_MSG(rc == 0 && n == 1, "service dump: %d %s, %zu services", rc, err.msg, n)) {
        CHECK_STR(svcs[0].sched, "wlc");
        CHECK_INT(svcs[0].stats.conns, 2);
    }
    free(svcs);
    printf("  connection through the VIP survived: %ld bytes at the backend, dest inpkts "
           "%llu -> %llu\n", backend_bytes(), (unsigned long long)d0.stats.inpkts,
           (unsigned long long)d1.stats.inpkts);
out:
    if (cl > 0)
        kill(cl, SIGKILL), waitpid(cl, NULL, 0);
    if (be > 0)
        kill(be, SIGKILL), waitpid(be, NULL, 0);
    net_teardown();
    ipvs_batch_release(&e);
    ipvs_batch_release(&b);
}

/* ---------- benchmark: our batched API vs ipvsadm -R ------------------------------------- */

static int bench(int n)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_err err = { 0 };
    if (ipvs_conn_new(&conn, &err) < 0) {
        printf("bench: %s\n", err.msg);
        return 1;
    }
    flush();
    big_batch(&b, n, false);
    double t0 = now_ms();
    int rc = ipvs_apply(conn, b.ops, b.n, &err);
    double t1 = now_ms();
    size_t ok = ipvs_ops_count(b.ops, b.n, IPVS_APPLIED);
    flush();
    size_t per = ipvs_conn_max_batch(conn);
    ipvs_conn_set_max_batch(conn, 1);          /* the same ops, one per sendmsg */
    double u0 = now_ms();
    int rc1 = ipvs_apply(conn, b.ops, b.n, &err);
    double u1 = now_ms();
    ipvs_conn_set_max_batch(conn, per);
    size_t ok1 = ipvs_ops_count(b.ops, b.n, IPVS_APPLIED);
    flush();
    FILE *f = fopen("/tmp/rules", "w");
    char line[256];
    for (size_t i = 0; f && i < b.n; i++) {
        char spec[96];
        svc_spec(&b.ops[i].svc, spec, sizeof(spec));
        snprintf(line, sizeof(line), "-A %s -s %s\n", spec, b.ops[i].svc.sched);
        fputs(line, f);
    }
    if (f)
        fclose(f);
    double t2 = now_ms();
    int st = sh(IPVSADM " -R < /tmp/rules");
    double t3 = now_ms();
    struct ipvs_service *svcs = NULL;
    size_t nsvc = 0;
    ipvs_dump_services(conn, &svcs, &nsvc, &err);
    printf("bench: %d services: ipvs_apply %.1f ms (%zu per sendmsg, rc %d, %zu applied), "
           "ipvsadm -R %.1f ms (exit %d, %zu in the table), ratio %.1fx; "
           "ipvs_apply one op per sendmsg %.1f ms (rc %d, %zu applied)\n", n, t1 - t0, per, rc,
           ok, t3 - t2, st, nsvc, (t3 - t2) / (t1 - t0), u1 - u0, rc1, ok1);
    free(svcs);
    flush();
    ipvs_batch_release(&b);
    ipvs_conn_free(conn);
    return rc == 0 && rc1 == 0 && st == 0 && ok == (size_t)n && ok1 == (size_t)n &&
           nsvc == (size_t)n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--bench") == 0)
        return bench(atoi(argv[2]));
    check_init(argc, argv);
    check_run("family", test_family);
    check_run("add_mixed_matches_ipvsadm", test_add_mixed_matches_ipvsadm);
    check_run("dump_of_ipvsadm_rules", test_dump_of_ipvsadm_rules);
    check_run("edit_in_place", test_edit_in_place);
    check_run("pe_set_and_cleared", test_pe_set_and_cleared);
    check_run("delete", test_delete);
    check_run("idempotent_outcomes", test_idempotent_outcomes);
    check_run("bad_op_fails_alone", test_bad_op_fails_alone);
    check_run("small_chunks", test_small_chunks);
    check_run("batch_2000", test_batch_2000);
    check_run("iface", test_iface);
    check_run("dump_in_parts", test_dump_in_parts);
    check_run("overrun_reported", test_overrun_reported);
    check_run("fake_matches_kernel", test_fake_matches_kernel);
    check_run("edit_keeps_connection", test_edit_keeps_connection);
    if (conn)
        flush();
    ipvs_conn_free(conn);
    return check_end();
}
