/*
 * Server pools, one per (node, database, user, tenant), shared by all
 * workers. max_pool_size caps connections across workers. The lock is
 * taken only when a server is taken or given back, never per message.
 *
 * The pool is bookkeeping only: it names neither a client nor a server and
 * owns no socket. What it pools is a struct pool_item the owner (conn/)
 * embeds in its server and fills in before giving it back; who waits is a
 * struct pool_waiter the owner embeds in its client, told of a grant
 * through its granted() callback. It may call: libc and pthreads only; its
 * limit and worker count come in through pool_init.
 */
#ifndef HELIOS_POOL_H
#define HELIOS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pool;

/* A pooled connection as the pool sees it. The owner sets signature,
 * created and last_used before pool_release; next is the pool's. */
struct pool_item {
	struct pool_item *next;             /* idle list (or a returned list), pool lock */
	uint64_t signature;                 /* startup parameters it logged in with */
	struct timespec created, last_used; /* CLOCK_MONOTONIC */
};

enum pool_wait_state {
	POOL_W_NONE,   /* not in a pool's queue */
	POOL_W_QUEUED, /* queued (pool_acquire said POOL_WAIT) */
	POOL_W_HANDED, /* out of the queue, its grant on the way to granted() */
};

/* Someone waiting for a server. The owner sets signature, home and since
 * before pool_acquire and granted once; the rest is the pool's, written
 * under its lock. */
struct pool_waiter {
	struct pool_waiter *next; /* FIFO, pool lock */
	enum pool_wait_state state;
	uint64_t signature;    /* the item it wants */
	const void *home;      /* its worker: a release there prefers it */
	struct timespec since; /* CLOCK_MONOTONIC: its wait's start */
	/* Handed (state POOL_W_HANDED): an item with any signature (the
	 * owner checks it), or, item NULL and permit true, the right to open
	 * one counted connection. */
	struct pool_item *item;
	bool permit;
	/* Called without the pool lock on the granting thread, which may be
	 * another worker's. direct: that thread is the waiter's home and the
	 * caller's stack allows acting at once (a release); otherwise the
	 * owner must move on on its own thread (a mailbox post). */
	void (*granted)(struct pool_waiter *wt, bool direct);
};

enum pool_grant {
	POOL_GOT,     /* *out is an idle item with the waiter's signature */
	POOL_CONNECT, /* the caller may open a new connection (counted) */
	POOL_REPLACE, /* *out is an idle item to close; open a new one in its place */
	POOL_WAIT,    /* queued; an item or a permit arrives through granted() */
};

struct pool_stats {
	int total, idle, waiting, active;
	uint64_t served; /* server hand-outs */
	uint64_t wait_timeouts;
};

/* Start-up, before the first pool_lookup: each pool carries n_workers
 * blocks of ctr_size bytes (64-byte aligned, zeroed; opaque here: the
 * reporter's per-worker counters, see pool_ctr); max_size() is the global
 * limit (pool_mode.max_pool_size of the live config), read at each
 * pool_max. Without it: one block of 64 bytes and no global limit. */
void pool_init(int n_workers, size_t ctr_size, int (*max_size)(void));

/* Finds or creates the pool; never fails except for memory (NULL). */
/* The pool of (database, user, tenant id or "", node); cap: its own limit
 * on server connections (a tenant's), 0 = only pool_mode.max_pool_size. */
struct pool *pool_lookup(const char *database, const char *user, const char *tenant, int node_idx,
                         int cap);
const char *pool_tenant(const struct pool *p);
/* The pool's limit now: max_pool_size, or its own cap when lower. */
int pool_max(const struct pool *p);
const char *pool_database(const struct pool *p);
const char *pool_user(const struct pool *p);
int pool_node(const struct pool *p);

/* issue 19: a pool's own limits, from its [[databases]] / [[users]] entry
 * and the pool_mode keys; set after each pool_lookup (they follow the
 * config). size 0 = the global max_size(); min -1 = the caller's default;
 * db_cap / user_cap: the most connections of all pools of its database /
 * user together, 0 = none. */
struct pool_limits {
	int size, min, reserve, db_cap, user_cap;
};
void pool_set_limits(struct pool *p, const struct pool_limits *l);
int pool_min(const struct pool *p, int dflt);
/* The limits last set (zeros when none were). */
void pool_get_limits(const struct pool *p, struct pool_limits *l);
int pool_reserve(const struct pool *p);
/* A queued waiter that has waited reserve_pool_timeout: a permit beyond
 * the pool's size (up to size + reserve, within the caps); true when
 * granted (granted() has been called). */
