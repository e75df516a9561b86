/* dockerd.c -- the clusterf-docker daemon loop and its etcd writer (see dockerd.h).
 *
 * The writer keeps one entry per key: the value docker_watch wants (NULL = not wanted), the
 * value written under the current lease (NULL = not known to be there) and whether the key
 * may exist in etcd. converge() makes etcd match: put what is wanted but not written, delete
 * what may exist but is no longer wanted. Any etcd failure stops the pass and arms the retry
 * timer (jittered backoff); a lost lease forgets every written value, so the next pass re-puts
 * everything on the new lease. Entries are a plain array: a host has hundreds of keys at most. */
#include "dockerd/dockerd.h"
#include "dockerd/dockerd_int.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define KEY_MAX 1024

typedef struct entry {
    char *key;
    char *want;    /* desired value, NULL = delete */
    char *have;    /* value written under the current lease, NULL = none */
    bool maybe;    /* the key may exist in etcd (we wrote it and did not delete it) */
} entry;

typedef struct dockerd {
    const dockerd_opts *o;
    char prefix[256];
    docker_watch *watch;
    etcd_client *etcd;
    etcd_lease *lease;       /* NULL until granted */
    bool lease_lost;         /* lost and not yet regranted */
    bool dirty;              /* entries differ from etcd (or might) */
    bool retry_armed;
    bool failing;            /* the last etcd call failed: say when it works again */
    int epfd, sigfd, retry_tfd;
    backoff bo;
    entry *v;
    size_t n;
    size_t n_put, n_del;     /* since the last summary */
    bool stop;
    dockerd_metrics *metrics; /* NULL without --metrics-listen */
} dockerd;

int dockerd_backend_key(const char *prefix, const char *service, const char *name, char *buf,
                        size_t size)
{
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    int n = snprintf(buf, size, "%.*s/services/%s/backends/%s", (int)plen, prefix, service, name);
    return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

static entry *find_entry(dockerd *d, const char *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].key, key) == 0)
            return &d->v[i];
    return NULL;
}

/* The entry of key, created (not wanted, not written) when new; NULL when out of memory. */
static entry *get_entry(dockerd *d, const char *key)
{
    entry *e = find_entry(d, key);
    if (e)
        return e;
    entry *v = realloc(d->v, (d->n + 1) * sizeof(*v));
    if (!v)
        return NULL;
    d->v = v;
    e = &v[d->n];
    *e = (entry){.key = strdup(key)};
    if (!e->key)
        return NULL;
    d->n++;
    return e;
}

static void drop_entry(dockerd *d, size_t i)
{
    free(d->v[i].key);
    free(d->v[i].want);
    free(d->v[i].have);
    d->v[i] = d->v[--d->n];
}

static void arm_ms(int tfd, int64_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000 + (ms == 0);
    timerfd_settime(tfd, 0, &its, NULL);
}

static void retry_later(dockerd *d, const char *what, const etcd_error *err)
{
    int64_t ms = backoff_next(&d->bo);
    char q[400];
    log_warn("msg=\"etcd unavailable, retrying\" op=%s error=%s code=%s retry_in_ms=%lld", what,
             log_quote(q, sizeof(q), err->msg[0] ? err->msg : "unknown"), etcd_code_name(err->code),
             (long long)ms);
    arm_ms(d->retry_tfd, ms);
    dockerd_metrics_count(d->metrics, "clusterf_docker_etcd_errors_total", what);
    d->retry_armed = true;
    d->failing = true;
}

/* ---- docker_sink: remember what is wanted ---- */

static void sink_put(void *ctx, const docker_backend *b)
{
    dockerd *d = ctx;
    char key[KEY_MAX], q[600];
    dockerd_metrics_count(d->metrics, "clusterf_docker_events_total", "put");
    if (dockerd_backend_key(d->prefix, b->service, b->name, key, sizeof(key)) < 0) {
        log_error("msg=\"backend key too long\" service=%s name=%s", b->service, b->name);
        return;
    }
    if (d->o->dry_run) {
        log_info("msg=\"dry-run: would put\" key=%s value=%s", key,
                 log_quote(q, sizeof(q), b->json));
        return;
    }
    entry *e = get_entry(d, key);
    char *want = strdup(b->json);
    if (!e || !want) {
        free(want);
        log_error("msg=\"out of memory\" key=%s", key);
        return;
    }
    free(e->want);
    e->want = want;
    d->dirty = true;
}

