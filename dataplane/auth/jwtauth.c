/*
 * JWT authentication: options, key loading (PEM files, HMAC secret files, JWKS
 * turned into PEM with OpenSSL 3), and token checks. libjwt (1.10) checks the
 * signature; everything that decides WHICH key and algorithm may be used is done
 * here first, because libjwt takes the algorithm from the token's own header and
 * would happily use an RSA public key's PEM text as an HMAC secret.
 */
#include "dataplane/auth/jwtauth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Algorithms we know, as bits of a mask; "none" has no bit, so it can never be allowed. */
enum {
	JA_HS256 = 1u << 0,
	JA_HS384 = 1u << 1,
	JA_HS512 = 1u << 2,
	JA_RS256 = 1u << 3,
	JA_RS384 = 1u << 4,
	JA_RS512 = 1u << 5,
	JA_ES256 = 1u << 6,
	JA_ES384 = 1u << 7,
};
#define JA_HS (JA_HS256 | JA_HS384 | JA_HS512)
#define JA_RS (JA_RS256 | JA_RS384 | JA_RS512)

static const struct {
	const char *name;
	unsigned bit;
	jwt_alg_t lib;
} algs[] = {
    {"HS256", JA_HS256, JWT_ALG_HS256}, {"HS384", JA_HS384, JWT_ALG_HS384},
    {"HS512", JA_HS512, JWT_ALG_HS512}, {"RS256", JA_RS256, JWT_ALG_RS256},
    {"RS384", JA_RS384, JWT_ALG_RS384}, {"RS512", JA_RS512, JWT_ALG_RS512},
    {"ES256", JA_ES256, JWT_ALG_ES256}, {"ES384", JA_ES384, JWT_ALG_ES384},
};
#define N_ALGS (sizeof(algs) / sizeof(algs[0]))

/* Longest token we look at: far above any real one, small enough to bound the work. */
#define JWT_TOKEN_MAX 16384
/* Smallest HMAC secret: RFC 7518 3.2 wants at least the hash size; 32 bytes for all. */
#define JWT_HMAC_MIN      32
#define JWT_FILE_MAX      (1 << 20)
#define JWT_MAX_KEYS      64
#define JWT_MAX_KEY_FILES 16

enum jwt_key_kind { JK_HMAC, JK_RSA, JK_EC };

struct jwt_key {
	enum jwt_key_kind kind;
	unsigned algs; /* algorithms this key may verify */
	char kid[128]; /* "" = no kid */
	uint8_t *data; /* PEM text (RSA/EC) or the raw secret (HMAC) */
	size_t len;
	char where[300]; /* "jwt_key_file /path" or "jwt_jwks_file /path: key 2" */
};

struct jwt_conf {
	bool finished;
	char *key_files[JWT_MAX_KEY_FILES];
	int n_key_files;
	bool key_file_is_secret[JWT_MAX_KEY_FILES]; /* given as jwt_secret_file */
	char *jwks_file;
	char *issuer;
	char *audience;
	char user_claim[64];
	char tenant_claim[64];
	long leeway;
	unsigned algs; /* 0 = not set: whatever the keys allow */
	struct jwt_key keys[JWT_MAX_KEYS];
	int n_keys;
};

static void why_set(char *why, size_t wcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t wcap, const char *fmt, ...)
{
	if (!why || !wcap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, wcap, fmt, ap);
	va_end(ap);
}

