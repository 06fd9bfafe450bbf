/*
 * Query rewriting (see rewrite.h). libpg_query parses, protobuf-c unpacks,
 * the tree is compared (rules) or edited (schema prefixing), and only the
 * statements that changed are deparsed. The length and depth bounds of
 * dataplane/sql/sqlscan.h keep the parser, unpacker, walks and deparser
 * within a worker's stack, as in analyze.c.
 */
#include "dataplane/pipeline/engine/rewrite.h"

#include "common/pbutil.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "dataplane/sql/sqlc.h" /* SQLC_MAX_STMT_LEN */
#include "dataplane/sql/sqlscan.h"

#define RW_MAX_CTES  256   /* CTE names in scope at once */
#define RW_NAME_MAX  63    /* NAMEDATALEN - 1: longer names are truncated by the server */
#define RW_MAX_SLOTS 65535 /* constants in one text, for a rule */

/* Writes a reason into why[len] (either may be NULL/0), truncated to fit. */
static __attribute__((format(printf, 3, 4))) void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* ---- Growable buffers ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Locations of constants, in tree-walk order. */
struct locs {
	int32_t *v;
	size_t n, cap;
	bool oom;
};

static void locs_push(struct locs *l, int32_t loc)
{
	if (l->oom)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		int32_t *v = cap <= RW_MAX_SLOTS ? realloc(l->v, cap * sizeof(*v)) : NULL;
		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = loc;
}

/* ---- Parsing within bounds ---- */

struct parsed {
	PgQueryProtobufParseResult pr;
	PgQuery__ParseResult *tree;
};

static void parsed_free(struct parsed *p)
{
	if (p->tree)
		pg_query__parse_result__free_unpacked(p->tree, NULL);
	pg_query_free_protobuf_parse_result(p->pr);
	memset(p, 0, sizeof(*p));
}

/* Parses and unpacks sql, refusing text over the length and depth bounds. */
static int parse_text(const char *sql, struct parsed *p, char *why, size_t whylen)
{
	size_t len = strlen(sql);
	bool lex_error = false;

	memset(p, 0, sizeof(*p));
	/* the scanner does not recurse: it keeps long statements from the parser */
	if (len > SQLC_MAX_STMT_LEN &&
	    sqlscan_check_stmt_lengths(sql, len, INT_MAX, &lex_error) < 0) {
		say(why, whylen, "statement longer than %u bytes", SQLC_MAX_STMT_LEN);
		return -1;
	}
	if (lex_error) {
		say(why, whylen, "syntax error (unterminated literal, identifier or comment)");
		return -1;
	}
	p->pr = pg_query_parse_protobuf(sql);
	if (p->pr.error) {
		say(why, whylen, "%s", p->pr.error->message ? p->pr.error->message : "parse error");
		return -1;
	}
	if (sqlscan_tree_depth_ok((const uint8_t *)p->pr.parse_tree.data, p->pr.parse_tree.len) <
	    0) {
		say(why, whylen, "statement nested deeper than %d levels", SQLC_MAX_DEPTH);
		return -1;
	}
	p->tree = pg_query__parse_result__unpack(NULL, p->pr.parse_tree.len,
	                                         (const uint8_t *)p->pr.parse_tree.data);
	if (!p->tree) {
		say(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- Generic walking ---- */

/* The message a Node holds (Node is a oneof of ~250 types), or m itself. */
static ProtobufCMessage *unwrap(const ProtobufCMessage *m)
{
	if (!m || m->descriptor != &pg_query__node__descriptor)
		return (ProtobufCMessage *)m;
	const PgQuery__Node *n = (const PgQuery__Node *)m;
	if (n->node_case == PG_QUERY__NODE__NODE__NOT_SET)
		return NULL;
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)n->node_case);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	return *(ProtobufCMessage **)((char *)m + f->offset);
}

typedef void (*child_fn)(void *ctx, ProtobufCMessage *child);

/* Calls fn on every message field of m (unwrapped from its Node), except the
 * fields at offsets skip1 and skip2 (0: none; offset 0 is never a field). */
static void each_child(ProtobufCMessage *m, child_fn fn, void *ctx, size_t skip1, size_t skip2)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->offset == skip1 || f->offset == skip2)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t cnt = *(size_t *)(base + f->quantifier_offset);
			ProtobufCMessage **v = *(ProtobufCMessage ***)(base + f->offset);
			for (size_t j = 0; j < cnt; j++) {
				ProtobufCMessage *c = unwrap(v[j]);
				if (c)
					fn(ctx, c);
			}
		} else if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
		           *(uint32_t *)(base + f->quantifier_offset) == f->id) {
			ProtobufCMessage *c = unwrap(*(ProtobufCMessage **)(base + f->offset));
			if (c)
				fn(ctx, c);
		}
	}
}

