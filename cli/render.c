/*
 * helioctl plain-text output: one table printer shared by every verb, and
 * one function per verb that fills it from a CtlResponse. Machine readers
 * use --json; this output is for people, so numbers are rounded and empty
 * cells show "-" (which also keeps every row splittable on whitespace).
 */
#include "cli/helioctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void table_init(struct table *t, const char *header)
{
	memset(t, 0, sizeof(*t));
	for (const char *p = header; *p;) {
		size_t len = strcspn(p, " ");
		table_add(t, "%.*s", (int)len, p);
		t->ncols++;
		p += len;
		p += strspn(p, " ");
	}
}

void table_add(struct table *t, const char *fmt, ...)
{
	char *cell;
	va_list ap;

	if (t->oom)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));
		if (!cells) {
			t->oom = true;
			return;
		}
		t->cells = cells;
		t->cap = cap;
	}
	va_start(ap, fmt);
	int rc = vasprintf(&cell, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		t->oom = true;
		return;
	}
	/* A newline or tab inside a value (a multi-line server error) would
	 * break the row layout. */
	for (char *p = cell; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (!*cell) {
		free(cell);
		cell = strdup("-");
		if (!cell) {
			t->oom = true;
			return;
		}
	}
	t->cells[t->n++] = cell;
}

/* Display width: one column per UTF-8 character (names and application
 * names may be non-ASCII; wide CJK characters are not worth wcwidth). */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

int table_print(struct table *t, FILE *out)
{
	size_t *width = t->oom || !t->ncols ? NULL : calloc(t->ncols, sizeof(*width));
	int rc = -1;

	if (width) {
		for (size_t i = 0; i < t->n; i++) {
			size_t w = text_width(t->cells[i]);
			if (w > width[i % t->ncols])
				width[i % t->ncols] = w;
		}
		for (size_t i = 0; i < t->n; i++) {
			size_t col = i % t->ncols;
			fputs(t->cells[i], out);
			/* No padding after the last column: no trailing blanks. */
			if (col + 1 == t->ncols || i + 1 == t->n)
				fputc('\n', out);
			else
				fprintf(out, "%*s", (int)(width[col] - text_width(t->cells[i]) + 2),
				        "");
		}
		rc = 0;
	}
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(width);
	memset(t, 0, sizeof(*t));
	return rc;
}

static const char *yes_no(protobuf_c_boolean b)
{
	return b ? "yes" : "no";
}

static const char *or_dflt(const char *s, const char *dflt)
{
	return s && *s ? s : dflt;
}

static void print_list(FILE *out, const char *label, char **items, size_t n)
{
	if (!n)
		return;
	fprintf(out, "%s: ", label);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", items[i]);
	fputc('\n', out);
}

int render_status(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	fprintf(out, "control plane: %s, up %.0fs, config generation %" PRIu64 "\n",
	        or_dflt(r->version, "unknown version"), r->uptime_secs, r->generation);
	fprintf(out, "config: %s", or_dflt(r->config_path, "(none)"));
	if (r->overrides_path && *r->overrides_path)
		fprintf(out, " (overrides: %s)", r->overrides_path);
	fputc('\n', out);
	print_list(out, "paused", r->paused, r->n_paused);
	print_list(out, "drained", r->drained, r->n_drained);
	fputc('\n', out);

	table_init(&t, "DATAPLANE CONNECTED GENERATION LAST_SEEN CLIENTS BACKEND ERROR");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		const Helios__StatsReport *rep = d->report;
		table_add(&t, "%s", d->dataplane_id);
		table_add(&t, "%s", yes_no(d->connected));
		table_add(&t, "%" PRIu64, d->generation);
		table_add(&t, "%.1fs", d->last_seen_secs);
		if (rep)
			table_add(&t, "%u", rep->clients);
		else
			table_add(&t, "%s", "");
		table_add(
		    &t, "%s",
		    or_dflt(rep ? rep->io_backend : NULL, d->info ? d->info->io_backend : ""));
		table_add(&t, "%s", d->last_error);
	}
	if (table_print(&t, out) < 0)
		return -1;

	/* Keys changed with `config set` that only a restart applies. */
	bool first = true;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		if (!d->n_restart_pending)
			continue;
		if (first)
			fputc('\n', out);
		first = false;
		fprintf(out, "%s needs a restart to apply: ", d->dataplane_id);
		for (size_t k = 0; k < d->n_restart_pending; k++)
			fprintf(out, "%s%s", k ? ", " : "", d->restart_pending[k]);
		fputc('\n', out);
	}
	/* Plugin sets a data plane refused (it runs the one it had). */
	first = true;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		if (!d->plugin_error || !*d->plugin_error ||
		    d->plugin_generation == r->plugin_generation)
			continue;
		if (first)
			fputc('\n', out);
		first = false;
		fprintf(out, "%s refused plugin set generation %" PRIu64 ", runs %" PRIu64 ": %s\n",
		        d->dataplane_id, r->plugin_generation, d->plugin_generation,
		        d->plugin_error);
	}
	return 0;
}

