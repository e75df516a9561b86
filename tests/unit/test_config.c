/* test_config.c -- config/: keys, every JSON rule (table-driven), defaults, the store (stale
 * values, cold start, sources, filter-etcd-routes, sync, touched services, iteration) and the
 * corpus of invalid values under tests/corpus/invalid/. */
#include "check.h"
#include "config/config.h"
#include "heap_use.h"

#include <dirent.h>
#include <errno.h>
#include <linux/ip_vs.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ---- */

static int parse(const char *key, const char *val, size_t vlen, config_value *v,
                 config_strs *warn, config_error *err)
{
    config_key k;
    int r = config_parse_key(key, strlen(key), &k, err);
    if (r < 0)
        return r;
    return config_parse_value(&k, val, vlen, NULL, v, warn, err);
}

/* Parse and render canonically; NULL with err on failure. */
static char *parse_json(const char *key, const char *val, config_strs *warn, config_error *err)
{
    config_value v;
    if (parse(key, val, strlen(val), &v, warn, err) < 0)
        return NULL;
    return config_value_to_json(&v);
}

static int put(config_store *s, enum config_source src, const char *key, const char *val,
               config_result *r)
{
    config_event ev = {.source = src, .key = key, .key_len = strlen(key), .value = val,
                       .value_len = strlen(val), .revision = 7};
    return config_store_apply(s, &ev, r);
}

static int del(config_store *s, enum config_source src, const char *key, config_result *r)
{
    config_event ev = {.source = src, .is_delete = true, .key = key, .key_len = strlen(key)};
    return config_store_apply(s, &ev, r);
}

static bool has_str(const config_strs *l, const char *sub)
{
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->v[i], sub))
            return true;
    return false;
}

static char *joined(const config_strs *l)
{
    static char buf[4096];
    buf[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        strncat(buf, l->v[i], sizeof buf - strlen(buf) - 2);
        strcat(buf, ",");
    }
    return buf;
}

/* ---- keys ---- */

