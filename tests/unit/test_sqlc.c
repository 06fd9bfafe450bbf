/*
 * Unit tests for dataplane/sql/sqlc: every statement kind and flag, names and
 * statement ranges, hostile input (syntax errors, 10,000 statements, trees
 * too deep to unpack), and the pre-check never saying false wrongly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <pthread.h>

#include <cmocka.h>

#include "dataplane/sql/sqlc.h"

struct want {
	const char *sql;
	enum sqlc_kind kind;
	const char *name; /* NULL: not checked */
	unsigned flags;
};

/* Classifies sql, which must be one valid statement, and checks it against w,
 * its range against the whole text, and that the pre-check lets it through. */
static void check_one(const struct want *w)
{
	struct sqlc_result r;
	int rc = sqlc_classify(w->sql, &r);
	if (rc != 0 || r.parse_error || r.n != 1)
		fail_msg("%s: rc %d parse_error %d n %d", w->sql, rc, r.parse_error, r.n);
	const struct sqlc_stmt *st = &r.stmts[0];
	if (st->kind != w->kind)
		fail_msg("%s: kind %s, want %s", w->sql, sqlc_kind_str(st->kind),
		         sqlc_kind_str(w->kind));
	if (w->name && strcmp(st->name, w->name) != 0)
		fail_msg("%s: name \"%s\", want \"%s\"", w->sql, st->name, w->name);
	if (st->flags != w->flags || r.flags != w->flags)
		fail_msg("%s: flags %u/%u, want %u", w->sql, st->flags, r.flags, w->flags);
	if (st->loc != 0 || st->len != strlen(w->sql))
		fail_msg("%s: range %u+%u, want 0+%zu", w->sql, st->loc, st->len, strlen(w->sql));
	if ((w->kind != SQLC_OTHER || w->flags) && !sqlc_maybe_interesting(w->sql, strlen(w->sql)))
		fail_msg("%s: pre-check said false", w->sql);
}

static void check_all(const struct want *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		check_one(&w[i]);
}

#define CHECK_ALL(tab) check_all(tab, sizeof(tab) / sizeof(tab[0]))

/* The text of statement i must be exactly want. */
static void assert_text(const char *sql, const struct sqlc_result *r, int i, const char *want)
{
	assert_true(i < r->n);
	const struct sqlc_stmt *st = &r->stmts[i];
	assert_true(st->loc + st->len <= strlen(sql));
	if (st->len != strlen(want) || memcmp(sql + st->loc, want, st->len) != 0)
		fail_msg("stmt %d: \"%.*s\", want \"%s\"", i, (int)st->len, sql + st->loc, want);
}

/* ---- SET family ---- */

static void test_set_keeps_guc_name_as_postgres_maps_it(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SET search_path TO a, \"B\"", SQLC_SET, "search_path", 0},
	    {"SET TIME ZONE 'UTC'", SQLC_SET, "timezone", 0},
	    {"set statement_timeout=5", SQLC_SET, "statement_timeout", 0},
	    {"SET NAMES 'UTF8'", SQLC_SET, "client_encoding", 0},
	    {"SET SCHEMA 'app'", SQLC_SET, "search_path", 0},
	    {"SET XML OPTION DOCUMENT", SQLC_SET, "xmloption", 0},
	    {"SET SESSION work_mem = '4MB'", SQLC_SET, "work_mem", 0},
	    {"SET myapp.tenant_id = 42", SQLC_SET, "myapp.tenant_id", 0},
	    /* GUC names are case-insensitive even when quoted */
	    {"SET \"Statement_Timeout\" = 5", SQLC_SET, "statement_timeout", 0},
	    {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", SQLC_SET,
	     "default_transaction_read_only", 0},
	    {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", SQLC_SET,
	     "default_transaction_isolation", 0},
	    {"SET standard_conforming_strings = off", SQLC_SET, "standard_conforming_strings", 0},
	};
	CHECK_ALL(w);
}

