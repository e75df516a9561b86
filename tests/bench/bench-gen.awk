# bench-gen.awk -- the benchmark's table, for etcd and for ipvsadm (see guest_bench_probe.c for
# the same layout in C): SERVICES services s<i> with VIP 172.(16+v/65536).(v/256%256).(v%256):80
# (v = i+1), each with BPS backends b<j> at 10.(n/65536%256).(n/256%256).(n%256):8080
# (n = i*BPS + j + 1), weight 10 (the default), masq (no route).
#   awk -v services=N -v bps=10 -v mode=etcd -v out=/tmp/txn -v ops=20000 -f bench-gen.awk
#       writes etcdctl txn inputs out.0, out.1, ... of at most `ops` puts each
#   awk -v services=N -v bps=10 -v mode=ipvsadm -f bench-gen.awk
#       prints the same table as `ipvsadm -R` rules
function quad(a, b, n) { return a "." b "." int(n / 256) % 256 "." n % 256 }
function vip(i) { return quad(172, 16 + int((i + 1) / 65536), i + 1) }
function backend(n) { return quad(10, int(n / 65536) % 256, n) }
function put(key, val) {
    if (count % ops == 0) {
        if (file != "") { print "\n" > file; close(file) }
        file = out "." int(count / ops)
        print "" > file
    }
    gsub(/"/, "\\\"", val)
    print "put /clusterf/services/" key " \"" val "\"" > file
    count++
}
BEGIN {
    if (ops == "") ops = 20000
    for (i = 0; i < services; i++) {
        if (mode == "ipvsadm")
            print "-A -t " vip(i) ":80 -s wlc"
        else
            put("s" i "/frontend", "{\"ipv4\":\"" vip(i) "\",\"tcp\":80}")
        for (j = 0; j < bps; j++) {
            n = i * bps + j + 1
            if (mode == "ipvsadm")
                print "-a -t " vip(i) ":80 -r " backend(n) ":8080 -m -w 10"
            else
                put("s" i "/backends/b" j, "{\"ipv4\":\"" backend(n) "\",\"tcp\":8080}")
        }
    }
    if (file != "") { print "\n" > file; close(file) }
}
