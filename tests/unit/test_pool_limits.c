/*
 * Unit tests for issue 19's pool limits (dataplane/pool/pool.c), with fake
 * waiters and items as in test_pool.c: a pool's own size, the reserve, and
 * the caps shared by the pools of one database (max_db_connections) or one
 * user (max_user_connections): never exceeded, a freed slot goes to a
 * sibling pool's waiter, a release refuses an item a sibling waits for, and
 * a sibling's idle item can be evicted, still counted until it is dropped.
 * Each test uses its own database names (the pools are process-wide).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/pool/pool.h"

#define UNUSED __attribute__((unused))

static int fake_max(void)
{
	return 10; /* the global max_pool_size */
}

struct fake_waiter {
	struct pool_waiter pw;
	int grants;
	bool permit;
	struct pool_item *item;
};

static void fake_granted(struct pool_waiter *wt, bool direct UNUSED)
{
	struct fake_waiter *f = (struct fake_waiter *)wt;
	f->grants++;
	f->permit = wt->permit;
	f->item = wt->item;
}

static int home;

static void waiter_init(struct fake_waiter *f)
{
	memset(f, 0, sizeof(*f));
	f->pw.home = &home;
	clock_gettime(CLOCK_MONOTONIC, &f->pw.since);
	f->pw.granted = fake_granted;
}

static struct pool *capped_pool(const char *db, const char *user, int size, int db_cap,
                                int user_cap)
{
	struct pool *p = pool_lookup(db, user, "", 0, 0);
	struct pool_limits l = {.size = size, .min = -1, .db_cap = db_cap, .user_cap = user_cap};
	assert_non_null(p);
	pool_set_limits(p, &l);
	return p;
}

static enum pool_grant ask(struct pool *p, struct fake_waiter *f)
{
	struct pool_item *out = NULL;
	waiter_init(f);
	return pool_acquire(p, &f->pw, pool_max(p), &out);
}

static int total_of(struct pool *p)
{
	struct pool_stats st;
	pool_get_stats(p, &st);
	return st.total;
}

static int setup(void **state UNUSED)
{
	pool_init(1, 0, fake_max);
	return 0;
}

static void test_own_size_replaces_the_global_max(void **state UNUSED)
{
	struct pool *small = capped_pool("size_small", "u", 3, 0, 0);
	struct pool *big = capped_pool("size_big", "u", 15, 0, 0);
	struct pool *plain = capped_pool("size_plain", "u", 0, 0, 0);

	assert_int_equal(pool_max(small), 3);
	assert_int_equal(pool_max(big), 15); /* a database entry may go above the global */
	assert_int_equal(pool_max(plain), 10);
}

static void test_database_cap_spans_its_users_pools(void **state UNUSED)
{
	struct pool *a = capped_pool("dbcap", "a", 0, 2, 0);
	struct pool *b = capped_pool("dbcap", "b", 0, 2, 0);
	struct fake_waiter f1, f2, wa, wb;

	assert_int_equal(ask(a, &f1), POOL_CONNECT);
	assert_int_equal(ask(b, &f2), POOL_CONNECT);
	/* both pools are far below their size, the database is at its cap */
	assert_int_equal(ask(a, &wa), POOL_WAIT);
	assert_int_equal(ask(b, &wb), POOL_WAIT);
	/* a's dropped slot goes to a's own waiter first */
	pool_drop(a, pool_max(a));
	assert_int_equal(wa.grants, 1);
	assert_true(wa.permit);
	assert_int_equal(total_of(a) + total_of(b), 2);
	/* a drop in a with no waiter there wakes b's waiter */
	pool_drop(a, pool_max(a));
	assert_int_equal(wb.grants, 1);
	assert_true(wb.permit);
	assert_int_equal(total_of(a), 0);
	assert_int_equal(total_of(b), 2);
}

static void test_user_cap_spans_databases(void **state UNUSED)
{
	struct pool *x = capped_pool("ucap_x", "ucap", 0, 0, 1);
	struct pool *y = capped_pool("ucap_y", "ucap", 0, 0, 1);
	struct pool *other = capped_pool("ucap_x", "someone", 0, 0, 1);
	struct fake_waiter f1, f2, f3;

	assert_int_equal(ask(x, &f1), POOL_CONNECT);
	assert_int_equal(ask(y, &f2), POOL_WAIT);
	/* another user of the same database has its own budget */
	assert_int_equal(ask(other, &f3), POOL_CONNECT);
}

static void test_release_refuses_an_item_a_sibling_waits_for(void **state UNUSED)
{
	struct pool *a = capped_pool("relsib", "a", 0, 1, 0);
	struct pool *b = capped_pool("relsib", "b", 0, 1, 0);
	struct fake_waiter f, wb;
	struct pool_item it;

	assert_int_equal(ask(a, &f), POOL_CONNECT);
	memset(&it, 0, sizeof(it));
	assert_true(pool_release(a, &it, &home)); /* nobody waits: pooled */
	struct pool_item *out = NULL;
	assert_int_equal(pool_acquire(a, &f.pw, pool_max(a), &out), POOL_GOT);
	assert_int_equal(ask(b, &wb), POOL_WAIT);
	/* now b waits under the shared cap: a's server must close, not idle */
	assert_false(pool_release(a, &it, &home));
	pool_drop(a, pool_max(a)); /* its close */
	assert_int_equal(wb.grants, 1);
	assert_true(wb.permit);
}

