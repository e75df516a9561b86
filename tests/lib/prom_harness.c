/* prom_harness.c -- curl, promtool and a real Prometheus server for the metrics tests
 * (see prom_harness.h). */
#include "prom_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int prom_free_port(void)
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

int prom_http_get(const char *dir, const char *url, char **body)
{
    char cmd[1200], out[300], code[300];
    snprintf(out, sizeof out, "%s/http.body", dir);
    snprintf(code, sizeof code, "%s/http.code", dir);
    unlink(out);
    snprintf(cmd, sizeof cmd, "curl -s -g -m 10 -o %s -w '%%{http_code}' '%s' > %s 2>/dev/null",
             out, url, code);
    int st = system(cmd);
    char *c = slurp(code);
    int status = st == 0 && c ? atoi(c) : 0;
    free(c);
    *body = slurp(out);
    return status;
}

bool prom_wait_status(const char *dir, int port, const char *path, int want, int cap_s,
                      char **body)
{
    char url[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    for (int i = 0; i < cap_s * 5; i++) {
        char *b = NULL;
        if (prom_http_get(dir, url, &b) == want) {
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

double prom_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1e99;
}

int prom_check_metrics(const char *dir, const char *text, char **out)
{
    char path[300], outp[300], cmd[800];
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    snprintf(outp, sizeof outp, "%s/promtool.out", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text ? text : "", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", path, outp);
    int st = system(cmd);
    *out = slurp(outp);
    return st == -1 ? -1 : (st >> 8) & 0xff;
}

bool prom_available(void)
{
    return system("command -v prometheus > /dev/null && command -v promtool > /dev/null") == 0;
}

pid_t prom_start(const char *dir, const char *job, int target_port, int *port)
{
    char cfg[300], log[300], a_cfg[320], a_data[320], a_listen[64];
    snprintf(cfg, sizeof cfg, "%s/prometheus-%s.yml", dir, job);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -1;
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
               "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
               "      - targets: ['127.0.0.1:%d']\n", job, target_port);
    fclose(f);
    *port = prom_free_port();
    snprintf(log, sizeof log, "%s/prometheus-%s.log", dir, job);
    snprintf(a_cfg, sizeof a_cfg, "--config.file=%s", cfg);
    snprintf(a_data, sizeof a_data, "--storage.tsdb.path=%s/prometheus-%s-data", dir, job);
    snprintf(a_listen, sizeof a_listen, "--web.listen-address=127.0.0.1:%d", *port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("prometheus", "prometheus", a_cfg, a_data, a_listen, (char *)NULL);
        _exit(127);
    }
    return pid;
}

bool prom_wait_query(const char *dir, int port, const char *query, const char *want, int cap_s)
{
    char url[600], needle[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/query?query=%s", port, query);
    snprintf(needle, sizeof needle, ",\"%s\"]", want);
    for (int i = 0; i < cap_s * 2; i++) {
        char *b = NULL;
        bool ok = prom_http_get(dir, url, &b) == 200 && b &&
                  strstr(b, "\"status\":\"success\"") && strstr(b, needle);
        free(b);
        if (ok)
            return true;
        usleep(500000);
    }
    return false;
}
