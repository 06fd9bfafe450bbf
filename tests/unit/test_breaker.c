/*
 * Unit tests for the per-node circuit breaker (dataplane/policy/breaker.c): it
 * opens at failure_threshold consecutive failures, refuses while open, lets
 * one probe through per recovery period (half-open), and any success —
 * whatever state it is in — closes it and resets the count. Also which
 * FATAL SQLSTATEs are node failures. Each test uses its own node index, so
 * the process-wide state of one test cannot leak into another.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "common/cfg.h"
#include "dataplane/policy/breaker.h"

#define UNUSED __attribute__((unused))

static struct cfg_node test_nodes[8];

/* A config with threshold and recovery (0: a probe is due at once). */
static struct cfg make_cfg(int threshold, int recovery)
{
	struct cfg c;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 8; i++)
		snprintf(test_nodes[i].name, sizeof(test_nodes[i].name), "n%d", i);
	c.nodes = test_nodes;
	c.n_nodes = 8;
	c.circuit_breaker.failure_threshold = threshold;
	c.circuit_breaker.recovery_timeout_secs = recovery;
	return c;
}

static void test_opens_at_threshold_of_consecutive_failures(void **state UNUSED)
{
	struct cfg c = make_cfg(3, 3600);
	breaker_reset(0);
	breaker_failure(&c, 0, "x");
	breaker_failure(&c, 0, "x");
	assert_int_equal(breaker_state(0), BREAKER_CLOSED);
	assert_true(breaker_allow(&c, 0));
	breaker_failure(&c, 0, "x");
	assert_int_equal(breaker_state(0), BREAKER_OPEN);
	assert_false(breaker_allow(&c, 0));
	assert_false(breaker_usable(&c, 0));
}

static void test_success_between_failures_resets_the_count(void **state UNUSED)
{
	struct cfg c = make_cfg(3, 3600);
	breaker_reset(1);
	for (int round = 0; round < 5; round++) {
		breaker_failure(&c, 1, "x");
		breaker_failure(&c, 1, "x");
		assert_true(breaker_needs_success(1));
		breaker_success(&c, 1); /* e.g. a ReadyForQuery in between */
		assert_false(breaker_needs_success(1));
	}
	assert_int_equal(breaker_state(1), BREAKER_CLOSED);
}

static void test_half_open_lets_one_probe_through_per_period(void **state UNUSED)
{
	struct cfg c = make_cfg(1, 0);
	breaker_reset(2);
	breaker_failure(&c, 2, "x");
	assert_int_equal(breaker_state(2), BREAKER_OPEN);
	/* recovery due: the first caller claims the probe */
	assert_true(breaker_allow(&c, 2));
	assert_int_equal(breaker_state(2), BREAKER_HALF_OPEN);
	/* with a long period, nobody else gets through until the probe reports */
	struct cfg slow = make_cfg(1, 3600);
	assert_false(breaker_allow(&slow, 2));
	assert_false(breaker_allow(&slow, 2));
}

static void test_probe_success_closes_even_without_a_new_login(void **state UNUSED)
{
	/* the probe may be served by an idle pooled server: its success (a
	 * ReadyForQuery) must close the breaker like a login does */
	struct cfg c = make_cfg(2, 0);
	breaker_reset(3);
	breaker_failure(&c, 3, "x");
	breaker_failure(&c, 3, "x");
	assert_true(breaker_allow(&c, 3));
	assert_int_equal(breaker_state(3), BREAKER_HALF_OPEN);
	breaker_success(&c, 3);
	assert_int_equal(breaker_state(3), BREAKER_CLOSED);
	struct cfg slow = make_cfg(2, 3600);
	assert_true(breaker_allow(&slow, 3));
	assert_true(breaker_usable(&slow, 3));
	/* and the count starts again from zero */
	breaker_failure(&slow, 3, "x");
	assert_int_equal(breaker_state(3), BREAKER_CLOSED);
}