/* ---- Constants ---- */

struct consts {
	struct locs locs; /* of constants that have a location, tree order */
	int32_t max_param;
	bool in_type;
};

/* Collects the constants under m, as rewrite.h defines them. */
static void consts_walk(void *ctx, ProtobufCMessage *m)
{
	struct consts *c = ctx;
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (d == &pg_query__a__const__descriptor) {
		int32_t loc = ((PgQuery__AConst *)m)->location;
		if (!c->in_type && loc >= 0)
			locs_push(&c->locs, loc);
		return;
	}
	if (d == &pg_query__param_ref__descriptor) {
		int32_t n = ((PgQuery__ParamRef *)m)->number;
		if (n > c->max_param)
			c->max_param = n;
		return;
	}
	if (d == &pg_query__type_name__descriptor && !c->in_type) {
		c->in_type = true;
		each_child(m, consts_walk, c, 0, 0);
		c->in_type = false;
		return;
	}
	each_child(m, consts_walk, c, 0, 0);
}

static int collect_consts(PgQuery__ParseResult *tree, struct consts *c)
{
	memset(c, 0, sizeof(*c));
	consts_walk(c, &tree->base);
	return c->locs.oom ? -1 : 0;
}

/* ---- Tree comparison ---- */

/* Comparison modes: constants outside type names match any constant (rule
 * matching), or must be equal (checking that a deparse reads back). */
#define CMP_ANY_CONST 1u
#define CMP_IN_TYPE   2u

static bool same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, unsigned mode);

static bool same_value(const ProtobufCFieldDescriptor *f, const void *a, const void *b,
                       unsigned mode)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *x = *(char *const *)a, *y = *(char *const *)b;
		return strcmp(x ? x : "", y ? y : "") == 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *x = a, *y = b;
		return x->len == y->len && (!x->len || memcmp(x->data, y->data, x->len) == 0);
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return same_msg(*(ProtobufCMessage *const *)a, *(ProtobufCMessage *const *)b, mode);
	default:
		return memcmp(a, b, pb_elem_size(f->type)) == 0;
	}
}

/* Source positions differ between texts that mean the same. */
static bool is_position(const ProtobufCFieldDescriptor *f)
{
	return f->type == PROTOBUF_C_TYPE_INT32 &&
	       (strcmp(f->name, "location") == 0 || strcmp(f->name, "stmt_location") == 0 ||
	        strcmp(f->name, "stmt_len") == 0);
}

/*
 * Whether two trees are equal but for positions and, with CMP_ANY_CONST,
 * constant values (a constant without a position, made up by the grammar,
 * must be equal still). Recursion depth is the tree depth, bounded before
 * unpacking.
 */
static bool same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b, unsigned mode)
{
	if (!a || !b)
		return a == b;
	if (a->descriptor != b->descriptor)
		return false;
	const ProtobufCMessageDescriptor *d = a->descriptor;
	const char *pa = (const char *)a, *pb = (const char *)b;

	if (d == &pg_query__node__descriptor) {
		const PgQuery__Node *x = (const PgQuery__Node *)a, *y = (const PgQuery__Node *)b;
		return x->node_case == y->node_case && same_msg(unwrap(a), unwrap(b), mode);
	}
	if (d == &pg_query__a__const__descriptor && mode == CMP_ANY_CONST &&
	    ((const PgQuery__AConst *)a)->location >= 0 &&
	    ((const PgQuery__AConst *)b)->location >= 0)
		return true;
	if (d == &pg_query__type_name__descriptor)
		mode |= CMP_IN_TYPE;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (is_position(f))
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t na = *(const size_t *)(pa + f->quantifier_offset);
			size_t nb = *(const size_t *)(pb + f->quantifier_offset);
			if (na != nb)
				return false;
			const char *va = *(const char *const *)(pa + f->offset);
			const char *vb = *(const char *const *)(pb + f->offset);
			size_t sz = pb_elem_size(f->type);
			for (size_t j = 0; j < na; j++)
				if (!same_value(f, va + j * sz, vb + j * sz, mode))
					return false;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t ca = *(const uint32_t *)(pa + f->quantifier_offset);
			uint32_t cb = *(const uint32_t *)(pb + f->quantifier_offset);
			if ((ca == f->id) != (cb == f->id))
				return false;
			if (ca != f->id)
				continue;
		}
		if (!same_value(f, pa + f->offset, pb + f->offset, mode))
			return false;
	}
	return true;
}

/* ---- Scanner tokens ---- */

struct toks {
	PgQueryScanResult raw;
	PgQuery__ScanResult *res;
};

