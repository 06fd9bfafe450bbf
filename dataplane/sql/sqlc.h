/*
 * Statement classifier for transaction pooling: which statements of a simple
 * Query (or a Parse) change session state, so the pool can track and replay
 * them, pin the client, or refuse them. Pure: text in, result out, no I/O.
 */
#ifndef HELIOS_SQLC_H
#define HELIOS_SQLC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sqlc_kind {
	SQLC_OTHER,       /* nothing session-level */
	SQLC_SET,         /* SET [SESSION] name ...; name as PostgreSQL maps it (TIME ZONE ->
	                     "timezone", NAMES -> "client_encoding", SCHEMA -> "search_path",
	                     SESSION CHARACTERISTICS AS TRANSACTION READ ONLY ->
	                     "default_transaction_read_only") */
	SQLC_SET_LOCAL,   /* SET LOCAL, SET TRANSACTION, SET transaction_*: transaction-scoped,
	                     nothing to track */
	SQLC_SET_DEFAULT, /* SET name TO DEFAULT (same as RESET name) */
	SQLC_RESET,
	SQLC_RESET_ALL,
	SQLC_BEGIN,    /* BEGIN / START TRANSACTION (any options) */
	SQLC_COMMIT,   /* COMMIT, END, PREPARE TRANSACTION; see chain */
	SQLC_ROLLBACK, /* ROLLBACK, ABORT (not ROLLBACK TO SAVEPOINT: OTHER); see chain */
	SQLC_DISCARD_ALL,
	SQLC_DISCARD_TEMP,
	SQLC_DISCARD_PLANS,
	SQLC_DISCARD_SEQUENCES,
	SQLC_LISTEN,
	SQLC_UNLISTEN,
	SQLC_UNLISTEN_ALL,
	SQLC_PREPARE,
	SQLC_EXECUTE,
	SQLC_DEALLOCATE,
	SQLC_DEALLOCATE_ALL,
	SQLC_DECLARE_HOLD, /* DECLARE ... WITH HOLD; without hold it is OTHER */
	SQLC_CLOSE_CURSOR,
	SQLC_CLOSE_ALL,
	SQLC_CREATE_TEMP,  /* CREATE TEMP TABLE/VIEW/SEQUENCE [AS], SELECT INTO TEMP, and
	                      anything created in schema pg_temp (tables, functions) */
	SQLC_SESSION_AUTH, /* SET/RESET ROLE, SET/RESET SESSION AUTHORIZATION (not LOCAL) */
};

/* Calls found anywhere in a statement's tree (subqueries, CTEs, and bodies
 * that run later: PREPARE, DECLARE, CREATE VIEW). Matched on the function's
 * own name whatever its schema, so a look-alike user function counts too. */
#define SQLC_F_ADVISORY_LOCK       1u /* pg_[try_]advisory_lock[_shared] (session-level) */
#define SQLC_F_ADVISORY_UNLOCK_ALL 2u /* pg_advisory_unlock_all() */
#define SQLC_F_ADVISORY_UNLOCK     4u /* pg_advisory_unlock[_shared] */
/* set_config(n, v, l) unless l is the literal true: a session GUC change the
 * pool cannot replay */
#define SQLC_F_SET_CONFIG 8u

#define SQLC_NAME_MAX  128 /* a dotted GUC name of two 63-byte parts fits */
#define SQLC_MAX_STMTS 32
/* Longest single statement handed to the parser, and deepest tree unpacked.
 * libpg_query and protobuf-c recurse once per tree level (measured: up to
 * 180 bytes of stack per input byte, and ~1 KB per level when unpacking), so
 * these two bounds keep sqlc_classify within 3 MB of stack on any input
 * (2.9 MB measured for 16 KB of "+1"); worker threads need that much.
 * sqlscan.h enforces both, for sqlc and pipeline/analyze.c alike. */
#define SQLC_MAX_STMT_LEN (16u * 1024)
#define SQLC_MAX_DEPTH    1000

struct sqlc_stmt {
	enum sqlc_kind kind;
	unsigned flags; /* SQLC_F_* found in this statement */
	/* Byte range of the statement in the input: leading whitespace and
	 * comments, trailing whitespace, a trailing -- comment and the ';' are
	 * left out, so the text can be replayed and joined with "; ". */
	uint32_t loc, len;
	/* GUC name (lower-cased: GUC names are case-insensitive), channel,
	 * prepared statement, cursor or temp relation name (as the parser folds
	 * identifiers: unquoted lower-cased, quoted kept); "" if none. */
	char name[SQLC_NAME_MAX];
	/* name is not a usable key: it did not fit, or the statement sets
	 * several GUCs at once (SET SESSION CHARACTERISTICS AS TRANSACTION
	 * ISOLATION LEVEL ..., READ ONLY); replaying it is fine, tracking it by
	 * name is not, so pin instead. */
	bool name_incomplete;
	bool with_hold; /* DECLARE ... WITH HOLD */
	bool chain;     /* COMMIT/ROLLBACK AND CHAIN: a new transaction is already open */
};

struct sqlc_result {
	int n;            /* statements stored (up to SQLC_MAX_STMTS) */
	bool more_stmts;  /* the text held more than SQLC_MAX_STMTS statements */
	bool parse_error; /* not valid SQL: nothing runs; forward it, the server answers */
	unsigned flags;   /* OR of the flags of all statements, including those past n */
	struct sqlc_stmt stmts[SQLC_MAX_STMTS];
};

/*
 * Cheap pre-check on raw text (no allocation, linear time): false only when
 * sqlc_classify would find nothing but SQLC_OTHER statements without flags,
 * so the caller can skip parsing. True when a statement starts (after
 * whitespace, comments and '(') with SET RESET BEGIN START COMMIT END ROLLBACK
 * ABORT DISCARD LISTEN UNLISTEN PREPARE EXECUTE DEALLOCATE DECLARE CLOSE
 * CREATE; when "advisory" or "set_config" appears anywhere, or a U&"..."
 * identifier (which could spell either); or when INTO is followed by TEMP,
 * TEMPORARY, LOCAL, GLOBAL, TABLE or pg_temp. It does not lex strings, so it
 * may say true too often (a ';' or keyword inside a literal), never false
 * wrongly. sql need not be NUL-terminated.
 */
bool sqlc_maybe_interesting(const char *sql, size_t len);

/*
 * Classifies the NUL-terminated sql into *out. Returns 0 (a syntax error is
 * a success with out->parse_error set and out->n == 0); -EINVAL on NULL
 * arguments; -E2BIG when a statement is longer than SQLC_MAX_STMT_LEN or
 * nests deeper than SQLC_MAX_DEPTH; -ENOMEM when the parse tree cannot be
 * unpacked; -EPROTO if libpg_query's output is malformed. On any error the effect of the text is
 * unknown: forward it and pin the client, as if it changed session state. Thread-safe (libpg_query
 * keeps per-thread memory contexts).
 * The text is lexed as with standard_conforming_strings on, the default: with
 * it off the server reads 'a\'...' differently and may split statements where
 * this did not, so the pool must pin a session that turns it off (that SET is
 * reported as SQLC_SET "standard_conforming_strings").
 */
__attribute__((warn_unused_result)) int sqlc_classify(const char *sql, struct sqlc_result *out);

/* Name of a kind for logs and helioctl ("set", "begin", ...). */
const char *sqlc_kind_str(enum sqlc_kind kind);

#endif
