/*
 * Unit tests for the server pool (dataplane/pool/pool.c), driven by fake
 * waiters and fake items: no socket, no client, no server. What they prove:
 * a released item goes to the first waiter (FIFO), or to one of the
 * releasing worker only while the oldest waiter is within the grace; an
 * idle item is handed out only to its signature, else a new connection or
 * (at the cap) the coldest one to replace; the cap is never exceeded and a
 * drop passes its slot to the first waiter as a permit; a cancel after a
 * grant says so; expiry keeps min_idle and honours lifetime and liveness;
 * a lowered cap makes a release refuse the item. The pools are
 * process-wide, so each test has its own database name.
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

static int g_max = 10; /* the global max_pool_size the pool reads */

static int fake_max(void)
{
	return g_max;
}

/* Two "workers": a waiter's home and a releaser's self are their addresses. */
static int home_x, home_y;

struct fake_waiter {
	struct pool_waiter pw;
	int grants;
	bool direct;
	struct pool_item *item;
	bool permit;
	int order; /* when it was granted, across waiters */
};

static int g_order;

static void fake_granted(struct pool_waiter *wt, bool direct)
{
	struct fake_waiter *f = (struct fake_waiter *)wt;
	f->grants++;
	f->direct = direct;
	f->item = wt->item;
	f->permit = wt->permit;
	f->order = ++g_order;
}

static struct timespec now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static struct timespec ago_ms(long ms)
{
	struct timespec ts = now_mono();
	long ns = ts.tv_nsec - (ms % 1000) * 1000000L;
	ts.tv_sec -= ms / 1000;
	if (ns < 0) {
		ns += 1000000000L;
		ts.tv_sec--;
	}
	ts.tv_nsec = ns;
	return ts;
}

static void waiter_init(struct fake_waiter *f, uint64_t sig, const void *home, long waited_ms)
{
	memset(f, 0, sizeof(*f));
	f->pw.signature = sig;
	f->pw.home = home;
	f->pw.since = ago_ms(waited_ms);
	f->pw.granted = fake_granted;
}

static void item_init(struct pool_item *it, uint64_t sig)
{
	memset(it, 0, sizeof(*it));
	it->signature = sig;
	it->created = it->last_used = now_mono();
}

static struct pool *fresh_pool(const char *db)
{
	struct pool *p = pool_lookup(db, "u", "", 0, 0);
	assert_non_null(p);
	return p;
}

/* Opens n connections (POOL_CONNECT each) for signature sig. */
static void connect_n(struct pool *p, int n, uint64_t sig)
{
	for (int i = 0; i < n; i++) {
		struct fake_waiter f;
		waiter_init(&f, sig, &home_x, 0);
		struct pool_item *out = (void *)1;
		assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_CONNECT);
		assert_null(out);
	}
}

static int setup(void **state UNUSED)
{
	g_max = 10;
	g_order = 0;
	return 0;
}

