/* test_reconcile.c -- reconcile/ against the in-memory fake kernel (ipvs_fake, checked against
 * the real kernel in tests/vm/):
 * config store -> lb -> reconcile -> fake table, for the seed transcript, incremental passes,
 * ownership across restarts, damaged state files, foreign rules, drift, failures and
 * in-place edits. */
#include "check.h"
#include "config/config.h"
#include "lb/lb.h"
#include "reconcile/reconcile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* One test's world: a config store, a fake kernel and a reconciler. */
typedef struct world {
    config_store *cfg;
    ipvs_fake *kernel;
    struct ipvs_iface iface;
    bool fail_dumps;
    size_t dest_dumps; /* dest dumps the reconciler asked for */
    size_t svc_parts;  /* parts of service dumps the reconciler read */
    size_t svc_stops;  /* service dumps it dropped before their end */
    reconcile *rec;
    char state[128];
} world;

/* The fake's dump, or -EIO while w->fail_dumps is set. */
static int world_dump(void *self, struct ipvs_table **out, struct ipvs_err *err)
{
    world *w = self;
    if (w->fail_dumps) {
        snprintf(err->msg, sizeof err->msg, "injected dump failure");
        return err->code = -EIO;
    }
    return ipvs_fake_dump(w->kernel, out, err);
}

static int world_dump_services(void *self, struct ipvs_service **out, size_t *n,
                               struct ipvs_err *err)
{
    world *w = self;
    if (w->fail_dumps) {
        snprintf(err->msg, sizeof err->msg, "injected dump failure");
        return err->code = -EIO;
    }
    return ipvs_fake_dump_services(w->kernel, out, n, err);
}

static int world_dump_services_part(void *self, struct ipvs_service_list *list, size_t max,
                                    struct ipvs_err *err)
{
    world *w = self;
    if (w->fail_dumps) {
        ipvs_fake_dump_services_stop(w->kernel);
        snprintf(err->msg, sizeof err->msg, "injected dump failure");
        return err->code = -EIO;
    }
    w->svc_parts++;
    return ipvs_fake_dump_services_part(w->kernel, list, max, err);
}

static void world_dump_services_stop(void *self)
{
    world *w = self;
    w->svc_stops++;
    ipvs_fake_dump_services_stop(w->kernel);
}

static int world_dump_dests(void *self, const struct ipvs_service *svc, struct ipvs_dest **out,
                            size_t *n, struct ipvs_err *err)
{
    world *w = self;
    w->dest_dumps++;
    return ipvs_fake_dump_dests(w->kernel, svc, out, n, err);
}

static int world_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    world *w = self;
    return ipvs_fake_apply(w->kernel, ops, n, err);
}

/* Apply one op directly, as an operator with ipvsadm would. */
static void by_hand(world *w, enum ipvs_op_kind kind, const struct ipvs_service *svc,
                    const struct ipvs_dest *d)
{
    struct ipvs_op op = {.kind = kind};
    if (svc)
        op.svc = *svc;
    if (d)
        op.dest = *d;
    struct ipvs_err err = {0};
    ipvs_fake_apply(w->kernel, &op, 1, &err);
    CHECK_MSG(op.outcome == IPVS_APPLIED, "by hand %s: %d", ipvs_op_name(kind), op.error);
}

/* The kernel table now (caller frees with ipvs_table_free). */
static struct ipvs_table *kernel_table(world *w)
{
    struct ipvs_table *t = NULL;
    struct ipvs_err err = {0};
    CHECK_INT(ipvs_fake_dump(w->kernel, &t, &err), 0);
    return t;
}

static size_t n_services(world *w)
{
    struct ipvs_table *t = kernel_table(w);
    size_t n = t ? t->n : 0;
    ipvs_table_free(t);
    return n;
}

static bool has_service(world *w, const struct ipvs_service *s)
{
    struct ipvs_table *t = kernel_table(w);
    bool found = ipvs_table_find(t, s) != NULL;
    ipvs_table_free(t);
    return found;
}

static void world_open(world *w, const char *state)
{
    char err[256] = "";
    if (!w->cfg)
        w->cfg = config_store_new(NULL);
    if (!w->kernel) {
        w->kernel = ipvs_fake_new();
        w->iface = (struct ipvs_iface){.self = w, .dump = world_dump,
                                       .dump_services = world_dump_services,
                                       .dump_dests = world_dump_dests, .apply = world_apply,
                                       .dump_services_part = world_dump_services_part,
                                       .dump_services_stop = world_dump_services_stop};
    }
    int rc = reconcile_new(&w->iface, state, &w->rec, err, sizeof err);
    CHECK_MSG(rc == 0, "reconcile_new: %d %s", rc, err);
}

static void world_close(world *w)
{
    reconcile_free(w->rec);
    config_store_free(w->cfg);
    ipvs_fake_free(w->kernel);
    if (w->state[0])
        unlink(w->state);
    memset(w, 0, sizeof *w);
}

static void put(world *w, const char *key, const char *value)
{
    config_result res;
    config_result_init(&res);
    config_event ev = {CONFIG_SOURCE_ETCD, value == NULL, key, strlen(key), value,
                       value ? strlen(value) : 0, 1};
    int rc = config_store_apply(w->cfg, &ev, &res);
    CHECK_MSG(rc == 0, "apply %s: %d %s", key, rc, res.error);
    config_result_free(&res);
}

/* A full pass over the whole desired table; returns the number of changes. */
static size_t full(world *w)
{
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w->cfg, &t), 0);
    reconcile_result res = {0};
    int rc = reconcile_full(w->rec, &t, &res);
    CHECK_MSG(rc == 0, "reconcile_full: %d %s", rc, res.error);
    size_t changes = reconcile_result_changes(&res);
    reconcile_result_free(&res);
    lb_table_free(&t);
    return changes;
}

/* The kinds of the ops of the last incremental pass, space separated, and their number. */
static char last_ops[512];
static size_t last_n;

/* reconcile_result.on_op: note the op's kind in last_ops. */
static void note_op(void *ctx, const struct ipvs_op *op)
{
    (void)ctx;
    size_t len = strlen(last_ops);
    snprintf(last_ops + len, sizeof last_ops - len, "%s%s", last_n ? " " : "",
             ipvs_op_name(op->kind));
    last_n++;
    if (getenv("DEBUG_OPS")) {
        char a[80], b[80];
        printf("    op %s %s %s outcome=%d err=%d\n", ipvs_op_name(op->kind),
               ipvs_service_str(&op->svc, a, sizeof a), ipvs_dest_str(&op->svc, &op->dest, b, sizeof b),
               op->outcome, op->error);
    }
}

/* An incremental pass for the clusterf services names (n); returns the ops sent. */
static size_t incr_many(world *w, const char *const *names, size_t n)
{
    lb_table t, one;
    lb_table_init(&t);
    lb_table_init(&one);
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(lb_compute_service(w->cfg, names[i], &one), 0);
        CHECK_INT(lb_table_take(&t, &one), 0);
    }
    reconcile_result res = {.on_op = note_op};
    last_ops[0] = '\0';
    last_n = 0;
    int rc = reconcile_services(w->rec, names, n, &t, &res);
    CHECK_MSG(rc == 0, "reconcile_services: %d %s", rc, res.error);
    CHECK_INT(res.sent, last_n);
    reconcile_result_free(&res);
    lb_table_free(&t);
    return last_n;
}

