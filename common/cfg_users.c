/*
 * The PgBouncer-style users_file ("name" "secret" per line): parsed, checked
 * (errors name the file and line), and appended to auth.users, where an
 * [[auth.users]] entry of the same name wins.
 */
#include "common/cfg_internal.h"

#include "common/cfg_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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
		return cfg_fail(ld, 0, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = (struct name_line){c->auth.users[first + i].name, lines[i], first + i};
	qsort(v, n, sizeof(*v), cmp_name_line);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1].name, v[i].name) != 0)
			continue;
		cfg_buf_init(&b, shown, sizeof(shown));
		cfg_buf_quote(&b, v[i].name, strlen(v[i].name));
		rc = cfg_fail_in(ld, c->auth.users_file, v[i].line,
		                 "duplicate user %s (also line %d)", shown, v[i - 1].line);
		break;
	}
	if (rc == 0)
		drop_shadowed(c, v, n);
	free(v);
	return rc;
}

/* Reads auth.users_file and appends its users after [[auth.users]]. */
int cfg_load_users_file(struct loader *ld)
{
	struct cfg *c = ld->c;
	const char *path = c->auth.users_file, *p, *end;
	struct cfg_user *users = NULL;
	char *data = NULL, why[96];
	int *lines = NULL, lineno = 0, rc;
	size_t len = 0, max = c->auth.n_users;

	rc = cfg_read_all(path, TOML_MAX_INPUT, &data, &len);
	if (rc) {
		rc = cfg_fail_key(ld, "auth", -1, "users_file",
		                  "key 'auth.users_file': cannot read \"%s\": %s", path,
		                  strerror(-rc));
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
		rc = cfg_fail(ld, 0, "out of memory reading \"%s\"", path);
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
			rc = cfg_fail_in(ld, path, lineno,
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
