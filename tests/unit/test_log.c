/*
 * Unit tests for common/log.c: JSON string escaping of hostile input
 * (quotes, backslashes, control characters, invalid UTF-8 of every kind),
 * truncation that never splits an escape or a character, and whole JSON
 * lines (read back through a pipe and parsed with jansson) with the
 * fields log_format = "json" promises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define UNUSED __attribute__((unused))

/* src escaped, wrapped in quotes and parsed back by jansson; NULL if the
 * result is not valid JSON. Caller frees. */
static char *roundtrip(const char *src, size_t cap)
{
	char *buf = malloc(cap + 2);
	char *doc = malloc(cap + 8);
	assert_non_null(buf);
	assert_non_null(doc);
	size_t n = log_json_escape(buf, cap, src);
	assert_true(n < cap);
	assert_int_equal(strlen(buf), n);
	snprintf(doc, cap + 8, "[\"%s\"]", buf);
	json_error_t err;
	json_t *j = json_loads(doc, 0, &err);
	free(buf);
	free(doc);
	if (!j)
		return NULL;
	char *out = strdup(json_string_value(json_array_get(j, 0)));
	json_decref(j);
	return out;
}

static void test_quotes_backslashes_and_controls_come_back_exactly(void **s UNUSED)
{
	const char *in = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi/j";
	char *out = roundtrip(in, 256);
	assert_non_null(out);
	assert_string_equal(out, in);
	free(out);
	char buf[64];
	log_json_escape(buf, sizeof(buf), "\n\x01");
	assert_string_equal(buf, "\\n\\u0001"); /* no raw newline: one line per object */
}

static void test_valid_utf8_is_kept_verbatim(void **s UNUSED)
{
	const char *in = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
	char buf[64];
	log_json_escape(buf, sizeof(buf), in);
	assert_string_equal(buf, in);
}

static void test_invalid_utf8_becomes_replacement_characters(void **s UNUSED)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"\xff", "\\ufffd"},                                  /* never valid */
	    {"a\xc3", "a\\ufffd"},                                /* cut short at the end */
	    {"\xc3(", "\\ufffd("},                                /* bad continuation */
	    {"\xc0\xaf", "\\ufffd\\ufffd"},                       /* overlong '/' */
	    {"\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd"},            /* overlong, 3 bytes */
	    {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},            /* UTF-16 surrogate */
	    {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* above U+10FFFF */
	    {"\xe2\x82", "\\ufffd\\ufffd"},                       /* truncated euro sign */
	    {"\x80x", "\\ufffdx"},                                /* lone continuation */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];
		log_json_escape(buf, sizeof(buf), cases[i].in);
		assert_string_equal(buf, cases[i].want);
		char *out = roundtrip(cases[i].in, 64);
		assert_non_null(out); /* and it is valid JSON */
		free(out);
	}
}

static void test_truncation_never_splits_an_escape_or_a_character(void **s UNUSED)
{
	const char *in = "\"\xe2\x82\xac\n\xff\\\x01\xf0\x9f\x98\x80xyz";
	for (size_t cap = 1; cap < 40; cap++) {
		char *out = roundtrip(in, cap);
		assert_non_null(out);
		/* every cut is still a valid JSON string */
		free(out);
	}
	char buf[3];
	assert_int_equal(log_json_escape(buf, sizeof(buf), "\n"), 2);
	assert_string_equal(buf, "\\n");
	assert_int_equal(log_json_escape(buf, 2, "\n"), 0); /* no half escape */
	assert_int_equal(log_json_escape(buf, 1, "abc"), 0);
	assert_string_equal(buf, "");
}

