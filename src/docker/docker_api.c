/* docker_api.c -- the Docker Engine API over HTTP with libcurl: ping, list, inspect.
 *
 * `unix:///path` talks over the unix socket (CURLOPT_UNIX_SOCKET_PATH), `tcp://h:p` plain HTTP.
 * Every path carries DOCKER_API_VERSION. Bodies are size-capped; curl and HTTP errors are
 * turned into -errno here, once. The events stream is in docker_events.c. */
#include "docker/docker.h"
#include "docker/docker_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (64u << 20)
#define DEFAULT_TIMEOUT_MS 10000

struct docker_client {
    char *socket_path;          /* unix socket, or NULL for tcp */
    char *base_url;             /* "http://localhost" or "http://host:port" */
    int64_t timeout_ms;
    CURL *curl;                 /* reused between requests (keeps the connection) */
};

typedef struct buf {
    char *data;
    size_t len, cap;
    bool too_big;
} buf;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int docker_curl_init(void)
{
    pthread_once(&curl_once, curl_init_once);
    return curl_init_result == CURLE_OK ? 0 : -ENOMEM;
}

/* Split `host` into socket path / base URL. */
static int parse_host(docker_client *c, const char *host, docker_error *err)
{
    if (strncmp(host, "unix://", 7) == 0) {
        const char *path = host + 7;
        if (path[0] != '/' || strlen(path) >= 108)
            return docker_err_set(err, -EINVAL, "docker host %s: want unix:///absolute/path", host);
        c->socket_path = strdup(path);
        c->base_url = strdup("http://localhost");
    } else if (strncmp(host, "tcp://", 6) == 0) {
        const char *hp = host + 6;
        if (!*hp || strpbrk(hp, "/?#@ "))
            return docker_err_set(err, -EINVAL, "docker host %s: want tcp://host:port", host);
        if (asprintf(&c->base_url, "http://%s", hp) < 0)
            c->base_url = NULL;
    } else {
        return docker_err_set(err, -EINVAL, "docker host %s: want unix:// or tcp://", host);
    }
    if (!c->base_url || (strncmp(host, "unix://", 7) == 0 && !c->socket_path))
        return docker_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int docker_client_new(const char *host, docker_client **out, docker_error *err)
{
    docker_client *c = NULL;
    int r;

    *out = NULL;
    r = docker_curl_init();
    if (r < 0)
        return docker_err_set(err, r, "curl_global_init failed");
    c = calloc(1, sizeof(*c));
    if (!c)
        return docker_err_set(err, -ENOMEM, "out of memory");
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    r = parse_host(c, host ? host : DOCKER_DEFAULT_HOST, err);
    if (r < 0) {
        docker_client_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void docker_client_free(docker_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->socket_path);
    free(c->base_url);
    free(c);
}

void docker_client_set_timeout(docker_client *c, int64_t ms)
{
    c->timeout_ms = ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
}

int docker_client_url(const docker_client *c, const char *path_query, char **url)
{
    return asprintf(url, "%s/%s%s", c->base_url, DOCKER_API_VERSION, path_query) < 0
         ? -ENOMEM : 0;
}

const char *docker_client_socket(const docker_client *c)
{
    return c->socket_path;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > MAX_RESPONSE) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int docker_curl_error(int curl_code, const char *what, docker_error *err)
{
    int code;
    CURLcode rc = (CURLcode)curl_code;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: code = -ECONNREFUSED; break;
    case CURLE_OPERATION_TIMEDOUT:   code = -ETIMEDOUT; break;
    case CURLE_OUT_OF_MEMORY:        code = -ENOMEM; break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:         code = -ECONNRESET; break;
    default:                         code = -EIO; break;
    }
    return docker_err_set(err, code, "%s: %s", what, curl_easy_strerror(rc));
}

/* dockerd's {"message": "..."} of an error response, or the HTTP status. */
static int http_error(long status, const buf *b, const char *what, docker_error *err)
{
    json_object *o = b->data ? json_tokener_parse(b->data) : NULL;
    json_object *m = NULL;
    const char *msg = "";
    if (o && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "message", &m) && json_object_is_type(m, json_type_string))
        msg = json_object_get_string(m);
    int r = docker_err_set(err, status == 404 ? -ENOENT : -EIO, "%s: HTTP %ld %s", what,
                           status, msg);
    json_object_put(o);
    return r;
}

