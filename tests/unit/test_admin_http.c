/*
 * Unit tests for common/admin_http: a server on 127.0.0.1:0 queried with a
 * plain-socket HTTP/1.0 client (status, headers, body, HEAD, 405 for other
 * methods without calling the handler, a large body, bad handler status),
 * a second server on the same port failing with the address in the
 * message, bad addresses, IPv6 where the host has it, and stop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/admin_http.h"

#define BIG_LEN (1u << 20)

static atomic_int calls;

static int handler(void *ctx, const char *url, struct sbuf *body, const char **content_type)
{
	atomic_fetch_add(&calls, 1);
	if (strcmp(url, "/hello") == 0) {
		sbuf_printf(body, "hello from %s\n", (const char *)ctx);
		*content_type = "text/plain; version=0.0.4; charset=utf-8";
		return 200;
	}
	if (strcmp(url, "/json") == 0) {
		sbuf_puts(body, "{\"ok\":true}\n");
		*content_type = "application/json";
		return 200;
	}
	if (strcmp(url, "/big") == 0) {
		for (size_t i = 0; i < BIG_LEN; i++)
			sbuf_putc(body, (char)('a' + i % 26));
		return 200;
	}
	if (strcmp(url, "/bogus") == 0)
		return 42;
	sbuf_puts(body, "not found\n");
	return 404;
}

struct reply {
	int status;
	char *raw; /* whole response, NUL-terminated */
	size_t len;
	const char *body;
	size_t body_len;
};

