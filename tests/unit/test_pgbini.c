/*
 * Unit tests for cli/pgbini: pgbouncer.ini read as PgBouncer 1.18 reads it
 * (comment lines, sections, values to the end of the line with their quotes,
 * file:line errors) and the connection strings of [databases] entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/pgbini.h"

static int parse(struct pgbini *ini, const char *text, char *err, size_t errlen)
{
	char section[PGBINI_SECTION_MAX] = "";

	memset(ini, 0, sizeof(*ini));
	return pgbini_parse(ini, "t.ini", text, strlen(text), section, 0, err, errlen);
}

static void test_sections_keys_and_comment_lines(void **state)
{
	struct pgbini ini;
	char err[256] = "";
	(void)state;

	assert_int_equal(parse(&ini,
	                       "; a comment\n"
	                       "# another\n"
	                       "[Databases]\n"
	                       "x.y-z = host=h port=1\n"
	                       "\n"
	                       "  [pgbouncer]  \n"
	                       "Listen_Port=6432\n"
	                       "foodb =\n",
	                       err, sizeof(err)),
	                 0);
	assert_int_equal(ini.n, 3);
	assert_string_equal(ini.e[0].section, "databases");
	assert_string_equal(ini.e[0].key, "x.y-z");
	assert_string_equal(ini.e[0].val, "host=h port=1");
	assert_int_equal(ini.e[0].line, 4);
	assert_string_equal(ini.e[1].section, "pgbouncer");
	assert_string_equal(ini.e[1].key, "Listen_Port");
	assert_string_equal(ini.e[1].val, "6432");
	assert_int_equal(ini.e[1].line, 7);
	assert_string_equal(ini.e[2].key, "foodb");
	assert_string_equal(ini.e[2].val, "");
	pgbini_free(&ini);
}

/* PgBouncer keeps quotes and a trailing "; note" in the value. */
static void test_value_runs_to_end_of_line_with_quotes(void **state)
{
	struct pgbini ini;
	char err[256] = "";
	(void)state;

	assert_int_equal(parse(&ini,
	                       "[pgbouncer]\n"
	                       "server_reset_query = \"DISCARD  ALL\"   \n"
	                       "log_connections = 1 ; on\r\n",
	                       err, sizeof(err)),
	                 0);
	assert_string_equal(ini.e[0].val, "\"DISCARD  ALL\"");
	assert_string_equal(ini.e[1].val, "1 ; on");
	pgbini_free(&ini);
}

static void assert_refused(const char *text, const char *want)
{
	struct pgbini ini;
	char err[256] = "";

	assert_true(parse(&ini, text, err, sizeof(err)) < 0);
	assert_string_equal(err, want);
	pgbini_free(&ini);
}

static void test_errors_name_file_and_line(void **state)
{
	(void)state;
	assert_refused("[pgbouncer]\nno equals here\n", "t.ini:2: expected key = value");
	assert_refused("listen_port = 1\n", "t.ini:1: key 'listen_port' before any [section]");
	assert_refused("[pgbouncer\n", "t.ini:1: bad section header");
	assert_refused("[databases]\n\"my db\" = host=h\n", "t.ini:2: expected key = value");
	assert_refused("[pgbouncer]\n%define x\n", "t.ini:2: unknown directive (only %include)");
}

static void test_include_of_missing_file_names_it(void **state)
{
	struct pgbini ini;
	char err[512] = "";
	(void)state;

	assert_true(parse(&ini, "[pgbouncer]\n%include /nonexistent/x.ini\n", err, sizeof(err)) <
	            0);
	assert_string_equal(err, "/nonexistent/x.ini: No such file or directory");
	pgbini_free(&ini);
}

static void test_connstr_pairs_quotes_and_escapes(void **state)
{
	struct pgbini_pair p[8];
	size_t n;
	char err[128] = "";
	(void)state;

	assert_int_equal(pgbini_connstr("host=db1  Port = 5432 datestyle='SQL, DMY' "
	                                "password='it\\'s'",
	                                p, 8, &n, err, sizeof(err)),
	                 0);
	assert_int_equal(n, 4);
	assert_string_equal(p[0].key, "host");
	assert_string_equal(p[0].val, "db1");
	assert_string_equal(p[1].key, "port");
	assert_string_equal(p[1].val, "5432");
	assert_string_equal(p[2].val, "SQL, DMY");
	assert_string_equal(p[3].val, "it's");
	assert_int_equal(pgbini_connstr("", p, 8, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_true(pgbini_connstr("host", p, 8, &n, err, sizeof(err)) < 0);
	assert_true(pgbini_connstr("dbname='x", p, 8, &n, err, sizeof(err)) < 0);
	assert_string_equal(err, "unterminated quote in dbname");
	assert_true(pgbini_connstr("a=1 b=2 c=3", p, 2, &n, err, sizeof(err)) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sections_keys_and_comment_lines),
	    cmocka_unit_test(test_value_runs_to_end_of_line_with_quotes),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_include_of_missing_file_names_it),
	    cmocka_unit_test(test_connstr_pairs_quotes_and_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