static void test_keys(void)
{
    static const struct { const char *key; int rc; int kind; const char *svc, *name; } cases[] = {
        {"services/web/frontend", 0, CONFIG_FRONTEND, "web", ""},
        {"/services/web/frontend", 0, CONFIG_FRONTEND, "web", ""},
        {"services/web/backends/b1", 0, CONFIG_BACKEND, "web", "b1"},
        {"services/a.b_c:d-E9/backends/x:1", 0, CONFIG_BACKEND, "a.b_c:d-E9", "x:1"},
        {"routes/test3", 0, CONFIG_ROUTE, "", "test3"},
        {"routes/r1/x", -ENOENT, 0, 0, 0},
        {"routes/", -ENOENT, 0, 0, 0},
        {"routes", -ENOENT, 0, 0, 0},
        {"services/web", -ENOENT, 0, 0, 0},
        {"services/web/", -ENOENT, 0, 0, 0},
        {"services/web/backends", -ENOENT, 0, 0, 0},
        {"services/web/backends/", -ENOENT, 0, 0, 0},
        {"services/web/backends/b1/x", -ENOENT, 0, 0, 0},
        {"services/web/frontends", -ENOENT, 0, 0, 0},
        {"services//frontend", -ENOENT, 0, 0, 0},
        {"services/w b/frontend", -ENOENT, 0, 0, 0},
        {"services/w\xc3\xa9/frontend", -ENOENT, 0, 0, 0},
        {"services/../frontend", -ENOENT, 0, 0, 0},
        {"services/./frontend", -ENOENT, 0, 0, 0},
        {"//services/web/frontend", -ENOENT, 0, 0, 0},
        {"Services/web/frontend", -ENOENT, 0, 0, 0},
        {"foo", -ENOENT, 0, 0, 0},
        {"", -ENOENT, 0, 0, 0},
        {"/", -ENOENT, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_key k;
        config_error e;
        int r = config_parse_key(cases[i].key, strlen(cases[i].key), &k, &e);
        CHECK_MSG(r == cases[i].rc, "key %s: rc %d", cases[i].key, r);
        if (r == 0) {
            CHECK_INT(k.kind, cases[i].kind);
            CHECK_STR(k.service, cases[i].svc);
            CHECK_STR(k.name, cases[i].name);
        } else {
            CHECK_MSG(strstr(e.msg, "unknown key"), "key %s: %s", cases[i].key, e.msg);
        }
    }
    char name[300];
    memset(name, 'a', sizeof name);
    char key[400];
    snprintf(key, sizeof key, "routes/%.253s", name);
    config_key k;
    config_error e;
    CHECK_INT(config_parse_key(key, strlen(key), &k, &e), 0);
    CHECK_INT(strlen(k.name), 253);
    snprintf(key, sizeof key, "routes/%.254s", name);
    CHECK_INT(config_parse_key(key, strlen(key), &k, &e), -ENOENT);
    CHECK_INT(config_parse_key("routes/a\0b", 10, &k, &e), -ENOENT);
    CHECK(strstr(e.msg, "routes/a\\x00b"));
}

/* ---- valid values: key, JSON, canonical rendering, warning substring or NULL ---- */

static const struct { const char *key, *val, *want, *warn; } valid_cases[] = {
    /* seed README */
    {"services/test/frontend", "{\"ipv4\": \"10.107.107.107\", \"tcp\": 1337}",
     "{\"ipv4\":\"10.107.107.107\",\"tcp\":1337,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", NULL},
    {"services/test/backends/test3-1", "{\"ipv4\": \"10.3.107.1\", \"tcp\": 1337}",
     "{\"ipv4\":\"10.3.107.1\",\"tcp\":1337,\"weight\":10}", NULL},
    {"routes/test3", "{\"Prefix4\":\"10.3.107.0/24\",\"IpvsMethod\":\"masq\"}",
     "{\"Prefix4\":\"10.3.107.0\\/24\",\"IpvsMethod\":\"masq\"}", NULL},
    {"routes/test6", "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway4\":\"10.107.107.6\",\"IpvsMethod\":\"droute\"}",
     "{\"Prefix4\":\"10.6.107.0\\/24\",\"Gateway4\":\"10.107.107.6\",\"IpvsMethod\":\"droute\"}", NULL},
    /* dual stack, tcp + udp, all extensions */
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"ipv6\":\"2001:db8::1\",\"tcp\":80,\"udp\":53}",
     "{\"ipv4\":\"10.0.0.1\",\"ipv6\":\"2001:db8::1\",\"tcp\":80,\"udp\":53,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", NULL},
    {"services/web/frontend", "{\"ipv6\":\"2001:DB8:0:0::1\",\"udp\":65535,\"scheduler\":\"mh\",\"persistence\":300,"
     "\"flags\":[\"mh-fallback\",\"MH-PORT\",\"ops\"]}",
     "{\"ipv6\":\"2001:db8::1\",\"udp\":65535,\"scheduler\":\"mh\",\"persistence\":300,\"flags\":[\"mh-fallback\",\"mh-port\",\"ops\"]}", NULL},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":1,\"flags\":[\"sh-fallback\",\"sh-port\"],\"persistence\":2678400}",
     "{\"ipv4\":\"10.0.0.1\",\"tcp\":1,\"scheduler\":\"wlc\",\"persistence\":2678400,\"flags\":[\"sh-fallback\",\"sh-port\"]}", NULL},
    {"services/fw/frontend", "{\"fwmark\": 4294967295}",
     "{\"fwmark\":4294967295,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", NULL},
    {"services/fw/frontend", "{\"fwmark\": 1, \"ipv6\": \"::1\"}",
     "{\"ipv6\":\"::1\",\"fwmark\":1,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", NULL},
    /* case-insensitive names, whitespace, unknown fields */
    {"services/web/backends/b1", " \n{\"IPv4\":\"10.1.1.1\",\"TCP\":8080,\"Weight\":0}\r\n\t",
     "{\"ipv4\":\"10.1.1.1\",\"tcp\":8080,\"weight\":0}", NULL},
    {"services/web/backends/b1", "{\"ipv6\":\"fe80::1\",\"udp\":53,\"weight\":65535,\"comment\":\"x\"}",
     "{\"ipv6\":\"fe80::1\",\"udp\":53,\"weight\":65535}", "unknown field \"comment\" ignored"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\"}", "{\"ipv4\":\"10.1.1.1\",\"weight\":10}", NULL},
    {"routes/r", "{\"IPVSMETHOD\":\"Tunnel\",\"prefix\":\"2001:db8::/32\",\"gateway\":\"2001:db8::6\"}",
     "{\"Prefix6\":\"2001:db8::\\/32\",\"Gateway6\":\"2001:db8::6\",\"IpvsMethod\":\"tunnel\"}", NULL},
    {"routes/r", "{\"Prefix6\":\"::/0\",\"IpvsMethod\":\"filter\"}",
     "{\"Prefix6\":\"::\\/0\",\"IpvsMethod\":\"filter\"}", NULL},
    {"routes/r", "{\"Prefix4\":\"10.3.107.9/24\"}",
     "{\"Prefix4\":\"10.3.107.0\\/24\",\"IpvsMethod\":\"masq\"}", "host bits set"},
    {"routes/r", "{\"Prefix\":\"10.1.2.3/32\",\"Gateway\":\"10.9.9.9\"}",
     "{\"Prefix4\":\"10.1.2.3\\/32\",\"Gateway4\":\"10.9.9.9\",\"IpvsMethod\":\"masq\"}", NULL},
    {"routes/r", "{\"Prefix4\":\"10.0.0.0/0\",\"x\":{\"y\":[1]}}",
     "{\"Prefix4\":\"0.0.0.0\\/0\",\"IpvsMethod\":\"masq\"}", "unknown field \"x\""},
    /* escaped quotes and backslashes inside strings are fine */
    {"routes/r", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":\"a\\\"\\\\\\t\"}",
     "{\"Prefix4\":\"10.0.0.0\\/24\",\"IpvsMethod\":\"masq\"}", "unknown field \"x\""},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"tcp\":81}",
     "{\"ipv4\":\"10.0.0.1\",\"tcp\":81,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", NULL},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"weight\":5}",
     "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"scheduler\":\"wlc\",\"persistence\":0,\"flags\":[]}", "unknown field \"weight\""},
};

