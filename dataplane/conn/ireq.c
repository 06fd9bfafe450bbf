/*
 * Internal requests (pipeline/ireq.h) on pooled server connections: SQL
 * that does not come from a wire client takes a server from the pool as a
 * client would, sends a Query (or Parse/Bind/Execute/Sync with text
 * parameters), collects the DataRows and gives the server back at its
 * ReadyForQuery 'I' through sv_release (so it is pooled exactly as after a
 * client's transaction), or closes it when the answer left it anything
 * else.
 *
 * A request that finds no idle server waits on its worker's pending list
 * (this thread only): it takes the next server of its pool that this
 * worker parks (sv_claim_for_ireq from park()), and when the pool may grow
 * it opens one (a warm connection, which parks once logged in). The
 * worker's tick retries and times out pending requests.
 *
 * Owns: struct ireq_run, server->ireq while a request runs on it. Calls
 * pool/ (acquire, release through sv_release), server.c, route_primary.
 */
#include "dataplane/pipeline/ireq.h"

#include "common/log.h"
#include "dataplane/conn/conn_internal.h"

#include "common/cfg.h"
#include "dataplane/conn/server_internal.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/pool/pool.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IREQ_DEFAULT_TIMEOUT_MS 10000u
#define IREQ_INBUF_MAX          (16u << 20) /* one answer message at most */

struct ireq_run {
	struct ireq_run *next; /* the worker's pending list, or its running list */
	struct server *sv;     /* running on it */
	struct pool *pool;
	int node_idx;
	bool connecting; /* a connection was opened for it */
	bool expired;    /* its answer did not come in time: its server is closed */
	uint64_t deadline_ns;
	ireq_done_fn *done;
	void *arg;
	uint8_t *msg; /* the request's messages */
	uint32_t msg_len;
	size_t max_bytes;
	uint8_t *rows;
	size_t rows_len, rows_cap;
	uint64_t n_rows;
	int err;
	char sqlstate[6];
	char message[256];
};

static __thread struct ireq_run *pending; /* waiting for a server on this worker */
static __thread struct ireq_run *running; /* on a server of this worker */

static void unlink_running(struct ireq_run *r)
{
	for (struct ireq_run **pp = &running; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			return;
		}
	}
}

static void run_free(struct ireq_run *r)
{
	free(r->msg);
	free(r->rows);
	free(r);
}

/* Calls the owner once and frees the request. */
static void run_finish(struct ireq_run *r)
{
	struct ireq_result res = {.err = r->err,
	                          .sqlstate = r->sqlstate[0] ? r->sqlstate : NULL,
	                          .message = r->message[0] ? r->message : NULL,
	                          .rows = r->rows,
	                          .rows_len = r->rows_len,
	                          .n_rows = r->n_rows};
	if (r->err && !res.message)
		res.message = strerror(-r->err);
	r->done(r->arg, &res);
	run_free(r);
}

static void fail(struct ireq_run *r, int err, const char *msg)
{
	r->err = err;
	if (msg)
		snprintf(r->message, sizeof(r->message), "%s", msg);
	run_finish(r);
}

static int build_msgs(struct ireq_run *r, const struct ireq *rq)
{
	size_t cap = strlen(rq->sql) + 64;
	for (int i = 0; i < rq->n_params; i++)
		cap += 4 + (rq->params[i] ? strlen(rq->params[i]) : 0);
	if (cap > UINT32_MAX / 2)
		return -EMSGSIZE;
	r->msg = malloc(cap);
	if (!r->msg)
		return -ENOMEM;
	struct pgw_out o;
	pgw_out_init(&o, r->msg, cap);
	if (rq->n_params <= 0) {
		pgw_query(&o, rq->sql);
	} else {
		size_t m = pgw_begin_msg(&o, 'P');
		pgw_put_str(&o, "");
		pgw_put_str(&o, rq->sql);
		pgw_put_u8(&o, 0);
		pgw_put_u8(&o, 0); /* no parameter types: the server infers them */
		pgw_end_msg(&o, m);
		m = pgw_begin_msg(&o, 'B');
		pgw_put_str(&o, "");
		pgw_put_str(&o, "");
		pgw_put_u8(&o, 0);
		pgw_put_u8(&o, 0); /* all parameters text */
		pgw_put_u8(&o, (uint8_t)(rq->n_params >> 8));
		pgw_put_u8(&o, (uint8_t)rq->n_params);
		for (int i = 0; i < rq->n_params; i++) {
			const char *v = rq->params[i];
			if (!v) {
				pgw_put_u32(&o, 0xffffffffu);
				continue;
			}
			pgw_put_u32(&o, (uint32_t)strlen(v));
			pgw_put_bytes(&o, v, strlen(v));
		}
		pgw_put_u8(&o, 0);
		pgw_put_u8(&o, 0); /* results text */
		pgw_end_msg(&o, m);
		pgw_execute_sync(&o);
	}
	if (o.overflow)
		return -EMSGSIZE;
	r->msg_len = (uint32_t)o.len;
	return 0;
}

