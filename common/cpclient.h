/*
 * One request to a control plane, as helioctl makes it: used by the data
 * plane's admin console (RELOAD, PAUSE, RESUME) and by SIGHUP handling.
 */
#ifndef HELIOS_CPCLIENT_H
#define HELIOS_CPCLIENT_H

#include "common/cpauth.h"
#include "proto/helios.pb-c.h"

#include <stddef.h>

/* Sends CtlRequest{verb, args} to url, with auth's token and TLS files (NULL
 * = none), and waits up to timeout_ms. Returns 0
 * with *resp (free with helios__ctl_response__free_unpacked(r, NULL)), or
 * -1 with a reason in err when the control plane cannot be reached or
 * answers nonsense. */
int cpclient_call(const char *url, const struct cpauth *auth, const char *verb, char *const *args,
                  size_t nargs, int timeout_ms, Helios__CtlResponse **resp, char *err,
                  size_t errlen);

#endif