static void test_set_local_and_transaction_settings_are_transaction_scoped(void **state
                                                                           __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SET LOCAL work_mem='1MB'", SQLC_SET_LOCAL, "work_mem", 0},
	    {"SET LOCAL search_path TO DEFAULT", SQLC_SET_LOCAL, "search_path", 0},
	    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", SQLC_SET_LOCAL, "transaction", 0},
	    {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", SQLC_SET_LOCAL,
	     "transaction snapshot", 0},
	    {"SET transaction_read_only = on", SQLC_SET_LOCAL, "transaction_read_only", 0},
	    {"SET LOCAL ROLE admin", SQLC_SET_LOCAL, "role", 0},
	};
	CHECK_ALL(w);
}

static void test_set_default_and_reset(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SET x TO DEFAULT", SQLC_SET_DEFAULT, "x", 0},
	    {"SET search_path = DEFAULT", SQLC_SET_DEFAULT, "search_path", 0},
	    {"SET TIME ZONE LOCAL", SQLC_SET_DEFAULT, "timezone", 0},
	    {"RESET work_mem", SQLC_RESET, "work_mem", 0},
	    {"RESET TIME ZONE", SQLC_RESET, "timezone", 0},
	    {"RESET ALL", SQLC_RESET_ALL, "", 0},
	};
	CHECK_ALL(w);
}

static void test_role_and_session_authorization_are_reported(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SET ROLE admin", SQLC_SESSION_AUTH, "role", 0},
	    {"SET SESSION ROLE admin", SQLC_SESSION_AUTH, "role", 0},
	    {"RESET ROLE", SQLC_SESSION_AUTH, "role", 0},
	    {"SET SESSION AUTHORIZATION 'bob'", SQLC_SESSION_AUTH, "session_authorization", 0},
	    {"SET SESSION AUTHORIZATION DEFAULT", SQLC_SESSION_AUTH, "session_authorization", 0},
	    {"RESET SESSION AUTHORIZATION", SQLC_SESSION_AUTH, "session_authorization", 0},
	};
	CHECK_ALL(w);
}

static void test_long_or_multi_guc_name_is_marked_incomplete(void **state __attribute__((unused)))
{
	char sql[400];
	char part[64];
	memset(part, 'a', 63);
	part[63] = '\0';
	snprintf(sql, sizeof(sql), "SET %s.%s.%s = 1", part, part, part);
	struct sqlc_result r;
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.stmts[0].kind, SQLC_SET);
	assert_true(r.stmts[0].name_incomplete);
	assert_int_equal(strlen(r.stmts[0].name), SQLC_NAME_MAX - 1);

	assert_int_equal(sqlc_classify("SET a.b = 1", &r), 0);
	assert_false(r.stmts[0].name_incomplete);

	/* one statement setting several GUCs has no single name to key on */
	assert_int_equal(
	    sqlc_classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY, DEFERRABLE", &r),
	    0);
	assert_int_equal(r.stmts[0].kind, SQLC_SET);
	assert_true(r.stmts[0].name_incomplete);
	assert_int_equal(sqlc_classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", &r),
	                 0);
	assert_false(r.stmts[0].name_incomplete);
}

/* ---- Transactions ---- */

static void test_begin_with_any_options(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"BEGIN", SQLC_BEGIN, "", 0},
	    {"BEGIN WORK", SQLC_BEGIN, "", 0},
	    {"BEGIN ISOLATION LEVEL SERIALIZABLE", SQLC_BEGIN, "", 0},
	    {"START TRANSACTION READ ONLY", SQLC_BEGIN, "", 0},
	    {"start transaction isolation level repeatable read, read write", SQLC_BEGIN, "", 0},
	};
	CHECK_ALL(w);
}

static void test_commit_and_rollback_spellings(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"COMMIT", SQLC_COMMIT, "", 0},
	    {"END", SQLC_COMMIT, "", 0},
	    {"commit work", SQLC_COMMIT, "", 0},
	    {"ROLLBACK", SQLC_ROLLBACK, "", 0},
	    {"ABORT", SQLC_ROLLBACK, "", 0},
	    {"PREPARE TRANSACTION 'g1'", SQLC_COMMIT, "g1", 0},
	    {"COMMIT AND CHAIN", SQLC_COMMIT, "", 0},
	    {"ROLLBACK AND CHAIN", SQLC_ROLLBACK, "", 0},
	};
	CHECK_ALL(w);

	struct sqlc_result r;
	assert_int_equal(sqlc_classify("COMMIT AND CHAIN", &r), 0);
	assert_true(r.stmts[0].chain);
	assert_int_equal(sqlc_classify("ROLLBACK AND NO CHAIN", &r), 0);
	assert_int_equal(r.stmts[0].kind, SQLC_ROLLBACK);
	assert_false(r.stmts[0].chain);
}

