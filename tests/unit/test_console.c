/*
 * Unit tests for the admin console (dataplane/admin/console): statement
 * parsing, and every answer decoded back from the protocol bytes and
 * checked against PgBouncer 1.18's column names, order and types, which
 * monitoring reads by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/sbuf.h"
#include "dataplane/report/console.h"
#include "dataplane/pg/pgw.h"

#define UNUSED __attribute__((unused))

/* ---- Decoding what the console wrote ---- */

#define MAX_COLS 32
#define MAX_ROWS 128

/* One result set read back: column names and types, rows (NULL cells are
 * SQL NULL) and the CommandComplete tag. */
struct result {
	int ncols;
	char *names[MAX_COLS];
	uint32_t oids[MAX_COLS];
	int nrows;
	char *cells[MAX_ROWS][MAX_COLS];
	char tag[32];
	int messages;
};

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static char *dup_n(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Decodes out as exactly RowDescription, DataRows, CommandComplete; fails
 * the test on any framing error, a DataRow whose cell count differs from
 * the RowDescription, or bytes after CommandComplete. */
static void decode(const struct sbuf *out, struct result *res)
{
	const uint8_t *buf = (const uint8_t *)out->p;
	size_t off = 0;
	struct pgw_msg m;

	memset(res, 0, sizeof(*res));
	assert_false(out->oom);
	for (;;) {
		assert_int_equal(pgw_next_msg(buf + off, out->len - off, PGW_MAX_MESSAGE, &m),
		                 PGW_OK);
		off += m.total;
		res->messages++;
		if (m.type == 'T') {
			uint32_t o = 2;
			assert_int_equal(res->messages, 1);
			res->ncols = get_u16(m.body);
			assert_true(res->ncols <= MAX_COLS);
			for (int i = 0; i < res->ncols; i++) {
				const char *name = pgw_get_str(m.body, m.len, &o);
				assert_non_null(name);
				assert_true(o + 18 <= m.len);
				res->names[i] = strdup(name);
				res->oids[i] = pgw_get_u32(m.body + o + 6);
				assert_int_equal(get_u16(m.body + o + 16), 0); /* text format */
				o += 18;
			}
			assert_int_equal(o, m.len);
		} else if (m.type == 'D') {
			uint32_t o = 2;
			assert_true(res->ncols > 0);
			assert_true(res->nrows < MAX_ROWS);
			assert_int_equal(get_u16(m.body), res->ncols);
			for (int i = 0; i < res->ncols; i++) {
				assert_true(o + 4 <= m.len);
				uint32_t n = pgw_get_u32(m.body + o);
				o += 4;
				if (n == UINT32_MAX)
					continue;
				assert_true(o + n <= m.len);
				res->cells[res->nrows][i] = dup_n(m.body + o, n);
				o += n;
			}
			assert_int_equal(o, m.len);
			res->nrows++;
		} else {
			assert_int_equal(m.type, 'C');
			assert_true(m.len >= 1 && m.len < sizeof(res->tag));
			assert_int_equal(m.body[m.len - 1], 0);
			memcpy(res->tag, m.body, m.len);
			break;
		}
	}
	assert_int_equal(off, out->len);
}

static void result_free(struct result *res)
{
	for (int i = 0; i < res->ncols; i++) {
		free(res->names[i]);
		for (int r = 0; r < res->nrows; r++)
			free(res->cells[r][i]);
	}
	memset(res, 0, sizeof(*res));
}

static int col_of(const struct result *res, const char *name)
{
	for (int i = 0; i < res->ncols; i++)
		if (strcmp(res->names[i], name) == 0)
			return i;
	fail_msg("column %s is missing", name);
	return -1;
}

/* The cell of row in the named column; NULL for SQL NULL. */
static const char *cell(const struct result *res, int row, const char *name)
{
	assert_true(row < res->nrows);
	return res->cells[row][col_of(res, name)];
}

static void assert_cell(const struct result *res, int row, const char *name, const char *want)
{
	const char *got = cell(res, row, name);
	if (!got)
		fail_msg("row %d column %s is NULL, want \"%s\"", row, name, want);
	if (strcmp(got, want) != 0)
		fail_msg("row %d column %s is \"%s\", want \"%s\"", row, name, got, want);
}

/* The columns are exactly names, in order, with the type OIDs oids. */
static void assert_columns(const struct result *res, const char *const *names, const uint32_t *oids,
                           int n)
{
	assert_int_equal(res->ncols, n);
	for (int i = 0; i < n; i++) {
		if (strcmp(res->names[i], names[i]) != 0)
			fail_msg("column %d is %s, want %s", i, res->names[i], names[i]);
		if (res->oids[i] != oids[i])
			fail_msg("column %s has type %u, want %u", names[i], res->oids[i], oids[i]);
	}
}

/* Renders SHOW what and decodes it. */
static void render(enum console_show what, const Helios__StatsReport *r, const struct cfg *c,
                   struct result *res)
{
	struct console_cmd cmd = {.verb = CONSOLE_SHOW, .what = what};
	struct sbuf out;

	sbuf_init(&out);
	assert_int_equal(console_render_show(&cmd, r, c, &out), 0);
	decode(&out, res);
	assert_string_equal(res->tag, "SHOW");
	sbuf_free(&out);
}

/* ---- Fixtures: a report and a config ---- */

static Helios__PoolStats pool_stats(const char *db, const char *user, const char *node)
{
	Helios__PoolStats p = HELIOS__POOL_STATS__INIT;
	p.database = (char *)db;
	p.user = (char *)user;
	p.node = (char *)node;
	p.mode = (char *)"transaction";
	return p;
}

static const char *config_toml = "[pool_mode]\n"
                                 "mode = \"transaction\"\n"
                                 "max_pool_size = 30\n"
                                 "min_idle = 2\n"
                                 "[[nodes]]\n"
                                 "name = \"replica1\"\n"
                                 "host = \"10.0.0.2\"\n"
                                 "role = \"replica\"\n"
                                 "[[nodes]]\n"
                                 "name = \"main\"\n"
                                 "host = \"10.0.0.1\"\n"
                                 "port = 6543\n"
                                 "[[auth.users]]\n"
                                 "name = \"alice\"\n"
                                 "password = \"s3cr3t-pw\"\n"
                                 "server_password = \"srv-s3cr3t\"\n"
                                 "[[auth.users]]\n"
                                 "name = \"bob\"\n"
                                 "password = \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";

static struct cfg *load_config(void)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_string("proxy.toml", config_toml, strlen(config_toml), &err);
	if (!c)
		fail_msg("config: %s", err.msg);
	return c;
}

/* ---- Parsing ---- */

static void assert_parses(const char *sql, enum console_verb verb, enum console_show what,
                          const char *arg)
{
	struct console_cmd cmd;
	char err[128] = "untouched";

	if (console_parse(sql, &cmd, err, sizeof(err)) != 0)
		fail_msg("\"%s\" refused: %s", sql, err);
	assert_string_equal(err, "");
	if (cmd.verb != verb)
		fail_msg("\"%s\": verb %d, want %d", sql, cmd.verb, verb);
	if (verb == CONSOLE_SHOW && cmd.what != what)
		fail_msg("\"%s\": SHOW %d, want %d", sql, cmd.what, what);
	assert_string_equal(cmd.arg, arg);
}

static void assert_refused(const char *sql, const char *want_err)
{
	struct console_cmd cmd;
	char err[160];

	if (console_parse(sql, &cmd, err, sizeof(err)) == 0)
		fail_msg("\"%s\" accepted", sql);
	if (strcmp(err, want_err) != 0)
		fail_msg("\"%s\": error \"%s\", want \"%s\"", sql, err, want_err);
}

