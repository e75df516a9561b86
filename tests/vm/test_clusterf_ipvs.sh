#!/usr/bin/env bash
# test_clusterf_ipvs.sh -- clusterf-ipvs against a real etcd and the real kernel IPVS in the
# VM (tests/vm/guest_clusterf_ipvs.sh): the seed transcript, routes, families, foreign rules,
# drift, invalid values, restarts, the local tree, clusterfctl status, the advertised route and
# real packets.
# Usage: test_clusterf_ipvs.sh [SCENARIO-SUBSTRING]
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
exec tests/vm/run-guest test_clusterf_ipvs tests/vm/guest_clusterf_ipvs.sh \
    --timeout 1700 --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" \
    --add "$BUILD/clusterfctl:/usr/bin/clusterfctl" -- "$@"
