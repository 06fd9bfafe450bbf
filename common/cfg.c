/*
 * Loads a TOML configuration into an immutable struct cfg: walks the TOML
 * tree against the key table (cfg_keys.c), applies defaults, lays the
 * overrides tree (helioctl config set) over the file's, then checks the
 * rules that span keys and reads the PgBouncer-style users_file.
 */
#include "common/cfg.h"
#include "common/cidr.h"
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

struct loader {
	const char *name;     /* file name used in messages */
	const char *ovr_name; /* the overrides' name in messages */
	const char *at;       /* name of the tree being walked: name or ovr_name */
	const char *dir;      /* folder relative paths resolve against; NULL = leave them */
	const char *base;     /* file name without folder; NULL = not from a file */
	const struct toml_value *root;
	const struct toml_value *ovr; /* overrides, NULL = none */
	struct cfg *c;
	struct cfg_error *err;
};

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

static int fail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct loader *ld, int line, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ld, ld->at, line, fmt, ap);
	va_end(ap);
	return rc;
}

/* The same about another file (users_file). */
static int fail_in(struct loader *ld, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_in(struct loader *ld, const char *file, int line, const char *fmt, ...)
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
static void key_path(char *buf, size_t cap, const char *section, long index, const char *name)
{
	if (index >= 0)
		snprintf(buf, cap, "%s[%ld].%s", section, index, name);
	else
		snprintf(buf, cap, "%s%s%s", section, section[0] ? "." : "", name);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

static const char *type_word(enum toml_type t)
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

/* The overrides' value of a key of a non-array section, or NULL. */
static const struct toml_value *ovr_value(const struct loader *ld, const char *section,
                                          const char *name)
{
	bool found;
	const struct toml_value *t;

	if (!ld->ovr)
		return NULL;
	t = section_value(ld->ovr, section, &found);
	return found && toml_type(t) == TOML_TABLE ? toml_table_get(t, name) : NULL;
}

static int fail_key(struct loader *ld, const char *section, long index, const char *name,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* For rules checked once every key has its value: points at the overrides
 * when the key's value came from there, else at the file. */
static int fail_key(struct loader *ld, const char *section, long index, const char *name,
                    const char *fmt, ...)
{
	const struct toml_value *v = index < 0 && name ? ovr_value(ld, section, name) : NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	if (v)
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
		return fail(ld, line, "key '%s': %lld is out of range (%lld..%lld)", key, n, k->min,
		            k->max);
	v = (int)n;
	memcpy(base + k->offset, &v, sizeof(v));
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
			return fail(ld, line, "key '%s': contains a NUL byte", key);
		if (len >= k->size)
			return fail(ld, line,
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
		return fail(ld, line, "key '%s': %s is not one of %s", key, shown, allowed);
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
		key_path(key, sizeof(key), section, index, k->name);
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
	char **items, item_key[160];

	if (n == 0 && k->min > 0)
		return fail(ld, line, "key '%s' must not be empty", key);
	if (n < (size_t)k->min || n > (size_t)k->max)
		return fail(ld, line, "key '%s': %zu strings, expected %lld..%lld", key, n, k->min,
		            k->max);
	cfg_strlist_free(k, base);
	if (!(items = calloc(n ? n : 1, sizeof(*items))))
		return fail(ld, line, "out of memory");
	cfg_strlist_put(k, base, items, 0);
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *e = toml_array_at(v, i);
		int at = toml_line(e) > 0 ? toml_line(e) : line;
		const char *s;

		snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i);
		if (toml_type(e) != TOML_STRING)
			return fail(ld, at, "key '%s': expected string, got %s", item_key,
			            type_word(toml_type(e)));
		s = toml_string(e, &len);
		if (memchr(s, '\0', len))
			return fail(ld, at, "key '%s': contains a NUL byte", item_key);
		if (len >= k->size)
			return fail(ld, at,
			            "key '%s': value is %zu bytes, longer than the %zu allowed",
			            item_key, len, k->size - 1);
		if (!(items[i] = strndup(s, len)))
			return fail(ld, at, "out of memory");
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
	int line = toml_line(v);
	const char *s;
	size_t len;
	char key[128];

	key_path(key, sizeof(key), k->section, index, k->name);
	if (toml_type(v) != want)
		return fail(ld, line, "key '%s': expected %s, got %s", key, type_word(want),
		            type_word(toml_type(v)));
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
		return store_text(ld, k, key, line, base, s, len);
	}
}

static int unknown(struct loader *ld, const char *section, long index, const char *name,
                   const struct toml_value *v)
{
	bool table =
	    toml_type(v) == TOML_TABLE || (toml_type(v) == TOML_ARRAY && toml_array_len(v) > 0 &&
	                                   toml_type(toml_array_at(v, 0)) == TOML_TABLE);
	const char *hint = cfg_key_suggest(section, name);
	char key[128];

	key_path(key, sizeof(key), section, index, name);
	if (hint)
		return fail(ld, toml_line(v), "unknown %s '%s' (did you mean '%s'?)",
		            table ? "table" : "key", key, hint);
	return fail(ld, toml_line(v), "unknown %s '%s'", table ? "table" : "key", key);
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
		if (k && index < 0 && ovr_value(ld, section, k->name))
			rc = 0; /* replaced by the overrides, which load_overrides() applies */
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
		key_path(key, sizeof(key), section, index, k->name);
		if ((t && toml_table_get(t, k->name)) ||
		    (index < 0 && ovr_value(ld, section, k->name)))
			return fail_key(ld, section, index, k->name, "key '%s' must not be empty",
			                key);
		return fail_key(ld, section, index, NULL, "key '%s' is required", key);
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
		if (toml_type(v) != TOML_TABLE)
			return fail(ld, toml_line(v), "key '%s': expected table, got %s", sec->name,
			            type_word(toml_type(v)));
		return load_table(ld, sec->name, -1, v, (char *)c);
	}
	if (toml_type(v) != TOML_ARRAY)
		return fail(ld, toml_line(v), "key '%s': expected array of tables ([[%s]]), got %s",
		            sec->name, sec->name, type_word(toml_type(v)));
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
	} else {
		elem = sizeof(*c->auth.users);
		arr = calloc(n, elem);
		c->auth.users = (struct cfg_user *)arr;
		c->auth.n_users = c->auth.n_config_users = arr ? n : 0;
	}
	if (!arr)
		return fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *t = toml_array_at(v, i);
		char *base = arr + i * elem;
		if (toml_type(t) != TOML_TABLE) {
			snprintf(key, sizeof(key), "%s[%zu]", sec->name, i);
			return fail(ld, toml_line(t), "key '%s': expected table, got %s", key,
			            type_word(toml_type(t)));
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
		key_path(buf, cap, sec, -1, toml_table_key(v, 0));
	else
		key_path(buf, cap, "", -1, sec);
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
			rc = fail(
			    ld, toml_line(v),
			    "key '%s' is in the array table [[%s]], which cannot be overridden",
			    key, sub->name);
		} else if (sub && toml_type(v) != TOML_TABLE) {
			rc = fail(ld, toml_line(v), "key '%s': expected table, got %s", sub->name,
			          type_word(toml_type(v)));
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
	int rc;

	if (!ld->ovr)
		return 0;
	ld->at = ld->ovr_name;
	rc = walk_overrides(ld, "", ld->ovr);
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
static int open_regular(const char *path, struct stat *st)
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
static int read_all(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	fd = open_regular(path, &st);
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

/* Copies the double-quoted field at *pp into out ("" inside the quotes is one
 * quote, as in PgBouncer's userlist.txt) and moves *pp past it. */
static int parse_field(const char **pp, const char *end, char *out, size_t cap, const char *what,
                       char *why, size_t why_cap)
{
	const char *p = *pp;
	size_t n = 0;

	if (p >= end || *p != '"') {
		snprintf(why, why_cap, "expected %s in double quotes", what);
		return -EINVAL;
	}
	for (p++;; p++) {
		if (p >= end) {
			snprintf(why, why_cap, "no closing quote after %s", what);
			return -EINVAL;
		}
		if (*p == '"') {
			if (p + 1 >= end || p[1] != '"')
				break;
			p++;
		}
		if (*p == '\0') {
			snprintf(why, why_cap, "NUL byte in %s", what);
			return -EINVAL;
		}
		if (n + 1 >= cap) {
			snprintf(why, why_cap, "%s is longer than %zu bytes", what, cap - 1);
			return -EINVAL;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* Parses one users_file line [p, end). Returns 0 with *u filled, 1 for a
 * blank or comment line, -EINVAL with why filled. */
static int parse_user_line(const char *p, const char *end, struct cfg_user *u, char *why,
                           size_t why_cap)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p == ';' || *p == '#')
		return 1;
	memset(u, 0, sizeof(*u));
	if (parse_field(&p, end, u->name, sizeof(u->name), "the user name", why, why_cap) < 0)
		return -EINVAL;
	if (!u->name[0]) {
		snprintf(why, why_cap, "empty user name");
		return -EINVAL;
	}
	if (p == end || (*p != ' ' && *p != '\t')) {
		snprintf(why, why_cap, "expected a space, then the password in double quotes");
		return -EINVAL;
	}
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	/* Like PgBouncer, whatever follows the password is ignored. */
	return parse_field(&p, end, u->password, sizeof(u->password), "the password", why, why_cap);
}

struct name_line {
	const char *name;
	int line;
	size_t idx; /* into auth.users */
};

static int cmp_name_line(const void *a, const void *b)
{
	const struct name_line *x = a, *y = b;
	int d = strcmp(x->name, y->name);

	return d ? d : x->line - y->line;
}

static int cmp_name_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct name_line *)elem)->name);
}

