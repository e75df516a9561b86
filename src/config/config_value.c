/* config_value.c -- JSON values (json-c) -> frontend, backend and route structs, with every
 * rule of SPEC §2 checked and each error naming the key, the field and what is wrong; and
 * the reverse, a value rendered as canonical JSON. No I/O. */
#include "config/config_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/ip_vs.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Not in every ip_vs.h: the kernel's ip_vs_mh.c reuses SCHED1/SCHED2 for its flags. */
#ifndef IP_VS_SVC_F_SCHED_MH_FALLBACK
#define IP_VS_SVC_F_SCHED_MH_FALLBACK IP_VS_SVC_F_SCHED1
#endif
#ifndef IP_VS_SVC_F_SCHED_MH_PORT
#define IP_VS_SVC_F_SCHED_MH_PORT IP_VS_SVC_F_SCHED2
#endif

#define VALUE_DEPTH 4       /* object > array > (nothing deeper is ever valid) */
#define FIELD_STR_MAX 256   /* longest string a field may hold */

/* Everything one parse needs to report errors and warnings. */
typedef struct vctx {
    char key[2 * CONFIG_NAME_MAX + 32];
    config_error *err;
    config_strs *warnings;
    const config_defaults *defaults;
} vctx;

static int verr(vctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write "<key>: <field>: <message>" (or "<key>: <message>") into the error; -EINVAL. */
static int verr(vctx *c, const char *field, const char *fmt, ...)
{
    char *m = c->err->msg;
    size_t size = sizeof c->err->msg;
    int n = snprintf(m, size, "%s: ", c->key);
    if (field && n >= 0 && (size_t)n < size)
        n += snprintf(m + n, size - (size_t)n, "%s: ", field);
    if (n >= 0 && (size_t)n < size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m + n, size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* "a string \"10\"", "null", "1.5", "an array", ... for messages. */
static const char *describe(json_object *o, char *buf, size_t size)
{
    char q[80];
    switch (json_object_get_type(o)) {
    case json_type_null: return "null";
    case json_type_boolean: return json_object_get_boolean(o) ? "true" : "false";
    case json_type_double: snprintf(buf, size, "%.17g", json_object_get_double(o)); return buf;
    case json_type_int: snprintf(buf, size, "the integer %s", json_object_to_json_string(o)); return buf;
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string:
        snprintf(buf, size, "a string \"%s\"", config_quote(q, sizeof q, json_object_get_string(o),
                 (size_t)json_object_get_string_len(o), 40));
        return buf;
    }
    return "?";
}

/* ---- raw text checks ---- */

/* Length of the valid UTF-8 prefix of s (strict: no overlongs, surrogates, > U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
                   (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || i + n > len || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
            return i;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        if ((n == 3 && c == 0xe0 && s[i + 1] < 0xa0) || (n == 3 && c == 0xed && s[i + 1] >= 0xa0) ||
            (n == 4 && c == 0xf0 && s[i + 1] < 0x90) || (n == 4 && c == 0xf4 && s[i + 1] >= 0x90))
            return i;
        i += n;
    }
    return i;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Offset of the first raw control byte inside a JSON string (JSON wants it escaped; json-c
 * lets it through), or len. */
static size_t raw_control_in_string(const char *s, size_t len)
{
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_str && c < 0x20)
            return i;
        if (esc)
            esc = false;
        else if (in_str && c == '\\')
            esc = true;
        else if (c == '"')
            in_str = !in_str;
    }
    return len;
}

/* True when o holds NaN or an infinity anywhere (json-c accepts them; JSON has none). */
static bool has_nonfinite(json_object *o, int depth)
{
    if (depth > VALUE_DEPTH)
        return false;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return !isfinite(json_object_get_double(o));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (has_nonfinite(json_object_array_get_idx(o, i), depth + 1))
                return true;
        return false;
    case json_type_object: {
        json_object_object_foreach(o, k, v) {
            (void)k;
            if (has_nonfinite(v, depth + 1))
                return true;
        }
        return false;
    }
    default:
        return false;
    }
}

