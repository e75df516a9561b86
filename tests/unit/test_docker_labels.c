/* test_docker_labels.c -- inspect JSON -> docker_container -> backends, table-driven over the
 * fixtures in tests/fixtures/docker/ (real `GET /containers/{id}/json` bodies made by
 * make-fixtures.sh on a private dockerd) plus a few hand-written bodies for edge cases. */
#include "check.h"
#include "docker/docker.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/docker/"

/* Open a fixture from the repo root (scripts/run-tests runs there), else relative to the
 * binary (<repo>/<build>/tests/unit/<binary>). */
static FILE *open_fixture(const char *name, char *path, size_t size)
{
    char exe[512];
    snprintf(path, size, FIXTURES "%s.json", name);
    FILE *f = fopen(path, "rb");
    ssize_t n = f ? 0 : readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *d = exe;
        for (int i = 0; i < 4; i++)
            d = dirname(d);
        snprintf(path, size, "%s/" FIXTURES "%s.json", d, name);
        f = fopen(path, "rb");
    }
    return f;
}

/* Read a fixture into a malloc'd NUL-terminated buffer. */
static char *read_fixture(const char *name, size_t *len)
{
    char path[1024];
    FILE *f = open_fixture(name, path, sizeof(path));
    if (!f) {
        check_fail(__FILE__, __LINE__, "cannot open %s (run from the repo root)", path);
        return NULL;
    }
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    if (buf)
        buf[*len] = '\0';
    fclose(f);
    return buf;
}

static docker_container *load(const char *name)
{
    size_t len;
    docker_error err = {0};
    docker_container *c = NULL;
    char *json = read_fixture(name, &len);
    if (!json)
        return NULL;
    int r = docker_container_parse(json, len, &c, &err);
    CHECK_MSG(r == 0, "parse %s: %d %s", name, r, err.msg);
    free(json);
    return c;
}

typedef struct want {
    const char *service, *json;
} want;

typedef struct label_case {
    const char *title, *fixture;
    docker_backend_opts opts;
    want want[4];                 /* until .service == NULL */
    size_t n_warnings;
    const char *warn_has[8];      /* each must be a substring of some warning */
} label_case;

#define HOST "dockerhost"
#define PUB DOCKER_PUBLISH_PUBLISHED