static void test_valid_values(void)
{
    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        config_strs warn = {0};
        config_error err;
        char *got = parse_json(valid_cases[i].key, valid_cases[i].val, &warn, &err);
        CHECK_MSG(got != NULL, "case %zu %s: %s", i, valid_cases[i].val, err.msg);
        if (got)
            CHECK_MSG(strcmp(got, valid_cases[i].want) == 0, "case %zu: got %s want %s", i, got,
                      valid_cases[i].want);
        if (valid_cases[i].warn)
            CHECK_MSG(has_str(&warn, valid_cases[i].warn), "case %zu: warnings %s", i, joined(&warn));
        else
            CHECK_MSG(warn.n == 0, "case %zu: unexpected warnings %s", i, joined(&warn));
        free(got);
        config_strs_clear(&warn);
    }
}

/* ---- invalid values: key, JSON, the exact error or a substring (prefix '~') ---- */

static const struct { const char *key, *val, *want; } invalid_cases[] = {
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"weight\":70000}",
     "services/web/backends/b1: weight: 70000 is out of range 0..65535"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"weight\":-1}",
     "services/web/backends/b1: weight: -1 is out of range 0..65535"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"Weight\":1.5}",
     "services/web/backends/b1: Weight: 1.5 is not an integer"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"weight\":\"10\"}",
     "services/web/backends/b1: weight: must be an integer, not a string \"10\""},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":\"80\"}",
     "services/web/backends/b1: tcp: must be an integer, not a string \"80\""},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":0}",
     "services/web/backends/b1: tcp: 0 is out of range 1..65535"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"udp\":65536}",
     "services/web/backends/b1: udp: 65536 is out of range 1..65535"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"udp\":null}",
     "services/web/backends/b1: udp: must be an integer, not null"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":1e3}", "services/web/backends/b1: tcp: 1e3 is not an integer"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":99999999999999999999999}", "~tcp: "},
    {"services/web/backends/b1", "{\"ipv4\":\"2001:db8::1\"}",
     "services/web/backends/b1: ipv4: \"2001:db8::1\" is an IPv6 address, want IPv4"},
    {"services/web/backends/b1", "{\"ipv6\":\"10.1.1.1\"}",
     "services/web/backends/b1: ipv6: \"10.1.1.1\" is an IPv4 address, want IPv6"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1\"}",
     "services/web/backends/b1: ipv4: \"10.1.1\" is not an IP address"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.256\"}", "~is not an IP address"},
    {"services/web/backends/b1", "{\"ipv4\":\" 10.1.1.1\"}", "~is not an IP address"},
    {"services/web/backends/b1", "{\"ipv4\":10}", "~ipv4: must be a string, not the integer 10"},
    {"services/web/backends/b1", "{\"tcp\":80}",
     "services/web/backends/b1: backend needs an address: ipv4 and/or ipv6"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"IPV4\":\"10.1.1.2\"}",
     "~duplicates field"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\"}",
     "services/web/frontend: frontend needs a port: tcp and/or udp (or a fwmark)"},
    {"services/web/frontend", "{\"tcp\":80}",
     "services/web/frontend: frontend needs an address: ipv4 and/or ipv6 (or a fwmark)"},
    {"services/web/frontend", "{}", "~frontend needs an address"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"scheduler\":\"WLC\"}",
     "services/web/frontend: scheduler: \"WLC\" is not a scheduler name (1..15 of [a-z0-9_])"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"scheduler\":\"abcdefghijklmnop\"}",
     "~is not a scheduler name"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"scheduler\":\"\"}", "~is not a scheduler name"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"persistence\":2678401}",
     "services/web/frontend: persistence: 2678401 is out of range 0..2678400"},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"flags\":[\"sh-fallback\",\"bogus\"]}",
     "~flags: unknown flag \"bogus\""},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"flags\":\"ops\"}",
     "~flags: must be an array of strings, not a string \"ops\""},
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"flags\":[1]}", "~flags: must be a string"},
    {"services/web/frontend", "{\"fwmark\":0}", "services/web/frontend: fwmark: 0 is out of range 1..4294967295"},
    {"services/web/frontend", "{\"fwmark\":4294967296}", "~fwmark: 4294967296 is out of range"},
    {"routes/r1", "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway6\":\"2001:db8::6\",\"IpvsMethod\":\"droute\"}",
     "routes/r1: Gateway6: 2001:db8::6 is an IPv6 gateway for the IPv4 prefix 10.6.107.0/24"},
    {"routes/r1", "{\"Prefix6\":\"2001:db8::/32\",\"Gateway\":\"10.0.0.6\"}",
     "routes/r1: Gateway: 10.0.0.6 is an IPv4 gateway for the IPv6 prefix 2001:db8::/32"},
    {"routes/r1", "{\"Prefix4\":\"10.6.107.0/24\",\"Gateway4\":\"2001:db8::6\"}",
     "routes/r1: Gateway4: \"2001:db8::6\" is an IPv6 address, want IPv4"},
    {"routes/r1", "{\"Prefix4\":\"2001:db8::/32\"}", "~Prefix4: \"2001:db8::\" is an IPv6 address, want IPv4"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/33\"}", "~length 33 is out of range 0..32"},
    {"routes/r1", "{\"Prefix6\":\"::/129\"}", "~length 129 is out of range 0..128"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0\"}", "~is not a prefix: want address/length"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/\"}", "~is not a prefix"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/024\"}", "~is not a prefix"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/-1\"}", "~is not a prefix"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"Prefix6\":\"::/0\"}",
     "routes/r1: route has more than one of Prefix4, Prefix6, Prefix"},
    {"routes/r1", "{\"IpvsMethod\":\"masq\"}", "routes/r1: route needs a prefix: Prefix4, Prefix6 or Prefix"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"IpvsMethod\":\"nat\"}",
     "routes/r1: IpvsMethod: \"nat\" is not masq, droute, tunnel or filter"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"IpvsMethod\":1}", "~IpvsMethod: must be a string"},
    {"routes/r1", "[]", "routes/r1: value must be a JSON object, not \"[]\""},
    {"routes/r1", "", "routes/r1: value is empty, want a JSON object"},
    {"routes/r1", "null", "~value must be a JSON object"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\"", "routes/r1: truncated JSON (the object is not closed)"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\"} x", "~trailing garbage after the JSON object"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\"}{}", "~trailing garbage"},
    {"routes/r1", "{'Prefix4':'10.0.0.0/24'}", "~bad JSON"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",}", "~bad JSON"},
    {"routes/r1", "{\"a\":[[[[[[1]]]]]]}", "routes/r1: JSON nested too deep (more than 4 levels)"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":\"\\u0000\"}", "routes/r1: value has an escaped NUL (\\u0000)"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":NaN}", "routes/r1: value has NaN or Infinity, which JSON does not allow"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":[Infinity]}", "~NaN or Infinity"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":\"a\tb\"}",
     "routes/r1: value has a raw control character in a string at offset 31"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.\xff/24\"}", "routes/r1: value is not valid UTF-8 (at offset 19)"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":\"\xc0\xaf\"}", "~not valid UTF-8"},
    {"routes/r1", "{\"Prefix4\":\"10.0.0.0/24\",\"x\":\"\xed\xa0\x80\"}", "~not valid UTF-8"},
};

