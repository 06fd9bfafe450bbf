/*
 * Config snapshots: an immutable, refcounted bundle of a loaded config and
 * what is derived from it (TLS contexts). Connections keep the snapshot
 * they started with; a reload swaps the current one atomically.
 */
#ifndef HELIOS_SNAP_H
#define HELIOS_SNAP_H

#include "common/cfg.h"

#include <stdint.h>

struct tls_ctx;
struct rw_rules;

struct snap {
	int refs; /* atomic */
	uint64_t generation;
	struct cfg *cfg;
	struct tls_ctx *client_tls; /* serves TLS to clients; NULL when disabled */
	struct tls_ctx *server_tls; /* TLS towards servers; NULL when disabled */
	struct rw_rules *rewrite;   /* [[rewrite_rules]] compiled; NULL when none */
	bool rate_limits;           /* some query rate limit is configured (rate_enabled) */
};

/* Builds a snapshot from a loaded config (takes ownership of cfg).
 * Returns NULL with a message in err (e.g. a bad certificate). */
struct snap *snap_new(struct cfg *cfg, char *err, size_t errlen);
/* The current snapshot with a reference taken. */
struct snap *snap_current(void);
void snap_ref(struct snap *s);
void snap_unref(struct snap *s);
/* Installs s as current (takes the caller's reference) with the next
 * local generation, or with the given one (the control plane's; 0 = a
 * local file a data plane serves until its control plane answers). */
void snap_install(struct snap *s);
void snap_install_gen(struct snap *s, uint64_t generation);
/* pool_mode.max_pool_size of the current snapshot: pools enforce the live
 * cap, whatever snapshot a long-lived client started with. */
int snap_max_pool_size(void);

#endif
