/*
 * The config at run time, for the control plane: comparing two loaded
 * configs key by key, keeping restart-only keys when a new snapshot
 * arrives, writing a whole config back as TOML (the snapshot sent to data
 * planes) and checking one "helioctl config set KEY VALUE".
 */
#include "common/cfg.h"
#include "common/cfg_keys.h"
#include "common/rundir.h"
#include "common/toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_array_key(const struct cfg_key *k)
{
	return cfg_section_find(k->section)->is_array;
}

/* The elements the keys of section live in: the array of an array table
 * ([[auth.users]] with the users_file entries), or c itself for the others. */
static const char *elements(const struct cfg *c, const char *section, size_t *n, size_t *elem)
{
	if (cfg_section_find(section)->is_array)
		return cfg_array_elements(c, section, true, n, elem);
	*n = 1;
	*elem = 0;
	return (const char *)c;
}

/* Two string lists hold the same strings in the same order. */
static bool strlist_equal(const struct cfg_key *k, const char *x, const char *y)
{
	size_t nx, ny;
	char **a = cfg_strlist_get(k, x, &nx), **b = cfg_strlist_get(k, y, &ny);

	if (nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* k's field in two structs; strings compare up to their NUL, not the
 * bytes after it, which may differ. */
static bool field_equal(const struct cfg_key *k, const char *x, const char *y)
{
	if (k->type == CFG_KEY_STRLIST)
		return strlist_equal(k, x, y);
	x += k->offset;
	y += k->offset;
	switch (k->type) {
	case CFG_KEY_BOOL:
		return *(const bool *)x == *(const bool *)y;
	case CFG_KEY_INT:
		return memcmp(x, y, sizeof(int)) == 0;
	case CFG_KEY_ENUM:
		if (!(k->flags & CFG_KEY_TEXT))
			return memcmp(x, y, sizeof(int)) == 0;
		return strcmp(x, y) == 0;
	default:
		return strcmp(x, y) == 0;
	}
}

bool cfg_key_equal(const struct cfg *a, const struct cfg *b, const struct cfg_key *k)
{
	size_t na, nb, elem;
	const char *xa = elements(a, k->section, &na, &elem);
	const char *xb = elements(b, k->section, &nb, &elem);

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!field_equal(k, xa + i * elem, xb + i * elem))
			return false;
	return true;
}

size_t cfg_keep_restart_keys(const struct cfg *old, struct cfg *nw, const char **names, size_t max)
{
	size_t n, differed = 0;
	const struct cfg_key *keys = cfg_key_table(&n);

	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		/* No array key needs a restart (a unit test holds the table to it):
		 * copying one element by element would not be meaningful. */
		if (!(k->flags & CFG_KEY_RESTART) || is_array_key(k) || cfg_key_equal(old, nw, k))
			continue;
		memcpy((char *)nw + k->offset, (const char *)old + k->offset, k->size);
		if (differed < max)
			names[differed] = cfg_key_dotted(k);
		differed++;
	}
	return differed;
}

void cfg_control_url(const struct cfg *c, char *buf, size_t cap)
{
	char host[CFG_HOST_MAX], dir[CFG_PATH_MAX];
	uint16_t port;

	if (c->control_address[0])
		snprintf(buf, cap, "%s", c->control_address);
	else if (c->control_socket[0])
		snprintf(buf, cap, "%s", c->control_socket);
	else if (rundir_current(c->state_dir, dir, sizeof(dir)) < 0) /* too long for a socket */
		snprintf(buf, cap, "ipc://%.*s", RUNDIR_DIR_MAX + 1, dir);
	else if (cfg_parse_address(c->listen_address, host, sizeof(host), &port) == 0)
		snprintf(buf, cap, "ipc://%s/" RUNDIR_SOCKET_FMT, dir, (unsigned)port);
	else /* not from the loader, which checks listen_address */
		snprintf(buf, cap, "ipc://%s/heliosproxy.ctl", dir);
}

