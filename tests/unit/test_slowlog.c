/*
 * Unit tests for the slow query log (dataplane/pipeline/engine/slowlog.c): the
 * JSON line format, that no constant of a statement (and nothing of one
 * that does not parse) reaches the file, rotation and how many old files
 * are kept, the in-memory recent lines, dropping on a full queue, close
 * writing what is queued, write errors and the file mode. Each test works
 * in its own temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/pipeline/engine/slowlog.h"

#define UNUSED __attribute__((unused))

struct dir {
	char path[64];
	char log[96];
};

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));
	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/test-slowlog-XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	snprintf(d->log, sizeof(d->log), "%s/slow.log", d->path);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;
	DIR *dh = opendir(d->path);
	struct dirent *e;
	while (dh && (e = readdir(dh))) {
		char p[400];
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
			unlink(p);
		}
	}
	if (dh)
		closedir(dh);
	rmdir(d->path);
	free(d);
	return 0;
}

static struct slowlog *open_log(const char *path, uint64_t max_bytes, size_t keep)
{
	char err[256] = "";
	struct slowlog *s = slowlog_open(path, max_bytes, keep, err, sizeof(err));
	if (!s)
		fail_msg("slowlog_open: %s", err);
	return s;
}

/* A record for sql whose rows field carries seq, so tests can tell lines
 * apart and check their order. */
static void make_rec(struct slowlog_rec *r, const char *sql, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->ts = 1714567296.789;
	r->duration_us = 1234567;
	r->fingerprint = UINT64_C(0x00ab12cd34ef5678);
	r->rows = seq;
	assert_true(slowlog_rec_set(r, "alice", "shop", "pg-primary", "psql", sql, strlen(sql)));
}

static void submit(struct slowlog *s, const char *sql, uint64_t seq)
{
	struct slowlog_rec r;
	make_rec(&r, sql, seq);
	assert_true(slowlog_submit(s, &r));
	assert_null(r.text);
}

/* The whole file, NUL-terminated; "" when it does not exist. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (f) {
		for (;;) {
			if (n + 4096 + 1 > cap) {
				cap = (n + 4096 + 1) * 2;
				buf = realloc(buf, cap);
				assert_non_null(buf);
			}
			size_t got = fread(buf + n, 1, 4096, f);
			n += got;
			if (got == 0)
				break;
		}
		fclose(f);
	}
	if (!buf) {
		buf = malloc(1);
		assert_non_null(buf);
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* Splits buf in place into its '\n'-terminated lines (each must end so). */
static size_t split_lines(char *buf, char **lines, size_t max)
{
	size_t n = 0;
	for (char *p = buf; *p;) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);
		*nl = '\0';
		assert_true(n < max);
		lines[n++] = p;
		p = nl + 1;
	}
	return n;
}

static json_t *parse(const char *line)
{
	json_error_t e;
	json_t *j = json_loads(line, 0, &e);
	if (!j || !json_is_object(j))
		fail_msg("not a JSON object (%s): %s", e.text, line);
	return j;
}

static uint64_t rows_of(const char *line)
{
	json_t *j = parse(line);
	json_t *v = json_object_get(j, "rows");
	assert_true(json_is_integer(v));
	uint64_t r = (uint64_t)json_integer_value(v);
	json_decref(j);
	return r;
}

/* ---- Format ---- */

