/* fuzz_parse.c -- libFuzzer target for config/ key and value parsing.
 * Input: a key, '\n', a value (the format of tests/corpus/{valid,invalid}/). Checks: no crash,
 * no leak; an accepted value renders to JSON that parses back to the very same struct; every
 * error names its key. */
#include "config/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value that parsed must survive config_value_to_json -> config_parse_value unchanged. */
static void round_trip(const config_key *k, const config_value *v, const config_defaults *d)
{
    char *js = config_value_to_json(v);
    if (!js)
        return;
    config_value again;
    config_error err;
    if (config_parse_value(k, js, strlen(js), d, &again, NULL, &err) != 0) {
        fprintf(stderr, "rendered value rejected: %s: %s\n", js, err.msg);
        abort();
    }
    if (memcmp(&again, v, sizeof again) != 0) {
        fprintf(stderr, "round trip changed the value: %s\n", js);
        abort();
    }
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t klen = nl ? (size_t)(nl - in) : size;
    config_key k;
    config_error err;
    if (config_parse_key(in, klen, &k, &err) != 0) {
        if (!strstr(err.msg, "unknown key"))
            abort();
        return 0;
    }
    config_defaults d;
    config_defaults_init(&d);
    if (size && (data[size - 1] & 1))
        d.method = CONFIG_METHOD_TUNNEL;
    config_strs warn = {0};
    config_value v;
    const char *val = nl ? nl + 1 : "";
    size_t vlen = nl ? size - klen - 1 : 0;
    int r = config_parse_value(&k, val, vlen, &d, &v, &warn, &err);
    if (r == 0) {
        round_trip(&k, &v, &d);
    } else {
        char key[600];
        snprintf(key, sizeof key, "%s", k.kind == CONFIG_ROUTE ? "routes/" : "services/");
        if (strncmp(err.msg, key, strlen(key)) != 0 || !strchr(err.msg, ':'))
            abort();
    }
    config_strs_clear(&warn);
    return 0;
}