static const label_case cases[] = {
    {"seed example", "seed", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.2\",\"tcp\":8080,\"weight\":10}"}}, 0, {NULL}},
    {"multi-service, per-service ports and weight label", "multi", {.hostname = HOST},
     {{"web", "{\"ipv4\":\"172.31.240.3\",\"tcp\":8080,\"weight\":20}"},
      {"api", "{\"ipv4\":\"172.31.240.3\",\"tcp\":9090,\"udp\":53,\"weight\":20}"}}, 0, {NULL}},
    {"unexposed ports warned and skipped", "unexposed", {.hostname = HOST}, {{NULL, NULL}}, 3,
     {"label net.qmsk.clusterf.backend.tcp=8081: port 8081/tcp is not exposed",
      "label net.qmsk.clusterf.backend.udp=8080: port 8080/udp is not exposed",
      "container unexposed (51e2522b9ccb): service test: no usable"}},
    {"health starting -> 0", "health-starting", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.5\",\"tcp\":8080,\"weight\":0}"}}, 0, {NULL}},
    {"healthy -> weight label", "health-ok", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.6\",\"tcp\":8080,\"weight\":7}"}}, 0, {NULL}},
    {"unhealthy -> 0", "health-bad", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.7\",\"tcp\":8080,\"weight\":0}"}}, 0, {NULL}},
    {"paused -> 0", "paused", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.8\",\"tcp\":8080,\"weight\":0}"}}, 0, {NULL}},
    {"user-defined network, IPv4 + IPv6, tcp + udp", "usernet", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.30.240.2\",\"ipv6\":\"fdcf:cf:240::2\",\"tcp\":8080,"
               "\"udp\":8080,\"weight\":10}"}}, 0, {NULL}},
    {"two networks: default bridge", "twonets", {.hostname = HOST},
     {{"test", "{\"ipv4\":\"172.31.240.9\",\"tcp\":8080,\"weight\":10}"}}, 0, {NULL}},
    {"two networks: --docker-network cfnet", "twonets", {.hostname = HOST, .network = "cfnet"},
     {{"test", "{\"ipv4\":\"172.30.240.3\",\"ipv6\":\"fdcf:cf:240::3\",\"tcp\":8080,"
               "\"weight\":10}"}}, 0, {NULL}},
    {"not on the chosen network", "seed", {.hostname = HOST, .network = "cfnet"},
     {{NULL, NULL}}, 1, {"container seed (24c475b5b9e2): not on network cfnet"}},
    {"published on 127.0.0.1 only, host is elsewhere", "published",
     {.hostname = HOST, .publish_mode = PUB, .host_ipv4 = "192.0.2.10"}, {{NULL, NULL}}, 4,
     {"port 8080/tcp is published only on 127.0.0.1", "port 9090/tcp is not published",
      "service web: no usable", "service api: no usable"}},
    {"published: host address + host port", "published",
     {.hostname = HOST, .publish_mode = PUB, .host_ipv4 = "127.0.0.1"},
     {{"web", "{\"ipv4\":\"127.0.0.1\",\"tcp\":18080,\"weight\":10}"}}, 2,
     {"port 9090/tcp is not published", "service api: no usable"}},
    {"published on all addresses, IPv4 + IPv6 host", "published-all",
     {.hostname = HOST, .publish_mode = PUB, .host_ipv4 = "192.0.2.10",
      .host_ipv6 = "2001:db8::10"},
     {{"dns", "{\"ipv4\":\"192.0.2.10\",\"ipv6\":\"2001:db8::10\",\"udp\":18081,"
              "\"weight\":10}"}}, 0, {NULL}},
    {"published mode without host addresses", "published-all",
     {.hostname = HOST, .publish_mode = PUB}, {{NULL, NULL}}, 1,
     {"published mode without a host IPv4 or IPv6 address"}},
    {"invalid labels warned", "invalid", {.hostname = HOST}, 
     {{"ok", "{\"ipv4\":\"172.31.240.12\",\"tcp\":8080,\"weight\":10}"}}, 7,
     {"backend.tcp=abc: not a port number", "backend.udp=70000: not a port number",
      "backend.weight=-1: not a weight", "service other is not in net.qmsk.clusterf.service",
      "net.qmsk.clusterf.backend.tpc: unknown clusterf label",
      "service name \"bad/name\" is not", "service ok listed twice"}},
    {"no network", "nonet", {.hostname = HOST}, {{NULL, NULL}}, 1,
     {"container nonet (fc65d03017a4): has no IPv4 or IPv6 address"}},
    {"unlabelled", "unlabelled", {.hostname = HOST}, {{NULL, NULL}}, 0, {NULL}},
    {"other label prefix", "seed", {.hostname = HOST, .label_prefix = "com.example"},
     {{NULL, NULL}}, 0, {NULL}},
};

static bool has_warning(const docker_backends *b, const char *sub)
{
    for (size_t i = 0; i < b->n_warnings; i++)
        if (strstr(b->warnings[i], sub))
            return true;
    return false;
}

