/*
 * Every configuration key, declared once: section, name, type, field,
 * default, bounds and doc. The loader (cfg.c), cfg_format_value(),
 * cfg_write_docs() and helioctl all read this table; nothing else lists keys.
 */
#include "common/cfg.h"
#include "common/cfg_keys.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Offset and size of a field, for the table below. */
#define F_CFG(field)  offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)
#define F_NODE(field) offsetof(struct cfg_node, field), sizeof(((struct cfg_node *)0)->field)
#define F_USER(field) offsetof(struct cfg_user, field), sizeof(((struct cfg_user *)0)->field)
#define F_ROUTE(field)                                                                             \
	offsetof(struct cfg_schema_route, field), sizeof(((struct cfg_schema_route *)0)->field)
#define F_CTABLE(field)                                                                            \
	offsetof(struct cfg_cache_table, field), sizeof(((struct cfg_cache_table *)0)->field)
#define F_TENANT(field)            offsetof(struct cfg_tenant, field), sizeof(((struct cfg_tenant *)0)->field)
#define F_TENANT_LIST(field, each) offsetof(struct cfg_tenant, field), (each)
#define F_RULE(field)                                                                              \
	offsetof(struct cfg_rewrite_rule, field), sizeof(((struct cfg_rewrite_rule *)0)->field)
#define F_DB(field)            offsetof(struct cfg_database, field), sizeof(((struct cfg_database *)0)->field)
#define F_DB_LIST(field, each) offsetof(struct cfg_database, field), (each)
#define F_PUSER(field)                                                                             \
	offsetof(struct cfg_user_pool, field), sizeof(((struct cfg_user_pool *)0)->field)
#define F_HBA(field) offsetof(struct cfg_hba_rule, field), sizeof(((struct cfg_hba_rule *)0)->field)
/* [[plugins]] keys are read by cfg_plugins.c, not through the offsets (path
 * and config_json are malloc'd, fuel is 64-bit): offset 0, the size is the
 * longest value allowed. */
#define F_PLUGIN_DOC(size) 0, (size)
/* A string list's size is that of each string: the field is a pointer. */
#define F_ROUTE_LIST(field, each) offsetof(struct cfg_schema_route, field), (each)

/* cfg_strlist_get() finds a list's count right after its pointer. */
_Static_assert(offsetof(struct cfg_schema_route, n_tables) ==
                   offsetof(struct cfg_schema_route, tables) + sizeof(char **),
               "n_tables must follow tables");

_Static_assert(offsetof(struct cfg_tenant, n_databases) ==
                   offsetof(struct cfg_tenant, databases) + sizeof(char **),
               "n_databases must follow databases");
_Static_assert(offsetof(struct cfg_database, n_nodes) ==
                   offsetof(struct cfg_database, nodes) + sizeof(char **),
               "n_nodes must follow nodes");
_Static_assert(offsetof(struct cfg_tenant, n_users) ==
                   offsetof(struct cfg_tenant, users) + sizeof(char **),
               "n_users must follow users");

