/*
 * helioctl import-pgbouncer: pgbouncer.ini (plus its userlist and hba
 * file) into a HeliosProxy TOML, with one report line per key saying what
 * it became or why it could not be mapped. Local only: no control plane.
 * The output is rewritten whole on each run (written to a temporary file,
 * then renamed), so the operator edits the ini and runs it again.
 */
#include "cli/helioctl.h"
#include "cli/pgbini.h"
#include "common/sbuf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PGBI_MAX_NODES 64
#define PGBI_MAX_PAIRS 32

/* Where a mapped key goes in the TOML. */
enum pgbi_sect { S_TOP, S_POOL, S_AUTH, S_TLS, S_N };
static const char *const sect_name[S_N] = {"", "pool_mode", "auth", "tls"};

enum pgbi_kind {
	K_INT,       /* integer as is */
	K_SECS,      /* PgBouncer seconds (may have a fraction) -> whole seconds */
	K_MS,        /* PgBouncer seconds -> milliseconds */
	K_BOOL,      /* 0/1, yes/no, on/off, true/false */
	K_STR,       /* string as is */
	K_PATH,      /* file name, made absolute against the ini's folder */
	K_SPECIAL,   /* handled by its own code below */
	K_NONE,      /* no HeliosProxy key: why says what to do instead */
	K_NOTNEEDED, /* HeliosProxy does it always: why says how */
};

struct pgbi_key {
	const char *name; /* PgBouncer name */
	enum pgbi_kind kind;
	enum pgbi_sect sect;
	const char *key; /* HeliosProxy key in sect */
	/* PgBouncer's default when it differs from HeliosProxy's: written
	 * when the ini does not set the key, so behaviour stays the same. */
	const char *pgb_default;
	const char *why;
};

static const char no_tcp_tuning[] =
    "HeliosProxy uses the kernel's TCP settings (server sockets get SO_KEEPALIVE); set "
    "net.ipv4.tcp_keepalive_* with sysctl";
static const char no_tls_tuning[] =
    "HeliosProxy uses OpenSSL's defaults with TLS 1.2 at least; not configurable";
static const char no_buffers[] = "HeliosProxy sizes its buffers itself; nothing to set";

