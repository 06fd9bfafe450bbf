/*
 * Data-plane statistics and runtime controls.
 *
 * Counters: one cache-line-aligned block per (pool, worker), written only
 * by that worker without locks or atomic read-modify-write (a relaxed
 * load + store), read by the reporting thread with relaxed loads. Sums are
 * therefore a moment's view, never torn per field.
 *
 * Reports (StatsReport, proto/helios.proto) are built off the hot path, by
 * the control-plane link, the admin HTTP thread or the console thread.
 * Client and server lists are gathered on each worker through its mailbox
 * (stats_collect), since only a worker may walk its own connections.
 *
 * Pause and drain: a database can be paused (new transactions and logins
 * wait, running ones finish) and a node drained (no new server
 * connections, idle ones closed). Both are set by the control plane.
 */
#ifndef HELIOS_STATS_H
#define HELIOS_STATS_H

#include "proto/helios.pb-c.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct pool;
struct server;
struct client;
struct worker;

#define STATS_NBOUNDS 15
extern const double stats_bounds[STATS_NBOUNDS]; /* seconds, ascending */

struct pool_ctr {
	uint64_t queries, xacts, bytes_in, bytes_out;
	uint64_t query_us, xact_us, wait_us;
	uint64_t qh[STATS_NBOUNDS + 1], wh[STATS_NBOUNDS + 1];
} __attribute__((aligned(64)));

/* pool.c: the block of worker widx (clamped) in pool p. */
struct pool_ctr *pool_ctr(struct pool *p, int widx);
int pool_n_ctr(const struct pool *p);

static inline void ctr_add(uint64_t *f, uint64_t v)
{
	__atomic_store_n(f, __atomic_load_n(f, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

int stats_bucket(uint64_t us);

/* Hot-path hooks (conn/). Cheap: a clock read at most. */
void stats_client_sent(struct server *sv, uint32_t nbytes);         /* client -> server */
void stats_server_sent(struct server *sv, uint32_t nbytes);         /* server -> client */
void stats_ready(struct server *sv, char status);                   /* ReadyForQuery relayed */
void stats_waited(struct client *cl, const struct timespec *since); /* got a server */
/* Counts of a session spliced in the kernel since the last call (each
 * query is put in the histogram bucket of their mean time). */
void stats_spliced(struct server *sv, uint64_t queries, uint64_t xacts, uint64_t query_us,
                   uint64_t bytes_in, uint64_t bytes_out);

extern uint64_t g_logins_total, g_login_failures; /* atomic */

/* A StatsReport of this process. detail adds client and server lists
 * (gathered on every worker; waits up to 2 s). Free with
 * stats_report_free. Call from a non-worker thread. */
Helios__StatsReport *stats_report(bool detail);
/* Also the newest slow_lines lines of the slow query log. */
Helios__StatsReport *stats_report_ex(bool detail, size_t slow_lines);
void stats_report_free(Helios__StatsReport *r);

/* ---- runtime controls, set by the control-plane link ---- */

/* Replaces the paused set ("*" = all) and the drained node names; wakes
 * the workers so held clients move on. */
void ctl_set_paused(char **dbs, size_t n);
void ctl_set_drained(char **nodes, size_t n);
/* Hot path: one relaxed load when nothing is paused. */
bool ctl_is_paused(const char *database);
bool ctl_node_drained(const char *node_name);
bool ctl_any_drained(void);
/* Copies for reports (malloc'd strings; caller frees each and the array). */
char **ctl_paused_list(size_t *n);

/* The routing table from the control plane (copied); wakes the workers
 * when it changes so clients held for a primary look again. */
void ctl_set_routing(const Helios__RoutingTable *rt);
/* Bumped at every change of the routing table. */
uint64_t ctl_routing_version(void);
struct route_node;
/* Copies the table (up to max nodes) for a worker; returns the count. */
size_t ctl_routing_copy(struct route_node *out, size_t max);
/* Node health as last reported; true when unknown. */
bool ctl_node_healthy(const char *node_name);
/* A copy of the node statuses (for reports): free with ctl_nodes_free. */
Helios__NodeStatus **ctl_nodes_copy(size_t *n);
void ctl_nodes_free(Helios__NodeStatus **v, size_t n);

/* Control-plane link state, for reports and metrics. */
struct cp_link_state {
	bool attached; /* a link exists (embedded or external) */
	bool external;
	bool connected;
	uint64_t reconnects;
	uint64_t last_contact_ms; /* monotonic, 0 = never */
	uint64_t generation;
	char dataplane_id[128];
};
void ctl_link_state(struct cp_link_state *out);
void ctl_link_update(const struct cp_link_state *in);

#endif