static void lines_are_json_with_every_field_in_order(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 10);
	struct slowlog_rec r;
	make_rec(&r, "SELECT * FROM orders WHERE id = 17", 3);
	assert_true(slowlog_submit(s, &r));
	make_rec(&r, "SELECT pg_sleep(10)", 0);
	r.ts = 1714567297.0;
	r.duration_us = 5000;
	r.error = true;
	snprintf(r.sqlstate, sizeof(r.sqlstate), "57014");
	snprintf(r.application_name, sizeof(r.application_name), "tab\tand \"quote\"");
	assert_true(slowlog_submit(s, &r));
	slowlog_flush(s);

	char *buf = slurp(d->log, NULL);
	char *lines[4];
	assert_int_equal(split_lines(buf, lines, 4), 2);

	json_t *j = parse(lines[0]);
	assert_string_equal(json_string_value(json_object_get(j, "time")),
	                    "2024-05-01T12:41:36.789Z");
	assert_true(json_is_real(json_object_get(j, "duration_ms")));
	assert_float_equal(json_real_value(json_object_get(j, "duration_ms")), 1234.567, 1e-9);
	assert_string_equal(json_string_value(json_object_get(j, "user")), "alice");
	assert_string_equal(json_string_value(json_object_get(j, "database")), "shop");
	assert_string_equal(json_string_value(json_object_get(j, "node")), "pg-primary");
	assert_string_equal(json_string_value(json_object_get(j, "application_name")), "psql");
	assert_string_equal(json_string_value(json_object_get(j, "fingerprint")),
	                    "00ab12cd34ef5678");
	assert_int_equal(json_integer_value(json_object_get(j, "rows")), 3);
	assert_true(json_is_false(json_object_get(j, "error")));
	assert_null(json_object_get(j, "sqlstate"));
	assert_string_equal(json_string_value(json_object_get(j, "query")),
	                    "SELECT * FROM orders WHERE id = $1");
	assert_int_equal(json_object_size(j), 10);
	json_decref(j);
	/* Compact, fixed key order: exactly this text, whatever the parser. */
	assert_string_equal(lines[0],
	                    "{\"time\":\"2024-05-01T12:41:36.789Z\",\"duration_ms\":1234.567,"
	                    "\"user\":\"alice\",\"database\":\"shop\",\"node\":\"pg-primary\","
	                    "\"application_name\":\"psql\",\"fingerprint\":"
	                    "\"00ab12cd34ef5678\",\"rows\":3,\"error\":false,"
	                    "\"query\":\"SELECT * FROM orders WHERE id = $1\"}");

	j = parse(lines[1]);
	assert_string_equal(json_string_value(json_object_get(j, "time")),
	                    "2024-05-01T12:41:37.000Z");
	assert_float_equal(json_real_value(json_object_get(j, "duration_ms")), 5.0, 1e-9);
	assert_string_equal(json_string_value(json_object_get(j, "application_name")),
	                    "tab\tand \"quote\"");
	assert_true(json_is_true(json_object_get(j, "error")));
	assert_string_equal(json_string_value(json_object_get(j, "sqlstate")), "57014");
	assert_string_equal(json_string_value(json_object_get(j, "query")), "SELECT pg_sleep($1)");
	assert_int_equal(json_object_size(j), 11);
	json_decref(j);
	assert_non_null(strstr(lines[1], "\"error\":true,\"sqlstate\":\"57014\",\"query\":"));

	free(buf);
	slowlog_close(s);
}

/* Names that are not NUL-terminated or not UTF-8 still give valid JSON. */
static void odd_names_and_bytes_still_give_valid_json(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 10);
	struct slowlog_rec r;
	make_rec(&r, "SELECT \"col\xff\xfe\" FROM t", 1);
	memset(r.user, 'u', sizeof(r.user)); /* no NUL at all */
	snprintf(r.database, sizeof(r.database), "caf\xc3\xa9 \xc3(\xed\xa0\x80");
	assert_true(slowlog_submit(s, &r));
	slowlog_flush(s);

	char *buf = slurp(d->log, NULL);
	char *lines[2];
	assert_int_equal(split_lines(buf, lines, 2), 1);
	json_t *j = parse(lines[0]);
	const char *user = json_string_value(json_object_get(j, "user"));
	assert_int_equal(strlen(user), 64);
	assert_int_equal(strspn(user, "u"), 64);
	assert_string_equal(json_string_value(json_object_get(j, "database")),
	                    "caf\xc3\xa9 \xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
	free(buf);
	slowlog_close(s);
}

/* ---- Normalisation ---- */

struct norm_case {
	const char *sql;
	const char *expect;     /* exact query field, or NULL to check only secrets */
	const char *secrets[4]; /* none may appear anywhere in the file */
};

