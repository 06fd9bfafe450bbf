/*
 * The admin HTTP server (/metrics, /status, /healthz) shared by heliosproxy
 * and helios-cp: libmicrohttpd run by one thread of its own, GET and HEAD
 * only. What each URL returns is up to the caller's handler.
 */
#ifndef HELIOS_ADMIN_HTTP_H
#define HELIOS_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/sbuf.h"

struct admin_http;

/* Called on MHD's thread for GET/HEAD (url is the path, without the query
 * string); fills body and *content_type (left NULL: text/plain) and returns
 * the HTTP status. Anything outside 200..599, or a body that ran out of
 * memory, becomes a 500. For HEAD the body is built but not sent. */
typedef int (*admin_http_fn)(void *ctx, const char *url, struct sbuf *body,
                             const char **content_type);

/* addr is "host:port" or "[v6]:port" (cfg_parse_address; port 0 picks a free
 * one). Binds exactly that host with SO_REUSEADDR (not SO_REUSEPORT, so a
 * second server on the same port fails instead of sharing it). At most 16
 * connections per client address and 512 in all; a request must arrive whole
 * and be answered within 5 s of the connection (or of the previous answer on
 * it), so a slowloris cannot hold the slots probes need. NULL with a message
 * in err such as
 * "admin_address 127.0.0.1:8432: Address already in use" on failure. */
struct admin_http *admin_http_start(const char *addr, admin_http_fn fn, void *ctx, char *err,
                                    size_t errlen);
/* Inside a handler: whether the request's query string has argument name
 * ("/readyz?verbose", with or without a value). False elsewhere. */
bool admin_http_has_arg(const char *name);
/* Port actually bound (useful when addr has port 0). */
int admin_http_port(const struct admin_http *h);
/* Stops the thread, closes the socket and frees h; waits for a handler that
 * is running. NULL is fine. */
void admin_http_stop(struct admin_http *h);

#endif
