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
    int64_t hung_at;  /* under c->mu: when a stream last found it silent (0 = never) */
};

/* Tag of a batch on the client's completion queue: a stream's (kind = its op) or the auth
 * call's (kind = ETCD_TAG_AUTH, s = NULL). */
struct etcd_stream;
struct etcd_stream_tag {
    struct etcd_stream *s;
    int kind;
};
#define ETCD_TAG_AUTH (-1)
#define ETCD_TAG_KICK (-2)

/* A wake-up of the client thread from another thread (client.c): gRPC's C core has no way to
 * post to a completion queue, so a call that never sends anything is started and cancelled at
 * once; its cancelled status is the wake-up. One at a time. */
struct etcd_kick {
    grpc_call *call;              /* in flight, or NULL (under c->mu) */
    struct etcd_stream_tag tag;
    grpc_metadata_array trail_md;
    grpc_status_code status;
    grpc_slice details;
};

/* The one Authenticate call of a client, run on the client thread (auth.c). */
struct etcd_auth {
    /* client thread only */
    grpc_call *call;              /* in flight, or NULL */
    struct etcd_stream_tag tag;
    size_t ep;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    backoff bo;
    int64_t retry_at;
    /* shared, under c->mu */
    bool wanted;                  /* a new token is needed (the current one was rejected) */
    uint64_t fails;               /* failed attempts so far */
    etcd_error last_err;          /* why the latest attempt failed */
};

struct etcd_client {
    struct etcd_endpoint *eps;
    size_t n_eps;
    int64_t timeout_ms;
    char *username, *password;
    grpc_completion_queue *cq;  /* NEXT queue owned by the client thread (streams, auth) */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;         /* guards everything below, and auth's shared part */
    pthread_cond_t cond;        /* CLOCK_MONOTONIC; broadcast on every thread loop */
    size_t cur;                 /* endpoint in use */
    char *token;                /* auth token, NULL before authenticating */
    uint64_t token_gen;         /* bumped on every new token */
    bool stopping;
    struct etcd_watch *watches; /* every live watch (linked by next) */
    struct etcd_lease *leases;
    struct etcd_auth auth;
    struct etcd_kick kick;
};

