/*
 * libFuzzer target: SCRAM-SHA-256 message parsers on both sides.
 * Input byte 0 picks the mode; the rest is split at its first NUL into up to
 * two peer messages, each passed from its own exact-size heap block:
 *   bit 0: 0 server side (client-first, then client-final),
 *          1 client side (server-first, then server-final);
 *   bit 1: skip the first fuzzed message and use a valid one (RFC 7677), so
 *          the whole rest reaches the final-message parser;
 *   bit 2: output buffer of (byte0 >> 3) * 4 bytes instead of 2048, to
 *          exercise -ENOSPC paths; it is exact-size too.
 * The client runs in keys mode (passthrough), so a fuzzed iteration count
 * never triggers a slow PBKDF2; the server secret is derived once at start.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/auth/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define CLIENT_FIRST "n,,n=user,r=" CLIENT_NONCE
#define SERVER_FIRST "r=" CLIENT_NONCE SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

static struct scram_secret secret;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	                                 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
	if (scram_secret_from_password("pencil", salt, sizeof(salt), 4096, &secret) != 0)
		abort();
	return 0;
}

static char *exact(const uint8_t *p, size_t n)
{
	char *b = malloc(n ? n : 1);
	if (!b)
		abort();
	memcpy(b, p, n);
	return b;
}

/* A successful call must leave a NUL-terminated answer of *out_len bytes in cap. */
static void check_out(int rc, const char *out, size_t cap, size_t out_len)
{
	if (rc == 0 && (out_len >= cap || out[out_len] != 0 || strlen(out) != out_len))
		abort();
}

static void run_server(const char *a, size_t alen, const char *b, size_t blen, bool valid_first,
                       char *out, size_t cap)
{
	struct scram_server s;
	size_t out_len = 0;
	int rc;

	if (scram_server_init(&s, &secret) != 0)
		abort();
	scram_server_set_nonce(&s, SERVER_NONCE);
	if (valid_first) {
		char big[512];
		rc = scram_server_handle_first(&s, CLIENT_FIRST, strlen(CLIENT_FIRST), big,
		                               sizeof(big), &out_len);
		if (rc != 0)
			abort();
	} else {
		rc = scram_server_handle_first(&s, a, alen, out, cap, &out_len);
		check_out(rc, out, cap, out_len);
	}
	if (rc == 0 && b) {
		rc = scram_server_handle_final(&s, b, blen, out, cap, &out_len);
		check_out(rc, out, cap, out_len);
		uint8_t key[SCRAM_KEY_LEN];
		/* The ClientKey is offered exactly when the proof verified. */
		if ((rc == 0) != scram_server_client_key(&s, key))
			abort();
	}
	scram_server_wipe(&s);
}

static void run_client(const char *a, size_t alen, const char *b, size_t blen, bool valid_first,
                       char *out, size_t cap)
{
	struct scram_client c;
	char first[256];
	size_t out_len = 0;
	int rc;

	/* Keys mode: the ClientKey/ServerKey of the server's secret would do; any will. */
	if (scram_client_init_keys(&c, secret.stored_key, secret.server_key) != 0)
		abort();
	scram_client_set_nonce(&c, CLIENT_NONCE);
	if (scram_client_first(&c, first, sizeof(first), &out_len) != 0)
		abort();
	if (valid_first) {
		char big[512];
		rc = scram_client_handle_server_first(&c, SERVER_FIRST, strlen(SERVER_FIRST), big,
		                                      sizeof(big), &out_len);
		if (rc != 0)
			abort();
	} else {
		rc = scram_client_handle_server_first(&c, a, alen, out, cap, &out_len);
		check_out(rc, out, cap, out_len);
	}
	if (rc == 0 && b)
		(void)scram_client_verify_server_final(&c, b, blen);
	scram_client_wipe(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	const uint8_t *rest = data + 1;
	size_t n = size - 1;
	bool valid_first = mode & 2;

	/* valid_first: all of rest is the final message. Otherwise split at a NUL. */
	const uint8_t *nul = valid_first ? NULL : memchr(rest, 0, n);
	size_t alen = valid_first ? 0 : (nul ? (size_t)(nul - rest) : n);
	char *a = exact(rest, alen);
	char *b = NULL;
	size_t blen = 0;
	if (valid_first) {
		blen = n;
		b = exact(rest, blen);
	} else if (nul) {
		blen = n - alen - 1;
		b = exact(nul + 1, blen);
	}
	size_t cap = (mode & 4) ? (size_t)(mode >> 3) * 4 : 2048;
	char *out = malloc(cap ? cap : 1);
	if (!out)
		abort();

	if (mode & 1)
		run_client(a, alen, b, blen, valid_first, out, cap);
	else
		run_server(a, alen, b, blen, valid_first, out, cap);

	free(out);
	free(a);
	free(b);
	return 0;
}