/* Value lists: position = enum value in cfg.h (log_level: log.h order). */
static const char *const rate_modes[] = {"throttle", "reject", NULL};
static const char *const tenant_maps[] = {"database", "user", "startup", NULL};
static const char *const io_backends[] = {"auto", "io_uring", "epoll", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const syslog_facilities[] = {"daemon", "user",   "local0", "local1",
                                                "local2", "local3", "local4", "local5",
                                                "local6", "local7", NULL};
static const char *const pool_modes[] = {"session", "transaction", "statement", NULL};
/* [[databases]] / [[users]]: stored as text, "" = inherited */
static const char *const pool_modes_or_inherit[] = {"", "session", "transaction", "statement",
                                                    NULL};
static const char *const roles[] = {"primary", "replica", NULL};
static const char *const auth_methods[] = {"trust", "md5", "scram-sha-256", NULL};
static const char *const client_tls[] = {"disable",   "allow",       "require",
                                         "verify-ca", "verify-full", NULL};
static const char *const server_tls[] = {"disable", "prefer", "require", "verify-full", NULL};
static const char *const pin_actions[] = {"pin", "error", NULL};
static const char *const xdp_modes[] = {"generic", "native", "auto", NULL};
static const char *const plugin_failures[] = {"continue", "deny", NULL};

#define RESTART CFG_KEY_RESTART
#define REQ     CFG_KEY_REQUIRED
#define PATH    CFG_KEY_PATH
#define SECRET  CFG_KEY_SECRET

static const struct cfg_key keys[] = {
    {"", "listen_address", CFG_KEY_STRING, F_CFG(listen_address), "127.0.0.1:5433", 0, 0, NULL,
     RESTART, "Address clients connect to, as host:port; IPv6 as \"[::1]:5433\"."},
    {"", "admin_address", CFG_KEY_STRING, F_CFG(admin_address), "127.0.0.1:8432", 0, 0, NULL,
     RESTART,
     "The data plane's admin HTTP (the dashboard at /, /api/overview, /metrics, /livez, "
     "/healthz, /readyz, /status), as "
     "host:port; empty = off. In a pod bind 0.0.0.0:8432 so kubelet probes and Prometheus "
     "reach it (or heliosproxy --admin-address)."},
    {"", "workers", CFG_KEY_INT, F_CFG(workers), "0", 0, 256, NULL, RESTART,
     "Worker threads, each with its own event loop; 0 = one per online CPU."},
    {"", "io_backend", CFG_KEY_ENUM, F_CFG(io_backend), "auto", 0, 0, io_backends, RESTART,
     "I/O engine; auto uses io_uring when the kernel allows it, else epoll."},
    {"", "unix_socket_dir", CFG_KEY_STRING, F_CFG(unix_socket_dir), "", 0, 0, NULL, RESTART,
     "Folder for a Unix-domain listening socket; empty = none."},
    {"", "log_level", CFG_KEY_ENUM, F_CFG(log_level), "info", 0, 0, log_levels, CFG_KEY_TEXT,
     "Least severe level written to the log."},
    {"", "log_format", CFG_KEY_ENUM, F_CFG(log_format), "text", 0, 0, log_formats, 0,
     "Log line format: \"text\" (time level message) or \"json\" (one object per line with "
     "time, level, event, client_id, user, database, address and message)."},
    {"", "log_connections", CFG_KEY_BOOL, F_CFG(log_connections), "false", 0, 0, NULL, 0,
     "Log a line (event client_connect) per client login: address, user, database, TLS."},
    {"", "log_disconnections", CFG_KEY_BOOL, F_CFG(log_disconnections), "false", 0, 0, NULL, 0,
     "Log a line (event client_disconnect) per client that goes: duration and reason."},
    {"", "syslog", CFG_KEY_BOOL, F_CFG(syslog), "false", 0, 0, NULL, 0,
     "Also send every log line to syslog(3) (/dev/log; journald reads it) with the matching "
     "priority."},
    {"", "syslog_ident", CFG_KEY_STRING, F_CFG(syslog_ident), "heliosproxy", 0, 0, NULL, 0,
     "The program name syslog lines carry."},
    {"", "syslog_facility", CFG_KEY_ENUM, F_CFG(syslog_facility), "daemon", 0, 0, syslog_facilities,
     CFG_KEY_TEXT, "The syslog facility: daemon, user or local0..local7."},
    {"", "shutdown_timeout_secs", CFG_KEY_INT, F_CFG(shutdown_timeout_secs), "30", 0, 3600, NULL, 0,
     "After SIGTERM, seconds clients get to finish before they are closed."},
    {"", "stats_period_secs", CFG_KEY_INT, F_CFG(stats_period_secs), "60", 0, 86400, NULL, 0,
     "Write one log line of pool, client and pin counts this often; 0 = never."},
    {"", "max_client_conn", CFG_KEY_INT, F_CFG(max_client_conn), "10000", 1, 1000000, NULL, 0,
     "Most client connections open at once; further ones are refused."},
    {"", "client_login_timeout_secs", CFG_KEY_INT, F_CFG(client_login_timeout_secs), "60", 0, 3600,
     NULL, 0,
     "A client that has not finished logging in (startup packet, TLS handshake, password "
     "exchange) this long after connecting is closed, as PostgreSQL's authentication_timeout; "
     "0 = no limit."},
    {"", "max_login_clients", CFG_KEY_INT, F_CFG(max_login_clients), "0", 0, 1000000, NULL, 0,
     "Most connections still logging in at once, so that sockets that never finish cannot "
     "take every max_client_conn slot; 0 = a quarter of max_client_conn (at least 16, at "
     "most max_client_conn). When it is reached, a new connection takes the place of its "
     "worker's oldest one still logging in if that one has been at it for a second or more, "
     "else it is refused (53300)."},
    {"", "control_address", CFG_KEY_STRING, F_CFG(control_address), "", 0, 0, NULL, RESTART,
     "External control plane (helios-cp) to attach to, as an nng URL (ipc:///path or "
     "tcp://host:port); helios-cp listens here. Empty = heliosproxy runs the control plane "
     "in-process."},
    {"", "control_socket", CFG_KEY_STRING, F_CFG(control_socket), "", 0, 0, NULL, RESTART,
     "Where the in-process control plane listens for helioctl (nng URL); empty = "
     "ipc://<state_dir>/heliosproxy-<listen port>.ctl."},
    {"", "control_token", CFG_KEY_STRING, F_CFG(control_token), "", 0, 0, NULL, SECRET | RESTART,
     "Shared secret every data plane and helioctl must present to the control plane "
     "(helios-cp, or heliosproxy's own on control_socket); requests without it are refused. "
     "Empty = none. Write it as \"${HELIOS_CONTROL_TOKEN}\" to take it from the "
     "environment."},
    {"", "control_tls_cert", CFG_KEY_STRING, F_CFG(control_tls_cert), "", 0, 0, NULL,
     PATH | RESTART,
     "tls+tcp:// control addresses: this side's certificate (PEM): helios-cp's server "
     "certificate, a data plane's client certificate."},
    {"", "control_tls_key", CFG_KEY_STRING, F_CFG(control_tls_key), "", 0, 0, NULL, PATH | RESTART,
     "The private key of control_tls_cert (PEM, not encrypted)."},
    {"", "control_tls_ca", CFG_KEY_STRING, F_CFG(control_tls_ca), "", 0, 0, NULL, PATH | RESTART,
     "tls+tcp://: CA certificates (PEM) that sign the other side's certificate: data planes "
     "verify helios-cp with it, helios-cp verifies client certificates with it."},
    {"", "control_tls_verify_client", CFG_KEY_BOOL, F_CFG(control_tls_verify_client), "true", 0, 0,
     NULL, RESTART,
     "tls+tcp://: helios-cp accepts only clients with a certificate signed by control_tls_ca "
     "(data planes and helioctl then need control_tls_cert and control_tls_key)."},
    {"", "control_tls_server_name", CFG_KEY_STRING, F_CFG(control_tls_server_name), "", 0, 0, NULL,
     RESTART,
     "tls+tcp://: the name helios-cp's certificate must carry (DNS name or common name); "
     "empty = the host of control_address."},
    {"", "control_allow_insecure", CFG_KEY_BOOL, F_CFG(control_allow_insecure), "false", 0, 0, NULL,
     RESTART,
     "Accept a tcp:// (or tls+tcp:// without client certificates) control address that is not "
     "loopback without control_token: anyone who reaches it can change the configuration."},
    {"", "control_socket_group", CFG_KEY_STRING, F_CFG(control_socket_group), "", 0, 0, NULL,
     RESTART,
     "ipc:// control sockets are mode 0600; with a group name, 0660 and owned by that group "
     "(it must exist), and the default state directory gets group search permission."},
    {"", "state_dir", CFG_KEY_STRING, F_CFG(state_dir), "", 0, 0, NULL, PATH | RESTART,
     "Private folder for what the proxy writes: the control socket and, when this is set, "
     "the overrides file and the slow query log (default names <config file name>.live.toml "
     "and .slow.jsonl in it); created with mode 0700 if missing; refused if another user "
     "owns it or others may write to it. Empty = the control socket goes to "
     "/run/heliosproxy as root, else $XDG_RUNTIME_DIR/heliosproxy, else "
     "/tmp/heliosproxy-<uid>, and the other files next to the config file."},
    {"", "control_admin_address", CFG_KEY_STRING, F_CFG(control_admin_address), "127.0.0.1:8433", 0,
     0, NULL, RESTART,
     "helios-cp's own admin HTTP (cluster-wide dashboard at /, /api/overview, /metrics, "
     "/livez, /healthz, /readyz, /status) "
     "as host:port; empty = off (or helios-cp --admin-address)."},
    {"", "heartbeat_interval_ms", CFG_KEY_INT, F_CFG(heartbeat_interval_ms), "1000", 100, 60000,
     NULL, 0,
     "Data planes report to the control plane this often; the control plane marks one lost "
     "after three missed intervals."},
    {"", "health_check_interval_secs", CFG_KEY_INT, F_CFG(health_check_interval_secs), "2", 1, 3600,
     NULL, 0,
     "The control plane probes every node this often (reachability; role and lag come with "
     "routing)."},
    {"", "overrides_file", CFG_KEY_STRING, F_CFG(overrides_file), "", 0, 0, NULL, PATH | RESTART,
     "Where helioctl config set persists live changes (TOML, written atomically); empty = "
     "<state_dir>/<config file name>.live.toml when state_dir is set, else <config "
     "file>.live.toml. With state_dir set and no file there yet, an old <config "
     "file>.live.toml is read once and its changes move to state_dir."},
    {"", "watch_config", CFG_KEY_BOOL, F_CFG(watch_config), "false", 0, 0, NULL, RESTART,
     "Watch the config file and its folder (inotify) and apply a change like SIGHUP does, "
     "about 200 ms after the last write; follows the symlink swap of a Kubernetes ConfigMap "
     "update. Only a change of the file's content reloads."},
    {"", "admin_users", CFG_KEY_STRING, F_CFG(admin_users), "", 0, 0, NULL, 0,
     "Comma-separated users allowed on the admin console (database heliosproxy); they must "
     "be configured users."},
    {"", "stats_users", CFG_KEY_STRING, F_CFG(stats_users), "", 0, 0, NULL, 0,
     "Comma-separated users allowed read-only SHOW commands on the admin console (as "
     "PgBouncer's stats_users); they must be configured users."},
    {"", "client_idle_timeout_secs", CFG_KEY_INT, F_CFG(client_idle_timeout_secs), "0", 0, 604800,
     NULL, 0,
     "A logged-in client that sends nothing this long while not in a transaction is closed "
     "(08P01 \"client_idle_timeout\"), as PgBouncer's client_idle_timeout; 0 = never."},

    {"pool_mode", "mode", CFG_KEY_ENUM, F_CFG(pool.mode), "session", 0, 0, pool_modes, 0,
     "When a server connection goes back to the pool: at client exit, transaction end or "
     "statement end."},
    {"pool_mode", "max_pool_size", CFG_KEY_INT, F_CFG(pool.max_pool_size), "20", 1, 10000, NULL, 0,
     "Most server connections per (node, database, user), across all workers."},
    {"pool_mode", "min_idle", CFG_KEY_INT, F_CFG(pool.min_idle), "0", 0, 10000, NULL, 0,
     "Idle server connections kept open per pool; at most max_pool_size."},
    {"pool_mode", "idle_timeout_secs", CFG_KEY_INT, F_CFG(pool.idle_timeout_secs), "600", 0, 604800,
     NULL, 0, "Close a server connection idle this long; 0 = never."},
    {"pool_mode", "server_lifetime_secs", CFG_KEY_INT, F_CFG(pool.server_lifetime_secs), "3600", 0,
     604800, NULL, 0, "Close a server connection this old when it is next idle; 0 = unlimited."},
    {"pool_mode", "query_wait_timeout_secs", CFG_KEY_INT, F_CFG(pool.query_wait_timeout_secs),
     "120", 0, 86400, NULL, 0,
     "A client waiting this long for a server connection gets an error; 0 = wait forever."},
    {"pool_mode", "server_connect_timeout_secs", CFG_KEY_INT,
     F_CFG(pool.server_connect_timeout_secs), "5", 1, 300, NULL, 0,
     "Give up connecting to a server after this long."},
    {"pool_mode", "reset_query", CFG_KEY_STRING, F_CFG(pool.reset_query), "DISCARD ALL", 0, 0, NULL,
     0, "Session mode: run on a server connection before another client gets it; empty = none."},
    {"pool_mode", "pin_action", CFG_KEY_ENUM, F_CFG(pool.pin_action), "pin", 0, 0, pin_actions, 0,
     "Transaction/statement mode: session state that cannot move (advisory locks, LISTEN, "
     "temp tables, WITH HOLD cursors...) pins the client to its server, or is refused."},
    {"pool_mode", "max_prepared_statements", CFG_KEY_INT, F_CFG(pool.max_prepared_statements),
     "256", 1, 100000, NULL, 0,
     "Transaction/statement mode: named prepared statements kept per server connection; the "
     "least recently used is closed beyond this."},
    {"pool_mode", "track_sql_prepare", CFG_KEY_BOOL, F_CFG(pool.track_sql_prepare), "true", 0, 0,
     NULL, 0,
     "Transaction/statement mode: follow SQL PREPARE/EXECUTE/DEALLOCATE across servers; false "
     "pins a client that uses PREPARE."},
    {"pool_mode", "reset_sequences", CFG_KEY_BOOL, F_CFG(pool.reset_sequences), "true", 0, 0, NULL,
     0,
     "Transaction/statement mode: send DISCARD SEQUENCES ahead of a client's transaction on a "
     "server another client used last, so currval() and lastval() never return another "
     "client's value (no extra round trip; false saves the server that statement)."},

    {"pool_mode", "kernel_splice", CFG_KEY_BOOL, F_CFG(pool.kernel_splice), "false", 0, 0, NULL, 0,
     "Session mode: after login, hand a client's bytes to its server and back in the kernel "
     "(eBPF sockmap) instead of relaying them; see docs/kernel-fastpath.md. Not for TLS "
     "clients or servers; without BPF it logs once and relays as usual."},
    {"pool_mode", "reserve_pool_size", CFG_KEY_INT, F_CFG(pool.reserve_pool_size), "0", 0, 10000,
     NULL, 0,
     "Server connections a pool may open beyond its size for clients that have waited "
     "reserve_pool_timeout_ms (PgBouncer's reserve_pool_size); 0 = none."},
    {"pool_mode", "reserve_pool_timeout_ms", CFG_KEY_INT, F_CFG(pool.reserve_pool_timeout_ms),
     "5000", 0, 3600000, NULL, 0,
     "How long a client waits for a server of a full pool before the reserve is used; 0 = "
     "the reserve is never used, as PgBouncer's reserve_pool_timeout = 0."},
    {"pool_mode", "max_db_connections", CFG_KEY_INT, F_CFG(pool.max_db_connections), "0", 0,
     1000000, NULL, 0,
     "Most server connections per database, over all its users and pools (a [[databases]] "
     "entry may set its own); clients beyond wait as for a full pool; 0 = no limit."},
    {"pool_mode", "max_user_connections", CFG_KEY_INT, F_CFG(pool.max_user_connections), "0", 0,
     1000000, NULL, 0,
     "Most server connections per user, over all its databases and pools (a [[users]] "
     "entry may set its own); clients beyond wait as for a full pool; 0 = no limit."},
    {"pool_mode", "query_timeout_secs", CFG_KEY_INT, F_CFG(pool.query_timeout_secs), "0", 0, 604800,
     NULL, 0,
     "A query running longer than this is cancelled on the server and the client gets "
     "57014 \"query timeout\", as PgBouncer's query_timeout; 0 = off."},
    {"pool_mode", "idle_transaction_timeout_secs", CFG_KEY_INT,
     F_CFG(pool.idle_transaction_timeout_secs), "0", 0, 604800, NULL, 0,
     "A client idle this long inside a transaction is disconnected (25P03 \"idle transaction "
     "timeout\") and its server connection closed, as PgBouncer's "
     "idle_transaction_timeout; 0 = off."},
    {"databases", "name", CFG_KEY_STRING, F_DB(name), NULL, 0, 0, NULL, REQ,
     "Database name clients connect to (an alias), unique; \"*\" = every name no other "
     "entry has."},
    {"databases", "nodes", CFG_KEY_STRLIST, F_DB_LIST(nodes, CFG_NAME_MAX), NULL, 0, 1000, NULL, 0,
     "Names of [[nodes]] entries this database may use; none = all nodes."},
    {"databases", "dbname", CFG_KEY_STRING, F_DB(dbname), "", 0, 0, NULL, 0,
     "The database on the server; empty = name (for \"*\": the client's database)."},
    {"databases", "user", CFG_KEY_STRING, F_DB(user), "", 0, 0, NULL, 0,
     "Every client of this database uses the server as this user (one pool for all); "
     "empty = the client's own user."},
    {"databases", "password", CFG_KEY_STRING, F_DB(password), "", 0, 0, NULL, SECRET,
     "Plaintext password of user on the servers; empty = the one [[auth.users]] or "
     "users_file gives it."},
    {"databases", "auth_user", CFG_KEY_STRING, F_DB(auth_user), "", 0, 0, NULL, 0,
     "User whose connection runs auth.auth_query for clients of this database; empty = "
     "auth.auth_user."},
    {"databases", "pool_size", CFG_KEY_INT, F_DB(pool_size), "0", 0, 10000, NULL, 0,
     "Most server connections per pool of this database; 0 = pool_mode.max_pool_size."},
    {"databases", "min_pool_size", CFG_KEY_INT, F_DB(min_pool_size), "0", 0, 10000, NULL, 0,
     "Idle server connections kept per pool of this database; 0 = pool_mode.min_idle."},
    {"databases", "reserve_pool", CFG_KEY_INT, F_DB(reserve_pool), "-1", -1, 10000, NULL, 0,
     "Reserve connections per pool of this database; -1 = pool_mode.reserve_pool_size."},
    {"databases", "pool_mode", CFG_KEY_ENUM, F_DB(pool_mode), "", 0, 0, pool_modes_or_inherit,
     CFG_KEY_TEXT,
     "Pool mode of this database's clients; empty = the user's [[users]] pool_mode, else "
     "pool_mode.mode."},
    {"databases", "max_db_connections", CFG_KEY_INT, F_DB(max_db_connections), "0", 0, 1000000,
     NULL, 0,
     "Most server connections of this database over all its pools; 0 = "
     "pool_mode.max_db_connections."},
    {"databases", "client_encoding", CFG_KEY_STRING, F_DB(client_encoding), "", 0, 0, NULL, 0,
     "client_encoding sent to the server at login; empty = the client's."},
    {"databases", "datestyle", CFG_KEY_STRING, F_DB(datestyle), "", 0, 0, NULL, 0,
     "DateStyle sent to the server at login; empty = the client's."},
    {"databases", "timezone", CFG_KEY_STRING, F_DB(timezone), "", 0, 0, NULL, 0,
     "TimeZone sent to the server at login; empty = the client's."},

    {"users", "name", CFG_KEY_STRING, F_PUSER(name), NULL, 0, 0, NULL, REQ,
     "Login user these settings apply to, unique."},
    {"users", "pool_mode", CFG_KEY_ENUM, F_PUSER(pool_mode), "", 0, 0, pool_modes_or_inherit,
     CFG_KEY_TEXT,
     "Pool mode of this user's clients; empty = pool_mode.mode. A [[databases]] pool_mode "
     "wins."},
    {"users", "max_user_connections", CFG_KEY_INT, F_PUSER(max_user_connections), "0", 0, 1000000,
     NULL, 0,
     "Most server connections of this user over all pools; 0 = "
     "pool_mode.max_user_connections."},

    {"nodes", "name", CFG_KEY_STRING, F_NODE(name), "node<index>", 0, 0, NULL, 0,
     "Unique name for logs, metrics and routes; default by position: node0, node1, ..."},
    {"nodes", "host", CFG_KEY_STRING, F_NODE(host), NULL, 0, 0, NULL, REQ,
     "Host name or IP address of the PostgreSQL server."},
    {"nodes", "port", CFG_KEY_INT, F_NODE(port), "5432", 1, 65535, NULL, 0,
     "TCP port of the PostgreSQL server."},
    {"nodes", "role", CFG_KEY_ENUM, F_NODE(role), "primary", 0, 0, roles, 0,
     "primary takes writes; replica serves reads."},

    {"routing", "read_write_split", CFG_KEY_BOOL, F_CFG(routing.read_write_split), "false", 0, 0,
     NULL, 0,
     "Transaction/statement pooling: read-only statements outside a transaction block, and READ "
     "ONLY transactions, go to replicas."},
    {"routing", "read_your_writes_ms", CFG_KEY_INT, F_CFG(routing.read_your_writes_ms), "0", 0,
     600000, NULL, 0,
     "After a client writes a table, its reads of that table go to the primary for this long; "
     "0 = off."},
    {"routing", "max_replica_lag_ms", CFG_KEY_INT, F_CFG(routing.max_replica_lag_ms), "1000", 0,
     86400000, NULL, 0, "Replicas further behind than this get no reads."},
    {"routing", "lag_check_interval_secs", CFG_KEY_INT, F_CFG(routing.lag_check_interval_secs), "1",
     1, 3600, NULL, 0, "The control plane measures replay lag and role of every node this often."},
    {"routing", "failover_timeout_secs", CFG_KEY_INT, F_CFG(routing.failover_timeout_secs), "10", 1,
     3600, NULL, 0,
     "When the primary has not answered this long and a replica reports it is no longer in "
     "recovery, it becomes the primary; queries wait up to this long during the switch."},
    {"routing", "check_user", CFG_KEY_STRING, F_CFG(routing.check_user), "", 0, 0, NULL, 0,
     "User the control plane connects as for health and lag checks; empty = auth.auth_user if "
     "set, else the first configured user with a plaintext password."},
    {"routing", "check_database", CFG_KEY_STRING, F_CFG(routing.check_database), "postgres", 0, 0,
     NULL, 0, "Database the control plane connects to for health and lag checks."},
    {"routing", "heartbeat_table", CFG_KEY_STRING, F_CFG(routing.heartbeat_table),
     "public.helios_heartbeat", 0, 0, NULL, 0,
     "Table the control plane writes on the primary and reads on replicas to measure replay "
     "lag (created if missing)."},
    {"routing", "analysis_cache_entries", CFG_KEY_INT, F_CFG(routing.analysis_cache_entries),
     "4096", 16, 1000000, NULL, RESTART, "Per worker: statements whose analysis is kept (LRU)."},

    {"schema_routes", "tables", CFG_KEY_STRLIST, F_ROUTE_LIST(tables, CFG_QNAME_MAX), NULL, 1, 1000,
     NULL, REQ,
     "Tables whose statements go to target: \"table\" or \"schema.table\"; compared "
     "case-insensitively."},
    {"schema_routes", "target", CFG_KEY_STRING, F_ROUTE(target), NULL, 0, 0, NULL, REQ,
     "primary, replica (standby is the same) or the name of a [[nodes]] entry."},

    {"circuit_breaker", "failure_threshold", CFG_KEY_INT, F_CFG(circuit_breaker.failure_threshold),
     "5", 0, 1000, NULL, 0,
     "Consecutive node failures (connect failures and timeouts, a server lost silently or "
     "with 57P02/57P03) that open a node's breaker; a terminated backend (57P01) does not "
     "count; 0 = off."},
    {"circuit_breaker", "recovery_timeout_secs", CFG_KEY_INT,
     F_CFG(circuit_breaker.recovery_timeout_secs), "10", 1, 3600, NULL, 0,
     "An open breaker lets one probe request through after this long (and again each "
     "period until the node answers)."},

    {"cache", "enabled", CFG_KEY_BOOL, F_CFG(cache.enabled), "false", 0, 0, NULL, 0,
     "Cache results of read-only, deterministic statements (transaction/statement pooling); "
     "see docs/cache.md."},
    {"cache", "max_memory_mb", CFG_KEY_INT, F_CFG(cache.max_memory_mb), "64", 1, 1048576, NULL, 0,
     "Memory for cached results, per data plane (entries plus their overhead)."},
    {"cache", "default_ttl_secs", CFG_KEY_INT, F_CFG(cache.default_ttl_secs), "60", 1, 86400, NULL,
     0,
     "Longest time an entry is served; bounds staleness for writes that do not pass through "
     "the proxy."},
    {"cache", "max_entry_kb", CFG_KEY_INT, F_CFG(cache.max_entry_kb), "256", 1, 1048576, NULL, 0,
     "Results larger than this are not stored."},
    {"cache", "cache_rls_tables", CFG_KEY_BOOL, F_CFG(cache.cache_rls_tables), "false", 0, 0, NULL,
     0,
     "Also cache statements on tables with row level security (the key already holds the "
     "role)."},

    {"cache.tables", "name", CFG_KEY_STRING, F_CTABLE(name), NULL, 0, 0, NULL, REQ,
     "Table these settings apply to: \"table\" or \"schema.table\"; compared "
     "case-insensitively, unique."},
    {"cache.tables", "ttl_secs", CFG_KEY_INT, F_CTABLE(ttl_secs), "0", 0, 86400, NULL, 0,
     "Longest time entries of statements reading this table are served; 0 = "
     "cache.default_ttl_secs."},
    {"cache.tables", "enabled", CFG_KEY_BOOL, F_CTABLE(enabled), "true", 0, 0, NULL, 0,
     "false = never cache statements that read this table."},

    {"rate_limit", "queries_per_second", CFG_KEY_INT, F_CFG(rate_limit.queries_per_second), "0", 0,
     10000000, NULL, 0,
     "Queries per second for each user (per_user) or for all clients together; 0 = no limit."},
    {"rate_limit", "burst_size", CFG_KEY_INT, F_CFG(rate_limit.burst_size), "0", 0, 10000000, NULL,
     0, "Queries a bucket lets through at once after a quiet spell; 0 = one second's worth."},
    {"rate_limit", "per_user", CFG_KEY_BOOL, F_CFG(rate_limit.per_user), "true", 0, 0, NULL, 0,
     "One bucket per user; false = one bucket for everyone."},
    {"rate_limit", "mode", CFG_KEY_ENUM, F_CFG(rate_limit.mode), "throttle", 0, 0, rate_modes, 0,
     "throttle: a query waits for a token (at most max_wait_ms); reject: it is refused at once "
     "with SQLSTATE 53400."},
    {"rate_limit", "max_wait_ms", CFG_KEY_INT, F_CFG(rate_limit.max_wait_ms), "1000", 1, 600000,
     NULL, 0, "throttle: the longest a query waits for a token before 53400."},
    {"rate_limit", "database_queries_per_second", CFG_KEY_INT,
     F_CFG(rate_limit.database_queries_per_second), "0", 0, 10000000, NULL, 0,
     "Queries per second for each database, over all its users; 0 = no limit."},

    {"tenancy", "map_by", CFG_KEY_ENUM, F_CFG(tenancy.map_by), "database", 0, 0, tenant_maps, 0,
     "How a client finds its tenant: the first [[tenants]] listing its database, its user, or "
     "the startup setting helios.tenant (options=-c helios.tenant=ID)."},
    {"tenancy", "require", CFG_KEY_BOOL, F_CFG(tenancy.require), "false", 0, 0, NULL, 0,
     "Refuse clients that belong to no tenant (when [[tenants]] are configured)."},

    {"tenants", "id", CFG_KEY_STRING, F_TENANT(id), NULL, 0, 0, NULL, REQ, "Tenant name, unique."},
    {"tenants", "max_connections", CFG_KEY_INT, F_TENANT(max_connections), "0", 0, 1000000, NULL, 0,
     "Client connections of the tenant, and its server connections; 0 = no cap."},
    {"tenants", "rate_limit", CFG_KEY_INT, F_TENANT(rate_limit), "0", 0, 10000000, NULL, 0,
     "Queries per second for the whole tenant; 0 = no limit."},
    {"tenants", "databases", CFG_KEY_STRLIST, F_TENANT_LIST(databases, CFG_NAME_MAX), NULL, 0, 1000,
     NULL, 0,
     "Databases the tenant's clients may use (map_by = \"database\" also maps by them); none "
     "= any."},
    {"tenants", "users", CFG_KEY_STRLIST, F_TENANT_LIST(users, CFG_NAME_MAX), NULL, 0, 100000, NULL,
     0, "Users of the tenant, for map_by = \"user\"."},
    {"tenants", "schema_prefix", CFG_KEY_STRING, F_TENANT(schema_prefix), "", 0, 0, NULL, 0,
     "Unqualified table names in the tenant's statements are qualified with this schema "
     "(transaction/statement pooling; docs/rewriting.md)."},

    {"rewrite_rules", "name", CFG_KEY_STRING, F_RULE(name), "", 0, 0, NULL, 0, "A label for logs."},
    {"rewrite_rules", "match", CFG_KEY_STRING, F_RULE(match), NULL, 0, 0, NULL, REQ,
     "A statement; incoming statements of the same shape (constants aside) are rewritten."},
    {"rewrite_rules", "replace", CFG_KEY_STRING, F_RULE(replace), NULL, 0, 0, NULL, REQ,
     "What they become; $n beyond match's own parameters take match's constants in order."},

    {"plugins", "name", CFG_KEY_STRING, F_PLUGIN_DOC(CFG_NAME_MAX), NULL, 0, 0, NULL, REQ,
     "Unique; names the plugin in logs, metrics and `helioctl plugin`. Letters, digits, `_`, "
     "`-` and `.`."},
    {"plugins", "path", CFG_KEY_STRING, F_PLUGIN_DOC(CFG_PATH_MAX), NULL, 0, 0, NULL, REQ | PATH,
     "The plugin's .wasm module."},
    {"plugins", "on_failure", CFG_KEY_ENUM, F_PLUGIN_DOC(sizeof(int)), "continue", 0, 0,
     plugin_failures, 0,
     "What a trap, a timeout or an exhausted instruction budget does to the query or login: "
     "`continue` lets it go on, `deny` refuses it."},
    {"plugins", "timeout_ms", CFG_KEY_INT, F_PLUGIN_DOC(sizeof(int)), "100", 1, 100, NULL, 0,
     "Wall-clock limit of one hook call."},
    {"plugins", "fuel", CFG_KEY_INT, F_PLUGIN_DOC(sizeof(long long)), "5000000", 1000, 4000000000LL,
     NULL, 0,
     "Instruction budget of one hook call (WASM instructions). The default, 5 million, is "
     "25-50 ms of interpretation (100-200 million instructions a second): a runaway hook is "
     "cut by the budget, deterministically, before the 100 ms clock; the samples use 300 to "
     "3,300 per call."},
    {"plugins", "memory_mb", CFG_KEY_INT, F_PLUGIN_DOC(sizeof(int)), "16", 1, 1024, NULL, 0,
     "Linear memory cap of each instance (one per worker); memory.grow beyond it fails."},
    {"plugins", "max_failures", CFG_KEY_INT, F_PLUGIN_DOC(sizeof(int)), "5", 0, 1000000, NULL, 0,
     "Consecutive failed calls (trap, timeout, budget) after which the plugin is disabled "
     "until it is reloaded; 0 = never."},

    {"analytics", "enabled", CFG_KEY_BOOL, F_CFG(analytics.enabled), "false", 0, 0, NULL, 0,
     "Per-fingerprint query statistics (helioctl top, /metrics) in transaction/statement "
     "pooling."},
    {"analytics", "slow_query_threshold_ms", CFG_KEY_INT, F_CFG(analytics.slow_query_threshold_ms),
     "1000", 0, 86400000, NULL, 0,
     "Statements slower than this go to the slow query log; 0 = off."},
    {"analytics", "slow_query_log", CFG_KEY_STRING, F_CFG(analytics.slow_query_log), "", 0, 0, NULL,
     PATH | RESTART,
     "Slow query log file (JSON lines); empty = <state_dir>/<config file name>.slow.jsonl "
     "when state_dir is set, else <config file>.slow.jsonl. Opened at start."},
    {"analytics", "slow_query_log_max_mb", CFG_KEY_INT, F_CFG(analytics.slow_query_log_max_mb),
     "64", 1, 65536, NULL, RESTART, "Rotate the slow query log at this size (keeps 3 old files)."},
    {"analytics", "max_fingerprints", CFG_KEY_INT, F_CFG(analytics.max_fingerprints), "2000", 10,
     1000000, NULL, 0,
     "Distinct statements tracked per worker; the least recently seen are dropped."},
    {"analytics", "metrics_top", CFG_KEY_INT, F_CFG(analytics.metrics_top), "20", 0, 1000, NULL, 0,
     "Fingerprints exported in /metrics, by total time."},

    {"auth", "method", CFG_KEY_ENUM, F_CFG(auth.method), "scram-sha-256", 0, 0, auth_methods, 0,
     "How clients prove who they are to the proxy."},
    {"auth", "users_file", CFG_KEY_STRING, F_CFG(auth.users_file), "", 0, 0, NULL, PATH,
     "PgBouncer userlist.txt: lines of \"user\" \"password\"; empty = none."},
    {"auth", "auth_user", CFG_KEY_STRING, F_CFG(auth.auth_user), "", 0, 0, NULL, 0,
     "Known user whose connection runs auth_query for users not listed; empty = none."},
    {"auth", "auth_query", CFG_KEY_STRING, F_CFG(auth.auth_query),
     "SELECT usename, passwd FROM pg_shadow WHERE usename = $1", 0, 0, NULL, 0,
     "Fetches an unlisted user's name and password hash; $1 is the user name."},
    {"auth", "auth_query_cache_secs", CFG_KEY_INT, F_CFG(auth.auth_query_cache_secs), "5", 0, 3600,
     NULL, 0,
     "auth_query answers (found or not) are reused for this long per database and user, so "
     "a burst of logins does not open a server session each; a password changed in "
     "PostgreSQL counts after at most this long; 0 = ask every time."},
    {"auth", "auth_query_max_running", CFG_KEY_INT, F_CFG(auth.auth_query_max_running), "4", 1,
     1000, NULL, 0,
     "auth_query lookups (each a server session) running at once per worker thread; further "
     "logins that need one wait, oldest first, within client_login_timeout_secs."},
    {"auth", "scram_mock_secret", CFG_KEY_STRING, F_CFG(auth.scram_mock_secret), "", 0, 0, NULL,
     SECRET,
     "Key from which the SCRAM salts of unknown users and of users with a plaintext password "
     "are derived (stable per user name, as PostgreSQL's mock salt); set it so that these "
     "salts stay the same across restarts; empty = a random key at each start."},
    /* issue 18, HBA rules and failed-login limit (h9) */
    {"auth", "hba_file", CFG_KEY_STRING, F_CFG(auth.hba_file), "", 0, 0, NULL, PATH,
     "pg_hba.conf-style rules (local, host, hostssl, hostnossl; methods trust, reject, md5, "
     "scram-sha-256, password, cert, ldap, jwt): the first line matching a client's "
     "connection type, database, user and address decides its method; no match is refused "
     "(28000). Re-read on reload; errors name the file and line. Set it or [[auth.rules]], not "
     "both; with neither, auth.method applies to every client. See docs/hba.md."},
    {"auth", "max_failures_per_minute", CFG_KEY_INT, F_CFG(auth.max_failures_per_minute), "0", 0,
     1000000, NULL, 0,
     "Failed logins allowed from one source address in a minute; once reached, further logins "
     "from that address are refused with 53300 until the minute is over, while other addresses "
     "log in as usual; 0 = no limit."},

    {"auth.rules", "type", CFG_KEY_STRING, F_HBA(type), NULL, 0, 0, NULL, REQ,
     "local, host, hostssl or hostnossl, as the first field of a pg_hba.conf line."},
    {"auth.rules", "database", CFG_KEY_STRING, F_HBA(database), "all", 0, 0, NULL, 0,
     "Databases: all, or a comma list of names (\"quoted\" for odd characters)."},
    {"auth.rules", "user", CFG_KEY_STRING, F_HBA(user), "all", 0, 0, NULL, 0,
     "Users: all, or a comma list of names."},
    {"auth.rules", "address", CFG_KEY_STRING, F_HBA(address), "", 0, 0, NULL, 0,
     "Client address as a CIDR (127.0.0.1/32, ::1/128) or all; empty for local."},
    {"auth.rules", "method", CFG_KEY_STRING, F_HBA(method), NULL, 0, 0, NULL, REQ,
     "trust, reject, md5, scram-sha-256, password, cert, ldap or jwt."},
    {"auth.rules", "options", CFG_KEY_STRING, F_HBA(options), "", 0, 0, NULL, SECRET,
     "The method's options as name=value words (ldapserver=... ldapbasedn=...), as after the "
     "method in pg_hba.conf."},

    {"auth.users", "name", CFG_KEY_STRING, F_USER(name), NULL, 0, 0, NULL, REQ,
     "User name, unique among [[auth.users]]."},
    {"auth.users", "password", CFG_KEY_STRING, F_USER(password), "", 0, 0, NULL, SECRET,
     "Plaintext, md5<32 hex> or SCRAM-SHA-256$... secret, as in userlist.txt; "
     "`heliosproxy --hash-password` prints a SCRAM secret (docs/auth-secrets.md)."},
    {"auth.users", "server_password", CFG_KEY_STRING, F_USER(server_password), "", 0, 0, NULL,
     SECRET, "Plaintext password for the servers when password is a hash; empty = none."},

    {"xdp", "enabled", CFG_KEY_BOOL, F_CFG(xdp.enabled), "false", 0, 0, NULL, 0,
     "Attach the XDP admission filter to `interface` (the control plane does; needs root or "
     "CAP_BPF and CAP_NET_ADMIN)."},
    {"xdp", "interface", CFG_KEY_STRING, F_CFG(xdp.interface), "", 0, 0, NULL, 0,
     "Network interface the filter is attached to; required when enabled."},
    {"xdp", "mode", CFG_KEY_ENUM, F_CFG(xdp.mode), "generic", 0, 0, xdp_modes, 0,
     "generic (any driver, after the kernel allocates the packet), native (in the driver, "
     "fastest, not every driver has it) or auto (native, else generic)."},
    {"xdp", "ports", CFG_KEY_STRING, F_CFG(xdp.ports), "", 0, 0, NULL, 0,
     "Comma-separated TCP destination ports the filter applies to (\"5433, 6432\"); empty = "
     "every TCP port. Other traffic passes."},
    {"xdp", "syn_rate_per_sec", CFG_KEY_INT, F_CFG(xdp.syn_rate_per_sec), "0", 0, 10000000, NULL, 0,
     "New connections (SYN) accepted per second from one source address; 0 = no limit."},
    {"xdp", "syn_burst", CFG_KEY_INT, F_CFG(xdp.syn_burst), "0", 0, 10000000, NULL, 0,
     "SYNs a source may send at once before syn_rate_per_sec applies; 0 = syn_rate_per_sec."},
    {"xdp", "deny", CFG_KEY_STRING, F_CFG(xdp.deny), "", 0, 0, NULL, 0,
     "Comma-separated source prefixes dropped at the interface (\"192.0.2.0/24, 2001:db8::/32\"); "
     "helioctl xdp deny add/del changes the live list."},
    {"xdp", "pin_dir", CFG_KEY_STRING, F_CFG(xdp.pin_dir), "", 0, 0, NULL, PATH | RESTART,
     "Folder on a BPF file system (/sys/fs/bpf/heliosproxy) where the deny list is pinned "
     "(file `deny`, created if missing): the prefixes added with helioctl xdp deny add and "
     "every prefix's drop count survive a restart of the process that loads the filter "
     "(a rolling update); prefixes that came from xdp.deny follow the config at each start. "
     "Empty = the list lives and dies with the process."},

    {"tls", "client_mode", CFG_KEY_ENUM, F_CFG(tls.client_mode), "disable", 0, 0, client_tls, 0,
     "TLS from clients: refuse it, accept it when asked, or refuse clients without it. "
     "verify-ca also requires a client certificate that chains to client_ca_file (and is not "
     "revoked in client_crl_file); verify-full also requires that the certificate's CN (or a "
     "DNS/email SAN) equal the login user, or map to it through client_map, as PostgreSQL's "
     "clientcert=verify-full. A missing, unknown or revoked certificate fails the TLS "
     "handshake; a name that does not match gets 28000 after the startup message."},
    {"tls", "cert_file", CFG_KEY_STRING, F_CFG(tls.cert_file), "", 0, 0, NULL, PATH,
     "PEM certificate chain shown to clients; needed unless client_mode = disable."},
    {"tls", "key_file", CFG_KEY_STRING, F_CFG(tls.key_file), "", 0, 0, NULL, PATH,
     "PEM private key of cert_file; needed unless client_mode = disable."},
    {"tls", "ca_file", CFG_KEY_STRING, F_CFG(tls.ca_file), "", 0, 0, NULL, PATH,
     "PEM CA bundle that server certificates must chain to; needed for verify-full."},
    {"tls", "server_mode", CFG_KEY_ENUM, F_CFG(tls.server_mode), "prefer", 0, 0, server_tls, 0,
     "TLS towards servers: off, used if offered, required, or required with verified "
     "certificate and host name."},
    {"tls", "client_ca_file", CFG_KEY_STRING, F_CFG(tls.client_ca_file), "", 0, 0, NULL, PATH,
     "PEM CA bundle that client certificates must chain to; needed for client_mode = "
     "verify-ca or verify-full."},
    {"tls", "client_crl_file", CFG_KEY_STRING, F_CFG(tls.client_crl_file), "", 0, 0, NULL, PATH,
     "PEM certificate revocation list(s) of client_ca_file's CAs; a revoked client certificate "
     "fails the handshake. Empty = no revocation check. Re-read on reload."},
    {"tls", "ident_file", CFG_KEY_STRING, F_CFG(tls.ident_file), "", 0, 0, NULL, PATH,
     "pg_ident.conf-style map file: lines `MAPNAME SYSTEM-USERNAME PG-USERNAME`, the system "
     "name a literal or `/regex` (POSIX extended; \\1 in PG-USERNAME takes its first group). "
     "Used by client_map and by the map= option of cert rules. Re-read on reload."},
    {"tls", "client_map", CFG_KEY_STRING, F_CFG(tls.client_map), "", 0, 0, NULL, 0,
     "Map name in ident_file that client_mode = verify-full uses to match certificate names "
     "to login users; empty = the CN (or a SAN) must equal the login user."},
    {"tls", "server_cert_file", CFG_KEY_STRING, F_CFG(tls.server_cert_file), "", 0, 0, NULL, PATH,
     "PEM certificate chain the proxy shows to servers that ask for a client certificate "
     "(pg_hba `cert` or clientcert=); needs server_key_file and server_mode other than "
     "disable."},
    {"tls", "server_key_file", CFG_KEY_STRING, F_CFG(tls.server_key_file), "", 0, 0, NULL, PATH,
     "PEM private key of server_cert_file."},
};

static const struct cfg_section sections[] = {
    {"", false, "Top level", "Keys written before any table."},
    {"pool_mode", false, "[pool_mode]",
     "Server connection pooling. There is one pool per (node, database, user); "
     "min_idle must not exceed max_pool_size."},
    {"nodes", true, "[[nodes]]",
     "PostgreSQL servers, one table each; at least one is required and names must be "
     "unique. The first primary takes writes."},
    {"databases", true, "[[databases]]",
     "Zero or more database entries, as PgBouncer's [databases]: a client's database name "
     "picks the entry of that name, else the \"*\" entry. With no entries every database "
     "passes through; with entries but no \"*\", another name gets 3D000 \"no such "
     "database\". An entry's pools are per (node, entry, server user). Pool mode precedence: "
     "the database entry's pool_mode, then the user's [[users]] pool_mode, then "
     "pool_mode.mode."},
    {"users", true, "[[users]]",
     "Zero or more per-user pool settings, as PgBouncer's [users]; credentials stay in "
     "[[auth.users]] or users_file."},
    {"routing", false, "[routing]",
     "Where statements go and how the control plane watches the nodes. check_user, if set, "
     "must be a user from [[auth.users]] or users_file with a plaintext password or a "
     "server_password (an md5 or SCRAM secret cannot log in to a server). heartbeat_table is "
     "`table` or `schema.table`, each of lower-case letters, digits and `_`, not starting "
     "with a digit, at most 63 bytes."},
    {"schema_routes", true, "[[schema_routes]]",
     "Zero or more: statements that touch one of `tables` go to `target`. Table names are "
     "`table` or `schema.table` of letters, digits, `_` and `$` (at most 63 bytes each). "
     "target is `primary`, `replica` (or `standby`, the same) or the name of a [[nodes]] "
     "entry; the keywords win over a node of the same name."},
    {"circuit_breaker", false, "[circuit_breaker]",
     "Per node: after failure_threshold consecutive failures the node's breaker opens and "
     "it gets no new traffic; after recovery_timeout_secs one request probes it. Any success "
     "of the node (a login, a ReadyForQuery, the probe's included) closes it; see "
     "docs/routing.md."},
    {"cache", false, "[cache]",
     "Query result cache; see docs/cache.md. Only transaction and statement pooling use it. "
     "An entry is served at most default_ttl_secs, or its table's ttl_secs from "
     "[[cache.tables]]."},
    {"cache.tables", true, "[[cache.tables]]",
     "Zero or more: settings for statements that read one table. `name` is `table` or "
     "`schema.table` of letters, digits, `_` and `$` (at most 63 bytes each), unique "
     "case-insensitively. A `schema.table` entry also applies to an unqualified use of the "
     "same name and `table` to it in any schema; the entry written the way the statement "
     "names the table wins."},
    {"rate_limit", false, "[rate_limit]",
     "Token buckets for queries in transaction and statement pooling; see docs/tenants.md. A "
     "query takes a token from each bucket that applies: its user's (or the global one), its "
     "database's and its tenant's."},
    {"xdp", false, "[xdp]",
     "XDP admission filter loaded by the control plane: a deny list of source prefixes and a "
     "per-source SYN rate limit for the proxy's ports; see docs/kernel-fastpath.md."},
    {"tenancy", false, "[tenancy]", "How clients are mapped to [[tenants]]; docs/tenants.md."},
    {"tenants", true, "[[tenants]]",
     "Zero or more tenants, each with its own pools, connection cap, query rate and databases; "
     "ids are unique."},
    {"rewrite_rules", true, "[[rewrite_rules]]",
     "Zero or more statement rewrites matched by shape (docs/rewriting.md)."},
    {"plugins", true, "[[plugins]]",
     "Zero or more WASM plugins (docs/plugins.md), run in the order written. `config` is an "
     "inline table (or a table `[plugins.config]` under the entry) handed to the plugin as "
     "JSON when each instance starts; `{}` when absent. With a control plane, helios-cp "
     "reads the modules and pushes them to its data planes; a data plane without one runs "
     "its own entries and re-reads them on reload. `heliosproxy --check-config` also "
     "compiles each module and says why one does not load."},
    {"analytics", false, "[analytics]",
     "Query analytics: statistics per statement fingerprint and a log of slow statements. "
     "slow_query_log, like every path, is relative to the config file's folder."},
    {"auth", false, "[auth]",
     "Client authentication. auth_user, if set, must be a user from [[auth.users]] or "
     "users_file. A malformed users_file line is an error naming the file and line; "
     "`;` and `#` start comment lines, and `\"\"` inside quotes is a literal quote."},
    {"auth.rules", true, "[[auth.rules]]",
     "HBA rules in the config instead of auth.hba_file: each entry is one pg_hba.conf line, "
     "tried in order; the first that matches decides."},
    {"auth.users", true, "[[auth.users]]",
     "Users the proxy knows besides those in users_file. When a name is in both, this "
     "entry wins."},
    {"tls", false, "[tls]",
     "TLS on both sides. With client_mode other than disable, cert_file and key_file must "
     "be readable files; server_mode = verify-full needs ca_file."},
};

#define N_KEYS     (sizeof(keys) / sizeof(keys[0]))
#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

const struct cfg_key *cfg_key_table(size_t *n)
{
	*n = N_KEYS;
	return keys;
}

const struct cfg_section *cfg_sections(size_t *n)
{
	*n = N_SECTIONS;
	return sections;
}

const struct cfg_section *cfg_section_find(const char *name)
{
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	return NULL;
}

const struct cfg_key *cfg_key_in(const char *section, const char *name, size_t name_len)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &keys[i];
		if (strcmp(k->section, section) == 0 && strlen(k->name) == name_len &&
		    memcmp(k->name, name, name_len) == 0)
			return k;
	}
	return NULL;
}

