/*
 * The data plane's live plugin set (dataplane/plugin/plugin_set.c) with
 * real modules from tests/plugins/: a set applies all or nothing (a bad
 * module leaves the live set and names the plugin), hooks run in order
 * with deny/rewrite/hints merged, a looping plugin's failure continues or
 * denies per on_failure, max_failures consecutive failures disable it (and
 * a reload enables it again), an unchanged plugin keeps its counters across
 * a push, and workers' counters add up (also after they exit).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/plugin/plugin_set.h"

struct blob {
	uint8_t *p;
	size_t len;
};

static struct blob wasm(const char *name)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct blob b;
	FILE *f;

	assert_true(n > 0);
	exe[n] = 0;
	snprintf(path, sizeof(path), "%s/plugins/%s.wasm", dirname(exe), name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: missing (make builds it from tests/plugins/%s.wat)", path, name);
	b.p = malloc(1 << 20);
	assert_non_null(b.p);
	b.len = fread(b.p, 1, 1 << 20, f);
	fclose(f);
	return b;
}

static struct plugin_def def(const char *name, struct blob b, enum plugin_on_failure of,
                             uint32_t max_failures)
{
	struct plugin_def d = {.name = name,
	                       .wasm = b.p,
	                       .len = b.len,
	                       .config_json = "{}",
	                       .on_failure = of,
	                       .lim = {.fuel = 200000, .timeout_ms = 100, .memory_mb = 4},
	                       .max_failures = max_failures};
	unsigned int ol = 32;
	EVP_Digest(b.p, b.len, d.sha256, &ol, EVP_sha256(), NULL);
	return d;
}

static void query(struct plugin_outcome *o, const char *sql)
{
	struct plugin_call c;

	memset(&c, 0, sizeof(c));
	c.hook = PLUGIN_ON_QUERY_START;
	c.field[PLUGIN_F_SQL] = sql;
	c.field_len[PLUGIN_F_SQL] = (uint32_t)strlen(sql);
	c.field[PLUGIN_F_USER] = "alice";
	c.field_len[PLUGIN_F_USER] = 5;
	plugin_set_run(&c, o);
}

static const struct plugin_stats *stats_of(const char *name)
{
	static struct plugin_stats st[8];
	size_t n = plugin_set_stats(st, 8);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(st[i].name, name))
			return &st[i];
	fail_msg("no stats for %s", name);
	return NULL;
}

static int teardown(void **state)
{
	(void)state;
	plugin_set_shutdown();
	return 0;
}

static void test_hooks_deny_rewrite_and_hint_through_the_set(void **state)
{
	struct blob api = wasm("api"), noop = wasm("noop");
	struct plugin_def d[2] = {def("noop", noop, PLUGIN_FAIL_CONTINUE, 5),
	                          def("api", api, PLUGIN_FAIL_CONTINUE, 5)};
	struct plugin_outcome o;
	char err[256];

	(void)state;
	assert_int_equal(plugin_set_hooks(), 0);
	assert_int_equal(plugin_set_apply(d, 2, 7, err, sizeof(err)), 0);
	assert_int_equal(plugin_set_generation(), 7);
	assert_true(plugin_set_hooks() & (1u << PLUGIN_ON_QUERY_START));
	query(&o, "DROP TABLE t");
	assert_int_equal(o.decision, PLUGIN_DENY);
	assert_string_equal(o.by, "api");
	assert_string_equal(o.sqlstate, "42501");
	assert_string_equal(o.message, "blocked by api");
	assert_false(o.failed);
	query(&o, "select 1");
	assert_int_equal(o.decision, PLUGIN_CONTINUE);
	assert_non_null(o.rewrite);
	assert_memory_equal(o.rewrite, "SELECT 2", 8);
	assert_int_equal(o.rewrite_len, 8);
	assert_string_equal(o.route, "replica");
	assert_true(o.cache_skip);
	assert_int_equal(o.ran, 2);
	free(o.rewrite);
	const struct plugin_stats *s = stats_of("api");
	assert_int_equal(s->calls, 2);
	assert_int_equal(s->denials, 1);
	assert_int_equal(s->rewrites, 1);
	assert_int_equal(s->instances, 1);
	assert_int_equal(strlen(s->sha256), 64);
	free(api.p);
	free(noop.p);
}

static void test_a_bad_module_leaves_the_live_set(void **state)
{
	struct blob noop = wasm("noop"), bad = wasm("bad_import");
	struct plugin_def good = def("noop", noop, PLUGIN_FAIL_CONTINUE, 5);
	struct plugin_def d[2] = {def("noop", noop, PLUGIN_FAIL_CONTINUE, 5),
	                          def("evil", bad, PLUGIN_FAIL_CONTINUE, 5)};
	char err[256] = "";

	(void)state;
	assert_int_equal(plugin_set_apply(&good, 1, 1, err, sizeof(err)), 0);
	assert_int_equal(plugin_set_apply(d, 2, 2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "plugin evil: "));
	assert_int_equal(plugin_set_generation(), 1);
	assert_int_equal(plugin_set_count(), 1);
	/* the config json the plugin refuses at helios_init: refused too */
	struct blob api = wasm("api");
	struct plugin_def a = def("api", api, PLUGIN_FAIL_CONTINUE, 5);
	a.config_json = "{\"refuse\":true}";
	assert_int_equal(plugin_set_apply(&a, 1, 3, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "plugin api: "));
	assert_int_equal(plugin_set_count(), 1);
	free(noop.p);
	free(bad.p);
	free(api.p);
}

