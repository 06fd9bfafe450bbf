/*
 * The admin console: statement parsing and PostgreSQL-protocol answers.
 * See console.h. Nothing here does I/O or keeps state between calls.
 */
#include "dataplane/report/console.h"

#include "common/cpwire.h" /* HELIOS_VERSION */
#include "dataplane/pg/pgw.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- Parsing ---- */

static const char *const show_names[] = {
    [SHOW_POOLS] = "POOLS",
    [SHOW_CLIENTS] = "CLIENTS",
    [SHOW_SERVERS] = "SERVERS",
    [SHOW_STATS] = "STATS",
    [SHOW_STATS_TOTALS] = "STATS_TOTALS",
    [SHOW_STATS_AVERAGES] = "STATS_AVERAGES",
    [SHOW_DATABASES] = "DATABASES",
    [SHOW_CONFIG] = "CONFIG",
    [SHOW_VERSION] = "VERSION",
    [SHOW_LISTS] = "LISTS",
    [SHOW_USERS] = "USERS",
    [SHOW_HELP] = "HELP",
};
#define N_SHOW (sizeof(show_names) / sizeof(show_names[0]))

const char *console_show_name(enum console_show what)
{
	return (size_t)what < N_SHOW ? show_names[what] : "?";
}

/* A statement has at most a verb, a subject or database, and nothing else;
 * one more word than that is already an error. */
#define MAX_TOKENS 3

struct token {
	char text[sizeof(((struct console_cmd *)0)->arg)]; /* a database name fits */
	bool quoted;
	bool too_long; /* text holds only the first 63 bytes */
};

enum lex_result { LEX_OK, LEX_BAD, LEX_MULTI };

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Unquoted words: what PgBouncer accepts plus '-', '.', '$' and non-ASCII
 * bytes, so PAUSE my-db works without quotes. */
static bool is_word(char ch)
{
	unsigned char u = (unsigned char)ch;
	return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
	       u == '_' || u == '-' || u == '.' || u == '$' || u >= 0x80;
}

static void tok_add(struct token *t, size_t *n, char ch)
{
	if (*n + 1 >= sizeof(t->text)) {
		t->too_long = true;
		return;
	}
	t->text[(*n)++] = ch;
	t->text[*n] = '\0';
}

/* Splits s into words and "quoted identifiers"; a ';' ends the statement
 * and only whitespace may follow it (LEX_MULTI otherwise). More than
 * MAX_TOKENS words, an unterminated or empty quote, or any other character
 * is LEX_BAD. */
static enum lex_result lex(const char *s, struct token *tok, int *ntok)
{
	*ntok = 0;
	for (;;) {
		while (is_space(*s))
			s++;
		if (!*s)
			return LEX_OK;
		if (*s == ';') {
			for (s++; is_space(*s); s++)
				;
			return *s ? LEX_MULTI : LEX_OK;
		}
		if (*ntok == MAX_TOKENS)
			return LEX_BAD;
		struct token *t = &tok[(*ntok)++];
		size_t n = 0;
		memset(t, 0, sizeof(*t));
		if (*s == '"') {
			t->quoted = true;
			for (s++;; s++) {
				if (!*s)
					return LEX_BAD;
				if (*s == '"') {
					if (s[1] != '"')
						break;
					s++; /* "" is one quote */
				}
				tok_add(t, &n, *s);
			}
			s++;
			/* PostgreSQL refuses a zero-length identifier too */
			if (n == 0 && !t->too_long)
				return LEX_BAD;
		} else if (is_word(*s)) {
			for (; is_word(*s); s++)
				tok_add(t, &n, *s);
		} else {
			return LEX_BAD;
		}
	}
}

static bool kw_is(const struct token *t, const char *kw)
{
	return !t->quoted && !t->too_long && strcasecmp(t->text, kw) == 0;
}

/* Writes "<prefix><statement><suffix>" into err. The statement is trimmed,
 * control characters become spaces (the message is one line in a log) and
 * it is cut at 64 bytes on a UTF-8 character boundary so a pasted script
 * does not come back whole. */
