/* dockerd_harness.c -- start/stop/clean a private dockerd for tests via scripts/test-dockerd. */
#include "dockerd_harness.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Find scripts/test-dockerd: $CLUSTERF_REPO, the current directory, or the repo holding the
 * test binary (<repo>/<build>/tests/<suite>/<binary>). */
static int find_script(char *buf, size_t size)
{
    const char *repo = getenv("CLUSTERF_REPO");
    char exe[PATH_MAX];
    if (repo && *repo) {
        snprintf(buf, size, "%s/scripts/test-dockerd", repo);
        return access(buf, X_OK) == 0 ? 0 : -ENOENT;
    }
    snprintf(buf, size, "scripts/test-dockerd");
    if (access(buf, X_OK) == 0)
        return 0;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -ENOENT;
    exe[n] = '\0';
    char *d = exe;
    for (int i = 0; i < 4; i++)
        d = dirname(d);
    snprintf(buf, size, "%s/scripts/test-dockerd", d);
    return access(buf, X_OK) == 0 ? 0 : -ENOENT;
}

/* Run a shell command; its stdout into out (trimmed). Returns the exit status or -errno. */
static int run(char *out, size_t out_size, const char *cmd)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("CFD_OWNER", pid, 1);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -errno;
    size_t len = 0;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0) {
        if (out && len + 1 < out_size) {
            size_t k = n < out_size - 1 - len ? n : out_size - 1 - len;
            memcpy(out + len, tmp, k);
            len += k;
        }
    }
    if (out && out_size) {
        while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
            len--;
        out[len] = '\0';
    }
    int st = pclose(p);
    if (st < 0)
        return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Copy the value of "KEY=value" lines of env into dst. */
static void env_get(const char *env, const char *key, char *dst, size_t size)
{
    size_t kl = strlen(key);
    for (const char *p = env; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = strcspn(p + kl + 1, "\n");
            snprintf(dst, size, "%.*s", (int)vl, p + kl + 1);
            return;
        }
    }
    dst[0] = '\0';
}

static int start_in(dockerd_harness *h, char *why, size_t why_size)
{
    char cmd[2048], env[4096];
    snprintf(cmd, sizeof(cmd), "'%s' start '%s' 2>%s/start.err", h->script, h->dir, h->dir);
    int st = run(env, sizeof(env), cmd);
    if (st != 0) {
        char err[512] = "";
        snprintf(cmd, sizeof(cmd), "tail -n 3 %s/start.err", h->dir);
        run(err, sizeof(err), cmd);
        snprintf(why, why_size, "private dockerd: %s", err[0] ? err : "test-dockerd failed");
        return st == 77 ? -ENOTSUP : -EIO;
    }
    env_get(env, "DOCKER_HOST", h->host, sizeof(h->host));
    env_get(env, "CFD_BRIDGE", h->bridge, sizeof(h->bridge));
    env_get(env, "CFD_BRIDGE_ADDR4", h->bridge_addr4, sizeof(h->bridge_addr4));
    env_get(env, "CFD_USER_SUBNET4", h->user_subnet4, sizeof(h->user_subnet4));
    env_get(env, "CFD_USER_SUBNET6", h->user_subnet6, sizeof(h->user_subnet6));
    env_get(env, "CFD_USER_BRIDGE_PREFIX", h->user_bridge_prefix, sizeof(h->user_bridge_prefix));
    env_get(env, "CFD_IMAGE", h->image, sizeof(h->image));
    if (!h->host[0] || !h->image[0]) {
        snprintf(why, why_size, "private dockerd: test-dockerd printed no DOCKER_HOST");
        return -EIO;
    }
    return 0;
}

int dockerd_harness_start(dockerd_harness **out, char *why, size_t why_size)
{
    dockerd_harness *h = calloc(1, sizeof(*h));
    *out = NULL;
    if (!h) {
        snprintf(why, why_size, "out of memory");
        return -ENOMEM;
    }
    if (find_script(h->script, sizeof(h->script)) != 0) {
        snprintf(why, why_size, "scripts/test-dockerd not found (run from the repo root)");
        free(h);
        return -ENOTSUP;
    }
    snprintf(h->dir, sizeof(h->dir), "/tmp/cfd.XXXXXX");
    if (!mkdtemp(h->dir)) {
        snprintf(why, why_size, "mkdtemp: %s", strerror(errno));
        free(h);
        return -errno;
    }
    int r = start_in(h, why, why_size);
    if (r < 0) {
        dockerd_harness_free(h);
        return r;
    }
    *out = h;
    return 0;
}

int dockerd_harness_stop(dockerd_harness *h)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' stop '%s' >&2", h->script, h->dir);
    return run(NULL, 0, cmd) == 0 ? 0 : -EIO;
}

int dockerd_harness_restart(dockerd_harness *h)
{
    char why[512];
    return start_in(h, why, sizeof(why)) == 0 ? 0 : -EIO;
}

int dockerd_harness_docker(dockerd_harness *h, char *out, size_t out_size, const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(args))
        return -E2BIG;
    snprintf(cmd, sizeof(cmd), "docker -H '%s' %s", h->host, args);
    return run(out, out_size, cmd);
}

void dockerd_harness_free(dockerd_harness *h)
{
    char cmd[2048];
    if (!h)
        return;
    snprintf(cmd, sizeof(cmd), "'%s' cleanup '%s' >&2", h->script, h->dir);
    run(NULL, 0, cmd);
    free(h);
}
