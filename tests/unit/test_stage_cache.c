/*
 * Unit tests for the result cache's stage (dataplane/pipeline/stage_cache.c)
 * and its response tap and write events (cache.c), driven by fake requests
 * the way conn/ drives them: a cacheable miss continues (routed to the
 * primary) and its recorded answer then answers the same request from
 * another client with exactly the stored bytes; an identical concurrent
 * miss parks on a wake token and its worker is woken when the first one's
 * answer is stored; a write to the table (a PEV_QUERY_START event)
 * invalidates; statements that may not be cached continue without
 * recording; in session pooling (the client's server bound) it looks up
 * only while that server is idle outside a transaction block, and it
 * applies to session clients but not to replication ones. Links no conn/ (the catalog is published
 * by hand, the wake-up is a fake hook).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "common/sbuf.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/cache_catalog.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"

#include "dataplane/pipeline/engine/analyze.h"

#define UNUSED __attribute__((unused))

/* The statement analysis the cache asks the router for (pipeline/route.h),
 * here straight from the analysis cache: the router's file would bring the
 * pools in. */
static struct an_cache *analyses;
const struct an_result *route_analysis(const struct cfg *c, const char *sql, size_t len);
const struct an_result *route_analysis(const struct cfg *c UNUSED, const char *sql, size_t len)
{
	if (!analyses)
		analyses = an_cache_new(64, 64 * 2048);
	return analyses ? an_cache_get(analyses, sql, len) : NULL;
}

static struct cfg *cfg;
static struct snap snap;
static struct pipeline *pipe;
static int wakes;

static int fake_worker_idx(void)
{
	return 0;
}

static void fake_wake(int k)
{
	if (k == 0)
		wakes++;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A DataRow of the catalog query: kind, schema, name, a, b. */
static void cat_row(struct sbuf *b, const char *k, const char *s, const char *n, const char *a,
                    const char *x)
{
	const char *col[5] = {k, s, n, a, x};
	uint32_t len = 4 + 2;
	for (int i = 0; i < 5; i++)
		len += 4 + (uint32_t)strlen(col[i]);
	uint8_t h[7] = {
	    'D', (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, 0,
	    5};
	sbuf_append(b, h, 7);
	for (int i = 0; i < 5; i++) {
		uint32_t l = (uint32_t)strlen(col[i]);
		uint8_t lb[4] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16), (uint8_t)(l >> 8),
		                 (uint8_t)l};
		sbuf_append(b, lb, 4);
		sbuf_append(b, col[i], l);
	}
}

static int setup(void **state UNUSED)
{
	static const char text[] = "[[nodes]]\nhost = \"db\"\n"
	                           "[pool_mode]\nmode = \"transaction\"\n"
	                           "[cache]\nenabled = true\n";
	struct cfg_error err;
	cfg = cfg_load_string("test", text, strlen(text), &err);
	if (!cfg) {
		fprintf(stderr, "config: %s\n", err.msg);
		return -1;
	}
	snap.cfg = cfg;
	if (cache_start(cfg) < 0)
		return -1;
	static const struct cache_hooks hooks = {.worker_idx = fake_worker_idx, .wake = fake_wake};
	cache_set_hooks(&hooks);
	const struct pipe_stage *st[] = {&stage_cache};
	pipe = pipe_build(cfg, st, 1);
	/* the server's catalog: one ordinary table t, immutable int4 '=' */
	struct sbuf b;
	sbuf_init(&b);
	cat_row(&b, "r", "public", "t", "r", "");
	cat_row(&b, "r", "public", "v", "v", "");
	cat_row(&b, "o", "pg_catalog", "=", "i", "b");
	cat_row(&b, "f", "pg_catalog", "now", "s", "b");
	assert_int_equal(cat_load_due("appdb", mono_ns()), true);
	int r = cat_publish("appdb", (const uint8_t *)b.p, b.len, mono_ns());
	sbuf_free(&b);
	return r == 1 && pipe ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	pipe_free(pipe);
	an_cache_free(analyses);
	cache_worker_exit();
	cache_stop();
	cfg_free(cfg);
	return 0;
}

