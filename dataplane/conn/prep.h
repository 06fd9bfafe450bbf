/*
 * Protocol-level named prepared statements in transaction pooling. A
 * client's statement names map to server-side names derived from the
 * statement text and parameter types, so identical statements of all
 * clients share one server-side statement, and a client's statement is
 * prepared on whichever server it lands on, only when missing there.
 */
#ifndef HELIOS_PREP_H
#define HELIOS_PREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREP_SERVER_NAME_LEN 20 /* "hp_" + 16 hex + NUL */

/* A client's named statement: its Parse payload after the name (query,
 * parameter count and types), to replay on another server. */
struct prep_stmt {
	struct prep_stmt *next;
	uint64_t key;
	uint32_t body_len;
	char sname[PREP_SERVER_NAME_LEN];
	bool track; /* its text may change session state (sqlc_maybe_interesting) */
	char *name;
	uint8_t *body;
};

struct prep_client {
	struct prep_stmt **buckets;
	uint32_t nbuckets, count;
};

/* Server side: keys prepared there, least recently used evicted. */
struct prep_server {
	uint64_t *keys;
	uint64_t *used; /* tick of last use */
	uint32_t n, cap;
	uint64_t tick;
};

uint64_t prep_key(const uint8_t *body, uint32_t len);
void prep_server_name(uint64_t key, char out[PREP_SERVER_NAME_LEN]);

void prep_client_free(struct prep_client *pc);
/* Adds or replaces name; returns the entry or NULL (out of memory). */
struct prep_stmt *prep_client_put(struct prep_client *pc, const char *name, const uint8_t *body,
                                  uint32_t len);
struct prep_stmt *prep_client_get(const struct prep_client *pc, const char *name);
void prep_client_del(struct prep_client *pc, const char *name);
void prep_client_clear(struct prep_client *pc);

void prep_server_init(struct prep_server *ps, uint32_t cap);
void prep_server_free(struct prep_server *ps);
bool prep_server_has(struct prep_server *ps, uint64_t key);
/* Records key; if the set is full, *evicted gets the least recently used
 * key (to Close on the server) and true is returned. */
bool prep_server_add(struct prep_server *ps, uint64_t key, uint64_t *evicted);
void prep_server_forget(struct prep_server *ps, uint64_t key);
void prep_server_clear(struct prep_server *ps);

#endif
