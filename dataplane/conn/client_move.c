/*
 * Online restart, the client side (takeover.h has the protocol): which
 * clients can move to the new process, stopping one and letting it go
 * without a word to it, and rebuilding it in the new process.
 *
 * What moves: a logged-in plain (TCP or Unix) client in transaction or
 * statement pooling between transactions: it holds no server, so its
 * state is the proxy's own (startup parameters, the settings it SET, its
 * protocol-level prepared statements, its cancel key, what authenticates
 * it towards the servers) and the socket. What stays with the old process
 * until it leaves (or shutdown_timeout_secs runs out): TLS clients (an
 * OpenSSL session cannot cross processes), session pooling and pinned
 * clients (they own a server whose backend state the new process could
 * not vouch for), LISTEN subscribers, replication and admin console
 * sessions. A client in a transaction finishes it on the old process and
 * moves at its ReadyForQuery 'I'.
 * May call: conn/, pipeline/, pool/, policy/, rt/, io/.
 */
#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/client_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/takeover.h"
#include "dataplane/conn/txn_internal.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Can it move for good (its kind), whatever it is doing now? */
static bool cl_kind_moves(const struct client *cl)
{
	if (!cl->logged_in || cl->is_tls || cl->ep.tls || cl->admin || cl->replication || cl->kf ||
	    cl->no_move)
		return false;
	if (cl->txn)
		return true;
	/* session pooling: with its server, a plain pooled one */
	const struct server *sv = cl->server;
	return sv && sv->pool && !sv->ep.tls && !sv->is_listener && !sv->txn;
}

/* A session's server between transactions, nothing in flight either way. */
static bool sv_idle_now(const struct client *cl)
{
	const struct server *sv = cl->server;
	return sv && sv->client == cl && sv->state == SV_ACTIVE && sv->clean &&
	       sv->tx_status == 'I' && !sv->ireq && tx_ev_idle(sv) && !sv->cancel_held &&
	       sv->ep.in_len == 0 && ep_flushed(&sv->ep) && sv->ep.scan.left == 0 &&
	       sv->ep.scan.hdr_n == 0 && !sv->ep.paused && !sv->parking && cl->sess_due == 0 &&
	       !cl->sess_fill && !cl->sess_drop && !cl->sess_skip;
}

/* Idle right now: no byte half-way, nothing owed to it; in transaction
 * pooling no server, in session pooling its server idle too. */
static bool cl_idle_now(const struct client *cl)
{
	if (cl->txn ? cl->server != NULL : !sv_idle_now(cl))
		return false;
	return cl->state == CL_ACTIVE && !cl->connecting && !cl->authq && cl->queue == CLQ_NONE &&
	       cl->pw.state == POOL_W_NONE && !cl->login_pending && cl->ep.in_len == 0 &&
	       !cl->ep.in_chunk && cl->ep.scan.left == 0 && cl->ep.scan.hdr_n == 0 &&
	       ep_flushed(&cl->ep) && !cl->ep.paused && !cl->stream_left && !cl->drop_to_sync &&
	       cl->pins == 0 && (!cl->gpend || cl->gpend->n == 0) && cl->listens == 0 &&
	       !cl->notify_len && !cl->listen_wait && !cl->pc.parked && !cl->admin_busy &&
	       !cl->await_handoff && cl->sqlprep.count == 0 && cl->rawprep.count == 0 &&
	       !cl->tx_taken;
}

void cl_move_idle(struct worker *w)
{
	for (struct client *cl = cw_of(w)->clients, *next; cl; cl = next) {
		next = cl->all_next;
		if (cl->moving || !cl_kind_moves(cl) || !cl_idle_now(cl))
			continue;
		cl->moving = true;
		/* no byte of its next request (nor of its server) may be read
		 * here: once receiving has stopped (cl_move_part_stopped) it is
		 * still idle, or bytes came meanwhile (cl_move_abort) and it
		 * tries again later */
		cl->move_wait = cl->txn ? 1 : 3;
		io_recv_stop(&cl->ep.sock);
		if (!cl->txn)
			io_recv_stop(&cl->server->ep.sock);
	}
}

void cl_move_abort(struct client *cl)
{
	cl->moving = false;
	cl->move_wait = 0;
	if (cl->state != CL_ACTIVE)
		return;
	io_recv_start(&cl->ep.sock);
	if (!cl->txn && cl->server && cl->server->state == SV_ACTIVE)
		io_recv_start(&cl->server->ep.sock);
}

