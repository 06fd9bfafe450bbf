/*
 * Unit tests for dataplane/pipeline/rewrite: the schema-prefixing corpus in
 * tests/rewrite/corpus.txt, fingerprint rules and their placeholders, hostile
 * and oversized input, and concurrent use of one rule set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>
#include <pg_query.h>

#include "dataplane/pipeline/engine/rewrite.h"

/* scripts/run-unit.sh runs every test program from the repository root */
#define CORPUS_PATH "tests/rewrite/corpus.txt"

/* ---- Helpers ---- */

/* Rewrites sql; the status must be want, and a rewritten text want_text. */
static void expect(const struct rw_rules *rules, const char *schema, const char *sql,
                   enum rw_status want, const char *want_text)
{
	char why[256] = "";
	char *out = (char *)1;
	enum rw_status st = rw_rewrite(rules, schema, sql, &out, why, sizeof(why));

	if (st != want)
		fail_msg("%s\n  status %s, want %s (why: %s; out: %s)", sql, rw_status_str(st),
		         rw_status_str(want), why, out ? out : "(null)");
	if (st != RW_REWRITTEN && out)
		fail_msg("%s: out set with status %s", sql, rw_status_str(st));
	if (st == RW_FAILED && !why[0])
		fail_msg("%s: failed without a reason", sql);
	if (st == RW_REWRITTEN && want_text && strcmp(out, want_text) != 0)
		fail_msg("%s\n  got:  %s\n  want: %s", sql, out, want_text);
	free(out);
}

static void expect_text(const struct rw_rules *rules, const char *schema, const char *sql,
                        const char *want_text)
{
	expect(rules, schema, sql, RW_REWRITTEN, want_text);
}

/* Rewrites sql, which must fail with a reason containing want_why. */
static void expect_failure(const struct rw_rules *rules, const char *schema, const char *sql,
                           const char *want_why)
{
	char why[256] = "";
	char *out = NULL;
	enum rw_status st = rw_rewrite(rules, schema, sql, &out, why, sizeof(why));

	if (st != RW_FAILED || out)
		fail_msg("%.200s: status %s, want failed", sql, rw_status_str(st));
	if (!strstr(why, want_why))
		fail_msg("%.200s: why \"%s\", want \"%s\" in it", sql, why, want_why);
}

static void add_rule(struct rw_rules *r, const char *match, const char *repl)
{
	char err[256] = "";
	if (rw_rules_add(r, match, repl, err, sizeof(err)) != 0)
		fail_msg("rule %s -> %s refused: %s", match, repl, err);
}

/* The rule must be refused with a message containing want. */
static void refuse_rule(struct rw_rules *r, const char *match, const char *repl, const char *want)
{
	char err[256] = "";
	if (rw_rules_add(r, match, repl, err, sizeof(err)) == 0)
		fail_msg("rule %s -> %s accepted", match, repl);
	if (!strstr(err, want))
		fail_msg("rule %s -> %s: \"%s\", want \"%s\" in it", match, repl, err, want);
}

static uint64_t fingerprint(const char *sql)
{
	PgQueryFingerprintResult f = pg_query_fingerprint(sql);
	assert_null(f.error);
	uint64_t fp = f.fingerprint;
	pg_query_free_fingerprint_result(f);
	return fp;
}

/* head, then body n times, then tail: a malloc'd text. */
static char *repeat(const char *head, const char *body, size_t n, const char *tail)
{
	size_t hl = strlen(head), bl = strlen(body), tl = strlen(tail);
	char *s = malloc(hl + bl * n + tl + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * bl, body, bl);
	memcpy(s + hl + n * bl, tail, tl + 1);
	return s;
}

/* ---- Corpus ---- */

struct rw_case {
	int line;
	char *name, *in, *out; /* out: expected text, "(unchanged)" or "(failed)" */
};

struct corpus {
	struct rw_case *v;
	size_t n;
};

static char *after_tag(char *line, const char *tag)
{
	size_t n = strlen(tag);
	if (strncmp(line, tag, n) != 0)
		return NULL;
	line += n;
	while (*line == ' ')
		line++;
	return line;
}

