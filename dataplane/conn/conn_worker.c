/*
 * conn/'s per-worker state and work (see conn_worker.h): listening sockets
 * and accept, the client lists by waiting state, the servers logging in,
 * the timers that bound those waits, posts from other threads to a
 * worker's clients, and draining at shutdown.
 * May call: conn/, pipeline/, pool/, policy/, rt/, io/, auth/.
 */
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/conn.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/listen.h"
#include "dataplane/conn/splice.h"
#include "dataplane/conn/takeover.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/control.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CLOSE_LINGER_SECS 5.0
/* a client half-closed after a FATAL: how long its EOF is waited for */
#define LINGER_READ_SECS 1.0

int g_client_count;
int g_admin_sessions; /* admin console sessions among g_client_count */

/* ------------------------------------------------------------ listening */

/* "host:port" or "[v6]:port" into a bound, listening SO_REUSEPORT socket. */
static int listen_tcp(const char *addr, char *err, size_t errlen)
{
	char host[256], port[16];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1]) {
		snprintf(err, errlen, "listen_address '%s': expected host:port", addr);
		return -EINVAL;
	}
	size_t hl = (size_t)(colon - addr);
	if (addr[0] == '[' && colon[-1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port)) {
		snprintf(err, errlen, "listen_address '%s' is too long", addr);
		return -EINVAL;
	}
	memcpy(host, addr, hl);
	host[hl] = 0;
	snprintf(port, sizeof(port), "%s", colon + 1);
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai;
	int r = getaddrinfo(hl ? host : NULL, port, &hints, &ai);
	if (r) {
		snprintf(err, errlen, "listen_address '%s': %s", addr, gai_strerror(r));
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	return fd;
}

static int listen_unix(const char *dir, const char *listen_addr, char *err, size_t errlen)
{
	const char *colon = strrchr(listen_addr, ':');
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%s", dir,
	                 colon ? colon + 1 : "5432");
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir '%s' is too long for a socket path", dir);
		return -ENAMETOOLONG;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path); /* a stale socket from a previous run */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		int r = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return r;
	}
	chmod(sa.sun_path, 0777); /* as PostgreSQL's default unix_socket_permissions */
	return fd;
}

static void on_accept(struct io_sock *s, int fd)
{
	struct worker *w = s->owner;
	if (fd < 0) {
		log_warn("worker %d: accept failed: %s", w->idx, strerror(-fd));
		return;
	}
	/* a connection accepted while an online restart takes the socket
	 * away is served here, and moves once idle */
	if (__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&g_tko_handing, __ATOMIC_ACQUIRE)) {
		close(fd);
		return;
	}
	cl_accept(w, fd, s == &cw_of(w)->unix_sock);
}

static void on_listener_closed(struct io_sock *s)
{
	(void)s;
}

static const struct io_sock_ops listen_ops = {
    .on_accept = on_accept,
    .on_closed = on_listener_closed,
};

/* ------------------------------------------------------------ lists */

void cw_client_add(struct worker *w, struct client *cl)
{
	struct conn_worker *cw = cw_of(w);
	cl->all_prev = NULL;
	cl->all_next = cw->clients;
	if (cw->clients)
		cw->clients->all_prev = cl;
	cw->clients = cl;
	cw->n_clients++;
}

void cw_client_remove(struct worker *w, struct client *cl)
{
	struct conn_worker *cw = cw_of(w);
	if (cl->all_prev)
		cl->all_prev->all_next = cl->all_next;
	else
		cw->clients = cl->all_next;
	if (cl->all_next)
		cl->all_next->all_prev = cl->all_prev;
	cl->all_next = cl->all_prev = NULL;
	cw->n_clients--;
}

struct client *cw_find_client(struct worker *w, uint64_t id)
{
	for (struct client *cl = cw_of(w)->clients; cl; cl = cl->all_next)
		if (cl->id == id)
			return cl;
	return NULL;
}