/* One fake client: its pipeline state and the request at the head of its
 * buffer (a simple Query). */
struct fake {
	struct pipe_client pc;
	uint8_t buf[512];
	uint32_t len;
	struct sbuf out;
	uint64_t id;
};

static void fake_init(struct fake *f, uint64_t id)
{
	memset(f, 0, sizeof(*f));
	pipe_client_init(&f->pc);
	sbuf_init(&f->out);
	f->id = id;
}

static void fake_free(struct fake *f)
{
	pipe_client_free(pipe, &f->pc);
	sbuf_free(&f->out);
}

static void fake_query(struct fake *f, const char *sql)
{
	uint32_t l = (uint32_t)strlen(sql) + 1 + 4;
	f->buf[0] = 'Q';
	f->buf[1] = (uint8_t)(l >> 24);
	f->buf[2] = (uint8_t)(l >> 16);
	f->buf[3] = (uint8_t)(l >> 8);
	f->buf[4] = (uint8_t)l;
	memcpy(f->buf + 5, sql, strlen(sql) + 1);
	f->len = l + 1;
}

static void fake_req(struct fake *f, struct req *r, bool again)
{
	memset(r, 0, sizeof(*r));
	r->snap = &snap;
	r->database = "appdb";
	r->user = "alice";
	r->client_id = f->id;
	r->mode = PIPE_MODE_TXN;
	r->tx_status = 'I';
	r->pc = &f->pc;
	r->node = -1;
	r->now_ns = mono_ns();
	r->type = f->buf[0];
	r->msg = f->buf;
	r->msg_len = f->len;
	r->whole = true;
	r->starts = true;
	r->again = again;
	r->req_buf = f->buf;
	r->req_len = f->len;
	sbuf_reset(&f->out);
	r->out = &f->out;
}

static enum pipe_verdict lookup(struct fake *f, const char *sql, bool again, struct req *r)
{
	fake_query(f, sql);
	fake_req(f, r, again);
	return pipe_run(pipe, PIPE_AT_REQUEST, r);
}

static union pipe_slot *slot_of(struct fake *f)
{
	return &f->pc.slot[PIPE_SLOT_CACHE];
}

/* The server's answer to the leader's request, as conn/ relays it; the
 * bytes recorded are appended to rec. */
