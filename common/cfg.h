/*
 * The configuration model. Every key is declared once in a table
 * (common/cfg_keys.c) with name, type, default, bounds and a one-line doc;
 * the TOML loader, validation and docs/configuration.md all use it.
 * A loaded struct cfg is immutable and shared read-only between threads.
 */
#ifndef HELIOS_CFG_H
#define HELIOS_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_NAME_MAX 64
#define CFG_HOST_MAX 256
#define CFG_PATH_MAX 512
#define CFG_SECRET_MAX 512
#define CFG_QUERY_MAX 1024

enum cfg_io_backend { CFG_IO_AUTO, CFG_IO_URING, CFG_IO_EPOLL };
enum cfg_pool_mode { CFG_POOL_SESSION, CFG_POOL_TRANSACTION, CFG_POOL_STATEMENT };
enum cfg_role { CFG_ROLE_PRIMARY, CFG_ROLE_REPLICA };
enum cfg_auth_method { CFG_AUTH_TRUST, CFG_AUTH_MD5, CFG_AUTH_SCRAM };
/* Client side TLS: disable = refuse SSLRequest; allow = accept TLS if asked;
 * require = refuse non-TLS clients (except CancelRequest). */
enum cfg_client_tls { CFG_CTLS_DISABLE, CFG_CTLS_ALLOW, CFG_CTLS_REQUIRE };
enum cfg_server_tls { CFG_STLS_DISABLE, CFG_STLS_PREFER, CFG_STLS_REQUIRE, CFG_STLS_VERIFY_FULL };

struct cfg_node {
	char name[CFG_NAME_MAX]; /* default "node<index>" */
	char host[CFG_HOST_MAX];
	int port; /* default 5432 */
	enum cfg_role role;
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
	char admin_address[CFG_HOST_MAX];  /* default "127.0.0.1:9090" */
	int workers;                       /* 0 = online CPUs */
	enum cfg_io_backend io_backend;
	char unix_socket_dir[CFG_PATH_MAX]; /* "" = no Unix socket */
	char log_level[16];                 /* error|warn|info|debug */
	int shutdown_timeout_secs;          /* SIGTERM grace period, default 30 */
	int max_client_conn;                /* default 10000 */

	struct {
		enum cfg_pool_mode mode; /* default session */
		int max_pool_size;       /* default 20, per (node, database, user), global across workers */
		int min_idle;            /* default 0 */
		int idle_timeout_secs;   /* default 600 */
		int server_lifetime_secs;    /* default 3600 */
		int query_wait_timeout_secs; /* default 120 */
		int server_connect_timeout_secs; /* default 5 */
		char reset_query[CFG_QUERY_MAX]; /* default "DISCARD ALL" */
	} pool;

	struct cfg_node *nodes;
	size_t n_nodes;

	struct {
		enum cfg_auth_method method; /* default scram-sha-256? see cfg_keys.c */
		struct cfg_user *users;
		size_t n_users;
		char users_file[CFG_PATH_MAX];
		char auth_user[CFG_NAME_MAX];
		char auth_query[CFG_QUERY_MAX];
		char admin_users[CFG_QUERY_MAX]; /* reserved for the admin console */
	} auth;

	struct {
		enum cfg_client_tls client_mode;
		char cert_file[CFG_PATH_MAX];
		char key_file[CFG_PATH_MAX];
		char ca_file[CFG_PATH_MAX]; /* CA for verify-full towards servers */
		enum cfg_server_tls server_mode;
	} tls;
};

/* Where an error was found; message names file, line and key. */
struct cfg_error {
	char msg[512];
};

/* Loads and validates a file. Returns NULL and fills *err on any problem
 * (unreadable file, TOML syntax, unknown key, wrong type, out of range,
 * bad enum value, missing [[nodes]]...). users_file is read and merged
 * into auth.users. */
struct cfg *cfg_load_file(const char *path, struct cfg_error *err);
/* Same from memory; name is used in messages in place of a file name. */
struct cfg *cfg_load_string(const char *name, const char *text, size_t len, struct cfg_error *err);
void cfg_free(struct cfg *c);

/* Finds a user (config list, then users_file entries); NULL if unknown. */
const struct cfg_user *cfg_find_user(const struct cfg *c, const char *name);
/* The node with role primary (first one), or NULL. */
const struct cfg_node *cfg_primary(const struct cfg *c);

/* Writes docs/configuration.md contents generated from the key table. */
void cfg_write_docs(FILE *out);

const char *cfg_pool_mode_str(enum cfg_pool_mode m);
const char *cfg_auth_method_str(enum cfg_auth_method m);

#endif
