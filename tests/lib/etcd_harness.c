/* etcd_harness.c -- start, kill, restart and talk to real etcd members for the tests.
 * Ports come from binding port 0 on 127.0.0.1; readiness is polled with Maintenance/Status
 * through the project's own client until the member reports a leader. */
#include "etcd_harness.h"
#include "etcd/etcd.h"
#include "common/timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 30000

/* The etcd binary: $CLUSTERF_TEST_ETCD (for tests of this harness), else /usr/bin/etcd. */
static const char *etcd_bin(void)
{
    const char *bin = getenv("CLUSTERF_TEST_ETCD");
    return bin && *bin ? bin : "/usr/bin/etcd";
}

bool etcdh_available(void)
{
    return access(etcd_bin(), X_OK) == 0 && access("/usr/bin/etcdctl", X_OK) == 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A CA, a server cert for 127.0.0.1/localhost, a client cert, and an unrelated CA. */
static int make_certs(etcdh *h)
{
    const char *d = h->dir;
    snprintf(h->ca, sizeof h->ca, "%s/ca.crt", d);
    snprintf(h->cert, sizeof h->cert, "%s/client.crt", d);
    snprintf(h->key, sizeof h->key, "%s/client.key", d);
    snprintf(h->wrong_ca, sizeof h->wrong_ca, "%s/wrong-ca.crt", d);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    int rc = run("cd %s && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
                 "openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 -subj /CN=clusterf-test-ca 2>/dev/null && "
                 "openssl req -x509 %s -keyout wrong-ca.key -out wrong-ca.crt -days 2 -subj /CN=wrong-ca 2>/dev/null && "
                 "openssl req %s -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null && "
                 "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
                 "-extfile san.ext -out server.crt 2>/dev/null && "
                 "openssl req %s -keyout client.key -out client.csr -subj /CN=root 2>/dev/null && "
                 "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
                 "-out client.crt 2>/dev/null", d, ec, ec, ec, ec);
    if (rc != 0)
        fprintf(stderr, "etcd_harness: openssl failed (%d)\n", rc);
    return rc == 0 ? 0 : -1;
}

static void initial_cluster(const etcdh *h, char *buf, size_t size)
{
    buf[0] = '\0';
    for (int i = 0; i < h->n; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s=%s", i ? "," : "", h->m[i].name, h->m[i].peer_url);
    }
}

static pid_t spawn(etcdh *h, int i)
{
    etcdh_member *m = &h->m[i];
    char cluster[512], cmd[2048], tls[512] = "";
    initial_cluster(h, cluster, sizeof cluster);
    if (h->tls)
        snprintf(tls, sizeof tls, " --cert-file=%s/server.crt --key-file=%s/server.key%s%s%s",
                 h->dir, h->dir, h->client_cert_auth ? " --client-cert-auth --trusted-ca-file=" : "",
                 h->client_cert_auth ? h->dir : "", h->client_cert_auth ? "/ca.crt" : "");
    snprintf(cmd, sizeof cmd,
             "exec %s --name=%s --data-dir=%s/%s --listen-client-urls=%s "
             "--advertise-client-urls=%s --listen-peer-urls=%s --initial-advertise-peer-urls=%s "
             "--initial-cluster=%s --initial-cluster-state=new --initial-cluster-token=t-%d "
             "--logger=zap --log-outputs=stderr%s %s >>%s/%s.log 2>&1",
             etcd_bin(), m->name, h->dir, m->name, m->client_url, m->client_url, m->peer_url,
             m->peer_url, cluster, (int)getpid(), tls, h->extra_args, h->dir, m->name);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A client config for member i alone (TLS files when the cluster uses TLS). */
static etcd_config member_config(const etcdh *h, int i, int64_t timeout_ms)
{
    etcd_config cfg = {.endpoints = h->m[i].client_url, .timeout_ms = timeout_ms};
    if (h->tls) {
        cfg.ca_file = h->ca;
        cfg.cert_file = h->cert;
        cfg.key_file = h->key;
    }
    return cfg;
}

/* Poll Status on member i until it reports a leader (or it died / timed out). */
static int wait_ready(etcdh *h, int i)
{
    etcd_config cfg = member_config(h, i, 1000);
    etcd_client *c = NULL;
    etcd_error err = {0};
    if (etcd_client_new(&cfg, &c, &err) < 0) {
        fprintf(stderr, "etcd_harness: client: %s\n", err.msg);
        return -1;
    }
    int64_t end = clock_now_ms() + READY_TIMEOUT_MS;
    int rc = -1;
    while (clock_now_ms() < end) {
        uint64_t leader = 0;
        if (etcd_status(c, &leader, NULL, &err) == 0 && leader != 0) {
            rc = 0;
            break;
        }
        if (waitpid(h->m[i].pid, NULL, WNOHANG) == h->m[i].pid) {
            h->m[i].pid = 0;
            break;
        }
        usleep(100 * 1000);
    }
    if (rc < 0)
        fprintf(stderr, "etcd_harness: %s not ready: %s (log %s/%s.log)\n", h->m[i].name, err.msg,
                h->dir, h->m[i].name);
    etcd_client_free(c);
    return rc;
}

static void fill_member(etcdh *h, int i)
{
    etcdh_member *m = &h->m[i];
    snprintf(m->name, sizeof m->name, "n%d", i);
    m->client_port = free_port();
    m->peer_port = free_port();
    snprintf(m->client_url, sizeof m->client_url, "%s://127.0.0.1:%d", h->tls ? "https" : "http",
             m->client_port);
    snprintf(m->peer_url, sizeof m->peer_url, "http://127.0.0.1:%d", m->peer_port);
    size_t used = strlen(h->endpoints);
    snprintf(h->endpoints + used, sizeof h->endpoints - used, "%s%s", i ? "," : "", m->client_url);
}

int etcdh_start(etcdh *h, int n)
{
    if (!etcdh_available()) {
        h->dir[0] = '\0';
        return -ENOENT;
    }
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(h->dir, sizeof h->dir, "%s/clusterf-etcd-XXXXXX", base);
    if (!mkdtemp(h->dir)) {
        perror("etcd_harness: mkdtemp");
        return -EIO;
    }
    h->n = n;
    h->endpoints[0] = '\0';
    if (h->tls && make_certs(h) < 0)
        goto fail;
    for (int i = 0; i < n; i++)
        fill_member(h, i);
    for (int i = 0; i < n; i++)
        if ((h->m[i].pid = spawn(h, i)) < 0)
            goto fail;
    for (int i = 0; i < n; i++)
        if (wait_ready(h, i) < 0)
            goto fail;
    return 0;
fail:
    etcdh_destroy(h);
    return -EIO;
}

void etcdh_stop_member(etcdh *h, int i, int sig)
{
    if (h->m[i].pid <= 0)
        return;
    kill(-h->m[i].pid, sig);
    kill(h->m[i].pid, sig);
    waitpid(h->m[i].pid, NULL, 0);
    h->m[i].pid = 0;
}

int etcdh_restart_member(etcdh *h, int i, bool wait)
{
    etcdh_stop_member(h, i, SIGKILL);
    if ((h->m[i].pid = spawn(h, i)) < 0)
        return -1;
    return wait ? wait_ready(h, i) : 0;
}

int etcdh_leader(const etcdh *h)
{
    for (int i = 0; i < h->n; i++) {
        if (h->m[i].pid <= 0)
            continue;
        etcd_config cfg = member_config(h, i, 3000);
        etcd_client *c = NULL;
        etcd_error err = {0};
        uint64_t leader = 0, me = 0;
        bool is = etcd_client_new(&cfg, &c, &err) == 0 && etcd_status(c, &leader, &me, &err) == 0 &&
                  leader == me;
        etcd_client_free(c);
        if (is)
            return i;
    }
    return -1;
}

int64_t etcdh_key_lease(etcd_client *c, const char *key)
{
    etcd_kvs *kvs = NULL;
    etcd_error err = {0};
    if (etcd_get(c, key, strlen(key), &kvs, NULL, &err) < 0 || !kvs)
        return -1;
    int64_t lease = kvs->kvs[0].lease;
    etcd_kvs_free(kvs);
    return lease;
}

int etcdh_member_of(const etcdh *h, const char *url)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->m[i].client_url, url) == 0)
            return i;
    return -1;
}

int etcdh_ctl(etcdh *h, const char *fmt, ...)
{
    char args[1024], tls[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (h->tls)
        snprintf(tls, sizeof tls, " --cacert=%s --cert=%s --key=%s", h->ca, h->cert, h->key);
    return run("ETCDCTL_API=3 /usr/bin/etcdctl --command-timeout=20s --endpoints=%s%s %s >>%s/etcdctl.log 2>&1",
               h->endpoints, tls, args, h->dir);
}

void etcdh_destroy(etcdh *h)
{
    for (int i = 0; i < h->n; i++)
        etcdh_stop_member(h, i, SIGKILL);
    if (h->dir[0] && getenv("CLUSTERF_KEEP_ETCD") == NULL)
        run("rm -rf '%s'", h->dir);
    h->dir[0] = '\0';
}
