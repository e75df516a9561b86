/* docker.h -- the Docker side of clusterf-docker: a Docker Engine API client (list, inspect,
 * the events stream) and the pure policy that turns a labelled container into backends.
 *
 * Three parts, one module:
 *   docker_api.c     HTTP over dockerd's unix socket (or tcp://) with libcurl, JSON with json-c,
 *                    API version pinned to DOCKER_API_VERSION (dockerd 20.10 in bookworm = 1.41).
 *   docker_events.c  GET /events on a thread of its own, decoded events handed to the caller's
 *                    epoll loop through a queue + eventfd (docker_events_fd/next).
 *   docker_container.c + docker_labels.c  inspect JSON -> docker_container (a plain struct) ->
 *                    docker_backends; no I/O, no logging, warnings returned as strings.
 *   docker_watch.c   the loop below, done: keeps the desired backends of this host and tells a
 *                    docker_sink (the etcd writer) what to put and delete.
 *
 * How the daemon uses it (level-triggered): docker_events_start(); on DOCKER_EVENT_CONNECTED
 * (the stream is open, so nothing after this point can be missed) list (label filter
 * "<prefix>.service") + inspect every running container and write what docker_backends_from_container() says; on a container event inspect
 * that one container again (-ENOENT = gone); on DOCKER_EVENT_OVERFLOW re-list; on
 * DOCKER_EVENT_END (dockerd stopped or restarted, socket error) free the stream and start a new
 * one after a backoff (common/timeutil.h). Library code: it never logs and never exits. */
#ifndef CLUSTERF_DOCKER_H
#define CLUSTERF_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOCKER_API_VERSION "v1.41"
#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DOCKER_DEFAULT_LABEL_PREFIX "net.qmsk.clusterf"
#define DOCKER_DEFAULT_WEIGHT 10

/* An error: code is a negative errno (also the function's return value), msg says what. */
typedef struct docker_error {
    int code;
    char msg[256];
} docker_error;

/* ---- Containers (values) ---------------------------------------------------------------- */

typedef enum docker_state {
    DOCKER_STATE_OTHER,      /* created, restarting, exited, dead, removing, unknown */
    DOCKER_STATE_RUNNING,
    DOCKER_STATE_PAUSED,
} docker_state;

typedef enum docker_health {
    DOCKER_HEALTH_NONE,      /* no health check */
    DOCKER_HEALTH_STARTING,
    DOCKER_HEALTH_HEALTHY,
    DOCKER_HEALTH_UNHEALTHY,
} docker_health;

#define DOCKER_ADDR4_LEN 16  /* INET_ADDRSTRLEN */
#define DOCKER_ADDR6_LEN 46  /* INET6_ADDRSTRLEN */

typedef struct docker_label {
    char *key, *value;
} docker_label;

/* One published binding of a container port ("HostIp" may be "" or a wildcard). */
typedef struct docker_binding {
    char host_ip[DOCKER_ADDR6_LEN];
    uint16_t host_port;
} docker_binding;

/* A container port ("8080/tcp"), exposed and/or published. */
typedef struct docker_port {
    uint16_t port;
    char proto[8];           /* "tcp", "udp", "sctp" */
    bool exposed;            /* in Config.ExposedPorts */
    size_t n_bindings;
    docker_binding *bindings; /* from NetworkSettings.Ports */
} docker_port;

/* The container's endpoint on one network; addresses "" when it has none. */
typedef struct docker_network {
    char *name;
    char ipv4[DOCKER_ADDR4_LEN];
    char ipv6[DOCKER_ADDR6_LEN];
} docker_network;

