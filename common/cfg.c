/*
 * Loads a TOML configuration into an immutable struct cfg: walks the TOML
 * tree against the key table (cfg_keys.c), applies defaults, lays the
 * overrides tree (helioctl config set) over the file's, then checks the
 * rules that span keys (cfg_check.c) and reads the PgBouncer-style
 * users_file (cfg_users.c).
 */
#include "common/cfg.h"
#include "common/cidr.h"
#include "common/cfg_internal.h"
#include "common/cfg_keys.h"
#include "common/toml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int vfail(struct loader *ld, const char *file, int line, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Fills ld->err with "file:line: message" (no line when 0); returns -EINVAL. */
static int vfail(struct loader *ld, const char *file, int line, const char *fmt, va_list ap)
{
	struct cfg_buf b;

	cfg_buf_init(&b, ld->err->msg, sizeof(ld->err->msg));
	if (line > 0)
		cfg_buf_printf(&b, "%s:%d: ", file, line);
	else
		cfg_buf_printf(&b, "%s: ", file);
	vsnprintf(b.p + b.len, b.cap - b.len, fmt, ap);
	return -EINVAL;
}

int cfg_fail(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ld, ld->at, line, fmt, ap);
	va_end(ap);
	return rc;
}

/* The same about another file (users_file). */
int cfg_fail_in(struct loader *ld, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ld, file, line, fmt, ap);
	va_end(ap);
	return rc;
}

/* "io_backend", "pool_mode.mode", "nodes[1].port"; control characters from a
 * hostile TOML key become '?' so the message stays one line. */
