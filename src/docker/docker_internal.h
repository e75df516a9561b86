/* docker_internal.h -- helpers shared by the files of the docker module; not part of its API. */
#ifndef CLUSTERF_DOCKER_INTERNAL_H
#define CLUSTERF_DOCKER_INTERNAL_H

#include "docker/docker.h"

/* Fill *err (if non-NULL) with code and a printf-style message; returns code. */
int docker_err_set(docker_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* curl_global_init() once per process. Returns 0 or -ENOMEM. */
int docker_curl_init(void);

/* Translate a curl result into -errno + "what: curl's message" in *err; returns the code. */
int docker_curl_error(int curl_code, const char *what, docker_error *err);

/* "<base>/<api version><path_query>" into *url (malloc'd). Returns 0 or -ENOMEM. */
int docker_client_url(const docker_client *c, const char *path_query, char **url);

/* The unix socket path of the client, or NULL for tcp://. */
const char *docker_client_socket(const docker_client *c);

#endif