void cl_set_queue(struct client *cl, enum cl_queue q)
{
	if (cl->queue == q)
		return;
	struct conn_worker *cw = cw_of(cl->w);
	if (cl->queue != CLQ_NONE) {
		struct cl_list *l = &cw->q[cl->queue];
		if (cl->q_prev)
			cl->q_prev->q_next = cl->q_next;
		else
			l->head = cl->q_next;
		if (cl->q_next)
			cl->q_next->q_prev = cl->q_prev;
		else
			l->tail = cl->q_prev;
		l->n--;
		cl->q_next = cl->q_prev = NULL;
	}
	cl->queue = q;
	if (q != CLQ_NONE) {
		struct cl_list *l = &cw->q[q];
		cl->q_next = NULL;
		cl->q_prev = l->tail;
		if (l->tail)
			l->tail->q_next = cl;
		else
			l->head = cl;
		l->tail = cl;
		l->n++;
	}
}

/* ------------------------------------------------------------ posts */

/* Bytes for one client of a worker, found by id on arrival. */
struct client_post {
	struct worker_msg m;
	uint64_t cl_id;
	uint32_t len;
	bool admin;    /* an admin-console answer, not a notification */
	bool term;     /* then SIGTERM (SHUTDOWN on the console) */
	uint8_t msg[]; /* a whole message (NotificationResponse, or the answer) */
};

static void client_post_run(struct worker *w, struct worker_msg *m)
{
	struct client_post *p = (struct client_post *)m;
	struct client *cl = cw_find_client(w, p->cl_id); /* it may have left since */
	if (cl) {
		if (p->admin)
			cl_admin_reply(cl, p->msg, p->len);
		else
			cl_deliver_notify(cl, p->msg, p->len);
	}
	/* the drain that follows closes the console session after the answer
	 * queued here, so its client sees SHUTDOWN complete */
	if (p->term && kill(getpid(), SIGTERM) < 0)
		log_error("admin console: SHUTDOWN: cannot signal the process: %s",
		          strerror(errno));
	free(p);
}

static bool client_post(struct worker *w, struct client_post *p)
{
	p->m = (struct worker_msg){.fn = client_post_run};
	if (worker_post(w, &p->m) == 0)
		return true;
	free(p);
	return false;
}

bool cw_post_admin_reply(int widx, uint64_t cl_id, const uint8_t *msg, uint32_t len, bool term)
{
	if (widx < 0 || widx >= workers_started())
		return false;
	struct client_post *p = malloc(sizeof(*p) + len);
	if (!p)
		return false;
	p->cl_id = cl_id;
	p->len = len;
	p->admin = true;
	p->term = term;
	memcpy(p->msg, msg, len);
	return client_post(&g_workers[widx], p);
}

void cw_post_notify(struct worker *w, uint64_t cl_id, const uint8_t *body, uint32_t len)
{
	struct client_post *p = malloc(sizeof(*p) + len + 5);
	if (!p)
		return;
	p->cl_id = cl_id;
	p->admin = false;
	p->term = false;
	p->len = len + 5;
	p->msg[0] = 'A';
	p->msg[1] = (uint8_t)((len + 4) >> 24);
	p->msg[2] = (uint8_t)((len + 4) >> 16);
	p->msg[3] = (uint8_t)((len + 4) >> 8);
	p->msg[4] = (uint8_t)(len + 4);
	memcpy(p->msg + 5, body, len);
	client_post(w, p);
}

static void handoff_run(struct worker *w, struct worker_msg *m)
{
	(void)w;
	struct client *cl = (struct client *)((char *)m - offsetof(struct client, mail));
	cl_handoff_arrived(cl);
}

void cl_post_handoff(struct client *cl)
{
	cl->mail.fn = handoff_run;
	/* a worker's loop ends only once its clients are gone: never refused */
	(void)worker_post(cl->w, &cl->mail);
}

/* Visits each client on list q that was on it when the visit began (a
 * client the visit puts back is not seen twice). */
static void visit_queue(struct conn_worker *cw, enum cl_queue q, struct client *last,
                        void (*fn)(struct client *cl))
{
	if (!last)
		return;
	for (struct client *c = cw->q[q].head, *next; c; c = next) {
		next = c->q_next;
		bool end = c == last;
		fn(c);
		if (end)
			break;
	}
}

