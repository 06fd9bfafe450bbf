/*
 * Query result cache: the store, invalidation, the response tap and the
 * catalog loads; the lookup is the stage in stage_cache.c. See cache.h
 * and docs/cache.md.
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
#include "dataplane/pipeline/cache_internal.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/rcache.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/ireq.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

struct rc_store *cache_store;
uint64_t cache_hash_key[2];
uint64_t cache_n_uncacheable;
static uint64_t n_catalog_loads, n_invalidations, n_epoch_bumps;
static uint64_t n_too_large; /* answers that outgrew max_entry_kb while recorded */
static struct cache_hooks hooks;

#define store cache_store
#define count cache_count

uint64_t cache_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cache_key_hash(const uint8_t *p, size_t n)
{
	/* SipHash-1-3 with a process-random key, as the analysis cache */
	return an_siphash(cache_hash_key, p, n);
}

void cache_set_hooks(const struct cache_hooks *h)
{
	hooks = *h;
}

int cache_worker_idx(void)
{
	return hooks.worker_idx ? hooks.worker_idx() : -1;
}

struct cache_cl *cache_cl_of(union pipe_slot *s, bool create)
{
	if (!s)
		return NULL;
	if (!s->p && create)
		s->p = calloc(1, sizeof(struct cache_cl));
	return s->p;
}

static void fill_free(struct fill *f)
{
	if (!f)
		return;
	free(f->key);
	free(f->buf);
	free(f);
}

/* Wakes the workers of the waiters (each runs its parked clients' stage
 * again); takes w. */
static void wake(struct rc_waiter *w, size_t n)
{
	bool hit[256] = {false};
	for (size_t i = 0; i < n; i++) {
		int k = w[i].worker;
		if (k < 0 || k >= 256 || hit[k])
			continue;
		hit[k] = true;
		if (hooks.wake)
			hooks.wake(k);
	}
	free(w);
}

void cache_flight_abort(uint64_t flight)
{
	if (!flight || !store)
		return;
	struct rc_waiter *w = NULL;
	size_t n = 0;
	rc_flight_abort(store, flight, &w, &n);
	wake(w, n);
}

