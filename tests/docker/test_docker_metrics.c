/* test_docker_metrics.c -- clusterf-docker's --metrics-listen against real consumers: a
 * private dockerd (dockerd_harness) and a real etcd on loopback; a labelled container's
 * backend shows in /metrics as desired and written (and is the key etcd holds), `promtool
 * check metrics` finds no problem, a real Prometheus server scrapes it (up == 1, the written
 * count), and /readyz turns 503 naming dockerd while dockerd is stopped, and naming etcd
 * while etcd is hung (SIGSTOP), 200 after each. */
#include "check.h"
#include "docker_env.h"
#include "prom_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"

static docker_env env;
static char bin[512]; /* build/clusterf-docker */
static int PORT;
static pid_t DAEMON = -1;

/* clusterf-docker serving metrics on port, with a lease of ttl, under prefix, logging to
 * <etcd dir>/<logname>; its pid. */
static pid_t start_daemon(int port, const char *ttl, const char *prefix, const char *logname)
{
    char listen[64], log[300];
    snprintf(listen, sizeof listen, "--metrics-listen=127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/%s", env.etcd.dir, logname);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--docker-host", env.dockerd->host, "--etcd-endpoints", env.etcd.endpoints,
              "--hostname", "testhost", "--ttl", ttl, "--etcd-prefix", prefix, listen,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool need_all(void)
{
    return docker_env_need(&env, "clusterf-docker") && CHECK(DAEMON > 0);
}

/* /metrics once clusterf_docker_backends_written is want, or the last text; caller frees. */
static char *metrics_when_written(double want)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", PORT);
    for (int i = 0; i < 300; i++) {
        free(body);
        prom_http_get(env.etcd.dir, url, &body);
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
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints=%s get --prefix --keys-only "
             "'%s' 2>/dev/null",
             env.etcd.endpoints, prefix);
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
    CHECK(prom_wait_status(env.etcd.dir, PORT, "/healthz", 200, 30, NULL));
    int r = dockerd_harness_docker(env.dockerd, NULL, 0,
                                   "run -d --name m1 --expose 8080 -l " L ".service=web -l " L
                                   ".backend.tcp=8080 %s sleep 600",
                                   env.dockerd->image);
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
    CHECK(prom_wait_status(env.etcd.dir, PORT, "/readyz", 200, 30, NULL));
    CHECK_INT(prom_check_metrics(env.etcd.dir, body, &out), 0);
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
    pid_t prom = prom_start(env.etcd.dir, "clusterf-docker", PORT, &port);
    if (!CHECK(prom > 0))
        return;
    CHECK_MSG(prom_wait_query(env.etcd.dir, port, "up%7Bjob%3D%22clusterf-docker%22%7D", "1", 120),
              "Prometheus never saw up == 1 (see %s/prometheus-clusterf-docker.log)", env.etcd.dir);
    CHECK(prom_wait_query(env.etcd.dir, port, "clusterf_docker_backends_written", "1", 60));
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
}

/* dockerd stopped: /readyz 503 naming dockerd; started again: 200. */
static void test_readyz_follows_dockerd(void)
{
    char *body = NULL;
    if (!need_all())
        return;
    CHECK(prom_wait_status(env.etcd.dir, PORT, "/readyz", 200, 60, NULL));
    CHECK_INT(dockerd_harness_stop(env.dockerd), 0);
    CHECK_MSG(prom_wait_status(env.etcd.dir, PORT, "/readyz", 503, 60, &body),
              "/readyz never 503 with dockerd stopped");
    CHECK_MSG(body && strstr(body, "dockerd"), "reason: %s", body ? body : "");
    free(body);
    CHECK(prom_wait_status(env.etcd.dir, PORT, "/healthz", 200, 10, NULL));
    CHECK_INT(dockerd_harness_restart(env.dockerd), 0);
    CHECK_MSG(prom_wait_status(env.etcd.dir, PORT, "/readyz", 200, 120, NULL),
              "/readyz not 200 after dockerd came back");
}

/* etcd hung (SIGSTOP: its sockets stay open, nothing answers): /readyz turns 503 naming
 * etcd once the lease's next keep-alive is overdue (TTL/3 + 2 s), long before the lease
 * itself is given up (the TTL: 90 s here, over the 60 s cap; before the fix /readyz stayed
 * 200 until then); resumed (SIGCONT): 200 again. Its own daemon, for the long TTL. */
static void test_readyz_follows_etcd(void)
{
    char *body = NULL;
    if (!need_all())
        return;
    int port = prom_free_port();
    pid_t d = start_daemon(port, "90s", "/ready", "clusterf-docker-ready.log");
    pid_t etcd = env.etcd.m[0].pid;
    CHECK(prom_wait_status(env.etcd.dir, port, "/readyz", 200, 120, NULL));
    if (!CHECK_MSG(kill(etcd, SIGSTOP) == 0, "SIGSTOP etcd: %s", strerror(errno)))
        goto out;
    CHECK_MSG(prom_wait_status(env.etcd.dir, port, "/readyz", 503, 60, &body),
              "/readyz never 503 with etcd hung");
    CHECK_MSG(body && strstr(body, "etcd"), "reason: %s", body ? body : "");
    free(body);
    CHECK(prom_wait_status(env.etcd.dir, port, "/healthz", 200, 10, NULL));
    CHECK_INT(kill(etcd, SIGCONT), 0);
    CHECK_MSG(prom_wait_status(env.etcd.dir, port, "/readyz", 200, 120, NULL),
              "/readyz not 200 after etcd resumed");
out:
    kill(etcd, SIGCONT);
    kill(d, SIGTERM);
    waitpid(d, NULL, 0);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    docker_env_start(&env, "cfdm");
    docker_env_bin(&env, "clusterf-docker", bin, sizeof bin);
    if (env.dockerd_rc == 0 && env.etcd_rc == 0 && access(bin, X_OK) == 0) {
        PORT = prom_free_port();
        DAEMON = start_daemon(PORT, "3s", "/clusterf", "clusterf-docker.log");
    }
    check_run("backend_counted", test_backend_counted);
    check_run("prometheus_scrapes", test_prometheus_scrapes);
    check_run("readyz_follows_etcd", test_readyz_follows_etcd);
    check_run("readyz_follows_dockerd", test_readyz_follows_dockerd);
    if (DAEMON > 0) {
        kill(DAEMON, SIGTERM);
        waitpid(DAEMON, NULL, 0);
    }
    if (env.dockerd)
        dockerd_harness_docker(env.dockerd, NULL, 0, "rm -f m1 >/dev/null 2>&1");
    docker_env_finish(&env);
    return check_end();
}
