/*
 * Query analytics for the reports (stats.c): the worker tables merged and
 * rendered, the slow log's lines and counters. See analytics.h.
 */
#include "dataplane/pipeline/analytics.h"

#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pipeline/engine/slowlog.h"
#include "dataplane/policy/snap.h"
#include "dataplane/rt/worker.h"
#include "common/cfg.h"

#include <stdlib.h>
#include <string.h>

void analytics_collect(struct worker *w, struct qs_table *into, size_t limit)
{
	struct qs_table *mine = analytics_table();
	(void)w; /* the calling worker thread's table */
	if (!mine || !into)
		return;
	if (!limit) {
		qs_table_merge(into, mine);
		return;
	}
	/* a summary: this worker's heaviest statements only (the exact merged
	 * top would need every worker's whole table every heartbeat) */
	const struct qs_entry *top[256];
	size_t n = qs_top(mine, QS_BY_TIME, top, limit < 256 ? limit : 256);
	for (size_t i = 0; i < n; i++)
		qs_merge_entry(into, top[i]);
}

struct qs_table *analytics_scratch(size_t limit)
{
	struct snap *sn = snap_current();
	size_t per = sn ? (size_t)sn->cfg->analytics.max_fingerprints : 2000;
	snap_unref(sn);
	if (limit && limit < per)
		per = limit;
	int n = workers_started();
	return qs_table_new(per * (size_t)(n > 0 ? n : 1));
}

Helios__QueryStat **analytics_top(struct qs_table *t, size_t n, size_t *count)
{
	*count = 0;
	size_t total = t ? qs_table_count(t) : 0;
	if (!n || n > total)
		n = total;
	Helios__QueryStat **v = calloc(n ? n : 1, sizeof(*v));
	const struct qs_entry **top = calloc(n ? n : 1, sizeof(*top));
	if (!v || !top) {
		free(v);
		free(top);
		return NULL;
	}
	size_t k = t ? qs_top(t, QS_BY_TIME, top, n) : 0;
	for (size_t i = 0; i < k; i++) {
		const struct qs_entry *e = top[i];
		Helios__QueryStat *q = malloc(sizeof(*q));
		if (!q)
			break;
		helios__query_stat__init(q);
		q->fingerprint = e->fingerprint;
		q->query = strdup(e->query);
		q->calls = e->calls;
		q->errors = e->errors;
		q->rows = e->rows;
		q->cache_hits = e->cache_hits;
		q->total_secs = (double)e->total_us / 1e6;
		q->min_secs = (double)e->min_us / 1e6;
		q->max_secs = (double)e->max_us / 1e6;
		q->p50_secs = (double)qs_entry_quantile(e, 0.50) / 1e6;
		q->p95_secs = (double)qs_entry_quantile(e, 0.95) / 1e6;
		q->p99_secs = (double)qs_entry_quantile(e, 0.99) / 1e6;
		q->database = strdup(e->database);
		q->user = strdup(e->user);
		q->node = strdup(e->node);
		v[(*count)++] = q;
	}
	free(top);
	return v;
}
