/*
 * Unit tests for the router (dataplane/pipeline/stage_route.c) with fake
 * requests, a fake control-plane table and fake pool busy hints: writes go to
 * the primary and reads to a replica under read_write_split; session mode
 * always uses the primary; the least busy eligible replica wins; a replica
 * whose breaker is open, that is unhealthy per the table, or that lags is
 * skipped (none left: the primary); read-your-writes keeps a client's reads of
 * a table it wrote on the primary (only that client, only that table); hints
 * and [[schema_routes]] pick nodes; a request the cache records goes to the
 * primary; as a stage it PARKs without a healthy primary and refuses (08006)
 * a named node that is down. Links no conn/.
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
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/policy/snap.h"

#define UNUSED __attribute__((unused))

/* ---- the fake control plane and pools ---- */

static struct route_node table[4];
static size_t n_table;
static uint64_t table_ver;
static int busy_of[4];
static const char *drained_node;

static uint64_t fake_version(void)
{
	return table_ver;
}
static size_t fake_copy(struct route_node *out, size_t max)
{
	size_t n = n_table < max ? n_table : max;
	memcpy(out, table, n * sizeof(*out));
	return n;
}
static bool fake_any_drained(void)
{
	return drained_node != NULL;
}
static bool fake_node_drained(const char *name)
{
	return drained_node && !strcmp(name, drained_node);
}
static int fake_busy(const struct req *r UNUSED, int node)
{
	return busy_of[node];
}

static const struct route_source fake_src = {
    .version = fake_version,
    .copy = fake_copy,
    .any_drained = fake_any_drained,
    .node_drained = fake_node_drained,
    .busy = fake_busy,
};

/* The table says: p primary, r1 and r2 replicas, all healthy, no lag. */
static void table_reset(void)
{
	static const char *names[] = {"p", "r1", "r2"};
	memset(table, 0, sizeof(table));
	for (int i = 0; i < 3; i++) {
		snprintf(table[i].name, sizeof(table[i].name), "%s", names[i]);
		table[i].known = true;
		table[i].primary = i == 0;
		table[i].healthy = true;
		table[i].lag_ms = 0;
	}
	n_table = 3;
	table_ver++;
	memset(busy_of, 0, sizeof(busy_of));
	drained_node = NULL;
}

/* ---- config and requests ---- */

#define NODES                                                                                      \
	"[[nodes]]\nname = \"p\"\nhost = \"db\"\nrole = \"primary\"\n"                             \
	"[[nodes]]\nname = \"r1\"\nhost = \"db\"\nrole = \"replica\"\n"                            \
	"[[nodes]]\nname = \"r2\"\nhost = \"db\"\nrole = \"replica\"\n"                            \
	"[circuit_breaker]\nfailure_threshold = 2\nrecovery_timeout_secs = 3600\n"

static struct cfg *c;
static struct snap snap;
static struct pipe_client pc;

static void load(const char *text)
{
	struct cfg_error err;
	cfg_free(c);
	c = cfg_load_string("test", text, strlen(text), &err);
	if (!c)
		fail_msg("config refused: %s", err.msg);
	snap.cfg = c;
	stage_route.client_free(&pc.slot[PIPE_SLOT_ROUTE]); /* read-your-writes memory */
	pipe_client_init(&pc);
}

static void req_for(struct req *r, struct pipe_client *who, enum pipe_mode mode, const char *sql)
{
	memset(r, 0, sizeof(*r));
	r->snap = &snap;
	r->database = "db";
	r->user = "u";
	r->mode = mode;
	r->pc = who;
	r->sql = sql;
	r->sql_len = sql ? strlen(sql) : 0;
	r->node = -1;
}

/* route_pick for a transaction-mode request of this client */
static int pick_for(struct pipe_client *who, const char *sql)
{
	struct req r;
	char msg[300] = "";
	req_for(&r, who, PIPE_MODE_TXN, sql);
	return route_pick(&r, msg, sizeof(msg));
}

static int pick(const char *sql)
{
	return pick_for(&pc, sql);
}

