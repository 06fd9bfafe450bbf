/*
 * Unit tests for the XDP admission filter (bpf/xdp.bpf.c) through its
 * loader (controlplane/xdp.c): the program is loaded with xf_load, never
 * attached, and run on hand-built Ethernet/IPv4/IPv6/TCP packets with
 * bpf_prog_test_run_opts. The tests that need the kernel skip when not
 * root or when the build has no BPF.
 */
#include "cfg_testutil.h"

#include "controlplane/xdp.h"

#include <arpa/inet.h>

#if HELIOS_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#endif

#define XDP_DROP 1
#define XDP_PASS 2

#define TCP_SYN 0x02
#define TCP_ACK 0x10

/* 192.0.2.0/24 and 2001:db8:bad::/48 denied; ports 5432 and 6432; one SYN
 * per second per source after a burst of 3. */
#define BASE_CFG                                                                                   \
	NODE "[xdp]\n"                                                                             \
	     "ports = \"5432, 6432\"\n"                                                            \
	     "syn_rate_per_sec = 1\n"                                                              \
	     "syn_burst = 3\n"                                                                     \
	     "deny = \"192.0.2.0/24, 2001:db8:bad::/48\"\n"

struct pkt {
	uint8_t b[160];
	size_t len;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Ethernet header (with one 802.1Q tag when vlan) for ethertype; returns
 * the offset of the network header. */
static size_t eth(struct pkt *p, uint16_t type, bool vlan)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->b, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
	if (vlan) {
		put16(p->b + 12, 0x8100);
		put16(p->b + 14, 42);
		put16(p->b + 16, type);
		return 18;
	}
	put16(p->b + 12, type);
	return 14;
}

/* A 20-byte TCP header at off: source port 40000, flags. */
static void tcp(struct pkt *p, size_t off, uint16_t dport, uint8_t flags)
{
	put16(p->b + off, 40000);
	put16(p->b + off + 2, dport);
	p->b[off + 12] = 5 << 4;
	p->b[off + 13] = flags;
	p->len = off + 20;
}

/* IPv4 TCP from src to dport; opt_words 32-bit words of IP options. */
static struct pkt tcp4(const char *src, uint16_t dport, uint8_t flags, bool vlan, int opt_words)
{
	struct pkt p;
	size_t ip = eth(&p, 0x0800, vlan), ihl = 20 + 4 * (size_t)opt_words;
	p.b[ip] = (uint8_t)(0x40 | (ihl / 4));
	put16(p.b + ip + 2, (uint16_t)(ihl + 20));
	p.b[ip + 8] = 64;
	p.b[ip + 9] = 6; /* TCP */
	assert_int_equal(inet_pton(AF_INET, src, p.b + ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", p.b + ip + 16), 1);
	for (size_t i = 20; i < ihl; i++)
		p.b[ip + i] = 1; /* NOP options */
	tcp(&p, ip + ihl, dport, flags);
	return p;
}

/* IPv6 TCP from src to dport; next is the header after the fixed one (6 =
 * TCP, 0 = a hop-by-hop header, which the filter does not walk). */
static struct pkt tcp6(const char *src, uint16_t dport, uint8_t flags, uint8_t next)
{
	struct pkt p;
	size_t ip = eth(&p, 0x86DD, false);
	p.b[ip] = 0x60;
	put16(p.b + ip + 4, 20);
	p.b[ip + 6] = next;
	p.b[ip + 7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, p.b + ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", p.b + ip + 24), 1);
	tcp(&p, ip + 40, dport, flags);
	return p;
}

#if HELIOS_HAVE_BPF
/* The verdict of one run of the program on p. */
static int run(struct xf *x, const struct pkt *p)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = (__u32)p->len,
	            .repeat = 1);
	int r = bpf_prog_test_run_opts(xf_prog_fd(x), &o);
	if (r < 0)
		fail_msg("bpf_prog_test_run_opts: %s", strerror(-r));
	return (int)o.retval;
}
#else
static int run(struct xf *x, const struct pkt *p)
{
	(void)x;
	(void)p;
	return -1;
}
#endif

/* A filter loaded (not attached) with text's [xdp]; skips the test when
 * the program cannot be loaded here. */
static struct xf *loaded(const char *text)
{
#if !HELIOS_HAVE_BPF
	print_message("this build has no BPF support: skipped\n");
	skip();
#endif
	if (geteuid() != 0) {
		print_message("loading an XDP program needs root: skipped\n");
		skip();
	}
	struct cfg *c = load_ok(text);
	struct xf *x = xf_new();
	char err[512];
	assert_non_null(x);
	if (xf_load(x, c, err, sizeof(err)) < 0) {
		cfg_free(c);
		xf_free(x);
		fail_msg("xf_load: %s", err);
	}
	cfg_free(c);
	return x;
}

static uint64_t drops_of(struct xf *x, const char *cidr)
{
	struct xf_entry *v;
	size_t n;
	char msg[256];
	uint64_t d = UINT64_MAX;
	assert_int_equal(xf_deny_list(x, &v, &n, msg, sizeof(msg)), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].cidr, cidr))
			d = v[i].drops;
	free(v);
	if (d == UINT64_MAX)
		fail_msg("%s is not in the deny list", cidr);
	return d;
}

