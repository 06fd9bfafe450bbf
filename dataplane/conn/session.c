/*
 * Session pooling with pipeline stages: the stages that need no server
 * switch (rate limits at PIPE_AT_MSG, analytics, the result cache at
 * PIPE_AT_REQUEST; plugins later) run on a session's client messages when
 * they are configured, unless the session is spliced in the kernel
 * (splice.c). Without them the session relay stays the plain chunk
 * forwarding of client.c.
 *
 * Bytes go on in the chunk they arrived in when every message of it passes;
 * otherwise the kept runs are copied once. A message header split between
 * two reads is held until it is whole, so each message is judged before any
 * byte of it reaches the server. A stage that parks the client (a throttle)
 * holds the bytes from that message on in the client's buffer and stops
 * reading; a refused request is answered only when the server owes the
 * client nothing (answers stay in order), after which its messages are
 * dropped (an extended batch up to its Sync, which gets the ReadyForQuery).
 *
 * The result cache (docs/cache.md, "Session pooling"): a request that
 * starts while the server owes the client nothing and is idle outside a
 * transaction block is held until whole (a Query, or an unnamed Parse
 * Bind [Describe] Execute Sync batch) and given to the cache's stage: a
 * hit is answered here and never reaches the server; a single-flight wait
 * parks the client (woken by txn_req.c's token wake-ups, which call
 * sess_input); a miss goes to the server and, when the stage asks, its
 * answer is recorded: sess_server_tee shows the server's messages to the
 * cache up to the ReadyForQuery, and sess_server_ready ends it (and
 * re-invalidates an open transaction's writes, as in transaction pooling).
 * Every statement sent publishes PEV_QUERY_START (invalidation); the key's
 * settings are the startup ones, so a session whose texts change a setting
 * of the key (sqlc) stops looking up. Named statements' texts are kept in
 * cl->prep for their Binds' invalidation (unknown when ambiguous).
 *
 * Owns: cl->sess_* and, for a staged session, cl->ep.in (held bytes) and
 * cl->ep.cap_* (a Query's or Parse's text being copied out for analytics
 * and the cache); with the cache, cl->want (its startup settings) and
 * cl->prep (named statements' texts).
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/txn_internal.h"
#include "dataplane/conn/conn_worker.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/rt/worker.h"
#include "dataplane/sql/sqlc.h"

#include <stdlib.h>
#include <string.h>

/* what a parked session may hold before it is closed (54000) */
#define SESS_HOLD_MAX (8u * 1024u * 1024u)
/* a request the cache may answer is held until whole up to this size */
#define SESS_CACHE_REQ_MAX (64u * 1024u)

/* cl->sess_cache: whether the session's state is one the cache key
 * describes (its startup settings, cl->want) */
enum sess_cache_state {
	SESS_CACHE_NEW, /* not looked at yet */
	SESS_CACHE_ON,  /* the key describes it: looked up and recorded */
	SESS_CACHE_OFF, /* it changed what the key cannot say: only invalidates */
};

/* cl->sess_fill: the server's answer to the request being recorded */
enum sess_fill_state {
	SESS_FILL_NONE,
	SESS_FILL_TEE, /* its messages go to the cache (sess_server_tee) */
	SESS_FILL_END, /* teed up to its ReadyForQuery, which ends it (sess_server_ready) */
};

bool sess_staged(const struct client *cl, const struct server *sv)
{
	if (cl->txn || cl->replication || cl->admin || cl->kf || !sv)
		return false;
	return cl->pc.active[PIPE_AT_MSG] || cl->pc.active[PIPE_AT_REQUEST] || sv->qev;
}

/* The cache applies to the client (its pipeline has the stage). */
static bool cache_on(const struct client *cl)
{
	return cl->pc.active[PIPE_AT_REQUEST];
}

