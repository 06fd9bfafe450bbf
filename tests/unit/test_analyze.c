/*
 * Unit tests for dataplane/pipeline/analyze: statement kinds, tables read and
 * written, volatile functions, statement ranges, fingerprints, hostile input,
 * and the per-thread result cache (hits, LRU eviction, byte bound).
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

#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/sql/sqlc.h"

/* Analyses a NUL-terminated text; it must succeed. */
static void analyze(const char *sql, struct an_result *r)
{
	assert_int_equal(an_analyze(sql, strlen(sql), r), 0);
}

/* Analyses one valid statement and checks its kind and range. */
static void check_kind(const char *sql, enum an_kind want)
{
	struct an_result r;
	analyze(sql, &r);
	if (r.parse_error || r.too_complex || r.n_stmts != 1)
		fail_msg("%s: parse_error %d too_complex %d n_stmts %u", sql, r.parse_error,
		         r.too_complex, r.n_stmts);
	if (r.kind != want || r.stmts[0].kind != want)
		fail_msg("%s: kind %s, want %s", sql, an_kind_str(r.kind), an_kind_str(want));
	if (r.stmts[0].loc != 0 || r.stmts[0].len != strlen(sql))
		fail_msg("%s: range %u+%u", sql, r.stmts[0].loc, r.stmts[0].len);
}

/* The table schema.name must be listed exactly once, written or not. */
static void assert_table(const struct an_result *r, const char *schema, const char *name,
                         bool written)
{
	int found = 0;
	for (uint32_t i = 0; i < r->n_tables; i++) {
		if (strcmp(r->tables[i].schema, schema) != 0 ||
		    strcmp(r->tables[i].name, name) != 0)
			continue;
		found++;
		if (r->tables[i].written != written)
			fail_msg("%s.%s: written %d, want %d", schema, name, r->tables[i].written,
			         written);
	}
	if (found != 1)
		fail_msg("%s.%s: listed %d times", schema, name, found);
}

/* The text of statement i must be exactly want. */
static void assert_text(const char *sql, const struct an_result *r, uint32_t i, const char *want)
{
	assert_true(i < r->n_stmts);
	const struct an_stmt *st = &r->stmts[i];
	assert_true((size_t)st->loc + st->len <= strlen(sql));
	if (st->len != strlen(want) || memcmp(sql + st->loc, want, st->len) != 0)
		fail_msg("stmt %u: \"%.*s\", want \"%s\"", i, (int)st->len, sql + st->loc, want);
}

/* Two results say the same thing (unused array slots aside). */
static void assert_same(const struct an_result *a, const struct an_result *b)
{
	assert_int_equal(a->parse_error, b->parse_error);
	assert_int_equal(a->too_complex, b->too_complex);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->volatile_funcs, b->volatile_funcs);
	assert_true(a->fingerprint == b->fingerprint);
	assert_int_equal(a->tables_truncated, b->tables_truncated);
	assert_int_equal(a->n_stmts, b->n_stmts);
	assert_int_equal(a->n_tables, b->n_tables);
	for (uint32_t i = 0; i < a->n_stmts; i++) {
		assert_int_equal(a->stmts[i].kind, b->stmts[i].kind);
		assert_int_equal(a->stmts[i].loc, b->stmts[i].loc);
		assert_int_equal(a->stmts[i].len, b->stmts[i].len);
		assert_int_equal(a->stmts[i].begin_read_only, b->stmts[i].begin_read_only);
		assert_int_equal(a->stmts[i].begin_read_write, b->stmts[i].begin_read_write);
	}
	for (uint32_t i = 0; i < a->n_tables; i++) {
		assert_string_equal(a->tables[i].schema, b->tables[i].schema);
		assert_string_equal(a->tables[i].name, b->tables[i].name);
		assert_int_equal(a->tables[i].written, b->tables[i].written);
	}
	assert_int_equal(a->select_only, b->select_only);
	assert_int_equal(a->volatile_other, b->volatile_other);
	assert_int_equal(a->funcs_truncated, b->funcs_truncated);
	assert_int_equal(a->n_funcs, b->n_funcs);
	for (uint32_t i = 0; i < a->n_funcs; i++) {
		assert_string_equal(a->funcs[i].schema, b->funcs[i].schema);
		assert_string_equal(a->funcs[i].name, b->funcs[i].name);
		assert_int_equal(a->funcs[i].is_op, b->funcs[i].is_op);
	}
}

/* The result cache checks each named call and operator in the server's
 * catalog, so every one must be listed, qualified as written. */
