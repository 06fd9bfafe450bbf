/*
 * Shared plumbing for the common/cfg unit tests (tests/unit/test_cfg*.c): a
 * temporary directory per program, writing files into it, loading config
 * text and asserting that text is refused with a given message.
 *
 * Each test_*.c is its own program, so everything here is static; the
 * functions are static inline so that a program using only some of them
 * builds without unused-function warnings. The header includes cmocka and
 * its prerequisites itself, so a test includes only this.
 */
#ifndef HELIOS_TESTS_CFG_TESTUTIL_H
#define HELIOS_TESTS_CFG_TESTUTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfg.h"

/* Appended to texts that test something else, so "no nodes" does not fire. */
#define NODE "[[nodes]]\nhost = \"db\"\n"

/* Identifiers of PostgreSQL's longest (63 bytes) and one byte more. */
#define N63 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
#define N64 N63 "n"

/* The program's temporary directory, made by make_tmpdir. */
static char tmpdir[64];

/* Group setup: makes /tmp/<program name>.XXXXXX as tmpdir. */
static inline int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", program_invocation_short_name);
	return mkdtemp(tmpdir) ? 0 : -1;
}

/* Group teardown: removes tmpdir and everything in it. */
static inline int remove_tmpdir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name; returns the path in a static rotating buffer. */
static inline const char *write_tmp(const char *name, const char *text)
{
	static char paths[4][256];
	static int next;
	char *path = paths[next++ % 4];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Loads text as if read from "proxy.toml". */
static inline struct cfg *load(const char *text, struct cfg_error *err)
{
	return cfg_load_string("proxy.toml", text, strlen(text), err);
}

/* Loads text, failing the test with the loader's message if it is refused. */
static inline struct cfg *load_ok(const char *text)
{
	struct cfg_error err;
	struct cfg *c = load(text, &err);

	if (!c)
		fail_msg("refused: %s", err.msg);
	return c;
}

/* Asserts that text is refused with a one-line message containing every
 * given piece (the list ends with NULL). */
static inline void assert_refused(const char *text, const char *piece, ...)
{
	struct cfg_error err;
	struct cfg *c = load(text, &err);
	va_list ap;

	if (c) {
		cfg_free(c);
		fail_msg("accepted, expected an error containing \"%s\"", piece);
	}
	assert_null(strchr(err.msg, '\n'));
	va_start(ap, piece);
	for (; piece; piece = va_arg(ap, const char *))
		if (!strstr(err.msg, piece))
			fail_msg("error \"%s\" does not contain \"%s\"", err.msg, piece);
	va_end(ap);
}

/* Loads file text from tmpdir/proxy.toml with overrides read as "ovr.toml". */
static inline struct cfg *load_with(const char *text, const char *ovr, struct cfg_error *err)
{
	return cfg_load_file_with(write_tmp("proxy.toml", text), "ovr.toml", ovr, err);
}

/* Asserts that cfg_to_toml(c) writes exactly want. */
static inline void assert_writes_toml(const struct cfg *c, const char *want)
{
	char *toml = cfg_to_toml(c);

	assert_non_null(toml);
	assert_string_equal(toml, want);
	free(toml);
}

#endif
