/*
 * Logging sink: one write(2) per line so lines from different worker
 * threads never interleave mid-line. The format, the connection switches
 * and syslog are atomics read per line: no lock on the hot path.
 */
#include "common/log.h"

#include "common/cfg.h"
#include "common/log_syslog.h"
#include "common/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_INFO;
bool log_connections_on, log_disconnections_on;
static enum log_format cur_format = LOG_FORMAT_TEXT;
static bool syslog_on;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *log_level_str(enum log_level level)
{
	if ((unsigned)level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

int log_set_level_str(const char *name)
{
	for (unsigned i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			__atomic_store_n(&log_current_level, (enum log_level)i, __ATOMIC_RELAXED);
			return 0;
		}
	}
	return -EINVAL;
}

void log_set_format(enum log_format f)
{
	__atomic_store_n(&cur_format, f, __ATOMIC_RELAXED);
}

int log_set_format_str(const char *name)
{
	if (!strcmp(name, "text"))
		log_set_format(LOG_FORMAT_TEXT);
	else if (!strcmp(name, "json"))
		log_set_format(LOG_FORMAT_JSON);
	else
		return -EINVAL;
	return 0;
}

int log_set_syslog(bool on, const char *ident, const char *facility)
{
	if (!on) {
		if (__atomic_exchange_n(&syslog_on, false, __ATOMIC_RELAXED))
			log_syslog_close();
		return 0;
	}
	int fac = log_syslog_facility(facility && facility[0] ? facility : "daemon");
	if (fac < 0)
		return fac;
	/* glibc's openlog() and syslog() share a lock: a worker's line in
	 * flight meanwhile goes to the old or the new ident */
	log_syslog_open(ident && ident[0] ? ident : "heliosproxy", fac);
	__atomic_store_n(&syslog_on, true, __ATOMIC_RELAXED);
	return 0;
}

void log_apply_cfg(const struct cfg *c)
{
	log_set_level_str(c->log_level);
	log_set_format(c->log_format == 1 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
	__atomic_store_n(&log_connections_on, c->log_connections, __ATOMIC_RELAXED);
	__atomic_store_n(&log_disconnections_on, c->log_disconnections, __ATOMIC_RELAXED);
	log_set_syslog(c->syslog, c->syslog_ident, c->syslog_facility);
}

size_t log_json_escape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	if (!cap)
		return 0;
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	while (*s) {
		char esc[8];
		const char *out = esc;
		size_t len, adv = 1;
		unsigned char c = *s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			len = 2;
		} else if (c == '\n') {
			out = "\\n", len = 2;
		} else if (c == '\r') {
			out = "\\r", len = 2;
		} else if (c == '\t') {
			out = "\\t", len = 2;
		} else if (c < 0x20 || c == 0x7f) {
			len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else if (c < 0x80) {
			esc[0] = (char)c;
			len = 1;
		} else if ((adv = utf8_seq(s, strnlen((const char *)s, 4))) > 0) {
			out = (const char *)s;
			len = adv;
		} else {
			out = "\\ufffd", len = 6, adv = 1;
		}
		if (n + len >= cap)
			break; /* whole escapes and characters only */
		memcpy(dst + n, out, len);
		n += len;
		s += adv;
	}
	dst[n] = '\0';
	return n;
}

/* Appends "key":"escaped" to buf; returns the new length. */
static size_t json_field(char *buf, size_t n, size_t cap, const char *key, const char *val)
{
	if (n + strlen(key) + 8 >= cap)
		return n;
	n += (size_t)snprintf(buf + n, cap - n, ",\"%s\":\"", key);
	n += log_json_escape(buf + n, cap - n - 2, val);
	buf[n++] = '"';
	buf[n] = '\0';
	return n;
}

void log_vevent(enum log_level level, const char *event, const struct log_ctx *ctx, const char *fmt,
                va_list ap)
{
	char msg[2048], line[8192], ts_buf[40];
	struct timespec ts;
	struct tm tm;
	size_t n;

	int w = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (w < 0)
		msg[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(ts_buf, sizeof(ts_buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts_buf + n, sizeof(ts_buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	if (__atomic_load_n(&cur_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON) {
		if (!event)
			event = level == LOG_ERROR ? "error" : "log";
		n = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\"",
		                     ts_buf, log_level_str(level));
		n = json_field(line, n, sizeof(line), "event", event);
		if (ctx && ctx->client_id)
			n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"client_id\":%llu",
			                      (unsigned long long)ctx->client_id);
		if (ctx && ctx->user && ctx->user[0])
			n = json_field(line, n, sizeof(line), "user", ctx->user);
		if (ctx && ctx->database && ctx->database[0])
			n = json_field(line, n, sizeof(line), "database", ctx->database);
		if (ctx && ctx->address && ctx->address[0])
			n = json_field(line, n, sizeof(line), "address", ctx->address);
		/* room for the closing "} and newline is kept by json_field's cap */
		n = json_field(line, n, sizeof(line) - 2, "message", msg);
		line[n++] = '}';
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s %-5s ", ts_buf, log_level_str(level));
		/* a newline in a client's user name must not start a forged line:
		 * control characters are written as \n, \r or \xNN */
		for (const unsigned char *p = (const unsigned char *)msg;
		     *p && n < sizeof(line) - 6; p++) {
			if (*p == '\n' || *p == '\r') {
				line[n++] = '\\';
				line[n++] = *p == '\n' ? 'n' : 'r';
			} else if (*p < 0x20 && *p != '\t') {
				n += (size_t)snprintf(line + n, 5, "\\x%02x", *p);
			} else {
				line[n++] = (char)*p;
			}
		}
	}
	line[n++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
	if (__atomic_load_n(&syslog_on, __ATOMIC_RELAXED))
		log_syslog_send((int)level, msg); /* syslog adds its own time and priority */
}

void log_event(enum log_level level, const char *event, const struct log_ctx *ctx, const char *fmt,
               ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vevent(level, event, ctx, fmt, ap);
	va_end(ap);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vevent(level, NULL, NULL, fmt, ap);
	va_end(ap);
}
