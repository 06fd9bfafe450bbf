/*
 * Backend-neutral part of the event loop: socket bookkeeping, buffers and
 * the deferred-callback queue. The backends only move bytes.
 */
#include "dataplane/io/io_internal.h"

#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

const char *io_backend_str(enum io_backend b)
{
	return b == IO_BACKEND_URING ? "io_uring" : "epoll";
}

struct io_loop *io_loop_new(enum io_backend want, int *err)
{
	struct io_loop *l = calloc(1, sizeof(*l));
	if (!l) {
		*err = -ENOMEM;
		return NULL;
	}
	l->ep_fd = -1;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->buf_mem = mmap(NULL, (size_t)IO_BUF_SIZE * IO_BUF_COUNT, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->wake_fd < 0 || l->buf_mem == MAP_FAILED) {
		*err = -errno;
		if (l->buf_mem == MAP_FAILED)
			l->buf_mem = NULL;
		goto fail;
	}
	for (uint32_t i = 0; i < IO_BUF_COUNT; i++) {
		struct io_chunk *c = &l->chunks[i];
		c->data = l->buf_mem + (size_t)i * IO_BUF_SIZE;
		c->cap = IO_BUF_SIZE;
		c->bid = (int32_t)i;
	}
	l->backend = want;
	int r = want == IO_BACKEND_URING ? io_uring_backend_init(l) : io_epoll_backend_init(l);
	if (r < 0) {
		*err = r;
		goto fail;
	}
	return l;
fail:
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->buf_mem)
		munmap(l->buf_mem, (size_t)IO_BUF_SIZE * IO_BUF_COUNT);
	free(l);
	return NULL;
}

void io_loop_free(struct io_loop *l)
{
	if (!l)
		return;
	if (l->backend == IO_BACKEND_URING)
		io_uring_backend_fini(l);
	else
		io_epoll_backend_fini(l);
	close(l->wake_fd);
	munmap(l->buf_mem, (size_t)IO_BUF_SIZE * IO_BUF_COUNT);
	free(l->defq);
	free(l);
}

enum io_backend io_loop_backend(const struct io_loop *l)
{
	return l->backend;
}

uint32_t io_loop_free_bufs(const struct io_loop *l)
{
	return l->free_bufs;
}

void io_loop_set_wake(struct io_loop *l, void (*on_wake)(void *ud), void *ud)
{
	l->on_wake = on_wake;
	l->wake_ud = ud;
}

void io_loop_wakeup(struct io_loop *l)
{
	uint64_t one = 1;
	ssize_t r = write(l->wake_fd, &one, sizeof(one));
	(void)r; /* EAGAIN means a wakeup is already pending */
}

int io_loop_run_once(struct io_loop *l, int timeout_ms)
{
	/* Callbacks deferred by the previous round (or by code running outside
	 * the loop) must run before we sleep. */
	if (l->def_len > l->def_pos)
		timeout_ms = 0;
	int r = l->backend == IO_BACKEND_URING ? io_uring_backend_run(l, timeout_ms)
	                                       : io_epoll_backend_run(l, timeout_ms);
	io_dispatch_deferred(l);
	return r;
}

void io_defer(struct io_loop *l, struct io_sock *s, int kind, int res)
{
	if (l->def_len == l->def_cap) {
		size_t cap = l->def_cap ? l->def_cap * 2 : 256;
		struct io_deferred *q = realloc(l->defq, cap * sizeof(*q));
		if (!q) {
			/* Out of memory for bookkeeping is not recoverable. */
			log_error("io: out of memory for the deferred queue");
			abort();
		}
		l->defq = q;
		l->def_cap = cap;
	}
	l->defq[l->def_len++] = (struct io_deferred){.s = s, .kind = kind, .res = res};
}

void io_dispatch_deferred(struct io_loop *l)
{
	while (l->def_pos < l->def_len) {
		struct io_deferred d = l->defq[l->def_pos++];
		struct io_sock *s = d.s;
		if (d.kind == DEF_CLOSED) {
			s->ops->on_closed(s);
			continue;
		}
		if (s->flags & IO_F_CLOSING)
			continue;
		switch (d.kind) {
		case DEF_SENT:
			/* busy until now so nobody starts the next send early */
			s->flags &= (uint16_t) ~(IO_F_SEND_BUSY | IO_F_SENT_PENDING);
			s->ops->on_sent(s, d.res);
			break;
		case DEF_CONNECT:
			s->ops->on_connect(s, d.res);
			break;
		case DEF_RECV_STOPPED:
			if (s->flags & IO_F_STOP_PENDING) {
				s->flags &= (uint16_t)~IO_F_STOP_PENDING;
				if (s->ops->on_recv_stopped)
					s->ops->on_recv_stopped(s);
			}
			break;
		case DEF_EOF:
			s->ops->on_eof(s, d.res);
			break;
		}
	}
	l->def_pos = l->def_len = 0;
}

void io_sock_init(struct io_sock *s, int fd, const struct io_sock_ops *ops, void *owner)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->ops = ops;
	s->owner = owner;
}

void io_sock_attach(struct io_loop *l, struct io_sock *s)
{
	s->loop = l;
}

bool io_sock_idle(const struct io_sock *s)
{
	return s->inflight == 0 &&
	       !(s->flags & (IO_F_RECV_WANT | IO_F_RECV_ARMED | IO_F_SEND_BUSY | IO_F_CONNECTING |
	                     IO_F_STOP_PENDING | IO_F_CANCELLING));
}

