/*
 * Server connections: connect, optional TLS, relay to the bound client,
 * reset on release, and park in the pool with no I/O in flight so any
 * worker can adopt it (as the pool's item, sv->pitem: the pool reads
 * nothing else of a server). Logging in and auth_query lookups are in
 * server_login.c.
 */
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/server_internal.h"
#include "dataplane/conn/splice.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/auth/md5auth.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/policy/control.h"
#include "dataplane/tls/tls.h"
#include "dataplane/rt/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const sv_state_names[] = {"connecting", "tls-request", "tls",
                                             "login",      "active",      "resetting",
                                             "idle",       "closing",     "auth-query"};

const char *sv_state_str(enum sv_state s)
{
	return (unsigned)s < sizeof(sv_state_names) / sizeof(sv_state_names[0]) ? sv_state_names[s]
	                                                                        : "?";
}

static bool logging_in(enum sv_state s)
{
	return s == SV_CONNECTING || s == SV_TLS_REQUEST || s == SV_TLS || s == SV_LOGIN;
}

static enum sv_list list_of(enum sv_state s)
{
	switch (s) {
	case SV_CONNECTING:
	case SV_TLS_REQUEST:
	case SV_TLS:
	case SV_LOGIN:
		return SVL_LOGIN;
	case SV_ACTIVE:
	case SV_RESETTING:
	case SV_AUTH_QUERY:
	case SV_LISTENER:
		return SVL_ACTIVE;
	default:
		return SVL_NONE; /* idle: its pool's list; closing */
	}
}

/* sv off its worker's list (sv->wlist), or onto the head of list l. */
static void wl_unlink(struct server *sv)
{
	struct server **head = &cw_of(sv->w)->sv[sv->wlist];
	if (sv->wl_prev)
		sv->wl_prev->wl_next = sv->wl_next;
	else
		*head = sv->wl_next;
	if (sv->wl_next)
		sv->wl_next->wl_prev = sv->wl_prev;
	sv->wl_next = sv->wl_prev = NULL;
	sv->wlist = SVL_NONE;
}

static void wl_push(struct server *sv, enum sv_list l)
{
	struct server **head = &cw_of(sv->w)->sv[l];
	sv->wl_prev = NULL;
	sv->wl_next = *head;
	if (*head)
		(*head)->wl_prev = sv;
	*head = sv;
	sv->wlist = l;
}

bool sv_set_state(struct server *sv, enum sv_state to)
{
	enum sv_state from = sv->state;
	/* a closing server never comes back; one that logged in never logs in
	 * again; SV_CONNECTING is only where a new one starts */
	if ((from == SV_CLOSING && to != SV_CLOSING) || (logging_in(to) && !logging_in(from)) ||
	    (to == SV_CONNECTING && sv->wlist != SVL_NONE)) {
		log_error("server %llu: illegal state change %s -> %s", (unsigned long long)sv->id,
		          sv_state_str(from), sv_state_str(to));
		return false;
	}
	enum sv_list l = sv->w ? list_of(to) : SVL_NONE;
	if (l != sv->wlist) {
		/* the worker it is listed on: sv->w changes only while idle */
		if (sv->wlist != SVL_NONE)
			wl_unlink(sv);
		if (l != SVL_NONE)
			wl_push(sv, l);
	}
	sv->state = to;
	return true;
}

static uint64_t id_counter;

uint64_t conn_next_id(void)
{
	return __atomic_add_fetch(&id_counter, 1, __ATOMIC_RELAXED);
}

void conn_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

uint64_t conn_ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

uint64_t conn_now_ns(void)
{
	struct timespec ts;
	conn_now(&ts);
	return conn_ts_ns(&ts);
}

double conn_elapsed(const struct timespec *since, const struct timespec *now)
{
	return (double)(now->tv_sec - since->tv_sec) + (now->tv_nsec - since->tv_nsec) / 1e9;
}

int conn_node_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len);

int conn_node_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len)
{
	memset(sa, 0, sizeof(*sa));
	if (host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)sa;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", host, port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		*len = sizeof(*un);
		return 0;
	}
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	/* Numeric addresses resolve without blocking; names may block the
	 * worker briefly (documented: prefer addresses in [[nodes]]). */
	if (getaddrinfo(host, portstr, &hints, &ai) != 0)
		return -EHOSTUNREACH;
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void sv_on_recv(struct io_sock *s, struct io_chunk *c);
static void sv_on_eof(struct io_sock *s, int err);
static void sv_on_sent(struct io_sock *s, int err);
static void sv_on_connect(struct io_sock *s, int err);
static void sv_on_recv_stopped(struct io_sock *s);
static void sv_on_closed(struct io_sock *s);

static const struct io_sock_ops sv_ops = {
    .on_recv = sv_on_recv,
    .on_eof = sv_on_eof,
    .on_sent = sv_on_sent,
    .on_connect = sv_on_connect,
    .on_recv_stopped = sv_on_recv_stopped,
    .on_closed = sv_on_closed,
};

/* Connection failures and crashes count towards the node's breaker; SQL
 * errors do not. */
void sv_node_failure(struct server *sv, const char *why)
{
	struct snap *sn = snap_current();
	if (sn)
		breaker_failure(sn->cfg, sv->node_idx, why);
	snap_unref(sn);
}

void sv_node_success(struct server *sv)
{
	if (!breaker_needs_success(sv->node_idx))
		return; /* the common case: nothing counted, breaker closed */
	struct snap *sn = snap_current();
	breaker_success(sn ? sn->cfg : NULL, sv->node_idx);
	snap_unref(sn);
}

void sv_node_ok(struct server *sv)
{
	sv_node_success(sv);
}

bool sv_note_error(struct server *sv, const uint8_t *body, uint32_t len)
{
	/* 'V' is the untranslated severity (9.6+); 'S' may be localised */
	const char *sev = pgw_error_field(body, len, 'V');
	if (!sev)
		sev = pgw_error_field(body, len, 'S');
	if (!sev || (strcmp(sev, "FATAL") && strcmp(sev, "PANIC")))
		return false;
	const char *code = pgw_error_field(body, len, 'C');
	snprintf(sv->fatal_code, sizeof(sv->fatal_code), "%s", code ? code : "XX000");
	return true;
}

