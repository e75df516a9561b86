/* test_secure_e2e.c -- the three programs against an etcd that demands client certificates
 * (TLS with a CA made by the test) and authentication: a reader role that can only read
 * /clusterf/ and a writer role for the agents. clusterfctl get (reader) and register (writer),
 * clusterf-ipvs --dry-run (reader) following a watch across token refreshes (simple tokens
 * with a 2 s TTL); a wrong CA, a missing client certificate and a wrong password each fail
 * with a clear message and an exit status (no crash); the password is never in argv. */
#include "check.h"
#include "etcd_harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static etcdh H;
static char BUILD[200], TLS[1200], OUT[1 << 16];
static int SLOW; /* time bounds x this (check_slow_factor: make memcheck) */

/* Run a shell command line; its output (stdout + stderr) in OUT; its exit status (128 + signal
 * when killed). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096], line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "{ %s ; } > %s/sh.out 2>&1", cmd, H.dir);
    int st = system(line);
    snprintf(line, sizeof line, "%s/sh.out", H.dir);
    FILE *f = fopen(line, "r");
    size_t n = f ? fread(OUT, 1, sizeof OUT - 1, f) : 0;
    OUT[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait up to cap_ms for a line matching the grep pattern in the file H.dir/log; true when one
 * came. */
static bool wait_log(const char *log, const char *pattern, int cap_ms)
{
    for (int waited = 0; waited <= cap_ms; waited += 100, usleep(100 * 1000))
        if (sh("grep -q -- '%s' %s/%s", pattern, H.dir, log) == 0)
            return true;
    return false;
}

/* True when the process whose pid is in the file H.dir/pidfile has ended (gone, or a zombie
 * nobody reaped yet): polled up to cap_ms. Under make memcheck, its valgrind log is whole then. */
static bool wait_exit(const char *pidfile, int cap_ms)
{
    char path[300], state = 0;
    snprintf(path, sizeof path, "%s/%s", H.dir, pidfile);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0) {
        if (f)
            fclose(f);
        return false;
    }
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    for (int waited = 0; waited <= cap_ms; waited += 100, usleep(100 * 1000)) {
        f = fopen(path, "r");
        if (!f)
            return true;
        bool read = fscanf(f, "%*d (%*[^)]) %c", &state) == 1;
        fclose(f);
        if (read && state == 'Z')
            return true;
    }
    return false;
}

/* root (for the test), reader (read /clusterf/), writer (readwrite /clusterf/services/). */
static int setup_auth(void)
{
    return etcdh_ctl(&H, "user add root:rootpw") | etcdh_ctl(&H, "role add reader") |
           etcdh_ctl(&H, "role grant-permission reader --prefix=true read /clusterf/") |
           etcdh_ctl(&H, "user add reader:readpw") | etcdh_ctl(&H, "user grant-role reader reader") |
           etcdh_ctl(&H, "role add writer") |
           etcdh_ctl(&H, "role grant-permission writer --prefix=true readwrite /clusterf/services/") |
           etcdh_ctl(&H, "user add writer:writepw") | etcdh_ctl(&H, "user grant-role writer writer") |
           etcdh_ctl(&H, "auth enable");
}

static void put_root(const char *key, const char *val)
{
    CHECK_INT(etcdh_ctl(&H, "--user root:rootpw put %s '%s'", key, val), 0);
}