/* Copies a claim value for a log line: printable ASCII only, at most 64 bytes. */
static void shown(const char *s, char *out, size_t cap)
{
	size_t j = 0;
	for (size_t i = 0; s[i] && j + 4 < cap && i < 64; i++)
		out[j++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (strlen(s) > 64 && j + 3 < cap) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = 0;
}

struct jwt_conf *jwtauth_conf_new(void)
{
	struct jwt_conf *c = calloc(1, sizeof(*c));
	if (c)
		strcpy(c->user_claim, "sub");
	return c;
}

void jwtauth_conf_free(struct jwt_conf *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_key_files; i++)
		free(c->key_files[i]);
	free(c->jwks_file);
	free(c->issuer);
	free(c->audience);
	for (int i = 0; i < c->n_keys; i++) {
		OPENSSL_clear_free(c->keys[i].data, c->keys[i].len);
	}
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

static const char *const option_names[] = {
    "jwt_key_file",   "jwt_secret_file",  "jwt_jwks_file",   "jwt_issuer",     "jwt_audience",
    "jwt_user_claim", "jwt_tenant_claim", "jwt_leeway_secs", "jwt_algorithms",
};

int jwtauth_is_option(const char *name)
{
	for (size_t i = 0; i < sizeof(option_names) / sizeof(option_names[0]); i++)
		if (name && strcmp(name, option_names[i]) == 0)
			return 1;
	return 0;
}

static int set_str(char **dst, const char *name, const char *value, char *why, size_t wcap)
{
	if (!*value) {
		why_set(why, wcap, "%s: empty value", name);
		return -EINVAL;
	}
	char *d = strdup(value);
	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

static int parse_algs(const char *value, unsigned *out, char *why, size_t wcap)
{
	unsigned m = 0;
	const char *p = value;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		size_t i;
		for (i = 0; i < N_ALGS; i++)
			if (strlen(algs[i].name) == n && strncmp(p, algs[i].name, n) == 0)
				break;
		if (i == N_ALGS) {
			why_set(
			    why, wcap,
			    "jwt_algorithms: \"%.*s\" is not one of HS256, HS384, HS512, RS256, "
			    "RS384, RS512, ES256, ES384",
			    (int)(n > 20 ? 20 : n), p);
			return -EINVAL;
		}
		m |= algs[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!m) {
		why_set(why, wcap, "jwt_algorithms: empty list");
		return -EINVAL;
	}
	*out = m;
	return 0;
}

/* A claim name: 1..63 bytes, no control characters. */
static int set_claim(char dst[64], const char *name, const char *value, char *why, size_t wcap)
{
	size_t n = strlen(value);
	if (n == 0 || n >= 64) {
		why_set(why, wcap, "%s: a claim name of 1 to 63 bytes", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)value[i] < 0x20) {
			why_set(why, wcap, "%s: control character in the claim name", name);
			return -EINVAL;
		}
	memcpy(dst, value, n + 1);
	return 0;
}

int jwtauth_conf_set(struct jwt_conf *c, const char *name, const char *value, char *why,
                     size_t wcap)
{
	if (!c || !name || !value || c->finished) {
		why_set(why, wcap, "jwt: bad call");
		return -EINVAL;
	}
	if (!strcmp(name, "jwt_key_file") || !strcmp(name, "jwt_secret_file")) {
		if (c->n_key_files >= JWT_MAX_KEY_FILES) {
			why_set(why, wcap, "%s: at most %d key files per rule", name,
			        JWT_MAX_KEY_FILES);
			return -EINVAL;
		}
		char *d = NULL;
		int rc = set_str(&d, name, value, why, wcap);
		if (rc < 0)
			return rc;
		c->key_file_is_secret[c->n_key_files] = name[4] == 's';
		c->key_files[c->n_key_files++] = d;
		return 0;
	}
	if (!strcmp(name, "jwt_jwks_file"))
		return set_str(&c->jwks_file, name, value, why, wcap);
	if (!strcmp(name, "jwt_issuer"))
		return set_str(&c->issuer, name, value, why, wcap);
	if (!strcmp(name, "jwt_audience"))
		return set_str(&c->audience, name, value, why, wcap);
	if (!strcmp(name, "jwt_user_claim"))
		return set_claim(c->user_claim, name, value, why, wcap);
	if (!strcmp(name, "jwt_tenant_claim"))
		return set_claim(c->tenant_claim, name, value, why, wcap);
	if (!strcmp(name, "jwt_leeway_secs")) {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < 0 || v > 86400) {
			why_set(why, wcap,
			        "jwt_leeway_secs: \"%.20s\" is not a number of seconds "
			        "from 0 to 86400",
			        value);
			return -EINVAL;
		}
		c->leeway = v;
		return 0;
	}
	if (!strcmp(name, "jwt_algorithms"))
		return parse_algs(value, &c->algs, why, wcap);
	why_set(why, wcap,
	        "unknown jwt option \"%.40s\" (expected one of jwt_key_file, "
	        "jwt_secret_file, jwt_jwks_file, jwt_issuer, jwt_audience, "
	        "jwt_user_claim, jwt_tenant_claim, jwt_leeway_secs, jwt_algorithms)",
	        name);
	return -EINVAL;
}

/* ---- files and keys ------------------------------------------------------ */

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	uint8_t *buf = malloc(JWT_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, JWT_FILE_MAX + 1, f);
	int err = ferror(f);
	fclose(f);
	if (err || n > JWT_FILE_MAX) {
		OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
		return err ? -EIO : -EFBIG;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

/* Which algorithms a public key may verify: RSA -> RS*, EC P-256 -> ES256,
 * P-384 -> ES384. -EINVAL for any other key (Ed25519, P-521, DSA...). */
static int pkey_algs(EVP_PKEY *pk, enum jwt_key_kind *kind, unsigned *m)
{
	if (EVP_PKEY_is_a(pk, "RSA")) {
		*kind = JK_RSA;
		*m = JA_RS;
		return 0;
	}
	if (EVP_PKEY_is_a(pk, "EC")) {
		char grp[64];
		size_t gl = 0;
		if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, grp,
		                                    sizeof(grp), &gl))
			return -EINVAL;
		*kind = JK_EC;
		if (!strcmp(grp, "prime256v1") || !strcmp(grp, "P-256"))
			*m = JA_ES256;
		else if (!strcmp(grp, "secp384r1") || !strcmp(grp, "P-384"))
			*m = JA_ES384;
		else
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* PEM of pk's public key, as libjwt reads it (PEM_read_bio_PUBKEY). */
static int pkey_to_pem(EVP_PKEY *pk, uint8_t **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return -ENOMEM;
	int rc = -EIO;
	char *p;
	if (PEM_write_bio_PUBKEY(b, pk) == 1) {
		long n = BIO_get_mem_data(b, &p);
		if (n > 0 && (*out = malloc((size_t)n + 1))) {
			memcpy(*out, p, (size_t)n);
			(*out)[n] = 0;
			*len = (size_t)n;
			rc = 0;
		}
	}
	BIO_free(b);
	return rc;
}

static struct jwt_key *add_key(struct jwt_conf *c, char *why, size_t wcap, const char *where)
{
	if (c->n_keys >= JWT_MAX_KEYS) {
		why_set(why, wcap, "%s: more than %d keys", where, JWT_MAX_KEYS);
		return NULL;
	}
	struct jwt_key *k = &c->keys[c->n_keys];
	memset(k, 0, sizeof(*k));
	snprintf(k->where, sizeof(k->where), "%s", where);
	return k;
}

static int load_key_file(struct jwt_conf *c, int i, char *why, size_t wcap)
{
	const char *opt = c->key_file_is_secret[i] ? "jwt_secret_file" : "jwt_key_file";
	const char *path = c->key_files[i];
	char where[300];
	snprintf(where, sizeof(where), "%s %s", opt, path);
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = read_file(path, &buf, &n);
	if (rc < 0) {
		why_set(why, wcap, "%s: %s", where, strerror(-rc));
		return rc;
	}
	struct jwt_key *k = add_key(c, why, wcap, where);
	if (!k) {
		OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
		return -EINVAL;
	}
	if (!c->key_file_is_secret[i] && strstr((char *)buf, "-----BEGIN")) {
		if (strstr((char *)buf, "PRIVATE KEY-----")) {
			why_set(why, wcap,
			        "%s: a private key; give the public key (openssl pkey "
			        "-pubout)",
			        where);
			OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
			return -EINVAL;
		}
		BIO *b = BIO_new_mem_buf(buf, (int)n);
		EVP_PKEY *pk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
		if (!pk) {
			why_set(why, wcap, "%s: not a PEM public key (\"BEGIN PUBLIC KEY\")",
			        where);
			return -EINVAL;
		}
		rc = pkey_algs(pk, &k->kind, &k->algs);
		if (rc == 0)
			rc = pkey_to_pem(pk, &k->data, &k->len);
		else
			why_set(why, wcap, "%s: only RSA, EC P-256 and EC P-384 keys are supported",
			        where);
		EVP_PKEY_free(pk);
		if (rc < 0) {
			if (rc != -EINVAL)
				why_set(why, wcap, "%s: cannot convert the key", where);
			return rc;
		}
		c->n_keys++;
		return 0;
	}
	/* an HMAC secret: the file's bytes without one trailing newline */
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	if (n < JWT_HMAC_MIN) {
		why_set(why, wcap, "%s: an HMAC secret needs at least %d bytes, the file has %zu",
		        where, JWT_HMAC_MIN, n);
		OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
		return -EINVAL;
	}
	k->kind = JK_HMAC;
	k->algs = JA_HS;
	k->data = malloc(n ? n : 1);
	if (!k->data) {
		OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
		return -ENOMEM;
	}
	memcpy(k->data, buf, n);
	k->len = n;
	OPENSSL_clear_free(buf, JWT_FILE_MAX + 1);
	c->n_keys++;
	return 0;
}

/* base64url (RFC 4648 section 5) without padding; padding tolerated. Returns
 * the decoded length or -EINVAL. */
static long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	while (n && in[n - 1] == '=')
		n--;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int v;
		char ch = in[i];
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '-')
			v = 62;
		else if (ch == '_')
			v = 63;
		else
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -EINVAL;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (bits >= 6)
		return -EINVAL; /* a lone sixth of a byte: not base64 */
	return (long)o;
}