void cache_lead_free(struct cache_cl *cc)
{
	struct cache_lead *ld = cc ? cc->lead : NULL;
	if (!ld)
		return;
	cc->lead = NULL;
	cache_flight_abort(ld->flight);
	free(ld->key);
	free(ld);
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
	if (getrandom(cache_hash_key, sizeof(cache_hash_key), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(cache_hash_key)) {
		cache_hash_key[0] = cache_now_ns();
		cache_hash_key[1] = (uint64_t)(uintptr_t)&cache_hash_key;
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

static void wsum_compute(const struct req *r, const char *sql, size_t len, struct wsum *out)
{
	memset(out, 0, sizeof(*out));
	const struct an_result *a = route_analysis(r->snap->cfg, sql, len);
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
	struct cat *c = cat_get(r->database);
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
		if (!c || a->funcs_truncated)
			out->epoch = true;
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

static const struct wsum *wsum_get(const struct req *r, const char *sql, size_t len)
{
	static __thread struct wsum scratch;
	const char *nul = memchr(sql, '\0', len);
	if (nul)
		len = (size_t)(nul - sql);
	uint64_t shape = sql_shape(sql, len);
	uint64_t dbh = 1469598103934665603ull;
	for (const char *p = r->database; *p; p++)
		dbh = (dbh ^ (uint8_t)*p) * 1099511628211ull;
	shape ^= dbh;
	uint64_t ver = cat_version_now();
	if (!wsums)
		wsums = calloc(WSUM_SLOTS, sizeof(*wsums));
	struct wsum *s = wsums ? &wsums[shape % WSUM_SLOTS] : &scratch;
	if (s->used && s->shape == shape && s->catver == ver)
		return s;
	wsum_compute(r, sql, len, s);
	s->used = true;
	s->shape = shape;
	s->catver = ver;
	return s;
}

/* Applies a write summary now and remembers it for the transaction's end. */
static void apply_wsum(struct cache_cl *cs, const struct wsum *w)
{
	if (!w->epoch && !w->n)
		return;
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

static const struct wsum all_writes = {.used = true, .epoch = true};

/* PEV_QUERY_START: a Query (its text, or NULL when the proxy did not see
 * it), a Parse (runs nothing: remembered for the unnamed statement's
 * Binds), a Bind (the statement it runs: its text, the unnamed one's
 * summary, or anything when unknown). */
void cache_on_start(const struct pipe_event *ev, union pipe_slot *slot)
{
	const struct req *r = ev->r;
	if (!store || !r->snap->cfg->cache.enabled)
		return;
	struct cache_cl *cc = cache_cl_of(slot, true);
	/* a Query or Parse streamed through: only the start of its text is seen */
	const char *text = r->whole ? r->sql : NULL;
	switch (r->type) {
	case 'Q':
		apply_wsum(cc, text ? wsum_get(r, text, r->sql_len) : &all_writes);
		return;
	case 'P':
		if (ev->stmt_name && ev->stmt_name[0])
			return; /* a named statement: its Binds name it */
		if (cc) {
			/* a Bind without a Parse reuses it: remember what it does */
			cc->unnamed = text ? *wsum_get(r, text, r->sql_len) : all_writes;
			cc->unnamed_set = true;
		}
		return;
	case 'B':
		/* the text of the statement it names, whole even when the Bind is
		 * streamed */
		if (r->sql) {
			apply_wsum(cc, wsum_get(r, r->sql, r->sql_len));
		} else if (ev->stmt_name && !ev->stmt_name[0] && cc && cc->unnamed_set) {
			struct wsum u = cc->unnamed;
			apply_wsum(cc, &u);
		} else {
			/* unknown, or an unnamed statement parsed before the cache
			 * was on: it may write anything */
			apply_wsum(cc, &all_writes);
		}
		return;
	default:
		return;
	}
}

/* ------------------------------------------------------------ the response tap */

void cache_arm(union pipe_slot *s, const struct cfg *c, bool primary, char tx_status,
               const uint8_t *data, uint32_t len)
{
	struct cache_cl *cc = s ? s->p : NULL;
	struct cache_lead *ld = cc ? cc->lead : NULL;
	if (!ld)
		return;
	if (len < ld->req_len || cache_key_hash(data, ld->req_len) != ld->req_hash) {
		/* answered some other way meanwhile (refused, say) */
		cache_lead_free(cc);
		return;
	}
	/* stored only from the primary: a replica may not have replayed the
	 * write whose invalidation this answer would outlive */
	if (cc->fill || !primary || tx_status != 'I') {
		cache_lead_free(cc);
		return;
	}
	struct fill *f = calloc(1, sizeof(*f));
	if (!f) {
		cache_lead_free(cc);
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
	cc->lead = NULL;
	cc->fill = f;
	cc->arming = true;
}

bool cache_leading(const union pipe_slot *s)
{
	const struct cache_cl *cc = s ? s->p : NULL;
	return cc && cc->lead;
}

bool cache_arming(const union pipe_slot *s)
{
	const struct cache_cl *cc = s ? s->p : NULL;
	return cc && cc->arming;
}

void cache_request_end(union pipe_slot *s)
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (cc)
		cc->arming = false;
}

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

void cache_tee_header(union pipe_slot *s, uint8_t flags, uint8_t type, bool fwd,
                      const uint8_t hdr[5])
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (!cc)
		return;
	cc->tee = NULL;
	struct fill *f = cc->fill;
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
		cc->tee = f;
		break;
	default:
		/* a notice, a setting change, COPY, a notification...: not
		 * something every client should get again */
		f->bad = true;
		break;
	}
}

void cache_tee_body(union pipe_slot *s, const uint8_t *p, size_t n)
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (cc && cc->tee)
		fill_put(cc->tee, p, n);
}

void cache_tee_synth(union pipe_slot *s, uint8_t type)
{
	struct cache_cl *cc = s ? s->p : NULL;
	struct fill *f = cc ? cc->fill : NULL;
	if (!f)
		return;
	uint8_t m[5] = {type, 0, 0, 0, 4};
	fill_put(f, m, 5);
}

void cache_ready(union pipe_slot *s, uint8_t flags, char status)
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (!cc)
		return;
	cc->tee = NULL;
	/* the writes of this transaction again, now that they may be committed */
	if (cc->wr_all) {
		bump_epoch();
		if (cc->wr_ddl)
			cat_drop_all();
	} else {
		for (uint32_t i = 0; i < cc->wr_n; i++)
			rc_gen_bump(store, cc->wr[i]);
	}
	if (status == 'I') {
		cc->wr_n = 0;
		cc->wr_all = cc->wr_ddl = false;
	}
	if (!(flags & RQ_F_FILL) || !cc->fill)
		return;
	struct fill *f = cc->fill;
	cc->fill = NULL;
	cc->arming = false;
	if (f->bad || status != 'I') {
		cache_flight_abort(f->flight);
		fill_free(f);
		return;
	}
	uint8_t z[6] = {'Z', 0, 0, 0, 5, 'I'};
	fill_put(f, z, 6);
	if (!f->bad) {
		struct rc_waiter *w = NULL;
		size_t n = 0;
		int r = rc_insert(store, f->flight, f->hash, f->key, f->key_len, f->buf, f->len,
		                  &f->deps, cache_now_ns() + f->ttl_ns, &w, &n);
		log_debug("cache: %zu-byte answer %s", f->len,
		          r == 0 ? "stored" : "not stored (stale, too large or no room)");
		wake(w, n);
	} else {
		cache_flight_abort(f->flight);
	}
	fill_free(f);
}

void cache_fill_abort(union pipe_slot *s)
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (!cc || !cc->fill)
		return;
	cache_flight_abort(cc->fill->flight);
	fill_free(cc->fill);
	cc->fill = NULL;
	cc->arming = false;
	cc->tee = NULL;
}

