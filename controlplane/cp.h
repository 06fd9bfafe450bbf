/*
 * The control plane: owns the live configuration (the file plus changes
 * made with helioctl, persisted in the overrides file), hands snapshots to
 * data planes and collects their acknowledgements, reports and node
 * health, and answers helioctl. helios-cp runs it as a daemon; heliosproxy
 * without control_address runs the same code in-process (embedded mode).
 *
 * Transport: one nng REP socket with a context per in-flight request, on
 * every address in cp_opts.urls. See docs/control-plane.md.
 */
#ifndef HELIOS_CP_H
#define HELIOS_CP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

struct cp;

struct cp_opts {
	const char *config_path;
	const char *const *urls; /* nng listen URLs; ipc:// ones get mode 0600 */
	size_t n_urls;
	const char *admin_address; /* admin HTTP; NULL or "" = none */
	bool embedded;             /* runs inside heliosproxy */
};

/* Loads the config and overrides, persists a new generation, probes the
 * nodes once and starts listening. NULL with a message on failure. */
struct cp *cp_start(const struct cp_opts *o, char *err, size_t errlen);
void cp_stop(struct cp *cp);
/* Re-reads the config file (SIGHUP). 0, or -1 with the reason in msg. */
int cp_reload(struct cp *cp, char *msg, size_t cap);

struct cp_info {
	uint64_t generation;
	int dataplanes_connected, dataplanes_known;
	double uptime_secs;
	struct metrics_xdp xdp; /* the XDP filter it manages (controlplane/xdp.h) */
	uint64_t refused;       /* requests refused (token, malformed) */
};
void cp_get_info(struct cp *cp, struct cp_info *out);

struct sbuf;
/* Appends the cluster-wide /api/overview document (common/overview.h): every
 * data plane with its last report, the live generation and which data planes
 * acknowledged it. role names the process serving it ("control-plane", or
 * "embedded" from a data plane that runs this control plane). */
void cp_overview_json(struct cp *cp, const char *role, struct sbuf *out);

#endif