/* Drops the users_file entries whose name is in [[auth.users]]: those win in
 * cfg_find_user(), so the entries could never be used, and without them
 * every name in auth.users is unique (cfg_to_toml can inline them all). v is
 * the file's users sorted by name. */
static void drop_shadowed(struct cfg *c, struct name_line *v, size_t n)
{
	size_t w = c->auth.n_config_users;

	/* Mark first (line 0), so the names bsearch() compares stay intact. */
	for (size_t i = 0; i < c->auth.n_config_users; i++) {
		struct name_line *hit =
		    bsearch(c->auth.users[i].name, v, n, sizeof(*v), cmp_name_key);
		if (hit)
			hit->line = 0;
	}
	/* An empty name marks a dropped entry: users_file names are never empty. */
	for (size_t i = 0; i < n; i++)
		if (v[i].line == 0)
			c->auth.users[v[i].idx].name[0] = '\0';
	for (size_t r = w; r < c->auth.n_users; r++) {
		if (!c->auth.users[r].name[0])
			continue;
		if (r != w)
			c->auth.users[w] = c->auth.users[r];
		w++;
	}
	explicit_bzero(&c->auth.users[w], (c->auth.n_users - w) * sizeof(*c->auth.users));
	c->auth.n_users = w;
}

/* Users listed twice in users_file are refused: which line wins is a guess.
 * Then drops the entries [[auth.users]] shadows. */