void cfg_key_path(char *buf, size_t cap, const char *section, long index, const char *name)
{
	if (index >= 0)
		snprintf(buf, cap, "%s[%ld].%s", section, index, name);
	else
		snprintf(buf, cap, "%s%s%s", section, section[0] ? "." : "", name);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

const char *cfg_type_word(enum toml_type t)
{
	switch (t) {
	case TOML_TABLE:
		return "table";
	case TOML_ARRAY:
		return "array";
	case TOML_STRING:
		return "string";
	case TOML_INT:
		return "integer";
	case TOML_FLOAT:
		return "float";
	case TOML_BOOL:
		return "boolean";
	default:
		return "date/time";
	}
}

/* The TOML value of section ("auth.users" -> root["auth"]["users"]), or of
 * its deepest ancestor that exists; *found says which. */
static const struct toml_value *section_value(const struct toml_value *root, const char *section,
                                              bool *found)
{
	const struct toml_value *t = root, *v;
	const char *s = section;
	char part[32];

	*found = false;
	while (*s) {
		size_t n = strcspn(s, ".");
		if (n >= sizeof(part) || toml_type(t) != TOML_TABLE)
			return t;
		memcpy(part, s, n);
		part[n] = '\0';
		if (!(v = toml_table_get(t, part)))
			return t;
		t = v;
		s += n + (s[n] == '.');
	}
	*found = true;
	return t;
}

/* Line of section[index].name in the TOML, or of its nearest ancestor that
 * was written, or 0: lets cross-key checks point at the right place. */
static int line_of(const struct loader *ld, const char *section, long index, const char *name)
{
	bool found;
	const struct toml_value *t = section_value(ld->root, section, &found), *v;
	int line = t == ld->root ? 0 : toml_line(t);

	if (!found)
		return line;
	if (index >= 0) {
		if (toml_type(t) != TOML_ARRAY || (size_t)index >= toml_array_len(t))
			return line;
		t = toml_array_at(t, (size_t)index);
		line = toml_line(t) > 0 ? toml_line(t) : line;
	}
	if (name && toml_type(t) == TOML_TABLE && (v = toml_table_get(t, name)))
		line = toml_line(v);
	return line;
}

/* The value of a key of a non-array section in tree (NULL = none), or NULL. */
static const struct toml_value *tree_value(const struct toml_value *tree, const char *section,
                                           const char *name)
{
	bool found;
	const struct toml_value *t;

	if (!tree)
		return NULL;
	t = section_value(tree, section, &found);
	return found && toml_type(t) == TOML_TABLE ? toml_table_get(t, name) : NULL;
}

/* The overrides' value of a key of a non-array section, or NULL. */
static const struct toml_value *ovr_value(const struct loader *ld, const char *section,
                                          const char *name)
{
	return tree_value(ld->ovr, section, name);
}

/* Command-line values (cfg_force_value) as TOML lines, set before any
 * config is loaded and only read afterwards. */
#define FORCED_NAME "command line"
static char forced_text[2 * CFG_PATH_MAX + 2 * CFG_HOST_MAX];

int cfg_force_value(const char *dotted, const char *value, struct cfg_error *err)
{
	char line[CFG_PATH_MAX + 64];
	size_t used = strlen(forced_text);

	if (cfg_override_line(dotted, value, line, sizeof(line), err) != 0)
		return -1;
	if (used + strlen(line) + 2 > sizeof(forced_text)) {
		snprintf(err->msg, sizeof(err->msg), "too many command-line values");
		return -1;
	}
	snprintf(forced_text + used, sizeof(forced_text) - used, "%s\n", line);
	return 0;
}

void cfg_force_clear(void)
{
	forced_text[0] = '\0';
}

static bool forced_off;

void cfg_force_suspend(bool off)
{
	forced_off = off;
}

/* For rules checked once every key has its value: points at the overrides
 * when the key's value came from there, else at the file. */
int cfg_fail_key(struct loader *ld, const char *section, long index, const char *name,
                 const char *fmt, ...)
{
	const struct toml_value *v = index < 0 && name ? ovr_value(ld, section, name) : NULL;
	bool forced = index < 0 && name && tree_value(ld->forced, section, name);
	va_list ap;
	int rc;

	va_start(ap, fmt);
	if (forced)
		rc = vfail(ld, FORCED_NAME, 0, fmt, ap);
	else if (v)
		rc = vfail(ld, ld->ovr_name, toml_line(v), fmt, ap);
	else
		rc = vfail(ld, ld->name, line_of(ld, section, index, name), fmt, ap);
	va_end(ap);
	return rc;
}

/* Stores an integer after the range check; base is the struct k->offset is into. */
static int store_int(struct loader *ld, const struct cfg_key *k, const char *key, int line,
                     char *base, long long n)
{
	int v;

	if (n < k->min || n > k->max)
		return cfg_fail(ld, line, "key '%s': %lld is out of range (%lld..%lld)", key, n,
		                k->min, k->max);
	v = (int)n;
	memcpy(base + k->offset, &v, sizeof(v));
	return 0;
}

/* Wipes and frees what expand_env() made (a secret, maybe). */
static void expanded_free(char *s, size_t len)
{
	if (s) {
		explicit_bzero(s, len);
		free(s);
	}
}

/* True for the bytes of an environment variable name after the first. */
static bool env_name_char(char ch)
{
	return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9');
}

/* Expands a string value: "${NAME}" is environment variable NAME (secrets
 * come from a Kubernetes Secret that way), "$${" is a literal "${", any
 * other '$' stays. *out gets a malloc'd copy (NULL when s has no '$': use s
 * as it is) of *len bytes; the caller wipes and frees it. An unset or
 * malformed reference is an error naming the key and the variable, never
 * a value. */
static int expand_env(struct loader *ld, const char *key, bool secret, int line, const char *s,
                      size_t len, char **out, size_t *out_len)
{
	size_t cap = len + 1, n = 0;
	char *buf;

	*out = NULL;
	if (!memchr(s, '$', len))
		return 0;
	if (!(buf = malloc(cap)))
		return cfg_fail(ld, line, "out of memory");
	for (size_t i = 0; i < len;) {
		const char *piece = s + i, *val;
		size_t plen = 1, nlen;
		char name[128];

		if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
			piece = "${";
			plen = 2;
			i += 3;
		} else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
			const char *end = memchr(s + i + 2, '}', len - i - 2);
			nlen = end ? (size_t)(end - (s + i + 2)) : 0;
			if (!end) {
				expanded_free(buf, n);
				return cfg_fail(ld, line,
				                "key '%s': \"${\" without a closing \"}\" (write "
				                "\"$${\" for a literal \"${\")",
				                key);
			}
			bool ok = nlen > 0 && nlen < sizeof(name) &&
			          !(s[i + 2] >= '0' && s[i + 2] <= '9');
			for (size_t j = 0; ok && j < nlen; j++)
				ok = env_name_char(s[i + 2 + j]);
			if (!ok) {
				char shown[44];
				size_t sl = nlen < sizeof(shown) - 4 ? nlen : sizeof(shown) - 4;
				/* a secret's bytes stay out of the message */
				if (secret)
					sl = 0;
				for (size_t j = 0; j < sl; j++)
					shown[j] =
					    env_name_char(s[i + 2 + j]) || s[i + 2 + j] == '-'
					        ? s[i + 2 + j]
					        : '?';
				snprintf(shown + sl, sizeof(shown) - sl, "%s",
				         secret      ? "..."
				         : sl < nlen ? "..."
				                     : "");
				expanded_free(buf, n);
				return cfg_fail(
				    ld, line,
				    "key '%s': \"${%s}\" is not an environment variable "
				    "name (letters, digits and _; write \"$${\" for a "
				    "literal \"${\")",
				    key, shown);
			}
			memcpy(name, s + i + 2, nlen);
			name[nlen] = '\0';
			if (!(val = getenv(name))) {
				expanded_free(buf, n);
				return cfg_fail(ld, line,
				                "key '%s': environment variable %s is not set", key,
				                name);
			}
			piece = val;
			plen = strlen(val);
			i += nlen + 3;
		} else {
			i++;
		}
		if (n + plen + 1 > cap) {
			size_t ncap = (n + plen + 1) * 2;
			char *nb = malloc(ncap);
			if (!nb) {
				expanded_free(buf, n);
				return cfg_fail(ld, line, "out of memory");
			}
			memcpy(nb, buf, n);
			explicit_bzero(buf, n);
			free(buf);
			buf = nb;
			cap = ncap;
		}
		memcpy(buf + n, piece, plen);
		n += plen;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
}

/* Stores a string or enum value of len bytes; never truncates. */
static int store_text(struct loader *ld, const struct cfg_key *k, const char *key, int line,
                      char *base, const char *s, size_t len)
{
	char shown[96], allowed[256];
	struct cfg_buf b;
	int idx;

	if (k->type == CFG_KEY_STRING) {
		if (memchr(s, '\0', len))
			return cfg_fail(ld, line, "key '%s': contains a NUL byte", key);
		if (len >= k->size)
			return cfg_fail(ld, line,
			                "key '%s': value is %zu bytes, longer than the %zu allowed",
			                key, len, k->size - 1);
		memcpy(base + k->offset, s, len);
		base[k->offset + len] = '\0';
		return 0;
	}
	idx = cfg_enum_index(k, s, len);
	if (idx < 0) {
		cfg_buf_init(&b, shown, sizeof(shown));
		cfg_buf_quote(&b, s, len);
		cfg_buf_init(&b, allowed, sizeof(allowed));
		for (int i = 0; k->values[i]; i++)
			cfg_buf_printf(&b, "%s%s", i ? ", " : "", k->values[i]);
		return cfg_fail(ld, line, "key '%s': %s is not one of %s", key, shown, allowed);
	}
	if (k->flags & CFG_KEY_TEXT)
		snprintf(base + k->offset, k->size, "%s", k->values[idx]);
	else
		memcpy(base + k->offset, &idx, sizeof(idx));
	return 0;
}