static void test_denied_ipv4_prefix_is_dropped_and_other_sources_pass(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt p;

	p = tcp4("192.0.2.77", 5432, TCP_ACK, false, 0);
	assert_int_equal(run(x, &p), XDP_DROP);
	p = tcp4("192.0.2.1", 5432, TCP_SYN, false, 0);
	assert_int_equal(run(x, &p), XDP_DROP);
	p = tcp4("192.0.3.1", 5432, TCP_ACK, false, 0);
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp4("198.51.100.1", 5432, TCP_ACK, false, 0);
	assert_int_equal(run(x, &p), XDP_PASS);
	assert_int_equal(drops_of(x, "192.0.2.0/24"), 2);
	xf_free(x);
}

static void test_ipv6_prefix_matches_only_its_addresses(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt p;

	p = tcp6("2001:db8:bad:ffff::5", 6432, TCP_ACK, 6);
	assert_int_equal(run(x, &p), XDP_DROP);
	p = tcp6("2001:db8:bae::5", 6432, TCP_ACK, 6);
	assert_int_equal(run(x, &p), XDP_PASS);
	/* an IPv4-mapped IPv6 source is the IPv4 address: the v4 entry applies */
	p = tcp6("::ffff:192.0.2.9", 6432, TCP_ACK, 6);
	assert_int_equal(run(x, &p), XDP_DROP);
	assert_int_equal(drops_of(x, "2001:db8:bad::/48"), 1);
	assert_int_equal(drops_of(x, "192.0.2.0/24"), 1);
	xf_free(x);
}

static void test_packet_to_a_port_outside_the_set_passes(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt p;

	p = tcp4("192.0.2.77", 80, TCP_SYN, false, 0);
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp6("2001:db8:bad::1", 5433, TCP_SYN, 6);
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp4("192.0.2.77", 6432, TCP_SYN, false, 0);
	assert_int_equal(run(x, &p), XDP_DROP);
	xf_free(x);
}

static void test_empty_port_set_filters_every_tcp_port(void **state)
{
	struct xf *x = loaded(NODE "[xdp]\ndeny = \"192.0.2.0/24\"\n");
	struct pkt p;

	p = tcp4("192.0.2.77", 80, TCP_SYN, false, 0);
	assert_int_equal(run(x, &p), XDP_DROP);
	p = tcp4("192.0.2.77", 65535, TCP_ACK, false, 0);
	assert_int_equal(run(x, &p), XDP_DROP);
	xf_free(x);
}

static void test_syn_burst_passes_then_drops_and_non_syn_still_pass(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt syn = tcp4("203.0.113.9", 5432, TCP_SYN, false, 0);
	struct pkt ack = tcp4("203.0.113.9", 5432, TCP_ACK, false, 0);
	struct pkt synack = tcp4("203.0.113.9", 5432, TCP_SYN | TCP_ACK, false, 0);
	struct pkt other = tcp4("203.0.113.10", 5432, TCP_SYN, false, 0);
	struct pkt syn6 = tcp6("2001:db8:1::9", 5432, TCP_SYN, 6);

	for (int i = 0; i < 3; i++)
		assert_int_equal(run(x, &syn), XDP_PASS);
	assert_int_equal(run(x, &syn), XDP_DROP);
	assert_int_equal(run(x, &syn), XDP_DROP);
	/* the source's other packets are not rate limited */
	assert_int_equal(run(x, &ack), XDP_PASS);
	assert_int_equal(run(x, &synack), XDP_PASS);
	/* buckets are per source, IPv6 ones too */
	assert_int_equal(run(x, &other), XDP_PASS);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run(x, &syn6), XDP_PASS);
	assert_int_equal(run(x, &syn6), XDP_DROP);
	struct xf_status st;
	xf_get_status(x, &st);
	assert_int_equal(st.syns, 10);
	assert_int_equal(st.syn_rate_dropped, 3);
	xf_free(x);
}

