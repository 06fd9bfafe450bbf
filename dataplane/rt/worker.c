/*
 * Worker thread body: the event loop, accept, the mailbox for pool
 * hand-offs, and a 100 ms tick for timeouts (queue waits, connects,
 * lingering closes) plus, on worker 0, pool maintenance once a second.
 */
#include "dataplane/pipeline/route.h"
#include "dataplane/rt/worker.h"

#include "dataplane/auth/authwork.h"

#include "common/log.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/splice.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/report/stats.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TICK_MS           100
#define CLOSE_LINGER_SECS 5.0

struct worker *g_workers;
int g_n_workers;
int g_workers_planned;
int g_stopping;
int g_client_count;

static __thread struct worker *self;

struct worker *worker_self(void)
{
	return self;
}

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
	if (__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE)) {
		close(fd);
		return;
	}
	cl_accept(w, fd, s == &w->unix_sock);
}

static void on_listener_closed(struct io_sock *s)
{
	(void)s;
}

static const struct io_sock_ops listen_ops = {
    .on_accept = on_accept,
    .on_closed = on_listener_closed,
};

void worker_post(struct worker *w, struct client *cl)
{
	pthread_mutex_lock(&w->mail_mu);
	cl->mail_next = NULL;
	if (w->mail_tail)
		w->mail_tail->mail_next = cl;
	else
		w->mail_head = cl;
	w->mail_tail = cl;
	pthread_mutex_unlock(&w->mail_mu);
	io_loop_wakeup(w->loop);
}

struct notify_msg {
	struct notify_msg *next;
	uint64_t cl_id;
	uint32_t len;
	bool admin;    /* an admin-console answer, not a notification */
	uint8_t msg[]; /* a whole NotificationResponse */
};

struct collect_ref {
	struct collect_ref *next;
	struct collect_job *job;
};

static void post_msg(struct worker *w, struct notify_msg *m)
{
	pthread_mutex_lock(&w->mail_mu);
	if (w->notify_tail)
		w->notify_tail->next = m;
	else
		w->notify_head = m;
	w->notify_tail = m;
	pthread_mutex_unlock(&w->mail_mu);
	io_loop_wakeup(w->loop);
}

void worker_post_admin_reply(struct worker *w, uint64_t cl_id, const uint8_t *msg, uint32_t len)
{
	struct notify_msg *m = malloc(sizeof(*m) + len);
	if (!m)
		return;
	m->next = NULL;
	m->cl_id = cl_id;
	m->len = len;
	m->admin = true;
	memcpy(m->msg, msg, len);
	post_msg(w, m);
}

int worker_post_collect(struct worker *w, struct collect_job *job)
{
	struct collect_ref *r = malloc(sizeof(*r));
	if (!r)
		return -1;
	r->job = job;
	pthread_mutex_lock(&w->mail_mu);
	if (w->exited) {
		pthread_mutex_unlock(&w->mail_mu);
		free(r);
		return -1;
	}
	r->next = w->collect;
	w->collect = r;
	pthread_mutex_unlock(&w->mail_mu);
	io_loop_wakeup(w->loop);
	return 0;
}

void worker_post_auth(struct worker *w, struct aw_job *j)
{
	pthread_mutex_lock(&w->mail_mu);
	if (w->exited) {
		pthread_mutex_unlock(&w->mail_mu);
		aw_job_free(j);
		return;
	}
	j->next = w->auth_done;
	w->auth_done = j;
	pthread_mutex_unlock(&w->mail_mu);
	io_loop_wakeup(w->loop);
}

void worker_post_notify(struct worker *w, uint64_t cl_id, const uint8_t *body, uint32_t len)
{
	struct notify_msg *m = malloc(sizeof(*m) + len + 5);
	if (!m)
		return;
	m->next = NULL;
	m->cl_id = cl_id;
	m->admin = false;
	m->len = len + 5;
	m->msg[0] = 'A';
	m->msg[1] = (uint8_t)((len + 4) >> 24);
	m->msg[2] = (uint8_t)((len + 4) >> 16);
	m->msg[3] = (uint8_t)((len + 4) >> 8);
	m->msg[4] = (uint8_t)(len + 4);
	memcpy(m->msg + 5, body, len);
	post_msg(w, m);
}

static void deliver_notifies(struct worker *w, struct notify_msg *m)
{
	while (m) {
		struct notify_msg *next = m->next;
		/* the client may have left since: find it by id */
		for (struct client *cl = w->clients; cl; cl = cl->all_next) {
			if (cl->id == m->cl_id) {
				if (m->admin)
					cl_admin_reply(cl, m->msg, m->len);
				else
					cl_deliver_notify(cl, m->msg, m->len);
				break;
			}
		}
		free(m);
		m = next;
	}
}

