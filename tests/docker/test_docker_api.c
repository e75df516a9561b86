/* test_docker_api.c -- the docker module against a real private dockerd (tests/lib/
 * dockerd_harness): list, inspect, the events stream (order, health, networks, 50 containers
 * at once), the stream ending when dockerd stops, and a new stream after it restarts.
 * Without root / docker.io / busybox-static every test is skipped (a failure under
 * CLUSTERF_REQUIRE_ALL=1). */
#include "check.h"
#include "common/timeutil.h"
#include "docker/docker.h"
#include "dockerd_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"

static dockerd_harness *H;
static char why[512] = "dockerd harness not started";
static int dockerd_rc = -ENOTSUP;  /* dockerd_harness_start(): 0, -ENOTSUP (a skip), else fail */

static bool need_dockerd(void)
{
    return check_need(dockerd_rc, why);
}

static docker_client *client(void)
{
    docker_client *c = NULL;
    docker_error err = {0};
    int r = docker_client_new(H->host, &c, &err);
    CHECK_MSG(r == 0, "docker_client_new(%s): %d %s", H->host, r, err.msg);
    return c;
}

/* Wait (through epoll on the events fd, as the daemon will) for the next event. Returns false
 * on timeout. */
static bool next_event(docker_events *ev, docker_event *e, int64_t timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event want = {.events = EPOLLIN};
    bool got = false;
    epoll_ctl(ep, EPOLL_CTL_ADD, docker_events_fd(ev), &want);
    while (!(got = docker_events_next(ev, e) == 1)) {
        int64_t left = deadline - clock_now_ms();
        struct epoll_event out;
        if (left <= 0)
            break;
        epoll_wait(ep, &out, 1, (int)(left > 1000 ? 1000 : left));
    }
    close(ep);
    return got;
}

/* Skip events until one of `kind` (for container `id` when non-NULL) arrives. */
static bool wait_for(docker_events *ev, docker_event_kind kind, const char *id, docker_event *e,
                     int64_t timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    docker_event tmp;
    if (!e)
        e = &tmp;
    while (clock_now_ms() < deadline) {
        if (!next_event(ev, e, deadline - clock_now_ms()))
            return false;
        if (e->kind == kind && (!id || strcmp(e->id, id) == 0))
            return true;
        if (e->kind == DOCKER_EVENT_END)
            return false;
    }
    return false;
}

static docker_events *open_stream(docker_client *c)
{
    docker_events *ev = NULL;
    docker_error err = {0};
    int r = docker_events_start(c, &ev, &err);
    CHECK_MSG(r == 0, "docker_events_start: %d %s", r, err.msg);
    if (r == 0 && !CHECK_MSG(wait_for(ev, DOCKER_EVENT_CONNECTED, NULL, NULL, 30000),
                             "no CONNECTED within 30s")) {
        docker_events_free(ev);
        return NULL;
    }
    return ev;
}

static bool ids_contain(char **ids, const char *id)
{
    for (char **p = ids; p && *p; p++)
        if (strcmp(*p, id) == 0)
            return true;
    return false;
}

static void test_client_errors(void)
{
    docker_client *c = NULL;
    docker_error err = {0};
    char **ids = NULL;
    CHECK_INT(docker_client_new("http://localhost", &c, &err), -EINVAL);
    CHECK(err.msg[0] != '\0');
    CHECK_INT(docker_client_new("unix://relative.sock", &c, &err), -EINVAL);
    CHECK_INT(docker_client_new("unix:///nonexistent/clusterf-docker.sock", &c, &err), 0);
    if (c) {
        CHECK_INT(docker_ping(c, &err), -ECONNREFUSED);
        CHECK_INT(docker_list_containers(c, NULL, &ids, &err), -ECONNREFUSED);
        CHECK(ids == NULL);
        CHECK_MSG(strstr(err.msg, "/containers/json") != NULL, "msg: %s", err.msg);
    }
    docker_client_free(c);
    docker_client_free(NULL);
    docker_events_free(NULL);
}

