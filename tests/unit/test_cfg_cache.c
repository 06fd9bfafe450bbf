/*
 * Unit tests for the result cache and query analytics side of common/cfg:
 * [cache], the [[cache.tables]] array table, [analytics], their defaults,
 * the loader's refusals (file:line and key in the message), the
 * slow_query_log default next to the config file, overrides, round trips
 * through cfg_to_toml and cfg_cache_table() matching.
 */
#include "cfg_testutil.h"

/* The [cache] block of the seed example. */
#define SEED_CACHE "[cache]\nenabled = true\nmax_memory_mb = 512\ndefault_ttl_secs = 60\n"

static void test_cache_and_analytics_keys_have_their_defaults(void **state)
{
	struct cfg *c = load_ok(NODE);

	assert_false(c->cache.enabled);
	assert_int_equal(c->cache.max_memory_mb, 64);
	assert_int_equal(c->cache.default_ttl_secs, 60);
	assert_int_equal(c->cache.max_entry_kb, 256);
	assert_false(c->cache.cache_rls_tables);
	assert_null(c->cache.tables);
	assert_int_equal(c->cache.n_tables, 0);
	assert_false(c->analytics.enabled);
	assert_int_equal(c->analytics.slow_query_threshold_ms, 1000);
	/* From memory there is no file to put the log next to. */
	assert_string_equal(c->analytics.slow_query_log, "");
	assert_int_equal(c->analytics.slow_query_log_max_mb, 64);
	assert_int_equal(c->analytics.max_fingerprints, 2000);
	assert_int_equal(c->analytics.metrics_top, 20);
	assert_null(cfg_cache_table(c, "public", "orders"));
	cfg_free(c);
}

static void test_seed_cache_section_loads(void **state)
{
	struct cfg *c = load_ok(SEED_CACHE NODE);

	assert_true(c->cache.enabled);
	assert_int_equal(c->cache.max_memory_mb, 512);
	assert_int_equal(c->cache.default_ttl_secs, 60);
	assert_int_equal(c->cache.max_entry_kb, 256);
	assert_int_equal(c->cache.n_tables, 0);
	cfg_free(c);
}

static void test_full_cache_tables_and_analytics_file_loads_with_its_values(void **state)
{
	struct cfg *c = load_ok("[cache]\nenabled = true\nmax_memory_mb = 1048576\n"
	                        "default_ttl_secs = 86400\nmax_entry_kb = 1\n"
	                        "cache_rls_tables = true\n"
	                        "[[cache.tables]]\nname = \"Billing.Invoices\"\nttl_secs = 5\n"
	                        "[[cache.tables]]\nname = \"audit_log\"\nenabled = false\n"
	                        "[[cache.tables]]\nenabled = true\nttl_secs = 86400\n"
	                        "name = \"s$1.t_2\"\n"
	                        "[analytics]\nenabled = true\nslow_query_threshold_ms = 0\n"
	                        "slow_query_log = \"/var/log/helios/slow.jsonl\"\n"
	                        "slow_query_log_max_mb = 65536\nmax_fingerprints = 10\n"
	                        "metrics_top = 0\n" NODE);

	assert_true(c->cache.enabled);
	assert_int_equal(c->cache.max_memory_mb, 1048576);
	assert_int_equal(c->cache.default_ttl_secs, 86400);
	assert_int_equal(c->cache.max_entry_kb, 1);
	assert_true(c->cache.cache_rls_tables);
	assert_int_equal(c->cache.n_tables, 3);
	/* Kept as written: matching is case-insensitive. */
	assert_string_equal(c->cache.tables[0].name, "Billing.Invoices");
	assert_int_equal(c->cache.tables[0].ttl_secs, 5);
	assert_true(c->cache.tables[0].enabled);
	assert_string_equal(c->cache.tables[1].name, "audit_log");
	assert_int_equal(c->cache.tables[1].ttl_secs, 0);
	assert_false(c->cache.tables[1].enabled);
	assert_string_equal(c->cache.tables[2].name, "s$1.t_2");
	assert_int_equal(c->cache.tables[2].ttl_secs, 86400);
	assert_true(c->cache.tables[2].enabled);
	assert_true(c->analytics.enabled);
	assert_int_equal(c->analytics.slow_query_threshold_ms, 0);
	assert_string_equal(c->analytics.slow_query_log, "/var/log/helios/slow.jsonl");
	assert_int_equal(c->analytics.slow_query_log_max_mb, 65536);
	assert_int_equal(c->analytics.max_fingerprints, 10);
	assert_int_equal(c->analytics.metrics_top, 0);
	cfg_free(c);
}

