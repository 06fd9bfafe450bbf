/*
 * Unit tests for dataplane/auth/scram: the RFC 7677 vector on both sides, secrets
 * produced by a real PostgreSQL 15, hostile input on every parser, and the
 * password and passthrough (ClientKey) round trips.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "dataplane/auth/scram.h"

/* RFC 7677 section 3: user "user", password "pencil". */
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE        RFC_CLIENT_NONCE RFC_SERVER_NONCE
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The RFC's salt, decoded from "W22ZaJ0SNY7soEsUEjb6gQ==" with Python's base64. */
static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
/* StoredKey/ServerKey for "pencil" with that salt, computed independently with Python
 * (hashlib.pbkdf2_hmac + hmac + sha256), so the RFC secret is not only self-consistent. */
#define RFC_SECRET                                                                                 \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":"                                                                                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* Produced by PostgreSQL 15 itself (postgres --single, password_encryption =
 * 'scram-sha-256', CREATE ROLE a PASSWORD 'secret' / b PASSWORD 'pässword'
 * [UTF-8, precomposed], then SELECT rolpassword FROM pg_authid). */
#define PG_SECRET_SECRET                                                                           \
	"SCRAM-SHA-256$4096:43/"                                                                   \
	"L+Vmt9HBPLp33hKxIIw==$bhksUhebHmVO4QHhLq4dPHzBGTIWahMa1PLxH0edQOY=:"                      \
	"ndAFc8Zli+AykHX0+p2tCVMGl/32g/NsLy52pmIRcwc="
#define PG_SECRET_UTF8                                                                             \
	"SCRAM-SHA-256$4096:nBx/3AfxTH9t3v2ce3VlQw==$94iHRtv/"                                     \
	"3toiLICtvfv67btv83qUuqRyQJxGHM0Vunk=:"                                                    \
	"P8laFgjBAIGsz0gN93q+RSsori22fkPrpkLDqg6u44k="

#define BUF 2048

/* Copies len bytes into a heap block of exactly len bytes, so ASan flags any read past len. */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static int server_first_exact(struct scram_server *s, const char *msg, size_t len, char *out,
                              size_t *out_len)
{
	char *m = exact(msg, len);
	int rc = scram_server_handle_first(s, m, len, out, BUF, out_len);
	free(m);
	return rc;
}

static int server_final_exact(struct scram_server *s, const char *msg, size_t len, char *out,
                              size_t *out_len)
{
	char *m = exact(msg, len);
	int rc = scram_server_handle_final(s, m, len, out, BUF, out_len);
	free(m);
	return rc;
}

static int client_server_first_exact(struct scram_client *c, const char *msg, size_t len, char *out,
                                     size_t *out_len)
{
	char *m = exact(msg, len);
	int rc = scram_client_handle_server_first(c, m, len, out, BUF, out_len);
	free(m);
	return rc;
}

static void rfc_secret(struct scram_secret *sec)
{
	assert_int_equal(
	    scram_secret_from_password("pencil", rfc_salt, sizeof(rfc_salt), 4096, sec), 0);
}

/* A server that has answered the RFC client-first, ready for a client-final. */
static void rfc_server_after_first(struct scram_server *s)
{
	struct scram_secret sec;
	char out[BUF];
	size_t n;

	rfc_secret(&sec);
	assert_int_equal(scram_server_init(s, &sec), 0);
	scram_server_set_nonce(s, RFC_SERVER_NONCE);
	assert_int_equal(server_first_exact(s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, &n),
	                 0);
}

/* Runs client c against server s to the end; returns the first non-zero result. */
static int run_exchange(struct scram_client *c, struct scram_server *s)
{
	char a[BUF], b[BUF];
	size_t an, bn;
	int rc;

	if ((rc = scram_client_first(c, a, sizeof(a), &an)))
		return rc;
	if ((rc = scram_server_handle_first(s, a, an, b, sizeof(b), &bn)))
		return rc;
	if ((rc = scram_client_handle_server_first(c, b, bn, a, sizeof(a), &an)))
		return rc;
	if ((rc = scram_server_handle_final(s, a, an, b, sizeof(b), &bn)))
		return rc;
	return scram_client_verify_server_final(c, b, bn);
}

/* ---- RFC 7677 --------------------------------------------------------------- */

static void test_rfc7677_secret_matches_independent_computation(void **state)
{
	struct scram_secret derived, parsed;
	char text[SCRAM_SECRET_TEXT_MAX];

	rfc_secret(&derived);
	assert_int_equal(scram_parse_secret(RFC_SECRET, &parsed), 0);
	assert_int_equal(parsed.iterations, 4096);
	assert_int_equal(parsed.salt_len, 16);
	assert_memory_equal(parsed.salt, rfc_salt, 16);
	assert_memory_equal(parsed.stored_key, derived.stored_key, SCRAM_KEY_LEN);
	assert_memory_equal(parsed.server_key, derived.server_key, SCRAM_KEY_LEN);
	assert_int_equal(scram_format_secret(&derived, text, sizeof(text)), 0);
	assert_string_equal(text, RFC_SECRET);
}

static void test_rfc7677_client_produces_rfc_proof_and_verifies_server_signature(void **state)
{
	struct scram_client c;
	char out[BUF];
	size_t n;

	assert_int_equal(scram_client_init_password(&c, "pencil"), 0);
	/* Test hooks: the RFC's client sends "n=user" and a fixed nonce. */
	assert_int_equal(scram_client_set_user(&c, "user"), 0);
	scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
	assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
	assert_string_equal(out, RFC_CLIENT_FIRST);
	assert_int_equal(n, strlen(RFC_CLIENT_FIRST));

	assert_int_equal(
	    client_server_first_exact(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, &n), 0);
	assert_string_equal(out, RFC_CLIENT_FINAL);
	assert_int_equal(n, strlen(RFC_CLIENT_FINAL));

	char *m = exact(RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL));
	assert_int_equal(scram_client_verify_server_final(&c, m, strlen(RFC_SERVER_FINAL)), 0);
	free(m);
	scram_client_wipe(&c);
}

