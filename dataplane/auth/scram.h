/*
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: secret parsing,
 * the server side (proxy verifying a client) and the client side (proxy logging
 * into PostgreSQL, with a password or with keys recovered for passthrough). Pure: no I/O.
 */
#ifndef HELIOS_AUTH_SCRAM_H
#define HELIOS_AUTH_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SASL mechanism name advertised in AuthenticationSASL and expected in SASLInitialResponse. */
#define SCRAM_SHA_256_NAME "SCRAM-SHA-256"

#define SCRAM_KEY_LEN 32
/* Longest nonce we accept from a peer (either side's own part), in characters. */
#define SCRAM_NONCE_MAX 128
/* Largest salt we store; PostgreSQL uses 16 bytes. */
#define SCRAM_SALT_MAX 64
/* Longest SCRAM message we parse or keep; longer peer input is refused with -EPROTO. */
#define SCRAM_MSG_MAX 1024
/* Longest password (bytes) scram_client_init_password accepts. */
#define SCRAM_PASSWORD_MAX 1024
/* Iteration cap for the client in password mode: PBKDF2 runs on the caller's thread,
 * so a hostile or misconfigured server must not be able to make us spin for seconds. */
#define SCRAM_ITER_MAX 1000000
/* Room for a formatted secret: prefix, iterations, base64 salt and two base64 keys. */
#define SCRAM_SECRET_TEXT_MAX 256

struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/*
 * Parses PostgreSQL's "SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>"
 * (pg_authid.rolpassword, or a userlist entry). Strict: no whitespace, standard
 * base64 with correct padding, keys exactly 32 bytes, salt 1..64 bytes, iterations
 * 1..INT_MAX.
 * Returns 0, or -EINVAL if text is not such a secret (out is then zeroed).
 */
__attribute__((warn_unused_result)) int scram_parse_secret(const char *text,
                                                           struct scram_secret *out);

/*
 * Derives the secret PostgreSQL would store for password with this salt and
 * iteration count. ASCII passwords are used as-is; non-ASCII passwords are used
 * as raw bytes (see scram.c about SASLprep). Returns 0, -EINVAL on bad arguments
 * (salt_len 1..64, iterations >= 1), -EIO if OpenSSL fails.
 */
__attribute__((warn_unused_result)) int scram_secret_from_password(const char *password,
                                                                   const uint8_t *salt,
                                                                   size_t salt_len, int iterations,
                                                                   struct scram_secret *out);

/*
 * Writes s in the text form scram_parse_secret reads, NUL-terminated.
 * Returns 0, -EINVAL if s is invalid, -ENOSPC if cap is too small
 * (SCRAM_SECRET_TEXT_MAX always suffices).
 */
__attribute__((warn_unused_result)) int scram_format_secret(const struct scram_secret *s, char *buf,
                                                            size_t cap);

/* Bytes of the salts scram_user_salt derives (PostgreSQL's SCRAM_DEFAULT_SALT_LEN). */
#define SCRAM_USER_SALT_LEN 16

/*
 * The salt for user when the proxy picks it (unknown users, plaintext passwords):
 * HMAC-SHA256(key, "salt" || user), first 16 bytes. Stable for a name and a key,
 * unrelated between names, as PostgreSQL's scram_mock_salt. Returns 0, -EINVAL
 * on NULL or an empty key, -EIO if OpenSSL fails.
 */
__attribute__((warn_unused_result)) int scram_user_salt(const uint8_t *key, size_t keylen,
                                                        const char *user,
                                                        uint8_t salt[SCRAM_USER_SALT_LEN]);

/*
 * A mock secret for a user the proxy has no secret for: the salt of
 * scram_user_salt, iterations as given, StoredKey and ServerKey from HMACs of
 * the name (no password matches them). Running the exchange against it costs
 * what a real user's stored secret costs and reveals nothing the real one
 * would not. Returns 0, -EINVAL, -EIO.
 */
__attribute__((warn_unused_result)) int scram_mock_secret(const uint8_t *key, size_t keylen,
                                                          const char *user, int iterations,
                                                          struct scram_secret *out);

/*
 * Server side: the proxy verifying a client. PostgreSQL flavour: the client-first
 * user name is ignored (the startup packet's user counts); channel binding is not
 * offered, so gs2 flag "n" or "y" is accepted and "p=" is refused with -EPROTO.
 * Every exchange is one-shot: after any failure the state only answers -EINVAL.
 * Fields are private to scram.c; callers use the functions below.
 */
struct scram_server {
	int state;
	struct scram_secret secret;
	char gs2_flag; /* 'n' or 'y': c= in client-final must echo exactly "<flag>,," */
	char server_nonce[SCRAM_NONCE_MAX + 1];
	char nonce[2 * SCRAM_NONCE_MAX + 1]; /* client nonce || server nonce */
	size_t nonce_len;
	char client_first_bare[SCRAM_MSG_MAX];
	size_t client_first_bare_len;
	char server_first[SCRAM_MSG_MAX];
	size_t server_first_len;
	uint8_t client_key[SCRAM_KEY_LEN];
};

/*
 * Starts an exchange against secret (copied) with a fresh random server nonce.
 * Returns 0, -EINVAL on a NULL/invalid secret, -EIO if RAND_bytes fails.
 */
__attribute__((warn_unused_result)) int scram_server_init(struct scram_server *s,
                                                          const struct scram_secret *secret);

/*
 * TEST HOOK (RFC vectors): replaces the server's nonce part. Call between init and
 * handle_first. nonce must be 1..SCRAM_NONCE_MAX printable characters without ',';
 * anything else is ignored and the random nonce stays.
 */
