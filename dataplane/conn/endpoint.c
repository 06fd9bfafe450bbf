/*
 * One socket's plumbing shared by clients and servers: a queue of chunks
 * sent one at a time in order, TLS encryption on the way out and
 * decryption on the way in, and the pending input: the buffer used while
 * the proxy itself reads whole messages (startup, authentication, a
 * transaction-pooled client's messages), or a window into the received
 * chunk they arrived in. Buffer ownership: conn.h, above struct endpoint.
 */
#include "dataplane/conn/conn_internal.h"

#include "dataplane/tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ep_init(struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
}

void ep_fini(struct endpoint *ep, struct io_loop *l)
{
	struct io_chunk *c = ep->q_head;
	while (c) {
		struct io_chunk *n = c->next;
		io_chunk_release(l, c);
		c = n;
	}
	ep->q_head = ep->q_tail = NULL;
	ep->q_bytes = 0;
	tls_conn_free(ep->tls);
	ep->tls = NULL;
	if (ep->in_chunk)
		io_chunk_release(l, ep->in_chunk); /* in points into it */
	else
		free(ep->in);
	ep->in_chunk = NULL;
	ep->in = NULL;
	ep->in_len = ep->in_cap = 0;
	free(ep->cap_buf);
	ep->cap_buf = NULL;
}

/* Sends what is queued, up to IO_SEND_IOV_MAX chunks in one write: a
 * message of the proxy's queued ahead of a client's chunk (a DISCARD
 * before a late-bound batch) goes with it, and neither is copied. */
static void start_send(struct endpoint *ep)
{
	if (!ep->q_head || ep->corked || (ep->sock.flags & IO_F_SEND_BUSY))
		return;
	struct iovec v[IO_SEND_IOV_MAX];
	unsigned n = 0;
	for (struct io_chunk *c = ep->q_head; c && n < IO_SEND_IOV_MAX; c = c->next, n++)
		v[n] = (struct iovec){.iov_base = c->data + c->off, .iov_len = c->len};
	ep->send_chunks = (uint8_t)n;
	int r = io_sendv(&ep->sock, v, n);
	if (r < 0 && r != -EBUSY)
		ep_sent(ep, r);
}

static void enqueue_raw(struct endpoint *ep, struct io_chunk *c)
{
	c->next = NULL;
	if (ep->q_tail)
		ep->q_tail->next = c;
	else
		ep->q_head = c;
	ep->q_tail = c;
	ep->q_bytes += c->len;
	start_send(ep);
}

/* Moves pending TLS output into heap chunks on the queue. */
static int flush_tls(struct endpoint *ep)
{
	size_t n;
	while ((n = tls_pending(ep->tls)) > 0) {
		if (n > 64 * 1024)
			n = 64 * 1024;
		struct io_chunk *c = io_chunk_new((uint32_t)n);
		if (!c)
			return -ENOMEM;
		c->len = (uint32_t)tls_drain(ep->tls, c->data, n);
		if (c->len == 0) {
			free(c);
			break;
		}
		enqueue_raw(ep, c);
	}
	return 0;
}

int ep_send_chunk(struct endpoint *ep, struct io_chunk *c)
{
	if (!ep->tls) {
		if (c->len == 0) {
			io_chunk_release(ep->sock.loop, c);
			return 0;
		}
		enqueue_raw(ep, c);
		return 0;
	}
	int r = tls_write(ep->tls, c->data + c->off, c->len);
	io_chunk_release(ep->sock.loop, c);
	if (r < 0)
		return r;
	return ep->corked ? 0 : flush_tls(ep);
}

int ep_send_bytes(struct endpoint *ep, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (ep->tls) {
		int r = tls_write(ep->tls, p, n);
		return r < 0 || ep->corked ? r : flush_tls(ep);
	}
	struct io_chunk *c = io_chunk_new((uint32_t)n);
	if (!c)
		return -ENOMEM;
	memcpy(c->data, p, n);
	c->len = (uint32_t)n;
	enqueue_raw(ep, c);
	return 0;
}

void ep_sent(struct endpoint *ep, int err)
{
	/* the chunks of the send that ended (at least the head) */
	unsigned n = ep->send_chunks ? ep->send_chunks : 1;
	ep->send_chunks = 0;
	for (; n && ep->q_head; n--) {
		struct io_chunk *c = ep->q_head;
		ep->q_head = c->next;
		if (!ep->q_head)
			ep->q_tail = NULL;
		ep->q_bytes -= c->len;
		io_chunk_release(ep->sock.loop, c);
	}
	if (err == 0)
		start_send(ep);
}

void ep_cork(struct endpoint *ep)
{
	ep->corked = true;
}

int ep_uncork(struct endpoint *ep)
{
	ep->corked = false;
	if (ep->tls) {
		int r = flush_tls(ep);
		if (r < 0)
			return r;
	}
	start_send(ep);
	return 0;
}

bool ep_flushed(const struct endpoint *ep)
{
	return ep->q_head == NULL && !(ep->sock.flags & IO_F_SEND_BUSY);
}

/* Room for len bytes in the input buffer, which is the endpoint's own
 * memory afterwards: a pending received chunk is copied out (assembly). */
