/* watch.c -- etcd_watch: a prefix watch that resumes by itself and hands events over through
 * an eventfd.
 *
 * The stream runs on the client thread. Events are delivered only from complete responses
 * (fragments are joined first), and the resume point is the last delivered mod_revision + 1,
 * so a broken stream or an etcd restart loses and repeats nothing. Event-less responses
 * (progress) never move the resume point. A compaction stops the watch until a restart.
 * A stream that has been silent for ETCD_PROBE_IDLE_MS is asked for progress, so a hung
 * member is noticed and left (internal.h, "Member liveness"). */
#include "etcd/internal.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WATCH_METHOD "/etcdserverpb.Watch/Watch"
#define PENDING_POLL_MS 20  /* how soon to look again while the consumer drains the queue */

static void on_message(void *owner, const uint8_t *buf, size_t len);
static void on_closed(void *owner, int code, const char *details);

/* Copy an mvccpb.KeyValue: key and value share one block, each NUL-terminated. */
static int copy_kv(const Mvccpb__KeyValue *src, etcd_kv *dst)
{
    size_t kl = src->key.len, vl = src->value.len;
    uint8_t *blk = malloc(kl + vl + 2);
    if (!blk)
        return -ENOMEM;
    if (kl)
        memcpy(blk, src->key.data, kl);
    blk[kl] = '\0';
    if (vl)
        memcpy(blk + kl + 1, src->value.data, vl);
    blk[kl + 1 + vl] = '\0';
    *dst = (etcd_kv){blk, kl, blk + kl + 1, vl, src->create_revision, src->mod_revision,
                     src->version, src->lease};
    return 0;
}

static void free_events(etcd_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)ev[i].kv.key);
    free(ev);
}

void etcd_watch_batch_free(etcd_watch_batch *b)
{
    if (!b)
        return;
    free_events(b->events, b->n);
    free(b);
}

/* Wake the consumer (called with c->mu held). */
static void notify(etcd_watch *w)
{
    uint64_t one = 1;
    if (write(w->efd, &one, sizeof one) < 0) {
        /* the counter cannot overflow in practice; EAGAIN means it is readable already */
    }
}

/* The queued batch, created on demand (c->mu held). */
static etcd_watch_batch *queue(etcd_watch *w)
{
    if (!w->q)
        w->q = calloc(1, sizeof *w->q);
    return w->q;
}

/* Bytes an event holds in the queue. */
static size_t event_bytes(const etcd_event *e)
{
    return sizeof *e + e->kv.key_len + e->kv.value_len + 2;
}

/* How many events of pend[off..] fit in the queue in whole revisions; an empty queue takes
 * one revision whatever its size. *bytes gets their size. Called with c->mu held. */
static size_t fitting(const etcd_watch *w, size_t *bytes)
{
    size_t q_n = w->q ? w->q->n : 0, take = 0, i = w->off_pend;
    *bytes = 0;
    while (i < w->n_pend) {
        size_t j = i, b = 0;
        int64_t rev = w->pend[i].kv.mod_revision;
        while (j < w->n_pend && w->pend[j].kv.mod_revision == rev)
            b += event_bytes(&w->pend[j++]);
        bool empty = q_n + take == 0;
        if (!empty && (q_n + take + (j - i) > w->max_events || w->q_bytes + *bytes + b > w->max_bytes))
            break;
        take += j - i;
        *bytes += b;
        i = j;
    }
    return take;
}

/* Free the events not handed over yet. */
static void drop_pending(etcd_watch *w)
{
    for (size_t i = w->off_pend; i < w->n_pend; i++)
        free((void *)w->pend[i].kv.key);
    free(w->pend);
    w->pend = NULL;
    w->n_pend = w->off_pend = 0;
}

/* Move as many pending events as the queue's limits allow to the consumer, in whole
 * revisions, and advance the resume point past them. */
static void flush(etcd_watch *w)
{
    if (w->off_pend == w->n_pend)
        return;
    pthread_mutex_lock(&w->c->mu);
    etcd_watch_batch *b = w->gen == w->tgen ? queue(w) : NULL;
    size_t bytes = 0, n = b ? fitting(w, &bytes) : 0;
    etcd_event *ev = n ? realloc(b->events, (b->n + n) * sizeof *ev) : NULL;
    if (ev) {  /* (out of memory: try again on the next tick) */
        memcpy(ev + b->n, w->pend + w->off_pend, n * sizeof *ev);
        b->events = ev;
        b->n += n;
        w->q_bytes += bytes;
        w->off_pend += n;
        w->next_rev = w->pend[w->off_pend - 1].kv.mod_revision + 1;
        w->shared_next = w->next_rev;
        notify(w);
    }
    pthread_mutex_unlock(&w->c->mu);
    if (w->off_pend == w->n_pend)
        drop_pending(w);
}

