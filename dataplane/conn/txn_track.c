/*
 * Session state in transaction pooling: what a client's simple queries do
 * to the state that must follow it to every server (SET/RESET, SQL
 * PREPARE/DEALLOCATE, LISTEN/UNLISTEN) and what ties it to one server
 * (advisory locks, temp tables, WITH HOLD cursors, SET SESSION
 * AUTHORIZATION...), which pins it.
 */
#include "dataplane/conn/txn_internal.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/conn/listen.h"
#include "dataplane/policy/snap.h"
#include "dataplane/sql/sqlc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pins cl to sv; sv then holds state of cl's that only DISCARD ALL (run
 * when it is released) is sure to remove. */
static void pin(struct client *cl, struct server *sv, enum pin_reason r)
{
	sv->needs_reset = true;
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

void tx_server_discarded(struct server *sv)
{
	guc_free(&sv->applied);
	prep_server_clear(&sv->prep);
	sqlprep_clear(sv);
	sv->needs_reset = false;
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

/* What the statements of res would pin (r: sqlc_classify's answer). The
 * extended protocol cannot have SQL injected before a statement in the
 * middle of its batch, so there SQL PREPARE pins too. */
static uint32_t pins_for(const struct cfg *c, int r, const struct sqlc_result *res, bool ext)
{
	uint32_t p = 0;
	if (r != 0 || res->more_stmts || (res->flags & SQLC_F_SET_CONFIG))
		p |= 1u << PIN_UNTRACKED; /* the proxy cannot follow it */
	if (r == 0 && (res->flags & SQLC_F_ADVISORY_LOCK))
		p |= 1u << PIN_ADVISORY_LOCK;
	for (int i = 0; r == 0 && i < res->n; i++) {
		const struct sqlc_stmt *st = &res->stmts[i];
		switch (st->kind) {
		case SQLC_LISTEN:
			p |= 1u << PIN_LISTEN;
			break;
		case SQLC_DECLARE_HOLD:
			p |= 1u << PIN_HOLD_CURSOR;
			break;
		case SQLC_CREATE_TEMP:
			p |= 1u << PIN_TEMP_TABLE;
			break;
		case SQLC_PREPARE:
			if (ext || !c->pool.track_sql_prepare)
				p |= 1u << PIN_SQL_PREPARE;
			break;
		case SQLC_SESSION_AUTH:
			p |= 1u << PIN_SESSION_AUTH;
			break;
		case SQLC_SET:
			if (st->name_incomplete || !strcmp(st->name, "standard_conforming_strings"))
				p |= 1u << PIN_UNTRACKED;
			break;
		default:
			break;
		}
	}
	return p;
}

/* A value no client's setting has: the server's value of that setting is
 * unknown, so the next client's settings sync sets or resets it. */
#define GUC_UNKNOWN ""

/* Marks every setting the server was known to have as unknown. */
static void applied_unknown(struct server *sv)
{
	for (int i = 0; i < sv->applied.n; i++)
		guc_put(&sv->applied, sv->applied.e[i].name, GUC_UNKNOWN, true);
}

/* ------------------------------------------------------------ pending settings */

/* Queues a change to cl->want made by statement `stmt` of the request
 * being tracked (see tx_gpend in txn_internal.h). On out-of-memory the
 * change is lost, as a failed statement's would be: the server's value is
 * recorded as unknown by the caller or corrected by the next sync. */
static void gp_queue(struct client *cl, uint32_t stmt, uint8_t kind, const char *name,
                     const char *value)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp && !(gp = cl->gpend = calloc(1, sizeof(*gp))))
		return;
	if (gp->n == gp->cap) {
		int cap = gp->cap ? gp->cap * 2 : 4;
		struct gp_op *o = realloc(gp->ops, (size_t)cap * sizeof(*o));
		if (!o)
			return;
		gp->ops = o;
		gp->cap = cap;
	}
	struct gp_op op = {.req = gp->next_req, .stmt = stmt, .stage = GP_SENT, .kind = kind};
	op.name = name ? strdup(name) : NULL;
	op.value = value ? strdup(value) : NULL;
	if ((name && !op.name) || (value && !op.value)) {
		free(op.name);
		free(op.value);
		return;
	}
	gp->ops[gp->n++] = op;
	gp->open = true;
}

