/*
 * Authentication work off the event loops (see authwork.h): a thread pool for
 * PBKDF2, the derived-secret and auth_query caches, the salt key. Nothing here
 * runs per message; locks are held for a copy at most.
 */
#include "dataplane/auth/authwork.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/auth/md5auth.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- thread pool ------------------------------------------------------------ */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct aw_job *q_head, *q_tail;
static int q_len;
static int n_threads;

static void *aw_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_mu);
		while (!q_head)
			pthread_cond_wait(&q_cv, &q_mu);
		struct aw_job *j = q_head;
		q_head = j->next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
		pthread_mutex_unlock(&q_mu);
		j->next = NULL;
		j->rc = scram_secret_from_password(j->password, j->salt, sizeof(j->salt),
		                                   j->iterations, &j->out);
		if (!j->rc)
			aw_secret_put(j->user, j->password, &j->out);
		OPENSSL_cleanse(j->password, sizeof(j->password));
		/* derived ahead (no w): the cache has it; w has exited: nobody
		 * is left to tell */
		if (!j->w || worker_post(j->w, &j->done) < 0)
			aw_job_free(j);
	}
	return NULL;
}

/* Starts the threads the first time work arrives (q_mu held). */
static int start_threads(void)
{
	while (n_threads < AW_THREADS) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int r = pthread_create(&t, &attr, aw_main, NULL);
		pthread_attr_destroy(&attr);
		if (r) {
			log_error("cannot start an authentication thread: %s", strerror(r));
			break;
		}
		n_threads++;
	}
	return n_threads ? 0 : -ENOMEM;
}

/* Queues j unless limit jobs wait already. */
static int submit(struct aw_job *j, int limit)
{
	int r = 0;
	j->next = NULL;
	pthread_mutex_lock(&q_mu);
	if (n_threads < AW_THREADS)
		r = start_threads();
	if (!r && q_len >= limit)
		r = -EAGAIN;
	if (!r) {
		if (q_tail)
			q_tail->next = j;
		else
			q_head = j;
		q_tail = j;
		q_len++;
		pthread_cond_signal(&q_cv);
	}
	pthread_mutex_unlock(&q_mu);
	return r;
}

int aw_submit(struct aw_job *j)
{
	return submit(j, AW_QUEUE_MAX);
}

void aw_prewarm(const struct cfg *c, uint64_t generation)
{
	/* one caller thread: its progress needs no lock */
	static uint64_t gen;
	static size_t next;
	static bool started;
	if (!started || generation != gen) {
		started = true;
		gen = generation;
		next = 0;
	}
	if (c->auth.method != CFG_AUTH_SCRAM)
		return;
	const uint8_t *key;
	size_t klen;
	aw_salt_key(c, &key, &klen);
	int queued = 0;
	for (; next < c->auth.n_users; next++) {
		const struct cfg_user *u = &c->auth.users[next];
		if (!u->password[0] || !strncmp(u->password, "SCRAM-SHA-256$", 14) ||
		    md5auth_is_hash(u->password) || strlen(u->password) >= AW_PW_MAX ||
		    strlen(u->name) >= sizeof(((struct aw_job *)0)->user))
			continue;
		struct aw_job *j = calloc(1, sizeof(*j));
		if (!j)
			return;
		if (scram_user_salt(key, klen, u->name, j->salt) < 0) {
			aw_job_free(j);
			continue;
		}
		struct scram_secret s;
		if (aw_secret_get(u->name, u->password, j->salt, &s)) {
			OPENSSL_cleanse(&s, sizeof(s));
			aw_job_free(j);
			continue;
		}
		snprintf(j->user, sizeof(j->user), "%s", u->name);
		snprintf(j->password, sizeof(j->password), "%s", u->password);
		j->iterations = 4096;
		/* logins come first: a quarter of the queue at most */
		if (submit(j, AW_QUEUE_MAX / 4) < 0) {
			aw_job_free(j);
			break;
		}
		queued++;
	}
	if (queued)
		log_info("deriving the SCRAM keys of %d user(s) with a plaintext password ahead of "
		         "their logins",
		         queued);
}

void aw_job_free(struct aw_job *j)
{
	if (!j)
		return;
	OPENSSL_cleanse(j, sizeof(*j));
	free(j);
}

/* ---- salt key --------------------------------------------------------------- */

static uint8_t proc_key[32];
static pthread_once_t proc_key_once = PTHREAD_ONCE_INIT;

static void proc_key_init(void)
{
	if (RAND_bytes(proc_key, sizeof(proc_key)) != 1) {
		/* never observed; the time still differs between runs */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(proc_key, &ts,
		       sizeof(ts) < sizeof(proc_key) ? sizeof(ts) : sizeof(proc_key));
	}
}

