#!/usr/bin/env bash
# test_deploy.sh -- static checks of deploy/: the systemd units pass `systemd-analyze verify`
# (and a broken copy does not), the YAML parses and gives the programs only flags and values
# they accept (tests/unit/deploy_yaml.py), kustomize builds the Kubernetes objects, docker-compose
# accepts the compose file, every Kubernetes object is valid against Kubernetes' OpenAPI schema
# (npm kubernetes-models, installed into .cache/ by this suite), and the Dockerfile names only
# packages and paths that exist. Nothing is deployed here: tests/docker/test_image.sh builds and
# runs the image and brings the compose file up; no unit is started, no cluster is contacted.
# A missing tool is a skip, and a failure under CLUSTERF_REQUIRE_ALL=1.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
PY=/usr/bin/python3
pass=0 fail=0 skip=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

ok()   { echo "ok   $1"; pass=$((pass + 1)); }
bad()  { echo "FAIL $1"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
skipped() {
    if [ -n "${CLUSTERF_REQUIRE_ALL:-}" ] && [ "$CLUSTERF_REQUIRE_ALL" != 0 ]; then
        echo "!!! $1 (a failure: CLUSTERF_REQUIRE_ALL=1)"; fail=$((fail + 1))
    else
        echo "SKIP $1"; skip=$((skip + 1))
    fi
}
have() { command -v "$1" >/dev/null 2>&1; }

for p in clusterf-ipvs clusterf-docker clusterfctl; do
    [ -x "$BUILD/$p" ] || { bad "$BUILD/$p is not built (run: make all)"; }
done

# --- systemd: verify copies whose ExecStart points at the built programs; any message fails.
# A template (NAME@) is verified as the instance NAME@web.
units=(clusterf-ipvs clusterf-docker clusterf-register@)
verify() { # verify UNIT-FILE...: silent and exit 0, or print what systemd said
    local out rc
    out=$(systemd-analyze verify --man=no "$@" 2>&1); rc=$?
    [ $rc = 0 ] && [ -z "$out" ] && return 0
    echo "$out" | sed 's/^/    /'; return 1
}
if have systemd-analyze; then
    mkdir -p "$tmp/units"
    bindir=$(cd "$BUILD" && pwd)
    for t in "${units[@]}"; do
        u=${t/%@/@web}
        sed "s#/usr/local/bin/#$bindir/#" "deploy/systemd/$t.service" > "$tmp/units/$u.service"
        check "systemd-analyze verify deploy/systemd/$t.service (as $u)" verify "$tmp/units/$u.service"
        # The check can fail: a misspelt directive, a bad value, a missing program.
        mkdir -p "$tmp/broken"
        sed 's/^Restart=/Restrat=/' "$tmp/units/$u.service" > "$tmp/broken/$u.service"
        check "verify rejects a copy of $u.service with a misspelt directive" \
            eval '! verify "$tmp/broken/$u.service" >/dev/null'
        sed 's/^Type=simple/Type=simplex/' "$tmp/units/$u.service" > "$tmp/broken/$u.service"
        check "verify rejects a copy of $u.service with a bad value" \
            eval '! verify "$tmp/broken/$u.service" >/dev/null'
        sed "s#^ExecStart=.*#ExecStart=$bindir/no-such-program#" "$tmp/units/$u.service" > "$tmp/broken/$u.service"
        check "verify rejects a copy of $u.service with a missing program" \
            eval '! verify "$tmp/broken/$u.service" >/dev/null'
        score=$(systemd-analyze security --offline=true "$tmp/units/$u.service" 2>/dev/null |
                sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+) .*/\1/p')
        echo "info systemd-analyze security $u.service: exposure ${score:-?} (0 safest, 10 unprotected)"
    done
    grep -q '^CapabilityBoundingSet=CAP_NET_ADMIN$' deploy/systemd/clusterf-ipvs.service &&
        grep -q '^AmbientCapabilities=CAP_NET_ADMIN$' deploy/systemd/clusterf-ipvs.service
    check "clusterf-ipvs.service: CAP_NET_ADMIN is its only capability" test $? = 0
    grep -q '^RuntimeDirectory=clusterf$' deploy/systemd/clusterf-ipvs.service &&
        grep -q '^RuntimeDirectoryPreserve=yes$' deploy/systemd/clusterf-ipvs.service
    check "clusterf-ipvs.service: /run/clusterf kept across restarts" test $? = 0
    grep -qE '^After=.*docker\.service' deploy/systemd/clusterf-docker.service
    check "clusterf-docker.service: after docker.service" test $? = 0
    r=deploy/systemd/clusterf-register@.service
    grep -q '^ExecStart=/usr/local/bin/clusterfctl register %i %H$' "$r" &&
        grep -q '^DynamicUser=yes$' "$r" && grep -q '^CapabilityBoundingSet=$' "$r"
    check "clusterf-register@.service: clusterfctl register INSTANCE HOST, unprivileged" test $? = 0
else
    skipped "systemd units: systemd-analyze is missing (apt-get install systemd)"
fi

# --- deploy/systemd/clusterf.default: every CLUSTERF_ variable is a flag of one of the two
# programs, and each program accepts the whole file (values included).
envfile=deploy/systemd/clusterf.default
mapfile -t vars < <(grep -E '^CLUSTERF_[A-Z0-9_]+=' "$envfile")
check "$envfile sets variables" test ${#vars[@]} -gt 0
known=$(for p in clusterf-ipvs clusterf-docker; do "$BUILD/$p" --help 2>/dev/null; done |
        grep -oE '\[CLUSTERF_[A-Z0-9_]+\]' | tr -d '[]' | sort -u)
if [ -z "$(grep -oE '\[CLUSTERF_[A-Z0-9_]+\]' < <("$BUILD/clusterf-docker" --help 2>/dev/null))" ]; then
    skipped "$envfile: clusterf-docker's variables: $BUILD/clusterf-docker --help lists none (stub)"
    # The documented docker flags, so its variables in the file are not reported unknown.
    known=$(printf '%s\n' $known CLUSTERF_DOCKER_HOST CLUSTERF_HOSTNAME CLUSTERF_LABEL_PREFIX \
            CLUSTERF_DOCKER_NETWORK CLUSTERF_PUBLISH_MODE CLUSTERF_HOST_IPV4 CLUSTERF_HOST_IPV6 \
            CLUSTERF_TTL CLUSTERF_DRY_RUN | sort -u)
fi
unknown=$(for v in "${vars[@]}"; do n=${v%%=*}; echo "$known" | grep -qx "$n" || echo "$n"; done)
check "$envfile: every variable is a flag${unknown:+ (unknown: $(echo $unknown))}" test -z "$unknown"
for p in clusterf-ipvs clusterf-docker; do
    "$BUILD/$p" --help 2>/dev/null | grep -q '^  --' || continue
    out=$(env -i PATH=/usr/bin:/bin "${vars[@]}" "$BUILD/$p" --help 2>&1 >/dev/null)
    check "$p accepts $envfile${out:+ ($out)}" test $? = 0
done
# clusterf-register@.service reads the same file, plus the backend's settings.
out=$(env -i PATH=/usr/bin:/bin "${vars[@]}" CLUSTERF_IPV4=10.0.1.21 CLUSTERF_TCP=8080 \
      "$BUILD/clusterfctl" register web host-1 --help 2>&1 >/dev/null)
check "clusterfctl register accepts $envfile and the backend's settings${out:+ ($out)}" test $? = 0

# --- YAML (compose + Kubernetes): tests/unit/deploy_yaml.py prints ok/FAIL/SKIP lines.
if [ -x "$PY" ]; then
    "$PY" tests/unit/deploy_yaml.py "$BUILD" > "$tmp/yaml.out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
            "ok   "*) ok "${line#ok   }";;
            "FAIL "*) bad "${line#FAIL }";;
            "SKIP "*) skipped "${line#SKIP }";;
            *) echo "$line";;
        esac
    done < "$tmp/yaml.out"
    case $rc in 0|77) ;; *) bad "deploy_yaml.py exited $rc";; esac
