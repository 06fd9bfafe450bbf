/*
 * Private to the data plane: client and server connections and the
 * endpoint (one socket's send queue, TLS and header scanner) that both
 * are built on. Each connection has an explicit state with one setter
 * that refuses illegal moves and a *_state_str() for logs.
 */
#ifndef HELIOS_CONN_INTERNAL_H
#define HELIOS_CONN_INTERNAL_H

#include "dataplane/io/io.h"
#include "dataplane/pg/pgw.h"
#include "dataplane/auth/scram.h"
#include "dataplane/conn/guc.h"
#include "dataplane/conn/prep.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/pool/pool.h"
#include "dataplane/rt/worker.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct worker;
struct pool;
struct snap;
struct tls_conn;
struct client;
struct server;
struct kf_session;
struct cfg;

#define EP_HIGH_WATER  (512u * 1024u) /* pause the source above this many queued bytes */
#define EP_LOW_WATER   (128u * 1024u)
#define EP_CAPTURE_MAX 8192u         /* largest message the relay copies out to inspect */
#define CONN_INBUF_MAX (64u * 1024u) /* login-phase assembly limit */

/*
 * Who owns each buffer, at any moment (one owner; whoever owns it releases
 * it, exactly once):
 * - received chunk (io_chunk from on_recv, or a TLS plaintext chunk from
 *   ep_tls_decrypt): the connection's receive handler until it either
 *   queues it on the peer's endpoint (ep_send_chunk: the chunk is the
 *   peer endpoint's from that call on, and under TLS already encrypted and
 *   released), keeps it as pending input (ep_in_adopt), or releases it.
 * - pending input (ep.in): the endpoint's. It is a malloc'd assembly
 *   buffer, or (ep.in_chunk set) a window into one received chunk that
 *   the endpoint owns; ep_in_consume() releases the chunk with its last
 *   byte, ep_in_handed() forgets it once run_msgs queued it to the server
 *   (transaction pooling: a client whose server binds late forwards the
 *   chunk it was waiting with, no copy). Anything that writes into it
 *   (ep_in_append, ep_in_splice: a message split across reads, the
 *   statement rewriter) first copies the window into an assembly buffer:
 *   the one copy allowed on the client -> server path. A pending chunk
 *   from the loop's buffer ring is kept only while the ring has half its
 *   buffers free; otherwise its bytes are copied (a waiting client must
 *   not starve the loop's receives). ep_fini releases what is left.
 * - capture buffer (ep.cap_buf): the endpoint's, a copy of a message of
 *   at most EP_CAPTURE_MAX being relayed, freed by ep_fini.
 * - send queue (q_head..q_tail): the endpoint's; its first send_chunks
 *   chunks are the io_sendv() in flight, released by ep_sent(); ep_fini
 *   releases the rest.
 * - sbuf scratch (txn.c's per-thread tls_sb): the worker thread's, valid
 *   during one run_msgs() call; ep_send_bytes() copies it into a chunk.
 */

/* One socket: what is queued to send, TLS, the incoming-message scanner. */
struct endpoint {
	struct io_sock sock;
	struct io_chunk *q_head, *q_tail;
	uint32_t q_bytes;
	uint8_t send_chunks; /* queued chunks in the send in flight (from q_head) */
	bool corked;         /* ep_cork: queue without sending until ep_uncork */
	struct tls_conn *tls;
	struct pgw_scan scan;
	/* a message being copied out while relayed */
	uint8_t cap_type;
	uint32_t cap_len, cap_got;
	uint8_t *cap_buf;
	/* pending input: bytes read ahead of whole messages (login phases;
	 * in transaction pooling, client bytes waiting to be run) */
	uint8_t *in;
	uint32_t in_len, in_cap;
	uint32_t in_seen; /* bytes at the start of in the statement rewriter has looked at */
	uint32_t in_max;  /* assembly limit of in; 0: CONN_INBUF_MAX */
	struct io_chunk *in_chunk; /* set: in points into this received chunk (in_cap 0) */
	uint64_t in_copied;        /* bytes copied into in (assembly), for the debug log */
	bool paused;               /* receive stopped for back-pressure */
	bool want_tls_handshake;
};

enum cl_state {
	CL_STARTUP,     /* waiting for the startup packet */
	CL_TLS,         /* TLS handshake after SSLRequest */
	CL_AUTH,        /* authentication exchange */
	CL_WAIT_SERVER, /* authenticated, waiting for a server */
	CL_ACTIVE,      /* relaying */
	CL_CLOSING,     /* flushing a final message, then closing */
	CL_CLOSED,
};

/* Which of its worker's lists a client waits on (conn_worker.h): its
 * waiting state, changed by cl_set_queue() only. */
