/*
 * Worker thread body: the event loop, the mailbox and the timers. What runs
 * on a worker is registered by the layers above (see worker.h); this file
 * names no feature. May call: io/ only.
 */
#include "dataplane/rt/worker.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct worker *g_workers;
int g_n_workers;
int g_workers_planned;
int g_stopping;

static __thread struct worker *self;

struct worker *worker_self(void)
{
	return self;
}

uint64_t worker_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int worker_post(struct worker *w, struct worker_msg *m)
{
	pthread_mutex_lock(&w->mail_mu);
	if (w->exited) {
		pthread_mutex_unlock(&w->mail_mu);
		return -ESHUTDOWN;
	}
	/* still queued: it runs after this post anyway (see worker.h) */
	if (__atomic_load_n(&m->queued, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&w->mail_mu);
		return 0;
	}
	__atomic_store_n(&m->queued, true, __ATOMIC_RELEASE);
	m->next = NULL;
	if (w->mail_tail)
		w->mail_tail->next = m;
	else
		w->mail_head = m;
	w->mail_tail = m;
	pthread_mutex_unlock(&w->mail_mu);
	io_loop_wakeup(w->loop);
	return 0;
}

/* Runs a batch taken off the mailbox. Each message's next is read and its
 * queued flag cleared before fn runs: fn may free it or post it again. */
static void run_mail(struct worker *w, struct worker_msg *m)
{
	while (m) {
		struct worker_msg *next = m->next;
		m->next = NULL;
		__atomic_store_n(&m->queued, false, __ATOMIC_SEQ_CST);
		m->fn(w, m);
		m = next;
	}
}

static struct worker_msg *take_mail(struct worker *w, bool exiting)
{
	pthread_mutex_lock(&w->mail_mu);
	struct worker_msg *m = w->mail_head;
	w->mail_head = w->mail_tail = NULL;
	if (exiting)
		w->exited = true;
	pthread_mutex_unlock(&w->mail_mu);
	return m;
}

static void on_wake(void *ud)
{
	struct worker *w = ud;
	run_mail(w, take_mail(w, false));
}

int worker_every(struct worker *w, int ms, worker_fn *fn, void *arg)
{
	if (w->n_timers >= WORKER_MAX_TIMERS)
		return -ENOSPC;
	struct worker_timer *t = &w->timers[w->n_timers++];
	t->fn = fn;
	t->arg = arg;
	t->ms = ms < 0 ? 0 : ms;
	t->due_ns = worker_now_ns() + (uint64_t)t->ms * 1000000ull;
	return 0;
}

void worker_wake_by(struct worker *w, uint64_t deadline_ns)
{
	if (!w->wake_by_ns || deadline_ns < w->wake_by_ns)
		w->wake_by_ns = deadline_ns;
}

int workers_stalled(uint64_t now_ns, uint64_t max_ns, int *worst, uint64_t *worst_ns)
{
	int late = 0, wi = -1;
	uint64_t wns = 0;

	for (int i = 0, n = workers_started(); i < n; i++) {
		uint64_t beat = __atomic_load_n(&g_workers[i].beat_ns, __ATOMIC_RELAXED);
		uint64_t gap = now_ns > beat ? now_ns - beat : 0;
		if (gap <= max_ns)
			continue;
		late++;
		if (gap > wns)
			wns = gap, wi = i;
	}
	if (worst)
		*worst = wi;
	if (worst_ns)
		*worst_ns = wns;
	return late;
}

void workers_stop(void)
{
	__atomic_store_n(&g_stopping, 1, __ATOMIC_RELEASE);
	for (int i = 0, n = workers_started(); i < n; i++)
		io_loop_wakeup(g_workers[i].loop);
}

/* Runs the timers that are due; returns the ms until the next one is
 * (WORKER_TURN_MS at most). A timer may register another meanwhile. */