static const struct norm_case norm_cases[] = {
    {"SELECT * FROM t WHERE id = 4711 AND price > 99.95",
     "SELECT * FROM t WHERE id = $1 AND price > $2",
     {"4711", "99.95"}},
    {"SELECT * FROM users WHERE name = 'O''Reilly' AND note = E'it\\'s secret'",
     "SELECT * FROM users WHERE name = $1 AND note = $2",
     {"Reilly", "secret"}},
    {"SELECT * FROM t WHERE a IN (31337, 42424, 'in-list-word')",
     "SELECT * FROM t WHERE a IN ($1, $2, $3)",
     {"31337", "42424", "in-list-word"}},
    {"UPDATE acct SET bal = -8675309, lim = - 2718281 WHERE k = -1.4142",
     "UPDATE acct SET bal = $1, lim = $2 WHERE k = $3",
     {"8675309", "2718281", "1.4142"}},
    {"SELECT $1, 5551212 FROM t WHERE x = $2", "SELECT $1, $3 FROM t WHERE x = $2", {"5551212"}},
    {"SELECT $$dollar quoted word$$, $tag$tagged word$tag$, B'10101', X'CAFE'",
     "SELECT $1, $2, $3, $4",
     {"dollar", "tagged", "10101", "CAFE"}},
    {"SELECT U&'d\\0061t\\+000061', U&'d!0061t' UESCAPE '!', 'plain'", NULL, {"0061", "plain"}},
    {"SELECT 'continued'\n  'string' AS \"U&\", U&\"c\\006Fl\" FROM t",
     "SELECT $1 AS \"U&\", U&\"c\\006Fl\" FROM t",
     {"continued", "string"}},
    /* pg_query_normalize leaves these to the token pass */
    {"COMMENT ON TABLE t IS 'commentsecret'", "COMMENT ON TABLE t IS $1", {"commentsecret"}},
    {"COPY t FROM '/srv/copysecret.csv'", "COPY t FROM $1", {"copysecret"}},
    {"CREATE TABLE t (a int DEFAULT 5150, b text CHECK (b <> 'checksecret'))",
     "CREATE TABLE t (a int DEFAULT $1, b text CHECK (b <> $2))",
     {"5150", "checksecret"}},
    {"ALTER ROLE bob PASSWORD 'hunter2'", "ALTER ROLE bob PASSWORD $1", {"hunter2"}},
    {"DO $$BEGIN PERFORM 1234321; END$$", "DO $1", {"1234321"}},
    /* pg_query_normalize turns -(6020) into "$1" + "6020)" */
    {"INSERT INTO t VALUES (1, -(6020))", NULL, {"6020"}},
    {"SELECT 1; SELECT 'second statement'", "SELECT $1; SELECT $2", {"second statement"}},
};

static void query_has_placeholders_and_no_constants(void **state)
{
	struct dir *d = *state;
	size_t n = sizeof(norm_cases) / sizeof(norm_cases[0]);
	struct slowlog *s = open_log(d->log, 0, n);
	for (size_t i = 0; i < n; i++)
		submit(s, norm_cases[i].sql, i);
	slowlog_flush(s);

	char *buf = slurp(d->log, NULL);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < 4 && norm_cases[i].secrets[k]; k++)
			if (strstr(buf, norm_cases[i].secrets[k]))
				fail_msg("constant %s of case %zu was written",
				         norm_cases[i].secrets[k], i);
	char *lines[32];
	assert_int_equal(split_lines(buf, lines, 32), n);
	for (size_t i = 0; i < n; i++) {
		json_t *j = parse(lines[i]);
		const char *q = json_string_value(json_object_get(j, "query"));
		assert_non_null(q);
		if (!strstr(q, "$1"))
			fail_msg("case %zu has no $1: %s", i, q);
		if (norm_cases[i].expect && strcmp(q, norm_cases[i].expect) != 0)
			fail_msg("case %zu: got %s, want %s", i, q, norm_cases[i].expect);
		json_decref(j);
	}
	free(buf);
	slowlog_close(s);
}

static const char *query_of(const char *line, json_t **keep)
{
	*keep = parse(line);
	return json_string_value(json_object_get(*keep, "query"));
}

static void unparsable_text_is_not_written_raw(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 10);
	submit(s, "SELEC rawsecret FROM t WHERE pw = 'rawsecret2'", 0);
	submit(s, "SELECT 'unterminated rawsecret3", 1);
	/* A statement cut at SLOWLOG_TEXT_MAX no longer parses. */
	size_t big = SLOWLOG_TEXT_MAX + 100;
	char *sql = malloc(big + 1);
	assert_non_null(sql);
	size_t o = (size_t)sprintf(sql, "SELECT 'rawsecret4' FROM t WHERE a IN (");
	while (o < big - 1) {
		memcpy(sql + o, "7,", 2);
		o += 2;
	}
	sql[big - 1] = ')';
	sql[big] = '\0';
	struct slowlog_rec r;
	make_rec(&r, sql, 2);
	assert_int_equal(r.text_len, SLOWLOG_TEXT_MAX);
	assert_true(slowlog_submit(s, &r));
	free(sql);
	/* Out of memory in slowlog_rec_set leaves no text: not "" either. */
	make_rec(&r, "SELECT 1", 3);
	free(r.text);
	r.text = NULL;
	r.text_len = 0;
	assert_true(slowlog_submit(s, &r));
	slowlog_flush(s);

	char *buf = slurp(d->log, NULL);
	assert_null(strstr(buf, "rawsecret"));
	assert_null(strstr(buf, "SELEC "));
	assert_null(strstr(buf, "7,7"));
	char *lines[8];
	assert_int_equal(split_lines(buf, lines, 8), 4);
	for (size_t i = 0; i < 4; i++) {
		json_t *j;
		assert_string_equal(query_of(lines[i], &j), SLOWLOG_UNPARSABLE);
		json_decref(j);
	}
	free(buf);
	slowlog_close(s);
}