static void hold_run(struct worker *w, struct worker_msg *m)
{
	(void)m;
	struct conn_worker *cw = cw_of(w);
	struct client *last_primary = cw->q[CLQ_PRIMARY].tail;
	struct client *last_paused = cw->q[CLQ_PAUSED].tail;
	visit_queue(cw, CLQ_PRIMARY, last_primary, cl_hold_check);
	visit_queue(cw, CLQ_PAUSED, last_paused, cl_hold_check);
}

static void listen_run(struct worker *w, struct worker_msg *m)
{
	(void)m;
	for (struct client *c = cw_of(w)->clients, *next; c; c = next) {
		next = c->all_next;
		if (c->listen_wait)
			cl_listen_check(c);
	}
}

void conn_hold_changed(void)
{
	for (int i = 0, n = workers_started(); i < n; i++)
		(void)worker_post(&g_workers[i], &cw_of(&g_workers[i])->hold_msg);
}

void conn_listen_changed(void)
{
	for (int i = 0, n = workers_started(); i < n; i++)
		(void)worker_post(&g_workers[i], &cw_of(&g_workers[i])->listen_msg);
}

/* ------------------------------------------------------------ timers */

/* Every turn: the waits conn/ bounds (pool, login, LISTEN, holds, server
 * logins, lingering closes), kernel splices, cancels, token and rate-limit
 * wake-ups, internal requests. */
static void turn(struct worker *w, void *arg)
{
	(void)arg;
	struct conn_worker *cw = cw_of(w);
	struct timespec now;
	conn_now(&now);
	cl_wait_timeout_check(w, &now);
	cl_login_timeout_check(w, &now);
	splice_tick(w, &now);
	cancel_worker_tick(w, &now);
	/* clients parked on a token (a query they wait behind finished: the
	 * cache sets the flag from any thread and wakes the loop) */
	if (__atomic_load_n(&cw_of(w)->token_check, __ATOMIC_ACQUIRE) &&
	    __atomic_exchange_n(&cw_of(w)->token_check, false, __ATOMIC_ACQ_REL))
		tx_token_wake(w);
	tx_token_tick(w, conn_ts_ns(&now));
	ireq_worker_tick(conn_ts_ns(&now)); /* internal requests waiting for a server */
	tx_rate_wake(w, conn_ts_ns(&now));
	if (cw_of(w)->rate_waiters)
		worker_wake_by(w, cw_of(w)->rate_next_ns); /* throttled clients wake when due */
	/* clients waiting for a primary: failover_timeout_secs at most */
	for (struct client *cl = cw->q[CLQ_PRIMARY].head, *next; cl; cl = next) {
		next = cl->q_next;
		if (conn_elapsed(&cl->wait_start, &now) >=
		    cl->snap->cfg->routing.failover_timeout_secs)
			cl_hold_expired(cl);
	}
	/* a drained node: query_wait_timeout */
	for (struct client *cl = cw->q[CLQ_PAUSED].head, *next; cl; cl = next) {
		next = cl->q_next;
		cl_hold_wait_check(cl, &now);
	}
	/* servers that take too long to connect or log in */
	struct snap *sn = snap_current();
	int connect_timeout = sn ? sn->cfg->pool.server_connect_timeout_secs : 5;
	snap_unref(sn);
	for (struct server *sv = cw->sv[SVL_LOGIN], *next; sv; sv = next) {
		next = sv->wl_next;
		if (conn_elapsed(&sv->created, &now) > connect_timeout)
			sv_login_timeout(sv, connect_timeout);
	}
	if (cw->sv[SVL_HANDOVER])
		sv_handover_tick(w, &now);
	for (struct client *cl = cw->q[CLQ_CLOSING].head, *next; cl; cl = next) {
		next = cl->q_next;
		double secs = conn_elapsed(&cl->close_start, &now);
		if (secs > CLOSE_LINGER_SECS || (cl->lingering && secs > LINGER_READ_SECS))
			io_sock_close(&cl->ep.sock);
	}
	listen_worker_tick(w);
}

/* Once a second: query, idle-in-transaction and client idle timeouts. */
static void client_timeouts(struct worker *w, void *arg)
{
	(void)arg;
	struct timespec now;
	conn_now(&now);
	cl_timeouts_tick(w, &now);
}

