/* heap_use.c -- malloc'd bytes in use from glibc's mallinfo2 (see heap_use.h). */
#include "heap_use.h"

#include <malloc.h>
#include <stdlib.h>

size_t heap_use_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
}

bool heap_use_available(void)
{
    size_t before = heap_use_now();
    void *volatile p = malloc(4000); /* below the mmap threshold: counted in uordblks */
    size_t after = heap_use_now();
    free(p);
    return after >= before + 4000;
}