enum cl_queue {
	CLQ_NONE,    /* on none: relaying, idle between transactions, or closed */
	CLQ_LOGIN,   /* logging in (client_login_timeout_secs, max_login_clients) */
	CLQ_WAITING, /* waiting in a pool for a server (query_wait_timeout_secs) */
	CLQ_PAUSED,  /* held by a PAUSE or a drained node */
	CLQ_PRIMARY, /* held: no primary (failover), since wait_start (failover_timeout_secs) */
	CLQ_CLOSING, /* CL_CLOSING: flushing its last message (closed after a linger) */
	CLQ_COUNT,
};

struct hba_rule;
struct ldapauth_req;

struct client {
	struct endpoint ep;
	struct worker *w;
	struct snap *snap;
	uint64_t id;
	enum cl_state state;
	bool is_tls;
	bool is_unix; /* connected over the Unix socket */
	bool replication;
	bool txn;               /* transaction or statement pooling */
	bool stmt_mode;         /* statement pooling */
	bool login_pending;     /* tx mode: login answer waits for the settings sync */
	uint32_t pins;          /* bit per enum pin_reason */
	struct tx_fx *fx;       /* txn_track.c: extended-protocol statements that change state */
	struct tx_gpend *gpend; /* txn_track.c: changes to want waiting for their statement's end */
	struct guc_set want;    /* settings the client expects on any server */
	struct guc_set startup; /* its startup settings, for RESET */
	struct prep_client prep;
	struct prep_client sqlprep; /* SQL PREPARE name -> statement text */
	struct prep_client rawprep; /* statements prepared under their own name (too large) */
	uint32_t stream_left;       /* client bytes of a large message passed straight through */
	bool stream_drop;           /* ... or dropped (the message was refused) */
	bool drop_to_sync;          /* a refused extended batch: dropped up to its Sync */
	/* its bytes run in transaction pooling (debug log at its end): passed
	 * on in the chunk they arrived in, or through the scratch buffer */
	uint64_t tx_direct, tx_copied;
	uint32_t listens;    /* channels subscribed through the pool's hub */
	uint8_t *notify_buf; /* notifications waiting for a message boundary */
	uint32_t notify_len;
	bool listen_wait;       /* its LISTEN answer waits for the hub */
	uint8_t *listen_answer; /* that answer */
	uint32_t listen_answer_len;
	char **listen_chans; /* channels it waits for */
	int n_listen_chans;
	struct timespec listen_wait_start; /* first tick that saw listen_wait; 0: not yet */
	bool zombie;                       /* closed while a pool hand-off is in flight */
	bool tx_take;                      /* cl_get_server_for_tx: return a server got at once */
	struct server *tx_taken;           /* ... that server */
	char user[64];
	char database[64]; /* as the client named it: a [[databases]] alias */
	/* issue 19: its [[databases]] entry (in cl->snap->cfg; NULL = none)
	 * and what its servers log in as: the entry's dbname and forced user,
	 * else database and user */
	const struct cfg_database *db;
	char sv_database[64];
	char sv_user[64];
	/* issue 19 timeouts (cl_timeouts_tick, once a second): receives so
	 * far, how many the last tick saw, and since when it has been idle */
	uint64_t rx_n, rx_seen;
	struct timespec idle_since;
	char peer[64];
	bool logged_in;             /* authenticated: log_disconnections covers it */
	bool close_logged;          /* its closing reason is logged already (login_failed) */
	bool linger;                /* closed with a FATAL: half-close and read to the client's
	                             * EOF before the close (client.c, cl_end_socket) */
	bool lingering;             /* doing that now: what arrives is dropped */
	bool pc_started;            /* pipe_client_start ran: its errors are PEV_ERROR events */
	struct timespec connect_ts; /* accepted (conn_now), for log_disconnections */

	/* startup parameters, owned copy (name\0value\0...) */
	char *params_buf;
	struct pgw_param *params; /* n_params entries, into params_buf */
	int n_params;
	uint64_t signature;

	/* authentication */
	int auth_method; /* enum cfg_auth_method actually used */
	uint8_t md5_salt[4];
	struct scram_server *scram;
	bool scram_first_done;
	bool have_client_key;
	uint8_t client_key[32];
	bool fake_auth; /* unknown user: run the exchange, then fail */
	/* issue 18: the pg_hba rule that decides its method (owned by
	 * cl->snap, held as long as the client), the LDAP check in flight */
	const struct hba_rule *hba_rule;
	struct ldapauth_req *ldap_req;
	char jwt_tenant[64]; /* the tenant claim of its token; "" = none */
	/* login phase (login.c): the password derivation in flight,
	 * encryption requests seen */
	bool ssl_asked, gss_asked;
	bool authq_counted; /* holds one of its worker's auth_query_max_running */
	bool authq_waiting; /* waits for one */
	struct aw_job *auth_job;
	struct timespec login_start;
	char *password; /* stored secret or plaintext from the user entry (malloc'd) */
	char *server_password;

