/* client.c -- etcd_client: endpoints and channels, failover, errors, the client thread.
 *
 * One gRPC channel per endpoint; every call and stream goes to the "current" endpoint, and a
 * connection-level failure moves the current endpoint to the next one. The client thread owns
 * the NEXT completion queue on which the watch and lease keep-alive streams run. */
#include "etcd/internal.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The longest the client thread sleeps with nothing due: other threads wake it when they ask
 * something of it (etcd_client_kick), and an idle watch's progress probe wakes it about this
 * often anyway (ETCD_PROBE_IDLE_MS). Waking every 100 ms to look cost an idle daemon 40 ms of
 * CPU a minute. */
#define CLIENT_IDLE_WAKE_MS 1000

static const char *code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *etcd_code_name(int code)
{
    if (code == ETCD_ERR_LOCAL)
        return "LOCAL";
    if (code >= 0 && (size_t)code < sizeof code_names / sizeof code_names[0])
        return code_names[code];
    return "UNKNOWN";
}

void etcd_err_set(etcd_error *err, int code, const char *endpoint, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    snprintf(err->endpoint, sizeof err->endpoint, "%s", endpoint ? endpoint : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

int etcd_errno_of(int code)
{
    switch (code) {
    case GRPC_STATUS_OK: return 0;
    case GRPC_STATUS_CANCELLED: return -ECANCELED;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return -ETIMEDOUT;
    case GRPC_STATUS_UNAVAILABLE: return -EAGAIN;
    case GRPC_STATUS_UNAUTHENTICATED: return -EACCES;
    case GRPC_STATUS_PERMISSION_DENIED: return -EPERM;
    case GRPC_STATUS_INVALID_ARGUMENT: return -EINVAL;
    case GRPC_STATUS_FAILED_PRECONDITION: return -EINVAL;
    case GRPC_STATUS_NOT_FOUND: return -ENOENT;
    case GRPC_STATUS_OUT_OF_RANGE: return -ERANGE;
    case GRPC_STATUS_RESOURCE_EXHAUSTED: return -ENOSPC;
    default: return -EIO;
    }
}

/* Read a whole (small) file into a NUL-terminated buffer. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

/* "http://h:p" / "https://h:p[/]" -> target "h:p"; sets *tls. Default port 2379. */
static int parse_url(const char *url, char **target, bool *tls)
{
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) { rest = url + 7; *tls = false; }
    else if (strncmp(url, "https://", 8) == 0) { rest = url + 8; *tls = true; }
    else return -EINVAL;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n > 255)
        return -EINVAL;
    const char *colon = memrchr(rest, ':', n), *bracket = memchr(rest, ']', n);
    bool has_port = colon && (!bracket || colon > bracket);  /* "[::1]" has none */
    *target = malloc(n + 6);
    if (!*target)
        return -ENOMEM;
    snprintf(*target, n + 6, "%.*s%s", (int)n, rest, has_port ? "" : ":2379");
    return 0;
}

#define N_CHANNEL_ARGS 10

/* The channel settings; args must have room for N_CHANNEL_ARGS. */
static grpc_channel_args channel_args(grpc_arg *args, size_t max_recv)
{
    grpc_arg a[N_CHANNEL_ARGS] = {
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = (int)max_recv}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = -1}},
        /* HTTP/2 pings only as a backstop (a dead peer behind a silent network): etcd
         * refuses pings more often than every 5 s; a hung member is found by the streams'
         * answer deadlines (stream.c) long before this */
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = 10000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 0}},
        {GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
        /* reconnect soon after a member comes back (our own backoff spaces the calls); the
         * "min" value is also gRPC's connect timeout, so it must allow a slow handshake */
        {GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = 200}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, {.integer = 5000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = 2000}},
        {GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_RETRIES, {.integer = 0}},
    };
    memcpy(args, a, sizeof a);
    return (grpc_channel_args){N_CHANNEL_ARGS, args};
}

