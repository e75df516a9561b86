/* metrics_server.c -- the HTTP side of metrics.h: libmicrohttpd on its own polling thread
 * serves /metrics (the last published text, copied under a mutex), /healthz (200 while the
 * process serves) and /readyz (200, or 503 with a one-line reason). It never touches the
 * loop's state: only what the loop published. */
#include "metrics/metrics.h"

#include "common/timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A published text, shared by the server and the requests copying it (refs under mu): a
 * request copies it outside the lock, so a large text never holds up a publisher. */
typedef struct shared_text {
    size_t refs, len;
    char *p;
} shared_text;

struct metrics_server {
    struct MHD_Daemon *mhd;
    int port;
    pthread_mutex_t mu;      /* guards everything below */
    shared_text *head;       /* the last published metrics (metrics_server_publish) */
    shared_text *tail;       /* served after them (metrics_server_publish_tail) */
    char not_ready[256];     /* "" = ready as far as the loop knows */
    int64_t seen_ms, bound_ms;
    uint64_t scrapes;        /* /metrics requests served */
};

int metrics_parse_listen(const char *spec, char *addr, size_t addr_size, int *port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1])
        return -EINVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535)
        return -EINVAL;
    const char *a = spec;
    size_t n = (size_t)(colon - spec);
    if (n >= 2 && a[0] == '[' && a[n - 1] == ']')
        a++, n -= 2;
    if (n == 0)
        a = "127.0.0.1", n = strlen(a);
    if (n >= addr_size)
        return -EINVAL;
    memcpy(addr, a, n);
    addr[n] = '\0';
    *port = (int)p;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *ctype,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* The reason the server is not ready, in reason; "" when it is. Called under mu. */
static void ready_reason(const metrics_server *s, char *reason, size_t size)
{
    int64_t now = clock_now_ms();
    if (s->not_ready[0])
        snprintf(reason, size, "%s", s->not_ready);
    else if (s->bound_ms > 0 && (!s->seen_ms || now - s->seen_ms > s->bound_ms))
        snprintf(reason, size, "etcd not reached for more than %lld s",
                 (long long)(s->bound_ms / 1000));
    else
        reason[0] = '\0';
}

/* A new shared text of one reference owning p; NULL (p freed) when out of memory. */
static shared_text *shared_new(char *p, size_t len)
{
    shared_text *t = malloc(sizeof *t);
    if (!t) {
        free(p);
        return NULL;
    }
    *t = (shared_text){1, len, p};
    return t;
}

/* Drop a reference (under mu); returns the text to free (outside mu) when it was the last. */
static shared_text *shared_unref(shared_text *t)
{
    return t && --t->refs == 0 ? t : NULL;
}

static void shared_free(shared_text *t)
{
    if (t) {
        free(t->p);
        free(t);
    }
}

/* The /metrics body: the published text and its tail, copied outside the lock. */
static char *metrics_body(metrics_server *s, size_t *len)
{
    pthread_mutex_lock(&s->mu);
    s->scrapes++;
    shared_text *h = s->head, *t = s->tail;
    if (h)
        h->refs++;
    if (t)
        t->refs++;
    pthread_mutex_unlock(&s->mu);
    size_t hn = h ? h->len : 0, tn = t ? t->len : 0;
    char *body = malloc(hn + tn + 1);
    if (body) {
        if (hn)
            memcpy(body, h->p, hn);
        if (tn)
            memcpy(body + hn, t->p, tn);
        body[hn + tn] = '\0';
        *len = hn + tn;
    }
    pthread_mutex_lock(&s->mu);
    h = shared_unref(h);
    t = shared_unref(t);
    pthread_mutex_unlock(&s->mu);
    shared_free(h);
    shared_free(t);
    return body;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **req)
{
    (void)version, (void)upload, (void)upload_size, (void)req;
    metrics_server *s = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, 405, "text/plain", strdup("method not allowed\n"), 19);
    char line[300], *body = NULL;
    unsigned code = 200;
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        body = metrics_body(s, &len);
        return body ? reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len)
                    : MHD_NO;
    }
    pthread_mutex_lock(&s->mu);
    if (strcmp(url, "/readyz") == 0) {
        char reason[260];
        ready_reason(s, reason, sizeof reason);
        code = reason[0] ? 503 : 200;
        snprintf(line, sizeof line, "%s\n", reason[0] ? reason : "ready");
    } else if (strcmp(url, "/healthz") == 0) {
        snprintf(line, sizeof line, "ok\n");
    } else {
        code = 404;
        snprintf(line, sizeof line, "not found: /metrics, /healthz, /readyz\n");
    }
    pthread_mutex_unlock(&s->mu);
    body = strdup(line);
    return body ? reply(c, code, "text/plain; charset=utf-8", body, strlen(line)) : MHD_NO;
}

/* Fill sa from addr and port. 0 or -EINVAL. */
static int make_addr(const char *addr, int port, struct sockaddr_storage *sa, bool *v6)
{
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    *v6 = false;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
        return -EINVAL;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *v6 = true;
    return 0;
}

int metrics_server_new(const char *spec, metrics_server **out, char *err, size_t errlen)
{
    char addr[64];
    int port;
    struct sockaddr_storage sa;
    bool v6;
    *out = NULL;
    if (metrics_parse_listen(spec, addr, sizeof addr, &port) < 0 ||
        make_addr(addr, port, &sa, &v6) < 0) {
        snprintf(err, errlen, "\"%s\" is not ADDR:PORT, [ADDR6]:PORT or :PORT", spec);
        return -EINVAL;
    }
    metrics_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->not_ready, sizeof s->not_ready, "starting");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (v6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                              MHD_OPTION_CONNECTION_LIMIT, 32u, MHD_OPTION_END);
    if (!s->mhd) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(e));
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -e;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    *out = s;
    return 0;
}

void metrics_server_free(metrics_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    pthread_mutex_destroy(&s->mu);
    shared_free(s->head);
    shared_free(s->tail);
    free(s);
}

int metrics_server_port(const metrics_server *s)
{
    return s->port;
}

uint64_t metrics_server_scrapes(metrics_server *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->scrapes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Replace *slot with a new shared text of p (taken over). */
static void publish_into(metrics_server *s, shared_text **slot, char *p, size_t len)
{
    shared_text *t = p ? shared_new(p, len) : NULL;
    pthread_mutex_lock(&s->mu);
    shared_text *old = shared_unref(*slot);
    *slot = t;
    pthread_mutex_unlock(&s->mu);
    shared_free(old);
}

void metrics_server_publish(metrics_server *s, char *text, size_t len)
{
    publish_into(s, &s->head, text, len);
}

void metrics_server_publish_tail(metrics_server *s, char *text, size_t len)
{
    publish_into(s, &s->tail, text, len);
}

void metrics_server_set_ready(metrics_server *s, const char *not_ready, int64_t seen_ms,
                              int64_t bound_ms)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->not_ready, sizeof s->not_ready, "%s", not_ready ? not_ready : "");
    s->seen_ms = seen_ms;
    s->bound_ms = bound_ms;
    pthread_mutex_unlock(&s->mu);
}
