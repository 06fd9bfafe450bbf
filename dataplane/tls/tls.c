/*
 * OpenSSL glue: contexts from the [tls] config and per-connection SSL
 * objects wired to memory BIOs.
 */
#include "dataplane/tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_ctx {
	SSL_CTX *ssl;
};

struct tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio;
};

const char *tls_last_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e) {
		snprintf(buf, len, "unknown TLS error");
		return buf;
	}
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

struct tls_ctx *tls_ctx_new_server(const char *cert, const char *key, char *err, size_t errlen)
{
	char eb[256];
	struct tls_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ssl = SSL_CTX_new(TLS_server_method());
	if (!c->ssl)
		goto fail;
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
		snprintf(err, errlen, "tls.cert_file %s: %s", cert, tls_last_error(eb, sizeof(eb)));
		goto fail_msg;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ssl) != 1) {
		snprintf(err, errlen, "tls.key_file %s: %s", key, tls_last_error(eb, sizeof(eb)));
		goto fail_msg;
	}
	return c;
fail:
	snprintf(err, errlen, "TLS setup: %s", tls_last_error(eb, sizeof(eb)));
fail_msg:
	tls_ctx_free(c);
	return NULL;
}

struct tls_ctx *tls_ctx_new_client(bool verify, const char *ca_file, char *err, size_t errlen)
{
	char eb[256];
	struct tls_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ssl = SSL_CTX_new(TLS_client_method());
	if (!c->ssl) {
		snprintf(err, errlen, "TLS setup: %s", tls_last_error(eb, sizeof(eb)));
		goto fail;
	}
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
	if (verify) {
		if (SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL) != 1) {
			snprintf(err, errlen, "tls.ca_file %s: %s", ca_file,
			         tls_last_error(eb, sizeof(eb)));
			goto fail;
		}
		SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	}
	return c;
fail:
	tls_ctx_free(c);
	return NULL;
}

int tls_ctx_require_client_cert(struct tls_ctx *c, const char *ca_file, const char *crl_file,
                                char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "heliosproxy";
	char eb[256];
	STACK_OF(X509_NAME) * names;

	if (SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL) != 1) {
		snprintf(err, errlen, "tls.client_ca_file %s: %s", ca_file,
		         tls_last_error(eb, sizeof(eb)));
		return -EINVAL;
	}
	/* tell clients which CAs we accept, so psql picks the right certificate */
	names = SSL_load_client_CA_file(ca_file);
	if (!names) {
		snprintf(err, errlen, "tls.client_ca_file %s: no CA certificate in it: %s", ca_file,
		         tls_last_error(eb, sizeof(eb)));
		return -EINVAL;
	}
	SSL_CTX_set_client_CA_list(c->ssl, names);
	if (crl_file && crl_file[0]) {
		X509_STORE *st = SSL_CTX_get_cert_store(c->ssl);
		X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());
		if (!lu || X509_load_crl_file(lu, crl_file, X509_FILETYPE_PEM) <= 0) {
			snprintf(err, errlen, "tls.client_crl_file %s: %s", crl_file,
			         tls_last_error(eb, sizeof(eb)));
			return -EINVAL;
		}
		/* the leaf only, as PostgreSQL's ssl_crl_file: a CRL per
		 * intermediate is not required */
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	}
	/* resumed sessions must carry the verified peer; needs a context id */
	SSL_CTX_set_session_id_context(c->ssl, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

int tls_ctx_use_client_cert(struct tls_ctx *c, const char *cert, const char *key, char *err,
                            size_t errlen)
{
	char eb[256];

	if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
		snprintf(err, errlen, "tls.server_cert_file %s: %s", cert,
		         tls_last_error(eb, sizeof(eb)));
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ssl) != 1) {
		snprintf(err, errlen, "tls.server_key_file %s: %s", key,
		         tls_last_error(eb, sizeof(eb)));
		return -EINVAL;
	}
	return 0;
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ssl);
	free(c);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, bool server, const char *host)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ssl = SSL_new(ctx->ssl);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		if (host && host[0]) {
			/* verify-full: an address is checked against the
			 * certificate's IP entries, a name against its DNS ones */
			unsigned char ip[16];
			if (inet_pton(AF_INET, host, ip) == 1 ||
			    inet_pton(AF_INET6, host, ip) == 1) {
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
			} else {
				SSL_set_tlsext_host_name(t->ssl, host);
				SSL_set1_host(t->ssl, host);
			}
		}
	}
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