	/* pool wait */
	struct pool *pool;
	struct pool_waiter pw;          /* in cl->pool's queue (pw.state), or what it was handed */
	enum cl_queue queue;            /* the worker list it is on (cl_set_queue) */
	struct client *q_next, *q_prev; /* on that list */
	struct timespec wait_start;
	struct worker_msg mail; /* its pool hand-off, posted to its worker */

	struct server *server;
	uint32_t cancel_pid, cancel_key;
	struct client *all_next, *all_prev; /* worker's client list */
	struct server *connecting;          /* server logging in on our behalf */
	struct server *authq;               /* auth_query lookup in progress */
	struct timespec close_start;
	bool await_handoff;            /* closed while handed something: free after delivery */
	bool admin;                    /* admin console session ("heliosproxy", "pgbouncer") */
	bool admin_busy;               /* its statement is with the console thread */
	bool admin_read_only;          /* a stats_users session: SHOW only */
	bool login_counted;            /* its login is in a pool's count */
	uint32_t connect_s, request_s; /* monotonic seconds (reports) */
	/* woken from a wait on a token (txn_req.c): the request stages run
	 * again once without waiting */
	bool cache_nowait;
	/* tenants and rate limits (tenant.c) */
	struct tenant_state *tenant;         /* NULL: no tenant */
	const struct cfg_tenant *tenant_cfg; /* its entry in snap->cfg (NULL with tenant) */
	/* the query pipeline of its snapshot, and the stages' state for it */
	struct pipeline *pipe;
	struct pipe_client pc;
	/* its snapshot's pipeline was rebuilt: it moves to the new one at its
	 * next request boundary (client_pipe.c) */
	bool pipe_swap;
	/* session pooling with stages (session.c) */
	uint32_t sess_due;     /* ReadyForQuery the server still owes the client */
	bool sess_drop;        /* a refused extended batch: dropped up to its Sync */
	bool sess_skip;        /* the rest of the message being received is dropped */
	struct kf_session *kf; /* spliced in the kernel (splice.c), NULL otherwise */
	/* the result cache in session pooling (session.c) */
	uint8_t sess_cache;    /* enum sess_cache_state */
	uint8_t sess_fill;     /* enum sess_fill_state: the answer being recorded */
	uint64_t sess_unnamed; /* hash of the server's unnamed statement (0: unknown) */
	/* online restart (takeover.c): receiving stopped to hand it over
	 * (moving), or it cannot move and stays until it leaves (no_move) */
	bool moving, no_move;
	uint8_t move_wait; /* receive stops still owed: 1 client, 2 its server */
};

enum sv_state {
	SV_CONNECTING,
	SV_TLS_REQUEST, /* SSLRequest sent, waiting for 'S' or 'N' */
	SV_TLS,         /* TLS handshake */
	SV_LOGIN,       /* startup sent, authenticating, collecting parameters */
	SV_ACTIVE,      /* bound to a client, relaying */
	SV_RESETTING,   /* running the reset query before going back to the pool */
	SV_IDLE,        /* in the pool */
	SV_CLOSING,
	SV_AUTH_QUERY, /* running auth_query for a client's login */
	SV_LISTENER,   /* a pool's LISTEN hub connection */
};

#define SV_MAX_PARAMS 32

/* The worker list a server's state puts it on (sv_set_state): servers
 * idle in a pool are on its idle list instead, closing ones on none. */
enum sv_list {
	SVL_NONE,
	SVL_LOGIN,    /* SV_CONNECTING .. SV_LOGIN (server_connect_timeout_secs) */
	SVL_ACTIVE,   /* attached and in use: SV_ACTIVE, SV_RESETTING, SV_AUTH_QUERY, SV_LISTENER */
	SVL_HANDOVER, /* SV_CLOSING after a Terminate, its slot kept until EOF (sv_close_handover)
	               */
	SVL_COUNT,
};