/* What clusterf needs from GET /containers/{id}/json. Every string is non-NULL. */
typedef struct docker_container {
    char *id;                /* full 64-hex id */
    char *name;              /* without the leading '/' */
    char *hostname;          /* Config.Hostname */
    char *state_str;         /* State.Status as dockerd said it */
    docker_state state;
    docker_health health;
    size_t n_labels;
    docker_label *labels;
    size_t n_ports;
    docker_port *ports;
    char ipv4[DOCKER_ADDR4_LEN]; /* NetworkSettings.IPAddress: the default bridge */
    char ipv6[DOCKER_ADDR6_LEN]; /* NetworkSettings.GlobalIPv6Address */
    size_t n_networks;
    docker_network *networks;    /* sorted by name */
} docker_container;

/* Parse an inspect body. Every field is type- and size-checked; unknown or wrongly typed
 * optional fields are ignored. Returns 0 and *out (free with docker_container_free), -EINVAL
 * when the body is not a JSON object with a valid "Id", -ENOMEM. */
int docker_container_parse(const char *json, size_t len, docker_container **out,
                           docker_error *err);
/* Free a container and everything in it; NULL is a no-op. */
void docker_container_free(docker_container *c);

/* The value of a label, or NULL. */
const char *docker_container_label(const docker_container *c, const char *key);

/* The port "port/proto", or NULL. */
const docker_port *docker_container_port(const docker_container *c, uint16_t port,
                                         const char *proto);

/* The container's endpoint on network `name`, or NULL. */
const docker_network *docker_container_network(const docker_container *c, const char *name);

/* "none", "starting", "healthy", "unhealthy". */
const char *docker_health_str(docker_health h);

/* ---- Labels -> backends (pure) ---------------------------------------------------------- */

typedef enum docker_publish_mode {
    DOCKER_PUBLISH_INTERNAL,   /* the container's own address and port (default) */
    DOCKER_PUBLISH_PUBLISHED,  /* the host's address and the published host port */
} docker_publish_mode;

/* Parse "internal" or "published". Returns 0 or -EINVAL. */
int docker_publish_mode_parse(const char *s, docker_publish_mode *out);

typedef struct docker_backend_opts {
    const char *label_prefix;  /* NULL: DOCKER_DEFAULT_LABEL_PREFIX */
    const char *network;       /* NULL: the default bridge, else the container's only network */
    docker_publish_mode publish_mode;
    const char *host_ipv4;     /* published mode: this host's addresses (NULL: none) */
    const char *host_ipv6;
    const char *hostname;      /* this host's name: first part of every backend name */
} docker_backend_opts;

/* One backend to write at <etcd-prefix>/services/<service>/backends/<name>. */
typedef struct docker_backend {
    char *service;
    char *name;
    char *json;                /* the SPEC backend JSON, e.g. {"ipv4":"..","tcp":8080,"weight":10} */
    char ipv4[DOCKER_ADDR4_LEN];
    char ipv6[DOCKER_ADDR6_LEN];
    uint16_t tcp, udp;         /* 0 = none */
    unsigned weight;
} docker_backend;

typedef struct docker_backends {
    size_t n;
    docker_backend *v;         /* in the order of the service label */
    size_t n_warnings;
    char **warnings;           /* each names the container and the label concerned */
} docker_backends;

/* The backends a container stands for, by SPEC §5:
 *  - services from "<prefix>.service" (space separated; invalid names warned and skipped);
 *  - ports from "<prefix>.backend:<service>.tcp|udp", else "<prefix>.backend.tcp|udp"; a port
 *    must be 1..65535 and EXPOSE'd (else warned and not used); published mode uses the host
 *    port it is published on (else warned and not used); a service left with no port is
 *    skipped with a warning;
 *  - weight from "<prefix>.backend:<service>.weight", else "<prefix>.backend.weight" (0..65535,
 *    default 10; invalid: warned, default used); 0 while paused, and 0 while a container with
 *    a health check is not "healthy";
 *  - address: internal mode the container's IPv4/IPv6 on opts->network (NULL: the default
 *    bridge, else its only network, else the first by name with a warning); published mode
 *    opts->host_ipv4/host_ipv6.
 * A container that is neither running nor paused, or has no service label, has no backends.
 * Backend name: "<hostname>:<short id>" (12 hex digits of the id), the hostname sanitised to
 * [A-Za-z0-9._-] (other bytes become '-') and cut so the name fits 253 bytes: unique per
 * container on a host, stable for the container's life, and one valid key segment.
 * Returns 0 and *out (free with docker_backends_free), -EINVAL (no opts->hostname), -ENOMEM. */