static void test_list_and_inspect(void)
{
    char id[128], other[128], body[256];
    docker_client *c = NULL;
    docker_container *ct = NULL;
    docker_backends *b = NULL;
    char **ids = NULL, **all = NULL;
    docker_error err = {0};
    if (!need_dockerd() || !(c = client()))
        goto out;
    CHECK_INT(docker_ping(c, &err), 0);
    CHECK_INT(dockerd_harness_docker(H, id, sizeof(id), "run -d --name web --expose 8080 "
              "-l " L ".service=test -l " L ".backend.tcp=8080 %s httpd -f -p 8080 -h /var/www",
              H->image), 0);
    CHECK_INT(dockerd_harness_docker(H, other, sizeof(other), "run -d --name plain %s sleep 600",
                                     H->image), 0);
    CHECK_INT(docker_list_containers(c, L ".service", &ids, &err), 0);
    CHECK_MSG(ids_contain(ids, id), "labelled container %s not listed", id);
    CHECK_MSG(!ids_contain(ids, other), "unlabelled container listed with the label filter");
    CHECK_INT(dockerd_harness_docker(H, NULL, 0, "pause plain >/dev/null"), 0);
    CHECK_INT(docker_list_containers(c, NULL, &all, &err), 0);
    CHECK_MSG(ids_contain(all, id) && ids_contain(all, other), "paused container not listed");
    CHECK_INT(docker_inspect(c, "plain", &ct, &err), 0);
    CHECK(ct && ct->state == DOCKER_STATE_PAUSED);
    docker_container_free(ct);
    ct = NULL;

    CHECK_INT(docker_inspect(c, id, &ct, &err), 0);
    if (!ct)
        goto out;
    CHECK_STR(ct->id, id);
    CHECK_STR(ct->name, "web");
    CHECK_INT(ct->state, DOCKER_STATE_RUNNING);
    const docker_port *p = docker_container_port(ct, 8080, "tcp");
    CHECK(p && p->exposed);
    char net[32];
    snprintf(net, sizeof(net), "%.*s", (int)(strrchr(H->bridge_addr4, '.') - H->bridge_addr4 + 1),
             H->bridge_addr4);
    CHECK_MSG(strncmp(ct->ipv4, net, strlen(net)) == 0, "address %s not on %s*", ct->ipv4, net);
    /* The address is real: the host reaches httpd in the container through it. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "curl -s --max-time 10 http://%s:8080/ 2>/dev/null", ct->ipv4);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(body, 1, sizeof(body) - 1, f) : 0;
    body[n] = '\0';
    if (f)
        pclose(f);
    CHECK_MSG(strstr(body, "clusterf test") != NULL, "GET %s:8080 gave \"%s\"", ct->ipv4, body);

    docker_backend_opts o = {.hostname = "testhost"};
    CHECK_INT(docker_backends_from_container(ct, &o, &b), 0);
    if (CHECK(b && b->n == 1)) {
        char want[128];
        snprintf(want, sizeof(want), "{\"ipv4\":\"%s\",\"tcp\":8080,\"weight\":10}", ct->ipv4);
        CHECK_STR(b->v[0].json, want);
    }
    docker_container_free(ct);
    ct = NULL;
    CHECK_INT(docker_inspect(c, "0123456789ab0123456789ab", &ct, &err), -ENOENT);
    CHECK(ct == NULL);
out:
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f web plain >/dev/null 2>&1");
    docker_backends_free(b);
    docker_container_free(ct);
    docker_ids_free(ids);
    docker_ids_free(all);
    docker_client_free(c);
}

/* The kinds seen for container id, in order, as a string like "start,pause,...". */
static void collect_kinds(docker_events *ev, const char *id, docker_event_kind last,
                          char *seq, size_t size, int64_t timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    docker_event e;
    seq[0] = '\0';
    while (clock_now_ms() < deadline && next_event(ev, &e, deadline - clock_now_ms())) {
        if (e.kind == DOCKER_EVENT_END)
            break;
        if (strcmp(e.id, id) != 0)
            continue;
        size_t l = strlen(seq);
        snprintf(seq + l, size - l, "%s%s", l ? "," : "", e.kind == DOCKER_EVENT_HEALTH_STATUS
                 ? e.action : docker_event_kind_str(e.kind));
        if (e.kind == last)
            break;
    }
}

static void test_events_order(void)
{
    char id[128], seq[1024];
    docker_client *c = NULL;
    docker_events *ev = NULL;
    if (!need_dockerd() || !(c = client()) || !(ev = open_stream(c)))
        goto out;
    CHECK_INT(dockerd_harness_docker(H, id, sizeof(id), "run -d --name ev1 --health-cmd true "
              "--health-interval 1s %s sleep 600", H->image), 0);
    collect_kinds(ev, id, DOCKER_EVENT_HEALTH_STATUS, seq, sizeof(seq), 60000);
    CHECK_STR(seq, "network_connect,start,health_status: healthy");
    CHECK_INT(dockerd_harness_docker(H, NULL, 0, "pause ev1 >/dev/null && docker -H %s unpause "
              "ev1 >/dev/null && docker -H %s stop -t 5 ev1 >/dev/null && docker -H %s rm ev1 "
              ">/dev/null", H->host, H->host, H->host), 0);
    collect_kinds(ev, id, DOCKER_EVENT_DESTROY, seq, sizeof(seq), 60000);
    /* Health checks may report again in between, and the bridge disconnect's place relative
     * to die/stop is dockerd's business: compare the container's own actions. */
    char clean[1024] = "";
    for (char *t = strtok(seq, ","); t; t = strtok(NULL, ","))
        if (strncmp(t, "health_status", 13) != 0 && strncmp(t, "network_", 8) != 0)
            snprintf(clean + strlen(clean), sizeof(clean) - strlen(clean), "%s%s",
                     clean[0] ? "," : "", t);
    CHECK_STR(clean, "pause,unpause,kill,die,stop,destroy");

    /* The whole life of a container in order, with its unhealthy report. */
    CHECK_INT(dockerd_harness_docker(H, id, sizeof(id), "run -d --name ev2 --health-cmd false "
              "--health-interval 1s --health-retries 1 %s sleep 600", H->image), 0);
    collect_kinds(ev, id, DOCKER_EVENT_HEALTH_STATUS, seq, sizeof(seq), 60000);
    CHECK_STR(seq, "network_connect,start,health_status: unhealthy");
    CHECK_INT(dockerd_harness_docker(H, NULL, 0, "rm -f ev2 >/dev/null"), 0);
    collect_kinds(ev, id, DOCKER_EVENT_DESTROY, seq, sizeof(seq), 60000);
    CHECK_MSG(strstr(seq, "die") && strstr(seq, "destroy"), "rm -f gave %s", seq);
out:
    docker_events_free(ev);
    docker_client_free(c);
}

static void test_network_events(void)
{
    char id[128], netid[128];
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_container *ct = NULL;
    docker_error err = {0};
    docker_event e;
    if (!need_dockerd() || !(c = client()) || !(ev = open_stream(c)))
        goto out;
    CHECK_INT(dockerd_harness_docker(H, netid, sizeof(netid), "network create --ipv6 --subnet %s "
              "--subnet %s -o com.docker.network.bridge.name=%s1 cfnet", H->user_subnet4,
              H->user_subnet6, H->user_bridge_prefix), 0);
    CHECK_INT(dockerd_harness_docker(H, id, sizeof(id), "run -d --name nw1 %s sleep 600",
                                     H->image), 0);
    CHECK(wait_for(ev, DOCKER_EVENT_START, id, &e, 30000));
    CHECK_STR(e.name, "nw1");
    CHECK_INT(dockerd_harness_docker(H, NULL, 0, "network connect cfnet nw1"), 0);
    CHECK_MSG(wait_for(ev, DOCKER_EVENT_NETWORK_CONNECT, id, &e, 30000), "no network connect");
    CHECK_STR(e.network, "cfnet");
    CHECK_INT(docker_inspect(c, id, &ct, &err), 0);
    const docker_network *n = ct ? docker_container_network(ct, "cfnet") : NULL;
    CHECK_MSG(n && n->ipv4[0] && n->ipv6[0], "no IPv4+IPv6 on cfnet");
    if (n) {
        char p4[32];
        snprintf(p4, sizeof(p4), "%.*s", (int)(strrchr(H->user_subnet4, '.') - H->user_subnet4),
                 H->user_subnet4);
        CHECK_MSG(strncmp(n->ipv4, p4, strlen(p4)) == 0, "%s not in %s", n->ipv4, H->user_subnet4);
    }
    CHECK_INT(dockerd_harness_docker(H, NULL, 0, "network disconnect cfnet nw1"), 0);
    CHECK_MSG(wait_for(ev, DOCKER_EVENT_NETWORK_DISCONNECT, id, &e, 30000), "no disconnect");
    CHECK_STR(e.network, "cfnet");
out:
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f nw1 >/dev/null; docker -H %s network rm cfnet "
                               ">/dev/null", H->host);
    docker_container_free(ct);
    docker_events_free(ev);
    docker_client_free(c);
}

