/* test_docker_watch.c -- docker_watch against a real private dockerd: the sink is told exactly
 * the puts and deletes that make etcd match the containers (start, pause, health, stop), label
 * warnings once, and it converges after dockerd stops and restarts. The sink here records what
 * it is told (it stands in for the etcd writer, which is not what this test is about). */
#include "check.h"
#include "common/timeutil.h"
#include "docker/docker.h"
#include "dockerd_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define L "net.qmsk.clusterf"
#define MAXREC 512

static dockerd_harness *H;
static char why[512] = "dockerd harness not started";
static int dockerd_rc = -ENOTSUP;  /* dockerd_harness_start(): 0, -ENOTSUP (a skip), else fail */

typedef struct rec {
    char *ops[MAXREC];            /* "put svc name json" / "del svc name" */
    size_t n_ops;
    char *notices[MAXREC];        /* "warn: ..." / "error: ..." */
    size_t n_notices;
} rec;

static void rec_add(char **v, size_t *n, char *s)
{
    if (*n < MAXREC)
        v[(*n)++] = s;
    else
        free(s);
}

static void on_put(void *ctx, const docker_backend *b)
{
    rec *r = ctx;
    char *s = NULL;
    if (asprintf(&s, "put %s %s %s", b->service, b->name, b->json) >= 0)
        rec_add(r->ops, &r->n_ops, s);
}

static void on_del(void *ctx, const char *service, const char *name)
{
    rec *r = ctx;
    char *s = NULL;
    if (asprintf(&s, "del %s %s", service, name) >= 0)
        rec_add(r->ops, &r->n_ops, s);
}

static void on_notice(void *ctx, bool error, const char *msg)
{
    rec *r = ctx;
    char *s = NULL;
    if (asprintf(&s, "%s: %s", error ? "error" : "warn", msg) >= 0)
        rec_add(r->notices, &r->n_notices, s);
}

static void rec_clear(rec *r)
{
    for (size_t i = 0; i < r->n_ops; i++)
        free(r->ops[i]);
    for (size_t i = 0; i < r->n_notices; i++)
        free(r->notices[i]);
    r->n_ops = r->n_notices = 0;
}

/* Index of the first op at or after `from` containing every one of the substrings, or -1. */
static int find_op(const rec *r, size_t from, const char *a, const char *b)
{
    for (size_t i = from; i < r->n_ops; i++)
        if (strstr(r->ops[i], a) && (!b || strstr(r->ops[i], b)))
            return (int)i;
    return -1;
}

static size_t count_notices(const rec *r, const char *sub)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_notices; i++)
        n += strstr(r->notices[i], sub) != NULL;
    return n;
}

/* Run the watch in an epoll loop, as the daemon will, until an op with a and b appears after
 * `from` (or, with a == NULL, until the watch is synced). Returns the op's index or -1. */
static int run_until(docker_watch *w, rec *r, size_t from, const char *a, const char *b,
                     int64_t timeout_ms)
{
    int64_t deadline = clock_now_ms() + timeout_ms;
    int ep = epoll_create1(EPOLL_CLOEXEC), found = -1;
    struct epoll_event want = {.events = EPOLLIN}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, docker_watch_fd(w), &want);
    while (clock_now_ms() < deadline) {
        if (epoll_wait(ep, &got, 1, 500) > 0)
            CHECK_INT(docker_watch_dispatch(w), 0);
        if (a ? (found = find_op(r, from, a, b)) >= 0 : docker_watch_synced(w))
            break;
    }
    close(ep);
    return a ? found : (docker_watch_synced(w) ? 0 : -1);
}

static docker_watch *watch_new(rec *r)
{
    docker_watch *w = NULL;
    docker_error err = {0};
    docker_sink sink = {.ctx = r, .put = on_put, .del = on_del, .notice = on_notice};
    docker_watch_opts o = {.host = H->host, .backend = {.hostname = "testhost"},
                           .backoff_min_ms = 200, .backoff_max_ms = 1000};
    int rc = docker_watch_new(&o, &sink, &w, &err);
    CHECK_MSG(rc == 0, "docker_watch_new: %d %s", rc, err.msg);
    return w;
}

static void docker_ok(const char *what, int rc)
{
    CHECK_MSG(rc == 0, "docker %s: exit %d", what, rc);
}

static void count_backend(void *ctx, const docker_backend *b)
{
    (void)b;
    (*(size_t *)ctx)++;
}

