/* ctl_health.c -- `clusterfctl health`: ask a daemon's /healthz (or another path) over HTTP
 * and exit 0 on 200: the container HEALTHCHECK of an image that has no shell and no curl.
 * The address comes from --url, else from CLUSTERF_METRICS_LISTEN (the daemon's own
 * --metrics-listen setting, ":PORT" meaning 127.0.0.1:PORT); with neither there is no
 * endpoint to ask, which counts as healthy. */
#include "ctl/ctl_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

/* Discard the body. */
static size_t drop(char *p, size_t size, size_t n, void *ctx)
{
    (void)p, (void)ctx;
    return size * n;
}

/* The URL for listen ("ADDR:PORT", ":PORT", "[V6]:PORT") and path into buf. */
static void listen_url(const char *listen, const char *path, char *buf, size_t size)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        snprintf(buf, size, "http://127.0.0.1%s%s", colon ? colon : ":", path);
    else
        snprintf(buf, size, "http://%.*s%s", (int)(strlen(listen)), listen, path);
}

int ctl_health(const char *url, const char *path, FILE *out)
{
    char buf[512];
    const char *listen = getenv("CLUSTERF_METRICS_LISTEN");
    if (!url && (!listen || !listen[0])) {
        fprintf(out, "clusterfctl health: no --url and no CLUSTERF_METRICS_LISTEN: nothing to ask\n");
        return 0;
    }
    if (!url) {
        listen_url(listen, path && path[0] ? path : "/healthz", buf, sizeof buf);
        url = buf;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return CTL_EXIT_USAGE;
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2500L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, drop);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(out, "clusterfctl health: %s: %s\n", url, curl_easy_strerror(rc));
        return 1;
    }
    fprintf(out, "clusterfctl health: %s: HTTP %ld\n", url, status);
    return status == 200 ? 0 : 1;
}
