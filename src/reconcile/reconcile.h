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

/* Counts of one pass; ops holds every op sent, with its outcome (the caller logs them). */
typedef struct reconcile_result {
    size_t svc_added, svc_changed, svc_deleted;
    size_t dest_added, dest_changed, dest_deleted;
    size_t failed;    /* ops the kernel refused (see ops[i].error) */
    size_t surprises; /* ops whose answer showed the mirror was wrong (EEXIST, ENOENT) */
    struct ipvs_batch ops;
    char error[320];  /* set when the pass as a whole failed */
} reconcile_result;

/* Free the ops and zero the counters; NULL is a no-op. */
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
 * Or -ENAMETOOLONG (state_path too long), -ENOMEM, -EMFILE / -ENFILE (message in err). */
int reconcile_new(const struct ipvs_iface *kernel, const char *state_path, reconcile **out,
                  char *err, size_t errlen);
/* Free the reconciler (the kernel table is left as it is); NULL is a no-op. */
void reconcile_free(reconcile *r);

/* Flush the whole kernel table once (--flush): afterwards clusterf owns it all. */
int reconcile_flush(reconcile *r, reconcile_result *res);

/* Full pass: dump the kernel, then make it match desired (the whole table). Repairs any
 * drift. Returns 0 (some ops may have failed: res->failed) or -errno when the dump or the
 * exchange with the kernel broke (res->error; the next pass retries). */
int reconcile_full(reconcile *r, const lb_table *desired, reconcile_result *res);

/* Incremental pass for one clusterf service: desired holds exactly its IPVS services (from
 * lb_compute_service; empty when it is gone). Works from the mirror, no dump: cost is
 * proportional to that service. Returns as reconcile_full. */
int reconcile_service(reconcile *r, const char *name, const lb_table *desired,
                      reconcile_result *res);

/* True when an answer showed the mirror was out of date: the caller should run a full pass
 * soon. Cleared by reconcile_full. */
bool reconcile_needs_full(const reconcile *r);

/* Number of services in the owned set, and in the mirror. */
size_t reconcile_owned_count(const reconcile *r);
size_t reconcile_mirror_count(const reconcile *r);
/* True when svc (by identity) is in the owned set, e.g. as read from the state file. */
bool reconcile_owns(const reconcile *r, const struct ipvs_service *svc);

/* Convert a desired service / dest to the kernel's terms. */
void reconcile_lb_to_ipvs_service(const lb_service *in, struct ipvs_service *out);
void reconcile_lb_to_ipvs_dest(const lb_dest *in, struct ipvs_dest *out);

#endif
