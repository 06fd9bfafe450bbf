/*
 * Unit tests for the TOML reader (common/toml.c): values of every type,
 * tables and arrays of tables, source lines, error positions, and the
 * limits that protect against hostile input. Independent of toml-test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/toml.h"

/* Parses a NUL-terminated document that must be valid. */
static struct toml_value *parse_ok(const char *doc)
{
	struct toml_error err;
	struct toml_value *root = toml_parse(doc, strlen(doc), &err);

	if (!root)
		fail_msg("unexpected error at %d:%d: %s", err.line, err.col, err.msg);
	return root;
}

/* Parses a document that must be rejected; returns the error. */
static struct toml_error parse_bad_n(const char *doc, size_t len)
{
	struct toml_error err;
	struct toml_value *root = toml_parse(doc, len, &err);

	if (root) {
		toml_free(root);
		fail_msg("document was accepted: %.60s", doc);
	}
	assert_true(err.msg[0] != '\0');
	return err;
}

static struct toml_error parse_bad(const char *doc)
{
	return parse_bad_n(doc, strlen(doc));
}

static struct toml_value *get_path(struct toml_value *t, const char *a, const char *b)
{
	struct toml_value *v = toml_table_get(t, a);

	return b ? toml_table_get(v, b) : v;
}

static void test_toml_parses_every_scalar_type(void **state)
{
	struct toml_value *root = parse_ok("s = \"hi\"\n"
	                                   "i = 42\n"
	                                   "f = 3.5\n"
	                                   "b = true\n"
	                                   "odt = 1979-05-27T07:32:00Z\n"
	                                   "ldt = 1979-05-27T07:32:00.999999\n"
	                                   "ld = 1979-05-27\n"
	                                   "lt = 07:32:00\n");
	size_t len;

	assert_int_equal(toml_type(root), TOML_TABLE);
	assert_int_equal(toml_table_len(root), 8);
	assert_string_equal(toml_string(toml_table_get(root, "s"), &len), "hi");
	assert_int_equal(len, 2);
	assert_int_equal(toml_int(toml_table_get(root, "i")), 42);
	assert_true(toml_float(toml_table_get(root, "f")) == 3.5);
	assert_true(toml_bool(toml_table_get(root, "b")));
	assert_int_equal(toml_type(toml_table_get(root, "odt")), TOML_DATETIME);
	assert_string_equal(toml_datetime(toml_table_get(root, "odt")), "1979-05-27T07:32:00Z");
	assert_int_equal(toml_type(toml_table_get(root, "ldt")), TOML_DATETIME_LOCAL);
	assert_string_equal(toml_datetime(toml_table_get(root, "ldt")),
	                    "1979-05-27T07:32:00.999999");
	assert_int_equal(toml_type(toml_table_get(root, "ld")), TOML_DATE_LOCAL);
	assert_string_equal(toml_datetime(toml_table_get(root, "ld")), "1979-05-27");
	assert_int_equal(toml_type(toml_table_get(root, "lt")), TOML_TIME_LOCAL);
	assert_string_equal(toml_datetime(toml_table_get(root, "lt")), "07:32:00");
	assert_string_equal(toml_type_str(TOML_DATETIME_LOCAL), "datetime-local");
	toml_free(root);
}

static void test_toml_datetime_text_is_canonical(void **state)
{
	struct toml_value *root = parse_ok("a = 1979-05-27 07:32:00z\n"
	                                   "b = 1979-05-27t07:32:00-07:30\n"
	                                   "c = 00:00:00.1234567891234\n"
	                                   "d = 2000-02-29\n"
	                                   "e = 1979-05-27 # a date, then a comment\n");

	assert_string_equal(toml_datetime(toml_table_get(root, "a")), "1979-05-27T07:32:00Z");
	assert_string_equal(toml_datetime(toml_table_get(root, "b")), "1979-05-27T07:32:00-07:30");
	/* Precision beyond nanoseconds is truncated, not rounded. */
	assert_string_equal(toml_datetime(toml_table_get(root, "c")), "00:00:00.123456789");
	assert_string_equal(toml_datetime(toml_table_get(root, "d")), "2000-02-29");
	assert_int_equal(toml_type(toml_table_get(root, "e")), TOML_DATE_LOCAL);
	toml_free(root);
}

