/* dockerd_harness.h -- a private dockerd for tests (wraps scripts/test-dockerd).
 *
 * dockerd_harness_start() starts dockerd in a fresh /tmp/cfd.XXXXXX with its own data and exec
 * roots, socket, containerd namespace and bridge (cfdN, 172.31.N.1/24), and imports the busybox
 * image h->image. Several test binaries may use it in sequence or at once (each gets its own N).
 * A crashed test's leftovers are swept by the next start. Needs root, docker.io, busybox-static. */
#ifndef CLUSTERF_TEST_DOCKERD_HARNESS_H
#define CLUSTERF_TEST_DOCKERD_HARNESS_H

#include <stddef.h>

typedef struct dockerd_harness {
    char dir[256];
    char host[300];               /* "unix://<dir>/docker.sock": pass to docker_client_new */
    char bridge[32];              /* the default bridge, e.g. "cfd240" */
    char bridge_addr4[32];        /* the host's address on it, e.g. "172.31.240.1" */
    char user_subnet4[64];        /* for `docker network create --subnet` */
    char user_subnet6[64];
    char user_bridge_prefix[32];  /* user networks: -o com.docker.network.bridge.name=<this>K */
    char image[64];               /* "clusterf-busybox:test" */
    char script[512];
} dockerd_harness;

/* Start one. Returns 0 and *out; -ENOTSUP when a prerequisite is missing (why says which:
 * pass it to check_skip); another -errno on failure (why says what). */
int dockerd_harness_start(dockerd_harness **out, char *why, size_t why_size);

/* Stop dockerd (its containers die); data, image and bridge stay. Returns 0 or -EIO. */
int dockerd_harness_stop(dockerd_harness *h);

/* Start the stopped dockerd again on the same data. Returns 0 or -EIO. */
int dockerd_harness_restart(dockerd_harness *h);

/* Run `docker -H <host> <args>` (args through sh -c, printf-style); stdout, trimmed, into out
 * (if non-NULL). Returns the exit status (0 = success) or -errno. */
int dockerd_harness_docker(dockerd_harness *h, char *out, size_t out_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Remove containers and networks, stop dockerd, delete the bridges and the directory. */
void dockerd_harness_free(dockerd_harness *h);

#endif