/* A complete response: its events become pending and go to the consumer as room allows;
 * until all have gone, the stream reads nothing more (etcd and gRPC hold the rest). */
static void deliver(etcd_watch *w)
{
    if (w->n_frag == 0)
        return;
    drop_pending(w);  /* empty: nothing is read while events are pending */
    w->pend = w->frag;
    w->n_pend = w->n_frag;
    w->frag = NULL;
    w->n_frag = w->cap_frag = 0;
    flush(w);
    if (w->n_pend)
        w->st.paused = true;
}

/* Append a response's events to the fragment buffer. */
static int add_events(etcd_watch *w, Etcdserverpb__WatchResponse *r)
{
    if (w->n_frag + r->n_events > w->cap_frag) {
        size_t cap = (w->n_frag + r->n_events) * 2;
        etcd_event *ev = realloc(w->frag, cap * sizeof *ev);
        if (!ev)
            return -ENOMEM;
        w->frag = ev;
        w->cap_frag = cap;
    }
    for (size_t i = 0; i < r->n_events; i++) {
        Mvccpb__Event *e = r->events[i];
        if (!e->kv)
            continue;
        etcd_event *d = &w->frag[w->n_frag];
        d->type = e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? ETCD_EVENT_DELETE : ETCD_EVENT_PUT;
        if (copy_kv(e->kv, &d->kv) < 0)
            return -ENOMEM;
        w->n_frag++;
    }
    return 0;
}

/* Report a compaction (or another notice) to the consumer. */
static void report(etcd_watch *w, int64_t compact_rev, const etcd_error *err)
{
    pthread_mutex_lock(&w->c->mu);
    etcd_watch_batch *b = w->gen == w->tgen ? queue(w) : NULL;
    if (b) {
        if (compact_rev)
            b->compact_revision = compact_rev;
        if (err)
            b->err = *err;
        notify(w);
    }
    pthread_mutex_unlock(&w->c->mu);
}

static void handle_response(etcd_watch *w, Etcdserverpb__WatchResponse *r)
{
    int64_t hdr_rev = r->header ? r->header->revision : 0;
    if (r->created && !r->canceled) {
        w->created = true;
        backoff_reset(&w->bo);
        if (w->next_rev == 0 && hdr_rev > 0) {
            w->next_rev = hdr_rev + 1;
            pthread_mutex_lock(&w->c->mu);
            w->shared_next = w->next_rev;
            pthread_mutex_unlock(&w->c->mu);
        }
    }
    if (r->compact_revision != 0) {
        w->stopped = true;
        report(w, r->compact_revision, NULL);
        etcd_stream_cancel(&w->st);
        return;
    }
    if (r->canceled) {
        const char *why = r->cancel_reason && *r->cancel_reason ? r->cancel_reason : "watch canceled by etcd";
        etcd_err_set(&w->last_err, GRPC_STATUS_CANCELLED, w->c->eps[w->st.ep].url, "%s", why);
        /* etcd 3.4 refuses a watch whose token expired with "permission denied": with
         * auth in use, get a fresh token before the next attempt. */
        w->need_auth = etcd_auth_needed(w->c) && (strstr(why, "permission denied") ||
                       etcd_auth_error(GRPC_STATUS_UNAUTHENTICATED, why) ||
                       etcd_auth_error(GRPC_STATUS_INVALID_ARGUMENT, why));
        etcd_stream_cancel(&w->st);
        return;
    }
    if (r->n_events && add_events(w, r) < 0) {
        etcd_stream_cancel(&w->st);
        return;
    }
    if (!r->fragment)
        deliver(w);
}

