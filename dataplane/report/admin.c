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
#include "common/overview.h"
#include "common/sbuf.h"
#include "controlplane/cp.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/conn/conn.h"
#include "dataplane/policy/control.h"
#include "dataplane/plugin/plugin_set.h"
#include "dataplane/policy/snap.h"
#include "dataplane/report/stats.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 256

struct item {
	struct item *next;
	int widx;
	uint64_t cl_id;
	bool read_only; /* a stats_users session */
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

int admin_submit(int widx, uint64_t cl_id, const char *sql, bool read_only)
{
	size_t len = strlen(sql);
	struct item *it = malloc(sizeof(*it) + len + 1);
	if (!it)
		return -1;
	it->next = NULL;
	it->widx = widx;
	it->cl_id = cl_id;
	it->read_only = read_only;
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

/* Calls the control plane (which owns pause and config state and tells
 * every data plane); on success cmd's CommandComplete. */
static void cp_call(const struct console_cmd *cmd, const char *verb, char **args, size_t nargs,
                    struct sbuf *out)
{
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
	log_info("admin console: %s%s%s: %s", verb, nargs ? " " : "", nargs ? args[nargs - 1] : "",
	         r->message);
	helios__ctl_response__free_unpacked(r, NULL);
}

/* RELOAD / PAUSE / RESUME go to the control plane. */
static void ask_control_plane(const struct console_cmd *cmd, struct sbuf *out)
{
	const char *verb = cmd->verb == CONSOLE_RELOAD  ? "reload"
	                   : cmd->verb == CONSOLE_PAUSE ? "pause"
	                                                : "resume";
	char *args[1] = {(char *)cmd->arg};
	size_t nargs = cmd->arg[0] && cmd->verb != CONSOLE_RELOAD ? 1 : 0;
	cp_call(cmd, verb, args, nargs, out);
}

static void error_fmt(struct sbuf *out, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void error_fmt(struct sbuf *out, const char *sqlstate, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	console_render_error(sqlstate, msg, out);
}

/* SET key = value: PgBouncer names are mapped onto the key here (and
 * seconds scaled where the key is in ms), then it is helioctl config set:
 * a live override the control plane checks, keeps and sends to every data
 * plane. */
static void set_key(const struct console_cmd *cmd, struct sbuf *out)
{
	int factor;
	const char *key = console_set_key(cmd->arg, &factor);
	char value[sizeof(cmd->value) + 16];

	if (!key) {
		error_fmt(out, "42704",
		          "SET: unknown setting \"%s\" (neither a HeliosProxy key nor a PgBouncer "
		          "setting it maps; SHOW CONFIG lists the keys)",
		          cmd->arg);
		return;
	}
	snprintf(value, sizeof(value), "%s", cmd->value);
	if (factor != 1) {
		char *end;
		errno = 0;
		long long v = strtoll(cmd->value, &end, 10);
		if (errno || end == cmd->value || *end || v < 0 || v > INT32_MAX / factor) {
			error_fmt(out, "22023", "SET %s: \"%s\" is not a whole number of seconds",
			          cmd->arg, cmd->value);
			return;
		}
		snprintf(value, sizeof(value), "%lld", v * factor);
	}
	char *args[3] = {(char *)"set", (char *)key, value};
	cp_call(cmd, "config", args, 3, out);
}

/* The worker of client id, from a detailed report; -1 when not there. */
static int client_worker(uint64_t id)
{
	Helios__StatsReport *r = stats_report(true);
	int w = -1;

	for (size_t i = 0; r && i < r->n_client_list; i++)
		if (r->client_list[i]->id == id)
			w = (int)r->client_list[i]->worker;
	stats_report_free(r);
	return w;
}

/* Server connections RECONNECT marked and not closed yet, of db ("" =
 * all). */
static size_t close_pending(const char *db)
{
	Helios__StatsReport *r = stats_report(true);
	size_t n = 0;

	for (size_t i = 0; r && i < r->n_server_list; i++) {
		const Helios__ServerInfo *sv = r->server_list[i];
		if (sv->close_needed && (!db[0] || strcmp(sv->database, db) == 0))
			n++;
	}
	stats_report_free(r);
	return n;
}

/* WAIT_CLOSE holds the console thread (every admin session waits): it
 * gives up after this long, saying how many are left. */
#define WAIT_CLOSE_MAX_MS 30000

static void wait_close(const struct console_cmd *cmd, struct sbuf *out)
{
	size_t left = close_pending(cmd->arg);

	for (int waited = 0; left && waited < WAIT_CLOSE_MAX_MS; waited += 100) {
		struct timespec ts = {0, 100 * 1000000};
		nanosleep(&ts, NULL);
		left = close_pending(cmd->arg);
	}
	if (left)
		error_fmt(out, "57014",
		          "WAIT_CLOSE: %zu server connection%s still in use after %d s; they close "
		          "when released",
		          left, left == 1 ? "" : "s", WAIT_CLOSE_MAX_MS / 1000);
	else
		console_render_done(cmd, out);
}

/* The commands that act on this data plane's connections. With several
 * data planes behind one control plane each has its own console: KILL,
 * KILL_CLIENT, RECONNECT, DISABLE/ENABLE, WAIT_CLOSE and SHUTDOWN act on
 * the one the session is connected to (PgBouncer: one process). */
static void act(const struct item *it, const struct console_cmd *cmd, struct sbuf *out, bool *term)
{
	char why[160];
	int rc;

	switch (cmd->verb) {
	case CONSOLE_KILL_CLIENT: {
		int w = client_worker(cmd->client_id);
		if (w < 0) {
			error_fmt(out, "42704",
			          "KILL_CLIENT: no client with id %" PRIu64
			          " (SHOW CLIENTS lists them)",
			          cmd->client_id);
			return;
		}
		snprintf(why, sizeof(why),
		         "terminated by the admin console (KILL_CLIENT %" PRIu64 ")",
		         cmd->client_id);
		rc = conn_kill_client(w, cmd->client_id, why);
		break;
	}
	case CONSOLE_KILL: {
		/* PgBouncer: new clients of a killed database wait until RESUME,
		 * so it is paused too, once its clients are gone */
		snprintf(why, sizeof(why), "terminated by the admin console (KILL%s%s)",
		         cmd->arg[0] ? " " : "", cmd->arg);
		rc = conn_kill_database(cmd->arg, why);
		if (rc == 0) {
			char *args[1] = {(char *)cmd->arg};
			log_info("admin console: KILL %s",
			         cmd->arg[0] ? cmd->arg : "(all databases)");
			cp_call(cmd, "pause", args, cmd->arg[0] ? 1 : 0, out);
			return;
		}
		break;
	}
	case CONSOLE_RECONNECT:
		rc = conn_reconnect(cmd->arg);
		if (rc >= 0)
			log_info("admin console: RECONNECT %s: %d pools",
			         cmd->arg[0] ? cmd->arg : "(all databases)", rc);
		break;
	case CONSOLE_DISABLE:
	case CONSOLE_ENABLE:
		rc = conn_disable_database(cmd->arg, cmd->verb == CONSOLE_DISABLE);
		if (rc == -ENOSPC) {
			error_fmt(out, "54000", "DISABLE: too many disabled databases");
			return;
		}
		if (rc == 0)
			log_info("admin console: %s %s", console_verb_name(cmd->verb), cmd->arg);
		break;
	case CONSOLE_WAIT_CLOSE:
		wait_close(cmd, out);
		return;
	case CONSOLE_SHUTDOWN:
		conn_set_shutdown(cmd->shutdown == SHUTDOWN_NOW ? CONN_SHUTDOWN_NOW
		                  : cmd->shutdown == SHUTDOWN_WAIT_FOR_SERVERS
		                      ? CONN_SHUTDOWN_WAIT_FOR_SERVERS
		                      : CONN_SHUTDOWN_NONE);
		log_info("admin console: SHUTDOWN%s by user of client %" PRIu64,
		         cmd->shutdown == SHUTDOWN_NOW                ? ""
		         : cmd->shutdown == SHUTDOWN_WAIT_FOR_SERVERS ? " WAIT_FOR_SERVERS"
		                                                      : " WAIT_FOR_CLIENTS",
		         it->cl_id);
		/* the main thread drains as on SIGTERM, raised by the client's
		 * worker once this answer is queued for the client (run()) */
		*term = true;
		rc = 0;
		break;
	case CONSOLE_SET:
		set_key(cmd, out);
		return;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc < 0)
		error_fmt(out, "58000", "%s failed: %s", console_verb_name(cmd->verb),
		          strerror(-rc));
	else
		console_render_done(cmd, out);
}

static void run(const struct item *it)
{
	struct sbuf out;
	sbuf_init(&out);
	struct console_cmd cmd;
	char err[300];
	bool term = false;
	if (console_parse(it->sql, &cmd, err, sizeof(err)) < 0) {
		console_render_error(CONSOLE_SQLSTATE_BAD_COMMAND, err, &out);
	} else if (it->read_only && !console_read_only(&cmd)) {
		error_fmt(
		    &out, "42501",
		    "%s: a stats_users member may only run SHOW commands (admin_users may run "
		    "the others)",
		    cmd.verb == CONSOLE_SHOW ? "SHOW FDS" : console_verb_name(cmd.verb));
	} else if (cmd.verb == CONSOLE_SHOW && cmd.what == SHOW_FDS) {
		console_render_error("0A000",
		                     "SHOW FDS hands PgBouncer's sockets to a new process (-R); "
		                     "HeliosProxy does that with heliosproxy --takeover",
		                     &out);
	} else if (cmd.verb == CONSOLE_SUSPEND) {
		console_render_error(
		    "0A000",
		    "SUSPEND prepares PgBouncer's online restart (-R); HeliosProxy "
		    "restarts online with heliosproxy --takeover (PAUSE stops "
		    "traffic)",
		    &out);
	} else if (cmd.verb == CONSOLE_SHOW) {
		bool detail = cmd.what == SHOW_CLIENTS || cmd.what == SHOW_SERVERS ||
		              cmd.what == SHOW_SOCKETS || cmd.what == SHOW_ACTIVE_SOCKETS ||
		              cmd.what == SHOW_LISTS;
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
	} else if (cmd.verb == CONSOLE_RELOAD || cmd.verb == CONSOLE_PAUSE ||
	           cmd.verb == CONSOLE_RESUME) {
		ask_control_plane(&cmd, &out);
	} else {
		act(it, &cmd, &out, &term);
	}
	ready_for_query(&out);
	/* SHUTDOWN: the worker raises SIGTERM after queueing the answer, so
	 * the drain closes the session behind it (here only when the answer
	 * could not be posted) */
	bool posted = !out.oom && cw_post_admin_reply(it->widx, it->cl_id, (const uint8_t *)out.p,
	                                              (uint32_t)out.len, term);
	sbuf_free(&out);
	if (term && !posted && kill(getpid(), SIGTERM) < 0)
		log_error("admin console: SHUTDOWN: cannot signal the process: %s",
		          strerror(errno));
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
	metrics_proc_read(&mi->proc);
	struct snap *sn = snap_current();
	mi->has_config = sn != NULL;
	mi->replica_lag_limit_secs =
	    sn && sn->cfg ? (double)sn->cfg->routing.max_replica_lag_ms / 1000.0 : -1;
	snap_unref(sn);
}

/* ---- probes ----
 * /livez: every worker's event loop turned within LIVE_MAX_MS (a stuck
 * loop serves nobody; a restart is the cure). /readyz: the proxy accepts
 * and will serve or queue a client: a config, listening and not shutting
 * down, loops turning, and a primary known or lost less than
 * routing.failover_timeout_secs ago (clients wait meanwhile: taking the
 * proxy out of a Service then would defeat the failover it rides
 * through). "?verbose" lists every check as "ok name ..." or
 * "fail name: reason". */

#define LIVE_MAX_MS 5000u

struct probe {
	struct sbuf *body;
	bool verbose, ok;
	char first[300]; /* the first failure, for the short answer */
};

static void check(struct probe *pr, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Records one check; fmt says why (a failure) or what was seen (ok). */
static void check(struct probe *pr, bool ok, const char *name, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (pr->verbose)
		sbuf_printf(pr->body, "%s %s%s%s\n", ok ? "ok" : "fail", name,
		            why[0] ? (ok ? " " : ": ") : "", why);
	if (!ok && pr->ok)
		snprintf(pr->first, sizeof(pr->first), "%s: %s", name, why);
	pr->ok = pr->ok && ok;
}

static void check_workers(struct probe *pr)
{
	int worst, n = workers_started();
	uint64_t gap;
	int late = workers_stalled(worker_now_ns(), (uint64_t)LIVE_MAX_MS * 1000000u, &worst, &gap);

	if (n == 0)
		check(pr, false, "workers", "no worker is running");
	else if (late)
		check(
		    pr, false, "workers",
		    "%d of %d event loops stuck; worker %d has not turned for %.1f s (limit %u s)",
		    late, n, worst, (double)gap / 1e9, LIVE_MAX_MS / 1000);
	else
		check(pr, true, "workers", "%d event loops turned within %u s", n,
		      LIVE_MAX_MS / 1000);
}

static void check_ready(struct probe *pr)
{
	struct snap *sn = snap_current();
	int n = workers_started();
	uint64_t lost_ms;
	char prim[64];

	if (sn)
		check(pr, true, "config", "generation %llu", (unsigned long long)sn->generation);
	else
		check(pr, false, "config", "no configuration yet");
	if (__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE))
		check(pr, false, "listener", "shutting down: no new connections");
	else if (n < g_workers_planned || n == 0)
		check(pr, false, "listener", "%d of %d workers listening", n, g_workers_planned);
	else
		check(pr, true, "listener", "%s", sn ? sn->cfg->listen_address : "");
	check_workers(pr);
	int window = sn ? sn->cfg->routing.failover_timeout_secs : 0;
	if (ctl_primary_known(&lost_ms, prim, sizeof(prim)))
		check(pr, true, "primary", "%s", prim);
	else if (lost_ms < (uint64_t)window * 1000u)
		check(pr, true, "primary",
		      "%s lost %.0f s ago, within failover_timeout_secs %d: clients wait for a "
		      "primary",
		      prim[0] ? prim : "none", (double)lost_ms / 1000.0, window);
	else
		check(pr, false, "primary", "no primary for %.0f s (failover_timeout_secs %d)%s%s",
		      (double)lost_ms / 1000.0, window, prim[0] ? "; last one " : "", prim);
	snap_unref(sn);
}

/* /livez, /healthz, /readyz; -1 when url is none of them. */
static int probe_answer(const char *url, struct sbuf *body)
{
	bool ready = !strcmp(url, "/readyz");
	struct probe pr = {.body = body, .verbose = admin_http_has_arg("verbose"), .ok = true};

	if (!ready && strcmp(url, "/livez") && strcmp(url, "/healthz"))
		return -1;
	if (ready)
		check_ready(&pr);
	else
		check_workers(&pr);
	if (!pr.verbose && pr.ok)
		sbuf_puts(body, ready ? "ready\n" : "ok\n");
	else if (!pr.verbose)
		sbuf_printf(body, "not %s: %s\n", ready ? "ready" : "live", pr.first);
	return pr.ok ? 200 : 503;
}

/* /api/overview of this data plane: its own summary report (the same
 * collection /status makes, posted to the workers) and its link to the
 * control plane. With an embedded control plane, the cluster's view from it
 * (this data plane is one of the data planes it lists). */
static void overview(struct sbuf *body)
{
	if (A.cp) {
		cp_overview_json(A.cp, "embedded", body);
		return;
	}
	Helios__StatsReport *r = stats_report(false);
	struct metrics_info mi;
	struct cp_link_state ls;
	Helios__NodeStatus **nodes;
	size_t n_nodes;
	fill_info(&mi, r, &ls, &nodes, &n_nodes);
	struct overview_dp me = {
	    .id = r ? r->dataplane_id : ls.dataplane_id,
	    .connected = true,
	    .generation = mi.generation,
	    .last_seen_secs = -1,
	    .last_error = "",
	    .report = r,
	};
	struct overview_info in = {
	    .role = mi.role,
	    .version = mi.version,
	    .uptime_secs = mi.uptime_secs,
	    .generation = mi.generation,
	    .has_config = mi.has_config,
	    .cp_connected = mi.cp_connected,
	    .cp_last_contact_secs = mi.cp_last_contact_secs,
	    .nodes = mi.nodes,
	    .n_nodes = mi.n_nodes,
	    .dps = &me,
	    .n_dps = 1,
	};
	overview_json(body, &in);
	ctl_nodes_free(nodes, n_nodes);
	stats_report_free(r);
}

static int http_handler(void *ctx, const char *url, struct sbuf *body, const char **ctype)
{
	(void)ctx;
	*ctype = "text/plain; charset=utf-8";
	int status = probe_answer(url, body);
	if (status > 0)
		return status;
	if ((status = overview_asset(url, body, ctype)) > 0)
		return status;
	if (!strcmp(url, "/api/overview")) {
		overview(body);
		*ctype = "application/json";
		return 200;
	}
	bool is_metrics = !strcmp(url, "/metrics"), is_status = !strcmp(url, "/status");
	if (!is_metrics && !is_status) {
		sbuf_puts(body, "not found: try /, /api/overview, /metrics, /livez, /healthz, "
		                "/readyz or /status\n");
		return 404;
	}
	Helios__StatsReport *r = stats_report(false);
	struct metrics_info mi;
	struct cp_link_state ls;
	Helios__NodeStatus **nodes;
	size_t n_nodes;
	fill_info(&mi, r, &ls, &nodes, &n_nodes);
	const Helios__StatsReport *reps[1] = {r};
	if (is_metrics) {
		metrics_render(body, reps, r ? 1 : 0, &mi);
		plugin_set_metrics(body);
		*ctype = METRICS_CONTENT_TYPE;
	} else {
		metrics_status_json(body, reps, r ? 1 : 0, &mi);
		*ctype = "application/json";
	}
	ctl_nodes_free(nodes, n_nodes);
	stats_report_free(r);
	return 200;
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
