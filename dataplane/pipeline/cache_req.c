/*
 * Request reader for the result cache; see cache_req.h.
 */
#include "dataplane/pipeline/cache_req.h"

#include "dataplane/pg/pgw.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* A date/time input that means "the current time" in s[0..n): the
 * special values 'now', 'today', 'tomorrow', 'yesterday' (any case). */
static bool has_time_word(const char *s, size_t n)
{
	static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};
	for (size_t i = 0; i < n; i++) {
		char ch = (char)tolower((unsigned char)s[i]);
		if (ch != 'n' && ch != 't' && ch != 'y')
			continue;
		for (size_t k = 0; k < 4; k++) {
			size_t wl = strlen(words[k]);
			if (i + wl <= n && strncasecmp(s + i, words[k], wl) == 0)
				return true;
		}
	}
	return false;
}

/* Whether a statement's string constants hold such a value. Only text in
 * '...' strings is looked at ("known_users" is fine); a dollar-quoted
 * string is not lexed here, so a text with one is looked at whole. */
bool cache_text_has_now(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '$' && !(s[i + 1] >= '0' && s[i + 1] <= '9'))
			return has_time_word(s, n);
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\'')
			continue;
		size_t j = i + 1;
		while (j < n) {
			if (s[j] == '\\' && j + 1 < n) {
				j += 2; /* E'' escapes; elsewhere harmless: only widens the look */
				continue;
			}
			if (s[j] == '\'') {
				if (j + 1 < n && s[j + 1] == '\'') {
					j += 2;
					continue;
				}
				break;
			}
			j++;
		}
		if (has_time_word(s + i + 1, (j < n ? j : n) - i - 1))
			return true;
		i = j;
	}
	return false;
}

/* Reads a whole simple Query, or a whole [Parse] Bind [Describe] Execute
 * Sync batch with the unnamed portal and no row limit. False otherwise
 * (incomplete, another shape): not for the cache. */
bool cache_read_req(const uint8_t *in, uint32_t n, cache_stmt_fn *stmt_of, const void *arg,
                    struct cache_req *r)
{
	uint32_t off = 0;
	memset(r, 0, sizeof(*r));
	int stage = 0; /* 0 start, 1 after P, 2 after B, 3 after D, 4 after E */
	uint32_t sl = 0;
	while (off + 5 <= n) {
		uint8_t t = in[off];
		uint32_t ml = pgw_get_u32(in + off + 1);
		if (ml < 4 || ml - 4 > n - off - 5)
			return false;
		const uint8_t *b = in + off + 5;
		uint32_t bl = ml - 4, p = 0;
		off += 1 + ml;
		if (stage == 0 && t == 'Q') {
			const char *q = (const char *)b;
			const char *z = memchr(q, '\0', bl);
			if (!z || (uint32_t)(z - q) + 1 != bl)
				return false;
			r->text = q;
			r->text_len = (uint32_t)(z - q);
			r->total = off;
			r->seq[0] = 'Q';
			return true;
		}
		if (sl + 1 >= sizeof(r->seq))
			return false;
		switch (t) {
		case 'P': {
			if (stage != 0)
				return false;
			const char *name = pgw_get_str(b, bl, &p);
			if (!name || p >= bl)
				return false;
			r->pname = name;
			r->stmt_body = b + p;
			r->stmt_body_len = bl - p;
			stage = 1;
			break;
		}
		case 'B': {
			if (stage > 1)
				return false;
			const char *portal = pgw_get_str(b, bl, &p);
			const char *stmt = pgw_get_str(b, bl, &p);
			if (!portal || !stmt || portal[0])
				return false;
			if (r->pname) {
				if (strcmp(stmt, r->pname) != 0)
					return false;
			} else {
				if (!stmt[0])
					return false; /* the unnamed statement of an earlier batch
					               */
				uint32_t bl2 = 0;
				const uint8_t *body = stmt_of ? stmt_of(arg, stmt, &bl2) : NULL;
				if (!body)
					return false;
				r->stmt_body = body;
				r->stmt_body_len = bl2;
			}
			r->bind_tail = b + p;
			r->bind_tail_len = bl - p;
			stage = 2;
			break;
		}
		case 'D':
			if (stage != 2 || bl < 2 || b[0] != 'P' || b[1] != '\0' || bl != 2)
				return false;
			stage = 3;
			break;
		case 'E':
			if (stage < 2 || stage > 3 || bl != 5 || b[0] != '\0' ||
			    pgw_get_u32(b + 1) != 0)
				return false;
			stage = 4;
			break;
		case 'S':
			if (stage != 4)
				return false;
			r->seq[sl++] = 'S';
			r->ext = true;
			r->total = off;
			{
				const char *z = memchr(r->stmt_body, '\0', r->stmt_body_len);
				if (!z)
					return false;
				r->text = (const char *)r->stmt_body;
				r->text_len = (uint32_t)(z - (const char *)r->stmt_body);
			}
			return true;
		default:
			return false;
		}
		r->seq[sl++] = (char)t;
	}
	return false;
}

/* Bound text values must not be 'now'-like; the tail must be well formed. */
bool cache_bind_ok(const uint8_t *t, uint32_t n)
{
	uint32_t off = 0;
	if (n < 2)
		return false;
	uint32_t nf = (uint32_t)((t[0] << 8) | t[1]);
	off = 2;
	if (off + 2 * nf + 2 > n)
		return false;
	const uint8_t *fmts = t + off;
	off += 2 * nf;
	uint32_t np = (uint32_t)((t[off] << 8) | t[off + 1]);
	off += 2;
	if (nf > 1 && nf != np)
		return false;
	for (uint32_t i = 0; i < np; i++) {
		if (off + 4 > n)
			return false;
		int32_t l = (int32_t)pgw_get_u32(t + off);
		off += 4;
		if (l < 0)
			continue;
		if ((uint32_t)l > n - off)
			return false;
		uint32_t fi = nf == 0 ? 0 : nf == 1 ? 0 : i;
		bool text = nf == 0 || ((fmts[2 * fi] << 8) | fmts[2 * fi + 1]) == 0;
		if (text && has_time_word((const char *)t + off, (size_t)l))
			return false;
		off += (uint32_t)l;
	}
	return off + 2 <= n;
}
