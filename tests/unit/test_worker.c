/*
 * Unit tests for rt/worker: a worker thread started with nothing of the data
 * plane above it (its hooks only), which proves rt/ is a layer of its own.
 * Messages posted from another thread run on the worker's thread in the
 * order posted; a message posted again while still queued runs once;
 * worker_every timers fire repeatedly, and ms = 0 ones every turn;
 * worker_wake_by ends a wait early; the hooks run in order on the worker's
 * thread; a failing start hook fails worker_start; posting to a worker
 * whose loop has ended is refused and leaves the message to the caller; a
 * loop held in a message is reported by workers_stalled (liveness probe).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataplane/rt/worker.h"

/* ------------------------------------------------------------ fixture */

struct rec {
	pthread_mutex_t mu;
	int order[256];
	int n;
	bool wrong_thread;
	atomic_int started, stopped, exited, done_calls;
	atomic_int ticks, turns, woken;
	atomic_bool may_finish;
	int start_result;
	int every_ms;
	uint64_t wake_at_ns;
};

static struct rec R;

struct num_msg {
	struct worker_msg m;
	int n;
};

static void num_run(struct worker *w, struct worker_msg *m)
{
	struct num_msg *nm = (struct num_msg *)m;
	pthread_mutex_lock(&R.mu);
	if (worker_self() != w)
		R.wrong_thread = true;
	if (R.n < 256)
		R.order[R.n++] = nm->n;
	pthread_mutex_unlock(&R.mu);
}

static void tick(struct worker *w, void *arg)
{
	(void)arg;
	if (worker_self() != w)
		R.wrong_thread = true;
	atomic_fetch_add(&R.ticks, 1);
}

static void turn(struct worker *w, void *arg)
{
	(void)w;
	(void)arg;
	atomic_fetch_add(&R.turns, 1);
	if (R.wake_at_ns && worker_now_ns() >= R.wake_at_ns)
		atomic_store(&R.woken, 1);
	else if (R.wake_at_ns)
		worker_wake_by(w, R.wake_at_ns);
}

static int on_start(struct worker *w)
{
	if (worker_self() != w)
		R.wrong_thread = true;
	atomic_fetch_add(&R.started, 1);
	if (R.start_result)
		return R.start_result;
	if (R.every_ms > 0 && worker_every(w, R.every_ms, tick, NULL) < 0)
		return -ENOSPC;
	return worker_every(w, 0, turn, NULL);
}

static void on_stop(struct worker *w)
{
	(void)w;
	atomic_fetch_add(&R.stopped, 1);
}

static bool on_done(struct worker *w)
{
	(void)w;
	atomic_fetch_add(&R.done_calls, 1);
	return atomic_load(&R.may_finish);
}

static void on_exit_hook(struct worker *w)
{
	if (worker_self() != w)
		R.wrong_thread = true;
	atomic_fetch_add(&R.exited, 1);
}

static const struct worker_hooks hooks = {
    .start = on_start,
    .stop = on_stop,
    .done = on_done,
    .exit = on_exit_hook,
};

static struct worker W[1];

static int setup(void **state)
{
	(void)state;
	memset(&R, 0, sizeof(R));
	pthread_mutex_init(&R.mu, NULL);
	atomic_store(&R.may_finish, true);
	memset(W, 0, sizeof(W));
	g_workers = W;
	__atomic_store_n(&g_stopping, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&g_n_workers, 0, __ATOMIC_RELEASE);
	return 0;
}

static void start(void)
{
	char err[200] = "";
	int r = worker_start(&W[0], 0, IO_BACKEND_EPOLL, &hooks, err, sizeof(err));
	if (r < 0)
		fail_msg("worker_start: %s", err);
	__atomic_store_n(&g_n_workers, 1, __ATOMIC_RELEASE);
}

/* The loop stays after the thread ends (other threads may still wake it
 * in the proxy); the test frees it. */
static void free_loop(void)
{
	if (W[0].loop)
		io_loop_free(W[0].loop);
	W[0].loop = NULL;
}

static void stop(void)
{
	workers_stop();
	worker_join(&W[0]);
}

static void wait_for(atomic_int *v, int at_least)
{
	for (int i = 0; i < 2000 && atomic_load(v) < at_least; i++)
		usleep(1000);
}

