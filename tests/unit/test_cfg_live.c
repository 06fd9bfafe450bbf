/*
 * Unit tests for the control plane's side of common/cfg: overrides laid over
 * a config file, cfg_to_toml round trips, "helioctl config set" lines,
 * comparing configs key by key and keeping restart-only keys.
 */
#include "cfg_testutil.h"

#include "common/rundir.h"

#define SEED                                                                                       \
	"listen_address = \"127.0.0.1:5433\"\n"                                                    \
	"[pool_mode]\n"                                                                            \
	"mode = \"transaction\"\n"                                                                 \
	"max_pool_size = 100\n"                                                                    \
	"[[nodes]]\n"                                                                              \
	"host = \"127.0.0.1\"\n"

static struct cfg *load_with_ok(const char *text, const char *ovr)
{
	struct cfg_error err;
	struct cfg *c = load_with(text, ovr, &err);

	if (!c)
		fail_msg("refused: %s", err.msg);
	return c;
}

/* Asserts the overrides are refused with exactly want after "ovr.toml:". */
static void assert_override_refused(const char *text, const char *ovr, const char *want)
{
	struct cfg_error err;
	struct cfg *c = load_with(text, ovr, &err);

	if (c) {
		cfg_free(c);
		fail_msg("accepted, expected \"%s\"", want);
	}
	assert_string_equal(err.msg, want);
}

static void test_override_replaces_the_file_value_and_keeps_the_others(void **state)
{
	struct cfg *c = load_with_ok(SEED "[auth]\nmethod = \"md5\"\n",
	                             "pool_mode.max_pool_size = 50\nlog_level = \"debug\"\n"
	                             "[auth]\nmethod = \"trust\"\n");

	assert_int_equal(c->pool.max_pool_size, 50);
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(c->auth.method, CFG_AUTH_TRUST);
	assert_int_equal(c->pool.mode, CFG_POOL_TRANSACTION);
	assert_string_equal(c->nodes[0].host, "127.0.0.1");
	cfg_free(c);
	/* NULL overrides = plain cfg_load_file. */
	c = load_with_ok(SEED, NULL);
	assert_int_equal(c->pool.max_pool_size, 100);
	cfg_free(c);
}

static void test_override_replaces_a_file_value_that_would_be_refused(void **state)
{
	struct cfg *c = load_with_ok("workers = \"four\"\n" SEED, "workers = 4\n");

	assert_int_equal(c->workers, 4);
	cfg_free(c);
}

static void test_override_of_unknown_key_is_refused_with_file_line_and_key(void **state)
{
	assert_override_refused(SEED, "log_level = \"info\"\n\npool_mode.max_pool_sise = 5\n",
	                        "ovr.toml:3: unknown key 'pool_mode.max_pool_sise' (did you mean "
	                        "'max_pool_size'?)");
	assert_override_refused(SEED, "[quotas]\nsize = 1\n", "ovr.toml:1: unknown table 'quotas'");
}

static void test_override_out_of_range_or_wrong_type_is_refused(void **state)
{
	assert_override_refused(
	    SEED, "\npool_mode.max_pool_size = 0\n",
	    "ovr.toml:2: key 'pool_mode.max_pool_size': 0 is out of range (1..10000)");
	assert_override_refused(SEED, "pool_mode.mode = \"bogus\"\n",
	                        "ovr.toml:1: key 'pool_mode.mode': \"bogus\" is not one of "
	                        "session, transaction, statement");
	assert_override_refused(SEED, "workers = \"4\"\n",
	                        "ovr.toml:1: key 'workers': expected integer, got string");
	assert_override_refused(SEED, "pool_mode = 1\n",
	                        "ovr.toml:1: key 'pool_mode': expected table, got integer");
}