static void test_slow_query_log_defaults_next_to_the_config_file(void **state)
{
	char want[300];
	struct cfg_error err;
	struct cfg *c = load_with(NODE, NULL, &err);

	if (!c)
		fail_msg("refused: %s", err.msg);
	snprintf(want, sizeof(want), "%s/proxy.toml.slow.jsonl", tmpdir);
	assert_string_equal(c->analytics.slow_query_log, want);
	cfg_free(c);
	/* A relative path is relative to the config file's folder. */
	c = load_with("[analytics]\nslow_query_log = \"logs/slow.jsonl\"\n" NODE, NULL, &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	snprintf(want, sizeof(want), "%s/logs/slow.jsonl", tmpdir);
	assert_string_equal(c->analytics.slow_query_log, want);
	cfg_free(c);
}

static void test_cache_table_bad_name_is_refused(void **state)
{
	static const char *const bad[] = {"\"a.b.c\"", "\"bad-name\"", "\"with space\"", "\".t\"",
	                                  "\"s.\"", "\"caf\\u00e9\"",
	                                  /* 64 bytes: longer than a PostgreSQL identifier */
	                                  "\"s." N64 "\"", "\"" N64 ".t\""};
	char text[512], want[256];
	struct cfg *c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         NODE "[[cache.tables]]\nname = \"ok\"\n[[cache.tables]]\nttl_secs = 1\n"
		              "name = %s\n",
		         bad[i]);
		snprintf(want, sizeof(want), "proxy.toml:7: key 'cache.tables[1].name': %s",
		         strstr(bad[i], "\\u00e9") ? "" : bad[i]);
		assert_refused(text, want, "is not table or schema.table", NULL);
	}
	assert_refused(NODE "[[cache.tables]]\nname = \"\"\n",
	               "proxy.toml:4: key 'cache.tables[0].name' must not be empty", NULL);
	assert_refused(NODE "[[cache.tables]]\nttl_secs = 5\n",
	               "proxy.toml:3: key 'cache.tables[0].name' is required", NULL);
	assert_refused(NODE "[[cache.tables]]\nname = \"" N64 "." N63 "\"\n",
	               "proxy.toml:4: key 'cache.tables[0].name': value is 128 bytes, longer than "
	               "the 127 allowed",
	               NULL);
	c = load_ok(NODE "[[cache.tables]]\nname = \"" N63 "." N63 "\"\n");
	assert_int_equal(strlen(c->cache.tables[0].name), 127);
	cfg_free(c);
}

static void test_duplicate_cache_table_names_are_refused_ignoring_case(void **state)
{
	struct cfg *c;

	assert_refused(NODE "[[cache.tables]]\nname = \"public.Orders\"\n"
	                    "[[cache.tables]]\nname = \"items\"\n"
	                    "[[cache.tables]]\nttl_secs = 3\nname = \"PUBLIC.orders\"\n",
	               "proxy.toml:9: key 'cache.tables[2].name': duplicate table name "
	               "\"PUBLIC.orders\" (also cache.tables[0]",
	               NULL);
	/* A qualified and an unqualified name are different entries. */
	c = load_ok(NODE "[[cache.tables]]\nname = \"orders\"\n"
	                 "[[cache.tables]]\nname = \"public.orders\"\n"
	                 "[[cache.tables]]\nname = \"archive.orders\"\n");
	assert_int_equal(c->cache.n_tables, 3);
	cfg_free(c);
}