static const struct pgbi_key keys[] = {
    {"listen_addr", K_SPECIAL, S_TOP, "listen_address", NULL, NULL},
    {"listen_port", K_SPECIAL, S_TOP, "listen_address", NULL, NULL},
    {"unix_socket_dir", K_PATH, S_TOP, "unix_socket_dir", NULL, NULL},
    {"unix_socket_mode", K_NONE, 0, NULL, NULL,
     "the Unix socket is made mode 0777, PostgreSQL's default; restrict the folder instead"},
    {"unix_socket_group", K_NONE, 0, NULL, NULL,
     "the Unix socket keeps the process's group; restrict the folder instead"},
    {"auth_type", K_SPECIAL, S_AUTH, "method", "md5", NULL},
    {"auth_file", K_SPECIAL, S_AUTH, "users_file", NULL, NULL},
    {"auth_hba_file", K_SPECIAL, S_AUTH, "hba_file", NULL, NULL},
    {"auth_ident_file", K_PATH, S_TLS, "ident_file", NULL, NULL},
    {"auth_query", K_STR, S_AUTH, "auth_query", NULL, NULL},
    {"auth_user", K_STR, S_AUTH, "auth_user", NULL, NULL},
    {"auth_dbname", K_NONE, 0, NULL, NULL,
     "auth_query runs in the database the client asked for; create the lookup function "
     "there"},
    {"pool_mode", K_SPECIAL, S_POOL, "mode", NULL, NULL},
    {"default_pool_size", K_INT, S_POOL, "max_pool_size", NULL, NULL},
    {"min_pool_size", K_INT, S_POOL, "min_idle", NULL, NULL},
    {"reserve_pool_size", K_INT, S_POOL, "reserve_pool_size", NULL, NULL},
    {"reserve_pool_timeout", K_MS, S_POOL, "reserve_pool_timeout_ms", NULL, NULL},
    {"max_client_conn", K_INT, S_TOP, "max_client_conn", "100", NULL},
    {"max_db_connections", K_INT, S_POOL, "max_db_connections", NULL, NULL},
    {"max_user_connections", K_INT, S_POOL, "max_user_connections", NULL, NULL},
    {"server_reset_query", K_STR, S_POOL, "reset_query", NULL, NULL},
    {"server_reset_query_always", K_SPECIAL, 0, NULL, NULL, NULL},
    {"server_check_query", K_NONE, 0, NULL, NULL,
     "an idle server is not probed before reuse: a broken one is replaced when it fails, and "
     "the control plane probes every node (health_check_interval_secs)"},
    {"server_check_delay", K_NONE, 0, NULL, NULL,
     "an idle server is not probed before reuse: a broken one is replaced when it fails, and "
     "the control plane probes every node (health_check_interval_secs)"},
    {"server_lifetime", K_SPECIAL, S_POOL, "server_lifetime_secs", NULL, NULL},
    {"server_idle_timeout", K_SECS, S_POOL, "idle_timeout_secs", NULL, NULL},
    {"server_connect_timeout", K_SECS, S_POOL, "server_connect_timeout_secs", "15", NULL},
    {"server_login_retry", K_NONE, 0, NULL, NULL,
     "after failed connects the node's circuit breaker waits "
     "circuit_breaker.recovery_timeout_secs before the next try"},
    {"server_round_robin", K_NONE, 0, NULL, NULL,
     "idle servers are reused most recently used first; no setting"},
    {"server_fast_close", K_NONE, 0, NULL, NULL,
     "servers are closed at release when they are due (server_lifetime_secs, reload)"},
    {"query_timeout", K_SECS, S_POOL, "query_timeout_secs", NULL, NULL},
    {"query_wait_timeout", K_SECS, S_POOL, "query_wait_timeout_secs", NULL, NULL},
    {"cancel_wait_timeout", K_NONE, 0, NULL, NULL, "cancel requests are forwarded at once"},
    {"client_idle_timeout", K_SECS, S_TOP, "client_idle_timeout_secs", NULL, NULL},
    {"idle_transaction_timeout", K_SECS, S_POOL, "idle_transaction_timeout_secs", NULL, NULL},
    {"client_login_timeout", K_SECS, S_TOP, "client_login_timeout_secs", NULL, NULL},
    {"autodb_idle_timeout", K_NONE, 0, NULL, NULL,
     "pools of databases reached through \"*\" close their servers with "
     "pool_mode.idle_timeout_secs like any other"},
    {"suspend_timeout", K_NONE, 0, NULL, NULL,
     "no SUSPEND; heliosproxy --takeover restarts without it"},
    {"client_tls_sslmode", K_SPECIAL, S_TLS, "client_mode", NULL, NULL},
    {"client_tls_key_file", K_PATH, S_TLS, "key_file", NULL, NULL},
    {"client_tls_cert_file", K_PATH, S_TLS, "cert_file", NULL, NULL},
    {"client_tls_ca_file", K_PATH, S_TLS, "client_ca_file", NULL, NULL},
    {"client_tls_protocols", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"client_tls_ciphers", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"client_tls13_ciphers", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"client_tls_ecdhcurve", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"client_tls_dheparams", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"server_tls_sslmode", K_SPECIAL, S_TLS, "server_mode", NULL, NULL},
    {"server_tls_ca_file", K_PATH, S_TLS, "ca_file", NULL, NULL},
    {"server_tls_cert_file", K_PATH, S_TLS, "server_cert_file", NULL, NULL},
    {"server_tls_key_file", K_PATH, S_TLS, "server_key_file", NULL, NULL},
    {"server_tls_protocols", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"server_tls_ciphers", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"server_tls13_ciphers", K_NONE, 0, NULL, NULL, no_tls_tuning},
    {"admin_users", K_STR, S_TOP, "admin_users", NULL, NULL},
    {"stats_users", K_STR, S_TOP, "stats_users", NULL, NULL},
    {"ignore_startup_parameters", K_NOTNEEDED, 0, NULL, NULL,
     "every startup parameter is accepted: session mode opens the server with the client's "
     "own, transaction mode replays them on each server (docs/pooling.md)"},
    {"track_extra_parameters", K_NOTNEEDED, 0, NULL, NULL,
     "every parameter a client sets is tracked and replayed in transaction mode "
     "(docs/pooling.md)"},
    {"max_prepared_statements", K_SPECIAL, S_POOL, "max_prepared_statements", NULL, NULL},
    {"application_name_add_host", K_NONE, 0, NULL, NULL,
     "application_name goes to the server as the client sent it; the client's address is "
     "in helioctl clients and the connect log line"},
    {"log_connections", K_BOOL, S_TOP, "log_connections", "1", NULL},
    {"log_disconnections", K_BOOL, S_TOP, "log_disconnections", "1", NULL},
    {"log_pooler_errors", K_NOTNEEDED, 0, NULL, NULL,
     "errors the proxy sends clients are always logged"},
    {"log_stats", K_NONE, 0, NULL, NULL,
     "the periodic stats line is on while stats_period_secs > 0"},
    {"stats_period", K_SECS, S_TOP, "stats_period_secs", NULL, NULL},
    {"verbose", K_SPECIAL, S_TOP, "log_level", NULL, NULL},
    {"syslog", K_BOOL, S_TOP, "syslog", NULL, NULL},
    {"syslog_ident", K_STR, S_TOP, "syslog_ident", NULL, NULL},
    {"syslog_facility", K_STR, S_TOP, "syslog_facility", NULL, NULL},
    {"logfile", K_NONE, 0, NULL, NULL,
     "the log goes to stderr (the journal under systemd) and to syslog with syslog = true"},
    {"pidfile", K_NONE, 0, NULL, NULL, "no pid file: run it under systemd (docs/systemd.md)"},
    {"user", K_NONE, 0, NULL, NULL,
     "it does not change user: start it as that user (systemd User=)"},
    {"so_reuseport", K_NOTNEEDED, 0, NULL, NULL,
     "every worker thread already listens with SO_REUSEPORT; several processes on one port "
     "are not supported, use heliosproxy --takeover to restart"},
    {"tcp_keepalive", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_keepcnt", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_keepidle", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_keepintvl", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_user_timeout", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_defer_accept", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"tcp_socket_buffer", K_NONE, 0, NULL, NULL, no_tcp_tuning},
    {"listen_backlog", K_NONE, 0, NULL, NULL, "the listen backlog is the kernel's somaxconn"},
    {"pkt_buf", K_NONE, 0, NULL, NULL, no_buffers},
    {"max_packet_size", K_NONE, 0, NULL, NULL, no_buffers},
    {"sbuf_loopcnt", K_NONE, 0, NULL, NULL, no_buffers},
    {"dns_max_ttl", K_NONE, 0, NULL, NULL,
     "node host names are resolved at each connect by the system resolver"},
    {"dns_nxdomain_ttl", K_NONE, 0, NULL, NULL,
     "node host names are resolved at each connect by the system resolver"},
    {"dns_zone_check_period", K_NONE, 0, NULL, NULL,
     "node host names are resolved at each connect by the system resolver"},
    {"resolv_conf", K_NONE, 0, NULL, NULL, "the system resolver (/etc/resolv.conf) is used"},
    {"disable_pqexec", K_NONE, 0, NULL, NULL, "multi-statement simple queries are always allowed"},
    {"server_tls_ca_path", K_NONE, 0, NULL, NULL, "give one CA bundle file (tls.ca_file)"},
    {"peer_id", K_NONE, 0, NULL, NULL,
     "no peering: cancel requests reach the right process because one process serves a port"},
    {"max_db_client_connections", K_NONE, 0, NULL, NULL,
     "no per-database client cap; tenants.max_connections caps a tenant's clients"},
    {"max_user_client_connections", K_NONE, 0, NULL, NULL,
     "no per-user client cap; tenants.max_connections caps a tenant's clients"},
    {"query_wait_notify", K_NONE, 0, NULL, NULL, "waiting clients are not sent a notice"},
    {"service_name", K_NONE, 0, NULL, NULL, "Windows only"},
    {"job_name", K_NONE, 0, NULL, NULL, "Windows only"},
    {"conffile", K_NONE, 0, NULL, NULL, "the config file is the one given at start"},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct pgbi_node {
	char host[256];
	int port;
	char name[64];
};

struct imp {
	const char *ini_path, *out_path, *userlist, *hba;
	char ini_dir[PATH_MAX], out_dir[PATH_MAX], out_stem[PATH_MAX];
	struct pgbini ini;
	struct table rep;
	struct sbuf sect[S_N], nodes, dbs, users, head;
	struct pgbi_node node[PGBI_MAX_NODES];
	size_t n_nodes;
	unsigned n_mapped, n_default, n_unmapped, n_notneeded;
	const char *unix_dir;    /* unix_socket_dir: where host-less databases connect */
	char hba_path[PATH_MAX]; /* translated hba file to write, if any */
	struct sbuf hba_text;
	bool failed; /* an error that makes the output unusable */
};

static const char *last_slash_dir(const char *path, char *dir, size_t cap)
{
	const char *s = strrchr(path, '/');
	if (!s)
		snprintf(dir, cap, ".");
	else if (s == path)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(s - path), path);
	return dir;
}

/* ---- TOML output ---- */

static void toml_str(struct sbuf *b, const char *s)
{
	sbuf_putc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sbuf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			sbuf_printf(b, "\\u%04x", c);
		else
			sbuf_putc(b, (char)c);
	}
	sbuf_putc(b, '"');
}