static void test_parse_accepts_case_whitespace_and_semicolon_variants(void **state UNUSED)
{
	assert_parses("SHOW POOLS", CONSOLE_SHOW, SHOW_POOLS, "");
	assert_parses("show clients;", CONSOLE_SHOW, SHOW_CLIENTS, "");
	assert_parses("  Show\tServers  ;  ", CONSOLE_SHOW, SHOW_SERVERS, "");
	assert_parses("\n\rSHOW\nstats_totals\n", CONSOLE_SHOW, SHOW_STATS_TOTALS, "");
	assert_parses("show Stats_Averages;", CONSOLE_SHOW, SHOW_STATS_AVERAGES, "");
	assert_parses("SHOW STATS", CONSOLE_SHOW, SHOW_STATS, "");
	assert_parses("SHOW DATABASES", CONSOLE_SHOW, SHOW_DATABASES, "");
	assert_parses("SHOW CONFIG", CONSOLE_SHOW, SHOW_CONFIG, "");
	assert_parses("SHOW VERSION", CONSOLE_SHOW, SHOW_VERSION, "");
	assert_parses("SHOW LISTS", CONSOLE_SHOW, SHOW_LISTS, "");
	assert_parses("SHOW USERS", CONSOLE_SHOW, SHOW_USERS, "");
	assert_parses("SHOW HELP", CONSOLE_SHOW, SHOW_HELP, "");
	assert_parses("RELOAD", CONSOLE_RELOAD, 0, "");
	assert_parses("reload ;", CONSOLE_RELOAD, 0, "");
	assert_parses("PAUSE", CONSOLE_PAUSE, 0, "");
	assert_parses("PAUSE appdb", CONSOLE_PAUSE, 0, "appdb");
	assert_parses("pause AppDb;", CONSOLE_PAUSE, 0, "AppDb");
	assert_parses("RESUME", CONSOLE_RESUME, 0, "");
	assert_parses("resume   my-db.v2 ; ", CONSOLE_RESUME, 0, "my-db.v2");
}

static void test_parse_unquotes_double_quoted_database(void **state UNUSED)
{
	assert_parses("PAUSE \"App DB\"", CONSOLE_PAUSE, 0, "App DB");
	assert_parses("RESUME \"say \"\"hi\"\";\";", CONSOLE_RESUME, 0, "say \"hi\";");
}

static void test_parse_empty_query_is_empty_verb(void **state UNUSED)
{
	assert_parses("", CONSOLE_EMPTY, 0, "");
	assert_parses("   \n\t ", CONSOLE_EMPTY, 0, "");
	assert_parses(" ; ", CONSOLE_EMPTY, 0, "");
}

static void test_parse_refuses_unknown_commands_with_hint(void **state UNUSED)
{
	assert_refused("SHOW FOO", "unknown command: SHOW FOO; try SHOW HELP");
	assert_refused("  show foo ; ", "unknown command: show foo; try SHOW HELP");
	assert_refused("SELECT 1", "unknown command: SELECT 1; try SHOW HELP");
	assert_refused("SHOW", "unknown command: SHOW; try SHOW HELP");
	assert_refused("SHOW POOLS EXTRA", "unknown command: SHOW POOLS EXTRA; try SHOW HELP");
	assert_refused("RELOAD now", "unknown command: RELOAD now; try SHOW HELP");
	assert_refused("PAUSE a b", "unknown command: PAUSE a b; try SHOW HELP");
	assert_refused("PAUSE \"open", "unknown command: PAUSE \"open; try SHOW HELP");
	assert_refused("PAUSE \"\"", "unknown command: PAUSE \"\"; try SHOW HELP");
	assert_refused("\"SHOW\" POOLS", "unknown command: \"SHOW\" POOLS; try SHOW HELP");
	assert_refused("SHOW POOLS'", "unknown command: SHOW POOLS'; try SHOW HELP");
	assert_refused("SHOW\nFOO", "unknown command: SHOW FOO; try SHOW HELP");
}

static void test_parse_refuses_more_than_one_statement(void **state UNUSED)
{
	assert_refused("SHOW POOLS; SHOW CLIENTS",
	               "one command per query, got: SHOW POOLS; SHOW CLIENTS");
	assert_refused("SHOW POOLS;;", "one command per query, got: SHOW POOLS;;");
	assert_refused("RELOAD; PAUSE", "one command per query, got: RELOAD; PAUSE");
}

static void test_parse_database_name_limit_is_63_bytes(void **state UNUSED)
{
	char sql[128], name[80];

	memset(name, 'd', 63);
	name[63] = '\0';
	snprintf(sql, sizeof(sql), "PAUSE %s", name);
	assert_parses(sql, CONSOLE_PAUSE, 0, name);
	snprintf(sql, sizeof(sql), "RESUME \"%sd\"", name);
	assert_refused(sql, "database name too long (at most 63 bytes)");
}

static void test_parse_error_echo_is_cut_and_one_line(void **state UNUSED)
{
	struct console_cmd cmd;
	char sql[300], err[200];

	memset(sql, 'x', 200);
	memcpy(sql, "SHOW ", 5);
	sql[200] = '\0';
	assert_int_equal(console_parse(sql, &cmd, err, sizeof(err)), -1);
	assert_true(strlen(err) < 120);
	assert_non_null(strstr(err, "...; try SHOW HELP"));

	/* a cut never splits a UTF-8 character: 30 two-byte letters after "SHOW " */
	strcpy(sql, "SHOW ");
	for (int i = 0; i < 40; i++)
		strcat(sql, "\xc3\xa9");
	assert_int_equal(console_parse(sql, &cmd, err, sizeof(err)), -1);
	const char *dots = strstr(err, "...");
	assert_non_null(dots);
	assert_int_not_equal((unsigned char)dots[-1], 0xc3);

	assert_int_equal(console_parse("SHOW\x01 FOO", &cmd, err, sizeof(err)), -1);
	assert_null(strchr(err, '\x01'));
}

