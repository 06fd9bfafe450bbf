/*
 * Worker threads: each owns an event loop, its own SO_REUSEPORT listener
 * and the connections it accepted. Other threads talk to a worker only
 * through its mailbox (pool hand-offs) and its wakeup.
 */
#ifndef HELIOS_WORKER_H
#define HELIOS_WORKER_H

#include "dataplane/io/io.h"
#include "dataplane/rt/slab.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct client;
struct server;

struct worker {
	int idx;
	pthread_t thread;
	struct io_loop *loop;
	enum io_backend backend;
	int listen_fd, unix_fd;
	struct io_sock listen_sock, unix_sock;
	bool listening;

	pthread_mutex_t mail_mu;
	struct client *mail_head, *mail_tail;
	struct notify_msg *notify_head, *notify_tail; /* LISTEN fan-out */
	bool listen_check;     /* a hub confirmed a channel: answer waiting clients */
	bool cache_check;      /* atomic: a query clients were parked behind has finished */
	int cache_waiters;     /* its clients parked behind identical queries */
	int rate_waiters;      /* its clients throttled by a rate limit */
	uint64_t rate_next_ns; /* the earliest of their wake-ups (monotonic ns) */

	struct slab client_slab;
	struct client *clients; /* every client of this worker */
	int n_clients;
	struct client *waiting_head, *waiting_tail; /* waiting for a server, oldest first */
	struct server *logins;  /* servers connecting or logging in (connect timeout) */
	struct client *spliced; /* sessions spliced in the kernel (conn/splice.c) */

	struct client *held;         /* held by a pause or a drained node */
	bool hold_check;             /* pause/drain changed: look at the held clients */
	struct collect_ref *collect; /* stats collection requests */
	struct aw_job *auth_done;    /* finished password derivations (auth/authwork.c) */
	struct client *login_head, *login_tail; /* clients logging in, oldest first */
	int authq_running;                      /* its clients' auth_query lookups in flight */
	bool exited;                            /* its loop ended: no more mailbox work (mail_mu) */

	struct qs_table *qs; /* analytics: per-fingerprint statistics */
	int last_primary;    /* worker 0: primary index at the last maintenance */

	struct timespec last_maint, last_stats;
	int init_result;
	bool init_done;
};

/* Creates the worker's listening sockets (in the calling thread, so that a
 * bind error stops start-up) and starts its thread. */
int worker_start(struct worker *w, int idx, enum io_backend backend, char *err, size_t errlen);
void worker_join(struct worker *w);
/* Thread-safe: delivers a pool hand-off to cl on its worker. */
void worker_post(struct worker *w, struct client *cl);
/* Thread-safe: a NotificationResponse body for the client with this id. */
void worker_post_notify(struct worker *w, uint64_t cl_id, const uint8_t *body, uint32_t len);
/* Thread-safe: bytes for the admin-console client with this id (its
 * answer, ending in ReadyForQuery). */
void worker_post_admin_reply(struct worker *w, uint64_t cl_id, const uint8_t *msg, uint32_t len);
struct collect_job;
/* Thread-safe: runs stats_collect_run(w, job) on w's thread. */
int worker_post_collect(struct worker *w, struct collect_job *job);
void stats_collect_run(struct worker *w, struct collect_job *job);
struct aw_job;
/* Thread-safe: a finished authentication job for w (freed if w has exited). */
void worker_post_auth(struct worker *w, struct aw_job *j);
/* Thread-safe: asks every worker to stop accepting and drain. */
void workers_stop(void);
struct worker *worker_self(void);

/* Worker-local lists, used by client.c and server.c. */
void worker_add_client(struct worker *w, struct client *cl);
void worker_remove_client(struct worker *w, struct client *cl);
void worker_wait_add(struct worker *w, struct client *cl);
void worker_wait_remove(struct worker *w, struct client *cl);
void worker_login_add(struct worker *w, struct server *sv);
void worker_login_remove(struct worker *w, struct server *sv);

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
extern int g_stopping;     /* atomic: set once by workers_stop */
extern int g_client_count; /* atomic */

#endif
