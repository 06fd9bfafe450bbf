/*
 * Query analytics glue; see analytics.h. All per-statement work happens on
 * the worker that owns the server connection; only the slow log hands
 * records to another thread.
 */
#include "dataplane/pipeline/analytics.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/conn/conn.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/engine/slowlog.h"
#include "dataplane/policy/snap.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/rt/worker.h"

#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QA_SLOTS 4
#define QA_TEXT  4096

struct qa_slot {
	uint64_t fp;
	struct timespec start;
	uint64_t rows;
	bool error;
	char sqlstate[6];
	uint32_t text_len;
	char text[QA_TEXT];
};

/* Per server connection: statements sent whose ReadyForQuery is to come,
 * oldest first, and the first statement text of an extended batch. */
struct qa {
	struct qa_slot slot[QA_SLOTS];
	uint32_t head, n;
	bool batch_set;
	uint32_t batch_len;
	char batch[QA_TEXT];
};

static struct slowlog *slow;

int analytics_start(const struct cfg *c, char *err, size_t errlen)
{
	/* opened whenever analytics is on, so the threshold can change live */
	if (!c->analytics.enabled)
		return 0;
	const char *path = c->analytics.slow_query_log;
	if (!path[0]) {
		/* a config from the control plane: no file of its own */
		return 0;
	}
	slow = slowlog_open(path, (uint64_t)c->analytics.slow_query_log_max_mb << 20, 1000, err,
	                    errlen);
	if (!slow)
		return -1;
	log_info("slow query log: %s (statements over %d ms)", path,
	         c->analytics.slow_query_threshold_ms);
	return 0;
}

void analytics_stop(void)
{
	slowlog_close(slow);
	slow = NULL;
}

void analytics_bind(struct client *cl, struct server *sv)
{
	if (sv->qa || !cl->snap->cfg->analytics.enabled)
		return;
	sv->qa = calloc(1, sizeof(*sv->qa));
}

void analytics_server_free(struct server *sv)
{
	free(sv->qa);
	sv->qa = NULL;
}

static struct qs_table *table_of(struct worker *w, const struct cfg *c)
{
	if (!w->qs)
		w->qs = qs_table_new((size_t)c->analytics.max_fingerprints);
	return w->qs;
}

/* shape -> fingerprint, per worker thread, direct-mapped: clients that
 * inline literals send a new text every time, and parsing each one would
 * cost far more than the statement's relay */
#define FP_CACHE 4096
static __thread struct fp_slot {
	uint64_t shape, fp;
	bool used;
} * fp_cache;

static uint64_t fingerprint(struct client *cl, const char *sql, size_t len)
{
	uint64_t shape = sql_shape(sql, len);
	if (!fp_cache)
		fp_cache = calloc(FP_CACHE, sizeof(*fp_cache));
	struct fp_slot *s = fp_cache ? &fp_cache[shape % FP_CACHE] : NULL;
	if (s && s->used && s->shape == shape)
		return s->fp;
	const struct an_result *a = route_analysis(cl->snap->cfg, sql, len);
	/* all unparsable statements share fingerprint 0 */
	uint64_t fp = !a || a->parse_error || a->too_complex ? 0 : a->fingerprint;
	if (s) {
		s->shape = shape;
		s->fp = fp;
		s->used = true;
	}
	return fp;
}

static void push(struct client *cl, struct server *sv, const char *sql, size_t len)
{
	struct qa *q = sv->qa;
	if (q->n == QA_SLOTS) {
		/* deeper pipelines than we follow: forget the oldest */
		q->head = (q->head + 1) % QA_SLOTS;
		q->n--;
	}
	struct qa_slot *s = &q->slot[(q->head + q->n) % QA_SLOTS];
	q->n++;
	memset(s, 0, offsetof(struct qa_slot, text));
	s->fp = fingerprint(cl, sql, len);
	s->text_len = len < QA_TEXT - 1 ? (uint32_t)len : QA_TEXT - 1;
	memcpy(s->text, sql, s->text_len);
	s->text[s->text_len] = '\0';
	conn_now(&s->start);
}

void analytics_query(struct client *cl, struct server *sv, const char *sql, size_t len)
{
	if (!sv->qa)
		return;
	const char *nul = memchr(sql, '\0', len);
	push(cl, sv, sql, nul ? (size_t)(nul - sql) : len);
}

void analytics_batch_text(struct client *cl, struct server *sv, const char *sql, size_t len)
{
	struct qa *q = sv->qa;
	if (!q || q->batch_set)
		return;
	(void)cl;
	const char *nul = memchr(sql, '\0', len);
	len = nul ? (size_t)(nul - sql) : len;
	q->batch_len = len < QA_TEXT - 1 ? (uint32_t)len : QA_TEXT - 1;
	memcpy(q->batch, sql, q->batch_len);
	q->batch[q->batch_len] = '\0';
	q->batch_set = true;
}

