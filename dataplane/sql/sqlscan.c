/*
 * Shared libpg_query plumbing (see sqlscan.h). The text scanning here follows
 * PostgreSQL's lexer rules for whitespace and comments; everything else
 * defers to libpg_query's own scanner and parser.
 */
#include "dataplane/sql/sqlscan.h"

#include <errno.h>
#include <string.h>

#include "dataplane/sql/sqlc.h" /* SQLC_MAX_STMT_LEN, SQLC_MAX_DEPTH */

/* ---- Lexical helpers (PostgreSQL scan.l rules) ---- */

bool sqlscan_is_space(unsigned char c)
{
	/* scan.l's {space}, plus \v (newer servers accept it; PostgreSQL 15's
	 * lexer rejects it, so such text never parses and skipping it is moot) */
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t sqlscan_skip_blank(const char *s, size_t len, size_t pos, bool parens, size_t *budget)
{
	while (pos < len) {
		if (*budget == 0)
			return SIZE_MAX;
		(*budget)--;
		unsigned char c = (unsigned char)s[pos];
		if (sqlscan_is_space(c) || (parens && c == '(')) {
			pos++;
		} else if (c == '-' && pos + 1 < len && s[pos + 1] == '-') {
			while (pos < len && s[pos] != '\n' && s[pos] != '\r' && *budget) {
				(*budget)--;
				pos++;
			}
		} else if (c == '/' && pos + 1 < len && s[pos + 1] == '*') {
			unsigned depth = 1;
			pos += 2;
			while (depth) {
				if (pos + 1 >= len || *budget == 0)
					return SIZE_MAX;
				(*budget)--;
				if (s[pos] == '/' && s[pos + 1] == '*') {
					depth++;
					pos += 2;
				} else if (s[pos] == '*' && s[pos + 1] == '/') {
					depth--;
					pos += 2;
				} else {
					pos++;
				}
			}
		} else {
			return pos;
		}
	}
	return pos;
}

/* ---- Statement ranges ---- */

void sqlscan_toks_free(struct sqlscan_toks *t)
{
	if (t->res)
		pg_query__scan_result__free_unpacked(t->res, NULL);
	if (t->tried)
		pg_query_free_scan_result(t->raw);
}

/*
 * End of the last real token in [start, end): a trailing "-- comment" would
 * swallow whatever the caller appends when replaying, so it must go, and
 * only the real lexer knows whether a "--" is inside a literal.
 */
static uint32_t end_without_comment(const char *sql, struct sqlscan_toks *t, uint32_t start,
                                    uint32_t end)
{
	if (!t->tried) {
		t->tried = true;
		t->raw = pg_query_scan(sql);
		if (!t->raw.error)
			t->res = pg_query__scan_result__unpack(NULL, t->raw.pbuf.len,
			                                       (const uint8_t *)t->raw.pbuf.data);
	}
	if (!t->res)
		return end;
	/* tokens are in order: binary search the last one starting before end */
	size_t lo = 0, hi = t->res->n_tokens;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((uint32_t)t->res->tokens[mid]->start < end)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo > 0) {
		const PgQuery__ScanToken *tk = t->res->tokens[--lo];
		if ((uint32_t)tk->start < start)
			break;
		if (tk->token != PG_QUERY__TOKEN__SQL_COMMENT &&
		    tk->token != PG_QUERY__TOKEN__C_COMMENT)
			return (uint32_t)tk->end;
	}
	return end;
}

void sqlscan_stmt_range(const char *sql, size_t total, struct sqlscan_toks *t,
                        const PgQuery__RawStmt *rs, uint32_t *loc, uint32_t *len)
{
	size_t start = rs->stmt_location > 0 ? (size_t)rs->stmt_location : 0;
	size_t end = rs->stmt_len > 0 ? start + (size_t)rs->stmt_len : total;
	size_t budget = SIZE_MAX;

	if (start > total)
		start = total;
	if (end > total || end < start)
		end = total;
	/* The parser's range starts right after the previous ';', so it
	 * includes the whitespace and comments (hints) in between. The text
	 * parsed, so every comment there is terminated. */
	size_t s = sqlscan_skip_blank(sql, end, start, false, &budget);
	if (s != SIZE_MAX)
		start = s;
	if (memmem(sql + start, end - start, "--", 2))
		end = end_without_comment(sql, t, (uint32_t)start, (uint32_t)end);
	while (end > start && sqlscan_is_space((unsigned char)sql[end - 1]))
		end--;
	*loc = (uint32_t)start;
	*len = (uint32_t)(end - start);
}

/* ---- Bounds ---- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -EPROTO;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -EPROTO;
}

int sqlscan_tree_depth_ok(const uint8_t *buf, size_t len)
{
	struct {
		const uint8_t *end;
		const ProtobufCMessageDescriptor *desc;
	} st[SQLC_MAX_DEPTH];
	unsigned sp = 1;
	const uint8_t *p = buf;

	st[0].end = buf + len;
	st[0].desc = &pg_query__parse_result__descriptor;
	while (sp) {
		if (p == st[sp - 1].end) {
			sp--;
			continue;
		}
		uint64_t key, v;
		if (read_varint(&p, st[sp - 1].end, &key) < 0)
			return -EPROTO;
		switch (key & 7) {
		case 0: /* varint */
			if (read_varint(&p, st[sp - 1].end, &v) < 0)
				return -EPROTO;
			break;
		case 1: /* 64-bit */
		case 5: /* 32-bit */ {
			size_t w = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(st[sp - 1].end - p) < w)
				return -EPROTO;
			p += w;
			break;
		}
		case 2: { /* length-delimited: a sub-message, a string or packed scalars */
			if (read_varint(&p, st[sp - 1].end, &v) < 0 ||
			    v > (uint64_t)(st[sp - 1].end - p) || key >> 3 > UINT32_MAX)
				return -EPROTO;
			const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
			    st[sp - 1].desc, (unsigned)(key >> 3));
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (sp == SQLC_MAX_DEPTH)
					return -E2BIG;
				st[sp].end = p + v;
				st[sp].desc = f->descriptor;
				sp++;
			} else {
				p += v;
			}
			break;
		}
		default:
			return -EPROTO;
		}
	}
	return 0;
}

int sqlscan_check_stmt_lengths(const char *sql, size_t total, int max_stmts, bool *lex_error)
{
	PgQuerySplitResult sp = pg_query_split_with_scanner(sql);
	int rc = 0;

	if (sp.error) {
		*lex_error = true;
		goto out;
	}
	if (sp.n_stmts > max_stmts) {
		rc = -E2BIG;
		goto out;
	}
	for (int i = 0; i < sp.n_stmts; i++) {
		size_t loc = (size_t)sp.stmts[i]->stmt_location;
		size_t len = sp.stmts[i]->stmt_len ? (size_t)sp.stmts[i]->stmt_len : total - loc;
		if (len > SQLC_MAX_STMT_LEN) {
			rc = -E2BIG;
			goto out;
		}
	}
out:
	pg_query_free_split_result(sp);
	return rc;
}
