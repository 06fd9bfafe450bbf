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
/* Last error text for logs. */
const char *tls_last_error(char *buf, size_t len);

#endif