struct server {
	struct endpoint ep;
	struct worker *w;  /* the loop it is attached to, NULL while idle in the pool */
	struct pool *pool; /* NULL for an unpooled (replication) connection */
	struct client *client;
	struct client *authq_client; /* auth_query lookup on behalf of this client */
	struct hub *hub;             /* set on a LISTEN hub connection */
	bool is_listener;
	bool authq_found;
	enum sv_state state;
	uint64_t id;
	uint64_t last_client; /* id of the client it served last (transaction pooling) */
	uint64_t signature;
	int node_idx;
	char node_host[256];
	int node_port;
	uint32_t backend_pid, backend_key;
	char tx_status;
	bool clean;           /* idle at ReadyForQuery, nothing sent since */
	bool open_batch;      /* tx: extended messages sent since the last Sync/Query */
	bool needs_reset;     /* tx: held a pinned client's state: DISCARD ALL before pooling */
	bool seq_discard;     /* tx: DISCARD SEQUENCES goes ahead of the client's next bytes */
	bool q_busy, x_busy;  /* a query / transaction is running (stats) */
	struct timespec z_at; /* its last ReadyForQuery: idle_transaction_timeout */
	bool handover;        /* closing: its pool slot is freed at the backend's EOF */
	struct timespec q_start, x_start;
	struct timespec created, last_used;

	/* ParameterStatus values, kept current as the server reports them */
	char *param_name[SV_MAX_PARAMS];
	char *param_value[SV_MAX_PARAMS];
	int n_params;

	/* login */
	struct scram_client *scram;
	char *startup_pkt;
	uint32_t startup_len;
	struct pool_item pitem;           /* in its pool's idle list (pool lock) */
	enum sv_list wlist;               /* the worker list it is on (sv_set_state) */
	struct server *wl_next, *wl_prev; /* on that list */
	bool parking;                     /* receive being stopped before going idle */
	bool counted;                     /* holds a slot in its pool */
	/* released with a cancel in flight: waits for it (conn/cancel.c) */
	bool cancel_held;
	/* transaction pooling */
	bool txn;
	struct guc_set applied;
	struct prep_server prep;
	char **sqlprep_names; /* SQL-level prepared statements here */
	uint64_t *sqlprep_keys;
	uint32_t sqlprep_n, sqlprep_cap;
	struct rq *rq;
	uint32_t rq_head, rq_len, rq_cap;
	uint8_t cur_act;   /* what happens to the rest of the message being relayed */
	uint32_t cur_left; /* its payload bytes still to come */
	uint8_t hdr[5];
	uint8_t hdr_n;     /* partial header held back */
	bool skip_to_sync; /* an error: the server ignores messages until Sync */
	bool rx_partial;   /* a client message streamed to it is not complete yet */
	bool err_in_query;
	bool skip_pop; /* the message being relayed completes the head request */
	bool z_raw;    /* the ReadyForQuery being relayed passes unchanged */
	/* the client's last extended-protocol batch, replayed once when a
	 * statement must be prepared again (its result type changed) */
	uint8_t *batch;
	uint32_t batch_len, batch_cap;
	bool batch_sealed, batch_bad, retried, retry_armed, e_hold, replaying;
	uint32_t resp_fwd;         /* messages the client got for the current batch */
	uint32_t resp_synth_parse; /* of which ParseComplete the proxy answered itself */
	uint32_t replay_quiet;     /* replay: Parses whose answer the client already has */
	uint64_t retry_key;
	struct qev *qev;       /* txn_req.c: statements awaiting ReadyForQuery (query events) */
	struct ireq_run *ireq; /* ireq.c: the internal request running on it */
	/* credentials towards the server */
	char password[512];
	char server_password[512];
	bool have_client_key;
	uint8_t client_key[32];
	char user[64];
	char database[64];
	/* SQLSTATE of the last FATAL/PANIC it sent: at its close, tells a
	 * terminated backend (not counted) from a node going down */
	char fatal_code[6];
};

/* The server a pool item is embedded in (pool.h names no server). */
static inline struct server *sv_of_pool_item(struct pool_item *it)
{
	return it ? (struct server *)((char *)it - offsetof(struct server, pitem)) : NULL;
}

/* One request sent to a server whose answer is still to come. */
enum rq_kind { RQ_PARSE, RQ_BIND, RQ_DESCRIBE, RQ_EXECUTE, RQ_CLOSE, RQ_SYNC, RQ_QUERY, RQ_FUNC };
enum rq_act {
	RQ_FWD,   /* the client's own request: answers go to it */
	RQ_DROP,  /* injected by the proxy: answers are swallowed */
	RQ_SYNTH, /* answered by the proxy: emit synth when it reaches the head */
};
#define RQ_F_LOGIN 1u /* the settings sync that finishes a tx-mode login */
#define RQ_F_GUC   2u /* a client query that changes tracked settings */
struct rq {
	uint8_t kind, act, synth;
	uint8_t flags;
	uint64_t key; /* RQ_PARSE: statement key, forgotten if the Parse fails */
};

