/*
 * pg_hba.conf parsing and first-match lookup (hba.h). The syntax is
 * PostgreSQL's: one rule a line, fields split by blanks, '#' starts a
 * comment outside quotes, a backslash at the end of a line continues it
 * (PostgreSQL 16), comma lists, double-quoted names (a quoted "all" is a
 * name, not the keyword), @file includes for name lists.
 */
#include "dataplane/auth/hba.h"
#include "dataplane/auth/jwtauth.h"
#include "dataplane/auth/ldapauth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HBA_MAX_TOKENS        64
#define HBA_MAX_INCLUDE_DEPTH 4

static const char *const method_names[] = {
    [HBA_TRUST] = "trust",         [HBA_REJECT] = "reject",     [HBA_MD5] = "md5",
    [HBA_SCRAM] = "scram-sha-256", [HBA_PASSWORD] = "password", [HBA_CERT] = "cert",
    [HBA_LDAP] = "ldap",           [HBA_JWT] = "jwt",
};

static const char *const conn_names[] = {
    [HBA_LOCAL] = "local",
    [HBA_HOST] = "host",
    [HBA_HOSTSSL] = "hostssl",
    [HBA_HOSTNOSSL] = "hostnossl",
};

const char *hba_method_str(enum hba_method m)
{
	return (unsigned)m < sizeof(method_names) / sizeof(*method_names) ? method_names[m] : "?";
}

const char *hba_conn_str(enum hba_conn c)
{
	return (unsigned)c < sizeof(conn_names) / sizeof(*conn_names) ? conn_names[c] : "?";
}

static void names_free(struct hba_names *n)
{
	for (int i = 0; i < n->n; i++)
		free(n->names[i]);
	free(n->names);
	n->names = NULL;
	n->n = 0;
}

static void rule_free(struct hba_rule *r)
{
	names_free(&r->databases);
	names_free(&r->users);
	for (int i = 0; i < r->n_opts; i++) {
		free(r->opts[i].name);
		if (r->opts[i].value) {
			/* ldapbindpasswd and the like: no copy of a secret lingers */
			explicit_bzero(r->opts[i].value, strlen(r->opts[i].value));
			free(r->opts[i].value);
		}
	}
	free(r->opts);
	if (r->ldap) {
		ldap_opts_free(r->ldap);
		free(r->ldap);
	}
	jwtauth_conf_free(r->jwt);
}

void hba_free(struct hba *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n; i++)
		rule_free(&h->rules[i]);
	free(h->rules);
	free(h);
}

/* ------------------------------------------------------------ tokenizing */

/* One blank-separated field of a line: its text with quotes removed, and
 * whether any part of it was quoted (so "all" quoted is a name). The raw
 * text is kept for comma lists, where each element has its own quotes. */
struct tok {
	char *raw; /* as written (quotes kept) */
	bool quoted;
};

struct perr {
	char *why;
	size_t whylen;
	const char *name;
	int line;
};

static int fail(struct perr *e, const char *fmt, ...)
{
	/* a file's "path:line: ", an inline rule's "config: [[auth.rules]] #2: " */
	int n = e->line > 0 ? snprintf(e->why, e->whylen, "%s:%d: ", e->name, e->line)
	                    : snprintf(e->why, e->whylen, "%s: ", e->name);
	if (n < 0 || (size_t)n >= e->whylen)
		return -EINVAL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->why + n, e->whylen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Splits line (NUL-terminated, modified) into tokens. */
static int tokenize(char *line, struct tok *toks, int max, int *n, struct perr *e)
{
	*n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			return 0;
		if (*n == max)
			return fail(e, "too many fields on the line");
		char *start = p;
		bool inq = false, quoted = false;
		while (*p && (inq || (*p != ' ' && *p != '\t' && *p != '\r' && *p != '#'))) {
			if (*p == '"') {
				inq = !inq;
				quoted = true;
			}
			p++;
		}
		if (inq)
			return fail(e, "unterminated quoted string");
		toks[*n].raw = start;
		toks[*n].quoted = quoted;
		(*n)++;
		if (!*p)
			return 0;
		if (*p == '#') {
			*p = '\0';
			return 0;
		}
		*p++ = '\0';
	}
}

