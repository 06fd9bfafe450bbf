/*
 * The syslog(3) side of common/log.c, in its own file because <syslog.h>
 * defines LOG_INFO and LOG_DEBUG as macros that clash with log.h's enum.
 */
#include "common/log_syslog.h"

#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <syslog.h>

static const struct {
	const char *name;
	int value;
} facilities[] = {
    {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

/* openlog() keeps the ident pointer: it must outlive every syslog() call */
static char ident_buf[64];

int log_syslog_facility(const char *name)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (!strcmp(name, facilities[i].name))
			return facilities[i].value;
	return -EINVAL;
}

void log_syslog_open(const char *ident, int facility)
{
	closelog();
	snprintf(ident_buf, sizeof(ident_buf), "%s", ident);
	openlog(ident_buf, LOG_PID | LOG_NDELAY, facility);
}

void log_syslog_close(void)
{
	closelog();
}

void log_syslog_send(int level, const char *msg)
{
	/* log.h order: error, warn, info, debug */
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	syslog(prio[level < 0 || level > 3 ? 2 : level], "%s", msg);
}
