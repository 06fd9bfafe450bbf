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
    [SHOW_TOTALS] = "TOTALS",
    [SHOW_STATE] = "STATE",
    [SHOW_MEM] = "MEM",
    [SHOW_SOCKETS] = "SOCKETS",
    [SHOW_ACTIVE_SOCKETS] = "ACTIVE_SOCKETS",
    [SHOW_FDS] = "FDS",
    [SHOW_HELP] = "HELP",
};
#define N_SHOW (sizeof(show_names) / sizeof(show_names[0]))

static const char *const verb_names[] = {
    [CONSOLE_SHOW] = "SHOW",
    [CONSOLE_RELOAD] = "RELOAD",
    [CONSOLE_PAUSE] = "PAUSE",
    [CONSOLE_RESUME] = "RESUME",
    [CONSOLE_EMPTY] = "",
    [CONSOLE_KILL] = "KILL",
    [CONSOLE_KILL_CLIENT] = "KILL_CLIENT",
    [CONSOLE_RECONNECT] = "RECONNECT",
    [CONSOLE_DISABLE] = "DISABLE",
    [CONSOLE_ENABLE] = "ENABLE",
    [CONSOLE_WAIT_CLOSE] = "WAIT_CLOSE",
    [CONSOLE_SHUTDOWN] = "SHUTDOWN",
    [CONSOLE_SET] = "SET",
    [CONSOLE_SUSPEND] = "SUSPEND",
};
#define N_VERB (sizeof(verb_names) / sizeof(verb_names[0]))

const char *console_show_name(enum console_show what)
{
	return (size_t)what < N_SHOW ? show_names[what] : "?";
}

const char *console_verb_name(enum console_verb verb)
{
	return (size_t)verb < N_VERB ? verb_names[verb] : "?";
}

bool console_read_only(const struct console_cmd *cmd)
{
	return cmd->verb == CONSOLE_EMPTY || (cmd->verb == CONSOLE_SHOW && cmd->what != SHOW_FDS);
}

/* PgBouncer settings SET may change, and the HeliosProxy key each is. Only
 * names whose meaning is the same; timeouts PgBouncer gives in seconds
 * where the key here is in milliseconds are scaled. */
static const struct {
	const char *pgbouncer, *helios;
	int factor;
} set_map[] = {
    {"pool_mode", "pool_mode.mode", 1},
    {"default_pool_size", "pool_mode.max_pool_size", 1},
    {"min_pool_size", "pool_mode.min_idle", 1},
    {"reserve_pool_size", "pool_mode.reserve_pool_size", 1},
    {"reserve_pool_timeout", "pool_mode.reserve_pool_timeout_ms", 1000},
    {"max_db_connections", "pool_mode.max_db_connections", 1},
    {"max_user_connections", "pool_mode.max_user_connections", 1},
    {"query_timeout", "pool_mode.query_timeout_secs", 1},
    {"idle_transaction_timeout", "pool_mode.idle_transaction_timeout_secs", 1},
    {"client_idle_timeout", "client_idle_timeout_secs", 1},
    {"client_login_timeout", "client_login_timeout_secs", 1},
    {"admin_users", "admin_users", 1},
    {"stats_users", "stats_users", 1},
};

const char *console_set_key(const char *name, int *factor)
{
	*factor = 1;
	for (size_t i = 0; i < sizeof(set_map) / sizeof(set_map[0]); i++)
		if (strcasecmp(name, set_map[i].pgbouncer) == 0) {
			*factor = set_map[i].factor;
			return set_map[i].helios;
		}
	if (cfg_key_find(name))
		return name;
	return NULL;
}

/* The longest statement is SET key = value. */
#define MAX_TOKENS 4

enum tok_kind { TOK_WORD, TOK_IDENT, TOK_STRING, TOK_EQUALS };