void sv_fatal_event(struct server *sv, const uint8_t *body, uint32_t len)
{
	/* no ReadyForQuery follows a FATAL: published as it passes */
	const char *m = pgw_error_field(body, len, 'M');
	tx_ev_error(sv->client, sv->fatal_code, m ? m : "");
}

void sv_login_timeout(struct server *sv, int secs)
{
	char msg[320];
	snprintf(msg, sizeof(msg), "server %s:%d: connect/login timed out after %d s",
	         sv->node_host, sv->node_port, secs);
	log_warn("%s", msg);
	sv_node_failure(sv, msg);
	if (sv->client)
		cl_server_failed(sv->client, NULL, 0, "08006",
		                 "timed out connecting to the database server");
	sv_close(sv);
}

/* Builds the startup packet: the pool's user and database, then every
 * parameter the client sent, so the server applies them natively. */
static int build_startup(struct server *sv, const struct pgw_param *extra, int n_extra)
{
	struct pgw_param params[PGW_MAX_PARAMS + 2];
	int n = 0;
	params[n++] = (struct pgw_param){"user", sv->user};
	params[n++] = (struct pgw_param){"database", sv->database};
	for (int i = 0; i < n_extra; i++)
		params[n++] = extra[i];
	size_t cap = 16;
	for (int i = 0; i < n; i++)
		cap += strlen(params[i].name) + strlen(params[i].value) + 2;
	sv->startup_pkt = malloc(cap);
	if (!sv->startup_pkt)
		return -ENOMEM;
	struct pgw_out o;
	pgw_out_init(&o, (uint8_t *)sv->startup_pkt, cap);
	pgw_startup_packet(&o, params, n);
	if (o.overflow)
		return -EMSGSIZE;
	sv->startup_len = (uint32_t)o.len;
	return 0;
}

/* Opens the socket and starts connecting; sv has its identity filled in. */
static int start_connect(struct worker *w, struct server *sv)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int r = conn_node_addr(sv->node_host, sv->node_port, &sa, &salen);
	if (r < 0)
		return r;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sa.ss_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	io_sock_init(&sv->ep.sock, fd, &sv_ops, sv);
	sv->w = w;
	io_sock_attach(w->loop, &sv->ep.sock);
	sv_set_state(sv, SV_CONNECTING);
	io_connect(&sv->ep.sock, (struct sockaddr *)&sa, salen);
	return 0;
}

static struct server *sv_alloc(const struct cfg *c, int node_idx)
{
	if (node_idx < 0 || (size_t)node_idx >= c->n_nodes)
		return NULL;
	struct server *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return NULL;
	sv->id = conn_next_id();
	sv->node_idx = node_idx;
	snprintf(sv->node_host, sizeof(sv->node_host), "%s", c->nodes[node_idx].host);
	sv->node_port = c->nodes[node_idx].port;
	ep_init(&sv->ep);
	sv->ep.sock.fd = -1;
	conn_now(&sv->created);
	sv->last_used = sv->created;
	return sv;
}

static void set_user_credentials(struct server *sv, const struct cfg *c)
{
	const struct cfg_user *u = cfg_find_user(c, sv->user);
	if (u) {
		snprintf(sv->password, sizeof(sv->password), "%s", u->password);
		snprintf(sv->server_password, sizeof(sv->server_password), "%s",
		         u->server_password);
	}
}

/* The forced user of [[databases]] entry db: the entry's password, else
 * that user's from [[auth.users]] / users_file. */
static void forced_user_credentials(struct server *sv, const struct cfg *c,
                                    const struct cfg_database *db)
{
	sv->password[0] = sv->server_password[0] = '\0';
	sv->have_client_key = false;
	if (db->password[0])
		snprintf(sv->password, sizeof(sv->password), "%s", db->password);
	else
		set_user_credentials(sv, c);
}

/* The client's user, database and credentials (password or the SCRAM key
 * it proved), for a server that logs in on its behalf. */
static void take_client_identity(struct server *sv, const struct client *cl)
{
	snprintf(sv->user, sizeof(sv->user), "%s", cl->sv_user);
	snprintf(sv->database, sizeof(sv->database), "%s", cl->sv_database);
	if (cl->db && cl->db->user[0]) {
		/* a [[databases]] entry's forced user: its password, never the
		 * client's own credentials */
		forced_user_credentials(sv, cl->snap->cfg, cl->db);
		return;
	}
	snprintf(sv->password, sizeof(sv->password), "%s", cl->password ? cl->password : "");
	snprintf(sv->server_password, sizeof(sv->server_password), "%s",
	         cl->server_password ? cl->server_password : "");
	sv->have_client_key = cl->have_client_key;
	memcpy(sv->client_key, cl->client_key, sizeof(sv->client_key));
}

/* Connects a server with only user and database in its startup packet;
 * on failure sv is freed and -errno returned. */
static int start_neutral(struct worker *w, struct server *sv)
{
	int r = build_startup(sv, NULL, 0);
	if (r == 0)
		r = start_connect(w, sv);
	if (r < 0) {
		free(sv->startup_pkt);
		free(sv);
	}
	return r;
}

