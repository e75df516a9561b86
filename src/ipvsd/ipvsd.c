/* ipvsd.c -- the clusterf-ipvs event loop: signals, timers, coalesced incremental passes,
 * periodic full passes, and the logging of every op the kernel was sent. */
#include "ipvsd/ipvsd_int.h"

#include "common/log.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Before the first etcd read, local changes wait this long for it (a read that comes in time
 * is followed by one full pass of everything) before they are applied on their own. */
#define PRELOAD_DELAY_MS 1000

void ipvsd_timer(int fd, int64_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000;
    if (ms > 0 && its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(fd, 0, &its, NULL);
}

/* Add name to a set of strdup'd names (no-op when present). */
static void nameset_add(bytemap *set, const char *name)
{
    if (bytemap_get(set, name, strlen(name)))
        return;
    char *copy = strdup(name);
    if (copy && bytemap_put(set, copy, strlen(copy), copy) < 0)
        free(copy);
}

/* Remove name from such a set (no-op when absent). */
static void nameset_del(bytemap *set, const char *name)
{
    free(bytemap_del(set, name, strlen(name)));
}

static bool nameset_has(const bytemap *set, const char *name)
{
    return bytemap_get(set, name, strlen(name)) != NULL;
}

static void nameset_clear(bytemap *set)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(set, &pos, &e))
        free(e->val);
    bytemap_clear(set);
}

void ipvsd_mark(ipvsd *d, const config_result *res)
{
    if (!res->changed)
        return;
    for (size_t i = 0; i < res->services.n; i++)
        nameset_add(&d->dirty, res->services.v[i]);
    struct itimerspec cur;
    timerfd_gettime(d->coalesce_fd, &cur);
    int64_t delay = d->o->coalesce_ms > 0 ? d->o->coalesce_ms : 1;
    if (!d->loaded && delay < PRELOAD_DELAY_MS)
        delay = PRELOAD_DELAY_MS;
    if (cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0)
        ipvsd_timer(d->coalesce_fd, delay);
}

void ipvsd_log_result(const char *source, const char *key, size_t key_len, int64_t rev,
                      const config_result *res)
{
    char q[512], e[1200];
    for (size_t i = 0; i < res->warnings.n; i++)
        log_warn("msg=\"config warning\" source=%s warning=%s", source,
                 log_quote(e, sizeof e, res->warnings.v[i]));
    if (res->invalid && !res->repeated) {
        char k[300];
        snprintf(k, sizeof k, "%.*s", (int)(key_len < 256 ? key_len : 256), key);
        log_error("msg=\"invalid config value\" source=%s key=%s revision=%lld %s error=%s",
                  source, log_quote(q, sizeof q, k), (long long)rev,
                  res->stale ? "kept=last-valid" : "kept=none",
                  log_quote(e, sizeof e, res->error));
    }
}

/* Log warnings from lb the first time they appear. */
static void log_lb_warnings(ipvsd *d, const lb_table *t)
{
    char q[1200];
    for (size_t i = 0; i < t->warnings.n; i++) {
        const char *w = t->warnings.v[i];
        if (bytemap_get(&d->warned, w, strlen(w)))
            continue;
        nameset_add(&d->warned, w);
        log_warn("msg=\"table warning\" warning=%s", log_quote(q, sizeof q, w));
    }
    ipvsd_metrics_table(d, t);
}

static const char *outcome_name(enum ipvs_outcome o)
{
    switch (o) {
    case IPVS_APPLIED: return "applied";
    case IPVS_ALREADY: return "already";
    case IPVS_FAILED: return "failed";
    default: return "unanswered";
    }
}

/* One op the kernel answered: at debug; a failure (with its clusterf service) at error the
 * first time, at debug while the same op fails the same way again (ipvsd_opfail_note). */
