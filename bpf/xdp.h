/*
 * The XDP admission filter's maps, shared by the program (xdp.bpf.c) and
 * its loader (controlplane/xdp.c). Addresses are 16 bytes in network order,
 * an IPv4 one IPv4-mapped (::ffff:a.b.c.d), as common/cidr.h keeps them.
 * The includer provides __u8/__u16/__u32/__u64 (vmlinux.h or linux/types.h).
 */
#ifndef HELIOS_BPF_XDP_H
#define HELIOS_BPF_XDP_H

#define HP_XDP_MAX_DENY    16384         /* deny trie entries, config and runtime together */
#define HP_XDP_MAX_PORTS   64            /* as many as [xdp] ports may list */
#define HP_XDP_MAX_SOURCES 65536         /* SYN buckets (LRU: the least recent source goes) */
#define HP_XDP_TOKEN       1000000000ull /* one SYN in bucket units: rate x elapsed ns */

/* Counters (per-CPU array index). Every packet the program sees counts
 * once in exactly one of PASS, DENY or SYN_RATE; SYN counts SYNs (without
 * ACK) to a filtered port, including the ones dropped for their rate. */
enum { HP_XDP_PASS, HP_XDP_DENY, HP_XDP_SYN_RATE, HP_XDP_SYN, HP_XDP_NCOUNTERS };

/* Key of the deny trie: the layout of struct bpf_lpm_trie_key. prefixlen
 * is counted on the 128-bit form (an IPv4 /24 is 120). */
struct hp_xdp_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of the deny trie. */
struct hp_xdp_deny {
	__u64 drops;   /* packets this entry dropped (atomic add) */
	__u32 runtime; /* 1 = helioctl xdp deny add, 0 = xdp.deny (user space only) */
	__u32 pad;
};

/* Key of the SYN buckets. */
struct hp_xdp_addr {
	__u8 addr[16];
};

/* A source's token bucket, in units of HP_XDP_TOKEN per SYN. Updated
 * without a lock: two SYNs of one source on two CPUs at the same instant
 * may both take the last token. */
struct hp_xdp_bucket {
	__u64 tokens;
	__u64 last_ns;
};

/* The single entry of the conf array. */
struct hp_xdp_conf {
	__u64 rate;       /* SYNs per second per source; 0 = no limit */
	__u64 max_tokens; /* burst x HP_XDP_TOKEN */
	__u64 fill_ns;    /* time an empty bucket takes to fill up */
	__u32 all_ports;  /* 1: every TCP port is filtered, the ports map is unused */
	__u32 pad;
};

#endif