int sv_connect(struct worker *w, struct pool *pool, struct client *cl, int node_idx)
{
	struct snap *sn = cl ? cl->snap : snap_current();
	const struct cfg *c = sn->cfg;
	int r = -ENOMEM;
	struct server *sv = sv_alloc(c, node_idx);
	if (!sv)
		goto out;
	sv->pool = pool;
	sv->counted = pool != NULL;
	if (cl) {
		take_client_identity(sv, cl);
		sv->signature = cl->signature;
		/* transaction pooling: a neutral server, settings applied per client */
		r = cl->txn ? build_startup(sv, NULL, 0)
		            : build_startup(sv, cl->params, cl->n_params);
		if (r < 0)
			goto out;
	} else {
		/* warming the pool: the last startup packet it saw (which names
		 * the entry's real database and user) */
		bool none;
		const struct cfg_database *db = cfg_database_find(c, pool_database(pool), &none);
		snprintf(sv->user, sizeof(sv->user), "%s", pool_user(pool));
		snprintf(sv->database, sizeof(sv->database), "%s",
		         db && db->dbname[0] ? db->dbname : pool_database(pool));
		if (db && db->user[0] && !strcmp(db->user, sv->user))
			forced_user_credentials(sv, c, db);
		else
			set_user_credentials(sv, c);
		sv->startup_pkt = pool_warm_startup(pool, &sv->startup_len, &sv->signature);
		if (!sv->startup_pkt) {
			r = -ENOENT;
			goto out;
		}
	}
	sv->client = cl;
	r = start_connect(w, sv);
	if (r < 0) {
		sv->client = NULL;
		goto out;
	}
	if (cl)
		cl->connecting = sv;
	sv = NULL;
out:
	if (sv) {
		free(sv->startup_pkt);
		free(sv);
	}
	if (!cl)
		snap_unref(sn);
	return r;
}

struct server *sv_adopt(struct worker *w, struct pool *pool, int node_idx, int fd,
                        struct client *cl, const struct cl_moved *m)
{
	struct server *sv = sv_alloc(cl->snap->cfg, node_idx);
	if (!sv) {
		close(fd);
		return NULL;
	}
	/* where it is connected, whatever the new config says of the node */
	snprintf(sv->node_host, sizeof(sv->node_host), "%s", m->sv.host);
	sv->node_port = (int)m->sv.port;
	sv->pool = pool;
	sv->counted = true;
	take_client_identity(sv, cl);
	sv->signature = cl->signature;
	sv->backend_pid = m->sv.backend_pid;
	sv->backend_key = m->sv.backend_key;
	for (uint32_t i = 0; i < m->sv.n_params && i < SV_MAX_PARAMS; i++) {
		sv->param_name[i] = strdup(m->sv.pnames[i]);
		sv->param_value[i] = strdup(m->sv.pvalues[i]);
		sv->n_params = (int)i + 1;
	}
	sv->created.tv_sec -= m->sv.age_secs; /* server_lifetime_secs goes on counting */
	sv->tx_status = 'I';
	sv->clean = true;
	io_sock_init(&sv->ep.sock, fd, &sv_ops, sv);
	sv->w = w;
	io_sock_attach(w->loop, &sv->ep.sock);
	sv->client = cl;
	sv_set_state(sv, SV_ACTIVE);
	return sv;
}

int sv_auth_query(struct worker *w, struct client *cl, int node_idx)
{
	const struct cfg *c = cl->snap->cfg;
	struct server *sv = sv_alloc(c, node_idx);
	if (!sv)
		return -ENOMEM;
	snprintf(sv->user, sizeof(sv->user), "%s",
	         cl->db && cl->db->auth_user[0] ? cl->db->auth_user : c->auth.auth_user);
	snprintf(sv->database, sizeof(sv->database), "%s", cl->sv_database);
	set_user_credentials(sv, c);
	int r = start_neutral(w, sv);
	if (r < 0)
		return r;
	sv->authq_client = cl;
	cl->authq = sv;
	return 0;
}

int sv_connect_listener(struct worker *w, struct client *cl, struct server **out)
{
	const struct cfg *c = cl->snap->cfg;
	struct server *sv = sv_alloc(c, pool_node(cl->pool));
	if (!sv)
		return -ENOMEM;
	take_client_identity(sv, cl);
	sv->is_listener = true; /* outside max_pool_size: one per pool */
	int r = start_neutral(w, sv);
	if (r == 0)
		*out = sv;
	return r;
}

/* The hub connection's traffic: notifications, and the answers to the
 * LISTEN commands the hub sends, which are read and dropped. */
static void process_listener(struct server *sv)
{
	for (;;) {
		struct pgw_msg m;
		enum pgw_status st = pgw_next_msg(sv->ep.in, sv->ep.in_len, CONN_INBUF_MAX - 5, &m);
		if (st == PGW_NEED_MORE)
			return;
		if (st == PGW_BAD) {
			sv_close(sv);
			return;
		}
		if (m.type == 'A')
			listen_notify(sv, m.body, m.len);
		else if (m.type == PGW_MSG_READY)
			listen_listener_acked(sv);
		else if (m.type == PGW_MSG_ERROR) {
			const char *msg = pgw_error_field(m.body, m.len, 'M');
			log_warn("LISTEN hub %s:%d: %s", sv->node_host, sv->node_port,
			         msg ? msg : "?");
		}
		ep_in_consume(&sv->ep, m.total);
	}
}

void sv_auth_query_cancel(struct server *sv)
{
	sv->authq_client = NULL;
	sv_close(sv);
}

static void free_server(struct server *sv, struct io_loop *l)
{
	ep_fini(&sv->ep, l);
	for (int i = 0; i < sv->n_params; i++) {
		free(sv->param_name[i]);
		free(sv->param_value[i]);
	}
	free(sv->scram);
	free(sv->startup_pkt);
	tx_server_reset_state(sv);
	tx_ev_server_free(sv);
	free(sv);
}

void sv_free_detached(struct server *sv)
{
	free_server(sv, NULL);
}

void sv_attach(struct server *sv, struct worker *w)
{
	sv->w = w;
	io_sock_attach(w->loop, &sv->ep.sock);
}

