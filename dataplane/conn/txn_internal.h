/*
 * Private to the transaction-pooling files (txn.c, txn_track.c): the
 * output builder for client-bound bytes, the request queue and the
 * helpers both sides use.
 */
#ifndef HELIOS_TXN_INTERNAL_H
#define HELIOS_TXN_INTERNAL_H

#include "common/sbuf.h"
#include "dataplane/conn/conn_internal.h"

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
/* A stage refused a message inside an extended batch whose earlier
 * messages already went to the server (r->starts false, a server bound).
 * The server answers those, and ends their implicit transaction, only at
 * the batch's Sync: an error sent now would come before their answers and
 * leave them to the client's next request, and a Sync sent on would commit
 * what PostgreSQL rolls back after an error. So the client is closed with
 * the stage's SQLSTATE and message (its server goes with the open batch,
 * as when a client leaves mid-batch); one log line. */
void tx_refuse_mid_batch(struct client *cl, const struct pipe_error *err);
/* Answers a refused query locally: ErrorResponse then ReadyForQuery (a
 * PEV_ERROR for cl). */
void tx_refuse(struct client *cl, struct outb *local, char status, const char *sqlstate,
               const char *msg, const char *hint);

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

/* txn_track.c: a client's settings (cl->want) change only when PostgreSQL
 * made the change its session's: a SET, RESET, RESET ALL or DISCARD ALL
 * is queued when sent (attached to its request by the flag RQ_F_GUC, an
 * id and the statement's place in a Query), becomes done at its
 * CommandComplete, and is applied once its transaction commits (a
 * ReadyForQuery 'I', or a COMMIT inside a Query); an error or a ROLLBACK
 * drops it. Nothing is allocated for a client that never changes a
 * setting. */
enum gp_stage {
	GP_SENT,    /* its statement has not completed */
	GP_DONE,    /* completed, after the transaction's latest SAVEPOINT */
	GP_DONE_SP, /* completed before a SAVEPOINT that followed it */
	GP_AMBIG,   /* done before a savepoint, then a ROLLBACK [TO SAVEPOINT] */
};
enum gp_kind { GP_SET, GP_RESET, GP_RESET_ALL };
struct gp_op {
	uint32_t req;  /* the request it came with (tx_gpend.next_req when queued) */
	uint32_t stmt; /* its statement's place in that request */
	uint8_t stage, kind;
	char *name;  /* GP_SET, GP_RESET */
	char *value; /* GP_SET: the statement text */
};
struct tx_gpend {
	struct gp_op *ops; /* in the order sent */
	int n, cap;
	uint32_t next_req; /* id of the next flagged request */
	uint32_t cur_req;  /* id of the oldest flagged request still queued */
	uint32_t cur_stmt; /* its statements completed so far */
	bool open;         /* ops queued for a request not yet pushed */
};
/* RQ_F_GUC when the request about to be queued carries changes. */
uint8_t tx_guc_flag(struct client *cl);
/* A request flagged RQ_F_GUC left the queue: what of it has not completed
 * never will. */
void tx_guc_popped(struct client *cl);
/* A CommandComplete (tag: its body when captured, else NULL); guc_head:
 * it completes a statement of the flagged request at the head. */
void tx_guc_complete(struct client *cl, struct server *sv, bool guc_head, const uint8_t *tag,
                     uint32_t tag_len);
/* An ErrorResponse: the transaction aborts. */
void tx_guc_error(struct client *cl);
/* A ReadyForQuery with this transaction status. */
void tx_guc_ready(struct client *cl, struct server *sv, char status);
/* Forgets every pending change (a new server is bound). */
void tx_guc_reset(struct client *cl);

/* txn_gate.c: conn/'s side of the query pipeline. */
/* Runs the PIPE_AT_MSG stages on the client message at m (avail of its
 * bytes there; buffered: m is in cl->ep.in, where a stage may replace it,
 * so the caller re-reads the buffer). 1: go on with the message; 0: stop
 * here (parked: woken later); -1: consumed (answered or refused into
 * local, or dropped with its batch); -2: refused inside a batch whose
 * earlier messages went to the server, and the client closed
 * (tx_refuse_mid_batch). */
int tx_msg_stages(struct client *cl, struct server *sv, const uint8_t *m, uint32_t avail,
                  bool buffered, struct outb *local);
void tx_gate_worker_exit(void);

#endif