/* ---- cfg_to_toml ---- */

/* A growing text. Holds passwords, so old copies are wiped, not just freed. */
struct sink {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sink_put(struct sink *s, const char *text, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *p;
		while (cap < s->len + n + 1)
			cap *= 2;
		if (!(p = malloc(cap))) {
			s->oom = true;
			return;
		}
		if (s->p) {
			memcpy(p, s->p, s->len);
			explicit_bzero(s->p, s->len);
			free(s->p);
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, text, n);
	s->len += n;
	s->p[s->len] = '\0';
}

/* Room for the longest key line: every byte of the biggest field escaped
 * as \u00XX, plus name, quotes and " = ". */
#define KEY_LINE_MAX (6 * CFG_LIST_MAX + 128)

/* Writes "name = [...]\n" for string list k a string at a time: a long list
 * would not fit a line buffer. */
static void put_strlist(struct sink *s, const struct cfg_key *k, const char *base)
{
	char item[6 * CFG_QNAME_MAX + 8];
	struct cfg_buf b;
	size_t n;
	char **items = cfg_strlist_get(k, base, &n);

	sink_put(s, k->name, strlen(k->name));
	sink_put(s, " = [", 4);
	for (size_t i = 0; i < n; i++) {
		cfg_buf_init(&b, item, sizeof(item));
		b.env_escape = true;
		cfg_buf_printf(&b, "%s", i ? ", " : "");
		cfg_buf_quote(&b, items[i], strlen(items[i]));
		if (b.full) /* strings longer than CFG_QNAME_MAX: refuse rather than cut */
			s->oom = true;
		sink_put(s, item, b.len);
	}
	sink_put(s, "]\n", 2);
}

/* Writes "name = value\n" for every key of section with base the struct
 * holding them. users_file is written empty: its users are inlined. */
static void put_keys(struct sink *s, const char *section, const char *base)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	const struct cfg_key *users_file = cfg_key_find("auth.users_file");
	char line[KEY_LINE_MAX];
	struct cfg_buf b;

	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		if (strcmp(k->section, section) != 0)
			continue;
		if (k->type == CFG_KEY_STRLIST) {
			put_strlist(s, k, base);
			continue;
		}
		cfg_buf_init(&b, line, sizeof(line));
		b.env_escape = true; /* read back by cfg_load_string: no second expansion */
		cfg_buf_printf(&b, "%s = ", k->name);
		if (k == users_file)
			cfg_buf_printf(&b, "\"\"");
		else
			cfg_buf_value(&b, k, base, false);
		cfg_buf_printf(&b, "\n");
		if (b.full) /* cannot happen with KEY_LINE_MAX; refuse rather than cut */
			s->oom = true;
		sink_put(s, line, b.len);
	}
	explicit_bzero(line, sizeof(line));
}

/* [[plugins]]: their own fields (cfg_plugins.c); config as a JSON string,
 * which the loader takes as well as a table. */
static void put_plugins(struct sink *s, const struct cfg *c)
{
	for (size_t i = 0; i < c->n_plugins; i++) {
		const struct cfg_plugin *p = &c->plugins[i];
		size_t cap = strlen(p->path) * 6 + strlen(p->config_json) * 6 + 512;
		char *text = malloc(cap);
		struct cfg_buf b;

		if (!text) {
			s->oom = true;
			return;
		}
		cfg_buf_init(&b, text, cap);
		/* plugin values are not expanded (cfg_plugins.c): written as they are */
		cfg_buf_printf(&b, "\n[[plugins]]\nname = ");
		cfg_buf_quote(&b, p->name, strlen(p->name));
		cfg_buf_printf(&b, "\npath = ");
		cfg_buf_quote(&b, p->path, strlen(p->path));
		cfg_buf_printf(&b, "\nconfig = ");
		cfg_buf_quote(&b, p->config_json, strlen(p->config_json));
		cfg_buf_printf(&b,
		               "\non_failure = \"%s\"\ntimeout_ms = %u\nfuel = %llu\nmemory_mb = "
		               "%u\nmax_failures = %u\n",
		               p->deny_on_failure ? "deny" : "continue", p->timeout_ms,
		               (unsigned long long)p->fuel, p->memory_mb, p->max_failures);
		if (b.full)
			s->oom = true;
		sink_put(s, text, b.len);
		free(text);
	}
}