/* No put tells the sink the value it was already told for that key. */
static bool no_repeated_puts(const rec *r)
{
    for (size_t i = 0; i < r->n_ops; i++) {
        if (strncmp(r->ops[i], "put ", 4) != 0)
            continue;
        const char *json = strrchr(r->ops[i], ' ');
        size_t keylen = (size_t)(json - r->ops[i]);
        for (size_t j = i; j-- > 0;) {
            const char *o = r->ops[j];
            if (strncmp(o + 4, r->ops[i] + 4, keylen - 4) == 0 && o[keylen] == ' ') {
                if (strcmp(o, r->ops[i]) == 0)
                    return false;
                break;
            }
        }
    }
    return true;
}

static void test_bad_options(void)
{
    docker_watch *w = NULL;
    docker_error err = {0};
    docker_sink sink = {0};
    docker_watch_opts o = {.backend = {.hostname = NULL}};
    CHECK_INT(docker_watch_new(&o, &sink, &w, &err), -EINVAL);
    o.backend.hostname = "h";
    o.backend.host_ipv6 = "10.0.0.1";
    CHECK_INT(docker_watch_new(&o, &sink, &w, &err), -EINVAL);
    o.backend.host_ipv6 = NULL;
    o.host = "ftp://x";
    CHECK_INT(docker_watch_new(&o, &sink, &w, &err), -EINVAL);
    CHECK(w == NULL);
    docker_watch_free(NULL);
}

static void test_converges(void)
{
    rec r = {0};
    docker_watch *w = NULL;
    char a[128], b[128], hc[128];
    if (!check_need(dockerd_rc, why))
        return;
    docker_ok("run a", dockerd_harness_docker(H, a, sizeof(a), "run -d --name wa --expose 80 -l "
              L ".service=web -l " L ".backend.tcp=80 %s sleep 600", H->image));
    if (!(w = watch_new(&r)))
        goto out;
    /* Existing container: put on the first sync. */
    CHECK_MSG(run_until(w, &r, 0, "put web testhost:", "\"tcp\":80,\"weight\":10", 30000) >= 0,
              "no put for the running container");
    CHECK(docker_watch_synced(w));
    size_t mark = r.n_ops;

    /* New container with two services. */
    docker_ok("run b", dockerd_harness_docker(H, b, sizeof(b), "run -d --name wb --expose 80 "
              "--expose 53/udp -l '" L ".service=web dns' -l " L ".backend:web.tcp=80 -l "
              L ".backend:dns.udp=53 %s sleep 600", H->image));
    char bname[64];
    snprintf(bname, sizeof(bname), "testhost:%.12s", b);
    CHECK(run_until(w, &r, mark, "put web", bname, 30000) >= 0);
    CHECK(run_until(w, &r, mark, "put dns", bname, 30000) >= 0);

    /* Paused: weight 0; unpaused: weight 10 again; stopped: deleted from both services. */
    mark = r.n_ops;
    docker_ok("pause", dockerd_harness_docker(H, NULL, 0, "pause wb"));
    CHECK(run_until(w, &r, mark, bname, "\"weight\":0", 30000) >= 0);
    mark = r.n_ops;
    docker_ok("unpause", dockerd_harness_docker(H, NULL, 0, "unpause wb"));
    CHECK(run_until(w, &r, mark, bname, "\"weight\":10", 30000) >= 0);
    mark = r.n_ops;
    docker_ok("stop", dockerd_harness_docker(H, NULL, 0, "stop -t 5 wb"));
    CHECK(run_until(w, &r, mark, "del web", bname, 30000) >= 0);
    CHECK(run_until(w, &r, mark, "del dns", bname, 30000) >= 0);

    /* Health check: weight 0 while starting, 10 once healthy. */
    mark = r.n_ops;
    docker_ok("run hc", dockerd_harness_docker(H, hc, sizeof(hc), "run -d --name hc --expose 80 "
              "-l " L ".service=web -l " L ".backend.tcp=80 --health-cmd true "
              "--health-interval 1s %s sleep 600", H->image));
    char hname[64];
    snprintf(hname, sizeof(hname), "testhost:%.12s", hc);
    int i0 = run_until(w, &r, mark, hname, "\"weight\":0", 30000);
    CHECK_MSG(i0 >= 0, "no weight 0 put while starting");
    CHECK_MSG(run_until(w, &r, i0 < 0 ? mark : (size_t)i0 + 1, hname, "\"weight\":10", 30000)
              >= 0, "no weight 10 put once healthy");

    /* What the writer would re-write under a new lease: a and hc in service web. */
    size_t n_backends = 0;
    docker_watch_foreach(w, count_backend, &n_backends);
    CHECK_INT(n_backends, 2);
    CHECK_MSG(no_repeated_puts(&r), "a put repeated the value already told");
out:
    for (size_t i = 0; check_failed() && i < r.n_ops; i++)
        printf("    %s\n", r.ops[i]);
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f wa wb hc >/dev/null 2>&1");
    docker_watch_free(w);
    rec_clear(&r);
}

