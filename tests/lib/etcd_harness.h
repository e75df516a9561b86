/* etcd_harness.h -- run real etcd servers for tests: one member or a 3-member cluster on free
 * loopback ports, data under a temporary directory (in /dev/shm when it exists), optional TLS
 * with certificates made by openssl, stop / kill -9 / restart on the same data dir, etcdctl. */
#ifndef CLUSTERF_TEST_ETCD_HARNESS_H
#define CLUSTERF_TEST_ETCD_HARNESS_H

#include "etcd/etcd.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ETCDH_MAX 3

typedef struct etcdh_member {
    char name[16];
    int client_port, peer_port;
    char client_url[64], peer_url[64];
    pid_t pid;
} etcdh_member;

typedef struct etcdh {
    char dir[128];          /* temp root: data dirs, logs, certs */
    int n;
    etcdh_member m[ETCDH_MAX];
    bool tls;               /* https client URLs with dir/server.crt signed by dir/ca.crt */
    bool client_cert_auth;  /* members demand a client cert signed by the CA */
    char extra_args[256];   /* more etcd flags, space separated (e.g. --auth-token-ttl=2) */
    char endpoints[256];    /* every member's client URL, comma separated */
    char ca[160], cert[160], key[160], wrong_ca[160];  /* PEM files when tls */
} etcdh;

/* True when the etcd and etcdctl binaries are installed ($CLUSTERF_TEST_ETCD names another
 * etcd binary, for tests of the harness itself). */
bool etcdh_available(void);

/* Start n (1 or 3) members and wait until they have a leader. The struct's tls,
 * client_cert_auth and extra_args are read; the rest is filled. Returns 0; -ENOENT when etcd
 * is not installed (a skip for check_need); -EIO when it is but did not start (a failure;
 * message on stderr). On failure everything started is cleaned up. */
int etcdh_start(etcdh *h, int n);

/* Stop member i with sig (SIGTERM or SIGKILL) and reap it. */
void etcdh_stop_member(etcdh *h, int i, int sig);

/* Restart member i on its existing data dir; waits for it to serve (with a leader) when wait. */
int etcdh_restart_member(etcdh *h, int i, bool wait);

/* Index of the member that reports itself leader (asked of each running member; a stopped
 * one costs a 3 s timeout), or -1. */
int etcdh_leader(const etcdh *h);

/* The lease of key read through c (0: none), -1 when the key is absent or unreadable. */
int64_t etcdh_key_lease(etcd_client *c, const char *key);

/* Index of the member whose client URL is url, or -1. */
int etcdh_member_of(const etcdh *h, const char *url);

/* Run etcdctl against every member (TLS flags added) with the given arguments (a shell
 * fragment); output goes to dir/etcdctl.log. Returns its exit status. */
int etcdh_ctl(etcdh *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Kill every member and remove the temp dir. */
void etcdh_destroy(etcdh *h);

#endif
