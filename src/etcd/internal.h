/* internal.h -- what the etcd module's .c files share: the client struct, unary calls, the
 * bidi stream helper driven by the client thread, and the per-watch / per-lease hooks.
 * Not part of the public API (see etcd.h). */
#ifndef CLUSTERF_ETCD_INTERNAL_H
#define CLUSTERF_ETCD_INTERNAL_H

#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <grpc/grpc.h>
#include <pthread.h>

struct etcd_endpoint {
    char *url;      /* as configured */
    char *target;   /* host:port for grpc_channel_create */
    grpc_channel *ch;
};

struct etcd_client {
    struct etcd_endpoint *eps;
    size_t n_eps;
    int64_t timeout_ms;
    char *username, *password;
    grpc_completion_queue *cq;  /* NEXT queue owned by the client thread (streams) */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t auth_mu;    /* serialises Authenticate */

    pthread_mutex_t mu;         /* guards everything below */
    pthread_cond_t cond;
    size_t cur;                 /* endpoint in use */
    char *token;                /* auth token, NULL before authenticating */
    uint64_t token_gen;         /* bumped on every new token */
    bool stopping;
    struct etcd_watch *watches; /* every live watch (linked by next) */
    struct etcd_lease *leases;
};

/* ---- client.c ---- */
void etcd_err_set(etcd_error *err, int code, const char *endpoint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int etcd_errno_of(int grpc_code);
/* Current endpoint index and a copy of the token (caller frees). */
size_t etcd_client_pick(etcd_client *c, char **token, uint64_t *token_gen);
/* Move to the next endpoint unless someone already moved away from `from`. */
void etcd_client_rotate(etcd_client *c, size_t from);

/* Call policy for etcd_unary: retry elsewhere after UNAVAILABLE always (reads, and writes that
 * may safely apply twice), or only when the call cannot have been sent (Txn, Compact). */
enum etcd_retry { ETCD_RETRY_ALWAYS, ETCD_RETRY_UNSENT };

/* ---- call.c ---- */
/* Synchronous unary call: method path, packed request; on success *resp (malloc'd) and
 * *resp_len. Handles failover, the per-call deadline and (with_auth) the token. Returns 0 or
 * -errno with err filled. */
int etcd_unary(etcd_client *c, const char *method, const uint8_t *req, size_t req_len,
               enum etcd_retry retry, bool with_auth, uint8_t **resp, size_t *resp_len,
               etcd_error *err);

/* Copy a received byte buffer into a malloc'd array; 0 or -errno. */
int etcd_bb_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len);

/* ---- auth.c ---- */
bool etcd_auth_needed(etcd_client *c);
/* True when (code, details) mean the token must be refreshed. */
bool etcd_auth_error(int code, const char *details);
/* Get a new token unless token_gen shows it was already refreshed. Returns 0 or -errno. */
int etcd_auth_refresh(etcd_client *c, uint64_t seen_gen, etcd_error *err);

/* ---- stream.c: one bidi call on the client CQ, used only from the client thread ---- */
struct etcd_stream;
struct etcd_stream_tag {
    struct etcd_stream *s;
    int kind;
};
struct etcd_stream {
    etcd_client *c;
    const char *method;
    void *owner;
    /* Called on the client thread for each message, and once when the call is over and every
     * tag has drained (code = gRPC status, details = its message). */
    void (*on_message)(void *owner, const uint8_t *buf, size_t len);
    void (*on_closed)(void *owner, int code, const char *details);
    grpc_call *call;
    size_t ep;
    uint64_t auth_gen;            /* token generation used at open */
    int pending;
    bool sending, cancelled, status_done;
    struct etcd_stream_tag t_start, t_recv, t_send, t_status;
    grpc_metadata md[2];
    size_t n_md;
    grpc_metadata_array recv_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    grpc_byte_buffer *recv_bb, *send_bb;
};
void etcd_stream_init(struct etcd_stream *s, etcd_client *c, const char *method, void *owner,
                      void (*on_message)(void *, const uint8_t *, size_t),
                      void (*on_closed)(void *, int, const char *));
/* Open the call on the current endpoint (authenticating first if needed, or again when
 * refresh_auth says the token was rejected); returns 0 or -errno with err filled. */
int etcd_stream_open(struct etcd_stream *s, bool refresh_auth, etcd_error *err);
/* Send one message; -EBUSY while the previous send is still outstanding. */
int etcd_stream_send(struct etcd_stream *s, const uint8_t *buf, size_t len);
void etcd_stream_cancel(struct etcd_stream *s);
bool etcd_stream_active(const struct etcd_stream *s);
void etcd_stream_complete(struct etcd_stream_tag *t, bool ok);

/* ---- watch.c ---- */
struct etcd_watch {
    etcd_client *c;
    struct etcd_watch *next;      /* in c->watches (under c->mu; removed only by the thread) */
    uint8_t *key, *end;
    size_t key_len, end_len;
    int efd;
    /* client thread only */
    struct etcd_stream st;
    int64_t next_rev;             /* next revision to deliver */
    int64_t retry_at;             /* when to reopen the stream (0 = now) */
    backoff bo;
    bool stopped;                 /* compacted: wait for a restart */
    bool closing;                 /* stream cancelled on purpose */
    bool created;
    etcd_event *frag;             /* events of an unfinished fragmented response */
    size_t n_frag, cap_frag;
    /* shared, under c->mu */
    etcd_watch_batch *q;          /* queued for etcd_watch_take, NULL when empty */
    int64_t shared_next;
    bool restart_req;
    int64_t restart_rev;
    uint64_t gen, tgen;           /* restart generation: gen set by callers, tgen by the thread */
    bool free_req, detached;
    /* client thread only, continued */
    etcd_error last_err;
    bool need_auth;
};
/* Client thread: do timed work and requests; return when it wants to run next (ms). */
int64_t etcd_watch_tick(struct etcd_watch *w, int64_t now);
/* Client thread: true once a free was requested and the stream is closed. */
bool etcd_watch_done(struct etcd_watch *w);

/* ---- lease.c ---- */
struct etcd_lease {
    etcd_client *c;
    struct etcd_lease *next;
    int efd;
    /* client thread only */
    struct etcd_stream st;
    uint64_t kgen;                /* generation being kept alive */
    int64_t kid, kttl;
    int64_t last_ok, next_send, retry_at;
    backoff bo;
    bool klost, closing;
    /* shared, under c->mu */
    int64_t id, ttl, granted_at, req_ttl;
    uint64_t gen;
    bool lost, free_req, detached;
    /* client thread only, continued */
    int64_t sent_at;
    bool need_auth;
};
int64_t etcd_lease_tick(struct etcd_lease *l, int64_t now);
bool etcd_lease_done(struct etcd_lease *l);

/* Range end for a prefix: writes into end (size >= len), returns its length (1 for "\0"). */
size_t etcd_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end);

/* Set *free_req under the client lock and wait until the client thread unlinked the object
 * (a watch or a lease) and set *detached. */
void etcd_client_detach(etcd_client *c, bool *free_req, bool *detached);

#endif
