#!/usr/bin/env bash
# test_image.sh -- the clusterf image run for real, in a private dockerd (scripts/test-dockerd):
# `make image` builds it (build/image/clusterf.tar, rebuilt only when an input changed); every
# program in it starts with only the image's files; it runs as its unprivileged user;
# clusterf-docker from the image (docker socket mounted, --network host) publishes a labelled
# container to a real etcd on the host's loopback, `clusterfctl get` from the image shows it, and
# the backend leaves etcd when the container stops and when clusterf-docker stops; then
# deploy/compose.yaml itself is brought up with docker-compose (etcd from tests/docker/
# etcd.Dockerfile, tagged as the image the file names), a labelled container appears in etcd,
# and it is brought down cleanly.
# clusterf-ipvs from the image runs in the VM (scripts/vm-run, real kernel IPVS) with the image's
# files, reaching the same etcd, and applies a table. Not here: the compose file's clusterf-ipvs
# and modprobe services (they would change this host's kernel, which has no ip_vs anyway).
# A missing prerequisite is a skip, and a failure under CLUSTERF_REQUIRE_ALL=1.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
name=test_image
pass=0 fail=0 skip=0
tmp=$(mktemp -d /tmp/cf-image-test.XXXXXX)
etcd_pid= project=cfimage$$
cleanup() {
    if [ -n "${DOCKER_HOST:-}" ] && [ -f "$tmp/compose.override.yaml" ]; then
        compose down -v -t 5 > /dev/null 2>&1
    fi
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
    scripts/test-dockerd cleanup "$tmp/docker" > /dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

ok()   { echo "ok   $1"; pass=$((pass + 1)); }
bad()  { echo "FAIL $1"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; return 1; fi; }
summary() { echo "$name: $pass passed, $fail failed, $skip skipped"; [ "$fail" = 0 ]; exit; }
skipped() {
    if [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "$CLUSTERF_REQUIRE_ALL" != 0 ]; then
        echo "!!! $1 (a failure: CLUSTERF_REQUIRE_ALL=1)"; fail=$((fail + 1))
    else
        echo "SKIP $1"; skip=$((skip + 1))
    fi
}
# wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds (a cap, not a timing).
wait_for() {
    local cap=$(( $1 * 5 )) i; shift
    for i in $(seq "$cap"); do "$@" && return 0; sleep 0.2; done
    return 1
}

command -v etcd > /dev/null && command -v etcdctl > /dev/null ||
    { skipped "etcd (etcd-server, etcd-client) is not installed"; summary; }
command -v docker-compose > /dev/null || skipped "docker-compose is not installed (docker-compose)"

# --- a private dockerd and the image.
CFD_OWNER=$$ scripts/test-dockerd start "$tmp/docker" > /dev/null
rc=$?
[ $rc = 77 ] && { skipped "private dockerd: $(CFD_OWNER=$$ scripts/test-dockerd start "$tmp/docker" 2>&1 >/dev/null | tail -1)"; summary; }
[ $rc = 0 ] || { bad "private dockerd did not start"; summary; }
. "$tmp/docker/env"
export DOCKER_HOST
D() { docker "$@"; }

t0=$(date +%s)
make -s BUILD="$BUILD" image > "$tmp/make-image.log" 2>&1
rc=$?
sed 's/^/    /' "$tmp/make-image.log"
[ $rc != 0 ] && grep -q 'build-image: .*not installed\|must run as root' "$tmp/make-image.log" &&
    { skipped "make image: a prerequisite is missing"; summary; }
check "make image (${BUILD}/image/clusterf.tar, $(( $(date +%s) - t0 ))s)" test $rc = 0
[ $rc = 0 ] || summary
D load -i "$BUILD/image/clusterf.tar" > /dev/null
check "docker load $BUILD/image/clusterf.tar" test $? = 0

version=$("$BUILD/clusterfctl" --version | awk '{ print $2 }')
check "tagged clusterf:latest and clusterf:$version (the programs' --version)" \
    eval 'D image inspect clusterf:latest clusterf:"$version" > /dev/null'
size=$(D image inspect -f '{{.Size}}' clusterf:latest)
echo "info image size: $((size / 1000000)) MB ($size bytes)"
check "image smaller than 60 MB ($((size / 1000000)) MB)" test "$size" -lt 60000000
user=$(D image inspect -f '{{.Config.User}}' clusterf:latest)
check "image runs as the unprivileged user 65532 by default (User=$user)" test "$user" = 65532:65532

# --- every program starts with only the image's files (no network, no capability, read-only).
R() { D run --rm --network none --cap-drop ALL --read-only --security-opt no-new-privileges clusterf:latest "$@"; }
for p in clusterf-ipvs clusterf-docker clusterfctl; do
    out=$(R "$p" --version 2>&1)
    check "$p --version in the image: '$out'" test "$out" = "$p $version"
done
# ipvsadm opens IPVS before it looks at its arguments: this host has no ip_vs, so it starts and
# says so (a missing library would stop it in the loader instead).
out=$(R ipvsadm --version 2>&1)
check "ipvsadm in the image starts: '$(echo "$out" | head -n 1)'" \
    eval 'echo "$out" | grep -qE "^ipvsadm v|^Can.t initialize ipvs"'
out=$(R modprobe --version 2>&1)
check "modprobe in the image: '$(echo "$out" | head -n 1)'" eval 'echo "$out" | grep -q "^kmod version"'
R sh -c true > /dev/null 2>&1
check "the image has no shell (only the programs and their libraries)" test $? != 0

# --- a real etcd on the host's loopback.
port=$(( 30000 + RANDOM % 20000 ))
etcd --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$port" \
     --advertise-client-urls "http://127.0.0.1:$port" \
     --listen-peer-urls "http://127.0.0.1:$((port + 1))" > "$tmp/etcd.log" 2>&1 &
etcd_pid=$!
E() { ETCDCTL_API=3 etcdctl --endpoints="http://127.0.0.1:$port" "$@"; }
wait_for 30 eval 'E endpoint health > /dev/null 2>&1'
check "etcd on 127.0.0.1:$port" test $? = 0

# --- clusterf-docker from the image, as its unprivileged user in the socket's group.
sock=${DOCKER_HOST#unix://}
gid=$(stat -c %g "$sock")
cid=$(D run -d --expose 8080 -l net.qmsk.clusterf.service=web -l net.qmsk.clusterf.backend.tcp=8080 \
      "$CFD_IMAGE" httpd -f -p 8080)
check "a labelled container (service web, tcp 8080)" test -n "$cid"
cip=$(D inspect -f '{{.NetworkSettings.IPAddress}}' "$cid")
key=/clusterf/services/web/backends/image-test:${cid:0:12}
D run -d --name clusterf-docker --network host --read-only --cap-drop ALL \
    --security-opt no-new-privileges --group-add "$gid" -v "$sock:/var/run/docker.sock" \
    clusterf:latest clusterf-docker --etcd-endpoints="http://127.0.0.1:$port" \
    --docker-host=unix:///var/run/docker.sock --hostname=image-test --ttl=5s > /dev/null
check "clusterf-docker from the image started" test $? = 0
has_key() { [ -n "$(E get "$1" --print-value-only 2>/dev/null)" ]; }
wait_for 60 has_key "$key"
check "clusterf-docker from the image registered $key" test $? = 0
echo "    $(E get "$key" --print-value-only 2>/dev/null)"
pid=$(D inspect -f '{{.State.Pid}}' clusterf-docker)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
check "clusterf-docker runs as uid 65532 (uid $uid) with no capability (CapEff $capeff)" \
    test "$uid" = 65532 -a "$capeff" = 0000000000000000

out=$(D run --rm --network host --read-only --cap-drop ALL clusterf:latest \
      clusterfctl get --etcd-endpoints="http://127.0.0.1:$port" 2>&1)
echo "$out" | sed 's/^/    /'
check "clusterfctl get from the image shows the backend at $cip" \
    eval 'echo "$out" | grep "image-test:${cid:0:12}" | grep -q "$cip"'

D stop -t 2 "$cid" > /dev/null
wait_for 60 eval '! has_key "$key"'
check "the backend leaves etcd when its container stops" test $? = 0
cid2=$(D run -d --expose 8080 -l net.qmsk.clusterf.service=web -l net.qmsk.clusterf.backend.tcp=8080 \
       "$CFD_IMAGE" httpd -f -p 8080)
key2=/clusterf/services/web/backends/image-test:${cid2:0:12}
wait_for 60 has_key "$key2"
check "a second container is registered" test $? = 0
D stop -t 10 clusterf-docker > /dev/null
code=$(D inspect -f '{{.State.ExitCode}}' clusterf-docker)
check "clusterf-docker stops on SIGTERM with exit 0 (got $code)" test "$code" = 0
# Revoked, not expired: the TTL is 5s, and the key is checked once, right after the stop.
check "its lease is revoked on SIGTERM: the backend is gone at once" eval '! has_key "$key2"'
[ "$fail" = 0 ] || { echo "--- clusterf-docker log"; D logs clusterf-docker 2>&1 | tail -n 20; }
D rm -f clusterf-docker "$cid" "$cid2" > /dev/null 2>&1

# --- clusterf-ipvs from the image in the VM (scripts/vm-run), against the real kernel's IPVS:
# the image's files (docker export) at /image in the guest, entered with chroot.
vm_part() {
    D create --name rootfs clusterf:latest > /dev/null && D export rootfs > "$tmp/rootfs.tar"
    D rm rootfs > /dev/null 2>&1
    mkdir -p "$tmp/rootfs" && tar -C "$tmp/rootfs" -xf "$tmp/rootfs.tar"
    check "the image's files exported (docker export)" test -x "$tmp/rootfs/usr/local/bin/clusterf-ipvs" || return
    E put /clusterf/services/web/frontend '{"ipv4": "10.107.107.107", "tcp": 8080}' > /dev/null
    E put /clusterf/services/web/backends/b1 '{"ipv4": "10.1.0.1", "tcp": 8080}' > /dev/null
    scripts/vm-run --net --timeout 300 --add "$tmp/rootfs:/image" tests/docker/guest_image.sh "$port" \
        > "$tmp/vm.out" 2>&1
    local rc=$? line
    if [ $rc = 77 ]; then
        skipped "VM: $(grep -m1 'MISSING PREREQUISITE' "$tmp/vm.out" || echo 'the VM cannot run here')"
        return
    fi
    while IFS= read -r line; do
        case "$line" in
            "ok   "*) ok "VM: ${line#ok   }";;
            "FAIL "*) bad "VM: ${line#FAIL }";;
            *) echo "    $line";;
        esac
    done < "$tmp/vm.out"
    grep -qE '^guest_image: [0-9]+ passed, 0 failed' "$tmp/vm.out"
    check "VM: the guest ran to its summary (vm-run exit $rc)" test $? = 0 -a $rc = 0
}
vm_part

