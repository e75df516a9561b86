/* check.c -- counters and reporting for tests/lib/check.h. */
#include "check.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *check_prog = "test";
static const char *check_filter;   /* run only tests whose name contains this */
static int n_passed, n_failed, n_skipped;
static bool cur_failed, cur_skipped;
static const char *cur_name;

/* Remember the binary's name; argv[1], if given, filters tests by substring. */
void check_init(int argc, char **argv)
{
    if (argc > 0)
        check_prog = basename(argv[0]);
    if (argc > 1)
        check_filter = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static bool require_all(void)
{
    const char *v = getenv("CLUSTERF_REQUIRE_ALL");
    return v && *v && strcmp(v, "0") != 0;
}

/* Run one test and count it as passed, failed or skipped. */
void check_run(const char *name, void (*fn)(void))
{
    if (check_filter && !strstr(name, check_filter))
        return;
    cur_name = name;
    cur_failed = cur_skipped = false;
    fn();
    if (cur_failed) {
        n_failed++;
        printf("FAIL %s\n", name);
    } else if (cur_skipped) {
        n_skipped++;
        printf("SKIP %s\n", name);
    } else {
        n_passed++;
        printf("ok   %s\n", name);
    }
}

bool check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("  %s:%d: %s: ", file, line, cur_name ? cur_name : "?");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    cur_failed = true;
    return false;
}

void check_skip(const char *fmt, ...)
{
    va_list ap;
    printf("  SKIPPED %s: ", cur_name ? cur_name : "?");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (require_all()) {
        printf(" (a failure: CLUSTERF_REQUIRE_ALL=1)\n");
        cur_failed = true;
    } else {
        printf("\n");
        cur_skipped = true;
    }
}

bool check_need(int start_rc, const char *what)
{
    if (start_rc == 0)
        return true;
    if (start_rc == -ENOENT || start_rc == -ENOTSUP)
        check_skip("not installed: %s", what);
    else
        check_fail(__FILE__, __LINE__, "installed but did not start (%s): %s",
                   strerror(-start_rc), what);
    return false;
}

bool check_failed(void)
{
    return cur_failed || cur_skipped;
}

int check_slow_factor(void)
{
    const char *v = getenv("CLUSTERF_SLOW_FACTOR");
    if (!v || !*v)
        return 1;
    char *end;
    long f = strtol(v, &end, 10);
    if (*end != '\0' || f < 1 || f > 1000) {
        printf("  CLUSTERF_SLOW_FACTOR=%s is not a whole number 1..1000: using 1\n", v);
        return 1;
    }
    return (int)f;
}

int check_end(void)
{
    printf("%s: %d passed, %d failed, %d skipped\n", check_prog, n_passed, n_failed, n_skipped);
    return n_failed ? 1 : 0;
}
