/*
 * `heliosproxy --hash-password`: turns a password into the SCRAM-SHA-256 secret
 * PostgreSQL stores ("SCRAM-SHA-256$4096:salt$StoredKey:ServerKey"), so a config
 * ([[auth.users]] password, users_file) never has to hold the plaintext.
 */
#ifndef HELIOS_AUTH_PWHASH_H
#define HELIOS_AUTH_PWHASH_H

#include <stddef.h>

/* PostgreSQL's defaults for new secrets (scram_iterations, SCRAM_DEFAULT_SALT_LEN). */
#define PWHASH_ITERATIONS 4096
#define PWHASH_SALT_LEN   16

/*
 * A new secret for password with a fresh random salt, NUL-terminated in out
 * (SCRAM_SECRET_TEXT_MAX bytes suffice). Returns 0, -EINVAL on an empty or
 * too long password, -ENOSPC, -EIO (OpenSSL).
 */
__attribute__((warn_unused_result)) int pwhash_secret(const char *password, char *out, size_t cap);

/*
 * The command: reads the password (from the terminal without echo, asked twice,
 * when stdin is a tty; else the first line of stdin) and prints the secret and a
 * newline on stdout. user, if not NULL, only names the account in the prompt
 * (a SCRAM secret does not depend on the user name). Returns the exit status:
 * 0, or 1 after saying why on stderr.
 */
int pwhash_main(const char *user);

#endif
