/*
 * Query result cache glue; see cache.h and docs/cache.md.
 *
 * Correctness rests on three things:
 *  - cacheability: one plain SELECT outside a transaction whose tables are
 *    all ordinary tables (no views, temp, catalog, inheritance, RLS unless
 *    configured) and whose functions and operators are all immutable by
 *    the server's catalog; no 'now'-like date literals;
 *  - the key: database, user, every result-affecting setting the client
 *    has, the exact text (and for the extended protocol the statement's
 *    parameter types, bound values, formats and the message sequence);
 *  - generations: a write bumps its tables' generations when it is sent
 *    and again at every ReadyForQuery until its transaction ends; an
 *    answer is stored only if none of its tables' generations moved
 *    between its send and its end, and found only while they still match.
 */
#include "dataplane/pipeline/cache.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "dataplane/pipeline/cache_catalog.h"
#include "dataplane/pipeline/cache_req.h"
#include "dataplane/conn/conn.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/hints.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pipeline/engine/rcache.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/ireq.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/report/stats.h"
#include "dataplane/rt/worker.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FLIGHT_MAX_NS (30ull * 1000000000ull) /* a leader gone this long is abandoned */
#define WAIT_MAX_SECS 10.0                    /* a parked client then asks a server itself */

static struct rc_store *store;
static uint64_t hash_key[2];
static uint64_t n_uncacheable, n_catalog_loads, n_invalidations, n_epoch_bumps;
static uint64_t n_too_large; /* answers that outgrew max_entry_kb while recorded */

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ per connection state */

struct fill {
	bool bad;
	uint64_t hash, flight, ttl_ns, fp;
	uint8_t *key;
	size_t key_len;
	struct rc_deps deps;
	uint8_t *buf;
	size_t len, cap, max;
};

/* A server's cache state. */
struct cache_sv {
	struct fill *fill; /* a client's answer being recorded */
	struct fill *tee;  /* the fill taking the current message's body */
	bool arming;
	/* tables written by the open transaction: bumped again at each
	 * ReadyForQuery until it ends */
	uint32_t wr_n;
	uint32_t wr[16];
	bool wr_all, wr_ddl;
};

/* What cache_try decided to record, until the server comes. */
struct cache_lead {
	uint64_t req_hash; /* of the request's bytes: still the one at the head? */
	uint32_t req_len;
	uint64_t hash, flight, ttl_ns, fp;
	uint8_t *key;
	size_t key_len;
	struct rc_deps deps;
};

/* A client's memory of its unnamed statement's write effects. */
struct wsum {
	uint64_t shape, catver;
	bool used, epoch, ddl;
	uint8_t n;
	uint32_t ids[8];
};

struct cache_cl {
	struct wsum unnamed;
	bool unnamed_set;
};

static void fill_free(struct fill *f)
{
	if (!f)
		return;
	free(f->key);
	free(f->buf);
	free(f);
}

static void wake(struct rc_waiter *w, size_t n)
{
	int nw = workers_started();
	bool hit[256] = {false};
	for (size_t i = 0; i < n; i++) {
		int k = w[i].worker;
		if (k < 0 || k >= nw || k >= 256 || hit[k])
			continue;
		hit[k] = true;
		__atomic_store_n(&g_workers[k].cache_check, true, __ATOMIC_RELEASE);
		io_loop_wakeup(g_workers[k].loop);
	}
	free(w);
}

static void flight_abort(uint64_t flight)
{
	if (!flight || !store)
		return;
	struct rc_waiter *w = NULL;
	size_t n = 0;
	rc_flight_abort(store, flight, &w, &n);
	wake(w, n);
}

static struct cache_sv *sv_state(struct server *sv)
{
	if (!sv->cs)
		sv->cs = calloc(1, sizeof(*sv->cs));
	return sv->cs;
}

/* ------------------------------------------------------------ start, stop */

