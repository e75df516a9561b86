#!/usr/bin/env bash
# test_metrics_vm.sh -- clusterf-ipvs's /metrics against the real kernel IPVS in the VM
# (tests/vm/guest_metrics.sh): after real HTTP requests through a VIP, the per-service and
# per-destination counters it serves equal what `ipvsadm --stats --exact` shows.
# Usage: test_metrics_vm.sh
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
exec tests/vm/run-guest test_metrics_vm tests/vm/guest_metrics.sh \
    --timeout 600 --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" -- "$@"
