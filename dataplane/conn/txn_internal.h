/*
 * Private to the transaction-pooling files (txn.c, txn_track.c): the
 * output builder for client-bound bytes, the request queue and the
 * helpers both sides use.
 */
#ifndef HELIOS_TXN_INTERNAL_H
#define HELIOS_TXN_INTERNAL_H

#include "common/sbuf.h"
#include "dataplane/conn/conn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes for the client built from a received chunk: zero-copy while the
 * output is an unbroken prefix of the chunk, copied once anything is
 * dropped or added. */
struct outb {
	struct io_chunk *c;
	size_t zc_end; /* output == c->data[c->off .. zc_end) while !copying */
	bool copying;
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

/* Adds bytes of the proxy's own to the output (copying from then on). */
void tx_ob_synth(struct outb *o, const void *p, size_t n);
/* Queues a request sent to sv with what happens to its answer. */
int tx_rq_push(struct server *sv, uint8_t kind, uint8_t act, uint8_t synth, uint8_t flags,
               uint64_t key);
/* Appends a message header (type, length of body_len + 4) to b. */
void tx_msg_hdr(struct sbuf *b, uint8_t type, uint32_t body_len);
/* Answers a refused query locally: ErrorResponse then ReadyForQuery. */
void tx_refuse(struct outb *local, char status, const char *sqlstate, const char *msg,
               const char *hint);

/* txn_track.c: follows what a simple query does to session state (settings,
 * prepared statements, LISTEN, pins); may answer it locally (into local) or
 * add SQL to send first (into b). False when the query is answered here and
 * must not go to the server. */
bool tx_track_query(struct client *cl, struct server *sv, const char *sql, uint32_t len,
                    struct outb *local, struct sbuf *b);

/* txn_track.c, the extended protocol: a Parse's text is checked once
 * (sqlc_maybe_interesting, as a Query's); a Bind ties a portal to a text
 * that may change session state; the Execute of that portal has its
 * effect tracked (pins, settings) as a Query of the same text would.
 * st is the client's named statement (NULL for the unnamed one). */
void tx_track_parse(struct client *cl, const char *name, struct prep_stmt *st, const char *sql,
                    uint32_t len);
void tx_track_bind(struct client *cl, const char *portal, const char *stmt);
/* May add statements to run before the Execute to b (SQL EXECUTE of a
 * prepared statement another client left on the server). */
void tx_track_execute(struct client *cl, struct server *sv, const char *portal, struct sbuf *b);
void tx_track_close_portal(struct client *cl, const char *portal);
void tx_track_free(struct client *cl);

/* txn_gate.c: rate limits at the message m (total bytes) that starts a
 * query: 1 to go on, 0 to stop here (throttled: the worker wakes the
 * client), -1 when the message was consumed (refused, or dropped with its
 * batch). */
int tx_rate_gate(struct client *cl, struct server *sv, const uint8_t *m, uint32_t total,
                 struct outb *local);
/* Statement rewriting applies to this client. */
bool tx_rewrite_active(const struct client *cl);
/* Rewrites the Query/Parse messages at the head of the client's buffer
 * that it has not looked at yet. */
void tx_rewrite_input(struct client *cl);

#endif
