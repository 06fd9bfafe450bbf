/*
 * Unit tests for routing/caching hints in SQL comments
 * (dataplane/pipeline/engine/hints.c): the helios: syntax, what overrides what,
 * malformed hints and their reasons, and PostgreSQL's lexical rules that keep
 * comment-looking text in strings, identifiers and other comments from
 * counting. Every statement is scanned from an exact-size heap copy, so a
 * read past len is caught by ASan.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/pipeline/engine/hints.h"

#define UNUSED __attribute__((unused))

/* Scans sql[0..len) from a malloc of exactly len bytes (no NUL after it),
 * and checks hints_maybe agrees: never false when something was seen. */
static void scan_n(const char *sql, size_t len, struct hints *h)
{
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, sql, len);
	hints_scan(copy, len, h);
	if (h->found || h->ignored)
		assert_true(hints_maybe(copy, len));
	free(copy);
}

static void scan(const char *sql, struct hints *h)
{
	scan_n(sql, strlen(sql), h);
}

/* The statement has no hint and nothing to report. */
static void assert_nothing(const char *sql)
{
	struct hints h;
	scan(sql, &h);
	if (h.found || h.ignored)
		fail_msg("unexpected hint in: %s (ignored: %s)", sql, h.ignored ? h.ignored : "-");
	assert_int_equal(h.route, HINT_ROUTE_NONE);
	assert_false(h.cache_skip);
	assert_int_equal(h.n_extra, 0);
}

/* The statement routes to the primary. */
static void assert_primary(const char *sql)
{
	struct hints h;
	scan(sql, &h);
	if (!h.found || h.route != HINT_ROUTE_PRIMARY)
		fail_msg("no route=primary found in: %s", sql);
}

/* The statement's only helios: comment is ignored for reason why. */
static void assert_ignored(const char *sql, const char *why)
{
	struct hints h;
	scan(sql, &h);
	if (h.found)
		fail_msg("malformed hint applied: %s", sql);
	if (!h.ignored || strcmp(h.ignored, why) != 0)
		fail_msg("%s: reason %s, expected %s", sql, h.ignored ? h.ignored : "NULL", why);
	assert_int_equal(h.route, HINT_ROUTE_NONE);
	assert_false(h.cache_skip);
	assert_int_equal(h.n_extra, 0);
}

/* ---- route and cache values ---- */

static void test_route_primary(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:route=primary */ SELECT 1", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	assert_string_equal(h.node, "");
	assert_false(h.cache_skip);
	assert_int_equal(h.n_extra, 0);
	assert_null(h.ignored);
}