static void toks_free(struct toks *t)
{
	if (t->res)
		pg_query__scan_result__free_unpacked(t->res, NULL);
	pg_query_free_scan_result(t->raw);
	memset(t, 0, sizeof(*t));
}

static int toks_scan(const char *sql, struct toks *t)
{
	memset(t, 0, sizeof(*t));
	t->raw = pg_query_scan(sql);
	if (t->raw.error)
		return -1;
	t->res =
	    pg_query__scan_result__unpack(NULL, t->raw.pbuf.len, (const uint8_t *)t->raw.pbuf.data);
	return t->res ? 0 : -1;
}

/* Index of the token that starts at loc, or -1. Tokens are in text order. */
static long tok_at(const struct toks *t, int32_t loc)
{
	size_t lo = 0, hi = t->res->n_tokens;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int32_t s = t->res->tokens[mid]->start;
		if (s == loc)
			return (long)mid;
		if (s < loc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The text of the constant at loc: [*start, *end); *neg for "-" number. */
static int const_text(const struct toks *t, int32_t loc, int32_t *start, int32_t *end, bool *neg)
{
	long i = tok_at(t, loc);
	if (i < 0)
		return -1;
	PgQuery__ScanToken *const *v = t->res->tokens;
	size_t n = t->res->n_tokens;

	*start = v[i]->start;
	*end = v[i]->end;
	*neg = v[i]->token == PG_QUERY__TOKEN__ASCII_45;
	if (*neg) { /* the grammar folds '-' into the number after it */
		if ((size_t)i + 1 >= n || (v[i + 1]->token != PG_QUERY__TOKEN__ICONST &&
		                           v[i + 1]->token != PG_QUERY__TOKEN__FCONST))
			return -1;
		*end = v[i + 1]->end;
	} else if (v[i]->token == PG_QUERY__TOKEN__USCONST && (size_t)i + 2 < n &&
	           v[i + 1]->token == PG_QUERY__TOKEN__UESCAPE &&
	           v[i + 2]->token == PG_QUERY__TOKEN__SCONST) {
		*end = v[i + 2]->end; /* U&'...' UESCAPE '!' is one literal */
	}
	return 0;
}

/* ---- Rules ---- */

struct rw_hole {
	int32_t start, end; /* the $n token in the replacement */
	uint32_t slot;      /* n - p - 1: index of the constant in match-text order */
};

struct rw_rule {
	uint64_t fp;
	struct parsed match;
	char *repl;
	size_t repl_len;
	struct rw_hole *holes;
	size_t n_holes;
	uint32_t *rank; /* tree-order constant i is constant rank[i] in text order */
	size_t n_slots;
};

struct rw_rules {
	struct rw_rule *v;
	size_t n, cap;
};

struct rw_rules *rw_rules_new(void)
{
	return calloc(1, sizeof(struct rw_rules));
}

static void rule_free(struct rw_rule *r)
{
	parsed_free(&r->match);
	free(r->repl);
	free(r->holes);
	free(r->rank);
}

void rw_rules_free(struct rw_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		rule_free(&r->v[i]);
	free(r->v);
	free(r);
}

static int fingerprint(const char *sql, uint64_t *fp, char *why, size_t whylen)
{
	PgQueryFingerprintResult f = pg_query_fingerprint(sql);
	int rc = 0;

	if (f.error) {
		say(why, whylen, "fingerprint: %s", f.error->message ? f.error->message : "error");
		rc = -1;
	} else {
		*fp = f.fingerprint;
	}
	pg_query_free_fingerprint_result(f);
	return rc;
}

/* First rule with fingerprint >= fp. */
static size_t rule_lower_bound(const struct rw_rules *r, uint64_t fp)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->v[mid].fp < fp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct rw_rule *rule_find(const struct rw_rules *r, uint64_t fp,
                                       const PgQuery__ParseResult *tree)
{
	for (size_t i = rule_lower_bound(r, fp); i < r->n && r->v[i].fp == fp; i++)
		if (same_msg(&r->v[i].match.tree->base, &tree->base, CMP_ANY_CONST))
			return &r->v[i];
	return NULL;
}

static int cmp_by_loc(const void *a, const void *b, void *arg)
{
	const int32_t *loc = arg;
	int32_t x = loc[*(const uint32_t *)a], y = loc[*(const uint32_t *)b];
	return (x > y) - (x < y);
}

/* rank[i]: place of tree-order constant i in text order. */
static uint32_t *text_ranks(const struct locs *l)
{
	uint32_t *order = malloc((l->n ? l->n : 1) * sizeof(*order));
	uint32_t *rank = order ? malloc((l->n ? l->n : 1) * sizeof(*rank)) : NULL;
	if (!rank)
		goto out;
	for (size_t i = 0; i < l->n; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, l->n, sizeof(*order), cmp_by_loc, l->v);
	for (size_t i = 0; i < l->n; i++)
		rank[order[i]] = (uint32_t)i;
out:
	free(order);
	return rank;
}

/* Finds the $n placeholders of the replacement that stand for constants. */
static int find_holes(struct rw_rule *rule, int32_t max_param, char *err, size_t errlen)
{
	struct toks t;
	int rc = -1;

	if (toks_scan(rule->repl, &t) < 0) {
		say(err, errlen, "replacement: does not scan");
		goto out;
	}
	rule->holes = calloc(t.res->n_tokens ? t.res->n_tokens : 1, sizeof(*rule->holes));
	if (!rule->holes) {
		say(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < t.res->n_tokens; i++) {
		const PgQuery__ScanToken *tk = t.res->tokens[i];
		if (tk->token != PG_QUERY__TOKEN__PARAM)
			continue;
		long n = strtol(rule->repl + tk->start + 1, NULL, 10);
		if (n < 1 || n > INT_MAX) {
			say(err, errlen, "replacement: placeholder %.*s out of range",
			    (int)(tk->end - tk->start), rule->repl + tk->start);
			goto out;
		}
		if (n <= max_param)
			continue; /* a parameter of the incoming statement */
		if ((size_t)(n - max_param) > rule->n_slots) {
			say(err, errlen,
			    "replacement uses $%ld but the match text has %d parameter(s) and %zu "
			    "constant(s): placeholders go up to $%zu",
			    n, max_param, rule->n_slots, (size_t)max_param + rule->n_slots);
			goto out;
		}
		struct rw_hole *h = &rule->holes[rule->n_holes++];
		h->start = tk->start;
		h->end = tk->end;
		h->slot = (uint32_t)(n - max_param - 1);
	}
	rc = 0;
out:
	toks_free(&t);
	return rc;
}

int rw_rules_add(struct rw_rules *r, const char *match_sql, const char *replacement_sql, char *err,
                 size_t errlen)
{
	struct rw_rule rule = {0};
	struct parsed rp = {0};
	struct consts c = {0};
	char why[256];

	say(err, errlen, "%s", "");
	if (!r || !match_sql || !replacement_sql) {
		say(err, errlen, "missing match or replacement text");
		return -1;
	}
	if (parse_text(match_sql, &rule.match, why, sizeof(why)) < 0) {
		say(err, errlen, "match: %s", why);
		goto fail;
	}
	if (rule.match.tree->n_stmts == 0) {
		say(err, errlen, "match: no statement");
		goto fail;
	}
	if (fingerprint(match_sql, &rule.fp, why, sizeof(why)) < 0) {
		say(err, errlen, "match: %s", why);
		goto fail;
	}
	if (rule_find(r, rule.fp, rule.match.tree)) {
		say(err, errlen, "a rule for this match text exists already");
		goto fail;
	}
	if (parse_text(replacement_sql, &rp, why, sizeof(why)) < 0) {
		say(err, errlen, "replacement: %s", why);
		goto fail;
	}
	if (rp.tree->n_stmts == 0) { /* an empty query would answer nothing */
		say(err, errlen, "replacement: no statement");
		goto fail;
	}
	if (collect_consts(rule.match.tree, &c) < 0) {
		say(err, errlen, "match: too many constants");
		goto fail;
	}
	rule.n_slots = c.locs.n;
	rule.rank = text_ranks(&c.locs);
	rule.repl = strdup(replacement_sql);
	if (!rule.rank || !rule.repl) {
		say(err, errlen, "out of memory");
		goto fail;
	}
	rule.repl_len = strlen(rule.repl);
	if (find_holes(&rule, c.max_param, err, errlen) < 0)
		goto fail;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct rw_rule *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			say(err, errlen, "out of memory");
			goto fail;
		}
		r->v = v;
		r->cap = cap;
	}
	/* sorted by fingerprint; equal ones in the order they were added */
	size_t at = rule_lower_bound(r, rule.fp + 1);
	if (rule.fp == UINT64_MAX)
		at = r->n;
	memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof(*r->v));
	r->v[at] = rule;
	r->n++;
	free(c.locs.v);
	parsed_free(&rp);
	return 0;
fail:
	free(c.locs.v);
	parsed_free(&rp);
	rule_free(&rule);
	return -1;
}