/* An incremental pass for one clusterf service; returns the ops sent. */
static size_t incr(world *w, const char *name)
{
    return incr_many(w, &name, 1);
}

static struct ipvs_service tcp_svc(const char *vip, uint16_t port)
{
    struct ipvs_service s = {0};
    CHECK_INT(ipvs_addr_parse(vip, &s.af, s.addr), 0);
    s.protocol = IPPROTO_TCP;
    s.port = port;
    snprintf(s.sched, sizeof s.sched, "wlc");
    s.netmask = s.af == AF_INET ? 32 : 128;
    return s;
}

static struct ipvs_dest dest(const char *addr, uint16_t port)
{
    struct ipvs_dest d = {0};
    CHECK_INT(ipvs_addr_parse(addr, &d.af, d.addr), 0);
    d.port = port;
    return d;
}

/* The weight of a dest in the kernel, -1 when it is absent. */
static long weight_of(world *w, struct ipvs_service s, const char *addr, uint16_t port)
{
    struct ipvs_dest d = dest(addr, port);
    struct ipvs_table *t = kernel_table(w);
    const struct ipvs_entry *e = ipvs_table_find(t, &s);
    long weight = -1;
    for (size_t i = 0; e && i < e->n_dests; i++)
        if (ipvs_dest_cmp(&e->svc, &e->dests[i], &d) == 0)
            weight = e->dests[i].weight;
    ipvs_table_free(t);
    return weight;
}

static size_t dests_of(world *w, struct ipvs_service s)
{
    struct ipvs_table *t = kernel_table(w);
    const struct ipvs_entry *e = ipvs_table_find(t, &s);
    size_t n = e ? e->n_dests : 0;
    ipvs_table_free(t);
    return n;
}

/* The seed README's transcript, through incremental passes like the daemon runs them. */
static void test_seed_transcript(void)
{
    world w = {0};
    world_open(&w, NULL);
    struct ipvs_service vip = tcp_svc("10.107.107.107", 1337);
    full(&w);
    CHECK_INT(n_services(&w), 0);
    put(&w, "services/test/frontend", "{\"ipv4\": \"10.107.107.107\", \"tcp\": 1337}");
    incr(&w, "test");
    CHECK(has_service(&w, &vip));
    CHECK_INT(dests_of(&w, vip), 0);
    put(&w, "services/test/backends/test3-1", "{\"ipv4\": \"10.3.107.1\", \"tcp\": 1337}");
    incr(&w, "test");
    CHECK_INT(weight_of(&w, vip, "10.3.107.1", 1337), 10);
    put(&w, "services/test/backends/test3-2", "{\"ipv4\": \"10.3.107.2\", \"tcp\": 1337}");
    incr(&w, "test");
    CHECK_INT(dests_of(&w, vip), 2);
    put(&w, "services/test/backends/test3-2", "{\"ipv4\": \"10.3.107.2\", \"tcp\": 1338}");
    incr(&w, "test");
    CHECK_INT(weight_of(&w, vip, "10.3.107.2", 1337), -1);
    CHECK_INT(weight_of(&w, vip, "10.3.107.2", 1338), 10);
    CHECK_INT(dests_of(&w, vip), 2);
    put(&w, "services/test/frontend", NULL);
    put(&w, "services/test/backends/test3-1", NULL);
    put(&w, "services/test/backends/test3-2", NULL);
    incr(&w, "test");
    CHECK_INT(n_services(&w), 0);
    CHECK_INT(reconcile_owned_count(w.rec), 0);
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

/* Masq dests carry the method; a full pass after incremental ones finds nothing to do. */
static void test_full_after_incremental_is_noop(void)
{
    world w = {0};
    world_open(&w, NULL);
    full(&w);
    char key[64], val[128];
    for (int s = 0; s < 20; s++) {
        snprintf(key, sizeof key, "services/s%d/frontend", s);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.0.0.%d\",\"ipv6\":\"2001:db8::%d\",\"tcp\":80,\"udp\":53}", s + 1, s + 1);
        put(&w, key, val);
        for (int b = 0; b < 5; b++) {
            snprintf(key, sizeof key, "services/s%d/backends/b%d", s, b);
            snprintf(val, sizeof val, "{\"ipv4\":\"10.1.%d.%d\",\"ipv6\":\"2001:db8:1::%d:%d\",\"tcp\":8080,\"udp\":5353,\"weight\":%d}", s, b + 1, s, b + 1, b);
            put(&w, key, val);
        }
        snprintf(key, sizeof key, "s%d", s);
        incr(&w, key);
    }
    CHECK_INT(n_services(&w), 80);
    CHECK_INT(reconcile_owned_count(w.rec), 80);
    CHECK_INT(full(&w), 0);
    /* One backend event: ops only for that service's (4) IPVS services. */
    put(&w, "services/s7/backends/b2", "{\"ipv4\":\"10.1.7.3\",\"tcp\":8080,\"weight\":3}");
    size_t n = incr(&w, "s7");
    CHECK_MSG(n >= 1 && n <= 4, "one backend change sent %zu ops", n);
    CHECK_INT(weight_of(&w, tcp_svc("10.0.0.8", 80), "10.1.7.3", 8080), 3);
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

/* Weight changes, including 0 (drain), are edits in place (the kernel keeps the dest and
 * its connections; tests/vm/ checks that with a real connection). */
static void test_weight_edit_in_place(void)
{
    world w = {0};
    world_open(&w, NULL);
    full(&w);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
    incr(&w, "web");
    struct ipvs_service s = tcp_svc("10.9.0.1", 80);
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80,\"weight\":0}");
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest");
    CHECK_INT(weight_of(&w, s, "10.9.1.1", 80), 0);
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80,\"weight\":25}");
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest");
    CHECK_INT(weight_of(&w, s, "10.9.1.1", 80), 25);
    /* A route turning the backend to droute changes the method in place too. */
    put(&w, "routes/r", "{\"Prefix4\":\"10.9.1.0/24\",\"IpvsMethod\":\"droute\"}");
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest");
    world_close(&w);
}

