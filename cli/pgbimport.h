/*
 * helioctl import-pgbouncer internals, shared by pgbimport.c (driver,
 * report, output), pgbimport_settings.c ([pgbouncer]) and pgbimport_db.c
 * ([databases], [users]).
 */
#ifndef HELIOS_PGBIMPORT_H
#define HELIOS_PGBIMPORT_H

#include "cli/helioctl.h"
#include "cli/pgbini.h"
#include "common/sbuf.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define PGBI_MAX_NODES 64
#define PGBI_MAX_PAIRS 32

/* Where a mapped key goes in the TOML. */
enum pgbi_sect { S_TOP, S_POOL, S_AUTH, S_TLS, S_N };
extern const char *const pgbi_sect_name[S_N]; /* "" for the top level */

enum pgbi_kind {
	K_INT,       /* integer as is */
	K_SECS,      /* PgBouncer seconds (may have a fraction) -> whole seconds */
	K_MS,        /* PgBouncer seconds -> milliseconds */
	K_BOOL,      /* 0/1, yes/no, on/off, true/false */
	K_STR,       /* string as is */
	K_PATH,      /* file name, made absolute against the ini's folder */
	K_SPECIAL,   /* handled by its own code below */
	K_NONE,      /* no HeliosProxy key: why says what to do instead */
	K_NOTNEEDED, /* HeliosProxy does it always: why says how */
};

struct pgbi_node {
	char host[256];
	int port;
	char name[64];
};

struct pgbi_row {
	size_t order, seq; /* entry index (SIZE_MAX: a default), then arrival */
	char *src, *what, *msg;
	const char *status;
};

struct imp {
	const char *ini_path, *out_path, *userlist, *hba;
	char ini_dir[PATH_MAX], out_stem[PATH_MAX];
	struct pgbini ini;
	struct table rep;
	struct sbuf sect[S_N], rules, nodes, dbs, users, head; /* rules: [[auth.rules]] */
	struct pgbi_node node[PGBI_MAX_NODES];
	size_t n_nodes;
	unsigned n_mapped, n_default, n_unmapped, n_notneeded, n_errors;
	const char *unix_dir;    /* unix_socket_dir: where host-less databases connect */
	char hba_path[PATH_MAX]; /* translated hba file to write, if any */
	struct sbuf hba_text;
	bool failed; /* an error that makes the output unusable */
	bool oom;
	struct pgbi_row *rows; /* the report, sorted before it is printed */
	size_t n_rows, cap_rows;
};

/* One report row: e (NULL = a PgBouncer default) is where the key came
 * from, what names it ("[pgbouncer] listen_port"), status is mapped,
 * default, not-needed, not-mapped or error (which makes the run fail). */
__attribute__((format(printf, 5, 6))) void pgbi_report(struct imp *im, const struct pgbini_ent *e,
                                                       const char *what, const char *status,
                                                       const char *fmt, ...);
/* s as a TOML basic string, quotes included. */
void pgbi_toml_str(struct sbuf *b, const char *s);
/* PgBouncer values: 0/1 yes/no on/off true/false; a whole number >= 0;
 * seconds with an optional fraction. 0 or -EINVAL. */
int pgbi_parse_bool(const char *v, bool *out);
int pgbi_parse_long(const char *v, long *out);
int pgbi_parse_secs(const char *v, double *out);
/* v made absolute against the ini's folder ("" when too long). */
void pgbi_path_value(const struct imp *im, const char *v, char *out, size_t cap);
/* The last entry of key in section (key case-insensitive), or NULL. */
const struct pgbini_ent *pgbi_find_last(const struct imp *im, const char *section, const char *key);
const char *pgbi_val_of(const struct imp *im, const char *key, const char *def);

/* [pgbouncer] into the sections, PgBouncer defaults, listen and auth. */
void pgbi_map_pgbouncer(struct imp *im);
/* [databases] into [[nodes]] and [[databases]], [users] into [[users]]. */
void pgbi_map_sections(struct imp *im);

#endif
