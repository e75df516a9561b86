#!/usr/bin/env bash
# test_soak.sh -- the fault suite (issue #9: scenarios 1, 2, 4, 7a) against a real etcd and the
# real kernel IPVS in the VM (tests/vm/guest_soak.sh): churn while etcd is killed -9 and
# restarted, compaction past a stopped daemon's watch, kernel drift by hand beside foreign
# services, and the daemon's fds and RSS across the churn (slopes printed as measurements).
# Every checkpoint compares the kernel with the writer's model and runs clusterfctl status.
# Usage: test_soak.sh [SCENARIO-SUBSTRING]
# Environment: CLUSTERF_SOAK=1 for the long version (10000 changes, 20 etcd restarts, 1000 drift
# changes; hours of VM time: give the suite a limit, CLUSTERF_SUITE_TIMEOUT_test_soak_sh);
# knobs CLUSTERF_SOAK_CHANGES, CLUSTERF_SOAK_RESTARTS, CLUSTERF_SOAK_DRIFT_CHANGES,
# CLUSTERF_SOAK_COMPACT_CHANGES, CLUSTERF_SOAK_CHECK_EVERY, CLUSTERF_SOAK_SEED (see the guest).
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
if [ "${CLUSTERF_SOAK:-0}" = 1 ]; then changes=10000 drift=1000; else changes=150 drift=60; fi
changes=${CLUSTERF_SOAK_CHANGES:-$changes}
drift=${CLUSTERF_SOAK_DRIFT_CHANGES:-$drift}
exec tests/vm/run-guest test_soak tests/vm/guest_soak.sh \
    --mem 2048 --timeout $((900 + 2 * changes + 2 * drift)) \
    --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" \
    --add "$BUILD/clusterfctl:/usr/bin/clusterfctl" -- "$@"