/* A service made by hand is never touched; one the config names is adopted. */
static void test_foreign_rules(void)
{
    world w = {0};
    world_open(&w, NULL);
    struct ipvs_service foreign = tcp_svc("192.0.2.1", 22);
    struct ipvs_dest fd = dest("192.0.2.9", 22);
    fd.weight = 1;
    by_hand(&w, IPVS_OP_ADD_SERVICE, &foreign, NULL);
    by_hand(&w, IPVS_OP_ADD_DEST, &foreign, &fd);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    full(&w);
    CHECK(has_service(&w, &foreign));
    CHECK_INT(weight_of(&w, foreign, "192.0.2.9", 22), 1);
    put(&w, "services/web/frontend", NULL);
    full(&w);
    CHECK(has_service(&w, &foreign));
    CHECK_INT(n_services(&w), 1);
    /* The config names the hand-made service: clusterf takes it over. */
    put(&w, "services/ssh/frontend", "{\"ipv4\":\"192.0.2.1\",\"tcp\":22}");
    put(&w, "services/ssh/backends/x", "{\"ipv4\":\"192.0.2.10\",\"tcp\":22}");
    full(&w);
    CHECK_INT(weight_of(&w, foreign, "192.0.2.9", 22), -1);
    CHECK_INT(weight_of(&w, foreign, "192.0.2.10", 22), 10);
    world_close(&w);
}

/* What clusterf created is deleted after a restart even if its config went away meanwhile,
 * thanks to the state file; without it the same service would count as foreign. */
static void test_ownership_survives_restart(void)
{
    world w = {0};
    snprintf(w.state, sizeof w.state, "/tmp/clusterf-test-state-%d/sub/owned", (int)getpid());
    world_open(&w, w.state);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/dns/frontend", "{\"ipv6\":\"2001:db8::53\",\"udp\":53,\"tcp\":53}");
    full(&w);
    CHECK_INT(n_services(&w), 3);
    CHECK(access(w.state, R_OK) == 0);
    reconcile_free(w.rec);
    w.rec = NULL;
    put(&w, "services/web/frontend", NULL);
    put(&w, "services/dns/frontend", NULL);
    world_open(&w, w.state);
    CHECK_INT(reconcile_owned_count(w.rec), 3);
    full(&w);
    CHECK_INT(n_services(&w), 0);
    CHECK_INT(reconcile_owned_count(w.rec), 0);
    /* Without a state file a restart forgets: the leftover stays (counted as foreign). */
    reconcile_free(w.rec);
    w.rec = NULL;
    world_open(&w, NULL);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    full(&w);
    reconcile_free(w.rec);
    w.rec = NULL;
    world_open(&w, NULL);
    put(&w, "services/web/frontend", NULL);
    full(&w);
    CHECK_INT(n_services(&w), 1);
    world_close(&w);
}

/* ---- damaged state files ---- */

/* A fresh directory for a state file: its path ("<dir>/ipvs-owned") into w->state, the
 * directory into dir. False (test skipped) when it cannot be made. */
static bool state_dir(world *w, char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/clusterf-state-XXXXXX");
    if (!mkdtemp(dir)) {
        check_skip("mkdtemp: %s", strerror(errno));
        return false;
    }
    snprintf(w->state, sizeof w->state, "%s/ipvs-owned", dir);
    return true;
}

/* Remove dir and everything in it. */
static void remove_dir(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

/* The bytes of the file at path equal want[0..len). */
static bool file_holds(const char *path, const void *want, size_t len)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    return f && n == len && memcmp(buf, want, len) == 0;
}

/* The state file holds bytes (a directory when bytes is NULL): reconcile_new sets it aside to
 * "<path>.corrupt", says so, starts owning nothing, and the first pass owns what the config
 * names (adopting a service already in the kernel) but not a hand-made one; the file it then
 * writes is read back by a restart. */
static void check_set_aside(const char *what, const void *bytes, size_t len)
{
    world w = {0};
    char dir[64], aside[160], err[512] = "";
    if (!state_dir(&w, dir, sizeof dir))
        return;
    if (bytes) {
        FILE *f = fopen(w.state, "w");
        CHECK(f && fwrite(bytes, 1, len, f) == len && fclose(f) == 0);
    } else {
        CHECK_INT(mkdir(w.state, 0755), 0);
    }
    w.cfg = config_store_new(NULL);
    w.kernel = ipvs_fake_new();
    w.iface = (struct ipvs_iface){.self = &w, .dump = world_dump,
                                  .dump_services = world_dump_services,
                                  .dump_dests = world_dump_dests, .apply = world_apply};
    struct ipvs_service web = tcp_svc("10.9.0.1", 80), hand = tcp_svc("192.0.2.1", 22);
    by_hand(&w, IPVS_OP_ADD_SERVICE, &web, NULL);
    by_hand(&w, IPVS_OP_ADD_SERVICE, &hand, NULL);
    int rc = reconcile_new(&w.iface, w.state, &w.rec, err, sizeof err);
    CHECK_MSG(rc == RECONCILE_STATE_SET_ASIDE && w.rec, "%s: reconcile_new: %d %s", what, rc,
              err);
    snprintf(aside, sizeof aside, "%s.corrupt", w.state);
    CHECK_MSG(strstr(err, w.state) && strstr(err, aside), "%s: message: %s", what, err);
    CHECK_MSG(access(w.state, F_OK) < 0 && errno == ENOENT, "%s: still in place", what);
    CHECK_MSG(bytes ? file_holds(aside, bytes, len) : access(aside, F_OK) == 0,
              "%s: %s does not hold the damaged file", what, aside);
    if (w.rec) {
        CHECK_INT(reconcile_owned_count(w.rec), 0);
        put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
        put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
        full(&w);
        CHECK_MSG(reconcile_owns(w.rec, &web) && !reconcile_owns(w.rec, &hand), "%s", what);
        CHECK_INT(dests_of(&w, web), 1);
        CHECK_INT(n_services(&w), 2);
        reconcile_free(w.rec);
        w.rec = NULL;
        world_open(&w, w.state);
        CHECK_INT(reconcile_owned_count(w.rec), 1);
    }
    world_close(&w);
    remove_dir(dir);
}

static void test_damaged_state_files(void)
{
    unsigned char noise[600];
    uint32_t x = 2463534242u; /* xorshift32: the same bytes every run, NULs included */
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise[i] = (unsigned char)x;
    }
    check_set_aside("random bytes", noise, sizeof noise);
#define HDR "# clusterf-ipvs owned IPVS services v1\n"
    const char *texts[][2] = {
        {"empty", ""},
        {"cut in the header", "# clusterf-ipvs own"},
        {"cut in a line", HDR "inet tcp 10.9.0.1 80 0\ninet fwmark - 0 1"},
        {"garbage line", HDR "inet tcp 10.9.0.1 80 0\nhello world\n"},
        {"bad address", HDR "inet tcp 10.9.0.300 80 0\n"},
        {"junk after the fields", HDR "inet tcp 10.9.0.1 80 0 extra\n"},
        {"no header", "inet tcp 10.9.0.1 80 0\n"},
        {"another format", "# clusterf-ipvs owned IPVS services v2\ninet tcp 10.9.0.1 80 0\n"},
    };
#undef HDR
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        check_set_aside(texts[i][0], texts[i][1], strlen(texts[i][1]));
    check_set_aside("a directory in its place", NULL, 0);
}

