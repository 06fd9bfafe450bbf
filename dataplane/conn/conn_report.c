/*
 * Value snapshots of connections and conn/'s counters; see conn_report.h.
 * May call: conn/ itself, pool/ (its counter blocks, its idle list), rt/
 * (the worker's lists). The one walk of a worker's connections for reports
 * is conn_snapshot_worker.
 */
#include "dataplane/conn/conn_report.h"

#include "dataplane/conn/conn_worker.h"

#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/splice.h"
#include "dataplane/pool/pool.h"
#include "dataplane/pool/pool_ctr.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PIN_COUNT <= CONN_MAX_PINS, "conn_totals.pins too small");

uint64_t g_logins_total, g_login_failures;

/* ------------------------------------------------------------ counters */

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

void conn_ctr_client_sent(struct server *sv, uint32_t nbytes)
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

void conn_ctr_server_sent(struct server *sv, uint32_t nbytes)
{
	struct pool_ctr *c = ctr_of(sv);
	if (c)
		ctr_add(&c->bytes_out, nbytes);
}

void conn_ctr_ready(struct server *sv, char status)
{
	struct pool_ctr *c = ctr_of(sv);
	if (!c || !sv->q_busy)
		return;
	struct timespec now;
	conn_now(&now);
	sv->z_at = now; /* idle_transaction_timeout counts from here */
	uint64_t q = us_between(&sv->q_start, &now);
	sv->q_busy = false;
	ctr_add(&c->queries, 1);
	ctr_add(&c->query_us, q);
	ctr_add(&c->qh[ctr_bucket(q)], 1);
	if (status == 'I' && sv->x_busy) {
		sv->x_busy = false;
		ctr_add(&c->xacts, 1);
		ctr_add(&c->xact_us, us_between(&sv->x_start, &now));
	}
}

void conn_ctr_spliced(struct server *sv, uint64_t queries, uint64_t xacts, uint64_t query_us,
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
	ctr_add(&c->qh[ctr_bucket(query_us / queries)], queries);
	ctr_add(&c->xacts, xacts);
	ctr_add(&c->xact_us, query_us); /* per statement: the best the counts allow */
}

void conn_ctr_waited(struct client *cl, const struct timespec *since)
{
	if (!cl->pool)
		return;
	struct pool_ctr *c = pool_ctr(cl->pool, cl->w->idx);
	struct timespec now;
	conn_now(&now);
	uint64_t w = us_between(since, &now);
	ctr_add(&c->wait_us, w);
	ctr_add(&c->wh[ctr_bucket(w)], 1);
}

void conn_totals(struct conn_totals *out)
{
	memset(out, 0, sizeof(*out));
	out->clients = (uint32_t)__atomic_load_n(&g_client_count, __ATOMIC_RELAXED);
	out->logins = __atomic_load_n(&g_logins_total, __ATOMIC_RELAXED);
	out->login_failures = __atomic_load_n(&g_login_failures, __ATOMIC_RELAXED);
	out->splice_active = (uint32_t)__atomic_load_n(&g_splice_active, __ATOMIC_RELAXED);
	out->splice_total = __atomic_load_n(&g_splice_total, __ATOMIC_RELAXED);
	out->splice_fallbacks = __atomic_load_n(&g_splice_fallbacks, __ATOMIC_RELAXED);
	out->splice_reused = __atomic_load_n(&g_splice_reused, __ATOMIC_RELAXED);
	out->n_pins = PIN_COUNT;
	for (int r = 0; r < PIN_COUNT; r++) {
		out->pins[r].reason = pin_reason_str((enum pin_reason)r);
		out->pins[r].total = __atomic_load_n(&g_pin_count[r], __ATOMIC_RELAXED);
	}
}

/* ------------------------------------------------------------ console seam */

static int (*console_submit)(int widx, uint64_t cl_id, const char *sql); /* atomic */

void conn_set_console(int (*fn)(int widx, uint64_t cl_id, const char *sql))
{
	__atomic_store_n(&console_submit, fn, __ATOMIC_RELEASE);
}

int conn_console_submit(int widx, uint64_t cl_id, const char *sql)
{
	int (*fn)(int, uint64_t, const char *) = __atomic_load_n(&console_submit, __ATOMIC_ACQUIRE);
	return fn ? fn(widx, cl_id, sql) : -1;
}

/* ------------------------------------------------------------ snapshots */

static void copy(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return arr;
	size_t nc = *cap ? *cap * 2 : 64;
	void *np = realloc(arr, nc * size);
	if (np)
		*cap = nc;
	return np;
}

static struct conn_client_row *client_slot(struct conn_snapshot *s)
{
	void *a = grow(s->clients, &s->cap_clients, s->n_clients, sizeof(*s->clients));
	if (!a)
		return NULL;
	s->clients = a;
	struct conn_client_row *r = &s->clients[s->n_clients++];
	memset(r, 0, sizeof(*r));
	return r;
}

static struct conn_server_row *server_slot(struct conn_snapshot *s)
{
	void *a = grow(s->servers, &s->cap_servers, s->n_servers, sizeof(*s->servers));
	if (!a)
		return NULL;
	s->servers = a;
	struct conn_server_row *r = &s->servers[s->n_servers++];
	memset(r, 0, sizeof(*r));
	return r;
}

static struct conn_pool_row *pool_slot(struct conn_snapshot *s, struct pool *p)
{
	for (size_t i = 0; i < s->n_pools; i++)
		if (s->pools[i].pool == p)
			return &s->pools[i];
	void *a = grow(s->pools, &s->cap_pools, s->n_pools, sizeof(*s->pools));
	if (!a)
		return NULL;
	s->pools = a;
	struct conn_pool_row *r = &s->pools[s->n_pools++];
	memset(r, 0, sizeof(*r));
	r->pool = p;
	return r;
}

