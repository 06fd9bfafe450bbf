/*
 * A circuit breaker per node (by index in the configuration): connection
 * failures and server crashes count, SQL errors do not. At
 * circuit_breaker.failure_threshold consecutive failures it opens and the
 * node gets no traffic; after recovery_timeout_secs one connection is let
 * through (half-open); its success closes the breaker, its failure opens it
 * again. Lock-free: a few atomics per node. One log line per transition.
 */
#ifndef HELIOS_BREAKER_H
#define HELIOS_BREAKER_H

#include <stdbool.h>

#define BREAKER_MAX_NODES 64

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct cfg;

/* May a new server connection to node i be opened now? Claims the single
 * half-open probe when the recovery time has passed. */
bool breaker_allow(const struct cfg *c, int i);
/* Whether node i can take traffic at all (closed, or due for a probe);
 * does not claim anything. */
bool breaker_usable(const struct cfg *c, int i);
void breaker_failure(const struct cfg *c, int i, const char *why);
void breaker_success(const struct cfg *c, int i);
enum breaker_state breaker_state(int i);
const char *breaker_state_str(enum breaker_state s);

#endif
