/*
 * Server catalog for the result cache; see cache_catalog.h.
 */
#include "dataplane/pipeline/cache_catalog.h"

#include "dataplane/pipeline/cache.h"
#include "dataplane/pg/pgw.h"
#include "dataplane/pipeline/engine/rcache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rc_store *cat_store;

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

void cat_unref(struct cat *c)
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

struct cat *cat_get(const char *db)
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

void cat_thread_exit(void)
{
	for (unsigned i = 0; i < TCAT; i++) {
		cat_unref(tcat[i].c);
		tcat[i].c = NULL;
	}
}

/* DDL through the proxy: every database's catalog may be wrong now (the
 * DDL may name another database's objects only through dblink, but
 * search_path and roles are shared: be plain about it). */
void cat_drop_all(void)
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

const struct cat_ent *cat_find(const struct cat *c, char kind, const char *schema, const char *name)
{
	char key[160];
	snprintf(key, sizeof(key), "%c%s.%s", kind, schema ? schema : "", name);
	struct cat_ent k = {.key = key};
	return bsearch(&k, c->ents, c->n, sizeof(*c->ents), ent_cmp);
}

/* ------------------------------------------------------------ loading */

const char cat_query_sql[] =
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
			gen = rc_gen_id(cat_store, name);
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

void cat_init(struct rc_store *store)
{
	cat_store = store;
}

void cat_stop(void)
{
	pthread_mutex_lock(&cat_mu);
	for (int i = 0; i < CAT_SLOTS; i++) {
		cat_unref(cat_slots[i].cur);
		cat_slots[i].cur = NULL;
	}
	pthread_mutex_unlock(&cat_mu);
}

uint64_t cat_version_now(void)
{
	return __atomic_load_n(&cat_version, __ATOMIC_ACQUIRE);
}

bool cat_load_due(const char *db, uint64_t now)
{
	uint64_t ver = cat_version_now();
	for (unsigned i = 0; i < TCAT; i++) {
		const struct tcat *t = &tcat[i];
		if (t->c && t->ver == ver && now < t->fresh_until && !strcmp(t->db, db))
			return false; /* loaded, young, nothing changed: no lock per transaction */
	}
	bool load = false;
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(db, true);
	if (s && !s->loading &&
	    (!s->cur || s->want_reload ||
	     now - s->loaded_ns > (uint64_t)CACHE_CATALOG_MAX_AGE_SECS * 1000000000ull) &&
	    (!s->tried_ns || now - s->tried_ns > (uint64_t)CAT_RETRY_SECS * 1000000000ull ||
	     s->want_reload)) {
		s->loading = true;
		s->want_reload = false;
		load = true;
	}
	pthread_mutex_unlock(&cat_mu);
	return load;
}

bool cat_loading(const char *db)
{
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(db, false);
	bool r = s && s->loading;
	pthread_mutex_unlock(&cat_mu);
	return r;
}

void cat_load_cancel(const char *db)
{
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(db, false);
	if (s)
		s->loading = false;
	pthread_mutex_unlock(&cat_mu);
}

int cat_publish(const char *db, const uint8_t *rows, size_t len, uint64_t now)
{
	struct cat *c = rows ? cat_build(rows, len) : NULL;
	int r = c ? 0 : -1;
	pthread_mutex_lock(&cat_mu);
	struct cat_slot *s = slot_of(db, true);
	if (s) {
		s->loading = false;
		s->tried_ns = now;
		if (c && !s->want_reload) {
			cat_unref(s->cur);
			c->loaded_ns = now;
			s->cur = c;
			s->loaded_ns = now;
			c = NULL;
			r = 1;
			__atomic_add_fetch(&cat_version, 1, __ATOMIC_ACQ_REL);
		}
	}
	pthread_mutex_unlock(&cat_mu);
	cat_unref(c); /* DDL ran while it loaded: read again at the next chance */
	return r;
}
