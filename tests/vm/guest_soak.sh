#!/bin/sh
# guest_soak.sh -- the fault suite (issue #9, scenarios 1, 2, 4 and 7a) inside the scripts/vm-run
# guest: one etcd, one clusterf-ipvs on the real kernel IPVS, and the churn writer of
# tests/vm/guest_lib.sh (random services, backends, routes, weights, invalid values, VIP
# conflicts, deletes). Each checkpoint compares the kernel table (ipvsadm -S -n, sorted) with
# the table the writer's model implies, and runs `clusterfctl status` (desired computed from
# etcd by an independent process vs the kernel; exit 0 = in sync); any difference fails and is
# printed.
#   churn       (1 + 7a) --resync-interval=0: SOAK_CHANGES changes while etcd is killed -9 and
#               restarted (data dir kept) SOAK_RESTARTS times at spread points, the writer
#               retrying while it is down; the daemon's fd count and VmRSS sampled at every
#               checkpoint, their least-squares slope after warm-up printed.
#   compaction  (2) clusterf-ipvs SIGSTOPped; changes, `etcdctl compact` past them + defrag;
#               SIGCONT: it must converge; again with etcd also restarted while it is stopped
#               (its watch then resumes below the compacted revision): it must log the
#               compaction, re-read and converge.
#   drift       (4) --resync-interval=5s: random `ipvsadm -D/-E/-d/-e` by hand during churn; two
#               foreign services (added before and after the daemon started) never touched;
#               after the writer stops, the table is repaired (time printed vs the period).
# Run by tests/vm/test_soak.sh; prints "guest_soak: N passed, N failed, 0 skipped".
# Environment: CLUSTERF_SOAK=1 (the long version: 10000 changes, 20 restarts), or each knob:
# CLUSTERF_SOAK_CHANGES, CLUSTERF_SOAK_RESTARTS, CLUSTERF_SOAK_DRIFT_CHANGES,
# CLUSTERF_SOAK_COMPACT_CHANGES, CLUSTERF_SOAK_CHECK_EVERY, CLUSTERF_SOAK_SEED.
# Argument: a substring; only scenarios whose name contains it run.
set -u
. /vm/guest_lib.sh   # ok, bad, check, now_cs, the churn writer (tests/vm/guest_lib.sh)
FILTER=${1:-}
if [ "${CLUSTERF_SOAK:-0}" = 1 ]; then
    CHANGES=10000 RESTARTS=20 DRIFT_CHANGES=1000 COMPACT_CHANGES=200 CHECK_EVERY=50
else
    CHANGES=150 RESTARTS=2 DRIFT_CHANGES=60 COMPACT_CHANGES=30 CHECK_EVERY=25
fi
CHANGES=${CLUSTERF_SOAK_CHANGES:-$CHANGES}
RESTARTS=${CLUSTERF_SOAK_RESTARTS:-$RESTARTS}
DRIFT_CHANGES=${CLUSTERF_SOAK_DRIFT_CHANGES:-$DRIFT_CHANGES}
COMPACT_CHANGES=${CLUSTERF_SOAK_COMPACT_CHANGES:-$COMPACT_CHANGES}
CHECK_EVERY=${CLUSTERF_SOAK_CHECK_EVERY:-$CHECK_EVERY}
SEED=${CLUSTERF_SOAK_SEED:-9}
CHURN_OPS=26    # the writer's invalid values and conflicts too
PASS=0 FAIL=0
EP=http://127.0.0.1:2379
GW_URL=$EP
GW_TRIES=240    # 2 min of retries: an etcd restart in the emulated guest takes seconds
LOG=/tmp/ipvs.log
STATE=/run/clusterf
FOREIGN=10.66.0.    # the foreign services' VIPs (never in etcd)
ETCD_PID= IPVS_PID=
export ETCDCTL_API=3

ec() { etcdctl --endpoints=$EP --command-timeout=30s "$@" > /dev/null; }
want() { [ -z "$FILTER" ] || case "$1" in *"$FILTER"*) return 0;; *) return 1;; esac; }
now() { date +%s; }

