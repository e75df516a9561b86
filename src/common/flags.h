/* flags.h -- command-line flags shared by the three programs.
 *
 * Every flag is accepted as -flag or --flag, with =value or a separate value, and has an
 * environment variable (CLUSTERF_<NAME>, '-' -> '_', upper case) read first; the command
 * line wins. Defaults are whatever the destination holds before flags_parse(). */
#ifndef CLUSTERF_FLAGS_H
#define CLUSTERF_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flag_kind {
    FLAG_STRING,   /* dest: const char ** (points into argv/environ; never freed) */
    FLAG_BOOL,     /* dest: bool *; "-x", "-x=true|false|1|0|yes|no" */
    FLAG_INT,      /* dest: long *; decimal, range-checked against min/max */
    FLAG_DURATION, /* dest: int64_t * milliseconds; "500ms", "10s", "2m", "3" */
};

typedef struct flag_def {
    const char *name;    /* "etcd-endpoints"; NULL ends the table */
    enum flag_kind kind;
    void *dest;
    const char *metavar; /* "URLS"; shown in --help */
    const char *help;    /* one line */
    long min, max;       /* FLAG_INT only */
} flag_def;

/* Apply environment variables, then argv. On success returns the index in argv of the first
 * positional argument (argv is permuted so positionals come last). On error returns -EINVAL
 * with a message naming the flag (or variable) and the bad value in err. */
int flags_parse(const flag_def *defs, int argc, char **argv, char *err, size_t errlen);

/* Print "Usage: <usage>" then one line per flag with its variable and current default. */
void flags_usage(FILE *out, const char *usage, const flag_def *defs);

/* The environment variable of a flag: "etcd-endpoints" -> "CLUSTERF_ETCD_ENDPOINTS". */
void flags_env_name(const char *flag, char *buf, size_t size);

#endif