static void log_op(void *ctx, const struct ipvs_op *op)
{
    ipvsd *d = ctx;
    ipvsd_metrics_op(d, op);
    const char *owner = op->outcome == IPVS_FAILED ? reconcile_service_owner(d->rec, &op->svc)
                                                   : NULL;
    enum log_level lvl = ipvsd_opfail_note(d, op, owner);
    if (lvl < log_get_level())
        return;
    char svc[96], dst[96] = "", q1[128], q2[128], detail[160] = "";
    ipvs_service_str(&op->svc, svc, sizeof svc);
    bool is_dest = op->kind == IPVS_OP_ADD_DEST || op->kind == IPVS_OP_EDIT_DEST ||
                   op->kind == IPVS_OP_DEL_DEST;
    if (is_dest) {
        ipvs_dest_str(&op->svc, &op->dest, dst, sizeof dst);
        snprintf(detail, sizeof detail, " dest=%s fwd=%s weight=%u", log_quote(q2, sizeof q2, dst),
                 ipvs_fwd_name(op->dest.fwd), op->dest.weight);
    } else if (op->kind != IPVS_OP_DEL_SERVICE && op->kind != IPVS_OP_FLUSH) {
        snprintf(detail, sizeof detail, " sched=%s flags=0x%x timeout=%u",
                 op->svc.sched[0] ? op->svc.sched : "wlc", op->svc.flags, op->svc.timeout);
    }
    log_msg(lvl, "msg=\"%s\" op=%s service=%s%s%s%s result=%s%s%s%s",
            d->o->dry_run ? "ipvs op (dry-run)" : "ipvs op", ipvs_op_name(op->kind),
            log_quote(q1, sizeof q1, svc), owner ? " clusterf_service=" : "", owner ? owner : "",
            detail, outcome_name(op->outcome),
            op->error ? " error=\"" : "", op->error ? strerror(-op->error) : "",
            op->error ? "\"" : "");
}

/* A result whose ops are logged by log_op. */
static reconcile_result result_for(ipvsd *d)
{
    return (reconcile_result){.on_op = log_op, .ctx = d};
}

/* One summary line for a pass: at info when it changed something, at error when it failed
 * (the pass as a whole, or an op whose failure was logged at error by this pass: errors_base
 * is d->op_errors_logged as it began; ops that only failed again do not make it an error). */
static void log_result(const ipvsd *d, size_t errors_base, const char *pass, const char *scope,
                       const reconcile_result *res, int64_t ms, const char *extra)
{
    size_t changes = reconcile_result_changes(res);
    bool new_failure = res->failed && d->op_errors_logged > errors_base;
    enum log_level lvl = new_failure || res->error[0] ? LOG_LEVEL_ERROR
                       : changes || res->dest_draining ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
    char q[400], qs[300];
    log_msg(lvl, "msg=\"reconciled\" pass=%s scope=%s services_added=%zu services_changed=%zu "
            "services_deleted=%zu dests_added=%zu dests_changed=%zu dests_deleted=%zu "
            "dests_draining=%zu failed=%zu duration_ms=%lld%s%s%s",
            pass, log_quote(qs, sizeof qs, scope), res->svc_added, res->svc_changed,
            res->svc_deleted, res->dest_added, res->dest_changed, res->dest_deleted,
            res->dest_draining, res->failed,
            (long long)ms, extra, res->error[0] ? " error=" : "",
            res->error[0] ? log_quote(q, sizeof q, res->error) : "");
}

/* Keep the drain check going while dests drain: soon after a pass started a drain (a dest
 * without connections goes at once), then every DRAIN_CHECK_MS. */
static void drain_arm(ipvsd *d, const reconcile_result *res)
{
    struct itimerspec cur;
    timerfd_gettime(d->drain_fd, &cur);
    bool armed = cur.it_value.tv_sec || cur.it_value.tv_nsec;
    if (res && res->dest_draining)
        ipvsd_timer(d->drain_fd, 1);
    else if (!armed && reconcile_draining(d->rec))
        ipvsd_timer(d->drain_fd, DRAIN_CHECK_MS);
}

/* The drain timer fired: delete the draining dests that are done. */
static void drain_check(ipvsd *d)
{
    int64_t t0 = clock_now_ms();
    size_t errors_base = d->op_errors_logged;
    reconcile_result res = result_for(d);
    reconcile_drain_check(d->rec, &res);
    ipvsd_metrics_pass(d, "drain", &res, clock_now_ms() - t0);
    if (res.dest_deleted || res.error[0] || d->op_errors_logged > errors_base)
        log_result(d, errors_base, "drain", "draining", &res, clock_now_ms() - t0, "");
    drain_arm(d, NULL);
}