struct token {
	char text[sizeof(((struct console_cmd *)0)->value)]; /* a SET value fits */
	enum tok_kind kind; /* TOK_IDENT: "quoted", TOK_STRING: 'quoted' */
	bool too_long;      /* text holds only the first 255 bytes */
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

/* Splits s into words, "quoted identifiers", 'string literals' and '=';
 * a ';' ends the statement and only whitespace may follow it (LEX_MULTI
 * otherwise). More than MAX_TOKENS tokens, an unterminated quote, an empty
 * identifier or any other character is LEX_BAD. */
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
		if (*s == '"' || *s == '\'') {
			char q = *s;
			t->kind = q == '"' ? TOK_IDENT : TOK_STRING;
			for (s++;; s++) {
				if (!*s)
					return LEX_BAD;
				if (*s == q) {
					if (s[1] != q)
						break;
					s++; /* doubled quote is one quote */
				}
				tok_add(t, &n, *s);
			}
			s++;
			/* PostgreSQL refuses a zero-length identifier too */
			if (q == '"' && n == 0 && !t->too_long)
				return LEX_BAD;
		} else if (*s == '=') {
			t->kind = TOK_EQUALS;
			tok_add(t, &n, *s++);
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
	return t->kind == TOK_WORD && !t->too_long && strcasecmp(t->text, kw) == 0;
}

/* A database name: a word or "identifier" of at most 63 bytes. */
static bool is_name(const struct token *t)
{
	return t->kind == TOK_WORD || t->kind == TOK_IDENT;
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

/* Verbs followed by a database: whether it may be left out (= all). */
static const struct {
	enum console_verb verb;
	bool optional;
} db_verbs[] = {
    {CONSOLE_PAUSE, true},     {CONSOLE_RESUME, true},     {CONSOLE_KILL, true},
    {CONSOLE_RECONNECT, true}, {CONSOLE_WAIT_CLOSE, true}, {CONSOLE_DISABLE, false},
    {CONSOLE_ENABLE, false},
};

/* KILL_CLIENT's id: decimal as SHOW CLIENTS shows it in "id" (or "c<id>",
 * its ptr). 0 is no client. */
static bool parse_client_id(const char *s, uint64_t *id)
{
	char *end;

	if (s[0] == 'c' || s[0] == 'C')
		s++;
	if (s[0] < '1' || s[0] > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*id = v;
	return true;
}

static int parse_db_verb(struct console_cmd *cmd, const struct token *tok, int ntok, bool optional,
                         char *err, size_t errlen)
{
	if (ntok > 2 || (ntok == 1 && !optional) || (ntok == 2 && !is_name(&tok[1])))
		return 1;
	if (ntok == 2) {
		if (tok[1].too_long || strlen(tok[1].text) >= sizeof(cmd->arg)) {
			if (err && errlen)
				snprintf(err, errlen, "database name too long (at most %zu bytes)",
				         sizeof(cmd->arg) - 1);
			return -1;
		}
		memcpy(cmd->arg, tok[1].text, strlen(tok[1].text) + 1); /* fits: checked */
	}
	return 0;
}

int console_parse(const char *sql, struct console_cmd *cmd, char *err, size_t errlen)
{
	struct token tok[MAX_TOKENS];
	int ntok, rc;

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
	if ((kw_is(&tok[0], "RELOAD") || kw_is(&tok[0], "SUSPEND")) && ntok == 1) {
		cmd->verb = kw_is(&tok[0], "RELOAD") ? CONSOLE_RELOAD : CONSOLE_SUSPEND;
		return 0;
	}
	for (size_t i = 0; i < sizeof(db_verbs) / sizeof(db_verbs[0]); i++) {
		if (!kw_is(&tok[0], verb_names[db_verbs[i].verb]))
			continue;
		rc = parse_db_verb(cmd, tok, ntok, db_verbs[i].optional, err, errlen);
		if (rc > 0)
			goto unknown;
		if (rc < 0)
			return -1;
		cmd->verb = db_verbs[i].verb;
		return 0;
	}
	if (kw_is(&tok[0], "KILL_CLIENT") && ntok == 2) {
		if (tok[1].kind != TOK_WORD || !parse_client_id(tok[1].text, &cmd->client_id)) {
			if (err && errlen)
				snprintf(
				    err, errlen,
				    "KILL_CLIENT wants a client id from SHOW CLIENTS (column id)");
			return -1;
		}
		cmd->verb = CONSOLE_KILL_CLIENT;
		return 0;
	}
	if (kw_is(&tok[0], "SHUTDOWN") && ntok <= 2) {
		cmd->verb = CONSOLE_SHUTDOWN;
		if (ntok == 1)
			cmd->shutdown = SHUTDOWN_NOW;
		else if (kw_is(&tok[1], "WAIT_FOR_SERVERS"))
			cmd->shutdown = SHUTDOWN_WAIT_FOR_SERVERS;
		else if (kw_is(&tok[1], "WAIT_FOR_CLIENTS"))
			cmd->shutdown = SHUTDOWN_WAIT_FOR_CLIENTS;
		else
			goto unknown;
		return 0;
	}
	if (kw_is(&tok[0], "SET") && ntok == 4 && tok[1].kind == TOK_WORD &&
	    tok[2].kind == TOK_EQUALS && tok[3].kind != TOK_EQUALS && tok[3].kind != TOK_IDENT) {
		if (tok[1].too_long || strlen(tok[1].text) >= sizeof(cmd->arg) || tok[3].too_long) {
			if (err && errlen)
				snprintf(err, errlen, "SET: key or value too long");
			return -1;
		}
		cmd->verb = CONSOLE_SET;
		memcpy(cmd->arg, tok[1].text, strlen(tok[1].text) + 1); /* fits: checked */
		memcpy(cmd->value, tok[3].text, sizeof(cmd->value));
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
	return same_db(a, b) && strcmp(str(a->user), str(b->user)) == 0;
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
    {"load_balance_hosts", OID_TEXT},
    {"tenant", OID_TEXT}, /* ours: PgBouncer has no tenants */
};

/* Adds name to the comma list in buf unless it is there already; a list
 * that does not fit ends in "..." (the column is informative). */
static void list_add(char *buf, size_t cap, const char *name)
{
	size_t n = strlen(name), len = strlen(buf);

	if (!n || (len >= 3 && strcmp(buf + len - 3, "...") == 0))
		return;
	for (const char *p = buf; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		if (l == n && memcmp(p, name, n) == 0)
			return;
		p += l + (end ? 1 : 0);
	}
	if (len + (len ? 1 : 0) + n + 4 > cap) {
		if (len + 4 <= cap)
			memcpy(buf + len, "...", 4);
		return;
	}
	snprintf(buf + len, cap - len, "%s%s", len ? "," : "", name);
}

/* PgBouncer has one pool per (database, user); ours are per node and
 * tenant as well. All pools of a (database, user) become one row, summed,
 * so pgbouncer_exporter never sees the same label pair twice (it fails the
 * whole scrape on a duplicate); "tenant" lists the tenants in the row. */
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
		char tenants[256] = "";
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
			list_add(tenants, sizeof(tenants), str(q->tenant));
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
		cell(&t, NULL); /* nodes are chosen by routing, not a host list */
		cell(&t, tenants);
		row_end(&t);
	}
	return table_end(&t);
}

/* ---- SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS ---- */

/* The figures of PgBouncer 1.25's SHOW STATS, in its column order. */
enum {
	F_XACT,
	F_QUERY,
	F_ASSIGN,
	F_RECV,
	F_SENT,
	F_XACT_T,
	F_QUERY_T,
	F_WAIT_T,
	F_CPARSE,
	F_SPARSE,
	F_BIND,
	F_LOGIN,
	NF
};

static const char *const total_names[NF] = {
    "total_xact_count",         "total_query_count", "total_server_assignment_count",
    "total_received",           "total_sent",        "total_xact_time",
    "total_query_time",         "total_wait_time",   "total_client_parse_count",
    "total_server_parse_count", "total_bind_count",  "total_client_login_count",
};
static const char *const avg_names[NF] = {
    "avg_xact_count",
    "avg_query_count",
    "avg_server_assignment_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
    "avg_client_login_count",
};
/* STATS_TOTALS and STATS_AVERAGES share their column names. */
static const char *const part_names[NF] = {
    "xact_count",         "query_count", "server_assignment_count",
    "bytes_received",     "bytes_sent",  "xact_time",
    "query_time",         "wait_time",   "client_parse_count",
    "server_parse_count", "bind_count",  "client_login_count",
};

struct figures {
	uint64_t v[NF];
};

/* Adds the totals of pools[first] and every later pool same() groups with
 * it (all pools when same is NULL) into tot; times in µs. */
static void sum_stats(const Helios__StatsReport *r, size_t first, same_fn same, struct figures *tot)
{
	const Helios__PoolStats *p = r->pools[first];
	double xact_t = 0, query_t = 0, wait_t = 0;

	memset(tot, 0, sizeof(*tot));
	for (size_t j = first; j < r->n_pools; j++) {
		const Helios__PoolStats *q = r->pools[j];
		if (same && !same(p, q))
			continue;
		tot->v[F_XACT] += q->xact_count;
		tot->v[F_QUERY] += q->query_count;
		tot->v[F_ASSIGN] += q->server_assignments;
		tot->v[F_CPARSE] += q->client_parses;
		tot->v[F_SPARSE] += q->server_parses;
		tot->v[F_BIND] += q->binds;
		tot->v[F_LOGIN] += q->client_logins;
		tot->v[F_RECV] += q->bytes_received;
		tot->v[F_SENT] += q->bytes_sent;
		/* summed in seconds, converted once: no per-pool rounding */
		xact_t += q->xact_time_secs;
		query_t += q->query_time_secs;
		wait_t += q->wait_time_secs;
	}
	tot->v[F_XACT_T] = usec(xact_t);
	tot->v[F_QUERY_T] = usec(query_t);
	tot->v[F_WAIT_T] = usec(wait_t);
	/* F_CPARSE, F_SPARSE, F_BIND: named statements in transaction
	 * pooling, where the proxy maps them onto shared server statements
	 * (PgBouncer counts them in its max_prepared_statements mode) */
}

/* The averages of totals tot.
 *
 * PgBouncer averages over the last stats_period; a report carries running
 * totals only, so the averages here are over the data plane's whole uptime
 * (0 in its first second, when the rate means nothing). As in PgBouncer:
 * counts, bytes and wait time are per second; xact_time and query_time are
 * the mean duration of one transaction / query. */
static void averages(const Helios__StatsReport *r, const struct figures *tot, struct figures *avg)
{
	double up = r->uptime_secs;

	memset(avg, 0, sizeof(*avg));
	if (up >= 1.0)
		for (int k = 0; k < NF; k++)
			if (k != F_XACT_T && k != F_QUERY_T)
				avg->v[k] = (uint64_t)((double)tot->v[k] / up);
	avg->v[F_XACT_T] = tot->v[F_XACT] ? tot->v[F_XACT_T] / tot->v[F_XACT] : 0;
	avg->v[F_QUERY_T] = tot->v[F_QUERY] ? tot->v[F_QUERY_T] / tot->v[F_QUERY] : 0;
}

/* The column list of a SHOW STATS* answer; what = SHOW_STATS also gets
 * total_requests, the name PgBouncer 1.7 and older gave total_query_count:
 * Debian's prometheus-pgbouncer-exporter (1.7) still reads it and fails
 * the scrape without it. */
static int stats_columns(enum console_show what, struct col *cols)
{
	int n = 0;

	cols[n++] = (struct col){"database", OID_TEXT};
	if (what != SHOW_STATS_AVERAGES)
		for (int k = 0; k < NF; k++)
			cols[n++] = (struct col){
			    what == SHOW_STATS ? total_names[k] : part_names[k], OID_NUMERIC};
	if (what != SHOW_STATS_TOTALS)
		for (int k = 0; k < NF; k++)
			cols[n++] = (struct col){what == SHOW_STATS ? avg_names[k] : part_names[k],
			                         OID_NUMERIC};
	if (what == SHOW_STATS)
		cols[n++] = (struct col){"total_requests", OID_NUMERIC};
	return n;
}

static int show_stats(enum console_show what, const Helios__StatsReport *r, struct sbuf *out)
{
	struct col cols[2 * NF + 2];
	struct table t;

	table_begin(&t, out, cols, stats_columns(what, cols));
	for (size_t i = 0; r && i < r->n_pools; i++) {
		struct figures tot, avg;
		if (!group_first(r, i, same_db))
			continue;
		sum_stats(r, i, same_db, &tot);
		averages(r, &tot, &avg);
		row_begin(&t);
		cell(&t, str(r->pools[i]->database));
		if (what != SHOW_STATS_AVERAGES)
			for (int k = 0; k < NF; k++)
				cell_u64(&t, tot.v[k]);
		if (what != SHOW_STATS_TOTALS)
			for (int k = 0; k < NF; k++)
				cell_u64(&t, avg.v[k]);
		if (what == SHOW_STATS)
			cell_u64(&t, tot.v[F_QUERY]);
		row_end(&t);
	}
	return table_end(&t);
}

/* SHOW TOTALS: SHOW STATS over every database, one (name, value) row per
 * figure as PgBouncer answers it. */
static int show_totals(const Helios__StatsReport *r, struct sbuf *out)
{
	static const struct col cols[] = {{"name", OID_TEXT}, {"value", OID_NUMERIC}};
	struct figures tot = {{0}}, avg = {{0}};
	struct table t;

	if (r && r->n_pools) {
		sum_stats(r, 0, NULL, &tot);
		averages(r, &tot, &avg);
	}
	TABLE_BEGIN(&t, out, cols);
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; k < NF; k++) {
			row_begin(&t);
			cell(&t, pass ? avg_names[k] : total_names[k]);
			cell_u64(&t, pass ? avg.v[k] : tot.v[k]);
			row_end(&t);
		}
	return table_end(&t);
}

/* ---- SHOW CLIENTS, SERVERS, SOCKETS, ACTIVE_SOCKETS ---- */

static const struct col socket_cols[] = {
    {"type", OID_TEXT},
    {"user", OID_TEXT},
    {"database", OID_TEXT},
    {"replication", OID_TEXT},
    {"state", OID_TEXT},
    {"addr", OID_TEXT},
    {"port", OID_INT4},
    {"local_addr", OID_TEXT},
    {"local_port", OID_INT4},
    {"connect_time", OID_TEXT},
    {"request_time", OID_TEXT},
    {"wait", OID_INT4},
    {"wait_us", OID_INT4},
    {"close_needed", OID_INT4},
    {"ptr", OID_TEXT},
    {"link", OID_TEXT},
    {"remote_pid", OID_INT4},
    {"tls", OID_TEXT},
    {"application_name", OID_TEXT},
    {"prepared_statements", OID_INT4},
    {"id", OID_INT8},
};

/* PgBouncer 1.25's words: "idle" is a logged-in client with nothing in
 * flight (1.24 and older said "active"), and a client held by PAUSE
 * queues for a server like any "waiting" one. */
static const char *client_state(const char *s)
{
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
                        const char *replication, const char *state, const char *addr, uint32_t port,
                        const char *laddr, uint32_t lport, double connect_time, double request_time)
{
	char ct[40], rt[40];

	cell(t, type);
	cell(t, str(user));
	cell(t, str(db));
	cell(t, replication && replication[0] ? replication : "none");
	cell(t, state);
	cell(t, str(addr));
	cell_i4(t, port);
	cell(t, str(laddr));
	cell_i4(t, lport);
	cell(t, fmt_time(connect_time, ct, sizeof(ct)));
	/* PgBouncer starts request_time at the connect time */
	cell(t, fmt_time(request_time > 0 ? request_time : connect_time, rt, sizeof(rt)));
}

static void client_row(struct table *t, const Helios__StatsReport *r, const Helios__ClientInfo *cl)
{
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
	row_begin(t);
	socket_head(t, "C", cl->user, cl->database, cl->replication, client_state(str(cl->state)),
	            cl->addr, cl->port, cl->local_addr, cl->local_port, cl->connect_time,
	            cl->request_time);
	cell_i4(t, wait_us / 1000000);
	cell_i4(t, wait_us % 1000000);
	cell_i4(t, 0); /* close_needed: unused for clients */
	cell(t, ptr);
	cell(t, link);
	cell_i4(t, 0); /* remote_pid: only known for Unix-socket peers in PgBouncer */
	cell(t, cl->tls ? "TLS" : "");
	cell(t, str(cl->application_name));
	cell_i4(t, cl->prepared_statements);
	cell_u64(t, cl->id);
	row_end(t);
}

static void server_row(struct table *t, const Helios__StatsReport *r, const Helios__ServerInfo *sv)
{
	const Helios__ClientInfo *cl = sv->client_id ? client_of(r, sv->client_id) : NULL;
	char ptr[96], link[32];

	server_ptr(sv, ptr, sizeof(ptr));
	if (sv->client_id)
		client_ptr(sv->client_id, link, sizeof(link));
	else
		link[0] = '\0';
	row_begin(t);
	socket_head(t, "S", sv->user, sv->database, cl ? cl->replication : NULL,
	            server_state(str(sv->state)), sv->addr, sv->port, sv->local_addr,
	            sv->local_port, sv->connect_time, sv->request_time);
	cell_i4(t, 0); /* wait, wait_us: unused for servers */
	cell_i4(t, 0);
	cell_i4(t, sv->close_needed ? 1 : 0); /* RECONNECT: closed when released */
	cell(t, ptr);
	cell(t, link);
	cell_i4(t, sv->pid);
	cell(t, sv->tls ? "TLS" : "");
	cell(t, cl ? str(cl->application_name) : "");
	cell_i4(t, sv->prepared_statements);
	cell_u64(t, sv->pid); /* id: servers have no other; pids can repeat across nodes */
	row_end(t);
}

static bool client_busy(const Helios__ClientInfo *cl)
{
	return strcmp(str(cl->state), "idle") != 0;
}

/* SOCKETS: clients then servers, in SHOW CLIENTS / SERVERS columns (the
 * buffer positions PgBouncer adds are its own internals). ACTIVE_SOCKETS:
 * the ones doing something (not idle). */
static int show_sockets(enum console_show what, const Helios__StatsReport *r, struct sbuf *out)
{
	bool clients = what != SHOW_SERVERS, servers = what != SHOW_CLIENTS;
	bool active_only = what == SHOW_ACTIVE_SOCKETS;
	struct table t;

	TABLE_BEGIN(&t, out, socket_cols);
	for (size_t i = 0; r && clients && i < r->n_client_list; i++)
		if (!active_only || client_busy(r->client_list[i]))
			client_row(&t, r, r->client_list[i]);
	for (size_t i = 0; r && servers && i < r->n_server_list; i++)
		if (!active_only || strcmp(str(r->server_list[i]->state), "idle") != 0)
			server_row(&t, r, r->server_list[i]);
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
    {"reserve_pool_size", OID_INT4},
    {"server_lifetime", OID_INT4},
    {"pool_mode", OID_TEXT},
    {"load_balance_hosts", OID_TEXT},
    {"max_connections", OID_INT4},
    {"current_connections", OID_INT4},
    {"max_client_connections", OID_INT4},
    {"current_client_connections", OID_INT4},
    {"paused", OID_INT4},
    {"disabled", OID_INT4},
    /* PgBouncer 1.22 and older called reserve_pool_size this; Debian's
     * prometheus-pgbouncer-exporter reads it by that name */
    {"reserve_pool", OID_INT4},
};

static bool name_paused(const Helios__StatsReport *r, const char *db)
{
	for (size_t i = 0; r && i < r->n_paused; i++)
		if (strcmp(str(r->paused[i]), "*") == 0 || strcmp(str(r->paused[i]), db) == 0)
			return true;
	for (size_t j = 0; r && j < r->n_pools; j++)
		if (strcmp(str(r->pools[j]->database), db) == 0 && r->pools[j]->paused)
			return true;
	return false;
}

static bool name_disabled(const Helios__StatsReport *r, const char *db)
{
	for (size_t i = 0; r && i < r->n_disabled; i++)
		if (strcmp(str(r->disabled[i]), db) == 0)
			return true;
	return false;
}

/* Server and client connections of the pools of database db. */
static void db_conns(const Helios__StatsReport *r, const char *db, uint64_t *servers,
                     uint64_t *clients)
{
	*servers = *clients = 0;
	for (size_t j = 0; r && j < r->n_pools; j++) {
		const Helios__PoolStats *q = r->pools[j];
		if (strcmp(str(q->database), db) != 0)
			continue;
		*servers += (uint64_t)q->sv_active + q->sv_idle + q->sv_used + q->sv_login;
		*clients += (uint64_t)q->cl_active + q->cl_waiting;
	}
}

static const struct cfg_node *first_node(const struct cfg *c, const struct cfg_database *d)
{
	if (!c)
		return NULL;
	if (d && d->n_nodes)
		return cfg_node_by_name(c, d->nodes[0]);
	return cfg_primary(c) ? cfg_primary(c) : (c->n_nodes ? &c->nodes[0] : NULL);
}

static void cell_int_or_null(struct table *t, const struct cfg *c, int v)
{
	if (c)
		cell_i4(t, v > 0 ? (uint64_t)v : 0);
	else
		cell(t, NULL);
}

/* One row: database entry d (NULL: a database served without one, with
 * the global settings) under name. */
static void database_row(struct table *t, const Helios__StatsReport *r, const struct cfg *c,
                         const char *name, const struct cfg_database *d)
{
	const struct cfg_node *node = first_node(c, d);
	uint64_t servers, clients;
	int reserve = c ? c->pool.reserve_pool_size : 0;

	if (d && d->reserve_pool >= 0)
		reserve = d->reserve_pool;
	db_conns(r, name, &servers, &clients);
	row_begin(t);
	cell(t, name);
	cell(t, node ? node->host : NULL);
	if (node)
		cell_i4(t, (uint64_t)node->port);
	else
		cell(t, NULL);
	cell(t, d && d->dbname[0] ? d->dbname : name);
	cell(t, d && d->user[0] ? d->user : NULL); /* NULL: clients log in as themselves */
	cell_int_or_null(t, c, d && d->pool_size ? d->pool_size : c ? c->pool.max_pool_size : 0);
	cell_int_or_null(t, c, d && d->min_pool_size ? d->min_pool_size : c ? c->pool.min_idle : 0);
	cell_int_or_null(t, c, reserve);
	cell_int_or_null(t, c, c ? c->pool.server_lifetime_secs : 0);
	/* PgBouncer: the database's own mode, NULL when it inherits */
	cell(t, d && d->pool_mode[0] ? d->pool_mode : NULL);
	cell(t, NULL); /* load_balance_hosts: nodes are chosen by routing */
	cell_int_or_null(t, c,
	                 d && d->max_db_connections ? d->max_db_connections
	                 : c                        ? c->pool.max_db_connections
	                                            : 0);
	cell_i4(t, servers);
	cell_i4(t, 0); /* max_client_connections: no per-database client cap, as its 0 */
	cell_i4(t, clients);
	cell_i4(t, name_paused(r, name) ? 1 : 0);
	cell_i4(t, name_disabled(r, name) ? 1 : 0);
	cell_int_or_null(t, c, reserve);
	row_end(t);
}

/* The [[databases]] entries (but the "*" fallback, as PgBouncer lists the
 * databases it made from it instead), then every other database that has
 * pools: served by passthrough or through "*". */
static int show_databases(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	struct table t;

	TABLE_BEGIN(&t, out, databases_cols);
	for (size_t i = 0; c && i < c->n_databases; i++)
		if (strcmp(c->databases[i].name, "*") != 0)
			database_row(&t, r, c, c->databases[i].name, &c->databases[i]);
	for (size_t i = 0; r && i < r->n_pools; i++) {
		const char *db = str(r->pools[i]->database);
		bool none;
		const struct cfg_database *d = c ? cfg_database_find(c, db, &none) : NULL;
		if (!group_first(r, i, same_db) || (d && strcmp(d->name, db) == 0))
			continue;
		database_row(&t, r, c, db, d);
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
	       strcmp(section, "databases") == 0 ||  /* so is its password */
	       strcmp(section, "users") == 0 || strcmp(section, "plugins") == 0;
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

/* The user names SHOW USERS lists: configured ones ([[auth.users]], then
 * [[users]] entries not among them), then users seen only in pools (from
 * users_file or auth_query). Calls fn for each once. */
static void each_user(const Helios__StatsReport *r, const struct cfg *c,
                      void (*fn)(const char *name, void *ud), void *ud)
{
	for (size_t i = 0; c && i < c->auth.n_users; i++)
		fn(c->auth.users[i].name, ud);
	for (size_t i = 0; c && i < c->n_pool_users; i++) {
		bool seen = false;
		for (size_t k = 0; k < c->auth.n_users && !seen; k++)
			seen = strcmp(c->auth.users[k].name, c->pool_users[i].name) == 0;
		if (!seen)
			fn(c->pool_users[i].name, ud);
	}
	for (size_t i = 0; r && i < r->n_pools; i++) {
		const char *u = str(r->pools[i]->user);
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(str(r->pools[j]->user), u) == 0;
		for (size_t k = 0; c && k < c->auth.n_users && !seen; k++)
			seen = strcmp(c->auth.users[k].name, u) == 0;
		for (size_t k = 0; c && k < c->n_pool_users && !seen; k++)
			seen = strcmp(c->pool_users[k].name, u) == 0;
		if (!seen)
			fn(u, ud);
	}
}

static void count_user(const char *name, void *ud)
{
	(void)name;
	(*(uint64_t *)ud)++;
}

static int show_lists(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	static const struct col cols[] = {{"list", OID_TEXT}, {"items", OID_INT4}};
	uint64_t dbs = 0, users = 0, pools = 0, servers = 0, logins = 0;
	struct table t;

	for (size_t i = 0; r && i < r->n_pools; i++) {
		const Helios__PoolStats *p = r->pools[i];
		dbs += group_first(r, i, same_db);
		pools += group_first(r, i, same_db_user);
		servers += (uint64_t)p->sv_active + p->sv_idle + p->sv_used + p->sv_login;
	}
	for (size_t i = 0; r && i < r->n_client_list; i++)
		logins += strcmp(str(r->client_list[i]->state), "login") == 0;
	each_user(r, c, count_user, &users);

	/* PgBouncer's rows in its order; free lists and DNS do not exist here. */
	const struct {
		const char *name;
		uint64_t items;
	} rows[] = {
	    {"databases", dbs},
	    {"users", users},
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

static const struct col users_cols[] = {
    {"name", OID_TEXT},
    {"pool_size", OID_INT4},
    {"reserve_pool_size", OID_INT4},
    {"pool_mode", OID_TEXT},
    {"max_user_connections", OID_INT4},
    {"current_connections", OID_INT4},
    {"max_user_client_connections", OID_INT4},
    {"current_client_connections", OID_INT4},
};

struct users_ctx {
	struct table *t;
	const Helios__StatsReport *r;
	const struct cfg *c;
};

static void user_row(const char *name, void *ud)
{
	struct users_ctx *x = ud;
	const struct cfg_user_pool *u = x->c ? cfg_pool_user_find(x->c, name) : NULL;
	uint64_t servers = 0, clients = 0;
	int cap = x->c ? x->c->pool.max_user_connections : 0;

	for (size_t j = 0; x->r && j < x->r->n_pools; j++) {
		const Helios__PoolStats *q = x->r->pools[j];
		if (strcmp(str(q->user), name) != 0)
			continue;
		servers += (uint64_t)q->sv_active + q->sv_idle + q->sv_used + q->sv_login;
		clients += (uint64_t)q->cl_active + q->cl_waiting;
	}
	if (u && u->max_user_connections > 0)
		cap = u->max_user_connections;
	row_begin(x->t);
	cell(x->t, name);
	cell(x->t, NULL); /* pool_size, reserve_pool_size: no per-user override here */
	cell(x->t, NULL);
	cell(x->t, u && u->pool_mode[0] ? u->pool_mode : NULL); /* NULL: inherited */
	cell_i4(x->t, cap > 0 ? (uint64_t)cap : 0);
	cell_i4(x->t, servers);
	cell_i4(x->t, 0); /* max_user_client_connections: no such cap, 0 as PgBouncer's "none" */
	cell_i4(x->t, clients);
	row_end(x->t);
}

static int show_users(const Helios__StatsReport *r, const struct cfg *c, struct sbuf *out)
{
	struct table t;
	struct users_ctx x = {&t, r, c};

	TABLE_BEGIN(&t, out, users_cols);
	each_user(r, c, user_row, &x);
	return table_end(&t);
}

/* PgBouncer's rows: whether the pooler runs, is paused (all databases) or
 * suspended. A PAUSE of some databases only shows in SHOW DATABASES. */
static int show_state(const Helios__StatsReport *r, struct sbuf *out)
{
	static const struct col cols[] = {{"key", OID_TEXT}, {"value", OID_TEXT}};
	bool paused = false;
	struct table t;

	for (size_t i = 0; r && i < r->n_paused; i++)
		paused = paused || strcmp(str(r->paused[i]), "*") == 0;
	TABLE_BEGIN(&t, out, cols);
	const char *rows[][2] = {
	    {"active", paused ? "no" : "yes"},
	    {"paused", paused ? "yes" : "no"},
	    {"suspended", "no"}, /* SUSPEND is refused: see --takeover */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		row_begin(&t);
		cell(&t, rows[i][0]);
		cell(&t, rows[i][1]);
		row_end(&t);
	}
	return table_end(&t);
}

/* PgBouncer lists its slab caches (name, size, used, free, memtotal). The
 * objects here come from malloc, not slabs: the rows are the objects with
 * their counts; sizes are not tracked (NULL), and nothing is kept free. */
static int show_mem(const Helios__StatsReport *r, struct sbuf *out)
{
	static const struct col cols[] = {{"name", OID_TEXT},
	                                  {"size", OID_INT4},
	                                  {"used", OID_INT4},
	                                  {"free", OID_INT4},
	                                  {"memtotal", OID_INT4}};
	uint64_t servers = 0, pools = r ? r->n_pools : 0;
	struct table t;

	for (size_t i = 0; r && i < r->n_pools; i++)
		servers += (uint64_t)r->pools[i]->sv_active + r->pools[i]->sv_idle +
		           r->pools[i]->sv_used + r->pools[i]->sv_login;
	const struct {
		const char *name;
		uint64_t used;
	} rows[] = {
	    {"client_cache", r ? r->clients : 0},
	    {"server_cache", servers},
	    {"pool_cache", pools},
	};
	TABLE_BEGIN(&t, out, cols);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		row_begin(&t);
		cell(&t, rows[i].name);
		cell(&t, NULL);
		cell_i4(&t, rows[i].used);
		cell_i4(&t, 0);
		cell(&t, NULL);
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
	    "SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION|LISTS|STATE|MEM",
	    "SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS",
	    "SHOW SOCKETS|ACTIVE_SOCKETS",
	    "SET key = arg",
	    "RELOAD",
	    "PAUSE [<db>]",
	    "RESUME [<db>]",
	    "DISABLE <db>",
	    "ENABLE <db>",
	    "RECONNECT [<db>]",
	    "KILL [<db>]",
	    "KILL_CLIENT <id>",
	    "WAIT_CLOSE [<db>]",
	    "SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]",
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
	case SHOW_SERVERS:
	case SHOW_SOCKETS:
	case SHOW_ACTIVE_SOCKETS:
		return show_sockets(cmd->what, r, out);
	case SHOW_STATS:
	case SHOW_STATS_TOTALS:
	case SHOW_STATS_AVERAGES:
		return show_stats(cmd->what, r, out);
	case SHOW_TOTALS:
		return show_totals(r, out);
	case SHOW_DATABASES:
		return show_databases(r, c, out);
	case SHOW_CONFIG:
		return show_config(c, out);
	case SHOW_VERSION:
		return show_version(out);
	case SHOW_LISTS:
		return show_lists(r, c, out);
	case SHOW_USERS:
		return show_users(r, c, out);
	case SHOW_STATE:
		return show_state(r, out);
	case SHOW_MEM:
		return show_mem(r, out);
	case SHOW_HELP:
		return show_help(out);
	case SHOW_FDS:
		return -1; /* not a result set: the caller answers why */
	}
	return -1;
}

void console_render_done(const struct console_cmd *cmd, struct sbuf *out)
{
	if (cmd->verb == CONSOLE_EMPTY) {
		size_t m = msg_begin(out, 'I');
		msg_end(out, m);
		return;
	}
	command_complete(out, console_verb_name(cmd->verb));
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
