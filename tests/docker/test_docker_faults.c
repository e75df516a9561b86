/* test_docker_faults.c -- issue #9 fault scenarios 5 and 6a against the real binaries, a private
 * dockerd (dockerd_harness) and a real etcd (etcd_harness):
 *  - clusterf-docker, then `clusterfctl register`, killed -9 and restarted again and again: each
 *    time the backend key must go with the lease (kill -> gone printed against TTL + 1 s, the
 *    issue's bound; only a generous cap is asserted) and come back after the restart;
 *  - containers with malformed clusterf labels beside good ones: each fault logged with its
 *    container and label, the good ones registered, the daemon still up.
 * Each test ends by comparing the keys etcd holds with the keys it should hold; any difference
 * fails and is printed. CLUSTERF_SOAK=1: 50 kills of each instead of 3. */
#include "check.h"
#include "child_proc.h"
#include "common/timeutil.h"
#include "docker_env.h"
#include "etcd_poll.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"
#define HOST "faulthost"
#define TTL_MS 2000
/* The asserted bound on kill -> key gone: TTL + 1 s is the goal (printed), this is the cap a
 * loaded 2-core CI machine must meet. */
#define GONE_CAP_MS (TTL_MS + 30000)
#define BACK_CAP_MS 60000

static docker_env env;

/* What one kill/restart loop measured. */
typedef struct kill_stats {
    int kills;
    int64_t gone_max_ms, back_max_ms;
    int over_bound;  /* kills where the key outlived TTL + 1 s */
} kill_stats;

/* etcd, dockerd and the named binary are there (else a skip or a failure). */
static bool need(const char *binary)
{
    return docker_env_need(&env, binary);
}

static int kill_rounds(void)
{
    const char *s = getenv("CLUSTERF_SOAK");
    return s && *s && strcmp(s, "0") != 0 ? 50 : 3;
}

/* Start clusterf-docker under prefix with a TTL_MS lease; its log is appended to. */
static bool docker_daemon_start(child_proc *d, const char *prefix, const char *logname)
{
    char bin[512], log[160], ttl[32];
    snprintf(bin, sizeof(bin), "%s/clusterf-docker", env.build_dir);
    snprintf(log, sizeof(log), "%s/%s.log", env.tmpdir, logname);
    snprintf(ttl, sizeof(ttl), "%ds", TTL_MS / 1000);
    char *argv[] = {bin, "--docker-host", env.dockerd->host,
                    "--etcd-endpoints", env.etcd.endpoints, "--hostname", HOST,
                    "--etcd-prefix", (char *)prefix, "--ttl", ttl, NULL};
    return CHECK_MSG(child_start(d, log, true, argv), "fork: %s", strerror(errno));
}

/* Start `clusterfctl register web r1 ...` under prefix with a TTL_MS lease. */
static bool register_start(child_proc *d, const char *prefix, const char *logname)
{
    char bin[512], log[160], ttl[32], ep[300], pf[128];
    snprintf(bin, sizeof(bin), "%s/clusterfctl", env.build_dir);
    snprintf(log, sizeof(log), "%s/%s.log", env.tmpdir, logname);
    snprintf(ttl, sizeof(ttl), "--ttl=%ds", TTL_MS / 1000);
    snprintf(ep, sizeof(ep), "--etcd-endpoints=%s", env.etcd.endpoints);
    snprintf(pf, sizeof(pf), "--etcd-prefix=%s", prefix);
    char *argv[] = {bin, "register", "web", "r1", "--ipv4", "10.9.0.1", "--tcp", "80",
                    "--weight", "7", ttl, ep, pf, NULL};
    return CHECK_MSG(child_start(d, log, true, argv), "fork: %s", strerror(errno));
}

/* Run a container (detached, sleeping); id gets its full id. */
static bool run(char *id, size_t size, const char *args)
{
    int r = dockerd_harness_docker(env.dockerd, id, size, "run -d %s %s sleep 600", args,
                                   env.dockerd->image);
    return CHECK_MSG(r == 0, "docker run %s: %d", args, r);
}

static void docker_cleanup(void)
{
    if (env.dockerd)
        dockerd_harness_docker(env.dockerd, NULL, 0,
                               "rm -f $(docker -H '%s' ps -aq) >/dev/null 2>&1", env.dockerd->host);
}

static void show_log(const child_proc *d)
{
    if (!check_failed() || !d->log[0])
        return;
    env.keep_logs = true;
    child_log_tail(d, 40);
}

/* The end of every scenario: the keys under prefix must be exactly want[] (key, value
 * substring); every missing, different or extra key is printed and fails. */