/* Reads the corpus; a malformed file fails the test with its line number. */
static void corpus_load(struct corpus *c)
{
	FILE *f = fopen(CORPUS_PATH, "r");
	if (!f)
		fail_msg("cannot open %s: run the test from the repository root "
		         "(scripts/run-unit.sh does)",
		         CORPUS_PATH);
	char *line = NULL, *name = NULL, *in = NULL;
	size_t cap = 0;
	int lineno = 0;

	memset(c, 0, sizeof(*c));
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		char *v;
		if (!line[0] || line[0] == '#')
			continue;
		if ((v = after_tag(line, "-- "))) {
			if (name || in)
				fail_msg("%s:%d: case without OUT before it", CORPUS_PATH, lineno);
			name = strdup(v);
		} else if ((v = after_tag(line, "IN:"))) {
			if (!name || in)
				fail_msg("%s:%d: IN without a name", CORPUS_PATH, lineno);
			in = strdup(v);
		} else if ((v = after_tag(line, "OUT:"))) {
			if (!name || !in)
				fail_msg("%s:%d: OUT without IN", CORPUS_PATH, lineno);
			c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
			assert_non_null(c->v);
			c->v[c->n++] = (struct rw_case){lineno, name, in, strdup(v)};
			name = in = NULL;
		} else {
			fail_msg("%s:%d: unexpected line: %s", CORPUS_PATH, lineno, line);
		}
	}
	if (name || in)
		fail_msg("%s: last case has no OUT", CORPUS_PATH);
	free(line);
	fclose(f);
}

static void corpus_free(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].name);
		free(c->v[i].in);
		free(c->v[i].out);
	}
	free(c->v);
}

static void test_corpus_cases_rewrite_as_listed(void **state __attribute__((unused)))
{
	struct corpus c;
	size_t rewritten = 0, unchanged = 0, failed = 0;

	corpus_load(&c);
	assert_true(c.n >= 45);
	for (size_t i = 0; i < c.n; i++) {
		const struct rw_case *k = &c.v[i];
		char why[256] = "";
		char *out = NULL;
		enum rw_status st = rw_rewrite(NULL, "tenant_a", k->in, &out, why, sizeof(why));
		enum rw_status want = strcmp(k->out, "(unchanged)") == 0 ? RW_UNCHANGED
		                      : strcmp(k->out, "(failed)") == 0  ? RW_FAILED
		                                                         : RW_REWRITTEN;
		if (st != want || (want == RW_REWRITTEN && strcmp(out, k->out) != 0))
			fail_msg("%s:%d: %s\n  in:   %s\n  got:  %s %s\n  want: %s", CORPUS_PATH,
			         k->line, k->name, k->in, rw_status_str(st), out ? out : why,
			         k->out);
		rewritten += st == RW_REWRITTEN;
		unchanged += st == RW_UNCHANGED;
		failed += st == RW_FAILED;
		free(out);
	}
	print_message("corpus: %zu cases, %zu rewritten, %zu unchanged, %zu refused\n", c.n,
	              rewritten, unchanged, failed);
	corpus_free(&c);
}

/* A rewritten text has nothing left to qualify: rewriting it again changes
 * nothing, which also proves every output parses. */
static void test_corpus_outputs_need_no_second_rewrite(void **state __attribute__((unused)))
{
	struct corpus c;

	corpus_load(&c);
	for (size_t i = 0; i < c.n; i++) {
		const struct rw_case *k = &c.v[i];
		if (k->out[0] == '(')
			continue;
		char why[256] = "";
		char *out = NULL;
		enum rw_status st = rw_rewrite(NULL, "tenant_a", k->out, &out, why, sizeof(why));
		if (st != RW_UNCHANGED)
			fail_msg("%s:%d: second rewrite of %s: %s %s", CORPUS_PATH, k->line, k->out,
			         rw_status_str(st), out ? out : why);
	}
	corpus_free(&c);
}

/* ---- Schema prefixing ---- */

