/* docker_events.c -- dockerd's GET /events stream, decoded on a thread of its own and handed
 * to the caller's epoll loop through a queue + eventfd.
 *
 * Why a thread: the stream is one long-lived HTTP response; a dedicated thread running a curl
 * multi handle (curl_multi_poll, woken by curl_multi_wakeup to stop) keeps the caller's loop
 * down to one fd and no curl timers. The JSON objects arrive back to back (one per line, split
 * across chunks anywhere); a json_tokener parses them incrementally in the write callback.
 * The queue is bounded: past its size events are dropped and DOCKER_EVENT_OVERFLOW tells the
 * caller to re-list. DOCKER_EVENT_END is always delivered last. */
#include "docker/docker.h"
#include "docker/docker_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define QUEUE_MAX 16384
#define MAX_OBJECT (1u << 20)     /* one event larger than this is a protocol error */
#define EVENTS_FILTER "{\"type\":[\"container\",\"network\"],\"event\":[\"start\",\"die\"," \
    "\"stop\",\"kill\",\"pause\",\"unpause\",\"destroy\",\"rename\",\"health_status\"," \
    "\"connect\",\"disconnect\"]}"

struct docker_events {
    int efd;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    CURLM *multi;
    CURL *easy;
    json_tokener *tok;
    size_t partial;               /* bytes of the object being parsed so far */
    bool connected;               /* CONNECTED queued */
    char errbody[256];            /* start of a non-200 body */
    size_t errbody_len;
    docker_error proto_err;       /* set when the stream itself was malformed */

    pthread_mutex_t lock;         /* guards everything below */
    docker_event *q;              /* ring buffer */
    size_t head, count, cap;
    bool overflow;                /* events were dropped; OVERFLOW not yet taken */
    bool end_queued, end_taken;
    docker_event end;
};

static const struct {
    const char *action;
    docker_event_kind kind;
} container_actions[] = {
    {"start", DOCKER_EVENT_START},     {"die", DOCKER_EVENT_DIE},
    {"stop", DOCKER_EVENT_STOP},       {"kill", DOCKER_EVENT_KILL},
    {"pause", DOCKER_EVENT_PAUSE},     {"unpause", DOCKER_EVENT_UNPAUSE},
    {"destroy", DOCKER_EVENT_DESTROY}, {"rename", DOCKER_EVENT_RENAME},
};