/* The full pass is over: log it, and run what waited for it. */
static void full_end(ipvsd *d)
{
    char extra[200];
    snprintf(extra, sizeof extra, " slices=%zu longest_slice_ms=%lld dump_parts=%zu kept=%zu"
             " compute_ms=%lld kernel_ms=%lld save_ms=%lld", d->full_slices,
             (long long)d->full_longest_ms, d->full_load_parts,
             d->full_kept, (long long)(d->full_compute_us / 1000),
             (long long)(d->full_res.kernel_us / 1000), (long long)(d->full_res.save_us / 1000));
    log_result(d, d->full_errors_base, "full", d->full_why, &d->full_res, clock_now_ms() - d->full_t0, extra);
    ipvsd_metrics_pass(d, "full", &d->full_res, clock_now_ms() - d->full_t0);
    if (strcmp(d->full_why, "resync") == 0 && reconcile_result_changes(&d->full_res))
        log_warn("msg=\"drift repaired\" changes=%zu", reconcile_result_changes(&d->full_res));
    config_strs_clear(&d->full_names);
    nameset_clear(&d->full_dirty);
    d->full_next = 0;
    drain_arm(d, &d->full_res);
    if (d->full_again) {
        d->full_again = false;
        ipvsd_pass_full(d, "queued");
    } else if (d->dirty.n || reconcile_needs_full(d->rec)) {
        /* A service the kernel refuses (an unknown scheduler: ENOENT) leaves the mirror out
         * of date again at once: retry it at a walking pace, not in a loop. */
        ipvsd_timer(d->coalesce_fd, d->full_res.failed ? FULL_RETRY_FAILED_MS : 1);
    }
}

/* Compute the IPVS services of clusterf service name into one, and remember whether they came
 * with a conflict or a warning (such a service is computed at every resync: its metrics and
 * its rivals depend on it). 0 or -ENOMEM. */
static int compute_service(ipvsd *d, const char *name, lb_table *one)
{
    if (lb_compute_service(d->cfg, name, one) < 0)
        return -ENOMEM;
    if (one->conflicts.n || one->warnings.n)
        nameset_add(&d->noisy, name);
    else
        nameset_del(&d->noisy, name);
    return 0;
}

/* True when the full pass may keep clusterf service name as its last pass left it, unless the
 * kernel shows drift (reconcile_full_keep): a periodic resync, and no event touched it since. */
static bool full_may_keep(const ipvsd *d, const char *name)
{
    return d->full_keep && !nameset_has(&d->full_dirty, name) &&
           !nameset_has(&d->dirty, name) && !nameset_has(&d->noisy, name);
}

/* Read the next part of the kernel's services for the full pass. 1 (go on), or -1 when the
 * dump broke (the pass is over, logged). */
static int full_load_step(ipvsd *d)
{
    d->full_load_parts++;
    if (reconcile_full_load(d->rec, &d->full_res) >= 0)
        return 1;
    full_end(d);
    return -1;
}

/* Compute and reconcile the next FULL_STEP_SERVICES clusterf services of the full pass (once
 * its dump of the kernel's services is read, a part per step). Returns 1 while more are left,
 * 0 when the pass is over (logged), -1 when it broke. */
