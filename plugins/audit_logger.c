/*
 * audit_logger: who ran what, as one JSON line per event through the
 * host's log (the seed's example plugin). Config (all optional):
 *   log_level  "debug" | "info" (default) | "warning" | "error": the level
 *              of the lines
 *   max_sql    bytes of SQL kept per line (default 1024, at most 8192)
 *   events     ["connect", "query", "complete", "error"] (default all)
 */
#include "helios_plugin.h"

HELIOS_PLUGIN_ABI_V1

#define SQL_MAX 8192

static int level = HP_INFO;
static int max_sql = 1024;
static int want[4] = {1, 1, 1, 1}; /* connect, query, complete, error */

static char cfg[4096], line[SQL_MAX + 2048];
static char user[128], db[128], app[128], addr[128], tenant[128], mode[16];
static char sql[SQL_MAX], fp[32], dur[32], rows[32], status[16], state[8], msg[512];

static int parse_int(struct hp_str v, int dflt)
{
	int n = 0;
	if (v.n <= 0 || v.n > 6)
		return dflt;
	for (int i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return dflt;
		n = n * 10 + (v.p[i] - '0');
	}
	return n;
}

HELIOS_EXPORT(helios_init) int helios_init(void)
{
	struct hp_str c = hp_field(HP_F_CONFIG, cfg, sizeof(cfg)), v, s;
	if (c.n < 0)
		return 0;
	if (hp_json_get(c, "log_level", &v)) {
		if (!hp_json_string(v, &s))
			return 1;
		if (hp_eq(s, "debug"))
			level = HP_DEBUG;
		else if (hp_eq(s, "info"))
			level = HP_INFO;
		else if (hp_eq(s, "warning") || hp_eq(s, "warn"))
			level = HP_WARN;
		else if (hp_eq(s, "error"))
			level = HP_ERROR;
		else
			return 2; /* an unknown level: refuse the config */
	}
	if (hp_json_get(c, "max_sql", &v)) {
		max_sql = parse_int(v, -1);
		if (max_sql < 0 || max_sql > SQL_MAX)
			return 3;
	}
	if (hp_json_get(c, "events", &v)) {
		static const char *const names[4] = {"connect", "query", "complete", "error"};
		int pos = 0;
		struct hp_str k, e;
		if (!hp_json_is(v, '['))
			return 4;
		for (int i = 0; i < 4; i++)
			want[i] = 0;
		while (hp_json_next(v, &pos, &k, &e)) {
			int found = 0;
			for (int i = 0; i < 4; i++)
				if (hp_json_string(e, &s) && hp_eq(s, names[i]))
					want[i] = found = 1;
			if (!found)
				return 4;
		}
	}
	return 0;
}

/* {"event":"...","user":...,"database":...,...: the fields every hook has */
static void begin(struct hp_buf *b, const char *event)
{
	b->p = line;
	b->n = 0;
	b->cap = sizeof(line);
	hp_put_lit(b, "{\"event\":\"");
	hp_puts(b, event);
	hp_put_lit(b, "\"");
	hp_put_member(b, "user", hp_field(HP_F_USER, user, sizeof(user)));
	hp_put_member(b, "database", hp_field(HP_F_DATABASE, db, sizeof(db)));
	hp_put_member(b, "application_name", hp_field(HP_F_APPLICATION_NAME, app, sizeof(app)));
	hp_put_member(b, "tenant", hp_field(HP_F_TENANT, tenant, sizeof(tenant)));
}

static void end(struct hp_buf *b)
{
	hp_put(b, "}", 1);
	helios_log(level, b->p, b->n);
}

HELIOS_EXPORT(on_connection) int on_connection(void)
{
	struct hp_buf b;
	if (!want[0])
		return HP_CONTINUE;
	begin(&b, "connect");
	hp_put_member(&b, "address", hp_field(HP_F_ADDRESS, addr, sizeof(addr)));
	end(&b);
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_query_start) int on_query_start(void)
{
	struct hp_buf b;
	if (!want[1])
		return HP_CONTINUE;
	begin(&b, "query");
	hp_put_member(&b, "mode", hp_field(HP_F_MODE, mode, sizeof(mode)));
	int full = helios_field(HP_F_SQL, sql, max_sql);
	struct hp_str s = {sql, full > max_sql ? max_sql : full};
	hp_put_member(&b, "sql", s);
	if (full > max_sql)
		hp_put_lit(&b, ",\"sql_truncated\":true");
	end(&b);
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_query_complete) int on_query_complete(void)
{
	struct hp_buf b;
	if (!want[2])
		return HP_CONTINUE;
	begin(&b, "complete");
	hp_put_member(&b, "fingerprint", hp_field(HP_F_FINGERPRINT, fp, sizeof(fp)));
	hp_put_member(&b, "duration_us", hp_field(HP_F_DURATION_US, dur, sizeof(dur)));
	hp_put_member(&b, "rows", hp_field(HP_F_ROWS, rows, sizeof(rows)));
	hp_put_member(&b, "status", hp_field(HP_F_STATUS, status, sizeof(status)));
	hp_put_member(&b, "sqlstate", hp_field(HP_F_SQLSTATE, state, sizeof(state)));
	end(&b);
	return HP_CONTINUE;
}

HELIOS_EXPORT(on_error) int on_error(void)
{
	struct hp_buf b;
	if (!want[3])
		return HP_CONTINUE;
	begin(&b, "error");
	hp_put_member(&b, "sqlstate", hp_field(HP_F_SQLSTATE, state, sizeof(state)));
	hp_put_member(&b, "message", hp_field(HP_F_MESSAGE, msg, sizeof(msg)));
	end(&b);
	return HP_CONTINUE;
}
