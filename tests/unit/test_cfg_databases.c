/*
 * Unit tests for issue 19's config model: [[databases]], [[users]], the new
 * pool limits and timeouts, stats_users, and the hints a PgBouncer setting
 * name gets when it is written into the TOML.
 */
#include "cfg_testutil.h"

#define USERS                                                                                      \
	"[[auth.users]]\nname = \"alice\"\npassword = \"pw\"\n"                                    \
	"[[auth.users]]\nname = \"bob\"\npassword = \"pw\"\n"

static void test_new_pool_keys_have_pgbouncer_defaults(void **state)
{
	struct cfg *c = load_ok(NODE);

	assert_int_equal(c->pool.reserve_pool_size, 0);
	assert_int_equal(c->pool.reserve_pool_timeout_ms, 5000);
	assert_int_equal(c->pool.max_db_connections, 0);
	assert_int_equal(c->pool.max_user_connections, 0);
	assert_int_equal(c->pool.query_timeout_secs, 0);
	assert_int_equal(c->pool.idle_transaction_timeout_secs, 0);
	assert_int_equal(c->client_idle_timeout_secs, 0);
	assert_string_equal(c->stats_users, "");
	assert_int_equal(c->n_databases, 0);
	assert_int_equal(c->n_pool_users, 0);
	cfg_free(c);
}

static void test_database_entries_load_with_inherit_defaults(void **state)
{
	struct cfg *c =
	    load_ok("[[nodes]]\nname = \"p\"\nhost = \"db\"\n"
	            "[[nodes]]\nname = \"r\"\nhost = \"db2\"\nrole = \"replica\"\n"
	            "[[databases]]\nname = \"app\"\nnodes = [\"r\"]\ndbname = \"real\"\n"
	            "user = \"svc\"\npassword = \"s3\"\npool_size = 7\n"
	            "pool_mode = \"statement\"\nmax_db_connections = 9\n"
	            "timezone = \"UTC\"\n"
	            "[[databases]]\nname = \"*\"\n");
	const struct cfg_database *d = &c->databases[0], *star = &c->databases[1];
	bool none;

	assert_int_equal(c->n_databases, 2);
	assert_string_equal(d->name, "app");
	assert_int_equal(d->n_nodes, 1);
	assert_string_equal(d->nodes[0], "r");
	assert_string_equal(d->dbname, "real");
	assert_string_equal(d->user, "svc");
	assert_string_equal(d->password, "s3");
	assert_int_equal(d->pool_size, 7);
	assert_string_equal(d->pool_mode, "statement");
	assert_int_equal(d->max_db_connections, 9);
	assert_string_equal(d->timezone, "UTC");
	/* omitted keys inherit: "", 0, reserve_pool -1 */
	assert_int_equal(star->n_nodes, 0);
	assert_string_equal(star->dbname, "");
	assert_string_equal(star->pool_mode, "");
	assert_int_equal(star->pool_size, 0);
	assert_int_equal(star->reserve_pool, -1);
	assert_ptr_equal(cfg_database_find(c, "app", &none), d);
	assert_false(none);
	assert_ptr_equal(cfg_database_find(c, "other", &none), star);
	assert_false(none);
	cfg_free(c);
}

static void test_unknown_database_without_star_entry_is_none(void **state)
{
	struct cfg *c = load_ok(NODE "[[databases]]\nname = \"app\"\n");
	struct cfg *plain = load_ok(NODE);
	bool none;

	assert_null(cfg_database_find(c, "nope", &none));
	assert_true(none);
	/* no entries at all: every database passes through */
	assert_null(cfg_database_find(plain, "nope", &none));
	assert_false(none);
	cfg_free(c);
	cfg_free(plain);
}

