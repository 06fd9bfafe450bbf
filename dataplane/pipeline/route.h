/*
 * Query routing for transaction and statement pooling: which node serves
 * the transaction that starts with the client's buffered messages.
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
 */
#ifndef HELIOS_ROUTE_H
#define HELIOS_ROUTE_H

#include "dataplane/policy/control.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct client;
struct worker;

#define ROUTE_HOLD (-2) /* no primary right now (failover): wait */
#define ROUTE_FAIL (-3) /* the chosen node cannot take it: error now */

/* struct route_node (a node as the data plane sees it, copied from the
 * control plane's table) is defined with that table, in policy/control.h. */

/* Node index for cl's next transaction, ROUTE_HOLD, or ROUTE_FAIL with a
 * message (SQLSTATE 08006). */
int route_pick(struct client *cl, char *msg, size_t msglen);
/* The primary's index by the routing table (or the config), -1 if none. */
int route_primary(struct worker *w, const struct cfg *c);
/* Refreshes the worker's copy of the routing table when it changed. */
void route_refresh(struct worker *w);
/* Frees what the worker holds for routing. */
void route_worker_exit(struct worker *w);
struct an_result;
/* The worker's cached analysis of sql (parsed once per distinct text);
 * NULL when out of memory. Valid until the next call on this worker. */
const struct an_result *route_analysis(struct client *cl, const char *sql, size_t len);
/* Forgets a client's read-your-writes memory. */
void route_client_free(struct client *cl);

#endif