static void put_section(struct sink *s, const struct cfg *c, const struct cfg_section *sec)
{
	if (!strcmp(sec->name, "plugins")) {
		put_plugins(s, c);
		return;
	}
	char header[64];
	size_t n, elem;
	const char *arr;
	int len;

	if (!sec->is_array) {
		if (sec->name[0]) {
			len = snprintf(header, sizeof(header), "\n[%s]\n", sec->name);
			sink_put(s, header, (size_t)len);
		}
		put_keys(s, sec->name, (const char *)c);
		return;
	}
	arr = elements(c, sec->name, &n, &elem);
	len = snprintf(header, sizeof(header), "\n[[%s]]\n", sec->name);
	for (size_t j = 0; j < n; j++) {
		sink_put(s, header, (size_t)len);
		put_keys(s, sec->name, arr + j * elem);
	}
}

char *cfg_to_toml(const struct cfg *c)
{
	struct sink s = {0};
	size_t n;
	const struct cfg_section *secs = cfg_sections(&n);

	/* Sections in table order: the top level comes first, as TOML needs. */
	for (size_t i = 0; i < n; i++)
		put_section(&s, c, &secs[i]);
	if (s.oom || !s.p) {
		if (s.p)
			explicit_bzero(s.p, s.len);
		free(s.p);
		return NULL;
	}
	return s.p;
}

/* ---- cfg_override_line ---- */

