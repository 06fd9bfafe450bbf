/*
 * TOML 1.0 parser: validates the UTF-8 of the whole input first, then reads
 * it in one pass into the tree of toml_tree.c. Recursion follows only value
 * nesting, capped at TOML_MAX_DEPTH, so hostile input cannot blow the stack.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml.h"
#include "common/toml_impl.h"

/* Parts of the keys being read. A keyval whose value is an inline table
 * keeps its parts here while the keyvals inside push theirs. Each part and
 * each nesting level counts towards TOML_MAX_DEPTH, so valid input stays
 * well below this; deeper input is rejected, never overflows. */
#define KEY_STACK (2 * TOML_MAX_DEPTH + 2)

struct key_part {
	char *s;
	size_t len;
	bool owned; /* false once moved into a table (s stays valid for messages) */
	size_t pos; /* where it was written, for messages and lines */
};

struct parser {
	const char *s;
	size_t len, pos;
	size_t start; /* after the BOM: columns count from here on line 1 */
	struct toml_value *root;
	struct toml_value *cur; /* table the current [section] fills */
	int cur_depth;          /* containers from root to cur */
	int depth;              /* containers from root to the one being filled */
	unsigned gen;           /* section number, see toml_value.gen */
	size_t line_off;        /* line_at() cache: offset line_off is on */
	int line_no;            /* ... line line_no */
	struct key_part keys[KEY_STACK];
	int nkeys;
	bool failed;
	size_t err_pos;
	char msg[sizeof(((struct toml_error *)0)->msg)];
};

/* A growable byte buffer for decoded strings and keys. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_reserve(struct sbuf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 32;

	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);

	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (sbuf_reserve(b, n))
		return -ENOMEM;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sbuf_utf8(struct sbuf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return sbuf_add(b, u, n);
}

/* Ensures a NUL-terminated (possibly empty) string to hand over. */
static char *sbuf_take(struct sbuf *b, size_t *len)
{
	if (!b->p && sbuf_reserve(b, 0))
		return NULL;
	if (!b->len)
		b->p[0] = '\0';
	*len = b->len;
	return b->p;
}

