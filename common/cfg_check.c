/*
 * Configuration rules that span keys, checked once every key has its value:
 * addresses, URLs and paths, unique names, users that must exist, routes,
 * cache tables, tenants, the XDP section, TLS files. Each error names the
 * file, line and key (cfg_fail_key).
 */
#include "common/cfg_internal.h"

#include "common/cfg_keys.h"
#include "common/cidr.h"
#include "common/cpauth.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Makes relative CFG_KEY_PATH values relative to the config file's folder,
 * so the process's working directory does not matter. */
static int resolve_paths(struct loader *ld)
{
	size_t n;
	const struct cfg_key *keys = cfg_key_table(&n);
	char joined[2 * CFG_PATH_MAX], key[128];

	if (!ld->dir)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct cfg_key *k = &keys[i];
		char *field = (char *)ld->c + k->offset;
		size_t len;
		/* PATH keys of array elements are not supported (there are none). */
		if (!(k->flags & CFG_KEY_PATH) || cfg_section_find(k->section)->is_array ||
		    field[0] == '\0' || field[0] == '/')
			continue;
		len = (size_t)snprintf(joined, sizeof(joined), "%s%s%s", ld->dir,
		                       ld->dir[strlen(ld->dir) - 1] == '/' ? "" : "/", field);
		if (len >= k->size) {
			cfg_key_path(key, sizeof(key), k->section, -1, k->name);
			return cfg_fail_key(
			    ld, k->section, -1, k->name,
			    "key '%s': path is longer than %zu bytes once resolved against %s", key,
			    k->size - 1, ld->dir);
		}
		memcpy(field, joined, len + 1);
	}
	return 0;
}

/* Names in array section (nodes, auth.users) must be unique. */
static int check_unique(struct loader *ld, const char *section, const char *arr, size_t n,
                        size_t elem, const char *what)
{
	size_t off = cfg_key_in(section, "name", strlen("name"))->offset;
	char shown[96];
	struct cfg_buf b;

	for (size_t j = 1; j < n; j++) {
		for (size_t i = 0; i < j; i++) {
			const char *a = arr + i * elem + off, *b2 = arr + j * elem + off;
			if (strcmp(a, b2) != 0)
				continue;
			cfg_buf_init(&b, shown, sizeof(shown));
			cfg_buf_quote(&b, b2, strlen(b2));
			return cfg_fail_key(
			    ld, section, (long)j, "name",
			    "key '%s[%zu].name': duplicate %s name %s (also %s[%zu])", section, j,
			    what, shown, section, i);
		}
	}
	return 0;
}

static int check_address(struct loader *ld, const char *name, const char *addr)
{
	char host[CFG_HOST_MAX];
	uint16_t port;

	if (cfg_parse_address(addr, host, sizeof(host), &port) == 0)
		return 0;
	return cfg_fail_key(ld, "", -1, name,
	                    "key '%s': \"%s\" is not host:port (IPv6 as \"[::1]:5433\")", name,
	                    addr);
}

/* A TLS file that the mode needs: set, and a readable regular file. */
static int check_tls_file(struct loader *ld, const char *name, const char *path,
                          const char *needed_by, const char *mode)
{
	struct stat st;
	int fd;

	if (!path[0])
		return cfg_fail_key(ld, "tls", -1, needed_by,
		                    "key 'tls.%s' is required when tls.%s = \"%s\"", name,
		                    needed_by, mode);
	fd = cfg_open_regular(path, &st);
	if (fd < 0)
		return cfg_fail_key(ld, "tls", -1, name, "key 'tls.%s': cannot read \"%s\": %s",
		                    name, path, strerror(-fd));
	close(fd);
	return 0;
}