const struct cfg_key *cfg_key_find(const char *dotted_name)
{
	/* The key name never contains a dot, so the last dot ends the section. */
	const char *dot = strrchr(dotted_name, '.');
	char section[32];

	if (!dot)
		return cfg_key_in("", dotted_name, strlen(dotted_name));
	if ((size_t)(dot - dotted_name) >= sizeof(section))
		return NULL;
	memcpy(section, dotted_name, (size_t)(dot - dotted_name));
	section[dot - dotted_name] = '\0';
	return cfg_key_in(section, dot + 1, strlen(dot + 1));
}

/* PgBouncer 1.25's settings people set, and where each lives here. */
static const struct {
	const char *pgb, *helios, *note;
} pgbouncer_keys[] = {
    {"listen_addr", "listen_address", "host:port together with listen_port"},
    {"listen_port", "listen_address", "host:port together with listen_addr"},
    {"unix_socket_dir", "unix_socket_dir", ""},
    {"auth_type", "auth.method", "auth_type = hba maps onto auth.hba_file"},
    {"auth_file", "auth.users_file", ""},
    {"auth_hba_file", "auth.hba_file", ""},
    {"auth_query", "auth.auth_query", ""},
    {"auth_user", "auth.auth_user", ""},
    {"pool_mode", "pool_mode.mode", ""},
    {"default_pool_size", "pool_mode.max_pool_size", ""},
    {"min_pool_size", "pool_mode.min_idle", ""},
    {"reserve_pool_size", "pool_mode.reserve_pool_size", ""},
    {"reserve_pool_timeout", "pool_mode.reserve_pool_timeout_ms", "in milliseconds"},
    {"max_client_conn", "max_client_conn", ""},
    {"max_db_connections", "pool_mode.max_db_connections", ""},
    {"max_user_connections", "pool_mode.max_user_connections", ""},
    {"server_reset_query", "pool_mode.reset_query", ""},
    {"server_reset_query_always", "pool_mode.reset_query",
     "transaction pooling keeps session state apart by itself"},
    {"server_check_query", "", "the control plane checks every node itself"},
    {"server_check_delay", "health_check_interval_secs", ""},
    {"server_lifetime", "pool_mode.server_lifetime_secs", "in seconds"},
    {"server_idle_timeout", "pool_mode.idle_timeout_secs", "in seconds"},
    {"server_connect_timeout", "pool_mode.server_connect_timeout_secs", "in seconds"},
    {"server_login_retry", "circuit_breaker.recovery_timeout_secs", ""},
    {"query_timeout", "pool_mode.query_timeout_secs", "in seconds"},
    {"query_wait_timeout", "pool_mode.query_wait_timeout_secs", "in seconds"},
    {"client_idle_timeout", "client_idle_timeout_secs", "in seconds"},
    {"idle_transaction_timeout", "pool_mode.idle_transaction_timeout_secs", "in seconds"},
    {"client_login_timeout", "client_login_timeout_secs", "in seconds"},
    {"client_tls_sslmode", "tls.client_mode", ""},
    {"client_tls_cert_file", "tls.cert_file", ""},
    {"client_tls_key_file", "tls.key_file", ""},
    {"client_tls_ca_file", "tls.client_ca_file", ""},
    {"server_tls_sslmode", "tls.server_mode", ""},
    {"server_tls_ca_file", "tls.ca_file", ""},
    {"server_tls_cert_file", "tls.server_cert_file", ""},
    {"server_tls_key_file", "tls.server_key_file", ""},
    {"admin_users", "admin_users", ""},
    {"stats_users", "stats_users", ""},
    {"max_prepared_statements", "pool_mode.max_prepared_statements",
     "prepared statements are always tracked in transaction pooling"},
    {"log_connections", "log_connections", ""},
    {"log_disconnections", "log_disconnections", ""},
    {"stats_period", "stats_period_secs", "in seconds"},
    {"syslog", "syslog", ""},
    {"syslog_ident", "syslog_ident", ""},
    {"syslog_facility", "syslog_facility", ""},
    {"logfile", "", "the log goes to stderr (and syslog = true)"},
    {"pidfile", "", "run it under systemd, or read the control socket"},
    {"ignore_startup_parameters", "", "unknown startup parameters are passed to the server"},
    {"track_extra_parameters", "", "every ParameterStatus is tracked"},
    {"application_name_add_host", "", ""},
    {"so_reuseport", "", "use workers for more threads in one process"},
    {"tcp_keepalive", "", "the kernel's defaults apply"},
    {"tcp_keepidle", "", "the kernel's defaults apply"},
    {"tcp_keepintvl", "", "the kernel's defaults apply"},
    {"tcp_keepcnt", "", "the kernel's defaults apply"},
    {"pool_size", "databases.pool_size", "in a [[databases]] entry"},
    {"reserve_pool", "databases.reserve_pool", "in a [[databases]] entry"},
    {"dbname", "databases.dbname", "in a [[databases]] entry"},
};