static union pipe_slot *cache_slot(struct client *cl)
{
	return cl->pc.slot[PIPE_SLOT_CACHE].p ? &cl->pc.slot[PIPE_SLOT_CACHE] : NULL;
}

/* FNV-1a: the unnamed statement's identity (its Parse body after the name) */
static uint64_t body_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ? h : 1;
}

/* A text the session's server runs: if it may change a setting that is
 * part of the cache key, or what the key cannot describe (a temporary
 * table that shadows a table, the role), the session stops using the
 * cache; it still invalidates. The statements that pin a client in
 * transaction pooling, and every SET of a setting that can change rows. */
static void state_check(struct client *cl, const char *sql, size_t len)
{
	if (cl->sess_cache == SESS_CACHE_OFF || !sqlc_maybe_interesting(sql, len))
		return;
	struct sqlc_result *res = malloc(sizeof(*res));
	bool off = !res || sqlc_classify(sql, res) != 0 || res->more_stmts ||
	           (res->flags & SQLC_F_SET_CONFIG);
	for (int i = 0; !off && i < res->n; i++) {
		const struct sqlc_stmt *st = &res->stmts[i];
		switch (st->kind) {
		case SQLC_SET:
		case SQLC_SET_DEFAULT:
		case SQLC_RESET:
			off = st->name_incomplete || !cache_setting_neutral(st->name);
			break;
		case SQLC_RESET_ALL:
		case SQLC_DISCARD_ALL:
		case SQLC_DISCARD_TEMP:
		case SQLC_CREATE_TEMP:
		case SQLC_SESSION_AUTH:
			off = true;
			break;
		default:
			break; /* SET LOCAL ends with its transaction, inside which
			        * nothing is looked up */
		}
	}
	free(res);
	if (off) {
		cl->sess_cache = SESS_CACHE_OFF;
		log_debug("client %llu: session state changed: it no longer uses the cache",
		          (unsigned long long)cl->id);
	}
}

/* Every named statement's text is unknown from now on (until closed). */
static void prep_forget(struct client *cl)
{
	for (uint32_t i = 0; i < cl->prep.nbuckets; i++)
		for (struct prep_stmt *st = cl->prep.buckets[i]; st; st = st->next)
			st->body_len = 0;
}

/* A Parse the server gets (body whole): the unnamed statement it replaces,
 * or a named one's text (cl->prep) for the invalidation of its Binds. A
 * name seen twice becomes unknown (an entry without a body) until its
 * Close: the server refuses a duplicate and keeps the first. */
static void parse_sent(struct client *cl, const uint8_t *body, uint32_t len)
{
	const uint8_t *z = memchr(body, '\0', len);
	if (!z)
		return;
	const char *name = (const char *)body;
	uint32_t off = (uint32_t)(z + 1 - body);
	if (!name[0]) {
		cl->sess_unnamed = body_hash(body + off, len - off);
		return;
	}
	struct prep_stmt *st = prep_client_get(&cl->prep, name);
	if (st)
		st->body_len = 0;
	else
		prep_client_put(&cl->prep, name, body + off, len - off);
}

/* A Bind the server gets: the statement it runs, for invalidation (its
 * text when known; "" the unnamed one, whose Parse the cache saw; NULL:
 * anything). */
static void bind_sent(struct client *cl, struct server *sv, const uint8_t *body, size_t avail)
{
	const uint8_t *z1 = memchr(body, '\0', avail);
	const uint8_t *z2 = z1 ? memchr(z1 + 1, '\0', avail - (size_t)(z1 + 1 - body)) : NULL;
	if (!z2) {
		tx_ev_start(cl, sv, 'B', NULL, NULL, 0, false);
		return;
	}
	const char *name = (const char *)z1 + 1;
	struct prep_stmt *st = name[0] ? prep_client_get(&cl->prep, name) : NULL;
	if (st && st->body_len)
		tx_ev_start(cl, sv, 'B', name, (const char *)st->body, st->body_len, true);
	else
		tx_ev_start(cl, sv, 'B', name[0] ? NULL : "", NULL, 0, true);
}

