/*
 * The router, a PIPE_AT_ROUTE stage; see route.h. Runs on the client's
 * worker when a transaction needs a server: no locks (the routing table is
 * copied into the thread when its version changes), analysis from the
 * thread's LRU. Decides from struct req; a client's read-your-writes
 * memory is its slot.
 */
#include "dataplane/pipeline/route.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/hints.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/policy/control.h"
#include "dataplane/pool/pool.h"

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

/* The thread's routing state: the control plane's table as last copied,
 * the statement-analysis LRU, the round-robin counter. */
static __thread struct route_worker {
	uint64_t ver;
	size_t n;
	struct route_node node[BREAKER_MAX_NODES];
	struct an_cache *an;
	uint32_t rr;
} * rwk;

static struct route_source src;

void route_set_source(const struct route_source *s)
{
	src = *s;
}

/* The thread's state, NULL when out of memory (then: no table, no cache). */
static struct route_worker *me(void)
{
	if (!rwk)
		rwk = calloc(1, sizeof(*rwk));
	return rwk;
}

void route_refresh(void)
{
	struct route_worker *w = me();
	if (!w || !src.version || !src.copy)
		return;
	uint64_t v = src.version();
	if (v == w->ver)
		return;
	w->ver = v;
	w->n = src.copy(w->node, BREAKER_MAX_NODES);
}

void route_worker_exit(void)
{
	if (rwk)
		an_cache_free(rwk->an);
	free(rwk);
	rwk = NULL;
	free(shape_cache);
	shape_cache = NULL;
}

static void ryw_free(union pipe_slot *slot)
{
	free(slot->p);
	slot->p = NULL;
}

static const struct route_node *view(const char *name)
{
	const struct route_worker *w = rwk;
	for (size_t i = 0; w && i < w->n; i++)
		if (!strcmp(w->node[i].name, name))
			return &w->node[i];
	return NULL;
}

static bool drained(const char *name)
{
	return src.any_drained && src.node_drained && src.any_drained() && src.node_drained(name);
}

int route_primary(const struct cfg *c)
{
	route_refresh();
	int cfg_primary = -1;
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct route_node *v = view(c->nodes[i].name);
		if (v && v->known && v->primary && v->healthy)
			return (int)i;
		if (cfg_primary < 0 && c->nodes[i].role == CFG_ROLE_PRIMARY)
			cfg_primary = (int)i;
	}
	/* the table names a primary that is down: still that one (its
	 * clients wait for it or for a failover) */
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct route_node *v = view(c->nodes[i].name);
		if (v && v->known && v->primary)
			return (int)i;
	}
	return cfg_primary;
}

static bool node_up(const struct cfg *c, int i)
{
	const struct route_node *v = view(c->nodes[i].name);
	if (v && v->known && (!v->healthy || v->draining))
		return false;
	if (drained(c->nodes[i].name))
		return false;
	return breaker_usable(c, i);
}

static bool replica_ok(const struct cfg *c, int i)
{
	const struct route_node *v = view(c->nodes[i].name);
	bool is_replica = v && v->known ? !v->primary : c->nodes[i].role == CFG_ROLE_REPLICA;
	if (!is_replica || !node_up(c, i))
		return false;
	/* unknown lag (no check user, heartbeat not replicated yet) is eligible */
	return !v || v->lag_ms < 0 || v->lag_ms <= c->routing.max_replica_lag_ms;
}

static int pool_busy(const struct req *r, int node)
{
	struct pool *p = pool_lookup(r->database, r->user, tenant_id(r->tenant), node,
	                             tenant_server_cap(r->tenant_cfg));
	return p ? pool_busy_hint(p) : 0;
}

