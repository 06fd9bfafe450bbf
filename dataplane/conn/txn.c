/*
 * Transaction and statement pooling. A client holds a server only while a
 * transaction (or, in statement mode, a statement) is open. Every request
 * sent to the server is queued with what should happen to its answer, so
 * the proxy can prepare a client's named statements on whichever server it
 * lands on, answer Close itself, and replay the client's settings first,
 * while the client sees exactly the answers it asked for, in order.
 */
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/conn/txn_internal.h"

#include "dataplane/conn/txn_req.h"
#include "dataplane/plugin/plugin_set.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/route.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/sql/sqlc.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Client messages up to TX_ASSEMBLE_MAX are assembled whole in the
 * client's buffer and handled like any other (tracked, rewritten, cached,
 * replayable). Larger ones (any size PostgreSQL accepts, up to 1 GB) are
 * streamed to the server as they arrive (stream_start). Reading stops
 * while more than TX_ASSEMBLE_MAX waits (for a server, say); with
 * io_uring, what the kernel had already received still arrives (about
 * 250 KB seen), so the hard limit, past which the client is closed with
 * 54000, leaves room for a socket buffer's worth. */
#define TX_ASSEMBLE_MAX (256u * 1024u)
#define TX_INBUF_MAX    (TX_ASSEMBLE_MAX + 8u * 1024u * 1024u)

uint64_t g_pin_count[PIN_COUNT];

static const char *const pin_names[PIN_COUNT] = {
    "advisory_lock", "listen",       "hold_cursor", "temp_table",
    "sql_prepare",   "session_auth", "untracked",
};

const char *pin_reason_str(enum pin_reason r)
{
	return (unsigned)r < PIN_COUNT ? pin_names[r] : "?";
}

int tx_client_init(struct client *cl)
{
	guc_init(&cl->want);
	guc_init(&cl->startup);
	const char *names[PGW_MAX_PARAMS], *values[PGW_MAX_PARAMS];
	for (int i = 0; i < cl->n_params; i++) {
		names[i] = cl->params[i].name;
		values[i] = cl->params[i].value;
	}
	int r = guc_from_startup(&cl->startup, names, values, cl->n_params);
	if (r == 0)
		r = guc_copy(&cl->want, &cl->startup);
	const struct guc_ent *scs = guc_get(&cl->startup, "standard_conforming_strings");
	if (scs && strcmp(scs->value, "on") != 0)
		cl->pins |= 1u << PIN_UNTRACKED; /* the SQL scanner assumes it is on */
	return r;
}

void tx_client_free(struct client *cl)
{
	guc_free(&cl->want);
	guc_free(&cl->startup);
	prep_client_free(&cl->prep);
	prep_client_free(&cl->sqlprep);
	prep_client_free(&cl->rawprep);
	if (cl->txn && (cl->tx_direct || cl->tx_copied))
		log_debug(
		    "client %llu: relayed %llu bytes in the chunks they arrived in, %llu through "
		    "a copy, %llu assembled",
		    (unsigned long long)cl->id, (unsigned long long)cl->tx_direct,
		    (unsigned long long)cl->tx_copied, (unsigned long long)cl->ep.in_copied);
	tx_track_free(cl);
	if (tx_cache_parked(cl) && cl->w)
		cw_of(cl->w)->token_waiters--;
	tx_unpark(cl);
}

void tx_server_reset_state(struct server *sv)
{
	guc_free(&sv->applied);
	prep_server_free(&sv->prep);
	for (uint32_t i = 0; i < sv->sqlprep_n; i++)
		free(sv->sqlprep_names[i]);
	free(sv->sqlprep_names);
	free(sv->sqlprep_keys);
	sv->sqlprep_names = NULL;
	sv->sqlprep_keys = NULL;
	sv->sqlprep_n = sv->sqlprep_cap = 0;
	free(sv->batch);
	sv->batch = NULL;
	sv->batch_len = sv->batch_cap = 0;
	free(sv->rq);
	sv->rq = NULL;
	sv->rq_head = sv->rq_len = sv->rq_cap = 0;
}

/* Idle outside a transaction, proven by a ReadyForQuery 'I' that answered
 * the last thing sent: extended messages without a Sync after it (a batch
 * that ended in Flush) may have opened a transaction no ReadyForQuery
 * reported. */
bool tx_server_clean(const struct server *sv)
{
	return sv->rq_len == 0 && sv->tx_status == 'I' && sv->hdr_n == 0 && sv->cur_left == 0 &&
	       sv->ep.q_head == NULL && !sv->skip_to_sync && !sv->rx_partial && !sv->open_batch;
}

bool tx_client_answers_due(const struct server *sv)
{
	for (uint32_t i = 0; i < sv->rq_len; i++)
		if (sv->rq[(sv->rq_head + i) % sv->rq_cap].act != RQ_DROP)
			return true;
	return false;
}

/* ------------------------------------------------------------ request queue */

int tx_rq_push(struct server *sv, uint8_t kind, uint8_t act, uint8_t synth, uint8_t flags,
               uint64_t key)
{
	if (sv->rq_len == sv->rq_cap) {
		uint32_t cap = sv->rq_cap ? sv->rq_cap * 2 : 16;
		struct rq *q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (uint32_t i = 0; i < sv->rq_len; i++)
			q[i] = sv->rq[(sv->rq_head + i) % sv->rq_cap];
		free(sv->rq);
		sv->rq = q;
		sv->rq_cap = cap;
		sv->rq_head = 0;
	}
	union pipe_slot *cs = tx_cache_slot(sv);
	if (cs && cache_arming(cs))
		flags |= RQ_F_FILL;
	sv->rq[(sv->rq_head + sv->rq_len) % sv->rq_cap] =
	    (struct rq){.kind = kind, .act = act, .synth = synth, .flags = flags, .key = key};
	sv->rq_len++;
	return 0;
}

static struct rq *rq_first(struct server *sv)
{
	return sv->rq_len ? &sv->rq[sv->rq_head] : NULL;
}

static void rq_pop(struct server *sv)
{
	if (!sv->rq_len)
		return;
	if ((sv->rq[sv->rq_head].flags & RQ_F_GUC) && sv->client)
		tx_guc_popped(sv->client); /* its settings: done now or never */
	sv->rq_head = (sv->rq_head + 1) % sv->rq_cap;
	sv->rq_len--;
}

/* ------------------------------------------------------------ output builder */

