#!/bin/sh
# guest_clusterf_ipvs.sh -- clusterf-ipvs end to end inside the scripts/vm-run guest: a real
# etcd, the real kernel IPVS, checked with ipvsadm and with real packets through a VIP; and
# clusterfctl status (desired vs kernel) next to it, also after a compaction; last, a damaged
# state file.
# Run by tests/vm/test_clusterf_ipvs.sh; prints "guest_clusterf_ipvs: N passed, N failed, 0 skipped".
# Argument: a substring; only scenarios whose name contains it run.
set -u
FILTER=${1:-}
PASS=0 FAIL=0
IP=/bin/ip
EP=http://127.0.0.1:2379
LOG=/tmp/ipvs.log
ETCD_PID= IPVS_PID=
export ETCDCTL_API=3

. /vm/guest_lib.sh   # ok, bad, check, wait_for (tests/vm/guest_lib.sh)
ec() { etcdctl --endpoints=$EP "$@" > /dev/null; }

start_etcd() {
    etcd --data-dir /tmp/etcd --listen-client-urls $EP --advertise-client-urls $EP \
         --listen-peer-urls http://127.0.0.1:2380 > /tmp/etcd.log 2>&1 &
    ETCD_PID=$!
    i=0
    while ! etcdctl --endpoints=$EP endpoint health > /dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 150 ] && { echo "etcd did not start"; cat /tmp/etcd.log; return 1; }
        sleep 0.2
    done
}

# start_ipvs [FLAGS...]: clusterf-ipvs in the background, logging to $LOG (appended); returns
# once it has said it started (its signals are handled from then on), or after 20 s.
start_ipvs() {
    echo "--- start clusterf-ipvs $*" >> $LOG
    start_mark=$(wc -l < $LOG)
    clusterf-ipvs --etcd-endpoints=$EP --resync-interval=2s --state-dir=/run/clusterf --log-level=debug "$@" >> $LOG 2>&1 &
    IPVS_PID=$!
    i=0
    while ! since $start_mark | grep -q 'msg="clusterf-ipvs started"\|level=error'; do
        i=$((i + 1)); [ $i -gt 100 ] && break
        sleep 0.2
    done
}

# stop_ipvs [SIGNAL]: stop clusterf-ipvs; with SIGTERM (the default) it must exit 0.
stop_ipvs() {
    [ -n "$IPVS_PID" ] || return 0
    sig=${1:-TERM}
    kill -$sig $IPVS_PID 2>/dev/null
    wait $IPVS_PID 2>/dev/null
    rc=$?
    IPVS_PID=
    [ $sig = TERM ] || return 0
    if [ $rc = 0 ]; then ok "${SCENARIO:-start}: clusterf-ipvs exits 0 on SIGTERM"
    else bad "${SCENARIO:-start}: clusterf-ipvs exits 0 on SIGTERM (exit $rc)"; tail -n 15 $LOG | sed 's/^/    /'; fi
}

# since MARKER: the lines $LOG gained after it had MARKER lines (marker=$(wc -l < $LOG)).
since() { tail -n +$(($1 + 1)) $LOG; }
# logged_since MARKER REGEX / not_logged_since MARKER REGEX
logged_since() { since "$1" | grep -q "$2"; }
not_logged_since() { ! logged_since "$@"; }
# resyncs_since MARKER N: at least N full resync passes logged (needs --log-level=debug).
resyncs_since() { [ "$(since "$1" | grep -c 'msg="reconciled" pass=full scope=resync')" -ge "$2" ]; }

# canon: a listing with spaces squeezed, services sorted, each with its dests sorted under it
# (ipvsadm --sort orders addresses by their bytes read as a host-order integer).
canon() {
    sed 's/^ *//; s/[[:space:]][[:space:]]*/ /g; s/ $//' | grep -v '^$' |
        awk '/^->/ { print svc "|" $0; next } { svc = $0; print svc }' | sort | sed 's/^[^|]*|//'
}

# The kernel table as `ipvsadm -L -n` shows it, without its header, canonical.
table() { ipvsadm -L -n | tail -n +4 | canon; }

# expect NAME EXPECTED: wait up to 20 s for table() to equal EXPECTED (lines, '|' separated).
expect() {
    want=$(printf '%s\n' "$2" | tr '|' '\n' | canon)
    i=0
    while [ "$(table)" != "$want" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            bad "$1"
            echo "  want:"; printf '%s\n' "$want" | sed 's/^/    /'
            echo "  have:"; table | sed 's/^/    /'
            echo "  log tail:"; tail -n 15 $LOG | sed 's/^/    /'
            return 1
        fi
        sleep 0.2
    done
    ok "$1"
}


# want SCENARIO: true when it is to run; names it for the checks of stop_ipvs.
want() { SCENARIO=$1; [ -z "$FILTER" ] || case "$1" in *"$FILTER"*) return 0;; *) return 1;; esac; }

scenario_seed() {
    expect "seed: empty table at start" ""
    ec put /clusterf/services/test/frontend '{"ipv4": "10.107.107.107", "tcp": 1337}'
    expect "seed: frontend" "TCP 10.107.107.107:1337 wlc"
    ec put /clusterf/services/test/backends/test3-1 '{"ipv4": "10.3.107.1", "tcp": 1337}'
    expect "seed: first backend" "TCP 10.107.107.107:1337 wlc|-> 10.3.107.1:1337 Masq 10 0 0"
    ec put /clusterf/services/test/backends/test3-2 '{"ipv4": "10.3.107.2", "tcp": 1337}'
    expect "seed: second backend" "TCP 10.107.107.107:1337 wlc|-> 10.3.107.1:1337 Masq 10 0 0|-> 10.3.107.2:1337 Masq 10 0 0"
    ec put /clusterf/services/test/backends/test3-2 '{"ipv4": "10.3.107.2", "tcp": 1338}'
    expect "seed: backend port change" "TCP 10.107.107.107:1337 wlc|-> 10.3.107.1:1337 Masq 10 0 0|-> 10.3.107.2:1338 Masq 10 0 0"
    ec del --prefix /clusterf/services/test
    expect "seed: del --prefix empties the table" ""
}

