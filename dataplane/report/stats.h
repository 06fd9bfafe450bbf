/*
 * Data-plane statistics and runtime controls.
 *
 * Counters live below: conn/ counts a pool's traffic into the pool's
 * per-worker blocks (pool/pool_ctr.h) and its own totals; this module only
 * reads them, as values (no layer below calls into report/).
 *
 * Reports (StatsReport, proto/helios.proto) are built off the hot path, by
 * the control-plane link, the admin HTTP thread or the console thread.
 * Client and server rows are value snapshots that conn/ fills on each
 * worker through its mailbox (stats_collect_run -> conn_snapshot_worker),
 * since only a worker may walk its own connections; report/ never reads a
 * struct client or struct server.
 *
 * Pause, drain and the routing table are policy (policy/control.h);
 * this module keeps only the control-plane link's state.
 */
#ifndef HELIOS_STATS_H
#define HELIOS_STATS_H

#include "proto/helios.pb-c.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct worker;

#define STATS_NBOUNDS 15                         /* = POOL_CTR_NBOUNDS */
extern const double stats_bounds[STATS_NBOUNDS]; /* seconds, ascending */

/* A StatsReport of this process. detail adds client and server lists
 * (gathered on every worker; waits up to 2 s). Free with
 * stats_report_free. Call from a non-worker thread. */
/* One line an operator can grep (every stats_period_secs): clients, each
 * pool's counts, pins by reason. */
void stats_log_line(void);
Helios__StatsReport *stats_report(bool detail);
/* Also the newest slow_lines lines of the slow query log. */
Helios__StatsReport *stats_report_ex(bool detail, size_t slow_lines);
void stats_report_free(Helios__StatsReport *r);

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