/* TLS credentials from the config's files (NULL file = system roots / no client cert). */
static grpc_channel_credentials *tls_creds(const etcd_config *cfg, etcd_error *err)
{
    char *ca = NULL, *cert = NULL, *key = NULL;
    grpc_channel_credentials *creds = NULL;
    if (cfg->ca_file && !(ca = read_file(cfg->ca_file))) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "cannot read CA file %s: %s", cfg->ca_file, strerror(errno));
        goto out;
    }
    if ((cfg->cert_file != NULL) != (cfg->key_file != NULL)) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "client certificate and key must be given together");
        goto out;
    }
    if (cfg->cert_file && (!(cert = read_file(cfg->cert_file)) || !(key = read_file(cfg->key_file)))) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "cannot read client certificate %s or key %s: %s",
                     cfg->cert_file, cfg->key_file, strerror(errno));
        goto out;
    }
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    if (!creds)
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "cannot create TLS credentials");
out:
    free(ca);
    free(cert);
    free(key);
    return creds;
}

/* Split cfg->endpoints and create one channel each. */
static int make_channels(etcd_client *c, const etcd_config *cfg, etcd_error *err)
{
    const char *list = cfg->endpoints && *cfg->endpoints ? cfg->endpoints : "http://127.0.0.1:2379";
    char *dup = strdup(list), *save = NULL;
    grpc_channel_credentials *insecure = NULL, *secure = NULL;
    grpc_arg args[N_CHANNEL_ARGS];
    size_t max_recv = cfg->max_recv_bytes ? cfg->max_recv_bytes : ETCD_MAX_RECV_BYTES;
    grpc_channel_args ca = channel_args(args, max_recv < INT_MAX ? max_recv : INT_MAX);
    int rc = -ENOMEM;
    if (!dup || !(c->eps = calloc(strlen(list) / 8 + 2, sizeof *c->eps)))
        goto out;
    for (char *tok = strtok_r(dup, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        struct etcd_endpoint *ep = &c->eps[c->n_eps];
        bool tls = false;
        if ((rc = parse_url(tok, &ep->target, &tls)) < 0) {
            etcd_err_set(err, ETCD_ERR_LOCAL, tok, "bad endpoint URL \"%s\" (want http:// or https://host:port)", tok);
            goto out;
        }
        c->n_eps++;
        rc = -ENOMEM;
        if (!(ep->url = strdup(tok)))
            goto out;
        if (tls && !secure && !(secure = tls_creds(cfg, err))) {
            rc = -EINVAL;
            goto out;
        }
        if (!tls && !insecure)
            insecure = grpc_insecure_credentials_create();
        ep->ch = grpc_channel_create(ep->target, tls ? secure : insecure, &ca);
    }
    rc = 0;
    if (c->n_eps == 0) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "no etcd endpoints in \"%s\"", list);
        rc = -EINVAL;
    }
out:
    if (insecure)
        grpc_channel_credentials_release(insecure);
    if (secure)
        grpc_channel_credentials_release(secure);
    free(dup);
    return rc;
}

/* Tick every watch and lease (outside the lock: only this thread unlinks, and new objects
 * are pushed at the head); returns the earliest time one wants to run again. */
static int64_t tick_all(etcd_client *c, int64_t now)
{
    int64_t due = INT64_MAX;
    pthread_mutex_lock(&c->mu);
    struct etcd_watch *w = c->watches;
    struct etcd_lease *l = c->leases;
    pthread_mutex_unlock(&c->mu);
    for (; w; w = w->next) {
        int64_t d = etcd_watch_tick(w, now);
        due = d < due ? d : due;
    }
    for (; l; l = l->next) {
        int64_t d = etcd_lease_tick(l, now);
        due = d < due ? d : due;
    }
    int64_t d = etcd_auth_tick(c, now);  /* after the streams: they may have asked for a token */
    return d < due ? d : due;
}

