/*
 * Unit tests for common/cidr: IPv4 and IPv6 prefixes (IPv4 kept
 * IPv4-mapped with the length counted on the IPv6 form), bare addresses,
 * refused forms, the canonical text, and port lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cidr.h"

static struct cidr parse_ok(const char *s)
{
	struct cidr c;
	char why[160];
	if (cidr_parse(s, strlen(s), &c, why, sizeof(why)) != 0)
		fail_msg("'%s' refused: %s", s, why);
	return c;
}

static void assert_refused(const char *s, const char *want)
{
	struct cidr c;
	char why[160];
	assert_int_equal(cidr_parse(s, strlen(s), &c, why, sizeof(why)), -1);
	assert_string_equal(why, want);
}

static void test_ipv4_prefix_is_kept_ipv4_mapped(void **state)
{
	struct cidr c = parse_ok("10.20.0.0/16");
	static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 20, 0, 0};

	assert_true(c.v4);
	assert_int_equal(c.len, 96 + 16);
	assert_memory_equal(c.addr, want, 16);
}

static void test_ipv6_prefix(void **state)
{
	struct cidr c = parse_ok("2001:db8::/32");
	static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8};

	assert_false(c.v4);
	assert_int_equal(c.len, 32);
	assert_memory_equal(c.addr, want, 16);
}

static void test_bare_address_is_a_host_prefix(void **state)
{
	assert_int_equal(parse_ok("192.0.2.7").len, 128);
	assert_int_equal(parse_ok("2001:db8::7").len, 128);
	assert_int_equal(parse_ok("0.0.0.0/0").len, 96);
	assert_int_equal(parse_ok("::/0").len, 0);
}

static void test_host_bits_past_the_prefix_are_refused(void **state)
{
	assert_refused("10.1.2.3/8", "'10.1.2.3/8' has address bits set past the prefix length");
	assert_refused("2001:db8::1/32",
	               "'2001:db8::1/32' has address bits set past the prefix length");
}

static void test_too_long_prefixes_and_bad_text_are_refused(void **state)
{
	assert_refused("10.0.0.0/33", "'10.0.0.0/33': an IPv4 prefix is at most /32");
	assert_refused("::/129", "'::/129': an IPv6 prefix is at most /128");
	assert_refused("10.0.0.0/", "'10.0.0.0/': the prefix length is not a number");
	assert_refused("10.0.0.0/-1", "'10.0.0.0/-1': the prefix length is not a number");
	assert_refused("10.0.0.0/8x", "'10.0.0.0/8x': the prefix length is not a number");
	assert_refused("10.0.0/8", "'10.0.0/8' is not an IPv4 or IPv6 address");
	assert_refused("example.com", "'example.com' is not an IPv4 or IPv6 address");
	assert_refused("", "empty prefix");
}

static void test_format_round_trips(void **state)
{
	static const char *const texts[] = {"10.0.0.0/8",    "192.0.2.7/32", "0.0.0.0/0",
	                                    "2001:db8::/32", "::1/128",      "::/0"};
	char out[64];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct cidr c = parse_ok(texts[i]);
		cidr_format(&c, out, sizeof(out));
		assert_string_equal(out, texts[i]);
		struct cidr again = parse_ok(out);
		assert_true(cidr_equal(&c, &again));
	}
	struct cidr host = parse_ok("192.0.2.7");
	cidr_format(&host, out, sizeof(out));
	assert_string_equal(out, "192.0.2.7/32");
	/* the canonical IPv6 text */
	struct cidr v6 = parse_ok("2001:0DB8:0000::/48");
	cidr_format(&v6, out, sizeof(out));
	assert_string_equal(out, "2001:db8::/48");
}

static void test_port_lists(void **state)
{
	uint16_t p[4];
	char why[160];

	assert_int_equal(cidr_parse_ports("5432, 6432,7000", p, 4, why, sizeof(why)), 3);
	assert_int_equal(p[0], 5432);
	assert_int_equal(p[1], 6432);
	assert_int_equal(p[2], 7000);
	assert_int_equal(cidr_parse_ports("", p, 4, why, sizeof(why)), 0);
	assert_int_equal(cidr_parse_ports(" , ", p, 4, why, sizeof(why)), 0);
	assert_int_equal(cidr_parse_ports("0", p, 4, why, sizeof(why)), -1);
	assert_string_equal(why, "'0' is not a port (1..65535)");
	assert_int_equal(cidr_parse_ports("5432,65536", p, 4, why, sizeof(why)), -1);
	assert_string_equal(why, "'65536' is not a port (1..65535)");
	assert_int_equal(cidr_parse_ports("54x", p, 4, why, sizeof(why)), -1);
	assert_string_equal(why, "'54x' is not a port (1..65535)");
	assert_int_equal(cidr_parse_ports("1,2,3,4,5", p, 4, why, sizeof(why)), -1);
	assert_string_equal(why, "more than 4 ports");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_prefix_is_kept_ipv4_mapped),
	    cmocka_unit_test(test_ipv6_prefix),
	    cmocka_unit_test(test_bare_address_is_a_host_prefix),
	    cmocka_unit_test(test_host_bits_past_the_prefix_are_refused),
	    cmocka_unit_test(test_too_long_prefixes_and_bad_text_are_refused),
	    cmocka_unit_test(test_format_round_trips),
	    cmocka_unit_test(test_port_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
