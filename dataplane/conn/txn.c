/*
 * Transaction and statement pooling. A client holds a server only while a
 * transaction (or, in statement mode, a statement) is open. Every request
 * sent to the server is queued with what should happen to its answer, so
 * the proxy can prepare a client's named statements on whichever server it
 * lands on, answer Close itself, and replay the client's settings first,
 * while the client sees exactly the answers it asked for, in order.
 */
#include "dataplane/conn/conn.h"

#include "dataplane/analytics.h"
#include "dataplane/cache.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/conn/cancel.h"
#include "dataplane/conn/listen.h"
#include "dataplane/pool/pool.h"
#include "dataplane/snap.h"
#include "dataplane/stats.h"
#include "dataplane/sql/sqlc.h"
#include "dataplane/pipeline/rewrite.h"
#include "dataplane/tenant.h"
#include "dataplane/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_ASSEMBLE_MAX (256u * 1024u)        /* larger messages stream through */
#define TX_INBUF_MAX    (64u * 1024u * 1024u) /* Parse/Bind/Query assembled up to this */

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
	cache_client_free(cl);
	if (cl->rate_wait && cl->w) {
		cl->rate_wait = false;
		cl->w->rate_waiters--;
	}
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

bool tx_server_clean(const struct server *sv)
{
	return sv->rq_len == 0 && sv->tx_status == 'I' && sv->hdr_n == 0 && sv->cur_left == 0 &&
	       sv->ep.q_head == NULL && !sv->skip_to_sync;
}

/* ------------------------------------------------------------ request queue */

static int rq_push(struct server *sv, uint8_t kind, uint8_t act, uint8_t synth, uint8_t flags,
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
	if (sv->cs && cache_arming(sv))
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
	sv->rq_head = (sv->rq_head + 1) % sv->rq_cap;
	sv->rq_len--;
}

/* ------------------------------------------------------------ output builder */

/* Bytes for the client built from a received chunk: zero-copy while the
 * output is an unbroken prefix of the chunk, copied once anything is
 * dropped or added. */
struct outb {
	struct io_chunk *c;
	size_t zc_end; /* output == c->data[c->off .. zc_end) while !copying */
	bool copying;
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

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

static void ob_synth(struct outb *o, const void *p, size_t n)
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
	ob_synth(o, hdr, 5);
	if (len)
		ob_synth(o, body, len);
}

