/* test_metrics.c -- clusterf-ipvs's --metrics-listen against real consumers: a real etcd on
 * loopback feeds a dry run (no IPVS on the host: the dry run's in-memory table), `promtool
 * check metrics` finds no problem in /metrics, a real Prometheus server scrapes it and its
 * query API answers up == 1 and the table's counts, and /readyz turns 503 while etcd is
 * stopped (SIGSTOP) and 200 again after SIGCONT. The kernel's own counters are compared with
 * ipvsadm in the VM (tests/vm/guest_clusterf_ipvs.sh). */
#include "check.h"
#include "etcd_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static etcdh H;
static int etcd_rc;
static char BIN[256];
static int PORT;          /* clusterf-ipvs's metrics port */
static pid_t IPVS = -1;

/* A free loopback TCP port (bound to 0 and released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);
    if (f && buf)
        buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
    if (f)
        fclose(f);
    return buf;
}

/* GET url with curl; the body (caller frees) in *body; returns the HTTP status, 0 when none. */
static int http_get(const char *url, char **body)
{
    char cmd[700], out[300], code[300];
    snprintf(out, sizeof out, "%s/http.body", H.dir);
    snprintf(code, sizeof code, "%s/http.code", H.dir);
    snprintf(cmd, sizeof cmd, "curl -s -g -m 10 -o %s -w '%%{http_code}' '%s' > %s 2>/dev/null",
             out, url, code);
    int st = system(cmd);
    char *c = slurp(code);
    int status = st == 0 && c ? atoi(c) : 0;
    free(c);
    *body = slurp(out);
    return status;
}

static int local_get(const char *path, char **body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", PORT, path);
    return http_get(url, body);
}

/* Wait (up to cap_s) until path answers want; the last body in *body when not NULL. */
static bool wait_status(const char *path, int want, int cap_s, char **body)
{
    for (int i = 0; i < cap_s * 5; i++) {
        char *b = NULL;
        int st = local_get(path, &b);
        if (st == want) {
            if (body)
                *body = b;
            else
                free(b);
            return true;
        }
        free(b);
        usleep(200000);
    }
    return false;
}

/* The value of the sample line that starts with "name{labels} " (or "name "), or -1e99. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1e99;
}

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
              "--metrics-kernel-interval=1s", "--ready-etcd-timeout=3s", (char *)NULL);
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

/* /healthz is 200 at once; /readyz 200 after the first full pass; /metrics counts what the
 * dry run's table holds and the invalid key; promtool finds nothing to say. */
