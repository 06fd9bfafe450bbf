/*
 * Unit tests for the container-safe side of common/cfg: ${NAME} environment
 * variables in string values (and $${ escapes), values forced from the
 * command line (--listen, --admin-address), and state_dir as the default
 * home of the overrides file and the slow query log.
 */
#include "cfg_testutil.h"

#define USER_PW(pw) "[[auth.users]]\nname = \"alice\"\npassword = \"" pw "\"\n"

static struct cfg *load_with_ok(const char *text, const char *ovr)
{
	struct cfg_error err;
	struct cfg *c = load_with(text, ovr, &err);

	if (!c)
		fail_msg("refused: %s", err.msg);
	return c;
}

static void test_env_reference_is_replaced_by_the_variable_in_any_string_value(void **state)
{
	struct cfg *c;

	setenv("HELIOS_T_PW", "s3cret-from-a-Secret", 1);
	setenv("HELIOS_T_PORT", "6543", 1);
	setenv("HELIOS_T_MODE", "transaction", 1);
	setenv("HELIOS_T_TABLE", "orders", 1);
	c = load_ok(
	    "listen_address = \"127.0.0.1:${HELIOS_T_PORT}\"\n"
	    "[pool_mode]\nmode = \"${HELIOS_T_MODE}\"\n" NODE USER_PW(
	        "${HELIOS_T_PW}") "[[schema_routes]]\ntables = [\"public.${HELIOS_T_TABLE}\"]\n"
	                          "target = \"primary\"\n");
	assert_string_equal(c->listen_address, "127.0.0.1:6543");
	assert_int_equal(c->pool.mode, CFG_POOL_TRANSACTION);
	assert_string_equal(cfg_find_user(c, "alice")->password, "s3cret-from-a-Secret");
	assert_string_equal(c->schema_routes[0].tables[0], "public.orders");
	cfg_free(c);
	/* a variable set to "" gives "" */
	setenv("HELIOS_T_EMPTY", "", 1);
	c = load_ok(NODE USER_PW("a${HELIOS_T_EMPTY}b"));
	assert_string_equal(cfg_find_user(c, "alice")->password, "ab");
	cfg_free(c);
}

static void test_double_dollar_brace_is_a_literal_and_other_dollars_stay(void **state)
{
	struct cfg *c;

	setenv("HELIOS_T_PW", "x", 1);
	c = load_ok(NODE USER_PW("a$${HELIOS_T_PW}b$c$$d$"));
	assert_string_equal(cfg_find_user(c, "alice")->password, "a${HELIOS_T_PW}b$c$$d$");
	cfg_free(c);
	/* a SCRAM secret is full of '$' and stays as written */
	c = load_ok(NODE USER_PW("SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy"));
	assert_string_equal(cfg_find_user(c, "alice")->password,
	                    "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy");
	cfg_free(c);
}

static void test_unset_variable_is_refused_naming_file_line_key_and_variable(void **state)
{
	struct cfg_error err;
	struct cfg *c;

	unsetenv("HELIOS_T_UNSET");
	assert_refused(NODE USER_PW("${HELIOS_T_UNSET}"),
	               "proxy.toml:5: key 'auth.users[0].password': environment variable "
	               "HELIOS_T_UNSET is not set",
	               NULL);
	/* from a file: its path */
	c = load_with("admin_users = \"${HELIOS_T_UNSET}\"\n" NODE, NULL, &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "/proxy.toml:1: key 'admin_users': environment variable "
	                                "HELIOS_T_UNSET is not set"));
}

static void test_malformed_reference_is_refused_with_how_to_write_a_literal(void **state)
{
	assert_refused(NODE USER_PW("a${HELIOS_T_PW"), "proxy.toml:5: key 'auth.users[0].password'",
	               "without a closing", "$${", NULL);
	assert_refused("admin_users = \"${}\"\n" NODE,
	               "proxy.toml:1: key 'admin_users': \"${}\" is not an environment variable "
	               "name",
	               NULL);
	assert_refused("admin_users = \"${1ABC}\"\n" NODE,
	               "\"${1ABC}\" is not an environment variable name", NULL);
	assert_refused("admin_users = \"${A-B}\"\n" NODE,
	               "\"${A-B}\" is not an environment variable name", NULL);
	/* in a secret, what follows "${" is not shown: it may be the password */
	assert_refused(NODE USER_PW("${pass word}"),
	               "key 'auth.users[0].password': \"${...}\" is not an environment variable "
	               "name",
	               NULL);
}