static void test_toml_rejects_out_of_range_dates_and_times(void **state)
{
	parse_bad("d = 2023-02-29\n"); /* not a leap year */
	parse_bad("d = 1900-02-29\n"); /* century, not a leap year */
	parse_bad("d = 2023-13-01\n");
	parse_bad("d = 2023-04-31\n");
	parse_bad("d = 2023-01-00\n");
	parse_bad("t = 24:00:00\n");
	parse_bad("t = 23:60:00\n");
	parse_bad("t = 23:59:61\n");
	parse_bad("t = 07:32\n"); /* TOML 1.0 requires seconds */
	parse_bad("d = 2023-01-01T00:00:00+24:00\n");
	parse_bad("d = 2023-1-01\n");
}

static void test_toml_integers_in_every_base(void **state)
{
	struct toml_value *root = parse_ok("a = 0xDEAD_beef\n"
	                                   "b = 0o755\n"
	                                   "c = 0b1101\n"
	                                   "d = -1_000\n"
	                                   "e = +0\n"
	                                   "max = 9223372036854775807\n"
	                                   "min = -9223372036854775808\n");

	assert_int_equal(toml_int(toml_table_get(root, "a")), 0xDEADBEEF);
	assert_int_equal(toml_int(toml_table_get(root, "b")), 0755);
	assert_int_equal(toml_int(toml_table_get(root, "c")), 13);
	assert_int_equal(toml_int(toml_table_get(root, "d")), -1000);
	assert_int_equal(toml_int(toml_table_get(root, "e")), 0);
	assert_true(toml_int(toml_table_get(root, "max")) == INT64_MAX);
	assert_true(toml_int(toml_table_get(root, "min")) == INT64_MIN);
	toml_free(root);
}

static void test_toml_rejects_malformed_and_overflowing_integers(void **state)
{
	struct toml_error err = parse_bad("x = 9223372036854775808\n");

	assert_non_null(strstr(err.msg, "64 bits"));
	parse_bad("x = -9223372036854775809\n");
	parse_bad("x = 0x8000000000000000\n");
	parse_bad("x = 012\n");
	parse_bad("x = 1__2\n");
	parse_bad("x = _1\n");
	parse_bad("x = 1_\n");
	parse_bad("x = -0x1\n");
	parse_bad("x = 0X1\n");
	parse_bad("x = 0b102\n");
}

static void test_toml_floats_including_inf_and_nan(void **state)
{
	struct toml_value *root = parse_ok("a = 6.626e-34\n"
	                                   "b = -inf\n"
	                                   "c = nan\n"
	                                   "d = 1_000.5\n"
	                                   "e = 5E+2\n"
	                                   "f = -0.0\n");

	assert_true(toml_float(toml_table_get(root, "a")) == 6.626e-34);
	assert_true(isinf(toml_float(toml_table_get(root, "b"))));
	assert_true(toml_float(toml_table_get(root, "b")) < 0);
	assert_true(isnan(toml_float(toml_table_get(root, "c"))));
	assert_true(toml_float(toml_table_get(root, "d")) == 1000.5);
	assert_true(toml_float(toml_table_get(root, "e")) == 500.0);
	assert_true(signbit(toml_float(toml_table_get(root, "f"))));
	toml_free(root);

	parse_bad("x = 1.\n");
	parse_bad("x = .5\n");
	parse_bad("x = 1.e5\n");
	parse_bad("x = 1e\n");
	parse_bad("x = 03.14\n");
	parse_bad("x = 1e400\n");
	parse_bad("x = Inf\n");
}

