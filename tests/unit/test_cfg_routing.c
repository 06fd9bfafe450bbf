/*
 * Unit tests for the routing side of common/cfg: [routing],
 * [circuit_breaker] and [[schema_routes]] (the string list key type), their
 * defaults, the rules the loader checks (with file:line and key in the
 * message), the node and check-user helpers and the values' formatting.
 */
#include "cfg_testutil.h"

/* A primary and a replica with names, for targets. */
#define NODES                                                                                      \
	"[[nodes]]\nname = \"main\"\nhost = \"db1\"\n"                                             \
	"[[nodes]]\nname = \"reports\"\nhost = \"db2\"\nrole = \"replica\"\n"

static void test_routing_and_breaker_keys_have_their_defaults(void **state)
{
	struct cfg *c = load_ok(NODE);

	assert_false(c->routing.read_write_split);
	assert_int_equal(c->routing.read_your_writes_ms, 0);
	assert_int_equal(c->routing.max_replica_lag_ms, 1000);
	assert_int_equal(c->routing.lag_check_interval_secs, 1);
	assert_int_equal(c->routing.failover_timeout_secs, 10);
	assert_string_equal(c->routing.check_user, "");
	assert_string_equal(c->routing.check_database, "postgres");
	assert_string_equal(c->routing.heartbeat_table, "public.helios_heartbeat");
	assert_int_equal(c->routing.analysis_cache_entries, 4096);
	assert_int_equal(c->circuit_breaker.failure_threshold, 5);
	assert_int_equal(c->circuit_breaker.recovery_timeout_secs, 10);
	assert_null(c->schema_routes);
	assert_int_equal(c->n_schema_routes, 0);
	cfg_free(c);
}

static void test_seed_routing_section_loads(void **state)
{
	struct cfg *c =
	    load_ok("[routing]\nmax_replica_lag_ms = 100\nlag_check_interval_secs = 1\n" NODE);

	assert_int_equal(c->routing.max_replica_lag_ms, 100);
	assert_int_equal(c->routing.lag_check_interval_secs, 1);
	assert_int_equal(c->routing.failover_timeout_secs, 10);
	cfg_free(c);
}

static void test_full_routing_breaker_and_schema_routes_file_loads_with_its_values(void **state)
{
	struct cfg *c = load_ok("[routing]\nread_write_split = true\nread_your_writes_ms = 2500\n"
	                        "max_replica_lag_ms = 0\nlag_check_interval_secs = 3600\n"
	                        "failover_timeout_secs = 30\ncheck_user = \"monitor\"\n"
	                        "check_database = \"app\"\nheartbeat_table = \"helios_hb\"\n"
	                        "analysis_cache_entries = 16\n"
	                        "[circuit_breaker]\nfailure_threshold = 0\n"
	                        "recovery_timeout_secs = 3600\n"
	                        "[[schema_routes]]\ntables = [\"Billing.Invoices\", \"audit_log\", "
	                        "\"s$1.t_2\"]\ntarget = \"primary\"\n"
	                        "[[schema_routes]]\ntables = [\"reports.daily\"]\n"
	                        "target = \"standby\"\n"
	                        "[[schema_routes]]\ntarget = \"reports\"\ntables = [\"stats\"]\n"
	                        "[[auth.users]]\nname = \"monitor\"\npassword = \"pw\"\n" NODES);

	assert_true(c->routing.read_write_split);
	assert_int_equal(c->routing.read_your_writes_ms, 2500);
	assert_int_equal(c->routing.max_replica_lag_ms, 0);
	assert_int_equal(c->routing.lag_check_interval_secs, 3600);
	assert_int_equal(c->routing.failover_timeout_secs, 30);
	assert_string_equal(c->routing.check_user, "monitor");
	assert_string_equal(c->routing.check_database, "app");
	assert_string_equal(c->routing.heartbeat_table, "helios_hb");
	assert_int_equal(c->routing.analysis_cache_entries, 16);
	assert_int_equal(c->circuit_breaker.failure_threshold, 0);
	assert_int_equal(c->circuit_breaker.recovery_timeout_secs, 3600);
	assert_int_equal(c->n_schema_routes, 3);
	assert_int_equal(c->schema_routes[0].n_tables, 3);
	/* Kept as written: the router compares case-insensitively. */
	assert_string_equal(c->schema_routes[0].tables[0], "Billing.Invoices");
	assert_string_equal(c->schema_routes[0].tables[1], "audit_log");
	assert_string_equal(c->schema_routes[0].tables[2], "s$1.t_2");
	assert_string_equal(c->schema_routes[0].target, "primary");
	assert_int_equal(c->schema_routes[1].n_tables, 1);
	assert_string_equal(c->schema_routes[1].tables[0], "reports.daily");
	assert_string_equal(c->schema_routes[1].target, "replica"); /* standby, one spelling */
	assert_string_equal(c->schema_routes[2].target, "reports");
	assert_string_equal(c->schema_routes[2].tables[0], "stats");
	assert_ptr_equal(cfg_check_user(c), cfg_find_user(c, "monitor"));
	cfg_free(c);
}