/* a text copied out whole: analytics learns what the server runs, the
 * cache what it writes and what it does to the session */
static void text_captured(struct client *cl, struct server *sv)
{
	struct endpoint *ep = &cl->ep;
	bool cache = cache_on(cl);
	if (!sv->qev && !cache)
		return;
	if (ep->cap_type == 'Q') {
		if (cache) {
			cl->sess_unnamed = 0; /* a simple Query drops the unnamed statement */
			const char *e = memchr(ep->cap_buf, '\0', ep->cap_got);
			if (e)
				state_check(cl, (const char *)ep->cap_buf,
				            (size_t)(e - (const char *)ep->cap_buf));
			else
				cl->sess_cache = SESS_CACHE_OFF;
		}
		tx_ev_start(cl, sv, 'Q', NULL, (const char *)ep->cap_buf, ep->cap_got, true);
	} else if (ep->cap_type == 'P') {
		const uint8_t *z = memchr(ep->cap_buf, '\0', ep->cap_got);
		if (!z) {
			if (cache) {
				cl->sess_cache = SESS_CACHE_OFF;
				prep_forget(cl);
			}
			return;
		}
		const char *text = (const char *)z + 1;
		uint32_t tlen = ep->cap_got - (uint32_t)(z + 1 - ep->cap_buf);
		if (cache) {
			parse_sent(cl, ep->cap_buf, ep->cap_got);
			const char *e = memchr(text, '\0', tlen);
			if (e)
				state_check(cl, text, (size_t)(e - text));
			else
				cl->sess_cache = SESS_CACHE_OFF;
		}
		tx_ev_start(cl, sv, 'P', (const char *)ep->cap_buf, text, tlen, true);
	}
}

static void capture_more(struct client *cl, struct server *sv, const uint8_t *p, size_t n)
{
	struct endpoint *ep = &cl->ep;
	size_t take = ep->cap_len - ep->cap_got;
	if (take > n)
		take = n;
	memcpy(ep->cap_buf + ep->cap_got, p, take);
	ep->cap_got += (uint32_t)take;
	if (ep->cap_got == ep->cap_len) {
		ep->cap_len = 0;
		text_captured(cl, sv);
	}
}

/* A message the server will get: what analytics follows of it. */
static void note_sent(struct client *cl, struct server *sv, uint8_t t, uint32_t len,
                      const uint8_t *body, size_t avail)
{
	if (t == 'Q' || t == 'S' || t == 'F')
		cl->sess_due++; /* one ReadyForQuery each */
	bool cache = cache_on(cl);
	if (!sv->qev && !cache)
		return;
	if (t == 'S') {
		if (sv->qev)
			tx_ev_start(cl, sv, 'S', NULL, NULL, 0, true);
		return;
	}
	if (cache && t == 'B') {
		bind_sent(cl, sv, body, avail);
		return;
	}
	if (cache && t == 'F') {
		cl->sess_cache = SESS_CACHE_OFF; /* a function by its oid may change anything */
		return;
	}
	if (cache && t == 'C') {
		/* a closed statement may be parsed again under its name */
		if (avail == len && len >= 2 && body[0] == 'S' && body[len - 1] == '\0')
			prep_client_del(&cl->prep, (const char *)body + 1);
		else if (avail < len || len < 1 || body[0] != 'P')
			prep_forget(cl);
		return;
	}
	if (t != 'Q' && t != 'P')
		return;
	struct endpoint *ep = &cl->ep;
	if (len > EP_CAPTURE_MAX || (!ep->cap_buf && !(ep->cap_buf = malloc(EP_CAPTURE_MAX)))) {
		if (cache) {
			/* not seen: what it does to the session is unknown, and it
			 * may write anything */
			cl->sess_cache = SESS_CACHE_OFF;
			cl->sess_unnamed = 0;
			if (t == 'P') {
				prep_forget(cl); /* whichever name it takes */
				tx_ev_start(cl, sv, 'P', NULL, NULL, 0, false);
			}
		}
		if (t == 'Q')
			tx_ev_start(cl, sv, 'Q', NULL, "", 0,
			            false); /* its ReadyForQuery still comes */
		return;
	}
	ep->cap_type = t;
	ep->cap_len = len;
	ep->cap_got = 0;
	if (len == 0) {
		text_captured(cl, sv);
		return;
	}
	capture_more(cl, sv, body, avail);
}