static void test_calls_and_operators_are_listed_for_the_cache(void **state)
{
	(void)state;
	struct an_result r;
	const char *sql = "SELECT lower(a), s.f(b) FROM t WHERE a + 1 > 2 AND "
	                  "x OPERATOR(myops.===) y AND lower(c) = 'x'";
	assert_int_equal(an_analyze(sql, strlen(sql), &r), 0);
	assert_true(r.select_only);
	assert_false(r.volatile_other);
	assert_false(r.funcs_truncated);
	const char *want[][3] = {{"", "lower", "f"}, {"s", "f", "f"},       {"", ">", "o"},
	                         {"", "+", "o"},     {"myops", "===", "o"}, {"", "=", "o"}};
	size_t n = sizeof(want) / sizeof(want[0]);
	if (r.n_funcs != n) {
		for (uint32_t i = 0; i < r.n_funcs; i++)
			print_message("%s.%s %d\n", r.funcs[i].schema, r.funcs[i].name,
			              r.funcs[i].is_op);
		fail_msg("n_funcs %u, want %zu", r.n_funcs, n);
	}
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (uint32_t j = 0; j < r.n_funcs; j++)
			found |= !strcmp(r.funcs[j].schema, want[i][0]) &&
			         !strcmp(r.funcs[j].name, want[i][1]) &&
			         r.funcs[j].is_op == (want[i][2][0] == 'o');
		if (!found)
			fail_msg("%s.%s not listed", want[i][0], want[i][1]);
	}

	const char *other[] = {"SELECT CURRENT_TIMESTAMP", "SELECT * FROM t TABLESAMPLE SYSTEM (1)",
	                       "SHOW search_path", "SELECT current_user"};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		assert_int_equal(an_analyze(other[i], strlen(other[i]), &r), 0);
		if (!r.volatile_other || !r.volatile_funcs)
			fail_msg("%s: volatile_other not set", other[i]);
	}
	const char *not_select[] = {"EXPLAIN SELECT 1", "SHOW x", "COPY t TO STDOUT",
	                            "SELECT 1; SHOW x", "INSERT INTO t VALUES (1)"};
	for (size_t i = 0; i < sizeof(not_select) / sizeof(not_select[0]); i++) {
		assert_int_equal(an_analyze(not_select[i], strlen(not_select[i]), &r), 0);
		if (r.select_only)
			fail_msg("%s: select_only", not_select[i]);
	}
	const char *sel[] = {"VALUES (1)", "TABLE t", "SELECT 1 UNION SELECT 2",
	                     "WITH x AS (SELECT 1) SELECT * FROM x"};
	for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
		assert_int_equal(an_analyze(sel[i], strlen(sel[i]), &r), 0);
		if (!r.select_only)
			fail_msg("%s: not select_only", sel[i]);
	}
	/* the cache keeps the lists */
	struct an_cache *c = an_cache_new(16, 1 << 20);
	assert_non_null(c);
	struct an_result direct;
	assert_int_equal(an_analyze(sql, strlen(sql), &direct), 0);
	assert_non_null(an_cache_get(c, sql, strlen(sql)));
	const struct an_result *cached = an_cache_get(c, sql, strlen(sql));
	assert_non_null(cached);
	assert_same(&direct, cached);
	an_cache_free(c);
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

/* ---- Reads and their tables ---- */

static void test_select_is_read_with_qualified_and_unqualified_tables(void **state
                                                                      __attribute__((unused)))
{
	const char *sql = "SELECT a.x FROM app.accounts a JOIN users u ON u.id = a.uid "
	                  "WHERE a.x IN (SELECT y FROM \"Audit\".log) AND EXISTS (SELECT 1 FROM "
	                  "(SELECT * FROM app.deep) d)";
	struct an_result r;
	analyze(sql, &r);
	assert_false(r.parse_error);
	assert_false(r.too_complex);
	assert_int_equal(r.kind, AN_READ);
	assert_int_equal(r.n_stmts, 1);
	assert_false(r.volatile_funcs);
	assert_false(r.tables_truncated);
	assert_int_equal(r.n_tables, 4);
	assert_table(&r, "app", "accounts", false);
	assert_table(&r, "", "users", false);
	assert_table(&r, "Audit", "log", false);
	assert_table(&r, "app", "deep", false);
	assert_true(r.fingerprint != 0);
}

static void test_read_only_statement_forms_are_read(void **state __attribute__((unused)))
{
	check_kind("VALUES (1), (2)", AN_READ);
	check_kind("TABLE t", AN_READ);
	check_kind("SHOW search_path", AN_READ);
	check_kind("EXPLAIN SELECT * FROM t", AN_READ);
	check_kind("EXPLAIN ANALYZE SELECT * FROM t", AN_READ);
	check_kind("COPY t TO STDOUT", AN_READ);
	check_kind("COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", AN_READ);
	check_kind("SELECT count(*) FROM t GROUP BY x HAVING sum(y) > 1 ORDER BY 1 LIMIT 5",
	           AN_READ);
	check_kind("SELECT 1 UNION ALL SELECT 2 INTERSECT SELECT 3", AN_READ);

	struct an_result r;
	analyze("COPY s.t TO STDOUT", &r);
	assert_table(&r, "s", "t", false);
}

static void test_tables_are_distinct_as_written(void **state __attribute__((unused)))
{
	struct an_result r;
	/* the same name twice is one entry; qualified and not are two */
	analyze("SELECT * FROM t, t AS t2, public.t WHERE t.a IN (SELECT a FROM t)", &r);
	assert_int_equal(r.n_tables, 2);
	assert_table(&r, "", "t", false);
	assert_table(&r, "public", "t", false);
	/* a catalog-qualified name keeps schema and name */
	analyze("SELECT * FROM mydb.s.t", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "s", "t", false);
	/* FOR UPDATE OF names a FROM item, not another table */
	analyze("SELECT * FROM t AS x FOR UPDATE OF x", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "t", false);
}

static void test_too_many_tables_are_truncated(void **state __attribute__((unused)))
{
	char sql[1024];
	size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT 1 FROM t0");
	for (int i = 1; i < 40; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", t%d", i);
	struct an_result r;
	analyze(sql, &r);
	assert_int_equal(r.kind, AN_READ);
	assert_int_equal(r.n_tables, AN_MAX_TABLES);
	assert_true(r.tables_truncated);
	assert_table(&r, "", "t0", false);
	assert_table(&r, "", "t31", false);
}

/* ---- Writes ---- */