enum pin_reason {
	PIN_ADVISORY_LOCK,
	PIN_LISTEN,
	PIN_HOLD_CURSOR,
	PIN_TEMP_TABLE,
	PIN_SQL_PREPARE,
	PIN_SESSION_AUTH,
	PIN_UNTRACKED, /* session changes the proxy cannot follow (set_config, huge SQL...) */
	PIN_COUNT,
};
extern int g_admin_sessions; /* conn_worker.c: admin console sessions now */
extern uint64_t g_pin_count[PIN_COUNT];
const char *pin_reason_str(enum pin_reason r);

/* txn.c */
void tx_client_data(struct client *cl, struct io_chunk *c);
void tx_client_input(struct client *cl);
void tx_server_data(struct server *sv, struct io_chunk *c);
/* cl got sv (transaction pooling): sync settings, then relay. */
void tx_bind(struct client *cl, struct server *sv);
bool tx_server_clean(const struct server *sv);
/* sv's send queue drained: its client lets it go if it owes nothing. */
void tx_server_sent(struct server *sv);
/* Answers the client is still owed by sv: a queued request of its own (the
 * proxy's injected queries, whose answers are dropped, do not count). */
bool tx_client_answers_due(const struct server *sv);
void tx_server_reset_state(struct server *sv);
/* The server is about to run DISCARD ALL: forget what the proxy tracked on it. */
void tx_server_discarded(struct server *sv);
void tx_client_free(struct client *cl);
/* Queues a query of the proxy's own on sv (its answers are dropped except
 * what the flags' owner captures). */
void tx_inject_query(struct server *sv, const char *sql, uint8_t flags);
/* Frees the worker thread's scratch buffers. */
void tx_worker_exit(void);
/* Throttled clients whose wake-up time has come try again. */
void tx_rate_wake(struct worker *w, uint64_t now_ns);
/* txn_gate.c: fills the who/how facts of a pipeline request from cl (sv:
 * its bound server or NULL). */
void tx_req_init(struct client *cl, const struct server *sv, struct req *r);
/* Parks cl as a stage asked (woken by tx_rate_wake, or by whoever holds
 * the token). */
void tx_park(struct client *cl, const struct pipe_park *p);
/* The client is no longer parked by a stage (woken, or leaving). */
void tx_unpark(struct client *cl);
/* Clients of w a stage parked on token (PIPE_WAKE_TOKEN) run again (on
 * w's thread). */
void tx_wake_token(struct worker *w, const void *token);
/* session.c: session pooling with pipeline stages (rate limits, analytics). */
bool sess_staged(const struct client *cl, const struct server *sv);
void sess_client_data(struct client *cl, struct io_chunk *c);
/* Runs the bytes held in the client's buffer (woken, or bound). */
void sess_input(struct client *cl);
/* A ReadyForQuery from the session's server. */
void sess_server_ready(struct client *cl, struct server *sv);
/* Frees the worker thread's scratch buffer. */
void sess_worker_exit(void);
/* Server -> client in session pooling, before the relay scans the chunk:
 * the answer being recorded for the cache (cl->sess_fill set). */
void sess_server_tee(struct client *cl, struct server *sv, const uint8_t *data, size_t pos,
                     size_t end);
/* An ErrorResponse from the session's server (its body). */
void sess_server_error(struct client *cl, const uint8_t *body, uint32_t len);
/* client.c: asks the pool for a server for the next transaction. One the
 * pool has at once is returned, not bound (the relay binds it and goes on
 * in the same call: no txn -> client -> txn re-entry); NULL: it comes
 * later (cl_handoff_arrived, a new connection's login) and is bound then,
 * or the client was refused. */
struct server *cl_get_server_for_tx(struct client *cl);
int tx_client_init(struct client *cl);

/* endpoint.c */
void ep_init(struct endpoint *ep);
void ep_fini(struct endpoint *ep, struct io_loop *l);
/* Queues plaintext for sending (encrypting it first under TLS); takes c. */
int ep_send_chunk(struct endpoint *ep, struct io_chunk *c);
int ep_send_bytes(struct endpoint *ep, const void *p, size_t n);
/* Called from on_sent: releases the sent chunk and starts the next. */
void ep_sent(struct endpoint *ep, int err);
/* Between ep_cork and ep_uncork, what is queued is not sent (nor, under
 * TLS, sealed into records): queued together, it goes in one write. The
 * two are called in one function, with nothing in between that could
 * release the endpoint. */
void ep_cork(struct endpoint *ep);
int ep_uncork(struct endpoint *ep);
bool ep_flushed(const struct endpoint *ep);
/* Appends bytes to the pending input; -EMSGSIZE past the limit. */
int ep_in_append(struct endpoint *ep, const uint8_t *p, size_t n);
void ep_in_consume(struct endpoint *ep, uint32_t n);
/* With no pending input: takes c as the pending input, its bytes
 * data[off, off + len) read where they are. False (c untouched, still the
 * caller's) when the endpoint cannot keep it. */
