#!/usr/bin/env bash
# ipvs-vm.sh -- benchmark in the VM: N IPVS services (default 2000) applied with src/ipvs's
# batched ipvs_apply() vs `ipvsadm -R` of the same N rules, same VM, same kernel. Prints both
# times and the ratio. Needs `make tests` (build/tests/vm/guest_ipvs). Usage: ipvs-vm.sh [N]
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
exec scripts/vm-run "$BUILD/tests/vm/guest_ipvs" --bench "${1:-2000}"
