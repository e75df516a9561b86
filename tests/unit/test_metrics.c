/* test_metrics.c -- metrics/: the registry's text exposition (exact output for counters,
 * gauges and cumulative histogram buckets; label escaping; wrong use refused), the listen
 * address parser (loopback by default), and the HTTP server on a loopback port: /metrics
 * serves the last published text, /readyz follows the published readiness and the etcd
 * bound, /healthz is 200, anything else 404. */
#include "check.h"
#include "common/timeutil.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_render(void)
{
    metrics_registry *r = metrics_registry_new();
    CHECK_INT(metrics_declare(r, "x_ops_total", METRICS_COUNTER, "Ops."), 0);
    CHECK_INT(metrics_declare(r, "x_up", METRICS_GAUGE, "Up."), 0);
    CHECK_INT(metrics_declare(r, "x_seconds", METRICS_HISTOGRAM, "Time."), 0);
    CHECK_INT(metrics_declare(r, "x_up", METRICS_GAUGE, "Up."), 0);
    char l[64] = "";
    CHECK_INT(metrics_label(l, sizeof l, "op", "add"), 0);
    CHECK_INT(metrics_add(r, "x_ops_total", l, 1), 0);
    CHECK_INT(metrics_add(r, "x_ops_total", l, 2), 0);
    CHECK_INT(metrics_set(r, "x_up", "", 1.5), 0);
    CHECK_INT(metrics_observe(r, "x_seconds", "", 0.003), 0);
    CHECK_INT(metrics_observe(r, "x_seconds", "", 20), 0);
    CHECK_INT(metrics_add(r, "nope", "", 1), -ENOENT);
    CHECK_INT(metrics_observe(r, "x_up", "", 1), -EINVAL);
    CHECK_INT(metrics_set(r, "x_seconds", "", 1), -EINVAL);
    char *text = NULL;
    size_t len = 0;
    CHECK_INT(metrics_render(r, &text, &len), 0);
    const char *want =
        "# HELP x_ops_total Ops.\n# TYPE x_ops_total counter\nx_ops_total{op=\"add\"} 3\n"
        "# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1.5\n"
        "# HELP x_seconds Time.\n# TYPE x_seconds histogram\n"
        "x_seconds_bucket{le=\"0.001\"} 0\nx_seconds_bucket{le=\"0.0025\"} 0\n"
        "x_seconds_bucket{le=\"0.005\"} 1\nx_seconds_bucket{le=\"0.01\"} 1\n"
        "x_seconds_bucket{le=\"0.025\"} 1\nx_seconds_bucket{le=\"0.05\"} 1\n"
        "x_seconds_bucket{le=\"0.1\"} 1\nx_seconds_bucket{le=\"0.25\"} 1\n"
        "x_seconds_bucket{le=\"0.5\"} 1\nx_seconds_bucket{le=\"1\"} 1\n"
        "x_seconds_bucket{le=\"2.5\"} 1\nx_seconds_bucket{le=\"5\"} 1\n"
        "x_seconds_bucket{le=\"10\"} 1\nx_seconds_bucket{le=\"+Inf\"} 2\n"
        "x_seconds_sum 20.003\nx_seconds_count 2\n";
    CHECK_STR(text, want);
    CHECK_INT(len, strlen(want));
    free(text);
    metrics_clear(r, "x_ops_total");
    CHECK_INT(metrics_render(r, &text, &len), 0);
    CHECK(text && !strstr(text, "x_ops_total{"));
    free(text);
    metrics_registry_free(r);
    metrics_registry_free(NULL);
}

static void test_label_escaping(void)
{
    char l[64] = "";
    CHECK_INT(metrics_label(l, sizeof l, "a", "x\"y\\z\nw"), 0);
    CHECK_INT(metrics_label(l, sizeof l, "b", ""), 0);
    CHECK_STR(l, "a=\"x\\\"y\\\\z\\nw\",b=\"\"");
    char small[12] = "k=\"v\"";
    CHECK_INT(metrics_label(small, sizeof small, "long", "value"), -ENOSPC);
    CHECK_STR(small, "k=\"v\"");
}