void aw_salt_key(const struct cfg *c, const uint8_t **key, size_t *len)
{
	if (c && c->auth.scram_mock_secret[0]) {
		*key = (const uint8_t *)c->auth.scram_mock_secret;
		*len = strlen(c->auth.scram_mock_secret);
		return;
	}
	pthread_once(&proc_key_once, proc_key_init);
	*key = proc_key;
	*len = sizeof(proc_key);
}

/* ---- caches ----------------------------------------------------------------- */

static uint64_t fnv(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Derived secrets: a direct-mapped table; a collision replaces the older. */
#define SEC_SLOTS 1024
struct sec_ent {
	bool used;
	char user[64];
	uint8_t pw_digest[32]; /* SHA-256 of the password: never the password itself */
	struct scram_secret s;
};
static struct sec_ent sec_tab[SEC_SLOTS];
static pthread_mutex_t sec_mu = PTHREAD_MUTEX_INITIALIZER;

static bool digest(const char *pw, uint8_t out[32])
{
	unsigned int n = 0;
	return EVP_Digest(pw, strlen(pw), out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

bool aw_secret_get(const char *user, const char *password, const uint8_t *salt,
                   struct scram_secret *out)
{
	uint8_t d[32];
	if (strlen(user) >= sizeof(sec_tab[0].user) || !digest(password, d))
		return false;
	struct sec_ent *e = &sec_tab[fnv(user, 1469598103934665603ull) % SEC_SLOTS];
	bool hit = false;
	pthread_mutex_lock(&sec_mu);
	if (e->used && !strcmp(e->user, user) && CRYPTO_memcmp(e->pw_digest, d, 32) == 0 &&
	    e->s.salt_len == SCRAM_USER_SALT_LEN && !memcmp(e->s.salt, salt, SCRAM_USER_SALT_LEN)) {
		*out = e->s;
		hit = true;
	}
	pthread_mutex_unlock(&sec_mu);
	OPENSSL_cleanse(d, sizeof(d));
	return hit;
}

void aw_secret_put(const char *user, const char *password, const struct scram_secret *s)
{
	uint8_t d[32];
	if (strlen(user) >= sizeof(sec_tab[0].user) || !digest(password, d))
		return;
	struct sec_ent *e = &sec_tab[fnv(user, 1469598103934665603ull) % SEC_SLOTS];
	pthread_mutex_lock(&sec_mu);
	e->used = true;
	memcpy(e->user, user, strlen(user) + 1);
	memcpy(e->pw_digest, d, 32);
	e->s = *s;
	pthread_mutex_unlock(&sec_mu);
	OPENSSL_cleanse(d, sizeof(d));
}

/* auth_query answers. */
#define AQ_SLOTS      512
#define AQ_SECRET_MAX 320 /* a SCRAM secret is about 135 bytes, md5 35 */
struct aq_ent {
	bool used, found;
	struct timespec at;
	char database[64];
	char user[64];
	char secret[AQ_SECRET_MAX];
};
static struct aq_ent aq_tab[AQ_SLOTS];
static pthread_mutex_t aq_mu = PTHREAD_MUTEX_INITIALIZER;

static struct aq_ent *aq_slot(const char *database, const char *user)
{
	uint64_t h = fnv(database, 1469598103934665603ull);
	h = fnv("\n", h);
	return &aq_tab[fnv(user, h) % AQ_SLOTS];
}

bool aw_aq_get(const char *database, const char *user, int ttl_secs, bool *found, char *secret,
               size_t cap)
{
	if (ttl_secs <= 0)
		return false;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	struct aq_ent *e = aq_slot(database, user);
	bool hit = false;
	pthread_mutex_lock(&aq_mu);
	if (e->used && !strcmp(e->database, database) && !strcmp(e->user, user)) {
		double age = (double)(now.tv_sec - e->at.tv_sec) +
		             (double)(now.tv_nsec - e->at.tv_nsec) / 1e9;
		if (age >= 0 && age < ttl_secs && strlen(e->secret) < cap) {
			*found = e->found;
			memcpy(secret, e->secret, strlen(e->secret) + 1);
			hit = true;
		}
	}
	pthread_mutex_unlock(&aq_mu);
	return hit;
}

void aw_aq_put(const char *database, const char *user, bool found, const char *secret)
{
	if (!secret)
		secret = "";
	if (strlen(database) >= sizeof(aq_tab[0].database) ||
	    strlen(user) >= sizeof(aq_tab[0].user) || strlen(secret) >= AQ_SECRET_MAX)
		return;
	struct aq_ent *e = aq_slot(database, user);
	pthread_mutex_lock(&aq_mu);
	OPENSSL_cleanse(e->secret, sizeof(e->secret));
	e->used = true;
	e->found = found;
	clock_gettime(CLOCK_MONOTONIC, &e->at);
	memcpy(e->database, database, strlen(database) + 1);
	memcpy(e->user, user, strlen(user) + 1);
	memcpy(e->secret, secret, strlen(secret) + 1);
	pthread_mutex_unlock(&aq_mu);
}
