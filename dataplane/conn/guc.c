/*
 * Setting sets are small arrays: a client rarely carries more than a
 * dozen, and they are compared only when a server is bound, never per
 * message.
 */
#include "dataplane/conn/guc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void guc_init(struct guc_set *g)
{
	g->e = NULL;
	g->n = g->cap = 0;
}

void guc_free(struct guc_set *g)
{
	for (int i = 0; i < g->n; i++) {
		free(g->e[i].name);
		free(g->e[i].value);
	}
	free(g->e);
	g->e = NULL;
	g->n = g->cap = 0;
}

/* PostgreSQL setting names ignore case; stored names are lower case, a
 * looked-up one may not be. */
static int find(const struct guc_set *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (!strcasecmp(g->e[i].name, name))
			return i;
	return -1;
}

const struct guc_ent *guc_get(const struct guc_set *g, const char *name)
{
	int i = find(g, name);
	return i < 0 ? NULL : &g->e[i];
}

static char *lower_dup(const char *s)
{
	char *d = strdup(s);
	if (d)
		for (char *p = d; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return d;
}

int guc_put(struct guc_set *g, const char *name, const char *value, bool is_stmt)
{
	char *n = lower_dup(name);
	char *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	int i = find(g, n);
	if (i >= 0) {
		free(n);
		free(g->e[i].value);
		g->e[i].value = v;
		g->e[i].is_stmt = is_stmt;
		return 0;
	}
	if (g->n == GUC_MAX) {
		free(n);
		free(v);
		return -ENOSPC;
	}
	if (g->n == g->cap) {
		int cap = g->cap ? g->cap * 2 : 4;
		if (cap > GUC_MAX)
			cap = GUC_MAX;
		struct guc_ent *e = realloc(g->e, (size_t)cap * sizeof(*e));
		if (!e) {
			free(n);
			free(v);
			return -ENOMEM;
		}
		g->e = e;
		g->cap = cap;
	}
	g->e[g->n++] = (struct guc_ent){.name = n, .value = v, .is_stmt = is_stmt};
	return 0;
}

void guc_del(struct guc_set *g, const char *name)
{
	int i = find(g, name);
	if (i < 0)
		return;
	free(g->e[i].name);
	free(g->e[i].value);
	g->e[i] = g->e[--g->n];
}

int guc_copy(struct guc_set *dst, const struct guc_set *src)
{
	guc_free(dst);
	for (int i = 0; i < src->n; i++) {
		int r = guc_put(dst, src->e[i].name, src->e[i].value, src->e[i].is_stmt);
		if (r < 0)
			return r;
	}
	return 0;
}

bool guc_equal(const struct guc_set *a, const struct guc_set *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++) {
		const struct guc_ent *o = guc_get(b, a->e[i].name);
		if (!o || o->is_stmt != a->e[i].is_stmt || strcmp(o->value, a->e[i].value))
			return false;
	}
	return true;
}

/* Splits PostgreSQL's "options" startup value: -c name=value and
 * --name=value, with backslash escaping spaces, as the postmaster does. */
static int parse_options(struct guc_set *g, const char *opts)
{
	const char *p = opts;
	char tok[1024];
	bool want_c = false;
	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		size_t n = 0;
		while (*p && !isspace((unsigned char)*p)) {
			if (*p == '\\' && p[1])
				p++;
			if (n < sizeof(tok) - 1)
				tok[n++] = *p;
			p++;
		}
		tok[n] = 0;
		const char *setting = NULL;
		if (want_c) {
			setting = tok;
			want_c = false;
		} else if (!strcmp(tok, "-c")) {
			want_c = true;
			continue;
		} else if (!strncmp(tok, "-c", 2)) {
			setting = tok + 2;
		} else if (!strncmp(tok, "--", 2)) {
			setting = tok + 2;
		}
		if (!setting)
			continue; /* other postmaster switches: left to the server */
		char *eq = strchr(setting, '=');
		if (!eq || eq == setting)
			continue;
		*eq = 0;
		/* --work-mem=... is the same as work_mem */
		for (char *q = (char *)setting; *q; q++)
			if (*q == '-')
				*q = '_';
		int r = guc_put(g, setting, eq + 1, false);
		if (r < 0)
			return r;
	}
	return 0;
}

int guc_from_startup(struct guc_set *g, const char *const *names, const char *const *values, int n)
{
	for (int i = 0; i < n; i++) {
		int r = 0;
		if (!strcmp(names[i], "user") || !strcmp(names[i], "database") ||
		    !strcmp(names[i], "replication"))
			continue;
		if (!strcmp(names[i], "options"))
			r = parse_options(g, values[i]);
		else
			r = guc_put(g, names[i], values[i], false);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Appends s as an E'' literal, safe whatever standard_conforming_strings is. */
static int put_literal(FILE *f, const char *s)
{
	fputs("E'", f);
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			fputc(*s, f);
		fputc(*s, f);
	}
	return fputc('\'', f) == EOF ? -EIO : 0;
}

/* The statements of guc_diff_sql, each ended by `end` (';' or NUL). */
static char *diff(const struct guc_set *want, const struct guc_set *have, char end, size_t *out_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	for (int i = 0; i < want->n; i++) {
		const struct guc_ent *w = &want->e[i];
		const struct guc_ent *h = guc_get(have, w->name);
		if (h && h->is_stmt == w->is_stmt && !strcmp(h->value, w->value))
			continue;
		if (w->is_stmt) {
			fprintf(f, "%s%c", w->value, end);
		} else {
			fputs("SELECT pg_catalog.set_config(", f);
			put_literal(f, w->name);
			fputc(',', f);
			put_literal(f, w->value);
			fputs(",false)", f);
			fputc(end, f);
		}
	}
	for (int i = 0; i < have->n; i++) {
		if (guc_get(want, have->e[i].name))
			continue;
		/* names come from parsed SQL or startup packets: quote them */
		fputs("RESET \"", f);
		for (const char *p = have->e[i].name; *p; p++) {
			if (*p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fputs("\"", f);
		fputc(end, f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*out_len = len;
	return buf;
}

char *guc_diff_sql(const struct guc_set *want, const struct guc_set *have)
{
	size_t len;
	return diff(want, have, ';', &len);
}

char *guc_diff_stmts(const struct guc_set *want, const struct guc_set *have, size_t *len)
{
	return diff(want, have, '\0', len);
}
