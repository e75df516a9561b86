#!/bin/sh
# guest_bench.sh -- the VM half of `make bench` (run by tests/bench/run-bench inside scripts/vm-run):
# clusterf-ipvs against a real etcd and the real kernel IPVS, side by side with ipvsadm/etcdctl
# on the same table in the same VM. Prints "RESULT name clusterf reference unit target" lines
# (target "-" = reported, no goal) and "INFO ..." lines; ends "guest_bench: N passed, N failed, 0 skipped".
#
# Usage: guest_bench.sh BPS SAMPLES ITEM...   ITEM = SERVICES:KIND, the table SERVICES x BPS
#   from /vm/data/SERVICES/ (txn.* for etcdctl txn, rules for ipvsadm -R; tests/bench/bench-gen.awk).
# After the cold sync (at the default log level) the daemon is restarted at debug level over the
# full table, and the resync and latency figures are taken from that one.
#   KIND main:    P1 cold sync (and its kernel part) vs ipvsadm -R, P3 resync vs ipvsadm -Sn,
#                 the event loop's longest busy stretch during the resync, P2 latency (big)
#        growth:  cold sync and resync only (per-destination cost)
#        latency: P2 latency only (the small table)
# Each item runs in a network namespace of its own, and ipvsadm -R in another: IPVS state is per
# namespace, and Linux keeps deleted dests in a per-namespace trash for ~3 minutes, which every
# dest add walks (ip_vs_trash_get_dest: a list), so a table added right after `ipvsadm -C` of
# another costs O(trash) per dest. Each figure is thus taken on a kernel that never held a table,
# as on a freshly booted host; the trash cost is measured apart (INFO, ipvsadm -R after -C).
# Cold sync is done when the daemon logs its first summary line (msg="reconciled" pass=full
# scope=start); the kernel table is then counted with ipvsadm -Sn. Times come from the daemon's
# log timestamps (ms) and guest_bench_probe's clock (the same wall clock).
set -u
BPS=$1 SAMPLES=$2; shift 2
PASS=0 FAIL=0
EP=http://127.0.0.1:2379
ETCD_PID= IPVS_PID=
WAIT_S=3600
MSG_START='msg="reconciled" pass=full scope=start'
MSG_HUP='msg="reconciled" pass=full scope=sighup'
export ETCDCTL_API=3
probe() { /vm/guest_bench_probe "$@"; }
IP=/bin/ip    # iproute2 (busybox ip has no netns)

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
result() { echo "RESULT $*"; }

fresh_etcd() {
    rm -rf /tmp/etcd
    etcd --data-dir /tmp/etcd --listen-client-urls $EP --advertise-client-urls $EP \
         --listen-peer-urls http://127.0.0.1:2380 --max-txn-ops=20000 \
         --max-request-bytes=33554432 --quota-backend-bytes=8589934592 > /tmp/etcd.log 2>&1 &
    ETCD_PID=$!
    i=0
    while ! etcdctl --endpoints=$EP endpoint health > /dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 300 ] && { cat /tmp/etcd.log; return 1; }
        sleep 0.2
    done
}

stop_etcd() { kill $ETCD_PID 2>/dev/null; wait $ETCD_PID 2>/dev/null; ETCD_PID=; }

# load_etcd DIR: every txn.* of DIR through etcdctl txn; a txn that times out (a slow VM) is
# sent again (puts are idempotent).
load_etcd() {
    for f in "$1"/txn.*; do
        try=0
        until etcdctl --endpoints=$EP --command-timeout=300s txn < "$f" > /tmp/txn.out 2>&1 &&
              grep -q SUCCESS /tmp/txn.out; do
            try=$((try + 1))
            [ $try -lt 4 ] || { cat /tmp/txn.out; return 1; }
            echo "INFO etcdctl txn $f failed ($(grep -m1 Error /tmp/txn.out)); again"
        done
    done
}

# start_ipvs LOG LEVEL: clusterf-ipvs on the etcd, no periodic resync (SIGHUP makes one).
start_ipvs() {
    clusterf-ipvs --etcd-endpoints=$EP --resync-interval=0 --state-dir=/run/clusterf \
        --log-level="$2" > "$1" 2>&1 &
    IPVS_PID=$!
}

stop_ipvs() { [ -n "$IPVS_PID" ] && { kill $IPVS_PID; wait $IPVS_PID 2>/dev/null; }; IPVS_PID=; }

# timed VAR CMD: run CMD (a shell string); VAR = its wall time in ms, TIMED_RC = its status.
timed() {
    t0=$(probe now); sh -c "$2"; TIMED_RC=$?; t1=$(probe now)
    eval "$1=\$((t1 - t0))"
}

# wait_line LOG OFFSET TEXT: "<epoch ms of the line> <offset after it>", or fails.
wait_line() { probe wait-log "$1" "$2" "$3" $WAIT_S; }