static void test_toml_strings_of_every_kind(void **state)
{
	struct toml_value *root = parse_ok("a = \"tab\\there \\\"q\\\" \\u00e9 \\U0001F600\"\n"
	                                   "b = 'C:\\path\\no escapes'\n"
	                                   "c = \"\"\"\nline1\r\nline2\"\"\"\n"
	                                   "d = \"\"\"one \\\n      two\"\"\"\n"
	                                   "e = '''\nraw \\n '' text'''\n"
	                                   "f = \"\"\"ends in quotes\"\"\"\"\"\n");

	assert_string_equal(toml_string(toml_table_get(root, "a"), NULL),
	                    "tab\there \"q\" \xC3\xA9 \xF0\x9F\x98\x80");
	assert_string_equal(toml_string(toml_table_get(root, "b"), NULL), "C:\\path\\no escapes");
	/* The newline after the opening delimiter is dropped; CRLF becomes LF. */
	assert_string_equal(toml_string(toml_table_get(root, "c"), NULL), "line1\nline2");
	/* A line-ending backslash eats the newline and the indentation. */
	assert_string_equal(toml_string(toml_table_get(root, "d"), NULL), "one two");
	assert_string_equal(toml_string(toml_table_get(root, "e"), NULL), "raw \\n '' text");
	assert_string_equal(toml_string(toml_table_get(root, "f"), NULL), "ends in quotes\"\"");
	toml_free(root);
}

static void test_toml_string_keeps_embedded_nul(void **state)
{
	struct toml_value *root = parse_ok("\"k\\u0000ey\" = \"a\\u0000b\"\n");
	size_t len;
	const char *s = toml_string(toml_table_value(root, 0), &len);

	assert_int_equal(len, 3);
	assert_memory_equal(s, "a\0b", 3);
	assert_int_equal(toml_table_key_len(root, 0), 4);
	assert_memory_equal(toml_table_key(root, 0), "k\0ey", 4);
	toml_free(root);
}

static void test_toml_rejects_bad_escapes(void **state)
{
	parse_bad("s = \"\\x41\"\n"); /* \x is TOML 1.1, not 1.0 */
	parse_bad("s = \"\\e\"\n");
	parse_bad("s = \"\\uD800\"\n"); /* surrogate */
	parse_bad("s = \"\\U00110000\"\n");
	parse_bad("s = \"\\u12\"\n");
	parse_bad("s = \"\"\"a\\ b\"\"\"\n"); /* backslash-space not at line end */
	parse_bad("s = \"\"\"a\"\"\"\"\"\"\n");
}

static void test_toml_nested_tables_and_arrays_of_tables(void **state)
{
	struct toml_value *root = parse_ok("[server]\n"
	                                   "name = \"a\"\n"
	                                   "[server.tls]\n"
	                                   "cert = \"c.pem\"\n"
	                                   "[[backend]]\n"
	                                   "host = \"db1\"\n"
	                                   "[backend.opts]\n"
	                                   "weight = 1\n"
	                                   "[[backend]]\n"
	                                   "host = \"db2\"\n"
	                                   "point = { x = 1, y.z = 2 }\n"
	                                   "list = [1, \"two\", [3.0], { four = 4 }]\n");
	struct toml_value *backends = toml_table_get(root, "backend");
	struct toml_value *b1, *list;

	assert_string_equal(toml_string(get_path(root, "server", "name"), NULL), "a");
	assert_string_equal(
	    toml_string(toml_table_get(get_path(root, "server", "tls"), "cert"), NULL), "c.pem");
	assert_int_equal(toml_type(backends), TOML_ARRAY);
	assert_int_equal(toml_array_len(backends), 2);
	assert_string_equal(toml_string(toml_table_get(toml_array_at(backends, 0), "host"), NULL),
	                    "db1");
	assert_int_equal(toml_int(get_path(toml_array_at(backends, 0), "opts", "weight")), 1);
	b1 = toml_array_at(backends, 1);
	assert_null(toml_table_get(b1, "opts"));
	assert_int_equal(toml_int(get_path(b1, "point", "x")), 1);
	assert_int_equal(toml_int(toml_table_get(get_path(b1, "point", "y"), "z")), 2);
	/* Arrays may mix types in TOML 1.0. */
	list = toml_table_get(b1, "list");
	assert_int_equal(toml_array_len(list), 4);
	assert_int_equal(toml_type(toml_array_at(list, 1)), TOML_STRING);
	assert_int_equal(toml_type(toml_array_at(list, 2)), TOML_ARRAY);
	assert_int_equal(toml_int(toml_table_get(toml_array_at(list, 3), "four")), 4);
	toml_free(root);
}