static void test_a_secret_value_never_appears_in_an_error(void **state)
{
	char big[CFG_SECRET_MAX + 20];
	struct cfg_error err;
	struct cfg *c;

	memset(big, 'Q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	setenv("HELIOS_T_BIG", big, 1);
	/* the expanded value is what must fit its field */
	c = load(NODE USER_PW("${HELIOS_T_BIG}"), &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "key 'auth.users[0].password': value is 531 bytes, "
	                                "longer than the 511 allowed"));
	assert_null(strstr(err.msg, "QQQQ"));
}

static void test_snapshot_toml_keeps_expanded_values_as_they_are(void **state)
{
	struct cfg *c, *back;
	struct cfg_error err;
	char *toml;

	/* a value that looks like a reference once expanded must not be
	 * expanded again when a data plane reads the snapshot */
	setenv("HELIOS_T_PW", "p${HELIOS_T_UNSET}w", 1);
	unsetenv("HELIOS_T_UNSET");
	c = load_ok(NODE USER_PW("${HELIOS_T_PW}"));
	assert_string_equal(cfg_find_user(c, "alice")->password, "p${HELIOS_T_UNSET}w");
	toml = cfg_to_toml(c);
	assert_non_null(toml);
	assert_non_null(strstr(toml, "password = \"p$${HELIOS_T_UNSET}w\""));
	back = cfg_load_string("snapshot", toml, strlen(toml), &err);
	if (!back)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(cfg_find_user(back, "alice")->password, "p${HELIOS_T_UNSET}w");
	free(toml);
	cfg_free(back);
	cfg_free(c);
}

static void test_any_value_survives_the_snapshot_round_trip(void **state)
{
	static const char alphabet[] = "$${}}A_1 \"\\";
	struct cfg *c = load_ok(NODE), *back;
	struct cfg_error err;
	unsigned seed = 16;

	/* every mix of '$', '{' and '}' comes back as it was: the escape that
	 * cfg_to_toml writes is undone by the loader's expansion, never more */
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % 12);
		char *toml;

		for (size_t i = 0; i < len; i++)
			c->pool.reset_query[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		c->pool.reset_query[len] = '\0';
		toml = cfg_to_toml(c);
		assert_non_null(toml);
		back = cfg_load_string("snapshot", toml, strlen(toml), &err);
		if (!back)
			fail_msg("\"%s\" refused: %s", c->pool.reset_query, err.msg);
		assert_string_equal(back->pool.reset_query, c->pool.reset_query);
		cfg_free(back);
		free(toml);
	}
	cfg_free(c);
}

static void test_overrides_file_values_are_expanded_and_errors_name_it(void **state)
{
	struct cfg_error err;
	struct cfg *c;
	char line[256];

	setenv("HELIOS_T_LEVEL", "debug", 1);
	/* what helioctl config set writes for a value given as ${...} */
	assert_int_equal(
	    cfg_override_line("log_level", "${HELIOS_T_LEVEL}", line, sizeof(line), NULL),
	    -1); /* an enum is checked as written: not one of the levels */
	assert_int_equal(
	    cfg_override_line("admin_users", "${HELIOS_T_ADMINS}", line, sizeof(line), NULL), 0);
	assert_string_equal(line, "admin_users = \"${HELIOS_T_ADMINS}\"");
	c = load_with_ok(NODE, "log_level = \"${HELIOS_T_LEVEL}\"\n");
	assert_string_equal(c->log_level, "debug");
	cfg_free(c);
	unsetenv("HELIOS_T_ADMINS");
	c = load_with(NODE, "workers = 1\nadmin_users = \"${HELIOS_T_ADMINS}\"\n", &err);
	assert_null(c);
	assert_string_equal(err.msg, "ovr.toml:2: key 'admin_users': environment variable "
	                             "HELIOS_T_ADMINS is not set");
}