const char *cfg_pgbouncer_key(const char *pgb, const char **note)
{
	for (size_t i = 0; i < sizeof(pgbouncer_keys) / sizeof(pgbouncer_keys[0]); i++)
		if (strcmp(pgbouncer_keys[i].pgb, pgb) == 0) {
			if (note)
				*note = pgbouncer_keys[i].note;
			return pgbouncer_keys[i].helios;
		}
	if (note)
		*note = "";
	return NULL;
}

/* Levenshtein distance, capped: names longer than 63 bytes get SIZE_MAX. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

void cfg_key_name(const struct cfg_key *k, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s", k->section, k->section[0] ? "." : "", k->name);
}

/* Dotted names, built once: callers keep pointers to them (names[] of
 * cfg_keep_restart_keys), so they must outlive any buffer of theirs. */
static char dotted[N_KEYS][CFG_DOTTED_MAX];
static pthread_once_t dotted_once = PTHREAD_ONCE_INIT;

static void dotted_init(void)
{
	for (size_t i = 0; i < N_KEYS; i++)
		cfg_key_name(&keys[i], dotted[i], sizeof(dotted[i]));
}

const char *cfg_key_dotted(const struct cfg_key *k)
{
	pthread_once(&dotted_once, dotted_init);
	return dotted[k - keys];
}

