/*
 * Unit tests for dataplane/auth/authwork: the auth_query answer cache (TTL,
 * keys, negative answers, bounds), the derived-secret cache (keyed by user,
 * password and salt) and the key salts are derived from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "dataplane/auth/authwork.h"

#define SECRET_A "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5"

static void test_auth_query_answer_is_kept_for_its_ttl_per_database_and_user(void **state)
{
	char secret[CFG_SECRET_MAX];
	bool found = false;

	aw_aq_put("db1", "u1", true, SECRET_A);
	assert_true(aw_aq_get("db1", "u1", 5, &found, secret, sizeof(secret)));
	assert_true(found);
	assert_string_equal(secret, SECRET_A);
	/* another database or user is another question */
	assert_false(aw_aq_get("db2", "u1", 5, &found, secret, sizeof(secret)));
	assert_false(aw_aq_get("db1", "u2", 5, &found, secret, sizeof(secret)));
	/* no cache configured: never an answer */
	assert_false(aw_aq_get("db1", "u1", 0, &found, secret, sizeof(secret)));
	/* too small a buffer: asked again rather than cut */
	assert_false(aw_aq_get("db1", "u1", 5, &found, secret, 8));
}

static void test_auth_query_negative_answer_is_kept(void **state)
{
	char secret[CFG_SECRET_MAX] = "x";
	bool found = true;

	aw_aq_put("db1", "ghost", false, NULL);
	assert_true(aw_aq_get("db1", "ghost", 5, &found, secret, sizeof(secret)));
	assert_false(found);
	assert_string_equal(secret, "");
}

static void test_auth_query_answer_expires(void **state)
{
	char secret[CFG_SECRET_MAX];
	bool found;

	aw_aq_put("db1", "short", true, SECRET_A);
	assert_true(aw_aq_get("db1", "short", 1, &found, secret, sizeof(secret)));
	usleep(1100 * 1000);
	assert_false(aw_aq_get("db1", "short", 1, &found, secret, sizeof(secret)));
	/* a later answer replaces the old one */
	aw_aq_put("db1", "short", false, NULL);
	assert_true(aw_aq_get("db1", "short", 1, &found, secret, sizeof(secret)));
	assert_false(found);
}

static void test_auth_query_oversized_entries_are_not_kept(void **state)
{
	char big[1000], secret[CFG_SECRET_MAX], name[100];
	bool found;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	aw_aq_put("db1", "big", true, big);
	assert_false(aw_aq_get("db1", "big", 5, &found, secret, sizeof(secret)));
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	aw_aq_put("db1", name, true, SECRET_A);
	assert_false(aw_aq_get("db1", name, 5, &found, secret, sizeof(secret)));
}

static void test_derived_secret_is_found_only_for_the_same_password_and_salt(void **state)
{
	uint8_t salt[SCRAM_USER_SALT_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint8_t other[SCRAM_USER_SALT_LEN] = {0};
	struct scram_secret s, got;

	assert_int_equal(scram_secret_from_password("pw", salt, sizeof(salt), 4096, &s), 0);
	assert_false(aw_secret_get("carol", "pw", salt, &got));
	aw_secret_put("carol", "pw", &s);
	assert_true(aw_secret_get("carol", "pw", salt, &got));
	assert_memory_equal(&got, &s, sizeof(s));
	assert_false(aw_secret_get("carol", "pw2", salt, &got)); /* password changed */
	assert_false(aw_secret_get("carol", "pw", other, &got)); /* salt key changed */
	assert_false(aw_secret_get("dave", "pw", salt, &got));
}

static void test_salt_key_is_the_configured_secret_or_a_stable_random_one(void **state)
{
	struct cfg *c = calloc(1, sizeof(*c));
	const uint8_t *k1, *k2;
	size_t l1, l2;

	assert_non_null(c);
	aw_salt_key(c, &k1, &l1);
	aw_salt_key(NULL, &k2, &l2);
	assert_int_equal(l1, 32);
	assert_ptr_equal(k1, k2);
	assert_int_equal(l2, 32);
	snprintf(c->auth.scram_mock_secret, sizeof(c->auth.scram_mock_secret), "configured");
	aw_salt_key(c, &k1, &l1);
	assert_int_equal(l1, strlen("configured"));
	assert_memory_equal(k1, "configured", l1);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_auth_query_answer_is_kept_for_its_ttl_per_database_and_user),
	    cmocka_unit_test(test_auth_query_negative_answer_is_kept),
	    cmocka_unit_test(test_auth_query_answer_expires),
	    cmocka_unit_test(test_auth_query_oversized_entries_are_not_kept),
	    cmocka_unit_test(test_derived_secret_is_found_only_for_the_same_password_and_salt),
	    cmocka_unit_test(test_salt_key_is_the_configured_secret_or_a_stable_random_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
