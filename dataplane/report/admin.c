/*
 * Console thread and admin HTTP for the data plane. The console thread
 * gathers reports (which waits on every worker) and talks to the control
 * plane, so workers never block on either: a worker queues the statement
 * and gets the whole answer back through its mailbox.
 */
#include "dataplane/report/admin.h"

#include "common/admin_http.h"
#include "common/cpclient.h"
#include "dataplane/report/cplink.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "controlplane/cp.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/conn/conn.h"
#include "dataplane/policy/control.h"
#include "dataplane/policy/snap.h"
#include "dataplane/report/stats.h"
#include "dataplane/rt/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MAX 256

struct item {
	struct item *next;
	int widx;
	uint64_t cl_id;
	char sql[];
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct item *head, *tail;
	int n;
	bool stop, started;
	pthread_t thread;
	char cp_url[512];
	struct cp *cp;
	struct admin_http *http;
} A = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

_Static_assert(sizeof(CONSOLE_DBNAME) == sizeof(CONN_CONSOLE_DB), "console database names differ");

int admin_submit(int widx, uint64_t cl_id, const char *sql)
{
	size_t len = strlen(sql);
	struct item *it = malloc(sizeof(*it) + len + 1);
	if (!it)
		return -1;
	it->next = NULL;
	it->widx = widx;
	it->cl_id = cl_id;
	memcpy(it->sql, sql, len + 1);
	pthread_mutex_lock(&A.mu);
	if (A.n >= QUEUE_MAX || !A.started) {
		pthread_mutex_unlock(&A.mu);
		free(it);
		return -1;
	}
	if (A.tail)
		A.tail->next = it;
	else
		A.head = it;
	A.tail = it;
	A.n++;
	pthread_cond_signal(&A.cv);
	pthread_mutex_unlock(&A.mu);
	return 0;
}

static void ready_for_query(struct sbuf *out)
{
	static const uint8_t z[6] = {'Z', 0, 0, 0, 5, 'I'};
	sbuf_append(out, z, sizeof(z));
}

/* RELOAD / PAUSE / RESUME go to the control plane, which owns that state
 * and tells every data plane. */
static void ask_control_plane(const struct console_cmd *cmd, struct sbuf *out)
{
	const char *verb = cmd->verb == CONSOLE_RELOAD  ? "reload"
	                   : cmd->verb == CONSOLE_PAUSE ? "pause"
	                                                : "resume";
	char *args[1] = {(char *)cmd->arg};
	size_t nargs = cmd->arg[0] && cmd->verb != CONSOLE_RELOAD ? 1 : 0;
	Helios__CtlResponse *r = NULL;
	char err[600];
	if (cpclient_call(A.cp_url, cplink_auth(), verb, args, nargs, 10000, &r, err, sizeof(err)) <
	    0) {
		console_render_error("58000", err, out);
		return;
	}
	if (r->status != 0) {
		console_render_error(r->status == 4 ? "57000" : "22023", r->message, out);
	} else {
		console_render_done(cmd, out);
	}
	log_info("admin console: %s%s%s: %s", verb, nargs ? " " : "", nargs ? cmd->arg : "",
	         r->message);
	helios__ctl_response__free_unpacked(r, NULL);
}

static void run(const struct item *it)
{
	struct sbuf out;
	sbuf_init(&out);
	struct console_cmd cmd;
	char err[300];
	if (console_parse(it->sql, &cmd, err, sizeof(err)) < 0) {
		console_render_error(CONSOLE_SQLSTATE_BAD_COMMAND, err, &out);
	} else if (cmd.verb == CONSOLE_SHOW) {
		bool detail = cmd.what == SHOW_CLIENTS || cmd.what == SHOW_SERVERS;
		Helios__StatsReport *r = stats_report(detail);
		struct snap *sn = snap_current();
		if (console_render_show(&cmd, r, sn ? sn->cfg : NULL, &out) < 0) {
			sbuf_reset(&out);
			out.oom = false;
			console_render_error("53200", "out of memory", &out);
		}
		snap_unref(sn);
		stats_report_free(r);
	} else if (cmd.verb == CONSOLE_EMPTY) {
		console_render_done(&cmd, &out);
	} else {
		ask_control_plane(&cmd, &out);
	}
	ready_for_query(&out);
	if (!out.oom)
		cw_post_admin_reply(it->widx, it->cl_id, (const uint8_t *)out.p, (uint32_t)out.len);
	sbuf_free(&out);
}

static void *console_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&A.mu);
	while (!A.stop) {
		if (!A.head) {
			pthread_cond_wait(&A.cv, &A.mu);
			continue;
		}
		struct item *it = A.head;
		A.head = it->next;
		if (!A.head)
			A.tail = NULL;
		A.n--;
		pthread_mutex_unlock(&A.mu);
		run(it);
		free(it);
		pthread_mutex_lock(&A.mu);
	}
	pthread_mutex_unlock(&A.mu);
	return NULL;
}

/* ------------------------------------------------------------ HTTP */

