/*
 * Private to conn/: its side of the PIPE_AT_REQUEST stages (the result
 * cache's lookup), of the query events (txn_req.c), and the cache's
 * response tap helpers.
 */
#ifndef HELIOS_TXN_REQ_H
#define HELIOS_TXN_REQ_H

#include "dataplane/conn/conn_internal.h"
#include "dataplane/pipeline/cache.h"

#include <stdbool.h>
#include <stdint.h>

/* The client's cache slot, NULL when its pipeline has no cache (one test
 * on the relay path). */
static inline union pipe_slot *tx_cache_slot(const struct server *sv)
{
	struct client *cl = sv->client;
	return cl && cl->pc.slot[PIPE_SLOT_CACHE].p ? &cl->pc.slot[PIPE_SLOT_CACHE] : NULL;
}

/* Parked by the request stages on a wake token (counted in the worker's
 * cache_waiters; their wait is bounded, so wake_ns is set): not a session
 * waiting for its server's answers (session.c parks on its server, with
 * no time). */
static inline bool tx_cache_parked(const struct client *c)
{
	return c->pc.parked == PIPE_WAKE_TOKEN + 1 && c->pc.wake_ns;
}

enum tx_req_verdict {
	TX_REQ_PASS,     /* get a server */
	TX_REQ_ANSWERED, /* the request at the head was answered and consumed */
	TX_REQ_PARKED,   /* woken later */
};
/* A client without a server, with a whole request at the head of its
 * buffer: the PIPE_AT_REQUEST stages decide. */
enum tx_req_verdict tx_request_stages(struct client *cl);

/* Query events (PEV_QUERY_START / PEV_QUERY_DONE). A statement goes to sv:
 * type 'Q' (sql its text, whole: all of it seen), 'P' and 'B' (stmt_name:
 * the statement, "" unnamed, NULL unknown; sql its text when known), 'S'
 * (a Sync). */
void tx_ev_start(struct client *cl, struct server *sv, uint8_t type, const char *stmt_name,
                 const char *sql, size_t len, bool whole);
/* cl got sv: sv follows its statements' completion when someone listens. */
void tx_ev_bind(struct client *cl, struct server *sv);
/* No statement of sv awaits its ReadyForQuery (online restart: it may move). */
bool tx_ev_idle(const struct server *sv);
/* Server -> client: a CommandComplete or ErrorResponse body for the oldest
 * statement, and the ReadyForQuery that completes it. */
void tx_ev_response(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len);
void tx_ev_ready(struct client *cl, struct server *sv);
void tx_ev_server_free(struct server *sv);
void tx_req_worker_exit(void);

#endif
