/* fake_ipvs.h -- an in-memory IPVS table behind struct ipvs_iface, with the kernel's answers
 * (EEXIST, ESRCH, ENOENT) and injectable failures, for unit tests of reconcile/. It is the
 * stand-in for the kernel in pure-logic tests only; tests/vm/ runs against the real kernel. */
#ifndef CLUSTERF_TEST_FAKE_IPVS_H
#define CLUSTERF_TEST_FAKE_IPVS_H

#include "ipvs/ipvs.h"

typedef struct fake_ipvs fake_ipvs;

fake_ipvs *fake_ipvs_new(void);
void fake_ipvs_free(fake_ipvs *f);
struct ipvs_iface fake_ipvs_iface(fake_ipvs *f);

/* Apply ops directly (as `ipvsadm` by hand would); returns the number that failed. */
size_t fake_ipvs_do(fake_ipvs *f, enum ipvs_op_kind kind, const struct ipvs_service *svc,
                    const struct ipvs_dest *dest);
/* A scheduler name the fake refuses with -ENOENT (like an unknown module); NULL: none. */
void fake_ipvs_refuse_sched(fake_ipvs *f, const char *sched);
/* Make every later dump fail with -EIO (true) or work again (false). */
void fake_ipvs_fail_dumps(fake_ipvs *f, bool fail);

size_t fake_ipvs_n_services(const fake_ipvs *f);
/* The service with svc's identity and its dests, or NULL. */
const struct ipvs_entry *fake_ipvs_find(const fake_ipvs *f, const struct ipvs_service *svc);
/* The dest with d's identity in svc, or NULL. */
const struct ipvs_dest *fake_ipvs_find_dest(const fake_ipvs *f, const struct ipvs_service *svc,
                                            const struct ipvs_dest *d);
/* Ops applied through the iface since creation, and apply() calls. */
size_t fake_ipvs_ops(const fake_ipvs *f);
size_t fake_ipvs_applies(const fake_ipvs *f);

#endif