/* Copies s[0..len) without its double quotes ("" inside quotes is one "). */
static char *unquote(const char *s, size_t len, bool *quoted)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	bool inq = false;
	*quoted = false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"') {
			if (inq && i + 1 < len && s[i + 1] == '"') {
				out[o++] = '"';
				i++;
				continue;
			}
			inq = !inq;
			*quoted = true;
			continue;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

static int names_add(struct hba_names *n, char *name)
{
	char **nn = realloc(n->names, sizeof(*nn) * (size_t)(n->n + 1));
	if (!nn) {
		free(name);
		return -ENOMEM;
	}
	n->names = nn;
	n->names[n->n++] = name;
	return 0;
}

static int parse_names(const char *raw, struct hba_names *out, bool is_db, const char *dir,
                       int depth, struct perr *e);

/* @file: names separated by blanks, commas or lines, '#' comments; the
 * path is relative to the hba file's directory. */
static int include_names(const char *file, struct hba_names *out, bool is_db, const char *dir,
                         int depth, struct perr *e)
{
	if (depth >= HBA_MAX_INCLUDE_DEPTH)
		return fail(e, "@%s: includes nested too deeply", file);
	char path[1024];
	if (file[0] == '/' || !dir[0])
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(e, "@%s: cannot read %s: %s", file, path, strerror(errno));
	char line[4096];
	int r = 0;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		struct tok toks[HBA_MAX_TOKENS];
		int nt;
		r = tokenize(line, toks, HBA_MAX_TOKENS, &nt, e);
		for (int i = 0; r == 0 && i < nt; i++)
			r = parse_names(toks[i].raw, out, is_db, dir, depth + 1, e);
	}
	fclose(f);
	return r;
}

/* A database or user field: comma list of names, "all", "@file". */
static int parse_names(const char *raw, struct hba_names *out, bool is_db, const char *dir,
                       int depth, struct perr *e)
{
	const char *p = raw;
	while (*p) {
		const char *start = p;
		bool inq = false;
		while (*p && (inq || *p != ',')) {
			if (*p == '"')
				inq = !inq;
			p++;
		}
		size_t len = (size_t)(p - start);
		if (*p == ',')
			p++;
		if (len == 0)
			continue; /* "a,,b" or a trailing comma */
		bool quoted;
		char *name = unquote(start, len, &quoted);
		if (!name)
			return -ENOMEM;
		if (!quoted && !strcmp(name, "all")) {
			out->all = true;
			free(name);
			continue;
		}
		if (!quoted && name[0] == '@') {
			int r = include_names(name + 1, out, is_db, dir, depth, e);
			free(name);
			if (r < 0)
				return r;
			continue;
		}
		if (!quoted && (!strcmp(name, "sameuser") || !strcmp(name, "samerole") ||
		                !strcmp(name, "samegroup") || !strcmp(name, "replication") ||
		                name[0] == '+')) {
			int r = fail(e, "%s \"%s\" is not supported by HeliosProxy (name the %s)",
			             is_db ? "database keyword" : "user", name,
			             is_db ? "databases" : "users");
			free(name);
			return r;
		}
		if (!name[0]) {
			free(name);
			return fail(e, "empty %s name", is_db ? "database" : "user");
		}
		if (names_add(out, name) < 0)
			return -ENOMEM;
	}
	if (!out->all && out->n == 0)
		return fail(e, "no %s named", is_db ? "database" : "user");
	return 0;
}

/* ------------------------------------------------------------- addresses */

static void mask_bits(uint8_t a[16], int len)
{
	for (int i = 0; i < 16; i++) {
		int keep = len - i * 8;
		if (keep >= 8)
			continue;
		a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* Parses an address without prefix into the 16-byte form (IPv4 mapped). */
static int parse_ip(const char *s, uint8_t out[16], bool *v4)
{
	struct in_addr a4;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		*v4 = true;
		return 0;
	}
	struct in6_addr a6;
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		memcpy(out, &a6, 16);
		*v4 = false;
		return 0;
	}
	return -1;
}