static void test_rfc7677_server_verifies_rfc_client_final_and_sends_rfc_server_final(void **state)
{
	struct scram_server s;
	struct scram_secret sec;
	uint8_t key[SCRAM_KEY_LEN], h[SCRAM_KEY_LEN];
	char out[BUF];
	size_t n;

	rfc_secret(&sec);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	scram_server_set_nonce(&s, RFC_SERVER_NONCE);
	assert_false(scram_server_client_key(&s, key));
	assert_int_equal(
	    server_first_exact(&s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, &n), 0);
	assert_string_equal(out, RFC_SERVER_FIRST);
	assert_int_equal(n, strlen(RFC_SERVER_FIRST));

	assert_int_equal(
	    server_final_exact(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, &n), 0);
	assert_string_equal(out, RFC_SERVER_FINAL);
	assert_int_equal(n, strlen(RFC_SERVER_FINAL));

	/* The recovered ClientKey hashes to StoredKey. */
	assert_true(scram_server_client_key(&s, key));
	assert_int_equal(EVP_Digest(key, sizeof(key), h, NULL, EVP_sha256(), NULL), 1);
	assert_memory_equal(h, sec.stored_key, SCRAM_KEY_LEN);
	scram_server_wipe(&s);
	assert_false(scram_server_client_key(&s, key));
}

static void test_client_rejects_wrong_server_signature_and_server_error(void **state)
{
	static const char *finals[] = {
	    "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", /* first byte changed */
	    "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "e=invalid-proof",
	};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct scram_client c;
		char out[BUF];
		size_t n;

		assert_int_equal(scram_client_init_password(&c, "pencil"), 0);
		assert_int_equal(scram_client_set_user(&c, "user"), 0);
		scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
		assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
		assert_int_equal(client_server_first_exact(&c, RFC_SERVER_FIRST,
		                                           strlen(RFC_SERVER_FIRST), out, &n),
		                 0);
		char *m = exact(finals[i], strlen(finals[i]));
		assert_int_equal(scram_client_verify_server_final(&c, m, strlen(finals[i])),
		                 -EACCES);
		free(m);
		/* One shot: a second try is refused. */
		assert_int_equal(scram_client_verify_server_final(&c, RFC_SERVER_FINAL,
		                                                  strlen(RFC_SERVER_FINAL)),
		                 -EINVAL);
	}
}

/* ---- client side: keys remembered per role -------------------------------------- */

/* One login of the proxy to a server holding sec with password pw; 0 when the
 * server accepts the proof and the client accepts the server's signature. */
static int login_once(const struct scram_secret *sec, const char *pw)
{
	struct scram_server s;
	struct scram_client c;
	char a[BUF], b[BUF];
	size_t an, bn;
	int rc;
	if ((rc = scram_server_init(&s, sec)) || (rc = scram_client_init_password(&c, pw)) ||
	    (rc = scram_client_first(&c, a, sizeof(a), &an)) ||
	    (rc = scram_server_handle_first(&s, a, an, b, sizeof(b), &bn)) ||
	    (rc = scram_client_handle_server_first(&c, b, bn, a, sizeof(a), &an)) ||
	    (rc = scram_server_handle_final(&s, a, an, b, sizeof(b), &bn)))
		return rc;
	return scram_client_verify_server_final(&c, b, bn);
}

static void test_client_derives_keys_once_per_salt_and_password(void **state)
{
	struct scram_secret sec, sec2;
	assert_int_equal(scram_secret_from_password("pw-one", (const uint8_t *)"0123456789abcdef",
	                                            16, 4096, &sec),
	                 0);
	assert_int_equal(scram_secret_from_password("pw-one", (const uint8_t *)"fedcba9876543210",
	                                            16, 4096, &sec2),
	                 0);
	unsigned long d0 = scram_client_derivations();
	assert_int_equal(login_once(&sec, "pw-one"), 0);
	assert_int_equal(scram_client_derivations(), d0 + 1);
	/* same role, same secret: no PBKDF2, and the login still verifies both ways */
	assert_int_equal(login_once(&sec, "pw-one"), 0);
	assert_int_equal(login_once(&sec, "pw-one"), 0);
	assert_int_equal(scram_client_derivations(), d0 + 1);
	/* a new salt (password changed on the server) derives again */
	assert_int_equal(login_once(&sec2, "pw-one"), 0);
	assert_int_equal(scram_client_derivations(), d0 + 2);
	/* a wrong password is not served from the right one's entry */
	assert_int_equal(login_once(&sec, "pw-two"), -EACCES);
	assert_int_equal(scram_client_derivations(), d0 + 3);
}

/* ---- server side: refusals ---------------------------------------------------- */

