/* etcd_poll.h -- test helper: read keys back with our etcd client and poll until a key holds a
 * value, is gone, or a prefix holds a number of keys (each wait bounded by a generous cap). */
#ifndef CLUSTERF_TEST_ETCD_POLL_H
#define CLUSTERF_TEST_ETCD_POLL_H

#include "etcd/etcd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read key: 1 (value copied NUL-terminated, *lease set when non-NULL), 0 (absent), -1 (error). */
int etcd_poll_get(etcd_client *c, const char *key, char *val, size_t size, int64_t *lease);

/* Poll until key holds a value containing want (NULL: any value), up to timeout_ms. True when
 * it did (val and lease filled when non-NULL); false after a failed CHECK naming the key. */
bool etcd_poll_key(etcd_client *c, const char *key, const char *want, char *val, size_t size,
                   int64_t *lease, int timeout_ms);

/* Poll until key is absent; returns the ms it took, or -1 after timeout_ms. */
int64_t etcd_poll_gone(etcd_client *c, const char *key, int timeout_ms);

/* Keys under prefix, or -1 on error. */
long etcd_poll_count(etcd_client *c, const char *prefix);

#endif
