/*
 * WASM plugins, the host side: a module compiled once (immutable, shared by
 * every worker), an instance of it per worker (never shared: no lock on the
 * hot path), and a hook call under limits. The runtime is WABT's
 * interpreter (package wabt: libwabt.a), bound in plugin/wasm.cc; nothing
 * else in the proxy names WABT.
 *
 * The plugin ABI (version 1, docs/plugins.md):
 *   exports  memory; helios_abi_version() -> i32 (1); helios_init() -> i32
 *            (optional; 0 = ready, else the load fails); the hooks it
 *            implements, each () -> i32: on_connection, on_query_start,
 *            on_query_complete, on_error (0 = continue, 1 = deny; the
 *            return of the last two is ignored).
 *   imports  module "helios" only (anything else: the load fails), all
 *            arguments i32, exactly these types:
 *            field(id, buf, cap) -> i32   copies field id of the call (a
 *              PLUGIN_F_* below; the config JSON at helios_init, and in
 *              any hook) into the plugin's memory; returns its full length
 *              (may be > cap), -1 when the hook has no such field
 *            deny(sqlstate, msg, msg_len)  5 bytes of SQLSTATE [0-9A-Z] and a
 *              message (on_connection, on_query_start; elsewhere it traps)
 *            rewrite(sql, len)             on_query_start: run this instead
 *            hint(key, klen, val, vlen) -> i32   on_query_start: "route" =
 *              "primary" | "replica" | a [[nodes]] name; "cache" = "skip";
 *              0 taken, -1 unknown key or value
 *            log(level, msg, len)          one log line (0 debug .. 3 error),
 *              rate-limited by the host (16 per call, 1000/s per instance)
 *   Limits: fuel 0 = no instruction budget (the clock still holds);
 *   timeout_ms 0 or over 100 = 100 (the limit, enforced here too).
 *   Memory is the plugin's own: the host only copies into and out of it,
 *   bounds-checked against the instance's memory (a bad pointer traps the
 *   call). No WASI, no clock, no file, no network.
 */
#ifndef HELIOS_PLUGIN_H
#define HELIOS_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLUGIN_ABI_VERSION 1

enum plugin_hook {
	PLUGIN_ON_CONNECTION,
	PLUGIN_ON_QUERY_START,
	PLUGIN_ON_QUERY_COMPLETE,
	PLUGIN_ON_ERROR,
	PLUGIN_HOOKS,
};

/* Field ids for helios.field (the ABI: never renumber). */
enum plugin_field {
	PLUGIN_F_CONFIG = 0, /* helios_init: the plugin's config table as JSON */
	PLUGIN_F_USER = 1,
	PLUGIN_F_DATABASE = 2,
	PLUGIN_F_ADDRESS = 3, /* client address ("127.0.0.1:5000", "unix") */
	PLUGIN_F_APPLICATION_NAME = 4,
	PLUGIN_F_TENANT = 5,
	PLUGIN_F_SQL = 6,         /* on_query_start */
	PLUGIN_F_FINGERPRINT = 7, /* on_query_complete: 16 hex digits */
	PLUGIN_F_DURATION_US = 8, /* on_query_complete: decimal text */
	PLUGIN_F_ROWS = 9,        /* on_query_complete: decimal text */
	PLUGIN_F_STATUS = 10,     /* on_query_complete: "ok" | "error" */
	PLUGIN_F_SQLSTATE = 11,   /* on_error, failed on_query_complete */
	PLUGIN_F_MESSAGE = 12,    /* on_error */
	PLUGIN_F_MODE = 13,       /* "session" | "transaction" | "statement" */
	PLUGIN_F_COUNT,
};

enum plugin_rc {
	PLUGIN_OK,      /* ran; the decision is in the call */
	PLUGIN_TRAP,    /* trapped (bad memory access, unreachable, stack, ...) */
	PLUGIN_TIMEOUT, /* over its wall-clock limit */
	PLUGIN_BUDGET,  /* over its instruction budget */
	PLUGIN_ABSENT,  /* the module does not export this hook */
};

enum plugin_decision {
	PLUGIN_CONTINUE,
	PLUGIN_DENY,
};

struct plugin_limits {
	uint64_t fuel;       /* instructions per hook call */
	uint32_t timeout_ms; /* wall clock per hook call */
	uint32_t memory_mb;  /* linear memory cap (rounded down to 64 KiB pages) */
};

/* One hook call: the host fills the fields, the plugin's host calls fill
 * the outputs (zeroed by plugin_call). Strings need not be NUL-terminated
 * (len given); NULL = the hook has no such field. */
struct plugin_call {
	enum plugin_hook hook;
	const char *field[PLUGIN_F_COUNT];
	uint32_t field_len[PLUGIN_F_COUNT];

	/* outputs */
	enum plugin_decision decision; /* the hook's return (deny() also sets DENY) */
	char sqlstate[6];              /* deny(): "" = 42501 */
	char message[256];
	char *rewrite; /* malloc'd (the caller frees), NULL = unchanged */
	uint32_t rewrite_len;
	char route[64];  /* hint "route", "" none */
	bool cache_skip; /* hint "cache" = "skip" */
	char trap[160];  /* PLUGIN_TRAP/TIMEOUT/BUDGET: what happened, for the log */
	uint64_t elapsed_ns;
	uint64_t instructions; /* executed (about: counted per slice) */
};

/* A compiled module: validated, its imports checked against the ABI, its
 * exports found. NULL with err set ("not a WASM module", "imports env.foo:
 * plugins may import only helios.*", "ABI version 2, this proxy has 1"). */
struct plugin_module;
struct plugin_module *plugin_module_new(const uint8_t *wasm, size_t len, char *err, size_t errlen);
void plugin_module_free(struct plugin_module *m);
/* Which hooks it exports. */
bool plugin_module_has(const struct plugin_module *m, enum plugin_hook h);

/* An instance for one thread: its own store and memory (capped), config
 * passed to helios_init. NULL with err set (init returned nonzero, trapped,
 * memory over the cap). */
struct plugin_instance;
struct plugin_instance *plugin_instance_new(const struct plugin_module *m, const char *config_json,
                                            const struct plugin_limits *lim, char *err,
                                            size_t errlen);
void plugin_instance_free(struct plugin_instance *in);

/* Runs hook c->hook under the instance's limits. After a TRAP, TIMEOUT or
 * BUDGET the instance is not used again (its state may be torn): the
 * caller frees it and makes a new one for the next call. Log lines from
 * the plugin go to log_fn (NULL: dropped). */
enum plugin_rc plugin_call(struct plugin_instance *in, struct plugin_call *c,
                           void (*log_fn)(void *ud, int level, const char *msg, size_t len),
                           void *ud);

const char *plugin_hook_name(enum plugin_hook h);
const char *plugin_rc_name(enum plugin_rc rc);

#endif
