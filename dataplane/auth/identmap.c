/*
 * pg_ident.conf-style maps: which system user (certificate CN or SAN) may log
 * in as which database user. Regular expressions are POSIX extended (regcomp),
 * as PostgreSQL's pg_ident uses; a \1 in the database user is replaced by the
 * first capture group, once, as PostgreSQL does.
 */
#include "dataplane/auth/identmap.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct identmap_line {
	char *map, *sys, *pg;
	bool is_re;
	regex_t re; /* compiled sys + 1 when is_re */
};

struct identmap {
	struct identmap_line *v;
	size_t n, cap;
};

#define IDENT_MAX_TOKEN 1024

size_t identmap_count(const struct identmap *m)
{
	return m ? m->n : 0;
}

void identmap_free(struct identmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].is_re)
			regfree(&m->v[i].re);
		free(m->v[i].map);
		free(m->v[i].sys);
		free(m->v[i].pg);
	}
	free(m->v);
	free(m);
}

/*
 * Reads the next token of line *p into tok (a word or a double-quoted string
 * where "" is a literal quote). Returns 1 token read, 0 end of line (or a
 * comment), -EINVAL with why set.
 */
static int next_token(const char **p, char *tok, size_t cap, const char **why)
{
	const char *s = *p;
	size_t n = 0;

	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	if (*s == '\0' || *s == '\n' || *s == '#') {
		*p = s;
		return 0;
	}
	while (*s && *s != '\n' && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#') {
		if (*s == '"') {
			s++;
			for (;;) {
				if (*s == '\0' || *s == '\n') {
					*why = "unterminated quoted name";
					return -EINVAL;
				}
				if (*s == '"' && s[1] == '"') {
					s++;
				} else if (*s == '"') {
					s++;
					break;
				}
				if (n + 1 >= cap) {
					*why = "name too long";
					return -EINVAL;
				}
				tok[n++] = *s++;
			}
			continue;
		}
		if (n + 1 >= cap) {
			*why = "name too long";
			return -EINVAL;
		}
		tok[n++] = *s++;
	}
	tok[n] = '\0';
	*p = s;
	return 1;
}

static int add_line(struct identmap *m, const char *map, const char *sys, const char *pg, char *why,
                    size_t whylen)
{
	struct identmap_line l = {0};

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct identmap_line *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	if (sys[0] == '/') {
		int rc = regcomp(&l.re, sys + 1, REG_EXTENDED);
		if (rc != 0) {
			char eb[128];
			regerror(rc, &l.re, eb, sizeof(eb));
			snprintf(why, whylen, "invalid regular expression \"%.200s\": %s", sys + 1,
			         eb);
			return -EINVAL;
		}
		l.is_re = true;
		if (strstr(pg, "\\1") && l.re.re_nsub < 1) {
			snprintf(why, whylen,
			         "\"%.200s\" uses \\1 but the regular expression \"%.200s\" has no "
			         "parenthesized group",
			         pg, sys + 1);
			regfree(&l.re);
			return -EINVAL;
		}
	} else if (strstr(pg, "\\1")) {
		snprintf(why, whylen,
		         "\"%.200s\" uses \\1 but \"%.200s\" is not a regular expression (/...)",
		         pg, sys);
		return -EINVAL;
	}
	l.map = strdup(map);
	l.sys = strdup(sys);
	l.pg = strdup(pg);
	if (!l.map || !l.sys || !l.pg) {
		if (l.is_re)
			regfree(&l.re);
		free(l.map);
		free(l.sys);
		free(l.pg);
		return -ENOMEM;
	}
	m->v[m->n++] = l;
	return 0;
}

int identmap_parse(const char *text, const char *name, struct identmap **out, char *err,
                   size_t errlen)
{
	struct identmap *m = calloc(1, sizeof(*m));
	char tok[3][IDENT_MAX_TOKEN], extra[IDENT_MAX_TOKEN];
	const char *p = text;
	unsigned lineno = 0;
	int rc = 0;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	while (*p) {
		const char *why = NULL;
		char whybuf[512];
		int n = 0, r = 0;

		lineno++;
		whybuf[0] = '\0';
		while (n < 3 && (r = next_token(&p, tok[n], sizeof(tok[n]), &why)) == 1)
			n++;
		if (r >= 0 && n == 3 && (r = next_token(&p, extra, sizeof(extra), &why)) == 1) {
			why =
			    "more than three fields (expected MAPNAME SYSTEM-USERNAME PG-USERNAME)";
			r = -EINVAL;
		}
		if (r >= 0 && n > 0 && n < 3) {
			why = "missing fields (expected MAPNAME SYSTEM-USERNAME PG-USERNAME)";
			r = -EINVAL;
		}
		if (r >= 0 && n == 3) {
			if (strcmp(tok[1], "/") == 0) {
				why = "empty regular expression";
				r = -EINVAL;
			} else {
				r = add_line(m, tok[0], tok[1], tok[2], whybuf, sizeof(whybuf));
				if (r == -EINVAL)
					why = whybuf;
			}
		}
		if (r < 0) {
			if (r == -EINVAL)
				snprintf(err, errlen, "%s:%u: %s", name, lineno,
				         why ? why : "syntax error");
			else
				snprintf(err, errlen, "%s:%u: %s", name, lineno, strerror(-r));
			rc = r;
			break;
		}
		/* skip the rest of the line (a comment) and its newline */
		while (*p && *p != '\n')
			p++;
		if (*p == '\n')
			p++;
	}
	if (rc < 0) {
		identmap_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int identmap_load(const char *path, struct identmap **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	FILE *mem = open_memstream(&buf, &len);
	if (!mem) {
		fclose(f);
		return -ENOMEM;
	}
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, got, mem);
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	fclose(mem);
	if (rc == 0 && memchr(buf, '\0', len)) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		rc = -EINVAL;
	} else if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	} else {
		rc = identmap_parse(buf, path, out, err, errlen);
	}
	free(buf);
	return rc;
}

/* Does line l let sys log in as login? */
static bool line_allows(const struct identmap_line *l, const char *sys, const char *login)
{
	regmatch_t mt[2];
	const char *ref;

	if (!l->is_re)
		return strcmp(l->sys, sys) == 0 && strcmp(l->pg, login) == 0;
	if (regexec(&l->re, sys, 2, mt, 0) != 0)
		return false;
	ref = strstr(l->pg, "\\1");
	if (!ref)
		return strcmp(l->pg, login) == 0;
	if (mt[1].rm_so < 0)
		return false; /* the group did not take part in the match */
	/* compare login with pg[0..ref) + group + pg[ref+2..] without building it */
	size_t pre = (size_t)(ref - l->pg), glen = (size_t)(mt[1].rm_eo - mt[1].rm_so);
	size_t post = strlen(ref + 2), llen = strlen(login);
	return llen == pre + glen + post && memcmp(login, l->pg, pre) == 0 &&
	       memcmp(login + pre, sys + mt[1].rm_so, glen) == 0 &&
	       memcmp(login + pre + glen, ref + 2, post) == 0;
}

bool identmap_match(const struct identmap *m, const char *map, const char *system_user,
                    const char *login_user)
{
	if (!system_user || !login_user || !system_user[0])
		return false;
	if (!m || !map || !map[0])
		return strcmp(system_user, login_user) == 0;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].map, map) == 0 && line_allows(&m->v[i], system_user, login_user))
			return true;
	return false;
}
