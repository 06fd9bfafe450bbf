/*
 * Unit tests for dataplane/auth/jwtauth: real keys (openssl CLI) and real tokens
 * (PyJWT) written at test time by tests/unit/jwt_tokens.py into a temporary
 * directory, checked with HMAC secrets, PEM public keys and a JWKS file.
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
#include <jwt.h>

#include "dataplane/auth/jwtauth.h"

static char dir[] = "/tmp/helios-jwt-XXXXXX";
static char why[JWTAUTH_WHY_MAX];

static int gen_tokens(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/unit/jwt_tokens.py %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int rm_tokens(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The file's text (a token, a PEM key), heap-allocated. */
static char *slurp(const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *s = strdup(buf);
	assert_non_null(s);
	return s;
}

static char *tok(const char *c)
{
	char n[128];
	snprintf(n, sizeof(n), "%s.jwt", c);
	return slurp(n);
}

/* A finished conf from "name=value" options; a value "@f" names file f in dir. */
static struct jwt_conf *conf(const char *const *opts)
{
	struct jwt_conf *c = jwtauth_conf_new();
	assert_non_null(c);
	for (; *opts; opts++) {
		char name[64], val[512];
		const char *eq = strchr(*opts, '=');
		assert_non_null(eq);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *opts), *opts);
		if (eq[1] == '@')
			snprintf(val, sizeof(val), "%s/%s", dir, eq + 2);
		else
			snprintf(val, sizeof(val), "%s", eq + 1);
		if (jwtauth_conf_set(c, name, val, why, sizeof(why)) < 0)
			fail_msg("set %s: %s", *opts, why);
	}
	if (jwtauth_conf_finish(c, why, sizeof(why)) < 0)
		fail_msg("finish: %s", why);
	return c;
}

#define STD_OPTS "jwt_issuer=https://issuer.test", "jwt_audience=helios"

/* jwtauth_verify of token case tc for user; the reason is left in why. */
static int verify(const struct jwt_conf *c, const char *tc, const char *user)
{
	char *t = tok(tc);
	char tenant[64];
	why[0] = 0;
	int rc = jwtauth_verify(c, t, user, tenant, sizeof(tenant), why, sizeof(why));
	/* the reason goes to the log: it must never carry the token or its signature */
	const char *sig = strrchr(t, '.');
	assert_null(strstr(why, t));
	if (sig && strlen(sig) > 8)
		assert_null(strstr(why, sig + 1));
	free(t);
	return rc;
}

static struct jwt_conf *rsa_conf(void)
{
	return conf((const char *const[]){"jwt_key_file=@rsa1.pub", STD_OPTS, NULL});
}

static void test_valid_hs256_hs384_hs512_tokens_accepted(void **state)
{
	(void)state;
	struct jwt_conf *c =
	    conf((const char *const[]){"jwt_secret_file=@hs.secret", STD_OPTS, NULL});
	assert_int_equal(verify(c, "hs256_valid", "alice"), 0);
	assert_int_equal(verify(c, "hs384_valid", "alice"), 0);
	assert_int_equal(verify(c, "hs512_valid", "alice"), 0);
	/* the same secret file given as jwt_key_file (not PEM: an HMAC secret) */
	jwtauth_conf_free(c);
	c = conf((const char *const[]){"jwt_key_file=@hs.secret", STD_OPTS, NULL});
	assert_int_equal(verify(c, "hs256_valid", "alice"), 0);
	jwtauth_conf_free(c);
}

static void test_valid_rs256_rs384_rs512_tokens_accepted(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "rs256_valid", "alice"), 0);
	assert_int_equal(verify(c, "rs384_valid", "alice"), 0);
	assert_int_equal(verify(c, "rs512_valid", "alice"), 0);
	jwtauth_conf_free(c);
}

static void test_valid_es256_es384_tokens_accepted(void **state)
{
	(void)state;
	struct jwt_conf *c = conf((const char *const[]){"jwt_key_file=@ec256.pub",
	                                                "jwt_key_file=@ec384.pub", STD_OPTS, NULL});
	assert_int_equal(verify(c, "es256_valid", "alice"), 0);
	assert_int_equal(verify(c, "es384_valid", "alice"), 0);
	/* an RS token has no key here */
	assert_int_equal(verify(c, "rs256_valid", "alice"), -EACCES);
	jwtauth_conf_free(c);
}

static void test_token_signed_by_another_key_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "rs256_other_key", "alice"), -EACCES);
	assert_non_null(strstr(why, "bad signature"));
	jwtauth_conf_free(c);
}

