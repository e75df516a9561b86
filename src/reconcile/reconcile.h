/* reconcile.h -- keep the kernel's IPVS table equal to the desired one (lb/), level-triggered.
 *
 * A reconcile holds a mirror of the kernel table (refreshed by each full pass, updated from
 * what the kernel accepted), which clusterf service desires which IPVS services, and the set
 * of IPVS services clusterf owns. It diffs desired against the mirror into ordered ops
 * (delete unwanted services, then per service: add or edit it, delete stale dests, edit
 * changed ones, add new ones) and applies them through an ipvs_iface (the kernel, or a fake in
 * unit tests). No logging: every op comes back with its outcome for the caller to log.
 *
 * Ownership (SPEC §4): clusterf changes or deletes only services it owns. It owns what it
 * created, and a service the config names that already existed (it has changed it, so it
 * adopts it). The owned set is saved to a state file after every change, so a restarted
 * daemon still deletes what it created while it was down. A service made by hand that the
 * config never names is never touched. */
#ifndef CLUSTERF_RECONCILE_H
#define CLUSTERF_RECONCILE_H

#include "ipvs/ipvs.h"
#include "lb/lb.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct reconcile reconcile;

/* Called once for every op the kernel answered, in order, after the mirror learned from it
 * (e.g. to log it). The op is only valid during the call. */
typedef void (*reconcile_op_fn)(void *ctx, const struct ipvs_op *op);

/* Counts of one pass. Set on_op (and ctx) before the pass to see each op; ops are sent in
 * bounded batches and not kept, so a pass over a large table needs no memory per op. */
typedef struct reconcile_result {
    size_t svc_added, svc_changed, svc_deleted;
    size_t dest_added, dest_changed, dest_deleted;
    size_t dest_draining; /* dests removed from the config that started to drain */
    size_t sent;      /* ops sent */
    size_t failed;    /* ops the kernel refused (the op shows the error) */
    size_t surprises; /* ops whose answer showed the mirror was wrong (EEXIST, ENOENT) */
    int64_t kernel_us; /* time spent in exchanges with the kernel (ops and their ACKs, dumps) */
    int64_t save_us;   /* time spent writing the state file */
    reconcile_op_fn on_op;
    void *ctx;
    char error[320];  /* set when the pass as a whole failed */
} reconcile_result;

/* Zero the counters and the error (on_op and ctx are kept); NULL is a no-op. */
void reconcile_result_free(reconcile_result *res);
/* Total number of changes made (added + changed + deleted, services and dests). */
size_t reconcile_result_changes(const reconcile_result *res);

/* reconcile_new's answer when the state file was damaged and has been set aside. */
#define RECONCILE_STATE_SET_ASIDE 1

/* New reconciler over kernel (copied). state_path: file that remembers the owned services
 * (NULL: none kept); it is read now if it exists. Returns 0; or RECONCILE_STATE_SET_ASIDE
 * (*out is set, usable) when the state file could not be used (unreadable, cut short, not the
 * format): it was renamed to "<state_path>.corrupt" and the owned set is unknown, so it starts
 * empty as on a first start; err says why and where the file went, for the caller to log.
 * Or -ENAMETOOLONG (state_path too long), -ENOMEM, -EMFILE / -ENFILE (message in err).
 * A kernel without apply (NULL) makes a read-only reconciler (clusterfctl status): it only
 * reads the state file, never writes or moves it. */
int reconcile_new(const struct ipvs_iface *kernel, const char *state_path, reconcile **out,
                  char *err, size_t errlen);
/* Free the reconciler (the kernel table is left as it is); NULL is a no-op. */
void reconcile_free(reconcile *r);

/* Flush the whole kernel table once (--flush): afterwards clusterf owns it all. */
int reconcile_flush(reconcile *r, reconcile_result *res);

/* Full pass: dump the kernel, then make it match desired (the whole table). Repairs any
 * drift. Returns 0 (some ops may have failed: res->failed) or -errno when the dump or the
 * exchange with the kernel broke (res->error; the next pass retries). Runs the sliced pass
 * below to its end in one call. */
int reconcile_full(reconcile *r, const lb_table *desired, reconcile_result *res);

/* The same full pass in slices, so that an event loop is never busy for long: begin starts a
 * dump of the kernel's services (not their dests) and reads a first part of it (a few hundred
 * services); each load reads the next part (call it until it returns 0, or leave the rest to
 * the first add, keep or end, which read it all first); each add diffs and applies a part of the desired
 * table (the whole IPVS services of some clusterf services: their dests are dumped then);
 * end deletes the owned services that no part held. Every desired service must be in exactly
 * one part. While a pass runs, incremental passes are refused (-EBUSY): the caller keeps the
 * services that events touch and reconciles them once it ends. Each returns 0 or -errno
 * (res->error); after an error the pass is over (begin: none started; -EBUSY if one runs). */
