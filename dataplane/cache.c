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
#include "dataplane/cache.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "dataplane/conn/conn.h"
#include "dataplane/pipeline/analyze.h"
#include "dataplane/pipeline/hints.h"
#include "dataplane/pipeline/qstats.h"
#include "dataplane/pipeline/rcache.h"
#include "dataplane/pipeline/shape.h"
#include "dataplane/route.h"
#include "dataplane/snap.h"
#include "dataplane/stats.h"
#include "dataplane/worker.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FLIGHT_MAX_NS   (30ull * 1000000000ull) /* a leader gone this long is abandoned */
#define WAIT_MAX_SECS   10.0                    /* a parked client then asks a server itself */
#define CATALOG_MAX     (64u << 20)             /* bytes of catalog rows we accept */
#define CATALOG_RETRY_S 10

static struct rc_store *store;
static uint64_t hash_key[2];
static uint64_t n_uncacheable, n_catalog_loads, n_invalidations, n_epoch_bumps;
static uint64_t n_too_large; /* answers that outgrew max_entry_kb while recorded */

static uint64_t now_ns(void)
{
	struct timespec ts;
	conn_now(&ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ catalog */

/* Flags of a catalog entry. Functions and operators: */
#define CF_IMMUTABLE 1u /* every overload immutable */
#define CF_OP_OK     2u /* operator: every overload immutable, or stable and built in */
#define CF_MAY_WRITE 4u /* some overload is volatile and not built in: may change data */
/* Relations: */
#define CF_CACHEABLE 8u  /* an ordinary table or materialized view, not temp/system/inherited */
#define CF_RLS       16u /* row level security on */
#define CF_WRITES    32u /* triggers (other than FK checks) or rules: a write may change others */

struct cat_ent {
	const char *key; /* kind, then "schema.name" or ".name" (every schema) */
	uint8_t flags;
	uint32_t gen; /* relations: generation id of the bare name */
};

/* One database's catalog; immutable once published. */
struct cat {
	int refs; /* atomic */
	uint64_t loaded_ns;
	size_t n;
	struct cat_ent *ents; /* sorted by key */
	char *strings;
};

#define CAT_SLOTS 64
static struct cat_slot {
	char db[64];
	struct cat *cur;
	bool loading;
	bool want_reload; /* DDL: load again at the next chance */
	uint64_t loaded_ns, tried_ns;
} cat_slots[CAT_SLOTS];
static pthread_mutex_t cat_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t cat_version = 1; /* atomic: any catalog published or dropped */

static void cat_unref(struct cat *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(c->ents);
		free(c->strings);
		free(c);
	}
}

static struct cat_slot *slot_of(const char *db, bool create)
{
	struct cat_slot *empty = NULL;
	for (int i = 0; i < CAT_SLOTS; i++) {
		if (!strcmp(cat_slots[i].db, db))
			return &cat_slots[i];
		if (!empty && !cat_slots[i].db[0])
			empty = &cat_slots[i];
	}
	if (!create || !empty)
		return NULL;
	snprintf(empty->db, sizeof(empty->db), "%s", db);
	return empty;
}

/* The database's catalog, referenced; NULL when none is loaded. */
static struct cat *cat_get_locked(const char *db)
{
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(db, false);
	struct cat *c = s ? s->cur : NULL;
	if (c)
		__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&cat_mu);
	return c;
}

/* Per worker thread: the catalogs it used last, valid while cat_version
 * has not moved, so a lookup takes no lock in the steady state. */
#define TCAT 4
static __thread struct tcat {
	char db[64];
	uint64_t ver;
	struct cat *c;        /* referenced */
	uint64_t fresh_until; /* monotonic ns: no reload is due before */
} tcat[TCAT];
static __thread unsigned tcat_next;

