/*
 * The per-query stages in front of the transaction-pooling relay: rate
 * limits (token buckets of tenant.c, throttle or 53400) at the message
 * that starts a query, and statement rewriting of the client's buffered
 * Query/Parse messages in place.
 */
#include "dataplane/conn/txn_internal.h"

#include "common/log.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/pipeline/engine/rewrite.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/rt/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rate limits, at the message that starts a query (a Query, a function
 * call, the first message of an extended batch). Returns 1 to go on with
 * the message, 0 to stop here (throttled: the worker wakes the client), -1
 * when the message was consumed (refused, or dropped with its batch). */
int tx_rate_gate(struct client *cl, struct server *sv, const uint8_t *m, uint32_t total,
                 struct outb *local)
{
	uint8_t t = m[0];
	char status = sv && sv->tx_status ? sv->tx_status : 'I';
	if (cl->rate_drop_batch) {
		if (t == 'S') {
			/* only ReadyForQuery, as after any error in a batch: a
			 * second ErrorResponse is a second result to a driver
			 * (psycopg's prepare step fails on it) */
			cl->rate_drop_batch = false;
			cl->rate_in_batch = false;
			uint8_t z[6] = {'Z', 0, 0, 0, 5, (uint8_t)status};
			tx_ob_synth(local, z, 6);
		}
		return -1;
	}
	bool starts = t == 'Q' || t == 'F' ||
	              ((t == 'P' || t == 'B' || t == 'D' || t == 'E') && !cl->rate_in_batch);
	if (!starts || cl->rate_granted)
		return 1;
	uint64_t now = conn_now_ns(), wait = 0;
	char msg[300];
	struct tenant_who who = {.cfg = cl->snap->cfg, .user = cl->user, .database = cl->database};
	struct tenant_ref tr = {.state = cl->tenant, .cfg = cl->tenant_cfg};
	enum rate_verdict v = rate_take(&who, &tr, now, 0, &wait, msg, sizeof(msg));
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
			tx_refuse(local, status, "53400", msg,
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
			tx_ob_synth(local, buf, e.len);
		cl->rate_drop_batch = true;
		cl->rate_in_batch = true;
		return tx_rate_gate(cl, sv, m, total, local);
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
	for (struct client *c = cw_of(w)->clients, *n; c; c = n) {
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

/* Statement rewriting ([[rewrite_rules]], a tenant's schema_prefix) applies
 * to this client. */
bool tx_rewrite_active(const struct client *cl)
{
	return cl->snap->rewrite || tenant_schema(cl->tenant_cfg)[0];
}

/* Rewrites the Query and Parse texts in the client's buffer that were not
 * looked at yet, in place, so routing, the cache and the server all see
 * the rewritten text. A failure leaves the statement as written. */
void tx_rewrite_input(struct client *cl)
{
	struct endpoint *ep = &cl->ep;
	const char *schema = tenant_schema(cl->tenant_cfg);
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
