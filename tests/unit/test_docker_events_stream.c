/* test_docker_events_stream.c -- the events stream decoder against canned HTTP responses from
 * a tiny server on a unix socket: objects split across chunks anywhere (down to one byte),
 * ignored and malformed events, HTTP errors, a full queue (OVERFLOW, END still last) and
 * docker_events_free() while the stream is open. The real dockerd is in tests/docker/. */
#include "check.h"
#include "common/timeutil.h"
#include "docker/docker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct server {
    char dir[32], path[80], host[96];
    int lfd;
    pthread_t thread;
    const char *status_line;   /* e.g. "200 OK" */
    const char *body;          /* sent as chunks of `chunk` bytes */
    size_t body_len, chunk;
    bool hold_open;            /* keep the connection open after the body */
    char request[1024];
} server;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t len = 0;
    while (len < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
        ssize_t r = read(fd, s->request + len, sizeof(s->request) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        s->request[len] = '\0';
    }
    char head[256];
    snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n", s->status_line);
    write_all(fd, head, strlen(head));
    for (size_t off = 0; off < s->body_len; off += s->chunk) {
        size_t n = s->body_len - off < s->chunk ? s->body_len - off : s->chunk;
        char sz[32];
        snprintf(sz, sizeof(sz), "%zx\r\n", n);
        write_all(fd, sz, strlen(sz));
        write_all(fd, s->body + off, n);
        write_all(fd, "\r\n", 2);
    }
    if (s->hold_open) {
        char b;
        while (read(fd, &b, 1) > 0) {
        }
    } else {
        write_all(fd, "0\r\n\r\n", 5);
    }
    close(fd);
    return NULL;
}

static bool server_start(server *s, const char *status, const char *body, size_t chunk)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(s->dir, sizeof(s->dir), "/tmp/cfdu.XXXXXX");
    if (!mkdtemp(s->dir))
        return false;
    snprintf(s->path, sizeof(s->path), "%s/docker.sock", s->dir);
    snprintf(s->host, sizeof(s->host), "unix://%s", s->path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
    s->status_line = status;
    s->body = body;
    s->body_len = strlen(body);
    s->chunk = chunk;
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->lfd, 4) < 0)
        return false;
    return pthread_create(&s->thread, NULL, serve, s) == 0;
}

static void server_stop(server *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
    unlink(s->path);
    rmdir(s->dir);
}

/* Wait for the next event (polling the fd like an epoll loop would). */
static bool next_event(docker_events *ev, docker_event *e, int timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    while (docker_events_next(ev, e) != 1) {
        struct pollfd p = {.fd = docker_events_fd(ev), .events = POLLIN};
        int64_t left = deadline - clock_now_ms();
        if (left <= 0)
            return false;
        poll(&p, 1, (int)left);
    }
    return true;
}

#define ID1 "8ba6a37fbbeea6ad467f02eee23b6b8320c920c52ab9c947a383ca60ae6f6dbc"
#define ID2 "bacbaef4f377de1e0afd1754521bea734b2c133ac3d7e29924124177eff3636e"

static const char stream[] =
    "{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"8c96dedd\",\"Attributes\":"
    "{\"container\":\"" ID1 "\",\"name\":\"bridge\",\"type\":\"bridge\"}},\"scope\":\"local\","
    "\"time\":1795708158,\"timeNano\":1795708158283775939}\n"
    "{\"status\":\"start\",\"id\":\"" ID1 "\",\"from\":\"img\",\"Type\":\"container\",\"Action\":"
    "\"start\",\"Actor\":{\"ID\":\"" ID1 "\",\"Attributes\":{\"image\":\"img\",\"name\":\"h1\"}},"
    "\"scope\":\"local\",\"time\":1795708158,\"timeNano\":1795708158445442853}\n"
    "{\"Type\":\"image\",\"Action\":\"pull\",\"Actor\":{\"ID\":\"busybox\"}}\n"
    "{\"Type\":\"container\",\"Action\":\"exec_create: true\",\"Actor\":{\"ID\":\"" ID1 "\"}}\n"
    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"NOT-HEX\"}}\n"
    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":7}\n"
    "[1, 2]\n"
    "{\"Type\":\"container\",\"Action\":\"health_status: unhealthy\",\"Actor\":{\"ID\":\"" ID2 "\","
    "\"Attributes\":{\"name\":\"web \\\"1\\\"\"}},\"timeNano\":5}\n"
    "{\"Type\":\"container\",\"Action\":\"destroy\",\"Actor\":{\"ID\":\"" ID2 "\"}}\n";

/* Expect CONNECTED, network connect, start, health unhealthy, destroy, END(-EPIPE). */
static void check_stream(size_t chunk)
{
    server s = {0};
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_error err = {0};
    docker_event e;
    if (!CHECK(server_start(&s, "200 OK", stream, chunk)))
        return;
    CHECK_INT(docker_client_new(s.host, &c, &err), 0);
    CHECK_INT(docker_events_start(c, &ev, &err), 0);
    if (!ev)
        goto out;
    docker_client_free(c);  /* the stream must not need the client */
    c = NULL;
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_CONNECTED);
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_NETWORK_CONNECT);
    CHECK_STR(e.id, ID1);
    CHECK_STR(e.network, "bridge");
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_START);
    CHECK_STR(e.id, ID1);
    CHECK_STR(e.name, "h1");
    CHECK(e.time_nano == 1795708158445442853LL);
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_HEALTH_STATUS);
    CHECK_STR(e.id, ID2);
    CHECK_STR(e.name, "web \"1\"");
    CHECK_INT(e.health, DOCKER_HEALTH_UNHEALTHY);
    CHECK_STR(e.action, "health_status: unhealthy");
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_DESTROY);
    CHECK(next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_END);
    CHECK_INT(e.error.code, -EPIPE);
    CHECK_INT(docker_events_next(ev, &e), 0);
    CHECK_MSG(strstr(s.request, "GET /v1.41/events?filters=") != NULL, "request: %s", s.request);
    CHECK(strstr(s.request, "health_status") != NULL);