static void serve(struct fake *f, const char *value, struct sbuf *rec)
{
	union pipe_slot *s = slot_of(f);
	cache_arm(s, cfg, true, 'I', f->buf, f->len);
	assert_true(cache_arming(s));
	cache_request_end(s);
	uint8_t t[] = {'T', 0, 0, 0, 27, 0, 1,    'v',  0,    0,    0,    0,    0, 0, 2,
	               0,   0, 0, 0, 25, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
	uint32_t vl = (uint32_t)strlen(value);
	uint8_t d[64] = {'D', 0, 0, 0, (uint8_t)(4 + 2 + 4 + vl), 0, 1, 0, 0, 0, (uint8_t)vl};
	memcpy(d + 11, value, vl);
	uint8_t c[] = {'C', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
	const uint8_t *msgs[3] = {t, d, c};
	size_t lens[3] = {sizeof(t), 11 + vl, sizeof(c)};
	for (int i = 0; i < 3; i++) {
		cache_tee_header(s, RQ_F_FILL, msgs[i][0], true, msgs[i]);
		cache_tee_body(s, msgs[i] + 5, lens[i] - 5);
		sbuf_append(rec, msgs[i], lens[i]);
	}
	cache_ready(s, RQ_F_FILL, 'I');
	sbuf_append(rec, "Z\0\0\0\5I", 6);
}

static void
test_a_miss_continues_to_the_primary_and_its_answer_then_answers_a_hit(void **state UNUSED)
{
	struct fake a, b;
	fake_init(&a, 1);
	fake_init(&b, 2);
	struct req r;
	assert_int_equal(lookup(&a, "SELECT v FROM t WHERE id = 1", false, &r), PIPE_CONTINUE);
	assert_true(a.pc.rflags & PIPE_RF_PRIMARY_ONLY);
	struct sbuf rec;
	sbuf_init(&rec);
	serve(&a, "one", &rec);

	assert_int_equal(lookup(&b, "SELECT v FROM t WHERE id = 1", false, &r), PIPE_ANSWERED);
	assert_string_equal(r.decided_by, "cache");
	assert_int_equal(r.out_consumed, b.len);
	assert_int_equal(b.out.len, rec.len);
	assert_memory_equal(b.out.p, rec.p, rec.len);
	/* another text is another key */
	assert_int_equal(lookup(&b, "SELECT v FROM t WHERE id = 2", false, &r), PIPE_CONTINUE);
	sbuf_free(&rec);
	fake_free(&a);
	fake_free(&b);
}

static void
test_an_identical_concurrent_miss_parks_and_wakes_when_the_first_completes(void **state UNUSED)
{
	struct fake a, b;
	fake_init(&a, 3);
	fake_init(&b, 4);
	struct req ra, rb;
	assert_int_equal(lookup(&a, "SELECT v FROM t WHERE id = 3", false, &ra), PIPE_CONTINUE);
	assert_int_equal(lookup(&b, "SELECT v FROM t WHERE id = 3", false, &rb), PIPE_PARK);
	assert_int_equal(rb.park.kind, PIPE_WAKE_TOKEN);
	assert_non_null(rb.park.token);
	int before = wakes;
	struct sbuf rec;
	sbuf_init(&rec);
	serve(&a, "three", &rec);
	assert_int_equal(wakes, before + 1); /* its worker is woken */
	/* woken: it runs again, and the answer is there */
	assert_int_equal(lookup(&b, "SELECT v FROM t WHERE id = 3", true, &rb), PIPE_ANSWERED);
	assert_memory_equal(b.out.p, rec.p, rec.len);
	sbuf_free(&rec);
	fake_free(&a);
	fake_free(&b);
}

static void emit_start(struct fake *f, const char *sql)
{
	struct req r;
	fake_query(f, sql);
	fake_req(f, &r, false);
	r.sql = sql;
	r.sql_len = strlen(sql);
	r.has_server = true;
	struct pipe_event ev = {.kind = PEV_QUERY_START, .r = &r, .at_ns = r.now_ns};
	pipe_emit(pipe, &f->pc, &ev);
}

static void test_a_write_event_invalidates_the_table_s_answers(void **state UNUSED)
{
	struct fake a, w;
	fake_init(&a, 5);
	fake_init(&w, 6);
	struct req r;
	assert_int_equal(lookup(&a, "SELECT v FROM t WHERE id = 4", false, &r), PIPE_CONTINUE);
	struct sbuf rec;
	sbuf_init(&rec);
	serve(&a, "four", &rec);
	assert_int_equal(lookup(&a, "SELECT v FROM t WHERE id = 4", false, &r), PIPE_ANSWERED);
	emit_start(&w, "UPDATE t SET v = 'x' WHERE id = 4");
	assert_int_equal(lookup(&a, "SELECT v FROM t WHERE id = 4", false, &r), PIPE_CONTINUE);
	cache_fill_abort(slot_of(&a)); /* that miss is not served here */
	sbuf_free(&rec);
	fake_free(&a);
	fake_free(&w);
}

static void test_uncacheable_statements_continue_without_recording(void **state UNUSED)
{
	static const char *const sqls[] = {
	    "SELECT v FROM v",                         /* a view */
	    "SELECT now()",                            /* not immutable */
	    "INSERT INTO t VALUES (9, 'x')",           /* a write */
	    "SELECT v FROM t; SELECT v FROM t",        /* two statements */
	    "SELECT v FROM t WHERE d = 'now'",         /* a 'now'-like date input */
	    "SELECT /* helios:cache=skip */ v FROM t", /* a hint */
	    "SELECT v FROM t WHERE id = 1 FOR UPDATE"  /* locks */
	};
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		struct fake f;
		fake_init(&f, 10 + i);
		struct req r;
		enum pipe_verdict v = lookup(&f, sqls[i], false, &r);
		if (v != PIPE_CONTINUE || (f.pc.rflags & PIPE_RF_PRIMARY_ONLY))
			fail_msg("%s: cached (verdict %d)", sqls[i], (int)v);
		cache_arm(slot_of(&f), cfg, true, 'I', f.buf, f.len);
		assert_false(cache_arming(slot_of(&f))); /* nothing to record */
		fake_free(&f);
	}
}

static void
test_a_session_s_request_is_looked_up_only_outside_a_transaction_block(void **state UNUSED)
{
	struct fake a, s;
	fake_init(&a, 30);
	fake_init(&s, 31);
	struct req r;
	const char *q = "SELECT v FROM t WHERE id = 5";
	assert_int_equal(lookup(&a, q, false, &r), PIPE_CONTINUE);
	struct sbuf rec;
	sbuf_init(&rec);
	serve(&a, "five", &rec);
	/* a session client: its server is bound; in a block ('T', 'E') the
	 * server answers, and nothing is recorded */
	const char states[] = {'T', 'E'};
	for (int i = 0; i < 2; i++) {
		fake_query(&s, q);
		fake_req(&s, &r, false);
		r.mode = PIPE_MODE_SESSION;
		r.has_server = true;
		r.tx_status = states[i];
		assert_int_equal(pipe_run(pipe, PIPE_AT_REQUEST, &r), PIPE_CONTINUE);
		assert_false(s.pc.rflags & PIPE_RF_PRIMARY_ONLY);
		assert_false(cache_leading(slot_of(&s)));
	}
	/* idle: answered with the stored bytes */
	fake_req(&s, &r, false);
	r.mode = PIPE_MODE_SESSION;
	r.has_server = true;
	r.tx_status = 'I';
	assert_int_equal(pipe_run(pipe, PIPE_AT_REQUEST, &r), PIPE_ANSWERED);
	assert_int_equal(s.out.len, rec.len);
	assert_memory_equal(s.out.p, rec.p, rec.len);
	sbuf_free(&rec);
	fake_free(&a);
	fake_free(&s);
}

static void test_the_stage_applies_to_session_clients_not_replication(void **state UNUSED)
{
	struct fake f;
	fake_init(&f, 40);
	struct req r;
	fake_query(&f, "SELECT 1");
	fake_req(&f, &r, false);
	r.mode = PIPE_MODE_SESSION;
	pipe_client_start(pipe, &f.pc, &r);
	assert_true(f.pc.active[PIPE_AT_REQUEST]);
	fake_free(&f);
	fake_init(&f, 41);
	r.pc = &f.pc;
	r.replication = true;
	pipe_client_start(pipe, &f.pc, &r);
	assert_false(f.pc.active[PIPE_AT_REQUEST]);
	fake_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_a_miss_continues_to_the_primary_and_its_answer_then_answers_a_hit),
	    cmocka_unit_test(
	        test_an_identical_concurrent_miss_parks_and_wakes_when_the_first_completes),
	    cmocka_unit_test(test_a_write_event_invalidates_the_table_s_answers),
	    cmocka_unit_test(test_uncacheable_statements_continue_without_recording),
	    cmocka_unit_test(
	        test_a_session_s_request_is_looked_up_only_outside_a_transaction_block),
	    cmocka_unit_test(test_the_stage_applies_to_session_clients_not_replication),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