static void test_tampered_signature_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	char *t = tok("rs256_valid");
	char *sig = strrchr(t, '.') + 1;
	size_t mid = strlen(sig) / 2;
	sig[mid] = sig[mid] == 'A' ? 'B' : 'A';
	assert_int_equal(jwtauth_verify(c, t, "alice", NULL, 0, why, sizeof(why)), -EACCES);
	assert_null(strstr(why, sig));
	free(t);
	/* and a tampered payload under the original signature */
	t = tok("rs256_valid");
	char *p = strchr(t, '.') + 3;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(jwtauth_verify(c, t, "alice", NULL, 0, why, sizeof(why)), -EACCES);
	free(t);
	jwtauth_conf_free(c);
}

static void test_expired_token_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "expired", "alice"), -EACCES);
	assert_non_null(strstr(why, "expired"));
	assert_int_equal(verify(c, "no_exp", "alice"), -EACCES);
	assert_non_null(strstr(why, "no exp"));
	jwtauth_conf_free(c);
}

static void test_not_yet_valid_token_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "nbf_future", "alice"), -EACCES);
	assert_non_null(strstr(why, "nbf"));
	jwtauth_conf_free(c);
}

static void test_iat_in_the_future_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "iat_future", "alice"), -EACCES);
	assert_non_null(strstr(why, "iat"));
	jwtauth_conf_free(c);
}

static void test_leeway_tolerates_small_clock_skew_only(void **state)
{
	(void)state;
	struct jwt_conf *strict = rsa_conf();
	assert_int_equal(verify(strict, "expired_skew", "alice"), -EACCES);
	assert_int_equal(verify(strict, "nbf_future_skew", "alice"), -EACCES);
	jwtauth_conf_free(strict);
	struct jwt_conf *c = conf(
	    (const char *const[]){"jwt_key_file=@rsa1.pub", STD_OPTS, "jwt_leeway_secs=300", NULL});
	assert_int_equal(verify(c, "expired_skew", "alice"), 0);
	assert_int_equal(verify(c, "nbf_future_skew", "alice"), 0);
	/* 1000 s is beyond a 300 s leeway */
	assert_int_equal(verify(c, "expired", "alice"), -EACCES);
	assert_int_equal(verify(c, "iat_future", "alice"), -EACCES);
	jwtauth_conf_free(c);
}

static void test_wrong_audience_refused_and_aud_array_accepted(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "wrong_aud", "alice"), -EACCES);
	assert_non_null(strstr(why, "aud"));
	assert_int_equal(verify(c, "aud_array", "alice"), 0);
	assert_int_equal(verify(c, "aud_array_wrong", "alice"), -EACCES);
	jwtauth_conf_free(c);
	/* a token with an aud is refused by a rule that names no audience (RFC 7519 4.1.3) */
	c = conf((const char *const[]){"jwt_key_file=@rsa1.pub", NULL});
	assert_int_equal(verify(c, "rs256_valid", "alice"), -EACCES);
	jwtauth_conf_free(c);
}

static void test_wrong_issuer_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "wrong_iss", "alice"), -EACCES);
	assert_non_null(strstr(why, "iss"));
	jwtauth_conf_free(c);
}

static void test_alg_none_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "alg_none", "alice"), -EACCES);
	assert_non_null(strstr(why, "none"));
	jwtauth_conf_free(c);
	c = conf((const char *const[]){"jwt_secret_file=@hs.secret", STD_OPTS, NULL});
	assert_int_equal(verify(c, "alg_none", "alice"), -EACCES);
	jwtauth_conf_free(c);
}

/* HS256 signed with the RSA public key's PEM as the HMAC secret: libjwt alone
 * accepts it (the first assertion shows the attack is real), jwtauth must not. */
static void test_rs256_public_key_used_as_hs256_secret_refused(void **state)
{
	(void)state;
	char *pem = slurp("rsa1.pub");
	char *t = tok("confusion");
	jwt_t *j = NULL;
	assert_int_equal(jwt_decode(&j, t, (const unsigned char *)pem, (int)strlen(pem)), 0);
	jwt_free(j);
	free(t);
	free(pem);
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "confusion", "alice"), -EACCES);
	assert_non_null(strstr(why, "HS256"));
	jwtauth_conf_free(c);
	/* also with an RSA key in a JWKS */
	c = conf((const char *const[]){"jwt_jwks_file=@jwks.json", STD_OPTS, NULL});
	assert_int_equal(verify(c, "confusion", "alice"), -EACCES);
	jwtauth_conf_free(c);
}

