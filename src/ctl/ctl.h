/* ctl.h -- the commands of clusterfctl, the operator tool (SPEC §6): get, validate, register,
 * status. src/cmd/clusterfctl.c parses the flags into a ctl_options and calls one of these.
 *
 * Each command writes its report to o->out and its diagnostics to o->err, and returns the
 * process exit status (CTL_EXIT_*). The config is read exactly as clusterf-ipvs reads it
 * (cfgsource/): the etcd prefix at one revision plus the -config-path tree, local winning. */
#ifndef CLUSTERF_CTL_H
#define CLUSTERF_CTL_H

#include "config/config.h"
#include "etcd/etcd.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum ctl_exit {
    CTL_EXIT_OK = 0,      /* valid / in sync / done */
    CTL_EXIT_PROBLEM = 1, /* invalid keys (validate), drift (status), a failed revoke */
    CTL_EXIT_USAGE = 2,   /* bad flags, etcd unreachable, no IPVS, ... */
    CTL_EXIT_UNKNOWN = 3, /* status: no drift found, but part of the table cannot be checked */
};

typedef struct ctl_options {
    etcd_config etcd;
    const char *prefix;      /* "/clusterf" */
    const char *config_path; /* local tree, or NULL */
    bool no_etcd;            /* read only the local tree */
    bool json;               /* -o json */
    config_options config;   /* defaults (sched, method), filter_etcd_routes: as the daemon */
    const char *state_path;  /* clusterf-ipvs's owned-services file (status), or NULL */
    FILE *out, *err;
} ctl_options;

/* `register`: the backend and its lease. Ports and weight: -1 = absent. */
typedef struct ctl_register_args {
    const char *service, *backend;
    const char *ipv4, *ipv6;
    long tcp, udp, weight;
    int64_t ttl_ms;
} ctl_register_args;

/* Print every key of the merged config with its source, kind, state and canonical value
 * (a table, or JSON with o->json). 0, or 2 when the config cannot be read. */
int ctl_get(const ctl_options *o);

/* Check the config: errors with their key, unknown keys and lb warnings as warnings.
 * 0 when every key is valid, 1 when any is invalid, 2 when the config cannot be read. */
int ctl_validate(const ctl_options *o);

/* Put <prefix>/services/SERVICE/backends/BACKEND under a lease, keep it alive until SIGINT or
 * SIGTERM (re-granting and re-putting a lost lease), then revoke it. 0 after a signal and a
 * revoke, 1 when the revoke failed, 2 for bad arguments or when etcd cannot be reached. */
int ctl_register(const ctl_options *o, const ctl_register_args *a);

/* Build the Backend JSON of a and check it as clusterf-ipvs would. Returns 0, or -EINVAL with
 * a message naming the argument or flag at fault in err. */
int ctl_backend_json(const ctl_register_args *a, const config_defaults *defs, char *out,
                     size_t size, char *err, size_t errlen);

/* Compare the desired IPVS table with the kernel's, per service and destination. 0 when in
 * sync, 1 on drift, 2 when the config or the kernel table cannot be read (no IPVS, ...), 3
 * when there is no drift but some services are unknown: they depend on an invalid etcd key
 * whose last valid value (which a running clusterf-ipvs keeps) is gone from etcd's history. */
int ctl_status(const ctl_options *o);

/* `clusterfctl health`: GET url (NULL: CLUSTERF_METRICS_LISTEN + path, default /healthz);
 * 0 on HTTP 200 (or nothing to ask), 1 otherwise, with one line on out. */
int ctl_health(const char *url, const char *path, FILE *out);

#endif
