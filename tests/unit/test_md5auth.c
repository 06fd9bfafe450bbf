/*
 * Unit tests for dataplane/auth/md5auth: PostgreSQL's stored md5 hash, the salted
 * response (checked against values computed independently with the openssl CLI),
 * and verification that accepts only the exact response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "dataplane/auth/md5auth.h"

#define PG_HASH "md53175bce1d3201d16594cebf9d7eb3f9d" /* user postgres, password postgres */

/*
 * Responses for PG_HASH, derived at test-writing time with:
 *   { printf '%s' 3175bce1d3201d16594cebf9d7eb3f9d; printf '\x01\x02\x03\x04'; } | openssl md5
 *   { printf '%s' 3175bce1d3201d16594cebf9d7eb3f9d; printf '\xde\xad\xbe\xef'; } | openssl md5
 */
static const uint8_t salt1[4] = {0x01, 0x02, 0x03, 0x04};
static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};
#define RESP1 "md568be9ed08db75f318087ab337aaea044"
#define RESP2 "md58ee245854025535aedb7b15709315318"

/* Heap copy of exactly len bytes so ASan catches reads past len. */
static bool verify_exact(const char *stored, const uint8_t salt[4], const char *resp, size_t len)
{
	char *p = malloc(len ? len : 1);
	bool ok;

	assert_non_null(p);
	memcpy(p, resp, len);
	ok = md5auth_verify(stored, salt, p, len);
	free(p);
	return ok;
}

static void test_password_hash_matches_postgresql_known_vector(void **state)
{
	char out[36];

	md5auth_password_hash("postgres", "postgres", out);
	assert_string_equal(out, PG_HASH);
	assert_true(md5auth_is_hash(out));
}

static void test_password_hash_is_password_then_user(void **state)
{
	char a[36], b[36];

	/* md5("secretalice") vs md5("alicesecret"): order matters. */
	md5auth_password_hash("alice", "secret", a);
	md5auth_password_hash("secret", "alice", b);
	assert_string_not_equal(a, b);
	/* printf '%s' secretalice | openssl md5 */
	assert_string_equal(a, "md54a0a68b43b6cd5cf266fa02f196e2371");
}

static void test_response_matches_openssl_cli(void **state)
{
	char out[36];

	assert_int_equal(md5auth_response_from_hash(PG_HASH, salt1, out), 0);
	assert_string_equal(out, RESP1);
	assert_int_equal(md5auth_response_from_hash(PG_HASH, salt2, out), 0);
	assert_string_equal(out, RESP2);
}

static void test_response_rejects_non_hash(void **state)
{
	char out[36];

	assert_int_equal(md5auth_response_from_hash("postgres", salt1, out), -EINVAL);
	assert_string_equal(out, "");
	assert_int_equal(md5auth_response_from_hash(NULL, salt1, out), -EINVAL);
	assert_int_equal(md5auth_response_from_hash(PG_HASH, NULL, out), -EINVAL);
}

static void test_verify_accepts_right_response(void **state)
{
	assert_true(verify_exact(PG_HASH, salt1, RESP1, strlen(RESP1)));
	assert_true(verify_exact(PG_HASH, salt2, RESP2, strlen(RESP2)));
	/* The wire string's NUL terminator may be counted. */
	assert_true(verify_exact(PG_HASH, salt1, RESP1, strlen(RESP1) + 1));
}

static void test_verify_rejects_wrong_short_long_and_case(void **state)
{
	char resp[64];

	/* Right response, other salt. */
	assert_false(verify_exact(PG_HASH, salt2, RESP1, strlen(RESP1)));
	/* One digit changed. */
	strcpy(resp, RESP1);
	resp[34] = resp[34] == '0' ? '1' : '0';
	assert_false(verify_exact(PG_HASH, salt1, resp, strlen(resp)));
	/* Short: every prefix. */
	for (size_t len = 0; len < strlen(RESP1); len++)
		assert_false(verify_exact(PG_HASH, salt1, RESP1, len));
	/* Long: trailing junk, or a NUL followed by more. */
	strcpy(resp, RESP1 "0");
	assert_false(verify_exact(PG_HASH, salt1, resp, strlen(resp)));
	memcpy(resp, RESP1 "\0x", 37);
	assert_false(verify_exact(PG_HASH, salt1, resp, 37));
	/* Upper case is a different string to PostgreSQL too. */
	strcpy(resp, "MD568BE9ED08DB75F318087AB337AAEA044");
	assert_false(verify_exact(PG_HASH, salt1, resp, strlen(resp)));
	/* The stored hash itself is not a valid response (pass-the-hash needs the salt step). */
	assert_false(verify_exact(PG_HASH, salt1, PG_HASH, strlen(PG_HASH)));
	/* Plaintext "stored" value and NULLs. */
	assert_false(verify_exact("postgres", salt1, RESP1, strlen(RESP1)));
	assert_false(md5auth_verify(PG_HASH, salt1, NULL, 35));
}

static void test_is_hash(void **state)
{
	assert_true(md5auth_is_hash(PG_HASH));
	assert_true(md5auth_is_hash("md5"
	                            "0123456789abcdef0123456789abcdef"));
	assert_false(md5auth_is_hash("md5"
	                             "0123456789ABCDEF0123456789abcdef"));
	assert_false(md5auth_is_hash("md5"
	                             "0123456789abcdef0123456789abcde"));
	assert_false(md5auth_is_hash("md5"
	                             "0123456789abcdef0123456789abcdef0"));
	assert_false(md5auth_is_hash("md5"
	                             "0123456789abcdef0123456789abcdeg"));
	assert_false(md5auth_is_hash("MD5"
	                             "0123456789abcdef0123456789abcdef"));
	assert_false(md5auth_is_hash("SCRAM-SHA-256$4096:abc"));
	assert_false(md5auth_is_hash("md5"));
	assert_false(md5auth_is_hash(""));
	assert_false(md5auth_is_hash(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_password_hash_matches_postgresql_known_vector),
	    cmocka_unit_test(test_password_hash_is_password_then_user),
	    cmocka_unit_test(test_response_matches_openssl_cli),
	    cmocka_unit_test(test_response_rejects_non_hash),
	    cmocka_unit_test(test_verify_accepts_right_response),
	    cmocka_unit_test(test_verify_rejects_wrong_short_long_and_case),
	    cmocka_unit_test(test_is_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