bool ep_in_adopt(struct endpoint *ep, struct io_chunk *c, uint32_t off, uint32_t len);
/* The pending chunk (ep.in_chunk) was queued elsewhere as it is: forgets
 * it without releasing it; the pending input is empty. */
void ep_in_handed(struct endpoint *ep);
/* Replaces in[off, off + old) by p[0, n). -EMSGSIZE past the limit, -ENOMEM. */
int ep_in_splice(struct endpoint *ep, uint32_t off, uint32_t old, const uint8_t *p, uint32_t n);
/* Turns received ciphertext into plaintext chunks (list, via ->next).
 * Returns 0, or <0 when the input could not be taken at all. *closed is
 * set (<0) when the TLS stream ended or failed after the returned
 * plaintext, which the caller should still process. The raw chunk is
 * released. */
int ep_tls_decrypt(struct endpoint *ep, struct io_loop *l, struct io_chunk *raw,
                   struct io_chunk **out, int *closed);

/* Checks a logged-in client's message header (type, length field) as
 * PostgreSQL would: NULL when it passes, else the reason (in buf), for a
 * FATAL 08P01 that closes the client before anything reaches a server. */
const char *ep_frontend_check(uint8_t type, uint32_t mlen, char *buf, size_t n);

/* client.c */
void cl_accept(struct worker *w, int fd, bool is_unix);
void cl_close(struct client *cl, const char *sqlstate, const char *msg);
/* A closing client's last bytes are out: close its socket (after a FATAL,
 * half-close and read to its EOF first). */
void cl_end_socket(struct client *cl);
/* txn_req.c: */
/* PEV_ERROR for an ErrorResponse the proxy itself sends to a logged-in
 * client (a refusal, a timeout, a FATAL that closes it), once per error;
 * the server's errors are published by tx_ev_ready. One test when no
 * stage subscribes. */
void tx_ev_error(struct client *cl, const char *sqlstate, const char *msg);
const char *cl_state_str(enum cl_state s);
/* client.c: puts cl on / takes it off its worker's held list. */
/* Pause or drain changed: a held client tries for a server again. */
void cl_hold_check(struct client *cl);
/* A client held for a primary waited failover_timeout_secs: refused. */
void cl_hold_expired(struct client *cl);
/* A client held for a drained node longer than query_wait_timeout_secs
 * gets 53300 (a PAUSE is not a wait: it has no limit). */
void cl_hold_wait_check(struct client *cl, const struct timespec *now);
/* The console thread's answer for an admin client. */
void cl_admin_reply(struct client *cl, const uint8_t *msg, uint32_t len);
/* A server (or a right to open one) arrived for a waiting client. */
void cl_handoff_arrived(struct client *cl);
/* Thread-safe: delivers cl's pool hand-off on its worker (cl_handoff_arrived
 * there); allocates nothing (cl->mail). */
void cl_post_handoff(struct client *cl);
void cl_wait_timeout_check(struct worker *w, const struct timespec *now);
/* Once a second: query_timeout, idle_transaction_timeout, client_idle_timeout. */
void cl_timeouts_tick(struct worker *w, const struct timespec *now);
/* login.c: clients past client_login_timeout_secs are closed. */
void cl_login_timeout_check(struct worker *w, const struct timespec *now);
/* login.c: a password derivation came back (on its worker's thread). */
struct aw_job;
void cl_auth_work_done(struct aw_job *j);
/* login.c: admission at accept; false = refused (fd closed). */
bool cl_login_admit(struct worker *w, int fd, const struct cfg *c);
/* login.c: cl enters / leaves the login phase (counted, timed). */
void cl_login_begin(struct client *cl);
void cl_login_end(struct client *cl);
/* server.c calls these */
void cl_server_ready(struct client *cl, struct server *sv);
void cl_server_failed(struct client *cl, const uint8_t *err_body, uint32_t err_len,
                      const char *sqlstate, const char *msg);
void cl_server_data(struct client *cl, struct io_chunk *c);
void cl_server_gone(struct client *cl);
void cl_resume_source(struct client *cl);

/* server.c */
/* Opens a new server connection for cl (or for warming the pool when cl is
 * NULL) on worker w. */
int sv_connect(struct worker *w, struct pool *pool, struct client *cl, int node_idx);
/* The client let go: reset and pool the server, or close it. */
void sv_release(struct server *sv);
void sv_close(struct server *sv);
void sv_attach(struct server *sv, struct worker *w);
const char *sv_state_str(enum sv_state s);
/* Moves sv to state to, and to the worker list of that state (enum
 * sv_list); false (and a log line) for an illegal move. The one place
 * sv->state changes. */
