/*
 * /api/overview and the dashboard's files; see overview.h. The document is
 * built with jansson (which escapes every string) from reports the caller
 * already holds, so a statement text or a database name can never break
 * out of its JSON string, and the page renders them as text only.
 */
#include "common/overview.h"

#include "common/jbuild.h"

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

/* ---- JSON (common/jbuild.h) ---- */

/* negative means "unknown" here: null, as NaN and infinity */
static json_t *j_known(double d)
{
	return d >= 0 && isfinite(d) ? json_real(d) : json_null();
}

static json_t *pool_json(struct jb *jb, const Helios__PoolStats *p)
{
	json_t *o = json_object();
	uint64_t waits = p->wait_hist ? p->wait_hist->count : 0;

	jb_set(jb, o, "database", jb_str(jb, p->database));
	jb_set(jb, o, "user", jb_str(jb, p->user));
	jb_set(jb, o, "tenant", jb_str(jb, p->tenant));
	jb_set(jb, o, "node", jb_str(jb, p->node));
	jb_set(jb, o, "mode", jb_str(jb, p->mode));
	jb_set(jb, o, "cl_active", jb_uint(p->cl_active));
	jb_set(jb, o, "cl_waiting", jb_uint(p->cl_waiting));
	jb_set(jb, o, "sv_active", jb_uint(p->sv_active));
	jb_set(jb, o, "sv_idle", jb_uint(p->sv_idle));
	jb_set(jb, o, "sv_login", jb_uint(p->sv_login));
	jb_set(jb, o, "max_size", jb_uint(p->max_size));
	jb_set(jb, o, "maxwait_secs", jb_real(p->maxwait_secs));
	jb_set(jb, o, "waits", jb_uint(waits));
	jb_set(jb, o, "wait_p99_secs", j_known(overview_quantile(p->wait_hist, 0.99)));
	jb_set(jb, o, "wait_timeouts", jb_uint(p->wait_timeouts));
	jb_set(jb, o, "xact_count", jb_uint(p->xact_count));
	jb_set(jb, o, "query_count", jb_uint(p->query_count));
	jb_set(jb, o, "paused", json_boolean(p->paused));
	return o;
}

static json_t *node_json(struct jb *jb, const Helios__NodeStatus *nd)
{
	json_t *o = json_object();

	jb_set(jb, o, "name", jb_str(jb, nd->name));
	jb_set(jb, o, "host", jb_str(jb, nd->host));
	jb_set(jb, o, "port", jb_uint(nd->port));
	jb_set(jb, o, "role", jb_str(jb, nd->role));
	jb_set(jb, o, "healthy", json_boolean(nd->healthy));
	jb_set(jb, o, "lag_ms", nd->lag_ms >= 0 ? json_integer(nd->lag_ms) : json_null());
	jb_set(jb, o, "breaker",
	       nd->breaker && nd->breaker[0] ? jb_str(jb, nd->breaker) : json_null());
	jb_set(jb, o, "draining", json_boolean(nd->draining));
	jb_set(jb, o, "error", jb_str(jb, nd->error));
	return o;
}

