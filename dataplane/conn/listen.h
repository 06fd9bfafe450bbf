/*
 * LISTEN/NOTIFY fan-out for transaction pooling (see listen.c).
 */
#ifndef HELIOS_LISTEN_H
#define HELIOS_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct server;
struct worker;

/* Subscribes cl to channel through its pool's listener (opened on first
 * use). Returns 0 or -errno. */
int listen_subscribe(struct client *cl, const char *channel);
/* Unsubscribes from one channel, or all when channel is NULL. */
void listen_unsubscribe(struct client *cl, const char *channel);
/* Listener connection events (server.c). */
void listen_notify(struct server *sv, const uint8_t *body, uint32_t len);
void listen_listener_ready(struct server *sv);
void listen_listener_gone(struct server *sv);
/* True once the hub's LISTEN on channel is confirmed by the server. */
bool listen_active(struct client *cl, const char *channel);
void listen_listener_acked(struct server *sv);
/* True when cl's pool hub has no listener connection (its login failed or
 * it closed): nothing will confirm a LISTEN cl waits for. */
bool listen_hub_lost(struct client *cl);
/* Worker tick: LISTEN/UNLISTEN asked for from other workers. */
void listen_worker_tick(struct worker *w);

#endif
