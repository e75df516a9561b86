/* prom_harness.h -- the real consumers of the daemons' metrics endpoints, for tests: HTTP
 * GETs with curl, a sample's value from an exposition text, `promtool check metrics`, and a
 * real Prometheus server (Debian's prometheus) that scrapes one loopback target every second,
 * queried through its HTTP API. Files go under a directory the test owns. */
#ifndef CLUSTERF_TEST_PROM_HARNESS_H
#define CLUSTERF_TEST_PROM_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

/* A free loopback TCP port (bound to 0 and released), or -1. */
int prom_free_port(void);
/* GET url (curl, 10 s cap); the body (malloc'd, caller frees; "" when none) in *body. Returns
 * the HTTP status, 0 when no answer. dir: where the scratch files go. */
int prom_http_get(const char *dir, const char *url, char **body);
/* Poll http://127.0.0.1:port<path> (up to cap_s) until it answers want; the last body in
 * *body when body is not NULL (caller frees). */
bool prom_wait_status(const char *dir, int port, const char *path, int want, int cap_s,
                      char **body);
/* The value of the sample line "<series> <value>" (series as written: name{labels}), or
 * -1e99 when there is none. */
double prom_sample(const char *text, const char *series);
/* Run `promtool check metrics` on text. Returns its exit status (-1: could not run); its
 * output (malloc'd, caller frees) in *out. */
int prom_check_metrics(const char *dir, const char *text, char **out);
/* True when the prometheus binary is installed. */
bool prom_available(void);
/* Start Prometheus on a free loopback port (*port) scraping 127.0.0.1:target_port every
 * second as job. Returns its pid, or -1. Stop it with kill + waitpid. */
pid_t prom_start(const char *dir, const char *job, int target_port, int *port);
/* Ask Prometheus (up to cap_s) until the instant query (URL-encoded) returns a first value
 * equal to want (as Prometheus prints it, e.g. "1"). */
bool prom_wait_query(const char *dir, int port, const char *query, const char *want, int cap_s);

#endif
