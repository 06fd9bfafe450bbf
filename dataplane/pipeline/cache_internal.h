/*
 * Private to the result cache's files (cache.c: the store, invalidation,
 * the response tap, catalog loads; stage_cache.c: the lookup stage).
 */
#ifndef HELIOS_CACHE_INTERNAL_H
#define HELIOS_CACHE_INTERNAL_H

#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/engine/rcache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_FLIGHT_MAX_NS (30ull * 1000000000ull) /* a leader gone this long is abandoned */

extern struct rc_store *cache_store;
extern uint64_t cache_hash_key[2];
extern uint64_t cache_n_uncacheable;

/* A client's answer being recorded. */
struct fill {
	bool bad;
	uint64_t hash, flight, ttl_ns, fp;
	uint8_t *key;
	size_t key_len;
	struct rc_deps deps;
	uint8_t *buf;
	size_t len, cap, max;
};

/* What the stage decided to record, until the client's server comes. */
struct cache_lead {
	uint64_t req_hash; /* of the request's bytes: still the one at the head? */
	uint32_t req_len;
	uint64_t hash, flight, ttl_ns, fp;
	uint8_t *key;
	size_t key_len;
	struct rc_deps deps;
};

/* The write effects of a statement text. */
struct wsum {
	uint64_t shape, catver;
	bool used, epoch, ddl;
	uint8_t n;
	uint32_t ids[8];
};

/* One client's cache state (its pipeline slot's pointer). */
struct cache_cl {
	struct wsum unnamed; /* what its unnamed statement writes */
	bool unnamed_set;
	struct cache_lead *lead; /* record the answer of the request at the head */
	struct fill *fill;       /* that answer, being recorded */
	struct fill *tee;        /* takes the current message's body */
	bool arming;
	/* tables written by its open transaction: bumped again at each
	 * ReadyForQuery until it ends */
	uint32_t wr_n;
	uint32_t wr[16];
	bool wr_all, wr_ddl;
};

static inline void cache_count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

uint64_t cache_now_ns(void);
uint64_t cache_key_hash(const uint8_t *p, size_t n);
struct cache_cl *cache_cl_of(union pipe_slot *s, bool create);
int cache_worker_idx(void);
/* Aborts a flight and wakes its waiters. */
void cache_flight_abort(uint64_t flight);
void cache_lead_free(struct cache_cl *cc);
/* Starts a catalog load when due; true when the request must wait for it. */
bool cache_catalog_wait(const struct req *r);
/* The token requests waiting for a catalog park on. */
extern const char cache_catalog_token[];
/* Invalidation of a statement sent to a server (PEV_QUERY_START). */
void cache_on_start(const struct pipe_event *ev, union pipe_slot *slot);
void cache_client_free(union pipe_slot *slot);
void cache_stage_worker_exit(void);

#endif