static void sink_del(void *ctx, const char *service, const char *name)
{
    dockerd *d = ctx;
    char key[KEY_MAX];
    dockerd_metrics_count(d->metrics, "clusterf_docker_events_total", "delete");
    if (dockerd_backend_key(d->prefix, service, name, key, sizeof(key)) < 0)
        return;
    if (d->o->dry_run) {
        log_info("msg=\"dry-run: would delete\" key=%s", key);
        return;
    }
    entry *e = find_entry(d, key);
    if (e) {
        free(e->want);
        e->want = NULL;
        d->dirty = true;
    }
}

static void sink_notice(void *ctx, bool error, const char *msg)
{
    char q[700];
    dockerd *d = ctx;
    dockerd_metrics_count(d->metrics, "clusterf_docker_events_total",
                          error ? "docker_error" : "label_warning");
    if (error)
        log_warn("msg=\"docker\" error=%s", log_quote(q, sizeof(q), msg));
    else
        log_warn("msg=\"label warning\" warning=%s", log_quote(q, sizeof(q), msg));
}

/* ---- etcd side ---- */

static int add_fd(dockerd *d, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* A lease was granted but its loss could not be watched (epoll add failed with rc): revoke
 * it so no key is written under a lease nobody watches, forget it, and retry with backoff. */
static void drop_unwatched_lease(dockerd *d, int rc)
{
    etcd_error err = {0};
    char q[400];
    unsigned long long id = (unsigned long long)etcd_lease_id(d->lease);
    log_error("msg=\"cannot watch the etcd lease; revoking it\" lease=%llx error=\"%s\"", id,
              strerror(-rc));
    if (etcd_lease_revoke(d->lease, &err) < 0)
        log_error("msg=\"lease revoke failed; it expires with its TTL\" lease=%llx error=%s",
                  id, log_quote(q, sizeof(q), err.msg));
    else
        log_info("msg=\"lease revoked\" lease=%llx", id);
    etcd_lease_free(d->lease);
    d->lease = NULL;
    snprintf(err.msg, sizeof(err.msg), "epoll_ctl of the lease fd: %s", strerror(-rc));
    err.code = ETCD_ERR_LOCAL;
    retry_later(d, "lease-watch", &err);
}

/* A granted, live lease (granting or regranting one). Returns false after arming the retry. */
static bool ensure_lease(dockerd *d)
{
    etcd_error err = {0};
    int64_t ttl_s = (d->o->ttl_ms + 999) / 1000;
    if (!d->lease) {
        if (etcd_lease_new(d->etcd, ttl_s, &d->lease, &err) < 0) {
            retry_later(d, "lease-grant", &err);
            return false;
        }
        int rc = add_fd(d, etcd_lease_fd(d->lease));
        if (rc < 0) {
            drop_unwatched_lease(d, rc);
            return false;
        }
    } else if (d->lease_lost) {
        if (etcd_lease_regrant(d->lease, &err) < 0) {
            retry_later(d, "lease-regrant", &err);
            return false;
        }
    } else {
        return true;
    }
    d->lease_lost = false;
    log_info("msg=\"etcd lease granted\" lease=%llx ttl=%lld",
             (unsigned long long)etcd_lease_id(d->lease), (long long)etcd_lease_ttl(d->lease));
    return true;
}

/* Make etcd hold entry i as wanted. Returns 0, 1 when the entry was dropped, or -errno. */
static int converge_one(dockerd *d, size_t i, etcd_error *err)
{
    entry *e = &d->v[i];
    char q[600];
    if (e->want && (!e->have || strcmp(e->have, e->want) != 0)) {
        int64_t lease = etcd_lease_id(d->lease);
        int r = etcd_put(d->etcd, e->key, strlen(e->key), e->want, strlen(e->want), lease, NULL,
                         err);
        if (r < 0)
            return r;
        log_info("msg=\"put\" key=%s value=%s lease=%llx", e->key,
                 log_quote(q, sizeof(q), e->want), (unsigned long long)lease);
        free(e->have);
        e->have = strdup(e->want);   /* NULL on ENOMEM: it is put again, harmless */
        e->maybe = true;
        d->n_put++;
        dockerd_metrics_count(d->metrics, "clusterf_docker_etcd_writes_total", "put");
        return 0;
    }
    if (!e->want && e->maybe) {
        int r = etcd_delete(d->etcd, e->key, strlen(e->key), false, NULL, err);
        if (r < 0)
            return r;
        log_info("msg=\"delete\" key=%s", e->key);
        d->n_del++;
        dockerd_metrics_count(d->metrics, "clusterf_docker_etcd_writes_total", "delete");
        e->maybe = false;
    }
    if (!e->want) {
        drop_entry(d, i);
        return 1;
    }
    return 0;
}

/* One pass making etcd match the entries; on a failure arm the retry and stop. */
static void converge(dockerd *d)
{
    etcd_error err = {0};
    if (!ensure_lease(d))
        return;
    for (size_t i = 0; i < d->n;) {
        int r = converge_one(d, i, &err);
        if (r < 0) {
            retry_later(d, d->v[i].want ? "put" : "delete", &err);
            return;
        }
        if (r == 0)
            i++;
    }
    d->dirty = false;
    backoff_reset(&d->bo);
    if (d->failing) {
        char ep[128] = "";
        etcd_client_endpoint(d->etcd, ep, sizeof(ep));
        log_info("msg=\"etcd reachable again\" endpoint=%s", ep);
    }
    d->failing = false;
    if (d->n_put || d->n_del)
        log_info("msg=\"etcd in step\" backends=%zu put=%zu deleted=%zu", d->n, d->n_put,
                 d->n_del);
    d->n_put = d->n_del = 0;
}

static void on_lease(dockerd *d)
{
    if (!d->lease || !etcd_lease_lost(d->lease))
        return;
    etcd_error why = {0};
    etcd_lease_loss(d->lease, &why);
    log_warn("msg=\"etcd lease lost; re-granting and re-writing every key\" lease=%llx "
             "code=%s endpoint=%s reason=\"%s\"", (unsigned long long)etcd_lease_id(d->lease),
             etcd_code_name(why.code), why.endpoint[0] ? why.endpoint : "-", why.msg);
    d->lease_lost = true;
    dockerd_metrics_count(d->metrics, "clusterf_docker_lease_losses_total", NULL);
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].have);
        d->v[i].have = NULL;
    }
    d->dirty = true;
}

