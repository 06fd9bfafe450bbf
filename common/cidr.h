/*
 * IPv4 and IPv6 prefixes ("10.0.0.0/8", "2001:db8::/32", a bare address is
 * a host prefix) for the XDP deny list and its configuration. An IPv4
 * prefix is kept as the IPv4-mapped IPv6 one (::ffff:a.b.c.d, length + 96)
 * so one table holds both families.
 */
#ifndef HELIOS_CIDR_H
#define HELIOS_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cidr {
	uint8_t addr[16]; /* network order; bits past len are zero */
	uint8_t len;      /* 0..128, counted on the IPv6 form */
	bool v4;
};

/* Parses s (len bytes; surrounding blanks are not allowed). Host bits set
 * past the prefix are an error ("10.1.2.3/8"), so a typo cannot widen a
 * rule silently. 0, or -1 with a reason in why. */
int cidr_parse(const char *s, size_t len, struct cidr *out, char *why, size_t whylen);
/* The canonical text: "10.0.0.0/8", "2001:db8::/32". */
void cidr_format(const struct cidr *c, char *out, size_t outlen);
bool cidr_equal(const struct cidr *a, const struct cidr *b);
/* Parses a comma-separated list of ports ("5432, 6432"); empty = none.
 * Returns how many (at most max), or -1 with a reason. */
int cidr_parse_ports(const char *s, uint16_t *ports, int max, char *why, size_t whylen);

#endif
