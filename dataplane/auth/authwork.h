/*
 * Authentication work kept off the event loops: PBKDF2 for secrets derived
 * from plaintext passwords runs on a small thread pool with a bounded queue
 * and the result goes back to the asking worker's mailbox; derived secrets
 * and auth_query answers are cached; the key the proxy derives SCRAM salts of
 * its own from (unknown users, plaintext passwords).
 */
#ifndef HELIOS_AUTH_AUTHWORK_H
#define HELIOS_AUTH_AUTHWORK_H

#include "dataplane/auth/scram.h"
#include "dataplane/rt/worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;

/* Jobs queued beyond this are refused (-EAGAIN): a flood waits nowhere. */
#define AW_QUEUE_MAX 256
#define AW_THREADS   2
#define AW_PW_MAX    512

/* One PBKDF2 derivation for a client's login. */
struct aw_job {
	struct aw_job *next;
	struct worker *w; /* whose mailbox gets it back; NULL: none */
	/* filled by the asker: done.fn(w, &done) runs on w's thread with the
	 * result and frees the job (aw_job_free) */
	struct worker_msg done;
	void *owner; /* the asker's, touched on w's thread only */
	char user[64];
	char password[AW_PW_MAX];
	uint8_t salt[SCRAM_USER_SALT_LEN];
	int iterations;
	struct scram_secret out; /* result, valid when rc == 0 */
	int rc;
};

/*
 * Queues j (filled: w, done.fn, owner, user, password, salt, iterations).
 * The pool's threads start on first use. Returns 0 (j now belongs to the
 * pool until it reaches w's mailbox; freed instead if w has exited),
 * -EAGAIN when AW_QUEUE_MAX jobs wait, -ENOMEM when no thread could be
 * started.
 */
__attribute__((warn_unused_result)) int aw_submit(struct aw_job *j);

/*
 * Derives ahead the keys of the configured users whose password is
 * plaintext (scram-sha-256 only), so that a first login costs what later
 * ones and an unknown user's cost. Call about once a second from one thread
 * (worker 0); work is queued only while the queue is mostly empty and
 * resumes where it stopped; a new generation starts over.
 */
void aw_prewarm(const struct cfg *c, uint64_t generation);

/* Wipes and frees a job (on w's thread, after delivery). */
void aw_job_free(struct aw_job *j);

/*
 * The key salts of the proxy's own choosing come from: auth.scram_mock_secret
 * when set, else 32 random bytes drawn once per process.
 */
void aw_salt_key(const struct cfg *c, const uint8_t **key, size_t *len);

/*
 * Derived-secret cache for plaintext passwords: the secret for (user,
 * password, salt) if it was derived before. Thread-safe; bounded (entries are
 * replaced by hash slot). aw_secret_put is called by the pool's threads.
 */
bool aw_secret_get(const char *user, const char *password, const uint8_t *salt,
                   struct scram_secret *out);
void aw_secret_put(const char *user, const char *password, const struct scram_secret *s);

/*
 * auth_query answer cache: per (database, user), for ttl_secs. found = the
 * query returned a password (secret); not found answers are kept too.
 * Secrets longer than the cache keeps are not stored. Thread-safe.
 * aq_get returns true on a fresh entry.
 */
bool aw_aq_get(const char *database, const char *user, int ttl_secs, bool *found, char *secret,
               size_t cap);
void aw_aq_put(const char *database, const char *user, bool found, const char *secret);

#endif