/* A good file with services of every kind loads as it is, and nothing is moved. */
static void test_good_state_file(void)
{
    world w = {0};
    char dir[64];
    if (!state_dir(&w, dir, sizeof dir))
        return;
    FILE *f = fopen(w.state, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("# clusterf-ipvs owned IPVS services v1\ninet tcp 10.9.0.1 80 0\n"
              "inet6 udp 2001:db8::53 53 0\ninet fwmark - 0 12\n", f);
        fclose(f);
    }
    world_open(&w, w.state);
    CHECK_INT(reconcile_owned_count(w.rec), 3);
    struct ipvs_service web = tcp_svc("10.9.0.1", 80);
    CHECK(reconcile_owns(w.rec, &web));
    char aside[160];
    snprintf(aside, sizeof aside, "%s.corrupt", w.state);
    CHECK(access(aside, F_OK) < 0);
    world_close(&w);
    remove_dir(dir);
}

/* Saving: the temp file has a unique name in the same directory (a leftover "<path>.tmp" is
 * no obstacle) and nothing but the state file is left behind. */
static void test_state_save_temp_files(void)
{
    world w = {0};
    char dir[64], tmp[160];
    if (!state_dir(&w, dir, sizeof dir))
        return;
    snprintf(tmp, sizeof tmp, "%s.tmp", w.state);
    CHECK_INT(mkdir(tmp, 0755), 0);
    world_open(&w, w.state);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    full(&w);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.2\",\"tcp\":80}");
    full(&w);
    reconcile_free(w.rec);
    w.rec = NULL;
    world_open(&w, w.state);
    CHECK_INT(reconcile_owned_count(w.rec), 1);
    char cmd[200];
    snprintf(cmd, sizeof cmd,
             "test \"$(ls -A '%s' | tr '\\n' ' ')\" = 'ipvs-owned ipvs-owned.tmp '", dir);
    CHECK_MSG(system(cmd) == 0, "files left in %s", dir);
    world_close(&w);
    remove_dir(dir);
}

/* A path of len bytes under /tmp ("/tmp/aaa.../aaa", 100-byte components) into path. */
static void long_path(char *path, size_t len)
{
    memcpy(path, "/tmp", 4);
    for (size_t i = 4; i < len; i += 100) {
        memset(path + i, 'a', len - i < 100 ? len - i : 100);
        path[i] = '/';
    }
    path[len] = '\0';
}

/* A state path with no room for the temp or ".corrupt" name is refused, never cut short;
 * one byte shorter is accepted (PATH_MAX 4096: at most 4087 bytes). */
static void test_state_path_too_long(void)
{
    char path[4100], err[512] = "";
    ipvs_fake *k = ipvs_fake_new();
    struct ipvs_iface iface = ipvs_fake_iface(k);
    reconcile *r = NULL;
    long_path(path, 4087);
    CHECK_INT(reconcile_new(&iface, path, &r, err, sizeof err), 0);
    reconcile_free(r);
    r = NULL;
    long_path(path, 4088);
    int rc = reconcile_new(&iface, path, &r, err, sizeof err);
    CHECK_INT(rc, -ENAMETOOLONG);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err, "too long") != NULL, "message: %s", err);
    reconcile_free(r);
    ipvs_fake_free(k);
}

/* Rules deleted by hand (one service, then the whole table) come back in one full pass. */
static void test_drift_repaired(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
    put(&w, "services/api/frontend", "{\"ipv4\":\"10.9.0.2\",\"tcp\":443}");
    put(&w, "services/api/backends/a", "{\"ipv4\":\"10.9.1.2\",\"tcp\":443}");
    full(&w);
    struct ipvs_service web = tcp_svc("10.9.0.1", 80);
    by_hand(&w, IPVS_OP_DEL_SERVICE, &web, NULL);
    CHECK_INT(full(&w), 2);
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 10);
    by_hand(&w, IPVS_OP_FLUSH, NULL, NULL);
    CHECK_INT(full(&w), 4);
    CHECK_INT(n_services(&w), 2);
    /* A stale mirror found by an incremental pass asks for a full one. */
    struct ipvs_dest d = dest("10.9.1.1", 80);
    by_hand(&w, IPVS_OP_DEL_DEST, &web, &d);
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80,\"weight\":5}");
    incr(&w, "web");
    CHECK(reconcile_needs_full(w.rec));
    full(&w);
    CHECK(!reconcile_needs_full(w.rec));
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 5);
    world_close(&w);
}

/* A refused op fails alone; the rest of the pass applies; a later pass retries. */
static void test_refused_op_is_isolated(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/bad/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80,\"scheduler\":\"nosuch\"}");
    put(&w, "services/bad/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
    put(&w, "services/good/frontend", "{\"ipv4\":\"10.9.0.2\",\"tcp\":80}");
    put(&w, "services/good/backends/a", "{\"ipv4\":\"10.9.1.2\",\"tcp\":80}");
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    reconcile_result res = {0};
    CHECK_INT(reconcile_full(w.rec, &t, &res), 0);
    CHECK_INT(res.failed, 2); /* the service, and its dest (no such service) */
    CHECK_INT(res.svc_added, 1);
    CHECK_INT(res.dest_added, 1);
    reconcile_result_free(&res);
    lb_table_free(&t);
    CHECK_INT(n_services(&w), 1);
    put(&w, "services/bad/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80,\"scheduler\":\"rr\"}");
    CHECK_INT(full(&w), 2);
    CHECK_INT(n_services(&w), 2);
    world_close(&w);
}

/* The owners reconcile_service_owner named for the failed ops, as the callback saw them. */
static char failed_owners[256];

/* reconcile_result.on_op: append the owner of a failed op ("-" when none) to failed_owners. */
static void note_failed_owner(void *ctx, const struct ipvs_op *op)
{
    if (op->outcome != IPVS_FAILED)
        return;
    const char *owner = reconcile_service_owner(ctx, &op->svc);
    size_t len = strlen(failed_owners);
    snprintf(failed_owners + len, sizeof failed_owners - len, "%s%s", len ? " " : "",
             owner ? owner : "-");
}

/* A refused op's clusterf service is known to the op's callback, in the very pass that first
 * desired it: full (sliced or not) and incremental; a service no one desires has none. */
static void test_owner_of_refused_op(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/bad/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80,\"scheduler\":\"nosuch\"}");
    put(&w, "services/good/frontend", "{\"ipv4\":\"10.9.0.2\",\"tcp\":80}");
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    reconcile_result res = {.on_op = note_failed_owner, .ctx = w.rec};
    failed_owners[0] = '\0';
    CHECK_INT(reconcile_full(w.rec, &t, &res), 0);
    CHECK_STR(failed_owners, "bad");
    struct ipvs_service good = tcp_svc("10.9.0.2", 80), none = tcp_svc("10.9.0.9", 80);
    const char *owner = reconcile_service_owner(w.rec, &good);
    CHECK_STR(owner ? owner : "-", "good");
    CHECK(reconcile_service_owner(w.rec, &none) == NULL);
    put(&w, "services/bad2/frontend", "{\"ipv4\":\"10.9.0.3\",\"tcp\":81,\"scheduler\":\"nosuch\"}");
    lb_table_free(&t);
    lb_table_init(&t);
    CHECK_INT(lb_compute_service(w.cfg, "bad2", &t), 0);
    failed_owners[0] = '\0';
    CHECK_INT(reconcile_service(w.rec, "bad2", &t, &res), 0);
    CHECK_STR(failed_owners, "bad2");
    reconcile_result_free(&res);
    lb_table_free(&t);
    world_close(&w);
}