/* Removes the ops for which drop() says so, keeping the others in order. */
static void gp_filter(struct tx_gpend *gp,
                      bool (*drop)(const struct tx_gpend *, const struct gp_op *))
{
	int k = 0;
	for (int i = 0; i < gp->n; i++) {
		if (drop(gp, &gp->ops[i])) {
			free(gp->ops[i].name);
			free(gp->ops[i].value);
		} else {
			gp->ops[k++] = gp->ops[i];
		}
	}
	gp->n = k;
}

static bool is_open(const struct tx_gpend *gp, const struct gp_op *o)
{
	return o->req == gp->next_req;
}

static bool is_unfinished(const struct tx_gpend *gp, const struct gp_op *o)
{
	return o->req == gp->cur_req && o->stage == GP_SENT;
}

static bool is_done(const struct tx_gpend *gp, const struct gp_op *o)
{
	(void)gp;
	return o->stage == GP_DONE;
}

static bool is_in_txn(const struct tx_gpend *gp, const struct gp_op *o)
{
	(void)gp;
	return o->stage != GP_SENT;
}

static bool is_ambig(const struct tx_gpend *gp, const struct gp_op *o)
{
	(void)gp;
	return o->stage == GP_AMBIG;
}

static bool any(const struct tx_gpend *gp, bool (*f)(const struct tx_gpend *, const struct gp_op *))
{
	for (int i = 0; i < gp->n; i++)
		if (f(gp, &gp->ops[i]))
			return true;
	return false;
}

uint8_t tx_guc_flag(struct client *cl)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp || !gp->open)
		return 0;
	gp->open = false;
	gp->next_req++;
	return RQ_F_GUC;
}

/* The request tracked last is not sent after all (answered here). */
static void gp_cancel_open(struct client *cl)
{
	struct tx_gpend *gp = cl->gpend;
	if (gp && gp->open) {
		gp_filter(gp, is_open);
		gp->open = false;
	}
}

void tx_guc_popped(struct client *cl)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp)
		return;
	if (gp->n)
		gp_filter(gp, is_unfinished); /* an error, or an earlier one, stopped it */
	gp->cur_req++;
	gp->cur_stmt = 0;
}

/* Makes the committed changes (stage `from` and on) the client's. unsure
 * ones (GP_AMBIG: a ROLLBACK that may have been a ROLLBACK TO SAVEPOINT
 * went by them) also leave the server's value unknown, so the next
 * transaction's sync sets it whatever the server really kept. */
static void gp_commit(struct client *cl, struct server *sv)
{
	struct tx_gpend *gp = cl->gpend;
	int k = 0;
	for (int i = 0; i < gp->n; i++) {
		struct gp_op *o = &gp->ops[i];
		if (o->stage == GP_SENT) {
			gp->ops[k++] = *o;
			continue;
		}
		bool unsure = o->stage == GP_AMBIG;
		switch (o->kind) {
		case GP_SET:
			guc_put(&cl->want, o->name, o->value, true);
			break;
		case GP_RESET: {
			/* back to the client's startup value, not the server default */
			const struct guc_ent *s0 = guc_get(&cl->startup, o->name);
			if (s0)
				guc_put(&cl->want, o->name, s0->value, false);
			else
				guc_del(&cl->want, o->name);
			break;
		}
		default:
			guc_copy(&cl->want, &cl->startup);
			break;
		}
		if (unsure && sv) {
			if (o->kind == GP_RESET_ALL)
				applied_unknown(sv);
			else
				guc_put(&sv->applied, o->name, GUC_UNKNOWN, true);
		}
		free(o->name);
		free(o->value);
	}
	gp->n = k;
}

static bool tag_is(const uint8_t *tag, uint32_t len, const char *want)
{
	size_t n = strlen(want) + 1;
	return tag && len == n && !memcmp(tag, want, n);
}

