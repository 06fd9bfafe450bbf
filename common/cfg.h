/*
 * The configuration model. Every key is declared once in a table
 * (common/cfg_keys.c) with name, type, default, bounds and a one-line doc;
 * the TOML loader, validation, docs/configuration.md and helioctl use it.
 * A loaded struct cfg is immutable and shared read-only between threads.
 */
#ifndef HELIOS_CFG_H
#define HELIOS_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_NAME_MAX   64
#define CFG_HOST_MAX   256
#define CFG_PATH_MAX   512
#define CFG_SECRET_MAX 512
#define CFG_QUERY_MAX  1024
#define CFG_LIST_MAX   1024 /* comma-separated lists (admin_users) */
/* "schema.table": two PostgreSQL identifiers (at most 63 bytes each) and a dot. */
#define CFG_QNAME_MAX 128

/* The enums' numeric values are the positions of their names in the key
 * table's value lists (cfg_keys.c): keep both in the same order. */
enum cfg_io_backend { CFG_IO_AUTO, CFG_IO_URING, CFG_IO_EPOLL };
enum cfg_pool_mode { CFG_POOL_SESSION, CFG_POOL_TRANSACTION, CFG_POOL_STATEMENT };
enum cfg_xdp_mode { CFG_XDP_GENERIC, CFG_XDP_NATIVE, CFG_XDP_AUTO };
enum cfg_rate_mode { CFG_RATE_THROTTLE, CFG_RATE_REJECT };
enum cfg_tenant_map { CFG_TENANT_BY_DATABASE, CFG_TENANT_BY_USER, CFG_TENANT_BY_STARTUP };
enum cfg_role { CFG_ROLE_PRIMARY, CFG_ROLE_REPLICA };
enum cfg_auth_method { CFG_AUTH_TRUST, CFG_AUTH_MD5, CFG_AUTH_SCRAM };
/* Client side TLS: disable = refuse SSLRequest; allow = accept TLS if asked;
 * require = refuse non-TLS clients (except CancelRequest). */
/* Ordered: every mode from REQUIRE on refuses clients without TLS. */
enum cfg_client_tls {
	CFG_CTLS_DISABLE,
	CFG_CTLS_ALLOW,
	CFG_CTLS_REQUIRE,
	CFG_CTLS_VERIFY_CA,   /* + a client certificate from client_ca_file */
	CFG_CTLS_VERIFY_FULL, /* + its CN/SAN maps to the login user */
};
enum cfg_server_tls { CFG_STLS_DISABLE, CFG_STLS_PREFER, CFG_STLS_REQUIRE, CFG_STLS_VERIFY_FULL };

struct cfg_node {
	char name[CFG_NAME_MAX]; /* default "node<index>", unique */
	char host[CFG_HOST_MAX];
	int port; /* default 5432 */
	enum cfg_role role;
};

/* One [[schema_routes]] entry: statements touching one of tables go to
 * target. The loader has checked every table name ("table" or
 * "schema.table" of [A-Za-z0-9_$], kept as written: compare them
 * case-insensitively) and that target is "primary", "replica" ("standby" in
 * the file is stored as "replica") or the name of a [[nodes]] entry; the
 * keywords win over a node of the same name. */
struct cfg_schema_route {
	char **tables; /* n_tables (>= 1) NUL-terminated names */
	size_t n_tables;
	char target[CFG_NAME_MAX];
};

/* One [[tenants]] entry. */
struct cfg_tenant {
	char id[CFG_NAME_MAX];
	int max_connections; /* client connections, and server connections; 0 = no cap */
	int rate_limit;      /* queries per second for the whole tenant; 0 = none */
	char **databases;    /* n_databases: the databases it may use (none listed: any) */
	size_t n_databases;
	char **users; /* n_users: its users (tenancy.map_by = "user") */
	size_t n_users;
	char schema_prefix[CFG_NAME_MAX]; /* qualifies unqualified tables; "" = none */
};

/* One [[auth.rules]] entry: the fields of a pg_hba.conf line
 * (dataplane/auth/hba.h parses them as one). */
struct cfg_hba_rule {
	char type[16];               /* local | host | hostssl | hostnossl */
	char database[CFG_LIST_MAX]; /* "all", or a comma list */
	char user[CFG_LIST_MAX];
	char address[CFG_HOST_MAX]; /* CIDR or "all"; "" for local */
	char method[32];
	char options[CFG_LIST_MAX]; /* "name=value name2=value2"; "" = none */
};