static void test_toml_keys_keep_document_order(void **state)
{
	struct toml_value *root = parse_ok("zeta = 1\nalpha = 2\n\"quoted key\" = 3\nmid = 4\n");

	assert_int_equal(toml_table_len(root), 4);
	assert_string_equal(toml_table_key(root, 0), "zeta");
	assert_string_equal(toml_table_key(root, 1), "alpha");
	assert_string_equal(toml_table_key(root, 2), "quoted key");
	assert_string_equal(toml_table_key(root, 3), "mid");
	assert_int_equal(toml_int(toml_table_value(root, 1)), 2);
	assert_null(toml_table_key(root, 4));
	toml_free(root);
}

static void test_toml_large_table_lookups(void **state)
{
	size_t cap = 2000 * 24, len = 0;
	char *doc = malloc(cap);
	char key[32];
	struct toml_value *root;

	assert_non_null(doc);
	for (int i = 0; i < 2000; i++)
		len += (size_t)snprintf(doc + len, cap - len, "key%d = %d\n", i, i);
	root = toml_parse(doc, len, NULL);
	assert_non_null(root);
	assert_int_equal(toml_table_len(root), 2000);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		assert_int_equal(toml_int(toml_table_get(root, key)), i);
	}
	assert_null(toml_table_get(root, "key2000"));
	toml_free(root);
	/* The duplicate check goes through the hash index too. */
	len += (size_t)snprintf(doc + len, cap - len, "key1234 = 0\n");
	assert_int_equal(parse_bad_n(doc, len).line, 2001);
	free(doc);
}

static void test_toml_line_of_keys_and_values(void **state)
{
	struct toml_value *root = parse_ok("# comment\n"
	                                   "a = 1\n"
	                                   "\n"
	                                   "arr = [\n"
	                                   "  10,\n"
	                                   "  \"\"\"multi\n"
	                                   "line\"\"\",\n"
	                                   "  30,\n"
	                                   "]\n"
	                                   "[t.sub]\n"
	                                   "x.y = true\n"
	                                   "[[aot]]\n"
	                                   "[[aot]]\n"
	                                   "z = 1\n");
	struct toml_value *arr = toml_table_get(root, "arr");
	struct toml_value *aot = toml_table_get(root, "aot");

	assert_int_equal(toml_line(root), 1);
	assert_int_equal(toml_line(toml_table_get(root, "a")), 2);
	assert_int_equal(toml_line(arr), 4);
	assert_int_equal(toml_line(toml_array_at(arr, 0)), 5);
	assert_int_equal(toml_line(toml_array_at(arr, 1)), 6);
	assert_int_equal(toml_line(toml_array_at(arr, 2)), 8);
	assert_int_equal(toml_line(get_path(root, "t", "sub")), 10);
	assert_int_equal(toml_line(get_path(get_path(root, "t", "sub"), "x", "y")), 11);
	assert_int_equal(toml_line(toml_array_at(aot, 0)), 12);
	assert_int_equal(toml_line(toml_array_at(aot, 1)), 13);
	assert_int_equal(toml_line(toml_table_get(toml_array_at(aot, 1), "z")), 14);
	toml_free(root);
}

