/*
 * conn/'s side of the query pipeline (dataplane/pipeline/pipeline.h):
 * fills a struct req from a client, runs the stages of a point and acts on
 * their verdict (sends the answer or the error, parks the client, puts a
 * replaced message in place), and wakes parked clients. The stages decide;
 * only this file (and client.c's server acquisition) acts for them.
 */
#include "dataplane/conn/txn_internal.h"

#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"
#include "dataplane/rt/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *want_setting(const void *arg, const char *name)
{
	const struct client *cl = arg;
	const struct guc_ent *g = guc_get(&cl->want, name);
	/* session pooling keeps no wanted set: the startup's is what the
	 * session's server started with (application_name for plugins) */
	if (!g && !cl->txn) {
		for (int i = 0; i < cl->n_params; i++)
			if (!strcmp(cl->params[i].name, name))
				return cl->params[i].value;
	}
	return g ? g->value : NULL;
}

static void want_each(const void *arg,
                      void (*fn)(void *ud, const char *name, const char *value, bool is_stmt),
                      void *ud)
{
	const struct guc_set *g = &((const struct client *)arg)->want;
	for (int i = 0; i < g->n; i++)
		fn(ud, g->e[i].name, g->e[i].value, g->e[i].is_stmt);
}

static const uint8_t *stmt_body_of(const void *arg, const char *name, uint32_t *len)
{
	struct prep_stmt *ps = prep_client_get(&((const struct client *)arg)->prep, name);
	if (!ps)
		return NULL;
	*len = ps->body_len;
	return ps->body;
}

void tx_req_init(struct client *cl, const struct server *sv, struct req *r)
{
	memset(r, 0, sizeof(*r));
	r->snap = cl->snap;
	r->database = cl->database;
	r->user = cl->user;
	r->tenant = cl->tenant;
	r->tenant_cfg = cl->tenant_cfg;
	r->client_id = cl->id;
	r->peer = cl->peer;
	r->setting = want_setting;
	r->setting_arg = cl;
	r->settings_each = want_each;
	r->stmt_body = stmt_body_of;
	r->mode = !cl->txn ? PIPE_MODE_SESSION : cl->stmt_mode ? PIPE_MODE_STMT : PIPE_MODE_TXN;
	r->replication = cl->replication;
	r->has_server = sv != NULL;
	r->tx_status = sv && sv->tx_status ? sv->tx_status : 'I';
	r->pc = &cl->pc;
	r->node = -1;
}

/* A parked client is counted on its worker, which wakes it when due. */
void tx_park(struct client *cl, const struct pipe_park *p)
{
	cl->pc.parked = (uint8_t)(p->kind + 1);
	cl->pc.wake_ns = p->wake_ns;
	cl->pc.park_token = p->token;
	if (p->kind == PIPE_WAKE_AT) {
		struct worker *w = cl->w;
		if (!cw_of(w)->rate_waiters++ || p->wake_ns < cw_of(w)->rate_next_ns)
			cw_of(w)->rate_next_ns = p->wake_ns;
	}
}

void tx_unpark(struct client *cl)
{
	if (!cl->pc.parked)
		return;
	if (cl->pc.parked == PIPE_WAKE_AT + 1 && cl->w)
		cw_of(cl->w)->rate_waiters--;
	cl->pc.parked = 0;
	cl->pc.park_token = NULL;
}

/* answers of stages, reused (a stage appends; nothing allocated once grown) */
static __thread struct sbuf req_out;