void scram_server_set_nonce(struct scram_server *s, const char *nonce);

/*
 * Input: client-first-message (the SASLInitialResponse data, len bytes, not
 * NUL-terminated). Output: server-first-message in out (NUL-terminated, *out_len
 * excludes the NUL). Returns 0; -EPROTO on malformed input, channel binding,
 * authzid or mandatory extensions; -ENOSPC if cap is too small; -EINVAL if called
 * in the wrong state.
 */
__attribute__((warn_unused_result)) int scram_server_handle_first(struct scram_server *s,
                                                                  const char *msg, size_t len,
                                                                  char *out, size_t cap,
                                                                  size_t *out_len);

/*
 * Input: client-final-message. Verifies the proof against StoredKey. On success
 * (0) writes server-final "v=..." and s holds the ClientKey recovered from the
 * proof (ClientProof XOR ClientSignature) for passthrough, see
 * scram_server_client_key. -EACCES on a wrong proof; -EPROTO on malformed input,
 * a c= that does not echo the gs2 header, or a nonce mismatch; -ENOSPC if cap is
 * too small; -EINVAL in the wrong state. Only one attempt per exchange.
 */
__attribute__((warn_unused_result)) int scram_server_handle_final(struct scram_server *s,
                                                                  const char *msg, size_t len,
                                                                  char *out, size_t cap,
                                                                  size_t *out_len);

/* Copies the recovered ClientKey into out; true only after handle_final returned 0. */
bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN]);

/* Erases keys, nonces and messages (OPENSSL_cleanse); s must be re-inited to reuse. */
void scram_server_wipe(struct scram_server *s);

/*
 * Client side: the proxy logging into a PostgreSQL server. Fields are private to
 * scram.c.
 */
struct scram_client {
	int state;
	bool have_keys; /* init_keys: ClientKey/ServerKey given, password unused */
	char password[SCRAM_PASSWORD_MAX + 1];
	size_t password_len;
	char user[3 * 64 + 1]; /* escaped saslname; empty as libpq sends it */
	char nonce[SCRAM_NONCE_MAX + 1];
	char client_first_bare[SCRAM_MSG_MAX];
	size_t client_first_bare_len;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN]; /* expected in server-final */
};

/*
 * Starts a login with password (copied; SASLprep as for scram_secret_from_password).
 * Returns 0, -EINVAL if password is NULL or longer than SCRAM_PASSWORD_MAX,
 * -EIO if RAND_bytes fails.
 */
__attribute__((warn_unused_result)) int scram_client_init_password(struct scram_client *c,
                                                                   const char *password);

/*
 * Passthrough: authenticates with a ClientKey recovered from a client's proof
 * and the ServerKey from the secret, no plaintext needed. Works only if the
 * server's secret is the one the keys came from (salt and iterations from the
 * server are then irrelevant). Returns 0, -EINVAL on NULL, -EIO if RAND_bytes fails.
 */
__attribute__((warn_unused_result)) int
scram_client_init_keys(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                       const uint8_t server_key[SCRAM_KEY_LEN]);

/* TEST HOOK: replaces the client nonce; same rules and silent refusal as
 * scram_server_set_nonce. Call between init and scram_client_first. */
void scram_client_set_nonce(struct scram_client *c, const char *nonce);

/*
 * TEST HOOK (RFC vectors): user name for the client-first "n=" field, which
 * PostgreSQL ignores (we normally send it empty, as libpq does). Escaped per
 * RFC 5802 ("=" -> "=3D", "," -> "=2C"). Returns 0, or -EINVAL if NULL or
 * longer than 64 bytes. Call between init and scram_client_first.
 */
__attribute__((warn_unused_result)) int scram_client_set_user(struct scram_client *c,
                                                              const char *user);

/*
 * Writes client-first-message "n,,n=,r=<nonce>" (NUL-terminated; *out_len
 * excludes the NUL). Returns 0, -ENOSPC if cap is too small, -EINVAL in the
 * wrong state.
 */
__attribute__((warn_unused_result)) int scram_client_first(struct scram_client *c, char *out,
                                                           size_t cap, size_t *out_len);

/*
 * Input: server-first-message. Output: client-final "c=biws,r=...,p=...".
 * Returns 0; -EPROTO if the message is malformed, the server nonce does not
 * start with ours (or adds nothing), the salt is empty or over 64 bytes, or the
 * iteration count is outside 1..SCRAM_ITER_MAX (password mode; keys mode only
 * needs >= 1); -ENOSPC if cap is too small; -EIO if OpenSSL fails; -EINVAL in
 * the wrong state.
 */
__attribute__((warn_unused_result)) int
scram_client_handle_server_first(struct scram_client *c, const char *msg, size_t len, char *out,
                                 size_t cap, size_t *out_len);

/*
 * Input: server-final ("v=..." or "e=..."). Returns 0 when the server signature
 * verifies; -EACCES on "e=" or a wrong signature; -EPROTO if malformed;
 * -EINVAL in the wrong state.
 */
__attribute__((warn_unused_result)) int
scram_client_verify_server_final(struct scram_client *c, const char *msg, size_t len);

/* Erases password, keys and messages (OPENSSL_cleanse); c must be re-inited to reuse. */
void scram_client_wipe(struct scram_client *c);

/*
 * How many times the client side ran PBKDF2 since the process started. Keys
 * derived from a password are remembered per (password, salt, iterations),
 * so logins to a role whose secret has not changed derive once.
 */
unsigned long scram_client_derivations(void);

#endif