/* ---- report ---- */

static const char *src_of(const struct imp *im, const struct pgbini_ent *e, char *buf, size_t cap)
{
	(void)im;
	if (!e)
		snprintf(buf, cap, "(default)");
	else
		snprintf(buf, cap, "%s:%d", e->file, e->line);
	return buf;
}

__attribute__((format(printf, 5, 6))) static void report(struct imp *im, const struct pgbini_ent *e,
                                                         const char *what, const char *status,
                                                         const char *fmt, ...)
{
	char src[PATH_MAX + 16], *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	table_add(&im->rep, "%s", src_of(im, e, src, sizeof(src)));
	table_add(&im->rep, "%s", what);
	table_add(&im->rep, "%s", status);
	table_add(&im->rep, "%s", msg ? msg : "(out of memory)");
	if (!strcmp(status, "not-mapped") || !strcmp(status, "error"))
		sbuf_printf(&im->head, "# %s %s: %s\n", status, what, msg ? msg : "");
	if (!strcmp(status, "not-mapped"))
		im->n_unmapped++;
	else if (!strcmp(status, "error")) {
		im->n_unmapped++;
		im->failed = true;
	} else if (!strcmp(status, "default"))
		im->n_default++;
	else if (!strcmp(status, "not-needed"))
		im->n_notneeded++;
	else
		im->n_mapped++;
	free(msg);
}

/* ---- values ---- */

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"1", "yes", "on", "true"}, *const no[] = {"0", "no",
	                                                                            "off", "false"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(v, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

static int parse_long(const char *v, long *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0)
		return -EINVAL;
	*out = n;
	return 0;
}

/* PgBouncer times are seconds, fractions allowed ("0.5"). */
static int parse_secs(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= 0) || d > 1e9)
		return -EINVAL;
	*out = d;
	return 0;
}

static void path_value(const struct imp *im, const char *v, char *out, size_t cap)
{
	int n = (!v[0] || v[0] == '/') ? snprintf(out, cap, "%s", v)
	                               : snprintf(out, cap, "%s/%s", im->ini_dir, v);
	if (n < 0 || (size_t)n >= cap)
		out[0] = '\0'; /* too long for a path: check-config then names the key */
}

/* Writes `key = <v as kind>` into the section; reports it. */
static void put_simple(struct imp *im, const struct pgbi_key *k, const struct pgbini_ent *e,
                       const char *v, const char *status)
{
	struct sbuf *b = &im->sect[k->sect];
	char what[128], path[PATH_MAX], full[160];
	long n;
	double d;
	bool t;

	snprintf(what, sizeof(what), "[pgbouncer] %s", k->name);
	snprintf(full, sizeof(full), "%s%s%s", sect_name[k->sect], k->sect ? "." : "", k->key);
	switch (k->kind) {
	case K_INT:
		if (parse_long(v, &n) < 0)
			return report(im, e, what, "error", "'%s' is not a whole number", v);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		return report(im, e, what, status, "%s = %ld", full, n);
	case K_SECS:
		if (parse_secs(v, &d) < 0)
			return report(im, e, what, "error", "'%s' is not a number of seconds", v);
		n = (long)ceil(d);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		if ((double)n != d)
			return report(im, e, what, status,
			              "%s = %ld (whole seconds, rounded up from %s)", full, n, v);
		return report(im, e, what, status, "%s = %ld", full, n);
	case K_MS:
		if (parse_secs(v, &d) < 0)
			return report(im, e, what, "error", "'%s' is not a number of seconds", v);
		n = (long)ceil(d * 1000.0);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		return report(im, e, what, status, "%s = %ld", full, n);
	case K_BOOL:
		if (parse_bool(v, &t) < 0)
			return report(im, e, what, "error", "'%s' is not a boolean", v);
		sbuf_printf(b, "%s = %s\n", k->key, t ? "true" : "false");
		return report(im, e, what, status, "%s = %s", full, t ? "true" : "false");
	case K_PATH:
		path_value(im, v, path, sizeof(path));
		sbuf_printf(b, "%s = ", k->key);
		toml_str(b, path);
		sbuf_putc(b, '\n');
		return report(im, e, what, status, "%s = \"%s\"", full, path);
	default:
		sbuf_printf(b, "%s = ", k->key);
		toml_str(b, v);
		sbuf_putc(b, '\n');
		return report(im, e, what, status, "%s = \"%s\"", full, v);
	}
}

static const struct pgbini_ent *find_last(const struct imp *im, const char *section,
                                          const char *key)
{
	for (size_t i = im->ini.n; i-- > 0;)
		if (!strcmp(im->ini.e[i].section, section) && !strcasecmp(im->ini.e[i].key, key))
			return &im->ini.e[i];
	return NULL;
}

static const char *val_of(const struct imp *im, const char *key, const char *def)
{
	const struct pgbini_ent *e = find_last(im, "pgbouncer", key);
	return e ? e->val : def;
}

/* ---- [pgbouncer] specials ---- */