WEB="TCP 10.107.107.107:80 wlc"
scenario_routes() {
    ec put /clusterf/routes/r-masq '{"Prefix4":"10.3.0.0/16","IpvsMethod":"masq"}'
    ec put /clusterf/routes/r-dr '{"Prefix4":"10.3.107.0/24","IpvsMethod":"droute"}'
    ec put /clusterf/routes/r-tun '{"Prefix4":"10.4.0.0/16","IpvsMethod":"tunnel"}'
    ec put /clusterf/routes/r-filter '{"Prefix4":"10.5.0.0/16","IpvsMethod":"filter"}'
    ec put /clusterf/routes/r-gw '{"Prefix4":"10.6.107.0/24","Gateway4":"10.107.107.6","IpvsMethod":"droute"}'
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    ec put /clusterf/services/web/backends/a '{"ipv4":"10.3.1.1","tcp":8080}'
    ec put /clusterf/services/web/backends/b '{"ipv4":"10.3.107.5","tcp":8080}'
    ec put /clusterf/services/web/backends/c '{"ipv4":"10.4.0.1","tcp":8080}'
    ec put /clusterf/services/web/backends/d '{"ipv4":"10.5.0.1","tcp":8080}'
    ec put /clusterf/services/web/backends/g1 '{"ipv4":"10.6.107.1","tcp":8080}'
    ec put /clusterf/services/web/backends/g2 '{"ipv4":"10.6.107.2","tcp":8080}'
    expect "routes: masq, longest-prefix droute, tunnel, filter, gateway merged to 20" \
        "$WEB|-> 10.3.1.1:8080 Masq 10 0 0|-> 10.3.107.5:80 Route 10 0 0|-> 10.4.0.1:80 Tunnel 10 0 0|-> 10.107.107.6:80 Route 20 0 0"
    ec del /clusterf/services/web/backends/g2
    expect "routes: one backend leaves the gateway: weight 10" \
        "$WEB|-> 10.3.1.1:8080 Masq 10 0 0|-> 10.3.107.5:80 Route 10 0 0|-> 10.4.0.1:80 Tunnel 10 0 0|-> 10.107.107.6:80 Route 10 0 0"
    ec del /clusterf/routes/r-dr
    expect "routes: a route change re-applies to existing backends" \
        "$WEB|-> 10.3.1.1:8080 Masq 10 0 0|-> 10.3.107.5:8080 Masq 10 0 0|-> 10.4.0.1:80 Tunnel 10 0 0|-> 10.107.107.6:80 Route 10 0 0"
    marker=$(wc -l < $LOG)
    ec put /clusterf/services/web/backends/a '{"ipv4":"10.3.1.1","tcp":8080,"weight":0}'
    expect "routes: weight 0 (drain) applied" \
        "$WEB|-> 10.3.1.1:8080 Masq 0 0 0|-> 10.3.107.5:8080 Masq 10 0 0|-> 10.4.0.1:80 Tunnel 10 0 0|-> 10.107.107.6:80 Route 10 0 0"
    ec put /clusterf/services/web/backends/a '{"ipv4":"10.3.1.1","tcp":8080,"weight":5}'
    expect "routes: weight 5 applied" \
        "$WEB|-> 10.3.1.1:8080 Masq 5 0 0|-> 10.3.107.5:8080 Masq 10 0 0|-> 10.4.0.1:80 Tunnel 10 0 0|-> 10.107.107.6:80 Route 10 0 0"
    tail -n +$((marker + 1)) $LOG > /tmp/weight.log
    check "routes: weight changes are edits in place (no delete/add of the dest)" \
        sh -c 'grep -q "op=edit-dest.*dest=10.3.1.1:8080" /tmp/weight.log && ! grep -q "op=delete-dest\|op=add-dest" /tmp/weight.log'
    ec del --prefix /clusterf/services/web
    ec del --prefix /clusterf/routes/
    expect "routes: cleaned up" ""
}

scenario_families() {
    ec put /clusterf/services/dual/frontend '{"ipv4":"10.20.0.1","ipv6":"2001:db8::20","tcp":80,"udp":53}'
    ec put /clusterf/services/dual/backends/x '{"ipv4":"10.21.0.1","ipv6":"2001:db8:1::1","tcp":8080,"udp":5353}'
    ec put /clusterf/services/dual/backends/v4only '{"ipv4":"10.21.0.2","tcp":8080}'
    expect "families: dual-stack tcp+udp, backend ports differ, v4-only backend" \
        "TCP 10.20.0.1:80 wlc|-> 10.21.0.1:8080 Masq 10 0 0|-> 10.21.0.2:8080 Masq 10 0 0|UDP 10.20.0.1:53 wlc|-> 10.21.0.1:5353 Masq 10 0 0|TCP [2001:db8::20]:80 wlc|-> [2001:db8:1::1]:8080 Masq 10 0 0|UDP [2001:db8::20]:53 wlc|-> [2001:db8:1::1]:5353 Masq 10 0 0"
    ec del --prefix /clusterf/services/dual
    ec put /clusterf/services/mark/frontend '{"fwmark":7,"scheduler":"rr"}'
    ec put /clusterf/services/mark/backends/x '{"ipv4":"10.31.0.1","tcp":80}'
    ec put /clusterf/services/ext/frontend '{"ipv4":"10.40.0.1","tcp":80,"scheduler":"sh","persistence":300,"flags":["sh-fallback","sh-port"]}'
    expect "families: fwmark service, scheduler/persistence/flags extensions" \
        "TCP 10.40.0.1:80 sh (sh-fallback,sh-port) persistent 300|FWM 7 rr|-> 10.31.0.1:0 Masq 10 0 0"
    ec put /clusterf/services/ext/frontend '{"ipv4":"10.40.0.1","tcp":80,"scheduler":"rr"}'
    expect "families: scheduler edited in place" "TCP 10.40.0.1:80 rr|FWM 7 rr|-> 10.31.0.1:0 Masq 10 0 0"
    ec del --prefix /clusterf/services/
    expect "families: cleaned up" ""
}

