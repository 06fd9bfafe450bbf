/*
 * Unit tests for the sample plugins of plugins/ (built by make into
 * BUILD/plugins/ as .wasm with clang's wasm32 target) run by the runtime:
 * audit_logger's JSON lines, query_blocker's patterns and admins,
 * tenant_tagger's route hints, config refusals, and each sample's
 * on_query_start cost. Skipped, saying so, where the build left the
 * plugins out (no wasm32 clang or wasm-ld).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/plugin/plugin.h"

#define UNUSED __attribute__((unused))

static const struct plugin_limits LIM = {.fuel = 1000000, .timeout_ms = 100, .memory_mb = 16};

/* BUILD/plugins/NAME.wasm (this program is BUILD/tests/test_...); NULL if
 * the build skipped the plugins. */
static struct plugin_module *sample(const char *name)
{
	char exe[PATH_MAX], path[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	snprintf(path, sizeof(path), "%s/../plugins/%s.wasm", dirname(exe), name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("%s: not built (plugins skipped: no wasm32 clang or wasm-ld)\n", path);
		return NULL;
	}
	uint8_t *buf = malloc(1 << 20);
	assert_non_null(buf);
	size_t len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	char err[256] = "";
	struct plugin_module *m = plugin_module_new(buf, len, err, sizeof(err));
	free(buf);
	if (!m)
		fail_msg("%s: %s", name, err);
	return m;
}

#define SAMPLE_OR_SKIP(var, name)                                                                  \
	struct plugin_module *var = sample(name);                                                  \
	if (!var) {                                                                                \
		skip();                                                                            \
		return;                                                                            \
	}

static struct plugin_instance *instance(struct plugin_module *m, const char *config)
{
	char err[256] = "";
	struct plugin_instance *in = plugin_instance_new(m, config, &LIM, err, sizeof(err));
	if (!in)
		fail_msg("instance with %s: %s", config, err);
	return in;
}

static void refuses_config(struct plugin_module *m, const char *config)
{
	char err[256] = "";
	struct plugin_instance *in = plugin_instance_new(m, config, &LIM, err, sizeof(err));
	if (in)
		fail_msg("config %s accepted", config);
	assert_non_null(strstr(err, "helios_init returned"));
}

static void set(struct plugin_call *c, enum plugin_field f, const char *s)
{
	c->field[f] = s;
	c->field_len[f] = (uint32_t)strlen(s);
}

static struct plugin_call query(const char *user, const char *app, const char *sql)
{
	struct plugin_call c = {.hook = PLUGIN_ON_QUERY_START};
	set(&c, PLUGIN_F_USER, user);
	set(&c, PLUGIN_F_DATABASE, "app");
	set(&c, PLUGIN_F_APPLICATION_NAME, app);
	set(&c, PLUGIN_F_MODE, "transaction");
	set(&c, PLUGIN_F_SQL, sql);
	return c;
}

struct logs {
	int n, level;
	char line[4][1024];
};

static void log_cb(void *ud, int level, const char *msg, size_t len)
{
	struct logs *l = ud;
	if (l->n < 4)
		snprintf(l->line[l->n], sizeof(l->line[0]), "%.*s", (int)len, msg);
	l->level = level;
	l->n++;
}

static void test_audit_logger_writes_who_ran_what_as_json_lines(void **state UNUSED)
{
	SAMPLE_OR_SKIP(m, "audit_logger");
	struct plugin_instance *in = instance(m, "{\"log_level\":\"warning\",\"max_sql\":20}");
	struct logs logs = {0};

	struct plugin_call c =
	    query("alice", "psql", "SELECT \"x\" FROM t WHERE a = 'long enough'");
	assert_int_equal(plugin_call(in, &c, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_CONTINUE);
	assert_int_equal(logs.n, 1);
	assert_int_equal(logs.level, 2);
	assert_string_equal(logs.line[0],
	                    "{\"event\":\"query\",\"user\":\"alice\",\"database\":\"app\","
	                    "\"application_name\":\"psql\",\"mode\":\"transaction\","
	                    "\"sql\":\"SELECT \\\"x\\\" FROM t WH\","
	                    "\"sql_truncated\":true}");

	struct plugin_call q = {.hook = PLUGIN_ON_QUERY_COMPLETE};
	set(&q, PLUGIN_F_USER, "alice");
	set(&q, PLUGIN_F_FINGERPRINT, "00112233aabbccdd");
	set(&q, PLUGIN_F_DURATION_US, "1234");
	set(&q, PLUGIN_F_ROWS, "3");
	set(&q, PLUGIN_F_STATUS, "ok");
	assert_int_equal(plugin_call(in, &q, log_cb, &logs), PLUGIN_OK);
	assert_string_equal(logs.line[1],
	                    "{\"event\":\"complete\",\"user\":\"alice\",\"fingerprint\":"
	                    "\"00112233aabbccdd\",\"duration_us\":\"1234\",\"rows\":"
	                    "\"3\",\"status\":\"ok\"}");

	struct plugin_call e = {.hook = PLUGIN_ON_ERROR};
	set(&e, PLUGIN_F_SQLSTATE, "42P01");
	set(&e, PLUGIN_F_MESSAGE, "relation \"nope\"\ndoes not exist");
	assert_int_equal(plugin_call(in, &e, log_cb, &logs), PLUGIN_OK);
	assert_string_equal(logs.line[2], "{\"event\":\"error\",\"sqlstate\":\"42P01\",\"message\":"
	                                  "\"relation \\\"nope\\\"\\u000adoes not exist\"}");
	plugin_instance_free(in);

	/* events narrows what is logged */
	in = instance(m, "{\"events\":[\"connect\"]}");
	logs.n = 0;
	c = query("alice", "psql", "SELECT 1");
	assert_int_equal(plugin_call(in, &c, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(logs.n, 0);
	struct plugin_call conn = {.hook = PLUGIN_ON_CONNECTION};
	set(&conn, PLUGIN_F_USER, "bob");
	set(&conn, PLUGIN_F_ADDRESS, "127.0.0.1:5000");
	assert_int_equal(plugin_call(in, &conn, log_cb, &logs), PLUGIN_OK);
	assert_int_equal(logs.level, 1); /* info by default */
	assert_string_equal(
	    logs.line[0],
	    "{\"event\":\"connect\",\"user\":\"bob\",\"address\":\"127.0.0.1:5000\"}");
	plugin_instance_free(in);

	refuses_config(m, "{\"log_level\":\"loud\"}");
	refuses_config(m, "{\"max_sql\":99999}");
	refuses_config(m, "{\"events\":[\"everything\"]}");
	plugin_module_free(m);
}

static void test_query_blocker_denies_drop_and_truncate_except_for_admins(void **state UNUSED)
{
	SAMPLE_OR_SKIP(m, "query_blocker");
	struct plugin_instance *in = instance(m, "{\"admins\":[\"postgres\"]}");
	static const struct {
		const char *user, *sql;
		bool deny;
	} cases[] = {
	    {"bob", "DROP TABLE t", true},
	    {"bob", "  drop table t", true},
	    {"bob", "/* hi /* nested */ */ -- x\n TRUNCATE t", true},
	    {"bob", "SELECT 1; DROP TABLE t", true},
	    {"bob", "SELECT 'a;DROP TABLE t'", false},
	    {"bob", "SELECT $q$;DROP TABLE t$q$", false},
	    {"bob", "SELECT * FROM dropped_tables", false},
	    {"bob", "DROPPED", false},
	    {"bob", "SELECT 1", false},
	    {"postgres", "DROP TABLE t", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct plugin_call c = query(cases[i].user, "psql", cases[i].sql);
		assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
		if ((c.decision == PLUGIN_DENY) != cases[i].deny)
			fail_msg("%s by %s: %s", cases[i].sql, cases[i].user,
			         cases[i].deny ? "not denied" : "denied");
		if (cases[i].deny) {
			assert_string_equal(c.sqlstate, "42501");
			assert_non_null(strstr(c.message, "is not allowed for user bob"));
		}
	}
	plugin_instance_free(in);

	in = instance(m, "{\"patterns\":[\"ALTER  SYSTEM\",\"DELETE FROM audit*\"],"
	                 "\"sqlstate\":\"XX001\"}");
	struct plugin_call c = query("bob", "psql", "alter\n system set work_mem = 1");
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_DENY);
	assert_string_equal(c.sqlstate, "XX001");
	assert_string_equal(c.message,
	                    "query_blocker: \"ALTER  SYSTEM\" is not allowed for user bob");
	c = query("bob", "psql", "DELETE FROM audit_log");
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_DENY);
	c = query("bob", "psql", "DROP TABLE t"); /* the defaults are replaced */
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_int_equal(c.decision, PLUGIN_CONTINUE);
	plugin_instance_free(in);

	refuses_config(m, "{\"patterns\":\"DROP\"}");
	refuses_config(m, "{\"sqlstate\":\"425\"}");
	plugin_module_free(m);
}

static void test_tenant_tagger_routes_by_application_name(void **state UNUSED)
{
	SAMPLE_OR_SKIP(m, "tenant_tagger");
	struct plugin_instance *in =
	    instance(m, "{\"map\":{\"reporting\":\"replica\",\"etl-*\":\"node_b\",\"billing\":"
	                "\"primary\"},\"cache_skip\":[\"billing\"]}");
	static const struct {
		const char *app, *route;
		bool skip;
	} cases[] = {
	    {"reporting", "replica", false}, {"etl-nightly", "node_b", false},
	    {"billing", "primary", true},    {"psql", "", false},
	    {"reportingX", "", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct plugin_call c = query("alice", cases[i].app, "SELECT 1");
		assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
		assert_int_equal(c.decision, PLUGIN_CONTINUE);
		assert_string_equal(c.route, cases[i].route);
		assert_int_equal(c.cache_skip, cases[i].skip);
	}
	plugin_instance_free(in);

	in = instance(m, "{\"map\":{},\"default\":\"replica\"}");
	struct plugin_call c = query("alice", "anything", "SELECT 1");
	assert_int_equal(plugin_call(in, &c, NULL, NULL), PLUGIN_OK);
	assert_string_equal(c.route, "replica");
	plugin_instance_free(in);

	/* a route the host refuses: no hint, one warning */
	in = instance(m, "{\"map\":{\"x\":\"no such/route\"}}");
	struct logs logs = {0};
	for (int i = 0; i < 3; i++) {
		c = query("alice", "x", "SELECT 1");
		assert_int_equal(plugin_call(in, &c, log_cb, &logs), PLUGIN_OK);
		assert_string_equal(c.route, "");
	}
	assert_int_equal(logs.n, 1);
	plugin_instance_free(in);

	refuses_config(m, "{}");
	refuses_config(m, "{\"map\":{\"a\":1}}");
	plugin_module_free(m);
}

/* What each sample's on_query_start costs per call (printed for
 * docs/plugins.md; asserted only against a loose bound). */
static void test_per_call_cost_of_each_sample(void **state UNUSED)
{
	static const struct {
		const char *name, *config;
	} s[] = {
	    {"noop", "{}"},
	    {"audit_logger", "{}"},
	    {"query_blocker", "{\"admins\":[\"postgres\"]}"},
	    {"tenant_tagger", "{\"map\":{\"reporting\":\"replica\",\"etl-*\":\"node_b\"}}"},
	};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		SAMPLE_OR_SKIP(m, s[i].name);
		struct plugin_instance *in = instance(m, s[i].config);
		struct logs logs = {0};
		enum { N = 20000 };
		struct timespec a, b;
		uint64_t instr = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int k = 0; k < N; k++) {
			struct plugin_call c = query("alice", "reporting",
			                             "SELECT id, name FROM accounts WHERE id = 42");
			logs.n = 0;
			assert_int_equal(plugin_call(in, &c, log_cb, &logs), PLUGIN_OK);
			instr = c.instructions;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		double ns =
		    ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
		printf("%s on_query_start: %.0f ns per call, %llu instructions\n", s[i].name, ns,
		       (unsigned long long)instr);
		assert_true(ns < 1e6);
		plugin_instance_free(in);
		plugin_module_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_audit_logger_writes_who_ran_what_as_json_lines),
	    cmocka_unit_test(test_query_blocker_denies_drop_and_truncate_except_for_admins),
	    cmocka_unit_test(test_tenant_tagger_routes_by_application_name),
	    cmocka_unit_test(test_per_call_cost_of_each_sample),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
