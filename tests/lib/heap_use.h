/* heap_use.h -- bytes of malloc'd memory in use, from glibc's own accounting (mallinfo2), for
 * tests that hold a data structure to a memory budget per entry (issue #8, P4). Under a
 * replaced allocator (ASan, valgrind) glibc does not see the allocations: heap_use_available
 * says so, and such a test reports that it did not measure instead of passing on zeros. */
#ifndef CLUSTERF_TEST_HEAP_USE_H
#define CLUSTERF_TEST_HEAP_USE_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes in use in the main arena (chunks with their headers, as the process pays for them). */
size_t heap_use_now(void);
/* True when heap_use_now sees this process's malloc calls. */
bool heap_use_available(void);

#endif
