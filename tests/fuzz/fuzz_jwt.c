/*
 * libFuzzer target: jwtauth_verify on hostile tokens. Input byte 0 picks the mode:
 *   bit 0 = 0: the rest is the whole token (header, payload and signature parsing,
 *              key choice by alg and kid);
 *   bit 0 = 1: the rest is split at its first NUL into a JSON header and a JSON
 *              payload, which the harness encodes and signs with the rule's HMAC
 *              secret, so the claim checks (exp/nbf/iat, iss, aud arrays, user
 *              and tenant claims) see fuzzed JSON behind a valid signature;
 *   bits 0 and 1 = 1: as above with the header fixed to {"alg":"HS256","kid":"k"}
 *              and all the rest the payload, so the claims are reached at once.
 * The conf (a JWKS with an oct key of kid "k", an issuer, an audience, a tenant
 * claim) is built once from files written to a temporary folder.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataplane/auth/jwtauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* 32 bytes "0123456789abcdef0123456789abcdef" in base64url */
#define SECRET     "0123456789abcdef0123456789abcdef"
#define SECRET_B64 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"

static struct jwt_conf *conf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/fuzz-jwt-XXXXXX", path[64], why[JWTAUTH_WHY_MAX];
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/jwks.json", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputs("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k\",\"k\":\"" SECRET_B64 "\"}]}", f);
	fclose(f);
	conf = jwtauth_conf_new();
	if (!conf || jwtauth_conf_set(conf, "jwt_jwks_file", path, why, sizeof(why)) ||
	    jwtauth_conf_set(conf, "jwt_issuer", "iss", why, sizeof(why)) ||
	    jwtauth_conf_set(conf, "jwt_audience", "aud", why, sizeof(why)) ||
	    jwtauth_conf_set(conf, "jwt_tenant_claim", "t", why, sizeof(why)) ||
	    jwtauth_conf_set(conf, "jwt_leeway_secs", "5", why, sizeof(why)) ||
	    jwtauth_conf_finish(conf, why, sizeof(why))) {
		fprintf(stderr, "fuzz_jwt: conf: %s\n", why);
		abort();
	}
	unlink(path);
	rmdir(dir);
	return 0;
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = 0;
	return o;
}

static void check(const char *token)
{
	char tenant[16], why[JWTAUTH_WHY_MAX];
	int rc = jwtauth_verify(conf, token, "alice", tenant, sizeof(tenant), why, sizeof(why));
	if (rc != 0 && rc != -13 /* EACCES */)
		abort();
	if (strnlen(tenant, sizeof(tenant)) >= sizeof(tenant))
		abort();
	/* a reason is always NUL-terminated within its buffer */
	if (strnlen(why, sizeof(why)) >= sizeof(why))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	if (!(data[0] & 1)) {
		char *t = malloc(size);
		if (!t)
			abort();
		memcpy(t, data + 1, size - 1);
		t[size - 1] = 0;
		check(t);
		free(t);
		return 0;
	}
	static const char fixed[] = "{\"alg\":\"HS256\",\"kid\":\"k\"}";
	const uint8_t *h, *p;
	size_t hl, pl;
	if (data[0] & 2) {
		h = (const uint8_t *)fixed;
		hl = sizeof(fixed) - 1;
		p = data + 1;
		pl = size - 1;
	} else {
		const uint8_t *nul = memchr(data + 1, 0, size - 1);
		h = data + 1;
		hl = nul ? (size_t)(nul - h) : size - 1;
		p = nul ? nul + 1 : h + hl;
		pl = size - 1 - hl - (nul ? 1 : 0);
	}
	char *tok = malloc(2 * (hl + pl) + 128); /* base64url: 4/3, plus dots and a MAC */
	if (!tok)
		abort();
	size_t n = b64url(h, hl, tok);
	tok[n++] = '.';
	n += b64url(p, pl, tok + n);
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned ml = 0;
	if (!HMAC(EVP_sha256(), SECRET, 32, (const uint8_t *)tok, n, mac, &ml))
		abort();
	tok[n++] = '.';
	b64url(mac, ml, tok + n);
	check(tok);
	free(tok);
	return 0;
}