static void test_parse_tolerates_small_or_missing_error_buffer(void **state UNUSED)
{
	struct console_cmd cmd;
	char err[8];

	assert_int_equal(console_parse("SHOW FOO", &cmd, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(console_parse("SHOW FOO", &cmd, NULL, 0), -1);
	assert_int_equal(console_parse("SHOW POOLS; X", &cmd, NULL, 0), -1);
	assert_int_equal(console_parse(NULL, &cmd, NULL, 0), 0);
	assert_int_equal(cmd.verb, CONSOLE_EMPTY);
}

/* ---- SHOW POOLS ---- */

static const char *const pgb_pools_cols[] = {
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
    "maxwait",
    "maxwait_us",
    "pool_mode",
    "load_balance_hosts",
    "tenant", /* ours, after PgBouncer's */
};
static const uint32_t pgb_pools_oids[] = {25, 25, 23, 23, 23, 23, 23, 23, 23,
                                          23, 23, 23, 23, 23, 23, 25, 25, 25};

static void test_show_pools_has_pgbouncer_columns_and_one_row_per_pool(void **state UNUSED)
{
	Helios__PoolStats a = pool_stats("appdb", "alice", "main");
	Helios__PoolStats b = pool_stats("appdb", "bob", "main");
	Helios__PoolStats *pools[] = {&a, &b};
	Helios__StatsReport r = HELIOS__STATS_REPORT__INIT;
	struct result res;

	a.cl_active = 5, a.cl_waiting = 2, a.sv_active = 4, a.sv_idle = 1, a.sv_used = 3;
	a.sv_login = 1, a.maxwait_secs = 2.25;
	b.mode = (char *)"";
	r.pools = pools;
	r.n_pools = 2;
	struct cfg *c = load_config();

	render(SHOW_POOLS, &r, c, &res);
	assert_columns(&res, pgb_pools_cols, pgb_pools_oids, 18);
	assert_int_equal(res.nrows, 2);
	assert_cell(&res, 0, "database", "appdb");
	assert_cell(&res, 0, "user", "alice");
	assert_cell(&res, 0, "cl_active", "5");
	assert_cell(&res, 0, "cl_waiting", "2");
	assert_cell(&res, 0, "cl_active_cancel_req", "0");
	assert_cell(&res, 0, "cl_waiting_cancel_req", "0");
	assert_cell(&res, 0, "sv_active", "4");
	assert_cell(&res, 0, "sv_active_cancel", "0");
	assert_cell(&res, 0, "sv_being_canceled", "0");
	assert_cell(&res, 0, "sv_idle", "1");
	assert_cell(&res, 0, "sv_used", "3");
	assert_cell(&res, 0, "sv_tested", "0");
	assert_cell(&res, 0, "sv_login", "1");
	assert_cell(&res, 0, "maxwait", "2");
	assert_cell(&res, 0, "maxwait_us", "250000");
	assert_cell(&res, 0, "pool_mode", "transaction");
	assert_cell(&res, 1, "user", "bob");
	assert_cell(&res, 1, "cl_active", "0");
	assert_cell(&res, 1, "maxwait", "0");
	/* a pool without its own mode shows the configured one */
	assert_cell(&res, 1, "pool_mode", "transaction");
	result_free(&res);
	cfg_free(c);
}

static void test_show_pools_folds_per_node_pools_into_one_row(void **state UNUSED)
{
	Helios__PoolStats a = pool_stats("appdb", "alice", "main");
	Helios__PoolStats other = pool_stats("otherdb", "alice", "main");
	Helios__PoolStats b = pool_stats("appdb", "alice", "replica1");
	Helios__PoolStats *pools[] = {&a, &other, &b};
	Helios__StatsReport r = HELIOS__STATS_REPORT__INIT;
	struct result res;

	a.cl_active = 1, a.sv_idle = 2, a.maxwait_secs = 0.5;
	b.cl_active = 10, b.sv_idle = 20, b.maxwait_secs = 3.000001;
	r.pools = pools;
	r.n_pools = 3;

	render(SHOW_POOLS, &r, NULL, &res);
	assert_int_equal(res.nrows, 2);
	assert_cell(&res, 0, "database", "appdb");
	assert_cell(&res, 0, "cl_active", "11");
	assert_cell(&res, 0, "sv_idle", "22");
	/* the longest wait of the two */
	assert_cell(&res, 0, "maxwait", "3");
	assert_cell(&res, 0, "maxwait_us", "1");
	assert_cell(&res, 1, "database", "otherdb");
	result_free(&res);
}

/* ---- SHOW STATS ---- */

/* PgBouncer 1.25's, then total_requests (PgBouncer <= 1.7's name for
 * total_query_count, which Debian's prometheus-pgbouncer-exporter reads) */
static const char *const pgb_stats_cols[] = {
    "database",
    "total_xact_count",
    "total_query_count",
    "total_server_assignment_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "total_client_parse_count",
    "total_server_parse_count",
    "total_bind_count",
    "total_client_login_count",
    "avg_xact_count",
    "avg_query_count",
    "avg_server_assignment_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
    "avg_client_login_count",
    "total_requests",
};
static const uint32_t pgb_stats_oids[] = {25,   1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700,
                                          1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700,
                                          1700, 1700, 1700, 1700, 1700, 1700, 1700, 1700};

/* appdb over two users and two nodes, and otherdb. */
static void stats_report(Helios__StatsReport *r, Helios__PoolStats *p, Helios__PoolStats **pp)
{
	p[0] = pool_stats("appdb", "alice", "main");
	p[1] = pool_stats("otherdb", "alice", "main");
	p[2] = pool_stats("appdb", "bob", "main");
	p[3] = pool_stats("appdb", "alice", "replica1");
	for (int i = 0; i < 4; i++) {
		p[i].xact_count = 100 * (uint64_t)(i + 1);
		p[i].query_count = 300 * (uint64_t)(i + 1);
		p[i].bytes_received = 1000 * (uint64_t)(i + 1);
		p[i].bytes_sent = 5000 * (uint64_t)(i + 1);
		p[i].xact_time_secs = 1.5 * (i + 1);
		p[i].query_time_secs = 0.25 * (i + 1);
		p[i].wait_time_secs = 0.1 * (i + 1);
		p[i].server_assignments = 50 * (uint64_t)(i + 1);
		p[i].client_parses = 2 * (uint64_t)(i + 1);
		p[i].server_parses = 1 * (uint64_t)(i + 1);
		p[i].binds = 20 * (uint64_t)(i + 1);
		p[i].client_logins = 10 * (uint64_t)(i + 1);
		pp[i] = &p[i];
	}
	*r = (Helios__StatsReport)HELIOS__STATS_REPORT__INIT;
	r->pools = pp;
	r->n_pools = 4;
	r->uptime_secs = 10;
}

static void test_show_stats_sums_per_database_over_users_and_nodes(void **state UNUSED)
{
	Helios__PoolStats p[4], *pp[4];
	Helios__StatsReport r;
	struct result res;

	stats_report(&r, p, pp);
	render(SHOW_STATS, &r, NULL, &res);
	assert_columns(&res, pgb_stats_cols, pgb_stats_oids, 26);
	assert_int_equal(res.nrows, 2);
	/* appdb: pools 1, 3 and 4 */
	assert_cell(&res, 0, "database", "appdb");
	assert_cell(&res, 0, "total_xact_count", "800");
	assert_cell(&res, 0, "total_query_count", "2400");
	assert_cell(&res, 0, "total_received", "8000");
	assert_cell(&res, 0, "total_sent", "40000");
	assert_cell(&res, 0, "total_xact_time", "12000000");
	assert_cell(&res, 0, "total_query_time", "2000000");
	assert_cell(&res, 0, "total_wait_time", "800000");
	/* per second over 10 s of uptime; durations per transaction / query */
	assert_cell(&res, 0, "avg_xact_count", "80");
	assert_cell(&res, 0, "avg_query_count", "240");
	assert_cell(&res, 0, "avg_recv", "800");
	assert_cell(&res, 0, "avg_sent", "4000");
	assert_cell(&res, 0, "avg_xact_time", "15000");
	assert_cell(&res, 0, "avg_query_time", "833");
	assert_cell(&res, 0, "avg_wait_time", "80000");
	assert_cell(&res, 0, "total_server_assignment_count", "400");
	assert_cell(&res, 0, "avg_server_assignment_count", "40");
	assert_cell(&res, 0, "total_client_parse_count", "16");
	assert_cell(&res, 0, "total_server_parse_count", "8");
	assert_cell(&res, 0, "total_bind_count", "160");
	assert_cell(&res, 0, "avg_bind_count", "16");
	assert_cell(&res, 0, "total_client_login_count", "80");
	assert_cell(&res, 0, "avg_client_login_count", "8");
	assert_cell(&res, 0, "total_requests", "2400");
	assert_cell(&res, 1, "database", "otherdb");
	assert_cell(&res, 1, "total_xact_count", "200");
	assert_cell(&res, 1, "total_xact_time", "3000000");
	result_free(&res);
}

static void test_show_stats_averages_are_zero_without_uptime(void **state UNUSED)
{
	Helios__PoolStats p[4], *pp[4];
	Helios__StatsReport r;
	struct result res;

	stats_report(&r, p, pp);
	r.uptime_secs = 0;
	render(SHOW_STATS, &r, NULL, &res);
	assert_cell(&res, 0, "avg_xact_count", "0");
	assert_cell(&res, 0, "avg_recv", "0");
	assert_cell(&res, 0, "avg_wait_time", "0");
	/* a mean duration needs no clock */
	assert_cell(&res, 0, "avg_xact_time", "15000");
	result_free(&res);
}

static void test_show_stats_totals_and_averages_split_the_columns(void **state UNUSED)
{
	static const char *const names[] = {"database",           "xact_count",
	                                    "query_count",        "server_assignment_count",
	                                    "bytes_received",     "bytes_sent",
	                                    "xact_time",          "query_time",
	                                    "wait_time",          "client_parse_count",
	                                    "server_parse_count", "bind_count",
	                                    "client_login_count"};
	static const uint32_t oids[] = {25,   1700, 1700, 1700, 1700, 1700, 1700,
	                                1700, 1700, 1700, 1700, 1700, 1700};
	Helios__PoolStats p[4], *pp[4];
	Helios__StatsReport r;
	struct result res;

	stats_report(&r, p, pp);
	render(SHOW_STATS_TOTALS, &r, NULL, &res);
	assert_columns(&res, names, oids, 13);
	assert_cell(&res, 0, "xact_count", "800");
	assert_cell(&res, 0, "wait_time", "800000");
	result_free(&res);

	render(SHOW_STATS_AVERAGES, &r, NULL, &res);
	assert_columns(&res, names, oids, 13);
	assert_cell(&res, 0, "xact_count", "80");
	assert_cell(&res, 0, "query_time", "833");
	result_free(&res);
}

/* ---- SHOW CLIENTS, SHOW SERVERS ---- */

static const char *const pgb_socket_cols[] = {
    "type",         "user",       "database",   "replication",      "state",
    "addr",         "port",       "local_addr", "local_port",       "connect_time",
    "request_time", "wait",       "wait_us",    "close_needed",     "ptr",
    "link",         "remote_pid", "tls",        "application_name", "prepared_statements",
    "id",
};
static const uint32_t pgb_socket_oids[] = {25, 25, 25, 25, 25, 25, 23, 25, 23, 25, 25,
                                           23, 23, 23, 25, 25, 23, 25, 25, 23, 20};

/* alice is linked to server 4242 on main; bob waits; carol is logging in. */
struct sockets {
	Helios__ClientInfo cl[3], *clp[3];
	Helios__ServerInfo sv[2], *svp[2];
	Helios__StatsReport r;
};

static void sockets_report(struct sockets *s)
{
	static const char *const users[] = {"alice", "bob", "carol"};
	static const char *const states[] = {"idle", "paused", "login"};

	for (int i = 0; i < 3; i++) {
		s->cl[i] = (Helios__ClientInfo)HELIOS__CLIENT_INFO__INIT;
		s->cl[i].id = 7 + (uint64_t)i;
		s->cl[i].user = (char *)users[i];
		s->cl[i].database = (char *)"appdb";
		s->cl[i].state = (char *)states[i];
		s->cl[i].addr = (char *)"192.0.2.10";
		s->cl[i].port = 50000 + (uint32_t)i;
		s->cl[i].local_addr = (char *)"127.0.0.1";
		s->cl[i].local_port = 5433;
		s->cl[i].connect_time = 1714564800.0; /* 2024-05-01 12:00:00 UTC */
		s->clp[i] = &s->cl[i];
	}
	s->cl[0].request_time = 1714564861.5;
	s->cl[0].server_pid = 4242;
	s->cl[0].tls = true;
	s->cl[0].application_name = (char *)"psql";
	s->cl[0].prepared_statements = 3;
	s->cl[1].wait_secs = 1.75;

	for (int i = 0; i < 2; i++) {
		s->sv[i] = (Helios__ServerInfo)HELIOS__SERVER_INFO__INIT;
		s->sv[i].user = (char *)"alice";
		s->sv[i].database = (char *)"appdb";
		s->sv[i].node = (char *)"main";
		s->sv[i].addr = (char *)"10.0.0.1";
		s->sv[i].port = 6543;
		s->sv[i].local_addr = (char *)"10.0.0.9";
		s->sv[i].local_port = 40000 + (uint32_t)i;
		s->sv[i].connect_time = 1714564800.0;
		s->svp[i] = &s->sv[i];
	}
	s->sv[0].pid = 4242;
	s->sv[0].state = (char *)"active";
	s->sv[0].client_id = 7;
	s->sv[1].pid = 4343;
	s->sv[1].state = (char *)"login";

	s->r = (Helios__StatsReport)HELIOS__STATS_REPORT__INIT;
	s->r.client_list = s->clp;
	s->r.n_client_list = 3;
	s->r.server_list = s->svp;
	s->r.n_server_list = 2;
	s->r.clients = 3;
}

static void test_show_clients_has_pgbouncer_columns_and_states(void **state UNUSED)
{
	struct sockets s;
	struct result res;

	sockets_report(&s);
	render(SHOW_CLIENTS, &s.r, NULL, &res);
	assert_columns(&res, pgb_socket_cols, pgb_socket_oids, 21);
	assert_int_equal(res.nrows, 3);
	assert_cell(&res, 0, "type", "C");
	assert_cell(&res, 0, "user", "alice");
	assert_cell(&res, 0, "database", "appdb");
	/* PgBouncer 1.25: a logged-in client with nothing in flight is idle */
	assert_cell(&res, 0, "state", "idle");
	assert_cell(&res, 0, "replication", "none");
	assert_cell(&res, 0, "id", "7");
	assert_cell(&res, 0, "prepared_statements", "3");
	assert_cell(&res, 0, "addr", "192.0.2.10");
	assert_cell(&res, 0, "port", "50000");
	assert_cell(&res, 0, "local_addr", "127.0.0.1");
	assert_cell(&res, 0, "local_port", "5433");
	assert_cell(&res, 0, "connect_time", "2024-05-01 12:00:00 UTC");
	assert_cell(&res, 0, "request_time", "2024-05-01 12:01:01 UTC");
	assert_cell(&res, 0, "ptr", "c7");
	assert_cell(&res, 0, "link", "s4242@main");
	assert_cell(&res, 0, "tls", "TLS");
	assert_cell(&res, 0, "application_name", "psql");
	assert_cell(&res, 1, "state", "waiting");
	assert_cell(&res, 1, "wait", "1");
	assert_cell(&res, 1, "wait_us", "750000");
	assert_cell(&res, 1, "link", "");
	assert_cell(&res, 1, "tls", "");
	/* request_time starts at the connect time, as in PgBouncer */
	assert_cell(&res, 1, "request_time", "2024-05-01 12:00:00 UTC");
	assert_cell(&res, 2, "state", "login");
	result_free(&res);
}

static void test_show_servers_links_clients_and_maps_states(void **state UNUSED)
{
	struct sockets s;
	struct result res;

	sockets_report(&s);
	render(SHOW_SERVERS, &s.r, NULL, &res);
	assert_columns(&res, pgb_socket_cols, pgb_socket_oids, 21);
	assert_int_equal(res.nrows, 2);
	assert_cell(&res, 0, "type", "S");
	assert_cell(&res, 0, "state", "active");
	assert_cell(&res, 0, "addr", "10.0.0.1");
	assert_cell(&res, 0, "port", "6543");
	assert_cell(&res, 0, "ptr", "s4242@main");
	assert_cell(&res, 0, "link", "c7");
	assert_cell(&res, 0, "remote_pid", "4242");
	/* the linked client's application_name */
	assert_cell(&res, 0, "application_name", "psql");
	/* PgBouncer calls a server still logging in "new" */
	assert_cell(&res, 1, "state", "new");
	assert_cell(&res, 1, "link", "");
	assert_cell(&res, 1, "application_name", "");
	result_free(&res);
}

/* ---- SHOW DATABASES ---- */

static void test_show_databases_uses_primary_node_and_pool_settings(void **state UNUSED)
{
	static const char *const names[] = {
	    "name",
	    "host",
	    "port",
	    "database",
	    "force_user",
	    "pool_size",
	    "min_pool_size",
	    "reserve_pool_size",
	    "server_lifetime",
	    "pool_mode",
	    "load_balance_hosts",
	    "max_connections",
	    "current_connections",
	    "max_client_connections",
	    "current_client_connections",
	    "paused",
	    "disabled",
	    "reserve_pool", /* PgBouncer <= 1.22's name, read by Debian's exporter */
	};
	static const uint32_t oids[] = {25, 25, 23, 25, 25, 23, 23, 23, 23,
	                                25, 25, 23, 23, 23, 23, 23, 23, 23};
	Helios__PoolStats a = pool_stats("appdb", "alice", "main");
	Helios__PoolStats b = pool_stats("appdb", "bob", "replica1");
	Helios__PoolStats o = pool_stats("otherdb", "bob", "main");
	Helios__PoolStats *pools[] = {&a, &b, &o};
	char *paused[] = {(char *)"otherdb"};
	Helios__StatsReport r = HELIOS__STATS_REPORT__INIT;
	struct result res;
	struct cfg *c = load_config();

	char *disabled[] = {(char *)"otherdb"};

	a.sv_active = 2, a.sv_idle = 1, a.cl_active = 3;
	b.sv_used = 1, b.sv_login = 1, b.cl_waiting = 1;
	r.pools = pools;
	r.n_pools = 3;
	r.paused = paused;
	r.n_paused = 1;
	r.disabled = disabled;
	r.n_disabled = 1;

	render(SHOW_DATABASES, &r, c, &res);
	assert_columns(&res, names, oids, 18);
	assert_int_equal(res.nrows, 2);
	assert_cell(&res, 0, "name", "appdb");
	/* the primary, though it is the second node */
	assert_cell(&res, 0, "host", "10.0.0.1");
	assert_cell(&res, 0, "port", "6543");
	assert_cell(&res, 0, "database", "appdb");
	assert_null(cell(&res, 0, "force_user"));
	assert_cell(&res, 0, "pool_size", "30");
	assert_cell(&res, 0, "min_pool_size", "2");
	assert_cell(&res, 0, "reserve_pool", "0");
	assert_cell(&res, 0, "reserve_pool_size", "0");
	assert_cell(&res, 0, "server_lifetime", "3600");
	/* PgBouncer: NULL when the database inherits the global mode */
	assert_null(cell(&res, 0, "pool_mode"));
	assert_cell(&res, 0, "max_connections", "0");
	assert_cell(&res, 0, "current_connections", "5");
	assert_cell(&res, 0, "current_client_connections", "4");
	assert_cell(&res, 0, "paused", "0");
	assert_cell(&res, 0, "disabled", "0");
	assert_cell(&res, 1, "name", "otherdb");
	assert_cell(&res, 1, "paused", "1");
	assert_cell(&res, 1, "disabled", "1");
	result_free(&res);

	/* "*" pauses everything */
	paused[0] = (char *)"*";
	render(SHOW_DATABASES, &r, c, &res);
	assert_cell(&res, 0, "paused", "1");
	result_free(&res);
	cfg_free(c);
}

/* ---- SHOW CONFIG ---- */

static void test_show_config_masks_secrets_and_marks_restart_keys(void **state UNUSED)
{
	static const char *const names[] = {"key", "value", "default", "changeable"};
	static const uint32_t oids[] = {25, 25, 25, 25};
	struct cfg *c = load_config();
	struct console_cmd cmd = {.verb = CONSOLE_SHOW, .what = SHOW_CONFIG};
	struct sbuf out;
	struct result res;
	size_t nkeys;
	const struct cfg_key *keys = cfg_key_table(&nkeys);

	sbuf_init(&out);
	assert_int_equal(console_render_show(&cmd, NULL, c, &out), 0);
	/* no secret anywhere in the bytes, in any column */
	assert_null(memmem(out.p, out.len, "s3cr3t", 6));
	assert_null(memmem(out.p, out.len, "md5aaaa", 7));
	decode(&out, &res);
	sbuf_free(&out);
	assert_columns(&res, names, oids, 4);

	int rows = 0;
	for (size_t i = 0; i < nkeys; i++) {
		const struct cfg_key *k = &keys[i];
		char name[128];
		int row = -1;
		if (strcmp(k->section, "nodes") == 0 || strcmp(k->section, "auth.users") == 0 ||
		    strcmp(k->section, "schema_routes") == 0 ||
		    strcmp(k->section, "cache.tables") == 0 || strcmp(k->section, "tenants") == 0 ||
		    strcmp(k->section, "rewrite_rules") == 0 ||
		    strcmp(k->section, "auth.rules") == 0 || strcmp(k->section, "databases") == 0 ||
		    strcmp(k->section, "users") == 0 || strcmp(k->section, "plugins") == 0)
			continue;
		snprintf(name, sizeof(name), "%s%s%s", k->section, k->section[0] ? "." : "",
		         k->name);
		for (int j = 0; j < res.nrows; j++)
			if (strcmp(cell(&res, j, "key"), name) == 0)
				row = j;
		if (row < 0)
			fail_msg("key %s is missing", name);
		rows++;
		assert_cell(&res, row, "changeable", (k->flags & CFG_KEY_RESTART) ? "no" : "yes");
		if (k->def)
			assert_cell(&res, row, "default", k->def);
		const char *v = cell(&res, row, "value");
		assert_non_null(v);
		if (k->flags & CFG_KEY_SECRET)
			assert_true(v[0] == '\0' || strcmp(v, "********") == 0);
	}
	/* array tables are not rows */
	assert_int_equal(res.nrows, rows);

	/* values are plain text as in PgBouncer, not TOML */
	for (int j = 0; j < res.nrows; j++) {
		if (strcmp(cell(&res, j, "key"), "pool_mode.mode") == 0)
			assert_cell(&res, j, "value", "transaction");
		if (strcmp(cell(&res, j, "key"), "pool_mode.max_pool_size") == 0)
			assert_cell(&res, j, "value", "30");
		if (strcmp(cell(&res, j, "key"), "pool_mode.reset_query") == 0)
			assert_cell(&res, j, "value", "DISCARD ALL");
		if (strcmp(cell(&res, j, "key"), "listen_address") == 0)
			assert_cell(&res, j, "changeable", "no");
	}
	result_free(&res);
	cfg_free(c);
}

/* ---- Small answers ---- */

static void test_show_version_names_heliosproxy(void **state UNUSED)
{
	static const char *const names[] = {"version"};
	static const uint32_t oids[] = {25};
	struct result res;

	render(SHOW_VERSION, NULL, NULL, &res);
	assert_columns(&res, names, oids, 1);
	assert_int_equal(res.nrows, 1);
	assert_cell(&res, 0, "version", "HeliosProxy " HELIOS_VERSION);
	result_free(&res);
}

static void test_show_lists_and_users_follow_pgbouncer(void **state UNUSED)
{
	struct sockets s;
	Helios__PoolStats a = pool_stats("appdb", "alice", "main");
	Helios__PoolStats b = pool_stats("appdb", "alice", "replica1");
	Helios__PoolStats *pools[] = {&a, &b};
	struct cfg *c = load_config();
	struct result res;

	sockets_report(&s);
	a.sv_active = 1, b.sv_idle = 2;
	s.r.pools = pools;
	s.r.n_pools = 2;
	render(SHOW_LISTS, &s.r, c, &res);
	assert_string_equal(res.names[0], "list");
	assert_string_equal(res.names[1], "items");
	assert_int_equal(res.oids[1], 23);
	assert_int_equal(res.nrows, 12);
	assert_cell(&res, 0, "list", "databases");
	assert_cell(&res, 0, "items", "1");
	assert_cell(&res, 1, "items", "2"); /* users */
	assert_cell(&res, 2, "items", "1"); /* pools: (appdb, alice) */
	assert_cell(&res, 4, "list", "used_clients");
	assert_cell(&res, 4, "items", "3");
	assert_cell(&res, 5, "items", "1"); /* login_clients */
	assert_cell(&res, 7, "list", "used_servers");
	assert_cell(&res, 7, "items", "3");
	result_free(&res);

	render(SHOW_USERS, &s.r, c, &res);
	static const char *const user_cols[] = {"name",
	                                        "pool_size",
	                                        "reserve_pool_size",
	                                        "pool_mode",
	                                        "max_user_connections",
	                                        "current_connections",
	                                        "max_user_client_connections",
	                                        "current_client_connections"};
	static const uint32_t user_oids[] = {25, 23, 23, 25, 23, 23, 23, 23};
	assert_columns(&res, user_cols, user_oids, 8);
	assert_int_equal(res.nrows, 2);
	assert_cell(&res, 0, "name", "alice");
	assert_null(cell(&res, 0, "pool_mode"));
	assert_cell(&res, 0, "current_connections", "3");
	assert_cell(&res, 1, "name", "bob");
	assert_cell(&res, 1, "current_connections", "0");
	result_free(&res);
	cfg_free(c);
}

static void test_show_help_is_a_result_set_listing_commands(void **state UNUSED)
{
	struct result res;
	bool pause = false, pools = false;

	render(SHOW_HELP, NULL, NULL, &res);
	assert_int_equal(res.ncols, 1);
	assert_int_equal(res.oids[0], 25);
	for (int i = 0; i < res.nrows; i++) {
		pause = pause || strstr(res.cells[i][0], "PAUSE") != NULL;
		pools = pools || strstr(res.cells[i][0], "POOLS") != NULL;
	}
	assert_true(pause && pools);
	result_free(&res);
}

static void test_every_show_is_well_formed_with_or_without_report_and_config(void **state UNUSED)
{
	struct sockets s;
	Helios__PoolStats p[4], *pp[4];
	Helios__StatsReport stats;
	struct cfg *c = load_config();
	struct result res;

	sockets_report(&s);
	stats_report(&stats, p, pp);
	s.r.pools = stats.pools;
	s.r.n_pools = stats.n_pools;
	for (int w = SHOW_POOLS; w <= SHOW_HELP; w++) {
		if (w == SHOW_FDS)
			continue; /* refused by the console thread: not a result set */
		render((enum console_show)w, &s.r, c, &res);
		assert_true(res.ncols > 0);
		result_free(&res);
		render((enum console_show)w, NULL, NULL, &res);
		assert_true(res.ncols > 0);
		result_free(&res);
		assert_string_not_equal(console_show_name((enum console_show)w), "?");
	}
	cfg_free(c);
}

/* ---- Issue 19: PgBouncer 1.25 parity ---- */

static void test_show_pools_has_one_row_per_database_and_user_across_tenants(void **state UNUSED)
{
	Helios__PoolStats a = pool_stats("appdb", "alice", "main");
	Helios__PoolStats b = pool_stats("appdb", "alice", "main");
	Helios__PoolStats c2 = pool_stats("appdb", "alice", "replica1");
	Helios__PoolStats d = pool_stats("appdb", "bob", "main");
	Helios__PoolStats *pools[] = {&a, &b, &c2, &d};
	Helios__StatsReport r = HELIOS__STATS_REPORT__INIT;
	struct result res;

	a.tenant = (char *)"ta", a.cl_active = 1, a.sv_active = 1;
	b.tenant = (char *)"tb", b.cl_active = 2, b.sv_idle = 4;
	c2.tenant = (char *)"ta", c2.cl_waiting = 3;
	d.tenant = (char *)"";
	r.pools = pools;
	r.n_pools = 4;
	render(SHOW_POOLS, &r, NULL, &res);
	/* pgbouncer_exporter fails a scrape on two rows with the same labels */
	assert_int_equal(res.nrows, 2);
	for (int i = 0; i < res.nrows; i++)
		for (int j = i + 1; j < res.nrows; j++)
			assert_false(strcmp(cell(&res, i, "database"), cell(&res, j, "database")) ==
			                 0 &&
			             strcmp(cell(&res, i, "user"), cell(&res, j, "user")) == 0);
	assert_cell(&res, 0, "user", "alice");
	assert_cell(&res, 0, "cl_active", "3");
	assert_cell(&res, 0, "cl_waiting", "3");
	assert_cell(&res, 0, "sv_active", "1");
	assert_cell(&res, 0, "sv_idle", "4");
	assert_cell(&res, 0, "tenant", "ta,tb");
	assert_null(cell(&res, 0, "load_balance_hosts"));
	assert_cell(&res, 1, "user", "bob");
	assert_cell(&res, 1, "tenant", "");
	result_free(&res);
}

static void test_parse_pgbouncer_process_commands(void **state UNUSED)
{
	struct console_cmd cmd;
	char err[160];

	assert_parses("KILL", CONSOLE_KILL, 0, "");
	assert_parses("kill appdb;", CONSOLE_KILL, 0, "appdb");
	assert_parses("RECONNECT", CONSOLE_RECONNECT, 0, "");
	assert_parses("RECONNECT \"App DB\"", CONSOLE_RECONNECT, 0, "App DB");
	assert_parses("DISABLE appdb", CONSOLE_DISABLE, 0, "appdb");
	assert_parses("enable appdb", CONSOLE_ENABLE, 0, "appdb");
	assert_parses("WAIT_CLOSE", CONSOLE_WAIT_CLOSE, 0, "");
	assert_parses("wait_close appdb", CONSOLE_WAIT_CLOSE, 0, "appdb");
	assert_parses("SUSPEND", CONSOLE_SUSPEND, 0, "");
	assert_parses("SHOW TOTALS", CONSOLE_SHOW, SHOW_TOTALS, "");
	assert_parses("show state", CONSOLE_SHOW, SHOW_STATE, "");
	assert_parses("SHOW MEM", CONSOLE_SHOW, SHOW_MEM, "");
	assert_parses("SHOW SOCKETS", CONSOLE_SHOW, SHOW_SOCKETS, "");
	assert_parses("SHOW ACTIVE_SOCKETS", CONSOLE_SHOW, SHOW_ACTIVE_SOCKETS, "");
	assert_parses("SHOW FDS", CONSOLE_SHOW, SHOW_FDS, "");

	assert_int_equal(console_parse("KILL_CLIENT 1234", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.verb, CONSOLE_KILL_CLIENT);
	assert_int_equal(cmd.client_id, 1234);
	/* the ptr column's form works too */
	assert_int_equal(console_parse("kill_client c77;", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.client_id, 77);
	assert_refused("KILL_CLIENT x",
	               "KILL_CLIENT wants a client id from SHOW CLIENTS (column id)");
	assert_refused("KILL_CLIENT 0",
	               "KILL_CLIENT wants a client id from SHOW CLIENTS (column id)");
	assert_refused("KILL_CLIENT 99999999999999999999999",
	               "KILL_CLIENT wants a client id from SHOW CLIENTS (column id)");
	assert_refused("KILL_CLIENT", "unknown command: KILL_CLIENT; try SHOW HELP");

	assert_int_equal(console_parse("SHUTDOWN", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.verb, CONSOLE_SHUTDOWN);
	assert_int_equal(cmd.shutdown, SHUTDOWN_NOW);
	assert_int_equal(console_parse("shutdown wait_for_servers", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.shutdown, SHUTDOWN_WAIT_FOR_SERVERS);
	assert_int_equal(console_parse("SHUTDOWN WAIT_FOR_CLIENTS;", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.shutdown, SHUTDOWN_WAIT_FOR_CLIENTS);
	assert_refused("SHUTDOWN NOW", "unknown command: SHUTDOWN NOW; try SHOW HELP");

	/* DISABLE and ENABLE need a database; the others do not */
	assert_refused("DISABLE", "unknown command: DISABLE; try SHOW HELP");
	assert_refused("ENABLE", "unknown command: ENABLE; try SHOW HELP");
	assert_refused("KILL 'appdb'", "unknown command: KILL 'appdb'; try SHOW HELP");
	assert_refused("RECONNECT a b", "unknown command: RECONNECT a b; try SHOW HELP");
}

static void test_parse_set_takes_word_number_or_quoted_value(void **state UNUSED)
{
	struct console_cmd cmd;
	char err[160];

	assert_int_equal(console_parse("SET default_pool_size = 40", &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.verb, CONSOLE_SET);
	assert_string_equal(cmd.arg, "default_pool_size");
	assert_string_equal(cmd.value, "40");
	assert_int_equal(console_parse("set pool_mode.mode='session';", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.arg, "pool_mode.mode");
	assert_string_equal(cmd.value, "session");
	assert_int_equal(
	    console_parse("SET admin_users = 'alice, o''brien'", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.value, "alice, o'brien");
	assert_int_equal(console_parse("SET stats_users = ''", &cmd, err, sizeof(err)), 0);
	assert_string_equal(cmd.value, "");
	assert_refused("SET default_pool_size 40",
	               "unknown command: SET default_pool_size 40; try SHOW HELP");
	assert_refused("SET a = = b", "unknown command: SET a = = b; try SHOW HELP");
	assert_refused("SET a = \"b\"", "unknown command: SET a = \"b\"; try SHOW HELP");
	assert_refused("SET a = 'open", "unknown command: SET a = 'open; try SHOW HELP");
}

static void test_set_maps_pgbouncer_names_onto_keys(void **state UNUSED)
{
	int factor = 0;

	assert_string_equal(console_set_key("default_pool_size", &factor),
	                    "pool_mode.max_pool_size");
	assert_int_equal(factor, 1);
	assert_string_equal(console_set_key("reserve_pool_timeout", &factor),
	                    "pool_mode.reserve_pool_timeout_ms");
	assert_int_equal(factor, 1000);
	assert_string_equal(console_set_key("POOL_MODE", &factor), "pool_mode.mode");
	assert_string_equal(console_set_key("query_timeout", &factor),
	                    "pool_mode.query_timeout_secs");
	/* a HeliosProxy key is itself */
	assert_string_equal(console_set_key("pool_mode.min_idle", &factor), "pool_mode.min_idle");
	assert_int_equal(factor, 1);
	assert_null(console_set_key("dns_max_ttl", &factor));
	assert_null(console_set_key("no_such_key", &factor));
}

static void test_stats_users_may_show_but_not_act(void **state UNUSED)
{
	struct console_cmd cmd;
	char err[160];
	static const char *const allowed[] = {"SHOW POOLS", "SHOW STATS", "SHOW CONFIG", ""};
	static const char *const refused[] = {
	    "SHOW FDS",      "RELOAD",   "PAUSE",     "RESUME",     "KILL db",
	    "KILL_CLIENT 3", "SHUTDOWN", "SET a = 1", "DISABLE db", "RECONNECT"};

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		assert_int_equal(console_parse(allowed[i], &cmd, err, sizeof(err)), 0);
		assert_true(console_read_only(&cmd));
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(console_parse(refused[i], &cmd, err, sizeof(err)), 0);
		if (console_read_only(&cmd))
			fail_msg("%s is allowed to stats_users", refused[i]);
	}
}

static void test_show_totals_state_mem_and_sockets(void **state UNUSED)
{
	Helios__PoolStats p[4], *pp[4];
	Helios__StatsReport stats;
	struct sockets s;
	struct result res;
	char *paused[] = {(char *)"*"};

	stats_report(&stats, p, pp);
	render(SHOW_TOTALS, &stats, NULL, &res);
	assert_string_equal(res.names[0], "name");
	assert_string_equal(res.names[1], "value");
	assert_int_equal(res.nrows, 24);
	/* every database: 100+200+300+400 */
	assert_cell(&res, 0, "name", "total_xact_count");
	assert_cell(&res, 0, "value", "1000");
	assert_cell(&res, 12, "name", "avg_xact_count");
	assert_cell(&res, 12, "value", "100");
	result_free(&res);

	render(SHOW_STATE, &stats, NULL, &res);
	assert_cell(&res, 0, "key", "active");
	assert_cell(&res, 0, "value", "yes");
	assert_cell(&res, 1, "key", "paused");
	assert_cell(&res, 1, "value", "no");
	result_free(&res);
	stats.paused = paused;
	stats.n_paused = 1;
	render(SHOW_STATE, &stats, NULL, &res);
	assert_cell(&res, 0, "value", "no");
	assert_cell(&res, 1, "value", "yes");
	result_free(&res);

	render(SHOW_MEM, &stats, NULL, &res);
	assert_string_equal(res.names[0], "name");
	assert_string_equal(res.names[4], "memtotal");
	assert_cell(&res, 2, "name", "pool_cache");
	assert_cell(&res, 2, "used", "4");
	result_free(&res);

	sockets_report(&s);
	render(SHOW_SOCKETS, &s.r, NULL, &res);
	assert_columns(&res, pgb_socket_cols, pgb_socket_oids, 21);
	assert_int_equal(res.nrows, 5); /* 3 clients, 2 servers */
	assert_cell(&res, 0, "type", "C");
	assert_cell(&res, 4, "type", "S");
	result_free(&res);
	/* the idle client (alice) is left out */
	render(SHOW_ACTIVE_SOCKETS, &s.r, NULL, &res);
	assert_int_equal(res.nrows, 4);
	assert_cell(&res, 0, "user", "bob");
	result_free(&res);
}

static void test_show_databases_lists_database_entries(void **state UNUSED)
{
	static const char *toml = "[pool_mode]\nmax_pool_size = 30\nreserve_pool_size = 2\n"
	                          "[[nodes]]\nname = \"replica1\"\nhost = \"10.0.0.2\"\n"
	                          "role = \"replica\"\n"
	                          "[[nodes]]\nname = \"main\"\nhost = \"10.0.0.1\"\nport = 6543\n"
	                          "[[databases]]\nname = \"app\"\nnodes = [\"replica1\"]\n"
	                          "dbname = \"appdb_real\"\nuser = \"svc\"\npassword = \"pw\"\n"
	                          "pool_size = 7\npool_mode = \"session\"\n"
	                          "max_db_connections = 9\nreserve_pool = 1\n"
	                          "[[databases]]\nname = \"plain\"\n"
	                          "[[databases]]\nname = \"*\"\n"
	                          "[[auth.users]]\nname = \"alice\"\npassword = \"pw\"\n";
	struct cfg_error err;
	struct cfg *c = cfg_load_string("proxy.toml", toml, strlen(toml), &err);
	Helios__PoolStats a = pool_stats("app", "alice", "replica1");
	Helios__PoolStats o = pool_stats("other", "alice", "main");
	Helios__PoolStats *pools[] = {&a, &o};
	Helios__StatsReport r = HELIOS__STATS_REPORT__INIT;
	struct result res;

	if (!c)
		fail_msg("config: %s", err.msg);
	a.sv_active = 2;
	r.pools = pools;
	r.n_pools = 2;
	render(SHOW_DATABASES, &r, c, &res);
	/* the entries (not "*"), then "other", served through "*" */
	assert_int_equal(res.nrows, 3);
	assert_cell(&res, 0, "name", "app");
	assert_cell(&res, 0, "host", "10.0.0.2");
	assert_cell(&res, 0, "database", "appdb_real");
	assert_cell(&res, 0, "force_user", "svc");
	assert_cell(&res, 0, "pool_size", "7");
	assert_cell(&res, 0, "reserve_pool_size", "1");
	assert_cell(&res, 0, "pool_mode", "session");
	assert_cell(&res, 0, "max_connections", "9");
	assert_cell(&res, 0, "current_connections", "2");
	assert_cell(&res, 1, "name", "plain");
	assert_cell(&res, 1, "database", "plain");
	assert_null(cell(&res, 1, "force_user"));
	assert_cell(&res, 1, "pool_size", "30");
	assert_cell(&res, 1, "reserve_pool_size", "2");
	assert_null(cell(&res, 1, "pool_mode"));
	assert_cell(&res, 2, "name", "other");
	assert_cell(&res, 2, "host", "10.0.0.1");
	result_free(&res);
	cfg_free(c);
}

static void test_render_show_refuses_non_show_commands(void **state UNUSED)
{
	struct console_cmd cmd = {.verb = CONSOLE_RELOAD};
	struct sbuf out;

	sbuf_init(&out);
	assert_int_equal(console_render_show(&cmd, NULL, NULL, &out), -1);
	assert_int_equal(out.len, 0);
	sbuf_free(&out);
}

/* ---- Done and error messages ---- */

static void assert_complete(enum console_verb verb, const char *tag)
{
	struct console_cmd cmd = {.verb = verb};
	struct sbuf out;
	struct pgw_msg m;

	sbuf_init(&out);
	console_render_done(&cmd, &out);
	assert_false(out.oom);
	assert_int_equal(pgw_next_msg((uint8_t *)out.p, out.len, 1024, &m), PGW_OK);
	assert_int_equal(m.total, out.len);
	assert_int_equal(m.type, 'C');
	assert_int_equal(m.len, strlen(tag) + 1);
	assert_string_equal((const char *)m.body, tag);
	sbuf_free(&out);
}

static void test_done_gives_command_complete_tags_and_empty_query(void **state UNUSED)
{
	struct console_cmd cmd = {.verb = CONSOLE_EMPTY};
	struct sbuf out;

	assert_complete(CONSOLE_RELOAD, "RELOAD");
	assert_complete(CONSOLE_PAUSE, "PAUSE");
	assert_complete(CONSOLE_RESUME, "RESUME");
	assert_complete(CONSOLE_KILL, "KILL");
	assert_complete(CONSOLE_KILL_CLIENT, "KILL_CLIENT");
	assert_complete(CONSOLE_RECONNECT, "RECONNECT");
	assert_complete(CONSOLE_DISABLE, "DISABLE");
	assert_complete(CONSOLE_ENABLE, "ENABLE");
	assert_complete(CONSOLE_WAIT_CLOSE, "WAIT_CLOSE");
	assert_complete(CONSOLE_SHUTDOWN, "SHUTDOWN");
	assert_complete(CONSOLE_SET, "SET");

	sbuf_init(&out);
	console_render_done(&cmd, &out);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.p, "I\0\0\0\4", 5);
	sbuf_free(&out);
}

static void test_error_builder_gives_error_response_with_sqlstate(void **state UNUSED)
{
	struct sbuf out;
	struct pgw_msg m;

	sbuf_init(&out);
	console_render_error(CONSOLE_SQLSTATE_BAD_COMMAND, "unknown command: SHOW FOO", &out);
	assert_false(out.oom);
	assert_int_equal(pgw_next_msg((uint8_t *)out.p, out.len, 1024, &m), PGW_OK);
	assert_int_equal(m.total, out.len);
	assert_int_equal(m.type, 'E');
	assert_string_equal(pgw_error_field(m.body, m.len, 'S'), "ERROR");
	assert_string_equal(pgw_error_field(m.body, m.len, 'V'), "ERROR");
	assert_string_equal(pgw_error_field(m.body, m.len, 'C'), "42601");
	assert_string_equal(pgw_error_field(m.body, m.len, 'M'), "unknown command: SHOW FOO");
	/* the field list ends with its terminator */
	assert_int_equal(m.body[m.len - 1], 0);

	/* appends after what is already there */
	size_t first = out.len;
	console_render_error("55000", "pooler is not paused", &out);
	assert_int_equal(pgw_next_msg((uint8_t *)out.p + first, out.len - first, 1024, &m), PGW_OK);
	assert_string_equal(pgw_error_field(m.body, m.len, 'C'), "55000");
	sbuf_free(&out);
}

static void test_error_builder_replaces_malformed_sqlstate(void **state UNUSED)
{
	static const char *const bad[] = {NULL, "", "4260", "426011", "42p01", "42 01"};
	struct sbuf out;
	struct pgw_msg m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sbuf_init(&out);
		console_render_error(bad[i], NULL, &out);
		assert_int_equal(pgw_next_msg((uint8_t *)out.p, out.len, 1024, &m), PGW_OK);
		assert_string_equal(pgw_error_field(m.body, m.len, 'C'), "XX000");
		assert_string_equal(pgw_error_field(m.body, m.len, 'M'), "");
		sbuf_free(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts_case_whitespace_and_semicolon_variants),
	    cmocka_unit_test(test_parse_unquotes_double_quoted_database),
	    cmocka_unit_test(test_parse_empty_query_is_empty_verb),
	    cmocka_unit_test(test_parse_refuses_unknown_commands_with_hint),
	    cmocka_unit_test(test_parse_refuses_more_than_one_statement),
	    cmocka_unit_test(test_parse_database_name_limit_is_63_bytes),
	    cmocka_unit_test(test_parse_error_echo_is_cut_and_one_line),
	    cmocka_unit_test(test_parse_tolerates_small_or_missing_error_buffer),
	    cmocka_unit_test(test_show_pools_has_pgbouncer_columns_and_one_row_per_pool),
	    cmocka_unit_test(test_show_pools_folds_per_node_pools_into_one_row),
	    cmocka_unit_test(test_show_stats_sums_per_database_over_users_and_nodes),
	    cmocka_unit_test(test_show_stats_averages_are_zero_without_uptime),
	    cmocka_unit_test(test_show_stats_totals_and_averages_split_the_columns),
	    cmocka_unit_test(test_show_clients_has_pgbouncer_columns_and_states),
	    cmocka_unit_test(test_show_servers_links_clients_and_maps_states),
	    cmocka_unit_test(test_show_databases_uses_primary_node_and_pool_settings),
	    cmocka_unit_test(test_show_config_masks_secrets_and_marks_restart_keys),
	    cmocka_unit_test(test_show_version_names_heliosproxy),
	    cmocka_unit_test(test_show_lists_and_users_follow_pgbouncer),
	    cmocka_unit_test(test_show_help_is_a_result_set_listing_commands),
	    cmocka_unit_test(test_every_show_is_well_formed_with_or_without_report_and_config),
	    cmocka_unit_test(test_render_show_refuses_non_show_commands),
	    cmocka_unit_test(test_done_gives_command_complete_tags_and_empty_query),
	    cmocka_unit_test(test_error_builder_gives_error_response_with_sqlstate),
	    cmocka_unit_test(test_error_builder_replaces_malformed_sqlstate),
	    cmocka_unit_test(test_show_pools_has_one_row_per_database_and_user_across_tenants),
	    cmocka_unit_test(test_parse_pgbouncer_process_commands),
	    cmocka_unit_test(test_parse_set_takes_word_number_or_quoted_value),
	    cmocka_unit_test(test_set_maps_pgbouncer_names_onto_keys),
	    cmocka_unit_test(test_stats_users_may_show_but_not_act),
	    cmocka_unit_test(test_show_totals_state_mem_and_sockets),
	    cmocka_unit_test(test_show_databases_lists_database_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