static int validate_tls(struct loader *ld)
{
	struct cfg *c = ld->c;
	const char *cmode = cfg_key_find("tls.client_mode")->values[c->tls.client_mode];
	const char *smode = cfg_key_find("tls.server_mode")->values[c->tls.server_mode];
	int rc = 0;

	if (c->tls.client_mode != CFG_CTLS_DISABLE) {
		rc = check_tls_file(ld, "cert_file", c->tls.cert_file, "client_mode", cmode);
		if (rc == 0)
			rc = check_tls_file(ld, "key_file", c->tls.key_file, "client_mode", cmode);
	}
	if (rc == 0 && (c->tls.server_mode == CFG_STLS_VERIFY_FULL ||
	                (c->tls.server_mode != CFG_STLS_DISABLE && c->tls.ca_file[0])))
		rc = check_tls_file(ld, "ca_file", c->tls.ca_file, "server_mode", smode);
	/* client certificates and the proxy's own certificate (issue 18) */
	if (rc == 0 && c->tls.client_mode >= CFG_CTLS_VERIFY_CA)
		rc = check_tls_file(ld, "client_ca_file", c->tls.client_ca_file, "client_mode",
		                    cmode);
	if (rc == 0 && c->tls.client_crl_file[0])
		rc = check_tls_file(ld, "client_crl_file", c->tls.client_crl_file, "client_mode",
		                    cmode);
	if (rc == 0 && c->tls.ident_file[0])
		rc = check_tls_file(ld, "ident_file", c->tls.ident_file, "client_mode", cmode);
	if (rc == 0 && c->tls.client_map[0] && !c->tls.ident_file[0])
		rc = cfg_fail_key(ld, "tls", -1, "client_map",
		                  "key 'tls.client_map' names a map but tls.ident_file is not set");
	if (rc == 0 && (c->tls.server_cert_file[0] || c->tls.server_key_file[0])) {
		if (!c->tls.server_cert_file[0] || !c->tls.server_key_file[0])
			return cfg_fail_key(
			    ld, "tls", -1,
			    c->tls.server_cert_file[0] ? "server_cert_file" : "server_key_file",
			    "keys 'tls.server_cert_file' and 'tls.server_key_file' go "
			    "together: set both or neither");
		rc = check_tls_file(ld, "server_cert_file", c->tls.server_cert_file,
		                    "server_cert_file", "");
		if (rc == 0)
			rc = check_tls_file(ld, "server_key_file", c->tls.server_key_file,
			                    "server_key_file", "");
		if (rc == 0 && c->tls.server_mode == CFG_STLS_DISABLE)
			rc = cfg_fail_key(
			    ld, "tls", -1, "server_cert_file",
			    "key 'tls.server_cert_file' needs tls.server_mode other than "
			    "\"disable\" (the certificate is shown inside TLS)");
	}
	return rc;
}

/* An nng URL in a form nng can dial and listen on. */
static int check_url(struct loader *ld, const char *name, const char *url)
{
	static const char *const schemes[] = {"ipc://", "tcp://", "tls+tcp://", "inproc://"};
	char shown[160];
	struct cfg_buf b;

	if (!url[0])
		return 0;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0 &&
		    url[strlen(schemes[i])] != '\0')
			return 0;
	cfg_buf_init(&b, shown, sizeof(shown));
	cfg_buf_quote(&b, url, strlen(url));
	return cfg_fail_key(ld, "", -1, name,
	                    "key '%s': %s is not an nng URL (ipc:///path, tcp://host:port, "
	                    "tls+tcp://host:port or inproc://name)",
	                    name, shown);
}

const char *cfg_list_next(const char **p, size_t *len)
{
	const char *s = *p, *end;

	if (!*s)
		return NULL;
	end = s + strcspn(s, ",");
	*p = *end ? end + 1 : end;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - s);
	return s;
}

/* [xdp]: an interface when enabled, valid prefixes and ports. */
static int check_xdp(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char why[160];
	const char *p = c->xdp.deny, *item;
	size_t len;

	if (c->xdp.enabled && !c->xdp.interface[0])
		return cfg_fail_key(ld, "xdp", -1, "interface",
		                    "key 'xdp.interface': required when xdp.enabled is true");
	if (strlen(c->xdp.interface) > 15) /* IFNAMSIZ - 1 */
		return cfg_fail_key(
		    ld, "xdp", -1, "interface",
		    "key 'xdp.interface': \"%s\" is longer than an interface name can be "
		    "(15 bytes)",
		    c->xdp.interface);
	while ((item = cfg_list_next(&p, &len))) {
		struct cidr cd;
		if (len && cidr_parse(item, len, &cd, why, sizeof(why)) < 0)
			return cfg_fail_key(ld, "xdp", -1, "deny", "key 'xdp.deny': %s", why);
	}
	uint16_t ports[64];
	if (cidr_parse_ports(c->xdp.ports, ports, 64, why, sizeof(why)) < 0)
		return cfg_fail_key(ld, "xdp", -1, "ports", "key 'xdp.ports': %s", why);
	return 0;
}

