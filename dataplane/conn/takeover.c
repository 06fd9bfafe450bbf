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
#include "dataplane/conn/takeover_rec.h"
#include "dataplane/policy/snap.h"
#include "dataplane/pool/pool.h"

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
	struct tko_rbuf b = {.p = buf, .len = (size_t)n, .pos = 1};
	const char *laddr = tko_r_str(&b);
	const char *udir = tko_r_str(&b);
	uint32_t n_tcp = tko_r_u32(&b), has_unix = tko_r_u32(&b);
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
	struct tko_wbuf b = {0};
	uint8_t type = TKO_LISTEN;
	tko_w_put(&b, &type, 1);
	tko_w_str(&b, sn->cfg->listen_address);
	tko_w_str(&b, sn->cfg->unix_socket_dir);
	tko_w_u32(&b, (uint32_t)n_tcp);
	tko_w_u32(&b, ufd >= 0);
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

/* rec onto the sender's queue. */
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

int tko_queue_client(struct client *cl)
{
	if (__atomic_load_n(&T.send_dead, __ATOMIC_ACQUIRE))
		return -EPIPE;
	struct tko_wbuf b = {0};
	int r = tko_pack_client_into(cl, &b);
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
	queue_rec(rec);
	return 0;
}

int tko_queue_server(struct server *sv, const char *node)
{
	if (__atomic_load_n(&T.send_dead, __ATOMIC_ACQUIRE))
		return -EPIPE;
	struct tko_wbuf b = {0};
	int r = tko_pack_server_into(sv, node, &b);
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

void tko_hand_pools(void)
{
	if (!T.sender_on)
		return;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p))
		sv_pool_hand_idle(NULL, p);
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
