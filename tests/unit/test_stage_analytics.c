/*
 * Unit tests for query analytics as an event subscriber
 * (dataplane/pipeline/analytics.c), driven by the query events conn/
 * publishes for fake requests: a completed statement updates its
 * fingerprint's statistics (calls, rows, time, database, user, node, the
 * normalised text), an extended batch is recorded under its first
 * statement at its Sync's completion, a statement that ended in an error
 * is counted as an error, a lone Sync records nothing, and a client of a
 * pipeline without analytics records nothing. Links no conn/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"

#define UNUSED __attribute__((unused))

/* The statement analysis analytics asks the router for (pipeline/route.h),
 * here straight from the analysis cache: the router's file would bring the
 * pools in. */
static struct an_cache *analyses;
const struct an_result *route_analysis(const struct cfg *c, const char *sql, size_t len);
const struct an_result *route_analysis(const struct cfg *c UNUSED, const char *sql, size_t len)
{
	if (!analyses)
		analyses = an_cache_new(64, 64 * 2048);
	return analyses ? an_cache_get(analyses, sql, len) : NULL;
}

static struct cfg *cfg_on, *cfg_off;
static struct snap snap_on, snap_off;
static struct pipeline *pipe_on, *pipe_off;

static struct cfg *load(const char *text)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_string("test", text, strlen(text), &err);
	if (!c)
		fprintf(stderr, "config: %s\n", err.msg);
	return c;
}

static int setup(void **state UNUSED)
{
	cfg_on = load("[[nodes]]\nname = \"main\"\nhost = \"db\"\n"
	              "[pool_mode]\nmode = \"transaction\"\n[analytics]\nenabled = true\n");
	cfg_off = load("[[nodes]]\nname = \"main\"\nhost = \"db\"\n"
	               "[pool_mode]\nmode = \"transaction\"\n");
	if (!cfg_on || !cfg_off)
		return -1;
	snap_on.cfg = cfg_on;
	snap_off.cfg = cfg_off;
	const struct pipe_stage *st[] = {&stage_analytics};
	pipe_on = pipe_build(cfg_on, st, 1);
	pipe_off = pipe_build(cfg_off, st, 1);
	return pipe_on && pipe_off ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	pipe_free(pipe_on);
	pipe_free(pipe_off);
	analytics_worker_exit(NULL);
	an_cache_free(analyses);
	cfg_free(cfg_on);
	cfg_free(cfg_off);
	return 0;
}

static void fake_req(struct req *r, struct pipe_client *pc, const struct snap *sn)
{
	memset(r, 0, sizeof(*r));
	r->snap = sn;
	r->database = "appdb";
	r->user = "alice";
	r->client_id = 7;
	r->mode = PIPE_MODE_TXN;
	r->has_server = true;
	r->tx_status = 'I';
	r->pc = pc;
	r->node = 0;
	r->whole = true;
}

static void start(const struct pipeline *p, struct pipe_client *pc, uint8_t type, const char *sql)
{
	struct req r;
	fake_req(&r, pc, p->snap ? p->snap : (p == pipe_on ? &snap_on : &snap_off));
	r.type = type;
	r.sql = sql;
	r.sql_len = sql ? strlen(sql) : 0;
	struct pipe_event ev = {.kind = PEV_QUERY_START, .r = &r};
	pipe_emit(p, pc, &ev);
}

static void done(const struct pipeline *p, struct pipe_client *pc, uint64_t us, uint64_t rows,
                 const char *sqlstate)
{
	struct req r;
	fake_req(&r, pc, p == pipe_on ? &snap_on : &snap_off);
	struct pipe_event ev = {.kind = PEV_QUERY_DONE,
	                        .r = &r,
	                        .duration_ns = us * 1000,
	                        .rows = rows,
	                        .ok = sqlstate == NULL,
	                        .sqlstate = sqlstate};
	pipe_emit(p, pc, &ev);
}

static const struct qs_entry *entry_of(const char *sql)
{
	const struct an_result *a = route_analysis(cfg_on, sql, strlen(sql));
	assert_non_null(a);
	struct qs_table *t = analytics_table();
	return t ? qs_lookup(t, a->fingerprint) : NULL;
}

static void test_a_completed_query_updates_its_fingerprint_s_statistics(void **state UNUSED)
{
	struct pipe_client pc;
	pipe_client_init(&pc);
	start(pipe_on, &pc, 'Q', "SELECT v FROM t WHERE id = 1");
	done(pipe_on, &pc, 2000, 1, NULL);
	/* the same shape with another constant: the same fingerprint */
	start(pipe_on, &pc, 'Q', "SELECT v FROM t WHERE id = 2");
	done(pipe_on, &pc, 4000, 3, NULL);
	const struct qs_entry *e = entry_of("SELECT v FROM t WHERE id = 5");
	assert_non_null(e);
	assert_int_equal(e->calls, 2);
	assert_int_equal(e->rows, 4);
	assert_int_equal(e->errors, 0);
	assert_int_equal(e->total_us, 6000);
	assert_string_equal(e->database, "appdb");
	assert_string_equal(e->user, "alice");
	assert_string_equal(e->node, "main");
	assert_non_null(strstr(e->query, "$1")); /* normalised: no constant */
	pipe_client_free(pipe_on, &pc);
}

static void test_an_extended_batch_is_recorded_under_its_first_statement(void **state UNUSED)
{
	struct pipe_client pc;
	pipe_client_init(&pc);
	start(pipe_on, &pc, 'P', "SELECT id FROM u WHERE v = $1");
	start(pipe_on, &pc, 'B', "SELECT id FROM u WHERE v = $1");
	start(pipe_on, &pc, 'S', NULL);
	done(pipe_on, &pc, 1000, 2, NULL);
	const struct qs_entry *e = entry_of("SELECT id FROM u WHERE v = $1");
	assert_non_null(e);
	assert_int_equal(e->calls, 1);
	assert_int_equal(e->rows, 2);
	/* a Sync alone gets a ReadyForQuery too, and records nothing */
	size_t n = qs_table_count(analytics_table());
	start(pipe_on, &pc, 'S', NULL);
	done(pipe_on, &pc, 1000, 0, NULL);
	assert_int_equal(qs_table_count(analytics_table()), n);
	pipe_client_free(pipe_on, &pc);
}

static void test_an_error_is_counted(void **state UNUSED)
{
	struct pipe_client pc;
	pipe_client_init(&pc);
	start(pipe_on, &pc, 'Q', "SELECT 1 / 0 FROM w");
	done(pipe_on, &pc, 500, 0, "22012");
	const struct qs_entry *e = entry_of("SELECT 1 / 0 FROM w");
	assert_non_null(e);
	assert_int_equal(e->calls, 1);
	assert_int_equal(e->errors, 1);
	pipe_client_free(pipe_on, &pc);
}

static void test_a_pipeline_without_analytics_records_nothing(void **state UNUSED)
{
	struct pipe_client pc;
	pipe_client_init(&pc);
	start(pipe_off, &pc, 'Q', "SELECT x FROM nowhere_else");
	done(pipe_off, &pc, 500, 1, NULL);
	assert_null(entry_of("SELECT x FROM nowhere_else"));
	pipe_client_free(pipe_off, &pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_completed_query_updates_its_fingerprint_s_statistics),
	    cmocka_unit_test(test_an_extended_batch_is_recorded_under_its_first_statement),
	    cmocka_unit_test(test_an_error_is_counted),
	    cmocka_unit_test(test_a_pipeline_without_analytics_records_nothing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
