/*
 * The live plugin set of this data plane: what the control plane pushed
 * (modules as bytes with their digest, so no shared file system is
 * needed), compiled once, instantiated lazily on each worker (one instance
 * per worker and plugin, never shared), with per-plugin counters and the
 * consecutive-failure switch. Replaced as a whole by plugin_set_apply; a
 * worker notices a new generation at its next hook call (one atomic load)
 * and moves to it; the old set is freed once no worker uses it.
 */
#ifndef HELIOS_PLUGIN_SET_H
#define HELIOS_PLUGIN_SET_H

#include "dataplane/plugin/plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plugin_on_failure {
	PLUGIN_FAIL_CONTINUE, /* a trap or a timeout lets the query (or login) go on */
	PLUGIN_FAIL_DENY,     /* ... refuses it */
};

/* One plugin as the control plane pushes it (pointers are the caller's:
 * plugin_set_apply copies what it keeps). */
struct plugin_def {
	const char *name;
	const uint8_t *wasm; /* the module */
	size_t len;
	uint8_t sha256[32]; /* of wasm; the same digest as the live one keeps its compiled module
	                       and stats */
	const char *config_json; /* "{}" when none */
	enum plugin_on_failure on_failure;
	struct plugin_limits lim;
	uint32_t max_failures; /* consecutive failed calls before it is disabled (0: never) */
};

/* Replaces the live set (hooks run in defs' order). All or nothing: a
 * module that does not compile or whose instance fails helios_init leaves
 * the live set as it was and returns -EINVAL with err naming the plugin and
 * why. 0 on success; generation is what the control plane numbered it. */
int plugin_set_apply(const struct plugin_def *defs, size_t n, uint64_t generation, char *err,
                     size_t errlen);
/* fn runs (on the applying thread) when an apply goes from an empty set to
 * a non-empty one or back: the pipeline then rebuilds its pipelines. Set
 * once at start-up. */
void plugin_set_notify(void (*fn)(void));
/* The generation applied last (0: none yet). */
uint64_t plugin_set_generation(void);

struct plugin_stats {
	char name[64];
	char sha256[65]; /* hex */
	bool disabled;   /* after max_failures consecutive failures (until reloaded) */
	uint64_t calls, time_ns, denials, rewrites, traps, timeouts, budget_exhausted, failures;
	uint32_t instances;      /* workers that hold an instance now */
	uint64_t disabled_total; /* times the failure switch disabled it */
};
/* The live plugins' counters (summed over workers); returns how many
 * (at most max written). */
size_t plugin_set_stats(struct plugin_stats *out, size_t max);

/* Hooks (1u << enum plugin_hook) that some enabled live plugin exports:
 * one relaxed atomic load, 0 when there is nothing to run. */
uint32_t plugin_set_hooks(void);
/* Plugins in the live set. */
size_t plugin_set_count(void);
/* Enables a plugin the failure switch disabled, and has every worker make
 * a fresh instance of it at its next call (helioctl plugin reload); 0 or
 * -ENOENT. */
int plugin_set_reset(const char *name);

/* What the live set decided about one hook call. */
struct plugin_outcome {
	enum plugin_decision decision; /* DENY: a plugin denied (or failed with on_failure deny) */
	bool failed;                   /* the denial is a failure's (trap, timeout, budget) */
	char by[64];                   /* the plugin that denied */
	char sqlstate[6];              /* its SQLSTATE, "" = the caller's default */
	char message[256];
	char *rewrite; /* on_query_start: malloc'd statement to run instead (caller frees) */
	uint32_t rewrite_len;
	char route[64];  /* "primary" | "replica" | a node name; "" none (the last plugin's) */
	bool cache_skip; /* some plugin asked the cache to stay out */
	uint32_t ran;    /* plugins called */
};
/* Runs hook in->hook of every enabled live plugin, in order, on this
 * thread's instances (built on first use, rebuilt after a failure); input
 * fields in in (its outputs are not used). Stops at the first denial; a
 * rewrite is what later plugins see as the SQL. Counts, logs and applies
 * on_failure and max_failures. */
void plugin_set_run(const struct plugin_call *in, struct plugin_outcome *out);

/* A statement the plugins cannot be shown (streamed, not held whole):
 * denied (out) when an enabled plugin with hook h has on_failure deny. */
void plugin_set_unseen(enum plugin_hook h, struct plugin_outcome *out);

struct sbuf;
/* The live plugins' counters as Prometheus text (the data plane's /metrics). */
void plugin_set_metrics(struct sbuf *out);

/* A worker ends: frees its instances. */
void plugin_set_worker_exit(void);
/* At exit. */
void plugin_set_shutdown(void);

#endif
