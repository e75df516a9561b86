/* etcd.h -- a small etcd v3 client over the gRPC C core: KV, Txn, Watch, Lease, auth, TLS.
 *
 * One etcd_client holds one gRPC channel per endpoint and fails over between them. Unary
 * calls (KV, lease grant/revoke) are synchronous, thread-safe and bounded by the client's
 * per-call timeout. Watches and lease keep-alives run on the client's own thread; their
 * results are handed over through an eventfd that an epoll loop can wait on.
 *
 * Keys and values are binary (pointer + length); results add a NUL after each key and value
 * (not counted in the length) for convenience. Errors are returned as -errno and described in
 * an etcd_error (gRPC status code + the server's message); nothing here exits or aborts.
 *
 * List-then-watch from an epoll loop:
 *     etcd_range_prefix(c, "/clusterf/", 10, 0, &kvs, &err);      load kvs, R = kvs->revision
 *     etcd_watch_new(c, "/clusterf/", 10, R + 1, &w, &err);       add etcd_watch_fd(w) to epoll
 *     on EPOLLIN: while (etcd_watch_take(w, &b) > 0) {
 *         apply b->events[0..n) in order;
 *         if (b->compact_revision) { range again -> R2; diff; etcd_watch_restart(w, R2 + 1); }
 *         etcd_watch_batch_free(b);
 *     }
 * Leases the same way: etcd_lease_new, put keys with etcd_lease_id(), and on EPOLLIN of
 * etcd_lease_fd(): if (etcd_lease_lost(l)) { etcd_lease_regrant(l, &err); put the keys again; } */
#ifndef CLUSTERF_ETCD_H
#define CLUSTERF_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct etcd_client etcd_client;
typedef struct etcd_watch etcd_watch;
typedef struct etcd_lease etcd_lease;

/* Client settings. Strings are copied by etcd_client_new. */
typedef struct etcd_config {
    const char *endpoints;  /* "http://127.0.0.1:2379,https://h:2379"; NULL = http://127.0.0.1:2379 */
    const char *ca_file;    /* PEM CA bundle for https:// endpoints (NULL = system roots) */
    const char *cert_file;  /* optional client certificate (PEM), needs key_file */
    const char *key_file;
    const char *username;   /* optional etcd user; password is then required. The token is
                             * fetched (and refreshed when etcd rejects it) by the client
                             * thread without blocking it; calls wait for it. */
    const char *password;
    int64_t timeout_ms;     /* deadline of each unary call incl. retries; 0 = 5000 */
    size_t max_recv_bytes;  /* largest message accepted from etcd; 0 = ETCD_MAX_RECV_BYTES */
} etcd_config;

/* Default bound of one received message: fits a watch response fragment (etcd splits them
 * at --max-request-bytes, 1.5 MiB by default) and a Range page (pages shrink to fit, down to
 * one key), with room for servers configured with larger requests. A larger message fails
 * the call or the watch stream with RESOURCE_EXHAUSTED (-ENOSPC), reported to the caller. */
#define ETCD_MAX_RECV_BYTES (64u << 20)

/* Error code for failures that did not come from gRPC or etcd (bad config, memory, ...). */
#define ETCD_ERR_LOCAL (-1)

/* Why a call failed: code is the gRPC status (14 = UNAVAILABLE, ...) or ETCD_ERR_LOCAL; msg is
 * etcd's or gRPC's message ("etcdserver: ..."); endpoint is the URL it came from (or ""). */
typedef struct etcd_error {
    int code;
    char msg[320];
    char endpoint[128];
} etcd_error;

/* The name of a gRPC status code ("UNAVAILABLE"), or "LOCAL" / "UNKNOWN". */
const char *etcd_code_name(int code);

/* Parse the config, read TLS files, create the channels and start the client thread. Does not
 * contact etcd (the first call does, and authenticates then). Returns 0 and *out, or -errno
 * with err filled (err may be NULL). */
int etcd_client_new(const etcd_config *cfg, etcd_client **out, etcd_error *err);

/* Stop the client thread, close every channel and release gRPC. Free every watch and lease
 * of this client first. NULL is a no-op. */
void etcd_client_free(etcd_client *c);

/* Copy the URL of the endpoint the client currently talks to into buf; returns its index. */
int etcd_client_endpoint(etcd_client *c, char *buf, size_t size);