scenario_foreign_drift_invalid() {
    ipvsadm -A -t 192.0.2.1:22 -s rr
    ipvsadm -a -t 192.0.2.1:22 -r 192.0.2.9:22 -m -w 1
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    ec put /clusterf/services/web/backends/a '{"ipv4":"10.3.1.1","tcp":8080}'
    expect "foreign: a hand-made service beside a managed one" \
        "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 10 0 0|TCP 192.0.2.1:22 rr|-> 192.0.2.9:22 Masq 1 0 0"
    marker=$(wc -l < $LOG)
    ipvsadm -D -t 10.107.107.107:80
    expect "drift: ipvsadm -D of a managed service repaired" \
        "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 10 0 0|TCP 192.0.2.1:22 rr|-> 192.0.2.9:22 Masq 1 0 0"
    check "foreign: still untouched after a resync (the one that repaired the drift)" \
        logged_since $marker 'msg="drift repaired"'
    ipvsadm -C
    expect "drift: ipvsadm -C repaired" "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 10 0 0"
    check "drift: logged" grep -q 'msg="drift repaired"' $LOG
    marker=$(wc -l < $LOG)
    ec put /clusterf/services/web/backends/a '{"ipv4": "10.3.1.1", "tcp": 8080'
    wait_for "invalid: logged with its key" 20 \
        logged_since $marker 'msg="invalid config value".*key=services/web/backends/a'
    # A later key applied means the invalid one was handled before it (one watch, in order).
    ec put /clusterf/services/web2/frontend '{"ipv4":"10.107.107.109","tcp":80}'
    expect "invalid: truncated JSON over a valid backend keeps the destination" \
        "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 10 0 0|TCP 10.107.107.109:80 wlc"
    ec del /clusterf/services/web2/frontend
    ec put /clusterf/services/web/backends/a '{"ipv4": "10.3.1.1", "tcp": 8080, "weight": 7}'
    expect "invalid: the fixed value is applied" "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 7 0 0"
}

scenario_restart() {
    ec del --prefix /clusterf/services/web/backends
    ipvsadm -A -t 192.0.2.1:22 -s rr
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    ec put /clusterf/services/old/frontend '{"ipv4":"10.107.107.108","tcp":80}'
    expect "restart: before" "TCP 10.107.107.107:80 wlc|TCP 10.107.107.108:80 wlc|TCP 192.0.2.1:22 rr"
    stop_ipvs TERM
    check "restart: SIGTERM leaves the table as it is" \
        test "$(table)" = "$(printf 'TCP 10.107.107.107:80 wlc\nTCP 10.107.107.108:80 wlc\nTCP 192.0.2.1:22 rr' | canon)"
    ec del --prefix /clusterf/services/old
    start_ipvs
    expect "restart: a service deleted while stopped is removed; foreign kept" \
        "TCP 10.107.107.107:80 wlc|TCP 192.0.2.1:22 rr"
    ipvsadm -D -t 192.0.2.1:22
}

scenario_sighup() {
    stop_ipvs
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    starts=$(grep -c 'msg="etcd read"' $LOG)
    start_ipvs --resync-interval=0
    wait_for "sighup: the daemon has read etcd" 20 sh -c "[ \$(grep -c 'msg=\"etcd read\"' $LOG) -gt $starts ]"
    expect "sighup: before" "TCP 10.107.107.107:80 wlc"
    ipvsadm -D -t 10.107.107.107:80
    marker=$(wc -l < $LOG)
    # A 2 s resync (the other daemons' interval) repairs this deletion (the control below);
    # three such periods pass without a repair.
    sleep 6
    check "sighup: no periodic resync with --resync-interval=0: the deleted service stays missing for 3 x 2 s" \
        sh -c '! ipvsadm -L -n | grep -q 10.107.107.107:80'
    check "sighup: ... and no drift repair logged" not_logged_since $marker 'drift repaired'
    kill -HUP $IPVS_PID
    expect "sighup: SIGHUP repairs at once" "TCP 10.107.107.107:80 wlc"
    stop_ipvs
    start_ipvs
    wait_for "sighup: control: the 2 s daemon has read etcd" 20 sh -c "[ \$(grep -c 'msg=\"etcd read\"' $LOG) -gt $((starts + 1)) ]"
    expect "sighup: control: same table" "TCP 10.107.107.107:80 wlc"
    ipvsadm -D -t 10.107.107.107:80
    expect "sighup: control: with --resync-interval=2s the same deletion is repaired" "TCP 10.107.107.107:80 wlc"
}

scenario_etcd_restart() {
    stop_ipvs
    start_ipvs --log-level=debug   # every resync pass is logged (at debug when it changes nothing)
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    ec put /clusterf/services/web/backends/a '{"ipv4":"10.3.1.1","tcp":8080}'
    expect "etcd restart: before" "TCP 10.107.107.107:80 wlc|-> 10.3.1.1:8080 Masq 10 0 0"
    ec put /clusterf/services/web/backends/b '{"ipv4":"10.3.1.2","tcp":8080}'
    marker=$(wc -l < $LOG)
    kill -9 $ETCD_PID; wait $ETCD_PID 2>/dev/null
    wait_for "etcd down: the daemon sees the watch interrupted" 60 logged_since $marker 'etcd watch interrupted'
    # The table as of the first resync after that (whatever it had received is applied), then
    # two more resync periods with etcd away: the table must not move (fail static).
    marker=$(wc -l < $LOG)
    wait_for "etcd down: a resync pass" 60 resyncs_since $marker 1
    snapshot=$(ipvsadm -S -n)
    marker=$(wc -l < $LOG)
    wait_for "etcd down: two more resync passes" 60 resyncs_since $marker 2
    check "etcd down: the kernel table is unchanged across two resync periods (fail static)" \
        test "$(ipvsadm -S -n)" = "$snapshot"
    check "etcd down: ... and holds the service and its destination" \
        sh -c "ipvsadm -L -n | grep -q 'TCP  10.107.107.107:80' && ipvsadm -L -n | grep -q '10.3.1.1:8080'"
    start_etcd || bad "etcd restart: etcd starts again on its data"
    ec put /clusterf/services/web/backends/c '{"ipv4":"10.3.1.3","tcp":8080,"weight":2}'
    ec del /clusterf/services/web/backends/a
    expect "etcd restart: converges to the final config" \
        "TCP 10.107.107.107:80 wlc|-> 10.3.1.2:8080 Masq 10 0 0|-> 10.3.1.3:8080 Masq 2 0 0"
    check "etcd restart: the watch resumed (logged)" grep -q 'etcd watch interrupted' $LOG
}