bool pool_try_reserve(struct pool *p, struct pool_waiter *wt);
/* p has waiters held by a database/user cap: takes the coldest idle item of
 * a sibling pool (same database or user) off its idle list, still counted,
 * for the caller to close (its pool_drop passes the slot on). NULL when
 * there is none. */
struct pool_item *pool_evict_for(struct pool *p);
/* Slots under the shared caps may have freed: permits to the first waiter
 * of p and of each sibling pool that has room. */
void pool_group_wake(struct pool *p);

/* wt gets an idle item of its signature, a right to connect, an item to
 * replace, or a place in the queue (FIFO: nobody jumps it). wt NULL (an
 * internal request, signature 0): never queued; POOL_WAIT means try later. */
enum pool_grant pool_acquire(struct pool *p, struct pool_waiter *wt, int max_size,
                             struct pool_item **out);
/* A detached, reset item goes back: to a waiter (the first one whose home
 * is self, if the oldest has waited at most a grace period; else the
 * first), or to the idle list. False when the pool is over its (lowered)
 * cap: close it instead. */
bool pool_release(struct pool *p, struct pool_item *it, const void *self);
/* Connections in use (total - idle), read without the lock: a hint for
 * choosing the least busy replica. */
int pool_busy_hint(struct pool *p);
/* A counted connection (or a permit) is gone: passes the right to connect
 * to the first waiter while below max_size. */
void pool_drop(struct pool *p, int max_size);
/* A connection that arrived logged in and in use (online restart: handed
 * over by the old process) is counted, above max_size if need be: the
 * pool releases the excess as it comes back (pool_release). */
void pool_adopt(struct pool *p);
/* Removes a queued waiter; false when it was already handed something
 * (granted() is then on its way). */
bool pool_cancel_wait(struct pool *p, struct pool_waiter *wt);
void pool_note_timeout(struct pool *p);

/* Idle items past idle_timeout (keeping min_idle) or lifetime, or that
 * alive() says are gone, removed and uncounted; linked through ->next.
 * alive runs under the pool lock. */
struct pool_item *pool_collect_expired(struct pool *p, const struct timespec *now, int idle_timeout,
                                       int lifetime, int min_idle,
                                       bool (*alive)(struct pool_item *it));
/* True (and counted) when the pool should open one more warm connection. */
bool pool_want_warm(struct pool *p, int min_idle, int max_size);
/* Startup packet to warm with (the last one used), copied; NULL if none yet. */
char *pool_warm_startup(struct pool *p, uint32_t *len, uint64_t *sig);
void pool_remember_startup(struct pool *p, const char *pkt, uint32_t len, uint64_t sig);

/* ParameterStatus values a server of this pool reported at login, as
 * "name\0value\0..." (len bytes): transaction pooling answers a login
 * from them without taking a server. */
void pool_remember_params(struct pool *p, const char *blob, uint32_t len);
/* A malloc'd copy, or NULL when no server has logged in yet. */
char *pool_params_copy(struct pool *p, uint32_t *len);

void pool_get_stats(struct pool *p, struct pool_stats *st);
/* The per-worker block of worker widx (clamped), and how many there are
 * (report/stats.h gives the block its type). */
struct pool_ctr;
struct pool_ctr *pool_ctr(struct pool *p, int widx);
int pool_n_ctr(const struct pool *p);
/* Iterates over all pools (for maintenance and stats). */
struct pool *pool_first(void);
struct pool *pool_next_of(struct pool *p);
/* Calls fn for each idle item under the pool lock (reports). */
void pool_foreach_idle(struct pool *p, void (*fn)(struct pool_item *it, void *ud), void *ud);
/* Takes every idle item out, uncounted (shutdown, drain); linked via ->next. */
struct pool_item *pool_take_all_idle(struct pool *p);

/* RECONNECT (admin console): connections of p created before before_ns
 * (monotonic) are closed when released instead of pooled; 0 = none.
 * pool_retire_ns is one relaxed load, read on every release. */
void pool_retire(struct pool *p, int64_t before_ns);
int64_t pool_retire_ns(const struct pool *p);

#endif