static void test_savepoints_do_not_end_the_transaction(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SAVEPOINT s", SQLC_OTHER, "", 0},
	    {"RELEASE SAVEPOINT s", SQLC_OTHER, "", 0},
	    {"ROLLBACK TO SAVEPOINT s", SQLC_OTHER, "", 0},
	    {"ROLLBACK TO s", SQLC_OTHER, "", 0},
	    {"COMMIT PREPARED 'g1'", SQLC_OTHER, "", 0},
	};
	CHECK_ALL(w);
}

/* ---- DISCARD, LISTEN, prepared statements, cursors ---- */

static void test_discard_variants(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"DISCARD ALL", SQLC_DISCARD_ALL, "", 0},
	    {"DISCARD TEMP", SQLC_DISCARD_TEMP, "", 0},
	    {"DISCARD TEMPORARY", SQLC_DISCARD_TEMP, "", 0},
	    {"DISCARD PLANS", SQLC_DISCARD_PLANS, "", 0},
	    {"DISCARD SEQUENCES", SQLC_DISCARD_SEQUENCES, "", 0},
	};
	CHECK_ALL(w);
}

static void test_listen_folds_unquoted_and_keeps_quoted_channel(void **state
                                                                __attribute__((unused)))
{
	static const struct want w[] = {
	    {"LISTEN \"Chan\"", SQLC_LISTEN, "Chan", 0}, {"LISTEN Chan", SQLC_LISTEN, "chan", 0},
	    {"UNLISTEN chan", SQLC_UNLISTEN, "chan", 0}, {"UNLISTEN *", SQLC_UNLISTEN_ALL, "", 0},
	    {"NOTIFY chan, 'x'", SQLC_OTHER, "", 0},
	};
	CHECK_ALL(w);
}

static void test_prepare_execute_deallocate(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"PREPARE p(int) AS SELECT $1", SQLC_PREPARE, "p", 0},
	    {"PREPARE \"P1\" AS SELECT 1", SQLC_PREPARE, "P1", 0},
	    {"EXECUTE p(1)", SQLC_EXECUTE, "p", 0},
	    {"DEALLOCATE p", SQLC_DEALLOCATE, "p", 0},
	    {"DEALLOCATE PREPARE p", SQLC_DEALLOCATE, "p", 0},
	    {"DEALLOCATE ALL", SQLC_DEALLOCATE_ALL, "", 0},
	    {"DEALLOCATE PREPARE ALL", SQLC_DEALLOCATE_ALL, "", 0},
	};
	CHECK_ALL(w);
}

static void test_only_cursors_with_hold_are_tracked(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", SQLC_DECLARE_HOLD, "c", 0},
	    {"DECLARE \"C\" SCROLL CURSOR WITH HOLD FOR SELECT 1", SQLC_DECLARE_HOLD, "C", 0},
	    {"DECLARE c CURSOR FOR SELECT 1", SQLC_OTHER, "", 0},
	    {"DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", SQLC_OTHER, "", 0},
	    {"CLOSE c", SQLC_CLOSE_CURSOR, "c", 0},
	    {"CLOSE ALL", SQLC_CLOSE_ALL, "", 0},
	};
	CHECK_ALL(w);

	struct sqlc_result r;
	assert_int_equal(sqlc_classify("DECLARE c CURSOR WITH HOLD FOR SELECT 1", &r), 0);
	assert_true(r.stmts[0].with_hold);
	assert_int_equal(sqlc_classify("DECLARE c CURSOR FOR SELECT 1", &r), 0);
	assert_false(r.stmts[0].with_hold);
}

/* ---- Temporary objects ---- */

