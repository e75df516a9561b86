#!/usr/bin/env bash
# test_bench_smoke.sh -- `make bench` in miniature so it cannot rot: tests/bench/run-bench at 200
# services x 10 (growth 50 -> 200, P2 100 -> 2,000 destinations, 20 samples, 2,000 keys for P5,
# a 3 s idle window), natively and in the VM, into $BUILD/bench-smoke/. Checks that results.json
# has every figure with sane numbers (not that the goals hold), and that the checker itself
# rejects a results.json with a figure missing or a wrong ratio.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
OUT=$BUILD/bench-smoke
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
finish() { echo "test_bench_smoke: $PASS passed, $FAIL failed, ${1:-0} skipped"; [ $FAIL = 0 ]; exit; }

EXPECTED="p5_initial_read_2000 p4_peak_rss_200x10 p4_idle_cpu_per_min p1_cold_sync_200x10
p1_kernel_programming_200x10 p3_resync_200x10 loop_busy_max_resync_200x10 loop_busy_max_scrape_200x10
p2_change_p99_2000_vs_100_dests growth_cold_sync_per_dest_200x10_vs_50x10
growth_resync_per_dest_200x10_vs_50x10"

# check_json FILE: prints one line per problem; succeeds when there is none.
check_json() {
    jq -e 'type == "array"' "$1" > /dev/null 2>&1 || { echo "not a JSON array"; return 1; }
    local problems
    problems=$(jq -r --arg want "$EXPECTED" '
        ($want | split("\\s+"; null) | map(select(length > 0))) as $names
        | ($names - map(.name) | map("missing figure " + .))[],
          (.[] | select((.clusterf | type) != "number" or .clusterf < 0) | "bad clusterf in " + .name),
          (.[] | select((.reference | type) != "number" or .reference <= 0) | "bad reference in " + .name),
          (.[] | select((.unit | type) != "string" or .unit == "") | "bad unit in " + .name),
          (.[] | select(.target != null and (.target | type) != "number") | "bad target in " + .name),
          (.[] | select((.ratio | type) != "number"
                        or ((.ratio - .clusterf / .reference) | fabs) > 0.001 + 0.001 * .ratio)
               | "ratio is not clusterf/reference in " + .name),
          (.[] | select(.name | test("^p1_|^p3_|^p5_|^growth_|^p2_")) | select(.clusterf <= 0)
               | "zero time in " + .name),
          (.[] | select(.name | test("^p4_peak_rss")) | select(.clusterf < 1 or .clusterf > 4096)
               | "implausible RSS in " + .name)' "$1")
    [ -z "$problems" ] || { echo "$problems"; return 1; }
}

scripts/vm-build --quiet > /dev/null
rc=$?
if [ $rc = 77 ]; then
    if [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "$CLUSTERF_REQUIRE_ALL" != 0 ]; then
        bad "the VM cannot run here (CLUSTERF_REQUIRE_ALL=1)"; finish
    fi
    echo "SKIP test_bench_smoke: the VM cannot run here"; finish 1
fi

rm -rf "$OUT"
BENCH_SCALE=200 BENCH_GROWTH="50 200" BENCH_SMALL=10 BENCH_SAMPLES=20 BENCH_IDLE_S=3 \
    BENCH_ETCD_KEYS=2000 BENCH_VM_MEM=2048 BENCH_VM_TIMEOUT=900 BENCH_OUT=$OUT \
    tests/bench/run-bench
rc=$?
[ $rc = 0 ] && ok "run-bench measured every figure" || bad "run-bench exit $rc"
if [ -f "$OUT/results.json" ]; then
    if out=$(check_json "$OUT/results.json"); then ok "results.json: every figure, sane numbers"
    else bad "results.json"; echo "$out" | sed 's/^/    /'; fi
else
    bad "no $OUT/results.json"
fi
grep -q '^ok   200: SIGHUP resync found nothing to change' "$OUT/vm.log" 2>/dev/null &&
    ok "the resync measured was a no-change pass" || bad "the resync measured was a no-change pass"

# The checker must be able to fail.
if [ -f "$OUT/results.json" ]; then
    jq 'map(select(.name != "p3_resync_200x10"))' "$OUT/results.json" > "$OUT/broken1.json"
    jq 'map(if .name == "p1_cold_sync_200x10" then .ratio = .ratio * 2 + 1 else . end)' \
        "$OUT/results.json" > "$OUT/broken2.json"
    check_json "$OUT/broken1.json" > /dev/null && bad "checker accepts a missing figure" ||
        ok "checker rejects a missing figure"
    check_json "$OUT/broken2.json" > /dev/null && bad "checker accepts a wrong ratio" ||
        ok "checker rejects a wrong ratio"
fi
finish
