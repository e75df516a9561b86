#!/usr/bin/env bash
# test_ipvs.sh -- src/ipvs/ against the real kernel IPVS: boots the scripts/vm-run VM with
# build/tests/vm/guest_ipvs and relays its results. The closing line is the guest's, renamed
# "test_ipvs: N passed, N failed, N skipped". No VM possible here (qemu or the kernel package
# missing): one skip, a failure under CLUSTERF_REQUIRE_ALL=1. Usage: test_ipvs.sh [FILTER]
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
guest=$BUILD/tests/vm/guest_ipvs
name=test_ipvs

skip() {
    echo "SKIP $name: $*"
    if [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "${CLUSTERF_REQUIRE_ALL}" != 0 ]; then
        echo "!!! $name: cannot run the kernel IPVS tests: $* (a failure: CLUSTERF_REQUIRE_ALL=1)"
        echo "$name: 0 passed, 1 failed, 0 skipped"
        exit 1
    fi
    echo "$name: 0 passed, 0 failed, 1 skipped"
    exit 0
}

if [ ! -x "$guest" ]; then
    echo "FAIL $name: $guest is not built (run: make tests)"
    echo "$name: 0 passed, 1 failed, 0 skipped"
    exit 1
fi

out=$(mktemp); trap 'rm -f "$out"' EXIT
scripts/vm-run --timeout 400 "$guest" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
[ "$rc" = 77 ] && skip "$(grep -m1 'MISSING PREREQUISITE' "$out" || echo 'the VM cannot run here')"
summary=$(grep -E '^guest_ipvs: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
if [ -z "$summary" ]; then
    echo "FAIL $name: the guest printed no summary (vm-run exit $rc)"
    echo "$name: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
echo "${summary/guest_ipvs:/$name:}"
exit "$rc"