/* SIGTERM/SIGINT: revoke the lease so every key goes at once. */
static void shutdown_etcd(dockerd *d)
{
    etcd_error err = {0};
    if (!d->lease || d->lease_lost)
        return;
    int64_t id = etcd_lease_id(d->lease);
    if (etcd_lease_revoke(d->lease, &err) < 0) {
        char q[400];
        log_warn("msg=\"lease revoke failed; keys expire with the TTL\" lease=%llx error=%s",
                 (unsigned long long)id, log_quote(q, sizeof(q), err.msg));
        return;
    }
    log_info("msg=\"lease revoked; keys deleted\" lease=%llx keys=%zu", (unsigned long long)id,
             d->n);
}

/* ---- loop ---- */

static void count_desired(void *ctx, const docker_backend *b)
{
    (void)b;
    (*(size_t *)ctx)++;
}

/* The metrics timer fired: hand the metrics what the loop knows now. */
static void publish_metrics(dockerd *d)
{
    dockerd_state st = {.docker_synced = docker_watch_synced(d->watch),
                        .etcd_ok = !d->failing, .dry_run = d->o->dry_run};
    docker_watch_foreach(d->watch, count_desired, &st.backends_desired);
    for (size_t i = 0; i < d->n; i++)
        st.backends_written += d->v[i].have != NULL;
    st.lease_held = d->o->dry_run || (d->lease && !d->lease_lost);
    st.lease_ttl_s = d->lease && !d->lease_lost ? etcd_lease_ttl(d->lease) : 0;
    st.etcd_seen_ms = d->lease ? etcd_lease_last_answer_ms(d->lease) : 0;
    dockerd_metrics_publish(d->metrics, &st);
}