/* Every wake-up: servers held while a cancel was in flight. */
static void cancel_turn(struct worker *w, void *arg)
{
	(void)arg;
	cancel_worker_wake(w);
}

/* Once a second on worker 0: expire idle servers, keep min_idle warm. */
static void maintain_pools(struct worker *w, void *arg)
{
	(void)arg;
	struct snap *sn = snap_current();
	if (!sn)
		return;
	const struct cfg *c = sn->cfg;
	struct timespec now;
	conn_now(&now);
	/* after a failover the old primary's idle connections go (a node that
	 * was demoted while alive must not keep sessions opened as primary) */
	int prim = route_primary(c);
	int old_prim = cw_of(w)->last_primary;
	cw_of(w)->last_primary = prim;
	bool failed_over = old_prim >= 0 && prim >= 0 && prim != old_prim;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
		int ni = pool_node(p);
		if ((failed_over && ni == old_prim) ||
		    (ctl_any_drained() && ni >= 0 && (size_t)ni < c->n_nodes &&
		     ctl_node_drained(c->nodes[ni].name))) {
			/* drained: idle connections go now, busy ones when released */
			sv_pool_close_idle(w, p);
			continue;
		}
		/* a [[databases]] entry's own min_pool_size and pool_size */
		int min_idle = pool_min(p, c->pool.min_idle);
		sv_pool_expire(w, p, &now, c->pool.idle_timeout_secs, c->pool.server_lifetime_secs,
		               min_idle);
		while (!__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE) &&
		       pool_want_warm(p, min_idle, pool_max(p))) {
			if (sv_connect(w, p, NULL, pool_node(p)) < 0) {
				pool_drop(p, pool_max(p));
				break;
			}
		}
	}
	snap_unref(sn);
}

/* ------------------------------------------------------------ hooks */

int conn_worker_init(struct worker *w, int idx, char *err, size_t errlen)
{
	struct conn_worker *cw = calloc(1, sizeof(*cw));
	if (!cw) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cw->w = w;
	cw->last_primary = -1;
	cw->listen_fd = cw->unix_fd = -1;
	cw->hold_msg.fn = hold_run;
	cw->listen_msg.fn = listen_run;
	cw->pipes_msg.fn = cl_pipes_run;
	slab_init(&cw->client_slab, sizeof(struct client));
	w->cw = cw;
	struct snap *sn = snap_current();
	const struct cfg *c = sn->cfg;
	/* online restart: the old process's sockets, their backlogs included */
	int r = tko_take_listen_fd(idx);
	if (r < 0)
		r = listen_tcp(c->listen_address, err, errlen);
	if (r >= 0) {
		cw->listen_fd = r;
		if (idx == 0 && c->unix_socket_dir[0]) {
			r = tko_take_listen_fd(-1);
			if (r < 0)
				r = listen_unix(c->unix_socket_dir, c->listen_address, err, errlen);
			if (r >= 0)
				cw->unix_fd = r;
		}
	}
	snap_unref(sn);
	return r < 0 ? r : 0;
}

int conn_worker_start(struct worker *w)
{
	struct conn_worker *cw = cw_of(w);
	io_sock_init(&cw->listen_sock, cw->listen_fd, &listen_ops, w);
	io_sock_attach(w->loop, &cw->listen_sock);
	int err = io_listen_start(&cw->listen_sock);
	if (!err && cw->unix_fd >= 0) {
		io_sock_init(&cw->unix_sock, cw->unix_fd, &listen_ops, w);
		io_sock_attach(w->loop, &cw->unix_sock);
		err = io_listen_start(&cw->unix_sock);
	}
	cw->listening = true;
	if (!err)
		err = worker_every(w, 0, turn, NULL);
	if (!err)
		err = worker_every(w, 0, cancel_turn, NULL);
	if (!err)
		err = worker_every(w, 1000, client_timeouts, NULL);
	if (!err && w->idx == 0)
		err = worker_every(w, 1000, maintain_pools, NULL);
	return err;
}

