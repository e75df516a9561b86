#!/bin/sh
# guest_image.sh -- the VM half of tests/docker/test_image.sh: the image's root file system (taken
# from the image with `docker export`, at /image) is entered with chroot, so clusterf-ipvs and
# ipvsadm run with only the image's files, against the guest's real kernel IPVS. clusterf-ipvs
# follows the host's etcd (10.0.2.2:PORT), which holds the service web (10.107.107.107:8080) with
# the backend 10.1.0.1:8080; the table must appear, and a second backend must join it.
# Args: ETCD_PORT.
PORT=$1
EP=http://10.0.2.2:$PORT
PASS=0 FAIL=0
export ETCDCTL_API=3
ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
mkdir -p /image/proc /image/run/clusterf
mount -t proc proc /image/proc
IMG="chroot /image"
# Root with the capabilities the guest's root has; the image's user is for the container runtime.
$IMG clusterf-ipvs --etcd-endpoints=$EP --state-dir=/run/clusterf > /tmp/ipvs.log 2>&1 &
pid=$!
# wait_line PATTERN: up to 60 s for the image's ipvsadm -Ln to print a matching line.
wait_line() {
    i=0
    while [ $i -le 300 ]; do
        $IMG ipvsadm -L -n 2>/dev/null | grep -qE "$1" && return 0
        i=$((i + 1)); sleep 0.2
    done
    return 1
}
if wait_line '^TCP +10\.107\.107\.107:8080 wlc' && wait_line '^  -> 10\.1\.0\.1:8080 +Masq +10 '; then
    ok "clusterf-ipvs from the image applied web (10.107.107.107:8080 -> 10.1.0.1:8080)"
else
    bad "clusterf-ipvs from the image applied web"
fi
etcdctl --endpoints=$EP put /clusterf/services/web/backends/b2 '{"ipv4": "10.1.0.2", "tcp": 8080}' > /dev/null
if wait_line '^  -> 10\.1\.0\.2:8080 +Masq +10 '; then
    ok "a backend put in etcd joins the kernel table"
else
    bad "a backend put in etcd joins the kernel table"
fi
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
[ $FAIL = 0 ] || tail -n 20 /tmp/ipvs.log
$IMG ipvsadm -L -n
echo "guest_image: $PASS passed, $FAIL failed, 0 skipped"
[ $FAIL = 0 ]