static void test_algorithms_option_limits_accepted_algs(void **state)
{
	(void)state;
	struct jwt_conf *c = conf((const char *const[]){"jwt_key_file=@rsa1.pub", STD_OPTS,
	                                                "jwt_algorithms=RS512", NULL});
	assert_int_equal(verify(c, "rs256_valid", "alice"), -EACCES);
	assert_non_null(strstr(why, "jwt_algorithms"));
	assert_int_equal(verify(c, "rs512_valid", "alice"), 0);
	jwtauth_conf_free(c);
}

static void test_user_claim_must_equal_login_user(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	assert_int_equal(verify(c, "wrong_user", "alice"), -EACCES);
	assert_non_null(strstr(why, "mallory"));
	assert_int_equal(verify(c, "rs256_valid", "bob"), -EACCES);
	jwtauth_conf_free(c);
	c = conf((const char *const[]){"jwt_key_file=@rsa1.pub", STD_OPTS,
	                               "jwt_user_claim=preferred_username", NULL});
	assert_int_equal(verify(c, "custom_user_claim", "alice"), 0);
	assert_int_equal(verify(c, "rs256_valid", "alice"), -EACCES); /* has no such claim */
	jwtauth_conf_free(c);
}

static void test_tenant_claim_copied_out(void **state)
{
	(void)state;
	struct jwt_conf *c = conf((const char *const[]){"jwt_key_file=@rsa1.pub", STD_OPTS,
	                                                "jwt_tenant_claim=tenant", NULL});
	char *t = tok("tenant");
	char tenant[64] = "x";
	assert_int_equal(jwtauth_verify(c, t, "alice", tenant, sizeof(tenant), why, sizeof(why)),
	                 0);
	assert_string_equal(tenant, "acme");
	/* too small a buffer: refused rather than cut */
	char small[3];
	assert_int_equal(jwtauth_verify(c, t, "alice", small, sizeof(small), why, sizeof(why)),
	                 -EACCES);
	free(t);
	t = tok("rs256_valid");
	assert_int_equal(jwtauth_verify(c, t, "alice", tenant, sizeof(tenant), why, sizeof(why)),
	                 0);
	assert_string_equal(tenant, ""); /* no tenant claim in the token */
	free(t);
	jwtauth_conf_free(c);
}

static void test_jwks_with_two_kids_picks_key_by_kid(void **state)
{
	(void)state;
	struct jwt_conf *c =
	    conf((const char *const[]){"jwt_jwks_file=@jwks.json", STD_OPTS, NULL});
	assert_int_equal(verify(c, "kid1", "alice"), 0);
	assert_int_equal(verify(c, "kid2", "alice"), 0);
	/* kid k2 is the EC key: an RS256 token naming it is refused */
	assert_int_equal(verify(c, "kid2_signed_by_k1", "alice"), -EACCES);
	assert_non_null(strstr(why, "does not fit"));
	assert_int_equal(verify(c, "kid_unknown", "alice"), -EACCES);
	assert_non_null(strstr(why, "k9"));
	/* without a kid every fitting key is tried */
	assert_int_equal(verify(c, "rs256_valid", "alice"), 0);
	assert_int_equal(verify(c, "es256_valid", "alice"), 0);
	jwtauth_conf_free(c);
}

static void test_reload_reads_new_jwks_and_keeps_old_conf(void **state)
{
	(void)state;
	char p[256], cmd[600];
	snprintf(p, sizeof(p), "%s/live.json", dir);
	snprintf(cmd, sizeof(cmd), "cp %s/jwks.json %s", dir, p);
	assert_int_equal(system(cmd), 0);
	struct jwt_conf *c =
	    conf((const char *const[]){"jwt_jwks_file=@live.json", STD_OPTS, NULL});
	assert_int_equal(verify(c, "kid3", "alice"), -EACCES);
	snprintf(cmd, sizeof(cmd), "cp %s/jwks2.json %s", dir, p);
	assert_int_equal(system(cmd), 0);
	struct jwt_conf *n = NULL;
	assert_int_equal(jwtauth_conf_reload(c, &n, why, sizeof(why)), 0);
	assert_int_equal(verify(n, "kid3", "alice"), 0);
	assert_int_equal(verify(n, "kid1", "alice"), -EACCES);
	assert_int_equal(verify(c, "kid1", "alice"), 0); /* the old conf is untouched */
	/* a broken file: reload fails, naming the file, and the old conf still works */
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("{\"keys\": [", f);
	fclose(f);
	struct jwt_conf *bad = (struct jwt_conf *)1;
	assert_int_equal(jwtauth_conf_reload(n, &bad, why, sizeof(why)), -EINVAL);
	assert_null(bad);
	assert_non_null(strstr(why, "live.json"));
	assert_int_equal(verify(n, "kid3", "alice"), 0);
	jwtauth_conf_free(n);
	jwtauth_conf_free(c);
}