static struct cat *cat_get(const char *db)
{
	uint64_t ver = __atomic_load_n(&cat_version, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < TCAT; i++) {
		struct tcat *t = &tcat[i];
		if (t->c && t->ver == ver && !strcmp(t->db, db)) {
			__atomic_add_fetch(&t->c->refs, 1, __ATOMIC_RELAXED);
			return t->c;
		}
	}
	struct cat *c = cat_get_locked(db);
	if (!c)
		return NULL;
	struct tcat *t = &tcat[tcat_next++ % TCAT];
	cat_unref(t->c);
	snprintf(t->db, sizeof(t->db), "%s", db);
	t->ver = ver;
	t->c = c;
	t->fresh_until = c->loaded_ns + (uint64_t)CACHE_CATALOG_MAX_AGE_SECS * 1000000000ull;
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

static void tcat_free(void)
{
	for (unsigned i = 0; i < TCAT; i++) {
		cat_unref(tcat[i].c);
		tcat[i].c = NULL;
	}
}

/* DDL through the proxy: every database's catalog may be wrong now (the
 * DDL may name another database's objects only through dblink, but
 * search_path and roles are shared: be plain about it). */
static void cat_drop_all(void)
{
	pthread_mutex_lock(&cat_mu);
	for (int i = 0; i < CAT_SLOTS; i++) {
		if (cat_slots[i].cur) {
			cat_unref(cat_slots[i].cur);
			cat_slots[i].cur = NULL;
		}
		cat_slots[i].want_reload = true;
	}
	__atomic_add_fetch(&cat_version, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&cat_mu);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cat_ent *)a)->key, ((const struct cat_ent *)b)->key);
}

static const struct cat_ent *cat_find(const struct cat *c, char kind, const char *schema,
                                      const char *name)
{
	char key[160];
	snprintf(key, sizeof(key), "%c%s.%s", kind, schema ? schema : "", name);
	struct cat_ent k = {.key = key};
	return bsearch(&k, c->ents, c->n, sizeof(*c->ents), ent_cmp);
}

/* ------------------------------------------------------------ catalog load */

static const char catalog_sql[] =
    "SELECT 'f', n.nspname, p.proname, string_agg(DISTINCT p.provolatile::text, ''), "
    "CASE WHEN n.nspname = 'pg_catalog' THEN 'b' ELSE '' END "
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "GROUP BY n.nspname, p.proname "
    "UNION ALL "
    "SELECT 'o', n.nspname, o.oprname, string_agg(DISTINCT p.provolatile::text, ''), "
    "CASE WHEN n.nspname = 'pg_catalog' THEN 'b' ELSE '' END "
    "FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace "
    "JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode GROUP BY n.nspname, o.oprname "
    "UNION ALL "
    "SELECT 'r', n.nspname, c.relname, c.relkind::text, "
    "CASE WHEN c.relpersistence = 't' OR n.nspname IN ('pg_catalog', 'information_schema') "
    "  OR n.nspname LIKE 'pg\\_toast%' OR n.nspname LIKE 'pg\\_temp%' THEN 'T' ELSE '' END "
    "|| CASE WHEN c.relrowsecurity THEN 'L' ELSE '' END "
    "|| CASE WHEN c.relispartition OR c.relhassubclass OR EXISTS (SELECT 1 FROM "
    "  pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) THEN 'I' ELSE '' END "
    "|| CASE WHEN c.relhasrules OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g JOIN "
    "  pg_catalog.pg_proc f ON f.oid = g.tgfoid WHERE g.tgrelid = c.oid AND f.proname NOT IN "
    "  ('RI_FKey_check_ins', 'RI_FKey_check_upd', 'RI_FKey_noaction_del', "
    "'RI_FKey_noaction_upd', 'RI_FKey_restrict_del', 'RI_FKey_restrict_upd')) THEN 'W' ELSE "
    "'' END "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind NOT IN ('i', 'I', 'c', 't')";

/* Column i of a DataRow body; false when malformed or NULL. */
static bool row_col(const uint8_t *body, uint32_t len, int want, const char **p, uint32_t *n)
{
	if (len < 2)
		return false;
	int cols = (body[0] << 8) | body[1];
	uint32_t off = 2;
	for (int i = 0; i < cols; i++) {
		if (off + 4 > len)
			return false;
		int32_t l = (int32_t)pgw_get_u32(body + off);
		off += 4;
		if (l < 0) {
			if (i == want)
				return false;
			continue;
		}
		if ((uint32_t)l > len - off)
			return false;
		if (i == want) {
			*p = (const char *)body + off;
			*n = (uint32_t)l;
			return true;
		}
		off += (uint32_t)l;
	}
	return false;
}

