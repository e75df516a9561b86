/* ipvsd.c -- the clusterf-ipvs event loop: signals, timers, coalesced incremental passes,
 * periodic full passes, and the logging of every op the kernel was sent. */
#include "ipvsd/ipvsd_int.h"

#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

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
    d->all_dirty |= res->all_services;
    for (size_t i = 0; i < res->services.n; i++)
        nameset_add(&d->dirty, res->services.v[i]);
    struct itimerspec cur;
    timerfd_gettime(d->coalesce_fd, &cur);
    if (d->loaded && cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0)
        ipvsd_timer(d->coalesce_fd, d->o->coalesce_ms > 0 ? d->o->coalesce_ms : 1);
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

/* One line per op sent, at info (errors at error), then a summary line for the pass. */
static void log_result(ipvsd *d, const char *pass, const char *scope, const reconcile_result *res)
{
    for (size_t i = 0; i < res->ops.n; i++) {
        const struct ipvs_op *op = &res->ops.ops[i];
        char svc[96], dst[96] = "", q1[128], q2[128];
        ipvs_service_str(&op->svc, svc, sizeof svc);
        bool is_dest = op->kind == IPVS_OP_ADD_DEST || op->kind == IPVS_OP_EDIT_DEST ||
                       op->kind == IPVS_OP_DEL_DEST;
        if (is_dest)
            ipvs_dest_str(&op->svc, &op->dest, dst, sizeof dst);
        char detail[160] = "";
        if (is_dest)
            snprintf(detail, sizeof detail, " dest=%s fwd=%s weight=%u", log_quote(q2, sizeof q2, dst),
                     ipvs_fwd_name(op->dest.fwd), op->dest.weight);
        else if (op->kind != IPVS_OP_DEL_SERVICE && op->kind != IPVS_OP_FLUSH)
            snprintf(detail, sizeof detail, " sched=%s flags=0x%x timeout=%u",
                     op->svc.sched[0] ? op->svc.sched : "wlc", op->svc.flags, op->svc.timeout);
        enum log_level lvl = op->outcome == IPVS_FAILED ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO;
        log_msg(lvl, "msg=\"%s\" op=%s service=%s%s result=%s%s%s%s",
                d->o->dry_run ? "ipvs op (dry-run)" : "ipvs op", ipvs_op_name(op->kind),
                log_quote(q1, sizeof q1, svc), detail, outcome_name(op->outcome),
                op->error ? " error=\"" : "", op->error ? strerror(-op->error) : "",
                op->error ? "\"" : "");
    }
    size_t changes = reconcile_result_changes(res);
    enum log_level lvl = res->failed || res->error[0] ? LOG_LEVEL_ERROR
                       : changes ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
    char q[400], qs[300];
    log_msg(lvl, "msg=\"reconciled\" pass=%s scope=%s services_added=%zu services_changed=%zu "
            "services_deleted=%zu dests_added=%zu dests_changed=%zu dests_deleted=%zu failed=%zu%s%s",
            pass, log_quote(qs, sizeof qs, scope), res->svc_added, res->svc_changed,
            res->svc_deleted, res->dest_added, res->dest_changed, res->dest_deleted, res->failed,
            res->error[0] ? " error=" : "", res->error[0] ? log_quote(q, sizeof q, res->error) : "");
}

void ipvsd_pass_full(ipvsd *d, const char *why)
{
    lb_table t;
    lb_table_init(&t);
    reconcile_result res = {0};
    if (lb_compute_all(d->cfg, &t) < 0) {
        log_error("msg=\"cannot compute the table\" error=\"out of memory\"");
        return;
    }
    log_lb_warnings(d, &t);
    reconcile_full(d->rec, &t, &res);
    log_result(d, "full", why, &res);
    if (strcmp(why, "resync") == 0 && reconcile_result_changes(&res))
        log_warn("msg=\"drift repaired\" changes=%zu", reconcile_result_changes(&res));
    reconcile_result_free(&res);
    lb_table_free(&t);
    d->all_dirty = false;
    nameset_clear(&d->dirty);
}

/* Recompute and reconcile one clusterf service from the mirror. */
static void pass_service(ipvsd *d, const char *name)
{
    lb_table t;
    lb_table_init(&t);
    reconcile_result res = {0};
    if (lb_compute_service(d->cfg, name, &t) < 0) {
        log_error("msg=\"cannot compute the table\" service=%s error=\"out of memory\"", name);
        return;
    }
    log_lb_warnings(d, &t);
    reconcile_service(d->rec, name, &t, &res);
    log_result(d, "incremental", name, &res);
    reconcile_result_free(&res);
    lb_table_free(&t);
}

