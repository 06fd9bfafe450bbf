/*
 * Kernel-accelerated session mode (pool_mode.kernel_splice): after login a
 * session client and its server are put in the splice program's sockhash
 * (dataplane/conn/kfast.c, bpf/splice.bpf.c) and the kernel moves their bytes;
 * the proxy watches both sockets for close only and reads the program's
 * per-connection counts for its statistics.
 *
 * Splice point. bind_server() has the login tail (ParameterStatus,
 * BackendKeyData, ReadyForQuery) ready but not sent: until the client has
 * its ReadyForQuery it sends nothing, and the idle server sends nothing
 * unasked. Receiving is stopped on both sockets; once both have stopped,
 * nothing may be waiting in either receive queue (bytes there would be
 * stranded: the program only sees what arrives after the insert), the
 * sockets go into the map and only then is the tail sent. A client that
 * sent early, or a failed insert, falls back to the userspace relay.
 *
 * Taking apart. FIN is not forwarded by the kernel, and bytes redirected
 * but not yet written out are lost if a socket leaves the map, so the side
 * that did not close is drained first: every byte that reached the closed
 * side's socket went through the program (its TCP received count equals
 * the program's) and the other socket has had all of them acknowledged.
 * The check runs at once and then on the worker tick, for at most
 * DRAIN_MAX_SECS. When the client left, the server goes back to the pool
 * (reset first) if it is idle at a message boundary, every request got its
 * ReadyForQuery and the client's Terminate was kept from it; otherwise it
 * is closed.
 */
#include "dataplane/conn/splice.h"

#include "common/log.h"
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/kfast.h"
#include "dataplane/policy/snap.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/rt/worker.h"
#include "dataplane/conn/conn_worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define DRAIN_MAX_SECS 5.0
#define FOLD_SECS      1.0

enum kf_phase {
	KF_STARTING,     /* receive being stopped on both sockets */
	KF_ON,           /* in the map */
	KF_DRAIN_CLIENT, /* the client closed: its last bytes are going out */
	KF_DRAIN_SERVER, /* the server closed: its last bytes are going out */
};

struct kf_session {
	enum kf_phase phase;
	uint8_t stopping; /* receive stops still owed: 1 client, 2 server */
	uint64_t cl_cookie, sv_cookie;
	struct kf_tcp cl0, sv0; /* TCP counters when spliced */
	uint8_t *tail;          /* the login answer, sent once spliced */
	uint32_t tail_len;
	struct timespec drain_start, last_fold;
	/* counts already added to the pool statistics */
	uint64_t f_queries, f_xacts, f_query_ns, f_in, f_out;
	struct client *next, *prev; /* worker's spliced list */
};

uint64_t g_splice_total, g_splice_fallbacks, g_splice_reused; /* atomic */
int g_splice_active;                                          /* atomic */

static void list_add(struct client *cl)
{
	struct conn_worker *cw = cw_of(cl->w);
	cl->kf->prev = NULL;
	cl->kf->next = cw->spliced;
	if (cw->spliced)
		cw->spliced->kf->prev = cl;
	cw->spliced = cl;
	__atomic_add_fetch(&g_splice_active, 1, __ATOMIC_RELAXED);
}

static void list_del(struct client *cl)
{
	struct kf_session *k = cl->kf;
	if (k->prev)
		k->prev->kf->next = k->next;
	else
		cw_of(cl->w)->spliced = k->next;
	if (k->next)
		k->next->kf->prev = k->prev;
	k->next = k->prev = NULL;
	__atomic_sub_fetch(&g_splice_active, 1, __ATOMIC_RELAXED);
}

static bool in_map(const struct kf_session *k)
{
	return k->phase != KF_STARTING;
}

