/* test_ipvsd_read_slices.c -- clusterf-ipvs --dry-run applies its first etcd read (50,000 keys
 * from a real etcd; 110,000 with CLUSTERF_SOAK=1) a slice per loop turn, so a signal does not
 * wait behind it (issue #8): SIGTERM during the apply exits 0 before any full pass; SIGHUP
 * during it leaves one full pass, after the last key, whose ops are the table lb computes from
 * the same keys.
 *
 * The daemon's output goes through a FIFO shrunk to one page that this test reads line by
 * line: once the first "etcd read slice" line is read, the daemon can be at most a page of
 * log ahead (a few dozen slices of --read-slice-keys=50, of a thousand or more) before its
 * write blocks, so the signal sent then reaches it in the middle of the apply -- by
 * construction, not by timing. */
#include "cfgsource/cfgsource.h"
#include "check.h"
#include "child_proc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "etcd_harness.h"
#include "lb/lb.h"
#include "reconcile/reconcile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKENDS 9      /* per service: 10 keys with the frontend */
#define TXN_OPS 128
#define SLICE_KEYS "50"

static etcdh H;
static int etcd_rc = -ENOENT;
static char BIN[256];
static size_t n_services;

/* The daemon's output as read from the FIFO: every line, in order. */
typedef struct out_reader {
    int fd;
    char buf[8192];
    size_t len;
    char *text;         /* everything read so far, NUL-terminated */
    size_t text_len, text_cap;
    bool eof;
} out_reader;

static bool need(void)
{
    if (access(BIN, X_OK) != 0) {
        check_skip("%s is not built (make all)", BIN);
        return false;
    }
    return check_need(etcd_rc, "etcd (etcd-server etcd-client)");
}

static etcd_client *client(void)
{
    etcd_config cfg = {.endpoints = H.endpoints, .timeout_ms = 30000};
    etcd_client *c = NULL;
    etcd_error err = {0};
    CHECK_MSG(etcd_client_new(&cfg, &c, &err) == 0, "client: %s", err.msg);
    return c;
}

/* Key k (0..) of the generated config: service k / 10's frontend, then its backends. */
static void gen_key(size_t k, char *key, size_t ksize, char *val, size_t vsize)
{
    size_t s = k / (BACKENDS + 1), b = k % (BACKENDS + 1);
    if (b == 0) {
        snprintf(key, ksize, "/clusterf/services/s%zu/frontend", s);
        snprintf(val, vsize, "{\"ipv4\":\"10.%zu.%zu.%zu\",\"tcp\":80}", 100 + s / 62500,
                 s / 250 % 250, s % 250 + 1);
    } else {
        snprintf(key, ksize, "/clusterf/services/s%zu/backends/b%zu", s, b);
        snprintf(val, vsize, "{\"ipv4\":\"10.2.%zu.%zu\",\"tcp\":8080}", b, s % 250 + 1);
    }
}

/* Put the generated config into etcd, TXN_OPS keys per transaction. */
static bool load_config(void)
{
    etcd_client *c = client();
    static char keys[TXN_OPS][96], vals[TXN_OPS][96];
    etcd_op ops[TXN_OPS];
    size_t total = n_services * (BACKENDS + 1);
    bool ok = c != NULL;
    for (size_t k = 0; ok && k < total; k += TXN_OPS) {
        size_t n = total - k < TXN_OPS ? total - k : TXN_OPS;
        for (size_t i = 0; i < n; i++) {
            gen_key(k + i, keys[i], sizeof keys[i], vals[i], sizeof vals[i]);
            ops[i] = (etcd_op){ETCD_OP_PUT, keys[i], strlen(keys[i]), vals[i], strlen(vals[i]), 0};
        }
        bool done = false;
        etcd_error err = {0};
        ok = CHECK_MSG(etcd_txn(c, NULL, 0, ops, n, NULL, 0, &done, NULL, &err) == 0 && done,
                       "txn at key %zu: %s", k, err.msg);
    }
    etcd_client_free(c);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Push a copy of s (aborts on allocation failure, as the test helpers do). */
static void push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
    }
    if (!*v || !((*v)[(*n)++] = strdup(s)))
        abort();
}

/* The add ops a dry run on an empty table must log for the keys in etcd, as lb computes them
 * (read whole, the way clusterfctl does): "op=add-service service=..." and "op=add-dest
 * service=... dest=... fwd=... weight=...", sorted. */
