/*
 * Logging for all three programs. The macros test the level before any
 * formatting happens, so a disabled debug line costs one compare.
 * Lines go to stderr as "time level message" (log_format = "text") or as
 * one JSON object per line (log_format = "json"), and optionally to
 * syslog(3) too.
 */
#ifndef HELIOS_LOG_H
#define HELIOS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };

extern enum log_level log_current_level;
/* log_connections / log_disconnections (atomic; read on connect/close) */
extern bool log_connections_on, log_disconnections_on;

/* Who a line is about; any field may be 0/NULL (left out of JSON). */
struct log_ctx {
	uint64_t client_id;
	const char *user;
	const char *database;
	const char *address;
};

/* Sets the level from "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_set_level_str(const char *name);
const char *log_level_str(enum log_level level);
/* "text" | "json"; returns 0 or -EINVAL. */
int log_set_format_str(const char *name);
void log_set_format(enum log_format f);
/* Turns copying lines to syslog(3) on or off; facility as syslog.conf
 * names it ("daemon", "local0".."local7", "user"); returns 0 or -EINVAL. */
int log_set_syslog(bool on, const char *ident, const char *facility);

struct cfg;
/* Applies a config's log_level, log_format, log_connections,
 * log_disconnections and syslog keys (start and every reload). */
void log_apply_cfg(const struct cfg *c);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line with a stable event name ("client_connect", ...) and context. */
void log_event(enum log_level level, const char *event, const struct log_ctx *ctx, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));
void log_vevent(enum log_level level, const char *event, const struct log_ctx *ctx, const char *fmt,
                va_list ap) __attribute__((format(printf, 4, 0)));

/*
 * Writes src as the inside of a JSON string into dst (cap bytes, always
 * NUL-terminated): quotes, backslashes and control characters escaped,
 * bytes that are not valid UTF-8 replaced by \ufffd. Never splits an
 * escape when it truncates. Returns the length written.
 */
size_t log_json_escape(char *dst, size_t cap, const char *src);

#define log_at(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((int)(lvl) <= (int)__atomic_load_n(&log_current_level, __ATOMIC_RELAXED))      \
			log_write((lvl), __VA_ARGS__);                                             \
	} while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_ev(lvl, ev, ctx, ...)                                                                  \
	do {                                                                                       \
		if ((int)(lvl) <= (int)__atomic_load_n(&log_current_level, __ATOMIC_RELAXED))      \
			log_event((lvl), (ev), (ctx), __VA_ARGS__);                                \
	} while (0)

#endif
