/*
 * Unit tests for common/cfg: the seed's minimal config, defaults, one test per
 * class of error (asserting the file:line and key in the message), the
 * users_file reader, the key table API and docs/configuration.md staying current.
 */
#include "cfg_testutil.h"

#define SEED                                                                                       \
	"listen_address = \"127.0.0.1:5433\"\n"                                                    \
	"admin_address = \"127.0.0.1:9090\"\n"                                                     \
	"[pool_mode]\n"                                                                            \
	"mode = \"transaction\"\n"                                                                 \
	"max_pool_size = 100\n"                                                                    \
	"[[nodes]]\n"                                                                              \
	"host = \"127.0.0.1\"\n"                                                                   \
	"port = 5432\n"                                                                            \
	"role = \"primary\"\n"

static void test_seed_minimal_config_loads_with_its_values(void **state)
{
	struct cfg *c = load_ok(SEED);

	assert_string_equal(c->listen_address, "127.0.0.1:5433");
	assert_string_equal(c->admin_address, "127.0.0.1:9090");
	assert_int_equal(c->pool.mode, CFG_POOL_TRANSACTION);
	assert_int_equal(c->pool.max_pool_size, 100);
	assert_int_equal(c->n_nodes, 1);
	assert_string_equal(c->nodes[0].name, "node0");
	assert_string_equal(c->nodes[0].host, "127.0.0.1");
	assert_int_equal(c->nodes[0].port, 5432);
	assert_int_equal(c->nodes[0].role, CFG_ROLE_PRIMARY);
	assert_ptr_equal(cfg_primary(c), &c->nodes[0]);
	assert_string_equal(c->path, "");
	cfg_free(c);
}

static void test_omitted_keys_get_their_defaults(void **state)
{
	struct cfg *c = load_ok(NODE);

	assert_string_equal(c->listen_address, "127.0.0.1:5433");
	/* not 9090 (Prometheus's port) */
	assert_string_equal(c->admin_address, "127.0.0.1:8432");
	assert_false(c->watch_config);
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->io_backend, CFG_IO_AUTO);
	assert_string_equal(c->unix_socket_dir, "");
	assert_string_equal(c->log_level, "info");
	assert_int_equal(c->shutdown_timeout_secs, 30);
	assert_int_equal(c->max_client_conn, 10000);
	assert_int_equal(c->pool.mode, CFG_POOL_SESSION);
	assert_int_equal(c->pool.max_pool_size, 20);
	assert_int_equal(c->pool.min_idle, 0);
	assert_int_equal(c->pool.idle_timeout_secs, 600);
	assert_int_equal(c->pool.server_lifetime_secs, 3600);
	assert_int_equal(c->pool.query_wait_timeout_secs, 120);
	assert_int_equal(c->pool.server_connect_timeout_secs, 5);
	assert_string_equal(c->pool.reset_query, "DISCARD ALL");
	assert_int_equal(c->nodes[0].port, 5432);
	assert_int_equal(c->nodes[0].role, CFG_ROLE_PRIMARY);
	assert_int_equal(c->auth.method, CFG_AUTH_SCRAM);
	assert_string_equal(c->auth.users_file, "");
	assert_string_equal(c->auth.auth_user, "");
	assert_string_equal(c->auth.auth_query,
	                    "SELECT usename, passwd FROM pg_shadow WHERE usename = $1");
	assert_int_equal(c->auth.n_users, 0);
	assert_int_equal(c->tls.client_mode, CFG_CTLS_DISABLE);
	assert_int_equal(c->tls.server_mode, CFG_STLS_PREFER);
	assert_string_equal(c->tls.cert_file, "");
	assert_int_equal(c->heartbeat_interval_ms, 1000);
	assert_false(c->routing.read_write_split);
	assert_int_equal(c->routing.max_replica_lag_ms, 1000);
	assert_int_equal(c->routing.analysis_cache_entries, 4096);
	assert_int_equal(c->circuit_breaker.failure_threshold, 5);
	assert_int_equal(c->n_schema_routes, 0);
	cfg_free(c);
}