static void test_toml_implicit_table_takes_line_of_its_definition(void **state)
{
	struct toml_value *root = parse_ok("[a.b]\nx = 1\n\n[a]\ny = 2\n");

	assert_int_equal(toml_line(toml_table_get(root, "a")), 4);
	assert_int_equal(toml_line(get_path(root, "a", "b")), 1);
	toml_free(root);
}

static void test_toml_rejects_duplicate_table_with_line(void **state)
{
	struct toml_error err = parse_bad("[a]\nx = 1\n[b]\n[a]\n");

	assert_int_equal(err.line, 4);
	assert_int_equal(err.col, 2);
	assert_non_null(strstr(err.msg, "'a'"));
	assert_non_null(strstr(err.msg, "more than once"));
}

static void test_toml_rejects_duplicate_key_with_line_and_column(void **state)
{
	struct toml_error err = parse_bad("[srv]\nport = 1\n  port = 2\n");

	assert_int_equal(err.line, 3);
	assert_int_equal(err.col, 3);
	assert_non_null(strstr(err.msg, "duplicate key 'port'"));
}

static void test_toml_error_column_counts_characters(void **state)
{
	/* "é" is two bytes but one column. */
	struct toml_error err = parse_bad("s = \"é\" x\n");

	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 9);
	err = parse_bad("a = 1\r\nb = \"unterminated\r\n");
	assert_int_equal(err.line, 2);
}

static void test_toml_rejects_redefinitions(void **state)
{
	struct toml_error err;

	/* Inline tables are frozen once written. */
	err = parse_bad("t = { a = 1 }\nt.b = 2\n");
	assert_int_equal(err.line, 2);
	parse_bad("t = { a = 1 }\n[t]\n");
	parse_bad("t = { a = 1 }\n[t.sub]\n");
	parse_bad("t = { a = { b = 1 }, a.c = 2 }\n");
	/* A static array cannot be appended to by [[...]]. */
	err = parse_bad("arr = [1]\n[[arr]]\n");
	assert_int_equal(err.line, 2);
	parse_bad("arr = [{ a = 1 }]\n[arr.b]\n");
	/* Dotted keys cannot reopen a table defined elsewhere... */
	parse_bad("[a.b]\nx = 1\n[a]\nb.y = 2\n");
	/* ...and a table made by dotted keys cannot get a [header]. */
	parse_bad("[a]\nb.c = 1\n[a.b]\n");
	parse_bad("a = 1\n[a]\n");
	parse_bad("[a]\n[[a]]\n");
	parse_bad("[[a]]\n[a]\n");
	parse_bad("a = 1\na.b = 2\n");
}

static void test_toml_accepts_legal_table_extensions(void **state)
{
	struct toml_value *root = parse_ok("[fruit]\n"
	                                   "apple.color = \"red\"\n"
	                                   "apple.taste.sweet = true\n"
	                                   "[fruit.apple.texture]\n"
	                                   "smooth = true\n"
	                                   "[x.y.z]\n"
	                                   "[x]\n"
	                                   "[x.y]\n");

	assert_true(toml_bool(
	    toml_table_get(get_path(get_path(root, "fruit", "apple"), "texture", NULL), "smooth")));
	assert_non_null(get_path(get_path(root, "x", "y"), "z", NULL));
	toml_free(root);
}

static void test_toml_inline_table_syntax_rules(void **state)
{
	struct toml_value *root = parse_ok("t = {}\nu = { a = 1, b.c = 2 }\n");

	assert_int_equal(toml_table_len(toml_table_get(root, "t")), 0);
	assert_int_equal(toml_table_len(toml_table_get(root, "u")), 2);
	toml_free(root);
	parse_bad("t = { a = 1, }\n");
	parse_bad("t = { a = 1,\n b = 2 }\n");
	parse_bad("t = { a = 1 b = 2 }\n");
	parse_bad("t = { a = 1, a = 2 }\n");
}

