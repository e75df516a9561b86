/* ctl_register.c -- `clusterfctl register`: a non-Docker backend put into etcd under a lease,
 * kept alive until SIGINT/SIGTERM and then revoked, so the key goes at once on a clean exit and
 * within the TTL when the process or its host dies. A lost lease is re-granted and the key
 * re-put, with backoff while etcd is away. Progress is logged (logfmt, stderr). */
#include "ctl/ctl_int.h"

#include "common/log.h"
#include "common/timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* Check one address flag; 0 or -EINVAL with a message. */
static int check_addr(const char *flag, const char *s, int af, char *err, size_t errlen)
{
    unsigned char buf[16];
    if (!s || inet_pton(af, s, buf) == 1)
        return 0;
    snprintf(err, errlen, "--%s: \"%s\" is not an %s address", flag, s,
             af == AF_INET ? "IPv4" : "IPv6");
    return -EINVAL;
}

/* Check the names, addresses and numbers one by one, so the message names the argument. */
static int check_args(const ctl_register_args *a, char *err, size_t errlen)
{
    const char *names[2] = {a->service, a->backend}, *what[2] = {"SERVICE", "BACKEND"};
    for (int i = 0; i < 2; i++)
        if (!names[i] || !config_name_valid(names[i], strlen(names[i]))) {
            snprintf(err, errlen, "%s: \"%s\" is not a valid name (1-253 bytes of "
                     "A-Z a-z 0-9 . _ : -)", what[i], names[i] ? names[i] : "");
            return -EINVAL;
        }
    if (!a->ipv4 && !a->ipv6) {
        snprintf(err, errlen, "--ipv4 or --ipv6 is required");
        return -EINVAL;
    }
    if (check_addr("ipv4", a->ipv4, AF_INET, err, errlen) < 0 ||
        check_addr("ipv6", a->ipv6, AF_INET6, err, errlen) < 0)
        return -EINVAL;
    const long nums[3] = {a->tcp, a->udp, a->weight}, lo[3] = {1, 1, 0};
    const char *flags[3] = {"tcp", "udp", "weight"};
    for (int i = 0; i < 3; i++)
        if (nums[i] != -1 && (nums[i] < lo[i] || nums[i] > 65535)) {
            snprintf(err, errlen, "--%s: %ld is out of range %ld..65535", flags[i], nums[i], lo[i]);
            return -EINVAL;
        }
    return 0;
}

int ctl_backend_json(const ctl_register_args *a, const config_defaults *defs, char *out,
                     size_t size, char *err, size_t errlen)
{
    if (check_args(a, err, errlen) < 0)
        return -EINVAL;
    struct json_object *j = json_object_new_object();
    if (a->ipv4)
        json_object_object_add(j, "ipv4", json_object_new_string(a->ipv4));
    if (a->ipv6)
        json_object_object_add(j, "ipv6", json_object_new_string(a->ipv6));
    const long nums[3] = {a->tcp, a->udp, a->weight};
    const char *fields[3] = {"tcp", "udp", "weight"};
    for (int i = 0; i < 3; i++)
        if (nums[i] != -1)
            json_object_object_add(j, fields[i], json_object_new_int64(nums[i]));
    snprintf(out, size, "%s", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
    char key[600];
    snprintf(key, sizeof key, "services/%s/backends/%s", a->service, a->backend);
    config_key k;
    config_value v;
    config_error e;
    if (config_parse_key(key, strlen(key), &k, &e) < 0 ||
        config_parse_value(&k, out, strlen(out), defs, &v, NULL, &e) < 0) {
        snprintf(err, errlen, "backend JSON: %s", e.msg);
        return -EINVAL;
    }
    return 0;
}

struct reg {
    const ctl_options *o;
    etcd_client *etcd;
    etcd_lease *lease;
    char key[800];
    char json[512];
};

static int put_key(struct reg *r, etcd_error *err)
{
    return etcd_put(r->etcd, r->key, strlen(r->key), r->json, strlen(r->json),
                    etcd_lease_id(r->lease), NULL, err);
}

/* Re-grant a lost lease (when *regrant) and re-put the key (when *put), clearing each flag
 * as its step succeeds. 0 or -errno (logged). */
static int renew(struct reg *r, bool *regrant, bool *put)
{
    etcd_error err = {0};
    int rc = 0;
    if (*regrant && (rc = etcd_lease_regrant(r->lease, &err)) == 0)
        *regrant = false;
    if (rc == 0 && *put && (rc = put_key(r, &err)) == 0)
        *put = false;
    if (rc < 0) {
        log_warn("msg=\"cannot register the backend again yet; retrying\" key=%s code=%s "
                 "endpoint=%s error=\"%s\"", r->key, etcd_code_name(err.code),
                 err.endpoint[0] ? err.endpoint : "-", err.msg);
        return rc;
    }
    log_info("msg=\"backend registered again\" key=%s lease=%llx", r->key,
             (unsigned long long)etcd_lease_id(r->lease));
    return 0;
}

/* Wait for SIGINT/SIGTERM on sig_fd, keeping the key in etcd meanwhile. 0 or -errno. */
static int keep_alive(struct reg *r, int sig_fd)
{
    backoff bo;
    backoff_init(&bo, 200, 5000);
    bool regrant = false, put = false;
    for (;;) {
        struct pollfd p[2] = {{sig_fd, POLLIN, 0}, {etcd_lease_fd(r->lease), POLLIN, 0}};
        int n = poll(p, 2, regrant || put ? (int)backoff_next(&bo) : -1);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && (p[0].revents & POLLIN))
            return 0;
        if (n > 0 && (p[1].revents & POLLIN) && etcd_lease_lost(r->lease)) {
            etcd_error why = {0};
            etcd_lease_loss(r->lease, &why);
            log_warn("msg=\"lease lost; granting a new one\" key=%s code=%s reason=\"%s\"",
                     r->key, etcd_code_name(why.code), why.msg);
            regrant = put = true;
            backoff_reset(&bo);
        }
        if ((regrant || put) && renew(r, &regrant, &put) == 0)
            backoff_reset(&bo);
    }
}

