/*
 * io_uring backend (liburing 2.3): multishot accept, multishot recv with a
 * provided-buffer ring (an idle connection holds no buffer), one send per
 * socket at a time. The ring is single-issuer with deferred task running;
 * other threads reach us through the eventfd.
 */
#include "dataplane/io/io_internal.h"

#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BGID       7
#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192

/* user_data: the socket's address with the operation in its low 3 bits;
 * 0 = a completion nobody waits for (a poll removal). */
enum { OP_RECV = 1, OP_SEND, OP_CONNECT, OP_ACCEPT, OP_CANCEL, OP_WAKE, OP_HUP };

static inline uint64_t ud(void *p, int op)
{
	return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

static struct io_uring_sqe *get_sqe(struct io_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	if (!sqe) {
		/* SQ full: push what we have to the kernel and retry. */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static void arm_wake(struct io_loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);
	io_uring_prep_read(sqe, l->wake_fd, &l->wake_val, sizeof(l->wake_val), 0);
	io_uring_sqe_set_data64(sqe, ud(l, OP_WAKE));
}

int io_uring_backend_init(struct io_loop *l)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
	          IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	int r = io_uring_queue_init_params(SQ_ENTRIES, &l->ring, &p);
	if (r == -EINVAL) {
		/* older kernels: no DEFER_TASKRUN / SINGLE_ISSUER */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		r = io_uring_queue_init_params(SQ_ENTRIES, &l->ring, &p);
	}
	if (r < 0)
		return r;
	if (!(p.features & IORING_FEAT_FAST_POLL)) {
		io_uring_queue_exit(&l->ring);
		return -EOPNOTSUPP;
	}
	io_uring_register_ring_fd(&l->ring);

	/* liburing 2.3 has no io_uring_setup_buf_ring: map it ourselves. */
	l->br_size = IO_BUF_COUNT * sizeof(struct io_uring_buf);
	void *mem =
	    mmap(NULL, l->br_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	l->br = mem;
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)l->br;
	reg.ring_entries = IO_BUF_COUNT;
	reg.bgid = BGID;
	r = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (r < 0)
		goto fail;
	io_uring_buf_ring_init(l->br);
	for (uint32_t i = 0; i < IO_BUF_COUNT; i++)
		io_uring_buf_ring_add(l->br, l->chunks[i].data, IO_BUF_SIZE, (unsigned short)i,
		                      io_uring_buf_ring_mask(IO_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(l->br, IO_BUF_COUNT);
	l->free_bufs = IO_BUF_COUNT;
	arm_wake(l);
	return 0;
fail:
	if (l->br)
		munmap(l->br, l->br_size);
	l->br = NULL;
	io_uring_queue_exit(&l->ring);
	return r;
}

void io_uring_backend_fini(struct io_loop *l)
{
	io_uring_queue_exit(&l->ring);
	if (l->br)
		munmap(l->br, l->br_size);
}

void iou_buf_return(struct io_loop *l, struct io_chunk *c)
{
	io_uring_buf_ring_add(l->br, c->data, IO_BUF_SIZE, (unsigned short)c->bid,
	                      io_uring_buf_ring_mask(IO_BUF_COUNT), (int)l->pending_returns);
	l->pending_returns++;
	l->free_bufs++;
	/* Publish at once: a multishot recv may be starved right now. */
	io_uring_buf_ring_advance(l->br, (int)l->pending_returns);
	l->pending_returns = 0;
}

int iou_listen(struct io_sock *s)
{
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_multishot_accept(sqe, s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	io_uring_sqe_set_data64(sqe, ud(s, OP_ACCEPT));
	s->flags |= IO_F_RECV_ARMED;
	s->inflight++;
	return 0;
}

int iou_recv_arm(struct io_sock *s)
{
	struct io_loop *l = s->loop;
	if (l->free_bufs == 0) {
		if (!(s->flags & IO_F_NOBUFS)) {
			s->flags |= IO_F_NOBUFS;
			s->nobuf_next = l->nobuf_head;
			l->nobuf_head = s;
		}
		return 0;
	}
	struct io_uring_sqe *sqe = get_sqe(l);
	io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(s, OP_RECV));
	s->flags |= IO_F_RECV_ARMED;
	s->inflight++;
	return 0;
}

void iou_recv_cancel(struct io_sock *s)
{
	if (s->flags & IO_F_CANCELLING)
		return;
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_cancel64(sqe, ud(s, OP_RECV), 0);
	io_uring_sqe_set_data64(sqe, ud(s, OP_CANCEL));
	s->flags |= IO_F_CANCELLING;
	s->inflight++;
}

static void submit_send(struct io_sock *s)
{
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	const struct iovec *v = &s->send_iov[s->send_i];
	if (s->send_n - s->send_i == 1) {
		io_uring_prep_send(sqe, s->fd, v->iov_base, v->iov_len, MSG_NOSIGNAL | MSG_WAITALL);
	} else {
		memset(&s->send_msg, 0, sizeof(s->send_msg));
		s->send_msg.msg_iov = (struct iovec *)v;
		s->send_msg.msg_iovlen = (size_t)(s->send_n - s->send_i);
		io_uring_prep_sendmsg(sqe, s->fd, &s->send_msg, MSG_NOSIGNAL | MSG_WAITALL);
	}
	io_uring_sqe_set_data64(sqe, ud(s, OP_SEND));
	s->inflight++;
}

int iou_send(struct io_sock *s)
{
	submit_send(s);
	return 0;
}

int iou_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len)
{
	/* The kernel copies the address at submission (SUBMIT_ALL with an
	 * immediate submit), so a stack address is fine. */
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_connect(sqe, s->fd, sa, len);
	io_uring_sqe_set_data64(sqe, ud(s, OP_CONNECT));
	s->inflight++;
	io_uring_submit(&s->loop->ring);
	return 0;
}

static void unlink_nobuf(struct io_sock *s)
{
	struct io_sock **pp = &s->loop->nobuf_head;
	while (*pp) {
		if (*pp == s) {
			*pp = s->nobuf_next;
			break;
		}
		pp = &(*pp)->nobuf_next;
	}
	s->flags &= (uint16_t)~IO_F_NOBUFS;
}

void iou_hup_watch(struct io_sock *s)
{
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_poll_add(sqe, s->fd, POLLRDHUP | POLLHUP | POLLERR);
	io_uring_sqe_set_data64(sqe, ud(s, OP_HUP));
	s->inflight++;
}

void iou_hup_unwatch(struct io_sock *s)
{
	/* the poll's own completion (-ECANCELED) settles inflight */
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_poll_remove(sqe, ud(s, OP_HUP));
	io_uring_sqe_set_data64(sqe, 0);
}

static void finish_close(struct io_sock *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	io_defer(s->loop, s, DEF_CLOSED, 0);
}

void iou_close(struct io_sock *s)
{
	if (s->flags & IO_F_NOBUFS)
		unlink_nobuf(s);
	if (s->inflight == 0) {
		finish_close(s);
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(s->loop);
	io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ud(s, OP_CANCEL));
	s->inflight++;
	/* A blocked send may not be cancellable; shutting the socket down
	 * makes it fail at once. Not one another process goes on with. */
	if (!(s->flags & IO_F_SHARED))
		shutdown(s->fd, SHUT_RDWR);
}

static void op_done(struct io_sock *s)
{
	s->inflight--;
	if ((s->flags & IO_F_CLOSING) && s->inflight == 0)
		finish_close(s);
}

static void handle_recv(struct io_loop *l, struct io_sock *s, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		struct io_chunk *c = &l->chunks[cqe->flags >> IORING_CQE_BUFFER_SHIFT];
		l->free_bufs--;
		if (res > 0 && !(s->flags & IO_F_CLOSING)) {
			c->off = 0;
			c->len = (uint32_t)res;
			c->next = NULL;
			/* Data racing a stop request still goes to the owner:
			 * dropping it would lose bytes. */
			s->ops->on_recv(s, c);
		} else {
			io_chunk_release(l, c);
		}
	}
	if (more)
		return;
	s->flags &= (uint16_t) ~(IO_F_RECV_ARMED);
	if (s->flags & IO_F_CLOSING) {
		op_done(s);
		return;
	}
	s->inflight--;
	if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
		s->flags &= (uint16_t)~IO_F_RECV_WANT;
		io_defer(l, s, DEF_EOF, res);
		return;
	}
	if (s->flags & IO_F_RECV_WANT) {
		if (!(s->flags & IO_F_CANCELLING))
			iou_recv_arm(s);
		/* else: re-armed when the cancel completes */
	} else if (!(s->flags & IO_F_CANCELLING)) {
		io_defer(l, s, DEF_RECV_STOPPED, 0);
	}
}

