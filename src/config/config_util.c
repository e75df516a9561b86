/* config_util.c -- the small helpers of config/: string lists and quoting of untrusted bytes
 * for messages. No I/O. (The hash table is common/bytemap.) */
#include "config/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
