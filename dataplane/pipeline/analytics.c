/*
 * Query analytics (see analytics.h): an event subscriber. Each statement
 * that goes to a server (PEV_QUERY_START of a Query, or the first text of
 * an extended batch and its Sync) is remembered in the client's slot; its
 * PEV_QUERY_DONE (conn/ measures the duration, counts the rows, tells
 * errors) records it under its fingerprint in the calling worker thread's
 * table (pipeline/engine/qstats) and, when slower than
 * analytics.slow_query_threshold_ms, in the slow query log. Only the slow
 * log hands records to another thread.
 */
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/route.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "dataplane/pipeline/engine/analyze.h"
#include "dataplane/pipeline/engine/qstats.h"
#include "dataplane/pipeline/engine/shape.h"
#include "dataplane/pipeline/engine/slowlog.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QA_SLOTS 4
#define QA_TEXT  4096

struct qa_slot {
	uint64_t fp;
	uint32_t text_len;
	char text[QA_TEXT];
};

/* Per client: statements sent whose completion is to come, oldest first
 * (as deep as conn/'s own list of them), and the first statement text of
 * the extended batch being sent. */
struct qa {
	struct qa_slot slot[QA_SLOTS];
	uint32_t head, n;
	bool batch_set;
	uint32_t batch_len;
	char batch[QA_TEXT];
};

static struct slowlog *slow;
static __thread struct qs_table *table; /* the calling worker thread's */

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

static struct qs_table *table_of(const struct cfg *c)
{
	if (!table)
		table = qs_table_new((size_t)c->analytics.max_fingerprints);
	return table;
}

struct qs_table *analytics_table(void)
{
	return table;
}

void analytics_note_cache_hit(uint64_t fp)
{
	if (table && fp)
		qs_note_cache_hit(table, fp);
}

/* shape -> fingerprint, per worker thread, direct-mapped: clients that
 * inline literals send a new text every time, and parsing each one would
 * cost far more than the statement's relay */
#define FP_CACHE 4096
static __thread struct fp_slot {
	uint64_t shape, fp;
	bool used;
} * fp_cache;

static uint64_t fingerprint(const struct cfg *c, const char *sql, size_t len)
{
	uint64_t shape = sql_shape(sql, len);
	if (!fp_cache)
		fp_cache = calloc(FP_CACHE, sizeof(*fp_cache));
	struct fp_slot *s = fp_cache ? &fp_cache[shape % FP_CACHE] : NULL;
	if (s && s->used && s->shape == shape)
		return s->fp;
	const struct an_result *a = route_analysis(c, sql, len);
	/* all unparsable statements share fingerprint 0 */
	uint64_t fp = !a || a->parse_error || a->too_complex ? 0 : a->fingerprint;
	if (s) {
		s->shape = shape;
		s->fp = fp;
		s->used = true;
	}
	return fp;
}

static size_t text_len(const char *sql, size_t len)
{
	const char *nul = memchr(sql, '\0', len);
	return nul ? (size_t)(nul - sql) : len;
}

static void push(struct qa *q, const struct cfg *c, const char *sql, size_t len)
{
	if (q->n == QA_SLOTS) {
		/* deeper pipelines than we follow: forget the oldest */
		q->head = (q->head + 1) % QA_SLOTS;
		q->n--;
	}
	struct qa_slot *s = &q->slot[(q->head + q->n) % QA_SLOTS];
	q->n++;
	s->fp = len ? fingerprint(c, sql, len) : 0;
	s->text_len = len < QA_TEXT - 1 ? (uint32_t)len : QA_TEXT - 1;
	memcpy(s->text, sql, s->text_len);
	s->text[s->text_len] = '\0';
}

static void on_start(const struct pipe_event *ev, struct qa *q)
{
	const struct req *r = ev->r;
	const struct cfg *c = r->snap->cfg;
	switch (r->type) {
	case 'Q':
		push(q, c, r->sql ? r->sql : "", r->sql ? text_len(r->sql, r->sql_len) : 0);
		return;
	case 'P':
	case 'B':
		if (q->batch_set || !r->sql)
			return;
		q->batch_len = (uint32_t)text_len(r->sql, r->sql_len);
		if (q->batch_len > QA_TEXT - 1)
			q->batch_len = QA_TEXT - 1;
		memcpy(q->batch, r->sql, q->batch_len);
		q->batch[q->batch_len] = '\0';
		q->batch_set = true;
		return;
	case 'S':
		/* a Sync alone still gets a ReadyForQuery: an empty entry */
		push(q, c, q->batch, q->batch_set ? q->batch_len : 0);
		q->batch_set = false;
		return;
	default:
		return;
	}
}

