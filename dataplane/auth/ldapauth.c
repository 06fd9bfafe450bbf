/*
 * LDAP authentication (see ldapauth.h). The libldap calls are synchronous
 * with timeouts and run on this module's own threads: a worker only queues
 * a job and later gets the answer in its mailbox. One connection per check
 * (a login is rare next to queries; a kept connection would have to be
 * re-bound and re-checked anyway).
 */
#include "dataplane/auth/ldapauth.h"

#include "common/log.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldap.h>
#include <openssl/crypto.h>

#define LA_USER_MAX   256
#define LA_PW_MAX     1024
#define LA_WHY_MAX    512
#define LA_FILTER_MAX 2048

/* ---- options ---------------------------------------------------------------- */

static int set_str(char **dst, const char *name, const char *value, char *err, size_t errlen)
{
	if (!*value) {
		snprintf(err, errlen, "%s: empty value", name);
		return -EINVAL;
	}
	char *s = strdup(value);
	if (!s) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -ENOMEM;
	}
	free(*dst);
	*dst = s;
	return 0;
}

static int parse_int(const char *value, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(value, &end, 10);
	if (errno || end == value || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_servers(struct ldap_opts *o, const char *value, char *err, size_t errlen)
{
	for (int i = 0; i < o->n_servers; i++) {
		free(o->servers[i]);
		o->servers[i] = NULL;
	}
	o->n_servers = 0;
	const char *p = value;
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, " \t,");
		if (!n)
			break;
		if (o->n_servers == LDAP_SERVERS_MAX) {
			snprintf(err, errlen, "ldapserver: more than %d servers", LDAP_SERVERS_MAX);
			return -EINVAL;
		}
		/* a host name or address; [::1] brackets are added when the URI
		 * is built, so they are not taken here */
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (!(c == '.' || c == '-' || c == ':' || c == '_' ||
			      (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z'))) {
				snprintf(err, errlen,
				         "ldapserver: \"%.*s\" is not a host name or address (give "
				         "the port in ldapport, the scheme in ldapscheme)",
				         (int)n, p);
				return -EINVAL;
			}
		}
		o->servers[o->n_servers] = strndup(p, n);
		if (!o->servers[o->n_servers]) {
			snprintf(err, errlen, "ldapserver: out of memory");
			return -ENOMEM;
		}
		o->n_servers++;
		p += n;
	}
	if (!o->n_servers) {
		snprintf(err, errlen, "ldapserver: no server named");
		return -EINVAL;
	}
	return 0;
}

int ldap_opts_set(struct ldap_opts *o, const char *name, const char *value, char *err,
                  size_t errlen)
{
	long v;
	if (!strcmp(name, "ldapserver"))
		return set_servers(o, value, err, errlen);
	if (!strcmp(name, "ldapport")) {
		if (parse_int(value, 1, 65535, &v)) {
			snprintf(err, errlen, "ldapport: \"%s\" is not a port number (1..65535)",
			         value);
			return -EINVAL;
		}
		o->port = (int)v;
		return 0;
	}
	if (!strcmp(name, "ldapscheme")) {
		if (!strcmp(value, "ldap"))
			o->ldaps = false;
		else if (!strcmp(value, "ldaps"))
			o->ldaps = true;
		else {
			snprintf(err, errlen, "ldapscheme: \"%s\" is neither ldap nor ldaps",
			         value);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(name, "ldaptls")) {
		if (!strcmp(value, "1"))
			o->starttls = true;
		else if (!strcmp(value, "0"))
			o->starttls = false;
		else {
			snprintf(err, errlen, "ldaptls: \"%s\" is neither 0 nor 1", value);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(name, "ldaptimeout")) {
		if (parse_int(value, 1, 300, &v)) {
			snprintf(err, errlen,
			         "ldaptimeout: \"%s\" is not a number of seconds (1..300)", value);
			return -EINVAL;
		}
		o->timeout_ms = (int)v * 1000;
		return 0;
	}
	if (!strcmp(name, "ldapprefix"))
		return set_str(&o->prefix, name, value, err, errlen);
	if (!strcmp(name, "ldapsuffix"))
		return set_str(&o->suffix, name, value, err, errlen);
	if (!strcmp(name, "ldapbasedn"))
		return set_str(&o->basedn, name, value, err, errlen);
	if (!strcmp(name, "ldapbinddn"))
		return set_str(&o->binddn, name, value, err, errlen);
	if (!strcmp(name, "ldapbindpasswd"))
		return set_str(&o->bindpasswd, name, value, err, errlen);
	if (!strcmp(name, "ldapsearchattribute"))
		return set_str(&o->searchattribute, name, value, err, errlen);
	if (!strcmp(name, "ldapsearchfilter")) {
		int r = set_str(&o->searchfilter, name, value, err, errlen);
		if (!r && value[0] != '(') {
			snprintf(err, errlen,
			         "ldapsearchfilter: \"%s\" is not a filter in parentheses", value);
			return -EINVAL;
		}
		return r;
	}
	if (!strcmp(name, "ldapcafile"))
		return set_str(&o->cafile, name, value, err, errlen);
	if (!strcmp(name, "ldapurl")) {
		snprintf(
		    err, errlen,
		    "ldapurl: not supported; give ldapserver, ldapport, ldapscheme, ldapbasedn "
		    "and ldapsearchattribute instead");
		return -EINVAL;
	}
	snprintf(err, errlen, "%s: not an LDAP option", name);
	return -ENOENT;
}

int ldap_opts_set_pair(struct ldap_opts *o, const char *pair, char *err, size_t errlen)
{
	const char *eq = strchr(pair, '=');
	if (!eq || eq == pair) {
		snprintf(err, errlen, "\"%s\": not name=value", pair);
		return -EINVAL;
	}
	char name[64];
	size_t n = (size_t)(eq - pair);
	if (n >= sizeof(name)) {
		snprintf(err, errlen, "%.*s: not an LDAP option", (int)n, pair);
		return -ENOENT;
	}
	memcpy(name, pair, n);
	name[n] = 0;
	const char *value = eq + 1;
	/* pg_hba.conf quotes values with spaces: "a b" */
	size_t vl = strlen(value);
	if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
		char *v = strndup(value + 1, vl - 2);
		if (!v) {
			snprintf(err, errlen, "%s: out of memory", name);
			return -ENOMEM;
		}
		int r = ldap_opts_set(o, name, v, err, errlen);
		OPENSSL_cleanse(v, vl - 2);
		free(v);
		return r;
	}
	return ldap_opts_set(o, name, value, err, errlen);
}

int ldap_opts_finish(struct ldap_opts *o, char *err, size_t errlen)
{
	if (!o->n_servers) {
		snprintf(err, errlen, "ldapserver: required for method ldap");
		return -EINVAL;
	}
	if (o->ldaps && o->starttls) {
		snprintf(err, errlen,
		         "ldaptls: cannot be used with ldapscheme=ldaps (already TLS)");
		return -EINVAL;
	}
	bool simple = o->prefix || o->suffix;
	if (simple &&
	    (o->basedn || o->binddn || o->bindpasswd || o->searchattribute || o->searchfilter)) {
		snprintf(err, errlen,
		         "ldapprefix/ldapsuffix (simple bind) cannot be mixed with ldapbasedn, "
		         "ldapbinddn, ldapbindpasswd, ldapsearchattribute or ldapsearchfilter "
		         "(search+bind)");
		return -EINVAL;
	}
	if (!simple && !o->basedn) {
		snprintf(err, errlen,
		         "ldapbasedn: required for search+bind (or give ldapprefix/ldapsuffix for "
		         "simple bind)");
		return -EINVAL;
	}
	if (o->searchattribute && o->searchfilter) {
		snprintf(err, errlen,
		         "ldapsearchattribute and ldapsearchfilter: give one, not both");
		return -EINVAL;
	}
	if (o->bindpasswd && !o->binddn) {
		snprintf(err, errlen, "ldapbindpasswd: needs ldapbinddn");
		return -EINVAL;
	}
	if (!o->port)
		o->port = o->ldaps ? 636 : 389;
	if (!o->timeout_ms)
		o->timeout_ms = LDAPAUTH_TIMEOUT_MS;
	return 0;
}

static void free_secret(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void ldap_opts_free(struct ldap_opts *o)
{
	for (int i = 0; i < o->n_servers; i++)
		free(o->servers[i]);
	free(o->prefix);
	free(o->suffix);
	free(o->basedn);
	free(o->binddn);
	free_secret(&o->bindpasswd);
	free(o->searchattribute);
	free(o->searchfilter);
	free(o->cafile);
	memset(o, 0, sizeof(*o));
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int ldap_opts_copy(struct ldap_opts *dst, const struct ldap_opts *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->port = src->port;
	dst->ldaps = src->ldaps;
	dst->starttls = src->starttls;
	dst->timeout_ms = src->timeout_ms;
	int r = 0;
	for (int i = 0; i < src->n_servers && !r; i++) {
		r = dup_opt(&dst->servers[i], src->servers[i]);
		if (!r)
			dst->n_servers++;
	}
	r = r ?: dup_opt(&dst->prefix, src->prefix);
	r = r ?: dup_opt(&dst->suffix, src->suffix);
	r = r ?: dup_opt(&dst->basedn, src->basedn);
	r = r ?: dup_opt(&dst->binddn, src->binddn);
	r = r ?: dup_opt(&dst->bindpasswd, src->bindpasswd);
	r = r ?: dup_opt(&dst->searchattribute, src->searchattribute);
	r = r ?: dup_opt(&dst->searchfilter, src->searchfilter);
	r = r ?: dup_opt(&dst->cafile, src->cafile);
	if (r)
		ldap_opts_free(dst);
	return r;
}

/* ---- escaping --------------------------------------------------------------- */

/* RFC 4515: a value inside a filter; * ( ) \ and NUL as \XX. Returns the
 * length or -ENAMETOOLONG. */
static int escape_filter_value(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (*p == '*' || *p == '(' || *p == ')' || *p == '\\') {
			if (n + 3 >= cap)
				return -ENAMETOOLONG;
			n += (size_t)snprintf(dst + n, cap - n, "\\%02x", *p);
		} else {
			if (n + 1 >= cap)
				return -ENAMETOOLONG;
			dst[n++] = (char)*p;
		}
	}
	dst[n] = 0;
	return (int)n;
}

/* RFC 4514: a value inside a DN (simple bind's prefix + user + suffix). */
static int escape_dn_value(char *dst, size_t cap, const char *src)
{
	size_t n = 0, len = strlen(src);
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		bool esc = strchr(",+\"\\<>;=", c) || (i == 0 && (c == ' ' || c == '#')) ||
		           (i == len - 1 && c == ' ');
		if (n + 2 >= cap)
			return -ENAMETOOLONG;
		if (esc)
			dst[n++] = '\\';
		dst[n++] = c;
	}
	dst[n] = 0;
	return (int)n;
}

/* ldapsearchfilter with every $username replaced by the escaped user, or
 * (attr=user). */
static int build_filter(const struct ldap_opts *o, const char *user, char *out, size_t cap)
{
	char esc[LA_USER_MAX * 3 + 1];
	if (escape_filter_value(esc, sizeof(esc), user) < 0)
		return -ENAMETOOLONG;
	if (!o->searchfilter) {
		int n = snprintf(out, cap, "(%s=%s)",
		                 o->searchattribute ? o->searchattribute : "uid", esc);
		return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
	}
	size_t n = 0;
	for (const char *p = o->searchfilter; *p;) {
		if (!strncmp(p, "$username", 9)) {
			size_t el = strlen(esc);
			if (n + el >= cap)
				return -ENAMETOOLONG;
			memcpy(out + n, esc, el);
			n += el;
			p += 9;
		} else {
			if (n + 1 >= cap)
				return -ENAMETOOLONG;
			out[n++] = *p++;
		}
	}
	out[n] = 0;
	return 0;
}

/* ---- outages ---------------------------------------------------------------- */

/* Per server URI: is it known not to answer? So that an outage gives one
 * line when it starts and one when it ends, whatever the number of logins
 * in between. */
#define OUT_SLOTS 32
struct outage {
	char uri[128];
	bool down;
	uint64_t since_ns, last_fail_ns;
	unsigned long failures;
};

/* A server that failed less than this ago is tried after the others, so
 * that with a hung first server every login does not wait its timeout;
 * after it, it is tried in its place again (and may recover). */
#define DOWN_HOLD_NS (30ull * 1000000000ull)
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static struct outage outages[OUT_SLOTS];

static struct outage *outage_slot(const char *uri)
{
	struct outage *free_slot = NULL;
	for (int i = 0; i < OUT_SLOTS; i++) {
		if (!strcmp(outages[i].uri, uri))
			return &outages[i];
		if (!free_slot && (!outages[i].uri[0] || !outages[i].down))
			free_slot = &outages[i];
	}
	if (!free_slot)
		free_slot = &outages[0];
	memset(free_slot, 0, sizeof(*free_slot));
	snprintf(free_slot->uri, sizeof(free_slot->uri), "%s", uri);
	return free_slot;
}

static void note_down(const char *uri, const char *why)
{
	pthread_mutex_lock(&out_mu);
	struct outage *s = outage_slot(uri);
	bool first = !s->down;
	if (first) {
		s->down = true;
		s->since_ns = worker_now_ns();
		s->failures = 0;
	}
	s->failures++;
	s->last_fail_ns = worker_now_ns();
	pthread_mutex_unlock(&out_mu);
	if (first)
		log_warn(
		    "ldap: server %s is unreachable or unusable: %s (logged once until it answers "
		    "again)",
		    uri, why);
}

static bool recently_down(const char *uri)
{
	bool r = false;
	pthread_mutex_lock(&out_mu);
	for (int i = 0; i < OUT_SLOTS; i++) {
		if (!strcmp(outages[i].uri, uri)) {
			r = outages[i].down &&
			    worker_now_ns() - outages[i].last_fail_ns < DOWN_HOLD_NS;
			break;
		}
	}
	pthread_mutex_unlock(&out_mu);
	return r;
}

static void note_up(const char *uri)
{
	pthread_mutex_lock(&out_mu);
	struct outage *s = outage_slot(uri);
	bool was_down = s->down;
	uint64_t since = s->since_ns;
	unsigned long failures = s->failures;
	s->down = false;
	pthread_mutex_unlock(&out_mu);
	if (was_down)
		log_info("ldap: server %s answers again after %.1f s (%lu failed attempts)", uri,
		         (double)(worker_now_ns() - since) / 1e9, failures);
}

/* ---- one check -------------------------------------------------------------- */

struct ldapauth_req {
	struct ldapauth_req *next;
	struct worker_msg msg;
	struct worker *w;
	ldapauth_done_fn *done;
	void *arg;
	bool cancelled; /* atomic: set on w's thread, read by the pool too */
	struct ldap_opts o;
	char user[LA_USER_MAX];
	char password[LA_PW_MAX];
	int result;
	char why[LA_WHY_MAX];
};

static void req_free(struct ldapauth_req *r)
{
	ldap_opts_free(&r->o);
	OPENSSL_cleanse(r->password, sizeof(r->password));
	free(r);
}

/* Did the server not answer (try the next one), as opposed to answering
 * with a refusal? */
static bool no_answer(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	       rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR;
}

/* "what: libldap's text (server's diagnostic)" into why. */
static void say(char *why, size_t cap, LDAP *ld, const char *what, int rc)
{
	char *diag = NULL;
	if (ld)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	/* Debian's libldap uses GnuTLS: a failed handshake leaves "(unknown
	 * error code)" as the diagnostic, which says nothing */
	if (diag && *diag && strcmp(diag, "(unknown error code)"))
		snprintf(why, cap, "%s: %s (%s)", what, ldap_err2string(rc), diag);
	else
		snprintf(why, cap, "%s: %s", what, ldap_err2string(rc));
	if (diag)
		ldap_memfree(diag);
}

static int bind_simple(LDAP *ld, const char *dn, const char *pw, size_t pwlen)
{
	struct berval cred = {.bv_val = (char *)pw, .bv_len = pwlen};
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* ldaps: libldap does not tell a refused connection from a failed
 * handshake */
#define LDAPS_FAILED                                                                               \
	"connect or TLS handshake failed (server down, or its certificate not trusted by "         \
	"ldapcafile or not naming it)"

/* One server: 0, -EACCES (it answered no), -EHOSTUNREACH (it did not
 * answer or its TLS could not be trusted). */
static int check_on(struct ldapauth_req *r, const char *uri, char *why, size_t cap)
{
	const struct ldap_opts *o = &r->o;
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, uri);
	if (rc != LDAP_SUCCESS) {
		say(why, cap, NULL, "bad server address", rc);
		return -EHOSTUNREACH;
	}
	int version = LDAP_VERSION3;
	struct timeval tv = {.tv_sec = o->timeout_ms / 1000,
	                     .tv_usec = (o->timeout_ms % 1000) * 1000};
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	if (o->ldaps || o->starttls) {
		/* this handle's own TLS context: the CA of this rule, the
		 * certificate and host name always checked */
		int demand = LDAP_OPT_X_TLS_DEMAND, min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, zero = 0;
		ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
		ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min);
		if (o->cafile)
			ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, o->cafile);
		rc = ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
		if (rc != LDAP_OPT_SUCCESS) {
			snprintf(why, cap, "cannot set up TLS (CA file %s)",
			         o->cafile ? o->cafile : "of the system");
			ldap_unbind_ext_s(ld, NULL, NULL);
			return -EHOSTUNREACH;
		}
	}
	int ret;
	if (o->starttls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			/* LDAP_CONNECT_ERROR: the server agreed, then the
			 * handshake or the certificate check failed; else it
			 * is down or refused StartTLS */
			say(why, cap, ld,
			    rc == LDAP_CONNECT_ERROR
			        ? "StartTLS: TLS handshake failed (server certificate not trusted "
			          "by ldapcafile or not naming it)"
			        : "StartTLS",
			    rc);
			ret = -EHOSTUNREACH;
			goto out;
		}
	}
	size_t pwlen = strlen(r->password);
	if (!o->basedn) {
		char esc[LA_USER_MAX * 2 + 1], dn[LA_FILTER_MAX];
		if (escape_dn_value(esc, sizeof(esc), r->user) < 0 ||
		    (size_t)snprintf(dn, sizeof(dn), "%s%s%s", o->prefix ? o->prefix : "", esc,
		                     o->suffix ? o->suffix : "") >= sizeof(dn)) {
			snprintf(why, cap, "user name too long for a DN");
			ret = -EACCES;
			goto out;
		}
		rc = bind_simple(ld, dn, r->password, pwlen);
		if (rc == LDAP_SUCCESS)
			ret = 0;
		else if (no_answer(rc)) {
			say(why, cap, ld, o->ldaps ? LDAPS_FAILED : "bind", rc);
			ret = -EHOSTUNREACH;
		} else {
			char what[LA_FILTER_MAX + 32];
			snprintf(what, sizeof(what), "bind as \"%s\"", dn);
			say(why, cap, ld, what, rc);
			ret = -EACCES;
		}
		goto out;
	}

	/* search+bind: first as the search DN (anonymous without one) */
	const char *bpw = o->bindpasswd ? o->bindpasswd : "";
	rc = bind_simple(ld, o->binddn ? o->binddn : "", bpw, strlen(bpw));
	if (rc != LDAP_SUCCESS) {
		char what[512];
		snprintf(what, sizeof(what), "bind as search DN \"%s\"",
		         o->binddn ? o->binddn : "(anonymous)");
		if (no_answer(rc) && o->ldaps)
			snprintf(what, sizeof(what), "%s", LDAPS_FAILED);
		say(why, cap, ld, what, rc);
		ret = no_answer(rc) ? -EHOSTUNREACH : -EACCES;
		goto out;
	}
	char filter[LA_FILTER_MAX];
	if (build_filter(o, r->user, filter, sizeof(filter))) {
		snprintf(why, cap, "user name too long for the search filter");
		ret = -EACCES;
		goto out;
	}
	char *attrs[] = {LDAP_NO_ATTRS, NULL};
	LDAPMessage *res = NULL;
	/* size limit 2: more than one entry is an error, no need for all */
	rc = ldap_search_ext_s(ld, o->basedn, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, &tv,
	                       2, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		char what[LA_FILTER_MAX + 64];
		snprintf(what, sizeof(what), "search %s under \"%s\"", filter, o->basedn);
		say(why, cap, ld, what, rc);
		ret = no_answer(rc) ? -EHOSTUNREACH : -EACCES;
		if (res)
			ldap_msgfree(res);
		goto out;
	}
	int n = ldap_count_entries(ld, res);
	if (n != 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		snprintf(why, cap, "%s for %.200s under \"%.200s\"",
		         n == 0 ? "no entry" : "more than one entry", filter, o->basedn);
		ldap_msgfree(res);
		ret = -EACCES;
		goto out;
	}
	char *dn = ldap_get_dn(ld, ldap_first_entry(ld, res));
	ldap_msgfree(res);
	if (!dn) {
		snprintf(why, cap, "entry for %.300s has no DN", filter);
		ret = -EACCES;
		goto out;
	}
	rc = bind_simple(ld, dn, r->password, pwlen);
	if (rc == LDAP_SUCCESS)
		ret = 0;
	else {
		char what[LA_FILTER_MAX + 32];
		snprintf(what, sizeof(what), "bind as \"%s\"", dn);
		say(why, cap, ld, what, rc);
		ret = no_answer(rc) ? -EHOSTUNREACH : -EACCES;
	}
	ldap_memfree(dn);
