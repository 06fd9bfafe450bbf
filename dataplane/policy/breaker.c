/*
 * Circuit breakers; see breaker.h.
 */
#include "dataplane/policy/breaker.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"

#include <string.h>

static struct {
	int state;          /* enum breaker_state, atomic */
	int failures;       /* consecutive, atomic */
	uint64_t opened_ms; /* when it opened (or the probe started), atomic */
} nodes[BREAKER_MAX_NODES];

static const char *name_of(const struct cfg *c, int i)
{
	return c && i >= 0 && (size_t)i < c->n_nodes ? c->nodes[i].name : "?";
}

const char *breaker_state_str(enum breaker_state s)
{
	return s == BREAKER_OPEN ? "open" : s == BREAKER_HALF_OPEN ? "half-open" : "closed";
}

enum breaker_state breaker_state(int i)
{
	if (i < 0 || i >= BREAKER_MAX_NODES)
		return BREAKER_CLOSED;
	return (enum breaker_state)__atomic_load_n(&nodes[i].state, __ATOMIC_ACQUIRE);
}

static bool recovery_due(const struct cfg *c, int i)
{
	uint64_t since = __atomic_load_n(&nodes[i].opened_ms, __ATOMIC_ACQUIRE);
	return cpwire_mono_ms() - since >=
	       (uint64_t)c->circuit_breaker.recovery_timeout_secs * 1000u;
}

bool breaker_usable(const struct cfg *c, int i)
{
	if (i < 0 || i >= BREAKER_MAX_NODES || c->circuit_breaker.failure_threshold == 0)
		return true;
	enum breaker_state s = breaker_state(i);
	return s == BREAKER_CLOSED || recovery_due(c, i);
}

bool breaker_allow(const struct cfg *c, int i)
{
	if (i < 0 || i >= BREAKER_MAX_NODES || c->circuit_breaker.failure_threshold == 0)
		return true;
	int s = __atomic_load_n(&nodes[i].state, __ATOMIC_ACQUIRE);
	if (s == BREAKER_CLOSED)
		return true;
	if (!recovery_due(c, i))
		return false;
	/* one probe per recovery period: whoever moves the clock wins it (a
	 * probe that never reports back is retried a period later) */
	uint64_t since = __atomic_load_n(&nodes[i].opened_ms, __ATOMIC_ACQUIRE);
	uint64_t now = cpwire_mono_ms();
	if (!__atomic_compare_exchange_n(&nodes[i].opened_ms, &since, now, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE))
		return false;
	if (__atomic_exchange_n(&nodes[i].state, BREAKER_HALF_OPEN, __ATOMIC_ACQ_REL) !=
	    BREAKER_HALF_OPEN)
		log_info("circuit breaker for node %s: half-open, letting one connection through",
		         name_of(c, i));
	return true;
}

void breaker_failure(const struct cfg *c, int i, const char *why)
{
	if (i < 0 || i >= BREAKER_MAX_NODES || !c || c->circuit_breaker.failure_threshold == 0)
		return;
	int n = __atomic_add_fetch(&nodes[i].failures, 1, __ATOMIC_ACQ_REL);
	int s = __atomic_load_n(&nodes[i].state, __ATOMIC_ACQUIRE);
	if (s == BREAKER_HALF_OPEN ||
	    (s == BREAKER_CLOSED && n >= c->circuit_breaker.failure_threshold)) {
		__atomic_store_n(&nodes[i].opened_ms, cpwire_mono_ms(), __ATOMIC_RELEASE);
		if (__atomic_exchange_n(&nodes[i].state, BREAKER_OPEN, __ATOMIC_ACQ_REL) !=
		    BREAKER_OPEN)
			log_warn(
			    "circuit breaker for node %s: open after %d failure%s (last: %s); no "
			    "traffic for %d s",
			    name_of(c, i), n, n == 1 ? "" : "s", why,
			    c->circuit_breaker.recovery_timeout_secs);
	}
}

bool breaker_needs_success(int i)
{
	if (i < 0 || i >= BREAKER_MAX_NODES)
		return false;
	return __atomic_load_n(&nodes[i].failures, __ATOMIC_RELAXED) != 0 ||
	       __atomic_load_n(&nodes[i].state, __ATOMIC_RELAXED) != BREAKER_CLOSED;
}

bool breaker_fatal_is_node_failure(const char *sqlstate)
{
	if (!sqlstate || !sqlstate[0])
		return true; /* closed without a word */
	return !strcmp(sqlstate, "57P02") || !strcmp(sqlstate, "57P03");
}

void breaker_reset(int i)
{
	if (i < 0 || i >= BREAKER_MAX_NODES)
		return;
	__atomic_store_n(&nodes[i].failures, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&nodes[i].state, BREAKER_CLOSED, __ATOMIC_RELEASE);
	__atomic_store_n(&nodes[i].opened_ms, 0, __ATOMIC_RELEASE);
}

void breaker_success(const struct cfg *c, int i)
{
	if (!breaker_needs_success(i))
		return;
	__atomic_store_n(&nodes[i].failures, 0, __ATOMIC_RELEASE);
	if (__atomic_exchange_n(&nodes[i].state, BREAKER_CLOSED, __ATOMIC_ACQ_REL) !=
	    BREAKER_CLOSED)
		log_info("circuit breaker for node %s: closed (the node answered)", name_of(c, i));
}