static int check_file_users(struct loader *ld, const int *lines)
{
	struct cfg *c = ld->c;
	size_t first = c->auth.n_config_users, n = c->auth.n_users - first;
	struct name_line *v = calloc(n ? n : 1, sizeof(*v));
	char shown[96];
	struct cfg_buf b;
	int rc = 0;

	if (!v)
		return fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = (struct name_line){c->auth.users[first + i].name, lines[i], first + i};
	qsort(v, n, sizeof(*v), cmp_name_line);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1].name, v[i].name) != 0)
			continue;
		cfg_buf_init(&b, shown, sizeof(shown));
		cfg_buf_quote(&b, v[i].name, strlen(v[i].name));
		rc = fail_in(ld, c->auth.users_file, v[i].line, "duplicate user %s (also line %d)",
		             shown, v[i - 1].line);
		break;
	}
	if (rc == 0)
		drop_shadowed(c, v, n);
	free(v);
	return rc;
}

/* Reads auth.users_file and appends its users after [[auth.users]]. */
static int load_users_file(struct loader *ld)
{
	struct cfg *c = ld->c;
	const char *path = c->auth.users_file, *p, *end;
	struct cfg_user *users = NULL;
	char *data = NULL, why[96];
	int *lines = NULL, lineno = 0, rc;
	size_t len = 0, max = c->auth.n_users;

	rc = read_all(path, TOML_MAX_INPUT, &data, &len);
	if (rc) {
		rc = fail_key(ld, "auth", -1, "users_file",
		              "key 'auth.users_file': cannot read \"%s\": %s", path, strerror(-rc));
		goto out;
	}
	/* Size the array once: every line may hold a user. Moving the secrets
	 * ourselves (not realloc) lets us wipe the old copy. */
	for (p = data, end = data + len; p < end; p++)
		max += *p == '\n';
	max++;
	users = calloc(max, sizeof(*users));
	lines = calloc(max, sizeof(*lines));
	if (!users || !lines) {
		rc = fail(ld, 0, "out of memory reading \"%s\"", path);
		goto out;
	}
	if (c->auth.n_users) {
		memcpy(users, c->auth.users, c->auth.n_users * sizeof(*users));
		explicit_bzero(c->auth.users, c->auth.n_users * sizeof(*users));
	}
	free(c->auth.users);
	c->auth.users = users;
	users = NULL;
	for (p = data, end = data + len; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *next;
		eol = eol ? eol : end;
		next = eol < end ? eol + 1 : end;
		if (eol > p && eol[-1] == '\r')
			eol--;
		lineno++;
		rc = parse_user_line(p, eol, &c->auth.users[c->auth.n_users], why, sizeof(why));
		if (rc < 0) {
			/* The half-parsed entry is past n_users, where cfg_free won't wipe. */
			explicit_bzero(&c->auth.users[c->auth.n_users], sizeof(*c->auth.users));
			rc = fail_in(ld, path, lineno,
			             "malformed line, expected \"user\" \"password\": %s", why);
			goto out;
		}
		if (rc == 0)
			lines[c->auth.n_users++ - c->auth.n_config_users] = lineno;
		p = next;
	}
	rc = check_file_users(ld, lines);
out:
	free(users);
	free(lines);
	if (data)
		explicit_bzero(data, len);
	free(data);
	return rc;
}