static void test_cache_and_analytics_ranges_are_checked(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[cache]\nmax_memory_mb = 0\n",
	     "proxy.toml:2: key 'cache.max_memory_mb': 0 is out of range (1..1048576)"},
	    {"[cache]\nmax_memory_mb = 1048577\n",
	     "key 'cache.max_memory_mb': 1048577 is out of range (1..1048576)"},
	    {"[cache]\ndefault_ttl_secs = 0\n",
	     "key 'cache.default_ttl_secs': 0 is out of range (1..86400)"},
	    {"[cache]\ndefault_ttl_secs = 86401\n",
	     "key 'cache.default_ttl_secs': 86401 is out of range (1..86400)"},
	    {"[cache]\nmax_entry_kb = 0\n",
	     "key 'cache.max_entry_kb': 0 is out of range (1..1048576)"},
	    {"[[cache.tables]]\nname = \"t\"\nttl_secs = -1\n",
	     "proxy.toml:3: key 'cache.tables[0].ttl_secs': -1 is out of range (0..86400)"},
	    {"[[cache.tables]]\nname = \"t\"\nttl_secs = 86401\n",
	     "key 'cache.tables[0].ttl_secs': 86401 is out of range (0..86400)"},
	    {"[analytics]\nslow_query_threshold_ms = -1\n",
	     "proxy.toml:2: key 'analytics.slow_query_threshold_ms': -1 is out of range "
	     "(0..86400000)"},
	    {"[analytics]\nslow_query_threshold_ms = 86400001\n",
	     "key 'analytics.slow_query_threshold_ms': 86400001 is out of range (0..86400000)"},
	    {"[analytics]\nslow_query_log_max_mb = 0\n",
	     "key 'analytics.slow_query_log_max_mb': 0 is out of range (1..65536)"},
	    {"[analytics]\nmax_fingerprints = 9\n",
	     "key 'analytics.max_fingerprints': 9 is out of range (10..1000000)"},
	    {"[analytics]\nmax_fingerprints = 1000001\n",
	     "key 'analytics.max_fingerprints': 1000001 is out of range (10..1000000)"},
	    {"[analytics]\nmetrics_top = 1001\n",
	     "key 'analytics.metrics_top': 1001 is out of range (0..1000)"},
	};
	char text[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s" NODE, cases[i].text);
		assert_refused(text, cases[i].want, NULL);
	}
}

static void test_cache_and_analytics_wrong_types_are_refused(void **state)
{
	assert_refused("[cache]\nenabled = \"yes\"\n" NODE,
	               "proxy.toml:2: key 'cache.enabled': expected boolean, got string", NULL);
	assert_refused("[cache]\nmax_memory_mb = 1.5\n" NODE,
	               "proxy.toml:2: key 'cache.max_memory_mb': expected integer, got float",
	               NULL);
	assert_refused("[cache]\ncache_rls_tables = 1\n" NODE,
	               "key 'cache.cache_rls_tables': expected boolean, got integer", NULL);
	assert_refused(NODE "[[cache.tables]]\nname = \"t\"\nenabled = \"no\"\n",
	               "proxy.toml:5: key 'cache.tables[0].enabled': expected boolean, got string",
	               NULL);
	assert_refused(NODE "[[cache.tables]]\nname = [\"t\"]\n",
	               "proxy.toml:4: key 'cache.tables[0].name': expected string, got array",
	               NULL);
	assert_refused(NODE "[[cache.tables]]\nname = \"t\"\nttl_secs = \"5\"\n",
	               "key 'cache.tables[0].ttl_secs': expected integer, got string", NULL);
	assert_refused("[cache]\ntables = 1\n" NODE,
	               "proxy.toml:2: key 'cache.tables': expected array of tables "
	               "([[cache.tables]]), got integer",
	               NULL);
	assert_refused("cache = 1\n" NODE, "key 'cache': expected table, got integer", NULL);
	assert_refused("[analytics]\nslow_query_log = 1\n" NODE,
	               "proxy.toml:2: key 'analytics.slow_query_log': expected string, got integer",
	               NULL);
	assert_refused("[analytics]\nenabled = 0\n" NODE,
	               "key 'analytics.enabled': expected boolean, got integer", NULL);
	assert_refused(NODE "[[cache.tables]]\nname = \"t\"\nttl = 5\n",
	               "proxy.toml:5: unknown key 'cache.tables[0].ttl'", NULL);
	assert_refused("[cache]\nmax_memory_md = 5\n" NODE,
	               "unknown key 'cache.max_memory_md' (did you mean 'max_memory_mb'?)", NULL);
	assert_refused(NODE "[[cache.table]]\nname = \"t\"\n",
	               "unknown table 'cache.table' (did you mean 'tables'?)", NULL);
	assert_refused("[analytic]\n" NODE, "unknown table 'analytic' (did you mean 'analytics'?)",
	               NULL);
}

static void test_refused_cache_table_frees_what_was_loaded(void **state)
{
	/* Run under ASan: a leak of the half-built array fails the test. */
	assert_refused(NODE "[[cache.tables]]\nname = \"a\"\n[[cache.tables]]\nname = 2\n",
	               "key 'cache.tables[1].name': expected string", NULL);
	assert_refused(NODE "[[cache.tables]]\nname = \"a\"\n[[cache.tables]]\nname = \"A\"\n",
	               "key 'cache.tables[1].name': duplicate table name", NULL);
}

