/* ipvs_sysctl.c -- the IPVS sysctls that make a graceful removal work well (clusterf-ipvs
 * --ipvs-sysctls), written under /proc/sys/net/ipv4/vs/ of the caller's network namespace.
 * Nothing else in clusterf writes a sysctl. */
#include "ipvs/ipvs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct ipvs_sysctl sysctls[] = {
    /* Connections to a deleted dest are expired at once (the client gets a reset and
     * reconnects) instead of having their packets dropped until they time out. */
    {"expire_nodest_conn", "1"},
    /* Persistence templates pointing at a weight-0 (draining) dest expire, so a persistent
     * client's next connection goes to a dest that takes new connections. */
    {"expire_quiescent_template", "1"},
    /* A new connection reusing the port of an old one to a draining dest is scheduled anew
     * (the default of kernels >= 5.9, which no longer delay such a connection by a second). */
    {"conn_reuse_mode", "1"},
};

const struct ipvs_sysctl *ipvs_sysctls(size_t *n)
{
    *n = sizeof sysctls / sizeof sysctls[0];
    return sysctls;
}

int ipvs_sysctl_write(const struct ipvs_sysctl *s, struct ipvs_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/net/ipv4/vs/%s", s->name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0) {
        n = write(fd, s->value, strlen(s->value));
        if (n < 0)
            n = -errno;
        close(fd);
    }
    int rc = fd < 0 ? -errno : n < 0 ? (int)n : 0;
    if (rc < 0) {
        err->code = rc;
        snprintf(err->msg, sizeof err->msg, "%s: %s", path,
                 rc == -ENOENT ? IPVS_ABSENT_MSG : strerror(-rc));
    }
    return rc;
}
