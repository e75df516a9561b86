/* ctl_int.h -- helpers shared by the clusterfctl commands: reading the config, aligned
 * tables, JSON output. */
#ifndef CLUSTERF_CTL_INT_H
#define CLUSTERF_CTL_INT_H

#include "ctl/ctl.h"

#include <json-c/json.h>

/* What reading the config found, besides the store itself. */
typedef struct ctl_report {
    config_strs errors;   /* "<key>: <field>: <problem> (<source>)" per invalid key */
    config_strs warnings; /* unknown keys, unknown fields, cleared host bits */
    /* Invalid etcd keys whose last valid value clusterfctl cannot find (history compacted, too
     * long a run of invalid versions, an etcd error on the way): clusterf-ipvs keeps whatever
     * it had for them, which may be a value or nothing. One "<key>: <reason>" each, the key
     * relative to the prefix ("services/web/frontend: invalid since revision 7 ..."). */
    config_strs unknown;
    int64_t revision;     /* etcd revision read at; 0 without etcd */
    size_t etcd_keys, local_keys;
} ctl_report;

void ctl_report_free(ctl_report *r);

/* The reason key (relative) is unknown, or NULL when it is not one of rep's unknown keys. */
const char *ctl_report_unknown(const ctl_report *rep, const char *key);
/* One "unknown: <key>: <reason>; ..." line per unknown key of rep on out. */
void ctl_print_unknown(const ctl_report *rep, FILE *out);

/* Read etcd (unless o->no_etcd) and the local tree into a new store. Returns 0 and *out, or
 * -errno after printing the reason (naming the endpoint or flag) to o->err. */
int ctl_load(const ctl_options *o, config_store **out, ctl_report *rep);

/* A table of strings printed with aligned columns. */
typedef struct ctl_table {
    size_t ncols;
    config_strs cells; /* row-major */
} ctl_table;

/* Append one row of t->ncols cells (NULL prints "-"). 0 or -ENOMEM. */
int ctl_table_row(ctl_table *t, const char *const *cells);
/* Print the rows, columns padded to their widest cell; the last column is not padded. */
void ctl_table_print(const ctl_table *t, FILE *out);
void ctl_table_free(ctl_table *t);

/* Print j (pretty) and a newline to out, then release j. */
void ctl_json_print(struct json_object *j, FILE *out);
/* A JSON array of the strings of l. */
struct json_object *ctl_json_strs(const config_strs *l);

/* "frontend", "backend", "route". */
const char *ctl_kind_name(enum config_kind k);

#endif