/* A label warning is told once, not on every event of the container. */
static void test_warnings_once(void)
{
    rec r = {0};
    docker_watch *w = NULL;
    if (!check_need(dockerd_rc, why))
        return;
    if (!(w = watch_new(&r)) || !CHECK(run_until(w, &r, 0, NULL, NULL, 30000) == 0))
        goto out;
    docker_ok("run warn", dockerd_harness_docker(H, NULL, 0, "run -d --name warn --expose 80 -l "
              L ".service=web -l " L ".backend.tcp=81 -l " L ".backend.udp=80 %s sleep 600",
              H->image));
    int64_t deadline = clock_now_ms() + 30000;
    while (count_notices(&r, "container warn") < 3 && clock_now_ms() < deadline)
        run_until(w, &r, 0, "never", NULL, 500);
    CHECK_INT(count_notices(&r, "port 81/tcp is not exposed"), 1);
    CHECK_INT(count_notices(&r, "service web: no usable"), 1);
    docker_ok("pause", dockerd_harness_docker(H, NULL, 0, "pause warn"));
    docker_ok("unpause", dockerd_harness_docker(H, NULL, 0, "unpause warn"));
    deadline = clock_now_ms() + 3000;
    while (clock_now_ms() < deadline)
        run_until(w, &r, 0, "never", NULL, 500);
    CHECK_INT(count_notices(&r, "port 81/tcp is not exposed"), 1);
    CHECK_INT(r.n_ops, 0);
out:
    for (size_t i = 0; check_failed() && i < r.n_notices; i++)
        printf("    %s\n", r.notices[i]);
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f warn >/dev/null 2>&1");
    docker_watch_free(w);
    rec_clear(&r);
}

/* dockerd stops (its containers die with it) and comes back: the watch reports the loss,
 * reconnects with backoff, re-lists, deletes the dead container's backend and picks up a new
 * one. */
static void test_dockerd_restart(void)
{
    rec r = {0};
    docker_watch *w = NULL;
    char a[128], c[128], aname[64], cname[64];
    if (!check_need(dockerd_rc, why))
        return;
    docker_ok("run a", dockerd_harness_docker(H, a, sizeof(a), "run -d --name ra --expose 80 -l "
              L ".service=web -l " L ".backend.tcp=80 %s sleep 600", H->image));
    snprintf(aname, sizeof(aname), "testhost:%.12s", a);
    if (!(w = watch_new(&r)) || !CHECK(run_until(w, &r, 0, "put web", aname, 30000) >= 0))
        goto out;
    CHECK_INT(dockerd_harness_stop(H), 0);
    int64_t deadline = clock_now_ms() + 30000;
    while (docker_watch_synced(w) && clock_now_ms() < deadline)
        run_until(w, &r, 0, "never", NULL, 500);
    CHECK_MSG(!docker_watch_synced(w), "still synced after dockerd stopped");
    CHECK(count_notices(&r, "reconnecting in") >= 1);
    /* While it is down the backend stays (no delete), and retries keep failing quietly. */
    run_until(w, &r, 0, "del web", aname, 2000);
    CHECK_MSG(find_op(&r, 0, "del web", aname) < 0, "deleted while dockerd was down");
    size_t mark = r.n_ops;
    int64_t t0 = clock_now_ms();
    CHECK_INT(dockerd_harness_restart(H), 0);
    CHECK_MSG(run_until(w, &r, mark, "del web", aname, 30000) >= 0,
              "dead container's backend not deleted after the restart");
    printf("  converged %lld ms after the restart began\n", (long long)(clock_now_ms() - t0));
    CHECK(docker_watch_synced(w));
    docker_ok("run c", dockerd_harness_docker(H, c, sizeof(c), "run -d --name rc --expose 80 -l "
              L ".service=web -l " L ".backend.tcp=80 %s sleep 600", H->image));
    snprintf(cname, sizeof(cname), "testhost:%.12s", c);
    CHECK(run_until(w, &r, mark, "put web", cname, 30000) >= 0);
out:
    for (size_t i = 0; check_failed() && i < r.n_notices; i++)
        printf("    %s\n", r.notices[i]);
    if (H)
        dockerd_harness_docker(H, NULL, 0, "rm -f ra rc >/dev/null 2>&1");
    docker_watch_free(w);
    rec_clear(&r);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    int rc = dockerd_rc = dockerd_harness_start(&H, why, sizeof(why));
    if (rc != 0)
        printf("private dockerd unavailable (%d): %s\n", rc, why);
    check_run("bad_options", test_bad_options);
    check_run("converges", test_converges);
    check_run("warnings_once", test_warnings_once);
    check_run("dockerd_restart", test_dockerd_restart);
    dockerd_harness_free(H);
    return check_end();
}