out:
	ldap_unbind_ext_s(ld, NULL, NULL);
	return ret;
}

static void run_check(struct ldapauth_req *r)
{
	const struct ldap_opts *o = &r->o;
	size_t used = 0;
	r->why[0] = 0;
	/* the servers in their order, those that failed lately last */
	char uris[LDAP_SERVERS_MAX][128];
	int order[LDAP_SERVERS_MAX], n = 0, n_late = 0, late[LDAP_SERVERS_MAX];
	for (int i = 0; i < o->n_servers; i++) {
		bool v6 = strchr(o->servers[i], ':') != NULL;
		snprintf(uris[i], sizeof(uris[i]), "%s://%s%s%s:%d", o->ldaps ? "ldaps" : "ldap",
		         v6 ? "[" : "", o->servers[i], v6 ? "]" : "", o->port);
		if (o->n_servers > 1 && recently_down(uris[i]))
			late[n_late++] = i;
		else
			order[n++] = i;
	}
	for (int i = 0; i < n_late; i++)
		order[n++] = late[i];
	for (int k = 0; k < n; k++) {
		const char *uri = uris[order[k]];
		char why[LA_WHY_MAX];
		why[0] = 0;
		int rc = check_on(r, uri, why, sizeof(why));
		if (rc != -EHOSTUNREACH) {
			note_up(uri);
			r->result = rc;
			snprintf(r->why, sizeof(r->why), "%s: %.380s", uri,
			         rc ? why : "password accepted");
			return;
		}
		note_down(uri, why);
		int w = snprintf(r->why + used, sizeof(r->why) - used, "%s%s: %s", used ? "; " : "",
		                 uri, why);
		if (w > 0)
			used = used + (size_t)w < sizeof(r->why) ? used + (size_t)w
			                                         : sizeof(r->why) - 1;
	}
	r->result = -EHOSTUNREACH;
	static const char head[] = "no LDAP server answered: ";
	size_t hl = sizeof(head) - 1;
	memmove(r->why + hl, r->why, sizeof(r->why) - hl - 1);
	memcpy(r->why, head, hl);
	r->why[sizeof(r->why) - 1] = 0;
}