static void test_route_standby_and_replica_both_mean_any_replica(void **state UNUSED)
{
	struct hints h;
	scan("SELECT 1 /* helios:route=standby */", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
	scan("SELECT 1 /* helios:route=replica */", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
	assert_string_equal(h.node, "");
}

static void test_route_other_token_is_a_node_name_with_case_kept(void **state UNUSED)
{
	struct hints h;
	scan("SELECT 1 /* helios:route=Node-2.east_1 */", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_NODE);
	assert_string_equal(h.node, "Node-2.east_1");
}

static void test_route_keywords_match_in_any_case(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:route=PRIMARY */", &h);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	scan("/* helios:route=Replica */", &h);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
	scan("/* helios:route=StandBy */", &h);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
}

static void test_hint_found_at_start_middle_and_end(void **state UNUSED)
{
	assert_primary("/* helios:route=primary */ SELECT a FROM t");
	assert_primary("SELECT a /* helios:route=primary */ FROM t WHERE b = 1");
	assert_primary("SELECT a FROM t WHERE b = 1 /* helios:route=primary */");
	assert_primary("SELECT a FROM t;/* helios:route=primary */");
	assert_primary("SELECT 1; /* helios:route=primary */ SELECT 2");
	/* many casts between the first comment and the hint: the search for
	 * "helios:" stops at each ':' before switching strategy */
	assert_primary("/* app */ SELECT a::int, b::int, c::int, d::int, e::int, f::text "
	               "/* helios:route=primary */ FROM t WHERE g::int = 1");
	assert_primary("/* app */ SELECT a::int, b::int, c::int, d::int, e::int, f::text "
	               "/* helios:route=node1 */ FROM t /* helios:route=primary */");
	assert_primary("SELECT 1/* helios:route=primary */+2");
	assert_primary("/*helios:route=primary*/");
	assert_primary("/*helios:route=n1*//*helios:route=primary*/");
	assert_primary("/*helios:x=1*/'/*helios:x=2*/'/*helios:route=primary*/");
}

static void test_whitespace_and_key_case_variants_parse(void **state UNUSED)
{
	static const char *const ok[] = {
	    "/*helios:route=primary*/",
	    "/* helios:route=primary */",
	    "/*helios: route = primary */",
	    "/*\n\thelios:\n route\t=\r\nprimary\f*/",
	    "/* helios:ROUTE=primary */",
	    "/* helios:Route = primary , cache = skip */",
	    "/* helios:  route=primary  ,cache=skip,  x=1  */",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_primary(ok[i]);
}

static void test_prefix_must_be_lower_case_helios_colon(void **state UNUSED)
{
	/* not hints at all, so there is nothing to report either */
	assert_nothing("/* HELIOS:route=primary */ SELECT 1");
	assert_nothing("/* helios route=primary */ SELECT 1");
	assert_nothing("/* helios :route=primary */ SELECT 1");
	assert_nothing("/* xhelios:route=primary */ SELECT 1");
	assert_nothing("/* note helios:route=primary */ SELECT 1");
	assert_nothing("/* route=primary */ SELECT 1");
	assert_nothing("SELECT 'helios:route=primary' /* x */");
}

static void test_cache_ttl_sets_seconds_and_bad_values_are_dropped(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:cache=ttl:30 */ SELECT 1", &h);
	assert_true(h.found);
	assert_int_equal(h.cache_ttl, 30);
	assert_false(h.cache_skip);
	assert_null(h.ignored);

	scan("/* helios:cache=TTL:86400, route=primary */ SELECT 1", &h);
	assert_int_equal(h.cache_ttl, 86400);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);

	const char *bad[] = {"/* helios:cache=ttl:0 */", "/* helios:cache=ttl:86401 */",
	                     "/* helios:cache=ttl: */", "/* helios:cache=ttl:1x */",
	                     "/* helios:cache=ttl:99999999999 */"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		scan(bad[i], &h);
		assert_true(h.found);
		assert_int_equal(h.cache_ttl, 0);
		assert_string_equal(h.ignored, "unknown cache value");
	}
}

static void test_cache_skip_alone_and_with_route(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:cache=skip */ SELECT 1", &h);
	assert_true(h.found);
	assert_true(h.cache_skip);
	assert_int_equal(h.route, HINT_ROUTE_NONE);

	scan("SELECT 1 /* helios:route=replica,cache=SKIP */", &h);
	assert_true(h.found);
	assert_true(h.cache_skip);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);

	scan("/* helios:route=node2,cache=skip */ SELECT 1", &h);
	assert_int_equal(h.route, HINT_ROUTE_NODE);
	assert_string_equal(h.node, "node2");
	assert_true(h.cache_skip);
}

static void test_unknown_cache_value_is_dropped_with_a_reason_rest_applies(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:cache=forever, route=primary */ SELECT 1", &h);
	assert_true(h.found);
	assert_false(h.cache_skip);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	assert_string_equal(h.ignored, "unknown cache value");
}

static void test_unknown_keys_kept_lower_cased_in_order(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:Timeout=5s, route=primary, Tag=Batch-1.x */ SELECT 1", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	assert_int_equal(h.n_extra, 2);
	assert_string_equal(h.extra[0].key, "timeout");
	assert_string_equal(h.extra[0].value, "5s");
	assert_string_equal(h.extra[1].key, "tag");
	assert_string_equal(h.extra[1].value, "Batch-1.x");
	assert_null(h.ignored);
}

/* scripts/fuzz.sh stopped on this (saved by fuzz_hints, control bytes left
 * out): "helios::=::" made an unknown key ":" because keys took the ':' that
 * only cache=ttl:N values need; a key is [A-Za-z0-9_.-]+. */
static void test_colon_in_a_key_makes_the_comment_malformed(void **state UNUSED)
{
	struct hints h;
	assert_ignored("/*helios::=::*/ SELECT 1", "bad character");
	assert_ignored("/* helios: route:x=replica */ SELECT 1", "bad character");
	assert_ignored("/* helios: cache:=skip */ SELECT 1", "bad character");
	scan("/*z*/4$*hel/*z..*heli/(.z**//$h.ios::*//*%z*//*helios::=::*//*", &h);
	assert_false(h.found);
	assert_int_equal(h.n_extra, 0);
	/* values keep their colons */
	scan("/* helios: tag=a:b, cache=ttl:5 */ SELECT 1", &h);
	assert_true(h.found);
	assert_int_equal(h.n_extra, 1);
	assert_string_equal(h.extra[0].key, "tag");
	assert_string_equal(h.extra[0].value, "a:b");
	assert_int_equal(h.cache_ttl, 5);
}

static void test_repeated_unknown_key_overrides_its_slot(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:a=1,b=2 */ SELECT /* helios:A=3 */ 1", &h);
	assert_int_equal(h.n_extra, 2);
	assert_string_equal(h.extra[0].key, "a");
	assert_string_equal(h.extra[0].value, "3");
	assert_string_equal(h.extra[1].value, "2");
}

static void test_eight_unknown_keys_kept_ninth_makes_comment_malformed(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:k1=1,k2=2,k3=3,k4=4,k5=5,k6=6,k7=7,k8=8 */ SELECT 1", &h);
	assert_true(h.found);
	assert_int_equal(h.n_extra, HINT_EXTRA_MAX);
	assert_string_equal(h.extra[7].key, "k8");

	/* the ninth, in a later comment: that comment applies nothing */
	scan("/* helios:k1=1,k2=2,k3=3,k4=4,k5=5,k6=6,k7=7,k8=8 */ "
	     "SELECT /* helios:route=primary, k9=9 */ 1",
	     &h);
	assert_true(h.found);
	assert_int_equal(h.n_extra, HINT_EXTRA_MAX);
	assert_int_equal(h.route, HINT_ROUTE_NONE);
	assert_string_equal(h.ignored, "too many unknown keys");

	assert_ignored("/* helios:k1=1,k2=2,k3=3,k4=4,k5=5,k6=6,k7=7,k8=8,k9=9 */",
	               "too many unknown keys");
}

static void test_later_pairs_override_earlier_ones(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:route=primary, route=replica */", &h);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);

	scan("/* helios:route=node7 */ SELECT 1 /* helios:route=primary */", &h);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	assert_string_equal(h.node, "");

	scan("/* helios:route=primary */ SELECT 1 /* helios:route=node7 */", &h);
	assert_int_equal(h.route, HINT_ROUTE_NODE);
	assert_string_equal(h.node, "node7");

	/* pairs for other keys survive an override */
	scan("/* helios:cache=skip,route=primary */ SELECT /* helios:route=standby */ 1", &h);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
	assert_true(h.cache_skip);
}

static void test_malformed_comment_applies_none_of_its_pairs(void **state UNUSED)
{
	struct hints h;
	scan("/* helios:route=primary */ SELECT /* helios:route=replica, cache=skip, x */ 1", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);
	assert_false(h.cache_skip);
	assert_string_equal(h.ignored, "missing '='");

	/* a later good comment still applies; the reason stays for the log */
	scan("/* helios:route=? */ SELECT /* helios:route=replica */ 1", &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_REPLICA);
	assert_string_equal(h.ignored, "bad character");
}

/* ---- malformed hints ---- */

static void test_malformed_hints_ignored_with_a_reason(void **state UNUSED)
{
	static const struct {
		const char *sql, *why;
	} cases[] = {
	    {"/* helios: */ SELECT 1", "no key=value pairs"},
	    {"/* helios:*/ SELECT 1", "no key=value pairs"},
	    {"/* helios:route */ SELECT 1", "missing '='"},
	    {"/* helios:route primary */ SELECT 1", "missing '='"},
	    {"/* helios:route, cache=skip */ SELECT 1", "missing '='"},
	    {"/* helios:route= */ SELECT 1", "empty value"},
	    {"/* helios:route=,cache=skip */ SELECT 1", "empty value"},
	    {"/* helios:=primary */ SELECT 1", "empty key"},
	    {"/* helios:route=primary, */ SELECT 1", "empty pair"},
	    {"/* helios:route=primary,,cache=skip */ SELECT 1", "empty pair"},
	    {"/* helios:,route=primary */ SELECT 1", "empty pair"},
	    {"/* helios:route=primary replica */ SELECT 1", "missing ','"},
	    {"/* helios:route=primary; */ SELECT 1", "bad character"},
	    {"/* helios:route='primary' */ SELECT 1", "bad character"},
	    {"/* helios:route=pri mary */ SELECT 1", "missing ','"},
	    {"/* helios:route=nöde */ SELECT 1", "bad character"},
	    {"/* helios:ro*ute=primary */ SELECT 1", "bad character"},
	    {"/* helios:route==primary */ SELECT 1", "bad character"},
	    {"/* helios:route=primary=x */ SELECT 1", "bad character"},
	    {"/* helios:route=primary /* x */ */ SELECT 1", "nested comment"},
	    {"/* helios:route=primary /**/ */ SELECT 1", "nested comment"},
	    {"SELECT 1 /* helios:route=primary", "unterminated comment"},
	    {"SELECT 1 /* helios:route=primary *", "unterminated comment"},
	    {"SELECT 1 /* helios:route=primary /* */", "unterminated comment"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_ignored(cases[i].sql, cases[i].why);
}

static void test_value_and_key_length_limits(void **state UNUSED)
{
	char sql[256], name[HINT_NAME_MAX + 1];
	struct hints h;

	memset(name, 'n', HINT_NAME_MAX - 1);
	name[HINT_NAME_MAX - 1] = '\0';
	snprintf(sql, sizeof(sql), "/* helios:route=%s */", name);
	scan(sql, &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_NODE);
	assert_string_equal(h.node, name);

	memset(name, 'n', HINT_NAME_MAX);
	name[HINT_NAME_MAX] = '\0';
	snprintf(sql, sizeof(sql), "/* helios:route=%s */", name);
	assert_ignored(sql, "value too long");

	memset(name, 'k', HINT_KEY_MAX - 1);
	name[HINT_KEY_MAX - 1] = '\0';
	snprintf(sql, sizeof(sql), "/* helios:%s=v */", name);
	scan(sql, &h);
	assert_true(h.found);
	assert_int_equal(h.n_extra, 1);
	assert_string_equal(h.extra[0].key, name);

	memset(name, 'k', HINT_KEY_MAX);
	name[HINT_KEY_MAX] = '\0';
	snprintf(sql, sizeof(sql), "/* helios:%s=v */", name);
	assert_ignored(sql, "key too long");
}

/* ---- PostgreSQL lexical rules ---- */

static void test_no_hint_inside_standard_strings(void **state UNUSED)
{
	assert_nothing("SELECT '/* helios:route=primary */'");
	assert_nothing("SELECT 'it''s /* helios:route=primary */'");
	assert_nothing("SELECT '''/* helios:route=primary */'''");
	assert_nothing("SELECT B'1', X'/* helios:route=primary */'");
	assert_nothing("SELECT N'/* helios:route=primary */'");
	/* a string ends where it ends, then the hint counts */
	assert_primary("SELECT 'a''b' /* helios:route=primary */");
	assert_primary("SELECT '' /* helios:route=primary */ ''");
}

static void test_backslash_does_not_escape_in_standard_strings(void **state UNUSED)
{
	/* standard_conforming_strings: 'a\' is a whole literal */
	assert_primary("SELECT 'a\\' /* helios:route=primary */");
	assert_primary("SELECT U&'\\' /* helios:route=primary */");
}

static void test_no_hint_inside_escape_strings(void **state UNUSED)
{
	assert_nothing("SELECT E'it\\'s /* helios:route=primary */'");
	assert_nothing("SELECT e'\\' /* helios:route=primary */'");
	assert_nothing("SELECT E'a''b /* helios:route=primary */'");
	assert_nothing("SELECT E'a''\\' /* helios:route=primary */'");
	assert_nothing("SELECT (E'\\\\\\' /* helios:route=primary */')");
	/* \\ is one backslash, so the quote after it closes */
	assert_primary("SELECT E'\\\\' /* helios:route=primary */");
	assert_primary("SELECT E'\\'' /* helios:route=primary */");
}

static void test_escape_string_continues_across_a_newline(void **state UNUSED)
{
	/* scan.l: 'a' newline 'b' is one literal, still in E mode */
	assert_nothing("SELECT E'a'\n'\\' /* helios:route=primary */'");
	assert_nothing("SELECT E'a' -- note\n  \r\n'\\' /* helios:route=primary */'");
	assert_nothing("SELECT E'a'\n-- x\n'\\' /* helios:route=primary */'");
	/* without a newline the next quote starts a standard literal */
	assert_primary("SELECT E'a' '\\' /* helios:route=primary */");
}

static void test_e_inside_an_identifier_is_not_an_escape_prefix(void **state UNUSED)
{
	/* "somee" then a standard literal: the backslash escapes nothing */
	assert_primary("SELECT somee'\\' /* helios:route=primary */");
	assert_primary("SELECT _e'\\' /* helios:route=primary */");
}

static void test_no_hint_inside_dollar_quotes(void **state UNUSED)
{
	assert_nothing("SELECT $$/* helios:route=primary */$$");
	assert_nothing("SELECT $fn$ x /* helios:route=primary */ $fn$");
	assert_nothing("SELECT $_$ $$ /* helios:route=primary */ $_$");
	assert_nothing("SELECT $a$ $b$ /* helios:route=primary */ $b$ $a$");
	assert_nothing("SELECT $a$ $ab$ /* helios:route=primary */ $a$");
	assert_nothing("SELECT $a$ $A$ /* helios:route=primary */ $a$");
	assert_nothing("SELECT $é$ /* helios:route=primary */ $é$");
	assert_nothing("DO $body$ BEGIN RAISE '/* helios:route=primary */'; END $body$");
	assert_primary("SELECT $a$ x $a$ /* helios:route=primary */");
	assert_primary("SELECT $$ $$ /* helios:route=primary */ $$ $$");
	assert_primary("SELECT $a$x$a$$b$y$b$ /* helios:route=primary */");
}

static void test_parameter_does_not_start_a_dollar_quote(void **state UNUSED)
{
	assert_primary("SELECT $1 /* helios:route=primary */ , $1");
	assert_primary("SELECT $1$ /* helios:route=primary */ $1$");
	assert_primary("SELECT $12, $2 /* helios:route=primary */ $2");
}

static void test_dollar_that_is_not_a_delimiter_is_plain(void **state UNUSED)
{
	/* inside an identifier */
	assert_primary("SELECT a$b$ /* helios:route=primary */ $b$");
	/* $tag without a closing '$' */
	assert_primary("SELECT $abc /* helios:route=primary */ $abc");
	assert_primary("SELECT $ /* helios:route=primary */ $");
	/* a tag cannot hold '-', so "$a-b$" starts no quote */
	assert_primary("SELECT $a-b$ /* helios:route=primary */ $a-b$");
}

static void test_no_hint_inside_quoted_identifiers(void **state UNUSED)
{
	assert_nothing("SELECT 1 AS \"/* helios:route=primary */\"");
	assert_nothing("SELECT 1 AS \"a\"\" /* helios:route=primary */\"");
	assert_nothing("SELECT 1 AS U&\"/* helios:route=primary */\"");
	assert_primary("SELECT 1 AS \"a\"\"\" /* helios:route=primary */");
	assert_primary("SELECT 1 AS \"'\" /* helios:route=primary */ , '\"'");
}

static void test_no_hint_inside_line_comments(void **state UNUSED)
{
	assert_nothing("SELECT 1 -- /* helios:route=primary */");
	assert_nothing("-- /* helios:route=primary */\nSELECT 1");
	assert_nothing("SELECT 1 --/* helios:route=primary */\r");
	assert_primary("SELECT 1 -- x\n/* helios:route=primary */");
	assert_primary("SELECT 1 -- x\r/* helios:route=primary */");
	assert_primary("SELECT 1 - -1 /* helios:route=primary */");
	/* a -- inside a block comment does not hide its end */
	assert_primary("/* -- */ /* helios:route=primary */");
}

static void test_hint_must_be_a_top_level_comment(void **state UNUSED)
{
	assert_nothing("/* outer /* helios:route=primary */ */ SELECT 1");
	assert_nothing("/* a /* b /* helios:route=primary */ */ */ SELECT 1");
	assert_nothing("/* '*/ SELECT 1");
	/* comment brackets that look odd but follow scan.l left to right */
	assert_primary("/**/ /* helios:route=primary */");
	assert_primary("/* a **/ /* helios:route=primary */");
	assert_primary("/* a */*/* helios:route=primary */");
	assert_primary("/* outer /* inner */ */ /* helios:route=primary */");
	/* the '/' of an inner closer does not open another comment */
	assert_primary("/* a /* b */*/ /* helios:route=primary */");
	/* "/ *" after the opener's star is no new opener */
	assert_nothing("/*/ helios:route=primary */");
	/* the rest of the statement is still scanned after a nested hint */
	struct hints h;
	scan("/* helios:route=primary /* x */ */ SELECT /* helios:cache=skip */ 1", &h);
	assert_true(h.found);
	assert_true(h.cache_skip);
	assert_int_equal(h.route, HINT_ROUTE_NONE);
	assert_string_equal(h.ignored, "nested comment");
}

static void test_unterminated_quote_or_comment_hides_hints_and_does_not_crash(void **state UNUSED)
{
	assert_nothing("SELECT 'abc /* helios:route=primary */");
	assert_nothing("SELECT E'abc\\' /* helios:route=primary */");
	assert_nothing("SELECT E'abc\\");
	assert_nothing("SELECT $$ /* helios:route=primary */");
	assert_nothing("SELECT $a$ /* helios:route=primary */ $a");
	assert_nothing("SELECT \"abc /* helios:route=primary */");
	assert_nothing("SELECT /* a /* helios:route=primary */");
	assert_nothing("SELECT 1 -- /* helios:route=primary */");
	assert_ignored("/* helios:route=primary", "unterminated comment");
	/* an earlier hint stays; the statement will fail on the server anyway */
	assert_primary("/* helios:route=primary */ SELECT 'abc");
}

static void test_empty_and_tiny_inputs(void **state UNUSED)
{
	struct hints h;
	hints_scan(NULL, 0, &h);
	assert_false(h.found);
	assert_null(h.ignored);
	assert_false(hints_maybe(NULL, 0));
	static const char *const tiny[] = {"",          "/",          "/*",        "*/", "$",
	                                   "$$",        "'",          "E'",        "--", "/*helios",
	                                   "/*helios:", "/* helios:", "/*helios:*"};
	for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
		scan(tiny[i], &h);
		assert_false(h.found);
	}
	assert_ignored("/*helios:*/", "no key=value pairs");
	assert_primary("/*helios:route=primary*/");
}

/* ---- buffers that do not end in NUL ---- */

static void test_text_is_read_only_up_to_len(void **state UNUSED)
{
	/* slices of larger strings: what follows len must not matter */
	const char *s = "SELECT 1 /* helios:route=primary */ trailing";
	const char *close = strstr(s, "*/");
	struct hints h;

	hints_scan(s, (size_t)(close - s), &h); /* ends right before the closer */
	assert_false(h.found);
	assert_string_equal(h.ignored, "unterminated comment");
	hints_scan(s, (size_t)(close - s) + 1, &h); /* ends between '*' and '/' */
	assert_false(h.found);
	assert_string_equal(h.ignored, "unterminated comment");
	hints_scan(s, (size_t)(close - s) + 2, &h);
	assert_true(h.found);
	assert_int_equal(h.route, HINT_ROUTE_PRIMARY);

	/* a quote past len does not close the string */
	const char *q = "SELECT 'x /* helios:route=primary */'";
	hints_scan(q, strlen(q) - 1, &h);
	assert_false(h.found);
	assert_null(h.ignored);

	/* nor does a dollar delimiter completed past len */
	const char *d = "SELECT $a$ x $a$ /* helios:route=primary */";
	const char *dclose = strstr(d, "x $a$") + 4;
	hints_scan(d, (size_t)(dclose - d), &h);
	assert_false(h.found);
	hints_scan(d, strlen(d), &h);
	assert_true(h.found);
}

/* Statements used by the all-prefixes and hints_maybe checks. */
static const char *const corpus[] = {
    "/* helios:route=primary */ SELECT 1",
    "SELECT a /* helios: route = replica, cache=skip */ FROM t",
    "SELECT 1 /* helios:route=node2,cache=skip,x=1 */",
    "SELECT 'it''s /* helios:route=primary */' /* helios:route=standby */",
    "SELECT E'\\' /* helios:route=primary */' , $1, $$ /* helios:x=1 */ $$ /*helios:cache=skip*/",
    "SELECT E'a'\n -- c\n'\\'' /* helios:route=node3 */",
    "SELECT \"a\"\" /* helios:x=1 */\" -- /* helios:y=1 */\n/* helios:z=1 */",
    "SELECT $a$ $b$ $a$ /* outer /* helios:route=primary */ */ /* helios:route=replica */",
    "/* helios:route=primary /* nested */ */ SELECT /* helios:route= */ 1",
    "SELECT a$b$ /* helios:route=n1 */ $b$, $1$ /* helios:route=n2 */ $1$",
    "SELECT 1 /* helios:route=primary",
    "/* helios:k1=1,k2=2,k3=3,k4=4,k5=5,k6=6,k7=7,k8=8 */ /* helios:k9=9 */",
    "SELECT /**/ 1 /*/ x */ /* a */*/* helios:route=replica */",
    "/* a */ SELECT a::int, b::int, c::int, d::int, e::int /* helios:route=n1 */ /*helios:x=1*/",
};

static void test_every_prefix_from_an_exact_size_heap_buffer(void **state UNUSED)
{
	/* ASan catches any read past len, wherever the text is cut */
	for (size_t c = 0; c < sizeof(corpus) / sizeof(corpus[0]); c++) {
		size_t len = strlen(corpus[c]);
		for (size_t n = 0; n <= len; n++) {
			struct hints h;
			scan_n(corpus[c], n, &h);
			assert_true(h.n_extra <= HINT_EXTRA_MAX);
		}
	}
}

static void test_maybe_never_false_when_scan_finds_a_hint(void **state UNUSED)
{
	unsigned seen = 0;
	for (size_t c = 0; c < sizeof(corpus) / sizeof(corpus[0]); c++) {
		struct hints h;
		hints_scan(corpus[c], strlen(corpus[c]), &h);
		if (h.found || h.ignored) {
			seen++;
			assert_true(hints_maybe(corpus[c], strlen(corpus[c])));
		}
	}
	assert_int_equal(seen, sizeof(corpus) / sizeof(corpus[0]));
}

static void test_maybe_false_without_a_comment_before_the_prefix(void **state UNUSED)
{
	static const char *const no[] = {
	    "SELECT 1", "SELECT a / b FROM t",   "SELECT 'helios:route=primary' /* x */",
	    "/* x */",  "SELECT x::int /* y */",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(hints_maybe(no[i], strlen(no[i])));
	/* it does not lex: a false alarm is allowed */
	assert_true(hints_maybe("SELECT '/*', 'helios:'", 22));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route_primary),
	    cmocka_unit_test(test_route_standby_and_replica_both_mean_any_replica),
	    cmocka_unit_test(test_route_other_token_is_a_node_name_with_case_kept),
	    cmocka_unit_test(test_route_keywords_match_in_any_case),
	    cmocka_unit_test(test_hint_found_at_start_middle_and_end),
	    cmocka_unit_test(test_whitespace_and_key_case_variants_parse),
	    cmocka_unit_test(test_prefix_must_be_lower_case_helios_colon),
	    cmocka_unit_test(test_cache_skip_alone_and_with_route),
	    cmocka_unit_test(test_cache_ttl_sets_seconds_and_bad_values_are_dropped),
	    cmocka_unit_test(test_unknown_cache_value_is_dropped_with_a_reason_rest_applies),
	    cmocka_unit_test(test_unknown_keys_kept_lower_cased_in_order),
	    cmocka_unit_test(test_colon_in_a_key_makes_the_comment_malformed),
	    cmocka_unit_test(test_repeated_unknown_key_overrides_its_slot),
	    cmocka_unit_test(test_eight_unknown_keys_kept_ninth_makes_comment_malformed),
	    cmocka_unit_test(test_later_pairs_override_earlier_ones),
	    cmocka_unit_test(test_malformed_comment_applies_none_of_its_pairs),
	    cmocka_unit_test(test_malformed_hints_ignored_with_a_reason),
	    cmocka_unit_test(test_value_and_key_length_limits),
	    cmocka_unit_test(test_no_hint_inside_standard_strings),
	    cmocka_unit_test(test_backslash_does_not_escape_in_standard_strings),
	    cmocka_unit_test(test_no_hint_inside_escape_strings),
	    cmocka_unit_test(test_escape_string_continues_across_a_newline),
	    cmocka_unit_test(test_e_inside_an_identifier_is_not_an_escape_prefix),
	    cmocka_unit_test(test_no_hint_inside_dollar_quotes),
	    cmocka_unit_test(test_parameter_does_not_start_a_dollar_quote),
	    cmocka_unit_test(test_dollar_that_is_not_a_delimiter_is_plain),
	    cmocka_unit_test(test_no_hint_inside_quoted_identifiers),
	    cmocka_unit_test(test_no_hint_inside_line_comments),
	    cmocka_unit_test(test_hint_must_be_a_top_level_comment),
	    cmocka_unit_test(test_unterminated_quote_or_comment_hides_hints_and_does_not_crash),
	    cmocka_unit_test(test_empty_and_tiny_inputs),
	    cmocka_unit_test(test_text_is_read_only_up_to_len),
	    cmocka_unit_test(test_every_prefix_from_an_exact_size_heap_buffer),
	    cmocka_unit_test(test_maybe_never_false_when_scan_finds_a_hint),
	    cmocka_unit_test(test_maybe_false_without_a_comment_before_the_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