/* Sets the defaults of one section (index >= 0: one array element). */
static int apply_defaults(struct loader *ld, const char *section, long index, char *base)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char key[128], text[CFG_QUERY_MAX];
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct cfg_key *k = &keys[i];
		const char *at;
		/* String lists have no default: they start empty. */
		if (strcmp(k->section, section) != 0 || !k->def || k->type == CFG_KEY_STRLIST)
			continue;
		cfg_key_path(key, sizeof(key), section, index, k->name);
		at = strstr(k->def, "<index>");
		if (at)
			snprintf(text, sizeof(text), "%.*s%ld%s", (int)(at - k->def), k->def, index,
			         at + strlen("<index>"));
		else
			snprintf(text, sizeof(text), "%s", k->def);
		if (k->type == CFG_KEY_INT)
			rc = store_int(ld, k, key, 0, base, strtoll(text, NULL, 10));
		else if (k->type == CFG_KEY_BOOL)
			*(bool *)(base + k->offset) = strcmp(text, "true") == 0;
		else
			rc = store_text(ld, k, key, 0, base, text, strlen(text));
	}
	return rc;
}

/* Stores a TOML array of strings v into k's list; the count grows with
 * every string stored, so cfg_free() frees a half-built list. */
static int store_list(struct loader *ld, const struct cfg_key *k, const char *key,
                      const struct toml_value *v, char *base)
{
	size_t n = toml_array_len(v), len;
	int line = toml_line(v);
	char **items, item_key[160], *exp;

	if (n == 0 && k->min > 0)
		return cfg_fail(ld, line, "key '%s' must not be empty", key);
	if (n < (size_t)k->min || n > (size_t)k->max)
		return cfg_fail(ld, line, "key '%s': %zu strings, expected %lld..%lld", key, n,
		                k->min, k->max);
	cfg_strlist_free(k, base);
	if (!(items = calloc(n ? n : 1, sizeof(*items))))
		return cfg_fail(ld, line, "out of memory");
	cfg_strlist_put(k, base, items, 0);
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *e = toml_array_at(v, i);
		int at = toml_line(e) > 0 ? toml_line(e) : line;
		const char *s;

		snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i);
		if (toml_type(e) != TOML_STRING)
			return cfg_fail(ld, at, "key '%s': expected string, got %s", item_key,
			                cfg_type_word(toml_type(e)));
		s = toml_string(e, &len);
		if (memchr(s, '\0', len))
			return cfg_fail(ld, at, "key '%s': contains a NUL byte", item_key);
		if (expand_env(ld, item_key, false, at, s, len, &exp, &len))
			return -EINVAL;
		if (exp)
			s = exp;
		if (len >= k->size) {
			expanded_free(exp, len);
			return cfg_fail(ld, at,
			                "key '%s': value is %zu bytes, longer than the %zu allowed",
			                item_key, len, k->size - 1);
		}
		items[i] = strndup(s, len);
		expanded_free(exp, len);
		if (!items[i])
			return cfg_fail(ld, at, "out of memory");
		cfg_strlist_put(k, base, items, i + 1);
	}
	return 0;
}

static int set_value(struct loader *ld, const struct cfg_key *k, long index,
                     const struct toml_value *v, char *base)
{
	enum toml_type want = k->type == CFG_KEY_INT       ? TOML_INT
	                      : k->type == CFG_KEY_BOOL    ? TOML_BOOL
	                      : k->type == CFG_KEY_STRLIST ? TOML_ARRAY
	                                                   : TOML_STRING;
	int line = toml_line(v), rc;
	const char *s;
	size_t len;
	char key[128], *exp = NULL;

	cfg_key_path(key, sizeof(key), k->section, index, k->name);
	if (toml_type(v) != want)
		return cfg_fail(ld, line, "key '%s': expected %s, got %s", key, cfg_type_word(want),
		                cfg_type_word(toml_type(v)));
	switch (k->type) {
	case CFG_KEY_INT:
		return store_int(ld, k, key, line, base, toml_int(v));
	case CFG_KEY_BOOL:
		*(bool *)(base + k->offset) = toml_bool(v);
		return 0;
	case CFG_KEY_STRLIST:
		return store_list(ld, k, key, v, base);
	default:
		s = toml_string(v, &len);
		/* a NUL byte is refused by store_text before it could cut a name */
		if (!memchr(s, '\0', len) &&
		    expand_env(ld, key, (k->flags & CFG_KEY_SECRET) != 0, line, s, len, &exp, &len))
			return -EINVAL;
		rc = store_text(ld, k, key, line, base, exp ? exp : s, len);
		expanded_free(exp, len);
		return rc;
	}
}