/* How much of p[0, n) is a request the cache may answer: a simple Query,
 * or an extended batch Parse (of the unnamed statement) Bind [Describe]
 * Execute Sync. Returns its length, 0 when there is none, -1 when its
 * start is here and the rest is still to come. */
static int64_t cache_candidate(const uint8_t *p, size_t n)
{
	static const char shape[] = "PBDES";
	size_t off = 0, k = 0;
	while (off + 5 <= n) {
		uint8_t t = p[off];
		uint32_t ml = pgw_get_u32(p + off + 1);
		if (ml < 4 || off + 1 + (size_t)ml > SESS_CACHE_REQ_MAX)
			return 0;
		if (off == 0 && t == 'Q')
			return n >= 1 + (size_t)ml ? (int64_t)(1 + ml) : -1;
		while (shape[k] && shape[k] != t && shape[k] == 'D')
			k++;
		if (!shape[k] || shape[k] != t)
			return 0;
		if (t == 'P' && n > off + 5 && p[off + 5] != '\0')
			return 0; /* a named statement: the server must get its Parse */
		if (n < off + 1 + (size_t)ml)
			return -1;
		off += 1 + (size_t)ml;
		if (t == 'S')
			return (int64_t)off;
		k++;
	}
	return -1;
}

static __thread struct sbuf sess_ans; /* a hit's answer, reused */

/* A request starts at p[0, n) (the server owes the client nothing): the
 * result cache's stage (PIPE_AT_REQUEST) decides. Returns the bytes it
 * answered (consumed), 0 when it goes to the server (recorded when the
 * stage asks), -1 when it is held: parked (single flight, a catalog read)
 * or not whole yet. */
