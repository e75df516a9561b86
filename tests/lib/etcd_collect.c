/* etcd_collect.c -- poll a watch's eventfd, take batches, copy their events. */
#include "etcd_collect.h"
#include "common/timeutil.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static void add(etcd_collect *c, const etcd_event *e)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->ev = realloc(c->ev, c->cap * sizeof *c->ev);
    }
    coll_event *d = &c->ev[c->n++];
    d->type = e->type;
    d->key = dup_bytes(e->kv.key, e->kv.key_len);
    d->key_len = e->kv.key_len;
    d->value = dup_bytes(e->kv.value, e->kv.value_len);
    d->value_len = e->kv.value_len;
    d->mod_revision = e->kv.mod_revision;
}

size_t etcd_collect_until(etcd_watch *w, etcd_collect *c, size_t want, int timeout_ms)
{
    int64_t end = clock_now_ms() + timeout_ms;
    c->compact_revision = 0;
    while (c->n < want && c->compact_revision == 0) {
        int64_t left = end - clock_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = etcd_watch_fd(w), .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        etcd_watch_batch *b = NULL;
        if (etcd_watch_take(w, &b) <= 0)
            continue;
        for (size_t i = 0; i < b->n; i++)
            add(c, &b->events[i]);
        if (b->compact_revision)
            c->compact_revision = b->compact_revision;
        if (b->err.code)
            c->notices++;
        etcd_watch_batch_free(b);
    }
    return c->n;
}

void etcd_collect_free(etcd_collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ev[i].key);
        free(c->ev[i].value);
    }
    free(c->ev);
    memset(c, 0, sizeof *c);
}
