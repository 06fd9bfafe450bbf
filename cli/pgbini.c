/*
 * pgbouncer.ini as PgBouncer reads it (libusual's cfparser): `[section]`
 * lines, `key = value` lines, `;` or `#` comment lines, `%include FILE`;
 * plus the connection-string values of [databases] and [users]
 * ("host=db1 dbname='my db'"). For helioctl import-pgbouncer.
 */
#include "cli/pgbini.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PGBINI_MAX_DEPTH 10 /* %include nesting, as PgBouncer's limit */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *dup_range(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static int add_ent(struct pgbini *ini, const char *section, const char *k, size_t klen,
                   const char *v, size_t vlen, const char *file, int line)
{
	struct pgbini_ent *e;

	if (ini->n == ini->cap) {
		size_t cap = ini->cap ? ini->cap * 2 : 64;
		e = realloc(ini->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		ini->e = e;
		ini->cap = cap;
	}
	e = &ini->e[ini->n];
	e->section = strdup(section);
	e->key = dup_range(k, klen);
	e->val = dup_range(v, vlen);
	e->file = file;
	e->line = line;
	if (!e->section || !e->key || !e->val) {
		free(e->section);
		free(e->key);
		free(e->val);
		return -ENOMEM;
	}
	ini->n++;
	return 0;
}

/* The file names entries point to live as long as ini. */
static const char *keep_name(struct pgbini *ini, const char *path)
{
	char **f = realloc(ini->files, (ini->nfiles + 1) * sizeof(*f));
	if (!f)
		return NULL;
	ini->files = f;
	f[ini->nfiles] = strdup(path);
	return f[ini->nfiles] ? f[ini->nfiles++] : NULL;
}

static int load_file(struct pgbini *ini, const char *path, char *section, int depth, char *err,
                     size_t errlen);

/* %include FILE: a relative FILE is taken from the including file's folder
 * (PgBouncer takes it from its working directory, which is usually that
 * folder; this way the result does not depend on where helioctl runs). */
static int include_file(struct pgbini *ini, const char *from, const char *arg, size_t len,
                        char *section, int depth, char *err, size_t errlen)
{
	char path[PATH_MAX];
	const char *slash = strrchr(from, '/');

	if (arg[0] == '/' || !slash)
		snprintf(path, sizeof(path), "%.*s", (int)len, arg);
	else
		snprintf(path, sizeof(path), "%.*s/%.*s", (int)(slash - from), from, (int)len, arg);
	return load_file(ini, path, section, depth + 1, err, errlen);
}

static bool is_key_char(char c)
{
	/* Database names may hold more than identifiers: '*', '-', '.'. */
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == '*' ||
	       c == '$' || (unsigned char)c >= 0x80;
}

int pgbini_parse(struct pgbini *ini, const char *file, const char *buf, size_t len, char *section,
                 int depth, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	int line = 0, rc;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		const char *q, *k, *v;
		size_t klen, vlen;

		if (!eol)
			eol = end;
		line++;
		while (p < eol && isspace((unsigned char)*p))
			p++;
		while (eol > p && isspace((unsigned char)eol[-1]))
			eol--;
		if (p == eol || *p == ';' || *p == '#') {
			p = next;
			continue;
		}
		if (*p == '[') {
			q = memchr(p, ']', (size_t)(eol - p));
			if (!q || q + 1 != eol || q - p - 1 >= PGBINI_SECTION_MAX || q == p + 1) {
				set_err(err, errlen, "%s:%d: bad section header", file, line);
				return -EINVAL;
			}
			snprintf(section, PGBINI_SECTION_MAX, "%.*s", (int)(q - p - 1), p + 1);
			for (char *s = section; *s; s++)
				*s = (char)tolower((unsigned char)*s);
			p = next;
			continue;
		}
		if (*p == '%') {
			if ((size_t)(eol - p) > 9 && !strncmp(p, "%include", 8) &&
			    isspace((unsigned char)p[8])) {
				q = p + 8;
				while (q < eol && isspace((unsigned char)*q))
					q++;
				if (depth >= PGBINI_MAX_DEPTH) {
					set_err(err, errlen, "%s:%d: %%include nested too deep",
					        file, line);
					return -ELOOP;
				}
				rc = include_file(ini, file, q, (size_t)(eol - q), section, depth,
				                  err, errlen);
				if (rc < 0)
					return rc;
				p = next;
				continue;
			}
			set_err(err, errlen, "%s:%d: unknown directive (only %%include)", file,
			        line);
			return -EINVAL;
		}
		/* No quoted names: PgBouncer refuses "my db" = ... as a syntax error. */
		k = p;
		while (p < eol && is_key_char(*p))
			p++;
		klen = (size_t)(p - k);
		while (p < eol && isspace((unsigned char)*p))
			p++;
		if (!klen || p == eol || *p != '=') {
			set_err(err, errlen, "%s:%d: expected key = value", file, line);
			return -EINVAL;
		}
		p++;
		while (p < eol && isspace((unsigned char)*p))
			p++;
		/* The value runs to the end of the line, quotes and `;` included:
		 * PgBouncer 1.18 keeps `"DISCARD ALL"` with its quotes and reads
		 * `1 ; note` as an invalid boolean, and so does the import. */
		v = p;
		vlen = (size_t)(eol - p);
		if (!section[0]) {
			set_err(err, errlen, "%s:%d: key '%.*s' before any [section]", file, line,
			        (int)klen, k);
			return -EINVAL;
		}
		rc = add_ent(ini, section, k, klen, v, vlen, file, line);
		if (rc < 0) {
			set_err(err, errlen, "out of memory");
			return rc;
		}
		p = next;
	}
	return 0;
}