static uint8_t fn_flags(const char *vol, uint32_t vn, bool builtin, bool op)
{
	bool all_i = true, all_ok = true, may_write = false;
	for (uint32_t i = 0; i < vn; i++) {
		if (vol[i] != 'i')
			all_i = false;
		if (!(vol[i] == 'i' || (vol[i] == 's' && builtin)))
			all_ok = false;
		if (vol[i] == 'v' && !builtin)
			may_write = true;
	}
	uint8_t f = 0;
	if (all_i)
		f |= CF_IMMUTABLE;
	if (op && all_ok)
		f |= CF_OP_OK;
	if (may_write)
		f |= CF_MAY_WRITE;
	return f;
}

static uint8_t rel_flags(const char *kind, uint32_t kn, const char *fl, uint32_t fln)
{
	uint8_t f = 0;
	bool plain = kn == 1 && (kind[0] == 'r' || kind[0] == 'm');
	bool sys = memchr(fl, 'T', fln) || memchr(fl, 'I', fln);
	if (plain && !sys)
		f |= CF_CACHEABLE;
	if (memchr(fl, 'L', fln))
		f |= CF_RLS;
	if (memchr(fl, 'W', fln))
		f |= CF_WRITES;
	return f;
}

/* Merges entry b into a, same key: the bare name stands for every schema
 * (search_path decides), so all must allow what is allowed. */
static void merge_flags(struct cat_ent *a, const struct cat_ent *b)
{
	uint8_t and_mask = CF_IMMUTABLE | CF_OP_OK | CF_CACHEABLE;
	a->flags =
	    (uint8_t)((a->flags & b->flags & and_mask) | ((a->flags | b->flags) & ~and_mask));
}

/* Builds a catalog from captured DataRow messages; NULL when malformed. */
static struct cat *cat_build(const uint8_t *buf, size_t len)
{
	size_t rows = 0;
	for (size_t off = 0; off + 5 <= len;) {
		uint32_t ml = pgw_get_u32(buf + off + 1);
		if (ml < 4 || ml - 4 > len - off - 5)
			return NULL;
		off += 1 + ml;
		rows++;
	}
	struct cat *c = calloc(1, sizeof(*c));
	struct cat_ent *ents = calloc(rows * 2 + 1, sizeof(*ents));
	char *strings = malloc(len * 2 + 1);
	if (!c || !ents || !strings)
		goto fail;
	size_t n = 0, sp = 0;
	for (size_t off = 0; off + 5 <= len;) {
		uint32_t ml = pgw_get_u32(buf + off + 1);
		const uint8_t *body = buf + off + 5;
		uint32_t bl = ml - 4;
		off += 1 + ml;
		const char *k, *sch, *nm, *a, *b;
		uint32_t kl, sl, nl, al, bl2;
		if (buf[off - 1 - ml] != 'D' || !row_col(body, bl, 0, &k, &kl) || kl != 1 ||
		    !row_col(body, bl, 1, &sch, &sl) || !row_col(body, bl, 2, &nm, &nl) ||
		    !row_col(body, bl, 3, &a, &al) || !row_col(body, bl, 4, &b, &bl2))
			continue;
		if (sl > 63 || nl > 63)
			continue;
		uint8_t flags =
		    k[0] == 'r' ? rel_flags(a, al, b, bl2) : fn_flags(a, al, bl2 > 0, k[0] == 'o');
		/* qualified */
		char *q = strings + sp;
		sp += (size_t)snprintf(q, 1 + 1 + sl + 1 + nl + 1, "%c%.*s.%.*s", k[0], (int)sl,
		                       sch, (int)nl, nm) +
		      1;
		char *bare = strings + sp;
		sp += (size_t)snprintf(bare, 1 + 1 + nl + 1, "%c.%.*s", k[0], (int)nl, nm) + 1;
		uint32_t gen = 0;
		if (k[0] == 'r') {
			char name[64];
			memcpy(name, nm, nl);
			name[nl] = '\0';
			gen = rc_gen_id(store, name);
		}
		ents[n++] = (struct cat_ent){.key = q, .flags = flags, .gen = gen};
		ents[n++] = (struct cat_ent){.key = bare, .flags = flags, .gen = gen};
	}
	qsort(ents, n, sizeof(*ents), ent_cmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m && !strcmp(ents[m - 1].key, ents[i].key))
			merge_flags(&ents[m - 1], &ents[i]);
		else
			ents[m++] = ents[i];
	}
	c->refs = 1;
	c->n = m;
	c->ents = ents;
	c->strings = strings;
	return c;