static void test_probe_failure_opens_again(void **state UNUSED)
{
	struct cfg c = make_cfg(2, 0);
	breaker_reset(4);
	breaker_failure(&c, 4, "x");
	breaker_failure(&c, 4, "x");
	assert_true(breaker_allow(&c, 4));
	breaker_failure(&c, 4, "probe failed");
	assert_int_equal(breaker_state(4), BREAKER_OPEN);
	struct cfg slow = make_cfg(2, 3600);
	assert_false(breaker_allow(&slow, 4)); /* a fresh recovery period */
}

static void test_success_closes_an_open_breaker(void **state UNUSED)
{
	/* a server of the node answered while it was open (a client that kept
	 * its server): the node works */
	struct cfg c = make_cfg(1, 3600);
	breaker_reset(5);
	breaker_failure(&c, 5, "x");
	assert_int_equal(breaker_state(5), BREAKER_OPEN);
	breaker_success(&c, 5);
	assert_int_equal(breaker_state(5), BREAKER_CLOSED);
	assert_true(breaker_allow(&c, 5));
}

static void test_threshold_zero_disables_the_breaker(void **state UNUSED)
{
	struct cfg c = make_cfg(0, 3600);
	breaker_reset(6);
	for (int i = 0; i < 100; i++)
		breaker_failure(&c, 6, "x");
	assert_int_equal(breaker_state(6), BREAKER_CLOSED);
	assert_true(breaker_allow(&c, 6));
}

static void test_out_of_range_nodes_are_always_allowed(void **state UNUSED)
{
	struct cfg c = make_cfg(1, 3600);
	breaker_failure(&c, -1, "x");
	breaker_failure(&c, BREAKER_MAX_NODES, "x");
	assert_true(breaker_allow(&c, -1));
	assert_true(breaker_allow(&c, BREAKER_MAX_NODES));
	assert_int_equal(breaker_state(BREAKER_MAX_NODES), BREAKER_CLOSED);
	assert_false(breaker_needs_success(-1));
}

static void test_only_node_level_fatals_are_node_failures(void **state UNUSED)
{
	assert_true(breaker_fatal_is_node_failure(NULL)); /* closed without a word */
	assert_true(breaker_fatal_is_node_failure(""));
	assert_true(breaker_fatal_is_node_failure("57P02"));  /* crash of another backend */
	assert_true(breaker_fatal_is_node_failure("57P03"));  /* starting up, shutting down */
	assert_false(breaker_fatal_is_node_failure("57P01")); /* pg_terminate_backend */
	assert_false(breaker_fatal_is_node_failure("57P04")); /* database dropped */
	assert_false(breaker_fatal_is_node_failure("57P05")); /* idle_session_timeout */
	assert_false(breaker_fatal_is_node_failure("25P03")); /* idle in transaction */
	assert_false(breaker_fatal_is_node_failure("08P01")); /* a client's protocol error */
	assert_false(breaker_fatal_is_node_failure("28P01"));
	assert_false(breaker_fatal_is_node_failure("53300"));
}

static void test_state_names(void **state UNUSED)
{
	assert_string_equal(breaker_state_str(BREAKER_CLOSED), "closed");
	assert_string_equal(breaker_state_str(BREAKER_OPEN), "open");
	assert_string_equal(breaker_state_str(BREAKER_HALF_OPEN), "half-open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_opens_at_threshold_of_consecutive_failures),
	    cmocka_unit_test(test_success_between_failures_resets_the_count),
	    cmocka_unit_test(test_half_open_lets_one_probe_through_per_period),
	    cmocka_unit_test(test_probe_success_closes_even_without_a_new_login),
	    cmocka_unit_test(test_probe_failure_opens_again),
	    cmocka_unit_test(test_success_closes_an_open_breaker),
	    cmocka_unit_test(test_threshold_zero_disables_the_breaker),
	    cmocka_unit_test(test_out_of_range_nodes_are_always_allowed),
	    cmocka_unit_test(test_only_node_level_fatals_are_node_failures),
	    cmocka_unit_test(test_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