# --- etcd: one member, data in /tmp/etcd (kept across its restarts).
etcd_cmd() {
    exec etcd --data-dir /tmp/etcd --listen-client-urls $EP --advertise-client-urls $EP \
        --listen-peer-urls http://127.0.0.1:2380 >> /tmp/etcd.log 2>&1
}
etcd_healthy() { etcdctl --endpoints=$EP endpoint health > /dev/null 2>&1; }
# wait_etcd CAP: 0 once etcd answers, within CAP seconds.
wait_etcd() {
    end=$(($(now) + $1))
    while ! etcd_healthy; do [ $(now) -ge $end ] && return 1; sleep 0.5; done
}
# etcd_restart_later: kill -9 etcd now, start it again 2 s later (in the background: the writer
# meanwhile retries against a dead endpoint).
etcd_restart_later() {
    kill -9 $ETCD_PID; wait $ETCD_PID 2>/dev/null
    (sleep 2; etcd_cmd) &
    ETCD_PID=$!
}

# --- clusterf-ipvs. start_ipvs RESYNC: started with that --resync-interval; waits for its
# "started" line.
start_ipvs() {
    echo "--- start clusterf-ipvs --resync-interval=$1" >> $LOG
    mark=$(wc -l < $LOG)
    clusterf-ipvs --etcd-endpoints=$EP --resync-interval=$1 --state-dir=$STATE \
        --log-level=info >> $LOG 2>&1 &
    IPVS_PID=$!
    end=$(($(now) + 60))
    while ! tail -n +$((mark + 1)) $LOG | grep -q 'msg="clusterf-ipvs started"'; do
        [ $(now) -ge $end ] && break
        sleep 0.2
    done
}
stop_ipvs() {
    [ -n "$IPVS_PID" ] || return 0
    kill -TERM $IPVS_PID 2>/dev/null; wait $IPVS_PID 2>/dev/null; IPVS_PID=
}

# --- the tables. kernel_table: clusterf's part of the kernel table (foreign services left out);
# foreign_table: the foreign part.
kernel_table() { ipvsadm -S -n | grep -v -- "-t $FOREIGN" | sort; }
foreign_table() { ipvsadm -S -n | grep -- "-t $FOREIGN" | sort; }

# status_ok: clusterfctl status exits 0 (in sync); its output in /tmp/status.out.
status_ok() {
    clusterfctl status --etcd-endpoints=$EP --state-dir=$STATE > /tmp/status.out 2>&1
}

# checkpoint WHAT CAP: wait up to CAP seconds for the kernel table to equal the model's
# expected table, then clusterfctl status must say in sync. On a difference both are printed
# (and the diff, and status's rows); returns 1. CHECKPOINTS counts them, DIFFS the differing
# lines at the last one.
CHECKPOINTS=0 DIFFS=0
checkpoint() {
    CHECKPOINTS=$((CHECKPOINTS + 1))
    exp=$(expected_table)
    end=$(($(now) + $2))
    while [ "$(kernel_table)" != "$exp" ]; do
        if [ $(now) -ge $end ]; then
            echo "$exp" > /tmp/want.tab; kernel_table > /tmp/have.tab
            DIFFS=$(diff -u /tmp/want.tab /tmp/have.tab | tail -n +3 | grep -c '^[-+]')
            bad "$1: the kernel table differs from the expected table after $2 s ($DIFFS lines)"
            echo "  want (model):"; sed 's/^/    /' /tmp/want.tab
            echo "  have (kernel):"; sed 's/^/    /' /tmp/have.tab
            echo "  diff (- model, + kernel):"; diff -u /tmp/want.tab /tmp/have.tab | tail -n +3 | sed 's/^/    /'
            status_ok; echo "  clusterfctl status:"; sed 's/^/    /' /tmp/status.out
            echo "  log tail:"; tail -n 15 $LOG | sed 's/^/    /'
            return 1
        fi
        sleep 0.3
    done
    DIFFS=0
    if ! status_ok; then
        bad "$1: the kernel equals the model but clusterfctl status reports drift"
        sed 's/^/    /' /tmp/status.out
        return 1
    fi
}

# sample C: one line "C FDS RSS_KB" of clusterf-ipvs's open fds and VmRSS to /tmp/res.
sample() {
    fds=$(ls /proc/$IPVS_PID/fd | wc -l)
    rss=$(awk '$1 == "VmRSS:" { print $2 }' /proc/$IPVS_PID/status)
    echo "$1 $fds $rss" >> /tmp/res
}
# slope COLUMN FROM: least-squares slope of column COLUMN (2 fds, 3 RSS kB) of /tmp/res over
# its samples with C > FROM, per 1000 changes.
slope() {
    awk -v col=$1 -v from=$2 '$1 > from { n++; x = $1 / 1000; y = $col; sx += x; sy += y; sxx += x * x; sxy += x * y }
        END { d = n * sxx - sx * sx; if (n < 2 || d == 0) print "n/a"; else { v = (n * sxy - sx * sy) / d; if (v < 0.005 && v > -0.005) v = 0; printf "%.2f\n", v } }' /tmp/res
}
# colmax COLUMN TO: the largest value of COLUMN over the samples with C <= TO.
colmax() { awk -v col=$1 -v to=$2 '$1 <= to && $col > m { m = $col } END { print m + 0 }' /tmp/res; }

