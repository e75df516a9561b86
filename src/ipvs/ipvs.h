/* ipvs.h -- the kernel's IPVS table over generic netlink (libnl-genl-3): dump, add, edit, delete.
 *
 * Values (ipvs_service, ipvs_dest) are plain structs in the kernel's own terms; the socket is
 * an opaque ipvs_conn. Changes go through a batch of ipvs_op: ipvs_apply() sends them in as few
 * sendmsg calls as the socket buffers allow and reports the kernel's answer per op. Nothing
 * here logs or retries: every function returns 0 or -errno, with a message in ipvs_err.
 * The table is the one of the network namespace the ipvs_conn was opened in. */
#ifndef CLUSTERF_IPVS_H
#define CLUSTERF_IPVS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/ip_vs.h>

typedef struct ipvs_conn ipvs_conn;

/* ipvs_conn_new() error when the kernel has no IPVS family (module ip_vs not loaded). */
#define IPVS_ERR_ABSENT (-ENOPKG)
#define IPVS_ABSENT_MSG "the kernel has no IPVS: load ip_vs"

/* Error detail: code is the returned -errno, msg says what failed and on which rule. */
struct ipvs_err {
    int code;
    char msg[256];
};

enum ipvs_fwd {
    IPVS_FWD_MASQ = IP_VS_CONN_F_MASQ,
    IPVS_FWD_LOCAL = IP_VS_CONN_F_LOCALNODE,
    IPVS_FWD_TUNNEL = IP_VS_CONN_F_TUNNEL,
    IPVS_FWD_DROUTE = IP_VS_CONN_F_DROUTE,
    IPVS_FWD_BYPASS = IP_VS_CONN_F_BYPASS,
};

/* Counters and rates; filled by dumps only (STATS64 when the kernel sends it). */
struct ipvs_stats {
    uint64_t conns, inpkts, outpkts, inbytes, outbytes;
    uint64_t cps, inpps, outpps, inbps, outbps;
};

/* A virtual service. Identity: af + fwmark when fwmark != 0, else af + protocol + addr + port. */
struct ipvs_service {
    uint16_t af;                          /* AF_INET or AF_INET6 */
    uint16_t protocol;                    /* IPPROTO_TCP/UDP/SCTP; ignored for fwmark */
    uint8_t addr[16];                     /* network order; IPv4 in the first 4 bytes */
    uint16_t port;                        /* host order */
    uint32_t fwmark;                      /* nonzero: a firewall-mark service */
    char sched[IP_VS_SCHEDNAME_MAXLEN];   /* "wlc", "rr", ...; "" = "wlc" */
    char pe[IP_VS_PENAME_MAXLEN];         /* persistence engine, usually "" */
    uint32_t flags;                       /* IP_VS_SVC_F_*; HASHED never appears */
    uint32_t timeout;                     /* persistence timeout in seconds */
    uint32_t netmask;                     /* persistence prefix length; 0 = 32 or 128 */
    struct ipvs_stats stats;              /* dump only */
};

/* A real server of a service. Identity within its service: af + addr + port. */
struct ipvs_dest {
    uint16_t af;                          /* 0 = the service's family */
    uint8_t addr[16];                     /* network order */
    uint16_t port;                        /* host order */
    uint32_t fwd;                         /* enum ipvs_fwd */
    uint32_t weight;                      /* 0..INT32_MAX; 0 = quiesced */
    uint32_t u_thresh, l_thresh;          /* connection thresholds; 0 = none */
    uint8_t tun_type;                     /* IP_VS_CONN_F_TUNNEL_TYPE_*, tunnel only */
    uint16_t tun_port;                    /* host order; GUE only */
    uint16_t tun_flags;                   /* IP_VS_TUNNEL_ENCAP_FLAG_* */
    uint32_t active_conns, inact_conns, persist_conns;   /* dump only */
    struct ipvs_stats stats;                             /* dump only */
};

/* One service with its destinations, as dumped. */
struct ipvs_entry {
    struct ipvs_service svc;
    struct ipvs_dest *dests;
    size_t n_dests;
};

/* The whole table, in the kernel's dump order. */
struct ipvs_table {
    struct ipvs_entry *entries;
    size_t n;
};

