#!/bin/sh
# guest_docker_to_ipvs.sh -- the VM half of tests/e2e/test_docker_to_ipvs.sh: clusterf-ipvs in
# the guest follows the host's etcd (10.0.2.2:PORT); a container on the host must appear as a
# destination, and leave when it stops. Args: ETCD_PORT CONTAINER_IPV4.
PORT=$1 CIP=$2
EP=http://10.0.2.2:$PORT
PASS=0 FAIL=0
export ETCDCTL_API=3
clusterf-ipvs --etcd-endpoints=$EP --state-dir=/run/clusterf > /tmp/ipvs.log 2>&1 &
# wait_dest NAME PRESENT(1|0): wait up to 60 s for the container's dest to be (not) there.
wait_dest() {
    i=0
    while :; do
        if ipvsadm -L -n | grep -q "^  -> $CIP:8080 *Masq *10 "; then have=1; else have=0; fi
        [ $have = $2 ] && { PASS=$((PASS + 1)); echo "ok   $1"; return 0; }
        i=$((i + 1))
        [ $i -gt 300 ] && break
        sleep 0.2
    done
    FAIL=$((FAIL + 1)); echo "FAIL $1"; ipvsadm -L -n; tail -n 20 /tmp/ipvs.log
    return 1
}
wait_dest "the container on the host is a destination in the VM's kernel table" 1 &&
    etcdctl --endpoints=$EP put /e2e/stop-container 1 > /dev/null
wait_dest "the destination leaves when the container stops" 0
ipvsadm -L -n
echo "guest_docker_to_ipvs: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