/* A netmask ("255.255.255.0", "ffff:ffff::") as a prefix length on the
 * 16-byte form; -1 when its bits are not contiguous. */
static int mask_len(const char *s, bool v4)
{
	uint8_t m[16];
	bool mv4;
	if (parse_ip(s, m, &mv4) < 0 || mv4 != v4)
		return -1;
	int start = v4 ? 12 : 0, len = 0;
	bool zero = false;
	for (int i = start; i < 16; i++)
		for (int b = 7; b >= 0; b--) {
			bool one = (m[i] >> b) & 1;
			if (one && zero)
				return -1;
			if (one)
				len++;
			else
				zero = true;
		}
	return len + (v4 ? 96 : 0);
}

/* address [mask]: consumes one or two tokens; returns how many, or <0. */
static int parse_addr(struct tok *toks, int nt, struct hba_rule *r, struct perr *e)
{
	char a[INET6_ADDRSTRLEN + 8];
	const char *s = toks[0].raw;
	if (!strcmp(s, "all")) {
		r->any_addr = true;
		return 1;
	}
	if (!strcmp(s, "samehost") || !strcmp(s, "samenet"))
		return fail(e, "address \"%s\" is not supported by HeliosProxy (write the CIDR)",
		            s);
	if (strlen(s) >= sizeof(a))
		return fail(e, "invalid address \"%s\"", s);
	snprintf(a, sizeof(a), "%s", s);
	char *slash = strchr(a, '/');
	int len = -1;
	if (slash) {
		*slash = '\0';
		char *end;
		long l = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || l < 0)
			return fail(e, "invalid CIDR mask in address \"%s\"", s);
		len = (int)l;
	}
	bool v4;
	if (parse_ip(a, r->addr.addr, &v4) < 0)
		return fail(e, "invalid IP address \"%s\" (host names are not supported)", a);
	r->addr.v4 = v4;
	int used = 1;
	if (slash) {
		if (len > (v4 ? 32 : 128))
			return fail(e, "invalid CIDR mask in address \"%s\"", s);
		len += v4 ? 96 : 0;
	} else if (nt > 1 && strchr("0123456789abcdefABCDEF:", toks[1].raw[0]) &&
	           mask_len(toks[1].raw, v4) >= 0) {
		len = mask_len(toks[1].raw, v4);
		used = 2;
	} else if (nt > 1 && (toks[1].raw[0] >= '0' && toks[1].raw[0] <= '9')) {
		return fail(e, "invalid IP mask \"%s\"", toks[1].raw);
	} else {
		return fail(e, "address \"%s\" needs a CIDR mask (/len) or a mask field", s);
	}
	r->addr.len = (uint8_t)len;
	mask_bits(r->addr.addr, len); /* as PostgreSQL: host bits are ignored */
	return used;
}

/* -------------------------------------------------------------- methods */

static int parse_method(const char *s, enum hba_method *m)
{
	for (unsigned i = 0; i < sizeof(method_names) / sizeof(*method_names); i++)
		if (!strcmp(s, method_names[i])) {
			*m = (enum hba_method)i;
			return 0;
		}
	return -1;
}

static int add_opt(struct hba_rule *r, const char *raw, struct perr *e)
{
	const char *eq = strchr(raw, '=');
	if (!eq || eq == raw)
		return fail(e, "authentication option not in name=value format: %s", raw);
	struct hba_opt *o = realloc(r->opts, sizeof(*o) * (size_t)(r->n_opts + 1));
	if (!o)
		return -ENOMEM;
	r->opts = o;
	bool q;
	char *name = unquote(raw, (size_t)(eq - raw), &q);
	char *value = unquote(eq + 1, strlen(eq + 1), &q);
	if (!name || !value) {
		free(name);
		free(value);
		return -ENOMEM;
	}
	r->opts[r->n_opts].name = name;
	r->opts[r->n_opts].value = value;
	r->n_opts++;
	return 0;
}

