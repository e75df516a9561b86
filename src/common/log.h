/* log.h -- logfmt logging to stderr for the daemons and tools (never used by config/ or lb/).
 *
 * log_info("msg=\"applied\" service=%s", name) prints
 *   ts=2026-11-26T15:44:23.123Z level=info msg="applied" service=web
 * The caller writes the key=value pairs; log_quote() makes a value safe for logfmt. */
#ifndef CLUSTERF_LOG_H
#define CLUSTERF_LOG_H

#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Parse "debug", "info", "warn" or "error"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

/* Write s as a logfmt value into buf: bare if it needs no quoting, else "..." with \" \\ \n
 * and non-printable bytes escaped; truncated with "..." to fit. Returns buf. */
const char *log_quote(char *buf, size_t size, const char *s);

#endif