/* sv (attached to this worker, idle at 'I', nobody's) runs r. */
static void start_on(struct ireq_run *r, struct server *sv)
{
	r->sv = sv;
	r->next = running;
	running = r;
	sv->ireq = r;
	sv->state = SV_ACTIVE;
	sv->client = NULL;
	sv->clean = false;
	sv->ep.in_max = IREQ_INBUF_MAX;
	if (ep_send_bytes(&sv->ep, r->msg, r->msg_len) < 0 || io_recv_start(&sv->ep.sock) < 0)
		sv_close(sv); /* ireq_server_gone fails r */
}

static void pend(struct ireq_run *r)
{
	r->next = pending;
	pending = r;
}

/* Takes a server for r now, or leaves it pending (opening a connection
 * when the pool may grow). */
static void try_start(struct ireq_run *r, struct worker *w)
{
	for (int tries = 0; tries < 4; tries++) {
		struct pool_item *it = NULL;
		int max = pool_max(r->pool);
		enum pool_grant g = pool_acquire(r->pool, NULL, max, &it);
		struct server *sv = it ? sv_of_pool_item(it) : NULL;
		switch (g) {
		case POOL_GOT:
			sv_attach(sv, w);
			if (!sv_alive(sv)) {
				sv_close(sv);
				continue;
			}
			start_on(r, sv);
			return;
		case POOL_CONNECT:
			/* a connection of its own, pooled once logged in, where
			 * park() hands it to the first pending request */
			if (r->connecting || sv_connect(w, r->pool, NULL, r->node_idx) < 0)
				pool_drop(r->pool, max);
			else
				r->connecting = true;
			pend(r);
			return;
		case POOL_REPLACE:
			/* another signature's server: not ours to close */
			if (!pool_release(r->pool, it, worker_self())) {
				sv_attach(sv, w);
				sv_close(sv);
			}
			pend(r);
			return;
		case POOL_WAIT:
			pend(r);
			return;
		}
	}
	pend(r);
}

static int ireq_conn_submit(const struct ireq *rq)
{
	struct worker *w = worker_self();
	if (!w)
		return -EINVAL;
	struct snap *sn = snap_current();
	int node = sn ? route_primary(sn->cfg) : -1;
	/* a [[databases]] entry's forced user: its clients' pool, whose
	 * servers know how to log in (the login user's would have none) */
	bool none;
	const struct cfg_database *db = sn ? cfg_database_find(sn->cfg, rq->database, &none) : NULL;
	char user[64];
	snprintf(user, sizeof(user), "%s", db && db->user[0] ? db->user : rq->user);
	snap_unref(sn);
	if (node < 0)
		return -EHOSTUNREACH;
	struct pool *p =
	    pool_lookup(rq->database, user, rq->tenant ? rq->tenant : "", node, rq->server_cap);
	if (!p)
		return -ENOMEM;
	struct ireq_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int e = build_msgs(r, rq);
	if (e < 0) {
		run_free(r);
		return e;
	}
	r->pool = p;
	r->node_idx = node;
	r->done = rq->done;
	r->arg = rq->arg;
	r->max_bytes = rq->max_bytes ? rq->max_bytes : IREQ_INBUF_MAX;
	r->deadline_ns =
	    conn_now_ns() +
	    (uint64_t)(rq->timeout_ms ? rq->timeout_ms : IREQ_DEFAULT_TIMEOUT_MS) * 1000000ull;
	try_start(r, w);
	return 0;
}

static const struct ireq_ops conn_ireq_ops = {.submit = ireq_conn_submit};

void ireq_conn_install(void)
{
	ireq_install(&conn_ireq_ops);
}

bool sv_claim_for_ireq(struct server *sv)
{
	if (!sv->pool || sv->ireq)
		return false;
	for (struct ireq_run **pp = &pending; *pp; pp = &(*pp)->next) {
		struct ireq_run *r = *pp;
		if (r->pool != sv->pool)
			continue;
		*pp = r->next;
		r->next = NULL;
		start_on(r, sv);
		return true;
	}
	return false;
}