static int full_step(ipvsd *d)
{
    if (reconcile_full_loading(d->rec))
        return full_load_step(d);
    lb_table part, one;
    lb_table_init(&part);
    lb_table_init(&one);
    size_t end = d->full_next + FULL_STEP_SERVICES;
    if (end > d->full_names.n)
        end = d->full_names.n;
    int rc = 0;
    int64_t t0 = clock_now_us();
    for (; rc == 0 && d->full_next < end; d->full_next++) {
        const char *name = d->full_names.v[d->full_next];
        int kept = full_may_keep(d, name) ? reconcile_full_keep(d->rec, name, &d->full_res) : 0;
        d->full_kept += kept > 0;
        if (kept < 0)
            rc = kept;
        else if (!kept && (compute_service(d, name, &one) < 0 || lb_table_take(&part, &one) < 0))
            rc = -ENOMEM, snprintf(d->full_res.error, sizeof d->full_res.error, "out of memory");
    }
    d->full_compute_us += clock_now_us() - t0;
    if (rc == 0) {
        log_lb_warnings(d, &part);
        rc = reconcile_full_add(d->rec, &part, &d->full_res);
    }
    lb_table_free(&one);
    lb_table_free(&part);
    if (rc == 0 && d->full_next < d->full_names.n)
        return 1;
    if (rc == 0)
        rc = reconcile_full_end(d->rec, &d->full_res);
    if (rc == 0)
        ipvsd_opfail_sweep(d, d->full_seq, NULL, 0);
    else
        reconcile_full_abort(d->rec); /* what was applied stays; the next pass redoes it */
    full_end(d);
    return rc == 0 ? 0 : -1;
}

/* Run the full pass for up to FULL_SLICE_MS, then give the loop back. */
static void full_slice(ipvsd *d)
{
    int64_t t0 = clock_now_ms(), now = t0;
    int rc = 1;
    while (rc > 0 && now - t0 < FULL_SLICE_MS) {
        rc = full_step(d);
        now = clock_now_ms();
    }
    d->full_slices++;
    if (now - t0 > d->full_longest_ms)
        d->full_longest_ms = now - t0;
}

static int add_name(const char *service, void *ctx)
{
    return config_strs_push(ctx, service);
}

void ipvsd_pass_full(ipvsd *d, const char *why)
{
    if (ipvsd_etcd_applying(d)) {
        log_debug("msg=\"full pass left to the end of the etcd read being applied\" scope=%s", why);
        return; /* its last key starts one */
    }
    if (reconcile_full_running(d->rec)) {
        d->full_again = true; /* the running pass may predate what asked for this one */
        return;
    }
    d->full_t0 = clock_now_ms();
    d->full_slices = 0;
    d->full_load_parts = 1; /* begin reads the first */
    d->full_compute_us = 0;
    snprintf(d->full_why, sizeof d->full_why, "%s", why);
    d->full_res = result_for(d);
    d->full_seq = ++d->op_seq;
    d->full_errors_base = d->op_errors_logged;
    /* What events touched is computed by this pass; a periodic resync only checks the
     * kernel against the rest (computing them only where it drifted). */
    d->full_keep = strcmp(why, "resync") == 0;
    d->full_kept = 0;
    nameset_clear(&d->full_dirty);
    d->full_dirty = d->dirty;
    memset(&d->dirty, 0, sizeof d->dirty);
    config_strs_clear(&d->full_names);
    d->full_next = 0;
    /* The names now; each slice computes its services from the config as it is then. */
    if (config_store_foreach_service(d->cfg, add_name, &d->full_names) < 0) {
        log_error("msg=\"cannot start a full pass\" error=\"out of memory\"");
        config_strs_clear(&d->full_names);
        return;
    }
    if (reconcile_full_begin(d->rec, &d->full_res) < 0) {
        full_end(d);
        return;
    }
    d->full_longest_ms = clock_now_ms() - d->full_t0;
    log_debug("msg=\"full pass begun\" scope=%s services=%zu begin_ms=%lld", why,
              d->full_names.n, (long long)d->full_longest_ms);
    full_slice(d);
}

/* Recompute the clusterf services of names (n of them) and reconcile them together, so a
 * key one gives up and another takes over is handed over in place. */
