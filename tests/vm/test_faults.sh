#!/usr/bin/env bash
# test_faults.sh -- clusterf-ipvs under etcd faults, against a real etcd and the real kernel
# IPVS in the VM (tests/vm/guest_faults.sh): etcd frozen with SIGSTOP must never freeze the
# daemon's event loop (SIGHUP, local tree changes, SIGTERM, start-up), the daemon catches up
# once etcd is resumed, and a lease whose route put was refused is revoked; bad input (a 1.4 MiB
# value, 10,000 backends of one service, a scheduler the kernel lacks) is named and the rest
# applied.
# Usage: test_faults.sh [SCENARIO-SUBSTRING]
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
exec tests/vm/run-guest test_faults tests/vm/guest_faults.sh \
    --timeout 600 --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" \
    --add "$BUILD/clusterfctl:/usr/bin/clusterfctl" -- "$@"
