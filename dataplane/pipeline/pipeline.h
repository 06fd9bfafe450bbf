/*
 * The query pipeline: what the proxy decides about a request before (and
 * while) a server runs it. A request (struct req) passes the ordered
 * stages of its client's pipeline; each stage returns a verdict and never
 * sends anything: conn/ fills the request from its client, runs the
 * stages, and acts on the verdict (sends the answer or the error, parks
 * the client, asks the pool for a server of the chosen node).
 *
 * A pipeline is built once per config snapshot from the stages whose
 * feature is enabled under it (a disabled feature has no stage, so it
 * costs nothing per message); a client keeps the pipeline of the snapshot
 * it logged in with, unless that snapshot's pipeline is rebuilt
 * (pipe_forget_all: a live plugin set became non-empty or empty): then it
 * moves to the new one at its next request boundary (conn/client_pipe.c,
 * pipe_client_swap). Stages run at one of three points:
 *
 *   PIPE_AT_MSG      each client message, in order (rewrite, rate limit);
 *   PIPE_AT_REQUEST  a whole request at the head of the client's buffer
 *                    and no server bound (the result cache);
 *   PIPE_AT_ROUTE    the node for the transaction that starts (the router).
 *
 * Events (connection established, query start, query complete, error) are
 * published by conn/ to the stages that subscribe to them (analytics, the
 * cache, later plugins); a pipeline without subscribers costs one test.
 *
 * Pooling modes: transaction and statement pooling run every point; session
 * pooling (conn/session.c) runs PIPE_AT_MSG on message headers (r->whole
 * may be false: r->msg is the header and what arrived of the body) and
 * PIPE_AT_REQUEST (a whole request while its server owes it nothing and is
 * outside a transaction block: r->has_server, r->tx_status 'I') unless the
 * session is spliced in the kernel, and PIPE_AT_ROUTE (the primary).
 * A stage that must not run in a mode says so in its applies().
 *
 * May call: policy/ (snap, tenant, breaker), pool/ (busy hints),
 * pipeline/engine/, rt/ (nothing yet), io-free leaves (pg, sql, common).
 * Never names struct client or struct server: conn/ copies what a stage
 * needs into struct req, and keeps each stage's per-client state for it
 * (struct pipe_client).
 */
#ifndef HELIOS_PIPELINE_H
#define HELIOS_PIPELINE_H

#include "common/sbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;
struct cfg_tenant;
struct snap;
struct tenant_state;

enum pipe_verdict {
	PIPE_CONTINUE, /* next stage; after the last one conn/ goes on with the message */
	PIPE_ANSWERED, /* answered: whole messages for the client are in r->out, the
	                * request (or message, at PIPE_AT_MSG) is consumed */
	PIPE_PARK,     /* wait (r->park says for what); conn/ parks the client and runs
	                * the pipeline again for the same message when woken */
	PIPE_ERROR,    /* refused: conn/ sends an ErrorResponse with r->err (and what
	                * PostgreSQL sends after one: ReadyForQuery, or the rest of the
	                * extended batch dropped up to its Sync) */
};

enum pipe_point {
	PIPE_AT_MSG,
	PIPE_AT_REQUEST,
	PIPE_AT_ROUTE,
	PIPE_POINTS,
};

/* Per-client slots: one per stage kind (the stage's slot field), the same
 * index in every pipeline. */
enum pipe_slot_id {
	PIPE_SLOT_REWRITE,
	PIPE_SLOT_RATE,
	PIPE_SLOT_CACHE,
	PIPE_SLOT_ROUTE,
	PIPE_SLOT_ANALYTICS,
	PIPE_SLOT_PLUGIN, /* first of the slots for stages registered with pipe_register */
	PIPE_SLOTS = PIPE_SLOT_PLUGIN + 3,
};

/* A stage's state for one client: a small value, or what it allocated
 * (freed by its client_free). Zero for a new client. */
union pipe_slot {
	void *p;
	uint64_t u;
};

/* Flags a stage leaves for a later one, kept across the points of one
 * request (cleared by pipe_request_done). */
#define PIPE_RF_PRIMARY_ONLY 1u  /* route to the primary (a cache miss being recorded) */
#define PIPE_RF_HINT_PRIMARY 2u  /* a plugin's hint: route = "primary" */
#define PIPE_RF_HINT_REPLICA 4u  /* ... route = "replica" */
#define PIPE_RF_HINT_NODE    8u  /* ... route = node pc->hint_node */
#define PIPE_RF_NO_CACHE     16u /* ... cache = "skip" */