static void test_schema_route_target_must_be_a_role_or_a_node_name(void **state)
{
	assert_refused(NODES "[[schema_routes]]\ntables = [\"t\"]\ntarget = \"primary\"\n"
	                     "[[schema_routes]]\ntables = [\"u\"]\n\ntarget = \"archive\"\n",
	               "proxy.toml:14: key 'schema_routes[1].target': \"archive\" is not primary, "
	               "replica, standby or a node name (main, reports)",
	               NULL);
	/* Role names are case-sensitive like every enum value. */
	assert_refused(NODE "[[schema_routes]]\ntables = [\"t\"]\ntarget = \"Primary\"\n",
	               "proxy.toml:5: key 'schema_routes[0].target': \"Primary\" is not primary",
	               "(node0)", NULL);
	assert_refused(NODE "[[schema_routes]]\ntables = [\"t\"]\ntarget = \"\"\n",
	               "proxy.toml:5: key 'schema_routes[0].target' must not be empty", NULL);
	assert_refused(NODE "[[schema_routes]]\ntables = [\"t\"]\n",
	               "proxy.toml:3: key 'schema_routes[0].target' is required", NULL);
	assert_refused(NODE "[[schema_routes]]\ntables = [\"t\"]\ntarget = 1\n",
	               "proxy.toml:5: key 'schema_routes[0].target': expected string, got integer",
	               NULL);
}

static void test_schema_route_bad_table_name_is_refused(void **state)
{
	static const char *const bad[] = {"\"a.b.c\"", "\"bad-name\"", "\"with space\"", "\".t\"",
	                                  "\"s.\"", "\"\"", "\"caf\\u00e9\"",
	                                  /* 64 bytes: longer than a PostgreSQL identifier */
	                                  "\"s." N64 "\"", "\"" N64 ".t\""};
	char text[512], want[256];
	struct cfg *c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [\"ok\", %s]\n",
		         bad[i]);
		snprintf(want, sizeof(want), "proxy.toml:5: key 'schema_routes[0].tables': %s",
		         bad[i]);
		if (strstr(bad[i], "\\u00e9"))
			snprintf(want, sizeof(want),
			         "proxy.toml:5: key 'schema_routes[0].tables': ");
		assert_refused(text, want, "is not table or schema.table", NULL);
	}
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [\"a\\u0000b\"]\n",
	               "proxy.toml:5: key 'schema_routes[0].tables[0]': contains a NUL byte", NULL);
	/* 128 bytes cannot be two identifiers and a dot: refused for its length. */
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [\"" N64 "." N63
	                    "\"]\n",
	               "proxy.toml:5: key 'schema_routes[0].tables[0]': value is 128 bytes, longer "
	               "than the 127 allowed",
	               NULL);
	c = load_ok(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [\"" N63 "." N63
	                 "\"]\n");
	assert_int_equal(strlen(c->schema_routes[0].tables[0]), 127);
	cfg_free(c);
}

static void test_schema_route_tables_must_be_a_non_empty_array_of_strings(void **state)
{
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = []\n",
	               "proxy.toml:5: key 'schema_routes[0].tables' must not be empty", NULL);
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = \"orders\"\n",
	               "proxy.toml:5: key 'schema_routes[0].tables': expected array, got string",
	               NULL);
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [\"a\", 2]\n",
	               "proxy.toml:5: key 'schema_routes[0].tables[1]': expected string, got "
	               "integer",
	               NULL);
	assert_refused(NODE "[[schema_routes]]\ntarget = \"primary\"\n",
	               "proxy.toml:3: key 'schema_routes[0].tables' is required", NULL);
	assert_refused("schema_routes = 1\n" NODE,
	               "key 'schema_routes': expected array of tables ([[schema_routes]]), got "
	               "integer",
	               NULL);
	assert_refused(NODE
	               "[[schema_routes]]\ntables = [\"t\"]\ntarget = \"primary\"\nweight = 1\n",
	               "proxy.toml:6: unknown key 'schema_routes[0].weight'", NULL);
}