static void on_wake(void *ud)
{
	struct worker *w = ud;
	pthread_mutex_lock(&w->mail_mu);
	struct client *cl = w->mail_head;
	w->mail_head = w->mail_tail = NULL;
	struct notify_msg *nm = w->notify_head;
	w->notify_head = w->notify_tail = NULL;
	struct collect_ref *jobs = w->collect;
	w->collect = NULL;
	struct aw_job *auth = w->auth_done;
	w->auth_done = NULL;
	pthread_mutex_unlock(&w->mail_mu);
	deliver_notifies(w, nm);
	while (auth) {
		struct aw_job *next = auth->next;
		cl_auth_work_done(auth);
		auth = next;
	}
	while (jobs) {
		struct collect_ref *next = jobs->next;
		stats_collect_run(w, jobs->job);
		free(jobs);
		jobs = next;
	}
	if (__atomic_exchange_n(&w->hold_check, false, __ATOMIC_ACQ_REL)) {
		for (struct client *c = w->held, *next; c; c = next) {
			next = c->wlist_next;
			cl_hold_check(c);
		}
	}
	if (__atomic_exchange_n(&w->listen_check, false, __ATOMIC_ACQ_REL)) {
		for (struct client *c = w->clients, *next; c; c = next) {
			next = c->all_next;
			if (c->listen_wait)
				cl_listen_check(c);
		}
	}
	if (__atomic_exchange_n(&w->cache_check, false, __ATOMIC_ACQ_REL))
		tx_token_wake(w);
	cancel_worker_wake(w); /* servers held while a cancel was in flight */
	while (cl) {
		struct client *next = cl->mail_next;
		cl->mail_next = NULL;
		cl_handoff_arrived(cl);
		cl = next;
	}
}

void workers_stop(void)
{
	__atomic_store_n(&g_stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0, n = workers_started(); i < n; i++)
		io_loop_wakeup(g_workers[i].loop);
}

void worker_add_client(struct worker *w, struct client *cl)
{
	cl->all_prev = NULL;
	cl->all_next = w->clients;
	if (w->clients)
		w->clients->all_prev = cl;
	w->clients = cl;
	w->n_clients++;
}

void worker_remove_client(struct worker *w, struct client *cl)
{
	if (cl->all_prev)
		cl->all_prev->all_next = cl->all_next;
	else
		w->clients = cl->all_next;
	if (cl->all_next)
		cl->all_next->all_prev = cl->all_prev;
	cl->all_next = cl->all_prev = NULL;
	w->n_clients--;
}

void worker_wait_add(struct worker *w, struct client *cl)
{
	cl->wlist_next = NULL;
	cl->wlist_prev = w->waiting_tail;
	if (w->waiting_tail)
		w->waiting_tail->wlist_next = cl;
	else
		w->waiting_head = cl;
	w->waiting_tail = cl;
	cl->in_wait_list = true;
}

void worker_wait_remove(struct worker *w, struct client *cl)
{
	if (!cl->in_wait_list)
		return;
	if (cl->wlist_prev)
		cl->wlist_prev->wlist_next = cl->wlist_next;
	else
		w->waiting_head = cl->wlist_next;
	if (cl->wlist_next)
		cl->wlist_next->wlist_prev = cl->wlist_prev;
	else
		w->waiting_tail = cl->wlist_prev;
	cl->wlist_next = cl->wlist_prev = NULL;
	cl->in_wait_list = false;
}

void worker_login_add(struct worker *w, struct server *sv)
{
	sv->login_prev = NULL;
	sv->login_next = w->logins;
	if (w->logins)
		w->logins->login_prev = sv;
	w->logins = sv;
	sv->in_login_list = true;
}

void worker_login_remove(struct worker *w, struct server *sv)
{
	if (!sv->in_login_list)
		return;
	if (sv->login_prev)
		sv->login_prev->login_next = sv->login_next;
	else
		w->logins = sv->login_next;
	if (sv->login_next)
		sv->login_next->login_prev = sv->login_prev;
	sv->login_next = sv->login_prev = NULL;
	sv->in_login_list = false;
}

