/* config_int.h -- internals shared by the config/ .c files (not part of the public API):
 * a byte-keyed hash table, the string list helpers and message formatting. */
#ifndef CLUSTERF_CONFIG_INT_H
#define CLUSTERF_CONFIG_INT_H

#include "config/config.h"

#include <stdarg.h>

/* Chained hash table from (bytes, len) to a pointer. The key bytes are not copied: they must
 * live as long as the entry (callers point them into the value they store). */
typedef struct config_hent {
    struct config_hent *next;
    uint64_t hash;
    const void *key;
    size_t len;
    void *val;
} config_hent;

typedef struct config_hash {
    config_hent **b;
    size_t nb, n;
} config_hash;

uint64_t config_hash_bytes(const void *key, size_t len);
void *config_hash_get(const config_hash *h, const void *key, size_t len);
/* Insert (the key must not be present). 0 or -ENOMEM. */
int config_hash_put(config_hash *h, const void *key, size_t len, void *val);
/* Remove and return the value, or NULL when absent. */
void *config_hash_del(config_hash *h, const void *key, size_t len);
/* Free the table (not the values). */
void config_hash_clear(config_hash *h);
/* Iterate: start with *pos = 0, *e = NULL; returns false at the end. */
bool config_hash_next(const config_hash *h, size_t *pos, config_hent **e);


/* Write s (len bytes) into buf for a message: printable ASCII as is, anything else as \xNN,
 * '"' and '\\' escaped, cut with "..." beyond max bytes of input. Returns buf. */
const char *config_quote(char *buf, size_t size, const char *s, size_t len, size_t max);

#endif