# --- scenario 1 (+ 7a): churn with etcd killed -9 and restarted at spread points.
scenario_churn() {
    stop_ipvs; start_ipvs 0
    check "churn: clusterf-ipvs started (--resync-interval=0)" kill -0 $IPVS_PID
    ec del --prefix /clusterf/; : > $M; : > /tmp/res
    echo "  $CHANGES changes, $RESTARTS etcd restarts, a checkpoint every $CHECK_EVERY changes, seed $SEED"
    rs=1 restarted=0 failed=0 c=1 t_start=$(now)
    next=$((CHANGES * rs / (RESTARTS + 1)))
    while [ $c -le $CHANGES ]; do
        if [ $rs -le $RESTARTS ] && [ $c = $next ]; then
            echo "  change $c: kill -9 etcd, restarted in 2 s (the writer retries meanwhile)"
            etcd_restart_later
            restarted=$((restarted + 1)) rs=$((rs + 1)) next=$((CHANGES * rs / (RESTARTS + 1)))
        fi
        random_change || { failed=$((failed + 1)); [ $failed -ge 3 ] && break; }
        if [ $((c % CHECK_EVERY)) = 0 ] || [ $c = $CHANGES ]; then
            if checkpoint "churn: change $c ($WHAT)" 120; then
                sample $c
            else
                failed=$((failed + 1)); [ $failed -ge 3 ] && { echo "  churn stopped after 3 failures"; break; }
            fi
            [ $((c % (CHECK_EVERY * 4))) = 0 ] &&
                echo "  change $c: $(expected_table | grep -c .) rules, $(($(now) - t_start)) s"
        fi
        c=$((c + 1))
    done
    applied=$((c - 1)); [ $applied -gt $CHANGES ] && applied=$CHANGES
    wait_etcd 120
    check "churn: etcd healthy after its last restart" etcd_healthy
    check "churn: clusterf-ipvs survived every etcd restart" kill -0 $IPVS_PID
    if checkpoint "churn: end" 120; then
        ok "churn: $applied changes, $restarted etcd restarts: the kernel equals the expected table and clusterfctl status at all $CHECKPOINTS checkpoints"
    fi
    echo "MEASURE soak churn: $applied changes ($INVALIDS invalid values, $CONFLICTS conflicts) in $(($(now) - t_start)) s, $restarted etcd restarts survived, $GW_RETRIES writer retries, final diffs $DIFFS"
    echo "  final table: $(expected_table | grep -c '^-A') services, $(expected_table | grep -c '^-a') destinations"
    resources
}

# resources (7a): the fd and RSS slopes after the warm-up (the first fifth of the changes);
# fds must not grow (end <= warm-up max + 2: a reconnecting channel may hold a socket more);
# RSS fails only on gross growth, end > 2 x warm-up max: glibc arenas and gRPC buffers move
# RSS by a few MB either way, so a tighter bound would fail on noise; the slope is the figure
# to watch (a 1 kB/change leak is +1000 kB per 1000 changes).
resources() {
    warm=$((CHANGES / 5))
    n=$(awk -v w=$warm '$1 > w' /tmp/res | wc -l)
    [ $n -ge 2 ] || { bad "7a: too few samples after the warm-up ($n)"; return; }
    fd_end=$(tail -n 1 /tmp/res | cut -d' ' -f2); rss_end=$(tail -n 1 /tmp/res | cut -d' ' -f3)
    fd_warm=$(colmax 2 $warm); rss_warm=$(colmax 3 $warm)
    echo "  samples (change fds rss_kB): $(tr '\n' ';' < /tmp/res)"
    echo "MEASURE soak resources clusterf-ipvs: fds warm-up max $fd_warm end $fd_end slope $(slope 2 $warm)/1000 changes;" \
        "VmRSS warm-up max $rss_warm kB end $rss_end kB slope $(slope 3 $warm) kB/1000 changes ($n samples after $warm changes)"
    check "7a: clusterf-ipvs's fds do not grow (end $fd_end <= warm-up max $fd_warm + 2)" \
        test $fd_end -le $((fd_warm + 2))
    check "7a: clusterf-ipvs's RSS does not grow grossly (end $rss_end kB <= 2 x warm-up max $rss_warm kB)" \
        test $rss_end -le $((rss_warm * 2))
}

