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
/* The generation applied last (0: none yet). */
uint64_t plugin_set_generation(void);

struct plugin_stats {
	char name[64];
	char sha256[65]; /* hex */
	bool disabled;   /* after max_failures consecutive failures (until reloaded) */
	uint64_t calls, time_ns, denials, rewrites, traps, timeouts, budget_exhausted, failures;
	uint32_t instances; /* workers that hold an instance now */
};
/* The live plugins' counters (summed over workers); returns how many
 * (at most max written). */
size_t plugin_set_stats(struct plugin_stats *out, size_t max);

/* Enables a plugin the failure switch disabled; 0 or -ENOENT. */
int plugin_set_reset(const char *name);

/* A worker ends: frees its instances. */
void plugin_set_worker_exit(void);
/* At exit. */
void plugin_set_shutdown(void);

#endif