static void compare_prefix(const char *prefix, const char *const want[][2], size_t n_want)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    if (!CHECK_MSG(etcd_range_prefix(env.client, prefix, strlen(prefix), 0, &kvs, &err) == 0,
                   "range %s failed", prefix))
        return;
    size_t n = kvs ? kvs->n : 0, matched = 0;
    for (size_t i = 0; i < n; i++) {
        const etcd_kv *kv = &kvs->kvs[i];
        bool found = false;
        for (size_t j = 0; j < n_want && !found; j++) {
            if (strlen(want[j][0]) != kv->key_len || memcmp(want[j][0], kv->key, kv->key_len))
                continue;
            found = true;
            matched += memmem(kv->value, kv->value_len, want[j][1], strlen(want[j][1])) != NULL;
            CHECK_MSG(memmem(kv->value, kv->value_len, want[j][1], strlen(want[j][1])),
                      "differs: %s = %.*s, want it to hold %s", want[j][0], (int)kv->value_len,
                      (const char *)kv->value, want[j][1]);
        }
        CHECK_MSG(found, "extra key: %.*s = %.*s", (int)kv->key_len, (const char *)kv->key,
                  (int)kv->value_len, (const char *)kv->value);
    }
    CHECK_MSG(matched == n_want, "%s: %zu of the %zu wanted keys present and right", prefix,
              matched, n_want);
    etcd_kvs_free(kvs);
}

typedef bool (*start_fn)(child_proc *d, const char *prefix, const char *logname);

/* One round: kill -9 (the exit status must say SIGKILL), time until the key is gone, restart,
 * time until it is back with the value it had. False when the loop should stop. */
static bool kill_round(child_proc *d, start_fn start, const char *prefix, const char *logname,
                       const char *key, const char *value, kill_stats *st)
{
    char v[1024];
    int64_t t0 = clock_now_ms();
    CHECK_INT(child_stop(d, SIGKILL, 10000), 128 + SIGKILL);
    int64_t gone = etcd_poll_gone(env.client, key, GONE_CAP_MS);
    if (!CHECK_MSG(gone >= 0, "kill %d: %s still there %d ms after kill -9 (TTL %d ms)",
                   st->kills + 1, key, GONE_CAP_MS, TTL_MS))
        return false;
    gone = clock_now_ms() - t0;
    st->kills++;
    st->gone_max_ms = gone > st->gone_max_ms ? gone : st->gone_max_ms;
    st->over_bound += gone > TTL_MS + 1000;
    t0 = clock_now_ms();
    if (!start(d, prefix, logname) ||
        !etcd_poll_key(env.client, key, NULL, v, sizeof(v), NULL, BACK_CAP_MS))
        return false;
    int64_t back = clock_now_ms() - t0;
    st->back_max_ms = back > st->back_max_ms ? back : st->back_max_ms;
    printf("    kill %d: key gone in %lld ms (TTL %d ms), back %lld ms after the restart\n",
           st->kills, (long long)gone, TTL_MS, (long long)back);
    return CHECK_MSG(strcmp(v, value) == 0, "kill %d: value after the restart %s, before %s",
                     st->kills, v, value);
}

/* Start, wait for the key, then kill_rounds() rounds; the summary line, the final comparison,
 * and the normal exit (SIGTERM: 0, and the lease revoked: nothing left under prefix). */
static void kill_loop(start_fn start, const char *prefix, const char *logname, const char *key,
                      const char *want)
{
    child_proc d = {0};
    kill_stats st = {0};
    char value[1024];
    int rounds = kill_rounds();
    if (!start(&d, prefix, logname) ||
        !etcd_poll_key(env.client, key, want, value, sizeof(value), NULL, BACK_CAP_MS))
        goto out;
    while (st.kills < rounds && kill_round(&d, start, prefix, logname, key, value, &st)) {
    }
    printf("    %d kills: gone max %lld ms (issue bound TTL + 1 s = %d ms: %d over; asserted cap "
           "%d ms), back max %lld ms\n", st.kills, (long long)st.gone_max_ms, TTL_MS + 1000,
           st.over_bound, GONE_CAP_MS, (long long)st.back_max_ms);
    CHECK_INT(st.kills, rounds);
    const char *const expect[][2] = {{key, want}};
    compare_prefix(prefix, expect, 1);
    CHECK_MSG(child_alive(&d), "%s exited on its own", logname);
    CHECK_INT(child_stop(&d, SIGTERM, 15000), 0);
    CHECK_INT(etcd_poll_count(env.client, prefix), 0);
out:
    if (d.pid > 0)
        child_stop(&d, SIGKILL, 5000);
    show_log(&d);
}

/* Scenario 5, clusterf-docker: a labelled container runs all along. */
static void test_docker_kill9_restart(void)
{
    char id[128], key[256], want[64];
    if (!need("clusterf-docker") ||
        !run(id, sizeof(id), "--name dk --expose 80 -l " L ".service=dk -l " L ".backend.tcp=80"))
        goto out;
    snprintf(key, sizeof(key), "/dk/services/dk/backends/" HOST ":%.12s", id);
    snprintf(want, sizeof(want), "\"tcp\":80");
    kill_loop(docker_daemon_start, "/dk", "docker-kill", key, want);
out:
    docker_cleanup();
}

