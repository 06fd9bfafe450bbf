// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel-accelerated session mode: a verdict-only sk_skb program on a
 * sockhash. Every skb that arrives on a spliced socket is scanned for
 * PostgreSQL message boundaries (pgscan.h, per-socket state in conns) and
 * redirected to the egress of its peer socket; userspace only watches for
 * close and reads the counts.
 *
 * Verdict-only on purpose: a stream parser aborts the connection on a
 * message larger than sk_rcvbuf, while the incremental scanner handles a
 * 50 MB CopyData in one step.
 *
 * A client's Terminate is kept from the server (the skb is trimmed before
 * it, or dropped when it is all Terminate) so the server connection can go
 * back to the pool; a Terminate whose header straddles two skbs is let
 * through and marked, and then the server is not reused.
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PGSCAN_LOAD(src, off, dst, n) bpf_skb_load_bytes((src), (off), (dst), (n))
#include "bpf/pgscan.h"

#define HP_MAX_CONNS 65536

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, HP_MAX_CONNS);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} socks SEC(".maps");

/* Entries are added from userspace at the splice point only, so they are
 * allocated then: preallocating 65,536 of them would lock about 75 MB. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HP_MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* socket cookie */
	__type(value, struct hp_conn);
} conns SEC(".maps");

struct scan_ctx {
	struct __sk_buff *skb;
	struct hp_conn *c; /* its s_* fields hold the loop's position */
};

#define HP_NO_TERM (-(1LL << 40))

static long scan_cb(__u32 i, void *data)
{
	struct scan_ctx *sc = data;
	struct pgscan_ev ev;
	struct hp_conn *c = sc->c;
	if (!c)
		return 1;
	__u32 off = c->s_off, len = c->s_len;
	long next = pgscan_step(c, sc->skb, off, len, &ev);
	if (next < 0 || next > len)
		return 1;
	if (ev.status)
		c->s_readies++;
	if (ev.type == 'X' && c->is_client && c->s_term == HP_NO_TERM)
		c->s_term = ev.hdr_at;
	c->s_off = (__u32)next;
	return (__u32)next >= len;
}

SEC("sk_skb")
int hp_splice_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct hp_conn *c = bpf_map_lookup_elem(&conns, &cookie);
	if (!c)
		return SK_PASS; /* not ours (or being taken apart): userspace reads it */
	__u32 len = skb->len;
	/* An empty skb (the one carrying a FIN) must not be redirected: the
	 * peer's send of 0 bytes counts as a hard error and breaks its pipe
	 * (EPIPE on the next write). FIN is the proxy's business. */
	if (!len)
		return SK_DROP;
	c->bytes += len;
	if (c->is_client && !c->req_ns)
		c->req_ns = bpf_ktime_get_ns();
	c->s_off = 0;
	c->s_len = len;
	c->s_readies = 0;
	c->s_term = HP_NO_TERM;
	struct scan_ctx sc = {.skb = skb, .c = c};
	if (!c->bad)
		bpf_loop(len, scan_cb, &sc, 0);
	__s64 term = c->s_term;
	if (term != HP_NO_TERM) {
		if (term < 0 || term >= len) {
			c->terminate = HP_TERM_PASSED;
		} else {
			c->terminate = HP_TERM_HELD;
			if (term == 0)
				return SK_DROP;
			if (bpf_skb_change_tail(skb, (__u32)term, 0))
				c->terminate = HP_TERM_PASSED;
			else
				len = (__u32)term;
		}
	}
	if (c->s_readies) {
		struct hp_conn *p = bpf_map_lookup_elem(&conns, &c->peer);
		if (p && p->req_ns) {
			c->query_ns += bpf_ktime_get_ns() - p->req_ns;
			p->req_ns = 0;
		}
	}
	c->fwd_bytes += len;
	return bpf_sk_redirect_hash(skb, &socks, &c->peer, 0);
}

char LICENSE[] SEC("license") = "GPL";
