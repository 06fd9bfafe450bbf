/*
 * heliosproxy.toml(5) (cfg_write_man, heliosproxy --print-config-man): every
 * key of the table is listed, and the page is roff that no doc string can
 * break (a backtick turned into font changes, no text line read as a
 * request, backslashes escaped). test_install.py renders the page with
 * man --warnings.
 */
#include "common/cfg.h"
#include "common/cfg_keys.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *page(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	cfg_write_man(f, "9.9.9");
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_man_page_lists_every_key_of_the_table(void **state)
{
	char *p = page();
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char want[200];

	assert_true(n > 50);
	for (size_t i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "\n.TP\n.B %s\n", keys[i].name);
		if (!strstr(p, want))
			fail_msg("key %s is missing from the page", cfg_key_dotted(&keys[i]));
	}
	assert_non_null(strstr(p, ".TH HELIOSPROXY.TOML 5 \"\" \"HeliosProxy 9.9.9\""));
	free(p);
}

/* Only the requests the generator writes start a line; doc text that starts
 * with '.' or '\'' would otherwise be a request that groff drops. */
static void test_man_page_lines_are_known_requests_or_escaped_text(void **state)
{
	static const char *const requests[] = {".\\\" ", ".TH ", ".SH ", ".SS ", ".TP", ".B ",
	                                       ".BR ",   ".I ",  ".PP",  ".EX",  ".EE"};
	char *p = page();
	char *save = NULL;

	assert_null(strchr(p, '`'));
	for (char *line = strtok_r(p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_int_not_equal(line[0], '\'');
		if (line[0] != '.')
			continue;
		bool known = false;
		for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
			known |= strncmp(line, requests[i], strlen(requests[i])) == 0;
		if (!known)
			fail_msg("line is read as an unknown request: %s", line);
	}
	free(p);
}

/* A doc string's `code` becomes bold; a backslash is printed, not an escape. */
static void test_man_page_turns_code_into_bold_and_escapes_backslashes(void **state)
{
	char *p = page();
	/* from the intro and from io_backend's values */
	assert_non_null(strstr(p, "\\fBheliosproxy \\-\\-check\\-config\\fR"));
	assert_non_null(strstr(p, "one of \\fBauto\\fR, \\fBio_uring\\fR, \\fBepoll\\fR"));
	for (const char *s = strchr(p, '\\'); s; s = strchr(s + 2, '\\'))
		assert_non_null(strchr("\"&efF-", s[1]));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_man_page_lists_every_key_of_the_table),
	    cmocka_unit_test(test_man_page_lines_are_known_requests_or_escaped_text),
	    cmocka_unit_test(test_man_page_turns_code_into_bold_and_escapes_backslashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
