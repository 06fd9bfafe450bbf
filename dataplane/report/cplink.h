/*
 * The data plane's link to its control plane (embedded over inproc://, or
 * a helios-cp over ipc:// or tcp://). See cplink.c.
 */
#ifndef HELIOS_CPLINK_H
#define HELIOS_CPLINK_H

#include <stdbool.h>
#include <stddef.h>

/* Starts the link thread; it dials url in the background. */
int cplink_start(const char *url, bool external, char *err, size_t errlen);
/* Waits until the first snapshot from the control plane is applied. */
bool cplink_wait_first(int timeout_ms);
const char *cplink_url(void);
void cplink_stop(void);

#endif