static void ob_append(struct outb *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		uint8_t *b = realloc(o->buf, cap);
		if (!b) {
			o->oom = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void ob_start_copy(struct outb *o)
{
	if (o->copying)
		return;
	o->copying = true;
	if (o->c && o->zc_end > o->c->off)
		ob_append(o, o->c->data + o->c->off, o->zc_end - o->c->off);
}

static void ob_keep(struct outb *o, size_t a, size_t b)
{
	if (a == b)
		return;
	if (!o->copying && a == o->zc_end) {
		o->zc_end = b;
		return;
	}
	ob_start_copy(o);
	ob_append(o, o->c->data + a, b - a);
}

static void ob_drop(struct outb *o, size_t a, size_t b)
{
	if (a != b)
		ob_start_copy(o);
}

void tx_ob_synth(struct outb *o, const void *p, size_t n)
{
	ob_start_copy(o);
	ob_append(o, p, n);
}

/* Hands the result to the client (or drops it), releasing the chunk. */
static void ob_finish(struct outb *o, struct client *cl, struct io_loop *l)
{
	struct io_chunk *c = o->c;
	if (!o->copying) {
		if (c) {
			c->len = (uint32_t)(o->zc_end - c->off);
			if (cl && c->len)
				cl_server_data(cl, c);
			else
				io_chunk_release(l, c);
		}
		return;
	}
	if (c)
		io_chunk_release(l, c);
	if (cl && o->len && !o->oom) {
		struct io_chunk *n = io_chunk_new((uint32_t)o->len);
		if (n) {
			memcpy(n->data, o->buf, o->len);
			n->len = (uint32_t)o->len;
			cl_server_data(cl, n);
		}
	}
	free(o->buf);
}

static void synth_msg(struct outb *o, uint8_t type, const void *body, uint32_t len)
{
	uint8_t hdr[5] = {type, (uint8_t)((len + 4) >> 24), (uint8_t)((len + 4) >> 16),
	                  (uint8_t)((len + 4) >> 8), (uint8_t)(len + 4)};
	tx_ob_synth(o, hdr, 5);
	if (len)
		tx_ob_synth(o, body, len);
}

/* Emits answers the proxy owes for requests now at the head of the queue. */
static void emit_head_synths(struct server *sv, struct outb *o)
{
	struct rq *h;
	while ((h = rq_first(sv)) && h->act == RQ_SYNTH) {
		if (h->kind == RQ_QUERY) {
			/* a whole simple query answered by the proxy (SQL DEALLOCATE
			 * of a protocol-level statement): its tag, then the status
			 * the requests before it left */
			synth_msg(o, 'C', "DEALLOCATE", 11);
			uint8_t z = sv->tx_status ? (uint8_t)sv->tx_status : 'I';
			synth_msg(o, 'Z', &z, 1);
			rq_pop(sv);
			sv->resp_fwd += 2;
			continue;
		}
		synth_msg(o, h->synth, NULL, 0);
		if (h->flags & RQ_F_FILL)
			cache_tee_synth(tx_cache_slot(sv), h->synth);
		if (h->kind == RQ_PARSE)
			sv->resp_synth_parse++;
		rq_pop(sv);
		sv->resp_fwd++;
	}
}

/* ------------------------------------------------------------ login, release */

static void finish_login(struct client *cl, struct server *sv)
{
	uint8_t buf[8192];
	struct pgw_out o;
	pgw_out_init(&o, buf, sizeof(buf));
	for (int i = 0; i < sv->n_params; i++)
		pgw_param_status(&o, sv->param_name[i], sv->param_value[i]);
	pgw_key_data(&o, cl->cancel_pid, cl->cancel_key);
	pgw_ready(&o, 'I');
	if (!o.overflow)
		ep_send_bytes(&cl->ep, buf, o.len);
	cl->login_pending = false;
	cl->state = CL_ACTIVE;
}

static void park_server(struct server *sv);

/* Gives the server back when nothing ties the client to it any more. */
static void maybe_release(struct client *cl, struct server *sv)
{
	if (cl->notify_len)
		cl_flush_notify(cl); /* a pinned client gets them between requests */
	if (cl->server != sv || cl->pins || cl->ep.in_len || cl->stream_left ||
	    !tx_server_clean(sv) || cl->login_pending)
		return;
	cl->server = NULL;
	sv->client = NULL;
	cancel_set_target(cl, NULL);
	union pipe_slot *cs = &cl->pc.slot[PIPE_SLOT_CACHE];
	if (cs->p)
		cache_fill_abort(cs); /* nothing left to record */
	park_server(sv);
	cl_flush_notify(cl);
}

static void park_server(struct server *sv)
{
	sv_release(sv); /* transaction mode: no reset query, just parked */
}

/* ------------------------------------------------------------ server -> client */

static void on_ready(struct client *cl, struct server *sv, struct rq popped, char status,
                     struct outb *o, bool emit_z)
{
	sv->tx_status = status;
	sv_node_ok(sv); /* the node answered (closes a half-open breaker) */
	if (popped.act == RQ_FWD && !(popped.flags & RQ_F_LOGIN)) {
		conn_ctr_ready(sv, status);
		if (sv->qev)
			tx_ev_ready(cl, sv);
	}
	if (popped.flags & RQ_F_LOGIN) {
		if (cl && cl->login_pending)
			finish_login(cl, sv);
		return;
	}
	if (popped.act != RQ_FWD)
		return;
	if (cl && cl->stmt_mode && status != 'I' && sv->rq_len == 0) {
		/* statement pooling cannot keep a transaction open: roll it back and
		 * tell the client, whose connection stays usable */
		uint8_t buf[512];
		struct pgw_out e;
		pgw_out_init(&e, buf, sizeof(buf));
		pgw_error(
		    &e, "ERROR", "0A000",
		    "transaction blocks are not allowed in statement pooling mode",
		    "Run each statement on its own, or use pool_mode.mode = \"transaction\".");
		tx_ob_synth(o, buf, e.len);
		tx_ev_error(cl, "0A000",
		            "transaction blocks are not allowed in statement pooling mode");
		uint8_t z[6] = {'Z', 0, 0, 0, 5, 'I'};
		tx_ob_synth(o, z, 6);
		uint8_t q[32];
		pgw_out_init(&e, q, sizeof(q));
		pgw_query(&e, "ROLLBACK");
		tx_rq_push(sv, RQ_QUERY, RQ_DROP, 0, 0, 0);
		ep_send_bytes(&sv->ep, q, e.len);
		return;
	}
	if (emit_z) {
		uint8_t z[6] = {'Z', 0, 0, 0, 5, (uint8_t)status};
		tx_ob_synth(o, z, 6);
	}
}

/* Decides, at a message header, what happens to the message and to the
 * queue. Returns the action for its bytes; *pop says the message ends the
 * head request. */
static uint8_t classify_response(struct server *sv, uint8_t type, bool *pop)
{
	struct rq *h = rq_first(sv);
	*pop = false;
	switch (type) {
	case 'N':
	case 'S':
		return h && h->act == RQ_DROP ? RQ_DROP : RQ_FWD;
	case 'A':
		return RQ_FWD; /* notifications always belong to the client */
	default:
		break;
	}
	if (!h)
		return RQ_FWD; /* unsolicited, e.g. a FATAL before the server closes */
	switch (type) {
	case '1':
	case '2':
	case '3':
	case 'n':
		*pop = true;
		break;
	case 'T':
		*pop = h->kind == RQ_DESCRIBE;
		break;
	case 'C':
	case 'I':
	case 's':
		*pop = h->kind == RQ_EXECUTE;
		break;
	case 'Z':
		*pop = true;
		break;
	default:
		break;
	}
	return h->act == RQ_SYNTH ? RQ_FWD : h->act;
}

/* An ErrorResponse in the extended protocol: the server skips to Sync. */
static bool handle_error(struct server *sv)
{
	struct rq *h = rq_first(sv);
	if (!h)
		return true;
	if (h->kind == RQ_QUERY || h->kind == RQ_FUNC || h->kind == RQ_SYNC)
		return h->act != RQ_DROP;
	bool forward = h->act != RQ_DROP || h->kind == RQ_PARSE;
	while ((h = rq_first(sv)) && h->kind != RQ_SYNC) {
		if (h->kind == RQ_PARSE && h->key)
			prep_server_forget(&sv->prep, h->key);
		rq_pop(sv);
	}
	if (!h)
		sv->skip_to_sync = true;
	return forward;
}

static void set_server_param(struct server *sv, const uint8_t *body, uint32_t len);
static void replay_batch(struct client *cl, struct server *sv);

/* PostgreSQL's answer when a prepared statement's result columns changed
 * under it (ALTER TABLE ... ADD COLUMN): preparing it again fixes it. */
static bool is_result_type_change(const uint8_t *body, uint32_t len)
{
	const char *code = pgw_error_field(body, len, 'C');
	const char *msg = pgw_error_field(body, len, 'M');
	return code && msg && !strcmp(code, "0A000") &&
	       !strncmp(msg, "cached plan must not change result type", 39);
}

void tx_server_data(struct server *sv, struct io_chunk *c)
{
	conn_ctr_server_sent(sv, c->len);
	struct client *cl = sv->client;
	union pipe_slot *cs = tx_cache_slot(sv);
	struct outb o = {.c = c, .zc_end = c->off};
	size_t pos = c->off, end = (size_t)c->off + c->len;
	struct endpoint *ep = &sv->ep;
	bool release = false;

	emit_head_synths(sv, &o);
	while (pos < end) {
		/* the rest of a message that started earlier */
		if (sv->cur_left) {
			size_t take = end - pos < sv->cur_left ? end - pos : sv->cur_left;
			if (ep->cap_len && ep->cap_got < ep->cap_len) {
				size_t n = ep->cap_len - ep->cap_got < take
				               ? ep->cap_len - ep->cap_got
				               : take;
				memcpy(ep->cap_buf + ep->cap_got, c->data + pos, n);
				ep->cap_got += (uint32_t)n;
			}
			if (cs)
				cache_tee_body(cs, c->data + pos, take);
			if (sv->cur_act == RQ_FWD)
				ob_keep(&o, pos, pos + take);
			else
				ob_drop(&o, pos, pos + take);
			pos += take;
			sv->cur_left -= (uint32_t)take;
			if (sv->cur_left)
				break;
			goto message_done;
		}
		/* a header, possibly split across chunks */
		size_t hstart = pos;
		uint8_t had = sv->hdr_n;
		while (sv->hdr_n < 5 && pos < end)
			sv->hdr[sv->hdr_n++] = c->data[pos++];
		if (sv->hdr_n < 5) {
			ob_drop(&o, hstart, pos); /* held back until it is complete */
			break;
		}
		sv->hdr_n = 0;
		uint8_t type = sv->hdr[0];
		uint32_t mlen = pgw_get_u32(sv->hdr + 1);
		if (mlen < 4 || mlen > PGW_MAX_MESSAGE) {
			ob_finish(&o, cl, sv->w->loop);
			sv_close(sv);
			return;
		}
		mlen -= 4;
		bool pop;
		uint8_t act = classify_response(sv, type, &pop);
		log_debug("tx server %llu: '%c' len %u head %d/%d queue %u",
		          (unsigned long long)sv->id, type, mlen,
		          rq_first(sv) ? rq_first(sv)->kind : -1,
		          rq_first(sv) ? rq_first(sv)->act : -1, sv->rq_len);
		/* The client may have had ParseCompletes the proxy answered
		 * itself because the statement was already on this server
		 * (prepared there by any client): the replay does not repeat
		 * them (replay_quiet). Any other answer rules a replay out. */
		bool may_retry = false;
		if (type == 'E' && rq_first(sv) && rq_first(sv)->kind == RQ_BIND &&
		    rq_first(sv)->key && sv->resp_fwd == sv->resp_synth_parse && !sv->retried &&
		    sv->batch_sealed && !sv->batch_bad && sv->tx_status == 'I' &&
		    mlen <= EP_CAPTURE_MAX) {
			may_retry = true;
			sv->retry_key = rq_first(sv)->key;
		}
		if (type == 'E' && cl && cl->gpend && cl->gpend->n)
			tx_guc_error(cl);
		if (type == 'E' && !(rq_first(sv) && rq_first(sv)->kind == RQ_QUERY))
			act = handle_error(sv) ? RQ_FWD : RQ_DROP, pop = false;
		else if (type == 'E' && rq_first(sv))
			act = rq_first(sv)->act == RQ_DROP ? RQ_DROP : RQ_FWD;
		if (type == 'E' && act == RQ_DROP)
			log_warn("server %s:%d: a query the proxy injected failed", sv->node_host,
			         sv->node_port);
		/* ReadyForQuery passes as is in the common case, and is re-made by
		 * on_ready when the proxy must change or hold it back */
		struct rq *h0 = rq_first(sv);
		sv->z_raw = type == 'Z' && act == RQ_FWD && h0 && !(h0->flags & RQ_F_LOGIN) &&
		            !(cl && cl->stmt_mode) && !sv->retry_armed;
		sv->cur_act = type == 'Z' && !sv->z_raw ? RQ_DROP : act;
		/* held until we know whether it asks for a re-prepare */
		sv->e_hold = may_retry && act == RQ_FWD && sv->rq_len == 1;
		if (sv->e_hold)
			sv->cur_act = RQ_DROP;
		sv->cur_left = mlen;
		if (cs) {
			struct rq *hh = rq_first(sv);
			cache_tee_header(cs, hh && type != 'Z' ? hh->flags : 0, type,
			                 sv->cur_act == RQ_FWD, sv->hdr);
		}
		ep->cap_type = type;
		ep->cap_len = 0;
		bool for_analytics =
		    sv->qev && (type == 'C' || type == 'E') && sv->cur_act == RQ_FWD;
		/* a command tag tells COMMIT, ROLLBACK and SAVEPOINT to pending settings */
		bool for_guc = type == 'C' && cl && cl->gpend && cl->gpend->n;
		if ((type == 'Z' || type == 'S' || type == 'E' || sv->e_hold || for_analytics ||
		     for_guc) &&
		    mlen <= EP_CAPTURE_MAX) {
			if (!ep->cap_buf)
				ep->cap_buf = malloc(EP_CAPTURE_MAX);
			if (ep->cap_buf) {
				ep->cap_len = mlen;
				ep->cap_got = 0;
			}
		}
		ep->cap_type = type;
		sv->skip_pop = pop;
		if (had == 0) {
			if (sv->cur_act == RQ_FWD)
				ob_keep(&o, hstart, pos);
			else
				ob_drop(&o, hstart, pos);
		} else {
			ob_drop(&o, hstart, pos);
			if (sv->cur_act == RQ_FWD)
				tx_ob_synth(&o, sv->hdr, 5);
		}
		if (sv->cur_left)
			continue;
	message_done:
		/* the whole message has passed */
		if (ep->cap_type == 'S' && ep->cap_len && ep->cap_got == ep->cap_len)
			set_server_param(sv, ep->cap_buf, ep->cap_len);
		if (ep->cap_type == 'E' && ep->cap_len && ep->cap_got == ep->cap_len &&
		    sv_note_error(sv, ep->cap_buf, ep->cap_len) /* a FATAL: why it closes */ &&
		    sv->client && sv->cur_act == RQ_FWD)
			sv_fatal_event(sv, ep->cap_buf, ep->cap_len);
		if (sv->qev &&
		    (ep->cap_type == 'C' ||
		     (ep->cap_type == 'E' && (sv->cur_act == RQ_FWD || sv->e_hold))) &&
		    ep->cap_len && ep->cap_got == ep->cap_len)
			tx_ev_response(sv, ep->cap_type, ep->cap_buf, ep->cap_len);
		if (sv->e_hold) {
			sv->e_hold = false;
			if (is_result_type_change(ep->cap_buf, ep->cap_got)) {
				/* swallowed: the statement is prepared again and the
				 * batch replayed when its ReadyForQuery arrives */
				sv->retry_armed = true;
			} else {
				uint8_t h[5] = {'E', (uint8_t)((ep->cap_got + 4) >> 24),
				                (uint8_t)((ep->cap_got + 4) >> 16),
				                (uint8_t)((ep->cap_got + 4) >> 8),
				                (uint8_t)(ep->cap_got + 4)};
				tx_ob_synth(&o, h, 5);
				tx_ob_synth(&o, ep->cap_buf, ep->cap_got);
				sv->resp_fwd++;
			}
		} else if (sv->cur_act == RQ_FWD && ep->cap_type != 'Z') {
			sv->resp_fwd++;
		}
		if (ep->cap_type == 'C' && cl && cl->gpend && cl->gpend->n) {
			struct rq *h = rq_first(sv);
			bool whole = ep->cap_len && ep->cap_got == ep->cap_len;
			tx_guc_complete(cl, sv, h && (h->flags & RQ_F_GUC),
			                whole ? ep->cap_buf : NULL, whole ? ep->cap_len : 0);
		}
		if (ep->cap_type == 'Z' && sv->retry_armed && cl) {
			char status = ep->cap_len && ep->cap_got ? (char)ep->cap_buf[0] : 'I';
			sv->tx_status = status;
			if (rq_first(sv))
				rq_pop(sv);
			if (cs)
				cache_fill_abort(cs);
			ep->cap_len = 0;
			ep->cap_type = 0;
			sv->skip_pop = false;
			replay_batch(cl, sv);
			continue;
		}
		if (ep->cap_type == 'Z') {
			sv->resp_fwd = sv->resp_synth_parse = 0;
			char status = ep->cap_len && ep->cap_got ? (char)ep->cap_buf[0] : 'I';
			struct rq popped = {.act = RQ_FWD};
			if (rq_first(sv)) {
				popped = *rq_first(sv);
				rq_pop(sv);
			}
			if (cl && cl->gpend && cl->gpend->n)
				tx_guc_ready(cl, sv, status); /* before the next sync reads want */
			if (cs)
				cache_ready(cs, popped.flags, status);
			on_ready(cl, sv, popped, status, &o, !sv->z_raw);
			release = true;
		} else if (sv->skip_pop) {
			rq_pop(sv);
		}
		ep->cap_len = 0;
		ep->cap_type = 0;
		sv->skip_pop = false;
		emit_head_synths(sv, &o);
	}
	ob_finish(&o, cl, sv->w->loop);
	if (release && cl && sv->state == SV_ACTIVE)
		maybe_release(cl, sv);
}

static void set_server_param(struct server *sv, const uint8_t *body, uint32_t len)
{
	uint32_t off = 0;
	const char *n = pgw_get_str(body, len, &off);
	const char *v = pgw_get_str(body, len, &off);
	if (!n || !v)
		return;
	for (int i = 0; i < sv->n_params; i++) {
		if (!strcmp(sv->param_name[i], n)) {
			char *d = strdup(v);
			if (d) {
				free(sv->param_value[i]);
				sv->param_value[i] = d;
			}
			return;
		}
	}
	if (sv->n_params < SV_MAX_PARAMS) {
		char *dn = strdup(n), *dv = strdup(v);
		if (dn && dv) {
			sv->param_name[sv->n_params] = dn;
			sv->param_value[sv->n_params++] = dv;
		} else {
			free(dn);
			free(dv);
		}
	}
}

/* ------------------------------------------------------------ client -> server */

/* Bytes to send to the server for one batch of client messages are
 * gathered in a struct sbuf (common/sbuf.h). */

void tx_msg_hdr(struct sbuf *b, uint8_t type, uint32_t body_len)
{
	uint8_t h[5] = {type, (uint8_t)((body_len + 4) >> 24), (uint8_t)((body_len + 4) >> 16),
	                (uint8_t)((body_len + 4) >> 8), (uint8_t)(body_len + 4)};
	sbuf_append(b, h, 5);
}

/* Parse(sname, body) on the server, evicting its least used statement
 * when the per-server cap is reached. */
static void inject_parse(struct server *sv, struct sbuf *b, const struct prep_stmt *st, uint8_t act)
{
	uint64_t evicted;
	if (prep_server_add(&sv->prep, st->key, &evicted)) {
		char name[PREP_SERVER_NAME_LEN];
		prep_server_name(evicted, name);
		tx_msg_hdr(b, 'C', (uint32_t)(1 + strlen(name) + 1));
		sbuf_append(b, "S", 1);
		sbuf_append(b, name, strlen(name) + 1);
		tx_rq_push(sv, RQ_CLOSE, RQ_DROP, 0, 0, 0);
	}
	conn_ctr_prep(sv, CONN_PREP_SERVER_PARSE);
	tx_msg_hdr(b, 'P', (uint32_t)(strlen(st->sname) + 1 + st->body_len));
	sbuf_append(b, st->sname, strlen(st->sname) + 1);
	sbuf_append(b, st->body, st->body_len);
	tx_rq_push(sv, RQ_PARSE, act, 0, 0, st->key);
}

/* Answers a refused query locally: ErrorResponse then ReadyForQuery. */
void tx_refuse(struct client *cl, struct outb *local, char status, const char *sqlstate,
               const char *msg, const char *hint)
{
	uint8_t buf[1024];
	struct pgw_out e;
	pgw_out_init(&e, buf, sizeof(buf));
	pgw_error(&e, "ERROR", sqlstate, msg, hint);
	pgw_ready(&e, status);
	if (!e.overflow)
		tx_ob_synth(local, buf, e.len);
	tx_ev_error(cl, sqlstate, msg);
}

static bool client_msg(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t total,
                       struct sbuf *b, struct outb *local)
{
	uint8_t type = msg[0];
	const uint8_t *body = msg + 5;
	uint32_t len = total - 5;
	bool skipping = sv->skip_to_sync;
	uint32_t off = 0;
	const char *name;
	struct prep_stmt *st;

	log_debug("tx client %llu -> server %llu: '%c' len %u queue %u%s",
	          (unsigned long long)cl->id, (unsigned long long)sv->id, type, len, sv->rq_len,
	          skipping ? " (skipping)" : "");
	if (type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C' || type == 'H')
		sv->open_batch = true; /* only a Sync's ReadyForQuery proves it clean again */

	switch (type) {
	case 'Q':
		if (!tx_track_query(cl, sv, (const char *)body, len, local, b))
			return false;
		sv->open_batch = false; /* its ReadyForQuery ends what came before */
		tx_rq_push(sv, RQ_QUERY, RQ_FWD, 0, cl->gpend ? tx_guc_flag(cl) : 0, 0);
		cache_request_end(tx_cache_slot(sv));
		tx_ev_start(cl, sv, 'Q', NULL, (const char *)body, len, true);
		break;
	case 'P':
		name = pgw_get_str(body, len, &off);
		if (name && off < len)
			tx_ev_start(cl, sv, 'P', name, (const char *)body + off, len - off, true);
		if (name && !name[0] && off < len)
			tx_track_parse(cl, name, NULL, (const char *)body + off, len - off);
		if (!name || !name[0])
			break; /* unnamed: passes as is */
		st = prep_client_put(&cl->prep, name, body + off, len - off);
		if (st)
			tx_track_parse(cl, name, st, (const char *)body + off, len - off);
		if (!st)
			break;
		conn_ctr_prep(sv, CONN_PREP_CLIENT_PARSE);
		if (skipping)
			return false; /* the server would ignore it; so does the client's view */
		if (sv->replaying && sv->replay_quiet) {
			/* replay: the client already has this Parse's answer */
			sv->replay_quiet--;
			if (!prep_server_has(&sv->prep, st->key))
				inject_parse(sv, b, st, RQ_DROP);
			return false;
		}
		if (prep_server_has(&sv->prep, st->key)) {
			tx_rq_push(sv, RQ_PARSE, RQ_SYNTH, '1', 0, 0);
			return false;
		}
		inject_parse(sv, b, st, RQ_FWD);
		return false;
	case 'B':
	case 'D': {
		const char *portal = NULL;
		if (type == 'B') {
			portal = pgw_get_str(body, len, &off);
		} else {
			if (len < 1 || body[0] != 'S')
				break; /* Describe portal */
			off = 1;
		}
		uint32_t name_off = off;
		name = pgw_get_str(body, len, &off);
		if (type == 'B' && portal && name)
			tx_track_bind(cl, portal, name);
		if (type == 'B' && portal && name && !name[0])
			tx_ev_start(cl, sv, 'B', "", NULL, 0, true); /* the unnamed statement */
		if (!name || !name[0] || (type == 'B' && !portal))
			break;
		st = prep_client_get(&cl->prep, name);
		if (!st)
			break; /* unknown: the server says so */
		if (type == 'B') {
			tx_ev_start(cl, sv, 'B', name, (const char *)st->body, st->body_len, true);
			conn_ctr_prep(sv, CONN_PREP_BIND);
		}
		if (!skipping && !prep_server_has(&sv->prep, st->key))
			inject_parse(sv, b, st, RQ_DROP);
		/* the same message with the server-side name */
		uint32_t nl = (uint32_t)strlen(st->sname) + 1;
		tx_msg_hdr(b, type, name_off + nl + (len - off));
		sbuf_append(b, body, name_off);
		sbuf_append(b, st->sname, nl);
		sbuf_append(b, body + off, len - off);
		if (!skipping)
			tx_rq_push(sv, type == 'B' ? RQ_BIND : RQ_DESCRIBE, RQ_FWD, 0, 0, st->key);
		return false;
	}
	case 'C':
		if (len >= 2 && body[0] == 'S' && body[1]) {
			/* the proxy answers; the shared server statement stays */
			off = 1;
			name = pgw_get_str(body, len, &off);
			if (name)
				prep_client_del(&cl->prep, name);
			if (name && prep_client_get(&cl->rawprep, name)) {
				/* prepared on this server under its own name */
				prep_client_del(&cl->rawprep, name);
				if (!skipping)
					tx_rq_push(sv, RQ_CLOSE, RQ_FWD, 0, 0, 0);
				break;
			}
			if (!skipping)
				tx_rq_push(sv, RQ_CLOSE, RQ_SYNTH, '3', 0, 0);
			return false;
		}
		if (len >= 2 && body[0] == 'P') {
			off = 1;
			name = pgw_get_str(body, len, &off);
			if (name)
				tx_track_close_portal(cl, name);
		}
		if (!skipping)
			tx_rq_push(sv, RQ_CLOSE, RQ_FWD, 0, 0, 0);
		break;
	case 'E':
		if (!skipping) {
			size_t l0 = b->len;
			name = pgw_get_str(body, len, &off);
			if (name)
				tx_track_execute(cl, sv, name, b);
			tx_rq_push(sv, RQ_EXECUTE, RQ_FWD, 0, cl->gpend ? tx_guc_flag(cl) : 0, 0);
			if (b->len != l0) {
				sbuf_append(b, msg, total); /* after what must run first */
				return false;
			}
		}
		break;
	case 'S':
		sv->skip_to_sync = false;
		sv->open_batch = false;
		tx_rq_push(sv, RQ_SYNC, RQ_FWD, 0, 0, 0);
		cache_request_end(tx_cache_slot(sv));
		tx_ev_start(cl, sv, 'S', NULL, NULL, 0, true);
		break;
	case 'F':
		sv->open_batch = false;
		tx_rq_push(sv, RQ_FUNC, RQ_FWD, 0, 0, 0);
		break;
	default:
		break; /* Flush, COPY data, and anything else: passed on */
	}
	if (type == 'P' || type == 'D' || type == 'B') {
		if (!skipping)
			tx_rq_push(sv,
			           type == 'P'   ? RQ_PARSE
			           : type == 'B' ? RQ_BIND
			                         : RQ_DESCRIBE,
			           RQ_FWD, 0, 0, 0);
	}
	return true;
}

static bool get_tx_server(struct client *cl);

#define BATCH_MAX (64u * 1024u)

/* Keeps the client's messages since its last Sync, for a replay. */
static void batch_record(struct server *sv, const uint8_t *msg, uint32_t total)
{
	if (sv->replaying)
		return;
	if (sv->batch_sealed) {
		sv->batch_len = 0;
		sv->batch_sealed = sv->batch_bad = sv->retried = false;
	}
	if (msg[0] == 'S')
		sv->batch_sealed = true;
	if (sv->batch_bad)
		return;
	if (msg[0] == 'Q' || msg[0] == 'F' || sv->batch_len + total > BATCH_MAX) {
		sv->batch_bad = true; /* simple queries are not replayed */
		return;
	}
	if (sv->batch_len + total > sv->batch_cap) {
		uint32_t cap = sv->batch_cap ? sv->batch_cap * 2 : 1024;
		while (cap < sv->batch_len + total)
			cap *= 2;
		uint8_t *n = realloc(sv->batch, cap);
		if (!n) {
			sv->batch_bad = true;
			return;
		}
		sv->batch = n;
		sv->batch_cap = cap;
	}
	memcpy(sv->batch + sv->batch_len, msg, total);
	sv->batch_len += total;
}

/* The statement's result type changed: close it on the server, then send
 * the client's batch again, which prepares it afresh. Once per batch. */
static void replay_batch(struct client *cl, struct server *sv)
{
	struct sbuf b = {0};
	struct outb local = {0};
	char name[PREP_SERVER_NAME_LEN];
	sv->retry_armed = false;
	sv->retried = true;
	prep_server_forget(&sv->prep, sv->retry_key);
	prep_server_name(sv->retry_key, name);
	tx_msg_hdr(&b, 'C', (uint32_t)(strlen(name) + 2));
	sbuf_append(&b, "S", 1);
	sbuf_append(&b, name, strlen(name) + 1);
	tx_rq_push(sv, RQ_CLOSE, RQ_DROP, 0, 0, 0);
	log_info("client %llu: prepared statement's result type changed; prepared again and "
	         "retried",
	         (unsigned long long)cl->id);
	sv->replaying = true;
	sv->replay_quiet = sv->resp_synth_parse;
	for (uint32_t off = 0; off + 5 <= sv->batch_len;) {
		uint32_t total = pgw_get_u32(sv->batch + off + 1) + 1;
		if (client_msg(cl, sv, sv->batch + off, total, &b, &local))
			sbuf_append(&b, sv->batch + off, total);
		off += total;
	}
	sv->replaying = false;
	sv->replay_quiet = 0;
	if (!b.oom)
		ep_send_bytes(&sv->ep, b.p, b.len);
	sbuf_free(&b);
	free(local.buf);
}

static void pin_untracked(struct client *cl, struct server *sv, uint32_t total)
{
	sv->needs_reset = true; /* DISCARD ALL before another client gets it */
	if (cl->pins & (1u << PIN_UNTRACKED))
		return;
	cl->pins |= 1u << PIN_UNTRACKED;
	__atomic_add_fetch(&g_pin_count[PIN_UNTRACKED], 1, __ATOMIC_RELAXED);
	log_debug("client %llu: pinned to its server (untracked: a %u-byte message streamed)",
	          (unsigned long long)cl->id, total);
}

/* A message larger than TX_ASSEMBLE_MAX (total bytes), of which the first
 * avail (at least its header) are at m. What the proxy needs of it is at
 * its start (the names of a Parse or Bind); the rest passes through as it
 * arrives (cl->stream_left, tx_client_data). What cannot be followed:
 * - a Query's text is not analysed: the client is pinned (untracked), as
 *   for any statement too large to analyse;
 * - a named Parse's text is not kept for preparing it on other servers:
 *   it is prepared on this one under the client's own name, and the
 *   client is pinned (untracked) to it;
 * - a Bind of a named statement gets the server-side name (its prefix is
 *   rewritten, the parameters stream).
 * With pin_action = "error" what would pin is refused (0A000) and its
 * bytes dropped (an extended batch up to its Sync); when answers to
 * earlier requests are still to come from the server, the refusal could
 * not be put in its place among them, and the client is closed instead.
 * Puts the bytes for the server in b, the proxy's own answers in local.
 * Returns the bytes of m consumed, 0 to wait for more of its start, -1
 * when the client was closed. */
static int64_t stream_start(struct client *cl, struct server *sv, const uint8_t *m, uint32_t avail,
                            uint32_t total, struct sbuf *b, struct outb *local)
{
	uint8_t type = m[0];
	const uint8_t *body = m + 5;
	uint32_t blen = avail - 5, len = total - 5;
	bool skipping = sv->skip_to_sync;
	bool refuse = cl->snap->cfg->pool.pin_action == 1 && !(cl->pins & (1u << PIN_UNTRACKED));
	char status = sv->tx_status ? sv->tx_status : 'I';
	char msg[400];
	snprintf(msg, sizeof(msg),
	         "this %u-byte %s is too large for the proxy to follow in transaction pooling "
	         "(over %u KiB) and would tie the session to one server connection (untracked), "
	         "which pool_mode.pin_action = \"error\" forbids",
	         total, type == 'Q' ? "query" : "prepared statement", TX_ASSEMBLE_MAX / 1024);
	const char *hint = "Use session pooling for this client, send large values as "
	                   "parameters, or use the unnamed statement.";
	bool named = false;
	if (type == 'P' && blen > 0) {
		const uint8_t *z = memchr(body, 0, blen);
		named = z && z != body && !skipping;
	}
	if (refuse && (type == 'Q' || named) && tx_client_answers_due(sv)) {
		cl_close(cl, "0A000", msg);
		return -1;
	}
	if (type == 'P' || type == 'B')
		sv->open_batch = true; /* as in client_msg: only a Sync proves it clean */

	switch (type) {
	case 'Q':
		if (refuse) {
			tx_refuse(cl, local, status, "0A000", msg, hint);
			goto drop;
		}
		batch_record(sv, m, total); /* a simple query: never replayed */
		pin_untracked(cl, sv, total);
		tx_rq_push(sv, RQ_QUERY, RQ_FWD, 0, 0, 0);
		cache_request_end(tx_cache_slot(sv));
		/* only its start is seen: the cache takes it for a write of anything */
		tx_ev_start(cl, sv, 'Q', NULL, (const char *)body, blen, false);
		break;
	case 'F':
		batch_record(sv, m, total);
		tx_rq_push(sv, RQ_FUNC, RQ_FWD, 0, 0, 0);
		break;
	case 'P': {
		const uint8_t *z = memchr(body, 0, blen);
		if (!z && avail < total)
			return 0;           /* its name is still to come */
		batch_record(sv, m, total); /* too large to replay: marks the batch */
		if (!z || z == body || skipping) {
			/* the unnamed statement (or one the server ignores); its text
			 * is not seen, so like a streamed Query it may change session
			 * state the proxy cannot follow */
			if (z && !skipping)
				tx_ev_start(cl, sv, 'P', "", (const char *)z + 1,
				            blen - (uint32_t)(z + 1 - body), false);
			else
				tx_ev_start(cl, sv, 'P', "", NULL, 0, false);
			if (!skipping) {
				pin_untracked(cl, sv, total);
				tx_rq_push(sv, RQ_PARSE, RQ_FWD, 0, 0, 0);
			}
			break;
		}
		if (refuse) {
			uint8_t buf[1024];
			struct pgw_out e;
			pgw_out_init(&e, buf, sizeof(buf));
			pgw_error(&e, "ERROR", "0A000", msg, hint);
			if (!e.overflow)
				tx_ob_synth(local, buf, e.len);
			tx_ev_error(cl, "0A000", msg);
			cl->drop_to_sync = true; /* as the server would after an error */
			goto drop;
		}
		/* the name is this one's now; its Bind and Describe pass as they
		 * are, its Close goes to the server */
		if (!skipping) /* its name is its own: the cache has nothing to note */
			tx_ev_start(cl, sv, 'P', (const char *)body, (const char *)z + 1,
			            blen - (uint32_t)(z + 1 - body), false);
		prep_client_del(&cl->prep, (const char *)body);
		prep_client_put(&cl->rawprep, (const char *)body, (const uint8_t *)"", 0);
		pin_untracked(cl, sv, total);
		tx_rq_push(sv, RQ_PARSE, RQ_FWD, 0, 0, 0);
		break;
	}
	case 'B': {
		const uint8_t *zp = memchr(body, 0, blen);
		const uint8_t *zs = zp ? memchr(zp + 1, 0, blen - (uint32_t)(zp + 1 - body)) : NULL;
		if (!zs && avail < total)
			return 0; /* its statement name is still to come */
		batch_record(sv, m, total);
		const char *name = zs ? (const char *)zp + 1 : "";
		struct prep_stmt *st = name[0] ? prep_client_get(&cl->prep, name) : NULL;
		if (!st) {
			/* the unnamed statement, or a name the server knows as is */
			tx_ev_start(cl, sv, 'B', zs ? name : NULL, NULL, 0, false);
			if (!skipping)
				tx_rq_push(sv, RQ_BIND, RQ_FWD, 0, 0, 0);
			break;
		}
		tx_ev_start(cl, sv, 'B', name, (const char *)st->body, st->body_len, false);
		if (!skipping && !prep_server_has(&sv->prep, st->key))
			inject_parse(sv, b, st, RQ_DROP);
		/* the same message with the server-side name; the parameters
		 * after it follow as they arrive */
		uint32_t name_off = (uint32_t)((const uint8_t *)name - body);
		uint32_t after = (uint32_t)(zs + 1 - body);
		uint32_t nl = (uint32_t)strlen(st->sname) + 1;
		tx_msg_hdr(b, 'B', name_off + nl + (len - after));
		sbuf_append(b, body, name_off);
		sbuf_append(b, st->sname, nl);
		sbuf_append(b, body + after, blen - after);
		if (!skipping)
			tx_rq_push(sv, RQ_BIND, RQ_FWD, 0, 0, st->key);
		cl->stream_left = total - avail;
		sv->rx_partial = cl->stream_left > 0;
		return avail;
	}
	default:
		break; /* COPY data: passed on */
	}
	sbuf_append(b, m, avail);
	cl->stream_left = total - avail;
	/* until its last byte, the server can serve nobody else, even with
	 * nothing queued (CopyData outside COPY is answered by nothing) */
	sv->rx_partial = cl->stream_left > 0;
	return avail;
drop:
	cl->stream_left = total - avail;
	cl->stream_drop = cl->stream_left > 0;
	return avail;
}

/* Back-pressure on the client: reading stops while its buffer holds more
 * than one assembled message can need (it waits for a server, a throttle,
 * the LISTEN hub...) or its server has much queued, and starts again when
 * neither holds. */
static void flow_check(struct client *cl)
{
	if (cl->state != CL_ACTIVE)
		return;
	struct server *sv = cl->server;
	if (cl->ep.in_len > TX_ASSEMBLE_MAX || (sv && sv->ep.q_bytes > EP_HIGH_WATER)) {
		if (!cl->ep.paused) {
			cl->ep.paused = true;
			io_recv_stop(&cl->ep.sock);
		}
	} else if (cl->ep.paused && (!sv || sv->ep.q_bytes < EP_LOW_WATER)) {
		cl->ep.paused = false;
		io_recv_start(&cl->ep.sock);
	}
}

/* Puts run[0, n) (client messages passed on unchanged) in b at l0, ahead
 * of what was added to b after l0 for the message that follows them. */
static void put_run_before(struct sbuf *b, size_t l0, const uint8_t *run, size_t n)
{
	if (!n)
		return;
	size_t added = b->len - l0;
	sbuf_append(b, run, n); /* grow */
	if (!b->oom) {
		memmove(b->p + l0 + n, b->p + l0, added);
		memcpy(b->p + l0, run, n);
	}
}

static __thread struct sbuf tls_sb;

void tx_worker_exit(void)
{
	sbuf_free(&tls_sb);
	tx_gate_worker_exit();
	ireq_worker_exit(); /* internal requests still waiting fail */
	tx_req_worker_exit();
	sess_worker_exit();
	/* the stages' per-thread state (statement tables, catalog references) */
	analytics_worker_exit(NULL);
	cache_worker_exit();
	plugin_set_worker_exit(); /* its plugin instances */
}

/* Runs the whole messages in data[0..len) (the received chunk c, or the
 * client's buffer when c is NULL). Returns the bytes consumed; stops
 * early when no server is bound yet or the client closed. When every
 * byte of c passes unchanged, c itself is queued to the server and *took
 * is set: c then belongs to the server's endpoint (under TLS it is
 * already encrypted and released), and the caller must not touch it. */
static uint32_t run_msgs(struct client *cl, const uint8_t *data, uint32_t len, struct io_chunk *c,
                         bool *need_server, bool *took)
{
	struct sbuf b = tls_sb; /* reused between calls: no allocation per batch */
	struct outb local = {0};
	struct server *sv = cl->server;
	uint32_t off = 0, pt_from = 0, pt_to = 0;
	bool all_pt = true;

	b.len = 0;
	b.oom = false;
	if (sv && sv->seq_discard && len >= 5) {
		static const uint8_t discard_seq[] = "Q\0\0\0\x16"
		                                     "DISCARD SEQUENCES";
		sv->seq_discard = false;
		/* ahead of the client's bytes; when those pass unchanged, the
		 * two go in one write (ep_cork below) and the client's chunk is
		 * not copied: a send of its own would cost a system call, a
		 * segment and the server's wake-up, about 4 µs of proxy CPU per
		 * transaction in make bench */
		if (tx_rq_push(sv, RQ_QUERY, RQ_DROP, 0, 0, 0) == 0)
			sbuf_append(&b, discard_seq, sizeof(discard_seq));
	}
	const size_t b_base = b.len; /* the proxy's own bytes ahead of the client's */
	if (sv && cache_leading(&cl->pc.slot[PIPE_SLOT_CACHE]))
		cache_arm(&cl->pc.slot[PIPE_SLOT_CACHE], cl->snap->cfg,
		          sv->node_idx == route_primary(cl->snap->cfg), sv->tx_status, data, len);
	bool msg_stages = cl->pc.active[PIPE_AT_MSG]; /* a stage applies to it */
	while (len - off >= 5 && cl->state == CL_ACTIVE && !cl->listen_wait && !cl->pc.parked) {
		const uint8_t *m = data + off;
		uint32_t mlen = pgw_get_u32(m + 1);
		char why[96];
		const char *bad = ep_frontend_check(m[0], mlen, why, sizeof(why));
		if (bad) {
			/* before anything of it reaches a server: the server stays
			 * clean (or is closed by the release), never a node failure */
			cl_close(cl, "08P01", bad);
			goto out;
		}
		if (m[0] == 'X') {
			cl_close(cl, NULL, NULL);
			goto out;
		}
		uint32_t total = mlen + 1;
		uint32_t avail = len - off < total ? len - off : total;
		bool big = total > TX_ASSEMBLE_MAX;
		if (cl->drop_to_sync) {
			/* the rest of a batch refused at a message too large: the
			 * server never saw it, the client gets what it would say */
			all_pt = false;
			if (pt_to > pt_from)
				sbuf_append(&b, data + pt_from, pt_to - pt_from);
			pt_from = pt_to = 0;
			if (avail < total && !big)
				break;
			if (m[0] == 'S') {
				uint8_t z[6] = {'Z', 0, 0,
				                0,   5, sv && sv->tx_status ? sv->tx_status : 'I'};
				tx_ob_synth(&local, z, 6);
				cl->drop_to_sync = false;
			}
			pipe_msg_passed(&cl->pc, m[0]);
			off += avail;
			cl->stream_left = total - avail;
			cl->stream_drop = cl->stream_left > 0;
			if (cl->stream_left)
				break;
			continue;
		}
		if (msg_stages && (avail == total || big)) {
			/* the pipeline's per-message stages (rewrite, rate limit...) */
			int g = tx_msg_stages(cl, sv, m, avail, !c, &local);
			if (g == 0)
				break;
			if (g == -2)
				goto out; /* closed: nothing more goes to its server */
			if (g > 0 && !c) {
				/* a stage may have put a new message in its place */
				data = cl->ep.in;
				len = cl->ep.in_len;
				m = data + off;
				mlen = pgw_get_u32(m + 1);
				total = mlen + 1;
				avail = len - off < total ? len - off : total;
				big = total > TX_ASSEMBLE_MAX;
			}
			if (g < 0) {
				/* answered or dropped here: not forwarded */
				all_pt = false;
				if (pt_to > pt_from)
					sbuf_append(&b, data + pt_from, pt_to - pt_from);
				pt_from = pt_to = 0;
				pipe_msg_passed(&cl->pc, m[0]);
				off += avail;
				cl->stream_left = total - avail;
				cl->stream_drop = cl->stream_left > 0;
				if (cl->stream_left)
					break;
				continue;
			}
		}
		if (!sv) {
			/* asked for by the caller once its buffers are settled */
			*need_server = true;
			break;
		}
		if (big) {
			/* streamed: what precedes it goes first */
			all_pt = false;
			if (pt_to > pt_from)
				sbuf_append(&b, data + pt_from, pt_to - pt_from);
			pt_from = pt_to = 0;
			int64_t used = stream_start(cl, sv, m, avail, total, &b, &local);
			if (used < 0)
				goto out;
			if (!used)
				break;
			pipe_msg_passed(&cl->pc, m[0]);
			off += (uint32_t)used;
			if (cl->stream_left)
				break;
			continue;
		}
		if (avail < total)
			break;
		size_t l0 = b.len;
		/* the next request takes its own tokens (rate limit)... */
		pipe_msg_passed(&cl->pc, m[0]);
		batch_record(sv, m, total);
		if (client_msg(cl, sv, m, total, &b, &local)) {
			if (b.len > l0) {
				/* passed on unchanged, but after SQL of the proxy's
				 * (tracking) that must follow the earlier messages */
				all_pt = false;
				put_run_before(&b, l0, data + pt_from, pt_to - pt_from);
				pt_from = off;
			} else if (pt_to != off) {
				/* a new run of unchanged messages: the previous one is
				 * already in b */
				if (pt_to > pt_from)
					sbuf_append(&b, data + pt_from, pt_to - pt_from);
				pt_from = off;
			}
			pt_to = off + total;
		} else {
			all_pt = false;
			/* unchanged messages before this one go first */
			put_run_before(&b, l0, data + pt_from, pt_to - pt_from);
			pt_from = pt_to = 0;
		}
		off += total;
	}
	if (sv && (off || b.len)) {
		conn_ctr_client_sent(sv, off);
		if (all_pt && c && pt_from == 0 && pt_to == len && b.len == b_base) {
			/* the common case: forward the buffer it arrived in */
			c->off = (uint32_t)(data - c->data);
			c->len = len;
			*took = true;
			if (b_base) {
				ep_cork(&sv->ep);
				ep_send_bytes(&sv->ep, b.p, b_base);
				ep_send_chunk(&sv->ep, c);
				ep_uncork(&sv->ep);
			} else {
				ep_send_chunk(&sv->ep, c);
			}
			c = NULL;
		} else {
			if (pt_to > pt_from)
				sbuf_append(&b, data + pt_from, pt_to - pt_from);
			if (b.len && !b.oom)
				ep_send_bytes(&sv->ep, b.p, b.len);
		}
	}
	if (sv && sv->ep.q_bytes > EP_HIGH_WATER && !cl->ep.paused && cl->state == CL_ACTIVE) {
		cl->ep.paused = true;
		io_recv_stop(&cl->ep.sock);
	}
	if (local.copying && local.len)
		ep_send_bytes(&cl->ep, local.buf, local.len);
	if (sv && sv->client == cl) {
		/* answers the proxy owes for requests at the head */
		struct outb o = {0};
		emit_head_synths(sv, &o);
		if (o.copying && o.len)
			ep_send_bytes(&cl->ep, o.buf, o.len);
		free(o.buf);
	}
out:
	if (sv)
		cache_request_end(tx_cache_slot(sv));
	free(local.buf);
	if (b.cap > (1u << 20))
		sbuf_free(&b); /* do not keep a huge buffer per worker */
	tls_sb = b;
	return off;
}

static void client_input(struct client *cl);

/* Processes whole messages waiting in the client's buffer. */
void tx_client_input(struct client *cl)
{
	client_input(cl);
	flow_check(cl);
}

static void client_input(struct client *cl)
{
	bool need_server;
again:
	need_server = false;
	if (cl->pc.parked)
		return; /* parked behind an identical query, or throttled: woken later */
	if (!cl->ep.in_len)
		goto release;
	bool took = false;
	uint32_t len = cl->ep.in_len;
	/* the pending input may be a window into the chunk it arrived in
	 * (tx_client_data): run_msgs then forwards that chunk as it is; not
	 * when a stage may replace messages (pc.buffered): those run from the
	 * client's buffer, where the replacement is spliced (a copy) */
	uint32_t used = run_msgs(cl, cl->ep.in, len, cl->pc.buffered ? NULL : cl->ep.in_chunk,
	                         &need_server, &took);
	if (took) {
		/* the chunk is the server endpoint's now (under TLS already
		 * freed): forgotten, not released */
		ep_in_handed(&cl->ep);
		cl->tx_direct += len;
		used = 0;
	} else {
		cl->tx_copied += used;
	}
	if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
		return;
	if (used)
		ep_in_consume(&cl->ep, used);
	if (need_server) {
		switch (tx_request_stages(cl)) {
		case TX_REQ_ANSWERED:
			goto again; /* answered without a server: the next request */
		case TX_REQ_PARKED:
			return;
		case TX_REQ_PASS:
			break;
		}
		if (get_tx_server(cl))
			goto again; /* bound at once: relay on */
		return;
	}
release:
	if (cl->server && cl->server->client == cl)
		maybe_release(cl, cl->server);
}

void tx_client_data(struct client *cl, struct io_chunk *c)
{
	uint32_t off = c->off, len = c->len;
	if (__builtin_expect(cl->pipe_swap, 0))
		cl_pipe_swap_try(cl); /* its pipeline was rebuilt (client_pipe.c) */
	if (cl->ep.in_max != TX_INBUF_MAX) {
		cl->ep.in_max = TX_INBUF_MAX; /* logged in: the login phase keeps the small limit */
		cl->ep.in_copied = 0;         /* counts the relay's assembly from here */
	}
	if (cl->stream_left) {
		/* the rest of a large message: straight through (or dropped) */
		uint32_t take = len < cl->stream_left ? len : cl->stream_left;
		struct server *sv = cl->server;
		bool drop = cl->stream_drop;
		cl->stream_left -= take;
		if (!cl->stream_left) {
			cl->stream_drop = false;
			if (sv)
				sv->rx_partial = false;
		}
		if (sv && !drop) {
			conn_ctr_client_sent(sv, take);
			if (take == len) {
				/* all of the chunk is the message's: queued as it is
				 * (it is the server endpoint's from here) */
				cl->tx_direct += take;
				ep_send_chunk(&sv->ep, c);
				flow_check(cl);
				return;
			}
			cl->tx_copied += take;
			ep_send_bytes(&sv->ep, c->data + off, take);
		}
		off += take;
		len -= take;
	}
	if (cl->ep.in_len == 0 && len && !cl->pc.buffered) {
		/* nothing pending: read the messages where they arrived */
		uint8_t *data = c->data + off;
		bool need_server = false; /* tx_client_input below asks */
		bool took = false;
		uint32_t used = run_msgs(cl, data, len, c, &need_server, &took);
		if (took) {
			/* forwarded as is: c is the server endpoint's now (and may
			 * already be freed), never read it again */
			cl->tx_direct += len;
			if (cl->state == CL_ACTIVE && cl->server && cl->server->client == cl)
				maybe_release(cl, cl->server);
			return;
		}
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED) {
			io_chunk_release(cl->w->loop, c);
			return;
		}
		cl->tx_copied += used;
		off += used;
		len -= used;
	}
	/* The rest waits (no server yet, a throttle, a message's end still to
	 * come): kept in the chunk it arrived in when nothing is pending, so
	 * that a server binding late gets this very chunk (client_input);
	 * appended to what is pending otherwise (the assembly copy). */
	if (!len || !ep_in_adopt(&cl->ep, c, off, len)) {
		int r = len ? ep_in_append(&cl->ep, c->data + off, len) : 0;
		io_chunk_release(cl->w->loop, c);
		if (r < 0) {
			cl_close(cl, "54000", "message too large for transaction pooling");
			return;
		}
	}
	tx_client_input(cl); /* e.g. waiting for a server: stops reading until one comes */
}

/* ------------------------------------------------------------ binding */

/* cl got sv: its settings are synced (queued ahead of its bytes), then
 * the relay goes on (the caller's). */
static void tx_attach(struct client *cl, struct server *sv)
{
	tx_ev_bind(cl, sv);
	cl->server = sv;
	cl->connecting = NULL;
	sv->client = cl;
	sv->txn = true;
	sv_set_state(sv, SV_ACTIVE);
	if (!sv->prep.cap)
		prep_server_init(&sv->prep, (uint32_t)cl->snap->cfg->pool.max_prepared_statements);
	cancel_set_target(cl, sv);
	if (cl->pins)
		sv->needs_reset = true; /* pinned from its login (startup settings) */
	tx_guc_reset(cl);               /* nothing of the last server's is still to come */
	io_recv_start(&sv->ep.sock);
	if (sv->last_client != cl->id) {
		/* currval()/lastval() are the backend's: another client's must
		 * not show through (a serial column's DEFAULT sets them too, so
		 * no statement text says when they were touched); sent with the
		 * client's first bytes (run_msgs), in the same write */
		sv->seq_discard = sv->last_client && cl->snap->cfg->pool.reset_sequences;
		sv->last_client = cl->id;
	}
	size_t dlen = 0;
	char *sql = guc_equal(&cl->want, &sv->applied)
	                ? NULL
	                : guc_diff_stmts(&cl->want, &sv->applied, &dlen);
	if (sql && dlen) {
		/* one Query each: a statement the server refuses (a SET of the
		 * client's that fails) must not leave the others, such as the
		 * RESET of a previous client's setting, undone */
		for (size_t off = 0; off < dlen;) {
			const char *one = sql + off;
			off += strlen(one) + 1;
			tx_inject_query(sv, one, off >= dlen && cl->login_pending ? RQ_F_LOGIN : 0);
		}
		guc_copy(&sv->applied, &cl->want);
	} else if (cl->login_pending) {
		finish_login(cl, sv);
	}
	free(sql);
	if (cl->ep.paused) {
		cl->ep.paused = false;
		io_recv_start(&cl->ep.sock);
	}
}

/* sv's send queue drained: the answer may have come before the send's
 * completion was seen (tx_server_clean wants an empty queue), so the
 * server goes back to the pool now rather than at the client's next
 * request, which would otherwise go to it without the request stages. */
void tx_server_sent(struct server *sv)
{
	struct client *cl = sv->client;
	if (cl && cl->server == sv && cl->state == CL_ACTIVE && tx_server_clean(sv))
		maybe_release(cl, sv);
}

/* A server that came later (a hand-off, a new connection's login). */
void tx_bind(struct client *cl, struct server *sv)
{
	tx_attach(cl, sv);
	tx_client_input(cl);
}

void tx_inject_query(struct server *sv, const char *sql, uint8_t flags)
{
	size_t n = strlen(sql) + 16;
	uint8_t *buf = malloc(n);
	if (!buf)
		return;
	struct pgw_out o;
	pgw_out_init(&o, buf, n);
	pgw_query(&o, sql);
	if (!o.overflow && tx_rq_push(sv, RQ_QUERY, RQ_DROP, 0, flags, 0) == 0)
		ep_send_bytes(&sv->ep, buf, o.len);
	free(buf);
}

/* True when a server was bound at once: the caller relays on. */
static bool get_tx_server(struct client *cl)
{
	if (cl->pool && (cl->pw.state != POOL_W_NONE || cl->connecting))
		return false; /* already asked */
	struct server *sv = cl_get_server_for_tx(cl);
	if (!sv)
		return false;
	tx_attach(cl, sv);
	return cl->state == CL_ACTIVE && cl->server == sv;
}