/* Makes relative CFG_KEY_PATH values relative to the config file's folder,
 * so the process's working directory does not matter. */
static int resolve_paths(struct loader *ld)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char joined[2 * CFG_PATH_MAX], key[128];

	if (!ld->dir)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		char *field = (char *)ld->c + k->offset;
		size_t len;
		/* PATH keys of array elements are not supported (there are none). */
		if (!(k->flags & CFG_KEY_PATH) || cfg_section_find(k->section)->is_array ||
		    field[0] == '\0' || field[0] == '/')
			continue;
		len = (size_t)snprintf(joined, sizeof(joined), "%s%s%s", ld->dir,
		                       ld->dir[strlen(ld->dir) - 1] == '/' ? "" : "/", field);
		if (len >= k->size) {
			key_path(key, sizeof(key), k->section, -1, k->name);
			return fail_key(
			    ld, k->section, -1, k->name,
			    "key '%s': path is longer than %zu bytes once resolved against %s", key,
			    k->size - 1, ld->dir);
		}
		memcpy(field, joined, len + 1);
	}
	return 0;
}

/* Names in array section (nodes, auth.users) must be unique. */
static int check_unique(struct loader *ld, const char *section, const char *arr, size_t n,
                        size_t elem, const char *what)
{
	size_t off = cfg_key_in(section, "name", strlen("name"))->offset;
	char shown[96];
	struct cfg_buf b;

	for (size_t j = 1; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			const char *a = arr + i * elem + off, *b2 = arr + j * elem + off;
			if (strcmp(a, b2) != 0)
				continue;
			cfg_buf_init(&b, shown, sizeof(shown));
			cfg_buf_quote(&b, b2, strlen(b2));
			return fail_key(ld, section, (long)j, "name",
			                "key '%s[%zu].name': duplicate %s name %s (also %s[%zu])",
			                section, j, what, shown, section, i);
		}
	}
	return 0;
}