/* Whether ch, next to a substituted constant, could merge with it into one
 * token (an identifier, a number, a quoted string). */
static bool joins_token(char ch)
{
	unsigned char c = (unsigned char)ch;
	return c >= 0x80 || c == '_' || c == '$' || c == '\'' || c == '"' ||
	       (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Applies the rule matching the whole text in, if any: *text is the new text
 * (malloc'd), or NULL when no rule matches. -1 with why on failure.
 */
static int apply_rules(const struct rw_rules *rules, const char *sql, const struct parsed *in,
                       char **text, char *why, size_t whylen)
{
	struct consts c = {0};
	struct toks t = {0};
	struct sbuf b = {0};
	struct {
		int32_t start, end;
		bool neg;
	} *val = NULL;
	uint64_t fp;
	int rc = -1;

	*text = NULL;
	if (in->tree->n_stmts == 0)
		return 0;
	if (fingerprint(sql, &fp, why, whylen) < 0)
		return -1;
	const struct rw_rule *rule = rule_find(rules, fp, in->tree);
	if (!rule)
		return 0;
	if (rule->n_holes) {
		if (collect_consts(in->tree, &c) < 0 || c.locs.n != rule->n_slots) {
			say(why, whylen, "rule: constants do not line up");
			goto out;
		}
		if (toks_scan(sql, &t) < 0) {
			say(why, whylen, "rule: text does not scan");
			goto out;
		}
		val = calloc(c.locs.n, sizeof(*val));
		if (!val) {
			say(why, whylen, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < c.locs.n; i++) {
			uint32_t k = rule->rank[i];
			if (const_text(&t, c.locs.v[i], &val[k].start, &val[k].end, &val[k].neg) <
			    0) {
				say(why, whylen, "rule: no literal at offset %d", c.locs.v[i]);
				goto out;
			}
		}
	}
	size_t pos = 0;
	for (size_t i = 0; i < rule->n_holes; i++) {
		const struct rw_hole *h = &rule->holes[i];
		sb_add(&b, rule->repl + pos, (size_t)h->start - pos);
		if (b.len && joins_token(b.p[b.len - 1]))
			sb_add(&b, " ", 1);
		char next = rule->repl[h->end];
		bool paren = val[h->slot].neg || next == '.' || next == '[';
		if (paren)
			sb_add(&b, "(", 1);
		sb_add(&b, sql + val[h->slot].start,
		       (size_t)(val[h->slot].end - val[h->slot].start));
		if (paren)
			sb_add(&b, ")", 1);
		else if (joins_token(next))
			sb_add(&b, " ", 1);
		pos = (size_t)h->end;
	}
	sb_add(&b, rule->repl + pos, rule->repl_len - pos);
	if (b.oom || !b.p) {
		say(why, whylen, "out of memory");
		goto out;
	}
	*text = b.p;
	b.p = NULL;
	rc = 0;
out:
	free(b.p);
	free(val);
	free(c.locs.v);
	toks_free(&t);
	return rc;
}

/* ---- Schema prefixing ---- */

struct pfx {
	const char *schema;
	const char *ctes[RW_MAX_CTES];
	unsigned n_ctes;
	unsigned changed;
	const char *err; /* static message once something failed */
};

static bool is_set(const char *s)
{
	return s && *s;
}

static bool is_catalog_name(const char *name)
{
	return strncmp(name, "pg_", 3) == 0;
}

static bool is_cte(const struct pfx *w, const char *name)
{
	for (unsigned i = w->n_ctes; i-- > 0;)
		if (strcmp(w->ctes[i], name) == 0)
			return true;
	return false;
}

/* Qualifies rv unless it is qualified, a catalog, a temporary relation being
 * created or (unless target: a DML or INTO target) a CTE in scope. */
static void pfx_range_var(struct pfx *w, PgQuery__RangeVar *rv, bool target)
{
	if (!rv || !is_set(rv->relname) || is_set(rv->schemaname) || is_set(rv->catalogname) ||
	    is_catalog_name(rv->relname) || (rv->relpersistence && rv->relpersistence[0] == 't'))
		return;
	if (!target && is_cte(w, rv->relname))
		return;
	char *s = strdup(w->schema);
	if (!s) {
		w->err = "out of memory";
		return;
	}
	/* an empty string read from the wire is allocated; the default is not */
	if (rv->schemaname && rv->schemaname != (char *)protobuf_c_empty_string)
		free(rv->schemaname);
	rv->schemaname = s;
	w->changed++;
}

static PgQuery__Node *new_string_node(const char *s)
{
	PgQuery__Node *n = malloc(sizeof(*n));
	PgQuery__String *str = malloc(sizeof(*str));
	char *v = strdup(s);
	if (!n || !str || !v) {
		free(n);
		free(str);
		free(v);
		return NULL;
	}
	pg_query__node__init(n);
	pg_query__string__init(str);
	str->sval = v;
	n->node_case = PG_QUERY__NODE__NODE_STRING;
	n->string = str;
	return n;
}

/* A name list [table, ...] of unqualified_len parts (0: none) gets the
 * schema in front (DROP TABLE t, COMMENT ON COLUMN t.c, DROP TRIGGER x ON t). */
static void pfx_name_list(struct pfx *w, PgQuery__Node *o, size_t unqualified_len)
{
	if (!unqualified_len || !o || o->node_case != PG_QUERY__NODE__NODE_LIST)
		return;
	PgQuery__List *l = o->list;
	if (l->n_items != unqualified_len || !l->items[0] ||
	    l->items[0]->node_case != PG_QUERY__NODE__NODE_STRING ||
	    !is_set(l->items[0]->string->sval) || is_catalog_name(l->items[0]->string->sval))
		return;
	PgQuery__Node **items = realloc(l->items, (l->n_items + 1) * sizeof(*items));
	if (!items) {
		w->err = "out of memory";
		return;
	}
	l->items = items;
	PgQuery__Node *s = new_string_node(w->schema);
	if (!s) {
		w->err = "out of memory";
		return;
	}
	memmove(&items[1], &items[0], l->n_items * sizeof(*items));
	items[0] = s;
	l->n_items++;
	w->changed++;
}

/* Parts of an unqualified name of an object of type t, or 0 for objects
 * that are not relations or things of a relation. */
static size_t unqualified_parts(PgQuery__ObjectType t)
{
	switch (t) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
	case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
		return 1;
	case PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN:
	case PG_QUERY__OBJECT_TYPE__OBJECT_TRIGGER:
	case PG_QUERY__OBJECT_TYPE__OBJECT_RULE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_POLICY:
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABCONSTRAINT:
		return 2;
	default:
		return 0;
	}
}

static void pfx_msg(void *ctx, ProtobufCMessage *m);

static void push_cte(struct pfx *w, const PgQuery__Node *n)
{
	if (!n || n->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ||
	    !is_set(n->common_table_expr->ctename))
		return;
	if (w->n_ctes == RW_MAX_CTES) {
		w->err = "too many CTE names in scope";
		return;
	}
	w->ctes[w->n_ctes++] = n->common_table_expr->ctename;
}

/* Walks a WITH clause and leaves its names in scope (the caller restores
 * n_ctes). A non-recursive CTE sees only the ones before it; a recursive
 * WITH sees all of its names in every body. */
static void pfx_with(struct pfx *w, PgQuery__WithClause *with)
{
	if (!with)
		return;
	if (with->recursive)
		for (size_t i = 0; i < with->n_ctes; i++)
			push_cte(w, with->ctes[i]);
	for (size_t i = 0; i < with->n_ctes; i++) {
		ProtobufCMessage *c = unwrap((ProtobufCMessage *)with->ctes[i]);
		if (c)
			pfx_msg(w, c);
		if (!with->recursive)
			push_cte(w, with->ctes[i]);
	}
}

/* INSERT/UPDATE/DELETE/MERGE: the target is a table even if a CTE has its
 * name; the WITH is in scope for the rest. */
static void pfx_dml(struct pfx *w, ProtobufCMessage *m, PgQuery__RangeVar *rel, size_t rel_off,
                    PgQuery__WithClause *with, size_t with_off)
{
	unsigned saved = w->n_ctes;

	pfx_range_var(w, rel, true);
	pfx_with(w, with);
	each_child(m, pfx_msg, w, rel_off, with_off);
	w->n_ctes = saved;
}

/* Statements with a target relation and a WITH clause. */
static const struct {
	const ProtobufCMessageDescriptor *desc;
	size_t rel, with; /* offsets of the target RangeVar and the WithClause */
} dml[] = {
    {&pg_query__insert_stmt__descriptor, offsetof(PgQuery__InsertStmt, relation),
     offsetof(PgQuery__InsertStmt, with_clause)},
    {&pg_query__update_stmt__descriptor, offsetof(PgQuery__UpdateStmt, relation),
     offsetof(PgQuery__UpdateStmt, with_clause)},
    {&pg_query__delete_stmt__descriptor, offsetof(PgQuery__DeleteStmt, relation),
     offsetof(PgQuery__DeleteStmt, with_clause)},
    {&pg_query__merge_stmt__descriptor, offsetof(PgQuery__MergeStmt, relation),
     offsetof(PgQuery__MergeStmt, with_clause)},
};

/* Generic over the protobuf-c descriptors, so no node type hides a RangeVar;
 * recursion depth is the tree depth, bounded before unpacking. */
static void pfx_msg(void *ctx, ProtobufCMessage *m)
{
	struct pfx *w = ctx;
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (w->err)
		return;
	if (d == &pg_query__range_var__descriptor) {
		pfx_range_var(w, (PgQuery__RangeVar *)m, false);
		return; /* only its alias is below */
	}
	if (d == &pg_query__select_stmt__descriptor) {
		PgQuery__SelectStmt *s = (PgQuery__SelectStmt *)m;
		unsigned saved = w->n_ctes;
		if (s->into_clause) /* created here: before the WITH names */
			pfx_range_var(w, s->into_clause->rel, true);
		pfx_with(w, s->with_clause);
		/* FOR UPDATE OF names FROM items, not tables: locking_clause is
		 * skipped (the into_clause walked again is qualified already). */
		each_child(m, pfx_msg, w, offsetof(PgQuery__SelectStmt, with_clause),
		           offsetof(PgQuery__SelectStmt, locking_clause));
		w->n_ctes = saved;
		return;
	}
	for (size_t i = 0; i < sizeof(dml) / sizeof(dml[0]); i++) {
		if (d != dml[i].desc)
			continue;
		pfx_dml(w, m, *(PgQuery__RangeVar **)((char *)m + dml[i].rel), dml[i].rel,
		        *(PgQuery__WithClause **)((char *)m + dml[i].with), dml[i].with);
		return;
	}
	if (d == &pg_query__create_schema_stmt__descriptor)
		return; /* its elements belong to the schema it creates */
	if (d == &pg_query__drop_stmt__descriptor) {
		PgQuery__DropStmt *s = (PgQuery__DropStmt *)m;
		for (size_t i = 0; i < s->n_objects; i++)
			pfx_name_list(w, s->objects[i], unqualified_parts(s->remove_type));
		return; /* names only */
	}
	if (d == &pg_query__comment_stmt__descriptor) {
		PgQuery__CommentStmt *s = (PgQuery__CommentStmt *)m;
		pfx_name_list(w, s->object, unqualified_parts(s->objtype));
		return;
	}
	if (d == &pg_query__sec_label_stmt__descriptor) {
		PgQuery__SecLabelStmt *s = (PgQuery__SecLabelStmt *)m;
		pfx_name_list(w, s->object, unqualified_parts(s->objtype));
		return;
	}
	if (d == &pg_query__create_seq_stmt__descriptor) {
		const PgQuery__RangeVar *seq = ((PgQuery__CreateSeqStmt *)m)->sequence;
		if (seq && seq->relpersistence && seq->relpersistence[0] == 't')
			return; /* OWNED BY names a temporary table too */
	}
	if (d == &pg_query__def_elem__descriptor) {
		/* CREATE/ALTER SEQUENCE ... OWNED BY table.column (not NONE) */
		PgQuery__DefElem *e = (PgQuery__DefElem *)m;
		if (is_set(e->defname) && strcmp(e->defname, "owned_by") == 0)
			pfx_name_list(w, e->arg, 2);
	}
	each_child(m, pfx_msg, w, 0, 0);
}

/*
 * Deparses statement i of tree alone, and reads the text back: libpg_query's
 * deparser has bugs (15-4.0.0 writes "FOR UPDATE OF tNOWAIT"), and a text
 * that parses to another tree must not reach the server.
 */
static char *deparse_one(const PgQuery__ParseResult *tree, size_t i, char *why, size_t whylen)
{
	PgQuery__ParseResult one = PG_QUERY__PARSE_RESULT__INIT;
	char *res = NULL;

	one.version = tree->version;
	one.n_stmts = 1;
	one.stmts = &tree->stmts[i];
	size_t len = pg_query__parse_result__get_packed_size(&one);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		say(why, whylen, "out of memory");
		return NULL;
	}
	pg_query__parse_result__pack(&one, buf);
	PgQueryProtobuf pb = {.len = len, .data = (char *)buf};
	PgQueryDeparseResult d = pg_query_deparse_protobuf(pb);
	if (d.error)
		say(why, whylen, "deparse: %s", d.error->message ? d.error->message : "error");
	else if (!d.query || !(res = strdup(d.query)))
		say(why, whylen, "out of memory");
	pg_query_free_deparse_result(d);
	free(buf);
	if (!res)
		return NULL;

	struct parsed back;
	char msg[128];
	if (parse_text(res, &back, msg, sizeof(msg)) < 0) {
		say(why, whylen, "deparse: the text does not parse back: %s", msg);
		goto bad;
	}
	if (back.tree->n_stmts != 1 ||
	    !same_msg((const ProtobufCMessage *)tree->stmts[i]->stmt,
	              (const ProtobufCMessage *)back.tree->stmts[0]->stmt, 0)) {
		say(why, whylen, "deparse: the text does not parse back to the same tree");
		goto bad;
	}
	parsed_free(&back);
	return res;
bad:
	parsed_free(&back);
	free(res);
	return NULL;
}

/*
 * Qualifies the tables of the parsed text sql. *out is the new text, or
 * NULL when nothing needed qualifying. -1 with why on failure.
 */
static int prefix_schema(const char *sql, struct parsed *p, const char *schema, char **out,
                         char *why, size_t whylen)
{
	struct pfx *w = calloc(1, sizeof(*w)); /* 2 KB of CTE names: off the stack */
	struct sqlscan_toks st = {0};
	struct sbuf b = {0};
	size_t total = strlen(sql), pos = 0;
	int rc = -1;

	*out = NULL;
	if (!w) {
		say(why, whylen, "out of memory");
		return -1;
	}
	w->schema = schema;
	for (size_t i = 0; i < p->tree->n_stmts; i++) {
		PgQuery__RawStmt *rs = p->tree->stmts[i];
		unsigned before = w->changed;
		ProtobufCMessage *m = rs ? unwrap((ProtobufCMessage *)rs->stmt) : NULL;

		w->n_ctes = 0;
		if (m)
			pfx_msg(w, m);
		if (w->err) {
			say(why, whylen, "%s", w->err);
			goto out;
		}
		if (w->changed == before)
			continue;
		char *text = deparse_one(p->tree, i, why, whylen);
		if (!text)
			goto out;
		uint32_t loc, len;
		sqlscan_stmt_range(sql, total, &st, rs, &loc, &len);
		if (loc < pos || (size_t)loc + len > total) { /* not expected: ranges are ordered */
			free(text);
			say(why, whylen, "statement ranges overlap");
			goto out;
		}
		sb_add(&b, sql + pos, loc - pos);
		sb_add(&b, text, strlen(text));
		free(text);
		pos = (size_t)loc + len;
	}
	if (w->changed) {
		sb_add(&b, sql + pos, total - pos);
		if (b.oom) {
			say(why, whylen, "out of memory");
			goto out;
		}
		*out = b.p;
		b.p = NULL;
	}
	rc = 0;
out:
	free(b.p);
	sqlscan_toks_free(&st);
	free(w);
	return rc;
}

/* ---- Entry points ---- */

enum rw_status rw_rewrite(const struct rw_rules *rules, const char *schema, const char *sql,
                          char **out, char *why, size_t whylen)
{
	struct parsed in = {0}, re = {0};
	char *text = NULL, *prefixed = NULL;
	enum rw_status st = RW_FAILED;
	char msg[256];

	say(why, whylen, "%s", "");
	if (out)
		*out = NULL;
	if (!out || !sql) {
		say(why, whylen, "no text");
		return RW_FAILED;
	}
	bool have_rules = rules && rules->n;
	bool have_schema = is_set(schema);
	if (!have_rules && !have_schema)
		return RW_UNCHANGED;
	if (have_schema && strlen(schema) > RW_NAME_MAX) {
		say(why, whylen, "schema name longer than %d bytes", RW_NAME_MAX);
		return RW_FAILED;
	}
	if (parse_text(sql, &in, why, whylen) < 0)
		goto out;
	if (have_rules && apply_rules(rules, sql, &in, &text, why, whylen) < 0)
		goto out;
	struct parsed *p = &in;
	if (text) {
		/* a substituted constant may not fit where its placeholder is */
		if (parse_text(text, &re, msg, sizeof(msg)) < 0) {
			say(why, whylen, "rewritten text does not parse: %s", msg);
			goto out;
		}
		p = &re;
	}
	if (have_schema) {
		if (prefix_schema(text ? text : sql, p, schema, &prefixed, why, whylen) < 0)
			goto out;
		if (prefixed) {
			free(text);
			text = prefixed;
		}
	}
	st = RW_UNCHANGED;
	if (text) {
		*out = text;
		text = NULL;
		st = RW_REWRITTEN;
	}
out:
	free(text);
	parsed_free(&re);
	parsed_free(&in);
	return st;
}

const char *rw_status_str(enum rw_status st)
{
	switch (st) {
	case RW_UNCHANGED:
		return "unchanged";
	case RW_REWRITTEN:
		return "rewritten";
	case RW_FAILED:
		return "failed";
	}
	return "?";
}

char *rw_normalize(const char *sql)
{
	struct parsed p;
	char *res = NULL;

	if (!sql)
		return NULL;
	/* normalize walks the tree recursively: same bounds as for rewriting */
	if (parse_text(sql, &p, NULL, 0) < 0) {
		parsed_free(&p);
		return NULL;
	}
	parsed_free(&p);
	PgQueryNormalizeResult n = pg_query_normalize(sql);
	if (!n.error && n.normalized_query)
		res = strdup(n.normalized_query);
	pg_query_free_normalize_result(n);
	return res;
}