static int in_reserve(struct endpoint *ep, size_t len)
{
	if (len > (ep->in_max ? ep->in_max : CONN_INBUF_MAX))
		return -EMSGSIZE;
	if (ep->in_chunk) {
		uint32_t cap = 1024;
		while (cap < len)
			cap *= 2;
		uint8_t *b = malloc(cap);
		if (!b)
			return -ENOMEM;
		memcpy(b, ep->in, ep->in_len);
		ep->in_copied += ep->in_len;
		io_chunk_release(ep->sock.loop, ep->in_chunk);
		ep->in_chunk = NULL;
		ep->in = b;
		ep->in_cap = cap;
		return 0;
	}
	if (len > ep->in_cap) {
		uint32_t cap = ep->in_cap ? ep->in_cap : 1024;
		while (cap < len)
			cap *= 2;
		uint8_t *b = realloc(ep->in, cap);
		if (!b)
			return -ENOMEM;
		ep->in = b;
		ep->in_cap = cap;
	}
	return 0;
}

int ep_in_append(struct endpoint *ep, const uint8_t *p, size_t n)
{
	int r = in_reserve(ep, (size_t)ep->in_len + n);
	if (r < 0)
		return r;
	memcpy(ep->in + ep->in_len, p, n);
	ep->in_len += (uint32_t)n;
	ep->in_copied += n;
	return 0;
}

bool ep_in_adopt(struct endpoint *ep, struct io_chunk *c, uint32_t off, uint32_t len)
{
	if (ep->in_len || !len || len > (ep->in_max ? ep->in_max : CONN_INBUF_MAX))
		return false;
	/* a buffer of the loop's ring held by a client that waits (for a
	 * server, a throttle) is one less for every socket's receives */
	if (c->bid >= 0 && io_loop_free_bufs(ep->sock.loop) < IO_BUF_COUNT / 2)
		return false;
	free(ep->in); /* an empty assembly buffer (in_len 0) */
	ep->in = c->data + off;
	ep->in_len = len;
	ep->in_cap = 0;
	ep->in_seen = 0;
	ep->in_chunk = c;
	return true;
}

void ep_in_handed(struct endpoint *ep)
{
	ep->in_chunk = NULL;
	ep->in = NULL;
	ep->in_len = ep->in_cap = ep->in_seen = 0;
}

int ep_in_splice(struct endpoint *ep, uint32_t off, uint32_t old, const uint8_t *p, uint32_t n)
{
	size_t len = (size_t)ep->in_len - old + n;
	int r = in_reserve(ep, len);
	if (r < 0)
		return r;
	memmove(ep->in + off + n, ep->in + off + old, ep->in_len - off - old);
	memcpy(ep->in + off, p, n);
	ep->in_len = (uint32_t)len;
	return 0;
}

void ep_in_consume(struct endpoint *ep, uint32_t n)
{
	ep->in_seen = n >= ep->in_seen ? 0 : ep->in_seen - n;
	if (ep->in_chunk) {
		/* a window into a received chunk: moves, never copies */
		if (n < ep->in_len) {
			ep->in += n;
			ep->in_len -= n;
			return;
		}
		io_chunk_release(ep->sock.loop, ep->in_chunk);
		ep_in_handed(ep);
		return;
	}
	if (n >= ep->in_len) {
		ep->in_len = 0;
		/* Login is over for most connections after this: give the memory
		 * back so an idle client costs as little as possible. */
		free(ep->in);
		ep->in = NULL;
		ep->in_cap = 0;
		return;
	}
	memmove(ep->in, ep->in + n, ep->in_len - n);
	ep->in_len -= n;
}

int ep_tls_decrypt(struct endpoint *ep, struct io_loop *l, struct io_chunk *raw,
                   struct io_chunk **out, int *closed)
{
	struct io_chunk *head = NULL, **tail = &head;
	*closed = 0;
	int r = tls_feed(ep->tls, raw->data + raw->off, raw->len);
	io_chunk_release(l, raw);
	if (r < 0)
		goto fail;
	for (;;) {
		struct io_chunk *c = io_chunk_new(IO_BUF_SIZE);
		if (!c) {
			r = -ENOMEM;
			goto fail;
		}
		int n = tls_read(ep->tls, c->data, c->cap);
		if (n <= 0) {
			free(c);
			/* The peer's last words (a FATAL, say) often arrive with
			 * its close: hand over what was decrypted, then report. */
			*closed = n;
			break;
		}
		c->len = (uint32_t)n;
		*tail = c;
		tail = &c->next;
	}
	/* Reading may have produced protocol output (alerts, tickets). */
	if (!*closed) {
		r = flush_tls(ep);
		if (r < 0)
			goto fail;
	} else if (*closed == -EPROTO) {
		/* a failed handshake leaves its alert (unknown CA, certificate
		 * required) to send: the peer then knows why, best effort */
		(void)flush_tls(ep);
	}
	*out = head;
	return 0;
fail:
	while (head) {
		struct io_chunk *n = head->next;
		free(head);
		head = n;
	}
	*out = NULL;
	return r;
}

/* PostgreSQL's limit for the short control messages (PQ_SMALL_MESSAGE_LIMIT). */
#define FE_SMALL_MAX 10000u

const char *ep_frontend_check(uint8_t type, uint32_t mlen, char *buf, size_t n)
{
	uint32_t max;
	switch (type) {
	case 'Q':
	case 'F':
	case 'B':
	case 'P':
	case 'd':
		max = PGW_MAX_MESSAGE;
		break;
	case 'X':
	case 'C':
	case 'D':
	case 'E':
	case 'H':
	case 'S':
	case 'c':
	case 'f':
		max = FE_SMALL_MAX;
		break;
	default:
		/* PostgreSQL answers FATAL and ends the session; forwarded, it
		 * would leave a dying server behind for the pool */
		snprintf(buf, n, "invalid frontend message type %d", type);
		return buf;
	}
	if (mlen < 4 || mlen > max) {
		/* PostgreSQL closes without a word (COMMERROR) */
		snprintf(buf, n, "invalid message length %u for message type %d", mlen, type);
		return buf;
	}
	return NULL;
}
