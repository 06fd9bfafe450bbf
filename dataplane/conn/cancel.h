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
void cancel_unregister(struct client *cl);
/* Points cl's key at sv (NULL: nothing to cancel right now). */
void cancel_set_target(struct client *cl, const struct server *sv);
/* Forwards a CancelRequest for (pid, key) if it is known; unknown keys are
 * ignored, as PostgreSQL does. */
void cancel_forward(struct worker *w, uint32_t pid, uint32_t key);

#endif