/* Scenario 5, `clusterfctl register`. */
static void test_register_kill9_restart(void)
{
    if (!need("clusterfctl"))
        return;
    kill_loop(register_start, "/rk", "register-kill", "/rk/services/web/backends/r1",
              "\"10.9.0.1\"");
}

/* One malformed container: its docker run arguments, and what its warning line must hold. */
typedef struct bad_container {
    const char *name, *args, *log_has;
} bad_container;

static const bad_container BAD[] = {
    {"emptysvc", "--expose 80 -l " L ".service= -l " L ".backend.tcp=80",
     "label " L ".service is empty"},
    {"badport", "--expose 80 -l " L ".service=bp -l " L ".backend.tcp=99999",
     "label " L ".backend.tcp=99999: not a port number"},
    {"badname", "--expose 80 -l '" L ".service=bad/name' -l " L ".backend.tcp=80",
     "service name \\\"bad/name\\\""},
    {"hugesvc", "--expose 80 -l " L ".service=$(head -c 65536 /dev/zero | tr '\\0' x) -l " L
     ".backend.tcp=80", "service name \\\"xxxxxxxx"},
    {"hugeport", "--expose 80 -l " L ".service=hp -l " L ".backend.tcp=$(head -c 65536 "
     "/dev/zero | tr '\\0' 9)", "label " L ".backend.tcp=9999999"},
    {"badip", "--expose 80 -l " L ".service=ip -l " L ".backend.tcp=80 -l " L
     ".backend.ipv4=300.1.1.1", "label " L ".backend.ipv4: unknown clusterf label"},
    {"badweight", "--expose 80 -l " L ".service=bw -l " L ".backend.tcp=80 -l " L
     ".backend.weight=heavy", "label " L ".backend.weight=heavy: not a weight"},
    {"strayport", "--expose 80 -l " L ".service=sp -l " L ".backend.tcp=80 -l " L
     ".backend:other.tcp=80",
     "label " L ".backend:other.tcp: service other is not in"},
};

/* Wait until the log has a label warning for container name holding has. */
static bool wait_warning(child_proc *d, const char *name, const char *has)
{
    char who[64];
    snprintf(who, sizeof(who), "container %s (", name);
    int64_t end = clock_now_ms() + 60000;
    while (clock_now_ms() < end) {
        if (child_log_count(d, who, has) > 0 && child_log_count(d, "label warning", has) > 0)
            return true;
        usleep(100000);
    }
    return CHECK_MSG(false, "no label warning for container %s holding %s", name, has);
}

/* Key of container id under /ml for service svc. */
static void ml_key(char *buf, size_t size, const char *svc, const char *id)
{
    snprintf(buf, size, "/ml/services/%s/backends/" HOST ":%.12s", svc, id);
}

/* Scenario 6a: malformed clusterf labels next to good ones. */
static void test_malformed_labels(void)
{
    child_proc d = {0};
    char id[8][128], good[128], k[5][256];
    if (!need("clusterf-docker") || !docker_daemon_start(&d, "/ml", "malformed"))
        goto out;
    if (!run(good, sizeof(good), "--name good --expose 80 -l " L ".service=good -l " L
             ".backend.tcp=80"))
        goto out;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char args[512];
        snprintf(args, sizeof(args), "--name %s %s", BAD[i].name, BAD[i].args);
        if (!run(id[i], sizeof(id[i]), args))
            goto out;
    }
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
        wait_warning(&d, BAD[i].name, BAD[i].log_has);
    /* What must be there: the good one, and the three whose fault is only ignored. */
    ml_key(k[0], sizeof(k[0]), "good", good);
    ml_key(k[1], sizeof(k[1]), "ip", id[5]);
    ml_key(k[2], sizeof(k[2]), "bw", id[6]);
    ml_key(k[3], sizeof(k[3]), "sp", id[7]);
    for (int i = 0; i < 4; i++)
        etcd_poll_key(env.client, k[i], NULL, NULL, 0, NULL, 60000);
    const char *const expect[][2] = {{k[0], "\"tcp\":80,\"weight\":10"},
                                     {k[1], "\"tcp\":80,\"weight\":10"},
                                     {k[2], "\"tcp\":80,\"weight\":10"},
                                     {k[3], "\"tcp\":80,\"weight\":10"}};
    compare_prefix("/ml/", expect, 4);
    CHECK_MSG(child_alive(&d), "clusterf-docker exited on malformed labels");
    CHECK_INT(child_stop(&d, SIGTERM, 15000), 0);
out:
    if (d.pid > 0)
        child_stop(&d, SIGKILL, 5000);
    show_log(&d);
    docker_cleanup();
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    docker_env_start(&env, "cfdf");
    check_run("malformed_labels", test_malformed_labels);
    check_run("docker_kill9_restart", test_docker_kill9_restart);
    check_run("register_kill9_restart", test_register_kill9_restart);
    docker_env_finish(&env);
    return check_end();
}