static void set_err(char *err, size_t errlen, const char *prefix, const char *sql, bool drop_semi,
                    const char *suffix)
{
	char stmt[80];
	size_t len, cut, o = 0;

	if (!err || errlen == 0)
		return;
	while (is_space(*sql))
		sql++;
	len = strlen(sql);
	while (len && is_space(sql[len - 1]))
		len--;
	if (drop_semi && len && sql[len - 1] == ';') {
		len--;
		while (len && is_space(sql[len - 1]))
			len--;
	}
	cut = len > 64 ? 64 : len;
	while (cut < len && cut > 0 && ((unsigned char)sql[cut] & 0xC0) == 0x80)
		cut--;
	for (size_t i = 0; i < cut; i++) {
		unsigned char ch = (unsigned char)sql[i];
		stmt[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	stmt[o] = '\0';
	snprintf(err, errlen, "%s%s%s%s", prefix, stmt, cut < len ? "..." : "", suffix);
}

int console_parse(const char *sql, struct console_cmd *cmd, char *err, size_t errlen)
{
	struct token tok[MAX_TOKENS];
	int ntok;

	if (err && errlen)
		err[0] = '\0';
	memset(cmd, 0, sizeof(*cmd));
	if (!sql)
		sql = "";
	switch (lex(sql, tok, &ntok)) {
	case LEX_OK:
		break;
	case LEX_MULTI:
		set_err(err, errlen, "one command per query, got: ", sql, false, "");
		return -1;
	case LEX_BAD:
		goto unknown;
	}
	if (ntok == 0) {
		cmd->verb = CONSOLE_EMPTY;
		return 0;
	}
	if (kw_is(&tok[0], "SHOW")) {
		if (ntok != 2)
			goto unknown;
		for (size_t i = 0; i < N_SHOW; i++)
			if (kw_is(&tok[1], show_names[i])) {
				cmd->verb = CONSOLE_SHOW;
				cmd->what = (enum console_show)i;
				return 0;
			}
		goto unknown;
	}
	if (kw_is(&tok[0], "RELOAD") && ntok == 1) {
		cmd->verb = CONSOLE_RELOAD;
		return 0;
	}
	if ((kw_is(&tok[0], "PAUSE") || kw_is(&tok[0], "RESUME")) && ntok <= 2) {
		if (ntok == 2 && tok[1].too_long) {
			if (err && errlen)
				snprintf(err, errlen, "database name too long (at most %zu bytes)",
				         sizeof(cmd->arg) - 1);
			return -1;
		}
		cmd->verb = kw_is(&tok[0], "PAUSE") ? CONSOLE_PAUSE : CONSOLE_RESUME;
		if (ntok == 2)
			memcpy(cmd->arg, tok[1].text, sizeof(cmd->arg));
		return 0;
	}
unknown:
	set_err(err, errlen, "unknown command: ", sql, true, "; try SHOW HELP");
	return -1;
}

/* ---- Protocol framing into an sbuf ----
 * pgw's builders write into a fixed buffer sized in advance; a SHOW answer's
 * size is only known once written, so rows are framed straight in the sbuf
 * with the same layout. Out of memory is sticky in the sbuf (out->oom). */

static void put_u16(struct sbuf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	sbuf_append(b, x, sizeof(x));
}

static void put_u32(struct sbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	sbuf_append(b, x, sizeof(x));
}

static void put_cstr(struct sbuf *b, const char *s)
{
	sbuf_append(b, s, strlen(s) + 1);
}

static size_t msg_begin(struct sbuf *b, char type)
{
	size_t at = b->len;
	sbuf_putc(b, type);
	put_u32(b, 0);
	return at;
}

static void msg_end(struct sbuf *b, size_t at)
{
	if (b->oom)
		return;
	uint32_t len = (uint32_t)(b->len - at - 1);
	uint8_t *p = (uint8_t *)b->p + at + 1;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
}

static void command_complete(struct sbuf *b, const char *tag)
{
	size_t m = msg_begin(b, 'C');
	put_cstr(b, tag);
	msg_end(b, m);
}

/* Type OIDs (pg_type.oid), the ones PgBouncer's answers use. */
enum { OID_INT8 = 20, OID_INT4 = 23, OID_TEXT = 25, OID_NUMERIC = 1700 };

struct col {
	const char *name;
	uint32_t oid;
};

/* One result set being written: RowDescription, rows, CommandComplete. */
struct table {
	struct sbuf *out;
	int ncols;
	size_t row_at; /* start of the DataRow being written */
	int filled;    /* cells written in it */
};

#define TABLE_BEGIN(t, out, cols) table_begin(t, out, cols, (int)(sizeof(cols) / sizeof(cols[0])))

static void table_begin(struct table *t, struct sbuf *out, const struct col *cols, int ncols)
{
	t->out = out;
	t->ncols = ncols;
	t->filled = 0;
	size_t m = msg_begin(out, 'T');
	put_u16(out, (uint16_t)ncols);
	for (int i = 0; i < ncols; i++) {
		int16_t typlen = cols[i].oid == OID_INT4 ? 4 : cols[i].oid == OID_INT8 ? 8 : -1;
		put_cstr(out, cols[i].name);
		put_u32(out, 0); /* not a table column */
		put_u16(out, 0);
		put_u32(out, cols[i].oid);
		put_u16(out, (uint16_t)typlen);
		put_u32(out, UINT32_MAX); /* typmod -1 */
		put_u16(out, 0);          /* text format */
	}
	msg_end(out, m);
}

static void row_begin(struct table *t)
{
	t->row_at = msg_begin(t->out, 'D');
	put_u16(t->out, (uint16_t)t->ncols);
	t->filled = 0;
}

/* A text cell; NULL is SQL NULL. */
static void cell(struct table *t, const char *s)
{
	t->filled++;
	if (!s) {
		put_u32(t->out, UINT32_MAX);
		return;
	}
	size_t n = strlen(s);
	put_u32(t->out, (uint32_t)n);
	sbuf_append(t->out, s, n);
}

static void cell_u64(struct table *t, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%" PRIu64, v);
	cell(t, num);
}

/* int4 columns: PgBouncer's type for counts; clamp rather than wrap. */
static void cell_i4(struct table *t, uint64_t v)
{
	cell_u64(t, v > INT32_MAX ? (uint64_t)INT32_MAX : v);
}

static void row_end(struct table *t)
{
	assert(t->filled == t->ncols);
	msg_end(t->out, t->row_at);
}

static int table_end(struct table *t)
{
	command_complete(t->out, "SHOW");
	return t->out->oom ? -1 : 0;
}

/* ---- Values ---- */

static const char *str(const char *s)
{
	return s ? s : "";
}

/* Seconds to whole microseconds; negative or NaN is 0. */
static uint64_t usec(double secs)
{
	if (!(secs > 0))
		return 0;
	double us = secs * 1e6 + 0.5;
	return us >= 18446744073709549568.0 ? UINT64_MAX : (uint64_t)us;
}

/* PgBouncer's timestamp text, "2024-05-01 12:00:00 UTC"; NULL for 0 (unknown). */
static const char *fmt_time(double t, char *buf, size_t cap)
{
	struct tm tm;
	time_t s = (time_t)t;

	if (!(t > 0) || !gmtime_r(&s, &tm) || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		return NULL;
	return buf;
}

static const char *cfg_mode(const struct cfg *c)
{
	return c ? cfg_pool_mode_str(c->pool.mode) : NULL;
}

/* The report's lists are small (one pool per node, database and user), and
 * the console is off the data path, so rows are grouped by plain scans. */
typedef bool (*same_fn)(const Helios__PoolStats *a, const Helios__PoolStats *b);

static bool same_db(const Helios__PoolStats *a, const Helios__PoolStats *b)
{
	return strcmp(str(a->database), str(b->database)) == 0;
}

static bool same_db_user(const Helios__PoolStats *a, const Helios__PoolStats *b)
{
	return same_db(a, b) && strcmp(str(a->user), str(b->user)) == 0 &&
	       strcmp(str(a->tenant), str(b->tenant)) == 0;
}

/* True when pools[i] is the first of its group: rows keep report order. */
static bool group_first(const Helios__StatsReport *r, size_t i, same_fn same)
{
	for (size_t j = 0; j < i; j++)
		if (same(r->pools[j], r->pools[i]))
			return false;
	return true;
}

/* ---- SHOW POOLS ---- */

static const struct col pools_cols[] = {
    {"database", OID_TEXT},
    {"user", OID_TEXT},
    {"cl_active", OID_INT4},
    {"cl_waiting", OID_INT4},
    {"cl_active_cancel_req", OID_INT4},
    {"cl_waiting_cancel_req", OID_INT4},
    {"sv_active", OID_INT4},
    {"sv_active_cancel", OID_INT4},
    {"sv_being_canceled", OID_INT4},
    {"sv_idle", OID_INT4},
    {"sv_used", OID_INT4},
    {"sv_tested", OID_INT4},
    {"sv_login", OID_INT4},
    {"maxwait", OID_INT4},
    {"maxwait_us", OID_INT4},
    {"pool_mode", OID_TEXT},
    {"tenant", OID_TEXT}, /* ours: PgBouncer has no tenants */
};

/* PgBouncer has one pool per (database, user); ours are per node as well.
 * The per-node pools of a (database, user) become one row, summed, so
 * pgbouncer_exporter never sees the same label pair twice (a scrape error). */
static int show_pools(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	struct table t;

	TABLE_BEGIN(&t, out, pools_cols);
	for (size_t i = 0; r && i < r->n_pools; i++) {
		if (!group_first(r, i, same_db_user))
			continue;
		const Helios__PoolStats *p = r->pools[i];
		uint64_t cl_active = 0, cl_waiting = 0, sv_active = 0, sv_idle = 0, sv_used = 0,
		         sv_login = 0;
		double maxwait = 0;
		for (size_t j = i; j < r->n_pools; j++) {
			const Helios__PoolStats *q = r->pools[j];
			if (!same_db_user(p, q))
				continue;
			cl_active += q->cl_active;
			cl_waiting += q->cl_waiting;
			sv_active += q->sv_active;
			sv_idle += q->sv_idle;
			sv_used += q->sv_used;
			sv_login += q->sv_login;
			if (q->maxwait_secs > maxwait)
				maxwait = q->maxwait_secs;
		}
		uint64_t wait_us = usec(maxwait);
		row_begin(&t);
		cell(&t, str(p->database));
		cell(&t, str(p->user));
		cell_i4(&t, cl_active);
		cell_i4(&t, cl_waiting);
		cell_i4(&t, 0); /* cancel requests are not queued in pools here */
		cell_i4(&t, 0);
		cell_i4(&t, sv_active);
		cell_i4(&t, 0);
		cell_i4(&t, 0);
		cell_i4(&t, sv_idle);
		cell_i4(&t, sv_used);
		cell_i4(&t, 0); /* no server_check_query phase: never "tested" */
		cell_i4(&t, sv_login);
		cell_i4(&t, wait_us / 1000000);
		cell_i4(&t, wait_us % 1000000);
		cell(&t, p->mode && p->mode[0] ? p->mode : cfg_mode(c));
		cell(&t, str(p->tenant));
		row_end(&t);
	}
	return table_end(&t);
}

/* ---- SHOW STATS, STATS_TOTALS, STATS_AVERAGES ---- */

static const struct col stats_cols[] = {
    {"database", OID_TEXT},
    {"total_xact_count", OID_NUMERIC},
    {"total_query_count", OID_NUMERIC},
    {"total_received", OID_NUMERIC},
    {"total_sent", OID_NUMERIC},
    {"total_xact_time", OID_NUMERIC},
    {"total_query_time", OID_NUMERIC},
    {"total_wait_time", OID_NUMERIC},
    {"avg_xact_count", OID_NUMERIC},
    {"avg_query_count", OID_NUMERIC},
    {"avg_recv", OID_NUMERIC},
    {"avg_sent", OID_NUMERIC},
    {"avg_xact_time", OID_NUMERIC},
    {"avg_query_time", OID_NUMERIC},
    {"avg_wait_time", OID_NUMERIC},
};

/* STATS_TOTALS and STATS_AVERAGES share their column names. */
static const struct col stats_part_cols[] = {
    {"database", OID_TEXT},          {"xact_count", OID_NUMERIC}, {"query_count", OID_NUMERIC},
    {"bytes_received", OID_NUMERIC}, {"bytes_sent", OID_NUMERIC}, {"xact_time", OID_NUMERIC},
    {"query_time", OID_NUMERIC},     {"wait_time", OID_NUMERIC},
};

/* Seven figures in PgBouncer's column order: xact_count, query_count,
 * received, sent, xact_time, query_time, wait_time (times in µs). */
struct stat7 {
	uint64_t v[7];
};

/* Totals of one database over its users and nodes, and the averages.
 *
 * PgBouncer averages over the last stats_period; a report carries running
 * totals only, so the averages here are over the data plane's whole uptime
 * (0 in its first second, when the rate means nothing). As in PgBouncer:
 * counts, bytes and wait time are per second; xact_time and query_time are
 * the mean duration of one transaction / query. */
static void db_stats(const Helios__StatsReport *r, size_t first, struct stat7 *tot,
                     struct stat7 *avg)
{
	const Helios__PoolStats *p = r->pools[first];
	double xact_t = 0, query_t = 0, wait_t = 0;

	memset(tot, 0, sizeof(*tot));
	memset(avg, 0, sizeof(*avg));
	for (size_t j = first; j < r->n_pools; j++) {
		const Helios__PoolStats *q = r->pools[j];
		if (!same_db(p, q))
			continue;
		tot->v[0] += q->xact_count;
		tot->v[1] += q->query_count;
		tot->v[2] += q->bytes_received;
		tot->v[3] += q->bytes_sent;
		/* summed in seconds, converted once: no per-pool rounding */
		xact_t += q->xact_time_secs;
		query_t += q->query_time_secs;
		wait_t += q->wait_time_secs;
	}
	tot->v[4] = usec(xact_t);
	tot->v[5] = usec(query_t);
	tot->v[6] = usec(wait_t);

	double up = r->uptime_secs;
	if (up >= 1.0) {
		avg->v[0] = (uint64_t)((double)tot->v[0] / up);
		avg->v[1] = (uint64_t)((double)tot->v[1] / up);
		avg->v[2] = (uint64_t)((double)tot->v[2] / up);
		avg->v[3] = (uint64_t)((double)tot->v[3] / up);
		avg->v[6] = (uint64_t)((double)tot->v[6] / up);
	}
	avg->v[4] = tot->v[0] ? tot->v[4] / tot->v[0] : 0;
	avg->v[5] = tot->v[1] ? tot->v[5] / tot->v[1] : 0;
}

static int show_stats(enum console_show what, const Helios__StatsReport *r, struct sbuf *out)
{
	struct table t;

	if (what == SHOW_STATS)
		TABLE_BEGIN(&t, out, stats_cols);
	else
		TABLE_BEGIN(&t, out, stats_part_cols);
	for (size_t i = 0; r && i < r->n_pools; i++) {
		struct stat7 tot, avg;
		if (!group_first(r, i, same_db))
			continue;
		db_stats(r, i, &tot, &avg);
		row_begin(&t);
		cell(&t, str(r->pools[i]->database));
		if (what != SHOW_STATS_AVERAGES)
			for (int k = 0; k < 7; k++)
				cell_u64(&t, tot.v[k]);
		if (what != SHOW_STATS_TOTALS)
			for (int k = 0; k < 7; k++)
				cell_u64(&t, avg.v[k]);
		row_end(&t);
	}
	return table_end(&t);
}

/* ---- SHOW CLIENTS, SHOW SERVERS ---- */

static const struct col socket_cols[] = {
    {"type", OID_TEXT},         {"user", OID_TEXT},       {"database", OID_TEXT},
    {"state", OID_TEXT},        {"addr", OID_TEXT},       {"port", OID_INT4},
    {"local_addr", OID_TEXT},   {"local_port", OID_INT4}, {"connect_time", OID_TEXT},
    {"request_time", OID_TEXT}, {"wait", OID_INT4},       {"wait_us", OID_INT4},
    {"close_needed", OID_INT4}, {"ptr", OID_TEXT},        {"link", OID_TEXT},
    {"remote_pid", OID_INT4},   {"tls", OID_TEXT},        {"application_name", OID_TEXT},
};

/* PgBouncer's words: a logged-in client with nothing in flight is "active"
 * there (it has no idle state), and a client held by PAUSE queues for a
 * server like any "waiting" one. */
static const char *client_state(const char *s)
{
	if (strcmp(s, "idle") == 0)
		return "active";
	if (strcmp(s, "paused") == 0)
		return "waiting";
	return s;
}

/* PgBouncer lists a server still logging in as "new". */
static const char *server_state(const char *s)
{
	return strcmp(s, "login") == 0 ? "new" : s;
}

/* ptr / link: PgBouncer shows object addresses; the stable ids here are the
 * client id and the server's backend pid with its node (pids repeat across
 * nodes). */
static void client_ptr(uint64_t id, char *buf, size_t cap)
{
	snprintf(buf, cap, "c%" PRIu64, id);
}

static void server_ptr(const Helios__ServerInfo *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "s%" PRIu32 "@%s", s->pid, str(s->node));
}

static const Helios__ServerInfo *server_of(const Helios__StatsReport *r, uint64_t client_id)
{
	for (size_t i = 0; i < r->n_server_list; i++)
		if (r->server_list[i]->client_id == client_id)
			return r->server_list[i];
	return NULL;
}

static const Helios__ClientInfo *client_of(const Helios__StatsReport *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_client_list; i++)
		if (r->client_list[i]->id == id)
			return r->client_list[i];
	return NULL;
}

/* The columns every socket row shares from type to request_time. */
static void socket_head(struct table *t, const char *type, const char *user, const char *db,
                        const char *state, const char *addr, uint32_t port, const char *laddr,
                        uint32_t lport, double connect_time, double request_time)
{
	char ct[40], rt[40];

	cell(t, type);
	cell(t, str(user));
	cell(t, str(db));
	cell(t, state);
	cell(t, str(addr));
	cell_i4(t, port);
	cell(t, str(laddr));
	cell_i4(t, lport);
	cell(t, fmt_time(connect_time, ct, sizeof(ct)));
	/* PgBouncer starts request_time at the connect time */
	cell(t, fmt_time(request_time > 0 ? request_time : connect_time, rt, sizeof(rt)));
}

static int show_clients(const Helios__StatsReport *r, struct sbuf *out)
{
	struct table t;

	TABLE_BEGIN(&t, out, socket_cols);
	for (size_t i = 0; r && i < r->n_client_list; i++) {
		const Helios__ClientInfo *cl = r->client_list[i];
		const Helios__ServerInfo *sv = cl->server_pid ? server_of(r, cl->id) : NULL;
		char ptr[32], link[96];
		uint64_t wait_us = usec(cl->wait_secs);

		client_ptr(cl->id, ptr, sizeof(ptr));
		if (sv)
			server_ptr(sv, link, sizeof(link));
		else if (cl->server_pid)
			snprintf(link, sizeof(link), "s%" PRIu32, cl->server_pid);
		else
			link[0] = '\0';
		row_begin(&t);
		socket_head(&t, "C", cl->user, cl->database, client_state(str(cl->state)), cl->addr,
		            cl->port, cl->local_addr, cl->local_port, cl->connect_time,
		            cl->request_time);
		cell_i4(&t, wait_us / 1000000);
		cell_i4(&t, wait_us % 1000000);
		cell_i4(&t, 0); /* close_needed: unused for clients */
		cell(&t, ptr);
		cell(&t, link);
		cell_i4(&t, 0); /* remote_pid: only known for Unix-socket peers in PgBouncer */
		cell(&t, cl->tls ? "TLS" : "");
		cell(&t, str(cl->application_name));
		row_end(&t);
	}
	return table_end(&t);
}

static int show_servers(const Helios__StatsReport *r, struct sbuf *out)
{
	struct table t;

	TABLE_BEGIN(&t, out, socket_cols);
	for (size_t i = 0; r && i < r->n_server_list; i++) {
		const Helios__ServerInfo *sv = r->server_list[i];
		const Helios__ClientInfo *cl = sv->client_id ? client_of(r, sv->client_id) : NULL;
		char ptr[96], link[32];

		server_ptr(sv, ptr, sizeof(ptr));
		if (sv->client_id)
			client_ptr(sv->client_id, link, sizeof(link));
		else
			link[0] = '\0';
		row_begin(&t);
		socket_head(&t, "S", sv->user, sv->database, server_state(str(sv->state)), sv->addr,
		            sv->port, sv->local_addr, sv->local_port, sv->connect_time,
		            sv->request_time);
		cell_i4(&t, 0); /* wait, wait_us: unused for servers */
		cell_i4(&t, 0);
		cell_i4(&t, 0); /* close_needed: a reload moves servers out when idle */
		cell(&t, ptr);
		cell(&t, link);
		cell_i4(&t, sv->pid);
		cell(&t, sv->tls ? "TLS" : "");
		cell(&t, cl ? str(cl->application_name) : "");
		row_end(&t);
	}
	return table_end(&t);
}

/* ---- SHOW DATABASES ---- */

static const struct col databases_cols[] = {
    {"name", OID_TEXT},
    {"host", OID_TEXT},
    {"port", OID_INT4},
    {"database", OID_TEXT},
    {"force_user", OID_TEXT},
    {"pool_size", OID_INT4},
    {"min_pool_size", OID_INT4},
    {"reserve_pool", OID_INT4},
    {"pool_mode", OID_TEXT},
    {"max_connections", OID_INT4},
    {"current_connections", OID_INT4},
    {"paused", OID_INT4},
    {"disabled", OID_INT4},
};

static bool db_paused(const Helios__StatsReport *r, size_t first)
{
	const char *db = str(r->pools[first]->database);

	for (size_t i = 0; i < r->n_paused; i++)
		if (strcmp(str(r->paused[i]), "*") == 0 || strcmp(str(r->paused[i]), db) == 0)
			return true;
	for (size_t j = first; j < r->n_pools; j++)
		if (same_db(r->pools[first], r->pools[j]) && r->pools[j]->paused)
			return true;
	return false;
}

/* Databases are not declared here: any name a client asks for is served
 * from the nodes. So the rows are the databases that have pools, each shown
 * at the primary node (where writes go), with the global pool settings. */
static int show_databases(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	const struct cfg_node *node = NULL;
	struct table t;

	if (c)
		node = cfg_primary(c) ? cfg_primary(c) : (c->n_nodes ? &c->nodes[0] : NULL);
	TABLE_BEGIN(&t, out, databases_cols);
	for (size_t i = 0; r && i < r->n_pools; i++) {
		uint64_t conns = 0;
		if (!group_first(r, i, same_db))
			continue;
		for (size_t j = i; j < r->n_pools; j++) {
			const Helios__PoolStats *q = r->pools[j];
			if (same_db(r->pools[i], q))
				conns +=
				    (uint64_t)q->sv_active + q->sv_idle + q->sv_used + q->sv_login;
		}
		row_begin(&t);
		cell(&t, str(r->pools[i]->database));
		cell(&t, node ? node->host : NULL);
		if (node)
			cell_i4(&t, (uint64_t)node->port);
		else
			cell(&t, NULL);
		cell(&t, str(r->pools[i]->database));
		cell(&t, NULL); /* force_user: clients log in as themselves */
		if (c) {
			cell_i4(&t, (uint64_t)c->pool.max_pool_size);
			cell_i4(&t, (uint64_t)c->pool.min_idle);
		} else {
			cell(&t, NULL);
			cell(&t, NULL);
		}
		cell_i4(&t, 0); /* no reserve pool */
		cell(&t, cfg_mode(c));
		cell_i4(&t, 0); /* max_connections: 0 = unlimited, as PgBouncer */
		cell_i4(&t, conns);
		cell_i4(&t, db_paused(r, i) ? 1 : 0);
		cell_i4(&t, 0);
		row_end(&t);
	}
	return table_end(&t);
}

/* ---- SHOW CONFIG ---- */

static const struct col config_cols[] = {
    {"key", OID_TEXT},
    {"value", OID_TEXT},
    {"default", OID_TEXT},
    {"changeable", OID_TEXT},
};

/* Decodes one TOML basic string as cfg_format_value writes it ("...", with
 * \" \\ \n \t \uXXXX), in place; PgBouncer shows plain values. Anything
 * else (numbers, booleans) is left as it is. */
static void toml_unquote(char *s)
{
	size_t n = strlen(s), o = 0;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return;
	for (size_t i = 1; i < n - 1; i++) {
		char ch = s[i];
		if (ch == '\\' && i + 1 < n - 1) {
			char e = s[++i];
			if (e == 'n')
				ch = '\n';
			else if (e == 't')
				ch = '\t';
			else if (e == 'u' && i + 4 < n - 1) {
				unsigned v = 0;
				if (sscanf(s + i + 1, "%4x", &v) == 1 && v < 0x80) {
					ch = (char)v;
					i += 4;
				} else {
					ch = '?';
				}
			} else {
				ch = e;
			}
		}
		s[o++] = ch;
	}
	s[o] = '\0';
}

/* The value of k in c as text, malloc'd into *value: NULL when it cannot be
 * formatted (shown as SQL NULL). Secrets come masked from cfg_format_value;
 * they are masked again here so a secret key the formatter forgot still
 * never reaches a console. -1 only when out of memory. */
static int config_value(const struct cfg *c, const struct cfg_key *k, char **value)
{
	/* room for every byte escaped as \uXXXX, plus quotes */
	size_t cap = k->type == CFG_KEY_STRING ? k->size * 6 + 8 : 64;
	char *buf = NULL;
	int rc;

	*value = NULL;
	do {
		char *bigger = realloc(buf, cap);
		if (!bigger) {
			free(buf);
			return -1;
		}
		buf = bigger;
		rc = cfg_format_value(c, k, buf, cap);
		cap *= 2; /* only an array of many elements needs more */
	} while (rc == -ENOSPC && cap <= (1u << 20));
	if (rc != 0) {
		free(buf);
		return 0;
	}
	toml_unquote(buf);
	if ((k->flags & CFG_KEY_SECRET) && buf[0])
		strcpy(buf, "********"); /* buf holds at least 64 bytes */
	*value = buf;
	return 0;
}

static bool is_array_section(const char *section)
{
	return strcmp(section, "nodes") == 0 || strcmp(section, "auth.users") == 0 ||
	       strcmp(section, "auth.rules") == 0 || /* its options value is masked, not '[' */
	       strcmp(section, "databases") == 0;    /* so is its password */
}

static int show_config(const struct cfg *c, struct sbuf *out)
{
	struct table t;
	size_t n = 0;
	const struct cfg_key *keys = cfg_key_table(&n);

	TABLE_BEGIN(&t, out, config_cols);
	for (size_t i = 0; c && i < n; i++) {
		const struct cfg_key *k = &keys[i];
		char name[CFG_NAME_MAX * 2];
		char *value;

		/* One row per key: [[nodes]] and [[auth.users]] hold lists, and a
		 * value that comes out as a TOML array (only arrays start with
		 * '[') is a list table added since. */
		if (is_array_section(k->section))
			continue;
		if (config_value(c, k, &value) != 0) {
			out->oom = true;
			break;
		}
		if (value && value[0] == '[') {
			free(value);
			continue;
		}
		cfg_key_name(k, name, sizeof(name)); /* as helioctl names it */
		row_begin(&t);
		cell(&t, name);
		cell(&t, value);
		cell(&t, k->def);
		cell(&t, (k->flags & CFG_KEY_RESTART) ? "no" : "yes");
		row_end(&t);
		free(value);
	}
	return table_end(&t);
}

/* ---- SHOW VERSION, LISTS, USERS, HELP ---- */

static int show_version(struct sbuf *out)
{
	static const struct col cols[] = {{"version", OID_TEXT}};
	struct table t;

	TABLE_BEGIN(&t, out, cols);
	row_begin(&t);
	cell(&t, "HeliosProxy " HELIOS_VERSION);
	row_end(&t);
	return table_end(&t);
}

static int show_lists(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	static const struct col cols[] = {{"list", OID_TEXT}, {"items", OID_INT4}};
	uint64_t dbs = 0, pools = 0, servers = 0, logins = 0;
	struct table t;

	for (size_t i = 0; r && i < r->n_pools; i++) {
		const Helios__PoolStats *p = r->pools[i];
		dbs += group_first(r, i, same_db);
		pools += group_first(r, i, same_db_user);
		servers += (uint64_t)p->sv_active + p->sv_idle + p->sv_used + p->sv_login;
	}
	for (size_t i = 0; r && i < r->n_client_list; i++)
		logins += strcmp(str(r->client_list[i]->state), "login") == 0;

	/* PgBouncer's rows in its order; free lists and DNS do not exist here. */
	const struct {
		const char *name;
		uint64_t items;
	} rows[] = {
	    {"databases", dbs},
	    {"users", c ? c->auth.n_users : 0},
	    {"pools", pools},
	    {"free_clients", 0},
	    {"used_clients", r ? r->clients : 0},
	    {"login_clients", logins},
	    {"free_servers", 0},
	    {"used_servers", servers},
	    {"dns_names", 0},
	    {"dns_zones", 0},
	    {"dns_queries", 0},
	    {"dns_pending", 0},
	};

	TABLE_BEGIN(&t, out, cols);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		row_begin(&t);
		cell(&t, rows[i].name);
		cell_i4(&t, rows[i].items);
		row_end(&t);
	}
	return table_end(&t);
}

