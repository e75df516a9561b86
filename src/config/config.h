/* config.h -- the clusterf configuration model: keys + JSON values -> frontends, backends,
 * routes; validation; a store of every key per source (etcd, local tree, advertised) with
 * the last valid value kept per key; and the merged view the desired IPVS table is computed
 * from (see src/lb/lb.h). Pure: no I/O, no logging, every error is returned as text.
 *
 * Keys are relative to the etcd prefix: "services/<svc>/frontend",
 * "services/<svc>/backends/<backend>", "routes/<route>" (one leading '/' is accepted).
 * Names: one path segment of [A-Za-z0-9._:-], 1..253 bytes, not "." or "..".
 *
 * JSON rules (SPEC §2), decided where SPEC leaves room:
 *  - the value must be one JSON object, UTF-8, no NUL byte, at most CONFIG_VALUE_MAX bytes,
 *    nested at most 4 deep, nothing but whitespace after it;
 *  - field names match case-insensitively; two fields differing only in case are invalid
 *    (exact duplicates: the last one wins, as json-c does); unknown fields give a warning
 *    and the rest of the value is used;
 *  - numbers must be JSON integers: 1.5, 1e3, "10" and null are invalid. Ports 1..65535,
 *    weight 0..65535, persistence 0..2678400 s (31 days, as ipvsadm), fwmark 1..4294967295;
 *  - "ipv4"/"Prefix4"/"Gateway4" must hold IPv4, "ipv6"/"Prefix6"/"Gateway6" IPv6, "Prefix"/
 *    "Gateway" either; a route's gateway must have its prefix's family; host bits set in a
 *    prefix are cleared with a warning (as Go's net.ParseCIDR did in the original);
 *  - "IpvsMethod" and "flags" strings match case-insensitively; "scheduler" is 1..15 bytes
 *    of [a-z0-9_];
 *  - a frontend needs an address and a protocol, or a fwmark (then its addresses only pick
 *    the families: none given = IPv4; tcp/udp are ignored); a backend needs an address
 *    (ports are optional: a backend without a tcp port simply joins no TCP service).
 */
#ifndef CLUSTERF_CONFIG_H
#define CLUSTERF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_NAME_MAX   253          /* bytes in a service/backend/route name */
#define CONFIG_VALUE_MAX  65536        /* bytes in a value */
#define CONFIG_SCHED_MAX  16           /* scheduler name incl. NUL (IP_VS_SCHEDNAME_MAXLEN) */
#define CONFIG_ERR_MAX    1024         /* bytes in an error or warning message incl. NUL */
#define CONFIG_PERSISTENCE_MAX 2678400u

/* An error message: "<key>: <field>: <what is wrong>". */
typedef struct config_error {
    char msg[CONFIG_ERR_MAX];
} config_error;

/* A growable list of owned strings (warnings, service names). Zero-initialise it. */
typedef struct config_strs {
    char **v;
    size_t n, cap;
} config_strs;

