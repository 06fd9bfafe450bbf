/*
 * Statement shape hashing; see shape.h.
 */
#include "dataplane/pipeline/engine/shape.h"

#include <stdbool.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME  1099511628211ull

static inline uint64_t mix(uint64_t h, uint8_t c)
{
	return (h ^ c) * FNV_PRIME;
}

static inline bool ident_start(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static inline bool ident_char(uint8_t c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static inline bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* A literal's value is replaced by one marker byte (never a byte that can
 * start any other token), so its length and content do not count. */
#define LITERAL_MARK 0x01
#define BROKEN_MARK  0x02

/* Past a quoted string starting at s[i] == '\''; backslash escapes when
 * escapes is set (E'...'). Returns the index after the closing quote, or
 * len when unterminated. */
static size_t skip_string(const uint8_t *s, size_t i, size_t len, bool escapes, bool *ok)
{
	i++;
	while (i < len) {
		if (escapes && s[i] == '\\') {
			i += 2;
			continue;
		}
		if (s[i] == '\'') {
			if (i + 1 < len && s[i + 1] == '\'') {
				i += 2; /* '' inside */
				continue;
			}
			return i + 1;
		}
		i++;
	}
	*ok = false;
	return len;
}

/* $tag$ at s[i]: the tag's length (with both '$'), 0 if this is not one
 * ($1 is a parameter). */
static size_t dollar_tag(const uint8_t *s, size_t i, size_t len)
{
	size_t j = i + 1;
	if (j < len && digit(s[j]))
		return 0;
	while (j < len && s[j] != '$') {
		if (!ident_char(s[j]) || s[j] == '$')
			return 0;
		j++;
	}
	return j < len ? j - i + 1 : 0;
}

uint64_t sql_shape(const char *sql, size_t len)
{
	const uint8_t *s = (const uint8_t *)sql;
	uint64_t h = FNV_OFFSET;
	size_t i = 0;
	bool ok = true;
	while (i < len && ok) {
		uint8_t c = s[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			i++;
			continue;
		}
		if (c == '-' && i + 1 < len && s[i + 1] == '-') {
			while (i < len && s[i] != '\n')
				i++;
			continue;
		}
		if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			int depth = 0;
			while (i < len) {
				if (i + 1 < len && s[i] == '/' && s[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (i + 1 < len && s[i] == '*' && s[i + 1] == '/') {
					depth--;
					i += 2;
					if (!depth)
						break;
				} else {
					i++;
				}
			}
			if (depth)
				ok = false;
			continue;
		}
		if (c == '\'') {
			i = skip_string(s, i, len, false, &ok);
			h = mix(h, LITERAL_MARK);
			continue;
		}
		if (c == '"') {
			/* a quoted identifier: its text counts, as written */
			h = mix(h, c);
			i++;
			while (i < len) {
				if (s[i] == '"') {
					if (i + 1 < len && s[i + 1] == '"') {
						h = mix(mix(h, '"'), '"');
						i += 2;
						continue;
					}
					break;
				}
				h = mix(h, s[i++]);
			}
			if (i >= len)
				ok = false;
			else
				h = mix(h, s[i++]);
			continue;
		}
		if (c == '$') {
			size_t tl = dollar_tag(s, i, len);
			if (tl) {
				/* $tag$ ... $tag$: a literal */
				size_t j = i + tl;
				while (j + tl <= len && memcmp(s + j, s + i, tl))
					j++;
				if (j + tl > len)
					ok = false;
				i = j + tl;
				h = mix(h, LITERAL_MARK);
				continue;
			}
			/* $n parameter: kept */
			h = mix(h, c);
			i++;
			while (i < len && digit(s[i]))
				h = mix(h, s[i++]);
			continue;
		}
		if (digit(c) || (c == '.' && i + 1 < len && digit(s[i + 1]))) {
			/* a number: 0x / 0o / 0b prefixed (letters and '_' follow), or
			 * digits with one dot, '_' separators and an exponent */
			bool prefixed = c == '0' && i + 1 < len &&
			                ((s[i + 1] | 0x20) == 'x' || (s[i + 1] | 0x20) == 'o' ||
			                 (s[i + 1] | 0x20) == 'b');
			i += prefixed ? 2 : 1;
			while (i < len) {
				uint8_t d = s[i];
				if (prefixed ? (ident_char(d) && d != '$')
				             : (digit(d) || d == '.' || d == '_')) {
					i++;
				} else if (!prefixed && (d | 0x20) == 'e' && i + 1 < len &&
				           (digit(s[i + 1]) ||
				            ((s[i + 1] == '+' || s[i + 1] == '-') && i + 2 < len &&
				             digit(s[i + 2])))) {
					i += 2; /* 1e5, 1e-5 */
				} else {
					break;
				}
			}
			h = mix(h, LITERAL_MARK);
			continue;
		}
		if (ident_start(c)) {
			size_t start = i;
			while (i < len && ident_char(s[i]))
				i++;
			size_t n = i - start;
			/* E'..' (escapes), B'..', X'..', N'..', U&'..': the prefix and
			 * the string are one literal */
			if (i < len && s[i] == '\'' && n == 1) {
				uint8_t p = s[start] | 0x20;
				if (p == 'e' || p == 'b' || p == 'x' || p == 'n') {
					i = skip_string(s, i, len, p == 'e', &ok);
					h = mix(h, LITERAL_MARK);
					continue;
				}
			}
			if (n == 1 && (s[start] | 0x20) == 'u' && i + 1 < len && s[i] == '&' &&
			    s[i + 1] == '\'') {
				i = skip_string(s, i + 1, len, false, &ok);
				h = mix(h, LITERAL_MARK);
				continue;
			}
			for (size_t k = start; k < i; k++) {
				uint8_t d = s[k];
				h = mix(h, d >= 'A' && d <= 'Z' ? (uint8_t)(d | 0x20) : d);
			}
			h = mix(h, ' '); /* words stay apart: "a b" is not "ab" */
			continue;
		}
		h = mix(h, c);
		i++;
	}
	if (!ok)
		h = mix(h, BROKEN_MARK);
	return h;
}
