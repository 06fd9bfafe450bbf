/*
 * query_blocker: denies statements by pattern, for every user but the
 * admins. Config (all optional):
 *   patterns  ["DROP", "TRUNCATE", "ALTER SYSTEM", "DELETE FROM audit*"]
 *             (default ["DROP", "TRUNCATE"]): a pattern matches the start
 *             of a statement, case-insensitively, a blank in it matching
 *             any run of blanks, '*' matching anything (to the end of the
 *             statement); every statement of a multi-statement query is
 *             checked, leading comments skipped
 *   admins    ["postgres", "dba"] (default none): users never blocked
 *   sqlstate  default "42501" (insufficient_privilege)
 * A denial says which pattern matched.
 */
#include "helios_plugin.h"

HELIOS_PLUGIN_ABI_V1

#define MAX_PATTERNS 32
#define SQL_MAX      65536

static char cfg[8192];
static struct hp_str patterns[MAX_PATTERNS], admins[MAX_PATTERNS];
static int n_patterns, n_admins;
static char sqlstate[6] = "42501";
static char sql[SQL_MAX], user[128], msg[256];

static const struct hp_str default_patterns[] = {{"DROP", 4}, {"TRUNCATE", 8}};

/* A JSON array of strings into out: the count, -1 if it is anything else. */
static int string_list(struct hp_str v, struct hp_str *out)
{
	int pos = 0, n = 0;
	struct hp_str k, e, s;
	if (!hp_json_is(v, '['))
		return -1;
	while (hp_json_next(v, &pos, &k, &e)) {
		if (n == MAX_PATTERNS || !hp_json_string(e, &s) || s.n == 0)
			return -1;
		out[n++] = s;
	}
	return n;
}

HELIOS_EXPORT(helios_init) int helios_init(void)
{
	struct hp_str c = hp_field(HP_F_CONFIG, cfg, sizeof(cfg)), v, s;
	if (c.n >= (int)sizeof(cfg))
		return 1; /* config too long for this plugin */
	n_patterns = 2;
	patterns[0] = default_patterns[0];
	patterns[1] = default_patterns[1];
	if (c.n > 0 && hp_json_get(c, "patterns", &v) &&
	    (n_patterns = string_list(v, patterns)) < 0)
		return 2;
	if (c.n > 0 && hp_json_get(c, "admins", &v) && (n_admins = string_list(v, admins)) < 0)
		return 3;
	if (c.n > 0 && hp_json_get(c, "sqlstate", &v)) {
		if (!hp_json_string(v, &s) || s.n != 5)
			return 4;
		memcpy(sqlstate, s.p, 5);
	}
	return 0;
}

/* Skips blanks and comments from i. */
static int skip_blank(const char *p, int n, int i)
{
	for (;;) {
		while (i < n && hp_is_space(p[i]))
			i++;
		if (i + 1 < n && p[i] == '-' && p[i + 1] == '-') {
			while (i < n && p[i] != '\n')
				i++;
		} else if (i + 1 < n && p[i] == '/' && p[i + 1] == '*') {
			int depth = 0; /* PostgreSQL nests block comments */
			do {
				if (i + 1 < n && p[i] == '/' && p[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (i + 1 < n && p[i] == '*' && p[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			} while (depth > 0 && i < n);
		} else {
			return i;
		}
	}
}

/* Does the statement at p[i..end) start with pattern pat? */
static int match(const char *p, int i, int end, struct hp_str pat)
{
	for (int k = 0; k < pat.n; k++) {
		char c = pat.p[k];
		if (c == '*')
			return 1;
		if (hp_is_space(c)) {
			if (i >= end || !hp_is_space(p[i]))
				return 0;
			while (i < end && hp_is_space(p[i]))
				i++;
			while (k + 1 < pat.n && hp_is_space(pat.p[k + 1]))
				k++;
			continue;
		}
		if (i >= end || hp_lower(p[i]) != hp_lower(c))
			return 0;
		i++;
	}
	/* a whole word: "DROP" does not match "DROPPED_TABLES" */
	char nx = i < end ? p[i] : ' ';
	int word = (nx >= 'a' && nx <= 'z') || (nx >= 'A' && nx <= 'Z') ||
	           (nx >= '0' && nx <= '9') || nx == '_';
	return !word;
}

/* The end of the statement starting at i: the next ';' outside quotes,
 * identifiers, dollar quotes and comments. */
static int statement_end(const char *p, int n, int i)
{
	while (i < n) {
		char c = p[i];
		if (c == ';')
			return i;
		if (c == '\'' || c == '"') {
			for (i++; i < n && p[i] != c; i++)
				;
			i++;
		} else if (c == '$') {
			int t = i + 1; /* $tag$ ... $tag$ */
			while (t < n && p[t] != '$' &&
			       ((p[t] >= 'a' && p[t] <= 'z') || (p[t] >= 'A' && p[t] <= 'Z') ||
			        p[t] == '_' || (p[t] >= '0' && p[t] <= '9')))
				t++;
			if (t < n && p[t] == '$') {
				int tl = t - i + 1, j = t + 1;
				while (j + tl <= n && memcmp(p + j, p + i, (hp_size)tl))
					j++;
				i = j + tl;
			} else {
				i++;
			}
		} else if ((c == '-' && i + 1 < n && p[i + 1] == '-') ||
		           (c == '/' && i + 1 < n && p[i + 1] == '*')) {
			i = skip_blank(p, n, i);
		} else {
			i++;
		}
	}
	return n;
}

HELIOS_EXPORT(on_query_start) int on_query_start(void)
{
	struct hp_str u = hp_field(HP_F_USER, user, sizeof(user));
	for (int a = 0; a < n_admins; a++)
		if (hp_eq_str(u, admins[a]))
			return HP_CONTINUE;
	int n = helios_field(HP_F_SQL, sql, sizeof(sql));
	if (n < 0)
		return HP_CONTINUE;
	if (n > (int)sizeof(sql)) {
		/* too long to check whole: refuse rather than let the tail through */
		struct hp_buf b = {msg, 0, sizeof(msg)};
		hp_puts(&b, "query_blocker: statement too long to check");
		helios_deny(sqlstate, b.p, b.n);
		return HP_DENY;
	}
	for (int i = 0; i < n;) {
		int s = skip_blank(sql, n, i), e = statement_end(sql, n, s);
		for (int k = 0; k < n_patterns && s < e; k++)
			if (match(sql, s, e, patterns[k])) {
				struct hp_buf b = {msg, 0, sizeof(msg)};
				hp_puts(&b, "query_blocker: \"");
				hp_put(&b, patterns[k].p, patterns[k].n);
				hp_puts(&b, "\" is not allowed for user ");
				hp_put(&b, u.p, u.n > 0 ? u.n : 0);
				helios_deny(sqlstate, b.p, b.n);
				return HP_DENY;
			}
		i = e + 1;
	}
	return HP_CONTINUE;
}
