/*
 * The dashboard: GET /api/overview (one JSON document) and the page at / that
 * polls it, shared by heliosproxy (its own report) and helios-cp (every data
 * plane's last report, the config generation and who acknowledged it).
 * overview_json is a pure function of its input, so it runs on the admin
 * HTTP thread from the snapshots /status and /metrics already use; it never
 * walks connections. The page's files (common/dashboard/) are assembled into
 * the binary (common/dashboard_assets.S), so the page loads nothing from
 * anywhere but the process that serves it.
 */
#ifndef HELIOS_OVERVIEW_H
#define HELIOS_OVERVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "proto/helios.pb-c.h"

/* One data plane: on heliosproxy itself, on helios-cp each registered one. */
struct overview_dp {
	const char *id;
	bool connected;
	uint64_t generation;               /* config generation it runs (acknowledged) */
	double last_seen_secs;             /* seconds since its last message, -1 = n/a */
	const char *last_error;            /* its last config rejection, "" none */
	const Helios__StatsReport *report; /* its last summary report; NULL: none yet */
};

struct overview_info {
	const char *role; /* "dataplane", "embedded" or "control-plane" */
	const char *version;
	double uptime_secs;
	uint64_t generation; /* live config generation */
	bool has_config;
	int cp_connected;                       /* a data plane's link: 1/0, -1 = not applicable */
	double cp_last_contact_secs;            /* -1 unknown */
	const Helios__NodeStatus *const *nodes; /* this process's routing table / probes */
	size_t n_nodes;
	const struct overview_dp *dps;
	size_t n_dps;
};

/* Appends the /api/overview document (fields in docs/dashboard.md). Strings
 * are JSON-escaped by jansson; bytes that are not UTF-8 become U+FFFD. Sets
 * out->oom when it cannot be built. */
void overview_json(struct sbuf *out, const struct overview_info *in);

/* The q-quantile (0 < q <= 1) of a cumulative-since-start histogram,
 * interpolated linearly inside the bucket it falls in, as Prometheus's
 * histogram_quantile does; a quantile in the +Inf bucket is the highest
 * bound. -1 when the histogram is empty or malformed. */
double overview_quantile(const Helios__Histogram *h, double q);

/* Serves the page and its assets: "/" (index.html), "/dashboard.js",
 * "/dashboard.css". Returns 200 with body and *ctype set, or -1 when url is
 * none of them. admin_http sends every answer with the
 * Content-Security-Policy that keeps the page from loading anything else. */
int overview_asset(const char *url, struct sbuf *body, const char **ctype);

#endif
