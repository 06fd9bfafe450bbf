/*
 * conn/'s per-worker state: the listening sockets and accept, the worker's
 * clients and the lists their states are, its servers logging in, and
 * the periodic work over them (registered as rt/ timers at the worker's
 * start). rt/ keeps only an opaque pointer to it (struct worker's cw).
 *
 * A client's waiting state is the list it is on, moved by cl_set_queue()
 * only; a server's state moves by sv_set_state() only, which keeps it on
 * the worker's list of that state (enum sv_list; servers idle in a pool are
 * on their pool's list, detached from any worker).
 *
 * May call: conn/, pipeline/, pool/, policy/, rt/, io/, auth/.
 */
#ifndef HELIOS_CONN_WORKER_H
#define HELIOS_CONN_WORKER_H

#include "dataplane/conn/conn_internal.h"
#include "dataplane/io/io.h"
#include "dataplane/rt/slab.h"
#include "dataplane/rt/worker.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct cl_list {
	struct client *head, *tail; /* oldest first */
	int n;
};

struct conn_worker {
	struct worker *w;
	int listen_fd, unix_fd;
	struct io_sock listen_sock, unix_sock;
	bool listening;
	struct timespec drain_start;     /* workers_stop() seen */
	struct timespec tko_empty_since; /* online restart: its last client left */

	struct slab client_slab;
	struct client *clients; /* every client of this worker (not a state) */
	int n_clients;
	struct cl_list q[CLQ_COUNT];  /* by cl->queue; q[CLQ_NONE] is not kept */
	struct server *sv[SVL_COUNT]; /* its servers by sv->wlist; sv[SVL_NONE] is not kept */
	struct client *spliced;       /* sessions spliced in the kernel (conn/splice.c) */
	int authq_running;            /* its clients' auth_query lookups in flight */

	/* clients a pipeline stage parked (conn/txn_gate.c, txn_req.c) */
	bool token_check;      /* atomic: a token they wait on was woken (any thread) */
	int token_waiters;     /* parked on a token (the cache's single flight) */
	int rate_waiters;      /* parked until a time (rate-limit throttles) */
	uint64_t rate_next_ns; /* the earliest of those times (monotonic ns) */
	int last_primary;      /* worker 0: primary node index at the last maintenance */

	/* coalescing mailbox signals from other threads */
	struct worker_msg hold_msg;   /* pause/drain changed: look at the held clients */
	struct worker_msg listen_msg; /* a hub confirmed a channel: answer waiting clients */
	struct worker_msg pipes_msg;  /* pipelines were rebuilt: clients move over */
};

extern int g_client_count; /* atomic: clients of every worker */

/* Held by a pause, a drained node or a missing primary. */
static inline bool cl_held(const struct client *cl)
{
	return cl->queue == CLQ_PAUSED || cl->queue == CLQ_PRIMARY;
}

static inline struct conn_worker *cw_of(const struct worker *w)
{
	return w->cw;
}

/* main.c, per worker, in order: */
/* On the main thread, before worker_start: the listening sockets (a bind
 * error stops start-up) and the state. Returns 0 or -errno (err says why). */
int conn_worker_init(struct worker *w, int idx, char *err, size_t errlen);
/* The worker hooks (struct worker_hooks) of conn/. start: accept, and
 * registers conn/'s timers; stop: closes the listeners (worker 0: and the
 * pools' idle servers); done: no client or login left, or the shutdown
 * grace is over; exit: frees the thread's scratch. */
int conn_worker_start(struct worker *w);
void conn_worker_stop(struct worker *w);
bool conn_worker_done(struct worker *w);
void conn_worker_exit(struct worker *w);

/* Worker-local lists (on the worker's thread). */
void cw_client_add(struct worker *w, struct client *cl);
void cw_client_remove(struct worker *w, struct client *cl);
/* Moves cl from the list of its queue to the tail of q's (CLQ_NONE: on no
 * list). The one place cl->queue changes. */
void cl_set_queue(struct client *cl, enum cl_queue q);
/* The client with this id on w, NULL if it left. */
struct client *cw_find_client(struct worker *w, uint64_t id);

/* Thread-safe posts to a worker's clients (copied; dropped if it left). */
void cw_post_notify(struct worker *w, uint64_t cl_id, const uint8_t *body, uint32_t len);
bool cw_post_admin_reply(int widx, uint64_t cl_id, const uint8_t *msg, uint32_t len, bool term);
/* Thread-safe: a pause or drain changed, held clients look again. */
void conn_hold_changed(void);
/* Thread-safe: clients waiting for a LISTEN to be confirmed look again. */
void conn_listen_changed(void);

#endif
