/*
 * libFuzzer target: the relay-path header scanner. The first two input bytes
 * choose how the rest is cut into chunks; each chunk is fed to pgw_scan from
 * its own exact-size heap block. The headers found must be the same as with
 * the whole buffer in one chunk and agree with pgw_next_msg walking the
 * buffer. Message bodies also go through pgw_error_field and pgw_get_str.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/pg/pgw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVS 4096

struct ev {
	uint8_t type;
	bool bad;
	uint32_t len;
	size_t end; /* absolute offset just past the header */
};

struct run {
	struct ev evs[MAX_EVS];
	int n;
};

static struct run whole, chunked;

/* Cheap deterministic chunk sizes from a seed: 1..max. */
static size_t next_chunk(uint32_t *x, size_t max)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return 1 + *x % max;
}

/* Scans buf[0..n) cut into chunks (max_chunk 0: one chunk). Stops at BAD.
 * Each chunk is copied to the tail of one n-byte heap block, so it ends where
 * the allocation does and a read past the chunk is caught. */
static void scan(const uint8_t *buf, size_t n, size_t max_chunk, uint32_t seed, struct run *r)
{
	struct pgw_scan sc;
	size_t start = 0;
	uint8_t *block = malloc(n);

	if (!block)
		abort();
	memset(&sc, 0, sizeof(sc));
	r->n = 0;
	do {
		size_t clen = max_chunk ? next_chunk(&seed, max_chunk) : n;
		if (clen > n - start)
			clen = n - start;
		uint8_t *chunk = block + n - clen;
		memcpy(chunk, buf + start, clen);
		size_t pos = 0;
		for (;;) {
			enum pgw_scan_ev e = pgw_scan(&sc, chunk, clen, &pos);
			if (pos > clen)
				abort();
			if (e == PGW_SCAN_END) {
				if (pos != clen)
					abort();
				break;
			}
			if (r->n == MAX_EVS)
				abort(); /* cannot happen: 5 bytes per header */
			struct ev *v = &r->evs[r->n++];
			v->type = sc.type;
			v->bad = e == PGW_SCAN_BAD;
			v->len = sc.len;
			v->end = start + pos;
			if (v->bad) {
				free(block);
				return;
			}
			if (e != PGW_SCAN_HEADER || sc.len > PGW_MAX_MESSAGE - 4)
				abort();
		}
		start += clen;
	} while (start < n);
	free(block);
}

static void read_fields(const uint8_t *body, uint32_t len)
{
	static const char fields[] = "SVCMHDPWsqtcdnFLR";
	for (size_t i = 0; i < sizeof(fields) - 1; i++) {
		const char *v = pgw_error_field(body, len, fields[i]);
		if (v && ((const uint8_t *)v < body || (const uint8_t *)v >= body + len ||
		          !memchr(v, 0, (size_t)(body + len - (const uint8_t *)v))))
			abort();
	}
	uint32_t off = 0;
	while (pgw_get_str(body, len, &off))
		if (off > len)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max_chunk = 1 + data[0] % 64;
	uint32_t seed = 0x9e3779b9u ^ data[1];
	const uint8_t *buf = data + 2;
	size_t n = size - 2;
	if (n == 0)
		return 0;

	scan(buf, n, 0, 0, &whole);
	scan(buf, n, max_chunk, seed, &chunked);
	if (whole.n != chunked.n)
		abort();
	for (int i = 0; i < whole.n; i++)
		if (whole.evs[i].type != chunked.evs[i].type ||
		    whole.evs[i].bad != chunked.evs[i].bad ||
		    whole.evs[i].len != chunked.evs[i].len ||
		    whole.evs[i].end != chunked.evs[i].end)
			abort();

	/* pgw_next_msg must see the same messages. buf ends where the input block
	 * does, so a read past n at any offset is caught. */
	size_t off = 0;
	int i = 0;
	for (;;) {
		struct pgw_msg m;
		size_t rest = n - off;
		enum pgw_status s = pgw_next_msg(buf + off, rest, PGW_MAX_MESSAGE, &m);
		if (s == PGW_OK) {
			if (i >= whole.n || whole.evs[i].bad || whole.evs[i].type != m.type ||
			    whole.evs[i].len != m.len || whole.evs[i].end != off + 5 ||
			    m.total != m.len + 5 || m.total > rest || m.body != buf + off + 5)
				abort();
			read_fields(m.body, m.len);
			off += m.total;
			i++;
		} else if (s == PGW_BAD) {
			if (i != whole.n - 1 || !whole.evs[i].bad || whole.evs[i].end != off + 5)
				abort();
			break;
		} else {
			/* Incomplete: the scanner may have seen this header, never a later one. */
			if (rest >= 5 ? (i != whole.n - 1 || whole.evs[i].bad) : i != whole.n)
				abort();
			break;
		}
	}

	/* The whole buffer read as an ErrorResponse body. */
	read_fields(buf, (uint32_t)n);
	return 0;
}
