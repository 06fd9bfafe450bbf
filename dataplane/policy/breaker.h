/*
 * A circuit breaker per node (by index in the configuration): node-level
 * failures count (connect failures and timeouts, a login refused because
 * the node is starting up, shutting down or recovering, a server lost
 * without a word or with a crash/shutdown SQLSTATE), never SQL errors, a
 * single terminated backend or a client's protocol error. At
 * circuit_breaker.failure_threshold consecutive failures it opens and the
 * node gets no traffic; after recovery_timeout_secs one request is let
 * through (half-open). Any success of the node (a login, a ReadyForQuery)
 * resets the count and closes the breaker, whatever state it is in; a
 * failure while half-open opens it again. Lock-free: a few atomics per
 * node. One log line per transition.
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
/* The node answered: closes the breaker and resets the failure count. */
void breaker_success(const struct cfg *c, int i);
/* Whether breaker_success(i) would change anything (a failure counted or
 * the breaker not closed): two relaxed loads, for callers on a per
 * transaction path that skip the rest when nothing is to be done. */
bool breaker_needs_success(int i);
/* Is a server's FATAL ErrorResponse (SQLSTATE code, NULL or "" when the
 * server closed without one) a failure of the node rather than of that
 * one backend? Crash (57P02) and cannot-connect-now (57P03: starting up,
 * shutting down, recovering) are; a terminated backend (57P01), idle
 * timeouts, a protocol error or a dropped database are not; a silent close
 * is (a crash or a lost network). */
bool breaker_fatal_is_node_failure(const char *sqlstate);
/* Tests: back to closed with no failures. */
void breaker_reset(int i);
enum breaker_state breaker_state(int i);
const char *breaker_state_str(enum breaker_state s);

#endif