/* The agents and the operator, each with its user: clusterfctl get/register, clusterf-ipvs. */
static void test_programs_work(void)
{
    put_root("/clusterf/services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}");
    CHECK_INT(sh("CLUSTERF_ETCD_PASSWORD=readpw %s/clusterfctl get %s --etcd-user=reader", BUILD, TLS), 0);
    CHECK_MSG(strstr(OUT, "services/web/frontend"), "%s", OUT);
    /* the writer registers a backend under a lease (password from a file) */
    char pwf[300];
    snprintf(pwf, sizeof pwf, "%s/writer.pw", H.dir);
    FILE *f = fopen(pwf, "w");
    CHECK(f && fputs("writepw\n", f) >= 0 && fclose(f) == 0);
    CHECK_INT(sh("%s/clusterfctl register web b1 --ipv4 10.1.0.1 --tcp 80 --ttl %ds %s "
                 "--etcd-user=writer --etcd-password-file=%s > %s/reg.log 2>&1 & echo $! > %s/reg.pid",
                 BUILD, 5 * SLOW, TLS, pwf, H.dir, H.dir), 0);
    /* clusterf-ipvs, dry run, as the reader: reads, then follows the watch across several
     * 2 s token lifetimes */
    CHECK_INT(sh("CLUSTERF_ETCD_PASSWORD=readpw %s/clusterf-ipvs --dry-run %s --etcd-user=reader "
                 "--state-dir= --resync-interval=0 --log-level=debug > %s/ipvs.log 2>&1 & "
                 "echo $! > %s/ipvs.pid", BUILD, TLS, H.dir, H.dir), 0);
    CHECK_MSG(wait_log("ipvs.log", "dest=10.1.0.1:80", 20000 * SLOW),
              "the registered backend reached clusterf-ipvs");
    sleep(5); /* beyond two token lifetimes */
    put_root("/clusterf/services/web/backends/late", "{\"ipv4\":\"10.1.0.9\",\"tcp\":80}");
    CHECK_MSG(wait_log("ipvs.log", "dest=10.1.0.9:80", 20000 * SLOW),
              "a put after the token expired reached clusterf-ipvs through its watch");
    CHECK_INT(sh("grep -c 'level=error' %s/ipvs.log", H.dir), 1); /* grep: no match -> 1 */
    /* the password is in no process's argv */
    CHECK_INT(sh("grep -l -a 'readpw\\|writepw' /proc/$(cat %s/ipvs.pid)/cmdline "
                 "/proc/$(cat %s/reg.pid)/cmdline", H.dir, H.dir), 1);
    CHECK_INT(sh("kill -TERM $(cat %s/ipvs.pid) $(cat %s/reg.pid)", H.dir, H.dir), 0);
    CHECK_MSG(wait_log("ipvs.log", "exiting", 10000 * SLOW), "clusterf-ipvs logged its exit");
    CHECK_MSG(wait_log("reg.log", "revoked", 10000 * SLOW), "clusterfctl register revoked its lease");
    CHECK_MSG(wait_exit("ipvs.pid", 10000 * SLOW), "clusterf-ipvs exited after SIGTERM");
    CHECK_MSG(wait_exit("reg.pid", 10000 * SLOW), "clusterfctl register exited after SIGTERM");
}

/* Each mistake: a clear message, an exit status, no crash. */
static void test_mistakes_fail_clearly(void)
{
    static const struct { const char *what, *flags, *want; } cases[] = {
        {"wrong CA", "--etcd-cacert=%s --etcd-cert=%s --etcd-key=%s", "UNAVAILABLE"},
        {"no client certificate", "--etcd-cacert=%s", "UNAVAILABLE"},
        {"wrong password", "--etcd-cacert=%s --etcd-cert=%s --etcd-key=%s", "authentication failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char flags[900];
        if (i == 0)
            snprintf(flags, sizeof flags, cases[i].flags, H.wrong_ca, H.cert, H.key);
        else if (i == 1)
            snprintf(flags, sizeof flags, cases[i].flags, H.ca);
        else
            snprintf(flags, sizeof flags, cases[i].flags, H.ca, H.cert, H.key);
        int rc = sh("CLUSTERF_ETCD_PASSWORD=%s %s/clusterfctl get --etcd-endpoints=%s %s "
                    "--etcd-user=reader --etcd-timeout=%ds", i == 2 ? "nope" : "readpw", BUILD,
                    H.endpoints, flags, 3 * SLOW);
        CHECK_MSG(rc > 0 && rc < 128, "%s: clusterfctl exit %d", cases[i].what, rc);
        CHECK_MSG(strstr(OUT, cases[i].want), "%s: message: %s", cases[i].what, OUT);
        printf("  %s: exit %d: %.200s", cases[i].what, rc, OUT);
    }
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    SLOW = check_slow_factor();
    const char *b = getenv("BUILD");
    snprintf(BUILD, sizeof BUILD, "%s", b && *b ? b : "build");
    H.tls = true;
    H.client_cert_auth = true;
    snprintf(H.extra_args, sizeof H.extra_args, "--auth-token=simple --auth-token-ttl=2");
    int rc = etcdh_start(&H, 1);
    if (!check_need(rc, "etcd with TLS and client certificates")) {
        return check_end();
    }
    if (setup_auth() != 0) {
        check_fail(__FILE__, __LINE__, "cannot set up users and roles (see %s/etcdctl.log)", H.dir);
    } else {
        snprintf(TLS, sizeof TLS, "--etcd-endpoints=%s --etcd-cacert=%s --etcd-cert=%s --etcd-key=%s",
                 H.endpoints, H.ca, H.cert, H.key);
        check_run("programs_work", test_programs_work);
        check_run("mistakes_fail_clearly", test_mistakes_fail_clearly);
    }
    etcdh_destroy(&H);
    return check_end();
}
