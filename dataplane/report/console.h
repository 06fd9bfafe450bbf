/*
 * The admin console: what a client connected to the virtual database
 * "heliosproxy" as an admin user may type (SHOW POOLS, PAUSE appdb, ...),
 * parsed and answered in PostgreSQL protocol bytes. Pure: no I/O and no
 * globals, so the client connection code only sends what lands in the
 * sbuf, and tests read the bytes back.
 *
 * SHOW answers copy PgBouncer 1.18's column names, order and types where the
 * meaning is the same, because monitoring (pgbouncer_exporter, dashboards)
 * reads them by name.
 */
#ifndef HELIOS_CONSOLE_H
#define HELIOS_CONSOLE_H

#include "common/cfg.h"
#include "common/sbuf.h"
#include "proto/helios.pb-c.h"

#include <stddef.h>

/* The name of the virtual database that reaches the console. */
#define CONSOLE_DBNAME "heliosproxy"

/* SQLSTATE for a statement console_parse refused: syntax_error. PgBouncer
 * answers 08P01 (protocol_violation), which some drivers treat as fatal to
 * the connection; the console connection stays usable, so say so. */
#define CONSOLE_SQLSTATE_BAD_COMMAND "42601"

enum console_verb {
	CONSOLE_SHOW,
	CONSOLE_RELOAD,
	CONSOLE_PAUSE,
	CONSOLE_RESUME,
	CONSOLE_EMPTY, /* empty query string (or a lone ";"): EmptyQueryResponse */
};

enum console_show {
	SHOW_POOLS,
	SHOW_CLIENTS,
	SHOW_SERVERS,
	SHOW_STATS,
	SHOW_STATS_TOTALS,
	SHOW_STATS_AVERAGES,
	SHOW_DATABASES,
	SHOW_CONFIG,
	SHOW_VERSION,
	SHOW_LISTS,
	SHOW_USERS,
	SHOW_HELP,
};

struct console_cmd {
	enum console_verb verb;
	enum console_show what; /* CONSOLE_SHOW only */
	char arg[64];           /* PAUSE/RESUME database, "" = all */
};

/* Parses one statement: case-insensitive keywords, surrounding whitespace
 * and one optional trailing ';'. The PAUSE/RESUME database is kept as
 * written, or unquoted from "double quotes" ("" inside is a quote).
 * Returns 0, or -1 with a message for the client in err (always
 * NUL-terminated when errlen > 0): an unknown command, more than one
 * statement, a database name of 64 bytes or more. */
int console_parse(const char *sql, struct console_cmd *cmd, char *err, size_t errlen);

/* The SHOW subject's keyword ("POOLS", "STATS_TOTALS", ...), for logs. */
const char *console_show_name(enum console_show what);

/* Appends RowDescription, one DataRow per row and CommandComplete "SHOW" to
 * out, from a detailed report (client_list / server_list filled for SHOW
 * CLIENTS / SERVERS) and the running config. r or c may be NULL: the answer
 * then has the columns and the rows that need neither. No ReadyForQuery.
 * Returns 0, or -1 when out ran out of memory (out->oom) or cmd is not a
 * SHOW. */
int console_render_show(const struct console_cmd *cmd, const Helios__StatsReport *r,
                        const struct cfg *c, struct sbuf *out);

/* CommandComplete "RELOAD" / "PAUSE" / "RESUME" (and "SHOW"), or
 * EmptyQueryResponse for CONSOLE_EMPTY. Out of memory shows in out->oom. */
void console_render_done(const struct console_cmd *cmd, struct sbuf *out);

/* ErrorResponse, severity ERROR. sqlstate must be 5 characters of [0-9A-Z]
 * (anything else becomes XX000, internal_error); msg NULL is "". Out of
 * memory shows in out->oom. */
void console_render_error(const char *sqlstate, const char *msg, struct sbuf *out);

#endif