void cache_server_abort(union pipe_slot *s)
{
	struct cache_cl *cc = s ? s->p : NULL;
	if (!cc)
		return;
	cache_fill_abort(s);
	cc->arming = false;
	if (cc->wr_n || cc->wr_all) {
		/* the connection went away mid-transaction: whatever it wrote
		 * is rolled back, but say so to be safe */
		if (cc->wr_all)
			bump_epoch();
		for (uint32_t i = 0; !cc->wr_all && i < cc->wr_n; i++)
			rc_gen_bump(store, cc->wr[i]);
		cc->wr_n = 0;
		cc->wr_all = cc->wr_ddl = false;
	}
}

void cache_client_free(union pipe_slot *slot)
{
	struct cache_cl *cc = slot->p;
	if (!cc)
		return;
	cache_lead_free(cc);
	cache_server_abort(slot);
	free(cc);
	slot->p = NULL;
}

/* ------------------------------------------------------------ catalog loads */

/* The catalog is read with an internal request (pipeline/ireq.h) on a
 * server of the database's pool, as the client's user; requests that
 * need it wait for it (once), so the first statement of a database is
 * decided with the catalog, as when the catalog query ran ahead of it on
 * its own server. */
const char cache_catalog_token[] = "cache catalog";

struct cat_load {
	char db[64];
};

static void wake_all_workers(void)
{
	for (int k = 0; k < 256 && hooks.wake; k++)
		hooks.wake(k); /* ignores a worker that does not exist */
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
		                    ok ? res->rows_len : 0, cache_now_ns());
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

static void catalog_load(const struct req *r)
{
	const char *db = r->database;
	struct cat_load *l = calloc(1, sizeof(*l));
	if (!l) {
		cat_load_cancel(db);
		return;
	}
	snprintf(l->db, sizeof(l->db), "%s", db);
	struct ireq rq = {.database = db,
	                  .user = r->user,
	                  .tenant = tenant_id(r->tenant),
	                  .server_cap = tenant_server_cap(r->tenant_cfg),
	                  .sql = cat_query_sql,
	                  .max_bytes = CAT_MAX_BYTES,
	                  .done = catalog_loaded,
	                  .arg = l};
	int e = ireq_submit(&rq);
	if (e < 0) {
		log_warn("cache: could not start reading the catalog of database \"%s\": %s", db,
		         strerror(-e));
		cat_publish(db, NULL, 0, cache_now_ns()); /* failed: retried in CAT_RETRY_SECS */
		free(l);
	}
}

bool cache_catalog_wait(const struct req *r)
{
	if (cat_load_due(r->database, cache_now_ns()))
		catalog_load(r);
	struct cat *c = cat_get(r->database);
	if (c) {
		cat_unref(c);
		return false;
	}
	/* A client that holds its server (session pooling) never waits: the
	 * load may need a server of that very pool, and with every server
	 * held by such clients it would wait for them, and they for it (10 s
	 * per client until the internal request timed out). Its request goes
	 * to its server uncached; the load goes on for the requests after. */
	return !r->again && !r->has_server && cat_loading(r->database);
}

void cache_worker_exit(void)
{
	cat_thread_exit();
	cache_stage_worker_exit();
	free(wsums);
	wsums = NULL;
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
	m->uncacheable = __atomic_load_n(&cache_n_uncacheable, __ATOMIC_RELAXED);
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