fail:
	free(c);
	free(ents);
	free(strings);
	return NULL;
}

/* ------------------------------------------------------------ per connection state */

struct fill {
	bool catalog;
	bool bad;
	char db[64];
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
	struct fill *cat;  /* the catalog being read */
	struct fill *tee;  /* which of them takes the current message's body */
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
	if (!store)
		return -ENOMEM;
	if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) != (ssize_t)sizeof(hash_key)) {
		hash_key[0] = now_ns();
		hash_key[1] = (uint64_t)(uintptr_t)&hash_key;
	}
	return 0;
}

void cache_stop(void)
{
	pthread_mutex_lock(&cat_mu);
	for (int i = 0; i < CAT_SLOTS; i++) {
		cat_unref(cat_slots[i].cur);
		cat_slots[i].cur = NULL;
	}
	pthread_mutex_unlock(&cat_mu);
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
	const struct an_result *a = route_analysis(cl, sql, len);
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
	uint64_t ver = __atomic_load_n(&cat_version, __ATOMIC_ACQUIRE);
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

/* ------------------------------------------------------------ cacheability and key */

/* A date/time input that means "the current time" in s[0..n): the
 * special values 'now', 'today', 'tomorrow', 'yesterday' (any case). */
static bool has_time_word(const char *s, size_t n)
{
	static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};
	for (size_t i = 0; i < n; i++) {
		char ch = (char)tolower((unsigned char)s[i]);
		if (ch != 'n' && ch != 't' && ch != 'y')
			continue;
		for (size_t k = 0; k < 4; k++) {
			size_t wl = strlen(words[k]);
			if (i + wl <= n && strncasecmp(s + i, words[k], wl) == 0)
				return true;
		}
	}
	return false;
}

/* Whether a statement's string constants hold such a value. Only text in
 * '...' strings is looked at ("known_users" is fine); a dollar-quoted
 * string is not lexed here, so a text with one is looked at whole. */
static bool literal_has_time_word(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '$' && !(s[i + 1] >= '0' && s[i + 1] <= '9'))
			return has_time_word(s, n);
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\'')
			continue;
		size_t j = i + 1;
		while (j < n) {
			if (s[j] == '\\' && j + 1 < n) {
				j += 2; /* E'' escapes; elsewhere harmless: only widens the look */
				continue;
			}
			if (s[j] == '\'') {
				if (j + 1 < n && s[j + 1] == '\'') {
					j += 2;
					continue;
				}
				break;
			}
			j++;
		}
		if (has_time_word(s + i + 1, (j < n ? j : n) - i - 1))
			return true;
		i = j;
	}
	return false;
}

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

/* The request at the head of a client's buffer. */
struct req {
	uint32_t total; /* its bytes */
	bool ext;
	const char *text;
	uint32_t text_len;
	const uint8_t *stmt_body; /* extended: text\0 int16 n, n param type oids */
	uint32_t stmt_body_len;
	const char *pname;        /* extended: the Parse's statement name; NULL without a Parse */
	const uint8_t *bind_tail; /* after the statement name */
	uint32_t bind_tail_len;
	char seq[8];
};

/* Reads a whole simple Query, or a whole [Parse] Bind [Describe] Execute
 * Sync batch with the unnamed portal and no row limit. False otherwise
 * (incomplete, another shape): not for the cache. */
