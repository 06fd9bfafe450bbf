/*
 * Query routing (the PIPE_AT_ROUTE stage, pipeline/stage_route.c): which
 * node serves the transaction that starts with a request.
 * Rules, in order (docs/routing.md):
 *   1. a hint in a comment: route=primary | replica | <node name>;
 *   2. [[schema_routes]]: the first route (file order) naming a table the
 *      statement touches; a write routed to a replica goes to the primary;
 *   3. read_write_split: read-only statements (and BEGIN READ ONLY) go to
 *      a replica, unless the client wrote one of their tables within
 *      read_your_writes_ms;
 *   4. everything else: the primary.
 * A replica is eligible when the routing table says it is healthy, it is
 * not drained, its lag is within max_replica_lag_ms (unknown lag counts as
 * eligible) and its circuit breaker lets traffic through; among those the
 * least busy wins, ties round robin. No eligible replica: the primary.
 * Session pooling always uses the primary. Analysis runs only when a
 * feature needs it (split, schema routes).
 *
 * The router decides from the request (struct req), the config, the
 * breakers (policy/) and the pools' busy hints; the control plane's table
 * and the drained nodes come through a source registered at start-up.
 * Its per-worker state (the table's copy, the analysis LRU, the
 * round-robin counter) is the calling thread's own.
 */
#ifndef HELIOS_ROUTE_H
#define HELIOS_ROUTE_H

#include "dataplane/policy/control.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct req;

#define ROUTE_HOLD (-2) /* no primary right now (failover): wait */
#define ROUTE_FAIL (-3) /* the chosen node cannot take it: error now */

/* struct route_node (a node as the data plane sees it, copied from the
 * control plane's table) is defined with that table, in policy/control.h. */

/* Where the router learns what the control plane says (registered by
 * main at start-up; any member may be NULL: no table, nothing drained,
 * every pool idle). */
struct route_source {
	/* the routing table's version (changes when the table does) */
	uint64_t (*version)(void);
	/* copies the table into out (at most max nodes); returns the count */
	size_t (*copy)(struct route_node *out, size_t max);
	bool (*any_drained)(void);
	bool (*node_drained)(const char *node_name);
	/* how busy r's pool on node is (lower is less busy) */
	int (*busy)(const struct req *r, int node);
};
void route_set_source(const struct route_source *src);

/* Node index for r's transaction, ROUTE_HOLD, or ROUTE_FAIL with a
 * message (SQLSTATE 08006). Reads r's mode, who, sql, r->pc (read your
 * writes, PIPE_RF_PRIMARY_ONLY). */
int route_pick(struct req *r, char *msg, size_t msglen);
/* The primary's index by the routing table (or the config), -1 if none. */
int route_primary(const struct cfg *c);
/* Refreshes the thread's copy of the routing table when it changed. */
void route_refresh(void);
/* Frees what the thread holds for routing. */
void route_worker_exit(void);
struct an_result;
/* The thread's cached analysis of sql (parsed once per distinct text);
 * NULL when out of memory. Valid until the next call on this thread. */
const struct an_result *route_analysis(const struct cfg *c, const char *sql, size_t len);

#endif
