/*
 * Unit tests for dataplane/auth/identmap: pg_ident.conf syntax (comments,
 * quotes, errors naming file:line), literal and regex lines with \1, and the
 * no-map rule (the certificate name must equal the login user).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/auth/identmap.h"

static struct identmap *parse_ok(const char *text)
{
	struct identmap *m = NULL;
	char err[256] = "";
	int rc = identmap_parse(text, "ident.conf", &m, err, sizeof(err));
	if (rc != 0)
		fail_msg("unexpected parse error: %s", err);
	assert_non_null(m);
	return m;
}

static void expect_error(const char *text, const char *want)
{
	struct identmap *m = (struct identmap *)1;
	char err[256] = "";
	assert_int_equal(identmap_parse(text, "ident.conf", &m, err, sizeof(err)), -EINVAL);
	assert_null(m);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_without_map_cn_must_equal_login_user(void **state)
{
	(void)state;
	assert_true(identmap_match(NULL, NULL, "alice", "alice"));
	assert_false(identmap_match(NULL, NULL, "alice", "bob"));
	assert_false(identmap_match(NULL, "", "Alice", "alice")); /* case-sensitive */
	assert_false(identmap_match(NULL, NULL, "", ""));         /* no CN never matches */
}

static void test_literal_line_maps_one_name(void **state)
{
	struct identmap *m = parse_ok("# comment\n\ncerts  alice.example.com   alice\n"
	                              "certs bob bob_db # trailing comment\n");
	(void)state;
	assert_int_equal(identmap_count(m), 2);
	assert_true(identmap_match(m, "certs", "alice.example.com", "alice"));
	assert_true(identmap_match(m, "certs", "bob", "bob_db"));
	assert_false(identmap_match(m, "certs", "bob", "bob"));     /* map given: no identity */
	assert_false(identmap_match(m, "certs", "alice", "alice")); /* CN not mapped */
	assert_false(identmap_match(m, "other", "bob", "bob_db"));  /* other map name */
	identmap_free(m);
}

static void test_regex_with_backreference_maps_captured_part(void **state)
{
	struct identmap *m = parse_ok("certs /^(.*)@example\\.com$ \\1\n"
	                              "certs \"/^admin-[0-9]+$\" dba\n");
	(void)state;
	assert_true(identmap_match(m, "certs", "carol@example.com", "carol"));
	assert_false(identmap_match(m, "certs", "carol@example.org", "carol"));
	assert_false(identmap_match(m, "certs", "carol@example.com", "carol@example.com"));
	assert_false(identmap_match(m, "certs", "carol@example.com", "caro"));
	assert_false(identmap_match(m, "certs", "carol@example.com", "carolx"));
	assert_true(identmap_match(m, "certs", "admin-42", "dba"));
	assert_false(identmap_match(m, "certs", "admin-x", "dba"));
	identmap_free(m);
}

static void test_backreference_inside_pg_name(void **state)
{
	struct identmap *m = parse_ok("m /^([a-z]+)\\.ops$ \"ops_\\1_rw\"\n");
	(void)state;
	assert_true(identmap_match(m, "m", "dave.ops", "ops_dave_rw"));
	assert_false(identmap_match(m, "m", "dave.ops", "ops_dave"));
	assert_false(identmap_match(m, "m", "Dave.ops", "ops_Dave_rw")); /* [a-z] only */
	identmap_free(m);
}

static void test_regex_is_unanchored_like_postgresql(void **state)
{
	/* PostgreSQL's regexes are not anchored: "/bob" matches "xbobx". */
	struct identmap *m = parse_ok("m /bob robert\n");
	(void)state;
	assert_true(identmap_match(m, "m", "xbobx", "robert"));
	assert_false(identmap_match(m, "m", "bo", "robert"));
	identmap_free(m);
}

static void test_quoted_names_keep_spaces_and_quotes(void **state)
{
	struct identmap *m = parse_ok("\"my map\" \"Alice \"\"A\"\" Smith\" alice\n");
	(void)state;
	assert_true(identmap_match(m, "my map", "Alice \"A\" Smith", "alice"));
	identmap_free(m);
}

static void test_errors_name_file_and_line(void **state)
{
	(void)state;
	expect_error("a b c\nmap only_two\n", "ident.conf:2: missing fields");
	expect_error("\n\na b c d\n", "ident.conf:3: more than three fields");
	expect_error("m /(unclosed x\n", "ident.conf:1: invalid regular expression");
	expect_error("m /^abc$ \\1\n", "ident.conf:1: \"\\1\" uses \\1 but the regular");
	expect_error("m literal \\1\n", "is not a regular expression");
	expect_error("m \"unterminated x\n", "ident.conf:1: unterminated quoted name");
	expect_error("m / x\n", "empty regular expression");
}

static void test_load_reads_file_and_reports_missing_one(void **state)
{
	char path[] = "/tmp/test_identmap_XXXXXX";
	struct identmap *m = NULL;
	char err[256];
	int fd = mkstemp(path);
	(void)state;
	assert_true(fd >= 0);
	const char *txt = "certs /^(.*)$ \\1\n";
	assert_int_equal(write(fd, txt, strlen(txt)), (ssize_t)strlen(txt));
	close(fd);
	assert_int_equal(identmap_load(path, &m, err, sizeof(err)), 0);
	assert_true(identmap_match(m, "certs", "zed", "zed"));
	identmap_free(m);
	unlink(path);
	assert_int_equal(identmap_load(path, &m, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_without_map_cn_must_equal_login_user),
	    cmocka_unit_test(test_literal_line_maps_one_name),
	    cmocka_unit_test(test_regex_with_backreference_maps_captured_part),
	    cmocka_unit_test(test_backreference_inside_pg_name),
	    cmocka_unit_test(test_regex_is_unanchored_like_postgresql),
	    cmocka_unit_test(test_quoted_names_keep_spaces_and_quotes),
	    cmocka_unit_test(test_errors_name_file_and_line),
	    cmocka_unit_test(test_load_reads_file_and_reports_missing_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
