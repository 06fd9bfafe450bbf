/*
 * Statement rewriting, a PIPE_AT_MSG stage ([[rewrite_rules]], a tenant's
 * schema_prefix): the text of a Query or a Parse is rewritten (by
 * pipeline/engine/rewrite) before anything else looks at it, so the rate
 * limit, the cache, the router and the server all see the new text. The
 * new message goes to r->replace; conn/ puts it in place of the old one.
 * A failure leaves the statement as written.
 */
#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/pg/pgw.h"
#include "dataplane/pipeline/engine/rewrite.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"
#include "dataplane/policy/tenant.h"

#include <stdlib.h>
#include <string.h>

static bool rewrite_on(const struct cfg *c)
{
	if (c->n_rewrite_rules)
		return true;
	for (size_t i = 0; i < c->n_tenants; i++)
		if (c->tenants[i].schema_prefix[0])
			return true;
	return false;
}

/* rules, or this client's tenant has a schema_prefix; transaction and
 * statement pooling only (docs/rewriting.md) */
static bool rewrite_applies(const struct req *r)
{
	if (r->mode != PIPE_MODE_TXN && r->mode != PIPE_MODE_STMT)
		return false;
	return r->snap->rewrite || tenant_schema(r->tenant_cfg)[0];
}

static enum pipe_verdict rewrite_run(struct req *r, union pipe_slot *slot)
{
	(void)slot;
	uint8_t t = r->type;
	if ((t != 'Q' && t != 'P') || !r->whole || r->again || r->msg_len < 5)
		return PIPE_CONTINUE;
	const uint8_t *body = r->msg + 5;
	uint32_t blen = r->msg_len - 5, name_len = 0;
	const uint8_t *z = t == 'P' ? memchr(body, '\0', blen) : NULL;
	if (t == 'P' && z)
		name_len = (uint32_t)(z - body) + 1;
	const char *sql = (const char *)body + name_len;
	const char *end = (t == 'Q' || z) ? memchr(sql, '\0', blen - name_len) : NULL;
	if (!end)
		return PIPE_CONTINUE;
	const char *schema = tenant_schema(r->tenant_cfg);
	char *out = NULL, why[300] = "";
	enum rw_status st =
	    rw_rewrite(r->snap->rewrite, schema[0] ? schema : NULL, sql, &out, why, sizeof(why));
	if (st == RW_FAILED)
		log_info("client %llu: statement sent as written; rewriting failed: %s",
		         (unsigned long long)r->client_id, why);
	if (st == RW_REWRITTEN && out) {
		/* the name (Parse), the new text, then what followed the old one:
		 * its NUL and, for Parse, the parameter types */
		r->replace = req_with_sql(r, name_len, sql, end, out, strlen(out), &r->replace_len);
		log_debug("client %llu: rewritten: %s", (unsigned long long)r->client_id, out);
	}
	free(out);
	return PIPE_CONTINUE;
}

const struct pipe_stage stage_rewrite = {
    .name = "rewrite",
    .point = PIPE_AT_MSG,
    .slot = PIPE_SLOT_REWRITE,
    .order = 10,
    .enabled = rewrite_on,
    .applies = rewrite_applies,
    .run = rewrite_run,
    .replaces = true,
};
