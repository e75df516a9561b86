/* timeutil.c -- duration parsing, monotonic milliseconds, jittered exponential backoff. */
#include "common/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Milliseconds per unit suffix, or 0 when the suffix is unknown. */
static int64_t duration_unit_ms(const char *u, size_t len)
{
    static const struct { const char *name; int64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == len && strncmp(u, units[i].name, len) == 0)
            return units[i].ms;
    return 0;
}

int duration_parse(const char *s, int64_t *ms_out)
{
    if (!s || !*s)
        return -EINVAL;
    const char *p = s;
    double total = 0;
    int parts = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || v < 0)
            return -EINVAL;
        p = end;
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        int64_t unit = ulen ? duration_unit_ms(p, ulen) : 1000;
        if (!unit || (!ulen && parts > 0))
            return -EINVAL;
        total += v * (double)unit;
        p += ulen;
        parts++;
        if (!ulen && *p)
            return -EINVAL;
    }
    if (total > 9.0e15)
        return -EINVAL;
    *ms_out = (int64_t)(total + 0.5);
    return 0;
}

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms)
{
    b->min_ms = min_ms > 0 ? min_ms : 1;
    b->max_ms = max_ms > b->min_ms ? max_ms : b->min_ms;
    b->cur_ms = b->min_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)b << 16) ^ 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: enough randomness to spread reconnects of many hosts apart. */
static uint64_t backoff_rand(backoff *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

int64_t backoff_next(backoff *b)
{
    int64_t cur = b->cur_ms;
    int64_t half = cur / 2;
    int64_t delay = half + (int64_t)(backoff_rand(b) % (uint64_t)(cur - half + 1));
    b->cur_ms = cur >= b->max_ms / 2 ? b->max_ms : cur * 2;
    return delay;
}

void backoff_reset(backoff *b)
{
    b->cur_ms = b->min_ms;
}