static void test_override_of_an_array_table_key_is_refused(void **state)
{
	assert_override_refused(SEED, "nodes.port = 6432\n",
	                        "ovr.toml:1: key 'nodes.port' is in the array table [[nodes]], "
	                        "which cannot be overridden");
	assert_override_refused(SEED, "log_level = \"warn\"\n[[auth.users]]\nname = \"x\"\n",
	                        "ovr.toml:2: key 'auth.users.name' is in the array table "
	                        "[[auth.users]], which cannot be overridden");
	assert_override_refused(SEED, "schema_routes.tables = [\"t\"]\n",
	                        "ovr.toml:1: key 'schema_routes.tables' is in the array table "
	                        "[[schema_routes]], which cannot be overridden");
	assert_override_refused(SEED, "[[schema_routes]]\ntarget = \"primary\"\n",
	                        "ovr.toml:1: key 'schema_routes.target' is in the array table "
	                        "[[schema_routes]], which cannot be overridden");
}

static void test_override_sets_routing_and_breaker_keys(void **state)
{
	struct cfg *c = load_with_ok(SEED "[routing]\nmax_replica_lag_ms = 100\n"
	                                  "[[schema_routes]]\ntables = [\"t\"]\n"
	                                  "target = \"replica\"\n",
	                             "routing.max_replica_lag_ms = 250\n"
	                             "routing.read_write_split = true\n"
	                             "circuit_breaker.failure_threshold = 0\n");

	assert_int_equal(c->routing.max_replica_lag_ms, 250);
	assert_true(c->routing.read_write_split);
	assert_int_equal(c->circuit_breaker.failure_threshold, 0);
	/* The file's routes stay. */
	assert_int_equal(c->n_schema_routes, 1);
	assert_string_equal(c->schema_routes[0].tables[0], "t");
	cfg_free(c);
	assert_override_refused(SEED, "routing.max_replica_lag_ms = -5\n",
	                        "ovr.toml:1: key 'routing.max_replica_lag_ms': -5 is out of range "
	                        "(0..86400000)");
	assert_override_refused(SEED, "routing.check_user = \"ghost\"\n",
	                        "ovr.toml:1: key 'routing.check_user': \"ghost\" is not a user "
	                        "from [[auth.users]] or auth.users_file");
	assert_override_refused(SEED, "routing.heartbeat_table = \"Bad.Name\"\n",
	                        "ovr.toml:1: key 'routing.heartbeat_table': \"Bad.Name\" is not "
	                        "table or schema.table (lower-case letters, digits and _, not "
	                        "starting with a digit, at most 63 bytes each)");
}

static void test_override_syntax_error_names_the_overrides(void **state)
{
	struct cfg_error err;

	assert_null(load_with(SEED, "workers = \n", &err));
	assert_non_null(strstr(err.msg, "ovr.toml:1:"));
}

static void test_cross_key_error_points_where_the_value_came_from(void **state)
{
	char want[300];

	/* min_idle from the file, max_pool_size from the overrides: file line 3. */
	snprintf(want, sizeof(want),
	         "%s/proxy.toml:3: key 'pool_mode.min_idle': 10 is greater than "
	         "pool_mode.max_pool_size (5)",
	         tmpdir);
	assert_override_refused("[pool_mode]\nmax_pool_size = 20\nmin_idle = 10\n" NODE,
	                        "pool_mode.max_pool_size = 5\n", want);
	assert_override_refused("[pool_mode]\nmax_pool_size = 20\n" NODE,
	                        "workers = 1\npool_mode.min_idle = 30\n",
	                        "ovr.toml:2: key 'pool_mode.min_idle': 30 is greater than "
	                        "pool_mode.max_pool_size (20)");
	assert_override_refused(NODE, "admin_users = \"root\"\n",
	                        "ovr.toml:1: key 'admin_users': \"root\" is not a user from "
	                        "[[auth.users]] or auth.users_file");
}

static void test_overrides_file_defaults_next_to_the_config_file(void **state)
{
	char want[300];
	struct cfg *c = load_with_ok(SEED, NULL);

	snprintf(want, sizeof(want), "%s/proxy.toml.live.toml", tmpdir);
	assert_string_equal(c->overrides_file, want);
	cfg_free(c);
	c = load_with_ok("overrides_file = \"state/live.toml\"\n" SEED, NULL);
	snprintf(want, sizeof(want), "%s/state/live.toml", tmpdir);
	assert_string_equal(c->overrides_file, want);
	cfg_free(c);
}