else
    skipped "YAML checks: $PY is missing"
fi

# --- kubectl: `apply/create --dry-run=client` need an API server; `kubectl kustomize` does not,
# and it refuses objects without kind or metadata.name.
if have kubectl; then
    # As many objects as deploy_yaml.py counted in the files (at least one without it).
    want=$(sed -nE 's/^info kubernetes objects: ([0-9]+)$/\1/p' "$tmp/yaml.out" 2>/dev/null)
    objs=$(kubectl kustomize deploy/kubernetes 2>"$tmp/kz.err" | grep -c '^kind:')
    check "kubectl kustomize deploy/kubernetes builds ${want:-some} objects (got $objs) $(head -c 300 "$tmp/kz.err")" \
        test "$objs" -gt 0 -a "$objs" = "${want:-$objs}"
else
    skipped "kubectl kustomize: kubectl is missing"
fi

# --- Kubernetes' OpenAPI schema: every object, with kubernetes-models (npm; its generated
# validators plus a lookup of every field, tests/unit/k8s_validate.mjs), installed into .cache/.
k8s_models=.cache/kubernetes-models
k8s_pkgs="kubernetes-models@5.1.0 yaml@2.8.1"
if ! have node || ! have npm; then
    skipped "Kubernetes schema: node and npm are missing (apt-get install nodejs npm)"
