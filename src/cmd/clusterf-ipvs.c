/* clusterf-ipvs.c -- main of the frontend daemon: parse flags, hand them to ipvsd_run(). */
#include "common/flags.h"
#include "common/log.h"
#include "config/config.h"
#include "etcd/etcd_flags.h"
#include "ipvsd/ipvsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "clusterf-ipvs [flags]\n\n"
    "Keeps the kernel's IPVS table equal to the clusterf config in etcd (and -config-path).\n"
    "Needs CAP_NET_ADMIN and the ip_vs module. SIGHUP: full resync now. SIGTERM/SIGINT: exit,\n"
    "leaving the kernel table as it is.";

struct ipvs_flags {
    const char *config_path, *sched, *method, *state_dir, *log_level;
    const char *metrics_listen;
    const char *adv_name, *adv_prefix4, *adv_prefix6, *adv_gw4, *adv_gw6, *adv_method;
    long adv_ttl, read_slice_keys;
    bool filter_etcd_routes, flush, dry_run, help, version, ipvs_sysctls, metrics_no_dests;
    int64_t resync_ms, coalesce_ms, drain_ms, metrics_kernel_ms, ready_etcd_ms;
};

/* Build the Route JSON of -advertise-route-* and check it like any route. 0 or -1 (printed). */
static int advertise_json(const struct ipvs_flags *f, const config_defaults *defs, char *out,
                          size_t size)
{
    if (!f->adv_prefix4 && !f->adv_prefix6) {
        fprintf(stderr, "clusterf-ipvs: -advertise-route-name: needs -advertise-route-prefix4 or -advertise-route-prefix6\n");
        return -1;
    }
    bool v4 = f->adv_prefix4 != NULL;
    const char *fam = v4 ? "4" : "6", *gw = v4 ? f->adv_gw4 : f->adv_gw6;
    size_t n = (size_t)snprintf(out, size, "{\"Prefix%s\":\"%s\"", fam, v4 ? f->adv_prefix4 : f->adv_prefix6);
    if (gw && n < size)
        n += (size_t)snprintf(out + n, size - n, ",\"Gateway%s\":\"%s\"", fam, gw);
    if (f->adv_method && n < size)
        n += (size_t)snprintf(out + n, size - n, ",\"IpvsMethod\":\"%s\"", f->adv_method);
    if (n < size)
        snprintf(out + n, size - n, "}");
    config_key key;
    config_error err;
    config_value val;
    char k[300];
    snprintf(k, sizeof k, "routes/%s", f->adv_name);
    if (config_parse_key(k, strlen(k), &key, &err) < 0 ||
        config_parse_value(&key, out, strlen(out), defs, &val, NULL, &err) < 0) {
        fprintf(stderr, "clusterf-ipvs: -advertise-route-*: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Translate the flag values into daemon options. 0 or -1 (printed). */
static int build_options(struct ipvs_flags *f, etcd_flag_values *ev, ipvsd_options *o,
                         char *adv, size_t adv_size, char *state, size_t state_size)
{
    char err[512];
    enum log_level lvl;
    if (log_parse_level(f->log_level, &lvl) < 0) {
        fprintf(stderr, "clusterf-ipvs: -log-level: \"%s\" is not debug, info, warn or error\n", f->log_level);
        return -1;
    }
    log_set_level(lvl);
    if (etcd_flags_config(ev, &o->etcd, err, sizeof err) < 0) {
        fprintf(stderr, "clusterf-ipvs: %s\n", err);
        return -1;
    }
    config_error cerr;
    if (config_defaults_parse(&o->config.defaults, f->sched, f->method, &cerr) < 0) {
        fprintf(stderr, "clusterf-ipvs: %s\n", cerr.msg);
        return -1;
    }
    o->config.filter_etcd_routes = f->filter_etcd_routes;
    o->prefix = ev->prefix;
    o->config_path = f->config_path;
    o->flush = f->flush;
    o->dry_run = f->dry_run;
    o->resync_ms = f->resync_ms;
    o->coalesce_ms = f->coalesce_ms;
    o->read_slice_keys = f->read_slice_keys;
    o->drain_ms = f->drain_ms;
    o->ipvs_sysctls = f->ipvs_sysctls;
    o->metrics_listen = f->metrics_listen;
    o->metrics_dests = !f->metrics_no_dests;
    o->metrics_kernel_ms = f->metrics_kernel_ms;
    o->ready_etcd_ms = f->ready_etcd_ms;
    snprintf(state, state_size, "%s/ipvs-owned", f->state_dir);
    o->state_path = f->state_dir[0] ? state : NULL;
    if (f->adv_name) {
        if (advertise_json(f, &o->config.defaults, adv, adv_size) < 0)
            return -1;
        o->advertise_name = f->adv_name;
        o->advertise_json = adv;
        o->advertise_ttl_s = f->adv_ttl;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct ipvs_flags f = {.sched = "wlc", .method = "masq", .state_dir = "/run/clusterf",
                           .log_level = "info", .adv_ttl = 10, .read_slice_keys = 2000, .resync_ms = 60000,
                           .coalesce_ms = 5, .drain_ms = 30000,
                           .metrics_kernel_ms = 10000, .ready_etcd_ms = 15000};
    etcd_flag_values ev;
    flag_def defs[ETCD_FLAGS_COUNT + 28];
    etcd_flags_defs(&ev, defs);
    const flag_def mine[] = {
        {"config-path", FLAG_STRING, &f.config_path, "DIR", "local config tree, merged with etcd (wins for the same key), re-read on change", 0, 0},
        {"filter-etcd-routes", FLAG_BOOL, &f.filter_etcd_routes, NULL, "ignore routes from etcd (only local ones apply)", 0, 0},
        {"advertise-route-name", FLAG_STRING, &f.adv_name, "NAME", "publish this host's route as <prefix>/routes/NAME under a lease", 0, 0},
        {"advertise-route-prefix4", FLAG_STRING, &f.adv_prefix4, "CIDR", "IPv4 prefix of the advertised route", 0, 0},
        {"advertise-route-prefix6", FLAG_STRING, &f.adv_prefix6, "CIDR", "IPv6 prefix of the advertised route", 0, 0},
        {"advertise-route-gateway4", FLAG_STRING, &f.adv_gw4, "ADDR", "IPv4 gateway of the advertised route", 0, 0},
        {"advertise-route-gateway6", FLAG_STRING, &f.adv_gw6, "ADDR", "IPv6 gateway of the advertised route", 0, 0},
        {"advertise-route-ipvs-method", FLAG_STRING, &f.adv_method, "METHOD", "masq, droute, tunnel or filter", 0, 0},
        {"advertise-route-ttl", FLAG_INT, &f.adv_ttl, "SECONDS", "lease TTL of the advertised route", 2, 3600},
        {"ipvs-sched", FLAG_STRING, &f.sched, "NAME", "scheduler of frontends that name none", 0, 0},
        {"ipvs-fwd-method", FLAG_STRING, &f.method, "METHOD", "forwarding of backends no route covers: masq, droute, tunnel", 0, 0},
        {"flush", FLAG_BOOL, &f.flush, NULL, "clear the whole IPVS table once at start, then own it", 0, 0},
        {"resync-interval", FLAG_DURATION, &f.resync_ms, "DURATION", "period of full kernel dumps that repair drift (0 = never)", 0, 0},
        {"coalesce", FLAG_DURATION, &f.coalesce_ms, "DURATION", "delay that gathers a burst of etcd events into one pass", 0, 0},
        {"read-slice-keys", FLAG_INT, &f.read_slice_keys, "N", "apply the etcd read at most N keys per event-loop turn (more between events)", 1, 1000000},
        {"drain-timeout", FLAG_DURATION, &f.drain_ms, "DURATION", "a removed TCP backend keeps its connections at weight 0 until they end or this long (0 = delete at once)", 0, 0},
        {"ipvs-sysctls", FLAG_BOOL, &f.ipvs_sysctls, NULL, "set net.ipv4.vs.expire_nodest_conn=1, expire_quiescent_template=1, conn_reuse_mode=1 at start", 0, 0},
        {"state-dir", FLAG_STRING, &f.state_dir, "DIR", "where the services clusterf created are remembered", 0, 0},
        {"metrics-listen", FLAG_STRING, &f.metrics_listen, "ADDR:PORT", "serve Prometheus /metrics, /healthz and /readyz here (:PORT = 127.0.0.1:PORT; off unless given)", 0, 0},
        {"metrics-no-destinations", FLAG_BOOL, &f.metrics_no_dests, NULL, "leave out the per-destination kernel counters (very large tables)", 0, 0},
        {"metrics-kernel-interval", FLAG_DURATION, &f.metrics_kernel_ms, "DURATION", "dump the kernel's IPVS counters for /metrics at most this often", 0, 0},
        {"ready-etcd-timeout", FLAG_DURATION, &f.ready_etcd_ms, "DURATION", "/readyz fails when etcd was not reached for this long (0 = never)", 0, 0},
        {"dry-run", FLAG_BOOL, &f.dry_run, NULL, "log the ops, never change the kernel", 0, 0},
        {"log-level", FLAG_STRING, &f.log_level, "LEVEL", "debug, info, warn or error", 0, 0},
        {"help", FLAG_BOOL, &f.help, NULL, "show this help", 0, 0},
        {"version", FLAG_BOOL, &f.version, NULL, "show the version", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    _Static_assert(sizeof mine <= sizeof defs - ETCD_FLAGS_COUNT * sizeof defs[0],
                   "defs too small for the flags");
    memcpy(defs + ETCD_FLAGS_COUNT, mine, sizeof mine);
    char err[512];
    int first = flags_parse(defs, argc, argv, err, sizeof err);
    if (first < 0) {
        fprintf(stderr, "clusterf-ipvs: %s\n", err);
        return 2;
    }
    if (f.help) {
        flags_usage(stdout, usage, defs);
        return 0;
    }
    if (f.version) {
        printf("clusterf-ipvs %s\n", CLUSTERF_VERSION);
        return 0;
    }
    if (first < argc) {
        fprintf(stderr, "clusterf-ipvs: unexpected argument \"%s\" (see --help)\n", argv[first]);
        return 2;
    }
    ipvsd_options o = {0};
    char adv[1024], state[4096];
    if (build_options(&f, &ev, &o, adv, sizeof adv, state, sizeof state) < 0)
        return 2;
    return ipvsd_run(&o);
}