/* One [[rewrite_rules]] entry: statements with match's shape become replace. */
struct cfg_rewrite_rule {
	char name[CFG_NAME_MAX];
	char match[4096];
	char replace[4096];
};

/* One [[cache.tables]] entry: how the result cache treats statements that
 * read table name ("table" or "schema.table", checked like schema route
 * tables and unique case-insensitively; see cfg_cache_table()). */
struct cfg_cache_table {
	char name[CFG_QNAME_MAX];
	int ttl_secs; /* 0 = cache.default_ttl_secs */
	bool enabled; /* default true; false = never cache statements reading it */
};

/* One [[databases]] entry (issue 19, PgBouncer's [databases]): clients that
 * connect to database name (an alias; "*" = every name no other entry has)
 * get this entry's server database, user and pool settings. Empty strings and
 * 0 (-1 for reserve_pool) inherit: see the key table's docs. */
struct cfg_database {
	char name[CFG_NAME_MAX]; /* alias clients connect to, unique; "*" = fallback */
	char **nodes;            /* n_nodes [[nodes]] names it may use; none = all */
	size_t n_nodes;
	char dbname[CFG_NAME_MAX];     /* real database; "" = the alias (client's name for "*") */
	char user[CFG_NAME_MAX];       /* forced server user; "" = the client's */
	char password[CFG_SECRET_MAX]; /* of the forced user; "" = from [[auth.users]] */
	char auth_user[CFG_NAME_MAX];  /* auth_query user here; "" = auth.auth_user */
	int pool_size;                 /* 0 = pool_mode.max_pool_size */
	int min_pool_size;             /* 0 = pool_mode.min_idle */
	int reserve_pool;              /* -1 = pool_mode.reserve_pool_size */
	char pool_mode[16];            /* "" = [[users]] entry, else pool_mode.mode */
	int max_db_connections;        /* 0 = pool_mode.max_db_connections */
	char client_encoding[CFG_NAME_MAX]; /* startup parameters; "" = the client's */
	char datestyle[CFG_NAME_MAX];
	char timezone[CFG_NAME_MAX];
};

/* A plugin's config table as JSON, at most (bytes). */
#define CFG_PLUGIN_CONFIG_MAX 65536
/* [[plugins]] entries, at most. */
#define CFG_PLUGINS_MAX 64

/* One [[plugins]] entry: a WASM plugin the control plane loads and pushes
 * to its data planes (docs/plugins.md). */
struct cfg_plugin {
	char name[CFG_NAME_MAX]; /* unique */
	char *path;              /* the .wasm file, relative to the config file's folder */
	char *config_json;       /* its `config` table as JSON ("{}" when none) */
	bool deny_on_failure;    /* on_failure = "deny" (default "continue") */
	uint32_t timeout_ms;     /* wall clock per hook call (default and maximum 100) */
	uint64_t fuel;           /* instructions per hook call */
	uint32_t memory_mb;      /* linear memory cap */
	uint32_t max_failures;   /* consecutive failures before it is disabled (0: never) */
};

/* One [[users]] entry: pool settings of a login user (credentials stay in
 * [[auth.users]] / users_file). */
struct cfg_user_pool {
	char name[CFG_NAME_MAX];
	char pool_mode[16];       /* "" = pool_mode.mode (a database's mode wins) */
	int max_user_connections; /* 0 = pool_mode.max_user_connections */
};

/* A user the proxy knows. password is what PgBouncer's userlist.txt holds:
 * plaintext, "md5<32 hex>" or "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>".
 * server_password (optional, plaintext) is used towards the servers when
 * password is not plaintext and no passthrough is possible. */
struct cfg_user {
	char name[CFG_NAME_MAX];
	char password[CFG_SECRET_MAX];
	char server_password[CFG_SECRET_MAX];
};

struct cfg {
	char path[CFG_PATH_MAX]; /* file it was loaded from ("" if from memory) */

