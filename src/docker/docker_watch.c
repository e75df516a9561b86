/* docker_watch.c -- the Docker half of clusterf-docker: keep the desired backends of this host
 * in step with dockerd and tell a docker_sink (the etcd writer) what to put and delete.
 *
 * Level-triggered: every (re)connect, OVERFLOW and resync re-lists everything; an event only
 * names a container to inspect again. Reconnects use common/timeutil.h's jittered backoff on a
 * timerfd. The caller sees one fd (an epoll set holding the events eventfd and two timerfds).
 * The container table is a plain array: a Docker host runs hundreds of containers, not more. */
#include "common/timeutil.h"
#include "docker/docker.h"
#include "docker/docker_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

typedef struct cont {
    char id[72];
    docker_backends *b;           /* what was last told to the sink */
    char *warn_key;               /* its warnings joined, to report only changes */
} cont;

struct docker_watch {
    docker_sink sink;
    docker_backend_opts bopts;
    char *strs[5];                /* owned copies behind bopts' strings */
    char label_filter[256];
    docker_client *client;
    docker_events *events;
    bool synced, relist_due;
    int epfd, retry_tfd, resync_tfd;
    backoff bo;
    int64_t resync_ms;
    cont *conts;
    size_t n_conts;
    char (*pending)[72];          /* containers to inspect in this dispatch */
    size_t n_pending;
    int err;
};

static void notice(docker_watch *w, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void notice(docker_watch *w, bool error, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    if (!w->sink.notice)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->sink.notice(w->sink.ctx, error, msg);
}

/* Arm a timerfd to fire once after ms (0: at once). */
static void arm(int tfd, int64_t ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000 + (ms == 0);
    timerfd_settime(tfd, 0, &its, NULL);
}

static void disarm(int tfd)
{
    struct itimerspec its = {0};
    timerfd_settime(tfd, 0, &its, NULL);
}

static bool expired(int tfd)
{
    uint64_t n;
    return read(tfd, &n, sizeof(n)) == sizeof(n);
}

static int epoll_add(int epfd, int fd)
{
    struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static const docker_backend *find_backend(const docker_backends *b, const docker_backend *x)
{
    for (size_t i = 0; b && i < b->n; i++)
        if (strcmp(b->v[i].service, x->service) == 0 && strcmp(b->v[i].name, x->name) == 0)
            return &b->v[i];
    return NULL;
}

/* Tell the sink the difference between old and new (either may be NULL). */
static void apply_diff(docker_watch *w, const docker_backends *old, const docker_backends *new)
{
    for (size_t i = 0; new && i < new->n; i++) {
        const docker_backend *o = find_backend(old, &new->v[i]);
        if ((!o || strcmp(o->json, new->v[i].json) != 0) && w->sink.put)
            w->sink.put(w->sink.ctx, &new->v[i]);
    }
    for (size_t i = 0; old && i < old->n; i++)
        if (!find_backend(new, &old->v[i]) && w->sink.del)
            w->sink.del(w->sink.ctx, old->v[i].service, old->v[i].name);
}

static cont *find_cont(docker_watch *w, const char *id)
{
    for (size_t i = 0; i < w->n_conts; i++)
        if (strcmp(w->conts[i].id, id) == 0)
            return &w->conts[i];
    return NULL;
}

static void remove_cont(docker_watch *w, cont *c)
{
    apply_diff(w, c->b, NULL);
    docker_backends_free(c->b);
    free(c->warn_key);
    *c = w->conts[--w->n_conts];
}

/* Report the warnings of b when they differ from last time; returns the new key. */
static char *report_warnings(docker_watch *w, const docker_backends *b, const char *old_key)
{
    size_t len = 1;
    for (size_t i = 0; i < b->n_warnings; i++)
        len += strlen(b->warnings[i]) + 1;
    char *key = calloc(1, len);
    if (!key)
        return NULL;
    for (size_t i = 0; i < b->n_warnings; i++)
        strcat(strcat(key, b->warnings[i]), "\n");
    if (!old_key || strcmp(old_key, key) != 0)
        for (size_t i = 0; i < b->n_warnings; i++)
            notice(w, false, "%s", b->warnings[i]);
    return key;
}

/* Store the new backends of container id (taking b), telling the sink what changed. */
static void set_cont(docker_watch *w, const char *id, docker_backends *b)
{
    cont *c = find_cont(w, id);
    char *key = report_warnings(w, b, c ? c->warn_key : NULL);
    apply_diff(w, c ? c->b : NULL, b);
    if (!c && (b->n > 0 || b->n_warnings > 0)) {
        cont *v = realloc(w->conts, (w->n_conts + 1) * sizeof(*v));
        if (!v) {
            w->err = -ENOMEM;
            goto drop;
        }
        w->conts = v;
        c = &v[w->n_conts++];
        memset(c, 0, sizeof(*c));
        snprintf(c->id, sizeof(c->id), "%s", id);
    }
    if (!c)
        goto drop;
    docker_backends_free(c->b);
    free(c->warn_key);
    c->b = b;
    c->warn_key = key;
    if (b->n == 0 && b->n_warnings == 0)
        remove_cont(w, c);
    return;
drop:
    docker_backends_free(b);
    free(key);
}

/* Inspect one container and update it. Returns 0, or the API error. */
static int update(docker_watch *w, const char *id)
{
    docker_container *ct = NULL;
    docker_backends *b = NULL;
    docker_error err = {0};
    int r = docker_inspect(w->client, id, &ct, &err);
    if (r == -ENOENT) {
        cont *c = find_cont(w, id);
        if (c)
            remove_cont(w, c);
        return 0;
    }
    if (r < 0) {
        notice(w, true, "docker inspect %s: %s", id, err.msg);
        return r;
    }
    r = docker_backends_from_container(ct, &w->bopts, &b);
    if (r == 0)
        set_cont(w, ct->id, b);
    else
        w->err = r;
    docker_container_free(ct);
    return 0;
}

static void disconnect(docker_watch *w, const char *why)
{
    int64_t delay = backoff_next(&w->bo);
    if (w->events) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, docker_events_fd(w->events), NULL);
        docker_events_free(w->events);
        w->events = NULL;
    }
    w->synced = w->relist_due = false;
    w->n_pending = 0;
    disarm(w->resync_tfd);
    arm(w->retry_tfd, delay);
    notice(w, true, "docker: %s; reconnecting in %lld ms", why, (long long)delay);
}

