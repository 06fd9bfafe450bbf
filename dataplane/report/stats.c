/*
 * Reports and the per-worker collection behind them. See stats.h. Reads
 * values only: conn/'s rows and totals (conn_report.h), the pools' counter
 * blocks and stats, the analytics, cache, tenant and control tables. May
 * call everything below report/; nothing below calls here (the worker runs
 * stats_collect_run from its mailbox).
 */
#include "dataplane/report/stats.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pool/pool.h"
#include "dataplane/pool/pool_ctr.h"
#include "dataplane/policy/control.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/plugin/plugin_set.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double stats_bounds[STATS_NBOUNDS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
_Static_assert(STATS_NBOUNDS == POOL_CTR_NBOUNDS, "histogram bounds differ from the counters'");

static double start_real;
static uint64_t start_mono_ms;

__attribute__((constructor)) static void stats_init(void)
{
	start_real = cpwire_now();
	start_mono_ms = cpwire_mono_ms();
}

/* ------------------------------------------------------------ collection */

struct collect_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, remaining;
	bool detail, taken;
	struct timespec now_mono;
	double now_real;
	struct conn_snapshot snap; /* the workers' rows, under mu */
	struct qs_table *qs;       /* analytics: the workers' tables merged */
	size_t qs_limit;           /* per worker, 0 = all */
};

