/*
 * Client connections: accept, waiting for a server, then relaying with
 * only message headers parsed (the startup packet, TLS and authentication
 * are in login.c). A client waits for a server as the pool's waiter
 * (cl->pw): the pool's granted() lands in cl_granted, which moves the grant
 * to the client's worker; cl_handoff_arrived takes it there.
 * Every close goes through cl_close(), which sends a proper ErrorResponse
 * when there is something to say and logs the reason once.
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/client_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/splice.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/auth/md5auth.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/listen.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/policy/control.h"
#include "dataplane/tls/tls.h"
#include "dataplane/rt/worker.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const cl_state_names[] = {"startup", "tls",     "auth",  "wait",
                                             "active",  "closing", "closed"};

const char *cl_state_str(enum cl_state s)
{
	return (unsigned)s < sizeof(cl_state_names) / sizeof(cl_state_names[0]) ? cl_state_names[s]
	                                                                        : "?";
}

/* Legal moves; anything else is a bug and is refused (and logged). */
bool cl_set_state(struct client *cl, enum cl_state to)
{
	enum cl_state from = cl->state;
	bool ok;
	switch (to) {
	case CL_TLS:
		ok = from == CL_STARTUP;
		break;
	case CL_STARTUP:
		ok = from == CL_TLS;
		break;
	case CL_AUTH:
		ok = from == CL_STARTUP || from == CL_TLS;
		break;
	case CL_WAIT_SERVER:
		ok = from == CL_AUTH || from == CL_STARTUP || from == CL_TLS;
		break;
	case CL_ACTIVE:
		ok = from == CL_WAIT_SERVER;
		break;
	case CL_CLOSING:
		ok = from != CL_CLOSED;
		break;
	case CL_CLOSED:
		ok = true;
		break;
	default:
		ok = false;
	}
	if (!ok) {
		log_error("client %llu: illegal state change %s -> %s", (unsigned long long)cl->id,
		          cl_state_str(from), cl_state_str(to));
		return false;
	}
	cl->state = to;
	if (to == CL_CLOSING)
		cl_set_queue(cl, CLQ_CLOSING);
	else if (to == CL_CLOSED)
		cl_set_queue(cl, CLQ_NONE);
	return true;
}

static void cl_on_recv(struct io_sock *s, struct io_chunk *c);
static void cl_on_eof(struct io_sock *s, int err);
static void cl_on_sent(struct io_sock *s, int err);
static void cl_on_recv_stopped(struct io_sock *s);
static void cl_on_closed(struct io_sock *s);

const struct io_sock_ops cl_ops = {
    .on_recv = cl_on_recv,
    .on_eof = cl_on_eof,
    .on_sent = cl_on_sent,
    .on_recv_stopped = cl_on_recv_stopped,
    .on_closed = cl_on_closed,
};

void cl_send_msg(struct client *cl, struct pgw_out *o)
{
	if (o->overflow) {
		log_error("client %llu: internal message too large", (unsigned long long)cl->id);
		return;
	}
	ep_send_bytes(&cl->ep, o->buf, o->len);
}

/* An ERROR and ReadyForQuery 'I': the request was refused, the client
 * stays. */
static void send_error_ready(struct client *cl, const char *sqlstate, const char *msg)
{
	uint8_t buf[1024];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_error(&o, "ERROR", sqlstate, msg, NULL);
	pgw_ready(&o, 'I');
	cl_send_msg(cl, &o);
	tx_ev_error(cl, sqlstate, msg);
}

static void peer_name(int fd, bool is_unix, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (is_unix || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(out, len, "unix");
		return;
	}
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(out, len, "%s:%d", host, port);
}