static void handle_cqe(struct io_loop *l, struct io_uring_cqe *cqe)
{
	uint64_t data = io_uring_cqe_get_data64(cqe);
	int op = (int)(data & 7);
	void *p = (void *)(uintptr_t)(data & ~(uint64_t)7);
	struct io_sock *s = p;
	switch (op) {
	case OP_WAKE:
		arm_wake(l);
		if (l->on_wake)
			l->on_wake(l->wake_ud);
		return;
	case OP_RECV:
		handle_recv(l, s, cqe);
		return;
	case OP_ACCEPT:
		if (cqe->res >= 0) {
			if (s->flags & IO_F_CLOSING)
				close(cqe->res);
			else
				s->ops->on_accept(s, cqe->res);
		}
		if (!(cqe->flags & IORING_CQE_F_MORE)) {
			s->flags &= (uint16_t)~IO_F_RECV_ARMED;
			s->inflight--;
			if (s->flags & IO_F_CLOSING) {
				s->inflight++;
				op_done(s);
			} else if (s->flags & IO_F_RECV_WANT) {
				if (cqe->res < 0 && cqe->res != -ECANCELED)
					s->ops->on_accept(s, cqe->res);
				iou_listen(s);
			}
		}
		return;
	case OP_SEND:
		if (s->flags & IO_F_CLOSING) {
			op_done(s);
			return;
		}
		s->inflight--;
		if (cqe->res > 0 && (uint32_t)cqe->res < s->send_left) {
			io_send_advance(s, (uint32_t)cqe->res);
			submit_send(s);
			return;
		}
		s->flags &= (uint16_t)~IO_F_SEND_BUSY;
		s->send_left = 0;
		s->ops->on_sent(s, cqe->res < 0 ? cqe->res : 0);
		return;
	case OP_CONNECT:
		if (s->flags & IO_F_CLOSING) {
			op_done(s);
			return;
		}
		s->inflight--;
		s->flags &= (uint16_t)~IO_F_CONNECTING;
		s->ops->on_connect(s, cqe->res);
		return;
	case OP_HUP:
		if (s->flags & IO_F_CLOSING) {
			op_done(s);
			return;
		}
		s->inflight--;
		/* unwatched meanwhile: nobody wants it */
		if (cqe->res != -ECANCELED && (s->flags & IO_F_HUP_WATCH)) {
			s->flags &= (uint16_t)~IO_F_HUP_WATCH;
			io_defer(l, s, DEF_EOF, cqe->res < 0 ? cqe->res : 0);
		}
		return;
	case OP_CANCEL:
		s->flags &= (uint16_t)~IO_F_CANCELLING;
		if (s->flags & IO_F_CLOSING) {
			op_done(s);
			return;
		}
		s->inflight--;
		/* The recv's own final CQE may already have come (then nothing is
		 * armed) or will come with -ECANCELED and settle the state. */
		if (!(s->flags & IO_F_RECV_ARMED)) {
			if (s->flags & IO_F_RECV_WANT)
				iou_recv_arm(s);
			else if (s->flags & IO_F_STOP_PENDING)
				io_defer(l, s, DEF_RECV_STOPPED, 0);
		}
		return;
	default:
		return;
	}
}

int io_uring_backend_run(struct io_loop *l, int timeout_ms)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
	                               .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
	int r =
	    io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, timeout_ms >= 0 ? &ts : NULL, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return r;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		handle_cqe(l, cqe);
		n++;
		if (n == 256) {
			io_uring_cq_advance(&l->ring, n);
			n = 0;
		}
	}
	io_uring_cq_advance(&l->ring, n);
	return 0;
}
