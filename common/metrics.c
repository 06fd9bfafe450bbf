/*
 * Prometheus text and /status JSON from StatsReports.
 *
 * The exposition is written family by family (every sample of a family,
 * for all data planes and pools, before the next family starts), since the
 * format forbids interleaving. A family's HELP and TYPE lines are written
 * with its first sample, so a family with no samples leaves no trace.
 * Help texts are constants here and need no escaping; label values come
 * from the wire and do.
 */
#include "common/metrics.h"

#include "common/jbuild.h"
#include "common/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

/* ---- UTF-8 ---- */

/* ---- Prometheus text ---- */

struct value {
	bool is_int;
	uint64_t u;
	double d;
};

static struct value vu(uint64_t u)
{
	return (struct value){.is_int = true, .u = u};
}

static struct value vd(double d)
{
	return (struct value){.is_int = false, .d = d};
}

struct label {
	const char *name, *value;
};

/* The "C" locale is assumed (no program calls setlocale), so '.' is the
 * decimal point for both snprintf and strtod. */
static void fmt_double(char *buf, size_t cap, double d)
{
	if (isnan(d)) {
		snprintf(buf, cap, "NaN");
		return;
	}
	if (isinf(d)) {
		snprintf(buf, cap, "%s", d > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* The shortest of 15..17 significant digits that reads back exactly:
	 * "0.1" rather than "0.10000000000000001". */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, cap, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

static void put_label_value(struct sbuf *out, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s), i = 0, run, k;

	while (i < n) {
		for (run = 0; i + run < n && s[i + run] < 0x80 && s[i + run] != '\\' &&
		              s[i + run] != '"' && s[i + run] != '\n';
		     run++)
			;
		sbuf_append(out, s + i, run);
		i += run;
		if (i >= n)
			break;
		if (s[i] == '\\') {
			sbuf_puts(out, "\\\\");
			i++;
		} else if (s[i] == '"') {
			sbuf_puts(out, "\\\"");
			i++;
		} else if (s[i] == '\n') {
			sbuf_puts(out, "\\n");
			i++;
		} else if ((k = utf8_seq(s + i, n - i)) != 0) {
			sbuf_append(out, s + i, k);
			i += k;
		} else {
			sbuf_puts(out, UTF8_REPLACEMENT);
			i++;
		}
	}
}

struct family {
	struct sbuf *out;
	const char *name, *type, *help;
	bool headed;
};

static void family(struct family *f, struct sbuf *out, const char *name, const char *type,
                   const char *help)
{
	f->out = out;
	f->name = name;
	f->type = type;
	f->help = help;
	f->headed = false;
}

/* One sample line: name+suffix{labels} value; the le label of a histogram
 * bucket is passed as an extra label after the others. */
static void sample_le(struct family *f, const char *suffix, const struct label *l, size_t nl,
                      const char *le, struct value v)
{
	struct sbuf *out = f->out;
	char num[40];

	if (!f->headed) {
		sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
		            f->type);
		f->headed = true;
	}
	sbuf_puts(out, f->name);
	if (suffix)
		sbuf_puts(out, suffix);
	if (nl || le) {
		sbuf_putc(out, '{');
		for (size_t i = 0; i < nl; i++) {
			if (i)
				sbuf_putc(out, ',');
			sbuf_puts(out, l[i].name);
			sbuf_puts(out, "=\"");
			put_label_value(out, l[i].value);
			sbuf_putc(out, '"');
		}
		if (le)
			sbuf_printf(out, "%sle=\"%s\"", nl ? "," : "", le);
		sbuf_putc(out, '}');
	}
	if (v.is_int)
		snprintf(num, sizeof(num), "%" PRIu64, v.u);
	else
		fmt_double(num, sizeof(num), v.d);
	sbuf_printf(out, " %s\n", num);
}

static void sample(struct family *f, const struct label *l, size_t nl, struct value v)
{
	sample_le(f, NULL, l, nl, NULL, v);
}

/* A numeric field of a protobuf message, for the per-report and per-pool
 * tables below. */
enum field_kind { F_U32, F_U64, F_DBL, F_BOOL };

struct field {
	const char *name, *type, *help;
	size_t off;
	enum field_kind kind;
};

static struct value field_value(const void *msg, const struct field *fd)
{
	const char *p = (const char *)msg + fd->off;
	protobuf_c_boolean b;
	uint32_t u32;
	uint64_t u64;
	double d;

	switch (fd->kind) {
	case F_U32:
		memcpy(&u32, p, sizeof(u32));
		return vu(u32);
	case F_U64:
		memcpy(&u64, p, sizeof(u64));
		return vu(u64);
	case F_BOOL:
		memcpy(&b, p, sizeof(b));
		return vu(b ? 1 : 0);
	case F_DBL:
	default:
		memcpy(&d, p, sizeof(d));
		return vd(d);
	}
}

#define RF(name, type, field, kind, help)                                                          \
	{                                                                                          \
		name, type, help, offsetof(Helios__StatsReport, field), kind                       \
	}
static const struct field report_fields[] = {
    RF("helios_clients", "gauge", clients, F_U32, "Client connections open."),
    RF("helios_client_connections_max", "gauge", clients_max, F_U32,
       "Client connections allowed (max_client_conn)."),
    RF("helios_queries_total", "counter", queries_total, F_U64, "Queries run on servers."),
    RF("helios_transactions_total", "counter", xacts_total, F_U64, "Transactions run on servers."),
    RF("helios_dataplane_config_generation", "gauge", generation, F_U64,
       "Configuration generation the data plane runs (on helios-cp: the one it acknowledged)."),
    RF("helios_received_bytes_total", "counter", bytes_in, F_U64, "Bytes received from clients."),
    RF("helios_sent_bytes_total", "counter", bytes_out, F_U64, "Bytes sent to clients."),
    RF("helios_logins_total", "counter", logins_total, F_U64, "Client logins that succeeded."),
    RF("helios_login_failures_total", "counter", login_failures, F_U64,
       "Client logins refused or failed."),
    RF("helios_splice_sessions_active", "gauge", splice_active, F_U32,
       "Session-mode clients spliced to their server in the kernel (pool_mode.kernel_splice)."),
    RF("helios_splice_sessions_total", "counter", splice_total, F_U64,
       "Sessions spliced in the kernel since start."),
    RF("helios_splice_fallbacks_total", "counter", splice_fallbacks, F_U64,
       "Sessions that could have been spliced and were relayed in userspace (BPF missing or "
       "failed, bytes pending at the splice point)."),
    RF("helios_splice_servers_reused_total", "counter", splice_reused, F_U64,
       "Server connections taken back from a splice, reset and pooled."),
};

/* The time counters are *_time_seconds_total, not *_seconds_total: a
 * counter helios_pool_wait_seconds_total would be family
 * helios_pool_wait_seconds in OpenMetrics (and in prometheus_client's
 * parser), the name of the wait histogram. */
#define PF(name, type, field, kind, help)                                                          \
	{                                                                                          \
		name, type, help, offsetof(Helios__PoolStats, field), kind                         \
	}
static const struct field pool_fields[] = {
    PF("helios_pool_clients_active", "gauge", cl_active, F_U32,
       "Clients linked to a server or ready to run."),
    PF("helios_pool_clients_waiting", "gauge", cl_waiting, F_U32,
       "Clients waiting for a server connection."),
    PF("helios_pool_servers_active", "gauge", sv_active, F_U32,
       "Server connections linked to a client."),
    PF("helios_pool_servers_idle", "gauge", sv_idle, F_U32,
       "Server connections idle and ready for a client."),
    PF("helios_pool_servers_used", "gauge", sv_used, F_U32,
       "Server connections idle but not yet checked for reuse."),
    PF("helios_pool_servers_login", "gauge", sv_login, F_U32, "Server connections logging in."),
    PF("helios_pool_max_size", "gauge", max_size, F_U32,
       "Most server connections the pool may open."),
    PF("helios_pool_max_wait_seconds", "gauge", maxwait_secs, F_DBL,
       "Longest current wait of a client for a server."),
    PF("helios_pool_paused", "gauge", paused, F_BOOL, "1 while the pool's database is paused."),
    PF("helios_pool_queries_total", "counter", query_count, F_U64, "Queries run by the pool."),
    PF("helios_pool_transactions_total", "counter", xact_count, F_U64,
       "Transactions run by the pool."),
    PF("helios_pool_received_bytes_total", "counter", bytes_received, F_U64,
       "Bytes received from the pool's clients."),
    PF("helios_pool_sent_bytes_total", "counter", bytes_sent, F_U64,
       "Bytes sent to the pool's clients."),
    PF("helios_pool_query_time_seconds_total", "counter", query_time_secs, F_DBL,
       "Time spent in queries."),
    PF("helios_pool_transaction_time_seconds_total", "counter", xact_time_secs, F_DBL,
       "Time spent in transactions."),
    PF("helios_pool_wait_time_seconds_total", "counter", wait_time_secs, F_DBL,
       "Time clients spent waiting for a server connection."),
    PF("helios_pool_wait_timeouts_total", "counter", wait_timeouts, F_U64,
       "Clients that gave up waiting for a server connection (query_wait_timeout)."),
};

static const char *dp_id(const Helios__StatsReport *r)
{
	return r->dataplane_id ? r->dataplane_id : "";
}

#define POOL_LABELS 6
/* Returns how many: the tenant label only on a tenant's pools. */
static size_t pool_labels(struct label *l, const Helios__StatsReport *r, const Helios__PoolStats *p)
{
	l[0] = (struct label){"dataplane", dp_id(r)};
	l[1] = (struct label){"database", p->database};
	l[2] = (struct label){"user", p->user};
	l[3] = (struct label){"node", p->node};
	l[4] = (struct label){"mode", p->mode};
	l[5] = (struct label){"tenant", p->tenant ? p->tenant : ""};
	return p->tenant && p->tenant[0] ? 6 : 5;
}

static void render_process(struct sbuf *out, const struct metrics_info *info)
{
	struct label l[2];
	struct family f;

	family(&f, out, "helios_up", "gauge", "1 while the process answers.");
	sample(&f, NULL, 0, vu(1));
	family(&f, out, "helios_info", "gauge", "Version and role of the process; always 1.");
	l[0] = (struct label){"version", info->version};
	l[1] = (struct label){"role", info->role};
	sample(&f, l, 2, vu(1));
	family(&f, out, "helios_uptime_seconds", "gauge", "Time since the process started.");
	sample(&f, NULL, 0, vd(info->uptime_secs));
	family(&f, out, "helios_config_generation", "gauge",
	       "Generation of the live configuration.");
	sample(&f, NULL, 0, vu(info->generation));
	family(&f, out, "helios_config_loaded", "gauge", "1 once a configuration is live.");
	sample(&f, NULL, 0, vu(info->has_config ? 1 : 0));
	if (info->dataplanes_connected >= 0) {
		family(&f, out, "helios_dataplanes_connected", "gauge",
		       "Data planes linked to the control plane.");
		sample(&f, NULL, 0, vu((uint64_t)info->dataplanes_connected));
	}
	if (info->dataplanes_known >= 0) {
		family(&f, out, "helios_dataplanes_known", "gauge",
		       "Data planes the control plane has heard from.");
		sample(&f, NULL, 0, vu((uint64_t)info->dataplanes_known));
	}
	if (info->runs_cp) {
		family(&f, out, "helios_control_refused_total", "counter",
		       "Requests the control plane refused: no or a wrong control_token, or not a "
		       "control message.");
		sample(&f, NULL, 0, vu(info->control_refused));
	}
}

int metrics_proc_read(struct metrics_proc *p)
{
	char buf[1024], *s;
	unsigned long long utime = 0, stime = 0, start = 0, vsize = 0, btime = 0;
	long long rss = 0;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	struct dirent *de;
	FILE *fp;
	DIR *d;
	size_t len;
	int n;

	memset(p, 0, sizeof(*p));
	if (tck <= 0 || page <= 0)
		return -EINVAL;
	if (!(fp = fopen("/proc/self/stat", "re")))
		return -errno;
	len = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[len] = '\0';
	/* comm, field 2, is in parentheses and may itself hold ") ": the
	 * fields that follow start after the last ')'. */
	if (!(s = strrchr(buf, ')')))
		return -EINVAL;
	/* fields 3..24: state ... utime(14) stime(15) ... starttime(22)
	 * vsize(23) rss(24) */
	n = sscanf(s + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d"
	           " %*d %llu %llu %lld",
	           &utime, &stime, &start, &vsize, &rss);
	if (n != 5)
		return -EINVAL;
	if (!(fp = fopen("/proc/stat", "re")))
		return -errno;
	while (fgets(buf, sizeof(buf), fp))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	fclose(fp);
	if (!(d = opendir("/proc/self/fd")))
		return -errno;
	/* the directory's own descriptor is counted, as the client
	 * libraries do */
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			p->open_fds++;
	closedir(d);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	p->cpu_secs = (double)(utime + stime) / (double)tck;
	p->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
	p->vsize_bytes = vsize;
	p->start_time_secs = (double)btime + (double)start / (double)tck;
	p->valid = true;
	return 0;
}

static void render_proc(struct sbuf *out, const struct metrics_proc *p)
{
	struct family f;

	if (!p->valid)
		return;
	family(&f, out, "process_cpu_seconds_total", "counter",
	       "Total user and system CPU time spent in seconds.");
	sample(&f, NULL, 0, vd(p->cpu_secs));
	family(&f, out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	sample(&f, NULL, 0, vu(p->rss_bytes));
	family(&f, out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	sample(&f, NULL, 0, vu(p->vsize_bytes));
	family(&f, out, "process_open_fds", "gauge", "Number of open file descriptors.");
	sample(&f, NULL, 0, vu(p->open_fds));
	family(&f, out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
	sample(&f, NULL, 0, vu(p->max_fds));
	family(&f, out, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	sample(&f, NULL, 0, vd(p->start_time_secs));
}

static void render_link(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n,
                        const struct metrics_info *info)
{
	/* On a data plane the link state in info is live, its report's copy
	 * is from the last collection; a control plane knows each data
	 * plane's link only from its reports. */
	bool from_info = info->cp_connected >= 0;
	bool from_reports = !from_info && info->role && strcmp(info->role, "control-plane") == 0;
	struct family f;
	struct label l;

	if (!from_info && !from_reports)
		return;
	family(&f, out, "helios_control_plane_connected", "gauge",
	       "1 while the data plane is linked to the control plane.");
	for (size_t i = 0; i < n; i++) {
		l = (struct label){"dataplane", dp_id(reports[i])};
		sample(&f, &l, 1,
		       vu(from_info ? (info->cp_connected > 0) : (reports[i]->cp_connected != 0)));
	}
	family(&f, out, "helios_control_plane_reconnects_total", "counter",
	       "Times the data plane re-established its control-plane link.");
	for (size_t i = 0; i < n; i++) {
		l = (struct label){"dataplane", dp_id(reports[i])};
		sample(&f, &l, 1, vu(from_info ? info->cp_reconnects : reports[i]->cp_reconnects));
	}
	/* A data plane counts from the control plane's last reply, a control
	 * plane from the data plane's last heartbeat: the same link seen from
	 * either end, so one alert rule serves both scrapes. */
	family(&f, out, "helios_control_plane_last_contact_seconds", "gauge",
	       "Time since the last message on the control-plane link (on a data plane: the "
	       "control plane's last reply; on helios-cp: the data plane's last heartbeat).");
	for (size_t i = 0; i < n; i++) {
		double secs = from_info                   ? info->cp_last_contact_secs
		              : info->report_contact_secs ? info->report_contact_secs[i]
		                                          : -1;
		if (secs < 0)
			continue;
		l = (struct label){"dataplane", dp_id(reports[i])};
		sample(&f, &l, 1, vd(secs));
	}
}

#define CF(name, type, field, help)                                                                \
	{                                                                                          \
		name, type, help, offsetof(Helios__CacheStats, field), F_U64                       \
	}
static const struct field cache_fields[] = {
    CF("helios_cache_entries", "gauge", entries, "Result cache entries."),
    CF("helios_cache_bytes", "gauge", bytes, "Result cache bytes (entries plus overhead, exact)."),
    CF("helios_cache_max_bytes", "gauge", max_bytes, "Result cache limit (cache.max_memory_mb)."),
    CF("helios_cache_hits_total", "counter", hits, "Statements answered from the result cache."),
    CF("helios_cache_misses_total", "counter", misses, "Cacheable statements not in the cache."),
    CF("helios_cache_stores_total", "counter", stores, "Answers stored in the result cache."),
    CF("helios_cache_evictions_total", "counter", evictions, "Entries evicted for room (LRU)."),
    CF("helios_cache_invalidated_total", "counter", invalidated,
       "Entries found stale after a write through the proxy."),
    CF("helios_cache_expired_total", "counter", expired, "Entries found past their TTL."),
    CF("helios_cache_too_large_total", "counter", too_large,
       "Answers not stored: over cache.max_entry_kb."),
    CF("helios_cache_stale_fills_total", "counter", stale_fills,
       "Answers not stored: a write ran while the query did."),
    CF("helios_cache_waits_total", "counter", waits,
       "Misses that waited for an identical query (single-flight)."),
    CF("helios_cache_uncacheable_total", "counter", uncacheable,
       "Statements the cache looked at and refused (volatile, views, ...)."),
};

static void render_cache(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	struct label l[1];
	struct family f;
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any |= reports[i]->cache != NULL;
	if (!any)
		return;
	for (size_t k = 0; k < sizeof(cache_fields) / sizeof(cache_fields[0]); k++) {
		const struct field *fd = &cache_fields[k];
		family(&f, out, fd->name, fd->type, fd->help);
		for (size_t i = 0; i < n; i++) {
			if (!reports[i]->cache)
				continue;
			l[0] = (struct label){"dataplane", dp_id(reports[i])};
			sample(&f, l, 1, field_value(reports[i]->cache, fd));
		}
	}
}

static void render_rate(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fams[] = {
	    {"helios_rate_limit_allowed_total", "Queries a token bucket let through.",
	     offsetof(Helios__RateBucket, allowed)},
	    {"helios_rate_limit_throttled_total", "Queries that waited for a token.",
	     offsetof(Helios__RateBucket, throttled)},
	    {"helios_rate_limit_rejected_total",
	     "Queries refused by a rate limit (SQLSTATE 53400).",
	     offsetof(Helios__RateBucket, rejected)},
	};
	struct label l[2];
	struct family f;
	bool any = false;
	for (size_t i = 0; i < n; i++)
		any |= reports[i]->n_rate_buckets > 0;
	if (!any)
		return;
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		family(&f, out, fams[k].name, "counter", fams[k].help);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < reports[i]->n_rate_buckets; j++) {
				const Helios__RateBucket *b = reports[i]->rate_buckets[j];
				uint64_t v;
				memcpy(&v, (const char *)b + fams[k].off, sizeof(v));
				l[0] = (struct label){"dataplane", dp_id(reports[i])};
				l[1] = (struct label){"bucket", b->name};
				sample(&f, l, 2, vu(v));
			}
		}
	}
}

static void render_fields(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	struct label l[POOL_LABELS];
	struct family f;

	for (size_t k = 0; k < sizeof(report_fields) / sizeof(report_fields[0]); k++) {
		const struct field *fd = &report_fields[k];
		family(&f, out, fd->name, fd->type, fd->help);
		for (size_t i = 0; i < n; i++) {
			l[0] = (struct label){"dataplane", dp_id(reports[i])};
			sample(&f, l, 1, field_value(reports[i], fd));
		}
	}
	for (size_t k = 0; k < sizeof(pool_fields) / sizeof(pool_fields[0]); k++) {
		const struct field *fd = &pool_fields[k];
		family(&f, out, fd->name, fd->type, fd->help);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < reports[i]->n_pools; j++) {
				const Helios__PoolStats *p = reports[i]->pools[j];
				sample(&f, l, pool_labels(l, reports[i], p), field_value(p, fd));
			}
		}
	}
}