static int set_err(struct cfg_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int set_err(struct cfg_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* s (len bytes) for a message: at most 64 bytes, control characters as '?'
 * so the message stays one line. */
static const char *shown(char *buf, size_t cap, const char *s, size_t len)
{
	size_t n = len < 64 ? len : 64;

	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	buf[n] = '\0';
	if (len > n && n >= 3)
		memcpy(buf + n - 3, "...", 3);
	return buf;
}

/* value as a decimal integer within k's bounds, into *out. */
static int parse_int(const struct cfg_key *k, const char *dotted, const char *value, long long *out,
                     struct cfg_error *err)
{
	const char *digits = value + (value[0] == '-' || value[0] == '+');
	char show[80];
	char *end;

	if (!*digits || strspn(digits, "0123456789") != strlen(digits))
		return set_err(err, "key '%s': '%s' is not a decimal integer", dotted,
		               shown(show, sizeof(show), value, strlen(value)));
	errno = 0;
	*out = strtoll(value, &end, 10);
	if (errno == ERANGE || *out < k->min || *out > k->max)
		return set_err(err, "key '%s': %s is out of range (%lld..%lld)", dotted,
		               shown(show, sizeof(show), value, strlen(value)), k->min, k->max);
	return 0;
}

/* The string a value stands for: a TOML string ("x", 'x', """x""") is
 * decoded, anything else is taken as it is. *tree owns the decoded bytes
 * (NULL when value was bare); the caller frees it. */
static int decode_text(const char *dotted, const char *value, struct toml_value **tree,
                       const char **s, size_t *len, struct cfg_error *err)
{
	struct toml_error te = {0};
	const struct toml_value *v;
	size_t n = strlen(value);
	char *text, show[80];

	*tree = NULL;
	if (value[0] != '"' && value[0] != '\'') {
		*s = value;
		*len = n;
		return 0;
	}
	if (!(text = malloc(n + 5)))
		return set_err(err, "key '%s': out of memory", dotted);
	memcpy(text, "v = ", 4);
	memcpy(text + 4, value, n + 1);
	*tree = toml_parse(text, n + 4, &te);
	free(text);
	/* One key only: a value must not smuggle in a second line. */
	if (!*tree || toml_table_len(*tree) != 1 ||
	    toml_type(v = toml_table_value(*tree, 0)) != TOML_STRING) {
		toml_free(*tree);
		*tree = NULL;
		return set_err(err, "key '%s': %s is not a valid TOML string", dotted,
		               shown(show, sizeof(show), value, n));
	}
	*s = toml_string(v, len);
	return 0;
}

/* Appends the string or enum value s (len bytes) to b after k's checks. */
static int put_text(struct cfg_buf *b, const struct cfg_key *k, const char *dotted, const char *s,
                    size_t len, struct cfg_error *err)
{
	char show[80], allowed[256];
	struct cfg_buf ab;

	if (memchr(s, '\0', len))
		return set_err(err, "key '%s': contains a NUL byte", dotted);
	if (k->type == CFG_KEY_STRING && len >= k->size)
		return set_err(err, "key '%s': value is %zu bytes, longer than the %zu allowed",
		               dotted, len, k->size - 1);
	if (k->type == CFG_KEY_ENUM && cfg_enum_index(k, s, len) < 0) {
		cfg_buf_init(&ab, allowed, sizeof(allowed));
		for (int i = 0; k->values[i]; i++)
			cfg_buf_printf(&ab, "%s%s", i ? ", " : "", k->values[i]);
		return set_err(err, "key '%s': '%s' is not one of %s", dotted,
		               shown(show, sizeof(show), s, len), allowed);
	}
	cfg_buf_quote(b, s, len);
	return 0;
}

/* Appends value to b in k's canonical TOML form, after k's checks. */
static int put_value(struct cfg_buf *b, const struct cfg_key *k, const char *dotted,
                     const char *value, struct cfg_error *err)
{
	struct toml_value *tree = NULL;
	const char *s = "";
	char show[80];
	long long v = 0;
	size_t len = 0;
	int rc;

	switch (k->type) {
	case CFG_KEY_INT:
		if (parse_int(k, dotted, value, &v, err))
			return -1;
		cfg_buf_printf(b, "%lld", v);
		return 0;
	case CFG_KEY_BOOL:
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
			return set_err(err, "key '%s': '%s' is not a boolean (true or false)",
			               dotted, shown(show, sizeof(show), value, strlen(value)));
		cfg_buf_printf(b, "%s", value);
		return 0;
	default:
		if (decode_text(dotted, value, &tree, &s, &len, err))
			return -1;
		rc = put_text(b, k, dotted, s, len, err);
		toml_free(tree);
		return rc;
	}
}

/* The message for a key cfg_key_find() does not know. */
static int unknown_key(const char *dotted, struct cfg_error *err)
{
	const char *hint = cfg_key_suggest_dotted(dotted);
	char show[80];

	shown(show, sizeof(show), dotted, strlen(dotted));
	if (hint)
		return set_err(err, "unknown key '%s' (did you mean '%s'?)", show, hint);
	return set_err(err, "unknown key '%s'", show);
}

int cfg_override_line(const char *dotted, const char *value, char *line, size_t cap,
                      struct cfg_error *err)
{
	struct cfg_error scratch;
	const struct cfg_key *k = cfg_key_find(dotted);
	struct cfg_buf b;

	err = err ? err : &scratch;
	err->msg[0] = '\0';
	if (!k)
		return unknown_key(dotted, err);
	/* String lists live only in array tables, so this refuses them too. */
	if (is_array_key(k))
		return set_err(err,
		               "key '%s' is in the array table [[%s]], which cannot be overridden; "
		               "edit the config file",
		               dotted, k->section);
	cfg_buf_init(&b, line, cap);
	cfg_buf_printf(&b, "%s = ", dotted);
	if (put_value(&b, k, dotted, value, err))
		return -1;
	if (b.full)
		return set_err(err, "key '%s': the line does not fit in %zu bytes", dotted, cap);
	return 0;
}