static void test_relative_config_path_gives_absolute_paths(void **state)
{
	char cwd[512], want[300];
	struct cfg_error err;
	struct cfg *c;

	write_tmp("proxy.toml", SEED "[auth]\nusers_file = \"users.txt\"\n");
	write_tmp("users.txt", "\"u\" \"p\"\n");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	c = cfg_load_file("proxy.toml", &err);
	assert_int_equal(chdir(cwd), 0);
	if (!c)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(c->path, "proxy.toml");
	snprintf(want, sizeof(want), "%s/users.txt", tmpdir);
	assert_string_equal(c->auth.users_file, want);
	snprintf(want, sizeof(want), "%s/proxy.toml.live.toml", tmpdir);
	assert_string_equal(c->overrides_file, want);
	cfg_free(c);
}

/* Asserts every key but users_file is equal in a and b. */
static void assert_all_keys_equal(const struct cfg *a, const struct cfg *b)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	const struct cfg_key *users_file = cfg_key_find("auth.users_file");
	char name[64];

	for (size_t i = 0; i < n; i++) {
		cfg_key_name(&keys[i], name, sizeof(name));
		if (&keys[i] != users_file && !cfg_key_equal(a, b, &keys[i]))
			fail_msg("key %s differs", name);
	}
}

static void test_to_toml_round_trips_a_full_config(void **state)
{
	char text[4096];
	struct cfg_error err;
	struct cfg *c, *c2;
	char *toml;

	write_tmp("rt-users.txt", "\"alice\" \"shadowed\"\n\"bob\" \"md5abc\"\n\"c\"\"q\" \"x\"\n");
	write_tmp("rt-cert.pem", "-----BEGIN CERTIFICATE-----\n");
	write_tmp("rt-key.pem", "-----BEGIN PRIVATE KEY-----\n");
	snprintf(text, sizeof(text),
	         "listen_address = \"[::1]:6000\"\nworkers = 3\nio_backend = \"epoll\"\n"
	         "log_level = \"warn\"\ncontrol_address = \"tcp://cp:7000\"\n"
	         "control_token = \"t0k\"\n"
	         "heartbeat_interval_ms = 250\nadmin_users = \"alice,bob\"\n"
	         "[pool_mode]\nmode = \"statement\"\nmax_pool_size = 7\nmin_idle = 2\n"
	         "reset_query = \"SET x = 'a\\\"b\\\\c'\\t\\n\"\ntrack_sql_prepare = false\n"
	         "pin_action = \"error\"\n"
	         "[[nodes]]\nname = \"main\"\nhost = \"db1\"\n"
	         "[[nodes]]\nhost = \"db2\"\nport = 6432\nrole = \"replica\"\n"
	         "[auth]\nmethod = \"md5\"\nusers_file = \"rt-users.txt\"\nauth_user = \"bob\"\n"
	         "[[auth.users]]\nname = \"alice\"\npassword = \"s3cret\"\n"
	         "server_password = \"srv\"\n"
	         "[tls]\nclient_mode = \"allow\"\ncert_file = \"rt-cert.pem\"\n"
	         "key_file = \"rt-key.pem\"\nserver_mode = \"require\"\n"
	         "[routing]\nread_write_split = true\nread_your_writes_ms = 500\n"
	         "max_replica_lag_ms = 100\nlag_check_interval_secs = 2\n"
	         "failover_timeout_secs = 20\ncheck_user = \"alice\"\n"
	         "check_database = \"app\"\nheartbeat_table = \"ops.hb\"\n"
	         "analysis_cache_entries = 100\n"
	         "[circuit_breaker]\nfailure_threshold = 3\nrecovery_timeout_secs = 7\n"
	         "[[schema_routes]]\ntables = [\"Billing.Invoices\", \"t$1\"]\n"
	         "target = \"primary\"\n"
	         "[[schema_routes]]\ntables = [\"reports.daily\"]\ntarget = \"standby\"\n"
	         "[[schema_routes]]\ntables = [\"stats\"]\ntarget = \"main\"\n");
	c = cfg_load_file(write_tmp("rt.toml", text), &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	toml = cfg_to_toml(c);
	assert_non_null(toml);
	assert_non_null(strstr(toml, "password = \"s3cret\"")); /* not masked */
	assert_null(strstr(toml, "shadowed"));
	c2 = cfg_load_string("snapshot", toml, strlen(toml), &err);
	if (!c2)
		fail_msg("snapshot refused: %s\n%s", err.msg, toml);
	assert_all_keys_equal(c, c2);
	assert_string_equal(c2->auth.users_file, "");
	assert_int_equal(c2->auth.n_users, 3);
	assert_int_equal(c2->auth.n_config_users, 3);
	assert_string_equal(cfg_find_user(c2, "c\"q")->password, "x");
	assert_string_equal(c2->tls.cert_file, c->tls.cert_file);
	assert_int_equal(c2->n_nodes, 2);
	assert_non_null(strstr(toml, "\n[[schema_routes]]\ntables = [\"Billing.Invoices\", "
	                             "\"t$1\"]\ntarget = \"primary\"\n"));
	assert_int_equal(c2->n_schema_routes, 3);
	assert_string_equal(c2->schema_routes[0].tables[1], "t$1");
	assert_string_equal(c2->schema_routes[1].target, "replica");
	assert_string_equal(c2->routing.heartbeat_table, "ops.hb");
	assert_true(c2->routing.read_write_split);
	assert_int_equal(c2->circuit_breaker.recovery_timeout_secs, 7);
	/* A fixed point: the snapshot writes itself the same way. */
	assert_writes_toml(c2, toml);
	free(toml);
	cfg_free(c2);
	cfg_free(c);
}

static void test_key_equal_compares_every_array_element(void **state)
{
	struct cfg *a = load_ok(NODE "[[nodes]]\nhost = \"b\"\nport = 1\n");
	struct cfg *b = load_ok(NODE "[[nodes]]\nhost = \"b\"\nport = 2\n");
	struct cfg *one = load_ok(NODE);

	assert_false(cfg_key_equal(a, b, cfg_key_find("nodes.port")));
	assert_true(cfg_key_equal(a, b, cfg_key_find("nodes.host")));
	assert_false(cfg_key_equal(a, one, cfg_key_find("nodes.host")));
	assert_true(cfg_key_equal(a, b, cfg_key_find("pool_mode.mode")));
	assert_true(cfg_key_equal(a, b, cfg_key_find("log_level")));
	cfg_free(a);
	cfg_free(b);
	cfg_free(one);
}

static void test_key_equal_compares_every_table_of_every_schema_route(void **state)
{
#define ROUTE(tables) "[[schema_routes]]\ntarget = \"primary\"\ntables = " tables "\n"
	struct cfg *a = load_ok(NODE ROUTE("[\"a\", \"b\"]") ROUTE("[\"c\"]"));
	struct cfg *same = load_ok(NODE ROUTE("[\"a\", \"b\"]") ROUTE("[\"c\"]"));
	struct cfg *other = load_ok(NODE ROUTE("[\"a\", \"b\"]") ROUTE("[\"C\"]"));
	struct cfg *shorter = load_ok(NODE ROUTE("[\"a\"]") ROUTE("[\"c\"]"));
	struct cfg *none = load_ok(NODE);
	const struct cfg_key *tables = cfg_key_find("schema_routes.tables");

	assert_true(cfg_key_equal(a, same, tables));
	assert_true(cfg_key_equal(a, same, cfg_key_find("schema_routes.target")));
	assert_false(cfg_key_equal(a, other, tables));
	assert_false(cfg_key_equal(a, shorter, tables));
	assert_false(cfg_key_equal(a, none, tables));
	assert_true(cfg_key_equal(none, none, tables));
	cfg_free(a);
	cfg_free(same);
	cfg_free(other);
	cfg_free(shorter);
	cfg_free(none);
#undef ROUTE
}

static void test_keep_restart_keys_restores_listen_address_and_reports_it(void **state)
{
	struct cfg *old = load_ok(SEED);
	struct cfg *nw = load_ok("listen_address = \"127.0.0.1:6000\"\nworkers = 0\n"
	                         "[pool_mode]\nmax_pool_size = 9\n" NODE);
	const char *names[4] = {NULL};

	assert_int_equal(cfg_keep_restart_keys(old, nw, names, 4), 1);
	assert_string_equal(names[0], "listen_address");
	assert_null(names[1]);
	assert_string_equal(nw->listen_address, "127.0.0.1:5433");
	assert_int_equal(nw->pool.max_pool_size, 9); /* live: the new value stays */
	assert_int_equal(cfg_keep_restart_keys(old, nw, names, 4), 0);
	cfg_free(nw);
	nw = load_ok("listen_address = \"127.0.0.1:6000\"\nworkers = 2\n" NODE);
	/* Counts beyond max, writes only max names. */
	names[1] = NULL;
	assert_int_equal(cfg_keep_restart_keys(old, nw, names, 1), 2);
	assert_null(names[1]);
	assert_int_equal(nw->workers, 0);
	cfg_free(nw);
	cfg_free(old);
}

static void test_keep_restart_keys_keeps_the_analysis_cache_size(void **state)
{
	struct cfg *old = load_ok(NODE);
	struct cfg *nw =
	    load_ok("[routing]\nanalysis_cache_entries = 64\nmax_replica_lag_ms = 5\n"
	            "[[schema_routes]]\ntables = [\"t\"]\ntarget = \"primary\"\n" NODE);
	const char *names[2] = {NULL};

	assert_int_equal(cfg_keep_restart_keys(old, nw, names, 2), 1);
	assert_string_equal(names[0], "routing.analysis_cache_entries");
	assert_int_equal(nw->routing.analysis_cache_entries, 4096);
	/* live: the new values stay */
	assert_int_equal(nw->routing.max_replica_lag_ms, 5);
	assert_int_equal(nw->n_schema_routes, 1);
	cfg_free(nw);
	cfg_free(old);
}

static void test_no_array_key_needs_a_restart(void **state)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);

	/* cfg_keep_restart_keys copies plain fields only. */
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].section, "nodes") == 0 ||
		    strcmp(keys[i].section, "schema_routes") == 0 ||
		    strcmp(keys[i].section, "auth.users") == 0)
			assert_false(keys[i].flags & CFG_KEY_RESTART);
}

