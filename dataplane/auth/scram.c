/*
 * SCRAM-SHA-256 for PostgreSQL: strict, bounds-checked parsing of peer messages
 * (untrusted network input), key derivation and proof/signature computation with
 * OpenSSL. No allocation and no I/O: callers move the bytes. The one piece of
 * shared state is the cache of keys derived for the proxy's own logins.
 */
#include "dataplane/auth/scram.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>

/* States start at 1 so a zeroed or wiped struct is refused with -EINVAL. */
enum { ST_INIT = 1, ST_FIRST, ST_FINAL, ST_DONE, ST_FAILED };

/* 18 random bytes encode to 24 base64 characters without padding, as PostgreSQL's
 * SCRAM_RAW_NONCE_LEN does. */
#define RAW_NONCE_LEN 18

/* Largest base64 text we decode: enough for a 64-byte salt (88 chars) with room,
 * small enough that the scratch buffer stays on the stack. */
#define B64_IN_MAX 256

#define PREFIX "SCRAM-SHA-256$"

/* ---- base64 ---------------------------------------------------------------- */

static bool b64_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/* Writes base64 of in plus a NUL; returns the length without NUL or -ENOSPC. */
static int b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t need = 4 * ((n + 2) / 3);

	if (n > B64_IN_MAX || need + 1 > cap)
		return -ENOSPC;
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return (int)need;
}

/*
 * Strict base64 decode of exactly n characters (not NUL-terminated). Validates
 * the alphabet and padding first because EVP_DecodeBlock skips surrounding
 * whitespace and counts padding as zero bytes. Returns 0 or -EINVAL (bad text,
 * or the result does not fit cap).
 */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t tmp[B64_IN_MAX / 4 * 3];
	size_t pad = 0, dlen;

	if (n == 0 || n % 4 != 0 || n > B64_IN_MAX)
		return -EINVAL;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_char(in[i]))
			return -EINVAL;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n) != (int)(n / 4 * 3))
		return -EINVAL;
	dlen = n / 4 * 3 - pad;
	if (dlen > cap) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(out, tmp, dlen);
	*out_len = dlen;
	OPENSSL_cleanse(tmp, sizeof(tmp)); /* may hold a proof */
	return 0;
}

/* ---- message parsing ------------------------------------------------------- */

struct cur {
	const char *p;
	const char *end;
};

/* Reads "<name>=<value>" where value runs to the next ',' or the end (may be empty). */
static bool read_attr(struct cur *c, char name, const char **val, size_t *vlen)
{
	const char *v, *comma;

	if (c->end - c->p < 2 || c->p[0] != name || c->p[1] != '=')
		return false;
	v = c->p + 2;
	comma = memchr(v, ',', (size_t)(c->end - v));
	c->p = comma ? comma : c->end;
	*val = v;
	*vlen = (size_t)(c->p - v);
	return true;
}

static bool read_comma(struct cur *c)
{
	if (c->p >= c->end || *c->p != ',')
		return false;
	c->p++;
	return true;
}

/* Skips an optional extension "<letter>=<value>" (RFC 5802 attr-val); we know none. */
static bool skip_ext(struct cur *c)
{
	const char *v;
	size_t vlen;
	char name;

	if (c->p >= c->end)
		return false;
	name = *c->p;
	if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z')))
		return false;
	return read_attr(c, name, &v, &vlen);
}

/* RFC 5802 nonce: printable ASCII except ','. */
static bool valid_nonce(const char *n, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)n[i];
		if (ch < 0x21 || ch > 0x7e || ch == ',')
			return false;
	}
	return true;
}

/* Peer messages: bounded, non-empty, and free of NULs (they would cut our C strings). */
static bool msg_ok(const char *msg, size_t len)
{
	return msg && len > 0 && len <= SCRAM_MSG_MAX && !memchr(msg, '\0', len);
}