const char *cfg_key_suggest_dotted(const char *name)
{
	size_t best = 3, d;
	const char *found = NULL;

	pthread_once(&dotted_once, dotted_init);
	for (size_t i = 0; i < N_KEYS; i++)
		if ((d = edit_distance(name, dotted[i])) < best)
			best = d, found = dotted[i];
	return found;
}

const char *cfg_key_suggest(const char *section, const char *name)
{
	size_t best = 3, d;
	const char *found = NULL;

	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    (d = edit_distance(name, keys[i].name)) < best)
			best = d, found = keys[i].name;
	/* Subsections too: "[pool-mode]" at the top, "[[auth.user]]" in auth. */
	for (size_t i = 0; i < N_SECTIONS; i++) {
		const char *dot = strrchr(sections[i].name, '.');
		const char *leaf = dot ? dot + 1 : sections[i].name;
		size_t plen = dot ? (size_t)(dot - sections[i].name) : 0;
		if (leaf[0] && strlen(section) == plen &&
		    strncmp(sections[i].name, section, plen) == 0 &&
		    (d = edit_distance(name, leaf)) < best)
			best = d, found = leaf;
	}
	return found;
}

const char *cfg_array_elements(const struct cfg *c, const char *section, bool file_users, size_t *n,
                               size_t *elem)
{
	*n = 0;
	*elem = 0;
	if (strcmp(section, "nodes") == 0) {
		*n = c->n_nodes;
		*elem = sizeof(*c->nodes);
		return (const char *)c->nodes;
	}
	if (strcmp(section, "schema_routes") == 0) {
		*n = c->n_schema_routes;
		*elem = sizeof(*c->schema_routes);
		return (const char *)c->schema_routes;
	}
	if (strcmp(section, "tenants") == 0) {
		*n = c->n_tenants;
		*elem = sizeof(*c->tenants);
		return (const char *)c->tenants;
	}
	if (strcmp(section, "databases") == 0) {
		*n = c->n_databases;
		*elem = sizeof(*c->databases);
		return (const char *)c->databases;
	}
	if (strcmp(section, "users") == 0) {
		*n = c->n_pool_users;
		*elem = sizeof(*c->pool_users);
		return (const char *)c->pool_users;
	}
	if (strcmp(section, "rewrite_rules") == 0) {
		*n = c->n_rewrite_rules;
		*elem = sizeof(*c->rewrite_rules);
		return (const char *)c->rewrite_rules;
	}
	if (strcmp(section, "cache.tables") == 0) {
		*n = c->cache.n_tables;
		*elem = sizeof(*c->cache.tables);
		return (const char *)c->cache.tables;
	}
	if (strcmp(section, "auth.rules") == 0) {
		*n = c->auth.n_rules;
		*elem = sizeof(*c->auth.rules);
		return (const char *)c->auth.rules;
	}
	if (strcmp(section, "auth.users") == 0) {
		*n = file_users ? c->auth.n_users : c->auth.n_config_users;
		*elem = sizeof(*c->auth.users);
		return (const char *)c->auth.users;
	}
	return NULL;
}

