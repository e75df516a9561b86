/* test_clusterf_docker.c -- the real build/clusterf-docker binary, run as a child process
 * against a private dockerd (dockerd_harness) and a real etcd (etcd_harness): labelled
 * containers appear as backend keys on a lease, follow pause/health/stop, vanish when the
 * daemon is killed (TTL) or stopped (revoked), and converge after dockerd and etcd restarts.
 * The keys are read back with our etcd client; each test uses its own --etcd-prefix. */
#include "check.h"
#include "child_proc.h"
#include "common/timeutil.h"
#include "docker_env.h"
#include "etcd_poll.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"
#define HOST "testhost"

static docker_env env;
static char bin[512]; /* build/clusterf-docker */

typedef child_proc daemon_t;

static bool need_all(void)
{
    return docker_env_need(&env, "clusterf-docker");
}

/* Start clusterf-docker with the common flags plus extra (space separated, no quoting). */
static bool daemon_start(daemon_t *d, const char *name, const char *extra)
{
    char *argv[40];
    int argc = 0;
    char extra_copy[512];
    argv[argc++] = bin;
    argv[argc++] = "--docker-host";
    argv[argc++] = env.dockerd->host;
    argv[argc++] = "--etcd-endpoints";
    argv[argc++] = env.etcd.endpoints;
    argv[argc++] = "--hostname";
    argv[argc++] = HOST;
    snprintf(extra_copy, sizeof(extra_copy), "%s", extra ? extra : "");
    for (char *t = strtok(extra_copy, " "); t && argc < 38; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    char log[160];
    snprintf(log, sizeof(log), "%s/%s.log", env.tmpdir, name);
    return CHECK_MSG(child_start(d, log, false, argv), "fork: %s", strerror(errno));
}

/* Send sig and wait up to timeout_ms; returns the exit status, 128+signal, or -1 (still up,
 * then killed). */
static int daemon_stop(daemon_t *d, int sig, int timeout_ms)
{
    return child_stop(d, sig, timeout_ms);
}

/* The normal stop: SIGTERM, and the daemon must exit 0. Nothing to check when it is not
 * running (never started, or stopped and checked already). */
static void daemon_stop_ok(daemon_t *d, int timeout_ms)
{
    if (d->pid <= 0)
        return;
    int st = daemon_stop(d, SIGTERM, timeout_ms);
    CHECK_MSG(st == 0, "SIGTERM: clusterf-docker (%s) exit status %d, want 0", d->log, st);
}

static bool daemon_alive(daemon_t *d)
{
    return child_alive(d);
}

static void show_log(const daemon_t *d)
{
    if (!check_failed() || !d->log[0])
        return;
    env.keep_logs = true;
    child_log_tail(d, 40);
}

static size_t log_count(const daemon_t *d, const char *a, const char *b)
{
    return child_log_count(d, a, b);
}

/* Read key: 1 (value copied, lease set), 0 (absent), -1 (error). */
static int get_key(const char *key, char *val, size_t size, int64_t *lease)
{
    return etcd_poll_get(env.client, key, val, size, lease);
}

/* Poll until key holds a value containing want (NULL: any). Returns true; val/lease filled. */
static bool wait_key(const char *key, const char *want, char *val, size_t size, int64_t *lease,
                     int timeout_ms)
{
    return etcd_poll_key(env.client, key, want, val, size, lease, timeout_ms);
}

/* Poll until key is absent; returns the ms it took, or -1. */
static int64_t wait_gone(const char *key, int timeout_ms)
{
    return etcd_poll_gone(env.client, key, timeout_ms);
}

static long count_prefix(const char *prefix)
{
    return etcd_poll_count(env.client, prefix);
}

static bool wait_count(const char *prefix, long want, int timeout_ms)
{
    int64_t end = clock_now_ms() + timeout_ms;
    long n;
    do {
        if ((n = count_prefix(prefix)) == want)
            return true;
        usleep(200000);
    } while (clock_now_ms() < end);
    return CHECK_MSG(false, "%s: %ld keys, want %ld", prefix, n, want);
}

static long json_int(const char *json, const char *field)
{
    json_object *o = json_tokener_parse(json), *v = NULL;
    long r = -1;
    if (o && json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_int))
        r = (long)json_object_get_int64(v);
    json_object_put(o);
    return r;
}