/* Decimal 1..max, digits only (no sign, no spaces), without overflow. */
static bool parse_pos_int(const char *s, size_t n, long long max, int *out)
{
	long long v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > max || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* ---- crypto ---------------------------------------------------------------- */

static int hmac256(const uint8_t key[SCRAM_KEY_LEN], const void *data, size_t dlen,
                   uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	if (!HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, data, dlen, out, &olen) ||
	    olen != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

static int sha256(const uint8_t *in, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int olen = 0;

	if (EVP_Digest(in, n, out, &olen, EVP_sha256(), NULL) != 1 || olen != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

/*
 * SASLprep (RFC 4013) stand-in. ASCII passwords come out unchanged, exactly as
 * PostgreSQL's pg_saslprep() treats pure ASCII. For non-ASCII input we use the raw
 * bytes, as PostgreSQL does when SASLprep fails (invalid UTF-8, prohibited
 * characters); we do not carry the Unicode NFKC and mapping tables. A valid UTF-8
 * password that SASLprep leaves alone (e.g. precomposed "pässword") therefore
 * derives the same keys as PostgreSQL; one that SASLprep would change (U+00A0,
 * soft hyphen, decomposed accents, ...) derives different keys and cannot log in.
 */
static void saslprep(const char *password, const char **out, size_t *len)
{
	*out = password;
	*len = strlen(password);
}

/* SaltedPassword = PBKDF2-HMAC-SHA-256; ClientKey/ServerKey = HMAC(SaltedPassword, label). */
static int keys_from_password(const char *pw, size_t pwlen, const uint8_t *salt, size_t salt_len,
                              int iterations, uint8_t client_key[SCRAM_KEY_LEN],
                              uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	int rc = 0;

	if (pwlen > INT_MAX)
		return -EINVAL;
	if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
	                      SCRAM_KEY_LEN, salted) != 1)
		rc = -EIO;
	if (!rc)
		rc = hmac256(salted, "Client Key", 10, client_key);
	if (!rc)
		rc = hmac256(salted, "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

/*
 * The proxy's own logins to servers: a role's salt and iteration count stay
 * the same until its password changes, so the keys derived from a plaintext
 * password are remembered by (password, salt, iterations) and PBKDF2 runs
 * once per role instead of once per server connection, on whichever event
 * loop opens it. Fixed slots, replaced by hash; the digest is the key so no
 * password is kept here.
 */
#define KC_SLOTS 64
struct kc_ent {
	bool used;
	uint8_t id[SCRAM_KEY_LEN]; /* SHA-256(password, salt, iterations) */
	uint8_t client_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
};
static struct kc_ent kc_tab[KC_SLOTS];
static pthread_mutex_t kc_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long kc_derivations;

static int kc_id(const char *pw, size_t pwlen, const uint8_t *salt, size_t salt_len, int iterations,
                 uint8_t id[SCRAM_KEY_LEN])
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	uint8_t it[4] = {(uint8_t)(iterations >> 24), (uint8_t)(iterations >> 16),
	                 (uint8_t)(iterations >> 8), (uint8_t)iterations};
	unsigned int olen = 0;
	int ok = x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(x, pw, pwlen) == 1 && EVP_DigestUpdate(x, "\0", 1) == 1 &&
	         EVP_DigestUpdate(x, salt, salt_len) == 1 && EVP_DigestUpdate(x, it, 4) == 1 &&
	         EVP_DigestFinal_ex(x, id, &olen) == 1 && olen == SCRAM_KEY_LEN;
	EVP_MD_CTX_free(x);
	return ok ? 0 : -EIO;
}

static int keys_from_password_cached(const char *pw, size_t pwlen, const uint8_t *salt,
                                     size_t salt_len, int iterations,
                                     uint8_t client_key[SCRAM_KEY_LEN],
                                     uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t id[SCRAM_KEY_LEN];
	if (kc_id(pw, pwlen, salt, salt_len, iterations, id) != 0)
		return keys_from_password(pw, pwlen, salt, salt_len, iterations, client_key,
		                          server_key);
	struct kc_ent *e = &kc_tab[(id[0] | (unsigned)id[1] << 8) % KC_SLOTS];
	bool hit = false;
	pthread_mutex_lock(&kc_mu);
	if (e->used && CRYPTO_memcmp(e->id, id, sizeof(id)) == 0) {
		memcpy(client_key, e->client_key, SCRAM_KEY_LEN);
		memcpy(server_key, e->server_key, SCRAM_KEY_LEN);
		hit = true;
	}
	pthread_mutex_unlock(&kc_mu);
	if (hit)
		return 0;
	int rc = keys_from_password(pw, pwlen, salt, salt_len, iterations, client_key, server_key);
	if (rc)
		return rc;
	pthread_mutex_lock(&kc_mu);
	kc_derivations++;
	e->used = true;
	memcpy(e->id, id, sizeof(id));
	memcpy(e->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(e->server_key, server_key, SCRAM_KEY_LEN);
	pthread_mutex_unlock(&kc_mu);
	return 0;
}

unsigned long scram_client_derivations(void)
{
	pthread_mutex_lock(&kc_mu);
	unsigned long n = kc_derivations;
	pthread_mutex_unlock(&kc_mu);
	return n;
}

static int random_nonce(char *out, size_t cap)
{
	uint8_t raw[RAW_NONCE_LEN];
	int n;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	n = b64_encode(raw, sizeof(raw), out, cap);
	OPENSSL_cleanse(raw, sizeof(raw));
	return n < 0 ? n : 0;
}

/*
 * AuthMessage = client-first-message-bare "," server-first-message ","
 * client-final-message-without-proof. out must hold 3 * SCRAM_MSG_MAX + 2.
 */
static size_t auth_message(char *out, const char *a, size_t alen, const char *b, size_t blen,
                           const char *c, size_t clen)
{
	size_t n = 0;

	memcpy(out + n, a, alen);
	n += alen;
	out[n++] = ',';
	memcpy(out + n, b, blen);
	n += blen;
	out[n++] = ',';
	memcpy(out + n, c, clen);
	n += clen;
	return n;
}

/* ---- secrets --------------------------------------------------------------- */

static bool secret_valid(const struct scram_secret *s)
{
	return s->iterations >= 1 && s->salt_len >= 1 && s->salt_len <= SCRAM_SALT_MAX;
}

/* Decodes the base64 field [p, stop) into exactly want bytes (or 1..want if !exact). */
static bool decode_field(const char *p, const char *stop, uint8_t *out, size_t want, bool exact,
                         size_t *got)
{
	size_t n = 0;

	if (!stop || b64_decode(p, (size_t)(stop - p), out, want, &n) != 0)
		return false;
	if (exact ? n != want : n == 0)
		return false;
	if (got)
		*got = n;
	return true;
}

int scram_parse_secret(const char *text, struct scram_secret *out)
{
	const char *p, *end, *colon, *dollar;
	size_t len;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!text)
		return -EINVAL;
	len = strnlen(text, SCRAM_SECRET_TEXT_MAX + 1);
	if (len > SCRAM_SECRET_TEXT_MAX || len < sizeof(PREFIX) - 1 ||
	    memcmp(text, PREFIX, sizeof(PREFIX) - 1) != 0)
		goto bad;
	p = text + sizeof(PREFIX) - 1;
	end = text + len;

	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || !parse_pos_int(p, (size_t)(colon - p), INT_MAX, &out->iterations))
		goto bad;
	p = colon + 1;
	dollar = memchr(p, '$', (size_t)(end - p));
	if (!decode_field(p, dollar, out->salt, SCRAM_SALT_MAX, false, &out->salt_len))
		goto bad;
	p = dollar + 1;
	colon = memchr(p, ':', (size_t)(end - p));
	if (!decode_field(p, colon, out->stored_key, SCRAM_KEY_LEN, true, NULL))
		goto bad;
	p = colon + 1;
	if (!decode_field(p, end, out->server_key, SCRAM_KEY_LEN, true, NULL))
		goto bad;
	return 0;
bad:
	OPENSSL_cleanse(out, sizeof(*out));
	return -EINVAL;
}

int scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                               int iterations, struct scram_secret *out)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	const char *pw;
	size_t pwlen;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!password || !salt || salt_len < 1 || salt_len > SCRAM_SALT_MAX || iterations < 1)
		return -EINVAL;
	saslprep(password, &pw, &pwlen);
	rc = keys_from_password(pw, pwlen, salt, salt_len, iterations, client_key, out->server_key);
	if (!rc)
		rc = sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (rc) {
		OPENSSL_cleanse(out, sizeof(*out));
		return rc;
	}
	out->iterations = iterations;
	memcpy(out->salt, salt, salt_len);
	out->salt_len = salt_len;
	return 0;
}