/* Append one event (or note the overflow) and wake the consumer. */
static void push(docker_events *ev, const docker_event *e)
{
    uint64_t one = 1;
    pthread_mutex_lock(&ev->lock);
    if (e->kind == DOCKER_EVENT_END) {
        ev->end = *e;
        ev->end_queued = true;
    } else if (ev->count == ev->cap && ev->cap < QUEUE_MAX) {
        docker_event *q = malloc(ev->cap * 2 * sizeof(*q));
        if (q) {
            for (size_t i = 0; i < ev->count; i++)
                q[i] = ev->q[(ev->head + i) % ev->cap];
            free(ev->q);
            ev->q = q;
            ev->head = 0;
            ev->cap *= 2;
        }
    }
    if (e->kind != DOCKER_EVENT_END) {
        if (ev->count < ev->cap)
            ev->q[(ev->head + ev->count++) % ev->cap] = *e;
        else
            ev->overflow = true;
    }
    if (write(ev->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, the fd is readable anyway. */
    }
    pthread_mutex_unlock(&ev->lock);
}

static const char *str_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static bool copy_id(char *dst, size_t size, const char *id)
{
    if (!id || !*id || strlen(id) >= size || strspn(id, "0123456789abcdef") != strlen(id))
        return false;
    snprintf(dst, size, "%s", id);
    return true;
}

static bool container_kind(const char *action, docker_event *e)
{
    for (size_t i = 0; i < sizeof(container_actions) / sizeof(container_actions[0]); i++)
        if (strcmp(action, container_actions[i].action) == 0) {
            e->kind = container_actions[i].kind;
            return true;
        }
    if (strncmp(action, "health_status:", 14) != 0)
        return false;
    const char *h = action + 14 + strspn(action + 14, " ");
    e->kind = DOCKER_EVENT_HEALTH_STATUS;
    e->health = strcmp(h, "healthy") == 0   ? DOCKER_HEALTH_HEALTHY
              : strcmp(h, "unhealthy") == 0 ? DOCKER_HEALTH_UNHEALTHY
              : strcmp(h, "starting") == 0  ? DOCKER_HEALTH_STARTING : DOCKER_HEALTH_NONE;
    return true;
}

/* One decoded JSON object from the stream -> an event (others are ignored). */
static void handle_object(docker_events *ev, json_object *o)
{
    docker_event e = {0};
    const char *type = str_field(o, "Type"), *action = str_field(o, "Action");
    json_object *actor = NULL, *attrs = NULL, *tn = NULL;
    if (!type || !action || strlen(action) >= sizeof(e.action))
        return;
    json_object_object_get_ex(o, "Actor", &actor);
    if (actor && json_object_is_type(actor, json_type_object))
        json_object_object_get_ex(actor, "Attributes", &attrs);
    snprintf(e.action, sizeof(e.action), "%s", action);
    if (json_object_object_get_ex(o, "timeNano", &tn) && json_object_is_type(tn, json_type_int))
        e.time_nano = json_object_get_int64(tn);
    const char *name = str_field(attrs, "name");
    if (strcmp(type, "container") == 0) {
        if (!container_kind(action, &e) || !copy_id(e.id, sizeof(e.id), str_field(actor, "ID")))
            return;
        snprintf(e.name, sizeof(e.name), "%s", name ? name : "");
    } else if (strcmp(type, "network") == 0) {
        if (strcmp(action, "connect") == 0)
            e.kind = DOCKER_EVENT_NETWORK_CONNECT;
        else if (strcmp(action, "disconnect") == 0)
            e.kind = DOCKER_EVENT_NETWORK_DISCONNECT;
        else
            return;
        if (!copy_id(e.id, sizeof(e.id), str_field(attrs, "container")))
            return;
        snprintf(e.network, sizeof(e.network), "%s", name ? name : "");
    } else {
        return;
    }
    push(ev, &e);
}

/* Feed stream bytes to the tokener. Returns 0, or -EPROTO (ev->proto_err says why). */
static int feed(docker_events *ev, const char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        json_object *o = json_tokener_parse_ex(ev->tok, data + off, (int)(n - off));
        enum json_tokener_error jerr = json_tokener_get_error(ev->tok);
        if (o) {
            off += json_tokener_get_parse_end(ev->tok);
            ev->partial = 0;
            handle_object(ev, o);
            json_object_put(o);
        } else if (jerr == json_tokener_continue) {
            ev->partial += n - off;
            if (ev->partial > MAX_OBJECT)
                return docker_err_set(&ev->proto_err, -EPROTO,
                                      "events: an event larger than %u bytes", MAX_OBJECT);
            return 0;
        } else {
            return docker_err_set(&ev->proto_err, -EPROTO, "events: bad JSON: %s",
                                  json_tokener_error_desc(jerr));
        }
    }
    return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    docker_events *ev = userdata;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(ev->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {   /* keep the start of the error body for the END message */
        size_t k = n < sizeof(ev->errbody) - 1 - ev->errbody_len
                 ? n : sizeof(ev->errbody) - 1 - ev->errbody_len;
        memcpy(ev->errbody + ev->errbody_len, data, k);
        ev->errbody_len += k;
        ev->errbody[ev->errbody_len] = '\0';
        return n;
    }
    return feed(ev, data, n) == 0 ? n : 0;
}

/* At the end of the response headers: a 200 means the stream is open. */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    docker_events *ev = userdata;
    size_t n = size * nmemb;
    long status = 0;
    if ((n == 2 && data[0] == '\r' && data[1] == '\n') || (n == 1 && data[0] == '\n')) {
        curl_easy_getinfo(ev->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200 && !ev->connected) {
            docker_event e = {.kind = DOCKER_EVENT_CONNECTED};
            ev->connected = true;
            push(ev, &e);
        }
    }
    return n;
}

/* Why the transfer ended, as the END event. */
static void push_end(docker_events *ev, CURLcode rc)
{
    docker_event e = {.kind = DOCKER_EVENT_END};
    long status = 0;
    curl_easy_getinfo(ev->easy, CURLINFO_RESPONSE_CODE, &status);
    if (ev->proto_err.code)
        e.error = ev->proto_err;
    else if (rc != CURLE_OK)
        docker_curl_error(rc, "events", &e.error);
    else if (status != 200)
        docker_err_set(&e.error, status == 404 ? -ENOENT : -EIO, "events: HTTP %ld %s",
                       status, ev->errbody);
    else
        docker_err_set(&e.error, -EPIPE, "events: stream closed by dockerd");
    push(ev, &e);
}