static void job_unref(struct collect_job *j)
{
	pthread_mutex_lock(&j->mu);
	int left = --j->refs;
	pthread_mutex_unlock(&j->mu);
	if (left)
		return;
	conn_snapshot_free(&j->snap);
	qs_table_free(j->qs);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

static char *dupstr(const char *s)
{
	return strdup(s ? s : "");
}

/* Monotonic timespec to unix seconds. */
static double to_unix(const struct collect_job *j, const struct timespec *t)
{
	if (!t->tv_sec && !t->tv_nsec)
		return 0;
	double ago = (double)(j->now_mono.tv_sec - t->tv_sec) +
	             (double)(j->now_mono.tv_nsec - t->tv_nsec) / 1e9;
	return j->now_real - ago;
}

static void split_peer(const char *peer, char **addr, uint32_t *port)
{
	const char *colon = strrchr(peer, ':');
	if (!colon) {
		*addr = dupstr(peer);
		*port = 0;
		return;
	}
	*addr = strndup(peer, (size_t)(colon - peer));
	*port = (uint32_t)atoi(colon + 1);
}

static Helios__ClientInfo *client_info(const struct collect_job *j,
                                       const struct conn_client_row *cr)
{
	Helios__ClientInfo *ci = malloc(sizeof(*ci));
	if (!ci)
		return NULL;
	helios__client_info__init(ci);
	ci->id = cr->id;
	ci->user = dupstr(cr->user);
	ci->database = dupstr(cr->database);
	ci->state = dupstr(cr->state);
	split_peer(cr->peer, &ci->addr, &ci->port);
	ci->local_addr = dupstr("");
	struct timespec t = {.tv_sec = cr->connect_s};
	ci->connect_time = to_unix(j, &t);
	t.tv_sec = cr->request_s;
	ci->request_time = to_unix(j, &t);
	ci->wait_secs = cr->wait_secs;
	ci->server_pid = cr->server_pid;
	ci->tls = cr->tls;
	ci->application_name = dupstr(cr->app_name);
	ci->pinned = dupstr(cr->pinned);
	ci->worker = (uint32_t)cr->worker;
	char tx[2] = "";
	if (cr->spliced) {
		ci->spliced = true;
		ci->spliced_queries = cr->spliced_queries;
		tx[0] = cr->spliced_tx;
	}
	ci->spliced_tx = dupstr(tx);
	ci->replication = dupstr(cr->replication);
	ci->prepared_statements = cr->prepared;
	return ci;
}

static Helios__ServerInfo *server_info(const struct collect_job *j,
                                       const struct conn_server_row *sr)
{
	Helios__ServerInfo *si = malloc(sizeof(*si));
	if (!si)
		return NULL;
	helios__server_info__init(si);
	si->pid = sr->pid;
	si->user = dupstr(sr->user);
	si->database = dupstr(sr->database);
	si->node = NULL; /* named by the caller, which has the config */
	si->state = dupstr(sr->state);
	si->addr = dupstr(sr->host);
	si->port = (uint32_t)sr->port;
	si->local_addr = dupstr("");
	si->connect_time = to_unix(j, &sr->created);
	si->request_time = to_unix(j, &sr->last_used);
	si->client_id = sr->client_id;
	si->tls = sr->tls;
	si->worker = sr->worker < 0 ? 0 : (uint32_t)sr->worker; /* idle: in no worker */
	si->close_needed = sr->close_needed;
	si->prepared_statements = sr->prepared;
	return si;
}

/* Runs on worker w (from its mailbox): conn/ adds w's clients and servers. */
static void stats_collect_run(struct worker *w, struct collect_job *j)
{
	pthread_mutex_lock(&j->mu);
	if (!j->taken) {
		conn_snapshot_worker(w, j->detail, &j->now_mono, &j->snap);
		analytics_collect(w, j->qs, j->qs_limit);
	}
	j->remaining--;
	if (j->remaining == 0)
		pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	job_unref(j);
}

/* The job's message to one worker (a job goes to every worker). */
struct collect_msg {
	struct worker_msg m;
	struct collect_job *job;
};

static void collect_msg_run(struct worker *w, struct worker_msg *m)
{
	struct collect_msg *c = (struct collect_msg *)m;
	stats_collect_run(w, c->job);
	free(c);
}

static int post_collect(struct worker *w, struct collect_job *j)
{
	struct collect_msg *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->m.fn = collect_msg_run;
	c->job = j;
	if (worker_post(w, &c->m) < 0) {
		free(c);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ reports */

void stats_log_line(void)
{
	char line[1024];
	size_t n = 0;
	struct conn_totals tot;
	conn_totals(&tot);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "stats: clients=%u", tot.clients);
	for (struct pool *p = pool_first(); p && n < sizeof(line) - 128; p = pool_next_of(p)) {
		struct pool_stats st;
		pool_get_stats(p, &st);
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		                      " pool %s/%s: servers=%d idle=%d waiting=%d served=%llu "
		                      "wait_timeouts=%llu;",
		                      pool_database(p), pool_user(p), st.total, st.idle, st.waiting,
		                      (unsigned long long)st.served,
		                      (unsigned long long)st.wait_timeouts);
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, " pins:");
	for (int r = 0; r < tot.n_pins && n < sizeof(line) - 40; r++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu", tot.pins[r].reason,
		                      (unsigned long long)tot.pins[r].total);
	log_info("%s", line);
}

static Helios__Histogram *hist_new(const uint64_t *counts, uint64_t sum_us)
{
	Helios__Histogram *h = malloc(sizeof(*h));
	if (!h)
		return NULL;
	helios__histogram__init(h);
	h->bounds = malloc(sizeof(double) * STATS_NBOUNDS);
	h->counts = malloc(sizeof(uint64_t) * (STATS_NBOUNDS + 1));
	if (!h->bounds || !h->counts) {
		free(h->bounds);
		free(h->counts);
		free(h);
		return NULL;
	}
	h->n_bounds = STATS_NBOUNDS;
	h->n_counts = STATS_NBOUNDS + 1;
	memcpy(h->bounds, stats_bounds, sizeof(double) * STATS_NBOUNDS);
	for (int i = 0; i <= STATS_NBOUNDS; i++) {
		h->counts[i] = counts[i];
		h->count += counts[i];
	}
	h->sum = (double)sum_us / 1e6;
	return h;
}

static void sum_ctr(struct pool *p, struct pool_ctr *out)
{
	memset(out, 0, sizeof(*out));
	int n = pool_n_ctr(p);
	for (int i = 0; i < n; i++) {
		const uint64_t *src = (const uint64_t *)pool_ctr(p, i);
		uint64_t *dst = (uint64_t *)out;
		for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
			dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
	}
}

static Helios__PoolStats *pool_stats_msg(struct pool *p, const struct conn_pool_row *pc,
                                         const struct cfg *c)
{
	Helios__PoolStats *ps = malloc(sizeof(*ps));
	if (!ps)
		return NULL;
	helios__pool_stats__init(ps);
	ps->database = dupstr(pool_database(p));
	ps->user = dupstr(pool_user(p));
	ps->tenant = dupstr(pool_tenant(p));
	int ni = pool_node(p);
	ps->node = dupstr(c && ni >= 0 && (size_t)ni < c->n_nodes ? c->nodes[ni].name : "?");
	ps->mode = dupstr(c ? cfg_pool_mode_str(c->pool.mode) : "");
	struct pool_stats st;
	pool_get_stats(p, &st);
	uint32_t login = pc ? pc->login : 0;
	ps->sv_idle = (uint32_t)st.idle;
	ps->sv_login = login;
	ps->sv_active = st.active > (int)login ? (uint32_t)(st.active - (int)login) : 0;
	ps->sv_used = 0;
	ps->cl_active = pc ? pc->active : 0;
	ps->cl_waiting = pc ? pc->waiting : (uint32_t)st.waiting;
	ps->maxwait_secs = pc ? pc->maxwait : 0;
	ps->max_size = c ? (uint32_t)c->pool.max_pool_size : 0;
	ps->wait_timeouts = st.wait_timeouts;
	ps->paused = ctl_is_paused(pool_database(p));
	struct pool_ctr sum;
	sum_ctr(p, &sum);
	ps->xact_count = sum.xacts;
	ps->query_count = sum.queries;
	ps->bytes_received = sum.bytes_in;
	ps->bytes_sent = sum.bytes_out;
	ps->xact_time_secs = (double)sum.xact_us / 1e6;
	ps->query_time_secs = (double)sum.query_us / 1e6;
	ps->wait_time_secs = (double)sum.wait_us / 1e6;
	ps->server_assignments = sum.assigns;
	ps->client_parses = sum.cparse;
	ps->server_parses = sum.sparse;
	ps->binds = sum.binds;
	ps->client_logins = sum.logins;
	ps->wait_hist = hist_new(sum.wh, sum.wait_us);
	ps->query_hist = hist_new(sum.qh, sum.query_us);
	return ps;
}

/* The server connections of tenant id's pools (per-tenant pool statistics
 * live here, not in policy/: the tenant module knows no pool). */
static uint32_t tenant_servers(const char *id)
{
	uint32_t n = 0;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
		if (strcmp(pool_tenant(p), id))
			continue;
		struct pool_stats st;
		pool_get_stats(p, &st);
		n += (uint32_t)st.total;
	}
	return n;
}