static void test_server_wrong_password_is_eacces(void **state)
{
	struct scram_secret sec;
	struct scram_server s;
	struct scram_client c;
	uint8_t key[SCRAM_KEY_LEN];
	char a[BUF], b[BUF];
	size_t an, bn;

	assert_int_equal(scram_secret_from_password("right", (const uint8_t *)"saltsaltsaltsalt",
	                                            16, 4096, &sec),
	                 0);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(scram_client_init_password(&c, "wrong"), 0);
	assert_int_equal(scram_client_first(&c, a, sizeof(a), &an), 0);
	assert_int_equal(scram_server_handle_first(&s, a, an, b, sizeof(b), &bn), 0);
	assert_int_equal(scram_client_handle_server_first(&c, b, bn, a, sizeof(a), &an), 0);
	assert_int_equal(scram_server_handle_final(&s, a, an, b, sizeof(b), &bn), -EACCES);
	assert_false(scram_server_client_key(&s, key));
	/* No second guess on the same nonce. */
	assert_int_equal(scram_server_handle_final(&s, a, an, b, sizeof(b), &bn), -EINVAL);
}

static void test_server_tampered_nonce_is_eproto(void **state)
{
	static const char *finals[] = {
	    /* server part changed */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* server part truncated */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* server part extended */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0x,"
	    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* client part only */
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct scram_server s;
		char out[BUF];
		size_t n;

		rfc_server_after_first(&s);
		assert_int_equal(server_final_exact(&s, finals[i], strlen(finals[i]), out, &n),
		                 -EPROTO);
	}
}

static void test_server_refuses_channel_binding_and_authzid(void **state)
{
	static const char *firsts[] = {
	    "p=tls-server-end-point,,n=,r=abcdef",
	    "p,,n=,r=abcdef",
	    "n,a=bob,n=,r=abcdef",
	    "n,,m=ext,n=,r=abcdef",
	};
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		struct scram_secret sec;
		struct scram_server s;
		char out[BUF];
		size_t n;

		rfc_secret(&sec);
		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(server_first_exact(&s, firsts[i], strlen(firsts[i]), out, &n),
		                 -EPROTO);
		/* Failed exchanges stay failed. */
		assert_int_equal(server_first_exact(&s, "n,,n=,r=abcdef", 14, out, &n), -EINVAL);
	}
}

