/*
 * Unit tests for the session setting sets of transaction pooling
 * (dataplane/conn/guc.c): the name -> value set, the split of a client's
 * startup parameters and "options" string, and the SQL that brings a
 * server's settings to what the client wants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/conn/guc.h"

#define UNUSED __attribute__((unused))

/* Asserts that name is in g with value and is_stmt. */
static void assert_ent(const struct guc_set *g, const char *name, const char *value, bool is_stmt)
{
	const struct guc_ent *e = guc_get(g, name);
	if (!e)
		fail_msg("setting %s is missing", name);
	assert_string_equal(e->value, value);
	assert_int_equal(e->is_stmt, is_stmt);
}

/* Asserts guc_diff_sql(want, have) is exactly sql. */
static void assert_diff(const struct guc_set *want, const struct guc_set *have, const char *sql)
{
	char *got = guc_diff_sql(want, have);
	assert_non_null(got);
	assert_string_equal(got, sql);
	free(got);
}

/* ---- the set ---- */

static void test_put_get_del_ignore_the_case_of_names(void **state UNUSED)
{
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_put(&g, "Work_Mem", "4MB", false), 0);
	/* stored lower case, as the header promises and RESET relies on */
	assert_string_equal(g.e[0].name, "work_mem");
	assert_ent(&g, "work_mem", "4MB", false);
	assert_ent(&g, "WORK_MEM", "4MB", false);
	assert_ent(&g, "wOrK_mEm", "4MB", false);
	assert_null(guc_get(&g, "work_me"));
	assert_null(guc_get(&g, "work_mem2"));

	guc_del(&g, "WoRk_MeM");
	assert_int_equal(g.n, 0);
	assert_null(guc_get(&g, "work_mem"));
	guc_free(&g);
}

static void test_put_of_an_existing_name_replaces_its_only_entry(void **state UNUSED)
{
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_put(&g, "work_mem", "4MB", false), 0);
	assert_int_equal(guc_put(&g, "search_path", "a", false), 0);
	assert_int_equal(guc_put(&g, "WORK_MEM", "SET work_mem = '8MB'", true), 0);
	assert_int_equal(g.n, 2);
	assert_ent(&g, "work_mem", "SET work_mem = '8MB'", true);
	assert_ent(&g, "search_path", "a", false);
	/* and back to a raw value */
	assert_int_equal(guc_put(&g, "work_mem", "16MB", false), 0);
	assert_int_equal(g.n, 2);
	assert_ent(&g, "work_mem", "16MB", false);
	guc_free(&g);
}

static void test_del_of_a_missing_name_changes_nothing(void **state UNUSED)
{
	struct guc_set g;
	guc_init(&g);
	guc_del(&g, "work_mem"); /* empty set */
	assert_int_equal(guc_put(&g, "a.x", "1", false), 0);
	assert_int_equal(guc_put(&g, "a.y", "2", false), 0);
	assert_int_equal(guc_put(&g, "a.z", "3", false), 0);
	guc_del(&g, "a.w");
	assert_int_equal(g.n, 3);
	/* deleting from the middle keeps the others reachable */
	guc_del(&g, "a.x");
	assert_int_equal(g.n, 2);
	assert_null(guc_get(&g, "a.x"));
	assert_ent(&g, "a.y", "2", false);
	assert_ent(&g, "a.z", "3", false);
	guc_free(&g);
	assert_int_equal(g.n, 0);
}

static void test_del_finds_a_name_longer_than_any_fixed_buffer(void **state UNUSED)
{
	char name[300];
	memset(name, 'x', sizeof(name) - 1);
	memcpy(name, "myapp.", 6);
	name[sizeof(name) - 1] = 0;
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_put(&g, name, "1", false), 0);
	name[7] = 'X';
	assert_ent(&g, name, "1", false);
	guc_del(&g, name);
	assert_int_equal(g.n, 0);
	guc_free(&g);
}

static void test_put_past_guc_max_fails_with_enospc(void **state UNUSED)
{
	struct guc_set g;
	char name[32];
	guc_init(&g);
	for (int i = 0; i < GUC_MAX; i++) {
		snprintf(name, sizeof(name), "myapp.s%d", i);
		assert_int_equal(guc_put(&g, name, "v", false), 0);
	}
	assert_int_equal(g.n, GUC_MAX);
	assert_int_equal(guc_put(&g, "myapp.one_too_many", "v", false), -ENOSPC);
	assert_int_equal(g.n, GUC_MAX);
	assert_null(guc_get(&g, "myapp.one_too_many"));
	/* a full set still takes a new value for a name it holds */
	assert_int_equal(guc_put(&g, "MYAPP.S7", "w", true), 0);
	assert_int_equal(g.n, GUC_MAX);
	assert_ent(&g, "myapp.s7", "w", true);
	/* and room again after a delete */
	guc_del(&g, "myapp.s0");
	assert_int_equal(guc_put(&g, "myapp.one_too_many", "v", false), 0);
	assert_int_equal(g.n, GUC_MAX);
	guc_free(&g);
}