static int64_t cache_request(struct client *cl, struct server *sv, const uint8_t *p, size_t n)
{
	if (cl->sess_cache == SESS_CACHE_NEW) {
		/* the key's settings are its startup ones (cl->want), as in
		 * transaction pooling; what would pin it there keeps it out */
		bool ok = tx_client_init(cl) == 0 && !cl->pins;
		cl->pins = 0;
		cl->sess_cache = ok ? SESS_CACHE_ON : SESS_CACHE_OFF;
	}
	/* outside a transaction block, nothing owed: the answer is the next */
	if (cl->sess_cache != SESS_CACHE_ON || cl->sess_due || cl->sess_fill ||
	    (sv->tx_status && sv->tx_status != 'I'))
		return 0;
	int64_t total = cache_candidate(p, n);
	if (total <= 0)
		return total;
	if (p[0] == 'P') {
		/* a hit leaves the server's unnamed statement as it is: only
		 * when it is this very one (the client may Bind it again) */
		uint32_t ml = pgw_get_u32(p + 1);
		if (ml < 5 || body_hash(p + 6, ml - 5) != cl->sess_unnamed)
			return 0;
	}
	struct req r;
	tx_req_init(cl, sv, &r);
	r.stmt_body = NULL; /* a Bind without its Parse is not looked up here */
	sbuf_reset(&sess_ans);
	r.out = &sess_ans;
	r.now_ns = conn_now_ns();
	r.type = p[0];
	r.msg = p;
	r.msg_len = pgw_get_u32(p + 1) + 1;
	r.whole = true;
	r.starts = true;
	r.req_buf = p;
	r.req_len = (uint32_t)total;
	r.again = cl->cache_nowait; /* woken from a wait: not again */
	cl->cache_nowait = false;
	cl->pc.rflags &= (uint8_t)~PIPE_RF_PRIMARY_ONLY;
	union pipe_slot *slot;
	switch (pipe_run(cl->pipe, PIPE_AT_REQUEST, &r)) {
	case PIPE_ANSWERED:
		if (!r.out_consumed || r.out_consumed > (uint64_t)total)
			return 0;
		if (r.out->len && !r.out->oom)
			ep_send_bytes(&cl->ep, r.out->p, r.out->len);
		if (sess_ans.cap > (1u << 20))
			sbuf_free(&sess_ans);
		return r.out_consumed;
	case PIPE_PARK:
		if (r.park.kind != PIPE_WAKE_TOKEN)
			return 0;
		/* as in transaction pooling (txn_req.c): the wait is bounded,
		 * then it asks its server */
		cl->pc.parked = PIPE_WAKE_TOKEN + 1;
		cl->pc.park_token = r.park.token;
		cl->pc.wake_ns = r.now_ns + (uint64_t)CACHE_WAIT_MAX_SECS * 1000000000ull;
		cw_of(cl->w)->token_waiters++;
		return -1;
	case PIPE_CONTINUE:
		slot = cache_slot(cl);
		if (slot && cache_leading(slot)) {
			const struct cfg *c = cl->snap->cfg;
			cache_arm(slot, c, sv->node_idx == route_primary(c),
			          sv->tx_status ? sv->tx_status : 'I', p, (uint32_t)total);
			if (cache_arming(slot))
				cl->sess_fill = SESS_FILL_TEE;
			cache_request_end(slot);
		}
		return 0;
	case PIPE_ERROR:
		break;
	}
	return 0;
}

/* Runs data[0, n) (whole headers only; a trailing partial one is left):
 * stages per message, bytes kept or dropped. Kept runs go to out (or, when
 * everything is kept, *all_kept is set and out stays empty). Returns the
 * bytes consumed; the rest is to be held. */