static void json_str(const char *json, const char *field, char *out, size_t size)
{
    json_object *o = json_tokener_parse(json), *v = NULL;
    out[0] = '\0';
    if (o && json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_string))
        snprintf(out, size, "%s", json_object_get_string(v));
    json_object_put(o);
}

/* Run a container; id gets its full id. */
static bool run(char *id, size_t size, const char *args)
{
    int r = dockerd_harness_docker(env.dockerd, id, size, "run -d %s %s sleep 600", args,
                                   env.dockerd->image);
    return CHECK_MSG(r == 0, "docker run %s: %d", args, r);
}

static void key_of(char *buf, size_t size, const char *prefix, const char *svc, const char *id)
{
    snprintf(buf, size, "%s/services/%s/backends/" HOST ":%.12s", prefix, svc, id);
}

static void docker_cleanup(void)
{
    dockerd_harness_docker(env.dockerd, NULL, 0, "rm -f $(docker -H '%s' ps -aq) >/dev/null 2>&1",
                           env.dockerd->host);
}

/* ---- tests ---- */

/* The seed example, multi-service labels, an unexposed port, pause, health, stop. */
static void test_lifecycle(void)
{
    daemon_t d = {0};
    char id[128], ip[64], k[512], v[1024], m[128], kweb[512], kdns[512], nox[128], hc[128];
    int64_t lease = 0;
    if (!need_all() || !daemon_start(&d, "lifecycle", "--ttl 3s"))
        goto out;
    if (!run(id, sizeof(id), "--name seed --expose 8080 -l " L ".service=test -l " L
             ".backend.tcp=8080"))
        goto out;
    dockerd_harness_docker(env.dockerd, ip, sizeof(ip),
                           "inspect -f '{{.NetworkSettings.IPAddress}}' seed");
    key_of(k, sizeof(k), "/clusterf", "test", id);
    if (wait_key(k, NULL, v, sizeof(v), &lease, 30000)) {
        char got[64];
        json_str(v, "ipv4", got, sizeof(got));
        CHECK_STR(got, ip);
        CHECK_INT(json_int(v, "tcp"), 8080);
        CHECK_INT(json_int(v, "weight"), 10);
        CHECK_MSG(lease != 0, "key %s has no lease", k);
    }
    CHECK(log_count(&d, "msg=\"put\"", k) >= 1);

    /* Two services, per-service udp port. */
    run(m, sizeof(m), "--name multi --expose 80 --expose 53/udp -l '" L ".service=web dns' -l "
        L ".backend.tcp=80 -l " L ".backend:dns.udp=53");
    key_of(kweb, sizeof(kweb), "/clusterf", "web", m);
    key_of(kdns, sizeof(kdns), "/clusterf", "dns", m);
    if (wait_key(kweb, NULL, v, sizeof(v), NULL, 30000))
        CHECK_INT(json_int(v, "tcp"), 80);
    if (wait_key(kdns, NULL, v, sizeof(v), NULL, 30000)) {
        CHECK_INT(json_int(v, "udp"), 53);
        CHECK_INT(json_int(v, "tcp"), 80);
    }

    /* A port that is not exposed: warned, no key. */
    run(nox, sizeof(nox), "--name nox -l " L ".service=nox -l " L ".backend.tcp=9999");
    int64_t end = clock_now_ms() + 30000;
    while (clock_now_ms() < end && log_count(&d, "label warning", "not exposed") == 0)
        usleep(100000);
    CHECK_MSG(log_count(&d, "label warning", "not exposed") == 1, "unexposed port warned %zu times",
              log_count(&d, "label warning", "not exposed"));
    CHECK_INT(count_prefix("/clusterf/services/nox/"), 0);

    /* Pause -> weight 0, unpause -> 10. */
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "pause seed"), 0);
    wait_key(k, "\"weight\":0", NULL, 0, NULL, 30000);
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "unpause seed"), 0);
    wait_key(k, "\"weight\":10", NULL, 0, NULL, 30000);

    /* Health check: failing -> 0, passing -> 10, failing again -> 0. */
    run(hc, sizeof(hc), "--name hc --expose 80 -l " L ".service=hc -l " L ".backend.tcp=80 "
        "--health-cmd 'test -f /tmp/ok' --health-interval 1s --health-retries 1");
    char khc[512];
    key_of(khc, sizeof(khc), "/clusterf", "hc", hc);
    wait_key(khc, "\"weight\":0", NULL, 0, NULL, 30000);
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "exec hc touch /tmp/ok"), 0);
    wait_key(khc, "\"weight\":10", NULL, 0, NULL, 30000);
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "exec hc rm /tmp/ok"), 0);
    wait_key(khc, "\"weight\":0", NULL, 0, NULL, 30000);

    /* Stop -> the key goes at once (the lease is alive: only a delete removes it). */
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "stop -t 5 seed"), 0);
    int64_t ms = wait_gone(k, 30000);
    CHECK_MSG(ms >= 0, "key %s still there after stop", k);
    printf("    stop -> key gone in %lld ms\n", (long long)ms);
    CHECK(log_count(&d, "msg=\"delete\"", k) == 1);
    CHECK_MSG(get_key(kweb, v, sizeof(v), NULL) == 1, "another container's key went too");
    CHECK(daemon_alive(&d));
    /* SIGTERM: revoked, every key at once, exit 0. */
    CHECK_INT(daemon_stop(&d, SIGTERM, 15000), 0);
    CHECK_INT(count_prefix("/clusterf/"), 0);
    CHECK(log_count(&d, "lease revoked", NULL) == 1);
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* --docker-network picks the user network's address; published mode the host's. */
static void test_network_and_published(void)
{
    daemon_t dn = {0}, dp = {0};
    char id[128], netid[128], ip[64], k[512], v[1024], got[64], port[64];
    if (!need_all())
        goto out;
    CHECK_INT(dockerd_harness_docker(env.dockerd, netid, sizeof(netid),
                                     "network create --subnet %s "
                                     "-o com.docker.network.bridge.name=%s2 cfnet2",
                                     env.dockerd->user_subnet4, env.dockerd->user_bridge_prefix),
              0);
    if (!run(id, sizeof(id), "--name nw -p 8080 -l " L ".service=nw -l " L
             ".backend.tcp=8080"))
        goto out;
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "network connect cfnet2 nw"), 0);
    dockerd_harness_docker(env.dockerd, ip, sizeof(ip),
                           "inspect -f "
                           "'{{(index .NetworkSettings.Networks \"cfnet2\").IPAddress}}' nw");
    dockerd_harness_docker(env.dockerd, port, sizeof(port),
                           "port nw 8080/tcp | head -n1 | sed 's/.*://'");
    CHECK_MSG(ip[0] && atoi(port) > 0, "cfnet2 address \"%s\", published port \"%s\"", ip, port);

    daemon_start(&dn, "network", "--etcd-prefix /nw --docker-network cfnet2");
    key_of(k, sizeof(k), "/nw", "nw", id);
    if (wait_key(k, NULL, v, sizeof(v), NULL, 30000)) {
        json_str(v, "ipv4", got, sizeof(got));
        CHECK_STR(got, ip);
        CHECK_INT(json_int(v, "tcp"), 8080);
    }
    daemon_start(&dp, "published", "--etcd-prefix /pub --publish-mode published "
                 "--host-ipv4 192.0.2.7");
    key_of(k, sizeof(k), "/pub", "nw", id);
    if (wait_key(k, NULL, v, sizeof(v), NULL, 30000)) {
        json_str(v, "ipv4", got, sizeof(got));
        CHECK_STR(got, "192.0.2.7");
        CHECK_INT(json_int(v, "tcp"), atoi(port));
    }
