/* config_util.c -- the small containers of config/: a byte-keyed chained hash table, string
 * lists, and quoting of untrusted bytes for messages. No I/O. */
#include "config/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a, 64 bit, with a final mix so the low bits spread. */
uint64_t config_hash_bytes(const void *key, size_t len)
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

static config_hent **hash_slot(const config_hash *h, const void *key, size_t len, uint64_t hv)
{
    config_hent **pp = &h->b[hv & (h->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == hv && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
    return pp;
}

void *config_hash_get(const config_hash *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    config_hent **pp = hash_slot(h, key, len, config_hash_bytes(key, len));
    return *pp ? (*pp)->val : NULL;
}

static int hash_grow(config_hash *h)
{
    size_t nb = h->nb ? h->nb * 2 : 16;
    config_hent **b = calloc(nb, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < h->nb; i++) {
        config_hent *e = h->b[i], *next;
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

int config_hash_put(config_hash *h, const void *key, size_t len, void *val)
{
    if (h->n >= h->nb && hash_grow(h) < 0)
        return -ENOMEM;
    config_hent *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    e->hash = config_hash_bytes(key, len);
    e->key = key;
    e->len = len;
    e->val = val;
    config_hent **head = &h->b[e->hash & (h->nb - 1)];
    e->next = *head;
    *head = e;
    h->n++;
    return 0;
}

void *config_hash_del(config_hash *h, const void *key, size_t len)
{
    if (!h->nb)
        return NULL;
    config_hent **pp = hash_slot(h, key, len, config_hash_bytes(key, len));
    config_hent *e = *pp;
    if (!e)
        return NULL;
    void *val = e->val;
    *pp = e->next;
    free(e);
    h->n--;
    return val;
}

void config_hash_clear(config_hash *h)
{
    for (size_t i = 0; i < h->nb; i++) {
        config_hent *e = h->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(h->b);
    h->b = NULL;
    h->nb = h->n = 0;
}

bool config_hash_next(const config_hash *h, size_t *pos, config_hent **e)
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

void config_strs_clear(config_strs *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

int config_strs_push(config_strs *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    l->v[l->n++] = copy;
    return 0;
}

int config_strs_pushf(config_strs *l, const char *fmt, ...)
{
    char buf[CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return config_strs_push(l, buf);
}

static int strs_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void config_strs_sort_unique(config_strs *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof *l->v, strs_cmp);
    size_t j = 1;
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i], l->v[j - 1]) == 0)
            free(l->v[i]);
        else
            l->v[j++] = l->v[i];
    }
    l->n = j;
}

const char *config_quote(char *buf, size_t size, const char *s, size_t len, size_t max)
{
    size_t o = 0;
    bool cut = len > max;
    if (cut)
        len = max;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        }
    }
    if (cut && o + 4 <= size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}
