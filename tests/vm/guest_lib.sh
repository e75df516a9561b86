# guest_lib.sh -- shared pieces of the VM guest suites (sourced: . /vm/guest_lib.sh; shipped
# into every guest by tests/vm/run-guest): the pass/fail counters and waits, centisecond time, and the
# churn writer -- random config changes written through etcd's JSON gateway, mirrored in a
# model of what etcd holds, and the IPVS table that model implies.
#
# The churn: services s1..s4 (VIP 10.20.0.K:80), their backends b1..b3, weights, schedulers
# and two routes. The writer speaks etcd's JSON gateway (/v3/kv/put, /v3/kv/deleterange) with
# busybox wget -- an etcdctl process costs about a second in the emulated guest -- to $GW_URL
# (the caller sets it, e.g. per change to rotate between members). The model /tmp/model holds
# "svc NAME VIPK SCHED", "be NAME J WEIGHT ADDR" and "route R" lines; expected_table turns it
# into the IPVS table (ipvsadm -S -n, sorted). Backend bJ of sK is 10.3.J.(10K+J):8080; route
# "dr" makes 10.3.1.0/24 droute, "tun" makes 10.3.2.0/24 tunnel (both then carry the
# frontend's port 80); 10.3.3.0/24 is always masq.
# With CHURN_OPS=23 (default 20: the plain churn above) the writer also writes conflicts:
# service cK (it sorts before sK) claims sK's VIP, with its own backends bJ at
# 10.3.J.(10K+J+5); with CHURN_OPS=26 also invalid values (bad JSON, a port out of range, a
# scheduler name the config rejects, a weight out of range, a bad address). Per SPEC (JSON rules): an invalid value never takes down what
# is serving -- the key's last valid value stays in force, a key without one gives no rule --
# so an invalid put leaves the model as it is. (A cold start -- a daemon restarted, or
# clusterfctl once the history is compacted -- does not know that last valid value: heal the
# invalid keys before those; see guest_soak.sh.) Per SPEC (section 3): of two services with the
# same VIP:port the name that sorts first wins; the other gives no rule.

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL $1"; }
check() { name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# wait_for NAME SECONDS CMD...: pass when CMD succeeds within SECONDS.
wait_for() {
    name=$1 limit=$(($2 * 5)); shift 2
    i=0
    while ! "$@"; do
        i=$((i + 1)); [ $i -gt $limit ] && { bad "$name"; return 1; }
        sleep 0.2
    done
    ok "$name"
}

# now_cs: monotonic time in centiseconds (/proc/uptime).
# (uptime is well above 1 s here: no leading zero to read as octal)
now_cs() { read up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }
cs_to_s() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
# percentile P FILE: the P-th percentile (nearest rank) of the numbers in FILE.
percentile() { sort -n "$2" | awk -v p=$1 '{ v[NR] = $1 } END { r = int((p * NR + 99) / 100); if (r < 1) r = 1; print v[r] }'; }

M=${M:-/tmp/model}
# rnd N: R = a pseudo-random number in 0..N-1 (a linear congruential generator on SEED).
rnd() { SEED=$(( (SEED * 1103515245 + 12345) % 2147483648 )); R=$(( (SEED / 65536) % $1 )); }
b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
# gw POST-PATH JSON: one gateway call to $GW_URL, retried like any etcd client does while
# etcd cannot answer (a killed member: the others answer 503 until they elect a leader; a
# restarting etcd: connection refused); fails after GW_TRIES (default 60) errors, 0.5 s apart.
# Puts and range deletes are idempotent, so a retry of one that did land changes nothing.
# GW_RETRIES counts the retries of all calls.
GW_RETRIES=0
gw() {
    gw_tries=0
    until wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$2" \
            $GW_URL$1 2>/dev/null; do
        gw_tries=$((gw_tries + 1))
        [ $gw_tries -ge ${GW_TRIES:-60} ] && { bad "churn: gateway $1 on $GW_URL failed $gw_tries times"; return 1; }
        sleep 0.5
    done
    GW_RETRIES=$((GW_RETRIES + gw_tries))
    [ $gw_tries = 0 ] || echo "  (gateway $1 on $GW_URL answered after $gw_tries retries)"
}
gw_put() { gw /v3/kv/put "{\"key\":\"$(b64 "$1")\",\"value\":\"$(b64 "$2")\"}"; }
gw_del() { gw /v3/kv/deleterange "{\"key\":\"$(b64 "$1")\"}"; }
# gw_del_dir DIR/: every key under DIR/ (the range [DIR/, DIR0): '0' follows '/').
gw_del_dir() { gw /v3/kv/deleterange "{\"key\":\"$(b64 "$1")\",\"range_end\":\"$(b64 "${1%/}0")\"}"; }
# model_del PATTERN: drop the model lines starting with PATTERN (a regex).
# model_set KEY VALUE: the model line "KEY VALUE" ("svc NAME", "be NAME J") replaces KEY's old one.
model_del() { grep -v "^$1" $M > $M.new; mv $M.new $M; }
model_set() { model_del "$1 "; echo "$1 $2" >> $M; }

# expected_table: the IPVS table the model implies, as `ipvsadm -S -n` lines, sorted.
expected_table() {
    awk '$1 == "svc" { vip[$2] = $3; sch[$2] = $4 }
    $1 == "be" { w[$2 " " $3] = $4; ad[$2 " " $3] = $5 }
    $1 == "route" { rt[$2] = 1 }
    END {
        for (n in vip) { v = vip[n]; if (!(v in win) || n < win[v]) win[v] = n }
        for (v in win) print "-A -t 10.20.0." v ":80 -s " sch[win[v]]
        for (nj in w) {
            split(nj, f, " "); n = f[1]; j = f[2]
            if (!(n in vip) || win[vip[n]] != n) continue
            port = 8080; meth = "-m"; tail = ""
            if (j == 1 && ("dr" in rt)) { port = 80; meth = "-g" }
            if (j == 2 && ("tun" in rt)) { port = 80; meth = "-i"; tail = " --tun-type ipip" }
            print "-a -t 10.20.0." vip[n] ":80 -r " ad[nj] ":" port " " meth " -w " w[nj] tail
        }
    }' $M | sort
}

# random_change: one random etcd write, mirrored in the model; WHAT says what it did. A
# service without a frontend mostly gets one first (else most writes would change nothing).
random_change() {
    rnd ${CHURN_OPS:-20}; op=$R; rnd 4; k=$((R + 1)); rnd 3; j=$((R + 1))
    be=/clusterf/services/s$k/backends/b$j addr=10.3.$j.$((10 * k + j))
    if ! grep -q "^svc s$k " $M; then rnd 4; [ $R = 0 ] || op=0; fi
    if [ $op -lt 3 ]; then
        rnd 2; s=wlc; [ $R = 1 ] && s=rr
        gw_put /clusterf/services/s$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":80,\"scheduler\":\"$s\"}"
        model_set "svc s$k" "$k $s"; WHAT="frontend s$k $s"
    elif [ $op -lt 13 ]; then
        rnd 21; w=$R
        if [ $w = 20 ]; then   # no weight field: the default, 10
            gw_put $be "{\"ipv4\":\"$addr\",\"tcp\":8080}"; w=10
        else
            gw_put $be "{\"ipv4\":\"$addr\",\"tcp\":8080,\"weight\":$w}"
        fi
        model_set "be s$k $j" "$w $addr"; WHAT="backend s$k/b$j weight $w"
    elif [ $op -lt 16 ]; then
        gw_del $be
        model_del "be s$k $j "; WHAT="delete s$k/b$j"
    elif [ $op -lt 19 ]; then
        rnd 2
        if [ $R = 0 ]; then r=dr pfx=10.3.1.0/24 meth=droute; else r=tun pfx=10.3.2.0/24 meth=tunnel; fi
        if grep -q "^route $r$" $M; then
            gw_del /clusterf/routes/$r; model_del "route $r$"; WHAT="delete route $r"
        else
            gw_put /clusterf/routes/$r "{\"Prefix4\":\"$pfx\",\"IpvsMethod\":\"$meth\"}"
            echo "route $r" >> $M; WHAT="route $r $meth"
        fi
    elif [ $op -lt 20 ]; then
        gw_del_dir /clusterf/services/s$k/
        model_del "svc s$k "; model_del "be s$k "; WHAT="delete service s$k"
    elif [ $op -lt 23 ]; then
        conflict_change
    else
        invalid_change
    fi
}

# invalid_change: an invalid value for sK's frontend or backend bJ (from random_change); the
# model stays as it is (the key's last valid value, if any, stays in force). INVALIDS counts them.
INVALIDS=0
invalid_change() {
    rnd 5; INVALIDS=$((INVALIDS + 1))
    case $R in
        0) gw_put /clusterf/services/s$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":80"
           WHAT="invalid s$k frontend: bad JSON";;
        1) gw_put /clusterf/services/s$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":70000}"
           WHAT="invalid s$k frontend: port 70000";;
        2) gw_put /clusterf/services/s$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":80,\"scheduler\":\"no such\"}"
           WHAT="invalid s$k frontend: scheduler \"no such\"";;
        3) gw_put $be "{\"ipv4\":\"$addr\",\"tcp\":8080,\"weight\":70000}"
           WHAT="invalid s$k/b$j: weight 70000";;
        *) gw_put $be "{\"ipv4\":\"10.3.$j.300\",\"tcp\":8080}"
           WHAT="invalid s$k/b$j: address 10.3.$j.300";;
    esac
}

# conflict_change: service cK, which sorts before sK, claims sK's VIP (its frontend), gets a
# backend, or is deleted (from random_change). CONFLICTS counts them.
CONFLICTS=0
conflict_change() {
    rnd 3; CONFLICTS=$((CONFLICTS + 1))
    case $R in
        0) rnd 2; s=wlc; [ $R = 1 ] && s=rr
           gw_put /clusterf/services/c$k/frontend "{\"ipv4\":\"10.20.0.$k\",\"tcp\":80,\"scheduler\":\"$s\"}"
           model_set "svc c$k" "$k $s"; WHAT="conflict: frontend c$k on s$k's VIP, $s";;
        1) rnd 21; w=$R caddr=10.3.$j.$((10 * k + j + 5))
           gw_put /clusterf/services/c$k/backends/b$j "{\"ipv4\":\"$caddr\",\"tcp\":8080,\"weight\":$w}"
           model_set "be c$k $j" "$w $caddr"; WHAT="conflict: backend c$k/b$j weight $w";;
        *) gw_del_dir /clusterf/services/c$k/
           model_del "svc c$k "; model_del "be c$k "; WHAT="conflict: delete service c$k";;
    esac
}
