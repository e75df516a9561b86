/* reconcile_state.c -- the owned set and the state file that keeps it across restarts.
 *
 * The file is text, one service per line: "<inet|inet6> <tcp|udp|sctp|fwmark> <addr> <port>
 * <fwmark>", after a header line. It is replaced atomically (write a temp file, fsync, rename)
 * so a crash leaves the old or the new set, never half of one. */
#include "reconcile/reconcile_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_HEADER "# clusterf-ipvs owned IPVS services v1"

void svc_id_of(const struct ipvs_service *s, svc_id *out)
{
    memset(out, 0, sizeof *out);
    out->af = s->af;
    if (s->fwmark) {
        out->fwmark = s->fwmark;
        return;
    }
    out->protocol = s->protocol;
    out->port = s->port;
    memcpy(out->addr, s->addr, s->af == AF_INET6 ? 16 : 4);
}

bool owned_has(const reconcile *r, const svc_id *id)
{
    return bytemap_get(&r->owned, id, sizeof *id) != NULL;
}

int owned_add(reconcile *r, const svc_id *id)
{
    if (owned_has(r, id))
        return 0;
    svc_id *copy = malloc(sizeof *copy);
    if (!copy)
        return -ENOMEM;
    *copy = *id;
    if (bytemap_put(&r->owned, copy, sizeof *copy, copy) < 0) {
        free(copy);
        return -ENOMEM;
    }
    r->owned_dirty = true;
    return 0;
}

void owned_remove(reconcile *r, const svc_id *id)
{
    svc_id *copy = bytemap_del(&r->owned, id, sizeof *id);
    if (copy) {
        free(copy);
        r->owned_dirty = true;
    }
}

void owned_clear(reconcile *r)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->owned, &pos, &e))
        free(e->val);
    bytemap_clear(&r->owned);
    r->owned_dirty = true;
}

static const char *proto_word(const svc_id *id)
{
    if (id->fwmark)
        return "fwmark";
    switch (id->protocol) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_SCTP: return "sctp";
    }
    return "?";
}

/* Parse one state line into id; 0 or -EINVAL. */
static int state_parse_line(const char *line, svc_id *id)
{
    char fam[8], proto[8], addr[64];
    unsigned port;
    unsigned long fwmark;
    if (sscanf(line, "%7s %7s %63s %u %lu", fam, proto, addr, &port, &fwmark) != 5 ||
        port > 65535 || fwmark > 0xffffffffUL)
        return -EINVAL;
    struct ipvs_service s = {0};
    s.af = strcmp(fam, "inet6") == 0 ? AF_INET6 : strcmp(fam, "inet") == 0 ? AF_INET : 0;
    if (!s.af)
        return -EINVAL;
    if (strcmp(proto, "fwmark") == 0) {
        if (!fwmark)
            return -EINVAL;
        s.fwmark = (uint32_t)fwmark;
    } else {
        s.protocol = strcmp(proto, "tcp") == 0 ? IPPROTO_TCP
                   : strcmp(proto, "udp") == 0 ? IPPROTO_UDP
                   : strcmp(proto, "sctp") == 0 ? IPPROTO_SCTP : 0;
        if (!s.protocol || inet_pton(s.af, addr, s.addr) != 1)
            return -EINVAL;
        s.port = (uint16_t)port;
    }
    svc_id_of(&s, id);
    return 0;
}

int state_load(reconcile *r, char *err, size_t errlen)
{
    if (!r->state_path)
        return 0;
    FILE *f = fopen(r->state_path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        snprintf(err, errlen, "state file %s: %s", r->state_path, strerror(errno));
        return rc;
    }
    char line[256];
    int rc = 0, lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        svc_id id;
        if (state_parse_line(line, &id) < 0) {
            snprintf(err, errlen, "state file %s: line %d is not \"<inet|inet6> <tcp|udp|sctp|fwmark> <addr> <port> <fwmark>\"",
                     r->state_path, lineno);
            rc = -EINVAL;
        } else {
            rc = owned_add(r, &id);
        }
    }
    fclose(f);
    r->owned_dirty = false;
    return rc;
}

/* mkdir -p of the directory holding path. */
static int state_mkdirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static void state_write_id(FILE *f, const svc_id *id)
{
    char addr[INET6_ADDRSTRLEN] = "-";
    if (!id->fwmark)
        inet_ntop(id->af, id->addr, addr, sizeof addr);
    fprintf(f, "%s %s %s %u %u\n", id->af == AF_INET6 ? "inet6" : "inet", proto_word(id), addr,
            id->port, id->fwmark);
}

int state_save(reconcile *r, char *err, size_t errlen)
{
    if (!r->state_path || !r->owned_dirty)
        return 0;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->state_path);
    int rc = state_mkdirs(r->state_path);
    FILE *f = rc < 0 ? NULL : fopen(tmp, "w");
    if (!f) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "state file %s: %s", tmp, strerror(-rc));
        return rc;
    }
    fprintf(f, "%s\n", STATE_HEADER);
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->owned, &pos, &e))
        state_write_id(f, e->val);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, r->state_path) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "state file %s: %s", r->state_path, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    r->owned_dirty = false;
    return 0;
}