	char listen_address[CFG_HOST_MAX]; /* "host:port", default "127.0.0.1:5433" */
	char admin_address[CFG_HOST_MAX];  /* default "127.0.0.1:8432", "" = off */
	int workers;                       /* 0 = online CPUs */
	enum cfg_io_backend io_backend;
	char unix_socket_dir[CFG_PATH_MAX]; /* "" = no Unix socket */
	char log_level[16];                 /* error|warn|info|debug, for log_set_level_str() */
	int log_format;                     /* 0 text, 1 json (enum log_format) */
	bool log_connections;               /* a line per client connect */
	bool log_disconnections;            /* a line per client disconnect */
	bool syslog;                        /* lines also go to syslog(3) */
	char syslog_ident[64];              /* default "heliosproxy" */
	char syslog_facility[16];           /* daemon|user|local0..7 */
	int shutdown_timeout_secs;          /* SIGTERM grace period, default 30 */
	int max_client_conn;                /* default 10000 */
	int client_login_timeout_secs;      /* startup + TLS + auth, default 60, 0 = none */
	int max_login_clients;              /* logging in at once; 0 = max_client_conn / 4 */
	int stats_period_secs;              /* default 60, 0 = off */

	/* Control plane. The URLs are nng URLs (ipc://, tcp://, inproc://). */
	char control_address[CFG_PATH_MAX]; /* external helios-cp; "" = in-process */
	char control_socket[CFG_PATH_MAX];  /* in-process plane's URL; "" = cfg_control_url() */
	char state_dir[CFG_PATH_MAX];       /* private runtime folder; "" = rundir_default() */
	char control_admin_address[CFG_HOST_MAX]; /* helios-cp admin HTTP, "" = off */
	int heartbeat_interval_ms;                /* default 1000 */
	int health_check_interval_secs;           /* default 2 */
	/* resolved; default "<state_dir>/<config name>.live.toml" with state_dir,
	 * else "<config path>.live.toml" */
	char overrides_file[CFG_PATH_MAX];
	bool watch_config;              /* inotify on the file: a change applies like SIGHUP */
	char admin_users[CFG_LIST_MAX]; /* comma-separated; see cfg_is_admin_user() */
	char stats_users[CFG_LIST_MAX]; /* read-only SHOW on the console; cfg_is_stats_user() */
	int client_idle_timeout_secs;   /* idle client (no transaction) closed; 0 = off */
	/* Who may use the control plane (common/cpauth.h, docs/control-plane.md) */
	char control_token[CFG_SECRET_MAX];         /* shared secret; "" = none */
	char control_tls_cert[CFG_PATH_MAX];        /* tls+tcp://: own certificate (PEM) */
	char control_tls_key[CFG_PATH_MAX];         /* its private key (PEM) */
	char control_tls_ca[CFG_PATH_MAX];          /* CA that signs the other side's */
	char control_tls_server_name[CFG_HOST_MAX]; /* "" = the host of the URL */
	bool control_tls_verify_client;             /* default true */
	bool control_allow_insecure;                /* default false */
	char control_socket_group[CFG_NAME_MAX];    /* ipc socket 0660 with it; "" = 0600 */

	struct {
		enum cfg_pool_mode mode;         /* default session */
		int max_pool_size;               /* default 20, per (node, database, user) */
		int min_idle;                    /* default 0, <= max_pool_size */
		int idle_timeout_secs;           /* default 600, 0 = never */
		int server_lifetime_secs;        /* default 3600, 0 = unlimited */
		int query_wait_timeout_secs;     /* default 120, 0 = wait forever */
		int server_connect_timeout_secs; /* default 5 */
		char reset_query[CFG_QUERY_MAX]; /* default "DISCARD ALL", "" = none */
		int pin_action;                  /* 0 pin, 1 error */
		int max_prepared_statements;     /* per server, default 256 */
		bool track_sql_prepare;          /* default true */
		bool reset_sequences;            /* DISCARD SEQUENCES on a client switch, true */
		bool kernel_splice;              /* session mode: sockmap splice, default false */
		/* issue 19 (PgBouncer parity) */
		int reserve_pool_size;             /* extra servers per pool for waiters, 0 */
		int reserve_pool_timeout_ms;       /* wait before the reserve is used, 5000 */
		int max_db_connections;            /* servers per database, all users; 0 = none */
		int max_user_connections;          /* servers per user, all databases; 0 = none */
		int query_timeout_secs;            /* cancel + 57014; 0 = off */
		int idle_transaction_timeout_secs; /* idle in transaction: close; 0 = off */
	} pool;

	/* issue 19: [[databases]] (aliases) and [[users]] (per-user pool settings) */
	struct cfg_database *databases;
	size_t n_databases;
	struct cfg_user_pool *pool_users;
	size_t n_pool_users;