int tx_msg_stages(struct client *cl, struct server *sv, const uint8_t *m, uint32_t avail,
                  bool buffered, struct outb *local)
{
	struct req r;
	tx_req_init(cl, sv, &r);
	sbuf_reset(&req_out);
	r.out = &req_out;
	uint8_t t = m[0];
	uint32_t total = pgw_get_u32(m + 1) + 1;
	r.type = t;
	r.msg = m;
	r.msg_len = total;
	r.whole = avail == total;
	r.starts = pipe_starts(&cl->pc, t);
	if (r.starts)
		r.now_ns = conn_now_ns();
	r.again = buffered && m + total <= cl->ep.in + cl->ep.in_seen;
	enum pipe_verdict v = pipe_run(cl->pipe, PIPE_AT_MSG, &r);
	if (r.replace) {
		/* in place of the message in the client's buffer, so routing,
		 * the cache and the server all see the new one; a failure leaves
		 * it as written */
		if (buffered && v == PIPE_CONTINUE &&
		    ep_in_splice(&cl->ep, (uint32_t)(m - cl->ep.in), total, r.replace,
		                 r.replace_len) == 0)
			total = r.replace_len;
		free(r.replace);
	}
	switch (v) {
	case PIPE_CONTINUE:
		if (buffered) {
			/* its stages are done: not run again (a rewrite is not
			 * applied twice) when it waits for a server */
			uint32_t end = (uint32_t)(m - cl->ep.in) + total;
			if (end > cl->ep.in_seen)
				cl->ep.in_seen = end;
		}
		return 1;
	case PIPE_PARK:
		tx_park(cl, &r.park);
		return 0;
	case PIPE_ANSWERED:
		if (r.out && r.out->len)
			tx_ob_synth(local, r.out->p, r.out->len);
		return -1;
	case PIPE_ERROR:
		break;
	}
	if (t == 'Q' || t == 'F') {
		tx_refuse(cl, local, r.tx_status, r.err.sqlstate, r.err.msg, r.err.hint);
		return -1;
	}
	if (!r.starts && sv) {
		tx_refuse_mid_batch(cl, &r.err);
		return -2;
	}
	/* an extended batch refused at its first message: the error now, its
	 * messages dropped up to the Sync, which gets the ReadyForQuery (as
	 * the server would) */
	uint8_t buf[600];
	struct pgw_out e;
	pgw_out_init(&e, buf, sizeof(buf));
	pgw_error(&e, "ERROR", r.err.sqlstate, r.err.msg, NULL);
	if (!e.overflow)
		tx_ob_synth(local, buf, e.len);
	tx_ev_error(cl, r.err.sqlstate, r.err.msg);
	cl->drop_to_sync = true;
	return -1;
}

void tx_refuse_mid_batch(struct client *cl, const struct pipe_error *err)
{
	char msg[sizeof(err->msg) + 160];
	snprintf(msg, sizeof(msg),
	         "%s (inside an extended-protocol batch whose earlier statements already went to "
	         "the server: the connection is closed, their answers could not be kept in order)",
	         err->msg);
	cl_close(cl, err->sqlstate, msg);
}

/* Clients parked until a time: woken when it has come. */
void tx_gate_worker_exit(void)
{
	sbuf_free(&req_out);
}

void tx_rate_wake(struct worker *w, uint64_t now)
{
	if (!cw_of(w)->rate_waiters || now < cw_of(w)->rate_next_ns)
		return;
	uint64_t next = UINT64_MAX;
	for (struct client *c = cw_of(w)->clients, *n; c; c = n) {
		n = c->all_next;
		if (c->pc.parked != PIPE_WAKE_AT + 1)
			continue;
		if (c->pc.wake_ns <= now) {
			tx_unpark(c);
			if (c->txn)
				tx_client_input(c);
			else
				sess_input(c);
		} else if (c->pc.wake_ns < next) {
			next = c->pc.wake_ns;
		}
	}
	cw_of(w)->rate_next_ns = next;
}

/* Clients of w parked on token (PIPE_WAKE_TOKEN) run again. */
void tx_wake_token(struct worker *w, const void *token)
{
	for (struct client *c = cw_of(w)->clients, *n; c; c = n) {
		n = c->all_next;
		if (c->pc.parked != PIPE_WAKE_TOKEN + 1 || c->pc.park_token != token)
			continue;
		tx_unpark(c);
		if (c->txn)
			tx_client_input(c);
		else
			sess_input(c);
	}
}