void conn_worker_stop(struct worker *w)
{
	struct conn_worker *cw = cw_of(w);
	conn_now(&cw->drain_start);
	if (!cw->listening)
		return;
	cw->listening = false;
	if (__atomic_load_n(&g_tko_handing, __ATOMIC_ACQUIRE) || tko_adopting()) {
		/* the new process listens on them now, or (a takeover of ours
		 * that failed at start) the old one still does */
		cw->listen_sock.flags |= IO_F_SHARED;
		cw->unix_sock.flags |= IO_F_SHARED;
	}
	io_sock_close(&cw->listen_sock);
	if (cw->unix_fd >= 0)
		io_sock_close(&cw->unix_sock);
	/* Idle pooled servers are not needed any more (online restart: the
	 * new process pools them) */
	bool hand = __atomic_load_n(&g_tko_handing, __ATOMIC_ACQUIRE);
	if (w->idx == 0)
		for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
			if (hand)
				sv_pool_hand_idle(w, p);
			else
				sv_pool_close_idle(w, p);
		}
}

/* SHUTDOWN on the admin console (conn_set_shutdown): how the drain ends. */
static int shutdown_mode; /* atomic: enum conn_shutdown */

void conn_set_shutdown(enum conn_shutdown mode)
{
	__atomic_store_n(&shutdown_mode, (int)mode, __ATOMIC_RELEASE);
}

/* During a drain: admin console sessions do not hold it (PgBouncer's
 * shutdown waits for pool clients only; a monitoring session would hold
 * it forever), so they are closed once no pool client is left. With
 * WAIT_FOR_SERVERS a client holding no server is closed (it would only
 * wait for one), and SHUTDOWN closes everyone. */
static void drain_close(struct client *cl, int mode, bool pool_clients_left)
{
	if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
		return; /* flushing its last bytes */
	if (cl->admin ? !pool_clients_left || mode == CONN_SHUTDOWN_NOW
	              : mode == CONN_SHUTDOWN_NOW || (mode == CONN_SHUTDOWN_WAIT_FOR_SERVERS &&
	                                              !cl->server && !cl->connecting))
		cl_close(cl, "57P01", "terminating connection due to proxy shutdown");
}

bool conn_worker_done(struct worker *w)
{
	struct conn_worker *cw = cw_of(w);
	/* online restart: idle clients go to the new process, the others
	 * finish their transaction here first */
	if (__atomic_load_n(&g_tko_handing, __ATOMIC_ACQUIRE)) {
		cl_move_idle(w);
		/* servers released since (transactions that finished here) go
		 * to the new process's pool too, warm, instead of closing */
		if (w->idx == 0)
			for (struct pool *p = pool_first(); p; p = pool_next_of(p))
				sv_pool_hand_idle(w, p);
	}
	if (cw->n_clients == 0 && !cw->sv[SVL_LOGIN] && !cw->sv[SVL_HANDOVER] &&
	    !ireq_worker_busy())
		return true;
	int mode = __atomic_load_n(&shutdown_mode, __ATOMIC_ACQUIRE);
	/* over every worker: an admin session waits for all pool clients */
	bool pool_clients = __atomic_load_n(&g_client_count, __ATOMIC_RELAXED) >
	                    __atomic_load_n(&g_admin_sessions, __ATOMIC_RELAXED);
	for (struct client *cl = cw->clients, *next; cl; cl = next) {
		next = cl->all_next;
		drain_close(cl, mode, pool_clients);
	}
	struct timespec now;
	conn_now(&now);
	struct snap *sn = snap_current();
	int grace = sn ? sn->cfg->shutdown_timeout_secs : 30;
	snap_unref(sn);
	if (conn_elapsed(&cw->drain_start, &now) <= grace)
		return false;
	for (struct client *cl = cw->clients; cl; cl = cl->all_next)
		if (cl->state != CL_CLOSING && cl->state != CL_CLOSED)
			cl_close(cl, "57P01", "terminating connection due to proxy shutdown");
	ireq_worker_abort();
	return conn_elapsed(&cw->drain_start, &now) > grace + CLOSE_LINGER_SECS + 1;
}

void conn_worker_exit(struct worker *w)
{
	(void)w;
	tx_worker_exit();
}