/* Posts the job to every worker and waits (bounded) for their parts. */
static struct collect_job *collect(bool detail, size_t queries)
{
	struct collect_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	if (queries) {
		j->qs_limit = detail ? 0 : queries;
		j->qs = analytics_scratch(j->qs_limit);
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->detail = detail;
	clock_gettime(CLOCK_MONOTONIC, &j->now_mono); /* conn_now()'s clock */
	j->now_real = cpwire_now();
	int n = workers_started();
	j->refs = n + 1;
	j->remaining = n;
	for (int i = 0; i < n; i++) {
		if (post_collect(&g_workers[i], j) < 0) {
			pthread_mutex_lock(&j->mu);
			j->remaining--;
			j->refs--;
			pthread_mutex_unlock(&j->mu);
		}
	}
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 2;
	pthread_mutex_lock(&j->mu);
	while (j->remaining > 0)
		if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) == ETIMEDOUT)
			break;
	j->taken = true; /* late workers add nothing */
	pthread_mutex_unlock(&j->mu);
	return j;
}

/* The live plugins' counters (plugin/plugin_set.h), none without plugins. */
#define REPORT_PLUGINS_MAX 64
static void plugin_stats_into(Helios__StatsReport *r)
{
	r->plugin_generation = plugin_set_generation();
	struct plugin_stats *ps = calloc(REPORT_PLUGINS_MAX, sizeof(*ps));
	size_t n = ps ? plugin_set_stats(ps, REPORT_PLUGINS_MAX) : 0;
	r->plugins = n ? calloc(n, sizeof(*r->plugins)) : NULL;
	for (size_t k = 0; r->plugins && k < n; k++) {
		Helios__PluginStats *m = malloc(sizeof(*m));
		if (!m)
			break;
		helios__plugin_stats__init(m);
		m->name = dupstr(ps[k].name);
		m->sha256 = dupstr(ps[k].sha256);
		m->disabled = ps[k].disabled;
		m->calls = ps[k].calls;
		m->time_secs = (double)ps[k].time_ns / 1e9;
		m->denials = ps[k].denials;
		m->rewrites = ps[k].rewrites;
		m->traps = ps[k].traps;
		m->timeouts = ps[k].timeouts;
		m->budget_exhausted = ps[k].budget_exhausted;
		m->failures = ps[k].failures;
		m->instances = ps[k].instances;
		r->plugins[r->n_plugins++] = m;
	}
	free(ps);
}

Helios__StatsReport *stats_report(bool detail)
{
	return stats_report_ex(detail, 0);
}

