/*
 * Statement analysis for query routing and the result cache: what kind of
 * statements a text holds (read, write, DDL, ...), which tables it reads and
 * writes, whether it calls functions that are not immutable, and its
 * constant-free fingerprint. Pure: text in, result out, no I/O. An LRU cache
 * of results, one per worker thread, parses each distinct text once.
 */
#ifndef HELIOS_ANALYZE_H
#define HELIOS_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum an_kind {
	/* SELECT, VALUES, TABLE, SHOW, COPY ... TO STDOUT, EXPLAIN without
	 * ANALYZE (nothing runs), EXPLAIN ANALYZE of a read; none of them with
	 * a data-modifying CTE, SELECT INTO, FOR UPDATE/SHARE or a call of a
	 * function that writes, locks or needs the session (nextval, setval,
	 * currval, pg_advisory_*, set_config, ...): those make it AN_WRITE. */
	AN_READ,
	/* INSERT, UPDATE, DELETE, MERGE, COPY FROM (and COPY TO a server file
	 * or program), SELECT INTO, locking reads, CALL, DO, NOTIFY, LOCK,
	 * REFRESH MATERIALIZED VIEW */
	AN_WRITE,
	AN_DDL, /* CREATE, ALTER, DROP, TRUNCATE, GRANT, COMMENT, ...: any other statement */
	AN_TXN, /* BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, PREPARE
	           TRANSACTION, COMMIT/ROLLBACK PREPARED */
	/* SET, RESET, LISTEN, UNLISTEN, DISCARD, VACUUM, ANALYZE, CLUSTER,
	 * REINDEX, CHECKPOINT, LOAD, SET CONSTRAINTS, PREPARE, EXECUTE,
	 * DEALLOCATE, DECLARE (AN_WRITE if its query writes or locks), FETCH,
	 * MOVE, CLOSE */
	AN_UTILITY,
};

#define AN_MAX_TABLES 32
#define AN_MAX_STMTS  32
#define AN_MAX_FUNCS  32

struct an_table {
	/* As the parser folds identifiers (unquoted lower-cased, quoted kept).
	 * "t" and "public.t" are different entries: resolving search_path is
	 * the server's business. */
	char schema[64]; /* "" when not written schema-qualified */
	char name[64];
	/* Named as the target of a data change that runs: INSERT/UPDATE/
	 * DELETE/MERGE/COPY FROM targets (also in CTEs), SELECT INTO, REFRESH
	 * MATERIALIZED VIEW, and every relation a DDL statement names outside
	 * its query (TRUNCATE, ALTER, DROP, GRANT, CREATE INDEX ON, ...).
	 * Nothing is written under EXPLAIN without ANALYZE or PREPARE. */
	bool written;
};

/* A function or operator the text calls, for a result cache to look up in
 * the server's catalog (pg_proc.provolatile). */
struct an_func {
	char schema[64]; /* "" when not written schema-qualified */
	char name[64];   /* as the parser folds it; for an operator its symbol */
	bool is_op;      /* an operator (a + b, x OPERATOR(s.=) y) */
};

struct an_stmt {
	enum an_kind kind;
	/* Byte range in the input, as sqlc reports it: leading whitespace and
	 * comments, trailing whitespace, a trailing -- comment and the ';'
	 * are left out. */
	uint32_t loc, len;
	bool begin_read_only;  /* BEGIN / START TRANSACTION ... READ ONLY */
	bool begin_read_write; /* BEGIN / START TRANSACTION ... READ WRITE */
};