out:
    daemon_stop_ok(&dn, 15000);
    daemon_stop_ok(&dp, 15000);
    show_log(&dn);
    show_log(&dp);
    if (env.dockerd) {
        docker_cleanup();
        dockerd_harness_docker(env.dockerd, NULL, 0, "network rm cfnet2 >/dev/null 2>&1");
    }
}

/* kill -9: nothing revokes; the keys expire with the lease (TTL 2 s). */
static void test_kill9_expires(void)
{
    daemon_t d = {0};
    char id[128], k[512];
    if (!need_all() || !daemon_start(&d, "kill9", "--etcd-prefix /k9 --ttl 2s"))
        goto out;
    run(id, sizeof(id), "--name k9 --expose 80 -l " L ".service=k9 -l " L ".backend.tcp=80");
    key_of(k, sizeof(k), "/k9", "k9", id);
    if (!wait_key(k, NULL, NULL, 0, NULL, 30000))
        goto out;
    /* Past a few keep-alives: the key must still be there. */
    usleep(3000000);
    CHECK_MSG(get_key(k, (char[64]){0}, 64, NULL) == 1, "key expired while the daemon lives");
    CHECK_INT(daemon_stop(&d, SIGKILL, 5000), 128 + SIGKILL);
    int64_t ms = wait_gone(k, 60000);
    printf("    kill -9 -> key gone in %lld ms (TTL 2 s)\n", (long long)ms);
    CHECK_MSG(ms >= 0, "key %s kept 60 s after kill -9 (TTL 2 s)", k);
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* --dry-run: logs what it would put, writes nothing. */
static void test_dry_run(void)
{
    daemon_t d = {0};
    char id[128], k[512];
    if (!need_all() || !daemon_start(&d, "dryrun", "--etcd-prefix /dry --dry-run"))
        goto out;
    run(id, sizeof(id), "--name dry --expose 80 -l " L ".service=dry -l " L ".backend.tcp=80");
    key_of(k, sizeof(k), "/dry", "dry", id);
    int64_t end = clock_now_ms() + 30000;
    while (clock_now_ms() < end && log_count(&d, "dry-run: would put", k) == 0)
        usleep(100000);
    CHECK_MSG(log_count(&d, "dry-run: would put", k) == 1, "no dry-run put logged");
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "stop -t 5 dry"), 0);
    end = clock_now_ms() + 30000;
    while (clock_now_ms() < end && log_count(&d, "dry-run: would delete", k) == 0)
        usleep(100000);
    CHECK_MSG(log_count(&d, "dry-run: would delete", k) == 1, "no dry-run delete logged");
    CHECK_INT(count_prefix("/dry/"), 0);
    CHECK_INT(daemon_stop(&d, SIGINT, 15000), 0);
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* dockerd stops (its containers die) and comes back: the dead container's key goes, a new
 * container is registered; the daemon never exits. */
