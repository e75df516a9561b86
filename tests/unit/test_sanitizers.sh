#!/usr/bin/env bash
# test_sanitizers.sh -- `make asan` and `make memcheck` in miniature, so they cannot rot:
# a unit suite (test_common) under valgrind memcheck is clean; a definite leak makes
# tests/memcheck/vg fail; scripts/run-tests fails a suite on a sanitizer report from a process
# it started in the background (a daemon), on one from the suite itself, and on a valgrind
# log with errors (CLUSTERF_SUITE_WRAPPER; also a daemon's log cut short by kill -9), and
# passes a clean one; scripts/vm-sanitized (the
# VM guest's wrapper) prints a report and fails. Sanitized programs are tiny C files compiled
# here with the flags of `make asan`. Prints "test_sanitizers: N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.."
repo=$PWD
BUILD=${BUILD:-build}
PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { local n=$1; shift; if "$@"; then ok "$n"; else bad "$n"; fi; }
finish() { echo "test_sanitizers: $PASS passed, $FAIL failed, 0 skipped"; [ $FAIL = 0 ]; exit; }
SAN="-O1 -g -fsanitize=address,undefined -static-libubsan -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

tmp=$(mktemp -d /tmp/cf-sanitizers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset ASAN_OPTIONS UBSAN_OPTIONS CLUSTERF_SANITIZER_DIR CLUSTERF_SANITIZER_REPORTS CLUSTERF_SUITE_WRAPPER
# The runs below use their own tree's build/ (under `make asan` BUILD is build-asan).
export BUILD_NESTED=build

# --- valgrind memcheck (tests/memcheck/vg)
if ! command -v valgrind > /dev/null; then
    bad "valgrind is installed (scripts/install-deps)"; finish
fi
mkdir -p "$tmp/vg"
# valgrind cannot run an ASan binary: under `make asan` a plain build of a clean program stands in.
clean_prog=$BUILD/tests/unit/test_common
if grep -q __asan_init "$clean_prog" 2>/dev/null; then
    printf '#include <stdlib.h>\nint main(void) { free(malloc(10)); return 0; }\n' > "$tmp/test_common.c"
    cc -g -o "$tmp/test_common" "$tmp/test_common.c"
    clean_prog=$tmp/test_common
fi
CLUSTERF_SANITIZER_DIR=$tmp/vg tests/memcheck/vg "$clean_prog" > "$tmp/vg.out" 2>&1
check "test_common under valgrind exits 0" test $? = 0
check "... its log says 0 errors" grep -q 'ERROR SUMMARY: 0 errors' "$tmp"/vg/test_common.*.vg

# leak.c: loses a block (a definite leak), prints a suite summary, exits 0.
cat > "$tmp/leak.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    char *p = malloc(64);
    strcpy(p, "lost");
    printf("%s\ntest_leak: 1 passed, 0 failed, 0 skipped\n", p);
    p = NULL;
    return 0;
}
C
cc -O0 -g -o "$tmp/leak" "$tmp/leak.c"
mkdir -p "$tmp/vg2"
CLUSTERF_SANITIZER_DIR=$tmp/vg2 tests/memcheck/vg "$tmp/leak" > /dev/null 2>&1
check "a definite leak under valgrind exits 99" test $? = 99
check "... and its log has the error" grep -q 'ERROR SUMMARY: [1-9]' "$tmp"/vg2/leak.*.vg

# --- sanitizers: a suite that passes but starts a "daemon" with a UBSan error, one whose
# own process leaks (LSan), and a clean one, all under scripts/run-tests.
cat > "$tmp/ub.c" <<'C'
#include <stdlib.h>
int main(int argc, char **argv)
{
    int x = atoi(argc > 1 ? argv[1] : "1");
    return x + 0x7fffffff == 5; /* signed overflow */
}
C
cat > "$tmp/lsan.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) static void lose(void)
{
    char *p = malloc(100);
    strcpy(p, "lost");
    puts(p);
}
int main(void)
{
    for (int i = 0; i < 10; i++)
        lose();
    printf("test_e_lsan: 1 passed, 0 failed, 0 skipped\n");
    fflush(stdout); /* LSan exits at once after its report */
    return 0;
}
C
cat > "$tmp/clean.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    free(malloc(10));
    printf("test_f_clean: 1 passed, 0 failed, 0 skipped\n");
    return 0;
}
C
tree=$tmp/tree
mkdir -p "$tree/tests/unit" "$tree/build/tests/unit"
cc $SAN -o "$tmp/ub" "$tmp/ub.c" && cc $SAN -o "$tree/build/tests/unit/test_e_lsan" "$tmp/lsan.c" &&
    cc $SAN -o "$tree/build/tests/unit/test_f_clean" "$tmp/clean.c"