static int unknown(struct loader *ld, const char *section, long index, const char *name,
                   const struct toml_value *v)
{
	bool table =
	    toml_type(v) == TOML_TABLE || (toml_type(v) == TOML_ARRAY && toml_array_len(v) > 0 &&
	                                   toml_type(toml_array_at(v, 0)) == TOML_TABLE);
	const char *hint = cfg_key_suggest(section, name), *note, *pgb;
	char key[128];

	cfg_key_path(key, sizeof(key), section, index, name);
	/* A PgBouncer name says where its setting lives here (issue 19). */
	pgb = table ? NULL : cfg_pgbouncer_key(name, &note);
	if (pgb && pgb[0])
		return cfg_fail(ld, toml_line(v),
		                "unknown key '%s' (PgBouncer's %s is '%s' here%s%s)", key, name,
		                pgb, note[0] ? ": " : "", note);
	if (pgb)
		return cfg_fail(ld, toml_line(v),
		                "unknown key '%s' (PgBouncer's %s has no HeliosProxy key%s%s)", key,
		                name, note[0] ? ": " : "", note);
	if (table && !strcmp(key, "pgbouncer"))
		return cfg_fail(ld, toml_line(v),
		                "unknown table 'pgbouncer' (PgBouncer's [pgbouncer] settings are "
		                "top-level keys and tables here; `helioctl import-pgbouncer` "
		                "converts a pgbouncer.ini)");
	if (hint)
		return cfg_fail(ld, toml_line(v), "unknown %s '%s' (did you mean '%s'?)",
		                table ? "table" : "key", key, hint);
	return cfg_fail(ld, toml_line(v), "unknown %s '%s'", table ? "table" : "key", key);
}

static int load_section(struct loader *ld, const struct cfg_section *sec,
                        const struct toml_value *v);

/* Walks one TOML table of section; base is the struct its keys live in. */
static int load_table(struct loader *ld, const char *section, long index,
                      const struct toml_value *t, char *base)
{
	for (size_t i = 0; i < toml_table_len(t); i++) {
		const char *name = toml_table_key(t, i);
		const struct toml_value *v = toml_table_value(t, i);
		const struct cfg_key *k = cfg_key_in(section, name, toml_table_key_len(t, i));
		const struct cfg_section *sub = NULL;
		char subname[64];
		int rc;

		if (!k && index < 0) {
			snprintf(subname, sizeof(subname), "%s%s%s", section, section[0] ? "." : "",
			         name);
			sub = cfg_section_find(subname);
		}
		if (k && index < 0 &&
		    (ovr_value(ld, section, k->name) || tree_value(ld->forced, section, k->name)))
			rc = 0; /* replaced: load_overrides() applies the overrides and forced
			           values */
		else if (k)
			rc = set_value(ld, k, index, v, base);
		else if (sub)
			rc = load_section(ld, sub, v);
		else
			rc = unknown(ld, section, index, name, v);
		if (rc)
			return rc;
	}
	return 0;
}

/* An empty string or string list. */
static bool field_empty(const struct cfg_key *k, const char *base)
{
	size_t n;

	if (k->type == CFG_KEY_STRLIST)
		return !cfg_strlist_get(k, base, &n) || n == 0;
	return base[k->offset] == '\0';
}

/* Required string (list) keys of one section or array element (t, NULL if
 * the section is absent): given and non-empty. */
static int check_required(struct loader *ld, const char *section, long index,
                          const struct toml_value *t, const char *base)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char key[128];

	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		if (!(k->flags & CFG_KEY_REQUIRED) || strcmp(k->section, section) != 0 ||
		    !field_empty(k, base))
			continue;
		cfg_key_path(key, sizeof(key), section, index, k->name);
		if ((t && toml_table_get(t, k->name)) ||
		    (index < 0 && ovr_value(ld, section, k->name)))
			return cfg_fail_key(ld, section, index, k->name,
			                    "key '%s' must not be empty", key);
		return cfg_fail_key(ld, section, index, NULL, "key '%s' is required", key);
	}
	return 0;
}

