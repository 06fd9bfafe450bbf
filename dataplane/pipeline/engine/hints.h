/*
 * Routing and caching hints in SQL comments. A hint is a top-level block
 * comment whose text, after optional whitespace, starts with "helios:" (lower
 * case) followed by comma-separated key=value pairs, with whitespace allowed
 * around every token. Written with the comment brackets spaced out so this
 * comment stays valid C:
 *   SELECT * FROM t / * helios:route=replica, cache=skip * /
 * It may stand before, inside or after the statement. Keys are
 * [A-Za-z0-9_.-]+, case-insensitive; values are [A-Za-z0-9_.:-]+ (a ':' for
 * cache=ttl:N, so never in a key). Pure: text in, result out,
 * no I/O, no allocation, no global state.
 *
 * Text is lexed as PostgreSQL does, with standard_conforming_strings on (the
 * default), so comment-like text in a '...', E'...', $tag$...$tag$ string, a
 * "quoted identifier", a -- comment or a nested comment is not a hint.
 */
#ifndef HELIOS_HINTS_H
#define HELIOS_HINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hint_route {
	HINT_ROUTE_NONE,    /* no route= hint */
	HINT_ROUTE_PRIMARY, /* route=primary */
	HINT_ROUTE_REPLICA, /* route=standby or route=replica: any healthy replica */
	HINT_ROUTE_NODE,    /* route=<any other token>: the node named in hints.node */
};

#define HINT_KEY_MAX   32 /* bytes with the NUL: keys up to 31 characters */
#define HINT_NAME_MAX  64 /* bytes with the NUL: values up to 63 characters */
#define HINT_EXTRA_MAX 8

/* A pair with a key this module does not act on, kept for future features. */
struct hint_kv {
	char key[HINT_KEY_MAX];    /* lower-cased, so callers compare with strcmp */
	char value[HINT_NAME_MAX]; /* as written */
};

struct hints {
	bool found; /* at least one well-formed helios: comment */
	enum hint_route route;
	char node[HINT_NAME_MAX]; /* HINT_ROUTE_NODE: the name as written; "" otherwise */
	bool cache_skip;          /* cache=skip (any case) */
	uint32_t cache_ttl;       /* cache=ttl:N, N seconds (1..86400); 0 when absent.
	                             Other cache values are ignored. */
	uint32_t n_extra;
	struct hint_kv extra[HINT_EXTRA_MAX]; /* unknown keys, first-seen order, one slot per key */
	/* Static string for a debug log: why the last malformed hint comment
	 * was ignored, or why a single pair in an applied one was ("unknown
	 * cache value"); NULL if none. Never an error for the statement. */
	const char *ignored;
};

/*
 * Scans sql[0..len) (not necessarily NUL-terminated; pass the query text
 * without its terminator) and always fills *out. Pairs apply in text order,
 * so later ones override earlier ones, within a comment and across comments.
 * A malformed comment applies none of its pairs. The route keywords match in
 * any case; a node name keeps its case. Malformed means (the reason set):
 *   "unterminated comment"  "nested comment"  "no key=value pairs"
 *   "empty pair"  "empty key"  "missing '='"  "empty value"  "missing ','"
 *   "bad character"  "key too long"  "value too long"  "too many unknown keys"
 * (the last when a comment would make more than HINT_EXTRA_MAX unknown keys).
 * Text inside an unterminated string or comment is never a hint. When no
 * "helios:" follows a slash-star (the usual case) it returns after one
 * memchr-speed pass; otherwise it lexes only up to the last "helios:".
 */
void hints_scan(const char *sql, size_t len, struct hints *out);

/*
 * Quick check used before hints_scan: false when there is no slash-star
 * followed somewhere by "helios:", so no hint can exist (and hints_scan would
 * report nothing, not even a reason). It does not lex, so it may return true
 * falsely, never false falsely. sql need not be NUL-terminated.
 */
bool hints_maybe(const char *sql, size_t len);

#endif