/* A JWK member decoded from base64url into a fresh buffer. */
static int jwk_b64(json_t *jk, const char *member, uint8_t **out, size_t *len)
{
	const char *s = json_string_value(json_object_get(jk, member));
	if (!s || !*s)
		return -ENOENT;
	size_t n = strlen(s);
	uint8_t *b = malloc(n);
	if (!b)
		return -ENOMEM;
	long l = b64url_decode(s, n, b, n);
	if (l <= 0) {
		free(b);
		return -EINVAL;
	}
	*out = b;
	*len = (size_t)l;
	return 0;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	EVP_PKEY *pk = NULL;
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
			pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

static EVP_PKEY *jwk_rsa(json_t *jk, const char **err)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nl = 0, el = 0;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	if (jwk_b64(jk, "n", &n, &nl) < 0 || jwk_b64(jk, "e", &e, &el) < 0) {
		*err = "RSA key without valid base64url n and e";
		goto out;
	}
	bn = BN_bin2bn(n, (int)nl, NULL);
	be = BN_bin2bn(e, (int)el, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
		*err = "out of memory";
		goto out;
	}
	pk = pkey_from_params("RSA", bld);
	if (!pk)
		*err = "OpenSSL refused the RSA n and e";
	else if (EVP_PKEY_get_bits(pk) < 2048) {
		*err = "RSA key shorter than 2048 bits";
		EVP_PKEY_free(pk);
		pk = NULL;
	}
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pk;
}