static void run_case(const label_case *tc)
{
    docker_container *c = load(tc->fixture);
    docker_backends *b = NULL;
    if (!c)
        return;
    int r = docker_backends_from_container(c, &tc->opts, &b);
    CHECK_MSG(r == 0, "%s: returned %d", tc->title, r);
    if (r != 0)
        goto out;
    size_t n_want = 0;
    while (n_want < 4 && tc->want[n_want].service)
        n_want++;
    CHECK_MSG(b->n == n_want, "%s: %zu backends, want %zu", tc->title, b->n, n_want);
    for (size_t i = 0; i < b->n && i < n_want; i++) {
        CHECK_STR(b->v[i].service, tc->want[i].service);
        CHECK_STR(b->v[i].json, tc->want[i].json);
    }
    CHECK_MSG(b->n_warnings == tc->n_warnings, "%s: %zu warnings, want %zu", tc->title,
              b->n_warnings, tc->n_warnings);
    for (size_t i = 0; i < 8 && tc->warn_has[i]; i++)
        CHECK_MSG(has_warning(b, tc->warn_has[i]), "%s: no warning has \"%s\"", tc->title,
                  tc->warn_has[i]);
    if (check_failed())
        for (size_t i = 0; i < b->n_warnings; i++)
            printf("    warning: %s\n", b->warnings[i]);
out:
    docker_backends_free(b);
    docker_container_free(c);
}