Helios__StatsReport *stats_report_ex(bool detail, size_t slow_lines)
{
	Helios__StatsReport *r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	helios__stats_report__init(r);
	struct snap *sn = snap_current();
	const struct cfg *c = sn ? sn->cfg : NULL;
	struct cp_link_state ls;
	ctl_link_state(&ls);
	r->dataplane_id = dupstr(ls.dataplane_id);
	r->generation = sn ? sn->generation : 0;
	r->uptime_secs = (double)(cpwire_mono_ms() - start_mono_ms) / 1000.0;
	r->collected_at = cpwire_now();
	struct conn_totals tot;
	conn_totals(&tot);
	r->clients = tot.clients;
	r->clients_max = c ? (uint32_t)c->max_client_conn : 0;
	r->cp_connected = ls.connected;
	r->cp_reconnects = ls.reconnects;
	int nw = workers_started();
	r->io_backend = dupstr(nw ? io_backend_str(g_workers[0].backend) : "");
	r->workers = (uint32_t)nw;
	r->logins_total = tot.logins;
	r->splice_active = tot.splice_active;
	r->splice_total = tot.splice_total;
	r->splice_fallbacks = tot.splice_fallbacks;
	r->splice_reused = tot.splice_reused;
	r->login_failures = tot.login_failures;

	size_t queries = 0;
	if (c && c->analytics.enabled)
		queries = detail ? 1 : (size_t)c->analytics.metrics_top;
	struct collect_job *j = collect(detail, queries);
	size_t np = 0;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p))
		np++;
	r->pools = calloc(np ? np : 1, sizeof(*r->pools));
	size_t i = 0;
	for (struct pool *p = pool_first(); p && r->pools && i < np; p = pool_next_of(p)) {
		const struct conn_pool_row *pc = j ? conn_snapshot_pool(&j->snap, p) : NULL;
		Helios__PoolStats *ps = pool_stats_msg(p, pc, c);
		if (!ps)
			continue;
		r->pools[i++] = ps;
		r->queries_total += ps->query_count;
		r->xacts_total += ps->xact_count;
		r->bytes_in += ps->bytes_received;
		r->bytes_out += ps->bytes_sent;
		if (detail && j) {
			pthread_mutex_lock(&j->mu);
			conn_snapshot_idle(p, &j->snap);
			pthread_mutex_unlock(&j->mu);
		}
	}
	r->n_pools = i;
	if (j && detail) {
		pthread_mutex_lock(&j->mu);
		const struct conn_snapshot *cs = &j->snap;
		r->client_list = calloc(cs->n_clients ? cs->n_clients : 1, sizeof(*r->client_list));
		for (size_t k = 0; r->client_list && k < cs->n_clients; k++) {
			Helios__ClientInfo *ci = client_info(j, &cs->clients[k]);
			if (ci)
				r->client_list[r->n_client_list++] = ci;
		}
		r->server_list = calloc(cs->n_servers ? cs->n_servers : 1, sizeof(*r->server_list));
		for (size_t k = 0; r->server_list && k < cs->n_servers; k++) {
			Helios__ServerInfo *si = server_info(j, &cs->servers[k]);
			if (!si)
				continue;
			/* node names for the servers */
			const char *name = "?";
			if (c)
				for (size_t q = 0; q < c->n_nodes; q++)
					if (!strcmp(c->nodes[q].host, si->addr) &&
					    (uint32_t)c->nodes[q].port == si->port)
						name = c->nodes[q].name;
			si->node = dupstr(name);
			r->server_list[r->n_server_list++] = si;
		}
		pthread_mutex_unlock(&j->mu);
	}
	if (j && j->qs) {
		/* summary reports carry the top metrics_top; detailed ones all */
		size_t top = detail ? 0 : (size_t)(c ? c->analytics.metrics_top : 0);
		if (detail || top)
			r->queries = analytics_top(j->qs, top, &r->n_queries);
	}
	if (j)
		job_unref(j);
	if (slow_lines)
		r->slow_lines = analytics_slow_lines(slow_lines, &r->n_slow_lines);
	analytics_slow_counts(&r->slow_logged, &r->slow_dropped);
	r->cache = cache_stats_msg();
	r->tenants = tenant_stats(&r->n_tenants);
	for (size_t k = 0; r->tenants && k < r->n_tenants; k++)
		r->tenants[k]->servers = tenant_servers(r->tenants[k]->id);
	r->rate_buckets = rate_bucket_stats(&r->n_rate_buckets);

	r->pins = calloc((size_t)tot.n_pins + 1, sizeof(*r->pins));
	for (int k = 0; r->pins && k < tot.n_pins; k++) {
		Helios__PinCount *pcn = malloc(sizeof(*pcn));
		if (!pcn)
			break;
		helios__pin_count__init(pcn);
		pcn->reason = dupstr(tot.pins[k].reason);
		pcn->total = tot.pins[k].total;
		r->pins[r->n_pins++] = pcn;
	}
	r->paused = ctl_paused_list(&r->n_paused);
	char dis[64][64];
	size_t nd = conn_disabled_databases(dis, 64);
	r->disabled = calloc(nd ? nd : 1, sizeof(*r->disabled));
	for (size_t k = 0; r->disabled && k < nd; k++)
		r->disabled[r->n_disabled++] = dupstr(dis[k]);
	r->nodes = ctl_nodes_copy(&r->n_nodes);
	plugin_stats_into(r);
	snap_unref(sn);
	return r;
}

void stats_report_free(Helios__StatsReport *r)
{
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}