static void check_error(size_t i, const char *got, const char *want)
{
    if (want[0] == '~')
        CHECK_MSG(strstr(got, want + 1), "case %zu: error \"%s\" lacks \"%s\"", i, got, want + 1);
    else
        CHECK_MSG(strcmp(got, want) == 0, "case %zu: error \"%s\" want \"%s\"", i, got, want);
}

static void test_invalid_values(void)
{
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        config_error err;
        config_value v;
        int r = parse(invalid_cases[i].key, invalid_cases[i].val, strlen(invalid_cases[i].val), &v,
                      NULL, &err);
        CHECK_MSG(r == -EINVAL, "case %zu (%s): rc %d", i, invalid_cases[i].val, r);
        if (r == -EINVAL) {
            check_error(i, err.msg, invalid_cases[i].want);
            CHECK_MSG(strncmp(err.msg, invalid_cases[i].key, strlen(invalid_cases[i].key)) == 0,
                      "case %zu: error does not start with the key: %s", i, err.msg);
        }
    }
}

/* NUL bytes, huge strings and huge values need explicit lengths. */
static void test_invalid_binary(void)
{
    config_error err;
    config_value v;
    static const char nul[] = "{\"ipv4\":\"10.1.1.1\",\"tcp\":80}\0";
    CHECK_INT(parse("services/web/backends/b1", nul, sizeof nul - 1, &v, NULL, &err), -EINVAL);
    CHECK_STR(err.msg, "services/web/backends/b1: value has a NUL byte at offset 28");
    static const char nul2[] = "{\"ipv4\":\"10.1\0.1.1\"}";
    CHECK_INT(parse("services/web/backends/b1", nul2, sizeof nul2 - 1, &v, NULL, &err), -EINVAL);
    CHECK(strstr(err.msg, "NUL byte at offset 13"));

    size_t big = 1 << 20;
    char *s = malloc(big + 64);
    int n = sprintf(s, "{\"ipv4\":\"");
    memset(s + n, 'a', big);
    strcpy(s + n + big, "\"}");
    CHECK_INT(parse("services/web/backends/b1", s, strlen(s), &v, NULL, &err), -EINVAL);
    CHECK_MSG(strstr(err.msg, "services/web/backends/b1: value is 1048587 bytes, more than the 65536 allowed"),
              "%s", err.msg);
    /* A long string that fits the value limit is still refused by the field. */
    n = sprintf(s, "{\"ipv4\":\"");
    memset(s + n, '1', 60000);
    strcpy(s + n + 60000, "\"}");
    CHECK_INT(parse("services/web/backends/b1", s, strlen(s), &v, NULL, &err), -EINVAL);
    CHECK_MSG(strstr(err.msg, "ipv4: string of 60000 bytes is too long (at most 256)"), "%s", err.msg);
    /* Deep nesting far beyond the limit. */
    n = 0;
    s[n++] = '{';
    n += sprintf(s + n, "\"a\":");
    for (int i = 0; i < 10000; i++)
        s[n++] = '[';
    s[n] = '\0';
    CHECK_INT(parse("routes/r1", s, (size_t)n, &v, NULL, &err), -EINVAL);
    CHECK_MSG(strstr(err.msg, "nested too deep"), "%s", err.msg);
    free(s);
    CHECK_INT(parse("routes/r1", NULL, 0, &v, NULL, &err), -EINVAL);
}

