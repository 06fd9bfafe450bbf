/*
 * Query result cache (every pooling mode; see docs/cache.md). The store
 * (pipeline/engine/rcache) is shared by every worker; this module decides
 * what may be cached, builds keys, answers hits, records a miss's answer
 * as conn/ relays it, and invalidates on writes. Off unless [cache]
 * enabled: then no pipeline has its stage and conn/'s taps test one
 * pointer.
 *
 * How it plugs in (pipeline/pipeline.h):
 *  - the stage (stage_cache, PIPE_AT_REQUEST): a hit returns ANSWERED with
 *    the stored bytes in r->out; an identical query already running
 *    returns PARK on a wake token (single flight); a miss CONTINUEs,
 *    routed to the primary, and arms recording;
 *  - events: PEV_QUERY_START (a Query, Parse or Bind sent to a server)
 *    bumps the generations of the tables a write changes;
 *  - the response tap below: conn/ owns the server's bytes and shows them
 *    to the cache (which copies what it records) with the client's slot.
 * Nothing here names struct client or struct server.
 *
 * What may be cached is decided from the server's own catalog
 * (pg_proc.provolatile, pg_class), read with an internal request
 * (pipeline/ireq.h: a pooled server of the database, as the client's
 * user) the first time a client of it asks for a server, and again after
 * DDL through the proxy or when older than CACHE_CATALOG_MAX_AGE.
 *
 * May call: pipeline/engine (rcache, analyze, hints, shape), the
 * analytics table (hits per fingerprint), route_analysis, ireq, policy/
 * (tenant ids). Worker wake-ups go through the hooks conn/ installs.
 */
#ifndef HELIOS_CACHE_H
#define HELIOS_CACHE_H

#include "dataplane/pipeline/pipeline.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/helios.pb-c.h"

struct cfg;

#define CACHE_CATALOG_MAX_AGE_SECS 300
#define CACHE_WAIT_MAX_SECS        10 /* a parked request then asks a server itself */

/* Creates the shared store (main, before any other thread; c may be NULL
 * when the configuration comes from the control plane: defaults until
 * cache_apply_limits). */
int cache_start(const struct cfg *c);
void cache_stop(void);

/* What conn/ provides (installed at start-up; unit tests install fakes):
 * the calling worker's index, and waking a worker whose clients are
 * parked on a wake token (they run the stage again, once without
 * waiting). */
struct cache_hooks {
	int (*worker_idx)(void);
	void (*wake)(int worker_idx);
};
void cache_set_hooks(const struct cache_hooks *h);

/* rq flag of a request whose answer is being recorded (conn.h has the
 * others). */
#define RQ_F_FILL 4u

/* ---- the response tap: s is the client's slot (pc.slot[PIPE_SLOT_CACHE]) */
/* Before conn/ sends the client's first request to its server (data[0..len)
 * is what it is about to run): if the stage chose to record it and it is
 * still the request at the head, on the primary, outside a transaction,
 * recording starts. */
void cache_arm(union pipe_slot *s, const struct cfg *c, bool primary, char tx_status,
               const uint8_t *data, uint32_t len);
/* The messages conn/ queues belong to the recorded request until it ends. */
bool cache_arming(const union pipe_slot *s);
/* The stage chose to record the request at the head (cache_arm is due). */
bool cache_leading(const union pipe_slot *s);
void cache_request_end(union pipe_slot *s);
/* Server -> client: a message header (fwd: the client's own request's
 * answer), its body bytes, a synthesized answer, and the ReadyForQuery
 * ending a request with these rq flags and this status. */
void cache_tee_header(union pipe_slot *s, uint8_t flags, uint8_t type, bool fwd,
                      const uint8_t hdr[5]);
void cache_tee_body(union pipe_slot *s, const uint8_t *p, size_t n);
void cache_tee_synth(union pipe_slot *s, uint8_t type);
void cache_ready(union pipe_slot *s, uint8_t flags, char status);
/* The answer being recorded will not complete (replay, release). */
void cache_fill_abort(union pipe_slot *s);
/* The client's server went away with its requests (close, reset): what
 * its open transaction wrote is invalidated again. */
void cache_server_abort(union pipe_slot *s);

/* A setting that cannot change a query's rows or their text form (left
 * out of the key; a session may SET it and keep using the cache). */
bool cache_setting_neutral(const char *name);

/* Live config: the store's limits. */
void cache_apply_limits(const struct cfg *c);
/* The calling worker thread's scratch and catalog references go. */
void cache_worker_exit(void);

/* helioctl cache flush [TABLE]; returns entries removed. */
size_t cache_flush(const char *table);
/* For the stats report and /metrics; NULL before cache_start. enabled:
 * whether the current configuration has it on. */
Helios__CacheStats *cache_stats_msg(void);

#endif