static void test_dockerd_restart(void)
{
    daemon_t d = {0};
    char a[128], b[128], ka[512], kb[512];
    if (!need_all() || !daemon_start(&d, "dockerd-restart", "--etcd-prefix /dr"))
        goto out;
    run(a, sizeof(a), "--name dra --expose 80 -l " L ".service=dr -l " L ".backend.tcp=80");
    key_of(ka, sizeof(ka), "/dr", "dr", a);
    if (!wait_key(ka, NULL, NULL, 0, NULL, 30000))
        goto out;
    /* One that dockerd starts again itself. */
    char c[128], kc[512], ipc[64], v[1024], got[64];
    run(c, sizeof(c), "--name drc --restart=always --expose 80 -l " L ".service=dr -l " L
        ".backend.tcp=80");
    key_of(kc, sizeof(kc), "/dr", "dr", c);
    wait_key(kc, NULL, NULL, 0, NULL, 30000);
    CHECK_INT(dockerd_harness_stop(env.dockerd), 0);
    usleep(1500000);
    CHECK(daemon_alive(&d));
    CHECK_INT(dockerd_harness_restart(env.dockerd), 0);
    CHECK_MSG(wait_gone(ka, 60000) >= 0, "dead container's key %s kept", ka);
    int64_t end = clock_now_ms() + 60000;
    do {
        ipc[0] = '\0';
        dockerd_harness_docker(env.dockerd, ipc, sizeof(ipc),
                               "inspect -f "
                               "'{{.NetworkSettings.IPAddress}}' drc");
    } while (!ipc[0] && clock_now_ms() < end && usleep(200000) == 0);
    char want[128];
    snprintf(want, sizeof(want), "\"%s\"", ipc);
    if (CHECK_MSG(ipc[0], "drc not restarted by dockerd") &&
        wait_key(kc, want, v, sizeof(v), NULL, 60000)) {
        json_str(v, "ipv4", got, sizeof(got));
        CHECK_STR(got, ipc);
    }
    run(b, sizeof(b), "--name drb --expose 80 -l " L ".service=dr -l " L ".backend.tcp=80");
    key_of(kb, sizeof(kb), "/dr", "dr", b);
    wait_key(kb, NULL, NULL, 0, NULL, 60000);
    CHECK(log_count(&d, "msg=\"docker\"", "reconnecting") >= 1);
    CHECK(daemon_alive(&d));
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* True once etcd says lease id has expired (asked with etcdctl lease timetolive). */
static bool lease_expired(int64_t id)
{
    char cmd[512], out[512] = "";
    snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 etcdctl --endpoints=%s lease timetolive %llx 2>&1",
             env.etcd.endpoints, (unsigned long long)id);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
    out[n] = '\0';
    if (p)
        pclose(p);
    return strstr(out, "already expired") != NULL;
}

