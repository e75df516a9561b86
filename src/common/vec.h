/* vec.h -- growing a plain C array (pointer + capacity) by doubling; no I/O. */
#ifndef CLUSTERF_VEC_H
#define CLUSTERF_VEC_H

#include <stddef.h>

/* Make *items (of *cap elements of elem bytes) hold at least need elements, doubling the
 * capacity (first 8). Returns 0, or -ENOMEM with *items and *cap unchanged. */
int vec_grow(void **items, size_t *cap, size_t need, size_t elem);

#endif
