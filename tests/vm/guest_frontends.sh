#!/bin/sh
# guest_frontends.sh -- several frontends agree: three network namespaces f1..f3, each with its
# own kernel IPVS table and its own clusterf-ipvs (own --state-dir), fed by a 3-member etcd
# (member N listens on 10.99.N.254, the root side of f<N>'s link; each daemon lists all three,
# its own member first). Checks: real packets through the VIP of each frontend reach the
# backends, a connection through each frontend survives its backend's removal (graceful
# removal), and after each of a series of random config changes (services, backends, weights,
# routes, deletes) all three tables equal the table the change implies -- with one daemon
# killed -9 and restarted, and one etcd member killed and restarted, during the churn. Prints
# the spread (put returned -> last frontend showing the change, p50/p99) as a measurement.
# Run by tests/vm/test_frontends.sh; prints "guest_frontends: N passed, N failed, 0 skipped".
# Environment: CLUSTERF_FRONTENDS_CHANGES (random changes, default 200),
# CLUSTERF_FRONTENDS_SEED (their seed, default 12). Argument: a substring; only scenarios
# whose name contains it run.
set -u
FILTER=${1:-}
CHANGES=${CLUSTERF_FRONTENDS_CHANGES:-200}
SEED=${CLUSTERF_FRONTENDS_SEED:-12}
PASS=0 FAIL=0
IP=/bin/ip
FRONTENDS="1 2 3"
EP_ALL=http://10.99.1.254:2379,http://10.99.2.254:2379,http://10.99.3.254:2379
WRITE_EP=$EP_ALL        # the writer's endpoints (without a member that is down)
export ETCDCTL_API=3

. /vm/guest_lib.sh   # ok, bad, check, wait_for, now_cs, the churn writer (tests/vm/guest_lib.sh)
want() { [ -z "$FILTER" ] || case "$1" in *"$FILTER"*) return 0;; *) return 1;; esac; }
ec() { etcdctl --endpoints=$WRITE_EP --command-timeout=30s "$@" > /dev/null; }

# --- network: root routes between fN (10.99.N.0/24), the backends (10.9.M.0/24) and, through
# fN, fN's client namespace cN (10.8.N.0/24). The VIP 10.10.10.10 is on a dummy in every fN.
net_setup() {
    echo 1 > /proc/sys/net/ipv4/ip_forward
    for n in $FRONTENDS; do
        $IP netns add f$n; $IP netns add c$n
        $IP link add vf$n type veth peer name vfp$n; $IP link set vfp$n netns f$n
        $IP addr add 10.99.$n.254/24 dev vf$n; $IP link set vf$n up
        $IP -n f$n addr add 10.99.$n.1/24 dev vfp$n; $IP -n f$n link set vfp$n up
        $IP -n f$n link set lo up; $IP -n f$n route add default via 10.99.$n.254
        $IP -n f$n link add vip0 type dummy; $IP -n f$n addr add 10.10.10.10/32 dev vip0
        $IP -n f$n link set vip0 up
        $IP netns exec f$n sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
        $IP link add vc$n type veth peer name vcp$n
        $IP link set vc$n netns f$n; $IP link set vcp$n netns c$n
        $IP -n f$n addr add 10.8.$n.1/24 dev vc$n; $IP -n f$n link set vc$n up
        $IP -n c$n addr add 10.8.$n.2/24 dev vcp$n; $IP -n c$n link set vcp$n up
        $IP -n c$n link set lo up; $IP -n c$n route add default via 10.8.$n.1
        $IP route add 10.8.$n.0/24 via 10.99.$n.1
    done
    for m in 1 2; do
        $IP netns add be$m
        $IP link add vb$m type veth peer name vbp$m; $IP link set vbp$m netns be$m
        $IP addr add 10.9.$m.1/24 dev vb$m; $IP link set vb$m up
        $IP -n be$m addr add 10.9.$m.2/24 dev vbp$m; $IP -n be$m link set vbp$m up
        $IP -n be$m link set lo up; $IP -n be$m route add default via 10.9.$m.1
        mkdir -p /tmp/www$m; echo "be$m" > /tmp/www$m/index.html
        $IP netns exec be$m busybox httpd -p 80 -h /tmp/www$m
        # port 9000 echoes each line after the backend's name; "quit": the name alone, close
        printf '#!/bin/sh\nwhile read l; do [ "$l" = quit ] && exec echo be%s; echo "be%s $l"; done\n' \
            $m $m > /tmp/echo$m.sh
        chmod +x /tmp/echo$m.sh
        $IP netns exec be$m busybox nc -ll -p 9000 -e /tmp/echo$m.sh &
    done
}