static void test_defaults(void)
{
    config_defaults d;
    config_defaults_init(&d);
    CHECK_STR(d.sched, "wlc");
    CHECK_INT(d.method, CONFIG_METHOD_MASQ);
    strcpy(d.sched, "rr");
    d.method = CONFIG_METHOD_DROUTE;
    config_key k;
    config_error e;
    config_value v;
    CHECK_INT(config_parse_key("routes/r", 8, &k, &e), 0);
    CHECK_INT(config_parse_value(&k, "{\"Prefix4\":\"10.0.0.0/8\"}", 24, &d, &v, NULL, &e), 0);
    CHECK_INT(v.u.route.method, CONFIG_METHOD_DROUTE);
    CHECK_INT(config_parse_key("services/a/frontend", 19, &k, &e), 0);
    const char *fe = "{\"ipv4\":\"1.2.3.4\",\"tcp\":1,\"flags\":[\"sh-fallback\",\"ops\",\"mh-port\"]}";
    CHECK_INT(config_parse_value(&k, fe, strlen(fe), &d, &v, NULL, &e), 0);
    CHECK_STR(v.u.frontend.sched, "rr");
    CHECK_INT(v.u.frontend.flags, IP_VS_SVC_F_SCHED_SH_FALLBACK | IP_VS_SVC_F_ONEPACKET | IP_VS_SVC_F_SCHED2);
    enum config_method m;
    CHECK_INT(config_parse_method("DRoute", &m), 0);
    CHECK_INT(m, CONFIG_METHOD_DROUTE);
    CHECK_INT(config_parse_method("nat", &m), -EINVAL);
    CHECK(config_sched_valid("wlc"));
    CHECK(!config_sched_valid("w-lc"));
    CHECK_STR(config_source_name(CONFIG_SOURCE_LOCAL), "local");
}

/* ---- the store ---- */

static int collect(const char *name, const config_backend *be, void *ctx)
{
    (void)be;
    return config_strs_push(ctx, name);
}

static int dump(const config_entry *e, void *ctx)
{
    char line[200];
    snprintf(line, sizeof line, "%s %s%s%s%s\n", e->key, config_source_name(e->source),
             e->in_force ? " in-force" : "", e->stale ? " stale" : "", e->value ? "" : " no-value");
    strcat(ctx, line);
    return 0;
}

