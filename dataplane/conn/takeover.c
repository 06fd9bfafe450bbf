/*
 * Online restart (see takeover.h): the takeover socket, the hand-over of
 * the listening sockets, and the CLIENT records (a client's state packed
 * by the old process, rebuilt by cl_adopt in the new one). Blocking I/O
 * runs on its own threads (listener, sender, receiver) or on the main
 * thread; a worker only packs a record and queues it.
 * May call: conn/, pool/, policy/, rt/, io/.
 */
#include "dataplane/conn/takeover.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/rundir.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/policy/snap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TKO_MAGIC   0x4b545048u /* "HPTK" */
#define TKO_VERSION 1u
/* A CLIENT record travels as one SOCK_SEQPACKET message, which the
 * socket's send buffer bounds; a client whose state is larger stays. */
#define TKO_REC_MAX     (160u * 1024u)
#define TKO_MAX_LISTEN  64
#define TKO_READY_SECS  60 /* the new process's start-up (control plane, workers) */
#define TKO_LISTEN_SECS 30 /* the old process stopping its admin server and control plane */

enum tko_type {
	TKO_HELLO = 'H',
	TKO_LISTEN = 'L',
	TKO_READY = 'R',
	TKO_CLIENT = 'C',
	TKO_SERVER = 'S', /* an idle pooled server (transaction pooling) */
	TKO_END = 'E',
	TKO_CANCEL = 'K', /* new -> old: a CancelRequest for a client still there */
	TKO_REFUSED = 'X',
};

int g_tko_handing;

struct tko_rec {
	struct tko_rec *next;
	int fd[2]; /* the client's socket, its session's server's (or -1) */
	int nfd;
	size_t len;
	uint8_t data[];
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;        /* the listening takeover socket, -1: none */
	int conn;       /* the takeover in progress, -1: none */
	pid_t peer_pid; /* old side: who asked */
	bool pending;   /* old side: asked, main not told yet */
	bool finishing; /* old side: no more records will be queued */
	bool send_dead; /* old side: the new process stopped taking records */
	bool sender_on; /* old side: the sender thread runs */
	pthread_t sender;
	bool canceler_on; /* old side: the thread taking CancelRequests runs */
	pthread_t canceler;
	struct tko_rec *head, *tail;
	unsigned sent, sent_servers;
	/* new side */
	int tcp_fds[TKO_MAX_LISTEN];
	int n_tcp;
	int unix_fd;
	bool adopting;
	unsigned adopted, adopted_servers;
	int next_worker;
} T = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .lfd = -1,
    .conn = -1,
    .unix_fd = -1,
};