check "the sanitized programs build" test $? = 0
cp "$tmp/leak" "$tree/build/tests/unit/test_g_leak"
printf '#!/usr/bin/env bash\n(%s/ub; true) & wait\necho "test_d_daemon: 1 passed, 0 failed, 0 skipped"\n' "$tmp" \
    > "$tree/tests/unit/test_d_daemon.sh"
chmod +x "$tree/tests/unit/test_d_daemon.sh"
out=$tmp/out
CLUSTERF_TESTS_ROOT=$tree CLUSTERF_SANITIZER_REPORTS=$tmp/reports ASAN_OPTIONS=detect_leaks=1 \
    BUILD=$BUILD_NESTED "$repo/scripts/run-tests" test_d_ test_e_ test_f_ > "$out" 2>&1
rc=$?
sed 's/^/    | /' "$out"
check "a daemon's UBSan report fails its suite" \
    grep -qE '^--- unit/test_d_daemon.sh: 1 passed, 1 failed, 0 skipped' "$out"
check "... and the report is shown" grep -q 'runtime error: signed integer overflow' "$out"
# LSan's exit status is one failure; the report in the suite's folder is another.
check "a leak in the suite's own process (LSan) fails it twice: exit status and report" \
    grep -qE '^--- unit/test_e_lsan: 1 passed, 2 failed, 0 skipped' "$out"
check "a clean sanitized suite passes" grep -qE '^--- unit/test_f_clean: 1 passed, 0 failed, 0 skipped' "$out"
check "the run fails" test $rc = 1

CLUSTERF_TESTS_ROOT=$tree CLUSTERF_SANITIZER_REPORTS=$tmp/reports \
    CLUSTERF_SUITE_WRAPPER="$repo/tests/memcheck/vg" BUILD=$BUILD_NESTED "$repo/scripts/run-tests" test_g_ > "$out" 2>&1
rc=$?
sed 's/^/    | /' "$out"
check "a suite with a definite leak under CLUSTERF_SUITE_WRAPPER=vg fails" \
    grep -qE '^--- unit/test_g_leak: 1 passed, [12] failed, 0 skipped' "$out"
check "... and its valgrind log is shown" grep -q 'definitely lost' "$out"
check "... the run fails" test $rc = 1

# badkill.c: an invalid read, then it waits to be killed. test_h_killed.sh starts it under vg
# (as a suite starts a daemon) and kills it -9 (valgrind writes a summary when a program kills
# itself, not when it is killed): its log has the error record but no error summary.
cat > "$tmp/badkill.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void)
{
    volatile char *p = malloc(8);
    printf("read %d\n", p[8]); /* one past the block */
    fflush(stdout);
    for (;;)
        pause();
}
C
cc -O0 -g -o "$tmp/badkill" "$tmp/badkill.c"
cat > "$tree/tests/unit/test_h_killed.sh" <<SH
#!/usr/bin/env bash
$repo/tests/memcheck/vg $tmp/badkill > $tmp/badkill.out 2>&1 &
for i in \$(seq 600); do grep -q read $tmp/badkill.out && break; sleep 0.1; done
kill -9 \$!; wait \$!
echo "test_h_killed: 1 passed, 0 failed, 0 skipped"
SH
chmod +x "$tree/tests/unit/test_h_killed.sh"
CLUSTERF_TESTS_ROOT=$tree CLUSTERF_SANITIZER_REPORTS=$tmp/reports BUILD=$BUILD_NESTED "$repo/scripts/run-tests" test_h_ \
    > "$out" 2>&1
rc=$?
sed 's/^/    | /' "$out"
check "a daemon killed -9 under vg after an error (no error summary) fails its suite" \
    grep -qE '^--- unit/test_h_killed.sh: 1 passed, 1 failed, 0 skipped' "$out"
check "... and its valgrind log is shown" grep -q 'Invalid read of size 1' "$out"
check "... the run fails" test $rc = 1

# --- the VM guest's wrapper, on the host
VM_SANITIZER_DIR=$tmp/guest scripts/vm-sanitized "$tmp/ub" > "$out" 2>&1
rc=$?
check "vm-sanitized fails on a report" test $rc != 0
check "... and prints it" grep -q '^vm-sanitized: SANITIZER REPORT' "$out"
VM_SANITIZER_DIR=$tmp/guest scripts/vm-sanitized true > "$out" 2>&1
check "vm-sanitized passes a clean run" test $? = 0
finish