static void test_command_line_value_wins_over_file_and_overrides(void **state)
{
	struct cfg_error err;
	struct cfg *c;

	assert_int_equal(cfg_force_value("listen_address", "127.0.0.1:7000", &err), 0);
	assert_int_equal(cfg_force_value("admin_address", "0.0.0.0:8432", &err), 0);
	c = load_with_ok("listen_address = \"127.0.0.1:6000\"\n" NODE,
	                 "listen_address = \"127.0.0.1:6001\"\n");
	assert_string_equal(c->listen_address, "127.0.0.1:7000");
	assert_string_equal(c->admin_address, "0.0.0.0:8432");
	cfg_free(c);
	/* a file value the command line replaces is not checked */
	c = load_ok("admin_address = \"nonsense\"\n" NODE);
	assert_string_equal(c->admin_address, "0.0.0.0:8432");
	cfg_free(c);
	/* suspended: the file as helioctl sees it */
	cfg_force_suspend(true);
	c = load_with_ok("listen_address = \"127.0.0.1:6000\"\n" NODE, NULL);
	assert_string_equal(c->listen_address, "127.0.0.1:6000");
	cfg_free(c);
	cfg_force_suspend(false);
	cfg_force_clear();
	c = load_ok(NODE);
	assert_string_equal(c->listen_address, "127.0.0.1:5433");
	cfg_free(c);
}

static void test_bad_command_line_value_is_refused_naming_the_command_line(void **state)
{
	struct cfg_error err;

	assert_int_equal(cfg_force_value("no_such_key", "1", &err), -1);
	assert_non_null(strstr(err.msg, "unknown key 'no_such_key'"));
	assert_int_equal(cfg_force_value("listen_address", "nonsense", &err), 0);
	assert_refused(NODE, "command line: key 'listen_address': \"nonsense\" is not host:port",
	               NULL);
	cfg_force_clear();
}

static void test_state_dir_holds_the_overrides_file_and_slow_log_by_default(void **state)
{
	char want[300];
	struct cfg *c;

	c = load_with_ok("state_dir = \"/var/lib/heliosproxy\"\n" NODE, NULL);
	assert_string_equal(c->overrides_file, "/var/lib/heliosproxy/proxy.toml.live.toml");
	assert_string_equal(c->analytics.slow_query_log,
	                    "/var/lib/heliosproxy/proxy.toml.slow.jsonl");
	cfg_free(c);
	/* relative: against the config's folder, like every path */
	c = load_with_ok("state_dir = \"state/\"\n" NODE, NULL);
	snprintf(want, sizeof(want), "%s/state/proxy.toml.live.toml", tmpdir);
	assert_string_equal(c->overrides_file, want);
	cfg_free(c);
	/* keys that are set stay where they say */
	c = load_with_ok("state_dir = \"/var/lib/heliosproxy\"\n"
	                 "overrides_file = \"/etc/x.live.toml\"\n"
	                 "[analytics]\nslow_query_log = \"/var/log/slow.jsonl\"\n" NODE,
	                 NULL);
	assert_string_equal(c->overrides_file, "/etc/x.live.toml");
	assert_string_equal(c->analytics.slow_query_log, "/var/log/slow.jsonl");
	cfg_free(c);
	/* without state_dir: beside the config file, as before */
	c = load_with_ok(NODE, NULL);
	snprintf(want, sizeof(want), "%s/proxy.toml.live.toml", tmpdir);
	assert_string_equal(c->overrides_file, want);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_reference_is_replaced_by_the_variable_in_any_string_value),
	    cmocka_unit_test(test_double_dollar_brace_is_a_literal_and_other_dollars_stay),
	    cmocka_unit_test(test_unset_variable_is_refused_naming_file_line_key_and_variable),
	    cmocka_unit_test(test_malformed_reference_is_refused_with_how_to_write_a_literal),
	    cmocka_unit_test(test_a_secret_value_never_appears_in_an_error),
	    cmocka_unit_test(test_snapshot_toml_keeps_expanded_values_as_they_are),
	    cmocka_unit_test(test_any_value_survives_the_snapshot_round_trip),
	    cmocka_unit_test(test_overrides_file_values_are_expanded_and_errors_name_it),
	    cmocka_unit_test(test_command_line_value_wins_over_file_and_overrides),
	    cmocka_unit_test(test_bad_command_line_value_is_refused_naming_the_command_line),
	    cmocka_unit_test(test_state_dir_holds_the_overrides_file_and_slow_log_by_default),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
