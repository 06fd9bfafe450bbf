/*
 * conn/'s side of the request-level pipeline (see txn_req.h): runs the
 * PIPE_AT_REQUEST stages for a client without a server and acts on their
 * verdict (sends an answer, parks on a wake token), wakes token-parked
 * clients, and publishes the query events from what it relays: a
 * statement sent, and its completion (duration, rows, error) at its
 * ReadyForQuery. The stages decide; this file sends.
 */
#include "dataplane/conn/txn_req.h"

#include "dataplane/conn/txn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/rt/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ PIPE_AT_REQUEST */

static __thread struct sbuf req_out; /* answers, reused */

/* Named statements a request answered without a server prepared: the
 * client's later Binds name them. */
static void note_parses(struct client *cl, const uint8_t *p, uint32_t n)
{
	for (uint32_t off = 0; off + 5 <= n;) {
		uint32_t ml = pgw_get_u32(p + off + 1);
		if (ml < 4 || ml - 4 > n - off - 5)
			return;
		const uint8_t *b = p + off + 5;
		uint32_t bl = ml - 4, o = 0;
		if (p[off] == 'P') {
			const char *name = pgw_get_str(b, bl, &o);
			if (name && name[0] && o < bl)
				prep_client_put(&cl->prep, name, b + o, bl - o);
		}
		off += 1 + ml;
	}
}

enum tx_req_verdict tx_request_stages(struct client *cl)
{
	cl->pc.rflags &= (uint8_t)~PIPE_RF_PRIMARY_ONLY; /* a stage sets it for this request */
	if (!cl->pc.active[PIPE_AT_REQUEST] || cl->pins || cl->state != CL_ACTIVE ||
	    cl->login_pending || !cl->ep.in_len)
		return TX_REQ_PASS;
	struct req r;
	tx_req_init(cl, NULL, &r);
	sbuf_reset(&req_out);
	r.out = &req_out;
	r.now_ns = conn_now_ns();
	r.type = cl->ep.in[0];
	r.msg = cl->ep.in;
	r.msg_len = cl->ep.in_len >= 5 ? pgw_get_u32(cl->ep.in + 1) + 1 : cl->ep.in_len;
	r.whole = r.msg_len <= cl->ep.in_len;
	r.starts = true;
	r.req_buf = cl->ep.in;
	r.req_len = cl->ep.in_len;
	r.again = cl->cache_nowait; /* woken from a wait: not again */
	cl->cache_nowait = false;
	switch (pipe_run(cl->pipe, PIPE_AT_REQUEST, &r)) {
	case PIPE_ANSWERED:
		if (r.out_consumed > cl->ep.in_len)
			return TX_REQ_PASS;
		note_parses(cl, cl->ep.in, r.out_consumed);
		if (r.out->len)
			ep_send_bytes(&cl->ep, r.out->p, r.out->len);
		ep_in_consume(&cl->ep, r.out_consumed);
		pipe_request_done(&cl->pc);
		return TX_REQ_ANSWERED;
	case PIPE_PARK:
		if (r.park.kind != PIPE_WAKE_TOKEN)
			return TX_REQ_PASS; /* no other wait at this point */
		cl->pc.parked = PIPE_WAKE_TOKEN + 1;
		cl->pc.park_token = r.park.token;
		/* the wait is bounded: then it asks a server itself */
		cl->pc.wake_ns = r.now_ns + (uint64_t)CACHE_WAIT_MAX_SECS * 1000000000ull;
		cw_of(cl->w)->token_waiters++;
		return TX_REQ_PARKED;
	case PIPE_CONTINUE:
	case PIPE_ERROR: /* no stage here refuses; a server answers */
		break;
	}
	return TX_REQ_PASS;
}

static void token_unpark(struct client *c)
{
	cw_of(c->w)->token_waiters--;
	tx_unpark(c);
	c->cache_nowait = true; /* at most one wait per request */
	if (c->txn)
		tx_client_input(c);
	else
		sess_input(c); /* session pooling (session.c) */
}

void tx_token_wake(struct worker *w)
{
	for (struct client *c = cw_of(w)->clients, *next; c && cw_of(w)->token_waiters; c = next) {
		next = c->all_next;
		if (tx_cache_parked(c))
			token_unpark(c);
	}
}

void tx_token_tick(struct worker *w, uint64_t now)
{
	if (!cw_of(w)->token_waiters)
		return;
	for (struct client *c = cw_of(w)->clients, *next; c; c = next) {
		next = c->all_next;
		if (tx_cache_parked(c) && now >= c->pc.wake_ns)
			token_unpark(c);
	}
}

static int hook_worker_idx(void)
{
	struct worker *w = worker_self();
	return w ? w->idx : -1;
}

static void hook_wake(int k)
{
	if (k < 0 || k >= workers_started())
		return;
	__atomic_store_n(&cw_of(&g_workers[k])->token_check, true, __ATOMIC_RELEASE);
	io_loop_wakeup(g_workers[k].loop);
}

void tx_req_install(void)
{
	static const struct cache_hooks h = {.worker_idx = hook_worker_idx, .wake = hook_wake};
	cache_set_hooks(&h);
}

