/*
 * Logging sink: one write(2) per line so lines from different worker
 * threads never interleave mid-line.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_INFO;

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

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
	                      log_level_str(level));
	va_start(ap, fmt);
	int w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (w < 0)
		w = 0;
	n += (size_t)w;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}