bool sv_set_state(struct server *sv, enum sv_state to);
/* Closes sv so that its pool slot can go to another pool under a shared cap
 * (max_db/user_connections, a lowered size): Terminate, then the slot is
 * freed when PostgreSQL has closed the backend (EOF), or after
 * HANDOVER_MAX_SECS, so pg_stat_activity never shows more backends than the
 * cap while the slot moves. A server with I/O in flight closes at once. */
void sv_close_handover(struct server *sv);
/* From the worker's tick: handovers whose backend never answered. */
void sv_handover_tick(struct worker *w, const struct timespec *now);
void sv_resume_source(struct server *sv);
void sv_client_data(struct server *sv, struct io_chunk *c);
/* May an idle pooled server be handed out? False when its socket has
 * closed or it sent anything while idle (a FATAL of a terminated backend,
 * EOF): one non-blocking MSG_PEEK recv, no I/O in flight needed. */
bool sv_alive(struct server *sv);
/* Pool maintenance on worker w: closes every idle server of p (drain,
 * shutdown), or those past idle_timeout (keeping min_idle) or lifetime
 * and those whose backend is gone. */
void sv_pool_close_idle(struct worker *w, struct pool *p);
/* RECONNECT marked its pool after it was created: closed when released. */
bool sv_close_needed(const struct server *sv);
void sv_pool_expire(struct worker *w, struct pool *p, const struct timespec *now, int idle_timeout,
                    int lifetime, int min_idle);
/* An ErrorResponse body from the server: a FATAL's SQLSTATE is kept. */
bool sv_note_error(struct server *sv, const uint8_t *body, uint32_t len);
/* A server's FATAL on its way to its client: PEV_ERROR (tx_ev_error). */
void sv_fatal_event(struct server *sv, const uint8_t *body, uint32_t len);
/* A ReadyForQuery from a server in use: the node works (breaker). */
void sv_node_ok(struct server *sv);
/* A connect or login that took longer than server_connect_timeout_secs:
 * counted against the node, the waiting client told, the server closed. */
void sv_login_timeout(struct server *sv, int secs);
void sv_free_detached(struct server *sv);
/* Looks cl's secret up with [auth] auth_query; answers cl_auth_query_done. */
int sv_auth_query(struct worker *w, struct client *cl, int node_idx);
/* Opens the LISTEN hub connection of cl's pool with cl's credentials. */
int sv_connect_listener(struct worker *w, struct client *cl, struct server **out);
/* A notification for cl (on its worker): sent now or when it holds no server. */
void cl_deliver_notify(struct client *cl, const uint8_t *msg, uint32_t len);
void cl_flush_notify(struct client *cl);
/* Sends a LISTEN answer held for the hub once all its channels are live. */
void cl_listen_check(struct client *cl);
void sv_auth_query_cancel(struct server *sv);
/* A server held by cancel_hold(): pooled (ok) or closed. */
void sv_cancel_hold_end(struct server *sv, bool ok);
/* client.c: the lookup finished; secret NULL when the user has none. */
void cl_auth_query_done(struct client *cl, const char *secret, const char *error);

/* txn_req.c: a worker's clients parked on a wake token (the result cache's
 * single flight, a catalog read): woken when its worker's token_check (conn_worker.h) was
 * set, or past their deadline; the cache's hooks (main, before workers). */
void tx_token_wake(struct worker *w);
void tx_token_tick(struct worker *w, uint64_t now_ns);
void tx_req_install(void);

/* ireq.c: internal requests (pipeline/ireq.h) on pooled servers. */
struct ireq_run;
void ireq_conn_install(void);
/* A clean server about to be parked on this worker: a pending internal
 * request of its pool takes it instead (true). */
bool sv_claim_for_ireq(struct server *sv);
/* Answer bytes of sv->ireq, assembled in sv->ep.in. */
void ireq_server_input(struct server *sv);
/* sv closes under its internal request: the request fails. */
void ireq_server_gone(struct server *sv);
/* Pending requests retry for a server, or time out. */
void ireq_worker_tick(uint64_t now_ns);
void ireq_worker_exit(void);
/* A drain waits for this worker's internal requests on a server (a
 * catalog read a session client did not wait for may still run): busy
 * while one does; abort closes their servers once the grace is over. */
bool ireq_worker_busy(void);
void ireq_worker_abort(void);

/* A setting in a CLIENT or SERVER record: a client's wanted settings, a
 * server's applied ones (pointers into the record). */
struct tko_guc {
	const char *name, *value;
	bool is_stmt;
};

/* takeover.c / client.c: a client handed over by an old process (online
 * restart), as read from its CLIENT record (pointers into the record). */