static void cl_move_stopped(struct client *cl)
{
	if (!cl_kind_moves(cl) || !cl_idle_now(cl) || (cl->ep.sock.flags & IO_F_CLOSING)) {
		cl_move_abort(cl);
		return;
	}
	int r = tko_queue_client(cl);
	if (r < 0) {
		log_warn("client %llu %s user=%s db=%s: stays with this process (%s)",
		         (unsigned long long)cl->id, cl->peer, cl->user, cl->database,
		         r == -EMSGSIZE ? "its prepared statements are too large to hand over"
		                        : strerror(-r));
		cl->no_move = true;
		cl_move_abort(cl);
		return;
	}
	cl->moving = false;
	log_debug("client %llu %s user=%s db=%s: handed over to the new process",
	          (unsigned long long)cl->id, cl->peer, cl->user, cl->database);
	/* it leaves without a message: the new process owns the connections
	 * (the sockets are the same; this process closes only its own fds,
	 * never shuts them down) */
	cancel_unregister(cl);
	if (cl->server) {
		struct server *sv = cl->server;
		cl->server = NULL;
		sv->client = NULL;
		sv->ep.sock.flags |= IO_F_SHARED;
		sv_close(sv); /* its pool slot is the new process's now */
	}
	cl->logged_in = false; /* no log_disconnections line: it did not */
	cl_set_queue(cl, CLQ_NONE);
	cl_set_state(cl, CL_CLOSING);
	cl->ep.sock.flags |= IO_F_SHARED;
	io_sock_close(&cl->ep.sock);
}

void cl_move_part_stopped(struct client *cl, uint8_t part)
{
	cl->move_wait &= (uint8_t)~part;
	if (!cl->move_wait)
		cl_move_stopped(cl);
}

/* Session pooling: the client's own server came along, bound as it was
 * (same backend: its SETs, prepared statements, temporary tables stay). */
static void adopt_session(struct client *cl, int sfd, const struct cl_moved *m)
{
	const struct cfg *c = cl->snap->cfg;
	int node = -1;
	for (size_t i = 0; i < c->n_nodes; i++)
		if (!strcmp(c->nodes[i].name, m->sv.node))
			node = (int)i;
	if (node < 0 || sfd < 0) {
		if (sfd >= 0)
			close(sfd);
		char why[200];
		snprintf(why, sizeof(why),
		         "terminating connection: its node \"%s\" is not in the new configuration",
		         m->sv.node);
		cl_close(cl, "57P01", why);
		return;
	}
	cl->pool = pool_lookup(cl->database, cl->user, tenant_id(cl->tenant), node,
	                       tenant_server_cap(cl->tenant_cfg));
	if (!cl->pool) {
		close(sfd);
		cl_close(cl, "53200", "out of memory (taking the connection over)");
		return;
	}
	pool_adopt(cl->pool);
	struct server *sv = sv_adopt(cl->w, cl->pool, node, sfd, cl, m);
	if (!sv) {
		pool_drop(cl->pool, pool_max(cl->pool));
		cl_close(cl, "53200", "out of memory (taking the connection over)");
		return;
	}
	cl->server = sv;
	cl_set_state(cl, CL_ACTIVE);
	cancel_register_key(cl, m->cancel_pid, m->cancel_key);
	cancel_set_target(cl, sv);
	tx_ev_bind(cl, sv);
	log_debug("client %llu %s user=%s db=%s: taken over with its server (backend %u)",
	          (unsigned long long)cl->id, cl->peer, cl->user, cl->database, sv->backend_pid);
	io_recv_start(&sv->ep.sock);
	io_recv_start(&cl->ep.sock);
}