/* ---- Rotation ---- */

static void rotates_at_max_bytes_and_keeps_three_old_files(void **state)
{
	struct dir *d = *state;
	const uint64_t max = 1000;
	struct slowlog *s = open_log(d->log, max, 0);
	const size_t total = 40;
	/* rows from 100 so that every line has the same length */
	for (size_t i = 0; i < total; i++)
		submit(s, "SELECT * FROM rotation_test WHERE id = 1", 100 + i);
	slowlog_flush(s);
	struct slowlog_stats st;
	slowlog_stats(s, &st);
	assert_int_equal(st.written, total);
	assert_int_equal(st.dropped, 0);

	/* Newest first: slow.log, .1, .2, .3; nothing past .3. */
	char path[4][128];
	char *bufs[4];
	size_t sizes[4], n[4], kept = 0;
	char *lines[4][16];
	for (int f = 0; f < 4; f++) {
		if (f == 0)
			snprintf(path[f], sizeof(path[f]), "%s", d->log);
		else
			snprintf(path[f], sizeof(path[f]), "%s.%d", d->log, f);
		bufs[f] = slurp(path[f], &sizes[f]);
		assert_true(sizes[f] > 0);
		assert_true(sizes[f] <= max);
		n[f] = split_lines(bufs[f], lines[f], 16);
		kept += n[f];
	}
	char p4[140];
	snprintf(p4, sizeof(p4), "%s.4", d->log);
	assert_int_equal(access(p4, F_OK), -1);

	/* Every line is the same length; a file rotated as soon as one more
	 * would not fit, so each rotated file holds floor(max / len) lines. */
	size_t len = strlen(lines[0][0]) + 1;
	for (int f = 1; f < 4; f++)
		assert_int_equal(n[f], max / len);
	assert_int_equal(st.bytes, total * len);
	assert_int_equal(st.rotations, (total - 1) / (max / len));

	/* The kept lines are the newest, consecutive and in order. */
	uint64_t want = 100 + total - kept;
	for (int f = 3; f >= 0; f--)
		for (size_t i = 0; i < n[f]; i++)
			assert_int_equal(rows_of(lines[f][i]), want++);
	assert_int_equal(want, 100 + total);
	for (int f = 0; f < 4; f++)
		free(bufs[f]);
	slowlog_close(s);
}

static void line_longer_than_max_goes_alone_into_a_file(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 100, 0);
	submit(s, "SELECT a_long_column_name, another_long_column_name FROM a_table", 0);
	submit(s, "SELECT 2", 1);
	slowlog_flush(s);
	struct slowlog_stats st;
	slowlog_stats(s, &st);
	assert_int_equal(st.written, 2);
	assert_int_equal(st.rotations, 1);
	char p1[140];
	snprintf(p1, sizeof(p1), "%s.1", d->log);
	char *old = slurp(p1, NULL), *cur = slurp(d->log, NULL);
	char *lines[2];
	assert_int_equal(split_lines(old, lines, 2), 1);
	assert_int_equal(rows_of(lines[0]), 0);
	assert_int_equal(split_lines(cur, lines, 2), 1);
	assert_int_equal(rows_of(lines[0]), 1);
	free(old);
	free(cur);
	slowlog_close(s);
}

/* Appends to an existing file and counts its size towards max_bytes. */
static void reopening_appends_and_counts_existing_size(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 0);
	submit(s, "SELECT 1", 0);
	slowlog_close(s);
	size_t len;
	free(slurp(d->log, &len));

	s = open_log(d->log, 2 * len - 1, 0);
	submit(s, "SELECT 1", 1);
	slowlog_close(s);
	char p1[140];
	snprintf(p1, sizeof(p1), "%s.1", d->log);
	char *old = slurp(p1, NULL), *cur = slurp(d->log, NULL);
	char *lines[2];
	assert_int_equal(split_lines(old, lines, 2), 1);
	assert_int_equal(rows_of(lines[0]), 0);
	assert_int_equal(split_lines(cur, lines, 2), 1);
	assert_int_equal(rows_of(lines[0]), 1);
	free(old);
	free(cur);
}