static int check_address(struct loader *ld, const char *name, const char *addr)
{
	char host[CFG_HOST_MAX];
	uint16_t port;

	if (cfg_parse_address(addr, host, sizeof(host), &port) == 0)
		return 0;
	return fail_key(ld, "", -1, name,
	                "key '%s': \"%s\" is not host:port (IPv6 as \"[::1]:5433\")", name, addr);
}

/* A TLS file that the mode needs: set, and a readable regular file. */
static int check_tls_file(struct loader *ld, const char *name, const char *path,
                          const char *needed_by, const char *mode)
{
	struct stat st;
	int fd;

	if (!path[0])
		return fail_key(ld, "tls", -1, needed_by,
		                "key 'tls.%s' is required when tls.%s = \"%s\"", name, needed_by,
		                mode);
	fd = open_regular(path, &st);
	if (fd < 0)
		return fail_key(ld, "tls", -1, name, "key 'tls.%s': cannot read \"%s\": %s", name,
		                path, strerror(-fd));
	close(fd);
	return 0;
}

static int validate_tls(struct loader *ld)
{
	struct cfg *c = ld->c;
	const char *cmode = cfg_key_find("tls.client_mode")->values[c->tls.client_mode];
	const char *smode = cfg_key_find("tls.server_mode")->values[c->tls.server_mode];
	int rc = 0;

	if (c->tls.client_mode != CFG_CTLS_DISABLE) {
		rc = check_tls_file(ld, "cert_file", c->tls.cert_file, "client_mode", cmode);
		if (rc == 0)
			rc = check_tls_file(ld, "key_file", c->tls.key_file, "client_mode", cmode);
	}
	if (rc == 0 && (c->tls.server_mode == CFG_STLS_VERIFY_FULL ||
	                (c->tls.server_mode != CFG_STLS_DISABLE && c->tls.ca_file[0])))
		rc = check_tls_file(ld, "ca_file", c->tls.ca_file, "server_mode", smode);
	return rc;
}

/* An nng URL in a form nng can dial and listen on. */
static int check_url(struct loader *ld, const char *name, const char *url)
{
	static const char *const schemes[] = {"ipc://", "tcp://", "inproc://"};
	char shown[160];
	struct cfg_buf b;

	if (!url[0])
		return 0;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 &&
		    url[strlen(schemes[i])] != '\0')
			return 0;
	cfg_buf_init(&b, shown, sizeof(shown));
	cfg_buf_quote(&b, url, strlen(url));
	return fail_key(ld, "", -1, name,
	                "key '%s': %s is not an nng URL (ipc:///path, tcp://host:port or "
	                "inproc://name)",
	                name, shown);
}

const char *cfg_list_next(const char **p, size_t *len)
{
	const char *s = *p, *end;

	if (!*s)
		return NULL;
	end = s + strcspn(s, ",");
	*p = *end ? end + 1 : end;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - s);
	return s;
}

/* [xdp]: an interface when enabled, valid prefixes and ports. */
static int check_xdp(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char why[160];
	const char *p = c->xdp.deny, *item;
	size_t len;

	if (c->xdp.enabled && !c->xdp.interface[0])
		return fail_key(ld, "xdp", -1, "interface",
		                "key 'xdp.interface': required when xdp.enabled is true");
	if (strlen(c->xdp.interface) > 15) /* IFNAMSIZ - 1 */
		return fail_key(
		    ld, "xdp", -1, "interface",
		    "key 'xdp.interface': \"%s\" is longer than an interface name can be "
		    "(15 bytes)",
		    c->xdp.interface);
	while ((item = cfg_list_next(&p, &len))) {
		struct cidr cd;
		if (len && cidr_parse(item, len, &cd, why, sizeof(why)) < 0)
			return fail_key(ld, "xdp", -1, "deny", "key 'xdp.deny': %s", why);
	}
	uint16_t ports[64];
	if (cidr_parse_ports(c->xdp.ports, ports, 64, why, sizeof(why)) < 0)
		return fail_key(ld, "xdp", -1, "ports", "key 'xdp.ports': %s", why);
	return 0;
}

