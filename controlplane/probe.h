/*
 * Node checks for the control plane, over its own libpq connections: is the
 * node up, is it in recovery (pg_is_in_recovery()), and how far behind is
 * its replay. Lag comes from a heartbeat row the prober writes on the
 * primary (a sequence number, timed on the control plane's own monotonic
 * clock) and reads on each replica: a replica that shows sequence s is at
 * least as far behind as the age of the first write it does not show yet.
 * Unlike now() - pg_last_xact_replay_timestamp(), this does not grow while
 * the primary is idle, and needs no clock agreement between hosts.
 */
#ifndef HELIOS_PROBE_H
#define HELIOS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct prober;

struct probe_node {
	char name[64];
	char host[256];
	int port;
};

struct probe_settings {
	char user[64];
	char password[512];
	char database[64];
	char table[160]; /* schema.table, validated identifiers */
	int timeout_ms;  /* connect and statement timeout */
};

struct probe_result {
	bool up;          /* answered SELECT pg_is_in_recovery() */
	bool in_recovery; /* when up */
	int64_t lag_ms;   /* replicas: replay lag; primary: 0; -1 = unknown */
	char error[256];  /* why it is not up, or why lag is unknown */
};

struct prober *prober_new(void);
void prober_free(struct prober *p);
/* Checks every node (blocking, bounded by timeouts). primary_hint: index
 * of the node believed to be the primary (the heartbeat is written on the
 * node that reports it is not in recovery; the hint breaks ties), -1 if
 * none. out[i] for nodes[i]. */
void prober_round(struct prober *p, const struct probe_node *nodes, size_t n,
                  const struct probe_settings *s, int primary_hint, struct probe_result *out);

#endif