/* Usable: counts has the +Inf bucket too, and bounds are finite and
 * strictly ascending (a NaN or repeated bound would make le values clash). */
static bool histogram_ok(const Helios__Histogram *h)
{
	if (!h || h->n_counts != h->n_bounds + 1 || (h->n_bounds && !h->bounds) || !h->counts)
		return false;
	for (size_t i = 0; i < h->n_bounds; i++) {
		if (!isfinite(h->bounds[i]) || (i > 0 && !(h->bounds[i] > h->bounds[i - 1])))
			return false;
	}
	return true;
}

static void render_histogram(struct family *f, const struct label *l, size_t nl,
                             const Helios__Histogram *h)
{
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i <= h->n_bounds; i++) {
		/* Saturating: a wrapped sum would break the cumulative order. */
		cum = h->counts[i] > UINT64_MAX - cum ? UINT64_MAX : cum + h->counts[i];
		if (i < h->n_bounds)
			fmt_double(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		sample_le(f, "_bucket", l, nl, le, vu(cum));
	}
	sample_le(f, "_sum", l, nl, NULL, vd(h->sum));
	/* From the buckets rather than h->count, so that _count always equals
	 * the +Inf bucket as the format requires. */
	sample_le(f, "_count", l, nl, NULL, vu(cum));
}