static void test_equal_compares_names_values_and_kind_not_order(void **state UNUSED)
{
	struct guc_set a, b;
	guc_init(&a);
	guc_init(&b);
	assert_true(guc_equal(&a, &b)); /* both empty */

	assert_int_equal(guc_put(&a, "work_mem", "4MB", false), 0);
	assert_int_equal(guc_put(&a, "search_path", "SET search_path TO x", true), 0);
	assert_int_equal(guc_put(&b, "SEARCH_PATH", "SET search_path TO x", true), 0);
	assert_int_equal(guc_put(&b, "work_mem", "4MB", false), 0);
	assert_true(guc_equal(&a, &b));
	assert_true(guc_equal(&b, &a));

	/* another value */
	assert_int_equal(guc_put(&b, "work_mem", "8MB", false), 0);
	assert_false(guc_equal(&a, &b));
	assert_false(guc_equal(&b, &a));
	assert_int_equal(guc_put(&b, "work_mem", "4MB", false), 0);
	assert_true(guc_equal(&a, &b));

	/* same text, but a SET statement rather than a raw value */
	assert_int_equal(guc_put(&b, "work_mem", "4MB", true), 0);
	assert_false(guc_equal(&a, &b));
	assert_int_equal(guc_put(&b, "work_mem", "4MB", false), 0);

	/* a name only one side has, either side */
	assert_int_equal(guc_put(&b, "myapp.tag", "t", false), 0);
	assert_false(guc_equal(&a, &b));
	assert_false(guc_equal(&b, &a));

	/* as many entries, but not the same names */
	assert_int_equal(guc_put(&a, "myapp.other", "t", false), 0);
	assert_false(guc_equal(&a, &b));
	assert_false(guc_equal(&b, &a));

	guc_free(&a);
	guc_free(&b);
}

static void test_copy_is_independent_of_its_source(void **state UNUSED)
{
	struct guc_set src, dst;
	guc_init(&src);
	guc_init(&dst);
	assert_int_equal(guc_put(&dst, "myapp.stale", "old", false), 0);
	assert_int_equal(guc_put(&src, "work_mem", "4MB", false), 0);
	assert_int_equal(guc_put(&src, "search_path", "SET search_path TO x", true), 0);

	assert_int_equal(guc_copy(&dst, &src), 0);
	assert_true(guc_equal(&dst, &src));
	assert_null(guc_get(&dst, "myapp.stale")); /* what dst held is gone */
	assert_ptr_not_equal(guc_get(&dst, "work_mem")->value, guc_get(&src, "work_mem")->value);

	/* changing or freeing the source leaves the copy as it was */
	assert_int_equal(guc_put(&src, "work_mem", "8MB", false), 0);
	guc_del(&src, "search_path");
	assert_ent(&dst, "work_mem", "4MB", false);
	assert_ent(&dst, "search_path", "SET search_path TO x", true);
	guc_free(&src);
	assert_int_equal(dst.n, 2);
	assert_ent(&dst, "work_mem", "4MB", false);

	/* and the other way round */
	assert_int_equal(guc_copy(&src, &dst), 0);
	assert_int_equal(guc_put(&dst, "work_mem", "1MB", false), 0);
	assert_ent(&src, "work_mem", "4MB", false);
	guc_free(&src);
	guc_free(&dst);
}

/* ---- startup parameters ---- */

/* The options string of the tests below, checked against PostgreSQL 15 by
 * hand: PGOPTIONS='-c statement_timeout=5 -cwork_mem=4MB --search-path=a,\ b'
 * gives statement_timeout 5ms, work_mem 4MB, search_path "a, b". */