/* dockerd stops: the stream reports END, requests fail; it restarts: a new stream works. */
static void test_dockerd_restart(void)
{
    char id[128];
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_error err = {0};
    docker_event e;
    char **ids = NULL;
    if (!need_dockerd() || !(c = client()) || !(ev = open_stream(c)))
        goto out;
    int64_t t0 = clock_now_ms();
    CHECK_INT(dockerd_harness_stop(H), 0);
    printf("  dockerd stopped in %lld ms\n", (long long)(clock_now_ms() - t0));
    t0 = clock_now_ms();
    CHECK_MSG(wait_for(ev, DOCKER_EVENT_END, NULL, &e, 30000), "no END after dockerd stopped");
    CHECK_MSG(e.error.code < 0 && e.error.msg[0], "END without an error: %d", e.error.code);
    printf("  END after %lld ms: %d %s\n", (long long)(clock_now_ms() - t0), e.error.code,
           e.error.msg);
    CHECK_INT(docker_events_next(ev, &e), 0);   /* nothing after END */
    CHECK(docker_list_containers(c, NULL, &ids, &err) < 0);
    docker_events_free(ev);
    ev = NULL;

    /* A stream opened while dockerd is down ends at once with a connection error. */
    CHECK_INT(docker_events_start(c, &ev, &err), 0);
    if (ev) {
        CHECK_MSG(wait_for(ev, DOCKER_EVENT_END, NULL, &e, 30000), "no END while down");
        CHECK_INT(e.error.code, -ECONNREFUSED);
        docker_events_free(ev);
        ev = NULL;
    }

    t0 = clock_now_ms();
    CHECK_INT(dockerd_harness_restart(H), 0);
    printf("  dockerd restarted in %lld ms\n", (long long)(clock_now_ms() - t0));
    if (!(ev = open_stream(c)))
        goto out;
    CHECK_INT(dockerd_harness_docker(H, id, sizeof(id), "run -d --name after %s sleep 600",
                                     H->image), 0);
    CHECK_MSG(wait_for(ev, DOCKER_EVENT_START, id, NULL, 30000), "no start after restart");
    CHECK_INT(docker_list_containers(c, NULL, &ids, &err), 0);
    CHECK(ids_contain(ids, id));
out:
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f after >/dev/null 2>&1");
    docker_ids_free(ids);
    docker_events_free(ev);
    docker_client_free(c);
}