static void render_histograms(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	struct label l[POOL_LABELS];
	struct family f;

	for (int which = 0; which < 2; which++) {
		if (which == 0)
			family(&f, out, "helios_pool_wait_seconds", "histogram",
			       "Time clients waited for a server connection.");
		else
			family(&f, out, "helios_pool_query_seconds", "histogram",
			       "Duration of queries.");
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < reports[i]->n_pools; j++) {
				const Helios__PoolStats *p = reports[i]->pools[j];
				const Helios__Histogram *h =
				    which == 0 ? p->wait_hist : p->query_hist;
				if (!histogram_ok(h))
					continue;
				render_histogram(&f, l, pool_labels(l, reports[i], p), h);
			}
		}
	}
}

static void render_pins(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	struct label l[2];
	struct family f;

	family(
	    &f, out, "helios_pins_total", "counter",
	    "Times a server connection was pinned to its client in transaction mode, by reason.");
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < reports[i]->n_pins; j++) {
			l[0] = (struct label){"dataplane", dp_id(reports[i])};
			l[1] = (struct label){"reason", reports[i]->pins[j]->reason};
			sample(&f, l, 2, vu(reports[i]->pins[j]->total));
		}
	}
}

/* Per statement fingerprint: only the top analytics.metrics_top by total
 * time that each data plane reports, so the label set stays bounded. */
