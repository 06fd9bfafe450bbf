/*
 * The result cache's lookup stage (PIPE_AT_REQUEST; see cache.h): for a
 * whole request at the head of a client's buffer and no server bound (or,
 * in session pooling, its server idle outside a transaction block),
 * decides whether it may be cached, builds its key and looks it up:
 *   hit                      ANSWERED, the stored answer in r->out;
 *   an identical query runs  PARK on a wake token (single flight; woken
 *                            when it ends, then asks once more without
 *                            waiting);
 *   miss                     CONTINUE to the primary, the answer to be
 *                            recorded (cache_arm and the tap in cache.c);
 *   not cacheable            CONTINUE.
 * A database whose catalog is not read yet parks its first requests until
 * it is. Reads only struct req; the client's state is its slot.
 */
#include "dataplane/pipeline/cache.h"

#include "common/cfg.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache_catalog.h"
#include "dataplane/pipeline/cache_internal.h"
#include "dataplane/pipeline/cache_req.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/hints.h"
#include "dataplane/pipeline/engine/rcache.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"

#include <stdlib.h>
#include <string.h>

/* Settings that cannot change a query's rows or their text form. */
bool cache_setting_neutral(const char *name)
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

/* Decides whether q may be cached; fills deps, ttl and the fingerprint. */
static bool cacheable(const struct req *r, const struct cfg *c, const struct cache_req *q,
                      struct rc_deps *deps, uint64_t *ttl_ns, uint64_t *fp, const char **why)
{
	*why = NULL;
	uint32_t ttl = 0;
	if (hints_maybe(q->text, q->text_len)) {
		struct hints h;
		hints_scan(q->text, q->text_len, &h);
		if (h.cache_skip) {
			*why = "cache=skip";
			return false;
		}
		ttl = h.cache_ttl;
	}
	const struct an_result *a = route_analysis(c, q->text, q->text_len);
	if (!a || a->parse_error || a->too_complex || a->n_stmts != 1 || a->kind != AN_READ ||
	    !a->select_only || a->volatile_other || a->tables_truncated || a->funcs_truncated) {
		*why = "not a single plain SELECT without volatile parts";
		return false;
	}
	*fp = a->fingerprint;
	if (cache_text_has_now(q->text, q->text_len)) {
		*why = "a 'now'-like date/time input";
		return false;
	}
	if (q->ext && !cache_bind_ok(q->bind_tail, q->bind_tail_len)) {
		*why = "a 'now'-like bound value";
		return false;
	}
	struct cat *cat = cat_get(r->database);
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

static void kb_setting(void *ud, const char *name, const char *value, bool is_stmt)
{
	struct sbuf *k = ud;
	if (cache_setting_neutral(name))
		return;
	kb_str(k, name);
	kb_str(k, value);
	sbuf_append(k, is_stmt ? "s" : "v", 1);
}

static void build_key(const struct req *r, const struct cache_req *q, struct sbuf *k)
{
	if (k->oom) {
		sbuf_free(k);
		sbuf_init(k);
	}
	sbuf_reset(k);
	kb_str(k, q->seq);
	kb_str(k, r->database);
	kb_str(k, r->user);
	if (r->settings_each)
		r->settings_each(r->setting_arg, kb_setting, k);
	sbuf_append(k, "\x01", 1);
	if (q->ext) {
		uint32_t l[2] = {q->stmt_body_len, q->bind_tail_len};
		sbuf_append(k, l, sizeof(l));
		sbuf_append(k, q->stmt_body, q->stmt_body_len);
		sbuf_append(k, q->bind_tail, q->bind_tail_len);
	} else {
		sbuf_append(k, q->text, q->text_len);
	}
}

static enum pipe_verdict cache_run(struct req *r, union pipe_slot *slot)
{
	const struct cfg *c = r->snap->cfg;
	if (!cache_store || !c->cache.enabled || !r->req_buf)
		return PIPE_CONTINUE;
	if (r->pc->rflags & PIPE_RF_NO_CACHE)
		return PIPE_CONTINUE; /* a plugin's hint (cache = "skip") */
	if (r->has_server && r->tx_status != 'I')
		return PIPE_CONTINUE; /* session pooling: inside a transaction block */
	struct cache_cl *cc = cache_cl_of(slot, true);
	if (!cc || cc->lead)
		return PIPE_CONTINUE;
	bool wait_cat = cache_catalog_wait(r);
	struct cache_req q;
	if (!cache_read_req(r->req_buf, r->req_len, r->stmt_body, r->setting_arg, &q))
		return PIPE_CONTINUE;
	if (wait_cat) {
		r->park = (struct pipe_park){.kind = PIPE_WAKE_TOKEN, .token = cache_catalog_token};
		return PIPE_PARK;
	}
	struct rc_deps deps;
	uint64_t ttl_ns = 0, fp = 0;
	const char *why;
	if (!cacheable(r, c, &q, &deps, &ttl_ns, &fp, &why)) {
		cache_count(&cache_n_uncacheable);
		log_debug("client %llu: not cached: %s", (unsigned long long)r->client_id, why);
		return PIPE_CONTINUE;
	}
	struct sbuf *k = &tls_key;
	build_key(r, &q, k);
	if (k->oom)
		return PIPE_CONTINUE;
	uint64_t h = cache_key_hash((const uint8_t *)k->p, k->len);
	/* generations as of now: anything written from here on makes the
	 * answer this client gets from a server too new to be compared, so
	 * the store refuses it */
	rc_deps_snapshot(cache_store, &deps);
	struct rc_waiter me = {.worker = cache_worker_idx(), .client_id = r->client_id};
	struct rc_hit hit;
	uint64_t flight = 0;
	uint64_t now = r->now_ns ? r->now_ns : cache_now_ns();
	/* woken from a wait: at most one wait per request */
	enum rc_look lk = rc_lookup(cache_store, h, k->p, k->len, now, !r->again, &me,
	                            CACHE_FLIGHT_MAX_NS, &hit, &flight);
	if (lk == RC_HIT) {
		bool ok = r->out && (sbuf_append(r->out, hit.data, hit.len), !r->out->oom);
		rc_release(cache_store, hit.e);
		if (!ok)
			return PIPE_CONTINUE; /* no room to answer: the server does */
		r->out_consumed = q.total;
		if (fp)
			analytics_note_cache_hit(fp);
		return PIPE_ANSWERED;
	}
	if (lk == RC_MISS_WAIT) {
		r->park = (struct pipe_park){.kind = PIPE_WAKE_TOKEN,
		                             .token = (const void *)(uintptr_t)(h | 1)};
		return PIPE_PARK;
	}
	struct cache_lead *ld = calloc(1, sizeof(*ld));
	uint8_t *kc = ld ? malloc(k->len) : NULL;
	if (!ld || !kc) {
		free(ld);
		cache_flight_abort(flight);
		return PIPE_CONTINUE;
	}
	memcpy(kc, k->p, k->len);
	*ld = (struct cache_lead){.req_hash = cache_key_hash(r->req_buf, q.total),
	                          .req_len = q.total,
	                          .hash = h,
	                          .flight = flight,
	                          .ttl_ns = ttl_ns,
	                          .fp = fp,
	                          .key = kc,
	                          .key_len = k->len,
	                          .deps = deps};
	cc->lead = ld;
	r->pc->rflags |= PIPE_RF_PRIMARY_ONLY; /* answers are kept only from the primary */
	return PIPE_CONTINUE;
}

static bool cache_enabled(const struct cfg *c)
{
	return c->cache.enabled;
}

/* Every pooling mode (session pooling looks up only while its session
 * state is what the key says, conn/session.c); not replication. */
static bool cache_applies(const struct req *r)
{
	return !r->replication && (r->mode == PIPE_MODE_TXN || r->mode == PIPE_MODE_STMT ||
	                           r->mode == PIPE_MODE_SESSION);
}

static void cache_event(const struct pipe_event *ev, union pipe_slot *slot)
{
	if (ev->kind == PEV_QUERY_START)
		cache_on_start(ev, slot);
}

const struct pipe_stage stage_cache = {
    .name = "cache",
    .point = PIPE_AT_REQUEST,
    .slot = PIPE_SLOT_CACHE,
    .order = 0,
    .enabled = cache_enabled,
    .applies = cache_applies,
    .run = cache_run,
    .events = 1u << PEV_QUERY_START,
    .on_event = cache_event,
    .client_free = cache_client_free,
};

void cache_stage_worker_exit(void)
{
	sbuf_free(&tls_key);
}