const char *hba_opt(const struct hba_rule *r, const char *name)
{
	for (int i = 0; i < r->n_opts; i++)
		if (!strcmp(r->opts[i].name, name))
			return r->opts[i].value;
	return NULL;
}

/* Options of the methods without a module of their own: a typo is an
 * error at load, not a silent default at the first login. ldap's and
 * jwt's are checked by ldapauth and jwtauth. */
static bool opt_known(enum hba_method m, const char *name)
{
	if (!strcmp(name, "map") || !strcmp(name, "clientcert"))
		return true; /* PostgreSQL allows these on most methods */
	return m == HBA_CERT && !strcmp(name, "clientname");
}

/* ---------------------------------------------------------------- rules */

struct rule_fields {
	struct tok toks[HBA_MAX_TOKENS];
	int n;
};

static int parse_rule(struct rule_fields *f, struct hba_rule *r, const char *dir, struct perr *e)
{
	int i = 0;
	const char *type = f->toks[i++].raw;
	if (!strcmp(type, "local"))
		r->conn = HBA_LOCAL;
	else if (!strcmp(type, "host"))
		r->conn = HBA_HOST;
	else if (!strcmp(type, "hostssl"))
		r->conn = HBA_HOSTSSL;
	else if (!strcmp(type, "hostnossl"))
		r->conn = HBA_HOSTNOSSL;
	else if (!strcmp(type, "hostgssenc") || !strcmp(type, "hostnogssenc"))
		return fail(e, "connection type \"%s\" is not supported (no GSSAPI)", type);
	else
		return fail(e, "invalid connection type \"%s\"", type);
	if (i >= f->n)
		return fail(e, "end-of-line before database specification");
	int rc = parse_names(f->toks[i++].raw, &r->databases, true, dir, 0, e);
	if (rc < 0)
		return rc;
	if (i >= f->n)
		return fail(e, "end-of-line before role specification");
	rc = parse_names(f->toks[i++].raw, &r->users, false, dir, 0, e);
	if (rc < 0)
		return rc;
	if (r->conn == HBA_LOCAL) {
		r->any_addr = true;
	} else {
		if (i >= f->n)
			return fail(e, "end-of-line before IP address specification");
		int used = parse_addr(&f->toks[i], f->n - i, r, e);
		if (used < 0)
			return used;
		i += used;
	}
	if (i >= f->n)
		return fail(e, "end-of-line before authentication method");
	if (parse_method(f->toks[i].raw, &r->method) < 0)
		return fail(e,
		            "invalid authentication method \"%s\" (trust, reject, md5, "
		            "scram-sha-256, password, cert, ldap or jwt)",
		            f->toks[i].raw);
	i++;
	if (r->method == HBA_CERT && r->conn != HBA_HOSTSSL)
		return fail(e, "cert authentication is only supported on hostssl connections");
	for (; i < f->n; i++) {
		rc = add_opt(r, f->toks[i].raw, e);
		if (rc < 0)
			return rc;
		const char *name = r->opts[r->n_opts - 1].name;
		bool known = r->method == HBA_LDAP ? true /* ldap_opts_set says below */
		             : r->method == HBA_JWT
		                 ? jwtauth_is_option(name) || !strcmp(name, "map")
		                 : opt_known(r->method, name);
		if (!known)
			return fail(e, "unknown option \"%s\" for authentication method %s", name,
			            hba_method_str(r->method));
	}
	if (r->method == HBA_LDAP) {
		/* compiled now: ldapauth copies them for each check */
		char err[300];
		r->ldap = calloc(1, sizeof(*r->ldap));
		if (!r->ldap)
			return -ENOMEM;
		for (int k = 0; k < r->n_opts; k++) {
			const struct hba_opt *o = &r->opts[k];
			if (!strcmp(o->name, "map") || !strcmp(o->name, "clientcert"))
				continue;
			rc = ldap_opts_set(r->ldap, o->name, o->value, err, sizeof(err));
			if (rc == -ENOENT)
				return fail(e,
				            "unknown option \"%s\" for authentication method ldap",
				            o->name);
			if (rc < 0)
				return fail(e, "%s", err);
		}
		if (ldap_opts_finish(r->ldap, err, sizeof(err)) < 0)
			return fail(e, "%s", err);
	}
	return 0;
}

