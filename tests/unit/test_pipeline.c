/*
 * Unit tests for the query pipeline's runner (dataplane/pipeline/pipeline.c)
 * with fake stages and fake requests: stages run in their order, the first
 * verdict other than CONTINUE stops the run and names its stage, a stage
 * whose feature is disabled is not in the pipeline at all, a stage that does
 * not apply to a client is skipped for it, events reach only their
 * subscribers, each stage's per-client slot is its own and is freed, and the
 * request boundaries every stage relies on (req_seq, in_batch, pipe_starts)
 * follow the messages conn/ reports. Links no conn/.
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

#define UNUSED __attribute__((unused))

/* what the fake stages did, in order */
static char trail[256];
static enum pipe_verdict verdict_b = PIPE_CONTINUE;
static bool feature_on = true;
static int freed;
static int events_seen[PIPE_SLOTS];

static void note(const char *s)
{
	strncat(trail, s, sizeof(trail) - strlen(trail) - 1);
}

static enum pipe_verdict run_a(struct req *r UNUSED, union pipe_slot *slot)
{
	slot->u++;
	note("a");
	return PIPE_CONTINUE;
}

static enum pipe_verdict run_b(struct req *r, union pipe_slot *slot)
{
	slot->u += 10;
	note("b");
	if (verdict_b == PIPE_ERROR)
		return req_error(r, "53400", NULL, "refused by %s", "b");
	if (verdict_b == PIPE_PARK)
		return req_park_until(r, r->now_ns + 5);
	if (verdict_b == PIPE_ANSWERED)
		sbuf_append(r->out, "Z\0\0\0\5I", 6);
	return verdict_b;
}

static enum pipe_verdict run_c(struct req *r UNUSED, union pipe_slot *slot UNUSED)
{
	note("c");
	return PIPE_CONTINUE;
}

static bool on_if_feature(const struct cfg *c UNUSED)
{
	return feature_on;
}

static bool applies_to_alice(const struct req *r)
{
	return !strcmp(r->user, "alice");
}

static void free_slot(union pipe_slot *slot)
{
	freed++;
	slot->u = 0;
}

static void on_event(const struct pipe_event *ev UNUSED, union pipe_slot *slot UNUSED)
{
	/* which stage heard it: by the slot's place */
}

static void ev_a(const struct pipe_event *ev, union pipe_slot *slot UNUSED)
{
	events_seen[PIPE_SLOT_REWRITE] |= 1 << ev->kind;
}

static void ev_c(const struct pipe_event *ev, union pipe_slot *slot UNUSED)
{
	events_seen[PIPE_SLOT_ROUTE] |= 1 << ev->kind;
}

/* registered out of order: the runner sorts by .order */
static const struct pipe_stage st_c = {.name = "c",
                                       .point = PIPE_AT_MSG,
                                       .slot = PIPE_SLOT_ROUTE,
                                       .order = 30,
                                       .run = run_c,
                                       .events = 1u << PEV_QUERY_DONE,
                                       .on_event = ev_c};
static const struct pipe_stage st_a = {.name = "a",
                                       .point = PIPE_AT_MSG,
                                       .slot = PIPE_SLOT_REWRITE,
                                       .order = 10,
                                       .run = run_a,
                                       .events = (1u << PEV_CONNECT) | (1u << PEV_QUERY_DONE),
                                       .on_event = ev_a,
                                       .client_free = free_slot};
static const struct pipe_stage st_b = {.name = "b",
                                       .point = PIPE_AT_MSG,
                                       .slot = PIPE_SLOT_RATE,
                                       .order = 20,
                                       .run = run_b,
                                       .enabled = on_if_feature,
                                       .client_free = free_slot};
static const struct pipe_stage st_route = {
    .name = "r", .point = PIPE_AT_ROUTE, .slot = PIPE_SLOT_CACHE, .order = 1, .run = run_c};
static const struct pipe_stage st_alice = {.name = "alice",
                                           .point = PIPE_AT_REQUEST,
                                           .slot = PIPE_SLOT_PLUGIN,
                                           .order = 1,
                                           .run = run_a,
                                           .applies = applies_to_alice,
                                           .replaces = true,
                                           .events = 1u << PEV_ERROR,
                                           .on_event = on_event};

static const struct pipe_stage *const all[] = {&st_c, &st_a, &st_b, &st_route, &st_alice};

static struct cfg cfg0;
static struct sbuf out;

static void fake_req(struct req *r, struct pipe_client *pc, const char *user)
{
	memset(r, 0, sizeof(*r));
	r->user = user;
	r->database = "db";
	r->pc = pc;
	r->node = -1;
	r->now_ns = 1000;
	sbuf_reset(&out);
	r->out = &out;
}

static int setup(void **state UNUSED)
{
	trail[0] = '\0';
	verdict_b = PIPE_CONTINUE;
	feature_on = true;
	freed = 0;
	memset(events_seen, 0, sizeof(events_seen));
	return 0;
}