# cold_sync S LOG: start the daemon on an empty kernel table; sets COLD_MS, KERNEL_MS.
cold_sync() {
    t0=$(probe now) cpu0=$(cpu_snap)
    start_ipvs "$2" info
    set -- "$1" "$2" "$(wait_line "$2" 0 "$MSG_START")" "$(wait_line "$2" 0 'msg="etcd read"')"
    end=${3% *} read_ts=${4% *}
    [ -n "$end" ] && [ -n "$read_ts" ] || { bad "$1: cold sync finished"; tail -n 5 "$2"; return 1; }
    COLD_MS=$((end - t0)) KERNEL_MS=$((end - read_ts))
    cpu_split "$1x$BPS cold sync" "$cpu0"
    echo "INFO $1x$BPS cold sync: daemon CPU user/system ms $(proc_cpu $IPVS_PID)"
    grep "$MSG_START" "$2" | sed 's/^/  /'
    echo "INFO $1x$BPS cold sync ${COLD_MS} ms (daemon start -> its first summary line), of which" \
         "${KERNEL_MS} ms after its etcd read (compute + diff + kernel programming)"
}

# check_table S [PREFIX]: ipvsadm -Sn of the table (timed: DUMP_MS) has S x (1 + BPS) rules;
# PREFIX runs ipvsadm elsewhere (ip netns exec NS).
check_table() {
    timed DUMP_MS "${2:-} ipvsadm -Sn > /tmp/dump"
    n=$(wc -l < /tmp/dump) want=$(($1 * (1 + BPS)))
    if [ "$n" = "$want" ]; then ok "$1: kernel table has all $want rules (ipvsadm -Sn count)"
    else bad "$1: kernel table has $n rules, want $want"; fi
}

# restart_debug S: restart the daemon at debug level (its no-change summaries are debug) over
# the full kernel table and wait for its start pass; LOG and OFF = its log and the offset after.
restart_debug() {
    stop_ipvs
    LOG=/tmp/ipvs-$1-debug.log
    start_ipvs $LOG debug
    line=$(wait_line $LOG 0 "$MSG_START") || { bad "$1: restart pass"; return 1; }
    OFF=${line#* }
}

# resync S: time a SIGHUP full resync from the daemon's own log lines.
# Nothing else runs meanwhile, as nothing runs beside the reference's `ipvsadm -Sn`: the VM has
# one CPU, and a sampler of the loop thread (guest_bench_probe loop-busy, every 1 ms) doubled
# the time of the same 10k dest dumps (7.1 -> 14.0 s; ipvsadm -Sn 14.4 -> 22.6 s).
resync() {
    log=$LOG off=$OFF
    kill -HUP $IPVS_PID
    set -- "$1" "$(wait_line $log "$off" 'msg="SIGHUP: full resync"')" "$(wait_line $log "$off" "$MSG_HUP")"
    [ -n "$2" ] && [ -n "$3" ] || { bad "$1: SIGHUP resync finished"; return 1; }
    RESYNC_MS=$((${3% *} - ${2% *}))
    # The longest time the loop went without looking at its fds: the daemon's own measure of
    # its slices.
    BUSY_MS=$(grep "$MSG_HUP" $log | sed -n 's/.* longest_slice_ms=\([0-9]*\).*/\1/p' | tail -n 1)
    grep "$MSG_HUP" $log | sed 's/^/  /'
    if grep "$MSG_HUP" $log | grep -q 'services_added=0 services_changed=0 services_deleted=0 dests_added=0 dests_changed=0 dests_deleted=0 ' &&
       grep "$MSG_HUP" $log | grep -q ' failed=0 '
    then ok "$1: SIGHUP resync found nothing to change"
    else bad "$1: SIGHUP resync changed something"; fi
    echo "INFO $1x$BPS resync ${RESYNC_MS} ms (SIGHUP line -> summary line); longest slice" \
         "${BUSY_MS:-?} ms"
}

# latency S: P2 samples; sets P50 P99.
latency() {
    out=$(probe latency $EP "$1" "$BPS" "$SAMPLES") || { bad "$1: latency probe"; return 1; }
    P50=$(echo "$out" | sed 's/.*p50=\([0-9.]*\).*/\1/') P99=$(echo "$out" | sed 's/.*p99=\([0-9.]*\).*/\1/')
    ok "$1: $SAMPLES backend changes reached the kernel"
    echo "INFO $1x$BPS one backend change, etcd Put response -> seen in the kernel (probe over netlink): $out"
}

# cpu_snap: the guest's cpu line of /proc/stat (user nice system idle iowait irq softirq, in
# USER_HZ ticks of 10 ms).
cpu_snap() { awk '$1 == "cpu" { print $2, $3, $4, $5, $6, $7, $8; exit }' /proc/stat; }

# cpu_split WHAT BEFORE: one INFO line, where the guest's CPU went since BEFORE (a cpu_snap):
# user, system, softirq (IPVS's estimator timer runs there), idle, in ms.
cpu_split() {
    echo "$2 $(cpu_snap)" | awk -v what="$1" '{
        printf "INFO %s: guest CPU user %d ms, system %d ms, softirq %d ms, irq %d ms, idle %d ms\n",
               what, ($8 + $9 - $1 - $2) * 10, ($10 - $3) * 10, ($14 - $7) * 10, ($13 - $6) * 10,
               ($11 + $12 - $4 - $5) * 10 }'
}