static int recorded(void)
{
	pthread_mutex_lock(&R.mu);
	int n = R.n;
	pthread_mutex_unlock(&R.mu);
	return n;
}

/* ------------------------------------------------------------ tests */

struct poster {
	struct num_msg msgs[100];
};

static void *post_from_thread(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 100; i++) {
		p->msgs[i] = (struct num_msg){.m.fn = num_run, .n = i};
		if (worker_post(&W[0], &p->msgs[i].m) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_posts_from_another_thread_run_on_the_worker_in_order(void **state)
{
	(void)state;
	start();
	assert_int_equal(atomic_load(&R.started), 1);
	struct poster *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, post_from_thread, p), 0);
	void *ret;
	pthread_join(t, &ret);
	assert_null(ret);
	for (int i = 0; i < 2000 && recorded() < 100; i++)
		usleep(1000);
	assert_int_equal(recorded(), 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(R.order[i], i);
	assert_false(R.wrong_thread);
	stop();
	free_loop();
	free(p);
}

/* The worker blocks in this message until released: messages posted
 * meanwhile are all still queued when the second post of one comes. */
static atomic_int blocker_in, blocker_go;

static void blocker_run(struct worker *w, struct worker_msg *m)
{
	(void)w;
	(void)m;
	atomic_store(&blocker_in, 1);
	while (!atomic_load(&blocker_go))
		usleep(1000);
}

static void test_posting_a_queued_message_again_does_not_run_it_twice(void **state)
{
	(void)state;
	atomic_store(&blocker_in, 0);
	atomic_store(&blocker_go, 0);
	start();
	struct worker_msg b = {.fn = blocker_run};
	struct num_msg m = {.m.fn = num_run, .n = 5};
	assert_int_equal(worker_post(&W[0], &b), 0);
	wait_for(&blocker_in, 1);
	assert_int_equal(atomic_load(&blocker_in), 1);
	assert_int_equal(worker_post(&W[0], &m.m), 0);
	assert_int_equal(worker_post(&W[0], &m.m), 0);
	assert_int_equal(worker_post(&W[0], &m.m), 0);
	atomic_store(&blocker_go, 1);
	for (int i = 0; i < 200 && recorded() < 1; i++)
		usleep(1000);
	usleep(50000);
	assert_int_equal(recorded(), 1);
	/* once it ran, a new post runs it again */
	assert_int_equal(worker_post(&W[0], &m.m), 0);
	for (int i = 0; i < 200 && recorded() < 2; i++)
		usleep(1000);
	assert_int_equal(recorded(), 2);
	stop();
	free_loop();
}

static void test_a_blocked_loop_is_reported_stalled_and_recovers(void **state)
{
	(void)state;
	atomic_store(&blocker_in, 0);
	atomic_store(&blocker_go, 0);
	start();
	/* idle, the loop turns at least every WORKER_TURN_MS */
	usleep(3 * WORKER_TURN_MS * 1000);
	assert_int_equal(
	    workers_stalled(worker_now_ns(), 2 * WORKER_TURN_MS * 1000000ull, NULL, NULL), 0);
	struct worker_msg b = {.fn = blocker_run};
	assert_int_equal(worker_post(&W[0], &b), 0);
	wait_for(&blocker_in, 1);
	usleep(4 * WORKER_TURN_MS * 1000);
	int worst = -1;
	uint64_t gap = 0;
	assert_int_equal(
	    workers_stalled(worker_now_ns(), 2 * WORKER_TURN_MS * 1000000ull, &worst, &gap), 1);
	assert_int_equal(worst, 0);
	assert_true(gap >= 4ull * WORKER_TURN_MS * 1000000ull);
	atomic_store(&blocker_go, 1);
	usleep(2 * WORKER_TURN_MS * 1000);
	assert_int_equal(
	    workers_stalled(worker_now_ns(), 2 * WORKER_TURN_MS * 1000000ull, &worst, &gap), 0);
	assert_int_equal(worst, -1);
	stop();
	/* a loop that ended (shutdown) is not a stuck one */
	assert_int_equal(workers_stalled(worker_now_ns() + 60000000000ull,
	                                 2 * WORKER_TURN_MS * 1000000ull, NULL, NULL),
	                 0);
	free_loop();
}

static void test_worker_every_fires_repeatedly(void **state)
{
	(void)state;
	R.every_ms = 10;
	start();
	wait_for(&R.ticks, 5);
	assert_true(atomic_load(&R.ticks) >= 5);
	/* ms = 0 timers run every turn: at least every WORKER_TURN_MS */
	int turns = atomic_load(&R.turns);
	usleep(3 * WORKER_TURN_MS * 1000);
	assert_true(atomic_load(&R.turns) >= turns + 2);
	assert_false(R.wrong_thread);
	stop();
	free_loop();
}

static void test_a_timer_does_not_fire_before_it_is_due(void **state)
{
	(void)state;
	R.every_ms = 400;
	start();
	usleep(200 * 1000);
	assert_int_equal(atomic_load(&R.ticks), 0);
	wait_for(&R.ticks, 1);
	assert_int_equal(atomic_load(&R.ticks), 1);
	stop();
	free_loop();
}

static void test_wake_by_ends_a_wait_before_the_turn(void **state)
{
	(void)state;
	start();
	/* let the loop settle into its WORKER_TURN_MS waits */
	usleep(20 * 1000);
	uint64_t t0 = worker_now_ns();
	R.wake_at_ns = t0 + 30ull * 1000000ull;
	/* the next turn sees wake_at and asks to wake by then */
	struct num_msg m = {.m.fn = num_run, .n = 1};
	assert_int_equal(worker_post(&W[0], &m.m), 0);
	wait_for(&R.woken, 1);
	uint64_t ms = (worker_now_ns() - t0) / 1000000ull;
	assert_int_equal(atomic_load(&R.woken), 1);
	assert_true(ms < WORKER_TURN_MS - 20); /* not at the 100 ms turn */
	stop();
	free_loop();
}

static void test_hooks_run_in_order_and_done_holds_the_loop(void **state)
{
	(void)state;
	atomic_store(&R.may_finish, false);
	start();
	workers_stop();
	wait_for(&R.done_calls, 3);
	assert_int_equal(atomic_load(&R.stopped), 1); /* once, however many turns */
	assert_int_equal(atomic_load(&R.exited), 0);  /* done said no */
	atomic_store(&R.may_finish, true);
	worker_join(&W[0]);
	assert_int_equal(atomic_load(&R.exited), 1);
	assert_false(R.wrong_thread);
	free_loop();
}

static void test_a_failing_start_hook_fails_worker_start(void **state)
{
	(void)state;
	R.start_result = -EADDRINUSE;
	char err[200] = "";
	int r = worker_start(&W[0], 0, IO_BACKEND_EPOLL, &hooks, err, sizeof(err));
	assert_int_equal(r, -EADDRINUSE);
	assert_non_null(strstr(err, "worker 0"));
	/* nothing is left running and its mailbox refuses */
	struct num_msg m = {.m.fn = num_run, .n = 1};
	assert_int_equal(worker_post(&W[0], &m.m), -ESHUTDOWN);
	assert_int_equal(atomic_load(&R.exited), 0);
	free_loop();
}

static void test_posting_to_an_exited_worker_is_refused(void **state)
{
	(void)state;
	start();
	stop();
	assert_int_equal(atomic_load(&R.exited), 1);
	struct num_msg m = {.m.fn = num_run, .n = 1};
	assert_int_equal(worker_post(&W[0], &m.m), -ESHUTDOWN);
	assert_false(m.m.queued); /* still the caller's */
	usleep(20 * 1000);
	assert_int_equal(recorded(), 0);
	free_loop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_posts_from_another_thread_run_on_the_worker_in_order,
	                           setup),
	    cmocka_unit_test_setup(test_posting_a_queued_message_again_does_not_run_it_twice,
	                           setup),
	    cmocka_unit_test_setup(test_a_blocked_loop_is_reported_stalled_and_recovers, setup),
	    cmocka_unit_test_setup(test_worker_every_fires_repeatedly, setup),
	    cmocka_unit_test_setup(test_a_timer_does_not_fire_before_it_is_due, setup),
	    cmocka_unit_test_setup(test_wake_by_ends_a_wait_before_the_turn, setup),
	    cmocka_unit_test_setup(test_hooks_run_in_order_and_done_holds_the_loop, setup),
	    cmocka_unit_test_setup(test_a_failing_start_hook_fails_worker_start, setup),
	    cmocka_unit_test_setup(test_posting_to_an_exited_worker_is_refused, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
