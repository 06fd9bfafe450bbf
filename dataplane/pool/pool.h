/*
 * Server pools, one per (node, database, user), shared by all workers.
 * max_pool_size caps connections across workers. The lock is taken only
 * when a client gets or gives back a server, never per message.
 */
#ifndef HELIOS_POOL_H
#define HELIOS_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pool;
struct client;
struct server;

enum pool_grant {
	POOL_GOT,     /* *out is an idle server with the client's signature */
	POOL_CONNECT, /* the caller may open a new connection (counted) */
	POOL_REPLACE, /* *out is an idle server to close; open a new one in its place */
	POOL_WAIT,    /* queued; a server or a permit arrives by cl_handoff_arrived */
};

struct pool_stats {
	int total, idle, waiting, active;
	uint64_t served; /* server hand-outs */
	uint64_t wait_timeouts;
};

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

enum pool_grant pool_acquire(struct pool *p, struct client *cl, int max_size, struct server **out);
/* A detached, reset server goes back: to the first waiter, or to the idle
 * list. False when the pool is over its (lowered) cap: close it instead. */
bool pool_release(struct pool *p, struct server *sv);
/* Connections in use (total - idle), read without the lock: a hint for
 * choosing the least busy replica. */
int pool_busy_hint(struct pool *p);
/* A counted connection (or a permit) is gone: passes the right to connect
 * to the first waiter while below max_size. */
void pool_drop(struct pool *p, int max_size);
/* Removes a queued client; false when it was already handed something. */
bool pool_cancel_wait(struct pool *p, struct client *cl);
void pool_note_timeout(struct pool *p);

/* Idle servers past idle_timeout (keeping min_idle) or lifetime, or whose
 * backend is gone (sv_alive), removed and uncounted; linked through
 * ->pool_next. */
struct server *pool_collect_expired(struct pool *p, const struct timespec *now, int idle_timeout,
                                    int lifetime, int min_idle);
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
/* Iterates over all pools (for maintenance and stats). */
struct pool *pool_first(void);
struct pool *pool_next_of(struct pool *p);
/* Calls fn for each idle server under the pool lock (reports). */
void pool_foreach_idle(struct pool *p, void (*fn)(struct server *sv, void *ud), void *ud);
/* Closes every idle server (shutdown); returns them linked via ->pool_next. */
struct server *pool_take_all_idle(struct pool *p);

#endif
