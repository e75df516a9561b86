#!/bin/sh
# guest_metrics.sh -- inside the scripts/vm-run guest: clusterf-ipvs with --metrics-listen on
# a real etcd and the real kernel IPVS; HTTP requests from a client namespace through a masq
# VIP to two backend namespaces; then /metrics (read with busybox wget) must show the same
# connection, packet and byte counters as `ipvsadm -L -n --stats --exact`, per service and
# per destination, and /readyz must answer 200.
# Run by tests/vm/test_metrics_vm.sh; prints "guest_metrics: N passed, N failed, 0 skipped".
set -u
PASS=0 FAIL=0
IP=/bin/ip
EP=http://127.0.0.1:2379
M=http://127.0.0.1:9101
export ETCDCTL_API=3

. /vm/guest_lib.sh   # ok, bad, wait_for (tests/vm/guest_lib.sh; it keeps M as set above)
ec() { etcdctl --endpoints=$EP "$@" > /dev/null; }
finish() { echo "guest_metrics: $PASS passed, $FAIL failed, 0 skipped"; [ $FAIL = 0 ]; exit $?; }

start_etcd() {
    etcd --data-dir /tmp/etcd --listen-client-urls $EP --advertise-client-urls $EP \
         --listen-peer-urls http://127.0.0.1:2380 > /tmp/etcd.log 2>&1 &
    i=0
    while ! etcdctl --endpoints=$EP endpoint health > /dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 150 ] && { echo "etcd did not start"; cat /tmp/etcd.log; return 1; }
        sleep 0.2
    done
}

# Two backends (be1, be2) in namespaces behind the VIP 10.10.10.10 on a dummy device; the
# client in a third namespace.
net_setup() {
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

metrics() { busybox wget -q -O - $M/metrics 2>/dev/null; }
# series NAME{LABELS}: its value in /metrics (empty when absent).
series() { metrics | awk -v s="$1 " 'index($0, s) == 1 { print $2 }'; }
# kernel_stats FIRST SECOND: "conns inpkts outpkts inbytes outbytes" of the ipvsadm line.
kernel_stats() { ipvsadm -L -n --stats --exact | awk -v a="$1" -v b="$2" '$1 == a && $2 == b { print $3, $4, $5, $6, $7 }'; }

SVC='service="http",protocol="tcp",vip="10.10.10.10:80"'
# metric_stats FAMILY LABELS: the same five numbers from /metrics.
metric_stats() {
    echo "$(series "clusterf_ipvs_$1_connections_total{$2}")" \
         "$(series "clusterf_ipvs_$1_packets_total{$2,direction=\"in\"}")" \
         "$(series "clusterf_ipvs_$1_packets_total{$2,direction=\"out\"}")" \
         "$(series "clusterf_ipvs_$1_bytes_total{$2,direction=\"in\"}")" \
         "$(series "clusterf_ipvs_$1_bytes_total{$2,direction=\"out\"}")"
}
service_matches() {
    k=$(kernel_stats TCP 10.10.10.10:80); m=$(metric_stats service "$SVC")
    [ -n "$k" ] && [ "$k" = "$m" ]
}
dest_matches() {
    k=$(kernel_stats '->' "$1"); m=$(metric_stats destination "$SVC,destination=\"$1\"")
    [ -n "$k" ] && [ "$k" = "$m" ]
}
readyz() { busybox wget -q -O - $M/readyz 2>/dev/null | grep -q '^ready$'; }

start_etcd || finish
net_setup
clusterf-ipvs --etcd-endpoints=$EP --state-dir=/run/clusterf --metrics-listen=:9101 \
    --metrics-kernel-interval=1s > /tmp/ipvs.log 2>&1 &
IPVS_PID=$!
ec put /clusterf/services/http/frontend '{"ipv4":"10.10.10.10","tcp":80}'
ec put /clusterf/services/http/backends/be1 '{"ipv4":"10.9.1.2","tcp":80,"weight":1}'
ec put /clusterf/services/http/backends/be2 '{"ipv4":"10.9.2.2","tcp":80,"weight":1}'
wait_for "the VIP and its two dests are in the kernel" 30 \
    sh -c "ipvsadm -L -n | grep -q '10.9.2.2:80'"
wait_for "/readyz answers ready" 60 readyz
i=0
: > /tmp/hits
while [ $i -lt 40 ]; do
    $IP netns exec cl timeout 5 busybox wget -q -O - http://10.10.10.10/ >> /tmp/hits 2>/dev/null
    i=$((i + 1))
done
echo "  40 requests: be1=$(grep -c be1 /tmp/hits) be2=$(grep -c be2 /tmp/hits)"
if [ "$(wc -l < /tmp/hits)" -eq 40 ]; then ok "all 40 requests answered"; else bad "all 40 requests answered"; fi
# The kernel folds its per-CPU counters into what it dumps every 2 s (its estimator): wait
# until the dump counts the 40 connections before comparing.
kernel_conns() { ipvsadm -L -n --stats --exact | awk '$1 == "TCP" && $2 == "10.10.10.10:80" { print $3 }'; }
kernel_counted_40() { [ "$(kernel_conns)" -ge 40 ] 2>/dev/null; }
wait_for "the kernel counts the 40 connections" 30 kernel_counted_40
ipvsadm -L -n --stats --exact | sed 's/^/    /'
wait_for "service counters in /metrics equal ipvsadm --stats" 30 service_matches
wait_for "be1's counters in /metrics equal ipvsadm --stats" 30 dest_matches 10.9.1.2:80
wait_for "be2's counters in /metrics equal ipvsadm --stats" 30 dest_matches 10.9.2.2:80
echo "  metrics: $(metric_stats service "$SVC")"
metrics_counted_40() { [ "$(series "clusterf_ipvs_service_connections_total{$SVC}")" -ge 40 ] 2>/dev/null; }
wait_for "the service's connections in /metrics reach 40" 30 metrics_counted_40
if [ "$(series clusterf_services_managed)" = 1 ] && [ "$(series clusterf_destinations_managed)" = 2 ]; then
    ok "1 service and 2 destinations managed"
else
    bad "1 service and 2 destinations managed"; metrics | grep managed
fi
kill $IPVS_PID; wait $IPVS_PID
[ $FAIL = 0 ] || tail -n 20 /tmp/ipvs.log
finish