static int setup(void **state UNUSED)
{
	route_set_source(&fake_src);
	table_reset();
	for (int i = 0; i < 3; i++)
		breaker_reset(i);
	return 0;
}

static int teardown_all(void **state UNUSED)
{
	const struct pipe_stage *st[] = {&stage_route};
	struct pipeline *p = pipe_build(c, st, 1);
	pipe_client_free(p, &pc); /* frees the read-your-writes memory */
	pipe_free(p);
	cfg_free(c);
	route_worker_exit();
	return 0;
}

/* ---- tests ---- */

static void test_writes_go_to_the_primary_reads_to_a_replica(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	assert_int_equal(pick("UPDATE t SET a = 1"), 0);
	assert_int_equal(pick("INSERT INTO t VALUES (1)"), 0);
	int r = pick("SELECT * FROM t");
	assert_true(r == 1 || r == 2);
	r = pick("BEGIN READ ONLY"); /* a read-only transaction */
	assert_true(r == 1 || r == 2);
	/* without the split everything goes to the primary */
	load(NODES);
	assert_int_equal(pick("SELECT * FROM t"), 0);
}

static void test_session_mode_and_no_text_use_the_primary(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	struct req r;
	char msg[300];
	req_for(&r, &pc, PIPE_MODE_SESSION, "SELECT 1");
	assert_int_equal(route_pick(&r, msg, sizeof(msg)), 0);
	req_for(&r, &pc, PIPE_MODE_TXN, NULL);
	assert_int_equal(route_pick(&r, msg, sizeof(msg)), 0);
	req_for(&r, &pc, PIPE_MODE_TXN, "SELECT 1");
	r.replication = true;
	assert_int_equal(route_pick(&r, msg, sizeof(msg)), 0);
}

static void test_ties_rotate_between_replicas(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	int seen[3] = {0};
	for (int i = 0; i < 8; i++)
		seen[pick("SELECT * FROM t")]++;
	assert_int_equal(seen[0], 0);
	assert_true(seen[1] > 0 && seen[2] > 0);
}

static void test_least_busy_replica_wins(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	busy_of[1] = 5;
	busy_of[2] = 1;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pick("SELECT * FROM t"), 2);
	busy_of[1] = 0;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pick("SELECT * FROM t"), 1);
}

static void test_breaker_open_replica_is_skipped(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	busy_of[2] = 9; /* r1 would win on load */
	breaker_failure(c, 1, "test");
	breaker_failure(c, 1, "test");
	assert_int_equal(breaker_state(1), BREAKER_OPEN);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pick("SELECT * FROM t"), 2);
	/* both open: the primary */
	breaker_failure(c, 2, "test");
	breaker_failure(c, 2, "test");
	assert_int_equal(pick("SELECT * FROM t"), 0);
}

static void test_unhealthy_lagging_or_drained_replicas_are_skipped(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\nmax_replica_lag_ms = 100\n" NODES);
	table[1].healthy = false;
	table_ver++;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pick("SELECT * FROM t"), 2);
	table_reset();
	table[2].lag_ms = 5000;
	table_ver++;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pick("SELECT * FROM t"), 1);
	table[2].lag_ms = -1; /* unknown lag is eligible */
	drained_node = "r1";
	table_ver++;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pick("SELECT * FROM t"), 2);
}

static void test_read_your_writes_keeps_that_table_on_the_primary(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\nread_your_writes_ms = 60000\n" NODES);
	struct pipe_client other;
	pipe_client_init(&other);
	assert_int_equal(pick("UPDATE t SET a = 1"), 0);
	assert_int_equal(pick("SELECT * FROM t"), 0); /* it wrote t */
	assert_int_not_equal(pick("SELECT * FROM u"), 0);
	assert_int_not_equal(pick_for(&other, "SELECT * FROM t"), 0); /* another client */
	assert_non_null(pc.slot[PIPE_SLOT_ROUTE].p);
	assert_null(other.slot[PIPE_SLOT_ROUTE].p);
}