static void test_schema_that_needs_quotes_is_quoted(void **state __attribute__((unused)))
{
	expect_text(
	    NULL, "Tenant-1", "SELECT * FROM users u JOIN orders o ON o.uid = u.id",
	    "SELECT * FROM \"Tenant-1\".users u JOIN \"Tenant-1\".orders o ON o.uid = u.id");
	expect_text(NULL, "select", "DELETE FROM users", "DELETE FROM \"select\".users");
	expect_text(NULL, "Ünïcode", "SELECT * FROM t", "SELECT * FROM \"Ünïcode\".t");
	expect_text(NULL, "we\"ird", "SELECT * FROM t", "SELECT * FROM \"we\"\"ird\".t");
	expect_text(NULL, "Tenant-1", "DROP TABLE t", "DROP TABLE \"Tenant-1\".t");
	expect_text(NULL, "plain_1", "SELECT * FROM \"Mixed Case\"",
	            "SELECT * FROM plain_1.\"Mixed Case\"");
}

static void test_schema_name_longer_than_a_postgres_name_fails(void **state __attribute__((unused)))
{
	char name[65];
	memset(name, 'a', 64);
	name[64] = '\0';
	expect_failure(NULL, name, "SELECT * FROM t", "schema name longer than 63");
	name[63] = '\0';
	expect(NULL, name, "SELECT * FROM t", RW_REWRITTEN, NULL);
}

static void test_statement_with_nothing_to_qualify_keeps_its_text(void **state
                                                                  __attribute__((unused)))
{
	expect(NULL, "tenant_a", "select   1 /* x */", RW_UNCHANGED, NULL);
	expect(NULL, "tenant_a", "SET x = 1", RW_UNCHANGED, NULL); /* server refuses; we do not */
	expect(NULL, "tenant_a", "SELECT * FROM tenant_b.t", RW_UNCHANGED, NULL);
	expect(NULL, "tenant_a", "", RW_UNCHANGED, NULL);
	expect(NULL, "tenant_a", "-- only a comment", RW_UNCHANGED, NULL);
	expect(NULL, "tenant_a", ";;", RW_UNCHANGED, NULL);
	/* no rules and no schema: nothing to do, the text is not even parsed */
	expect(NULL, NULL, "SELECT * FROM t", RW_UNCHANGED, NULL);
	expect(NULL, "", "this is not SQL", RW_UNCHANGED, NULL);
	struct rw_rules *empty = rw_rules_new();
	assert_non_null(empty);
	expect(empty, NULL, "this is not SQL", RW_UNCHANGED, NULL);
	rw_rules_free(empty);
}

static void test_only_changed_statements_are_replaced(void **state __attribute__((unused)))
{
	expect_text(NULL, "s", "SELECT 1;\n-- note\nselect * from users  ;  SELECT 2;\n",
	            "SELECT 1;\n-- note\nSELECT * FROM s.users  ;  SELECT 2;\n");
	expect_text(NULL, "s", "select * from a -- c\n; select * from b",
	            "SELECT * FROM s.a -- c\n; SELECT * FROM s.b");
	/* comments before a statement stay; comments inside one are lost */
	expect_text(NULL, "s", "/* helios:route=replica */ SELECT /* x */ * FROM t",
	            "/* helios:route=replica */ SELECT * FROM s.t");
	/* a CTE name in one statement is not in scope in the next */
	expect_text(NULL, "s", "WITH t AS (SELECT 1) SELECT * FROM t; SELECT * FROM t",
	            "WITH t AS (SELECT 1) SELECT * FROM t; SELECT * FROM s.t");
}

static void test_cte_scopes(void **state __attribute__((unused)))
{
	/* a recursive WITH sees all its names, also a later one */
	expect(NULL, "s", "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
	       RW_UNCHANGED, NULL);
	expect_text(NULL, "s", "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
	            "WITH a AS (SELECT * FROM s.b), b AS (SELECT 1) SELECT * FROM a");
	/* a CTE in a subquery is not visible outside it */
	expect_text(NULL, "s", "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x, t",
	            "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) x, s.t");
	/* SELECT INTO a name a CTE has creates the table */
	expect_text(NULL, "s", "WITH t AS (SELECT 1 AS a) SELECT * INTO t FROM t",
	            "WITH t AS (SELECT 1 AS a) SELECT * INTO s.t FROM t");
	/* INSERT target and its query's CTE of the same name */
	expect_text(NULL, "s", "WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT * FROM t",
	            "WITH t AS (SELECT 1 AS a) INSERT INTO s.t SELECT * FROM t");
}