/* Option errors name the option (and the file when one is involved). */
static void expect_conf_error(const char *const *opts, const char *needle)
{
	struct jwt_conf *c = jwtauth_conf_new();
	int rc = 0;
	why[0] = 0;
	for (; *opts && rc == 0; opts++) {
		char name[64], val[512];
		const char *eq = strchr(*opts, '=');
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *opts), *opts);
		if (eq[1] == '@')
			snprintf(val, sizeof(val), "%s/%s", dir, eq + 2);
		else
			snprintf(val, sizeof(val), "%s", eq + 1);
		rc = jwtauth_conf_set(c, name, val, why, sizeof(why));
	}
	if (rc == 0)
		rc = jwtauth_conf_finish(c, why, sizeof(why));
	if (rc == 0 || !strstr(why, needle))
		fail_msg("expected an error with \"%s\", got %d \"%s\"", needle, rc, why);
	jwtauth_conf_free(c);
}

static void test_bad_options_give_errors_naming_the_option(void **state)
{
	(void)state;
	expect_conf_error((const char *const[]){"jwt_keyfile=x", NULL}, "jwt_keyfile");
	expect_conf_error((const char *const[]){"jwt_leeway_secs=abc", NULL}, "jwt_leeway_secs");
	expect_conf_error((const char *const[]){"jwt_leeway_secs=-1", NULL}, "jwt_leeway_secs");
	expect_conf_error((const char *const[]){"jwt_algorithms=RS256,none", NULL},
	                  "jwt_algorithms");
	expect_conf_error((const char *const[]){"jwt_issuer=", NULL}, "jwt_issuer");
	expect_conf_error((const char *const[]){"jwt_issuer=x", NULL}, "no key");
	expect_conf_error((const char *const[]){"jwt_key_file=@missing.pem", NULL}, "missing.pem");
	expect_conf_error((const char *const[]){"jwt_key_file=@rsa1.key", NULL}, "private key");
	expect_conf_error(
	    (const char *const[]){"jwt_key_file=@rsa1.pub", "jwt_algorithms=ES256", NULL},
	    "jwt_algorithms: ES256");
	expect_conf_error((const char *const[]){"jwt_jwks_file=@rsa1.pub", NULL}, "jwt_jwks_file");
	/* an HMAC secret shorter than RFC 7518 allows */
	char p[256];
	snprintf(p, sizeof(p), "%s/short.secret", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("tooshort\n", f);
	fclose(f);
	expect_conf_error((const char *const[]){"jwt_secret_file=@short.secret", NULL},
	                  "at least 32 bytes");
}

static void test_garbage_tokens_refused(void **state)
{
	(void)state;
	struct jwt_conf *c = rsa_conf();
	const char *bad[] = {"",         "abc",         "a.b", "a.b.c.d", "!!!.e30.sig",
	                     "e30.e30.", "e30.e30.c2ln"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(jwtauth_verify(c, bad[i], "alice", NULL, 0, why, sizeof(why)),
		                 -EACCES);
	jwtauth_conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_hs256_hs384_hs512_tokens_accepted),
	    cmocka_unit_test(test_valid_rs256_rs384_rs512_tokens_accepted),
	    cmocka_unit_test(test_valid_es256_es384_tokens_accepted),
	    cmocka_unit_test(test_token_signed_by_another_key_refused),
	    cmocka_unit_test(test_tampered_signature_refused),
	    cmocka_unit_test(test_expired_token_refused),
	    cmocka_unit_test(test_not_yet_valid_token_refused),
	    cmocka_unit_test(test_iat_in_the_future_refused),
	    cmocka_unit_test(test_leeway_tolerates_small_clock_skew_only),
	    cmocka_unit_test(test_wrong_audience_refused_and_aud_array_accepted),
	    cmocka_unit_test(test_wrong_issuer_refused),
	    cmocka_unit_test(test_alg_none_refused),
	    cmocka_unit_test(test_rs256_public_key_used_as_hs256_secret_refused),
	    cmocka_unit_test(test_algorithms_option_limits_accepted_algs),
	    cmocka_unit_test(test_user_claim_must_equal_login_user),
	    cmocka_unit_test(test_tenant_claim_copied_out),
	    cmocka_unit_test(test_jwks_with_two_kids_picks_key_by_kid),
	    cmocka_unit_test(test_reload_reads_new_jwks_and_keeps_old_conf),
	    cmocka_unit_test(test_bad_options_give_errors_naming_the_option),
	    cmocka_unit_test(test_garbage_tokens_refused),
	};
	return cmocka_run_group_tests(tests, gen_tokens, rm_tokens);
}
