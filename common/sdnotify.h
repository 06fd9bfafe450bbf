/*
 * systemd readiness (sd_notify, Type=notify units in deploy/systemd/): the
 * daemons say when they accept connections, when a SIGHUP reload starts and
 * ends, and when they stop. Without $NOTIFY_SOCKET (not started by systemd)
 * every call does nothing.
 */
#ifndef HELIOS_SDNOTIFY_H
#define HELIOS_SDNOTIFY_H

/* READY=1 with a STATUS= line; also ends a reload started by sdn_reloading. */
void sdn_ready(const char *status);
/* RELOADING=1 (and MONOTONIC_USEC=, which systemd >= 253 wants) */
void sdn_reloading(void);
/* STOPPING=1 with a STATUS= line */
void sdn_stopping(const char *status);

#endif