/* ---- client.c ---- */
void etcd_err_set(etcd_error *err, int code, const char *endpoint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int etcd_errno_of(int grpc_code);
/* Current endpoint index and a copy of the token (caller frees). */
size_t etcd_client_pick(etcd_client *c, char **token, uint64_t *token_gen);
/* Any thread but the client thread, after changing what it asks of the client thread under
 * c->mu (a new or freed watch or lease, a restart, a token wanted, stopping): wake it now. The
 * thread otherwise sleeps until its next timer (at most CLIENT_IDLE_WAKE_MS). */
void etcd_client_kick(etcd_client *c);
/* The same with c->mu held. */
void etcd_client_kick_locked(etcd_client *c);
/* Move to the next endpoint unless someone already moved away from `from`. */
void etcd_client_rotate(etcd_client *c, size_t from);
/* A stream found endpoint ep silent (a hung member): remember when, and rotate away from it.
 * Unary calls in flight on it since before then give up their attempt (call.c). */
void etcd_client_mark_hung(etcd_client *c, size_t ep, int64_t now);
/* When endpoint ep was last found silent by a stream (0 = never). */
int64_t etcd_client_hung_at(etcd_client *c, size_t ep);

/* Call policy for etcd_unary: retry elsewhere after UNAVAILABLE always (reads, and writes that
 * may safely apply twice), or only when the call cannot have been sent (Txn, Compact). */
enum etcd_retry { ETCD_RETRY_ALWAYS, ETCD_RETRY_UNSENT };

/* ---- call.c ---- */
/* Synchronous unary call: method path, packed request; on success *resp (malloc'd) and
 * *resp_len. Handles failover, the per-call deadline and (with_auth) the token. Returns 0 or
 * -errno with err filled; -EDEADLK on the client thread, which must never block on it. */
int etcd_unary(etcd_client *c, const char *method, const uint8_t *req, size_t req_len,
               enum etcd_retry retry, bool with_auth, uint8_t **resp, size_t *resp_len,
               etcd_error *err);
/* The same, and *sent_at gets when the successful attempt was sent (clock_now_ms): a lease's
 * TTL runs from no earlier than that. */
int etcd_unary_timed(etcd_client *c, const char *method, const uint8_t *req, size_t req_len,
                     enum etcd_retry retry, bool with_auth, uint8_t **resp, size_t *resp_len,
                     int64_t *sent_at, etcd_error *err);

/* Copy a received byte buffer into a malloc'd array; 0 or -errno. */
int etcd_bb_read(grpc_byte_buffer *bb, uint8_t **out, size_t *len);

/* ---- auth.c: tokens, fetched on the client thread and shared by every call ---- */
bool etcd_auth_needed(etcd_client *c);
/* True when (code, details) mean the token must be refreshed. */
bool etcd_auth_error(int code, const char *details);
/* Any thread but the client thread: ask for a new token (unless one came after seen_gen) and
 * wait for it until deadline_ms, through transient failures (UNAVAILABLE, DEADLINE_EXCEEDED:
 * the thread retries elsewhere with backoff). Returns 0; or a definitive failure as -errno
 * with err filled (a wrong password: -EINVAL, "authentication failed"); at the deadline the
 * latest transient failure, or -ETIMEDOUT when no attempt ended. */
int etcd_auth_wait(etcd_client *c, uint64_t seen_gen, int64_t deadline_ms, etcd_error *err);
/* Client thread, for streams: 0 when there is a token to open with -- any token, unless etcd
 * rejected generation rejected_gen and no newer one came. Else asks for one and returns
 * -EINPROGRESS (try again later), with err filled when an attempt failed since *seen. */
int etcd_auth_pending(etcd_client *c, bool rejected, uint64_t rejected_gen, uint64_t *seen,
                      etcd_error *err);
/* How often a stream waiting for a token looks again (the thread also wakes on completions). */
#define ETCD_AUTH_POLL_MS 50
/* Client thread: start the Authenticate call when a token is needed and the backoff allows;
 * cancel it when stopping. Returns when it wants to run again (ms, INT64_MAX = idle). */
int64_t etcd_auth_tick(etcd_client *c, int64_t now);
/* Client thread: the Authenticate batch completed. */
void etcd_auth_complete(etcd_client *c, bool ok);
/* True while the Authenticate call is in flight. */
bool etcd_auth_busy(const etcd_client *c);

/* ---- stream.c: one bidi call on the client CQ, used only from the client thread ---- */

/* Member liveness (stream.c). A killed member resets the TCP connection and every call on it
 * fails at once; a hung one (SIGSTOPped, or cut off with the socket still open) answers
 * nothing and closes nothing. gRPC's HTTP/2 keepalive cannot find it quickly: etcd enforces
 * --grpc-keepalive-min-time (5 s by default) and answers more frequent pings with a GOAWAY
 * (too_many_pings) that drops every stream. So the client asks etcd itself: every request
 * sent on a stream (a watch create or progress request, a lease keep-alive) expects some
 * message back within the stream's answer_ms; when none comes the member counts as hung, the
 * stream is cancelled and the client moves to the next endpoint. A watch with nothing to say
 * is asked for progress (etcd >= 3.4) after ETCD_PROBE_IDLE_MS of silence, so a hung member
 * is noticed within about ETCD_PROBE_IDLE_MS + ETCD_ANSWER_MS. A slow but live member only
 * costs a reconnect elsewhere (the watch resumes without loss, the lease is sent again). */
#define ETCD_PROBE_IDLE_MS 1000
#define ETCD_ANSWER_MS 2000
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
    uint64_t auth_fails_seen;     /* auth failures already reported to the owner */
    int pending;
    bool sending, cancelled, status_done;
    bool paused;                  /* owner set: post no RECV_MESSAGE until etcd_stream_resume */
    bool hung;                    /* cancelled because the member did not answer */
    int64_t answer_ms;            /* owner set: how long a request may wait for a message */
    int64_t asked_at;             /* oldest request sent and not answered yet (0 = none) */
    int64_t heard_at;             /* last message received (or the open) */
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
/* Open the call on the current endpoint with the current token. Without a token, or when
 * refresh_auth says etcd rejected the one this stream last opened with, it asks for a new one
 * and returns -EINPROGRESS (call again later; err is filled when an attempt failed since the
 * last report). Returns 0 or -errno with err filled. Never blocks. */
int etcd_stream_open(struct etcd_stream *s, bool refresh_auth, etcd_error *err);
/* Post the next RECV_MESSAGE of a stream its owner paused (flow control). */
void etcd_stream_resume(struct etcd_stream *s);
/* Send one message; -EBUSY while the previous send is still outstanding. */
int etcd_stream_send(struct etcd_stream *s, const uint8_t *buf, size_t len);
void etcd_stream_cancel(struct etcd_stream *s);
/* Cancel the stream (and mark its endpoint hung) when a request waited answer_ms without any
 * message back while the stream was reading. Returns when to look again (INT64_MAX: no
 * request outstanding). The owner's on_closed then gets DEADLINE_EXCEEDED. */
int64_t etcd_stream_check(struct etcd_stream *s, int64_t now);
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
    etcd_event *pend;             /* a complete response's events not yet queued: [off, n) */
    size_t n_pend, off_pend;
    /* shared, under c->mu */
    etcd_watch_batch *q;          /* queued for etcd_watch_take, NULL when empty */
    size_t q_bytes;               /* bytes of the events in q (event_bytes) */
    size_t max_events, max_bytes; /* limits of q (etcd_watch_set_queue_limit) */
    int64_t shared_next;
    int64_t answered_at;          /* under c->mu: when a message last came (0 = never) */
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
    int64_t answered_at;          /* when the last answered keep-alive was sent */
    uint64_t gen;
    bool lost, free_req, detached;
    etcd_error loss;              /* why it was lost */
    /* client thread only, continued */
    etcd_error kerr;              /* the keep-alive stream's latest failure */
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