int docker_backends_from_container(const docker_container *c, const docker_backend_opts *opts,
                                   docker_backends **out);
/* Free the list, its backends and warnings; NULL is a no-op. */
void docker_backends_free(docker_backends *b);

/* Write the backend name for (hostname, container id) into buf. Returns 0, -EINVAL (empty id),
 * -ENOSPC (size too small; 254 always suffices). */
int docker_backend_name(const char *hostname, const char *container_id, char *buf, size_t size);

/* ---- API client ------------------------------------------------------------------------- */

/* One connection's worth of state (a reused curl handle): use a client from one thread at a
 * time. The events stream runs on its own thread and does not touch the client. */
typedef struct docker_client docker_client;

/* A client for `host`: "unix:///path/docker.sock" (NULL: DOCKER_DEFAULT_HOST) or
 * "tcp://host:port" (plain HTTP). Connects lazily. Returns 0, -EINVAL (bad host), -ENOMEM. */
int docker_client_new(const char *host, docker_client **out, docker_error *err);
/* Close the connection and free the client; NULL is a no-op. */
void docker_client_free(docker_client *c);

/* Timeout of one list/inspect request in ms (default 10000). */
void docker_client_set_timeout(docker_client *c, int64_t ms);

/* GET /_ping. Returns 0 or an error as for docker_list_containers. */
int docker_ping(docker_client *c, docker_error *err);

/* The ids of the running (and paused) containers; with label_filter non-NULL only those that
 * carry that label (e.g. "net.qmsk.clusterf.service"). Returns 0 and a NULL-terminated array
 * (free with docker_ids_free), -ECONNREFUSED (no dockerd), -ETIMEDOUT, -ECONNRESET, -EPROTO
 * (bad response), -EIO (HTTP error; err->msg has dockerd's message), -ENOMEM. */
int docker_list_containers(docker_client *c, const char *label_filter, char ***ids_out,
                           docker_error *err);
/* Free an id array from docker_list_containers; NULL is a no-op. */
void docker_ids_free(char **ids);

/* Inspect one container (id or name). Returns 0 and *out, -ENOENT when there is no such
 * container, -EPROTO when the body is not a container, or an error as for
 * docker_list_containers. */
int docker_inspect(docker_client *c, const char *id, docker_container **out, docker_error *err);

/* ---- Events ----------------------------------------------------------------------------- */

typedef enum docker_event_kind {
    DOCKER_EVENT_CONNECTED,          /* stream open: list now, nothing later is missed */
    DOCKER_EVENT_START,
    DOCKER_EVENT_DIE,
    DOCKER_EVENT_STOP,
    DOCKER_EVENT_KILL,
    DOCKER_EVENT_PAUSE,
    DOCKER_EVENT_UNPAUSE,
    DOCKER_EVENT_DESTROY,
    DOCKER_EVENT_RENAME,
    DOCKER_EVENT_HEALTH_STATUS,      /* health = the new status */
    DOCKER_EVENT_NETWORK_CONNECT,    /* network = the network's name */
    DOCKER_EVENT_NETWORK_DISCONNECT,
    DOCKER_EVENT_OVERFLOW,           /* the queue was full and events were dropped: re-list */
    DOCKER_EVENT_END,                /* the stream ended (error says why); the last event */
} docker_event_kind;

typedef struct docker_event {
    docker_event_kind kind;
    char action[64];                 /* dockerd's Action, e.g. "health_status: healthy" */
    char id[72];                     /* the container's id ("" for CONNECTED/OVERFLOW/END) */
    char name[256];                  /* the container's name when dockerd says it */
    char network[256];               /* network events: the network's name */
    docker_health health;
    int64_t time_nano;               /* dockerd's timeNano */
    docker_error error;              /* END: why */
} docker_event;

