#!/usr/bin/env bash
# test_fuzz.sh -- build the libFuzzer targets of tests/fuzz/ (config/ + lb/) with clang and run
# each for FUZZ_TEST_SECONDS (default 15) seeded from tests/corpus/; a crash, leak, sanitizer
# report or broken invariant fails it. No clang/libFuzzer: skipped (a failure under
# CLUSTERF_REQUIRE_ALL=1).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=${FUZZ_TEST_SECONDS:-15}
name=test_fuzz
require_all() { [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "${CLUSTERF_REQUIRE_ALL}" != 0 ]; }

skip() {
    echo "  SKIPPED fuzz: $*"
    if require_all; then
        echo "$name: 0 passed, 1 failed, 0 skipped"
        exit 1
    fi
    echo "$name: 0 passed, 0 failed, 1 skipped"
    exit 0
}

command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1 || skip "${FUZZ_CC:-clang} not found (apt-get install clang libclang-rt-14-dev)"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' > "$probe/p.c"
"${FUZZ_CC:-clang}" -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" >/dev/null 2>&1 ||
    skip "${FUZZ_CC:-clang} cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"

passed=0 failed=0
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory BUILD="$BUILD" fuzz-build; then
    echo "FAIL build"
    echo "$name: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
for src in tests/fuzz/fuzz_*.c; do
    f=$(basename "$src" .c)
    log=$BUILD/fuzz/$f.log
    if tests/fuzz/run-fuzzer "$BUILD" "$f" "$secs" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $f ($(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1))"
    else
        failed=$((failed + 1))
        echo "FAIL $f (log: $log)"
        grep -E 'ERROR|SUMMARY|abort|incremental|rendered|round trip|==[0-9]+==' "$log" | head -n 20
    fi
done
echo "$name: $passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