static void test_pool_mode_precedence_is_database_then_user_then_global(void **state)
{
	struct cfg *c = load_ok(NODE "[pool_mode]\nmode = \"session\"\n"
	                             "[[databases]]\nname = \"tx\"\npool_mode = \"transaction\"\n"
	                             "[[databases]]\nname = \"plain\"\n"
	                             "[[users]]\nname = \"bob\"\npool_mode = \"statement\"\n"
	                             "max_user_connections = 3\n");
	bool none;
	const struct cfg_database *tx = cfg_database_find(c, "tx", &none);
	const struct cfg_database *plain = cfg_database_find(c, "plain", &none);

	assert_int_equal(cfg_pool_mode_for(c, tx, "bob"), CFG_POOL_TRANSACTION);
	assert_int_equal(cfg_pool_mode_for(c, plain, "bob"), CFG_POOL_STATEMENT);
	assert_int_equal(cfg_pool_mode_for(c, plain, "alice"), CFG_POOL_SESSION);
	assert_int_equal(cfg_pool_mode_for(c, NULL, "alice"), CFG_POOL_SESSION);
	assert_int_equal(cfg_pool_user_find(c, "bob")->max_user_connections, 3);
	assert_null(cfg_pool_user_find(c, "alice"));
	cfg_free(c);
}

static void test_database_errors_name_the_entry_and_key(void **state)
{
	assert_refused(NODE "[[databases]]\nname = \"a\"\n[[databases]]\nname = \"a\"\n",
	               "proxy.toml:6: key 'databases[1].name': duplicate database name \"a\"",
	               NULL);
	assert_refused(NODE "[[databases]]\nname = \"a\"\nnodes = [\"nope\"]\n",
	               "key 'databases[0].nodes': \"nope\" is not the name of a [[nodes]] entry",
	               NULL);
	assert_refused(NODE "[[databases]]\nname = \"a\"\npassword = \"x\"\n",
	               "key 'databases[0].password': needs user", NULL);
	assert_refused(NODE "[[databases]]\nname = \"a\"\npool_mode = \"tx\"\n",
	               "key 'databases[0].pool_mode': \"tx\" is not one of", NULL);
	assert_refused(NODE "[[databases]]\ndbname = \"a\"\n",
	               "key 'databases[0].name' is required", NULL);
	assert_refused(NODE "[[databases]]\nname = \"a\"\nreserve_pool = -2\n",
	               "key 'databases[0].reserve_pool': -2 is out of range (-1..10000)", NULL);
	assert_refused(NODE "[[databases]]\nname = \"a\"\nauth_user = \"ghost\"\n",
	               "key 'databases[0].auth_user': \"ghost\" is not a user", NULL);
	assert_refused(NODE "[[users]]\nname = \"u\"\n[[users]]\nname = \"u\"\n",
	               "key 'users[1].name': duplicate user name \"u\"", NULL);
}

static void test_stats_users_must_be_configured_users(void **state)
{
	struct cfg *c = load_ok("stats_users = \"alice, bob\"\n" NODE USERS);

	cfg_free(c);
	assert_refused("stats_users = \"carol\"\n" NODE USERS,
	               "proxy.toml:1: key 'stats_users': \"carol\" is not a user", NULL);
	c = load_ok("stats_users = \"alice\"\n" NODE USERS);
	assert_true(cfg_is_stats_user(c, "alice"));
	assert_false(cfg_is_stats_user(c, "bob"));
	cfg_free(c);
}

