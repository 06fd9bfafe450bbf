/*
 * libFuzzer target: SQL comment hints (dataplane/pipeline/engine/hints.c). The input
 * is scanned from its own exact-size heap block, so a read past len is
 * caught. A slow byte-at-a-time reference lexer, written apart from the real
 * one's memchr skipping and early exit, lists the top-level block comments;
 * scanning just those comments, one after another, must give the same
 * result as scanning the whole text. hints_maybe must be true whenever
 * anything was seen, and the result must be well-formed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/pipeline/engine/hints.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct span {
	size_t body, len; /* text between the opener and the closer (or the end) */
	bool closed;
};

static bool letter(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool at(const uint8_t *s, size_t n, size_t i, const char *w)
{
	size_t l = strlen(w);
	return i + l <= n && memcmp(s + i, w, l) == 0;
}

/* scan.l's {quotecontinue} from i, just past a closing quote: returns the
 * offset past the continuing quote, or 0 when the literal ends. */
static size_t ref_continue(const uint8_t *s, size_t n, size_t i)
{
	bool newline = false;
	while (i < n) {
		uint8_t c = s[i];
		if (c == '\n' || c == '\r') {
			newline = true;
			i++;
		} else if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
			i++;
		} else if (at(s, n, i, "--")) {
			while (i < n && s[i] != '\n' && s[i] != '\r')
				i++;
		} else if (c == '\'' && newline) {
			return i + 1;
		} else {
			return 0;
		}
	}
	return 0;
}

/* Top-level block comments of s[0..n), PostgreSQL's way, into sp. */
static size_t ref_comments(const uint8_t *s, size_t n, struct span *sp)
{
	size_t ns = 0, i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c == '\'' || c == '"') {
			/* standard string or quoted identifier, with doubling */
			for (i++; i < n; i++) {
				if (s[i] == c) {
					if (i + 1 < n && s[i + 1] == c)
						i++;
					else
						break;
				}
			}
			i++;
		} else if (at(s, n, i, "--")) {
			while (i < n && s[i] != '\n' && s[i] != '\r')
				i++;
		} else if (at(s, n, i, "/*")) {
			size_t depth = 1, body = i + 2;
			i += 2;
			while (i < n && depth) {
				if (at(s, n, i, "/*")) {
					depth++;
					i += 2;
				} else if (at(s, n, i, "*/")) {
					depth--;
					i += 2;
				} else {
					i++;
				}
			}
			sp[ns].body = body;
			sp[ns].closed = depth == 0;
			sp[ns].len = (depth ? n : i - 2) - body;
			ns++;
		} else if (c == '$') {
			size_t j = i + 1;
			if (j < n && digit(s[j])) {
				while (j < n && digit(s[j]))
					j++;
				i = j;
				continue;
			}
			if (j < n && letter(s[j]))
				while (j < n && (letter(s[j]) || digit(s[j])))
					j++;
			if (j >= n || s[j] != '$') {
				i++;
				continue;
			}
			size_t tag = i, tlen = j + 1 - i;
			for (i = j + 1; i < n && !(i + tlen <= n && !memcmp(s + i, s + tag, tlen));
			     i++)
				;
			i += tlen;
		} else if (letter(c)) {
			size_t j = i + 1;
			while (j < n && (letter(s[j]) || digit(s[j]) || s[j] == '$'))
				j++;
			if (j - i == 1 && (c == 'e' || c == 'E') && j < n && s[j] == '\'') {
				i = j + 1;
				for (;;) {
					while (i < n && s[i] != '\'')
						i += s[i] == '\\' ? 2 : 1;
					if (i >= n)
						break;
					if (i + 1 < n && s[i + 1] == '\'') {
						i += 2;
						continue;
					}
					size_t k = ref_continue(s, n, i + 1);
					if (!k) {
						i++;
						break;
					}
					i = k;
				}
			} else {
				i = j;
			}
		} else {
			i++;
		}
	}
	return ns;
}

/* A key is [a-z0-9_.-]+ (lower-cased); a value or node name is
 * [A-Za-z0-9_.:-]+ (':' for cache=ttl:N). */
static bool str_ok(const char *s, size_t cap, bool key)
{
	size_t l = strnlen(s, cap);
	if (l == 0 || l == cap)
		return false;
	for (size_t i = 0; i < l; i++) {
		uint8_t c = (uint8_t)s[i];
		bool tok = (c >= 'a' && c <= 'z') || (!key && c >= 'A' && c <= 'Z') || digit(c) ||
		           c == '_' || c == '.' || c == '-' || (!key && c == ':');
		if (!tok)
			return false;
	}
	return true;
}

static void check_well_formed(const struct hints *h)
{
	if (h->route > HINT_ROUTE_NODE || h->n_extra > HINT_EXTRA_MAX)
		abort();
	if (h->route == HINT_ROUTE_NODE ? !str_ok(h->node, HINT_NAME_MAX, false) : h->node[0])
		abort();
	if (!h->found && (h->route != HINT_ROUTE_NONE || h->cache_skip || h->n_extra))
		abort();
	for (uint32_t i = 0; i < h->n_extra; i++) {
		if (!str_ok(h->extra[i].key, HINT_KEY_MAX, true) ||
		    !str_ok(h->extra[i].value, HINT_NAME_MAX, false))
			abort();
		if (!strcmp(h->extra[i].key, "route") || !strcmp(h->extra[i].key, "cache"))
			abort();
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(h->extra[i].key, h->extra[j].key))
				abort();
	}
}

static void check_same(const struct hints *a, const struct hints *b)
{
	if (a->found != b->found || a->route != b->route || strcmp(a->node, b->node) ||
	    a->cache_skip != b->cache_skip || a->n_extra != b->n_extra)
		abort();
	for (uint32_t i = 0; i < a->n_extra; i++)
		if (strcmp(a->extra[i].key, b->extra[i].key) ||
		    strcmp(a->extra[i].value, b->extra[i].value))
			abort();
	if (!a->ignored != !b->ignored || (a->ignored && strcmp(a->ignored, b->ignored)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	struct span *sp = malloc(sizeof(*sp) * (size / 4 + 1));
	if (!text || !sp)
		abort();
	memcpy(text, data, size);

	struct hints whole, only;
	hints_scan(text, size, &whole);
	check_well_formed(&whole);
	if ((whole.found || whole.ignored) && !hints_maybe(text, size))
		abort();

	/* The comments alone, separated by spaces, lex as they did in place. */
	size_t ns = ref_comments(data, size, sp), olen = 0;
	for (size_t i = 0; i < ns; i++)
		olen += sp[i].len + (sp[i].closed ? 5 : 2);
	char *o = malloc(olen ? olen : 1);
	if (!o)
		abort();
	size_t w = 0;
	for (size_t i = 0; i < ns; i++) {
		memcpy(o + w, "/*", 2);
		memcpy(o + w + 2, data + sp[i].body, sp[i].len);
		w += 2 + sp[i].len;
		if (sp[i].closed) {
			memcpy(o + w, "*/ ", 3);
			w += 3;
		}
	}
	hints_scan(o, olen, &only);
	check_same(&whole, &only);

	free(o);
	free(sp);
	free(text);
	return 0;
}
