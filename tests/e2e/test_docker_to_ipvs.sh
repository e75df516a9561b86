#!/usr/bin/env bash
# test_docker_to_ipvs.sh -- end to end: a container on this host (private dockerd) ->
# clusterf-docker -> etcd on the host's loopback -> clusterf-ipvs in the VM (reaching etcd at
# 10.0.2.2) -> the real kernel's IPVS table; and the destination leaves when the container
# stops. The guest asks for the stop through the key /e2e/stop-container. clusterf-docker must
# exit 0 on SIGTERM (one more check, added to the guest's counts).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
name=test_docker_to_ipvs
tmp=$(mktemp -d /tmp/cf-e2e.XXXXXX)
etcd_pid= cfd_pid= stopper=
cleanup() {
    [ -n "$stopper" ] && kill "$stopper" 2>/dev/null
    [ -n "$cfd_pid" ] && kill "$cfd_pid" 2>/dev/null
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null
    scripts/test-dockerd cleanup "$tmp/docker" > /dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL $name: $*"; echo "$name: 0 passed, 1 failed, 0 skipped"; exit 1; }
missing() {
    if [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "$CLUSTERF_REQUIRE_ALL" != 0 ]; then
        fail "prerequisite missing: $* (a failure: CLUSTERF_REQUIRE_ALL=1)"
    fi
    echo "SKIP $name: $*"; echo "$name: 0 passed, 0 failed, 1 skipped"; exit 0
}
command -v etcd > /dev/null || missing "etcd (etcd-server)"
# A client port and the peer port after it, both free (etcd failing to bind is a failure).
for _ in $(seq 50); do
    port=$(( 30000 + RANDOM % 20000 ))
    [ -z "$(ss -Hltn "( sport = :$port or sport = :$((port + 1)) )" 2>/dev/null)" ] && break
done
etcd --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$port" \
     --advertise-client-urls "http://127.0.0.1:$port" \
     --listen-peer-urls "http://127.0.0.1:$((port + 1))" > "$tmp/etcd.log" 2>&1 &
etcd_pid=$!
E() { ETCDCTL_API=3 etcdctl --endpoints="http://127.0.0.1:$port" "$@"; }
for _ in $(seq 100); do E endpoint health > /dev/null 2>&1 && break; sleep 0.2; done
E endpoint health > /dev/null 2>&1 || fail "etcd did not start: $(tail -3 "$tmp/etcd.log")"
scripts/test-dockerd start "$tmp/docker" > /dev/null
rc=$?; [ $rc = 77 ] && missing "dockerd"; [ $rc = 0 ] || fail "dockerd did not start"
. "$tmp/docker/env"
D() { docker -H "$DOCKER_HOST" "$@"; }
vip=10.107.107.107:8080
E put /clusterf/services/web/frontend '{"ipv4": "10.107.107.107", "tcp": 8080}' > /dev/null
"$BUILD/clusterf-docker" --etcd-endpoints="http://127.0.0.1:$port" --docker-host="$DOCKER_HOST" \
    --hostname=e2e --ttl=3s > "$tmp/clusterf-docker.log" 2>&1 &
cfd_pid=$!
cid=$(D run -d --expose 8080 -l net.qmsk.clusterf.service=web -l net.qmsk.clusterf.backend.tcp=8080 \
      "$CFD_IMAGE" httpd -f -p 8080) || fail "docker run failed"
cip=$(D inspect -f '{{.NetworkSettings.IPAddress}}' "$cid")
echo "container ${cid:0:12} at $cip"
# Stop the container when the guest asks for it.
( for _ in $(seq 600); do
      [ -n "$(E get /e2e/stop-container --print-value-only 2>/dev/null)" ] && { D stop -t 1 "$cid" > /dev/null; exit 0; }
      sleep 0.2
  done ) &
stopper=$!
out=$(mktemp "$tmp/out.XXXXXX")
scripts/vm-run --net --timeout 200 --add "$BUILD/clusterf-ipvs:/usr/bin/clusterf-ipvs" \
    tests/e2e/guest_docker_to_ipvs.sh "$port" "$cip" "$vip" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
[ "$rc" = 77 ] && missing "$(grep -m1 'MISSING PREREQUISITE' "$out" || echo 'the VM cannot run here')"
summary=$(grep -E '^guest_docker_to_ipvs: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
[ -n "$summary" ] || { echo "--- clusterf-docker log"; tail -20 "$tmp/clusterf-docker.log"; fail "the guest printed no summary (vm-run exit $rc)"; }
read -r p f s <<< "$(echo "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')"
kill -TERM "$cfd_pid"; wait "$cfd_pid"; cfd_rc=$?; cfd_pid=
if [ "$cfd_rc" = 0 ]; then echo "ok   clusterf-docker exits 0 on SIGTERM"; p=$((p + 1))
else echo "FAIL clusterf-docker exits 0 on SIGTERM (exit $cfd_rc)"; f=$((f + 1)); fi
[ "$rc" = 0 ] && [ "$f" = 0 ] || { echo "--- clusterf-docker log"; tail -20 "$tmp/clusterf-docker.log"; }
echo "$name: $p passed, $f failed, $s skipped"
[ "$rc" = 0 ] && [ "$f" = 0 ]
