/*
 * The control plane's admin HTTP (/metrics, /status, /livez, /healthz, /readyz,
 * the dashboard at / and its /api/overview) and cp_get_info: cluster-wide figures from the data
 * planes' last reports, the node table and the XDP filter's counters.
 */
#include "controlplane/cp.h"
#include "controlplane/cp_internal.h"

#include "common/admin_http.h"
#include "common/cpwire.h"
#include "common/metrics.h"
#include "common/overview.h"
#include "common/sbuf.h"
#include "controlplane/xdp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void xdp_metrics(struct cp *cp, struct metrics_xdp *out)
{
	struct xf_status st;
	xf_get_status(cp->xdp, &st);
	out->enabled = st.enabled;
	out->attached = st.attached;
	out->passed = st.passed;
	out->denied = st.denied;
	out->syn_rate_dropped = st.syn_rate_dropped;
	out->syns = st.syns;
	out->deny_entries = st.deny_entries;
}

/* *reps and *contact (seconds since each one's last heartbeat, for
 * helios_control_plane_last_contact_seconds) are parallel; the caller
 * frees both. */
static void fill_info(struct cp *cp, struct metrics_info *mi, const Helios__StatsReport ***reps,
                      double **contact, size_t *n)
{
	memset(mi, 0, sizeof(*mi));
	mi->role = "control-plane";
	mi->version = HELIOS_VERSION;
	mi->uptime_secs = (double)(cpwire_mono_ms() - cp->start_ms) / 1000.0;
	mi->generation = cp->generation;
	mi->cp_connected = -1;
	mi->cp_last_contact_secs = -1;
	mi->has_config = cp->live != NULL;
	mi->replica_lag_limit_secs =
	    cp->live ? (double)cp->live->routing.max_replica_lag_ms / 1000.0 : -1;
	mi->runs_cp = true;
	mi->control_refused = cp->refused_total;
	mi->nodes = (const Helios__NodeStatus *const *)cp->nodes;
	mi->n_nodes = cp->n_nodes;
	xdp_metrics(cp, &mi->xdp);
	uint64_t now = cpwire_mono_ms();
	size_t k = 0;
	for (struct dp *d = cp->dps; d; d = d->next) {
		mi->dataplanes_known++;
		if (cp_dp_connected(cp, d, now))
			mi->dataplanes_connected++;
		k++;
	}
	*reps = calloc(k ? k : 1, sizeof(**reps));
	*contact = calloc(k ? k : 1, sizeof(**contact));
	*n = 0;
	for (struct dp *d = cp->dps; *reps && *contact && d; d = d->next) {
		if (d->hb && d->hb->report && cp_dp_connected(cp, d, now)) {
			(*contact)[*n] =
			    now >= d->last_seen_ms ? (double)(now - d->last_seen_ms) / 1000.0 : 0;
			(*reps)[(*n)++] = d->hb->report;
		}
	}
	mi->report_contact_secs = *contact;
	metrics_proc_read(&mi->proc);
}

/* Under cp->mu. Every data plane registered since start, connected or not:
 * the page shows which ones went away and which missed a generation. */
static void overview_locked(struct cp *cp, const char *role, struct sbuf *out)
{
	uint64_t now = cpwire_mono_ms();
	size_t k = 0, n = 0;
	struct overview_dp *dps;

	for (struct dp *d = cp->dps; d; d = d->next)
		k++;
	dps = calloc(k ? k : 1, sizeof(*dps));
	if (!dps) {
		out->oom = true;
		return;
	}
	for (struct dp *d = cp->dps; d && n < k; d = d->next, n++) {
		dps[n].id = d->id;
		dps[n].connected = cp_dp_connected(cp, d, now);
		dps[n].generation = d->generation;
		dps[n].last_seen_secs =
		    d->last_seen_ms ? (double)(now - d->last_seen_ms) / 1000.0 : -1;
		dps[n].last_error = d->last_error;
		dps[n].report = d->hb ? d->hb->report : NULL;
	}
	struct overview_info in = {
	    .role = role,
	    .version = HELIOS_VERSION,
	    .uptime_secs = (double)(now - cp->start_ms) / 1000.0,
	    .generation = cp->generation,
	    .has_config = cp->live != NULL,
	    .cp_connected = -1,
	    .cp_last_contact_secs = -1,
	    .nodes = (const Helios__NodeStatus *const *)cp->nodes,
	    .n_nodes = cp->n_nodes,
	    .dps = dps,
	    .n_dps = n,
	};
	overview_json(out, &in);
	free(dps);
}