static void test_temp_objects_are_detected(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"CREATE TEMP TABLE t(x int)", SQLC_CREATE_TEMP, "t", 0},
	    {"CREATE TEMPORARY TABLE \"T\"(x int)", SQLC_CREATE_TEMP, "T", 0},
	    {"CREATE LOCAL TEMP TABLE t(x int) ON COMMIT DROP", SQLC_CREATE_TEMP, "t", 0},
	    {"CREATE TEMP VIEW v AS SELECT 1", SQLC_CREATE_TEMP, "v", 0},
	    {"CREATE TEMP SEQUENCE s", SQLC_CREATE_TEMP, "s", 0},
	    {"CREATE TEMP TABLE t AS SELECT 1", SQLC_CREATE_TEMP, "t", 0},
	    {"SELECT 1 INTO TEMP t2", SQLC_CREATE_TEMP, "t2", 0},
	    {"SELECT 1 INTO TEMPORARY TABLE t3 UNION SELECT 2", SQLC_CREATE_TEMP, "t3", 0},
	    {"WITH a AS (SELECT 1) SELECT * INTO TEMP t4 FROM a", SQLC_CREATE_TEMP, "t4", 0},
	    {"CREATE TABLE pg_temp.t(x int)", SQLC_CREATE_TEMP, "t", 0},
	    {"CREATE TABLE pg_temp_3.t(x int)", SQLC_CREATE_TEMP, "t", 0},
	    {"SELECT 1 INTO pg_temp.t5", SQLC_CREATE_TEMP, "t5", 0},
	    {"CREATE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql", SQLC_CREATE_TEMP,
	     "f", 0},
	};
	CHECK_ALL(w);
}

static void test_permanent_objects_are_other(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"CREATE TABLE t(x int)", SQLC_OTHER, "", 0},
	    {"CREATE UNLOGGED TABLE t(x int)", SQLC_OTHER, "", 0},
	    {"CREATE TABLE temp_log(x int)", SQLC_OTHER, "", 0},
	    {"CREATE TABLE \"pg_temporary\".t(x int)", SQLC_OTHER, "", 0},
	    {"SELECT 1 INTO t2", SQLC_OTHER, "", 0},
	    {"CREATE VIEW v AS SELECT 1", SQLC_OTHER, "", 0},
	    {"INSERT INTO temp_log VALUES (1)", SQLC_OTHER, "", 0},
	};
	CHECK_ALL(w);
}

/* ---- Function-call flags ---- */

static void test_session_advisory_locks_are_flagged_anywhere(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SELECT pg_advisory_lock(1)", SQLC_OTHER, "", SQLC_F_ADVISORY_LOCK},
	    {"SELECT * FROM t WHERE pg_try_advisory_lock(id)", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK},
	    {"WITH x AS (SELECT pg_advisory_lock(2)) SELECT * FROM x", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK},
	    {"SELECT (SELECT pg_advisory_lock_shared(1, 2))", SQLC_OTHER, "", SQLC_F_ADVISORY_LOCK},
	    {"SELECT pg_catalog.pg_try_advisory_lock_shared(1)", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK},
	    {"SELECT CASE WHEN x THEN pg_advisory_lock(k) END FROM t", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK},
	    {"UPDATE t SET a = 1 WHERE pg_try_advisory_lock(id)", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK},
	    {"PREPARE p AS SELECT pg_advisory_lock($1)", SQLC_PREPARE, "p", SQLC_F_ADVISORY_LOCK},
	    /* a U&"" identifier spells the same function */
	    {"SELECT U&\"pg_adv\\0069sory_lock\"(1)", SQLC_OTHER, "", SQLC_F_ADVISORY_LOCK},
	    {"SELECT pg_advisory_unlock(1)", SQLC_OTHER, "", SQLC_F_ADVISORY_UNLOCK},
	    {"SELECT pg_advisory_unlock_shared(1)", SQLC_OTHER, "", SQLC_F_ADVISORY_UNLOCK},
	    {"SELECT pg_advisory_unlock_all()", SQLC_OTHER, "", SQLC_F_ADVISORY_UNLOCK_ALL},
	    {"SELECT pg_advisory_lock(1), pg_advisory_unlock(1)", SQLC_OTHER, "",
	     SQLC_F_ADVISORY_LOCK | SQLC_F_ADVISORY_UNLOCK},
	};
	CHECK_ALL(w);
}

static void test_transaction_advisory_locks_are_not_flagged(void **state __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SELECT pg_advisory_xact_lock(1)", SQLC_OTHER, "", 0},
	    {"SELECT pg_try_advisory_xact_lock(1)", SQLC_OTHER, "", 0},
	    {"SELECT pg_advisory_xact_lock_shared(1, 2)", SQLC_OTHER, "", 0},
	    {"SELECT 'pg_advisory_lock(1)'", SQLC_OTHER, "", 0}, /* a literal, not a call */
	};
	CHECK_ALL(w);
}