static int fail(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the error (message and byte offset) and returns -EINVAL. */
static int fail(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	/* Only the first error counts: later ones are consequences. */
	if (!p->failed) {
		p->failed = true;
		p->err_pos = pos;
		va_start(ap, fmt);
		vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int nomem(struct parser *p)
{
	fail(p, p->pos, "out of memory");
	return -ENOMEM;
}

static int peek(const struct parser *p, size_t off)
{
	return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

/* Names the character at pos for messages. */
static const char *describe(const struct parser *p, size_t pos, char *buf, size_t size)
{
	int c = pos < p->len ? (unsigned char)p->s[pos] : -1;

	if (c < 0)
		return "end of input";
	if (c == '\n' || (c == '\r' && pos + 1 < p->len && p->s[pos + 1] == '\n'))
		return "end of line";
	if (c > 0x20 && c < 0x7F)
		snprintf(buf, size, "'%c'", c);
	else if (c < 0x80)
		snprintf(buf, size, "character U+%04X", (unsigned)c);
	else
		snprintf(buf, size, "non-ASCII character");
	return buf;
}

static int fail_unexpected(struct parser *p, const char *expected)
{
	char buf[32];

	return fail(p, p->pos, "expected %s, found %s", expected,
	            describe(p, p->pos, buf, sizeof(buf)));
}

/* Line of byte offset pos. Queries mostly move forward, so the cache makes
 * the whole parse linear. */
static int line_at(struct parser *p, size_t pos)
{
	if (pos < p->line_off) {
		p->line_off = 0;
		p->line_no = 1;
	}
	for (; p->line_off < pos && p->line_off < p->len; p->line_off++)
		if (p->s[p->line_off] == '\n')
			p->line_no++;
	return p->line_no;
}

/* Control characters TOML forbids raw (tab is fine; newlines are handled by
 * the callers). */
static bool is_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

static int fail_control(struct parser *p, const char *where)
{
	int c = peek(p, 0);

	if (c == '\r')
		return fail(p, p->pos, "carriage return not followed by a line feed %s", where);
	return fail(p, p->pos, "control character U+%04X not allowed %s", (unsigned)c, where);
}

static int check_utf8(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = p->pos;

	while (i < p->len) {
		unsigned c = s[i], n, cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			n = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return fail(p, i, "invalid UTF-8 byte 0x%02X", c);
		}
		for (unsigned k = 1; k <= n; k++) {
			if (i + k >= p->len || (s[i + k] & 0xC0) != 0x80)
				return fail(p, i, "truncated UTF-8 sequence");
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min)
			return fail(p, i, "overlong UTF-8 encoding");
		if (cp >= 0xD800 && cp <= 0xDFFF)
			return fail(p, i, "UTF-16 surrogate U+%04X is not valid UTF-8", cp);
		if (cp > 0x10FFFF)
			return fail(p, i, "code point above U+10FFFF");
		i += n + 1;
	}
	return 0;
}

static void skip_ws(struct parser *p)
{
	while (peek(p, 0) == ' ' || peek(p, 0) == '\t')
		p->pos++;
}

static bool at_newline(const struct parser *p)
{
	return peek(p, 0) == '\n' || (peek(p, 0) == '\r' && peek(p, 1) == '\n');
}

static void skip_newline(struct parser *p)
{
	p->pos += peek(p, 0) == '\r' ? 2 : 1;
}

/* Skips a comment, if one starts here, up to (not including) its newline. */
static int skip_comment(struct parser *p)
{
	if (peek(p, 0) != '#')
		return 0;
	for (p->pos++; p->pos < p->len && !at_newline(p); p->pos++)
		if (is_control(peek(p, 0)) || peek(p, 0) == '\r')
			return fail_control(p, "in a comment");
	return 0;
}

/* After a keyval or a header: only whitespace and a comment until the end
 * of the line. */
static int expect_eol(struct parser *p)
{
	skip_ws(p);
	if (skip_comment(p))
		return -EINVAL;
	if (peek(p, 0) < 0)
		return 0;
	if (!at_newline(p))
		return fail_unexpected(p, "end of line");
	skip_newline(p);
	return 0;
}

/* Inside arrays: whitespace, newlines and comments, in any number. */
static int skip_ws_nl(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		if (skip_comment(p))
			return -EINVAL;
		if (!at_newline(p))
			return 0;
		skip_newline(p);
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* An escape in a basic string; p->pos is at the backslash. */
static int parse_escape(struct parser *p, struct sbuf *b)
{
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	size_t at = p->pos;
	int c = peek(p, 1), ndig;
	uint32_t cp = 0;
	const char *hit = c > 0 ? strchr(from, c) : NULL;
	char buf[32];

	if (hit) {
		p->pos += 2;
		return sbuf_add(b, &to[hit - from], 1) ? nomem(p) : 0;
	}
	if (c != 'u' && c != 'U')
		return fail(p, at, "invalid escape sequence: backslash followed by %s",
		            describe(p, at + 1, buf, sizeof(buf)));
	ndig = c == 'u' ? 4 : 8;
	for (int i = 0; i < ndig; i++) {
		int h = hexval(peek(p, 2 + i));

		if (h < 0)
			return fail(p, at, "\\%c escape needs %d hex digits", c, ndig);
		cp = cp << 4 | (uint32_t)h;
	}
	if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return fail(p, at, "\\%c%0*X is not a Unicode scalar value", c, ndig, cp);
	p->pos += 2 + ndig;
	return sbuf_utf8(b, cp) ? nomem(p) : 0;
}

/* A backslash at the end of a line in a multi-line basic string swallows
 * the newline and all whitespace up to the next visible character.
 * Returns 1 if it was one, 0 if not (a normal escape). */
static int line_ending_backslash(struct parser *p)
{
	size_t i = p->pos + 1;

	while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t'))
		i++;
	if (!(i < p->len &&
	      (p->s[i] == '\n' || (p->s[i] == '\r' && i + 1 < p->len && p->s[i + 1] == '\n'))))
		return 0;
	p->pos = i;
	for (;;) {
		skip_ws(p);
		if (!at_newline(p))
			return 1;
		skip_newline(p);
	}
}

/* A string of any kind; p->pos is at the opening quote. multi_ok is false
 * for keys, which cannot be multi-line strings. On success *out holds a
 * malloc'd NUL-terminated copy of the decoded bytes (which may hold NULs). */
static int parse_string(struct parser *p, bool multi_ok, char **out, size_t *outlen)
{
	const char q = p->s[p->pos];
	const bool basic = q == '"';
	size_t open = p->pos;
	struct sbuf b = {0};
	bool multi = peek(p, 1) == q && peek(p, 2) == q;
	int rc = -EINVAL;

	if (multi && !multi_ok)
		return fail(p, p->pos, "a multi-line string cannot be a key");
	p->pos += multi ? 3 : 1;
	/* A newline right after the opening delimiter is not part of it. */
	if (multi && at_newline(p))
		skip_newline(p);
	for (;;) {
		int c = peek(p, 0);

		if (c < 0) {
			fail(p, open, "unterminated string");
			goto out;
		}
		if (c == q) {
			size_t n = 1;

			if (!multi) {
				p->pos++;
				break;
			}
			/* Up to two quotes may sit just inside the closing one. */
			while (peek(p, n) == q)
				n++;
			if (n >= 3 && n <= 5) {
				if (sbuf_add(&b, p->s + p->pos, n - 3))
					goto oom;
				p->pos += n;
				break;
			}
			if (n > 5) {
				fail(p, p->pos, "too many quotes in a row in a multi-line string");
				goto out;
			}
			if (sbuf_add(&b, p->s + p->pos, n))
				goto oom;
			p->pos += n;
			continue;
		}
		if (c == '\\' && basic) {
			if (multi && line_ending_backslash(p))
				continue;
			if (parse_escape(p, &b))
				goto out;
			continue;
		}
		if (at_newline(p)) {
			if (!multi) {
				fail(p, p->pos, "newline in a single-line string");
				goto out;
			}
			/* CRLF is stored as LF: the text means the same on any OS. */
			skip_newline(p);
			if (sbuf_add(&b, "\n", 1))
				goto oom;
			continue;
		}
		if (is_control(c) || c == '\r') {
			fail_control(p, "in a string");
			goto out;
		}
		if (sbuf_add(&b, p->s + p->pos, 1))
			goto oom;
		p->pos++;
	}
	*out = sbuf_take(&b, outlen);
	if (*out)
		return 0;
oom:
	rc = nomem(p);
out:
	free(b.p);
	return rc;
}

static bool is_bare_key_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Reads a possibly dotted key onto p->keys; *n gets its number of parts. */
static int parse_key(struct parser *p, int *n)
{
	*n = 0;
	for (;;) {
		struct key_part *kp;

		skip_ws(p);
		if (p->nkeys == KEY_STACK)
			return fail(p, p->pos, "keys nested deeper than %d levels", TOML_MAX_DEPTH);
		kp = &p->keys[p->nkeys];
		kp->pos = p->pos;
		if (peek(p, 0) == '"' || peek(p, 0) == '\'') {
			if (parse_string(p, false, &kp->s, &kp->len))
				return -EINVAL;
		} else {
			size_t start = p->pos;

			while (is_bare_key_char(peek(p, 0)))
				p->pos++;
			if (p->pos == start)
				return fail_unexpected(p, "a key");
			kp->len = p->pos - start;
			kp->s = strndup(p->s + start, kp->len);
			if (!kp->s)
				return nomem(p);
		}
		kp->owned = true;
		p->nkeys++;
		(*n)++;
		skip_ws(p);
		if (peek(p, 0) != '.')
			return 0;
		p->pos++;
	}
}

/* Frees the key parts from index base on. */
static void keys_pop(struct parser *p, int base)
{
	while (p->nkeys > base) {
		struct key_part *kp = &p->keys[--p->nkeys];

		if (kp->owned)
			free(kp->s);
		kp->s = NULL;
		kp->owned = false;
	}
}

/* Renders parts [base, last] as a dotted key for messages, made printable
 * and cut to fit. */
static const char *key_name(const struct parser *p, int base, int last, char *buf, size_t size)
{
	size_t o = 0;

	for (int i = base; i <= last && o + 1 < size; i++) {
		if (i > base)
			buf[o++] = '.';
		for (size_t k = 0; k < p->keys[i].len && o + 1 < size; k++) {
			unsigned char c = (unsigned char)p->keys[i].s[k];

			buf[o++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
		}
	}
	buf[o < size ? o : size - 1] = '\0';
	return buf;
}

static const char *kind(const struct toml_value *v)
{
	if (v->type == TOML_TABLE)
		return v->flags & TOML_F_INLINE ? "an inline table" : "a table";
	if (v->type == TOML_ARRAY)
		return v->flags & TOML_F_AOT ? "an array of tables" : "an array";
	return "a value";
}

static int parse_value(struct parser *p, struct toml_value **out);

/* Stores val under the dotted key held in p->keys[base .. base+n-1],
 * relative to table t, creating intermediate tables. Frees val on error. */
static int insert_keyval(struct parser *p, struct toml_value *t, int base, int n, int line,
                         struct toml_value *val)
{
	char name[120];
	int i;

	for (i = base; i < base + n - 1; i++) {
		struct key_part *kp = &p->keys[i];
		struct toml_value *child = toml_tree_find(t, kp->s, kp->len);

		if (!child) {
			child = toml_tree_new(TOML_TABLE, line);
			if (!child || toml_tree_add(t, kp->s, kp->len, child)) {
				free(child);
				goto oom;
			}
			kp->owned = false;
			child->gen = p->gen;
		} else if (child->type != TOML_TABLE || (child->flags & TOML_F_INLINE)) {
			fail(p, kp->pos, "cannot add keys to '%s': it is already %s",
			     key_name(p, base, i, name, sizeof(name)), kind(child));
			goto err;
		} else if ((child->flags & TOML_F_EXPLICIT) ||
		           (child->gen && child->gen != p->gen)) {
			/* Dotted keys may only extend tables they made in this
			 * section: anything else would reopen a closed table. */
			fail(p, kp->pos, "cannot add keys to table '%s' defined elsewhere",
			     key_name(p, base, i, name, sizeof(name)));
			goto err;
		} else {
			child->gen = p->gen;
		}
		t = child;
	}
	if (toml_tree_find(t, p->keys[i].s, p->keys[i].len)) {
		fail(p, p->keys[i].pos, "duplicate key '%s'",
		     key_name(p, base, i, name, sizeof(name)));
		goto err;
	}
	if (toml_tree_add(t, p->keys[i].s, p->keys[i].len, val))
		goto oom;
	p->keys[i].owned = false;
	return 0;
oom:
	toml_free(val);
	return nomem(p);
err:
	toml_free(val);
	return -EINVAL;
}

/* key = value, into table t. Used for sections and inline tables. */
static int parse_keyval(struct parser *p, struct toml_value *t)
{
	int base = p->nkeys, n, depth = p->depth, rc, line;
	size_t at;
	struct toml_value *v;

	/* Lines are computed in order, before the value moves past them. */
	line = line_at(p, p->pos);
	if (parse_key(p, &n))
		return -EINVAL;
	if (peek(p, 0) != '=')
		return fail_unexpected(p, "'=' after the key");
	p->pos++;
	skip_ws(p);
	at = p->keys[base].pos;
	if (p->depth + n - 1 > TOML_MAX_DEPTH)
		return fail(p, at, "key nested deeper than %d levels", TOML_MAX_DEPTH);
	p->depth += n - 1;
	rc = parse_value(p, &v);
	p->depth = depth;
	if (rc)
		return rc;
	v->line = line;
	rc = insert_keyval(p, t, base, n, line, v);
	keys_pop(p, base);
	return rc;
}

static int enter(struct parser *p)
{
	if (++p->depth > TOML_MAX_DEPTH)
		return fail(p, p->pos, "arrays and inline tables nested deeper than %d levels",
		            TOML_MAX_DEPTH);
	return 0;
}

static int parse_array(struct parser *p, struct toml_value **out)
{
	struct toml_value *a, *v;
	int rc;

	if (enter(p))
		return -EINVAL;
	a = toml_tree_new(TOML_ARRAY, line_at(p, p->pos));
	if (!a)
		return nomem(p);
	p->pos++;
	for (;;) {
		if ((rc = skip_ws_nl(p)))
			goto err;
		if (peek(p, 0) == ']')
			break;
		if ((rc = parse_value(p, &v)))
			goto err;
		if (toml_tree_push(a, v)) {
			toml_free(v);
			rc = nomem(p);
			goto err;
		}
		if ((rc = skip_ws_nl(p)))
			goto err;
		if (peek(p, 0) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p, 0) == ']')
			break;
		rc = fail_unexpected(p, "',' or ']' in the array");
		goto err;
	}
	p->pos++;
	p->depth--;
	*out = a;
	return 0;
err:
	toml_free(a);
	return rc;
}

/* { k = v, ... } on one line, no trailing comma; frozen once closed. */
static int parse_inline_table(struct parser *p, struct toml_value **out)
{
	struct toml_value *t;
	int rc;

	if (enter(p))
		return -EINVAL;
	t = toml_tree_new(TOML_TABLE, line_at(p, p->pos));
	if (!t)
		return nomem(p);
	p->pos++;
	skip_ws(p);
	if (peek(p, 0) != '}') {
		for (;;) {
			if ((rc = parse_keyval(p, t)))
				goto err;
			skip_ws(p);
			if (peek(p, 0) == '}')
				break;
			if (peek(p, 0) != ',') {
				rc = fail_unexpected(p, at_newline(p)
				                            ? "'}' (inline tables must "
				                              "be on one line)"
				                            : "',' or '}' in the inline table");
				goto err;
			}
			p->pos++;
			skip_ws(p);
			if (peek(p, 0) == '}') {
				rc = fail(p, p->pos,
				          "trailing comma not allowed in an inline table");
				goto err;
			}
		}
	}
	p->pos++;
	p->depth--;
	t->flags |= TOML_F_INLINE;
	*out = t;
	return 0;
err:
	toml_free(t);
	return rc;
}

/* Checks that s[0..n) is digits of the base with each '_' between two
 * digits, and at least one digit. */
static bool digit_run(const char *s, size_t n, int base)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_') {
			if (i == 0 || i + 1 == n || s[i - 1] == '_')
				return false;
		} else if (hexval(s[i]) < 0 || hexval(s[i]) >= base) {
			return false;
		}
	}
	return true;
}

/* Integer digits (validated) to a value no larger than limit. */
static int to_u64(const char *s, size_t n, int base, uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_')
			continue;
		uint64_t d = (uint64_t)hexval(s[i]);

		if (v > (limit - d) / (uint64_t)base)
			return -ERANGE;
		v = v * (uint64_t)base + d;
	}
	*out = v;
	return 0;
}