static void test_names_that_are_not_tables_are_left_alone(void **state __attribute__((unused)))
{
	expect(NULL, "s", "SELECT nextval('seq'), f(x), x::mytype FROM generate_series(1, 2) x",
	       RW_UNCHANGED, NULL);
	expect(NULL, "s", "SELECT * FROM pg_stat_activity", RW_UNCHANGED, NULL);
	expect(NULL, "s", "CREATE SCHEMA x CREATE TABLE y (a int)", RW_UNCHANGED, NULL);
	expect(NULL, "s", "CREATE TEMP SEQUENCE q", RW_UNCHANGED, NULL);
	expect(NULL, "s", "DO $$ BEGIN PERFORM * FROM t; END $$", RW_UNCHANGED, NULL);
	expect(NULL, "s", "DROP FUNCTION f(int)", RW_UNCHANGED, NULL);
	expect_text(NULL, "s", "DROP TRIGGER trg ON t", "DROP TRIGGER trg ON s.t");
	expect_text(NULL, "s", "COMMENT ON COLUMN t.c IS 'x'", "COMMENT ON COLUMN s.t.c IS 'x'");
	expect(NULL, "s", "COMMENT ON COLUMN x.t.c IS 'x'", RW_UNCHANGED, NULL);
	expect_text(NULL, "s", "ALTER SEQUENCE q OWNED BY t.c",
	            "ALTER SEQUENCE s.q OWNED BY s.t.c");
	expect_text(NULL, "s", "CREATE SEQUENCE q OWNED BY NONE",
	            "CREATE SEQUENCE s.q OWNED BY \"none\"");
	expect(NULL, "s", "CREATE TEMP SEQUENCE q OWNED BY t.c", RW_UNCHANGED, NULL);
	expect(NULL, "s", "SELECT 't'::regclass", RW_UNCHANGED, NULL);
}

/* ---- Rules ---- */

static void test_rule_matches_whatever_the_constants(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT * FROM orders WHERE user_id = 1 AND total > 10",
	         "SELECT * FROM orders_v2 WHERE user_id = $1 AND total > $2");

	expect_text(r, NULL, "select *\n  from orders where user_id = 42 and total > 99.5",
	            "SELECT * FROM orders_v2 WHERE user_id = 42 AND total > 99.5");
	/* the replacement is then schema-prefixed */
	expect_text(r, "t1", "SELECT * FROM orders WHERE user_id = 7 AND total > 0",
	            "SELECT * FROM t1.orders_v2 WHERE user_id = 7 AND total > 0");
	/* no match: untouched */
	expect(r, NULL, "SELECT * FROM orders WHERE user_id = 1", RW_UNCHANGED, NULL);
	expect(r, NULL, "SELECT * FROM orders WHERE user_id = 1 AND total < 10", RW_UNCHANGED,
	       NULL);
	rw_rules_free(r);
}

static void test_rule_placeholders_follow_the_match_text(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT * FROM t LIMIT 5 OFFSET 10",
	         "SELECT * FROM t2 OFFSET $2 LIMIT $1 /* $1 in a comment */");
	add_rule(r, "SELECT a FROM t WHERE b = 'x' AND c = 2",
	         "SELECT a FROM t WHERE c = $2 AND b = $1 AND d = $1 AND e = '$1'");

	/* the incoming text may write the clauses in the other order */
	expect_text(r, NULL, "SELECT * FROM t OFFSET 30 LIMIT 7",
	            "SELECT * FROM t2 OFFSET 30 LIMIT 7 /* $1 in a comment */");
	expect_text(r, NULL, "SELECT * FROM t LIMIT 1 OFFSET 2",
	            "SELECT * FROM t2 OFFSET 2 LIMIT 1 /* $1 in a comment */");
	/* reordered and repeated placeholders; '$1' in a string stays */
	expect_text(r, NULL, "SELECT a FROM t WHERE b = 'it''s' AND c = 3",
	            "SELECT a FROM t WHERE c = 3 AND b = 'it''s' AND d = 'it''s' AND e = '$1'");
	rw_rules_free(r);
}

