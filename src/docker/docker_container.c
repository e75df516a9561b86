/* docker_container.c -- GET /containers/{id}/json (inspect) body -> struct docker_container.
 *
 * Pure: no I/O. Everything dockerd sends is type-checked; an optional field of the wrong type
 * or an address that does not parse is treated as absent. Only a body that is not an object
 * or has no valid "Id" is an error. */
#include "docker/docker.h"
#include "docker/docker_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64u << 20)

int docker_err_set(docker_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* obj[key] if it has type t, else NULL. */
static json_object *get_typed(json_object *obj, const char *key, json_type t)
{
    json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, t))
        return NULL;
    return v;
}

/* A string field, or "" when absent or not a string. */
static const char *get_str(json_object *obj, const char *key)
{
    json_object *v = get_typed(obj, key, json_type_string);
    return v ? json_object_get_string(v) : "";
}

/* Copy s into buf if it parses as an address of `family`, else leave buf "". */
static void copy_addr(char *buf, size_t size, int family, const char *s)
{
    unsigned char tmp[16];
    buf[0] = '\0';
    if (s && *s && strlen(s) < size && inet_pton(family, s, tmp) == 1)
        snprintf(buf, size, "%s", s);
}

static int parse_state(docker_container *c, json_object *root)
{
    json_object *state = get_typed(root, "State", json_type_object);
    const char *status = get_str(state, "Status");
    c->state_str = strdup(status);
    if (!c->state_str)
        return -ENOMEM;
    if (strcmp(status, "running") == 0)
        c->state = DOCKER_STATE_RUNNING;
    else if (strcmp(status, "paused") == 0)
        c->state = DOCKER_STATE_PAUSED;
    else
        c->state = DOCKER_STATE_OTHER;
    const char *h = get_str(get_typed(state, "Health", json_type_object), "Status");
    if (strcmp(h, "healthy") == 0)
        c->health = DOCKER_HEALTH_HEALTHY;
    else if (strcmp(h, "unhealthy") == 0)
        c->health = DOCKER_HEALTH_UNHEALTHY;
    else if (strcmp(h, "starting") == 0)
        c->health = DOCKER_HEALTH_STARTING;
    else
        c->health = DOCKER_HEALTH_NONE;
    return 0;
}

static int parse_labels(docker_container *c, json_object *config)
{
    json_object *labels = get_typed(config, "Labels", json_type_object);
    if (!labels)
        return 0;
    size_t n = (size_t)json_object_object_length(labels);
    c->labels = calloc(n ? n : 1, sizeof(*c->labels));
    if (!c->labels)
        return -ENOMEM;
    json_object_object_foreach(labels, key, val) {
        if (!json_object_is_type(val, json_type_string))
            continue;
        docker_label *l = &c->labels[c->n_labels];
        l->key = strdup(key);
        l->value = strdup(json_object_get_string(val));
        c->n_labels++;
        if (!l->key || !l->value)
            return -ENOMEM;
    }
    return 0;
}

/* "8080/tcp" -> port, proto. Returns 0 or -EINVAL. */
static int parse_port_key(const char *key, uint16_t *port, char *proto, size_t proto_size)
{
    char *end;
    errno = 0;
    unsigned long p = strtoul(key, &end, 10);
    if (end == key || *end != '/' || errno || p == 0 || p > 65535 || key[0] < '0' || key[0] > '9')
        return -EINVAL;
    const char *pr = end + 1;
    if (strcmp(pr, "tcp") != 0 && strcmp(pr, "udp") != 0 && strcmp(pr, "sctp") != 0)
        return -EINVAL;
    *port = (uint16_t)p;
    snprintf(proto, proto_size, "%s", pr);
    return 0;
}

/* Find or add the port entry for "8080/tcp"; NULL when the key is invalid. */
static docker_port *port_entry(docker_container *c, const char *key, size_t cap)
{
    uint16_t port;
    char proto[8];
    if (parse_port_key(key, &port, proto, sizeof(proto)) != 0)
        return NULL;
    for (size_t i = 0; i < c->n_ports; i++)
        if (c->ports[i].port == port && strcmp(c->ports[i].proto, proto) == 0)
            return &c->ports[i];
    if (c->n_ports >= cap)
        return NULL;
    docker_port *p = &c->ports[c->n_ports++];
    p->port = port;
    memcpy(p->proto, proto, sizeof(p->proto));
    return p;
}

static int parse_bindings(docker_port *p, json_object *arr)
{
    size_t n = json_object_array_length(arr);
    if (p->bindings || n == 0)
        return 0;
    p->bindings = calloc(n, sizeof(*p->bindings));
    if (!p->bindings)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *b = json_object_array_get_idx(arr, i);
        const char *hp = get_str(b, "HostPort");
        char *end;
        unsigned long port = strtoul(hp, &end, 10);
        if (!*hp || *end || port == 0 || port > 65535)
            continue;
        docker_binding *db = &p->bindings[p->n_bindings++];
        db->host_port = (uint16_t)port;
        const char *ip = get_str(b, "HostIp");
        copy_addr(db->host_ip, sizeof(db->host_ip), strchr(ip, ':') ? AF_INET6 : AF_INET, ip);
    }
    return 0;
}