# --- deploy/compose.yaml with docker-compose: etcd and clusterf-docker as the file has them.
compose_up() {
    command -v docker-compose > /dev/null || return 0
    # etcd 3.4 from Debian under the name the compose file uses; its tar is cached like the base.
    local etcd_tar=.cache/image/etcd-$(sha256sum tests/docker/etcd.Dockerfile | cut -c1-12).tar
    if [ -s "$etcd_tar" ]; then
        D load -i "$etcd_tar" > /dev/null
    else
        mkdir -p "$tmp/etcd-ctx" .cache/image
        scripts/build-image --base-only > "$tmp/etcd-build.log" 2>&1 &&
        D build --network host -t quay.io/coreos/etcd:v3.4.23 -f tests/docker/etcd.Dockerfile \
            "$tmp/etcd-ctx" >> "$tmp/etcd-build.log" 2>&1 &&
            D save -o "$etcd_tar.tmp" quay.io/coreos/etcd:v3.4.23 && mv -f "$etcd_tar.tmp" "$etcd_tar"
    fi
    D image inspect quay.io/coreos/etcd:v3.4.23 > /dev/null 2>&1
    check "etcd image (tests/docker/etcd.Dockerfile) as quay.io/coreos/etcd:v3.4.23" test $? = 0 ||
        { tail -n 20 "$tmp/etcd-build.log"; return; }
    # The project's network on this dockerd's bridge name and subnet, so cleanup finds it.
    cat > "$tmp/compose.override.yaml" <<EOF
networks:
  default:
    driver_opts:
      com.docker.network.bridge.name: ${CFD_USER_BRIDGE_PREFIX}1
    ipam:
      config:
        - subnet: $CFD_USER_SUBNET4
EOF
    cport=$(( port + 2 ))
    export CLUSTERF_HOSTNAME=compose-test CLUSTERF_DOCKER_GID=$gid CLUSTERF_DOCKER_SOCKET=$sock \
           CLUSTERF_ETCD_PORT=$cport
    compose up -d --no-build etcd clusterf-docker > "$tmp/compose-up.log" 2>&1
    local rc=$?
    sed 's/^/    /' "$tmp/compose-up.log"
    check "docker-compose up -d etcd clusterf-docker" test $rc = 0
    [ $rc = 0 ] || { compose down -v -t 5 > /dev/null 2>&1; return; }
    health() { [ "$(D inspect -f '{{.State.Health.Status}}' "$(compose ps -q etcd)" 2>/dev/null)" = healthy ]; }
    wait_for 120 health
    check "compose: etcd is healthy (its healthcheck: etcdctl endpoint health)" test $? = 0
    running() { [ "$(D inspect -f '{{.State.Running}} {{.RestartCount}}' "$(compose ps -q clusterf-docker)" 2>/dev/null)" = "true 0" ]; }
    wait_for 60 running
    check "compose: clusterf-docker is running, not restarting" test $? = 0
    C() { ETCDCTL_API=3 etcdctl --endpoints="http://127.0.0.1:$cport" "$@"; }
    ccid=$(D run -d --expose 8080 -l net.qmsk.clusterf.service=web -l net.qmsk.clusterf.backend.tcp=8080 \
           "$CFD_IMAGE" httpd -f -p 8080)
    ckey=/clusterf/services/web/backends/compose-test:${ccid:0:12}
    wait_for 60 eval '[ -n "$(C get "$ckey" --print-value-only 2>/dev/null)" ]'
    check "compose: $ckey appears in the compose etcd (through its port on 127.0.0.1:$cport)" test $? = 0
    compose stop -t 10 clusterf-docker > /dev/null 2>&1
    code=$(D inspect -f '{{.State.ExitCode}}' "$(compose ps -q clusterf-docker)" 2>/dev/null)
    check "compose: clusterf-docker stopped with exit 0 (got $code), its backend gone at once" \
        eval '[ "$code" = 0 ] && [ -z "$(C get "$ckey" --print-value-only 2>/dev/null)" ]'
    [ "$fail" = 0 ] || { echo "--- compose logs"; compose logs --no-color 2>&1 | tail -n 30; }
    D rm -f "$ccid" > /dev/null
    compose down -v -t 10 > "$tmp/compose-down.log" 2>&1
    rc=$?
    check "docker-compose down -v" test $rc = 0
    left=$(D ps -aq --filter "label=com.docker.compose.project=$project"; D volume ls -q --filter "label=com.docker.compose.project=$project"; D network ls -q --filter "label=com.docker.compose.project=$project")
    check "compose: no container, volume or network left${left:+ ($(echo $left))}" test -z "$left"
    rm -f "$tmp/compose.override.yaml"
}
compose() { docker-compose -p "$project" -f deploy/compose.yaml -f "$tmp/compose.override.yaml" "$@"; }
compose_up

summary