static void test_insert_select_marks_target_written_and_source_read(void **state
                                                                    __attribute__((unused)))
{
	struct an_result r;
	analyze("INSERT INTO archive.orders (id) SELECT id FROM orders WHERE ts < $1", &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_int_equal(r.n_tables, 2);
	assert_table(&r, "archive", "orders", true);
	assert_table(&r, "", "orders", false);
	/* a table both read and written is one written entry */
	analyze("INSERT INTO t SELECT * FROM t", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "t", true);
}

static void test_update_from_and_delete_using_write_only_the_target(void **state
                                                                    __attribute__((unused)))
{
	struct an_result r;
	analyze("UPDATE acc SET bal = bal + d.amt FROM deltas d WHERE d.id = acc.id", &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_int_equal(r.n_tables, 2);
	assert_table(&r, "", "acc", true);
	assert_table(&r, "", "deltas", false);

	analyze("DELETE FROM s.a USING b WHERE a.id = b.id RETURNING a.*", &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_table(&r, "s", "a", true);
	assert_table(&r, "", "b", false);

	analyze(
	    "MERGE INTO tgt USING src ON tgt.id = src.id WHEN MATCHED THEN UPDATE SET v = src.v "
	    "WHEN NOT MATCHED THEN INSERT VALUES (src.id, src.v)",
	    &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_table(&r, "", "tgt", true);
	assert_table(&r, "", "src", false);
}

static void test_data_modifying_cte_makes_a_select_a_write(void **state __attribute__((unused)))
{
	struct an_result r;
	analyze("WITH gone AS (DELETE FROM queue WHERE id < 10 RETURNING *) SELECT * FROM gone",
	        &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_int_equal(r.stmts[0].kind, AN_WRITE);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "queue", true);

	/* nested in a subquery's WITH too */
	analyze(
	    "SELECT * FROM (WITH x AS (INSERT INTO log VALUES (1) RETURNING *) SELECT * FROM x) "
	    "s",
	    &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_table(&r, "", "log", true);
}

static void test_locking_reads_and_select_into_are_writes(void **state __attribute__((unused)))
{
	check_kind("SELECT * FROM jobs WHERE id = 1 FOR UPDATE", AN_WRITE);
	check_kind("SELECT * FROM jobs FOR SHARE SKIP LOCKED", AN_WRITE);
	check_kind("SELECT * FROM jobs FOR KEY SHARE", AN_WRITE);
	check_kind("SELECT * FROM a WHERE id IN (SELECT id FROM b FOR NO KEY UPDATE)", AN_WRITE);
	check_kind("DECLARE c CURSOR FOR SELECT * FROM jobs FOR UPDATE", AN_WRITE);

	struct an_result r;
	analyze("SELECT * INTO new_t FROM old_t", &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_table(&r, "", "new_t", true);
	assert_table(&r, "", "old_t", false);
	/* FOR UPDATE does not change the rows' data */
	analyze("SELECT * FROM jobs FOR UPDATE", &r);
	assert_table(&r, "", "jobs", false);
}

static void test_functions_that_write_or_lock_make_a_write(void **state __attribute__((unused)))
{
	check_kind("SELECT nextval('s')", AN_WRITE);
	check_kind("SELECT setval('s', 10)", AN_WRITE);
	check_kind("SELECT currval('s')", AN_WRITE);
	check_kind("SELECT pg_advisory_lock(1)", AN_WRITE);
	check_kind("SELECT pg_try_advisory_xact_lock(1)", AN_WRITE);
	check_kind("SELECT pg_catalog.pg_advisory_unlock_all()", AN_WRITE);
	check_kind("SELECT set_config('a.b', 'c', false)", AN_WRITE);
	check_kind("SELECT x FROM t WHERE y = (SELECT nextval('s'))", AN_WRITE);
	check_kind("VALUES (nextval('s'))", AN_WRITE);
	check_kind("SELECT txid_current()", AN_WRITE);
}

static void test_statement_families_have_their_kind(void **state __attribute__((unused)))
{
	static const struct {
		const char *sql;
		enum an_kind kind;
	} w[] = {
	    {"INSERT INTO t VALUES (1)", AN_WRITE},
	    {"COPY t FROM STDIN", AN_WRITE},
	    {"COPY t TO '/tmp/x'", AN_WRITE},
	    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", AN_WRITE},
	    {"CALL proc(1)", AN_WRITE},
	    {"DO $$BEGIN PERFORM 1; END$$", AN_WRITE},
	    {"NOTIFY chan, 'x'", AN_WRITE},
	    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", AN_WRITE},
	    {"REFRESH MATERIALIZED VIEW mv", AN_WRITE},
	    {"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", AN_WRITE},
	    {"EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", AN_WRITE},
	    {"EXPLAIN INSERT INTO t VALUES (1)", AN_READ},
	    {"EXPLAIN (ANALYZE false) DELETE FROM t", AN_READ},
	    {"EXPLAIN (ANALYZE off, COSTS on) UPDATE t SET a = 1", AN_READ},
	    {"CREATE TABLE t (a int)", AN_DDL},
	    {"CREATE TABLE t2 AS SELECT * FROM t", AN_DDL},
	    {"ALTER TABLE t ADD COLUMN b text", AN_DDL},
	    {"DROP TABLE IF EXISTS t CASCADE", AN_DDL},
	    {"TRUNCATE t", AN_DDL},
	    {"GRANT SELECT ON t TO bob", AN_DDL},
	    {"COMMENT ON TABLE t IS 'x'", AN_DDL},
	    {"CREATE INDEX CONCURRENTLY i ON t (a)", AN_DDL},
	    {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", AN_DDL},
	    {"ALTER SYSTEM SET work_mem = '8MB'", AN_DDL},
	    {"BEGIN", AN_TXN},
	    {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE", AN_TXN},
	    {"COMMIT", AN_TXN},
	    {"ROLLBACK", AN_TXN},
	    {"SAVEPOINT s1", AN_TXN},
	    {"RELEASE SAVEPOINT s1", AN_TXN},
	    {"ROLLBACK TO SAVEPOINT s1", AN_TXN},
	    {"PREPARE TRANSACTION 'g1'", AN_TXN},
	    {"COMMIT PREPARED 'g1'", AN_TXN},
	    {"SET search_path TO app", AN_UTILITY},
	    {"SET LOCAL statement_timeout = 5", AN_UTILITY},
	    {"RESET ALL", AN_UTILITY},
	    {"LISTEN chan", AN_UTILITY},
	    {"UNLISTEN *", AN_UTILITY},
	    {"DISCARD ALL", AN_UTILITY},
	    {"VACUUM ANALYZE t", AN_UTILITY},
	    {"ANALYZE t", AN_UTILITY},
	    {"CHECKPOINT", AN_UTILITY},
	    {"PREPARE p AS INSERT INTO t VALUES ($1)", AN_UTILITY},
	    {"EXECUTE p(1)", AN_UTILITY},
	    {"DEALLOCATE ALL", AN_UTILITY},
	    {"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", AN_UTILITY},
	    {"FETCH 10 FROM c", AN_UTILITY},
	    {"CLOSE c", AN_UTILITY},
	    {"SET CONSTRAINTS ALL DEFERRED", AN_UTILITY},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		check_kind(w[i].sql, w[i].kind);
}

static void test_ddl_names_its_relations_as_written(void **state __attribute__((unused)))
{
	struct an_result r;
	analyze("TRUNCATE a, s.b", &r);
	assert_int_equal(r.n_tables, 2);
	assert_table(&r, "", "a", true);
	assert_table(&r, "s", "b", true);

	analyze("DROP TABLE s.t, u", &r);
	assert_int_equal(r.n_tables, 2);
	assert_table(&r, "s", "t", true);
	assert_table(&r, "", "u", true);

	/* the view changes; the table it reads does not */
	analyze("CREATE VIEW v AS SELECT * FROM base WHERE x > 1", &r);
	assert_int_equal(r.kind, AN_DDL);
	assert_table(&r, "", "v", true);
	assert_table(&r, "", "base", false);

	analyze("ALTER TABLE t RENAME TO t_old", &r);
	assert_table(&r, "", "t", true);

	/* DROP of a non-relation names no table */
	analyze("DROP FUNCTION f(int)", &r);
	assert_int_equal(r.n_tables, 0);
}

static void test_explain_without_analyze_and_prepare_write_nothing(void **state
                                                                   __attribute__((unused)))
{
	struct an_result r;
	analyze("EXPLAIN INSERT INTO t SELECT * FROM u", &r);
	assert_int_equal(r.kind, AN_READ);
	assert_table(&r, "", "t", false);
	assert_table(&r, "", "u", false);

	analyze("EXPLAIN ANALYZE INSERT INTO t SELECT * FROM u", &r);
	assert_int_equal(r.kind, AN_WRITE);
	assert_table(&r, "", "t", true);

	analyze("PREPARE p AS DELETE FROM t", &r);
	assert_int_equal(r.kind, AN_UTILITY);
	assert_table(&r, "", "t", false);
	/* nextval in a prepared body runs only at EXECUTE */
	analyze("PREPARE q AS SELECT nextval('s')", &r);
	assert_int_equal(r.kind, AN_UTILITY);
}

/* ---- CTEs ---- */

static void test_cte_names_are_not_tables(void **state __attribute__((unused)))
{
	struct an_result r;
	analyze("WITH recent AS (SELECT * FROM orders WHERE ts > $1), big AS (SELECT * FROM recent "
	        "WHERE amt > 100) SELECT * FROM big JOIN recent USING (id)",
	        &r);
	assert_int_equal(r.kind, AN_READ);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "orders", false);

	/* a recursive CTE refers to itself */
	analyze("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
	        "SELECT * FROM r",
	        &r);
	assert_int_equal(r.n_tables, 0);

	/* a non-recursive CTE cannot: the inner t is the table */
	analyze("WITH t AS (SELECT * FROM t) SELECT * FROM t", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "t", false);

	/* schema-qualified names are never CTEs */
	analyze("WITH x AS (SELECT 1) SELECT * FROM x, public.x", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "public", "x", false);

	/* a CTE's scope ends with its statement */
	analyze("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "x", false);

	/* a DML target is always the table, even if a CTE has its name */
	analyze("WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM t", &r);
	assert_int_equal(r.n_tables, 1);
	assert_table(&r, "", "t", true);
}

/* ---- Volatility ---- */

static void test_volatile_functions_are_flagged_and_immutable_ones_are_not(void **state
                                                                           __attribute__((unused)))
{
	static const char *const vol[] = {
	    "SELECT now()",
	    "SELECT * FROM t ORDER BY random()",
	    "SELECT CURRENT_TIMESTAMP",
	    "SELECT * FROM t WHERE d > CURRENT_DATE - 1",
	    "SELECT current_user",
	    "SELECT clock_timestamp()",
	    "SELECT my_func(a) FROM t",
	    "SELECT concat(a, b) FROM t",
	    "SELECT public.lower(a) FROM t",
	    "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
	    "SELECT * FROM generate_series(1, 3)",
	    "SELECT lower(x) FROM (SELECT now()::text AS x) s",
	};
	static const char *const stable[] = {
	    "SELECT 1",
	    "SELECT lower(name), upper(name), length(name) FROM t",
	    "SELECT abs(x), substr(s, 1, 2), replace(s, 'a', 'b'), btrim(s) FROM t",
	    "SELECT trim(both ' ' from s), substring(s from 2 for 3), position('a' in s) FROM t",
	    "SELECT count(*), sum(x), max(y) FROM t",
	    "SELECT pg_catalog.lower(a) FROM t",
	    "SELECT coalesce(a, b), nullif(a, 0), greatest(a, b) FROM t",
	    "SELECT '2024-01-01'::date + 1, a::text FROM t",
	    "SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (42)",
	};
	for (size_t i = 0; i < sizeof(vol) / sizeof(vol[0]); i++) {
		struct an_result r;
		analyze(vol[i], &r);
		if (!r.volatile_funcs || r.kind != AN_READ)
			fail_msg("%s: volatile %d kind %s", vol[i], r.volatile_funcs,
			         an_kind_str(r.kind));
	}
	for (size_t i = 0; i < sizeof(stable) / sizeof(stable[0]); i++) {
		struct an_result r;
		analyze(stable[i], &r);
		if (r.volatile_funcs || r.kind != AN_READ)
			fail_msg("%s: volatile %d kind %s", stable[i], r.volatile_funcs,
			         an_kind_str(r.kind));
	}
	/* SHOW reports session state, not table data */
	struct an_result r;
	analyze("SHOW TimeZone", &r);
	assert_int_equal(r.kind, AN_READ);
	assert_true(r.volatile_funcs);
}

/* ---- Several statements ---- */

static void test_transaction_block_splits_into_statements_with_ranges(void **state
                                                                      __attribute__((unused)))
{
	const char *sql = "BEGIN; UPDATE t SET a = a + 1 WHERE id = 7;\n COMMIT";
	struct an_result r;
	analyze(sql, &r);
	assert_false(r.parse_error);
	assert_int_equal(r.n_stmts, 3);
	assert_int_equal(r.kind, AN_WRITE);
	assert_int_equal(r.stmts[0].kind, AN_TXN);
	assert_int_equal(r.stmts[1].kind, AN_WRITE);
	assert_int_equal(r.stmts[2].kind, AN_TXN);
	assert_text(sql, &r, 0, "BEGIN");
	assert_text(sql, &r, 1, "UPDATE t SET a = a + 1 WHERE id = 7");
	assert_text(sql, &r, 2, "COMMIT");
	assert_table(&r, "", "t", true);

	/* comments and hints stay outside the ranges, a "--" in a literal stays */
	sql = "/* route */ SELECT '--x' -- why\n; -- c\nSELECT 2 /* y */";
	analyze(sql, &r);
	assert_int_equal(r.n_stmts, 2);
	assert_text(sql, &r, 0, "SELECT '--x'");
	assert_text(sql, &r, 1, "SELECT 2 /* y */");
}

static void test_strongest_statement_decides_the_kind(void **state __attribute__((unused)))
{
	static const struct {
		const char *sql;
		enum an_kind kind;
	} w[] = {
	    {"SELECT 1; SELECT 2", AN_READ},
	    {"BEGIN; COMMIT", AN_TXN},
	    {"SAVEPOINT a; RELEASE a", AN_TXN},
	    {"BEGIN; SELECT 1; COMMIT", AN_TXN},
	    {"SELECT 1; SET a.b = 1", AN_UTILITY},
	    {"SET a.b = 1; CREATE TABLE x (a int); SELECT 1", AN_DDL},
	    {"CREATE TABLE x (a int); INSERT INTO x VALUES (1); BEGIN", AN_WRITE},
	    {"SELECT 1; SELECT nextval('s')", AN_WRITE},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		struct an_result r;
		analyze(w[i].sql, &r);
		if (r.kind != w[i].kind)
			fail_msg("%s: kind %s, want %s", w[i].sql, an_kind_str(r.kind),
			         an_kind_str(w[i].kind));
	}
}

static void test_begin_read_only_and_read_write_are_flagged(void **state __attribute__((unused)))
{
	static const struct {
		const char *sql;
		bool ro, rw;
	} w[] = {
	    {"BEGIN READ ONLY", true, false},
	    {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", true, false},
	    {"BEGIN TRANSACTION READ WRITE", false, true},
	    {"BEGIN READ ONLY, READ WRITE", false, true},
	    {"BEGIN", false, false},
	    {"BEGIN ISOLATION LEVEL REPEATABLE READ", false, false},
	    {"SET TRANSACTION READ ONLY", false, false},
	    {"COMMIT", false, false},
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		struct an_result r;
		analyze(w[i].sql, &r);
		assert_int_equal(r.n_stmts, 1);
		if (r.stmts[0].begin_read_only != w[i].ro || r.stmts[0].begin_read_write != w[i].rw)
			fail_msg("%s: read_only %d read_write %d", w[i].sql,
			         r.stmts[0].begin_read_only, r.stmts[0].begin_read_write);
	}
	struct an_result r;
	analyze("BEGIN READ ONLY; SELECT 1; COMMIT", &r);
	assert_true(r.stmts[0].begin_read_only);
	assert_false(r.stmts[2].begin_read_only);
}

/* ---- Errors and bounds ---- */

/* A result that routes nothing: no statements, no tables, no fingerprint,
 * and the conservative kind. */
static void assert_unknown(const struct an_result *r)
{
	assert_int_equal(r->n_stmts, 0);
	assert_int_equal(r->n_tables, 0);
	assert_true(r->fingerprint == 0);
	assert_int_equal(r->kind, AN_WRITE);
	assert_true(r->volatile_funcs);
}

static void test_parse_error_is_a_result_that_routes_nothing(void **state __attribute__((unused)))
{
	static const char *const bad[] = {
	    "SELEC 1",
	    "SELECT * FROM t; SELEC 1", /* the server runs none of it */
	    "SELECT 'unterminated",
	    "/* unterminated comment SELECT 1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct an_result r;
		analyze(bad[i], &r);
		assert_true(r.parse_error);
		assert_false(r.too_complex);
		assert_unknown(&r);
	}
	/* a NUL inside the text: the server refuses the message */
	struct an_result r;
	assert_int_equal(an_analyze("SELECT 1\0; DROP TABLE t", 23, &r), 0);
	assert_true(r.parse_error);
	assert_unknown(&r);
}

static void test_empty_text_has_no_statements(void **state __attribute__((unused)))
{
	static const char *const empty[] = {"", "  \n", ";;", "-- c", "/* x */"};
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		struct an_result r;
		analyze(empty[i], &r);
		assert_false(r.parse_error);
		assert_false(r.too_complex);
		assert_int_equal(r.n_stmts, 0);
		assert_int_equal(r.kind, AN_READ);
	}
	struct an_result r;
	assert_int_equal(an_analyze(NULL, 0, &r), 0);
	assert_int_equal(r.n_stmts, 0);
}

static void test_input_is_read_only_up_to_len(void **state __attribute__((unused)))
{
	/* an exact-size heap copy without NUL: ASan flags any read past len */
	const char *text = "SELECT * FROM t; DELETE FROM u";
	size_t n = strlen(text);
	char *b = malloc(n);
	assert_non_null(b);
	memcpy(b, text, n);
	struct an_result r;
	assert_int_equal(an_analyze(b, n, &r), 0);
	assert_int_equal(r.n_stmts, 2);
	assert_int_equal(r.kind, AN_WRITE);
	/* only a prefix: the DELETE is not there */
	assert_int_equal(an_analyze(b, 16, &r), 0);
	assert_int_equal(r.n_stmts, 1);
	assert_int_equal(r.kind, AN_READ);
	free(b);
}

static void test_fingerprint_ignores_constants_but_not_tables(void **state __attribute__((unused)))
{
	struct an_result a, b;
	analyze("SELECT 1", &a);
	analyze("select  2", &b);
	assert_true(a.fingerprint != 0);
	assert_true(a.fingerprint == b.fingerprint);

	analyze("SELECT * FROM t WHERE id = 5 AND name = 'x'", &a);
	analyze("SELECT * FROM t WHERE id = 99 AND name = 'yy'", &b);
	assert_true(a.fingerprint == b.fingerprint);

	analyze("SELECT * FROM orders WHERE id = 5", &a);
	analyze("SELECT * FROM customers WHERE id = 5", &b);
	assert_true(a.fingerprint != b.fingerprint);
}

static void test_more_statements_than_the_limit_are_too_complex(void **state
                                                                __attribute__((unused)))
{
	struct an_result r;
	char *sql = repeat("", "SELECT 1;", AN_MAX_STMTS, "");
	analyze(sql, &r);
	assert_false(r.too_complex);
	assert_int_equal(r.n_stmts, AN_MAX_STMTS);
	free(sql);

	sql = repeat("", "SELECT 1;", AN_MAX_STMTS + 1, "");
	analyze(sql, &r);
	assert_true(r.too_complex);
	assert_false(r.parse_error);
	assert_unknown(&r);
	free(sql);

	/* long text of many statements is refused by the scanner, unparsed */
	sql = repeat("", "SELECT 1 + 1 + 1 + 1 + 1;", 2000, "");
	analyze(sql, &r);
	assert_true(r.too_complex);
	free(sql);
}

struct deep_arg {
	const char *sql;
	int rc;
	struct an_result r;
};

static void *analyze_thread(void *p)
{
	struct deep_arg *a = p;
	a->rc = an_analyze(a->sql, strlen(a->sql), &a->r);
	return NULL;
}

/* Runs an_analyze on a thread with half a worker's 8 MB stack: an overflow
 * kills the test instead of failing it, which is just as visible. */
static void analyze_on_small_stack(struct deep_arg *a)
{
	pthread_attr_t at;
	pthread_t t;
	assert_int_equal(pthread_attr_init(&at), 0);
	assert_int_equal(pthread_attr_setstacksize(&at, 4u << 20), 0);
	assert_int_equal(pthread_create(&t, &at, analyze_thread, a), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&at);
	assert_int_equal(a->rc, 0);
}

static void test_too_deep_or_too_long_statement_is_too_complex(void **state __attribute__((unused)))
{
	struct deep_arg *a = calloc(1, sizeof(*a));
	assert_non_null(a);

	/* 14 KB: under the length bound, but a tree 14,000 levels deep */
	char *sql = repeat("SELECT * FROM t WHERE a = 1", "+1", 7000, "");
	a->sql = sql;
	analyze_on_small_stack(a);
	assert_true(a->r.too_complex);
	assert_unknown(&a->r);
	free(sql);

	/* 40 KB in one statement: refused before the parser sees it */
	sql = repeat("SELECT * FROM t WHERE a = 1", "+1", 20000, "");
	a->sql = sql;
	analyze_on_small_stack(a);
	assert_true(a->r.too_complex);
	free(sql);

	/* nested subqueries and CTEs, as deep as the bounds allow */
	sql = repeat("SELECT * FROM ", "(WITH c AS (SELECT 1) SELECT * FROM ", 150, "t");
	char *full = malloc(strlen(sql) + 150 * 4 + 1);
	assert_non_null(full);
	strcpy(full, sql);
	for (int i = 0; i < 150; i++)
		strcat(full, ") s");
	a->sql = full;
	analyze_on_small_stack(a);
	assert_false(a->r.parse_error);
	free(sql);
	free(full);

	/* a deep but realistic expression is analysed */
	sql = repeat("SELECT * FROM t WHERE a = 1", "+1", 200, "");
	a->sql = sql;
	analyze_on_small_stack(a);
	assert_false(a->r.too_complex);
	assert_int_equal(a->r.kind, AN_READ);
	assert_table(&a->r, "", "t", false);
	free(sql);
	free(a);
}

/* ---- Cache ---- */

static void test_cache_second_get_is_a_hit_with_the_same_analysis(void **state
                                                                  __attribute__((unused)))
{
	static const char *const texts[] = {
	    "BEGIN READ ONLY; SELECT a FROM s.t JOIN u USING (id) WHERE x > now(); COMMIT",
	    "WITH d AS (DELETE FROM q RETURNING *) INSERT INTO arch SELECT * FROM d",
	    "SELEC 1",
	    "",
	};
	struct an_cache *c = an_cache_new(16, 1 << 20);
	assert_non_null(c);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct an_result want;
		analyze(texts[i], &want);
		const struct an_result *r = an_cache_get(c, texts[i], strlen(texts[i]));
		assert_non_null(r);
		assert_same(r, &want);
		r = an_cache_get(c, texts[i], strlen(texts[i]));
		assert_non_null(r);
		assert_same(r, &want);
	}
	struct an_cache_stats st;
	an_cache_stats(c, &st);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.hits, 4);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.evictions, 0);
	assert_true(st.bytes > 0);
	an_cache_free(c);
}

static void test_cache_evicts_the_least_recent_at_max_entries(void **state __attribute__((unused)))
{
	struct an_cache *c = an_cache_new(2, 1 << 20);
	assert_non_null(c);
	struct an_cache_stats st;

	assert_non_null(an_cache_get(c, "SELECT 1", 8)); /* miss: [A] */
	assert_non_null(an_cache_get(c, "SELECT 2", 8)); /* miss: [B A] */
	assert_non_null(an_cache_get(c, "SELECT 1", 8)); /* hit:  [A B] */
	assert_non_null(an_cache_get(c, "SELECT 3", 8)); /* miss, evicts B: [C A] */
	an_cache_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 3);

	assert_non_null(an_cache_get(c, "SELECT 1", 8)); /* still there */
	assert_non_null(an_cache_get(c, "SELECT 3", 8)); /* still there */
	an_cache_stats(c, &st);
	assert_int_equal(st.hits, 3);
	assert_non_null(an_cache_get(c, "SELECT 2", 8)); /* was evicted */
	an_cache_stats(c, &st);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.entries, 2);
	an_cache_free(c);
}

static void test_cache_texts_differing_by_one_byte_are_different_entries(void **state
                                                                         __attribute__((unused)))
{
	struct an_cache *c = an_cache_new(16, 1 << 20);
	assert_non_null(c);
	const struct an_result *r = an_cache_get(c, "SELECT * FROM a", 15);
	assert_non_null(r);
	assert_table(r, "", "a", false);
	r = an_cache_get(c, "SELECT * FROM b", 15);
	assert_non_null(r);
	assert_table(r, "", "b", false);
	/* a prefix of a cached text is another text */
	r = an_cache_get(c, "SELECT * FROM a", 14);
	assert_non_null(r);
	assert_true(r->parse_error);
	r = an_cache_get(c, "SELECT * FROM a", 15);
	assert_table(r, "", "a", false);
	struct an_cache_stats st;
	an_cache_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.hits, 1);
	an_cache_free(c);
}

static void test_cache_is_bounded_by_max_bytes(void **state __attribute__((unused)))
{
	const size_t max_bytes = 2048;
	struct an_cache *c = an_cache_new(1000, max_bytes);
	assert_non_null(c);
	struct an_cache_stats st;
	char sql[128];
	for (int i = 0; i < 200; i++) {
		int n =
		    snprintf(sql, sizeof(sql), "SELECT * FROM table_%d JOIN other USING (id)", i);
		const struct an_result *r = an_cache_get(c, sql, (size_t)n);
		assert_non_null(r);
		assert_int_equal(r->n_tables, 2);
		an_cache_stats(c, &st);
		assert_true(st.bytes <= max_bytes);
	}
	assert_true(st.entries > 1);
	assert_true(st.entries < 200);
	assert_int_equal(st.evictions, 200 - st.entries);

	/* a text too big to keep is still analysed, every time */
	char *big = repeat("SELECT ", "1, ", 1000, "1");
	for (int i = 0; i < 2; i++) {
		const struct an_result *r = an_cache_get(c, big, strlen(big));
		assert_non_null(r);
		assert_int_equal(r->kind, AN_READ);
	}
	struct an_cache_stats st2;
	an_cache_stats(c, &st2);
	assert_int_equal(st2.misses, st.misses + 2);
	assert_int_equal(st2.entries, st.entries);
	free(big);
	an_cache_free(c);

	/* a cache of nothing still answers */
	c = an_cache_new(0, 0);
	assert_non_null(c);
	assert_non_null(an_cache_get(c, "SELECT 1", 8));
	assert_non_null(an_cache_get(c, "SELECT 1", 8));
	an_cache_stats(c, &st);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.entries, 0);
	an_cache_free(c);
}

static void test_cache_grows_past_its_initial_buckets(void **state __attribute__((unused)))
{
	struct an_cache *c = an_cache_new(500, 1 << 22);
	assert_non_null(c);
	char sql[64];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 300; i++) {
			int n = snprintf(sql, sizeof(sql), "SELECT * FROM t%d", i);
			const struct an_result *r = an_cache_get(c, sql, (size_t)n);
			assert_non_null(r);
			char name[16];
			snprintf(name, sizeof(name), "t%d", i);
			assert_table(r, "", name, false);
		}
	}
	struct an_cache_stats st;
	an_cache_stats(c, &st);
	assert_int_equal(st.entries, 300);
	assert_int_equal(st.misses, 300);
	assert_int_equal(st.hits, 300);
	an_cache_free(c);
}