static void connect_events(docker_watch *w)
{
    docker_error err = {0};
    int r = docker_events_start(w->client, &w->events, &err);
    if (r == 0)
        r = epoll_add(w->epfd, docker_events_fd(w->events));
    if (r < 0) {
        char why[300];
        snprintf(why, sizeof(why), "events: %s", err.msg[0] ? err.msg : strerror(-r));
        disconnect(w, why);
    }
}

/* List the labelled containers, update each, forget the ones that are gone. */
static void relist(docker_watch *w)
{
    char **ids = NULL;
    docker_error err = {0};
    w->relist_due = false;
    w->n_pending = 0;
    if (docker_list_containers(w->client, w->label_filter, &ids, &err) < 0) {
        char why[300];
        snprintf(why, sizeof(why), "list: %s", err.msg);
        disconnect(w, why);
        return;
    }
    for (char **p = ids; *p; p++)
        update(w, *p);
    for (size_t i = 0; i < w->n_conts;) {
        bool listed = false;
        for (char **p = ids; *p && !listed; p++)
            listed = strcmp(*p, w->conts[i].id) == 0;
        if (listed)
            i++;
        else
            remove_cont(w, &w->conts[i]);
    }
    docker_ids_free(ids);
    w->synced = true;
    backoff_reset(&w->bo);
    if (w->resync_ms > 0)
        arm(w->resync_tfd, w->resync_ms);
}

static void add_pending(docker_watch *w, const char *id)
{
    for (size_t i = 0; i < w->n_pending; i++)
        if (strcmp(w->pending[i], id) == 0)
            return;
    char (*v)[72] = realloc(w->pending, (w->n_pending + 1) * sizeof(*v));
    if (!v) {   /* cannot remember it: a re-list covers it */
        w->relist_due = true;
        return;
    }
    w->pending = v;
    snprintf(v[w->n_pending++], sizeof(*v), "%s", id);
}

/* Take every queued event; END disconnects. */
static void drain_events(docker_watch *w)
{
    docker_event e;
    while (w->events && docker_events_next(w->events, &e) == 1) {
        switch (e.kind) {
        case DOCKER_EVENT_CONNECTED:
        case DOCKER_EVENT_OVERFLOW:
            w->relist_due = true;
            break;
        case DOCKER_EVENT_END:
            disconnect(w, e.error.msg);
            return;
        default:
            if (e.id[0])
                add_pending(w, e.id);
        }
    }
}

