/*
 * Plumbing shared by the modules that parse SQL with libpg_query (sqlc.c,
 * pipeline/analyze.c): PostgreSQL's lexical rules for whitespace and
 * comments, statement byte ranges, and the length and depth bounds that keep
 * the recursive parser and unpacker within a worker's stack
 * (SQLC_MAX_STMT_LEN, SQLC_MAX_DEPTH in sqlc.h). Kept in one place so every
 * caller reports ranges and enforces bounds by the same rules.
 */
#ifndef HELIOS_SQLSCAN_H
#define HELIOS_SQLSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

/* Whitespace as PostgreSQL's lexer (scan.l {space}) sees it, plus \v. */
bool sqlscan_is_space(unsigned char c);

/*
 * Skips whitespace and comments (and '(' when parens) in s[0..len) from pos.
 * Block comments nest, as in PostgreSQL. Each byte looked at costs one unit
 * of *budget, so look-aheads over untrusted text stay linear in total; pass
 * SIZE_MAX for no bound. Returns the first other position, len at the end,
 * or SIZE_MAX for an unterminated block comment (a lexical error: nothing in
 * the text runs) or when the budget runs out.
 */
size_t sqlscan_skip_blank(const char *s, size_t len, size_t pos, bool parens, size_t *budget);

/* Tokens of a whole input, scanned on first need and kept for the other
 * statements of the same text. Zero-initialise; free with sqlscan_toks_free. */
struct sqlscan_toks {
	PgQueryScanResult raw;
	PgQuery__ScanResult *res;
	bool tried;
};

void sqlscan_toks_free(struct sqlscan_toks *t);

/*
 * Byte range *loc, *len of the parsed statement rs within the NUL-terminated
 * sql of total bytes, with leading whitespace and comments, trailing
 * whitespace, a trailing -- comment and the ';' left out, so the
 * text can be replayed and joined with "; ". Only for text that parsed. t
 * caches the tokens across the statements of one text (only scanned when a
 * statement holds "--", which is rare).
 */
void sqlscan_stmt_range(const char *sql, size_t total, struct sqlscan_toks *t,
                        const PgQuery__RawStmt *rs, uint32_t *loc, uint32_t *len);

/*
 * protobuf-c's unpack recurses once per nested message with about 1 KB of
 * stack, so a legal "SELECT 1+1+...+1" of 16 KB would need 15 MB. This walks
 * the serialized ParseResult in buf[0..len) iteratively, guided by the
 * descriptors, and refuses a tree deeper than SQLC_MAX_DEPTH. Returns 0,
 * -E2BIG when too deep, or -EPROTO when the bytes are malformed.
 */
int sqlscan_tree_depth_ok(const uint8_t *buf, size_t len);

/*
 * Checks the NUL-terminated sql of total bytes before it is parsed, with the
 * scanner, which does not recurse, so the parser, which does, never sees an
 * oversized statement. Returns -E2BIG when a statement (with the comments
 * before it) is longer than SQLC_MAX_STMT_LEN or there are more than
 * max_stmts statements (INT_MAX: no limit); sets *lex_error (and returns 0)
 * when the text does not lex; 0 otherwise.
 */
int sqlscan_check_stmt_lengths(const char *sql, size_t total, int max_stmts, bool *lex_error);

#endif
