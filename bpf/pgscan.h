/*
 * The PostgreSQL message scanner of the splice program, shared with
 * userspace: the BPF program (splice.bpf.c) steps it over each skb, the
 * proxy reads the per-socket state it leaves in the conns map, and the
 * unit tests (tests/unit/test_pgscan.c) drive the same code over byte
 * streams cut at every boundary.
 *
 * State is per socket and per direction: the bytes still to come of the
 * current message, a header split across buffers, and what was counted.
 * The scanner never reads a message body except the one status byte of a
 * ReadyForQuery, so a 50 MB CopyData costs one step.
 *
 * PGSCAN_LOAD(src, off, dst, n) copies n bytes at off of the current
 * buffer to dst, 0 on success: bpf_skb_load_bytes in the program, a plain
 * copy from a byte buffer by default.
 */
#ifndef HELIOS_PGSCAN_H
#define HELIOS_PGSCAN_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#ifndef PGSCAN_LOAD
#define PGSCAN_LOAD(src, off, dst, n) (__builtin_memcpy((dst), (const __u8 *)(src) + (off), (n)), 0)
#endif

#define HP_NTYPES 128 /* counts per message type byte (& 127) */

enum { HP_TERM_NONE, HP_TERM_HELD, HP_TERM_PASSED };

/* One socket's state (value of the conns map, key: its socket cookie). */
struct hp_conn {
	__u64 peer;      /* socket cookie its bytes are redirected to */
	__u64 bytes;     /* bytes that reached the program */
	__u64 fwd_bytes; /* bytes redirected to the peer */
	__u64 msgs;      /* message headers completed */
	__u64 by_type[HP_NTYPES];
	__u64 ready[3]; /* ReadyForQuery by status: idle, in transaction, failed */
	__u64 req_ns;   /* client: first byte of a request not yet answered, 0 = none */
	__u64 query_ns; /* server: request-to-ReadyForQuery time, summed */
	__u32 left;     /* payload bytes of the current message still to come */
	__u8 hdr[8];    /* a header split across buffers (5 bytes used) */
	__u8 hdr_n;
	__u8 want_status; /* the next payload byte is a ReadyForQuery status */
	__u8 status;      /* last ReadyForQuery status ('I', 'T', 'E'), 0 before any */
	__u8 bad;         /* a length below 4 was seen: counting stopped */
	__u8 is_client;
	__u8 terminate; /* HP_TERM_*: a client Terminate kept from the server, or not */
	__u8 last_type; /* type of the last message whose header completed */
	__u8 pad;
	/* the BPF program's per-skb scratch (here, not on the stack, so the
	 * verifier sees it as unknown and checks the loop body once) */
	__u32 s_off, s_len, s_readies;
	__s64 s_term;
};

/* What one step saw. */
struct pgscan_ev {
	long hdr_at; /* offset of the header just completed (< 0: it began in an earlier buffer) */
	__u8 type;   /* its type, 0 when no header completed */
	__u8 status; /* a ReadyForQuery status byte read by this step, else 0 */
};

static __always_inline __u32 pgscan_be32(const __u8 *h)
{
	return ((__u32)h[1] << 24) | ((__u32)h[2] << 16) | ((__u32)h[3] << 8) | (__u32)h[4];
}

/* One step over the buffer [off, len): a whole header, one header byte, the
 * status byte of a ReadyForQuery, or a run of payload. Returns the new
 * offset (> off), or -1 when the stream is invalid (c->bad set) or a load
 * failed. */
static __always_inline long pgscan_step(struct hp_conn *c, void *src, __u32 off, __u32 len,
                                        struct pgscan_ev *ev)
{
	ev->type = 0;
	ev->status = 0;
	if (off >= len)
		return -1;
	if (c->left) {
		if (c->want_status) {
			__u8 st = 0;
			if (PGSCAN_LOAD(src, off, &st, 1))
				return -1;
			c->want_status = 0;
			c->status = st;
			ev->status = st;
			if (st == 'I')
				c->ready[0]++;
			else if (st == 'T')
				c->ready[1]++;
			else
				c->ready[2]++;
		}
		__u32 take = len - off;
		if (take > c->left)
			take = c->left;
		c->left -= take;
		return (long)off + take;
	}
	__u32 n = c->hdr_n;
	if (n == 0 && len - off >= 5) {
		if (PGSCAN_LOAD(src, off, c->hdr, 5))
			return -1;
		off += 5;
		n = 5;
	} else {
		if (PGSCAN_LOAD(src, off, &c->hdr[n & 7], 1))
			return -1;
		off += 1;
		n++;
		if (n < 5) {
			c->hdr_n = (__u8)n;
			return off;
		}
	}
	c->hdr_n = 0;
	__u32 mlen = pgscan_be32(c->hdr);
	if (mlen < 4) {
		c->bad = 1;
		return -1;
	}
	__u8 type = c->hdr[0];
	c->left = mlen - 4;
	c->msgs++;
	c->by_type[type & (HP_NTYPES - 1)]++;
	c->last_type = type;
	if (type == 'Z' && c->left == 1)
		c->want_status = 1;
	ev->type = type;
	ev->hdr_at = (long)off - 5;
	return off;
}

/* Whole requests a client sent that each end in one ReadyForQuery: simple
 * queries, Syncs and function calls. */
static __always_inline __u64 pgscan_requests(const struct hp_conn *c)
{
	return c->by_type['Q'] + c->by_type['S'] + c->by_type['F'];
}

/* A stream between messages: nothing of a header or body pending. */
static __always_inline int pgscan_at_boundary(const struct hp_conn *c)
{
	return !c->bad && c->left == 0 && c->hdr_n == 0;
}

#endif
