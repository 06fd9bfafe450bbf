/*
 * Unit tests for the WASM plugin runtime (dataplane/plugin/wasm.cc behind
 * plugin.h): modules from the .wat files of tests/plugins/ (assembled by make into
 * BUILD/tests/plugins/), loops cut by the instruction budget and by the wall
 * clock (time measured), traps, the memory cap, modules the ABI refuses with
 * their reason, and the host functions' round trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/plugin/plugin.h"

#define UNUSED __attribute__((unused))

static const struct plugin_limits LIM = {.fuel = 1000000, .timeout_ms = 100, .memory_mb = 16};

/* BUILD/tests/plugins/NAME.wasm, beside this program. */
static uint8_t *load_wasm(const char *name, size_t *len)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	snprintf(path, sizeof(path), "%s/plugins/%s.wasm", dirname(exe), name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: missing (make builds it from tests/plugins/%s.wat)", path, name);
	uint8_t *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static struct plugin_module *module(const char *name)
{
	size_t len;
	uint8_t *w = load_wasm(name, &len);
	char err[256] = "";
	struct plugin_module *m = plugin_module_new(w, len, err, sizeof(err));
	free(w);
	if (!m)
		fail_msg("%s: %s", name, err);
	return m;
}

/* The module is refused; its reason contains want. */
static void refused(const char *name, const char *want)
{
	size_t len;
	uint8_t *w = load_wasm(name, &len);
	char err[256] = "";
	struct plugin_module *m = plugin_module_new(w, len, err, sizeof(err));
	free(w);
	assert_null(m);
	if (!strstr(err, want))
		fail_msg("%s refused with \"%s\", expected \"%s\" in it", name, err, want);
}

static struct plugin_instance *instance(struct plugin_module *m, const char *config,
                                        const struct plugin_limits *lim)
{
	char err[256] = "";
	struct plugin_instance *in = plugin_instance_new(m, config, lim, err, sizeof(err));
	if (!in)
		fail_msg("instance: %s", err);
	return in;
}

static void set_field(struct plugin_call *c, enum plugin_field f, const char *s)
{
	c->field[f] = s;
	c->field_len[f] = (uint32_t)strlen(s);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct logs {
	int n;
	int level[8];
	char line[8][128];
};

static void log_cb(void *ud, int level, const char *msg, size_t len)
{
	struct logs *l = ud;
	if (l->n < 8) {
		l->level[l->n] = level;
		snprintf(l->line[l->n], sizeof(l->line[0]), "%.*s", (int)len, msg);
	}
	l->n++;
}

static void test_noop_hooks_continue_and_absent_hooks_say_so(void **state UNUSED)
{
	struct plugin_module *m = module("noop");
	for (int h = 0; h < PLUGIN_HOOKS; h++)
		assert_true(plugin_module_has(m, h));
	struct plugin_instance *in = instance(m, "{}", &LIM);
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	set_field(&c, PLUGIN_F_SQL, "SELECT 1");
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_CONTINUE);
	assert_null(c.rewrite);
	assert_true(c.instructions > 0 && c.instructions < 10);
	plugin_instance_free(in);
	plugin_module_free(m);

	m = module("grow"); /* exports on_query_start and on_connection only */
	assert_false(plugin_module_has(m, PLUGIN_ON_ERROR));
	in = instance(m, "{}", &LIM);
	struct plugin_call e = {.hook = PLUGIN_ON_ERROR};
	assert_int_equal(plugin_call(in, &e, NULL, NULL), PLUGIN_ABSENT);
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_endless_loop_is_cut_by_the_instruction_budget(void **state UNUSED)
{
	struct plugin_module *m = module("loop");
	struct plugin_limits lim = {.fuel = 50000, .timeout_ms = 100, .memory_mb = 16};
	struct plugin_instance *in = instance(m, "{}", &lim);
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	uint64_t t0 = now_ms();
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_BUDGET);
	uint64_t ms = now_ms() - t0;
	assert_int_equal(c.instructions, 50000);
	assert_non_null(strstr(c.trap, "budget of 50000 instructions"));
	assert_true(ms < 100); /* the budget, not the clock, stopped it */
	printf("budget: 50000 instructions cut after %llu ms (%s)\n", (unsigned long long)ms,
	       c.trap);
	/* the cut call's frames are still on the instance's thread: it refuses
	 * to run again rather than return into them */
	struct plugin_call again = {.hook = PLUGIN_ON_QUERY_START};
	assert_int_equal(plugin_call(in, &again, NULL, NULL), PLUGIN_TRAP);
	assert_non_null(strstr(again.trap, "instance not rebuilt after a failed call"));
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_endless_loop_is_cut_by_the_wall_clock_near_its_limit(void **state UNUSED)
{
	struct plugin_module *m = module("loop");
	/* fuel 0: no budget, only the clock */
	struct plugin_limits lim = {.fuel = 0, .timeout_ms = 30, .memory_mb = 16};
	struct plugin_instance *in = instance(m, "{}", &lim);
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	uint64_t t0 = now_ms();
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_TIMEOUT);
	uint64_t ms = now_ms() - t0;
	printf("timeout: limit 30 ms, cut after %llu ms (elapsed_ns %llu, %llu instructions)\n",
	       (unsigned long long)ms, (unsigned long long)c.elapsed_ns,
	       (unsigned long long)c.instructions);
	assert_true(c.elapsed_ns >= 30000000ull);
	/* one slice (~0.1 ms) past the limit; the margin is for a loaded machine
	 * descheduling the thread, not for the runtime */
	assert_true(ms >= 30 && ms < 90);
	assert_non_null(strstr(c.trap, "over its 30 ms limit"));
	plugin_instance_free(in);

	/* a limit above 100 ms is held to 100 ms */
	lim.timeout_ms = 5000;
	in = instance(m, "{}", &lim);
	t0 = now_ms();
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_TIMEOUT);
	ms = now_ms() - t0;
	printf("timeout: limit 5000 ms asked, cut after %llu ms\n", (unsigned long long)ms);
	assert_true(ms >= 100 && ms < 200);
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_endless_recursion_traps_on_the_call_stack(void **state UNUSED)
{
	struct plugin_module *m = module("loop");
	struct plugin_instance *in = instance(m, "{}", &LIM);
	struct plugin_call c = {.hook = PLUGIN_ON_CONNECTION};
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_TRAP);
	assert_non_null(strstr(c.trap, "call stack exhausted"));
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_traps_unreachable_out_of_bounds_and_bad_host_calls(void **state UNUSED)
{
	struct plugin_module *m = module("trap");
	static const struct {
		enum plugin_hook hook;
		const char *why;
	} cases[] = {
	    {PLUGIN_ON_QUERY_START, "unreachable"},
	    {PLUGIN_ON_CONNECTION, "out of bounds"},
	    {PLUGIN_ON_QUERY_COMPLETE, "helios.field: buffer 65530+96 outside memory"},
	    {PLUGIN_ON_ERROR, "helios.deny called from on_error"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* after a trap the instance is not used again: a new one each */
		struct plugin_instance *in = instance(m, "{}", &LIM);
		struct plugin_call c = {.hook = cases[i].hook};
		set_field(&c, PLUGIN_F_FINGERPRINT,
		          "0123456789abcdef0123456789abcdef0123456789abcdef0123"
		          "456789abcdef0123456789abcdef0123456789abcdef");
		assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_TRAP);
		if (!strstr(c.trap, cases[i].why))
			fail_msg("%s: trap \"%s\", expected \"%s\"",
			         plugin_hook_name(cases[i].hook), c.trap, cases[i].why);
		assert_int_equal(c.decision, PLUGIN_CONTINUE);
		plugin_instance_free(in);
	}
	plugin_module_free(m);
}

static void test_memory_grow_stops_at_the_cap(void **state UNUSED)
{
	struct plugin_module *m = module("grow");
	struct plugin_limits lim = {.fuel = 10000000, .timeout_ms = 100, .memory_mb = 2};
	struct plugin_instance *in = instance(m, "{}", &lim);
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	/* the plugin reports its pages as the rewrite's length: 2 MiB = 32 */
	assert_int_equal(c.rewrite_len, 32);
	free(c.rewrite);
	plugin_instance_free(in);

	/* growing forever without looking: cut by the budget, memory held */
	lim.fuel = 100000;
	in = instance(m, "{}", &lim);
	struct plugin_call g = {.hook = PLUGIN_ON_CONNECTION};
	assert_int_equal(plugin_call(in, &g, NULL, NULL), PLUGIN_BUDGET);
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_initial_memory_over_the_cap_refuses_the_instance(void **state UNUSED)
{
	struct plugin_module *m = module("bigmem");
	struct plugin_limits lim = {.fuel = 1000, .timeout_ms = 100, .memory_mb = 2};
	char err[256] = "";
	assert_null(plugin_instance_new(m, "{}", &lim, err, sizeof(err)));
	assert_non_null(
	    strstr(err, "starts with 4096 KiB of memory, over its memory_mb cap of 2048"));
	lim.memory_mb = 4;
	struct plugin_instance *in = instance(m, "{}", &lim);
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_modules_outside_the_abi_are_refused_with_the_reason(void **state UNUSED)
{
	refused("bad_import", "imports env.foo: plugins may import only helios.*");
	refused("wasi",
	        "imports wasi_snapshot_preview1.fd_write: plugins may import only helios.*");
	refused("bad_import_type", "imports helios.deny with type (i32) -> (), ABI v1 has (i32, "
	                           "i32, i32) -> ()");
	refused("abi2", "ABI version 2, this proxy has 1");
	refused("no_abi", "exports no helios_abi_version");
	refused("no_memory", "exports no memory");
	refused("bad_hook_type", "exports on_query_start with type (i32) -> (i32)");
	refused("start", "has a start function");
	refused("abi_loop", "helios_abi_version: over its budget of 100000 instructions");
	refused("huge", "starts with 65600 KiB of memory, over the 64 MiB any plugin may");

	char err[256] = "";
	static const uint8_t junk[] = "SELECT 1; not wasm at all";
	assert_null(plugin_module_new(junk, sizeof(junk), err, sizeof(err)));
	assert_non_null(strstr(err, "not a WASM module"));
	/* the header and then garbage */
	static const uint8_t trunc[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 1, 0xff, 0xff};
	assert_null(plugin_module_new(trunc, sizeof(trunc), err, sizeof(err)));
	assert_non_null(strstr(err, "not a valid WASM module"));
}

static void test_init_that_loops_or_refuses_its_config_fails_the_instance(void **state UNUSED)
{
	struct plugin_module *m = module("init_loop");
	struct plugin_limits lim = {.fuel = 100000, .timeout_ms = 100, .memory_mb = 16};
	char err[256] = "";
	assert_null(plugin_instance_new(m, "{}", &lim, err, sizeof(err)));
	assert_non_null(strstr(err, "helios_init: over its budget"));
	plugin_module_free(m);

	m = module("api");
	assert_null(plugin_instance_new(m, "{\"refuse\":true}", &LIM, err, sizeof(err)));
	assert_non_null(strstr(err, "helios_init returned 7"));
	plugin_module_free(m);
}

static void test_connection_deny_with_sqlstate_and_message(void **state UNUSED)
{
	struct plugin_module *m = module("api");
	struct plugin_instance *in = instance(m, "{\"x\":1}", &LIM);
	struct plugin_call c = {.hook = PLUGIN_ON_CONNECTION};
	set_field(&c, PLUGIN_F_USER, "evil");
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_DENY);
	assert_string_equal(c.sqlstate, "28000");
	assert_string_equal(c.message, "no evil allowed");

	struct plugin_call ok = {.hook = PLUGIN_ON_CONNECTION};
	set_field(&ok, PLUGIN_F_USER, "alice");
	assert_int_equal(plugin_call(in, &ok, NULL, NULL), PLUGIN_OK);
	assert_int_equal(ok.decision, PLUGIN_CONTINUE);
	assert_string_equal(ok.sqlstate, "");
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_query_start_deny_rewrite_hints_and_log(void **state UNUSED)
{
	struct plugin_module *m = module("api");
	struct plugin_instance *in = instance(m, "{}", &LIM);
	struct logs logs = {0};

	struct plugin_call d = {.hook = PLUGIN_ON_QUERY_START};
	set_field(&d, PLUGIN_F_SQL, "DROP TABLE t");
	assert_int_equal(plugin_call(in, &d, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(d.decision, PLUGIN_DENY); /* deny() alone, the hook returned 0 */
	assert_string_equal(d.sqlstate, "42501");
	assert_string_equal(d.message, "blocked by api");
	assert_string_equal(d.route, "replica");
	assert_true(d.cache_skip);
	assert_int_equal(logs.n, 1);
	assert_int_equal(logs.level[0], 1);
	assert_string_equal(logs.line[0], "DROP TABLE t");

	struct plugin_call r = {.hook = PLUGIN_ON_QUERY_START};
	set_field(&r, PLUGIN_F_SQL, "select 1");
	assert_int_equal(plugin_call(in, &r, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(r.decision, PLUGIN_CONTINUE);
	assert_non_null(r.rewrite);
	assert_int_equal(r.rewrite_len, 8);
	assert_string_equal(r.rewrite, "SELECT 2");
	free(r.rewrite);

	struct plugin_call ret = {.hook = PLUGIN_ON_QUERY_START};
	set_field(&ret, PLUGIN_F_SQL, "RETURN 1");
	assert_int_equal(plugin_call(in, &ret, NULL, NULL), PLUGIN_OK);
	assert_int_equal(ret.decision, PLUGIN_DENY); /* the return value alone */
	assert_string_equal(ret.sqlstate, "");       /* the caller says 42501 */

	/* complete: the fingerprint read and logged, the return ignored */
	struct plugin_call q = {.hook = PLUGIN_ON_QUERY_COMPLETE};
	set_field(&q, PLUGIN_F_FINGERPRINT, "00112233aabbccdd");
	logs.n = 0;
	assert_int_equal(plugin_call(in, &q, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(q.decision, PLUGIN_CONTINUE);
	assert_int_equal(logs.n, 1);
	assert_int_equal(logs.level[0], 2);
	assert_string_equal(logs.line[0], "00112233aabbccdd");
	plugin_instance_free(in);

	/* rewrite from on_error traps, and a trapped call's outputs are dropped */
	in = instance(m, "{}", &LIM);
	struct plugin_call e = {.hook = PLUGIN_ON_ERROR};
	assert_int_equal(plugin_call(in, &e, NULL, NULL), PLUGIN_TRAP);
	assert_non_null(strstr(e.trap, "helios.rewrite called from on_error"));
	assert_null(e.rewrite);
	plugin_instance_free(in);
	plugin_module_free(m);
}

static void test_instances_of_one_module_are_independent(void **state UNUSED)
{
	struct plugin_module *m = module("api");
	struct plugin_instance *a = instance(m, "{}", &LIM),
	                       *b = instance(m, "{\"k\":\"v\"}", &LIM);
	struct plugin_call c = {.hook = PLUGIN_ON_CONNECTION};
	set_field(&c, PLUGIN_F_USER, "alice");
	/* each checks its own config length against field(CONFIG) in the hook */
	assert_int_equal(plugin_call(a, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(plugin_call(b, &c, NULL, NULL), PLUGIN_OK);
	plugin_instance_free(a);
	assert_int_equal(plugin_call(b, &c, NULL, NULL), PLUGIN_OK);
	plugin_instance_free(b);
	plugin_module_free(m);
}

/* One module, compiled once, shared read-only by threads that each run
 * their own instance (as the workers do): no lock, no cross-talk. */
static void *worker_calls(void *arg)
{
	struct plugin_module *m = arg;
	char err[256] = "";
	struct plugin_instance *in = plugin_instance_new(m, "{}", &LIM, err, sizeof(err));
	if (!in)
		return (void *)"instance";
	for (int i = 0; i < 2000; i++) {
		struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
		c.field[PLUGIN_F_SQL] = i % 2 ? "select 1" : "DROP TABLE t";
		c.field_len[PLUGIN_F_SQL] = (uint32_t)strlen(c.field[PLUGIN_F_SQL]);
		if (plugin_call(in, &c, NULL, NULL) != PLUGIN_OK)
			return (void *)"call";
		bool ok = i % 2 ? c.decision == PLUGIN_CONTINUE && c.rewrite_len == 8
		                : c.decision == PLUGIN_DENY && !strcmp(c.sqlstate, "42501");
		free(c.rewrite);
		if (!ok)
			return (void *)"outputs";
	}
	plugin_instance_free(in);
	return NULL;
}

static void test_threads_run_their_own_instances_of_one_module(void **state UNUSED)
{
	struct plugin_module *m = module("api");
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_calls, m), 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		assert_int_equal(pthread_join(th[i], &ret), 0);
		if (ret)
			fail_msg("thread %d: %s", i, (const char *)ret);
	}
	plugin_module_free(m);
}

static void test_per_call_overhead_of_a_noop_hook(void **state UNUSED)
{
	struct plugin_module *m = module("noop");
	struct plugin_instance *in = instance(m, "{}", &LIM);
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	set_field(&c, PLUGIN_F_SQL, "SELECT 1");
	enum { N = 100000 };
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++)
		assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
	printf("no-op on_query_start: %.0f ns per call (%d calls, this build)\n", ns, N);
	assert_true(ns < 100000); /* a sanity bound: 0.1 ms even under ASan */
	plugin_instance_free(in);
	plugin_module_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_noop_hooks_continue_and_absent_hooks_say_so),
	    cmocka_unit_test(test_endless_loop_is_cut_by_the_instruction_budget),
	    cmocka_unit_test(test_endless_loop_is_cut_by_the_wall_clock_near_its_limit),
	    cmocka_unit_test(test_endless_recursion_traps_on_the_call_stack),
	    cmocka_unit_test(test_traps_unreachable_out_of_bounds_and_bad_host_calls),
	    cmocka_unit_test(test_memory_grow_stops_at_the_cap),
	    cmocka_unit_test(test_initial_memory_over_the_cap_refuses_the_instance),
	    cmocka_unit_test(test_modules_outside_the_abi_are_refused_with_the_reason),
	    cmocka_unit_test(test_init_that_loops_or_refuses_its_config_fails_the_instance),
	    cmocka_unit_test(test_connection_deny_with_sqlstate_and_message),
	    cmocka_unit_test(test_query_start_deny_rewrite_hints_and_log),
	    cmocka_unit_test(test_instances_of_one_module_are_independent),
	    cmocka_unit_test(test_threads_run_their_own_instances_of_one_module),
	    cmocka_unit_test(test_per_call_overhead_of_a_noop_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