int render_pools(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	table_init(&t, "DATAPLANE DATABASE USER NODE MODE CL_ACTIVE CL_WAITING SV_ACTIVE SV_IDLE "
	               "SV_USED SV_LOGIN MAX MAXWAIT PAUSED");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		for (size_t k = 0; d->report && k < d->report->n_pools; k++) {
			const Helios__PoolStats *p = d->report->pools[k];
			table_add(&t, "%s", d->dataplane_id);
			table_add(&t, "%s", p->database);
			table_add(&t, "%s", p->user);
			table_add(&t, "%s", p->node);
			table_add(&t, "%s", p->mode);
			table_add(&t, "%u", p->cl_active);
			table_add(&t, "%u", p->cl_waiting);
			table_add(&t, "%u", p->sv_active);
			table_add(&t, "%u", p->sv_idle);
			table_add(&t, "%u", p->sv_used);
			table_add(&t, "%u", p->sv_login);
			table_add(&t, "%u", p->max_size);
			table_add(&t, "%.2fs", p->maxwait_secs);
			table_add(&t, "%s", yes_no(p->paused));
		}
	}
	return table_print(&t, out);
}

int render_clients(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	table_init(&t,
	           "DATAPLANE ID USER DATABASE STATE ADDR PORT TLS APP SERVER_PID PINNED SPLICED");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		for (size_t k = 0; d->report && k < d->report->n_client_list; k++) {
			const Helios__ClientInfo *c = d->report->client_list[k];
			table_add(&t, "%s", d->dataplane_id);
			table_add(&t, "%" PRIu64, c->id);
			table_add(&t, "%s", c->user);
			table_add(&t, "%s", c->database);
			table_add(&t, "%s", c->state);
			table_add(&t, "%s", c->addr);
			table_add(&t, "%u", c->port);
			table_add(&t, "%s", yes_no(c->tls));
			table_add(&t, "%s", c->application_name);
			if (c->server_pid)
				table_add(&t, "%u", c->server_pid);
			else
				table_add(&t, "%s", "");
			table_add(&t, "%s", c->pinned);
			if (c->spliced) /* queries and transaction status from the BPF map */
				table_add(&t, "q=%" PRIu64 " tx=%s", c->spliced_queries,
				          c->spliced_tx);
			else
				table_add(&t, "%s", "");
		}
	}
	return table_print(&t, out);
}

int render_servers(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	table_init(&t, "DATAPLANE PID USER DATABASE NODE STATE ADDR PORT CLIENT TLS");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		for (size_t k = 0; d->report && k < d->report->n_server_list; k++) {
			const Helios__ServerInfo *s = d->report->server_list[k];
			table_add(&t, "%s", d->dataplane_id);
			table_add(&t, "%u", s->pid);
			table_add(&t, "%s", s->user);
			table_add(&t, "%s", s->database);
			table_add(&t, "%s", s->node);
			table_add(&t, "%s", s->state);
			table_add(&t, "%s", s->addr);
			table_add(&t, "%u", s->port);
			if (s->client_id)
				table_add(&t, "%" PRIu64, s->client_id);
			else
				table_add(&t, "%s", "");
			table_add(&t, "%s", yes_no(s->tls));
		}
	}
	return table_print(&t, out);
}