static void test_every_enum_name_maps_to_its_cfg_h_constant(void **state)
{
	struct cfg *c = load_ok(
	    "io_backend = \"io_uring\"\nlog_level = \"debug\"\n"
	    "[pool_mode]\nmode = \"statement\"\n[auth]\nmethod = \"md5\"\n"
	    "[tls]\nserver_mode = \"require\"\n[[nodes]]\nhost = \"h\"\nrole = \"replica\"\n");

	assert_int_equal(c->io_backend, CFG_IO_URING);
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(c->pool.mode, CFG_POOL_STATEMENT);
	assert_int_equal(c->auth.method, CFG_AUTH_MD5);
	assert_int_equal(c->tls.server_mode, CFG_STLS_REQUIRE);
	assert_int_equal(c->nodes[0].role, CFG_ROLE_REPLICA);
	assert_null(cfg_primary(c));
	assert_string_equal(cfg_pool_mode_str(CFG_POOL_STATEMENT), "statement");
	assert_string_equal(cfg_auth_method_str(CFG_AUTH_SCRAM), "scram-sha-256");
	assert_string_equal(cfg_auth_method_str((enum cfg_auth_method)7), "?");
	cfg_free(c);
}

static void test_toml_syntax_error_gives_file_line_and_column(void **state)
{
	struct cfg_error err;
	int line = 0, col = 0;

	assert_null(load("listen_address = \"127.0.0.1:5433\"\n[pool_mode]\nmode = \n", &err));
	assert_int_equal(sscanf(err.msg, "proxy.toml:%d:%d: ", &line, &col), 2);
	assert_int_equal(line, 3);
	assert_true(col > 0);
}

static void test_unknown_key_is_refused_with_line_and_dotted_name(void **state)
{
	assert_refused("[pool_mode]\nmode = \"session\"\nmax_pol_size = 5\n" NODE,
	               "proxy.toml:3: unknown key 'pool_mode.max_pol_size'",
	               "did you mean 'max_pool_size'", NULL);
	assert_refused(NODE "hots = \"x\"\n", "proxy.toml:3: unknown key 'nodes[0].hots'", NULL);
	assert_refused("listen_adress = \"1.2.3.4:5\"\n" NODE,
	               "proxy.toml:1: unknown key 'listen_adress'", NULL);
}

static void test_unknown_top_level_table_is_refused(void **state)
{
	assert_refused(NODE "[quotas]\nenabled = true\n", "proxy.toml:3: unknown table 'quotas'",
	               NULL);
	assert_refused(NODE "[[extensions]]\nname = \"a\"\n",
	               "proxy.toml:3: unknown table 'extensions'", NULL);
	assert_refused(NODE "[[auth.user]]\nname = \"a\"\n",
	               "proxy.toml:3: unknown table 'auth.user' (did you mean 'users'?)", NULL);
	assert_refused("[pool-mode]\nmode = \"session\"\n" NODE, "unknown table 'pool-mode'",
	               "did you mean 'pool_mode'", NULL);
}

static void test_wrong_type_is_refused_naming_the_array_element(void **state)
{
	assert_refused(NODE "[[nodes]]\nhost = \"b\"\nport = \"5432\"\n",
	               "proxy.toml:5: key 'nodes[1].port': expected integer, got string", NULL);
	assert_refused("workers = 1.5\n" NODE,
	               "proxy.toml:1: key 'workers': expected integer, got float", NULL);
	assert_refused("pool_mode = 3\n" NODE, "key 'pool_mode': expected table, got integer",
	               NULL);
	assert_refused("[nodes]\nhost = \"a\"\n",
	               "proxy.toml:1: key 'nodes': expected array of tables", NULL);
}

static void test_out_of_range_integer_is_refused_with_the_range(void **state)
{
	assert_refused("[pool_mode]\nmax_pool_size = 0\n" NODE,
	               "proxy.toml:2: key 'pool_mode.max_pool_size': 0 is out of range (1..10000)",
	               NULL);
	/* Beyond int: must not wrap into range before the check. */
	assert_refused("workers = 4294967297\n" NODE,
	               "key 'workers': 4294967297 is out of range (0..256)", NULL);
	assert_refused(NODE "port = 65536\n", "proxy.toml:3: key 'nodes[0].port'", "(1..65535)",
	               NULL);
}

static void test_bad_enum_value_lists_the_allowed_values(void **state)
{
	assert_refused(
	    "workers = 2\nio_backend = \"kqueue\"\n" NODE,
	    "proxy.toml:2: key 'io_backend': \"kqueue\" is not one of auto, io_uring, epoll", NULL);
	/* A hostile value stays on one line in the message. */
	assert_refused("[pool_mode]\nmode = \"a\\nb\"\n" NODE, "\"a\\nb\" is not one of session",
	               NULL);
}

