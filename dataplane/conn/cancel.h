/*
 * Cancel keys: the proxy hands each client its own BackendKeyData and maps
 * a CancelRequest carrying it to the server that client is using now.
 */
#ifndef HELIOS_CANCEL_H
#define HELIOS_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct server;
struct worker;

/* Registers cl under (pid, a fresh random key); fills cl->cancel_*. */
void cancel_register(struct client *cl, uint32_t pid);
/* A client moved in by a takeover keeps the key its application holds;
 * a fresh one only if (pid, key) is taken here already. */
void cancel_register_key(struct client *cl, uint32_t pid, uint32_t key);
void cancel_unregister(struct client *cl);
/* Thread-safe: the worker of the client this key belongs to, NULL when
 * none (its loop runs as long as the client is there). */
struct worker *cancel_worker_of(uint32_t pid, uint32_t key);
/* Points cl's key at sv (NULL: nothing to cancel right now). */
void cancel_set_target(struct client *cl, const struct server *sv);
/* Forwards a CancelRequest for (pid, key) if it is known; unknown keys are
 * ignored, as PostgreSQL does. */
void cancel_forward(struct worker *w, uint32_t pid, uint32_t key);

struct timespec;
/* On sv's worker, as sv is about to be pooled: true when a cancel for its
 * backend is still in flight. sv then waits (cancel_held) and is handed to
 * sv_cancel_hold_end() on the same worker: pooled once the cancel ended,
 * closed if it took too long. */
bool cancel_hold(struct server *sv);
/* sv is being closed while held. */
void cancel_hold_drop(struct server *sv);
/* From the worker's wake-up and tick. */
void cancel_worker_wake(struct worker *w);
void cancel_worker_tick(struct worker *w, const struct timespec *now);

#endif