/* What conn/ keeps for each client on behalf of its pipeline (zeroed by
 * pipe_client_init, freed by pipe_client_free). */
struct pipe_client {
	union pipe_slot slot[PIPE_SLOTS];
	uint64_t req_seq;         /* requests finished so far (Query, FunctionCall, Sync, or
	                           * a request answered without a server) */
	bool in_batch;            /* inside an extended batch: its first message was seen */
	uint8_t rflags;           /* PIPE_RF_* for the request at the head */
	int16_t hint_node;        /* PIPE_RF_HINT_NODE: its [[nodes]] index */
	uint32_t skip;            /* 1u << slot: stages with nothing to do for this client */
	bool buffered;            /* a stage may replace its messages (pipe_client_start) */
	bool active[PIPE_POINTS]; /* some stage at that point applies to it */
	/* parked (conn/ sets these from r->park and clears them at the wake) */
	uint8_t parked; /* enum pipe_wake + 1; 0: not parked */
	uint64_t wake_ns;
	const void *park_token;
};

enum pipe_mode {
	PIPE_MODE_SESSION,
	PIPE_MODE_TXN,
	PIPE_MODE_STMT,
	PIPE_MODE_INTERNAL, /* SQL that does not come from a wire client */
};

enum pipe_wake {
	PIPE_WAKE_AT,      /* at park.wake_ns (monotonic): a rate-limit throttle */
	PIPE_WAKE_TOKEN,   /* when park.token is woken (single flight): conn/'s
	                    * tx_wake_token(worker, token) on the client's worker */
	PIPE_WAKE_PRIMARY, /* when the routing table has a primary again (failover) */
};

struct pipe_park {
	enum pipe_wake kind;
	uint64_t wake_ns;
	const void *token;
};

struct pipe_error {
	char sqlstate[6];
	char msg[300];
	const char *hint; /* static text or NULL; conn/ sends it with a simple Query's error */
};

/* A request as the stages see it. conn/ fills it per message (pointers
 * into the client's buffer: nothing copied, nothing allocated); a stage
 * reads the facts and writes only the decision fields below them. */
struct req {
	/* who, under which settings */
	const struct snap *snap; /* the client's snapshot; snap->cfg is its config */
	const char *database;
	const char *user;
	struct tenant_state *tenant;         /* NULL: no tenant */
	const struct cfg_tenant *tenant_cfg; /* its [[tenants]] entry (NULL without) */
	uint64_t client_id;                  /* for logs; 0 for an internal request */
	const char *peer;                    /* client address ("127.0.0.1:5000"); NULL internal */
	/* settings view: the value of a session setting the client expects on
	 * its server, NULL when unset (setting may be NULL: none known) */
	const char *(*setting)(const void *arg, const char *name);
	const void *setting_arg;
	/* every such setting (the result cache's key); NULL: none known */
	void (*settings_each)(const void *arg,
	                      void (*fn)(void *ud, const char *name, const char *value,
	                                 bool is_stmt),
	                      void *ud);
	/* the client's prepared statement name: its Parse body after the name
	 * (text\0 int16 n, n type oids), *len set; NULL when unknown (or no
	 * lookup: setting_arg is the argument of both) */
	const uint8_t *(*stmt_body)(const void *arg, const char *name, uint32_t *len);
	uint64_t now_ns; /* monotonic, read once per run */

	/* how it is served */
	enum pipe_mode mode;
	bool replication; /* a replication connection: primary, never pooled */
	bool has_server;  /* a server is bound (inside a transaction, or session mode) */
	char tx_status;   /* 'I', 'T' or 'E' of the bound server; 'I' without one */

	/* what: one client message (PIPE_AT_MSG), or the first message of the
	 * request at the head (PIPE_AT_REQUEST, PIPE_AT_ROUTE) */
	uint8_t type;       /* message type byte; 0 for an internal request */
	const uint8_t *msg; /* the message from its type byte (whole when whole) */
	uint32_t msg_len;   /* its length: length field + 1 */
	bool whole;         /* all of it is at msg (false: a large one streamed) */
	bool starts;        /* it starts a request (Query, FunctionCall, first
	                     * message of an extended batch) */
	/* it went through these stages before (woken after a PARK, or it
	 * waited for a server); reliable for clients that run buffered (a
	 * stage that replaces applies to them), else false: stages must be
	 * idempotent per message (key on pc->req_seq, as the rate limit does) */
	bool again;
	/* PIPE_AT_REQUEST/ROUTE: statement text (a Query, a Parse, the
	 * statement a Bind names), NULL when none or not known; PIPE_AT_MSG:
	 * NULL (stages read msg) */
	const char *sql;
	size_t sql_len;
	const uint8_t *req_buf; /* PIPE_AT_REQUEST: the client's buffered bytes from
	                         * the request at the head (req_len of them) */
	uint32_t req_len;

