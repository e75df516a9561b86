/* test_ipvs_fake.c -- the in-memory ipvs_fake on the host: kernel-like answers, stored
 * defaults, injected transport failures, and use through ipvs_iface. (Its agreement with the
 * real kernel is checked in the VM by tests/vm/guest_ipvs.c fake_matches_kernel.) */
#include "check.h"
#include "heap_use.h"
#include "ipvs/ipvs.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

static struct ipvs_service svc(const char *addr, uint16_t port, const char *sched)
{
    struct ipvs_service s = { .protocol = IPPROTO_TCP, .port = port };
    ipvs_addr_parse(addr, &s.af, s.addr);
    snprintf(s.sched, sizeof(s.sched), "%s", sched);
    return s;
}

static struct ipvs_dest dst(const char *addr, uint16_t port, uint32_t weight)
{
    struct ipvs_dest d = { .port = port, .weight = weight, .fwd = IPVS_FWD_MASQ };
    ipvs_addr_parse(addr, &d.af, d.addr);
    return d;
}

static void expect(const struct ipvs_op *op, enum ipvs_outcome o, int e)
{
    CHECK_MSG(op->outcome == o && op->error == e, "%s: outcome %d error %d, want %d %d",
              ipvs_op_name(op->kind), op->outcome, op->error, o, e);
}

static void test_answers_like_the_kernel(void)
{
    ipvs_fake *f = ipvs_fake_new();
    struct ipvs_batch b = { 0 };
    struct ipvs_service s = svc("10.0.0.1", 80, ""), v6 = svc("2001:db8::1", 80, "rr");
    struct ipvs_service bad = svc("10.0.0.2", 80, "nosuch");
    struct ipvs_dest d = dst("10.1.0.1", 8080, 5), d4in6 = dst("10.1.0.2", 80, 1);
    struct ipvs_dest heavy = dst("10.1.0.3", 80, 0x80000000u);
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);      /* 0 */
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);      /* 1 EEXIST */
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &bad, NULL);    /* 2 ENOENT */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);           /* 3 */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &heavy);       /* 4 ERANGE */
    ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &v6, NULL);     /* 5 */
    ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &v6, &d4in6);      /* 6 EINVAL: mixed AF, masq */
    ipvs_batch_push(&b, IPVS_OP_DEL_DEST, &v6, &d4in6);      /* 7 ENOENT: already */
    ipvs_batch_push(&b, IPVS_OP_DEL_SERVICE, &bad, NULL);    /* 8 ESRCH: already */
    ipvs_batch_push(&b, IPVS_OP_EDIT_DEST, &bad, &d);        /* 9 ESRCH */
    d.weight = 0;
    ipvs_batch_push(&b, IPVS_OP_EDIT_DEST, &s, &d);          /* 10 */
    CHECK_INT(ipvs_fake_apply(f, b.ops, b.n, NULL), 0);
    expect(&b.ops[0], IPVS_APPLIED, 0);
    expect(&b.ops[1], IPVS_ALREADY, -EEXIST);
    expect(&b.ops[2], IPVS_FAILED, -ENOENT);
    expect(&b.ops[3], IPVS_APPLIED, 0);
    expect(&b.ops[4], IPVS_FAILED, -ERANGE);
    expect(&b.ops[5], IPVS_APPLIED, 0);
    expect(&b.ops[6], IPVS_FAILED, -EINVAL);
    expect(&b.ops[7], IPVS_ALREADY, -ENOENT);
    expect(&b.ops[8], IPVS_ALREADY, -ESRCH);
    expect(&b.ops[9], IPVS_FAILED, -ESRCH);
    expect(&b.ops[10], IPVS_APPLIED, 0);
    struct ipvs_table *t = NULL;
    CHECK_INT(ipvs_fake_dump(f, &t, NULL), 0);
    if (CHECK(t && t->n == 2)) {
        struct ipvs_entry *e = ipvs_table_find(t, &s);
        if (CHECK(e && e->n_dests == 1)) {
            CHECK_STR(e->svc.sched, "wlc");               /* "" is stored as wlc */
            CHECK_INT(e->svc.netmask, 32);
            CHECK_INT(e->dests[0].weight, 0);
            CHECK_INT(e->dests[0].af, AF_INET);
        }
        CHECK_INT(ipvs_table_find(t, &v6)->svc.netmask, 128);
    }
    ipvs_table_free(t);
    ipvs_batch_release(&b);
    ipvs_fake_free(f);
}

