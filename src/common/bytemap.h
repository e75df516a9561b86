/* bytemap.h -- a hash table from (bytes, len) keys to pointers, open addressing with linear
 * probing: a lookup reads one slot (its hash inline) and the key bytes of a match, where a
 * chained table read a bucket, an entry and the key (a resync at 10k services is mostly
 * lookups). The key bytes are not copied: they must live as long as the entry (point them
 * into the stored value). No I/O, so config/, lb/ and reconcile/ all use it. */
#ifndef CLUSTERF_BYTEMAP_H
#define CLUSTERF_BYTEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A slot; key == NULL marks it empty (a key is never NULL: it points into its value). */
typedef struct bytemap_entry {
    uint64_t hash;
    const void *key;
    void *val;
    size_t len;
} bytemap_entry;

/* Zero-initialise ({0}) to get an empty map. */
typedef struct bytemap {
    bytemap_entry *b;   /* nb slots, a power of two; at most 3/4 of them used */
    size_t nb, n;
} bytemap;

/* FNV-1a of the bytes with a final mix. */
uint64_t bytemap_hash(const void *key, size_t len);
/* The value stored under key, or NULL. */
void *bytemap_get(const bytemap *h, const void *key, size_t len);
/* Insert (the key must not be present; key not NULL). 0 or -ENOMEM. */
int bytemap_put(bytemap *h, const void *key, size_t len, void *val);
/* Remove and return the value, or NULL when absent. */
void *bytemap_del(bytemap *h, const void *key, size_t len);
/* Free the table (not the values); the map is empty and reusable afterwards. */
void bytemap_clear(bytemap *h);
/* Iterate: start with *pos = 0, *e = NULL; returns false at the end. The map must not change
 * during iteration. */
bool bytemap_next(const bytemap *h, size_t *pos, bytemap_entry **e);

#endif