/* ------------------------------------------------------------ records */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void w_put(struct wbuf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void w_u32(struct wbuf *b, uint32_t v)
{
	w_put(b, &v, sizeof(v));
}

static void w_blob(struct wbuf *b, const void *p, uint32_t n)
{
	w_u32(b, n);
	w_put(b, p, n);
}

/* A string with its NUL (the reader hands out pointers into the record). */
static void w_str(struct wbuf *b, const char *s)
{
	w_blob(b, s ? s : "", (uint32_t)strlen(s ? s : "") + 1);
}

struct rbuf {
	const uint8_t *p;
	size_t len, pos;
	bool bad;
};

static uint32_t r_u32(struct rbuf *b)
{
	uint32_t v = 0;
	if (b->bad || b->len - b->pos < sizeof(v)) {
		b->bad = true;
		return 0;
	}
	memcpy(&v, b->p + b->pos, sizeof(v));
	b->pos += sizeof(v);
	return v;
}

static const uint8_t *r_blob(struct rbuf *b, uint32_t *n)
{
	*n = r_u32(b);
	if (b->bad || b->len - b->pos < *n) {
		b->bad = true;
		*n = 0;
		return NULL;
	}
	const uint8_t *p = b->p + b->pos;
	b->pos += *n;
	return p;
}

static const char *r_str(struct rbuf *b)
{
	uint32_t n;
	const uint8_t *p = r_blob(b, &n);
	if (!p || n == 0 || p[n - 1] != 0) {
		b->bad = true;
		return "";
	}
	return (const char *)p;
}

/* The client's state as the new process needs it to go on (cl_can_move
 * said it can move: idle, no server, nothing half-way). */
static int pack_client(const struct client *cl, struct wbuf *b)
{
	uint8_t type = TKO_CLIENT;
	w_put(b, &type, 1);
	w_u32(b, TKO_VERSION);
	w_str(b, cl->user);
	w_str(b, cl->database);
	w_str(b, cl->peer);
	const struct server *sv = cl->txn ? NULL : cl->server;
	w_u32(b, (cl->is_unix ? 1u : 0u) | (cl->stmt_mode ? 2u : 0u) |
	             (cl->have_client_key ? 4u : 0u) | (cl->password ? 8u : 0u) |
	             (cl->server_password ? 16u : 0u) | (sv ? 32u : 0u));
	w_u32(b, (uint32_t)cl->signature);
	w_u32(b, (uint32_t)(cl->signature >> 32));
	w_u32(b, cl->cancel_pid);
	w_u32(b, cl->cancel_key);
	w_u32(b, (uint32_t)cl->auth_method);
	w_blob(b, cl->client_key, sizeof(cl->client_key));
	w_str(b, cl->password);
	w_str(b, cl->server_password);
	w_str(b, cl->jwt_tenant);
	w_u32(b, (uint32_t)cl->n_params);
	for (int i = 0; i < cl->n_params; i++) {
		w_str(b, cl->params[i].name);
		w_str(b, cl->params[i].value);
	}
	w_u32(b, (uint32_t)cl->want.n);
	for (int i = 0; i < cl->want.n; i++) {
		w_str(b, cl->want.e[i].name);
		w_str(b, cl->want.e[i].value);
		w_u32(b, cl->want.e[i].is_stmt);
	}
	w_u32(b, cl->prep.count);
	for (uint32_t i = 0; i < cl->prep.nbuckets; i++)
		for (const struct prep_stmt *s = cl->prep.buckets[i]; s; s = s->next) {
			w_str(b, s->name);
			w_blob(b, s->body, s->body_len);
		}
	if (sv) {
		const struct cfg *c = cl->snap->cfg;
		if (sv->node_idx < 0 || (size_t)sv->node_idx >= c->n_nodes)
			return -EINVAL;
		w_str(b, c->nodes[sv->node_idx].name);
		w_str(b, sv->node_host);
		w_u32(b, (uint32_t)sv->node_port);
		w_u32(b, sv->backend_pid);
		w_u32(b, sv->backend_key);
		struct timespec now;
		conn_now(&now);
		w_u32(b, (uint32_t)(now.tv_sec - sv->created.tv_sec));
		w_u32(b, (uint32_t)sv->n_params);
		for (int i = 0; i < sv->n_params; i++) {
			w_str(b, sv->param_name[i]);
			w_str(b, sv->param_value[i]);
		}
	}
	return b->oom ? -ENOMEM : 0;
}

void cl_moved_free(struct cl_moved *m)
{
	free(m->pnames);
	free(m->sv.pnames);
	free(m->want);
	free(m->prep);
	memset(m, 0, sizeof(*m));
}

/* An idle transaction-pooling server: who it is logged in as, what the
 * proxy knows of its session (applied settings, prepared statement keys). */
static int pack_server(const struct server *sv, const char *node, struct wbuf *b)
{
	uint8_t type = TKO_SERVER;
	w_put(b, &type, 1);
	w_u32(b, TKO_VERSION);
	w_str(b, node);
	w_str(b, sv->node_host);
	w_u32(b, (uint32_t)sv->node_port);
	w_str(b, sv->user);
	w_str(b, sv->database);
	w_u32(b, sv->backend_pid);
	w_u32(b, sv->backend_key);
	w_u32(b, (uint32_t)sv->signature);
	w_u32(b, (uint32_t)(sv->signature >> 32));
	struct timespec now;
	conn_now(&now);
	w_u32(b, (uint32_t)(now.tv_sec - sv->created.tv_sec));
	w_u32(b, sv->last_client != 0);
	w_u32(b, (uint32_t)sv->n_params);
	for (int i = 0; i < sv->n_params; i++) {
		w_str(b, sv->param_name[i]);
		w_str(b, sv->param_value[i]);
	}
	w_u32(b, (uint32_t)sv->applied.n);
	for (int i = 0; i < sv->applied.n; i++) {
		w_str(b, sv->applied.e[i].name);
		w_str(b, sv->applied.e[i].value);
		w_u32(b, sv->applied.e[i].is_stmt);
	}
	w_u32(b, sv->prep.n);
	for (uint32_t i = 0; i < sv->prep.n; i++) {
		w_u32(b, (uint32_t)sv->prep.keys[i]);
		w_u32(b, (uint32_t)(sv->prep.keys[i] >> 32));
	}
	return b->oom ? -ENOMEM : 0;
}

void sv_moved_free(struct sv_moved *m)
{
	free(m->pnames);
	free(m->applied);
	free(m->keys);
	memset(m, 0, sizeof(*m));
}

int tko_parse_server(const uint8_t *rec, size_t len, struct sv_moved *m)
{
	struct rbuf b = {.p = rec, .len = len, .pos = 1};
	memset(m, 0, sizeof(*m));
	if (len < 1 || rec[0] != TKO_SERVER || r_u32(&b) != TKO_VERSION)
		return -EPROTO;
	m->node = r_str(&b);
	m->host = r_str(&b);
	m->port = r_u32(&b);
	m->user = r_str(&b);
	m->database = r_str(&b);
	m->backend_pid = r_u32(&b);
	m->backend_key = r_u32(&b);
	uint32_t lo = r_u32(&b);
	m->signature = (uint64_t)r_u32(&b) << 32 | lo;
	m->age_secs = r_u32(&b);
	m->served = r_u32(&b) != 0;
	m->n_params = r_u32(&b);
	if (b.bad || m->n_params > SV_MAX_PARAMS)
		return -EPROTO;
	m->pnames = calloc(2 * (size_t)m->n_params + 1, sizeof(char *));
	if (!m->pnames)
		return -ENOMEM;
	m->pvalues = m->pnames + m->n_params;
	for (uint32_t i = 0; i < m->n_params; i++) {
		m->pnames[i] = r_str(&b);
		m->pvalues[i] = r_str(&b);
	}
	m->n_applied = r_u32(&b);
	if (b.bad || m->n_applied > GUC_MAX)
		goto bad;
	m->applied = calloc(m->n_applied + 1, sizeof(*m->applied));
	if (!m->applied)
		goto oom;
	for (uint32_t i = 0; i < m->n_applied; i++) {
		m->applied[i].name = r_str(&b);
		m->applied[i].value = r_str(&b);
		m->applied[i].is_stmt = r_u32(&b) != 0;
	}
	m->n_keys = r_u32(&b);
	if (b.bad || m->n_keys > len)
		goto bad;
	m->keys = calloc(m->n_keys + 1, sizeof(*m->keys));
	if (!m->keys)
		goto oom;
	for (uint32_t i = 0; i < m->n_keys; i++) {
		uint32_t klo = r_u32(&b);
		m->keys[i] = (uint64_t)r_u32(&b) << 32 | klo;
	}
	if (b.bad || b.pos != len)
		goto bad;
	return 0;
bad:
	sv_moved_free(m);
	return -EPROTO;
oom:
	sv_moved_free(m);
	return -ENOMEM;
}

int tko_pack_client(const struct client *cl, uint8_t **out, size_t *len)
{
	struct wbuf b = {0};
	int r = pack_client(cl, &b);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* A CLIENT record into m (pointers into rec, which must outlive m). */
int tko_parse_client(const uint8_t *rec, size_t len, struct cl_moved *m)
{
	struct rbuf b = {.p = rec, .len = len, .pos = 1};
	memset(m, 0, sizeof(*m));
	if (len < 1 || rec[0] != TKO_CLIENT || r_u32(&b) != TKO_VERSION)
		return -EPROTO;
	m->user = r_str(&b);
	m->database = r_str(&b);
	m->peer = r_str(&b);
	uint32_t flags = r_u32(&b);
	m->is_unix = flags & 1u;
	m->stmt_mode = flags & 2u;
	m->have_client_key = flags & 4u;
	m->session = flags & 32u;
	uint32_t lo = r_u32(&b);
	m->signature = (uint64_t)r_u32(&b) << 32 | lo;
	m->cancel_pid = r_u32(&b);
	m->cancel_key = r_u32(&b);
	m->auth_method = (int)r_u32(&b);
	uint32_t kn;
	const uint8_t *key = r_blob(&b, &kn);
	if (key && kn == sizeof(m->client_key))
		memcpy(m->client_key, key, kn);
	else
		b.bad = true;
	m->password = r_str(&b);
	m->server_password = r_str(&b);
	if (!(flags & 8u))
		m->password = NULL;
	if (!(flags & 16u))
		m->server_password = NULL;
	m->jwt_tenant = r_str(&b);
	m->n_params = r_u32(&b);
	if (b.bad || m->n_params > PGW_MAX_PARAMS)
		return -EPROTO;
	m->pnames = calloc(2 * (size_t)m->n_params + 1, sizeof(char *));
	if (!m->pnames)
		return -ENOMEM;
	m->pvalues = m->pnames + m->n_params;
	for (uint32_t i = 0; i < m->n_params; i++) {
		m->pnames[i] = r_str(&b);
		m->pvalues[i] = r_str(&b);
	}
	m->n_want = r_u32(&b);
	if (b.bad || m->n_want > GUC_MAX)
		goto bad;
	m->want = calloc(m->n_want + 1, sizeof(*m->want));
	if (!m->want)
		goto oom;
	for (uint32_t i = 0; i < m->n_want; i++) {
		m->want[i].name = r_str(&b);
		m->want[i].value = r_str(&b);
		m->want[i].is_stmt = r_u32(&b) != 0;
	}
	m->n_prep = r_u32(&b);
	if (b.bad || m->n_prep > len)
		goto bad;
	m->prep = calloc(m->n_prep + 1, sizeof(*m->prep));
	if (!m->prep)
		goto oom;
	for (uint32_t i = 0; i < m->n_prep; i++) {
		m->prep[i].name = r_str(&b);
		m->prep[i].body = r_blob(&b, &m->prep[i].len);
	}
	if (m->session) {
		m->sv.node = r_str(&b);
		m->sv.host = r_str(&b);
		m->sv.port = r_u32(&b);
		m->sv.backend_pid = r_u32(&b);
		m->sv.backend_key = r_u32(&b);
		m->sv.age_secs = r_u32(&b);
		m->sv.n_params = r_u32(&b);
		if (b.bad || m->sv.n_params > SV_MAX_PARAMS)
			goto bad;
		m->sv.pnames = calloc(2 * (size_t)m->sv.n_params + 1, sizeof(char *));
		if (!m->sv.pnames)
			goto oom;
		m->sv.pvalues = m->sv.pnames + m->sv.n_params;
		for (uint32_t i = 0; i < m->sv.n_params; i++) {
			m->sv.pnames[i] = r_str(&b);
			m->sv.pvalues[i] = r_str(&b);
		}
	}
	if (b.bad || b.pos != len)
		goto bad;
	return 0;
bad:
	cl_moved_free(m);
	return -EPROTO;
oom:
	cl_moved_free(m);
	return -ENOMEM;
}

/* ------------------------------------------------------------ socket I/O */

/* One message with up to n fds. */
static int send_msg(int s, const void *p, size_t len, const int *fds, int n)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * (TKO_MAX_LISTEN + 1))];
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	}
	for (;;) {
		ssize_t r = sendmsg(s, &mh, MSG_NOSIGNAL);
		if (r >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* One message into buf (cap), its fds into fds (up to *n; *n gets how
 * many came). Returns its length, 0 at EOF, or -errno. */
static ssize_t recv_msg(int s, void *buf, size_t cap, int *fds, int *n)
{
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * (TKO_MAX_LISTEN + 1))];
	} u;
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = u.buf,
	                    .msg_controllen = sizeof(u.buf)};
	int want = n ? *n : 0;
	if (n)
		*n = 0;
	ssize_t r;
	do
		r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *got = (int *)CMSG_DATA(c);
		for (int i = 0; i < k; i++) {
			if (n && *n < want)
				fds[(*n)++] = got[i];
			else
				close(got[i]); /* more than asked for: not ours to keep */
		}
	}
	if (mh.msg_flags & MSG_TRUNC)
		return -EMSGSIZE;
	return r;
}