/* Once a second on worker 0: expire idle servers, keep min_idle warm. */
static void maintain_pools(struct worker *w, const struct timespec *now)
{
	struct snap *sn = snap_current();
	if (!sn)
		return;
	const struct cfg *c = sn->cfg;
	/* after a failover the old primary's idle connections go (a node that
	 * was demoted while alive must not keep sessions opened as primary) */
	int prim = route_primary(c);
	int old_prim = w->last_primary;
	w->last_primary = prim;
	bool failed_over = old_prim >= 0 && prim >= 0 && prim != old_prim;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
		int ni = pool_node(p);
		if ((failed_over && ni == old_prim) ||
		    (ctl_any_drained() && ni >= 0 && (size_t)ni < c->n_nodes &&
		     ctl_node_drained(c->nodes[ni].name))) {
			/* drained: idle connections go now, busy ones when released */
			struct server *idle = pool_take_all_idle(p);
			while (idle) {
				struct server *next = idle->pool_next;
				idle->counted = false;
				sv_attach(idle, w);
				sv_close(idle);
				idle = next;
			}
			continue;
		}
		struct server *dead =
		    pool_collect_expired(p, now, c->pool.idle_timeout_secs,
		                         c->pool.server_lifetime_secs, c->pool.min_idle);
		while (dead) {
			struct server *next = dead->pool_next;
			dead->counted = false; /* already uncounted by the pool */
			sv_attach(dead, w);
			sv_close(dead);
			dead = next;
		}
		while (!__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE) &&
		       pool_want_warm(p, c->pool.min_idle, c->pool.max_pool_size)) {
			if (sv_connect(w, p, NULL, pool_node(p)) < 0) {
				pool_drop(p, c->pool.max_pool_size);
				break;
			}
		}
	}
	snap_unref(sn);
}

/* One line an operator can grep: pools, clients and pins by reason. */
static void log_stats(void)
{
	char line[1024];
	size_t n = 0;
	int clients = __atomic_load_n(&g_client_count, __ATOMIC_RELAXED);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "stats: clients=%d", clients);
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
	for (int r = 0; r < PIN_COUNT && n < sizeof(line) - 40; r++)
		n += (size_t)snprintf(
		    line + n, sizeof(line) - n, " %s=%llu", pin_reason_str((enum pin_reason)r),
		    (unsigned long long)__atomic_load_n(&g_pin_count[r], __ATOMIC_RELAXED));
	log_info("%s", line);
}

static void tick(struct worker *w)
{
	struct timespec now;
	conn_now(&now);
	cl_wait_timeout_check(w, &now);
	cl_login_timeout_check(w, &now);
	tx_token_tick(w, conn_ts_ns(&now));
	ireq_worker_tick(conn_ts_ns(&now));
	splice_tick(w, &now);
	cancel_worker_tick(w, &now);
	tx_rate_wake(w, conn_ts_ns(&now));
	route_refresh();
	/* clients waiting for a primary: failover_timeout_secs at most */
	for (struct client *cl = w->held, *next; cl; cl = next) {
		next = cl->wlist_next;
		if (cl->held_for_primary && conn_elapsed(&cl->wait_start, &now) >=
		                                cl->snap->cfg->routing.failover_timeout_secs)
			cl_hold_expired(cl);
		else if (!cl->held_for_primary)
			cl_hold_wait_check(cl, &now); /* a drained node: query_wait_timeout */
	}
	/* servers that take too long to connect or log in */
	struct snap *sn = snap_current();
	int connect_timeout = sn ? sn->cfg->pool.server_connect_timeout_secs : 5;
	snap_unref(sn);
	for (struct server *sv = w->logins, *next; sv; sv = next) {
		next = sv->login_next;
		if (conn_elapsed(&sv->created, &now) > connect_timeout)
			sv_login_timeout(sv, connect_timeout);
	}
	for (struct client *cl = w->clients, *next; cl; cl = next) {
		next = cl->all_next;
		if (cl->state == CL_CLOSING &&
		    conn_elapsed(&cl->close_start, &now) > CLOSE_LINGER_SECS)
			io_sock_close(&cl->ep.sock);
	}
	listen_worker_tick(w);
	if (w->idx == 0 && conn_elapsed(&w->last_maint, &now) >= 1.0) {
		w->last_maint = now;
		maintain_pools(w, &now);
		struct snap *ps = snap_current();
		if (ps) {
			aw_prewarm(ps->cfg, ps->generation);
			snap_unref(ps);
		}
		struct snap *st = snap_current();
		int period = st ? st->cfg->stats_period_secs : 0;
		snap_unref(st);
		if (period > 0 && conn_elapsed(&w->last_stats, &now) >= period) {
			w->last_stats = now;
			log_stats();
		}
	}
}

