/* config_int.h -- internals shared by the config/ .c files (not part of the public API):
 * the string list helpers and message formatting. */
#ifndef CLUSTERF_CONFIG_INT_H
#define CLUSTERF_CONFIG_INT_H

#include "common/bytemap.h"
#include "config/config.h"

#include <stdarg.h>

/* Write s (len bytes) into buf for a message: printable ASCII as is, anything else as \xNN,
 * '"' and '\\' escaped, cut with "..." beyond max bytes of input. Returns buf. */
const char *config_quote(char *buf, size_t size, const char *s, size_t len, size_t max);

#endif