static void test_server_accepts_y_flag_but_requires_c_to_echo_it(void **state)
{
	struct scram_secret sec;
	struct scram_server s;
	char out[BUF], final[BUF];
	size_t n;
	const char *first = "y,,n=,r=abcdef";

	rfc_secret(&sec);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	scram_server_set_nonce(&s, "XYZ");
	assert_int_equal(server_first_exact(&s, first, strlen(first), out, &n), 0);
	assert_string_equal(out, "r=abcdefXYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	/* c=biws is base64("n,,"), but this client said "y,," (eSws). */
	snprintf(final, sizeof(final),
	         "c=biws,r=abcdefXYZ,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(server_final_exact(&s, final, strlen(final), out, &n), -EPROTO);

	/* With c=eSws the framing is accepted and the (bogus) proof is what fails. */
	assert_int_equal(scram_server_init(&s, &sec), 0);
	scram_server_set_nonce(&s, "XYZ");
	assert_int_equal(server_first_exact(&s, first, strlen(first), out, &n), 0);
	snprintf(final, sizeof(final),
	         "c=eSws,r=abcdefXYZ,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	assert_int_equal(server_final_exact(&s, final, strlen(final), out, &n), -EACCES);
}

static void test_server_garbage_client_first_is_eproto(void **state)
{
	static const char *firsts[] = {
	    "x",
	    "n",
	    "n,",
	    "n,,",
	    "n,,n=",
	    "n,,n=,",
	    "n,,n=,r=",
	    "n,,r=abc",
	    "n,,n=,r=ab,c",
	    "n,,n=,r=abc,",
	    "n,,n=,r=abc,1=x",
	    "n,,n=,r=abc,,",
	    "n,,n=,r=ab\x01c",
	    "n,,n=,r=ab\x7f",
	    "n,,n=,r=ab\xc3\xa4",
	    "n,,n=,r=abc x",
	    "n, ,n=,r=abc",
	    " n,,n=,r=abc",
	    "biws",
	    "\xff\xff\xff\xff",
	};
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		struct scram_secret sec;
		struct scram_server s;
		char out[BUF];
		size_t n;

		rfc_secret(&sec);
		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(server_first_exact(&s, firsts[i], strlen(firsts[i]), out, &n),
		                 -EPROTO);
	}
}

static void test_server_empty_huge_and_nul_client_first_is_eproto(void **state)
{
	struct scram_secret sec;
	struct scram_server s;
	char out[BUF], msg[4 * SCRAM_MSG_MAX];
	size_t n, len;

	rfc_secret(&sec);
	/* Empty. */
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(scram_server_handle_first(&s, "", 0, out, sizeof(out), &n), -EPROTO);
	/* Nonce one character over SCRAM_NONCE_MAX. */
	len = (size_t)snprintf(msg, sizeof(msg), "n,,n=,r=");
	memset(msg + len, 'a', SCRAM_NONCE_MAX + 1);
	len += SCRAM_NONCE_MAX + 1;
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(server_first_exact(&s, msg, len, out, &n), -EPROTO);
	/* Nonce exactly SCRAM_NONCE_MAX is fine. */
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(server_first_exact(&s, msg, len - 1, out, &n), 0);
	/* Huge user name: message over SCRAM_MSG_MAX. */
	len = (size_t)snprintf(msg, sizeof(msg), "n,,n=");
	memset(msg + len, 'u', 3 * SCRAM_MSG_MAX);
	len += 3 * SCRAM_MSG_MAX;
	len += (size_t)snprintf(msg + len, sizeof(msg) - len, ",r=abc");
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(server_first_exact(&s, msg, len, out, &n), -EPROTO);
	/* An embedded NUL. */
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(server_first_exact(&s, "n,,n=\0,r=abc", 12, out, &n), -EPROTO);
	/* A NULL message with a length. */
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(scram_server_handle_first(&s, NULL, 10, out, sizeof(out), &n), -EPROTO);
}

static void test_server_truncated_client_first_never_crashes(void **state)
{
	const size_t full = strlen(RFC_CLIENT_FIRST);
	const size_t nonce_at = strlen("n,,n=user,r=");

	for (size_t len = 0; len <= full; len++) {
		struct scram_secret sec;
		struct scram_server s;
		char out[BUF];
		size_t n;

		rfc_secret(&sec);
		assert_int_equal(scram_server_init(&s, &sec), 0);
		int rc = server_first_exact(&s, RFC_CLIENT_FIRST, len, out, &n);
		/* Anything before the first nonce character is incomplete; a shorter nonce is
		 * still a well-formed message. */
		assert_int_equal(rc, len > nonce_at ? 0 : -EPROTO);
	}
}

static void test_server_garbage_client_final_is_eproto(void **state)
{
	static const char *finals[] = {
	    "x",
	    "c=biws",
	    "c=biws,",
	    "c=biws,r=" RFC_NONCE,
	    "c=biws,r=" RFC_NONCE ",",
	    "c=biws,r=" RFC_NONCE ",p=",
	    "c=biws,r=" RFC_NONCE ",p=AAAA",
	    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
	    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ==",
	    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQAAAA",
	    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=y",
	    "c=biws,r=" RFC_NONCE ",p= HzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV*=",
	    "c=biws,r=" RFC_NONCE ",1=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "r=" RFC_NONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=biw,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    "c=bi ws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	    /* channel binding data in c= */
	    "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAAA,r=" RFC_NONCE
	    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct scram_server s;
		char out[BUF];
		size_t n;

		rfc_server_after_first(&s);
		assert_int_equal(server_final_exact(&s, finals[i], strlen(finals[i]), out, &n),
		                 -EPROTO);
	}
}

static void test_server_extension_before_proof_is_covered_by_the_signature(void **state)
{
	/* An unknown extension is accepted by the parser but is part of AuthMessage,
	 * so the RFC proof no longer matches. */
	const char *final =
	    "c=biws,r=" RFC_NONCE ",x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	struct scram_server s;
	char out[BUF];
	size_t n;

	rfc_server_after_first(&s);
	assert_int_equal(server_final_exact(&s, final, strlen(final), out, &n), -EACCES);
}

static void test_server_truncated_or_huge_client_final_is_eproto(void **state)
{
	const size_t full = strlen(RFC_CLIENT_FINAL);
	char msg[4 * SCRAM_MSG_MAX];
	struct scram_server s;
	char out[BUF];
	size_t n, len;

	for (len = 0; len < full; len++) {
		rfc_server_after_first(&s);
		assert_int_equal(server_final_exact(&s, RFC_CLIENT_FINAL, len, out, &n), -EPROTO);
	}
	/* Huge: a valid prefix followed by a giant extension. */
	len = strlen("c=biws,r=" RFC_NONCE ",x=");
	memcpy(msg, "c=biws,r=" RFC_NONCE ",x=", len);
	memset(msg + len, 'x', 3 * SCRAM_MSG_MAX);
	len += 3 * SCRAM_MSG_MAX;
	len += (size_t)snprintf(msg + len, sizeof(msg) - len,
	                        ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	rfc_server_after_first(&s);
	assert_int_equal(server_final_exact(&s, msg, len, out, &n), -EPROTO);
	/* Embedded NUL. */
	memcpy(msg, RFC_CLIENT_FINAL, full);
	msg[10] = '\0';
	rfc_server_after_first(&s);
	assert_int_equal(server_final_exact(&s, msg, full, out, &n), -EPROTO);
}

static void test_server_small_output_buffer_is_enospc(void **state)
{
	struct scram_secret sec;
	struct scram_server s;
	char out[BUF];
	size_t n;

	rfc_secret(&sec);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	scram_server_set_nonce(&s, RFC_SERVER_NONCE);
	/* Exactly the message length leaves no room for the NUL. */
	assert_int_equal(scram_server_handle_first(&s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
	                                           out, strlen(RFC_SERVER_FIRST), &n),
	                 -ENOSPC);

	rfc_server_after_first(&s);
	assert_int_equal(scram_server_handle_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
	                                           out, strlen(RFC_SERVER_FINAL), &n),
	                 -ENOSPC);
	assert_false(scram_server_client_key(&s, (uint8_t[SCRAM_KEY_LEN]){0}));
}

static void test_server_calls_out_of_order_are_einval(void **state)
{
	struct scram_server s, zero;
	struct scram_secret sec;
	char out[BUF];
	size_t n;

	memset(&zero, 0, sizeof(zero));
	assert_int_equal(scram_server_handle_first(&zero, RFC_CLIENT_FIRST,
	                                           strlen(RFC_CLIENT_FIRST), out, sizeof(out), &n),
	                 -EINVAL);
	rfc_secret(&sec);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(scram_server_handle_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
	                                           out, sizeof(out), &n),
	                 -EINVAL);
	sec.iterations = 0;
	assert_int_equal(scram_server_init(&s, &sec), -EINVAL);
	assert_int_equal(scram_server_init(&s, NULL), -EINVAL);
}

/* ---- client side: refusals ---------------------------------------------------- */

static void test_client_rejects_bad_server_first(void **state)
{
	static const char *firsts[] = {
	    /* nonce does not start with ours */
	    "r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i="
	    "4096",
	    /* nonce is only ours: the server added nothing */
	    "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	    /* iteration counts */
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i= 4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==",
	    /* salts */
	    "r=" RFC_NONCE ",s=,i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==X,i=4096",
	    "r=" RFC_NONCE ",s=" /* 69 bytes: over SCRAM_SALT_MAX */
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAA,i=4096",
	    /* structure */
	    "m=ext,r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	    "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_NONCE ",i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,9=x",
	    "e=other-error",
	    "",
	};
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		struct scram_client c;
		char out[BUF];
		size_t n;

		assert_int_equal(scram_client_init_password(&c, "pencil"), 0);
		scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
		assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
		assert_int_equal(
		    client_server_first_exact(&c, firsts[i], strlen(firsts[i]), out, &n), -EPROTO);
		scram_client_wipe(&c);
	}
}