int cache_start(const struct cfg *c)
{
	/* the defaults until a configuration says otherwise (cache_apply_limits) */
	size_t max = (size_t)(c ? c->cache.max_memory_mb : 64) << 20;
	size_t entry = (size_t)(c ? c->cache.max_entry_kb : 256) << 10;
	store = rc_store_new(max, entry);
	cat_init(store);
	if (!store)
		return -ENOMEM;
	if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) != (ssize_t)sizeof(hash_key)) {
		hash_key[0] = conn_now_ns();
		hash_key[1] = (uint64_t)(uintptr_t)&hash_key;
	}
	return 0;
}

void cache_stop(void)
{
	cat_stop();
	if (store)
		rc_store_free(store);
	store = NULL;
}

/* ------------------------------------------------------------ invalidation */

static void bump_epoch(void)
{
	rc_epoch_bump(store);
	count(&n_epoch_bumps);
}

/* The write effects of a text, per shape (literals do not change them). */
#define WSUM_SLOTS 4096
static __thread struct wsum *wsums;

static bool starts_with_word(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	if (n < wl || strncasecmp(s, w, wl) != 0)
		return false;
	return n == wl || !(isalnum((unsigned char)s[wl]) || s[wl] == '_');
}

static void wsum_compute(struct client *cl, const char *sql, size_t len, struct wsum *out)
{
	memset(out, 0, sizeof(*out));
	const struct an_result *a = route_analysis(cl->snap->cfg, sql, len);
	if (!a) {
		out->epoch = true;
		return;
	}
	if (a->parse_error)
		return; /* the server runs none of it */
	if (a->too_complex) {
		out->epoch = true;
		return;
	}
	struct cat *c = cat_get(cl->database);
	bool writes = false;
	for (uint32_t i = 0; i < a->n_stmts; i++) {
		const struct an_stmt *st = &a->stmts[i];
		if (st->kind == AN_DDL)
			out->epoch = out->ddl = true;
		else if (st->kind == AN_WRITE)
			writes = true;
		else if (st->kind == AN_UTILITY && st->loc + st->len <= len &&
		         starts_with_word(sql + st->loc, st->len, "execute"))
			out->epoch = true; /* a SQL prepared statement: its text is elsewhere */
	}
	if (writes && (a->volatile_other || a->tables_truncated))
		out->epoch = true; /* DO, CALL without tables, more tables than we list */
	/* a function that is not built in and volatile may write anything */
	if (a->volatile_funcs) {
		if (!c || a->funcs_truncated || a->volatile_other) {
			if (!c || a->funcs_truncated)
				out->epoch = true;
		}
		for (uint32_t i = 0; c && !out->epoch && i < a->n_funcs; i++) {
			const struct an_func *f = &a->funcs[i];
			const struct cat_ent *e =
			    cat_find(c, f->is_op ? 'o' : 'f', f->schema, f->name);
			if (!e || (e->flags & CF_MAY_WRITE))
				out->epoch = true;
		}
	}
	for (uint32_t i = 0; writes && !out->epoch && i < a->n_tables; i++) {
		const struct an_table *t = &a->tables[i];
		if (!t->written)
			continue;
		const struct cat_ent *e = c ? cat_find(c, 'r', t->schema, t->name) : NULL;
		if (!c || (e && (e->flags & CF_WRITES))) {
			out->epoch = true; /* triggers, rules, or we cannot tell */
			break;
		}
		if (out->n == 8) {
			out->epoch = true;
			break;
		}
		out->ids[out->n++] = e ? e->gen : rc_gen_id(store, t->name);
	}
	cat_unref(c);
	out->used = true;
}

static const struct wsum *wsum_get(struct client *cl, const char *sql, size_t len)
{
	static __thread struct wsum scratch;
	uint64_t shape = sql_shape(sql, len);
	uint64_t dbh = 1469598103934665603ull;
	for (const char *p = cl->database; *p; p++)
		dbh = (dbh ^ (uint8_t)*p) * 1099511628211ull;
	shape ^= dbh;
	uint64_t ver = cat_version_now();
	if (!wsums)
		wsums = calloc(WSUM_SLOTS, sizeof(*wsums));
	struct wsum *s = wsums ? &wsums[shape % WSUM_SLOTS] : &scratch;
	if (s->used && s->shape == shape && s->catver == ver)
		return s;
	wsum_compute(cl, sql, len, s);
	s->used = true;
	s->shape = shape;
	s->catver = ver;
	return s;
}

