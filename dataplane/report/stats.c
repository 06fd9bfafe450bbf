/*
 * Counters, reports and the per-worker collection behind them. See stats.h.
 */
#include "dataplane/conn/splice.h"
#include "dataplane/report/stats.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/conn/conn.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const double stats_bounds[STATS_NBOUNDS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
/* the same bounds in microseconds, for the hot path */
static const uint64_t bounds_us[STATS_NBOUNDS] = {100,    500,     1000,    2500,    5000,
                                                  10000,  25000,   50000,   100000,  250000,
                                                  500000, 1000000, 2500000, 5000000, 10000000};

uint64_t g_logins_total, g_login_failures;
static double start_real;
static uint64_t start_mono_ms;

__attribute__((constructor)) static void stats_init(void)
{
	start_real = cpwire_now();
	start_mono_ms = cpwire_mono_ms();
}

int stats_bucket(uint64_t us)
{
	int i = 0;
	while (i < STATS_NBOUNDS && us > bounds_us[i])
		i++;
	return i;
}

static uint64_t us_between(const struct timespec *a, const struct timespec *b)
{
	int64_t d = (int64_t)(b->tv_sec - a->tv_sec) * 1000000 + (b->tv_nsec - a->tv_nsec) / 1000;
	return d > 0 ? (uint64_t)d : 0;
}

static struct pool_ctr *ctr_of(struct server *sv)
{
	if (!sv->pool || !sv->w)
		return NULL;
	return pool_ctr(sv->pool, sv->w->idx);
}

void stats_client_sent(struct server *sv, uint32_t nbytes)
{
	struct pool_ctr *c = ctr_of(sv);
	if (!c)
		return;
	ctr_add(&c->bytes_in, nbytes);
	if (!sv->q_busy) {
		sv->q_busy = true;
		conn_now(&sv->q_start);
		if (!sv->x_busy) {
			sv->x_busy = true;
			sv->x_start = sv->q_start;
		}
	}
}

void stats_server_sent(struct server *sv, uint32_t nbytes)
{
	struct pool_ctr *c = ctr_of(sv);
	if (c)
		ctr_add(&c->bytes_out, nbytes);
}

void stats_ready(struct server *sv, char status)
{
	struct pool_ctr *c = ctr_of(sv);
	if (!c || !sv->q_busy)
		return;
	struct timespec now;
	conn_now(&now);
	uint64_t q = us_between(&sv->q_start, &now);
	sv->q_busy = false;
	ctr_add(&c->queries, 1);
	ctr_add(&c->query_us, q);
	ctr_add(&c->qh[stats_bucket(q)], 1);
	if (status == 'I' && sv->x_busy) {
		sv->x_busy = false;
		ctr_add(&c->xacts, 1);
		ctr_add(&c->xact_us, us_between(&sv->x_start, &now));
	}
}

void stats_spliced(struct server *sv, uint64_t queries, uint64_t xacts, uint64_t query_us,
                   uint64_t bytes_in, uint64_t bytes_out)
{
	struct pool_ctr *c = ctr_of(sv);
	if (!c)
		return;
	ctr_add(&c->bytes_in, bytes_in);
	ctr_add(&c->bytes_out, bytes_out);
	if (!queries)
		return;
	ctr_add(&c->queries, queries);
	ctr_add(&c->query_us, query_us);
	ctr_add(&c->qh[stats_bucket(query_us / queries)], queries);
	ctr_add(&c->xacts, xacts);
	ctr_add(&c->xact_us, query_us); /* per statement: the best the counts allow */
}

void stats_waited(struct client *cl, const struct timespec *since)
{
	if (!cl->pool)
		return;
	struct pool_ctr *c = pool_ctr(cl->pool, cl->w->idx);
	struct timespec now;
	conn_now(&now);
	uint64_t w = us_between(since, &now);
	ctr_add(&c->wait_us, w);
	ctr_add(&c->wh[stats_bucket(w)], 1);
}

/* ------------------------------------------------------------ collection */

