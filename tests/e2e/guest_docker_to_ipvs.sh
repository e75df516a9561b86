#!/bin/sh
# guest_docker_to_ipvs.sh -- the VM half of tests/e2e/test_docker_to_ipvs.sh: clusterf-ipvs in
# the guest follows the host's etcd (10.0.2.2:PORT); a container on the host must appear as a
# destination under its VIP's service, and leave when it stops; clusterf-ipvs exits 0 on
# SIGTERM. Args: ETCD_PORT CONTAINER_IPV4 VIP:PORT.
PORT=$1 CIP=$2 VIP=$3
EP=http://10.0.2.2:$PORT
PASS=0 FAIL=0
export ETCDCTL_API=3
clusterf-ipvs --etcd-endpoints=$EP --state-dir=/run/clusterf > /tmp/ipvs.log 2>&1 &
IPVS_PID=$!
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; ipvsadm -L -n; tail -n 20 /tmp/ipvs.log; }
# dest_under_vip: the container's dest (masq, weight 10) is listed under the VIP's service.
dest_under_vip() {
    ipvsadm -L -n | awk -v vip="$VIP" -v dst="$CIP:8080" '
        /^(TCP|UDP|FWM)/ { svc = $2 }
        /^  ->/ && svc == vip && $2 == dst && $3 == "Masq" && $4 == 10 { found = 1 }
        END { exit !found }'
}
# dest_nowhere: the container's address is in no dest line, and the VIP's service is there.
dest_nowhere() {
    ipvsadm -L -n | awk -v vip="$VIP" -v dst="$CIP:8080" '
        $1 == "TCP" && $2 == vip { svc = 1 }
        $1 == "->" && $2 == dst { dest = 1 }
        END { exit !(svc && !dest) }' 
}
# wait_for NAME CMD: wait up to 60 s for CMD to succeed.
wait_for() {
    name=$1; shift
    i=0
    while ! "$@"; do
        i=$((i + 1))
        [ $i -gt 300 ] && { bad "$name"; return 1; }
        sleep 0.2
    done
    ok "$name"
}
wait_for "the container on the host is a destination under $VIP in the VM's kernel table" \
    dest_under_vip &&
    etcdctl --endpoints=$EP put /e2e/stop-container 1 > /dev/null
wait_for "the destination leaves when the container stops (the service stays)" dest_nowhere
ipvsadm -L -n
kill -TERM $IPVS_PID; wait $IPVS_PID; rc=$?
if [ $rc = 0 ]; then ok "clusterf-ipvs exits 0 on SIGTERM"; else bad "clusterf-ipvs exits 0 on SIGTERM (exit $rc)"; fi
echo "guest_docker_to_ipvs: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