static void set_timeout(int s, int secs)
{
	struct timeval tv = {.tv_sec = secs};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int tko_socket_path(const struct cfg *c, char *buf, size_t cap)
{
	char dir[CFG_PATH_MAX], host[CFG_HOST_MAX];
	uint16_t port = 0;
	if (rundir_current(c->state_dir, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	if (cfg_parse_address(c->listen_address, host, sizeof(host), &port) < 0)
		port = 0;
	int n = snprintf(buf, cap, "%s/heliosproxy-%u.takeover", dir, (unsigned)port);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ------------------------------------------------------------ the new process */

int tko_request(const struct cfg *c, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (tko_socket_path(c, sa.sun_path, sizeof(sa.sun_path)) < 0) {
		snprintf(err, errlen,
		         "--takeover: the run directory's path is too long for a socket");
		return -ENAMETOOLONG;
	}
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		snprintf(err, errlen,
		         "--takeover: no running heliosproxy answers on %s: %s (is it running with "
		         "the same listen_address and state_dir?)",
		         sa.sun_path, strerror(errno));
		if (s >= 0)
			close(s);
		return r;
	}
	uint8_t hello[9] = {TKO_HELLO};
	uint32_t magic = TKO_MAGIC, ver = TKO_VERSION;
	memcpy(hello + 1, &magic, 4);
	memcpy(hello + 5, &ver, 4);
	set_timeout(s, TKO_LISTEN_SECS);
	int r = send_msg(s, hello, sizeof(hello), NULL, 0);
	uint8_t buf[2 * CFG_PATH_MAX + 64];
	int fds[TKO_MAX_LISTEN + 1], nfd = TKO_MAX_LISTEN + 1;
	ssize_t n = r < 0 ? r : recv_msg(s, buf, sizeof(buf) - 1, fds, &nfd);
	if (n <= 0 || buf[0] != TKO_LISTEN) {
		for (int i = 0; i < nfd; i++)
			close(fds[i]);
		if (n > 0 && buf[0] == TKO_REFUSED) {
			buf[n] = 0;
			snprintf(err, errlen, "--takeover: the running heliosproxy refused: %s",
			         (char *)buf + 1);
		} else {
			snprintf(
			    err, errlen,
			    "--takeover: the running heliosproxy did not hand its sockets over: %s",
			    n < 0 ? strerror((int)-n) : "unexpected answer");
		}
		close(s);
		return -EPROTO;
	}
	struct rbuf b = {.p = buf, .len = (size_t)n, .pos = 1};
	const char *laddr = r_str(&b);
	const char *udir = r_str(&b);
	uint32_t n_tcp = r_u32(&b), has_unix = r_u32(&b);
	if (b.bad || n_tcp + (has_unix ? 1 : 0) != (uint32_t)nfd) {
		for (int i = 0; i < nfd; i++)
			close(fds[i]);
		snprintf(err, errlen, "--takeover: malformed answer from the running heliosproxy");
		close(s);
		return -EPROTO;
	}
	T.n_tcp = 0;
	if (!strcmp(laddr, c->listen_address)) {
		memcpy(T.tcp_fds, fds, sizeof(int) * n_tcp);
		T.n_tcp = (int)n_tcp;
	} else {
		log_warn("takeover: listen_address changed (%s -> %s): listening anew, the old "
		         "process's sockets close with it",
		         laddr, c->listen_address);
		for (uint32_t i = 0; i < n_tcp; i++)
			close(fds[i]);
	}
	if (has_unix) {
		if (!strcmp(udir, c->unix_socket_dir))
			T.unix_fd = fds[n_tcp];
		else
			close(fds[n_tcp]);
	}
	T.conn = s;
	T.adopting = true;
	log_info("takeover: the running heliosproxy handed over %u listening socket%s%s", n_tcp,
	         n_tcp == 1 ? "" : "s", T.unix_fd >= 0 ? " and its Unix socket" : "");
	return 0;
}

int tko_take_listen_fd(int idx)
{
	int fd = -1;
	if (idx < 0) {
		fd = T.unix_fd;
		T.unix_fd = -1;
	} else if (idx < T.n_tcp) {
		fd = T.tcp_fds[idx];
		T.tcp_fds[idx] = -1;
	}
	return fd;
}

int tko_forward_cancel(uint32_t pid, uint32_t key)
{
	uint8_t m[9] = {TKO_CANCEL};
	memcpy(m + 1, &pid, 4);
	memcpy(m + 5, &key, 4);
	int r = -ENOTCONN;
	pthread_mutex_lock(&T.mu);
	if (T.conn >= 0 && __atomic_load_n(&T.adopting, __ATOMIC_ACQUIRE))
		r = send(T.conn, m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
	pthread_mutex_unlock(&T.mu);
	return r;
}

bool tko_adopting(void)
{
	return __atomic_load_n(&T.adopting, __ATOMIC_ACQUIRE);
}

struct adopt_msg {
	struct worker_msg m;
	int fd, sfd;
	size_t len;
	uint8_t rec[];
};

static void adopt_run(struct worker *w, struct worker_msg *m)
{
	struct adopt_msg *a = (struct adopt_msg *)m;
	if (a->rec[0] == TKO_SERVER) {
		struct sv_moved sm;
		int r = tko_parse_server(a->rec, a->len, &sm);
		if (r < 0) {
			log_error("takeover: a server's record could not be read (%s): closing it",
			          strerror(-r));
			close(a->fd);
		} else {
			sv_adopt_idle(w, a->fd, &sm);
			sv_moved_free(&sm);
		}
		free(a);
		return;
	}
	struct cl_moved mv;
	int r = tko_parse_client(a->rec, a->len, &mv);
	if (r < 0) {
		log_error("takeover: a client's record could not be read (%s): closing it",
		          strerror(-r));
		close(a->fd);
		if (a->sfd >= 0)
			close(a->sfd);
	} else {
		cl_adopt(w, a->fd, a->sfd, &mv);
		cl_moved_free(&mv);
	}
	free(a);
}

static void serve_path(const char *path);

/* The new process: CLIENT records until END, each posted to a worker in
 * turn; then this process serves the next takeover. */
static void *receiver(void *arg)
{
	(void)arg;
	int s = T.conn;
	uint8_t *buf = malloc(TKO_REC_MAX + 1);
	bool ended = false;
	set_timeout(s, 0);
	while (buf) {
		int fds[2] = {-1, -1}, nfd = 2;
		ssize_t n = recv_msg(s, buf, TKO_REC_MAX + 1, fds, &nfd);
		if (n <= 0) {
			log_error("takeover: the old process went away before it said END (%s)",
			          n < 0 ? strerror((int)-n) : "end of file");
			break;
		}
		if (buf[0] == TKO_END) {
			ended = true;
			break;
		}
		if ((buf[0] != TKO_CLIENT && buf[0] != TKO_SERVER) || nfd < 1) {
			for (int i = 0; i < nfd; i++)
				close(fds[i]);
			log_error("takeover: unexpected record '%c' from the old process", buf[0]);
			continue;
		}
		struct adopt_msg *a = malloc(sizeof(*a) + (size_t)n);
		int nw = workers_started();
		if (!a || nw < 1) {
			free(a);
			for (int i = 0; i < nfd; i++)
				close(fds[i]);
			continue;
		}
		a->m = (struct worker_msg){.fn = adopt_run};
		a->fd = fds[0];
		a->sfd = nfd > 1 ? fds[1] : -1;
		a->len = (size_t)n;
		memcpy(a->rec, buf, (size_t)n);
		struct worker *w = &g_workers[T.next_worker++ % nw];
		if (worker_post(w, &a->m) < 0) {
			for (int i = 0; i < nfd; i++)
				close(fds[i]);
			free(a);
			continue;
		}
		if (buf[0] == TKO_SERVER)
			T.adopted_servers++;
		else
			T.adopted++;
	}
	free(buf);
	pthread_mutex_lock(&T.mu);
	close(s);
	T.conn = -1;
	pthread_mutex_unlock(&T.mu);
	log_info("takeover %s: %u client%s moved in from the old process, with %u idle server%s",
	         ended ? "complete" : "ended early", T.adopted, T.adopted == 1 ? "" : "s",
	         T.adopted_servers, T.adopted_servers == 1 ? "" : "s");
	__atomic_store_n(&T.adopting, false, __ATOMIC_RELEASE);
	serve_path(T.path);
	return NULL;
}

int tko_ready(const struct cfg *c, char *err, size_t errlen)
{
	for (int i = 0; i < T.n_tcp; i++)
		if (T.tcp_fds[i] >= 0) {
			/* fewer workers than the old process had: its extra
			 * SO_REUSEPORT sockets close with it */
			close(T.tcp_fds[i]);
			T.tcp_fds[i] = -1;
		}
	if (T.unix_fd >= 0) {
		close(T.unix_fd);
		T.unix_fd = -1;
	}
	if (tko_socket_path(c, T.path, sizeof(T.path)) < 0)
		T.path[0] = 0;
	uint8_t ready = TKO_READY;
	int r = send_msg(T.conn, &ready, 1, NULL, 0);
	pthread_t th;
	if (r < 0 || pthread_create(&th, NULL, receiver, NULL) != 0) {
		snprintf(err, errlen, "takeover: cannot tell the old process we run: %s",
		         strerror(r < 0 ? -r : EAGAIN));
		close(T.conn);
		T.conn = -1;
		__atomic_store_n(&T.adopting, false, __ATOMIC_RELEASE);
		serve_path(T.path);
		return r < 0 ? r : -EAGAIN;
	}
	pthread_detach(th);
	return 0;
}

/* ------------------------------------------------------------ the running process */

static void refuse(int s, const char *why)
{
	uint8_t buf[256] = {TKO_REFUSED};
	size_t n = strlen(why);
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	memcpy(buf + 1, why, n);
	(void)send_msg(s, buf, n + 1, NULL, 0);
	close(s);
}

static void *listener(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* closed at exit */
		}
		struct ucred uc;
		socklen_t ul = sizeof(uc);
		if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 ||
		    (uc.uid != geteuid() && uc.uid != 0)) {
			log_warn(
			    "takeover: refused a request from uid %d (not this process's user)",
			    (int)uc.uid);
			refuse(s, "not the proxy's user");
			continue;
		}
		set_timeout(s, 5);
		uint8_t hello[16];
		ssize_t n = recv_msg(s, hello, sizeof(hello), NULL, NULL);
		uint32_t magic = 0, ver = 0;
		if (n == 9) {
			memcpy(&magic, hello + 1, 4);
			memcpy(&ver, hello + 5, 4);
		}
		if (n != 9 || hello[0] != TKO_HELLO || magic != TKO_MAGIC) {
			refuse(s, "not a takeover request");
			continue;
		}
		if (ver != TKO_VERSION) {
			refuse(s, "takeover protocol version differs");
			continue;
		}
		pthread_mutex_lock(&T.mu);
		bool busy = T.conn >= 0 || __atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE);
		if (!busy) {
			T.conn = s;
			T.peer_pid = uc.pid;
			T.pending = true;
		}
		pthread_mutex_unlock(&T.mu);
		if (busy) {
			refuse(s, "this process is already shutting down or being taken over");
			continue;
		}
		kill(getpid(), SIGUSR2); /* the main thread's sigwait */
	}
	return NULL;
}