static void fill_info(struct metrics_info *mi, Helios__StatsReport *r, struct cp_link_state *ls,
                      Helios__NodeStatus ***nodes, size_t *n_nodes)
{
	memset(mi, 0, sizeof(*mi));
	ctl_link_state(ls);
	mi->role = A.cp ? "embedded" : "dataplane";
	mi->version = HELIOS_VERSION;
	mi->uptime_secs = r ? r->uptime_secs : 0;
	mi->generation = r ? r->generation : 0;
	mi->dataplanes_connected = -1;
	mi->dataplanes_known = -1;
	if (A.cp) {
		struct cp_info ci;
		cp_get_info(A.cp, &ci);
		mi->generation = ci.generation;
		mi->dataplanes_connected = ci.dataplanes_connected;
		mi->dataplanes_known = ci.dataplanes_known;
		mi->xdp = ci.xdp; /* embedded: the filter is this process's */
		mi->runs_cp = true;
		mi->control_refused = ci.refused;
	}
	mi->cp_connected = ls->connected ? 1 : 0;
	mi->cp_reconnects = ls->reconnects;
	mi->cp_last_contact_secs =
	    ls->last_contact_ms ? (double)(cpwire_mono_ms() - ls->last_contact_ms) / 1000.0 : -1;
	*nodes = ctl_nodes_copy(n_nodes);
	mi->nodes = (const Helios__NodeStatus *const *)*nodes;
	mi->n_nodes = *n_nodes;
	struct snap *sn = snap_current();
	mi->has_config = sn != NULL;
	snap_unref(sn);
}

static bool primary_reachable(Helios__NodeStatus **nodes, size_t n)
{
	struct snap *sn = snap_current();
	bool ok = false;
	for (size_t i = 0; sn && i < sn->cfg->n_nodes; i++) {
		if (sn->cfg->nodes[i].role != CFG_ROLE_PRIMARY)
			continue;
		bool healthy = true; /* not probed yet: assume reachable */
		for (size_t k = 0; k < n; k++)
			if (!strcmp(nodes[k]->name, sn->cfg->nodes[i].name))
				healthy = nodes[k]->healthy;
		if (healthy)
			ok = true;
	}
	snap_unref(sn);
	return ok;
}

static int http_handler(void *ctx, const char *url, struct sbuf *body, const char **ctype)
{
	(void)ctx;
	*ctype = "text/plain; charset=utf-8";
	if (!strcmp(url, "/healthz")) {
		sbuf_puts(body, "ok\n");
		return 200;
	}
	bool is_metrics = !strcmp(url, "/metrics"), is_status = !strcmp(url, "/status");
	bool is_ready = !strcmp(url, "/readyz");
	if (!is_metrics && !is_status && !is_ready) {
		sbuf_puts(body, "not found: try /metrics, /healthz, /readyz or /status\n");
		return 404;
	}
	Helios__StatsReport *r = is_ready ? NULL : stats_report(false);
	struct metrics_info mi;
	struct cp_link_state ls;
	Helios__NodeStatus **nodes;
	size_t n_nodes;
	fill_info(&mi, r, &ls, &nodes, &n_nodes);
	int status = 200;
	const Helios__StatsReport *reps[1] = {r};
	if (is_metrics) {
		metrics_render(body, reps, r ? 1 : 0, &mi);
		*ctype = METRICS_CONTENT_TYPE;
	} else if (is_status) {
		metrics_status_json(body, reps, r ? 1 : 0, &mi);
		*ctype = "application/json";
	} else if (!mi.has_config) {
		status = 503;
		sbuf_puts(body, "not ready: no configuration yet\n");
	} else if (!primary_reachable(nodes, n_nodes)) {
		status = 503;
		sbuf_puts(body, "not ready: no reachable primary node\n");
	} else {
		sbuf_puts(body, "ready\n");
	}
	ctl_nodes_free(nodes, n_nodes);
	stats_report_free(r);
	return status;
}

int admin_start(const char *cp_url, struct cp *cp, const char *admin_address, char *err,
                size_t errlen)
{
	snprintf(A.cp_url, sizeof(A.cp_url), "%s", cp_url);
	A.cp = cp;
	conn_set_console(admin_submit); /* conn/ hands console sessions' statements here */
	if (admin_address && admin_address[0]) {
		A.http = admin_http_start(admin_address, http_handler, NULL, err, errlen);
		if (!A.http)
			return -1;
	}
	A.stop = false;
	if (pthread_create(&A.thread, NULL, console_main, NULL) != 0) {
		snprintf(err, errlen, "cannot start the admin console thread");
		admin_http_stop(A.http);
		A.http = NULL;
		return -1;
	}
	pthread_mutex_lock(&A.mu);
	A.started = true;
	pthread_mutex_unlock(&A.mu);
	return 0;
}

void admin_stop(void)
{
	admin_http_stop(A.http);
	A.http = NULL;
	pthread_mutex_lock(&A.mu);
	bool started = A.started;
	A.stop = true;
	A.started = false;
	pthread_cond_broadcast(&A.cv);
	pthread_mutex_unlock(&A.mu);
	if (started)
		pthread_join(A.thread, NULL);
	while (A.head) {
		struct item *it = A.head;
		A.head = it->next;
		free(it);
	}
	A.tail = NULL;
	A.n = 0;
}