/* How often the daemon found its lease lost (and began re-granting it). */
static size_t leases_lost(const daemon_t *d)
{
    return log_count(d, "etcd lease lost; re-granting", NULL);
}

/* etcd killed for longer than the TTL and restarted on its data. The client counts the lease
 * lost once no keep-alive was answered within the TTL (src/etcd/lease.c), so it is lost exactly
 * once, a new one is granted and every key is re-written on it; the old one expires in etcd
 * without taking a key along; the daemon never exits. */
static void test_etcd_restart(void)
{
    daemon_t d = {0};
    char a[128], ka[512], v[1024];
    int64_t l1 = 0, l2 = 0;
    if (!need_all() || !daemon_start(&d, "etcd-restart", "--etcd-prefix /er --ttl 3s"))
        goto out;
    run(a, sizeof(a), "--name era --expose 80 -l " L ".service=er -l " L ".backend.tcp=80");
    key_of(ka, sizeof(ka), "/er", "er", a);
    if (!wait_key(ka, NULL, NULL, 0, &l1, 30000))
        goto out;
    etcdh_stop_member(&env.etcd, 0, SIGKILL);
    /* While etcd is down a container goes away: converge must delete it on return. */
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "stop -t 5 era"), 0);
    char b[128], kb[512];
    run(b, sizeof(b), "--name erb --expose 80 -l " L ".service=er -l " L ".backend.tcp=80");
    key_of(kb, sizeof(kb), "/er", "er", b);
    int64_t end = clock_now_ms() + 60000;
    while (clock_now_ms() < end && leases_lost(&d) == 0)
        usleep(100000);
    CHECK_MSG(leases_lost(&d) == 1, "lease lost %zu times while etcd was down, want 1",
              leases_lost(&d));
    CHECK(daemon_alive(&d));
    int er = etcdh_restart_member(&env.etcd, 0, true);
    if (!CHECK_MSG(er == 0, "etcd restart failed")) {
        env.etcd_rc = -EIO;
        goto out;
    }
    if (wait_key(kb, NULL, v, sizeof(v), &l2, 30000))
        CHECK_MSG(l2 != 0 && l2 != l1, "lease %llx after restart (was %llx)",
                  (unsigned long long)l2, (unsigned long long)l1);
    CHECK_MSG(wait_gone(ka, 30000) >= 0, "key of the container stopped during the outage kept");
    /* etcd restored the old lease with a fresh TTL; once it has expired the key is still
     * there, on the new lease. */
    end = clock_now_ms() + 60000;
    while (clock_now_ms() < end && !lease_expired(l1))
        usleep(200000);
    CHECK_MSG(lease_expired(l1), "the old lease %llx never expired", (unsigned long long)l1);
    int64_t l3 = 0;
    CHECK_MSG(get_key(kb, v, sizeof(v), &l3) == 1, "key vanished with the old lease");
    CHECK_MSG(l3 == l2, "key on lease %llx, want %llx", (unsigned long long)l3,
              (unsigned long long)l2);
    CHECK_INT(leases_lost(&d), 1);
    CHECK(daemon_alive(&d));
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* 200 containers started at once: every one registered, then every one removed. */
static void test_many(void)
{
    daemon_t d = {0};
    int n = getenv("CFD_MANY") ? atoi(getenv("CFD_MANY")) : 200;
    if (!need_all() || !daemon_start(&d, "many", "--etcd-prefix /many"))
        goto out;
    int64_t t0 = clock_now_ms();
    int r = dockerd_harness_docker(env.dockerd, NULL, 0,
                                   "version >/dev/null && seq %d | xargs -P 8 -I{} "
                                   "docker -H '%s' run -d --name many{} --expose 80 -l " L
                                   ".service=many -l " L ".backend.tcp=80 %s sleep 600 >/dev/null",
                                   n, env.dockerd->host, env.dockerd->image);
    CHECK_INT(r, 0);
    int64_t t1 = clock_now_ms();
    CHECK(wait_count("/many/services/many/backends/", n, 120000));
    int64_t t2 = clock_now_ms();
    printf("    %d containers: docker run took %lld ms, all registered %lld ms after the last\n",
           n, (long long)(t1 - t0), (long long)(t2 - t1));
    /* SIGTERM takes all of them at once; a new daemon writes them all back at start. */
    CHECK_INT(daemon_stop(&d, SIGTERM, 30000), 0);
    CHECK_INT(count_prefix("/many/"), 0);
    int64_t t4 = clock_now_ms();
    daemon_start(&d, "many2", "--etcd-prefix /many");
    CHECK(wait_count("/many/services/many/backends/", n, 120000));
    printf("    a new daemon wrote all %d back in %lld ms (start, list, inspect, put)\n", n,
           (long long)(clock_now_ms() - t4));
    t2 = clock_now_ms();
    dockerd_harness_docker(env.dockerd, NULL, 0, "rm -f $(docker -H '%s' ps -aq) >/dev/null",
                           env.dockerd->host);
    int64_t t3 = clock_now_ms();
    CHECK(wait_count("/many/services/many/backends/", 0, 120000));
    printf("    rm -f of %d took %lld ms, all deleted %lld ms after\n", n, (long long)(t3 - t2),
           (long long)(clock_now_ms() - t3));
out:
    daemon_stop_ok(&d, 30000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

/* Run the binary with args (shell words) and return its exit status; output into out. */
static int run_bin(char *out, size_t size, const char *env, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s '%s' %s 2>&1", env ? env : "", bin, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int st = p ? pclose(p) : -1;
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --help (complete, exit 0), --version, bad flags and environment variables (exit 2). */
static void test_flags(void)
{
    static char out[16384];
    if (access(bin, X_OK) != 0) {
        check_skip("%s not built", bin);
        return;
    }
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--help"), 0);
    const char *want[] = {"SIGTERM", "revokes the lease", "--etcd-endpoints", "--etcd-prefix",
                          "--etcd-cacert", "--etcd-cert", "--etcd-key", "--etcd-user",
                          "--etcd-password-file", "CLUSTERF_ETCD_PASSWORD", "--etcd-timeout",
                          "--docker-host", "--hostname", "--label-prefix", "--docker-network",
                          "--publish-mode", "--host-ipv4", "--host-ipv6", "--ttl", "--dry-run",
                          "--log-level", "--version", "CLUSTERF_TTL", "<hostname>:"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_MSG(strstr(out, want[i]), "--help lacks %s", want[i]);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "-help"), 0);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "-version"), 0);
    CHECK_MSG(strncmp(out, "clusterf-docker ", 16) == 0, "version: %s", out);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--ttl 1s"), 2);
    CHECK_MSG(strstr(out, "-ttl"), "ttl error names no flag: %s", out);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--ttl=soon"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--bogus"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "-publish-mode=nat"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--log-level loud"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--etcd-prefix clusterf"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--etcd-user root"), 2);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "--etcd-password-file /nonexistent/pw"), 2);
    CHECK_INT(run_bin(out, sizeof(out), "CLUSTERF_TTL=1", "--help"), 2);
    CHECK_MSG(strstr(out, "CLUSTERF_TTL"), "env error names no variable: %s", out);
    CHECK_INT(run_bin(out, sizeof(out), "CLUSTERF_PUBLISH_MODE=published", "--help"), 0);
    CHECK_INT(run_bin(out, sizeof(out), NULL, "extra-arg"), 2);
}

