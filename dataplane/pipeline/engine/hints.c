/*
 * SQL comment hints (see hints.h): a hand-written lexer following
 * PostgreSQL's scan.l just far enough to know where top-level block comments
 * are, and a strict parser for the helios: ones. Hints are rare, so the
 * common path is a memchr for '/' (and for ':' after a slash-star) that
 * proves "helios:" cannot be in a comment; the lexer runs only otherwise, and
 * stops as soon as no "helios:" is left ahead of it.
 */
#include "dataplane/pipeline/engine/hints.h"

#include <string.h>

#define PREFIX     "helios:"
#define PREFIX_LEN 7

/* ---- Character classes (scan.l; ASCII only, no locale) ---- */

static bool is_space(unsigned char c)
{
	/* scan.l's {space}, plus \v (newer servers accept it) */
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_horiz_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

static bool is_newline(unsigned char c)
{
	return c == '\n' || c == '\r';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* {ident_start} and {dolq_start}: high-bit bytes count as letters */
static bool is_ident_start(unsigned char c)
{
	return is_alpha(c) || c == '_' || c >= 0x80;
}

/* {ident_cont}: an identifier may contain '$', so "a$b$" is no dollar quote */
static bool is_ident_cont(unsigned char c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

/* {dolq_cont} */
static bool is_tag_cont(unsigned char c)
{
	return is_ident_start(c) || is_digit(c);
}

/* Hint keys: [A-Za-z0-9_.-]. No ':', which values have (cache=ttl:N): a key
 * such as "route:x" is no key this module knows, yet looks like one. */
static bool is_key_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
}

/* Hint values: [A-Za-z0-9_.:-] (':' for cache=ttl:N) */
static bool is_value_char(unsigned char c)
{
	return is_key_char(c) || c == ':';
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* s[0..n) equals the lower-case word w, ignoring case. */
static bool word_eq(const char *s, size_t n, const char *w)
{
	size_t i = 0;
	for (; i < n && w[i]; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)w[i])
			return false;
	return i == n && !w[i];
}

/* ---- Fast searches ---- */

/* Offset of the first slash-star at or after from, or len. '/' is rare in
 * SQL, so memchr does nearly all the work. */
static size_t find_comment_start(const char *s, size_t len, size_t from)
{
	while (from + 1 < len) {
		const char *p = memchr(s + from, '/', len - from - 1);
		if (!p)
			break;
		if (p[1] == '*')
			return (size_t)(p - s);
		from = (size_t)(p - s) + 1;
	}
	return len;
}

/* Offset of the first "helios:" starting at or after from, or len. memchr
 * for the ':' (rarer than any letter of "helios") and a look back is fastest
 * while colons are rare; casts (::) can make them dense, so after a few
 * false hits glibc's memmem, which skips ahead on any byte, takes over. */
static size_t find_prefix(const char *s, size_t len, size_t from)
{
	size_t k = from + PREFIX_LEN - 1; /* where the ':' of a match at from is */
	for (int miss = 0; k < len; miss++) {
		if (miss == 8) {
			const char *m = memmem(s + k - (PREFIX_LEN - 1), len - k + (PREFIX_LEN - 1),
			                       PREFIX, PREFIX_LEN);
			return m ? (size_t)(m - s) : len;
		}
		const char *p = memchr(s + k, ':', len - k);
		if (!p)
			break;
		k = (size_t)(p - s);
		if (memcmp(p - (PREFIX_LEN - 1), PREFIX, PREFIX_LEN - 1) == 0)
			return k - (PREFIX_LEN - 1);
		k++;
	}
	return len;
}

/* Offset of the first "helios:" after the first slash-star, or len: no hint
 * can start before it. */
static size_t first_candidate(const char *s, size_t len)
{
	/* the shortest hint-looking text, slash-star-helios:, has 9 bytes */
	if (len < 2 + PREFIX_LEN)
		return len;
	size_t c = find_comment_start(s, len, 0);
	if (c == len)
		return len;
	return find_prefix(s, len, c + 2);
}

bool hints_maybe(const char *sql, size_t len)
{
	return first_candidate(sql, len) < len;
}

/* ---- Hint comment text ---- */

/* Applies one well-formed pair to h. Returns a reason when the whole comment
 * must be dropped, else NULL. */
static const char *apply_pair(struct hints *h, const char *k, size_t klen, const char *v,
                              size_t vlen)
{
	char key[HINT_KEY_MAX];
	for (size_t i = 0; i < klen; i++)
		key[i] = (char)lower((unsigned char)k[i]);
	key[klen] = '\0';

	if (strcmp(key, "route") == 0) {
		h->node[0] = '\0';
		if (word_eq(v, vlen, "primary")) {
			h->route = HINT_ROUTE_PRIMARY;
		} else if (word_eq(v, vlen, "standby") || word_eq(v, vlen, "replica")) {
			h->route = HINT_ROUTE_REPLICA;
		} else {
			h->route = HINT_ROUTE_NODE;
			memcpy(h->node, v, vlen);
			h->node[vlen] = '\0';
		}
		return NULL;
	}
	if (strcmp(key, "cache") == 0) {
		/* skip or ttl:N (seconds, 1..86400); a future value must not
		 * break today's hints, so an unknown pair alone is dropped. */
		if (word_eq(v, vlen, "skip")) {
			h->cache_skip = true;
			return NULL;
		}
		if (vlen > 4 && word_eq(v, 4, "ttl:")) {
			uint32_t n = 0;
			size_t i = 4;
			while (i < vlen && is_digit((unsigned char)v[i]) && n <= 86400)
				n = n * 10 + (uint32_t)(v[i++] - '0');
			if (i == vlen && n >= 1 && n <= 86400) {
				h->cache_ttl = n;
				return NULL;
			}
		}
		h->ignored = "unknown cache value";
		return NULL;
	}
	uint32_t i = 0;
	while (i < h->n_extra && strcmp(h->extra[i].key, key) != 0)
		i++;
	if (i == h->n_extra) {
		if (i == HINT_EXTRA_MAX)
			return "too many unknown keys";
		memcpy(h->extra[i].key, key, klen + 1);
		h->n_extra++;
	}
	memcpy(h->extra[i].value, v, vlen);
	h->extra[i].value[vlen] = '\0';
	return NULL;
}

static size_t skip_spaces(const char *p, size_t n, size_t k)
{
	while (k < n && is_space((unsigned char)p[k]))
		k++;
	return k;
}

/* Parses the pairs after "helios:" in p[0..n) into h. Returns why the
 * comment is malformed, or NULL. h may be partly updated on failure. */
static const char *parse_pairs(const char *p, size_t n, struct hints *h)
{
	bool any = false;
	size_t k = 0;
	for (;;) {
		k = skip_spaces(p, n, k);
		size_t ks = k;
		while (k < n && is_key_char((unsigned char)p[k]))
			k++;
		size_t klen = k - ks;
		if (klen == 0) {
			if (k == n)
				return any ? "empty pair" : "no key=value pairs";
			if (p[k] == ',')
				return "empty pair";
			return p[k] == '=' ? "empty key" : "bad character";
		}
		if (klen >= HINT_KEY_MAX)
			return "key too long";
		k = skip_spaces(p, n, k);
		if (k == n || p[k] != '=')
			return (k == n || p[k] == ',' || is_key_char((unsigned char)p[k]))
			           ? "missing '='"
			           : "bad character";
		k = skip_spaces(p, n, k + 1);
		size_t vs = k;
		while (k < n && is_value_char((unsigned char)p[k]))
			k++;
		size_t vlen = k - vs;
		if (vlen == 0)
			return (k == n || p[k] == ',') ? "empty value" : "bad character";
		if (vlen >= HINT_NAME_MAX)
			return "value too long";
		const char *why = apply_pair(h, p + ks, klen, p + vs, vlen);
		if (why)
			return why;
		any = true;
		k = skip_spaces(p, n, k);
		if (k == n)
			return NULL;
		if (p[k] != ',')
			return is_value_char((unsigned char)p[k]) ? "missing ','" : "bad character";
		k++;
	}
}

/* A top-level block comment with text body[0..n). Comments that are not
 * hints are no business of ours, so nothing is reported for them. */
static void comment(const char *body, size_t n, bool nested, bool unterminated, struct hints *out)
{
	size_t k = skip_spaces(body, n, 0);
	if (n - k < PREFIX_LEN || memcmp(body + k, PREFIX, PREFIX_LEN) != 0)
		return;
	if (unterminated) {
		out->ignored = "unterminated comment";
		return;
	}
	if (nested) {
		/* the server would accept it, but a half-commented hint is more
		 * likely a mistake than meant */
		out->ignored = "nested comment";
		return;
	}
	/* Parse into a copy so a malformed comment applies none of its pairs:
	 * half a hint could route a statement where its author never meant. */
	struct hints h = *out;
	const char *why = parse_pairs(body + k + PREFIX_LEN, n - k - PREFIX_LEN, &h);
	if (why) {
		out->ignored = why;
		return;
	}
	h.found = true;
	*out = h;
}

/* ---- Lexer (scan.l) ---- */

/* Offset of the first newline at or after k, or len: end of a -- comment. */
static size_t line_end(const char *s, size_t len, size_t k)
{
	const char *nl = memchr(s + k, '\n', len - k);
	size_t end = nl ? (size_t)(nl - s) : len;
	const char *cr = memchr(s + k, '\r', end - k);
	return cr ? (size_t)(cr - s) : end;
}

/* Top-level block comment whose slash-star is at i (scan.l nests them):
 * hands its text to comment() and returns the offset past its end, or len
 * if it is unterminated. */
static size_t block_comment(const char *s, size_t len, size_t i, struct hints *out)
{
	size_t j = i + 2, depth = 1;
	bool nested = false;
	/* Every opener and closer holds a '*'; a '/' just before it opens
	 * (unless that '/' closed the previous comment), one just after closes. */
	while (depth) {
		const char *p = memchr(s + j, '*', len - j);
		if (!p) {
			comment(s + i + 2, len - i - 2, nested, true, out);
			return len;
		}
		size_t k = (size_t)(p - s);
		if (k > j && s[k - 1] == '/') {
			depth++;
			nested = true;
			j = k + 1;
		} else if (k + 1 < len && s[k + 1] == '/') {
			depth--;
			j = k + 2;
		} else {
			j = k + 1;
		}
	}
	comment(s + i + 2, j - 2 - (i + 2), nested, false, out);
	return j;
}

/* '...' string or "..." identifier from just past the opening q. Returns
 * the offset past the closing quote, or len. A doubled quote needs no case of
 * its own: closing and reopening lands in the same place. */
static size_t skip_quoted(const char *s, size_t len, size_t j, char q)
{
	const char *p = memchr(s + j, q, len - j);
	return p ? (size_t)(p - s) + 1 : len;
}

/* scan.l's {quotecontinue} after a string's closing quote at *pos - 1:
 * whitespace with a newline (-- comments allowed) and another quote continue
 * the same literal. True with *pos past that quote if so. */
static bool quote_continues(const char *s, size_t len, size_t *pos)
{
	size_t j = *pos;
	for (;;) { /* {horiz_whitespace}* */
		if (j < len && is_horiz_space((unsigned char)s[j]))
			j++;
		else if (j + 1 < len && s[j] == '-' && s[j + 1] == '-')
			j = line_end(s, len, j + 2);
		else
			break;
	}
	if (j == len || !is_newline((unsigned char)s[j]))
		return false;
	j++;
	for (;;) { /* {special_whitespace}* */
		if (j < len && is_space((unsigned char)s[j])) {
			j++;
		} else if (j + 1 < len && s[j] == '-' && s[j + 1] == '-') {
			j = line_end(s, len, j + 2);
			if (j == len)
				return false;
			j++;
		} else {
			break;
		}
	}
	if (j == len || s[j] != '\'')
		return false;
	*pos = j + 1;
	return true;
}

/* E'...' from just past the opening quote: backslash escapes, doubled
 * quotes, and continuation lines, which stay in E mode, so "E'a'\n'\''" is
 * one literal. Returns the offset past the end, or len. */
static size_t skip_estring(const char *s, size_t len, size_t j)
{
	for (;;) {
		while (j < len && s[j] != '\'')
			j += s[j] == '\\' ? 2 : 1;
		if (j >= len)
			return len;
		j++;
		if (j < len && s[j] == '\'') {
			j++;
			continue;
		}
		if (!quote_continues(s, len, &j))
			return j;
	}
}

/* A '$' at i outside any token: $n parameter, $tag$...$tag$ string, or a
 * lone '$'. Returns the offset past what it starts. */
static size_t dollar(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;
	if (j < len && is_digit((unsigned char)s[j])) {
		while (j < len && is_digit((unsigned char)s[j]))
			j++;
		return j;
	}
	if (j < len && is_ident_start((unsigned char)s[j]))
		while (++j < len && is_tag_cont((unsigned char)s[j]))
			;
	if (j == len || s[j] != '$')
		return i + 1; /* scan.l's {dolqfailed}: the rest lexes as an identifier */
	/* The body ends at the first copy of the opening delimiter: tags hold
	 * no '$', so a shorter or longer $other$ can never overlap it. */
	size_t dlen = j + 1 - i;
	const char *end = memmem(s + j + 1, len - j - 1, s + i, dlen);
	return end ? (size_t)(end - s) + dlen : len;
}

void hints_scan(const char *sql, size_t len, struct hints *out)
{
	const char *s = sql;
	memset(out, 0, sizeof(*out));
	size_t next = first_candidate(s, len); /* the next "helios:" that may be in a comment */
	if (next == len)
		return;
	size_t i = 0;
	while (i < len) {
		if (i > next) {
			/* Lexing is only needed to reach comments holding "helios:";
			 * none is left once the text ahead lacks it. */
			next = find_prefix(s, len, i);
			if (next == len)
				return;
		}
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '\'':
			/* standard_conforming_strings: no backslash escapes */
			i = skip_quoted(s, len, i + 1, '\'');
			break;
		case '"':
			i = skip_quoted(s, len, i + 1, '"');
			break;
		case '-':
			i = (i + 1 < len && s[i + 1] == '-') ? line_end(s, len, i + 2) : i + 1;
			break;
		case '/':
			i = (i + 1 < len && s[i + 1] == '*') ? block_comment(s, len, i, out)
			                                     : i + 1;
			break;
		case '$':
			i = dollar(s, len, i);
			break;
		default:
			if (is_ident_start(c)) {
				/* Whole identifiers, so a '$' or "e'" inside one is
				 * not taken for a quote. */
				size_t j = i + 1;
				while (j < len && is_ident_cont((unsigned char)s[j]))
					j++;
				if (j == i + 1 && (c == 'e' || c == 'E') && j < len && s[j] == '\'')
					j = skip_estring(s, len, j + 1);
				i = j;
			} else {
				/* digits, operators, punctuation, whitespace; B'', X'',
				 * N'' and U&'' strings quote like '' and land above */
				i++;
			}
		}
	}
}
