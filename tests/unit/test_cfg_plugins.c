/*
 * [[plugins]] in the config (issue 20): the seed's entry loads with its
 * config table as JSON and the defaults of the limits; bad values are
 * refused naming file, line and key; a relative path resolves against the
 * config file's folder; cfg_to_toml writes entries the loader reads back.
 */
#include "cfg_testutil.h"

#include <jansson.h>

#define SEED_PLUGIN                                                                                \
	"[[plugins]]\n"                                                                            \
	"name = \"audit_logger\"\n"                                                                \
	"path = \"/plugins/audit.wasm\"\n"                                                         \
	"config = { log_level = \"info\" }\n"

static void test_seed_plugin_entry_loads_with_defaults(void **state)
{
	struct cfg *c = load_ok(NODE SEED_PLUGIN);

	(void)state;
	assert_int_equal(c->n_plugins, 1);
	assert_string_equal(c->plugins[0].name, "audit_logger");
	assert_string_equal(c->plugins[0].path, "/plugins/audit.wasm");
	assert_string_equal(c->plugins[0].config_json, "{\"log_level\":\"info\"}");
	assert_false(c->plugins[0].deny_on_failure);
	assert_int_equal(c->plugins[0].timeout_ms, 100);
	assert_int_equal(c->plugins[0].fuel, 5000000);
	assert_int_equal(c->plugins[0].memory_mb, 16);
	assert_int_equal(c->plugins[0].max_failures, 5);
	cfg_free(c);
}

static void test_config_table_of_every_type_becomes_json(void **state)
{
	struct cfg *c = load_ok(NODE "[[plugins]]\nname = \"b\"\npath = \"/b.wasm\"\n"
	                             "on_failure = \"deny\"\nfuel = 3000000000\n"
	                             "[plugins.config]\nadmins = [\"alice\", \"bob\"]\n"
	                             "n = 3\nx = 1.5\non = true\n[plugins.config.map]\n"
	                             "app1 = \"tenant_a\"\n");
	json_error_t e;
	json_t *j;

	(void)state;
	assert_true(c->plugins[0].deny_on_failure);
	assert_int_equal(c->plugins[0].fuel, 3000000000ULL);
	j = json_loads(c->plugins[0].config_json, 0, &e);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "admins")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "n")), 3);
	assert_true(json_is_true(json_object_get(j, "on")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "map"), "app1")),
	                    "tenant_a");
	json_decref(j);
	cfg_free(c);
}

static void test_no_config_is_an_empty_object_and_json_text_is_taken(void **state)
{
	struct cfg *c = load_ok(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\n"
	                             "[[plugins]]\nname = \"b\"\npath = \"/b.wasm\"\n"
	                             "config = '{\"k\": [1, 2]}'\n");

	(void)state;
	assert_int_equal(c->n_plugins, 2);
	assert_string_equal(c->plugins[0].config_json, "{}");
	assert_string_equal(c->plugins[1].config_json, "{\"k\":[1,2]}");
	cfg_free(c);
}

static void test_bad_plugin_values_are_refused_with_file_line_and_key(void **state)
{
	(void)state;
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\ntimeout_ms = 200\n",
	               "proxy.toml:6:", "plugins[0].timeout_ms", "200 is out of range (1..100)",
	               NULL);
	assert_refused(NODE
	               "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\non_failure = \"stop\"\n",
	               "proxy.toml:6:", "plugins[0].on_failure", "not one of continue, deny", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\nfuel = 10\n",
	               "plugins[0].fuel", "out of range", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\nmemory_mb = 0\n",
	               "plugins[0].memory_mb", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\nconfg = {}\n",
	               "unknown key 'plugins[0].confg' (did you mean 'config'?)", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\nconfig = \"[1]\"\n",
	               "plugins[0].config", "expected a JSON object", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\nconfig = 3\n",
	               "plugins[0].config", "expected table, got integer", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\n",
	               "proxy.toml:3:", "key 'plugins[0].path' is required", NULL);
	assert_refused(NODE "[[plugins]]\npath = \"/a.wasm\"\n",
	               "key 'plugins[0].name' is required", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a b\"\npath = \"/a.wasm\"\n", "plugins[0].name",
	               "letters, digits", NULL);
	assert_refused(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\n"
	                    "[[plugins]]\nname = \"a\"\npath = \"/b.wasm\"\n",
	               "proxy.toml:7:", "plugin \"a\" is already defined (as plugins[0])", NULL);
	assert_refused("plugins = 3\n" NODE, "expected array of tables ([[plugins]])", NULL);
}

static void test_relative_path_resolves_against_the_config_folder(void **state)
{
	struct cfg_error err;
	struct cfg *c;
	char want[300];

	(void)state;
	c = cfg_load_file(write_tmp("p.toml", NODE "[[plugins]]\nname = \"a\"\n"
	                                           "path = \"plugins/a.wasm\"\n"),
	                  &err);
	if (!c)
		fail_msg("%s", err.msg);
	snprintf(want, sizeof(want), "%s/plugins/a.wasm", tmpdir);
	assert_string_equal(c->plugins[0].path, want);
	cfg_free(c);
}

static void test_to_toml_writes_plugins_the_loader_reads_back(void **state)
{
	struct cfg *c = load_ok(NODE "[[plugins]]\nname = \"a\"\npath = \"/a.wasm\"\n"
	                             "config = { q = \"say \\\"hi\\\"\", n = [1] }\n"
	                             "on_failure = \"deny\"\ntimeout_ms = 50\nfuel = 12345\n"
	                             "memory_mb = 2\nmax_failures = 0\n");
	char *toml = cfg_to_toml(c);
	struct cfg *c2;

	(void)state;
	assert_non_null(toml);
	c2 = load_ok(toml);
	assert_int_equal(c2->n_plugins, 1);
	assert_string_equal(c2->plugins[0].name, "a");
	assert_string_equal(c2->plugins[0].path, "/a.wasm");
	assert_string_equal(c2->plugins[0].config_json, c->plugins[0].config_json);
	assert_true(c2->plugins[0].deny_on_failure);
	assert_int_equal(c2->plugins[0].timeout_ms, 50);
	assert_int_equal(c2->plugins[0].fuel, 12345);
	assert_int_equal(c2->plugins[0].memory_mb, 2);
	assert_int_equal(c2->plugins[0].max_failures, 0);
	free(toml);
	cfg_free(c2);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_plugin_entry_loads_with_defaults),
	    cmocka_unit_test(test_config_table_of_every_type_becomes_json),
	    cmocka_unit_test(test_no_config_is_an_empty_object_and_json_text_is_taken),
	    cmocka_unit_test(test_bad_plugin_values_are_refused_with_file_line_and_key),
	    cmocka_unit_test(test_relative_path_resolves_against_the_config_folder),
	    cmocka_unit_test(test_to_toml_writes_plugins_the_loader_reads_back),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
