/* flags.c -- getopt_long_only over a flag table, with an environment variable per flag. */
#include "common/flags.h"
#include "common/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void flags_env_name(const char *flag, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "CLUSTERF_");
    for (const char *p = flag; *p && o + 1 < size; p++)
        buf[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    if (o < size)
        buf[o] = '\0';
}

static int flags_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -EINVAL;
}

/* Store one value; `src` names where it came from ("-ttl" or "CLUSTERF_TTL") for errors. */
static int flags_set(const flag_def *d, const char *val, const char *src, char *err, size_t errlen)
{
    switch (d->kind) {
    case FLAG_STRING:
        *(const char **)d->dest = val;
        return 0;
    case FLAG_BOOL:
        if (!val)
            return *(bool *)d->dest = true, 0;
        if (flags_parse_bool(val, d->dest) == 0)
            return 0;
        snprintf(err, errlen, "%s: \"%s\" is not a boolean (true/false)", src, val);
        return -EINVAL;
    case FLAG_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < d->min || v > d->max) {
            snprintf(err, errlen, "%s: \"%s\" is not an integer in %ld..%ld", src, val, d->min, d->max);
            return -EINVAL;
        }
        *(long *)d->dest = v;
        return 0;
    }
    case FLAG_DURATION:
        if (duration_parse(val, d->dest) == 0)
            return 0;
        snprintf(err, errlen, "%s: \"%s\" is not a duration (500ms, 10s, 2m or seconds)", src, val);
        return -EINVAL;
    }
    return -EINVAL;
}

/* --help and --version act on the command line only. */
static bool flags_has_env(const flag_def *d)
{
    return strcmp(d->name, "help") != 0 && strcmp(d->name, "version") != 0;
}

static int flags_apply_env(const flag_def *defs, char *err, size_t errlen)
{
    for (const flag_def *d = defs; d->name; d++) {
        char env[128];
        if (!flags_has_env(d))
            continue;
        flags_env_name(d->name, env, sizeof env);
        const char *v = getenv(env);
        if (v && flags_set(d, v, env, err, errlen) < 0)
            return -EINVAL;
    }
    return 0;
}

int flags_parse(const flag_def *defs, int argc, char **argv, char *err, size_t errlen)
{
    size_t n = 0;
    while (defs[n].name)
        n++;
    struct option *opts = calloc(n + 1, sizeof *opts);
    if (!opts)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        opts[i] = (struct option){defs[i].name,
                                  defs[i].kind == FLAG_BOOL ? optional_argument : required_argument,
                                  NULL, (int)(i + 256)};
    int rc = flags_apply_env(defs, err, errlen);
    optind = 1;
    opterr = 0;
    while (rc == 0) {
        int c = getopt_long_only(argc, argv, "", opts, NULL);
        if (c == -1)
            break;
        if (c >= 256 && (size_t)(c - 256) < n) {
            const flag_def *d = &defs[c - 256];
            char src[160];
            snprintf(src, sizeof src, "-%s", d->name);
            rc = flags_set(d, optarg, src, err, errlen);
        } else {
            const char *bad = argv[optind - 1] ? argv[optind - 1] : "?";
            if (c == ':' || (optopt >= 256 && (size_t)(optopt - 256) < n))
                snprintf(err, errlen, "%s: needs a value", bad);
            else
                snprintf(err, errlen, "%s: unknown flag (see --help)", bad);
            rc = -EINVAL;
        }
    }
    free(opts);
    return rc < 0 ? rc : optind;
}

static void flags_default_text(const flag_def *d, char *buf, size_t size)
{
    buf[0] = '\0';
    switch (d->kind) {
    case FLAG_STRING: {
        const char *v = *(const char **)d->dest;
        if (v && *v)
            snprintf(buf, size, " (default %s)", v);
        break;
    }
    case FLAG_BOOL:
        break;
    case FLAG_INT:
        snprintf(buf, size, " (default %ld)", *(long *)d->dest);
        break;
    case FLAG_DURATION: {
        int64_t ms = *(int64_t *)d->dest;
        if (ms % 1000)
            snprintf(buf, size, " (default %lldms)", (long long)ms);
        else
            snprintf(buf, size, " (default %llds)", (long long)(ms / 1000));
        break;
    }
    }
}

void flags_usage(FILE *out, const char *usage, const flag_def *defs)
{
    fprintf(out, "Usage: %s\n\nFlags (each also -flag; environment variable in brackets):\n", usage);
    for (const flag_def *d = defs; d->name; d++) {
        char env[128], def[256], left[160];
        flags_env_name(d->name, env, sizeof env);
        flags_default_text(d, def, sizeof def);
        snprintf(left, sizeof left, "--%s%s%s", d->name, d->metavar ? "=" : "", d->metavar ? d->metavar : "");
        if (flags_has_env(d))
            fprintf(out, "  %-34s %s%s [%s]\n", left, d->help, def, env);
        else
            fprintf(out, "  %-34s %s\n", left, d->help);
    }
}
