/* clusterf-docker.c -- main of clusterf-docker: parse flags (common/flags.h, each also an
 * environment variable CLUSTERF_<NAME>) and run the daemon (dockerd/dockerd.h). Exit status:
 * 0 after SIGTERM/SIGINT (lease revoked), 2 on a bad flag, 1 when it cannot start. */
#include "common/flags.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "docker/docker.h"
#include "dockerd/dockerd.h"
#include "etcd/etcd_flags.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE "clusterf-docker [flags]\n\n" \
"Writes this Docker host's labelled containers to etcd as clusterf backends, at\n" \
"<etcd-prefix>/services/<service>/backends/<hostname>:<container short id>, every key\n" \
"attached to one etcd lease (TTL --ttl, kept alive every TTL/3). A stopped container's keys\n" \
"are deleted at once; if this daemon or host dies they expire with the lease. Survives\n" \
"dockerd and etcd restarts (reconnects with backoff, re-lists, converges).\n\n" \
"Labels (prefix --label-prefix): <p>.service=\"svc1 svc2\", <p>.backend.tcp=PORT,\n" \
"<p>.backend.udp=PORT, <p>.backend:<svc>.tcp|udp=PORT, <p>.backend[:<svc>].weight=W (default\n" \
"10; 0 while paused or while a health check is not healthy). Ports must be EXPOSE'd.\n\n" \
"Signals: SIGTERM or SIGINT revokes the lease (every key is deleted at once) and exits 0.\n" \
"The etcd password is read from --etcd-password-file, else from CLUSTERF_ETCD_PASSWORD."

typedef struct cli {
    etcd_flag_values etcd;
    const char *docker_host, *hostname, *label_prefix, *network, *publish_mode;
    const char *host_ipv4, *host_ipv6, *log_level, *metrics_listen;
    int64_t ttl_ms;
    bool dry_run, help, version;
    char hostbuf[256];
} cli;

static int check_flags(cli *f, dockerd_opts *o, char *err, size_t errlen)
{
    enum log_level lvl;
    if (log_parse_level(f->log_level, &lvl) < 0) {
        snprintf(err, errlen, "-log-level (CLUSTERF_LOG_LEVEL): \"%s\" is not debug, info, "
                 "warn or error", f->log_level);
        return -EINVAL;
    }
    log_set_level(lvl);
    if (docker_publish_mode_parse(f->publish_mode, &o->watch.backend.publish_mode) < 0) {
        snprintf(err, errlen, "-publish-mode (CLUSTERF_PUBLISH_MODE): \"%s\" is not internal "
                 "or published", f->publish_mode);
        return -EINVAL;
    }
    if (f->ttl_ms < 2000) {
        snprintf(err, errlen, "-ttl (CLUSTERF_TTL): %lld ms is below the minimum of 2s",
                 (long long)f->ttl_ms);
        return -EINVAL;
    }
    if (!f->hostname[0]) {
        snprintf(err, errlen, "-hostname: empty");
        return -EINVAL;
    }
    return f->help || f->version ? 0 :
        etcd_flags_config(&f->etcd, &o->etcd, err, errlen);
}

static const char *empty_null(const char *s)
{
    return s && s[0] ? s : NULL;
}

#define N_FLAGS (ETCD_FLAGS_COUNT + 14)

