/*
 * conn/'s public face: what the layers above it (main.c, report/) may use.
 * conn/ owns every socket of the data plane; struct client and struct
 * server are private to it (conn/conn_internal.h, included by conn/ only);
 * reports read value snapshots (conn/conn_report.h), never live structs.
 *
 * Below conn/ (pipeline/, pool/, policy/, rt/) nothing includes this: what
 * must reach conn/ from there goes through seams conn/ installs at
 * start-up (a pool waiter's granted(), the pipeline's internal request
 * runner and wake-up hooks, rt/'s mailbox and timers).
 */
#ifndef HELIOS_CONN_H
#define HELIOS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct worker;

/* main.c, per worker, in order: conn_worker_init on the main thread before
 * worker_start (the listening sockets: a bind error stops start-up), then
 * the worker hooks (struct worker_hooks): start (accept, conn/'s timers),
 * stop (close the listeners; worker 0: the pools' idle servers), done (no
 * client or login left, or the shutdown grace is over), exit (the thread's
 * scratch). */
int conn_worker_init(struct worker *w, int idx, char *err, size_t errlen);
int conn_worker_start(struct worker *w);
void conn_worker_stop(struct worker *w);
bool conn_worker_done(struct worker *w);
void conn_worker_exit(struct worker *w);

/* Seams conn/ installs below it, at start-up before the workers: the
 * pipeline's internal requests (pipeline/ireq.h) run on pooled servers,
 * and the stages' wake-ups (the cache's single flight) reach parked
 * clients. */
void ireq_conn_install(void);
void tx_req_install(void);

/* Thread-safe: the console thread's answer (ending in ReadyForQuery) for
 * the admin-console client cl_id of worker widx (dropped if it left);
 * term: the worker raises SIGTERM once the answer is queued (SHUTDOWN).
 * False when it could not be posted. */
bool cw_post_admin_reply(int widx, uint64_t cl_id, const uint8_t *msg, uint32_t len, bool term);
/* Thread-safe: a pause or drain changed, held clients look again. */
void conn_hold_changed(void);
/* Start-up: pipe_forget_all (a live plugin set became non-empty or empty)
 * calls conn_pipes_changed, which has every worker move its logged-in
 * clients to the rebuilt pipelines at their next request boundary
 * (conn/client_pipe.c). Thread-safe. */
void conn_pipes_install(void);
void conn_pipes_changed(void);

/* The admin console's actions (conn_admin.c), thread-safe, done on the
 * workers that own the sockets (asynchronously: they return once posted).
 * reason is the FATAL message the closed clients get (57P01).
 * conn_kill_client: client cl_id of worker widx; -EINVAL for a bad widx.
 * conn_kill_database: every logged-in client of db ("" = of every
 * database) on every worker; admin console sessions stay. */
int conn_kill_client(int widx, uint64_t cl_id, const char *reason);
int conn_kill_database(const char *db, const char *reason);
/* DISABLE / ENABLE: new logins to db are refused (55000) while disabled.
 * -EINVAL for an empty or too long name, -ENOSPC past 64 databases. */
int conn_disable_database(const char *db, bool disable);
bool conn_database_disabled(const char *db);
size_t conn_disabled_databases(char (*names)[64], size_t cap);
/* RECONNECT: the server connections of db's pools ("" = all) open now are
 * closed (idle ones at once, busy ones when released) and new ones open as
 * needed. Returns the pools marked, or -errno. */
int conn_reconnect(const char *db);

/* SHUTDOWN on the admin console, set before the drain starts (SIGTERM):
 * NONE is a plain SIGTERM (clients finish, up to shutdown_timeout_secs);
 * WAIT_FOR_SERVERS also closes clients holding no server; NOW closes
 * every client. Admin console sessions never hold a drain. */
enum conn_shutdown {
	CONN_SHUTDOWN_NONE,
	CONN_SHUTDOWN_WAIT_FOR_SERVERS,
	CONN_SHUTDOWN_NOW,
};
void conn_set_shutdown(enum conn_shutdown mode);

/* Monotonic clock readings as conn/ and its reports use them. */
void conn_now(struct timespec *ts);
double conn_elapsed(const struct timespec *since, const struct timespec *now);

#endif
