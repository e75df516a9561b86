#!/usr/bin/env bash
# test_run_tests.sh -- scripts/run-tests itself, on a temporary tree of fake suites: one that
# hangs (with children in a process group and a session of their own), one that runs no
# checks, one with no summary, one that passes, one that fails, one that only skips. Checks
# each verdict, that the hung suite and all its children are killed and the run goes on, and
# the closing line. Prints "test_run_tests: N passed, N failed, 0 skipped".
set -u
cd "$(dirname "$0")/../.."
repo=$PWD
# The fake tree's own defaults, whatever run started this one (make asan exports BUILD and
# the sanitizer hooks).
unset BUILD CLUSTERF_SANITIZER_REPORTS CLUSTERF_SUITE_WRAPPER
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { local n=$1; shift; if "$@"; then ok "$n"; else bad "$n"; fi; }
has() { grep -qxF -- "$1" "$out"; }   # has LINE: run-tests printed exactly LINE

tmp=$(mktemp -d /tmp/cf-run-tests.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tests/unit"
suite() { printf '#!/usr/bin/env bash\n%s\n' "$2" > "$tmp/tests/unit/$1"; chmod +x "$tmp/tests/unit/$1"; }
# Hangs after starting a child in its own process group (as the etcd harness does) and one in
# its own session; all three record their pids.
suite test_a_hang.sh "echo \$\$ > $tmp/pid.suite
perl -e 'setpgrp(0, 0); exec qw(sleep 1000)' & echo \$! > $tmp/pid.pgrp
setsid sleep 1000 & echo \$! > $tmp/pid.session
echo 'test_a_hang: 1 passed, 0 failed, 0 skipped'
sleep 1000"
suite test_b_zero.sh "echo 'test_b_zero: 0 passed, 0 failed, 0 skipped'"
suite test_c_nosummary.sh "echo 'nothing to see'"
suite test_d_pass.sh "echo 'test_d_pass: 2 passed, 0 failed, 0 skipped'"
suite test_e_fail.sh "echo 'test_e_fail: 1 passed, 1 failed, 0 skipped'; exit 1"
suite test_f_skip.sh "echo 'test_f_skip: 0 passed, 0 failed, 1 skipped'"

out=$tmp/out
CLUSTERF_TESTS_ROOT=$tmp CLUSTERF_SUITE_TIMEOUT=600 CLUSTERF_SUITE_TIMEOUT_test_a_hang_sh=3 \
    "$repo/scripts/run-tests" > "$out" 2>&1
rc=$?
sed 's/^/    | /' "$out"

check "the hung suite fails by name" has "run-tests: unit/test_a_hang.sh timed out after 3 s"
check "the hung suite's checks before the hang count, plus one failure" \
    grep -qE '^--- unit/test_a_hang.sh: 1 passed, 1 failed, 0 skipped \(' "$out"
alive() { [ -s "$tmp/pid.$1" ] && kill -0 "$(cat "$tmp/pid.$1")" 2>/dev/null; }
for p in suite pgrp session; do
    check "the hung suite's $p process is gone" sh -c "[ -s $tmp/pid.$p ] && ! kill -0 \$(cat $tmp/pid.$p) 2>/dev/null"
done
check "the run goes on after the hang" grep -qE '^--- unit/test_d_pass.sh: 2 passed, 0 failed, 0 skipped \(' "$out"
check "0 passed, 0 failed, 0 skipped is no checks" has "run-tests: unit/test_b_zero.sh ran no checks (0 passed, 0 failed, 0 skipped; exit 0)"
check "... and counts as a failure" grep -qE '^--- unit/test_b_zero.sh: 0 passed, 1 failed, 0 skipped \(' "$out"
check "no summary line is no checks" has "run-tests: unit/test_c_nosummary.sh ran no checks: it printed no summary line (exit 0)"
check "... and counts as a failure" grep -qE '^--- unit/test_c_nosummary.sh: 0 passed, 1 failed, 0 skipped \(' "$out"
check "a failing suite fails" grep -qE '^--- unit/test_e_fail.sh: 1 passed, 1 failed, 0 skipped \(' "$out"
check "a suite that only skips is a skip, not a failure" grep -qE '^--- unit/test_f_skip.sh: 0 passed, 0 failed, 1 skipped \(' "$out"
check "the failed suites are named" \
    has "failed suites: unit/test_a_hang.sh unit/test_b_zero.sh unit/test_c_nosummary.sh unit/test_e_fail.sh (logs in build/test-logs)"
check "closing line" sh -c "tail -n 1 $out | grep -qx '4 passed, 4 failed, 1 skipped'"
check "exit status 1 when a suite failed" test "$rc" = 1
for p in suite pgrp session; do [ -s "$tmp/pid.$p" ] && kill -9 "$(cat "$tmp/pid.$p")" 2>/dev/null; done

CLUSTERF_TESTS_ROOT=$tmp "$repo/scripts/run-tests" pass > "$out" 2>&1
rc=$?
check "a filtered run of a passing suite: closing line without skips" sh -c "tail -n 1 $out | grep -qx '2 passed, 0 failed'"
check "... and exit status 0" test "$rc" = 0
check "... the filter left the others out" sh -c "! grep -q test_a_hang $out"

# run-tests itself stopped (SIGTERM) while a suite runs: the suite goes with it.
rm -f "$tmp"/pid.*
CLUSTERF_TESTS_ROOT=$tmp CLUSTERF_SUITE_TIMEOUT_test_a_hang_sh=600 "$repo/scripts/run-tests" hang \
    > "$out" 2>&1 &
runner=$!
for _ in $(seq 300); do [ -s "$tmp/pid.session" ] && break; sleep 0.1; done
kill -TERM "$runner"; wait "$runner"
check "run-tests stopped by SIGTERM exits 130" test $? = 130
for p in suite pgrp session; do
    check "... and the running suite's $p process is gone" \
        sh -c "[ -s $tmp/pid.$p ] && ! kill -0 \$(cat $tmp/pid.$p) 2>/dev/null"
done
for p in suite pgrp session; do [ -s "$tmp/pid.$p" ] && kill -9 "$(cat "$tmp/pid.$p")" 2>/dev/null; done

echo "test_run_tests: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