/* ---- KV ---- */

typedef struct etcd_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
} etcd_kv;

/* The result of a Range: n key-values sorted by key, read at one revision. */
typedef struct etcd_kvs {
    etcd_kv *kvs;
    size_t n;
    int64_t revision;  /* the store revision the whole range was read at */
    void *priv_;       /* owned memory (keys and values); do not touch */
} etcd_kvs;

void etcd_kvs_free(etcd_kvs *kvs);

/* Read every key starting with prefix (prefix_len 0 = the whole keyspace), paginated, all pages
 * at one revision: `revision` if > 0, else the current one (reported in (*out)->revision).
 * Returns 0 and *out (free with etcd_kvs_free), or -errno (-ERANGE: revision compacted). */
int etcd_range_prefix(etcd_client *c, const void *prefix, size_t prefix_len, int64_t revision,
                      etcd_kvs **out, etcd_error *err);

/* Read one key. Returns 0 with *out = NULL when the key does not exist; *revision (may be NULL)
 * gets the store revision. */
int etcd_get(etcd_client *c, const void *key, size_t key_len, etcd_kvs **out,
             int64_t *revision, etcd_error *err);

/* Put key = value, attached to lease (0 = none). *revision (may be NULL) gets the new revision. */
int etcd_put(etcd_client *c, const void *key, size_t key_len, const void *value,
             size_t value_len, int64_t lease, int64_t *revision, etcd_error *err);

/* Delete key, or every key starting with key when prefix is true. *deleted (may be NULL) gets
 * the number of keys deleted. */
int etcd_delete(etcd_client *c, const void *key, size_t key_len, bool prefix,
                int64_t *deleted, etcd_error *err);

/* ---- Txn ---- */

enum etcd_cmp_target { ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_VALUE };
enum etcd_cmp_result { ETCD_CMP_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS, ETCD_CMP_NOT_EQUAL };

/* One comparison: key's target <result> number (version/create/mod revision) or value. A missing
 * key has version 0, so {VERSION, EQUAL, 0} means "does not exist". */
typedef struct etcd_compare {
    const void *key;
    size_t key_len;
    enum etcd_cmp_target target;
    enum etcd_cmp_result result;
    int64_t number;
    const void *value;
    size_t value_len;
} etcd_compare;

enum etcd_op_type { ETCD_OP_PUT, ETCD_OP_DELETE, ETCD_OP_DELETE_PREFIX };

typedef struct etcd_op {
    enum etcd_op_type type;
    const void *key;
    size_t key_len;
    const void *value;  /* PUT only */
    size_t value_len;
    int64_t lease;      /* PUT only; 0 = none */
} etcd_op;

/* If every compare holds, apply the success ops, else the failure ops (at most 128 each).
 * *succeeded tells which; *revision (may be NULL) gets the revision after the txn. A Txn is
 * retried on another endpoint only when it cannot have reached the server. */
int etcd_txn(etcd_client *c, const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
             size_t n_success, const etcd_op *failure, size_t n_failure, bool *succeeded,
             int64_t *revision, etcd_error *err);

/* Compact the history up to revision (used by tests and maintenance). */
int etcd_compact(etcd_client *c, int64_t revision, etcd_error *err);

/* ---- Watch ---- */

enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };

typedef struct etcd_event {
    enum etcd_event_type type;
    etcd_kv kv;  /* for DELETE: key, and mod_revision = the deletion's revision */
} etcd_event;

/* What etcd_watch_take hands over: the events queued since the last take, in revision order.
 * compact_revision != 0 means history from the watch's revision was compacted: the watch has
 * stopped; re-read everything (etcd_range_prefix) and call etcd_watch_restart(rev + 1).
 * err.code != 0 reports the latest stream failure (the watch keeps retrying by itself). */
typedef struct etcd_watch_batch {
    etcd_event *events;
    size_t n;
    int64_t compact_revision;
    etcd_error err;
} etcd_watch_batch;

/* Watch every key starting with prefix, delivering events from start_revision on (usually the
 * Range revision + 1; 0 = from now). The watch reconnects and resumes by itself, without losing
 * or repeating events. Returns 0 and *out, or -errno. */
int etcd_watch_new(etcd_client *c, const void *prefix, size_t prefix_len,
                   int64_t start_revision, etcd_watch **out, etcd_error *err);

