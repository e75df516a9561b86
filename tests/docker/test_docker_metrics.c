/* test_docker_metrics.c -- clusterf-docker's --metrics-listen against real consumers: a
 * private dockerd (dockerd_harness) and a real etcd on loopback; a labelled container's
 * backend shows in /metrics as desired and written (and is the key etcd holds), `promtool
 * check metrics` finds no problem, a real Prometheus server scrapes it (up == 1, the written
 * count), and /readyz turns 503 naming dockerd while dockerd is stopped, 200 after. */
#include "check.h"
#include "dockerd_harness.h"
#include "etcd_harness.h"
#include "prom_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"

static dockerd_harness *H;
static etcdh E;
static int etcd_rc;
static int dockerd_rc = -ENOTSUP;
static char why[512] = "dockerd harness not started";
static char bin[512];
static int PORT;
static pid_t DAEMON = -1;

/* build/tests/docker/test_docker_metrics -> build/clusterf-docker */
static void find_bin(void)
{
    char self[400];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(bin, sizeof bin, "%s/clusterf-docker", dirname(dirname(dirname(self))));
}

static pid_t start_daemon(void)
{
    char listen[64], log[300];
    snprintf(listen, sizeof listen, "--metrics-listen=127.0.0.1:%d", PORT);
    snprintf(log, sizeof log, "%s/clusterf-docker.log", E.dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--docker-host", H->host, "--etcd-endpoints", E.endpoints,
              "--hostname", "testhost", "--ttl", "3s", listen, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool need_all(void)
{
    if (!check_need(dockerd_rc, why) || !check_need(etcd_rc, "etcd (etcd-server etcd-client)"))
        return false;
    if (access(bin, X_OK) != 0) {
        check_skip("%s not built", bin);
        return false;
    }
    return CHECK(DAEMON > 0);
}

/* /metrics once clusterf_docker_backends_written is want, or the last text; caller frees. */
static char *metrics_when_written(double want)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", PORT);
    for (int i = 0; i < 300; i++) {
        free(body);
        prom_http_get(E.dir, url, &body);
        if (body && prom_sample(body, "clusterf_docker_backends_written") == want)
            break;
        usleep(200000);
    }
    return body;
}

/* The number of keys etcd holds under the prefix (etcdctl get --keys-only), or -1. */
static long etcd_count(const char *prefix)
{
    char cmd[600], line[200];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints=%s get --prefix --keys-only "
             "'%s' 2>/dev/null", E.endpoints, prefix);
    FILE *f = popen(cmd, "r");
    long n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    return f && pclose(f) == 0 ? n : -1;
}

/* A labelled container: desired and written 1, etcd holds that one key; promtool is clean. */
static void test_backend_counted(void)
{
    char *body = NULL, *out = NULL;
    if (!need_all())
        return;
    CHECK(prom_wait_status(E.dir, PORT, "/healthz", 200, 30, NULL));
    int r = dockerd_harness_docker(H, NULL, 0, "run -d --name m1 --expose 8080 -l " L
                                   ".service=web -l " L ".backend.tcp=8080 %s sleep 600",
                                   H->image);
    CHECK_INT(r, 0);
    body = metrics_when_written(1);
    CHECK_MSG(prom_sample(body, "clusterf_docker_backends_written") == 1,
              "backends_written never 1:\n%s", body ? body : "");
    CHECK(prom_sample(body, "clusterf_docker_backends_desired") == 1);
    CHECK(prom_sample(body, "clusterf_docker_etcd_writes_total{op=\"put\"}") >= 1);
    CHECK(prom_sample(body, "clusterf_docker_events_total{change=\"put\"}") >= 1);
    CHECK(prom_sample(body, "clusterf_docker_connected") == 1);
    CHECK(prom_sample(body, "clusterf_docker_lease_held") == 1);
    CHECK(prom_sample(body, "clusterf_etcd_lease_ttl_seconds") == 3);
    CHECK_INT(etcd_count("/clusterf/services/web/backends/"), 1);
    CHECK(prom_wait_status(E.dir, PORT, "/readyz", 200, 30, NULL));
    CHECK_INT(prom_check_metrics(E.dir, body, &out), 0);
    CHECK_MSG(out && !out[0], "promtool check metrics: %s", out ? out : "");
    free(out);
    free(body);
}

static void test_prometheus_scrapes(void)
{
    if (!need_all())
        return;
    if (!prom_available()) {
        check_skip("prometheus is not installed (scripts/install-deps)");
        return;
    }
    int port = 0;
    pid_t prom = prom_start(E.dir, "clusterf-docker", PORT, &port);
    if (!CHECK(prom > 0))
        return;
    CHECK_MSG(prom_wait_query(E.dir, port, "up%7Bjob%3D%22clusterf-docker%22%7D", "1", 120),
              "Prometheus never saw up == 1 (see %s/prometheus-clusterf-docker.log)", E.dir);
    CHECK(prom_wait_query(E.dir, port, "clusterf_docker_backends_written", "1", 60));
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
}

/* dockerd stopped: /readyz 503 naming dockerd; started again: 200. */
static void test_readyz_follows_dockerd(void)
{
    char *body = NULL;
    if (!need_all())
        return;
    CHECK(prom_wait_status(E.dir, PORT, "/readyz", 200, 60, NULL));
    CHECK_INT(dockerd_harness_stop(H), 0);
    CHECK_MSG(prom_wait_status(E.dir, PORT, "/readyz", 503, 60, &body),
              "/readyz never 503 with dockerd stopped");
    CHECK_MSG(body && strstr(body, "dockerd"), "reason: %s", body ? body : "");
    free(body);
    CHECK(prom_wait_status(E.dir, PORT, "/healthz", 200, 10, NULL));
    CHECK_INT(dockerd_harness_restart(H), 0);
    CHECK_MSG(prom_wait_status(E.dir, PORT, "/readyz", 200, 120, NULL),
              "/readyz not 200 after dockerd came back");
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    find_bin();
    dockerd_rc = dockerd_harness_start(&H, why, sizeof why);
    etcd_rc = etcdh_start(&E, 1);
    if (dockerd_rc == 0 && etcd_rc == 0 && access(bin, X_OK) == 0) {
        PORT = prom_free_port();
        DAEMON = start_daemon();
    }
    check_run("backend_counted", test_backend_counted);
    check_run("prometheus_scrapes", test_prometheus_scrapes);
    check_run("readyz_follows_dockerd", test_readyz_follows_dockerd);
    if (DAEMON > 0) {
        kill(DAEMON, SIGTERM);
        waitpid(DAEMON, NULL, 0);
    }
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f m1 >/dev/null 2>&1");
    dockerd_harness_free(H);
    if (etcd_rc == 0)
        etcdh_destroy(&E);
    return check_end();
}
