/*
 * epoll backend: level-triggered readiness turned into the same
 * completions the io_uring backend gives. A socket is in the epoll set only
 * while it wants something, so a paused or idle socket cannot make the
 * loop spin on EPOLLHUP.
 */
#include "dataplane/io/io_internal.h"

#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS   256
#define ACCEPT_BATCH 64

int io_epoll_backend_init(struct io_loop *l)
{
	l->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep_fd < 0)
		return -errno;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(l->ep_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		int r = -errno;
		close(l->ep_fd);
		return r;
	}
	for (uint32_t i = 0; i < IO_BUF_COUNT; i++) {
		l->chunks[i].next = l->free_list;
		l->free_list = &l->chunks[i];
	}
	l->free_bufs = IO_BUF_COUNT;
	return 0;
}

void io_epoll_backend_fini(struct io_loop *l)
{
	if (l->ep_fd >= 0)
		close(l->ep_fd);
}

void iep_update(struct io_sock *s)
{
	struct io_loop *l = s->loop;
	uint32_t want = 0;
	if (!(s->flags & IO_F_CLOSING) && s->loop) {
		if ((s->flags & IO_F_RECV_WANT) && !(s->flags & IO_F_NOBUFS))
			want |= EPOLLIN | ((s->flags & IO_F_LISTEN) ? 0 : EPOLLRDHUP);
		else if (s->flags & IO_F_HUP_WATCH)
			want |= EPOLLRDHUP; /* no EPOLLIN: the kernel moves the bytes */
		if ((s->flags & IO_F_CONNECTING) ||
		    (s->flags & (IO_F_SEND_BUSY | IO_F_SENT_PENDING)) == IO_F_SEND_BUSY)
			want |= EPOLLOUT;
	}
	if (want == 0) {
		if (s->flags & IO_F_EP_REG) {
			epoll_ctl(l->ep_fd, EPOLL_CTL_DEL, s->fd, NULL);
			s->flags &= (uint16_t)~IO_F_EP_REG;
		}
		s->ep_events = 0;
		return;
	}
	if ((s->flags & IO_F_EP_REG) && want == s->ep_events)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = s};
	int op = (s->flags & IO_F_EP_REG) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->ep_fd, op, s->fd, &ev) < 0) {
		log_error("io: epoll_ctl(fd %d): %s", s->fd, strerror(errno));
		return;
	}
	s->flags |= IO_F_EP_REG;
	s->ep_events = want;
}

/* Writes as much as the socket takes; 1 when done, 0 when it must wait
 * for EPOLLOUT, -errno on failure. */
static int try_write(struct io_sock *s)
{
	while (s->send_left) {
		const struct iovec *v = &s->send_iov[s->send_i];
		ssize_t w;
		if (s->send_n - s->send_i == 1) {
			w = send(s->fd, v->iov_base, v->iov_len, MSG_NOSIGNAL);
		} else {
			struct msghdr m = {.msg_iov = (struct iovec *)v,
			                   .msg_iovlen = (size_t)(s->send_n - s->send_i)};
			w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		io_send_advance(s, (uint32_t)w);
	}
	return 1;
}

int iep_send(struct io_sock *s)
{
	int r = try_write(s);
	if (r != 0) {
		s->flags |= IO_F_SENT_PENDING;
		io_defer(s->loop, s, DEF_SENT, r < 0 ? r : 0);
	}
	iep_update(s);
	return 0;
}

int iep_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len)
{
	/* errno is stale after a success (a Unix socket connects at once) */
	int r = connect(s->fd, sa, len) == 0 ? 0 : -errno;
	if (r != -EINPROGRESS) {
		s->flags &= (uint16_t)~IO_F_CONNECTING;
		io_defer(s->loop, s, DEF_CONNECT, r);
		return 0;
	}
	iep_update(s);
	return 0;
}

void iep_close(struct io_sock *s)
{
	if (s->flags & IO_F_NOBUFS) {
		struct io_sock **pp = &s->loop->nobuf_head;
		while (*pp && *pp != s)
			pp = &(*pp)->nobuf_next;
		if (*pp)
			*pp = s->nobuf_next;
		s->flags &= (uint16_t)~IO_F_NOBUFS;
	}
	iep_update(s); /* CLOSING: removes it from the set */
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	io_defer(s->loop, s, DEF_CLOSED, 0);
}

static void do_accept(struct io_sock *s)
{
	for (int i = 0; i < ACCEPT_BATCH && !(s->flags & IO_F_CLOSING); i++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				s->ops->on_accept(s, -errno);
			return;
		}
		s->ops->on_accept(s, fd);
	}
}

static void do_read(struct io_loop *l, struct io_sock *s)
{
	struct io_chunk *c = l->free_list;
	if (!c) {
		s->flags |= IO_F_NOBUFS;
		s->nobuf_next = l->nobuf_head;
		l->nobuf_head = s;
		iep_update(s);
		return;
	}
	ssize_t n = recv(s->fd, c->data, IO_BUF_SIZE, 0);
	if (n > 0) {
		l->free_list = c->next;
		l->free_bufs--;
		c->next = NULL;
		c->off = 0;
		c->len = (uint32_t)n;
		s->ops->on_recv(s, c);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	s->flags &= (uint16_t)~IO_F_RECV_WANT;
	iep_update(s);
	s->ops->on_eof(s, n == 0 ? 0 : -errno);
}

static void do_writable(struct io_sock *s)
{
	if (s->flags & IO_F_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		s->flags &= (uint16_t)~IO_F_CONNECTING;
		iep_update(s);
		s->ops->on_connect(s, -err);
		return;
	}
	if ((s->flags & (IO_F_SEND_BUSY | IO_F_SENT_PENDING)) != IO_F_SEND_BUSY)
		return;
	int r = try_write(s);
	if (r == 0)
		return;
	s->flags &= (uint16_t)~IO_F_SEND_BUSY;
	iep_update(s);
	s->ops->on_sent(s, r < 0 ? r : 0);
}

int io_epoll_backend_run(struct io_loop *l, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int n = epoll_wait(l->ep_fd, evs, MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct io_sock *s = evs[i].data.ptr;
		uint32_t e = evs[i].events;
		if (!s) {
			uint64_t v;
			ssize_t r = read(l->wake_fd, &v, sizeof(v));
			(void)r;
			if (l->on_wake)
				l->on_wake(l->wake_ud);
			continue;
		}
		/* An earlier callback in this batch may have closed or paused s;
		 * a closed socket's deferred on_closed has not run yet, so the
		 * pointer is still valid here. */
		if ((s->flags & IO_F_CLOSING) || s->loop != l)
			continue;
		if (s->flags & IO_F_LISTEN) {
			do_accept(s);
			continue;
		}
		if ((e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
		    (s->flags & (IO_F_CONNECTING | IO_F_SEND_BUSY)))
			do_writable(s);
		if (s->flags & IO_F_CLOSING)
			continue;
		if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) &&
		    (s->flags & IO_F_RECV_WANT))
			do_read(l, s);
		else if ((e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) && (s->flags & IO_F_HUP_WATCH)) {
			s->flags &= (uint16_t)~IO_F_HUP_WATCH;
			iep_update(s);
			s->ops->on_eof(s, (e & EPOLLERR) ? -ECONNRESET : 0);
		}
	}
	return 0;
}