/* ---- Recent lines ---- */

static void recent_returns_newest_lines_in_order(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 5);
	size_t count = 99;
	char **l = slowlog_recent(s, 3, &count);
	assert_null(l);
	assert_int_equal(count, 0);

	for (uint64_t i = 0; i < 12; i++)
		submit(s, "SELECT 1", i);
	slowlog_flush(s);

	l = slowlog_recent(s, 3, &count);
	assert_int_equal(count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(rows_of(l[i]), 9 + i);
	slowlog_free_lines(l, count);

	l = slowlog_recent(s, 100, &count); /* only keep_lines are kept */
	assert_int_equal(count, 5);
	char *buf = slurp(d->log, NULL);
	char *lines[16];
	assert_int_equal(split_lines(buf, lines, 16), 12);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(l[i], lines[7 + i]); /* exactly the file's lines */
	slowlog_free_lines(l, count);
	free(buf);

	l = slowlog_recent(s, 0, &count);
	assert_null(l);
	assert_int_equal(count, 0);
	slowlog_close(s);
}

static void recent_is_empty_when_keep_lines_is_zero(void **state)
{
	struct dir *d = *state;
	struct slowlog *s = open_log(d->log, 0, 0);
	submit(s, "SELECT 1", 0);
	slowlog_flush(s);
	size_t count = 99;
	assert_null(slowlog_recent(s, 10, &count));
	assert_int_equal(count, 0);
	slowlog_close(s);
}

/* ---- Queue ---- */