static bool read_req(struct client *cl, struct req *r)
{
	const uint8_t *in = cl->ep.in;
	uint32_t n = cl->ep.in_len, off = 0;
	memset(r, 0, sizeof(*r));
	int stage = 0; /* 0 start, 1 after P, 2 after B, 3 after D, 4 after E */
	uint32_t sl = 0;
	while (off + 5 <= n) {
		uint8_t t = in[off];
		uint32_t ml = pgw_get_u32(in + off + 1);
		if (ml < 4 || ml - 4 > n - off - 5)
			return false;
		const uint8_t *b = in + off + 5;
		uint32_t bl = ml - 4, p = 0;
		off += 1 + ml;
		if (stage == 0 && t == 'Q') {
			const char *q = (const char *)b;
			const char *z = memchr(q, '\0', bl);
			if (!z || (uint32_t)(z - q) + 1 != bl)
				return false;
			r->text = q;
			r->text_len = (uint32_t)(z - q);
			r->total = off;
			r->seq[0] = 'Q';
			return true;
		}
		if (sl + 1 >= sizeof(r->seq))
			return false;
		switch (t) {
		case 'P': {
			if (stage != 0)
				return false;
			const char *name = pgw_get_str(b, bl, &p);
			if (!name || p >= bl)
				return false;
			r->pname = name;
			r->stmt_body = b + p;
			r->stmt_body_len = bl - p;
			stage = 1;
			break;
		}
		case 'B': {
			if (stage > 1)
				return false;
			const char *portal = pgw_get_str(b, bl, &p);
			const char *stmt = pgw_get_str(b, bl, &p);
			if (!portal || !stmt || portal[0])
				return false;
			if (r->pname) {
				if (strcmp(stmt, r->pname) != 0)
					return false;
			} else {
				if (!stmt[0])
					return false; /* the unnamed statement of an earlier batch
					               */
				struct prep_stmt *ps = prep_client_get(&cl->prep, stmt);
				if (!ps)
					return false;
				r->stmt_body = ps->body;
				r->stmt_body_len = ps->body_len;
			}
			r->bind_tail = b + p;
			r->bind_tail_len = bl - p;
			stage = 2;
			break;
		}
		case 'D':
			if (stage != 2 || bl < 2 || b[0] != 'P' || b[1] != '\0' || bl != 2)
				return false;
			stage = 3;
			break;
		case 'E':
			if (stage < 2 || stage > 3 || bl != 5 || b[0] != '\0' ||
			    pgw_get_u32(b + 1) != 0)
				return false;
			stage = 4;
			break;
		case 'S':
			if (stage != 4)
				return false;
			r->seq[sl++] = 'S';
			r->ext = true;
			r->total = off;
			{
				const char *z = memchr(r->stmt_body, '\0', r->stmt_body_len);
				if (!z)
					return false;
				r->text = (const char *)r->stmt_body;
				r->text_len = (uint32_t)(z - (const char *)r->stmt_body);
			}
			return true;
		default:
			return false;
		}
		r->seq[sl++] = (char)t;
	}
	return false;
}

/* Bound text values must not be 'now'-like; the tail must be well formed. */
static bool bind_ok(const uint8_t *t, uint32_t n)
{
	uint32_t off = 0;
	if (n < 2)
		return false;
	uint32_t nf = (uint32_t)((t[0] << 8) | t[1]);
	off = 2;
	if (off + 2 * nf + 2 > n)
		return false;
	const uint8_t *fmts = t + off;
	off += 2 * nf;
	uint32_t np = (uint32_t)((t[off] << 8) | t[off + 1]);
	off += 2;
	if (nf > 1 && nf != np)
		return false;
	for (uint32_t i = 0; i < np; i++) {
		if (off + 4 > n)
			return false;
		int32_t l = (int32_t)pgw_get_u32(t + off);
		off += 4;
		if (l < 0)
			continue;
		if ((uint32_t)l > n - off)
			return false;
		uint32_t fi = nf == 0 ? 0 : nf == 1 ? 0 : i;
		bool text = nf == 0 || ((fmts[2 * fi] << 8) | fmts[2 * fi + 1]) == 0;
		if (text && has_time_word((const char *)t + off, (size_t)l))
			return false;
		off += (uint32_t)l;
	}
	return off + 2 <= n;
}

static uint64_t key_hash(const uint8_t *p, size_t n)
{
	/* SipHash-1-3 with a process-random key, as the analysis cache */
	return an_siphash(hash_key, p, n);
}