/* Applies a write summary now and remembers it for the transaction's end. */
static void apply_wsum(struct server *sv, const struct wsum *w)
{
	if (!w->epoch && !w->n)
		return;
	struct cache_sv *cs = sv_state(sv);
	if (w->ddl)
		cat_drop_all();
	if (w->epoch) {
		bump_epoch();
		if (cs) {
			cs->wr_all = true;
			cs->wr_ddl |= w->ddl;
		}
		return;
	}
	for (uint8_t i = 0; i < w->n; i++) {
		rc_gen_bump(store, w->ids[i]);
		count(&n_invalidations);
		if (!cs)
			continue;
		uint32_t k = 0;
		while (k < cs->wr_n && cs->wr[k] != w->ids[i])
			k++;
		if (k == cs->wr_n) {
			if (cs->wr_n == 16)
				cs->wr_all = true;
			else
				cs->wr[cs->wr_n++] = w->ids[i];
		}
	}
}

static bool cache_on(const struct client *cl)
{
	return store && cl->snap->cfg->cache.enabled;
}

void cache_note_query(struct client *cl, struct server *sv, const char *sql, size_t len)
{
	if (!cache_on(cl))
		return;
	const char *nul = memchr(sql, '\0', len);
	if (nul)
		len = (size_t)(nul - sql);
	apply_wsum(sv, wsum_get(cl, sql, len));
}

void cache_note_parse(struct client *cl, struct server *sv, bool named, const char *sql, size_t len)
{
	if (!cache_on(cl))
		return;
	const char *nul = memchr(sql, '\0', len);
	if (nul)
		len = (size_t)(nul - sql);
	const struct wsum *w = wsum_get(cl, sql, len);
	if (!named) {
		/* a Bind without a Parse reuses it: remember what it does */
		if (!cl->cc)
			cl->cc = calloc(1, sizeof(*cl->cc));
		if (cl->cc) {
			cl->cc->unnamed = *w;
			cl->cc->unnamed_set = true;
		}
	}
	(void)sv; /* a Parse runs nothing: the Bind/Execute does */
}

void cache_note_bind(struct client *cl, struct server *sv, const char *sql, size_t len)
{
	if (!cache_on(cl))
		return;
	if (sql) {
		const char *nul = memchr(sql, '\0', len);
		if (nul)
			len = (size_t)(nul - sql);
		apply_wsum(sv, wsum_get(cl, sql, len));
		return;
	}
	if (cl->cc && cl->cc->unnamed_set) {
		apply_wsum(sv, &cl->cc->unnamed);
		return;
	}
	/* an unnamed statement parsed before the cache was on: unknown */
	struct wsum all = {.used = true, .epoch = true};
	apply_wsum(sv, &all);
}

void cache_note_unseen(struct client *cl, struct server *sv, bool unnamed_parse)
{
	if (!cache_on(cl))
		return;
	struct wsum all = {.used = true, .epoch = true};
	if (!unnamed_parse) {
		apply_wsum(sv, &all);
		return;
	}
	if (!cl->cc)
		cl->cc = calloc(1, sizeof(*cl->cc));
	if (cl->cc) {
		cl->cc->unnamed = all;
		cl->cc->unnamed_set = true;
	}
}

/* ------------------------------------------------------------ cacheability and key */