static void test_control_url_default_derives_from_the_listen_port(void **state)
{
	char url[128], dir[CFG_PATH_MAX], want[CFG_PATH_MAX + 32];
	struct cfg *c = load_ok(SEED);

	/* in this user's state directory (common/rundir.h), never /tmp itself */
	assert_int_equal(rundir_current("", dir, sizeof(dir)), 0);
	cfg_control_url(c, url, sizeof(url));
	snprintf(want, sizeof(want), "ipc://%s/heliosproxy-5433.ctl", dir);
	assert_string_equal(url, want);
	cfg_free(c);
	c = load_ok("listen_address = \"[::1]:6001\"\n" NODE);
	cfg_control_url(c, url, sizeof(url));
	snprintf(want, sizeof(want), "ipc://%s/heliosproxy-6001.ctl", dir);
	assert_string_equal(url, want);
	cfg_free(c);
	c = load_ok("listen_address = \"[::1]:6001\"\nstate_dir = \"/srv/helios\"\n" NODE);
	cfg_control_url(c, url, sizeof(url));
	assert_string_equal(url, "ipc:///srv/helios/heliosproxy-6001.ctl");
	cfg_free(c);
	c = load_ok("control_socket = \"ipc:///run/h.ctl\"\n" NODE);
	cfg_control_url(c, url, sizeof(url));
	assert_string_equal(url, "ipc:///run/h.ctl");
	cfg_free(c);
	c = load_ok("control_socket = \"ipc:///run/h.ctl\"\ncontrol_address = \"tcp://cp:1\"\n"
	            "control_allow_insecure = true\n" NODE);
	cfg_control_url(c, url, sizeof(url));
	assert_string_equal(url, "tcp://cp:1");
	cfg_free(c);
}

