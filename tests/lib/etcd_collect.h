/* etcd_collect.h -- test helper: gather a watch's events by polling its eventfd, the way a
 * daemon's epoll loop would, and keep copies for later comparison. */
#ifndef CLUSTERF_TEST_ETCD_COLLECT_H
#define CLUSTERF_TEST_ETCD_COLLECT_H

#include "etcd/etcd.h"

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

#endif