/* Size, NUL, UTF-8, "\u0000", object-ness: everything checked before json-c sees the text. */
static int check_text(vctx *c, const char *val, size_t len)
{
    if (len > CONFIG_VALUE_MAX)
        return verr(c, NULL, "value is %zu bytes, more than the %d allowed", len, CONFIG_VALUE_MAX);
    const char *nul = memchr(val, 0, len);
    if (nul)
        return verr(c, NULL, "value has a NUL byte at offset %zu", (size_t)(nul - val));
    size_t ok = utf8_valid_len((const unsigned char *)val, len);
    if (ok < len)
        return verr(c, NULL, "value is not valid UTF-8 (at offset %zu)", ok);
    size_t ctl = raw_control_in_string(val, len);
    if (ctl < len)
        return verr(c, NULL, "value has a raw control character in a string at offset %zu", ctl);
    if (memmem(val, len, "\\u0000", 6))
        return verr(c, NULL, "value has an escaped NUL (\\u0000)");
    size_t i = 0;
    while (i < len && is_ws(val[i]))
        i++;
    if (i == len)
        return verr(c, NULL, "value is empty, want a JSON object");
    if (val[i] != '{') {
        char q[64];
        return verr(c, NULL, "value must be a JSON object, not \"%s\"",
                    config_quote(q, sizeof q, val + i, len - i, 24));
    }
    return 0;
}

/* Parse the text into a JSON object; NULL with the error set on failure. */
static json_object *parse_json(vctx *c, const char *val, size_t len)
{
    if (check_text(c, val, len) < 0)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(VALUE_DEPTH);
    if (!tok) {
        verr(c, NULL, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                  JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, val, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o && je == json_tokener_continue) {
        verr(c, NULL, "truncated JSON (the object is not closed)");
    } else if (!o && je == json_tokener_error_depth) {
        verr(c, NULL, "JSON nested too deep (more than %d levels)", VALUE_DEPTH);
    } else if (!o) {
        verr(c, NULL, "bad JSON at offset %zu: %s", end, json_tokener_error_desc(je));
    } else {
        while (end < len && is_ws(val[end]))
            end++;
        if (end < len || has_nonfinite(o, 0)) {
            json_object_put(o);
            o = NULL;
            if (end < len)
                verr(c, NULL, "trailing garbage after the JSON object at offset %zu", end);
            else
                verr(c, NULL, "value has NaN or Infinity, which JSON does not allow");
        }
    }
    return o;
}

/* ---- typed field readers ---- */

/* An integer in min..max. */
static int get_uint(vctx *c, const char *f, json_object *o, uint64_t min, uint64_t max,
                    uint64_t *out)
{
    char d[128];
    if (json_object_get_type(o) == json_type_double)
        return verr(c, f, "%s is not an integer", json_object_to_json_string(o));
    if (json_object_get_type(o) != json_type_int)
        return verr(c, f, "must be an integer, not %s", describe(o, d, sizeof d));
    int64_t v = json_object_get_int64(o);
    if (v < 0)
        return verr(c, f, "%lld is out of range %llu..%llu", (long long)v,
                    (unsigned long long)min, (unsigned long long)max);
    uint64_t u = v == INT64_MAX ? json_object_get_uint64(o) : (uint64_t)v;
    if (u < min || u > max)
        return verr(c, f, "%llu is out of range %llu..%llu%s", (unsigned long long)u,
                    (unsigned long long)min, (unsigned long long)max,
                    u >= (uint64_t)INT64_MAX ? " (or larger)" : "");
    *out = u;
    return 0;
}

static int get_port(vctx *c, const char *f, json_object *o, uint16_t *out)
{
    uint64_t v;
    int r = get_uint(c, f, o, 1, 65535, &v);
    if (r == 0)
        *out = (uint16_t)v;
    return r;
}

/* A string of at most FIELD_STR_MAX bytes; *s stays valid while o lives. */
static int get_str(vctx *c, const char *f, json_object *o, const char **s)
{
    char d[128];
    if (json_object_get_type(o) != json_type_string)
        return verr(c, f, "must be a string, not %s", describe(o, d, sizeof d));
    int len = json_object_get_string_len(o);
    if (len > FIELD_STR_MAX)
        return verr(c, f, "string of %d bytes is too long (at most %d)", len, FIELD_STR_MAX);
    *s = json_object_get_string(o);
    return 0;
}

/* An address of family want (0 = either); sets *af. */
static int get_addr(vctx *c, const char *f, json_object *o, int want, int *af, uint8_t out[16])
{
    const char *s;
    char q[80];
    int r = get_str(c, f, o, &s);
    if (r < 0)
        return r;
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out) == 1)
        *af = AF_INET;
    else if (inet_pton(AF_INET6, s, out) == 1)
        *af = AF_INET6;
    else
        return verr(c, f, "\"%s\" is not an IP address", config_quote(q, sizeof q, s, strlen(s), 64));
    if (want && *af != want)
        return verr(c, f, "\"%s\" is an %s address, want %s", s, *af == AF_INET ? "IPv4" : "IPv6",
                    want == AF_INET ? "IPv4" : "IPv6");
    return 0;
}

