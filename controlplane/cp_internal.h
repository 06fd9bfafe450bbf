/*
 * Private to controlplane/cp*.c: the control plane's state (struct cp, the
 * data planes it knows, the nng work contexts) and the functions its files
 * call across. Not for use outside controlplane/: the API is cp.h.
 * All of it is used under cp->mu unless a comment says otherwise.
 */
#ifndef HELIOS_CP_INTERNAL_H
#define HELIOS_CP_INTERNAL_H

#include "common/cfg.h"
#include "common/cpauth.h"
#include "common/cpwire.h"

#include <nng/nng.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct admin_http;
struct prober;
struct sbuf;
struct xf;

/* Commands kept for data planes that have not taken them; the oldest goes. */
#define MAX_COMMANDS 32

enum work_state { W_RECV, W_SEND, W_PARKED, W_DONE };
enum park_kind { P_HB, P_CTL };
enum wait_kind {
	WAIT_NONE,
	WAIT_GEN,
	WAIT_REPORT,
	WAIT_PAUSE,
	WAIT_RESUME,
	WAIT_DRAIN,
	WAIT_PLUGIN, /* plugin set generation wait_value applied (or refused) */
};

struct dp;

/* One nng context: receiving, sending, or holding (parked) a request. */
struct work {
	struct cp *cp;
	nng_aio *aio;
	nng_ctx ctx;
	enum work_state state;
	enum park_kind kind;
	struct dp *dp;           /* P_HB */
	Helios__CtlRequest *req; /* P_CTL */
	enum wait_kind wait;     /* P_CTL */
	uint64_t wait_value;     /* generation or command id */
	char wait_arg[128];      /* database or node */
	uint64_t deadline_ms;
	char msg[1536]; /* what the answer starts with */
	nng_msg *out;   /* reply ready to go */
};

/* What a data plane reported of one tenant: for cluster-wide shares. */
#define DP_TENANTS 64
struct dp_tenant {
	char id[64];
	uint32_t clients;
	uint64_t queries, at_ms;
	double qps; /* queries per second between its last two reports */
};

/* A data plane that registered (kept while the control plane runs). */
struct dp {
	char id[128];
	struct dp_tenant tenants[DP_TENANTS];
	size_t n_tenants;
	Helios__Register *reg;
	Helios__Heartbeat *hb; /* last heartbeat, its summary report */
	Helios__CommandResult *result;
	uint64_t generation, reject_gen;
	char last_error[512];
	uint64_t last_seen_ms;
	uint64_t registrations;
	uint64_t cmd_seen;
	uint64_t state_sent; /* cp->state_ver last sent */
	char **restart_pending;
	size_t n_restart;
	uint64_t plugin_gen;        /* plugin set it runs (its heartbeats say) */
	uint64_t plugin_reject_gen; /* plugin set it refused last */
	char plugin_error[512];     /* why ("" once it applied a later one) */
	struct work *parked;
	struct dp *next;
};

/* WASM plugins (cp_plugin.c). A module's bytes, shared by the lists that
 * hold it (the undo copy of a helioctl load). */
#define CP_PLUGIN_MAX_BYTES (8u << 20)  /* one module */
#define CP_PLUGINS_MAX      32          /* plugins in a set */
#define CP_PLUGIN_SET_BYTES (48u << 20) /* modules of a set (a data plane takes 64 MiB) */
struct cp_blob {
	unsigned refs;
	size_t len;
	uint8_t data[];
};
struct cp_plugin {
	char name[CFG_NAME_MAX];
	struct cp_blob *wasm;
	uint8_t sha256[32];
	char *config_json;
	bool deny; /* on_failure = "deny" */
	uint64_t fuel;
	uint32_t timeout_ms, memory_mb, max_failures;
	bool helioctl; /* loaded with helioctl plugin load (else [[plugins]]) */
	char *path;    /* the file it was read from (helioctl's side for helioctl) */
	double loaded_at;
	uint64_t serial; /* bumped by plugin reload: data planes make fresh instances */
};
struct cp_plist {
	struct cp_plugin *v;
	size_t n;
};

/* A command for every data plane, answered in a later heartbeat. */
struct command {
	uint64_t id;
	char verb[32];
	char args[3][4096]; /* "" = absent; a statement for "rewrite" */
	char *argv[3];      /* into args, for the Command message */
	size_t n_args;
	uint64_t created_ms;
};

/* The control plane: all of it behind mu. */
struct cp {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	bool embedded;
	nng_socket sock;
	struct work **works;
	size_t n_works;
	pthread_t timer, prober;
	bool timer_started, prober_started;

