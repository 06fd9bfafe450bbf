/*
 * Admin HTTP server on libmicrohttpd. MHD binds the socket itself
 * (MHD_OPTION_SOCK_ADDR); this file resolves the address, turns MHD's
 * start-up failure into one readable message, adapts the sbuf handler to
 * MHD responses, and keeps probes answering under a slowloris: a per-address
 * connection cap, and a deadline for each request that trickling bytes do not
 * renew (MHD's own timeout is an idle timeout, which they do). MHD runs in
 * external-loop mode on our own thread so that the deadline sweep runs on the
 * thread that owns the connections.
 */
#include "common/admin_http.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/cfg.h"
#include "common/log.h"

/* Probes (kubelet, Prometheus, a load balancer) come from a few addresses
 * and send a whole request at once; one address may hold PER_IP connections
 * and all of them MAX. A request must be complete and answered within
 * REQUEST_SECS of the connection's start or of the previous answer on it,
 * however often bytes arrive; IDLE_SECS is MHD's idle timeout. */
#define ADMIN_HTTP_MAX_CONNECTIONS 512u
#define ADMIN_HTTP_PER_IP          16u
#define ADMIN_HTTP_REQUEST_SECS    5u
#define ADMIN_HTTP_IDLE_SECS       5u
#define ADMIN_HTTP_SWEEP_MS        250    /* how often the deadline is checked */
#define ADMIN_HTTP_LOG_EVERY_MS    10000u /* MHD and sweep messages, at most */

/* Sent with every answer. The dashboard page (/) may run only the script and
 * style this origin serves and fetch only from it: no inline script, no
 * external load, no frames, forms or plugins, even if a value it shows were
 * ever taken for markup. Everything is read live: nothing is cached. */
#define ADMIN_HTTP_CSP                                                                             \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "            \
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* A log line allowed once per ADMIN_HTTP_LOG_EVERY_MS. */
struct every {
	uint64_t at_ms; /* last logged */
	unsigned skipped;
};

/* One open connection, from MHD's connection notifications. */
struct hconn {
	struct hconn *prev, *next;
	int fd;
	uint64_t since_ms; /* connected, or the previous answer was sent */
	bool shut;         /* shutdown(2) done; MHD closes it next */
};

struct admin_http {
	struct MHD_Daemon *d;
	admin_http_fn fn;
	void *ctx;
	int port;
	/* While true, MHD's messages are kept in start_msg for the caller's
	 * error text instead of being logged. */
	atomic_bool starting;
	char start_msg[256];
	pthread_t thread;
	bool thread_started;
	int wake_fd; /* eventfd: admin_http_stop wakes the loop */
	atomic_bool stop;
	/* The loop thread only (MHD calls the notifications from it, and from
	 * MHD_stop_daemon once the loop has ended). */
	struct hconn *conns;
	struct every mhd_log;    /* MHD's messages */
	struct every expiry_log; /* the sweep's */
	unsigned expired;        /* connections shut for their deadline, not yet logged */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An attack makes MHD say "connection limit reached" per connection: one
 * line per ADMIN_HTTP_LOG_EVERY_MS, with how many were left out. */
static bool log_allowed(struct every *e, unsigned *skipped)
{
	uint64_t now = now_ms();
	if (e->at_ms && now - e->at_ms < ADMIN_HTTP_LOG_EVERY_MS) {
		e->skipped++;
		return false;
	}
	e->at_ms = now;
	*skipped = e->skipped;
	e->skipped = 0;
	return true;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct admin_http *h = cls;
	char msg[256];
	size_t len;
	unsigned skipped;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	if (atomic_load(&h->starting))
		snprintf(h->start_msg, sizeof(h->start_msg), "%s", msg);
	else if (log_allowed(&h->mhd_log, &skipped))
		log_warn("admin http: %s (per client address: %u, in all: %u)%s", msg,
		         ADMIN_HTTP_PER_IP, ADMIN_HTTP_MAX_CONNECTIONS,
		         skipped ? "; like messages left out for 10 s" : "");
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct admin_http *h = cls;
	struct hconn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = ci ? calloc(1, sizeof(*c)) : NULL;
		*socket_context = c;
		if (!c)
			return; /* untracked: MHD's idle timeout still applies */
		c->fd = ci->connect_fd;
		c->since_ms = now_ms();
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c) {
		if (c->prev)
			c->prev->next = c->next;
		else
			h->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c);
		*socket_context = NULL;
	}
}

