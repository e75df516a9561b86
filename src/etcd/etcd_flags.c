/* etcd_flags.c -- the shared etcd flag table and its translation into an etcd_config. */
#include "etcd/etcd_flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void etcd_flags_defs(etcd_flag_values *v, flag_def out[ETCD_FLAGS_COUNT])
{
    memset(v, 0, sizeof *v);
    v->endpoints = "http://127.0.0.1:2379";
    v->prefix = "/clusterf";
    v->timeout_ms = 5000;
    const flag_def defs[ETCD_FLAGS_COUNT] = {
        {"etcd-endpoints", FLAG_STRING, &v->endpoints, "URLS", "comma-separated http:// or https:// etcd URLs", 0, 0},
        {"etcd-prefix", FLAG_STRING, &v->prefix, "PATH", "key prefix of the clusterf config", 0, 0},
        {"etcd-cacert", FLAG_STRING, &v->cacert, "FILE", "CA bundle (PEM) for https:// endpoints", 0, 0},
        {"etcd-cert", FLAG_STRING, &v->cert, "FILE", "client certificate (PEM) for etcd", 0, 0},
        {"etcd-key", FLAG_STRING, &v->key, "FILE", "client key (PEM) for etcd", 0, 0},
        {"etcd-user", FLAG_STRING, &v->user, "NAME", "etcd user (password from --etcd-password-file or CLUSTERF_ETCD_PASSWORD)", 0, 0},
        {"etcd-password-file", FLAG_STRING, &v->password_file, "FILE", "file holding the etcd password", 0, 0},
        {"etcd-timeout", FLAG_DURATION, &v->timeout_ms, "DURATION", "deadline of each etcd request", 0, 0},
    };
    memcpy(out, defs, sizeof defs);
}

/* Read the first line of path into buf. 0 or -errno. */
static int read_password_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    if (!fgets(buf, (int)size, f))
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int etcd_flags_config(etcd_flag_values *v, etcd_config *cfg, char *err, size_t errlen)
{
    size_t plen = strlen(v->prefix);
    if (plen < 2 || v->prefix[0] != '/' || v->prefix[plen - 1] == '/' || plen > 256) {
        snprintf(err, errlen, "-etcd-prefix: \"%s\" must look like /clusterf (leading '/', no trailing '/')",
                 v->prefix);
        return -EINVAL;
    }
    const char *env = getenv("CLUSTERF_ETCD_PASSWORD");
    if (v->password_file) {
        int rc = read_password_file(v->password_file, v->password, sizeof v->password);
        if (rc < 0) {
            snprintf(err, errlen, "-etcd-password-file: %s: %s", v->password_file, strerror(-rc));
            return -EINVAL;
        }
    } else if (env) {
        snprintf(v->password, sizeof v->password, "%s", env);
    }
    if (v->user && !v->password[0]) {
        snprintf(err, errlen, "-etcd-user: needs a password (--etcd-password-file or CLUSTERF_ETCD_PASSWORD)");
        return -EINVAL;
    }
    if ((v->cert != NULL) != (v->key != NULL)) {
        snprintf(err, errlen, "%s: needs %s too", v->cert ? "-etcd-cert" : "-etcd-key",
                 v->cert ? "-etcd-key" : "-etcd-cert");
        return -EINVAL;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->endpoints = v->endpoints;
    cfg->ca_file = v->cacert;
    cfg->cert_file = v->cert;
    cfg->key_file = v->key;
    cfg->username = v->user;
    cfg->password = v->user ? v->password : NULL;
    cfg->timeout_ms = v->timeout_ms;
    return 0;
}