/* A failed dump changes nothing and reports the error. */
static void test_dump_failure(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    w.fail_dumps = true;
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    reconcile_result res = {0};
    CHECK_INT(reconcile_full(w.rec, &t, &res), -EIO);
    CHECK_MSG(strstr(res.error, "dump") != NULL, "error: %s", res.error);
    CHECK_INT(res.sent, 0);
    reconcile_result_free(&res);
    lb_table_free(&t);
    CHECK_INT(n_services(&w), 0);
    w.fail_dumps = false;
    CHECK_INT(full(&w), 1);
    world_close(&w);
}

/* --flush removes foreign rules too, once. */
static void test_flush(void)
{
    world w = {0};
    world_open(&w, NULL);
    struct ipvs_service foreign = tcp_svc("192.0.2.1", 22);
    by_hand(&w, IPVS_OP_ADD_SERVICE, &foreign, NULL);
    reconcile_result res = {0};
    CHECK_INT(reconcile_flush(w.rec, &res), 0);
    reconcile_result_free(&res);
    CHECK_INT(n_services(&w), 0);
    world_close(&w);
}

/* A frontend's VIP change deletes the old service and adds the new one. */
static void test_vip_change(void)
{
    world w = {0};
    world_open(&w, NULL);
    full(&w);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":8080}");
    incr(&w, "web");
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.99\",\"tcp\":80}");
    incr(&w, "web");
    struct ipvs_service old = tcp_svc("10.9.0.1", 80), neu = tcp_svc("10.9.0.99", 80);
    CHECK(!has_service(&w, &old));
    CHECK_INT(weight_of(&w, neu, "10.9.1.1", 8080), 10);
    CHECK_INT(reconcile_owned_count(w.rec), 1);
    world_close(&w);
}


/* Two services claim one VIP (a wins, sorting first); a moves away and b takes the VIP over.
 * Whatever order the touched services are reconciled in, alone or together, the VIP is
 * handed over in place: never deleted (that would cut b's connections). */
static void conflict_handover(const char *const *order, size_t n_order, bool together)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.1\",\"tcp\":80}");
    put(&w, "services/a/backends/x", "{\"ipv4\":\"10.7.1.1\",\"tcp\":80}");
    put(&w, "services/b/frontend", "{\"ipv4\":\"10.7.0.1\",\"tcp\":80}");
    put(&w, "services/b/backends/y", "{\"ipv4\":\"10.7.2.2\",\"tcp\":80}");
    full(&w);
    struct ipvs_service vip1 = tcp_svc("10.7.0.1", 80), vip2 = tcp_svc("10.7.0.2", 80);
    CHECK_INT(weight_of(&w, vip1, "10.7.1.1", 80), 10);
    CHECK_INT(weight_of(&w, vip1, "10.7.2.2", 80), -1);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.2\",\"tcp\":80}");
    char ops[1024] = "";
    if (together) {
        incr_many(&w, order, n_order);
        snprintf(ops, sizeof ops, "%s", last_ops);
    } else {
        for (size_t i = 0; i < n_order; i++) {
            incr(&w, order[i]);
            snprintf(ops + strlen(ops), sizeof ops - strlen(ops), "%s; ", last_ops);
        }
    }
    CHECK_MSG(strstr(ops, "del-service") == NULL, "ops: %s", ops);
    CHECK_INT(weight_of(&w, vip1, "10.7.2.2", 80), 10);
    CHECK_INT(weight_of(&w, vip1, "10.7.1.1", 80), -1);
    CHECK_INT(weight_of(&w, vip2, "10.7.1.1", 80), 10);
    CHECK_INT(n_services(&w), 2);
    CHECK(!reconcile_needs_full(w.rec));
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

static void test_conflict_handover(void)
{
    const char *ab[] = {"a", "b"}, *ba[] = {"b", "a"};
    conflict_handover(ab, 2, true);
    conflict_handover(ba, 2, true);
    conflict_handover(ab, 2, false);
    conflict_handover(ba, 2, false);
}

/* A full pass in slices gives the same table as one in a go, dumps the dests of each service
 * it diffs once, and refuses incremental passes while it runs. */
static void test_sliced_full_pass(void)
{
    world w = {0};
    world_open(&w, NULL);
    char key[64], val[96];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "services/s%d/frontend", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.8.%d.%d\",\"tcp\":80}", i / 200, i % 200 + 1);
        put(&w, key, val);
        for (int j = 0; j < 3; j++) {
            snprintf(key, sizeof key, "services/s%d/backends/b%d", i, j);
            snprintf(val, sizeof val, "{\"ipv4\":\"10.9.%d.%d\",\"tcp\":%d}", i / 200,
                     i % 200 + 1, 8000 + j);
            put(&w, key, val);
        }
    }
    CHECK_INT(full(&w), 300 + 900);
    /* Drift on every 10th service, then a sliced pass repairs it. */
    for (int i = 0; i < 300; i += 10) {
        char vip[32], be[32];
        snprintf(vip, sizeof vip, "10.8.%d.%d", i / 200, i % 200 + 1);
        snprintf(be, sizeof be, "10.9.%d.%d", i / 200, i % 200 + 1);
        struct ipvs_service s = tcp_svc(vip, 80);
        struct ipvs_dest d = dest(be, 8001);
        by_hand(&w, IPVS_OP_DEL_DEST, &s, &d);
    }
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    reconcile_result res = {0};
    w.dest_dumps = 0;
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    CHECK(reconcile_full_running(w.rec));
    CHECK_INT(reconcile_full_begin(w.rec, &res), -EBUSY);
    const char *name = "s1";
    reconcile_result ires = {0};
    CHECK_INT(reconcile_services(w.rec, &name, 1, &t, &ires), -EBUSY);
    for (size_t i = 0; i < t.n_services; i += 7) {
        lb_table part = {.services = t.services + i,
                         .n_services = t.n_services - i < 7 ? t.n_services - i : 7};
        CHECK_INT(reconcile_full_add(w.rec, &part, &res), 0);
    }
    CHECK_INT(reconcile_full_end(w.rec, &res), 0);
    CHECK(!reconcile_full_running(w.rec));
    CHECK_INT(res.dest_added, 30);
    CHECK_INT(reconcile_result_changes(&res), 30);
    CHECK_INT(w.dest_dumps, 300);
    reconcile_result_free(&res);
    lb_table_free(&t);
    /* An incremental pass now dumps nothing: the mirror knows every dest it diffs. */
    put(&w, "services/s5/backends/b0", "{\"ipv4\":\"10.9.0.6\",\"tcp\":8000,\"weight\":3}");
    w.dest_dumps = 0;
    CHECK_INT(incr(&w, "s5"), 1);
    CHECK_STR(last_ops, "edit-dest");
    CHECK_INT(w.dest_dumps, 0);
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