	char path[CFG_PATH_MAX];
	char ovr_path[CFG_PATH_MAX];
	struct cfg *live; /* file + overrides */
	struct cfg *file; /* file alone, for config diff */
	char **ovr_keys;  /* overrides, one TOML line each */
	char **ovr_lines;
	size_t n_ovr;
	uint64_t generation;
	char *snapshot_toml;
	char source[256];
	uint32_t schema;

	struct dp *dps;
	struct command cmds[MAX_COMMANDS];
	size_t n_cmds;
	uint64_t next_cmd;
	char **paused, **drained;
	size_t n_paused, n_drained;
	uint64_t state_ver;
	Helios__NodeStatus **nodes;
	size_t n_nodes;
	uint64_t routing_ver;
	char primary[CFG_NAME_MAX]; /* the node the routing table calls primary */
	struct seen {
		char name[CFG_NAME_MAX];
		uint64_t last_ok_ms;
	} * seen;
	size_t n_seen;
	struct prober *checker; /* libpq checks (role, lag) */

	/* Who may talk to it: control_token and the TLS files, as at start
	 * (restart keys). Refused requests are logged once per peer (cp.c). */
	struct cpauth auth;
	struct cp_refused {
		char peer[96]; /* address, or ipc uid; "" = free */
		uint64_t at_ms;
	} refused[32];
	uint64_t refused_total;
	uint64_t refused_window_ms; /* start of the minute refused_lines counts */
	unsigned refused_lines;
	uint64_t refused_quiet; /* refusals not logged since the last line */

	/* WASM plugins: the [[plugins]] of the live config (files read), the
	 * modules loaded with helioctl (kept across reloads, not restarts), and
	 * the set both make, numbered apart from the config (cp_plugin.c) */
	struct cp_plist cfg_plugins, loaded;
	const struct cp_plugin **set; /* into cfg_plugins and loaded */
	size_t n_set;
	uint8_t set_digest[32];
	uint64_t plugin_gen, plugin_next;
	struct {
		bool valid;
		uint64_t gen_before, gen_after;
		struct cp_plist loaded;
	} plugin_undo; /* the last helioctl load, undone when every data plane refuses it */

	uint64_t start_ms;
	struct admin_http *http;
	struct xf *xdp; /* the XDP admission filter, following cp->live */
};

/* A reply taken out of its work, to send once cp->mu is released. */
struct ready {
	struct work *w;
	nng_msg *msg;
};

/* cp.c: shared helpers and the reply queue */

/* strdup that takes NULL as "". */
char *cp_xstrdup(const char *s);
/* Snapshot text holds passwords: wipe before freeing. */
void cp_free_secret(char *s);
/* Frees a string vector of n entries and the vector itself. */
void cp_free_strv(char **v, size_t n);
/* Whether s is in the string vector. */
bool cp_strv_has(char *const *v, size_t n, const char *s);
/* Appends a copy of s; -1 when out of memory. */
int cp_strv_add(char ***v, size_t *n, const char *s);
/* Removes the first entry equal to s, if any. */
void cp_strv_del(char **v, size_t *n, const char *s);
/* An envelope of type and generation around m, as an nng message; NULL on failure. */
nng_msg *cp_pack_msg(Helios__MsgType type, uint64_t gen, const ProtobufCMessage *m);
/* Called holding cp->mu: releases it and sends the replies that became
 * ready meanwhile (cp_take_ready, unlock, cp_flush_sends). */
void cp_unlock_and_send(struct cp *cp);
/* Sends every reply taken by cp_take_ready; call without cp->mu. */
void cp_flush_sends(struct cp *cp, struct ready *ready, size_t n);
/* Under cp->mu: takes the replies that are ready; the caller frees *out. */
size_t cp_take_ready(struct cp *cp, struct ready **out);

/* cp_config.c: the live configuration */

/* The overrides file's text for generation gen, without *skip_key, with
 * add_line for add_key (replacing its old line); NULL when out of memory. */
char *cp_config_overrides_text(const struct cp *cp, char **skip_key, const char *add_key,
                               const char *add_line, uint64_t gen);
/* Atomic replace: temp file, fsync, rename, fsync the folder. */
int cp_config_write_atomic(const char *path, const char *text, char *err, size_t errlen);
/* The same for len bytes (mode 0600). */
int cp_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);
/* Reads the overrides file into cp's override list, its text and generation
 * (missing file: none); -1 with the reason in err. */
int cp_config_read_overrides(struct cp *cp, char **text_out, uint64_t *gen, char *err,
                             size_t errlen);
/* Makes c the live config with a new generation; takes c. */
void cp_config_install(struct cp *cp, struct cfg *c, const char *source);
/* Fills s with the live snapshot (pointing into cp) and returns it. */
Helios__ConfigSnapshot *cp_config_snapshot_msg(struct cp *cp, Helios__ConfigSnapshot *s);
/* Loads file + overrides text; on success installs it, else -1 and why in msg. */
int cp_config_apply(struct cp *cp, const char *ovr_text, const char *source, char *msg, size_t cap);
/* Re-reads the config file with the overrides on top and applies it (new
 * generation, overrides file rewritten, data planes woken); under cp->mu.
 * 0, or -1 with the reason in msg (the configuration is unchanged). */
