/*
 * JWT authentication (hba method "jwt"): the client sends a signed token as its
 * cleartext password; the proxy checks the signature with keys loaded from files
 * or a JWKS file, then exp/nbf/iat, iss, aud and that a claim names the login
 * user. Synchronous: a signature check is CPU only, no I/O after the conf is built.
 */
#ifndef HELIOS_AUTH_JWTAUTH_H
#define HELIOS_AUTH_JWTAUTH_H

#include <stddef.h>

/*
 * A rule's JWT settings and its loaded keys. Opaque. Immutable once
 * jwtauth_conf_finish returned 0, so worker threads may call jwtauth_verify on
 * it concurrently; keys change by building a new conf (jwtauth_conf_reload),
 * as a new config snapshot does.
 */
struct jwt_conf;

/* Longest reason text jwtauth_* write (callers may pass smaller buffers). */
#define JWTAUTH_WHY_MAX 256

/* A new conf with the defaults: jwt_user_claim=sub, jwt_leeway_secs=0, every
 * algorithm that a configured key allows. NULL on ENOMEM. */
struct jwt_conf *jwtauth_conf_new(void);

/*
 * Sets one option, as a pg_hba line or [[auth.rules]] options give it:
 *   jwt_key_file=PATH       PEM public key (RSA or EC) or, for HS*, a file whose
 *                           bytes (a trailing newline removed) are the secret;
 *                           may be given several times (one key each)
 *   jwt_secret_file=PATH    HMAC secret file (same as a key_file that is not PEM)
 *   jwt_jwks_file=PATH      JSON Web Key Set (kty RSA, EC or oct), keys picked by kid
 *   jwt_issuer=S            iss must equal S
 *   jwt_audience=S          aud (a string or an array) must contain S
 *   jwt_user_claim=NAME     claim that must equal the login user (default sub)
 *   jwt_tenant_claim=NAME   claim copied out as the tenant (optional)
 *   jwt_leeway_secs=N       0..86400, tolerance for exp, nbf and iat
 *   jwt_algorithms=A,B      allowed algorithms among HS256 HS384 HS512 RS256
 *                           RS384 RS512 ES256 ES384 (none is never allowed)
 * Returns 0, -EINVAL (unknown option or bad value: why names the option), -ENOMEM.
 * Files are read by jwtauth_conf_finish, not here.
 */
__attribute__((warn_unused_result)) int jwtauth_conf_set(struct jwt_conf *c, const char *name,
                                                         const char *value, char *why, size_t wcap);

/* True if name is one of the options above (so an hba parser can tell a JWT
 * option from a typo of another method's). */
int jwtauth_is_option(const char *name);

/*
 * Reads the key and JWKS files and checks that the options fit together (at
 * least one key, each allowed algorithm has a key of its type). Returns 0,
 * -EINVAL / -errno with why naming the option and the file ("jwt_jwks_file
 * /etc/x.json: key 2 (kid "a"): unsupported kty"). After 0 the conf is immutable.
 */
__attribute__((warn_unused_result)) int jwtauth_conf_finish(struct jwt_conf *c, char *why,
                                                            size_t wcap);

/*
 * SIGHUP path: a new finished conf with c's options and the files read again.
 * On failure *out is NULL and c stays usable (keep serving with the old keys
 * and log why). Returns 0, -EINVAL/-errno.
 */
__attribute__((warn_unused_result)) int
jwtauth_conf_reload(const struct jwt_conf *c, struct jwt_conf **out, char *why, size_t wcap);

void jwtauth_conf_free(struct jwt_conf *c);

/*
 * Verifies token for login_user: alg must be allowed and match the chosen key's
 * type (an RSA/EC public key is never an HMAC secret; alg "none" always fails),
 * the signature, exp/nbf/iat within the leeway, iss and aud if configured, and
 * the user claim equal to login_user. If the conf has a tenant claim, its value
 * (a string) is copied to tenant (NUL-terminated, "" if absent; tenant may be
 * NULL when tcap is 0). Returns 0, or -EACCES with a reason in why for the log
 * ("token expired 35 s ago", "aud does not contain \"db\"") that never contains
 * the token or the signature. -EINVAL if c is not finished.
 */
__attribute__((warn_unused_result)) int jwtauth_verify(const struct jwt_conf *c, const char *token,
                                                       const char *login_user, char *tenant,
                                                       size_t tcap, char *why, size_t wcap);

#endif