int scram_format_secret(const struct scram_secret *s, char *buf, size_t cap)
{
	char salt[B64_IN_MAX], stored[64], server[64];
	int n;

	if (!s || !buf || !secret_valid(s))
		return -EINVAL;
	if (b64_encode(s->salt, s->salt_len, salt, sizeof(salt)) < 0 ||
	    b64_encode(s->stored_key, SCRAM_KEY_LEN, stored, sizeof(stored)) < 0 ||
	    b64_encode(s->server_key, SCRAM_KEY_LEN, server, sizeof(server)) < 0)
		return -EINVAL;
	n = snprintf(buf, cap, PREFIX "%d:%s$%s:%s", s->iterations, salt, stored, server);
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

/* HMAC-SHA256 under a key of any length, over tag || NUL || user (user up to
 * 255 bytes: names are 63 at most). */
static int hmac_tagged(const uint8_t *key, size_t keylen, const char *tag, const char *user,
                       uint8_t out[SCRAM_KEY_LEN])
{
	char msg[16 + 256];
	size_t tl = strlen(tag) + 1, ul = strnlen(user, 256);
	unsigned int olen = 0;

	if (tl > 16 || ul > 255)
		return -EINVAL;
	memcpy(msg, tag, tl);
	memcpy(msg + tl, user, ul);
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, tl + ul, out,
	          &olen) ||
	    olen != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

int scram_user_salt(const uint8_t *key, size_t keylen, const char *user,
                    uint8_t salt[SCRAM_USER_SALT_LEN])
{
	uint8_t mac[SCRAM_KEY_LEN];
	int rc;

	if (!key || !keylen || keylen > INT_MAX || !user || !salt)
		return -EINVAL;
	rc = hmac_tagged(key, keylen, "salt", user, mac);
	if (!rc)
		memcpy(salt, mac, SCRAM_USER_SALT_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

int scram_mock_secret(const uint8_t *key, size_t keylen, const char *user, int iterations,
                      struct scram_secret *out)
{
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (iterations < 1)
		return -EINVAL;
	rc = scram_user_salt(key, keylen, user, out->salt);
	if (!rc)
		rc = hmac_tagged(key, keylen, "stored", user, out->stored_key);
	if (!rc)
		rc = hmac_tagged(key, keylen, "server", user, out->server_key);
	if (rc) {
		OPENSSL_cleanse(out, sizeof(*out));
		return rc;
	}
	out->salt_len = SCRAM_USER_SALT_LEN;
	out->iterations = iterations;
	return 0;
}

/* ---- server side ----------------------------------------------------------- */

int scram_server_init(struct scram_server *s, const struct scram_secret *secret)
{
	int rc;

	if (!s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	if (!secret || !secret_valid(secret))
		return -EINVAL;
	s->secret = *secret;
	rc = random_nonce(s->server_nonce, sizeof(s->server_nonce));
	if (rc) {
		scram_server_wipe(s);
		return rc;
	}
	s->state = ST_INIT;
	return 0;
}

void scram_server_set_nonce(struct scram_server *s, const char *nonce)
{
	size_t n;

	if (!s || !nonce || s->state != ST_INIT)
		return;
	n = strnlen(nonce, SCRAM_NONCE_MAX + 1);
	if (!valid_nonce(nonce, n, SCRAM_NONCE_MAX))
		return;
	memcpy(s->server_nonce, nonce, n);
	s->server_nonce[n] = '\0';
}

int scram_server_handle_first(struct scram_server *s, const char *msg, size_t len, char *out,
                              size_t cap, size_t *out_len)
{
	char salt64[B64_IN_MAX];
	const char *bare, *user, *cnonce;
	size_t ulen, cnlen, snlen;
	struct cur c;
	char flag;
	int n;

	if (!s || !out || !out_len || s->state != ST_INIT)
		return -EINVAL;
	s->state = ST_FAILED; /* one shot: any early return leaves it failed */
	if (!msg_ok(msg, len))
		return -EPROTO;
	c.p = msg;
	c.end = msg + len;

	/* gs2-cbind-flag: we never advertise SCRAM-SHA-256-PLUS, so "p=" (client wants
	 * channel binding) cannot succeed; "y" (client could, but thinks we cannot) is fine. */
	flag = *c.p++;
	if (flag != 'n' && flag != 'y')
		return -EPROTO;
	/* An empty authzid is required: like PostgreSQL we do not support "a=". */
	if (!read_comma(&c) || !read_comma(&c))
		return -EPROTO;

	bare = c.p;
	/* "m=" would be a mandatory extension we do not understand; read_attr('n') refuses it. */
	if (!read_attr(&c, 'n', &user, &ulen) || !read_comma(&c))
		return -EPROTO;
	(void)user; /* PostgreSQL ignores it: the startup packet's user is authoritative */
	if (!read_attr(&c, 'r', &cnonce, &cnlen) || !valid_nonce(cnonce, cnlen, SCRAM_NONCE_MAX))
		return -EPROTO;
	while (c.p < c.end)
		if (!read_comma(&c) || !skip_ext(&c))
			return -EPROTO;

	s->client_first_bare_len = (size_t)(c.end - bare);
	memcpy(s->client_first_bare, bare, s->client_first_bare_len);
	snlen = strlen(s->server_nonce);
	memcpy(s->nonce, cnonce, cnlen);
	memcpy(s->nonce + cnlen, s->server_nonce, snlen);
	s->nonce_len = cnlen + snlen;
	s->nonce[s->nonce_len] = '\0';

	if (b64_encode(s->secret.salt, s->secret.salt_len, salt64, sizeof(salt64)) < 0)
		return -EINVAL;
	n = snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=%d", s->nonce, salt64,
	             s->secret.iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first))
		return -ENOSPC; /* cannot happen with the bounds above */
	s->server_first_len = (size_t)n;
	if ((size_t)n >= cap)
		return -ENOSPC;
	memcpy(out, s->server_first, (size_t)n + 1);
	*out_len = (size_t)n;
	s->gs2_flag = flag;
	s->state = ST_FIRST;
	return 0;
}

int scram_server_handle_final(struct scram_server *s, const char *msg, size_t len, char *out,
                              size_t cap, size_t *out_len)
{
	char auth[3 * SCRAM_MSG_MAX + 2];
	uint8_t cb[16], proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN];
	const char *cbv, *nonce, *pv;
	size_t cblen, cbn, nlen, pvlen, plen, without_proof, alen;
	struct cur c;
	int rc, n;

	if (!s || !out || !out_len || s->state != ST_FIRST)
		return -EINVAL;
	s->state = ST_FAILED; /* one attempt per nonce: no proof-guessing on a live exchange */
	if (!msg_ok(msg, len))
		return -EPROTO;
	c.p = msg;
	c.end = msg + len;

	/* c= must echo the gs2 header from client-first, byte for byte. */
	if (!read_attr(&c, 'c', &cbv, &cblen) ||
	    b64_decode(cbv, cblen, cb, sizeof(cb), &cbn) != 0 || cbn != 3 || cb[0] != s->gs2_flag ||
	    cb[1] != ',' || cb[2] != ',')
		return -EPROTO;
	if (!read_comma(&c) || !read_attr(&c, 'r', &nonce, &nlen) || nlen != s->nonce_len ||
	    memcmp(nonce, s->nonce, nlen) != 0)
		return -EPROTO;
	/* Extensions may follow; the proof is mandatory and last. */
	for (;;) {
		if (!read_comma(&c))
			return -EPROTO;
		if (c.end - c.p >= 2 && c.p[0] == 'p' && c.p[1] == '=')
			break;
		if (!skip_ext(&c))
			return -EPROTO;
	}
	without_proof = (size_t)(c.p - 1 - msg);
	if (!read_attr(&c, 'p', &pv, &pvlen) || c.p != c.end ||
	    b64_decode(pv, pvlen, proof, sizeof(proof), &plen) != 0 || plen != SCRAM_KEY_LEN)
		return -EPROTO;

	alen = auth_message(auth, s->client_first_bare, s->client_first_bare_len, s->server_first,
	                    s->server_first_len, msg, without_proof);
	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); valid iff H(ClientKey) ==
	 * StoredKey. */
	rc = hmac256(s->secret.stored_key, auth, alen, sig);
	if (rc)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	rc = sha256(key, SCRAM_KEY_LEN, stored);
	if (rc)
		goto out;
	if (CRYPTO_memcmp(stored, s->secret.stored_key, SCRAM_KEY_LEN) != 0) {
		rc = -EACCES;
		goto out;
	}
	rc = hmac256(s->secret.server_key, auth, alen, sig);
	if (rc)
		goto out;
	if (cap < 3) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(out, "v=", 2);
	n = b64_encode(sig, SCRAM_KEY_LEN, out + 2, cap - 2);
	if (n < 0) {
		rc = n;
		goto out;
	}
	*out_len = (size_t)n + 2;
	memcpy(s->client_key, key, SCRAM_KEY_LEN);
	s->state = ST_DONE;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(sig, sizeof(sig));
	return rc;
}

