/*
 * Unit tests for dataplane/pg/pgw: message framing at every split point,
 * startup packet parsing (good, truncated and hostile), the incremental header
 * scanner fed in every chunking, and the builders read back by the parsers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataplane/pg/pgw.h"

/* Copies len bytes into a heap block of exactly len bytes, so ASan flags any read past len. */
static uint8_t *exact(const void *p, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	assert_non_null(b);
	memcpy(b, p, len);
	return b;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Writes a typed message (type, length, payload) at buf; returns its size. */
static size_t mk_msg(uint8_t *buf, uint8_t type, const void *payload, uint32_t plen)
{
	buf[0] = type;
	put_be32(buf + 1, plen + 4);
	if (plen)
		memcpy(buf + 5, payload, plen);
	return (size_t)plen + 5;
}

/* Writes a startup-phase packet: length (8 + body_len), code, body. */
static size_t mk_startup(uint8_t *buf, uint32_t code, const char *body, size_t body_len)
{
	put_be32(buf, (uint32_t)(8 + body_len));
	put_be32(buf + 4, code);
	if (body_len)
		memcpy(buf + 8, body, body_len);
	return 8 + body_len;
}

/* Body literals spell every NUL explicitly: sizeof - 1 drops only the literal's own. */
#define MK_STARTUP(buf, code, lit) mk_startup(buf, code, lit, sizeof(lit) - 1)

/* The exact-size copy the last parse_startup_exact ran on. It stays alive until
 * the next call (or teardown) because the parsed strings point into it. */
static uint8_t *startup_copy;

/* Parses the packet from an exact-size heap copy, so overreads are caught. */
static enum pgw_status parse_startup_exact(const uint8_t *pkt, size_t n, struct pgw_startup *st,
                                           const char **why)
{
	free(startup_copy);
	startup_copy = exact(pkt, n);
	return pgw_parse_startup(startup_copy, n, st, why);
}

static int free_startup_copy(void **state __attribute__((unused)))
{
	free(startup_copy);
	startup_copy = NULL;
	return 0;
}

/* Asserts the packet is refused with a reason for the log and the client. */
static void assert_startup_bad(const uint8_t *pkt, size_t n)
{
	struct pgw_startup st;
	const char *why = NULL;

	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_BAD);
	assert_non_null(why);
	assert_true(why[0] != '\0');
}

/* ---- pgw_next_msg ---- */

