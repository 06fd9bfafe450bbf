// SPDX-License-Identifier: GPL-2.0
/*
 * The XDP admission filter: TCP packets to the filtered ports (all ports
 * when none are set) from a source in the deny trie are dropped, and a
 * source's SYNs beyond its token bucket are dropped; everything else
 * passes. Maps and counters are described in xdp.h; the control plane
 * (controlplane/xdp.c) loads, attaches and fills it.
 *
 * Parsed: Ethernet, one VLAN tag, IPv4 (with options), the IPv6 fixed
 * header and TCP. IPv6 extension headers are not walked: a packet whose
 * next header is not TCP passes, as do non-first IPv4 fragments (they
 * carry no TCP header; their first fragment is filtered).
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/xdp.h"

/* vmlinux.h has the types but not the uapi macros */
#define ETH_P_IP       0x0800
#define ETH_P_IPV6     0x86DD
#define ETH_P_8021Q    0x8100
#define ETH_P_8021AD   0x88A8
#define IP_FRAG_OFFSET 0x1fff
#define TCP_FLAG_SYN   0x02
#define TCP_FLAG_ACK   0x10
#define TCP_FLAGS_BYTE 13 /* offset of the flags in the TCP header */

struct hp_vlan {
	__be16 tci;
	__be16 proto;
};

/* Source prefixes whose packets are dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HP_XDP_MAX_DENY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hp_xdp_key);
	__type(value, struct hp_xdp_deny);
} deny SEC(".maps");

/* Destination ports filtered (host order), unless conf.all_ports. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HP_XDP_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

/* Rate, burst and the all-ports switch: one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hp_xdp_conf);
} conf SEC(".maps");

/* Token bucket per source address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HP_XDP_MAX_SOURCES);
	__type(key, struct hp_xdp_addr);
	__type(value, struct hp_xdp_bucket);
} buckets SEC(".maps");

/* HP_XDP_* counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HP_XDP_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int verdict(__u32 idx, int action)
{
	count(idx);
	return action;
}

/* Takes a token from src's bucket (made full on its first SYN); false when
 * there is none. elapsed is capped at fill_ns, so elapsed * rate stays
 * below max_tokens + rate: no overflow for the configured bounds. */
static __always_inline bool syn_allowed(const struct hp_xdp_addr *src, const struct hp_xdp_conf *c)
{
	__u64 now = bpf_ktime_get_ns();
	struct hp_xdp_bucket *b = bpf_map_lookup_elem(&buckets, src);
	if (!b) {
		struct hp_xdp_bucket nb = {.tokens = c->max_tokens - HP_XDP_TOKEN, .last_ns = now};
		bpf_map_update_elem(&buckets, src, &nb, BPF_ANY);
		return true;
	}
	__u64 elapsed = now - b->last_ns, tokens = b->tokens;
	if (elapsed >= c->fill_ns)
		tokens = c->max_tokens;
	else
		tokens += elapsed * c->rate;
	if (tokens > c->max_tokens)
		tokens = c->max_tokens; /* the burst was lowered */
	b->last_ns = now;
	if (tokens < HP_XDP_TOKEN) {
		b->tokens = tokens;
		return false;
	}
	b->tokens = tokens - HP_XDP_TOKEN;
	return true;
}

SEC("xdp")
int hp_xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct hp_xdp_key key;
	void *l4;

	/* zeroed by hand: an initializer would cost a .rodata map */
	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = 128;
	if ((void *)(eth + 1) > end)
		return verdict(HP_XDP_PASS, XDP_PASS);
	__be16 proto = eth->h_proto;
	void *p = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct hp_vlan *v = p;
		if ((void *)(v + 1) > end)
			return verdict(HP_XDP_PASS, XDP_PASS);
		proto = v->proto;
		p = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = p;
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP ||
		    (ip->frag_off & bpf_htons(IP_FRAG_OFFSET)))
			return verdict(HP_XDP_PASS, XDP_PASS);
		__u32 ihl = (*(__u8 *)ip & 0x0f) * 4;
		if (ihl < sizeof(*ip))
			return verdict(HP_XDP_PASS, XDP_PASS);
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip->saddr, 4);
		l4 = p + ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = p;
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return verdict(HP_XDP_PASS, XDP_PASS);
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		l4 = ip6 + 1;
	} else {
		return verdict(HP_XDP_PASS, XDP_PASS);
	}
	struct tcphdr *tcp = l4;
	if ((void *)(tcp + 1) > end)
		return verdict(HP_XDP_PASS, XDP_PASS);

	__u32 zero = 0;
	struct hp_xdp_conf *c = bpf_map_lookup_elem(&conf, &zero);
	if (!c)
		return verdict(HP_XDP_PASS, XDP_PASS);
	__u16 dport = bpf_ntohs(tcp->dest);
	if (!c->all_ports && !bpf_map_lookup_elem(&ports, &dport))
		return verdict(HP_XDP_PASS, XDP_PASS);

	struct hp_xdp_deny *d = bpf_map_lookup_elem(&deny, &key);
	if (d) {
		__sync_fetch_and_add(&d->drops, 1);
		return verdict(HP_XDP_DENY, XDP_DROP);
	}
	__u8 flags = ((__u8 *)tcp)[TCP_FLAGS_BYTE];
	if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
		count(HP_XDP_SYN);
		if (c->rate && !syn_allowed((const struct hp_xdp_addr *)key.addr, c))
			return verdict(HP_XDP_SYN_RATE, XDP_DROP);
	}
	return verdict(HP_XDP_PASS, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
