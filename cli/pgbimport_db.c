/*
 * helioctl import-pgbouncer: [databases] entries into [[nodes]] (one per
 * distinct host and port) and [[databases]], [users] into [[users]].
 */
#include "cli/pgbimport.h"

#include <stdio.h>
#include <string.h>

/* ---- [databases] ---- */

static bool valid_mode(const char *m)
{
	return !strcmp(m, "session") || !strcmp(m, "transaction") || !strcmp(m, "statement");
}

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
	pgbi_toml_str(&im->nodes, host);
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
		return pgbi_report(im, e, what, "error", "%s", err);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(pr[i].key, "host"))
			snprintf(hosts, sizeof(hosts), "%s", pr[i].val);
		else if (!strcmp(pr[i].key, "port"))
			port_s = pr[i].val;
	}
	if (pgbi_parse_long(port_s, &port) < 0 || port < 1 || port > 65535)
		return pgbi_report(im, e, what, "error", "port '%s' is not a port", port_s);
	if (!hosts[0]) {
		/* As PgBouncer: no host = the Unix socket in unix_socket_dir. */
		if (!im->unix_dir[0])
			return pgbi_report(
			    im, e, what, "error",
			    "no host, and unix_socket_dir is empty: no server to use");
		snprintf(hosts, sizeof(hosts), "%s", im->unix_dir);
	}
	sbuf_init(&nodes);
	for (char *save = NULL, *h = strtok_r(hosts, ",", &save); h;
	     h = strtok_r(NULL, ",", &save)) {
		const char *name = node_for(im, h, (int)port);
		if (!name) {
			sbuf_free(&nodes);
			return pgbi_report(im, e, what, "error", "more than %d servers",
			                   PGBI_MAX_NODES);
		}
		sbuf_printf(&nodes, "%s\"%s\"", nodes.len ? ", " : "", name);
	}
	sbuf_puts(b, "\n[[databases]]\nname = ");
	pgbi_toml_str(b, e->key);
	sbuf_printf(b, "\nnodes = [%s]\n", nodes.p ? nodes.p : "");
	sbuf_free(&nodes);
	for (size_t i = 0; i < n; i++) {
		const struct db_key *k = NULL;
		char w[260];

		snprintf(w, sizeof(w), "[databases] %s %s", e->key, pr[i].key);
		if (!strcmp(pr[i].key, "host") || !strcmp(pr[i].key, "port")) {
			pgbi_report(im, e, w, "mapped", "[[nodes]] %s (nodes of database %s)",
			            pr[i].val, e->key);
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
			pgbi_report(im, e, w, "not-mapped", "%s", why);
			continue;
		}
		if (k->kind == K_INT) {
			long v;
			if (pgbi_parse_long(pr[i].val, &v) < 0) {
				pgbi_report(im, e, w, "error", "'%s' is not a whole number",
				            pr[i].val);
				continue;
			}
			sbuf_printf(b, "%s = %ld\n", k->helios, v);
			pgbi_report(im, e, w, "mapped", "[[databases]] %s = %ld", k->helios, v);
		} else if (!strcmp(k->pgb, "pool_mode") && !valid_mode(pr[i].val)) {
			pgbi_report(im, e, w, "error", "unknown pool_mode '%s'", pr[i].val);
		} else {
			sbuf_printf(b, "%s = ", k->helios);
			pgbi_toml_str(b, pr[i].val);
			sbuf_putc(b, '\n');
			pgbi_report(im, e, w, "mapped", "[[databases]] %s = \"%s\"", k->helios,
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
		return pgbi_report(im, e, what, "error", "%s", err);
	sbuf_puts(&im->users, "\n[[users]]\nname = ");
	pgbi_toml_str(&im->users, e->key);
	sbuf_putc(&im->users, '\n');
	for (size_t i = 0; i < n; i++) {
		char w[260];
		long v;

		snprintf(w, sizeof(w), "[users] %s %s", e->key, pr[i].key);
		if (!strcmp(pr[i].key, "pool_mode") && !valid_mode(pr[i].val)) {
			pgbi_report(im, e, w, "error", "unknown pool_mode '%s'", pr[i].val);
		} else if (!strcmp(pr[i].key, "pool_mode")) {
			sbuf_puts(&im->users, "pool_mode = ");
			pgbi_toml_str(&im->users, pr[i].val);
			sbuf_putc(&im->users, '\n');
			pgbi_report(im, e, w, "mapped", "[[users]] pool_mode = \"%s\"", pr[i].val);
		} else if (!strcmp(pr[i].key, "max_user_connections")) {
			if (pgbi_parse_long(pr[i].val, &v) < 0) {
				pgbi_report(im, e, w, "error", "'%s' is not a whole number",
				            pr[i].val);
				continue;
			}
			sbuf_printf(&im->users, "max_user_connections = %ld\n", v);
			pgbi_report(im, e, w, "mapped", "[[users]] max_user_connections = %ld", v);
		} else {
			pgbi_report(
			    im, e, w, "not-mapped", "%s",
			    !strcmp(pr[i].key, "pool_size") ||
			            !strcmp(pr[i].key, "reserve_pool_size")
			        ? "pool sizes are set per database ([[databases]] pool_size)"
			        : "not a [users] parameter HeliosProxy knows");
		}
	}
}

void pgbi_map_sections(struct imp *im)
{
	bool any_db = false;

	for (size_t i = 0; i < im->ini.n; i++) {
		const struct pgbini_ent *e = &im->ini.e[i], *last;
		char what[200];

		snprintf(what, sizeof(what), "[%s] %s", e->section, e->key);
		if (!strcmp(e->section, "pgbouncer"))
			continue;
		if (strcmp(e->section, "databases") && strcmp(e->section, "users")) {
			pgbi_report(im, e, what, "not-mapped",
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
			pgbi_report(im, e, what, "not-needed", "set again at %s:%d", last->file,
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
		pgbi_report(im, NULL, "[databases]", "error",
		            "no database: PgBouncer serves nothing without [databases] entries");
}