void cp_overview_json(struct cp *cp, const char *role, struct sbuf *out)
{
	pthread_mutex_lock(&cp->mu);
	overview_locked(cp, role, out);
	pthread_mutex_unlock(&cp->mu);
}

/* /livez (and its alias /healthz): this thread got the control plane's
 * lock, so nothing holds it stuck. /readyz: a configuration is loaded and
 * the listener runs (it is up once cp_start returned), not stopping; the
 * primary is not a condition: data planes keep serving without helios-cp.
 * "?verbose": one line per check. -1 when url is not a probe. */
static int probe_answer(struct cp *cp, const char *url, struct sbuf *body)
{
	bool ready = !strcmp(url, "/readyz"), verbose = admin_http_has_arg("verbose");
	bool cfg_ok = cp->live != NULL, listening = !cp->stopping;

	if (!ready && strcmp(url, "/livez") && strcmp(url, "/healthz"))
		return -1;
	if (!ready) {
		sbuf_puts(body, verbose ? "ok lock\n" : "ok\n");
		return 200;
	}
	if (verbose) {
		if (cfg_ok)
			sbuf_printf(body, "ok config generation %llu\n",
			            (unsigned long long)cp->generation);
		else
			sbuf_puts(body, "fail config: no configuration\n");
		sbuf_puts(body, listening ? "ok listener\n" : "fail listener: stopping\n");
	} else if (cfg_ok && listening) {
		sbuf_puts(body, "ready\n");
	} else {
		sbuf_printf(body, "not ready: %s\n",
		            !cfg_ok ? "config: no configuration" : "listener: stopping");
	}
	return cfg_ok && listening ? 200 : 503;
}

int cp_http_handler(void *ctx, const char *url, struct sbuf *body, const char **ctype)
{
	struct cp *cp = ctx;
	int status = 200;
	*ctype = "text/plain; charset=utf-8";
	if ((status = overview_asset(url, body, ctype)) > 0)
		return status; /* the page's files: no state */
	status = 200;
	pthread_mutex_lock(&cp->mu);
	bool is_metrics = !strcmp(url, "/metrics");
	if (is_metrics || !strcmp(url, "/status")) {
		struct metrics_info mi;
		const Helios__StatsReport **reps;
		double *contact;
		size_t n;
		fill_info(cp, &mi, &reps, &contact, &n);
		if (is_metrics)
			metrics_render(body, reps, n, &mi);
		else
			metrics_status_json(body, reps, n, &mi);
		free(reps);
		free(contact);
		*ctype = is_metrics ? METRICS_CONTENT_TYPE : "application/json";
	} else if (!strcmp(url, "/api/overview")) {
		overview_locked(cp, "control-plane", body);
		*ctype = "application/json";
	} else if ((status = probe_answer(cp, url, body)) < 0) {
		status = 404;
		sbuf_puts(body, "not found: try /, /api/overview, /metrics, /livez, /healthz, "
		                "/readyz or /status\n");
	}
	pthread_mutex_unlock(&cp->mu);
	return status;
}

void cp_get_info(struct cp *cp, struct cp_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&cp->mu);
	out->generation = cp->generation;
	out->uptime_secs = (double)(cpwire_mono_ms() - cp->start_ms) / 1000.0;
	uint64_t now = cpwire_mono_ms();
	for (struct dp *d = cp->dps; d; d = d->next) {
		out->dataplanes_known++;
		if (cp_dp_connected(cp, d, now))
			out->dataplanes_connected++;
	}
	xdp_metrics(cp, &out->xdp);
	out->refused = cp->refused_total;
	pthread_mutex_unlock(&cp->mu);
}
