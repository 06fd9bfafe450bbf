/*
 * Private to conn/'s online restart (takeover.c, takeover_rec.c): the
 * takeover socket's message types and the records' writer and reader.
 */
#ifndef HELIOS_TAKEOVER_REC_H
#define HELIOS_TAKEOVER_REC_H

#include "dataplane/conn/conn_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TKO_MAGIC   0x4b545048u /* "HPTK" */
#define TKO_VERSION 1u
/* A CLIENT record travels as one SOCK_SEQPACKET message, which the
 * socket's send buffer bounds; a client whose state is larger stays. */
#define TKO_REC_MAX     (160u * 1024u)
#define TKO_MAX_LISTEN  64
#define TKO_READY_SECS  60 /* the new process's start-up (control plane, workers) */
#define TKO_LISTEN_SECS 30 /* the old process stopping its admin server and control plane */

enum tko_type {
	TKO_HELLO = 'H',
	TKO_LISTEN = 'L',
	TKO_READY = 'R',
	TKO_CLIENT = 'C',
	TKO_SERVER = 'S', /* an idle pooled server (transaction pooling) */
	TKO_END = 'E',
	TKO_CANCEL = 'K', /* new -> old: a CancelRequest for a client still there */
	TKO_REFUSED = 'X',
};

/* A record being written (grows; oom once an allocation failed). */
struct tko_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void tko_w_put(struct tko_wbuf *b, const void *p, size_t n);
void tko_w_u32(struct tko_wbuf *b, uint32_t v);
void tko_w_blob(struct tko_wbuf *b, const void *p, uint32_t n);
/* A string with its NUL (the reader hands out pointers into the record). */
void tko_w_str(struct tko_wbuf *b, const char *s);

/* A record being read: bad once anything was missing or malformed (every
 * later read then returns 0 / "" / NULL). */
struct tko_rbuf {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
};
uint32_t tko_r_u32(struct tko_rbuf *b);
const uint8_t *tko_r_blob(struct tko_rbuf *b, uint32_t *n);
const char *tko_r_str(struct tko_rbuf *b);

/* CLIENT and SERVER records appended to b (0 or -errno). */
int tko_pack_client_into(const struct client *cl, struct tko_wbuf *b);
int tko_pack_server_into(const struct server *sv, const char *node, struct tko_wbuf *b);

#endif