bool sv_alive(struct server *sv)
{
	/* Always checked, however recently it was parked: a backend can be
	 * terminated (pg_terminate_backend, idle_session_timeout) at any time,
	 * and a client handed its leftover FATAL has lost its request. Idle
	 * servers are not watched by a loop (any worker may adopt them), so
	 * the check is here: one non-blocking syscall per hand-out, small
	 * next to the round trip to the server it precedes. */
	uint8_t b;
	ssize_t r = recv(sv->ep.sock.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	/* anything readable on an idle server is a FATAL, a notice or EOF */
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static bool item_alive(struct pool_item *it)
{
	return sv_alive(sv_of_pool_item(it));
}

/* Closes, on worker w, the servers of a list the pool has uncounted. */
static void close_uncounted(struct worker *w, struct pool_item *it)
{
	while (it) {
		struct pool_item *next = it->next;
		struct server *sv = sv_of_pool_item(it);
		sv->counted = false; /* already uncounted by the pool */
		sv_attach(sv, w);
		sv_close(sv);
		it = next;
	}
}

void sv_pool_close_idle(struct worker *w, struct pool *p)
{
	close_uncounted(w, pool_take_all_idle(p));
}

void sv_pool_hand_idle(struct worker *w, struct pool *p)
{
	struct snap *sn = snap_current();
	const struct cfg *c = sn->cfg;
	struct pool_item *it = pool_take_all_idle(p);
	unsigned moved = 0;
	while (it) {
		struct pool_item *next = it->next;
		struct server *sv = sv_of_pool_item(it);
		sv->counted = false; /* already uncounted by the pool */
		if (w)
			sv_attach(sv, w);
		/* what the new process can vouch for: a plain server whose session
		 * state the proxy follows (transaction pooling) or that was reset
		 * (session pooling) */
		bool can = (sv->txn || (sv->clean && sv->tx_status == 'I')) && !sv->ep.tls &&
		           !sv->needs_reset && !sv->sqlprep_n && !pool_tenant(p)[0] &&
		           sv->node_idx >= 0 && (size_t)sv->node_idx < c->n_nodes && sv_alive(sv);
		bool sent = can && tko_queue_server(sv, c->nodes[sv->node_idx].name) == 0;
		moved += sent;
		if (w) {
			if (sent)
				sv->ep.sock.flags |= IO_F_SHARED;
			sv_close(sv);
		} else {
			/* the workers ended: no loop to close it on */
			close(sv->ep.sock.fd);
			sv_free_detached(sv);
		}
		it = next;
	}
	if (moved)
		log_debug("takeover: %u idle server%s of pool %s/%s handed over", moved,
		          moved == 1 ? "" : "s", pool_database(p), pool_user(p));
	snap_unref(sn);
}

void sv_adopt_idle(struct worker *w, int fd, const struct sv_moved *m)
{
	struct snap *sn = snap_current();
	const struct cfg *c = sn->cfg;
	int node = -1;
	for (size_t i = 0; i < c->n_nodes; i++)
		if (!strcmp(c->nodes[i].name, m->node))
			node = (int)i;
	struct pool *pool = node >= 0 ? pool_lookup(m->database, m->user, "", node, 0) : NULL;
	struct server *sv = pool ? sv_alloc(c, node) : NULL;
	if (!sv) {
		close(fd); /* its node is gone from the config, or out of memory */
		snap_unref(sn);
		return;
	}
	snprintf(sv->node_host, sizeof(sv->node_host), "%s", m->host);
	sv->node_port = (int)m->port;
	snprintf(sv->user, sizeof(sv->user), "%s", m->user);
	snprintf(sv->database, sizeof(sv->database), "%s", m->database);
	sv->pool = pool;
	sv->txn = m->txn;
	sv->signature = m->signature;
	sv->backend_pid = m->backend_pid;
	sv->backend_key = m->backend_key;
	/* ids are this process's now: never taken for the last client's */
	sv->last_client = m->served ? UINT64_MAX : 0;
	sv->created.tv_sec -= m->age_secs;
	sv->tx_status = 'I';
	sv->clean = true;
	io_sock_init(&sv->ep.sock, fd, &sv_ops, sv);
	bool ok = true;
	for (uint32_t i = 0; i < m->n_params && i < SV_MAX_PARAMS && ok; i++) {
		sv->param_name[i] = strdup(m->pnames[i]);
		sv->param_value[i] = strdup(m->pvalues[i]);
		sv->n_params = (int)i + 1;
		ok = sv->param_name[i] && sv->param_value[i];
	}
	guc_init(&sv->applied);
	for (uint32_t i = 0; i < m->n_applied && ok; i++)
		ok = guc_put(&sv->applied, m->applied[i].name, m->applied[i].value,
		             m->applied[i].is_stmt) == 0;
	prep_server_init(&sv->prep, (uint32_t)c->pool.max_prepared_statements);
	for (uint32_t i = 0; i < m->n_keys && ok; i++) {
		uint64_t ev;
		ok = !prep_server_add(&sv->prep, m->keys[i], &ev);
	}
	/* every statement prepared there must be known, or a Parse of the
	 * same name would fail on it: else it is not pooled */
	ok = ok && sv->prep.n == m->n_keys;
	sv_set_state(sv, SV_IDLE);
	conn_now(&sv->last_used);
	sv->pitem.signature = sv->signature;
	sv->pitem.created = sv->created;
	sv->pitem.last_used = sv->last_used;
	pool_adopt(pool);
	sv->counted = true;
	if (!ok || !pool_release(pool, &sv->pitem, w)) {
		sv_attach(sv, w);
		sv_close(sv);
	}
	snap_unref(sn);
}

void sv_pool_expire(struct worker *w, struct pool *p, const struct timespec *now, int idle_timeout,
                    int lifetime, int min_idle)
{
	close_uncounted(w,
	                pool_collect_expired(p, now, idle_timeout, lifetime, min_idle, item_alive));
}

#define HANDOVER_MAX_SECS 2

void sv_close_handover(struct server *sv)
{
	static const uint8_t term[5] = {'X', 0, 0, 0, 4};

	/* Terminate through the endpoint: encrypted on a TLS connection (the
	 * test cluster's, and sslmode prefer's, servers are TLS) */
	if (sv->state == SV_CLOSING || !sv->counted || !sv->pool || !sv->w || sv->ep.sock.fd < 0 ||
	    !io_sock_idle(&sv->ep.sock) || !ep_flushed(&sv->ep) ||
	    ep_send_bytes(&sv->ep, term, sizeof(term)) < 0 || io_recv_start(&sv->ep.sock) < 0) {
		sv_close(sv);
		return;
	}
	sv->handover = true;
	conn_now(&sv->last_used); /* the handover's start */
	sv_close(sv);
}

/* The backend is gone (or never answered): the slot goes, and its socket. */
static void handover_end(struct server *sv)
{
	wl_unlink(sv); /* from SVL_HANDOVER */
	sv->handover = false;
	if (sv->counted) {
		sv->counted = false;
		pool_drop(sv->pool, pool_max(sv->pool));
	}
	io_sock_close(&sv->ep.sock);
}

void sv_handover_tick(struct worker *w, const struct timespec *now)
{
	for (struct server *sv = cw_of(w)->sv[SVL_HANDOVER], *next; sv; sv = next) {
		next = sv->wl_next;
		if (conn_elapsed(&sv->last_used, now) > HANDOVER_MAX_SECS)
			handover_end(sv);
	}
}

/* Closes a server; a bound client is told (and closed after its flush). */
void sv_close(struct server *sv)
{
	if (sv->state == SV_CLOSING)
		return;
	if (sv->client && sv->client->server == sv)
		splice_end(sv->client);
	sv_set_state(sv, SV_CLOSING);
	ireq_server_gone(sv);
	cancel_hold_drop(sv);
	if (sv->is_listener)
		listen_listener_gone(sv);
	struct client *aq = sv->authq_client;
	sv->authq_client = NULL;
	if (aq && aq->authq == sv) {
		aq->authq = NULL;
		cl_auth_query_done(aq, NULL, "the auth_query connection was closed");
	}
	struct client *cl = sv->client;
	sv->client = NULL;
	if (cl) {
		if (cl->connecting == sv)
			cl->connecting = NULL;
		if (cl->server == sv)
			cl_server_gone(cl);
	}
	if (sv->handover) {
		/* kept on its worker's handover list until the backend's EOF */
		wl_push(sv, SVL_HANDOVER);
		return;
	}
	if (sv->counted) {
		sv->counted = false;
		pool_drop(sv->pool, pool_max(sv->pool));
	}
	io_sock_close(&sv->ep.sock);
}

static void sv_on_closed(struct io_sock *s)
{
	struct server *sv = s->owner;
	free_server(sv, sv->w->loop);
}

void sv_fail(struct server *sv, const uint8_t *body, uint32_t len, const char *sqlstate,
             const char *msg)
{
	if (msg)
		log_warn("server %s:%d db=%s user=%s: %s", sv->node_host, sv->node_port,
		         sv->database, sv->user, msg);
	/* a client waiting for this login gets the error; a bound one is
	 * closed by sv_close after what it was already sent */
	struct client *cl = sv->client;
	if (cl && cl->connecting == sv) {
		sv->client = NULL;
		cl_server_failed(cl, body, len, sqlstate, msg);
	}
	struct client *aq = sv->authq_client;
	sv->authq_client = NULL;
	if (aq && aq->authq == sv) {
		aq->authq = NULL;
		cl_auth_query_done(aq, NULL,
		                   msg ? msg : "auth_query: the server refused the login");
	}
	sv_close(sv);
}

static void send_startup(struct server *sv)
{
	ep_send_bytes(&sv->ep, sv->startup_pkt, sv->startup_len);
	sv_set_state(sv, SV_LOGIN);
}

static void sv_on_connect(struct io_sock *s, int err)
{
	struct server *sv = s->owner;
	if (err < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "could not connect to server %s:%d: %s", sv->node_host,
		         sv->node_port, strerror(-err));
		sv_node_failure(sv, msg);
		sv_fail(sv, NULL, 0, "08006", msg);
		return;
	}
	struct snap *sn = sv->client ? sv->client->snap : NULL;
	struct snap *own = sn ? NULL : snap_current();
	if (!sn)
		sn = own;
	bool tls = sn->server_tls && sv->node_host[0] != '/';
	snap_unref(own);
	io_recv_start(&sv->ep.sock);
	if (tls) {
		uint8_t buf[8];
		struct pgw_out o;
		pgw_out_init(&o, buf, sizeof(buf));
		pgw_ssl_request(&o);
		ep_send_bytes(&sv->ep, buf, o.len);
		sv_set_state(sv, SV_TLS_REQUEST);
		return;
	}
	send_startup(sv);
}

static void sv_on_sent(struct io_sock *s, int err)
{
	struct server *sv = s->owner;
	ep_sent(&sv->ep, err);
	if (err < 0) {
		sv_fail(sv, NULL, 0, "08006", "lost the connection to the server while sending");
		return;
	}
	struct client *cl = sv->client;
	if (cl && sv->state == SV_ACTIVE && cl->ep.paused && sv->ep.q_bytes < EP_LOW_WATER)
		cl_resume_source(cl);
	if (sv->txn && sv->client && sv->state == SV_ACTIVE && !sv->ep.q_head)
		tx_server_sent(sv);
}

void sv_resume_source(struct server *sv)
{
	if (!sv->ep.paused || sv->state == SV_CLOSING)
		return;
	sv->ep.paused = false;
	io_recv_start(&sv->ep.sock);
}

void sv_param_status(struct server *sv, const uint8_t *body, uint32_t len)
{
	uint32_t off = 0;
	const char *name = pgw_get_str(body, len, &off);
	const char *value = pgw_get_str(body, len, &off);
	if (!name || !value)
		return;
	for (int i = 0; i < sv->n_params; i++) {
		if (!strcmp(sv->param_name[i], name)) {
			char *v = strdup(value);
			if (v) {
				free(sv->param_value[i]);
				sv->param_value[i] = v;
			}
			return;
		}
	}
	if (sv->n_params == SV_MAX_PARAMS)
		return;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return;
	}
	sv->param_name[sv->n_params] = n;
	sv->param_value[sv->n_params] = v;
	sv->n_params++;
}

