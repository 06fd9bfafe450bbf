/*
 * Admin HTTP server on libmicrohttpd. MHD binds the socket itself
 * (MHD_OPTION_SOCK_ADDR); this file resolves the address, turns MHD's
 * start-up failure into one readable message and adapts the sbuf handler to
 * MHD responses.
 */
#include "common/admin_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "common/cfg.h"
#include "common/log.h"

#define ADMIN_HTTP_MAX_CONNECTIONS 64u
#define ADMIN_HTTP_TIMEOUT_SECS    10u

struct admin_http {
	struct MHD_Daemon *d;
	admin_http_fn fn;
	void *ctx;
	int port;
	/* While true, MHD's messages are kept in start_msg for the caller's
	 * error text instead of being logged. */
	atomic_bool starting;
	char start_msg[256];
};

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct admin_http *h = cls;
	char msg[256];
	size_t len;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	if (atomic_load(&h->starting))
		snprintf(h->start_msg, sizeof(h->start_msg), "%s", msg);
	else
		log_warn("admin http: %s", msg);
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *resp, const char *content_type)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO; /* MHD closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct MHD_Response *static_response(const char *text)
{
	return MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	static const char text_plain[] = "text/plain; charset=utf-8";
	struct admin_http *h = cls;
	struct MHD_Response *resp;
	const char *content_type = NULL;
	struct sbuf body;
	size_t len = 0;
	char *p;
	int status;

	/* Answered on the first call, before any request body is read: MHD
	 * then closes the connection rather than reading an upload nobody wants. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		resp = static_response("method not allowed\n");
		if (resp &&
		    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES) {
			MHD_destroy_response(resp);
			resp = NULL;
		}
		return queue(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp, text_plain);
	}

	sbuf_init(&body);
	status = h->fn(h->ctx, url, &body, &content_type);
	p = sbuf_take(&body, &len);
	if (!p || status < 200 || status > 599) {
		if (!p)
			log_warn("admin http: out of memory answering %s", url);
		else
			log_warn("admin http: handler returned status %d for %s", status, url);
		free(p);
		return queue(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		             static_response("internal server error\n"), text_plain);
	}
	/* MUST_FREE hands the buffer over: no copy of a large /metrics body. */
	resp = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(p);
	return queue(conn, (unsigned)status, resp, content_type ? content_type : text_plain);
}

/* Starts MHD on one resolved address; false with h->start_msg or errno set. */
static bool start_on(struct admin_http *h, const struct sockaddr *sa)
{
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	/* epoll (MHD_USE_AUTO), not select(): in a proxy holding thousands of
	 * client sockets the listen fd may well be above FD_SETSIZE. */
	if (sa->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->start_msg[0] = '\0';
	atomic_store(&h->starting, true);
	errno = 0;
	/* MHD_OPTION_LISTENING_ADDRESS_REUSE is left unset on purpose: MHD's
	 * default sets SO_REUSEADDR, while 1 would add SO_REUSEPORT and let a
	 * second server silently share the port. The logger goes first so
	 * that start-up messages reach it. */
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
	    MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, ADMIN_HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_HTTP_TIMEOUT_SECS, MHD_OPTION_END);
	if (!h->d)
		return false;
	atomic_store(&h->starting, false);
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	return true;
}

/* cfg_parse_address() rejects port 0, which is right for a configuration
 * but not here, where it asks the kernel for a free port. */
static int parse_address(const char *addr, char *host, size_t host_cap, char *port, size_t port_cap)
{
	const char *colon = strrchr(addr, ':');
	char tmp[CFG_HOST_MAX + 16];
	uint16_t p;

	if (colon && strcmp(colon, ":0") == 0 &&
	    (size_t)snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(colon - addr), addr) < sizeof(tmp)) {
		if (cfg_parse_address(tmp, host, host_cap, &p) != 0)
			return -EINVAL;
		snprintf(port, port_cap, "0");
		return 0;
	}
	if (cfg_parse_address(addr, host, host_cap, &p) != 0)
		return -EINVAL;
	snprintf(port, port_cap, "%u", (unsigned)p);
	return 0;
}

struct admin_http *admin_http_start(const char *addr, admin_http_fn fn, void *ctx, char *err,
                                    size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[CFG_HOST_MAX], port[8];
	struct admin_http *h;
	int rc, saved = 0;

	if (parse_address(addr, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(err, errlen, "admin_address %s: not host:port (IPv6 as \"[::1]:9090\")",
		         addr);
		return NULL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "admin_address %s: %s", addr,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		freeaddrinfo(res);
		snprintf(err, errlen, "admin_address %s: %s", addr, strerror(ENOMEM));
		return NULL;
	}
	h->fn = fn;
	h->ctx = ctx;
	atomic_init(&h->starting, true);
	/* A name such as "localhost" may resolve to several addresses: the
	 * first one that binds wins, as a client would connect. */
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (start_on(h, ai->ai_addr))
			break;
		saved = errno;
	}
	freeaddrinfo(res);
	if (h->d)
		return h;
	/* MHD keeps errno from the failing call (bind) in practice; its log
	 * line is the fallback, minus its "Failed to bind to port 0" preamble
	 * which names the wrong port when the address came in SOCK_ADDR. */
	if (saved != 0) {
		snprintf(err, errlen, "admin_address %s: %s", addr, strerror(saved));
	} else if (h->start_msg[0]) {
		const char *why = strstr(h->start_msg, ": ");
		snprintf(err, errlen, "admin_address %s: %s", addr, why ? why + 2 : h->start_msg);
	} else {
		snprintf(err, errlen, "admin_address %s: cannot start the HTTP server", addr);
	}
	free(h);
	return NULL;
}

int admin_http_port(const struct admin_http *h)
{
	return h ? h->port : 0;
}

void admin_http_stop(struct admin_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