typedef struct docker_events docker_events;

/* Open GET /events (type container + network, only the actions above) on a thread of its own.
 * Returns 0 and *out, or -ENOMEM / -errno (thread, eventfd). Connection errors arrive as
 * DOCKER_EVENT_END. The stream does not depend on `c` after this returns. */
int docker_events_start(docker_client *c, docker_events **out, docker_error *err);

/* An eventfd, readable while events are queued: add it to an epoll set (EPOLLIN). */
int docker_events_fd(const docker_events *ev);

/* Take the next event. Returns 1 and *out, or 0 when none is queued (this also clears the
 * fd's readiness). After DOCKER_EVENT_END it returns 0 forever. */
int docker_events_next(docker_events *ev, docker_event *out);

/* Stop the thread, close the stream and free everything. NULL is a no-op. */
void docker_events_free(docker_events *ev);

/* "start", "health_status", "network_connect", "end", ... for logs. */
const char *docker_event_kind_str(docker_event_kind k);

/* ---- Watch: Docker -> desired backends, for the etcd writer ---------------------------- */

/* Where the backends go (clusterf-docker's etcd writer implements it). The watch calls these
 * from docker_watch_dispatch() only, on the caller's thread. */
typedef struct docker_sink {
    void *ctx;
    /* Backend b is new or its value changed: write <prefix>/services/<b->service>/backends/
     * <b->name> = b->json. */
    void (*put)(void *ctx, const docker_backend *b);
    /* The backend is gone (container stopped, removed, label or port changed): delete it. */
    void (*del)(void *ctx, const char *service, const char *name);
    /* Tell the operator: a label warning (error=false) or a Docker API error (error=true). */
    void (*notice)(void *ctx, bool error, const char *msg);
} docker_sink;

typedef struct docker_watch_opts {
    const char *host;            /* NULL: DOCKER_DEFAULT_HOST */
    docker_backend_opts backend; /* policy; backend.hostname is required */
    int64_t backoff_min_ms;      /* reconnect backoff (0: 500 ms .. 30 s) */
    int64_t backoff_max_ms;
    int64_t resync_ms;           /* full re-list this often while connected (0: never) */
    int64_t request_timeout_ms;  /* one list/inspect request (0: 10 s) */
} docker_watch_opts;

/* Keeps the desired backends of this Docker host: connects (and reconnects with backoff),
 * re-lists on every (re)connect, on OVERFLOW and every resync_ms, re-inspects a container on
 * each of its events (coalesced per dispatch), and tells the sink only what changed. When
 * dockerd is unreachable the last known backends stay (containers may outlive dockerd with
 * live-restore); the re-list after the reconnect converges. It never logs. */
typedef struct docker_watch docker_watch;

/* Copies what it needs from opts; the first connect happens in the first dispatch. Returns 0
 * and *out, -EINVAL (bad opts: err says which), -ENOMEM, -errno (epoll, timerfd). */
int docker_watch_new(const docker_watch_opts *opts, const docker_sink *sink, docker_watch **out,
                     docker_error *err);

/* One fd (an epoll set of its own) to add to the caller's epoll loop; when it is readable,
 * call docker_watch_dispatch(). */
int docker_watch_fd(const docker_watch *w);

/* Do whatever is due: connect, read events, inspect, call the sink. Never blocks for long
 * (list/inspect requests are bounded by request_timeout_ms). Returns 0 or -ENOMEM. */
int docker_watch_dispatch(docker_watch *w);

/* Is the events stream open and the last re-list done? */
bool docker_watch_synced(const docker_watch *w);

/* Call fn for every backend currently desired (e.g. to re-write all under a new lease). */
void docker_watch_foreach(const docker_watch *w, void (*fn)(void *ctx, const docker_backend *b),
                          void *ctx);

/* Close the stream and free everything; does not delete any backend. NULL is a no-op. */
void docker_watch_free(docker_watch *w);

#endif
