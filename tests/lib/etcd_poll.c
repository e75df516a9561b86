/* etcd_poll.c -- read keys back with our etcd client and poll for a value, an absence or a key
 * count; the waits poll (no watch) so they also see what a watch would miss. */
#include "etcd_poll.h"

#include "check.h"
#include "common/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One range request for the key. */
int etcd_poll_get(etcd_client *c, const char *key, char *val, size_t size, int64_t *lease)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    if (etcd_get(c, key, strlen(key), &kvs, NULL, &err) < 0)
        return -1;
    if (!kvs)
        return 0;
    snprintf(val, size, "%.*s", (int)kvs->kvs[0].value_len, (const char *)kvs->kvs[0].value);
    if (lease)
        *lease = kvs->kvs[0].lease;
    etcd_kvs_free(kvs);
    return 1;
}

/* Every 100 ms until the value matches or the time is up. */
bool etcd_poll_key(etcd_client *c, const char *key, const char *want, char *val, size_t size,
                   int64_t *lease, int timeout_ms)
{
    int64_t end = clock_now_ms() + timeout_ms;
    char buf[1024] = "";
    do {
        if (etcd_poll_get(c, key, buf, sizeof(buf), lease) == 1 && (!want || strstr(buf, want))) {
            if (val)
                snprintf(val, size, "%s", buf);
            return true;
        }
        usleep(100000);
    } while (clock_now_ms() < end);
    return CHECK_MSG(false, "key %s never held %s (last: %s)", key, want ? want : "a value", buf);
}

/* Every 50 ms until the key is absent or the time is up. */
int64_t etcd_poll_gone(etcd_client *c, const char *key, int timeout_ms)
{
    int64_t t0 = clock_now_ms(), end = t0 + timeout_ms;
    char buf[1024];
    do {
        if (etcd_poll_get(c, key, buf, sizeof(buf), NULL) == 0)
            return clock_now_ms() - t0;
        usleep(50000);
    } while (clock_now_ms() < end);
    return -1;
}

/* A prefix range, counting what came back. */
long etcd_poll_count(etcd_client *c, const char *prefix)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    if (etcd_range_prefix(c, prefix, strlen(prefix), 0, &kvs, &err) < 0)
        return -1;
    long n = kvs ? (long)kvs->n : 0;
    etcd_kvs_free(kvs);
    return n;
}