/* "addr/len" of family want (0 = either) into the route; host bits are cleared. */
static int get_prefix(vctx *c, const char *f, json_object *o, int want, config_route *rt)
{
    const char *s;
    char q[80], a[FIELD_STR_MAX + 1];
    int r = get_str(c, f, o, &s);
    if (r < 0)
        return r;
    const char *slash = strchr(s, '/');
    size_t dl = slash ? strlen(slash + 1) : 0;
    if (!slash || dl < 1 || dl > 3 || strspn(slash + 1, "0123456789") != dl ||
        (dl > 1 && slash[1] == '0'))
        return verr(c, f, "\"%s\" is not a prefix: want address/length",
                    config_quote(q, sizeof q, s, strlen(s), 64));
    memcpy(a, s, (size_t)(slash - s));
    a[slash - s] = '\0';
    json_object *ao = json_object_new_string(a);
    int af = 0;
    r = ao ? get_addr(c, f, ao, want, &af, rt->prefix) : verr(c, f, "out of memory");
    json_object_put(ao);
    if (r < 0)
        return r;
    int plen = atoi(slash + 1), max = af == AF_INET ? 32 : 128;
    if (plen > max)
        return verr(c, f, "\"%s\": length %d is out of range 0..%d", s, plen, max);
    rt->af = (uint8_t)af;
    rt->plen = (uint8_t)plen;
    bool cleared = false;
    for (int i = 0; i < 16; i++) {
        int keep = plen - 8 * i;
        uint8_t m = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        cleared |= (rt->prefix[i] & ~m) != 0;
        rt->prefix[i] &= m;
    }
    if (cleared && c->warnings)
        config_strs_pushf(c->warnings, "%s: %s: \"%s\" has host bits set; using the prefix", c->key, f, s);
    return 0;
}

/* ---- fields ---- */

/* The fields of one kind; the index of each is its bit in a seen mask. */
enum {
    F_IPV4, F_IPV6, F_TCP, F_UDP, F_WEIGHT, F_SCHED, F_PERSIST, F_FLAGS, F_FWMARK,
    F_PREFIX4, F_PREFIX6, F_PREFIX, F_GW4, F_GW6, F_GW, F_METHOD, F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "ipv4", "ipv6", "tcp", "udp", "weight", "scheduler", "persistence", "flags", "fwmark",
    "Prefix4", "Prefix6", "Prefix", "Gateway4", "Gateway6", "Gateway", "IpvsMethod",
};
#define FMASK(f) (1u << (f))
#define HAS(fs, f) (((fs)->seen & FMASK(f)) != 0)
static const unsigned kind_fields[] = {
    [CONFIG_FRONTEND] = FMASK(F_IPV4) | FMASK(F_IPV6) | FMASK(F_TCP) | FMASK(F_UDP) |
                        FMASK(F_SCHED) | FMASK(F_PERSIST) | FMASK(F_FLAGS) | FMASK(F_FWMARK),
    [CONFIG_BACKEND] = FMASK(F_IPV4) | FMASK(F_IPV6) | FMASK(F_TCP) | FMASK(F_UDP) | FMASK(F_WEIGHT),
    [CONFIG_ROUTE] = FMASK(F_PREFIX4) | FMASK(F_PREFIX6) | FMASK(F_PREFIX) | FMASK(F_GW4) |
                     FMASK(F_GW6) | FMASK(F_GW) | FMASK(F_METHOD),
};

/* The fields of one object by index, with the spelling the user wrote. */
typedef struct fields {
    unsigned seen;             /* FMASK bits of the fields present (a JSON null is a NULL v) */
    json_object *v[F_COUNT];
    const char *name[F_COUNT];
} fields;

