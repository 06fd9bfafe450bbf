/*
 * Worker threads (rt/): each runs one event loop. rt/ names no feature: what
 * a worker does comes from the layers above through four seams, set up
 * before the worker starts or from its own thread:
 *
 *   - hooks (struct worker_hooks): start, stop, done, exit;
 *   - a mailbox: worker_post() runs a function on the worker's thread;
 *   - timers: worker_every() runs a function every so many ms (or every turn
 *     of the loop), worker_wake_by() shortens one wait;
 *   - an opaque pointer (cw) for the per-worker state of conn/.
 *
 * May call: io/ and rt/slab only.
 */
#ifndef HELIOS_WORKER_H
#define HELIOS_WORKER_H

#include "dataplane/io/io.h"
#include "dataplane/rt/slab.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct worker;
struct conn_worker;

/*
 * A mailbox message, embedded in the caller's object (no allocation on the
 * post): fn(w, m) runs on w's thread, messages in the order they were
 * posted. m belongs to the mailbox from worker_post() until fn is called;
 * fn may free it or post it again. Posting a message that is still queued
 * does nothing (it runs once, after the post): a message embedded in a
 * long-lived object serves as a coalescing "look again" signal. Zero-init
 * next and queued before the first post.
 */
struct worker_msg {
	struct worker_msg *next;
	void (*fn)(struct worker *w, struct worker_msg *m);
	bool queued; /* atomic: in a mailbox, fn not yet called */
};

/*
 * Thread-safe. Queues m for w's thread and wakes it. Returns 0, or
 * -ESHUTDOWN when w's loop has ended: m was not queued and the caller still
 * owns it (frees it, or knows there is nobody left to tell).
 */
int worker_post(struct worker *w, struct worker_msg *m);

typedef void worker_fn(struct worker *w, void *arg);

#define WORKER_MAX_TIMERS 24
#define WORKER_TURN_MS    100 /* the longest a loop waits: ms = 0 timers run at least this often */

/*
 * Runs fn(w, arg) on w's thread every ms milliseconds (the first time ms
 * after the call); ms = 0: after every turn of the loop (each batch of
 * events, a wake-up, or WORKER_TURN_MS without either). Timers run in the
 * order they were registered. Call before worker_start (from its hooks'
 * start, or before) or on w's thread. Returns 0, -ENOSPC past
 * WORKER_MAX_TIMERS.
 */
int worker_every(struct worker *w, int ms, worker_fn *fn, void *arg);

/* On w's thread: the loop's next wait ends no later than deadline_ns
 * (CLOCK_MONOTONIC ns), for one wait (set it again each turn if needed). */
void worker_wake_by(struct worker *w, uint64_t deadline_ns);

/* What the layers above do at a worker's start and end (main.c fills one in;
 * a NULL member is skipped). All run on the worker's thread. */
struct worker_hooks {
	/* the loop exists, nothing ran yet: attach sockets, register timers;
	 * < 0 fails worker_start with that error */
	int (*start)(struct worker *w);
	/* once, when workers_stop() is seen: stop accepting */
	void (*stop)(struct worker *w);
	/* every turn after stop: true ends the loop */
	bool (*done)(struct worker *w);
	/* the loop ended and the last mailbox messages ran */
	void (*exit)(struct worker *w);
};

struct worker_timer {
	worker_fn *fn;
	void *arg;
	int ms;
	uint64_t due_ns;
};

struct worker {
	int idx;
	pthread_t thread;
	struct io_loop *loop;
	enum io_backend backend;
	const struct worker_hooks *hooks;

	pthread_mutex_t mail_mu;
	struct worker_msg *mail_head, *mail_tail;
	bool exited; /* its loop ended: worker_post refuses (mail_mu) */

	struct worker_timer timers[WORKER_MAX_TIMERS];
	int n_timers;
	uint64_t wake_by_ns; /* worker_wake_by, 0: none */

	struct conn_worker *cw; /* conn/'s per-worker state (conn/conn_worker.h) */

	int init_result;
	bool init_done;
	/* atomic (relaxed): CLOCK_MONOTONIC ns when the loop last turned
	 * (UINT64_MAX once it ended); the liveness probe reads it, no lock on
	 * the loop's side */
	uint64_t beat_ns;
};

/* Starts w's thread with these hooks (hooks must outlive it) and waits for
 * its start hook. Returns 0 or -errno (err says why). */
int worker_start(struct worker *w, int idx, enum io_backend backend,
                 const struct worker_hooks *hooks, char *err, size_t errlen);
void worker_join(struct worker *w);
/* Thread-safe: asks every worker to run its stop hook and finish. */
void workers_stop(void);
/* The worker whose thread this is, NULL on other threads. */
struct worker *worker_self(void);
/* CLOCK_MONOTONIC in ns. */
uint64_t worker_now_ns(void);
/* Thread-safe: how many of the started workers' loops have not turned for
 * more than max_ns at now_ns (a loop turns at least every WORKER_TURN_MS
 * when it is not stuck); *worst (may be NULL) gets the index of the one
 * that waited longest, *worst_ns how long (0 when none is late). */
int workers_stalled(uint64_t now_ns, uint64_t max_ns, int *worst, uint64_t *worst_ns);

/* Process-wide state set up by main. */
extern struct worker *g_workers;
/* Workers started so far: main publishes each one after its loop is set
 * up (release); other threads read it with workers_started() (acquire). */
extern int g_n_workers;
/* Workers there will be: set before the first starts (pools size their
 * per-worker counters with it). */
extern int g_workers_planned;
static inline int workers_started(void)
{
	return __atomic_load_n(&g_n_workers, __ATOMIC_ACQUIRE);
}
extern int g_stopping; /* atomic: set once by workers_stop */

#endif