/* Every admin_users (stats_users) entry must be a user the proxy can
 * authenticate. */
static int check_user_list(struct loader *ld, const char *key, const char *list)
{
	const char *p = list, *item;
	char name[CFG_NAME_MAX], shown[96];
	struct cfg_buf b;
	size_t len;

	while ((item = cfg_list_next(&p, &len))) {
		if (len == 0)
			continue; /* "alice, bob," */
		if (len < sizeof(name)) {
			memcpy(name, item, len);
			name[len] = '\0';
			if (cfg_find_user(ld->c, name))
				continue;
		}
		cfg_buf_init(&b, shown, sizeof(shown));
		cfg_buf_quote(&b, item, len);
		return cfg_fail_key(ld, "", -1, key,
		                    "key '%s': %s is not a user from [[auth.users]] or "
		                    "auth.users_file",
		                    key, shown);
	}
	return 0;
}

/* One part of a heartbeat table name: an unquoted lower-case identifier, so
 * the control plane's SQL needs no quoting and names the table PostgreSQL
 * would fold it to. */
static bool heartbeat_ident(const char *s, size_t len)
{
	if (len == 0 || len > 63 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* One part of a schema route's table name: letters, digits, _ and $. */
static bool route_ident(const char *s, size_t len)
{
	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '$'))
			return false;
	return true;
}

/* "name" or "schema.name", each part accepted by ok (which refuses dots). */
static bool qualified_name(const char *s, bool (*ok)(const char *, size_t))
{
	const char *dot = strchr(s, '.');

	if (!dot)
		return ok(s, strlen(s));
	return ok(s, (size_t)(dot - s)) && ok(dot + 1, strlen(dot + 1));
}

/* s quoted and escaped for a message (one line, at most cap bytes). */
static const char *quoted(char *buf, size_t cap, const char *s)
{
	struct cfg_buf b;

	cfg_buf_init(&b, buf, cap);
	cfg_buf_quote(&b, s, strlen(s));
	return buf;
}

/* Every target names primary, replica (standby) or a node; every table
 * name has a form the router can match. */
static int check_schema_routes(struct loader *ld)
{
	struct cfg *c = ld->c;
	char shown[CFG_QNAME_MAX * 6 + 8], names[256];
	struct cfg_buf b;

	for (size_t i = 0; i < c->n_schema_routes; i++) {
		struct cfg_schema_route *r = &c->schema_routes[i];
		for (size_t j = 0; j < r->n_tables; j++) {
			if (qualified_name(r->tables[j], route_ident))
				continue;
			return cfg_fail_key(
			    ld, "schema_routes", (long)i, "tables",
			    "key 'schema_routes[%zu].tables': %s is not table or "
			    "schema.table (letters, digits, _ and $, at most 63 bytes "
			    "each)",
			    i, quoted(shown, sizeof(shown), r->tables[j]));
		}
		/* One spelling for the router: standby is a synonym. */
		if (strcmp(r->target, "standby") == 0)
			snprintf(r->target, sizeof(r->target), "replica");
		if (strcmp(r->target, "primary") == 0 || strcmp(r->target, "replica") == 0 ||
		    cfg_node_by_name(c, r->target))
			continue;
		cfg_buf_init(&b, names, sizeof(names));
		for (size_t n = 0; n < c->n_nodes && !b.full; n++)
			cfg_buf_printf(&b, "%s%s", n ? ", " : "", c->nodes[n].name);
		if (b.full && b.len >= 3)
			memcpy(names + b.len - 3, "...", 3);
		return cfg_fail_key(ld, "schema_routes", (long)i, "target",
		                    "key 'schema_routes[%zu].target': %s is not primary, replica, "
		                    "standby or a node name (%s)",
		                    i, quoted(shown, sizeof(shown), r->target), names);
	}
	return 0;
}