int render_nodes(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	table_init(&t, "NAME HOST PORT ROLE HEALTHY LAG_MS DRAINING BREAKER ERROR");
	for (size_t i = 0; i < r->n_nodes; i++) {
		const Helios__NodeStatus *n = r->nodes[i];
		table_add(&t, "%s", n->name);
		table_add(&t, "%s", n->host);
		table_add(&t, "%u", n->port);
		table_add(&t, "%s", n->role);
		table_add(&t, "%s", yes_no(n->healthy));
		if (n->lag_ms >= 0) /* -1: unknown */
			table_add(&t, "%" PRId64, n->lag_ms);
		else
			table_add(&t, "%s", "");
		table_add(&t, "%s", yes_no(n->draining));
		table_add(&t, "%s", n->breaker && n->breaker[0] ? n->breaker : "");
		table_add(&t, "%s", n->error);
	}
	return table_print(&t, out);
}

static double avg_ms(double total_secs, uint64_t count)
{
	return count ? total_secs * 1000.0 / (double)count : 0.0;
}

int render_stats(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	struct table t;

	table_init(&t, "DATAPLANE DATABASE USER XACTS QUERIES RECEIVED SENT AVG_XACT_MS "
	               "AVG_QUERY_MS AVG_WAIT_MS");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		for (size_t k = 0; d->report && k < d->report->n_pools; k++) {
			const Helios__PoolStats *p = d->report->pools[k];
			/* Every wait for a server is one sample of wait_hist; a
			 * report without the histogram has about one wait per
			 * transaction. */
			uint64_t waits = p->wait_hist ? p->wait_hist->count : p->xact_count;
			table_add(&t, "%s", d->dataplane_id);
			table_add(&t, "%s", p->database);
			table_add(&t, "%s", p->user);
			table_add(&t, "%" PRIu64, p->xact_count);
			table_add(&t, "%" PRIu64, p->query_count);
			table_add(&t, "%" PRIu64, p->bytes_received);
			table_add(&t, "%" PRIu64, p->bytes_sent);
			table_add(&t, "%.2f", avg_ms(p->xact_time_secs, p->xact_count));
			table_add(&t, "%.2f", avg_ms(p->query_time_secs, p->query_count));
			table_add(&t, "%.2f", avg_ms(p->wait_time_secs, waits));
		}
	}
	return table_print(&t, out);
}

static int config_values(FILE *out, const Helios__CtlResponse *r)
{
	struct table t;
	bool any_overridden = false;

	table_init(&t, "KEY VALUE");
	for (size_t i = 0; i < r->n_config; i++) {
		const Helios__ConfigItem *c = r->config[i];
		table_add(&t, "%s", c->key);
		table_add(&t, "%s%s", c->value, c->overridden ? " *" : "");
		any_overridden |= c->overridden;
	}
	if (table_print(&t, out) < 0)
		return -1;
	if (any_overridden) {
		fprintf(out, "\n* set with helioctl config set");
		if (r->overrides_path && *r->overrides_path)
			fprintf(out, ", kept in %s", r->overrides_path);
		fputc('\n', out);
	}
	return 0;
}

int render_config(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	const char *sub = nargs ? args[0] : "";

	if (!strcmp(sub, "show"))
		return config_values(out, r);
	if (!strcmp(sub, "get")) {
		/* Just the value, for $(helioctl config get KEY). */
		if (r->n_config == 1) {
			fprintf(out, "%s\n", r->config[0]->value);
			return 0;
		}
		return config_values(out, r);
	}
	if (!strcmp(sub, "diff")) {
		struct table t;
		table_init(&t, "KEY FILE LIVE");
		for (size_t i = 0; i < r->n_config; i++) {
			const Helios__ConfigItem *c = r->config[i];
			table_add(&t, "%s", c->key);
			table_add(&t, "%s", c->file_value);
			table_add(&t, "%s", c->value);
		}
		return table_print(&t, out);
	}
	return render_message(out, r, args, nargs); /* set, reset */
}

int render_message(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	/* Otherwise the message is a refusal or a warning: on stderr. */
	if (r->status == 0 && r->message && *r->message)
		fprintf(out, "%s\n", r->message);
	return 0;
}

/* --by: total time (default), calls, p99, mean. */
static int by_key(char **args, size_t nargs)
{
	if (!nargs || !strcmp(args[0], "time"))
		return 0;
	return !strcmp(args[0], "calls") ? 1 : !strcmp(args[0], "p99") ? 2 : 3;
}