static void test_released_item_goes_to_the_first_waiter_in_fifo_order(void **state UNUSED)
{
	g_max = 1;
	struct pool *p = fresh_pool("fifo");
	connect_n(p, 1, 7);
	struct fake_waiter a, b, c;
	struct pool_item *out;
	waiter_init(&a, 7, &home_x, 0);
	waiter_init(&b, 7, &home_x, 0);
	waiter_init(&c, 7, &home_x, 0);
	assert_int_equal(pool_acquire(p, &a.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(pool_acquire(p, &b.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(pool_acquire(p, &c.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(a.pw.state, POOL_W_QUEUED);
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.waiting, 3);

	struct pool_item i1, i2;
	item_init(&i1, 7);
	item_init(&i2, 7);
	/* released by a worker none of them lives on: plain FIFO, by mailbox */
	assert_true(pool_release(p, &i1, &home_y));
	assert_int_equal(a.grants, 1);
	assert_ptr_equal(a.item, &i1);
	assert_false(a.permit);
	assert_false(a.direct);
	assert_int_equal(a.pw.state, POOL_W_HANDED);
	assert_int_equal(b.grants, 0);
	assert_true(pool_release(p, &i2, &home_y));
	assert_int_equal(b.grants, 1);
	assert_ptr_equal(b.item, &i2);
	assert_int_equal(c.grants, 0);
	assert_true(a.order < b.order);
	pool_get_stats(p, &st);
	assert_int_equal(st.waiting, 1);
	assert_int_equal(st.idle, 0);
	assert_int_equal(st.total, 1);
	assert_true(pool_cancel_wait(p, &c.pw));
}

static void test_newcomer_waits_behind_the_queue(void **state UNUSED)
{
	g_max = 1;
	struct pool *p = fresh_pool("nojump");
	connect_n(p, 1, 7);
	struct fake_waiter a, late;
	struct pool_item *out;
	waiter_init(&a, 7, &home_x, 0);
	assert_int_equal(pool_acquire(p, &a.pw, pool_max(p), &out), POOL_WAIT);
	g_max = 5; /* room for more now, but someone is already queued */
	waiter_init(&late, 7, &home_x, 0);
	assert_int_equal(pool_acquire(p, &late.pw, pool_max(p), &out), POOL_WAIT);
	assert_true(pool_cancel_wait(p, &a.pw));
	assert_true(pool_cancel_wait(p, &late.pw));
}

static void test_idle_item_goes_only_to_its_signature_else_replace(void **state UNUSED)
{
	g_max = 2;
	struct pool *p = fresh_pool("sig");
	connect_n(p, 2, 1);
	struct pool_item cold, warm;
	item_init(&cold, 1);
	item_init(&warm, 2);
	assert_true(pool_release(p, &cold, &home_x)); /* idle list: cold */
	assert_true(pool_release(p, &warm, &home_x)); /* idle list: warm, cold */

	struct fake_waiter f;
	struct pool_item *out;
	/* signature 1 skips the warmer item of signature 2 */
	waiter_init(&f, 1, &home_x, 0);
	assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_GOT);
	assert_ptr_equal(out, &cold);
	assert_true(pool_release(p, &cold, &home_x)); /* idle: cold(1), warm(2) */

	/* no idle item of signature 3 and the pool is at its cap: the
	 * coldest idle one (the tail, here warm) is given to replace */
	waiter_init(&f, 3, &home_x, 0);
	assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_REPLACE);
	assert_ptr_equal(out, &warm);
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 2); /* the replaced slot stays counted */
	assert_int_equal(st.idle, 1);

	/* below the cap, an unmatched signature connects instead */
	g_max = 3;
	waiter_init(&f, 4, &home_x, 0);
	assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_CONNECT);
	assert_null(out);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 3);
	assert_int_equal(st.idle, 1);
}

static void test_cap_is_never_exceeded_and_a_drop_passes_the_permit(void **state UNUSED)
{
	g_max = 2;
	struct pool *p = fresh_pool("cap");
	connect_n(p, 2, 7);
	struct fake_waiter a, b;
	struct pool_item *out;
	waiter_init(&a, 7, &home_x, 0);
	waiter_init(&b, 7, &home_y, 0);
	assert_int_equal(pool_acquire(p, &a.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(pool_acquire(p, &b.pw, pool_max(p), &out), POOL_WAIT);
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 2);

	/* a connection closed: its slot becomes the first waiter's permit */
	pool_drop(p, pool_max(p));
	assert_int_equal(a.grants, 1);
	assert_true(a.permit);
	assert_null(a.item);
	assert_false(a.direct);
	assert_int_equal(b.grants, 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 2);
	assert_int_equal(st.waiting, 1);

	/* over the cap (lowered): the slot is given back, not passed on */
	g_max = 1;
	pool_drop(p, pool_max(p));
	assert_int_equal(b.grants, 0);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 1);
	/* at the cap again: passed on */
	pool_drop(p, pool_max(p));
	assert_int_equal(b.grants, 1);
	assert_true(b.permit);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 1);
	assert_int_equal(st.waiting, 0);
	/* no waiter: the slot is gone */
	pool_drop(p, pool_max(p));
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 0);
}