int docker_watch_dispatch(docker_watch *w)
{
    w->err = 0;
    if (expired(w->retry_tfd) && !w->events)
        connect_events(w);
    if (expired(w->resync_tfd) && w->synced)
        w->relist_due = true;
    drain_events(w);
    if (w->relist_due) {
        relist(w);
    } else if (w->synced) {
        for (size_t i = 0; i < w->n_pending && w->events; i++)
            update(w, w->pending[i]);
        w->n_pending = 0;
    }
    return w->err;
}

int docker_watch_fd(const docker_watch *w)
{
    return w->epfd;
}

bool docker_watch_synced(const docker_watch *w)
{
    return w->synced;
}

void docker_watch_foreach(const docker_watch *w, void (*fn)(void *ctx, const docker_backend *b),
                          void *ctx)
{
    for (size_t i = 0; i < w->n_conts; i++)
        for (size_t j = 0; j < w->conts[i].b->n; j++)
            fn(ctx, &w->conts[i].b->v[j]);
}

/* Copy the policy options so the caller's strings may go away. */
static int copy_opts(docker_watch *w, const docker_watch_opts *o)
{
    const docker_backend_opts *b = &o->backend;
    const char *src[5] = {b->label_prefix, b->network, b->host_ipv4, b->host_ipv6, b->hostname};
    for (int i = 0; i < 5; i++)
        if (src[i] && !(w->strs[i] = strdup(src[i])))
            return -ENOMEM;
    w->bopts = *b;
    w->bopts.label_prefix = w->strs[0];
    w->bopts.network = w->strs[1];
    w->bopts.host_ipv4 = w->strs[2];
    w->bopts.host_ipv6 = w->strs[3];
    w->bopts.hostname = w->strs[4];
    snprintf(w->label_filter, sizeof(w->label_filter), "%s.service",
             b->label_prefix ? b->label_prefix : DOCKER_DEFAULT_LABEL_PREFIX);
    return 0;
}

/* Check the policy options once, on an empty container, so bad flags fail here. */
static int check_opts(const docker_backend_opts *o, docker_error *err)
{
    docker_container empty = {.id = "0", .name = "", .hostname = "", .state_str = ""};
    docker_backends *b = NULL;
    int r = docker_backends_from_container(&empty, o, &b);
    docker_backends_free(b);
    if (r == -EINVAL)
        return docker_err_set(err, r, "docker: bad options (hostname, host addresses or label "
                              "prefix)");
    return r;
}

int docker_watch_new(const docker_watch_opts *opts, const docker_sink *sink, docker_watch **out,
                     docker_error *err)
{
    docker_watch *w = calloc(1, sizeof(*w));
    int r;

    *out = NULL;
    if (!w)
        return docker_err_set(err, -ENOMEM, "out of memory");
    w->epfd = w->retry_tfd = w->resync_tfd = -1;
    w->sink = *sink;
    w->resync_ms = opts->resync_ms;
    backoff_init(&w->bo, opts->backoff_min_ms > 0 ? opts->backoff_min_ms : 500,
                 opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 30000);
    r = check_opts(&opts->backend, err);
    if (r == 0 && copy_opts(w, opts) < 0)
        r = docker_err_set(err, -ENOMEM, "out of memory");
    if (r == 0)
        r = docker_client_new(opts->host, &w->client, err);
    if (r < 0)
        goto fail;
    docker_client_set_timeout(w->client, opts->request_timeout_ms);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->retry_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    w->resync_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->epfd < 0 || w->retry_tfd < 0 || w->resync_tfd < 0 ||
        (r = epoll_add(w->epfd, w->retry_tfd)) < 0 || (r = epoll_add(w->epfd, w->resync_tfd)) < 0) {
        r = docker_err_set(err, r < 0 ? r : -errno, "docker: epoll/timerfd: %s",
                           strerror(r < 0 ? -r : errno));
        goto fail;
    }
    arm(w->retry_tfd, 0);
    *out = w;
    return 0;
fail:
    docker_watch_free(w);
    return r;
}

void docker_watch_free(docker_watch *w)
{
    if (!w)
        return;
    docker_events_free(w->events);
    docker_client_free(w->client);
    for (size_t i = 0; i < w->n_conts; i++) {
        docker_backends_free(w->conts[i].b);
        free(w->conts[i].warn_key);
    }
    for (int i = 0; i < 5; i++)
        free(w->strs[i]);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->retry_tfd >= 0)
        close(w->retry_tfd);
    if (w->resync_tfd >= 0)
        close(w->resync_tfd);
    free(w->conts);
    free(w->pending);
    free(w);
}