static void test_injected_failure_and_iface(void)
{
    ipvs_fake *f = ipvs_fake_new();
    struct ipvs_iface k = ipvs_fake_iface(f);
    struct ipvs_batch b = { 0 };
    struct ipvs_err err = { 0 };
    for (int i = 0; i < 5; i++) {
        struct ipvs_service s = svc("10.0.0.1", (uint16_t)(100 + i), "rr");
        ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);
    }
    ipvs_fake_fail_after(f, 3, -ETIMEDOUT);
    CHECK_INT(k.apply(k.self, b.ops, b.n, &err), -ETIMEDOUT);
    CHECK_INT(err.code, -ETIMEDOUT);
    CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_APPLIED), 3);
    expect(&b.ops[3], IPVS_FAILED, -ETIMEDOUT);
    expect(&b.ops[4], IPVS_FAILED, -ETIMEDOUT);
    CHECK_INT(k.apply(k.self, b.ops, b.n, &err), 0);         /* one-shot: works again */
    CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_ALREADY), 3);
    CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_APPLIED), 2);
    CHECK_INT(ipvs_fake_applies(f), 2);
    struct ipvs_table *t = NULL;
    CHECK_INT(k.dump(k.self, &t, &err), 0);
    CHECK(t && t->n == 5);
    ipvs_table_free(t);
    ipvs_batch_release(&b);
    ipvs_batch_push(&b, IPVS_OP_FLUSH, NULL, NULL);
    CHECK_INT(k.apply(k.self, b.ops, b.n, &err), 0);
    CHECK_INT(k.dump(k.self, &t, &err), 0);
    CHECK(t && t->n == 0);
    ipvs_table_free(t);
    ipvs_batch_release(&b);
    ipvs_fake_free(f);
    ipvs_fake_free(NULL);
}

/* The dry run keeps its table in the fake (issue #8, P4: 100k dests within clusterf-ipvs's
 * 80 MB): 1,000 services of 10 dests, added as the reconciler adds them. A dest used to cost
 * 150 bytes (a struct ipvs_dest with its counters, always zero here); compact: 69. */
static void test_footprint(void)
{
    if (!heap_use_available()) {
        printf("  (footprint: malloc accounting not visible under this allocator; not measured)\n");
        return;
    }
    enum { SERVICES = 1000, DESTS = 10 };
    size_t before = heap_use_now();
    ipvs_fake *f = ipvs_fake_new();
    struct ipvs_batch b = { 0 };
    char addr[32];
    for (int i = 0; i < SERVICES; i++) {
        snprintf(addr, sizeof addr, "172.16.%d.%d", i / 256, i % 256);
        struct ipvs_service s = svc(addr, 80, "wlc");
        ipvs_batch_push(&b, IPVS_OP_ADD_SERVICE, &s, NULL);
        for (int j = 0; j < DESTS; j++) {
            int n = i * DESTS + j + 1;
            snprintf(addr, sizeof addr, "10.%d.%d.%d", n / 65536, n / 256 % 256, n % 256);
            struct ipvs_dest d = dst(addr, 8080, 10);
            ipvs_batch_push(&b, IPVS_OP_ADD_DEST, &s, &d);
        }
        CHECK_INT(ipvs_fake_apply(f, b.ops, b.n, NULL), 0);
        CHECK_INT(ipvs_ops_count(b.ops, b.n, IPVS_APPLIED), DESTS + 1);
        ipvs_batch_release(&b);
    }
    size_t per_dest = (heap_use_now() - before) / (SERVICES * DESTS);
    printf("  footprint: %zu bytes per dest (its service's share included)\n", per_dest);
    CHECK_MSG(per_dest <= 80, "the fake holds %zu bytes per dest, budget 80", per_dest);
    ipvs_fake_free(f);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("answers_like_the_kernel", test_answers_like_the_kernel);
    check_run("injected_failure_and_iface", test_injected_failure_and_iface);
    check_run("footprint", test_footprint);
    return check_end();
}