/* Sort the object's members into fields; warn about unknown ones, reject case duplicates. */
static int collect_fields(vctx *c, json_object *obj, enum config_kind kind, fields *fs)
{
    memset(fs, 0, sizeof *fs);
    json_object_object_foreach(obj, k, v) {
        int f = 0;
        while (f < F_COUNT && !((kind_fields[kind] & FMASK(f)) && strcasecmp(k, field_names[f]) == 0))
            f++;
        if (f == F_COUNT) {
            char q[80];
            if (c->warnings)
                config_strs_pushf(c->warnings, "%s: unknown field \"%s\" ignored", c->key,
                                  config_quote(q, sizeof q, k, strlen(k), 64));
            continue;
        }
        if (fs->seen & FMASK(f))
            return verr(c, k, "duplicates field \"%s\"", fs->name[f]);
        fs->seen |= FMASK(f);
        fs->v[f] = v;
        fs->name[f] = k;
    }
    return 0;
}

/* ipv4/ipv6/tcp/udp, shared by frontends and backends. */
static int get_endpoints(vctx *c, fields *fs, bool *h4, uint8_t *a4, bool *h6, uint8_t *a6,
                         uint16_t *tcp, uint16_t *udp)
{
    uint8_t buf[16];
    int af, r = 0;
    if (HAS(fs, F_IPV4) && (r = get_addr(c, fs->name[F_IPV4], fs->v[F_IPV4], AF_INET, &af, buf)) == 0) {
        memcpy(a4, buf, 4);
        *h4 = true;
    }
    if (r == 0 && HAS(fs, F_IPV6) &&
        (r = get_addr(c, fs->name[F_IPV6], fs->v[F_IPV6], AF_INET6, &af, a6)) == 0)
        *h6 = true;
    if (r == 0 && HAS(fs, F_TCP))
        r = get_port(c, fs->name[F_TCP], fs->v[F_TCP], tcp);
    if (r == 0 && HAS(fs, F_UDP))
        r = get_port(c, fs->name[F_UDP], fs->v[F_UDP], udp);
    return r;
}

static const struct { const char *name; uint32_t bit; } flag_names[] = {
    {"sh-fallback", IP_VS_SVC_F_SCHED_SH_FALLBACK}, {"sh-port", IP_VS_SVC_F_SCHED_SH_PORT},
    {"mh-fallback", IP_VS_SVC_F_SCHED_MH_FALLBACK}, {"mh-port", IP_VS_SVC_F_SCHED_MH_PORT},
    {"ops", IP_VS_SVC_F_ONEPACKET},
};

static int get_flags(vctx *c, const char *f, json_object *o, uint32_t *out)
{
    char d[128];
    if (json_object_get_type(o) != json_type_array)
        return verr(c, f, "must be an array of strings, not %s", describe(o, d, sizeof d));
    size_t n = json_object_array_length(o);
    for (size_t i = 0; i < n; i++) {
        const char *s;
        int r = get_str(c, f, json_object_array_get_idx(o, i), &s);
        if (r < 0)
            return r;
        size_t k = 0;
        while (k < 5 && strcasecmp(s, flag_names[k].name) != 0)
            k++;
        if (k == 5)
            return verr(c, f, "unknown flag \"%s\" (want sh-fallback, sh-port, mh-fallback, "
                        "mh-port or ops)", config_quote(d, sizeof d, s, strlen(s), 40));
        *out |= flag_names[k].bit;
    }
    return 0;
}

static int get_sched(vctx *c, const char *f, json_object *o, char out[CONFIG_SCHED_MAX])
{
    const char *s;
    char q[80];
    int r = get_str(c, f, o, &s);
    if (r == 0 && !config_sched_valid(s))
        r = verr(c, f, "\"%s\" is not a scheduler name (1..15 of [a-z0-9_])",
                 config_quote(q, sizeof q, s, strlen(s), 40));
    if (r == 0)
        strcpy(out, s);
    return r;
}