/* Least busy eligible replica, ties round robin; -1 if none. */
static int pick_replica(const struct req *r, const struct cfg *c)
{
	struct route_worker *w = me();
	uint32_t rr = w ? w->rr : 0;
	int best = -1, best_busy = 0, ties = 0;
	for (size_t k = 0; k < c->n_nodes; k++) {
		/* start the scan at a rotating point so ties spread */
		int i = (int)((k + rr) % c->n_nodes);
		if (!replica_ok(c, i))
			continue;
		int busy = src.busy ? src.busy(r, i) : pool_busy(r, i);
		if (best < 0 || busy < best_busy) {
			best = i;
			best_busy = busy;
			ties = 0;
		} else if (busy == best_busy) {
			ties++;
		}
	}
	if (w)
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

static void ryw_note(union pipe_slot *slot, const struct an_result *a, int window_ms)
{
	if (window_ms <= 0)
		return;
	if (!slot->p && !(slot->p = calloc(1, sizeof(struct ryw))))
		return;
	uint64_t until = cpwire_mono_ms() + (uint64_t)window_ms;
	struct ryw *r = slot->p;
	if (!a || a->tables_truncated || a->n_tables == 0) {
		r->all_until = until;
		return;
	}
	for (uint32_t t = 0; t < a->n_tables; t++) {
		if (!a->tables[t].written)
			continue;
		uint64_t h = table_hash(a->tables[t].name);
		uint32_t at = r->n < RYW_MAX ? r->n++ : (uint32_t)(h % RYW_MAX);
		for (uint32_t k = 0; k < r->n; k++)
			if (r->hash[k] == h)
				at = k;
		r->hash[at] = h;
		r->until[at] = until;
	}
}

static bool ryw_blocks(const union pipe_slot *slot, const struct an_result *a)
{
	const struct ryw *r = slot->p;
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

const struct an_result *route_analysis(const struct cfg *c, const char *sql, size_t len)
{
	struct route_worker *w = me();
	if (!w)
		return NULL;
	if (!w->an) {
		size_t entries = (size_t)c->routing.analysis_cache_entries;
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

static int shape_is_read(const struct cfg *c, const char *sql, size_t len)
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
	const struct an_result *a = route_analysis(c, sql, len);
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
static int to_primary(const struct cfg *c, char *msg, size_t msglen)
{
	int p = route_primary(c);
	if (p < 0) {
		snprintf(msg, msglen, "no primary node is configured");
		return ROUTE_FAIL;
	}
	const struct route_node *v = view(c->nodes[p].name);
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

static int to_node(const struct cfg *c, int i, char *msg, size_t msglen)
{
	if (!node_up(c, i) || !breaker_allow(c, i)) {
		enum breaker_state bs = breaker_state(i);
		snprintf(msg, msglen, "node \"%s\" is not available (%s)", c->nodes[i].name,
		         bs != BREAKER_CLOSED ? "circuit breaker open"
		                              : "unhealthy or drained, per the control plane");
		return ROUTE_FAIL;
	}
	return i;
}

int route_pick(struct req *r, char *msg, size_t msglen)
{
	const struct cfg *c = r->snap->cfg;
	union pipe_slot *slot = &r->pc->slot[PIPE_SLOT_ROUTE];
	if ((r->mode != PIPE_MODE_TXN && r->mode != PIPE_MODE_STMT) || r->replication)
		return to_primary(c, msg, msglen);
	route_refresh();
	size_t len = r->sql_len;
	const char *sql = r->sql;
	if (!sql)
		return to_primary(c, msg, msglen);

	/* a plugin's hint (on_query_start) wins over the statement's own */
	if (r->pc->rflags & PIPE_RF_HINT_PRIMARY)
		return to_primary(c, msg, msglen);
	if (r->pc->rflags & PIPE_RF_HINT_REPLICA) {
		int i = pick_replica(r, c);
		if (i >= 0 && breaker_allow(c, i))
			return i;
		return to_primary(c, msg, msglen);
	}
	if ((r->pc->rflags & PIPE_RF_HINT_NODE) && r->pc->hint_node >= 0 &&
	    (size_t)r->pc->hint_node < c->n_nodes)
		return to_node(c, r->pc->hint_node, msg, msglen);
	if (hints_maybe(sql, len)) {
		struct hints h;
		hints_scan(sql, len, &h);
		if (h.ignored)
			log_debug("client %llu: hint ignored: %s", (unsigned long long)r->client_id,
			          h.ignored);
		if (h.route == HINT_ROUTE_PRIMARY)
			return to_primary(c, msg, msglen);
		if (h.route == HINT_ROUTE_REPLICA) {
			int i = pick_replica(r, c);
			if (i >= 0 && breaker_allow(c, i))
				return i;
			log_debug(
			    "client %llu: route=replica: no eligible replica, using the primary",
			    (unsigned long long)r->client_id);
			return to_primary(c, msg, msglen);
		}
		if (h.route == HINT_ROUTE_NODE) {
			int i = cfg_node_index(c, h.node);
			if (i >= 0)
				return to_node(c, i, msg, msglen);
			log_debug("client %llu: route=%s names no node: ignored",
			          (unsigned long long)r->client_id, h.node);
		}
	}
	if (r->pc->rflags & PIPE_RF_PRIMARY_ONLY)
		return to_primary(c, msg, msglen); /* a cacheable miss: answers are kept
		                                         only from the primary */
	bool split = c->routing.read_write_split;
	if (!split && !c->n_schema_routes)
		return to_primary(c, msg, msglen);
	if (!c->n_schema_routes && c->routing.read_your_writes_ms <= 0) {
		/* plain split needs only "is it a read": per shape, so texts that
		 * differ in literals are parsed once */
		int read = shape_is_read(c, sql, len);
		if (read > 0) {
			int i = pick_replica(r, c);
			if (i >= 0 && breaker_allow(c, i))
				return i;
		}
		return to_primary(c, msg, msglen);
	}
	const struct an_result *a = route_analysis(c, sql, len);
	if (!a)
		return to_primary(c, msg, msglen);
	bool read = is_read(a);
	if (!read && c->routing.read_your_writes_ms > 0 && a->kind != AN_TXN)
		ryw_note(slot, a->kind == AN_WRITE ? a : NULL, c->routing.read_your_writes_ms);
	else if (!read && c->routing.read_your_writes_ms > 0)
		ryw_note(slot, NULL, c->routing.read_your_writes_ms); /* an explicit transaction */

	for (size_t k_sr = 0; k_sr < c->n_schema_routes; k_sr++) {
		const struct cfg_schema_route *sr = &c->schema_routes[k_sr];
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
				    (unsigned long long)r->client_id, k_sr + 1, sr->target);
			return to_primary(c, msg, msglen);
		}
		if (!strcmp(sr->target, "replica")) {
			int i = pick_replica(r, c);
			return i >= 0 && breaker_allow(c, i) ? i : to_primary(c, msg, msglen);
		}
		int i = cfg_node_index(c, sr->target);
		if (i >= 0 && node_up(c, i) && breaker_allow(c, i))
			return i;
		return to_primary(c, msg, msglen);
	}
	if (split && read && !(c->routing.read_your_writes_ms > 0 && ryw_blocks(slot, a))) {
		int i = pick_replica(r, c);
		if (i >= 0 && breaker_allow(c, i))
			return i;
	}
	return to_primary(c, msg, msglen);
}

static enum pipe_verdict route_run(struct req *r, union pipe_slot *slot)
{
	(void)slot;
	char msg[300] = "";
	int node = route_pick(r, msg, sizeof(msg));
	if (node == ROUTE_HOLD) {
		r->park.kind = PIPE_WAKE_PRIMARY;
		r->park.wake_ns = 0;
		r->park.token = NULL;
		return PIPE_PARK;
	}
	if (node == ROUTE_FAIL)
		return req_error(r, "08006", NULL, "%s", msg);
	r->node = node;
	return PIPE_CONTINUE;
}

const struct pipe_stage stage_route = {
    .name = "route",
    .point = PIPE_AT_ROUTE,
    .slot = PIPE_SLOT_ROUTE,
    .order = 100,
    .run = route_run,
    .client_free = ryw_free,
};
