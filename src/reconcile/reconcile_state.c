/* reconcile_state.c -- the owned set and the state file that keeps it across restarts.
 *
 * The file is text, one service per line: "<inet|inet6> <tcp|udp|sctp|fwmark> <addr> <port>
 * <fwmark>", after a header line; a line "- <the same fields>" removes a service listed
 * before it. A save appends the changes since the last one (and fsyncs), so adding one service
 * to a 10k-service set writes one line; when the appended lines outnumber the set, the file is
 * replaced atomically instead (a unique temp file in the same directory, fsync, rename, fsync
 * of the directory) so a crash leaves the old or the new set, never half of one. A damaged file (unreadable, cut short, not this format) is moved aside
 * to "<path>.corrupt" and the owned set starts empty, as on a first start. */
#include "reconcile/reconcile_int.h"

#include "common/vec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

int reconcile_foreach_owned(const reconcile *r,
                            int (*fn)(const struct ipvs_service *svc, void *ctx), void *ctx)
{
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->owned, &pos, &e)) {
        const svc_id *id = e->val;
        struct ipvs_service svc;
        memset(&svc, 0, sizeof svc);
        svc.af = id->af;
        svc.protocol = id->protocol;
        svc.port = id->port;
        svc.fwmark = id->fwmark;
        memcpy(svc.addr, id->addr, sizeof svc.addr);
        int rc = fn(&svc, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

/* Note a change for the next save (a failed note makes it rewrite the whole file). */
static void journal_note(reconcile *r, const svc_id *id, bool added)
{
    if (r->journal_reset)
        return;
    if (vec_grow((void **)&r->journal, &r->cap_journal, r->n_journal + 1,
                 sizeof *r->journal) < 0) {
        r->journal_reset = true;
        return;
    }
    r->journal[r->n_journal++] = (struct owned_change){*id, added};
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
    journal_note(r, id, true);
    return 0;
}

void owned_remove(reconcile *r, const svc_id *id)
{
    svc_id *copy = bytemap_del(&r->owned, id, sizeof *id);
    if (copy) {
        free(copy);
        r->owned_dirty = true;
        journal_note(r, id, false);
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
    r->journal_reset = true;
    r->n_journal = 0;
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

/* Parse one state line (its '\n' right after the five fields) into id; 0 or -EINVAL. */
static int state_parse_line(const char *line, svc_id *id)
{
    char fam[8], proto[8], addr[64];
    unsigned port;
    unsigned long fwmark;
    int end = 0;
    if (sscanf(line, "%7s %7s %63s %u %lu%n", fam, proto, addr, &port, &fwmark, &end) != 5 ||
        strcmp(line + end, "\n") != 0 || port > 65535 || fwmark > 0xffffffffUL)
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

/* 0 when path leaves room for the temp and ".corrupt" names, else -ENAMETOOLONG (err set). */
static int state_check_path(const char *path, char *err, size_t errlen)
{
    size_t max = PATH_MAX - sizeof ".corrupt"; /* the longer suffix (".XXXXXX" is 7) */
    if (strlen(path) <= max)
        return 0;
    snprintf(err, errlen, "state file path is too long (%zu bytes, at most %zu): %.100s...",
             strlen(path), max, path);
    return -ENAMETOOLONG;
}

/* Read the owned set from the open file f. 0, -EINVAL for a damaged file (why says how),
 * -EIO for a read error, or -ENOMEM. */
static int state_read(reconcile *r, FILE *f, char *why, size_t whylen)
{
    char line[256];
    int rc = 0, lineno = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        svc_id id;
        if (!strchr(line, '\n'))
            snprintf(why, whylen, "line %d is cut short or too long", lineno);
        else if (lineno == 1 && strcmp(line, STATE_HEADER "\n") != 0)
            snprintf(why, whylen, "line 1 is not the header \"%s\"", STATE_HEADER);
        else if (lineno == 1)
            continue;
        else if (state_parse_line(line + 2 * (line[0] == '-' && line[1] == ' '), &id) < 0)
            snprintf(why, whylen, "line %d is not \"[- ]<inet|inet6> <tcp|udp|sctp|fwmark> "
                     "<addr> <port> <fwmark>\"", lineno);
        else if (line[0] == '-')
            owned_remove(r, &id);
        else
            rc = owned_add(r, &id);
        if (rc == 0 && why[0])
            rc = -EINVAL;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(why, whylen, "read failed: %s", strerror(errno));
        rc = -EIO;
    }
    if (rc == 0 && lineno == 0) {
        snprintf(why, whylen, "the file is empty (no header)");
        rc = -EINVAL;
    }
    /* Lines beyond one per owned service came from appended changes. */
    r->journal_lines = lineno > 1 && (size_t)(lineno - 1) > r->owned.n
                     ? (size_t)(lineno - 1) - r->owned.n : 0;
    return rc;
}

/* A state file that cannot be used: forget what was read, move it to "<path>.corrupt" and
 * describe both in err. Returns RECONCILE_STATE_SET_ASIDE. */
static int state_set_aside(reconcile *r, const char *why, char *err, size_t errlen)
{
    char aside[PATH_MAX];
    owned_clear(r);
    r->owned_dirty = false;
    snprintf(aside, sizeof aside, "%s.corrupt", r->state_path); /* fits: state_check_path */
    if (!r->kernel.apply) { /* read-only: the daemon sets it aside, not a viewer */
        snprintf(err, errlen, "state file %s is damaged (%s)", r->state_path, why);
        return RECONCILE_STATE_SET_ASIDE;
    }
    if (rename(r->state_path, aside) == 0)
        snprintf(err, errlen, "state file %s is damaged (%s); moved to %s; owned services "
                 "unknown: owning what the config names, as on a first start",
                 r->state_path, why, aside);
    else
        snprintf(err, errlen, "state file %s is damaged (%s); could not move it to %s (%s), "
                 "it will be replaced; owned services unknown: owning what the config names, "
                 "as on a first start", r->state_path, why, aside, strerror(errno));
    return RECONCILE_STATE_SET_ASIDE;
}

/* Errors that say nothing about the file itself: fail rather than set a good file aside. */
static bool state_error_is_transient(int e)
{
    return e == ENOMEM || e == EMFILE || e == ENFILE || e == EINTR;
}

int state_load(reconcile *r, char *err, size_t errlen)
{
    if (!r->state_path)
        return 0;
    char why[160] = "";
    int rc = state_check_path(r->state_path, err, errlen);
    if (rc < 0)
        return rc;
    FILE *f = fopen(r->state_path, "r");
    if (!f && errno == ENOENT)
        return 0;
    if (!f && state_error_is_transient(errno)) {
        rc = -errno;
        snprintf(err, errlen, "state file %s: %s", r->state_path, strerror(errno));
        return rc;
    }
    if (!f)
        snprintf(why, sizeof why, "cannot open it: %s", strerror(errno));
    else
        rc = state_read(r, f, why, sizeof why);
    if (f)
        fclose(f);
    r->owned_dirty = false;
    r->n_journal = 0;
    r->journal_reset = false;
    r->state_ok = f && !why[0] && rc == 0;
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "state file %s: out of memory", r->state_path);
        return rc;
    }
    return why[0] ? state_set_aside(r, why, err, errlen) : 0;
}

/* One service line ("- " first for a removal). */
static void state_write_id(FILE *f, const svc_id *id, bool removed)
{
    char addr[INET6_ADDRSTRLEN] = "-";
    if (!id->fwmark)
        inet_ntop(id->af, id->addr, addr, sizeof addr);
    fprintf(f, "%s%s %s %s %u %u\n", removed ? "- " : "", id->af == AF_INET6 ? "inet6" : "inet",
            proto_word(id), addr, id->port, id->fwmark);
}

/* The directory part of path ("." when there is none) into dir. 0 or -ENAMETOOLONG. */
static int state_dirname(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (len + 2 > size)
        return -ENAMETOOLONG;
    if (!slash)
        return snprintf(dir, size, "."), 0;
    memcpy(dir, path, len);
    dir[len] = '\0';
    return 0;
}

/* mkdir -p of dir (modified while working, restored). 0 or -errno. */
static int state_mkdirs(char *dir)
{
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
        *p = c;
        if (rc < 0 || c == '\0')
            return rc;
    }
}

/* fsync the directory, so a rename in it survives a crash. 0 or -errno. */
static int state_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Write the header and every owned service to fd, then fsync it; fd is closed. 0 or -errno. */
static int state_write_fd(reconcile *r, int fd)
{
    FILE *f = fchmod(fd, 0644) == 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    fprintf(f, "%s\n", STATE_HEADER);
    size_t pos = 0;
    bytemap_entry *e = NULL;
    while (bytemap_next(&r->owned, &pos, &e))
        state_write_id(f, e->val, false);
    int rc = fflush(f) != 0 || fsync(fileno(f)) != 0 ? -errno : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Replace the state file: a unique temp file in its directory, written and fsynced, renamed
 * over it, then the directory fsynced. 0 or -errno (err says which step failed). */
static int state_replace(reconcile *r, char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    int rc = state_check_path(r->state_path, err, errlen);
    if (rc < 0 || (rc = state_dirname(r->state_path, dir, sizeof dir)) < 0)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", r->state_path); /* fits: state_check_path */
    rc = state_mkdirs(dir);
    int fd = rc < 0 ? -1 : mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(err, errlen, "state file %s: cannot create a temp file in %s: %s",
                 r->state_path, dir, strerror(-rc));
        return rc;
    }
    rc = state_write_fd(r, fd);
    if (rc == 0 && rename(tmp, r->state_path) < 0)
        rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "state file %s: %s", r->state_path, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    if ((rc = state_sync_dir(dir)) < 0)
        snprintf(err, errlen, "state file %s: fsync of %s: %s", r->state_path, dir,
                 strerror(-rc));
    return rc;
}

/* Append the journal to the state file and fsync it. 0 or -errno (err set). */
static int state_append(reconcile *r, char *err, size_t errlen)
{
    int fd = open(r->state_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "a");
    int rc = 0;
    if (!f) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
    } else {
        for (size_t i = 0; i < r->n_journal; i++)
            state_write_id(f, &r->journal[i].id, !r->journal[i].added);
        rc = fflush(f) != 0 || fsync(fileno(f)) != 0 ? -errno : 0;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
    }
    if (rc < 0)
        snprintf(err, errlen, "state file %s: append: %s", r->state_path, strerror(-rc));
    return rc;
}

int state_save(reconcile *r, char *err, size_t errlen)
{
    if (!r->state_path || !r->owned_dirty)
        return 0;
    bool whole = !r->state_ok || r->journal_reset ||
                 r->journal_lines + r->n_journal > r->owned.n + 64;
    int rc = whole ? state_replace(r, err, errlen) : state_append(r, err, errlen);
    if (rc == 0) {
        r->journal_lines = whole ? 0 : r->journal_lines + r->n_journal;
        r->n_journal = 0;
        r->journal_reset = false;
        r->state_ok = true;
        r->owned_dirty = false;
    } else {
        r->state_ok = false; /* the file may hold part of it: rewrite it whole next time */
    }
    return rc;
}
