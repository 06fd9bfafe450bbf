/*
 * Unit tests for the rate-limit stage (dataplane/pipeline/stage_rate.c) with
 * fake requests over the real token buckets (policy/tenant.c): a request
 * takes one token at the message that starts it; short of one it PARKs until
 * the token is due (reserved, so running it again after the wake takes
 * nothing); it is refused (ERROR 53400) in reject mode and when its wait
 * would pass max_wait_ms; tokens come back with time; the tenant's bucket
 * applies; without a limit the stage is not in the pipeline. Buckets are
 * process-wide, so each test uses its own user or database. Links no conn/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"

#define UNUSED __attribute__((unused))
#define MS     1000000ull

static struct cfg *load(const char *text)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_string("test", text, strlen(text), &err);
	if (!c)
		fail_msg("config refused: %s", err.msg);
	return c;
}

#define NODE_TOML "[[nodes]]\nhost = \"db\"\n"

struct fixture {
	struct cfg *c;
	struct snap snap;
	struct pipeline *p;
	struct pipe_client pc;
};

static void fix_init(struct fixture *f, const char *toml)
{
	memset(f, 0, sizeof(*f));
	f->c = load(toml);
	f->snap.cfg = f->c;
	const struct pipe_stage *st[] = {&stage_rate};
	f->p = pipe_build(f->c, st, 1);
	pipe_client_init(&f->pc);
}

static void fix_fini(struct fixture *f)
{
	pipe_free(f->p);
	cfg_free(f->c);
}

/* A message of type t from user at now_ns, through the stage. */
static enum pipe_verdict send_msg(struct fixture *f, struct req *r, const char *user, uint8_t t,
                                  uint64_t now_ns)
{
	static uint8_t msg[5];
	memset(r, 0, sizeof(*r));
	r->snap = &f->snap;
	r->user = user;
	r->database = "db";
	r->pc = &f->pc;
	r->type = t;
	msg[0] = t;
	msg[4] = 4;
	r->msg = msg;
	r->msg_len = 5;
	r->whole = true;
	r->starts = pipe_starts(&f->pc, t);
	r->now_ns = now_ns;
	return pipe_run(f->p, PIPE_AT_MSG, r);
}

static void test_no_limit_no_stage(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, NODE_TOML);
	assert_false(pipe_has(f.p, PIPE_AT_MSG));
	fix_fini(&f);
}

static void test_burst_then_park_until_the_token_is_due(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, "[rate_limit]\nqueries_per_second = 10\nburst_size = 2\n" NODE_TOML);
	struct req r;
	uint64_t t0 = 1000 * MS;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(send_msg(&f, &r, "u_burst", 'Q', t0), PIPE_CONTINUE);
		pipe_msg_passed(&f.pc, 'Q');
	}
	/* the third at the same instant: one token is 100 ms away */
	assert_int_equal(send_msg(&f, &r, "u_burst", 'Q', t0), PIPE_PARK);
	assert_string_equal(r.decided_by, "rate_limit");
	assert_int_equal(r.park.kind, PIPE_WAKE_AT);
	assert_true(r.park.wake_ns >= t0 + 100 * MS && r.park.wake_ns <= t0 + 100 * MS + 10);

	/* woken: the same request runs again and takes nothing more */
	assert_int_equal(send_msg(&f, &r, "u_burst", 'Q', r.park.wake_ns), PIPE_CONTINUE);
	pipe_msg_passed(&f.pc, 'Q');
	/* the next waits behind it (its tokens were reserved: the bucket is in
	 * debt), 100 ms after the first wake */
	assert_int_equal(send_msg(&f, &r, "u_burst", 'Q', t0 + 100 * MS), PIPE_PARK);
	assert_true(r.park.wake_ns >= t0 + 200 * MS && r.park.wake_ns <= t0 + 200 * MS + 10);
	fix_fini(&f);
}

static void test_only_the_message_that_starts_a_request_takes_a_token(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, "[rate_limit]\nqueries_per_second = 10\nburst_size = 1\n" NODE_TOML);
	struct req r;
	uint64_t t0 = 1000 * MS;
	/* Parse Bind Describe Execute Sync: one token, at the Parse */
	const char batch[] = "PBDES";
	for (int i = 0; batch[i]; i++) {
		assert_int_equal(send_msg(&f, &r, "u_batch", (uint8_t)batch[i], t0), PIPE_CONTINUE);
		pipe_msg_passed(&f.pc, (uint8_t)batch[i]);
	}
	/* the next batch finds the bucket empty */
	assert_int_equal(send_msg(&f, &r, "u_batch", 'B', t0), PIPE_PARK);
	fix_fini(&f);
}

