/*
 * PostgreSQL's legacy MD5 password authentication: the stored hash
 * ("md5" + hex(md5(password || user))) and the salted challenge response.
 * Pure functions, no I/O.
 */
#ifndef HELIOS_AUTH_MD5AUTH_H
#define HELIOS_AUTH_MD5AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "md5" + 32 hex digits, without the NUL. */
#define MD5AUTH_HASH_LEN 35

/*
 * Writes "md5" + hex(md5(password || user)) and a NUL into out: what pg_authid
 * stores and userlist.txt may hold. If OpenSSL cannot compute MD5 (e.g. a FIPS
 * provider without it), out is set to "" so that it never matches anything.
 */
void md5auth_password_hash(const char *user, const char *password, char out[36]);

/*
 * Computes the AuthenticationMD5Password response "md5" + hex(md5(hex32 || salt))
 * (NUL-terminated in out), where hex32 is stored_md5 without its "md5" prefix.
 * Returns 0, -EINVAL if stored_md5 is not md5auth_is_hash(), -EIO if OpenSSL fails.
 */
__attribute__((warn_unused_result)) int
md5auth_response_from_hash(const char *stored_md5, const uint8_t salt[4], char out[36]);

/*
 * Checks a client's PasswordMessage (response, len bytes, not necessarily
 * NUL-terminated; a trailing NUL inside len is tolerated) against the stored hash
 * and the salt we sent. The comparison is constant-time. False on any mismatch,
 * wrong length, or if stored_md5 is not a hash.
 */
bool md5auth_verify(const char *stored_md5, const uint8_t salt[4], const char *response,
                    size_t len);

/* True if s is "md5" followed by exactly 32 lowercase hex digits (PostgreSQL's test). */
bool md5auth_is_hash(const char *s);

#endif