static void test_client_truncated_server_first_never_crashes(void **state)
{
	const size_t full = strlen(RFC_SERVER_FIRST);

	/* Truncations either lose a field or shorten i=4096 to i=4/40/409 (accepted). */
	for (size_t len = 0; len <= full; len++) {
		struct scram_client c;
		char out[BUF];
		size_t n;

		assert_int_equal(scram_client_init_password(&c, "pencil"), 0);
		scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
		assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
		int rc = client_server_first_exact(&c, RFC_SERVER_FIRST, len, out, &n);
		assert_int_equal(rc, len >= full - 3 ? 0 : -EPROTO);
	}
}

static void test_client_keys_mode_allows_iterations_above_cap(void **state)
{
	/* In passthrough no PBKDF2 runs, so a PostgreSQL 16 scram_iterations above our
	 * cap must not break it. */
	const char *first = "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000";
	uint8_t k[SCRAM_KEY_LEN] = {1};
	struct scram_client c;
	char out[BUF];
	size_t n;

	assert_int_equal(scram_client_init_keys(&c, k, k), 0);
	scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
	assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
	assert_string_equal(out, "n,,n=,r=" RFC_CLIENT_NONCE);
	assert_int_equal(client_server_first_exact(&c, first, strlen(first), out, &n), 0);
}

static void test_client_malformed_server_final_is_eproto(void **state)
{
	static const char *finals[] = {
	    "",
	    "v=",
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
	    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=y",
	    "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	    "v=AAAA",
	};
	for (size_t i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		struct scram_client c;
		char out[BUF];
		size_t n;

		assert_int_equal(scram_client_init_password(&c, "pencil"), 0);
		assert_int_equal(scram_client_set_user(&c, "user"), 0);
		scram_client_set_nonce(&c, RFC_CLIENT_NONCE);
		assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
		assert_int_equal(client_server_first_exact(&c, RFC_SERVER_FIRST,
		                                           strlen(RFC_SERVER_FIRST), out, &n),
		                 0);
		char *m = exact(finals[i], strlen(finals[i]));
		assert_int_equal(scram_client_verify_server_final(&c, m, strlen(finals[i])),
		                 -EPROTO);
		free(m);
	}
}

static void test_client_user_hook_escapes_saslname(void **state)
{
	struct scram_client c;
	char out[BUF];
	size_t n;
	char longname[80];

	assert_int_equal(scram_client_init_password(&c, "x"), 0);
	assert_int_equal(scram_client_set_user(&c, "a=b,c"), 0);
	scram_client_set_nonce(&c, "N");
	assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
	assert_string_equal(out, "n,,n=a=3Db=2Cc,r=N");

	memset(longname, 'u', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(scram_client_init_password(&c, "x"), 0);
	assert_int_equal(scram_client_set_user(&c, longname), -EINVAL);
}

static void test_client_nonce_hook_ignores_invalid_nonces(void **state)
{
	struct scram_client c;
	char out[BUF], before[BUF];
	size_t n;

	assert_int_equal(scram_client_init_password(&c, "x"), 0);
	memcpy(before, c.nonce, sizeof(c.nonce));
	scram_client_set_nonce(&c, "has,comma");
	scram_client_set_nonce(&c, "");
	scram_client_set_nonce(&c, "sp ace");
	assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), 0);
	assert_int_equal(strncmp(out, "n,,n=,r=", 8), 0);
	assert_string_equal(out + 8, before);
	/* Random nonce: 18 bytes, base64 => 24 characters. */
	assert_int_equal(strlen(before), 24);
}

static void test_client_random_nonces_differ(void **state)
{
	struct scram_client a, b;

	assert_int_equal(scram_client_init_password(&a, "x"), 0);
	assert_int_equal(scram_client_init_password(&b, "x"), 0);
	assert_string_not_equal(a.nonce, b.nonce);
}