static void test_store_stale(void)
{
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":80}", &r), 0);
    CHECK(r.changed);
    CHECK_STR(joined(&r.services), "web,");
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"weight\":70000}", &r), -EINVAL);
    CHECK(r.invalid && r.stale && !r.repeated && !r.changed);
    CHECK_INT(r.services.n, 0);
    CHECK_STR(r.error, "services/web/backends/b1: weight: 70000 is out of range 0..65535");
    CHECK_INT(config_store_invalid_count(s), 1);
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"weight\":70000}", &r), -EINVAL);
    CHECK(r.repeated);
    CHECK_INT(config_store_invalid_count(s), 1);
    /* the last valid value is still in force */
    config_strs names = {0};
    config_store_foreach_backend(s, "web", collect, &names);
    CHECK_STR(joined(&names), "b1,");
    config_strs_clear(&names);
    /* fixing it clears the error */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", "{\"ipv4\":\"10.1.1.1\",\"tcp\":81}", &r), 0);
    CHECK(r.changed && !r.invalid);
    CHECK_INT(config_store_invalid_count(s), 0);
    /* the same value again changes nothing */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", "{\"tcp\":81,\"ipv4\":\"10.1.1.1\"}", &r), 0);
    CHECK(!r.changed);
    CHECK_INT(r.services.n, 0);
    /* cold start: an invalid key is skipped but counted */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\"}", &r), -EINVAL);
    CHECK(r.invalid && !r.stale);
    CHECK(config_store_frontend(s, "web") == NULL);
    CHECK_INT(config_store_invalid_count(s), 1);
    /* counted by source too (what /metrics shows, without a walk of the store) */
    CHECK_INT(put(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", "{\"ipv4\":\"10.0.0.2\"}", &r), -EINVAL);
    CHECK_INT(config_store_invalid_count(s), 2);
    CHECK_INT(config_store_invalid_count_source(s, CONFIG_SOURCE_ETCD), 1);
    CHECK_INT(config_store_invalid_count_source(s, CONFIG_SOURCE_LOCAL), 1);
    CHECK_INT(put(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", "{\"ipv4\":\"10.0.0.2\",\"tcp\":80}", &r), 0);
    CHECK_INT(config_store_invalid_count_source(s, CONFIG_SOURCE_LOCAL), 0);
    CHECK_INT(del(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", &r), 0);
    CHECK_INT(config_store_invalid_count_source(s, CONFIG_SOURCE_COUNT), 0);
    /* deleting an invalid key forgets its error */
    CHECK_INT(del(s, CONFIG_SOURCE_ETCD, "services/web/frontend", &r), 0);
    CHECK_INT(config_store_invalid_count(s), 0);
    CHECK_INT(config_store_invalid_count_source(s, CONFIG_SOURCE_ETCD), 0);
    /* unknown keys: a warning, nothing else */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/web/x", "{}", &r), 0);
    CHECK(!r.changed);
    CHECK_MSG(has_str(&r.warnings, "services/web/x: unknown key"), "%s", joined(&r.warnings));
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "/foo/bar", "junk", &r), 0);
    CHECK_INT(r.warnings.n, 1);
    /* deleting the backend removes the service */
    CHECK_INT(config_store_service_count(s), 1);
    CHECK_INT(del(s, CONFIG_SOURCE_ETCD, "/services/web/backends/b1", &r), 0);
    CHECK_STR(joined(&r.services), "web,");
    CHECK_INT(config_store_service_count(s), 0);
    CHECK_INT(del(s, CONFIG_SOURCE_ETCD, "services/web/backends/b1", &r), 0);
    CHECK(!r.changed);
    config_result_free(&r);
    config_store_free(s);
    config_store_free(NULL);
}

static void test_store_sources(void)
{
    config_options o = {0};
    config_defaults_init(&o.defaults);
    o.filter_etcd_routes = true;
    config_store *s = config_store_new(&o);
    config_result r;
    config_result_init(&r);
    put(s, CONFIG_SOURCE_ETCD, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}", &r);
    CHECK_INT(config_store_frontend(s, "web")->tcp, 80);
    put(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":81}", &r);
    CHECK(r.changed);
    CHECK_INT(config_store_frontend(s, "web")->tcp, 81);
    /* etcd changes under a local override touch nothing */
    put(s, CONFIG_SOURCE_ETCD, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":82}", &r);
    CHECK(!r.changed);
    CHECK_INT(r.services.n, 0);
    CHECK_INT(config_store_frontend(s, "web")->tcp, 81);
    /* an invalid local value keeps the local one (stale) */
    CHECK_INT(put(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":0}", &r), -EINVAL);
    CHECK_INT(config_store_frontend(s, "web")->tcp, 81);
    /* removing the local one falls back to etcd */
    del(s, CONFIG_SOURCE_LOCAL, "services/web/frontend", &r);
    CHECK(r.changed);
    CHECK_INT(config_store_frontend(s, "web")->tcp, 82);
    /* filter-etcd-routes: etcd routes are held but not in force */
    const config_route_ref *routes;
    put(s, CONFIG_SOURCE_ETCD, "routes/e", "{\"Prefix4\":\"10.0.0.0/8\"}", &r);
    CHECK(!r.changed && r.services.n == 0);
    CHECK_INT(config_store_routes(s, &routes), 0);
    put(s, CONFIG_SOURCE_LOCAL, "routes/l", "{\"Prefix4\":\"10.0.0.0/16\"}", &r);
    CHECK(r.changed);
    put(s, CONFIG_SOURCE_ADVERTISED, "routes/a", "{\"Prefix4\":\"10.1.0.0/16\"}", &r);
    CHECK(r.changed);
    CHECK_INT(config_store_routes(s, &routes), 2);
    CHECK_STR(routes[0].name, "a");
    CHECK_STR(routes[1].name, "l");
    /* iteration: every (key, source), sorted, with in_force */
    char out[2048] = "";
    put(s, CONFIG_SOURCE_LOCAL, "services/web/backends/b", "{\"ipv4\":\"10.0.0.2\",\"tcp\":\"x\"}", &r);
    CHECK_INT(config_store_foreach_entry(s, dump, out), 0);
    CHECK_STR(out, "routes/a advertised in-force\nroutes/e etcd\nroutes/l local in-force\n"
                   "services/web/backends/b local no-value\nservices/web/frontend etcd in-force\n");
    config_result_free(&r);
    config_store_free(s);
}

static void test_store_sync(void)
{
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    put(s, CONFIG_SOURCE_ETCD, "services/a/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}", &r);
    put(s, CONFIG_SOURCE_ETCD, "services/b/frontend", "{\"ipv4\":\"10.0.0.2\",\"tcp\":80}", &r);
    put(s, CONFIG_SOURCE_LOCAL, "services/c/frontend", "{\"ipv4\":\"10.0.0.3\",\"tcp\":80}", &r);
    put(s, CONFIG_SOURCE_ETCD, "routes/x", "{\"Prefix4\":\"10.0.0.0/8\"}", &r);
    CHECK_INT(config_store_sync_begin(s, CONFIG_SOURCE_ETCD), 0);
    put(s, CONFIG_SOURCE_ETCD, "services/a/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}", &r);
    CHECK(!r.changed);
    CHECK_INT(config_store_sync_end(s, CONFIG_SOURCE_ETCD, &r), 0);
    CHECK_STR(joined(&r.services), "b,");
    CHECK(config_store_frontend(s, "a") && !config_store_frontend(s, "b") && config_store_frontend(s, "c"));
    config_result_free(&r);
    config_store_free(s);
}

/* Two services on one VIP: both are touched when either changes. */
static void test_store_touch_conflicts(void)
{
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    put(s, CONFIG_SOURCE_ETCD, "services/zeta/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}", &r);
    CHECK_STR(joined(&r.services), "zeta,");
    put(s, CONFIG_SOURCE_ETCD, "services/alpha/frontend", "{\"ipv4\":\"10.0.0.1\",\"tcp\":80,\"udp\":53}", &r);
    CHECK_STR(joined(&r.services), "alpha,zeta,");
    config_svckey k[CONFIG_SVCKEYS_MAX];
    CHECK_INT(config_frontend_svckeys(config_store_frontend(s, "zeta"), k), 1);
    CHECK_STR(config_store_svckey_owner(s, &k[0]), "alpha");
    del(s, CONFIG_SOURCE_ETCD, "services/alpha/frontend", &r);
    CHECK_STR(joined(&r.services), "alpha,zeta,");
    CHECK_STR(config_store_svckey_owner(s, &k[0]), "zeta");
    put(s, CONFIG_SOURCE_ETCD, "services/alpha/backends/b", "{\"ipv4\":\"10.0.0.9\"}", &r);
    CHECK_STR(joined(&r.services), "alpha,");
    config_result_free(&r);
    config_store_free(s);
}

/* ---- the corpus: tests/corpus/invalid/<case>: key, newline, value ---- */

static const char *base_keys[][2] = {
    {"services/web/frontend", "{\"ipv4\":\"10.0.0.1\",\"ipv6\":\"2001:db8::1\",\"tcp\":80,\"udp\":53}"},
    {"services/web/backends/b1", "{\"ipv4\":\"10.1.0.1\",\"tcp\":8080,\"weight\":5}"},
    {"services/web/backends/b2", "{\"ipv6\":\"2001:db8::2\",\"udp\":53}"},
    {"routes/r1", "{\"Prefix4\":\"10.1.0.0/16\",\"Gateway4\":\"10.9.0.1\",\"IpvsMethod\":\"droute\"}"},
    {"services/other/frontend", "{\"ipv4\":\"10.0.0.2\",\"tcp\":80}"},
};

static int dump_entry(const config_entry *e, void *ctx)
{
    char *js = e->value ? config_value_to_json(e->value) : NULL;
    char line[1024];
    snprintf(line, sizeof line, "%s %d %d %s\n", e->key, e->source, e->in_force, js ? js : "-");
    free(js);
    strncat(ctx, line, 16383 - strlen(ctx));
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* One corpus case against a store holding base_keys: rejected, key named, nothing changed. */
static void corpus_case(const char *file, const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    if (!CHECK_MSG(nl, "%s: no key line", file))
        return;
    char key[512];
    snprintf(key, sizeof key, "%.*s", (int)(nl - buf), buf);
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    for (size_t i = 0; i < sizeof base_keys / sizeof base_keys[0]; i++)
        put(s, CONFIG_SOURCE_ETCD, base_keys[i][0], base_keys[i][1], &r);
    char *before = calloc(1, 16384), *after = calloc(1, 16384);
    config_store_foreach_entry(s, dump_entry, before);
    config_event ev = {.source = CONFIG_SOURCE_ETCD, .key = key, .key_len = strlen(key),
                       .value = nl + 1, .value_len = len - (size_t)(nl + 1 - buf), .revision = 99};
    int rc = config_store_apply(s, &ev, &r);
    CHECK_MSG(rc == -EINVAL, "%s: rc %d (accepted?)", file, rc);
    CHECK_MSG(strncmp(r.error, key, strlen(key)) == 0 && r.error[strlen(key)] == ':',
              "%s: error does not name the key: %s", file, r.error);
    CHECK_MSG(!r.changed && r.services.n == 0, "%s: something changed", file);
    config_store_foreach_entry(s, dump_entry, after);
    CHECK_MSG(strcmp(before, after) == 0, "%s: store changed:\n%s---\n%s", file, before, after);
    CHECK_MSG(config_store_invalid_count(s) == 1, "%s: invalid count %zu", file,
              config_store_invalid_count(s));
    free(before);
    free(after);
    config_result_free(&r);
    config_store_free(s);
}

static void test_corpus(void)
{
    const char *dir = "tests/corpus/invalid";
    DIR *d = opendir(dir);
    if (!d) {
        check_skip("%s not found (run from the repository root)", dir);
        return;
    }
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[600];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *buf = read_file(path, &len);
        if (CHECK_MSG(buf, "cannot read %s", path))
            corpus_case(de->d_name, buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    CHECK_MSG(n >= 100, "only %d corpus cases", n);
}

/* Generated at test time: values too big for files. */
static void test_corpus_generated(void)
{
    size_t big = (1 << 20) + 16;
    char *buf = malloc(big + 64);
    int n = sprintf(buf, "services/web/backends/b1\n{\"ipv4\":\"");
    memset(buf + n, 'x', big);
    n += (int)big;
    n += sprintf(buf + n, "\"}");
    corpus_case("1MiB-string", buf, (size_t)n);
    n = sprintf(buf, "routes/r1\n{\"x\":");
    for (int i = 0; i < 100000; i++)
        buf[n++] = '[';
    corpus_case("deep-nesting", buf, (size_t)n);
    free(buf);
}

/* A route change touches exactly the services with a backend under its old or new prefix,
 * found through the address-block index: one block (/24, /64), a few blocks enumerated
 * (/20), or a walk over every block (/8, ::/0). */
static void test_route_touches_covered(void)
{
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    char key[96], val[160];
    for (int i = 0; i < 300; i++) { /* s<i>: one backend in 10.6.<i>.0/24 or 10.7.<i>.0/24 */
        snprintf(key, sizeof key, "services/s%03d/frontend", i);
        CHECK_INT(put(s, CONFIG_SOURCE_ETCD, key, "{\"ipv4\":\"10.0.0.1\",\"tcp\":80}", &r), 0);
        snprintf(key, sizeof key, "services/s%03d/backends/b", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"10.%d.%d.5\",\"ipv6\":\"2001:db8:%x:%x::5\",\"tcp\":80}",
                 6 + i % 2, i / 2, i % 2, i / 2);
        CHECK_INT(put(s, CONFIG_SOURCE_ETCD, key, val, &r), 0);
    }
    /* one /24: s002 (10.6.1.5) only */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/r", "{\"Prefix4\":\"10.6.1.0/24\"}", &r), 0);
    CHECK_STR(joined(&r.services), "s002,");
    /* moved to a /20 (16 blocks, enumerated): the old /24's s002 and 10.6.0-15.x */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/r", "{\"Prefix4\":\"10.6.16.0/20\"}", &r), 0);
    CHECK_STR(joined(&r.services), "s002,s032,s034,s036,s038,s040,s042,s044,s046,s048,s050,"
                                   "s052,s054,s056,s058,s060,s062,");
    /* a /8: every block is walked; all 300 */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/r", "{\"Prefix4\":\"10.0.0.0/8\"}", &r), 0);
    CHECK_INT(r.services.n, 300);
    CHECK_INT(del(s, CONFIG_SOURCE_ETCD, "routes/r", &r), 0);
    CHECK_INT(r.services.n, 300);
    /* IPv6: one /64 block, then a /48 (walk) */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/v6", "{\"Prefix6\":\"2001:db8:1:7::/64\"}", &r), 0);
    CHECK_STR(joined(&r.services), "s015,");
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/v6", "{\"Prefix6\":\"2001:db8:1::/48\"}", &r), 0);
    CHECK_INT(r.services.n, 150);
    /* a backend moved out of the prefix is no longer touched by it */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "services/s015/backends/b", "{\"ipv4\":\"10.9.0.1\",\"tcp\":80}", &r), 0);
    CHECK_INT(del(s, CONFIG_SOURCE_ETCD, "routes/v6", &r), 0);
    CHECK_INT(r.services.n, 149);
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/x", "{\"Prefix4\":\"10.9.0.0/24\"}", &r), 0);
    CHECK_STR(joined(&r.services), "s015,");
    /* a route over no backend touches nothing */
    CHECK_INT(put(s, CONFIG_SOURCE_ETCD, "routes/y", "{\"Prefix4\":\"192.0.2.0/24\"}", &r), 0);
    CHECK(r.changed);
    CHECK_INT(r.services.n, 0);
    config_result_free(&r);
    config_store_free(s);
}