static void test_toml_rejects_deep_nesting(void **state)
{
	size_t n = 10000, len = 4 + 2 * n;
	char *doc = malloc(len + 1);
	struct toml_error err;

	assert_non_null(doc);
	memcpy(doc, "a = ", 4);
	memset(doc + 4, '[', n);
	memset(doc + 4 + n, ']', n);
	err = parse_bad_n(doc, len);
	assert_int_equal(err.line, 1);
	assert_non_null(strstr(err.msg, "deeper"));

	/* Exactly TOML_MAX_DEPTH levels are fine. */
	n = TOML_MAX_DEPTH;
	len = 4 + 2 * n;
	memset(doc + 4, '[', n);
	memset(doc + 4 + n, ']', n);
	struct toml_value *root = toml_parse(doc, len, &err);

	assert_non_null(root);
	toml_free(root);
	free(doc);

	/* Inline tables and long dotted keys or headers count too. */
	doc = malloc(8 * 200 + 16);
	assert_non_null(doc);
	len = 0;
	for (int i = 0; i < 200; i++)
		len += (size_t)sprintf(doc + len, "%s = {", i ? "b" : "a");
	err = parse_bad_n(doc, len);
	assert_non_null(strstr(err.msg, "deeper"));
	len = (size_t)sprintf(doc, "[a");
	for (int i = 0; i < 100; i++)
		len += (size_t)sprintf(doc + len, ".a");
	len += (size_t)sprintf(doc + len, "]\n");
	err = parse_bad_n(doc, len);
	assert_non_null(strstr(err.msg, "deeper"));
	free(doc);
}

static void test_toml_rejects_oversize_input(void **state)
{
	size_t len = (size_t)TOML_MAX_INPUT + 1;
	char *doc = malloc(len);
	struct toml_error err;

	assert_non_null(doc);
	/* One long comment: valid TOML, refused only for its size. */
	memset(doc, 'x', len);
	doc[0] = '#';
	err = parse_bad_n(doc, len);
	assert_int_equal(err.line, 0);
	assert_non_null(strstr(err.msg, "limit"));
	struct toml_value *root = toml_parse(doc, len - 1, &err);

	assert_non_null(root);
	toml_free(root);
	free(doc);
}

static void test_toml_rejects_invalid_utf8(void **state)
{
	static const char *const bad[] = {
	    "s = \"\xC0\xAF\"\n",         /* overlong '/' */
	    "s = \"\xE0\x80\xAF\"\n",     /* overlong, 3 bytes */
	    "s = \"\xED\xA0\x80\"\n",     /* surrogate U+D800 */
	    "s = \"\xF4\x90\x80\x80\"\n", /* above U+10FFFF */
	    "s = \"\x80\"\n",             /* stray continuation byte */
	    "# \xE2\x82\n",               /* truncated, in a comment */
	    "s = 'ok'\n# \xFF\n",         /* never valid */
	};
	struct toml_error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i]);
	err = parse_bad("a = 1\nb = \"x\xC3\"\n");
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 7);
	assert_non_null(strstr(err.msg, "UTF-8"));
}

static void test_toml_control_characters_rejected(void **state)
{
	static const char nul[] = "# comment \0 with NUL\n";

	parse_bad_n(nul, sizeof(nul) - 1);
	parse_bad("s = \"a\x01\"\n");
	parse_bad("s = 'a\x7F'\n");
	parse_bad("s = \"\"\"a\rb\"\"\"\n"); /* bare CR */
	parse_bad("a = 1\r");
	parse_bad("a = \"x\ny\"\n"); /* newline in a single-line string */
}

