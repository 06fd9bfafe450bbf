/*
 * A pipeline rebuilt under clients already logged in (pipe_forget_all: the
 * live plugin set became non-empty, or empty again). Every worker is told
 * (conn_pipes_changed); each of its clients is marked (cl->pipe_swap) and
 * moves to the freshly built pipeline of its snapshot at once when it is
 * between requests, else at the first bytes it sends once it is: nothing
 * of a request in progress, not parked, not inside an extended batch or a
 * COPY. Its old stages' state that the new pipeline has no stage for is
 * freed, a stage in both keeps its state (a rate limit's tokens, the
 * cache's view of a session), and which stages apply to it is asked again,
 * as at login. A client that was never marked pays one test of a flag in
 * its own struct per chunk received (conn/txn.c, client.c).
 *
 * A session spliced in the kernel (pool_mode.kernel_splice) passes no byte
 * through the proxy: it keeps the pipeline it was spliced with (none of
 * its stages runs anyway) until it reconnects, and the worker says so in
 * one warning per rebuild. New sessions under a pipeline with per-query
 * stages are not spliced (splice_wanted).
 * May call: conn/, pipeline/, rt/.
 */
#include "common/log.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/txn_internal.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/pipeline/pipeline.h"

#include <stdbool.h>

/* Between requests, as far as the proxy can tell from its side. */
static bool at_boundary(const struct client *cl)
{
	if (cl->state != CL_ACTIVE || !cl->logged_in || cl->admin || cl->replication || cl->kf ||
	    cl->moving || cl->login_pending || cl->connecting || cl->queue != CLQ_NONE ||
	    cl->pc.parked || cl->pc.in_batch || cl->drop_to_sync || cl->stream_left ||
	    cl->ep.in_len || cl->ep.in_chunk || cl->ep.scan.left || cl->ep.scan.hdr_n)
		return false;
	const struct server *sv = cl->server;
	if (cl->txn)
		/* no server, or one pinned to it (or in its transaction) that
		 * owes it nothing */
		return !sv ||
		       (sv->client == cl && sv->rq_len == 0 && !sv->q_busy && tx_ev_idle(sv));
	/* session: its server answered all it was sent (q_busy: bytes went to
	 * it since its last ReadyForQuery) */
	if (!sv || sv->client != cl || sv->q_busy || cl->sess_due || cl->sess_fill ||
	    cl->sess_drop || cl->sess_skip || !tx_ev_idle(sv))
		return false;
	/* session relay without stages: pc.in_batch is not followed, but the
	 * last message header it passed is known */
	uint8_t last = cl->ep.scan.type;
	return !last || last == 'Q' || last == 'S' || last == 'F';
}

void cl_pipe_swap_try(struct client *cl)
{
	if (!cl->pipe_swap || !at_boundary(cl))
		return;
	struct pipeline *p = pipe_get(cl->snap);
	if (!p)
		return; /* out of memory: tried again at its next bytes */
	cl->pipe_swap = false;
	struct pipeline *old = cl->pipe;
	if (p == old) {
		pipe_put(p);
		return;
	}
	struct req r;
	tx_req_init(cl, NULL, &r); /* as at login */
	pipe_client_swap(old, p, &cl->pc, &r);
	cl->pipe = p;
	pipe_put(old);
	struct server *sv = cl->server;
	if (sv) {
		/* query events of the server it keeps (session pooling, a pin) */
		if (pipe_wants(p, PEV_QUERY_DONE))
			tx_ev_bind(cl, sv);
		else if (sv->qev && tx_ev_idle(sv))
			tx_ev_server_free(sv);
	}
	log_debug("client %llu %s user=%s db=%s: pipeline rebuilt (%u stages)",
	          (unsigned long long)cl->id, cl->peer, cl->user, cl->database, p->n_all);
}

void cl_pipes_run(struct worker *w, struct worker_msg *m)
{
	(void)m;
	int spliced = 0;
	for (struct client *cl = cw_of(w)->clients, *next; cl; cl = next) {
		next = cl->all_next;
		if (cl->admin || cl->replication || cl->state == CL_CLOSING ||
		    cl->state == CL_CLOSED)
			continue;
		if (cl->kf) {
			struct pipeline *p = pipe_get(cl->snap);
			spliced += p && p->n_all != cl->pipe->n_all;
			pipe_put(p);
			continue;
		}
		if (!cl->logged_in) {
			/* logging in: its stages are asked at the end of it
			 * (conn/login.c), nothing is kept for it yet */
			struct pipeline *p = pipe_get(cl->snap);
			if (p) {
				pipe_put(cl->pipe);
				cl->pipe = p;
			}
			continue;
		}
		cl->pipe_swap = true;
		cl_pipe_swap_try(cl);
	}
	if (spliced)
		log_warn("worker %d: %d session(s) spliced in the kernel keep running without the "
		         "rebuilt pipeline's stages (plugins) until they reconnect",
		         w->idx, spliced);
}

void conn_pipes_install(void)
{
	pipe_on_forget(conn_pipes_changed);
}

void conn_pipes_changed(void)
{
	for (int i = 0, n = workers_started(); i < n; i++) {
		(void)worker_post(&g_workers[i], &cw_of(&g_workers[i])->pipes_msg);
	}
}