# proc_cpu PID: "utime_ms stime_ms" of PID (from /proc/PID/stat, USER_HZ 100).
proc_cpu() { sed 's/.*) //' /proc/$1/stat | awk '{ print $12 * 10, $13 * 10 }'; }

# rss: the daemon's peak RSS (kB) now.
rss() { probe proc $IPVS_PID | cut -d' ' -f1; }

# reference S DIR: ipvsadm -R of DIR's rules in a namespace of its own (sets RESTORE_MS), then
# once more right after ipvsadm -C there (INFO: the cost of the kernel's dest trash).
reference() {
    ns="ref$1"
    $IP netns add $ns && $IP netns exec $ns $IP link set lo up ||  # lo: its local table
        { bad "$1: namespace for ipvsadm -R"; return 1; }               # makes dests unicast
    cpu0=$(cpu_snap)
    timed RESTORE_MS "$IP netns exec $ns ipvsadm -R < $2/rules"
    cpu_split "$1x$BPS ipvsadm -R" "$cpu0"
    [ "$TIMED_RC" = 0 ] && ok "$1: ipvsadm -R" || bad "$1: ipvsadm -R exit $TIMED_RC"
    check_table "$1" "$IP netns exec $ns"
    $IP netns exec $ns ipvsadm -C
    if [ "$1" -le 5000 ]; then     # O(dests^2): too long in TCG beyond that
        timed TRASH_MS "$IP netns exec $ns ipvsadm -R < $2/rules"
        echo "INFO $1x$BPS ipvsadm -R ${RESTORE_MS} ms on a fresh namespace; ${TRASH_MS} ms right" \
             "after ipvsadm -C of the same table ($(($1 * BPS)) dests in the kernel's dest trash)"
        $IP netns exec $ns ipvsadm -C
    fi
    $IP netns del $ns
}

run_item() {
    s=${1%:*} kind=${1#*:} d=/vm/data/${1%:*}
    echo "== $s services x $BPS backends ($kind)"
    ipvsadm -C; rm -rf /run/clusterf
    fresh_etcd || { bad "$s: etcd started"; return 1; }
    t0=$(probe now); load_etcd $d || { bad "$s: etcd loaded"; stop_etcd; return 1; }
    echo "INFO $s x $BPS: etcdctl txn loaded $(cat $d/txn.* | grep -c '^put') keys in $(($(probe now) - t0)) ms"
    [ "$kind" = main ] && reference "$s" "$d"
    if cold_sync "$s" /tmp/ipvs-$s.log; then
        check_table "$s"
        echo "INFO $s x $BPS: daemon peak RSS $(rss) kB in the VM after the cold sync"
        if [ "$kind" = main ]; then
            result "p1_cold_sync_${s}x$BPS" $COLD_MS $RESTORE_MS ms 0.5
            result "p1_kernel_programming_${s}x$BPS" $KERNEL_MS $RESTORE_MS ms 0.2
        fi
        [ "$kind" = growth ] || [ "$kind" = main ] && echo "GROWTH cold $s $((s * BPS)) $COLD_MS"
        restart_debug "$s" || { stop_ipvs; stop_etcd; return 1; }
        if [ "$kind" != latency ] && resync "$s"; then
            echo "GROWTH resync $s $((s * BPS)) $RESYNC_MS"
            if [ "$kind" = main ]; then
                result "p3_resync_${s}x$BPS" $RESYNC_MS $DUMP_MS ms 1.0
                result "loop_busy_max_resync_${s}x$BPS" $BUSY_MS $RESYNC_MS ms -
            fi
        fi
        if [ "$kind" != growth ] && latency "$s"; then
            echo "LATENCY $((s * BPS)) $P50 $P99"
        fi
    fi
    stop_ipvs
    stop_etcd
}

# One item in the current namespace (a fresh one: see the header); ends with its counts.
if [ "$1" = --item ]; then
    $IP link set lo up
    run_item "$2"
    ipvsadm -C
    echo "ITEM_COUNTS $PASS $FAIL"
    exit 0
fi

n=0
for item in "$@"; do
    n=$((n + 1))
    $IP netns add item$n || { bad "$item: namespace"; continue; }
    $IP netns exec item$n sh "$0" "$BPS" "$SAMPLES" --item "$item" 2>&1 | tee /tmp/item.out |
        grep -v '^ITEM_COUNTS '
    counts=$(sed -n 's/^ITEM_COUNTS //p' /tmp/item.out)
    [ -n "$counts" ] || { bad "$item: ran to its end"; counts="0 0"; }
    PASS=$((PASS + ${counts% *})) FAIL=$((FAIL + ${counts#* }))
    $IP netns del item$n
done
echo "guest_bench: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