out:
    docker_events_free(ev);
    docker_client_free(c);
    server_stop(&s);
}

static void test_chunks_whole(void) { check_stream(65536); }
static void test_chunks_one_byte(void) { check_stream(1); }
static void test_chunks_seven_bytes(void) { check_stream(7); }

/* Run one canned response; the END event into *end. Returns the kinds before it. */
static int run_canned(const char *status, const char *body, docker_event *end)
{
    server s = {0};
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_error err = {0};
    int n = 0;
    end->kind = DOCKER_EVENT_CONNECTED;
    if (!CHECK(server_start(&s, status, body, 5)))
        return -1;
    if (docker_client_new(s.host, &c, &err) == 0 && docker_events_start(c, &ev, &err) == 0)
        while (next_event(ev, end, 10000) && end->kind != DOCKER_EVENT_END)
            n++;
    CHECK_MSG(end->kind == DOCKER_EVENT_END, "no END");
    docker_events_free(ev);
    docker_client_free(c);
    server_stop(&s);
    return n;
}

static void test_malformed_json(void)
{
    docker_event e;
    int n = run_canned("200 OK", "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":"
                       "\"" ID1 "\"}}\n{\"Type\": nope}\n", &e);
    CHECK_INT(n, 2);   /* CONNECTED, START */
    CHECK_INT(e.error.code, -EPROTO);
    CHECK_MSG(strstr(e.error.msg, "bad JSON") != NULL, "msg: %s", e.error.msg);
}

static void test_http_error(void)
{
    docker_event e;
    int n = run_canned("400 Bad Request", "{\"message\":\"invalid filter 'x'\"}\n", &e);
    CHECK_INT(n, 0);   /* no CONNECTED */
    CHECK_INT(e.error.code, -EIO);
    CHECK_MSG(strstr(e.error.msg, "HTTP 400") && strstr(e.error.msg, "invalid filter"),
              "msg: %s", e.error.msg);
}

/* More events than the queue holds, none taken until the end: OVERFLOW, then END last. */
static void test_overflow(void)
{
    const size_t total = 20000;
    const char *one = "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" ID1
                      "\"}}\n";
    size_t ol = strlen(one);
    char *body = malloc(total * ol + 1);
    server s = {0};
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_error err = {0};
    docker_event e;
    size_t starts = 0, overflows = 0;
    bool end_last = false;
    if (!body)
        return;
    for (size_t i = 0; i < total; i++)
        memcpy(body + i * ol, one, ol);
    body[total * ol] = '\0';
    if (!CHECK(server_start(&s, "200 OK", body, 60000)))
        goto out;
    CHECK_INT(docker_client_new(s.host, &c, &err), 0);
    CHECK_INT(docker_events_start(c, &ev, &err), 0);
    server_stop(&s);                  /* the server has sent everything */
    usleep(300000);                   /* let the thread read it all */
    for (int64_t deadline = clock_now_ms() + 20000; ev && clock_now_ms() < deadline;) {
        if (!next_event(ev, &e, 1000))
            continue;
        if (e.kind == DOCKER_EVENT_END) {
            end_last = docker_events_next(ev, &e) == 0;
            break;
        }
        starts += e.kind == DOCKER_EVENT_START;
        overflows += e.kind == DOCKER_EVENT_OVERFLOW;
    }
    CHECK(end_last);
    CHECK_INT(overflows, 1);
    CHECK_MSG(starts >= 10000 && starts < total, "%zu starts of %zu", starts, total);
out:
    docker_events_free(ev);
    docker_client_free(c);
    free(body);
}

/* docker_events_free() on an open, idle stream returns promptly. */
static void test_free_while_open(void)
{
    server s = {0};
    docker_client *c = NULL;
    docker_events *ev = NULL;
    docker_error err = {0};
    docker_event e;
    s.hold_open = true;
    if (!CHECK(server_start(&s, "200 OK", "", 1)))
        return;
    CHECK_INT(docker_client_new(s.host, &c, &err), 0);
    CHECK_INT(docker_events_start(c, &ev, &err), 0);
    CHECK(ev && next_event(ev, &e, 10000) && e.kind == DOCKER_EVENT_CONNECTED);
    int64_t t0 = clock_now_ms();
    docker_events_free(ev);
    int64_t took = clock_now_ms() - t0;
    CHECK_MSG(took < 60000, "free took %lld ms: it waits for the idle stream", (long long)took);
    docker_client_free(c);
    server_stop(&s);   /* the server's read sees the close */
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("chunks_whole", test_chunks_whole);
    check_run("chunks_one_byte", test_chunks_one_byte);
    check_run("chunks_seven_bytes", test_chunks_seven_bytes);
    check_run("malformed_json", test_malformed_json);
    check_run("http_error", test_http_error);
    check_run("overflow", test_overflow);
    check_run("free_while_open", test_free_while_open);
    return check_end();
}