static int show_users(const struct cfg *c, struct sbuf *out)
{
	static const struct col cols[] = {{"name", OID_TEXT}, {"pool_mode", OID_TEXT}};
	struct table t;

	TABLE_BEGIN(&t, out, cols);
	for (size_t i = 0; c && i < c->auth.n_users; i++) {
		row_begin(&t);
		cell(&t, c->auth.users[i].name);
		cell(&t, NULL); /* no per-user pool mode: NULL, as PgBouncer for "inherit" */
		row_end(&t);
	}
	return table_end(&t);
}

/* A result set rather than PgBouncer's NOTICE, so any client (not only
 * psql) shows it. */
static int show_help(struct sbuf *out)
{
	static const struct col cols[] = {{"command", OID_TEXT}};
	static const char *const lines[] = {
	    "SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|LISTS",
	    "SHOW STATS|STATS_TOTALS|STATS_AVERAGES",
	    "RELOAD",
	    "PAUSE [<db>]",
	    "RESUME [<db>]",
	};
	struct table t;

	TABLE_BEGIN(&t, out, cols);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		row_begin(&t);
		cell(&t, lines[i]);
		row_end(&t);
	}
	return table_end(&t);
}

int console_render_show(const struct console_cmd *cmd, const Helios__StatsReport *r,
                        const struct cfg *c, struct sbuf *out)
{
	if (!cmd || cmd->verb != CONSOLE_SHOW)
		return -1;
	switch (cmd->what) {
	case SHOW_POOLS:
		return show_pools(r, c, out);
	case SHOW_CLIENTS:
		return show_clients(r, out);
	case SHOW_SERVERS:
		return show_servers(r, out);
	case SHOW_STATS:
	case SHOW_STATS_TOTALS:
	case SHOW_STATS_AVERAGES:
		return show_stats(cmd->what, r, out);
	case SHOW_DATABASES:
		return show_databases(r, c, out);
	case SHOW_CONFIG:
		return show_config(c, out);
	case SHOW_VERSION:
		return show_version(out);
	case SHOW_LISTS:
		return show_lists(r, c, out);
	case SHOW_USERS:
		return show_users(c, out);
	case SHOW_HELP:
		return show_help(out);
	}
	return -1;
}

