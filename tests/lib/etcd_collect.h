/* etcd_collect.h -- test helper: gather a watch's events by polling its eventfd, the way a
 * daemon's epoll loop would, and keep copies for later comparison. */
#ifndef CLUSTERF_TEST_ETCD_COLLECT_H
#define CLUSTERF_TEST_ETCD_COLLECT_H

#include "etcd/etcd.h"

#include <pthread.h>

typedef struct coll_event {
    int type;          /* ETCD_EVENT_PUT / ETCD_EVENT_DELETE */
    char *key, *value; /* NUL-terminated copies */
    size_t key_len, value_len;
    int64_t mod_revision;
} coll_event;

typedef struct etcd_collect {
    coll_event *ev;
    size_t n, cap;
    int64_t compact_revision;  /* last compaction notice seen */
    int notices;               /* batches carrying an error notice */
} etcd_collect;

/* Poll the watch until at least want events were collected in total, a compaction notice
 * arrived, or timeout_ms passed. Returns the number of events collected so far. */
size_t etcd_collect_until(etcd_watch *w, etcd_collect *c, size_t want, int timeout_ms);

void etcd_collect_free(etcd_collect *c);

/* Poll until the last collected event has mod_revision >= rev (or timeout). True if reached. */
bool etcd_collect_to(etcd_watch *w, etcd_collect *c, int64_t rev, int timeout_ms);

/* Number of differences between two event lists (revision, type, key, value, order). */
size_t etcd_collect_diff(const etcd_collect *a, const etcd_collect *b);

/* A thread putting <prefix><n> = <n> for n = 0, 1, ... until stopped. A failed put is retried
 * (it may then be applied twice, at two revisions: the history, not the writer, is the truth). */
typedef struct etcd_writer {
    etcd_client *c;
    char prefix[32];
    volatile int stop;
    volatile int written;
    pthread_t th;
} etcd_writer;

void etcd_writer_start(etcd_writer *w, etcd_client *c, const char *prefix);
void etcd_writer_stop(etcd_writer *w);
/* Keys the writer had acknowledged that are missing from the collected events. */
size_t etcd_writer_missing(const etcd_writer *w, const etcd_collect *c);

#endif
