/*
 * /api/overview and the dashboard's files; see overview.h. The document is
 * built with jansson (which escapes every string) from reports the caller
 * already holds, so a statement text or a database name can never break
 * out of its JSON string, and the page renders them as text only.
 */
#include "common/overview.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* common/dashboard_assets.S */
extern const char helios_dashboard_html[], helios_dashboard_html_end[];
extern const char helios_dashboard_js[], helios_dashboard_js_end[];
extern const char helios_dashboard_css[], helios_dashboard_css_end[];

int overview_asset(const char *url, struct sbuf *body, const char **ctype)
{
	const char *p, *end;

	if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
		p = helios_dashboard_html;
		end = helios_dashboard_html_end;
		*ctype = "text/html; charset=utf-8";
	} else if (!strcmp(url, "/dashboard.js")) {
		p = helios_dashboard_js;
		end = helios_dashboard_js_end;
		*ctype = "text/javascript; charset=utf-8";
	} else if (!strcmp(url, "/dashboard.css")) {
		p = helios_dashboard_css;
		end = helios_dashboard_css_end;
		*ctype = "text/css; charset=utf-8";
	} else {
		return -1;
	}
	sbuf_append(body, p, (size_t)(end - p));
	return 200;
}

double overview_quantile(const Helios__Histogram *h, double q)
{
	uint64_t total = 0, cum = 0;

	if (!h || h->n_bounds == 0 || h->n_counts != h->n_bounds + 1 || !(q > 0 && q <= 1))
		return -1;
	for (size_t i = 0; i < h->n_counts; i++)
		total += h->counts[i];
	if (total == 0)
		return -1;
	double rank = q * (double)total;
	for (size_t i = 0; i < h->n_bounds; i++) {
		uint64_t before = cum;
		cum += h->counts[i];
		if ((double)cum >= rank) {
			double lo = i ? h->bounds[i - 1] : 0, hi = h->bounds[i];
			if (h->counts[i] == 0)
				return hi;
			return lo + (hi - lo) * (rank - (double)before) / (double)h->counts[i];
		}
	}
	return h->bounds[h->n_bounds - 1]; /* in +Inf: the most we can say */
}

/* ---- JSON ----
 * Building stops at the first allocation failure: ok goes false and the
 * rest are no-ops, so the callers need no checks of their own. */
struct jb {
	bool ok;
};

static json_t *j_str(struct jb *jb, const char *s)
{
	json_t *v;

	if (!s)
		s = "";
	v = json_string(s);
	if (!v && jb->ok) {
		/* Not UTF-8: every byte >= 0x80 becomes U+FFFD, enough for a
		 * page that only shows it. */
		struct sbuf b;

		sbuf_init(&b);
		for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
			if (*u < 0x80)
				sbuf_putc(&b, (char)*u);
			else
				sbuf_puts(&b, "\xef\xbf\xbd");
		}
		v = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.len);
		sbuf_free(&b);
	}
	return v;
}

static json_t *j_uint(uint64_t u)
{
	return json_integer(u > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)u);
}