int tls_feed(struct tls_conn *t, const uint8_t *p, size_t n)
{
	while (n) {
		int w = BIO_write(t->rbio, p, n > INT32_MAX ? INT32_MAX : (int)n);
		if (w <= 0)
			return -ENOMEM;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int tls_handshake(struct tls_conn *t)
{
	int r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return 1;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	return -EPROTO;
}

int tls_read(struct tls_conn *t, uint8_t *out, size_t cap)
{
	int r = SSL_read(t->ssl, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0)
		return r;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	return e == SSL_ERROR_ZERO_RETURN ? -ESHUTDOWN : -EPROTO;
}

int tls_write(struct tls_conn *t, const uint8_t *p, size_t n)
{
	while (n) {
		int w = SSL_write(t->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		if (w <= 0)
			return -EPROTO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

size_t tls_pending(struct tls_conn *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_drain(struct tls_conn *t, uint8_t *out, size_t cap)
{
	int r = BIO_read(t->wbio, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
	return r > 0 ? (size_t)r : 0;
}

/* Copies an ASN1 string when it is plain text that fits whole; false otherwise. */
static bool copy_name(const ASN1_STRING *a, char *out, size_t cap)
{
	const unsigned char *d = ASN1_STRING_get0_data(a);
	int n = ASN1_STRING_length(a);

	if (!d || n <= 0 || (size_t)n >= cap || memchr(d, '\0', (size_t)n))
		return false;
	memcpy(out, d, (size_t)n);
	out[n] = '\0';
	return true;
}

int tls_peer_names(struct tls_conn *t, struct tls_peer_names *out)
{
	X509 *x = SSL_get0_peer_certificate(t->ssl);
	GENERAL_NAMES *gens;

	memset(out, 0, sizeof(*out));
	if (!x)
		return -ENOENT;
	if (SSL_get_verify_result(t->ssl) != X509_V_OK)
		return -EACCES;
	X509_NAME *subj = X509_get_subject_name(x);
	/* the first CN, as PostgreSQL (X509_NAME_get_text_by_NID); one with a
	 * NUL inside is ignored, as PostgreSQL refuses it */
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i >= 0) {
		ASN1_STRING *a = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		unsigned char *u = NULL;
		int n = ASN1_STRING_to_UTF8(&u, a);
		if (n > 0 && (size_t)n < sizeof(out->cn) && !memchr(u, '\0', (size_t)n)) {
			memcpy(out->cn, u, (size_t)n);
			out->cn[n] = '\0';
		}
		OPENSSL_free(u);
	}
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int k = 0; gens && k < sk_GENERAL_NAME_num(gens); k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);
		if (out->n_san == TLS_PEER_MAX_SANS)
			break;
		if (g->type == GEN_DNS || g->type == GEN_EMAIL) {
			const ASN1_STRING *a = g->type == GEN_DNS ? g->d.dNSName : g->d.rfc822Name;
			if (copy_name(a, out->san[out->n_san], sizeof(out->san[0])))
				out->n_san++;
		}
	}
	GENERAL_NAMES_free(gens);
	return 0;
}

const char *tls_verify_error(struct tls_conn *t)
{
	long r = SSL_get_verify_result(t->ssl);
	if (r == X509_V_OK)
		return NULL;
	return X509_verify_cert_error_string(r);
}