static EVP_PKEY *jwk_ec(json_t *jk, const char **err)
{
	const char *crv = json_string_value(json_object_get(jk, "crv"));
	const char *group;
	size_t clen;
	if (crv && !strcmp(crv, "P-256")) {
		group = "prime256v1";
		clen = 32;
	} else if (crv && !strcmp(crv, "P-384")) {
		group = "secp384r1";
		clen = 48;
	} else {
		*err = "EC key with a crv other than P-256 or P-384";
		return NULL;
	}
	uint8_t *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	EVP_PKEY *pk = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	uint8_t pt[1 + 2 * 48];
	if (jwk_b64(jk, "x", &x, &xl) < 0 || jwk_b64(jk, "y", &y, &yl) < 0 || xl != clen ||
	    yl != clen) {
		*err = "EC key without valid base64url x and y of the curve's size";
		goto out;
	}
	pt[0] = 0x04; /* uncompressed point */
	memcpy(pt + 1, x, clen);
	memcpy(pt + 1 + clen, y, clen);
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen)) {
		*err = "out of memory";
		goto out;
	}
	pk = pkey_from_params("EC", bld);
	if (!pk)
		*err = "OpenSSL refused the EC point (not on the curve?)";
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pk;
}

static int load_jwk(struct jwt_conf *c, json_t *jk, size_t idx, char *why, size_t wcap)
{
	char where[300];
	const char *kid = json_string_value(json_object_get(jk, "kid"));
	snprintf(where, sizeof(where), "jwt_jwks_file %s: key %zu%s%.60s%s", c->jwks_file, idx + 1,
	         kid ? " (kid \"" : "", kid ? kid : "", kid ? "\")" : "");
	if (!json_is_object(jk)) {
		why_set(why, wcap, "%s: not a JSON object", where);
		return -EINVAL;
	}
	const char *use = json_string_value(json_object_get(jk, "use"));
	if (use && strcmp(use, "sig") != 0)
		return 0; /* an encryption key: not ours to use, not an error */
	const char *kty = json_string_value(json_object_get(jk, "kty"));
	if (!kty) {
		why_set(why, wcap, "%s: no kty", where);
		return -EINVAL;
	}
	if (kid && strlen(kid) >= sizeof(c->keys[0].kid)) {
		why_set(why, wcap, "%s: kid longer than %zu bytes", where,
		        sizeof(c->keys[0].kid) - 1);
		return -EINVAL;
	}
	struct jwt_key *k = add_key(c, why, wcap, where);
	if (!k)
		return -EINVAL;
	if (kid)
		snprintf(k->kid, sizeof(k->kid), "%s", kid);
	int rc;
	if (!strcmp(kty, "oct")) {
		rc = jwk_b64(jk, "k", &k->data, &k->len);
		if (rc < 0 || k->len < JWT_HMAC_MIN) {
			why_set(why, wcap, "%s: oct key needs a base64url k of at least %d bytes",
			        where, JWT_HMAC_MIN);
			if (k->data)
				OPENSSL_clear_free(k->data, k->len);
			k->data = NULL;
			return rc == -ENOMEM ? rc : -EINVAL;
		}
		k->kind = JK_HMAC;
		k->algs = JA_HS;
	} else if (!strcmp(kty, "RSA") || !strcmp(kty, "EC")) {
		const char *err = "unsupported key";
		EVP_PKEY *pk = kty[0] == 'R' ? jwk_rsa(jk, &err) : jwk_ec(jk, &err);
		if (!pk) {
			why_set(why, wcap, "%s: %s", where, err);
			return -EINVAL;
		}
		rc = pkey_algs(pk, &k->kind, &k->algs);
		if (rc == 0)
			rc = pkey_to_pem(pk, &k->data, &k->len);
		EVP_PKEY_free(pk);
		if (rc < 0) {
			why_set(why, wcap, "%s: cannot convert the key to PEM", where);
			return rc;
		}
	} else {
		why_set(why, wcap, "%s: unsupported kty \"%.20s\" (RSA, EC or oct)", where, kty);
		return -EINVAL;
	}
	/* a JWK's "alg" pins the key to that one algorithm (RFC 7517 4.4) */
	const char *alg = json_string_value(json_object_get(jk, "alg"));
	if (alg) {
		unsigned m = 0;
		for (size_t i = 0; i < N_ALGS; i++)
			if (!strcmp(alg, algs[i].name))
				m = algs[i].bit;
		if (!(m & k->algs)) {
			why_set(why, wcap, "%s: alg \"%.20s\" does not fit a %s key", where, alg,
			        kty);
			OPENSSL_clear_free(k->data, k->len);
			k->data = NULL;
			return -EINVAL;
		}
		k->algs = m;
	}
	c->n_keys++;
	return 0;
}