static void full_queue_drops_and_counts(void **state)
{
	struct dir *d = *state;
	char err[256] = "";
	struct slowlog *s = slowlog_open_queue(d->log, 0, 0, 4, err, sizeof(err));
	assert_non_null(s);
	slowlog_pause(s, true);
	for (uint64_t i = 0; i < 10; i++) {
		struct slowlog_rec r;
		make_rec(&r, "SELECT 1", i);
		assert_int_equal(slowlog_submit(s, &r), i < 4);
		assert_null(r.text); /* taken either way; ASan checks it is freed */
	}
	struct slowlog_stats st;
	slowlog_stats(s, &st);
	assert_int_equal(st.dropped, 6);
	assert_int_equal(st.written, 0);

	slowlog_pause(s, false);
	slowlog_flush(s);
	slowlog_stats(s, &st);
	assert_int_equal(st.written, 4);
	assert_int_equal(st.dropped, 6);
	assert_int_equal(st.write_errors, 0);
	char *buf = slurp(d->log, NULL);
	char *lines[16];
	assert_int_equal(split_lines(buf, lines, 16), 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(rows_of(lines[i]), i); /* the first four, in order */
	free(buf);

	/* Room again once the writer caught up. */
	submit(s, "SELECT 1", 10);
	slowlog_close(s);
}

static void submit_without_a_log_frees_the_text(void **state UNUSED)
{
	struct slowlog_rec r;
	make_rec(&r, "SELECT 1", 0);
	assert_false(slowlog_submit(NULL, &r));
	assert_null(r.text);
	slowlog_close(NULL);
}

/* ---- Close ---- */

static void close_writes_pending_records(void **state)
{
	struct dir *d = *state;
	/* Many records straight into close: the writer is still busy. */
	struct slowlog *s = open_log(d->log, 0, 0);
	for (uint64_t i = 0; i < 500; i++)
		submit(s, "SELECT * FROM t WHERE a = 1 AND b = 'x'", i);
	slowlog_close(s);
	char *buf = slurp(d->log, NULL);
	char *lines[600];
	assert_int_equal(split_lines(buf, lines, 600), 500);
	for (uint64_t i = 0; i < 500; i++)
		assert_int_equal(rows_of(lines[i]), i);
	free(buf);

	/* And those a paused writer has not touched yet. */
	char err[256] = "";
	s = slowlog_open_queue(d->log, 0, 0, 16, err, sizeof(err));
	assert_non_null(s);
	slowlog_pause(s, true);
	for (uint64_t i = 500; i < 516; i++)
		submit(s, "SELECT 1", i);
	slowlog_close(s);
	buf = slurp(d->log, NULL);
	assert_int_equal(split_lines(buf, lines, 600), 516);
	assert_int_equal(rows_of(lines[515]), 515);
	free(buf);
}

/* Records submitted from several threads at once all arrive (TSan/ASan
 * exercise the locking). */
struct producer {
	struct slowlog *s;
	uint64_t base;
};

static void *produce(void *p)
{
	struct producer *pr = p;
	for (uint64_t i = 0; i < 200; i++) {
		struct slowlog_rec r;
		make_rec(&r, "SELECT 1", pr->base + i);
		while (!slowlog_submit(pr->s, &r)) {
			make_rec(&r, "SELECT 1", pr->base + i);
			usleep(100);
		}
	}
	return NULL;
}

static void concurrent_submitters_all_get_written(void **state)
{
	struct dir *d = *state;
	char err[256] = "";
	struct slowlog *s = slowlog_open_queue(d->log, 0, 0, 8, err, sizeof(err));
	assert_non_null(s);
	pthread_t t[4];
	struct producer p[4];
	for (int i = 0; i < 4; i++) {
		p[i] = (struct producer){s, (uint64_t)i * 1000};
		assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	slowlog_flush(s);
	struct slowlog_stats st;
	slowlog_stats(s, &st);
	assert_int_equal(st.written, 800);
	slowlog_close(s);
	char *buf = slurp(d->log, NULL);
	char *lines[900];
	assert_int_equal(split_lines(buf, lines, 900), 800);
	/* Each producer's records stay in its order. */
	uint64_t next[4] = {0, 1000, 2000, 3000};
	for (size_t i = 0; i < 800; i++) {
		uint64_t r = rows_of(lines[i]);
		assert_int_equal(r, next[r / 1000]++);
	}
	free(buf);
}

/* ---- Files and errors ---- */

static void file_is_created_mode_0600(void **state)
{
	struct dir *d = *state;
	mode_t old = umask(0); /* so the mode seen is the one asked for */
	struct slowlog *s = open_log(d->log, 100, 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(d->log, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	old = umask(0);
	submit(s, "SELECT a_long_column_name, another_long_column_name FROM a_table", 0);
	submit(s, "SELECT a_long_column_name, another_long_column_name FROM a_table", 1);
	slowlog_flush(s);
	umask(old);
	struct slowlog_stats ss;
	slowlog_stats(s, &ss);
	assert_int_equal(ss.rotations, 1);
	assert_int_equal(stat(d->log, &st), 0); /* the file rotation created */
	assert_int_equal(st.st_mode & 07777, 0600);
	slowlog_close(s);
}

static void write_error_is_counted_and_the_line_dropped(void **state UNUSED)
{
	if (access("/dev/full", W_OK) != 0)
		skip();
	/* max_bytes 0: never try to rename /dev/full */
	struct slowlog *s = open_log("/dev/full", 0, 4);
	for (uint64_t i = 0; i < 3; i++)
		submit(s, "SELECT 1", i);
	slowlog_flush(s);
	struct slowlog_stats st;
	slowlog_stats(s, &st);
	assert_int_equal(st.written, 0);
	assert_int_equal(st.write_errors, 3);
	assert_int_equal(st.dropped, 3);
	assert_int_equal(st.bytes, 0);
	size_t count = 99;
	assert_null(slowlog_recent(s, 4, &count)); /* lines not written are not recent */
	assert_int_equal(count, 0);
	slowlog_close(s);
}

static void open_fails_with_a_message(void **state)
{
	struct dir *d = *state;
	char path[128], err[256] = "";
	snprintf(path, sizeof(path), "%s/no/such/dir/slow.log", d->path);
	assert_null(slowlog_open(path, 0, 0, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_null(slowlog_open(path, 0, 0, NULL, 0)); /* no room for a message is fine */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(lines_are_json_with_every_field_in_order),
	    T(odd_names_and_bytes_still_give_valid_json),
	    T(query_has_placeholders_and_no_constants),
	    T(unparsable_text_is_not_written_raw),
	    T(rotates_at_max_bytes_and_keeps_three_old_files),
	    T(line_longer_than_max_goes_alone_into_a_file),
	    T(reopening_appends_and_counts_existing_size),
	    T(recent_returns_newest_lines_in_order),
	    T(recent_is_empty_when_keep_lines_is_zero),
	    T(full_queue_drops_and_counts),
	    T(submit_without_a_log_frees_the_text),
	    T(close_writes_pending_records),
	    T(concurrent_submitters_all_get_written),
	    T(file_is_created_mode_0600),
	    T(write_error_is_counted_and_the_line_dropped),
	    T(open_fails_with_a_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
