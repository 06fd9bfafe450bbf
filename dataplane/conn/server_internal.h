/*
 * Private to the server connection files (server.c, server_login.c).
 */
#ifndef HELIOS_SERVER_INTERNAL_H
#define HELIOS_SERVER_INTERNAL_H

#include "dataplane/conn/conn_internal.h"

#include <stdint.h>

/* Fails a server: a client waiting for its login gets the error (the
 * server's own body, or sqlstate and msg), then it is closed. */
void sv_fail(struct server *sv, const uint8_t *body, uint32_t len, const char *sqlstate,
             const char *msg);
/* Connection failures and crashes count towards the node's breaker; SQL
 * errors do not. */
void sv_node_failure(struct server *sv, const char *why);
void sv_node_success(struct server *sv);
/* Records the value a ParameterStatus message (its body) reports. */
void sv_param_status(struct server *sv, const uint8_t *body, uint32_t len);

/* server_login.c: the messages assembled during login. */
void sv_process_login(struct server *sv);
/* server_login.c: the answer to an auth_query lookup. */
void sv_process_auth_query(struct server *sv);

#endif