/* Messages quote the offending word, cut short if it is long. */
#define WORD_FMT     "'%.*s%s'"
#define WORD_ARGS(n) (int)((n) > 40 ? 40 : (n)), t, (n) > 40 ? "..." : ""

static int parse_float(struct parser *p, const char *t, size_t n, size_t at, double *out)
{
	size_t i = 0, ip, fs, o = 0;
	const char *why = NULL;
	char *clean;

	if (t[0] == '+' || t[0] == '-')
		i++;
	ip = i;
	while (i < n && t[i] != '.' && t[i] != 'e' && t[i] != 'E')
		i++;
	if (!digit_run(t + ip, i - ip, 10))
		why = "digits (single '_' between them) needed before the '.' or exponent";
	else if (t[ip] == '0' && i - ip > 1)
		why = "leading zeros are not allowed";
	if (!why && i < n && t[i] == '.') {
		fs = ++i;
		while (i < n && t[i] != 'e' && t[i] != 'E')
			i++;
		if (!digit_run(t + fs, i - fs, 10))
			why = "digits needed after the '.'";
	}
	if (!why && i < n) {
		i++;
		if (i < n && (t[i] == '+' || t[i] == '-'))
			i++;
		if (!digit_run(t + i, n - i, 10))
			why = "digits needed in the exponent";
	}
	if (why)
		return fail(p, at, "invalid float " WORD_FMT ": %s", WORD_ARGS(n), why);
	clean = malloc(n + 1);
	if (!clean)
		return nomem(p);
	for (i = 0; i < n; i++)
		if (t[i] != '_')
			clean[o++] = t[i];
	clean[o] = '\0';
	*out = strtod(clean, NULL);
	free(clean);
	if (isinf(*out))
		return fail(p, at, "float " WORD_FMT " is out of range", WORD_ARGS(n));
	return 0;
}