static void test_cancel_wait_after_a_grant_returns_false(void **state UNUSED)
{
	g_max = 1;
	struct pool *p = fresh_pool("cancel");
	connect_n(p, 1, 7);
	struct fake_waiter a, b;
	struct pool_item *out;
	waiter_init(&a, 7, &home_x, 0);
	waiter_init(&b, 7, &home_x, 0);
	assert_int_equal(pool_acquire(p, &a.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(pool_acquire(p, &b.pw, pool_max(p), &out), POOL_WAIT);

	/* still queued: removed, and a release skips it */
	assert_true(pool_cancel_wait(p, &a.pw));
	assert_int_equal(a.pw.state, POOL_W_NONE);
	struct pool_item it;
	item_init(&it, 7);
	assert_true(pool_release(p, &it, &home_y));
	assert_int_equal(a.grants, 0);
	assert_int_equal(b.grants, 1);
	/* handed: the cancel fails, the grant is on its way */
	assert_false(pool_cancel_wait(p, &b.pw));
	assert_int_equal(b.pw.state, POOL_W_HANDED);
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.waiting, 0);
}

static void test_local_waiter_is_preferred_only_within_the_grace(void **state UNUSED)
{
	g_max = 1;
	struct pool *p = fresh_pool("local");
	connect_n(p, 1, 7);
	struct fake_waiter a, b, c;
	struct pool_item *out;
	waiter_init(&a, 7, &home_x, 0);
	waiter_init(&b, 7, &home_y, 0);
	assert_int_equal(pool_acquire(p, &a.pw, pool_max(p), &out), POOL_WAIT);
	assert_int_equal(pool_acquire(p, &b.pw, pool_max(p), &out), POOL_WAIT);
	struct pool_item i1;
	item_init(&i1, 7);
	/* the oldest (a, on x) has just started waiting: within the grace,
	 * so the waiter on the releasing worker (b, on y) goes first */
	a.pw.since = now_mono();
	assert_true(pool_release(p, &i1, &home_y));
	assert_int_equal(a.grants, 0);
	assert_int_equal(b.grants, 1);
	assert_true(b.direct); /* same worker: delivered at once */
	assert_ptr_equal(b.item, &i1);

	/* a has now waited 50 ms, past the grace: FIFO wins over locality */
	a.pw.since = ago_ms(50);
	waiter_init(&c, 7, &home_y, 0);
	assert_int_equal(pool_acquire(p, &c.pw, pool_max(p), &out), POOL_WAIT);
	struct pool_item i2;
	item_init(&i2, 7);
	assert_true(pool_release(p, &i2, &home_y));
	assert_int_equal(a.grants, 1);
	assert_false(a.direct); /* another worker's: through its mailbox */
	assert_int_equal(c.grants, 0);
	assert_true(pool_cancel_wait(p, &c.pw));

	/* a waiter of another worker at the head, within the grace, but none
	 * on the releasing worker: the head gets it, by mailbox */
	waiter_init(&c, 7, &home_x, 0);
	assert_int_equal(pool_acquire(p, &c.pw, pool_max(p), &out), POOL_WAIT);
	struct pool_item i3;
	item_init(&i3, 7);
	assert_true(pool_release(p, &i3, &home_y));
	assert_int_equal(c.grants, 1);
	assert_false(c.direct);
}

static bool dead_flag_alive(struct pool_item *it)
{
	return it->signature != 99; /* signature 99: its backend is gone */
}

static void test_expiry_keeps_min_idle_and_honours_lifetime(void **state UNUSED)
{
	g_max = 10;
	struct pool *p = fresh_pool("expire");
	connect_n(p, 4, 7);
	struct pool_item it[4];
	for (int i = 0; i < 4; i++) {
		item_init(&it[i], 7);
		it[i].last_used = ago_ms(60000); /* idle a minute */
		assert_true(pool_release(p, &it[i], &home_x));
	}
	struct timespec now = now_mono();
	/* idle_timeout 30 s, min_idle 3: only one of the four goes */
	struct pool_item *gone = pool_collect_expired(p, &now, 30, 0, 3, dead_flag_alive);
	assert_non_null(gone);
	assert_null(gone->next);
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 3);
	assert_int_equal(st.idle, 3);
	/* no idle timeout: nothing more goes while young and alive */
	assert_null(pool_collect_expired(p, &now, 0, 3600, 3, dead_flag_alive));

	/* lifetime goes past min_idle; a dead one goes too; a young live one stays */
	struct pool_item *left[3];
	int n = 0;
	struct fake_waiter f;
	struct pool_item *out;
	waiter_init(&f, 7, &home_x, 0);
	while (n < 3 && pool_acquire(p, &f.pw, pool_max(p), &out) == POOL_GOT)
		left[n++] = out;
	assert_int_equal(n, 3);
	left[0]->created = ago_ms(7200 * 1000L);
	left[1]->signature = 99;
	left[2]->last_used = now_mono();
	for (int i = 0; i < 3; i++)
		assert_true(pool_release(p, left[i], &home_x));
	now = now_mono();
	gone = pool_collect_expired(p, &now, 30, 3600, 3, dead_flag_alive);
	int ngone = 0;
	for (struct pool_item *g = gone; g; g = g->next) {
		assert_true(g == left[0] || g == left[1]);
		ngone++;
	}
	assert_int_equal(ngone, 2);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 1);
	assert_int_equal(st.idle, 1);
	/* what is left is taken out for a drain */
	struct pool_item *all = pool_take_all_idle(p);
	assert_ptr_equal(all, left[2]);
	assert_null(all->next);
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 0);
	assert_int_equal(st.idle, 0);
}