static int add_rule(struct hba *h, struct rule_fields *f, const char *dir, struct perr *e,
                    const char *where)
{
	struct hba_rule *nr = realloc(h->rules, sizeof(*nr) * (size_t)(h->n + 1));
	if (!nr)
		return -ENOMEM;
	h->rules = nr;
	struct hba_rule *r = &h->rules[h->n];
	memset(r, 0, sizeof(*r));
	r->line = e->line;
	snprintf(r->where, sizeof(r->where), "%s", where);
	int rc = parse_rule(f, r, dir, e);
	if (rc < 0) {
		rule_free(r);
		return rc;
	}
	h->n++;
	return 0;
}

static void dir_of(const char *name, char *dir, size_t len)
{
	const char *slash = strrchr(name, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else
		snprintf(dir, len, "%.*s", (int)(slash - name), name);
}

int hba_parse(const char *text, size_t len, const char *name, struct hba **out, char *why,
              size_t whylen)
{
	*out = NULL;
	struct hba *h = calloc(1, sizeof(*h));
	char *buf = malloc(len + 1);
	struct rule_fields *f = malloc(sizeof(*f));
	if (!h || !buf || !f) {
		free(h);
		free(buf);
		free(f);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	snprintf(h->source, sizeof(h->source), "%s", name);
	memcpy(buf, text, len);
	buf[len] = '\0';
	char dir[1024];
	dir_of(name, dir, sizeof(dir));
	struct perr e = {why, whylen, name, 0};
	int rc = 0;
	char *p = buf;
	int line = 0;
	while (rc == 0 && *p) {
		/* one logical line: physical lines joined where one ends in '\' */
		line++;
		int first = line;
		char *start = p, *w = p;
		for (;;) {
			char *nl = strchr(p, '\n');
			char *end = nl ? nl : p + strlen(p);
			char *last = end;
			while (last > p && last[-1] == '\r')
				last--;
			bool cont = last > p && last[-1] == '\\';
			if (cont)
				last--;
			memmove(w, p, (size_t)(last - p));
			w += last - p;
			p = nl ? nl + 1 : end;
			if (!cont || !nl)
				break;
			line++;
		}
		*w = '\0';
		e.line = first;
		rc = tokenize(start, f->toks, HBA_MAX_TOKENS, &f->n, &e);
		if (rc == 0 && f->n > 0) {
			char where[300];
			snprintf(where, sizeof(where), "%s:%d", name, first);
			rc = add_rule(h, f, dir, &e, where);
		}
	}
	free(buf);
	free(f);
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(why, whylen, "%s: out of memory", name);
		hba_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int hba_prepare(struct hba *h, char *why, size_t whylen)
{
	for (int i = 0; i < h->n; i++) {
		struct hba_rule *r = &h->rules[i];
		if (r->method != HBA_JWT)
			continue;
		char err[JWTAUTH_WHY_MAX];
		struct jwt_conf *c = jwtauth_conf_new();
		if (!c) {
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		int rc = 0;
		for (int k = 0; rc == 0 && k < r->n_opts; k++)
			if (strcmp(r->opts[k].name, "map") != 0)
				rc = jwtauth_conf_set(c, r->opts[k].name, r->opts[k].value, err,
				                      sizeof(err));
		if (rc == 0)
			rc = jwtauth_conf_finish(c, err, sizeof(err));
		if (rc < 0) {
			jwtauth_conf_free(c);
			snprintf(why, whylen, "%s: method jwt: %s", r->where, err);
			return rc;
		}
		jwtauth_conf_free(r->jwt);
		r->jwt = c;
	}
	return 0;
}

int hba_load_file(const char *path, struct hba **out, char *why, size_t whylen)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		int err = errno;
		snprintf(why, whylen, "auth.hba_file: cannot read %s: %s", path, strerror(err));
		return -err;
	}
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			if (cap >= (64u << 20)) {
				free(buf);
				fclose(f);
				snprintf(why, whylen, "auth.hba_file: %s is larger than 64 MB",
				         path);
				return -EFBIG;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	int rerr = ferror(f);
	fclose(f);
	if (!buf) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (rerr) {
		free(buf);
		snprintf(why, whylen, "auth.hba_file: cannot read %s", path);
		return -EIO;
	}
	int r = hba_parse(buf, len, path, out, why, whylen);
	free(buf);
	return r;
}

int hba_from_rules(const struct hba_rule_text *rt, int n, const char *where_prefix,
                   struct hba **out, char *why, size_t whylen)
{
	*out = NULL;
	struct hba *h = calloc(1, sizeof(*h));
	struct rule_fields *f = malloc(sizeof(*f));
	if (!h || !f) {
		free(h);
		free(f);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	snprintf(h->source, sizeof(h->source), "%s [[auth.rules]]", where_prefix);
	char dir[1024];
	dir_of(where_prefix, dir, sizeof(dir));
	int rc = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		char where[300];
		snprintf(where, sizeof(where), "%s: [[auth.rules]] #%d", where_prefix, i + 1);
		struct perr e = {why, whylen, where, 0};
		/* the fields become one pg_hba line, so both spellings parse alike */
		size_t need = strlen(rt[i].type) + strlen(rt[i].database) + strlen(rt[i].user) +
		              strlen(rt[i].address) + strlen(rt[i].method) + strlen(rt[i].options) +
		              8;
		char *line = malloc(need);
		if (!line) {
			rc = -ENOMEM;
			break;
		}
		snprintf(line, need, "%s %s %s %s %s %s", rt[i].type, rt[i].database, rt[i].user,
		         rt[i].address, rt[i].method, rt[i].options);
		rc = tokenize(line, f->toks, HBA_MAX_TOKENS, &f->n, &e);
		if (rc == 0 && f->n == 0)
			rc = fail(&e, "empty rule");
		if (rc == 0)
			rc = add_rule(h, f, dir, &e, where);
		if (rc == 0)
			h->rules[h->n - 1].line = i + 1;
		free(line);
	}
	free(f);
	if (rc < 0) {
		hba_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

/* -------------------------------------------------------------- matching */

static bool names_match(const struct hba_names *n, const char *s)
{
	if (n->all)
		return true;
	for (int i = 0; i < n->n; i++)
		if (!strcmp(n->names[i], s))
			return true;
	return false;
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return !memcmp(a, pre, 12);
}

static bool addr_match(const struct hba_rule *r, const uint8_t peer[16])
{
	if (r->any_addr)
		return true;
	/* as PostgreSQL: an IPv4 rule matches IPv4 clients, an IPv6 rule IPv6 ones */
	if (r->addr.v4 != is_v4_mapped(peer))
		return false;
	uint8_t p[16];
	memcpy(p, peer, 16);
	mask_bits(p, r->addr.len);
	return !memcmp(p, r->addr.addr, 16);
}

const struct hba_rule *hba_match(const struct hba *h, bool local, bool tls, const uint8_t peer[16],
                                 const char *user, const char *database)
{
	if (!h)
		return NULL;
	for (int i = 0; i < h->n; i++) {
		const struct hba_rule *r = &h->rules[i];
		if (local != (r->conn == HBA_LOCAL))
			continue;
		if (r->conn == HBA_HOSTSSL && !tls)
			continue;
		if (r->conn == HBA_HOSTNOSSL && tls)
			continue;
		if (!local && !addr_match(r, peer))
			continue;
		if (!names_match(&r->databases, database) || !names_match(&r->users, user))
			continue;
		return r;
	}
	return NULL;
}

void hba_no_entry_msg(char *out, size_t outlen, const char *addr, const char *user,
                      const char *database, bool tls)
{
	/* PostgreSQL 12 and later: "SSL encryption" / "no encryption" */
	snprintf(out, outlen,
	         "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\", %s",
	         addr ? addr : "[local]", user, database, tls ? "SSL encryption" : "no encryption");
}
