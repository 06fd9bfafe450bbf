/*
 * Unit tests for tenant admission by values (dataplane/policy/tenant.c):
 * a login is mapped to its [[tenants]] entry by database, user or the
 * startup setting helios.tenant; a tenant refuses a database it does not
 * list (28000), tenancy.require refuses a client of no tenant (28000),
 * max_connections caps its clients (53300) until one logs out; the server
 * cap and schema prefix come from the entry. No connection is involved:
 * this program links policy/ without conn/ or pool/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"
#include "dataplane/policy/tenant.h"

#define UNUSED __attribute__((unused))

static struct cfg *load(const char *text)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_string("test.toml", text, strlen(text), &err);
	if (!c)
		fail_msg("config refused: %s", err.msg);
	return c;
}

#define NODE "[[nodes]]\nhost = \"db\"\n"

static const char by_database[] = NODE "[tenancy]\nmap_by = \"database\"\nrequire = true\n"
                                       "[[tenants]]\nid = \"ta\"\nmax_connections = 2\n"
                                       "databases = [\"a_db\", \"a_db2\"]\n"
                                       "schema_prefix = \"ta_schema\"\n"
                                       "[[tenants]]\nid = \"tb\"\ndatabases = [\"b_db\"]\n";

/* A client's tenant as login gives it: its live state and its entry. */
struct tenant_ref {
	struct tenant_state *state;
	const struct cfg_tenant *cfg;
};

static int login(const struct cfg *c, const char *user, const char *db, const char *setting,
                 struct tenant_ref *ref, const char **code, char *msg, size_t len)
{
	*code = NULL;
	msg[0] = '\0';
	return tenant_login(c, user, db, setting, &ref->state, &ref->cfg, code, msg, len);
}

static void test_a_login_maps_to_the_tenant_listing_its_database(void **state UNUSED)
{
	struct cfg *c = load(by_database);
	struct tenant_ref ref;
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "u", "b_db", NULL, &ref, &code, msg, sizeof(msg)), 0);
	assert_non_null(ref.state);
	assert_string_equal(tenant_id(ref.state), "tb");
	assert_int_equal(tenant_server_cap(ref.cfg), 0);
	assert_string_equal(tenant_schema(ref.cfg), "");
	tenant_logout(ref.state);
	assert_int_equal(login(c, "u", "a_db2", NULL, &ref, &code, msg, sizeof(msg)), 0);
	assert_string_equal(tenant_id(ref.state), "ta");
	assert_int_equal(tenant_server_cap(ref.cfg), 2);
	assert_string_equal(tenant_schema(ref.cfg), "ta_schema");
	tenant_logout(ref.state);
	cfg_free(c);
}

static void test_require_refuses_a_client_of_no_tenant(void **state UNUSED)
{
	struct cfg *c = load(by_database);
	struct tenant_ref ref = {(struct tenant_state *)1, (const struct cfg_tenant *)1};
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "u", "other_db", NULL, &ref, &code, msg, sizeof(msg)), -1);
	assert_string_equal(code, "28000");
	assert_non_null(strstr(msg, "belongs to no tenant"));
	assert_null(ref.state);
	assert_null(ref.cfg);
	cfg_free(c);
}

static void test_without_tenants_every_login_passes_with_no_tenant(void **state UNUSED)
{
	struct cfg *c = load(NODE);
	struct tenant_ref ref;
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "u", "any", NULL, &ref, &code, msg, sizeof(msg)), 0);
	assert_null(ref.state);
	assert_int_equal(tenant_server_cap(ref.cfg), 0);
	assert_string_equal(tenant_schema(ref.cfg), "");
	tenant_logout(ref.state); /* no tenant: nothing to count down */
	cfg_free(c);
}

static void test_max_connections_caps_clients_until_one_logs_out(void **state UNUSED)
{
	struct cfg *c = load(NODE "[tenancy]\nmap_by = \"user\"\n"
	                          "[[tenants]]\nid = \"capped\"\nmax_connections = 2\n"
	                          "users = [\"app\"]\n");
	struct tenant_ref r1, r2, r3;
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "app", "d", NULL, &r1, &code, msg, sizeof(msg)), 0);
	assert_int_equal(login(c, "app", "d", NULL, &r2, &code, msg, sizeof(msg)), 0);
	assert_int_equal(login(c, "app", "d", NULL, &r3, &code, msg, sizeof(msg)), -1);
	assert_string_equal(code, "53300");
	assert_non_null(strstr(msg, "too many connections for tenant \"capped\""));
	tenant_logout(r1.state);
	assert_int_equal(login(c, "app", "d", NULL, &r3, &code, msg, sizeof(msg)), 0);
	assert_ptr_equal(r3.state, r2.state); /* one live state per tenant id */
	/* the report counts its clients and the refused login */
	size_t n;
	Helios__TenantStats **v = tenant_stats(&n);
	bool seen = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i]->id, "capped"))
			continue;
		seen = true;
		assert_int_equal(v[i]->clients, 2);
		assert_int_equal(v[i]->refused_logins, 1);
	}
	assert_true(seen);
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
	tenant_logout(r2.state);
	tenant_logout(r3.state);
	cfg_free(c);
}

static void test_a_tenant_refuses_a_database_it_does_not_list(void **state UNUSED)
{
	struct cfg *c = load(NODE "[tenancy]\nmap_by = \"user\"\n"
	                          "[[tenants]]\nid = \"iso\"\nusers = [\"alice\"]\n"
	                          "databases = [\"alice_db\"]\n");
	struct tenant_ref ref;
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "alice", "bob_db", NULL, &ref, &code, msg, sizeof(msg)), -1);
	assert_string_equal(code, "28000");
	assert_non_null(strstr(msg, "tenant \"iso\" may not use database \"bob_db\""));
	assert_int_equal(login(c, "alice", "alice_db", NULL, &ref, &code, msg, sizeof(msg)), 0);
	assert_string_equal(tenant_id(ref.state), "iso");
	tenant_logout(ref.state);
	cfg_free(c);
}

static void test_map_by_startup_uses_the_helios_tenant_setting(void **state UNUSED)
{
	struct cfg *c = load(NODE "[tenancy]\nmap_by = \"startup\"\n"
	                          "[[tenants]]\nid = \"t_one\"\n[[tenants]]\nid = \"t_two\"\n");
	struct tenant_ref ref;
	const char *code;
	char msg[300];
	assert_int_equal(login(c, "u", "d", "t_two", &ref, &code, msg, sizeof(msg)), 0);
	assert_string_equal(tenant_id(ref.state), "t_two");
	tenant_logout(ref.state);
	assert_int_equal(login(c, "u", "d", NULL, &ref, &code, msg, sizeof(msg)), 0);
	assert_null(ref.state); /* no setting: no tenant (not required) */
	assert_int_equal(login(c, "u", "d", "nope", &ref, &code, msg, sizeof(msg)), 0);
	assert_null(ref.state);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_login_maps_to_the_tenant_listing_its_database),
	    cmocka_unit_test(test_require_refuses_a_client_of_no_tenant),
	    cmocka_unit_test(test_without_tenants_every_login_passes_with_no_tenant),
	    cmocka_unit_test(test_max_connections_caps_clients_until_one_logs_out),
	    cmocka_unit_test(test_a_tenant_refuses_a_database_it_does_not_list),
	    cmocka_unit_test(test_map_by_startup_uses_the_helios_tenant_setting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