static void test_counters_move_by_exactly_the_packets_sent(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct xf_status a, b;
	struct pkt p;

	xf_get_status(x, &a);
	p = tcp4("192.0.2.5", 5432, TCP_SYN, false, 0); /* deny: not a counted SYN */
	run(x, &p);
	run(x, &p);
	p = tcp4("198.51.100.7", 5432, TCP_SYN, false, 0); /* 3 SYNs pass, 1 over the rate */
	for (int i = 0; i < 4; i++)
		run(x, &p);
	p = tcp4("198.51.100.7", 80, TCP_SYN, false, 0); /* other port: pass */
	run(x, &p);
	p = tcp4("198.51.100.7", 5432, TCP_ACK, false, 0);
	run(x, &p);
	xf_get_status(x, &b);
	assert_int_equal(b.denied - a.denied, 2);
	assert_int_equal(b.syn_rate_dropped - a.syn_rate_dropped, 1);
	assert_int_equal(b.passed - a.passed, 5);
	assert_int_equal(b.syns - a.syns, 4);
	xf_free(x);
}

static void test_vlan_ip_options_and_unfiltered_traffic(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt p;

	p = tcp4("192.0.2.8", 5432, TCP_ACK, true, 0);
	assert_int_equal(run(x, &p), XDP_DROP); /* behind a VLAN tag */
	p = tcp4("192.0.2.8", 5432, TCP_ACK, false, 3);
	assert_int_equal(run(x, &p), XDP_DROP); /* IHL 8: the TCP header moves */
	p = tcp4("192.0.2.8", 5432, TCP_ACK, false, 0);
	p.b[23] = 17; /* UDP */
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp4("192.0.2.8", 5432, TCP_ACK, false, 0);
	put16(p.b + 20, 0x0010); /* a non-first fragment: no TCP header */
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp4("192.0.2.8", 5432, TCP_ACK, false, 0);
	p.len -= 1; /* TCP header cut short */
	assert_int_equal(run(x, &p), XDP_PASS);
	p = tcp6("2001:db8:bad::1", 5432, TCP_ACK, 0);
	assert_int_equal(run(x, &p), XDP_PASS); /* extension headers are not walked */
	eth(&p, 0x0806, false);                 /* ARP */
	p.len = 42;
	assert_int_equal(run(x, &p), XDP_PASS);
	xf_free(x);
}

