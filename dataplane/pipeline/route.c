/*
 * Query routing; see route.h. Runs on the client's worker when a
 * transaction needs a server: no locks (the routing table is copied into
 * the worker when its version changes), analysis from the worker's LRU.
 */
#include "dataplane/pipeline/route.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/conn/conn.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/hints.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pool/pool.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/policy/control.h"
#include "dataplane/rt/worker.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RYW_MAX 16

/* Tables a client wrote lately (read_your_writes_ms). */
struct ryw {
	uint64_t all_until; /* a write we could not attribute: every table */
	uint32_t n;
	uint64_t hash[RYW_MAX];
	uint64_t until[RYW_MAX];
};

/* shape -> read-only verdict, per worker thread, direct-mapped */
#define SHAPE_CACHE 4096
static __thread struct shape_slot {
	uint64_t shape;
	int8_t read; /* 1 read, 0 not, -1 empty */
} * shape_cache;

void route_refresh(struct worker *w)
{
	uint64_t v = ctl_routing_version();
	if (v == w->route_ver)
		return;
	w->route_ver = v;
	w->n_route = ctl_routing_copy(w->route, BREAKER_MAX_NODES);
}

void route_worker_exit(struct worker *w)
{
	an_cache_free(w->an);
	w->an = NULL;
	free(shape_cache);
	shape_cache = NULL;
}

void route_client_free(struct client *cl)
{
	free(cl->ryw);
	cl->ryw = NULL;
}

static const struct route_node *view(const struct worker *w, const char *name)
{
	for (size_t i = 0; i < w->n_route; i++)
		if (!strcmp(w->route[i].name, name))
			return &w->route[i];
	return NULL;
}

int route_primary(struct worker *w, const struct cfg *c)
{
	route_refresh(w);
	int cfg_primary = -1;
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct route_node *v = view(w, c->nodes[i].name);
		if (v && v->known && v->primary && v->healthy)
			return (int)i;
		if (cfg_primary < 0 && c->nodes[i].role == CFG_ROLE_PRIMARY)
			cfg_primary = (int)i;
	}
	/* the table names a primary that is down: still that one (its
	 * clients wait for it or for a failover) */
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct route_node *v = view(w, c->nodes[i].name);
		if (v && v->known && v->primary)
			return (int)i;
	}
	return cfg_primary;
}

static bool node_up(struct worker *w, const struct cfg *c, int i)
{
	const struct route_node *v = view(w, c->nodes[i].name);
	if (v && v->known && (!v->healthy || v->draining))
		return false;
	if (ctl_any_drained() && ctl_node_drained(c->nodes[i].name))
		return false;
	return breaker_usable(c, i);
}

static bool replica_ok(struct worker *w, const struct cfg *c, int i)
{
	const struct route_node *v = view(w, c->nodes[i].name);
	bool is_replica = v && v->known ? !v->primary : c->nodes[i].role == CFG_ROLE_REPLICA;
	if (!is_replica || !node_up(w, c, i))
		return false;
	/* unknown lag (no check user, heartbeat not replicated yet) is eligible */
	return !v || v->lag_ms < 0 || v->lag_ms <= c->routing.max_replica_lag_ms;
}

/* Least busy eligible replica, ties round robin; -1 if none. */
static int pick_replica(struct client *cl, const struct cfg *c)
{
	struct worker *w = cl->w;
	int best = -1, best_busy = 0, ties = 0;
	for (size_t k = 0; k < c->n_nodes; k++) {
		/* start the scan at a rotating point so ties spread */
		int i = (int)((k + w->rr) % c->n_nodes);
		if (!replica_ok(w, c, i))
			continue;
		struct pool *p = pool_lookup(cl->database, cl->user, tenant_id(cl->tenant), i,
		                             tenant_server_cap(cl->tenant_cfg));
		int busy = p ? pool_busy_hint(p) : 0;
		if (best < 0 || busy < best_busy) {
			best = i;
			best_busy = busy;
			ties = 0;
		} else if (busy == best_busy) {
			ties++;
		}
	}
	w->rr++;
	(void)ties;
	return best;
}

static uint64_t table_hash(const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = name; *p; p++) {
		h ^= (uint8_t)tolower((unsigned char)*p);
		h *= 1099511628211ull;
	}
	return h;
}

static void ryw_note(struct client *cl, const struct an_result *a, int window_ms)
{
	if (window_ms <= 0)
		return;
	if (!cl->ryw && !(cl->ryw = calloc(1, sizeof(*cl->ryw))))
		return;
	uint64_t until = cpwire_mono_ms() + (uint64_t)window_ms;
	struct ryw *r = cl->ryw;
	if (!a || a->tables_truncated || a->n_tables == 0) {
		r->all_until = until;
		return;
	}
	for (uint32_t t = 0; t < a->n_tables; t++) {
		if (!a->tables[t].written)
			continue;
		uint64_t h = table_hash(a->tables[t].name);
		uint32_t slot = r->n < RYW_MAX ? r->n++ : (uint32_t)(h % RYW_MAX);
		for (uint32_t k = 0; k < r->n; k++)
			if (r->hash[k] == h)
				slot = k;
		r->hash[slot] = h;
		r->until[slot] = until;
	}
}