static void test_set_config_is_flagged_unless_transaction_local(void **state
                                                                __attribute__((unused)))
{
	static const struct want w[] = {
	    {"SELECT set_config('search_path', 'app', false)", SQLC_OTHER, "", SQLC_F_SET_CONFIG},
	    {"SELECT set_config('search_path', 'app', $1)", SQLC_OTHER, "", SQLC_F_SET_CONFIG},
	    {"SELECT set_config('request.jwt', 'x', true)", SQLC_OTHER, "", 0},
	};
	CHECK_ALL(w);
}

/* ---- Multi-statement text and ranges ---- */

static void test_multi_statement_ranges_match_each_statement(void **state __attribute__((unused)))
{
	const char *sql = "SET a=1; SELECT 1; RESET b";
	struct sqlc_result r;
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.n, 3);
	assert_false(r.more_stmts);
	assert_int_equal(r.stmts[0].kind, SQLC_SET);
	assert_string_equal(r.stmts[0].name, "a");
	assert_int_equal(r.stmts[1].kind, SQLC_OTHER);
	assert_int_equal(r.stmts[2].kind, SQLC_RESET);
	assert_string_equal(r.stmts[2].name, "b");
	assert_text(sql, &r, 0, "SET a=1");
	assert_text(sql, &r, 1, "SELECT 1");
	assert_text(sql, &r, 2, "RESET b");

	sql = "  BEGIN ;\n\tSET LOCAL x = 'a;b' ;;  COMMIT;\n";
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.n, 3);
	assert_text(sql, &r, 0, "BEGIN");
	assert_text(sql, &r, 1, "SET LOCAL x = 'a;b'");
	assert_text(sql, &r, 2, "COMMIT");
	assert_int_equal(r.stmts[2].kind, SQLC_COMMIT);
}

static void test_comments_and_hints_are_outside_the_range(void **state __attribute__((unused)))
{
	const char *sql = "/* helios:route=primary */ SET search_path TO app";
	struct sqlc_result r;
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.stmts[0].kind, SQLC_SET);
	assert_text(sql, &r, 0, "SET search_path TO app");
	assert_true(sqlc_maybe_interesting(sql, strlen(sql)));

	/* nested block comment and a -- comment before, a -- comment after */
	sql = "/* a /* b */ c */ -- hint\nSET a = 1 -- why\n; SELECT 1 /* x */";
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.n, 2);
	assert_text(sql, &r, 0, "SET a = 1");
	assert_text(sql, &r, 1, "SELECT 1 /* x */");

	/* "--" inside a literal is not a comment and must stay */
	sql = "SET application_name = 'a--b' -- c";
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_text(sql, &r, 0, "SET application_name = 'a--b'");
}

static void test_syntax_error_sets_parse_error_and_no_statements(void **state
                                                                 __attribute__((unused)))
{
	static const char *const bad[] = {
	    "SELEC 1",
	    "SET a = 1; SELEC 1", /* the server runs none of it */
	    "SET a = 'unterminated",
	    "/* unterminated comment SET a = 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sqlc_result r;
		assert_int_equal(sqlc_classify(bad[i], &r), 0);
		assert_true(r.parse_error);
		assert_int_equal(r.n, 0);
		assert_int_equal(r.flags, 0);
	}
}

static void test_empty_and_comment_only_text_has_no_statements(void **state __attribute__((unused)))
{
	static const char *const empty[] = {"", "   \n\t", ";;;", "-- only a comment", "/* x */"};
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		struct sqlc_result r;
		assert_int_equal(sqlc_classify(empty[i], &r), 0);
		assert_false(r.parse_error);
		assert_int_equal(r.n, 0);
		assert_false(sqlc_maybe_interesting(empty[i], strlen(empty[i])));
	}
}