	struct cfg_node *nodes; /* at least one */
	size_t n_nodes;

	struct {
		bool read_write_split;       /* default false */
		int read_your_writes_ms;     /* default 0 = off */
		int max_replica_lag_ms;      /* default 1000 */
		int lag_check_interval_secs; /* default 1 */
		int failover_timeout_secs;   /* default 10 */
		/* "" = cfg_check_user() picks one; else a user with a plaintext
		 * password or a server_password (checked by the loader). */
		char check_user[CFG_NAME_MAX];
		char check_database[CFG_NAME_MAX];   /* default "postgres" */
		char heartbeat_table[CFG_QNAME_MAX]; /* default "public.helios_heartbeat" */
		int analysis_cache_entries;          /* per worker, default 4096; restart */
	} routing;

	struct {
		int failure_threshold;     /* default 5, 0 = off */
		int recovery_timeout_secs; /* default 10 */
	} circuit_breaker;

	struct cfg_schema_route *schema_routes; /* zero or more, in file order */
	size_t n_schema_routes;

	/* Query result cache (transaction/statement pooling only). */
	struct {
		bool enabled;                   /* default false */
		int max_memory_mb;              /* per data plane, default 64 */
		int default_ttl_secs;           /* default 60 */
		int max_entry_kb;               /* default 256; larger results are not stored */
		bool cache_rls_tables;          /* default false */
		struct cfg_cache_table *tables; /* zero or more, in file order */
		size_t n_tables;
	} cache;

	/* Per-fingerprint statistics and the slow query log. */
	struct {
		bool enabled;                /* default false */
		int slow_query_threshold_ms; /* default 1000, 0 = no slow query log */
		/* resolved; "" from a file becomes "<state_dir>/<config name>.slow.jsonl"
		 * with state_dir, else "<config path>.slow.jsonl" */
		char slow_query_log[CFG_PATH_MAX];
		int slow_query_log_max_mb; /* default 64 */
		int max_fingerprints;      /* per worker, default 2000 */
		int metrics_top;           /* default 20 */
	} analytics;

	/* Token buckets for queries (transaction/statement pooling). */
	struct {
		int queries_per_second; /* per user (per_user) or for everyone; 0 = off */
		int burst_size;         /* tokens a bucket holds; 0 = queries_per_second */
		bool per_user;          /* default true */
		enum cfg_rate_mode mode;
		int max_wait_ms;                 /* throttle: then 53400; default 1000 */
		int database_queries_per_second; /* one bucket per database; 0 = none */
	} rate_limit;

	/* How clients map to [[tenants]]. */
	struct {
		enum cfg_tenant_map map_by;
		bool require; /* a client of no tenant is refused */
	} tenancy;
	struct cfg_tenant *tenants;
	size_t n_tenants;
	struct cfg_rewrite_rule *rewrite_rules;
	size_t n_rewrite_rules;
	/* issue 20: [[plugins]] (docs/plugins.md), in the order hooks run */
	struct cfg_plugin *plugins;
	size_t n_plugins;

	/* XDP admission filter, loaded by the control plane (controlplane/xdp.c) */
	struct {
		bool enabled;                 /* default false */
		char interface[CFG_NAME_MAX]; /* required when enabled */
		enum cfg_xdp_mode mode;       /* default generic */
		char ports[CFG_LIST_MAX];     /* comma-separated destination ports; "" = all */
		int syn_rate_per_sec;         /* per source address, 0 = no limit */
		int syn_burst;                /* 0 = syn_rate_per_sec */
		char deny[CFG_LIST_MAX];      /* comma-separated CIDRs */
		char pin_dir[CFG_PATH_MAX]; /* bpffs folder the deny trie is pinned in; "" = none */
	} xdp;