/* Integers, floats, booleans, inf and nan: everything that is a bare word. */
static int parse_scalar_word(struct parser *p, struct toml_value *v)
{
	size_t at = p->pos, n, rn;
	const char *t = p->s + at, *r;
	bool sign, neg;
	uint64_t u;

	while (p->pos < p->len &&
	       (is_bare_key_char(peek(p, 0)) || peek(p, 0) == '+' || peek(p, 0) == '.'))
		p->pos++;
	n = p->pos - at;
	if (!n)
		return fail_unexpected(p, "a value");
	if ((n == 4 && !memcmp(t, "true", 4)) || (n == 5 && !memcmp(t, "false", 5))) {
		v->type = TOML_BOOL;
		v->u.b = n == 4;
		return 0;
	}
	sign = t[0] == '+' || t[0] == '-';
	neg = t[0] == '-';
	r = t + sign;
	rn = n - sign;
	if (rn == 3 && (!memcmp(r, "inf", 3) || !memcmp(r, "nan", 3))) {
		v->type = TOML_FLOAT;
		v->u.f = r[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
		return 0;
	}
	if (!rn || r[0] < '0' || r[0] > '9')
		return fail(p, at,
		            "invalid value " WORD_FMT " (strings need quotes, booleans are "
		            "true or false)",
		            WORD_ARGS(n));
	if (rn >= 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'o' || r[1] == 'b')) {
		int base = r[1] == 'x' ? 16 : r[1] == 'o' ? 8 : 2;

		if (sign)
			return fail(p, at,
			            "invalid integer " WORD_FMT
			            ": no sign allowed on hex, octal or binary",
			            WORD_ARGS(n));
		if (!digit_run(r + 2, rn - 2, base))
			return fail(p, at, "invalid base-%d integer " WORD_FMT, base, WORD_ARGS(n));
		if (to_u64(r + 2, rn - 2, base, INT64_MAX, &u))
			return fail(p, at, "integer " WORD_FMT " does not fit in 64 bits",
			            WORD_ARGS(n));
		v->type = TOML_INT;
		v->u.i = (int64_t)u;
		return 0;
	}
	if (memchr(r, '.', rn) || memchr(r, 'e', rn) || memchr(r, 'E', rn)) {
		v->type = TOML_FLOAT;
		return parse_float(p, t, n, at, &v->u.f);
	}
	if (!digit_run(r, rn, 10))
		return fail(p, at, "invalid integer " WORD_FMT, WORD_ARGS(n));
	if (r[0] == '0' && rn > 1)
		return fail(p, at, "invalid integer " WORD_FMT ": leading zeros are not allowed",
		            WORD_ARGS(n));
	if (to_u64(r, rn, 10, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &u))
		return fail(p, at, "integer " WORD_FMT " does not fit in 64 bits", WORD_ARGS(n));
	v->type = TOML_INT;
	/* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
	v->u.i = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

static int parse_value(struct parser *p, struct toml_value **out)
{
	int c = peek(p, 0), rc;
	struct toml_value *v;
	struct toml_dt_scan dt;
	ssize_t used;

	if (c == '[')
		return parse_array(p, out);
	if (c == '{')
		return parse_inline_table(p, out);
	v = toml_tree_new(TOML_STRING, line_at(p, p->pos));
	if (!v)
		return nomem(p);
	if (c == '"' || c == '\'') {
		rc = parse_string(p, true, &v->u.str.s, &v->u.str.len);
	} else if ((used = toml_datetime_scan(p->s + p->pos, p->len - p->pos, &dt)) != 0) {
		if (used < 0) {
			rc = fail(p, p->pos + dt.err_off, "%s", dt.msg);
		} else {
			v->type = dt.type;
			memcpy(v->u.dt, dt.text, sizeof(v->u.dt));
			p->pos += (size_t)used;
			rc = 0;
		}
	} else {
		v->type = TOML_INT; /* safe to free whatever the outcome */
		rc = parse_scalar_word(p, v);
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* [a.b.c] or [[a.b.c]]: walks from the root, creating implicit tables, and
 * makes the named table the one that following keyvals fill. */
static int parse_header(struct parser *p)
{
	bool aot = peek(p, 1) == '[';
	int base = p->nkeys, n, level = 0, line = line_at(p, p->pos), i;
	struct toml_value *t = p->root;
	char name[120];

	p->pos += aot ? 2 : 1;
	if (parse_key(p, &n))
		return -EINVAL;
	if (peek(p, 0) != ']' || (aot && peek(p, 1) != ']'))
		return fail_unexpected(p, aot ? "']]' closing the array-of-tables header"
		                              : "']' closing the table header");
	p->pos += aot ? 2 : 1;
	p->gen++;
	for (i = base; i < base + n; i++) {
		struct key_part *kp = &p->keys[i];
		struct toml_value *child = toml_tree_find(t, kp->s, kp->len);
		bool last = i == base + n - 1;

		if (!child) {
			child = toml_tree_new(last && aot ? TOML_ARRAY : TOML_TABLE, line);
			if (!child || toml_tree_add(t, kp->s, kp->len, child)) {
				free(child);
				return nomem(p);
			}
			kp->owned = false;
			if (last)
				child->flags |= aot ? TOML_F_AOT : TOML_F_EXPLICIT;
		} else if (last && !aot) {
			if (child->type != TOML_TABLE || (child->flags & TOML_F_INLINE))
				return fail(p, kp->pos,
				            "cannot define table '%s': it is already %s",
				            key_name(p, base, i, name, sizeof(name)), kind(child));
			if ((child->flags & TOML_F_EXPLICIT) || child->gen)
				return fail(p, kp->pos, "table '%s' is defined more than once",
				            key_name(p, base, i, name, sizeof(name)));
			child->flags |= TOML_F_EXPLICIT;
			child->line = line;
		} else if (last) {
			if (!(child->flags & TOML_F_AOT))
				return fail(p, kp->pos,
				            "cannot append to '%s' as an array of tables: it is "
				            "already %s",
				            key_name(p, base, i, name, sizeof(name)), kind(child));
		} else if (child->flags & TOML_F_AOT) {
			/* A path through an array of tables means its latest element. */
			child = child->u.arr.it[child->u.arr.len - 1];
			level++;
		} else if (child->type != TOML_TABLE || (child->flags & TOML_F_INLINE)) {
			return fail(p, kp->pos, "cannot add a table to '%s': it is already %s",
			            key_name(p, base, i, name, sizeof(name)), kind(child));
		}
		t = child;
		if (last && aot) {
			struct toml_value *e = toml_tree_new(TOML_TABLE, line);

			if (!e || toml_tree_push(t, e)) {
				free(e);
				return nomem(p);
			}
			e->flags |= TOML_F_EXPLICIT;
			t = e;
			level++;
		}
		if (++level > TOML_MAX_DEPTH)
			return fail(p, kp->pos, "tables nested deeper than %d levels",
			            TOML_MAX_DEPTH);
	}
	keys_pop(p, base);
	p->cur = t;
	p->cur_depth = level;
	return 0;
}

static int parse_document(struct parser *p)
{
	for (;;) {
		int c;

		skip_ws(p);
		c = peek(p, 0);
		if (c < 0)
			return 0;
		if (at_newline(p)) {
			skip_newline(p);
			continue;
		}
		if (c == '[') {
			if (parse_header(p))
				return -EINVAL;
		} else if (c != '#') {
			p->depth = p->cur_depth;
			if (parse_keyval(p, p->cur))
				return -EINVAL;
		}
		if (expect_eol(p))
			return -EINVAL;
	}
}

/* Line and 1-based column (in characters, not bytes) of byte offset pos. */
static void locate(const struct parser *p, size_t pos, struct toml_error *err)
{
	int line = 1, col = 1;

	for (size_t i = p->start; i < pos && i < p->len; i++) {
		if (p->s[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)p->s[i] & 0xC0) != 0x80) {
			col++;
		}
	}
	err->line = line;
	err->col = col;
}

struct toml_value *toml_parse(const char *data, size_t len, struct toml_error *err)
{
	struct toml_error dummy;
	struct parser *p;
	struct toml_value *root = NULL;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!data && len) {
		snprintf(err->msg, sizeof(err->msg), "no input buffer");
		return NULL;
	}
	if (len > TOML_MAX_INPUT) {
		snprintf(err->msg, sizeof(err->msg), "input larger than the %u byte limit",
		         TOML_MAX_INPUT);
		return NULL;
	}
	/* The key stack is a few KiB: keep it off small thread stacks. */
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	p->s = data ? data : "";
	p->len = len;
	p->line_no = 1;
	p->gen = 1;
	if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
		p->pos = p->start = p->line_off = 3;
	if (check_utf8(p) == 0) {
		root = toml_tree_new(TOML_TABLE, 1);
		if (!root) {
			nomem(p);
		} else {
			p->cur = p->root = root;
			if (parse_document(p)) {
				toml_free(root);
				root = NULL;
			}
		}
	}
	keys_pop(p, 0);
	if (!root) {
		locate(p, p->err_pos, err);
		snprintf(err->msg, sizeof(err->msg), "%s", p->msg);
	}
	free(p);
	return root;
}
