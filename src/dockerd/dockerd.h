/* dockerd.h -- the clusterf-docker daemon: this Docker host's labelled containers written to
 * etcd as backends, every key on one lease.
 *
 * docker_watch (docker/) keeps the desired backends; this module is the etcd writer behind
 * its sink: it remembers what it wrote (key -> value), puts what is desired and deletes what
 * is no longer, re-writes everything under a new lease when the lease is lost, and keeps
 * retrying (with backoff) while etcd is unreachable. One epoll loop: the watch fd, the lease
 * fd, a signalfd (SIGTERM/SIGINT: revoke the lease, return) and a retry timerfd. It logs
 * (common/log.h) every put, delete, warning and reconnect; it never exits the process. */
#ifndef CLUSTERF_DOCKERD_H
#define CLUSTERF_DOCKERD_H

#include "docker/docker.h"
#include "etcd/etcd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dockerd_opts {
    etcd_config etcd;          /* unused with dry_run */
    const char *etcd_prefix;   /* "/clusterf" (a trailing '/' is ignored) */
    docker_watch_opts watch;   /* dockerd host + labels -> backends policy (hostname required) */
    int64_t ttl_ms;            /* lease TTL, >= 2000, rounded up to whole seconds */
    bool dry_run;              /* log what would be put/deleted; no etcd at all */
    const char *metrics_listen; /* serve /metrics, /healthz, /readyz here; NULL = off */
} dockerd_opts;

/* The etcd key of a backend: "<prefix>/services/<service>/backends/<name>" into buf. Returns 0,
 * or -ENOSPC when it does not fit. */
int dockerd_backend_key(const char *prefix, const char *service, const char *name, char *buf,
                        size_t size);

/* Run the daemon until SIGTERM or SIGINT (blocked in the calling thread and read through a
 * signalfd), then revoke the lease so every key goes at once. Docker and etcd errors at run
 * time are logged and retried, never returned. Returns 0 after the signal, or -errno when it
 * cannot start (bad options, etcd config, epoll/signalfd): err says why. */
int dockerd_run(const dockerd_opts *opts, char *err, size_t errlen);

#endif