enum ipvs_op_kind {
    IPVS_OP_ADD_SERVICE = 1,
    IPVS_OP_EDIT_SERVICE,
    IPVS_OP_DEL_SERVICE,
    IPVS_OP_ADD_DEST,
    IPVS_OP_EDIT_DEST,
    IPVS_OP_DEL_DEST,
    IPVS_OP_FLUSH,
};

/* Outcome of one op. ALREADY: the kernel was already in the wanted state, i.e. EEXIST on an
 * add (the existing object may differ: compare with a dump) or ESRCH/ENOENT on a delete. */
enum ipvs_outcome {
    IPVS_PENDING = 0,
    IPVS_APPLIED,
    IPVS_ALREADY,
    IPVS_FAILED,
};

/* One change. svc is used by every kind but FLUSH (identity only for DEL_SERVICE and the
 * dest ops); dest by the dest kinds. outcome/error are written by ipvs_apply(): error is the
 * kernel's own -errno (also for ALREADY), or a local -errno when no answer came. */
struct ipvs_op {
    enum ipvs_op_kind kind;
    struct ipvs_service svc;
    struct ipvs_dest dest;
    enum ipvs_outcome outcome;
    int error;
};

/* A growable list of ops; start it zeroed ({0}). */
struct ipvs_batch {
    struct ipvs_op *ops;
    size_t n, cap;
};

/* The services a dump read in parts has given so far (ipvs_dump_services_part). Start it
 * zeroed; ipvs_service_list_release frees it. */
struct ipvs_service_list {
    struct ipvs_service *v;
    size_t n, cap;
};

/* Counters of one connection, for tests and metrics. */
struct ipvs_counters {
    uint64_t sendmsgs;   /* datagrams sent for ipvs_apply() */
    uint64_t ops;        /* ops sent */
    uint64_t dumps;      /* dump requests sent */
};

/* The kernel side as a table of functions, so a reconciler can run against an in-memory
 * fake in unit tests and against ipvs_conn in the daemon. */
struct ipvs_iface {
    void *self;
    int (*dump)(void *self, struct ipvs_table **out, struct ipvs_err *err);
    /* The services alone (no dests), and the dests of one service (an unknown service
     * gives none, as in the kernel): a reconciler walks a large table one service at a
     * time with these. */
    int (*dump_services)(void *self, struct ipvs_service **out, size_t *n,
                         struct ipvs_err *err);
    int (*dump_dests)(void *self, const struct ipvs_service *svc, struct ipvs_dest **out,
                      size_t *n, struct ipvs_err *err);
    int (*apply)(void *self, struct ipvs_op *ops, size_t n, struct ipvs_err *err);
    /* The services in parts, as ipvs_dump_services_part, so that a caller's event loop is
     * never held by a large table; and the end of such a dump before it is complete. NULL in
     * an iface without them: then dump_services gives the whole table at once. */
    int (*dump_services_part)(void *self, struct ipvs_service_list *list, size_t max,
                              struct ipvs_err *err);
    void (*dump_services_stop)(void *self);
};

/* Open a generic netlink socket and resolve the IPVS family. Returns 0 and *out, or
 * IPVS_ERR_ABSENT (message IPVS_ABSENT_MSG) when the kernel has no IPVS, or another -errno. */
int ipvs_conn_new(ipvs_conn **out, struct ipvs_err *err);
/* Close the socket; NULL is a no-op. */
void ipvs_conn_free(ipvs_conn *c);
/* Socket buffer sizes in bytes (0 = keep): forced when root, else capped by the
 * net.core.{w,r}mem_max sysctls. Recomputes the ops per sendmsg from what was granted.
 * Defaults: 4 MiB send, 8 MiB receive. */
void ipvs_conn_set_buffers(ipvs_conn *c, int sndbuf, int rcvbuf);
/* How long to wait for the kernel's answer before an op counts as lost (default 5000 ms). */
void ipvs_conn_set_timeout_ms(ipvs_conn *c, unsigned ms);
/* Upper bound of ops per sendmsg (default: what the socket buffers hold, at most 1024). */
void ipvs_conn_set_max_batch(ipvs_conn *c, size_t max_ops);
/* Ops per sendmsg actually used. */
size_t ipvs_conn_max_batch(const ipvs_conn *c);
void ipvs_conn_counters(const ipvs_conn *c, struct ipvs_counters *out);
/* c as an ipvs_iface (c stays owned by the caller). */
struct ipvs_iface ipvs_conn_iface(ipvs_conn *c);