static void render_queries(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	static const struct {
		const char *name, *type, *help;
	} fams[] = {
	    {"helios_query_calls_total", "counter",
	     "Statements run, per fingerprint (top by time)."},
	    {"helios_query_errors_total", "counter", "Statements that failed, per fingerprint."},
	    {"helios_query_time_seconds_total", "counter",
	     "Time from sending a statement to its ReadyForQuery, per fingerprint."},
	    {"helios_query_p99_seconds", "gauge", "99th percentile time, per fingerprint."},
	};
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		struct family f;
		struct label l[2];
		family(&f, out, fams[k].name, fams[k].type, fams[k].help);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; j < reports[i]->n_queries; j++) {
				const Helios__QueryStat *q = reports[i]->queries[j];
				char fp[17];
				snprintf(fp, sizeof(fp), "%016llx",
				         (unsigned long long)q->fingerprint);
				l[0] = (struct label){"dataplane", dp_id(reports[i])};
				l[1] = (struct label){"fingerprint", fp};
				struct value v = k == 0   ? vu(q->calls)
				                 : k == 1 ? vu(q->errors)
				                 : k == 2 ? vd(q->total_secs)
				                          : vd(q->p99_secs);
				sample(&f, l, 2, v);
			}
		}
	}
}

static void render_nodes(struct sbuf *out, const struct metrics_info *info)
{
	struct label l[2];
	struct family f;

	family(&f, out, "helios_node_up", "gauge", "1 while the node passes its health probe.");
	for (size_t i = 0; i < info->n_nodes; i++) {
		l[0] = (struct label){"node", info->nodes[i]->name};
		l[1] = (struct label){"role", info->nodes[i]->role};
		sample(&f, l, 2, vu(info->nodes[i]->healthy ? 1 : 0));
	}
	family(&f, out, "helios_node_draining", "gauge", "1 while the node is drained.");
	for (size_t i = 0; i < info->n_nodes; i++) {
		l[0] = (struct label){"node", info->nodes[i]->name};
		sample(&f, l, 1, vu(info->nodes[i]->draining ? 1 : 0));
	}
	family(&f, out, "helios_node_replication_lag_seconds", "gauge",
	       "Replication lag of the node, where known.");
	for (size_t i = 0; i < info->n_nodes; i++) {
		if (info->nodes[i]->lag_ms < 0)
			continue;
		l[0] = (struct label){"node", info->nodes[i]->name};
		sample(&f, l, 1, vd((double)info->nodes[i]->lag_ms / 1000.0));
	}
	/* so that an alert compares the lag with the limit routing uses */
	if (info->replica_lag_limit_secs >= 0) {
		family(
		    &f, out, "helios_replica_lag_limit_seconds", "gauge",
		    "Replicas further behind than this get no reads (routing.max_replica_lag_ms).");
		sample(&f, NULL, 0, vd(info->replica_lag_limit_secs));
	}
	/* one sample per state, 1 for the current one (the usual enum shape);
	 * only data planes have breakers */
	family(&f, out, "helios_node_breaker_state", "gauge",
	       "Circuit breaker of the node on this data plane: 1 for its current state.");
	static const char *const states[] = {"closed", "open", "half-open"};
	for (size_t i = 0; i < info->n_nodes; i++) {
		const char *cur = info->nodes[i]->breaker;
		if (!cur || !cur[0])
			continue;
		for (size_t k = 0; k < 3; k++) {
			l[0] = (struct label){"node", info->nodes[i]->name};
			l[1] = (struct label){"state", states[k]};
			sample(&f, l, 2, vu(!strcmp(cur, states[k]) ? 1 : 0));
		}
	}
}