static void test_from_startup_splits_options_and_skips_connection_keys(void **state UNUSED)
{
	const char *names[] = {"user",     "database",         "replication",
	                       "options",  "Application_Name", "myapp.tag",
	                       "DateStyle"};
	const char *values[] = {
	    "alice",   "shop",
	    "false",   "-c statement_timeout=5 -cwork_mem=4MB --search-path=a\\ b",
	    "billing", "blue",
	    "ISO, MDY"};
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_from_startup(&g, names, values, 7), 0);

	assert_null(guc_get(&g, "user"));
	assert_null(guc_get(&g, "database"));
	assert_null(guc_get(&g, "replication"));
	assert_null(guc_get(&g, "options"));
	assert_ent(&g, "statement_timeout", "5", false);
	assert_ent(&g, "work_mem", "4MB", false);
	/* the backslash keeps the space inside the value, as the postmaster's
	 * pg_split_opts does (PostgreSQL then rejects "a b" as a list) */
	assert_ent(&g, "search_path", "a b", false);
	assert_null(guc_get(&g, "search-path"));
	assert_ent(&g, "application_name", "billing", false);
	assert_ent(&g, "myapp.tag", "blue", false);
	assert_ent(&g, "datestyle", "ISO, MDY", false);
	assert_int_equal(g.n, 6);
	guc_free(&g);
}

static void test_options_dashes_become_underscores_in_the_name_only(void **state UNUSED)
{
	const char *names[] = {"options"};
	const char *values[] = {"--application-name=my-app --lock-timeout=1s"};
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_from_startup(&g, names, values, 1), 0);
	assert_ent(&g, "application_name", "my-app", false);
	assert_ent(&g, "lock_timeout", "1s", false);
	assert_int_equal(g.n, 2);
	guc_free(&g);
}

static void test_options_c_may_stand_apart_and_escape_any_char(void **state UNUSED)
{
	const char *names[] = {"options"};
	/* "-c" then its setting in the next word; runs of blanks; "\\" is one
	 * backslash; other postmaster switches and words without '=' ignored */
	const char *values[] = {"  -c   work_mem=64kB\t-B 10 -c myapp.p=x\\\\y\\ z  -c =bad "
	                        "--noeq -cmyapp.empty="};
	struct guc_set g;
	guc_init(&g);
	assert_int_equal(guc_from_startup(&g, names, values, 1), 0);
	assert_ent(&g, "work_mem", "64kB", false);
	assert_ent(&g, "myapp.p", "x\\y z", false);
	assert_ent(&g, "myapp.empty", "", false);
	assert_int_equal(g.n, 3);
	guc_free(&g);
}

static void test_from_startup_reports_a_full_set(void **state UNUSED)
{
	const char *names[] = {"options"};
	char opts[(GUC_MAX + 1) * 32] = "";
	size_t len = 0;
	struct guc_set g;
	guc_init(&g);
	for (int i = 0; i <= GUC_MAX; i++)
		len += (size_t)snprintf(opts + len, sizeof(opts) - len, "-c myapp.s%d=1 ", i);
	assert_true(len < sizeof(opts));
	const char *values[] = {opts};
	assert_int_equal(guc_from_startup(&g, names, values, 1), -ENOSPC);
	assert_int_equal(g.n, GUC_MAX);
	guc_free(&g);
}

/* ---- the SQL that brings a server to what the client wants ----
 *
 * Every expected string below was run by hand against PostgreSQL 15.18
 * (a throwaway cluster: initdb + pg_ctl as user heliospg in a temp dir,
 * psql -X) and had the intended effect:
 *  - the quote/backslash set_config made current_setting('application_name')
 *    equal 'it''s a\b' (8 characters) with standard_conforming_strings on
 *    and off alike;
 *  - the search_path set_config made current_schemas(false) = {a,b} with
 *    schemas a and b present, and current_setting() = 'a, b';
 *  - RESET "myapp.tag" after set_config(E'myapp.tag',E'v1',false) brought
 *    current_setting('myapp.tag') back to '' (a placeholder cannot be
 *    dropped; '' is its reset value), RESET "statement_timeout" back to 0;
 *  - RESET "myapp.it""s" was parsed as the one name myapp.it"s (which
 *    PostgreSQL then refuses as a name: no server can hold it).
 */

static void test_diff_of_equal_sets_is_empty(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	assert_diff(&want, &have, "");
	assert_int_equal(guc_put(&want, "work_mem", "4MB", false), 0);
	assert_int_equal(guc_put(&want, "search_path", "SET search_path TO x", true), 0);
	assert_int_equal(guc_copy(&have, &want), 0);
	assert_diff(&want, &have, "");
	guc_free(&want);
	guc_free(&have);
}

static void test_diff_escapes_quote_and_backslash_in_set_config(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	assert_int_equal(guc_put(&want, "application_name", "it's a\\b", false), 0);
	assert_diff(&want, &have,
	            "SELECT pg_catalog.set_config(E'application_name',E'it''s a\\\\b',false);");
	guc_free(&want);
	guc_free(&have);
}