bool scram_server_client_key(const struct scram_server *s, uint8_t out[SCRAM_KEY_LEN])
{
	if (!s || !out || s->state != ST_DONE)
		return false;
	memcpy(out, s->client_key, SCRAM_KEY_LEN);
	return true;
}

void scram_server_wipe(struct scram_server *s)
{
	if (s)
		OPENSSL_cleanse(s, sizeof(*s));
}

/* ---- client side ----------------------------------------------------------- */

int scram_client_init_password(struct scram_client *c, const char *password)
{
	const char *pw;
	size_t n;
	int rc;

	if (!c)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	if (!password || strnlen(password, SCRAM_PASSWORD_MAX + 1) > SCRAM_PASSWORD_MAX)
		return -EINVAL;
	saslprep(password, &pw, &n);
	memcpy(c->password, pw, n);
	c->password_len = n;
	rc = random_nonce(c->nonce, sizeof(c->nonce));
	if (rc) {
		scram_client_wipe(c);
		return rc;
	}
	c->state = ST_INIT;
	return 0;
}

int scram_client_init_keys(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                           const uint8_t server_key[SCRAM_KEY_LEN])
{
	int rc;

	if (!c)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	if (!client_key || !server_key)
		return -EINVAL;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(c->server_key, server_key, SCRAM_KEY_LEN);
	c->have_keys = true;
	rc = random_nonce(c->nonce, sizeof(c->nonce));
	if (rc) {
		scram_client_wipe(c);
		return rc;
	}
	c->state = ST_INIT;
	return 0;
}