void cl_accept(struct worker *w, int fd, bool is_unix)
{
	struct snap *sn = snap_current();
	int n = __atomic_add_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
	if (n > sn->cfg->max_client_conn) {
		/* Answer before reading anything: libpq reads it as a startup error. */
		uint8_t buf[256];
		struct pgw_out o;
		pgw_out_init(&o, buf, sizeof(buf));
		pgw_error(&o, "FATAL", "53300", "sorry, too many clients already",
		          "max_client_conn is reached");
		ssize_t r = send(fd, buf, o.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
		close(fd);
		__atomic_sub_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
		log_warn("refused a client: max_client_conn (%d) reached",
		         sn->cfg->max_client_conn);
		snap_unref(sn);
		return;
	}
	if (!cl_login_admit(w, fd, sn->cfg)) {
		__atomic_sub_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
		snap_unref(sn);
		return;
	}
	struct pipeline *pipe = pipe_get(sn); /* its snapshot's stages */
	struct client *cl = pipe ? slab_alloc(&cw_of(w)->client_slab) : NULL;
	if (!cl) {
		close(fd);
		__atomic_sub_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
		pipe_put(pipe);
		snap_unref(sn);
		return;
	}
	if (!is_unix) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	cl->is_unix = is_unix;
	cl->id = conn_next_id();
	cl->w = w;
	cl->snap = sn;
	cl->pipe = pipe;
	pipe_client_init(&cl->pc);
	cl->state = CL_STARTUP;
	struct timespec now;
	conn_now(&now);
	cl->connect_s = (uint32_t)now.tv_sec;
	cl->connect_ts = now;
	peer_name(fd, is_unix, cl->peer, sizeof(cl->peer));
	ep_init(&cl->ep);
	io_sock_init(&cl->ep.sock, fd, &cl_ops, cl);
	io_sock_attach(w->loop, &cl->ep.sock);
	cw_client_add(w, cl);
	cl_login_begin(cl);
	io_recv_start(&cl->ep.sock);
}

static void detach_server(struct client *cl)
{
	if (cl->connecting) {
		/* it finishes its login and goes to the pool */
		cl->connecting->client = NULL;
		cl->connecting = NULL;
	}
	if (cl->server) {
		struct server *sv = cl->server;
		if (cl->stream_left || cl->ep.scan.left || cl->ep.scan.hdr_n) {
			/* part of a message went to the server: never reused */
			sv->clean = false;
			sv->open_batch = true;
		}
		cl->server = NULL;
		sv->client = NULL;
		cancel_set_target(cl, NULL);
		sv_release(sv);
	}
}

void cl_close(struct client *cl, const char *sqlstate, const char *msg)
{
	if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
		return;
	cl_login_end(cl);
	splice_end(cl);
	if (msg) {
		uint8_t buf[1024];
		struct pgw_out o;
		pgw_out_init(&o, buf, sizeof(buf));
		pgw_error(&o, "FATAL", sqlstate, msg, NULL);
		cl_send_msg(cl, &o);
		tx_ev_error(cl, sqlstate, msg); /* a logged-in client's FATAL */
		if (!cl->close_logged) {
			struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
			log_ev(LOG_INFO, "client_close", &lc,
			       "client %llu %s user=%s db=%s: closing: %s (%s)",
			       (unsigned long long)cl->id, cl->peer, cl->user, cl->database, msg,
			       sqlstate);
		}
	} else {
		log_debug("client %llu %s: closed", (unsigned long long)cl->id, cl->peer);
	}
	if (cl->pool && cl->pw.state != POOL_W_NONE) {
		if (!pool_cancel_wait(cl->pool, &cl->pw))
			cl->await_handoff = true; /* cl_handoff_arrived gives it back */
	}
	cl_set_queue(cl, CLQ_NONE);
	if (cl->authq) {
		struct server *aq = cl->authq;
		cl->authq = NULL;
		sv_auth_query_cancel(aq);
	}
	detach_server(cl);
	cancel_unregister(cl);
	cl_set_state(cl, CL_CLOSING);
	conn_now(&cl->close_start);
	if (cl->logged_in && __atomic_load_n(&log_disconnections_on, __ATOMIC_RELAXED)) {
		/* logged-in clients only, as PostgreSQL's log_disconnections */
		struct log_ctx lc = {cl->id, cl->user, cl->database, cl->peer};
		log_ev(LOG_INFO, "client_disconnect", &lc,
		       "client %llu %s user=%s db=%s: disconnected after %.3fs: %s",
		       (unsigned long long)cl->id, cl->peer, cl->user, cl->database,
		       conn_elapsed(&cl->connect_ts, &cl->close_start),
		       msg ? msg : "client closed");
	}
	if (cl->ep.sock.flags & IO_F_RECV_WANT)
		io_recv_stop(&cl->ep.sock);
	cl->linger = msg != NULL && !(cl->ep.sock.flags & IO_F_SHARED);
	if (ep_flushed(&cl->ep))
		cl_end_socket(cl);
	else if (!cl->linger)
		shutdown(cl->ep.sock.fd, SHUT_RD);
}

/* A closing client's last bytes are out. Closed at once, or, after a
 * FATAL, half-closed first: the client may still be sending (a pipelined
 * batch behind the refused message, a query racing a shutdown), and a
 * close with its bytes unread resets the connection, which can reach the
 * client's reads before the FATAL does (libpq then says only "server closed
 * the connection unexpectedly"). Its bytes are read and dropped until its
 * EOF, LINGER_READ_SECS at most (conn_worker.c's tick). */
void cl_end_socket(struct client *cl)
{
	if (!cl->linger || cl->lingering || cl->ep.sock.fd < 0) {
		io_sock_close(&cl->ep.sock);
		return;
	}
	cl->lingering = true;
	shutdown(cl->ep.sock.fd, SHUT_WR);
	io_recv_start(&cl->ep.sock);
}

static void cl_free(struct client *cl)
{
	pipe_client_free(cl->pipe, &cl->pc);
	listen_unsubscribe(cl, NULL);
	free(cl->notify_buf);
	free(cl->listen_answer);
	for (int i = 0; i < cl->n_listen_chans; i++)
		free(cl->listen_chans[i]);
	free(cl->listen_chans);
	cl_login_end(cl);
	cl_set_queue(cl, CLQ_NONE);
	cw_client_remove(cl->w, cl);
	ep_fini(&cl->ep, cl->w->loop);
	if (cl->scram) {
		scram_server_wipe(cl->scram);
		free(cl->scram);
	}
	free(cl->params_buf);
	free(cl->params);
	if (cl->password) {
		explicit_bzero(cl->password, strlen(cl->password));
		free(cl->password);
	}
	if (cl->server_password) {
		explicit_bzero(cl->server_password, strlen(cl->server_password));
		free(cl->server_password);
	}
	tx_client_free(cl);
	splice_free(cl);
	tenant_logout(cl->tenant);
	cl->tenant = NULL;
	cl->tenant_cfg = NULL;
	pipe_put(cl->pipe);
	snap_unref(cl->snap);
	if (cl->admin)
		__atomic_sub_fetch(&g_admin_sessions, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&g_client_count, 1, __ATOMIC_RELAXED);
	slab_free(&cw_of(cl->w)->client_slab, cl);
}

static void cl_on_closed(struct io_sock *s)
{
	struct client *cl = s->owner;
	cl_set_state(cl, CL_CLOSED);
	if (cl->await_handoff) {
		cl->zombie = true; /* freed by cl_handoff_arrived */
		return;
	}
	cl_free(cl);
}

static void cl_on_eof(struct io_sock *s, int err)
{
	struct client *cl = s->owner;
	if (cl->lingering) {
		io_sock_close(s); /* its EOF after our FATAL: nothing was reset */
		return;
	}
	if (err)
		log_debug("client %llu: connection error: %s", (unsigned long long)cl->id,
		          strerror(-err));
	if (splice_hup(cl, false))
		return; /* closed once its last bytes reached the server */
	cl_close(cl, NULL, NULL);
}

static void cl_on_sent(struct io_sock *s, int err)
{
	struct client *cl = s->owner;
	ep_sent(&cl->ep, err);
	if (err < 0) {
		cl_close(cl, NULL, NULL);
		if (cl->state == CL_CLOSING)
			io_sock_close(&cl->ep.sock);
		return;
	}
	if (cl->state == CL_CLOSING) {
		if (ep_flushed(&cl->ep) && !cl->lingering)
			cl_end_socket(cl);
		return;
	}
	/* back-pressure: the server may send again */
	if (cl->server && cl->server->ep.paused && cl->ep.q_bytes < EP_LOW_WATER)
		sv_resume_source(cl->server);
}

static void cl_on_recv_stopped(struct io_sock *s)
{
	struct client *cl = s->owner;
	if (cl->moving) {
		cl_move_part_stopped(cl, 1); /* online restart: hand it over if still idle */
		return;
	}
	/* the splice waits for it; otherwise paused for back-pressure or closing */
	splice_recv_stopped(cl, false);
}

void cl_resume_source(struct client *cl)
{
	if (!cl->ep.paused || cl->state != CL_ACTIVE)
		return;
	cl->ep.paused = false;
	io_recv_start(&cl->ep.sock);
}

/* ---------------------------------------------------------------- server */

static void bind_server(struct client *cl, struct server *sv);
static bool tx_login_from_cache(struct client *cl);

static void acquire(struct client *cl);

/* The pool's granted() for cl->pw: a server or a permit, maybe on another
 * worker's thread. Delivered by cl_handoff_arrived on cl's own worker. */
static void cl_granted(struct pool_waiter *wt, bool direct)
{
	struct client *cl = (struct client *)((char *)wt - offsetof(struct client, pw));
	if (direct)
		cl_handoff_arrived(cl); /* a release on cl's worker: act now */
	else
		cl_post_handoff(cl);
}

/* Asks the pool for a server; connects, waits or binds as it answers. */
void cl_get_server(struct client *cl)
{
	conn_now(&cl->wait_start); /* wait time counts from here */
	acquire(cl);
}

void cl_hold_check(struct client *cl)
{
	/* query_wait_timeout counts from the resume, not from the pause; a
	 * wait for a primary keeps its start (failover_timeout_secs) */
	if (cl->queue != CLQ_PRIMARY)
		conn_now(&cl->wait_start);
	acquire(cl); /* holds it again if still paused */
}

/* The transaction cannot be served (no primary, breaker open for the node
 * it names): its first request gets an ErrorResponse and ReadyForQuery,
 * the connection stays. Without a whole request to answer, it closes. */
static void refuse_pending(struct client *cl, const char *sqlstate, const char *msg);

void cl_refuse_pending(struct client *cl, const char *msg)
{
	refuse_pending(cl, "08006", msg);
}

static void refuse_pending(struct client *cl, const char *sqlstate, const char *msg)
{
	uint32_t used = 0;
	bool whole = false;
	while (cl->ep.in_len - used >= 5) {
		uint32_t mlen = pgw_get_u32(cl->ep.in + used + 1);
		if (mlen < 4 || (size_t)used + mlen + 1 > cl->ep.in_len)
			break;
		uint8_t type = cl->ep.in[used];
		used += mlen + 1;
		if (type == 'Q' || type == 'S') {
			whole = true;
			break;
		}
	}
	log_info("client %llu %s user=%s db=%s: %s", (unsigned long long)cl->id, cl->peer, cl->user,
	         cl->database, msg);
	if (!whole || !cl->txn) {
		cl_close(cl, sqlstate, msg);
		return;
	}
	ep_in_consume(&cl->ep, used);
	send_error_ready(cl, sqlstate, msg);
	if (cl->ep.paused && !cl->server)
		cl_resume_source(cl); /* stopped while a large request waited */
	if (cl->ep.in_len)
		tx_client_input(cl);
}

void cl_hold_expired(struct client *cl)
{
	cl_set_queue(cl, CLQ_NONE);
	char msg[300];
	snprintf(msg, sizeof(msg),
	         "no primary node is available: it has not answered for %d s and no replica was "
	         "promoted (routing.failover_timeout_secs)",
	         cl->snap->cfg->routing.failover_timeout_secs);
	cl_refuse_pending(cl, msg);
}

void cl_hold_wait_check(struct client *cl, const struct timespec *now)
{
	int t = cl->snap->cfg->pool.query_wait_timeout_secs;
	if (t <= 0 || conn_elapsed(&cl->wait_start, now) < t || ctl_is_paused(cl->database))
		return;
	cl_set_queue(cl, CLQ_NONE);
	char msg[300];
	snprintf(msg, sizeof(msg),
	         "query_wait_timeout: waited %d s for a server of database \"%s\": its node is "
	         "drained (helioctl undrain)",
	         t, cl->database);
	if (cl->txn && cl->state == CL_ACTIVE && !cl->login_pending)
		refuse_pending(cl, "53300", msg);
	else
		cl_close(cl, "53300", msg);
}

/* One line per idle server found dead at hand-out (a terminated backend):
 * the client does not see it, the operator may want to. */
static void log_dead_idle(const struct server *sv)
{
	log_info("server %llu %s:%d db=%s user=%s: idle backend %u has ended (terminated?); "
	         "closed instead of handed out",
	         (unsigned long long)sv->id, sv->node_host, sv->node_port, sv->database, sv->user,
	         sv->backend_pid);
}

/* The SQL text of the first buffered message (Query, Parse, or the
 * statement a Bind names); NULL when there is none to look at. */
static const char *first_sql(struct client *cl, size_t *len)
{
	const uint8_t *b = cl->ep.in;
	uint32_t n = cl->ep.in_len;
	if (n < 5)
		return NULL;
	uint32_t mlen = pgw_get_u32(b + 1);
	if (mlen < 4 || (size_t)mlen + 1 > n)
		return NULL;
	const char *body = (const char *)b + 5;
	size_t blen = mlen - 4;
	const char *end = memchr(body, '\0', blen);
	if (!end)
		return NULL;
	switch (b[0]) {
	case 'Q':
		*len = (size_t)(end - body);
		return body;
	case 'P': {
		const char *q = end + 1;
		const char *qe = memchr(q, '\0', blen - (size_t)(q - body));
		if (!qe)
			return NULL;
		*len = (size_t)(qe - q);
		return q;
	}
	case 'B': {
		const char *st = end + 1;
		if (!memchr(st, '\0', blen - (size_t)(st - body)))
			return NULL;
		const struct prep_stmt *ps = prep_client_get(&cl->prep, st);
		if (!ps || !ps->body || !memchr(ps->body, '\0', ps->body_len))
			return NULL;
		*len = strlen((const char *)ps->body);
		return (const char *)ps->body;
	}
	default:
		return NULL;
	}
}

/* A [[databases]] entry with nodes: the routed node if it is one of them,
 * else the first of them with the same role, else the first of them. */
static int allowed_node(const struct client *cl, int node)
{
	const struct cfg *c = cl->snap->cfg;
	const struct cfg_database *db = cl->db;
	int first = -1;

	if (!db || !db->n_nodes)
		return node;
	for (size_t i = 0; i < db->n_nodes; i++) {
		int idx = cfg_node_index(c, db->nodes[i]);
		if (idx == node)
			return node;
		if (idx >= 0 && first < 0)
			first = idx;
	}
	for (size_t i = 0; i < db->n_nodes; i++) {
		int idx = cfg_node_index(c, db->nodes[i]);
		if (idx >= 0 && c->nodes[idx].role == c->nodes[node].role)
			return idx;
	}
	return first >= 0 ? first : node;
}

/* The pool of cl's database (alias), server user and tenant on node, with
 * the limits its [[databases]] / [[users]] entries and pool_mode give it. */
static struct pool *lookup_pool(struct client *cl, int node)
{
	const struct cfg *c = cl->snap->cfg;
	const struct cfg_database *db = cl->db;
	const struct cfg_user_pool *u = cfg_pool_user_find(c, cl->sv_user);
	struct pool *p = pool_lookup(cl->database, cl->sv_user, tenant_id(cl->tenant), node,
	                             tenant_server_cap(cl->tenant_cfg));
	if (!p)
		return NULL;
	if (!cl->login_counted) {
		cl->login_counted = true;
		conn_ctr_login(p, cl->w->idx);
	}
	struct pool_limits l = {
	    .size = db ? db->pool_size : 0,
	    .min = db && db->min_pool_size ? db->min_pool_size : -1,
	    .reserve = db && db->reserve_pool >= 0 ? db->reserve_pool : c->pool.reserve_pool_size,
	    .db_cap =
	        db && db->max_db_connections ? db->max_db_connections : c->pool.max_db_connections,
	    .user_cap = u && u->max_user_connections ? u->max_user_connections
	                                             : c->pool.max_user_connections,
	};
	pool_set_limits(p, &l);
	return p;
}

static void acquire(struct client *cl)
{
	const struct cfg *c = cl->snap->cfg;
	/* off the held lists; back on one below if it must wait again */
	enum cl_queue was = cl->queue;
	if (cl_held(cl))
		cl_set_queue(cl, CLQ_NONE);
	if (cl->replication) {
		/* replication connections are never pooled */
		int node = route_primary(c);
		if (node < 0 || sv_connect(cl->w, NULL, cl, node) < 0)
			cl_close(cl, "08006", "could not connect to the database server");
		return;
	}
	if (cl->txn && cl->state == CL_WAIT_SERVER) {
		/* login: answered from what a server of the primary's pool reported */
		int p = route_primary(c);
		if (p < 0) {
			cl_close(cl, "08006", "no primary node is configured");
			return;
		}
		cl->pool = lookup_pool(cl, allowed_node(cl, p));
		if (!cl->pool) {
			cl_close(cl, "53200", "out of memory");
			return;
		}
		if (tx_login_from_cache(cl))
			return; /* logged in; a server is taken at the first query */
	}
	if (ctl_is_paused(cl->database)) {
		/* PAUSE: running transactions finish, new ones (and logins that
		 * need a server) wait here (no timeout) until resumed; one
		 * held for a primary keeps that wait's bound */
		cl_set_queue(cl, was == CLQ_PRIMARY ? CLQ_PRIMARY : CLQ_PAUSED);
		return;
	}
	/* the router (and any other PIPE_AT_ROUTE stage) picks the node */
	struct req r;
	tx_req_init(cl, cl->server, &r);
	if (cl->txn) {
		r.sql = first_sql(cl, &r.sql_len);
		r.type = cl->ep.in_len ? cl->ep.in[0] : 0;
	}
	/* (a cache miss being recorded set PIPE_RF_PRIMARY_ONLY at PIPE_AT_REQUEST) */
	enum pipe_verdict v = pipe_run(cl->pipe, PIPE_AT_ROUTE, &r);
	int node = r.node;
	if (v == PIPE_PARK) {
		/* the primary is down: a failover may give us another one */
		if (was != CLQ_PRIMARY)
			conn_now(&cl->wait_start);
		cl_set_queue(cl, CLQ_PRIMARY);
		return;
	}
	if (v == PIPE_ERROR || v == PIPE_ANSWERED || node < 0) {
		refuse_pending(cl, v == PIPE_ERROR ? r.err.sqlstate : "08006",
		               v == PIPE_ERROR ? r.err.msg : "no node could be chosen");
		return;
	}
	node = allowed_node(cl, node);
	if (ctl_any_drained() && ctl_node_drained(c->nodes[node].name)) {
		cl_set_queue(cl, CLQ_PAUSED); /* a drained primary: wait for undrain */
		return;
	}
	if (!cl->pool || pool_node(cl->pool) != node)
		cl->pool = lookup_pool(cl, node);
	if (!cl->pool) {
		cl_close(cl, "53200", "out of memory");
		return;
	}
	cl->pw.signature = cl->signature;
	cl->pw.home = cl->w;
	cl->pw.since = cl->wait_start;
	cl->pw.granted = cl_granted;
	/* each turn that goes round closes one dead idle server, so this ends:
	 * a client is served by a live one or a new connection, however many
	 * backends were terminated */
	for (;;) {
		struct pool_item *it;
		enum pool_grant g = pool_acquire(cl->pool, &cl->pw, pool_max(cl->pool), &it);
		struct server *sv = sv_of_pool_item(it);
		switch (g) {
		case POOL_GOT:
			sv_attach(sv, cl->w);
			if (!sv_alive(sv)) {
				log_dead_idle(sv);
				sv_close(sv); /* uncounts and may pass a permit on */
				continue;
			}
			bind_server(cl, sv);
			return;
		case POOL_REPLACE:
			sv_attach(sv, cl->w);
			sv->counted = false; /* its slot goes to the new connection */
			sv_close(sv);
			/* fall through */
		case POOL_CONNECT:
			if (sv_connect(cl->w, cl->pool, cl, node) < 0) {
				pool_drop(cl->pool, pool_max(cl->pool));
				cl_close(cl, "08006", "could not connect to the database server");
			}
			return;
		case POOL_WAIT:
			cl_set_queue(cl, CLQ_WAITING);
			/* held by a database/user cap while a sibling pool idles:
			 * that idle server closes and its slot comes here */
			if ((it = pool_evict_for(cl->pool))) {
				sv = sv_of_pool_item(it);
				sv_attach(sv, cl->w);
				sv_close_handover(sv); /* its pool_drop wakes us */
			}
			return;
		}
	}
}

/* Transaction pooling: answers the login from the parameters a server of
 * this pool reported, with the client's own startup values in place of
 * the server's, so a login never waits for a server. */
static bool tx_login_from_cache(struct client *cl)
{
	uint32_t len;
	char *blob = pool_params_copy(cl->pool, &len);
	if (!blob)
		return false;
	uint8_t buf[8192];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	for (uint32_t off = 0; off < len;) {
		const char *n = blob + off;
		const char *v = n + strlen(n) + 1;
		off = (uint32_t)(v + strlen(v) + 1 - blob);
		char low[128];
		snprintf(low, sizeof(low), "%s", n);
		for (char *p = low; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		const struct guc_ent *mine = guc_get(&cl->startup, low);
		pgw_param_status(&o, n, mine ? mine->value : v);
	}
	free(blob);
	cl_set_state(cl, CL_ACTIVE);
	cancel_register(cl, 0x40000000u | (uint32_t)(cl->id & 0x3fffffff));
	pgw_key_data(&o, cl->cancel_pid, cl->cancel_key);
	pgw_ready(&o, 'I');
	cl_send_msg(cl, &o);
	/* anything sent ahead of ReadyForQuery */
	if (cl->ep.in_len)
		tx_client_input(cl);
	return true;
}

/* Transaction pooling: may the proxy put a message of its own on the
 * client's stream now? Yes without a server; with one (a pinned client
 * keeps its server), when every answer the server owes has been relayed
 * and no message is half-way through. A pinned client's LISTEN answer and
 * its notifications must not wait for a release that never comes. */
static bool cl_at_boundary(const struct client *cl)
{
	const struct server *sv = cl->server;
	if (!sv)
		return true;
	return cl->txn && sv->client == cl && sv->txn && sv->state == SV_ACTIVE &&
	       !tx_client_answers_due(sv) && sv->cur_left == 0 && sv->hdr_n == 0 &&
	       !cl->stream_left;
}

void cl_deliver_notify(struct client *cl, const uint8_t *msg, uint32_t len)
{
	if (cl->state != CL_ACTIVE)
		return;
	if (!cl->notify_len && cl_at_boundary(cl)) {
		/* between messages: send now */
		ep_send_bytes(&cl->ep, msg, len);
		return;
	}
	if (cl->notify_len + len > 1u << 20)
		return; /* a client that never lets go of its server loses the excess */
	uint8_t *b = realloc(cl->notify_buf, cl->notify_len + len);
	if (!b)
		return;
	memcpy(b + cl->notify_len, msg, len);
	cl->notify_buf = b;
	cl->notify_len += len;
}

void cl_flush_notify(struct client *cl)
{
	if (!cl->notify_len || cl->state != CL_ACTIVE || !cl_at_boundary(cl))
		return;
	ep_send_bytes(&cl->ep, cl->notify_buf, cl->notify_len);
	free(cl->notify_buf);
	cl->notify_buf = NULL;
	cl->notify_len = 0;
}

/* The LISTEN wait is over (confirmed, or timed out): what the client sent
 * meanwhile runs. */
static void listen_wait_end(struct client *cl)
{
	free(cl->listen_answer);
	cl->listen_answer = NULL;
	for (int i = 0; i < cl->n_listen_chans; i++)
		free(cl->listen_chans[i]);
	free(cl->listen_chans);
	cl->listen_chans = NULL;
	cl->n_listen_chans = 0;
	cl->listen_wait = false;
	cl->listen_wait_start = (struct timespec){0};
	tx_client_input(cl);
}

static void listen_fail(struct client *cl, const char *sqlstate, const char *why);

void cl_listen_check(struct client *cl)
{
	if (!cl->listen_wait || cl->state != CL_ACTIVE)
		return;
	for (int i = 0; i < cl->n_listen_chans; i++) {
		if (listen_active(cl, cl->listen_chans[i]))
			continue;
		if (listen_hub_lost(cl))
			/* its login failed or it closed: nothing will confirm it */
			listen_fail(cl, "08006", "could not be opened or was lost");
		return;
	}
	cl_flush_notify(cl);
	if (cl_at_boundary(cl) && !cl->notify_len)
		ep_send_bytes(&cl->ep, cl->listen_answer, cl->listen_answer_len);
	else
		cl_deliver_notify(cl, cl->listen_answer, cl->listen_answer_len);
	listen_wait_end(cl);
}

/* A LISTEN the pool's hub cannot confirm (its connection failed, or did
 * not confirm within query_wait_timeout_secs): the client gets an error
 * for it instead of waiting for ever, and keeps its connection. */
static void listen_fail(struct client *cl, const char *sqlstate, const char *why)
{
	const char *chan = cl->n_listen_chans ? cl->listen_chans[0] : "?";
	char msg[400];
	snprintf(msg, sizeof(msg),
	         "LISTEN \"%s\": the pool's LISTEN connection (database \"%s\", user \"%s\") %s",
	         chan, cl->database, cl->user, why);
	log_warn("client %llu %s user=%s db=%s: %s", (unsigned long long)cl->id, cl->peer, cl->user,
	         cl->database, msg);
	for (int i = 0; i < cl->n_listen_chans; i++)
		listen_unsubscribe(cl, cl->listen_chans[i]);
	if (!cl_at_boundary(cl)) {
		cl_close(cl, sqlstate, msg);
		return;
	}
	cl_flush_notify(cl);
	send_error_ready(cl, sqlstate, msg);
	listen_wait_end(cl);
}

static void listen_timeout(struct client *cl, int secs)
{
	char why[100];
	snprintf(why, sizeof(why), "did not confirm within %d s (query_wait_timeout_secs)", secs);
	listen_fail(cl, "57014", why);
}

struct server *cl_get_server_for_tx(struct client *cl)
{
	cl->tx_take = true;
	cl_get_server(cl);
	cl->tx_take = false;
	struct server *sv = cl->tx_taken;
	cl->tx_taken = NULL;
	return sv;
}

void cl_handoff_arrived(struct client *cl)
{
	struct server *sv = sv_of_pool_item(cl->pw.item);
	bool permit = cl->pw.permit;
	cl->pw.item = NULL;
	cl->pw.permit = false;
	cl->pw.state = POOL_W_NONE;
	if (cl->queue == CLQ_WAITING)
		cl_set_queue(cl, CLQ_NONE);
	if (cl->state != CL_WAIT_SERVER && !(cl->txn && cl->state == CL_ACTIVE && !cl->server)) {
		/* it left meanwhile: give back what it was handed */
		if (sv) {
			sv_attach(sv, cl->w);
			sv->client = NULL;
			sv_release(sv);
		} else if (permit) {
			pool_drop(cl->pool, pool_max(cl->pool));
		}
		cl->await_handoff = false;
		if (cl->zombie)
			cl_free(cl);
		return;
	}
	if (sv) {
		sv_attach(sv, cl->w);
		bool same = sv->signature == cl->signature;
		if (same && sv_alive(sv)) {
			bind_server(cl, sv);
			return;
		}
		if (same)
			log_dead_idle(sv);
		/* different startup parameters (or dead): its slot goes to a new
		 * connection opened in its place */
		sv->counted = false;
		sv_close(sv);
	}
	if (sv_connect(cl->w, cl->pool, cl, pool_node(cl->pool)) < 0) {
		pool_drop(cl->pool, pool_max(cl->pool));
		cl_close(cl, "08006", "could not connect to the database server");
	}
}

void cl_wait_timeout_check(struct worker *w, const struct timespec *now)
{
	/* LISTEN answers waiting for the hub: bounded like a pool wait */
	struct conn_worker *cw = cw_of(w);
	for (struct client *c = cw->clients, *next; c; c = next) {
		next = c->all_next;
		if (!c->listen_wait || c->state != CL_ACTIVE)
			continue;
		int t = c->snap->cfg->pool.query_wait_timeout_secs;
		if (!c->listen_wait_start.tv_sec && !c->listen_wait_start.tv_nsec)
			c->listen_wait_start = *now; /* within a tick of the LISTEN */
		else if (t > 0 && conn_elapsed(&c->listen_wait_start, now) >= t)
			listen_timeout(c, t);
	}
	struct client *cl = cw->q[CLQ_WAITING].head;
	while (cl) {
		struct client *next = cl->q_next;
		int t = cl->snap->cfg->pool.query_wait_timeout_secs;
		int rt = cl->snap->cfg->pool.reserve_pool_timeout_ms;
		/* waited reserve_pool_timeout: a reserve connection, if any */
		if (rt > 0 && pool_reserve(cl->pool) > 0 &&
		    conn_elapsed(&cl->wait_start, now) * 1000 >= rt &&
		    pool_try_reserve(cl->pool, &cl->pw)) {
			cl = next;
			continue;
		}
		if (t > 0 && conn_elapsed(&cl->wait_start, now) >= t) {
			if (pool_cancel_wait(cl->pool, &cl->pw)) {
				char msg[400], caps[120] = "";
				struct pool_limits l;
				pool_note_timeout(cl->pool);
				cl_set_queue(cl, CLQ_NONE);
				/* the caps shared with other pools may be what held it */
				pool_get_limits(cl->pool, &l);
				if (l.db_cap && l.user_cap)
					snprintf(caps, sizeof(caps),
					         ", max_db_connections %d and max_user_connections "
					         "%d shared with other pools",
					         l.db_cap, l.user_cap);
				else if (l.db_cap || l.user_cap)
					snprintf(caps, sizeof(caps),
					         ", %s %d shared with other pools",
					         l.db_cap ? "max_db_connections"
					                  : "max_user_connections",
					         l.db_cap ? l.db_cap : l.user_cap);
				snprintf(
				    msg, sizeof(msg),
				    "query_wait_timeout: no server connection became free "
				    "within %d s in pool \"%s/%s\" (database \"%s\", user \"%s\", "
				    "max_pool_size %d%s)",
				    t, pool_database(cl->pool), pool_user(cl->pool),
				    pool_database(cl->pool), pool_user(cl->pool),
				    pool_max(cl->pool), caps);
				if (cl->txn && cl->state == CL_ACTIVE && !cl->login_pending)
					/* between transactions: that request fails, the
					 * connection stays */
					refuse_pending(cl, "53300", msg);
				else
					cl_close(cl, "53300", msg);
			}
		}
		cl = next;
	}
}

/* Login finished: tell the client what its server reports, and start relaying. */
static void bind_server(struct client *cl, struct server *sv)
{
	conn_ctr_waited(cl, &cl->wait_start);
	cl->request_s = (uint32_t)cl->wait_start.tv_sec;
	if (cl->txn) {
		if (cl->state == CL_WAIT_SERVER) {
			/* login: its answer waits for the client's settings to be
			 * applied, so ParameterStatus shows the client's values */
			cl->login_pending = true;
			cl_set_state(cl, CL_ACTIVE);
			cancel_register(cl, 0x40000000u | (uint32_t)(cl->id & 0x3fffffff));
		}
		cl->connecting = NULL;
		if (cl->tx_take) {
			cl->tx_taken = sv; /* the relay that asked binds it */
			return;
		}
		tx_bind(cl, sv);
		return;
	}
	cl->connecting = NULL;
	cl->server = sv;
	sv->client = cl;
	sv_set_state(sv, SV_ACTIVE);
	tx_ev_bind(cl, sv); /* session mode too (not when spliced) */
	uint8_t buf[8192];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	for (int i = 0; i < sv->n_params; i++)
		pgw_param_status(&o, sv->param_name[i], sv->param_value[i]);
	/* The server's real pid (clients use it with pg_terminate_backend),
	 * with a secret key of the proxy's own. */
	cancel_register(cl, sv->backend_pid);
	cancel_set_target(cl, sv);
	pgw_key_data(&o, cl->cancel_pid, cl->cancel_key);
	pgw_ready(&o, 'I');
	cl_set_state(cl, CL_ACTIVE);
	sv->tx_status = 'I';
	sv->clean = true;
	if (!o.overflow && splice_wanted(cl, sv)) {
		splice_start(cl, sv, o.buf, o.len);
		return;
	}
	cl_send_msg(cl, &o);
	io_recv_start(&sv->ep.sock);
	/* anything the client sent ahead of ReadyForQuery */
	if (cl->ep.in_len && sess_staged(cl, sv)) {
		sess_input(cl);
	} else if (cl->ep.in_len) {
		struct io_chunk *c = io_chunk_new(cl->ep.in_len);
		if (c) {
			memcpy(c->data, cl->ep.in, cl->ep.in_len);
			c->len = cl->ep.in_len;
			ep_in_consume(&cl->ep, cl->ep.in_len);
			sv_client_data(sv, c);
		}
	}
}

void cl_server_ready(struct client *cl, struct server *sv)
{
	if (cl->state != CL_WAIT_SERVER && !(cl->txn && cl->state == CL_ACTIVE && !cl->server)) {
		sv->client = NULL;
		sv_release(sv);
		return;
	}
	bind_server(cl, sv);
}

void cl_server_failed(struct client *cl, const uint8_t *err_body, uint32_t err_len,
                      const char *sqlstate, const char *msg)
{
	cl->connecting = NULL;
	if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
		return;
	if (cl->txn && cl->state == CL_ACTIVE && !cl->login_pending) {
		/* a logged-in client whose next transaction found no server:
		 * that request fails, the connection stays */
		char text[400];
		const char *m = err_body ? pgw_error_field(err_body, err_len, 'M') : NULL;
		snprintf(text, sizeof(text), "%s", m ? m : msg ? msg : "no server connection");
		cl_refuse_pending(cl, text);
		return;
	}
	if (err_body) {
		/* The server's own error, as it sent it. */
		const char *m = pgw_error_field(err_body, err_len, 'M');
		const char *code = pgw_error_field(err_body, err_len, 'C');
		uint8_t hdr[5] = {'E', (uint8_t)((err_len + 4) >> 24),
		                  (uint8_t)((err_len + 4) >> 16), (uint8_t)((err_len + 4) >> 8),
		                  (uint8_t)(err_len + 4)};
		ep_send_bytes(&cl->ep, hdr, 5);
		ep_send_bytes(&cl->ep, err_body, err_len);
		log_info("client %llu %s user=%s db=%s: server refused login: %s (%s)",
		         (unsigned long long)cl->id, cl->peer, cl->user, cl->database, m ? m : "?",
		         code ? code : "?");
		tx_ev_error(cl, code, m);
		cl_close(cl, NULL, NULL);
		return;
	}
	cl_close(cl, sqlstate, msg);
}

void cl_server_data(struct client *cl, struct io_chunk *c)
{
	if (cl->state != CL_ACTIVE && cl->state != CL_CLOSING) {
		io_chunk_release(cl->w->loop, c);
		return;
	}
	if (cl->kf) /* a splice starting: bytes raced its receive stop */
		splice_userspace_data(cl, true);
	ep_send_chunk(&cl->ep, c);
	if (cl->ep.q_bytes > EP_HIGH_WATER && cl->server && !cl->server->ep.paused) {
		cl->server->ep.paused = true;
		io_recv_stop(&cl->server->ep.sock);
	}
}

void cl_server_gone(struct client *cl)
{
	cl->server = NULL;
	cl->connecting = NULL;
	cancel_set_target(cl, NULL);
	cl_close(cl, NULL, NULL);
}

/* ---------------------------------------------------------------- relay */

/* Forwards what of c precedes the message whose 5-byte header ends at pos,
 * then closes the client (sqlstate/msg as for cl_close). If that header
 * began in an earlier chunk, part of it already went out and the server
 * cannot be reused. */
static void forward_head_and_close(struct client *cl, struct server *sv, struct io_chunk *c,
                                   size_t pos, const char *sqlstate, const char *msg)
{
	if (pos >= (size_t)c->off + 5) {
		c->len = (uint32_t)(pos - 5 - c->off);
	} else {
		sv->clean = false;
		c->len = 0;
	}
	if (c->len)
		sv_client_data(sv, c);
	else
		io_chunk_release(cl->w->loop, c);
	cl_close(cl, sqlstate, msg);
}

/* Client bytes to its server. Only headers are looked at: Terminate ends
 * the session without reaching the pooled server. */
static void relay_to_server(struct client *cl, struct io_chunk *c)
{
	struct server *sv = cl->server;
	size_t pos = c->off, end = (size_t)c->off + c->len;
	bool pooled = sv->pool != NULL;
	for (;;) {
		enum pgw_scan_ev ev = pgw_scan(&cl->ep.scan, c->data, end, &pos);
		if (ev == PGW_SCAN_END)
			break;
		if (ev == PGW_SCAN_BAD) {
			io_chunk_release(cl->w->loop, c);
			sv->clean = false;
			cl_close(cl, "08P01", "invalid message length from client");
			return;
		}
		char why[96];
		const char *bad =
		    ep_frontend_check(cl->ep.scan.type, cl->ep.scan.len + 4, why, sizeof(why));
		if (bad) {
			/* PostgreSQL would end the session; the proxy does it so the
			 * server never sees it (a server closing after its FATAL
			 * would look like a crash) */
			forward_head_and_close(cl, sv, c, pos, "08P01", bad);
			return;
		}
		if (cl->ep.scan.type == PGW_MSG_TERMINATE && pooled) {
			forward_head_and_close(cl, sv, c, pos, NULL, NULL);
			return;
		}
	}
	sv_client_data(sv, c);
	if (sv->ep.q_bytes > EP_HIGH_WATER && !cl->ep.paused) {
		cl->ep.paused = true;
		io_recv_stop(&cl->ep.sock);
	}
}

static void process_plain(struct client *cl, struct io_chunk *c)
{
	switch (cl->state) {
	case CL_ACTIVE:
		if (cl->admin) {
			int r = ep_in_append(&cl->ep, c->data + c->off, c->len);
			io_chunk_release(cl->w->loop, c);
			if (r < 0)
				cl_close(cl, "54000", "admin statement too long");
			else
				cl_admin_input(cl);
		} else if (cl->txn) {
			tx_client_data(cl, c);
		} else {
			if (cl->kf)
				splice_userspace_data(cl, false);
			if (__builtin_expect(cl->pipe_swap, 0))
				cl_pipe_swap_try(cl); /* rebuilt pipeline (client_pipe.c) */
			if (sess_staged(cl, cl->server))
				sess_client_data(cl, c); /* stages run on its messages */
			else
				relay_to_server(cl, c);
		}
		return;
	case CL_STARTUP:
	case CL_TLS:
	case CL_AUTH:
	case CL_WAIT_SERVER: {
		int r = ep_in_append(&cl->ep, c->data + c->off, c->len);
		io_chunk_release(cl->w->loop, c);
		if (r < 0) {
			cl_close(cl, "08P01", "too much data before the session started");
			return;
		}
		cl_login_input(cl);
		return;
	}
	default:
		io_chunk_release(cl->w->loop, c);
		return;
	}
}

static void cl_on_recv(struct io_sock *s, struct io_chunk *c)
{
	struct client *cl = s->owner;
	if (cl->lingering) {
		io_chunk_release(cl->w->loop, c); /* after our FATAL: dropped */
		return;
	}
	cl->rx_n++; /* client_idle_timeout: the tick sees it changed */
	if (cl->moving) {
		/* bytes raced the stop of an online restart's hand-over: it is
		 * busy again, stays here and is tried again once idle */
		cl_move_abort(cl);
	}
	if (!cl->ep.tls) {
		process_plain(cl, c);
		return;
	}
	struct io_chunk *plain;
	int closed;
	int r = ep_tls_decrypt(&cl->ep, cl->w->loop, c, &plain, &closed);
	while (plain) {
		struct io_chunk *next = plain->next;
		plain->next = NULL;
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
			io_chunk_release(cl->w->loop, plain);
		else
			process_plain(cl, plain);
		plain = next;
	}
	if (r < 0 || closed < 0) {
		if (r < 0 || closed != -ESHUTDOWN) {
			char eb[200];
			/* a refused client certificate: say which check failed
			 * (unknown CA, revoked, expired), not just "verify failed" */
			const char *ve = tls_verify_error(cl->ep.tls);
			log_info("client %llu %s: TLS error: %s%s%s", (unsigned long long)cl->id,
			         cl->peer, tls_last_error(eb, sizeof(eb)),
			         ve ? ": client certificate: " : "", ve ? ve : "");
		}
		cl_close(cl, NULL, NULL);
	}
}

/* ------------------------------------------------ issue 19 timeouts */

/* Once a second on each worker, when any of the three is set (read from
 * the current snapshot, so a reload applies to clients already in):
 * - query_timeout: a query running that long is cancelled on its server
 *   and the client closed with 57014 "query timeout" (PgBouncer closes the
 *   client too; the cancel frees the backend at once);
 * - idle_transaction_timeout: a client idle that long inside a
 *   transaction is closed with 25P03; its server closes with it, so
 *   PostgreSQL rolls the transaction back;
 * - client_idle_timeout: a client that sent nothing that long outside a
 *   transaction is closed (08P01), in every pooling mode. */
void cl_timeouts_tick(struct worker *w, const struct timespec *now)
{
	struct snap *sn = snap_current();
	if (!sn)
		return;
	int qt = sn->cfg->pool.query_timeout_secs;
	int it = sn->cfg->pool.idle_transaction_timeout_secs;
	int ct = sn->cfg->client_idle_timeout_secs;
	snap_unref(sn);
	if (!qt && !it && !ct)
		return;
	for (struct client *cl = cw_of(w)->clients, *next; cl; cl = next) {
		next = cl->all_next;
		/* spliced sessions pass no byte through here: nothing to time */
		if (cl->state != CL_ACTIVE || cl->admin || cl->replication || cl->kf)
			continue;
		struct server *sv = cl->server;
		bool q_busy = sv && sv->q_busy, x_busy = sv && sv->x_busy;
		/* waiting for a server (or for its connection) is not idleness */
		bool waits = cl->queue != CLQ_NONE || cl->pw.state != POOL_W_NONE ||
		             cl->connecting || (!sv && cl->ep.in_len);
		if (cl->rx_n != cl->rx_seen || q_busy || x_busy || waits ||
		    (!cl->idle_since.tv_sec && !cl->idle_since.tv_nsec)) {
			cl->rx_seen = cl->rx_n;
			cl->idle_since = *now;
		}
		if (qt > 0 && q_busy && conn_elapsed(&sv->q_start, now) >= qt) {
			log_info("client %llu %s user=%s db=%s: query running longer than "
			         "query_timeout_secs = %d: cancelled",
			         (unsigned long long)cl->id, cl->peer, cl->user, cl->database, qt);
			cl->close_logged = true;
			cancel_forward(cl->w, cl->cancel_pid, cl->cancel_key);
			cl_close(cl, "57014", "query timeout"); /* PgBouncer's text */
		} else if (it > 0 && x_busy && !q_busy && (sv->z_at.tv_sec || sv->z_at.tv_nsec) &&
		           conn_elapsed(&sv->z_at, now) >= it) {
			log_info("client %llu %s user=%s db=%s: idle in transaction longer than "
			         "idle_transaction_timeout_secs = %d: closed",
			         (unsigned long long)cl->id, cl->peer, cl->user, cl->database, it);
			cl->close_logged = true;
			cl_close(cl, "25P03", "idle transaction timeout");
		} else if (ct > 0 && !x_busy && !q_busy &&
		           conn_elapsed(&cl->idle_since, now) >= ct) {
			log_info("client %llu %s user=%s db=%s: idle longer than "
			         "client_idle_timeout_secs = %d: closed",
			         (unsigned long long)cl->id, cl->peer, cl->user, cl->database, ct);
			cl->close_logged = true;
			cl_close(cl, "08P01", "client_idle_timeout");
		}
	}
}