/* Only where the filter is enabled: elsewhere the families would be noise. */
static void render_xdp(struct sbuf *out, const struct metrics_xdp *x)
{
	static const char *const verdicts[] = {"pass", "deny", "syn_rate"};
	const uint64_t packets[] = {x->passed, x->denied, x->syn_rate_dropped};
	struct label l;
	struct family f;

	if (!x->enabled)
		return;
	family(&f, out, "helios_xdp_attached", "gauge",
	       "1 while the XDP admission filter is attached to xdp.interface.");
	sample(&f, NULL, 0, vu(x->attached ? 1 : 0));
	family(&f, out, "helios_xdp_packets_total", "counter",
	       "Packets the XDP filter saw, by verdict: pass, deny (source in the deny list), "
	       "syn_rate (SYN over its source's rate).");
	for (size_t i = 0; i < 3; i++) {
		l = (struct label){"verdict", verdicts[i]};
		sample(&f, &l, 1, vu(packets[i]));
	}
	family(&f, out, "helios_xdp_syn_total", "counter",
	       "SYNs to the filtered ports the XDP filter saw, dropped ones included.");
	sample(&f, NULL, 0, vu(x->syns));
	family(&f, out, "helios_xdp_deny_entries", "gauge",
	       "Prefixes in the XDP deny list (xdp.deny and runtime entries).");
	sample(&f, NULL, 0, vu(x->deny_entries));
}

