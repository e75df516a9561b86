/* reconcile_int.h -- internals shared by the reconcile/ .c files: service identities as map
 * keys, the kernel mirror entries, and the owned-set state file. */
#ifndef CLUSTERF_RECONCILE_INT_H
#define CLUSTERF_RECONCILE_INT_H

#include "common/bytemap.h"
#include "reconcile/reconcile.h"

/* A service identity as plain bytes (zero-filled), usable as a bytemap key. */
typedef struct svc_id {
    uint16_t af;
    uint16_t protocol; /* 0 for fwmark services */
    uint16_t port;     /* 0 for fwmark services */
    uint16_t pad;
    uint32_t fwmark;
    uint8_t addr[16];  /* zero for fwmark services */
} svc_id;

/* A dest as the mirror keeps it: what clusterf sets, without the kernel's counters (a third
 * of a struct ipvs_dest: the mirror of a 100k-dest table is small). addr is zero past the
 * family's length; af is never 0. */
typedef struct mdest {
    uint8_t addr[16];
    uint16_t af, port;
    uint32_t fwd, weight, u_thresh, l_thresh;
    uint16_t tun_port, tun_flags;
    uint8_t tun_type;
    int64_t drain_until; /* draining (weight 0, removed from the config) until then; 0: not */
} mdest;

/* One kernel service as clusterf last saw it, dests sorted by (af, addr, port) as
 * ipvs_dest_cmp orders them. */
typedef struct mentry {
    svc_id id;
    struct ipvs_service svc;
    mdest *dests;
    size_t n_dests, cap;
    size_t n_draining; /* dests with drain_until set; the entry is in reconcile.draining */
    bool dests_known; /* false: dests not dumped yet (dumped on first need) */
    uint64_t seen;    /* the service dump (reconcile.load) that last showed it */
    bool changed;     /* the last service dump showed it new or with another config */
} mentry;

/* One change of the owned set. */
struct owned_change {
    svc_id id;
    bool added;
};

/* The IPVS services one clusterf service desired at its last pass. */
typedef struct named {
    char *name;
    svc_id *ids;
    size_t n, cap;
    uint64_t pass; /* the full pass that last set ids (reconcile.pass) */
    bool settled;  /* its last pass sent every op without a failure or surprise: the mirror
                    * then holds what it desired (reconcile_full_keep trusts it) */
} named;

/* Which clusterf service last desired an IPVS service (the key is id). */
typedef struct claim {
    svc_id id;
    named *by;
    uint64_t pass; /* the full pass that last claimed it; older ones are dropped at its end */
} claim;

struct reconcile {
    struct ipvs_iface kernel;
    char *state_path;
    bytemap mirror; /* svc_id -> mentry* */
    bytemap owned;  /* svc_id -> svc_id* (heap copy) */
    bytemap names;  /* name -> named* */
    bytemap claims; /* svc_id -> claim* */
    bytemap draining; /* svc_id -> mentry* that has draining dests */
    int64_t drain_ms;        /* 0: a removed dest is deleted at once */
    int64_t (*now_ms)(void); /* monotonic clock (tests set their own) */
    struct ipvs_batch batch; /* ops not sent yet (bounded: see BATCH_OPS) */
    bool full;               /* a sliced full pass runs (begin done, end not yet) */
    uint64_t pass;           /* count of full passes begun: names and claims are stamped with it */
    int64_t saved_ms;        /* when the state file was last written (monotonic) */
    /* Owned-set changes not in the state file yet, appended to it by the next save (so a save
     * costs what changed); the file is rewritten whole when the journal grows past the set. */
    struct owned_change *journal;
    size_t n_journal, cap_journal;
    size_t journal_lines;    /* change lines the file holds after its full part */
    bool journal_reset;      /* the set was cleared: the next save rewrites the file */
    bool state_ok;           /* the file exists and is ours: changes can be appended */
    /* The services of the ops that failed or surprised since the last names_settle (so only
     * their clusterf services lose their settled mark); lost: too many, or no memory. */
    svc_id *fail_ids;
    size_t n_fail_ids, cap_fail_ids;
    bool fail_ids_lost;
    bool needs_full;
    bool mirror_loaded;      /* the kernel's services were dumped at least once */
    /* The service dump being read in parts (RECONCILE_LOAD_PART at a time): each part is
     * merged into the mirror, and what the dump did not show is dropped at its end. */
    struct ipvs_service_list load_part;
    uint64_t load;           /* count of service dumps begun: mentry.seen is stamped with it */
    bool loading;            /* a service dump is under way */
    bool owned_dirty;
};

void svc_id_of(const struct ipvs_service *s, svc_id *out);

/* Owned set: add / remove / test. add and remove mark owned_dirty on change. */
int owned_add(reconcile *r, const svc_id *id);
void owned_remove(reconcile *r, const svc_id *id);
bool owned_has(const reconcile *r, const svc_id *id);
void owned_clear(reconcile *r);

/* Read the state file into the owned set (a missing file is an empty set). Returns 0;
 * RECONCILE_STATE_SET_ASIDE when the file was damaged (moved aside, owned set empty, err
 * says why and where it went); or -ENAMETOOLONG / -ENOMEM / -EMFILE / -ENFILE, err set. */
int state_load(reconcile *r, char *err, size_t errlen);
/* Write the owned set to the state file atomically (unique temp file in the same directory,
 * fsync, rename, fsync of the directory). 0 or -errno with err set. */
int state_save(reconcile *r, char *err, size_t errlen);

#endif
