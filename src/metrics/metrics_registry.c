/* metrics_registry.c -- the registry of metric families and their series, and its rendering
 * into the Prometheus text exposition format 0.0.4. Pure memory: no I/O, no locking (one
 * thread owns a registry). */
#include "metrics/metrics.h"

#include "common/bytemap.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the histogram buckets (seconds), +Inf implied. */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1, 2.5, 5, 10};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

typedef struct series {
    char *labels;
    double value;                    /* counter, gauge */
    uint64_t buckets[N_BUCKETS];     /* histogram: observations <= bucket_le[i] (not cumulative) */
    uint64_t count;
    double sum;
} series;

typedef struct family {
    const char *name, *help;
    enum metrics_type type;
    series **v;                      /* in creation order */
    size_t n, cap;
    bytemap index;                   /* labels -> series */
} family;

struct metrics_registry {
    family *fams;
    size_t n, cap;
};

metrics_registry *metrics_registry_new(void)
{
    return calloc(1, sizeof(metrics_registry));
}

void metrics_clear(metrics_registry *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++) {
        family *f = &r->fams[i];
        if (strcmp(f->name, name) != 0)
            continue;
        for (size_t j = 0; j < f->n; j++) {
            free(f->v[j]->labels);
            free(f->v[j]);
        }
        f->n = 0;
        bytemap_clear(&f->index);
    }
}

void metrics_registry_free(metrics_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        metrics_clear(r, r->fams[i].name);
        free(r->fams[i].v);
    }
    free(r->fams);
    free(r);
}

static family *find_family(const metrics_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->fams[i].name, name) == 0)
            return &r->fams[i];
    return NULL;
}

int metrics_declare(metrics_registry *r, const char *name, enum metrics_type type,
                    const char *help)
{
    if (find_family(r, name))
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        family *f = realloc(r->fams, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        r->fams = f;
        r->cap = cap;
    }
    r->fams[r->n++] = (family){.name = name, .help = help, .type = type};
    return 0;
}

/* The series of labels in f, created when missing; NULL when out of memory. */
static series *get_series(family *f, const char *labels)
{
    series *s = bytemap_get(&f->index, labels, strlen(labels));
    if (s)
        return s;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        series **v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return NULL;
        f->v = v;
        f->cap = cap;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->labels = strdup(labels)) ||
        bytemap_put(&f->index, s->labels, strlen(s->labels), s) < 0) {
        if (s)
            free(s->labels);
        free(s);
        return NULL;
    }
    f->v[f->n++] = s;
    return s;
}

/* The series for an update of a family of type want; sets *rc on failure. */
static series *lookup(metrics_registry *r, const char *name, const char *labels,
                      enum metrics_type want, bool any_scalar, int *rc)
{
    family *f = find_family(r, name);
    *rc = -ENOENT;
    if (!f)
        return NULL;
    *rc = -EINVAL;
    bool scalar = f->type != METRICS_HISTOGRAM;
    if (any_scalar ? !scalar : f->type != want)
        return NULL;
    series *s = get_series(f, labels ? labels : "");
    *rc = s ? 0 : -ENOMEM;
    return s;
}

int metrics_declare_all(metrics_registry *r, const metrics_family *fams, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (metrics_declare(r, fams[i].name, fams[i].type, fams[i].help) < 0)
            return -ENOMEM;
    return 0;
}

int metrics_add(metrics_registry *r, const char *name, const char *labels, double v)
{
    int rc;
    series *s = lookup(r, name, labels, METRICS_COUNTER, true, &rc);
    if (s)
        s->value += v;
    return rc;
}

int metrics_set(metrics_registry *r, const char *name, const char *labels, double v)
{
    int rc;
    series *s = lookup(r, name, labels, METRICS_GAUGE, true, &rc);
    if (s)
        s->value = v;
    return rc;
}

int metrics_observe(metrics_registry *r, const char *name, const char *labels, double v)
{
    int rc;
    series *s = lookup(r, name, labels, METRICS_HISTOGRAM, false, &rc);
    if (!s)
        return rc;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (v <= bucket_le[i]) {
            s->buckets[i]++;
            break;
        }
    s->count++;
    s->sum += v;
    return 0;
}

int metrics_label(char *buf, size_t size, const char *key, const char *value)
{
    size_t n = strlen(buf), start = n;
    int w = snprintf(buf + n, size - n, "%s%s=\"", n ? "," : "", key);
    if (w < 0 || (size_t)w >= size - n)
        goto nospace;
    n += (size_t)w;
    for (const char *p = value; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        size_t need = esc ? 2 : 1;
        if (n + need + 2 > size)
            goto nospace;
        memcpy(buf + n, esc ? esc : p, need);
        n += need;
    }
    memcpy(buf + n, "\"", 2);
    return 0;
nospace:
    buf[start] = '\0';
    return -ENOSPC;
}

/* A growable text buffer; err latches the first failure. */
typedef struct textbuf {
    char *p;
    size_t n, cap;
    int err;
} textbuf;

static void tb_printf(textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->err; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (w >= 0 && (size_t)w < t->cap - t->n) {
            t->n += (size_t)w;
            return;
        }
        size_t cap = (t->cap + (size_t)(w < 0 ? 0 : w) + 1) * 2;
        char *p = realloc(t->p, cap);
        if (w < 0 || !p) {
            t->err = -ENOMEM;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* A sample value as Prometheus reads it (integers without a fraction). */
static void tb_value(textbuf *t, double v)
{
    if (isinf(v))
        tb_printf(t, "%s\n", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        tb_printf(t, "%.0f\n", v);
    else
        tb_printf(t, "%.15g\n", v);
}

static void render_histogram(textbuf *t, const family *f, const series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += s->buckets[i];
        tb_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep, bucket_le[i],
                  (unsigned long long)cum);
    }
    tb_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
              (unsigned long long)s->count);
    tb_printf(t, s->labels[0] ? "%s_sum{%s} " : "%s_sum%s ", f->name, s->labels);
    tb_value(t, s->sum);
    tb_printf(t, s->labels[0] ? "%s_count{%s} " : "%s_count%s ", f->name, s->labels);
    tb_value(t, (double)s->count);
}

static void render_family(textbuf *t, const family *f)
{
    static const char *const type_name[] = {"counter", "gauge", "histogram"};
    tb_printf(t, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_name[f->type]);
    for (size_t i = 0; i < f->n; i++) {
        const series *s = f->v[i];
        if (f->type == METRICS_HISTOGRAM) {
            render_histogram(t, f, s);
            continue;
        }
        tb_printf(t, s->labels[0] ? "%s{%s} " : "%s%s ", f->name, s->labels);
        tb_value(t, s->value);
    }
}

int metrics_render(const metrics_registry *r, char **text, size_t *len)
{
    textbuf t = {0};
    tb_printf(&t, "%s", "");
    for (size_t i = 0; i < r->n && !t.err; i++)
        render_family(&t, &r->fams[i]);
    if (t.err) {
        free(t.p);
        *text = NULL;
        return t.err;
    }
    *text = t.p;
    *len = t.n;
    return 0;
}