	struct pipe_client *pc; /* the client's pipeline state */

	/* decisions and outputs (conn/ zeroes them before a run) */
	int node;              /* PIPE_AT_ROUTE: chosen node index (-1: none yet) */
	struct sbuf *out;      /* PIPE_ANSWERED: whole messages for the client (conn/
	                        * provides a reused buffer: appending does not allocate
	                        * once it has grown) */
	uint32_t out_consumed; /* PIPE_AT_REQUEST + ANSWERED: bytes of req_buf consumed */
	uint8_t *replace;      /* PIPE_CONTINUE at PIPE_AT_MSG: a whole message to send
	                        * instead of this one (malloc'd; conn/ frees it) */
	uint32_t replace_len;
	struct pipe_park park;  /* PIPE_PARK */
	struct pipe_error err;  /* PIPE_ERROR */
	const char *decided_by; /* name of the stage that returned the verdict */
};

/* Events for subscribers (analytics, the cache, plugins). */
enum pipe_ev {
	PEV_CONNECT,     /* a client logged in (conn/login.c, after its tenant) */
	PEV_QUERY_START, /* a statement went to a server (r->sql, r->type) */
	PEV_QUERY_DONE,  /* it completed: duration, rows, ok */
	PEV_ERROR,       /* an error reached a logged-in client, once each: a server's
	                  * (at the failed statement's ReadyForQuery) or the proxy's
	                  * own ErrorResponse, FATALs that close it included (conn/
	                  * tx_ev_error); sqlstate and message set */
	PEV_COUNT,
};

struct pipe_event {
	enum pipe_ev kind;
	const struct req *r;  /* who and what (the statement at QUERY_START/DONE) */
	uint64_t at_ns;       /* monotonic */
	uint64_t duration_ns; /* PEV_QUERY_DONE */
	uint64_t rows;        /* PEV_QUERY_DONE: rows returned or affected */
	bool ok;              /* PEV_QUERY_DONE: false when it ended in an error */
	const char *sqlstate; /* PEV_ERROR, a failed PEV_QUERY_DONE */
	const char *message;
	/* PEV_QUERY_START of a Parse or a Bind: the statement's name ("" the
	 * unnamed one), NULL when not known */
	const char *stmt_name;
};

struct pipe_stage {
	const char *name;
	enum pipe_point point;
	int slot;  /* enum pipe_slot_id */
	int order; /* position among the stages of its point, lower first */
	/* in a pipeline built under c; NULL: always */
	bool (*enabled)(const struct cfg *c);
	/* has something to do for this client (asked once, at login, with the
	 * login's request: who, mode); NULL: every client */
	bool (*applies)(const struct req *r);
	/* the stage itself; NULL for a stage that only subscribes to events */
	enum pipe_verdict (*run)(struct req *r, union pipe_slot *slot);
	/* events it subscribes to (1u << PEV_*), and its handler */
	uint32_t events;
	void (*on_event)(const struct pipe_event *ev, union pipe_slot *slot);
	/* frees what it keeps for a client (may be NULL) */
	void (*client_free)(union pipe_slot *slot);
	/* it may set r->replace: conn/ then runs messages from its buffer
	 * (where it can splice them), not from the received chunk */
	bool replaces;
};

#define PIPE_MAX_STAGES 8

/* The stages of one config snapshot (immutable once built). */
struct pipeline {
	int refs; /* atomic; the registry's entries are found by snap */
	const struct snap *snap;
	uint8_t n[PIPE_POINTS];
	const struct pipe_stage *at[PIPE_POINTS][PIPE_MAX_STAGES];
	uint8_t n_sub[PEV_COUNT];
	const struct pipe_stage *sub[PEV_COUNT][PIPE_MAX_STAGES];
	uint8_t n_all;
	const struct pipe_stage *all[PIPE_MAX_STAGES * PIPE_POINTS]; /* every stage in it */
	bool replaces; /* a stage may replace messages (struct pipe_stage.replaces) */
};

/* Registers a stage beyond the built-in ones (at start-up, before any
 * pipeline is built; a plugin). -ENOSPC when full. */
int pipe_register(const struct pipe_stage *st);

/* The pipeline for snapshot s with a reference taken: built on first use
 * (then shared by every client of s); NULL when out of memory. */
