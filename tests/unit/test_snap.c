/*
 * Unit tests for config snapshots' subscriptions (dataplane/policy/snap.c):
 * install subscribers are called in registration order with the snapshot
 * just installed and the one it replaced; builders fill their field of
 * each new snapshot, may refuse a config (snap_new fails with their
 * message), and their release runs when the snapshot goes. snap.c names no
 * feature: this program links policy/ without the cache or the rewriter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cfg.h"
#include "dataplane/policy/snap.h"

#define UNUSED __attribute__((unused))

static struct cfg *load(void)
{
	static const char text[] = "[[nodes]]\nhost = \"db\"\n";
	struct cfg_error err;
	struct cfg *c = cfg_load_string("test.toml", text, sizeof(text) - 1, &err);
	assert_non_null(c);
	return c;
}

/* What the subscribers saw, in call order. */
static struct call {
	char who;
	const struct snap *s, *old;
} calls[16];
static int n_calls;

static void record(const struct snap *s, const struct snap *old, void *arg)
{
	if (n_calls < 16)
		calls[n_calls++] = (struct call){*(const char *)arg, s, old};
}

static int reset(void **state UNUSED)
{
	snap_subscriptions_reset();
	n_calls = 0;
	return 0;
}

static void test_install_calls_subscribers_in_registration_order(void **state UNUSED)
{
	static const char a = 'a', b = 'b', c = 'c';
	assert_int_equal(snap_subscribe(record, (void *)&b), 0);
	assert_int_equal(snap_subscribe(record, (void *)&a), 0);
	assert_int_equal(snap_subscribe(record, (void *)&c), 0);
	char err[200];
	struct snap *s1 = snap_new(load(), err, sizeof(err));
	assert_non_null(s1);
	struct snap *prev = snap_current(); /* what an earlier test left, or NULL */
	snap_unref(prev);                   /* still current: alive */
	snap_install(s1);
	assert_int_equal(n_calls, 3);
	assert_int_equal(calls[0].who, 'b');
	assert_int_equal(calls[1].who, 'a');
	assert_int_equal(calls[2].who, 'c');
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(calls[i].s, s1);
		assert_ptr_equal(calls[i].old, prev);
	}
	struct snap *s2 = snap_new(load(), err, sizeof(err));
	assert_non_null(s2);
	snap_install_gen(s2, 42);
	assert_int_equal(n_calls, 6);
	assert_int_equal(calls[3].who, 'b');
	assert_ptr_equal(calls[3].s, s2);
	assert_ptr_equal(calls[3].old, s1); /* still referenced during the call */
	struct snap *cur = snap_current();
	assert_ptr_equal(cur, s2);
	assert_int_equal(cur->generation, 42);
	snap_unref(cur);
}

static void test_no_subscriber_after_reset(void **state UNUSED)
{
	static const char a = 'a';
	assert_int_equal(snap_subscribe(record, (void *)&a), 0);
	snap_subscriptions_reset();
	char err[200];
	struct snap *s = snap_new(load(), err, sizeof(err));
	assert_non_null(s);
	snap_install(s);
	assert_int_equal(n_calls, 0);
}

static void test_subscriptions_are_capped(void **state UNUSED)
{
	static const char a = 'a';
	for (int i = 0; i < SNAP_MAX_SUBSCRIBERS; i++)
		assert_int_equal(snap_subscribe(record, (void *)&a), 0);
	assert_int_equal(snap_subscribe(record, (void *)&a), -ENOSPC);
}

/* A builder that marks the snapshot through its rewrite field (any
 * pointer will do: nothing here dereferences it). */
static int built, released;
static char marker;

static int build_ok(struct snap *s, char *err UNUSED, size_t errlen UNUSED)
{
	built++;
	s->rewrite = (struct rw_rules *)&marker;
	return 0;
}

static int build_refuse(struct snap *s UNUSED, char *err, size_t errlen)
{
	snprintf(err, errlen, "rule 3 is bad");
	return -1;
}

static void release(struct snap *s)
{
	if (s->rewrite == (struct rw_rules *)&marker)
		released++;
	s->rewrite = NULL;
}

static void test_builder_fills_each_snapshot_and_release_runs_at_the_end(void **state UNUSED)
{
	built = released = 0;
	assert_int_equal(snap_add_builder(build_ok, release), 0);
	char err[200];
	struct snap *s = snap_new(load(), err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(built, 1);
	assert_ptr_equal(s->rewrite, &marker);
	snap_ref(s);
	snap_unref(s);
	assert_int_equal(released, 0); /* a reference is left */
	snap_unref(s);
	assert_int_equal(released, 1);
}

static void test_a_refusing_builder_fails_snap_new_with_its_message(void **state UNUSED)
{
	built = released = 0;
	assert_int_equal(snap_add_builder(build_ok, release), 0);
	assert_int_equal(snap_add_builder(build_refuse, NULL), 0);
	char err[200] = "";
	struct snap *s = snap_new(load(), err, sizeof(err));
	assert_null(s);
	assert_string_equal(err, "rule 3 is bad");
	assert_int_equal(built, 1);
	assert_int_equal(released, 1); /* what the first builder made is freed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_install_calls_subscribers_in_registration_order, reset),
	    cmocka_unit_test_setup(test_no_subscriber_after_reset, reset),
	    cmocka_unit_test_setup(test_subscriptions_are_capped, reset),
	    cmocka_unit_test_setup(test_builder_fills_each_snapshot_and_release_runs_at_the_end,
	                           reset),
	    cmocka_unit_test_setup(test_a_refusing_builder_fails_snap_new_with_its_message, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