static int load_section(struct loader *ld, const struct cfg_section *sec,
                        const struct toml_value *v)
{
	struct cfg *c = ld->c;
	size_t n, elem;
	char *arr;
	char key[64];
	int rc;

	if (!sec->is_array) {
		const char *note, *pgb = cfg_pgbouncer_key(sec->name, &note);
		if (toml_type(v) != TOML_TABLE)
			return cfg_fail(ld, toml_line(v), "key '%s': expected table, got %s%s%s%s",
			                sec->name, cfg_type_word(toml_type(v)),
			                pgb && pgb[0] ? " (PgBouncer's setting is '" : "",
			                pgb && pgb[0] ? pgb : "", pgb && pgb[0] ? "' here)" : "");
		return load_table(ld, sec->name, -1, v, (char *)c);
	}
	if (toml_type(v) != TOML_ARRAY &&
	    (!strcmp(sec->name, "databases") || !strcmp(sec->name, "users")))
		return cfg_fail(ld, toml_line(v),
		                "key '%s': expected array of tables ([[%s]]), got %s (PgBouncer's "
		                "[%s] lines become one [[%s]] table each, with name = the line's "
		                "key)",
		                sec->name, sec->name, cfg_type_word(toml_type(v)), sec->name,
		                sec->name);
	if (toml_type(v) != TOML_ARRAY)
		return cfg_fail(ld, toml_line(v),
		                "key '%s': expected array of tables ([[%s]]), got %s", sec->name,
		                sec->name, cfg_type_word(toml_type(v)));
	n = toml_array_len(v);
	if (n == 0)
		return 0;
	/* The count is set with the array, before any element is loaded, so
	 * cfg_free() frees what a failing element leaves behind. */
	if (strcmp(sec->name, "nodes") == 0) {
		elem = sizeof(*c->nodes);
		arr = calloc(n, elem);
		c->nodes = (struct cfg_node *)arr;
		c->n_nodes = arr ? n : 0;
	} else if (strcmp(sec->name, "schema_routes") == 0) {
		elem = sizeof(*c->schema_routes);
		arr = calloc(n, elem);
		c->schema_routes = (struct cfg_schema_route *)arr;
		c->n_schema_routes = arr ? n : 0;
	} else if (strcmp(sec->name, "tenants") == 0) {
		elem = sizeof(*c->tenants);
		arr = calloc(n, elem);
		c->tenants = (struct cfg_tenant *)arr;
		c->n_tenants = arr ? n : 0;
	} else if (strcmp(sec->name, "databases") == 0) {
		elem = sizeof(*c->databases);
		arr = calloc(n, elem);
		c->databases = (struct cfg_database *)arr;
		c->n_databases = arr ? n : 0;
	} else if (strcmp(sec->name, "users") == 0) {
		elem = sizeof(*c->pool_users);
		arr = calloc(n, elem);
		c->pool_users = (struct cfg_user_pool *)arr;
		c->n_pool_users = arr ? n : 0;
	} else if (strcmp(sec->name, "rewrite_rules") == 0) {
		elem = sizeof(*c->rewrite_rules);
		arr = calloc(n, elem);
		c->rewrite_rules = (struct cfg_rewrite_rule *)arr;
		c->n_rewrite_rules = arr ? n : 0;
	} else if (strcmp(sec->name, "cache.tables") == 0) {
		elem = sizeof(*c->cache.tables);
		arr = calloc(n, elem);
		c->cache.tables = (struct cfg_cache_table *)arr;
		c->cache.n_tables = arr ? n : 0;
	} else if (strcmp(sec->name, "plugins") == 0) {
		elem = sizeof(*c->plugins);
		arr = calloc(n, elem);
		c->plugins = (struct cfg_plugin *)arr;
		c->n_plugins = arr ? n : 0;
	} else if (strcmp(sec->name, "auth.rules") == 0) {
		elem = sizeof(*c->auth.rules);
		arr = calloc(n, elem);
		c->auth.rules = (struct cfg_hba_rule *)arr;
		c->auth.n_rules = arr ? n : 0;
	} else {
		elem = sizeof(*c->auth.users);
		arr = calloc(n, elem);
		c->auth.users = (struct cfg_user *)arr;
		c->auth.n_users = c->auth.n_config_users = arr ? n : 0;
	}
	if (!arr)
		return cfg_fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *t = toml_array_at(v, i);
		char *base = arr + i * elem;
		if (toml_type(t) != TOML_TABLE) {
			snprintf(key, sizeof(key), "%s[%zu]", sec->name, i);
			return cfg_fail(ld, toml_line(t), "key '%s': expected table, got %s", key,
			                cfg_type_word(toml_type(t)));
		}
		if (strcmp(sec->name, "plugins") == 0) {
			/* path and config are malloc'd: its own reader */
			rc = cfg_load_plugin(ld, (long)i, t, (struct cfg_plugin *)base);
			if (rc)
				return rc;
			continue;
		}
		rc = apply_defaults(ld, sec->name, (long)i, base);
		if (rc == 0)
			rc = load_table(ld, sec->name, (long)i, t, base);
		if (rc == 0)
			rc = check_required(ld, sec->name, (long)i, t, base);
		if (rc)
			return rc;
	}
	return 0;
}

/* "nodes.port" for an override that reaches into array section sec through
 * v (a dotted key's table or a [[nodes]] array); the first key below v
 * names it when there is one. */
static void array_key_path(char *buf, size_t cap, const char *sec, const struct toml_value *v)
{
	if (toml_type(v) == TOML_ARRAY && toml_array_len(v) > 0)
		v = toml_array_at(v, 0);
	if (toml_type(v) == TOML_TABLE && toml_table_len(v) > 0)
		cfg_key_path(buf, cap, sec, -1, toml_table_key(v, 0));
	else
		cfg_key_path(buf, cap, "", -1, sec);
}

/* Walks the overrides' table t of section and stores every key over the
 * file's value. Only plain keys: entries of array tables ([[nodes]],
 * [[cache.tables]], ...) are matched by position, so a change to them has
 * no stable meaning. */