static void test_rule_constants_are_copied_as_written(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT f(1, 2, 3, 4, 5, 6, 7)", "SELECT g($7, $6, $5, $4, $3, $2, $1)");
	add_rule(r, "SELECT * FROM t WHERE a < 1", "SELECT * FROM t WHERE a<$1 AND b=-$1");
	add_rule(r, "SELECT x FROM t WHERE d = DATE '2020-01-01'",
	         "SELECT x FROM t WHERE d = $1::date");

	expect_text(r, NULL, "SELECT f(E'a\\nb', $$d$q$$, -5, 1.5e3, B'101', NULL, TRUE)",
	            "SELECT g(TRUE, NULL, B'101', 1.5e3, (-5), $$d$q$$, E'a\\nb')");
	/* a negative number is one operand, whatever surrounds it */
	expect_text(r, NULL, "SELECT * FROM t WHERE a < -2",
	            "SELECT * FROM t WHERE a<(-2) AND b=-(-2)");
	/* a typed literal gives its string */
	expect_text(r, NULL, "SELECT x FROM t WHERE d = date '2021-12-31'",
	            "SELECT x FROM t WHERE d = '2021-12-31'::date");
	rw_rules_free(r);
}

static void test_rule_without_placeholders_is_used_verbatim(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT count(*) FROM big WHERE day = '2020-01-01'",
	         "select n   from big_counts /* precomputed */");
	expect_text(r, NULL, "SELECT count(*) FROM big WHERE day = '1999-12-31'",
	            "select n   from big_counts /* precomputed */");
	rw_rules_free(r);
}

/* The fingerprint ignores aliases, sorts lists and folds IN lists: those
 * twins must not be replaced. */
static void test_fingerprint_twins_that_differ_do_not_match(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	const char *match = "SELECT a, b FROM t WHERE a = 1 AND b = 2";
	add_rule(r, match, "SELECT a, b FROM t2 WHERE a = $1 AND b = $2");

	static const char *const twins[] = {
	    "SELECT b, a FROM t WHERE a = 1 AND b = 2",
	    "SELECT a, b FROM t WHERE b = 2 AND a = 1",
	    "SELECT a AS x, b FROM t WHERE a = 1 AND b = 2",
	    "SELECT a, b FROM t WHERE a IN (1, 3) AND b = 2",
	    "SELECT a, b FROM t WHERE a = $1 AND b = 2",
	};
	for (size_t i = 0; i < sizeof(twins) / sizeof(twins[0]); i++) {
		assert_true(fingerprint(twins[i]) == fingerprint(match));
		expect(r, NULL, twins[i], RW_UNCHANGED, NULL);
	}
	expect_text(r, NULL, "SELECT a, b FROM t WHERE a = 5 AND b = 6",
	            "SELECT a, b FROM t2 WHERE a = 5 AND b = 6");
	/* a twin may have a rule of its own */
	add_rule(r, "SELECT b, a FROM t WHERE a = 1 AND b = 2", "SELECT 'swapped', $2, $1");
	expect_text(r, NULL, "SELECT b, a FROM t WHERE a = 8 AND b = 9", "SELECT 'swapped', 9, 8");
	rw_rules_free(r);
}

static void test_rule_keeps_the_statement_parameters(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	/* p = 2 parameters, then constants are $3, $4 as pg_query_normalize numbers them */
	add_rule(r, "SELECT * FROM t WHERE a = $1 AND b = 5 AND c = $2 AND d = 'x'",
	         "SELECT * FROM t2 WHERE a = $1 AND b = $3 AND c = $2 AND d = $4");
	char *norm = rw_normalize("SELECT * FROM t WHERE a = $1 AND b = 5 AND c = $2 AND d = 'x'");
	assert_string_equal(norm, "SELECT * FROM t WHERE a = $1 AND b = $3 AND c = $2 AND d = $4");
	free(norm);

	expect_text(r, NULL, "SELECT * FROM t WHERE a = $1 AND b = 6 AND c = $2 AND d = 'y'",
	            "SELECT * FROM t2 WHERE a = $1 AND b = 6 AND c = $2 AND d = 'y'");
	/* parameters must be the same ones at the same places */
	expect(r, NULL, "SELECT * FROM t WHERE a = $2 AND b = 6 AND c = $1 AND d = 'y'",
	       RW_UNCHANGED, NULL);
	rw_rules_free(r);
}