/* ------------------------------------------------------------- relay */

/* Messages the proxy reads while relaying server -> client. */
static bool wants_capture(const struct server *sv, uint8_t type)
{
	/* errors are rare: all are read, so a FATAL's SQLSTATE is known when
	 * the server closes */
	return type == PGW_MSG_READY || type == PGW_MSG_PARAM_STATUS || type == PGW_MSG_ERROR ||
	       (type == 'C' && sv->qev); /* session mode analytics */
}

static void on_captured(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len);

/* Scans a chunk's headers, copying out the few messages we act on. */
static void scan_chunk(struct server *sv, const uint8_t *data, size_t start, size_t end)
{
	struct endpoint *ep = &sv->ep;
	size_t pos = start;
	/* continue a message being copied out */
	if (ep->cap_len && ep->cap_got < ep->cap_len) {
		size_t take = ep->cap_len - ep->cap_got;
		if (take > end - pos)
			take = end - pos;
		memcpy(ep->cap_buf + ep->cap_got, data + pos, take);
		ep->cap_got += (uint32_t)take;
		if (ep->cap_got == ep->cap_len) {
			ep->cap_len = 0;
			on_captured(sv, ep->cap_type, ep->cap_buf, ep->cap_got);
		}
	}
	for (;;) {
		enum pgw_scan_ev ev = pgw_scan(&ep->scan, data, end, &pos);
		if (ev == PGW_SCAN_END)
			return;
		if (ev == PGW_SCAN_BAD) {
			sv->clean = false;
			sv_fail(sv, NULL, 0, "08P01", "invalid message length from server");
			return;
		}
		uint8_t type = ep->scan.type;
		uint32_t len = ep->scan.len;
		if (type == PGW_MSG_READY && len >= 1 && pos < end) {
			/* the common case, without a copy */
			on_captured(sv, type, data + pos, 1);
			continue;
		}
		if (!wants_capture(sv, type) || len > EP_CAPTURE_MAX)
			continue;
		if (!ep->cap_buf && !(ep->cap_buf = malloc(EP_CAPTURE_MAX)))
			continue;
		size_t take = len < end - pos ? len : end - pos;
		memcpy(ep->cap_buf, data + pos, take);
		ep->cap_type = type;
		ep->cap_len = len;
		ep->cap_got = (uint32_t)take;
		if (ep->cap_got == len) {
			ep->cap_len = 0;
			on_captured(sv, type, ep->cap_buf, len);
		}
		if (sv->state == SV_CLOSING)
			return;
	}
}