/* An in-memory IPVS table that answers ops as Linux 6.1 does (same errno, same checks, same
 * outcomes as ipvs_apply), for unit tests of code built on ipvs_iface. */
typedef struct ipvs_fake ipvs_fake;
/* A new empty fake, or NULL (out of memory). */
ipvs_fake *ipvs_fake_new(void);
/* NULL is a no-op. */
void ipvs_fake_free(ipvs_fake *f);
/* f as an ipvs_iface (f stays owned by the caller). */
struct ipvs_iface ipvs_fake_iface(ipvs_fake *f);
/* Like ipvs_dump / ipvs_apply, on the in-memory table. */
int ipvs_fake_dump(ipvs_fake *f, struct ipvs_table **out, struct ipvs_err *err);
/* Set the connection counts the fake reports for dest d of svc (as traffic would). 0 or
 * -ENOENT. */
int ipvs_fake_set_conns(ipvs_fake *f, const struct ipvs_service *svc, const struct ipvs_dest *d,
                        uint32_t active, uint32_t inactive);
/* As ipvs_dump_services / ipvs_dump_dests (an unknown service has no dests). */
int ipvs_fake_dump_services(ipvs_fake *f, struct ipvs_service **out, size_t *n,
                            struct ipvs_err *err);
int ipvs_fake_dump_dests(ipvs_fake *f, const struct ipvs_service *svc, struct ipvs_dest **out,
                         size_t *n, struct ipvs_err *err);
/* As ipvs_dump_services_part / ipvs_dump_services_stop: resumes by position in the table, as
 * the kernel does, so a change between two parts can skip or repeat a service. */
int ipvs_fake_dump_services_part(ipvs_fake *f, struct ipvs_service_list *list, size_t max,
                                 struct ipvs_err *err);
void ipvs_fake_dump_services_stop(ipvs_fake *f);
int ipvs_fake_apply(ipvs_fake *f, struct ipvs_op *ops, size_t n, struct ipvs_err *err);
/* Make a later apply break like a lost exchange: after n_ops more ops, the rest of that call
 * is IPVS_FAILED with code and the call returns code (e.g. -ETIMEDOUT). */
void ipvs_fake_fail_after(ipvs_fake *f, size_t n_ops, int code);
/* Number of apply calls so far. */
unsigned long ipvs_fake_applies(const ipvs_fake *f);

/* One IPVS sysctl clusterf can set (--ipvs-sysctls). */
struct ipvs_sysctl {
    const char *name;  /* under /proc/sys/net/ipv4/vs/ */
    const char *value;
};
/* The sysctls for graceful removal and their values (see ipvs_sysctl.c for why each). */
const struct ipvs_sysctl *ipvs_sysctls(size_t *n);
/* Write one in the caller's network namespace. 0 or -errno (err names the file). */
int ipvs_sysctl_write(const struct ipvs_sysctl *s, struct ipvs_err *err);

/* The kernel's IPVS version (e.g. 0x010201 for 1.2.1) and connection-table size (GET_INFO).
 * Returns 0 or -errno. */
int ipvs_info(ipvs_conn *c, uint32_t *version, uint32_t *conn_tab_size, struct ipvs_err *err);

/* Every service, without destinations. Returns 0 and a malloc'ed array (free()) in *out. */
int ipvs_dump_services(ipvs_conn *c, struct ipvs_service **out, size_t *n, struct ipvs_err *err);
/* One part of a service dump: the first call starts a dump, each call appends to list the
 * services of the next datagrams of it until it holds max more (a datagram is never split, so
 * a part can be up to one datagram, ~35 services, larger), or the dump is over. Returns 1
 * while the dump has more, 0 when list holds it all (the next call starts a new dump), or
 * -errno (the dump is dropped). The dump runs on a socket of its own, so every other exchange
 * of c goes on between the parts. Like every IPVS dump it resumes by position: a change made
 * between two parts can be missed or a service given twice (ipvs-netlink.md §6). */
int ipvs_dump_services_part(ipvs_conn *c, struct ipvs_service_list *list, size_t max,
                            struct ipvs_err *err);