struct an_result {
	/* Not valid SQL (or a NUL byte inside the text): the server runs none
	 * of it and answers with the error; route it to the primary. */
	bool parse_error;
	/* Over a bound (more than AN_MAX_STMTS statements, a statement longer
	 * than SQLC_MAX_STMT_LEN or nested deeper than SQLC_MAX_DEPTH): treat
	 * like parse_error. Either flag leaves n_stmts and n_tables 0,
	 * fingerprint 0, and the conservative kind AN_WRITE and
	 * volatile_funcs true, so a caller reading only those is still safe. */
	bool too_complex;
	/* Of the whole text: the strongest of its statements in the order
	 * WRITE > DDL > UTILITY > TXN > READ, so a text of only transaction
	 * control is AN_TXN. AN_READ when the text holds no statement. */
	enum an_kind kind;
	/* Calls a function not known to be immutable: now(), random(),
	 * nextval(), CURRENT_TIMESTAMP and the other SQL value functions,
	 * TABLESAMPLE without REPEATABLE, any user function (unknown counts as
	 * not immutable). Also set for SHOW, whose answer is session state, not
	 * table data. Operators, casts, views and column defaults are taken
	 * as they are: the text alone cannot tell. A user function may also
	 * write, so an AN_READ with this set is not known to be read-only. */
	bool volatile_funcs;
	uint64_t fingerprint; /* pg_query_fingerprint of the whole text; constants ignored */
	uint32_t n_stmts;
	struct an_stmt stmts[AN_MAX_STMTS];
	/* Distinct relations named anywhere (FROM, JOIN, subqueries, CTE
	 * bodies, DML targets, COPY, DDL), in order of first appearance; CTE
	 * names are not tables. For DDL these may be indexes, sequences or
	 * types too. DDL can change any table (DROP SCHEMA ... CASCADE), so a
	 * cache should drop everything on AN_DDL. */
	uint32_t n_tables;
	struct an_table tables[AN_MAX_TABLES];
	/* More tables than AN_MAX_TABLES (or a name too long to store): the
	 * list is incomplete, so a cache must not trust it. */
	bool tables_truncated;
	/* Every statement is a plain SELECT (VALUES, TABLE and set operations
	 * included): not EXPLAIN, SHOW, COPY or a utility. */
	bool select_only;
	/* Something not immutable that is not a named call: a SQL value
	 * function (CURRENT_TIMESTAMP, CURRENT_USER, ...), TABLESAMPLE without
	 * REPEATABLE, SHOW, DO, a call without a name. volatile_funcs is set
	 * too. A result cache that checks funcs against the catalog must still
	 * refuse these. */
	bool volatile_other;
	/* Distinct functions and operators called, in order of first
	 * appearance (casts and implicit calls are not listed). */
	uint32_t n_funcs;
	struct an_func funcs[AN_MAX_FUNCS];
	bool funcs_truncated; /* more than AN_MAX_FUNCS, or a name too long */
};

/*
 * Analyses the first len bytes of sql (no NUL terminator needed) into *out.
 * Returns 0, or -1 when out of memory (*out then says nothing). A syntax
 * error or a bound exceeded is a result (parse_error, too_complex), not a
 * failure. Thread-safe. Uses up to ~3 MB of stack (bounded like sqlc), so it
 * runs on worker threads, not on small stacks.
 */
__attribute__((warn_unused_result)) int an_analyze(const char *sql, size_t len,
                                                   struct an_result *out);

/* SipHash-1-3 of p[0..n) under a 128-bit key (the analysis cache's text
 * hash), for other tables keyed by client-chosen bytes. */
uint64_t an_siphash(const uint64_t key[2], const void *p, size_t n);

/* Name of a kind for logs ("read", "write", ...). */
const char *an_kind_str(enum an_kind kind);

/*
 * A bounded LRU of results keyed by the exact text (hash + memcmp), so each
 * distinct text is parsed once. One per worker thread: no locks. Entries are
 * stored compactly (only the statements and tables a text has).
 */
struct an_cache;

/* An empty cache holding at most max_entries texts and max_bytes of entries
 * (text plus compact result plus per-entry overhead); NULL when out of
 * memory. A text whose entry alone exceeds max_bytes is analysed every time. */
struct an_cache *an_cache_new(size_t max_entries, size_t max_bytes);
void an_cache_free(struct an_cache *c);

/* Returns the cached result for this text, analysing it on a miss; NULL only
 * when out of memory. The pointer stays valid until the next an_cache_get on
 * the same cache (or an_cache_free). */
const struct an_result *an_cache_get(struct an_cache *c, const char *sql, size_t len);

struct an_cache_stats {
	uint64_t hits, misses, evictions;
	size_t entries, bytes; /* bytes: of the entries, as bounded by max_bytes */
};
void an_cache_stats(const struct an_cache *c, struct an_cache_stats *out);

#endif