/* n services s0.. with one backend each, applied by a full pass. */
static void many_services(world *w, int n)
{
    char key[64], val[96];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "services/s%d/frontend", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.8.%d.%d\",\"tcp\":80}", i / 200, i % 200 + 1);
        put(w, key, val);
        snprintf(key, sizeof key, "services/s%d/backends/b", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.9.%d.%d\",\"tcp\":80}", i / 200, i % 200 + 1);
        put(w, key, val);
    }
    CHECK_INT(full(w), (size_t)n * 2);
}

/* The service dump that begins a full pass is read in parts (reconcile_full_load), and what
 * happens between the parts (a service deleted by hand, a config change, an incremental pass
 * refused meanwhile) comes out right at the end of the pass. */
static void test_dump_in_parts(void)
{
    world w = {0};
    world_open(&w, NULL);
    many_services(&w, 700);
    reconcile_result res = {0};
    w.svc_parts = 0;
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    CHECK(reconcile_full_loading(w.rec));
    CHECK_INT(w.svc_parts, 1);
    /* Between the parts: a service of a later part vanishes, and s3 gets a new backend. */
    struct ipvs_service gone = tcp_svc("10.8.3.1", 80); /* s600 */
    by_hand(&w, IPVS_OP_DEL_SERVICE, &gone, NULL);
    put(&w, "services/s3/backends/c", "{\"ipv4\":\"10.9.9.9\",\"tcp\":80}");
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    const char *name = "s3";
    reconcile_result ires = {0};
    CHECK_INT(reconcile_services(w.rec, &name, 1, &t, &ires), -EBUSY);
    int rc;
    while ((rc = reconcile_full_load(w.rec, &res)) == 1)
        ;
    CHECK_INT(rc, 0);
    CHECK(!reconcile_full_loading(w.rec));
    CHECK_INT(w.svc_parts, 11); /* 10 x 64 + 59 */
    CHECK_INT(reconcile_full_load(w.rec, &res), 0);
    CHECK_INT(reconcile_full_add(w.rec, &t, &res), 0);
    CHECK_INT(reconcile_full_end(w.rec, &res), 0);
    CHECK_INT(res.svc_added, 1);
    CHECK_INT(res.dest_added, 2);
    CHECK(has_service(&w, &gone));
    CHECK_INT(dests_of(&w, tcp_svc("10.8.0.4", 80)), 2);
    CHECK_INT(n_services(&w), 700);
    CHECK_INT(w.svc_stops, 0);
    reconcile_result_free(&res);
    lb_table_free(&t);
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

/* A full pass aborted, or whose dump breaks, between two parts of its service dump drops that
 * dump (the kernel side is told), changes nothing, and the next full pass runs whole. */
static void test_dump_in_parts_broken(void)
{
    world w = {0};
    world_open(&w, NULL);
    many_services(&w, 600);
    reconcile_result res = {0};
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    CHECK(reconcile_full_loading(w.rec));
    reconcile_full_abort(w.rec);
    CHECK(!reconcile_full_running(w.rec) && !reconcile_full_loading(w.rec));
    CHECK_INT(w.svc_stops, 1);
    CHECK(reconcile_needs_full(w.rec));
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    w.fail_dumps = true;
    CHECK_INT(reconcile_full_load(w.rec, &res), -EIO);
    CHECK(!reconcile_full_running(w.rec));
    CHECK_MSG(strstr(res.error, "injected") != NULL, "error: %s", res.error);
    w.fail_dumps = false;
    CHECK_INT(n_services(&w), 600);
    reconcile_result_free(&res);
    CHECK_INT(full(&w), 0);
    CHECK(!reconcile_needs_full(w.rec));
    world_close(&w);
}

/* A full pass deletes, at its end, the owned services no part held; one that is aborted
 * deletes nothing and asks for a new full pass. */
static void test_full_pass_end_and_abort(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.1\",\"tcp\":80}");
    put(&w, "services/b/frontend", "{\"ipv4\":\"10.7.0.2\",\"tcp\":80}");
    full(&w);
    CHECK_INT(n_services(&w), 2);
    lb_table t;
    lb_table_init(&t);
    CHECK_INT(lb_compute_all(w.cfg, &t), 0);
    lb_table only_a = {.services = t.services, .n_services = 1};
    reconcile_result res = {0};
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    CHECK_INT(reconcile_full_add(w.rec, &only_a, &res), 0);
    reconcile_full_abort(w.rec);
    CHECK(!reconcile_full_running(w.rec));
    CHECK(reconcile_needs_full(w.rec));
    CHECK_INT(n_services(&w), 2);
    CHECK_INT(reconcile_full_begin(w.rec, &res), 0);
    CHECK_INT(reconcile_full_add(w.rec, &only_a, &res), 0);
    CHECK_INT(reconcile_full_end(w.rec, &res), 0);
    CHECK_INT(res.svc_deleted, 1);
    CHECK_INT(n_services(&w), 1);
    struct ipvs_service a = tcp_svc("10.7.0.1", 80);
    CHECK(has_service(&w, &a));
    reconcile_result_free(&res);
    lb_table_free(&t);
    world_close(&w);
}

/* Full passes reuse the names and claims of the one before: a service whose frontend moved
 * between two full passes (no incremental pass in between) has its old VIP deleted at the
 * end of the second, and an incremental pass after it sees only the new VIP as its own. */
static void test_full_pass_restamps_claims(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.1\",\"tcp\":80}");
    put(&w, "services/a/backends/x", "{\"ipv4\":\"10.7.1.1\",\"tcp\":80}");
    put(&w, "services/b/frontend", "{\"ipv4\":\"10.7.0.2\",\"tcp\":80}");
    CHECK_INT(full(&w), 3);
    CHECK_INT(full(&w), 0);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.9\",\"tcp\":80}");
    CHECK_INT(full(&w), 3); /* del 10.7.0.1; add 10.7.0.9 and its dest */
    struct ipvs_service v1 = tcp_svc("10.7.0.1", 80), v9 = tcp_svc("10.7.0.9", 80);
    struct ipvs_service v2 = tcp_svc("10.7.0.2", 80);
    CHECK(!has_service(&w, &v1));
    CHECK_INT(weight_of(&w, v9, "10.7.1.1", 80), 10);
    CHECK(has_service(&w, &v2));
    CHECK_INT(reconcile_owned_count(w.rec), 2);
    put(&w, "services/a/frontend", "{\"ipv4\":\"10.7.0.1\",\"tcp\":80}");
    incr(&w, "a");
    CHECK_STR(last_ops, "delete-service add-service add-dest");
    CHECK(!has_service(&w, &v9));
    CHECK_INT(n_services(&w), 2);
    CHECK_INT(full(&w), 0);
    world_close(&w);
}

/* A periodic resync as clusterf-ipvs runs it: each of names (n) is kept when
 * reconcile_full_keep allows it, else computed and diffed. Returns the changes; *kept says
 * how many names were kept. */
