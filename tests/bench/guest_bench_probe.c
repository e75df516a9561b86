/* guest_bench_probe.c -- the measuring helpers of `make bench` (tests/bench/guest_bench.sh),
 * run inside the scripts/vm-run guest next to clusterf-ipvs (and natively for P4):
 *
 *   now                          wall clock in ms since the epoch (the clock of the daemon's
 *                                log timestamps)
 *   wait-log FILE OFFSET TEXT S  wait up to S seconds for a line containing TEXT at or after
 *                                byte OFFSET of FILE; print the line's ts= as epoch ms and the
 *                                byte offset after the line ("<ms> <offset>")
 *   latency EP SERVICES BPS N    N times: put a new weight on one backend through src/etcd's
 *                                client, then poll that service's destinations over netlink
 *                                (src/ipvs) until the kernel has the weight; print the samples'
 *                                p50/p99/max in ms (from the Put's response to the kernel)
 *   loop-busy PID                sample the state of PID's main thread every ~1 ms until
 *                                SIGINT/SIGTERM; print the longest stretch it spent outside
 *                                epoll_wait (an upper bound, to the sampling step)
 *   proc PID                     print "<VmHWM kB> <utime+stime ms>" of PID
 *
 * Key layout shared with tests/bench/bench-gen.awk: service i is services/s<i> with VIP
 * 172.(16+v/65536).(v/256%256).(v%256):80 where v = i+1, backend j is backends/b<j> with address
 * 10.(n/65536%256).(n/256%256).(n%256):8080 where n = i*BPS + j + 1, weight 10. */
#include "etcd/etcd.h"
#include "ipvs/ipvs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- wait-log ---------------------------------------------------------------------------- */

/* "ts=2026-11-30T14:52:24.123Z ..." -> epoch ms, or -1. */
static int64_t log_ts_ms(const char *line)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(line, "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Scan complete lines of f from *off; 1 and the line's ts when one contains text. */
static int scan_lines(FILE *f, long *off, const char *text, int64_t *ts)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int found = 0;
    if (fseek(f, *off, SEEK_SET) < 0)
        return 0;
    while (!found && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break;   /* a partial line: read it again when it is complete */
        *off += (long)len;
        if (strstr(line, text)) {
            *ts = log_ts_ms(line);
            found = 1;
        }
    }
    free(line);
    return found;
}

static int cmd_wait_log(const char *path, long off, const char *text, double limit_s)
{
    double end = mono_ms() + limit_s * 1e3;
    int64_t ts = -1;
    while (mono_ms() < end) {
        FILE *f = fopen(path, "r");
        int found = f ? scan_lines(f, &off, text, &ts) : 0;
        if (f)
            fclose(f);
        if (found) {
            printf("%lld %ld\n", (long long)ts, off);
            return ts < 0 ? 1 : 0;
        }
        sleep_us(20000);
    }
    fprintf(stderr, "wait-log: no line with \"%s\" in %s within %.0f s\n", text, path, limit_s);
    return 1;
}

/* ---- latency ----------------------------------------------------------------------------- */

static struct ipvs_service bench_service(long i)
{
    struct ipvs_service s = {.af = AF_INET, .protocol = IPPROTO_TCP, .port = 80};
    i++;
    uint8_t a[4] = {172, (uint8_t)(16 + i / 65536), (uint8_t)(i / 256 % 256), (uint8_t)(i % 256)};
    memcpy(s.addr, a, 4);
    return s;
}

static void backend_addr(long n, char *buf, size_t size)
{
    snprintf(buf, size, "10.%ld.%ld.%ld", n / 65536 % 256, n / 256 % 256, n % 256);
}

/* Poll the kernel until dest (addr, 8080) of svc has weight; 0, or -ETIMEDOUT after 60 s. */
static int wait_weight(ipvs_conn *c, const struct ipvs_service *svc, const char *addr,
                       uint32_t weight)
{
    struct ipvs_dest want = {.port = 8080};
    uint16_t af;
    ipvs_addr_parse(addr, &af, want.addr);
    double end = mono_ms() + 60000;
    while (mono_ms() < end) {
        struct ipvs_dest *d = NULL;
        size_t n = 0;
        struct ipvs_err err = {0};
        bool seen = false;
        if (ipvs_dump_dests(c, svc, &d, &n, &err) == 0)
            for (size_t k = 0; k < n && !seen; k++)
                seen = memcmp(d[k].addr, want.addr, 4) == 0 && d[k].port == 8080 &&
                       d[k].weight == weight;
        free(d);
        if (seen)
            return 0;
        sleep_us(500);
    }
    return -ETIMEDOUT;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, int n, int pct)
{
    int rank = (pct * n + 99) / 100;
    return v[rank < 1 ? 0 : rank - 1];
}

/* One sample: a new weight for backend b<j> of service s<i>; the ms until the kernel has it. */
static int one_change(etcd_client *ec, ipvs_conn *ic, long i, long j, long bps, uint32_t w,
                      double *ms)
{
    char key[96], val[128], addr[32];
    backend_addr(i * bps + j + 1, addr, sizeof addr);
    int kl = snprintf(key, sizeof key, "/clusterf/services/s%ld/backends/b%ld", i, j);
    int vl = snprintf(val, sizeof val, "{\"ipv4\":\"%s\",\"tcp\":8080,\"weight\":%u}", addr, w);
    etcd_error err = {0};
    if (etcd_put(ec, key, (size_t)kl, val, (size_t)vl, 0, NULL, &err) < 0) {
        fprintf(stderr, "latency: put %s: %s\n", key, err.msg);
        return -1;
    }
    double t0 = mono_ms();
    struct ipvs_service svc = bench_service(i);
    if (wait_weight(ic, &svc, addr, w) < 0) {
        fprintf(stderr, "latency: %s weight %u never reached the kernel\n", key, w);
        return -1;
    }
    *ms = mono_ms() - t0;
    return 0;
}