/* Decides whether r may be cached; fills deps, ttl and the fingerprint. */
static bool cacheable(struct client *cl, const struct cfg *c, const struct req *r,
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
	const struct an_result *a = route_analysis(cl, r->text, r->text_len);
	if (!a || a->parse_error || a->too_complex || a->n_stmts != 1 || a->kind != AN_READ ||
	    !a->select_only || a->volatile_other || a->tables_truncated || a->funcs_truncated) {
		*why = "not a single plain SELECT without volatile parts";
		return false;
	}
	*fp = a->fingerprint;
	if (literal_has_time_word(r->text, r->text_len)) {
		*why = "a 'now'-like date/time input";
		return false;
	}
	if (r->ext && !bind_ok(r->bind_tail, r->bind_tail_len)) {
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

static void build_key(struct client *cl, const struct req *r, struct sbuf *k)
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
	struct req r;
	if (!read_req(cl, &r))
		return CACHE_PASS;
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
	enum rc_look lk =
	    rc_lookup(store, h, k->p, k->len, now_ns(), lead, &me, FLIGHT_MAX_NS, &hit, &flight);
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
	bool primary = sv->node_idx == route_primary(cl->w, c);
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
		f->bad = true; /* over max_entry_kb (or the catalog limit) */
		if (!f->catalog)
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
	if (!(flags & (RQ_F_FILL | RQ_F_CATALOG)))
		return;
	if ((flags & RQ_F_CATALOG) && cs->cat) {
		if (type == 'E')
			cs->cat->bad = true;
		else if (type == 'D') {
			fill_put(cs->cat, hdr, 5);
			cs->tee = cs->cat;
		}
		return;
	}
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

static void catalog_done(struct server *sv, struct fill *f)
{
	struct cat *c = f->bad ? NULL : cat_build(f->buf, f->len);
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(f->db, true);
	if (s) {
		s->loading = false;
		s->tried_ns = now_ns();
		if (c && !s->want_reload) {
			cat_unref(s->cur);
			c->loaded_ns = s->tried_ns;
			s->cur = c;
			s->loaded_ns = s->tried_ns;
			c = NULL;
			__atomic_add_fetch(&cat_version, 1, __ATOMIC_ACQ_REL);
		}
	}
	pthread_mutex_unlock(&cat_mu);
	if (c) {
		/* DDL ran while it loaded: load again at the next chance */
		cat_unref(c);
	} else if (f->bad) {
		log_warn("cache: could not read the catalog of database \"%s\" on %s:%d; "
		         "nothing is cached there for now (retried in %d s)",
		         f->db, sv->node_host, sv->node_port, CATALOG_RETRY_S);
	} else {
		count(&n_catalog_loads);
		log_info("cache: catalog of database \"%s\" read (%zu bytes)", f->db, f->len);
	}
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
	if ((flags & RQ_F_CATALOG) && cs->cat) {
		struct fill *f = cs->cat;
		cs->cat = NULL;
		catalog_done(sv, f);
		fill_free(f);
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
			                  f->len, &f->deps, now_ns() + f->ttl_ns, &w, &n);
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
	if (cs->cat) {
		pthread_mutex_lock(&cat_mu);
		struct cat_slot *s = slot_of(cs->cat->db, false);
		if (s)
			s->loading = false; /* not a failure: the next server tries at once */
		pthread_mutex_unlock(&cat_mu);
		fill_free(cs->cat);
		cs->cat = NULL;
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

/* ------------------------------------------------------------ catalog loads */

void cache_bind(struct client *cl, struct server *sv)
{
	if (!cache_on(cl))
		return;
	uint64_t now = now_ns();
	uint64_t ver = __atomic_load_n(&cat_version, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < TCAT; i++) {
		const struct tcat *t = &tcat[i];
		if (t->c && t->ver == ver && now < t->fresh_until && !strcmp(t->db, cl->database))
			return; /* loaded, young, nothing changed: no lock per transaction */
	}
	bool load = false;
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(cl->database, true);
	if (s && !s->loading &&
	    (!s->cur || s->want_reload ||
	     now - s->loaded_ns > (uint64_t)CACHE_CATALOG_MAX_AGE_SECS * 1000000000ull) &&
	    (!s->tried_ns || now - s->tried_ns > (uint64_t)CATALOG_RETRY_S * 1000000000ull ||
	     s->want_reload)) {
		s->loading = true;
		s->want_reload = false;
		load = true;
	}
	pthread_mutex_unlock(&cat_mu);
	if (!load)
		return;
	struct cache_sv *cs = sv_state(sv);
	struct fill *f = cs && !cs->cat ? calloc(1, sizeof(*f)) : NULL;
	if (!f) {
		pthread_mutex_lock(&cat_mu);
		s->loading = false;
		pthread_mutex_unlock(&cat_mu);
		return;
	}
	f->catalog = true;
	f->max = CATALOG_MAX;
	snprintf(f->db, sizeof(f->db), "%s", cl->database);
	cs->cat = f;
	tx_inject_query(sv, catalog_sql, RQ_F_CATALOG);
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
	tcat_free();
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