elif [ "$(cat "$k8s_models/installed" 2>/dev/null)" != "$k8s_pkgs" ] &&
     ! { mkdir -p "$k8s_models" && npm install --prefix "$k8s_models" --no-audit --no-fund --no-save \
             $k8s_pkgs > "$tmp/npm.log" 2>&1 && echo "$k8s_pkgs" > "$k8s_models/installed"; }; then
    tail -n 5 "$tmp/npm.log"
    skipped "Kubernetes schema: npm install $k8s_pkgs failed"
else
    node tests/unit/k8s_validate.mjs "$k8s_models/node_modules" deploy/kubernetes/*.yaml > "$tmp/k8s.out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
            "ok   "*) ok "Kubernetes schema: ${line#ok   }";;
            "FAIL "*) bad "Kubernetes schema: ${line#FAIL }";;
            *) echo "$line";;
        esac
    done < "$tmp/k8s.out"
    check "Kubernetes schema: every object checked (validator exit $rc)" \
        eval '[ $rc = 0 ] && [ "$(grep -c "^ok " "$tmp/k8s.out")" = "${want:-0}" ]'
    # It can fail: a misspelt field, a bad quantity, a kind Kubernetes does not have.
    sed 's/readOnlyRootFilesystem:/readOnlyRootFilesytem:/' deploy/kubernetes/clusterf-ipvs.yaml > "$tmp/k1.yaml"
    sed 's/memory: 16Mi/memory: 16MiB/' deploy/kubernetes/clusterf-docker.yaml > "$tmp/k2.yaml"
    sed 's/^kind: DaemonSet/kind: DaemonSett/' deploy/kubernetes/clusterf-docker.yaml > "$tmp/k3.yaml"
    for k in k1 k2 k3; do
        out=$(node tests/unit/k8s_validate.mjs "$k8s_models/node_modules" "$tmp/$k.yaml" 2>&1)
        krc=$?
        check "Kubernetes schema rejects a broken copy: $(echo "$out" | grep -oE '[^ ;,]+:? (unknown field|must match format "[a-z]+"|no such kind in Kubernetes: [^;,]*)' | head -n 1)" \
            eval '[ $krc != 0 ] && echo "$out" | grep -q "^FAIL "'
    done
fi

# --- docker-compose config: the Compose schema, interpolation, depends_on conditions.
if have docker-compose; then
    cenv=(CLUSTERF_HOSTNAME=host-1 CLUSTERF_DOCKER_GID=999)
    out=$(env "${cenv[@]}" docker-compose -f deploy/compose.yaml config -q 2>&1)
    check "docker-compose config accepts deploy/compose.yaml${out:+ ($out)}" test $? = 0
    sed 's/^    cap_add: \[NET_ADMIN\]/    cap_addd: [NET_ADMIN]/' deploy/compose.yaml > "$tmp/compose.yaml"
    ! env "${cenv[@]}" docker-compose -f "$tmp/compose.yaml" config -q >/dev/null 2>&1
    check "docker-compose config rejects a copy with a misspelt key" test $? = 0
    ! env CLUSTERF_DOCKER_GID=999 docker-compose -f deploy/compose.yaml config -q >/dev/null 2>&1
    check "docker-compose config insists on CLUSTERF_HOSTNAME" test $? = 0
    ! env CLUSTERF_HOSTNAME=host-1 docker-compose -f deploy/compose.yaml config -q >/dev/null 2>&1
    check "docker-compose config insists on CLUSTERF_DOCKER_GID" test $? = 0
else
    skipped "docker-compose config: docker-compose is missing (apt-get install docker-compose)"
fi

# --- Dockerfile, statically: `docker build` cannot pull base images here.
df=deploy/Dockerfile
froms=$(grep -E '^FROM ' "$df" | awk '{print $2}' | tr '\n' ' ')
check "$df: debian:bookworm build, debian:bookworm-slim runtime libraries, scratch image ($froms)" \
    test "$froms" = "debian:bookworm debian:bookworm-slim scratch "
check "$df: no ENTRYPOINT" eval '! grep -qE "^ENTRYPOINT " "$df"'
check "$df: the image's user is unprivileged (USER 65532:65532, last)" \
    eval '[ "$(grep -E "^USER " "$df" | tail -n 1)" = "USER 65532:65532" ]'
# COPY sources (not --from) exist in the repository; the context filter keeps build/ out.
missing=$(grep -E '^COPY ' "$df" | grep -v -- '--from=' | awk '{for (i = 2; i < NF; i++) print $i}' |
          while read -r src; do [ -e "$src" ] || echo "$src"; done)
check "$df: every COPY source exists${missing:+ (missing: $(echo $missing))}" test -z "$missing"
check ".dockerignore keeps build/ and .cache/ out of the context" \
    eval 'grep -qx build .dockerignore && grep -qx .cache .dockerignore'
# `make all` in the image sees only what is copied: every file the programs' objects were
# compiled from (the compiler's .d lists of the last build) lies under a copied directory.
copied_dirs=$(grep -E '^COPY ' "$df" | grep -v -- '--from=' | awk '{for (i = 2; i < NF; i++) print $i}')
deps=$(find "$BUILD/src" "$BUILD/generated" -name '*.d' -exec cat {} + 2>/dev/null |
       tr ' \\' '\n\n' | grep -v ':$' | grep -v '^/' | grep . | sort -u)
outside=$(for f in $deps; do
              inside=0; for d in $copied_dirs; do case "$f" in "$d"|"$d"/*) inside=1;; esac; done
              [ $inside = 1 ] || echo "$f"
          done | head -n 5)
check "$df: the build stage has every source of the last build ($(echo $deps | wc -w) files${outside:+; outside: $(echo $outside)})" \
    test -n "$deps" -a -z "$outside"
# The programs copied from the build stage are the ones `make all` builds.
copied=$(grep -E '^COPY --from=build ' "$df" | tr ' ' '\n' | grep '^/src/build/' | sed 's#/src/build/##' | sort | tr '\n' ' ')
progs=$(make -s -p -n all 2>/dev/null | sed -nE 's#^PROGS := ##p' | tr ' ' '\n' | sed 's#.*/##' | grep . | sort | tr '\n' ' ')
check "$df: copies the programs make builds ($copied)" test -n "$copied" -a "$copied" = "$progs"
# Runtime packages: every one exists in bookworm (apt-cache show) ...
runtime=$(awk '/^FROM debian:bookworm-slim/{rt=1} rt' "$df" | sed -n '/apt-get install/,/rm -rf/p' |
          tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|rf)$' | sort -u)
