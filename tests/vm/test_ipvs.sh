#!/usr/bin/env bash
# test_ipvs.sh -- src/ipvs/ against the real kernel IPVS: boots the scripts/vm-run VM with
# build/tests/vm/guest_ipvs and relays its results (tests/vm/run-guest) as "test_ipvs: ...".
# Usage: test_ipvs.sh [FILTER]
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
exec tests/vm/run-guest test_ipvs "$BUILD/tests/vm/guest_ipvs" --timeout 400 -- "$@"