static void test_looping_plugin_is_cut_and_on_failure_decides(void **state)
{
	struct blob loop = wasm("loop");
	struct plugin_def d = def("loop", loop, PLUGIN_FAIL_CONTINUE, 0);
	struct plugin_outcome o;
	char err[256];
	struct timespec a, b;

	(void)state;
	assert_int_equal(plugin_set_apply(&d, 1, 1, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	query(&o, "SELECT 1");
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(o.decision, PLUGIN_CONTINUE);
	double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("loop cut by the budget (200000 instructions) after %.2f ms\n", ms);
	assert_true(ms < 150);
	assert_int_equal(stats_of("loop")->budget_exhausted, 1);
	d.on_failure = PLUGIN_FAIL_DENY;
	d.lim.fuel = 4000000000ULL; /* the clock cuts it */
	d.lim.timeout_ms = 20;
	assert_int_equal(plugin_set_apply(&d, 1, 2, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	query(&o, "SELECT 1");
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("loop cut by the 20 ms clock after %.2f ms\n", ms);
	assert_true(ms >= 19 && ms < 120);
	assert_int_equal(o.decision, PLUGIN_DENY);
	assert_true(o.failed);
	assert_non_null(strstr(o.message, "plugin loop failed (timeout)"));
	/* the same plugin (bytes): its counters go on */
	assert_int_equal(stats_of("loop")->timeouts, 1);
	assert_int_equal(stats_of("loop")->budget_exhausted, 1);
	assert_int_equal(stats_of("loop")->failures, 2);
	free(loop.p);
}

static void test_consecutive_failures_disable_until_reloaded(void **state)
{
	struct blob trap = wasm("trap");
	struct plugin_def d = def("trap", trap, PLUGIN_FAIL_DENY, 3);
	struct plugin_outcome o;
	char err[256];

	(void)state;
	assert_int_equal(plugin_set_apply(&d, 1, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		query(&o, "SELECT 1");
		assert_int_equal(o.decision, PLUGIN_DENY);
	}
	const struct plugin_stats *s = stats_of("trap");
	assert_true(s->disabled);
	assert_int_equal(s->disabled_total, 1);
	assert_int_equal(s->traps, 3);
	assert_int_equal(s->instances, 0); /* the failed instance is gone */
	assert_false(plugin_set_hooks() & (1u << PLUGIN_ON_QUERY_START));
	query(&o, "SELECT 1");
	assert_int_equal(o.decision, PLUGIN_CONTINUE);
	assert_int_equal(o.ran, 0);
	/* the same entry pushed again stays disabled; reset enables it */
	assert_int_equal(plugin_set_apply(&d, 1, 2, err, sizeof(err)), 0);
	assert_true(stats_of("trap")->disabled);
	assert_int_equal(plugin_set_reset("trap"), 0);
	assert_false(stats_of("trap")->disabled);
	query(&o, "SELECT 1");
	assert_int_equal(o.decision, PLUGIN_DENY);
	assert_int_equal(plugin_set_reset("nope"), -ENOENT);
	free(trap.p);
}

static void *worker(void *arg)
{
	struct plugin_outcome o;

	for (int i = 0; i < 50; i++) {
		query(&o, "select 1");
		free(o.rewrite);
	}
	if (arg)
		plugin_set_worker_exit();
	return NULL;
}

static void test_workers_counters_add_up_and_survive_their_exit(void **state)
{
	struct blob api = wasm("api");
	struct plugin_def d = def("api", api, PLUGIN_FAIL_CONTINUE, 5);
	char err[256];
	pthread_t t[3];

	(void)state;
	assert_int_equal(plugin_set_apply(&d, 1, 1, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, i ? (void *)1 : NULL), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	const struct plugin_stats *s = stats_of("api");
	assert_int_equal(s->calls, 150);
	assert_int_equal(s->rewrites, 150);
	assert_int_equal(s->instances, 1); /* the thread that did not say it exited */
	free(api.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_hooks_deny_rewrite_and_hint_through_the_set, teardown),
	    cmocka_unit_test_teardown(test_a_bad_module_leaves_the_live_set, teardown),
	    cmocka_unit_test_teardown(test_looping_plugin_is_cut_and_on_failure_decides, teardown),
	    cmocka_unit_test_teardown(test_consecutive_failures_disable_until_reloaded, teardown),
	    cmocka_unit_test_teardown(test_workers_counters_add_up_and_survive_their_exit,
	                              teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
