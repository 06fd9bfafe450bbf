/*
 * sd_notify wrappers. Failures are not errors: a proxy that cannot tell
 * systemd it is ready still serves (systemd then times the start out and
 * says why), so the result is only logged at debug level.
 */
#include "common/sdnotify.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static void notify(const char *what, const char *status)
{
	int r = status ? sd_notifyf(0, "%s\nSTATUS=%s", what, status) : sd_notify(0, what);
	if (r < 0)
		log_debug("sd_notify %s: %s", what, strerror(-r));
}

void sdn_ready(const char *status)
{
	notify("READY=1", status);
}

void sdn_reloading(void)
{
	struct timespec ts;
	char buf[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)ts.tv_sec * 1000000ULL +
	             (unsigned long long)ts.tv_nsec / 1000);
	notify(buf, "reloading the configuration");
}

void sdn_stopping(const char *status)
{
	notify("STOPPING=1", status);
}