static size_t resync(world *w, const char *const *names, size_t n, size_t *kept)
{
    reconcile_result res = {0};
    *kept = 0;
    CHECK_INT(reconcile_full_begin(w->rec, &res), 0);
    for (size_t i = 0; i < n; i++) {
        int rc = reconcile_full_keep(w->rec, names[i], &res);
        CHECK_MSG(rc >= 0, "keep %s: %d %s", names[i], rc, res.error);
        *kept += rc == 1;
        if (rc == 1)
            continue;
        lb_table one;
        lb_table_init(&one);
        CHECK_INT(lb_compute_service(w->cfg, names[i], &one), 0);
        CHECK_INT(reconcile_full_add(w->rec, &one, &res), 0);
        lb_table_free(&one);
    }
    CHECK_INT(reconcile_full_end(w->rec, &res), 0);
    size_t changes = reconcile_result_changes(&res);
    reconcile_result_free(&res);
    return changes;
}

/* A resync keeps the clusterf services whose IPVS services the kernel still holds as their
 * last pass left them (nothing computed or sent, nothing deleted at its end), and repairs
 * every kind of drift of the others: a dest deleted, added or reweighted by hand, a service
 * edited or deleted by hand. A service whose last pass had a failed op is never kept. */
static void test_resync_keeps_untouched(void)
{
    world w = {0};
    world_open(&w, NULL);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
    put(&w, "services/web/backends/b", "{\"ipv4\":\"10.9.1.2\",\"tcp\":80}");
    put(&w, "services/api/frontend", "{\"ipv4\":\"10.9.0.2\",\"tcp\":443}");
    put(&w, "services/api/backends/a", "{\"ipv4\":\"10.9.1.3\",\"tcp\":443}");
    put(&w, "services/bad/frontend", "{\"ipv4\":\"10.9.0.3\",\"tcp\":80,\"scheduler\":\"nosuch\"}");
    put(&w, "services/bad/backends/a", "{\"ipv4\":\"10.9.1.4\",\"tcp\":80}");
    const char *names[] = {"web", "api", "bad"};
    size_t kept = 0;
    full(&w);
    CHECK_INT(n_services(&w), 2);
    CHECK_INT(resync(&w, names, 3, &kept), 0);
    CHECK_INT(kept, 2); /* not bad: its service was refused */
    CHECK_INT(n_services(&w), 2);
    CHECK_INT(reconcile_owned_count(w.rec), 2);
    struct ipvs_service web = tcp_svc("10.9.0.1", 80), api = tcp_svc("10.9.0.2", 443);
    struct ipvs_dest a = dest("10.9.1.1", 80), x = dest("10.9.9.9", 80);
    by_hand(&w, IPVS_OP_DEL_DEST, &web, &a);
    CHECK_INT(resync(&w, names, 3, &kept), 1);
    CHECK_INT(kept, 1);
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 10);
    by_hand(&w, IPVS_OP_ADD_DEST, &web, &x);
    CHECK_INT(resync(&w, names, 3, &kept), 1);
    CHECK_INT(kept, 1);
    CHECK_INT(dests_of(&w, web), 2);
    a.weight = 3;
    by_hand(&w, IPVS_OP_EDIT_DEST, &web, &a);
    CHECK_INT(resync(&w, names, 3, &kept), 1);
    CHECK_INT(kept, 1);
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 10);
    struct ipvs_service edited = api;
    snprintf(edited.sched, sizeof edited.sched, "rr");
    by_hand(&w, IPVS_OP_EDIT_SERVICE, &edited, NULL);
    CHECK_INT(resync(&w, names, 3, &kept), 1);
    CHECK_INT(kept, 1);
    by_hand(&w, IPVS_OP_DEL_SERVICE, &api, NULL);
    CHECK_INT(resync(&w, names, 3, &kept), 2);
    CHECK_INT(kept, 1);
    CHECK_INT(weight_of(&w, api, "10.9.1.3", 443), 10);
    CHECK_INT(resync(&w, names, 3, &kept), 0);
    CHECK_INT(kept, 2);
    CHECK_INT(full(&w), 0);
    CHECK_INT(n_services(&w), 2);
    world_close(&w);
}

/* An incremental pass before any full pass (clusterf-ipvs before its first etcd read) works
 * from what the kernel holds: a dest left with another weight is edited, not re-added. */
static void test_incremental_before_full(void)
{
    world w = {0};
    world_open(&w, NULL);
    struct ipvs_service web = tcp_svc("10.9.0.1", 80);
    struct ipvs_dest old = dest("10.9.1.1", 80);
    old.weight = 5;
    old.fwd = IP_VS_CONN_F_MASQ;
    by_hand(&w, IPVS_OP_ADD_SERVICE, &web, NULL);
    by_hand(&w, IPVS_OP_ADD_DEST, &web, &old);
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80}");
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest");
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 10);
    CHECK(reconcile_owns(w.rec, &web));
    world_close(&w);
}

/* Lines of file path, or -1. */
static long file_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* A save writes what changed: a service added or deleted appends one line to a large state
 * file; a restart reads the set back; appended lines are folded in once they outnumber it. */
static void test_state_file_appends(void)
{
    world w = {0};
    snprintf(w.state, sizeof w.state, "/tmp/clusterf-test-journal-%d", (int)getpid());
    unlink(w.state);
    world_open(&w, w.state);
    char key[64], val[96];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "services/s%d/frontend", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.8.%d.%d\",\"tcp\":80}", i / 200, i % 200 + 1);
        put(&w, key, val);
    }
    full(&w);
    CHECK_INT(file_lines(w.state), 1 + 200);
    put(&w, "services/new/frontend", "{\"ipv4\":\"10.9.9.9\",\"tcp\":80}");
    incr(&w, "new");
    CHECK_INT(file_lines(w.state), 1 + 201);
    put(&w, "services/s7/frontend", NULL);
    incr(&w, "s7");
    CHECK_INT(file_lines(w.state), 1 + 202); /* "- inet tcp 10.8.0.8 80 0" */
    reconcile_free(w.rec);
    w.rec = NULL;
    world_open(&w, w.state);
    struct ipvs_service s7 = tcp_svc("10.8.0.8", 80), nw = tcp_svc("10.9.9.9", 80),
                        s8 = tcp_svc("10.8.0.9", 80);
    CHECK(!reconcile_owns(w.rec, &s7));
    CHECK(reconcile_owns(w.rec, &nw));
    CHECK(reconcile_owns(w.rec, &s8));
    CHECK_INT(reconcile_owned_count(w.rec), 200);
    /* many changes: the file is rewritten once the appended lines outnumber the set */
    for (int round = 0; round < 300; round++) {
        put(&w, "services/new/frontend", round % 2 ? "{\"ipv4\":\"10.9.9.9\",\"tcp\":80}" : NULL);
        incr(&w, "new");
    }
    CHECK_MSG(file_lines(w.state) <= 1 + 200 + 200 + 65, "%ld lines", file_lines(w.state));
    reconcile_free(w.rec);
    w.rec = NULL;
    world_open(&w, w.state);
    CHECK(reconcile_owns(w.rec, &nw));
    CHECK_INT(reconcile_owned_count(w.rec), 200);
    world_close(&w);
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