static void serve_path(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path[0] || strlen(path) >= sizeof(sa.sun_path)) {
		log_warn("takeover: no socket (the run directory's path is too long): "
		         "--takeover will not find this process");
		return;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(T.path, sizeof(T.path), "%s", path);
	/* the run directory exists when the in-process control plane made
	 * it; with control_socket or control_address set, make it here */
	char dir[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0700) == 0)
			log_info("takeover: created the run directory %s", dir);
	}
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	mode_t old = umask(0077);
	unlink(sa.sun_path); /* a previous process's, stale or handing over to us */
	int r = s < 0 ? -1 : bind(s, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	pthread_t th;
	if (r < 0 || listen(s, 4) < 0 ||
	    pthread_create(&th, NULL, listener, (void *)(intptr_t)s) != 0) {
		log_warn("takeover: cannot listen on %s: %s: --takeover will not find this process",
		         sa.sun_path, strerror(errno));
		if (s >= 0)
			close(s);
		return;
	}
	pthread_detach(th);
	T.lfd = s;
}

void tko_serve(const struct cfg *c)
{
	char path[sizeof(T.path)];
	if (tko_socket_path(c, path, sizeof(path)) < 0)
		path[0] = 0;
	serve_path(path);
}

pid_t tko_pending(void)
{
	pthread_mutex_lock(&T.mu);
	pid_t p = T.pending ? T.peer_pid : 0;
	T.pending = false;
	pthread_mutex_unlock(&T.mu);
	return p;
}

