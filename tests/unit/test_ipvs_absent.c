/* test_ipvs_absent.c -- src/ipvs/ on the host, whose kernel has no IPVS: ipvs_conn_new fails
 * with IPVS_ERR_ABSENT and a clear message (and nothing crashes); plus the pure helpers of
 * ipvs.h (identity order, config equality, text forms, the op batch). The real kernel is
 * tested by tests/vm/test_ipvs.sh. */
#include "check.h"
#include "ipvs/ipvs.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* True when this kernel knows IPVS (module loaded or built in). */
static bool host_has_ipvs(void)
{
    return access("/proc/net/ip_vs", F_OK) == 0;
}

static void test_conn_new_without_ipvs(void)
{
    ipvs_conn *c = (ipvs_conn *)0x1;
    struct ipvs_err err = { 0 };
    int rc = ipvs_conn_new(&c, &err);
    if (host_has_ipvs()) {
        /* Not a missing prerequisite: the absent path cannot be shown on this host. */
        printf("  note: this host's kernel has IPVS; the absent-IPVS check does not apply "
               "(ipvs_conn_new returned %d %s)\n", rc, err.msg);
        ipvs_conn_free(c);
        return;
    }
    CHECK_INT(rc, IPVS_ERR_ABSENT);
    CHECK_INT(err.code, IPVS_ERR_ABSENT);
    CHECK_STR(err.msg, "the kernel has no IPVS: load ip_vs");
    CHECK(c == NULL);
    ipvs_conn_free(c);          /* NULL: a no-op */
    ipvs_conn_free(NULL);
    rc = ipvs_conn_new(&c, NULL);   /* no error struct: still no crash */
    CHECK_INT(rc, IPVS_ERR_ABSENT);
}

static struct ipvs_service svc(const char *addr, uint16_t proto, uint16_t port)
{
    struct ipvs_service s = { .protocol = proto, .port = port };
    CHECK_INT(ipvs_addr_parse(addr, &s.af, s.addr), 0);
    return s;
}

static void test_service_identity_and_config(void)
{
    struct ipvs_service a = svc("10.0.0.1", IPPROTO_TCP, 80), b = a;
    char buf[96];
    CHECK_INT(ipvs_service_cmp(&a, &b), 0);
    b.port = 81;
    CHECK(ipvs_service_cmp(&a, &b) < 0);
    b = a;
    b.protocol = IPPROTO_UDP;
    CHECK(ipvs_service_cmp(&a, &b) != 0);
    struct ipvs_service f1 = { .af = AF_INET, .fwmark = 7, .protocol = IPPROTO_TCP };
    struct ipvs_service f2 = { .af = AF_INET, .fwmark = 7, .port = 99 };
    CHECK_INT(ipvs_service_cmp(&f1, &f2), 0);        /* fwmark: proto/addr/port ignored */
    f2.af = AF_INET6;
    CHECK(ipvs_service_cmp(&f1, &f2) != 0);
    CHECK(ipvs_service_cmp(&a, &f1) != 0);
    /* defaults: "" = wlc, netmask 0 = full, HASHED ignored */
    b = a;
    snprintf(a.sched, sizeof(a.sched), "wlc");
    a.netmask = 32;
    b.flags = IP_VS_SVC_F_HASHED;
    CHECK(ipvs_service_same_config(&a, &b));
    b.timeout = 5;
    CHECK(!ipvs_service_same_config(&a, &b));
    CHECK_STR(ipvs_service_str(&a, buf, sizeof(buf)), "tcp 10.0.0.1:80");
    struct ipvs_service v6 = svc("2001:db8::1", IPPROTO_UDP, 53);
    CHECK_STR(ipvs_service_str(&v6, buf, sizeof(buf)), "udp [2001:db8::1]:53");
    CHECK_STR(ipvs_service_str(&f2, buf, sizeof(buf)), "fwm6 7");
    CHECK_INT(v6.netmask, 0);
    v6.netmask = 128;
    struct ipvs_service v6b = svc("2001:db8::1", IPPROTO_UDP, 53);
    CHECK(ipvs_service_same_config(&v6, &v6b));
}