/* ---- pool ------------------------------------------------------------------- */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct ldapauth_req *q_head, *q_tail;
static int q_len;
static pthread_t threads[LDAPAUTH_THREADS];
static int n_threads;
static bool stopping;

static void deliver(struct worker *w, struct worker_msg *m)
{
	struct ldapauth_req *r =
	    (struct ldapauth_req *)((char *)m - offsetof(struct ldapauth_req, msg));
	if (!__atomic_load_n(&r->cancelled, __ATOMIC_ACQUIRE))
		r->done(w, r->arg, r->result, r->why);
	req_free(r);
}

/* From any thread: to w's mailbox, or freed when w's loop has ended. */
static void answer(struct ldapauth_req *r)
{
	OPENSSL_cleanse(r->password, sizeof(r->password));
	if (worker_post(r->w, &r->msg) < 0)
		req_free(r);
}

static void *la_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_mu);
		while (!q_head && !stopping)
			pthread_cond_wait(&q_cv, &q_mu);
		if (!q_head) {
			pthread_mutex_unlock(&q_mu);
			return NULL;
		}
		struct ldapauth_req *r = q_head;
		q_head = r->next;
		if (!q_head)
			q_tail = NULL;
		q_len--;
		pthread_mutex_unlock(&q_mu);
		r->next = NULL;
		if (stopping) {
			r->result = -EHOSTUNREACH;
			snprintf(r->why, sizeof(r->why), "shutting down");
		} else if (__atomic_load_n(&r->cancelled, __ATOMIC_ACQUIRE)) {
			/* its client left (e.g. its login timed out while an
			 * outage held the queue): no server is asked for it */
			r->result = -ECANCELED;
		} else
			run_check(r);
		answer(r);
	}
}