/* An answer was sent (or the request failed): the next request on this
 * connection gets a deadline of its own. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct hconn *c = ci ? ci->socket_context : NULL;
	(void)cls, (void)con_cls, (void)toe;
	if (c)
		c->since_ms = now_ms();
}

/* Shuts the connections past their deadline. shutdown(), not close(): MHD
 * sees the end of the stream and closes the connection itself. Runs on the
 * loop thread, so no connection closes under it and no fd is reused. */
static void sweep(struct admin_http *h)
{
	uint64_t now = now_ms();
	unsigned skipped;

	for (struct hconn *c = h->conns; c; c = c->next) {
		if (c->shut || now - c->since_ms < ADMIN_HTTP_REQUEST_SECS * 1000u)
			continue;
		shutdown(c->fd, SHUT_RDWR);
		c->shut = true;
		h->expired++;
	}
	if (h->expired && log_allowed(&h->expiry_log, &skipped)) {
		log_warn("admin http: closed %u connection%s that sent no complete request within "
		         "%u s (slow or stalled clients)",
		         h->expired, h->expired == 1 ? "" : "s", ADMIN_HTTP_REQUEST_SECS);
		h->expired = 0;
	}
}

static void *serve(void *arg)
{
	struct admin_http *h = arg;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	struct pollfd pf[2] = {{.fd = di ? di->epoll_fd : -1, .events = POLLIN},
	                       {.fd = h->wake_fd, .events = POLLIN}};

	while (!atomic_load(&h->stop)) {
		MHD_UNSIGNED_LONG_LONG mhd_ms;
		int ms = ADMIN_HTTP_SWEEP_MS;
		if (MHD_get_timeout(h->d, &mhd_ms) == MHD_YES &&
		    mhd_ms < (MHD_UNSIGNED_LONG_LONG)ms)
			ms = (int)mhd_ms;
		if (poll(pf, 2, ms) < 0 && errno != EINTR) {
			log_error("admin http: poll: %s; the admin HTTP server stops",
			          strerror(errno));
			break;
		}
		if (atomic_load(&h->stop))
			break;
		MHD_run(h->d);
		sweep(h);
	}
	return NULL;
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *resp, const char *content_type)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO; /* MHD closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "Content-Security-Policy", ADMIN_HTTP_CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The request a handler is answering on this (MHD's) thread, for
 * admin_http_has_arg(); NULL outside a handler. */
static __thread struct MHD_Connection *current;

struct arg_find {
	const char *name;
	bool found;
};

static enum MHD_Result arg_seen(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
	struct arg_find *f = cls;
	(void)kind, (void)value;
	if (key && !strcmp(key, f->name)) {
		f->found = true;
		return MHD_NO; /* stop iterating */
	}
	return MHD_YES;
}

bool admin_http_has_arg(const char *name)
{
	struct arg_find f = {.name = name};

	/* iterated, not looked up: "?verbose" has no value, and a lookup cannot
	 * tell that from a missing argument */
	if (current)
		MHD_get_connection_values(current, MHD_GET_ARGUMENT_KIND, arg_seen, &f);
	return f.found;
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
	current = conn;
	status = h->fn(h->ctx, url, &body, &content_type);
	current = NULL;
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
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	/* epoll, not select(): in a proxy holding thousands of client sockets
	 * the listen fd may well be above FD_SETSIZE. No internal thread: serve()
	 * runs MHD, see the top of the file. */
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
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, ADMIN_HTTP_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
	    ADMIN_HTTP_IDLE_SECS, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
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
		snprintf(err, errlen, "admin_address %s: not host:port (IPv6 as \"[::1]:8432\")",
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
	atomic_init(&h->stop, false);
	h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->wake_fd < 0) {
		snprintf(err, errlen, "admin_address %s: eventfd: %s", addr, strerror(errno));
		freeaddrinfo(res);
		free(h);
		return NULL;
	}
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
	if (h->d) {
		int e = pthread_create(&h->thread, NULL, serve, h);
		if (e == 0) {
			h->thread_started = true;
			return h;
		}
		snprintf(err, errlen, "admin_address %s: cannot start the HTTP thread: %s", addr,
		         strerror(e));
		MHD_stop_daemon(h->d);
		close(h->wake_fd);
		free(h);
		return NULL;
	}
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
	close(h->wake_fd);
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
	if (h->thread_started) {
		uint64_t one = 1;
		atomic_store(&h->stop, true);
		/* should the write fail, the loop wakes within ADMIN_HTTP_SWEEP_MS */
		(void)!write(h->wake_fd, &one, sizeof(one));
		pthread_join(h->thread, NULL);
	}
	MHD_stop_daemon(h->d); /* closes what is open: on_connection frees it */
	close(h->wake_fd);
	free(h);
}