static void test_dest_identity_and_config(void)
{
    struct ipvs_service s = svc("10.0.0.1", IPPROTO_TCP, 80);
    struct ipvs_dest a = { .port = 8080, .weight = 1 }, b;
    char buf[96];
    CHECK_INT(ipvs_addr_parse("10.1.0.1", &a.af, a.addr), 0);
    b = a;
    b.af = 0;                  /* 0 = the service's family */
    CHECK_INT(ipvs_dest_cmp(&s, &a, &b), 0);
    CHECK(ipvs_dest_same_config(&a, &b));
    b.weight = 0;
    CHECK(!ipvs_dest_same_config(&a, &b));
    b = a;
    b.tun_port = 1;
    CHECK(!ipvs_dest_same_config(&a, &b));
    CHECK_STR(ipvs_dest_str(&s, &a, buf, sizeof(buf)), "10.1.0.1:8080");
    CHECK_STR(ipvs_fwd_name(IPVS_FWD_DROUTE), "droute");
    CHECK_STR(ipvs_fwd_name(IPVS_FWD_TUNNEL), "tunnel");
    CHECK_STR(ipvs_fwd_name(IPVS_FWD_MASQ), "masq");
    CHECK_STR(ipvs_op_name(IPVS_OP_DEL_DEST), "delete-dest");
    uint16_t af;
    uint8_t addr[16];
    CHECK_INT(ipvs_addr_parse("not-an-address", &af, addr), -EINVAL);
    CHECK_INT(ipvs_addr_parse("::1", &af, addr), 0);
    CHECK_INT(af, AF_INET6);
}

static void test_batch_builder(void)
{
    struct ipvs_batch b = { 0 };
    struct ipvs_service s = svc("10.0.0.1", IPPROTO_TCP, 80);
    struct ipvs_dest d = { .port = 1 };
    for (int i = 0; i < 1000; i++) {
        s.port = (uint16_t)i;
        CHECK_INT(ipvs_batch_push(&b, i % 2 ? IPVS_OP_ADD_DEST : IPVS_OP_ADD_SERVICE, &s,
                                  i % 2 ? &d : NULL), 0);
    }
    CHECK_INT(b.n, 1000);
    CHECK_INT(b.ops[999].svc.port, 999);
    CHECK_INT(b.ops[999].kind, IPVS_OP_ADD_DEST);
    CHECK_INT(b.ops[998].dest.port, 0);
    CHECK_INT(b.ops[5].outcome, IPVS_PENDING);
    b.ops[3].outcome = IPVS_ALREADY;
    CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_ALREADY), 1);
    CHECK_INT(ipvs_batch_push(&b, IPVS_OP_FLUSH, NULL, NULL), 0);
    ipvs_batch_release(&b);
    CHECK(b.ops == NULL && b.n == 0);
    ipvs_batch_release(NULL);
}

static void test_op_str(void)
{
    struct ipvs_op op = { .kind = IPVS_OP_ADD_DEST, .svc = svc("10.0.0.1", IPPROTO_TCP, 80),
                          .dest = { .port = 8080 }, .outcome = IPVS_FAILED, .error = -ESRCH };
    char buf[256];
    ipvs_addr_parse("10.1.0.1", &op.dest.af, op.dest.addr);
    CHECK_STR(ipvs_op_str(&op, buf, sizeof(buf)),
              "add-dest tcp 10.0.0.1:80 -> 10.1.0.1:8080: No such process (ESRCH)");
    op.kind = IPVS_OP_DEL_SERVICE;
    op.outcome = IPVS_ALREADY;
    CHECK_STR(ipvs_op_str(&op, buf, sizeof(buf)),
              "delete-service tcp 10.0.0.1:80: already: No such process (ESRCH)");
    op.kind = IPVS_OP_FLUSH;
    op.outcome = IPVS_APPLIED;
    CHECK_STR(ipvs_op_str(&op, buf, sizeof(buf)), "flush: applied");
}

static void test_table_helpers(void)
{
    struct ipvs_table *t = calloc(1, sizeof(*t));
    t->entries = calloc(2, sizeof(*t->entries));
    t->n = 2;
    t->entries[0].svc = svc("10.0.0.1", IPPROTO_TCP, 80);
    t->entries[1].svc = svc("10.0.0.1", IPPROTO_UDP, 80);
    t->entries[1].dests = calloc(1, sizeof(struct ipvs_dest));
    t->entries[1].n_dests = 1;
    struct ipvs_service k = svc("10.0.0.1", IPPROTO_UDP, 80);
    CHECK(ipvs_table_find(t, &k) == &t->entries[1]);
    k.port = 1;
    CHECK(ipvs_table_find(t, &k) == NULL);
    CHECK(ipvs_table_find(NULL, &k) == NULL);
    ipvs_table_free(t);
    ipvs_table_free(NULL);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("conn_new_without_ipvs", test_conn_new_without_ipvs);
    check_run("service_identity_and_config", test_service_identity_and_config);
    check_run("dest_identity_and_config", test_dest_identity_and_config);
    check_run("batch_builder", test_batch_builder);
    check_run("op_str", test_op_str);
    check_run("table_helpers", test_table_helpers);
    return check_end();
}