/* Emits answers the proxy owes for requests now at the head of the queue. */
static void emit_head_synths(struct server *sv, struct outb *o)
{
	struct rq *h;
	while ((h = rq_first(sv)) && h->act == RQ_SYNTH) {
		synth_msg(o, h->synth, NULL, 0);
		if ((h->flags & RQ_F_FILL) && sv->cs)
			cache_tee_synth(sv, h->synth);
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
	if (cl->server != sv || cl->pins || cl->ep.in_len || cl->stream_left ||
	    !tx_server_clean(sv) || cl->login_pending)
		return;
	cl->server = NULL;
	sv->client = NULL;
	cancel_set_target(cl, NULL);
	if (sv->cs)
		cache_fill_abort(sv); /* nothing left to record */
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
	if (popped.act == RQ_FWD && !(popped.flags & RQ_F_LOGIN)) {
		stats_ready(sv, status);
		if (sv->qa)
			analytics_ready(sv);
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
		ob_synth(o, buf, e.len);
		uint8_t z[6] = {'Z', 0, 0, 0, 5, 'I'};
		ob_synth(o, z, 6);
		uint8_t q[32];
		pgw_out_init(&e, q, sizeof(q));
		pgw_query(&e, "ROLLBACK");
		rq_push(sv, RQ_QUERY, RQ_DROP, 0, 0, 0);
		ep_send_bytes(&sv->ep, q, e.len);
		return;
	}
	if (emit_z) {
		uint8_t z[6] = {'Z', 0, 0, 0, 5, (uint8_t)status};
		ob_synth(o, z, 6);
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
	stats_server_sent(sv, c->len);
	struct client *cl = sv->client;
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
			if (sv->cs)
				cache_tee_body(sv, c->data + pos, take);
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
		bool may_retry = false;
		if (type == 'E' && rq_first(sv) && rq_first(sv)->kind == RQ_BIND &&
		    rq_first(sv)->key && sv->resp_fwd == 0 && !sv->retried && sv->batch_sealed &&
		    !sv->batch_bad && sv->tx_status == 'I' && mlen <= EP_CAPTURE_MAX) {
			may_retry = true;
			sv->retry_key = rq_first(sv)->key;
		}
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
		if (sv->cs) {
			struct rq *hh = rq_first(sv);
			cache_tee_header(sv, hh && type != 'Z' ? hh->flags : 0, type,
			                 sv->cur_act == RQ_FWD, sv->hdr);
		}
		ep->cap_type = type;
		ep->cap_len = 0;
		bool for_analytics =
		    sv->qa && (type == 'C' || type == 'E') && sv->cur_act == RQ_FWD;
		if ((type == 'Z' || type == 'S' || sv->e_hold || for_analytics) &&
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
				ob_synth(&o, sv->hdr, 5);
		}
		if (sv->cur_left)
			continue;
	message_done:
		/* the whole message has passed */
		if (ep->cap_type == 'S' && ep->cap_len && ep->cap_got == ep->cap_len)
			set_server_param(sv, ep->cap_buf, ep->cap_len);
		if (sv->qa && (ep->cap_type == 'C' || ep->cap_type == 'E') && ep->cap_len &&
		    ep->cap_got == ep->cap_len)
			analytics_response(sv, ep->cap_type, ep->cap_buf, ep->cap_len);
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
				ob_synth(&o, h, 5);
				ob_synth(&o, ep->cap_buf, ep->cap_got);
				sv->resp_fwd++;
			}
		} else if (sv->cur_act == RQ_FWD && ep->cap_type != 'Z') {
			sv->resp_fwd++;
		}
		if (ep->cap_type == 'Z' && sv->retry_armed && cl) {
			char status = ep->cap_len && ep->cap_got ? (char)ep->cap_buf[0] : 'I';
			sv->tx_status = status;
			if (rq_first(sv))
				rq_pop(sv);
			if (sv->cs)
				cache_fill_abort(sv);
			ep->cap_len = 0;
			ep->cap_type = 0;
			sv->skip_pop = false;
			replay_batch(cl, sv);
			continue;
		}
		if (ep->cap_type == 'Z') {
			sv->resp_fwd = 0;
			char status = ep->cap_len && ep->cap_got ? (char)ep->cap_buf[0] : 'I';
			struct rq popped = {.act = RQ_FWD};
			if (rq_first(sv)) {
				popped = *rq_first(sv);
				rq_pop(sv);
			}
			if (sv->cs)
				cache_ready(sv, popped.flags, status);
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

/* Bytes to send to the server, gathered for one batch of client messages. */
struct sendb {
	uint8_t *buf;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct sendb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

static void sb_msg_hdr(struct sendb *b, uint8_t type, uint32_t body_len)
{
	uint8_t h[5] = {type, (uint8_t)((body_len + 4) >> 24), (uint8_t)((body_len + 4) >> 16),
	                (uint8_t)((body_len + 4) >> 8), (uint8_t)(body_len + 4)};
	sb_put(b, h, 5);
}

/* Parse(sname, body) on the server, evicting its least used statement
 * when the per-server cap is reached. */
static void inject_parse(struct server *sv, struct sendb *b, const struct prep_stmt *st,
                         uint8_t act)
{
	uint64_t evicted;
	if (prep_server_add(&sv->prep, st->key, &evicted)) {
		char name[PREP_SERVER_NAME_LEN];
		prep_server_name(evicted, name);
		sb_msg_hdr(b, 'C', (uint32_t)(1 + strlen(name) + 1));
		sb_put(b, "S", 1);
		sb_put(b, name, strlen(name) + 1);
		rq_push(sv, RQ_CLOSE, RQ_DROP, 0, 0, 0);
	}
	sb_msg_hdr(b, 'P', (uint32_t)(strlen(st->sname) + 1 + st->body_len));
	sb_put(b, st->sname, strlen(st->sname) + 1);
	sb_put(b, st->body, st->body_len);
	rq_push(sv, RQ_PARSE, act, 0, 0, st->key);
}

static void pin(struct client *cl, enum pin_reason r)
{
	if (!(cl->pins & (1u << r))) {
		cl->pins |= 1u << r;
		__atomic_add_fetch(&g_pin_count[r], 1, __ATOMIC_RELAXED);
		log_debug("client %llu: pinned to its server (%s)", (unsigned long long)cl->id,
		          pin_reason_str(r));
	}
}

static void unpin(struct client *cl, enum pin_reason r)
{
	cl->pins &= ~(1u << r);
}

/* Answers a refused query locally: ErrorResponse then ReadyForQuery. */
static void refuse(struct outb *local, char status, const char *sqlstate, const char *msg,
                   const char *hint)
{
	uint8_t buf[1024];
	struct pgw_out e;
	pgw_out_init(&e, buf, sizeof(buf));
	pgw_error(&e, "ERROR", sqlstate, msg, hint);
	pgw_ready(&e, status);
	if (!e.overflow)
		ob_synth(local, buf, e.len);
}

/* SQL-level prepared statements on a server: name -> key of its text. */
static int64_t sqlprep_find(const struct server *sv, const char *name)
{
	for (uint32_t i = 0; i < sv->sqlprep_n; i++)
		if (!strcmp(sv->sqlprep_names[i], name))
			return i;
	return -1;
}

static void sqlprep_set(struct server *sv, const char *name, uint64_t key)
{
	int64_t i = sqlprep_find(sv, name);
	if (i >= 0) {
		sv->sqlprep_keys[i] = key;
		return;
	}
	if (sv->sqlprep_n == sv->sqlprep_cap) {
		uint32_t cap = sv->sqlprep_cap ? sv->sqlprep_cap * 2 : 8;
		char **n = realloc(sv->sqlprep_names, cap * sizeof(*n));
		if (!n)
			return;
		sv->sqlprep_names = n;
		uint64_t *k = realloc(sv->sqlprep_keys, cap * sizeof(*k));
		if (!k)
			return;
		sv->sqlprep_keys = k;
		sv->sqlprep_cap = cap;
	}
	char *d = strdup(name);
	if (!d)
		return;
	sv->sqlprep_names[sv->sqlprep_n] = d;
	sv->sqlprep_keys[sv->sqlprep_n++] = key;
}

static void sqlprep_del(struct server *sv, const char *name)
{
	int64_t i = sqlprep_find(sv, name);
	if (i < 0)
		return;
	free(sv->sqlprep_names[i]);
	sv->sqlprep_names[i] = sv->sqlprep_names[--sv->sqlprep_n];
	sv->sqlprep_keys[i] = sv->sqlprep_keys[sv->sqlprep_n];
}

static void sqlprep_clear(struct server *sv)
{
	for (uint32_t i = 0; i < sv->sqlprep_n; i++)
		free(sv->sqlprep_names[i]);
	sv->sqlprep_n = 0;
}

/* Makes the server's statement `name` the client's: DEALLOCATE another
 * client's one of the same name, PREPARE ours if missing. Appends the SQL
 * to `fix`. */
static void sqlprep_ensure(struct client *cl, struct server *sv, const char *name, FILE *fix,
                           bool want_ours)
{
	struct prep_stmt *mine = want_ours ? prep_client_get(&cl->sqlprep, name) : NULL;
	int64_t i = sqlprep_find(sv, name);
	if (i >= 0 && mine && sv->sqlprep_keys[i] == mine->key)
		return;
	if (i >= 0) {
		fprintf(fix, "DEALLOCATE \"%s\";", name);
		sqlprep_del(sv, name);
	}
	if (mine) {
		fprintf(fix, "%.*s;", (int)mine->body_len, (const char *)mine->body);
		sqlprep_set(sv, name, mine->key);
	}
}

/* Tracks what a simple query does to session state; may inject SQL
 * before it (settings of this client's SQL prepared statements). Returns
 * false when the query must not be sent (answered locally). */
static bool track_query(struct client *cl, struct server *sv, const char *sql, uint32_t len,
                        struct outb *local, struct sendb *b)
{
	if (!memchr(sql, 0, len) || !sqlc_maybe_interesting(sql, len))
		return true;
	const struct cfg *c = cl->snap->cfg;
	bool refuse_pins = c->pool.pin_action == 1;
	struct sqlc_result *res = malloc(sizeof(*res));
	if (!res)
		return true;
	int r = sqlc_classify(sql, res);
	if (r == 0 && res->parse_error) {
		free(res);
		return true; /* not the proxy's business: the server answers */
	}
	if (r == 0 && !res->more_stmts && res->n > 0 && cl->pool && sv->tx_status == 'I' &&
	    sv->rq_len == 0) {
		/* only LISTEN/UNLISTEN, outside a transaction: the pool's hub
		 * listens for the client, which keeps no server for it */
		bool only = true;
		for (int i = 0; i < res->n; i++)
			if (res->stmts[i].kind != SQLC_LISTEN &&
			    res->stmts[i].kind != SQLC_UNLISTEN &&
			    res->stmts[i].kind != SQLC_UNLISTEN_ALL)
				only = false;
		if (only) {
			uint8_t buf[64];
			struct pgw_out o;
			struct outb ans = {0};
			bool wait = false;
			for (int i = 0; i < res->n; i++) {
				const struct sqlc_stmt *st = &res->stmts[i];
				if (st->kind == SQLC_LISTEN) {
					if (listen_subscribe(cl, st->name) < 0) {
						pin(cl, PIN_LISTEN);
					} else if (!listen_active(cl, st->name)) {
						/* answered once the hub listens, so no
						 * notification sent after it is missed */
						char **ch = realloc(
						    cl->listen_chans,
						    (size_t)(cl->n_listen_chans + 1) * sizeof(*ch));
						if (ch) {
							cl->listen_chans = ch;
							ch[cl->n_listen_chans] = strdup(st->name);
							if (ch[cl->n_listen_chans])
								cl->n_listen_chans++;
						}
						wait = true;
					}
				} else if (st->kind == SQLC_UNLISTEN) {
					listen_unsubscribe(cl, st->name);
				} else {
					listen_unsubscribe(cl, NULL);
				}
				pgw_out_init(&o, buf, sizeof(buf));
				size_t m = pgw_begin_msg(&o, 'C');
				pgw_put_str(&o, st->kind == SQLC_LISTEN ? "LISTEN" : "UNLISTEN");
				pgw_end_msg(&o, m);
				ob_synth(&ans, buf, o.len);
			}
			pgw_out_init(&o, buf, sizeof(buf));
			pgw_ready(&o, 'I');
			ob_synth(&ans, buf, o.len);
			if (wait && !ans.oom) {
				cl->listen_wait = true;
				cl->listen_answer = ans.buf;
				cl->listen_answer_len = (uint32_t)ans.len;
			} else {
				ob_synth(local, ans.buf, ans.len);
				free(ans.buf);
			}
			free(res);
			return false;
		}
	}
	/* first pass: what would pin the client */
	uint32_t newpins = 0;
	if (r != 0 || res->more_stmts || (res->flags & SQLC_F_SET_CONFIG))
		newpins |= 1u << PIN_UNTRACKED; /* the proxy cannot follow it */
	if (r == 0 && (res->flags & SQLC_F_ADVISORY_LOCK))
		newpins |= 1u << PIN_ADVISORY_LOCK;
	for (int i = 0; r == 0 && i < res->n; i++) {
		const struct sqlc_stmt *st = &res->stmts[i];
		switch (st->kind) {
		case SQLC_LISTEN:
			newpins |= 1u << PIN_LISTEN;
			break;
		case SQLC_DECLARE_HOLD:
			newpins |= 1u << PIN_HOLD_CURSOR;
			break;
		case SQLC_CREATE_TEMP:
			newpins |= 1u << PIN_TEMP_TABLE;
			break;
		case SQLC_PREPARE:
			if (!c->pool.track_sql_prepare)
				newpins |= 1u << PIN_SQL_PREPARE;
			break;
		case SQLC_SESSION_AUTH:
			newpins |= 1u << PIN_SESSION_AUTH;
			break;
		case SQLC_SET:
			if (st->name_incomplete || !strcmp(st->name, "standard_conforming_strings"))
				newpins |= 1u << PIN_UNTRACKED;
			break;
		default:
			break;
		}
	}
	newpins &= ~cl->pins;
	if (newpins && refuse_pins) {
		char msg[300];
		enum pin_reason why = (enum pin_reason)__builtin_ctz(newpins);
		snprintf(msg, sizeof(msg),
		         "this statement would tie the session to one server connection (%s), "
		         "which pool_mode.pin_action = \"error\" forbids",
		         pin_reason_str(why));
		refuse(local, sv->tx_status ? sv->tx_status : 'I', "0A000", msg,
		       "Use session pooling for this client, or avoid session-level state.");
		free(res);
		return false;
	}
	for (unsigned k = 0; k < PIN_COUNT; k++)
		if (newpins & (1u << k))
			pin(cl, (enum pin_reason)k);
	if (r != 0) {
		free(res);
		return true;
	}
	bool send = true;
	char *fixsql = NULL;
	size_t fixlen = 0;
	FILE *fix = open_memstream(&fixsql, &fixlen);
	if (res->flags & SQLC_F_ADVISORY_UNLOCK_ALL)
		unpin(cl, PIN_ADVISORY_LOCK);
	for (int i = 0; i < res->n; i++) {
		const struct sqlc_stmt *st = &res->stmts[i];
		char *text;
		switch (st->kind) {
		case SQLC_BEGIN:
			if (cl->stmt_mode && sv->rq_len == 0 && sv->tx_status == 'I') {
				refuse(
				    local, 'I', "0A000",
				    "transaction blocks are not allowed in statement pooling mode",
				    "Run each statement on its own, or use pool_mode.mode = "
				    "\"transaction\".");
				send = false;
			}
			break;
		case SQLC_SET:
			if (st->name_incomplete || !strcmp(st->name, "standard_conforming_strings"))
				break; /* pinned above */
			text = strndup(sql + st->loc, st->len);
			if (text) {
				guc_put(&cl->want, st->name, text, true);
				guc_put(&sv->applied, st->name, text, true);
				free(text);
			}
			break;
		case SQLC_SET_DEFAULT:
		case SQLC_RESET: {
			/* back to the client's startup value, not the server default */
			const struct guc_ent *s0 = guc_get(&cl->startup, st->name);
			if (s0)
				guc_put(&cl->want, st->name, s0->value, false);
			else
				guc_del(&cl->want, st->name);
			guc_del(&sv->applied, st->name);
			break;
		}
		case SQLC_DISCARD_ALL:
			prep_client_clear(&cl->prep);
			prep_server_clear(&sv->prep);
			prep_client_clear(&cl->sqlprep);
			sqlprep_clear(sv);
			cl->pins &= 1u << PIN_UNTRACKED;
			/* fall through */
		case SQLC_RESET_ALL:
			guc_copy(&cl->want, &cl->startup);
			guc_free(&sv->applied);
			break;
		case SQLC_DISCARD_TEMP:
			unpin(cl, PIN_TEMP_TABLE);
			break;
		case SQLC_UNLISTEN_ALL:
			unpin(cl, PIN_LISTEN);
			break;
		case SQLC_CLOSE_ALL:
			unpin(cl, PIN_HOLD_CURSOR);
			break;
		case SQLC_PREPARE:
			if (!c->pool.track_sql_prepare || !fix)
				break;
			/* another client's statement of that name must go first */
			sqlprep_ensure(cl, sv, st->name, fix, false);
			text = strndup(sql + st->loc, st->len);
			if (text) {
				struct prep_stmt *ps = prep_client_put(&cl->sqlprep, st->name,
				                                       (uint8_t *)text, st->len);
				if (ps)
					sqlprep_set(sv, st->name, ps->key);
				free(text);
			}
			break;
		case SQLC_EXECUTE:
		case SQLC_DEALLOCATE:
			/* the server's statement of that name must be this client's,
			 * or absent so the client gets PostgreSQL's own error */
			if (c->pool.track_sql_prepare && fix)
				sqlprep_ensure(cl, sv, st->name, fix, true);
			if (st->kind == SQLC_DEALLOCATE) {
				prep_client_del(&cl->sqlprep, st->name);
				sqlprep_del(sv, st->name);
			}
			break;
		case SQLC_DEALLOCATE_ALL:
			/* drops protocol-level statements too, on this server */
			prep_server_clear(&sv->prep);
			prep_client_clear(&cl->sqlprep);
			sqlprep_clear(sv);
			unpin(cl, PIN_SQL_PREPARE);
			break;
		default:
			break;
		}
	}
	if (fix && fclose(fix) == 0 && fixlen && send) {
		/* runs before the client's query; its answers are swallowed */
		sb_msg_hdr(b, 'Q', (uint32_t)fixlen + 1);
		sb_put(b, fixsql, fixlen + 1);
		rq_push(sv, RQ_QUERY, RQ_DROP, 0, 0, 0);
	}
	free(fixsql);
	free(res);
	return send;
}

/* One complete client message while bound to sv. Returns true when the
 * message goes to the server unchanged (the caller sends it, zero-copy
 * when it can); otherwise whatever must be sent is appended to b. */
static bool client_msg(struct client *cl, struct server *sv, const uint8_t *msg, uint32_t total,
                       struct sendb *b, struct outb *local)
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

	switch (type) {
	case 'Q':
		if (!track_query(cl, sv, (const char *)body, len, local, b))
			return false;
		cache_note_query(cl, sv, (const char *)body, len);
		rq_push(sv, RQ_QUERY, RQ_FWD, 0, 0, 0);
		cache_request_end(sv);
		if (sv->qa)
			analytics_query(cl, sv, (const char *)body, len);
		break;
	case 'P':
		name = pgw_get_str(body, len, &off);
		if (sv->qa && name && off < len)
			analytics_batch_text(cl, sv, (const char *)body + off, len - off);
		if (name && off < len)
			cache_note_parse(cl, sv, name[0] != '\0', (const char *)body + off,
			                 len - off);
		if (!name || !name[0])
			break; /* unnamed: passes as is */
		st = prep_client_put(&cl->prep, name, body + off, len - off);
		if (!st)
			break;
		if (skipping)
			return false; /* the server would ignore it; so does the client's view */
		if (prep_server_has(&sv->prep, st->key)) {
			rq_push(sv, RQ_PARSE, RQ_SYNTH, '1', 0, 0);
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
		if (type == 'B' && portal && name && !name[0])
			cache_note_bind(cl, sv, NULL, 0); /* the unnamed statement */
		if (!name || !name[0] || (type == 'B' && !portal))
			break;
		st = prep_client_get(&cl->prep, name);
		if (!st)
			break; /* unknown: the server says so */
		if (type == 'B')
			cache_note_bind(cl, sv, (const char *)st->body, st->body_len);
		if (sv->qa && type == 'B')
			analytics_batch_text(cl, sv, (const char *)st->body, st->body_len);
		if (!skipping && !prep_server_has(&sv->prep, st->key))
			inject_parse(sv, b, st, RQ_DROP);
		/* the same message with the server-side name */
		uint32_t nl = (uint32_t)strlen(st->sname) + 1;
		sb_msg_hdr(b, type, name_off + nl + (len - off));
		sb_put(b, body, name_off);
		sb_put(b, st->sname, nl);
		sb_put(b, body + off, len - off);
		if (!skipping)
			rq_push(sv, type == 'B' ? RQ_BIND : RQ_DESCRIBE, RQ_FWD, 0, 0, st->key);
		return false;
	}
	case 'C':
		if (len >= 2 && body[0] == 'S' && body[1]) {
			/* the proxy answers; the shared server statement stays */
			off = 1;
			name = pgw_get_str(body, len, &off);
			if (name)
				prep_client_del(&cl->prep, name);
			if (!skipping)
				rq_push(sv, RQ_CLOSE, RQ_SYNTH, '3', 0, 0);
			return false;
		}
		if (!skipping)
			rq_push(sv, RQ_CLOSE, RQ_FWD, 0, 0, 0);
		break;
	case 'E':
		if (!skipping)
			rq_push(sv, RQ_EXECUTE, RQ_FWD, 0, 0, 0);
		break;
	case 'S':
		sv->skip_to_sync = false;
		rq_push(sv, RQ_SYNC, RQ_FWD, 0, 0, 0);
		cache_request_end(sv);
		if (sv->qa)
			analytics_sync(cl, sv);
		break;
	case 'F':
		rq_push(sv, RQ_FUNC, RQ_FWD, 0, 0, 0);
		break;
	default:
		break; /* Flush, COPY data, and anything else: passed on */
	}
	if (type == 'P' || type == 'D' || type == 'B') {
		if (!skipping)
			rq_push(sv,
			        type == 'P'   ? RQ_PARSE
			        : type == 'B' ? RQ_BIND
			                      : RQ_DESCRIBE,
			        RQ_FWD, 0, 0, 0);
	}
	return true;
}

static void get_tx_server(struct client *cl);

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
	struct sendb b = {0};
	struct outb local = {0};
	char name[PREP_SERVER_NAME_LEN];
	sv->retry_armed = false;
	sv->retried = true;
	prep_server_forget(&sv->prep, sv->retry_key);
	prep_server_name(sv->retry_key, name);
	sb_msg_hdr(&b, 'C', (uint32_t)(strlen(name) + 2));
	sb_put(&b, "S", 1);
	sb_put(&b, name, strlen(name) + 1);
	rq_push(sv, RQ_CLOSE, RQ_DROP, 0, 0, 0);
	log_info("client %llu: prepared statement's result type changed; prepared again and "
	         "retried",
	         (unsigned long long)cl->id);
	sv->replaying = true;
	for (uint32_t off = 0; off + 5 <= sv->batch_len;) {
		uint32_t total = pgw_get_u32(sv->batch + off + 1) + 1;
		if (client_msg(cl, sv, sv->batch + off, total, &b, &local))
			sb_put(&b, sv->batch + off, total);
		off += total;
	}
	sv->replaying = false;
	if (!b.oom)
		ep_send_bytes(&sv->ep, b.buf, b.len);
	free(b.buf);
	free(local.buf);
}

/* Runs the whole messages in data[0..len) (the received chunk c, or the
 * client's buffer when c is NULL). Returns the bytes consumed; stops
 * early when no server is bound yet or the client closed. */
static __thread struct sendb tls_sb;

void tx_worker_exit(void)
{
	free(tls_sb.buf);
	tls_sb.buf = NULL;
	tls_sb.cap = 0;
}

/* Rate limits, at the message that starts a query (a Query, a function
 * call, the first message of an extended batch). Returns 1 to go on with
 * the message, 0 to stop here (throttled: the worker wakes the client), -1
 * when the message was consumed (refused, or dropped with its batch). */
static int rate_gate(struct client *cl, struct server *sv, const uint8_t *m, uint32_t total,
                     struct outb *local)
{
	uint8_t t = m[0];
	char status = sv && sv->tx_status ? sv->tx_status : 'I';
	if (cl->rate_drop_batch) {
		if (t == 'S') {
			cl->rate_drop_batch = false;
			cl->rate_in_batch = false;
			refuse(local, status, "53400",
			       "rate limit exceeded: the batch was refused (see the first error)",
			       NULL);
		}
		return -1;
	}
	bool starts = t == 'Q' || t == 'F' ||
	              ((t == 'P' || t == 'B' || t == 'D' || t == 'E') && !cl->rate_in_batch);
	if (!starts || cl->rate_granted)
		return 1;
	uint64_t now = conn_now_ns(), wait = 0;
	char msg[300];
	enum rate_verdict v = rate_take(cl, now, 0, &wait, msg, sizeof(msg));
	if (v == RATE_WAIT) {
		/* its tokens are reserved: it runs when they are due */
		cl->rate_granted = true;
		if (t != 'Q' && t != 'F')
			cl->rate_in_batch = true;
		cl->rate_wait = true;
		cl->rate_wake_ns = now + wait;
		struct worker *w = cl->w;
		if (!w->rate_waiters++ || cl->rate_wake_ns < w->rate_next_ns)
			w->rate_next_ns = cl->rate_wake_ns;
		return 0;
	}
	if (v == RATE_REJECT) {
		log_debug("client %llu: %s", (unsigned long long)cl->id, msg);
		if (t == 'Q' || t == 'F') {
			refuse(local, status, "53400", msg,
			       "Slow down, or ask for a higher limit ([rate_limit], "
			       "tenants.rate_limit).");
			return -1;
		}
		/* the whole batch goes; its Sync gets the answer */
		uint8_t buf[600];
		struct pgw_out e;
		pgw_out_init(&e, buf, sizeof(buf));
		pgw_error(&e, "ERROR", "53400", msg, NULL);
		if (!e.overflow)
			ob_synth(local, buf, e.len);
		cl->rate_drop_batch = true;
		cl->rate_in_batch = true;
		return rate_gate(cl, sv, m, total, local);
	}
	cl->rate_granted = true;
	if (t != 'Q' && t != 'F')
		cl->rate_in_batch = true;
	return 1;
}

void tx_rate_wake(struct worker *w, uint64_t now)
{
	if (!w->rate_waiters || now < w->rate_next_ns)
		return;
	uint64_t next = UINT64_MAX;
	for (struct client *c = w->clients, *n; c; c = n) {
		n = c->all_next;
		if (!c->rate_wait)
			continue;
		if (c->rate_wake_ns <= now) {
			c->rate_wait = false;
			w->rate_waiters--;
			tx_client_input(c);
		} else if (c->rate_wake_ns < next) {
			next = c->rate_wake_ns;
		}
	}
	w->rate_next_ns = next;
}

static uint32_t run_msgs(struct client *cl, const uint8_t *data, uint32_t len, struct io_chunk *c,
                         bool *need_server)
{
	struct sendb b = tls_sb; /* reused between calls: no allocation per batch */
	struct outb local = {0};
	struct server *sv = cl->server;
	uint32_t off = 0, pt_from = 0, pt_to = 0;
	bool all_pt = true;

	b.len = 0;
	b.oom = false;
	if (sv && cl->cache_lead)
		cache_arm(cl, sv, data, len);
	bool rate_on = cl->snap->rate_limits || cl->rate_drop_batch;
	while (len - off >= 5 && cl->state == CL_ACTIVE && !cl->listen_wait && !cl->rate_wait) {
		const uint8_t *m = data + off;
		uint32_t mlen = pgw_get_u32(m + 1);
		if (mlen < 4 || mlen > PGW_MAX_MESSAGE) {
			cl_close(cl, "08P01", "invalid message length from client");
			goto out;
		}
		if (m[0] == 'X') {
			cl_close(cl, NULL, NULL);
			goto out;
		}
		if (rate_on && (size_t)mlen + 1 <= len - off) {
			int g = rate_gate(cl, sv, m, mlen + 1, &local);
			if (g == 0)
				break;
			if (g < 0) {
				/* answered or dropped here: not forwarded */
				all_pt = false;
				if (pt_to > pt_from)
					sb_put(&b, data + pt_from, pt_to - pt_from);
				pt_from = pt_to = 0;
				off += mlen + 1;
				continue;
			}
		}
		if (!sv) {
			/* asked for by the caller once its buffers are settled */
			*need_server = true;
			break;
		}
		if ((size_t)mlen + 1 > len - off) {
			if (mlen + 1 > TX_ASSEMBLE_MAX && m[0] != 'P' && m[0] != 'B' &&
			    m[0] != 'Q') {
				/* stream a large message (COPY data) straight through */
				all_pt = false;
				if (pt_to > pt_from)
					sb_put(&b, data + pt_from, pt_to - pt_from);
				pt_from = pt_to = 0;
				sb_put(&b, m, len - off);
				cl->stream_left = mlen + 1 - (len - off);
				off = len;
			}
			break;
		}
		uint32_t total = mlen + 1;
		size_t l0 = b.len;
		if (m[0] == 'Q' || m[0] == 'F' || m[0] == 'S') {
			cl->rate_granted = false; /* the next request takes its own tokens */
			if (m[0] == 'S')
				cl->rate_in_batch = false;
		}
		batch_record(sv, m, total);
		if (client_msg(cl, sv, m, total, &b, &local)) {
			if (pt_to != off) {
				/* a new run of unchanged messages: the previous one is
				 * already in b */
				if (pt_to > pt_from)
					sb_put(&b, data + pt_from, pt_to - pt_from);
				pt_from = off;
			}
			pt_to = off + total;
		} else {
			all_pt = false;
			if (pt_to > pt_from) {
				/* unchanged messages before this one go first */
				size_t run = pt_to - pt_from, added = b.len - l0;
				sb_put(&b, data + pt_from, run); /* grow */
				if (!b.oom) {
					memmove(b.buf + l0 + run, b.buf + l0, added);
					memcpy(b.buf + l0, data + pt_from, run);
				}
				pt_from = pt_to = 0;
			}
		}
		off += total;
	}
	if (sv && off) {
		stats_client_sent(sv, off);
		if (all_pt && c && pt_from == 0 && pt_to == len && b.len == 0) {
			/* the common case: forward the buffer it arrived in */
			c->off = (uint32_t)(data - c->data);
			c->len = len;
			ep_send_chunk(&sv->ep, c);
			c = NULL;
		} else {
			if (pt_to > pt_from)
				sb_put(&b, data + pt_from, pt_to - pt_from);
			if (b.len && !b.oom)
				ep_send_bytes(&sv->ep, b.buf, b.len);
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
	if (sv && sv->cs)
		cache_request_end(sv);
	free(local.buf);
	if (b.cap > (1u << 20)) {
		free(b.buf); /* do not keep a huge buffer per worker */
		b.buf = NULL;
		b.cap = 0;
	}
	tls_sb = b;
	if (c)
		c->len = 0; /* not forwarded: the caller keeps what was not consumed */
	return off;
}

/* Statement rewriting ([[rewrite_rules]], a tenant's schema_prefix) applies
 * to this client. */
static bool rewrite_active(const struct client *cl)
{
	return cl->snap->rewrite || tenant_schema(cl)[0];
}

/* Rewrites the Query and Parse texts in the client's buffer that were not
 * looked at yet, in place, so routing, the cache and the server all see
 * the rewritten text. A failure leaves the statement as written. */
static void rewrite_input(struct client *cl)
{
	struct endpoint *ep = &cl->ep;
	const char *schema = tenant_schema(cl);
	uint32_t off = ep->in_seen;
	while (ep->in_len - off >= 5) {
		uint32_t mlen = pgw_get_u32(ep->in + off + 1);
		if (mlen < 4 || mlen > PGW_MAX_MESSAGE || mlen + 1 > ep->in_len - off)
			break; /* incomplete (or bad: run_msgs says so) */
		uint32_t total = mlen + 1;
		uint8_t t = ep->in[off];
		const uint8_t *body = ep->in + off + 5;
		uint32_t blen = mlen - 4, name_len = 0;
		const uint8_t *z = t == 'P' ? memchr(body, '\0', blen) : NULL;
		if (t == 'P' && z)
			name_len = (uint32_t)(z - body) + 1;
		const char *sql = (const char *)body + name_len;
		const char *end = (t == 'Q' || z) ? memchr(sql, '\0', blen - name_len) : NULL;
		if (end) {
			char *out = NULL, why[300] = "";
			enum rw_status st = rw_rewrite(cl->snap->rewrite, schema[0] ? schema : NULL,
			                               sql, &out, why, sizeof(why));
			if (st == RW_FAILED)
				log_info(
				    "client %llu: statement sent as written; rewriting failed: %s",
				    (unsigned long long)cl->id, why);
			if (st == RW_REWRITTEN && out) {
				/* the name (Parse), the new text, then what followed the
				 * old one: its NUL and, for Parse, the parameter types */
				size_t ol = strlen(out);
				uint32_t rest = blen - name_len - (uint32_t)(end - sql);
				size_t nb = (size_t)name_len + ol + rest;
				uint8_t *m = nb + 5 <= PGW_MAX_MESSAGE ? malloc(nb + 5) : NULL;
				if (m) {
					uint32_t ml = (uint32_t)nb + 4;
					m[0] = t;
					m[1] = (uint8_t)(ml >> 24);
					m[2] = (uint8_t)(ml >> 16);
					m[3] = (uint8_t)(ml >> 8);
					m[4] = (uint8_t)ml;
					memcpy(m + 5, body, name_len);
					memcpy(m + 5 + name_len, out, ol);
					memcpy(m + 5 + name_len + ol, end, rest);
					if (ep_in_splice(ep, off, total, m, (uint32_t)nb + 5) == 0)
						total = (uint32_t)nb + 5;
					free(m);
				}
				log_debug("client %llu: rewritten: %s", (unsigned long long)cl->id,
				          out);
			}
			free(out);
		}
		off += total;
	}
	ep->in_seen = off;
}

/* Processes whole messages waiting in the client's buffer. */
void tx_client_input(struct client *cl)
{
	bool need_server;
again:
	need_server = false;
	if (cl->cache_wait || cl->rate_wait)
		return; /* parked behind an identical query, or throttled: woken later */
	if (!cl->ep.in_len)
		goto release;
	if (rewrite_active(cl))
		rewrite_input(cl);
	uint32_t used = run_msgs(cl, cl->ep.in, cl->ep.in_len, NULL, &need_server);
	if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
		return;
	if (used)
		ep_in_consume(&cl->ep, used);
	if (need_server) {
		switch (cache_try(cl)) {
		case CACHE_ANSWERED:
			cl->rate_granted = cl->rate_in_batch = false; /* that request is done */
			goto again; /* answered without a server: the next request */
		case CACHE_PARKED:
			return;
		case CACHE_PASS:
			break;
		}
		get_tx_server(cl); /* may bind at once and come back here */
		return;
	}
release:
	if (cl->server && cl->server->client == cl)
		maybe_release(cl, cl->server);
}

void tx_client_data(struct client *cl, struct io_chunk *c)
{
	uint32_t off = c->off, len = c->len;
	if (cl->stream_left) {
		uint32_t take = len < cl->stream_left ? len : cl->stream_left;
		cl->stream_left -= take;
		if (cl->server)
			ep_send_bytes(&cl->server->ep, c->data + off, take);
		off += take;
		len -= take;
	}
	if (cl->ep.in_len == 0 && len && !rewrite_active(cl)) {
		/* nothing pending: read the messages where they arrived */
		uint8_t *data = c->data + off;
		bool need_server = false; /* tx_client_input below asks */
		uint32_t used = run_msgs(cl, data, len, c, &need_server);
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED) {
			if (c->len == 0)
				io_chunk_release(cl->w->loop, c);
			return;
		}
		if (c->len) {
			/* forwarded as is */
			if (cl->server && cl->server->client == cl)
				maybe_release(cl, cl->server);
			return;
		}
		off += used;
		len -= used;
	}
	int r = len ? ep_in_append(&cl->ep, c->data + off, len) : 0;
	io_chunk_release(cl->w->loop, c);
	if (r < 0) {
		cl_close(cl, "54000", "message too large for transaction pooling");
		return;
	}
	tx_client_input(cl);
	if (cl->state == CL_ACTIVE && !cl->server && cl->ep.in_len > TX_ASSEMBLE_MAX &&
	    !cl->ep.paused) {
		/* waiting for a server: stop reading until one comes */
		cl->ep.paused = true;
		io_recv_stop(&cl->ep.sock);
	}
}

/* ------------------------------------------------------------ binding */

void tx_bind(struct client *cl, struct server *sv)
{
	analytics_bind(cl, sv);
	cl->server = sv;
	cl->connecting = NULL;
	sv->client = cl;
	sv->txn = true;
	sv->state = SV_ACTIVE;
	if (!sv->prep.cap)
		prep_server_init(&sv->prep, (uint32_t)cl->snap->cfg->pool.max_prepared_statements);
	cancel_set_target(cl, sv);
	io_recv_start(&sv->ep.sock);
	char *sql =
	    guc_equal(&cl->want, &sv->applied) ? NULL : guc_diff_sql(&cl->want, &sv->applied);
	if (sql && sql[0]) {
		uint8_t *buf = malloc(strlen(sql) + 16);
		if (buf) {
			struct pgw_out o;
			pgw_out_init(&o, buf, strlen(sql) + 16);
			pgw_query(&o, sql);
			rq_push(sv, RQ_QUERY, RQ_DROP, 0, cl->login_pending ? RQ_F_LOGIN : 0, 0);
			ep_send_bytes(&sv->ep, buf, o.len);
			free(buf);
			guc_copy(&sv->applied, &cl->want);
		}
	} else if (cl->login_pending) {
		finish_login(cl, sv);
	}
	free(sql);
	cache_bind(cl, sv);
	if (cl->ep.paused) {
		cl->ep.paused = false;
		io_recv_start(&cl->ep.sock);
	}
	tx_client_input(cl);
}

void cl_get_server_for_tx(struct client *cl);

void tx_inject_query(struct server *sv, const char *sql, uint8_t flags)
{
	size_t n = strlen(sql) + 16;
	uint8_t *buf = malloc(n);
	if (!buf)
		return;
	struct pgw_out o;
	pgw_out_init(&o, buf, n);
	pgw_query(&o, sql);
	if (!o.overflow && rq_push(sv, RQ_QUERY, RQ_DROP, 0, flags, 0) == 0)
		ep_send_bytes(&sv->ep, buf, o.len);
	free(buf);
}

static void get_tx_server(struct client *cl)
{
	if (cl->pool && (cl->wait == CLW_QUEUED || cl->wait == CLW_HANDED || cl->connecting))
		return; /* already asked */
	cl_get_server_for_tx(cl);
}