static int load_jwks(struct jwt_conf *c, char *why, size_t wcap)
{
	json_error_t je;
	json_t *root = json_load_file(c->jwks_file, 0, &je);
	if (!root) {
		why_set(why, wcap, "jwt_jwks_file %s: line %d: %s", c->jwks_file, je.line, je.text);
		return -EINVAL;
	}
	int rc = 0;
	json_t *keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		why_set(why, wcap, "jwt_jwks_file %s: no \"keys\" array", c->jwks_file);
		rc = -EINVAL;
	}
	for (size_t i = 0; rc == 0 && i < json_array_size(keys); i++)
		rc = load_jwk(c, json_array_get(keys, i), i, why, wcap);
	json_decref(root);
	return rc;
}

int jwtauth_conf_finish(struct jwt_conf *c, char *why, size_t wcap)
{
	if (!c || c->finished) {
		why_set(why, wcap, "jwt: bad call");
		return -EINVAL;
	}
	int rc;
	for (int i = 0; i < c->n_key_files; i++)
		if ((rc = load_key_file(c, i, why, wcap)) < 0)
			return rc;
	if (c->jwks_file && (rc = load_jwks(c, why, wcap)) < 0)
		return rc;
	if (!c->n_key_files && !c->jwks_file) {
		why_set(why, wcap,
		        "jwt: no key: set jwt_key_file, jwt_secret_file or jwt_jwks_file");
		return -EINVAL;
	}
	unsigned have = 0;
	for (int i = 0; i < c->n_keys; i++)
		have |= c->keys[i].algs;
	if (!have) {
		why_set(why, wcap, "jwt_jwks_file %s: no signing key", c->jwks_file);
		return -EINVAL;
	}
	for (size_t i = 0; i < N_ALGS; i++)
		if ((c->algs & algs[i].bit) && !(have & algs[i].bit)) {
			why_set(why, wcap, "jwt_algorithms: %s is listed but no key can verify it",
			        algs[i].name);
			return -EINVAL;
		}
	c->finished = true;
	return 0;
}