static void test_to_toml_round_trips_cache_tables_and_analytics(void **state)
{
	struct cfg_error err;
	struct cfg *c, *c2;
	char *toml;
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char name[64];

	c = cfg_load_file(write_tmp("rt.toml",
	                            SEED_CACHE "max_entry_kb = 2048\ncache_rls_tables = true\n"
	                                       "[[cache.tables]]\nname = \"Billing.Invoices\"\n"
	                                       "ttl_secs = 30\n"
	                                       "[[cache.tables]]\nname = \"audit$log\"\n"
	                                       "enabled = false\n"
	                                       "[analytics]\nenabled = true\n"
	                                       "slow_query_threshold_ms = 250\n"
	                                       "slow_query_log = \"slow \\\"q\\\".jsonl\"\n"
	                                       "max_fingerprints = 500\nmetrics_top = 7\n" NODE),
	                  &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	toml = cfg_to_toml(c);
	assert_non_null(toml);
	assert_non_null(strstr(toml, "\n[cache]\nenabled = true\nmax_memory_mb = 512\n"));
	assert_non_null(strstr(toml, "\n[[cache.tables]]\nname = \"Billing.Invoices\"\n"
	                             "ttl_secs = 30\nenabled = true\n"));
	assert_non_null(strstr(toml, "\n[[cache.tables]]\nname = \"audit$log\"\nttl_secs = 0\n"
	                             "enabled = false\n"));
	c2 = cfg_load_string("snapshot", toml, strlen(toml), &err);
	if (!c2)
		fail_msg("snapshot refused: %s\n%s", err.msg, toml);
	for (size_t i = 0; i < n; i++) {
		cfg_key_name(&keys[i], name, sizeof(name));
		if (!cfg_key_equal(c, c2, &keys[i]))
			fail_msg("key %s differs", name);
	}
	assert_int_equal(c2->cache.n_tables, 2);
	assert_string_equal(c2->cache.tables[0].name, "Billing.Invoices");
	assert_false(c2->cache.tables[1].enabled);
	/* Stored resolved, so the snapshot needs no folder to resolve it. */
	assert_string_equal(c2->analytics.slow_query_log, c->analytics.slow_query_log);
	assert_non_null(strstr(c2->analytics.slow_query_log, "/slow \"q\".jsonl"));
	/* A fixed point: the snapshot writes itself the same way. */
	assert_writes_toml(c2, toml);
	free(toml);
	cfg_free(c2);
	cfg_free(c);
}

static void test_key_equal_compares_every_cache_table(void **state)
{
#define TABLE(name, ttl) "[[cache.tables]]\nname = \"" name "\"\nttl_secs = " #ttl "\n"
	struct cfg *a = load_ok(NODE TABLE("a", 1) TABLE("b", 2));
	struct cfg *same = load_ok(NODE TABLE("a", 1) TABLE("b", 2));
	struct cfg *other_ttl = load_ok(NODE TABLE("a", 1) TABLE("b", 3));
	struct cfg *other_name = load_ok(NODE TABLE("a", 1) TABLE("B", 2));
	struct cfg *shorter = load_ok(NODE TABLE("a", 1));
	struct cfg *none = load_ok(NODE);
	const struct cfg_key *name = cfg_key_find("cache.tables.name");
	const struct cfg_key *ttl = cfg_key_find("cache.tables.ttl_secs");

	assert_non_null(name);
	assert_non_null(ttl);
	assert_true(cfg_key_equal(a, same, name));
	assert_true(cfg_key_equal(a, same, ttl));
	assert_true(cfg_key_equal(a, other_ttl, name));
	assert_false(cfg_key_equal(a, other_ttl, ttl));
	assert_false(cfg_key_equal(a, other_name, name));
	assert_false(cfg_key_equal(a, shorter, name));
	assert_false(cfg_key_equal(a, none, ttl));
	assert_true(cfg_key_equal(none, none, name));
	assert_true(cfg_key_equal(a, none, cfg_key_find("cache.enabled")));
	cfg_free(a);
	cfg_free(same);
	cfg_free(other_ttl);
	cfg_free(other_name);
	cfg_free(shorter);
	cfg_free(none);
#undef TABLE
}

static void test_cache_tables_format_as_toml_arrays(void **state)
{
	struct cfg *c = load_ok(NODE "[[cache.tables]]\nname = \"a\"\n"
	                             "[[cache.tables]]\nname = \"s.B\"\nenabled = false\n");
	char buf[128];

	assert_int_equal(cfg_format_value(c, cfg_key_find("cache.tables.name"), buf, sizeof(buf)),
	                 0);
	assert_string_equal(buf, "[\"a\", \"s.B\"]");
	assert_int_equal(
	    cfg_format_value(c, cfg_key_find("cache.tables.enabled"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[true, false]");
	assert_int_equal(
	    cfg_format_value(c, cfg_key_find("analytics.max_fingerprints"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2000");
	cfg_free(c);
}

static void test_overrides_set_cache_and_analytics_keys(void **state)
{
	struct cfg_error err;
	struct cfg *c = load_with(SEED_CACHE NODE,
	                          "cache.enabled = false\nanalytics.slow_query_threshold_ms = 50\n"
	                          "cache.max_entry_kb = 8\n",
	                          &err);
	char line[256];

	if (!c)
		fail_msg("refused: %s", err.msg);
	assert_false(c->cache.enabled);
	assert_int_equal(c->cache.max_memory_mb, 512); /* from the file */
	assert_int_equal(c->cache.max_entry_kb, 8);
	assert_int_equal(c->analytics.slow_query_threshold_ms, 50);
	cfg_free(c);
	assert_int_equal(cfg_override_line("cache.enabled", "true", line, sizeof(line), &err), 0);
	assert_string_equal(line, "cache.enabled = true");
	assert_int_equal(
	    cfg_override_line("analytics.slow_query_threshold_ms", "250", line, sizeof(line), &err),
	    0);
	assert_string_equal(line, "analytics.slow_query_threshold_ms = 250");
	assert_int_equal(
	    cfg_override_line("analytics.slow_query_log", "/tmp/s.jsonl", line, sizeof(line), &err),
	    0);
	assert_string_equal(line, "analytics.slow_query_log = \"/tmp/s.jsonl\"");
	assert_int_equal(cfg_override_line("cache.max_memory_mb", "0", line, sizeof(line), &err),
	                 -1);
	assert_string_equal(err.msg, "key 'cache.max_memory_mb': 0 is out of range (1..1048576)");
}

static void test_overrides_of_cache_tables_keys_are_refused(void **state)
{
	static const char *const ovr[] = {
	    "cache.tables.enabled = false\n",
	    "[cache]\ntables.ttl_secs = 5\n",
	    "[[cache.tables]]\nname = \"t\"\n",
	};
	static const char *const want[] = {
	    "ovr.toml:1: key 'cache.tables.enabled' is in the array table [[cache.tables]], which "
	    "cannot be overridden",
	    "ovr.toml:2: key 'cache.tables.ttl_secs' is in the array table [[cache.tables]], "
	    "which cannot be overridden",
	    "ovr.toml:1: key 'cache.tables.name' is in the array table [[cache.tables]], which "
	    "cannot be overridden",
	};
	struct cfg_error err;
	char line[256];
	struct cfg *c;

	for (size_t i = 0; i < sizeof(ovr) / sizeof(ovr[0]); i++) {
		c = load_with(NODE "[[cache.tables]]\nname = \"t\"\n", ovr[i], &err);
		if (c) {
			cfg_free(c);
			fail_msg("accepted overrides \"%s\"", ovr[i]);
		}
		assert_string_equal(err.msg, want[i]);
	}
	assert_int_equal(
	    cfg_override_line("cache.tables.enabled", "false", line, sizeof(line), &err), -1);
	assert_string_equal(err.msg, "key 'cache.tables.enabled' is in the array table "
	                             "[[cache.tables]], which cannot be overridden; edit the "
	                             "config file");
	assert_int_equal(cfg_override_line("cache.tables.name", "t", line, sizeof(line), &err), -1);
	assert_non_null(strstr(err.msg, "cannot be overridden"));
}

static void test_cache_table_matches_like_schema_routes(void **state)
{
	struct cfg *c = load_ok(NODE "[[cache.tables]]\nname = \"Billing.Invoices\"\n"
	                             "[[cache.tables]]\nname = \"audit_log\"\n");

	/* Case-insensitive, qualified or not in the statement. */
	assert_ptr_equal(cfg_cache_table(c, "billing", "invoices"), &c->cache.tables[0]);
	assert_ptr_equal(cfg_cache_table(c, "BILLING", "INVOICES"), &c->cache.tables[0]);
	assert_ptr_equal(cfg_cache_table(c, "", "invoices"), &c->cache.tables[0]);
	assert_ptr_equal(cfg_cache_table(c, NULL, "Invoices"), &c->cache.tables[0]);
	assert_null(cfg_cache_table(c, "public", "invoices"));
	assert_null(cfg_cache_table(c, "billin", "invoices"));
	assert_null(cfg_cache_table(c, NULL, "invoice"));
	/* An unqualified entry matches the table in any schema. */
	assert_ptr_equal(cfg_cache_table(c, "ops", "AUDIT_LOG"), &c->cache.tables[1]);
	assert_ptr_equal(cfg_cache_table(c, NULL, "audit_log"), &c->cache.tables[1]);
	assert_null(cfg_cache_table(c, NULL, "audit"));
	cfg_free(c);
}

static void test_cache_table_written_like_the_statement_wins(void **state)
{
	struct cfg *c =
	    load_ok(NODE "[[cache.tables]]\nname = \"orders\"\n"
	                 "[[cache.tables]]\nname = \"archive.orders\"\nenabled = false\n"
	                 "[[cache.tables]]\nname = \"public.orders\"\nttl_secs = 5\n"
	                 "[[cache.tables]]\nname = \"a.items\"\n"
	                 "[[cache.tables]]\nname = \"b.items\"\n");

	assert_ptr_equal(cfg_cache_table(c, "archive", "orders"), &c->cache.tables[1]);
	assert_ptr_equal(cfg_cache_table(c, "public", "orders"), &c->cache.tables[2]);
	assert_ptr_equal(cfg_cache_table(c, "sales", "orders"), &c->cache.tables[0]);
	assert_ptr_equal(cfg_cache_table(c, NULL, "orders"), &c->cache.tables[0]);
	/* No entry written like an unqualified use: the first match in file order. */
	assert_ptr_equal(cfg_cache_table(c, NULL, "items"), &c->cache.tables[3]);
	assert_ptr_equal(cfg_cache_table(c, "b", "items"), &c->cache.tables[4]);
	assert_null(cfg_cache_table(c, "c", "items"));
	cfg_free(c);
}

/* Everything changes live except where the slow log file is and how big it
 * grows: the file is opened once, at start. */
static void test_only_the_slow_log_file_keys_need_a_restart(void **state)
{
	size_t n, seen = 0;
	const struct cfg_key *keys = cfg_key_table(&n);

	for (size_t i = 0; i < n; i++) {
		const char *sec = keys[i].section;
		if (strcmp(sec, "cache") != 0 && strcmp(sec, "cache.tables") != 0 &&
		    strcmp(sec, "analytics") != 0)
			continue;
		seen++;
		bool file_key = strcmp(sec, "analytics") == 0 &&
		                (strcmp(keys[i].name, "slow_query_log") == 0 ||
		                 strcmp(keys[i].name, "slow_query_log_max_mb") == 0);
		assert_int_equal((keys[i].flags & CFG_KEY_RESTART) != 0, file_key);
		assert_non_null(keys[i].doc);
		assert_null(strchr(keys[i].doc, '\n'));
	}
	assert_int_equal(seen, 5 + 3 + 6);
	assert_true(cfg_key_find("analytics.slow_query_log")->flags & CFG_KEY_PATH);
	assert_true(cfg_key_find("cache.tables.name")->flags & CFG_KEY_REQUIRED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cache_and_analytics_keys_have_their_defaults),
	    cmocka_unit_test(test_seed_cache_section_loads),
	    cmocka_unit_test(test_full_cache_tables_and_analytics_file_loads_with_its_values),
	    cmocka_unit_test(test_slow_query_log_defaults_next_to_the_config_file),
	    cmocka_unit_test(test_cache_table_bad_name_is_refused),
	    cmocka_unit_test(test_duplicate_cache_table_names_are_refused_ignoring_case),
	    cmocka_unit_test(test_cache_and_analytics_ranges_are_checked),
	    cmocka_unit_test(test_cache_and_analytics_wrong_types_are_refused),
	    cmocka_unit_test(test_refused_cache_table_frees_what_was_loaded),
	    cmocka_unit_test(test_to_toml_round_trips_cache_tables_and_analytics),
	    cmocka_unit_test(test_key_equal_compares_every_cache_table),
	    cmocka_unit_test(test_cache_tables_format_as_toml_arrays),
	    cmocka_unit_test(test_overrides_set_cache_and_analytics_keys),
	    cmocka_unit_test(test_overrides_of_cache_tables_keys_are_refused),
	    cmocka_unit_test(test_cache_table_matches_like_schema_routes),
	    cmocka_unit_test(test_cache_table_written_like_the_statement_wins),
	    cmocka_unit_test(test_only_the_slow_log_file_keys_need_a_restart),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
