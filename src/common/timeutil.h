/* timeutil.h -- durations as operators write them, the monotonic clock, and retry backoff. */
#ifndef CLUSTERF_TIMEUTIL_H
#define CLUSTERF_TIMEUTIL_H

#include <stdint.h>

/* Parse "500ms", "10s", "2m", "1h", "1m30s" or a plain number of seconds ("10", "0.5") into
 * milliseconds. Returns 0, or -EINVAL for anything else (empty, negative, junk, overflow). */
int duration_parse(const char *s, int64_t *ms_out);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t clock_now_ms(void);
/* Microseconds on CLOCK_MONOTONIC (for summing many short phases). */
int64_t clock_now_us(void);

/* Capped exponential backoff with jitter: each delay is uniformly random in
 * [cur/2, cur], and cur doubles up to max_ms. backoff_reset() after a success. */
typedef struct backoff {
    int64_t min_ms, max_ms, cur_ms;
    uint64_t rng;
} backoff;

void backoff_init(backoff *b, int64_t min_ms, int64_t max_ms);
int64_t backoff_next(backoff *b);
void backoff_reset(backoff *b);

#endif