static void rows_put(struct ireq_run *r, const uint8_t *p, size_t n)
{
	if (r->err)
		return;
	if (r->rows_len + n > r->max_bytes) {
		r->err = -EMSGSIZE;
		snprintf(r->message, sizeof(r->message), "internal request: answer over %zu bytes",
		         r->max_bytes);
		return;
	}
	if (r->rows_len + n > r->rows_cap) {
		size_t cap = r->rows_cap ? r->rows_cap : 4096;
		while (cap < r->rows_len + n)
			cap *= 2;
		uint8_t *b = realloc(r->rows, cap);
		if (!b) {
			r->err = -ENOMEM;
			return;
		}
		r->rows = b;
		r->rows_cap = cap;
	}
	memcpy(r->rows + r->rows_len, p, n);
	r->rows_len += n;
	r->n_rows++;
}

void ireq_server_input(struct server *sv)
{
	while (sv->ireq) {
		struct ireq_run *r = sv->ireq;
		struct pgw_msg m;
		enum pgw_status st = pgw_next_msg(sv->ep.in, sv->ep.in_len, IREQ_INBUF_MAX - 5, &m);
		if (st == PGW_NEED_MORE)
			return;
		if (st == PGW_BAD) {
			sv_fail(sv, NULL, 0, "08P01",
			        "invalid message from server (internal request)");
			return;
		}
		switch (m.type) {
		case 'D':
			rows_put(r, sv->ep.in, m.total);
			break;
		case PGW_MSG_ERROR:
			sv_note_error(sv, m.body, m.len);
			if (!r->sqlstate[0]) {
				const char *c = pgw_error_field(m.body, m.len, 'C');
				const char *msg = pgw_error_field(m.body, m.len, 'M');
				snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", c ? c : "XX000");
				snprintf(r->message, sizeof(r->message), "%s", msg ? msg : "?");
			}
			break;
		case PGW_MSG_PARAM_STATUS:
			sv_param_status(sv, m.body, m.len);
			break;
		case PGW_MSG_READY:
			sv->tx_status = m.len ? (char)m.body[0] : 'I';
			ep_in_consume(&sv->ep, m.total);
			unlink_running(r);
			sv->ireq = NULL;
			sv->ep.in_max = 0;
			if (sv->tx_status == 'I' && sv->ep.in_len == 0) {
				sv_node_ok(sv);
				sv->clean = true;
				sv_release(sv); /* pooled (or handed to the next pending request) */
			} else {
				sv_close(sv);
			}
			run_finish(r);
			return;
		default:
			break; /* RowDescription, CommandComplete, notices... */
		}
		ep_in_consume(&sv->ep, m.total);
	}
}

void ireq_server_gone(struct server *sv)
{
	struct ireq_run *r = sv->ireq;
	if (!r)
		return;
	unlink_running(r);
	sv->ireq = NULL;
	sv->ep.in_max = 0;
	if (r->expired)
		fail(r, -ETIMEDOUT, "internal request: no answer in time");
	else
		fail(r, -ECONNRESET, "internal request: the server connection was lost");
}

void ireq_worker_tick(uint64_t now_ns)
{
	struct worker *w = worker_self();
	/* an answer that takes too long: its server goes (it may be stuck) */
	for (struct ireq_run *r = running, *next; r; r = next) {
		next = r->next;
		if (now_ns >= r->deadline_ns && !r->expired) {
			r->expired = true;
			sv_close(r->sv); /* ireq_server_gone fails it */
			next = running;  /* the list changed */
		}
	}
	struct ireq_run *list = pending;
	pending = NULL;
	while (list) {
		struct ireq_run *r = list;
		list = r->next;
		r->next = NULL;
		if (now_ns >= r->deadline_ns)
			fail(r, -ETIMEDOUT, "internal request: no server connection became free");
		else
			try_start(r, w);
	}
}

bool ireq_worker_busy(void)
{
	return running != NULL;
}

void ireq_worker_abort(void)
{
	for (struct ireq_run *r = running; r; r = running) {
		struct server *sv = r->sv;
		unlink_running(r);
		sv->ireq = NULL;
		sv->ep.in_max = 0;
		sv_close(sv);
		fail(r, -ESHUTDOWN, "internal request: shutting down");
	}
}

void ireq_worker_exit(void)
{
	while (pending) {
		struct ireq_run *r = pending;
		pending = r->next;
		fail(r, -ESHUTDOWN, "internal request: shutting down");
	}
}