static void test_schema_route_table_list_is_bounded(void **state)
{
	size_t cap = 16 * 1024, len;
	char *text = malloc(cap);
	struct cfg *c;

	assert_non_null(text);
	len =
	    (size_t)snprintf(text, cap, NODE "[[schema_routes]]\ntarget = \"primary\"\ntables = [");
	for (int i = 0; i < 1001; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s\"t%d\"", i ? "," : "", i);
	snprintf(text + len, cap - len, "]\n");
	assert_refused(text,
	               "proxy.toml:5: key 'schema_routes[0].tables': 1001 strings, expected "
	               "1..1000",
	               NULL);
	/* 1000 is fine. */
	strcpy(strstr(text, ",\"t1000\""), "]\n");
	c = load_ok(text);
	assert_int_equal(c->schema_routes[0].n_tables, 1000);
	assert_string_equal(c->schema_routes[0].tables[999], "t999");
	cfg_free(c);
	free(text);
}

static void test_check_user_must_be_a_user_with_a_plaintext_password(void **state)
{
	char text[1024];
	struct cfg *c;

	assert_refused("[routing]\ncheck_user = \"nobody\"\n[[auth.users]]\nname = \"a\"\n"
	               "password = \"pw\"\n" NODE,
	               "proxy.toml:2: key 'routing.check_user': \"nobody\" is not a user from "
	               "[[auth.users]] or auth.users_file",
	               NULL);
	assert_refused("[routing]\ncheck_user = \"mon\"\n"
	               "[[auth.users]]\nname = \"mon\"\n"
	               "password = \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\"\n" NODE,
	               "proxy.toml:2: key 'routing.check_user': user \"mon\" has no plaintext "
	               "password or server_password",
	               NULL);
	assert_refused("[routing]\ncheck_user = \"mon\"\n[[auth.users]]\nname = \"mon\"\n"
	               "password = \"md50123456789abcdef0123456789abcdef\"\n" NODE,
	               "key 'routing.check_user': user \"mon\" has no plaintext", NULL);
	assert_refused("[routing]\ncheck_user = \"mon\"\n[[auth.users]]\nname = \"mon\"\n" NODE,
	               "key 'routing.check_user': user \"mon\" has no plaintext", NULL);
	/* A secret with a server_password is fine, and so is a users_file user. */
	c = load_ok("[routing]\ncheck_user = \"mon\"\n[[auth.users]]\nname = \"mon\"\n"
	            "password = \"md50123456789abcdef0123456789abcdef\"\n"
	            "server_password = \"srv\"\n" NODE);
	assert_string_equal(cfg_user_plain_password(cfg_check_user(c)), "srv");
	cfg_free(c);
	snprintf(text, sizeof(text),
	         "[routing]\ncheck_user = \"filemon\"\n[auth]\nusers_file = \"%s\"\n" NODE,
	         write_tmp("users.txt", "\"filemon\" \"plain\"\n"));
	c = load_ok(text);
	assert_string_equal(cfg_check_user(c)->name, "filemon");
	assert_string_equal(cfg_user_plain_password(cfg_check_user(c)), "plain");
	cfg_free(c);
}

static void test_check_user_falls_back_to_auth_user_then_first_plaintext_user(void **state)
{
	struct cfg *c = load_ok("[[auth.users]]\nname = \"scram\"\n"
	                        "password = \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\"\n"
	                        "[[auth.users]]\nname = \"md5\"\n"
	                        "password = \"md50123456789abcdef0123456789abcdef\"\n"
	                        "[[auth.users]]\nname = \"plain\"\npassword = \"pw\"\n" NODE);

	assert_string_equal(cfg_check_user(c)->name, "plain");
	assert_null(cfg_user_plain_password(&c->auth.users[0]));
	assert_null(cfg_user_plain_password(&c->auth.users[1]));
	cfg_free(c);
	c = load_ok("[auth]\nauth_user = \"pgb\"\n[[auth.users]]\nname = \"plain\"\n"
	            "password = \"pw\"\n[[auth.users]]\nname = \"pgb\"\npassword = \"x\"\n" NODE);
	assert_string_equal(cfg_check_user(c)->name, "pgb");
	cfg_free(c);
	c = load_ok("[[auth.users]]\nname = \"nopw\"\n" NODE);
	assert_null(cfg_check_user(c));
	cfg_free(c);
}

