#!/usr/bin/env bash
# test_frontends.sh -- several frontends agree (issue #12): three network namespaces in the VM,
# each with its own kernel IPVS table and its own clusterf-ipvs, fed by a 3-member etcd
# (tests/vm/guest_frontends.sh): real packets through each frontend's VIP, graceful removal
# through each, and identical tables after each of 200 random changes, with a daemon killed -9
# and an etcd member killed during the churn; prints the spread (p50/p99) as a measurement.
# Usage: test_frontends.sh [SCENARIO-SUBSTRING]
# Environment: CLUSTERF_FRONTENDS_CHANGES (default 200; more for a longer run, the VM time
# limit grows with it), CLUSTERF_FRONTENDS_SEED (default 12).
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
changes=${CLUSTERF_FRONTENDS_CHANGES:-200}
# Three sanitized daemons under TCG take about twice as long (`make asan` gives the suite 3000 s).
slow=1
grep -q __asan_init "$BUILD/clusterf-ipvs" 2>/dev/null && slow=2
exec tests/vm/run-guest test_frontends tests/vm/guest_frontends.sh \
    --mem 2048 --timeout $(((600 + 3 * changes) * slow)) \
    --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" -- "$@"
