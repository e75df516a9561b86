/* bytemap.c -- the chained hash table of bytemap.h: FNV-1a, power-of-two buckets, grows at
 * load factor 1. */
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

static bytemap_entry **bytemap_slot(const bytemap *h, const void *key, size_t len, uint64_t hv)
{
    bytemap_entry **pp = &h->b[hv & (h->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hv && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
    return pp;
}

void *bytemap_get(const bytemap *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    bytemap_entry **pp = bytemap_slot(h, key, len, bytemap_hash(key, len));
    return *pp ? (*pp)->val : NULL;
}

static int bytemap_grow(bytemap *h)
{
    size_t nb = h->nb ? h->nb * 2 : 16;
    bytemap_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < h->nb; i++) {
        bytemap_entry *e = h->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(h->b);
    h->b = b;
    h->nb = nb;
    return 0;
}

int bytemap_put(bytemap *h, const void *key, size_t len, void *val)
{
    if (h->n >= h->nb && bytemap_grow(h) < 0)
        return -ENOMEM;
    bytemap_entry *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    e->hash = bytemap_hash(key, len);
    e->key = key;
    e->len = len;
    e->val = val;
    bytemap_entry **head = &h->b[e->hash & (h->nb - 1)];
    e->next = *head;
    *head = e;
    h->n++;
    return 0;
}

void *bytemap_del(bytemap *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    bytemap_entry **pp = bytemap_slot(h, key, len, bytemap_hash(key, len));
    bytemap_entry *e = *pp;
    if (!e)
        return NULL;
    void *val = e->val;
    *pp = e->next;
    free(e);
    h->n--;
    return val;
}

void bytemap_clear(bytemap *h)
{
    for (size_t i = 0; i < h->nb; i++) {
        bytemap_entry *e = h->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}

bool bytemap_next(const bytemap *h, size_t *pos, bytemap_entry **e)
{
    if (*e && (*e)->next) {
        *e = (*e)->next;
        return true;
    }
    if (*e)
        (*pos)++;
    for (; *pos < h->nb; (*pos)++) {
        if (h->b[*pos]) {
            *e = h->b[*pos];
            return true;
        }
    }
    *e = NULL;
    return false;
}
