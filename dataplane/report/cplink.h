/*
 * The data plane's link to its control plane (embedded over inproc://, or
 * a helios-cp over ipc://, tcp:// or tls+tcp://). See cplink.c.
 */
#ifndef HELIOS_CPLINK_H
#define HELIOS_CPLINK_H

#include "common/cpauth.h"

#include <stdbool.h>
#include <stddef.h>

/* Starts the link thread; it dials url in the background, presenting auth
 * (copied; NULL = no token, no TLS files). */
int cplink_start(const char *url, bool external, const struct cpauth *auth, char *err,
                 size_t errlen);
/* What the link presents: for other requests to the same control plane
 * (SIGHUP reload, the admin console). */
const struct cpauth *cplink_auth(void);
/* Waits until the first snapshot from the control plane is applied. */
bool cplink_wait_first(int timeout_ms);
const char *cplink_url(void);
void cplink_stop(void);

#endif
