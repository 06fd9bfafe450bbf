/*
 * The admin console: what a client connected to the virtual database
 * "heliosproxy" as an admin user may type (SHOW POOLS, PAUSE appdb, ...),
 * parsed and answered in PostgreSQL protocol bytes. Pure: no I/O and no
 * globals, so the client connection code only sends what lands in the
 * sbuf, and tests read the bytes back.
 *
 * SHOW answers copy PgBouncer 1.25's column names, order and types where the
 * meaning is the same, because monitoring (pgbouncer_exporter, dashboards)
 * reads them by name.
 */
#ifndef HELIOS_CONSOLE_H
#define HELIOS_CONSOLE_H

#include "common/cfg.h"
#include "common/sbuf.h"
#include "proto/helios.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The names of the virtual database that reaches the console: ours, and
 * PgBouncer's, so its tooling (pgbouncer_exporter, scripts running psql -d
 * pgbouncer) works unchanged. A server database of either name cannot be
 * reached through the proxy, as with PgBouncer. */
#define CONSOLE_DBNAME           "heliosproxy"
#define CONSOLE_DBNAME_PGBOUNCER "pgbouncer"

/* SQLSTATE for a statement console_parse refused: syntax_error. PgBouncer
 * answers 08P01 (protocol_violation), which some drivers treat as fatal to
 * the connection; the console connection stays usable, so say so. */
#define CONSOLE_SQLSTATE_BAD_COMMAND "42601"

enum console_verb {
	CONSOLE_SHOW,
	CONSOLE_RELOAD,
	CONSOLE_PAUSE,
	CONSOLE_RESUME,
	CONSOLE_EMPTY,       /* empty query string (or a lone ";"): EmptyQueryResponse */
	CONSOLE_KILL,        /* KILL [db]: close its clients now, then PAUSE it */
	CONSOLE_KILL_CLIENT, /* KILL_CLIENT id: that client (id from SHOW CLIENTS) */
	CONSOLE_RECONNECT,   /* RECONNECT [db] */
	CONSOLE_DISABLE,     /* DISABLE db */
	CONSOLE_ENABLE,      /* ENABLE db */
	CONSOLE_WAIT_CLOSE,  /* WAIT_CLOSE [db] */
	CONSOLE_SHUTDOWN,    /* SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS] */
	CONSOLE_SET,         /* SET key = value */
	CONSOLE_SUSPEND,     /* parsed so the answer can say why it is refused */
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
	SHOW_TOTALS,
	SHOW_STATE,
	SHOW_MEM,
	SHOW_SOCKETS,
	SHOW_ACTIVE_SOCKETS,
	SHOW_FDS,  /* parsed so the answer can say why it is refused */
	SHOW_HELP, /* keep last: fuzz_console checks the range */
};

enum console_shutdown {
	SHUTDOWN_NOW,              /* SHUTDOWN: clients are closed, the process exits */
	SHUTDOWN_WAIT_FOR_SERVERS, /* no new clients; exit once every server is released */
	SHUTDOWN_WAIT_FOR_CLIENTS, /* no new clients; exit once every client has left */
};

struct console_cmd {
	enum console_verb verb;
	enum console_show what;         /* CONSOLE_SHOW only */
	enum console_shutdown shutdown; /* CONSOLE_SHUTDOWN only */
	uint64_t client_id;             /* CONSOLE_KILL_CLIENT only */
	char arg[64];                   /* database ("" = all), or SET's key */
	char value[256];                /* SET's value, unquoted */
};

/* Parses one statement: case-insensitive keywords, surrounding whitespace
 * and one optional trailing ';'. A database name is kept as written, or
 * unquoted from "double quotes" ("" inside is a quote); SET's value may be
 * a word, a number or a 'single-quoted string' ('' inside is a quote).
 * Returns 0, or -1 with a message for the client in err (always
 * NUL-terminated when errlen > 0): an unknown command, more than one
 * statement, a database name of 64 bytes or more, a bad KILL_CLIENT id. */
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

/* True for the statements a stats_users member may run: SHOW (but SHOW
 * FDS, as PgBouncer) and the empty query. */
bool console_read_only(const struct console_cmd *cmd);

/* The verb's keyword ("KILL_CLIENT", ...), for logs and CommandComplete. */
const char *console_verb_name(enum console_verb verb);

/* Maps a PgBouncer setting name (SET default_pool_size = 40) onto the
 * HeliosProxy key and the factor its value is multiplied by (seconds to
 * milliseconds: 1000). A name that is already a HeliosProxy key comes back
 * as it is with factor 1. NULL for a PgBouncer name with no live
 * counterpart. */
const char *console_set_key(const char *name, int *factor);

/* CommandComplete with the verb's tag ("RELOAD", "KILL", ...), or
 * EmptyQueryResponse for CONSOLE_EMPTY. Out of memory shows in out->oom. */
void console_render_done(const struct console_cmd *cmd, struct sbuf *out);

/* ErrorResponse, severity ERROR. sqlstate must be 5 characters of [0-9A-Z]
 * (anything else becomes XX000, internal_error); msg NULL is "". Out of
 * memory shows in out->oom. */
void console_render_error(const char *sqlstate, const char *msg, struct sbuf *out);

#endif
