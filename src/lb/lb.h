/* lb.h -- the desired IPVS table computed from the merged config (SPEC §3): services,
 * destinations, routes, gateways, merging, conflicts. Pure functions of a config_store: no
 * I/O, no logging; warnings come back as strings. The reconciler diffs these plain values
 * against the kernel.
 *
 * Rules, with the choices SPEC leaves open:
 *  - one service per (family present) x (protocol present) of a frontend; a fwmark frontend
 *    gives one fwmark service per family present (none = IPv4), protocol 0, port 0;
 *  - netmask: 0xffffffff for IPv4 (the kernel's __be32 mask; all ones in any byte order),
 *    128 for IPv6 (the kernel wants a prefix length there);
 *  - persistence > 0 sets IP_VS_SVC_F_PERSISTENT and timeout = persistence seconds;
 *  - a backend joins a service when it has an address of the service's family and (address
 *    services) a port of its protocol; its route is the longest matching prefix of that
 *    family among the routes in force (ties: the route name sorting first); no route = the
 *    default method, no gateway; "filter" leaves the backend out;
 *  - destination address: the route's gateway if it has one, else the backend's address;
 *    destination port: the backend's own port only for masq without a gateway, otherwise the
 *    frontend's port of that protocol; fwmark services always use port 0 (the packet's port);
 *  - destinations with the same address:port are merged: weight = sum, capped at
 *    LB_WEIGHT_MAX (the kernel's INT_MAX); method of the backend whose name sorts first, with a
 *    warning if their methods differ; weight 0 is kept (drain);
 *  - two clusterf services producing one service key: the name sorting first owns it, the
 *    other gets a warning and is listed in conflicts; its other keys are unaffected.
 * Output is sorted (lb_service_cmp, lb_dest_cmp), so the same config gives the same table.
 *
 * Typical use (the reconciler):
 *     lb_compute_all(cfg, &t);                       // start and periodic resync
 *     ...
 *     config_store_apply(cfg, &ev, &res);            // per event
 *     for each name in res.services: lb_compute_service(cfg, name, &t1) and replace
 *          the services owned by name (lb_service.owner) with t1's.
 */
#ifndef CLUSTERF_LB_H
#define CLUSTERF_LB_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_WEIGHT_MAX 2147483647u /* INT_MAX: the largest weight the kernel accepts */

/* One IPVS destination. */
typedef struct lb_dest {
    uint8_t af;       /* AF_INET / AF_INET6 */
    uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes, rest zero */
    uint16_t port;    /* host order; 0 in fwmark services */
    uint32_t fwd;     /* IP_VS_CONN_F_MASQ / _DROUTE / _TUNNEL */
    uint32_t weight;  /* 0..LB_WEIGHT_MAX */
} lb_dest;

/* One IPVS service and its destinations (sorted by lb_dest_cmp, addr:port unique). */
typedef struct lb_service {
    uint8_t af;        /* AF_INET / AF_INET6 */
    uint8_t protocol;  /* IPPROTO_TCP / IPPROTO_UDP; 0 for fwmark services */
    uint16_t port;     /* host order; 0 for fwmark services */
    uint32_t fwmark;   /* 0 for address services */
    uint8_t addr[16];  /* VIP, network order; zero for fwmark services */
    char sched[CONFIG_SCHED_MAX];
    uint32_t flags;    /* IP_VS_SVC_F_* (never HASHED) */
    uint32_t timeout;  /* persistence seconds */
    uint32_t netmask;  /* 0xffffffff (IPv4) or 128 (IPv6) */
    char *owner;       /* the clusterf service it comes from (owned) */
    lb_dest *dests;    /* owned */
    size_t n_dests;
} lb_service;

/* A computed table: services sorted by lb_service_cmp; warnings and the services that lost
 * a conflict (sorted, unique). Initialise with lb_table_init; the table owns everything. */
typedef struct lb_table {
    lb_service *services;
    size_t n_services, cap;
    config_strs warnings;
    config_strs conflicts;
} lb_table;

void lb_table_init(lb_table *t);
/* Free everything in t and leave it empty and reusable; NULL is a no-op. */
void lb_table_free(lb_table *t);

/* The IPVS services of one clusterf service (none when it has no frontend in force, or lost
 * every key to a conflict) into out, which is emptied first. Work: O(its backends x log) plus
 * the route lookups. Returns 0 or -ENOMEM (out is then empty). */
int lb_compute_service(config_store *cfg, const char *service, lb_table *out);

/* Move src's services and warnings to the end of dst, leaving src empty: the union of the
 * tables of several clusterf services (dst is then no longer sorted). 0 or -ENOMEM (nothing
 * moved). */
int lb_table_take(lb_table *dst, lb_table *src);

/* The whole table into out (emptied first). Returns 0 or -ENOMEM (out is then empty). */
int lb_compute_all(config_store *cfg, lb_table *out);

/* Order of service keys: address services before fwmark ones, then family, protocol,
 * address, port, fwmark. 0 means the same IPVS service. */
int lb_service_cmp(const lb_service *a, const lb_service *b);
/* Order of destinations: family, address, port. 0 means the same IPVS destination. */
int lb_dest_cmp(const lb_dest *a, const lb_dest *b);
/* True when the service attributes the kernel keeps (sched, flags, timeout, netmask) match. */
bool lb_service_attrs_equal(const lb_service *a, const lb_service *b);

/* "TCP 10.0.0.1:80", "UDP [2001:db8::1]:53", "FWM 7 IPv6" into buf; returns buf. */
const char *lb_service_str(const lb_service *s, char *buf, size_t size);
/* "10.0.0.1:80", "[2001:db8::1]:53" into buf; returns buf. */
const char *lb_dest_str(const lb_dest *d, char *buf, size_t size);
/* "masq", "droute", "tunnel" for an IP_VS_CONN_F_* method. */
const char *lb_fwd_name(uint32_t fwd);

#endif