scenario_local_tree() {
    stop_ipvs
    mkdir -p /tmp/local/services/loc/backends /tmp/local/routes
    echo '{"ipv4":"10.50.0.1","tcp":80}' > /tmp/local/services/loc/frontend
    echo '{"ipv4":"10.51.0.1","tcp":80,"weight":9}' > /tmp/local/services/loc/backends/x
    echo '{"Prefix4":"10.52.0.0/16","IpvsMethod":"droute"}' > /tmp/local/routes/lr
    ec put /clusterf/services/loc/backends/x '{"ipv4":"10.51.0.1","tcp":80,"weight":1}'
    ec put /clusterf/services/loc/backends/y '{"ipv4":"10.52.0.1","tcp":80}'
    ec put /clusterf/services/loc/backends/z '{"ipv4":"10.4.0.9","tcp":8080}'
    ec put /clusterf/routes/r-tun '{"Prefix4":"10.4.0.0/16","IpvsMethod":"tunnel"}'
    start_ipvs -config-path=/tmp/local
    expect "local: tree merged with etcd, local wins for the same key" \
        "TCP 10.50.0.1:80 wlc|-> 10.4.0.9:80 Tunnel 10 0 0|-> 10.51.0.1:80 Masq 9 0 0|-> 10.52.0.1:80 Route 10 0 0|TCP 10.107.107.107:80 wlc|-> 10.3.1.2:8080 Masq 10 0 0|-> 10.3.1.3:8080 Masq 2 0 0"
    echo '{"ipv4":"10.51.0.1","tcp":80,"weight":4}' > /tmp/local/services/loc/backends/x
    expect "local: a changed file is re-read" \
        "TCP 10.50.0.1:80 wlc|-> 10.4.0.9:80 Tunnel 10 0 0|-> 10.51.0.1:80 Masq 4 0 0|-> 10.52.0.1:80 Route 10 0 0|TCP 10.107.107.107:80 wlc|-> 10.3.1.2:8080 Masq 10 0 0|-> 10.3.1.3:8080 Masq 2 0 0"
    rm /tmp/local/services/loc/backends/x
    expect "local: a removed file falls back to etcd's value" \
        "TCP 10.50.0.1:80 wlc|-> 10.4.0.9:80 Tunnel 10 0 0|-> 10.51.0.1:80 Masq 1 0 0|-> 10.52.0.1:80 Route 10 0 0|TCP 10.107.107.107:80 wlc|-> 10.3.1.2:8080 Masq 10 0 0|-> 10.3.1.3:8080 Masq 2 0 0"
    stop_ipvs
    start_ipvs -config-path=/tmp/local -filter-etcd-routes
    expect "local: -filter-etcd-routes drops etcd routes, keeps local ones" \
        "TCP 10.50.0.1:80 wlc|-> 10.4.0.9:8080 Masq 10 0 0|-> 10.51.0.1:80 Masq 1 0 0|-> 10.52.0.1:80 Route 10 0 0|TCP 10.107.107.107:80 wlc|-> 10.3.1.2:8080 Masq 10 0 0|-> 10.3.1.3:8080 Masq 2 0 0"
    stop_ipvs
    ec del --prefix /clusterf/
    start_ipvs
    expect "local: everything cleaned up" ""
}

# status [FLAGS...]: clusterfctl status into /tmp/status.out; its exit status in $STATUS_RC.
status() {
    clusterfctl status --etcd-endpoints=$EP "$@" > /tmp/status.out 2>&1
    STATUS_RC=$?
    echo "--- clusterfctl status $* -> $STATUS_RC" >> $LOG; cat /tmp/status.out >> $LOG
}

# sees NAME REGEX: pass when a line of /tmp/status.out matches REGEX (spaces squeezed).
sees() {
    if sed 's/[[:space:]][[:space:]]*/ /g' /tmp/status.out | grep -q "$2"; then ok "$1"
    else bad "$1"; sed 's/^/    /' /tmp/status.out; fi
}

scenario_status() {
    ec put /clusterf/services/st/frontend '{"ipv4":"10.60.0.1","tcp":80}'
    ec put /clusterf/services/st/backends/a '{"ipv4":"10.61.0.1","tcp":8080}'
    ec put /clusterf/services/st/backends/b '{"ipv4":"10.61.0.2","tcp":8080,"weight":3}'
    expect "status: set up" "TCP 10.60.0.1:80 wlc|-> 10.61.0.1:8080 Masq 10 0 0|-> 10.61.0.2:8080 Masq 3 0 0"
    status
    check "status: in sync -> exit 0" test $STATUS_RC = 0
    sees "status: in sync, dest shown ok" "^ok tcp 10.60.0.1:80 10.61.0.2:8080 masq w=3 masq w=3 st$"
    sees "status: summary says in sync" "^in sync: 1 service(s), 2 destination(s)"
    stop_ipvs
    ipvsadm -d -t 10.60.0.1:80 -r 10.61.0.2:8080
    ipvsadm -e -t 10.60.0.1:80 -r 10.61.0.1:8080 -m -w 5
    ipvsadm -A -t 192.0.2.7:22 -s rr
    ipvsadm -a -t 192.0.2.7:22 -r 192.0.2.9:22 -m -w 1
    status
    sed 's/^/    /' /tmp/status.out
    check "status: drift -> exit 1" test $STATUS_RC = 1
    sees "status: the deleted dest is missing" "^missing tcp 10.60.0.1:80 10.61.0.2:8080 masq w=3 - st$"
    sees "status: the edited dest differs, both weights shown" "^differ tcp 10.60.0.1:80 10.61.0.1:8080 masq w=10 masq w=5 st$"
    sees "status: a foreign service is only in the kernel" "^foreign tcp 192.0.2.7:22 - - rr -$"
    sees "status: drift counted" "^DRIFT: 2 difference(s).*1 foreign service(s) left alone"
    clusterfctl status --etcd-endpoints=$EP -o json > /tmp/status.json 2>&1
    check "status: -o json says not in sync" grep -q '"in_sync": false' /tmp/status.json
    ec del --prefix /clusterf/services/st
    status
    check "status: a service clusterf-ipvs created, now deleted from etcd -> exit 1" test $STATUS_RC = 1
    sees "status: ... shown as stale" "^stale tcp 10.60.0.1:80 - - wlc -$"
    start_ipvs
    expect "status: clusterf-ipvs repairs it" "TCP 192.0.2.7:22 rr|-> 192.0.2.9:22 Masq 1 0 0"
    status
    check "status: only a foreign service left -> exit 0" test $STATUS_RC = 0
    sees "status: in sync with the foreign service left alone" "^in sync: 0 service(s), 0 destination(s); 1 foreign"
    ipvsadm -D -t 192.0.2.7:22
}