static void test_label_table(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

static void test_backend_fields_and_name(void)
{
    docker_container *c = load("multi");
    docker_backends *b = NULL;
    docker_backend_opts o = {.hostname = "dockerhost"};
    if (!c || docker_backends_from_container(c, &o, &b) != 0 || b->n != 2)
        goto out;
    CHECK_STR(b->v[0].name, "dockerhost:b924c555faf4");
    CHECK_STR(b->v[1].name, "dockerhost:b924c555faf4");
    CHECK_STR(b->v[1].ipv4, "172.31.240.3");
    CHECK_INT(b->v[1].tcp, 9090);
    CHECK_INT(b->v[1].udp, 53);
    CHECK_INT(b->v[1].weight, 20);
out:
    CHECK(b != NULL);
    docker_backends_free(b);
    docker_container_free(c);
}

/* A service label with no name in it (empty or blanks): warned with the label, no backends. */
static void test_empty_service_label(void)
{
    const char *blank[] = {"", "  \t "};
    for (size_t k = 0; k < 2; k++) {
        docker_container *c = load("seed");
        docker_backends *b = NULL;
        docker_backend_opts o = {.hostname = HOST};
        for (size_t i = 0; c && i < c->n_labels; i++)
            if (strcmp(c->labels[i].key, "net.qmsk.clusterf.service") == 0) {
                free(c->labels[i].value);
                c->labels[i].value = strdup(blank[k]);
            }
        if (c && CHECK(docker_backends_from_container(c, &o, &b) == 0) && b) {
            CHECK_INT(b->n, 0);
            CHECK_MSG(b->n_warnings == 1 && has_warning(b, "label net.qmsk.clusterf.service is "
                      "empty; no backends"), "service \"%s\": %zu warnings", blank[k],
                      b->n_warnings);
        }
        docker_backends_free(b);
        docker_container_free(c);
    }
}

static void test_name_sanitising(void)
{
    char buf[300], host[400];
    CHECK_INT(docker_backend_name("web host/01:a", "24c475b5b9e2abcdef", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "web-host-01-a:24c475b5b9e2");
    CHECK_INT(docker_backend_name("h\xc3\xa4st.example_1", "abc", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "h--st.example_1:abc");
    memset(host, 'x', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    CHECK_INT(docker_backend_name(host, "24c475b5b9e2abcdef", buf, sizeof(buf)), 0);
    CHECK_INT(strlen(buf), 253);
    CHECK(strcmp(buf + 240, ":24c475b5b9e2") == 0);
    CHECK_INT(docker_backend_name("h", "", buf, sizeof(buf)), -EINVAL);
    CHECK_INT(docker_backend_name("host", "24c475b5b9e2", buf, 10), -ENOSPC);
    CHECK_INT(docker_backend_name("", "24c475b5b9e2", buf, sizeof(buf)), 0);
    CHECK_STR(buf, ":24c475b5b9e2");

    /* Through the policy, with an odd hostname. */
    docker_container *c = load("seed");
    docker_backends *b = NULL;
    docker_backend_opts o = {.hostname = "web host/01"};
    if (c && docker_backends_from_container(c, &o, &b) == 0 && CHECK(b->n == 1))
        CHECK_STR(b->v[0].name, "web-host-01:24c475b5b9e2");
    docker_backends_free(b);
    docker_container_free(c);
}

static void test_parse_fixture_fields(void)
{
    docker_container *c = load("published");
    if (!c)
        return;
    CHECK_STR(c->id, "9488534547c4c8195cd4f3670a286c5cb50484bfe4d013b8da0edf8febdad6b2");
    CHECK_STR(c->name, "published");
    CHECK_STR(c->hostname, "9488534547c4");
    CHECK_INT(c->state, DOCKER_STATE_RUNNING);
    CHECK_INT(c->health, DOCKER_HEALTH_NONE);
    CHECK_STR(docker_container_label(c, "net.qmsk.clusterf.service"), "web api");
    CHECK(docker_container_label(c, "nope") == NULL);
    const docker_port *p = docker_container_port(c, 8080, "tcp");
    if (CHECK(p != NULL)) {
        CHECK(p->exposed);
        CHECK_INT(p->n_bindings, 1);
        CHECK_STR(p->bindings[0].host_ip, "127.0.0.1");
        CHECK_INT(p->bindings[0].host_port, 18080);
    }
    p = docker_container_port(c, 9090, "tcp");
    CHECK(p && p->exposed && p->n_bindings == 0);
    CHECK(docker_container_port(c, 9090, "udp") == NULL);
    CHECK_STR(c->ipv4, "172.31.240.10");
    CHECK_INT(c->n_networks, 1);
    CHECK(docker_container_network(c, "bridge") != NULL);
    docker_container_free(c);

    c = load("twonets");
    if (c) {
        CHECK_INT(c->n_networks, 2);
        const docker_network *n = docker_container_network(c, "cfnet");
        CHECK(n && strcmp(n->ipv4, "172.30.240.3") == 0 && strcmp(n->ipv6, "fdcf:cf:240::3") == 0);
    }
    docker_container_free(c);
    c = load("health-bad");
    CHECK(c && c->health == DOCKER_HEALTH_UNHEALTHY);
    docker_container_free(c);
    c = load("paused");
    CHECK(c && c->state == DOCKER_STATE_PAUSED && strcmp(c->state_str, "paused") == 0);
    docker_container_free(c);
}

static int parse_str(const char *json, docker_container **c)
{
    docker_error err = {0};
    int r = docker_container_parse(json, strlen(json), c, &err);
    if (r != 0)
        CHECK(err.code == r && err.msg[0]);
    return r;
}

static void test_parse_rejects_and_tolerates(void)
{
    docker_container *c = NULL;
    CHECK_INT(parse_str("", &c), -EINVAL);
    CHECK_INT(parse_str("[]", &c), -EINVAL);
    CHECK_INT(parse_str("{}", &c), -EINVAL);
    CHECK_INT(parse_str("{\"Id\": 5}", &c), -EINVAL);
    CHECK_INT(parse_str("{\"Id\": \"xyz\"}", &c), -EINVAL);
    CHECK_INT(parse_str("{\"Id\": \"abc\"", &c), -EINVAL);
    CHECK(c == NULL);
    /* Wrong types and bad values are ignored, not fatal. */
    const char *odd = "{\"Id\":\"abc\",\"Name\":7,\"State\":[],\"Config\":{\"Labels\":{\"a\":1,"
        "\"b\":\"x\"},\"ExposedPorts\":{\"bad\":{},\"70000/tcp\":{},\"0/tcp\":{},\"80/xyz\":{},"
        "\"53/udp\":{}}},\"NetworkSettings\":{\"IPAddress\":\"300.1.1.1\",\"GlobalIPv6Address\":"
        "\"2001:db8::5\",\"Ports\":{\"53/udp\":[{\"HostIp\":\"\",\"HostPort\":\"x\"},{\"HostIp\":"
        "\"::\",\"HostPort\":\"5353\"}],\"54/udp\":7},\"Networks\":{\"n\":5}}}";
    if (CHECK(parse_str(odd, &c) == 0)) {
        CHECK_STR(c->name, "");
        CHECK_INT(c->state, DOCKER_STATE_OTHER);
        CHECK_INT(c->n_labels, 1);
        CHECK_INT(c->n_ports, 1);
        CHECK(c->ports[0].port == 53 && c->ports[0].exposed && c->ports[0].n_bindings == 1);
        CHECK_STR(c->ipv4, "");
        CHECK_STR(c->ipv6, "2001:db8::5");
        CHECK_INT(c->n_networks, 0);
    }
    docker_container_free(c);
    docker_container_free(NULL);
    docker_backends_free(NULL);
}

/* Hand-written: IPv6 on the default bridge; a stopped container; bad opts. */
static void test_ipv6_default_bridge_and_stopped(void)
{
    const char *v6 = "{\"Id\":\"0123456789abcdef\",\"Name\":\"/v6\",\"State\":{\"Status\":"
        "\"%s\"},\"Config\":{\"Labels\":{\"net.qmsk.clusterf.service\":\"s\",\"net.qmsk.clusterf"
        ".backend.udp\":\"53\"},\"ExposedPorts\":{\"53/udp\":{}}},\"NetworkSettings\":"
        "{\"IPAddress\":\"\",\"GlobalIPv6Address\":\"2001:db8:1::2\"}}";
    char json[1024];
    docker_container *c = NULL;
    docker_backends *b = NULL;
    docker_backend_opts o = {.hostname = "h"};

    snprintf(json, sizeof(json), v6, "running");
    if (CHECK(parse_str(json, &c) == 0) && CHECK(docker_backends_from_container(c, &o, &b) == 0)) {
        CHECK_INT(b->n, 1);
        if (b->n == 1)
            CHECK_STR(b->v[0].json, "{\"ipv6\":\"2001:db8:1::2\",\"udp\":53,\"weight\":10}");
    }
    docker_backends_free(b);
    b = NULL;
    o.host_ipv4 = "not-an-address";
    CHECK_INT(docker_backends_from_container(c, &o, &b), -EINVAL);
    o.host_ipv4 = NULL;
    o.hostname = NULL;
    CHECK_INT(docker_backends_from_container(c, &o, &b), -EINVAL);
    docker_container_free(c);
    c = NULL;

    o.hostname = "h";
    snprintf(json, sizeof(json), v6, "exited");
    if (CHECK(parse_str(json, &c) == 0) && CHECK(docker_backends_from_container(c, &o, &b) == 0))
        CHECK(b->n == 0 && b->n_warnings == 0);
    docker_backends_free(b);
    docker_container_free(c);
}

static void test_publish_mode_parse(void)
{
    docker_publish_mode m;
    CHECK_INT(docker_publish_mode_parse("internal", &m), 0);
    CHECK_INT(m, DOCKER_PUBLISH_INTERNAL);
    CHECK_INT(docker_publish_mode_parse("published", &m), 0);
    CHECK_INT(m, DOCKER_PUBLISH_PUBLISHED);
    CHECK_INT(docker_publish_mode_parse("nat", &m), -EINVAL);
    CHECK_INT(docker_publish_mode_parse(NULL, &m), -EINVAL);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("label_table", test_label_table);
    check_run("backend_fields_and_name", test_backend_fields_and_name);
    check_run("empty_service_label", test_empty_service_label);
    check_run("name_sanitising", test_name_sanitising);
    check_run("parse_fixture_fields", test_parse_fixture_fields);
    check_run("parse_rejects_and_tolerates", test_parse_rejects_and_tolerates);
    check_run("ipv6_default_bridge_and_stopped", test_ipv6_default_bridge_and_stopped);
    check_run("publish_mode_parse", test_publish_mode_parse);
    return check_end();
}