static void test_ten_thousand_statements_are_truncated_but_flags_complete(void **state
                                                                          __attribute__((unused)))
{
	const char *unit = "SET a=1;";
	const char *last = "SELECT pg_advisory_lock(7)";
	size_t ul = strlen(unit);
	char *sql = malloc(10000 * ul + strlen(last) + 1);
	assert_non_null(sql);
	for (int i = 0; i < 10000; i++)
		memcpy(sql + (size_t)i * ul, unit, ul);
	strcpy(sql + 10000 * ul, last);

	struct sqlc_result r;
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_false(r.parse_error);
	assert_int_equal(r.n, SQLC_MAX_STMTS);
	assert_true(r.more_stmts);
	assert_int_equal(r.stmts[SQLC_MAX_STMTS - 1].kind, SQLC_SET);
	assert_text(sql, &r, SQLC_MAX_STMTS - 1, "SET a=1");
	/* the lock is in statement 10,001, past the stored ones */
	assert_int_equal(r.flags, SQLC_F_ADVISORY_LOCK);
	free(sql);
}

/* ---- Hostile depth and length: refused, never a crash ---- */

struct deep_arg {
	const char *sql;
	int rc;
};

static void *classify_thread(void *p)
{
	struct deep_arg *a = p;
	struct sqlc_result r;
	a->rc = sqlc_classify(a->sql, &r);
	return NULL;
}

/* Runs sqlc_classify on a thread with a small stack: a stack overflow would
 * kill the test instead of failing it, which is just as visible. */
static int classify_on_small_stack(const char *sql)
{
	pthread_attr_t at;
	pthread_t t;
	struct deep_arg a = {sql, 1};
	assert_int_equal(pthread_attr_init(&at), 0);
	assert_int_equal(pthread_attr_setstacksize(&at, 4u << 20), 0);
	assert_int_equal(pthread_create(&t, &at, classify_thread, &a), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&at);
	return a.rc;
}

static char *repeat(const char *head, const char *unit, int n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * (size_t)n + tl + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	for (int i = 0; i < n; i++)
		memcpy(s + hl + ul * (size_t)i, unit, ul);
	memcpy(s + hl + ul * (size_t)n, tail, tl + 1);
	return s;
}

static void test_too_deep_or_too_long_statement_is_refused_on_a_small_stack(void **state
                                                                            __attribute__((unused)))
{
	/* 14 KB: under the length bound, but a tree 14,000 levels deep */
	char *sql = repeat("SELECT pg_advisory_lock(1", "+1", 7000, ")");
	assert_int_equal(classify_on_small_stack(sql), -E2BIG);
	free(sql);

	/* 40 KB of one statement: refused before the parser sees it */
	sql = repeat("SELECT pg_advisory_lock(1", "+1", 20000, ")");
	assert_int_equal(classify_on_small_stack(sql), -E2BIG);
	free(sql);

	/* a deep but realistic expression is classified */
	sql = repeat("SELECT pg_advisory_lock(1", "+1", 200, ")");
	struct sqlc_result r;
	assert_int_equal(sqlc_classify(sql, &r), 0);
	assert_int_equal(r.flags, SQLC_F_ADVISORY_LOCK);
	free(sql);

	/* long text made of short statements is fine */
	sql = repeat("", "SELECT 1 + 1 + 1 + 1;", 2000, "SET a = 1");
	assert_int_equal(classify_on_small_stack(sql), 0);
	free(sql);
}

static void test_null_arguments_are_rejected(void **state __attribute__((unused)))
{
	struct sqlc_result r;
	assert_int_equal(sqlc_classify(NULL, &r), -EINVAL);
	assert_int_equal(sqlc_classify("SET a = 1", NULL), -EINVAL);
}

/* ---- Pre-check ---- */