static void map_listen(struct imp *im)
{
	const struct pgbini_ent *a = find_last(im, "pgbouncer", "listen_addr");
	const struct pgbini_ent *p = find_last(im, "pgbouncer", "listen_port");
	const char *port = p ? p->val : "6432";
	char addr[256], val[300];
	size_t len;
	long n;

	if (parse_long(port, &n) < 0 || n < 1 || n > 65535) {
		report(im, p, "[pgbouncer] listen_port", "error", "'%s' is not a port", port);
		return;
	}
	if (!a || !a->val[0]) {
		/* PgBouncer without listen_addr has no TCP listener; HeliosProxy
		 * always has one, so the closest is loopback only. */
		snprintf(addr, sizeof(addr), "127.0.0.1");
		report(im, a, "[pgbouncer] listen_addr", "not-mapped",
		       "PgBouncer listens on no TCP address without it, HeliosProxy always does: "
		       "listen_address uses 127.0.0.1");
	} else {
		len = strcspn(a->val, ", \t");
		snprintf(addr, sizeof(addr), "%.*s", (int)len, a->val);
		if (a->val[len])
			report(im, a, "[pgbouncer] listen_addr", "not-mapped",
			       "HeliosProxy listens on one address: only %s is used, not '%s'",
			       addr, a->val + len + strspn(a->val + len, ", \t"));
		if (!strcmp(addr, "*")) {
			snprintf(addr, sizeof(addr), "0.0.0.0");
			report(
			    im, a, "[pgbouncer] listen_addr", "not-mapped",
			    "* is every IPv4 and IPv6 address in PgBouncer; HeliosProxy listens on "
			    "one: 0.0.0.0 (every IPv4 address)");
		}
	}
	if (strchr(addr, ':'))
		snprintf(val, sizeof(val), "[%s]:%ld", addr, n);
	else
		snprintf(val, sizeof(val), "%s:%ld", addr, n);
	sbuf_puts(&im->sect[S_TOP], "listen_address = ");
	toml_str(&im->sect[S_TOP], val);
	sbuf_putc(&im->sect[S_TOP], '\n');
	if (a && a->val[0])
		report(im, a, "[pgbouncer] listen_addr", "mapped", "listen_address = \"%s\"", val);
	report(im, p, "[pgbouncer] listen_port", p ? "mapped" : "default",
	       "listen_address = \"%s\"%s", val, p ? "" : " (PgBouncer's default port 6432)");
}

/*
 * auth_hba_file into HeliosProxy's pg_hba dialect. Lines HeliosProxy reads
 * the same are copied; a method it lacks (peer, pam, gss, ...) becomes
 * reject, so the translation never lets in someone PgBouncer refused.
 * Written next to the output (or referenced as is without -o, when no line
 * needs a change).
 */
static int map_hba(struct imp *im, const struct pgbini_ent *e, const char *src)
{
	static const char *const ok_methods[] = {"trust",         "reject",   "md5",
	                                         "scram-sha-256", "password", "cert"};
	char what[PATH_MAX + 32], out[PATH_MAX], line[4096];
	FILE *f = fopen(src, "r");
	struct sbuf b;
	int ln = 0, changed = 0;

	snprintf(what, sizeof(what), "%s", e ? "[pgbouncer] auth_hba_file" : "--hba");
	if (!f) {
		report(im, e, what, "error", "%s: %s", src, strerror(errno));
		return -errno;
	}
	sbuf_init(&b);
	sbuf_printf(&b,
	            "# Written by helioctl import-pgbouncer from %s; rerun it after editing "
	            "that file.\n",
	            src);
	while (fgets(line, sizeof(line), f)) {
		char copy[4096], *tok[8], *save = NULL, *t;
		size_t nt = 0, i;
		bool known = false;

		ln++;
		snprintf(copy, sizeof(copy), "%s", line);
		copy[strcspn(copy, "#\n")] = '\0';
		for (t = strtok_r(copy, " \t\r", &save); t && nt < 8;
		     t = strtok_r(NULL, " \t\r", &save))
			tok[nt++] = t;
		if (nt == 0) {
			sbuf_puts(&b, line);
			continue;
		}
		/* method: 4th field for local, 5th for host* (a mask field
		 * makes it the 6th) */
		size_t mi = !strcmp(tok[0], "local") ? 3 : 4;
		if (mi < nt && strchr(tok[3], '.') && tok[4] && strchr(tok[4], '.') &&
		    isdigit((unsigned char)tok[4][0]))
			mi = 5;
		for (i = 0; mi < nt && i < sizeof(ok_methods) / sizeof(ok_methods[0]); i++)
			known |= !strcmp(tok[mi], ok_methods[i]);
		bool odd_names =
		    (nt > 2 && (!strcmp(tok[1], "sameuser") || !strcmp(tok[1], "samerole") ||
		                !strcmp(tok[1], "replication") || tok[2][0] == '+'));
		if (known && !odd_names) {
			sbuf_puts(&b, line);
			continue;
		}
		changed++;
		line[strcspn(line, "\n")] = '\0';
		sbuf_printf(&b, "# import-pgbouncer: was `%s`\n", line);
		if (odd_names) {
			sbuf_printf(&b, "%s all all%s reject\n", tok[0],
			            strcmp(tok[0], "local") ? " all" : "");
			report(
			    im, e, what, "not-mapped",
			    "%s:%d: sameuser, samerole, replication and +group are not supported; "
			    "the line became a reject for everyone it could match: list the "
			    "names",
			    src, ln);
		} else {
			for (i = 0; i < mi && i < nt; i++)
				sbuf_printf(&b, "%s%s", i ? " " : "", tok[i]);
			sbuf_puts(&b, " reject\n");
			report(im, e, what, "not-mapped",
			       "%s:%d: method %s is not supported by HeliosProxy; the line became "
			       "reject",
			       src, ln, mi < nt ? tok[mi] : "(none)");
		}
	}
	fclose(f);
	if (!changed) {
		/* read in place: an edit shows on the next reload, as with PgBouncer */
		snprintf(out, sizeof(out), "%s", src);
	} else if (!im->out_path) {
		report(im, e, what, "error",
		       "%s needs changes: give -o so that they can be written", src);
		sbuf_free(&b);
		return -EINVAL;
	} else if (snprintf(out, sizeof(out), "%s.hba.conf", im->out_stem) >= (int)sizeof(out)) {
		report(im, e, what, "error", "output file name too long");
		sbuf_free(&b);
		return -ENAMETOOLONG;
	} else {
		/* written with the TOML, once nothing failed */
		snprintf(im->hba_path, sizeof(im->hba_path), "%s", out);
		im->hba_text = b;
		sbuf_init(&b);
	}
	sbuf_free(&b);
	sbuf_puts(&im->sect[S_AUTH], "hba_file = ");
	toml_str(&im->sect[S_AUTH], out);
	sbuf_putc(&im->sect[S_AUTH], '\n');
	report(im, e, what, "mapped", "auth.hba_file = \"%s\"%s", out,
	       changed ? " (translated copy)" : "");
	return 0;
}

