/* docker_labels.c -- the clusterf-docker policy: a container's labels, ports, networks, state
 * and health -> the backends it stands for (SPEC §5), with warnings as strings.
 *
 * Pure: no I/O, no logging; the caller decides what to do with the warnings. The label
 * grammar and every rule are in docker.h above docker_backends_from_container(). */
#include "docker/docker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 253
#define SHORT_ID_LEN 12

/* Everything one evaluation needs, so helpers take one argument. */
typedef struct ctx {
    const docker_container *c;
    const docker_backend_opts *o;
    const char *prefix;
    size_t prefix_len;
    docker_backends *out;
    char ipv4[DOCKER_ADDR4_LEN];
    char ipv6[DOCKER_ADDR6_LEN];
    int err;                      /* -ENOMEM once anything failed */
} ctx;

static void warn(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Add "container NAME (SHORTID): <message>" to the warnings. */
static void warn(ctx *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char **v = realloc(x->out->warnings, (x->out->n_warnings + 1) * sizeof(*v));
    if (!v) {
        x->err = -ENOMEM;
        return;
    }
    x->out->warnings = v;
    if (asprintf(&v[x->out->n_warnings], "container %s (%.12s): %s",
                 x->c->name, x->c->id, msg) < 0) {
        x->err = -ENOMEM;
        return;
    }
    x->out->n_warnings++;
}

/* The label "<prefix>.<suffix>", or NULL. */
static const char *label(ctx *x, const char *suffix, char *key, size_t key_size)
{
    snprintf(key, key_size, "%s.%s", x->prefix, suffix);
    return docker_container_label(x->c, key);
}

/* Strict decimal in [min, max]; returns 0 or -EINVAL. */
static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!s || !*s || strlen(s) > 10)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    unsigned long v = strtoul(s, NULL, 10);
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static bool valid_segment(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

int docker_backend_name(const char *hostname, const char *container_id, char *buf, size_t size)
{
    char id[SHORT_ID_LEN + 1];
    size_t n = 0;
    for (; container_id && container_id[n] && n < SHORT_ID_LEN; n++)
        id[n] = valid_segment(&container_id[n], 1) && container_id[n] != ':'
              ? container_id[n] : '-';
    id[n] = '\0';
    if (n == 0)
        return -EINVAL;
    size_t host_max = NAME_MAX_LEN - 1 - n;
    size_t hn = hostname ? strnlen(hostname, host_max) : 0;
    if (size < hn + 1 + n + 1)
        return -ENOSPC;
    for (size_t i = 0; i < hn; i++) {
        char ch = hostname[i];
        buf[i] = valid_segment(&ch, 1) && ch != ':' ? ch : '-';
    }
    snprintf(buf + hn, size - hn, ":%s", id);
    return 0;
}

static bool is_wildcard(const char *ip)
{
    return !*ip || strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0;
}

/* Published mode: the host port `p` is published on for this host's addresses, or 0. */
static uint16_t host_port(ctx *x, const docker_port *p, const char *key, const char *val)
{
    for (size_t i = 0; i < p->n_bindings; i++) {
        const docker_binding *b = &p->bindings[i];
        if (is_wildcard(b->host_ip) ||
            (x->o->host_ipv4 && strcmp(b->host_ip, x->o->host_ipv4) == 0) ||
            (x->o->host_ipv6 && strcmp(b->host_ip, x->o->host_ipv6) == 0))
            return b->host_port;
    }
    if (p->n_bindings)
        warn(x, "label %s=%s: port %u/%s is published only on %s, not on this host's "
             "address; not used", key, val, p->port, p->proto, p->bindings[0].host_ip);
    else
        warn(x, "label %s=%s: port %u/%s is not published; not used",
             key, val, p->port, p->proto);
    return 0;
}

/* The usable port for label "<prefix>.<suffix>" of protocol proto: 0 when the label is
 * absent (*present = false) or unusable (warned). */
static uint16_t resolve_port(ctx *x, const char *suffix, const char *proto, bool *present)
{
    char key[512];
    unsigned long port;
    const char *val = label(x, suffix, key, sizeof(key));
    *present = val != NULL;
    if (!val)
        return 0;
    if (parse_uint(val, 1, 65535, &port) != 0) {
        warn(x, "label %s=%s: not a port number (1-65535); not used", key, val);
        return 0;
    }
    const docker_port *p = docker_container_port(x->c, (uint16_t)port, proto);
    if (!p || !p->exposed) {
        warn(x, "label %s=%s: port %lu/%s is not exposed (EXPOSE / --expose); not used",
             key, val, port, proto);
        return 0;
    }
    if (x->o->publish_mode == DOCKER_PUBLISH_PUBLISHED)
        return host_port(x, p, key, val);
    return (uint16_t)port;
}

/* Weight from "<prefix>.<suffix>"; DOCKER_DEFAULT_WEIGHT when absent or invalid (warned). */
static unsigned resolve_weight(ctx *x, const char *suffix, bool *present)
{
    char key[512];
    unsigned long w;
    const char *val = label(x, suffix, key, sizeof(key));
    *present = val != NULL;
    if (!val)
        return DOCKER_DEFAULT_WEIGHT;
    if (parse_uint(val, 0, 65535, &w) != 0) {
        warn(x, "label %s=%s: not a weight (0-65535); using %d", key, val,
             DOCKER_DEFAULT_WEIGHT);
        return DOCKER_DEFAULT_WEIGHT;
    }
    return (unsigned)w;
}

/* Pick the backend addresses into x->ipv4/ipv6. Returns false (warned) when there are none. */
static bool pick_addresses(ctx *x)
{
    const docker_container *c = x->c;
    if (x->o->publish_mode == DOCKER_PUBLISH_PUBLISHED) {
        snprintf(x->ipv4, sizeof(x->ipv4), "%s", x->o->host_ipv4 ? x->o->host_ipv4 : "");
        snprintf(x->ipv6, sizeof(x->ipv6), "%s", x->o->host_ipv6 ? x->o->host_ipv6 : "");
        if (!x->ipv4[0] && !x->ipv6[0])
            warn(x, "published mode without a host IPv4 or IPv6 address; no backends");
        return x->ipv4[0] || x->ipv6[0];
    }
    const docker_network *nw = NULL;
    if (x->o->network) {
        nw = docker_container_network(c, x->o->network);
        if (!nw) {
            warn(x, "not on network %s; no backends", x->o->network);
            return false;
        }
    } else if (c->ipv4[0] || c->ipv6[0]) {
        memcpy(x->ipv4, c->ipv4, sizeof(x->ipv4));
        memcpy(x->ipv6, c->ipv6, sizeof(x->ipv6));
        return true;
    } else {
        size_t n = 0;
        for (size_t i = 0; i < c->n_networks; i++)
            if (c->networks[i].ipv4[0] || c->networks[i].ipv6[0])
                if (n++ == 0)
                    nw = &c->networks[i];
        if (n > 1)
            warn(x, "on %zu networks, using %s (choose one with --docker-network)", n, nw->name);
    }
    if (nw) {
        memcpy(x->ipv4, nw->ipv4, sizeof(x->ipv4));
        memcpy(x->ipv6, nw->ipv6, sizeof(x->ipv6));
    }
    if (!x->ipv4[0] && !x->ipv6[0])
        warn(x, "has no IPv4 or IPv6 address%s%s; no backends",
             x->o->network ? " on network " : "", x->o->network ? x->o->network : "");
    return x->ipv4[0] || x->ipv6[0];
}

/* Is `svc` one of the words of the service label? */
static bool service_listed(const char *services, const char *svc, size_t n)
{
    for (const char *p = services; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (len == n && strncmp(p, svc, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Does the word at `word` (n bytes) already appear in `services` before it? */
static bool service_listed_before(const char *services, const char *word, size_t n)
{
    for (const char *p = services; p < word;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (p < word && len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Warn about labels under the prefix this policy does not know. */
static void check_unknown_labels(ctx *x, const char *services)
{
    for (size_t i = 0; i < x->c->n_labels; i++) {
        const char *k = x->c->labels[i].key;
        if (strncmp(k, x->prefix, x->prefix_len) != 0 || k[x->prefix_len] != '.')
            continue;
        const char *s = k + x->prefix_len + 1;
        if (strcmp(s, "service") == 0 || strcmp(s, "backend.tcp") == 0 ||
            strcmp(s, "backend.udp") == 0 || strcmp(s, "backend.weight") == 0)
            continue;
        const char *dot = strrchr(s, '.');
        if (strncmp(s, "backend:", 8) == 0 && dot && dot > s + 8 &&
            (strcmp(dot, ".tcp") == 0 || strcmp(dot, ".udp") == 0 ||
             strcmp(dot, ".weight") == 0)) {
            if (!service_listed(services, s + 8, (size_t)(dot - (s + 8))))
                warn(x, "label %s: service %.*s is not in %s.service; ignored",
                     k, (int)(dot - (s + 8)), s + 8, x->prefix);
            continue;
        }
        warn(x, "label %s: unknown clusterf label; ignored", k);
    }
}

/* {"ipv4":..,"ipv6":..,"tcp":..,"udp":..,"weight":..}, or NULL on ENOMEM. */
static char *backend_json(const docker_backend *b)
{
    json_object *o = json_object_new_object();
    char *s = NULL;
    if (!o)
        return NULL;
    if (b->ipv4[0])
        json_object_object_add(o, "ipv4", json_object_new_string(b->ipv4));
    if (b->ipv6[0])
        json_object_object_add(o, "ipv6", json_object_new_string(b->ipv6));
    if (b->tcp)
        json_object_object_add(o, "tcp", json_object_new_int(b->tcp));
    if (b->udp)
        json_object_object_add(o, "udp", json_object_new_int(b->udp));
    json_object_object_add(o, "weight", json_object_new_int((int)b->weight));
    s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return s;
}

/* General settings, resolved once so their warnings appear once. */
typedef struct general {
    uint16_t tcp, udp;
    unsigned weight;
} general;

static uint16_t service_port(ctx *x, const char *svc, const char *proto, uint16_t general_port)
{
    char suffix[300];
    bool present;
    snprintf(suffix, sizeof(suffix), "backend:%s.%s", svc, proto);
    uint16_t p = resolve_port(x, suffix, proto, &present);
    return present ? p : general_port;
}

static unsigned effective_weight(ctx *x, unsigned w)
{
    if (x->c->state == DOCKER_STATE_PAUSED)
        return 0;
    if (x->c->health != DOCKER_HEALTH_NONE && x->c->health != DOCKER_HEALTH_HEALTHY)
        return 0;
    return w;
}

/* Build the backend of one service (or warn and skip it). */
static void add_service(ctx *x, const char *svc, const general *g)
{
    char suffix[300];
    bool present;
    docker_backend b = {0};

    b.tcp = service_port(x, svc, "tcp", g->tcp);
    b.udp = service_port(x, svc, "udp", g->udp);
    snprintf(suffix, sizeof(suffix), "backend:%s.weight", svc);
    unsigned w = resolve_weight(x, suffix, &present);
    b.weight = effective_weight(x, present ? w : g->weight);
    if (!b.tcp && !b.udp) {
        warn(x, "service %s: no usable tcp or udp port; skipped", svc);
        return;
    }
    memcpy(b.ipv4, x->ipv4, sizeof(b.ipv4));
    memcpy(b.ipv6, x->ipv6, sizeof(b.ipv6));
    char name[NAME_MAX_LEN + 1];
    docker_backend_name(x->o->hostname, x->c->id, name, sizeof(name));
    docker_backend *v = realloc(x->out->v, (x->out->n + 1) * sizeof(*v));
    if (!v) {
        x->err = -ENOMEM;
        return;
    }
    x->out->v = v;
    b.service = strdup(svc);
    b.name = strdup(name);
    b.json = backend_json(&b);
    v[x->out->n++] = b;
    if (!b.service || !b.name || !b.json)
        x->err = -ENOMEM;
}

/* Walk the words of the service label; invalid and repeated names are warned and skipped, and
 * so is a label with no name at all (the container asked for clusterf and gets nothing). */
static void add_services(ctx *x, const char *services, const general *g)
{
    char key[512];
    snprintf(key, sizeof(key), "%s.service", x->prefix);
    if (services[strspn(services, " \t")] == '\0')
        warn(x, "label %s is empty; no backends", key);
    for (const char *p = services; *p && !x->err;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t");
        if (n == 0)
            break;
        char svc[NAME_MAX_LEN + 1];
        if (!valid_segment(p, n))
            warn(x, "label %s: service name \"%.*s\" is not 1-253 of [A-Za-z0-9._:-]; skipped",
                 key, (int)(n > 300 ? 300 : n), p);
        else if (service_listed_before(services, p, n))
            warn(x, "label %s: service %.*s listed twice", key, (int)n, p);
        else {
            memcpy(svc, p, n);
            svc[n] = '\0';
            add_service(x, svc, g);
        }
        p += n;
    }
}

static bool valid_opt_addr(const char *s, int family)
{
    unsigned char buf[16];
    size_t max = family == AF_INET ? DOCKER_ADDR4_LEN : DOCKER_ADDR6_LEN;
    return !s || !*s || (strlen(s) < max && inet_pton(family, s, buf) == 1);
}

int docker_backends_from_container(const docker_container *c, const docker_backend_opts *opts,
                                   docker_backends **out)
{
    ctx x = {.c = c, .o = opts};
    char key[512];

    *out = NULL;
    if (!opts->hostname || !*opts->hostname || !valid_opt_addr(opts->host_ipv4, AF_INET) ||
        !valid_opt_addr(opts->host_ipv6, AF_INET6))
        return -EINVAL;
    x.prefix = opts->label_prefix ? opts->label_prefix : DOCKER_DEFAULT_LABEL_PREFIX;
    x.prefix_len = strlen(x.prefix);
    if (x.prefix_len > 200)
        return -EINVAL;
    x.out = calloc(1, sizeof(*x.out));
    if (!x.out)
        return -ENOMEM;
    const char *services = label(&x, "service", key, sizeof(key));
    if (services && (c->state == DOCKER_STATE_RUNNING || c->state == DOCKER_STATE_PAUSED)) {
        check_unknown_labels(&x, services);
        if (pick_addresses(&x)) {
            general g;
            bool present;
            g.tcp = resolve_port(&x, "backend.tcp", "tcp", &present);
            g.udp = resolve_port(&x, "backend.udp", "udp", &present);
            g.weight = resolve_weight(&x, "backend.weight", &present);
            add_services(&x, services, &g);
        }
    }
    if (x.err) {
        docker_backends_free(x.out);
        return x.err;
    }
    *out = x.out;
    return 0;
}

void docker_backends_free(docker_backends *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].service);
        free(b->v[i].name);
        free(b->v[i].json);
    }
    for (size_t i = 0; i < b->n_warnings; i++)
        free(b->warnings[i]);
    free(b->v);
    free(b->warnings);
    free(b);
}

int docker_publish_mode_parse(const char *s, docker_publish_mode *out)
{
    if (s && strcmp(s, "internal") == 0)
        *out = DOCKER_PUBLISH_INTERNAL;
    else if (s && strcmp(s, "published") == 0)
        *out = DOCKER_PUBLISH_PUBLISHED;
    else
        return -EINVAL;
    return 0;
}