static int parse_ports(docker_container *c, json_object *config, json_object *netset)
{
    json_object *exposed = get_typed(config, "ExposedPorts", json_type_object);
    json_object *published = get_typed(netset, "Ports", json_type_object);
    size_t cap = (exposed ? (size_t)json_object_object_length(exposed) : 0) +
                 (published ? (size_t)json_object_object_length(published) : 0);
    c->ports = calloc(cap ? cap : 1, sizeof(*c->ports));
    if (!c->ports)
        return -ENOMEM;
    if (exposed) {
        json_object_object_foreach(exposed, key, val) {
            (void)val;
            docker_port *p = port_entry(c, key, cap);
            if (p)
                p->exposed = true;
        }
    }
    if (published) {
        json_object_object_foreach(published, key, val) {
            if (!json_object_is_type(val, json_type_array))
                continue;
            docker_port *p = port_entry(c, key, cap);
            if (p && parse_bindings(p, val) != 0)
                return -ENOMEM;
        }
    }
    return 0;
}

static int cmp_network(const void *a, const void *b)
{
    return strcmp(((const docker_network *)a)->name, ((const docker_network *)b)->name);
}

static int parse_networks(docker_container *c, json_object *netset)
{
    copy_addr(c->ipv4, sizeof(c->ipv4), AF_INET, get_str(netset, "IPAddress"));
    copy_addr(c->ipv6, sizeof(c->ipv6), AF_INET6, get_str(netset, "GlobalIPv6Address"));
    json_object *nets = get_typed(netset, "Networks", json_type_object);
    if (!nets)
        return 0;
    size_t n = (size_t)json_object_object_length(nets);
    c->networks = calloc(n ? n : 1, sizeof(*c->networks));
    if (!c->networks)
        return -ENOMEM;
    json_object_object_foreach(nets, name, val) {
        if (!json_object_is_type(val, json_type_object))
            continue;
        docker_network *nw = &c->networks[c->n_networks++];
        nw->name = strdup(name);
        if (!nw->name)
            return -ENOMEM;
        copy_addr(nw->ipv4, sizeof(nw->ipv4), AF_INET, get_str(val, "IPAddress"));
        copy_addr(nw->ipv6, sizeof(nw->ipv6), AF_INET6, get_str(val, "GlobalIPv6Address"));
    }
    qsort(c->networks, c->n_networks, sizeof(*c->networks), cmp_network);
    return 0;
}

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", id[i]))
            return false;
    return true;
}

static int parse_root(docker_container *c, json_object *root, docker_error *err)
{
    const char *id = get_str(root, "Id");
    if (!valid_id(id))
        return docker_err_set(err, -EINVAL, "inspect: missing or invalid \"Id\"");
    const char *name = get_str(root, "Name");
    json_object *config = get_typed(root, "Config", json_type_object);
    json_object *netset = get_typed(root, "NetworkSettings", json_type_object);
    c->id = strdup(id);
    c->name = strdup(name[0] == '/' ? name + 1 : name);
    c->hostname = strdup(get_str(config, "Hostname"));
    if (!c->id || !c->name || !c->hostname || parse_state(c, root) != 0 ||
        parse_labels(c, config) != 0 || parse_ports(c, config, netset) != 0 ||
        parse_networks(c, netset) != 0)
        return docker_err_set(err, -ENOMEM, "inspect: out of memory");
    return 0;
}

int docker_container_parse(const char *json, size_t len, docker_container **out,
                           docker_error *err)
{
    json_tokener *tok = NULL;
    json_object *root = NULL;
    docker_container *c = NULL;
    int r;

    *out = NULL;
    if (len > MAX_BODY || len > INT32_MAX) {
        r = docker_err_set(err, -EINVAL, "inspect: body of %zu bytes is too large", len);
        goto out;
    }
    tok = json_tokener_new();
    c = calloc(1, sizeof(*c));
    if (!tok || !c) {
        r = docker_err_set(err, -ENOMEM, "inspect: out of memory");
        goto out;
    }
    root = json_tokener_parse_ex(tok, json, (int)len);
    if (!root || !json_object_is_type(root, json_type_object)) {
        r = docker_err_set(err, -EINVAL, "inspect: not a JSON object (%s)",
                    json_tokener_error_desc(json_tokener_get_error(tok)));
        goto out;
    }
    r = parse_root(c, root, err);
    if (r == 0) {
        *out = c;
        c = NULL;
    }
out:
    json_object_put(root);
    if (tok)
        json_tokener_free(tok);
    docker_container_free(c);
    return r;
}

void docker_container_free(docker_container *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_labels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    for (size_t i = 0; i < c->n_ports; i++)
        free(c->ports[i].bindings);
    for (size_t i = 0; i < c->n_networks; i++)
        free(c->networks[i].name);
    free(c->labels);
    free(c->ports);
    free(c->networks);
    free(c->id);
    free(c->name);
    free(c->hostname);
    free(c->state_str);
    free(c);
}

const char *docker_container_label(const docker_container *c, const char *key)
{
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i].key, key) == 0)
            return c->labels[i].value;
    return NULL;
}

const docker_port *docker_container_port(const docker_container *c, uint16_t port,
                                         const char *proto)
{
    for (size_t i = 0; i < c->n_ports; i++)
        if (c->ports[i].port == port && strcmp(c->ports[i].proto, proto) == 0)
            return &c->ports[i];
    return NULL;
}

const docker_network *docker_container_network(const docker_container *c, const char *name)
{
    for (size_t i = 0; i < c->n_networks; i++)
        if (strcmp(c->networks[i].name, name) == 0)
            return &c->networks[i];
    return NULL;
}

const char *docker_health_str(docker_health h)
{
    switch (h) {
    case DOCKER_HEALTH_STARTING:  return "starting";
    case DOCKER_HEALTH_HEALTHY:   return "healthy";
    case DOCKER_HEALTH_UNHEALTHY: return "unhealthy";
    default:                      return "none";
    }
}