static void park(struct server *sv);

static void on_captured(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len)
{
	switch (type) {
	case PGW_MSG_READY:
		sv->tx_status = len ? (char)body[0] : 'I';
		if (sv->state == SV_ACTIVE) {
			conn_ctr_ready(sv, sv->tx_status);
			sv_node_ok(sv);
			if (sv->client && !sv->txn) {
				/* session mode: a statement ended; a parked client may go on */
				if (sv->qev)
					tx_ev_ready(sv->client, sv);
				sess_server_ready(sv->client, sv);
			}
		}
		if (sv->state == SV_RESETTING) {
			if (sv->tx_status == 'I' && sv->clean)
				park(sv);
			else
				sv_close(sv);
		}
		return;
	case PGW_MSG_PARAM_STATUS:
		sv_param_status(sv, body, len);
		return;
	case 'C':
		if (sv->qev && sv->state == SV_ACTIVE)
			tx_ev_response(sv, type, body, len);
		return;
	case PGW_MSG_ERROR:
		if (sv_note_error(sv, body, len) && sv->client && sv->state == SV_ACTIVE &&
		    !sv->txn)
			sv_fatal_event(sv, body, len); /* session mode: it goes to the client */
		if (sv->qev && sv->state == SV_ACTIVE && !sv->txn)
			tx_ev_response(sv, type, body, len);
		if (sv->client && sv->state == SV_ACTIVE && !sv->txn)
			sess_server_error(sv->client, body, len);
		if (sv->state == SV_RESETTING) {
			const char *m = pgw_error_field(body, len, 'M');
			log_warn("server %s:%d: reset query failed: %s", sv->node_host,
			         sv->node_port, m ? m : "?");
			sv->clean = false;
		}
		return;
	}
}

void sv_client_data(struct server *sv, struct io_chunk *c)
{
	sv->clean = false;
	conn_ctr_client_sent(sv, c->len);
	ep_send_chunk(&sv->ep, c);
}

/* States where the proxy itself reads the server's messages: the bytes go
 * to the inbound buffer (the chunk is released); false when the server
 * overran it and was failed. */
static bool take_whole_messages(struct server *sv, struct io_chunk *c, const char *too_much)
{
	int r = ep_in_append(&sv->ep, c->data + c->off, c->len);
	io_chunk_release(sv->w->loop, c);
	if (r < 0) {
		sv_fail(sv, NULL, 0, "08P01", too_much);
		return false;
	}
	return true;
}

static void handle_plain(struct server *sv, struct io_chunk *c)
{
	switch (sv->state) {
	case SV_LOGIN:
		if (take_whole_messages(sv, c, "server sent too much during login"))
			sv_process_login(sv);
		return;
	case SV_ACTIVE: {
		if (sv->ireq) {
			if (take_whole_messages(sv, c,
			                        "internal request: server message too large"))
				ireq_server_input(sv);
			return;
		}
		if (sv->txn) {
			tx_server_data(sv, c);
			return;
		}
		/* A ReadyForQuery that ends this chunk with nothing sent since
		 * means the server is clean again. */
		sv->clean = false;
		if (sv->client && sv->client->sess_fill)
			sess_server_tee(sv->client, sv, c->data, c->off, (size_t)c->off + c->len);
		scan_chunk(sv, c->data, c->off, (size_t)c->off + c->len);
		if (sv->state != SV_ACTIVE) {
			io_chunk_release(sv->w->loop, c);
			return;
		}
		if (sv->ep.scan.left == 0 && sv->ep.scan.hdr_n == 0 && sv->ep.scan.type == 'Z' &&
		    sv->ep.q_head == NULL)
			sv->clean = true;
		conn_ctr_server_sent(sv, c->len);
		if (sv->client)
			cl_server_data(sv->client, c);
		else
			io_chunk_release(sv->w->loop, c);
		return;
	}
	case SV_RESETTING:
		scan_chunk(sv, c->data, c->off, (size_t)c->off + c->len);
		io_chunk_release(sv->w->loop, c);
		return;
	case SV_LISTENER:
		if (take_whole_messages(sv, c, "LISTEN hub: server message too large"))
			process_listener(sv);
		return;
	case SV_AUTH_QUERY:
		if (take_whole_messages(sv, c, "auth_query answer too large"))
			sv_process_auth_query(sv);
		return;
	default:
		/* data on a server that is parking or closing: it cannot be reused */
		io_chunk_release(sv->w->loop, c);
		if (sv->state != SV_CLOSING)
			sv_close(sv);
		return;
	}
}