static int walk_overrides(struct loader *ld, const char *section, const struct toml_value *t)
{
	for (size_t i = 0; i < toml_table_len(t); i++) {
		const char *name = toml_table_key(t, i);
		const struct toml_value *v = toml_table_value(t, i);
		const struct cfg_key *k = cfg_key_in(section, name, toml_table_key_len(t, i));
		const struct cfg_section *sub = NULL;
		char subname[64], key[128];
		int rc;

		if (!k) {
			snprintf(subname, sizeof(subname), "%s%s%s", section, section[0] ? "." : "",
			         name);
			sub = cfg_section_find(subname);
		}
		if (k) {
			rc = set_value(ld, k, -1, v, (char *)ld->c);
		} else if (sub && sub->is_array) {
			array_key_path(key, sizeof(key), sub->name, v);
			rc = cfg_fail(
			    ld, toml_line(v),
			    "key '%s' is in the array table [[%s]], which cannot be overridden",
			    key, sub->name);
		} else if (sub && toml_type(v) != TOML_TABLE) {
			rc = cfg_fail(ld, toml_line(v), "key '%s': expected table, got %s",
			              sub->name, cfg_type_word(toml_type(v)));
		} else if (sub) {
			rc = walk_overrides(ld, sub->name, v);
		} else {
			rc = unknown(ld, section, -1, name, v);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int load_overrides(struct loader *ld)
{
	int rc = 0;

	if (ld->ovr) {
		ld->at = ld->ovr_name;
		rc = walk_overrides(ld, "", ld->ovr);
	}
	/* the command line wins over the file and the live overrides alike */
	if (rc == 0 && ld->forced) {
		ld->at = FORCED_NAME;
		rc = walk_overrides(ld, "", ld->forced);
	}
	ld->at = ld->name;
	return rc;
}

int cfg_parse_address(const char *addr, char *host, size_t host_cap, uint16_t *port)
{
	const char *h = addr, *hend, *p;
	unsigned long v = 0;

	if (addr[0] == '[') {
		h = addr + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		p = hend + 2;
	} else {
		hend = strrchr(addr, ':');
		/* A bare IPv6 address would make the port ambiguous. */
		if (!hend || memchr(addr, ':', (size_t)(hend - addr)))
			return -EINVAL;
		p = hend + 1;
	}
	if (hend == h || strcspn(h, " \t") < (size_t)(hend - h))
		return -EINVAL;
	if (*p == '\0' || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
		return -EINVAL;
	v = strtoul(p, NULL, 10);
	if (v < 1 || v > 65535)
		return -EINVAL;
	if ((size_t)(hend - h) >= host_cap)
		return -ENAMETOOLONG;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*port = (uint16_t)v;
	return 0;
}

/* Opens path for reading if it is a regular file; returns an fd or -errno. */
int cfg_open_regular(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		rc = -errno;
	else if (!S_ISREG(st->st_mode))
		rc = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	else
		return fd;
	close(fd);
	return rc;
}

/* Reads a whole regular file of at most max bytes into a malloc'ed,
 * NUL-terminated buffer. Returns 0 or -errno. */
int cfg_read_all(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = cfg_open_regular(path, &st);
	if (fd < 0)
		return fd;
	if ((uintmax_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* A line "[pgbouncer]" at the start of a line: PgBouncer's ini, which is
 * not TOML (issue 19: say so instead of a bare syntax error). */
static bool looks_like_pgbouncer_ini(const char *text, size_t len)
{
	static const char tag[] = "[pgbouncer]";
	for (size_t i = 0; i + sizeof(tag) - 1 <= len; i++)
		if ((i == 0 || text[i - 1] == '\n') && !memcmp(text + i, tag, sizeof(tag) - 1))
			return true;
	return false;
}

/* Parses one TOML text; on a syntax error fills err with "name:line:col: ...". */
static struct toml_value *parse(const char *name, const char *text, size_t len,
                                struct cfg_error *err)
{
	struct toml_error te = {0};
	struct toml_value *root = toml_parse(text, len, &te);

	if (root)
		return root;
	if (te.line > 0 && te.col > 0)
		snprintf(err->msg, sizeof(err->msg), "%s:%d:%d: %s", name, te.line, te.col, te.msg);
	else if (te.line > 0)
		snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", name, te.line, te.msg);
	else
		snprintf(err->msg, sizeof(err->msg), "%s: %s", name, te.msg);
	if (looks_like_pgbouncer_ini(text, len)) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n,
		         " (this looks like a pgbouncer.ini: `helioctl import-pgbouncer FILE` "
		         "writes the TOML)");
	}
	return NULL;
}

/* A file the proxy writes lives in state_dir when that is set (a pod's
 * config folder is a read-only ConfigMap), else next to the config file,
 * unless its key (dotted, a non-array PATH string) says otherwise: an empty
 * value becomes "[<state_dir>/]<config file name><suffix>", and
 * resolve_paths() then puts the config's folder in front of a relative
 * one. From memory there is no file to name it after, so the value stays
 * empty. */
static int default_beside(struct loader *ld, const char *dotted, const char *suffix)
{
	const struct cfg_key *k = cfg_key_find(dotted);
	char *field = (char *)ld->c + k->offset;
	const char *dir = ld->c->state_dir;
	size_t dlen = strlen(dir);
	int n;

	if (!ld->base || field[0])
		return 0;
	n = snprintf(field, k->size, "%s%s%s%s", dir, dlen && dir[dlen - 1] != '/' ? "/" : "",
	             ld->base, suffix);
	if (n < 0 || (size_t)n >= k->size) {
		field[0] = '\0';
		return cfg_fail(ld, 0, "key '%s': default \"%s%s%s\" is longer than %zu bytes",
		                dotted, dlen ? "<state_dir>/" : "", ld->base, suffix, k->size - 1);
	}
	return 0;
}

/* Walks the parsed trees into ld->c: defaults, the file, the overrides, then
 * the rules. */
static int decode(struct loader *ld)
{
	size_t n;
	const struct cfg_section *secs = cfg_sections(&n);
	int rc = 0;

	/* Defaults first, so sections that are absent from the file get them too. */
	for (size_t i = 0; i < n && rc == 0; i++)
		if (!secs[i].is_array)
			rc = apply_defaults(ld, secs[i].name, -1, (char *)ld->c);
	if (rc == 0)
		rc = load_table(ld, "", -1, ld->root, (char *)ld->c);
	if (rc == 0)
		rc = load_overrides(ld);
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool found;
		const struct toml_value *t = section_value(ld->root, secs[i].name, &found);
		if (!secs[i].is_array)
			rc = check_required(ld, secs[i].name, -1, found ? t : NULL, (char *)ld->c);
	}
	if (rc == 0)
		rc = default_beside(ld, "overrides_file", ".live.toml");
	if (rc == 0)
		rc = default_beside(ld, "analytics.slow_query_log", ".slow.jsonl");
	if (rc == 0)
		rc = cfg_validate(ld);
	return rc;
}

/* Loads text (name in messages) with the overrides ovr_text (NULL = none)
 * laid over it; base != NULL: it came from file base in folder dir. */
static struct cfg *load(const char *name, const char *dir, const char *base, const char *text,
                        size_t len, const char *ovr_name, const char *ovr_text,
                        struct cfg_error *err)
{
	struct loader ld = {.name = name,
	                    .ovr_name = ovr_name ? ovr_name : "<overrides>",
	                    .at = name,
	                    .dir = dir,
	                    .base = base,
	                    .err = err};
	struct toml_value *root, *ovr = NULL, *forced = NULL;
	int rc;

	err->msg[0] = '\0';
	root = parse(name, text, len, err);
	if (!root)
		return NULL;
	if ((ovr_text && !(ovr = parse(ld.ovr_name, ovr_text, strlen(ovr_text), err))) ||
	    (forced_text[0] && !forced_off &&
	     !(forced = parse(FORCED_NAME, forced_text, strlen(forced_text), err)))) {
		toml_free(root);
		toml_free(ovr);
		return NULL;
	}
	ld.root = root;
	ld.ovr = ovr;
	ld.forced = forced;
	ld.c = calloc(1, sizeof(*ld.c));
	rc = ld.c ? decode(&ld) : cfg_fail(&ld, 0, "out of memory");
	toml_free(root);
	toml_free(ovr);
	toml_free(forced);
	if (rc) {
		cfg_free(ld.c);
		return NULL;
	}
	return ld.c;
}

struct cfg *cfg_load_string(const char *name, const char *text, size_t len, struct cfg_error *err)
{
	struct cfg_error scratch;

	return load(name ? name : "<string>", NULL, NULL, text, len, NULL, NULL,
	            err ? err : &scratch);
}

/* The absolute folder of path into dir (cap bytes), so resolved paths do not
 * depend on the working directory; falls back to the folder as written (or
 * NULL without one) when the working directory is unknown or too long. */
static const char *folder_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0, used = 0;

	if (slash == path)
		n = 1; /* "/proxy.toml" lives in "/" */
	if (path[0] != '/') {
		if (!getcwd(dir, cap) || strlen(dir) + 1 + n >= cap)
			goto relative;
		used = strlen(dir);
		if (n == 0)
			return dir;
		if (dir[used - 1] != '/')
			dir[used++] = '/';
	}
	memcpy(dir + used, path, n);
	dir[used + n] = '\0';
	return dir;
relative:
	if (!slash)
		return NULL;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return dir;
}

struct cfg *cfg_load_file_with(const char *path, const char *ovr_name, const char *ovr_text,
                               struct cfg_error *err)
{
	struct cfg_error scratch;
	const char *slash = strrchr(path, '/');
	char dir[CFG_PATH_MAX], *data = NULL;
	struct cfg *c = NULL;
	size_t len = 0;
	int rc;

	err = err ? err : &scratch;
	if (strlen(path) >= sizeof(c->path)) {
		snprintf(err->msg, sizeof(err->msg), "%.64s...: path is longer than %zu bytes",
		         path, sizeof(c->path) - 1);
		goto out;
	}
	rc = cfg_read_all(path, TOML_MAX_INPUT, &data, &len);
	if (rc) {
		snprintf(err->msg, sizeof(err->msg), "%s: cannot read: %s", path, strerror(-rc));
		goto out;
	}
	c = load(path, folder_of(path, dir, sizeof(dir)), slash ? slash + 1 : path, data, len,
	         ovr_name, ovr_text, err);
	if (c)
		snprintf(c->path, sizeof(c->path), "%s", path);
out:
	free(data);
	return c;
}

struct cfg *cfg_load_file(const char *path, struct cfg_error *err)
{
	return cfg_load_file_with(path, NULL, NULL, err);
}

void cfg_free(struct cfg *c)
{
	size_t nk, n, elem;
	const struct cfg_key *keys = cfg_key_table(&nk);
	char *arr;

	if (!c)
		return;
	for (size_t i = 0; i < nk; i++) {
		if (keys[i].type != CFG_KEY_STRLIST)
			continue;
		/* Only array tables hold lists; the cast drops the const the
		 * shared helper gives its callers. */
		arr = (char *)cfg_array_elements(c, keys[i].section, true, &n, &elem);
		for (size_t j = 0; arr && j < n; j++)
			cfg_strlist_free(&keys[i], arr + j * elem);
	}
	free(c->schema_routes);
	free(c->cache.tables);
	free(c->tenants);
	free(c->rewrite_rules);
	if (c->databases) /* a forced user's password */
		explicit_bzero(c->databases, c->n_databases * sizeof(*c->databases));
	free(c->databases);
	free(c->pool_users);
	cfg_plugins_free(c);
	if (c->auth.rules) /* options may hold an ldapbindpasswd */
		explicit_bzero(c->auth.rules, c->auth.n_rules * sizeof(*c->auth.rules));
	free(c->auth.rules);
	if (c->auth.users)
		explicit_bzero(c->auth.users, c->auth.n_users * sizeof(*c->auth.users));
	free(c->auth.users);
	free(c->nodes);
	free(c);
}

const struct cfg_user *cfg_find_user(const struct cfg *c, const char *name)
{
	/* Config users come first in the array, so they win over users_file. */
	for (size_t i = 0; i < c->auth.n_users; i++)
		if (strcmp(c->auth.users[i].name, name) == 0)
			return &c->auth.users[i];
	return NULL;
}

bool cfg_is_admin_user(const struct cfg *c, const char *user)
{
	const char *p = c->admin_users, *item;
	size_t len, ulen = strlen(user);

	while ((item = cfg_list_next(&p, &len)))
		if (len > 0 && len == ulen && memcmp(item, user, len) == 0)
			return true;
	return false;
}

bool cfg_is_stats_user(const struct cfg *c, const char *user)
{
	const char *p = c->stats_users, *item;
	size_t len, ulen = strlen(user);

	while ((item = cfg_list_next(&p, &len)))
		if (len > 0 && len == ulen && memcmp(item, user, len) == 0)
			return true;
	return false;
}

const struct cfg_database *cfg_database_find(const struct cfg *c, const char *name, bool *none)
{
	const struct cfg_database *star = NULL;

	*none = false;
	for (size_t i = 0; i < c->n_databases; i++) {
		if (strcmp(c->databases[i].name, name) == 0)
			return &c->databases[i];
		if (strcmp(c->databases[i].name, "*") == 0)
			star = &c->databases[i];
	}
	*none = c->n_databases > 0 && !star;
	return star;
}

const struct cfg_user_pool *cfg_pool_user_find(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_pool_users; i++)
		if (strcmp(c->pool_users[i].name, name) == 0)
			return &c->pool_users[i];
	return NULL;
}

/* "" (inherit) or a mode name the key table has checked. */
static bool mode_named(const char *s, enum cfg_pool_mode *m)
{
	if (!s[0])
		return false;
	*m = s[0] == 's' && s[1] == 'e' ? CFG_POOL_SESSION
	     : s[0] == 't'              ? CFG_POOL_TRANSACTION
	                                : CFG_POOL_STATEMENT;
	return true;
}

enum cfg_pool_mode cfg_pool_mode_for(const struct cfg *c, const struct cfg_database *db,
                                     const char *user)
{
	const struct cfg_user_pool *u;
	enum cfg_pool_mode m;

	if (db && mode_named(db->pool_mode, &m))
		return m;
	if (user && (u = cfg_pool_user_find(c, user)) && mode_named(u->pool_mode, &m))
		return m;
	return c->pool.mode;
}

const struct cfg_node *cfg_primary(const struct cfg *c)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].role == CFG_ROLE_PRIMARY)
			return &c->nodes[i];
	return NULL;
}

