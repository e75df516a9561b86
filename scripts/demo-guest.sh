#!/bin/sh
# demo-guest.sh -- runs inside the scripts/vm-run VM for `make demo`: etcd + clusterf-ipvs,
# then the seed README's example step by step, each etcdctl command followed by ipvsadm -L -n.
EP=http://127.0.0.1:2379
export ETCDCTL_API=3
etcd --data-dir /tmp/etcd --listen-client-urls $EP --advertise-client-urls $EP \
     --listen-peer-urls http://127.0.0.1:2380 > /tmp/etcd.log 2>&1 &
i=0
until etcdctl --endpoints=$EP endpoint health > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 150 ] && { echo "etcd did not start"; exit 1; }; sleep 0.2
done
clusterf-ipvs --etcd-endpoints=$EP > /tmp/clusterf-ipvs.log 2>&1 &
sleep 1

show() {  # show: wait for clusterf-ipvs to settle, then list the table like the README
    sleep 0.5
    echo "\$ sudo ipvsadm -L -n"
    ipvsadm -L -n
    echo
}
run() {  # run ARGS...: print and run one etcdctl command
    echo "\$ etcdctl $*"
    etcdctl --endpoints=$EP "$@"
}

show
run put /clusterf/services/test/frontend '{"ipv4": "10.107.107.107", "tcp": 1337}'; show
run put /clusterf/services/test/backends/test3-1 '{"ipv4": "10.3.107.1", "tcp": 1337}'; show
run put /clusterf/services/test/backends/test3-2 '{"ipv4": "10.3.107.2", "tcp": 1337}'; show
run put /clusterf/services/test/backends/test3-2 '{"ipv4": "10.3.107.2", "tcp": 1338}'; show
run put /clusterf/routes/test3 '{"Prefix4":"10.3.107.0/24","IpvsMethod":"droute"}'; show
run del --prefix /clusterf/services/test; show
echo "--- what clusterf-ipvs logged"
cat /tmp/clusterf-ipvs.log
