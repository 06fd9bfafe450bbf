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

struct snap {
	int refs; /* atomic */
	uint64_t generation;
	struct cfg *cfg;
	struct tls_ctx *client_tls; /* serves TLS to clients; NULL when disabled */
	struct tls_ctx *server_tls; /* TLS towards servers; NULL when disabled */
};

/* Builds a snapshot from a loaded config (takes ownership of cfg).
 * Returns NULL with a message in err (e.g. a bad certificate). */
struct snap *snap_new(struct cfg *cfg, char *err, size_t errlen);
/* The current snapshot with a reference taken. */
struct snap *snap_current(void);
void snap_ref(struct snap *s);
void snap_unref(struct snap *s);
/* Installs s as current (takes the caller's reference). */
void snap_install(struct snap *s);

#endif