struct pipeline *pipe_get(struct snap *s);
void pipe_put(struct pipeline *p);
/* Logins from now on build their pipelines again (a stage's enabled()
 * answer changed without a new snapshot: the first plugin pushed), and
 * the hook set by pipe_on_forget runs (on the calling thread, after the
 * registry's lock is released): conn/ then moves the clients already
 * logged in to a freshly built pipeline at their next request boundary. */
void pipe_forget_all(void);
/* Set once at start-up (conn/); NULL: none. */
void pipe_on_forget(void (*fn)(void));

/* Builds a pipeline from the given stages under c (tests; pipe_get uses
 * the built-in and registered stages). Free with pipe_free. */
struct pipeline *pipe_build(const struct cfg *c, const struct pipe_stage *const *stages, size_t n);
void pipe_free(struct pipeline *p);

/* True when some stage runs at this point: conn/ fills no request
 * otherwise. */
static inline bool pipe_has(const struct pipeline *p, enum pipe_point at)
{
	return p && p->n[at];
}
static inline bool pipe_wants(const struct pipeline *p, enum pipe_ev ev)
{
	return p && p->n_sub[ev];
}

/* Runs the stages at one point in order until one does not CONTINUE;
 * returns that verdict (r->decided_by names the stage), or PIPE_CONTINUE. */
enum pipe_verdict pipe_run(const struct pipeline *p, enum pipe_point at, struct req *r);
/* Publishes an event to the pipeline's subscribers. */
void pipe_emit(const struct pipeline *p, struct pipe_client *pc, const struct pipe_event *ev);

/* Per-client state. */
void pipe_client_init(struct pipe_client *pc);
/* At login (r: who and how it is served): which stages apply to it
 * (pc->skip, pc->active, pc->buffered). */
void pipe_client_start(const struct pipeline *p, struct pipe_client *pc, const struct req *r);
/* Frees what p's stages keep for the client. */
void pipe_client_free(const struct pipeline *p, struct pipe_client *pc);
/* Moves a logged-in client from pipeline old to p (the same snapshot's,
 * rebuilt) between requests: the state of old's stages that p lacks is
 * freed (their client_free), a stage in both keeps its state (the rate
 * limit's tokens, the cache's), and p's stages are asked again which apply
 * (as pipe_client_start at login, r as there). */
void pipe_client_swap(const struct pipeline *old, const struct pipeline *p, struct pipe_client *pc,
                      const struct req *r);
/* conn/: a client message of this type was consumed (forwarded, dropped
 * or answered). Keeps req_seq and in_batch. */
void pipe_msg_passed(struct pipe_client *pc, uint8_t type);
/* conn/: the request at the head was consumed as a whole (answered
 * without a server). */
void pipe_request_done(struct pipe_client *pc);
/* Does a message of this type start a request for this client? */
static inline bool pipe_starts(const struct pipe_client *pc, uint8_t t)
{
	return t == 'Q' || t == 'F' ||
	       ((t == 'P' || t == 'B' || t == 'D' || t == 'E') && !pc->in_batch);
}

/* Helpers for stages. */
/* Sets r->err (snprintf-style message); returns PIPE_ERROR. */
__attribute__((format(printf, 4, 5))) enum pipe_verdict
req_error(struct req *r, const char *sqlstate, const char *hint, const char *fmt, ...);
/* Parks r until now + wait_ns; returns PIPE_PARK. */
enum pipe_verdict req_park_until(struct req *r, uint64_t wake_ns);
/* r's Query or Parse (r->msg, whole) with sql (sl bytes, no NUL) in place
 * of its text [old_sql, old_end): the name (a Parse's: name_len bytes),
 * the new text, then what followed the old one (its NUL and a Parse's
 * parameter types). A malloc'd whole message, *len set; NULL when out of
 * memory, too large, or sql has a NUL. */
uint8_t *req_with_sql(const struct req *r, uint32_t name_len, const char *old_sql,
                      const char *old_end, const char *sql, size_t sl, uint32_t *len);

/* The built-in stages (one file each, pipeline/stage_*.c). */
extern const struct pipe_stage stage_rewrite;
extern const struct pipe_stage stage_rate;
extern const struct pipe_stage stage_route;
extern const struct pipe_stage stage_cache;      /* cache.h */
extern const struct pipe_stage stage_analytics;  /* analytics.h */
extern const struct pipe_stage stage_plugin;     /* plugin_stage.h */
extern const struct pipe_stage stage_plugin_req; /* its part ahead of the cache */

#endif
