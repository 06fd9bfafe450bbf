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