/* etcd down when the daemon starts: it keeps trying and writes once etcd is there. */
static void test_etcd_down_at_start(void)
{
    daemon_t d = {0};
    char a[128], ka[512];
    int64_t lease = 0;
    if (!need_all())
        return;
    etcdh_stop_member(&env.etcd, 0, SIGTERM);
    if (!daemon_start(&d, "etcd-down-at-start", "--etcd-prefix /eds --ttl 3s --etcd-timeout 1s"))
        goto out;
    run(a, sizeof(a), "--name eds --expose 80 -l " L ".service=eds -l " L ".backend.tcp=80");
    int64_t end = clock_now_ms() + 30000;
    while (clock_now_ms() < end && log_count(&d, "etcd unavailable", NULL) == 0)
        usleep(100000);
    CHECK_MSG(log_count(&d, "etcd unavailable", NULL) >= 1, "no etcd retry logged");
    CHECK(daemon_alive(&d));
out:
    if (!CHECK_MSG(etcdh_restart_member(&env.etcd, 0, true) == 0, "etcd restart failed"))
        env.etcd_rc = -EIO;
    key_of(ka, sizeof(ka), "/eds", "eds", a);
    if (d.pid > 0 && env.etcd_rc == 0 && wait_key(ka, NULL, NULL, 0, &lease, 60000))
        CHECK(lease != 0);
    CHECK(log_count(&d, "etcd reachable again", NULL) == 1);
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    docker_cleanup();
}