char **cfg_strlist_get(const struct cfg_key *k, const char *base, size_t *n)
{
	char **items;

	memcpy(&items, base + k->offset, sizeof(items));
	memcpy(n, base + k->offset + sizeof(items), sizeof(*n));
	return items;
}

void cfg_strlist_put(const struct cfg_key *k, char *base, char **items, size_t n)
{
	memcpy(base + k->offset, &items, sizeof(items));
	memcpy(base + k->offset + sizeof(items), &n, sizeof(n));
}

void cfg_strlist_free(const struct cfg_key *k, char *base)
{
	size_t n;
	char **items = cfg_strlist_get(k, base, &n);

	for (size_t i = 0; items && i < n; i++)
		free(items[i]);
	free(items);
	cfg_strlist_put(k, base, NULL, 0);
}

int cfg_enum_index(const struct cfg_key *k, const char *s, size_t len)
{
	for (int i = 0; k->values[i]; i++)
		if (strlen(k->values[i]) == len && memcmp(k->values[i], s, len) == 0)
			return i;
	return -1;
}

void cfg_buf_init(struct cfg_buf *b, char *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->full = cap == 0;
	b->env_escape = false;
	if (cap)
		p[0] = '\0';
}

void cfg_buf_printf(struct cfg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (b->full)
		return;
	va_start(ap, fmt);
	w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= b->cap - b->len) {
		b->full = true;
		b->len = b->cap - 1;
		return;
	}
	b->len += (size_t)w;
}