/* ---- Properties over random texts ---- */

static const char *const frags[] = {
    "SELECT 1",
    "SELECT * FROM s.t WHERE a = 'x;y'",
    "UPDATE t SET a = 1",
    "WITH d AS (DELETE FROM q RETURNING *) SELECT * FROM d",
    "INSERT INTO t SELECT * FROM u",
    "BEGIN READ ONLY",
    "COMMIT",
    "SET search_path TO app",
    "SELECT '--' AS x -- trailing",
    "CREATE TABLE n (a int)",
    "SELECT now(), nextval('s')",
    "(SELECT 2)",
    "SELEC 3",
};
static const char *const seps[] = {";", "; ", ";\n-- c\n", ";/* x */ ", " ; "};

static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/* A random text of 1 to 4 fragments into buf. */
static void random_text(unsigned *seed, char *buf, size_t size)
{
	size_t n = 0;
	int parts = 1 + (int)(next_rand(seed) % 4);
	for (int k = 0; k < parts; k++) {
		const char *frag = frags[next_rand(seed) % (sizeof(frags) / sizeof(frags[0]))];
		const char *sep = seps[next_rand(seed) % (sizeof(seps) / sizeof(seps[0]))];
		n += (size_t)snprintf(buf + n, size - n, "%s%s", frag, k + 1 < parts ? sep : "");
	}
}

