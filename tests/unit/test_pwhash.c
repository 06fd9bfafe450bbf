/*
 * Unit tests for dataplane/auth/pwhash: the secret --hash-password prints is a
 * PostgreSQL SCRAM-SHA-256 secret of the password (4096 iterations, 16-byte
 * salt), re-derivable from its own salt, with a fresh salt each time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "dataplane/auth/pwhash.h"
#include "dataplane/auth/scram.h"

static void test_secret_is_scram_of_the_password_with_its_salt(void **state)
{
	(void)state;
	char text[SCRAM_SECRET_TEXT_MAX];
	assert_int_equal(pwhash_secret("s3cret pw", text, sizeof(text)), 0);
	assert_true(strncmp(text, "SCRAM-SHA-256$4096:", 19) == 0);
	struct scram_secret s, again, other;
	assert_int_equal(scram_parse_secret(text, &s), 0);
	assert_int_equal(s.iterations, PWHASH_ITERATIONS);
	assert_int_equal(s.salt_len, PWHASH_SALT_LEN);
	assert_int_equal(
	    scram_secret_from_password("s3cret pw", s.salt, s.salt_len, s.iterations, &again), 0);
	assert_memory_equal(again.stored_key, s.stored_key, SCRAM_KEY_LEN);
	assert_memory_equal(again.server_key, s.server_key, SCRAM_KEY_LEN);
	assert_int_equal(
	    scram_secret_from_password("s3cret pX", s.salt, s.salt_len, s.iterations, &other), 0);
	assert_memory_not_equal(other.stored_key, s.stored_key, SCRAM_KEY_LEN);
}

static void test_each_secret_gets_a_fresh_salt(void **state)
{
	(void)state;
	char a[SCRAM_SECRET_TEXT_MAX], b[SCRAM_SECRET_TEXT_MAX];
	assert_int_equal(pwhash_secret("pw", a, sizeof(a)), 0);
	assert_int_equal(pwhash_secret("pw", b, sizeof(b)), 0);
	assert_string_not_equal(a, b);
}

static void test_empty_password_and_small_buffer_refused(void **state)
{
	(void)state;
	char text[SCRAM_SECRET_TEXT_MAX], small[20];
	assert_int_equal(pwhash_secret("", text, sizeof(text)), -EINVAL);
	assert_int_equal(pwhash_secret(NULL, text, sizeof(text)), -EINVAL);
	assert_int_equal(pwhash_secret("pw", small, sizeof(small)), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secret_is_scram_of_the_password_with_its_salt),
	    cmocka_unit_test(test_each_secret_gets_a_fresh_salt),
	    cmocka_unit_test(test_empty_password_and_small_buffer_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