/* WASM plugins (docs/plugins.md) of every data plane, on helios-cp's
 * /metrics: the same families a data plane serves itself
 * (plugin/plugin_set.c), with the dataplane label. */
static void render_plugins(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n)
{
	static const struct field fams[] = {
	    {"helios_plugin_calls_total", "counter", "Hook calls of the plugin.",
	     offsetof(Helios__PluginStats, calls), F_U64},
	    {"helios_plugin_time_seconds_total", "counter", "Time spent in the plugin's hooks.",
	     offsetof(Helios__PluginStats, time_secs), F_DBL},
	    {"helios_plugin_denials_total", "counter",
	     "Connections and statements the plugin denied.",
	     offsetof(Helios__PluginStats, denials), F_U64},
	    {"helios_plugin_rewrites_total", "counter", "Statements the plugin rewrote.",
	     offsetof(Helios__PluginStats, rewrites), F_U64},
	    {"helios_plugin_traps_total", "counter",
	     "Hook calls that trapped (or whose instance could not be made).",
	     offsetof(Helios__PluginStats, traps), F_U64},
	    {"helios_plugin_timeouts_total", "counter",
	     "Hook calls cut at the plugin's wall-clock limit.",
	     offsetof(Helios__PluginStats, timeouts), F_U64},
	    {"helios_plugin_budget_exhausted_total", "counter",
	     "Hook calls cut at the plugin's instruction budget.",
	     offsetof(Helios__PluginStats, budget_exhausted), F_U64},
	    {"helios_plugin_disabled", "gauge",
	     "1 while the plugin is disabled after max_failures consecutive failures.",
	     offsetof(Helios__PluginStats, disabled), F_BOOL},
	    {"helios_plugin_instances", "gauge", "Workers that hold an instance of the plugin.",
	     offsetof(Helios__PluginStats, instances), F_U32},
	};
	struct label l[2];
	struct family f;
	family(&f, out, "helios_plugin_set_generation", "gauge",
	       "Generation of the plugin set the data plane runs.");
	for (size_t i = 0; i < n; i++) {
		l[0] = (struct label){"dataplane", dp_id(reports[i])};
		sample(&f, l, 1, vu(reports[i]->plugin_generation));
	}
	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		family(&f, out, fams[k].name, fams[k].type, fams[k].help);
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < reports[i]->n_plugins; j++) {
				l[0] = (struct label){"dataplane", dp_id(reports[i])};
				l[1] = (struct label){"plugin", reports[i]->plugins[j]->name};
				sample(&f, l, 2, field_value(reports[i]->plugins[j], &fams[k]));
			}
	}
}