# An invalid key whose last valid value is compacted from etcd's history (issue #9): the
# running daemon keeps that value; clusterfctl status cannot know it, so the services the key
# touches are unknown -- neither ok nor drift -- and it exits 3 (1 while other drift remains).
# sc: backend k goes invalid (the daemon keeps it at w=5); sf: its frontend goes invalid (the
# daemon keeps the service); sk stays valid. A restarted daemon skips both keys (cold start).
scenario_status_compacted() {
    ec put /clusterf/services/sc/frontend '{"ipv4":"10.62.0.1","tcp":80}'
    ec put /clusterf/services/sc/backends/a '{"ipv4":"10.63.0.1","tcp":8080}'
    ec put /clusterf/services/sc/backends/k '{"ipv4":"10.63.0.2","tcp":8080,"weight":5}'
    ec put /clusterf/services/sf/frontend '{"ipv4":"10.64.0.1","tcp":80}'
    ec put /clusterf/services/sk/frontend '{"ipv4":"10.65.0.1","tcp":80}'
    ec put /clusterf/services/sk/backends/a '{"ipv4":"10.66.0.1","tcp":8080}'
    all="TCP 10.62.0.1:80 wlc|-> 10.63.0.1:8080 Masq 10 0 0|-> 10.63.0.2:8080 Masq 5 0 0|TCP 10.64.0.1:80 wlc|TCP 10.65.0.1:80 wlc|-> 10.66.0.1:8080 Masq 10 0 0"
    expect "compacted: set up" "$all"
    marker=$(wc -l < $LOG)
    ec put /clusterf/services/sc/backends/k '{"ipv4":"10.63.0.2","tcp":8080,"weight":70000}'
    ec put /clusterf/services/sf/frontend '{"ipv4":"10.64.0.1","tcp":-1}'
    wait_for "compacted: the daemon logged both invalid keys" 20 \
        logged_since $marker 'msg="invalid config value".*key=services/sf/frontend'
    expect "compacted: the daemon keeps their last valid values" "$all"
    status
    check "compacted: before the compaction status finds the last valid values: in sync (exit 0, got $STATUS_RC)" \
        test $STATUS_RC = 0
    rev=$(etcdctl --endpoints=$EP endpoint status -w json | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
    check "compacted: etcdctl compact $rev" ec compact $rev
    status
    sed 's/^/    /' /tmp/status.out
    check "compacted: no drift but unknown services -> exit 3 (got $STATUS_RC)" test $STATUS_RC = 3
    sees "compacted: the kept backend is unknown, not extra" "^unknown tcp 10.62.0.1:80 10.63.0.2:8080 - masq w=5 sc$"
    sees "compacted: the rest of its service is unknown too" "^unknown tcp 10.62.0.1:80 10.63.0.1:8080 masq w=10 masq w=10 sc$"
    sees "compacted: the kept service of the unknown frontend is unknown, not stale" "^unknown tcp 10.64.0.1:80 - - wlc -$"
    sees "compacted: the valid service is checked" "^ok tcp 10.65.0.1:80 10.66.0.1:8080 masq w=10 masq w=10 sk$"
    sees "compacted: the key is named with its revision" "^unknown: services/sc/backends/k: invalid since revision [0-9]* at least, and etcd's history before it is compacted"
    sees "compacted: summary" "^UNKNOWN: no drift in what can be checked, but 2 service(s)"
    clusterfctl status --etcd-endpoints=$EP -o json > /tmp/status.json 2>&1
    check "compacted: -o json: not in sync, 2 unknown, 0 drift" json_unknown_2
    clusterfctl get --etcd-endpoints=$EP > /tmp/get.out 2>&1
    check "compacted: get shows the same keys unknown" \
        grep -q '^services/sc/backends/k  *etcd  *backend  *unknown' /tmp/get.out
    stop_ipvs
    ipvsadm -d -t 10.65.0.1:80 -r 10.66.0.1:8080
    status
    check "compacted: drift elsewhere still -> exit 1 (got $STATUS_RC)" test $STATUS_RC = 1
    sees "compacted: ... with the unknown ones counted apart" "^DRIFT: 1 difference(s).*; 2 service(s) unknown"
    start_ipvs
    expect "compacted: a restarted daemon skips both invalid keys (cold start)" \
        "TCP 10.62.0.1:80 wlc|-> 10.63.0.1:8080 Masq 10 0 0|TCP 10.65.0.1:80 wlc|-> 10.66.0.1:8080 Masq 10 0 0"
    status
    check "compacted: after the restart status still cannot know (exit 3, got $STATUS_RC)" test $STATUS_RC = 3
    ec del --prefix /clusterf/services/sc/
    ec del --prefix /clusterf/services/sf/
    ec del --prefix /clusterf/services/sk/
    expect "compacted: cleaned up" ""
}
json_unknown_2() {
    grep -q '"in_sync": false' /tmp/status.json && grep -q '"unknown": 2' /tmp/status.json &&
        grep -q '"drift": 0' /tmp/status.json
}

route_present() { [ -n "$(etcdctl --endpoints=$EP get /clusterf/routes/host1 --print-value-only)" ]; }
route_absent() { ! route_present; }

# The advertising daemon runs with --dry-run, alone, on a non-empty config that differs from
# the kernel (a service with another scheduler, no dest): it logs the ops it would do, and
# the kernel table (ipvsadm -Sn) stays byte for byte as it was.
scenario_advertise() {
    stop_ipvs
    ec put /clusterf/services/dry/frontend '{"ipv4":"10.70.0.1","tcp":80}'
    ec put /clusterf/services/dry/backends/a '{"ipv4":"10.71.0.1","tcp":80}'
    ipvsadm -A -t 10.70.0.1:80 -s rr
    before=$(ipvsadm -S -n)
    marker=$(wc -l < $LOG)
    clusterf-ipvs --etcd-endpoints=$EP --dry-run --state-dir= --log-level=debug \
        -advertise-route-name=host1 -advertise-route-prefix4=10.77.0.0/16 \
        -advertise-route-gateway4=10.107.107.77 -advertise-route-ipvs-method=droute \
        -advertise-route-ttl=2 >> $LOG 2>&1 &
    adv=$!
    wait_for "dry-run: the dest it would add is logged" 30 \
        logged_since $marker 'msg="ipvs op (dry-run)" op=add-dest.*10.71.0.1:80'
    check "dry-run: the kernel table is unchanged (ipvsadm -Sn)" test "$(ipvsadm -S -n)" = "$before"
    check "dry-run: ... and it held the service to change" sh -c "ipvsadm -S -n | grep -q '10.70.0.1:80 -s rr'"
    wait_for "advertise: the route is published" 15 route_present
    check "advertise: route value" sh -c "etcdctl --endpoints=$EP get /clusterf/routes/host1 --print-value-only | grep -q '\"Gateway4\":\"10.107.107.77\"'"
    kill -9 $adv; wait $adv 2>/dev/null
    wait_for "advertise: the route disappears with its lease after kill -9" 15 route_absent
    ec del --prefix /clusterf/services/dry
    ipvsadm -D -t 10.70.0.1:80
    start_ipvs
}

# Two backends (be1, be2) in namespaces behind a masq VIP 10.10.10.10:80 in the root
# namespace; the client in a third namespace.
net_setup() {
    $IP netns list | grep -q '^be1' && return 0
    for n in 1 2; do
        $IP netns add be$n
        $IP link add vb$n type veth peer name vbp$n
        $IP link set vbp$n netns be$n
        $IP addr add 10.9.$n.1/24 dev vb$n; $IP link set vb$n up
        $IP -n be$n addr add 10.9.$n.2/24 dev vbp$n; $IP -n be$n link set vbp$n up
        $IP -n be$n link set lo up; $IP -n be$n route add default via 10.9.$n.1
        mkdir -p /tmp/www$n; echo "be$n" > /tmp/www$n/index.html
        $IP netns exec be$n busybox httpd -p 80 -h /tmp/www$n
    done
    $IP netns add cl
    $IP link add vc type veth peer name vcp; $IP link set vcp netns cl
    $IP addr add 10.8.0.1/24 dev vc; $IP link set vc up
    $IP -n cl addr add 10.8.0.2/24 dev vcp; $IP -n cl link set vcp up; $IP -n cl link set lo up
    $IP -n cl route add default via 10.8.0.1
    $IP link add vip0 type dummy; $IP addr add 10.10.10.10/32 dev vip0; $IP link set vip0 up
    echo 1 > /proc/sys/net/ipv4/ip_forward
}

# requests N: N HTTP requests from the client namespace; counts per backend in /tmp/hits.
requests() {
    : > /tmp/hits
    i=0
    while [ $i -lt $1 ]; do
        $IP netns exec cl timeout 5 busybox wget -q -O - http://10.10.10.10/ >> /tmp/hits 2>/dev/null
        i=$((i + 1))
    done
}

scenario_packets() {
    net_setup
    ec put /clusterf/services/http/frontend '{"ipv4":"10.10.10.10","tcp":80}'
    ec put /clusterf/services/http/backends/be1 '{"ipv4":"10.9.1.2","tcp":80,"weight":1}'
    ec put /clusterf/services/http/backends/be2 '{"ipv4":"10.9.2.2","tcp":80,"weight":3}'
    expect "packets: VIP with weights 1 and 3" \
        "TCP 10.10.10.10:80 wlc|-> 10.9.1.2:80 Masq 1 0 0|-> 10.9.2.2:80 Masq 3 0 0"
    requests 400
    n1=$(grep -c be1 /tmp/hits); n2=$(grep -c be2 /tmp/hits)
    echo "  400 requests: be1=$n1 be2=$n2"
    check "packets: all 400 requests answered" test $((n1 + n2)) -eq 400
    check "packets: split about 1:3 (be2 share 65..85 %)" test $((n2 * 100)) -ge $((65 * (n1 + n2))) -a $((n2 * 100)) -le $((85 * (n1 + n2)))
    ec put /clusterf/services/http/backends/be1 '{"ipv4":"10.9.1.2","tcp":80,"weight":0}'
    i=0
    while ! ipvsadm -L -n | grep -q '10.9.1.2:80 *Masq *0 '; do i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.2; done
    requests 60
    n1=$(grep -c be1 /tmp/hits); n2=$(grep -c be2 /tmp/hits)
    echo "  60 requests after draining be1: be1=$n1 be2=$n2"
    check "packets: after weight 0 no new request reaches the drained backend" test "$n1" -eq 0 -a "$n2" -eq 60
}

# Six pairs aN/bN claim one VIP (aN wins); aN moves away and bN takes the VIP over. With no
# periodic resync to hide a mistake, the VIP must stay (edited in place: never deleted).
scenario_handover() {
    stop_ipvs
    start_ipvs --resync-interval=0
    want_tab=
    for n in 1 2 3 4 5 6; do
        ec put /clusterf/services/a$n/frontend "{\"ipv4\":\"10.0.$n.1\",\"tcp\":80}"
        ec put /clusterf/services/a$n/backends/x "{\"ipv4\":\"10.1.$n.1\",\"tcp\":80}"
        ec put /clusterf/services/b$n/frontend "{\"ipv4\":\"10.0.$n.1\",\"tcp\":80}"
        ec put /clusterf/services/b$n/backends/y "{\"ipv4\":\"10.2.$n.1\",\"tcp\":80}"
        want_tab="$want_tab|TCP 10.0.$n.1:80 wlc|-> 10.1.$n.1:80 Masq 10 0 0"
    done
    expect "handover: six VIPs, each claimed by two services" "${want_tab#|}"
    marker=$(wc -l < $LOG)
    want_tab=
    for n in 1 2 3 4 5 6; do
        ec put /clusterf/services/a$n/frontend "{\"ipv4\":\"10.0.$n.2\",\"tcp\":80}"
        want_tab="$want_tab|TCP 10.0.$n.1:80 wlc|-> 10.2.$n.1:80 Masq 10 0 0|TCP 10.0.$n.2:80 wlc|-> 10.1.$n.1:80 Masq 10 0 0"
    done
    expect "handover: each loser took its VIP over, each winner moved" "${want_tab#|}"
    tail -n +$((marker + 1)) $LOG > /tmp/handover.log
    check "handover: no VIP was deleted on the way" \
        sh -c '! grep "op=delete-service" /tmp/handover.log'
    ec del --prefix /clusterf/services/
    expect "handover: cleaned up" ""
    stop_ipvs
    start_ipvs
}

# A state file of random bytes: clusterf-ipvs starts anyway, logs at error where the file
# went, owns what the config names (as on a first start) and writes a good file again.
scenario_damaged_state() {
    ec del --prefix /clusterf/
    ec put /clusterf/services/ds/frontend '{"ipv4":"10.70.0.1","tcp":80}'
    ec put /clusterf/services/ds/backends/a '{"ipv4":"10.71.0.1","tcp":8080}'
    expect "damaged state: before" "TCP 10.70.0.1:80 wlc|-> 10.71.0.1:8080 Masq 10 0 0"
    stop_ipvs
    head -c 4096 /dev/urandom > /tmp/noise
    cp /tmp/noise /run/clusterf/ipvs-owned
    rm -f /run/clusterf/ipvs-owned.corrupt
    ec put /clusterf/services/ds/backends/b '{"ipv4":"10.71.0.2","tcp":8080}'
    marker=$(wc -l < $LOG)
    start_ipvs
    expect "damaged state: clusterf-ipvs starts on random bytes and applies the table" \
        "TCP 10.70.0.1:80 wlc|-> 10.71.0.1:8080 Masq 10 0 0|-> 10.71.0.2:8080 Masq 10 0 0"
    check "damaged state: still running" kill -0 $IPVS_PID
    tail -n +$((marker + 1)) $LOG > /tmp/damaged.log
    check "damaged state: the set-aside is logged at error with the path and where it went" \
        grep -q 'level=error .*msg="damaged state file set aside" path=/run/clusterf/ipvs-owned .*moved to /run/clusterf/ipvs-owned.corrupt' /tmp/damaged.log
    check "damaged state: ipvs-owned.corrupt holds the damaged bytes" \
        cmp -s /tmp/noise /run/clusterf/ipvs-owned.corrupt
    wait_for "damaged state: a good state file is written again" 20 \
        grep -q '^inet tcp 10.70.0.1 80 0$' /run/clusterf/ipvs-owned
    ec del --prefix /clusterf/services/ds
    expect "damaged state: the service it owns again is removed with its config" ""
}

# Graceful removal with real TCP connections: a long-lived connection to b1 keeps flowing
# after b1's key is deleted (b1 at weight 0), new connections all go to b2, and b1 is deleted
# once its connection has closed; with --drain-timeout=2s it is deleted after 2 s although
# its connection lives. Servers on port 9000 echo each line after their backend's name; on
# "quit" they answer the name alone and close.
drain_setup() {
    net_setup
    for n in 1 2; do
        printf '#!/bin/sh\nwhile read l; do [ "$l" = quit ] && exec echo be%s; echo "be%s $l"; done\n' \
            $n $n > /tmp/echo$n.sh
        chmod +x /tmp/echo$n.sh
        $IP netns exec be$n busybox nc -ll -p 9000 -e /tmp/echo$n.sh &
    done
}

# A long-lived connection from the client through the VIP; what it receives is in /tmp/long.out.
long_open() {
    rm -f /tmp/long.in /tmp/long.out; mkfifo /tmp/long.in
    $IP netns exec cl busybox nc 10.10.10.10 9000 < /tmp/long.in > /tmp/long.out 2>&1 &
    LONG_PID=$!
    exec 3> /tmp/long.in
}
long_close() { exec 3>&-; kill $LONG_PID 2>/dev/null; wait $LONG_PID 2>/dev/null; }
# dest_line ADDR: the dest's line ("-> ADDR Masq WEIGHT ACTIVE INACTIVE"; the addresses of
# this scenario are in no other service). Not `ipvsadm -L -t VIP`: it leaves weight-0 dests out.
dest_line() { ipvsadm -L -n | grep -- "-> $1 " | tr -s ' '; }
dest_has() { dest_line "$1" | grep -q "$2"; }           # dest_has ADDR PATTERN
dest_is() { [ "$(dest_line "$1" | sed 's/ $//')" = "$2" ]; }   # dest_is ADDR LINE
dest_gone() { [ -z "$(dest_line "$1")" ]; }
sysctls_set() {
    grep -q 'msg="sysctl set" name=net.ipv4.vs.expire_nodest_conn value=1' $LOG &&
        [ "$(cat /proc/sys/net/ipv4/vs/expire_nodest_conn)" = 1 ] &&
        [ "$(cat /proc/sys/net/ipv4/vs/expire_quiescent_template)" = 1 ]
}
long_got() { grep -q "^$1$" /tmp/long.out; }              # long_got LINE

scenario_drain() {
    drain_setup
    ec del --prefix /clusterf/services/
    expect "drain: clean start" ""
    ec put /clusterf/services/long/frontend '{"ipv4":"10.10.10.10","tcp":9000}'
    ec put /clusterf/services/long/backends/b1 '{"ipv4":"10.9.1.2","tcp":9000}'
    expect "drain: VIP with b1" "TCP 10.10.10.10:9000 wlc|-> 10.9.1.2:9000 Masq 10 0 0"
    long_open
    echo ping1 >&3
    wait_for "drain: a long-lived connection through the VIP is echoed by be1" 20 long_got "be1 ping1"
    ec put /clusterf/services/long/backends/b2 '{"ipv4":"10.9.2.2","tcp":9000}'
    wait_for "drain: b2 added" 20 dest_has 10.9.2.2:9000 "Masq 10 "
    ec del /clusterf/services/long/backends/b1
    wait_for "drain: b1's key deleted -> b1 at weight 0, its connection still counted active" 20 \
        dest_is 10.9.1.2:9000 " -> 10.9.1.2:9000 Masq 0 1 0"
    echo ping2 >&3
    wait_for "drain: the long connection keeps flowing after the delete" 20 long_got "be1 ping2"
    : > /tmp/new.out
    for i in 1 2 3 4 5 6 7 8 9 10; do
        echo quit | $IP netns exec cl timeout 5 busybox nc 10.10.10.10 9000 >> /tmp/new.out 2>/dev/null
    done
    check "drain: 10 new connections all go to be2" \
        test "$(grep -c '^be2$' /tmp/new.out)" = 10 -a "$(grep -c '^be1$' /tmp/new.out)" = 0
    check "drain: b1 is still there while its connection lives" dest_has 10.9.1.2:9000 "Masq 0 "
    status
    check "drain: status exits 0 (a draining dest is not drift)" test $STATUS_RC = 0
    sees "drain: status shows b1 draining with its connection" \
        "^draining tcp 10.10.10.10:9000 10.9.1.2:9000 - masq w=0 active=1 inactive=0 long$"
    sees "drain: status summary counts it" "; 1 destination(s) draining;"
    long_close
    wait_for "drain: b1 deleted once its connection closed (well within --drain-timeout=30s)" 15 \
        dest_gone 10.9.1.2:9000
    check "drain: logged as draining" grep -q 'dests_draining=1' $LOG

    stop_ipvs
    start_ipvs --drain-timeout=2s --ipvs-sysctls
    wait_for "drain: --ipvs-sysctls sets and logs the IPVS sysctls" 20 sysctls_set
    ec put /clusterf/services/long/backends/b2 '{"ipv4":"10.9.2.2","tcp":9000,"weight":0}'
    ec put /clusterf/services/long/backends/b1 '{"ipv4":"10.9.1.2","tcp":9000}'
    wait_for "drain: b1 back" 20 dest_has 10.9.1.2:9000 "Masq 10 "
    wait_for "drain: b2 at weight 0" 20 dest_has 10.9.2.2:9000 "Masq 0 "
    long_open
    echo ping3 >&3
    wait_for "drain: a second long connection is echoed by be1" 20 long_got "be1 ping3"
    t0=$(date +%s)
    ec del /clusterf/services/long/backends/b1
    wait_for "drain: b1 at weight 0 with its live connection" 20 dest_has 10.9.1.2:9000 "Masq 0 "
    wait_for "drain: --drain-timeout=2s deletes b1 although its connection lives" 20 \
        dest_gone 10.9.1.2:9000
    check "drain: not before the 2 s timeout" test $(( $(date +%s) - t0 )) -ge 2
    check "drain: the connection was still open when b1 went" kill -0 $LONG_PID
    long_close
    ec del --prefix /clusterf/services/long
    expect "drain: cleaned up" ""
    stop_ipvs
    start_ipvs
}

# line_of MARKER REGEX: the number of the first line after MARKER matching REGEX (0: none).
line_of() { since "$1" | grep -n -m1 "$2" | cut -d: -f1 | grep . || echo 0; }
# soon_logged MARKER REGEX: wait (polling every 50 ms, at most 120 s) until $LOG has a line
# matching REGEX after MARKER, so that what follows lands while the daemon is at that step.
soon_logged() {
    i=0
    while ! logged_since "$1" "$2"; do
        i=$((i + 1)); [ $i -gt 2400 ] && return 1
        sleep 0.05
    done
}

# Issue #8, the begin of a full pass: with SLICES_SERVICES services in the kernel (made by
# hand: foreign, so the pass only reads them; 10000, or CLUSTERF_SLICES_SERVICES; 30000 with
# CLUSTERF_SOAK=1), the dump of the kernel's services is read in parts between events: an etcd
# change made once the pass has begun is applied (its error logged) before the pass ends, and a
# SIGTERM then ends the daemon before the pass does. (Before the dump was sliced, both waited
# behind the whole dump, and the small rest of the pass ended in the same loop turn.) No timed
# assertion: the order of the log lines.
scenario_slices() {
    n=${CLUSTERF_SLICES_SERVICES:-10000}
    [ "${CLUSTERF_SOAK:-0}" = 1 ] && n=${CLUSTERF_SLICES_SERVICES:-30000}
    awk -v n=$n 'BEGIN { for (i = 0; i < n; i++)
        printf "-A -t 10.%d.%d.%d:81 -s rr\n", 200 + int(i / 65536), int(i / 256) % 256, i % 256 }' > /tmp/slices.add
    sed 's/^-A \(-t [^ ]*\) .*/-D \1/' /tmp/slices.add > /tmp/slices.del
    stop_ipvs
    ec put /clusterf/services/web/frontend '{"ipv4":"10.107.107.107","tcp":80}'
    check "slices: $n foreign services made by hand" sh -c 'ipvsadm -R < /tmp/slices.add'
    marker=$(wc -l < $LOG)
    start_ipvs --resync-interval=0
    wait_for "slices: the first full pass ends" 300 logged_since $marker 'msg="reconciled" pass=full'
    check "slices: its dump of the kernel's services was read in parts (at least $((n / 128)))" \
        test "$(since $marker | grep -m1 'msg="reconciled" pass=full' | sed 's/.*dump_parts=\([0-9]*\).*/\1/')" -ge $((n / 128))
    echo "INFO slices: first pass over $n kernel services: $(since $marker | grep -m1 'msg="reconciled" pass=full' | grep -o 'duration_ms=.*dump_parts=[0-9]*')"
    check "slices: the foreign services are kept" test "$(ipvsadm -L -n | grep -c ':81 rr')" = $n
    # An etcd change during the dump: an invalid value, whose error is logged when it is applied.
    GW_URL=$EP
    marker=$(wc -l < $LOG)
    kill -HUP $IPVS_PID
    soon_logged $marker 'msg="full pass begun"'
    gw_put /clusterf/services/slices/frontend 'not json'
    wait_for "slices: the etcd change is applied" 120 logged_since $marker 'invalid config value.*slices'
    wait_for "slices: the SIGHUP pass ends" 300 logged_since $marker 'msg="reconciled" pass=full scope=sighup'
    ev=$(line_of $marker 'invalid config value.*slices') end=$(line_of $marker 'msg="reconciled" pass=full scope=sighup')
    echo "INFO slices: SIGHUP pass: $(since $marker | grep -m1 'msg="reconciled" pass=full' | grep -o 'duration_ms=.*dump_parts=[0-9]*')"
    check "slices: the etcd change was applied between parts of the dump, before the pass ended (lines $ev < $end)" \
        test "$ev" -lt "$end"
    # SIGTERM during the dump.
    marker=$(wc -l < $LOG)
    kill -HUP $IPVS_PID
    soon_logged $marker 'msg="full pass begun"'
    kill -TERM $IPVS_PID
    wait $IPVS_PID
    rc=$? IPVS_PID=
    check "slices: SIGTERM during the dump of a full pass: exit 0" test $rc = 0
    check "slices: ... before the pass ended" not_logged_since $marker 'msg="reconciled" pass=full'
    ipvsadm -R < /tmp/slices.del
    ec del /clusterf/services/slices/frontend
    check "slices: the foreign services removed" test "$(ipvsadm -L -n | grep -c ':81 rr')" = 0
    start_ipvs
}