static void pass_services(ipvsd *d, const char *const *names, size_t n)
{
    int64_t t0 = clock_now_ms();
    lb_table all, one;
    lb_table_init(&all);
    lb_table_init(&one);
    for (size_t i = 0; i < n; i++) {
        if (compute_service(d, names[i], &one) < 0 || lb_table_take(&all, &one) < 0) {
            log_error("msg=\"cannot compute the table\" service=%s error=\"out of memory\"",
                      names[i]);
            lb_table_free(&one);
            lb_table_free(&all);
            return;
        }
    }
    log_lb_warnings(d, &all);
    reconcile_result res = result_for(d);
    uint64_t seq = ++d->op_seq;
    size_t errors_base = d->op_errors_logged;
    if (reconcile_services(d->rec, names, n, &all, &res) == 0)
        ipvsd_opfail_sweep(d, seq, names, n);
    char scope[256];
    snprintf(scope, sizeof scope, n == 1 ? "%s" : "%s +%zu more", names[0], n - 1);
    log_result(d, errors_base, "incremental", scope, &res, clock_now_ms() - t0, "");
    ipvsd_metrics_pass(d, "incremental", &res, clock_now_ms() - t0);
    drain_arm(d, &res);
    lb_table_free(&all);
}

/* Reconcile, in one incremental pass, every clusterf service events touched since the last. */
static void pass_touched(ipvsd *d)
{
    /* The store names both sides of a conflict as touched: both are reconciled together. */
    bytemap work = d->dirty;
    memset(&d->dirty, 0, sizeof d->dirty);
    const char **names = work.n ? malloc(work.n * sizeof *names) : NULL;
    size_t n = 0, pos = 0;
    bytemap_entry *e = NULL;
    while (names && bytemap_next(&work, &pos, &e))
        names[n++] = e->val;
    if (n)
        pass_services(d, names, n);
    else if (work.n)
        log_error("msg=\"cannot reconcile\" error=\"out of memory\"");
    free(names);
    nameset_clear(&work);
}

/* The coalescing timer fired: reconcile what the events of the burst touched. Before the
 * first etcd read (etcd slow or away) only the local tree is known: just the services it
 * touched are reconciled, so nothing etcd configured is deleted meanwhile (fail static); the
 * full pass after the read settles everything. */
static void pass_dirty(ipvsd *d)
{
    /* full_end re-arms the timer; the end of an etcd read being applied starts a full pass
     * (so no service is pushed half read). */
    if (reconcile_full_running(d->rec) || ipvsd_etcd_applying(d))
        return;
    if (d->loaded && reconcile_needs_full(d->rec)) {
        ipvsd_pass_full(d, "mirror-out-of-date");
        return;
    }
    pass_touched(d);
    if (d->loaded && reconcile_needs_full(d->rec))
        ipvsd_timer(d->coalesce_fd, 100);
}

/* Dry-run kernel on a host with IPVS: dumps come from the real kernel, ops are only logged
 * (as if applied). Without IPVS, the dry run uses an in-memory table instead (ipvs_fake),
 * so that its passes see what they would have done. */
static int dry_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    (void)self, (void)err;
    for (size_t i = 0; i < n; i++)
        ops[i].outcome = IPVS_APPLIED;
    return 0;
}

/* --ipvs-sysctls: write the IPVS sysctls of graceful removal, each logged (a dry run only
 * says what it would write). A failure is logged and the daemon runs on. */
static void set_sysctls(ipvsd *d)
{
    size_t n = 0;
    const struct ipvs_sysctl *s = ipvs_sysctls(&n);
    for (size_t i = 0; i < n; i++) {
        struct ipvs_err err = {0};
        if (d->o->dry_run)
            log_info("msg=\"sysctl (dry-run)\" name=net.ipv4.vs.%s value=%s", s[i].name, s[i].value);
        else if (ipvs_sysctl_write(&s[i], &err) < 0)
            log_error("msg=\"cannot set sysctl\" name=net.ipv4.vs.%s error=\"%s\"", s[i].name, err.msg);
        else
            log_info("msg=\"sysctl set\" name=net.ipv4.vs.%s value=%s", s[i].name, s[i].value);
    }
}