const struct conn_pool_row *conn_snapshot_pool(const struct conn_snapshot *s, const struct pool *p)
{
	for (size_t i = 0; i < s->n_pools; i++)
		if (s->pools[i].pool == p)
			return &s->pools[i];
	return NULL;
}

static const char *client_state(const struct client *cl)
{
	switch (cl->state) {
	case CL_STARTUP:
	case CL_TLS:
	case CL_AUTH:
		return "login";
	case CL_WAIT_SERVER:
		return cl_held(cl) ? "paused" : "waiting";
	case CL_ACTIVE:
		if (cl_held(cl))
			return "paused";
		if (cl->pw.state != POOL_W_NONE || cl->connecting)
			return "waiting";
		return cl->server ? "active" : "idle";
	default:
		return "closing";
	}
}

static void client_row(struct conn_client_row *r, const struct client *cl, const char *state,
                       const struct timespec *now, int widx)
{
	r->id = cl->id;
	r->pool = cl->pool;
	copy(r->user, sizeof(r->user), cl->user);
	copy(r->database, sizeof(r->database), cl->database);
	copy(r->peer, sizeof(r->peer), cl->peer);
	copy(r->state, sizeof(r->state), state);
	r->connect_s = cl->connect_s;
	r->request_s = cl->request_s;
	if (cl->queue == CLQ_WAITING || cl_held(cl))
		r->wait_secs = conn_elapsed(&cl->wait_start, now);
	r->server_pid = cl->server ? cl->server->backend_pid : 0;
	r->tls = cl->is_tls;
	for (int i = 0; i < cl->n_params; i++)
		if (!strcmp(cl->params[i].name, "application_name"))
			copy(r->app_name, sizeof(r->app_name), cl->params[i].value);
	for (int k = 0; k < PIN_COUNT; k++)
		if (cl->pins & (1u << k)) {
			copy(r->pinned, sizeof(r->pinned), pin_reason_str((enum pin_reason)k));
			break;
		}
	r->worker = widx;
	struct splice_info si;
	if (cl->kf && splice_read(cl, &si)) {
		r->spliced = true;
		r->spliced_queries = si.ready;
		r->spliced_tx = si.status;
	}
}

static void server_row(struct conn_server_row *r, const struct server *sv, const char *state,
                       int widx)
{
	r->pid = sv->backend_pid;
	copy(r->user, sizeof(r->user), sv->user);
	copy(r->database, sizeof(r->database), sv->database);
	copy(r->host, sizeof(r->host), sv->node_host);
	r->port = sv->node_port;
	copy(r->state, sizeof(r->state), state);
	r->created = sv->created;
	r->last_used = sv->last_used;
	r->client_id = sv->client ? sv->client->id : 0;
	r->tls = sv->ep.tls != NULL;
	r->worker = widx;
}

int conn_snapshot_worker(struct worker *w, bool detail, const struct timespec *now,
                         struct conn_snapshot *out)
{
	int rc = 0;
	for (struct client *cl = cw_of(w)->clients; cl; cl = cl->all_next) {
		const char *st = client_state(cl);
		if (cl->pool && (cl->state == CL_ACTIVE || cl->state == CL_WAIT_SERVER)) {
			struct conn_pool_row *pc = pool_slot(out, cl->pool);
			if (!pc) {
				rc = -ENOMEM;
			} else if (!strcmp(st, "waiting") || !strcmp(st, "paused")) {
				pc->waiting++;
				double waited = conn_elapsed(&cl->wait_start, now);
				if (waited > pc->maxwait)
					pc->maxwait = waited;
			} else {
				pc->active++;
			}
		}
		if (!detail)
			continue;
		struct conn_client_row *cr = client_slot(out);
		if (cr)
			client_row(cr, cl, st, now, w->idx);
		else
			rc = -ENOMEM;
		if (cl->server && cl->server->client == cl) {
			struct conn_server_row *sr = server_slot(out);
			if (sr)
				server_row(sr, cl->server, "active", w->idx);
			else
				rc = -ENOMEM;
		}
	}
	for (struct server *sv = cw_of(w)->sv[SVL_LOGIN]; sv; sv = sv->wl_next) {
		if (sv->pool) {
			struct conn_pool_row *pc = pool_slot(out, sv->pool);
			if (pc)
				pc->login++;
			else
				rc = -ENOMEM;
		}
		if (detail) {
			struct conn_server_row *sr = server_slot(out);
			if (sr)
				server_row(sr, sv, "login", w->idx);
			else
				rc = -ENOMEM;
		}
	}
	return rc;
}

struct idle_walk {
	struct conn_snapshot *out;
	int rc;
};

static void add_idle(struct pool_item *it, void *ud)
{
	struct idle_walk *iw = ud;
	struct server *sv = sv_of_pool_item(it);
	struct conn_server_row *sr = server_slot(iw->out);
	if (sr)
		server_row(sr, sv, "idle", -1);
	else
		iw->rc = -ENOMEM;
}

int conn_snapshot_idle(struct pool *p, struct conn_snapshot *out)
{
	struct idle_walk iw = {.out = out};
	pool_foreach_idle(p, add_idle, &iw);
	return iw.rc;
}

void conn_snapshot_free(struct conn_snapshot *s)
{
	free(s->clients);
	free(s->servers);
	free(s->pools);
	memset(s, 0, sizeof(*s));
}
