/* test_metrics.c -- clusterf-ipvs's --metrics-listen against real consumers: a real etcd on
 * loopback feeds a dry run (no IPVS on the host: the dry run's in-memory table), `promtool
 * check metrics` finds no problem in /metrics, a real Prometheus server scrapes it and its
 * query API answers up == 1 and the table's counts, and /readyz turns 503 while etcd is
 * stopped (SIGSTOP) and 200 again after SIGCONT. The kernel's own counters are compared with
 * ipvsadm in the VM (tests/vm/guest_clusterf_ipvs.sh). */
#include "check.h"
#include "etcd_harness.h"
#include "prom_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static etcdh H;
static int etcd_rc;
static char BIN[256];
static int PORT;          /* clusterf-ipvs's metrics port */
static pid_t IPVS = -1;

static void put(const char *key, const char *value)
{
    CHECK_INT(etcdh_ctl(&H, "put -- '%s' '%s'", key, value), 0);
}

static pid_t start_ipvs(void)
{
    char listen[64], state[200], log[200];
    snprintf(listen, sizeof listen, "--metrics-listen=:%d", PORT);
    snprintf(state, sizeof state, "--state-dir=%s", H.dir);
    snprintf(log, sizeof log, "%s/ipvs.log", H.dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(BIN, BIN, "--dry-run", state, listen, "--etcd-endpoints", H.endpoints,
              "--metrics-kernel-interval=1s", "--ready-etcd-timeout=3s", "--log-level=debug",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool ready(void)
{
    if (access(BIN, X_OK) != 0) {
        check_skip("%s is not built (make all)", BIN);
        return false;
    }
    return check_need(etcd_rc, "etcd (etcd-server etcd-client)") && CHECK(IPVS > 0);
}

/* /metrics once clusterf_destinations_managed is want (kernel counters are dumped every
 * second), or the last text; caller frees. */
static char *metrics_when_dests(double want)
{
    char url[128], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", PORT);
    for (int i = 0; i < 150; i++) {
        free(body);
        prom_http_get(H.dir, url, &body);
        if (body && prom_sample(body, "clusterf_destinations_managed") == want)
            break;
        usleep(200000);
    }
    return body;
}

/* True when the daemon's log holds s. */
static bool log_has(const char *s)
{
    char path[256], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/ipvs.log", H.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(f);
    if (mem)
        fclose(mem);
    bool found = text && strstr(text, s);
    free(text);
    return found;
}

/* /healthz is 200 at once; /readyz 200 after the first full pass; /metrics counts what the
 * dry run's table holds and the invalid key; promtool finds nothing to say. The kernel is
 * dumped for its counters only once /metrics was read: never before (/readyz is published
 * by the same ticks, so several have run). */
static void test_endpoints_and_promtool(void)
{
    if (!ready())
        return;
    char *body = NULL, *out = NULL;
    CHECK(prom_wait_status(H.dir, PORT, "/healthz", 200, 30, NULL));
    CHECK_MSG(prom_wait_status(H.dir, PORT, "/readyz", 200, 60, &body), "/readyz never 200");
    CHECK(body && strcmp(body, "ready\n") == 0);
    free(body);
    CHECK_MSG(!log_has("kernel counters dumped"), "the kernel was dumped before any scrape");
    body = metrics_when_dests(2);
    CHECK(log_has("kernel counters dumped"));
    CHECK_MSG(prom_sample(body, "clusterf_destinations_managed") == 2,
              "clusterf_destinations_managed never 2:\n%s", body ? body : "");
    CHECK(prom_sample(body, "clusterf_services_managed") == 1);
    CHECK(prom_sample(body, "clusterf_config_invalid_keys{source=\"etcd\"}") == 1);
    CHECK(prom_sample(body, "clusterf_reconcile_passes_total{kind=\"full\",result=\"ok\"}") >= 1);
    CHECK(prom_sample(body, "clusterf_reconcile_duration_seconds_count{kind=\"full\"}") >= 1);
    CHECK(prom_sample(body, "clusterf_kernel_ops_total{op=\"add-dest\",result=\"applied\"}") == 2);
    CHECK(prom_sample(body, "clusterf_ipvs_destination_connections_total{service=\"web\","
                      "protocol=\"tcp\",vip=\"10.0.0.1:80\",destination=\"10.1.0.2:8080\"}") == 0);
    CHECK(prom_sample(body, "clusterf_etcd_connected") == 1);
    CHECK(prom_sample(body, "clusterf_etcd_watch_revision") >= 4);
    CHECK(prom_sample(body, "clusterf_ready") == 1);
    CHECK_INT(prom_check_metrics(H.dir, body, &out), 0);
    CHECK_MSG(out && !out[0], "promtool check metrics: %s", out ? out : "");
    free(out);
    free(body);
}

/* A real Prometheus server scrapes the daemon: up == 1, and the series it stored hold the
 * dry run's table. */
static void test_prometheus_scrapes(void)
{
    if (!ready())
        return;
    if (!prom_available()) {
        check_skip("prometheus is not installed (scripts/install-deps)");
        return;
    }
    int port = 0;
    pid_t prom = prom_start(H.dir, "clusterf-ipvs", PORT, &port);
    if (!CHECK(prom > 0))
        return;
    CHECK_MSG(prom_wait_query(H.dir, port, "up%7Bjob%3D%22clusterf-ipvs%22%7D", "1", 120),
              "Prometheus never saw up == 1 (see %s/prometheus-clusterf-ipvs.log)", H.dir);
    CHECK(prom_wait_query(H.dir, port, "clusterf_destinations_managed", "2", 60));
    CHECK(prom_wait_query(H.dir, port, "clusterf_services_managed", "1", 60));
    CHECK(prom_wait_query(H.dir, port, "sum(clusterf_kernel_ops_total%7Bresult%3D%22applied%22%7D)",
                          "3", 60));
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
}

/* Exit status of `clusterfctl health --path=PATH` with CLUSTERF_METRICS_LISTEN=:PORT. */
static int ctl_health_rc(const char *path)
{
    char cmd[1200];
    const char *b = getenv("BUILD");
    snprintf(cmd, sizeof cmd, "CLUSTERF_METRICS_LISTEN=:%d %s/clusterfctl health --path=%s",
             PORT, b && *b ? b : "build", path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* /readyz says 503 (naming etcd) while etcd is stopped, and 200 again once it runs; a
 * backend added meanwhile shows up in the metrics after. */
static void test_readyz_follows_etcd(void)
{
    if (!ready())
        return;
    CHECK(prom_wait_status(H.dir, PORT, "/readyz", 200, 60, NULL));
    kill(H.m[0].pid, SIGSTOP);
    char *body = NULL;
    CHECK_MSG(prom_wait_status(H.dir, PORT, "/readyz", 503, 60, &body),
              "/readyz never 503 with etcd stopped");
    CHECK_MSG(body && strstr(body, "etcd"), "reason: %s", body ? body : "");
    free(body);
    CHECK(prom_wait_status(H.dir, PORT, "/healthz", 200, 10, NULL));
    /* clusterfctl health (the image's HEALTHCHECK) says the same: healthz 200, readyz not */
    CHECK_INT(ctl_health_rc("/healthz"), 0);
    CHECK_INT(ctl_health_rc("/readyz"), 1);
    kill(H.m[0].pid, SIGCONT);
    CHECK_MSG(prom_wait_status(H.dir, PORT, "/readyz", 200, 60, NULL),
              "/readyz not 200 after etcd came back");
    put("/clusterf/services/web/backends/c", "{\"IPv4\":\"10.1.0.3\",\"TCP\":8080}");
    body = metrics_when_dests(3);
    CHECK(prom_sample(body, "clusterf_destinations_managed") == 3);
    CHECK(prom_sample(body, "clusterf_etcd_reconnects_total") >= 1);
    CHECK(prom_sample(body, "clusterf_reconcile_passes_total{kind=\"incremental\",result=\"ok\"}") >= 1);
    free(body);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    const char *b = getenv("BUILD");
    snprintf(BIN, sizeof BIN, "%s/clusterf-ipvs", b && *b ? b : "build");
    etcd_rc = etcdh_start(&H, 1);
    if (etcd_rc == 0 && access(BIN, X_OK) == 0) {
        put("/clusterf/services/web/frontend", "{\"IPv4\":\"10.0.0.1\",\"TCP\":80}");
        put("/clusterf/services/web/backends/a", "{\"IPv4\":\"10.1.0.1\",\"TCP\":8080}");
        put("/clusterf/services/web/backends/b", "{\"IPv4\":\"10.1.0.2\",\"TCP\":8080}");
        put("/clusterf/services/bad/frontend", "not json");
        PORT = prom_free_port();
        IPVS = start_ipvs();
    }
    check_run("endpoints_and_promtool", test_endpoints_and_promtool);
    check_run("prometheus_scrapes", test_prometheus_scrapes);
    check_run("readyz_follows_etcd", test_readyz_follows_etcd);
    if (IPVS > 0) {
        kill(IPVS, SIGTERM);
        waitpid(IPVS, NULL, 0);
    }
    if (etcd_rc == 0)
        etcdh_destroy(&H);
    return check_end();
}