/* The coalescing timer fired: reconcile what the events of the burst touched. */
static void pass_dirty(ipvsd *d)
{
    if (d->all_dirty || reconcile_needs_full(d->rec)) {
        ipvsd_pass_full(d, d->all_dirty ? "routes" : "mirror-out-of-date");
        return;
    }
    /* The store names both sides of a conflict as touched, so the loser of a conflict is
     * recomputed (and takes the key over) when the winner changes. */
    bytemap work = d->dirty;
    memset(&d->dirty, 0, sizeof d->dirty);
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&work, &pos, &e))
        pass_service(d, e->val);
    nameset_clear(&work);
    if (reconcile_needs_full(d->rec))
        ipvsd_timer(d->coalesce_fd, 100);
}

/* Dry-run kernel: dumps come from the real kernel when there is one, ops are only logged. */
static int dry_dump(void *self, struct ipvs_table **out, struct ipvs_err *err)
{
    ipvs_conn *c = self;
    if (c)
        return ipvs_dump(c, out, err);
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static int dry_apply(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err)
{
    (void)self, (void)err;
    for (size_t i = 0; i < n; i++)
        ops[i].outcome = IPVS_APPLIED;
    return 0;
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
    if (d->o->dry_run)
        d->kernel = (struct ipvs_iface){.self = d->conn, .dump = dry_dump, .apply = dry_apply};
    else
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
    if (d->o->flush) {
        reconcile_result res = {0};
        reconcile_flush(d->rec, &res);
        log_result(d, "flush", "all", &res);
        reconcile_result_free(&res);
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
    if (d->sig_fd < 0 || d->ep < 0 || d->coalesce_fd < 0 || d->resync_fd < 0 ||
        d->retry_fd < 0 || d->local_fd < 0 || epoll_add(d, d->sig_fd) || epoll_add(d, d->coalesce_fd) ||
        epoll_add(d, d->resync_fd) || epoll_add(d, d->retry_fd) || epoll_add(d, d->local_fd)) {
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
        if (timer_fired(fd) && d->loaded)
            pass_dirty(d);
    } else if (fd == d->resync_fd) {
        if (timer_fired(fd) && d->loaded)
            ipvsd_pass_full(d, "resync");
        ipvsd_timer(d->resync_fd, d->o->resync_ms);
    } else if (fd == d->retry_fd) {
        if (timer_fired(fd)) {
            if (!d->loaded)
                ipvsd_etcd_load(d);
            if (d->o->advertise_name && !d->advertised)
                ipvsd_advertise(d);
        }
    } else if (fd == d->local_fd) {
        if (timer_fired(fd))
            ipvsd_local_rescan(d);
    } else if (fd == d->inotify_fd) {
        ipvsd_local_changed(d);
    } else if (d->watch && fd == etcd_watch_fd(d->watch)) {
        ipvsd_etcd_watch_ready(d);
    } else if (d->lease && fd == etcd_lease_fd(d->lease)) {
        ipvsd_lease_ready(d);
    }
}

static void teardown(ipvsd *d)
{
    etcd_watch_free(d->watch);
    etcd_lease_free(d->lease);
    etcd_client_free(d->etcd);
    reconcile_free(d->rec);
    ipvs_conn_free(d->conn);
    config_store_free(d->cfg);
    nameset_clear(&d->dirty);
    nameset_clear(&d->warned);
    int fds[] = {d->ep, d->sig_fd, d->coalesce_fd, d->resync_fd, d->retry_fd, d->local_fd, d->inotify_fd};
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
               .retry_fd = -1, .inotify_fd = -1, .local_fd = -1};
    backoff_init(&d.retry, 200, 10000);
    int status = 1;
    etcd_error eerr = {0};
    d.cfg = config_store_new(&opts->config);
    if (!d.cfg || setup_loop(&d) < 0 || setup_kernel(&d) < 0)
        goto out;
    if (etcd_client_new(&opts->etcd, &d.etcd, &eerr) < 0) {
        log_error("msg=\"bad etcd settings\" error=\"%s\"", eerr.msg);
        goto out;
    }
    if (opts->config_path && ipvsd_local_init(&d) < 0)
        goto out;
    ipvsd_etcd_load(&d);
    if (opts->advertise_name)
        ipvsd_advertise(&d);
    ipvsd_timer(d.resync_fd, opts->resync_ms);
    while (!d.stop) {
        struct epoll_event evs[16];
        int n = epoll_wait(d.ep, evs, 16, -1);
        if (n < 0 && errno != EINTR) {
            log_error("msg=\"epoll failed\" error=\"%s\"", strerror(errno));
            goto out;
        }
        for (int i = 0; i < n && !d.stop; i++)
            on_ready(&d, evs[i].data.fd);
    }
    status = 0;
out:
    teardown(&d);
    return status;
}