/* An eventfd, readable while a batch is waiting. Owned by the watch. */
int etcd_watch_fd(const etcd_watch *w);

/* Take everything queued (and clear the fd). Returns 1 and *out, or 0 with *out = NULL when
 * nothing is queued. Free the batch with etcd_watch_batch_free. */
int etcd_watch_take(etcd_watch *w, etcd_watch_batch **out);
void etcd_watch_batch_free(etcd_watch_batch *b);

/* Bound the queue between the client thread and the consumer. Once it holds max_events
 * events or max_bytes bytes (keys + values + ~48 bytes per event), the watch stops reading
 * from etcd -- gRPC and etcd hold the rest, nothing is dropped -- and hands over more as the
 * consumer takes. Events are queued in whole revisions, so the queue exceeds a limit only
 * when one revision alone is larger. Defaults: ETCD_WATCH_QUEUE_EVENTS, _BYTES. Memory held
 * per watch is then at most the queue plus one received message (etcd_config.max_recv_bytes).
 * Returns 0, or -EINVAL for a zero limit. */
#define ETCD_WATCH_QUEUE_EVENTS 16384
#define ETCD_WATCH_QUEUE_BYTES (16u << 20)
int etcd_watch_set_queue_limit(etcd_watch *w, size_t max_events, size_t max_bytes);

/* The next revision the watch will deliver (last delivered event + 1). */
int64_t etcd_watch_next_revision(etcd_watch *w);
/* When etcd last sent anything on the watch's stream (clock_now_ms; 0 = never): an event, a
 * created or progress answer. A quiet watch is asked for progress every second or so, so
 * while etcd is reachable this stays recent. */
int64_t etcd_watch_last_answer_ms(etcd_watch *w);

/* Restart a watch (normally after a compaction notice) from start_revision. Drops anything
 * still queued. Returns 0 or -errno. */
int etcd_watch_restart(etcd_watch *w, int64_t start_revision);

/* Cancel the watch and free it. NULL is a no-op. */
void etcd_watch_free(etcd_watch *w);

/* ---- Lease ---- */

/* Grant a lease of ttl_s seconds and keep it alive (every TTL/3) from the client thread.
 * Returns 0 and *out, or -errno (a lease granted but not set up here is revoked at once). */
int etcd_lease_new(etcd_client *c, int64_t ttl_s, etcd_lease **out, etcd_error *err);

/* The lease ID to pass to etcd_put, and the TTL the server granted. */
int64_t etcd_lease_id(etcd_lease *l);
int64_t etcd_lease_ttl(etcd_lease *l);

/* When etcd last vouched for the lease: the send time (clock_now_ms) of the last keep-alive
 * it answered, or of the grant if later. A caller's proof that etcd answers (readiness). */
int64_t etcd_lease_last_answer_ms(etcd_lease *l);

/* An eventfd that becomes readable when the lease is lost (etcd answered TTL <= 0, or no
 * keep-alive succeeded within the TTL). Its keys are then gone or going. */
int etcd_lease_fd(const etcd_lease *l);

/* True when the lease has been lost (clears the fd). */
bool etcd_lease_lost(etcd_lease *l);

/* Why the lease was lost (code, message, endpoint), for the owner to log; zeroed while it is
 * not lost. The library itself logs nothing. */
void etcd_lease_loss(etcd_lease *l, etcd_error *why);

/* Grant a fresh lease with the same TTL in place of a lost one (same handle and fd) and keep it
 * alive; re-put the keys with etcd_lease_id() afterwards. Returns 0 or -errno. */
int etcd_lease_regrant(etcd_lease *l, etcd_error *err);

/* Stop the keep-alive and revoke the lease (its keys are deleted at once). */
int etcd_lease_revoke(etcd_lease *l, etcd_error *err);

/* Ask etcd how many seconds lease id has left: *remaining, -1 when it expired or never
 * existed. Returns 0 or -errno. */
int etcd_lease_time_to_live(etcd_client *c, int64_t id, int64_t *remaining, etcd_error *err);

/* Stop the keep-alive (without revoking: the keys expire after the TTL) and free. NULL ok. */
void etcd_lease_free(etcd_lease *l);

/* Server status of the current endpoint (for health checks): leader id (0 = none), member id. */
int etcd_status(etcd_client *c, uint64_t *leader, uint64_t *member_id, etcd_error *err);

#endif