/* Prepare c->curl for one GET of path_query. */
static int setup_get(docker_client *c, const char *path_query, buf *b, docker_error *err)
{
    char *url = NULL;
    if (!c->curl)
        c->curl = curl_easy_init();
    else
        curl_easy_reset(c->curl);
    if (!c->curl || docker_client_url(c, path_query, &url) < 0) {
        free(url);
        return docker_err_set(err, -ENOMEM, "out of memory");
    }
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    if (c->socket_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    return 0;
}

/* GET path_query; on 200 the body is in *b (NUL-terminated; caller frees b->data). */
static int get(docker_client *c, const char *path_query, buf *b, docker_error *err)
{
    long status = 0;
    int r = setup_get(c, path_query, b, err);
    if (r < 0)
        return r;
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc == CURLE_WRITE_ERROR && b->too_big)
        return docker_err_set(err, -EPROTO, "GET %s: response larger than %u bytes",
                              path_query, MAX_RESPONSE);
    if (rc != CURLE_OK) {
        char what[300];
        snprintf(what, sizeof(what), "GET %s", path_query);
        return docker_curl_error(rc, what, err);
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        char what[300];
        snprintf(what, sizeof(what), "GET %s", path_query);
        return http_error(status, b, what, err);
    }
    if (!b->data)
        write_cb("", 1, 0, b);   /* an empty body: make it "" */
    if (!b->data)
        return docker_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

int docker_ping(docker_client *c, docker_error *err)
{
    buf b = {0};
    int r = get(c, "/_ping", &b, err);
    free(b.data);
    return r;
}

/* Collect the "Id" of each element of a /containers/json array. */
static int collect_ids(json_object *arr, char ***ids_out, docker_error *err)
{
    size_t n = json_object_array_length(arr), k = 0;
    char **ids = calloc(n + 1, sizeof(*ids));
    if (!ids)
        return docker_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *id = NULL, *e = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(e, json_type_object) ||
            !json_object_object_get_ex(e, "Id", &id) || !json_object_is_type(id, json_type_string)
            || json_object_get_string_len(id) == 0 || json_object_get_string_len(id) > 64)
            continue;
        ids[k] = strdup(json_object_get_string(id));
        if (!ids[k++]) {
            docker_ids_free(ids);
            return docker_err_set(err, -ENOMEM, "out of memory");
        }
    }
    *ids_out = ids;
    return 0;
}

/* "/containers/json" with an optional filters={"label":[label]} query. */
static int list_path(const char *label_filter, char **out)
{
    if (!label_filter)
        return (*out = strdup("/containers/json")) ? 0 : -ENOMEM;
    json_object *f = json_object_new_object(), *a = json_object_new_array();
    json_object_array_add(a, json_object_new_string(label_filter));
    json_object_object_add(f, "label", a);
    char *esc = curl_easy_escape(NULL, json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN), 0);
    int r = esc && asprintf(out, "/containers/json?filters=%s", esc) >= 0 ? 0 : -ENOMEM;
    curl_free(esc);
    json_object_put(f);
    return r;
}

int docker_list_containers(docker_client *c, const char *label_filter, char ***ids_out,
                           docker_error *err)
{
    buf b = {0};
    char *path = NULL;
    json_object *arr = NULL;
    int r;

    *ids_out = NULL;
    if (list_path(label_filter, &path) < 0) {
        r = docker_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    r = get(c, path, &b, err);
    if (r < 0)
        goto out;
    arr = json_tokener_parse(b.data);
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        r = docker_err_set(err, -EPROTO, "GET /containers/json: not a JSON array");
        goto out;
    }
    r = collect_ids(arr, ids_out, err);
out:
    json_object_put(arr);
    free(path);
    free(b.data);
    return r;
}

void docker_ids_free(char **ids)
{
    if (!ids)
        return;
    for (char **p = ids; *p; p++)
        free(*p);
    free(ids);
}

int docker_inspect(docker_client *c, const char *id, docker_container **out, docker_error *err)
{
    buf b = {0};
    char *path = NULL;
    int r;

    *out = NULL;
    if (!id || !*id || strlen(id) > 256)
        return docker_err_set(err, -EINVAL, "inspect: bad container id");
    char *esc = curl_easy_escape(NULL, id, 0);
    if (!esc || asprintf(&path, "/containers/%s/json", esc) < 0) {
        path = NULL;
        r = docker_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    r = get(c, path, &b, err);
    if (r == 0 && docker_container_parse(b.data, b.len, out, err) < 0)
        r = docker_err_set(err, -EPROTO, "GET %s: bad inspect body", path);
out:
    curl_free(esc);
    free(path);
    free(b.data);
    return r;
}
