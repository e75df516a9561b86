/* etcd_flags.h -- the etcd flags all three programs take (endpoints, prefix, TLS, user and
 * password file), so each main declares them once, the same way. */
#ifndef CLUSTERF_ETCD_FLAGS_H
#define CLUSTERF_ETCD_FLAGS_H

#include "common/flags.h"
#include "etcd/etcd.h"

#define CLUSTERF_VERSION "0.1.0"

typedef struct etcd_flag_values {
    const char *endpoints;     /* --etcd-endpoints, default http://127.0.0.1:2379 */
    const char *prefix;        /* --etcd-prefix, default /clusterf */
    const char *cacert, *cert, *key;
    const char *user;
    const char *password_file; /* else CLUSTERF_ETCD_PASSWORD */
    int64_t timeout_ms;        /* --etcd-timeout, default 5s */
    char password[256];        /* filled by etcd_flags_config */
} etcd_flag_values;

#define ETCD_FLAGS_COUNT 8

/* Set the defaults in v and write ETCD_FLAGS_COUNT flag_defs pointing into v to out. */
void etcd_flags_defs(etcd_flag_values *v, flag_def out[ETCD_FLAGS_COUNT]);

/* After flags_parse: check the prefix ("/name", no trailing '/'), read the password (from
 * --etcd-password-file or CLUSTERF_ETCD_PASSWORD; required with --etcd-user) and fill cfg
 * (pointing into v). Returns 0 or -EINVAL with a message naming the flag in err. */
int etcd_flags_config(etcd_flag_values *v, etcd_config *cfg, char *err, size_t errlen);

#endif