/* Defaults and the flag table (defs has N_FLAGS entries, the last one all zero). */
static void cli_init(cli *f, flag_def *defs)
{
    const char *dh = getenv("DOCKER_HOST");
    *f = (cli){.label_prefix = DOCKER_DEFAULT_LABEL_PREFIX, .publish_mode = "internal",
               .log_level = "info", .ttl_ms = 10000};
    f->docker_host = dh && dh[0] ? dh : DOCKER_DEFAULT_HOST;
    if (gethostname(f->hostbuf, sizeof(f->hostbuf) - 1) < 0)
        f->hostbuf[0] = '\0';
    f->hostname = f->hostbuf;
    const flag_def own[] = {
        {"docker-host", FLAG_STRING, &f->docker_host, "URL", "dockerd API: unix:///path or "
         "tcp://host:port; $DOCKER_HOST when set", 0, 0},
        {"hostname", FLAG_STRING, &f->hostname, "NAME", "this host's name: first part of every "
         "backend name", 0, 0},
        {"label-prefix", FLAG_STRING, &f->label_prefix, "PREFIX", "container label prefix", 0, 0},
        {"docker-network", FLAG_STRING, &f->network, "NAME", "use the container's address on "
         "this network (default: the default bridge, else its only network)", 0, 0},
        {"publish-mode", FLAG_STRING, &f->publish_mode, "MODE", "internal (container address and "
         "port) or published (--host-ipv4/6 and the published host port)", 0, 0},
        {"host-ipv4", FLAG_STRING, &f->host_ipv4, "ADDR", "this host's IPv4 (published mode)",
         0, 0},
        {"host-ipv6", FLAG_STRING, &f->host_ipv6, "ADDR", "this host's IPv6 (published mode)",
         0, 0},
        {"ttl", FLAG_DURATION, &f->ttl_ms, "DURATION", "lease TTL (>= 2s; 10s, 3 = seconds)", 0, 0},
        {"dry-run", FLAG_BOOL, &f->dry_run, NULL, "log what would be written/deleted, write "
         "nothing to etcd (still reads dockerd)", 0, 0},
        {"metrics-listen", FLAG_STRING, &f->metrics_listen, "ADDR:PORT", "serve Prometheus "
         "/metrics, /healthz and /readyz here (:PORT = 127.0.0.1:PORT; off unless given)", 0, 0},
        {"log-level", FLAG_STRING, &f->log_level, "LEVEL", "debug, info, warn or error", 0, 0},
        {"help", FLAG_BOOL, &f->help, NULL, "show this help", 0, 0},
        {"version", FLAG_BOOL, &f->version, NULL, "show the version", 0, 0},
    };
    _Static_assert(sizeof(own) / sizeof(own[0]) == N_FLAGS - ETCD_FLAGS_COUNT - 1,
                   "N_FLAGS: own flags + etcd flags + the end");
    etcd_flags_defs(&f->etcd, defs);
    memcpy(defs + ETCD_FLAGS_COUNT, own, sizeof(own));
    memset(defs + N_FLAGS - 1, 0, sizeof(*defs));
}

/* The daemon's options from the parsed flags (o->etcd is filled by check_flags). */
static void cli_opts(const cli *f, dockerd_opts *o)
{
    o->etcd_prefix = f->etcd.prefix;
    o->ttl_ms = f->ttl_ms;
    o->dry_run = f->dry_run;
    o->metrics_listen = empty_null(f->metrics_listen);
    o->watch.host = f->docker_host;
    o->watch.backend.label_prefix = f->label_prefix;
    o->watch.backend.network = empty_null(f->network);
    o->watch.backend.host_ipv4 = empty_null(f->host_ipv4);
    o->watch.backend.host_ipv6 = empty_null(f->host_ipv6);
    o->watch.backend.hostname = f->hostname;
    o->watch.resync_ms = 5 * 60 * 1000;
}

int main(int argc, char **argv)
{
    cli f;
    flag_def defs[N_FLAGS];
    signal(SIGPIPE, SIG_IGN);
    cli_init(&f, defs);
    char err[512] = "";
    dockerd_opts o = {0};
    int first = flags_parse(defs, argc, argv, err, sizeof(err));
    if (first >= 0 && first < argc) {
        snprintf(err, sizeof(err), "unexpected argument \"%s\"", argv[first]);
        first = -EINVAL;
    }
    if (first < 0 || check_flags(&f, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "clusterf-docker: %s (see --help)\n", err);
        return 2;
    }
    if (f.help) {
        flags_usage(stdout, USAGE, defs);
        return 0;
    }
    if (f.version) {
        printf("clusterf-docker %s\n", CLUSTERF_VERSION);
        return 0;
    }
    cli_opts(&f, &o);
    if (dockerd_run(&o, err, sizeof(err)) < 0) {
        char q[600];
        log_error("msg=\"cannot start\" error=%s", log_quote(q, sizeof(q), err));
        return 1;
    }
    return 0;
}