static void test_stages_run_in_their_order_whatever_the_list_order(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	assert_non_null(p);
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "bob");
	assert_int_equal(pipe_run(p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_string_equal(trail, "abc");
	assert_null(r.decided_by);
	/* each stage got its own slot */
	assert_int_equal(pc.slot[PIPE_SLOT_REWRITE].u, 1);
	assert_int_equal(pc.slot[PIPE_SLOT_RATE].u, 10);
	pipe_free(p);
}

static void test_first_verdict_other_than_continue_stops_the_run(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;

	verdict_b = PIPE_ERROR;
	fake_req(&r, &pc, "bob");
	assert_int_equal(pipe_run(p, PIPE_AT_MSG, &r), PIPE_ERROR);
	assert_string_equal(trail, "ab"); /* c never ran */
	assert_string_equal(r.decided_by, "b");
	assert_string_equal(r.err.sqlstate, "53400");
	assert_string_equal(r.err.msg, "refused by b");

	trail[0] = '\0';
	verdict_b = PIPE_PARK;
	fake_req(&r, &pc, "bob");
	assert_int_equal(pipe_run(p, PIPE_AT_MSG, &r), PIPE_PARK);
	assert_string_equal(trail, "ab");
	assert_int_equal(r.park.kind, PIPE_WAKE_AT);
	assert_int_equal(r.park.wake_ns, 1005);

	trail[0] = '\0';
	verdict_b = PIPE_ANSWERED;
	fake_req(&r, &pc, "bob");
	assert_int_equal(pipe_run(p, PIPE_AT_MSG, &r), PIPE_ANSWERED);
	assert_int_equal(r.out->len, 6);
	assert_int_equal(r.out->p[0], 'Z');
	pipe_free(p);
}

static void test_disabled_feature_has_no_stage(void **state UNUSED)
{
	feature_on = false;
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	assert_int_equal(p->n[PIPE_AT_MSG], 2); /* a and c; b's feature is off */
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "bob");
	verdict_b = PIPE_ERROR; /* would refuse, were it there */
	assert_int_equal(pipe_run(p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_string_equal(trail, "ac");
	pipe_free(p);

	/* nothing at all: conn/ fills no request */
	const struct pipe_stage *only_b[] = {&st_b};
	p = pipe_build(&cfg0, only_b, 1);
	assert_false(pipe_has(p, PIPE_AT_MSG));
	assert_false(pipe_has(p, PIPE_AT_ROUTE));
	assert_false(pipe_wants(p, PEV_QUERY_DONE));
	pipe_free(p);
}

static void test_points_are_separate(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	assert_int_equal(p->n[PIPE_AT_ROUTE], 1);
	assert_int_equal(p->n[PIPE_AT_REQUEST], 1);
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "bob");
	assert_int_equal(pipe_run(p, PIPE_AT_ROUTE, &r), PIPE_CONTINUE);
	assert_string_equal(trail, "c"); /* the route point's stage only */
	pipe_free(p);
}

static void test_stage_that_does_not_apply_to_a_client_is_skipped(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	assert_true(p->replaces);
	struct pipe_client bob, alice;
	pipe_client_init(&bob);
	pipe_client_init(&alice);
	struct req r;
	fake_req(&r, &bob, "bob");
	pipe_client_start(p, &bob, &r);
	fake_req(&r, &alice, "alice");
	pipe_client_start(p, &alice, &r);
	/* only alice runs buffered (her stage may replace messages) */
	assert_false(bob.buffered);
	assert_true(alice.buffered);
	assert_false(bob.active[PIPE_AT_REQUEST]); /* conn/ fills no request for bob */
	assert_true(alice.active[PIPE_AT_REQUEST]);
	assert_true(bob.active[PIPE_AT_MSG]);

	fake_req(&r, &bob, "bob");
	pipe_run(p, PIPE_AT_REQUEST, &r);
	assert_int_equal(bob.slot[PIPE_SLOT_PLUGIN].u, 0);
	fake_req(&r, &alice, "alice");
	pipe_run(p, PIPE_AT_REQUEST, &r);
	assert_int_equal(alice.slot[PIPE_SLOT_PLUGIN].u, 1);
	pipe_free(p);
}

static void test_events_reach_only_their_subscribers(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	assert_true(pipe_wants(p, PEV_CONNECT));
	assert_true(pipe_wants(p, PEV_QUERY_DONE));
	assert_false(pipe_wants(p, PEV_QUERY_START));
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "bob");
	struct pipe_event ev = {.kind = PEV_CONNECT, .r = &r};
	pipe_emit(p, &pc, &ev);
	ev.kind = PEV_QUERY_DONE;
	ev.duration_ns = 7;
	ev.rows = 3;
	ev.ok = true;
	pipe_emit(p, &pc, &ev);
	assert_int_equal(events_seen[PIPE_SLOT_REWRITE],
	                 (1 << PEV_CONNECT) | (1 << PEV_QUERY_DONE));
	assert_int_equal(events_seen[PIPE_SLOT_ROUTE], 1 << PEV_QUERY_DONE);
	pipe_free(p);
}