static void begin_drain(struct worker *w)
{
	if (!w->listening)
		return;
	w->listening = false;
	io_sock_close(&w->listen_sock);
	if (w->unix_fd >= 0)
		io_sock_close(&w->unix_sock);
	/* Idle pooled servers are not needed any more. */
	if (w->idx == 0) {
		for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
			struct server *sv = pool_take_all_idle(p);
			while (sv) {
				struct server *next = sv->pool_next;
				sv->counted = false;
				sv_attach(sv, w);
				sv_close(sv);
				sv = next;
			}
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	self = w;
	int err = 0;
	w->loop = io_loop_new(w->backend, &err);
	if (!w->loop && w->backend == IO_BACKEND_URING) {
		log_warn("worker %d: io_uring unavailable (%s): using epoll", w->idx,
		         strerror(-err));
		w->backend = IO_BACKEND_EPOLL;
		w->loop = io_loop_new(w->backend, &err);
	}
	if (w->loop) {
		io_loop_set_wake(w->loop, on_wake, w);
		io_sock_init(&w->listen_sock, w->listen_fd, &listen_ops, w);
		io_sock_attach(w->loop, &w->listen_sock);
		err = io_listen_start(&w->listen_sock);
		if (!err && w->unix_fd >= 0) {
			io_sock_init(&w->unix_sock, w->unix_fd, &listen_ops, w);
			io_sock_attach(w->loop, &w->unix_sock);
			err = io_listen_start(&w->unix_sock);
		}
		w->listening = true;
	} else {
		err = err ? err : -ENOMEM;
	}
	conn_now(&w->last_maint);
	w->last_stats = w->last_maint;
	__atomic_store_n(&w->init_result, err, __ATOMIC_RELEASE);
	__atomic_store_n(&w->init_done, true, __ATOMIC_RELEASE);
	if (err)
		return NULL;

	struct timespec drain_start = {0};
	for (;;) {
		int timeout = TICK_MS;
		if (w->rate_waiters) {
			/* throttled clients wake when their token is due, not at the tick */
			uint64_t now = conn_now_ns();
			uint64_t ms =
			    w->rate_next_ns > now ? (w->rate_next_ns - now + 999999) / 1000000 : 0;
			timeout = ms < (uint64_t)TICK_MS ? (int)ms : TICK_MS;
		}
		io_loop_run_once(w->loop, timeout);
		tick(w);
		if (__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE)) {
			if (w->listening) {
				begin_drain(w);
				conn_now(&drain_start);
			}
			struct timespec now;
			conn_now(&now);
			struct snap *sn = snap_current();
			int grace = sn ? sn->cfg->shutdown_timeout_secs : 30;
			snap_unref(sn);
			if (w->n_clients == 0 && !w->logins)
				break;
			if (conn_elapsed(&drain_start, &now) > grace) {
				for (struct client *cl = w->clients; cl; cl = cl->all_next)
					if (cl->state != CL_CLOSING && cl->state != CL_CLOSED)
						cl_close(
						    cl, "57P01",
						    "terminating connection due to proxy shutdown");
				if (conn_elapsed(&drain_start, &now) >
				    grace + CLOSE_LINGER_SECS + 1)
					break;
			}
		}
	}
	/* let the last closes complete */
	for (int i = 0; i < 10; i++)
		io_loop_run_once(w->loop, 10);
	/* a report asked for meanwhile still gets its answer (no clients) */
	pthread_mutex_lock(&w->mail_mu);
	w->exited = true;
	struct collect_ref *jobs = w->collect;
	w->collect = NULL;
	struct aw_job *auth = w->auth_done;
	w->auth_done = NULL;
	pthread_mutex_unlock(&w->mail_mu);
	while (auth) {
		struct aw_job *next = auth->next;
		aw_job_free(auth); /* its client is gone with the loop */
		auth = next;
	}
	while (jobs) {
		struct collect_ref *next = jobs->next;
		stats_collect_run(w, jobs->job);
		free(jobs);
		jobs = next;
	}
	tx_worker_exit();
	route_worker_exit();
	return NULL;
}

int worker_start(struct worker *w, int idx, enum io_backend backend, char *err, size_t errlen)
{
	struct snap *sn = snap_current();
	const struct cfg *c = sn->cfg;
	w->idx = idx;
	w->backend = backend;
	w->unix_fd = -1;
	pthread_mutex_init(&w->mail_mu, NULL);
	slab_init(&w->client_slab, sizeof(struct client));
	int r = -ENOMEM;
	w->last_primary = -1;
	r = listen_tcp(c->listen_address, err, errlen);
	if (r < 0)
		goto out;
	w->listen_fd = r;
	if (idx == 0 && c->unix_socket_dir[0]) {
		r = listen_unix(c->unix_socket_dir, c->listen_address, err, errlen);
		if (r < 0)
			goto out;
		w->unix_fd = r;
	}
	/* libpg_query and protobuf-c recurse per parse-tree level; the
	 * classifier bounds the depth so that 3 MB suffice: keep a margin */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 8u << 20);
	r = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (r) {
		snprintf(err, errlen, "cannot start worker thread: %s", strerror(r));
		r = -r;
		goto out;
	}
	while (!__atomic_load_n(&w->init_done, __ATOMIC_ACQUIRE))
		usleep(1000);
	r = __atomic_load_n(&w->init_result, __ATOMIC_ACQUIRE);
	if (r < 0) {
		snprintf(err, errlen, "worker %d: event loop setup failed: %s", idx, strerror(-r));
		pthread_join(w->thread, NULL);
	}
out:
	snap_unref(sn);
	return r < 0 ? r : 0;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}