void metrics_render(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n,
                    const struct metrics_info *info)
{
	render_process(out, info);
	render_proc(out, &info->proc);
	render_link(out, reports, n, info);
	render_fields(out, reports, n);
	render_histograms(out, reports, n);
	render_pins(out, reports, n);
	render_queries(out, reports, n);
	render_cache(out, reports, n);
	render_rate(out, reports, n);
	render_nodes(out, info);
	render_xdp(out, &info->xdp);
	if (info->role && !strcmp(info->role, "control-plane"))
		render_plugins(out, reports, n);
}

/* ---- /status JSON ---- */

static json_t *pool_json(struct jb *jb, const Helios__PoolStats *p)
{
	json_t *o = json_object();

	jb_set(jb, o, "database", jb_str(jb, p->database));
	jb_set(jb, o, "user", jb_str(jb, p->user));
	jb_set(jb, o, "node", jb_str(jb, p->node));
	jb_set(jb, o, "mode", jb_str(jb, p->mode));
	jb_set(jb, o, "cl_active", jb_uint(p->cl_active));
	jb_set(jb, o, "cl_waiting", jb_uint(p->cl_waiting));
	jb_set(jb, o, "sv_active", jb_uint(p->sv_active));
	jb_set(jb, o, "sv_idle", jb_uint(p->sv_idle));
	jb_set(jb, o, "sv_used", jb_uint(p->sv_used));
	jb_set(jb, o, "sv_login", jb_uint(p->sv_login));
	jb_set(jb, o, "max_size", jb_uint(p->max_size));
	jb_set(jb, o, "maxwait_secs", jb_real(p->maxwait_secs));
	jb_set(jb, o, "xact_count", jb_uint(p->xact_count));
	jb_set(jb, o, "query_count", jb_uint(p->query_count));
	jb_set(jb, o, "bytes_received", jb_uint(p->bytes_received));
	jb_set(jb, o, "bytes_sent", jb_uint(p->bytes_sent));
	jb_set(jb, o, "xact_time_secs", jb_real(p->xact_time_secs));
	jb_set(jb, o, "query_time_secs", jb_real(p->query_time_secs));
	jb_set(jb, o, "wait_time_secs", jb_real(p->wait_time_secs));
	jb_set(jb, o, "wait_timeouts", jb_uint(p->wait_timeouts));
	jb_set(jb, o, "paused", json_boolean(p->paused));
	return o;
}