/* [[databases]] names are unique, their nodes exist, a password goes with a
 * forced user, an auth_user is known; [[users]] names are unique. */
static int check_databases(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char shown[CFG_NAME_MAX * 6 + 8];
	int rc;

	rc = check_unique(ld, "databases", (const char *)c->databases, c->n_databases,
	                  sizeof(*c->databases), "database");
	if (rc == 0)
		rc = check_unique(ld, "users", (const char *)c->pool_users, c->n_pool_users,
		                  sizeof(*c->pool_users), "user");
	for (size_t j = 0; rc == 0 && j < c->n_databases; j++) {
		const struct cfg_database *d = &c->databases[j];
		for (size_t i = 0; i < d->n_nodes; i++)
			if (!cfg_node_by_name(c, d->nodes[i]))
				return cfg_fail_key(
				    ld, "databases", (long)j, "nodes",
				    "key 'databases[%zu].nodes': %s is not the name of "
				    "a [[nodes]] entry",
				    j, quoted(shown, sizeof(shown), d->nodes[i]));
		if (d->password[0] && !d->user[0])
			return cfg_fail_key(ld, "databases", (long)j, "password",
			                    "key 'databases[%zu].password': needs user (the "
			                    "password is the forced server user's)",
			                    j);
		if (d->auth_user[0] && !cfg_find_user(c, d->auth_user))
			return cfg_fail_key(ld, "databases", (long)j, "auth_user",
			                    "key 'databases[%zu].auth_user': %s is not a user from "
			                    "[[auth.users]] or auth.users_file",
			                    j, quoted(shown, sizeof(shown), d->auth_user));
		if (d->pool_size && d->min_pool_size > d->pool_size)
			return cfg_fail_key(ld, "databases", (long)j, "min_pool_size",
			                    "key 'databases[%zu].min_pool_size': %d is more than "
			                    "pool_size %d",
			                    j, d->min_pool_size, d->pool_size);
	}
	return rc;
}