void cfg_buf_quote(struct cfg_buf *b, const char *s, size_t len)
{
	cfg_buf_printf(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			cfg_buf_printf(b, "\\%c", ch);
		else if (ch == '\n')
			cfg_buf_printf(b, "\\n");
		else if (ch == '\t')
			cfg_buf_printf(b, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			cfg_buf_printf(b, "\\u%04X", ch);
		else if (ch == '$' && b->env_escape && i + 1 < len && s[i + 1] == '{')
			cfg_buf_printf(b, "$$");
		else
			cfg_buf_printf(b, "%c", ch);
	}
	cfg_buf_printf(b, "\"");
}

void cfg_buf_value(struct cfg_buf *b, const struct cfg_key *k, const char *base, bool mask)
{
	const char *field = base + k->offset;
	char **items;
	size_t n;
	int v;

	switch (k->type) {
	case CFG_KEY_STRING:
		if (mask && (k->flags & CFG_KEY_SECRET) && field[0])
			cfg_buf_printf(b, "\"********\"");
		else
			cfg_buf_quote(b, field, strlen(field));
		break;
	case CFG_KEY_INT:
		memcpy(&v, field, sizeof(v));
		cfg_buf_printf(b, "%d", v);
		break;
	case CFG_KEY_BOOL:
		cfg_buf_printf(b, "%s", *(const bool *)field ? "true" : "false");
		break;
	case CFG_KEY_ENUM:
		if (k->flags & CFG_KEY_TEXT) {
			cfg_buf_quote(b, field, strlen(field));
			break;
		}
		memcpy(&v, field, sizeof(v));
		cfg_buf_quote(b, k->values[v], strlen(k->values[v]));
		break;
	case CFG_KEY_STRLIST:
		items = cfg_strlist_get(k, base, &n);
		cfg_buf_printf(b, "[");
		for (size_t i = 0; i < n; i++) {
			cfg_buf_printf(b, i ? ", " : "");
			cfg_buf_quote(b, items[i], strlen(items[i]));
		}
		cfg_buf_printf(b, "]");
		break;
	}
}

int cfg_format_value(const struct cfg *c, const struct cfg_key *k, char *buf, size_t cap)
{
	struct cfg_buf b;
	const char *arr = NULL;
	size_t n = 0, elem = 0;

	if (!c || !k || !buf || cap == 0)
		return -EINVAL;
	cfg_buf_init(&b, buf, cap);
	if (!cfg_section_find(k->section)->is_array) {
		cfg_buf_value(&b, k, (const char *)c, true);
		return b.full ? -ENOSPC : 0;
	}
	/* Only [[auth.users]]: users_file entries are not values of these keys. */
	arr = cfg_array_elements(c, k->section, false, &n, &elem);
	cfg_buf_printf(&b, "[");
	for (size_t i = 0; i < n; i++) {
		cfg_buf_printf(&b, i ? ", " : "");
		cfg_buf_value(&b, k, arr + i * elem, true);
	}
	cfg_buf_printf(&b, "]");
	return b.full ? -ENOSPC : 0;
}

/* Writes s into a Markdown table cell: a '|' would end the cell, and a '<'
 * would start an HTML tag that hides placeholders like "<listen port>". */
static void cell(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '|' || *s == '<')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static void doc_row(FILE *out, const struct cfg_key *k)
{
	static const char *const type_names[] = {"string", "integer", "boolean", "enum",
	                                         "array of strings"};

	fprintf(out, "| `%s` | %s | ", k->name, type_names[k->type]);
	if (!k->def)
		fputs("required", out);
	else if (k->type == CFG_KEY_STRING || k->type == CFG_KEY_ENUM)
		fprintf(out, "`\"%s\"`", k->def);
	else
		fprintf(out, "`%s`", k->def);
	fputs(" | ", out);
	if (k->type == CFG_KEY_INT) {
		fprintf(out, "%lld..%lld", k->min, k->max);
	} else if (k->type == CFG_KEY_ENUM) {
		for (size_t i = 0; k->values[i]; i++)
			fprintf(out, "%s`%s`", i ? ", " : "", k->values[i]);
	} else if (k->type == CFG_KEY_STRLIST) {
		fprintf(out, "%lld..%lld strings, each up to %zu bytes", k->min, k->max,
		        k->size - 1);
	} else if (k->type == CFG_KEY_STRING) {
		fprintf(out, "up to %zu bytes", k->size - 1);
		if (k->flags & CFG_KEY_PATH)
			fputs("; path, relative to the config file's folder", out);
	}
	fprintf(out, " | %s | ", (k->flags & CFG_KEY_RESTART) ? "restart" : "yes");
	cell(out, k->doc);
	fputs(" |\n", out);
}

void cfg_write_docs(FILE *out)
{
	fputs("<!-- Generated from common/cfg_keys.c by cfg_write_docs(); do not edit. Regenerate "
	      "from the repo root: make docs -->\n",
	      out);
	fputs("# HeliosProxy configuration\n\n"
	      "`heliosproxy` reads one TOML file. Every key below is optional unless its default "
	      "says *required*; unknown keys and tables are errors, as are values of the wrong "
	      "type, out of range, or too long for their field. Errors name the file, line and "
	      "key, e.g. `proxy.toml:7: key 'pool_mode.max_pool_size': 0 is out of range "
	      "(1..10000)`.\n\n"
	      "The *live* column says whether a change takes effect on reload (`yes`) or needs a "
	      "restart. `helioctl config set KEY VALUE` changes a key at run time and keeps the "
	      "change in `overrides_file`, whose values take precedence over this file; keys of "
	      "the array tables `[[nodes]]`, `[[schema_routes]]`, `[[cache.tables]]` and "
	      "`[[auth.users]]` cannot be set that way.\n\n"
	      "Any string value may name environment variables: `${NAME}` is replaced by the "
	      "value of NAME (so passwords and tokens can come from a Kubernetes Secret: "
	      "`password = \"${HELIOS_ALICE_PASSWORD}\"`), `$${` stands for a literal `${`, any "
	      "other `$` is kept. An unset variable is an error naming file, line and key. "
	      "Values set with `helioctl config set` are expanded the same way, in the "
	      "environment of the process that holds the configuration (heliosproxy, or "
	      "helios-cp). `heliosproxy --listen ADDR --admin-address ADDR` and `helios-cp "
	      "--admin-address ADDR` override `listen_address`, `admin_address` and "
	      "`control_admin_address` over this file and the overrides.\n\n"
	      "A minimal configuration:\n\n"
	      "```toml\n"
	      "listen_address = \"127.0.0.1:5433\"\n"
	      "admin_address = \"127.0.0.1:8432\"\n\n"
	      "[pool_mode]\n"
	      "mode = \"transaction\"\n"
	      "max_pool_size = 100\n\n"
	      "[[nodes]]\n"
	      "host = \"127.0.0.1\"\n"
	      "port = 5432\n"
	      "role = \"primary\"\n"
	      "```\n",
	      out);
	for (size_t s = 0; s < N_SECTIONS; s++) {
		fprintf(out, "\n## %s\n\n%s\n\n", sections[s].title, sections[s].doc);
		fputs("| key | type | default | range / values | live | description |\n"
		      "|---|---|---|---|---|---|\n",
		      out);
		for (size_t i = 0; i < N_KEYS; i++)
			if (strcmp(keys[i].section, sections[s].name) == 0)
				doc_row(out, &keys[i]);
	}
}

/* ---- heliosproxy.toml(5): the same table as roff (--print-config-man) ---- */

/* Writes s as roff text: `code` in bold, backslashes escaped, and a leading
 * '.' or '\'' kept from being read as a request. */
static void roff_text(FILE *out, const char *s)
{
	bool code = false;
	fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '`') {
			fputs(code ? "\\fR" : "\\fB", out);
			code = !code;
		} else if (*s == '\\') {
			fputs("\\e", out);
		} else if (*s == '-') {
			fputs("\\-", out);
		} else {
			fputc(*s, out);
		}
	}
	if (code)
		fputs("\\fR", out);
}