static void *events_thread(void *arg)
{
    docker_events *ev = arg;
    int running = 1;
    CURLcode rc = CURLE_OK;

    while (!atomic_load(&ev->stop)) {
        if (curl_multi_perform(ev->multi, &running) != CURLM_OK || !running)
            break;
        curl_multi_poll(ev->multi, NULL, 0, 1000, NULL);
    }
    if (atomic_load(&ev->stop))
        return NULL;
    int left;
    for (CURLMsg *m; (m = curl_multi_info_read(ev->multi, &left));)
        if (m->msg == CURLMSG_DONE)
            rc = m->data.result;
    push_end(ev, rc);
    return NULL;
}

/* Create the easy handle for GET /events and put it on the multi handle. */
static int setup_curl(docker_events *ev, docker_client *c, docker_error *err)
{
    char *url = NULL, *path = NULL;
    char *esc = curl_easy_escape(NULL, EVENTS_FILTER, 0);
    int r = -ENOMEM;
    ev->multi = curl_multi_init();
    ev->easy = curl_easy_init();
    if (!esc || !ev->multi || !ev->easy || asprintf(&path, "/events?filters=%s", esc) < 0 ||
        docker_client_url(c, path, &url) < 0)
        goto out;
    CURL *h = ev->easy;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (docker_client_socket(c))
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, docker_client_socket(c));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ev);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, ev);
    r = curl_multi_add_handle(ev->multi, h) == CURLM_OK ? 0 : -ENOMEM;
out:
    curl_free(esc);
    free(path);
    free(url);
    return r < 0 ? docker_err_set(err, r, "events: cannot set up curl") : 0;
}

int docker_events_start(docker_client *c, docker_events **out, docker_error *err)
{
    docker_events *ev = calloc(1, sizeof(*ev));
    int r;

    *out = NULL;
    if (!ev)
        return docker_err_set(err, -ENOMEM, "out of memory");
    ev->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&ev->lock, NULL);
    ev->cap = 64;
    ev->q = malloc(ev->cap * sizeof(*ev->q));
    ev->tok = json_tokener_new();
    if (ev->efd < 0 || !ev->q || !ev->tok) {
        r = docker_err_set(err, ev->efd < 0 ? -errno : -ENOMEM, "events: cannot allocate");
        goto fail;
    }
    r = docker_curl_init();
    if (r == 0)
        r = setup_curl(ev, c, err);
    if (r < 0)
        goto fail;
    r = -pthread_create(&ev->thread, NULL, events_thread, ev);
    if (r < 0) {
        docker_err_set(err, r, "events: cannot start thread");
        goto fail;
    }
    ev->thread_started = true;
    *out = ev;
    return 0;
fail:
    docker_events_free(ev);
    return r;
}

int docker_events_fd(const docker_events *ev)
{
    return ev->efd;
}

int docker_events_next(docker_events *ev, docker_event *out)
{
    int got = 1;
    pthread_mutex_lock(&ev->lock);
    if (ev->count > 0) {
        *out = ev->q[ev->head];
        ev->head = (ev->head + 1) % ev->cap;
        ev->count--;
    } else if (ev->overflow) {
        memset(out, 0, sizeof(*out));
        out->kind = DOCKER_EVENT_OVERFLOW;
        ev->overflow = false;
    } else if (ev->end_queued && !ev->end_taken) {
        *out = ev->end;
        ev->end_taken = true;
    } else {
        uint64_t v;
        if (read(ev->efd, &v, sizeof(v)) < 0) {
            /* EAGAIN: already clear */
        }
        got = 0;
    }
    pthread_mutex_unlock(&ev->lock);
    return got;
}

void docker_events_free(docker_events *ev)
{
    if (!ev)
        return;
    if (ev->thread_started) {
        atomic_store(&ev->stop, true);
        curl_multi_wakeup(ev->multi);
        pthread_join(ev->thread, NULL);
    }
    if (ev->multi && ev->easy)
        curl_multi_remove_handle(ev->multi, ev->easy);
    if (ev->easy)
        curl_easy_cleanup(ev->easy);
    if (ev->multi)
        curl_multi_cleanup(ev->multi);
    if (ev->tok)
        json_tokener_free(ev->tok);
    if (ev->efd >= 0)
        close(ev->efd);
    pthread_mutex_destroy(&ev->lock);
    free(ev->q);
    free(ev);
}

const char *docker_event_kind_str(docker_event_kind k)
{
    static const char *const names[] = {
        "connected", "start", "die", "stop", "kill", "pause", "unpause", "destroy", "rename",
        "health_status", "network_connect", "network_disconnect", "overflow", "end",
    };
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}
