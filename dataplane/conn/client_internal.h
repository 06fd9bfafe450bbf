/*
 * Private to the client connection files (client.c, login.c).
 */
#ifndef HELIOS_CLIENT_INTERNAL_H
#define HELIOS_CLIENT_INTERNAL_H

#include "dataplane/conn/conn_internal.h"
#include "dataplane/pg/pgw.h"

#include <stdbool.h>

/* Moves cl to state to; false (and a log line) for an illegal move. */
bool cl_set_state(struct client *cl, enum cl_state to);
/* Sends a message built in o (logged and dropped if it overflowed). */
void cl_send_msg(struct client *cl, struct pgw_out *o);
/* Asks the pool for a server; connects, waits or binds as it answers. */
void cl_get_server(struct client *cl);
/* The transaction cannot be served (no primary, breaker open for the node
 * it names): its first request gets an ErrorResponse and ReadyForQuery,
 * the connection stays. Without a whole request to answer, it closes. */
void cl_refuse_pending(struct client *cl, const char *msg);

/* login.c: the startup packet, TLS negotiation and authentication, over
 * the bytes assembled in cl->ep.in; then the pool is asked for a server. */
void cl_login_input(struct client *cl);
/* login.c: an admin console client's statements go to the console thread. */
void cl_admin_input(struct client *cl);

/* client.c: a client socket's callbacks (client_move.c adopts sockets). */
extern const struct io_sock_ops cl_ops;

#endif
