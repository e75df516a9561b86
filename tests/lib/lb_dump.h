/* lb_dump.h -- test helper: an lb_table as ipvsadm-like text, for comparing tables. */
#ifndef CLUSTERF_TEST_LB_DUMP_H
#define CLUSTERF_TEST_LB_DUMP_H

#include "lb/lb.h"

/* Services (with owner, scheduler, flags, timeout, netmask) and their destinations, one per
 * line; only services whose owner is `owner` when it is not NULL. Returns a malloc'd string
 * (never NULL: aborts the test binary on allocation failure). */
char *lb_dump(const lb_table *t, const char *owner);

#endif
