/* test_bytemap.c -- common/bytemap against a plain array kept beside it: random puts, gets
 * and deletes (runs that wrap around the table's end, deletes that shift a run back), growth,
 * iteration that sees every entry once, clear and reuse. */
#include "check.h"
#include "common/bytemap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KEYS = 5000 };

static char keys[KEYS][16];
static bool present[KEYS];

/* Every key's presence and value as the array says; the count. */
static bool agrees(const bytemap *m)
{
    size_t n = 0;
    for (int i = 0; i < KEYS; i++) {
        void *v = bytemap_get(m, keys[i], strlen(keys[i]));
        if (present[i] ? v != keys[i] : v != NULL) {
            printf("  key %s: %p, want %s\n", keys[i], v, present[i] ? "itself" : "absent");
            return false;
        }
        n += present[i];
    }
    return m->n == n;
}

/* Iteration visits each present key exactly once. */
static bool iterates(const bytemap *m)
{
    static int seen[KEYS];
    memset(seen, 0, sizeof seen);
    size_t pos = 0, n = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(m, &pos, &e)) {
        int i = (int)(((char(*)[16])e->val) - keys);
        if (i < 0 || i >= KEYS || !present[i] || seen[i]++)
            return false;
        n++;
    }
    return n == m->n && e == NULL;
}

static void test_random_ops(void)
{
    bytemap m = {0};
    for (int i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "k%d", i * 7919);
    memset(present, 0, sizeof present);
    CHECK(bytemap_get(&m, "x", 1) == NULL);
    CHECK(bytemap_del(&m, "x", 1) == NULL);
    srandom(42);
    bool ok = true;
    for (int round = 0; round < 200000 && ok; round++) {
        int i = (int)(random() % KEYS);
        long op = random() % 10;
        if (op < 5 && !present[i]) {
            ok = bytemap_put(&m, keys[i], strlen(keys[i]), keys[i]) == 0;
            present[i] = true;
        } else if (op < 9 && present[i]) {
            ok = bytemap_del(&m, keys[i], strlen(keys[i])) == keys[i];
            present[i] = false;
        } else {
            ok = bytemap_get(&m, keys[i], strlen(keys[i])) == (present[i] ? keys[i] : NULL);
        }
        if (ok && round % 20000 == 0)
            ok = agrees(&m) && iterates(&m);
    }
    CHECK(ok);
    CHECK(agrees(&m));
    CHECK(iterates(&m));
    CHECK(m.n * 4 <= m.nb * 3);
    /* empty it by deletes: every run shifts back to nothing */
    for (int i = 0; i < KEYS; i++)
        if (present[i]) {
            CHECK(bytemap_del(&m, keys[i], strlen(keys[i])) == keys[i]);
            present[i] = false;
        }
    CHECK_INT(m.n, 0);
    size_t pos = 0;
    bytemap_entry *e = NULL;
    CHECK(!bytemap_next(&m, &pos, &e));
    bytemap_clear(&m);
    CHECK(m.nb == 0 && m.n == 0 && m.b == NULL);
    CHECK_INT(bytemap_put(&m, keys[0], strlen(keys[0]), keys[0]), 0); /* reusable */
    CHECK(bytemap_get(&m, keys[0], strlen(keys[0])) == keys[0]);
    bytemap_clear(&m);
}

/* Keys that collide in a small table, around its end: deleting the first of a wrapped run
 * must keep the rest findable (the shift-back crosses slot 0). */
static void test_wrapped_run(void)
{
    bytemap m = {0};
    static char k[12][8];
    /* 16 slots until 12 entries: find keys whose home is slot 15 or 14 */
    int found = 0;
    for (int i = 0; found < 8 && i < 100000; i++) {
        char buf[8];
        snprintf(buf, sizeof buf, "w%d", i);
        if ((bytemap_hash(buf, strlen(buf)) & 15) >= 14)
            memcpy(k[found++], buf, sizeof buf);
    }
    CHECK_INT(found, 8);
    for (int i = 0; i < found; i++)
        CHECK_INT(bytemap_put(&m, k[i], strlen(k[i]), k[i]), 0);
    CHECK_INT((int)m.nb, 16);
    for (int d = 0; d < found; d++) {
        CHECK(bytemap_del(&m, k[d], strlen(k[d])) == k[d]);
        for (int i = d + 1; i < found; i++)
            CHECK(bytemap_get(&m, k[i], strlen(k[i])) == k[i]);
        CHECK(bytemap_get(&m, k[d], strlen(k[d])) == NULL);
    }
    CHECK_INT(m.n, 0);
    /* (NULL, 0) is the empty key */
    CHECK_INT(bytemap_put(&m, NULL, 0, k[0]), 0);
    CHECK(bytemap_get(&m, "", 0) == k[0]);
    CHECK(bytemap_del(&m, NULL, 0) == k[0]);
    bytemap_clear(&m);
}

int main(int argc, char **argv)
{
    check_init(argc, argv);
    check_run("random_ops", test_random_ops);
    check_run("wrapped_run", test_wrapped_run);
    return check_end();
}