static void on_message(void *owner, const uint8_t *buf, size_t len)
{
    etcd_watch *w = owner;
    pthread_mutex_lock(&w->c->mu);
    w->answered_at = clock_now_ms();
    pthread_mutex_unlock(&w->c->mu);
    if (w->closing || w->stopped)
        return;
    Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, buf);
    if (!r) {
        etcd_err_set(&w->last_err, ETCD_ERR_LOCAL, w->c->eps[w->st.ep].url, "undecodable WatchResponse");
        etcd_stream_cancel(&w->st);
        return;
    }
    handle_response(w, r);
    etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static void on_closed(void *owner, int code, const char *details)
{
    etcd_watch *w = owner;
    free_events(w->frag, w->n_frag);
    w->frag = NULL;
    w->n_frag = w->cap_frag = 0;
    if (w->closing || w->stopped)
        return;
    if (w->last_err.code == 0 || code != GRPC_STATUS_CANCELLED)
        etcd_err_set(&w->last_err, code, w->c->eps[w->st.ep].url, "%s", details);
    if (code == GRPC_STATUS_UNAVAILABLE)
        etcd_client_rotate(w->c, w->st.ep);
    if (etcd_auth_error(code, details))
        w->need_auth = true;
    int64_t delay = backoff_next(&w->bo);
    w->retry_at = clock_now_ms() + delay;
    report(w, 0, &w->last_err);
    memset(&w->last_err, 0, sizeof w->last_err);
}

/* Open the stream and send the create request from next_rev. */
static void open_stream(etcd_watch *w, int64_t now)
{
    etcd_error err = {0};
    bool refresh = w->need_auth;
    w->need_auth = false;
    w->closing = false;
    w->created = false;
    int rc = etcd_stream_open(&w->st, refresh, &err);
    if (rc == -EINPROGRESS) {  /* a token is on its way: look again soon */
        w->need_auth = refresh;
        w->retry_at = now + ETCD_AUTH_POLL_MS;
        if (err.code)
            report(w, 0, &err);
        return;
    }
    if (rc < 0) {
        w->retry_at = now + backoff_next(&w->bo);
        report(w, 0, &err);
        return;
    }
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){w->key_len, w->key};
    cr.range_end = (ProtobufCBinaryData){w->end_len, w->end};
    cr.start_revision = w->next_rev;
    cr.fragment = true;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    size_t len = etcdserverpb__watch_request__get_packed_size(&req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf || (etcdserverpb__watch_request__pack(&req, buf), etcd_stream_send(&w->st, buf, len)) < 0)
        etcd_stream_cancel(&w->st);
    free(buf);
}

/* Ask etcd for a progress notice on a created stream that has been silent for a while (its
 * answer, or any event, proves the member alive; etcd_stream_check leaves a silent one).
 * Returns when to look again. */
static int64_t probe(etcd_watch *w, int64_t now)
{
    int64_t due = etcd_stream_check(&w->st, now);
    if (w->st.cancelled || w->st.paused || !w->created || w->st.asked_at || w->c->n_eps < 2)
        return due;
    if (now - w->st.heard_at < ETCD_PROBE_IDLE_MS)
        return w->st.heard_at + ETCD_PROBE_IDLE_MS;
    Etcdserverpb__WatchProgressRequest pr = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    req.progress_request = &pr;
    uint8_t buf[16];
    size_t len = etcdserverpb__watch_request__pack(&req, buf);
    if (etcd_stream_send(&w->st, buf, len) < 0)
        return now + PENDING_POLL_MS;  /* the previous send is still out: try again soon */
    return now + w->st.answer_ms;
}

int64_t etcd_watch_tick(etcd_watch *w, int64_t now)
{
    pthread_mutex_lock(&w->c->mu);
    bool free_req = w->free_req;
    uint64_t gen = w->gen;
    int64_t rrev = w->restart_rev;
    pthread_mutex_unlock(&w->c->mu);
    bool active = etcd_stream_active(&w->st);
    if (free_req) {
        w->closing = true;
        etcd_stream_cancel(&w->st);
        return INT64_MAX;
    }
    if (gen != w->tgen) {
        pthread_mutex_lock(&w->c->mu);
        w->tgen = gen;
        pthread_mutex_unlock(&w->c->mu);
        w->next_rev = rrev;
        drop_pending(w);
        w->stopped = false;
        w->retry_at = 0;
        backoff_reset(&w->bo);
        if (active) {
            w->closing = true;
            etcd_stream_cancel(&w->st);
        }
        return now;
    }
    if (w->n_pend) {  /* the consumer took some: hand over more, read again once all went */
        flush(w);
        if (w->n_pend)
            return now + PENDING_POLL_MS;
        etcd_stream_resume(&w->st);
    }
    if (active)
        return w->stopped ? INT64_MAX : probe(w, now);
    if (w->stopped)
        return INT64_MAX;
    if (now < w->retry_at)
        return w->retry_at;
    open_stream(w, now);
    return etcd_stream_active(&w->st) ? INT64_MAX : w->retry_at;
}

