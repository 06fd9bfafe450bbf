/*
 * Statement shapes: literals, comments, whitespace and keyword case do not
 * count; everything else does.
 */
#include "dataplane/pipeline/engine/shape.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

static uint64_t sh(const char *s)
{
	/* an exact-size copy: ASan catches reads past the end */
	size_t n = strlen(s);
	char *b = malloc(n ? n : 1);
	memcpy(b, s, n);
	uint64_t h = sql_shape(b, n);
	free(b);
	return h;
}

static void test_literals_comments_whitespace_and_case_do_not_count(void **state)
{
	(void)state;
	uint64_t a = sh("SELECT * FROM t WHERE id = 1 AND name = 'x'");
	assert_true(a == sh("select *  from T where id=42 and NAME = 'it''s'"));
	assert_true(a ==
	            sh("SELECT * FROM t /* c */ WHERE id = 1.5e-3 -- x\n AND name = E'a\\'b'"));
	assert_true(a == sh("SELECT * FROM t WHERE id = 0x1F AND name = $tag$ ' $tag$"));
	assert_true(a == sh("SELECT * FROM t WHERE id = .5 AND name = U&'d\\0061t'"));
	assert_true(sh("SELECT 1") == sh("SELECT 'a'"));
}

static void test_structure_counts(void **state)
{
	(void)state;
	uint64_t a = sh("SELECT * FROM t WHERE id = 1");
	assert_true(a != sh("SELECT * FROM u WHERE id = 1"));
	assert_true(a != sh("SELECT * FROM t WHERE id > 1"));
	assert_true(a != sh("SELECT * FROM t WHERE id = $1"));
	assert_true(sh("SELECT $1") != sh("SELECT $2"));
	assert_true(sh("SELECT a b") != sh("SELECT ab"));
	assert_true(sh("SELECT \"T\"") != sh("SELECT \"t\""));
	assert_true(sh("SELECT \"T\"") != sh("SELECT T"));
	assert_true(sh("SELECT t1") != sh("SELECT t2"));
	assert_true(sh("SELECT x IN (1, 2)") != sh("SELECT x IN (1, 2, 3)"));
}

static void test_unterminated_text_is_its_own_shape(void **state)
{
	(void)state;
	assert_true(sh("SELECT 'abc") != sh("SELECT 'abc'"));
	assert_true(sh("SELECT 1 /* open") != sh("SELECT 1"));
	assert_true(sh("SELECT $q$ open") != sh("SELECT $q$ x $q$"));
	assert_true(sh("") == sh("  -- nothing\n"));
}

/* What analytics relies on: one shape, one libpg_query fingerprint. */
static void test_same_shape_means_same_fingerprint(void **state)
{
	(void)state;
	static const char *const pairs[][2] = {
	    {"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
	     "select abalance from PGBENCH_ACCOUNTS where aid=987654"},
	    {"UPDATE t SET x = 'a', y = 2 WHERE id = 3",
	     "UPDATE t SET x = 'b''c', y = 2.5 WHERE id = 4"},
	    {"INSERT INTO t VALUES (1, 'x', 1e3)", "INSERT INTO t VALUES (2, E'y\\n', .5)"},
	    {"SELECT * FROM t WHERE x IN (1, 2) -- c", "SELECT * FROM t /* d */ WHERE x IN (7, 8)"},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		assert_true(sh(pairs[i][0]) == sh(pairs[i][1]));
		PgQueryFingerprintResult a = pg_query_fingerprint(pairs[i][0]);
		PgQueryFingerprintResult b = pg_query_fingerprint(pairs[i][1]);
		assert_null(a.error);
		assert_null(b.error);
		assert_true(a.fingerprint == b.fingerprint);
		pg_query_free_fingerprint_result(a);
		pg_query_free_fingerprint_result(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literals_comments_whitespace_and_case_do_not_count),
	    cmocka_unit_test(test_structure_counts),
	    cmocka_unit_test(test_unterminated_text_is_its_own_shape),
	    cmocka_unit_test(test_same_shape_means_same_fingerprint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
