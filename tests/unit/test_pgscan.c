/*
 * Unit tests for the splice program's PostgreSQL message scanner
 * (bpf/pgscan.h), compiled for userspace exactly as the BPF program steps
 * it: one pgscan_step() per loop iteration over each buffer. Streams are
 * cut at random points (down to one byte per buffer) and the counts are
 * compared with the messages the test wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/types.h>

#include "bpf/pgscan.h"
#include "tests/unit/rng_testutil.h"

struct stream {
	uint8_t *buf;
	size_t len, cap;
	uint64_t by_type[HP_NTYPES];
	uint64_t ready[3];
	uint64_t msgs;
	uint8_t last_status;
};

static void put_msg(struct stream *s, uint8_t type, const uint8_t *body, uint32_t n)
{
	if (s->len + 5 + n > s->cap) {
		s->cap = (s->len + 5 + n) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	uint8_t *p = s->buf + s->len;
	uint32_t l = n + 4;
	p[0] = type;
	p[1] = (uint8_t)(l >> 24);
	p[2] = (uint8_t)(l >> 16);
	p[3] = (uint8_t)(l >> 8);
	p[4] = (uint8_t)l;
	if (n)
		memcpy(p + 5, body, n);
	s->len += 5 + n;
	s->by_type[type & (HP_NTYPES - 1)]++;
	s->msgs++;
	if (type == 'Z' && n == 1) {
		s->last_status = body[0];
		s->ready[body[0] == 'I' ? 0 : body[0] == 'T' ? 1 : 2]++;
	}
}

/* Steps the scanner over one buffer like the BPF loop does; returns the
 * number of steps, or -1 when a step failed. */
static long scan_buffer(struct hp_conn *c, const uint8_t *data, uint32_t len, long *term_at)
{
	uint32_t off = 0;
	long steps = 0;
	struct pgscan_ev ev;
	while (off < len) {
		long next = pgscan_step(c, (void *)data, off, len, &ev);
		steps++;
		if (next < 0)
			return -1;
		assert_true(next > off && next <= len); /* always progress, never past the end */
		if (term_at && ev.type == 'X')
			*term_at = ev.hdr_at;
		off = (uint32_t)next;
	}
	return steps;
}

/* A random server-like and client-like mix: small rows, empty messages,
 * ReadyForQuery with each status, now and then a large body. */
static void random_stream(struct stream *s, int n)
{
	static const uint8_t types[] = {'D', 'T', 'C', 'Z', 'E', 'N', 'S', 'Q', 'P', 'B',
	                                'd', 'c', '1', '2', 'n', 'I', 's', 'A', 'K', 'R'};
	static uint8_t body[70000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(rnd() & 0xff); /* includes bytes that look like headers */
	for (int i = 0; i < n; i++) {
		uint8_t t = types[rnd() % sizeof(types)];
		if (t == 'Z') {
			uint8_t st = "ITE"[rnd() % 3];
			put_msg(s, 'Z', &st, 1);
			continue;
		}
		uint32_t len = (uint32_t)(rnd() % 8 == 0 ? rnd() % sizeof(body) : rnd() % 64);
		put_msg(s, t, body, len);
	}
}

static void check_counts(const struct hp_conn *c, const struct stream *s)
{
	for (int t = 0; t < HP_NTYPES; t++)
		assert_int_equal(c->by_type[t], s->by_type[t]);
	assert_int_equal(c->msgs, s->msgs);
	assert_memory_equal(c->ready, s->ready, sizeof(s->ready));
	assert_int_equal(c->status, s->last_status);
	assert_true(pgscan_at_boundary(c));
}

static void scanner_counts_every_message_whatever_the_buffer_cuts(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 40; seed++) {
		rng_state = seed * 0x9e3779b97f4a7c15ull;
		struct stream s = {0};
		random_stream(&s, 400);
		/* seed 1: one byte per buffer; others: random cuts up to 70 KB */
		struct hp_conn c = {0};
		size_t off = 0;
		while (off < s.len) {
			size_t n = seed == 1 ? 1 : 1 + rnd() % (seed % 2 ? 16 : 70000);
			if (n > s.len - off)
				n = s.len - off;
			assert_true(scan_buffer(&c, s.buf + off, (uint32_t)n, NULL) > 0);
			off += n;
		}
		check_counts(&c, &s);
		free(s.buf);
	}
}