static void test_diff_passes_a_list_value_whole_to_set_config(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	assert_int_equal(guc_put(&want, "search_path", "a, b", false), 0);
	assert_int_equal(guc_put(&have, "search_path", "a", false), 0);
	assert_diff(&want, &have, "SELECT pg_catalog.set_config(E'search_path',E'a, b',false);");
	guc_free(&want);
	guc_free(&have);
}

static void test_diff_replays_a_set_statement_verbatim(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	assert_int_equal(guc_put(&want, "search_path", "SET search_path TO b", true), 0);
	assert_diff(&want, &have, "SET search_path TO b;");
	/* a server holding the same text as a raw value still gets the SET */
	assert_int_equal(guc_put(&have, "search_path", "SET search_path TO b", false), 0);
	assert_diff(&want, &have, "SET search_path TO b;");
	guc_free(&want);
	guc_free(&have);
}

static void test_diff_resets_a_name_only_the_server_has(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	assert_int_equal(guc_put(&have, "myapp.tag", "v1", false), 0);
	assert_diff(&want, &have, "RESET \"myapp.tag\";");
	guc_free(&have);
	assert_int_equal(guc_put(&have, "myapp.it\"s", "v1", false), 0);
	assert_diff(&want, &have, "RESET \"myapp.it\"\"s\";");
	guc_free(&want);
	guc_free(&have);
}

static void test_diff_sets_changed_and_new_then_resets_dropped(void **state UNUSED)
{
	struct guc_set want, have;
	guc_init(&want);
	guc_init(&have);
	/* want: work_mem changed, search_path a new SET, datestyle the same */
	assert_int_equal(guc_put(&want, "work_mem", "8MB", false), 0);
	assert_int_equal(guc_put(&want, "search_path", "SET search_path TO b", true), 0);
	assert_int_equal(guc_put(&want, "datestyle", "ISO, MDY", false), 0);
	/* have: old work_mem, the same datestyle, two settings want lacks */
	assert_int_equal(guc_put(&have, "statement_timeout", "5", false), 0);
	assert_int_equal(guc_put(&have, "datestyle", "ISO, MDY", false), 0);
	assert_int_equal(guc_put(&have, "work_mem", "4MB", false), 0);
	assert_int_equal(guc_put(&have, "myapp.tag", "SET myapp.tag = 'x'", true), 0);
	assert_diff(&want, &have,
	            "SELECT pg_catalog.set_config(E'work_mem',E'8MB',false);"
	            "SET search_path TO b;"
	            "RESET \"statement_timeout\";"
	            "RESET \"myapp.tag\";");
	/* the other way round: undo all of it */
	assert_diff(&have, &want,
	            "SELECT pg_catalog.set_config(E'statement_timeout',E'5',false);"
	            "SELECT pg_catalog.set_config(E'work_mem',E'4MB',false);"
	            "SET myapp.tag = 'x';"
	            "RESET \"search_path\";");
	guc_free(&want);
	guc_free(&have);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_get_del_ignore_the_case_of_names),
	    cmocka_unit_test(test_put_of_an_existing_name_replaces_its_only_entry),
	    cmocka_unit_test(test_del_of_a_missing_name_changes_nothing),
	    cmocka_unit_test(test_del_finds_a_name_longer_than_any_fixed_buffer),
	    cmocka_unit_test(test_put_past_guc_max_fails_with_enospc),
	    cmocka_unit_test(test_equal_compares_names_values_and_kind_not_order),
	    cmocka_unit_test(test_copy_is_independent_of_its_source),
	    cmocka_unit_test(test_from_startup_splits_options_and_skips_connection_keys),
	    cmocka_unit_test(test_options_dashes_become_underscores_in_the_name_only),
	    cmocka_unit_test(test_options_c_may_stand_apart_and_escape_any_char),
	    cmocka_unit_test(test_from_startup_reports_a_full_set),
	    cmocka_unit_test(test_diff_of_equal_sets_is_empty),
	    cmocka_unit_test(test_diff_escapes_quote_and_backslash_in_set_config),
	    cmocka_unit_test(test_diff_passes_a_list_value_whole_to_set_config),
	    cmocka_unit_test(test_diff_replays_a_set_statement_verbatim),
	    cmocka_unit_test(test_diff_resets_a_name_only_the_server_has),
	    cmocka_unit_test(test_diff_sets_changed_and_new_then_resets_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
