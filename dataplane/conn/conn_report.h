/*
 * conn/'s report API: value snapshots of the connections and conn/'s
 * counters, for report/ (stats, console, admin HTTP, metrics, control
 * socket). report/ never reads struct client or struct server: it asks
 * for rows of plain values, filled here.
 *
 * Threads: a worker's clients and servers are walked only on that worker
 * (conn_snapshot_worker, run from the report's per-worker collection job);
 * idle servers sit in their pool and are copied under the pool lock
 * (conn_snapshot_idle); totals are atomics, readable from any thread.
 *
 * Counters: conn/ counts a pool's traffic into the pool's per-worker
 * blocks (pool/pool_ctr.h) with plain stores on the worker's own memory;
 * report/ sums the blocks. Nothing here calls upward.
 */
#ifndef HELIOS_CONN_REPORT_H
#define HELIOS_CONN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct worker;
struct pool;
struct client;
struct server;

/* One client connection as the reports show it. */
struct conn_client_row {
	uint64_t id;
	struct pool *pool; /* a key only (NULL before login) */
	char user[64];
	char database[64];
	char peer[64];                 /* "addr:port" or the Unix socket path */
	char state[8];                 /* login, waiting, paused, active, idle, closing */
	char app_name[64];             /* application_name, "" when not given */
	char pinned[24];               /* the first pin reason, "" when none */
	uint32_t connect_s, request_s; /* monotonic seconds, 0 = never */
	double wait_secs;              /* waiting for a server or held */
	uint32_t server_pid;
	bool tls;
	bool spliced; /* a session spliced in the kernel */
	uint64_t spliced_queries;
	char spliced_tx; /* its transaction status, '\0' when not spliced */
	int worker;
	char replication[12]; /* none, physical, logical (replication=database) */
	uint32_t prepared;    /* its named statements (transaction pooling) */
};

/* One server connection. */
struct conn_server_row {
	uint32_t pid;
	char user[64];
	char database[64];
	char host[256];
	int port;
	char state[8];                      /* active, login, idle */
	struct timespec created, last_used; /* monotonic */
	uint64_t client_id;                 /* the client it serves, 0 = none */
	bool tls;
	int worker;        /* -1: idle in its pool */
	bool close_needed; /* RECONNECT: closed when released */
	uint32_t prepared; /* statements the proxy prepared on it */
};

/* A pool's clients and logins as one worker sees them. */
struct conn_pool_row {
	struct pool *pool; /* a key only */
	uint32_t active, waiting, login;
	double maxwait; /* seconds, the longest current wait */
};

/* Growable arrays of rows; zero-initialise, free with conn_snapshot_free. */
struct conn_snapshot {
	struct conn_client_row *clients;
	size_t n_clients, cap_clients;
	struct conn_server_row *servers;
	size_t n_servers, cap_servers;
	struct conn_pool_row *pools;
	size_t n_pools, cap_pools;
};

/* On worker w's own thread: adds the counts of w's clients and logging-in
 * servers to their pools' rows and, with detail, appends a row per client
 * and per server (several workers may fill one snapshot, one at a time).
 * now is a conn_now() reading. 0 or -ENOMEM (what fitted is kept). */
int conn_snapshot_worker(struct worker *w, bool detail, const struct timespec *now,
                         struct conn_snapshot *out);
/* Any thread: appends a row per idle server of pool p. */
int conn_snapshot_idle(struct pool *p, struct conn_snapshot *out);
/* The pool row of p in s, NULL when none. */
const struct conn_pool_row *conn_snapshot_pool(const struct conn_snapshot *s, const struct pool *p);
void conn_snapshot_free(struct conn_snapshot *s);

#define CONN_MAX_PINS 8

/* Process-wide totals, any thread. */
struct conn_totals {
	uint32_t clients; /* connected now */
	uint64_t logins, login_failures;
	uint32_t splice_active;
	uint64_t splice_total, splice_fallbacks, splice_reused;
	int n_pins;
	struct {
		const char *reason; /* static */
		uint64_t total;
	} pins[CONN_MAX_PINS];
};
void conn_totals(struct conn_totals *out);

/* ---- the admin console (a seam upward) ----
 * A client logging in to this database is an admin console session; its
 * statements go to the console thread (report/admin.c) through the
 * function report/ registers at start-up, and the answers come back on
 * the worker's mailbox (cl_admin_reply). Same name as CONSOLE_DBNAME. */
#define CONN_CONSOLE_DB     "heliosproxy"
#define CONN_CONSOLE_DB_PGB "pgbouncer" /* PgBouncer's name for it: its tooling works */
/* fn queues one statement of client cl_id of worker widx; -1 when it cannot
 * (queue full, console not running). NULL unregisters. */
void conn_set_console(int (*fn)(int widx, uint64_t cl_id, const char *sql, bool read_only));
/* conn/: hands a statement to the registered console; -1 without one. */
/* read_only: a stats_users session, which may only SHOW. */
int conn_console_submit(int widx, uint64_t cl_id, const char *sql, bool read_only);

/* ---- counters, called by conn/ only (hot path: plain stores) ---- */

extern uint64_t g_logins_total, g_login_failures; /* atomic */

void conn_ctr_client_sent(struct server *sv, uint32_t nbytes);         /* client -> server */
void conn_ctr_server_sent(struct server *sv, uint32_t nbytes);         /* server -> client */
void conn_ctr_ready(struct server *sv, char status);                   /* ReadyForQuery relayed */
void conn_ctr_waited(struct client *cl, const struct timespec *since); /* got a server */
/* Transaction pooling's named prepared statements (PgBouncer's
 * client_parse / server_parse / bind counts): a client's Parse, a Parse the
 * proxy sends to a server, a client's Bind of a named statement. */
enum conn_prep_ev { CONN_PREP_CLIENT_PARSE, CONN_PREP_SERVER_PARSE, CONN_PREP_BIND };
void conn_ctr_prep(struct server *sv, enum conn_prep_ev ev);
/* A client that logged in got its first pool (SHOW STATS client_login_count). */
void conn_ctr_login(struct pool *p, int widx);
/* Counts of a session spliced in the kernel since the last call (each
 * query is put in the histogram bucket of their mean time). */
void conn_ctr_spliced(struct server *sv, uint64_t queries, uint64_t xacts, uint64_t query_us,
                      uint64_t bytes_in, uint64_t bytes_out);

#endif