static void test_heartbeat_table_must_be_a_lower_case_identifier(void **state)
{
	static const char *const bad[] = {"Public.hb", "a.b.c", "1hb", "s.1hb", "hb$",
	                                  "",          "s.",    ".hb", "hb-x"};
	char text[256], want[256];
	struct cfg *c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[routing]\nheartbeat_table = \"%s\"\n" NODE, bad[i]);
		snprintf(want, sizeof(want),
		         "proxy.toml:2: key 'routing.heartbeat_table': \"%s\" is not table or "
		         "schema.table",
		         bad[i]);
		assert_refused(text, want, NULL);
	}
	c = load_ok("[routing]\nheartbeat_table = \"_helios.hb_2\"\n" NODE);
	assert_string_equal(c->routing.heartbeat_table, "_helios.hb_2");
	cfg_free(c);
	c = load_ok("[routing]\nheartbeat_table = \"" N63 "." N63 "\"\n" NODE);
	assert_int_equal(strlen(c->routing.heartbeat_table), 127);
	cfg_free(c);
	assert_refused("[routing]\nheartbeat_table = \"" N64 "\"\n" NODE,
	               "key 'routing.heartbeat_table': \"" N64 "\" is not table", NULL);
}

static void test_routing_and_breaker_ranges_are_checked(void **state)
{
	assert_refused("[routing]\nread_your_writes_ms = 600001\n" NODE,
	               "proxy.toml:2: key 'routing.read_your_writes_ms': 600001 is out of range "
	               "(0..600000)",
	               NULL);
	assert_refused("[routing]\nmax_replica_lag_ms = -1\n" NODE,
	               "key 'routing.max_replica_lag_ms': -1 is out of range (0..86400000)", NULL);
	assert_refused("[routing]\nlag_check_interval_secs = 0\n" NODE,
	               "key 'routing.lag_check_interval_secs': 0 is out of range (1..3600)", NULL);
	assert_refused("[routing]\nfailover_timeout_secs = 3601\n" NODE,
	               "key 'routing.failover_timeout_secs': 3601 is out of range (1..3600)", NULL);
	assert_refused("[routing]\nanalysis_cache_entries = 15\n" NODE,
	               "key 'routing.analysis_cache_entries': 15 is out of range (16..1000000)",
	               NULL);
	assert_refused("[circuit_breaker]\nfailure_threshold = 1001\n" NODE,
	               "proxy.toml:2: key 'circuit_breaker.failure_threshold': 1001 is out of "
	               "range (0..1000)",
	               NULL);
	assert_refused("[circuit_breaker]\nrecovery_timeout_secs = 0\n" NODE,
	               "key 'circuit_breaker.recovery_timeout_secs': 0 is out of range (1..3600)",
	               NULL);
	assert_refused("[routing]\nread_write_split = \"yes\"\n" NODE,
	               "key 'routing.read_write_split': expected boolean, got string", NULL);
	assert_refused(
	    "[routing]\nmax_replica_lagms = 5\n" NODE,
	    "unknown key 'routing.max_replica_lagms' (did you mean 'max_replica_lag_ms'?)", NULL);
	assert_refused("[circuit-breaker]\n" NODE,
	               "unknown table 'circuit-breaker' (did you mean 'circuit_breaker'?)", NULL);
}

static void test_node_by_name_and_index(void **state)
{
	struct cfg *c = load_ok(NODES NODE);

	assert_ptr_equal(cfg_node_by_name(c, "main"), &c->nodes[0]);
	assert_ptr_equal(cfg_node_by_name(c, "reports"), &c->nodes[1]);
	assert_ptr_equal(cfg_node_by_name(c, "node2"), &c->nodes[2]);
	assert_null(cfg_node_by_name(c, "Main"));
	assert_null(cfg_node_by_name(c, ""));
	assert_int_equal(cfg_node_index(c, "main"), 0);
	assert_int_equal(cfg_node_index(c, "node2"), 2);
	assert_int_equal(cfg_node_index(c, "none"), -1);
	cfg_free(c);
}