void tx_guc_complete(struct client *cl, struct server *sv, bool guc_head, const uint8_t *tag,
                     uint32_t tag_len)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp || !gp->n)
		return;
	if (guc_head) {
		for (int i = 0; i < gp->n; i++) {
			struct gp_op *o = &gp->ops[i];
			if (o->req == gp->cur_req && o->stmt == gp->cur_stmt && o->stage == GP_SENT)
				o->stage = GP_DONE;
		}
		gp->cur_stmt++;
	}
	if (tag_is(tag, tag_len, "COMMIT")) {
		/* COMMIT of an aborted transaction is tagged ROLLBACK: this one
		 * committed (in the middle of a Query, or before its Z) */
		gp_commit(cl, sv);
	} else if (tag_is(tag, tag_len, "ROLLBACK")) {
		/* ROLLBACK, or ROLLBACK TO SAVEPOINT (the same tag): either undoes
		 * what completed after the latest SAVEPOINT; what completed
		 * before it survives a ROLLBACK TO of a later savepoint only. The
		 * transaction's end says which (see tx_guc_ready). */
		gp_filter(gp, is_done);
		for (int i = 0; i < gp->n; i++)
			if (gp->ops[i].stage == GP_DONE_SP)
				gp->ops[i].stage = GP_AMBIG;
	} else if (tag_is(tag, tag_len, "SAVEPOINT")) {
		for (int i = 0; i < gp->n; i++)
			if (gp->ops[i].stage == GP_DONE)
				gp->ops[i].stage = GP_DONE_SP;
	}
}

void tx_guc_error(struct client *cl)
{
	struct tx_gpend *gp = cl->gpend;
	/* the transaction is aborted: whichever rollback ends it (ROLLBACK,
	 * COMMIT, a Sync ending an implicit transaction, ROLLBACK TO any
	 * savepoint) undoes what completed after its latest SAVEPOINT */
	if (gp && gp->n)
		gp_filter(gp, is_done);
}

void tx_guc_ready(struct client *cl, struct server *sv, char status)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp || !gp->n || status != 'I')
		return;
	/* outside a transaction: what completed was committed (by the
	 * implicit transaction of a Query or batch, COMMIT, PREPARE
	 * TRANSACTION), except what a ROLLBACK went by with no COMMIT
	 * after it: that ROLLBACK ended the transaction */
	gp_filter(gp, is_ambig);
	if (any(gp, is_in_txn))
		gp_commit(cl, sv);
}

void tx_guc_reset(struct client *cl)
{
	struct tx_gpend *gp = cl->gpend;
	if (!gp)
		return;
	for (int i = 0; i < gp->n; i++) {
		free(gp->ops[i].name);
		free(gp->ops[i].value);
	}
	gp->n = 0;
	gp->open = false;
	gp->cur_req = gp->next_req;
	gp->cur_stmt = 0;
}

/* Effects both protocols track the same way: settings, and what undoes
 * a pin. Settings become the client's when statement `idx` of the request
 * completes and its transaction commits (gp_queue); the server's value is
 * recorded now. `unsure`: the statement may not take effect on the
 * server (it runs in a transaction block that may roll back, or after
 * something in the same query or batch that may fail), so what the
 * server has is recorded as unknown rather than as the new value; a
 * statement that fails when sure leaves the server recorded with a value
 * the client does not want, which the next sync corrects. */