# --- scenario 2: compaction past the watch while clusterf-ipvs is stopped.
# heal_invalid: every key the writer may have made invalid gets the model's valid value again,
# or is deleted when the model has none -- the stale values a running daemon keeps are lost on a
# cold start (a restart), which the model does not follow, and once the history is compacted
# clusterfctl status cannot know them (it shows their services unknown and exits 3, where the
# checkpoints want 0). The table does not change.
heal_invalid() {
    for k in 1 2 3 4; do
        line=$(grep "^svc s$k " $M)
        if [ -n "$line" ]; then
            gw_put /clusterf/services/s$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":80,\"scheduler\":\"${line##* }\"}"
        else
            gw_del /clusterf/services/s$k/frontend
        fi
        for j in 1 2 3; do
            set -- $(grep "^be s$k $j " $M)
            if [ $# = 5 ]; then
                gw_put /clusterf/services/s$k/backends/b$j "{\"ipv4\":\"$5\",\"tcp\":8080,\"weight\":$4}"
            else
                gw_del /clusterf/services/s$k/backends/b$j
            fi
        done
    done
}
# compact_stopped RESTART: SIGSTOP clusterf-ipvs, COMPACT_CHANGES changes (no invalid values:
# see heal_invalid), compact past them + defrag; with RESTART=1 etcd is also killed -9 and
# restarted before SIGCONT, and it waits (60 s cap) for the daemon to log a compaction.
# 0 when it logged one (a re-read) after SIGCONT.
compact_stopped() {
    compacted=$(grep -c 'etcd history compacted' $LOG)
    kill -STOP $IPVS_PID
    i=0; while [ $i -lt $COMPACT_CHANGES ]; do CHURN_OPS=23 random_change; i=$((i + 1)); done
    rev=$(etcdctl --endpoints=$EP endpoint status -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
    check "compaction: etcdctl compact $rev (past the stopped daemon's watch)" ec compact $rev
    check "compaction: etcdctl defrag" ec defrag
    if [ $1 = 1 ]; then
        kill -9 $ETCD_PID; wait $ETCD_PID 2>/dev/null
        ( etcd_cmd ) &
        ETCD_PID=$!
        wait_etcd 120
        check "compaction: etcd restarted while clusterf-ipvs is stopped" etcd_healthy
    fi
    kill -CONT $IPVS_PID
    end=$(($(now) + 60 * $1))
    while [ "$(grep -c 'etcd history compacted' $LOG)" = "$compacted" ] && [ $(now) -lt $end ]; do sleep 0.3; done
    [ "$(grep -c 'etcd history compacted' $LOG)" -gt "$compacted" ]
}
# Two cases. Same connection: etcd had already queued the events for the stopped daemon's
# watch (a synced watcher is not cancelled by a compaction), so it may catch up without a
# re-read; it must converge either way. Connection lost too (etcd restarted meanwhile): the
# daemon resumes its watch below the compacted revision, must notice the compaction, re-read
# everything and converge.
scenario_compaction() {
    [ -n "$IPVS_PID" ] || start_ipvs 0
    heal_invalid
    checkpoint "compaction: before" 120 && ok "compaction: before: in sync (invalid keys healed)"
    compact_stopped 0
    checkpoint "compaction (same connection): after SIGCONT" 120 &&
        ok "compaction (same connection): after SIGCONT the kernel equals the expected table ($COMPACT_CHANGES changes made while stopped)"
    if [ "$(grep -c 'etcd history compacted' $LOG)" -gt "$compacted" ]; then
        echo "  same connection: the daemon re-read after the compaction"
    else echo "  same connection: the daemon caught up from its watch (etcd had queued the events)"; fi
    compact_stopped 1
    check "compaction (etcd restarted too): after SIGCONT clusterf-ipvs logs the compaction (re-reads everything)" test $? = 0
    checkpoint "compaction (etcd restarted too): after SIGCONT" 120 &&
        ok "compaction (etcd restarted too): after SIGCONT the kernel equals the expected table ($COMPACT_CHANGES changes made while stopped)"
    random_change
    checkpoint "compaction: a change after the re-read ($WHAT)" 120 &&
        ok "compaction: the watch works after the re-read"
}

# --- scenario 4: kernel drift by hand during churn; foreign services never touched.
# hand_edit: one random ipvsadm change to a clusterf service or destination in the kernel.
HAND=0 LAST_EDITS=
hand_edit() {
    kernel_table > /tmp/k.tab
    n=$(wc -l < /tmp/k.tab); [ $n -gt 0 ] || return 0
    rnd $n; line=$(sed -n "$((R + 1))p" /tmp/k.tab)
    set -- $line
    rnd 2
    case "$1 $R" in
        "-A 0") ipvsadm -D -t $3;;
        "-A 1") ipvsadm -E -t $3 -s sh;;
        "-a 0") ipvsadm -d -t $3 -r $5;;
        *) ipvsadm -e -t $3 -r $5 $6 -w 99;;
    esac 2>/dev/null && HAND=$((HAND + 1)) && LAST_EDITS="$LAST_EDITS|$1/$R $3 ${5:-}"
}
scenario_drift() {
    heal_invalid    # the restart below is a cold start: stale values would be dropped
    stop_ipvs
    ipvsadm -A -t ${FOREIGN}1:80 -s rr && ipvsadm -a -t ${FOREIGN}1:80 -r 10.67.0.1:80 -m -w 3
    start_ipvs 5s
    check "drift: clusterf-ipvs started (--resync-interval=5s)" kill -0 $IPVS_PID
    ipvsadm -A -t ${FOREIGN}2:80 -s wlc && ipvsadm -a -t ${FOREIGN}2:80 -r 10.67.0.2:80 -m -w 4
    foreign=$(foreign_table)
    echo "  foreign services (one added before the daemon started, one after):"; echo "$foreign" | sed 's/^/    /'
    checkpoint "drift: before" 120 && ok "drift: before: in sync, foreign services beside"
    repaired=$(grep -c 'msg="drift repaired"' $LOG)
    c=1 touched=0
    while [ $c -le $DRIFT_CHANGES ]; do
        random_change
        [ $((c % 3)) = 0 ] && hand_edit
        [ "$(foreign_table)" = "$foreign" ] || touched=$((touched + 1))
        c=$((c + 1))
    done
    LAST_EDITS=; hand_edit; hand_edit
    t0=$(now_cs) mark=$(wc -l < $LOG)
    echo "  last hand edits (kind/variant service dest): ${LAST_EDITS#|}"
    if checkpoint "drift: after the writer stopped, repaired" 120; then
        took=$(( $(now_cs) - t0 ))
        ok "drift: after $DRIFT_CHANGES changes and $HAND hand edits the table is repaired"
        echo "MEASURE soak drift: repaired $(cs_to_s $took) s after the writer stopped (resync period 5 s);" \
            "$(( $(grep -c 'msg="drift repaired"' $LOG) - repaired )) resyncs repaired drift, $HAND hand edits"
        echo "  the daemon's passes since the last hand edits:"
        tail -n +$((mark + 1)) $LOG | grep 'pass=' | cut -c1-220 | sed 's/^/    /'
    fi
    [ "$(foreign_table)" = "$foreign" ] || touched=$((touched + 1))
    check "drift: the foreign services were never touched (checked after each of $DRIFT_CHANGES changes and at the end)" \
        test $touched = 0
    [ $touched = 0 ] || { echo "  foreign now:"; foreign_table | sed 's/^/    /'; }
    check "drift: clusterfctl status counts the foreign services as left alone" \
        grep -q '2 foreign' /tmp/status.out
}