int jwtauth_conf_reload(const struct jwt_conf *c, struct jwt_conf **out, char *why, size_t wcap)
{
	*out = NULL;
	if (!c || !c->finished) {
		why_set(why, wcap, "jwt: bad call");
		return -EINVAL;
	}
	struct jwt_conf *n = jwtauth_conf_new();
	if (!n)
		return -ENOMEM;
	int rc = 0;
	for (int i = 0; i < c->n_key_files && rc == 0; i++) {
		n->key_files[i] = strdup(c->key_files[i]);
		n->key_file_is_secret[i] = c->key_file_is_secret[i];
		n->n_key_files = i + 1;
		if (!n->key_files[i])
			rc = -ENOMEM;
	}
	if (rc == 0 && c->jwks_file && !(n->jwks_file = strdup(c->jwks_file)))
		rc = -ENOMEM;
	if (rc == 0 && c->issuer && !(n->issuer = strdup(c->issuer)))
		rc = -ENOMEM;
	if (rc == 0 && c->audience && !(n->audience = strdup(c->audience)))
		rc = -ENOMEM;
	memcpy(n->user_claim, c->user_claim, sizeof(n->user_claim));
	memcpy(n->tenant_claim, c->tenant_claim, sizeof(n->tenant_claim));
	n->leeway = c->leeway;
	n->algs = c->algs;
	if (rc == 0)
		rc = jwtauth_conf_finish(n, why, wcap);
	if (rc < 0) {
		jwtauth_conf_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

/* ---- verification -------------------------------------------------------- */

/* The token's header (alg, kid), decoded without trusting anything in it yet. */
static int read_header(const char *token, size_t hlen, char *alg, size_t acap, char *kid,
                       size_t kcap, bool *has_kid)
{
	uint8_t buf[2048];
	long n = b64url_decode(token, hlen, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -EINVAL;
	json_t *h = json_loadb((const char *)buf, (size_t)n, 0, NULL);
	if (!json_is_object(h)) {
		json_decref(h);
		return -EINVAL;
	}
	const char *a = json_string_value(json_object_get(h, "alg"));
	const char *k = json_string_value(json_object_get(h, "kid"));
	int rc = -EINVAL;
	if (a && strlen(a) < acap && (!k || strlen(k) < kcap)) {
		strcpy(alg, a);
		*has_kid = k != NULL;
		strcpy(kid, k ? k : "");
		rc = 0;
	}
	json_decref(h);
	return rc;
}

/* A NumericDate claim: absent (1, *v untouched), a number (0), or anything else (-EINVAL). */
static int numeric_claim(json_t *claims, const char *name, double *v)
{
	json_t *j = json_object_get(claims, name);
	if (!j)
		return 1;
	if (!json_is_number(j))
		return -EINVAL;
	*v = json_number_value(j);
	return 0;
}

static int check_claims(const struct jwt_conf *c, json_t *cl, const char *login_user, char *tenant,
                        size_t tcap, char *why, size_t wcap)
{
	char sh[80];
	double now = (double)time(NULL), v = 0;
	double lw = (double)c->leeway;
	int r = numeric_claim(cl, "exp", &v);
	if (r < 0) {
		why_set(why, wcap, "exp is not a number");
		return -EACCES;
	}
	if (r > 0) {
		why_set(why, wcap, "token has no exp");
		return -EACCES;
	}
	if (now >= v + lw) {
		why_set(why, wcap, "token expired %.0f s ago (leeway %ld s)", now - v, c->leeway);
		return -EACCES;
	}
	r = numeric_claim(cl, "nbf", &v);
	if (r < 0) {
		why_set(why, wcap, "nbf is not a number");
		return -EACCES;
	}
	if (r == 0 && now + lw < v) {
		why_set(why, wcap, "token not valid for another %.0f s (nbf, leeway %ld s)",
		        v - now, c->leeway);
		return -EACCES;
	}
	r = numeric_claim(cl, "iat", &v);
	if (r < 0) {
		why_set(why, wcap, "iat is not a number");
		return -EACCES;
	}
	if (r == 0 && now + lw < v) {
		why_set(why, wcap, "token issued %.0f s in the future (iat, leeway %ld s)", v - now,
		        c->leeway);
		return -EACCES;
	}
	if (c->issuer) {
		const char *iss = json_string_value(json_object_get(cl, "iss"));
		if (!iss || strcmp(iss, c->issuer) != 0) {
			if (iss)
				shown(iss, sh, sizeof(sh));
			why_set(why, wcap, "iss %s%s%s is not the configured issuer",
			        iss ? "\"" : "", iss ? sh : "missing", iss ? "\"" : "");
			return -EACCES;
		}
	}
	json_t *aud = json_object_get(cl, "aud");
	if (c->audience) {
		bool ok = false;
		if (json_is_string(aud))
			ok = !strcmp(json_string_value(aud), c->audience);
		else if (json_is_array(aud))
			for (size_t i = 0; !ok && i < json_array_size(aud); i++) {
				const char *a = json_string_value(json_array_get(aud, i));
				ok = a && !strcmp(a, c->audience);
			}
		if (!ok) {
			shown(c->audience, sh, sizeof(sh));
			why_set(why, wcap, "aud %s \"%s\"",
			        aud ? "does not contain" : "missing, expected", sh);
			return -EACCES;
		}
	} else if (aud) {
		/* RFC 7519 4.1.3: a recipient that does not identify itself with a value
		 * of a present aud must reject the token */
		why_set(why, wcap, "token has an aud but the rule sets no jwt_audience");
		return -EACCES;
	}
	const char *u = json_string_value(json_object_get(cl, c->user_claim));
	if (!u) {
		shown(c->user_claim, sh, sizeof(sh));
		why_set(why, wcap, "claim \"%s\" (jwt_user_claim) missing or not a string", sh);
		return -EACCES;
	}
	if (strcmp(u, login_user) != 0) {
		char sc[80];
		shown(u, sh, sizeof(sh));
		shown(c->user_claim, sc, sizeof(sc));
		why_set(why, wcap, "claim \"%s\" is \"%s\", not the login user", sc, sh);
		return -EACCES;
	}
	if (tcap)
		tenant[0] = 0;
	if (c->tenant_claim[0]) {
		json_t *t = json_object_get(cl, c->tenant_claim);
		if (t) {
			const char *ts = json_string_value(t);
			shown(c->tenant_claim, sh, sizeof(sh));
			if (!ts) {
				why_set(why, wcap, "tenant claim \"%s\" is not a string", sh);
				return -EACCES;
			}
			if (strlen(ts) >= tcap) {
				why_set(why, wcap, "tenant claim \"%s\" longer than %zu bytes", sh,
				        tcap ? tcap - 1 : 0);
				return -EACCES;
			}
			strcpy(tenant, ts);
		}
	}
	return 0;
}

int jwtauth_verify(const struct jwt_conf *c, const char *token, const char *login_user,
                   char *tenant, size_t tcap, char *why, size_t wcap)
{
	if (!c || !c->finished || !token || !login_user || (tcap && !tenant)) {
		why_set(why, wcap, "jwt: bad call");
		return -EINVAL;
	}
	if (tcap)
		tenant[0] = 0;
	size_t tlen = strnlen(token, JWT_TOKEN_MAX + 1);
	if (tlen > JWT_TOKEN_MAX) {
		why_set(why, wcap, "token longer than %d bytes", JWT_TOKEN_MAX);
		return -EACCES;
	}
	const char *d1 = memchr(token, '.', tlen);
	const char *d2 = d1 ? memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token))) {
		why_set(why, wcap, "not a JWT (header.payload.signature)");
		return -EACCES;
	}
	char alg[16], kid[128];
	bool has_kid = false;
	if (read_header(token, (size_t)(d1 - token), alg, sizeof(alg), kid, sizeof(kid), &has_kid) <
	    0) {
		why_set(why, wcap, "malformed JWT header");
		return -EACCES;
	}
	size_t ai;
	for (ai = 0; ai < N_ALGS; ai++)
		if (!strcmp(alg, algs[ai].name))
			break;
	if (ai == N_ALGS) {
		char sh[80];
		shown(alg, sh, sizeof(sh));
		why_set(why, wcap, "alg \"%s\" refused", sh);
		return -EACCES;
	}
	unsigned bit = algs[ai].bit;
	if (c->algs && !(c->algs & bit)) {
		why_set(why, wcap, "alg %s is not in jwt_algorithms", alg);
		return -EACCES;
	}
	if (d2[1] == 0) {
		why_set(why, wcap, "token has no signature");
		return -EACCES;
	}
	/* The key: by kid when the token names one, else every key that fits the
	 * alg. A key is tried only with an algorithm of its own type, so an RSA
	 * public key never reaches libjwt as an HMAC secret. */
	const struct jwt_key *tried_wrong = NULL;
	bool kid_found = false, tried_fit = false;
	jwt_t *jwt = NULL;
	for (int i = 0; i < c->n_keys && !jwt; i++) {
		const struct jwt_key *k = &c->keys[i];
		if (has_kid && strcmp(k->kid, kid) != 0)
			continue;
		kid_found = true;
		if (!(k->algs & bit)) {
			tried_wrong = k;
			continue;
		}
		tried_fit = true;
		jwt_t *j = NULL;
		if (jwt_decode(&j, token, k->data, (int)k->len) == 0 && j) {
			if (jwt_get_alg(j) == algs[ai].lib)
				jwt = j;
			else
				jwt_free(j);
		}
	}
	if (!jwt) {
		char sh[80];
		if (has_kid && !kid_found) {
			shown(kid, sh, sizeof(sh));
			why_set(why, wcap, "no key with kid \"%s\"", sh);
		} else if (!tried_fit && tried_wrong) {
			why_set(why, wcap, "alg %s does not fit the key of %s", alg,
			        tried_wrong->where);
		} else {
			why_set(why, wcap, "bad signature (alg %s)", alg);
		}
		return -EACCES;
	}
	jwt_free(jwt);
	/* The payload libjwt just verified, parsed by us so numbers may be reals
	 * and aud an array. */
	size_t plen = (size_t)(d2 - d1 - 1);
	uint8_t *pb = malloc(plen + 1);
	if (!pb)
		return -ENOMEM;
	long n = b64url_decode(d1 + 1, plen, pb, plen);
	json_t *cl = n > 0 ? json_loadb((const char *)pb, (size_t)n, 0, NULL) : NULL;
	free(pb);
	if (!json_is_object(cl)) {
		json_decref(cl);
		why_set(why, wcap, "malformed JWT payload");
		return -EACCES;
	}
	int rc = check_claims(c, cl, login_user, tenant, tcap, why, wcap);
	json_decref(cl);
	if (rc < 0 && tcap)
		tenant[0] = 0;
	return rc;
}