static void test_statement_ranges_agree_with_sqlc(void **state __attribute__((unused)))
{
	unsigned seed = 4242;
	char sql[1024];
	for (int iter = 0; iter < 1500; iter++) {
		random_text(&seed, sql, sizeof(sql));
		struct an_result r;
		struct sqlc_result q;
		analyze(sql, &r);
		assert_int_equal(sqlc_classify(sql, &q), 0);
		assert_int_equal(r.parse_error, q.parse_error);
		if (r.n_stmts != (uint32_t)q.n)
			fail_msg("%s: %u statements, sqlc %d", sql, r.n_stmts, q.n);
		for (int i = 0; i < q.n; i++)
			if (r.stmts[i].loc != q.stmts[i].loc || r.stmts[i].len != q.stmts[i].len)
				fail_msg("%s: stmt %d at %u+%u, sqlc %u+%u", sql, i, r.stmts[i].loc,
				         r.stmts[i].len, q.stmts[i].loc, q.stmts[i].len);
	}
}

static void test_cache_answers_as_analysis_does_under_churn(void **state __attribute__((unused)))
{
	/* 24 distinct texts through 8 entries: hits, misses and evictions mix */
	enum { POOL = 24 };
	static char pool[POOL][1024];
	struct an_result want[POOL];
	unsigned seed = 99;
	for (int i = 0; i < POOL; i++) {
		snprintf(pool[i], sizeof(pool[i]), "/* %d */ ", i);
		size_t n = strlen(pool[i]);
		random_text(&seed, pool[i] + n, sizeof(pool[i]) - n);
		analyze(pool[i], &want[i]);
	}
	struct an_cache *c = an_cache_new(8, 8192);
	assert_non_null(c);
	for (int iter = 0; iter < 2000; iter++) {
		/* skewed towards the first texts, as real traffic is */
		unsigned k = next_rand(&seed) % POOL;
		if (next_rand(&seed) % 2)
			k %= 6;
		const struct an_result *r = an_cache_get(c, pool[k], strlen(pool[k]));
		assert_non_null(r);
		assert_same(r, &want[k]);
	}
	struct an_cache_stats st;
	an_cache_stats(c, &st);
	assert_int_equal(st.hits + st.misses, 2000);
	assert_true(st.hits > 500);
	assert_true(st.evictions > 100);
	assert_true(st.entries <= 8 && st.bytes <= 8192);
	assert_int_equal(st.misses - st.evictions, st.entries);
	an_cache_free(c);
}