const struct cfg_node *cfg_node_by_name(const struct cfg *c, const char *name)
{
	int i = cfg_node_index(c, name);

	return i < 0 ? NULL : &c->nodes[i];
}

int cfg_node_index(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (strcmp(c->nodes[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* How well cache table entry e (as written in the config) fits a table the
 * statement names as schema.name (schema "" = unqualified): 2 written the
 * same way, 1 a looser match, 0 none. */
static int cache_table_fit(const char *e, const char *schema, const char *name)
{
	const char *dot = strchr(e, '.');
	size_t sl;

	if (!dot) /* "t" stands for t in any schema */
		return strcasecmp(e, name) == 0 ? (schema[0] ? 1 : 2) : 0;
	sl = (size_t)(dot - e);
	if (strcasecmp(dot + 1, name) != 0)
		return 0;
	/* An unqualified name in the statement may be this table. */
	if (!schema[0])
		return 1;
	return strlen(schema) == sl && strncasecmp(e, schema, sl) == 0 ? 2 : 0;
}

const struct cfg_cache_table *cfg_cache_table(const struct cfg *c, const char *schema,
                                              const char *name)
{
	const struct cfg_cache_table *best = NULL;
	int best_fit = 0;

	schema = schema ? schema : "";
	for (size_t i = 0; i < c->cache.n_tables && best_fit < 2; i++) {
		int fit = cache_table_fit(c->cache.tables[i].name, schema, name);
		if (fit > best_fit)
			best = &c->cache.tables[i], best_fit = fit;
	}
	return best;
}

/* "md5" and 32 lower-case hex digits: PgBouncer's md5 secret. */
static bool is_md5_secret(const char *s)
{
	if (strncmp(s, "md5", 3) != 0 || strlen(s) != 35)
		return false;
	for (size_t i = 3; i < 35; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

const char *cfg_user_plain_password(const struct cfg_user *u)
{
	if (u->server_password[0])
		return u->server_password;
	/* Same test as the data plane's server login (server.c is_plain). */
	if (u->password[0] && !is_md5_secret(u->password) &&
	    strncmp(u->password, "SCRAM-SHA-256$", 14) != 0)
		return u->password;
	return NULL;
}

const struct cfg_user *cfg_check_user(const struct cfg *c)
{
	if (c->routing.check_user[0])
		return cfg_find_user(c, c->routing.check_user);
	if (c->auth.auth_user[0])
		return cfg_find_user(c, c->auth.auth_user);
	for (size_t i = 0; i < c->auth.n_users; i++)
		if (cfg_user_plain_password(&c->auth.users[i]))
			return &c->auth.users[i];
	return NULL;
}

/* The name of value v of an enum key, from the key table. */
static const char *enum_name(const char *dotted, int v)
{
	const struct cfg_key *k = cfg_key_find(dotted);

	for (int i = 0; k && k->values[i]; i++)
		if (i == v)
			return k->values[i];
	return "?";
}

const char *cfg_pool_mode_str(enum cfg_pool_mode m)
{
	return enum_name("pool_mode.mode", (int)m);
}

const char *cfg_auth_method_str(enum cfg_auth_method m)
{
	return enum_name("auth.method", (int)m);
}