static void a_50mb_copydata_costs_one_step_per_buffer(void **state)
{
	(void)state;
	static uint8_t buf[65536]; /* payload bytes are never read: zeros do */
	const uint32_t body = 50u * 1024 * 1024;
	struct hp_conn c = {0};
	buf[0] = 'd';
	buf[1] = (uint8_t)((body + 4) >> 24);
	buf[2] = (uint8_t)((body + 4) >> 16);
	buf[3] = (uint8_t)((body + 4) >> 8);
	buf[4] = (uint8_t)(body + 4);
	uint64_t total = 5ull + body, seen = 0;
	long steps = 0;
	while (seen < total) {
		uint32_t n = total - seen < sizeof(buf) ? (uint32_t)(total - seen) : sizeof(buf);
		long k = scan_buffer(&c, buf, n, NULL);
		assert_true(k == 1 ||
		            (seen == 0 && k == 2)); /* header + payload run in the first */
		steps += k;
		seen += n;
		if (seen == n)
			memset(buf, 0, 5);
	}
	assert_int_equal(c.by_type['d'], 1);
	assert_true(pgscan_at_boundary(&c));
	assert_int_equal(steps, (long)((total + sizeof(buf) - 1) / sizeof(buf)) + 1);
	/* and the next message is found right after it */
	static const uint8_t z[] = {'Z', 0, 0, 0, 5, 'T'};
	assert_true(scan_buffer(&c, z, sizeof(z), NULL) > 0);
	assert_int_equal(c.ready[1], 1);
	assert_int_equal(c.status, 'T');
}

static void status_byte_in_the_next_buffer_is_still_read(void **state)
{
	(void)state;
	static const uint8_t hdr[] = {'Z', 0, 0, 0, 5};
	static const uint8_t st[] = {'E'};
	struct hp_conn c = {0};
	assert_true(scan_buffer(&c, hdr, sizeof(hdr), NULL) > 0);
	assert_int_equal(c.ready[2], 0);
	assert_false(pgscan_at_boundary(&c)); /* the status byte is still owed */
	assert_true(scan_buffer(&c, st, sizeof(st), NULL) > 0);
	assert_int_equal(c.ready[2], 1);
	assert_int_equal(c.status, 'E');
	assert_true(pgscan_at_boundary(&c));
}

static void a_length_below_four_stops_counting(void **state)
{
	(void)state;
	static const uint8_t bad[] = {'Q', 0, 0, 0, 3, 'x', 'Q', 0, 0, 0, 4};
	struct hp_conn c = {0};
	assert_int_equal(scan_buffer(&c, bad, sizeof(bad), NULL), -1);
	assert_int_equal(c.bad, 1);
	assert_int_equal(c.by_type['Q'], 0);
	assert_false(pgscan_at_boundary(&c));
}

static void client_requests_and_terminate_position(void **state)
{
	(void)state;
	struct stream s = {0};
	put_msg(&s, 'Q', (const uint8_t *)"SELECT 1", 9);
	put_msg(&s, 'P', (const uint8_t *)"\0SELECT 2\0\0\0", 12);
	put_msg(&s, 'B', (const uint8_t *)"\0\0\0\0\0\0\0\0", 8);
	put_msg(&s, 'E', (const uint8_t *)"\0\0\0\0\0", 5);
	put_msg(&s, 'S', NULL, 0);
	put_msg(&s, 'F', (const uint8_t *)"\0\0\0\1\0\0\0\0\0\0", 10);
	size_t x_at = s.len;
	put_msg(&s, 'X', NULL, 0);
	struct hp_conn c = {0};
	long term = 0;
	/* all in one buffer: the Terminate header's offset is reported */
	assert_true(scan_buffer(&c, s.buf, (uint32_t)s.len, &term) > 0);
	assert_int_equal(term, (long)x_at);
	assert_int_equal(pgscan_requests(&c), 3); /* Q, S, F: one ReadyForQuery each */
	/* cut inside the Terminate header: its start lies in an earlier buffer */
	struct hp_conn d = {0};
	term = 0;
	assert_true(scan_buffer(&d, s.buf, (uint32_t)x_at + 2, &term) > 0);
	assert_true(scan_buffer(&d, s.buf + x_at + 2, 3, &term) > 0);
	assert_true(term < 0);
	assert_int_equal(d.by_type['X'], 1);
	free(s.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scanner_counts_every_message_whatever_the_buffer_cuts),
	    cmocka_unit_test(a_50mb_copydata_costs_one_step_per_buffer),
	    cmocka_unit_test(status_byte_in_the_next_buffer_is_still_read),
	    cmocka_unit_test(a_length_below_four_stops_counting),
	    cmocka_unit_test(client_requests_and_terminate_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
