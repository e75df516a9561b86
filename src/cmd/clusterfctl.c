/* clusterfctl.c -- main of the operator tool: pick the command, parse its flags (the shared
 * etcd set plus the command's own), hand them to src/ctl/. Exit status: see ctl.h. */
#include "common/flags.h"
#include "common/log.h"
#include "config/config.h"
#include "ctl/ctl.h"
#include "etcd/etcd_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_top[] =
    "clusterfctl [flags] COMMAND [flags]   (flags may come before the command or after it)\n\n"
    "Commands:\n"
    "  get        the merged config (etcd + --config-path): every key, its source and state\n"
    "  validate   check the config; exit 0 valid, 1 invalid keys, 2 usage or connection error\n"
    "  register   SERVICE BACKEND --ipv4 A [--tcp P]...: a backend under a lease until SIGTERM\n"
    "  status     the desired IPVS table next to the kernel's; exit 0 in sync, 1 drift,\n"
    "             3 unknown (an invalid key's last valid value is compacted away)\n"
    "  health     [--url URL | --path /readyz]: GET a daemon's /healthz (CLUSTERF_METRICS_LISTEN);\n"
    "             exit 0 on 200 (the image's HEALTHCHECK)\n\n"
    "clusterfctl COMMAND --help shows the command's flags.";

struct ctl_flags {
    const char *output, *config_path, *sched, *method, *state_dir, *log_level;
    const char *ipv4, *ipv6;
    long tcp, udp, weight;
    int64_t ttl_ms;
    bool no_etcd, filter_etcd_routes, help, version;
};

enum { F_CFG = 1, F_STATUS = 2, F_REGISTER = 4, F_ALL = 7 };

struct cmd {
    const char *name;
    unsigned mask;
    const char *usage;
};

static const struct cmd cmds[] = {
    {"get", F_CFG, "clusterfctl get [-o table|json] [--config-path DIR] [flags]\n\n"
     "Every key of the merged config with its source, kind, state (in-force, shadowed, stale,\n"
     "invalid, unknown), etcd revision and canonical value; invalid keys with their error.\n"
     "stale: invalid now, shown with its last valid value from etcd's history (what a running\n"
     "clusterf-ipvs keeps); unknown: invalid, and that history is compacted away."},
    {"validate", F_CFG, "clusterfctl validate [--config-path DIR] [--no-etcd] [flags]\n\n"
     "Check the config in etcd and/or a local tree: errors with their key, unknown keys and\n"
     "table conflicts as warnings. Exit 0 when valid, 1 when a key is invalid, 2 on usage or\n"
     "connection errors."},
    {"status", F_CFG | F_STATUS, "clusterfctl status [--config-path DIR] [flags]\n\n"
     "The desired IPVS table (as clusterf-ipvs computes it) next to the kernel's, per service and\n"
     "destination: ok, missing, differ, extra, stale (created by clusterf-ipvs, no longer\n"
     "wanted), foreign (left alone), unknown (the service depends on an invalid key whose last\n"
     "valid value is compacted from etcd's history: what clusterf-ipvs keeps for it cannot be\n"
     "known). Exit 0 in sync, 1 drift, 2 when IPVS is absent, 3 no drift but unknown services.\n"
     "Needs CAP_NET_ADMIN; changes nothing."},
    {"register", F_REGISTER, "clusterfctl register SERVICE BACKEND --ipv4 A [--ipv6 A] [--tcp P] "
     "[--udp P] [--weight W] [--ttl DURATION] [flags]\n\n"
     "Put <prefix>/services/SERVICE/backends/BACKEND under a lease and keep it alive until\n"
     "SIGINT/SIGTERM, then revoke the lease (the key goes at once). If this process dies, the\n"
     "key expires with the TTL."},
};

