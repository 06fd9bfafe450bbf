/* syslog(3) for common/log.c; see log_syslog.c for why it is apart. */
#ifndef HELIOS_LOG_SYSLOG_H
#define HELIOS_LOG_SYSLOG_H

/* The LOG_* facility value of "daemon", "user", "local0".."local7", or -EINVAL. */
int log_syslog_facility(const char *name);
void log_syslog_open(const char *ident, int facility);
void log_syslog_close(void);
/* level: enum log_level */
void log_syslog_send(int level, const char *msg);

#endif
