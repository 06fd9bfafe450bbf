/*
 * helioctl import-pgbouncer: the [pgbouncer] section. One table says, per
 * PgBouncer setting, the HeliosProxy key and how its value converts, or why
 * there is none; listen, auth and a few others have their own code.
 */
#include "cli/pgbimport.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
	snprintf(full, sizeof(full), "%s%s%s", pgbi_sect_name[k->sect], k->sect ? "." : "", k->key);
	switch (k->kind) {
	case K_INT:
		if (pgbi_parse_long(v, &n) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a whole number", v);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		return pgbi_report(im, e, what, status, "%s = %ld", full, n);
	case K_SECS:
		if (pgbi_parse_secs(v, &d) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a number of seconds",
			                   v);
		n = (long)ceil(d);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		if ((double)n != d)
			return pgbi_report(im, e, what, status,
			                   "%s = %ld (whole seconds, rounded up from %s)", full, n,
			                   v);
		return pgbi_report(im, e, what, status, "%s = %ld", full, n);
	case K_MS:
		if (pgbi_parse_secs(v, &d) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a number of seconds",
			                   v);
		n = (long)ceil(d * 1000.0);
		sbuf_printf(b, "%s = %ld\n", k->key, n);
		return pgbi_report(im, e, what, status, "%s = %ld", full, n);
	case K_BOOL:
		if (pgbi_parse_bool(v, &t) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a boolean", v);
		sbuf_printf(b, "%s = %s\n", k->key, t ? "true" : "false");
		return pgbi_report(im, e, what, status, "%s = %s", full, t ? "true" : "false");
	case K_PATH:
		pgbi_path_value(im, v, path, sizeof(path));
		sbuf_printf(b, "%s = ", k->key);
		pgbi_toml_str(b, path);
		sbuf_putc(b, '\n');
		return pgbi_report(im, e, what, status, "%s = \"%s\"", full, path);
	default:
		sbuf_printf(b, "%s = ", k->key);
		pgbi_toml_str(b, v);
		sbuf_putc(b, '\n');
		return pgbi_report(im, e, what, status, "%s = \"%s\"", full, v);
	}
}

/* ---- [pgbouncer] specials ---- */

static void map_listen(struct imp *im)
{
	const struct pgbini_ent *a = pgbi_find_last(im, "pgbouncer", "listen_addr");
	const struct pgbini_ent *p = pgbi_find_last(im, "pgbouncer", "listen_port");
	const char *port = p ? p->val : "6432";
	char addr[256], val[300];
	size_t len;
	long n;

	if (pgbi_parse_long(port, &n) < 0 || n < 1 || n > 65535) {
		pgbi_report(im, p, "[pgbouncer] listen_port", "error", "'%s' is not a port", port);
		return;
	}
	if (!a || !a->val[0]) {
		/* PgBouncer without listen_addr has no TCP listener; HeliosProxy
		 * always has one, so the closest is loopback only. */
		snprintf(addr, sizeof(addr), "127.0.0.1");
		pgbi_report(
		    im, a, "[pgbouncer] listen_addr", "not-mapped",
		    "PgBouncer listens on no TCP address without it, HeliosProxy always does: "
		    "listen_address uses 127.0.0.1");
	} else {
		len = strcspn(a->val, ", \t");
		snprintf(addr, sizeof(addr), "%.*s", (int)len, a->val);
		if (a->val[len])
			pgbi_report(im, a, "[pgbouncer] listen_addr", "not-mapped",
			            "HeliosProxy listens on one address: only %s is used, not '%s'",
			            addr, a->val + len + strspn(a->val + len, ", \t"));
		if (!strcmp(addr, "*")) {
			snprintf(addr, sizeof(addr), "0.0.0.0");
			pgbi_report(
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
	pgbi_toml_str(&im->sect[S_TOP], val);
	sbuf_putc(&im->sect[S_TOP], '\n');
	if (a && a->val[0])
		pgbi_report(im, a, "[pgbouncer] listen_addr", "mapped", "listen_address = \"%s\"",
		            val);
	pgbi_report(im, p, "[pgbouncer] listen_port", p ? "mapped" : "default",
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
		int rc = -errno;
		pgbi_report(im, e, what, "error", "%s: %s", src, strerror(-rc));
		return rc;
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
		    nt > 2 && (!strcmp(tok[1], "sameuser") || !strcmp(tok[1], "samerole") ||
		               !strcmp(tok[1], "samegroup") || !strcmp(tok[1], "replication") ||
		               tok[2][0] == '+');
		if (known && !odd_names) {
			sbuf_puts(&b, line);
			continue;
		}
		changed++;
		line[strcspn(line, "\n")] = '\0';
		sbuf_printf(&b, "# import-pgbouncer: was `%s`\n", line);
		if (odd_names) {
			/* the odd field widens to all, the others stay: a reject for
			 * everyone the line could match and no one else */
			bool odd_db = !strcmp(tok[1], "sameuser") || !strcmp(tok[1], "samerole") ||
			              !strcmp(tok[1], "samegroup") ||
			              !strcmp(tok[1], "replication");
			sbuf_printf(&b, "%s %s %s", tok[0], odd_db ? "all" : tok[1],
			            tok[2][0] == '+' ? "all" : tok[2]);
			for (i = 3; i < mi && i < nt; i++)
				sbuf_printf(&b, " %s", tok[i]);
			sbuf_puts(&b, " reject\n");
			pgbi_report(
			    im, e, what, "not-mapped",
			    "%s:%d: sameuser, samerole, replication and +group are not supported; "
			    "the line became a reject for everyone it could match: list the "
			    "names",
			    src, ln);
		} else {
			for (i = 0; i < mi && i < nt; i++)
				sbuf_printf(&b, "%s%s", i ? " " : "", tok[i]);
			sbuf_puts(&b, " reject\n");
			pgbi_report(
			    im, e, what, "not-mapped",
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
		pgbi_report(im, e, what, "error",
		            "%s needs changes: give -o so that they can be written", src);
		sbuf_free(&b);
		return -EINVAL;
	} else if (snprintf(out, sizeof(out), "%s.hba.conf", im->out_stem) >= (int)sizeof(out)) {
		pgbi_report(im, e, what, "error", "output file name too long");
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
	pgbi_toml_str(&im->sect[S_AUTH], out);
	sbuf_putc(&im->sect[S_AUTH], '\n');
	pgbi_report(im, e, what, "mapped", "auth.hba_file = \"%s\"%s", out,
	            changed ? " (translated copy)" : "");
	return 0;
}

static void map_auth(struct imp *im)
{
	const struct pgbini_ent *t = pgbi_find_last(im, "pgbouncer", "auth_type");
	const struct pgbini_ent *uf = pgbi_find_last(im, "pgbouncer", "auth_file");
	const struct pgbini_ent *hf = pgbi_find_last(im, "pgbouncer", "auth_hba_file");
	const char *type = t ? t->val : "md5", *method = NULL;
	const char *what = "[pgbouncer] auth_type";
	char path[PATH_MAX];

	if (!strcmp(type, "trust") || !strcmp(type, "md5") || !strcmp(type, "scram-sha-256"))
		method = type;
	if (method) {
		sbuf_printf(&im->sect[S_AUTH], "method = \"%s\"\n", method);
		pgbi_report(im, t, what, t ? "mapped" : "default", "auth.method = \"%s\"%s", method,
		            t ? "" : " (PgBouncer's default; HeliosProxy's is scram-sha-256)");
	} else if (!strcmp(type, "hba")) {
		if (im->hba || hf) {
			pgbi_report(im, t, what, "mapped",
			            "auth.hba_file (the rules decide the method)");
			char src[PATH_MAX];
			char cwd[PATH_MAX];
			if (im->hba && im->hba[0] != '/' && getcwd(cwd, sizeof(cwd)))
				snprintf(src, sizeof(src), "%.2048s/%.2000s", cwd, im->hba);
			else if (im->hba)
				snprintf(src, sizeof(src), "%s", im->hba);
			else
				pgbi_path_value(im, hf->val, src, sizeof(src));
			map_hba(im, im->hba ? NULL : hf, src);
		} else {
			pgbi_report(im, t, what, "error",
			            "auth_type = hba without auth_hba_file (or --hba FILE)");
		}
	} else if (!strcmp(type, "cert")) {
		/* every client by its certificate: one rule */
		sbuf_puts(
		    &im->rules,
		    "\n[[auth.rules]]\ntype = \"hostssl\"\naddress = \"all\"\nmethod = \"cert\"\n");
		pgbi_report(
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
		pgbi_report(im, t, what, "not-mapped", "%s; auth.method stays scram-sha-256", why);
	} else {
		pgbi_report(im, t, what, "error", "unknown auth_type '%s'", type);
	}
	if (hf && strcmp(type, "hba"))
		pgbi_report(im, hf, "[pgbouncer] auth_hba_file", "not-needed",
		            "only read with auth_type = hba");
	if (im->userlist || uf) {
		if (im->userlist)
			snprintf(path, sizeof(path), "%s", im->userlist);
		else
			pgbi_path_value(im, uf->val, path, sizeof(path));
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
			pgbi_report(im, im->userlist ? NULL : uf,
			            im->userlist ? "--userlist" : "[pgbouncer] auth_file", "error",
			            "%s: %s", path, strerror(errno));
			return;
		}
		/* HeliosProxy reads userlist.txt as PgBouncer does, and again on
		 * reload: the file is used where it is, not copied. */
		sbuf_puts(&im->sect[S_AUTH], "users_file = ");
		pgbi_toml_str(&im->sect[S_AUTH], path);
		sbuf_putc(&im->sect[S_AUTH], '\n');
		pgbi_report(im, im->userlist ? NULL : uf,
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
			return pgbi_report(im, e, what, "error", "unknown pool_mode '%s'", v);
		sbuf_printf(&im->sect[S_POOL], "mode = \"%s\"\n", v);
		return pgbi_report(im, e, what, "mapped", "pool_mode.mode = \"%s\"", v);
	}
	if (!strcmp(k->name, "server_lifetime")) {
		double d;
		if (pgbi_parse_secs(v, &d) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a number of seconds",
			                   v);
		if (d == 0)
			return pgbi_report(
			    im, e, what, "not-mapped",
			    "0 makes PgBouncer use a server once; HeliosProxy's 0 means "
			    "unlimited, and has no single-use mode");
		return put_simple(im,
		                  &(struct pgbi_key){k->name, K_SECS, S_POOL, k->key, NULL, NULL},
		                  e, v, "mapped");
	}
	if (!strcmp(k->name, "max_prepared_statements")) {
		if (pgbi_parse_long(v, &n) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a whole number", v);
		if (n == 0)
			return pgbi_report(
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
		if (pgbi_parse_bool(v, &t) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a boolean", v);
		if (!t)
			return pgbi_report(
			    im, e, what, "not-needed",
			    "0: the reset query runs in session mode only, as in HeliosProxy");
		return pgbi_report(
		    im, e, what, "not-mapped",
		    "the reset query runs in session mode only; transaction mode replays "
		    "each client's own session state instead (docs/pooling.md)");
	}
	if (!strcmp(k->name, "client_tls_sslmode")) {
		const char *m = !strcmp(v, "prefer") ? "allow" : v;
		if (strcmp(m, "disable") && strcmp(m, "allow") && strcmp(m, "require") &&
		    strcmp(m, "verify-ca") && strcmp(m, "verify-full"))
			return pgbi_report(im, e, what, "error", "unknown sslmode '%s'", v);
		sbuf_printf(&im->sect[S_TLS], "client_mode = \"%s\"\n", m);
		return pgbi_report(im, e, what, "mapped", "tls.client_mode = \"%s\"%s", m,
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
			return pgbi_report(im, e, what, "error", "unknown sslmode '%s'", v);
		sbuf_printf(&im->sect[S_TLS], "server_mode = \"%s\"\n", m);
		return pgbi_report(im, e, what, "mapped", "tls.server_mode = \"%s\"%s", m, note);
	}
	if (!strcmp(k->name, "verbose")) {
		if (pgbi_parse_long(v, &n) < 0)
			return pgbi_report(im, e, what, "error", "'%s' is not a whole number", v);
		sbuf_printf(&im->sect[S_TOP], "log_level = \"%s\"\n", n ? "debug" : "info");
		return pgbi_report(im, e, what, "mapped", "log_level = \"%s\"",
		                   n ? "debug" : "info");
	}
}

void pgbi_map_pgbouncer(struct imp *im)
{
	for (size_t i = 0; i < im->ini.n; i++) {
		const struct pgbini_ent *e = &im->ini.e[i], *last;
		const struct pgbi_key *k = NULL;
		char what[160];

		if (strcmp(e->section, "pgbouncer"))
			continue;
		snprintf(what, sizeof(what), "[pgbouncer] %s", e->key);
		last = pgbi_find_last(im, "pgbouncer", e->key);
		if (last != e) {
			pgbi_report(im, e, what, "not-needed", "set again at %s:%d", last->file,
			            last->line);
			continue;
		}
		for (size_t j = 0; j < N_KEYS; j++)
			if (!strcasecmp(keys[j].name, e->key))
				k = &keys[j];
		if (!k) {
			pgbi_report(im, e, what, "not-mapped",
			            "not a PgBouncer setting HeliosProxy knows");
			continue;
		}
		switch (k->kind) {
		case K_NONE:
			pgbi_report(im, e, what, "not-mapped", "%s", k->why);
			break;
		case K_NOTNEEDED:
			pgbi_report(im, e, what, "not-needed", "%s", k->why);
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
		if (!k->pgb_default || k->kind == K_SPECIAL ||
		    pgbi_find_last(im, "pgbouncer", k->name))
			continue;
		put_simple(im, k, NULL, k->pgb_default, "default");
	}
	map_listen(im);
	map_auth(im);
}