static void test_lowered_cap_makes_release_return_false(void **state UNUSED)
{
	g_max = 3;
	struct pool *p = fresh_pool("lowered");
	connect_n(p, 3, 7);
	struct fake_waiter f;
	struct pool_item *out;
	waiter_init(&f, 7, &home_x, 0);
	/* a tenant cap below the global one is the pool's limit */
	struct pool *tp = pool_lookup("lowered", "u", "", 0, 2);
	assert_ptr_equal(tp, p);
	assert_int_equal(pool_max(p), 2);
	struct pool_item it;
	item_init(&it, 7);
	assert_false(pool_release(p, &it, &home_x));
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.idle, 0);
	assert_int_equal(st.total, 3); /* the caller closes it: pool_drop */
	pool_drop(p, pool_max(p));
	/* back within the cap (2 counted): kept */
	assert_true(pool_release(p, &it, &home_x));
	pool_get_stats(p, &st);
	assert_int_equal(st.idle, 1);
	/* the global limit lowered below the count */
	pool_lookup("lowered", "u", "", 0, 0);
	g_max = 0;
	assert_int_equal(pool_max(p), 0);
	assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_GOT);
	assert_false(pool_release(p, out, &home_x));
}

static void test_warm_up_and_remembered_params(void **state UNUSED)
{
	g_max = 5;
	struct pool *p = fresh_pool("warm");
	uint32_t len = 0;
	uint64_t sig = 0;
	/* nothing to warm with before a login was seen */
	assert_false(pool_want_warm(p, 2, pool_max(p)));
	assert_null(pool_warm_startup(p, &len, &sig));
	assert_null(pool_params_copy(p, &len));
	pool_remember_startup(p, "pkt!", 4, 42);
	char *pkt = pool_warm_startup(p, &len, &sig);
	assert_non_null(pkt);
	assert_int_equal(len, 4);
	assert_int_equal(sig, 42);
	assert_memory_equal(pkt, "pkt!", 4);
	free(pkt);
	/* warm up to min_idle, each one counted */
	assert_true(pool_want_warm(p, 2, pool_max(p)));
	assert_true(pool_want_warm(p, 2, pool_max(p)));
	assert_false(pool_want_warm(p, 2, pool_max(p)));
	struct pool_stats st;
	pool_get_stats(p, &st);
	assert_int_equal(st.total, 2);
	/* not while someone waits */
	g_max = 2;
	struct fake_waiter f;
	struct pool_item *out;
	waiter_init(&f, 42, &home_x, 0);
	assert_int_equal(pool_acquire(p, &f.pw, pool_max(p), &out), POOL_WAIT);
	assert_false(pool_want_warm(p, 5, 5));
	assert_true(pool_cancel_wait(p, &f.pw));

	pool_remember_params(p, "a\0b\0", 4);
	char *blob = pool_params_copy(p, &len);
	assert_non_null(blob);
	assert_int_equal(len, 4);
	assert_memory_equal(blob, "a\0b\0", 4);
	free(blob);
}

static void test_counter_blocks_are_per_worker_and_line_aligned(void **state UNUSED)
{
	struct pool *p = fresh_pool("ctr");
	assert_int_equal(pool_n_ctr(p), 3);
	char *b0 = (char *)pool_ctr(p, 0);
	char *b1 = (char *)pool_ctr(p, 1);
	assert_int_equal((uintptr_t)b0 % 64, 0);
	assert_int_equal(b1 - b0, 128);       /* 100 bytes rounded to the line */
	assert_ptr_equal(pool_ctr(p, 7), b0); /* out of range: clamped to 0 */
	for (int i = 0; i < 3 * 128; i++)
		assert_int_equal(b0[i], 0);
}

int main(void)
{
	pool_init(3, 100, fake_max);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_released_item_goes_to_the_first_waiter_in_fifo_order,
	                           setup),
	    cmocka_unit_test_setup(test_newcomer_waits_behind_the_queue, setup),
	    cmocka_unit_test_setup(test_idle_item_goes_only_to_its_signature_else_replace, setup),
	    cmocka_unit_test_setup(test_cap_is_never_exceeded_and_a_drop_passes_the_permit, setup),
	    cmocka_unit_test_setup(test_cancel_wait_after_a_grant_returns_false, setup),
	    cmocka_unit_test_setup(test_local_waiter_is_preferred_only_within_the_grace, setup),
	    cmocka_unit_test_setup(test_expiry_keeps_min_idle_and_honours_lifetime, setup),
	    cmocka_unit_test_setup(test_lowered_cap_makes_release_return_false, setup),
	    cmocka_unit_test_setup(test_warm_up_and_remembered_params, setup),
	    cmocka_unit_test_setup(test_counter_blocks_are_per_worker_and_line_aligned, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