static void test_toml_accepts_bom_crlf_and_comments(void **state)
{
	static const char doc[] = "\xEF\xBB\xBF# head\r\na = 1 # tail\r\n[t] # c\r\nb = 'x'\r\n";
	struct toml_value *root = parse_ok(doc);

	assert_int_equal(toml_int(toml_table_get(root, "a")), 1);
	assert_string_equal(toml_string(get_path(root, "t", "b"), NULL), "x");
	assert_int_equal(toml_line(get_path(root, "t", "b")), 4);
	toml_free(root);
	/* A BOM anywhere but the start is not whitespace. */
	parse_bad("a = 1\n\xEF\xBB\xBF b = 2\n");
}

static void test_toml_input_need_not_be_nul_terminated(void **state)
{
	static const char doc[] = "a = 12345";
	struct toml_error err;
	/* Only "a = 12" is handed over: the parser must not read past it. */
	struct toml_value *root = toml_parse(doc, 6, &err);

	assert_non_null(root);
	assert_int_equal(toml_int(toml_table_get(root, "a")), 12);
	toml_free(root);
	root = toml_parse(NULL, 0, &err);
	assert_non_null(root);
	assert_int_equal(toml_table_len(root), 0);
	toml_free(root);
}

static void test_toml_accessors_tolerate_wrong_types(void **state)
{
	struct toml_value *root = parse_ok("i = 1\ns = 'x'\n");
	struct toml_value *i = toml_table_get(root, "i");
	size_t len = 99;

	assert_null(toml_string(i, &len));
	assert_int_equal(len, 0);
	assert_int_equal(toml_int(toml_table_get(root, "s")), 0);
	assert_null(toml_datetime(i));
	assert_int_equal(toml_table_len(i), 0);
	assert_null(toml_table_get(i, "x"));
	assert_int_equal(toml_array_len(root), 0);
	assert_null(toml_array_at(root, 0));
	assert_null(toml_table_get(root, "missing"));
	assert_null(toml_table_get(NULL, "x"));
	toml_free(NULL);
	toml_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_toml_parses_every_scalar_type),
	    cmocka_unit_test(test_toml_datetime_text_is_canonical),
	    cmocka_unit_test(test_toml_rejects_out_of_range_dates_and_times),
	    cmocka_unit_test(test_toml_integers_in_every_base),
	    cmocka_unit_test(test_toml_rejects_malformed_and_overflowing_integers),
	    cmocka_unit_test(test_toml_floats_including_inf_and_nan),
	    cmocka_unit_test(test_toml_strings_of_every_kind),
	    cmocka_unit_test(test_toml_string_keeps_embedded_nul),
	    cmocka_unit_test(test_toml_rejects_bad_escapes),
	    cmocka_unit_test(test_toml_nested_tables_and_arrays_of_tables),
	    cmocka_unit_test(test_toml_keys_keep_document_order),
	    cmocka_unit_test(test_toml_large_table_lookups),
	    cmocka_unit_test(test_toml_line_of_keys_and_values),
	    cmocka_unit_test(test_toml_implicit_table_takes_line_of_its_definition),
	    cmocka_unit_test(test_toml_rejects_duplicate_table_with_line),
	    cmocka_unit_test(test_toml_rejects_duplicate_key_with_line_and_column),
	    cmocka_unit_test(test_toml_error_column_counts_characters),
	    cmocka_unit_test(test_toml_rejects_redefinitions),
	    cmocka_unit_test(test_toml_accepts_legal_table_extensions),
	    cmocka_unit_test(test_toml_inline_table_syntax_rules),
	    cmocka_unit_test(test_toml_rejects_deep_nesting),
	    cmocka_unit_test(test_toml_rejects_oversize_input),
	    cmocka_unit_test(test_toml_rejects_invalid_utf8),
	    cmocka_unit_test(test_toml_control_characters_rejected),
	    cmocka_unit_test(test_toml_accepts_bom_crlf_and_comments),
	    cmocka_unit_test(test_toml_input_need_not_be_nul_terminated),
	    cmocka_unit_test(test_toml_accessors_tolerate_wrong_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