	struct {
		enum cfg_auth_method method; /* default scram-sha-256 */
		/* [[auth.users]] first, then the users_file entries (those with a
		 * name from [[auth.users]] are dropped: they could never be found). */
		struct cfg_user *users;
		size_t n_users;
		size_t n_config_users; /* users[0..n_config_users) came from [[auth.users]] */
		char users_file[CFG_PATH_MAX]; /* resolved against the config file's folder */
		char auth_user[CFG_NAME_MAX];
		char auth_query[CFG_QUERY_MAX];
		int auth_query_cache_secs;              /* default 5, 0 = no cache */
		int auth_query_max_running;             /* lookups at once per worker, default 4 */
		char scram_mock_secret[CFG_SECRET_MAX]; /* "" = random at start */
		/* issue 18 (h9): per-rule methods; with neither, method applies */
		char hba_file[CFG_PATH_MAX]; /* pg_hba.conf syntax; "" = none */
		struct cfg_hba_rule *rules;  /* [[auth.rules]] */
		size_t n_rules;
		int max_failures_per_minute; /* per source address, 0 = no limit */
	} auth;

	struct {
		enum cfg_client_tls client_mode;
		char cert_file[CFG_PATH_MAX]; /* paths resolved like users_file */
		char key_file[CFG_PATH_MAX];
		char ca_file[CFG_PATH_MAX]; /* CA for verify-full towards servers */
		enum cfg_server_tls server_mode;
		/* client certificates (issue 18) */
		char client_ca_file[CFG_PATH_MAX];   /* CAs client certificates chain to */
		char client_crl_file[CFG_PATH_MAX];  /* "" = no revocation check */
		char client_map[CFG_NAME_MAX];       /* map of ident_file for verify-full */
		char ident_file[CFG_PATH_MAX];       /* pg_ident.conf-style maps */
		char server_cert_file[CFG_PATH_MAX]; /* the proxy's certificate for servers */
		char server_key_file[CFG_PATH_MAX];
	} tls;
};

/* One line naming file, line and key, e.g.
 * "proxy.toml:7: key 'pool_mode.max_pool_size': 0 is out of range (1..10000)". */
struct cfg_error {
	char msg[512];
};

/* Loads and validates a file. Returns NULL and fills *err on any problem
 * (unreadable file, TOML syntax, unknown key or table, wrong type, out of
 * range, bad enum value, string too long for its field, no [[nodes]], ...).
 * Relative paths (users_file, TLS files, overrides_file, slow_query_log)
 * resolve against the file's folder, made absolute; users_file is read and
 * appended to auth.users; an empty overrides_file becomes "<path>.live.toml"
 * and an empty analytics.slow_query_log "<path>.slow.jsonl" (in state_dir,
 * named after the file, when state_dir is set). "${NAME}" in a string value
 * is environment variable NAME ("$${" a literal "${"); an unset one is an
 * error naming file, line and key. */
struct cfg *cfg_load_file(const char *path, struct cfg_error *err);
/* Same from memory (len bytes, need not be NUL-terminated); name is used in
 * messages in place of a file name; relative paths stay relative to the
 * current directory. */
struct cfg *cfg_load_string(const char *name, const char *text, size_t len, struct cfg_error *err);
/* Loads path like cfg_load_file, then applies overrides before validation:
 * ovr_text is TOML of dotted keys ("pool_mode.max_pool_size = 50\n"), read
 * as file ovr_name (errors name ovr_name, its line and the key). A key in
 * the overrides replaces the file's value; keys of array tables ([[nodes]],
 * [[schema_routes]], [[cache.tables]], [[auth.users]]) cannot be overridden
 * (error). ovr_text NULL = none. */
struct cfg *cfg_load_file_with(const char *path, const char *ovr_name, const char *ovr_text,
                               struct cfg_error *err);
/* A value given on the command line (heliosproxy --listen and
 * --admin-address, helios-cp --admin-address): every config this process
 * loads afterwards (the file, reloads, snapshots from a control plane) takes
 * it over the file's and the overrides file's value; errors about it name
 * "command line". Checked like helioctl config set. Call before any thread
 * loads a config. 0, or -1 with err. */
int cfg_force_value(const char *dotted, const char *value, struct cfg_error *err);
/* Forgets the values cfg_force_value() set (tests). */
void cfg_force_clear(void);
/* off: loads ignore the forced values until called again with false (to
 * see the file as helioctl does); start-up only, before other threads load. */
void cfg_force_suspend(bool off);
/* Frees c and wipes the passwords it held; NULL is fine. */
void cfg_free(struct cfg *c);

/* Finds a user ([[auth.users]] first, then users_file entries); NULL if unknown. */
const struct cfg_user *cfg_find_user(const struct cfg *c, const char *name);
/* The first node with role primary, or NULL. */
const struct cfg_node *cfg_primary(const struct cfg *c);
/* The node named name, or NULL; cfg_node_index gives its position in
 * c->nodes, or -1. */