static int parse_frontend(vctx *c, fields *fs, config_frontend *fe)
{
    uint64_t v;
    int r = get_endpoints(c, fs, &fe->has_ipv4, fe->ipv4, &fe->has_ipv6, fe->ipv6, &fe->tcp, &fe->udp);
    strcpy(fe->sched, c->defaults->sched);
    if (r == 0 && HAS(fs, F_SCHED))
        r = get_sched(c, fs->name[F_SCHED], fs->v[F_SCHED], fe->sched);
    if (r == 0 && HAS(fs, F_PERSIST) &&
        (r = get_uint(c, fs->name[F_PERSIST], fs->v[F_PERSIST], 0, CONFIG_PERSISTENCE_MAX, &v)) == 0)
        fe->persistence = (uint32_t)v;
    if (r == 0 && HAS(fs, F_FLAGS))
        r = get_flags(c, fs->name[F_FLAGS], fs->v[F_FLAGS], &fe->flags);
    if (r == 0 && HAS(fs, F_FWMARK) &&
        (r = get_uint(c, fs->name[F_FWMARK], fs->v[F_FWMARK], 1, UINT32_MAX, &v)) == 0)
        fe->fwmark = (uint32_t)v;
    if (r < 0 || fe->fwmark)
        return r;
    if (!fe->has_ipv4 && !fe->has_ipv6)
        return verr(c, NULL, "frontend needs an address: ipv4 and/or ipv6 (or a fwmark)");
    if (!fe->tcp && !fe->udp)
        return verr(c, NULL, "frontend needs a port: tcp and/or udp (or a fwmark)");
    return 0;
}

static int parse_backend(vctx *c, fields *fs, config_backend *be)
{
    uint64_t v;
    int r = get_endpoints(c, fs, &be->has_ipv4, be->ipv4, &be->has_ipv6, be->ipv6, &be->tcp, &be->udp);
    be->weight = 10;
    if (r == 0 && HAS(fs, F_WEIGHT) &&
        (r = get_uint(c, fs->name[F_WEIGHT], fs->v[F_WEIGHT], 0, 65535, &v)) == 0)
        be->weight = (uint16_t)v;
    if (r == 0 && !be->has_ipv4 && !be->has_ipv6)
        r = verr(c, NULL, "backend needs an address: ipv4 and/or ipv6");
    return r;
}

/* Which one of three alternative fields (x4, x6, x) is given; -1 none, -2 more than one. */
static int one_of(fields *fs, int f4)
{
    int n = HAS(fs, f4) + HAS(fs, f4 + 1) + HAS(fs, f4 + 2);
    if (n > 1)
        return -2;
    return HAS(fs, f4) ? f4 : HAS(fs, f4 + 1) ? f4 + 1 : HAS(fs, f4 + 2) ? f4 + 2 : -1;
}

static int parse_route(vctx *c, fields *fs, config_route *rt)
{
    static const int fam[3] = {AF_INET, AF_INET6, 0};
    int p = one_of(fs, F_PREFIX4), g = one_of(fs, F_GW4), r, gaf = 0;
    if (p == -1)
        return verr(c, NULL, "route needs a prefix: Prefix4, Prefix6 or Prefix");
    if (p == -2 || g == -2)
        return verr(c, NULL, "route has more than one of %s", p == -2 ? "Prefix4, Prefix6, Prefix" :
                    "Gateway4, Gateway6, Gateway");
    if ((r = get_prefix(c, fs->name[p], fs->v[p], fam[p - F_PREFIX4], rt)) < 0)
        return r;
    if (g >= 0 && (r = get_addr(c, fs->name[g], fs->v[g], fam[g - F_GW4], &gaf, rt->gateway)) < 0)
        return r;
    if (g >= 0 && gaf != rt->af) {
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        return verr(c, fs->name[g], "%s is an %s gateway for the %s prefix %s/%d",
                    inet_ntop(gaf, rt->gateway, a, sizeof a), gaf == AF_INET ? "IPv4" : "IPv6",
                    rt->af == AF_INET ? "IPv4" : "IPv6", inet_ntop(rt->af, rt->prefix, b, sizeof b),
                    rt->plen);
    }
    rt->has_gateway = g >= 0;
    rt->method = c->defaults->method;
    if (HAS(fs, F_METHOD)) {
        const char *s;
        char q[80];
        if ((r = get_str(c, fs->name[F_METHOD], fs->v[F_METHOD], &s)) < 0)
            return r;
        if (config_parse_method(s, &rt->method) < 0)
            return verr(c, fs->name[F_METHOD], "\"%s\" is not masq, droute, tunnel or filter",
                        config_quote(q, sizeof q, s, strlen(s), 40));
    }
    return 0;
}

static void key_string(const config_key *k, char *buf, size_t size)
{
    if (k->kind == CONFIG_ROUTE)
        snprintf(buf, size, "routes/%s", k->name);
    else if (k->kind == CONFIG_FRONTEND)
        snprintf(buf, size, "services/%s/frontend", k->service);
    else
        snprintf(buf, size, "services/%s/backends/%s", k->service, k->name);
}

