/* config_key.c -- keys relative to the prefix -> (kind, service, name); name rules; small
 * lookups (methods, sources, schedulers); the IPVS service keys of a frontend. No I/O. */
#include "config/config_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const char *const method_names[] = {"masq", "droute", "tunnel", "filter"};

void config_defaults_init(config_defaults *d)
{
    memset(d, 0, sizeof *d);
    strcpy(d->sched, "wlc");
    d->method = CONFIG_METHOD_MASQ;
}

int config_defaults_parse(config_defaults *d, const char *sched, const char *method,
                          config_error *err)
{
    enum config_method m;
    config_defaults_init(d);
    if (!method || config_parse_method(method, &m) < 0 || m == CONFIG_METHOD_FILTER) {
        snprintf(err->msg, sizeof err->msg, "--ipvs-fwd-method: \"%.64s\" is not masq, droute or tunnel",
                 method ? method : "");
        return -EINVAL;
    }
    if (!sched || !config_sched_valid(sched)) {
        snprintf(err->msg, sizeof err->msg,
                 "--ipvs-sched: \"%.64s\" is not a scheduler name (1-15 of a-z 0-9 _)", sched ? sched : "");
        return -EINVAL;
    }
    d->method = m;
    snprintf(d->sched, sizeof d->sched, "%s", sched);
    return 0;
}

int config_parse_method(const char *s, enum config_method *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcasecmp(s, method_names[i]) == 0) {
            *out = (enum config_method)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *config_method_name(enum config_method m)
{
    return (unsigned)m < 4 ? method_names[m] : "?";
}

const char *config_source_name(enum config_source s)
{
    switch (s) {
    case CONFIG_SOURCE_LOCAL: return "local";
    case CONFIG_SOURCE_ADVERTISED: return "advertised";
    case CONFIG_SOURCE_ETCD: return "etcd";
    default: return "?";
    }
}

bool config_sched_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n >= CONFIG_SCHED_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

bool config_name_valid(const char *s, size_t len)
{
    if (len < 1 || len > CONFIG_NAME_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* Split key into at most 5 segments at '/'. Returns the count, or -1 when there are more. */
static int split_key(const char *key, size_t len, const char *seg[5], size_t seglen[5])
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && key[i] != '/')
            continue;
        if (n == 5)
            return -1;
        seg[n] = key + start;
        seglen[n++] = i - start;
        start = i + 1;
    }
    return n;
}

static bool seg_is(const char *seg, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(seg, word, len) == 0;
}

static int key_unknown(const char *key, size_t len, config_error *err, const char *why)
{
    char q[300];
    snprintf(err->msg, sizeof err->msg, "%s: unknown key (%s), ignored",
             config_quote(q, sizeof q, key, len, 256), why);
    return -ENOENT;
}

static int key_name(const char *key, size_t len, config_error *err, const char *what,
                    const char *seg, size_t seglen, char *out)
{
    if (!config_name_valid(seg, seglen)) {
        char why[64];
        snprintf(why, sizeof why, "bad %s name: want 1..253 bytes of [A-Za-z0-9._:-]", what);
        return key_unknown(key, len, err, why);
    }
    memcpy(out, seg, seglen);
    out[seglen] = '\0';
    return 0;
}

int config_parse_key(const char *key, size_t len, config_key *out, config_error *err)
{
    const char *seg[5];
    size_t sl[5];
    if (!key)
        key = "", len = 0;
    const char *k = key;
    size_t klen = len;
    if (klen && k[0] == '/')
        k++, klen--;
    memset(out, 0, sizeof *out);
    int n = split_key(k, klen, seg, sl);
    if (n == 2 && seg_is(seg[0], sl[0], "routes")) {
        out->kind = CONFIG_ROUTE;
        return key_name(key, len, err, "route", seg[1], sl[1], out->name);
    }
    if (n < 3 || !seg_is(seg[0], sl[0], "services"))
        return key_unknown(key, len, err, "not services/... or routes/...");
    if (n == 3 && seg_is(seg[2], sl[2], "frontend"))
        out->kind = CONFIG_FRONTEND;
    else if (n == 4 && seg_is(seg[2], sl[2], "backends"))
        out->kind = CONFIG_BACKEND;
    else
        return key_unknown(key, len, err,
                           "want services/<service>/frontend or services/<service>/backends/<backend>");
    int r = key_name(key, len, err, "service", seg[1], sl[1], out->service);
    if (r == 0 && out->kind == CONFIG_BACKEND)
        r = key_name(key, len, err, "backend", seg[3], sl[3], out->name);
    return r;
}

static void svckey_set(config_svckey *k, int af, const uint8_t *addr, int proto, uint16_t port,
                       uint32_t fwmark)
{
    memset(k, 0, sizeof *k);
    k->af = (uint8_t)af;
    k->protocol = (uint8_t)proto;
    k->port = port;
    k->fwmark = fwmark;
    if (addr)
        memcpy(k->addr, addr, af == AF_INET ? 4 : 16);
}

int config_frontend_svckeys(const config_frontend *fe, config_svckey out[CONFIG_SVCKEYS_MAX])
{
    int n = 0;
    if (fe->fwmark) {
        if (fe->has_ipv4 || !fe->has_ipv6)
            svckey_set(&out[n++], AF_INET, NULL, 0, 0, fe->fwmark);
        if (fe->has_ipv6)
            svckey_set(&out[n++], AF_INET6, NULL, 0, 0, fe->fwmark);
        return n;
    }
    for (int f = 0; f < 2; f++) {
        if (!(f ? fe->has_ipv6 : fe->has_ipv4))
            continue;
        int af = f ? AF_INET6 : AF_INET;
        const uint8_t *a = f ? fe->ipv6 : fe->ipv4;
        if (fe->tcp)
            svckey_set(&out[n++], af, a, IPPROTO_TCP, fe->tcp, 0);
        if (fe->udp)
            svckey_set(&out[n++], af, a, IPPROTO_UDP, fe->udp, 0);
    }
    return n;
}