/* Tenant ids are unique and schema prefixes are plain identifiers. */
static int check_tenants(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char shown[CFG_NAME_MAX * 6 + 8];

	for (size_t j = 0; j < c->n_tenants; j++) {
		const struct cfg_tenant *t = &c->tenants[j];
		for (size_t i = 0; i < j; i++)
			if (strcmp(c->tenants[i].id, t->id) == 0)
				return cfg_fail_key(
				    ld, "tenants", (long)j, "id",
				    "key 'tenants[%zu].id': duplicate tenant id %s (also "
				    "tenants[%zu])",
				    j, quoted(shown, sizeof(shown), t->id), i);
		const char *p = t->schema_prefix;
		bool ok = !p[0] || !(p[0] >= '0' && p[0] <= '9');
		for (; *p && ok; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			return cfg_fail_key(
			    ld, "tenants", (long)j, "schema_prefix",
			    "key 'tenants[%zu].schema_prefix': %s is not a schema name of "
			    "lower-case letters, digits and _",
			    j, quoted(shown, sizeof(shown), t->schema_prefix));
	}
	return 0;
}

/* Every [[cache.tables]] name has a form the cache can match, and names are
 * unique ignoring case: two entries for one table would leave which
 * settings apply to chance. */
static int check_cache_tables(struct loader *ld)
{
	const struct cfg *c = ld->c;
	char shown[CFG_QNAME_MAX * 6 + 8];

	for (size_t j = 0; j < c->cache.n_tables; j++) {
		const char *name = c->cache.tables[j].name;
		if (!qualified_name(name, route_ident))
			return cfg_fail_key(
			    ld, "cache.tables", (long)j, "name",
			    "key 'cache.tables[%zu].name': %s is not table or "
			    "schema.table (letters, digits, _ and $, at most 63 bytes "
			    "each)",
			    j, quoted(shown, sizeof(shown), name));
		for (size_t i = 0; i < j; i++)
			if (strcasecmp(c->cache.tables[i].name, name) == 0)
				return cfg_fail_key(
				    ld, "cache.tables", (long)j, "name",
				    "key 'cache.tables[%zu].name': duplicate table "
				    "name %s (also cache.tables[%zu], names are compared "
				    "case-insensitively)",
				    j, quoted(shown, sizeof(shown), name), i);
	}
	return 0;
}

/* check_user logs in to the servers itself, so it needs a password it can
 * send: plaintext or a server_password. */
static int check_check_user(struct loader *ld)
{
	const struct cfg *c = ld->c;
	const struct cfg_user *u;
	char shown[CFG_NAME_MAX * 6 + 8];

	if (!c->routing.check_user[0])
		return 0;
	quoted(shown, sizeof(shown), c->routing.check_user);
	if (!(u = cfg_find_user(c, c->routing.check_user)))
		return cfg_fail_key(
		    ld, "routing", -1, "check_user",
		    "key 'routing.check_user': %s is not a user from [[auth.users]] or "
		    "auth.users_file",
		    shown);
	if (!cfg_user_plain_password(u))
		return cfg_fail_key(
		    ld, "routing", -1, "check_user",
		    "key 'routing.check_user': user %s has no plaintext password or "
		    "server_password to log in to the servers with",
		    shown);
	return 0;
}

/* Rules of single keys that the key table cannot express. */
static int validate_formats(struct loader *ld)
{
	struct cfg *c = ld->c;
	int rc;

	if ((rc = resolve_paths(ld)) ||
	    (rc = check_address(ld, "listen_address", c->listen_address)) ||
	    (c->admin_address[0] && (rc = check_address(ld, "admin_address", c->admin_address))) ||
	    (c->control_admin_address[0] &&
	     (rc = check_address(ld, "control_admin_address", c->control_admin_address))) ||
	    (rc = check_url(ld, "control_address", c->control_address)) ||
	    (rc = check_url(ld, "control_socket", c->control_socket)))
		return rc;
	if (!qualified_name(c->routing.heartbeat_table, heartbeat_ident)) {
		char shown[CFG_QNAME_MAX * 6 + 8];
		return cfg_fail_key(
		    ld, "routing", -1, "heartbeat_table",
		    "key 'routing.heartbeat_table': %s is not table or schema.table "
		    "(lower-case letters, digits and _, not starting with a digit, at "
		    "most 63 bytes each)",
		    quoted(shown, sizeof(shown), c->routing.heartbeat_table));
	}
	return 0;
}

/* A control_tls_* file: readable, when set (in a file's config). */
static int check_control_file(struct loader *ld, const char *name, const char *path)
{
	struct stat st;
	int fd;

	/* A snapshot (loaded from memory) names the control plane's own
	 * files, which need not exist where a data plane applies it. */
	if (!path[0] || !ld->dir)
		return 0;
	fd = cfg_open_regular(path, &st);
	if (fd < 0)
		return cfg_fail_key(ld, "", -1, name, "key '%s': cannot read \"%s\": %s", name,
		                    path, strerror(-fd));
	close(fd);
	return 0;
}

/* Control addresses: TLS files that tls+tcp:// needs, and no address
 * other hosts can reach without a token or client certificates unless
 * control_allow_insecure says so (common/cpauth.h). */
static int check_control_url(struct loader *ld, const char *name, const char *url)
{
	const struct cfg *c = ld->c;
	char shown[160];

	if (!url[0])
		return 0;
	if (cpauth_is_tls(url)) {
		if (!c->control_tls_ca[0])
			return cfg_fail_key(
			    ld, "", -1, "control_tls_ca",
			    "key 'control_tls_ca' is required when %s is tls+tcp:// (the CA that "
			    "signs the control plane's certificate%s)",
			    name, c->control_tls_verify_client ? " and the clients'" : "");
		if (c->control_tls_verify_client &&
		    (!c->control_tls_cert[0] || !c->control_tls_key[0]))
			return cfg_fail_key(
			    ld, "", -1,
			    c->control_tls_cert[0] ? "control_tls_key" : "control_tls_cert",
			    "key '%s' is required when %s is tls+tcp:// and "
			    "control_tls_verify_client = true (every side presents a certificate)",
			    c->control_tls_cert[0] ? "control_tls_key" : "control_tls_cert", name);
	}
	if (cpauth_url_unprotected(c, url))
		return cfg_fail_key(
		    ld, "", -1, name,
		    "key '%s': %s can be reached from other hosts and nothing authenticates "
		    "its clients: anyone there could change the configuration. Set "
		    "control_token, or use tls+tcp:// with control_tls_ca and "
		    "control_tls_verify_client = true, or bind it to 127.0.0.1; "
		    "control_allow_insecure = true accepts it as it is",
		    name, quoted(shown, sizeof(shown), url));
	return 0;
}

static int validate_control(struct loader *ld)
{
	const struct cfg *c = ld->c;
	int rc;

	if ((rc = check_control_file(ld, "control_tls_ca", c->control_tls_ca)) ||
	    (rc = check_control_file(ld, "control_tls_cert", c->control_tls_cert)) ||
	    (rc = check_control_file(ld, "control_tls_key", c->control_tls_key)) ||
	    (rc = check_control_url(ld, "control_address", c->control_address)) ||
	    (rc = check_control_url(ld, "control_socket", c->control_socket)))
		return rc;
	/* like the files: a snapshot's group is the control plane's business */
	if (c->control_socket_group[0] && ld->dir && !getgrnam(c->control_socket_group)) {
		char shown[CFG_NAME_MAX * 6 + 8];
		return cfg_fail_key(ld, "", -1, "control_socket_group",
		                    "key 'control_socket_group': there is no group %s on this "
		                    "system",
		                    quoted(shown, sizeof(shown), c->control_socket_group));
	}
	return 0;
}

/* Rules that span keys; runs once every key has its value. */
int cfg_validate(struct loader *ld)
{
	struct cfg *c = ld->c;
	int rc;

	if ((rc = validate_formats(ld)))
		return rc;
	if (c->pool.min_idle > c->pool.max_pool_size)
		return cfg_fail_key(
		    ld, "pool_mode", -1, "min_idle",
		    "key 'pool_mode.min_idle': %d is greater than pool_mode.max_pool_size (%d)",
		    c->pool.min_idle, c->pool.max_pool_size);
	if (c->n_nodes == 0)
		return cfg_fail(ld, 0, "no [[nodes]] table: at least one node is required");
	rc = check_unique(ld, "nodes", (const char *)c->nodes, c->n_nodes, sizeof(*c->nodes),
	                  "node");
	if (rc == 0)
		rc = check_unique(ld, "auth.users", (const char *)c->auth.users,
		                  c->auth.n_config_users, sizeof(*c->auth.users), "user");
	if (rc == 0 && c->auth.users_file[0])
		rc = cfg_load_users_file(ld);
	if (rc == 0 && c->auth.auth_user[0] && !cfg_find_user(c, c->auth.auth_user))
		rc = cfg_fail_key(
		    ld, "auth", -1, "auth_user",
		    "key 'auth.auth_user': \"%s\" is not a user from [[auth.users]] or "
		    "auth.users_file",
		    c->auth.auth_user);
	if (rc == 0 && c->auth.hba_file[0] && c->auth.n_rules)
		rc = cfg_fail_key(ld, "auth", -1, "hba_file",
		                  "key 'auth.hba_file': set it or [[auth.rules]], not both (the "
		                  "first match would depend on which is read first)");
	if (rc == 0)
		rc = check_user_list(ld, "admin_users", c->admin_users);
	if (rc == 0)
		rc = check_user_list(ld, "stats_users", c->stats_users);
	if (rc == 0)
		rc = check_databases(ld);
	if (rc == 0)
		rc = check_xdp(ld);
	if (rc == 0)
		rc = check_check_user(ld);
	if (rc == 0)
		rc = check_schema_routes(ld);
	if (rc == 0)
		rc = check_cache_tables(ld);
	if (rc == 0)
		rc = check_tenants(ld);
	if (rc == 0)
		rc = validate_tls(ld);
	if (rc == 0)
		rc = validate_control(ld);
	return rc;
}