static size_t run(struct client *cl, struct server *sv, const uint8_t *data, size_t n,
                  struct sbuf *out, bool *all_kept, bool *closed)
{
	struct pgw_scan *sc = &cl->ep.scan;
	size_t pos = 0, keep_from = 0;
	bool all = true;
	bool stages = cl->pc.active[PIPE_AT_MSG];
	*closed = false;
#define FLUSH_KEPT(to)                                                                             \
	do {                                                                                       \
		if ((to) > keep_from)                                                              \
			sbuf_append(out, data + keep_from, (to)-keep_from);                        \
	} while (0)
	/* the rest of the message being passed or dropped */
	if (sc->left) {
		size_t take = sc->left < n ? sc->left : n;
		if (cl->sess_skip) {
			all = false;
			keep_from = take;
		} else if (cl->ep.cap_len) {
			capture_more(cl, sv, data, take);
		}
		sc->left -= (uint32_t)take;
		if (!sc->left)
			cl->sess_skip = false;
		pos = take;
	}
	while (pos < n) {
		if (n - pos < 5) {
			/* a header split between reads: held until whole */
			FLUSH_KEPT(pos);
			*all_kept = false;
			return pos;
		}
		size_t hstart = pos;
		enum pgw_scan_ev ev = pgw_scan(sc, data, n, &pos);
		if (ev == PGW_SCAN_BAD) {
			cl_close(cl, "08P01", "invalid message length from client");
			*closed = true;
			return n;
		}
		uint8_t t = sc->type;
		uint32_t len = sc->len;
		char why[96];
		const char *bad = ep_frontend_check(t, len + 4, why, sizeof(why));
		if (bad || t == PGW_MSG_TERMINATE) {
			/* before any of it reaches the server, as client.c's relay */
			FLUSH_KEPT(hstart);
			if (out->len && !out->oom) {
				sv->clean = false;
				conn_ctr_client_sent(sv, (uint32_t)out->len);
				ep_send_bytes(&sv->ep, out->p, out->len);
			}
			out->len = 0;
			cl_close(cl, bad ? "08P01" : NULL, bad);
			*closed = true;
			return n;
		}
		bool drop = cl->sess_drop;
		uint8_t *repl = NULL;
		uint32_t repl_len = 0;
		if (!drop && stages) {
			struct req r;
			tx_req_init(cl, sv, &r);
			r.type = t;
			r.msg = data + hstart;
			r.msg_len = len + 5;
			r.whole = n - hstart >= (size_t)len + 5;
			r.starts = pipe_starts(&cl->pc, t);
			if (r.starts)
				r.now_ns = conn_now_ns();
			enum pipe_verdict v = pipe_run(cl->pipe, PIPE_AT_MSG, &r);
			/* a plugin's rewrite (the rewrite rules do not apply in session
			 * mode): sent in place of a whole message */
			if (r.replace && v == PIPE_CONTINUE && r.whole)
				repl = r.replace, repl_len = r.replace_len;
			else
				free(r.replace);
			if (v == PIPE_ERROR && !r.starts && t != 'Q' && t != 'F') {
				/* the batch's earlier messages are on the server: see
				 * tx_refuse_mid_batch */
				tx_refuse_mid_batch(cl, &r.err);
				*closed = true;
				return n;
			}
			if (v == PIPE_ERROR && cl->sess_due) {
				/* answered once the server owes the client nothing */
				struct pipe_park p = {.kind = PIPE_WAKE_TOKEN, .token = sv};
				r.park = p;
				v = PIPE_PARK;
			}
			if (v == PIPE_PARK) {
				tx_park(cl, &r.park);
				sc->left = 0;       /* judged again from its header when woken */
				FLUSH_KEPT(hstart); /* keep_from is 0 while all */
				*all_kept = false;
				return hstart;
			}
			if (v == PIPE_ERROR || v == PIPE_ANSWERED) {
				struct sbuf *a = r.out;
				if (v == PIPE_ERROR) {
					uint8_t buf[700];
					struct pgw_out e;
					pgw_out_init(&e, buf, sizeof(buf));
					pgw_error(&e, "ERROR", r.err.sqlstate, r.err.msg,
					          t == 'Q' || t == 'F' ? r.err.hint : NULL);
					if (t == 'Q' || t == 'F')
						pgw_ready(&e, r.tx_status);
					else
						cl->sess_drop = true; /* to its Sync */
					if (!e.overflow)
						ep_send_bytes(&cl->ep, buf, e.len);
					tx_ev_error(cl, r.err.sqlstate, r.err.msg);
				} else if (a && a->len) {
					ep_send_bytes(&cl->ep, a->p, a->len);
				}
				drop = true;
			}
		}
		if (!drop && !repl && cache_on(cl) && (t == 'Q' || t == 'P') &&
		    pipe_starts(&cl->pc, t)) {
			int64_t k = cache_request(cl, sv, data + hstart, n - hstart);
			if (k < 0) {
				/* parked, or the rest of the request is still to come */
				sc->left = 0; /* judged again from its header */
				FLUSH_KEPT(hstart);
				*all_kept = false;
				return hstart;
			}
			if (k > 0) {
				/* answered from the cache: none of it goes to the server */
				all = false;
				FLUSH_KEPT(hstart);
				pipe_request_done(&cl->pc);
				pos = hstart + (size_t)k;
				keep_from = pos;
				sc->left = 0;
				continue;
			}
		}
		if (drop) {
			all = false;
			FLUSH_KEPT(hstart);
			if (cl->sess_drop && t == 'S') {
				/* the refused batch ends: its ReadyForQuery */
				uint8_t z[6] = {
				    'Z', 0, 0, 0, 5, sv->tx_status ? (uint8_t)sv->tx_status : 'I'};
				ep_send_bytes(&cl->ep, z, sizeof(z));
				cl->sess_drop = false;
			}
		} else if (repl) {
			/* the new message goes instead of this whole one */
			all = false;
			FLUSH_KEPT(hstart);
			sbuf_append(out, repl, repl_len);
			note_sent(cl, sv, t, repl_len - 5, repl + 5, repl_len - 5);
			free(repl);
			pipe_msg_passed(&cl->pc, t);
			pos = hstart + 5 + len;
			keep_from = pos;
			sc->left = 0;
			continue;
		} else {
			note_sent(cl, sv, t, len, data + pos, n - pos < len ? n - pos : len);
		}
		pipe_msg_passed(&cl->pc, t);
		/* over its body (as far as it is here) */
		size_t body = n - pos < len ? n - pos : len;
		pos += body;
		sc->left = len - (uint32_t)body;
		if (drop) {
			keep_from = pos;
			cl->sess_skip = sc->left > 0; /* the rest of it goes too */
		}
	}
	if (!all)
		FLUSH_KEPT(pos);
	*all_kept = all;
	return pos;
#undef FLUSH_KEPT
}