static char **expected_ops(size_t *n_out)
{
    config_options opts = {0};
    config_error cerr;
    etcd_client *c = client();
    char **v = NULL;
    size_t n = 0, cap = 0;
    if (!c || !CHECK(config_defaults_parse(&opts.defaults, "wlc", "masq", &cerr) == 0)) {
        etcd_client_free(c);
        return NULL;
    }
    config_store *cfg = config_store_new(&opts);
    lb_table t;
    lb_table_init(&t);
    etcd_error err = {0};
    if (CHECK_MSG(cfgsource_etcd_read(c, "/clusterf", cfg, NULL, NULL, NULL, NULL, &err) == 0,
                  "read: %s", err.msg) &&
        CHECK(lb_compute_all(cfg, &t) == 0)) {
        for (size_t i = 0; i < t.n_services; i++) {
            struct ipvs_service s;
            struct ipvs_dest d;
            char svc[96], dst[96], q1[128], q2[128], line[400];
            reconcile_lb_to_ipvs_service(&t.services[i], &s);
            log_quote(q1, sizeof q1, ipvs_service_str(&s, svc, sizeof svc));
            snprintf(line, sizeof line, "op=add-service service=%s", q1);
            push(&v, &n, &cap, line);
            for (size_t j = 0; j < t.services[i].n_dests; j++) {
                reconcile_lb_to_ipvs_dest(&t.services[i].dests[j], &d);
                snprintf(line, sizeof line, "op=add-dest service=%s dest=%s fwd=%s weight=%u", q1,
                         log_quote(q2, sizeof q2, ipvs_dest_str(&s, &d, dst, sizeof dst)),
                         ipvs_fwd_name(d.fwd), d.weight);
                push(&v, &n, &cap, line);
            }
        }
    }
    lb_table_free(&t);
    config_store_free(cfg);
    etcd_client_free(c);
    if (v)
        qsort(v, n, sizeof *v, cmp_str);
    *n_out = n;
    return v;
}

/* The add ops the daemon logged (the part of each dry-run op line from "op=" to its details
 * that expected_ops writes), sorted. */
static char **logged_ops(const char *text, size_t *n_out)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    for (const char *p = text; (p = strstr(p, "msg=\"ipvs op (dry-run)\" op=add-")); ) {
        const char *op = strstr(p, "op=add-");
        const char *eol = strchr(op, '\n');
        const char *end = strstr(op, strncmp(op, "op=add-service", 14) == 0 ? " sched=" : " result=");
        if (!eol || !end || end > eol)
            break;
        char line[400];
        snprintf(line, sizeof line, "%.*s", (int)(end - op), op);
        push(&v, &n, &cap, line);
        p = eol;
    }
    if (v)
        qsort(v, n, sizeof *v, cmp_str);
    *n_out = n;
    return v;
}

/* Start the daemon with its output in a one-page FIFO (at dir/name) read by r. */
static bool start_daemon(child_proc *c, out_reader *r, const char *name)
{
    char fifo[300], ep[300], state[300];
    snprintf(fifo, sizeof fifo, "%s/%s.fifo", H.dir, name);
    snprintf(state, sizeof state, "--state-dir=%s/%s", H.dir, name);
    snprintf(ep, sizeof ep, "--etcd-endpoints=%s", H.endpoints);
    mkdir(state + strlen("--state-dir="), 0700);
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (!CHECK_MSG(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo, strerror(errno)))
        return false;
    char *argv[] = {BIN, "--dry-run", "--log-level=debug", "--read-slice-keys=" SLICE_KEYS,
                    "--resync-interval=0", state, ep, NULL};
    if (!CHECK(child_start(c, fifo, false, argv)))
        return false;
    r->fd = open(fifo, O_RDONLY); /* until the daemon opens its end, at once */
    return CHECK_MSG(r->fd >= 0, "open %s: %s", fifo, strerror(errno)) &&
           CHECK_MSG(fcntl(r->fd, F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ: %s", strerror(errno)) &&
           CHECK(fcntl(r->fd, F_SETFL, O_NONBLOCK) == 0);
}

/* Append s[0..n) to r's text. */
static void keep_text(out_reader *r, const char *s, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        r->text_cap = (r->text_len + n + 1) * 2;
        if (!(r->text = realloc(r->text, r->text_cap)))
            abort();
    }
    memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
}

/* Read until a line holding want (NULL: until the end of the output) or a generous cap.
 * True when found (or the end reached when want is NULL). */
static bool read_until(out_reader *r, const char *want)
{
    int64_t end = clock_now_ms() + 120000LL * check_slow_factor();
    size_t scanned = r->text_len;
    while (!r->eof && clock_now_ms() < end) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        ssize_t got = read(r->fd, r->buf, sizeof r->buf);
        if (got == 0)
            r->eof = true;
        if (got <= 0)
            continue;
        keep_text(r, r->buf, (size_t)got);
        /* only whole lines count */
        char *nl = want ? memrchr(r->text + scanned, '\n', r->text_len - scanned) : NULL;
        if (nl) {
            char save = nl[1];
            nl[1] = '\0';
            bool found = strstr(r->text + scanned, want) != NULL;
            nl[1] = save;
            if (found)
                return true;
        }
    }
    return want ? false : r->eof;
}

/* Close the reader; for a failing test, show the end of the daemon's output. */
static void reader_done(out_reader *r)
{
    if (check_failed() && r->text)
        printf("  the daemon's output ended with:\n%s\n",
               r->text + (r->text_len > 1500 ? r->text_len - 1500 : 0));
    if (r->fd >= 0)
        close(r->fd);
    free(r->text);
}