/* Asserts cfg_override_line(dotted, value) gives want, and that the line
 * loads as an override. */
static void assert_line(const char *dotted, const char *value, const char *want)
{
	char line[2048], ovr[2100];
	struct cfg_error err;
	struct cfg *c;

	if (cfg_override_line(dotted, value, line, sizeof(line), &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(line, want);
	snprintf(ovr, sizeof(ovr), "%s\n", line);
	c = load_with_ok(SEED, ovr);
	cfg_free(c);
}

static void test_override_line_canonicalises_bare_and_quoted_values(void **state)
{
	assert_line("pool_mode.max_pool_size", "50", "pool_mode.max_pool_size = 50");
	assert_line("pool_mode.max_pool_size", "+50", "pool_mode.max_pool_size = 50");
	assert_line("pool_mode.mode", "transaction", "pool_mode.mode = \"transaction\"");
	assert_line("pool_mode.mode", "\"statement\"", "pool_mode.mode = \"statement\"");
	assert_line("log_level", "'debug'", "log_level = \"debug\"");
	assert_line("pool_mode.track_sql_prepare", "false", "pool_mode.track_sql_prepare = false");
	assert_line("pool_mode.reset_query", "SELECT 1", "pool_mode.reset_query = \"SELECT 1\"");
	assert_line("pool_mode.reset_query", "'a\"b\\c'",
	            "pool_mode.reset_query = \"a\\\"b\\\\c\"");
	assert_line("pool_mode.reset_query", "\"\"\"x\ny\"\"\"",
	            "pool_mode.reset_query = \"x\\ny\"");
	assert_line("pool_mode.reset_query", "", "pool_mode.reset_query = \"\"");
	assert_line("heartbeat_interval_ms", "100", "heartbeat_interval_ms = 100");
	assert_line("routing.max_replica_lag_ms", "250", "routing.max_replica_lag_ms = 250");
	assert_line("routing.read_write_split", "true", "routing.read_write_split = true");
	assert_line("routing.heartbeat_table", "ops.hb", "routing.heartbeat_table = \"ops.hb\"");
	assert_line("circuit_breaker.recovery_timeout_secs", "30",
	            "circuit_breaker.recovery_timeout_secs = 30");
}

/* Asserts cfg_override_line refuses with exactly want. */
static void assert_line_refused(const char *dotted, const char *value, const char *want)
{
	char line[256];
	struct cfg_error err;

	assert_int_equal(cfg_override_line(dotted, value, line, sizeof(line), &err), -1);
	assert_string_equal(err.msg, want);
}

static void test_override_line_refuses_bad_values(void **state)
{
	char long_value[CFG_LIST_MAX + 1];

	assert_line_refused("pool_mode.max_pool_size", "0",
	                    "key 'pool_mode.max_pool_size': 0 is out of range (1..10000)");
	assert_line_refused("pool_mode.max_pool_size", "99999999999999999999",
	                    "key 'pool_mode.max_pool_size': 99999999999999999999 is out of range "
	                    "(1..10000)");
	assert_line_refused("pool_mode.max_pool_size", "5x",
	                    "key 'pool_mode.max_pool_size': '5x' is not a decimal integer");
	assert_line_refused("pool_mode.max_pool_size", "",
	                    "key 'pool_mode.max_pool_size': '' is not a decimal integer");
	assert_line_refused("pool_mode.max_pool_size", "\"50\"",
	                    "key 'pool_mode.max_pool_size': '\"50\"' is not a decimal integer");
	assert_line_refused("pool_mode.track_sql_prepare", "yes",
	                    "key 'pool_mode.track_sql_prepare': 'yes' is not a boolean (true or "
	                    "false)");
	assert_line_refused(
	    "pool_mode.mode", "bogus",
	    "key 'pool_mode.mode': 'bogus' is not one of session, transaction, statement");
	assert_line_refused("pool_mode.mode", "\"a\\nb\"",
	                    "key 'pool_mode.mode': 'a?b' is not one of session, transaction, "
	                    "statement");
	memset(long_value, 'u', CFG_LIST_MAX);
	long_value[CFG_LIST_MAX] = '\0';
	assert_line_refused("admin_users", long_value,
	                    "key 'admin_users': value is 1024 bytes, longer than the 1023 allowed");
	assert_line_refused("pool_mode.reset_query", "\"\\u0000\"",
	                    "key 'pool_mode.reset_query': contains a NUL byte");
	assert_line_refused("pool_mode.reset_query", "\"open",
	                    "key 'pool_mode.reset_query': \"open is not a valid TOML string");
	/* A value cannot smuggle in a second key. */
	assert_line_refused("pool_mode.reset_query", "\"a\"\nworkers = 1",
	                    "key 'pool_mode.reset_query': \"a\"?workers = 1 is not a valid TOML "
	                    "string");
}

static void test_override_line_refuses_unknown_and_array_keys(void **state)
{
	char line[64];

	assert_line_refused("pool_mode.max_pool_sise", "5",
	                    "unknown key 'pool_mode.max_pool_sise' (did you mean "
	                    "'pool_mode.max_pool_size'?)");
	assert_line_refused("pool_mod.max_pool_size", "5",
	                    "unknown key 'pool_mod.max_pool_size' (did you mean "
	                    "'pool_mode.max_pool_size'?)");
	assert_line_refused("frobnicate", "5", "unknown key 'frobnicate'");
	assert_line_refused("nodes.port", "5",
	                    "key 'nodes.port' is in the array table [[nodes]], which cannot be "
	                    "overridden; edit the config file");
	assert_line_refused("auth.users.password", "x",
	                    "key 'auth.users.password' is in the array table [[auth.users]], "
	                    "which cannot be overridden; edit the config file");
	assert_line_refused("schema_routes.tables", "[\"t\"]",
	                    "key 'schema_routes.tables' is in the array table [[schema_routes]], "
	                    "which cannot be overridden; edit the config file");
	assert_line_refused("schema_routes.target", "primary",
	                    "key 'schema_routes.target' is in the array table [[schema_routes]], "
	                    "which cannot be overridden; edit the config file");
	assert_int_equal(cfg_override_line("pool_mode.reset_query", "SELECT 1", line, 16, NULL),
	                 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_override_replaces_the_file_value_and_keeps_the_others),
	    cmocka_unit_test(test_override_replaces_a_file_value_that_would_be_refused),
	    cmocka_unit_test(test_override_of_unknown_key_is_refused_with_file_line_and_key),
	    cmocka_unit_test(test_override_out_of_range_or_wrong_type_is_refused),
	    cmocka_unit_test(test_override_of_an_array_table_key_is_refused),
	    cmocka_unit_test(test_override_sets_routing_and_breaker_keys),
	    cmocka_unit_test(test_override_syntax_error_names_the_overrides),
	    cmocka_unit_test(test_cross_key_error_points_where_the_value_came_from),
	    cmocka_unit_test(test_overrides_file_defaults_next_to_the_config_file),
	    cmocka_unit_test(test_relative_config_path_gives_absolute_paths),
	    cmocka_unit_test(test_to_toml_round_trips_a_full_config),
	    cmocka_unit_test(test_key_equal_compares_every_array_element),
	    cmocka_unit_test(test_key_equal_compares_every_table_of_every_schema_route),
	    cmocka_unit_test(test_keep_restart_keys_restores_listen_address_and_reports_it),
	    cmocka_unit_test(test_keep_restart_keys_keeps_the_analysis_cache_size),
	    cmocka_unit_test(test_no_array_key_needs_a_restart),
	    cmocka_unit_test(test_control_url_default_derives_from_the_listen_port),
	    cmocka_unit_test(test_override_line_canonicalises_bare_and_quoted_values),
	    cmocka_unit_test(test_override_line_refuses_bad_values),
	    cmocka_unit_test(test_override_line_refuses_unknown_and_array_keys),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