/* JSON has no NaN or infinity; negative means "unknown" here: both null. */
static json_t *j_real(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

static json_t *j_known(double d)
{
	return d >= 0 && isfinite(d) ? json_real(d) : json_null();
}

static void j_set(struct jb *jb, json_t *obj, const char *key, json_t *v)
{
	if (!jb->ok || !obj || !v || json_object_set_new(obj, key, v) != 0) {
		json_decref(v);
		jb->ok = false;
	}
}

static void j_append(struct jb *jb, json_t *arr, json_t *v)
{
	if (!jb->ok || !arr || !v || json_array_append_new(arr, v) != 0) {
		json_decref(v);
		jb->ok = false;
	}
}

static json_t *pool_json(struct jb *jb, const Helios__PoolStats *p)
{
	json_t *o = json_object();
	uint64_t waits = p->wait_hist ? p->wait_hist->count : 0;

	j_set(jb, o, "database", j_str(jb, p->database));
	j_set(jb, o, "user", j_str(jb, p->user));
	j_set(jb, o, "tenant", j_str(jb, p->tenant));
	j_set(jb, o, "node", j_str(jb, p->node));
	j_set(jb, o, "mode", j_str(jb, p->mode));
	j_set(jb, o, "cl_active", j_uint(p->cl_active));
	j_set(jb, o, "cl_waiting", j_uint(p->cl_waiting));
	j_set(jb, o, "sv_active", j_uint(p->sv_active));
	j_set(jb, o, "sv_idle", j_uint(p->sv_idle));
	j_set(jb, o, "sv_login", j_uint(p->sv_login));
	j_set(jb, o, "max_size", j_uint(p->max_size));
	j_set(jb, o, "maxwait_secs", j_real(p->maxwait_secs));
	j_set(jb, o, "waits", j_uint(waits));
	j_set(jb, o, "wait_p99_secs", j_known(overview_quantile(p->wait_hist, 0.99)));
	j_set(jb, o, "wait_timeouts", j_uint(p->wait_timeouts));
	j_set(jb, o, "xact_count", j_uint(p->xact_count));
	j_set(jb, o, "query_count", j_uint(p->query_count));
	j_set(jb, o, "paused", json_boolean(p->paused));
	return o;
}

static json_t *node_json(struct jb *jb, const Helios__NodeStatus *nd)
{
	json_t *o = json_object();

	j_set(jb, o, "name", j_str(jb, nd->name));
	j_set(jb, o, "host", j_str(jb, nd->host));
	j_set(jb, o, "port", j_uint(nd->port));
	j_set(jb, o, "role", j_str(jb, nd->role));
	j_set(jb, o, "healthy", json_boolean(nd->healthy));
	j_set(jb, o, "lag_ms", nd->lag_ms >= 0 ? json_integer(nd->lag_ms) : json_null());
	j_set(jb, o, "breaker",
	      nd->breaker && nd->breaker[0] ? j_str(jb, nd->breaker) : json_null());
	j_set(jb, o, "draining", json_boolean(nd->draining));
	j_set(jb, o, "error", j_str(jb, nd->error));
	return o;
}

static json_t *query_json(struct jb *jb, const Helios__QueryStat *q)
{
	json_t *o = json_object();

	j_set(jb, o, "query", j_str(jb, q->query));
	j_set(jb, o, "database", j_str(jb, q->database));
	j_set(jb, o, "user", j_str(jb, q->user));
	j_set(jb, o, "node", j_str(jb, q->node));
	j_set(jb, o, "calls", j_uint(q->calls));
	j_set(jb, o, "errors", j_uint(q->errors));
	j_set(jb, o, "rows", j_uint(q->rows));
	j_set(jb, o, "total_secs", j_real(q->total_secs));
	j_set(jb, o, "mean_secs",
	      q->calls ? j_real(q->total_secs / (double)q->calls) : json_null());
	j_set(jb, o, "p99_secs", j_real(q->p99_secs));
	return o;
}

/* hits / (hits + misses); null before any cacheable statement. */
static json_t *ratio(uint64_t hits, uint64_t misses)
{
	return hits + misses ? json_real((double)hits / (double)(hits + misses)) : json_null();
}

/* What one report adds to the cluster-wide totals. */
struct totals {
	uint64_t clients, active, waiting, sv_active, sv_idle, pools, splice;
	uint64_t hits, misses, throttled, rejected;
};

static json_t *report_json(struct jb *jb, const Helios__StatsReport *r, struct totals *t)
{
	json_t *o = json_object(), *a;
	uint64_t active = 0, waiting = 0, throttled = 0, rejected = 0;

	j_set(jb, o, "uptime_secs", j_real(r->uptime_secs));
	j_set(jb, o, "collected_at", j_real(r->collected_at));
	j_set(jb, o, "io_backend", j_str(jb, r->io_backend));
	j_set(jb, o, "workers", j_uint(r->workers));
	j_set(jb, o, "queries_total", j_uint(r->queries_total));
	j_set(jb, o, "xacts_total", j_uint(r->xacts_total));
	j_set(jb, o, "login_failures", j_uint(r->login_failures));

	a = json_array();
	for (size_t i = 0; i < r->n_pools; i++) {
		const Helios__PoolStats *p = r->pools[i];
		active += p->cl_active;
		waiting += p->cl_waiting;
		t->sv_active += p->sv_active;
		t->sv_idle += p->sv_idle;
		j_append(jb, a, pool_json(jb, p));
	}
	t->pools += r->n_pools;
	j_set(jb, o, "pools", a);

	/* Summary reports count clients per pool (active, waiting); the rest
	 * are idle between transactions or still logging in. */
	json_t *c = json_object();
	uint64_t busy = active + waiting;
	j_set(jb, c, "total", j_uint(r->clients));
	j_set(jb, c, "max", j_uint(r->clients_max));
	j_set(jb, c, "active", j_uint(active));
	j_set(jb, c, "waiting", j_uint(waiting));
	j_set(jb, c, "idle", j_uint(r->clients > busy ? r->clients - busy : 0));
	j_set(jb, o, "clients", c);
	t->clients += r->clients;
	t->active += active;
	t->waiting += waiting;

	a = json_array();
	for (size_t i = 0; i < r->n_nodes; i++)
		j_append(jb, a, node_json(jb, r->nodes[i]));
	j_set(jb, o, "nodes", a);

	a = json_array();
	for (size_t i = 0; i < r->n_queries; i++)
		j_append(jb, a, query_json(jb, r->queries[i]));
	j_set(jb, o, "top_queries", a);

	json_t *ca = json_object();
	const Helios__CacheStats *cs = r->cache;
	j_set(jb, ca, "enabled", json_boolean(cs && cs->enabled));
	j_set(jb, ca, "hits", j_uint(cs ? cs->hits : 0));
	j_set(jb, ca, "misses", j_uint(cs ? cs->misses : 0));
	j_set(jb, ca, "hit_ratio", ratio(cs ? cs->hits : 0, cs ? cs->misses : 0));
	j_set(jb, ca, "entries", j_uint(cs ? cs->entries : 0));
	j_set(jb, ca, "bytes", j_uint(cs ? cs->bytes : 0));
	j_set(jb, ca, "max_bytes", j_uint(cs ? cs->max_bytes : 0));
	j_set(jb, o, "cache", ca);
	t->hits += cs ? cs->hits : 0;
	t->misses += cs ? cs->misses : 0;

	json_t *rl = json_object();
	a = json_array();
	for (size_t i = 0; i < r->n_rate_buckets; i++) {
		const Helios__RateBucket *b = r->rate_buckets[i];
		json_t *bo = json_object();
		j_set(jb, bo, "name", j_str(jb, b->name));
		j_set(jb, bo, "rate", j_real(b->rate));
		j_set(jb, bo, "allowed", j_uint(b->allowed));
		j_set(jb, bo, "throttled", j_uint(b->throttled));
		j_set(jb, bo, "rejected", j_uint(b->rejected));
		j_append(jb, a, bo);
		throttled += b->throttled;
		rejected += b->rejected;
	}
	j_set(jb, rl, "throttled", j_uint(throttled));
	j_set(jb, rl, "rejected", j_uint(rejected));
	j_set(jb, rl, "buckets", a);
	j_set(jb, o, "rate_limit", rl);
	t->throttled += throttled;
	t->rejected += rejected;

	json_t *sp = json_object();
	j_set(jb, sp, "active", j_uint(r->splice_active));
	j_set(jb, sp, "total", j_uint(r->splice_total));
	j_set(jb, sp, "fallbacks", j_uint(r->splice_fallbacks));
	j_set(jb, sp, "reused", j_uint(r->splice_reused));
	j_set(jb, o, "splice", sp);
	t->splice += r->splice_active;
	return o;
}

static json_t *dp_json(struct jb *jb, const struct overview_dp *d, uint64_t live, struct totals *t)
{
	json_t *o = d->report ? report_json(jb, d->report, t) : json_object();

	j_set(jb, o, "id", j_str(jb, d->id));
	j_set(jb, o, "connected", json_boolean(d->connected));
	j_set(jb, o, "generation", j_uint(d->generation));
	j_set(jb, o, "acked", json_boolean(d->generation == live));
	j_set(jb, o, "last_seen_secs", j_known(d->last_seen_secs));
	j_set(jb, o, "last_error", j_str(jb, d->last_error));
	j_set(jb, o, "has_report", json_boolean(d->report != NULL));
	return o;
}

static int dump_to_sbuf(const char *buffer, size_t size, void *data)
{
	struct sbuf *out = data;

	sbuf_append(out, buffer, size);
	return out->oom ? -1 : 0;
}

void overview_json(struct sbuf *out, const struct overview_info *in)
{
	struct jb jb = {.ok = true};
	struct totals t = {0};
	json_t *root = json_object(), *a, *acked = json_array(), *pending = json_array();
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	j_set(&jb, root, "role", j_str(&jb, in->role));
	j_set(&jb, root, "version", j_str(&jb, in->version));
	j_set(&jb, root, "uptime_secs", j_real(in->uptime_secs));
	j_set(&jb, root, "now", json_real((double)now.tv_sec + (double)now.tv_nsec / 1e9));

	json_t *cp = json_object();
	bool link = in->cp_connected >= 0;
	j_set(&jb, cp, "connected", link ? json_boolean(in->cp_connected > 0) : json_null());
	j_set(&jb, cp, "last_contact_secs", link ? j_known(in->cp_last_contact_secs) : json_null());
	j_set(&jb, root, "control_plane", cp);

	a = json_array();
	for (size_t i = 0; i < in->n_dps; i++) {
		const struct overview_dp *d = &in->dps[i];
		j_append(&jb, a, dp_json(&jb, d, in->generation, &t));
		j_append(&jb, d->generation == in->generation ? acked : pending, j_str(&jb, d->id));
	}
	j_set(&jb, root, "dataplanes", a);

	json_t *cfg = json_object();
	j_set(&jb, cfg, "generation", j_uint(in->generation));
	j_set(&jb, cfg, "has_config", json_boolean(in->has_config));
	j_set(&jb, cfg, "acked", acked);
	j_set(&jb, cfg, "not_acked", pending);
	j_set(&jb, root, "config", cfg);

	json_t *tot = json_object();
	j_set(&jb, tot, "dataplanes", j_uint(in->n_dps));
	j_set(&jb, tot, "pools", j_uint(t.pools));
	j_set(&jb, tot, "clients", j_uint(t.clients));
	j_set(&jb, tot, "clients_active", j_uint(t.active));
	j_set(&jb, tot, "clients_waiting", j_uint(t.waiting));
	j_set(&jb, tot, "clients_idle",
	      j_uint(t.clients > t.active + t.waiting ? t.clients - t.active - t.waiting : 0));
	j_set(&jb, tot, "servers_active", j_uint(t.sv_active));
	j_set(&jb, tot, "servers_idle", j_uint(t.sv_idle));
	j_set(&jb, tot, "cache_hit_ratio", ratio(t.hits, t.misses));
	j_set(&jb, tot, "throttled", j_uint(t.throttled));
	j_set(&jb, tot, "rejected", j_uint(t.rejected));
	j_set(&jb, tot, "spliced_sessions", j_uint(t.splice));
	j_set(&jb, root, "totals", tot);

	a = json_array();
	for (size_t i = 0; i < in->n_nodes; i++)
		j_append(&jb, a, node_json(&jb, in->nodes[i]));
	j_set(&jb, root, "nodes", a);

	if (!jb.ok || json_dump_callback(root, dump_to_sbuf, out, JSON_REAL_PRECISION(15)) != 0)
		out->oom = true;
	else
		sbuf_putc(out, '\n');
	json_decref(root);
}