/* The store's footprint per key at scale (issue #8, P4: 110k keys within the daemon's 80 MB):
 * 2,000 services of 10 backends, keys and values as the benchmark writes them, every index
 * included. A key used to cost 347 bytes (node, key copy, a slot sized for any kind, map
 * entry: four chunks); one allocation per node with its key, a 16-bit key length and name
 * offset and slots sized for their kind: 272. */
static void test_store_footprint(void)
{
    if (!heap_use_available()) {
        printf("  (store_footprint: malloc accounting not visible under this allocator; not measured)\n");
        return;
    }
    enum { SERVICES = 2000, BACKENDS = 10 };
    size_t before = heap_use_now();
    config_store *s = config_store_new(NULL);
    config_result r;
    config_result_init(&r);
    char key[128], val[128];
    int bad = 0;
    for (int i = 0; i < SERVICES; i++) {
        snprintf(key, sizeof key, "services/s%d/frontend", i);
        snprintf(val, sizeof val, "{\"ipv4\":\"172.16.%d.%d\",\"tcp\":80}", i / 256, i % 256);
        bad += put(s, CONFIG_SOURCE_ETCD, key, val, &r) != 0;
        for (int j = 0; j < BACKENDS; j++) {
            int n = i * BACKENDS + j + 1;
            snprintf(key, sizeof key, "services/s%d/backends/b%d", i, j);
            snprintf(val, sizeof val, "{\"ipv4\":\"10.%d.%d.%d\",\"tcp\":8080}", n / 65536,
                     n / 256 % 256, n % 256);
            bad += put(s, CONFIG_SOURCE_ETCD, key, val, &r) != 0;
        }
    }
    config_result_free(&r);
    size_t per_key = (heap_use_now() - before) / (SERVICES * (BACKENDS + 1));
    printf("  store_footprint: %zu bytes per key\n", per_key);
    CHECK_INT(bad, 0);
    CHECK_MSG(per_key <= 290, "the store holds %zu bytes per key, budget 290", per_key);
    config_store_free(s);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("keys", test_keys);
    check_run("valid_values", test_valid_values);
    check_run("invalid_values", test_invalid_values);
    check_run("invalid_binary", test_invalid_binary);
    check_run("defaults", test_defaults);
    check_run("store_stale", test_store_stale);
    check_run("store_sources", test_store_sources);
    check_run("store_sync", test_store_sync);
    check_run("store_touch_conflicts", test_store_touch_conflicts);
    check_run("route_touches_covered", test_route_touches_covered);
    check_run("store_footprint", test_store_footprint);
    check_run("corpus", test_corpus);
    check_run("corpus_generated", test_corpus_generated);
    return check_end();
}