static void man_key(FILE *out, const struct cfg_key *k)
{
	static const char *const type_names[] = {"string", "integer", "boolean", "enum",
	                                         "array of strings"};

	fprintf(out, ".TP\n.B %s\n", k->name);
	fprintf(out, "(%s; ", type_names[k->type]);
	bool quoted = k->type == CFG_KEY_STRING || k->type == CFG_KEY_ENUM;
	if (!k->def) {
		fputs("required", out);
	} else {
		fputs("default \\fB", out);
		fputs(quoted ? "\"" : "", out);
		roff_text(out, k->def);
		fputs(quoted ? "\"\\fR" : "\\fR", out);
	}
	if (k->type == CFG_KEY_INT) {
		fprintf(out, "; %lld..%lld", k->min, k->max);
	} else if (k->type == CFG_KEY_ENUM) {
		fputs("; one of", out);
		for (size_t i = 0; k->values[i]; i++)
			fprintf(out, "%s \\fB%s\\fR", i ? "," : "", k->values[i]);
	} else if (k->type == CFG_KEY_STRLIST) {
		fprintf(out, "; %lld..%lld strings of up to %zu bytes", k->min, k->max,
		        k->size - 1);
	} else if (k->type == CFG_KEY_STRING) {
		fprintf(out, "; up to %zu bytes", k->size - 1);
		if (k->flags & CFG_KEY_PATH)
			fputs("; a path relative to the config file's folder", out);
	}
	fprintf(out, "; %s)\n", (k->flags & CFG_KEY_RESTART) ? "needs a restart" : "live");
	roff_text(out, k->doc);
	fputc('\n', out);
}

void cfg_write_man(FILE *out, const char *version)
{
	fprintf(
	    out,
	    ".\\\" Generated from common/cfg_keys.c by cfg_write_man(); do not edit.\n"
	    ".TH HELIOSPROXY.TOML 5 \"\" \"HeliosProxy %s\" \"File Formats\"\n"
	    ".SH NAME\n"
	    "heliosproxy.toml \\- HeliosProxy configuration file\n"
	    ".SH SYNOPSIS\n"
	    ".I /etc/heliosproxy/heliosproxy.toml\n"
	    ".SH DESCRIPTION\n"
	    ".BR heliosproxy (8)\n"
	    "and\n"
	    ".BR helios\\-cp (8)\n"
	    "read one TOML file.\n"
	    "Every key below is optional unless it says \\fIrequired\\fR;\n"
	    "unknown keys and tables are errors, as are values of the wrong type,\n"
	    "out of range, or too long for their field.\n"
	    "Errors name the file, line and key.\n"
	    "Check a file with \\fBheliosproxy \\-\\-check\\-config\\fR \\fIFILE\\fR.\n"
	    ".PP\n"
	    "\\fIlive\\fR keys take effect on reload (SIGHUP, \\fBsystemctl reload\\fR);\n"
	    "the others need a restart.\n"
	    "\\fBhelioctl config set\\fR \\fIKEY VALUE\\fR changes a key at run time and keeps\n"
	    "the change in \\fBoverrides_file\\fR, whose values take precedence over this file;\n"
	    "keys of the array tables cannot be set that way.\n"
	    ".PP\n"
	    "Any string value may name environment variables: \\fB${NAME}\\fR is replaced by\n"
	    "the value of NAME, \\fB$${\\fR stands for a literal \\fB${\\fR, any other \\fB$\\fR\n"
	    "is kept.\n"
	    "An unset variable is an error naming file, line and key.\n"
	    ".SH EXAMPLE\n"
	    ".EX\n"
	    "listen_address = \"127.0.0.1:5433\"\n"
	    "admin_address = \"127.0.0.1:8432\"\n"
	    "state_dir = \"/var/lib/heliosproxy\"\n"
	    "\n"
	    "[pool_mode]\n"
	    "mode = \"transaction\"\n"
	    "max_pool_size = 100\n"
	    "\n"
	    "[[nodes]]\n"
	    "host = \"127.0.0.1\"\n"
	    "port = 5432\n"
	    "role = \"primary\"\n"
	    ".EE\n"
	    ".SH KEYS\n",
	    version);
	for (size_t s = 0; s < N_SECTIONS; s++) {
		fputs(".SS ", out);
		roff_text(out, sections[s].title);
		fputs("\n", out);
		roff_text(out, sections[s].doc);
		fputc('\n', out);
		for (size_t i = 0; i < N_KEYS; i++)
			if (strcmp(keys[i].section, sections[s].name) == 0)
				man_key(out, &keys[i]);
	}
	fputs(".SH FILES\n"
	      ".TP\n"
	      ".I /etc/heliosproxy/heliosproxy.toml\n"
	      "the configuration the systemd unit starts heliosproxy with\n"
	      ".TP\n"
	      ".I /var/lib/heliosproxy\n"
	      "\\fBstate_dir\\fR of the packaged units: control socket, overrides file,\n"
	      "slow query log\n"
	      ".SH SEE ALSO\n"
	      ".BR heliosproxy (8),\n"
	      ".BR helios\\-cp (8),\n"
	      ".BR helioctl (1)\n",
	      out);
}