/* Open the kernel side (or the dry-run stand-in) and the reconciler. 0 or -1 (logged). */
static int setup_kernel(ipvsd *d)
{
    struct ipvs_err ierr = {0};
    int rc = ipvs_conn_new(&d->conn, &ierr);
    if (rc < 0 && !d->o->dry_run) {
        log_error("msg=\"cannot open IPVS\" error=\"%s\"", ierr.msg);
        return -1;
    }
    if (rc < 0)
        log_warn("msg=\"dry-run without the kernel table\" error=\"%s\"", ierr.msg);
    if (d->o->dry_run && d->conn) {
        d->kernel = ipvs_conn_iface(d->conn);
        d->kernel.apply = dry_apply;
    } else if (d->o->dry_run) {
        if (!(d->dry_fake = ipvs_fake_new())) {
            log_error("msg=\"cannot start\" error=\"out of memory\"");
            return -1;
        }
        d->kernel = ipvs_fake_iface(d->dry_fake);
    } else
        d->kernel = ipvs_conn_iface(d->conn);
    char err[512] = "";
    rc = reconcile_new(&d->kernel, d->o->dry_run ? NULL : d->o->state_path, &d->rec, err,
                       sizeof err);
    if (rc < 0) {
        log_error("msg=\"cannot start the reconciler\" error=\"%s\"", err);
        return -1;
    }
    if (rc == RECONCILE_STATE_SET_ASIDE)
        log_error("msg=\"damaged state file set aside\" path=%s error=\"%s\"",
                  d->o->state_path, err);
    reconcile_set_drain(d->rec, d->o->drain_ms, NULL);
    if (d->o->ipvs_sysctls)
        set_sysctls(d);
    if (d->o->flush) {
        reconcile_result res = result_for(d);
        int64_t t0 = clock_now_ms();
        reconcile_flush(d->rec, &res);
        log_result(d, 0, "flush", "all", &res, clock_now_ms() - t0, "");
        ipvsd_metrics_pass(d, "flush", &res, clock_now_ms() - t0);
    }
    return 0;
}