static void test_substituted_text_that_does_not_parse_fails(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT * FROM t LIMIT 5", "SELECT * FROM t WHERE a = $1");
	/* LIMIT ALL is a constant (NULL) written ALL */
	expect_failure(r, NULL, "SELECT * FROM t LIMIT ALL", "rewritten text does not parse");
	expect_text(r, NULL, "SELECT * FROM t LIMIT 3", "SELECT * FROM t WHERE a = 3");
	rw_rules_free(r);
}

static void test_bad_rules_are_refused_with_a_message(void **state __attribute__((unused)))
{
	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	refuse_rule(r, "SELEC * FRM t", "SELECT 1", "match: syntax error");
	refuse_rule(r, "SELECT 1", "SELECT FROM WHERE (", "replacement: syntax error");
	refuse_rule(r, "SELECT * FROM t WHERE a = 1 AND b = 2", "SELECT $3",
	            "replacement uses $3 but the match text has 0 parameter(s) and 2 constant(s)");
	refuse_rule(r, "SELECT * FROM t WHERE a = $1", "SELECT $2", "uses $2");
	refuse_rule(r, "SELECT 1", "SELECT $0", "out of range");
	refuse_rule(r, "-- nothing", "SELECT 1", "match: no statement");
	refuse_rule(r, "SELECT 1", " ; -- nothing", "replacement: no statement");
	refuse_rule(r, NULL, "SELECT 1", "missing");
	add_rule(r, "SELECT * FROM t WHERE a = 1", "SELECT 1");
	refuse_rule(r, "select * from t where a = 99", "SELECT 2", "exists already");

	char *deep = repeat("SELECT 1", "+1", 2000, "");
	refuse_rule(r, deep, "SELECT 1", "nested deeper");
	free(deep);

	/* a short error buffer is filled, not overrun */
	char err[8];
	assert_int_equal(rw_rules_add(r, "SELEC", "SELECT 1", err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(rw_rules_add(r, "SELEC", "SELECT 1", NULL, 0), -1);
	rw_rules_free(r);
	rw_rules_free(NULL);
}

/* ---- Hostile input ---- */

static void test_garbage_fails_with_a_reason(void **state __attribute__((unused)))
{
	expect_failure(NULL, "s", "SELEC * FRM t", "syntax error");
	expect_failure(NULL, "s", "SELECT 'unterminated", "unterminated");
	expect_failure(NULL, "s", "SELECT * FROM t WHERE", "syntax error");
	expect_failure(NULL, "s", "\x01\x02\xff\xfe", "syntax error");
	expect_failure(NULL, "s", "SELECT 1; GARBAGE", "syntax error");
	expect_failure(NULL, "s", NULL, "no text");

	struct rw_rules *r = rw_rules_new();
	assert_non_null(r);
	add_rule(r, "SELECT 1", "SELECT 2");
	expect_failure(r, NULL, "SELEC", "syntax error");
	rw_rules_free(r);

	/* out is required; why may be NULL */
	assert_int_equal(rw_rewrite(NULL, "s", "SELECT * FROM t", NULL, NULL, 0), RW_FAILED);
	char *out = NULL;
	assert_int_equal(rw_rewrite(NULL, "s", "SELEC", &out, NULL, 0), RW_FAILED);
	assert_null(out);
	char why[4];
	assert_int_equal(rw_rewrite(NULL, "s", "SELEC", &out, why, sizeof(why)), RW_FAILED);
	assert_int_equal(strlen(why), sizeof(why) - 1);
}

struct deep_arg {
	const char *sql;
	enum rw_status st;
	char why[256];
	char *norm;
};

static void *rewrite_thread(void *p)
{
	struct deep_arg *a = p;
	char *out = NULL;
	a->st = rw_rewrite(NULL, "s", a->sql, &out, a->why, sizeof(a->why));
	free(out);
	a->norm = rw_normalize(a->sql);
	return NULL;
}

/* Runs rw_rewrite and rw_normalize on a thread with half a worker's 8 MB
 * stack: an overflow kills the test instead of failing it, just as visible. */
static void rewrite_on_small_stack(struct deep_arg *a, const char *sql)
{
	pthread_attr_t at;
	pthread_t t;

	memset(a, 0, sizeof(*a));
	a->sql = sql;
	assert_int_equal(pthread_attr_init(&at), 0);
	assert_int_equal(pthread_attr_setstacksize(&at, 4u << 20), 0);
	assert_int_equal(pthread_create(&t, &at, rewrite_thread, a), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&at);
}

static void test_deep_or_long_input_fails_without_overflow(void **state __attribute__((unused)))
{
	struct deep_arg a;

	/* 100,000 nested parentheses: refused before the parser sees them */
	char *sql = repeat("SELECT ", "(", 100000, "");
	char *full = repeat(sql, ")", 100000, " FROM t");
	rewrite_on_small_stack(&a, full);
	assert_int_equal(a.st, RW_FAILED);
	assert_non_null(strstr(a.why, "longer than"));
	assert_null(a.norm);
	free(full);

	/* unbalanced: the scanner's length check does not see a statement, the
	 * parser gives up at its own stack limit */
	rewrite_on_small_stack(&a, sql);
	assert_int_equal(a.st, RW_FAILED);
	assert_null(a.norm);
	free(sql);

	/* 7,000 levels in 14 KB: under the length bound; the parser drops the
	 * parentheses, so the tree is shallow */
	sql = repeat("SELECT ", "(", 7000, "1");
	full = repeat(sql, ")", 7000, " FROM t");
	rewrite_on_small_stack(&a, full);
	assert_int_equal(a.st, RW_REWRITTEN);
	assert_non_null(a.norm);
	free(a.norm);
	free(sql);
	free(full);

	/* a tree 14,000 levels deep in 14 KB: refused by the depth bound */
	sql = repeat("SELECT * FROM t WHERE a = 1", "+1", 7000, "");
	rewrite_on_small_stack(&a, sql);
	assert_int_equal(a.st, RW_FAILED);
	assert_non_null(strstr(a.why, "nested deeper"));
	assert_null(a.norm);
	free(sql);

	/* nested subqueries and CTEs, as deep as the bounds allow, are rewritten */
	sql = repeat("SELECT * FROM ", "(WITH c AS (SELECT * FROM u) SELECT * FROM c, ", 100, "t");
	full = repeat(sql, ") s", 100, "");
	rewrite_on_small_stack(&a, full);
	assert_int_equal(a.st, RW_REWRITTEN);
	assert_non_null(a.norm);
	free(a.norm);
	free(sql);
	free(full);

	/* a deep but realistic expression is rewritten */
	sql = repeat("SELECT * FROM t WHERE a = 1", "+1", 200, "");
	rewrite_on_small_stack(&a, sql);
	assert_int_equal(a.st, RW_REWRITTEN);
	free(a.norm);
	free(sql);

	/* many short statements are fine; one long one is not */
	sql = repeat("", "SELECT * FROM t;", 3000, "");
	rewrite_on_small_stack(&a, sql);
	assert_int_equal(a.st, RW_REWRITTEN);
	free(a.norm);
	free(sql);
	sql = repeat("INSERT INTO t VALUES (1)", ", (1)", 5000, "");
	rewrite_on_small_stack(&a, sql);
	assert_int_equal(a.st, RW_FAILED);
	free(sql);
}

/* ---- Threads ---- */

struct thread_arg {
	const struct rw_rules *rules;
	const struct corpus *c;
	unsigned seed;
	int errors;
};

static const char *const rule_in = "SELECT * FROM orders WHERE id = 17";
static const char *const rule_out = "SELECT * FROM s.orders_v2 WHERE id = 17";

static void *worker(void *p)
{
	struct thread_arg *a = p;
	char why[256];

	for (int it = 0; it < 3; it++) {
		for (size_t j = 0; j < a->c->n; j++) {
			/* each thread walks the corpus from another place */
			const struct rw_case *k = &a->c->v[(j + a->seed * 7) % a->c->n];
			char *out = NULL;
			enum rw_status st =
			    rw_rewrite(a->rules, "tenant_a", k->in, &out, why, sizeof(why));
			bool ok = k->out[0] == '('
			              ? (st == RW_UNCHANGED) == (strcmp(k->out, "(unchanged)") == 0)
			              : st == RW_REWRITTEN && strcmp(out, k->out) == 0;
			a->errors += !ok;
			free(out);

			st = rw_rewrite(a->rules, "s", rule_in, &out, why, sizeof(why));
			a->errors += st != RW_REWRITTEN || strcmp(out, rule_out) != 0;
			free(out);
		}
	}
	return NULL;
}

static void test_threads_share_one_rule_set(void **state __attribute__((unused)))
{
	struct corpus c;
	struct rw_rules *r = rw_rules_new();
	pthread_t t[4];
	struct thread_arg a[4];

	assert_non_null(r);
	corpus_load(&c);
	add_rule(r, "SELECT * FROM orders WHERE id = 1", "SELECT * FROM orders_v2 WHERE id = $1");
	for (unsigned i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){r, &c, i, 0};
		assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].errors, 0);
	}
	corpus_free(&c);
	rw_rules_free(r);
}