struct cl_moved {
	const char *user, *database, *peer, *password, *server_password, *jwt_tenant;
	bool is_unix, stmt_mode, have_client_key;
	uint32_t cancel_pid, cancel_key;
	int auth_method;
	uint8_t client_key[32];
	const char **pnames, **pvalues; /* startup parameters */
	uint32_t n_params;
	struct tko_guc *want; /* its settings (startup + SET) */
	uint32_t n_want;
	struct {
		const char *name;
		const uint8_t *body;
		uint32_t len;
	} * prep; /* its protocol-level named statements */
	uint32_t n_prep;
	uint64_t signature;
	bool session; /* session pooling: its server came too (sv) */
	struct {
		const char *node, *host; /* [[nodes]] name; where it connected */
		uint32_t port, backend_pid, backend_key, age_secs, n_params;
		const char **pnames, **pvalues; /* its ParameterStatus values */
	} sv;
};
void cl_moved_free(struct cl_moved *m);
/* takeover.c, pure: cl's CLIENT record (malloc'd into *out), and a record
 * read back into m (0, -EPROTO for anything malformed or of another
 * version, -ENOMEM; free m with cl_moved_free). */
int tko_pack_client(const struct client *cl, uint8_t **out, size_t *len);
int tko_parse_client(const uint8_t *rec, size_t len, struct cl_moved *m);
/* The new process: a logged-in idle client from m on socket fd, in
 * session pooling with its server on sfd (both taken; -1: none), served
 * by w. */
void cl_adopt(struct worker *w, int fd, int sfd, const struct cl_moved *m);
/* An idle pooled server handed over (online restart). */
struct sv_moved {
	const char *node, *host, *user, *database;
	uint32_t port, backend_pid, backend_key, age_secs, n_params, n_applied, n_keys;
	uint64_t signature;
	bool served; /* it served a client (DISCARD SEQUENCES before the next) */
	bool txn;    /* transaction pooling's (else session pooling's, reset) */
	const char **pnames, **pvalues;
	struct tko_guc *applied;
	uint64_t *keys; /* prepared statements there (prep_key) */
};
void sv_moved_free(struct sv_moved *m);
int tko_parse_server(const uint8_t *rec, size_t len, struct sv_moved *m);
/* takeover.c: queues idle server sv (node: its [[nodes]] name) with a dup
 * of its socket; 0 or -errno (it stays). */
int tko_queue_server(struct server *sv, const char *node);
/* server.c: the new process pools an idle server from m on fd (taken);
 * closed when it cannot (node gone, pool full, state it cannot vouch for). */
void sv_adopt_idle(struct worker *w, int fd, const struct sv_moved *m);
/* server.c: the old process hands its pools' idle servers over (worker 0
 * while it drains; w NULL: the main thread once the workers ended); those
 * that cannot go are closed. */
void sv_pool_hand_idle(struct worker *w, struct pool *p);
/* server.c: the server connection that came with a session-pooled
 * client m on socket fd (taken), bound to cl, counted in pool; NULL (fd
 * closed) when out of memory. */
struct server *sv_adopt(struct worker *w, struct pool *pool, int node_idx, int fd,
                        struct client *cl, const struct cl_moved *m);
/* The old process (g_tko_handing): starts handing idle clients of w over;
 * true when w has none left to wait for. */
void cl_move_idle(struct worker *w);
/* client_pipe.c: moves a client marked pipe_swap to its snapshot's
 * rebuilt pipeline if it is between requests now (else it stays marked);
 * cl_pipes_run is the worker's message (conn_pipes_changed) that marks
 * them all. */
void cl_pipe_swap_try(struct client *cl);
void cl_pipes_run(struct worker *w, struct worker_msg *m);
/* Bytes arrived on a moving client or its server: it stays for now. */
void cl_move_abort(struct client *cl);
/* Receiving stopped for a hand-over (cl->moving) on the client's socket
 * (part 1) or its session's server (part 2). */
void cl_move_part_stopped(struct client *cl, uint8_t part);
/* The new process: a CancelRequest for a key it does not know goes to the
 * old process while it still has clients (0, or -errno). */
int tko_forward_cancel(uint32_t pid, uint32_t key);
/* Packs cl's state and queues it with a dup of its socket for the sender
 * thread. 0, or -errno (cl stays). */
int tko_queue_client(struct client *cl);

uint64_t conn_next_id(void);
void conn_now(struct timespec *ts);
double conn_elapsed(const struct timespec *since, const struct timespec *now);
/* Monotonic nanoseconds: of a conn_now() reading, and now. */
uint64_t conn_ts_ns(const struct timespec *ts);
uint64_t conn_now_ns(void);

#endif