static int cmd_latency(const char *ep, long services, long bps, int samples)
{
    etcd_config cfg = {.endpoints = ep, .timeout_ms = 30000};
    etcd_client *ec = NULL;
    ipvs_conn *ic = NULL;
    etcd_error eerr = {0};
    struct ipvs_err ierr = {0};
    if (etcd_client_new(&cfg, &ec, &eerr) < 0 || ipvs_conn_new(&ic, &ierr) < 0) {
        fprintf(stderr, "latency: cannot start: %s%s\n", eerr.msg, ierr.msg);
        etcd_client_free(ec);
        return 1;
    }
    double *v = calloc((size_t)samples, sizeof *v);
    int rc = v ? 0 : 1;
    for (int k = 0; k < samples && rc == 0; k++) {
        long i = (long)((int64_t)k * services / samples);
        rc = one_change(ec, ic, i, k % bps, bps, (uint32_t)(11 + k), &v[k]) < 0;
        sleep_us(20000);   /* let the daemon go idle between samples */
    }
    if (rc == 0) {
        qsort(v, (size_t)samples, sizeof *v, cmp_double);
        printf("p50=%.2f p99=%.2f max=%.2f samples=%d\n", percentile(v, samples, 50),
               percentile(v, samples, 99), v[samples - 1], samples);
    }
    free(v);
    ipvs_conn_free(ic);
    etcd_client_free(ec);
    return rc;
}

/* ---- loop-busy --------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_sampling;
static void on_stop(int sig) { (void)sig; stop_sampling = 1; }

/* 1 when the thread is blocked in an epoll wait, 0 when it is doing anything else, -1 gone. */
static int in_epoll_wait(int fd)
{
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long nr = strtol(buf, NULL, 10);
    if (strncmp(buf, "running", 7) == 0)
        return 0;
    return nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == 441 /* epoll_pwait2 */;
}

static int cmd_loop_busy(const char *pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/task/%s/syscall", pid, pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "loop-busy: %s: %s\n", path, strerror(errno));
        return 1;
    }
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    double last_idle = mono_ms(), longest = 0, busy_samples = 0;
    long samples = 0;
    bool busy = false;
    while (!stop_sampling) {
        int st = in_epoll_wait(fd);
        double now = mono_ms();
        samples++;
        if (st < 0)
            break;
        if (st == 0) {
            busy = true;
            busy_samples++;
        } else {
            if (busy && now - last_idle > longest)
                longest = now - last_idle;
            busy = false;
            last_idle = now;
        }
        sleep_us(1000);
    }
    if (busy && mono_ms() - last_idle > longest)
        longest = mono_ms() - last_idle;
    close(fd);
    printf("longest_busy_ms=%.1f samples=%ld busy_samples=%.0f\n", longest, samples, busy_samples);
    return 0;
}

/* ---- proc -------------------------------------------------------------------------------- */

/* CPU time of every thread of pid in ns, from /proc/PID/task/TID/schedstat (time on a CPU,
 * counted exactly, where /proc/PID/stat's utime+stime come in 10 ms ticks); -1 when absent. */
static long long schedstat_ns(const char *pid)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/task", pid);
    DIR *dir = opendir(path);
    if (!dir)
        return -1;
    long long sum = 0;
    struct dirent *de;
    while (sum >= 0 && (de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%s/task/%s/schedstat", pid, de->d_name);
        FILE *f = fopen(path, "r");
        long long ns = -1;
        if (!f || fscanf(f, "%lld", &ns) != 1)
            sum = -1;
        else
            sum += ns;
        if (f)
            fclose(f);
    }
    closedir(dir);
    return sum;
}

/* "VmHWM_kB cpu_ms" of pid: CPU from schedstat where the kernel has it, else utime+stime. */
static int cmd_proc(const char *pid)
{
    char path[64], line[512];
    long hwm = -1;
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            hwm = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    f = fopen(path, "r");
    unsigned long ut = 0, stt = 0;
    int got = 0;
    if (f && fgets(line, sizeof line, f)) {
        char *p = strrchr(line, ')');   /* the command name may hold spaces */
        got = p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2;
    }
    if (f)
        fclose(f);
    if (hwm < 0 || !got) {
        fprintf(stderr, "proc: cannot read /proc/%s\n", pid);
        return 1;
    }
    long tick = sysconf(_SC_CLK_TCK);
    long long ns = schedstat_ns(pid);
    printf("%ld %llu\n", hwm, ns >= 0 ? (unsigned long long)(ns / 1000000) :
                                      (unsigned long long)(ut + stt) * 1000 / (unsigned long long)tick);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: guest_bench_probe now | wait-log FILE OFFSET TEXT SECONDS | "
                    "latency ENDPOINT SERVICES BACKENDS_PER_SERVICE SAMPLES | loop-busy PID | proc PID\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "now") == 0) {
        printf("%lld\n", (long long)wall_ms());
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "wait-log") == 0)
        return cmd_wait_log(argv[2], atol(argv[3]), argv[4], atof(argv[5]));
    if (argc == 6 && strcmp(argv[1], "latency") == 0 && atoi(argv[5]) > 0)
        return cmd_latency(argv[2], atol(argv[3]), atol(argv[4]), atoi(argv[5]));
    if (argc == 3 && strcmp(argv[1], "loop-busy") == 0)
        return cmd_loop_busy(argv[2]);
    if (argc == 3 && strcmp(argv[1], "proc") == 0)
        return cmd_proc(argv[2]);
    return usage();
}
