/*
 * Runtime controls the control plane sets: pause and drain, and the
 * routing table. A database can be paused (new transactions and logins
 * wait, running ones finish) and a node drained (no new server
 * connections, idle ones closed). Set by the control-plane link
 * (report/cplink.c); read on the hot path by conn/ and the router, and by
 * reports.
 */
#ifndef HELIOS_CONTROL_H
#define HELIOS_CONTROL_H

#include "proto/helios.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* fn runs (on the thread that made the change) after the paused set, the
 * drained nodes or the routing table's roles changed, so that clients
 * held by a pause, a drain or a missing primary look again. Registered
 * once at start-up (main.c). */
void ctl_on_change(void (*fn)(void));

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
/* One node as routing sees it (a copy of the control plane's table). */
struct route_node {
	char name[64];
	bool known; /* the control plane reported it */
	bool primary;
	bool healthy;
	bool draining;
	int64_t lag_ms;
};
/* Copies the table (up to max nodes) for a worker; returns the count. */
size_t ctl_routing_copy(struct route_node *out, size_t max);
/* Node health as last reported; true when unknown. */
bool ctl_node_healthy(const char *node_name);
/* For the readiness probe: true when the routing table names a healthy
 * primary, or when no table came yet (the configured primary is assumed
 * until the control plane has probed). Else false, and *lost_ms gets how
 * long no table has named one (ms, measured from the first table without
 * one); name (cap bytes, may be NULL) gets the primary's name, or the one
 * that was lost ("" if none was ever known). */
bool ctl_primary_known(uint64_t *lost_ms, char *name, size_t cap);
/* A copy of the node statuses (for reports): free with ctl_nodes_free. */
Helios__NodeStatus **ctl_nodes_copy(size_t *n);
void ctl_nodes_free(Helios__NodeStatus **v, size_t n);

#endif