static double order_value(const Helios__QueryStat *q, int key)
{
	switch (key) {
	case 1:
		return (double)q->calls;
	case 2:
		return q->p99_secs;
	case 3:
		return q->calls ? q->total_secs / (double)q->calls : 0;
	default:
		return q->total_secs;
	}
}

struct top_row {
	const char *dp;
	const Helios__QueryStat *q;
	double v;
};

static int top_cmp(const void *a, const void *b)
{
	double x = ((const struct top_row *)a)->v, y = ((const struct top_row *)b)->v;
	return x < y ? 1 : x > y ? -1 : 0;
}

int render_top(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	int key = by_key(args, nargs);
	size_t n = 0;
	for (size_t i = 0; i < r->n_dataplanes; i++)
		if (r->dataplanes[i]->report)
			n += r->dataplanes[i]->report->n_queries;
	struct top_row *rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__StatsReport *rep = r->dataplanes[i]->report;
		for (size_t j = 0; rep && j < rep->n_queries; j++) {
			rows[k].dp = r->dataplanes[i]->dataplane_id;
			rows[k].q = rep->queries[j];
			rows[k].v = order_value(rep->queries[j], key);
			k++;
		}
	}
	qsort(rows, k, sizeof(*rows), top_cmp);
	struct table t;
	table_init(&t,
	           "DATAPLANE FINGERPRINT CALLS ERRORS ROWS TOTAL_MS MEAN_MS P50_MS P95_MS P99_MS "
	           "MAX_MS HITS NODE QUERY");
	for (size_t i = 0; i < k; i++) {
		const Helios__QueryStat *q = rows[i].q;
		table_add(&t, "%s", rows[i].dp);
		table_add(&t, "%016" PRIx64, q->fingerprint);
		table_add(&t, "%" PRIu64, q->calls);
		table_add(&t, "%" PRIu64, q->errors);
		table_add(&t, "%" PRIu64, q->rows);
		table_add(&t, "%.2f", q->total_secs * 1000.0);
		table_add(&t, "%.3f", q->calls ? q->total_secs * 1000.0 / (double)q->calls : 0.0);
		table_add(&t, "%.3f", q->p50_secs * 1000.0);
		table_add(&t, "%.3f", q->p95_secs * 1000.0);
		table_add(&t, "%.3f", q->p99_secs * 1000.0);
		table_add(&t, "%.3f", q->max_secs * 1000.0);
		table_add(&t, "%" PRIu64, q->cache_hits);
		table_add(&t, "%s", q->node);
		/* one line per row: the text's own newlines would break the table */
		char text[121];
		snprintf(text, sizeof(text), "%s", q->query);
		for (char *c = text; *c; c++)
			if (*c == '\n' || *c == '\r' || *c == '\t')
				*c = ' ';
		table_add(&t, "%s", text);
	}
	free(rows);
	return table_print(&t, out);
}

int render_slowlog(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	(void)args;
	(void)nargs;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__StatsReport *rep = r->dataplanes[i]->report;
		for (size_t j = 0; rep && j < rep->n_slow_lines; j++)
			fprintf(out, "%s\n", rep->slow_lines[j]);
	}
	return 0;
}

int render_cache(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	bool flush = nargs >= 1 && !strcmp(args[0], "flush");
	struct table t;
	table_init(&t,
	           flush ? "DATAPLANE FLUSHED ENTRIES BYTES"
	                 : "DATAPLANE ENABLED ENTRIES BYTES MAX_BYTES HITS MISSES HIT_RATE STORES "
	                   "EVICTIONS INVALIDATED EXPIRED TOO_LARGE STALE_FILLS WAITS "
	                   "UNCACHEABLE");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__StatsReport *rep = r->dataplanes[i]->report;
		const Helios__CacheStats *c = rep ? rep->cache : NULL;
		table_add(&t, "%s", r->dataplanes[i]->dataplane_id);
		if (flush) {
			table_add(&t, "%" PRIu64, rep ? rep->cache_flushed : 0);
			table_add(&t, "%" PRIu64, c ? c->entries : 0);
			table_add(&t, "%" PRIu64, c ? c->bytes : 0);
			continue;
		}
		if (!c) {
			table_add(&t, "no");
			for (int k = 0; k < 14; k++)
				table_add(&t, "-");
			continue;
		}
		uint64_t looked = c->hits + c->misses;
		table_add(&t, "%s", c->enabled ? "yes" : "no");
		table_add(&t, "%" PRIu64, c->entries);
		table_add(&t, "%" PRIu64, c->bytes);
		table_add(&t, "%" PRIu64, c->max_bytes);
		table_add(&t, "%" PRIu64, c->hits);
		table_add(&t, "%" PRIu64, c->misses);
		table_add(&t, "%.1f%%", looked ? 100.0 * (double)c->hits / (double)looked : 0.0);
		table_add(&t, "%" PRIu64, c->stores);
		table_add(&t, "%" PRIu64, c->evictions);
		table_add(&t, "%" PRIu64, c->invalidated);
		table_add(&t, "%" PRIu64, c->expired);
		table_add(&t, "%" PRIu64, c->too_large);
		table_add(&t, "%" PRIu64, c->stale_fills);
		table_add(&t, "%" PRIu64, c->waits);
		table_add(&t, "%" PRIu64, c->uncacheable);
	}
	return table_print(&t, out);
}