static void sv_on_recv(struct io_sock *s, struct io_chunk *c)
{
	struct server *sv = s->owner;
	if (sv->handover) {
		io_chunk_release(sv->w->loop, c); /* after our Terminate: nothing to read */
		return;
	}
	if (sv->client && sv->client->moving)
		cl_move_abort(sv->client); /* it spoke: the session is busy, not moved yet */
	if (sv->parking) {
		io_chunk_release(sv->w->loop, c);
		sv->parking = false;
		sv_close(sv);
		return;
	}
	if (sv->state == SV_TLS_REQUEST) {
		uint8_t answer = c->data[c->off];
		c->off++;
		c->len--;
		struct snap *sn = snap_current();
		bool required = sn->cfg->tls.server_mode >= CFG_STLS_REQUIRE;
		struct tls_ctx *ctx = sn->server_tls;
		if (answer == 'S' && ctx) {
			sv->ep.tls = tls_conn_new(ctx, false,
			                          sn->cfg->tls.server_mode == CFG_STLS_VERIFY_FULL
			                              ? sv->node_host
			                              : NULL);
			snap_unref(sn);
			if (!sv->ep.tls || c->len) {
				io_chunk_release(sv->w->loop, c);
				sv_fail(sv, NULL, 0, "08006", "TLS setup with the server failed");
				return;
			}
			io_chunk_release(sv->w->loop, c);
			sv_set_state(sv, SV_TLS);
			tls_handshake(sv->ep.tls);
			/* push the ClientHello out */
			ep_send_bytes(&sv->ep, "", 0);
			struct io_chunk *none = NULL;
			struct io_chunk *empty = io_chunk_new(1);
			int closed;
			if (empty &&
			    ep_tls_decrypt(&sv->ep, sv->w->loop, empty, &none, &closed) == 0)
				(void)none;
			return;
		}
		snap_unref(sn);
		io_chunk_release(sv->w->loop, c);
		if (answer == 'N' && !required) {
			send_startup(sv);
			return;
		}
		sv_fail(sv, NULL, 0, "08006",
		        answer == 'N'
		            ? "the server does not accept TLS and tls.server_mode requires it"
		            : "unexpected answer to SSLRequest from server");
		return;
	}
	if (!sv->ep.tls) {
		handle_plain(sv, c);
		return;
	}
	struct io_chunk *plain;
	int closed;
	if (ep_tls_decrypt(&sv->ep, sv->w->loop, c, &plain, &closed) < 0) {
		sv_fail(sv, NULL, 0, "08006", "TLS error on the server connection");
		return;
	}
	if (sv->state == SV_TLS && !closed) {
		int h = tls_handshake(sv->ep.tls);
		if (h < 0) {
			char eb[200];
			char msg[300];
			snprintf(msg, sizeof(msg), "TLS handshake with the server failed: %s",
			         tls_last_error(eb, sizeof(eb)));
			sv_fail(sv, NULL, 0, "08006", msg);
			return;
		}
		if (h == 1)
			send_startup(sv);
		else
			ep_send_bytes(&sv->ep, "", 0);
	}
	while (plain) {
		struct io_chunk *next = plain->next;
		plain->next = NULL;
		if (sv->state == SV_CLOSING)
			io_chunk_release(sv->w->loop, plain);
		else
			handle_plain(sv, plain);
		plain = next;
	}
	if (closed < 0 && sv->state != SV_CLOSING) {
		if (sv->state == SV_TLS) {
			char eb[200];
			char msg[300];
			snprintf(msg, sizeof(msg), "TLS handshake with the server failed: %s",
			         tls_last_error(eb, sizeof(eb)));
			sv_fail(sv, NULL, 0, "08006", msg);
		} else if (closed == -ESHUTDOWN) {
			sv_on_eof(&sv->ep.sock, 0);
		} else {
			sv_fail(sv, NULL, 0, "08006", "TLS error on the server connection");
		}
	}
}

static void sv_on_eof(struct io_sock *s, int err)
{
	struct server *sv = s->owner;
	if (sv->handover) {
		handover_end(sv); /* the backend has exited: its slot may go */
		return;
	}
	if (sv->state == SV_LOGIN || sv->state == SV_CONNECTING || sv->state == SV_TLS ||
	    sv->state == SV_TLS_REQUEST || sv->state == SV_AUTH_QUERY) {
		sv_node_failure(sv, "the server closed the connection during login");
		sv_fail(sv, NULL, 0, "08006", "the server closed the connection during login");
		return;
	}
	if (sv->state == SV_ACTIVE && sv->client && splice_hup(sv->client, true))
		return; /* closed once its last bytes reached the client */
	if (sv->state == SV_ACTIVE && sv->client && breaker_fatal_is_node_failure(sv->fatal_code)) {
		/* a crash, a node shutting down or a lost network; one backend
		 * terminated (57P01) or timed out is not the node's failure */
		char why[160];
		snprintf(why, sizeof(why), "the server closed a connection in use (%s)",
		         sv->fatal_code[0] ? sv->fatal_code : "without an error: crash or network");
		sv_node_failure(sv, why);
	} else if (sv->state == SV_ACTIVE && sv->client) {
		log_info("server %llu %s:%d: backend %u ended (%s); not a node failure",
		         (unsigned long long)sv->id, sv->node_host, sv->node_port, sv->backend_pid,
		         sv->fatal_code);
	}
	log_debug("server %llu %s:%d: closed by the server (%d)", (unsigned long long)sv->id,
	          sv->node_host, sv->node_port, err);
	sv_close(sv);
}