bool etcd_watch_done(etcd_watch *w)
{
    return w->free_req && !etcd_stream_active(&w->st);
}

size_t etcd_prefix_end(const uint8_t *prefix, size_t len, uint8_t *end)
{
    memcpy(end, prefix, len);
    for (size_t i = len; i > 0; i--) {
        if (end[i - 1] != 0xff) {
            end[i - 1]++;
            return i;
        }
    }
    end[0] = '\0';
    return 1;
}

int etcd_watch_new(etcd_client *c, const void *prefix, size_t prefix_len,
                   int64_t start_revision, etcd_watch **out, etcd_error *err)
{
    *out = NULL;
    etcd_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->key = malloc(prefix_len + 1)) || !(w->end = malloc(prefix_len + 1))) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "out of memory");
        goto fail;
    }
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        etcd_err_set(err, ETCD_ERR_LOCAL, NULL, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (prefix_len == 0) {  /* the whole keyspace: key "\0", range_end "\0" */
        w->key[0] = '\0';
        w->key_len = 1;
        w->end[0] = '\0';
        w->end_len = 1;
    } else {
        memcpy(w->key, prefix, prefix_len);
        w->key_len = prefix_len;
        w->end_len = etcd_prefix_end(prefix, prefix_len, w->end);
    }
    w->c = c;
    w->next_rev = w->shared_next = start_revision > 0 ? start_revision : 0;
    w->max_events = ETCD_WATCH_QUEUE_EVENTS;
    w->max_bytes = ETCD_WATCH_QUEUE_BYTES;
    backoff_init(&w->bo, 100, 5000);
    etcd_stream_init(&w->st, c, WATCH_METHOD, w, on_message, on_closed);
    pthread_mutex_lock(&c->mu);
    w->next = c->watches;
    c->watches = w;
    etcd_client_kick_locked(c);  /* open it now */
    pthread_mutex_unlock(&c->mu);
    *out = w;
    return 0;
fail:
    if (w) {
        free(w->key);
        free(w->end);
        free(w);
    }
    return -ENOMEM;
}

int etcd_watch_fd(const etcd_watch *w)
{
    return w->efd;
}

int etcd_watch_take(etcd_watch *w, etcd_watch_batch **out)
{
    uint64_t v;
    pthread_mutex_lock(&w->c->mu);
    *out = w->q;
    w->q = NULL;
    w->q_bytes = 0;
    if (read(w->efd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing was signalled */
    }
    pthread_mutex_unlock(&w->c->mu);
    return *out ? 1 : 0;
}

int64_t etcd_watch_next_revision(etcd_watch *w)
{
    pthread_mutex_lock(&w->c->mu);
    int64_t r = w->shared_next;
    pthread_mutex_unlock(&w->c->mu);
    return r;
}

int64_t etcd_watch_last_answer_ms(etcd_watch *w)
{
    pthread_mutex_lock(&w->c->mu);
    int64_t at = w->answered_at;
    pthread_mutex_unlock(&w->c->mu);
    return at;
}

int etcd_watch_restart(etcd_watch *w, int64_t start_revision)
{
    pthread_mutex_lock(&w->c->mu);
    w->gen++;
    w->restart_rev = start_revision > 0 ? start_revision : 0;
    w->shared_next = w->restart_rev;
    etcd_watch_batch *old = w->q;
    w->q = NULL;
    w->q_bytes = 0;
    etcd_client_kick_locked(w->c);
    pthread_mutex_unlock(&w->c->mu);
    etcd_watch_batch_free(old);  /* outside the lock the client thread takes */
    return 0;
}

int etcd_watch_set_queue_limit(etcd_watch *w, size_t max_events, size_t max_bytes)
{
    if (max_events == 0 || max_bytes == 0)
        return -EINVAL;
    pthread_mutex_lock(&w->c->mu);
    w->max_events = max_events;
    w->max_bytes = max_bytes;
    pthread_mutex_unlock(&w->c->mu);
    return 0;
}

void etcd_watch_free(etcd_watch *w)
{
    if (!w)
        return;
    etcd_client_detach(w->c, &w->free_req, &w->detached);
    etcd_watch_batch_free(w->q);
    free_events(w->frag, w->n_frag);
    drop_pending(w);
    close(w->efd);
    free(w->key);
    free(w->end);
    free(w);
}