static void on_fd(dockerd *d, int fd)
{
    if (fd == d->sigfd) {
        struct signalfd_siginfo si;
        if (read(fd, &si, sizeof(si)) == sizeof(si)) {
            log_info("msg=\"signal; shutting down\" signal=%s", strsignal((int)si.ssi_signo));
            d->stop = true;
        }
    } else if (fd == d->retry_tfd) {
        uint64_t x;
        if (read(fd, &x, sizeof(x)) == sizeof(x))
            d->retry_armed = false;
    } else if (fd == docker_watch_fd(d->watch)) {
        if (docker_watch_dispatch(d->watch) < 0)
            log_error("msg=\"docker watch: out of memory\"");
    } else if (d->lease && fd == etcd_lease_fd(d->lease)) {
        on_lease(d);
    } else if (d->metrics && fd == dockerd_metrics_fd(d->metrics)) {
        publish_metrics(d);
    }
}

static int loop(dockerd *d)
{
    struct epoll_event evs[8];
    while (!d->stop) {
        int n = epoll_wait(d->epfd, evs, 8, -1);
        if (n < 0 && errno != EINTR)
            return -errno;
        for (int i = 0; i < n && !d->stop; i++)
            on_fd(d, evs[i].data.fd);
        if (!d->stop && d->dirty && !d->retry_armed && !d->o->dry_run)
            converge(d);
    }
    if (!d->o->dry_run)
        shutdown_etcd(d);
    return 0;
}

static int setup(dockerd *d, char *err, size_t errlen)
{
    sigset_t set;
    etcd_error eerr = {0};
    docker_error derr = {0};
    docker_sink sink = {.ctx = d, .put = sink_put, .del = sink_del, .notice = sink_notice};
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (d->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
        (d->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (d->retry_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "signalfd/epoll/timerfd: %s", strerror(errno));
        return -errno;
    }
    if (!d->o->dry_run && etcd_client_new(&d->o->etcd, &d->etcd, &eerr) < 0) {
        snprintf(err, errlen, "etcd: %s", eerr.msg);
        return -EINVAL;
    }
    int r = docker_watch_new(&d->o->watch, &sink, &d->watch, &derr);
    if (r < 0) {
        snprintf(err, errlen, "%s", derr.msg);
        return r;
    }
    if (d->o->metrics_listen &&
        (r = dockerd_metrics_new(d->o->metrics_listen, &d->metrics, err, errlen)) < 0)
        return r;
    const int fds[4] = {d->sigfd, d->retry_tfd, docker_watch_fd(d->watch),
                        d->metrics ? dockerd_metrics_fd(d->metrics) : -1};
    const char *names[4] = {"signalfd", "retry timer", "docker watch", "metrics timer"};
    for (int i = 0; i < 4 && fds[i] >= 0; i++)
        if ((r = add_fd(d, fds[i])) < 0) {
            snprintf(err, errlen, "cannot add the %s fd to epoll: %s", names[i], strerror(-r));
            return r;
        }
    return 0;
}

int dockerd_run(const dockerd_opts *o, char *err, size_t errlen)
{
    dockerd d = {.o = o, .epfd = -1, .sigfd = -1, .retry_tfd = -1};
    int r;
    snprintf(d.prefix, sizeof(d.prefix), "%s", o->etcd_prefix ? o->etcd_prefix : "/clusterf");
    /* Retries at most 2 s apart (jittered 1-2 s): after an etcd election (~2 s) the backends must
     * be back within seconds (the member-fault suite saw 6.4 s with a 15 s cap), and a fleet
     * retrying every 1-2 s is a light load on etcd. */
    backoff_init(&d.bo, 200, 2000);
    if (o->ttl_ms < 2000) {
        snprintf(err, errlen, "ttl %lld ms is below 2 s", (long long)o->ttl_ms);
        return -EINVAL;
    }
    r = setup(&d, err, errlen);
    if (r == 0) {
        log_info("msg=\"clusterf-docker started\" hostname=%s prefix=%s ttl_ms=%lld dry_run=%s",
                 o->watch.backend.hostname, d.prefix, (long long)o->ttl_ms,
                 o->dry_run ? "true" : "false");
        r = loop(&d);
        if (r < 0)
            snprintf(err, errlen, "epoll_wait: %s", strerror(-r));
    }
    dockerd_metrics_free(d.metrics);
    docker_watch_free(d.watch);
    etcd_lease_free(d.lease);
    etcd_client_free(d.etcd);
    while (d.n > 0)
        drop_entry(&d, 0);
    free(d.v);
    if (d.epfd >= 0)
        close(d.epfd);
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.retry_tfd >= 0)
        close(d.retry_tfd);
    return r;
}