/* ------------------------------------------------------------- release */

bool sv_close_needed(const struct server *sv)
{
	int64_t before = sv->pool ? pool_retire_ns(sv->pool) : 0;
	return before && (int64_t)sv->created.tv_sec * 1000000000 + sv->created.tv_nsec < before;
}

static void park(struct server *sv)
{
	struct snap *sn = snap_current();
	int lifetime = sn->cfg->pool.server_lifetime_secs;
	snap_unref(sn);
	struct timespec now;
	conn_now(&now);
	if (lifetime > 0 && conn_elapsed(&sv->created, &now) > lifetime) {
		log_debug("server %llu: lifetime reached, closing", (unsigned long long)sv->id);
		sv_close(sv);
		return;
	}
	if (sv_close_needed(sv)) {
		log_debug("server %llu: RECONNECT on the admin console, closing",
		          (unsigned long long)sv->id);
		sv_close(sv);
		return;
	}
	sv_node_ok(sv); /* parked after a ReadyForQuery: the node works */
	if (sv_claim_for_ireq(sv))
		return; /* an internal request of this worker waited for its pool */
	sv_set_state(sv, SV_IDLE);
	sv->parking = true;
	sv->last_used = now;
	io_recv_stop(&sv->ep.sock);
}

static void to_pool(struct server *sv);

static void sv_on_recv_stopped(struct io_sock *s)
{
	struct server *sv = s->owner;
	if (sv->client && sv->client->moving && sv->client->server == sv) {
		cl_move_part_stopped(sv->client, 2);
		return;
	}
	if (sv->client && splice_recv_stopped(sv->client, true))
		return;
	if (!sv->parking)
		return; /* paused for back-pressure */
	sv->parking = false;
	if (!io_sock_idle(&sv->ep.sock) || !ep_flushed(&sv->ep)) {
		sv_close(sv);
		return;
	}
	if (cancel_hold(sv))
		return; /* a cancel may still hit its backend: sv_cancel_hold_end */
	to_pool(sv);
}

void sv_cancel_hold_end(struct server *sv, bool ok)
{
	if (!ok || sv->state != SV_IDLE || !sv_alive(sv)) {
		sv_close(sv);
		return;
	}
	to_pool(sv);
}

static void to_pool(struct server *sv)
{
	struct worker *w = sv->w;
	io_sock_detach(&sv->ep.sock);
	sv->w = NULL;
	/* what the pool matches and expires it by */
	sv->pitem.signature = sv->signature;
	sv->pitem.created = sv->created;
	sv->pitem.last_used = sv->last_used;
	if (!pool_release(sv->pool, &sv->pitem, worker_self())) {
		/* max_pool_size was lowered live, or a pool under the same
		 * max_db/user_connections waits: this one goes, and its slot
		 * with it once the backend has exited */
		sv_attach(sv, w);
		sv_close_handover(sv);
	}
}

/* A server of a drained node is closed when released, not pooled. */
static bool node_is_drained(const struct server *sv)
{
	if (!ctl_any_drained())
		return false;
	struct snap *sn = snap_current();
	bool r = sn && sv->node_idx >= 0 && (size_t)sv->node_idx < sn->cfg->n_nodes &&
	         ctl_node_drained(sn->cfg->nodes[sv->node_idx].name);
	snap_unref(sn);
	return r;
}

/* Sends the reset query; the server is pooled when its ReadyForQuery 'I'
 * arrives with no error before it, closed otherwise (on_captured). */
static void start_reset(struct server *sv, const char *sql)
{
	uint8_t buf[CFG_QUERY_MAX + 16];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	pgw_query(&o, sql);
	if (o.overflow) {
		sv_close(sv);
		return;
	}
	sv_set_state(sv, SV_RESETTING);
	ep_send_bytes(&sv->ep, buf, o.len);
	/* clean again once the reset's ReadyForQuery arrives with nothing
	 * else outstanding */
	sv->clean = true;
}

void sv_release(struct server *sv)
{
	if (sv->state == SV_CLOSING)
		return;
	sv->client = NULL;
	if (!sv->pool || node_is_drained(sv)) {
		sv_close(sv); /* unpooled (replication), or its node is drained */
		return;
	}
	if (sv->state != SV_ACTIVE) {
		/* still logging in: login_done pools it */
		return;
	}
	if (sv->txn) {
		/* transaction pooling: no reset, the settings it carries are known,
		 * unless a pinned client left state the proxy does not follow */
		if (!tx_server_clean(sv) || sv->ep.paused) {
			log_debug("server %llu: released mid-transaction, closing",
			          (unsigned long long)sv->id);
			sv_close(sv);
			return;
		}
		if (!sv->needs_reset) {
			park(sv);
			return;
		}
		log_debug("server %llu: held a pinned client's state: DISCARD ALL before pooling",
		          (unsigned long long)sv->id);
		tx_server_discarded(sv);
		start_reset(sv, "DISCARD ALL");
		return;
	}
	if (!sv->clean || sv->tx_status != 'I' || sv->ep.paused || sv->ep.scan.left ||
	    sv->ep.scan.hdr_n) {
		/* mid-query or mid-transaction: not safe to hand to anyone */
		log_debug("server %llu: released while busy (status %c), closing",
		          (unsigned long long)sv->id, sv->tx_status ? sv->tx_status : '?');
		sv_close(sv);
		return;
	}
	struct snap *sn = snap_current();
	const char *reset = sn->cfg->pool.reset_query;
	if (!reset[0]) {
		snap_unref(sn);
		park(sv);
		return;
	}
	start_reset(sv, reset);
	snap_unref(sn);
}