static void reply_free(struct reply *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

/* A connected socket to the server, or -1 with errno. */
static int connect_to(int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		slen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_loopback;
		slen = sizeof(*sin6);
	}
	/* A hung server fails the test instead of hanging it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, slen) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Sends request as is and reads the reply until the server closes
 * (HTTP/1.0 without keep-alive). */
static struct reply http(int family, int port, const char *request)
{
	struct reply r = {0};
	size_t cap = 4096;
	ssize_t n;
	int fd = connect_to(family, port);

	if (fd < 0)
		fail_msg("connect to port %d: %s", port, strerror(errno));
	assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
	r.raw = malloc(cap);
	assert_non_null(r.raw);
	for (;;) {
		if (r.len + 1 >= cap) {
			cap *= 2;
			r.raw = realloc(r.raw, cap);
			assert_non_null(r.raw);
		}
		n = read(fd, r.raw + r.len, cap - r.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail_msg("read: %s", strerror(errno));
		if (n == 0)
			break;
		r.len += (size_t)n;
	}
	close(fd);
	r.raw[r.len] = '\0';
	assert_int_equal(sscanf(r.raw, "HTTP/1.%*d %d", &r.status), 1);
	r.body = strstr(r.raw, "\r\n\r\n");
	assert_non_null(r.body);
	r.body += 4;
	r.body_len = r.len - (size_t)(r.body - r.raw);
	return r;
}

/* Value of a response header (case-insensitive name), copied to buf;
 * NULL when absent. */
static const char *header(const struct reply *r, const char *name, char *buf, size_t cap)
{
	size_t nlen = strlen(name);

	for (const char *line = strstr(r->raw, "\r\n"); line && line + 2 < r->body;
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
			h += nlen + 1;
			h += strspn(h, " ");
			snprintf(buf, cap, "%.*s", (int)strcspn(h, "\r"), h);
			return buf;
		}
	}
	return NULL;
}

static void test_get(void **state)
{
	char err[256], buf[128];
	struct admin_http *h = admin_http_start("127.0.0.1:0", handler, "test", err, sizeof(err));
	struct reply r;
	int port;

	if (!h)
		fail_msg("start: %s", err);
	port = admin_http_port(h);
	assert_true(port > 0 && port < 65536);

	r = http(AF_INET, port, "GET /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, strlen("hello from test\n"));
	assert_memory_equal(r.body, "hello from test\n", r.body_len);
	assert_string_equal(header(&r, "Content-Type", buf, sizeof(buf)),
	                    "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(header(&r, "Content-Length", buf, sizeof(buf)), "16");
	reply_free(&r);

	r = http(AF_INET, port, "GET /json?x=1 HTTP/1.0\r\n\r\n"); /* query not in url */
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"ok\":true}\n");
	assert_string_equal(header(&r, "Content-Type", buf, sizeof(buf)), "application/json");
	reply_free(&r);

	r = http(AF_INET, port, "GET /nothing HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "not found\n");
	assert_string_equal(header(&r, "Content-Type", buf, sizeof(buf)),
	                    "text/plain; charset=utf-8");
	reply_free(&r);

	/* HEAD: the length of what GET would send, and no body. */
	r = http(AF_INET, port, "HEAD /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	assert_string_equal(header(&r, "Content-Length", buf, sizeof(buf)), "16");
	reply_free(&r);

	/* A status a handler must not return becomes a 500. */
	r = http(AF_INET, port, "GET /bogus HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 500);
	reply_free(&r);

	/* A body far larger than any socket buffer arrives whole. */
	r = http(AF_INET, port, "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, BIG_LEN);
	for (size_t i = 0; i < BIG_LEN; i += 4099)
		assert_int_equal(r.body[i], 'a' + i % 26);
	reply_free(&r);

	admin_http_stop(h);
	/* Stopped: nobody listens on the port any more. */
	assert_int_equal(connect_to(AF_INET, port), -1);
	assert_int_equal(errno, ECONNREFUSED);
}

static void test_method_not_allowed(void **state)
{
	char err[256], buf[128];
	struct admin_http *h = admin_http_start("127.0.0.1:0", handler, "test", err, sizeof(err));
	struct reply r;
	int before;

	if (!h)
		fail_msg("start: %s", err);
	before = atomic_load(&calls);
	r = http(AF_INET, admin_http_port(h), "POST /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 405);
	assert_string_equal(header(&r, "Allow", buf, sizeof(buf)), "GET, HEAD");
	reply_free(&r);
	r = http(
	    AF_INET, admin_http_port(h),
	    "POST /hello HTTP/1.0\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nabcde");
	assert_int_equal(r.status, 405);
	reply_free(&r);
	r = http(AF_INET, admin_http_port(h), "DELETE /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 405);
	reply_free(&r);
	assert_int_equal(atomic_load(&calls), before); /* the handler never ran */
	admin_http_stop(h);
}

static void test_port_in_use(void **state)
{
	char err[256], addr[64];
	struct admin_http *h = admin_http_start("127.0.0.1:0", handler, "test", err, sizeof(err));
	struct admin_http *h2;

	if (!h)
		fail_msg("start: %s", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", admin_http_port(h));
	h2 = admin_http_start(addr, handler, "second", err, sizeof(err));
	assert_null(h2);
	char want[128];
	snprintf(want, sizeof(want), "admin_address %s: Address already in use", addr);
	assert_string_equal(err, want);
	admin_http_stop(h);

	/* Freed again, the port can be taken at once (SO_REUSEADDR). */
	h2 = admin_http_start(addr, handler, "third", err, sizeof(err));
	if (!h2)
		fail_msg("restart on %s: %s", addr, err);
	admin_http_stop(h2);
}

static void test_bad_addresses(void **state)
{
	char err[256];

	assert_null(admin_http_start("nonsense", handler, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "admin_address nonsense: "));
	assert_null(admin_http_start("127.0.0.1:99999", handler, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "admin_address 127.0.0.1:99999: "));
	assert_null(admin_http_start("no-such-host.invalid:9090", handler, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "admin_address no-such-host.invalid:9090: "));
	admin_http_stop(NULL);
	assert_int_equal(admin_http_port(NULL), 0);
}

static void test_ipv6(void **state)
{
	char err[256];
	struct admin_http *h;
	struct reply r;
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	/* Containers often run without IPv6. */
	if (probe < 0 || bind(probe, (struct sockaddr *)&sin6, sizeof(sin6)) < 0) {
		if (probe >= 0)
			close(probe);
		skip();
	}
	close(probe);
	h = admin_http_start("[::1]:0", handler, "v6", err, sizeof(err));
	if (!h)
		fail_msg("start: %s", err);
	r = http(AF_INET6, admin_http_port(h), "GET /hello HTTP/1.0\r\n\r\n");
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello from v6\n");
	reply_free(&r);
	/* Bound to exactly ::1: nothing on IPv4 loopback. */
	assert_int_equal(connect_to(AF_INET, admin_http_port(h)), -1);
	admin_http_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get),         cmocka_unit_test(test_method_not_allowed),
	    cmocka_unit_test(test_port_in_use), cmocka_unit_test(test_bad_addresses),
	    cmocka_unit_test(test_ipv6),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