static int epoll_add(ipvsd *d, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return fd < 0 ? 0 : epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Signals, timers and epoll. 0 or -1 (logged). */
static int setup_loop(ipvsd *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    d->ep = epoll_create1(EPOLL_CLOEXEC);
    d->coalesce_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    d->resync_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    d->retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    d->local_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    d->drain_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (d->sig_fd < 0 || d->ep < 0 || d->coalesce_fd < 0 || d->resync_fd < 0 ||
        d->retry_fd < 0 || d->local_fd < 0 || d->drain_fd < 0 || epoll_add(d, d->sig_fd) ||
        epoll_add(d, d->coalesce_fd) || epoll_add(d, d->resync_fd) || epoll_add(d, d->retry_fd) ||
        epoll_add(d, d->local_fd) || epoll_add(d, d->drain_fd)) {
        log_error("msg=\"cannot set up the event loop\" error=\"%s\"", strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(ipvsd *d)
{
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            log_info("msg=\"SIGHUP: full resync\"");
            if (d->loaded)
                ipvsd_pass_full(d, "sighup");
        } else {
            log_info("msg=\"exiting, the kernel table stays as it is\" signal=%s",
                     si.ssi_signo == SIGTERM ? "TERM" : "INT");
            d->stop = true;
        }
    }
}

static bool timer_fired(int fd)
{
    uint64_t n;
    return read(fd, &n, sizeof n) == sizeof n;
}

/* Dispatch one ready file descriptor. */
static void on_ready(ipvsd *d, int fd)
{
    if (fd == d->sig_fd) {
        on_signal(d);
    } else if (fd == d->coalesce_fd) {
        if (timer_fired(fd))
            pass_dirty(d);
    } else if (fd == d->resync_fd) {
        if (timer_fired(fd) && d->loaded)
            ipvsd_pass_full(d, "resync");
        ipvsd_timer(d->resync_fd, d->o->resync_ms);
    } else if (fd == d->retry_fd) {
        if (timer_fired(fd))
            ipvsd_etcd_retry(d);
    } else if (fd == d->drain_fd) {
        if (timer_fired(fd))
            drain_check(d);
    } else if (fd == d->local_fd) {
        if (timer_fired(fd))
            ipvsd_local_rescan(d);
    } else if (fd == d->inotify_fd) {
        ipvsd_local_changed(d);
    } else if (d->worker && fd == ipvsd_worker_fd(d->worker)) {
        ipvsd_etcd_worker_ready(d);
    } else if (d->watch && fd == etcd_watch_fd(d->watch)) {
        ipvsd_etcd_watch_ready(d);
    } else if (d->lease && fd == etcd_lease_fd(d->lease)) {
        ipvsd_lease_ready(d);
    } else {
        ipvsd_metrics_fd_ready(d, fd);
    }
}

/* Run one slice of the work done between events: the etcd read being applied first (a full
 * pass waits for it, so it never pushes a half-applied config), else the full pass. */
static void run_slice(ipvsd *d)
{
    if (ipvsd_etcd_applying(d))
        ipvsd_etcd_read_slice(d);
    else if (reconcile_full_running(d->rec))
        full_slice(d);
}

static void teardown(ipvsd *d)
{
    ipvsd_metrics_stop(d);
    ipvsd_etcd_stop(d);
    reconcile_free(d->rec);
    ipvs_conn_free(d->conn);
    ipvs_fake_free(d->dry_fake);
    config_store_free(d->cfg);
    config_strs_clear(&d->full_names);
    nameset_clear(&d->dirty);
    nameset_clear(&d->full_dirty);
    nameset_clear(&d->noisy);
    ipvsd_opfail_clear(d);
    nameset_clear(&d->warned);
    int fds[] = {d->ep, d->sig_fd, d->coalesce_fd, d->resync_fd, d->retry_fd, d->local_fd,
                 d->inotify_fd, d->drain_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int ipvsd_watch_fd(ipvsd *d, int fd)
{
    return epoll_add(d, fd);
}

int ipvsd_run(const ipvsd_options *opts)
{
    ipvsd d = {.o = opts, .ep = -1, .sig_fd = -1, .coalesce_fd = -1, .resync_fd = -1,
               .retry_fd = -1, .inotify_fd = -1, .local_fd = -1, .drain_fd = -1};
    backoff_init(&d.retry, 200, 10000);
    /* One malloc arena for every thread: the etcd worker's reads (the whole prefix at once)
     * would otherwise grow an arena of their own next to the loop's, and its freed pages are
     * not reused by the loop's table (+8 MB of peak RSS at 110k keys). The threads allocate
     * little besides, so there is no contention to speak of. */
    mallopt(M_ARENA_MAX, 1);
    int status = 1;
    etcd_error eerr = {0};
    etcd_client *etcd = NULL;
    d.cfg = config_store_new(&opts->config);
    if (!d.cfg || setup_loop(&d) < 0 || setup_kernel(&d) < 0 || ipvsd_metrics_start(&d) < 0)
        goto out;
    log_info("msg=\"clusterf-ipvs started\" prefix=%s dry_run=%s resync_ms=%lld drain_ms=%lld",
             opts->prefix, opts->dry_run ? "true" : "false", (long long)opts->resync_ms,
             (long long)opts->drain_ms);
    if (etcd_client_new(&opts->etcd, &etcd, &eerr) < 0) {
        log_error("msg=\"bad etcd settings\" error=\"%s\"", eerr.msg);
        goto out;
    }
    if (ipvsd_etcd_start(&d, etcd) < 0)
        goto out;
    if (opts->config_path && ipvsd_local_init(&d) < 0)
        goto out;
    ipvsd_etcd_load(&d);
    ipvsd_advertise(&d);
    ipvsd_timer(d.resync_fd, opts->resync_ms);
    while (!d.stop) {
        struct epoll_event evs[16];
        /* An etcd read's apply and a full pass run in slices between the events: poll
         * while one is running. */
        bool busy = ipvsd_etcd_applying(&d) || reconcile_full_running(d.rec);
        int n = epoll_wait(d.ep, evs, 16, busy ? 0 : -1);
        if (n < 0 && errno != EINTR) {
            log_error("msg=\"epoll failed\" error=\"%s\"", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n && !d.stop; i++)
            on_ready(&d, evs[i].data.fd);
        if (busy && !d.stop)
            run_slice(&d);
    }
    status = 0;
out:
    teardown(&d);
    return status;
}