static void map_auth(struct imp *im)
{
	const struct pgbini_ent *t = find_last(im, "pgbouncer", "auth_type");
	const struct pgbini_ent *uf = find_last(im, "pgbouncer", "auth_file");
	const struct pgbini_ent *hf = find_last(im, "pgbouncer", "auth_hba_file");
	const char *type = t ? t->val : "md5", *method = NULL;
	const char *what = "[pgbouncer] auth_type";
	char path[PATH_MAX];

	if (!strcmp(type, "trust") || !strcmp(type, "md5") || !strcmp(type, "scram-sha-256"))
		method = type;
	if (method) {
		sbuf_printf(&im->sect[S_AUTH], "method = \"%s\"\n", method);
		report(im, t, what, t ? "mapped" : "default", "auth.method = \"%s\"%s", method,
		       t ? "" : " (PgBouncer's default; HeliosProxy's is scram-sha-256)");
	} else if (!strcmp(type, "hba")) {
		report(im, t, what, "mapped", "auth.hba_file (the rules decide the method)");
		if (im->hba || hf) {
			char src[PATH_MAX];
			char cwd[PATH_MAX];
			if (im->hba && im->hba[0] != '/' && getcwd(cwd, sizeof(cwd)))
				snprintf(src, sizeof(src), "%.2048s/%.2000s", cwd, im->hba);
			else if (im->hba)
				snprintf(src, sizeof(src), "%s", im->hba);
			else
				path_value(im, hf->val, src, sizeof(src));
			map_hba(im, im->hba ? NULL : hf, src);
		} else {
			report(im, t, what, "error",
			       "auth_type = hba without auth_hba_file (or --hba FILE)");
		}
	} else if (!strcmp(type, "cert")) {
		/* every client by its certificate: one rule */
		sbuf_puts(
		    &im->sect[S_AUTH],
		    "\n[[auth.rules]]\ntype = \"hostssl\"\naddress = \"all\"\nmethod = \"cert\"\n");
		report(
		    im, t, what, "mapped",
		    "[[auth.rules]] hostssl all all all cert (needs tls.client_mode verify-ca or "
		    "verify-full)");
	} else if (!strcmp(type, "plain") || !strcmp(type, "any") || !strcmp(type, "pam")) {
		const char *why =
		    !strcmp(type, "plain")
		        ? "cleartext passwords are the hba method password, TLS only in HeliosProxy"
		    : !strcmp(type, "any")
		        ? "HeliosProxy always checks the login user; use trust with a forced user "
		          "per "
		          "database"
		        : "PAM is not supported; ldap rules in auth.hba_file are the closest";
		report(im, t, what, "not-mapped", "%s; auth.method stays scram-sha-256", why);
	} else {
		report(im, t, what, "error", "unknown auth_type '%s'", type);
	}
	if (hf && strcmp(type, "hba"))
		report(im, hf, "[pgbouncer] auth_hba_file", "not-needed",
		       "only read with auth_type = hba");
	if (im->userlist || uf) {
		if (im->userlist)
			snprintf(path, sizeof(path), "%s", im->userlist);
		else
			path_value(im, uf->val, path, sizeof(path));
		if (path[0] != '/') {
			char cwd[PATH_MAX];
			if (getcwd(cwd, sizeof(cwd))) {
				char tmp[PATH_MAX];
				snprintf(tmp, sizeof(tmp), "%s", path);
				if (snprintf(path, sizeof(path), "%s/%s", cwd, tmp) >=
				    (int)sizeof(path))
					snprintf(path, sizeof(path), "%s", tmp);
			}
		}
		if (access(path, R_OK) < 0) {
			report(im, im->userlist ? NULL : uf,
			       im->userlist ? "--userlist" : "[pgbouncer] auth_file", "error",
			       "%s: %s", path, strerror(errno));
			return;
		}
		/* HeliosProxy reads userlist.txt as PgBouncer does, and again on
		 * reload: the file is used where it is, not copied. */
		sbuf_puts(&im->sect[S_AUTH], "users_file = ");
		toml_str(&im->sect[S_AUTH], path);
		sbuf_putc(&im->sect[S_AUTH], '\n');
		report(im, im->userlist ? NULL : uf,
		       im->userlist ? "--userlist" : "[pgbouncer] auth_file", "mapped",
		       "auth.users_file = \"%s\" (same format, read in place)", path);
	}
}

static void map_special(struct imp *im, const struct pgbi_key *k, const struct pgbini_ent *e)
{
	char what[128];
	const char *v = e->val;
	long n;

	snprintf(what, sizeof(what), "[pgbouncer] %s", k->name);
	if (!strcmp(k->name, "pool_mode")) {
		if (strcmp(v, "session") && strcmp(v, "transaction") && strcmp(v, "statement"))
			return report(im, e, what, "error", "unknown pool_mode '%s'", v);
		sbuf_printf(&im->sect[S_POOL], "mode = \"%s\"\n", v);
		return report(im, e, what, "mapped", "pool_mode.mode = \"%s\"", v);
	}
	if (!strcmp(k->name, "server_lifetime")) {
		double d;
		if (parse_secs(v, &d) < 0)
			return report(im, e, what, "error", "'%s' is not a number of seconds", v);
		if (d == 0)
			return report(im, e, what, "not-mapped",
			              "0 makes PgBouncer use a server once; HeliosProxy's 0 means "
			              "unlimited, and has no single-use mode");
		return put_simple(im,
		                  &(struct pgbi_key){k->name, K_SECS, S_POOL, k->key, NULL, NULL},
		                  e, v, "mapped");
	}
	if (!strcmp(k->name, "max_prepared_statements")) {
		if (parse_long(v, &n) < 0)
			return report(im, e, what, "error", "'%s' is not a whole number", v);
		if (n == 0)
			return report(
			    im, e, what, "not-mapped",
			    "0 turns PgBouncer's prepared statement support off; HeliosProxy "
			    "always carries protocol-level prepared statements across servers "
			    "in transaction mode (pool_mode.max_prepared_statements keeps its "
			    "default)");
		return put_simple(im,
		                  &(struct pgbi_key){k->name, K_INT, S_POOL, k->key, NULL, NULL}, e,
		                  v, "mapped");
	}
	if (!strcmp(k->name, "server_reset_query_always")) {
		bool t;
		if (parse_bool(v, &t) < 0)
			return report(im, e, what, "error", "'%s' is not a boolean", v);
		if (!t)
			return report(
			    im, e, what, "not-needed",
			    "0: the reset query runs in session mode only, as in HeliosProxy");
		return report(im, e, what, "not-mapped",
		              "the reset query runs in session mode only; transaction mode replays "
		              "each client's own session state instead (docs/pooling.md)");
	}
	if (!strcmp(k->name, "client_tls_sslmode")) {
		const char *m = !strcmp(v, "prefer") ? "allow" : v;
		if (strcmp(m, "disable") && strcmp(m, "allow") && strcmp(m, "require") &&
		    strcmp(m, "verify-ca") && strcmp(m, "verify-full"))
			return report(im, e, what, "error", "unknown sslmode '%s'", v);
		sbuf_printf(&im->sect[S_TLS], "client_mode = \"%s\"\n", m);
		return report(im, e, what, "mapped", "tls.client_mode = \"%s\"%s", m,
		              strcmp(m, v) ? " (accept TLS when the client asks)" : "");
	}
	if (!strcmp(k->name, "server_tls_sslmode")) {
		const char *m = v, *note = "";
		if (!strcmp(v, "allow")) {
			m = "prefer";
			note = " (no allow: TLS is used when the server offers it)";
		} else if (!strcmp(v, "verify-ca")) {
			m = "verify-full";
			note = " (no verify-ca: the host name is checked too)";
		}
		if (strcmp(m, "disable") && strcmp(m, "prefer") && strcmp(m, "require") &&
		    strcmp(m, "verify-full"))
			return report(im, e, what, "error", "unknown sslmode '%s'", v);
		sbuf_printf(&im->sect[S_TLS], "server_mode = \"%s\"\n", m);
		return report(im, e, what, "mapped", "tls.server_mode = \"%s\"%s", m, note);
	}
	if (!strcmp(k->name, "verbose")) {
		if (parse_long(v, &n) < 0)
			return report(im, e, what, "error", "'%s' is not a whole number", v);
		sbuf_printf(&im->sect[S_TOP], "log_level = \"%s\"\n", n ? "debug" : "info");
		return report(im, e, what, "mapped", "log_level = \"%s\"", n ? "debug" : "info");
	}
}