static void test_pgbouncer_setting_names_suggest_the_helios_key(void **state)
{
	const char *note;

	assert_refused("listen_port = 6432\n" NODE,
	               "proxy.toml:1: unknown key 'listen_port' (PgBouncer's listen_port is "
	               "'listen_address' here",
	               NULL);
	assert_refused("default_pool_size = 20\n" NODE, "'pool_mode.max_pool_size'", NULL);
	assert_refused("[pool_mode]\nquery_timeout = 5\n" NODE,
	               "unknown key 'pool_mode.query_timeout' (PgBouncer's query_timeout is "
	               "'pool_mode.query_timeout_secs' here: in seconds)",
	               NULL);
	assert_refused("pool_mode = \"transaction\"\n" NODE,
	               "key 'pool_mode': expected table, got string (PgBouncer's setting is "
	               "'pool_mode.mode' here)",
	               NULL);
	assert_refused("logfile = \"/var/log/x\"\n" NODE,
	               "unknown key 'logfile' (PgBouncer's logfile has no HeliosProxy key", NULL);
	assert_refused("[pgbouncer]\nlisten_port = 6432\n" NODE,
	               "proxy.toml:1: unknown table 'pgbouncer' (PgBouncer's [pgbouncer] settings "
	               "are top-level keys and tables here",
	               NULL);
	assert_refused("[databases]\nfoo = \"x\"\n" NODE,
	               "key 'databases': expected array of tables ([[databases]]), got table "
	               "(PgBouncer's [databases] lines become one [[databases]] table each",
	               NULL);
	/* a pgbouncer.ini fed as it is: the syntax error says what to run */
	assert_refused("[pgbouncer]\nlisten_port = 6432\n[databases]\nfoo = host=x dbname=y\n",
	               "proxy.toml:4:",
	               "this looks like a pgbouncer.ini: `helioctl "
	               "import-pgbouncer FILE` writes the TOML",
	               NULL);
	/* every mapped name points at a key that exists */
	static const char *const names[] = {"listen_addr",
	                                    "auth_file",
	                                    "reserve_pool_timeout",
	                                    "client_idle_timeout",
	                                    "idle_transaction_timeout",
	                                    "server_idle_timeout",
	                                    "max_db_connections",
	                                    "stats_period"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *k = cfg_pgbouncer_key(names[i], &note);
		assert_non_null(k);
		assert_non_null(cfg_key_find(k));
	}
	assert_null(cfg_pgbouncer_key("not_a_pgbouncer_key", &note));
}

/* Data planes get the config from a control plane as cfg_to_toml text: the
 * entries must come through it whole. */
static void test_entries_survive_the_snapshot_round_trip(void **state)
{
	struct cfg *c = load_ok(
	    "stats_users = \"alice\"\nclient_idle_timeout_secs = 30\n"
	    "[pool_mode]\nreserve_pool_size = 2\nquery_timeout_secs = 9\n"
	    "[[nodes]]\nname = \"p\"\nhost = \"db\"\n" USERS
	    "[[databases]]\nname = \"app\"\nnodes = [\"p\"]\ndbname = \"real\"\nuser = \"svc\"\n"
	    "password = \"s$${x\"\npool_mode = \"transaction\"\nreserve_pool = 0\n"
	    "[[databases]]\nname = \"*\"\n"
	    "[[users]]\nname = \"alice\"\npool_mode = \"statement\"\nmax_user_connections = 4\n");
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	struct cfg_error err;
	char *toml = cfg_to_toml(c);
	struct cfg *c2;

	assert_non_null(toml);
	c2 = cfg_load_string("snapshot", toml, strlen(toml), &err);
	if (!c2)
		fail_msg("snapshot refused: %s\n%s", err.msg, toml);
	for (size_t i = 0; i < n; i++)
		if (!cfg_key_equal(c, c2, &keys[i]))
			fail_msg("key %s.%s differs", keys[i].section, keys[i].name);
	assert_int_equal(c2->n_databases, 2);
	assert_string_equal(c2->databases[0].password, "s${x");
	assert_int_equal(c2->databases[0].reserve_pool, 0);
	assert_int_equal(c2->pool_users[0].max_user_connections, 4);
	free(toml);
	cfg_free(c2);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_pool_keys_have_pgbouncer_defaults),
	    cmocka_unit_test(test_database_entries_load_with_inherit_defaults),
	    cmocka_unit_test(test_unknown_database_without_star_entry_is_none),
	    cmocka_unit_test(test_pool_mode_precedence_is_database_then_user_then_global),
	    cmocka_unit_test(test_database_errors_name_the_entry_and_key),
	    cmocka_unit_test(test_stats_users_must_be_configured_users),
	    cmocka_unit_test(test_pgbouncer_setting_names_suggest_the_helios_key),
	    cmocka_unit_test(test_entries_survive_the_snapshot_round_trip),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
