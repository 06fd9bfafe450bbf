/*
 * Config snapshots: an immutable, refcounted bundle of a loaded config and
 * what is derived from it (TLS contexts, compiled rewrite rules).
 * Connections keep the snapshot they started with; a reload swaps the
 * current one atomically.
 *
 * This module names no feature above it. Features that derive data from a
 * config, or must follow the current one, subscribe at start-up (before
 * the first snap_new): a builder fills its field of each new snapshot (and
 * may refuse the config), an install subscriber is told each time a
 * snapshot becomes current. May call: policy/tenant (rate_enabled), tls,
 * auth/identmap.
 */
#ifndef HELIOS_SNAP_H
#define HELIOS_SNAP_H

#include "common/cfg.h"

#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct rw_rules;
struct hba;
struct identmap;

struct snap {
	int refs; /* atomic */
	uint64_t generation;
	struct cfg *cfg;
	struct tls_ctx *client_tls; /* serves TLS to clients; NULL when disabled */
	struct tls_ctx *server_tls; /* TLS towards servers; NULL when disabled */
	struct rw_rules *rewrite;   /* [[rewrite_rules]] compiled; NULL when none */
	bool rate_limits;           /* some query rate limit is configured (rate_enabled) */
	struct hba *hba;            /* auth.hba_file or [[auth.rules]]; NULL: auth.method for all */
	struct identmap *identmap;  /* tls.ident_file parsed; NULL when unset */
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

/* ---- subscriptions (register at start-up, from one thread) ---- */

#define SNAP_MAX_SUBSCRIBERS 16

/* Called by snap_new, in registration order, after the TLS contexts:
 * derives the feature's data from s->cfg into its field of s. Returns 0,
 * or -1 with a message in err: the config is refused (snap_new fails).
 * release frees that field when the snapshot goes (also after a failed
 * build; the field may be NULL). */
typedef int (*snap_build_fn)(struct snap *s, char *err, size_t errlen);
typedef void (*snap_release_fn)(struct snap *s);
int snap_add_builder(snap_build_fn build, snap_release_fn release); /* 0 or -ENOSPC */

/* Called after s became current, in registration order, on the thread
 * that installed it (never a worker); installs are serialised, so
 * subscribers see them in order. old is the snapshot s replaced (NULL at
 * the first install), still referenced during the call. */
typedef void (*snap_install_fn)(const struct snap *s, const struct snap *old, void *arg);
int snap_subscribe(snap_install_fn fn, void *arg); /* 0 or -ENOSPC */
/* Forgets every builder and subscriber (unit tests). */
void snap_subscriptions_reset(void);

#endif
