/* docker_env.h -- the setting every Docker suite starts from: a private dockerd
 * (dockerd_harness), a one-member real etcd (etcd_harness) with a client of ours, the build
 * directory of the binaries under test, and a temporary directory for the daemons' logs
 * (removed at the end unless a test asked to keep it). Missing prerequisites are a skip
 * (check_need), as each harness says. */
#ifndef CLUSTERF_TEST_DOCKER_ENV_H
#define CLUSTERF_TEST_DOCKER_ENV_H

#include "dockerd_harness.h"
#include "etcd/etcd.h"
#include "etcd_harness.h"

#include <stdbool.h>

typedef struct docker_env {
    dockerd_harness *dockerd;  /* NULL when it did not start */
    int dockerd_rc;            /* dockerd_harness_start(): 0, -ENOTSUP (a skip), else a failure */
    char why[512];             /* why dockerd is not there */
    etcdh etcd;                /* tls, client_cert_auth, extra_args are read by docker_env_start */
    int etcd_rc;               /* etcdh_start(): 0, -ENOENT (a skip), else a failure */
    etcd_client *client;       /* to the etcd; NULL with TLS (the suite makes its own) */
    char build_dir[400];       /* build/, where the binaries under test are */
    char tmpdir[64];           /* the daemons' logs */
    bool keep_logs;            /* set by a test that failed: tmpdir stays, and is named */
} docker_env;

/* Start dockerd and etcd (and the client), find the build directory from /proc/self/exe
 * (build/tests/docker/<suite>) and make tmpdir as /tmp/<tag>.XXXXXX. Failures are recorded in
 * the *_rc fields for docker_env_need. */
void docker_env_start(docker_env *env, const char *tag);

/* In a test: true when dockerd, etcd and build_dir/binary (NULL: none) are there; otherwise a
 * skip (not installed) or a failure (installed, did not start) is recorded. */
bool docker_env_need(docker_env *env, const char *binary);

/* path = build_dir/binary. */
void docker_env_bin(const docker_env *env, const char *binary, char *path, size_t size);

/* Free the client, etcd and dockerd; remove tmpdir unless keep_logs (then print where). */
void docker_env_finish(docker_env *env);

#endif