#define MANY 50

/* List the labelled containers, inspect each and count their backends; -1 on error. */
static size_t relist(docker_client *c)
{
    char **ids = NULL;
    docker_error err = {0};
    docker_backend_opts o = {.hostname = "testhost"};
    size_t n_backends = 0, n_ids = 0, n_warned = 0;
    if (!CHECK(docker_list_containers(c, L ".service", &ids, &err) == 0))
        return (size_t)-1;
    for (char **p = ids; *p; p++, n_ids++) {
        docker_container *ct = NULL;
        docker_backends *b = NULL;
        if (CHECK(docker_inspect(c, *p, &ct, &err) == 0) &&
            CHECK(docker_backends_from_container(ct, &o, &b) == 0)) {
            n_backends += b->n;
            n_warned += b->n_warnings > 0;
        }
        docker_backends_free(b);
        docker_container_free(ct);
    }
    CHECK_INT(n_ids, MANY);
    CHECK_INT(n_warned, 0);
    docker_ids_free(ids);
    return n_backends;
}

/* 50 containers started at once: every start is seen. */
static void test_many_starts(void)
{
    static char out[MANY * 80];
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_event e;
    char *ids[MANY];
    bool seen[MANY] = {false};
    size_t n = 0, n_seen = 0;
    if (!need_dockerd() || !(c = client()) || !(ev = open_stream(c)))
        goto out;
    int64_t t0 = clock_now_ms();
    CHECK_INT(dockerd_harness_docker(H, out, sizeof(out), "ps -q >/dev/null; for i in $(seq %d); "
              "do docker -H %s run -d --name many$i --expose 8080 -l " L ".service=many -l " L
              ".backend.tcp=8080 %s sleep 600 & done; "
              "wait", MANY, H->host, H->image), 0);
    for (char *t = strtok(out, "\n"); t && n < MANY; t = strtok(NULL, "\n"))
        ids[n++] = t;
    CHECK_INT(n, MANY);
    int64_t deadline = clock_now_ms() + 120000;
    while (n_seen < n && next_event(ev, &e, deadline - clock_now_ms())) {
        if (e.kind == DOCKER_EVENT_END || e.kind == DOCKER_EVENT_OVERFLOW) {
            check_fail(__FILE__, __LINE__, "unexpected %s", docker_event_kind_str(e.kind));
            break;
        }
        for (size_t i = 0; i < n; i++)
            if (e.kind == DOCKER_EVENT_START && !seen[i] && strcmp(e.id, ids[i]) == 0) {
                seen[i] = true;
                n_seen++;
            }
    }
    CHECK_INT(n_seen, n);
    printf("  %zu containers started, %zu start events seen in %lld ms\n", n, n_seen,
           (long long)(clock_now_ms() - t0));
    /* What the daemon does on CONNECTED: list, inspect each, compute its backends. */
    t0 = clock_now_ms();
    size_t n_backends = relist(c);
    CHECK_INT(n_backends, MANY);
    printf("  re-list of %zu containers (list + inspect + policy) took %lld ms\n", n,
           (long long)(clock_now_ms() - t0));
out:
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f $(docker -H %s ps -aq --filter name=many) "
                               ">/dev/null 2>&1", H->host);
    docker_events_free(ev);
    docker_client_free(c);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    int64_t t0 = clock_now_ms();
    int r = dockerd_rc = dockerd_harness_start(&H, why, sizeof(why));
    if (r == 0)
        printf("private dockerd %s up in %lld ms\n", H->host, (long long)(clock_now_ms() - t0));
    else
        printf("private dockerd unavailable (%d): %s\n", r, why);
    check_run("client_errors", test_client_errors);
    check_run("list_and_inspect", test_list_and_inspect);
    check_run("events_order", test_events_order);
    check_run("network_events", test_network_events);
    check_run("many_starts", test_many_starts);
    check_run("dockerd_restart", test_dockerd_restart);
    dockerd_harness_free(H);
    return check_end();
}