/* Offset of the first line holding s in text, or -1. */
static long where(const char *text, const char *s)
{
    const char *p = text ? strstr(text, s) : NULL;
    return p ? p - text : -1;
}

static size_t count(const char *text, const char *s)
{
    size_t n = 0;
    for (const char *p = text; p && (p = strstr(p, s)); p += strlen(s))
        n++;
    return n;
}

#define MSG_RECEIVED "msg=\"etcd read received"
#define MSG_SLICE "msg=\"etcd read slice\""
#define MSG_APPLIED "msg=\"etcd read\" "
#define MSG_FULL "msg=\"reconciled\" pass=full"

/* SIGTERM in the middle of the apply: exit 0, no full pass, the read never finished. */
static void test_sigterm_during_apply(void)
{
    if (!need())
        return;
    child_proc c = {0};
    out_reader r;
    if (start_daemon(&c, &r, "term") && CHECK_MSG(read_until(&r, MSG_SLICE), "no apply slice seen")) {
        kill(c.pid, SIGTERM);
        CHECK_MSG(read_until(&r, NULL), "the daemon's output did not end");
    }
    CHECK_INT(child_stop(&c, SIGTERM, 60000 * check_slow_factor()), 0);
    long received = where(r.text, MSG_RECEIVED), slice = where(r.text, MSG_SLICE),
         exiting = where(r.text, "msg=\"exiting");
    CHECK_MSG(received >= 0 && slice > received && exiting > slice,
              "read received (%ld) < first slice (%ld) < exiting (%ld)", received, slice, exiting);
    CHECK_MSG(where(r.text, MSG_APPLIED) < 0, "the read was applied to its end");
    CHECK_MSG(where(r.text, MSG_FULL) < 0 && where(r.text, "op=add-") < 0,
              "a full pass ran before the exit");
    size_t slices = count(r.text, MSG_SLICE), total = n_services * (BACKENDS + 1);
    printf("  SIGTERM after %zu of %zu slices of " SLICE_KEYS " keys\n", slices,
           total / atoi(SLICE_KEYS));
    CHECK(slices >= 1 && slices < total / atoi(SLICE_KEYS));
    reader_done(&r);
}

/* SIGHUP in the middle of the apply: one full pass, after the last key, and its ops are the
 * table lb computes from the same keys read whole. */
static void test_sighup_during_apply_then_table(void)
{
    if (!need())
        return;
    child_proc c = {0};
    out_reader r;
    if (start_daemon(&c, &r, "hup") && CHECK_MSG(read_until(&r, MSG_SLICE), "no apply slice seen")) {
        kill(c.pid, SIGHUP);
        CHECK_MSG(read_until(&r, MSG_FULL), "no full pass logged");
        kill(c.pid, SIGTERM);
        CHECK_MSG(read_until(&r, NULL), "the daemon's output did not end");
    }
    CHECK_INT(child_stop(&c, SIGTERM, 60000 * check_slow_factor()), 0);
    long hup = where(r.text, "msg=\"SIGHUP"), applied = where(r.text, MSG_APPLIED),
         full = where(r.text, MSG_FULL);
    CHECK_MSG(hup >= 0 && applied > hup && full > applied,
              "SIGHUP (%ld) < read applied (%ld) < full pass (%ld)", hup, applied, full);
    CHECK_INT(count(r.text, MSG_FULL), 1);
    CHECK_MSG(where(r.text, MSG_FULL " scope=start") >= 0, "the full pass is not the start's");
    CHECK_MSG(where(r.text, "pass=incremental") < 0, "an incremental pass ran");
    size_t n_exp = 0, n_got = 0;
    char **exp = expected_ops(&n_exp), **got = logged_ops(r.text ? r.text : "", &n_got);
    printf("  %zu ops expected, %zu logged\n", n_exp, n_got);
    CHECK_INT(n_exp, n_services * (BACKENDS + 1));
    CHECK_INT(n_got, n_exp);
    size_t diff = 0;
    for (size_t i = 0; i < n_got && i < n_exp; i++)
        if (strcmp(got[i], exp[i]) != 0 && diff++ < 3)
            check_fail(__FILE__, __LINE__, "op %zu: logged %s, expected %s", i, got[i], exp[i]);
    CHECK_INT(diff, 0);
    strs_free(exp, n_exp);
    strs_free(got, n_got);
    reader_done(&r);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    const char *build = getenv("BUILD");
    snprintf(BIN, sizeof BIN, "%s/clusterf-ipvs", build && *build ? build : "build");
    const char *soak = getenv("CLUSTERF_SOAK");
    n_services = soak && strcmp(soak, "1") == 0 ? 11000 : 5000;
    if (etcdh_available())
        etcd_rc = etcdh_start(&H, 1);
    if (etcd_rc == 0 && access(BIN, X_OK) == 0)
        load_config();
    check_run("sigterm_during_apply", test_sigterm_during_apply);
    check_run("sighup_during_apply_then_table", test_sighup_during_apply_then_table);
    if (H.dir[0])
        etcdh_destroy(&H);
    return check_end();
}
