/* lb_dump.c -- test helper: an lb_table as text (see lb_dump.h). */
#include "lb_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *lb_dump(const lb_table *t, const char *owner)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    for (size_t i = 0; i < t->n_services; i++) {
        const lb_service *s = &t->services[i];
        char sb[80], db[80];
        if (owner && strcmp(owner, s->owner) != 0)
            continue;
        fprintf(f, "%s %s flags=0x%x timeout=%u netmask=%u owner=%s\n", lb_service_str(s, sb, sizeof sb),
                s->sched, s->flags, s->timeout, s->netmask, s->owner);
        for (size_t j = 0; j < s->n_dests; j++)
            fprintf(f, "  -> %s %s %u\n", lb_dest_str(&s->dests[j], db, sizeof db),
                    lb_fwd_name(s->dests[j].fwd), s->dests[j].weight);
    }
    if (fclose(f) != 0 || !buf)
        abort();
    return buf;
}
