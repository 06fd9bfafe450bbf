/*
 * Unit tests for the gathered send (dataplane/io io_sendv, and the
 * endpoint queue that uses it): several buffers leave in order as one
 * operation with one on_sent, also when the socket takes them in pieces
 * that end inside a buffer; an endpoint corked while a message of the
 * proxy and a client's chunk are queued sends both in one io_sendv.
 * Run on both backends over a real socketpair.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dataplane/conn/conn_internal.h"
#include "chunk_testutil.h"

#define UNUSED __attribute__((unused))

struct peer {
	struct io_sock s;
	int sent_calls, sent_err;
	struct endpoint *ep; /* set: on_sent goes to the endpoint */
};

static void on_sent(struct io_sock *s, int err)
{
	struct peer *p = s->owner;
	p->sent_calls++;
	p->sent_err = err;
	if (p->ep)
		ep_sent(p->ep, err);
}

static void on_closed(struct io_sock *s UNUSED)
{
}

static const struct io_sock_ops ops = {.on_sent = on_sent, .on_closed = on_closed};

/* A loop of backend b and a non-blocking socketpair (sv[0] for the loop,
 * sv[1] read by the test); NULL, saying so, where b cannot run here. */
static struct io_loop *loop_and_pair(enum io_backend b, int sv[2])
{
	int err = 0;
	struct io_loop *l = io_loop_new(b, &err);
	if (!l || io_loop_backend(l) != b) {
		if (l)
			io_loop_free(l);
		print_message("backend %s unavailable here: skipped\n", io_backend_str(b));
		return NULL;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	return l;
}

/* Runs the loop and reads the far end until want bytes came and the
 * sender is idle. */
static size_t pump(struct io_loop *l, struct io_sock *s, int far, uint8_t *got, size_t want)
{
	size_t n = 0;
	for (int i = 0; i < 20000 && (n < want || (s->flags & IO_F_SEND_BUSY)); i++) {
		io_loop_run_once(l, 1);
		ssize_t r = read(far, got + n, want - n);
		if (r > 0)
			n += (size_t)r;
	}
	io_loop_run_once(l, 0); /* a deferred on_sent */
	return n;
}

static void sendv_in_pieces(enum io_backend b)
{
	int sv[2];
	struct io_loop *l = loop_and_pair(b, sv);
	if (!l)
		return;
	int small = 4096; /* the socket takes a few KiB at a time: ends fall inside buffers */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	struct peer p = {0};
	io_sock_init(&p.s, sv[0], &ops, &p);
	io_sock_attach(l, &p.s);

	static const size_t sizes[] = {7, 200000, 1, 65536, 33};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct iovec v[N];
	size_t total = 0;
	for (int i = 0; i < N; i++) {
		v[i].iov_base = malloc(sizes[i]);
		v[i].iov_len = sizes[i];
		for (size_t j = 0; j < sizes[i]; j++)
			((uint8_t *)v[i].iov_base)[j] = (uint8_t)(i * 31 + j * 7);
		total += sizes[i];
	}
	assert_int_equal(io_sendv(&p.s, v, N), 0);
	assert_int_equal(io_sendv(&p.s, v, 1), -EBUSY); /* one send at a time */
	uint8_t *got = malloc(total);
	assert_int_equal(pump(l, &p.s, sv[1], got, total), total);
	assert_int_equal(p.sent_calls, 1);
	assert_int_equal(p.sent_err, 0);
	size_t off = 0;
	for (int i = 0; i < N; i++) {
		assert_memory_equal(got + off, v[i].iov_base, sizes[i]);
		off += sizes[i];
		free(v[i].iov_base);
	}
	free(got);

	struct iovec none[IO_SEND_IOV_MAX + 1] = {0};
	assert_int_equal(io_sendv(&p.s, none, 0), -EINVAL);
	assert_int_equal(io_sendv(&p.s, none, IO_SEND_IOV_MAX + 1), -EINVAL);

	io_sock_close(&p.s);
	io_loop_run_once(l, 0);
	close(sv[1]);
	io_loop_free(l);
}

static void test_sendv_sends_every_buffer_in_order_with_one_on_sent_uring(void **st UNUSED)
{
	sendv_in_pieces(IO_BACKEND_URING);
}

static void test_sendv_sends_every_buffer_in_order_with_one_on_sent_epoll(void **st UNUSED)
{
	sendv_in_pieces(IO_BACKEND_EPOLL);
}

static void corked_queue(enum io_backend b)
{
	int sv[2];
	struct io_loop *l = loop_and_pair(b, sv);
	if (!l)
		return;
	struct endpoint ep;
	ep_init(&ep);
	struct peer p = {.ep = &ep};
	io_sock_init(&ep.sock, sv[0], &ops, &p);
	io_sock_attach(l, &ep.sock);

	ep_cork(&ep);
	assert_int_equal(ep_send_bytes(&ep, "proxy:", 6), 0);
	assert_int_equal(ep_send_chunk(&ep, chunk_of("client-chunk")), 0);
	assert_false(ep.sock.flags & IO_F_SEND_BUSY); /* corked: nothing left yet */
	assert_int_equal(ep.q_bytes, 18);
	assert_int_equal(ep_uncork(&ep), 0);
	assert_int_equal(ep.send_chunks, 2); /* both in the one send */

	uint8_t got[32] = {0};
	assert_int_equal(pump(l, &ep.sock, sv[1], got, 18), 18);
	assert_memory_equal(got, "proxy:client-chunk", 18);
	assert_int_equal(p.sent_calls, 1);
	assert_true(ep_flushed(&ep));
	assert_int_equal(ep.q_bytes, 0);

	/* uncorked, a lone chunk still goes at once */
	assert_int_equal(ep_send_bytes(&ep, "next", 4), 0);
	assert_true(ep.sock.flags & IO_F_SEND_BUSY || p.sent_calls == 2);
	assert_int_equal(pump(l, &ep.sock, sv[1], got, 4), 4);
	assert_memory_equal(got, "next", 4);
	assert_int_equal(p.sent_calls, 2);

	io_sock_close(&ep.sock);
	io_loop_run_once(l, 0);
	ep_fini(&ep, l);
	close(sv[1]);
	io_loop_free(l);
}

static void test_corked_endpoint_sends_its_queue_in_one_write_uring(void **st UNUSED)
{
	corked_queue(IO_BACKEND_URING);
}

static void test_corked_endpoint_sends_its_queue_in_one_write_epoll(void **st UNUSED)
{
	corked_queue(IO_BACKEND_EPOLL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sendv_sends_every_buffer_in_order_with_one_on_sent_uring),
	    cmocka_unit_test(test_sendv_sends_every_buffer_in_order_with_one_on_sent_epoll),
	    cmocka_unit_test(test_corked_endpoint_sends_its_queue_in_one_write_uring),
	    cmocka_unit_test(test_corked_endpoint_sends_its_queue_in_one_write_epoll),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