static void map_pgbouncer(struct imp *im)
{
	for (size_t i = 0; i < im->ini.n; i++) {
		const struct pgbini_ent *e = &im->ini.e[i], *last;
		const struct pgbi_key *k = NULL;
		char what[160];

		if (strcmp(e->section, "pgbouncer"))
			continue;
		snprintf(what, sizeof(what), "[pgbouncer] %s", e->key);
		last = find_last(im, "pgbouncer", e->key);
		if (last != e) {
			report(im, e, what, "not-needed", "set again at %s:%d", last->file,
			       last->line);
			continue;
		}
		for (size_t j = 0; j < N_KEYS; j++)
			if (!strcasecmp(keys[j].name, e->key))
				k = &keys[j];
		if (!k) {
			report(im, e, what, "not-mapped",
			       "not a PgBouncer setting HeliosProxy knows");
			continue;
		}
		switch (k->kind) {
		case K_NONE:
			report(im, e, what, "not-mapped", "%s", k->why);
			break;
		case K_NOTNEEDED:
			report(im, e, what, "not-needed", "%s", k->why);
			break;
		case K_SPECIAL:
			map_special(im, k, e);
			break;
		default:
			put_simple(im, k, e, e->val, "mapped");
		}
	}
	/* PgBouncer's defaults that differ from HeliosProxy's, when unset. */
	for (size_t j = 0; j < N_KEYS; j++) {
		const struct pgbi_key *k = &keys[j];
		if (!k->pgb_default || k->kind == K_SPECIAL || find_last(im, "pgbouncer", k->name))
			continue;
		put_simple(im, k, NULL, k->pgb_default, "default");
	}
	map_listen(im);
	map_auth(im);
}

/* ---- [databases] ---- */

/* The [[nodes]] entry for host:port, added on first use. */
static const char *node_for(struct imp *im, const char *host, int port)
{
	struct pgbi_node *n;

	for (size_t i = 0; i < im->n_nodes; i++)
		if (!strcmp(im->node[i].host, host) && im->node[i].port == port)
			return im->node[i].name;
	if (im->n_nodes == PGBI_MAX_NODES)
		return NULL;
	n = &im->node[im->n_nodes++];
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	snprintf(n->name, sizeof(n->name), "pg%zu", im->n_nodes);
	sbuf_printf(&im->nodes, "\n[[nodes]]\nname = \"%s\"\nhost = ", n->name);
	toml_str(&im->nodes, host);
	sbuf_printf(&im->nodes, "\nport = %d\nrole = \"primary\"\n", port);
	return n->name;
}

struct db_key {
	const char *pgb, *helios;
	enum pgbi_kind kind;
};

static const struct db_key db_keys[] = {
    {"dbname", "dbname", K_STR},
    {"user", "user", K_STR},
    {"password", "password", K_STR},
    {"auth_user", "auth_user", K_STR},
    {"pool_size", "pool_size", K_INT},
    {"min_pool_size", "min_pool_size", K_INT},
    {"reserve_pool", "reserve_pool", K_INT},
    {"reserve_pool_size", "reserve_pool", K_INT},
    {"pool_mode", "pool_mode", K_STR},
    {"max_db_connections", "max_db_connections", K_INT},
    {"client_encoding", "client_encoding", K_STR},
    {"datestyle", "datestyle", K_STR},
    {"timezone", "timezone", K_STR},
};

static void map_database(struct imp *im, const struct pgbini_ent *e)
{
	struct pgbini_pair pr[PGBI_MAX_PAIRS];
	char what[200], err[256], hosts[1024] = "";
	const char *port_s = "5432";
	size_t n;
	long port;
	struct sbuf *b = &im->dbs;
	struct sbuf nodes;

	snprintf(what, sizeof(what), "[databases] %s", e->key);
	if (pgbini_connstr(e->val, pr, PGBI_MAX_PAIRS, &n, err, sizeof(err)) < 0)
		return report(im, e, what, "error", "%s", err);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(pr[i].key, "host"))
			snprintf(hosts, sizeof(hosts), "%s", pr[i].val);
		else if (!strcmp(pr[i].key, "port"))
			port_s = pr[i].val;
	}
	if (parse_long(port_s, &port) < 0 || port < 1 || port > 65535)
		return report(im, e, what, "error", "port '%s' is not a port", port_s);
	if (!hosts[0]) {
		/* As PgBouncer: no host = the Unix socket in unix_socket_dir. */
		snprintf(hosts, sizeof(hosts), "%s", im->unix_dir);
	}
	sbuf_init(&nodes);
	for (char *save = NULL, *h = strtok_r(hosts, ",", &save); h;
	     h = strtok_r(NULL, ",", &save)) {
		const char *name = node_for(im, h, (int)port);
		if (!name) {
			sbuf_free(&nodes);
			return report(im, e, what, "error", "more than %d servers", PGBI_MAX_NODES);
		}
		sbuf_printf(&nodes, "%s\"%s\"", nodes.len ? ", " : "", name);
	}
	sbuf_puts(b, "\n[[databases]]\nname = ");
	toml_str(b, e->key);
	sbuf_printf(b, "\nnodes = [%s]\n", nodes.p ? nodes.p : "");
	sbuf_free(&nodes);
	for (size_t i = 0; i < n; i++) {
		const struct db_key *k = NULL;
		char w[260];

		snprintf(w, sizeof(w), "[databases] %s %s", e->key, pr[i].key);
		if (!strcmp(pr[i].key, "host") || !strcmp(pr[i].key, "port")) {
			report(im, e, w, "mapped", "[[nodes]] %s (nodes of database %s)", pr[i].val,
			       e->key);
			continue;
		}
		for (size_t j = 0; j < sizeof(db_keys) / sizeof(db_keys[0]); j++)
			if (!strcmp(db_keys[j].pgb, pr[i].key))
				k = &db_keys[j];
		if (!k) {
			const char *why =
			    !strcmp(pr[i].key, "connect_query")
			        ? "no query at server connect; use ALTER ROLE/DATABASE ... SET on "
			          "the "
			          "server"
			    : !strcmp(pr[i].key, "application_name")
			        ? "application_name comes from the client"
			    : !strcmp(pr[i].key, "load_balance_hosts")
			        ? "the database's nodes are used by role and health, not in turn"
			    : !strcmp(pr[i].key, "server_lifetime")
			        ? "one server_lifetime_secs for every pool (pool_mode)"
			        : "not a [databases] parameter HeliosProxy knows";
			report(im, e, w, "not-mapped", "%s", why);
			continue;
		}
		if (k->kind == K_INT) {
			long v;
			if (parse_long(pr[i].val, &v) < 0) {
				report(im, e, w, "error", "'%s' is not a whole number", pr[i].val);
				continue;
			}
			sbuf_printf(b, "%s = %ld\n", k->helios, v);
			report(im, e, w, "mapped", "[[databases]] %s = %ld", k->helios, v);
		} else {
			sbuf_printf(b, "%s = ", k->helios);
			toml_str(b, pr[i].val);
			sbuf_putc(b, '\n');
			report(im, e, w, "mapped", "[[databases]] %s = \"%s\"", k->helios,
			       !strcmp(k->pgb, "password") ? "***" : pr[i].val);
		}
	}
}