static void test_schema_routes_format_as_toml_arrays(void **state)
{
	struct cfg *c =
	    load_ok(NODES "[[schema_routes]]\ntables = [\"a\", \"s.B\"]\n"
	                  "target = \"main\"\n"
	                  "[[schema_routes]]\ntables = [\"c\"]\ntarget = \"standby\"\n");
	const struct cfg_key *tables = cfg_key_find("schema_routes.tables");
	char buf[128];

	assert_non_null(tables);
	assert_int_equal(tables->type, CFG_KEY_STRLIST);
	assert_true(tables->flags & CFG_KEY_REQUIRED);
	assert_int_equal(cfg_format_value(c, tables, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[[\"a\", \"s.B\"], [\"c\"]]");
	assert_int_equal(
	    cfg_format_value(c, cfg_key_find("schema_routes.target"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[\"main\", \"replica\"]");
	assert_int_equal(cfg_format_value(c, tables, buf, 10), -ENOSPC);
	assert_int_equal(
	    cfg_format_value(c, cfg_key_find("routing.read_write_split"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "false");
	assert_int_equal(
	    cfg_format_value(c, cfg_key_find("routing.heartbeat_table"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "\"public.helios_heartbeat\"");
	cfg_free(c);
	c = load_ok(NODE);
	assert_int_equal(cfg_format_value(c, tables, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[]");
	cfg_free(c);
}

static void test_refused_config_frees_its_half_built_table_lists(void **state)
{
	/* Run under ASan: a leak of the first route's list fails the test. */
	assert_refused(NODE "[[schema_routes]]\ntables = [\"a\", \"b\"]\ntarget = \"primary\"\n"
	                    "[[schema_routes]]\ntables = [\"c\", 3]\ntarget = \"primary\"\n",
	               "key 'schema_routes[1].tables[1]': expected string", NULL);
	assert_refused(NODE "[[schema_routes]]\ntables = [\"a\"]\ntarget = \"x\"\n",
	               "key 'schema_routes[0].target'", NULL);
}

static void test_only_analysis_cache_entries_needs_a_restart(void **state)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);

	for (size_t i = 0; i < n; i++) {
		const char *sec = keys[i].section;
		if (strcmp(sec, "routing") != 0 && strcmp(sec, "circuit_breaker") != 0 &&
		    strcmp(sec, "schema_routes") != 0)
			continue;
		if (strcmp(keys[i].name, "analysis_cache_entries") == 0)
			assert_true(keys[i].flags & CFG_KEY_RESTART);
		else
			assert_false(keys[i].flags & CFG_KEY_RESTART);
		assert_non_null(keys[i].doc);
		assert_null(strchr(keys[i].doc, '\n'));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routing_and_breaker_keys_have_their_defaults),
	    cmocka_unit_test(test_seed_routing_section_loads),
	    cmocka_unit_test(
	        test_full_routing_breaker_and_schema_routes_file_loads_with_its_values),
	    cmocka_unit_test(test_schema_route_target_must_be_a_role_or_a_node_name),
	    cmocka_unit_test(test_schema_route_bad_table_name_is_refused),
	    cmocka_unit_test(test_schema_route_tables_must_be_a_non_empty_array_of_strings),
	    cmocka_unit_test(test_schema_route_table_list_is_bounded),
	    cmocka_unit_test(test_check_user_must_be_a_user_with_a_plaintext_password),
	    cmocka_unit_test(test_check_user_falls_back_to_auth_user_then_first_plaintext_user),
	    cmocka_unit_test(test_heartbeat_table_must_be_a_lower_case_identifier),
	    cmocka_unit_test(test_routing_and_breaker_ranges_are_checked),
	    cmocka_unit_test(test_node_by_name_and_index),
	    cmocka_unit_test(test_schema_routes_format_as_toml_arrays),
	    cmocka_unit_test(test_refused_config_frees_its_half_built_table_lists),
	    cmocka_unit_test(test_only_analysis_cache_entries_needs_a_restart),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
