/* IP prefixes and port lists for the XDP filter (see cidr.h). */
#include "common/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cidr_parse(const char *s, size_t len, struct cidr *out, char *why, size_t whylen)
{
	char buf[64];
	if (len == 0 || len >= sizeof(buf)) {
		snprintf(why, whylen, "%s",
		         len ? "too long for an address prefix" : "empty prefix");
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *slash = strchr(buf, '/');
	long plen = -1;
	if (slash) {
		*slash = '\0';
		char *end;
		if (!slash[1] || slash[1] < '0' || slash[1] > '9') {
			snprintf(why, whylen, "'%.*s': the prefix length is not a number", (int)len,
			         s);
			return -1;
		}
		plen = strtol(slash + 1, &end, 10);
		if (*end) {
			snprintf(why, whylen, "'%.*s': the prefix length is not a number", (int)len,
			         s);
			return -1;
		}
	}
	memset(out, 0, sizeof(*out));
	uint8_t a4[4];
	if (inet_pton(AF_INET, buf, a4) == 1) {
		if (plen > 32) {
			snprintf(why, whylen, "'%.*s': an IPv4 prefix is at most /32", (int)len, s);
			return -1;
		}
		out->v4 = true;
		out->addr[10] = out->addr[11] = 0xff;
		memcpy(out->addr + 12, a4, 4);
		out->len = (uint8_t)(96 + (plen < 0 ? 32 : plen));
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		if (plen > 128) {
			snprintf(why, whylen, "'%.*s': an IPv6 prefix is at most /128", (int)len,
			         s);
			return -1;
		}
		out->len = (uint8_t)(plen < 0 ? 128 : plen);
	} else {
		snprintf(why, whylen, "'%.*s' is not an IPv4 or IPv6 address", (int)len, s);
		return -1;
	}
	for (int bit = out->len; bit < 128; bit++) {
		if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
			snprintf(why, whylen, "'%.*s' has address bits set past the prefix length",
			         (int)len, s);
			return -1;
		}
	}
	return 0;
}

void cidr_format(const struct cidr *c, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN];
	if (c->v4)
		inet_ntop(AF_INET, c->addr + 12, a, sizeof(a));
	else
		inet_ntop(AF_INET6, c->addr, a, sizeof(a));
	snprintf(out, outlen, "%s/%d", a, c->v4 ? c->len - 96 : c->len);
}

bool cidr_equal(const struct cidr *a, const struct cidr *b)
{
	return a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

int cidr_parse_ports(const char *s, uint16_t *ports, int max, char *why, size_t whylen)
{
	int n = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (!*s)
			break;
		char *end;
		long p = strtol(s, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (end == s || p < 1 || p > 65535 || (*end && *end != ',')) {
			snprintf(why, whylen, "'%.*s' is not a port (1..65535)",
			         (int)strcspn(s, ","), s);
			return -1;
		}
		if (n == max) {
			snprintf(why, whylen, "more than %d ports", max);
			return -1;
		}
		ports[n++] = (uint16_t)p;
		s = end;
	}
	return n;
}
