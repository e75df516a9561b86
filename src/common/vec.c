/* vec.c -- the doubling array growth of vec.h. */
#include "common/vec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int vec_grow(void **items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 8;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        cap2 *= 2;
    }
    void *p = realloc(*items, cap2 * elem);
    if (!p)
        return -ENOMEM;
    *items = p;
    *cap = cap2;
    return 0;
}