static void track_common(struct client *cl, struct server *sv, const char *sql,
                         const struct sqlc_stmt *st, bool unsure, uint32_t idx)
{
	char *text;
	switch (st->kind) {
	case SQLC_SET:
		if (st->name_incomplete || !strcmp(st->name, "standard_conforming_strings"))
			break; /* pinned */
		text = strndup(sql + st->loc, st->len);
		if (text) {
			gp_queue(cl, idx, GP_SET, st->name, text);
			guc_put(&sv->applied, st->name, unsure ? GUC_UNKNOWN : text, true);
			free(text);
		}
		break;
	case SQLC_SET_DEFAULT:
	case SQLC_RESET: {
		gp_queue(cl, idx, GP_RESET, st->name, NULL);
		if (unsure && guc_get(&sv->applied, st->name))
			guc_put(&sv->applied, st->name, GUC_UNKNOWN, true);
		else
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
		gp_queue(cl, idx, GP_RESET_ALL, NULL, NULL);
		if (unsure)
			applied_unknown(sv);
		else
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

/* Tracks what a simple query does to session state; may inject SQL
 * before it (settings of this client's SQL prepared statements). Returns
 * false when the query must not be sent (answered locally). */
bool tx_track_query(struct client *cl, struct server *sv, const char *sql, uint32_t len,
                    struct outb *local, struct sbuf *b)
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
	    !tx_client_answers_due(sv) && !sv->open_batch && !(cl->pins & (1u << PIN_LISTEN))) {
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
						pin(cl, sv, PIN_LISTEN);
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
				tx_ob_synth(&ans, buf, o.len);
			}
			pgw_out_init(&o, buf, sizeof(buf));
			pgw_ready(&o, 'I');
			tx_ob_synth(&ans, buf, o.len);
			if (wait && !ans.oom) {
				cl->listen_wait = true;
				cl->listen_answer = ans.buf;
				cl->listen_answer_len = (uint32_t)ans.len;
			} else {
				tx_ob_synth(local, ans.buf, ans.len);
				free(ans.buf);
			}
			free(res);
			return false;
		}
	}
	if (r == 0 && !res->more_stmts && res->n == 1 && res->stmts[0].kind == SQLC_DEALLOCATE &&
	    !prep_client_get(&cl->sqlprep, res->stmts[0].name) &&
	    prep_client_get(&cl->prep, res->stmts[0].name)) {
		/* SQL DEALLOCATE of a statement the client made with Parse (one
		 * namespace in PostgreSQL; pgx and ruby-pg drop statements so):
		 * the server holds it under the proxy's shared name, which other
		 * clients use, so it leaves the client's view only, answered in
		 * its place among the answers still to come */
		prep_client_del(&cl->prep, res->stmts[0].name);
		tx_rq_push(sv, RQ_QUERY, RQ_SYNTH, 'C', 0, 0);
		free(res);
		return false;
	}
	uint32_t newpins = pins_for(c, r, res, false);
	newpins &= ~cl->pins;
	if (newpins && refuse_pins) {
		char msg[300];
		enum pin_reason why = (enum pin_reason)__builtin_ctz(newpins);
		snprintf(msg, sizeof(msg),
		         "this statement would tie the session to one server connection (%s), "
		         "which pool_mode.pin_action = \"error\" forbids",
		         pin_reason_str(why));
		tx_refuse(cl, local, sv->tx_status ? sv->tx_status : 'I', "0A000", msg,
		          "Use session pooling for this client, or avoid session-level state.");
		free(res);
		return false;
	}
	for (unsigned k = 0; k < PIN_COUNT; k++)
		if (newpins & (1u << k))
			pin(cl, sv, (enum pin_reason)k);
	if (r != 0) {
		free(res);
		return true;
	}
	bool send = true;
	/* a statement after another in one query, or behind a request still
	 * running or inside a transaction block, may never take effect */
	bool unsure =
	    res->n > 1 || tx_client_answers_due(sv) || sv->open_batch || sv->tx_status != 'I';
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
			if (cl->stmt_mode && !tx_client_answers_due(sv) && sv->tx_status == 'I') {
				tx_refuse(
				    cl, local, 'I', "0A000",
				    "transaction blocks are not allowed in statement pooling mode",
				    "Run each statement on its own, or use pool_mode.mode = "
				    "\"transaction\".");
				send = false;
			}
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
		case SQLC_UNLISTEN:
		case SQLC_UNLISTEN_ALL:
			/* the server listens too (a pinned LISTEN): both stop */
			listen_unsubscribe(cl, st->kind == SQLC_UNLISTEN ? st->name : NULL);
			track_common(cl, sv, sql, st, unsure, (uint32_t)i);
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
		default:
			track_common(cl, sv, sql, st, unsure, (uint32_t)i);
			break;
		}
	}
	if (!send)
		gp_cancel_open(cl); /* refused here: none of it runs */
	if (fix && fclose(fix) == 0 && fixlen && send) {
		/* runs before the client's query; its answers are swallowed */
		tx_msg_hdr(b, 'Q', (uint32_t)fixlen + 1);
		sbuf_append(b, fixsql, fixlen + 1);
		tx_rq_push(sv, RQ_QUERY, RQ_DROP, 0, 0, 0);
	}
	free(fixsql);
	free(res);
	return send;
}

/* ------------------------------------------------------------ extended protocol */

/* A portal bound to a statement whose text may change session state. */
struct fx_portal {
	struct fx_portal *next;
	char *portal;
	char *sql;
};

struct tx_fx {
	char *unnamed; /* the unnamed statement's text, when it may change state */
	struct fx_portal *portals;
};

static bool text_interesting(const char *sql, uint32_t len, uint32_t *slen)
{
	const char *z = memchr(sql, 0, len);
	if (!z)
		return false;
	*slen = (uint32_t)(z - sql);
	return sqlc_maybe_interesting(sql, *slen);
}