static __thread struct sbuf sess_out;

void sess_worker_exit(void)
{
	sbuf_free(&sess_out);
	sbuf_free(&sess_ans);
}

static void send_out(struct client *cl, struct server *sv)
{
	if (sess_out.len && !sess_out.oom) {
		conn_ctr_client_sent(sv, (uint32_t)sess_out.len);
		sv->clean = false;
		ep_send_bytes(&sv->ep, sess_out.p, sess_out.len);
	}
	if (sess_out.cap > (1u << 20))
		sbuf_free(&sess_out);
	sbuf_reset(&sess_out);
	if (sv->ep.q_bytes > EP_HIGH_WATER && !cl->ep.paused) {
		cl->ep.paused = true;
		io_recv_stop(&cl->ep.sock);
	}
}

/* Held bytes: stop reading more while parked. */
static void hold_check(struct client *cl)
{
	if (cl->pc.parked && !cl->ep.paused && cl->state == CL_ACTIVE) {
		cl->ep.paused = true;
		io_recv_stop(&cl->ep.sock);
	}
}

void sess_input(struct client *cl)
{
	struct server *sv = cl->server;
	if (cl->pc.parked || cl->state != CL_ACTIVE || !sv)
		return;
	bool all = false, closed = false;
	sbuf_reset(&sess_out);
	size_t used = run(cl, sv, cl->ep.in, cl->ep.in_len, &sess_out, &all, &closed);
	if (closed)
		return;
	if (all)
		sbuf_append(&sess_out, cl->ep.in, used);
	ep_in_consume(&cl->ep, (uint32_t)used);
	send_out(cl, sv);
	hold_check(cl);
	if (!cl->pc.parked && cl->ep.paused && sv->ep.q_bytes <= EP_LOW_WATER)
		cl_resume_source(cl);
}

