/*
 * Session pooling with pipeline stages: the stages that need no server
 * switch (rate limits at PIPE_AT_MSG, analytics; the cache and plugins
 * later) run on a session's client messages when they are configured,
 * unless the session is spliced in the kernel (splice.c). Without them the
 * session relay stays the plain chunk forwarding of client.c.
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
 * Owns: cl->sess_* and, for a staged session, cl->ep.in (held bytes) and
 * cl->ep.cap_* (a Query's or Parse's text being copied out for analytics).
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/txn_internal.h"

#include "common/cfg.h"
#include "common/sbuf.h"
#include "dataplane/conn/txn_req.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/rt/worker.h"

#include <stdlib.h>
#include <string.h>

/* what a parked session may hold before it is closed (54000) */
#define SESS_HOLD_MAX (8u * 1024u * 1024u)

bool sess_staged(const struct client *cl, const struct server *sv)
{
	if (cl->txn || cl->replication || cl->admin || cl->kf || !sv)
		return false;
	return cl->pc.active[PIPE_AT_MSG] || sv->qev;
}

/* a text copied out whole: analytics learns what the server runs */
static void text_captured(struct client *cl, struct server *sv)
{
	struct endpoint *ep = &cl->ep;
	if (!sv->qev)
		return;
	if (ep->cap_type == 'Q') {
		tx_ev_start(cl, sv, 'Q', NULL, (const char *)ep->cap_buf, ep->cap_got, true);
	} else if (ep->cap_type == 'P') {
		const uint8_t *z = memchr(ep->cap_buf, '\0', ep->cap_got);
		if (z)
			tx_ev_start(cl, sv, 'P', (const char *)ep->cap_buf, (const char *)z + 1,
			            ep->cap_got - (uint32_t)(z + 1 - ep->cap_buf), true);
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
	if (!sv->qev)
		return;
	if (t == 'S') {
		tx_ev_start(cl, sv, 'S', NULL, NULL, 0, true);
		return;
	}
	if (t != 'Q' && t != 'P')
		return;
	struct endpoint *ep = &cl->ep;
	if (len > EP_CAPTURE_MAX || (!ep->cap_buf && !(ep->cap_buf = malloc(EP_CAPTURE_MAX)))) {
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
			free(r.replace); /* a stage that rewrites does not apply in session mode */
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
				} else if (a && a->len) {
					ep_send_bytes(&cl->ep, a->p, a->len);
				}
				drop = true;
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

void sess_server_ready(struct client *cl, struct server *sv)
{
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