static void test_string_longer_than_its_field_is_refused_not_truncated(void **state)
{
	char text[512];
	char name[CFG_NAME_MAX + 1];
	struct cfg *c;

	memset(name, 'n', CFG_NAME_MAX);
	name[CFG_NAME_MAX] = '\0';
	snprintf(text, sizeof(text), "[[nodes]]\nhost = \"h\"\nname = \"%s\"\n", name);
	assert_refused(text,
	               "proxy.toml:3: key 'nodes[0].name': value is 64 bytes, longer than the "
	               "63 allowed",
	               NULL);
	name[CFG_NAME_MAX - 1] = '\0';
	snprintf(text, sizeof(text), "[[nodes]]\nhost = \"h\"\nname = \"%s\"\n", name);
	c = load_ok(text);
	assert_string_equal(c->nodes[0].name, name);
	cfg_free(c);
	assert_refused("[[nodes]]\nhost = \"a\\u0000b\"\n",
	               "key 'nodes[0].host': contains a NUL byte", NULL);
}

static void test_min_idle_above_max_pool_size_is_refused(void **state)
{
	struct cfg *c;

	assert_refused("[pool_mode]\nmax_pool_size = 5\nmin_idle = 6\n" NODE,
	               "proxy.toml:3: key 'pool_mode.min_idle': 6 is greater than "
	               "pool_mode.max_pool_size (5)",
	               NULL);
	c = load_ok("[pool_mode]\nmax_pool_size = 5\nmin_idle = 5\n" NODE);
	assert_int_equal(c->pool.min_idle, 5);
	cfg_free(c);
}

static void test_duplicate_node_names_are_refused(void **state)
{
	assert_refused(
	    "[[nodes]]\nname = \"a\"\nhost = \"h\"\n[[nodes]]\nname = \"a\"\nhost = \"i\"\n",
	    "proxy.toml:5: key 'nodes[1].name': duplicate node name \"a\" (also nodes[0])", NULL);
	/* A default name counts too. */
	assert_refused("[[nodes]]\nname = \"node1\"\nhost = \"h\"\n[[nodes]]\nhost = \"i\"\n",
	               "key 'nodes[1].name': duplicate node name \"node1\"", NULL);
}

static void test_default_node_names_follow_position(void **state)
{
	struct cfg *c = load_ok("[[nodes]]\nhost = \"a\"\nrole = \"replica\"\n"
	                        "[[nodes]]\nname = \"main\"\nhost = \"b\"\n"
	                        "[[nodes]]\nhost = \"c\"\nport = 6432\n");

	assert_int_equal(c->n_nodes, 3);
	assert_string_equal(c->nodes[0].name, "node0");
	assert_string_equal(c->nodes[1].name, "main");
	assert_string_equal(c->nodes[2].name, "node2");
	assert_int_equal(c->nodes[2].port, 6432);
	assert_ptr_equal(cfg_primary(c), &c->nodes[1]);
	cfg_free(c);
}

static void test_config_without_nodes_is_refused(void **state)
{
	assert_refused("listen_address = \"127.0.0.1:5433\"\n", "proxy.toml: no [[nodes]] table",
	               NULL);
	assert_refused("nodes = []\n", "at least one node is required", NULL);
}

static void test_node_without_host_is_refused(void **state)
{
	assert_refused(NODE "[[nodes]]\nport = 5433\n",
	               "proxy.toml:3: key 'nodes[1].host' is required", NULL);
	assert_refused("[[nodes]]\nhost = \"\"\n",
	               "proxy.toml:2: key 'nodes[0].host' must not be empty", NULL);
}