static json_t *query_json(struct jb *jb, const Helios__QueryStat *q)
{
	json_t *o = json_object();

	jb_set(jb, o, "query", jb_str(jb, q->query));
	jb_set(jb, o, "database", jb_str(jb, q->database));
	jb_set(jb, o, "user", jb_str(jb, q->user));
	jb_set(jb, o, "node", jb_str(jb, q->node));
	jb_set(jb, o, "calls", jb_uint(q->calls));
	jb_set(jb, o, "errors", jb_uint(q->errors));
	jb_set(jb, o, "rows", jb_uint(q->rows));
	jb_set(jb, o, "total_secs", jb_real(q->total_secs));
	jb_set(jb, o, "mean_secs",
	       q->calls ? jb_real(q->total_secs / (double)q->calls) : json_null());
	jb_set(jb, o, "p99_secs", jb_real(q->p99_secs));
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

	jb_set(jb, o, "uptime_secs", jb_real(r->uptime_secs));
	jb_set(jb, o, "collected_at", jb_real(r->collected_at));
	jb_set(jb, o, "io_backend", jb_str(jb, r->io_backend));
	jb_set(jb, o, "workers", jb_uint(r->workers));
	jb_set(jb, o, "queries_total", jb_uint(r->queries_total));
	jb_set(jb, o, "xacts_total", jb_uint(r->xacts_total));
	jb_set(jb, o, "login_failures", jb_uint(r->login_failures));

	a = json_array();
	for (size_t i = 0; i < r->n_pools; i++) {
		const Helios__PoolStats *p = r->pools[i];
		active += p->cl_active;
		waiting += p->cl_waiting;
		t->sv_active += p->sv_active;
		t->sv_idle += p->sv_idle;
		jb_append(jb, a, pool_json(jb, p));
	}
	t->pools += r->n_pools;
	jb_set(jb, o, "pools", a);

	/* Summary reports count clients per pool (active, waiting); the rest
	 * are idle between transactions or still logging in. */
	json_t *c = json_object();
	uint64_t busy = active + waiting;
	jb_set(jb, c, "total", jb_uint(r->clients));
	jb_set(jb, c, "max", jb_uint(r->clients_max));
	jb_set(jb, c, "active", jb_uint(active));
	jb_set(jb, c, "waiting", jb_uint(waiting));
	jb_set(jb, c, "idle", jb_uint(r->clients > busy ? r->clients - busy : 0));
	jb_set(jb, o, "clients", c);
	t->clients += r->clients;
	t->active += active;
	t->waiting += waiting;

	a = json_array();
	for (size_t i = 0; i < r->n_nodes; i++)
		jb_append(jb, a, node_json(jb, r->nodes[i]));
	jb_set(jb, o, "nodes", a);

	a = json_array();
	for (size_t i = 0; i < r->n_queries; i++)
		jb_append(jb, a, query_json(jb, r->queries[i]));
	jb_set(jb, o, "top_queries", a);

	json_t *ca = json_object();
	const Helios__CacheStats *cs = r->cache;
	jb_set(jb, ca, "enabled", json_boolean(cs && cs->enabled));
	jb_set(jb, ca, "hits", jb_uint(cs ? cs->hits : 0));
	jb_set(jb, ca, "misses", jb_uint(cs ? cs->misses : 0));
	jb_set(jb, ca, "hit_ratio", ratio(cs ? cs->hits : 0, cs ? cs->misses : 0));
	jb_set(jb, ca, "entries", jb_uint(cs ? cs->entries : 0));
	jb_set(jb, ca, "bytes", jb_uint(cs ? cs->bytes : 0));
	jb_set(jb, ca, "max_bytes", jb_uint(cs ? cs->max_bytes : 0));
	jb_set(jb, o, "cache", ca);
	t->hits += cs ? cs->hits : 0;
	t->misses += cs ? cs->misses : 0;

	json_t *rl = json_object();
	a = json_array();
	for (size_t i = 0; i < r->n_rate_buckets; i++) {
		const Helios__RateBucket *b = r->rate_buckets[i];
		json_t *bo = json_object();
		jb_set(jb, bo, "name", jb_str(jb, b->name));
		jb_set(jb, bo, "rate", jb_real(b->rate));
		jb_set(jb, bo, "allowed", jb_uint(b->allowed));
		jb_set(jb, bo, "throttled", jb_uint(b->throttled));
		jb_set(jb, bo, "rejected", jb_uint(b->rejected));
		jb_append(jb, a, bo);
		throttled += b->throttled;
		rejected += b->rejected;
	}
	jb_set(jb, rl, "throttled", jb_uint(throttled));
	jb_set(jb, rl, "rejected", jb_uint(rejected));
	jb_set(jb, rl, "buckets", a);
	jb_set(jb, o, "rate_limit", rl);
	t->throttled += throttled;
	t->rejected += rejected;

	json_t *sp = json_object();
	jb_set(jb, sp, "active", jb_uint(r->splice_active));
	jb_set(jb, sp, "total", jb_uint(r->splice_total));
	jb_set(jb, sp, "fallbacks", jb_uint(r->splice_fallbacks));
	jb_set(jb, sp, "reused", jb_uint(r->splice_reused));
	jb_set(jb, o, "splice", sp);
	t->splice += r->splice_active;
	return o;
}