static void map_user(struct imp *im, const struct pgbini_ent *e)
{
	struct pgbini_pair pr[PGBI_MAX_PAIRS];
	char what[200], err[256];
	size_t n;

	snprintf(what, sizeof(what), "[users] %s", e->key);
	if (pgbini_connstr(e->val, pr, PGBI_MAX_PAIRS, &n, err, sizeof(err)) < 0)
		return report(im, e, what, "error", "%s", err);
	sbuf_puts(&im->users, "\n[[users]]\nname = ");
	toml_str(&im->users, e->key);
	sbuf_putc(&im->users, '\n');
	for (size_t i = 0; i < n; i++) {
		char w[260];
		long v;

		snprintf(w, sizeof(w), "[users] %s %s", e->key, pr[i].key);
		if (!strcmp(pr[i].key, "pool_mode")) {
			sbuf_puts(&im->users, "pool_mode = ");
			toml_str(&im->users, pr[i].val);
			sbuf_putc(&im->users, '\n');
			report(im, e, w, "mapped", "[[users]] pool_mode = \"%s\"", pr[i].val);
		} else if (!strcmp(pr[i].key, "max_user_connections")) {
			if (parse_long(pr[i].val, &v) < 0) {
				report(im, e, w, "error", "'%s' is not a whole number", pr[i].val);
				continue;
			}
			sbuf_printf(&im->users, "max_user_connections = %ld\n", v);
			report(im, e, w, "mapped", "[[users]] max_user_connections = %ld", v);
		} else {
			report(im, e, w, "not-mapped", "%s",
			       !strcmp(pr[i].key, "pool_size") ||
			               !strcmp(pr[i].key, "reserve_pool_size")
			           ? "pool sizes are set per database ([[databases]] pool_size)"
			           : "not a [users] parameter HeliosProxy knows");
		}
	}
}

static void map_sections(struct imp *im)
{
	bool any_db = false;

	for (size_t i = 0; i < im->ini.n; i++) {
		const struct pgbini_ent *e = &im->ini.e[i], *last;
		char what[200];

		snprintf(what, sizeof(what), "[%s] %s", e->section, e->key);
		if (!strcmp(e->section, "pgbouncer"))
			continue;
		if (strcmp(e->section, "databases") && strcmp(e->section, "users")) {
			report(im, e, what, "not-mapped",
			       !strcmp(e->section, "peers")
			           ? "no peering (one process serves a port)"
			           : "unknown section");
			continue;
		}
		/* names are case-sensitive here, and the last definition wins */
		last = NULL;
		for (size_t j = im->ini.n; j-- > 0 && !last;)
			if (!strcmp(im->ini.e[j].section, e->section) &&
			    !strcmp(im->ini.e[j].key, e->key))
				last = &im->ini.e[j];
		if (last != e) {
			report(im, e, what, "not-needed", "set again at %s:%d", last->file,
			       last->line);
			continue;
		}
		if (!strcmp(e->section, "databases")) {
			any_db = true;
			map_database(im, e);
		} else {
			map_user(im, e);
		}
	}
	if (!any_db)
		report(im, NULL, "[databases]", "error",
		       "no database: PgBouncer serves nothing without [databases] entries");
}

/* ---- driver ---- */

