/* test_common.c -- durations, backoff, flags and logfmt quoting. */
#include "check.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/timeutil.h"

#include <errno.h>
#include <stdlib.h>

static void test_duration(void)
{
    static const struct { const char *s; int rc; int64_t ms; } cases[] = {
        {"500ms", 0, 500}, {"10s", 0, 10000}, {"2m", 0, 120000}, {"1h", 0, 3600000},
        {"1m30s", 0, 90000}, {"10", 0, 10000}, {"0.5", 0, 500}, {"0", 0, 0}, {"1.5s", 0, 1500},
        {"", -EINVAL, 0}, {"-1s", -EINVAL, 0}, {"10x", -EINVAL, 0}, {"s", -EINVAL, 0},
        {"10 s", -EINVAL, 0}, {"1s5", -EINVAL, 0}, {"99999999999999999999h", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -1;
        int rc = duration_parse(cases[i].s, &ms);
        CHECK_MSG(rc == cases[i].rc, "duration_parse(\"%s\") = %d", cases[i].s, rc);
        if (rc == 0)
            CHECK_MSG(ms == cases[i].ms, "duration_parse(\"%s\") = %lld ms", cases[i].s, (long long)ms);
    }
}

static void test_backoff(void)
{
    backoff b;
    backoff_init(&b, 100, 1000);
    int64_t prev_cap = 100;
    for (int i = 0; i < 20; i++) {
        int64_t d = backoff_next(&b);
        CHECK_MSG(d >= prev_cap / 2 && d <= prev_cap, "delay %lld outside [%lld,%lld]",
                  (long long)d, (long long)prev_cap / 2, (long long)prev_cap);
        prev_cap = prev_cap * 2 > 1000 ? 1000 : prev_cap * 2;
    }
    backoff_reset(&b);
    CHECK(backoff_next(&b) <= 100);
}

static void test_flags(void)
{
    const char *endpoints = "http://127.0.0.1:2379";
    bool flush = false, dry = true;
    long ttl = 10;
    int64_t resync = 60000;
    const flag_def defs[] = {
        {"etcd-endpoints", FLAG_STRING, &endpoints, "URLS", "etcd", 0, 0},
        {"flush", FLAG_BOOL, &flush, NULL, "flush", 0, 0},
        {"dry-run", FLAG_BOOL, &dry, NULL, "dry", 0, 0},
        {"ttl", FLAG_INT, &ttl, "S", "ttl", 1, 3600},
        {"resync-interval", FLAG_DURATION, &resync, "D", "resync", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    char err[256] = "";
    setenv("CLUSTERF_TTL", "30", 1);
    setenv("CLUSTERF_ETCD_ENDPOINTS", "http://env:1", 1);
    char *argv[] = {"prog", "-etcd-endpoints=http://a:1,http://b:2", "--flush", "pos1",
                    "-dry-run=false", "--resync-interval", "500ms", "pos2", NULL};
    int first = flags_parse(defs, 8, argv, err, sizeof err);
    CHECK_MSG(first == 6, "first positional %d (%s)", first, err);
    CHECK_STR(endpoints, "http://a:1,http://b:2");
    CHECK(flush);
    CHECK(!dry);
    CHECK_INT(ttl, 30);
    CHECK_INT(resync, 500);
    if (first == 6) {
        CHECK_STR(argv[6], "pos1");
        CHECK_STR(argv[7], "pos2");
    }
    char *bad[] = {"prog", "-ttl=0", NULL};
    CHECK_INT(flags_parse(defs, 2, bad, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "-ttl") != NULL, "error names the flag: %s", err);
    char *unknown[] = {"prog", "--nope", NULL};
    CHECK_INT(flags_parse(defs, 2, unknown, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "--nope") != NULL, "error names the flag: %s", err);
    setenv("CLUSTERF_TTL", "abc", 1);
    char *none[] = {"prog", NULL};
    CHECK_INT(flags_parse(defs, 1, none, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, "CLUSTERF_TTL") != NULL, "error names the variable: %s", err);
    unsetenv("CLUSTERF_TTL");
    unsetenv("CLUSTERF_ETCD_ENDPOINTS");
}

static void test_log_quote(void)
{
    char buf[64];
    CHECK_STR(log_quote(buf, sizeof buf, "web"), "web");
    CHECK_STR(log_quote(buf, sizeof buf, "a b"), "\"a b\"");
    CHECK_STR(log_quote(buf, sizeof buf, "q\"\n"), "\"q\\\"\\n\"");
    CHECK_STR(log_quote(buf, sizeof buf, ""), "\"\"");
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(strlen(log_quote(buf, sizeof buf, big)) < sizeof buf);
    enum log_level l;
    CHECK_INT(log_parse_level("DEBUG", &l), 0);
    CHECK_INT(l, LOG_LEVEL_DEBUG);
    CHECK_INT(log_parse_level("loud", &l), -EINVAL);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("duration", test_duration);
    check_run("backoff", test_backoff);
    check_run("flags", test_flags);
    check_run("log_quote", test_log_quote);
    return check_end();
}