void analytics_sync(struct client *cl, struct server *sv)
{
	struct qa *q = sv->qa;
	if (!q)
		return;
	if (q->batch_set)
		push(cl, sv, q->batch, q->batch_len);
	else
		push(cl, sv, "", 0); /* a Sync alone still gets a ReadyForQuery */
	q->batch_set = false;
}

void analytics_response(struct server *sv, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct qa *q = sv->qa;
	if (!q || !q->n)
		return;
	struct qa_slot *s = &q->slot[q->head];
	if (type == 'E') {
		s->error = true;
		const char *code = pgw_error_field(body, len, 'C');
		snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", code ? code : "");
		return;
	}
	/* CommandComplete: "SELECT 5", "INSERT 0 3", "UPDATE 2", "COPY 10" */
	const char *tag = (const char *)body;
	if (!memchr(tag, '\0', len))
		return;
	const char *last = strrchr(tag, ' ');
	if (last && last[1] >= '0' && last[1] <= '9')
		s->rows += strtoull(last + 1, NULL, 10);
}

/* The normalised text (constants as $n) for reports; "" when it does not
 * parse. Runs once per fingerprint per worker. */
static void set_query_text(struct qs_entry *e, const char *text)
{
	char *n = slowlog_normalise(text, strlen(text));
	snprintf(e->query, sizeof(e->query), "%s", n ? n : SLOWLOG_UNPARSABLE);
	free(n);
}

void analytics_ready(struct server *sv)
{
	struct qa *q = sv->qa;
	if (!q || !q->n || !sv->w)
		return;
	struct qa_slot *s = &q->slot[q->head];
	q->head = (q->head + 1) % QA_SLOTS;
	q->n--;
	if (!s->text_len)
		return; /* a lone Sync */
	struct timespec now;
	conn_now(&now);
	int64_t us = (int64_t)(now.tv_sec - s->start.tv_sec) * 1000000 +
	             (now.tv_nsec - s->start.tv_nsec) / 1000;
	if (us < 0)
		us = 0;
	struct snap *sn = sv->client ? sv->client->snap : NULL;
	const struct cfg *c = sn ? sn->cfg : NULL;
	if (!c)
		return;
	const char *node = sv->node_idx >= 0 && (size_t)sv->node_idx < c->n_nodes
	                       ? c->nodes[sv->node_idx].name
	                       : "?";
	struct qs_table *t = table_of(sv->w, c);
	if (!t)
		return;
	struct qs_entry *e =
	    qs_record(t, s->fp, (uint64_t)us, s->rows, s->error, sv->database, sv->user, node);
	if (e && !e->query[0])
		set_query_text(e, s->text);
	int threshold = c->analytics.slow_query_threshold_ms; /* live: the client's snapshot */
	if (slow && threshold > 0 && us >= (int64_t)threshold * 1000) {
		struct slowlog_rec rec;
		memset(&rec, 0, sizeof(rec));
		rec.ts = cpwire_now();
		rec.duration_us = (uint64_t)us;
		snprintf(rec.user, sizeof(rec.user), "%s", sv->user);
		snprintf(rec.database, sizeof(rec.database), "%s", sv->database);
		snprintf(rec.node, sizeof(rec.node), "%s", node);
		const struct client *cl = sv->client;
		for (int i = 0; cl && i < cl->n_params; i++)
			if (!strcmp(cl->params[i].name, "application_name"))
				snprintf(rec.application_name, sizeof(rec.application_name), "%s",
				         cl->params[i].value);
		rec.fingerprint = s->fp;
		rec.rows = s->rows;
		rec.error = s->error;
		snprintf(rec.sqlstate, sizeof(rec.sqlstate), "%s", s->sqlstate);
		rec.text = strndup(s->text, s->text_len);
		rec.text_len = rec.text ? s->text_len : 0;
		if (rec.text)
			slowlog_submit(slow, &rec); /* takes the text, even when dropped */
	}
}

void analytics_collect(struct worker *w, struct qs_table *into, size_t limit)
{
	if (!w->qs || !into)
		return;
	if (!limit) {
		qs_table_merge(into, w->qs);
		return;
	}
	/* a summary: this worker's heaviest statements only (the exact merged
	 * top would need every worker's whole table every heartbeat) */
	const struct qs_entry *top[256];
	size_t n = qs_top(w->qs, QS_BY_TIME, top, limit < 256 ? limit : 256);
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

char **analytics_slow_lines(size_t n, size_t *count)
{
	*count = 0;
	return slow ? slowlog_recent(slow, n, count) : NULL;
}

void analytics_slow_counts(uint64_t *written, uint64_t *dropped)
{
	*written = *dropped = 0;
	if (!slow)
		return;
	struct slowlog_stats st;
	slowlog_stats(slow, &st);
	*written = st.written;
	*dropped = st.dropped;
}

void analytics_worker_exit(struct worker *w)
{
	free(fp_cache);
	fp_cache = NULL;
	qs_table_free(w->qs);
	w->qs = NULL;
}