/* The normalised text (constants as $n) for reports; "" when it does not
 * parse. Runs once per fingerprint per worker. */
static void set_query_text(struct qs_entry *e, const char *text)
{
	char *n = slowlog_normalise(text, strlen(text));
	snprintf(e->query, sizeof(e->query), "%s", n ? n : SLOWLOG_UNPARSABLE);
	free(n);
}

static void on_done(const struct pipe_event *ev, struct qa *q)
{
	if (!q->n)
		return;
	struct qa_slot *s = &q->slot[q->head];
	q->head = (q->head + 1) % QA_SLOTS;
	q->n--;
	if (!s->text_len)
		return; /* a lone Sync */
	const struct req *r = ev->r;
	const struct cfg *c = r->snap->cfg;
	uint64_t us = ev->duration_ns / 1000;
	const char *node =
	    r->node >= 0 && (size_t)r->node < c->n_nodes ? c->nodes[r->node].name : "?";
	struct qs_table *t = table_of(c);
	if (!t)
		return;
	bool error = !ev->ok;
	struct qs_entry *e = qs_record(t, s->fp, us, ev->rows, error, r->database, r->user, node);
	if (e && !e->query[0])
		set_query_text(e, s->text);
	int threshold = c->analytics.slow_query_threshold_ms; /* live: the client's snapshot */
	if (slow && threshold > 0 && us >= (uint64_t)threshold * 1000) {
		struct slowlog_rec rec;
		memset(&rec, 0, sizeof(rec));
		rec.ts = cpwire_now();
		rec.duration_us = us;
		snprintf(rec.user, sizeof(rec.user), "%s", r->user);
		snprintf(rec.database, sizeof(rec.database), "%s", r->database);
		snprintf(rec.node, sizeof(rec.node), "%s", node);
		const char *app =
		    r->setting ? r->setting(r->setting_arg, "application_name") : NULL;
		if (app)
			snprintf(rec.application_name, sizeof(rec.application_name), "%s", app);
		rec.fingerprint = s->fp;
		rec.rows = ev->rows;
		rec.error = error;
		snprintf(rec.sqlstate, sizeof(rec.sqlstate), "%s",
		         error && ev->sqlstate ? ev->sqlstate : "");
		rec.text = strndup(s->text, s->text_len);
		rec.text_len = rec.text ? s->text_len : 0;
		if (rec.text)
			slowlog_submit(slow, &rec); /* takes the text, even when dropped */
	}
}

static void analytics_event(const struct pipe_event *ev, union pipe_slot *slot)
{
	if (!ev->r->snap->cfg->analytics.enabled)
		return;
	if (!slot->p && !(slot->p = calloc(1, sizeof(struct qa))))
		return;
	if (ev->kind == PEV_QUERY_START)
		on_start(ev, slot->p);
	else if (ev->kind == PEV_QUERY_DONE)
		on_done(ev, slot->p);
}

static void analytics_client_free(union pipe_slot *slot)
{
	free(slot->p);
	slot->p = NULL;
}

static bool analytics_enabled(const struct cfg *c)
{
	return c->analytics.enabled;
}

/* Every pooling mode (a session spliced in the kernel publishes nothing);
 * not replication connections. */
static bool analytics_applies(const struct req *r)
{
	return !r->replication;
}

const struct pipe_stage stage_analytics = {
    .name = "analytics",
    .point = PIPE_AT_REQUEST,
    .slot = PIPE_SLOT_ANALYTICS,
    .order = 100,
    .enabled = analytics_enabled,
    .applies = analytics_applies,
    .run = NULL, /* it only listens */
    .events = (1u << PEV_QUERY_START) | (1u << PEV_QUERY_DONE),
    .on_event = analytics_event,
    .client_free = analytics_client_free,
};

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
	(void)w;
	free(fp_cache);
	fp_cache = NULL;
	qs_table_free(table);
	table = NULL;
}