static bool ryw_blocks(const struct client *cl, const struct an_result *a)
{
	const struct ryw *r = cl->ryw;
	if (!r)
		return false;
	uint64_t now = cpwire_mono_ms();
	if (r->all_until > now)
		return true;
	for (uint32_t t = 0; t < a->n_tables; t++) {
		uint64_t h = table_hash(a->tables[t].name);
		for (uint32_t k = 0; k < r->n; k++)
			if (r->hash[k] == h && r->until[k] > now)
				return true;
	}
	return false;
}

/* The SQL text of the first buffered message (Query, Parse, or the
 * statement a Bind names); NULL when there is none to look at. */
static const char *first_sql(struct client *cl, size_t *len)
{
	const uint8_t *b = cl->ep.in;
	uint32_t n = cl->ep.in_len;
	if (n < 5)
		return NULL;
	uint32_t mlen = pgw_get_u32(b + 1);
	if (mlen < 4 || (size_t)mlen + 1 > n)
		return NULL;
	const char *body = (const char *)b + 5;
	size_t blen = mlen - 4;
	const char *end = memchr(body, '\0', blen);
	if (!end)
		return NULL;
	switch (b[0]) {
	case 'Q':
		*len = (size_t)(end - body);
		return body;
	case 'P': {
		const char *q = end + 1;
		const char *qe = memchr(q, '\0', blen - (size_t)(q - body));
		if (!qe)
			return NULL;
		*len = (size_t)(qe - q);
		return q;
	}
	case 'B': {
		const char *st = end + 1;
		if (!memchr(st, '\0', blen - (size_t)(st - body)))
			return NULL;
		const struct prep_stmt *ps = prep_client_get(&cl->prep, st);
		if (!ps || !ps->body || !memchr(ps->body, '\0', ps->body_len))
			return NULL;
		*len = strlen((const char *)ps->body);
		return (const char *)ps->body;
	}
	default:
		return NULL;
	}
}

static bool table_match(const char *route_table, const struct an_table *t)
{
	const char *dot = strchr(route_table, '.');
	if (!dot)
		return !strcasecmp(route_table, t->name);
	size_t sl = (size_t)(dot - route_table);
	if (strcasecmp(dot + 1, t->name))
		return false;
	/* an unqualified name in the statement may be the routed one */
	return !t->schema[0] ||
	       (strlen(t->schema) == sl && !strncasecmp(route_table, t->schema, sl));
}

const struct an_result *route_analysis(struct client *cl, const char *sql, size_t len)
{
	struct worker *w = cl->w;
	if (!w->an) {
		size_t entries = (size_t)cl->snap->cfg->routing.analysis_cache_entries;
		w->an = an_cache_new(entries, entries * 2048);
		if (!w->an)
			return NULL;
	}
	return an_cache_get(w->an, sql, len);
}

static bool is_read(const struct an_result *a)
{
	if (a->parse_error || a->too_complex)
		return false;
	if (a->kind == AN_READ && a->n_stmts > 0)
		return true;
	/* BEGIN READ ONLY alone: the whole transaction reads */
	return a->kind == AN_TXN && a->n_stmts == 1 && a->stmts[0].begin_read_only;
}

static int shape_is_read(struct client *cl, const char *sql, size_t len)
{
	uint64_t shape = sql_shape(sql, len);
	if (!shape_cache) {
		shape_cache = malloc(SHAPE_CACHE * sizeof(*shape_cache));
		for (size_t i = 0; shape_cache && i < SHAPE_CACHE; i++)
			shape_cache[i].read = -1;
	}
	struct shape_slot *s = shape_cache ? &shape_cache[shape % SHAPE_CACHE] : NULL;
	if (s && s->read >= 0 && s->shape == shape)
		return s->read;
	const struct an_result *a = route_analysis(cl, sql, len);
	if (!a)
		return -1;
	int read = is_read(a) ? 1 : 0;
	if (s) {
		s->shape = shape;
		s->read = (int8_t)read;
	}
	return read;
}

/* Primary, or hold while a failover may still give us one. */
static int to_primary(struct client *cl, const struct cfg *c, char *msg, size_t msglen)
{
	int p = route_primary(cl->w, c);
	if (p < 0) {
		snprintf(msg, msglen, "no primary node is configured");
		return ROUTE_FAIL;
	}
	const struct route_node *v = view(cl->w, c->nodes[p].name);
	if (v && v->known && !v->healthy)
		return ROUTE_HOLD; /* the control plane sees it down: failover may follow */
	if (!breaker_allow(c, p)) {
		snprintf(msg, msglen,
		         "the circuit breaker for primary node \"%s\" is open after repeated "
		         "connection failures; retrying in at most %d s",
		         c->nodes[p].name, c->circuit_breaker.recovery_timeout_secs);
		return ROUTE_FAIL;
	}
	return p;
}

