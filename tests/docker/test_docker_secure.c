/* test_docker_secure.c -- clusterf-docker against an etcd that demands client certificates
 * (TLS, a CA made by the test) and authentication, as the "writer" user whose role may write
 * /clusterf/services/ only (password from CLUSTERF_ETCD_PASSWORD, never in argv): a labelled
 * container of a private dockerd becomes a backend key under its lease, and SIGTERM revokes it
 * (exit 0). A wrong password is a clear error and an exit status, not a crash or a hang. */
#include "check.h"
#include "docker_env.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"

static docker_env env;
static char bin[512]; /* build/clusterf-docker */

/* clusterf-docker as user writer with password pw, logging to log; its pid. */
static pid_t start_daemon(const char *pw, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (!f || dup2(1, 2) < 0)
            _exit(126);
        setenv("CLUSTERF_ETCD_PASSWORD", pw, 1);
        execl(bin, bin, "--docker-host", env.dockerd->host, "--etcd-endpoints", env.etcd.endpoints,
              "--etcd-cacert", env.etcd.ca, "--etcd-cert", env.etcd.cert, "--etcd-key",
              env.etcd.key, "--etcd-user", "writer", "--etcd-timeout", "3s", "--hostname",
              "testhost", "--ttl", "3s", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Keys under prefix (etcdctl as root, TLS), or -1. */
static long key_count(const char *prefix)
{
    char cmd[1200], line[300];
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints=%s --cacert=%s --cert=%s "
             "--key=%s --user root:rootpw get --prefix --keys-only '%s' 2>/dev/null",
             env.etcd.endpoints, env.etcd.ca, env.etcd.cert, env.etcd.key, prefix);
    FILE *f = popen(cmd, "r");
    long n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, prefix, strlen(prefix)) == 0;
    return f && pclose(f) == 0 ? n : -1;
}

static bool wait_count(const char *prefix, long want)
{
    for (int i = 0; i < 300; i++, usleep(200000))
        if (key_count(prefix) == want)
            return true;
    return false;
}

static int setup_auth(void)
{
    return etcdh_ctl(&env.etcd, "user add root:rootpw") | etcdh_ctl(&env.etcd, "role add writer") |
           etcdh_ctl(&env.etcd,
                     "role grant-permission writer --prefix=true readwrite /clusterf/services/") |
           etcdh_ctl(&env.etcd, "user add writer:writepw") |
           etcdh_ctl(&env.etcd, "user grant-role writer writer") |
           etcdh_ctl(&env.etcd, "auth enable");
}

static void test_registers_under_tls_and_auth(void)
{
    if (!docker_env_need(&env, "clusterf-docker"))
        return;
    if (!CHECK_MSG(setup_auth() == 0, "users and roles (see %s/etcdctl.log)", env.etcd.dir))
        return;
    char log[300];
    snprintf(log, sizeof log, "%s/clusterf-docker.log", env.etcd.dir);
    pid_t d = start_daemon("writepw", log);
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0,
                                     "run -d --name s1 --expose 8080 -l " L ".service=web -l " L
                                     ".backend.tcp=8080 %s sleep 600",
                                     env.dockerd->image),
              0);
    CHECK_MSG(wait_count("/clusterf/services/web/backends/", 1),
              "the backend never appeared (see %s)", log);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -a -q writepw /proc/%d/cmdline", (int)d);
    CHECK_MSG(system(cmd) != 0, "the password is in clusterf-docker's argv");
    kill(d, SIGTERM);
    int st = 0;
    waitpid(d, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    CHECK_MSG(wait_count("/clusterf/services/web/backends/", 0), "the key outlived SIGTERM");
    /* a wrong password: said clearly, nothing written, and SIGTERM still ends it with 0 */
    snprintf(log, sizeof log, "%s/clusterf-docker-badpw.log", env.etcd.dir);
    d = start_daemon("nope", log);
    snprintf(cmd, sizeof cmd, "grep -q 'authentication failed' %s", log);
    bool said = false;
    for (int i = 0; i < 150 && !said; i++, usleep(200000))
        said = system(cmd) == 0;
    CHECK_MSG(said, "no 'authentication failed' in %s", log);
    CHECK_INT(key_count("/clusterf/services/web/backends/"), 0);
    kill(d, SIGTERM);
    waitpid(d, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wrong password: exit status %d", st);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    env.etcd.tls = true;
    env.etcd.client_cert_auth = true;
    snprintf(env.etcd.extra_args, sizeof env.etcd.extra_args,
             "--auth-token=simple --auth-token-ttl=2");
    docker_env_start(&env, "cfds");
    docker_env_bin(&env, "clusterf-docker", bin, sizeof bin);
    check_run("registers_under_tls_and_auth", test_registers_under_tls_and_auth);
    if (env.dockerd)
        dockerd_harness_docker(env.dockerd, NULL, 0, "rm -f s1 >/dev/null 2>&1");
    docker_env_finish(&env);
    return check_end();
}