static void test_runtime_deny_entries_add_list_and_delete(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct pkt p = tcp4("198.51.100.20", 5432, TCP_ACK, false, 0);
	char msg[512];
	struct xf_entry *v;
	size_t n;

	assert_int_equal(run(x, &p), XDP_PASS);
	assert_int_equal(xf_deny_add(x, "198.51.100.0/24", msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "198.51.100.0/24"));
	assert_int_equal(run(x, &p), XDP_DROP);
	assert_int_equal(xf_deny_list(x, &v, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].cidr, "192.0.2.0/24");
	assert_true(v[0].config && !v[0].runtime);
	assert_string_equal(v[1].cidr, "2001:db8:bad::/48");
	assert_string_equal(v[2].cidr, "198.51.100.0/24");
	assert_true(v[2].runtime && !v[2].config);
	assert_int_equal(v[2].drops, 1);
	free(v);

	/* again: nothing changes; a config entry cannot be deleted here */
	assert_int_equal(xf_deny_add(x, "192.0.2.0/24", msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "already"));
	assert_int_equal(xf_deny_del(x, "192.0.2.0/24", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "xdp.deny"));
	assert_int_equal(xf_deny_del(x, "10.0.0.0/8", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "10.0.0.0/8 is not in the deny list");

	assert_int_equal(xf_deny_del(x, "198.51.100.0/24", msg, sizeof(msg)), 0);
	assert_int_equal(run(x, &p), XDP_PASS);
	xf_free(x);
}

static void test_bad_prefix_is_refused_with_the_parser_reason(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	char msg[512];

	assert_int_equal(xf_deny_add(x, "10.1.2.3/8", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "'10.1.2.3/8' has address bits set past the prefix length");
	assert_int_equal(xf_deny_add(x, "10.0.0.0/33", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "'10.0.0.0/33': an IPv4 prefix is at most /32");
	assert_int_equal(xf_deny_del(x, "nonsense", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "'nonsense' is not an IPv4 or IPv6 address");
	xf_free(x);
}

static void test_new_configuration_updates_maps_and_keeps_runtime_entries(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	char msg[512], err[512];
	struct pkt old = tcp4("192.0.2.1", 80, TCP_ACK, false, 0);
	struct pkt run_src = tcp4("198.51.100.1", 80, TCP_ACK, false, 0);
	struct pkt fresh = tcp4("10.9.8.7", 80, TCP_ACK, false, 0);

	assert_int_equal(xf_deny_add(x, "198.51.100.0/24", msg, sizeof(msg)), 0);
	/* 80 is not filtered yet */
	assert_int_equal(run(x, &run_src), XDP_PASS);
	struct cfg *c = load_ok(NODE "[xdp]\nports = \"\"\ndeny = \"10.0.0.0/8\"\n");
	assert_int_equal(xf_load(x, c, err, sizeof(err)), 0);
	cfg_free(c);
	assert_int_equal(run(x, &old), XDP_PASS);     /* left xdp.deny */
	assert_int_equal(run(x, &run_src), XDP_DROP); /* runtime: kept; every port now */
	assert_int_equal(run(x, &fresh), XDP_DROP);   /* new in xdp.deny */
	struct xf_status st;
	xf_get_status(x, &st);
	assert_int_equal(st.deny_entries, 2);
	assert_int_equal(st.syn_rate_per_sec, 0);
	/* no rate limit any more */
	struct pkt syn = tcp4("203.0.113.50", 5432, TCP_SYN, false, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(run(x, &syn), XDP_PASS);
	xf_free(x);
}

static void test_deny_verbs_refused_when_not_enabled(void **state)
{
	struct xf *x = xf_new();
	char msg[256];
	struct xf_entry *v;
	size_t n;
	struct xf_status st;

	assert_non_null(x);
	assert_int_equal(xf_deny_add(x, "10.0.0.0/8", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "xdp is not enabled (set xdp.enabled and xdp.interface)");
	assert_int_equal(xf_deny_del(x, "10.0.0.0/8", msg, sizeof(msg)), -1);
	assert_string_equal(msg, "xdp is not enabled (set xdp.enabled and xdp.interface)");
	assert_int_equal(xf_deny_list(x, &v, &n, msg, sizeof(msg)), -1);
	assert_string_equal(msg, "xdp is not enabled (set xdp.enabled and xdp.interface)");
	xf_get_status(x, &st);
	assert_false(st.enabled);
	assert_false(st.attached);
	xf_free(x);
}

static void test_attach_to_a_missing_interface_fails_with_the_reason(void **state)
{
	struct xf *x = loaded(BASE_CFG);
	struct cfg *c = load_ok(
	    NODE "[xdp]\nenabled = true\ninterface = \"hpnosuch0\"\ndeny = \"10.0.0.0/8\"\n");
	char err[512], msg[256];
	struct xf_status st;

	assert_int_equal(xf_apply(x, c, err, sizeof(err)), -1);
	assert_string_equal(err, "cannot attach to hpnosuch0: No such device");
	xf_get_status(x, &st);
	assert_true(st.enabled && st.loaded && !st.attached);
	assert_string_equal(st.error, err);
	/* runtime entries are still taken: they apply once it attaches */
	assert_int_equal(xf_deny_add(x, "192.0.2.0/24", msg, sizeof(msg)), 0);
	cfg_free(c);
	/* disabled: unloaded, and the deny verbs say so */
	c = load_ok(NODE "[xdp]\nenabled = false\n");
	assert_int_equal(xf_apply(x, c, err, sizeof(err)), 0);
	cfg_free(c);
	assert_int_equal(xf_prog_fd(x), -1);
	assert_int_equal(xf_deny_add(x, "192.0.2.0/24", msg, sizeof(msg)), -1);
	xf_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_denied_ipv4_prefix_is_dropped_and_other_sources_pass),
	    cmocka_unit_test(test_ipv6_prefix_matches_only_its_addresses),
	    cmocka_unit_test(test_packet_to_a_port_outside_the_set_passes),
	    cmocka_unit_test(test_empty_port_set_filters_every_tcp_port),
	    cmocka_unit_test(test_syn_burst_passes_then_drops_and_non_syn_still_pass),
	    cmocka_unit_test(test_counters_move_by_exactly_the_packets_sent),
	    cmocka_unit_test(test_vlan_ip_options_and_unfiltered_traffic),
	    cmocka_unit_test(test_runtime_deny_entries_add_list_and_delete),
	    cmocka_unit_test(test_bad_prefix_is_refused_with_the_parser_reason),
	    cmocka_unit_test(test_new_configuration_updates_maps_and_keeps_runtime_entries),
	    cmocka_unit_test(test_deny_verbs_refused_when_not_enabled),
	    cmocka_unit_test(test_attach_to_a_missing_interface_fails_with_the_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