static void takeover_failed(void)
{
	pthread_mutex_lock(&T.mu);
	if (T.conn >= 0)
		close(T.conn);
	T.conn = -1;
	pthread_mutex_unlock(&T.mu);
}

/* The old process: queued CLIENT records go out in order; END once the
 * workers are done. */
static void *sender(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&T.mu);
	for (;;) {
		while (!T.head && !T.finishing)
			pthread_cond_wait(&T.cv, &T.mu);
		struct tko_rec *r = T.head;
		if (!r)
			break;
		T.head = r->next;
		if (!T.head)
			T.tail = NULL;
		pthread_mutex_unlock(&T.mu);
		uint8_t type = r->data[0];
		int e = T.send_dead ? -EPIPE : send_msg(T.conn, r->data, r->len, r->fd, r->nfd);
		if (e < 0 && !T.send_dead) {
			log_error(
			    "takeover: the new process stopped taking clients (%s): those not "
			    "sent yet are disconnected",
			    strerror(-e));
			__atomic_store_n(&T.send_dead, true, __ATOMIC_RELEASE);
		}
		for (int i = 0; i < r->nfd; i++)
			close(r->fd[i]);
		explicit_bzero(r->data, r->len); /* passwords, client keys */
		free(r);
		pthread_mutex_lock(&T.mu);
		if (e == 0 && type == TKO_SERVER)
			T.sent_servers++;
		else if (e == 0)
			T.sent++;
	}
	pthread_mutex_unlock(&T.mu);
	uint8_t end = TKO_END;
	if (!T.send_dead)
		(void)send_msg(T.conn, &end, 1, NULL, 0);
	return NULL;
}