int reconcile_full_begin(reconcile *r, reconcile_result *res);
int reconcile_full_add(reconcile *r, const lb_table *part, reconcile_result *res);
/* The next part of the service dump of the pass: 1 while more is left, 0 when the dump is
 * read (also when it was already), -errno (the pass is over). */
int reconcile_full_load(reconcile *r, reconcile_result *res);
/* True while the service dump of a full pass has parts left to read. */
bool reconcile_full_loading(const reconcile *r);
int reconcile_full_end(reconcile *r, reconcile_result *res);
/* During a sliced full pass, in place of reconcile_full_add for clusterf service name when
 * no config change touched it since its last pass: returns 1 when the kernel still holds
 * exactly what that pass left (its last pass had no failed op, the service dump showed its
 * IPVS services unchanged and a dump of their dests shows them unchanged, none draining);
 * the pass then counts them as desired, and nothing is sent or computed. Returns 0 when it
 * cannot tell or something drifted: the caller computes the service and gives it to
 * reconcile_full_add, which repairs it. -errno as reconcile_full_add (the pass is over). */
int reconcile_full_keep(reconcile *r, const char *name, reconcile_result *res);
/* Stop a sliced full pass without its end (nothing is deleted); the mirror is marked out of
 * date, so the caller runs a new full pass. No-op when none runs. */
void reconcile_full_abort(reconcile *r);
/* True while a sliced full pass runs. */
bool reconcile_full_running(const reconcile *r);

/* Incremental pass for a set of clusterf services: desired holds exactly their IPVS
 * services (from lb_compute_service for each name; a name with none is gone). Works from the
 * mirror (dumping the dests of a service only when the mirror does not know them, and the
 * kernel's services once if no full pass ran yet): cost is proportional to those services. A key one of them gave up and another of them took over
 * in the same pass (a conflict handed over) is edited in place, never deleted. Returns as
 * reconcile_full, or -EBUSY while a sliced full pass runs. */
int reconcile_services(reconcile *r, const char *const *names, size_t n_names,
                       const lb_table *desired, reconcile_result *res);
/* reconcile_services for one name. */
int reconcile_service(reconcile *r, const char *name, const lb_table *desired,
                      reconcile_result *res);

/* Graceful removal: a dest that leaves the config of a TCP (or fwmark) service is first set to
 * weight 0 (no new connections; established ones go on) and deleted once the kernel shows no
 * active connection on it, or drain_ms after it left (0: deleted at once, the default).
 * Inactive entries (connections in FIN_WAIT/TIME_WAIT, kept for minutes by the kernel) do not
 * hold a drain: their connection is over. A dest that comes back while draining gets its
 * weight again at once. UDP dests are deleted at once (a UDP flow has no end). now_ms: the
 * monotonic clock in ms (NULL: the real one; tests pass their own). */
void reconcile_set_drain(reconcile *r, int64_t drain_ms, int64_t (*now_ms)(void));
/* Number of dests draining now. */
size_t reconcile_draining(const reconcile *r);
/* Check the draining dests (one dest dump per service that has some) and delete those done.
 * Cost: the services with draining dests. Returns 0 or -errno (res->error); does nothing
 * while a sliced full pass runs. */
int reconcile_drain_check(reconcile *r, reconcile_result *res);

/* True when an answer showed the mirror was out of date: the caller should run a full pass
 * soon. Cleared by reconcile_full. */
bool reconcile_needs_full(const reconcile *r);

/* The clusterf service that desired svc (by identity) at its last pass, or NULL; claimed
 * before the pass sends its ops, so an op's on_op callback sees its owner. The string is the
 * reconciler's, valid until its next pass. Cost: one map lookup. */
const char *reconcile_service_owner(const reconcile *r, const struct ipvs_service *svc);

/* Number of services in the owned set. */
size_t reconcile_owned_count(const reconcile *r);
/* True when svc (by identity) is in the owned set, e.g. as read from the state file. */
bool reconcile_owns(const reconcile *r, const struct ipvs_service *svc);
/* Call fn with each service of the owned set (its identity fields only: af, protocol, addr,
 * port, fwmark), until fn returns non-zero; returns that, or 0. */
int reconcile_foreach_owned(const reconcile *r,
                            int (*fn)(const struct ipvs_service *svc, void *ctx), void *ctx);

/* Convert a desired service / dest to the kernel's terms. */
void reconcile_lb_to_ipvs_service(const lb_service *in, struct ipvs_service *out);
void reconcile_lb_to_ipvs_dest(const lb_dest *in, struct ipvs_dest *out);

#endif