static void global_init(void)
{
	/* libldap's global defaults are set up on first use and that is not
	 * safe from several threads at once: do it here, once */
	int version = LDAP_VERSION3;
	ldap_set_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
}

static int start_threads(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, global_init);
	while (n_threads < LDAPAUTH_THREADS) {
		int r = pthread_create(&threads[n_threads], NULL, la_main, NULL);
		if (r) {
			log_error("cannot start an LDAP authentication thread: %s", strerror(r));
			break;
		}
		n_threads++;
	}
	return n_threads ? 0 : -ENOMEM;
}

int ldapauth_start(const struct ldap_opts *o, const char *user, const char *password,
                   struct worker *w, ldapauth_done_fn *done, void *arg, struct ldapauth_req **req)
{
	struct ldapauth_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->w = w;
	r->done = done;
	r->arg = arg;
	r->msg.fn = deliver;
	if (ldap_opts_copy(&r->o, o)) {
		free(r);
		return -ENOMEM;
	}
	if (req)
		*req = r;
	size_t ul = strlen(user), pl = strlen(password);
	if (!pl || !ul || ul >= sizeof(r->user) || pl >= sizeof(r->password)) {
		/* refused before any bind: an empty password would be an
		 * unauthenticated bind, which servers accept */
		r->result = -EACCES;
		snprintf(r->why, sizeof(r->why), "%s",
		         !pl                     ? "empty password refused (no LDAP bind made)"
		         : !ul                   ? "empty user name"
		         : ul >= sizeof(r->user) ? "user name too long"
		                                 : "password too long");
		int pr = worker_post(w, &r->msg);
		if (pr < 0) {
			req_free(r);
			return pr;
		}
		return 0;
	}
	memcpy(r->user, user, ul + 1);
	memcpy(r->password, password, pl + 1);

	pthread_mutex_lock(&q_mu);
	int rc = 0;
	if (stopping)
		rc = -ESHUTDOWN;
	else if (q_len >= LDAPAUTH_QUEUE_MAX)
		rc = -EAGAIN;
	else
		rc = start_threads();
	if (!rc) {
		if (q_tail)
			q_tail->next = r;
		else
			q_head = r;
		q_tail = r;
		q_len++;
		pthread_cond_signal(&q_cv);
	}
	pthread_mutex_unlock(&q_mu);
	if (rc) {
		if (req)
			*req = NULL;
		req_free(r);
	}
	return rc;
}

void ldapauth_cancel(struct ldapauth_req *req)
{
	if (req)
		__atomic_store_n(&req->cancelled, true, __ATOMIC_RELEASE);
}

void ldapauth_shutdown(void)
{
	pthread_mutex_lock(&q_mu);
	stopping = true;
	pthread_cond_broadcast(&q_cv);
	int n = n_threads;
	pthread_mutex_unlock(&q_mu);
	for (int i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_lock(&q_mu);
	n_threads = 0;
	pthread_mutex_unlock(&q_mu);
}
