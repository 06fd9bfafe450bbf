/*
 * MD5 password authentication as PostgreSQL does it. MD5 is broken as a hash;
 * this exists only because pg_authid and userlists still hold md5 hashes.
 * Responses are compared in constant time so timing does not reveal a prefix match.
 */
#include "dataplane/auth/md5auth.h"

#include "common/hex.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_LEN 16

/* Writes "md5" + lowercase hex(md5(a || b)) + NUL; returns 0 or -EIO. */
static int md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
	uint8_t digest[MD5_LEN];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
	     EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == MD5_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return -EIO;
	}
	memcpy(out, "md5", 3);
	hex_encode(digest, MD5_LEN, out + 3);
	return 0;
}

void md5auth_password_hash(const char *user, const char *password, char out[36])
{
	/* Note the order: the password is salted with the user name, password first. */
	if (!user || !password || md5_hex(password, strlen(password), user, strlen(user), out) != 0)
		out[0] = '\0';
}

bool md5auth_is_hash(const char *s)
{
	if (!s || strncmp(s, "md5", 3) != 0)
		return false;
	for (size_t i = 3; i < MD5AUTH_HASH_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false; /* also stops at the NUL of a short string */
	return s[MD5AUTH_HASH_LEN] == '\0';
}

int md5auth_response_from_hash(const char *stored_md5, const uint8_t salt[4], char out[36])
{
	if (!out)
		return -EINVAL;
	out[0] = '\0';
	if (!salt || !md5auth_is_hash(stored_md5))
		return -EINVAL;
	/* The client hashes the 32 hex characters, not the raw digest, then the salt. */
	return md5_hex(stored_md5 + 3, 32, salt, 4, out);
}

bool md5auth_verify(const char *stored_md5, const uint8_t salt[4], const char *response, size_t len)
{
	char expected[36];
	bool ok;

	if (!response)
		return false;
	/* The wire form is a C string; accept its terminator if the caller counted it. */
	if (len == MD5AUTH_HASH_LEN + 1 && response[MD5AUTH_HASH_LEN] == '\0')
		len = MD5AUTH_HASH_LEN;
	/* The length is public (always 35 for a real client), so checking it first leaks nothing.
	 */
	if (len != MD5AUTH_HASH_LEN)
		return false;
	if (md5auth_response_from_hash(stored_md5, salt, expected) != 0)
		return false;
	ok = CRYPTO_memcmp(expected, response, MD5AUTH_HASH_LEN) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}