start_etcd || { echo "guest_clusterf_ipvs: 0 passed, 1 failed, 0 skipped"; exit 1; }
start_ipvs
for s in seed routes families foreign_drift_invalid restart sighup etcd_restart local_tree status status_compacted \
         advertise packets damaged_state handover drain slices; do
    want "$s" || continue
    echo "== $s"
    case $s in
        seed) scenario_seed;; routes) scenario_routes;; families) scenario_families;;
        foreign_drift_invalid) scenario_foreign_drift_invalid;; restart) scenario_restart;;
        sighup) scenario_sighup;;
        etcd_restart) scenario_etcd_restart;; local_tree) scenario_local_tree;; status) scenario_status;;
        status_compacted) scenario_status_compacted;;
        advertise) scenario_advertise;; packets) scenario_packets;;
        damaged_state) scenario_damaged_state;; handover) scenario_handover;; drain) scenario_drain;;
        slices) scenario_slices;;
    esac
done
stop_ipvs
if [ $FAIL -gt 0 ]; then echo "--- clusterf-ipvs log (tail)"; tail -n 40 $LOG; fi
grep -q 'AddressSanitizer\|runtime error' $LOG && { bad "sanitizers reported errors"; grep -A5 'AddressSanitizer\|runtime error' $LOG | head -40; }
echo "guest_clusterf_ipvs: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