static int write_out(struct imp *im, const char *text, size_t len)
{
	char tmp[PATH_MAX + 16];
	int fd;

	if (!im->out_path)
		return fwrite(text, 1, len, stdout) == len ? 0 : -EIO;
	snprintf(tmp, sizeof(tmp), "%s.tmp", im->out_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		int rc = -errno;
		close(fd);
		unlink(tmp);
		return rc ? rc : -EIO;
	}
	close(fd);
	if (rename(tmp, im->out_path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static const char import_usage[] =
    "usage: helioctl import-pgbouncer PGBOUNCER.INI [--userlist FILE] [--hba FILE] [-o OUT.toml]\n";

static const char import_help[] =
    "Writes a HeliosProxy configuration equivalent to PGBOUNCER.INI (its %include files\n"
    "too) to OUT.toml (default: standard output), then one line per key: where it came\n"
    "from (file:line, or (default) for a PgBouncer default that differs from\n"
    "HeliosProxy's), and mapped (to what), default, not-needed (HeliosProxy does it\n"
    "anyway), not-mapped (why) or error. The report goes to standard output with -o,\n"
    "else to standard error; the TOML also lists what was not mapped in comments.\n"
    "\n"
    "  --userlist FILE  PgBouncer userlist.txt (default: the ini's auth_file); used in\n"
    "                   place as auth.users_file, the format is the same\n"
    "  --hba FILE       PgBouncer hba file (default: the ini's auth_hba_file); with\n"
    "                   auth_type = hba it becomes auth.hba_file, copied to\n"
    "                   OUT.hba.conf when a line needs a change (methods HeliosProxy\n"
    "                   lacks become reject)\n"
    "  -o OUT.toml      where to write; replaced whole, so rerun after editing the ini\n"
    "\n"
    "[databases] entries become [[databases]] (host/port become [[nodes]] named pg1,\n"
    "pg2, ...), [users] entries [[users]]. Check the result with\n"
    "`heliosproxy --check-config OUT.toml`. See docs/migrating-from-pgbouncer.md.\n"
    "\n"
    "exit status: 0 written (not-mapped keys included), 1 an error in the ini (nothing\n"
    "usable written), 2 usage error or unreadable file.\n";

int pgbimport_main(int argc, char **argv)
{
	struct imp im;
	char err[PATH_MAX + 128];
	int rc = HCTL_OK;

	memset(&im, 0, sizeof(im));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s\n%s", import_usage, import_help);
			return HCTL_OK;
		}
		if (!strcmp(a, "--userlist"))
			slot = &im.userlist;
		else if (!strcmp(a, "--hba"))
			slot = &im.hba;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			slot = &im.out_path;
		if (slot) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				fprintf(stderr, "helioctl import-pgbouncer: %s needs a file\n%s", a,
				        import_usage);
				return HCTL_USAGE;
			}
			*slot = argv[++i];
			continue;
		}
		if (a[0] == '-' && a[1]) {
			fprintf(stderr, "helioctl import-pgbouncer: unknown option '%s'\n%s", a,
			        import_usage);
			return HCTL_USAGE;
		}
		if (im.ini_path) {
			fprintf(stderr, "helioctl import-pgbouncer: one ini file only\n%s",
			        import_usage);
			return HCTL_USAGE;
		}
		im.ini_path = a;
	}
	if (!im.ini_path) {
		fprintf(stderr, "helioctl import-pgbouncer: no ini file given\n%s", import_usage);
		return HCTL_USAGE;
	}
	if (pgbini_load(&im.ini, im.ini_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "helioctl import-pgbouncer: %s\n", err);
		pgbini_free(&im.ini);
		return HCTL_USAGE;
	}
	last_slash_dir(im.ini_path, im.ini_dir, sizeof(im.ini_dir));
	if (im.ini_dir[0] != '/') {
		char cwd[PATH_MAX], tmp[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd))) {
			snprintf(tmp, sizeof(tmp), "%s", im.ini_dir);
			if (!strcmp(tmp, "."))
				snprintf(im.ini_dir, sizeof(im.ini_dir), "%s", cwd);
			else if (snprintf(im.ini_dir, sizeof(im.ini_dir), "%s/%s", cwd, tmp) >=
			         (int)sizeof(im.ini_dir))
				snprintf(im.ini_dir, sizeof(im.ini_dir), "%s", tmp);
		}
	}
	if (im.out_path) {
		size_t l = strlen(im.out_path);
		snprintf(im.out_stem, sizeof(im.out_stem), "%.*s",
		         (int)(l > 5 && !strcmp(im.out_path + l - 5, ".toml") ? l - 5 : l),
		         im.out_path);
	}
	for (size_t s = 0; s < S_N; s++)
		sbuf_init(&im.sect[s]);
	sbuf_init(&im.nodes);
	sbuf_init(&im.dbs);
	sbuf_init(&im.users);
	sbuf_init(&im.head);
	sbuf_init(&im.hba_text);
	table_init(&im.rep, "SOURCE KEY STATUS HELIOSPROXY");
	im.unix_dir = val_of(&im, "unix_socket_dir", "/tmp");

	map_pgbouncer(&im);
	map_sections(&im);

	struct sbuf out;
	sbuf_init(&out);
	sbuf_printf(
	    &out,
	    "# HeliosProxy configuration written by helioctl import-pgbouncer from %s.\n"
	    "# Edit that file and run the import again rather than editing this one.\n"
	    "# %u keys mapped, %u PgBouncer defaults written, %u not needed, %u not mapped.\n",
	    im.ini_path, im.n_mapped, im.n_default, im.n_notneeded, im.n_unmapped);
	sbuf_puts(&out, im.head.p ? im.head.p : "");
	sbuf_putc(&out, '\n');
	for (size_t s = 0; s < S_N; s++) {
		if (!im.sect[s].len)
			continue;
		if (s)
			sbuf_printf(&out, "\n[%s]\n", sect_name[s]);
		sbuf_puts(&out, im.sect[s].p);
	}
	sbuf_puts(&out, im.nodes.p ? im.nodes.p : "");
	sbuf_puts(&out, im.dbs.p ? im.dbs.p : "");
	sbuf_puts(&out, im.users.p ? im.users.p : "");

	if (out.oom) {
		fprintf(stderr, "helioctl import-pgbouncer: out of memory\n");
		rc = HCTL_REFUSED;
	} else if (im.failed) {
		rc = HCTL_REFUSED; /* the report says why; nothing half-right is written */
	} else {
		int w = 0;
		if (im.hba_path[0]) {
			const char *keep = im.out_path;
			im.out_path = im.hba_path;
			w = im.hba_text.oom ? -ENOMEM
			                    : write_out(&im, im.hba_text.p, im.hba_text.len);
			im.out_path = keep;
			if (w < 0)
				fprintf(stderr, "helioctl import-pgbouncer: writing %s: %s\n",
				        im.hba_path, strerror(-w));
		}
		if (!w)
			w = write_out(&im, out.p, out.len);
		if (w < 0) {
			fprintf(stderr, "helioctl import-pgbouncer: writing %s: %s\n",
			        im.out_path ? im.out_path : "the output", strerror(-w));
			rc = HCTL_USAGE;
		}
	}
	FILE *rep = im.out_path ? stdout : stderr;
	if (table_print(&im.rep, rep) < 0)
		rc = HCTL_REFUSED;
	fprintf(rep, "%u mapped, %u defaults, %u not needed, %u not mapped%s%s\n", im.n_mapped,
	        im.n_default, im.n_notneeded, im.n_unmapped,
	        im.failed ? "; errors above, nothing written" : "; written to ",
	        im.failed     ? ""
	        : im.out_path ? im.out_path
	                      : "standard output");

	sbuf_free(&out);
	for (size_t s = 0; s < S_N; s++)
		sbuf_free(&im.sect[s]);
	sbuf_free(&im.nodes);
	sbuf_free(&im.dbs);
	sbuf_free(&im.users);
	sbuf_free(&im.head);
	sbuf_free(&im.hba_text);
	pgbini_free(&im.ini);
	return rc;
}
