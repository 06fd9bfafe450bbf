/*
 * TLS over memory BIOs, so the same code runs on the io_uring and epoll
 * backends: raw bytes received are fed in, plaintext comes out, and
 * ciphertext to send is drained from the connection.
 */
#ifndef HELIOS_TLS_H
#define HELIOS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls_conn;

struct tls_ctx *tls_ctx_new_server(const char *cert, const char *key, char *err, size_t errlen);
struct tls_ctx *tls_ctx_new_client(bool verify, const char *ca_file, char *err, size_t errlen);

/*
 * Client certificates (tls.client_mode verify-ca / verify-full): clients must
 * present a certificate chaining to ca_file; with crl_file (may be NULL or "")
 * the leaf is also checked against that CRL (X509_V_FLAG_CRL_CHECK). A client
 * without a certificate or with a bad one fails the handshake; tls_verify_error
 * then says why. Returns 0 or -EINVAL (err names the key and file).
 */
int tls_ctx_require_client_cert(struct tls_ctx *c, const char *ca_file, const char *crl_file,
                                char *err, size_t errlen);
/*
 * The proxy's own certificate and key shown to servers that ask for one
 * (pg_hba `cert` or clientcert=). Returns 0 or -EINVAL (err names the file).
 */
int tls_ctx_use_client_cert(struct tls_ctx *c, const char *cert, const char *key, char *err,
                            size_t errlen);
void tls_ctx_free(struct tls_ctx *c);

/* server = we accept the handshake (client side of the proxy). host is the
 * name to verify for outgoing connections (NULL otherwise). */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, bool server, const char *host);
void tls_conn_free(struct tls_conn *t);

/* Feeds received ciphertext. Returns 0 or -ENOMEM. */
int tls_feed(struct tls_conn *t, const uint8_t *p, size_t n);
/* Drives the handshake: 1 done, 0 needs more input, <0 failed. */
int tls_handshake(struct tls_conn *t);
/* Reads plaintext: >0 bytes, 0 nothing available, <0 error/closed. */
int tls_read(struct tls_conn *t, uint8_t *out, size_t cap);
/* Encrypts plaintext (all of it). Returns 0 or <0. */
int tls_write(struct tls_conn *t, const uint8_t *p, size_t n);
/* Ciphertext waiting to be sent. */
size_t tls_pending(struct tls_conn *t);
size_t tls_drain(struct tls_conn *t, uint8_t *out, size_t cap);
#define TLS_PEER_NAME_MAX 256
#define TLS_PEER_MAX_SANS 8

/* The verified client certificate's names, for the cert auth method. */
struct tls_peer_names {
	char cn[TLS_PEER_NAME_MAX];                     /* subject CN, "" if none */
	size_t n_san;                                   /* entries in san[] */
	char san[TLS_PEER_MAX_SANS][TLS_PEER_NAME_MAX]; /* DNS and email SANs, in order */
};
/*
 * After a completed handshake: 0 and the names if the peer presented a
 * certificate that verified; -ENOENT if it presented none; -EACCES if it did
 * not verify. Names with embedded NULs or longer than TLS_PEER_NAME_MAX - 1
 * are left out (never truncated, so a name cannot be forged by truncation).
 */
int tls_peer_names(struct tls_conn *t, struct tls_peer_names *out);
/* Why the peer's certificate was refused (OpenSSL's verify result text). */
const char *tls_verify_error(struct tls_conn *t);

/* Last error text for logs. */
const char *tls_last_error(char *buf, size_t len);

#endif