void sess_client_data(struct client *cl, struct io_chunk *c)
{
	struct server *sv = cl->server;
	cl->ep.in_max = SESS_HOLD_MAX;
	if (cl->ep.in_len || cl->pc.parked) {
		/* bytes are held: these go behind them */
		int r = ep_in_append(&cl->ep, c->data + c->off, c->len);
		io_chunk_release(cl->w->loop, c);
		if (r < 0) {
			cl_close(cl, "54000", "too much data sent while the session was held");
			return;
		}
		sess_input(cl);
		return;
	}
	bool all = false, closed = false;
	sbuf_reset(&sess_out);
	size_t used = run(cl, sv, c->data + c->off, c->len, &sess_out, &all, &closed);
	if (closed) {
		io_chunk_release(cl->w->loop, c);
		return;
	}
	if (all && used == c->len) {
		/* the common case: the chunk goes on as it arrived */
		sv_client_data(sv, c);
		if (sv->ep.q_bytes > EP_HIGH_WATER && !cl->ep.paused) {
			cl->ep.paused = true;
			io_recv_stop(&cl->ep.sock);
		}
		return;
	}
	if (all)
		sbuf_append(&sess_out, c->data + c->off, used);
	int r = used < c->len
	            ? ep_in_append(&cl->ep, c->data + c->off + used, c->len - (uint32_t)used)
	            : 0;
	io_chunk_release(cl->w->loop, c);
	send_out(cl, sv);
	if (r < 0) {
		cl_close(cl, "54000", "too much data sent while the session was held");
		return;
	}
	hold_check(cl);
}

void sess_server_tee(struct client *cl, struct server *sv, const uint8_t *data, size_t pos,
                     size_t end)
{
	union pipe_slot *slot = cache_slot(cl);
	if (!slot || cl->sess_fill != SESS_FILL_TEE)
		return;
	/* where the relay's scan of the server's messages is (it runs on this
	 * chunk right after) */
	struct pgw_scan sc = sv->ep.scan;
	if (sc.left) {
		size_t take = sc.left < end - pos ? sc.left : end - pos;
		cache_tee_body(slot, data + pos, take);
		sc.left -= (uint32_t)take;
		pos += take;
	}
	while (pgw_scan(&sc, data, end, &pos) == PGW_SCAN_HEADER) {
		if (sc.type == PGW_MSG_READY) {
			cl->sess_fill = SESS_FILL_END; /* its status comes with sess_server_ready */
			return;
		}
		uint32_t l = sc.len + 4;
		uint8_t hdr[5] = {sc.type, (uint8_t)(l >> 24), (uint8_t)(l >> 16),
		                  (uint8_t)(l >> 8), (uint8_t)l};
		cache_tee_header(slot, RQ_F_FILL, sc.type, true, hdr);
		size_t take = sc.left < end - pos ? sc.left : end - pos;
		cache_tee_body(slot, data + pos, take);
		sc.left -= (uint32_t)take;
		pos += take;
	}
}

void sess_server_error(struct client *cl, const uint8_t *body, uint32_t len)
{
	if (!cache_on(cl))
		return;
	/* a Parse it may have refused: its unnamed statement is not known */
	cl->sess_unnamed = 0;
	const char *code = pgw_error_field(body, len, 'C');
	if (!code || strcmp(code, "42P05") != 0)
		return;
	/* a name already taken (by a SQL PREPARE, say): the server keeps its
	 * own statement under it; which name is not said, so all are unknown
	 * until closed */
	prep_forget(cl);
}

void sess_server_ready(struct client *cl, struct server *sv)
{
	union pipe_slot *slot = cache_slot(cl);
	if (slot) {
		/* the recorded answer ends; an open transaction's writes are
		 * invalidated again (cache.c) */
		cache_ready(slot, cl->sess_fill == SESS_FILL_END ? RQ_F_FILL : 0,
		            sv->tx_status ? sv->tx_status : 'I');
		if (cl->sess_fill == SESS_FILL_TEE)
			cache_fill_abort(slot);
	}
	cl->sess_fill = SESS_FILL_NONE;
	if (cl->sess_due)
		cl->sess_due--;
	if (!cl->sess_due && cl->pc.parked == PIPE_WAKE_TOKEN + 1 && cl->pc.park_token == sv) {
		/* a refused request waited for the answers before it: it goes
		 * on once the chunk with this ReadyForQuery has been passed to
		 * the client (the worker wakes it right after this event) */
		tx_unpark(cl);
		struct pipe_park now = {.kind = PIPE_WAKE_AT, .wake_ns = 0};
		tx_park(cl, &now);
	}
}