check "$df: runtime stage installs packages" test -n "$runtime"
for p in $runtime; do
    check "$df: package $p exists in apt-cache" eval 'apt-cache show "$p" >/dev/null 2>&1'
done
# ... and covers every library the built programs need (DT_NEEDED -> owning package here,
# the same distribution; libc6 is in the base image).
for b in clusterf-ipvs clusterf-docker clusterfctl; do
    [ -x "$BUILD/$b" ] || continue
    # A sanitizer build (make asan) links its runtime and, without --as-needed, every
    # transitive library: not what the image's own `make all` links; `make test` checks that.
    if readelf -d "$BUILD/$b" | grep -q 'NEEDED.*libasan'; then
        echo "info $df: $b in $BUILD is a sanitizer build: its libraries are not the image's"
        continue
    fi
    for so in $(readelf -d "$BUILD/$b" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p'); do
        pkg=$(dpkg -S "*/$so" 2>/dev/null | head -n 1 | cut -d: -f1)
        [ "$pkg" = libc6 ] && continue
        check "$df: $b needs $so from ${pkg:-?}, installed in the runtime stage" \
            eval 'echo "$runtime" | grep -qx "$pkg"'
    done
done
# The build stage's `install-deps --build-only` brings every pkg-config module the Makefile uses.
# shellcheck disable=SC2034  # used inside the eval below
build_pkgs=$(sed -n '/^BUILD_PKGS=(/,/^)/p' scripts/install-deps | grep -v '[()]' | tr ' ' '\n' | grep .)
check "$df: the build stage runs install-deps --build-only" grep -q 'install-deps --build-only' "$df"
for m in $(sed -nE 's/^PKGS +:= //p' Makefile); do
    pc=$(pkg-config --path "$m" 2>/dev/null)
    pkg=$(dpkg -S "$(readlink -f "$pc")" 2>/dev/null | head -n 1 | cut -d: -f1)
    check "install-deps --build-only has $m.pc's package ${pkg:-?}" \
        eval '[ -n "$pkg" ] && echo "$build_pkgs" | grep -qx "$pkg"'
done
echo "info the image is built and run by tests/docker/test_image.sh (make image)"

echo "test_deploy: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
