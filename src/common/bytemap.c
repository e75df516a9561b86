/* bytemap.c -- the hash table of bytemap.h: FNV-1a, power-of-two slots, linear probing, grows
 * past a load of 3/4, deletes by shifting the rest of a run back (no tombstones). */
#include "common/bytemap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a, 64 bit, with a final mix so the low bits spread. */
uint64_t bytemap_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* The slot holding key, or the empty slot that ends its run. The table is never full. */
static bytemap_entry *bytemap_slot(const bytemap *h, const void *key, size_t len, uint64_t hv)
{
    size_t mask = h->nb - 1;
    for (size_t i = hv & mask;; i = (i + 1) & mask) {
        bytemap_entry *e = &h->b[i];
        if (!e->key || (e->hash == hv && e->len == len && memcmp(e->key, key, len) == 0))
            return e;
    }
}

void *bytemap_get(const bytemap *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    bytemap_entry *e = bytemap_slot(h, key, len, bytemap_hash(key, len));
    return e->key ? e->val : NULL;
}

static int bytemap_grow(bytemap *h)
{
    size_t nb = h->nb ? h->nb * 2 : 16;
    bytemap_entry *b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < h->nb; i++) {
        if (!h->b[i].key)
            continue;
        size_t j = h->b[i].hash & (nb - 1);
        while (b[j].key)
            j = (j + 1) & (nb - 1);
        b[j] = h->b[i];
    }
    free(h->b);
    h->b = b;
    h->nb = nb;
    return 0;
}

int bytemap_put(bytemap *h, const void *key, size_t len, void *val)
{
    if ((h->n + 1) * 4 > h->nb * 3 && bytemap_grow(h) < 0)
        return -ENOMEM;
    if (!key)
        key = ""; /* a NULL key marks an empty slot; (NULL, 0) is the empty key */
    uint64_t hv = bytemap_hash(key, len);
    bytemap_entry *e = bytemap_slot(h, key, len, hv);
    *e = (bytemap_entry){.hash = hv, .key = key, .val = val, .len = len};
    h->n++;
    return 0;
}

/* True when home (a slot index) lies cyclically in (from, to]: an entry at `to` whose home
 * is there may not move back to `from`, which comes before its home. */
static bool between(size_t from, size_t home, size_t to)
{
    return from <= to ? from < home && home <= to : from < home || home <= to;
}

void *bytemap_del(bytemap *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    bytemap_entry *e = bytemap_slot(h, key, len, bytemap_hash(key, len));
    if (!e->key)
        return NULL;
    void *val = e->val;
    size_t mask = h->nb - 1, hole = (size_t)(e - h->b);
    for (size_t j = (hole + 1) & mask; h->b[j].key; j = (j + 1) & mask) {
        if (between(hole, h->b[j].hash & mask, j))
            continue;
        h->b[hole] = h->b[j];   /* it probed past the hole: close the gap */
        hole = j;
    }
    h->b[hole] = (bytemap_entry){0};
    h->n--;
    return val;
}

void bytemap_clear(bytemap *h)
{
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}

bool bytemap_next(const bytemap *h, size_t *pos, bytemap_entry **e)
{
    for (; *pos < h->nb; (*pos)++) {
        if (h->b[*pos].key) {
            *e = &h->b[(*pos)++];
            return true;
        }
    }
    *e = NULL;
    return false;
}