struct cancel_msg {
	struct worker_msg m;
	uint32_t pid, key;
};

static void cancel_run(struct worker *w, struct worker_msg *m)
{
	struct cancel_msg *c = (struct cancel_msg *)m;
	cancel_forward(w, c->pid, c->key);
	free(c);
}

/* The old process: CancelRequests the new one got for clients still here
 * (finishing a transaction, TLS): forwarded from the client's worker, as if
 * they had come here. Ends when the connection closes (tko_finish). */
static void *canceler(void *arg)
{
	(void)arg;
	uint8_t m[16];
	for (;;) {
		ssize_t n = recv(T.conn, m, sizeof(m), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (n != 9 || m[0] != TKO_CANCEL)
			continue;
		struct cancel_msg *c = malloc(sizeof(*c));
		if (!c)
			continue;
		c->m = (struct worker_msg){.fn = cancel_run};
		memcpy(&c->pid, m + 1, 4);
		memcpy(&c->key, m + 5, 4);
		/* on the client's own worker: a worker without clients may have
		 * ended its loop already while this one drains */
		struct worker *w = cancel_worker_of(c->pid, c->key);
		if (!w || worker_post(w, &c->m) < 0)
			free(c);
	}
	return NULL;
}

int tko_hand_listeners(char *err, size_t errlen)
{
	int fds[TKO_MAX_LISTEN + 1], n = 0, nw = workers_started();
	for (int i = 0; i < nw && n < TKO_MAX_LISTEN; i++)
		if (cw_of(&g_workers[i])->listen_fd >= 0)
			fds[n++] = cw_of(&g_workers[i])->listen_fd;
	int n_tcp = n;
	int ufd = nw > 0 ? cw_of(&g_workers[0])->unix_fd : -1;
	if (ufd >= 0)
		fds[n++] = ufd;
	struct snap *sn = snap_current();
	struct wbuf b = {0};
	uint8_t type = TKO_LISTEN;
	w_put(&b, &type, 1);
	w_str(&b, sn->cfg->listen_address);
	w_str(&b, sn->cfg->unix_socket_dir);
	w_u32(&b, (uint32_t)n_tcp);
	w_u32(&b, ufd >= 0);
	snap_unref(sn);
	int r = b.oom ? -ENOMEM : send_msg(T.conn, b.p, b.len, fds, n);
	free(b.p);
	if (r < 0) {
		snprintf(err, errlen, "cannot send the listening sockets: %s", strerror(-r));
		takeover_failed();
		return r;
	}
	set_timeout(T.conn, TKO_READY_SECS);
	uint8_t ready[8];
	ssize_t got = recv_msg(T.conn, ready, sizeof(ready), NULL, NULL);
	if (got != 1 || ready[0] != TKO_READY) {
		snprintf(err, errlen, "the new process did not start (%s)",
		         got < 0    ? strerror((int)-got)
		         : got == 0 ? "it went away"
		                    : "bad answer");
		takeover_failed();
		return -EIO;
	}
	set_timeout(T.conn, 30); /* a send that blocks this long: the new one is stuck */
	if (pthread_create(&T.sender, NULL, sender, NULL) != 0) {
		snprintf(err, errlen, "cannot start the takeover sender thread");
		takeover_failed();
		return -EAGAIN;
	}
	T.sender_on = true;
	struct timeval tv = {0}; /* the canceler waits as long as it takes */
	setsockopt(T.conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	T.canceler_on = pthread_create(&T.canceler, NULL, canceler, NULL) == 0;
	return 0;
}

int tko_queue_client(struct client *cl)
{
	if (__atomic_load_n(&T.send_dead, __ATOMIC_ACQUIRE))
		return -EPIPE;
	struct wbuf b = {0};
	int r = pack_client(cl, &b);
	if (!r && b.len > TKO_REC_MAX)
		r = -EMSGSIZE;
	struct tko_rec *rec = r ? NULL : malloc(sizeof(*rec) + b.len);
	const struct server *sv = cl->txn ? NULL : cl->server;
	int fd = rec ? dup(cl->ep.sock.fd) : -1;
	int sfd = fd >= 0 && sv ? dup(sv->ep.sock.fd) : -1;
	if (r == 0 && (fd < 0 || (sv && sfd < 0)))
		r = rec ? -errno : -ENOMEM;
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		if (sfd >= 0)
			close(sfd);
		free(rec);
		if (b.p)
			explicit_bzero(b.p, b.len);
		free(b.p);
		return r;
	}
	rec->next = NULL;
	rec->fd[0] = fd;
	rec->fd[1] = sfd;
	rec->nfd = sv ? 2 : 1;
	rec->len = b.len;
	memcpy(rec->data, b.p, b.len);
	explicit_bzero(b.p, b.len);
	free(b.p);
	pthread_mutex_lock(&T.mu);
	if (T.tail)
		T.tail->next = rec;
	else
		T.head = rec;
	T.tail = rec;
	pthread_cond_signal(&T.cv);
	pthread_mutex_unlock(&T.mu);
	return 0;
}

static void queue_rec(struct tko_rec *rec)
{
	pthread_mutex_lock(&T.mu);
	if (T.tail)
		T.tail->next = rec;
	else
		T.head = rec;
	T.tail = rec;
	pthread_cond_signal(&T.cv);
	pthread_mutex_unlock(&T.mu);
}

int tko_queue_server(struct server *sv, const char *node)
{
	if (__atomic_load_n(&T.send_dead, __ATOMIC_ACQUIRE))
		return -EPIPE;
	struct wbuf b = {0};
	int r = pack_server(sv, node, &b);
	if (!r && b.len > TKO_REC_MAX)
		r = -EMSGSIZE;
	struct tko_rec *rec = r ? NULL : malloc(sizeof(*rec) + b.len);
	int fd = rec ? dup(sv->ep.sock.fd) : -1;
	if (r == 0 && fd < 0)
		r = rec ? -errno : -ENOMEM;
	if (r < 0) {
		free(rec);
		free(b.p);
		return r;
	}
	rec->next = NULL;
	rec->fd[0] = fd;
	rec->fd[1] = -1;
	rec->nfd = 1;
	rec->len = b.len;
	memcpy(rec->data, b.p, b.len);
	free(b.p);
	queue_rec(rec);
	return 0;
}

void tko_finish(void)
{
	if (!T.sender_on)
		return;
	pthread_mutex_lock(&T.mu);
	T.finishing = true;
	pthread_cond_signal(&T.cv);
	pthread_mutex_unlock(&T.mu);
	pthread_join(T.sender, NULL);
	T.sender_on = false;
	if (T.canceler_on) {
		shutdown(T.conn, SHUT_RD); /* its recv returns 0 */
		pthread_join(T.canceler, NULL);
		T.canceler_on = false;
	}
	log_info("takeover: %u client%s handed over to the new process, with %u idle server%s",
	         T.sent, T.sent == 1 ? "" : "s", T.sent_servers, T.sent_servers == 1 ? "" : "s");
	takeover_failed(); /* closes the connection */
}

void tko_close(void)
{
	if (T.lfd < 0)
		return;
	/* the path is the new process's by now when it took over */
	if (!__atomic_load_n(&g_tko_handing, __ATOMIC_ACQUIRE))
		unlink(T.path);
	shutdown(T.lfd, SHUT_RDWR);
}