static void test_client_init_rejects_bad_arguments(void **state)
{
	struct scram_client c;
	char *big = malloc(SCRAM_PASSWORD_MAX + 2);
	char out[BUF];
	size_t n;

	assert_non_null(big);
	memset(big, 'p', SCRAM_PASSWORD_MAX + 1);
	big[SCRAM_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(scram_client_init_password(&c, big), -EINVAL);
	assert_int_equal(scram_client_first(&c, out, sizeof(out), &n), -EINVAL);
	big[SCRAM_PASSWORD_MAX] = '\0';
	assert_int_equal(scram_client_init_password(&c, big), 0);
	free(big);
	assert_int_equal(scram_client_init_password(&c, NULL), -EINVAL);
	assert_int_equal(scram_client_init_keys(&c, NULL, NULL), -EINVAL);
	/* Out of order. */
	assert_int_equal(scram_client_init_password(&c, "x"), 0);
	assert_int_equal(scram_client_handle_server_first(
	                     &c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out), &n),
	                 -EINVAL);
	assert_int_equal(
	    scram_client_verify_server_final(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
	    -EINVAL);
}

/* ---- round trips -------------------------------------------------------------- */

static void test_round_trip_with_password(void **state)
{
	struct scram_secret sec;
	struct scram_server s;
	struct scram_client c;
	uint8_t salt[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

	assert_int_equal(scram_secret_from_password("s3cret pass", salt, sizeof(salt), 4096, &sec),
	                 0);
	assert_int_equal(scram_server_init(&s, &sec), 0);
	assert_int_equal(scram_client_init_password(&c, "s3cret pass"), 0);
	assert_int_equal(run_exchange(&c, &s), 0);
	scram_server_wipe(&s);
	scram_client_wipe(&c);
}

static void test_round_trip_with_empty_and_non_ascii_passwords(void **state)
{
	static const char *pws[] = {"", "p\xc3\xa4ssword", "\xff\xfe not utf-8"};
	for (size_t i = 0; i < sizeof(pws) / sizeof(pws[0]); i++) {
		struct scram_secret sec;
		struct scram_server s;
		struct scram_client c;

		assert_int_equal(scram_secret_from_password(
		                     pws[i], (const uint8_t *)"0123456789abcdef", 16, 1, &sec),
		                 0);
		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(scram_client_init_password(&c, pws[i]), 0);
		assert_int_equal(run_exchange(&c, &s), 0);
	}
}

static void test_passthrough_client_key_authenticates_against_second_server(void **state)
{
	struct scram_secret sec;
	struct scram_server front, back;
	struct scram_client user, proxy;
	uint8_t key[SCRAM_KEY_LEN], key2[SCRAM_KEY_LEN];

	assert_int_equal(scram_parse_secret(PG_SECRET_SECRET, &sec), 0);
	/* The end user logs into the proxy with a password... */
	assert_int_equal(scram_server_init(&front, &sec), 0);
	assert_int_equal(scram_client_init_password(&user, "secret"), 0);
	assert_int_equal(run_exchange(&user, &front), 0);
	assert_true(scram_server_client_key(&front, key));
	/* ...and the proxy logs into "PostgreSQL" with only the recovered ClientKey. */
	assert_int_equal(scram_server_init(&back, &sec), 0);
	assert_int_equal(scram_client_init_keys(&proxy, key, sec.server_key), 0);
	assert_int_equal(run_exchange(&proxy, &back), 0);
	assert_true(scram_server_client_key(&back, key2));
	assert_memory_equal(key, key2, SCRAM_KEY_LEN);
}

static void test_passthrough_with_wrong_keys_fails(void **state)
{
	struct scram_secret sec, other;
	struct scram_server front, back;
	struct scram_client user, proxy;
	uint8_t key[SCRAM_KEY_LEN];
	char a[BUF], b[BUF];
	size_t an, bn;

	assert_int_equal(scram_parse_secret(PG_SECRET_SECRET, &sec), 0);
	assert_int_equal(scram_server_init(&front, &sec), 0);
	assert_int_equal(scram_client_init_password(&user, "secret"), 0);
	assert_int_equal(run_exchange(&user, &front), 0);
	assert_true(scram_server_client_key(&front, key));

	/* Right ClientKey, wrong ServerKey: the backend accepts us but we must not trust it. */
	assert_int_equal(scram_server_init(&back, &sec), 0);
	assert_int_equal(scram_client_init_keys(&proxy, key, sec.stored_key), 0);
	assert_int_equal(run_exchange(&proxy, &back), -EACCES);

	/* A backend with a different secret for the same password rejects the key. */
	assert_int_equal(scram_secret_from_password("secret", (const uint8_t *)"another salt....",
	                                            16, 4096, &other),
	                 0);
	assert_int_equal(scram_server_init(&back, &other), 0);
	assert_int_equal(scram_client_init_keys(&proxy, key, sec.server_key), 0);
	assert_int_equal(scram_client_first(&proxy, a, sizeof(a), &an), 0);
	assert_int_equal(scram_server_handle_first(&back, a, an, b, sizeof(b), &bn), 0);
	assert_int_equal(scram_client_handle_server_first(&proxy, b, bn, a, sizeof(a), &an), 0);
	assert_int_equal(scram_server_handle_final(&back, a, an, b, sizeof(b), &bn), -EACCES);
}

/* ---- secrets ------------------------------------------------------------------ */

static void test_postgresql_generated_secrets_accept_our_client(void **state)
{
	static const struct {
		const char *secret, *password;
	} cases[] = {
	    {PG_SECRET_SECRET, "secret"},
	    {PG_SECRET_UTF8, "p\xc3\xa4ssword"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct scram_secret sec, derived;
		struct scram_server s;
		struct scram_client c;
		char text[SCRAM_SECRET_TEXT_MAX];

		assert_int_equal(scram_parse_secret(cases[i].secret, &sec), 0);
		assert_int_equal(sec.iterations, 4096);
		assert_int_equal(sec.salt_len, 16);
		/* Same derivation as PostgreSQL for the same salt... */
		assert_int_equal(scram_secret_from_password(cases[i].password, sec.salt,
		                                            sec.salt_len, sec.iterations, &derived),
		                 0);
		assert_int_equal(scram_format_secret(&derived, text, sizeof(text)), 0);
		assert_string_equal(text, cases[i].secret);
		/* ...and a full exchange against it. */
		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(scram_client_init_password(&c, cases[i].password), 0);
		assert_int_equal(run_exchange(&c, &s), 0);
		/* The wrong password does not. */
		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(scram_client_init_password(&c, "Secret"), 0);
		assert_int_equal(run_exchange(&c, &s), -EACCES);
	}
}

static void test_secret_parse_format_round_trip(void **state)
{
	struct scram_secret a, b;
	uint8_t salt[SCRAM_SALT_MAX];
	char text[SCRAM_SECRET_TEXT_MAX], small[32];

	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)(i * 37 + 11);
	/* Salt lengths exercising all three base64 padding cases, up to the maximum. */
	for (size_t len = 1; len <= SCRAM_SALT_MAX; len++) {
		assert_int_equal(scram_secret_from_password("pw", salt, len, 2, &a), 0);
		assert_int_equal(scram_format_secret(&a, text, sizeof(text)), 0);
		assert_int_equal(scram_parse_secret(text, &b), 0);
		assert_int_equal(b.iterations, 2);
		assert_int_equal(b.salt_len, len);
		assert_memory_equal(b.salt, salt, len);
		assert_memory_equal(b.stored_key, a.stored_key, SCRAM_KEY_LEN);
		assert_memory_equal(b.server_key, a.server_key, SCRAM_KEY_LEN);
	}
	assert_int_equal(scram_format_secret(&a, small, sizeof(small)), -ENOSPC);
	assert_int_equal(small[0], '\0');
}

static void test_secret_parse_rejects_malformed(void **state)
{
	static const char *bad[] = {
	    "",
	    "md53175bce1d3201d16594cebf9d7eb3f9d",
	    "SCRAM-SHA-256$",
	    "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$2147483648:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLm"
	    "tbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    ":"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:AAAA",
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	    "SCRAM-SHA-256$ "
	    "4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	};
	struct scram_secret sec;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&sec, 0xaa, sizeof(sec));
		assert_int_equal(scram_parse_secret(bad[i], &sec), -EINVAL);
		assert_int_equal(sec.iterations, 0); /* zeroed on failure */
	}
	assert_int_equal(scram_parse_secret(NULL, &sec), -EINVAL);
	assert_int_equal(scram_parse_secret(RFC_SECRET, NULL), -EINVAL);
}

static void test_secret_from_password_rejects_bad_arguments(void **state)
{
	struct scram_secret sec;
	uint8_t salt[SCRAM_SALT_MAX + 1] = {0};

	assert_int_equal(scram_secret_from_password("pw", salt, 0, 4096, &sec), -EINVAL);
	assert_int_equal(scram_secret_from_password("pw", salt, sizeof(salt), 4096, &sec), -EINVAL);
	assert_int_equal(scram_secret_from_password("pw", salt, 16, 0, &sec), -EINVAL);
	assert_int_equal(scram_secret_from_password(NULL, salt, 16, 4096, &sec), -EINVAL);
	assert_int_equal(scram_secret_from_password("pw", NULL, 16, 4096, &sec), -EINVAL);
}

/* ---- salts of the proxy's own choosing, mock secrets ---- */

#define MOCK_KEY "unit-test-key"
/* HMAC-SHA256(MOCK_KEY, tag "\0" "ghost"), computed independently with Python's hmac. */
static const uint8_t ghost_salt_hmac[32] = {
    0x01, 0xc7, 0xe7, 0xa8, 0x46, 0x70, 0x04, 0x4f, 0x71, 0x34, 0x5b, 0x33, 0x3a, 0x60, 0x71, 0xc4,
    0x08, 0x47, 0xe2, 0xdd, 0xa0, 0x76, 0x32, 0xd0, 0x7e, 0xb9, 0xd5, 0xb1, 0x24, 0x18, 0x1f, 0xe3};
static const uint8_t ghost_stored_hmac[32] = {
    0x9b, 0xa8, 0x99, 0x67, 0x77, 0x8e, 0x0d, 0xa0, 0x33, 0x3e, 0x21, 0xa7, 0xb3, 0xd6, 0x7d, 0x38,
    0xca, 0x0a, 0x54, 0xce, 0xa6, 0x6f, 0x9e, 0xfe, 0xd5, 0x41, 0x3b, 0xa3, 0x0f, 0xad, 0x61, 0x9b};
static const uint8_t ghost_server_hmac[32] = {
    0x76, 0x52, 0xb3, 0x86, 0xcd, 0x8b, 0x49, 0x71, 0xfd, 0x67, 0xe6, 0x96, 0xe5, 0xad, 0xb7, 0x9a,
    0x1b, 0x4e, 0xdf, 0x1b, 0x41, 0x0f, 0x5b, 0x44, 0xf8, 0x55, 0x2e, 0x75, 0x88, 0x52, 0x56, 0xc2};

static int user_salt(const char *key, const char *user, uint8_t salt[SCRAM_USER_SALT_LEN])
{
	return scram_user_salt((const uint8_t *)key, strlen(key), user, salt);
}

static void test_user_salt_matches_independent_hmac(void **state)
{
	uint8_t salt[SCRAM_USER_SALT_LEN];

	assert_int_equal(user_salt(MOCK_KEY, "ghost", salt), 0);
	assert_memory_equal(salt, ghost_salt_hmac, SCRAM_USER_SALT_LEN);
}

static void test_user_salt_is_stable_per_name_and_differs_between_names_and_keys(void **state)
{
	uint8_t a[SCRAM_USER_SALT_LEN], b[SCRAM_USER_SALT_LEN], c[SCRAM_USER_SALT_LEN],
	    d[SCRAM_USER_SALT_LEN];

	assert_int_equal(user_salt(MOCK_KEY, "ghost", a), 0);
	assert_int_equal(user_salt(MOCK_KEY, "ghost", b), 0);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(user_salt(MOCK_KEY, "ghost2", c), 0);
	assert_memory_not_equal(a, c, sizeof(a));
	assert_int_equal(user_salt("another key", "ghost", d), 0);
	assert_memory_not_equal(a, d, sizeof(a));
	/* the tag keeps salts apart from the mock keys of the same name */
	assert_memory_not_equal(a, ghost_stored_hmac, sizeof(a));
}

static void test_user_salt_rejects_bad_arguments(void **state)
{
	uint8_t salt[SCRAM_USER_SALT_LEN];
	char longname[300];

	assert_int_equal(scram_user_salt(NULL, 3, "u", salt), -EINVAL);
	assert_int_equal(scram_user_salt((const uint8_t *)"k", 0, "u", salt), -EINVAL);
	assert_int_equal(scram_user_salt((const uint8_t *)"k", 1, NULL, salt), -EINVAL);
	assert_int_equal(scram_user_salt((const uint8_t *)"k", 1, "u", NULL), -EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(scram_user_salt((const uint8_t *)"k", 1, longname, salt), -EINVAL);
}

static void test_mock_secret_is_derived_from_the_name_and_accepts_no_password(void **state)
{
	static const char *pws[] = {"", "ghost", "password", MOCK_KEY};
	struct scram_secret sec, again;

	assert_int_equal(
	    scram_mock_secret((const uint8_t *)MOCK_KEY, strlen(MOCK_KEY), "ghost", 4096, &sec), 0);
	assert_int_equal(sec.iterations, 4096);
	assert_int_equal(sec.salt_len, SCRAM_USER_SALT_LEN);
	assert_memory_equal(sec.salt, ghost_salt_hmac, SCRAM_USER_SALT_LEN);
	assert_memory_equal(sec.stored_key, ghost_stored_hmac, SCRAM_KEY_LEN);
	assert_memory_equal(sec.server_key, ghost_server_hmac, SCRAM_KEY_LEN);
	assert_int_equal(
	    scram_mock_secret((const uint8_t *)MOCK_KEY, strlen(MOCK_KEY), "ghost", 4096, &again),
	    0);
	assert_memory_equal(&sec, &again, sizeof(sec));
	/* the exchange runs to the proof and fails like a wrong password */
	for (size_t i = 0; i < sizeof(pws) / sizeof(pws[0]); i++) {
		struct scram_server s;
		struct scram_client c;

		assert_int_equal(scram_server_init(&s, &sec), 0);
		assert_int_equal(scram_client_init_password(&c, pws[i]), 0);
		assert_int_equal(run_exchange(&c, &s), -EACCES);
		scram_server_wipe(&s);
		scram_client_wipe(&c);
	}
	assert_int_equal(
	    scram_mock_secret((const uint8_t *)MOCK_KEY, strlen(MOCK_KEY), "ghost", 0, &sec),
	    -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7677_secret_matches_independent_computation),
	    cmocka_unit_test(test_rfc7677_client_produces_rfc_proof_and_verifies_server_signature),
	    cmocka_unit_test(
	        test_rfc7677_server_verifies_rfc_client_final_and_sends_rfc_server_final),
	    cmocka_unit_test(test_client_rejects_wrong_server_signature_and_server_error),
	    cmocka_unit_test(test_server_wrong_password_is_eacces),
	    cmocka_unit_test(test_client_derives_keys_once_per_salt_and_password),
	    cmocka_unit_test(test_server_tampered_nonce_is_eproto),
	    cmocka_unit_test(test_server_refuses_channel_binding_and_authzid),
	    cmocka_unit_test(test_server_accepts_y_flag_but_requires_c_to_echo_it),
	    cmocka_unit_test(test_server_garbage_client_first_is_eproto),
	    cmocka_unit_test(test_server_empty_huge_and_nul_client_first_is_eproto),
	    cmocka_unit_test(test_server_truncated_client_first_never_crashes),
	    cmocka_unit_test(test_server_garbage_client_final_is_eproto),
	    cmocka_unit_test(test_server_extension_before_proof_is_covered_by_the_signature),
	    cmocka_unit_test(test_server_truncated_or_huge_client_final_is_eproto),
	    cmocka_unit_test(test_server_small_output_buffer_is_enospc),
	    cmocka_unit_test(test_server_calls_out_of_order_are_einval),
	    cmocka_unit_test(test_client_rejects_bad_server_first),
	    cmocka_unit_test(test_client_truncated_server_first_never_crashes),
	    cmocka_unit_test(test_client_keys_mode_allows_iterations_above_cap),
	    cmocka_unit_test(test_client_malformed_server_final_is_eproto),
	    cmocka_unit_test(test_client_user_hook_escapes_saslname),
	    cmocka_unit_test(test_client_nonce_hook_ignores_invalid_nonces),
	    cmocka_unit_test(test_client_random_nonces_differ),
	    cmocka_unit_test(test_client_init_rejects_bad_arguments),
	    cmocka_unit_test(test_round_trip_with_password),
	    cmocka_unit_test(test_round_trip_with_empty_and_non_ascii_passwords),
	    cmocka_unit_test(test_passthrough_client_key_authenticates_against_second_server),
	    cmocka_unit_test(test_passthrough_with_wrong_keys_fails),
	    cmocka_unit_test(test_postgresql_generated_secrets_accept_our_client),
	    cmocka_unit_test(test_secret_parse_format_round_trip),
	    cmocka_unit_test(test_secret_parse_rejects_malformed),
	    cmocka_unit_test(test_secret_from_password_rejects_bad_arguments),
	    cmocka_unit_test(test_user_salt_matches_independent_hmac),
	    cmocka_unit_test(test_user_salt_is_stable_per_name_and_differs_between_names_and_keys),
	    cmocka_unit_test(test_user_salt_rejects_bad_arguments),
	    cmocka_unit_test(test_mock_secret_is_derived_from_the_name_and_accepts_no_password),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