ok_start=1
( etcd_cmd ) &
ETCD_PID=$!
wait_etcd 120 || { echo "etcd did not start"; tail -n 20 /tmp/etcd.log; ok_start=0; }
if [ $ok_start = 1 ]; then
    ok "etcd: healthy"
    : > $LOG; : > $M
    for scen in churn compaction drift; do
        want $scen || continue
        echo "== $scen (VM uptime $(cs_to_s $(now_cs)) s)"
        case $scen in
            churn) scenario_churn;; compaction) scenario_compaction;; drift) scenario_drift;;
        esac
        kill -CONT $IPVS_PID 2>/dev/null
        wait_etcd 120
    done
    stop_ipvs
    echo "  clusterf-ipvs logged $(grep -c 'level=error' $LOG) error lines, $(grep -c 'level=warn' $LOG) warnings (etcd restarts, invalid keys, conflicts)"
    grep -q 'AddressSanitizer\|runtime error' $LOG && { bad "sanitizers reported errors"; grep -A5 'AddressSanitizer\|runtime error' $LOG | head -40; }
    [ $FAIL -gt 0 ] && { echo "--- clusterf-ipvs log (tail)"; tail -n 40 $LOG; }
else
    FAIL=$((FAIL + 1))
fi
echo "guest_soak: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
