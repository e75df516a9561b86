/* metrics.h -- Prometheus metrics and health endpoints for the daemons.
 *
 * A registry the event loop owns and fills (counters, gauges, histograms; each series named
 * by a preformatted label string), rendered into the Prometheus text format 0.0.4; and an
 * HTTP server (libmicrohttpd, on its own thread) that serves the last text the loop
 * published on /metrics, plus /healthz and /readyz. The registry is not thread-safe: only
 * immutable copies cross to the server, under its mutex, so a slow scraper never holds up
 * the loop. No logging: errors come back as -errno (and a message where one helps). */
#ifndef CLUSTERF_METRICS_H
#define CLUSTERF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

typedef struct metrics_registry metrics_registry;

/* A new, empty registry, or NULL (out of memory). */
metrics_registry *metrics_registry_new(void);
/* Free the registry and every series; NULL is a no-op. */
void metrics_registry_free(metrics_registry *r);
/* Declare a family once (a second declaration of the same name is a no-op). Families are
 * rendered in the order declared. name and help must be static strings. 0 or -ENOMEM. */
int metrics_declare(metrics_registry *r, const char *name, enum metrics_type type,
                    const char *help);
/* A family as metrics_declare takes it, for tables of them. */
typedef struct metrics_family {
    const char *name;
    enum metrics_type type;
    const char *help;
} metrics_family;
/* Declare each of the n families of fams, in order. 0 or -ENOMEM. */
int metrics_declare_all(metrics_registry *r, const metrics_family *fams, size_t n);
/* Counter += v / gauge (or a counter copied from elsewhere) = v / histogram observes v, for
 * the series of labels ("" or `a="x",b="y"`, see metrics_label). The series is created on
 * first use. 0, -ENOENT (family not declared), -EINVAL (wrong type) or -ENOMEM. */
int metrics_add(metrics_registry *r, const char *name, const char *labels, double v);
int metrics_set(metrics_registry *r, const char *name, const char *labels, double v);
int metrics_observe(metrics_registry *r, const char *name, const char *labels, double v);
/* Drop every series of a family (before refilling one whose series come and go). */
void metrics_clear(metrics_registry *r, const char *name);
/* Render everything into *text (malloc'd, NUL-terminated; caller frees), length in *len.
 * 0 or -ENOMEM. */
int metrics_render(const metrics_registry *r, char **text, size_t *len);
/* Append `key="value"` (value escaped; a comma first unless buf is empty) to the label
 * string in buf. Returns 0, or -ENOSPC when it does not fit (buf then unchanged). */
int metrics_label(char *buf, size_t size, const char *key, const char *value);

/* ---- HTTP server ---- */

typedef struct metrics_server metrics_server;

/* Parse "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (ADDR 127.0.0.1: loopback unless told
 * otherwise). Port 0 picks a free one. 0 or -EINVAL. */
int metrics_parse_listen(const char *spec, char *addr, size_t addr_size, int *port);
/* Listen on spec and serve from a thread of its own. Until a publish, /metrics is empty and
 * /readyz says "starting". 0 and *out, or -errno with a message in err. */
int metrics_server_new(const char *spec, metrics_server **out, char *err, size_t errlen);
/* Stop serving and free; NULL is a no-op. */
void metrics_server_free(metrics_server *s);
/* The port it listens on (useful after port 0). */
int metrics_server_port(const metrics_server *s);
/* Number of /metrics requests served so far (a publisher can skip costly work nobody reads). */
uint64_t metrics_server_scrapes(metrics_server *s);
/* Publish a rendered text (taken over: freed by the server). */
void metrics_server_publish(metrics_server *s, char *text, size_t len);
/* Publish a second text, served after the first one (taken over; NULL: none). Families
 * rendered elsewhere (on another thread) can be published without waiting for the rest. */
void metrics_server_publish_tail(metrics_server *s, char *text, size_t len);
/* Readiness: not_ready NULL or "" means ready as far as the loop knows; the server also
 * requires, when bound_ms > 0, that the upstream (etcd) was last reached (seen_ms, the
 * monotonic clock in ms; 0 = never) no more than bound_ms ago. */
void metrics_server_set_ready(metrics_server *s, const char *not_ready, int64_t seen_ms,
                              int64_t bound_ms);

#endif