/* Fill defs (etcd flags first) with the flags of the commands in mask. Returns the count. */
static size_t build_defs(struct ctl_flags *f, etcd_flag_values *ev, unsigned mask, flag_def *defs)
{
    const struct { unsigned mask; flag_def d; } all[] = {
        {F_CFG, {"output", FLAG_STRING, &f->output, "FORMAT", "table or json", 0, 0}},
        {F_CFG, {"o", FLAG_STRING, &f->output, "FORMAT", "short for --output", 0, 0}},
        {F_CFG, {"config-path", FLAG_STRING, &f->config_path, "DIR", "local config tree, merged with etcd (wins for the same key)", 0, 0}},
        {F_CFG, {"no-etcd", FLAG_BOOL, &f->no_etcd, NULL, "read only --config-path, not etcd", 0, 0}},
        {F_CFG, {"filter-etcd-routes", FLAG_BOOL, &f->filter_etcd_routes, NULL, "ignore routes from etcd, as clusterf-ipvs does with it", 0, 0}},
        {F_CFG, {"ipvs-sched", FLAG_STRING, &f->sched, "NAME", "scheduler of frontends that name none (as clusterf-ipvs)", 0, 0}},
        {F_CFG | F_REGISTER, {"ipvs-fwd-method", FLAG_STRING, &f->method, "METHOD", "forwarding of backends no route covers (as clusterf-ipvs)", 0, 0}},
        {F_STATUS, {"state-dir", FLAG_STRING, &f->state_dir, "DIR", "clusterf-ipvs's state dir: tells its stale services from foreign ones", 0, 0}},
        {F_REGISTER, {"ipv4", FLAG_STRING, &f->ipv4, "ADDR", "the backend's IPv4 address", 0, 0}},
        {F_REGISTER, {"ipv6", FLAG_STRING, &f->ipv6, "ADDR", "the backend's IPv6 address", 0, 0}},
        {F_REGISTER, {"tcp", FLAG_INT, &f->tcp, "PORT", "TCP port (-1 = none)", 1, 65535}},
        {F_REGISTER, {"udp", FLAG_INT, &f->udp, "PORT", "UDP port (-1 = none)", 1, 65535}},
        {F_REGISTER, {"weight", FLAG_INT, &f->weight, "W", "weight 0..65535 (-1 = the default, 10)", 0, 65535}},
        {F_REGISTER, {"ttl", FLAG_DURATION, &f->ttl_ms, "DURATION", "lease TTL (kept alive every TTL/3)", 0, 0}},
        {F_REGISTER, {"log-level", FLAG_STRING, &f->log_level, "LEVEL", "debug, info, warn or error", 0, 0}},
        {F_ALL, {"help", FLAG_BOOL, &f->help, NULL, "show this help", 0, 0}},
        {F_ALL, {"version", FLAG_BOOL, &f->version, NULL, "show the version", 0, 0}},
    };
    etcd_flags_defs(ev, defs);
    size_t n = ETCD_FLAGS_COUNT;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].mask & mask)
            defs[n++] = all[i].d;
    defs[n] = (flag_def){NULL, 0, NULL, NULL, NULL, 0, 0};
    return n;
}

/* Flag values -> ctl_options. 0 or -1 (printed). */
static int build_options(struct ctl_flags *f, etcd_flag_values *ev, ctl_options *o)
{
    char err[512];
    enum log_level lvl;
    if (log_parse_level(f->log_level, &lvl) < 0) {
        fprintf(stderr, "clusterfctl: --log-level: \"%s\" is not debug, info, warn or error\n", f->log_level);
        return -1;
    }
    log_set_level(lvl);
    if (strcmp(f->output, "table") != 0 && strcmp(f->output, "json") != 0) {
        fprintf(stderr, "clusterfctl: --output: \"%s\" is not table or json\n", f->output);
        return -1;
    }
    config_error cerr;
    if (config_defaults_parse(&o->config.defaults, f->sched, f->method, &cerr) < 0) {
        fprintf(stderr, "clusterfctl: %s\n", cerr.msg);
        return -1;
    }
    if (f->no_etcd && !f->config_path) {
        fprintf(stderr, "clusterfctl: --no-etcd: needs --config-path\n");
        return -1;
    }
    if (etcd_flags_config(ev, &o->etcd, err, sizeof err) < 0) {
        fprintf(stderr, "clusterfctl: %s\n", err);
        return -1;
    }
    o->config.filter_etcd_routes = f->filter_etcd_routes;
    o->prefix = ev->prefix;
    o->config_path = f->config_path;
    o->no_etcd = f->no_etcd;
    o->json = strcmp(f->output, "json") == 0;
    o->out = stdout;
    o->err = stderr;
    return 0;
}