static int run_timers(struct worker *w)
{
	uint64_t now = worker_now_ns();
	__atomic_store_n(&w->beat_ns, now, __ATOMIC_RELAXED); /* the loop turned */
	for (int i = 0; i < w->n_timers; i++) {
		struct worker_timer *t = &w->timers[i];
		if (t->ms && now < t->due_ns)
			continue;
		t->due_ns = now + (uint64_t)t->ms * 1000000ull;
		t->fn(w, t->arg);
	}
	now = worker_now_ns();
	uint64_t next = now + (uint64_t)WORKER_TURN_MS * 1000000ull;
	for (int i = 0; i < w->n_timers; i++)
		if (w->timers[i].ms && w->timers[i].due_ns < next)
			next = w->timers[i].due_ns;
	if (w->wake_by_ns && w->wake_by_ns < next)
		next = w->wake_by_ns;
	w->wake_by_ns = 0;
	return next > now ? (int)((next - now + 999999) / 1000000) : 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	self = w;
	int err = 0;
	w->loop = io_loop_new(w->backend, &err);
	if (!w->loop && w->backend == IO_BACKEND_URING) {
		log_warn("worker %d: io_uring unavailable (%s): using epoll", w->idx,
		         strerror(-err));
		w->backend = IO_BACKEND_EPOLL;
		w->loop = io_loop_new(w->backend, &err);
	}
	__atomic_store_n(&w->beat_ns, worker_now_ns(), __ATOMIC_RELAXED);
	if (w->loop) {
		io_loop_set_wake(w->loop, on_wake, w);
		if (w->hooks && w->hooks->start)
			err = w->hooks->start(w);
	} else {
		err = err ? err : -ENOMEM;
	}
	__atomic_store_n(&w->init_result, err, __ATOMIC_RELEASE);
	__atomic_store_n(&w->init_done, true, __ATOMIC_RELEASE);
	if (err) {
		pthread_mutex_lock(&w->mail_mu);
		w->exited = true;
		pthread_mutex_unlock(&w->mail_mu);
		return NULL;
	}

	bool stopped = false;
	int timeout = WORKER_TURN_MS;
	for (;;) {
		io_loop_run_once(w->loop, timeout);
		timeout = run_timers(w);
		if (__atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE)) {
			if (!stopped) {
				stopped = true;
				if (w->hooks && w->hooks->stop)
					w->hooks->stop(w);
			}
			if (!w->hooks || !w->hooks->done || w->hooks->done(w))
				break;
		}
	}
	/* ended on purpose, not stuck: the liveness probe skips it (another
	 * worker may still drain its clients) */
	__atomic_store_n(&w->beat_ns, UINT64_MAX, __ATOMIC_RELAXED);
	/* let the last closes complete */
	for (int i = 0; i < 10; i++)
		io_loop_run_once(w->loop, 10);
	/* what was posted meanwhile still runs (a report still gets its answer);
	 * later posts are refused */
	run_mail(w, take_mail(w, true));
	if (w->hooks && w->hooks->exit)
		w->hooks->exit(w);
	return NULL;
}

int worker_start(struct worker *w, int idx, enum io_backend backend,
                 const struct worker_hooks *hooks, char *err, size_t errlen)
{
	w->idx = idx;
	w->backend = backend;
	w->hooks = hooks;
	pthread_mutex_init(&w->mail_mu, NULL);
	/* the layers above recurse deeply on some inputs (parse trees): 8 MB
	 * leaves a margin over what they bound themselves to */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 8u << 20);
	int r = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	if (r) {
		snprintf(err, errlen, "cannot start worker thread: %s", strerror(r));
		return -r;
	}
	while (!__atomic_load_n(&w->init_done, __ATOMIC_ACQUIRE))
		usleep(1000);
	r = __atomic_load_n(&w->init_result, __ATOMIC_ACQUIRE);
	if (r < 0) {
		snprintf(err, errlen, "worker %d: event loop setup failed: %s", idx, strerror(-r));
		pthread_join(w->thread, NULL);
		return r;
	}
	return 0;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}