/* Graceful removal: a removed TCP dest goes to weight 0 and stays while it has active
 * connections, is deleted when they are gone (inactive ones do not hold it) or at the
 * deadline; one that comes back is restored; UDP dests go at once; a full pass keeps drains. */
static void test_drain(void)
{
    world w = {0};
    world_open(&w, NULL);
    reconcile_set_drain(w.rec, 30000, fake_clock);
    fake_now = 1000;
    put(&w, "services/web/frontend", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80,\"udp\":53}");
    put(&w, "services/web/backends/a", "{\"ipv4\":\"10.9.1.1\",\"tcp\":80,\"udp\":53}");
    put(&w, "services/web/backends/b", "{\"ipv4\":\"10.9.1.2\",\"tcp\":80,\"udp\":53}");
    full(&w);
    struct ipvs_service web = tcp_svc("10.9.0.1", 80), dns = tcp_svc("10.9.0.1", 53);
    dns.protocol = IPPROTO_UDP;
    struct ipvs_dest a = dest("10.9.1.1", 80);
    CHECK_INT(ipvs_fake_set_conns(w.kernel, &web, &a, 1, 3), 0);
    put(&w, "services/web/backends/a", NULL);
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest delete-dest"); /* TCP to weight 0; UDP at once */
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 0);
    CHECK_INT(weight_of(&w, dns, "10.9.1.1", 53), -1);
    CHECK_INT(reconcile_draining(w.rec), 1);
    /* while it has an active connection it stays, across checks and a full pass */
    reconcile_result res = {0};
    CHECK_INT(reconcile_drain_check(w.rec, &res), 0);
    CHECK_INT(res.dest_deleted, 0);
    CHECK_INT(full(&w), 0);
    CHECK_INT(reconcile_draining(w.rec), 1);
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), 0);
    /* the connection ends (inactive entries remain): deleted at the next check */
    CHECK_INT(ipvs_fake_set_conns(w.kernel, &web, &a, 0, 4), 0);
    CHECK_INT(reconcile_drain_check(w.rec, &res), 0);
    CHECK_INT(res.dest_deleted, 1);
    CHECK_INT(weight_of(&w, web, "10.9.1.1", 80), -1);
    CHECK_INT(reconcile_draining(w.rec), 0);
    /* b drains; it comes back while draining: its weight is restored at once */
    struct ipvs_dest b = dest("10.9.1.2", 80);
    CHECK_INT(ipvs_fake_set_conns(w.kernel, &web, &b, 2, 0), 0);
    put(&w, "services/web/backends/b", NULL);
    incr(&w, "web");
    CHECK_INT(weight_of(&w, web, "10.9.1.2", 80), 0);
    put(&w, "services/web/backends/b", "{\"ipv4\":\"10.9.1.2\",\"tcp\":80}");
    incr(&w, "web");
    CHECK_STR(last_ops, "edit-dest");
    CHECK_INT(weight_of(&w, web, "10.9.1.2", 80), 10);
    CHECK_INT(reconcile_draining(w.rec), 0);
    /* removed again: the deadline deletes it even with a live connection */
    put(&w, "services/web/backends/b", NULL);
    incr(&w, "web");
    fake_now += 29999;
    reconcile_result_free(&res);
    CHECK_INT(reconcile_drain_check(w.rec, &res), 0);
    CHECK_INT(res.dest_deleted, 0);
    fake_now += 1;
    CHECK_INT(reconcile_drain_check(w.rec, &res), 0);
    CHECK_INT(res.dest_deleted, 1);
    CHECK_INT(dests_of(&w, web), 0);
    CHECK_INT(full(&w), 0);
    reconcile_result_free(&res);
    world_close(&w);
}

/* A hand-made service the config comes to name is adopted by an incremental pass from what
 * the kernel holds: its dests are dumped once, not guessed (no EEXIST surprise). */
static void test_incremental_adoption(void)
{
    world w = {0};
    world_open(&w, NULL);
    struct ipvs_service foreign = tcp_svc("192.0.2.1", 22);
    struct ipvs_dest fd = dest("192.0.2.9", 22);
    fd.weight = 10;
    fd.fwd = IP_VS_CONN_F_MASQ;
    by_hand(&w, IPVS_OP_ADD_SERVICE, &foreign, NULL);
    by_hand(&w, IPVS_OP_ADD_DEST, &foreign, &fd);
    full(&w);
    put(&w, "services/ssh/frontend", "{\"ipv4\":\"192.0.2.1\",\"tcp\":22}");
    put(&w, "services/ssh/backends/x", "{\"ipv4\":\"192.0.2.9\",\"tcp\":22}");
    put(&w, "services/ssh/backends/y", "{\"ipv4\":\"192.0.2.10\",\"tcp\":22}");
    w.dest_dumps = 0;
    incr(&w, "ssh");
    CHECK_STR(last_ops, "add-dest");
    CHECK_INT(w.dest_dumps, 1);
    CHECK(!reconcile_needs_full(w.rec));
    CHECK(reconcile_owns(w.rec, &foreign));
    CHECK_INT(weight_of(&w, foreign, "192.0.2.10", 22), 10);
    world_close(&w);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("seed_transcript", test_seed_transcript);
    check_run("full_after_incremental_is_noop", test_full_after_incremental_is_noop);
    check_run("weight_edit_in_place", test_weight_edit_in_place);
    check_run("foreign_rules", test_foreign_rules);
    check_run("ownership_survives_restart", test_ownership_survives_restart);
    check_run("damaged_state_files", test_damaged_state_files);
    check_run("good_state_file", test_good_state_file);
    check_run("state_save_temp_files", test_state_save_temp_files);
    check_run("state_path_too_long", test_state_path_too_long);
    check_run("drift_repaired", test_drift_repaired);
    check_run("refused_op_is_isolated", test_refused_op_is_isolated);
    check_run("owner_of_refused_op", test_owner_of_refused_op);
    check_run("dump_failure", test_dump_failure);
    check_run("flush", test_flush);
    check_run("vip_change", test_vip_change);
    check_run("conflict_handover", test_conflict_handover);
    check_run("sliced_full_pass", test_sliced_full_pass);
    check_run("incremental_adoption", test_incremental_adoption);
    check_run("full_pass_end_and_abort", test_full_pass_end_and_abort);
    check_run("full_pass_restamps_claims", test_full_pass_restamps_claims);
    check_run("dump_in_parts", test_dump_in_parts);
    check_run("dump_in_parts_broken", test_dump_in_parts_broken);
    check_run("resync_keeps_untouched", test_resync_keeps_untouched);
    check_run("incremental_before_full", test_incremental_before_full);
    check_run("drain", test_drain);
    check_run("state_file_appends", test_state_file_appends);
    return check_end();
}