void scram_client_set_nonce(struct scram_client *c, const char *nonce)
{
	size_t n;

	if (!c || !nonce || c->state != ST_INIT)
		return;
	n = strnlen(nonce, SCRAM_NONCE_MAX + 1);
	if (!valid_nonce(nonce, n, SCRAM_NONCE_MAX))
		return;
	memcpy(c->nonce, nonce, n);
	c->nonce[n] = '\0';
}

int scram_client_set_user(struct scram_client *c, const char *user)
{
	size_t n, o = 0;

	if (!c || !user || c->state != ST_INIT)
		return -EINVAL;
	n = strnlen(user, 65);
	if (n > 64)
		return -EINVAL;
	/* saslname escaping; worst case triples, which c->user is sized for. */
	for (size_t i = 0; i < n; i++) {
		if (user[i] == '=' || user[i] == ',') {
			memcpy(c->user + o, user[i] == '=' ? "=3D" : "=2C", 3);
			o += 3;
		} else {
			c->user[o++] = user[i];
		}
	}
	c->user[o] = '\0';
	return 0;
}

int scram_client_first(struct scram_client *c, char *out, size_t cap, size_t *out_len)
{
	int n;

	if (!c || !out || !out_len || c->state != ST_INIT)
		return -EINVAL;
	n = snprintf(c->client_first_bare, sizeof(c->client_first_bare), "n=%s,r=%s", c->user,
	             c->nonce);
	if (n < 0 || (size_t)n >= sizeof(c->client_first_bare))
		return -ENOSPC; /* cannot happen: user <= 192, nonce <= 128 */
	c->client_first_bare_len = (size_t)n;
	/* gs2 header "n,,": no channel binding, no authzid. */
	if ((size_t)n + 3 >= cap)
		return -ENOSPC;
	memcpy(out, "n,,", 3);
	memcpy(out + 3, c->client_first_bare, (size_t)n + 1);
	*out_len = (size_t)n + 3;
	c->state = ST_FIRST;
	return 0;
}