static void test_pre_check_is_false_for_plain_queries(void **state __attribute__((unused)))
{
	static const char *const plain[] = {
	    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
	    "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 5",
	    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
	    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, "
	    "CURRENT_TIMESTAMP)",
	    "INSERT INTO temp_log VALUES (1)",
	    "SELECT * FROM settings WHERE begin_at > now()",
	    "SELECT 1; SELECT 2; /* SET in a comment */ SELECT 3",
	    "DELETE FROM t WHERE id IN (SELECT id FROM u)",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (sqlc_maybe_interesting(plain[i], strlen(plain[i])))
			fail_msg("pre-check true for: %s", plain[i]);
}

static void test_pre_check_is_true_wherever_a_statement_can_start(void **state
                                                                  __attribute__((unused)))
{
	static const char *const hit[] = {
	    "SELECT 1; set a = 1",
	    "SELECT 1;\n-- c\n/* d /* e */ */ (BEGIN",
	    "(SELECT 1 INTO TEMP t)",
	    "SELECT 1 INTO/* x */temp t",
	    "SELECT 1 INTO -- x\n LOCAL TEMP t",
	    "SELECT 1 INTO \"pg_temp\".t",
	    "SELECT 1 INTO pg_temp_3.t",
	    "SELECT U&\"pg_adv\\0069sory_lock\"(1)",
	    "SELECT \"PG_ADVISORY_LOCK\"(1)",
	    "SELECT PG_CATALOG.SET_CONFIG('a', 'b', false)",
	    "SELECT 'x;' ; END",
	};
	for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++)
		if (!sqlc_maybe_interesting(hit[i], strlen(hit[i])))
			fail_msg("pre-check false for: %s", hit[i]);
}

static void test_pre_check_reads_only_len_bytes(void **state __attribute__((unused)))
{
	/* Exact-size heap copies without NUL: ASan flags any read past len. */
	static const char *const text[] = {"SELECT 1; SE",
	                                   "SELECT advisor",
	                                   "SELECT 1 INTO",
	                                   "SELECT 1 INTO te",
	                                   "SELECT 1; /* unterminated",
	                                   "-"};
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		size_t n = strlen(text[i]);
		char *b = malloc(n);
		assert_non_null(b);
		memcpy(b, text[i], n);
		assert_false(sqlc_maybe_interesting(b, n));
		free(b);
	}
	/* a prefix of an interesting text is judged on the prefix only */
	assert_false(sqlc_maybe_interesting("SELECT 1; SET a = 1", 9));
	assert_true(sqlc_maybe_interesting("SELECT 1; SET a = 1", 13));
}

static void test_pre_check_gives_up_with_true_on_quadratic_input(void **state
                                                                 __attribute__((unused)))
{
	/* Every ';' opens a look-ahead through the rest of the line: without
	 * a budget this is quadratic; with it the answer is a safe true. */
	char *sql = repeat("SELECT 1", ";--", 100000, "");
	assert_true(sqlc_maybe_interesting(sql, strlen(sql)));
	free(sql);
	/* the same shape, short, is read in full and found plain */
	assert_false(sqlc_maybe_interesting("SELECT 1;--;--;--", 17));
}

/* Fragments joined at random: whenever sqlc_classify finds a session-level
 * statement or a flag, the pre-check must have said true. */
static const char *const frags[] = {
    "SELECT 1",
    "SET search_path TO a, \"B\"",
    "set statement_timeout=5",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_advisory_xact_lock(1)",
    "UPDATE t SET a = 1",
    "CREATE TEMP TABLE t(x int)",
    "SELECT 1 INTO TEMP t2",
    "INSERT INTO t VALUES ('a;b')",
    "LISTEN \"Chan\"",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "WITH x AS (SELECT pg_try_advisory_lock(2)) SELECT * FROM x",
    "SELECT set_config('a', 'b', false)",
    "END",
    "(SELECT 2)",
    "SELECT '--' AS x",
    "SELECT 'a''b;SET x=1'",
};
static const char *const seps[] = {";", "; ", ";\n-- c\n", ";/* x */ ", " ; ", ";\n\n"};
static const char *const leads[] = {"", " ", "/* hint */ ", "-- c\n", "\n\t"};

static void test_pre_check_never_false_when_classify_finds_something(void **state
                                                                     __attribute__((unused)))
{
	unsigned seed = 12345;
	char sql[1024];
	int interesting = 0;

	for (int iter = 0; iter < 3000; iter++) {
		size_t n = 0;
		int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;
		for (int k = 0; k < parts; k++) {
			seed = seed * 1103515245u + 12345u;
			const char *lead = leads[(seed >> 16) % (sizeof(leads) / sizeof(leads[0]))];
			seed = seed * 1103515245u + 12345u;
			const char *frag = frags[(seed >> 16) % (sizeof(frags) / sizeof(frags[0]))];
			seed = seed * 1103515245u + 12345u;
			const char *sep = seps[(seed >> 16) % (sizeof(seps) / sizeof(seps[0]))];
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s%s", lead, frag,
			                      k + 1 < parts ? sep : "");
		}
		struct sqlc_result r;
		assert_int_equal(sqlc_classify(sql, &r), 0);
		bool found = r.flags != 0;
		for (int i = 0; i < r.n; i++)
			found |= r.stmts[i].kind != SQLC_OTHER;
		if (found) {
			interesting++;
			if (!sqlc_maybe_interesting(sql, strlen(sql)))
				fail_msg("pre-check false, classify found something: %s", sql);
		}
	}
	assert_true(interesting > 1000); /* the property was exercised */
}