static json_t *dp_json(struct jb *jb, const struct overview_dp *d, uint64_t live, struct totals *t)
{
	json_t *o = d->report ? report_json(jb, d->report, t) : json_object();

	jb_set(jb, o, "id", jb_str(jb, d->id));
	jb_set(jb, o, "connected", json_boolean(d->connected));
	jb_set(jb, o, "generation", jb_uint(d->generation));
	jb_set(jb, o, "acked", json_boolean(d->generation == live));
	jb_set(jb, o, "last_seen_secs", j_known(d->last_seen_secs));
	jb_set(jb, o, "last_error", jb_str(jb, d->last_error));
	jb_set(jb, o, "has_report", json_boolean(d->report != NULL));
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
	jb_set(&jb, root, "role", jb_str(&jb, in->role));
	jb_set(&jb, root, "version", jb_str(&jb, in->version));
	jb_set(&jb, root, "uptime_secs", jb_real(in->uptime_secs));
	jb_set(&jb, root, "now", json_real((double)now.tv_sec + (double)now.tv_nsec / 1e9));

	json_t *cp = json_object();
	bool link = in->cp_connected >= 0;
	jb_set(&jb, cp, "connected", link ? json_boolean(in->cp_connected > 0) : json_null());
	jb_set(&jb, cp, "last_contact_secs",
	       link ? j_known(in->cp_last_contact_secs) : json_null());
	jb_set(&jb, root, "control_plane", cp);

	a = json_array();
	for (size_t i = 0; i < in->n_dps; i++) {
		const struct overview_dp *d = &in->dps[i];
		jb_append(&jb, a, dp_json(&jb, d, in->generation, &t));
		jb_append(&jb, d->generation == in->generation ? acked : pending,
		          jb_str(&jb, d->id));
	}
	jb_set(&jb, root, "dataplanes", a);

	json_t *cfg = json_object();
	jb_set(&jb, cfg, "generation", jb_uint(in->generation));
	jb_set(&jb, cfg, "has_config", json_boolean(in->has_config));
	jb_set(&jb, cfg, "acked", acked);
	jb_set(&jb, cfg, "not_acked", pending);
	jb_set(&jb, root, "config", cfg);

	json_t *tot = json_object();
	jb_set(&jb, tot, "dataplanes", jb_uint(in->n_dps));
	jb_set(&jb, tot, "pools", jb_uint(t.pools));
	jb_set(&jb, tot, "clients", jb_uint(t.clients));
	jb_set(&jb, tot, "clients_active", jb_uint(t.active));
	jb_set(&jb, tot, "clients_waiting", jb_uint(t.waiting));
	jb_set(&jb, tot, "clients_idle",
	       jb_uint(t.clients > t.active + t.waiting ? t.clients - t.active - t.waiting : 0));
	jb_set(&jb, tot, "servers_active", jb_uint(t.sv_active));
	jb_set(&jb, tot, "servers_idle", jb_uint(t.sv_idle));
	jb_set(&jb, tot, "cache_hit_ratio", ratio(t.hits, t.misses));
	jb_set(&jb, tot, "throttled", jb_uint(t.throttled));
	jb_set(&jb, tot, "rejected", jb_uint(t.rejected));
	jb_set(&jb, tot, "spliced_sessions", jb_uint(t.splice));
	jb_set(&jb, root, "totals", tot);

	a = json_array();
	for (size_t i = 0; i < in->n_nodes; i++)
		jb_append(&jb, a, node_json(&jb, in->nodes[i]));
	jb_set(&jb, root, "nodes", a);

	if (!jb.ok || json_dump_callback(root, dump_to_sbuf, out, JSON_REAL_PRECISION(15)) != 0)
		out->oom = true;
	else
		sbuf_putc(out, '\n');
	json_decref(root);
}