int render_tenants(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	(void)args;
	(void)nargs;
	struct table t;
	table_init(&t, "DATAPLANE TENANT CLIENTS MAX_CONN SERVERS QUERIES THROTTLED REJECTED "
	               "REFUSED_LOGINS RATE_LIMIT");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__StatsReport *rep = r->dataplanes[i]->report;
		for (size_t j = 0; rep && j < rep->n_tenants; j++) {
			const Helios__TenantStats *s = rep->tenants[j];
			table_add(&t, "%s", r->dataplanes[i]->dataplane_id);
			table_add(&t, "%s", s->id);
			table_add(&t, "%" PRIu32, s->clients);
			table_add(&t, "%" PRIu32, s->max_connections);
			table_add(&t, "%" PRIu32, s->servers);
			table_add(&t, "%" PRIu64, s->queries);
			table_add(&t, "%" PRIu64, s->throttled);
			table_add(&t, "%" PRIu64, s->rejected);
			table_add(&t, "%" PRIu64, s->refused_logins);
			table_add(&t, "%" PRIu32, s->rate_limit);
		}
	}
	return table_print(&t, out);
}

int render_rewrite(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	(void)args;
	(void)nargs;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__StatsReport *rep = r->dataplanes[i]->report;
		if (!rep || !rep->rewrite_status || !rep->rewrite_status[0])
			continue;
		/* every data plane has the same rules: the first answer says it */
		fprintf(out, "%s\n%s\n", rep->rewrite_status, rep->rewrite_text);
		return 0;
	}
	fprintf(out, "no data plane answered\n");
	return 0;
}

int render_xdp(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	const Helios__XdpStatus *x = r->xdp;
	bool list = nargs == 2 && !strcmp(args[1], "list");

	if (nargs >= 2 && !list)
		return render_message(out, r, args, nargs); /* deny add, deny del */
	if (!x) {
		fprintf(out,
		        "no XDP status in the answer (a control plane older than helioctl?)\n");
		return 0;
	}
	if (list) {
		struct table t;
		table_init(&t, "CIDR SOURCE DROPS");
		for (size_t i = 0; i < x->n_deny; i++) {
			const Helios__XdpDenyEntry *e = x->deny[i];
			table_add(&t, "%s", e->cidr);
			table_add(&t, "%s",
			          e->config && e->runtime ? "config+runtime"
			          : e->config             ? "config"
			                                  : "runtime");
			table_add(&t, "%" PRIu64, e->drops);
		}
		return table_print(&t, out);
	}
	if (!x->enabled) {
		fprintf(out, "enabled: no (set xdp.enabled and xdp.interface)\n");
		return 0;
	}
	fprintf(out, "enabled: yes\nattached: %s\ninterface: %s\n", yes_no(x->attached),
	        or_dflt(x->interface, "-"));
	fprintf(out, "mode: %s\n", or_dflt(x->mode, "-"));
	if (x->prog_id)
		fprintf(out, "program id: %u\n", x->prog_id);
	fprintf(out, "ports: %s\n", or_dflt(x->ports, "every TCP port"));
	if (x->syn_rate_per_sec)
		fprintf(out, "syn rate: %u/s per source, burst %u\n", x->syn_rate_per_sec,
		        x->syn_burst);
	else
		fprintf(out, "syn rate: no limit\n");
	fprintf(out, "deny entries: %u\n", x->deny_entries);
	fprintf(out,
	        "packets passed: %" PRIu64 "\npackets denied: %" PRIu64
	        "\npackets over syn rate: %" PRIu64 "\nsyns: %" PRIu64 "\n",
	        x->passed, x->denied, x->syn_rate_dropped, x->syns);
	if (x->error && x->error[0])
		fprintf(out, "error: %s\n", x->error);
	return 0;
}