bool splice_wanted(const struct client *cl, const struct server *sv)
{
	const struct cfg *c = cl->snap->cfg;
	/* Only a session with no per-query stage: one that a stage applies to
	 * (the result cache, rate limits, analytics; conn/session.c) must be
	 * seen query by query, which the kernel path cannot do. */
	if (!c->pool.kernel_splice || cl->txn || cl->admin || cl->replication || !sv->pool ||
	    sess_staged(cl, sv))
		return false;
	/* the program splices TCP to TCP; the redirect needs both in the map */
	if (cl->is_tls || cl->ep.tls || sv->ep.tls || cl->ep.in_len || cl->is_unix)
		return false;
	if (!kfast_available()) {
		__atomic_add_fetch(&g_splice_fallbacks, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

static int pending_bytes(int fd)
{
	int n = 0;
	return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* Forgets the session's bookkeeping (nothing about the map). */
void splice_free(struct client *cl)
{
	if (cl->kf) {
		free(cl->kf->tail);
		free(cl->kf);
		cl->kf = NULL;
	}
}

/* Back to the userspace relay (the splice did not happen): the login
 * answer goes out, then both sockets receive again. */
static void fall_back(struct client *cl, const char *why)
{
	struct kf_session *k = cl->kf;
	struct server *sv = cl->server;
	__atomic_add_fetch(&g_splice_fallbacks, 1, __ATOMIC_RELAXED);
	log_debug("client %llu: not spliced (%s), relaying in userspace",
	          (unsigned long long)cl->id, why);
	ep_send_bytes(&cl->ep, k->tail, k->tail_len);
	splice_free(cl);
	if (cl->state == CL_ACTIVE)
		io_recv_start(&cl->ep.sock);
	if (sv && sv->state == SV_ACTIVE)
		io_recv_start(&sv->ep.sock);
}

/* Both sockets have stopped receiving: into the map, then the login answer. */
static void insert(struct client *cl)
{
	struct kf_session *k = cl->kf;
	struct server *sv = cl->server;
	int cfd = cl->ep.sock.fd, sfd = sv->ep.sock.fd;
	if (pending_bytes(cfd) != 0 || pending_bytes(sfd) != 0) {
		fall_back(cl, "bytes arrived before the splice point");
		return;
	}
	if (kfast_tcp(cfd, &k->cl0) < 0 || kfast_tcp(sfd, &k->sv0) < 0) {
		fall_back(cl, "no TCP counters on the sockets");
		return;
	}
	int r = kfast_splice(cfd, sfd, &k->cl_cookie, &k->sv_cookie);
	if (r < 0) {
		/* once per process at warn (a full map would say it per login);
		 * helios_splice_fallbacks_total counts them all */
		static int warned;
		if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
			log_warn("client %llu: cannot splice (%s), relaying in userspace; further "
			         "failures are logged at debug level",
			         (unsigned long long)cl->id, strerror(-r));
		fall_back(cl, strerror(-r));
		return;
	}
	/* bytes that raced the insert would be stranded: undo while nothing
	 * can have been redirected (the client has no ReadyForQuery yet) */
	if (pending_bytes(cfd) != 0 || pending_bytes(sfd) != 0) {
		kfast_remove_sock(k->cl_cookie);
		kfast_remove_sock(k->sv_cookie);
		kfast_forget(k->cl_cookie);
		kfast_forget(k->sv_cookie);
		fall_back(cl, "bytes arrived during the splice");
		return;
	}
	k->phase = KF_ON;
	conn_now(&k->last_fold);
	list_add(cl);
	__atomic_add_fetch(&g_splice_total, 1, __ATOMIC_RELAXED);
	io_hup_watch(&cl->ep.sock);
	io_hup_watch(&sv->ep.sock);
	k->cl0.acked += k->tail_len; /* what the proxy itself sends next */
	ep_send_bytes(&cl->ep, k->tail, k->tail_len);
	free(k->tail);
	k->tail = NULL;
	log_debug("client %llu: spliced to server %llu in the kernel", (unsigned long long)cl->id,
	          (unsigned long long)sv->id);
}

void splice_start(struct client *cl, struct server *sv, const uint8_t *tail, uint32_t tail_len)
{
	struct kf_session *k = calloc(1, sizeof(*k));
	uint8_t *t = k ? malloc(tail_len) : NULL;
	if (!t) {
		free(k);
		ep_send_bytes(&cl->ep, tail, tail_len);
		io_recv_start(&sv->ep.sock);
		return;
	}
	memcpy(t, tail, tail_len);
	k->tail = t;
	k->tail_len = tail_len;
	k->phase = KF_STARTING;
	cl->kf = k;
	if (cl->ep.sock.flags & (IO_F_RECV_WANT | IO_F_RECV_ARMED | IO_F_STOP_PENDING)) {
		k->stopping |= 1;
		io_recv_stop(&cl->ep.sock);
	}
	if (sv->ep.sock.flags & (IO_F_RECV_WANT | IO_F_RECV_ARMED | IO_F_STOP_PENDING)) {
		k->stopping |= 2;
		io_recv_stop(&sv->ep.sock);
	}
	if (!k->stopping)
		insert(cl);
}

bool splice_recv_stopped(struct client *cl, bool server_side)
{
	struct kf_session *k = cl->kf;
	if (!k || k->phase != KF_STARTING)
		return false;
	k->stopping &= (uint8_t) ~(server_side ? 2 : 1);
	if (!k->stopping && cl->server)
		insert(cl);
	return true;
}

void splice_userspace_data(struct client *cl, bool server_side)
{
	if (cl->kf && cl->kf->phase == KF_STARTING) {
		/* bytes raced the receive stop: this session stays in userspace
		 * (the login answer goes out first) */
		fall_back(cl, server_side ? "the server sent during the splice"
		                          : "the client sent before ReadyForQuery");
	}
}

/* Adds what the program counted since the last fold to the pool's stats. */
static void fold(struct client *cl, const struct hp_conn *c, const struct hp_conn *s)
{
	struct kf_session *k = cl->kf;
	uint64_t q = s->ready[0] + s->ready[1] + s->ready[2];
	if (!cl->server)
		return;
	conn_ctr_spliced(cl->server, q - k->f_queries, s->ready[0] - k->f_xacts,
	                 (s->query_ns - k->f_query_ns) / 1000, c->bytes - k->f_in,
	                 s->fwd_bytes - k->f_out);
	if (q != k->f_queries) {
		/* what SHOW CLIENTS / SERVERS report: last request, transaction state */
		struct timespec now;
		conn_now(&now);
		cl->request_s = (uint32_t)now.tv_sec;
		cl->server->last_used = now;
		cl->server->tx_status = s->status ? (char)s->status : 'I';
	}
	k->f_queries = q;
	k->f_xacts = s->ready[0];
	k->f_query_ns = s->query_ns;
	k->f_in = c->bytes;
	k->f_out = s->fwd_bytes;
}

/* The server can go back to the pool after the client left. */
static bool server_reusable(const struct client *cl, const struct hp_conn *c,
                            const struct hp_conn *s, bool drained)
{
	if (!drained || !pgscan_at_boundary(c) || !pgscan_at_boundary(s))
		return false;
	if (c->terminate == HP_TERM_PASSED || s->status != 'I' || s->last_type != 'Z')
		return false;
	if (pgscan_requests(c) != s->ready[0] + s->ready[1] + s->ready[2])
		return false;
	/* settings reported while spliced are only learnt back by the reset */
	if (s->by_type['S'] && !cl->snap->cfg->pool.reset_query[0])
		return false;
	return pending_bytes(cl->server->ep.sock.fd) == 0;
}

/* Out of the map and off the worker's list; with reuse (the client left,
 * the server is clean) the server is made ready for sv_release. */
static void take_apart(struct client *cl, bool client_left, bool drained)
{
	struct kf_session *k = cl->kf;
	struct server *sv = cl->server;
	if (in_map(k)) {
		kfast_remove_sock(k->cl_cookie);
		kfast_remove_sock(k->sv_cookie);
		struct hp_conn c, s;
		bool have = kfast_read(k->cl_cookie, &c) == 0 && kfast_read(k->sv_cookie, &s) == 0;
		if (have)
			fold(cl, &c, &s);
		kfast_forget(k->cl_cookie);
		kfast_forget(k->sv_cookie);
		list_del(cl);
		if (sv) {
			io_hup_unwatch(&sv->ep.sock);
			if (client_left && have && server_reusable(cl, &c, &s, drained)) {
				memset(&sv->ep.scan, 0, sizeof(sv->ep.scan));
				sv->tx_status = 'I';
				sv->clean = true;
				io_recv_start(&sv->ep.sock);
				__atomic_add_fetch(&g_splice_reused, 1, __ATOMIC_RELAXED);
			} else {
				sv->clean = false;
			}
		}
		io_hup_unwatch(&cl->ep.sock);
	} else if (sv) {
		sv->clean = false; /* receive was being stopped: not worth the care */
	}
	splice_free(cl);
}

void splice_end(struct client *cl)
{
	if (cl->kf)
		take_apart(cl, false, false);
}

/* Whether the side that did not close has everything the closed side
 * sent. */
static bool drained(struct client *cl)
{
	struct kf_session *k = cl->kf;
	bool client_left = k->phase == KF_DRAIN_CLIENT;
	uint64_t from = client_left ? k->cl_cookie : k->sv_cookie;
	int from_fd = client_left ? cl->ep.sock.fd : cl->server->ep.sock.fd;
	int to_fd = client_left ? cl->server->ep.sock.fd : cl->ep.sock.fd;
	const struct kf_tcp *from0 = client_left ? &k->cl0 : &k->sv0;
	const struct kf_tcp *to0 = client_left ? &k->sv0 : &k->cl0;
	struct hp_conn st;
	struct kf_tcp a, b;
	if (kfast_read(from, &st) < 0 || kfast_tcp(from_fd, &a) < 0 || kfast_tcp(to_fd, &b) < 0)
		return true; /* nothing more can be learnt */
	/* the FIN takes a sequence number, which TCP counts as received */
	uint64_t got = a.received - from0->received;
	return (got == st.bytes || got == st.bytes + 1) && b.acked - to0->acked >= st.fwd_bytes;
}

/* Finishes a drain when it is done or too long. */
static void drain_check(struct client *cl, const struct timespec *now)
{
	struct kf_session *k = cl->kf;
	bool done = drained(cl);
	bool late = conn_elapsed(&k->drain_start, now) >= DRAIN_MAX_SECS;
	if (!done && !late)
		return;
	if (!done)
		log_warn("client %llu: spliced bytes still in flight after %.0f s; closing anyway",
		         (unsigned long long)cl->id, DRAIN_MAX_SECS);
	if (k->phase == KF_DRAIN_CLIENT) {
		take_apart(cl, true, done);
		cl_close(cl, NULL, NULL); /* releases the server: reset and pooled, or closed */
	} else {
		struct server *sv = cl->server;
		take_apart(cl, false, done);
		if (sv)
			sv_close(sv); /* closes the client after its flush */
		else
			cl_close(cl, NULL, NULL);
	}
}

bool splice_hup(struct client *cl, bool server_side)
{
	struct kf_session *k = cl->kf;
	if (!k || k->phase == KF_STARTING)
		return false;
	if (k->phase == KF_ON) {
		k->phase = server_side ? KF_DRAIN_SERVER : KF_DRAIN_CLIENT;
		conn_now(&k->drain_start);
		log_debug("client %llu: spliced session closed by the %s",
		          (unsigned long long)cl->id, server_side ? "server" : "client");
	}
	struct timespec now;
	conn_now(&now);
	drain_check(cl, &now);
	return true;
}

void splice_tick(struct worker *w, const struct timespec *now)
{
	for (struct client *cl = cw_of(w)->spliced, *next; cl; cl = next) {
		next = cl->kf->next;
		struct kf_session *k = cl->kf;
		if (k->phase == KF_DRAIN_CLIENT || k->phase == KF_DRAIN_SERVER) {
			drain_check(cl, now);
			continue;
		}
		if (conn_elapsed(&k->last_fold, now) < FOLD_SECS)
			continue;
		k->last_fold = *now;
		struct hp_conn c, s;
		if (kfast_read(k->cl_cookie, &c) == 0 && kfast_read(k->sv_cookie, &s) == 0)
			fold(cl, &c, &s);
	}
}

bool splice_read(const struct client *cl, struct splice_info *out)
{
	const struct kf_session *k = cl->kf;
	struct hp_conn c, s;
	if (!k || !in_map(k) || kfast_read(k->cl_cookie, &c) < 0 ||
	    kfast_read(k->sv_cookie, &s) < 0)
		return false;
	out->requests = pgscan_requests(&c);
	out->ready = s.ready[0] + s.ready[1] + s.ready[2];
	out->status = s.status ? (char)s.status : 'I';
	out->bytes_in = c.bytes;
	out->bytes_out = s.fwd_bytes;
	return true;
}