static void test_endpoints_and_promtool(void)
{
    if (!ready())
        return;
    char *body = NULL;
    CHECK(wait_status("/healthz", 200, 30, NULL));
    CHECK_MSG(wait_status("/readyz", 200, 60, &body), "/readyz never 200");
    CHECK(body && strcmp(body, "ready\n") == 0);
    free(body);
    body = NULL;
    /* Kernel counters are dumped every second: wait for both dests. */
    bool seen = false;
    for (int i = 0; i < 150 && !seen; i++) {
        free(body);
        body = NULL;
        local_get("/metrics", &body);
        seen = body && sample(body, "clusterf_destinations_managed") == 2;
        if (!seen)
            usleep(200000);
    }
    CHECK_MSG(seen, "clusterf_destinations_managed never 2:\n%s", body ? body : "");
    CHECK(sample(body, "clusterf_services_managed") == 1);
    CHECK(sample(body, "clusterf_config_invalid_keys{source=\"etcd\"}") == 1);
    CHECK(sample(body, "clusterf_reconcile_passes_total{kind=\"full\",result=\"ok\"}") >= 1);
    CHECK(sample(body, "clusterf_kernel_ops_total{op=\"add-dest\",result=\"applied\"}") == 2);
    CHECK(sample(body, "clusterf_ipvs_destination_connections_total{service=\"web\",protocol=\"tcp\",vip=\"10.0.0.1:80\",destination=\"10.1.0.2:8080\"}") == 0);
    CHECK(sample(body, "clusterf_etcd_connected") == 1);
    CHECK(sample(body, "clusterf_ready") == 1);
    char path[300], cmd[700];
    snprintf(path, sizeof path, "%s/metrics.txt", H.dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(body ? body : "", f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s/promtool.out 2>&1", path, H.dir);
    CHECK_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/promtool.out", H.dir);
    char *out = slurp(path);
    CHECK_MSG(out && !out[0], "promtool check metrics: %s", out ? out : "");
    free(out);
    free(body);
}

static pid_t start_prometheus(int port)
{
    char cfg[300], data[300], listen[64], log[300], flag_cfg[320], flag_data[320];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", H.dir);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -1;
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
               "scrape_configs:\n  - job_name: clusterf-ipvs\n    static_configs:\n"
               "      - targets: ['127.0.0.1:%d']\n", PORT);
    fclose(f);
    snprintf(data, sizeof data, "%s/prometheus-data", H.dir);
    snprintf(log, sizeof log, "%s/prometheus.log", H.dir);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(flag_cfg, sizeof flag_cfg, "--config.file=%s", cfg);
    snprintf(flag_data, sizeof flag_data, "--storage.tsdb.path=%s", data);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("prometheus", "prometheus", flag_cfg, flag_data, listen, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Ask Prometheus (up to cap_s) until the instant query's first value is want. */
static bool wait_query(int port, const char *query, const char *want, int cap_s)
{
    char url[400], needle[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/query?query=%s", port, query);
    snprintf(needle, sizeof needle, ",\"%s\"]", want);
    for (int i = 0; i < cap_s * 2; i++) {
        char *b = NULL;
        bool ok = http_get(url, &b) == 200 && b && strstr(b, "\"status\":\"success\"") &&
                  strstr(b, needle);
        free(b);
        if (ok)
            return true;
        usleep(500000);
    }
    return false;
}

/* A real Prometheus server scrapes the daemon: up == 1, and the series it stored hold the
 * dry run's table. */
static void test_prometheus_scrapes(void)
{
    if (!ready())
        return;
    if (system("command -v prometheus > /dev/null") != 0) {
        check_skip("prometheus is not installed (scripts/install-deps)");
        return;
    }
    int port = free_port();
    pid_t prom = start_prometheus(port);
    if (!CHECK(prom > 0))
        return;
    CHECK_MSG(wait_query(port, "up%7Bjob%3D%22clusterf-ipvs%22%7D", "1", 120),
              "Prometheus never saw up == 1 (see %s/prometheus.log)", H.dir);
    CHECK(wait_query(port, "clusterf_destinations_managed", "2", 60));
    CHECK(wait_query(port, "clusterf_services_managed", "1", 60));
    CHECK(wait_query(port, "sum(clusterf_kernel_ops_total%7Bresult%3D%22applied%22%7D)", "3", 60));
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
}

/* /readyz says 503 (naming etcd) while etcd is stopped, and 200 again once it runs. */
static void test_readyz_follows_etcd(void)
{
    if (!ready())
        return;
    CHECK(wait_status("/readyz", 200, 60, NULL));
    kill(H.m[0].pid, SIGSTOP);
    char *body = NULL;
    CHECK_MSG(wait_status("/readyz", 503, 60, &body), "/readyz never 503 with etcd stopped");
    CHECK_MSG(body && strstr(body, "etcd"), "reason: %s", body ? body : "");
    CHECK(wait_status("/healthz", 200, 10, NULL));
    free(body);
    kill(H.m[0].pid, SIGCONT);
    CHECK_MSG(wait_status("/readyz", 200, 60, NULL), "/readyz not 200 after etcd came back");
    body = NULL;
    local_get("/metrics", &body);
    CHECK(body && sample(body, "clusterf_etcd_reconnects_total") >= 1);
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
        PORT = free_port();
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
