/* test_harness_verdicts.c -- an installed etcd or dockerd that does not start is a failure, an
 * absent one a skip (a failure under CLUSTERF_REQUIRE_ALL=1). Each case runs this binary again
 * as a one-test suite (HARNESS_VERDICT_CASE=<case>) that starts a real etcd or a real private
 * dockerd broken on purpose and judges it with check_need(), as every suite does; the parent
 * reads the child's summary line and exit status. */
#include "check.h"
#include "dockerd_harness.h"
#include "etcd_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "test_harness_verdicts"

static char self[512];

/* ---- the child's cases: start a prerequisite that cannot work ---- */

static void start_etcd(const char *extra_args)
{
    etcdh h = {0};
    snprintf(h.extra_args, sizeof h.extra_args, "%s", extra_args);
    int rc = etcdh_start(&h, 1);
    check_need(rc, "etcd (etcd-server etcd-client)");
    if (rc == 0)
        etcdh_destroy(&h);
}

/* etcd whose data dir cannot be created. */
static void case_etcd_bad_data_dir(void)
{
    start_etcd("--data-dir=/proc/clusterf-no-such-dir");
}

/* etcd whose client port is already taken by a listening socket. */
static void case_etcd_port_taken(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (!CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
               listen(fd, 1) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0))
        goto out;
    char extra[128];
    snprintf(extra, sizeof extra, "--listen-client-urls=http://127.0.0.1:%d", ntohs(sa.sin_port));
    start_etcd(extra);
out:
    if (fd >= 0)
        close(fd);
}

/* No etcd binary (CLUSTERF_TEST_ETCD points nowhere). */
static void case_etcd_absent(void)
{
    start_etcd("");
}

/* dockerd started with a flag it does not know (CFD_DOCKERD_FLAGS, set by the parent). */
static void case_dockerd_broken(void)
{
    dockerd_harness *h = NULL;
    char why[512] = "";
    check_need(dockerd_harness_start(&h, why, sizeof why), why);
    dockerd_harness_free(h);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"etcd_bad_data_dir", case_etcd_bad_data_dir},
    {"etcd_port_taken", case_etcd_port_taken},
    {"etcd_absent", case_etcd_absent},
    {"dockerd_broken", case_dockerd_broken},
};

static int run_case(const char *name)
{
    char *argv[] = {PROG, NULL};
    check_init(1, argv);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(cases[i].name, name) == 0)
            check_run(name, cases[i].fn);
    return check_end();
}

/* ---- the parent: run a case, compare its verdict ---- */

/* Run case with the environment assignments env; its output into out, returns its exit
 * status (or -1). */
static int child(const char *name, const char *env, char *out, size_t size)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "env HARNESS_VERDICT_CASE=%s CLUSTERF_REQUIRE_ALL=0 %s '%s' 2>&1",
             name, env, self);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int st = p ? pclose(p) : -1;
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The case must end with summary want ("0 passed, 1 failed, 0 skipped") and exit status rc. */
static void expect(const char *name, const char *env, const char *want, int rc)
{
    static char out[65536];
    char line[128];
    int st = child(name, env, out, sizeof out);
    snprintf(line, sizeof line, "%s: %s\n", PROG, want);
    if (!CHECK_MSG(strstr(out, line) && st == rc, "%s %s: want \"%s\", exit %d; got exit %d:\n%s",
                   name, env, want, rc, st, out))
        return;
    const char *msg = strstr(out, "did not start");
    if (!msg)
        msg = strstr(out, "not installed");
    printf("    %s -> %s (%.*s)\n", name, want, msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
}

static bool need_etcd(void)
{
    return check_need(etcdh_available() ? 0 : -ENOENT, "etcd (etcd-server etcd-client)");
}

static void test_etcd_bad_data_dir_fails(void)
{
    if (need_etcd())
        expect("etcd_bad_data_dir", "", "0 passed, 1 failed, 0 skipped", 1);
}

static void test_etcd_port_taken_fails(void)
{
    if (need_etcd())
        expect("etcd_port_taken", "", "0 passed, 1 failed, 0 skipped", 1);
}

static void test_etcd_absent_skips(void)
{
    const char *absent = "CLUSTERF_TEST_ETCD=/nonexistent/etcd";
    expect("etcd_absent", absent, "0 passed, 0 failed, 1 skipped", 0);
    char env[128];
    snprintf(env, sizeof env, "%s CLUSTERF_REQUIRE_ALL=1", absent);
    expect("etcd_absent", env, "0 passed, 1 failed, 0 skipped", 1);
}

/* Needs the private dockerd's prerequisites (root, docker.io, busybox-static): when the child
 * finds them missing, this is a skip with its reason. */
static void test_dockerd_broken_fails(void)
{
    static char out[65536];
    const char *env = "CFD_DOCKERD_FLAGS=--clusterf-no-such-flag";
    child("dockerd_broken", env, out, sizeof out);
    const char *skipped = strstr(out, "SKIPPED dockerd_broken: ");
    if (skipped) {
        check_skip("%.*s", (int)strcspn(skipped, "\n"), skipped);
        return;
    }
    expect("dockerd_broken", env, "0 passed, 1 failed, 0 skipped", 1);
}

int main(int argc, char **argv)
{
    const char *c = getenv("HARNESS_VERDICT_CASE");
    if (c)
        return run_case(c);
    check_init(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    check_run("etcd_bad_data_dir_fails", test_etcd_bad_data_dir_fails);
    check_run("etcd_port_taken_fails", test_etcd_port_taken_fails);
    check_run("etcd_absent_skips", test_etcd_absent_skips);
    check_run("dockerd_broken_fails", test_dockerd_broken_fails);
    return check_end();
}