/* ---- Threads ---- */

static void *cache_many(void *p)
{
	int *bad = p;
	struct an_cache *c = an_cache_new(8, 1 << 16);
	if (!c) {
		(*bad)++;
		return NULL;
	}
	char sql[96];
	for (int i = 0; i < 300; i++) {
		int n = snprintf(sql, sizeof(sql),
		                 "UPDATE t%d SET a = now() FROM u WHERE u.id = %d", i % 12, i);
		const struct an_result *r = an_cache_get(c, sql, (size_t)n);
		if (!r || r->kind != AN_WRITE || r->n_tables != 2 || !r->tables[0].written ||
		    r->tables[1].written || !r->volatile_funcs)
			(*bad)++;
	}
	an_cache_free(c);
	return NULL;
}

static void test_threads_use_their_own_caches_concurrently(void **state __attribute__((unused)))
{
	pthread_t t[4];
	int bad[4] = {0};
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, cache_many, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bad[i], 0);
	}
}

static void test_kind_names(void **state __attribute__((unused)))
{
	assert_string_equal(an_kind_str(AN_READ), "read");
	assert_string_equal(an_kind_str(AN_WRITE), "write");
	assert_string_equal(an_kind_str(AN_DDL), "ddl");
	assert_string_equal(an_kind_str(AN_TXN), "txn");
	assert_string_equal(an_kind_str(AN_UTILITY), "utility");
	assert_string_equal(an_kind_str((enum an_kind)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_select_is_read_with_qualified_and_unqualified_tables),
	    cmocka_unit_test(test_read_only_statement_forms_are_read),
	    cmocka_unit_test(test_tables_are_distinct_as_written),
	    cmocka_unit_test(test_too_many_tables_are_truncated),
	    cmocka_unit_test(test_insert_select_marks_target_written_and_source_read),
	    cmocka_unit_test(test_update_from_and_delete_using_write_only_the_target),
	    cmocka_unit_test(test_data_modifying_cte_makes_a_select_a_write),
	    cmocka_unit_test(test_locking_reads_and_select_into_are_writes),
	    cmocka_unit_test(test_functions_that_write_or_lock_make_a_write),
	    cmocka_unit_test(test_statement_families_have_their_kind),
	    cmocka_unit_test(test_ddl_names_its_relations_as_written),
	    cmocka_unit_test(test_explain_without_analyze_and_prepare_write_nothing),
	    cmocka_unit_test(test_cte_names_are_not_tables),
	    cmocka_unit_test(test_volatile_functions_are_flagged_and_immutable_ones_are_not),
	    cmocka_unit_test(test_transaction_block_splits_into_statements_with_ranges),
	    cmocka_unit_test(test_strongest_statement_decides_the_kind),
	    cmocka_unit_test(test_begin_read_only_and_read_write_are_flagged),
	    cmocka_unit_test(test_parse_error_is_a_result_that_routes_nothing),
	    cmocka_unit_test(test_empty_text_has_no_statements),
	    cmocka_unit_test(test_input_is_read_only_up_to_len),
	    cmocka_unit_test(test_fingerprint_ignores_constants_but_not_tables),
	    cmocka_unit_test(test_more_statements_than_the_limit_are_too_complex),
	    cmocka_unit_test(test_too_deep_or_too_long_statement_is_too_complex),
	    cmocka_unit_test(test_cache_second_get_is_a_hit_with_the_same_analysis),
	    cmocka_unit_test(test_cache_evicts_the_least_recent_at_max_entries),
	    cmocka_unit_test(test_cache_texts_differing_by_one_byte_are_different_entries),
	    cmocka_unit_test(test_cache_is_bounded_by_max_bytes),
	    cmocka_unit_test(test_cache_grows_past_its_initial_buckets),
	    cmocka_unit_test(test_statement_ranges_agree_with_sqlc),
	    cmocka_unit_test(test_cache_answers_as_analysis_does_under_churn),
	    cmocka_unit_test(test_threads_use_their_own_caches_concurrently),
	    cmocka_unit_test(test_kind_names),
	    cmocka_unit_test(test_calls_and_operators_are_listed_for_the_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