static void test_client_free_frees_each_stage_slot(void **state UNUSED)
{
	struct pipeline *p = pipe_build(&cfg0, all, 5);
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "bob");
	pipe_run(p, PIPE_AT_MSG, &r);
	pipe_client_free(p, &pc);
	assert_int_equal(freed, 2); /* a and b have client_free */
	assert_int_equal(pc.slot[PIPE_SLOT_RATE].u, 0);
	pipe_free(p);
}

/* A pipeline rebuilt with b's feature switched on (a plugin set going
 * live): a client moved to it keeps a's state (a is in both), b runs for
 * it from then on; moved back, b's state is freed and a's is still kept. */
static void test_swap_keeps_shared_stages_state_and_frees_the_rest(void **state UNUSED)
{
	feature_on = false;
	struct pipeline *off = pipe_build(&cfg0, all, 5);
	feature_on = true;
	struct pipeline *on = pipe_build(&cfg0, all, 5);
	struct pipe_client pc;
	pipe_client_init(&pc);
	struct req r;
	fake_req(&r, &pc, "alice");
	pipe_client_start(off, &pc, &r);
	pipe_run(off, PIPE_AT_MSG, &r);
	assert_string_equal(trail, "ac");
	assert_int_equal(pc.slot[PIPE_SLOT_REWRITE].u, 1);

	pipe_client_swap(off, on, &pc, &r);
	assert_int_equal(freed, 0); /* a is in both, b was not in off */
	assert_int_equal(pc.slot[PIPE_SLOT_REWRITE].u, 1);
	assert_true(pc.buffered); /* alice's replacing stage still applies */
	trail[0] = '\0';
	fake_req(&r, &pc, "alice");
	pipe_run(on, PIPE_AT_MSG, &r);
	assert_string_equal(trail, "abc");
	assert_int_equal(pc.slot[PIPE_SLOT_REWRITE].u, 2);
	assert_int_equal(pc.slot[PIPE_SLOT_RATE].u, 10);

	pipe_client_swap(on, off, &pc, &r);
	assert_int_equal(freed, 1); /* b's, and only b's */
	assert_int_equal(pc.slot[PIPE_SLOT_RATE].u, 0);
	assert_int_equal(pc.slot[PIPE_SLOT_REWRITE].u, 2);
	trail[0] = '\0';
	pipe_run(off, PIPE_AT_MSG, &r);
	assert_string_equal(trail, "ac");
	pipe_client_free(off, &pc);
	assert_int_equal(freed, 2);
	pipe_free(on);
	pipe_free(off);
}

static void test_request_boundaries_follow_the_messages(void **state UNUSED)
{
	struct pipe_client pc;
	pipe_client_init(&pc);
	assert_true(pipe_starts(&pc, 'Q'));
	assert_true(pipe_starts(&pc, 'P'));
	assert_false(pipe_starts(&pc, 'S'));
	assert_false(pipe_starts(&pc, 'C')); /* a Close does not start a request */

	pipe_msg_passed(&pc, 'Q');
	assert_int_equal(pc.req_seq, 1);

	/* an extended batch: its first message starts it, the rest do not */
	pipe_msg_passed(&pc, 'P');
	assert_true(pc.in_batch);
	assert_false(pipe_starts(&pc, 'B'));
	assert_false(pipe_starts(&pc, 'E'));
	pipe_msg_passed(&pc, 'B');
	pipe_msg_passed(&pc, 'E');
	assert_int_equal(pc.req_seq, 1);
	pc.rflags = PIPE_RF_PRIMARY_ONLY;
	pipe_msg_passed(&pc, 'S');
	assert_int_equal(pc.req_seq, 2);
	assert_false(pc.in_batch);
	assert_int_equal(pc.rflags, 0); /* a stage's note lasts one request */
	assert_true(pipe_starts(&pc, 'B'));

	/* a request answered without a server ends as a whole */
	pipe_msg_passed(&pc, 'P');
	pipe_request_done(&pc);
	assert_int_equal(pc.req_seq, 3);
	assert_false(pc.in_batch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_stages_run_in_their_order_whatever_the_list_order, setup),
	    cmocka_unit_test_setup(test_first_verdict_other_than_continue_stops_the_run, setup),
	    cmocka_unit_test_setup(test_disabled_feature_has_no_stage, setup),
	    cmocka_unit_test_setup(test_points_are_separate, setup),
	    cmocka_unit_test_setup(test_stage_that_does_not_apply_to_a_client_is_skipped, setup),
	    cmocka_unit_test_setup(test_events_reach_only_their_subscribers, setup),
	    cmocka_unit_test_setup(test_client_free_frees_each_stage_slot, setup),
	    cmocka_unit_test_setup(test_request_boundaries_follow_the_messages, setup),
	    cmocka_unit_test_setup(test_swap_keeps_shared_stages_state_and_frees_the_rest, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