/* Unlink every watch/lease whose free has completed and wake the waiters. Returns true when
 * the client is stopping and nothing is left. */
static bool unlink_done(etcd_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (struct etcd_watch **pw = &c->watches; *pw;) {
        struct etcd_watch *w = *pw;
        if (c->stopping)
            w->free_req = true;
        if (etcd_watch_done(w)) {
            *pw = w->next;
            w->next = NULL;
            w->detached = true;
        } else {
            pw = &w->next;
        }
    }
    for (struct etcd_lease **pl = &c->leases; *pl;) {
        struct etcd_lease *l = *pl;
        if (c->stopping)
            l->free_req = true;
        if (etcd_lease_done(l)) {
            *pl = l->next;
            l->next = NULL;
            l->detached = true;
        } else {
            pl = &l->next;
        }
    }
    pthread_cond_broadcast(&c->cond);
    bool stop = c->stopping && !c->watches && !c->leases && !etcd_auth_busy(c) && !c->kick.call;
    pthread_mutex_unlock(&c->mu);
    return stop;
}

void etcd_client_kick_locked(etcd_client *c)
{
    struct etcd_kick *k = &c->kick;
    if (k->call || !c->thread_started)
        return;
    k->call = grpc_channel_create_call(c->eps[c->cur].ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                       grpc_slice_from_static_string("/clusterf.Kick/Kick"),
                                       NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (!k->call)
        return;
    grpc_metadata_array_init(&k->trail_md);
    k->details = grpc_empty_slice();
    k->status = GRPC_STATUS_UNKNOWN;
    k->tag = (struct etcd_stream_tag){NULL, ETCD_TAG_KICK};
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &k->trail_md;
    op.data.recv_status_on_client.status = &k->status;
    op.data.recv_status_on_client.status_details = &k->details;
    if (grpc_call_start_batch(k->call, &op, 1, &k->tag, NULL) != GRPC_CALL_OK) {
        /* nothing will complete: the thread looks at its next timer instead */
        log_debug("msg=\"etcd client wake-up not started\"");
        grpc_metadata_array_destroy(&k->trail_md);
        grpc_call_unref(k->call);
        k->call = NULL;
        return;
    }
    grpc_call_cancel(k->call, NULL);
}

void etcd_client_kick(etcd_client *c)
{
    pthread_mutex_lock(&c->mu);
    etcd_client_kick_locked(c);
    pthread_mutex_unlock(&c->mu);
}

/* Client thread: the wake-up call ended; release it (under c->mu, so a new one may start
 * only after, and the loop's next tick sees whatever its sender changed). */
static void kick_done(etcd_client *c)
{
    struct etcd_kick *k = &c->kick;
    pthread_mutex_lock(&c->mu);
    grpc_metadata_array_destroy(&k->trail_md);
    grpc_slice_unref(k->details);
    grpc_call_unref(k->call);
    k->call = NULL;
    pthread_mutex_unlock(&c->mu);
}

/* The client thread: run timers, then wait for the next completion (a stream's, the auth
 * call's, or a wake-up from another thread) or the next timer. */
static void *client_thread(void *arg)
{
    etcd_client *c = arg;
    for (;;) {
        int64_t now = clock_now_ms();
        int64_t due = tick_all(c, now);
        if (unlink_done(c))
            break;
        int64_t wait = due - now;
        wait = wait < 0 ? 0 : wait > CLIENT_IDLE_WAKE_MS ? CLIENT_IDLE_WAKE_MS : wait;
        gpr_timespec dl = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(wait, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(c->cq, dl, NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct etcd_stream_tag *t = ev.tag;
        if (t->kind == ETCD_TAG_KICK)
            kick_done(c);
        else if (t->kind == ETCD_TAG_AUTH)
            etcd_auth_complete(c, ev.success != 0);
        else
            etcd_stream_complete(t, ev.success != 0);
    }
    return NULL;
}

void etcd_client_detach(etcd_client *c, bool *free_req, bool *detached)
{
    pthread_mutex_lock(&c->mu);
    *free_req = true;
    etcd_client_kick_locked(c);
    while (!*detached)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

size_t etcd_client_pick(etcd_client *c, char **token, uint64_t *token_gen)
{
    pthread_mutex_lock(&c->mu);
    size_t ep = c->cur;
    if (token)
        *token = c->token ? strdup(c->token) : NULL;
    if (token_gen)
        *token_gen = c->token_gen;
    pthread_mutex_unlock(&c->mu);
    return ep;
}

void etcd_client_rotate(etcd_client *c, size_t from)
{
    pthread_mutex_lock(&c->mu);
    if (c->cur == from && c->n_eps > 1)
        c->cur = (from + 1) % c->n_eps;  /* callers see it in etcd_error.endpoint */
    pthread_mutex_unlock(&c->mu);
}

void etcd_client_mark_hung(etcd_client *c, size_t ep, int64_t now)
{
    pthread_mutex_lock(&c->mu);
    c->eps[ep].hung_at = now;
    pthread_mutex_unlock(&c->mu);
    etcd_client_rotate(c, ep);
}

int64_t etcd_client_hung_at(etcd_client *c, size_t ep)
{
    pthread_mutex_lock(&c->mu);
    int64_t at = c->eps[ep].hung_at;
    pthread_mutex_unlock(&c->mu);
    return at;
}

int etcd_client_endpoint(etcd_client *c, char *buf, size_t size)
{
    size_t ep = etcd_client_pick(c, NULL, NULL);
    if (buf && size)
        snprintf(buf, size, "%s", c->eps[ep].url);
    return (int)ep;
}

/* gRPC's own log lines (handshake failures, ...) go to our log at debug: every failure
 * that matters reaches the caller as an etcd_error, and reconnects are logged at info. */
static void grpc_log(gpr_log_func_args *a)
{
    char q[512];
    log_debug("msg=\"grpc\" src=%s:%d text=%s", a->file, a->line, log_quote(q, sizeof q, a->message));
}

static pthread_once_t grpc_log_once = PTHREAD_ONCE_INIT;

static void grpc_log_setup(void)
{
    gpr_set_log_function(grpc_log);
}

int etcd_client_new(const etcd_config *cfg, etcd_client **out, etcd_error *err)
{
    pthread_once(&grpc_log_once, grpc_log_setup);
    *out = NULL;
    if ((cfg->username != NULL) != (cfg->password != NULL)) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "etcd username and password must be given together");
        return -EINVAL;
    }
    etcd_client *c = calloc(1, sizeof *c);
    if (!c) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        return -ENOMEM;
    }
    grpc_init();
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);  /* etcd_auth_wait's deadlines */
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    backoff_init(&c->auth.bo, 100, 2000);
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    c->cq = grpc_completion_queue_create_for_next(NULL);
    int rc = make_channels(c, cfg, err);
    if (rc == 0 && cfg->username && (!(c->username = strdup(cfg->username)) ||
                                     !(c->password = strdup(cfg->password))))
        rc = -ENOMEM;
    if (rc == 0 && pthread_create(&c->thread, NULL, client_thread, c) != 0)
        rc = -EAGAIN;
    if (rc < 0) {
        if (err && err->msg[0] == '\0')
            etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "%s", strerror(-rc));
        etcd_client_free(c);
        return rc;
    }
    c->thread_started = true;
    *out = c;
    return 0;
}

void etcd_client_free(etcd_client *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        etcd_client_kick_locked(c);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < c->n_eps; i++) {
        if (c->eps[i].ch)
            grpc_channel_destroy(c->eps[i].ch);
        free(c->eps[i].url);
        free(c->eps[i].target);
    }
    free(c->eps);
    grpc_completion_queue_shutdown(c->cq);
    while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
           != GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(c->cq);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c->token);
    free(c->username);
    free(c->password);
    free(c);
    grpc_shutdown();
}