static int load_file(struct pgbini *ini, const char *path, char *section, int depth, char *err,
                     size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	const char *name;
	int rc;

	if (!f) {
		rc = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *b = realloc(buf, cap + 65536);
			if (!b) {
				fclose(f);
				free(buf);
				set_err(err, errlen, "out of memory");
				return -ENOMEM;
			}
			buf = b;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc < 0) {
		set_err(err, errlen, "%s: read error", path);
		free(buf);
		return rc;
	}
	name = keep_name(ini, path);
	rc = name ? pgbini_parse(ini, name, buf, len, section, depth, err, errlen) : -ENOMEM;
	if (!name)
		set_err(err, errlen, "out of memory");
	free(buf);
	return rc;
}

int pgbini_load(struct pgbini *ini, const char *path, char *err, size_t errlen)
{
	char section[PGBINI_SECTION_MAX] = "";

	memset(ini, 0, sizeof(*ini));
	return load_file(ini, path, section, 0, err, errlen);
}

void pgbini_free(struct pgbini *ini)
{
	for (size_t i = 0; i < ini->n; i++) {
		free(ini->e[i].section);
		free(ini->e[i].key);
		free(ini->e[i].val);
	}
	for (size_t i = 0; i < ini->nfiles; i++)
		free(ini->files[i]);
	free(ini->e);
	free(ini->files);
	memset(ini, 0, sizeof(*ini));
}

int pgbini_connstr(const char *s, struct pgbini_pair *pairs, size_t max, size_t *n, char *err,
                   size_t errlen)
{
	const char *p = s;

	*n = 0;
	for (;;) {
		struct pgbini_pair *pr;
		size_t kl = 0, vl = 0;

		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			return 0;
		if (*n == max) {
			set_err(err, errlen, "more than %zu parameters", max);
			return -E2BIG;
		}
		pr = &pairs[*n];
		while (*p && *p != '=' && !isspace((unsigned char)*p)) {
			if (kl + 1 < sizeof(pr->key))
				pr->key[kl++] = (char)tolower((unsigned char)*p);
			p++;
		}
		pr->key[kl] = '\0';
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=' || !kl) {
			set_err(err, errlen, "expected name=value at '%.20s'", p);
			return -EINVAL;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\'') {
			/* libpq style: 'a value', \' and \\ inside */
			p++;
			while (*p && *p != '\'') {
				if (*p == '\\' && p[1])
					p++;
				if (vl + 1 < sizeof(pr->val))
					pr->val[vl++] = *p;
				p++;
			}
			if (*p != '\'') {
				set_err(err, errlen, "unterminated quote in %s", pr->key);
				return -EINVAL;
			}
			p++;
		} else {
			while (*p && !isspace((unsigned char)*p)) {
				if (vl + 1 < sizeof(pr->val))
					pr->val[vl++] = *p;
				p++;
			}
		}
		pr->val[vl] = '\0';
		(*n)++;
	}
}
