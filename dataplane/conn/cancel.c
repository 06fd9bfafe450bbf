/*
 * The cancel-key table and the short-lived connections that carry a
 * CancelRequest to a server. The table is one hash under a mutex: it is
 * touched at login, logout and cancel, never per message.
 */
#include "dataplane/conn/cancel.h"

#include "common/log.h"
#include "dataplane/conn/conn_internal.h"
#include "dataplane/rt/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS 4096

struct cancel_ent {
	struct cancel_ent *next;
	uint32_t pid, key;
	struct client *cl;
	bool has_target;
	const char *host; /* the bound server's node_host: cleared before it goes */
	int port;
	uint32_t spid, skey;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct cancel_ent *buckets[NBUCKETS];

static unsigned bucket_of(uint32_t pid, uint32_t key)
{
	return (pid * 2654435761u ^ key) % NBUCKETS;
}

static struct cancel_ent *find(uint32_t pid, uint32_t key)
{
	for (struct cancel_ent *e = buckets[bucket_of(pid, key)]; e; e = e->next)
		if (e->pid == pid && e->key == key)
			return e;
	return NULL;
}

void cancel_register(struct client *cl, uint32_t pid)
{
	struct cancel_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	pthread_mutex_lock(&mu);
	do {
		if (RAND_bytes((unsigned char *)&e->key, sizeof(e->key)) != 1)
			e->key = (uint32_t)random();
	} while (find(pid, e->key));
	e->pid = pid;
	e->cl = cl;
	unsigned b = bucket_of(pid, e->key);
	e->next = buckets[b];
	buckets[b] = e;
	cl->cancel_pid = pid;
	cl->cancel_key = e->key;
	pthread_mutex_unlock(&mu);
}

void cancel_register_key(struct client *cl, uint32_t pid, uint32_t key)
{
	struct cancel_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	pthread_mutex_lock(&mu);
	bool taken = find(pid, key) != NULL;
	if (!taken) {
		e->pid = pid;
		e->key = key;
		e->cl = cl;
		unsigned b = bucket_of(pid, key);
		e->next = buckets[b];
		buckets[b] = e;
		cl->cancel_pid = pid;
		cl->cancel_key = key;
	}
	pthread_mutex_unlock(&mu);
	if (taken) {
		free(e);
		cancel_register(cl, pid);
	}
}

struct worker *cancel_worker_of(uint32_t pid, uint32_t key)
{
	pthread_mutex_lock(&mu);
	struct cancel_ent *e = find(pid, key);
	struct worker *w = e && e->cl ? e->cl->w : NULL;
	pthread_mutex_unlock(&mu);
	return w;
}

void cancel_unregister(struct client *cl)
{
	if (!cl->cancel_key && !cl->cancel_pid)
		return;
	pthread_mutex_lock(&mu);
	struct cancel_ent **pp = &buckets[bucket_of(cl->cancel_pid, cl->cancel_key)];
	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->cl == cl) {
			struct cancel_ent *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	cl->cancel_pid = cl->cancel_key = 0;
}

void cancel_set_target(struct client *cl, const struct server *sv)
{
	pthread_mutex_lock(&mu);
	struct cancel_ent *e = find(cl->cancel_pid, cl->cancel_key);
	if (e && e->cl == cl) {
		e->has_target = sv != NULL;
		if (sv) {
			e->host = sv->node_host;
			e->port = sv->node_port;
			e->spid = sv->backend_pid;
			e->skey = sv->backend_key;
		}
	}
	pthread_mutex_unlock(&mu);
}

/* ------------------------------------------------------ cancels in flight
 *
 * PostgreSQL's postmaster hands a CancelRequest to a child that signals the
 * backend twice (kill(pid), then kill(-pid) for its process group) and only
 * then closes the connection. Until that close the signal can still land:
 * a cancel that left while client A's statement ran can hit the statement
 * the next client of the same backend runs once A's has ended (seen: one
 * cancel stopping A's pg_sleep and, ~1 ms later, B's statement). So, as
 * PgBouncer does with its being_canceled list, a server whose backend has a
 * cancel in flight goes to no one until PostgreSQL has closed the cancel
 * connection: it waits on its worker, receive stopped, at most
 * CANCEL_HOLD_SECS, and is closed rather than pooled if that runs out.
 *
 * A flight is keyed by the backend's (pid, key): the server may be freed,
 * or released on another worker, while the cancel travels. Everything is
 * under mu; n_flights lets every release skip the lock when none exists. */

#define CANCEL_HOLD_SECS     5
#define CANCEL_CONN_MAX_SECS 10 /* PostgreSQL answers in ms; a lost peer is bounded */

struct cancel_flight {
	struct cancel_flight *next;
	uint32_t spid, skey;
	int conns;           /* cancel connections to this backend still open */
	struct server *held; /* released while they were: waits on worker hw */
	struct worker *hw;
	struct timespec since;
};

/* A one-shot connection: connect, send 16 bytes, wait for the server's
 * close (the backend has been signalled by then), close. */
struct cancel_conn {
	struct io_sock sock;
	struct cancel_conn *next; /* all_conns, under mu */
	struct worker *w;
	struct timespec started;
	uint32_t spid, skey;
	uint8_t pkt[16];
};

static struct cancel_flight *flights;
static struct cancel_conn *all_conns;
static int n_flights; /* atomic: entries in flights */
static int n_done;    /* atomic: held servers whose cancels have all finished */

static struct cancel_flight *flight_find(uint32_t spid, uint32_t skey)
{
	for (struct cancel_flight *f = flights; f; f = f->next)
		if (f->spid == spid && f->skey == skey)
			return f;
	return NULL;
}

/* Under mu. */
static void flight_unlink(struct cancel_flight *f)
{
	for (struct cancel_flight **pp = &flights; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	if (f->held && f->conns == 0)
		__atomic_sub_fetch(&n_done, 1, __ATOMIC_RELEASE);
	__atomic_sub_fetch(&n_flights, 1, __ATOMIC_RELEASE);
	free(f);
}

/* The flight's held server leaves it (under mu): the flight goes when no
 * cancel connection of it is open any more. */
static void flight_release(struct cancel_flight *f)
{
	if (f->conns == 0) {
		flight_unlink(f);
	} else {
		f->held = NULL;
		f->hw = NULL;
	}
}

/* Under mu: one more cancel connection to this backend. */
static int flight_begin(uint32_t spid, uint32_t skey)
{
	struct cancel_flight *f = flight_find(spid, skey);
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		f->spid = spid;
		f->skey = skey;
		f->next = flights;
		flights = f;
		__atomic_add_fetch(&n_flights, 1, __ATOMIC_RELEASE);
	}
	f->conns++;
	return 0;
}

/* A cancel connection to this backend is over: its server may go on. */
static void flight_end(uint32_t spid, uint32_t skey)
{
	struct worker *wake = NULL;
	pthread_mutex_lock(&mu);
	struct cancel_flight *f = flight_find(spid, skey);
	if (f && f->conns > 0 && --f->conns == 0) {
		if (f->held) {
			__atomic_add_fetch(&n_done, 1, __ATOMIC_RELEASE);
			wake = f->hw;
		} else {
			flight_unlink(f);
		}
	}
	pthread_mutex_unlock(&mu);
	if (wake)
		io_loop_wakeup(wake->loop); /* workers live as long as the process */
}

bool cancel_hold(struct server *sv)
{
	if (!__atomic_load_n(&n_flights, __ATOMIC_ACQUIRE))
		return false;
	bool held = false;
	pthread_mutex_lock(&mu);
	struct cancel_flight *f = flight_find(sv->backend_pid, sv->backend_key);
	if (f && f->conns > 0 && !f->held) {
		f->held = sv;
		f->hw = sv->w;
		conn_now(&f->since);
		held = true;
	}
	pthread_mutex_unlock(&mu);
	if (held) {
		sv->cancel_held = true;
		log_debug("server %llu: a cancel for backend %u is in flight: held until it ends",
		          (unsigned long long)sv->id, sv->backend_pid);
	}
	return held;
}

void cancel_hold_drop(struct server *sv)
{
	if (!sv->cancel_held)
		return;
	sv->cancel_held = false;
	pthread_mutex_lock(&mu);
	for (struct cancel_flight *f = flights; f; f = f->next) {
		if (f->held == sv) {
			flight_release(f);
			break;
		}
	}
	pthread_mutex_unlock(&mu);
}

/* Takes one held server of w off its flight: one whose cancels have ended,
 * or (expired) one that has waited too long. */
static struct server *take_held(struct worker *w, bool expired, const struct timespec *now)
{
	struct server *sv = NULL;
	pthread_mutex_lock(&mu);
	for (struct cancel_flight *f = flights; f; f = f->next) {
		if (f->held && f->hw == w &&
		    (expired ? conn_elapsed(&f->since, now) > CANCEL_HOLD_SECS : f->conns == 0)) {
			sv = f->held;
			flight_release(f);
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	if (sv)
		sv->cancel_held = false;
	return sv;
}

void cancel_worker_wake(struct worker *w)
{
	if (!__atomic_load_n(&n_done, __ATOMIC_ACQUIRE))
		return;
	struct server *sv;
	while ((sv = take_held(w, false, NULL)))
		sv_cancel_hold_end(sv, true);
}

void cancel_worker_tick(struct worker *w, const struct timespec *now)
{
	if (!__atomic_load_n(&n_flights, __ATOMIC_ACQUIRE))
		return;
	cancel_worker_wake(w); /* a missed wake-up costs one tick, no more */
	struct server *sv;
	while ((sv = take_held(w, true, now))) {
		log_warn("server %llu %s:%d: a cancel for backend %u did not finish in %d s: "
		         "closing the server rather than pooling it",
		         (unsigned long long)sv->id, sv->node_host, sv->node_port, sv->backend_pid,
		         CANCEL_HOLD_SECS);
		sv_cancel_hold_end(sv, false);
	}
	/* this worker's cancel connections that PostgreSQL never closed */
	for (;;) {
		struct cancel_conn *stuck = NULL;
		pthread_mutex_lock(&mu);
		for (struct cancel_conn *cc = all_conns; cc; cc = cc->next) {
			if (cc->w == w && !(cc->sock.flags & IO_F_CLOSING) &&
			    conn_elapsed(&cc->started, now) > CANCEL_CONN_MAX_SECS) {
				stuck = cc;
				break;
			}
		}
		pthread_mutex_unlock(&mu);
		if (!stuck)
			break;
		log_warn("cancel: backend %u: the server did not close the cancel connection",
		         stuck->spid);
		io_sock_close(&stuck->sock); /* on_closed ends its flight */
	}
}

static void cc_on_connect(struct io_sock *s, int err)
{
	struct cancel_conn *cc = s->owner;
	if (err < 0) {
		log_warn("cancel: cannot reach server: %s", strerror(-err));
		io_sock_close(s);
		return;
	}
	if (io_send(s, cc->pkt, sizeof(cc->pkt)) < 0)
		io_sock_close(s);
}

static void cc_on_sent(struct io_sock *s, int err)
{
	/* the cancel is done only when the server closes the connection */
	if (err < 0 || io_recv_start(s) < 0)
		io_sock_close(s);
}

static void cc_on_recv(struct io_sock *s, struct io_chunk *c)
{
	io_chunk_release(s->loop, c); /* PostgreSQL answers nothing: ignored */
}

static void cc_on_closed(struct io_sock *s)
{
	struct cancel_conn *cc = s->owner;
	pthread_mutex_lock(&mu);
	for (struct cancel_conn **pp = &all_conns; *pp; pp = &(*pp)->next) {
		if (*pp == cc) {
			*pp = cc->next;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	flight_end(cc->spid, cc->skey);
	free(cc);
}

static void cc_on_eof(struct io_sock *s, int err)
{
	io_sock_close(s);
}

static void cc_on_recv_stopped(struct io_sock *s)
{
}

static const struct io_sock_ops cc_ops = {
    .on_recv = cc_on_recv,
    .on_connect = cc_on_connect,
    .on_sent = cc_on_sent,
    .on_closed = cc_on_closed,
    .on_eof = cc_on_eof,
    .on_recv_stopped = cc_on_recv_stopped,
};

/* Fills sa for a node: host "/dir" is a Unix socket folder, as in libpq. */
int conn_node_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len);

void cancel_forward(struct worker *w, uint32_t pid, uint32_t key)
{
	char host[256];
	int port;
	uint32_t spid, skey;
	pthread_mutex_lock(&mu);
	struct cancel_ent *e = find(pid, key);
	bool ok = e && e->has_target;
	bool unknown = !e;
	if (ok) {
		snprintf(host, sizeof(host), "%s", e->host);
		port = e->port;
		spid = e->spid;
		skey = e->skey;
		/* in flight from now, before the target can be released: a
		 * release that follows sees it (cancel_hold) */
		ok = flight_begin(spid, skey) == 0;
	}
	pthread_mutex_unlock(&mu);
	if (!ok) {
		/* online restart: the client may still be on the old process */
		if (unknown && tko_forward_cancel(pid, key) == 0)
			return;
		log_debug("cancel: no active query for key %u", pid);
		return;
	}
	struct sockaddr_storage sa;
	socklen_t salen;
	int fd = -1;
	struct cancel_conn *cc = NULL;
	if (conn_node_addr(host, port, &sa, &salen) < 0 ||
	    (fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    !(cc = calloc(1, sizeof(*cc)))) {
		if (fd >= 0)
			close(fd);
		log_warn("cancel: cannot open a connection to %s:%d", host, port);
		flight_end(spid, skey);
		return;
	}
	struct pgw_out o;
	pgw_out_init(&o, cc->pkt, sizeof(cc->pkt));
	pgw_cancel_packet(&o, spid, skey);
	cc->w = w;
	cc->spid = spid;
	cc->skey = skey;
	conn_now(&cc->started);
	pthread_mutex_lock(&mu);
	cc->next = all_conns;
	all_conns = cc;
	pthread_mutex_unlock(&mu);
	io_sock_init(&cc->sock, fd, &cc_ops, cc);
	io_sock_attach(w->loop, &cc->sock);
	if (io_connect(&cc->sock, (struct sockaddr *)&sa, salen) < 0)
		io_sock_close(&cc->sock);
	log_debug("cancel: forwarded to %s:%d backend %u", host, port, spid);
}