/* Drop a dump read in parts before its end (its socket is closed); no-op when none runs. */
void ipvs_dump_services_stop(ipvs_conn *c);
/* Free the services and zero list; NULL is a no-op. */
void ipvs_service_list_release(struct ipvs_service_list *list);
/* The destinations of one service (empty if the service does not exist). Returns 0 and a
 * malloc'ed array (free()) in *out. */
int ipvs_dump_dests(ipvs_conn *c, const struct ipvs_service *svc, struct ipvs_dest **out,
                    size_t *n, struct ipvs_err *err);
/* Every service with its destinations: one service dump, then one dest dump per service. A
 * dump is not a snapshot: a concurrent change can be missed. Returns 0 and *out
 * (ipvs_table_free()). */
int ipvs_dump(ipvs_conn *c, struct ipvs_table **out, struct ipvs_err *err);
void ipvs_table_free(struct ipvs_table *t);
/* The entry with svc's identity, or NULL. */
struct ipvs_entry *ipvs_table_find(const struct ipvs_table *t, const struct ipvs_service *svc);

/* Send ops to the kernel, in order, many per sendmsg, and record each op's outcome. Returns 0
 * when every op got its answer (some may be IPVS_FAILED), or -errno when the exchange broke
 * (-ETIMEDOUT, -ENOBUFS: answers lost, the ops may have been applied; re-dump): then the ops
 * without an answer are IPVS_FAILED with that error, and err says why. */
int ipvs_apply(ipvs_conn *c, struct ipvs_op *ops, size_t n, struct ipvs_err *err);
/* Number of ops with the given outcome. */
size_t ipvs_ops_count(const struct ipvs_op *ops, size_t n, enum ipvs_outcome outcome);

/* Append an op (svc/dest copied; dest may be NULL for service ops, svc NULL for FLUSH).
 * Returns 0 or -ENOMEM. */
int ipvs_batch_push(struct ipvs_batch *b, enum ipvs_op_kind kind,
                    const struct ipvs_service *svc, const struct ipvs_dest *dest);
/* Free the ops and zero b (b itself belongs to the caller); NULL is a no-op. */
void ipvs_batch_release(struct ipvs_batch *b);

/* Order of service identities (af, fwmark | protocol, addr, port): <0, 0, >0. */
int ipvs_service_cmp(const struct ipvs_service *a, const struct ipvs_service *b);
/* Same scheduler, flags, timeout, netmask and PE (defaults normalised, HASHED ignored). */
bool ipvs_service_same_config(const struct ipvs_service *a, const struct ipvs_service *b);
/* Order of destination identities (af, addr, port) within service svc: <0, 0, >0. */
int ipvs_dest_cmp(const struct ipvs_service *svc, const struct ipvs_dest *a,
                  const struct ipvs_dest *b);
/* Same forwarding method, weight, thresholds and tunnel settings. */
bool ipvs_dest_same_config(const struct ipvs_dest *a, const struct ipvs_dest *b);

/* "tcp 10.0.0.1:80", "udp [2001:db8::1]:53", "fwm4 7", "fwm6 7" into buf; returns buf. */
const char *ipvs_service_str(const struct ipvs_service *s, char *buf, size_t size);
/* "10.0.0.2:8080" or "[2001:db8::2]:80" (af 0 = family of svc); returns buf. */
const char *ipvs_dest_str(const struct ipvs_service *svc, const struct ipvs_dest *d,
                          char *buf, size_t size);
/* "masq", "local", "tunnel", "droute", "bypass" or "fwd?". */
const char *ipvs_fwd_name(uint32_t fwd);
/* "add-service", ..., "flush". */
const char *ipvs_op_name(enum ipvs_op_kind kind);
/* One op and its outcome for a log line: "add-dest tcp 10.0.0.1:80 -> 10.1.0.1:8080: No such
 * process (ESRCH)", "add-service udp 10.0.0.1:53: applied". Returns buf. */
const char *ipvs_op_str(const struct ipvs_op *op, char *buf, size_t size);
/* Parse "1.2.3.4" or "2001:db8::1" into addr (16 bytes, zero-filled) and *af.
 * Returns 0 or -EINVAL. */
int ipvs_addr_parse(const char *s, uint16_t *af, uint8_t addr[16]);

#endif