/* ------------------------------------------------------------ query events */

#define QEV_SLOTS 4 /* as deep as analytics follows */

/* Per server: statements (Query, Sync) whose ReadyForQuery is to come. */
struct qev {
	struct qev_slot {
		uint64_t start_ns, rows;
		bool error;
		char sqlstate[6];
		char message[160]; /* the server's error message (on_error) */
	} slot[QEV_SLOTS];
	uint32_t head, n;
};

void tx_ev_bind(struct client *cl, struct server *sv)
{
	if (!sv->qev && (pipe_wants(cl->pipe, PEV_QUERY_DONE) || pipe_wants(cl->pipe, PEV_ERROR)))
		sv->qev = calloc(1, sizeof(*sv->qev));
}

bool tx_ev_idle(const struct server *sv)
{
	return !sv->qev || sv->qev->n == 0;
}

void tx_ev_server_free(struct server *sv)
{
	free(sv->qev);
	sv->qev = NULL;
}

void tx_ev_start(struct client *cl, struct server *sv, uint8_t type, const char *stmt_name,
                 const char *sql, size_t len, bool whole)
{
	uint64_t now = 0;
	if (pipe_wants(cl->pipe, PEV_QUERY_START)) {
		struct req r;
		tx_req_init(cl, sv, &r);
		r.type = type;
		r.sql = sql;
		r.sql_len = sql ? len : 0;
		r.whole = whole;
		r.node = sv->node_idx;
		r.now_ns = now = conn_now_ns();
		struct pipe_event ev = {
		    .kind = PEV_QUERY_START, .r = &r, .at_ns = now, .stmt_name = stmt_name};
		pipe_emit(cl->pipe, &cl->pc, &ev);
	}
	struct qev *q = sv->qev;
	if (!q || (type != 'Q' && type != 'S'))
		return;
	if (q->n == QEV_SLOTS) {
		/* deeper pipelines than we follow: forget the oldest */
		q->head = (q->head + 1) % QEV_SLOTS;
		q->n--;
	}
	struct qev_slot *s = &q->slot[(q->head + q->n) % QEV_SLOTS];
	q->n++;
	memset(s, 0, sizeof(*s));
	s->start_ns = now ? now : conn_now_ns();
}

void tx_ev_response(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct qev *q = sv->qev;
	if (!q || !q->n)
		return;
	struct qev_slot *s = &q->slot[q->head];
	if (type == 'E') {
		s->error = true;
		const char *code = pgw_error_field(body, len, 'C');
		const char *m = pgw_error_field(body, len, 'M');
		snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", code ? code : "");
		snprintf(s->message, sizeof(s->message), "%s", m ? m : "");
		return;
	}
	/* CommandComplete: "SELECT 5", "INSERT 0 3", "UPDATE 2", "COPY 10" */
	const char *tag = (const char *)body;
	if (!memchr(tag, '\0', len))
		return;
	const char *last = strrchr(tag, ' ');
	if (last && last[1] >= '0' && last[1] <= '9')
		s->rows += strtoull(last + 1, NULL, 10);
}

void tx_ev_ready(struct client *cl, struct server *sv)
{
	struct qev *q = sv->qev;
	if (!q || !q->n)
		return;
	struct qev_slot s = q->slot[q->head];
	q->head = (q->head + 1) % QEV_SLOTS;
	q->n--;
	bool done = cl && pipe_wants(cl->pipe, PEV_QUERY_DONE);
	bool err = cl && s.error && pipe_wants(cl->pipe, PEV_ERROR);
	if (!done && !err)
		return;
	uint64_t now = conn_now_ns();
	struct req r;
	tx_req_init(cl, sv, &r);
	r.node = sv->node_idx;
	r.now_ns = now;
	struct pipe_event ev = {.kind = PEV_QUERY_DONE,
	                        .r = &r,
	                        .at_ns = now,
	                        .duration_ns = now > s.start_ns ? now - s.start_ns : 0,
	                        .rows = s.rows,
	                        .ok = !s.error,
	                        .sqlstate = s.error ? s.sqlstate : NULL,
	                        .message = s.error ? s.message : NULL};
	if (done)
		pipe_emit(cl->pipe, &cl->pc, &ev);
	if (err) {
		/* the server's error reached the client with this ReadyForQuery */
		ev.kind = PEV_ERROR;
		pipe_emit(cl->pipe, &cl->pc, &ev);
	}
}

void tx_ev_error(struct client *cl, const char *sqlstate, const char *msg)
{
	if (!cl || !cl->pc_started || !pipe_wants(cl->pipe, PEV_ERROR))
		return;
	uint64_t now = conn_now_ns();
	struct req r;
	tx_req_init(cl, cl->server, &r);
	r.now_ns = now;
	struct pipe_event ev = {.kind = PEV_ERROR,
	                        .r = &r,
	                        .at_ns = now,
	                        .sqlstate = sqlstate && sqlstate[0] ? sqlstate : "XX000",
	                        .message = msg ? msg : ""};
	pipe_emit(cl->pipe, &cl->pc, &ev);
}

void tx_req_worker_exit(void)
{
	sbuf_free(&req_out);
}