# --- etcd: member N (mN) serves clients on 10.99.N.254:2379, peers on 127.0.0.1:238N. Long
# heartbeat and election times: six Go/C processes share one emulated CPU.
ETCD_CLUSTER=m1=http://127.0.0.1:2381,m2=http://127.0.0.1:2382,m3=http://127.0.0.1:2383
start_member() {
    n=$1
    etcd --name m$n --data-dir /tmp/etcd$n \
        --listen-client-urls http://10.99.$n.254:2379 --advertise-client-urls http://10.99.$n.254:2379 \
        --listen-peer-urls http://127.0.0.1:238$n --initial-advertise-peer-urls http://127.0.0.1:238$n \
        --initial-cluster $ETCD_CLUSTER --initial-cluster-state new --initial-cluster-token fe \
        --heartbeat-interval=250 --election-timeout=5000 >> /tmp/etcd$n.log 2>&1 &
    eval ETCD_PID_$n=$!
}
member_healthy() { etcdctl --endpoints=http://10.99.$1.254:2379 endpoint health > /dev/null 2>&1; }
cluster_healthy() { for n in $FRONTENDS; do member_healthy $n || return 1; done; }
etcd_pid() { eval echo \$ETCD_PID_$1; }

# --- clusterf-ipvs in fN: its own member first, its own state dir, its own log. No periodic
# resync: every change must arrive through the watch (a resync would hide a lost event);
# --drain-timeout=300s: the drain scenario's connections outlive its slow steps.
endpoints_for() {
    eps=http://10.99.$1.254:2379
    for m in $FRONTENDS; do [ $m = $1 ] || eps=$eps,http://10.99.$m.254:2379; done
    echo $eps
}
start_ipvs() {
    n=$1 log=/tmp/ipvs$n.log
    echo "--- start clusterf-ipvs in f$n" >> $log
    mark=$(wc -l < $log)
    $IP netns exec f$n clusterf-ipvs --etcd-endpoints=$(endpoints_for $n) --resync-interval=0 \
        --state-dir=/run/clusterf-f$n --log-level=info --drain-timeout=300s >> $log 2>&1 &
    eval IPVS_PID_$n=$!
    i=0
    while ! tail -n +$((mark + 1)) $log | grep -q 'msg="clusterf-ipvs started"\|level=error'; do
        i=$((i + 1)); [ $i -gt 150 ] && break
        sleep 0.2
    done
}
ipvs_pid() { eval echo \$IPVS_PID_$1; }
stop_ipvs() {
    pid=$(ipvs_pid $1); [ -n "$pid" ] || return 0
    kill -${2:-TERM} $pid 2>/dev/null; wait $pid 2>/dev/null
    eval IPVS_PID_$1=
}

# table N: fN's kernel table as `ipvsadm -S -n` rules, sorted.
table() { $IP netns exec f$1 ipvsadm -S -n | sort; }
# tables_agree: the three tables are byte for byte the same.
tables_agree() { [ "$(table 1)" = "$(table 2)" ] && [ "$(table 2)" = "$(table 3)" ]; }

# --- packets: from each client namespace cN through fN's VIP to the backends.
# requests N COUNT: COUNT HTTP requests from cN to the VIP; the answers (backend names) in /tmp/hits.
requests() {
    : > /tmp/hits
    i=0
    while [ $i -lt $2 ]; do
        $IP netns exec c$1 timeout 5 busybox wget -q -O - http://10.10.10.10/ >> /tmp/hits 2>/dev/null
        i=$((i + 1))
    done
}
dest_line() { $IP netns exec f$1 ipvsadm -L -n | grep -- "-> $2 " | tr -s ' ' | sed 's/ $//'; }
dest_is_everywhere() {   # dest_is_everywhere ADDR LINE: that dest line in all three tables
    for n in $FRONTENDS; do [ "$(dest_line $n "$1")" = "$2" ] || return 1; done
}
dest_gone_everywhere() { for n in $FRONTENDS; do [ -z "$(dest_line $n "$1")" ] || return 1; done; }
svc_everywhere() {       # svc_everywhere PATTERN: a line matching it in all three tables
    for n in $FRONTENDS; do table $n | grep -q -- "$1" || return 1; done
}

scenario_packets() {
    ec put /clusterf/services/http/frontend '{"ipv4":"10.10.10.10","tcp":80}'
    ec put /clusterf/services/http/backends/be1 '{"ipv4":"10.9.1.2","tcp":80}'
    ec put /clusterf/services/http/backends/be2 '{"ipv4":"10.9.2.2","tcp":80}'
    wait_for "packets: the VIP with both backends on all three frontends" 60 \
        svc_everywhere "-a -t 10.10.10.10:80 -r 10.9.2.2:80 -m -w 10"
    check "packets: ... with the same tables" tables_agree
    for n in $FRONTENDS; do
        requests $n 10
        n1=$(grep -c '^be1$' /tmp/hits); n2=$(grep -c '^be2$' /tmp/hits)
        echo "  f$n: 10 requests from c$n: be1=$n1 be2=$n2"
        check "packets: through f$n all 10 requests are answered, by both backends" \
            test $((n1 + n2)) = 10 -a $n1 -gt 0 -a $n2 -gt 0
    done
    ec del --prefix /clusterf/services/http
    wait_for "packets: cleaned up on all three" 60 sh -c \
        "for n in $FRONTENDS; do [ -z \"\$($IP netns exec f\$n ipvsadm -S -n)\" ] || exit 1; done"
}

# A long-lived connection from cN through fN's VIP; what it receives is in /tmp/longN.out.
long_open() {
    rm -f /tmp/long$1.in /tmp/long$1.out; mkfifo /tmp/long$1.in
    $IP netns exec c$1 busybox nc 10.10.10.10 9000 < /tmp/long$1.in > /tmp/long$1.out 2>&1 &
    eval LONG_PID_$1=$!
    eval "exec $((3 + $1))> /tmp/long$1.in"
}
long_send() { eval "echo \"\$2\" >&$((3 + $1))"; }   # long_send N LINE (fds 4..6)
long_close() { eval "exec $((3 + $1))>&-"; pid=$(eval echo \$LONG_PID_$1); kill $pid 2>/dev/null; wait $pid 2>/dev/null; }
long_got() { grep -q "^$2$" /tmp/long$1.out; }
all_long_got() { for n in $FRONTENDS; do long_got $n "$1 $n" || return 1; done; }   # "be1 pingX N"

scenario_drain() {
    ec put /clusterf/services/long/frontend '{"ipv4":"10.10.10.10","tcp":9000}'
    ec put /clusterf/services/long/backends/b1 '{"ipv4":"10.9.1.2","tcp":9000}'
    wait_for "drain: VIP 10.10.10.10:9000 with b1 on all three" 60 \
        dest_is_everywhere 10.9.1.2:9000 " -> 10.9.1.2:9000 Masq 10 0 0"
    for n in $FRONTENDS; do long_open $n; long_send $n "ping1 $n"; done
    wait_for "drain: a long-lived connection through each frontend is echoed by be1" 30 all_long_got "be1 ping1"
    ec put /clusterf/services/long/backends/b2 '{"ipv4":"10.9.2.2","tcp":9000}'
    wait_for "drain: b2 added on all three" 60 dest_is_everywhere 10.9.2.2:9000 " -> 10.9.2.2:9000 Masq 10 0 0"
    ec del /clusterf/services/long/backends/b1
    wait_for "drain: b1's key deleted -> on each frontend b1 at weight 0 with its one connection" 60 \
        dest_is_everywhere 10.9.1.2:9000 " -> 10.9.1.2:9000 Masq 0 1 0"
    for n in $FRONTENDS; do long_send $n "ping2 $n"; done
    wait_for "drain: each long connection keeps flowing after the delete" 30 all_long_got "be1 ping2"
    for n in $FRONTENDS; do
        : > /tmp/new.out
        for i in 1 2 3; do
            echo quit | $IP netns exec c$n timeout 5 busybox nc 10.10.10.10 9000 >> /tmp/new.out 2>/dev/null
        done
        check "drain: through f$n 3 new connections all go to be2" \
            test "$(grep -c '^be2$' /tmp/new.out)" = 3 -a "$(grep -c '^be1$' /tmp/new.out)" = 0
    done
    check "drain: b1 still there on all three while its connections live" \
        dest_is_everywhere 10.9.1.2:9000 " -> 10.9.1.2:9000 Masq 0 1 0"
    for n in $FRONTENDS; do long_close $n; done
    wait_for "drain: b1 deleted on all three once its connections closed" 60 dest_gone_everywhere 10.9.1.2:9000
    ec del --prefix /clusterf/services/long
    wait_for "drain: cleaned up on all three" 60 sh -c \
        "for n in $FRONTENDS; do [ -z \"\$($IP netns exec f\$n ipvsadm -S -n)\" ] || exit 1; done"
}

# --- churn: random changes (random_change of guest_lib.sh: services s1..s4, backends, weights,
# schedulers, two routes), written to the members in turn (never to one that is down).

# converge "N..." CAP: wait up to CAP seconds for each listed frontend's table to equal
# $want_tab; sets LAST_CS to the centiseconds from $T0 until the last one did; 1 on timeout.
converge() {
    pending=$1 limit=$(( $(now_cs) + $2 * 100 ))
    LAST_CS=0
    while [ -n "$pending" ]; do
        left=
        for n in $pending; do
            if [ "$(table $n)" = "$want_tab" ]; then LAST_CS=$(( $(now_cs) - T0 )); else left="$left $n"; fi
        done
        pending=${left# }
        [ -z "$pending" ] && return 0
        [ $(now_cs) -gt $limit ] && { STUCK=$pending; return 1; }
        sleep 0.25   # the poll shares the one emulated CPU with the daemons and etcd
    done
}

scenario_churn() {
    ec del --prefix /clusterf/
    : > $M
    echo "  $CHANGES random changes, seed $SEED"
    : > /tmp/spread
    kill_at=$((CHANGES * 3 / 10)) restart_at=$((CHANGES * 4 / 10))
    member_down_at=$((CHANGES * 6 / 10)) member_up_at=$((CHANGES * 8 / 10))
    live="1 2 3" stuck=0 c=1 m3_down=0 want_tab= t_start=$(now_cs)
    while [ $c -le $CHANGES ]; do
        if [ $c = $kill_at ]; then
            echo "  change $c: kill -9 clusterf-ipvs in f2 (churn goes on; f1, f3 checked)"
            stop_ipvs 2 KILL; live="1 3"
        fi
        if [ $c = $restart_at ]; then
            echo "  change $c: restart clusterf-ipvs in f2"
            start_ipvs 2; live="1 2 3"
        fi
        if [ $c = $member_down_at ]; then
            echo "  change $c: kill -9 etcd member m3 (f3's own, first endpoint)"
            kill -9 $(etcd_pid 3); wait $(etcd_pid 3) 2>/dev/null
            WRITE_EP=http://10.99.1.254:2379,http://10.99.2.254:2379 m3_down=1
        fi
        if [ $c = $member_up_at ]; then
            echo "  change $c: restart etcd member m3"
            start_member 3
            WRITE_EP=$EP_ALL m3_down=0
        fi
        WRITER=$((c % 3 + 1)); [ $WRITER = 3 ] && [ $m3_down = 1 ] && WRITER=1
        GW_URL=http://10.99.$WRITER.254:2379
        before=$want_tab
        random_change
        T0=$(now_cs)
        want_tab=$(expected_table)
        if converge "$live" 60; then
            # a sample: the changes that changed the table, while all three daemons run
            [ "$want_tab" != "$before" ] && [ "$live" = "1 2 3" ] && echo $LAST_CS >> /tmp/spread
        else
            stuck=$((stuck + 1))
            bad "churn: change $c ($WHAT): frontend(s) $STUCK not at the expected table within 60 s"
            echo "  want:"; echo "$want_tab" | sed 's/^/    /'
            for n in $STUCK; do echo "  f$n has:"; table $n | sed 's/^/    /'; done
            [ $stuck -ge 3 ] && { echo "  churn stopped after 3 failures"; break; }
        fi
        [ $((c % 25)) = 0 ] && echo "  change $c: $(echo "$want_tab" | grep -c .) rules, $(cs_to_s $(( $(now_cs) - t_start ))) s"
        c=$((c + 1))
    done
    echo "  churn: $((c - 1)) changes in $(cs_to_s $(( $(now_cs) - t_start ))) s"
    [ $stuck = 0 ] && ok "churn: after each of $CHANGES random changes every running frontend's table equals the expected one"
    check "churn: clusterf-ipvs in f2 restarted after kill -9 and running" kill -0 "$(ipvs_pid 2)"
    wait_for "churn: etcd member m3 healthy again after its restart" 60 member_healthy 3
    T0=$(now_cs); want_tab=$(expected_table)
    if converge "1 2 3" 60; then ok "churn: in the end all three tables equal the expected table"
    else bad "churn: in the end frontend(s) $STUCK differ from the expected table"; fi
    check "churn: ... and each other (ipvsadm -S -n, sorted)" tables_agree
    echo "  final table: $(echo "$want_tab" | grep -c '^-A') services, $(echo "$want_tab" | grep -c '^-a') destinations"
    for n in $FRONTENDS; do
        check "churn: f$n's daemon logged no error" sh -c "! grep -q 'level=error' /tmp/ipvs$n.log"
    done
    if [ -s /tmp/spread ]; then
        echo "MEASURE frontends spread (the write to etcd returned -> the last of 3 frontends shows it, \
$(wc -l < /tmp/spread) table-changing changes): p50 $(cs_to_s $(percentile 50 /tmp/spread)) s, \
p99 $(cs_to_s $(percentile 99 /tmp/spread)) s, max $(cs_to_s $(percentile 100 /tmp/spread)) s"
    fi
}

net_setup
for n in $FRONTENDS; do start_member $n; done
i=0
while ! cluster_healthy; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then
        echo "etcd cluster did not become healthy"; tail -n 20 /tmp/etcd*.log
        echo "guest_frontends: $PASS passed, 1 failed, 0 skipped"; exit 1
    fi
    sleep 0.2
done
ok "etcd: three members healthy"
echo "  (VM uptime $(cs_to_s $(now_cs)) s)"
for n in $FRONTENDS; do start_ipvs $n; done
for n in $FRONTENDS; do check "start: clusterf-ipvs in f$n started" kill -0 "$(ipvs_pid $n)"; done
for scen in packets drain churn; do
    want "$scen" || continue
    echo "== $scen"
    case $scen in packets) scenario_packets;; drain) scenario_drain;; churn) scenario_churn;; esac
    echo "  (VM uptime $(cs_to_s $(now_cs)) s after $scen)"
done
for n in $FRONTENDS; do
    stop_ipvs $n
    grep -q 'AddressSanitizer\|runtime error' /tmp/ipvs$n.log && bad "f$n: sanitizers reported errors"
done
if [ $FAIL -gt 0 ]; then
    for n in $FRONTENDS; do echo "--- f$n clusterf-ipvs log (tail)"; tail -n 20 /tmp/ipvs$n.log; done
fi
echo "guest_frontends: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