/* Every admin_users entry must be a user the proxy can authenticate. */
static int check_admin_users(struct loader *ld)
{
	const char *p = ld->c->admin_users, *item;
	char name[CFG_NAME_MAX], shown[96];
	struct cfg_buf b;
	size_t len;

	while ((item = cfg_list_next(&p, &len))) {
		if (len == 0)
			continue; /* "alice, bob," */
		if (len < sizeof(name)) {
			memcpy(name, item, len);
			name[len] = '\0';
			if (cfg_find_user(ld->c, name))
				continue;
		}
		cfg_buf_init(&b, shown, sizeof(shown));
		cfg_buf_quote(&b, item, len);
		return fail_key(ld, "", -1, "admin_users",
		                "key 'admin_users': %s is not a user from [[auth.users]] or "
		                "auth.users_file",
		                shown);
	}
	return 0;
}

/* One part of a heartbeat table name: an unquoted lower-case identifier, so
 * the control plane's SQL needs no quoting and names the table PostgreSQL
 * would fold it to. */
static bool heartbeat_ident(const char *s, size_t len)
{
	if (len == 0 || len > 63 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* One part of a schema route's table name: letters, digits, _ and $. */
static bool route_ident(const char *s, size_t len)
{
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '$'))
			return false;
	return true;
}

/* "name" or "schema.name", each part accepted by ok (which refuses dots). */
static bool qualified_name(const char *s, bool (*ok)(const char *, size_t))
{
	const char *dot = strchr(s, '.');

	if (!dot)
		return ok(s, strlen(s));
	return ok(s, (size_t)(dot - s)) && ok(dot + 1, strlen(dot + 1));
}

/* s quoted and escaped for a message (one line, at most cap bytes). */
static const char *quoted(char *buf, size_t cap, const char *s)
{
	struct cfg_buf b;

	cfg_buf_init(&b, buf, cap);
	cfg_buf_quote(&b, s, strlen(s));
	return buf;
}

/* Every target names primary, replica (standby) or a node; every table
 * name has a form the router can match. */
static int check_schema_routes(struct loader *ld)
{
	struct cfg *c = ld->c;
	char shown[CFG_QNAME_MAX * 6 + 8], names[256];
	struct cfg_buf b;

	for (size_t i = 0; i < c->n_schema_routes; i++) {
		struct cfg_schema_route *r = &c->schema_routes[i];
		for (size_t j = 0; j < r->n_tables; j++) {
			if (qualified_name(r->tables[j], route_ident))
				continue;
			return fail_key(ld, "schema_routes", (long)i, "tables",
			                "key 'schema_routes[%zu].tables': %s is not table or "
			                "schema.table (letters, digits, _ and $, at most 63 bytes "
			                "each)",
			                i, quoted(shown, sizeof(shown), r->tables[j]));
		}
		/* One spelling for the router: standby is a synonym. */
		if (strcmp(r->target, "standby") == 0)
			snprintf(r->target, sizeof(r->target), "replica");
		if (strcmp(r->target, "primary") == 0 || strcmp(r->target, "replica") == 0 ||
		    cfg_node_by_name(c, r->target))
			continue;
		cfg_buf_init(&b, names, sizeof(names));
		for (size_t n = 0; n < c->n_nodes && !b.full; n++)
			cfg_buf_printf(&b, "%s%s", n ? ", " : "", c->nodes[n].name);
		if (b.full && b.len >= 3)
			memcpy(names + b.len - 3, "...", 3);
		return fail_key(ld, "schema_routes", (long)i, "target",
		                "key 'schema_routes[%zu].target': %s is not primary, replica, "
		                "standby or a node name (%s)",
		                i, quoted(shown, sizeof(shown), r->target), names);
	}
	return 0;
}

