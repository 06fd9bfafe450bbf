/*
 * A pool's traffic counters: one cache-line-aligned block per (pool,
 * worker), written only by that worker (conn/, on its own thread) with a
 * relaxed load + store, no lock and no atomic read-modify-write; read by
 * report/ with relaxed loads. A sum is a moment's view, never torn per
 * field. The pool owns the blocks (pool_ctr()); conn/ counts into them and
 * report/ sums them: counters flow upward as values, not as calls.
 */
#ifndef HELIOS_POOL_CTR_H
#define HELIOS_POOL_CTR_H

#include <stdint.h>

struct pool;

#define POOL_CTR_NBOUNDS 15
/* Histogram bucket bounds in microseconds, ascending (report/ shows them
 * in seconds); the last bucket holds everything above. */
#define POOL_CTR_BOUNDS_US                                                                         \
	{                                                                                          \
		100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,  \
		    2500000, 5000000, 10000000                                                     \
	}

struct pool_ctr {
	uint64_t queries, xacts, bytes_in, bytes_out;
	uint64_t query_us, xact_us, wait_us;
	uint64_t assigns; /* a client got a server (SHOW STATS server_assignment_count) */
	uint64_t cparse, sparse, binds; /* named statements: client Parse, Parse sent, Bind */
	uint64_t logins;                /* clients that logged in to this pool */
	uint64_t qh[POOL_CTR_NBOUNDS + 1], wh[POOL_CTR_NBOUNDS + 1];
} __attribute__((aligned(64)));

/* pool.c: the block of worker widx (clamped) in pool p. */
struct pool_ctr *pool_ctr(struct pool *p, int widx);
int pool_n_ctr(const struct pool *p);

static inline void ctr_add(uint64_t *f, uint64_t v)
{
	__atomic_store_n(f, __atomic_load_n(f, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* The histogram bucket of a duration. */
static inline int ctr_bucket(uint64_t us)
{
	static const uint64_t bounds[POOL_CTR_NBOUNDS] = POOL_CTR_BOUNDS_US;
	int i = 0;
	while (i < POOL_CTR_NBOUNDS && us > bounds[i])
		i++;
	return i;
}

#endif