static json_t *report_json(struct jb *jb, const Helios__StatsReport *r)
{
	json_t *o = json_object(), *a;

	jb_set(jb, o, "id", jb_str(jb, r->dataplane_id));
	jb_set(jb, o, "generation", jb_uint(r->generation));
	jb_set(jb, o, "uptime_secs", jb_real(r->uptime_secs));
	jb_set(jb, o, "clients", jb_uint(r->clients));
	jb_set(jb, o, "clients_max", jb_uint(r->clients_max));
	jb_set(jb, o, "cp_connected", json_boolean(r->cp_connected));
	jb_set(jb, o, "cp_reconnects", jb_uint(r->cp_reconnects));
	jb_set(jb, o, "io_backend", jb_str(jb, r->io_backend));
	jb_set(jb, o, "workers", jb_uint(r->workers));
	jb_set(jb, o, "collected_at", jb_real(r->collected_at));
	a = json_array();
	for (size_t i = 0; i < r->n_paused; i++)
		jb_append(jb, a, jb_str(jb, r->paused[i]));
	jb_set(jb, o, "paused", a);
	a = json_array();
	for (size_t i = 0; i < r->n_pools; i++)
		jb_append(jb, a, pool_json(jb, r->pools[i]));
	jb_set(jb, o, "pools", a);
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
	jb_set(jb, o, "draining", json_boolean(nd->draining));
	jb_set(jb, o, "error", jb_str(jb, nd->error));
	jb_set(jb, o, "checked_at", jb_real(nd->checked_at));
	return o;
}

static int dump_to_sbuf(const char *buffer, size_t size, void *data)
{
	struct sbuf *out = data;

	sbuf_append(out, buffer, size);
	return out->oom ? -1 : 0;
}

void metrics_status_json(struct sbuf *out, const Helios__StatsReport *const *reports, size_t n,
                         const struct metrics_info *info)
{
	struct jb jb = {.ok = true};
	json_t *root = json_object(), *a;
	bool link = info->cp_connected >= 0;

	jb_set(&jb, root, "role", jb_str(&jb, info->role));
	jb_set(&jb, root, "version", jb_str(&jb, info->version));
	jb_set(&jb, root, "uptime_secs", jb_real(info->uptime_secs));
	jb_set(&jb, root, "generation", jb_uint(info->generation));
	jb_set(&jb, root, "has_config", json_boolean(info->has_config));
	jb_set(&jb, root, "dataplanes_connected",
	       info->dataplanes_connected >= 0 ? json_integer(info->dataplanes_connected)
	                                       : json_null());
	jb_set(&jb, root, "dataplanes_known",
	       info->dataplanes_known >= 0 ? json_integer(info->dataplanes_known) : json_null());
	jb_set(&jb, root, "cp_connected",
	       link ? json_boolean(info->cp_connected > 0) : json_null());
	jb_set(&jb, root, "cp_reconnects", link ? jb_uint(info->cp_reconnects) : json_null());
	jb_set(&jb, root, "cp_last_contact_secs",
	       link && info->cp_last_contact_secs >= 0 ? jb_real(info->cp_last_contact_secs)
	                                               : json_null());
	a = json_array();
	for (size_t i = 0; i < n; i++)
		jb_append(&jb, a, report_json(&jb, reports[i]));
	jb_set(&jb, root, "dataplanes", a);
	a = json_array();
	for (size_t i = 0; i < info->n_nodes; i++)
		jb_append(&jb, a, node_json(&jb, info->nodes[i]));
	jb_set(&jb, root, "nodes", a);

	/* 15 significant digits: jansson has no shortest round-trip form, and
	 * 17 turns 0.1 into 0.10000000000000001 for the humans reading this. */
	if (!jb.ok || json_dump_callback(root, dump_to_sbuf, out,
	                                 JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0)
		out->oom = true;
	else
		sbuf_putc(out, '\n');
	json_decref(root);
}