void console_render_done(const struct console_cmd *cmd, struct sbuf *out)
{
	switch (cmd->verb) {
	case CONSOLE_EMPTY: {
		size_t m = msg_begin(out, 'I');
		msg_end(out, m);
		return;
	}
	case CONSOLE_RELOAD:
		command_complete(out, "RELOAD");
		return;
	case CONSOLE_PAUSE:
		command_complete(out, "PAUSE");
		return;
	case CONSOLE_RESUME:
		command_complete(out, "RESUME");
		return;
	case CONSOLE_SHOW:
		command_complete(out, "SHOW");
		return;
	}
}

static bool valid_sqlstate(const char *s)
{
	if (!s || strlen(s) != 5)
		return false;
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

void console_render_error(const char *sqlstate, const char *msg, struct sbuf *out)
{
	struct pgw_out o;

	if (!valid_sqlstate(sqlstate))
		sqlstate = "XX000";
	if (!msg)
		msg = "";
	/* type, length, S and V "ERROR", C sqlstate, M msg, terminator */
	size_t need = 5 + 2 * (1 + 6) + (1 + 6) + (1 + strlen(msg) + 1) + 1;
	uint8_t *buf = malloc(need);
	if (!buf) {
		out->oom = true;
		return;
	}
	pgw_out_init(&o, buf, need);
	pgw_error(&o, "ERROR", sqlstate, msg, NULL);
	if (o.overflow)
		out->oom = true; /* cannot happen: need counts every byte */
	else
		sbuf_append(out, buf, o.len);
	free(buf);
}