const struct cfg_node *cfg_node_by_name(const struct cfg *c, const char *name);
int cfg_node_index(const struct cfg *c, const char *name);
/* The [[cache.tables]] entry for a table a statement reads: schema as
 * written in the statement ("" or NULL when unqualified) and name, compared
 * case-insensitively. An entry "schema.table" matches that table and an
 * unqualified use of the same name; "table" matches it in any schema. The
 * entry written the way the statement names the table wins (names are
 * unique, so there is at most one), else the first other match in file
 * order. NULL if none. */
const struct cfg_cache_table *cfg_cache_table(const struct cfg *c, const char *schema,
                                              const char *name);
/* The plaintext password u can log in to the servers with: server_password
 * if set, else password when it is plaintext (non-empty, not an md5 or
 * SCRAM secret); NULL if there is none. */
const char *cfg_user_plain_password(const struct cfg_user *u);
/* The user the control plane's health and lag checks connect as:
 * routing.check_user if set, else auth.auth_user if set, else the first
 * configured user with a plaintext password; NULL when there is none. */
const struct cfg_user *cfg_check_user(const struct cfg *c);
/* True when user is listed in admin_users (entries compared after trimming
 * blanks; case-sensitive like PostgreSQL role names). */
bool cfg_is_admin_user(const struct cfg *c, const char *user);
/* The same for stats_users (only that list: callers decide what admins may). */
bool cfg_is_stats_user(const struct cfg *c, const char *user);
/* The [[databases]] entry clients connecting to database name use: the entry
 * of that name, else the "*" entry, else NULL. *none is set true when
 * [[databases]] exist but neither matches (the client gets 3D000); false
 * otherwise (no entries at all: every database passes through). */
const struct cfg_database *cfg_database_find(const struct cfg *c, const char *name, bool *none);
/* The [[users]] entry of user name, or NULL. */
const struct cfg_user_pool *cfg_pool_user_find(const struct cfg *c, const char *name);
/* The pool mode of a client of database entry db (NULL = none) and user:
 * the database's, else the user entry's, else pool_mode.mode. */
enum cfg_pool_mode cfg_pool_mode_for(const struct cfg *c, const struct cfg_database *db,
                                     const char *user);

/* Where helioctl reaches this config's control plane: control_address if
 * set, else control_socket if set, else
 * "ipc://<state dir>/heliosproxy-<port of listen_address>.ctl", the state
 * dir being rundir_current(state_dir) (common/rundir.h). */
void cfg_control_url(const struct cfg *c, char *buf, size_t cap);

/* The whole config as TOML that cfg_load_string() reads back to an equal
 * config: every key, secrets in clear, users_file entries inlined as
 * [[auth.users]] with users_file = "", paths as stored (absolute when they
 * came from a file). malloc'd; NULL when out of memory. The text holds the
 * passwords: wipe it (explicit_bzero) before free(). */
char *cfg_to_toml(const struct cfg *c);

/* Splits "host:port" or "[v6addr]:port" into host (without brackets) and
 * port 1..65535. Returns 0, or -EINVAL if malformed, -ENAMETOOLONG if host
 * does not fit host_cap. */
__attribute__((warn_unused_result)) int cfg_parse_address(const char *addr, char *host,
                                                          size_t host_cap, uint16_t *port);

/* Writes docs/configuration.md (Markdown) generated from the key table. */
void cfg_write_docs(FILE *out);
/* heliosproxy.toml(5) in roff from the same table (make man). */
void cfg_write_man(FILE *out, const char *version);

const char *cfg_pool_mode_str(enum cfg_pool_mode m);
/* The next entry of a comma-separated list value (admin_users, xdp.deny)
 * at *p, without surrounding blanks (may be empty); *len gets its length.
 * NULL at the end of the list. */
const char *cfg_list_next(const char **p, size_t *len);
const char *cfg_auth_method_str(enum cfg_auth_method m);

/* ---- The key table, for validation tooling and `helioctl config get`. ---- */

/* CFG_KEY_STRLIST: an array of strings, stored as a char ** at the key's
 * offset followed by its size_t count (struct cfg_schema_route.tables); only
 * in array tables. min..max bound the count, size - 1 each string. */
enum cfg_key_type { CFG_KEY_STRING, CFG_KEY_INT, CFG_KEY_BOOL, CFG_KEY_ENUM, CFG_KEY_STRLIST };