/* Free every string and the array; the list is empty and reusable afterwards. */
void config_strs_clear(config_strs *s);
/* Append a copy of s; 0 or -ENOMEM. */
int config_strs_push(config_strs *l, const char *s);
/* Append a formatted string; 0 or -ENOMEM. */
int config_strs_pushf(config_strs *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sort and drop duplicates. */
void config_strs_sort_unique(config_strs *l);

enum config_kind { CONFIG_FRONTEND, CONFIG_BACKEND, CONFIG_ROUTE };

/* Sources in priority order: for the same key, a lower value wins. */
enum config_source {
    CONFIG_SOURCE_LOCAL,      /* the -config-path tree */
    CONFIG_SOURCE_ADVERTISED, /* this host's own -advertise-route-* route */
    CONFIG_SOURCE_ETCD,
    CONFIG_SOURCE_COUNT
};

enum config_method {
    CONFIG_METHOD_MASQ,
    CONFIG_METHOD_DROUTE,
    CONFIG_METHOD_TUNNEL,
    CONFIG_METHOD_FILTER, /* routes only: backends under the prefix are left out */
};

/* A parsed key. service is "" for routes; name is "" for frontends. */
typedef struct config_key {
    enum config_kind kind;
    char service[CONFIG_NAME_MAX + 1];
    char name[CONFIG_NAME_MAX + 1];
} config_key;

/* Frontend JSON. Absent ports / fwmark are 0. flags holds IP_VS_SVC_F_* bits of "flags"
 * (not PERSISTENT: lb/ sets that from persistence). sched is the default when absent. */
typedef struct config_frontend {
    bool has_ipv4, has_ipv6;
    uint8_t ipv4[4];
    uint8_t ipv6[16];
    uint16_t tcp, udp;
    uint32_t fwmark;
    uint32_t persistence;
    uint32_t flags;
    char sched[CONFIG_SCHED_MAX];
} config_frontend;

/* Backend JSON. Absent ports are 0; weight defaults to 10. */
typedef struct config_backend {
    bool has_ipv4, has_ipv6;
    uint8_t ipv4[4];
    uint8_t ipv6[16];
    uint16_t tcp, udp;
    uint16_t weight;
} config_backend;

/* Route JSON. af is AF_INET or AF_INET6; prefix has its host bits cleared. method is the
 * default method when "IpvsMethod" is absent. */
typedef struct config_route {
    uint8_t af;
    uint8_t plen;
    bool has_gateway;
    uint8_t prefix[16];
    uint8_t gateway[16];
    enum config_method method;
} config_route;

typedef struct config_value {
    enum config_kind kind;
    union {
        config_frontend frontend;
        config_backend backend;
        config_route route;
    } u;
} config_value;

/* Daemon defaults applied while parsing. */
typedef struct config_defaults {
    char sched[CONFIG_SCHED_MAX];  /* --ipvs-sched, "wlc" */
    enum config_method method;     /* --ipvs-fwd-method, masq/droute/tunnel */
} config_defaults;

/* The defaults of SPEC: wlc, masq. */
void config_defaults_init(config_defaults *d);

/* Set d from the daemon flags --ipvs-sched (a scheduler name) and --ipvs-fwd-method (masq,
 * droute or tunnel), shared by clusterf-ipvs and clusterfctl. Returns 0, or -EINVAL with err
 * naming the flag and the bad value. */
int config_defaults_parse(config_defaults *d, const char *sched, const char *method,
                          config_error *err);

/* Parse a key relative to the prefix (len bytes, any bytes). Returns 0, or -ENOENT for a key
 * that is not a clusterf key (err says why; callers report it as a warning and ignore it). */
int config_parse_key(const char *key, size_t len, config_key *out, config_error *err);

/* Parse the value of key (len bytes, any bytes) into out (zeroed first, so two equal values
 * compare equal with memcmp). Unknown fields and cleared host bits are appended to warnings
 * (may be NULL). Returns 0, -EINVAL with err naming the key, field and problem, or -ENOMEM. */
int config_parse_value(const config_key *key, const char *val, size_t len,
                       const config_defaults *defaults, config_value *out,
                       config_strs *warnings, config_error *err);

/* "masq", "droute", "tunnel", "filter" (any case) -> method; 0 or -EINVAL. */
int config_parse_method(const char *s, enum config_method *out);
/* "masq", "droute", "tunnel", "filter". */
const char *config_method_name(enum config_method m);
/* True when s is a valid scheduler name (1..15 bytes of [a-z0-9_]). */
bool config_sched_valid(const char *s);
/* True when s (len bytes) is a valid name. */
bool config_name_valid(const char *s, size_t len);
/* "etcd", "local", "advertised". */
const char *config_source_name(enum config_source s);

/* Render a value as canonical JSON (lower-case field names, every default written out).
 * Returns a malloc'd NUL-terminated string, or NULL on allocation failure. */
char *config_value_to_json(const config_value *v);

/* ---- IPVS service keys a frontend produces (used for conflicts; see lb.h) ---- */

/* (af, protocol, addr, port) for address services, (af, fwmark) with protocol 0, addr and port
 * zero for fwmark services. Plain bytes: compare with memcmp. */
typedef struct config_svckey {
    uint8_t af;       /* AF_INET / AF_INET6 */
    uint8_t protocol; /* IPPROTO_TCP / IPPROTO_UDP, 0 for fwmark */
    uint16_t port;    /* host order */
    uint32_t fwmark;
    uint8_t addr[16];
} config_svckey;

#define CONFIG_SVCKEYS_MAX 4

/* Fill out[] with the service keys of fe, in a fixed order (IPv4 before IPv6, TCP before
 * UDP). Returns how many (0..CONFIG_SVCKEYS_MAX). */
int config_frontend_svckeys(const config_frontend *fe, config_svckey out[CONFIG_SVCKEYS_MAX]);

/* ---- The store ---- */

typedef struct config_store config_store;

typedef struct config_options {
    config_defaults defaults;
    bool filter_etcd_routes; /* routes from CONFIG_SOURCE_ETCD are ignored */
} config_options;

/* One key event. Keys are relative to the prefix; value is ignored for deletes. */
typedef struct config_event {
    enum config_source source;
    bool is_delete;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t revision; /* etcd mod revision; 0 for other sources */
} config_event;

/* What applying one event did. Initialise with config_result_init, release with
 * config_result_free; config_store_apply resets it first, so one can be reused. */
typedef struct config_result {
    bool changed;          /* the merged view changed */
    config_strs services;  /* services whose lb output may have changed (for a route: those
                            * with a backend under its old or new prefix): sorted, unique */
    config_strs warnings;  /* unknown key, unknown fields, cleared host bits */
    bool invalid;          /* the value was invalid: see error */
    bool stale;            /* ... and the key keeps its last valid value */
    bool repeated;         /* ... with the same error as the previous event for the key */
    char error[CONFIG_ERR_MAX];
} config_result;

void config_result_init(config_result *r);
void config_result_free(config_result *r);

/* New empty store (opts copied; NULL = SPEC defaults). Returns NULL on allocation failure. */
config_store *config_store_new(const config_options *opts);
/* Free the store and everything in it; NULL is a no-op. */
void config_store_free(config_store *s);
const config_options *config_store_options(const config_store *s);

/* Apply one put/delete. Returns 0 (applied, possibly without change; unknown keys give a
 * warning and change nothing), -EINVAL for an invalid value (out->error; the key keeps its
 * last valid value as stale, or is skipped when it has none; nothing else changes), or
 * -ENOMEM (the store is unchanged). Work is proportional to the touched service. */
int config_store_apply(config_store *s, const config_event *ev, config_result *out);

/* Full re-read of one source (an etcd re-read after compaction, a local tree rescan):
 * sync_begin marks every key of the source unseen; apply the puts; sync_end deletes the
 * keys still unseen and adds what that touched to out. Both return 0 or -ENOMEM. */
int config_store_sync_begin(config_store *s, enum config_source src);
int config_store_sync_end(config_store *s, enum config_source src, config_result *out);
/* During a sync: mark key[0..len) of src as seen, so sync_end keeps its last value; with
 * under, also every key of src under "key/" (every key of src when len is 0). For a part of
 * the source that exists but could not be read. Costs O(1), or O(keys) with under. 0 or
 * -EINVAL (bad src). */
int config_store_sync_keep(config_store *s, enum config_source src, const char *key,
                           size_t len, bool under);

/* Keys whose current text is invalid (stale or skipped), over all sources. */
size_t config_store_invalid_count(const config_store *s);
/* The same in one source (0 for an unknown one). O(1). */
size_t config_store_invalid_count_source(const config_store *s, enum config_source src);
/* Number of services the store holds any key of (valid or not). */
size_t config_store_service_count(const config_store *s);

/* ---- The merged view ---- */

/* The frontend in force for service, or NULL. Valid until the next apply. */
const config_frontend *config_store_frontend(const config_store *s, const char *service);

/* Call fn for each backend in force of service, sorted by name; stops at and returns the
 * first non-zero fn return, else 0. */
typedef int (*config_backend_fn)(const char *name, const config_backend *be, void *ctx);
int config_store_foreach_backend(config_store *s, const char *service, config_backend_fn fn,
                                 void *ctx);

/* Call fn for each service name that has a frontend in force (unsorted); as above. */
typedef int (*config_service_fn)(const char *service, void *ctx);
int config_store_foreach_service(config_store *s, config_service_fn fn, void *ctx);

/* The name sorting first of the services whose frontend in force produces key, or NULL. */
const char *config_store_svckey_owner(const config_store *s, const config_svckey *key);

/* A route in force. */
typedef struct config_route_ref {
    const char *name;
    const config_route *route;
} config_route_ref;

/* Routes in force (after -filter-etcd-routes), sorted by family, prefix length descending,
 * then name: the first one containing an address is the one that applies. Returns how many
 * and sets *out (valid until the next apply), or -ENOMEM. */
long config_store_routes(config_store *s, const config_route_ref **out);

/* One (key, source) of the store, for `clusterfctl get`. */
typedef struct config_entry {
    const char *key;           /* relative key */
    enum config_kind kind;
    enum config_source source;
    const config_value *value; /* last valid value, or NULL (invalid on a cold start); only
                                * its kind and the union member of that kind are stored */
    bool in_force;             /* this is the value the merged view uses */
    bool stale;                /* the current text is invalid; value is the last valid one */
    const char *error;         /* why the current text is invalid, or NULL */
    int64_t revision;
} config_entry;

/* Call fn for every (key, source) held, sorted by key then source priority; stops at and
 * returns the first non-zero fn return, else 0 (or -ENOMEM). */
typedef int (*config_entry_fn)(const config_entry *e, void *ctx);
int config_store_foreach_entry(config_store *s, config_entry_fn fn, void *ctx);

#endif