/* Run the command with its positional arguments. */
static int run(const struct cmd *c, struct ctl_flags *f, ctl_options *o, int argc, char **argv)
{
    int want = strcmp(c->name, "register") == 0 ? 2 : 0;
    if (argc != want) {
        if (argc > want)
            fprintf(stderr, "clusterfctl: %s: unexpected argument \"%s\" (see --help)\n", c->name, argv[want]);
        else
            fprintf(stderr, "clusterfctl: %s: needs SERVICE and BACKEND (see --help)\n", c->name);
        return CTL_EXIT_USAGE;
    }
    if (strcmp(c->name, "get") == 0)
        return ctl_get(o);
    if (strcmp(c->name, "validate") == 0)
        return ctl_validate(o);
    if (strcmp(c->name, "status") == 0) {
        char state[4096];
        snprintf(state, sizeof state, "%s/ipvs-owned", f->state_dir);
        o->state_path = f->state_dir[0] ? state : NULL;
        return ctl_status(o);
    }
    ctl_register_args a = {argv[0], argv[1], f->ipv4, f->ipv6, f->tcp, f->udp, f->weight, f->ttl_ms};
    return ctl_register(o, &a);
}

/* No command: --help, --version, or a usage error. */
static int no_command(int argc, char **argv)
{
    const char *a = argc > 1 ? argv[1] : "";
    if (strcmp(a, "--help") == 0 || strcmp(a, "-help") == 0 || strcmp(a, "-h") == 0) {
        printf("Usage: %s\n", usage_top);
        return 0;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-version") == 0) {
        printf("clusterfctl %s\n", CLUSTERF_VERSION);
        return 0;
    }
    if (argc > 1)
        fprintf(stderr, "clusterfctl: \"%s\" is not a command (get, validate, register, status, health)\n", a);
    else
        fprintf(stderr, "Usage: %s\n", usage_top);
    return CTL_EXIT_USAGE;
}

/* `clusterfctl health [--url=URL] [--path=PATH]`: no etcd, no other flag. */
static int health_main(int argc, char **argv)
{
    const char *url = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i] + (strncmp(argv[i], "--", 2) == 0);
        if (strncmp(a, "-url=", 5) == 0)
            url = a + 5;
        else if (strncmp(a, "-path=", 6) == 0)
            path = a + 6;
        else if (strcmp(a, "-help") == 0 || strcmp(a, "-h") == 0)
            return printf("Usage: clusterfctl health [--url=URL | --path=/readyz]\n"), 0;
        else
            return fprintf(stderr, "clusterfctl: health: unknown argument \"%s\"\n", argv[i]),
                   CTL_EXIT_USAGE;
    }
    return ctl_health(url, path, stdout);
}

/* The command named in argv (the first argument that is a command's name), or NULL. */
static const struct cmd *find_command(int argc, char **argv, int *at)
{
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--") == 0)
            return NULL;
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (strcmp(argv[a], cmds[i].name) == 0) {
                *at = a;
                return &cmds[i];
            }
    }
    return NULL;
}

/* Global flags may come before the command, as etcdctl, kubectl and docker take them
 * (`clusterfctl --etcd-endpoints=URL validate`): move the command to argv[1]. */
static void command_first(int argc, char **argv)
{
    int at = 0;
    if (argc < 3 || argv[1][0] != '-' || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "--version") == 0 || !find_command(argc, argv, &at))
        return;
    char *name = argv[at];
    memmove(&argv[2], &argv[1], (size_t)(at - 1) * sizeof *argv);
    argv[1] = name;
}

int main(int argc, char **argv)
{
    command_first(argc, argv);
    if (argc > 1 && strcmp(argv[1], "health") == 0)
        return health_main(argc - 1, argv + 1);
    const struct cmd *c = NULL;
    for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            c = &cmds[i];
    if (!c)
        return no_command(argc, argv);
    struct ctl_flags f = {.output = "table", .sched = "wlc", .method = "masq",
                          .state_dir = "/run/clusterf", .log_level = "info", .tcp = -1,
                          .udp = -1, .weight = -1, .ttl_ms = 10000};
    etcd_flag_values ev;
    flag_def defs[ETCD_FLAGS_COUNT + 24];
    build_defs(&f, &ev, c->mask, defs);
    char err[512];
    int first = flags_parse(defs, argc - 1, argv + 1, err, sizeof err);
    if (first < 0) {
        fprintf(stderr, "clusterfctl: %s: %s\n", c->name, err);
        return CTL_EXIT_USAGE;
    }
    if (f.help) {
        flags_usage(stdout, c->usage, defs);
        return 0;
    }
    if (f.version) {
        printf("clusterfctl %s\n", CLUSTERF_VERSION);
        return 0;
    }
    ctl_options o = {0};
    if (build_options(&f, &ev, &o) < 0)
        return CTL_EXIT_USAGE;
    return run(c, &f, &o, argc - 1 - first, argv + 1 + first);
}