void io_sock_detach(struct io_sock *s)
{
	if (s->loop && s->loop->backend == IO_BACKEND_EPOLL)
		iep_update(s);
	s->loop = NULL;
}

int io_listen_start(struct io_sock *s)
{
	s->flags |= IO_F_LISTEN | IO_F_RECV_WANT;
	if (s->loop->backend == IO_BACKEND_URING)
		return iou_listen(s);
	iep_update(s);
	return 0;
}

int io_recv_start(struct io_sock *s)
{
	if (s->flags & IO_F_CLOSING)
		return -EBADF;
	s->flags |= IO_F_RECV_WANT;
	s->flags &= (uint16_t)~IO_F_STOP_PENDING;
	if (s->loop->backend == IO_BACKEND_URING) {
		/* A cancel in flight ends the current multishot; the final CQE
		 * re-arms because RECV_WANT is set again. */
		if (!(s->flags & (IO_F_RECV_ARMED | IO_F_NOBUFS)))
			return iou_recv_arm(s);
		return 0;
	}
	iep_update(s);
	return 0;
}

void io_recv_stop(struct io_sock *s)
{
	if (s->flags & IO_F_CLOSING)
		return;
	s->flags &= (uint16_t)~IO_F_RECV_WANT;
	s->flags |= IO_F_STOP_PENDING;
	if (s->loop->backend == IO_BACKEND_URING) {
		if (s->flags & IO_F_RECV_ARMED) {
			/* on_recv_stopped is owed when the final CQE arrives */
			iou_recv_cancel(s);
			return;
		}
		if (s->flags & IO_F_NOBUFS) {
			/* it is on the nobuf list; the list skips sockets that no
			 * longer want data */
		}
	} else {
		iep_update(s);
	}
	io_defer(s->loop, s, DEF_RECV_STOPPED, 0);
}

int io_hup_watch(struct io_sock *s)
{
	if (s->flags & (IO_F_CLOSING | IO_F_RECV_WANT | IO_F_RECV_ARMED))
		return -EBUSY;
	if (s->flags & IO_F_HUP_WATCH)
		return 0;
	s->flags |= IO_F_HUP_WATCH;
	if (s->loop->backend == IO_BACKEND_URING)
		iou_hup_watch(s);
	else
		iep_update(s);
	return 0;
}

void io_hup_unwatch(struct io_sock *s)
{
	if (!(s->flags & IO_F_HUP_WATCH))
		return;
	s->flags &= (uint16_t)~IO_F_HUP_WATCH;
	if (s->loop->backend == IO_BACKEND_URING)
		iou_hup_unwatch(s);
	else
		iep_update(s);
}

int io_send(struct io_sock *s, const void *p, uint32_t len)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = len};
	return io_sendv(s, &v, 1);
}

int io_sendv(struct io_sock *s, const struct iovec *iov, unsigned n)
{
	if (s->flags & IO_F_CLOSING)
		return -EBADF;
	if (s->flags & IO_F_SEND_BUSY)
		return -EBUSY;
	if (n == 0 || n > IO_SEND_IOV_MAX)
		return -EINVAL;
	s->flags |= IO_F_SEND_BUSY;
	s->send_left = 0;
	for (unsigned i = 0; i < n; i++) {
		s->send_iov[i] = iov[i];
		s->send_left += (uint32_t)iov[i].iov_len;
	}
	s->send_i = 0;
	s->send_n = (uint8_t)n;
	if (s->loop->backend == IO_BACKEND_URING)
		return iou_send(s);
	return iep_send(s);
}

void io_send_advance(struct io_sock *s, uint32_t done)
{
	s->send_left -= done;
	while (done && s->send_i < s->send_n) {
		struct iovec *v = &s->send_iov[s->send_i];
		if (done < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + done;
			v->iov_len -= done;
			return;
		}
		done -= (uint32_t)v->iov_len;
		s->send_i++;
	}
}

int io_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len)
{
	s->flags |= IO_F_CONNECTING;
	if (s->loop->backend == IO_BACKEND_URING)
		return iou_connect(s, sa, len);
	return iep_connect(s, sa, len);
}

void io_sock_close(struct io_sock *s)
{
	if (s->flags & IO_F_CLOSING)
		return;
	s->flags |= IO_F_CLOSING;
	s->flags &= (uint16_t)~IO_F_RECV_WANT;
	if (s->loop->backend == IO_BACKEND_URING)
		iou_close(s);
	else
		iep_close(s);
}

struct io_chunk *io_chunk_new(uint32_t cap)
{
	struct io_chunk *c = malloc(sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->next = NULL;
	c->data = (uint8_t *)(c + 1);
	c->off = c->len = 0;
	c->cap = cap;
	c->bid = -1;
	return c;
}

void io_chunk_release(struct io_loop *l, struct io_chunk *c)
{
	if (c->bid < 0) {
		free(c);
		return;
	}
	c->next = NULL;
	if (l->backend == IO_BACKEND_URING) {
		iou_buf_return(l, c);
	} else {
		c->next = l->free_list;
		l->free_list = c;
		l->free_bufs++;
	}
	/* Sockets that ran out of buffers can receive again. */
	while (l->nobuf_head && l->free_bufs > 0) {
		struct io_sock *s = l->nobuf_head;
		l->nobuf_head = s->nobuf_next;
		s->nobuf_next = NULL;
		s->flags &= (uint16_t)~IO_F_NOBUFS;
		if ((s->flags & IO_F_RECV_WANT) && !(s->flags & IO_F_CLOSING)) {
			if (l->backend == IO_BACKEND_URING)
				iou_recv_arm(s);
			else
				iep_update(s);
		}
	}
}