/* A short etcd outage (well inside the TTL): a container stopped meanwhile is deleted when
 * etcd is back; the other key stays all along. */
static void test_etcd_short_outage(void)
{
    daemon_t d = {0};
    char a[128], b[128], ka[512], kb[512], v[1024];
    int64_t la = 0, lb = 0;
    if (!need_all() || !daemon_start(&d, "etcd-short", "--etcd-prefix /es --ttl 20s "
                                     "--etcd-timeout 1s"))
        goto out;
    run(a, sizeof(a), "--name esa --expose 80 -l " L ".service=es -l " L ".backend.tcp=80");
    run(b, sizeof(b), "--name esb --expose 80 -l " L ".service=es -l " L ".backend.tcp=80");
    key_of(ka, sizeof(ka), "/es", "es", a);
    key_of(kb, sizeof(kb), "/es", "es", b);
    if (!wait_key(ka, NULL, NULL, 0, &la, 30000) || !wait_key(kb, NULL, NULL, 0, NULL, 30000))
        goto out;
    etcdh_stop_member(&env.etcd, 0, SIGKILL);
    CHECK_INT(dockerd_harness_docker(env.dockerd, NULL, 0, "stop -t 5 esa"), 0);
    int64_t end = clock_now_ms() + 30000;
    while (clock_now_ms() < end && log_count(&d, "etcd unavailable", "delete") == 0)
        usleep(100000);
    CHECK_MSG(log_count(&d, "etcd unavailable", "delete") >= 1, "no failed delete logged");
    if (!CHECK_MSG(etcdh_restart_member(&env.etcd, 0, true) == 0, "etcd restart failed")) {
        env.etcd_rc = -EIO;
        goto out;
    }
    CHECK_MSG(wait_gone(ka, 60000) >= 0, "key of the container stopped during the outage kept");
    CHECK_MSG(get_key(kb, v, sizeof(v), &lb) == 1, "the other key went");
    /* Keep-alives resumed within the TTL: the lease was never lost, so it is the same one. */
    CHECK_MSG(la != 0 && lb == la, "lease before the outage %llx, after %llx: want the same",
              (unsigned long long)la, (unsigned long long)lb);
    CHECK_MSG(leases_lost(&d) == 0, "lease lost %zu times in an outage inside the TTL",
              leases_lost(&d));
    CHECK(daemon_alive(&d));
out:
    daemon_stop_ok(&d, 15000);
    show_log(&d);
    if (env.dockerd)
        docker_cleanup();
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    docker_env_start(&env, "cfdt");
    docker_env_bin(&env, "clusterf-docker", bin, sizeof bin);
    check_run("flags", test_flags);
    check_run("lifecycle", test_lifecycle);
    check_run("network_and_published", test_network_and_published);
    check_run("kill9_expires", test_kill9_expires);
    check_run("dry_run", test_dry_run);
    check_run("dockerd_restart", test_dockerd_restart);
    check_run("etcd_restart", test_etcd_restart);
    check_run("etcd_down_at_start", test_etcd_down_at_start);
    check_run("etcd_short_outage", test_etcd_short_outage);
    check_run("many", test_many);
    docker_env_finish(&env);
    return check_end();
}