int scram_client_handle_server_first(struct scram_client *c, const char *msg, size_t len, char *out,
                                     size_t cap, size_t *out_len)
{
	char auth[3 * SCRAM_MSG_MAX + 2], final[SCRAM_MSG_MAX];
	uint8_t salt[SCRAM_SALT_MAX], stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
	uint8_t proof[SCRAM_KEY_LEN];
	const char *nonce, *sv, *iv;
	size_t nlen, own, svlen, ivlen, salt_len, alen;
	int iterations, rc, n, m;
	struct cur cu;

	if (!c || !out || !out_len || c->state != ST_FIRST)
		return -EINVAL;
	c->state = ST_FAILED;
	if (!msg_ok(msg, len))
		return -EPROTO;
	cu.p = msg;
	cu.end = msg + len;

	/* The server must extend our nonce; echoing it alone would allow replays. */
	own = strlen(c->nonce);
	if (!read_attr(&cu, 'r', &nonce, &nlen) || !valid_nonce(nonce, nlen, 2 * SCRAM_NONCE_MAX) ||
	    nlen <= own || memcmp(nonce, c->nonce, own) != 0)
		return -EPROTO;
	if (!read_comma(&cu) || !read_attr(&cu, 's', &sv, &svlen) ||
	    b64_decode(sv, svlen, salt, sizeof(salt), &salt_len) != 0 || salt_len == 0)
		return -EPROTO;
	if (!read_comma(&cu) || !read_attr(&cu, 'i', &iv, &ivlen) ||
	    !parse_pos_int(iv, ivlen, c->have_keys ? INT_MAX : SCRAM_ITER_MAX, &iterations))
		return -EPROTO;
	while (cu.p < cu.end)
		if (!read_comma(&cu) || !skip_ext(&cu))
			return -EPROTO;

	if (!c->have_keys) {
		rc = keys_from_password_cached(c->password, c->password_len, salt, salt_len,
		                               iterations, c->client_key, c->server_key);
		OPENSSL_cleanse(c->password, sizeof(c->password)); /* not needed any more */
		if (rc)
			return rc;
	}

	/* "biws" is base64("n,,"), the gs2 header we sent. */
	n = snprintf(final, sizeof(final), "c=biws,r=%.*s", (int)nlen, nonce);
	if (n < 0 || (size_t)n >= sizeof(final))
		return -EPROTO; /* cannot happen: nlen <= 256 */
	alen = auth_message(auth, c->client_first_bare, c->client_first_bare_len, msg, len, final,
	                    (size_t)n);
	rc = sha256(c->client_key, SCRAM_KEY_LEN, stored);
	if (!rc)
		rc = hmac256(stored, auth, alen, sig);
	if (!rc)
		rc = hmac256(c->server_key, auth, alen, c->server_signature);
	if (rc)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = c->client_key[i] ^ sig[i];
	if ((size_t)n + 3 >= cap) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(out, final, (size_t)n);
	memcpy(out + n, ",p=", 3);
	m = b64_encode(proof, SCRAM_KEY_LEN, out + n + 3, cap - (size_t)n - 3);
	if (m < 0) {
		rc = m;
		goto out;
	}
	*out_len = (size_t)n + 3 + (size_t)m;
	c->state = ST_FINAL;
out:
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(stored, sizeof(stored));
	return rc;
}

int scram_client_verify_server_final(struct scram_client *c, const char *msg, size_t len)
{
	uint8_t sig[SCRAM_KEY_LEN];
	const char *v;
	size_t vlen, n;
	struct cur cu;

	if (!c || c->state != ST_FINAL)
		return -EINVAL;
	c->state = ST_FAILED;
	if (!msg_ok(msg, len))
		return -EPROTO;
	cu.p = msg;
	cu.end = msg + len;
	/* server-error "e=...": the server rejected our proof. */
	if (read_attr(&cu, 'e', &v, &vlen))
		return -EACCES;
	/* Like libpq, accept nothing after the verifier. */
	if (!read_attr(&cu, 'v', &v, &vlen) || cu.p != cu.end ||
	    b64_decode(v, vlen, sig, sizeof(sig), &n) != 0 || n != SCRAM_KEY_LEN)
		return -EPROTO;
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0)
		return -EACCES;
	c->state = ST_DONE;
	return 0;
}

void scram_client_wipe(struct scram_client *c)
{
	if (c)
		OPENSSL_cleanse(c, sizeof(*c));
}