/* Per-pool client counts gathered on the workers. */
struct pool_clients {
	struct pool *pool;
	uint32_t active, waiting, login;
	double maxwait;
};

struct collect_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, remaining;
	bool detail, taken;
	struct timespec now_mono;
	double now_real;
	struct pool_clients *pc;
	size_t n_pc, cap_pc;
	Helios__ClientInfo **cls;
	size_t n_cls, cap_cls;
	Helios__ServerInfo **svs;
	size_t n_svs, cap_svs;
	struct qs_table *qs; /* analytics: the workers' tables merged */
	size_t qs_limit;     /* per worker, 0 = all */
};

static void job_unref(struct collect_job *j)
{
	pthread_mutex_lock(&j->mu);
	int left = --j->refs;
	pthread_mutex_unlock(&j->mu);
	if (left)
		return;
	for (size_t i = 0; i < j->n_cls; i++)
		protobuf_c_message_free_unpacked(&j->cls[i]->base, NULL);
	for (size_t i = 0; i < j->n_svs; i++)
		protobuf_c_message_free_unpacked(&j->svs[i]->base, NULL);
	free(j->cls);
	free(j->svs);
	free(j->pc);
	qs_table_free(j->qs);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

static struct pool_clients *pc_get(struct collect_job *j, struct pool *p)
{
	for (size_t i = 0; i < j->n_pc; i++)
		if (j->pc[i].pool == p)
			return &j->pc[i];
	if (j->n_pc == j->cap_pc) {
		size_t cap = j->cap_pc ? j->cap_pc * 2 : 16;
		struct pool_clients *n = realloc(j->pc, cap * sizeof(*n));
		if (!n)
			return NULL;
		j->pc = n;
		j->cap_pc = cap;
	}
	struct pool_clients *e = &j->pc[j->n_pc++];
	memset(e, 0, sizeof(*e));
	e->pool = p;
	return e;
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

static const char *client_state(const struct client *cl)
{
	switch (cl->state) {
	case CL_STARTUP:
	case CL_TLS:
	case CL_AUTH:
		return "login";
	case CL_WAIT_SERVER:
		return cl->held ? "paused" : "waiting";
	case CL_ACTIVE:
		if (cl->held)
			return "paused";
		if (cl->wait == CLW_QUEUED || cl->wait == CLW_HANDED || cl->connecting)
			return "waiting";
		return cl->server ? "active" : "idle";
	default:
		return "closing";
	}
}

static Helios__ClientInfo *client_info(const struct collect_job *j, const struct client *cl,
                                       int widx)
{
	Helios__ClientInfo *ci = malloc(sizeof(*ci));
	if (!ci)
		return NULL;
	helios__client_info__init(ci);
	ci->id = cl->id;
	ci->user = dupstr(cl->user);
	ci->database = dupstr(cl->database);
	ci->state = dupstr(client_state(cl));
	split_peer(cl->peer, &ci->addr, &ci->port);
	ci->local_addr = dupstr("");
	struct timespec t = {.tv_sec = cl->connect_s};
	ci->connect_time = to_unix(j, &t);
	t.tv_sec = cl->request_s;
	ci->request_time = to_unix(j, &t);
	if (cl->in_wait_list || cl->held)
		ci->wait_secs = conn_elapsed(&cl->wait_start, &j->now_mono);
	ci->server_pid = cl->server ? cl->server->backend_pid : 0;
	ci->tls = cl->is_tls;
	const char *app = "";
	for (int i = 0; i < cl->n_params; i++)
		if (!strcmp(cl->params[i].name, "application_name"))
			app = cl->params[i].value;
	ci->application_name = dupstr(app);
	ci->pinned = dupstr("");
	for (int r = 0; r < PIN_COUNT; r++)
		if (cl->pins & (1u << r)) {
			free(ci->pinned);
			ci->pinned = dupstr(pin_reason_str(r));
			break;
		}
	ci->worker = (uint32_t)widx;
	struct splice_info si;
	char tx[2] = "";
	if (cl->kf && splice_read(cl, &si)) {
		ci->spliced = true;
		ci->spliced_queries = si.ready;
		tx[0] = si.status;
	}
	ci->spliced_tx = dupstr(tx);
	return ci;
}

static Helios__ServerInfo *server_info(const struct collect_job *j, const struct server *sv,
                                       const char *state, int widx)
{
	Helios__ServerInfo *si = malloc(sizeof(*si));
	if (!si)
		return NULL;
	helios__server_info__init(si);
	si->pid = sv->backend_pid;
	si->user = dupstr(sv->user);
	si->database = dupstr(sv->database);
	si->node = NULL; /* named by the caller, which has the config */
	si->state = dupstr(state);
	si->addr = dupstr(sv->node_host);
	si->port = (uint32_t)sv->node_port;
	si->local_addr = dupstr("");
	si->connect_time = to_unix(j, &sv->created);
	si->request_time = to_unix(j, &sv->last_used);
	si->client_id = sv->client ? sv->client->id : 0;
	si->tls = sv->ep.tls != NULL;
	si->worker = (uint32_t)widx;
	return si;
}

#define PUSH(arr, n, cap, item)                                                                    \
	do {                                                                                       \
		if ((n) == (cap)) {                                                                \
			size_t nc = (cap) ? (cap)*2 : 64;                                          \
			void *np = realloc((arr), nc * sizeof(*(arr)));                            \
			if (!np)                                                                   \
				break;                                                             \
			(arr) = np;                                                                \
			(cap) = nc;                                                                \
		}                                                                                  \
		(arr)[(n)++] = (item);                                                             \
	} while (0)

/* Runs on worker w (from its mailbox): adds its clients and servers. */
void stats_collect_run(struct worker *w, struct collect_job *j)
{
	pthread_mutex_lock(&j->mu);
	if (!j->taken) {
		for (struct client *cl = w->clients; cl; cl = cl->all_next) {
			if (cl->pool && (cl->state == CL_ACTIVE || cl->state == CL_WAIT_SERVER)) {
				struct pool_clients *pc = pc_get(j, cl->pool);
				if (pc) {
					const char *st = client_state(cl);
					if (!strcmp(st, "waiting") || !strcmp(st, "paused")) {
						pc->waiting++;
						double waited =
						    conn_elapsed(&cl->wait_start, &j->now_mono);
						if (waited > pc->maxwait)
							pc->maxwait = waited;
					} else {
						pc->active++;
					}
				}
			}
			if (!j->detail)
				continue;
			Helios__ClientInfo *ci = client_info(j, cl, w->idx);
			if (ci)
				PUSH(j->cls, j->n_cls, j->cap_cls, ci);
			if (cl->server && cl->server->client == cl) {
				Helios__ServerInfo *si =
				    server_info(j, cl->server, "active", w->idx);
				if (si)
					PUSH(j->svs, j->n_svs, j->cap_svs, si);
			}
		}
		analytics_collect(w, j->qs, j->qs_limit);
		for (struct server *sv = w->logins; sv; sv = sv->login_next) {
			if (sv->pool) {
				struct pool_clients *pc = pc_get(j, sv->pool);
				if (pc)
					pc->login++;
			}
			if (j->detail) {
				Helios__ServerInfo *si = server_info(j, sv, "login", w->idx);
				if (si)
					PUSH(j->svs, j->n_svs, j->cap_svs, si);
			}
		}
	}
	j->remaining--;
	if (j->remaining == 0)
		pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	job_unref(j);
}

/* Idle servers sit in the pools, detached from any worker. */
static void add_idle(struct server *sv, void *ud)
{
	struct collect_job *j = ud;
	Helios__ServerInfo *si = server_info(j, sv, "idle", -1);
	if (si) {
		si->worker = 0;
		PUSH(j->svs, j->n_svs, j->cap_svs, si);
	}
}

/* ------------------------------------------------------------ reports */

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

static Helios__PoolStats *pool_stats_msg(struct pool *p, const struct pool_clients *pc,
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
	ps->wait_hist = hist_new(sum.wh, sum.wait_us);
	ps->query_hist = hist_new(sum.qh, sum.query_us);
	return ps;
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
	conn_now(&j->now_mono);
	j->now_real = cpwire_now();
	int n = workers_started();
	j->refs = n + 1;
	j->remaining = n;
	for (int i = 0; i < n; i++) {
		if (worker_post_collect(&g_workers[i], j) < 0) {
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
	r->clients = (uint32_t)__atomic_load_n(&g_client_count, __ATOMIC_RELAXED);
	r->clients_max = c ? (uint32_t)c->max_client_conn : 0;
	r->cp_connected = ls.connected;
	r->cp_reconnects = ls.reconnects;
	int nw = workers_started();
	r->io_backend = dupstr(nw ? io_backend_str(g_workers[0].backend) : "");
	r->workers = (uint32_t)nw;
	r->logins_total = __atomic_load_n(&g_logins_total, __ATOMIC_RELAXED);
	r->splice_active = (uint32_t)__atomic_load_n(&g_splice_active, __ATOMIC_RELAXED);
	r->splice_total = __atomic_load_n(&g_splice_total, __ATOMIC_RELAXED);
	r->splice_fallbacks = __atomic_load_n(&g_splice_fallbacks, __ATOMIC_RELAXED);
	r->splice_reused = __atomic_load_n(&g_splice_reused, __ATOMIC_RELAXED);
	r->login_failures = __atomic_load_n(&g_login_failures, __ATOMIC_RELAXED);

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
		const struct pool_clients *pc = NULL;
		if (j)
			for (size_t k = 0; k < j->n_pc; k++)
				if (j->pc[k].pool == p)
					pc = &j->pc[k];
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
			pool_foreach_idle(p, add_idle, j);
			pthread_mutex_unlock(&j->mu);
		}
	}
	r->n_pools = i;
	if (j && detail) {
		pthread_mutex_lock(&j->mu);
		/* node names for the servers */
		for (size_t k = 0; k < j->n_svs; k++) {
			Helios__ServerInfo *si = j->svs[k];
			const char *name = "?";
			if (c)
				for (size_t q = 0; q < c->n_nodes; q++)
					if (!strcmp(c->nodes[q].host, si->addr) &&
					    (uint32_t)c->nodes[q].port == si->port)
						name = c->nodes[q].name;
			si->node = dupstr(name);
		}
		r->client_list = j->cls;
		r->n_client_list = j->n_cls;
		r->server_list = j->svs;
		r->n_server_list = j->n_svs;
		j->cls = NULL;
		j->svs = NULL;
		j->n_cls = j->n_svs = 0;
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
	for (size_t ti = 0; r->tenants && ti < r->n_tenants; ti++) {
		/* its server connections, over every pool it has */
		for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
			if (strcmp(pool_tenant(p), r->tenants[ti]->id))
				continue;
			struct pool_stats st;
			pool_get_stats(p, &st);
			r->tenants[ti]->servers += (uint32_t)st.total;
		}
	}
	r->rate_buckets = rate_bucket_stats(&r->n_rate_buckets);

	r->pins = calloc(PIN_COUNT, sizeof(*r->pins));
	for (int k = 0; r->pins && k < PIN_COUNT; k++) {
		Helios__PinCount *pcn = malloc(sizeof(*pcn));
		if (!pcn)
			break;
		helios__pin_count__init(pcn);
		pcn->reason = dupstr(pin_reason_str(k));
		pcn->total = __atomic_load_n(&g_pin_count[k], __ATOMIC_RELAXED);
		r->pins[r->n_pins++] = pcn;
	}
	r->paused = ctl_paused_list(&r->n_paused);
	r->nodes = ctl_nodes_copy(&r->n_nodes);
	snap_unref(sn);
	return r;
}

void stats_report_free(Helios__StatsReport *r)
{
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}
