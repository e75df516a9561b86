/* docker_env.c -- the common start and end of the Docker suites: private dockerd, a
 * one-member etcd with a client, the build directory and a log directory (see docker_env.h). */
#include "docker_env.h"

#include "check.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* build/tests/docker/<suite> -> build */
static void find_build_dir(docker_env *env)
{
    char self[400];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(env->build_dir, sizeof env->build_dir, "%s", dirname(dirname(dirname(self))));
}

void docker_env_start(docker_env *env, const char *tag)
{
    find_build_dir(env);
    snprintf(env->tmpdir, sizeof env->tmpdir, "/tmp/%s.XXXXXX", tag);
    if (!mkdtemp(env->tmpdir))
        snprintf(env->tmpdir, sizeof env->tmpdir, "/tmp");
    snprintf(env->why, sizeof env->why, "dockerd harness not started");
    env->dockerd_rc = dockerd_harness_start(&env->dockerd, env->why, sizeof env->why);
    if (env->dockerd_rc != 0)
        printf("private dockerd unavailable (%d): %s\n", env->dockerd_rc, env->why);
    env->etcd_rc = etcdh_start(&env->etcd, 1);
    if (env->etcd_rc == 0 && !env->etcd.tls) {
        etcd_config cfg = {.endpoints = env->etcd.endpoints};
        if (etcd_client_new(&cfg, &env->client, NULL) < 0)
            env->etcd_rc = -EIO;
    }
}

void docker_env_bin(const docker_env *env, const char *binary, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", env->build_dir, binary);
}

bool docker_env_need(docker_env *env, const char *binary)
{
    if (!check_need(env->dockerd_rc, env->why) ||
        !check_need(env->etcd_rc, "etcd (etcd-server etcd-client)"))
        return false;
    char path[512];
    docker_env_bin(env, binary ? binary : "", path, sizeof path);
    if (binary && access(path, X_OK) != 0) {
        check_skip("%s not built", path);
        return false;
    }
    return true;
}

/* Remove the log directory (the one mkdtemp made; never the /tmp fallback). */
static void remove_tmpdir(const docker_env *env)
{
    if (strcmp(env->tmpdir, "/tmp") == 0 || !env->tmpdir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", env->tmpdir);
    if (system(cmd) != 0) {
        /* leave it */
    }
}

void docker_env_finish(docker_env *env)
{
    etcd_client_free(env->client);
    env->client = NULL;
    if (env->etcd.dir[0])
        etcdh_destroy(&env->etcd);
    dockerd_harness_free(env->dockerd);
    env->dockerd = NULL;
    if (env->keep_logs)
        printf("daemon logs kept in %s\n", env->tmpdir);
    else
        remove_tmpdir(env);
}