static void test_hints_and_schema_routes_pick_nodes(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n"
	     "[[schema_routes]]\ntables = [\"audit\"]\ntarget = \"r2\"\n" NODES);
	assert_int_equal(pick("SELECT * FROM t /* helios:route=primary */"), 0);
	assert_int_equal(pick("SELECT * FROM t /* helios:route=r1 */"), 1);
	assert_int_equal(pick("UPDATE t SET a = 1 /* helios:route=r2 */"), 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pick("SELECT * FROM audit"), 2);
	assert_int_equal(pick("DELETE FROM audit"), 0); /* a write: the primary */
}

static void test_request_recorded_by_the_cache_goes_to_the_primary(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	pc.rflags |= PIPE_RF_PRIMARY_ONLY;
	assert_int_equal(pick("SELECT * FROM t"), 0);
	pc.rflags = 0;
	assert_int_not_equal(pick("SELECT * FROM t"), 0);
}

static void test_stage_parks_without_primary_and_refuses_a_down_node(void **state UNUSED)
{
	load("[routing]\nread_write_split = true\n" NODES);
	const struct pipe_stage *st[] = {&stage_route};
	struct pipeline *p = pipe_build(c, st, 1);
	assert_true(pipe_has(p, PIPE_AT_ROUTE));
	struct req r;

	req_for(&r, &pc, PIPE_MODE_TXN, "SELECT * FROM t");
	assert_int_equal(pipe_run(p, PIPE_AT_ROUTE, &r), PIPE_CONTINUE);
	assert_true(r.node == 1 || r.node == 2);

	/* the control plane sees the primary down: wait for a failover */
	table[0].healthy = false;
	table_ver++;
	req_for(&r, &pc, PIPE_MODE_TXN, "UPDATE t SET a = 1");
	assert_int_equal(pipe_run(p, PIPE_AT_ROUTE, &r), PIPE_PARK);
	assert_int_equal(r.park.kind, PIPE_WAKE_PRIMARY);
	assert_string_equal(r.decided_by, "route");

	/* a node named by a hint whose breaker is open: refused now */
	table_reset();
	breaker_failure(c, 1, "test");
	breaker_failure(c, 1, "test");
	req_for(&r, &pc, PIPE_MODE_TXN, "SELECT 1 /* helios:route=r1 */");
	assert_int_equal(pipe_run(p, PIPE_AT_ROUTE, &r), PIPE_ERROR);
	assert_string_equal(r.err.sqlstate, "08006");
	assert_non_null(strstr(r.err.msg, "circuit breaker open"));
	pipe_free(p);
}

static void test_primary_follows_the_table(void **state UNUSED)
{
	load(NODES);
	assert_int_equal(route_primary(c), 0);
	/* a failover: r1 promoted */
	table[0].primary = false;
	table[0].healthy = false;
	table[1].primary = true;
	table_ver++;
	assert_int_equal(route_primary(c), 1);
	assert_int_equal(pick("UPDATE t SET a = 1"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_writes_go_to_the_primary_reads_to_a_replica, setup),
	    cmocka_unit_test_setup(test_session_mode_and_no_text_use_the_primary, setup),
	    cmocka_unit_test_setup(test_ties_rotate_between_replicas, setup),
	    cmocka_unit_test_setup(test_least_busy_replica_wins, setup),
	    cmocka_unit_test_setup(test_breaker_open_replica_is_skipped, setup),
	    cmocka_unit_test_setup(test_unhealthy_lagging_or_drained_replicas_are_skipped, setup),
	    cmocka_unit_test_setup(test_read_your_writes_keeps_that_table_on_the_primary, setup),
	    cmocka_unit_test_setup(test_hints_and_schema_routes_pick_nodes, setup),
	    cmocka_unit_test_setup(test_request_recorded_by_the_cache_goes_to_the_primary, setup),
	    cmocka_unit_test_setup(test_stage_parks_without_primary_and_refuses_a_down_node, setup),
	    cmocka_unit_test_setup(test_primary_follows_the_table, setup),
	};
	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
