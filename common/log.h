/*
 * Logging for all three programs. The macros test the level before any
 * formatting happens, so a disabled debug line costs one compare.
 * Lines go to stderr as "time level [component] message".
 */
#ifndef HELIOS_LOG_H
#define HELIOS_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_current_level;

/* Sets the level from "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_set_level_str(const char *name);
const char *log_level_str(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((int)(lvl) <= (int)__atomic_load_n(&log_current_level, __ATOMIC_RELAXED))      \
			log_write((lvl), __VA_ARGS__);                                             \
	} while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