int cp_config_reload(struct cp *cp, const char *source, char *msg, size_t cap);
/* helioctl config get|show|diff|set|reset; *parked when the request is held. */
nng_msg *cp_config_handle(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked);

/* cp_dp.c: the data planes */

/* Whether d is holding a heartbeat or was heard from within 3 intervals. */
bool cp_dp_connected(const struct cp *cp, const struct dp *d, uint64_t now);
/* The Reply a data plane gets; reregister: asks it to Register (d may be NULL). */
nng_msg *cp_dp_reply(struct cp *cp, struct dp *d, bool reregister);
/* d holds no heartbeat any more. */
void cp_dp_forget_parked(struct dp *d);
/* Every held heartbeat gets its answer now (something changed). */
void cp_dp_kick_heartbeats(struct cp *cp);
/* Queues a command for every data plane, up to three arguments; its id in *id. */
void cp_dp_add_command3(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
                        const char *arg2, uint64_t *id);
/* cp_dp_add_command3 with up to two arguments (arg1 only with arg0). */
void cp_dp_add_command(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
                       uint64_t *id);
/* A Register: records the data plane and sets w's reply. */
void cp_dp_handle_register(struct cp *cp, struct work *w, Helios__Envelope *e);
/* A Heartbeat: records its report and results; answers or holds w. */
void cp_dp_handle_heartbeat(struct cp *cp, struct work *w, Helios__Envelope *e);

/* cp_ctl.c: helioctl requests */

/* A CtlResponse with the fields every answer carries. */
void cp_ctl_resp_init(struct cp *cp, Helios__CtlResponse *r);
/* A CtlResponse with only a status and a message. */
nng_msg *cp_ctl_simple(struct cp *cp, int status, const char *msg);
/* Holds w until the data planes have done what k says, or its timeout. */
void cp_ctl_park(struct cp *cp, struct work *w, Helios__CtlRequest *req, enum wait_kind k,
                 uint64_t value, const char *arg, const char *msg);
/* Appends why the XDP filter is not attached, if it is not, to msg. */
void cp_ctl_xdp_note(struct cp *cp, char *msg, size_t cap);
/* A CtlRequest: its answer, or NULL with *parked when held. */
nng_msg *cp_ctl_handle(struct cp *cp, struct work *w, Helios__Envelope *e, bool *parked);
/* Answers the held helioctl requests that can be; deadlines: also the held
 * requests and heartbeats past their deadline. */
void cp_ctl_check_parked(struct cp *cp, bool deadlines);

/* cp_plugin.c: WASM plugins */

/* Reads the modules c's [[plugins]] name (sha256 of each) into out; -1
 * with the plugin, the file and why in msg. */
int cp_plugins_read_cfg(const struct cp *cp, const struct cfg *c, struct cp_plist *out, char *msg,
                        size_t cap);
/* Makes l (taken) the config's plugins; a changed set gets a new plugin
 * generation and wakes the data planes. Under cp->mu. */
void cp_plugins_install_cfg(struct cp *cp, struct cp_plist *l);
void cp_plist_free(struct cp_plist *l);
/* The plugin set for a Reply (modules point into cp); free with
 * cp_plugins_msg_free. NULL when out of memory. */
Helios__PluginSet *cp_plugins_msg(struct cp *cp);
void cp_plugins_msg_free(Helios__PluginSet *s);
/* helioctl plugin list|load|unload|reload|stats; *parked when held. */
nng_msg *cp_plugin_handle(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked);
/* The modules loaded with helioctl that the last run kept (plugins_dir):
 * after the config's are installed, at start. */
void cp_plugins_restore(struct cp *cp);
/* A held plugin change every connected data plane refused: the helioctl
 * load is undone (the set goes back to the generation they run). Returns
 * whether it was. */
bool cp_plugins_undo(struct cp *cp, uint64_t refused_gen);
/* Frees the plugin state at exit. */
void cp_plugins_free(struct cp *cp);

/* cp_probe.c: node checks and the primary */

/* Checks every node once and updates the routing table (takes cp->mu). */
void cp_probe_round(struct cp *cp);
/* The prober thread: a round every check interval until cp->stopping. */
void *cp_probe_main(void *arg);

/* cp_http.c: the admin HTTP */

/* admin_http callback: /metrics, /status, /healthz, /readyz. */
int cp_http_handler(void *ctx, const char *url, struct sbuf *body, const char **ctype);

#endif