static void test_parse_listen(void)
{
    char a[64];
    int port = -1;
    CHECK_INT(metrics_parse_listen(":9100", a, sizeof a, &port), 0);
    CHECK_STR(a, "127.0.0.1");
    CHECK_INT(port, 9100);
    CHECK_INT(metrics_parse_listen("0.0.0.0:80", a, sizeof a, &port), 0);
    CHECK_STR(a, "0.0.0.0");
    CHECK_INT(metrics_parse_listen("[::1]:0", a, sizeof a, &port), 0);
    CHECK_STR(a, "::1");
    CHECK_INT(port, 0);
    CHECK_INT(metrics_parse_listen("9100", a, sizeof a, &port), -EINVAL);
    CHECK_INT(metrics_parse_listen("1.2.3.4:", a, sizeof a, &port), -EINVAL);
    CHECK_INT(metrics_parse_listen("1.2.3.4:70000", a, sizeof a, &port), -EINVAL);
    CHECK_INT(metrics_parse_listen(":9x", a, sizeof a, &port), -EINVAL);
    metrics_server *s = NULL;
    char err[200];
    CHECK_INT(metrics_server_new("nohost:1", &s, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "nohost:1") != NULL);
}

/* GET path from 127.0.0.1:port over a plain socket: the status, the body in body. */
static int get(int port, const char *path, char *body, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[256], buf[8192];
    size_t n = 0;
    ssize_t got;
    body[0] = '\0';
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, strlen(req)) < 0)
        n = 0;
    while (n < sizeof buf - 1 && (got = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)got;
    close(fd);
    buf[n] = '\0';
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, size, "%s", b ? b + 4 : "");
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static void test_server(void)
{
    metrics_server *s = NULL;
    char err[200], body[4096];
    if (!CHECK_MSG(metrics_server_new("127.0.0.1:0", &s, err, sizeof err) == 0, "%s", err))
        return;
    int port = metrics_server_port(s);
    CHECK(port > 0);
    CHECK_INT(get(port, "/healthz", body, sizeof body), 200);
    CHECK_INT(get(port, "/readyz", body, sizeof body), 503);
    CHECK_STR(body, "starting\n");
    CHECK_INT(get(port, "/metrics", body, sizeof body), 200);
    CHECK_STR(body, "");
    metrics_server_publish(s, strdup("a_total 1\n"), 10);
    CHECK_INT(get(port, "/metrics", body, sizeof body), 200);
    CHECK_STR(body, "a_total 1\n");
    /* a tail (another thread's families) is served after the text, each replaced alone */
    metrics_server_publish_tail(s, strdup("b_total 2\n"), 10);
    CHECK_INT(get(port, "/metrics", body, sizeof body), 200);
    CHECK_STR(body, "a_total 1\nb_total 2\n");
    metrics_server_publish(s, strdup("a_total 3\n"), 10);
    CHECK_INT(get(port, "/metrics", body, sizeof body), 200);
    CHECK_STR(body, "a_total 3\nb_total 2\n");
    metrics_server_publish_tail(s, NULL, 0);
    CHECK_INT(get(port, "/metrics", body, sizeof body), 200);
    CHECK_STR(body, "a_total 3\n");
    metrics_server_set_ready(s, "", clock_now_ms(), 60000);
    CHECK_INT(get(port, "/readyz", body, sizeof body), 200);
    CHECK_STR(body, "ready\n");
    metrics_server_set_ready(s, "", clock_now_ms() - 61000, 60000);
    CHECK_INT(get(port, "/readyz", body, sizeof body), 503);
    CHECK(strstr(body, "etcd not reached") != NULL);
    metrics_server_set_ready(s, "", 0, 0);
    CHECK_INT(get(port, "/readyz", body, sizeof body), 200);
    metrics_server_set_ready(s, "last full pass failed: x", clock_now_ms(), 60000);
    CHECK_INT(get(port, "/readyz", body, sizeof body), 503);
    CHECK_STR(body, "last full pass failed: x\n");
    CHECK_INT(get(port, "/other", body, sizeof body), 404);
    metrics_server *dup = NULL;
    char spec[32];
    snprintf(spec, sizeof spec, "127.0.0.1:%d", port);
    CHECK(metrics_server_new(spec, &dup, err, sizeof err) < 0);
    CHECK(dup == NULL);
    metrics_server_free(s);
    metrics_server_free(NULL);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("render", test_render);
    check_run("label_escaping", test_label_escaping);
    check_run("parse_listen", test_parse_listen);
    check_run("server", test_server);
    return check_end();
}