/* Runs fn with stderr redirected into a pipe; returns what it wrote. */
static char *capture(void (*fn)(void))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	int saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	char *out = calloc(1, 1 << 16);
	size_t n = 0;
	ssize_t r;
	while ((r = read(p[0], out + n, (1 << 16) - 1 - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	return out;
}

static void write_event(void)
{
	struct log_ctx c = {42, "ev\"il\nuser\xff", "d\\b", "127.0.0.1:5"};
	log_set_format(LOG_FORMAT_JSON);
	log_event(LOG_WARN, "login_failed", &c, "bad %s", "pass\"word\n");
	log_info("plain %d", 7);
	log_error("broken");
	log_set_format(LOG_FORMAT_TEXT);
}

static void test_json_lines_carry_the_fields(void **s UNUSED)
{
	char *out = capture(write_event);
	char *save = NULL, *line = strtok_r(out, "\n", &save);
	json_error_t err;

	json_t *j = json_loads(line, 0, &err);
	assert_non_null(j);
	const char *t = json_string_value(json_object_get(j, "time"));
	assert_non_null(t);
	assert_int_equal(strlen(t), 24); /* 2026-12-07T17:01:45.123Z */
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
	assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(j, "event")), "login_failed");
	assert_int_equal(json_integer_value(json_object_get(j, "client_id")), 42);
	assert_string_equal(json_string_value(json_object_get(j, "user")),
	                    "ev\"il\nuser\xef\xbf\xbd");
	assert_string_equal(json_string_value(json_object_get(j, "database")), "d\\b");
	assert_string_equal(json_string_value(json_object_get(j, "address")), "127.0.0.1:5");
	assert_string_equal(json_string_value(json_object_get(j, "message")), "bad pass\"word\n");
	json_decref(j);

	j = json_loads(strtok_r(NULL, "\n", &save), 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "log");
	assert_string_equal(json_string_value(json_object_get(j, "message")), "plain 7");
	assert_null(json_object_get(j, "client_id"));
	assert_null(json_object_get(j, "user"));
	json_decref(j);

	j = json_loads(strtok_r(NULL, "\n", &save), 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "error");
	assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
	json_decref(j);
	assert_null(strtok_r(NULL, "\n", &save));
	free(out);
}

static void write_huge(void)
{
	static char big[5000];
	memset(big, '"', sizeof(big) - 1); /* each becomes two bytes */
	struct log_ctx c = {1, big, big, NULL};
	log_set_format(LOG_FORMAT_JSON);
	log_event(LOG_INFO, "client_connect", &c, "%s", big);
	log_set_format(LOG_FORMAT_TEXT);
}

static void test_an_oversized_line_is_cut_but_stays_one_valid_object(void **s UNUSED)
{
	char *out = capture(write_huge);
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0'); /* exactly one line */
	json_error_t err;
	json_t *j = json_loadb(out, (size_t)(nl - out), 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "client_connect");
	json_decref(j);
	free(out);
}

static void write_text(void)
{
	log_info("hello %s", "world");
}

static void test_text_format_is_time_level_message(void **s UNUSED)
{
	char *out = capture(write_text);
	/* 2026-12-07T17:01:45.123Z info  hello world */
	assert_int_equal(strlen(out), 24 + 1 + 6 + 11 + 1);
	assert_string_equal(out + 25, "info  hello world\n");
	free(out);
}

static void write_forged(void)
{
	log_info("user=%s: refused", "x\n2026-12-07T00:00:00.000Z error forged\r\x01");
}

static void test_text_format_escapes_newlines_so_a_client_cannot_forge_a_line(void **s UNUSED)
{
	char *out = capture(write_forged);
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0'); /* one line */
	assert_non_null(
	    strstr(out, "user=x\\n2026-12-07T00:00:00.000Z error forged\\r\\x01: refused\n"));
	free(out);
}

static void test_format_and_facility_names(void **s UNUSED)
{
	assert_int_equal(log_set_format_str("json"), 0);
	assert_int_equal(log_set_format_str("text"), 0);
	assert_int_equal(log_set_format_str("xml"), -EINVAL);
	assert_int_equal(log_set_syslog(true, "t", "nope"), -EINVAL);
	assert_int_equal(log_set_syslog(false, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quotes_backslashes_and_controls_come_back_exactly),
	    cmocka_unit_test(test_valid_utf8_is_kept_verbatim),
	    cmocka_unit_test(test_invalid_utf8_becomes_replacement_characters),
	    cmocka_unit_test(test_truncation_never_splits_an_escape_or_a_character),
	    cmocka_unit_test(test_json_lines_carry_the_fields),
	    cmocka_unit_test(test_an_oversized_line_is_cut_but_stays_one_valid_object),
	    cmocka_unit_test(test_text_format_is_time_level_message),
	    cmocka_unit_test(test_text_format_escapes_newlines_so_a_client_cannot_forge_a_line),
	    cmocka_unit_test(test_format_and_facility_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