/* The lease was granted but the key could not be put: revoke it rather than leave it on the
 * server until its TTL runs out (best effort: a failure is logged). */
static void revoke_unused(struct reg *r)
{
    etcd_error err = {0};
    if (etcd_lease_revoke(r->lease, &err) < 0)
        log_warn("msg=\"cannot revoke the unused lease; it expires with its TTL\" lease=%llx "
                 "error=\"%s\"", (unsigned long long)etcd_lease_id(r->lease), err.msg);
    else
        log_info("msg=\"unused lease revoked\" lease=%llx",
                 (unsigned long long)etcd_lease_id(r->lease));
}

/* Grant the lease and put the key; a granted lease whose put failed is revoked. 0 or -errno
 * (printed). */
static int start(struct reg *r, int64_t ttl_s)
{
    etcd_error err = {0};
    int rc = etcd_client_new(&r->o->etcd, &r->etcd, &err);
    if (rc == 0)
        rc = etcd_lease_new(r->etcd, ttl_s, &r->lease, &err);
    if (rc == 0 && (rc = put_key(r, &err)) < 0)
        revoke_unused(r);
    if (rc < 0)
        fprintf(r->o->err, "clusterfctl: register: cannot put %s via %s: %s: %s\n", r->key,
                err.endpoint[0] ? err.endpoint
                                : (r->o->etcd.endpoints ? r->o->etcd.endpoints
                                                        : "http://127.0.0.1:2379"),
                etcd_code_name(err.code), err.msg[0] ? err.msg : strerror(-rc));
    return rc;
}

/* Block SIGINT and SIGTERM and return a signalfd for them, or -errno. */
static int signals_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ctl_register(const ctl_options *o, const ctl_register_args *a)
{
    struct reg r = {.o = o};
    char err[1200];
    if (ctl_backend_json(a, &o->config.defaults, r.json, sizeof r.json, err, sizeof err) < 0) {
        fprintf(o->err, "clusterfctl: register: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    if (a->ttl_ms < 1000) {
        fprintf(o->err, "clusterfctl: register: --ttl: must be at least 1s\n");
        return CTL_EXIT_USAGE;
    }
    snprintf(r.key, sizeof r.key, "%s/services/%s/backends/%s", o->prefix, a->service, a->backend);
    int status = CTL_EXIT_USAGE;
    int sig_fd = signals_fd();
    if (sig_fd < 0 || start(&r, (a->ttl_ms + 999) / 1000) < 0)
        goto out;
    char q[1100];
    log_info("msg=\"backend registered\" key=%s value=%s lease=%llx ttl=%lld", r.key,
             log_quote(q, sizeof q, r.json), (unsigned long long)etcd_lease_id(r.lease),
             (long long)etcd_lease_ttl(r.lease));
    int rc = keep_alive(&r, sig_fd);
    if (rc < 0)
        log_error("msg=\"waiting for a signal failed; removing the backend\" key=%s "
                  "error=\"%s\"", r.key, strerror(-rc));
    etcd_error eerr = {0};
    status = rc < 0 ? CTL_EXIT_PROBLEM : CTL_EXIT_OK;
    if (etcd_lease_revoke(r.lease, &eerr) < 0) {
        log_error("msg=\"cannot revoke the lease; the key expires with its TTL\" key=%s "
                  "error=\"%s\"", r.key, eerr.msg);
        status = CTL_EXIT_PROBLEM;
    } else {
        log_info("msg=\"lease revoked; backend removed\" key=%s", r.key);
    }
out:
    etcd_lease_free(r.lease);
    etcd_client_free(r.etcd);
    if (sig_fd >= 0)
        close(sig_fd);
    return status;
}