int config_parse_value(const config_key *key, const char *val, size_t len,
                       const config_defaults *defaults, config_value *out,
                       config_strs *warnings, config_error *err)
{
    config_defaults dflt;
    if (!defaults) {
        config_defaults_init(&dflt);
        defaults = &dflt;
    }
    vctx c = {.err = err, .warnings = warnings, .defaults = defaults};
    key_string(key, c.key, sizeof c.key);
    memset(out, 0, sizeof *out);
    out->kind = key->kind;
    err->msg[0] = '\0';
    json_object *obj = parse_json(&c, val ? val : "", val ? len : 0);
    if (!obj)
        return -EINVAL;
    fields fs;
    int r = collect_fields(&c, obj, key->kind, &fs);
    if (r == 0 && key->kind == CONFIG_FRONTEND)
        r = parse_frontend(&c, &fs, &out->u.frontend);
    else if (r == 0 && key->kind == CONFIG_BACKEND)
        r = parse_backend(&c, &fs, &out->u.backend);
    else if (r == 0)
        r = parse_route(&c, &fs, &out->u.route);
    json_object_put(obj);
    if (r < 0)
        memset(out, 0, sizeof *out);
    return r;
}

/* ---- rendering ---- */

static int add_addr(json_object *o, const char *f, int af, const uint8_t *a)
{
    char s[INET6_ADDRSTRLEN];
    inet_ntop(af, a, s, sizeof s);
    return json_object_object_add(o, f, json_object_new_string(s));
}

static void render_frontend(json_object *o, const config_frontend *fe)
{
    if (fe->has_ipv4)
        add_addr(o, "ipv4", AF_INET, fe->ipv4);
    if (fe->has_ipv6)
        add_addr(o, "ipv6", AF_INET6, fe->ipv6);
    if (fe->tcp)
        json_object_object_add(o, "tcp", json_object_new_int(fe->tcp));
    if (fe->udp)
        json_object_object_add(o, "udp", json_object_new_int(fe->udp));
    if (fe->fwmark)
        json_object_object_add(o, "fwmark", json_object_new_int64(fe->fwmark));
    json_object_object_add(o, "scheduler", json_object_new_string(fe->sched));
    json_object_object_add(o, "persistence", json_object_new_int64(fe->persistence));
    json_object *fl = json_object_new_array();
    bool mh = strcmp(fe->sched, "mh") == 0; /* sh-* and mh-* share their bits */
    for (size_t k = 0; k < 5; k++)
        if ((fe->flags & flag_names[k].bit) && (k == 4 || mh == (k >= 2)))
            json_object_array_add(fl, json_object_new_string(flag_names[k].name));
    json_object_object_add(o, "flags", fl);
}

static void render_route(json_object *o, const config_route *rt)
{
    char s[INET6_ADDRSTRLEN + 8], a[INET6_ADDRSTRLEN];
    snprintf(s, sizeof s, "%s/%d", inet_ntop(rt->af, rt->prefix, a, sizeof a), rt->plen);
    json_object_object_add(o, rt->af == AF_INET ? "Prefix4" : "Prefix6", json_object_new_string(s));
    if (rt->has_gateway)
        add_addr(o, rt->af == AF_INET ? "Gateway4" : "Gateway6", rt->af, rt->gateway);
    json_object_object_add(o, "IpvsMethod", json_object_new_string(config_method_name(rt->method)));
}

char *config_value_to_json(const config_value *v)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    if (v->kind == CONFIG_FRONTEND) {
        render_frontend(o, &v->u.frontend);
    } else if (v->kind == CONFIG_BACKEND) {
        const config_backend *be = &v->u.backend;
        if (be->has_ipv4)
            add_addr(o, "ipv4", AF_INET, be->ipv4);
        if (be->has_ipv6)
            add_addr(o, "ipv6", AF_INET6, be->ipv6);
        if (be->tcp)
            json_object_object_add(o, "tcp", json_object_new_int(be->tcp));
        if (be->udp)
            json_object_object_add(o, "udp", json_object_new_int(be->udp));
        json_object_object_add(o, "weight", json_object_new_int(be->weight));
    } else {
        render_route(o, &v->u.route);
    }
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char *copy = s ? strdup(s) : NULL;
    json_object_put(o);
    return copy;
}