void cl_adopt(struct worker *w, int fd, int sfd, const struct cl_moved *m)
{
	struct snap *sn = snap_current();
	/* it was admitted already: max_client_conn counts it, never refuses it */
	__atomic_add_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
	struct pipeline *pipe = pipe_get(sn);
	struct client *cl = pipe ? slab_alloc(&cw_of(w)->client_slab) : NULL;
	if (!cl) {
		log_error("takeover: out of memory for a client moved in: closing it");
		close(fd);
		if (sfd >= 0)
			close(sfd);
		__atomic_sub_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
		pipe_put(pipe);
		snap_unref(sn);
		return;
	}
	cl->is_unix = m->is_unix;
	cl->id = conn_next_id();
	cl->w = w;
	cl->snap = sn;
	cl->pipe = pipe;
	pipe_client_init(&cl->pc);
	struct timespec now;
	conn_now(&now);
	cl->connect_s = (uint32_t)now.tv_sec;
	cl->connect_ts = now;
	snprintf(cl->peer, sizeof(cl->peer), "%s", m->peer);
	snprintf(cl->user, sizeof(cl->user), "%s", m->user);
	snprintf(cl->database, sizeof(cl->database), "%s", m->database);
	/* what its servers log in as: its [[databases]] entry in this
	 * process's config (as resolve_database() in login.c; the startup
	 * parameters the entry added came with the record) */
	bool no_entry;
	cl->db = cfg_database_find(sn->cfg, cl->database, &no_entry);
	snprintf(cl->sv_database, sizeof(cl->sv_database), "%s",
	         cl->db && cl->db->dbname[0] ? cl->db->dbname : cl->database);
	snprintf(cl->sv_user, sizeof(cl->sv_user), "%s",
	         cl->db && cl->db->user[0] ? cl->db->user : cl->user);
	snprintf(cl->jwt_tenant, sizeof(cl->jwt_tenant), "%s", m->jwt_tenant);
	ep_init(&cl->ep);
	io_sock_init(&cl->ep.sock, fd, &cl_ops, cl);
	io_sock_attach(w->loop, &cl->ep.sock);
	cw_client_add(w, cl);
	/* from here on cl_close() frees what was set */
	cl->state = CL_WAIT_SERVER;
	cl->logged_in = true;
	cl->txn = !m->session;
	cl->stmt_mode = m->stmt_mode;
	cl->signature = m->signature;
	cl->auth_method = m->auth_method;
	cl->have_client_key = m->have_client_key;
	memcpy(cl->client_key, m->client_key, sizeof(cl->client_key));
	cl->password = m->password ? strdup(m->password) : NULL;
	cl->server_password = m->server_password ? strdup(m->server_password) : NULL;
	size_t need = 1;
	for (uint32_t i = 0; i < m->n_params; i++)
		need += strlen(m->pnames[i]) + strlen(m->pvalues[i]) + 2;
	cl->params_buf = malloc(need);
	cl->params = calloc(m->n_params + 1, sizeof(*cl->params));
	bool oom = !cl->params_buf || !cl->params || (m->password && !cl->password) ||
	           (m->server_password && !cl->server_password);
	if (!oom) {
		char *p = cl->params_buf;
		for (uint32_t i = 0; i < m->n_params; i++) {
			size_t nl = strlen(m->pnames[i]) + 1, vl = strlen(m->pvalues[i]) + 1;
			memcpy(p, m->pnames[i], nl);
			cl->params[i].name = p;
			p += nl;
			memcpy(p, m->pvalues[i], vl);
			cl->params[i].value = p;
			p += vl;
		}
		cl->n_params = (int)m->n_params;
		if (cl->txn)
			oom = tx_client_init(cl) < 0;
	}
	if (!oom && cl->txn) {
		/* what it SET since its login, beyond the startup values */
		guc_free(&cl->want);
		guc_init(&cl->want);
		for (uint32_t i = 0; i < m->n_want && !oom; i++)
			oom = guc_put(&cl->want, m->want[i].name, m->want[i].value,
			              m->want[i].is_stmt) < 0;
		for (uint32_t i = 0; i < m->n_prep && !oom; i++)
			oom = !prep_client_put(&cl->prep, m->prep[i].name, m->prep[i].body,
			                       m->prep[i].len);
	}
	if (oom) {
		if (sfd >= 0)
			close(sfd);
		cl_close(cl, "53200", "out of memory (taking the connection over)");
		return;
	}
	const char *code = NULL;
	char why[300];
	const struct guc_ent *tg = guc_get(&cl->startup, "helios.tenant");
	const char *tname = cl->jwt_tenant[0] ? cl->jwt_tenant : tg ? tg->value : NULL;
	if (tenant_login(sn->cfg, cl->user, cl->database, tname, &cl->tenant, &cl->tenant_cfg,
	                 &code, why, sizeof(why)) < 0) {
		log_info("client %llu %s user=%s db=%s: refused after the takeover: %s",
		         (unsigned long long)cl->id, cl->peer, cl->user, cl->database, why);
		if (sfd >= 0)
			close(sfd);
		cl_close(cl, code, why);
		return;
	}
	struct req r;
	tx_req_init(cl, NULL, &r);
	pipe_client_start(cl->pipe, &cl->pc, &r);
	cl->pc_started = true;
	if (m->session) {
		adopt_session(cl, sfd, m);
		return;
	}
	int prim = route_primary(sn->cfg);
	if (prim >= 0)
		cl->pool = pool_lookup(cl->database, cl->user, tenant_id(cl->tenant), prim,
		                       tenant_server_cap(cl->tenant_cfg));
	cl_set_state(cl, CL_ACTIVE);
	cancel_register_key(cl, m->cancel_pid, m->cancel_key);
	log_debug("client %llu %s user=%s db=%s: taken over from the old process",
	          (unsigned long long)cl->id, cl->peer, cl->user, cl->database);
	io_recv_start(&cl->ep.sock);
}