/* Settings that cannot change a query's rows or their text form. */
static bool neutral_guc(const char *name)
{
	static const char *const names[] = {
	    "application_name",
	    "statement_timeout",
	    "lock_timeout",
	    "idle_in_transaction_session_timeout",
	    "idle_session_timeout",
	    "client_min_messages",
	    "log_min_duration_statement",
	    "log_statement",
	    "work_mem",
	    "maintenance_work_mem",
	    "tcp_keepalives_idle",
	    "tcp_keepalives_interval",
	    "tcp_keepalives_count",
	    "jit",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static __thread struct sbuf tls_key; /* the key being built, reused */

static uint64_t key_hash(const uint8_t *p, size_t n)
{
	/* SipHash-1-3 with a process-random key, as the analysis cache */
	return an_siphash(hash_key, p, n);
}

/* Decides whether r may be cached; fills deps, ttl and the fingerprint. */
static bool cacheable(struct client *cl, const struct cfg *c, const struct cache_req *r,
                      struct rc_deps *deps, uint64_t *ttl_ns, uint64_t *fp, const char **why)
{
	*why = NULL;
	uint32_t ttl = 0;
	if (hints_maybe(r->text, r->text_len)) {
		struct hints h;
		hints_scan(r->text, r->text_len, &h);
		if (h.cache_skip) {
			*why = "cache=skip";
			return false;
		}
		ttl = h.cache_ttl;
	}
	const struct an_result *a = route_analysis(cl->snap->cfg, r->text, r->text_len);
	if (!a || a->parse_error || a->too_complex || a->n_stmts != 1 || a->kind != AN_READ ||
	    !a->select_only || a->volatile_other || a->tables_truncated || a->funcs_truncated) {
		*why = "not a single plain SELECT without volatile parts";
		return false;
	}
	*fp = a->fingerprint;
	if (cache_text_has_now(r->text, r->text_len)) {
		*why = "a 'now'-like date/time input";
		return false;
	}
	if (r->ext && !cache_bind_ok(r->bind_tail, r->bind_tail_len)) {
		*why = "a 'now'-like bound value";
		return false;
	}
	struct cat *cat = cat_get(cl->database);
	if (!cat) {
		*why = "catalog not loaded yet";
		return false;
	}
	bool ok = true;
	for (uint32_t i = 0; ok && i < a->n_funcs; i++) {
		const struct an_func *f = &a->funcs[i];
		const struct cat_ent *e = cat_find(cat, f->is_op ? 'o' : 'f', f->schema, f->name);
		if (!e || !(e->flags & (f->is_op ? CF_OP_OK : CF_IMMUTABLE))) {
			*why = "calls a function or operator that is not immutable";
			ok = false;
		}
	}
	deps->n = 0;
	uint32_t min_ttl = 0;
	for (uint32_t i = 0; ok && i < a->n_tables; i++) {
		const struct an_table *t = &a->tables[i];
		const struct cat_ent *e = cat_find(cat, 'r', t->schema, t->name);
		if (!e || !(e->flags & CF_CACHEABLE)) {
			*why =
			    "reads something that is not an ordinary table (view, catalog, temp, "
			    "partitioned, unknown)";
			ok = false;
			break;
		}
		if ((e->flags & CF_RLS) && !c->cache.cache_rls_tables) {
			*why = "row level security";
			ok = false;
			break;
		}
		const struct cfg_cache_table *ct = cfg_cache_table(c, t->schema, t->name);
		if (ct && !ct->enabled) {
			*why = "cache.tables enabled = false";
			ok = false;
			break;
		}
		if (ct && ct->ttl_secs > 0 && (min_ttl == 0 || (uint32_t)ct->ttl_secs < min_ttl))
			min_ttl = (uint32_t)ct->ttl_secs;
		if (deps->n == RC_MAX_DEPS) {
			ok = false;
			break;
		}
		deps->ids[deps->n++] = e->gen;
	}
	cat_unref(cat);
	if (!ok)
		return false;
	if (!ttl)
		ttl = min_ttl ? min_ttl : (uint32_t)c->cache.default_ttl_secs;
	*ttl_ns = (uint64_t)ttl * 1000000000ull;
	return true;
}

static void kb_str(struct sbuf *k, const char *s)
{
	sbuf_append(k, s, strlen(s) + 1);
}

static void build_key(struct client *cl, const struct cache_req *r, struct sbuf *k)
{
	if (k->oom) {
		sbuf_free(k);
		sbuf_init(k);
	}
	sbuf_reset(k);
	kb_str(k, r->seq);
	kb_str(k, cl->database);
	kb_str(k, cl->user);
	for (int i = 0; i < cl->want.n; i++) {
		const struct guc_ent *g = &cl->want.e[i];
		if (neutral_guc(g->name))
			continue;
		kb_str(k, g->name);
		kb_str(k, g->value);
		sbuf_append(k, g->is_stmt ? "s" : "v", 1);
	}
	sbuf_append(k, "\x01", 1);
	if (r->ext) {
		uint32_t l[2] = {r->stmt_body_len, r->bind_tail_len};
		sbuf_append(k, l, sizeof(l));
		sbuf_append(k, r->stmt_body, r->stmt_body_len);
		sbuf_append(k, r->bind_tail, r->bind_tail_len);
	} else {
		sbuf_append(k, r->text, r->text_len);
	}
}

/* ------------------------------------------------------------ catalog loads */

/* The catalog is read with an internal request (pipeline/ireq.h) on a
 * server of the database's pool, as the client's user; requests that
 * need it wait for it (once), so the first statement of a database is
 * decided with the catalog as it was when a wire client carried the
 * catalog query ahead of its own. */
struct cat_load {
	char db[64];
};

static void wake_all_workers(void)
{
	int nw = workers_started();
	for (int k = 0; k < nw; k++) {
		__atomic_store_n(&g_workers[k].cache_check, true, __ATOMIC_RELEASE);
		io_loop_wakeup(g_workers[k].loop);
	}
}

static void catalog_loaded(void *arg, const struct ireq_result *res)
{
	struct cat_load *l = arg;
	if (res->err == -ECONNRESET || res->err == -ESHUTDOWN) {
		cat_load_cancel(l->db); /* not a failure: the next request tries at once */
	} else {
		bool ok = !res->err && !res->sqlstate;
		static const uint8_t none[1];
		int r = cat_publish(l->db, ok ? (res->rows ? res->rows : none) : NULL,
		                    ok ? res->rows_len : 0, conn_now_ns());
		if (r < 0) {
			log_warn("cache: could not read the catalog of database \"%s\" (%s); "
			         "nothing is cached there for now (retried in %d s)",
			         l->db, res->message ? res->message : "?", CAT_RETRY_SECS);
		} else if (r > 0) {
			count(&n_catalog_loads);
			log_info("cache: catalog of database \"%s\" read (%zu bytes)", l->db,
			         res->rows_len);
		}
	}
	free(l);
	wake_all_workers(); /* requests parked for it decide now */
}

static void catalog_load(struct client *cl)
{
	const char *db = cl->database;
	struct cat_load *l = calloc(1, sizeof(*l));
	if (!l) {
		cat_load_cancel(db);
		return;
	}
	snprintf(l->db, sizeof(l->db), "%s", db);
	struct ireq rq = {.database = db,
	                  .user = cl->user,
	                  .tenant = tenant_id(cl->tenant),
	                  .server_cap = tenant_server_cap(cl),
	                  .sql = cat_query_sql,
	                  .max_bytes = CAT_MAX_BYTES,
	                  .done = catalog_loaded,
	                  .arg = l};
	int e = ireq_submit(&rq);
	if (e < 0) {
		log_warn("cache: could not start reading the catalog of database \"%s\": %s", db,
		         strerror(-e));
		cat_publish(db, NULL, 0, conn_now_ns()); /* failed: retried in CAT_RETRY_SECS */
		free(l);
	}
}

/* Starts a catalog load when one is due; true when cl's request must wait
 * for it (no catalog of its database yet, one being read, not woken from
 * a wait already). */
static bool catalog_wait(struct client *cl)
{
	if (cat_load_due(cl->database, conn_now_ns()))
		catalog_load(cl);
	struct cat *c = cat_get(cl->database);
	if (c) {
		cat_unref(c);
		return false;
	}
	return !cl->cache_nowait && cat_loading(cl->database);
}

/* ------------------------------------------------------------ the hit path */

static void note_hit(struct client *cl, uint64_t fp)
{
	struct worker *w = cl->w;
	if (w->qs && fp)
		qs_note_cache_hit(w->qs, fp);
}

enum cache_verdict cache_try(struct client *cl)
{
	if (!cache_on(cl) || cl->pins || cl->state != CL_ACTIVE || cl->login_pending ||
	    cl->cache_lead)
		return CACHE_PASS;
	bool wait_cat = catalog_wait(cl);
	struct cache_req r;
	if (!cache_read_req(cl, &r))
		return CACHE_PASS;
	if (wait_cat) {
		cl->cache_wait = true;
		conn_now(&cl->cache_wait_start);
		cl->w->cache_waiters++;
		return CACHE_PARKED;
	}
	const struct cfg *c = cl->snap->cfg;
	struct rc_deps deps;
	uint64_t ttl_ns = 0, fp = 0;
	const char *why;
	if (!cacheable(cl, c, &r, &deps, &ttl_ns, &fp, &why)) {
		count(&n_uncacheable);
		log_debug("client %llu: not cached: %s", (unsigned long long)cl->id, why);
		return CACHE_PASS;
	}
	struct sbuf *k = &tls_key;
	build_key(cl, &r, k);
	if (k->oom)
		return CACHE_PASS;
	uint64_t h = key_hash((const uint8_t *)k->p, k->len);
	/* generations as of now: anything written from here on makes the
	 * answer this client gets from a server too new to be compared, so
	 * the store refuses it */
	rc_deps_snapshot(store, &deps);
	struct rc_waiter me = {.worker = cl->w->idx, .client_id = cl->id};
	struct rc_hit hit;
	uint64_t flight = 0;
	bool lead = !cl->cache_nowait;
	cl->cache_nowait = false;
	enum rc_look lk = rc_lookup(store, h, k->p, k->len, conn_now_ns(), lead, &me, FLIGHT_MAX_NS,
	                            &hit, &flight);
	if (lk == RC_HIT) {
		if (r.ext && r.pname && r.pname[0])
			prep_client_put(&cl->prep, r.pname, r.stmt_body, r.stmt_body_len);
		ep_send_bytes(&cl->ep, hit.data, hit.len);
		rc_release(store, hit.e);
		ep_in_consume(&cl->ep, r.total);
		note_hit(cl, fp);
		return CACHE_ANSWERED;
	}
	if (lk == RC_MISS_WAIT) {
		cl->cache_wait = true;
		conn_now(&cl->cache_wait_start);
		cl->w->cache_waiters++;
		return CACHE_PARKED;
	}
	struct cache_lead *ld = calloc(1, sizeof(*ld));
	uint8_t *kc = ld ? malloc(k->len) : NULL;
	if (!ld || !kc) {
		free(ld);
		flight_abort(flight);
		return CACHE_PASS;
	}
	memcpy(kc, k->p, k->len);
	*ld = (struct cache_lead){.req_hash = key_hash(cl->ep.in, r.total),
	                          .req_len = r.total,
	                          .hash = h,
	                          .flight = flight,
	                          .ttl_ns = ttl_ns,
	                          .fp = fp,
	                          .key = kc,
	                          .key_len = k->len,
	                          .deps = deps};
	cl->cache_lead = ld;
	return CACHE_PASS;
}

static void lead_free(struct client *cl)
{
	struct cache_lead *ld = cl->cache_lead;
	if (!ld)
		return;
	cl->cache_lead = NULL;
	flight_abort(ld->flight);
	free(ld->key);
	free(ld);
}

void cache_arm(struct client *cl, struct server *sv, const uint8_t *data, uint32_t len)
{
	struct cache_lead *ld = cl->cache_lead;
	if (!ld)
		return;
	if (len < ld->req_len || key_hash(data, ld->req_len) != ld->req_hash) {
		/* answered some other way meanwhile (refused, say) */
		lead_free(cl);
		return;
	}
	struct cache_sv *cs = sv_state(sv);
	const struct cfg *c = cl->snap->cfg;
	/* stored only from the primary: a replica may not have replayed the
	 * write whose invalidation this answer would outlive */
	bool primary = sv->node_idx == route_primary(c);
	if (!cs || cs->fill || !primary || sv->tx_status != 'I') {
		lead_free(cl);
		return;
	}
	struct fill *f = calloc(1, sizeof(*f));
	if (!f) {
		lead_free(cl);
		return;
	}
	f->hash = ld->hash;
	f->flight = ld->flight;
	f->ttl_ns = ld->ttl_ns;
	f->fp = ld->fp;
	f->key = ld->key;
	f->key_len = ld->key_len;
	f->deps = ld->deps;
	f->max = (size_t)c->cache.max_entry_kb << 10;
	free(ld);
	cl->cache_lead = NULL;
	cs->fill = f;
	cs->arming = true;
}

bool cache_arming(const struct server *sv)
{
	return sv->cs && sv->cs->arming;
}

void cache_request_end(struct server *sv)
{
	if (sv->cs)
		sv->cs->arming = false;
}

/* ------------------------------------------------------------ recording answers */

static void fill_put(struct fill *f, const void *p, size_t n)
{
	if (f->bad)
		return;
	if (f->len + n > f->max) {
		f->bad = true; /* over max_entry_kb */
		count(&n_too_large);
		free(f->buf);
		f->buf = NULL;
		f->len = f->cap = 0;
		return;
	}
	if (f->len + n > f->cap) {
		size_t cap = f->cap ? f->cap : 1024;
		while (cap < f->len + n)
			cap *= 2;
		uint8_t *b = realloc(f->buf, cap);
		if (!b) {
			f->bad = true;
			return;
		}
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, p, n);
	f->len += n;
}

void cache_tee_header(struct server *sv, uint8_t flags, uint8_t type, bool fwd,
                      const uint8_t hdr[5])
{
	struct cache_sv *cs = sv->cs;
	cs->tee = NULL;
	if (!(flags & RQ_F_FILL))
		return;
	struct fill *f = cs->fill;
	if (!(flags & RQ_F_FILL) || !f || f->bad)
		return;
	if (type == 'E') {
		f->bad = true;
		return;
	}
	if (!fwd)
		return; /* answers to what the proxy injected */
	switch (type) {
	case '1':
	case '2':
	case 'T':
	case 'D':
	case 'C':
	case 'n':
		fill_put(f, hdr, 5);
		cs->tee = f;
		break;
	default:
		/* a notice, a setting change, COPY, a notification...: not
		 * something every client should get again */
		f->bad = true;
		break;
	}
}

void cache_tee_body(struct server *sv, const uint8_t *p, size_t n)
{
	if (sv->cs && sv->cs->tee)
		fill_put(sv->cs->tee, p, n);
}

void cache_tee_synth(struct server *sv, uint8_t type)
{
	struct fill *f = sv->cs ? sv->cs->fill : NULL;
	if (!f)
		return;
	uint8_t m[5] = {type, 0, 0, 0, 4};
	fill_put(f, m, 5);
}

void cache_ready(struct server *sv, uint8_t flags, char status)
{
	struct cache_sv *cs = sv->cs;
	if (!cs)
		return;
	cs->tee = NULL;
	/* the writes of this transaction again, now that they may be committed */
	if (cs->wr_all) {
		bump_epoch();
		if (cs->wr_ddl)
			cat_drop_all();
	} else {
		for (uint32_t i = 0; i < cs->wr_n; i++)
			rc_gen_bump(store, cs->wr[i]);
	}
	if (status == 'I') {
		cs->wr_n = 0;
		cs->wr_all = cs->wr_ddl = false;
	}
	if ((flags & RQ_F_FILL) && cs->fill) {
		struct fill *f = cs->fill;
		cs->fill = NULL;
		cs->arming = false;
		if (f->bad || status != 'I') {
			flight_abort(f->flight);
			fill_free(f);
			return;
		}
		uint8_t z[6] = {'Z', 0, 0, 0, 5, 'I'};
		fill_put(f, z, 6);
		struct rc_waiter *w = NULL;
		size_t n = 0;
		if (!f->bad) {
			int r = rc_insert(store, f->flight, f->hash, f->key, f->key_len, f->buf,
			                  f->len, &f->deps, conn_now_ns() + f->ttl_ns, &w, &n);
			log_debug("cache: %zu-byte answer %s", f->len,
			          r == 0 ? "stored" : "not stored (stale, too large or no room)");
			wake(w, n);
		} else {
			flight_abort(f->flight);
		}
		fill_free(f);
	}
}

void cache_fill_abort(struct server *sv)
{
	struct cache_sv *cs = sv->cs;
	if (!cs || !cs->fill)
		return;
	flight_abort(cs->fill->flight);
	fill_free(cs->fill);
	cs->fill = NULL;
	cs->arming = false;
	cs->tee = NULL;
}

void cache_server_abort(struct server *sv)
{
	struct cache_sv *cs = sv->cs;
	if (!cs)
		return;
	if (cs->fill) {
		flight_abort(cs->fill->flight);
		fill_free(cs->fill);
		cs->fill = NULL;
	}
	cs->tee = NULL;
	cs->arming = false;
	if (cs->wr_n || cs->wr_all) {
		/* the connection went away mid-transaction: whatever it wrote
		 * is rolled back, but say so to be safe */
		if (cs->wr_all)
			bump_epoch();
		for (uint32_t i = 0; !cs->wr_all && i < cs->wr_n; i++)
			rc_gen_bump(store, cs->wr[i]);
		cs->wr_n = 0;
		cs->wr_all = cs->wr_ddl = false;
	}
}

void cache_server_free(struct server *sv)
{
	cache_server_abort(sv);
	free(sv->cs);
	sv->cs = NULL;
}

void cache_client_free(struct client *cl)
{
	lead_free(cl);
	if (cl->cache_wait && cl->w) {
		cl->cache_wait = false;
		cl->w->cache_waiters--;
	}
	free(cl->cc);
	cl->cc = NULL;
}

/* ------------------------------------------------------------ waiters */

void cache_worker_wake(struct worker *w)
{
	for (struct client *c = w->clients, *next; c && w->cache_waiters; c = next) {
		next = c->all_next;
		if (!c->cache_wait)
			continue;
		c->cache_wait = false;
		w->cache_waiters--;
		c->cache_nowait = true; /* at most one wait per request */
		tx_client_input(c);
	}
}

void cache_worker_tick(struct worker *w, const struct timespec *now)
{
	if (!w->cache_waiters)
		return;
	for (struct client *c = w->clients, *next; c; c = next) {
		next = c->all_next;
		if (c->cache_wait && conn_elapsed(&c->cache_wait_start, now) >= WAIT_MAX_SECS) {
			c->cache_wait = false;
			w->cache_waiters--;
			c->cache_nowait = true;
			tx_client_input(c);
		}
	}
}

void cache_worker_exit(struct worker *w)
{
	(void)w;
	cat_thread_exit();
	free(wsums);
	wsums = NULL;
	sbuf_free(&tls_key);
}

/* ------------------------------------------------------------ admin */

size_t cache_flush(const char *table)
{
	if (!store)
		return 0;
	if (!table || !table[0])
		return rc_flush_all(store);
	const char *dot = strrchr(table, '.');
	return rc_flush_table(store, rc_gen_id(store, dot ? dot + 1 : table));
}

Helios__CacheStats *cache_stats_msg(void)
{
	if (!store)
		return NULL;
	Helios__CacheStats *m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	helios__cache_stats__init(m);
	struct rc_stats st;
	rc_stats(store, &st);
	struct snap *sn = snap_current();
	m->enabled = sn && sn->cfg->cache.enabled;
	snap_unref(sn);
	m->entries = st.entries;
	m->bytes = st.bytes;
	m->max_bytes = st.max_bytes;
	m->hits = st.hits;
	m->misses = st.misses;
	m->stores = st.stores;
	m->evictions = st.evictions;
	m->invalidated = st.invalidated;
	m->expired = st.expired;
	m->too_large = st.too_large + __atomic_load_n(&n_too_large, __ATOMIC_RELAXED);
	m->stale_fills = st.stale_fills;
	m->waits = st.waits;
	m->flushes = st.flushes;
	m->uncacheable = __atomic_load_n(&n_uncacheable, __ATOMIC_RELAXED);
	m->catalog_loads = __atomic_load_n(&n_catalog_loads, __ATOMIC_RELAXED);
	m->invalidations = __atomic_load_n(&n_invalidations, __ATOMIC_RELAXED);
	m->epoch_bumps = __atomic_load_n(&n_epoch_bumps, __ATOMIC_RELAXED);
	return m;
}

/* Live config: new limits apply to the store at the next report tick. */
void cache_apply_limits(const struct cfg *c)
{
	if (store)
		rc_store_set_limits(store, (size_t)c->cache.max_memory_mb << 20,
		                    (size_t)c->cache.max_entry_kb << 10);
}