static void test_reject_mode_refuses_with_53400(void **state UNUSED)
{
	struct fixture f;
	fix_init(
	    &f,
	    "[rate_limit]\nqueries_per_second = 5\nburst_size = 1\nmode = \"reject\"\n" NODE_TOML);
	struct req r;
	uint64_t t0 = 1000 * MS;
	assert_int_equal(send_msg(&f, &r, "u_reject", 'Q', t0), PIPE_CONTINUE);
	pipe_msg_passed(&f.pc, 'Q');
	assert_int_equal(send_msg(&f, &r, "u_reject", 'Q', t0), PIPE_ERROR);
	assert_string_equal(r.err.sqlstate, "53400");
	assert_non_null(strstr(r.err.msg, "rate_limit.queries_per_second"));
	assert_non_null(strstr(r.err.msg, "user:u_reject"));
	assert_non_null(r.err.hint);
	pipe_msg_passed(&f.pc, 'Q');
	/* 200 ms later a token is back */
	assert_int_equal(send_msg(&f, &r, "u_reject", 'Q', t0 + 200 * MS + 1), PIPE_CONTINUE);
	fix_fini(&f);
}

static void test_clocks_that_differ_never_refill_a_span_twice(void **state UNUSED)
{
	/* two callers whose clocks are 40 ms apart (two workers' turn times),
	 * alternating: over 2 s of their time the bucket admits the burst and
	 * 2 s of refill, not more */
	struct cfg *c = load("[rate_limit]\nqueries_per_second = 50\nburst_size = 5\n"
	                     "mode = \"reject\"\n" NODE_TOML);
	struct rate_who who = {.cfg = c, .user = "u_skew", .database = "db"};
	uint64_t t0 = 5000 * MS, wait = 0;
	char msg[256];
	int ok = 0;
	for (uint64_t t = 0; t <= 2000 * MS; t += MS) {
		uint64_t now = t0 + t - ((t / MS) % 2 ? 40 * MS : 0);
		if (rate_take(&who, now, 0, &wait, msg, sizeof(msg)) == RATE_OK)
			ok++;
	}
	assert_in_range(ok, 100, 5 + 100 + 1);
	cfg_free(c);
}

static void test_wait_past_max_wait_is_refused(void **state UNUSED)
{
	struct fixture f;
	fix_init(
	    &f,
	    "[rate_limit]\nqueries_per_second = 10\nburst_size = 1\nmax_wait_ms = 250\n" NODE_TOML);
	struct req r;
	uint64_t t0 = 1000 * MS;
	assert_int_equal(send_msg(&f, &r, "u_wait", 'Q', t0), PIPE_CONTINUE);
	pipe_msg_passed(&f.pc, 'Q');
	/* waits of 100 and 200 ms are throttles... */
	assert_int_equal(send_msg(&f, &r, "u_wait", 'Q', t0), PIPE_PARK);
	pipe_msg_passed(&f.pc, 'Q');
	assert_int_equal(send_msg(&f, &r, "u_wait", 'Q', t0), PIPE_PARK);
	pipe_msg_passed(&f.pc, 'Q');
	/* ...one of 300 ms passes max_wait_ms: refused, and takes no token */
	assert_int_equal(send_msg(&f, &r, "u_wait", 'Q', t0), PIPE_ERROR);
	assert_string_equal(r.err.sqlstate, "53400");
	assert_non_null(strstr(r.err.msg, "max_wait_ms"));
	pipe_msg_passed(&f.pc, 'Q');
	assert_int_equal(send_msg(&f, &r, "u_wait", 'Q', t0), PIPE_ERROR);
	fix_fini(&f);
}

static void test_tenant_bucket_applies_to_its_clients(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, "[[tenants]]\nid = \"acme\"\nrate_limit = 1\ndatabases = [\"db_acme\"]\n"
	             "users = []\n[rate_limit]\nmode = \"reject\"\n" NODE_TOML);
	assert_true(pipe_has(f.p, PIPE_AT_MSG));
	struct tenant_state *ts = NULL;
	const struct cfg_tenant *tc = NULL;
	const char *code = NULL;
	char why[200];
	assert_int_equal(tenant_login(f.c, "u", "db_acme", NULL, &ts, &tc, &code, why, sizeof(why)),
	                 0);
	assert_non_null(tc);
	struct req r;
	uint64_t t0 = 1000 * MS;
	for (int i = 0; i < 2; i++) {
		static uint8_t q[5] = {'Q', 0, 0, 0, 4};
		memset(&r, 0, sizeof(r));
		r.snap = &f.snap;
		r.user = "u";
		r.database = "db_acme";
		r.tenant = ts;
		r.tenant_cfg = tc;
		r.pc = &f.pc;
		r.type = 'Q';
		r.msg = q;
		r.msg_len = 5;
		r.whole = true;
		r.starts = true;
		r.now_ns = t0;
		enum pipe_verdict v = pipe_run(f.p, PIPE_AT_MSG, &r);
		assert_int_equal(v, i == 0 ? PIPE_CONTINUE : PIPE_ERROR);
		pipe_msg_passed(&f.pc, 'Q');
	}
	assert_non_null(strstr(r.err.msg, "tenants.rate_limit"));
	tenant_logout(ts);
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_limit_no_stage),
	    cmocka_unit_test(test_burst_then_park_until_the_token_is_due),
	    cmocka_unit_test(test_only_the_message_that_starts_a_request_takes_a_token),
	    cmocka_unit_test(test_reject_mode_refuses_with_53400),
	    cmocka_unit_test(test_wait_past_max_wait_is_refused),
	    cmocka_unit_test(test_clocks_that_differ_never_refill_a_span_twice),
	    cmocka_unit_test(test_tenant_bucket_applies_to_its_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