/* plugin list: the control plane's set, then where each data plane is;
 * plugin stats: counters per data plane and plugin; load, unload and
 * reload: the confirmation. */
int render_plugin(FILE *out, const Helios__CtlResponse *r, char **args, size_t nargs)
{
	const char *sub = nargs ? args[0] : "list";
	if (!strcmp(sub, "stats")) {
		struct table t;
		table_init(&t, "DATAPLANE PLUGIN CALLS AVG_US DENIALS REWRITES TRAPS TIMEOUTS "
		               "BUDGET FAILURES INSTANCES STATE");
		size_t rows = 0;
		for (size_t i = 0; i < r->n_dataplanes; i++) {
			const Helios__StatsReport *rep = r->dataplanes[i]->report;
			for (size_t j = 0; rep && j < rep->n_plugins; j++) {
				const Helios__PluginStats *s = rep->plugins[j];
				table_add(&t, "%s", r->dataplanes[i]->dataplane_id);
				table_add(&t, "%s", s->name);
				table_add(&t, "%" PRIu64, s->calls);
				table_add(&t, "%.1f",
				          s->calls ? s->time_secs * 1e6 / (double)s->calls : 0.0);
				table_add(&t, "%" PRIu64, s->denials);
				table_add(&t, "%" PRIu64, s->rewrites);
				table_add(&t, "%" PRIu64, s->traps);
				table_add(&t, "%" PRIu64, s->timeouts);
				table_add(&t, "%" PRIu64, s->budget_exhausted);
				table_add(&t, "%" PRIu64, s->failures);
				table_add(&t, "%" PRIu32, s->instances);
				table_add(&t, "%s", s->disabled ? "disabled" : "enabled");
				rows++;
			}
		}
		if (table_print(&t, out) < 0)
			return -1;
		if (!rows)
			fprintf(out, "no plugin runs on any data plane\n");
		return 0;
	}
	if (strcmp(sub, "list"))
		return render_message(out, r, args, nargs);
	struct table t;
	table_init(&t, "NAME SOURCE SHA256 BYTES ON_FAILURE FUEL TIMEOUT_MS MEMORY_MB "
	               "MAX_FAILURES CONFIG");
	for (size_t i = 0; i < r->n_plugins; i++) {
		const Helios__PluginModule *p = r->plugins[i];
		char sh[13] = "";
		for (size_t k = 0; k < 6 && k < p->sha256.len; k++)
			snprintf(sh + 2 * k, 3, "%02x", p->sha256.data[k]);
		table_add(&t, "%s", p->name);
		table_add(&t, "%s", p->source);
		table_add(&t, "%s", sh);
		table_add(&t, "%" PRIu64, p->size);
		table_add(&t, "%s", p->on_failure);
		table_add(&t, "%" PRIu64, p->fuel);
		table_add(&t, "%" PRIu32, p->timeout_ms);
		table_add(&t, "%" PRIu32, p->memory_mb);
		table_add(&t, "%" PRIu32, p->max_failures);
		table_add(&t, "%s", p->config_json);
	}
	if (table_print(&t, out) < 0)
		return -1;
	if (!r->n_plugins)
		fprintf(out, "no plugins\n");
	fprintf(out, "\nplugin generation %" PRIu64 "\n", r->plugin_generation);
	struct table d;
	table_init(&d, "DATAPLANE CONNECTED PLUGIN_GENERATION STATE");
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *s = r->dataplanes[i];
		table_add(&d, "%s", s->dataplane_id);
		table_add(&d, "%s", s->connected ? "yes" : "no");
		table_add(&d, "%" PRIu64, s->plugin_generation);
		if (s->plugin_generation == r->plugin_generation)
			table_add(&d, "current");
		else if (s->plugin_error && *s->plugin_error)
			table_add(&d, "refused: %s", s->plugin_error);
		else
			table_add(&d, "behind");
	}
	return table_print(&d, out);
}
