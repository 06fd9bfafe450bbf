/*
 * Query result cache glue (transaction and statement pooling; see
 * docs/cache.md). The store (pipeline/rcache) is shared by every worker;
 * this file decides what may be cached, builds keys, answers hits from a
 * client's buffer without a server, records a miss's answer as it passes
 * to the client, and invalidates on writes. Off unless [cache] enabled:
 * then every hook below is one test of a pointer or a flag.
 *
 * What may be cached is decided from the server's own catalog
 * (pg_proc.provolatile, pg_class), read with an internal request
 * (pipeline/ireq.h: a pooled server of the database, as the client's
 * user) the first time a client of it asks for a server, and again after
 * DDL through the proxy or when older than CACHE_CATALOG_MAX_AGE.
 */
#ifndef HELIOS_CACHE_H
#define HELIOS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/helios.pb-c.h"

struct cfg;
struct client;
struct server;
struct worker;

#define CACHE_CATALOG_MAX_AGE_SECS 300

/* Creates the shared store (main, before any other thread; c may be NULL
 * when the configuration comes from the control plane: defaults until
 * cache_apply_limits). */
int cache_start(const struct cfg *c);
void cache_stop(void);

enum cache_verdict {
	CACHE_PASS,     /* not answered: get a server */
	CACHE_ANSWERED, /* the request at the head of the buffer was answered and consumed */
	CACHE_PARKED,   /* an identical query is running: wait for its answer */
};
/* A client without a server, with a whole request at the head of its
 * buffer. */
enum cache_verdict cache_try(struct client *cl);

/* rq flags the cache uses (dataplane/conn/conn.h has the others). */
#define RQ_F_FILL 4u /* part of a request whose answer is being recorded */

/* Before run_msgs sends the client's first request on sv (data[0..len) is
 * what it is about to run): if cache_try said to record it and it is
 * still the request at the head, arm the recording. */
void cache_arm(struct client *cl, struct server *sv, const uint8_t *data, uint32_t len);
/* Client -> server: the text of a simple Query, a Parse (named or not),
 * or a Bind (text of the statement it binds, NULL for the unnamed one):
 * invalidates what a write would change, at once and again when its
 * transaction ends. */
void cache_note_query(struct client *cl, struct server *sv, const char *sql, size_t len);
void cache_note_parse(struct client *cl, struct server *sv, bool named, const char *sql,
                      size_t len);
void cache_note_bind(struct client *cl, struct server *sv, const char *sql, size_t len);
/* A statement whose text the proxy does not see (a message too large to
 * assemble, streamed through): it may write anything. unnamed_parse: it
 * is the unnamed statement's Parse (its Binds write anything). */
void cache_note_unseen(struct client *cl, struct server *sv, bool unnamed_parse);
/* A request ends (the Query or the Sync was queued): arming stops. */
void cache_request_end(struct server *sv);
bool cache_arming(const struct server *sv);

/* Server -> client: a message header (act: RQ_FWD or not), its body
 * bytes, a synthesized answer, and the ReadyForQuery ending a request
 * with these rq flags. */
void cache_tee_header(struct server *sv, uint8_t flags, uint8_t type, bool fwd,
                      const uint8_t hdr[5]);
void cache_tee_body(struct server *sv, const uint8_t *p, size_t n);
void cache_tee_synth(struct server *sv, uint8_t type);
void cache_ready(struct server *sv, uint8_t flags, char status);
/* The answer being recorded will not complete (replay, release). */
void cache_fill_abort(struct server *sv);
/* The server's requests were abandoned (close, reset). */
void cache_server_abort(struct server *sv);
/* Live config: the store's limits. */
void cache_apply_limits(const struct cfg *c);
void cache_server_free(struct server *sv);
void cache_client_free(struct client *cl);

/* A woken waiter (its worker's thread): tries again. */
void cache_worker_wake(struct worker *w);
/* Maintenance tick: waiters parked too long try on their own. */
void cache_worker_tick(struct worker *w, const struct timespec *now);
void cache_worker_exit(struct worker *w);

/* helioctl cache flush [TABLE]; returns entries removed. */
size_t cache_flush(const char *table);
/* For the stats report and /metrics; NULL before cache_start. */
Helios__CacheStats *cache_stats_msg(void);

#endif