/* Tenant ids are unique and schema prefixes are plain identifiers. */
static int check_tenants(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char shown[CFG_NAME_MAX * 6 + 8];

	for (size_t j = 0; j < c->n_tenants; j++) {
		const struct cfg_tenant *t = &c->tenants[j];
		for (size_t i = 0; i < j; i++)
			if (strcmp(c->tenants[i].id, t->id) == 0)
				return fail_key(
				    ld, "tenants", (long)j, "id",
				    "key 'tenants[%zu].id': duplicate tenant id %s (also "
				    "tenants[%zu])",
				    j, quoted(shown, sizeof(shown), t->id), i);
		const char *p = t->schema_prefix;
		bool ok = !p[0] || !(p[0] >= '0' && p[0] <= '9');
		for (; *p && ok; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			return fail_key(
			    ld, "tenants", (long)j, "schema_prefix",
			    "key 'tenants[%zu].schema_prefix': %s is not a schema name of "
			    "lower-case letters, digits and _",
			    j, quoted(shown, sizeof(shown), t->schema_prefix));
	}
	return 0;
}

/* Every [[cache.tables]] name has a form the cache can match, and names are
 * unique ignoring case: two entries for one table would leave which
 * settings apply to chance. */
static int check_cache_tables(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char shown[CFG_QNAME_MAX * 6 + 8];

	for (size_t j = 0; j < c->cache.n_tables; j++) {
		const char *name = c->cache.tables[j].name;
		if (!qualified_name(name, route_ident))
			return fail_key(ld, "cache.tables", (long)j, "name",
			                "key 'cache.tables[%zu].name': %s is not table or "
			                "schema.table (letters, digits, _ and $, at most 63 bytes "
			                "each)",
			                j, quoted(shown, sizeof(shown), name));
		for (size_t i = 0; i < j; i++)
			if (strcasecmp(c->cache.tables[i].name, name) == 0)
				return fail_key(
				    ld, "cache.tables", (long)j, "name",
				    "key 'cache.tables[%zu].name': duplicate table "
				    "name %s (also cache.tables[%zu], names are compared "
				    "case-insensitively)",
				    j, quoted(shown, sizeof(shown), name), i);
	}
	return 0;
}

/* check_user logs in to the servers itself, so it needs a password it can
 * send: plaintext or a server_password. */
static int check_check_user(struct loader *ld)
{
	const struct cfg *c = ld->c;
	const struct cfg_user *u;
	char shown[CFG_NAME_MAX * 6 + 8];

	if (!c->routing.check_user[0])
		return 0;
	quoted(shown, sizeof(shown), c->routing.check_user);
	if (!(u = cfg_find_user(c, c->routing.check_user)))
		return fail_key(ld, "routing", -1, "check_user",
		                "key 'routing.check_user': %s is not a user from [[auth.users]] or "
		                "auth.users_file",
		                shown);
	if (!cfg_user_plain_password(u))
		return fail_key(ld, "routing", -1, "check_user",
		                "key 'routing.check_user': user %s has no plaintext password or "
		                "server_password to log in to the servers with",
		                shown);
	return 0;
}

/* Rules of single keys that the key table cannot express. */
static int validate_formats(struct loader *ld)
{
	struct cfg *c = ld->c;
	int rc;

	if ((rc = resolve_paths(ld)) ||
	    (rc = check_address(ld, "listen_address", c->listen_address)) ||
	    (c->admin_address[0] && (rc = check_address(ld, "admin_address", c->admin_address))) ||
	    (c->control_admin_address[0] &&
	     (rc = check_address(ld, "control_admin_address", c->control_admin_address))) ||
	    (rc = check_url(ld, "control_address", c->control_address)) ||
	    (rc = check_url(ld, "control_socket", c->control_socket)))
		return rc;
	if (!qualified_name(c->routing.heartbeat_table, heartbeat_ident)) {
		char shown[CFG_QNAME_MAX * 6 + 8];
		return fail_key(ld, "routing", -1, "heartbeat_table",
		                "key 'routing.heartbeat_table': %s is not table or schema.table "
		                "(lower-case letters, digits and _, not starting with a digit, at "
		                "most 63 bytes each)",
		                quoted(shown, sizeof(shown), c->routing.heartbeat_table));
	}
	return 0;
}

/* Rules that span keys; runs once every key has its value. */
static int validate(struct loader *ld)
{
	struct cfg *c = ld->c;
	int rc;

	if ((rc = validate_formats(ld)))
		return rc;
	if (c->pool.min_idle > c->pool.max_pool_size)
		return fail_key(
		    ld, "pool_mode", -1, "min_idle",
		    "key 'pool_mode.min_idle': %d is greater than pool_mode.max_pool_size (%d)",
		    c->pool.min_idle, c->pool.max_pool_size);
	if (c->n_nodes == 0)
		return fail(ld, 0, "no [[nodes]] table: at least one node is required");
	rc = check_unique(ld, "nodes", (const char *)c->nodes, c->n_nodes, sizeof(*c->nodes),
	                  "node");
	if (rc == 0)
		rc = check_unique(ld, "auth.users", (const char *)c->auth.users,
		                  c->auth.n_config_users, sizeof(*c->auth.users), "user");
	if (rc == 0 && c->auth.users_file[0])
		rc = load_users_file(ld);
	if (rc == 0 && c->auth.auth_user[0] && !cfg_find_user(c, c->auth.auth_user))
		rc = fail_key(ld, "auth", -1, "auth_user",
		              "key 'auth.auth_user': \"%s\" is not a user from [[auth.users]] or "
		              "auth.users_file",
		              c->auth.auth_user);
	if (rc == 0)
		rc = check_admin_users(ld);
	if (rc == 0)
		rc = check_xdp(ld);
	if (rc == 0)
		rc = check_check_user(ld);
	if (rc == 0)
		rc = check_schema_routes(ld);
	if (rc == 0)
		rc = check_cache_tables(ld);
	if (rc == 0)
		rc = check_tenants(ld);
	if (rc == 0)
		rc = validate_tls(ld);
	return rc;
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
	return NULL;
}

/* A file the proxy writes lives next to the config file unless its key
 * (dotted, a non-array PATH string) says otherwise: an empty value becomes
 * "<config file name><suffix>", and resolve_paths() then puts the file's
 * folder in front. From memory there is no file to put it next to, so the
 * value stays empty. */
static int default_beside(struct loader *ld, const char *dotted, const char *suffix)
{
	const struct cfg_key *k = cfg_key_find(dotted);
	char *field = (char *)ld->c + k->offset;
	int n;

	if (!ld->base || field[0])
		return 0;
	n = snprintf(field, k->size, "%s%s", ld->base, suffix);
	if (n < 0 || (size_t)n >= k->size) {
		field[0] = '\0';
		return fail(ld, 0, "key '%s': default \"%s%s\" is longer than %zu bytes", dotted,
		            ld->base, suffix, k->size - 1);
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
		rc = validate(ld);
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
	struct toml_value *root, *ovr = NULL;
	int rc;

	err->msg[0] = '\0';
	root = parse(name, text, len, err);
	if (!root)
		return NULL;
	if (ovr_text && !(ovr = parse(ld.ovr_name, ovr_text, strlen(ovr_text), err))) {
		toml_free(root);
		return NULL;
	}
	ld.root = root;
	ld.ovr = ovr;
	ld.c = calloc(1, sizeof(*ld.c));
	rc = ld.c ? decode(&ld) : fail(&ld, 0, "out of memory");
	toml_free(root);
	toml_free(ovr);
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
	rc = read_all(path, TOML_MAX_INPUT, &data, &len);
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