/* ---- Normalisation, names ---- */

static void test_normalize_replaces_constants(void **state __attribute__((unused)))
{
	char *n = rw_normalize("SELECT * FROM t WHERE a = 5 AND b = 'x' /* c */");
	assert_non_null(n);
	assert_string_equal(n, "SELECT * FROM t WHERE a = $1 AND b = $2 /* c */");
	free(n);
	assert_null(rw_normalize("SELEC 1"));
	assert_null(rw_normalize(NULL));
}

static void test_status_names(void **state __attribute__((unused)))
{
	assert_string_equal(rw_status_str(RW_UNCHANGED), "unchanged");
	assert_string_equal(rw_status_str(RW_REWRITTEN), "rewritten");
	assert_string_equal(rw_status_str(RW_FAILED), "failed");
	assert_string_equal(rw_status_str((enum rw_status)7), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_corpus_cases_rewrite_as_listed),
	    cmocka_unit_test(test_corpus_outputs_need_no_second_rewrite),
	    cmocka_unit_test(test_schema_that_needs_quotes_is_quoted),
	    cmocka_unit_test(test_schema_name_longer_than_a_postgres_name_fails),
	    cmocka_unit_test(test_statement_with_nothing_to_qualify_keeps_its_text),
	    cmocka_unit_test(test_only_changed_statements_are_replaced),
	    cmocka_unit_test(test_cte_scopes),
	    cmocka_unit_test(test_names_that_are_not_tables_are_left_alone),
	    cmocka_unit_test(test_rule_matches_whatever_the_constants),
	    cmocka_unit_test(test_rule_placeholders_follow_the_match_text),
	    cmocka_unit_test(test_rule_constants_are_copied_as_written),
	    cmocka_unit_test(test_rule_without_placeholders_is_used_verbatim),
	    cmocka_unit_test(test_fingerprint_twins_that_differ_do_not_match),
	    cmocka_unit_test(test_rule_keeps_the_statement_parameters),
	    cmocka_unit_test(test_substituted_text_that_does_not_parse_fails),
	    cmocka_unit_test(test_bad_rules_are_refused_with_a_message),
	    cmocka_unit_test(test_garbage_fails_with_a_reason),
	    cmocka_unit_test(test_deep_or_long_input_fails_without_overflow),
	    cmocka_unit_test(test_threads_share_one_rule_set),
	    cmocka_unit_test(test_normalize_replaces_constants),
	    cmocka_unit_test(test_status_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
