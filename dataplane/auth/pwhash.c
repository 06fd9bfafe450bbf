/*
 * `heliosproxy --hash-password`: reads a password without echoing it and
 * prints the SCRAM-SHA-256 secret, computed by scram.c as PostgreSQL would.
 */
#include "dataplane/auth/pwhash.h"

#include "dataplane/auth/scram.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int pwhash_secret(const char *password, char *out, size_t cap)
{
	if (!password || !*password || strlen(password) > SCRAM_PASSWORD_MAX)
		return -EINVAL;
	uint8_t salt[PWHASH_SALT_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	struct scram_secret s;
	int rc = scram_secret_from_password(password, salt, sizeof(salt), PWHASH_ITERATIONS, &s);
	if (rc == 0)
		rc = scram_format_secret(&s, out, cap);
	OPENSSL_cleanse(&s, sizeof(s));
	return rc;
}

/* One line from f without its line end; false at EOF before any byte, or on a
 * line longer than the buffer (refused rather than hashing a prefix). */
static bool read_line(FILE *f, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, f))
		return false;
	size_t n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	else if (n == cap - 1)
		return false;
	if (n && buf[n - 1] == '\r')
		buf[--n] = 0;
	return true;
}

/* Prompts on the terminal with echo off; the terminal is restored on every path. */
static bool ask(FILE *tty, const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	int fd = fileno(tty);
	/* echo off before the prompt shows: what is typed after it is never echoed */
	bool restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	fputs(prompt, tty);
	fflush(tty);
	bool ok = read_line(tty, buf, cap);
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	return ok;
}

int pwhash_main(const char *user)
{
	/* +2: room for the newline and for noticing a password that is too long */
	char pw[SCRAM_PASSWORD_MAX + 2], again[SCRAM_PASSWORD_MAX + 2];
	char secret[SCRAM_SECRET_TEXT_MAX];
	int status = 1;
	pw[0] = again[0] = 0;
	if (isatty(STDIN_FILENO)) {
		FILE *tty = fopen("/dev/tty", "r+");
		if (!tty) {
			fprintf(stderr, "heliosproxy: --hash-password: cannot open /dev/tty: %s\n",
			        strerror(errno));
			return 1;
		}
		char prompt[200];
		snprintf(prompt, sizeof(prompt), "Password%s%.64s: ", user ? " for " : "",
		         user ? user : "");
		bool ok =
		    ask(tty, prompt, pw, sizeof(pw)) && ask(tty, "Again: ", again, sizeof(again));
		fclose(tty);
		if (!ok) {
			fprintf(stderr,
			        "heliosproxy: --hash-password: no password read (or longer "
			        "than %d bytes)\n",
			        SCRAM_PASSWORD_MAX);
			goto out;
		}
		if (strcmp(pw, again) != 0) {
			fprintf(stderr, "heliosproxy: --hash-password: the two passwords differ\n");
			goto out;
		}
	} else if (!read_line(stdin, pw, sizeof(pw))) {
		fprintf(stderr,
		        "heliosproxy: --hash-password: no password on stdin (or longer than "
		        "%d bytes)\n",
		        SCRAM_PASSWORD_MAX);
		goto out;
	}
	int rc = pwhash_secret(pw, secret, sizeof(secret));
	if (rc < 0) {
		fprintf(stderr, "heliosproxy: --hash-password: %s\n",
		        rc == -EINVAL ? "the password is empty" : strerror(-rc));
		goto out;
	}
	printf("%s\n", secret);
	status = fflush(stdout) == 0 ? 0 : 1;
out:
	OPENSSL_cleanse(pw, sizeof(pw));
	OPENSSL_cleanse(again, sizeof(again));
	return status;
}