static void test_next_msg_parses_complete_message(void **state __attribute__((unused)))
{
	uint8_t buf[64];
	size_t n = mk_msg(buf, 'Q', "SELECT 1", 9);
	struct pgw_msg m;

	assert_int_equal(pgw_next_msg(buf, n, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, 'Q');
	assert_int_equal(m.len, 9);
	assert_int_equal(m.total, n);
	assert_ptr_equal(m.body, buf + 5);
	assert_string_equal((const char *)m.body, "SELECT 1");
}

static void test_next_msg_needs_more_at_every_split_offset(void **state __attribute__((unused)))
{
	uint8_t buf[64];
	size_t n = mk_msg(buf, 'D', "0123456789abcdef", 16);
	struct pgw_msg m;

	for (size_t k = 0; k < n; k++) {
		uint8_t *b = exact(buf, k);
		assert_int_equal(pgw_next_msg(b, k, PGW_MAX_MESSAGE, &m), PGW_NEED_MORE);
		free(b);
	}
	uint8_t *b = exact(buf, n);
	assert_int_equal(pgw_next_msg(b, n, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.total, n);
	assert_int_equal(m.len, 16);
	assert_memory_equal(m.body, "0123456789abcdef", 16);
	free(b);
}

static void test_next_msg_walks_two_coalesced_messages(void **state __attribute__((unused)))
{
	uint8_t buf[64];
	size_t n = mk_msg(buf, 'C', "SELECT 1", 9);
	n += mk_msg(buf + n, 'Z', "I", 1);
	struct pgw_msg m;

	assert_int_equal(pgw_next_msg(buf, n, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, 'C');
	assert_int_equal(m.len, 9);
	assert_int_equal(m.total, 14);

	size_t off = m.total;
	assert_int_equal(pgw_next_msg(buf + off, n - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, 'Z');
	assert_int_equal(m.len, 1);
	assert_int_equal(m.body[0], 'I');
	off += m.total;
	assert_int_equal(off, n);
	assert_int_equal(pgw_next_msg(buf + off, n - off, PGW_MAX_MESSAGE, &m), PGW_NEED_MORE);
}

static void test_next_msg_rejects_length_below_4(void **state __attribute__((unused)))
{
	uint8_t buf[16] = {'Q'};
	struct pgw_msg m;

	for (uint32_t len = 0; len < 4; len++) {
		put_be32(buf + 1, len);
		assert_int_equal(pgw_next_msg(buf, sizeof(buf), PGW_MAX_MESSAGE, &m), PGW_BAD);
	}
}

static void test_next_msg_rejects_length_over_max_len(void **state __attribute__((unused)))
{
	uint8_t buf[5] = {'Q'};
	struct pgw_msg m;

	/* Refused from the header alone: no need to wait for a body that never fits. */
	put_be32(buf + 1, 101);
	assert_int_equal(pgw_next_msg(buf, sizeof(buf), 100, &m), PGW_BAD);
	put_be32(buf + 1, 0xffffffffu);
	assert_int_equal(pgw_next_msg(buf, sizeof(buf), PGW_MAX_MESSAGE, &m), PGW_BAD);
	put_be32(buf + 1, PGW_MAX_MESSAGE + 1);
	assert_int_equal(pgw_next_msg(buf, sizeof(buf), PGW_MAX_MESSAGE, &m), PGW_BAD);
}

static void test_next_msg_accepts_length_equal_to_max_len(void **state __attribute__((unused)))
{
	uint8_t buf[128];
	uint8_t payload[96];
	memset(payload, 'x', sizeof(payload));
	size_t n = mk_msg(buf, 'd', payload, sizeof(payload)); /* length field = 100 */
	struct pgw_msg m;

	assert_int_equal(pgw_next_msg(buf, n, 100, &m), PGW_OK);
	assert_int_equal(m.len, 96);
	assert_int_equal(m.total, 101);
	assert_int_equal(pgw_next_msg(buf, n, 99, &m), PGW_BAD);
}

/* ---- pgw_parse_startup ---- */

static void test_startup_parses_v3_user_database_and_params(void **state __attribute__((unused)))
{
	uint8_t pkt[256];
	size_t n = MK_STARTUP(pkt, PGW_PROTO_V3,
	                      "user\0alice\0database\0shop\0options\0-c geqo=off\0"
	                      "application_name\0psql\0\0");
	struct pgw_startup st;
	const char *why = "unset";

	uint8_t *b = exact(pkt, n);
	assert_int_equal(pgw_parse_startup(b, n, &st, &why), PGW_OK);
	assert_null(why);
	assert_int_equal(st.code, PGW_PROTO_V3);
	assert_int_equal(st.total, n);
	assert_string_equal(st.user, "alice");
	assert_string_equal(st.database, "shop");
	assert_false(st.replication);
	assert_int_equal(st.n_params, 2);
	assert_string_equal(st.params[0].name, "options");
	assert_string_equal(st.params[0].value, "-c geqo=off");
	assert_string_equal(st.params[1].name, "application_name");
	assert_string_equal(st.params[1].value, "psql");
	/* Pointers point into the packet, not into copies. */
	assert_true((const uint8_t *)st.user > b && (const uint8_t *)st.user < b + n);
	free(b);
}

static void test_startup_database_defaults_to_user(void **state __attribute__((unused)))
{
	uint8_t pkt[128];
	size_t n = MK_STARTUP(pkt, PGW_PROTO_V3, "user\0bob\0application_name\0x\0\0");
	struct pgw_startup st;
	const char *why;

	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
	assert_string_equal(st.user, "bob");
	assert_string_equal(st.database, "bob");

	/* An empty database counts as absent, as in PostgreSQL. */
	n = MK_STARTUP(pkt, PGW_PROTO_V3, "database\0\0user\0carol\0\0");
	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
	assert_string_equal(st.database, "carol");
}

static void test_startup_replication_database_sets_replication(void **state __attribute__((unused)))
{
	uint8_t pkt[128];
	size_t n = MK_STARTUP(pkt, PGW_PROTO_V3, "user\0rep\0replication\0database\0\0");
	struct pgw_startup st;
	const char *why;

	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
	assert_true(st.replication);
	assert_int_equal(st.n_params, 1);
	assert_string_equal(st.params[0].name, "replication");
	assert_string_equal(st.params[0].value, "database");

	n = MK_STARTUP(pkt, PGW_PROTO_V3, "user\0rep\0replication\0true\0\0");
	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
	assert_true(st.replication);
}

static void test_startup_replication_false_words_leave_replication_off(void **state
                                                                       __attribute__((unused)))
{
	static const char *const falses[] = {"false", "off", "0", "no"};
	uint8_t pkt[128];
	char body[64];
	struct pgw_startup st;
	const char *why;

	for (size_t i = 0; i < sizeof(falses) / sizeof(falses[0]); i++) {
		int bl = snprintf(body, sizeof(body), "user%crep%creplication%c%s%c", 0, 0, 0,
		                  falses[i], 0);
		body[bl++] = 0; /* final terminator */
		size_t n = mk_startup(pkt, PGW_PROTO_V3, body, (size_t)bl);
		assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
		assert_false(st.replication);
		assert_int_equal(st.n_params, 1);
	}
}

static void test_startup_recognises_ssl_and_gssenc_requests(void **state __attribute__((unused)))
{
	uint8_t pkt[8];
	struct pgw_startup st;
	const char *why;

	put_be32(pkt, 8);
	put_be32(pkt + 4, PGW_SSL_REQUEST);
	assert_int_equal(parse_startup_exact(pkt, 8, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_SSL_REQUEST);
	assert_int_equal(st.total, 8);
	assert_null(st.user);

	put_be32(pkt + 4, PGW_GSSENC_REQUEST);
	assert_int_equal(parse_startup_exact(pkt, 8, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_GSSENC_REQUEST);
	assert_int_equal(st.total, 8);
}

static void test_startup_recognises_cancel_request_with_pid_and_key(void **state
                                                                    __attribute__((unused)))
{
	uint8_t pkt[16];
	struct pgw_startup st;
	const char *why;

	put_be32(pkt, 16);
	put_be32(pkt + 4, PGW_CANCEL_REQUEST);
	put_be32(pkt + 8, 4242);
	put_be32(pkt + 12, 0xdeadbeefu);
	assert_int_equal(parse_startup_exact(pkt, 16, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_CANCEL_REQUEST);
	assert_int_equal(st.total, 16);
	assert_int_equal(st.cancel_pid, 4242);
	assert_int_equal(st.cancel_key, 0xdeadbeefu);
}

static void test_startup_special_requests_with_wrong_length_are_bad(void **state
                                                                    __attribute__((unused)))
{
	uint8_t pkt[20] = {0};

	put_be32(pkt, 12);
	put_be32(pkt + 4, PGW_SSL_REQUEST);
	assert_startup_bad(pkt, 12);
	put_be32(pkt + 4, PGW_GSSENC_REQUEST);
	assert_startup_bad(pkt, 12);
	put_be32(pkt + 4, PGW_CANCEL_REQUEST);
	assert_startup_bad(pkt, 12);
	put_be32(pkt, 20);
	assert_startup_bad(pkt, 20);
}

static void test_startup_truncated_packet_needs_more_at_every_prefix(void **state
                                                                     __attribute__((unused)))
{
	uint8_t pkt[128];
	size_t n = MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0database\0shop\0\0");
	struct pgw_startup st;
	const char *why;

	for (size_t k = 0; k < n; k++) {
		why = "unset";
		assert_int_equal(parse_startup_exact(pkt, k, &st, &why), PGW_NEED_MORE);
		assert_null(why);
	}
	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);

	/* Same for the fixed-size requests. */
	uint8_t cancel[16];
	put_be32(cancel, 16);
	put_be32(cancel + 4, PGW_CANCEL_REQUEST);
	put_be32(cancel + 8, 1);
	put_be32(cancel + 12, 2);
	for (size_t k = 0; k < sizeof(cancel); k++)
		assert_int_equal(parse_startup_exact(cancel, k, &st, &why), PGW_NEED_MORE);
}

static void test_startup_rejects_length_below_8(void **state __attribute__((unused)))
{
	uint8_t pkt[8] = {0};

	/* Refused as soon as the length is readable, even with fewer than 8 bytes. */
	for (uint32_t len = 0; len < 8; len++) {
		put_be32(pkt, len);
		assert_startup_bad(pkt, 4);
		assert_startup_bad(pkt, 8);
	}
}

static void test_startup_rejects_length_over_10000(void **state __attribute__((unused)))
{
	uint8_t pkt[8];

	put_be32(pkt, PGW_MAX_STARTUP + 1);
	put_be32(pkt + 4, PGW_PROTO_V3);
	/* Refused from the length alone: waiting for 10001 bytes would let a client pin
	 * memory, and waiting for the code adds nothing. */
	for (size_t n = 4; n <= 8; n++)
		assert_startup_bad(pkt, n);
	put_be32(pkt, 0xffffffffu);
	for (size_t n = 4; n <= 8; n++)
		assert_startup_bad(pkt, n);
}

static void test_startup_accepts_length_of_exactly_10000(void **state __attribute__((unused)))
{
	static uint8_t pkt[PGW_MAX_STARTUP];
	struct pgw_startup st;
	const char *why;

	/* user\0u\0application_name\0<filler>\0\0 padded to exactly 10000 bytes. */
	memset(pkt, 0, sizeof(pkt));
	size_t n = MK_STARTUP(pkt, PGW_PROTO_V3, "user\0u\0application_name\0");
	memset(pkt + n, 'a', PGW_MAX_STARTUP - n - 2);
	put_be32(pkt, PGW_MAX_STARTUP);
	assert_int_equal(parse_startup_exact(pkt, PGW_MAX_STARTUP, &st, &why), PGW_OK);
	assert_int_equal(st.n_params, 1);
	assert_int_equal(strlen(st.params[0].value), PGW_MAX_STARTUP - n - 2);
}

static void test_startup_rejects_wrong_protocol_major(void **state __attribute__((unused)))
{
	uint8_t pkt[64];

	assert_startup_bad(pkt, MK_STARTUP(pkt, 2u << 16, "user\0a\0\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, 4u << 16, "user\0a\0\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, 0, "user\0a\0\0"));
	/* A made-up code next to the special requests is not one of them. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_SSL_REQUEST + 10, "user\0a\0\0"));
}

static void test_startup_rejects_missing_final_terminator(void **state __attribute__((unused)))
{
	uint8_t pkt[64];

	/* Last byte is not a NUL: the last value runs to the end of the packet. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice"));
	/* Every string is terminated but the list terminator is missing. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0database\0db\0"));
	/* No parameters and no terminator at all. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, ""));
}

static void test_startup_rejects_parameter_without_value(void **state __attribute__((unused)))
{
	uint8_t pkt[64];

	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0database\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0"));
	/* The name's NUL is the packet's last byte: no room for a value. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0options\0"));
}

static void test_startup_rejects_data_after_the_terminator(void **state __attribute__((unused)))
{
	uint8_t pkt[64];

	/* An empty name ends the list; anything after it is garbage, as in PostgreSQL. */
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0alice\0\0x\0y\0\0"));
}

static void test_startup_rejects_missing_or_empty_user(void **state __attribute__((unused)))
{
	uint8_t pkt[64];

	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "database\0db\0\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "\0"));
	assert_startup_bad(pkt, MK_STARTUP(pkt, PGW_PROTO_V3, "user\0\0database\0db\0\0"));
}

/* Builds a v3 packet with user plus n_extra "pNN" parameters. */
static size_t mk_many_params(uint8_t *pkt, size_t cap, int n_extra)
{
	size_t off = 8;
	off += (size_t)snprintf((char *)pkt + off, cap - off, "user") + 1;
	off += (size_t)snprintf((char *)pkt + off, cap - off, "u") + 1;
	for (int i = 0; i < n_extra; i++) {
		off += (size_t)snprintf((char *)pkt + off, cap - off, "p%d", i) + 1;
		off += (size_t)snprintf((char *)pkt + off, cap - off, "v%d", i) + 1;
	}
	pkt[off++] = 0;
	assert_true(off <= cap);
	put_be32(pkt, (uint32_t)off);
	put_be32(pkt + 4, PGW_PROTO_V3);
	return off;
}

static void test_startup_rejects_more_than_max_params(void **state __attribute__((unused)))
{
	uint8_t pkt[2048];
	struct pgw_startup st;
	const char *why;

	size_t n = mk_many_params(pkt, sizeof(pkt), PGW_MAX_PARAMS);
	assert_int_equal(parse_startup_exact(pkt, n, &st, &why), PGW_OK);
	assert_int_equal(st.n_params, PGW_MAX_PARAMS);
	assert_string_equal(st.params[PGW_MAX_PARAMS - 1].name, "p63");
	assert_string_equal(st.params[PGW_MAX_PARAMS - 1].value, "v63");

	n = mk_many_params(pkt, sizeof(pkt), PGW_MAX_PARAMS + 1);
	assert_startup_bad(pkt, n);
}

/* ---- pgw_scan ---- */

struct hdr_ev {
	uint8_t type;
	uint32_t len;
	size_t end; /* absolute stream offset just past the header */
};

#define MAX_EVS 32

/* The stream: several types and sizes, a zero-length payload, a payload that
 * looks like a header, and one large enough to span many small chunks. */
static size_t build_stream(uint8_t *buf, struct hdr_ev *evs, int *n_evs)
{
	static const struct {
		uint8_t type;
		uint32_t len;
	} spec[] = {
	    {'R', 4}, {'S', 23}, {'K', 8}, {'Z', 1}, {'T', 0},  {'D', 300},
	    {'I', 0}, {'D', 5},  {'C', 9}, {'Z', 1}, {'E', 70}, {'1', 0},
	};
	size_t off = 0;
	*n_evs = 0;
	for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
		uint8_t payload[300];
		/* Payload bytes mimic headers ('Q' + small length) to catch a scanner
		 * that loses its place and starts reading payload as headers. */
		for (uint32_t j = 0; j < spec[i].len; j++)
			payload[j] = (j % 5 == 0) ? 'Q' : (uint8_t)(j % 5 == 4 ? 4 : 0);
		off += mk_msg(buf + off, spec[i].type, payload, spec[i].len);
		evs[*n_evs].type = spec[i].type;
		evs[*n_evs].len = spec[i].len;
		evs[*n_evs].end = off - spec[i].len;
		(*n_evs)++;
	}
	return off;
}

/* Feeds buf to a fresh scanner in chunks cut at cuts[0..n_cuts) (sorted);
 * records each header event with its absolute offset. Fails on SCAN_BAD. */
static int scan_chunks(const uint8_t *buf, size_t n, const size_t *cuts, int n_cuts,
                       struct hdr_ev *out)
{
	struct pgw_scan sc;
	int k = 0;
	size_t start = 0;

	memset(&sc, 0, sizeof(sc));
	for (int c = 0; c <= n_cuts; c++) {
		size_t end = c < n_cuts ? cuts[c] : n;
		size_t clen = end - start;
		/* Each chunk in its own exact heap block: no peeking past a chunk. */
		uint8_t *chunk = exact(buf + start, clen);
		size_t pos = 0;
		for (;;) {
			enum pgw_scan_ev ev = pgw_scan(&sc, chunk, clen, &pos);
			assert_true(pos <= clen);
			if (ev == PGW_SCAN_END) {
				assert_int_equal(pos, clen);
				break;
			}
			assert_int_equal(ev, PGW_SCAN_HEADER);
			assert_true(k < MAX_EVS);
			out[k].type = sc.type;
			out[k].len = sc.len;
			out[k].end = start + pos;
			k++;
		}
		free(chunk);
		start = end;
	}
	return k;
}

static void assert_same_events(const struct hdr_ev *want, int n_want, const struct hdr_ev *got,
                               int n_got)
{
	assert_int_equal(n_got, n_want);
	for (int i = 0; i < n_want; i++) {
		assert_int_equal(got[i].type, want[i].type);
		assert_int_equal(got[i].len, want[i].len);
		assert_int_equal(got[i].end, want[i].end);
	}
}

static void test_scan_whole_stream_reports_every_header(void **state __attribute__((unused)))
{
	uint8_t buf[1024];
	struct hdr_ev want[MAX_EVS], got[MAX_EVS];
	int n_want;
	size_t n = build_stream(buf, want, &n_want);

	int n_got = scan_chunks(buf, n, NULL, 0, got);
	assert_same_events(want, n_want, got, n_got);
}

static void test_scan_every_two_chunk_split_yields_same_headers(void **state
                                                                __attribute__((unused)))
{
	uint8_t buf[1024];
	struct hdr_ev want[MAX_EVS], got[MAX_EVS];
	int n_want;
	size_t n = build_stream(buf, want, &n_want);

	for (size_t cut = 0; cut <= n; cut++) {
		int n_got = scan_chunks(buf, n, &cut, 1, got);
		assert_same_events(want, n_want, got, n_got);
	}
}

static void test_scan_byte_by_byte_yields_same_headers(void **state __attribute__((unused)))
{
	uint8_t buf[1024];
	struct hdr_ev want[MAX_EVS], got[MAX_EVS];
	int n_want;
	size_t n = build_stream(buf, want, &n_want);
	size_t cuts[1024];

	for (size_t i = 0; i < n - 1; i++)
		cuts[i] = i + 1;
	int n_got = scan_chunks(buf, n, cuts, (int)(n - 1), got);
	assert_same_events(want, n_want, got, n_got);
}

static void test_scan_reports_zero_length_payload(void **state __attribute__((unused)))
{
	uint8_t buf[16];
	size_t n = mk_msg(buf, 'I', NULL, 0);
	n += mk_msg(buf + n, 'Z', "I", 1);
	struct pgw_scan sc;
	size_t pos = 0;

	memset(&sc, 0, sizeof(sc));
	assert_int_equal(pgw_scan(&sc, buf, n, &pos), PGW_SCAN_HEADER);
	assert_int_equal(sc.type, 'I');
	assert_int_equal(sc.len, 0);
	assert_int_equal(pos, 5);
	assert_int_equal(pgw_scan(&sc, buf, n, &pos), PGW_SCAN_HEADER);
	assert_int_equal(sc.type, 'Z');
	assert_int_equal(sc.len, 1);
	assert_int_equal(pos, 10);
	assert_int_equal(pgw_scan(&sc, buf, n, &pos), PGW_SCAN_END);
	assert_int_equal(pos, n);

	/* A lone zero-length message at the very end of a chunk is reported too. */
	memset(&sc, 0, sizeof(sc));
	pos = 0;
	assert_int_equal(pgw_scan(&sc, buf, 5, &pos), PGW_SCAN_HEADER);
	assert_int_equal(sc.len, 0);
	assert_int_equal(pos, 5);
	assert_int_equal(pgw_scan(&sc, buf, 5, &pos), PGW_SCAN_END);
}

static void test_scan_impossible_length_is_bad(void **state __attribute__((unused)))
{
	uint8_t buf[5] = {'D'};
	struct pgw_scan sc;
	size_t pos;

	for (uint32_t len = 0; len < 4; len++) {
		put_be32(buf + 1, len);
		memset(&sc, 0, sizeof(sc));
		pos = 0;
		assert_int_equal(pgw_scan(&sc, buf, sizeof(buf), &pos), PGW_SCAN_BAD);
		/* Same through the slow path (header split across chunks). */
		memset(&sc, 0, sizeof(sc));
		pos = 0;
		assert_int_equal(pgw_scan(&sc, buf, 2, &pos), PGW_SCAN_END);
		pos = 0;
		assert_int_equal(pgw_scan(&sc, buf + 2, 3, &pos), PGW_SCAN_BAD);
	}
	put_be32(buf + 1, PGW_MAX_MESSAGE + 1);
	memset(&sc, 0, sizeof(sc));
	pos = 0;
	assert_int_equal(pgw_scan(&sc, buf, sizeof(buf), &pos), PGW_SCAN_BAD);
}

static void test_scan_header_split_across_chunks(void **state __attribute__((unused)))
{
	uint8_t buf[32];
	size_t n = mk_msg(buf, 'D', "payload", 7);
	n += mk_msg(buf + n, 'Z', "T", 1);

	for (size_t k = 1; k <= 4; k++) {
		struct pgw_scan sc;
		size_t pos = 0;

		memset(&sc, 0, sizeof(sc));
		uint8_t *a = exact(buf, k);
		assert_int_equal(pgw_scan(&sc, a, k, &pos), PGW_SCAN_END);
		assert_int_equal(pos, k);
		free(a);

		/* Rest of the header, the payload and the next message in one chunk. */
		size_t rest = n - k;
		uint8_t *b = exact(buf + k, rest);
		pos = 0;
		assert_int_equal(pgw_scan(&sc, b, rest, &pos), PGW_SCAN_HEADER);
		assert_int_equal(sc.type, 'D');
		assert_int_equal(sc.len, 7);
		assert_int_equal(pos, 5 - k);
		assert_memory_equal(b + pos, "payload", 7);
		assert_int_equal(pgw_scan(&sc, b, rest, &pos), PGW_SCAN_HEADER);
		assert_int_equal(sc.type, 'Z');
		assert_int_equal(sc.len, 1);
		assert_int_equal(pgw_scan(&sc, b, rest, &pos), PGW_SCAN_END);
		assert_int_equal(pos, rest);
		free(b);
	}
}

/* ---- builders and field readers ---- */

static void test_error_builder_round_trips_through_parsers(void **state __attribute__((unused)))
{
	uint8_t buf[256];
	struct pgw_out o;
	struct pgw_msg m;

	pgw_out_init(&o, buf, sizeof(buf));
	pgw_error(&o, "FATAL", "08P01", "invalid startup packet", "check the client");
	assert_false(o.overflow);
	assert_int_equal(pgw_next_msg(buf, o.len, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_ERROR);
	assert_int_equal(m.total, o.len);
	assert_string_equal(pgw_error_field(m.body, m.len, 'S'), "FATAL");
	assert_string_equal(pgw_error_field(m.body, m.len, 'V'), "FATAL");
	assert_string_equal(pgw_error_field(m.body, m.len, 'C'), "08P01");
	assert_string_equal(pgw_error_field(m.body, m.len, 'M'), "invalid startup packet");
	assert_string_equal(pgw_error_field(m.body, m.len, 'H'), "check the client");
	assert_null(pgw_error_field(m.body, m.len, 'D'));
	/* The body ends with the field list terminator. */
	assert_int_equal(m.body[m.len - 1], 0);

	/* Without a hint there is no H field; appended after the first message. */
	size_t first = o.len;
	pgw_error(&o, "ERROR", "42601", "syntax error", NULL);
	assert_false(o.overflow);
	assert_int_equal(pgw_next_msg(buf + first, o.len - first, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.total, o.len - first);
	assert_string_equal(pgw_error_field(m.body, m.len, 'C'), "42601");
	assert_null(pgw_error_field(m.body, m.len, 'H'));
}

#define CANARY_LEN 16

static void test_builder_overflow_sets_flag_and_never_writes_past_cap(void **state
                                                                      __attribute__((unused)))
{
	uint8_t ref[256];
	struct pgw_out o;

	pgw_out_init(&o, ref, sizeof(ref));
	pgw_error(&o, "ERROR", "57014", "canceling statement due to user request", "hint");
	assert_false(o.overflow);
	size_t full = o.len;

	for (size_t cap = 0; cap <= full; cap++) {
		uint8_t buf[256 + CANARY_LEN];
		memset(buf, 0xa5, sizeof(buf));
		pgw_out_init(&o, buf, cap);
		pgw_error(&o, "ERROR", "57014", "canceling statement due to user request", "hint");
		for (size_t i = cap; i < cap + CANARY_LEN; i++)
			assert_int_equal(buf[i], 0xa5);
		assert_true(o.len <= cap);
		if (cap < full) {
			assert_true(o.overflow);
			/* Sticky: later writes that would fit stay refused. */
			size_t before = o.len;
			pgw_put_u8(&o, 1);
			assert_true(o.overflow);
			assert_int_equal(o.len, before);
		} else {
			assert_false(o.overflow);
			assert_memory_equal(buf, ref, full);
		}
	}
}

static void test_startup_builder_overflow_keeps_canary(void **state __attribute__((unused)))
{
	const struct pgw_param params[] = {{"user", "alice"}, {"database", "shop"}};
	uint8_t buf[64 + CANARY_LEN];
	struct pgw_out o;

	pgw_out_init(&o, buf, 64);
	pgw_startup_packet(&o, params, 2);
	assert_false(o.overflow);
	const size_t full = o.len;
	assert_int_equal(full, 8 + sizeof("user") + sizeof("alice") + sizeof("database") +
	                           sizeof("shop") + 1);

	for (size_t cap = 0; cap < full; cap++) {
		memset(buf, 0x5a, sizeof(buf));
		pgw_out_init(&o, buf, cap);
		pgw_startup_packet(&o, params, 2);
		assert_true(o.overflow);
		for (size_t i = cap; i < cap + CANARY_LEN; i++)
			assert_int_equal(buf[i], 0x5a);
	}
	memset(buf, 0x5a, sizeof(buf));
	pgw_out_init(&o, buf, full);
	pgw_startup_packet(&o, params, 2);
	assert_false(o.overflow);
	assert_int_equal(o.len, full);
	assert_int_equal(pgw_get_u32(buf), full);
	for (size_t i = full; i < full + CANARY_LEN; i++)
		assert_int_equal(buf[i], 0x5a);
}

static void test_startup_packet_builder_round_trips(void **state __attribute__((unused)))
{
	const struct pgw_param params[] = {
	    {"user", "alice"},
	    {"database", "shop"},
	    {"application_name", "helios"},
	    {"options", "-c statement_timeout=5s"},
	};
	uint8_t buf[256];
	struct pgw_out o;
	struct pgw_startup st;
	const char *why;

	pgw_out_init(&o, buf, sizeof(buf));
	pgw_startup_packet(&o, params, 4);
	assert_false(o.overflow);
	assert_int_equal(parse_startup_exact(buf, o.len, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_PROTO_V3);
	assert_int_equal(st.total, o.len);
	assert_string_equal(st.user, "alice");
	assert_string_equal(st.database, "shop");
	assert_int_equal(st.n_params, 2);
	assert_string_equal(st.params[0].name, "application_name");
	assert_string_equal(st.params[0].value, "helios");
	assert_string_equal(st.params[1].name, "options");
	assert_string_equal(st.params[1].value, "-c statement_timeout=5s");
}

static void test_cancel_and_ssl_packets_round_trip(void **state __attribute__((unused)))
{
	uint8_t buf[64];
	struct pgw_out o;
	struct pgw_startup st;
	const char *why;

	pgw_out_init(&o, buf, sizeof(buf));
	pgw_cancel_packet(&o, 0x01020304u, 0xfffffffeu);
	assert_false(o.overflow);
	assert_int_equal(o.len, 16);
	assert_int_equal(parse_startup_exact(buf, o.len, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_CANCEL_REQUEST);
	assert_int_equal(st.cancel_pid, 0x01020304u);
	assert_int_equal(st.cancel_key, 0xfffffffeu);

	pgw_out_init(&o, buf, sizeof(buf));
	pgw_ssl_request(&o);
	assert_int_equal(parse_startup_exact(buf, o.len, &st, &why), PGW_OK);
	assert_int_equal(st.code, PGW_SSL_REQUEST);
	assert_int_equal(st.total, 8);
}

static void test_small_builders_produce_framed_messages(void **state __attribute__((unused)))
{
	uint8_t buf[256];
	struct pgw_out o;
	struct pgw_msg m;
	size_t off = 0;

	pgw_out_init(&o, buf, sizeof(buf));
	pgw_auth_request(&o, PGW_AUTH_SASL_FINAL, "v=abc", 5);
	pgw_auth_request(&o, PGW_AUTH_OK, NULL, 0);
	pgw_param_status(&o, "server_version", "16.0");
	pgw_key_data(&o, 77, 0x80000001u);
	pgw_query(&o, "SELECT 1");
	pgw_ready(&o, 'I');
	assert_false(o.overflow);

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_AUTH);
	assert_int_equal(m.len, 9);
	assert_int_equal(pgw_get_u32(m.body), PGW_AUTH_SASL_FINAL);
	assert_memory_equal(m.body + 4, "v=abc", 5);
	off += m.total;

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_AUTH);
	assert_int_equal(m.len, 4);
	assert_int_equal(pgw_get_u32(m.body), PGW_AUTH_OK);
	off += m.total;

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_PARAM_STATUS);
	uint32_t f = 0;
	assert_string_equal(pgw_get_str(m.body, m.len, &f), "server_version");
	assert_string_equal(pgw_get_str(m.body, m.len, &f), "16.0");
	assert_int_equal(f, m.len);
	off += m.total;

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_KEY_DATA);
	assert_int_equal(m.len, 8);
	assert_int_equal(pgw_get_u32(m.body), 77);
	assert_int_equal(pgw_get_u32(m.body + 4), 0x80000001u);
	off += m.total;

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_QUERY);
	assert_int_equal(m.len, 9);
	assert_string_equal((const char *)m.body, "SELECT 1");
	off += m.total;

	assert_int_equal(pgw_next_msg(buf + off, o.len - off, PGW_MAX_MESSAGE, &m), PGW_OK);
	assert_int_equal(m.type, PGW_MSG_READY);
	assert_int_equal(m.len, 1);
	assert_int_equal(m.body[0], 'I');
	off += m.total;
	assert_int_equal(off, o.len);
}

static void test_get_str_returns_null_when_string_runs_past_len(void **state
                                                                __attribute__((unused)))
{
	uint8_t *b = exact("abc", 3); /* no NUL inside the 3 bytes */
	uint32_t off = 0;

	assert_null(pgw_get_str(b, 3, &off));
	assert_int_equal(off, 0);
	off = 3;
	assert_null(pgw_get_str(b, 3, &off));
	off = 1000;
	assert_null(pgw_get_str(b, 3, &off));
	free(b);

	b = exact("ab\0cd", 5);
	off = 0;
	assert_string_equal(pgw_get_str(b, 5, &off), "ab");
	assert_int_equal(off, 3);
	assert_null(pgw_get_str(b, 5, &off)); /* "cd" is unterminated */
	assert_int_equal(off, 3);
	free(b);

	b = exact("\0", 1);
	off = 0;
	assert_string_equal(pgw_get_str(b, 1, &off), "");
	assert_int_equal(off, 1);
	free(b);
}

static void
test_error_field_on_malformed_bodies_returns_null_without_overread(void **state
                                                                   __attribute__((unused)))
{
	static const struct {
		const char *body;
		uint32_t len;
	} bad[] = {
	    {"S", 1},                   /* field code, no value */
	    {"SERROR", 6},              /* value without NUL */
	    {"SERROR\0M", 8},           /* second field code, no value */
	    {"SERROR\0Mboom", 12},      /* second value without NUL */
	    {"SERROR\0C42601\0Mx", 16}, /* third value without NUL */
	    {"SERROR\0C42601\0", 14},   /* fields fine, list terminator missing */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *b = exact(bad[i].body, bad[i].len);
		assert_null(pgw_error_field(b, bad[i].len, 'M'));
		assert_null(pgw_error_field(b, bad[i].len, 'H'));
		free(b);
	}
	/* Empty body: no fields. */
	uint8_t *b = exact("", 0);
	assert_null(pgw_error_field(b, 0, 'S'));
	free(b);
	/* A field found before the damage is still returned intact. */
	b = exact("SERROR\0Mboom", 12);
	assert_string_equal(pgw_error_field(b, 12, 'S'), "ERROR");
	free(b);
	/* Nothing after the list terminator is read as a field. */
	b = exact("SERROR\0\0Mhidden\0", 16);
	assert_null(pgw_error_field(b, 16, 'M'));
	free(b);
	b = exact("SERROR\0\0\0Mhidden\0", 17);
	assert_null(pgw_error_field(b, 17, 'M'));
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_next_msg_parses_complete_message, free_startup_copy),
	    cmocka_unit_test_teardown(test_next_msg_needs_more_at_every_split_offset,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_next_msg_walks_two_coalesced_messages,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_next_msg_rejects_length_below_4, free_startup_copy),
	    cmocka_unit_test_teardown(test_next_msg_rejects_length_over_max_len, free_startup_copy),
	    cmocka_unit_test_teardown(test_next_msg_accepts_length_equal_to_max_len,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_parses_v3_user_database_and_params,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_database_defaults_to_user, free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_replication_database_sets_replication,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_replication_false_words_leave_replication_off,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_recognises_ssl_and_gssenc_requests,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_recognises_cancel_request_with_pid_and_key,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_special_requests_with_wrong_length_are_bad,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_truncated_packet_needs_more_at_every_prefix,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_length_below_8, free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_length_over_10000, free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_accepts_length_of_exactly_10000,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_wrong_protocol_major, free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_missing_final_terminator,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_parameter_without_value,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_data_after_the_terminator,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_missing_or_empty_user,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_rejects_more_than_max_params, free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_whole_stream_reports_every_header,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_every_two_chunk_split_yields_same_headers,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_byte_by_byte_yields_same_headers,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_reports_zero_length_payload, free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_impossible_length_is_bad, free_startup_copy),
	    cmocka_unit_test_teardown(test_scan_header_split_across_chunks, free_startup_copy),
	    cmocka_unit_test_teardown(test_error_builder_round_trips_through_parsers,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_builder_overflow_sets_flag_and_never_writes_past_cap,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_builder_overflow_keeps_canary,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_startup_packet_builder_round_trips, free_startup_copy),
	    cmocka_unit_test_teardown(test_cancel_and_ssl_packets_round_trip, free_startup_copy),
	    cmocka_unit_test_teardown(test_small_builders_produce_framed_messages,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(test_get_str_returns_null_when_string_runs_past_len,
	                              free_startup_copy),
	    cmocka_unit_test_teardown(
	        test_error_field_on_malformed_bodies_returns_null_without_overread,
	        free_startup_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