/* ---- Misc ---- */

static void test_kind_names_are_distinct(void **state __attribute__((unused)))
{
	for (int a = SQLC_OTHER; a <= SQLC_SESSION_AUTH; a++) {
		assert_string_not_equal(sqlc_kind_str((enum sqlc_kind)a), "?");
		for (int b = a + 1; b <= SQLC_SESSION_AUTH; b++)
			assert_string_not_equal(sqlc_kind_str((enum sqlc_kind)a),
			                        sqlc_kind_str((enum sqlc_kind)b));
	}
	assert_string_equal(sqlc_kind_str((enum sqlc_kind)999), "?");
}

static void *classify_many(void *p)
{
	int *bad = p;
	for (int i = 0; i < 300; i++) {
		struct sqlc_result r;
		if (sqlc_classify("SET search_path TO app; SELECT pg_advisory_lock(1)", &r) != 0 ||
		    r.n != 2 || r.stmts[0].kind != SQLC_SET ||
		    strcmp(r.stmts[0].name, "search_path") != 0 || r.flags != SQLC_F_ADVISORY_LOCK)
			(*bad)++;
	}
	return NULL;
}

static void test_threads_classify_concurrently(void **state __attribute__((unused)))
{
	pthread_t t[4];
	int bad[4] = {0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, classify_many, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bad[i], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_keeps_guc_name_as_postgres_maps_it),
	    cmocka_unit_test(test_set_local_and_transaction_settings_are_transaction_scoped),
	    cmocka_unit_test(test_set_default_and_reset),
	    cmocka_unit_test(test_role_and_session_authorization_are_reported),
	    cmocka_unit_test(test_long_or_multi_guc_name_is_marked_incomplete),
	    cmocka_unit_test(test_begin_with_any_options),
	    cmocka_unit_test(test_commit_and_rollback_spellings),
	    cmocka_unit_test(test_savepoints_do_not_end_the_transaction),
	    cmocka_unit_test(test_discard_variants),
	    cmocka_unit_test(test_listen_folds_unquoted_and_keeps_quoted_channel),
	    cmocka_unit_test(test_prepare_execute_deallocate),
	    cmocka_unit_test(test_only_cursors_with_hold_are_tracked),
	    cmocka_unit_test(test_temp_objects_are_detected),
	    cmocka_unit_test(test_permanent_objects_are_other),
	    cmocka_unit_test(test_session_advisory_locks_are_flagged_anywhere),
	    cmocka_unit_test(test_transaction_advisory_locks_are_not_flagged),
	    cmocka_unit_test(test_set_config_is_flagged_unless_transaction_local),
	    cmocka_unit_test(test_multi_statement_ranges_match_each_statement),
	    cmocka_unit_test(test_comments_and_hints_are_outside_the_range),
	    cmocka_unit_test(test_syntax_error_sets_parse_error_and_no_statements),
	    cmocka_unit_test(test_empty_and_comment_only_text_has_no_statements),
	    cmocka_unit_test(test_ten_thousand_statements_are_truncated_but_flags_complete),
	    cmocka_unit_test(test_too_deep_or_too_long_statement_is_refused_on_a_small_stack),
	    cmocka_unit_test(test_null_arguments_are_rejected),
	    cmocka_unit_test(test_pre_check_is_false_for_plain_queries),
	    cmocka_unit_test(test_pre_check_is_true_wherever_a_statement_can_start),
	    cmocka_unit_test(test_pre_check_reads_only_len_bytes),
	    cmocka_unit_test(test_pre_check_gives_up_with_true_on_quadratic_input),
	    cmocka_unit_test(test_pre_check_never_false_when_classify_finds_something),
	    cmocka_unit_test(test_kind_names_are_distinct),
	    cmocka_unit_test(test_threads_classify_concurrently),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