static void test_bad_listen_address_is_refused_and_ipv6_accepted(void **state)
{
	char host[64];
	uint16_t port = 0;
	struct cfg *c;

	assert_refused("listen_address = \"localhost\"\n" NODE,
	               "proxy.toml:1: key 'listen_address': \"localhost\" is not host:port", NULL);
	assert_refused("admin_address = \"::1:9090\"\n" NODE, "key 'admin_address'", NULL);
	c = load_ok("listen_address = \"[::1]:5433\"\n" NODE);
	cfg_free(c);
	assert_int_equal(cfg_parse_address("[::1]:5433", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 5433);
	assert_int_equal(cfg_parse_address("db.local:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "db.local");
	assert_int_equal(port, 1);
	assert_int_equal(cfg_parse_address("h:0", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address("h:65536", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address(":5433", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address("h:", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address("h:54x", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address("[::1]5433", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(cfg_parse_address("longhost:1", host, 4, &port), -ENAMETOOLONG);
}

static void test_tls_require_without_cert_is_refused(void **state)
{
	assert_refused("[tls]\nclient_mode = \"require\"\n" NODE,
	               "proxy.toml:2: key 'tls.cert_file' is required when tls.client_mode = "
	               "\"require\"",
	               NULL);
}

static void test_tls_file_that_cannot_be_read_is_refused_naming_the_key(void **state)
{
	char text[1024];
	char cert[256];
	const char *key;
	struct cfg *c;

	snprintf(cert, sizeof(cert), "%s", write_tmp("cert.pem", "-----BEGIN CERTIFICATE-----\n"));
	key = write_tmp("key.pem", "-----BEGIN PRIVATE KEY-----\n");
	snprintf(text, sizeof(text),
	         "[tls]\nclient_mode = \"allow\"\ncert_file = \"/nonexistent/cert.pem\"\n"
	         "key_file = \"%s\"\n" NODE,
	         key);
	assert_refused(text,
	               "proxy.toml:3: key 'tls.cert_file': cannot read "
	               "\"/nonexistent/cert.pem\": No such file or directory",
	               NULL);
	snprintf(text, sizeof(text),
	         "[tls]\nclient_mode = \"allow\"\ncert_file = \"%s\"\nkey_file = \"%s\"\n" NODE,
	         cert, tmpdir);
	assert_refused(text, "proxy.toml:4: key 'tls.key_file': cannot read", "Is a directory",
	               NULL);
	snprintf(text, sizeof(text),
	         "[tls]\nclient_mode = \"require\"\ncert_file = \"%s\"\nkey_file = \"%s\"\n" NODE,
	         cert, key);
	c = load_ok(text);
	assert_int_equal(c->tls.client_mode, CFG_CTLS_REQUIRE);
	assert_string_equal(c->tls.key_file, key);
	cfg_free(c);
}

static void test_tls_verify_full_requires_ca_file(void **state)
{
	char text[512];
	struct cfg *c;

	assert_refused("[tls]\nserver_mode = \"verify-full\"\n" NODE,
	               "proxy.toml:2: key 'tls.ca_file' is required when tls.server_mode = "
	               "\"verify-full\"",
	               NULL);
	snprintf(text, sizeof(text),
	         "[tls]\nserver_mode = \"verify-full\"\nca_file = \"%s\"\n" NODE,
	         write_tmp("ca.pem", "-----BEGIN CERTIFICATE-----\n"));
	c = load_ok(text);
	assert_int_equal(c->tls.server_mode, CFG_STLS_VERIFY_FULL);
	cfg_free(c);
}

static void test_users_file_is_parsed_with_quote_escaping(void **state)
{
	char text[512];
	struct cfg *c;

	snprintf(text, sizeof(text), "[auth]\nusers_file = \"%s\"\n" NODE,
	         write_tmp("userlist.txt",
	                   "; PgBouncer comment\n"
	                   "# another comment\n"
	                   "\"alice\" \"md5abc\"\n"
	                   "\n"
	                   "  \"bo\"\"b\" \"pa\"\"ss\"\"\" trailing fields ignored\n"
	                   "\"carol\"\t\"SCRAM-SHA-256$4096:s$k:k\"\r\n"));
	c = load_ok(text);
	assert_int_equal(c->auth.n_users, 3);
	assert_int_equal(c->auth.n_config_users, 0);
	assert_string_equal(c->auth.users[0].name, "alice");
	assert_string_equal(c->auth.users[0].password, "md5abc");
	assert_string_equal(c->auth.users[1].name, "bo\"b");
	assert_string_equal(c->auth.users[1].password, "pa\"ss\"");
	assert_string_equal(c->auth.users[2].password, "SCRAM-SHA-256$4096:s$k:k");
	assert_string_equal(c->auth.users[2].server_password, "");
	cfg_free(c);
}

/* Loads a config whose users_file holds users and expects error pieces. */
static void assert_users_file_refused(const char *users, const char *piece, const char *piece2)
{
	char text[512], path[256];

	snprintf(path, sizeof(path), "%s", write_tmp("bad-userlist.txt", users));
	snprintf(text, sizeof(text), "[auth]\nusers_file = \"%s\"\n" NODE, path);
	strcat(path, piece);
	assert_refused(text, path, piece2, NULL);
}

static void test_users_file_malformed_line_names_the_file_and_line(void **state)
{
	assert_users_file_refused("\"alice\" \"pw\"\n\"bob\" pw\n", ":2: malformed line",
	                          "expected the password in double quotes");
	assert_users_file_refused("; c\n\n\"carol \"pw\"\n", ":3: malformed line",
	                          "expected a space");
	assert_users_file_refused("\"dave\" \"pw\n", ":1: malformed line", "no closing quote");
	assert_users_file_refused("\"\" \"pw\"\n", ":1: malformed line", "empty user name");
	assert_users_file_refused("\"eve\" \"a\"\n\"x\" \"b\"\n\"eve\" \"c\"\n",
	                          ":3: duplicate user \"eve\"", "(also line 1)");
	assert_refused(
	    "[auth]\nusers_file = \"/nonexistent/userlist.txt\"\n" NODE,
	    "proxy.toml:2: key 'auth.users_file': cannot read \"/nonexistent/userlist.txt\"", NULL);
}

static void test_users_file_relative_path_resolves_against_config_folder(void **state)
{
	char path[256];
	struct cfg_error err;
	struct cfg *c;
	char want[300];

	write_tmp("rel-users.txt", "\"frank\" \"pw\"\n");
	snprintf(path, sizeof(path), "%s",
	         write_tmp("proxy.toml", "[auth]\nusers_file = \"rel-users.txt\"\n" NODE));
	c = cfg_load_file(path, &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	snprintf(want, sizeof(want), "%s/rel-users.txt", tmpdir);
	assert_string_equal(c->auth.users_file, want);
	assert_string_equal(c->path, path);
	assert_non_null(cfg_find_user(c, "frank"));
	cfg_free(c);
	/* TLS files resolve the same way. */
	write_tmp("rel-cert.pem", "-----BEGIN CERTIFICATE-----\n");
	write_tmp("rel-key.pem", "-----BEGIN PRIVATE KEY-----\n");
	snprintf(path, sizeof(path), "%s",
	         write_tmp("proxy.toml", "[tls]\nclient_mode = \"allow\"\ncert_file = "
	                                 "\"rel-cert.pem\"\nkey_file = \"rel-key.pem\"\n" NODE));
	c = cfg_load_file(path, &err);
	if (!c)
		fail_msg("refused: %s", err.msg);
	snprintf(want, sizeof(want), "%s/rel-key.pem", tmpdir);
	assert_string_equal(c->tls.key_file, want);
	cfg_free(c);
	assert_null(cfg_load_file("/nonexistent/proxy.toml", &err));
	assert_string_equal(err.msg,
	                    "/nonexistent/proxy.toml: cannot read: No such file or directory");
}

static void test_find_user_prefers_config_users_over_users_file(void **state)
{
	char text[512];
	struct cfg *c;

	snprintf(text, sizeof(text),
	         "[auth]\nusers_file = \"%s\"\nauth_user = \"bob\"\n"
	         "[[auth.users]]\nname = \"alice\"\npassword = \"from-config\"\n"
	         "server_password = \"srv\"\n" NODE,
	         write_tmp("userlist2.txt", "\"alice\" \"from-file\"\n\"bob\" \"bob-file\"\n"));
	c = load_ok(text);
	assert_int_equal(c->auth.n_config_users, 1);
	/* The file's alice is shadowed, never found: dropped. */
	assert_int_equal(c->auth.n_users, 2);
	assert_string_equal(c->auth.users[1].name, "bob");
	assert_string_equal(cfg_find_user(c, "alice")->password, "from-config");
	assert_string_equal(cfg_find_user(c, "alice")->server_password, "srv");
	assert_string_equal(cfg_find_user(c, "bob")->password, "bob-file");
	assert_null(cfg_find_user(c, "nobody"));
	cfg_free(c);
	assert_refused("[[auth.users]]\nname = \"a\"\n[[auth.users]]\nname = \"a\"\n" NODE,
	               "proxy.toml:4: key 'auth.users[1].name': duplicate user name \"a\"", NULL);
	assert_refused("[[auth.users]]\npassword = \"x\"\n" NODE,
	               "proxy.toml:1: key 'auth.users[0].name' is required", NULL);
}

static void test_auth_user_must_be_a_known_user(void **state)
{
	assert_refused("[auth]\nmethod = \"md5\"\nauth_user = \"pgbouncer\"\n" NODE,
	               "proxy.toml:3: key 'auth.auth_user': \"pgbouncer\" is not a user", NULL);
}

/* Formats key name of c, then loads "prefix name = value" and checks the
 * reloaded config formats the same: a real round trip through TOML. */
static void assert_round_trip(const struct cfg *c, const char *dotted, const char *table,
                              const char *expect)
{
	const struct cfg_key *k = cfg_key_find(dotted);
	char buf[256], again[256], text[512];
	struct cfg *c2;

	assert_non_null(k);
	assert_int_equal(cfg_format_value(c, k, buf, sizeof(buf)), 0);
	assert_string_equal(buf, expect);
	snprintf(text, sizeof(text), "%s%s = %s\n" NODE, table, k->name, buf);
	c2 = load_ok(text);
	assert_int_equal(cfg_format_value(c2, k, again, sizeof(again)), 0);
	assert_string_equal(again, buf);
	cfg_free(c2);
}

static void test_key_find_and_format_value_round_trip(void **state)
{
	struct cfg *c = load_ok("io_backend = \"epoll\"\n[pool_mode]\nmax_pool_size = 100\n"
	                        "reset_query = \"SET x = 'a\\\"b\\\\c'\\t\"\n"
	                        "[[auth.users]]\nname = \"u\"\npassword = \"secret\"\n" NODE
	                        "[[nodes]]\nhost = \"db2\"\nport = 6432\n");
	char buf[64];

	assert_round_trip(c, "pool_mode.max_pool_size", "[pool_mode]\n", "100");
	assert_round_trip(c, "io_backend", "", "\"epoll\"");
	assert_round_trip(c, "pool_mode.reset_query", "[pool_mode]\n",
	                  "\"SET x = 'a\\\"b\\\\c'\\t\"");
	assert_round_trip(c, "log_level", "", "\"info\"");
	assert_int_equal(cfg_format_value(c, cfg_key_find("nodes.port"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[5432, 6432]");
	assert_int_equal(cfg_format_value(c, cfg_key_find("auth.users.password"), buf, sizeof(buf)),
	                 0);
	assert_string_equal(buf, "[\"********\"]");
	assert_int_equal(cfg_format_value(c, cfg_key_find("pool_mode.reset_query"), buf, 8),
	                 -ENOSPC);
	assert_int_equal(cfg_format_value(c, NULL, buf, sizeof(buf)), -EINVAL);
	assert_null(cfg_key_find("pool_mode.max_pol_size"));
	assert_null(cfg_key_find("max_pool_size"));
	assert_null(cfg_key_find("a.very.long.section.name.that.is.not.real.at.all.key"));
	assert_non_null(cfg_key_find("auth.users.name"));
	cfg_free(c);
}

static void test_restart_only_keys_are_flagged(void **state)
{
	static const char *const restart[] = {"listen_address",
	                                      "admin_address",
	                                      "workers",
	                                      "io_backend",
	                                      "unix_socket_dir",
	                                      "control_address",
	                                      "control_socket",
	                                      "control_token",
	                                      "control_tls_cert",
	                                      "control_tls_key",
	                                      "control_tls_ca",
	                                      "control_tls_verify_client",
	                                      "control_tls_server_name",
	                                      "control_allow_insecure",
	                                      "control_socket_group",
	                                      "state_dir",
	                                      "control_admin_address",
	                                      "overrides_file",
	                                      "watch_config",
	                                      "routing.analysis_cache_entries",
	                                      "analytics.slow_query_log",
	                                      "analytics.slow_query_log_max_mb",
	                                      "xdp.pin_dir"};
	size_t n, flagged = 0;
	const struct cfg_key *keys = cfg_key_table(&n);

	for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++)
		assert_true(cfg_key_find(restart[i])->flags & CFG_KEY_RESTART);
	for (size_t i = 0; i < n; i++)
		flagged += (keys[i].flags & CFG_KEY_RESTART) != 0;
	assert_int_equal(flagged, sizeof(restart) / sizeof(restart[0]));
	assert_false(cfg_key_find("heartbeat_interval_ms")->flags & CFG_KEY_RESTART);
	assert_false(cfg_key_find("health_check_interval_secs")->flags & CFG_KEY_RESTART);
	assert_false(cfg_key_find("admin_users")->flags & CFG_KEY_RESTART);
	assert_false(cfg_key_find("pool_mode.max_pool_size")->flags & CFG_KEY_RESTART);
	assert_false(cfg_key_find("routing.max_replica_lag_ms")->flags & CFG_KEY_RESTART);
	assert_false(cfg_key_find("schema_routes.tables")->flags & CFG_KEY_RESTART);
}

static void test_control_plane_keys_have_their_defaults(void **state)
{
	struct cfg *c = load_ok(NODE);

	assert_string_equal(c->control_address, "");
	assert_string_equal(c->control_socket, "");
	assert_string_equal(c->state_dir, "");
	/* not 9091 (Pushgateway's port) */
	assert_string_equal(c->control_admin_address, "127.0.0.1:8433");
	assert_int_equal(c->heartbeat_interval_ms, 1000);
	assert_int_equal(c->health_check_interval_secs, 2);
	/* From memory there is no file to put the overrides next to. */
	assert_string_equal(c->overrides_file, "");
	assert_string_equal(c->admin_users, "");
	assert_false(cfg_is_admin_user(c, ""));
	assert_true(cfg_key_find("overrides_file")->flags & CFG_KEY_PATH);
	cfg_free(c);
}

static void test_control_plane_intervals_are_range_checked(void **state)
{
	assert_refused("heartbeat_interval_ms = 99\n" NODE,
	               "proxy.toml:1: key 'heartbeat_interval_ms': 99 is out of range (100..60000)",
	               NULL);
	assert_refused("health_check_interval_secs = 0\n" NODE,
	               "proxy.toml:1: key 'health_check_interval_secs': 0 is out of range "
	               "(1..3600)",
	               NULL);
}

static void test_control_urls_must_be_nng_urls(void **state)
{
	struct cfg *c;

	assert_refused("control_address = \"127.0.0.1:7000\"\n" NODE,
	               "proxy.toml:1: key 'control_address': \"127.0.0.1:7000\" is not an nng URL",
	               NULL);
	assert_refused("\ncontrol_socket = \"/tmp/x.ctl\"\n" NODE,
	               "proxy.toml:2: key 'control_socket': \"/tmp/x.ctl\" is not an nng URL",
	               NULL);
	assert_refused("control_socket = \"ipc://\"\n" NODE, "key 'control_socket'", NULL);
	c = load_ok("control_address = \"tcp://10.0.0.1:7000\"\ncontrol_token = \"t\"\n"
	            "control_socket = \"ipc:///run/helios.ctl\"\n" NODE);
	assert_string_equal(c->control_address, "tcp://10.0.0.1:7000");
	assert_string_equal(c->control_socket, "ipc:///run/helios.ctl");
	cfg_free(c);
	c = load_ok("control_socket = \"inproc://cp\"\n" NODE);
	cfg_free(c);
}

static void test_admin_addresses_may_be_empty_to_turn_them_off(void **state)
{
	struct cfg *c = load_ok("admin_address = \"\"\ncontrol_admin_address = \"\"\n" NODE);

	assert_string_equal(c->admin_address, "");
	assert_string_equal(c->control_admin_address, "");
	cfg_free(c);
	assert_refused("control_admin_address = \"9091\"\n" NODE,
	               "proxy.toml:1: key 'control_admin_address': \"9091\" is not host:port",
	               NULL);
}

#define LONG_NAME "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"

static void test_admin_users_must_be_configured_users(void **state)
{
	char text[512];
	struct cfg *c;

	assert_refused("admin_users = \"alice, mallory\"\n"
	               "[[auth.users]]\nname = \"alice\"\n" NODE,
	               "proxy.toml:1: key 'admin_users': \"mallory\" is not a user from "
	               "[[auth.users]] or auth.users_file",
	               NULL);
	/* Longer than any user name can be. */
	assert_refused("admin_users = \"" LONG_NAME "\"\n" NODE,
	               "key 'admin_users': \"" LONG_NAME "\" is not a user", NULL);
	snprintf(text, sizeof(text),
	         "admin_users = \" alice ,,\tcarol,\"\n[auth]\nusers_file = \"%s\"\n"
	         "[[auth.users]]\nname = \"alice\"\n" NODE,
	         write_tmp("admins.txt", "\"carol\" \"pw\"\n"));
	c = load_ok(text);
	assert_true(cfg_is_admin_user(c, "alice"));
	assert_true(cfg_is_admin_user(c, "carol"));
	assert_false(cfg_is_admin_user(c, "caro"));
	assert_false(cfg_is_admin_user(c, "bob"));
	assert_false(cfg_is_admin_user(c, "")); /* empty entries are skipped */
	cfg_free(c);
}

static void test_every_dotted_key_name_finds_its_key(void **state)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char name[64], small[8];

	for (size_t i = 0; i < n; i++) {
		cfg_key_name(&keys[i], name, sizeof(name));
		assert_true(strlen(name) < sizeof(name) - 1);
		assert_ptr_equal(cfg_key_find(name), &keys[i]);
	}
	cfg_key_name(cfg_key_find("pool_mode.max_pool_size"), name, sizeof(name));
	assert_string_equal(name, "pool_mode.max_pool_size");
	cfg_key_name(cfg_key_find("io_backend"), name, sizeof(name));
	assert_string_equal(name, "io_backend");
	cfg_key_name(cfg_key_find("io_backend"), small, sizeof(small));
	assert_string_equal(small, "io_back");
}

static void test_configuration_md_matches_key_table(void **state)
{
	char *want = NULL, *have = NULL;
	size_t want_len = 0, have_len;
	FILE *f = open_memstream(&want, &want_len);

	assert_non_null(f);
	cfg_write_docs(f);
	assert_int_equal(fclose(f), 0);
	f = fopen("docs/configuration.md", "r");
	if (!f) {
		free(want);
		fail_msg("cannot open docs/configuration.md (run tests from the repo root)");
	}
	have = calloc(1, want_len + 2);
	assert_non_null(have);
	have_len = fread(have, 1, want_len + 1, f);
	fclose(f);
	if (have_len != want_len || memcmp(have, want, want_len) != 0) {
		free(want);
		free(have);
		fail_msg("docs/configuration.md is stale; regenerate it from the repo root "
		         "with: make docs");
	}
	free(want);
	free(have);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_minimal_config_loads_with_its_values),
	    cmocka_unit_test(test_omitted_keys_get_their_defaults),
	    cmocka_unit_test(test_every_enum_name_maps_to_its_cfg_h_constant),
	    cmocka_unit_test(test_toml_syntax_error_gives_file_line_and_column),
	    cmocka_unit_test(test_unknown_key_is_refused_with_line_and_dotted_name),
	    cmocka_unit_test(test_unknown_top_level_table_is_refused),
	    cmocka_unit_test(test_wrong_type_is_refused_naming_the_array_element),
	    cmocka_unit_test(test_out_of_range_integer_is_refused_with_the_range),
	    cmocka_unit_test(test_bad_enum_value_lists_the_allowed_values),
	    cmocka_unit_test(test_string_longer_than_its_field_is_refused_not_truncated),
	    cmocka_unit_test(test_min_idle_above_max_pool_size_is_refused),
	    cmocka_unit_test(test_duplicate_node_names_are_refused),
	    cmocka_unit_test(test_default_node_names_follow_position),
	    cmocka_unit_test(test_config_without_nodes_is_refused),
	    cmocka_unit_test(test_node_without_host_is_refused),
	    cmocka_unit_test(test_bad_listen_address_is_refused_and_ipv6_accepted),
	    cmocka_unit_test(test_tls_require_without_cert_is_refused),
	    cmocka_unit_test(test_tls_file_that_cannot_be_read_is_refused_naming_the_key),
	    cmocka_unit_test(test_tls_verify_full_requires_ca_file),
	    cmocka_unit_test(test_users_file_is_parsed_with_quote_escaping),
	    cmocka_unit_test(test_users_file_malformed_line_names_the_file_and_line),
	    cmocka_unit_test(test_users_file_relative_path_resolves_against_config_folder),
	    cmocka_unit_test(test_find_user_prefers_config_users_over_users_file),
	    cmocka_unit_test(test_auth_user_must_be_a_known_user),
	    cmocka_unit_test(test_key_find_and_format_value_round_trip),
	    cmocka_unit_test(test_restart_only_keys_are_flagged),
	    cmocka_unit_test(test_control_plane_keys_have_their_defaults),
	    cmocka_unit_test(test_control_plane_intervals_are_range_checked),
	    cmocka_unit_test(test_control_urls_must_be_nng_urls),
	    cmocka_unit_test(test_admin_addresses_may_be_empty_to_turn_them_off),
	    cmocka_unit_test(test_admin_users_must_be_configured_users),
	    cmocka_unit_test(test_every_dotted_key_name_finds_its_key),
	    cmocka_unit_test(test_configuration_md_matches_key_table),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
