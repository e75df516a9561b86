/* check.h -- the tiny test framework every C test binary uses.
 *
 * A test binary calls check_run("name", fn) for each test, then returns check_end().
 * Inside a test, CHECK*() record failures (the test goes on) and check_skip() marks a
 * missing prerequisite. check_end() prints "<binary>: N passed, N failed, N skipped" and
 * returns the exit status. Under CLUSTERF_REQUIRE_ALL=1 a skip counts as a failure. */
#ifndef CLUSTERF_TEST_CHECK_H
#define CLUSTERF_TEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

void check_init(int argc, char **argv);
void check_run(const char *name, void (*fn)(void));
int check_end(void);

/* Record a failure at file:line with a printf-style message; returns false. */
bool check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Mark the current test skipped because a prerequisite is missing. */
void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Judge a prerequisite's start result (etcdh_start, dockerd_harness_start): 0 -> true; -ENOENT or
 * -ENOTSUP (not installed) -> a skip; any other value (installed but it did not start) -> a
 * failure. what names it in the message. */
bool check_need(int start_rc, const char *what);
/* True when the current test has recorded a failure or skip. */
bool check_failed(void);
/* The factor a suite multiplies its time bounds by (wait caps, lease TTLs, deadlines it passes
 * to the programs): CLUSTERF_SLOW_FACTOR, a whole number 1..1000 (make memcheck sets it, its
 * programs running under valgrind many times slower), else 1. Only bounds scale, never what a
 * check asserts. */
int check_slow_factor(void);

#define CHECK(c) ((c) ? true : check_fail(__FILE__, __LINE__, "CHECK(%s)", #c))
#define CHECK_MSG(c, ...) ((c) ? true : check_fail(__FILE__, __LINE__, __VA_ARGS__))
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) check_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) check_fail(__FILE__, __LINE__, \
        "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    } while (0)

#endif