void tx_track_parse(struct client *cl, const char *name, struct prep_stmt *st, const char *sql,
                    uint32_t len)
{
	uint32_t slen = 0;
	bool hot = text_interesting(sql, len, &slen);
	if (name[0]) {
		if (st)
			st->track = hot; /* its text is kept in st */
		if (hot && !cl->fx)
			cl->fx = calloc(1, sizeof(*cl->fx)); /* Binds look from now on */
		return;
	}
	if (!hot && (!cl->fx || !cl->fx->unnamed))
		return; /* the common case: nothing to remember, nothing to forget */
	if (!cl->fx && !(cl->fx = calloc(1, sizeof(*cl->fx))))
		return;
	free(cl->fx->unnamed);
	cl->fx->unnamed = hot ? strndup(sql, slen) : NULL;
}

static struct fx_portal **portal_find(struct tx_fx *fx, const char *portal)
{
	struct fx_portal **pp = &fx->portals;
	while (*pp && strcmp((*pp)->portal, portal) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void portal_drop(struct tx_fx *fx, const char *portal)
{
	struct fx_portal **pp = portal_find(fx, portal);
	struct fx_portal *p = *pp;
	if (!p)
		return;
	*pp = p->next;
	free(p->portal);
	free(p->sql);
	free(p);
}

void tx_track_bind(struct client *cl, const char *portal, const char *stmt)
{
	if (!cl->fx)
		return; /* no statement of the client's may change session state */
	const char *sql = NULL;
	if (!stmt[0]) {
		sql = cl->fx ? cl->fx->unnamed : NULL;
	} else {
		struct prep_stmt *st = prep_client_get(&cl->prep, stmt);
		if (st && st->track)
			sql = (const char *)st->body; /* the query, NUL-terminated */
	}
	if (!sql && !cl->fx->portals)
		return;
	portal_drop(cl->fx, portal);
	if (!sql)
		return;
	struct fx_portal *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->portal = strdup(portal);
	p->sql = strdup(sql);
	if (!p->portal || !p->sql) {
		free(p->portal);
		free(p->sql);
		free(p);
		return;
	}
	p->next = cl->fx->portals;
	cl->fx->portals = p;
}

void tx_track_close_portal(struct client *cl, const char *portal)
{
	if (cl->fx)
		portal_drop(cl->fx, portal);
}

/* Runs one statement of the proxy's own in the middle of an extended
 * batch, under a statement and portal name no client uses, its answers
 * swallowed. */
static void inject_ext_stmt(struct server *sv, struct sbuf *b, const char *sql, size_t len)
{
	static const char nm[] = "hp_fix";
	static const uint8_t zero2[2] = {0, 0}, zero4[4] = {0, 0, 0, 0};
	tx_msg_hdr(b, 'P', (uint32_t)(sizeof(nm) + len + 1 + 2));
	sbuf_append(b, nm, sizeof(nm));
	sbuf_append(b, sql, len);
	sbuf_append(b, "", 1);
	sbuf_append(b, zero2, 2);
	tx_rq_push(sv, RQ_PARSE, RQ_DROP, 0, 0, 0);
	tx_msg_hdr(b, 'B', (uint32_t)(2 * sizeof(nm) + 6));
	sbuf_append(b, nm, sizeof(nm));
	sbuf_append(b, nm, sizeof(nm));
	for (int i = 0; i < 3; i++)
		sbuf_append(b, zero2, 2);
	tx_rq_push(sv, RQ_BIND, RQ_DROP, 0, 0, 0);
	tx_msg_hdr(b, 'E', (uint32_t)(sizeof(nm) + 4));
	sbuf_append(b, nm, sizeof(nm));
	sbuf_append(b, zero4, 4);
	tx_rq_push(sv, RQ_EXECUTE, RQ_DROP, 0, 0, 0);
	for (int i = 0; i < 2; i++) {
		tx_msg_hdr(b, 'C', (uint32_t)(1 + sizeof(nm)));
		sbuf_append(b, i == 0 ? "P" : "S", 1);
		sbuf_append(b, nm, sizeof(nm));
		tx_rq_push(sv, RQ_CLOSE, RQ_DROP, 0, 0, 0);
	}
}

/* sqlprep_ensure for the extended protocol: the statements that make the
 * server's SQL prepared statement `name` the client's run one by one
 * before the client's Execute. */
static void sqlprep_ensure_ext(struct client *cl, struct server *sv, const char *name,
                               struct sbuf *b, bool want_ours)
{
	struct prep_stmt *mine = want_ours ? prep_client_get(&cl->sqlprep, name) : NULL;
	int64_t i = sqlprep_find(sv, name);
	if (i >= 0 && mine && sv->sqlprep_keys[i] == mine->key)
		return;
	if (i >= 0) {
		char sql[SQLC_NAME_MAX + 16];
		int n = snprintf(sql, sizeof(sql), "DEALLOCATE \"%s\"", name);
		inject_ext_stmt(sv, b, sql, (size_t)n);
		sqlprep_del(sv, name);
	}
	if (mine) {
		inject_ext_stmt(sv, b, (const char *)mine->body, mine->body_len);
		sqlprep_set(sv, name, mine->key);
	}
}

/* Tracks an executed statement's text as tx_track_query does a Query's,
 * except that nothing can be answered locally or sent before it in the
 * middle of a batch: whatever cannot be followed pins, LISTEN included
 * (the server's own notifications then reach the client). */
static void track_ext(struct client *cl, struct server *sv, const char *sql, struct sbuf *b)
{
	const struct cfg *c = cl->snap->cfg;
	struct sqlc_result *res = malloc(sizeof(*res));
	if (!res) {
		pin(cl, sv, PIN_UNTRACKED);
		return;
	}
	int r = sqlc_classify(sql, res);
	if (r == 0 && res->parse_error) {
		free(res); /* the server refuses it */
		return;
	}
	uint32_t newpins = pins_for(c, r, res, true);
	for (unsigned k = 0; k < PIN_COUNT; k++)
		if (newpins & (1u << k))
			pin(cl, sv, (enum pin_reason)k);
	if (r != 0) {
		free(res);
		return;
	}
	if (res->flags & SQLC_F_ADVISORY_UNLOCK_ALL)
		unpin(cl, PIN_ADVISORY_LOCK);
	/* sure only when nothing before it in the batch can fail or roll it
	 * back: no earlier Execute or Query waiting, outside a transaction */
	bool unsure = sv->tx_status != 'I';
	for (uint32_t i = 0; i < sv->rq_len && !unsure; i++) {
		const struct rq *q = &sv->rq[(sv->rq_head + i) % sv->rq_cap];
		/* the proxy's own queries run on their own: theirs cannot fail it */
		unsure = q->act != RQ_DROP && (q->kind == RQ_EXECUTE || q->kind == RQ_QUERY ||
		                               q->kind == RQ_SYNC || q->kind == RQ_FUNC);
	}
	for (int i = 0; i < res->n; i++) {
		const struct sqlc_stmt *st = &res->stmts[i];
		switch (st->kind) {
		case SQLC_UNLISTEN:
			listen_unsubscribe(cl, st->name);
			break;
		case SQLC_UNLISTEN_ALL:
			listen_unsubscribe(cl, NULL);
			track_common(cl, sv, sql, st, unsure, (uint32_t)i);
			break;
		case SQLC_DISCARD_ALL:
			listen_unsubscribe(cl, NULL);
			track_common(cl, sv, sql, st, unsure, (uint32_t)i);
			break;
		case SQLC_EXECUTE:
		case SQLC_DEALLOCATE:
			/* the server's statement of that name must be this
			 * client's, or absent so the client gets PostgreSQL's
			 * own error */
			if (c->pool.track_sql_prepare)
				sqlprep_ensure_ext(cl, sv, st->name, b, true);
			if (st->kind == SQLC_DEALLOCATE) {
				prep_client_del(&cl->sqlprep, st->name);
				sqlprep_del(sv, st->name);
			}
			break;
		case SQLC_PREPARE:
			/* stays on this server: pinned above */
			if (c->pool.track_sql_prepare)
				sqlprep_ensure_ext(cl, sv, st->name, b,
				                   false); /* another's goes first */
			break;
		default:
			track_common(cl, sv, sql, st, unsure, (uint32_t)i);
			break;
		}
	}
	free(res);
}

void tx_track_execute(struct client *cl, struct server *sv, const char *portal, struct sbuf *b)
{
	if (!cl->fx || !cl->fx->portals)
		return;
	struct fx_portal *p = *portal_find(cl->fx, portal);
	if (p)
		track_ext(cl, sv, p->sql, b);
}

void tx_track_free(struct client *cl)
{
	tx_guc_reset(cl);
	free(cl->gpend ? cl->gpend->ops : NULL);
	free(cl->gpend);
	cl->gpend = NULL;
	struct tx_fx *fx = cl->fx;
	if (!fx)
		return;
	while (fx->portals)
		portal_drop(fx, fx->portals->portal);
	free(fx->unnamed);
	free(fx);
	cl->fx = NULL;
}