static int to_node(struct client *cl, const struct cfg *c, int i, char *msg, size_t msglen)
{
	if (!node_up(cl->w, c, i) || !breaker_allow(c, i)) {
		enum breaker_state bs = breaker_state(i);
		snprintf(msg, msglen, "node \"%s\" is not available (%s)", c->nodes[i].name,
		         bs != BREAKER_CLOSED ? "circuit breaker open"
		                              : "unhealthy or drained, per the control plane");
		return ROUTE_FAIL;
	}
	return i;
}

int route_pick(struct client *cl, char *msg, size_t msglen)
{
	const struct cfg *c = cl->snap->cfg;
	if (!cl->txn || cl->replication)
		return to_primary(cl, c, msg, msglen);
	route_refresh(cl->w);
	size_t len = 0;
	const char *sql = first_sql(cl, &len);
	if (!sql)
		return to_primary(cl, c, msg, msglen);

	if (hints_maybe(sql, len)) {
		struct hints h;
		hints_scan(sql, len, &h);
		if (h.ignored)
			log_debug("client %llu: hint ignored: %s", (unsigned long long)cl->id,
			          h.ignored);
		if (h.route == HINT_ROUTE_PRIMARY)
			return to_primary(cl, c, msg, msglen);
		if (h.route == HINT_ROUTE_REPLICA) {
			int r = pick_replica(cl, c);
			if (r >= 0 && breaker_allow(c, r))
				return r;
			log_debug(
			    "client %llu: route=replica: no eligible replica, using the primary",
			    (unsigned long long)cl->id);
			return to_primary(cl, c, msg, msglen);
		}
		if (h.route == HINT_ROUTE_NODE) {
			int i = cfg_node_index(c, h.node);
			if (i >= 0)
				return to_node(cl, c, i, msg, msglen);
			log_debug("client %llu: route=%s names no node: ignored",
			          (unsigned long long)cl->id, h.node);
		}
	}
	if (cl->cache_lead)
		return to_primary(cl, c, msg, msglen); /* a cacheable miss: answers are kept
		                                         only from the primary */
	bool split = c->routing.read_write_split;
	if (!split && !c->n_schema_routes)
		return to_primary(cl, c, msg, msglen);
	if (!c->n_schema_routes && c->routing.read_your_writes_ms <= 0) {
		/* plain split needs only "is it a read": per shape, so texts that
		 * differ in literals are parsed once */
		int read = shape_is_read(cl, sql, len);
		if (read > 0) {
			int i = pick_replica(cl, c);
			if (i >= 0 && breaker_allow(c, i))
				return i;
		}
		return to_primary(cl, c, msg, msglen);
	}
	const struct an_result *a = route_analysis(cl, sql, len);
	if (!a)
		return to_primary(cl, c, msg, msglen);
	bool read = is_read(a);
	if (!read && c->routing.read_your_writes_ms > 0 && a->kind != AN_TXN)
		ryw_note(cl, a->kind == AN_WRITE ? a : NULL, c->routing.read_your_writes_ms);
	else if (!read && c->routing.read_your_writes_ms > 0)
		ryw_note(cl, NULL, c->routing.read_your_writes_ms); /* an explicit transaction */

	for (size_t r = 0; r < c->n_schema_routes; r++) {
		const struct cfg_schema_route *sr = &c->schema_routes[r];
		bool hit = false;
		for (uint32_t t = 0; !hit && t < a->n_tables; t++)
			for (size_t k = 0; !hit && k < sr->n_tables; k++)
				hit = table_match(sr->tables[k], &a->tables[t]);
		if (!hit)
			continue;
		if (!strcmp(sr->target, "primary") || !read) {
			if (!read && strcmp(sr->target, "primary"))
				log_debug(
				    "client %llu: schema route %zu (%s) is not the primary; a "
				    "write goes to the primary",
				    (unsigned long long)cl->id, r + 1, sr->target);
			return to_primary(cl, c, msg, msglen);
		}
		if (!strcmp(sr->target, "replica")) {
			int i = pick_replica(cl, c);
			return i >= 0 && breaker_allow(c, i) ? i : to_primary(cl, c, msg, msglen);
		}
		int i = cfg_node_index(c, sr->target);
		if (i >= 0 && node_up(cl->w, c, i) && breaker_allow(c, i))
			return i;
		return to_primary(cl, c, msg, msglen);
	}
	if (split && read && !(c->routing.read_your_writes_ms > 0 && ryw_blocks(cl, a))) {
		int i = pick_replica(cl, c);
		if (i >= 0 && breaker_allow(c, i))
			return i;
	}
	return to_primary(cl, c, msg, msglen);
}
