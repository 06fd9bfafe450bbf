/*
 * Rate limits, a PIPE_AT_MSG stage: at the message that starts a request
 * (a Query, a function call, the first message of an extended batch) one
 * token from every bucket that applies (policy/tenant.c). Short of one:
 * throttled (PARK until the tokens are due; they are reserved, so the
 * request runs when woken without taking again) or refused (ERROR 53400:
 * rate_limit.mode = reject, or the wait would pass max_wait_ms).
 * Its slot holds the request it took tokens for (req_seq + 1).
 */
#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"

static bool rate_on(const struct cfg *c)
{
	return rate_enabled(c);
}

static enum pipe_verdict rate_run(struct req *r, union pipe_slot *slot)
{
	if (!r->starts || slot->u == r->pc->req_seq + 1)
		return PIPE_CONTINUE; /* not a request's start, or its tokens are taken */
	struct rate_who who = {
	    .cfg = r->snap->cfg,
	    .user = r->user,
	    .database = r->database,
	    .tenant = r->tenant,
	    .tenant_cfg = r->tenant_cfg,
	};
	uint64_t wait = 0;
	char msg[300];
	enum rate_verdict v = rate_take(&who, r->now_ns, 0, &wait, msg, sizeof(msg));
	if (v == RATE_REJECT) {
		log_debug("client %llu: %s", (unsigned long long)r->client_id, msg);
		return req_error(r, "53400",
		                 "Slow down, or ask for a higher limit ([rate_limit], "
		                 "tenants.rate_limit).",
		                 "%s", msg);
	}
	slot->u = r->pc->req_seq + 1;
	if (v == RATE_WAIT)
		return req_park_until(r, r->now_ns + wait); /* its tokens are reserved */
	return PIPE_CONTINUE;
}

const struct pipe_stage stage_rate = {
    .name = "rate_limit",
    .point = PIPE_AT_MSG,
    .slot = PIPE_SLOT_RATE,
    .order = 20,
    .enabled = rate_on,
    .run = rate_run,
};
