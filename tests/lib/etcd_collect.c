/* etcd_collect.c -- poll a watch's eventfd, take batches, copy their events. */
#include "etcd_collect.h"
#include "common/timeutil.h"

#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

bool etcd_collect_to(etcd_watch *w, etcd_collect *c, int64_t rev, int timeout_ms)
{
    int64_t end = clock_now_ms() + timeout_ms;
    while (c->n == 0 || c->ev[c->n - 1].mod_revision < rev) {
        int64_t left = end - clock_now_ms();
        if (left <= 0)
            return false;
        etcd_collect_until(w, c, c->n + 1, left < 500 ? (int)left : 500);
    }
    return true;
}

size_t etcd_collect_diff(const etcd_collect *a, const etcd_collect *b)
{
    size_t bad = a->n > b->n ? a->n - b->n : b->n - a->n;
    for (size_t i = 0; i < a->n && i < b->n; i++)
        if (a->ev[i].mod_revision != b->ev[i].mod_revision || a->ev[i].type != b->ev[i].type ||
            strcmp(a->ev[i].key, b->ev[i].key) || strcmp(a->ev[i].value, b->ev[i].value))
            bad++;
    return bad;
}

static void *writer_loop(void *arg)
{
    etcd_writer *w = arg;
    while (!w->stop) {
        char k[64], v[16];
        int kl = snprintf(k, sizeof k, "%s%05d", w->prefix, w->written);
        int vl = snprintf(v, sizeof v, "%d", w->written);
        etcd_error err = {0};
        if (etcd_put(w->c, k, kl, v, vl, 0, NULL, &err) == 0)
            w->written++;
        else
            usleep(20 * 1000);
        usleep(2 * 1000);
    }
    return NULL;
}

void etcd_writer_start(etcd_writer *w, etcd_client *c, const char *prefix)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    pthread_create(&w->th, NULL, writer_loop, w);
}

void etcd_writer_stop(etcd_writer *w)
{
    w->stop = 1;
    pthread_join(w->th, NULL);
}

size_t etcd_writer_missing(const etcd_writer *w, const etcd_collect *c)
{
    size_t missing = 0, j = 0;
    for (int i = 0; i < w->written; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%05d", w->prefix, i);
        while (j < c->n && strcmp(c->ev[j].key, k) != 0)
            j++;
        if (j == c->n) {
            missing++;
            j = 0;
        }
    }
    return missing;
}