/* Two users at a shared cap, each with a waiter: the slot a release or a
 * drop frees goes to whichever client has waited longest, across pools, so
 * a busy user cannot starve another (seen with pgbench: 1930 against 28
 * transactions before). */
static void test_longest_wait_is_served_first_across_pools(void **state UNUSED)
{
	struct pool *a = capped_pool("fair", "a", 0, 1, 0);
	struct pool *b = capped_pool("fair", "b", 0, 1, 0);
	struct fake_waiter f, wb, wa;
	struct pool_item it;

	assert_int_equal(ask(a, &f), POOL_CONNECT);
	assert_int_equal(ask(b, &wb), POOL_WAIT); /* b's client first */
	assert_int_equal(ask(a, &wa), POOL_WAIT);
	memset(&it, 0, sizeof(it));
	/* a has its own waiter, but b's has waited longer: a's server goes */
	assert_false(pool_release(a, &it, &home));
	assert_int_equal(wa.grants, 0);
	pool_drop(a, pool_max(a));
	assert_int_equal(wb.grants, 1);
	assert_int_equal(wa.grants, 0);
	/* now a's client is the oldest: b's release passes to it */
	assert_false(pool_release(b, &it, &home));
	pool_drop(b, pool_max(b));
	assert_int_equal(wa.grants, 1);
}

static void test_evicted_idle_item_stays_counted_until_dropped(void **state UNUSED)
{
	struct pool *a = capped_pool("evict", "a", 0, 1, 0);
	struct pool *b = capped_pool("evict", "b", 0, 1, 0);
	struct fake_waiter f, wb;
	struct pool_item it;

	assert_int_equal(ask(a, &f), POOL_CONNECT);
	memset(&it, 0, sizeof(it));
	assert_true(pool_release(a, &it, &home));
	assert_null(pool_evict_for(b)); /* nobody waits in b yet */
	assert_int_equal(ask(b, &wb), POOL_WAIT);
	assert_ptr_equal(pool_evict_for(b), &it);
	struct pool_stats st;
	pool_get_stats(a, &st);
	assert_int_equal(st.idle, 0);
	assert_int_equal(st.total, 1); /* the backend is still there */
	assert_int_equal(wb.grants, 0);
	pool_drop(a, pool_max(a)); /* closed: the slot moves */
	assert_int_equal(wb.grants, 1);
	assert_int_equal(total_of(a) + total_of(b), 1);
}

static void test_reserve_grants_beyond_the_size_once(void **state UNUSED)
{
	struct pool *p = pool_lookup("reserve", "u", "", 0, 0);
	struct pool *none = pool_lookup("reserve_none", "u", "", 0, 0);
	struct pool_limits l = {.size = 1, .min = -1, .reserve = 1};
	struct pool_limits l0 = {.size = 1, .min = -1, .reserve = 0};
	struct fake_waiter f, w1, w2, n1, n2;

	pool_set_limits(p, &l);
	pool_set_limits(none, &l0);
	assert_int_equal(pool_reserve(p), 1);
	assert_int_equal(ask(p, &f), POOL_CONNECT);
	assert_int_equal(ask(p, &w1), POOL_WAIT);
	assert_int_equal(ask(p, &w2), POOL_WAIT);
	assert_true(pool_try_reserve(p, &w1.pw));
	assert_int_equal(w1.grants, 1);
	assert_true(w1.permit);
	assert_int_equal(total_of(p), 2);
	assert_false(pool_try_reserve(p, &w2.pw)); /* size + reserve reached */
	assert_int_equal(w2.grants, 0);
	/* a reserve connection released above the size closes */
	struct pool_item it;
	memset(&it, 0, sizeof(it));
	assert_false(pool_release(p, &it, &home));
	/* no reserve configured: never */
	assert_int_equal(ask(none, &n1), POOL_CONNECT);
	assert_int_equal(ask(none, &n2), POOL_WAIT);
	assert_false(pool_try_reserve(none, &n2.pw));
}

static void test_warm_connections_stay_within_the_database_cap(void **state UNUSED)
{
	struct pool *a = capped_pool("warmcap", "a", 0, 2, 0);
	struct pool *b = capped_pool("warmcap", "b", 0, 2, 0);
	struct fake_waiter f;
	uint32_t len;
	uint64_t sig;

	pool_remember_startup(b, "pkt", 3, 0);
	assert_int_equal(ask(a, &f), POOL_CONNECT);
	assert_true(pool_want_warm(b, 5, pool_max(b)));
	assert_false(pool_want_warm(b, 5, pool_max(b))); /* the database holds 2 */
	assert_int_equal(total_of(a) + total_of(b), 2);
	char *pkt = pool_warm_startup(b, &len, &sig);
	assert_non_null(pkt);
	free(pkt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_own_size_replaces_the_global_max, setup),
	    cmocka_unit_test_setup(test_database_cap_spans_its_users_pools, setup),
	    cmocka_unit_test_setup(test_user_cap_spans_databases, setup),
	    cmocka_unit_test_setup(test_release_refuses_an_item_a_sibling_waits_for, setup),
	    cmocka_unit_test_setup(test_longest_wait_is_served_first_across_pools, setup),
	    cmocka_unit_test_setup(test_evicted_idle_item_stays_counted_until_dropped, setup),
	    cmocka_unit_test_setup(test_reserve_grants_beyond_the_size_once, setup),
	    cmocka_unit_test_setup(test_warm_connections_stay_within_the_database_cap, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
