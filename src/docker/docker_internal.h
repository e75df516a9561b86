/* docker_internal.h -- helpers shared by the files of the docker module; not part of its API. */
#ifndef CLUSTERF_DOCKER_INTERNAL_H
#define CLUSTERF_DOCKER_INTERNAL_H

#include "docker/docker.h"

/* Fill *err (if non-NULL) with code and a printf-style message; returns code. */
int docker_err_set(docker_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