#define CFG_KEY_RESTART  0x01u /* a change needs a restart, not a reload */
#define CFG_KEY_REQUIRED 0x02u /* no default: must be given, non-empty */
#define CFG_KEY_PATH     0x04u /* relative path, resolved against the config's folder */
#define CFG_KEY_SECRET   0x08u /* cfg_format_value masks it */
#define CFG_KEY_TEXT     0x10u /* enum stored as its name in a char array, not an int */

struct cfg_key {
	/* "", "pool_mode", "routing", "circuit_breaker", "cache", "analytics",
	 * "auth", "tls", or the arrays "nodes", "schema_routes", "cache.tables",
	 * "auth.users" */
	const char *section;
	const char *name;
	enum cfg_key_type type;
	size_t offset;   /* into struct cfg; for arrays into their element struct */
	size_t size;     /* of the field; a string holds at most size - 1 bytes (strlist: each) */
	const char *def; /* default as text, "<index>" = element index; NULL if required */
	long long min, max;        /* ints; strlists: how many strings */
	const char *const *values; /* enums: NULL-terminated, position = stored value */
	unsigned flags;            /* CFG_KEY_* */
	const char *doc;           /* one line */
};

/* All keys in documentation order; *n gets the count. */
const struct cfg_key *cfg_key_table(size_t *n);
/* Finds a key by dotted name: "io_backend", "pool_mode.max_pool_size",
 * "nodes.port", "auth.users.name", "cache.tables.ttl_secs". NULL if unknown. */
const struct cfg_key *cfg_key_find(const char *dotted_name);
/* Writes k's value in c as a TOML value ("100", "\"transaction\"", quoted
 * and escaped strings, ["a", "b"] for string lists); keys of array tables
 * ([[nodes]], [[schema_routes]], [[cache.tables]], [[auth.users]]) give an
 * array with one value per element. Non-empty secrets come out as "********".
 * Returns 0, -EINVAL for bad arguments, -ENOSPC if cap is too small. */
__attribute__((warn_unused_result)) int
cfg_format_value(const struct cfg *c, const struct cfg_key *k, char *buf, size_t cap);
/* PgBouncer setting name pgb ("listen_port", "default_pool_size") -> the
 * HeliosProxy dotted key that holds the same setting ("listen_address",
 * "pool_mode.max_pool_size"), or "" when HeliosProxy has none; *note gets a
 * short remark (unit or form change, why there is none) or "". NULL when pgb
 * is not a PgBouncer setting this table knows. Used by the loader's unknown-key
 * hints and by helioctl import-pgbouncer. */
const char *cfg_pgbouncer_key(const char *pgb, const char **note);

/* The dotted name of a key ("pool_mode.max_pool_size", "io_backend"). */
void cfg_key_name(const struct cfg_key *k, char *buf, size_t cap);
/* True when a and b hold the same value for k (array keys: all elements,
 * users_file entries included). */
bool cfg_key_equal(const struct cfg *a, const struct cfg *b, const struct cfg_key *k);
/* For every CFG_KEY_RESTART key whose value differs, copies old's value into
 * nw and stores the dotted name in names[] (up to max; the names are static
 * strings). Returns how many differed (may exceed max). Used by a data plane
 * applying a snapshot. */
size_t cfg_keep_restart_keys(const struct cfg *old, struct cfg *nw, const char **names, size_t max);
/* helioctl "config set KEY VALUE": checks the key exists, is not in an array
 * table and that VALUE has its type, bounds, enum value and length, and
 * writes one canonical TOML line without newline ("pool_mode.max_pool_size = 50",
 * "pool_mode.mode = \"transaction\""). Strings and enums may be given bare
 * (transaction) or as TOML strings ("transaction"); bools as true/false; ints
 * as decimal. Returns 0, or -1 with err like
 * "key 'pool_mode.max_pool_size': 0 is out of range (1..10000)" /
 * "key 'pool_mode.mode': 'bogus' is not one of session, transaction, statement" /
 * "unknown key 'pool_mode.max_pool_sise' (did you mean 'pool_mode.max_pool_size'?)".
 * Cross-key rules (min_idle <= max_pool_size, ...) are checked by loading. */
int cfg_override_line(const char *dotted, const char *value, char *line, size_t cap,
                      struct cfg_error *err);

#endif
