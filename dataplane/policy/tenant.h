/*
 * Tenants and rate limits (docs/tenants.md). A client is mapped to at most
 * one [[tenants]] entry when it logs in (by database, user or the startup
 * setting helios.tenant); the tenant decides which databases it may use,
 * caps its client and server connections, and may rate-limit its queries.
 * Token buckets (per user or global, per database, per tenant) are shared
 * by every worker and checked once per query by the rate-limit stage
 * (pipeline/stage_rate.c; every pooling mode but a session spliced in the
 * kernel). Names no connection: callers pass who the client is.
 */
#ifndef HELIOS_TENANT_H
#define HELIOS_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/helios.pb-c.h"

struct cfg;
struct cfg_tenant;

/* Live state of one tenant id, kept for the process's life. */
struct tenant_state;

/* After authentication: finds the tenant of user on database under c
 * (startup_tenant: the client's helios.tenant startup setting, NULL when
 * not given) and checks its rules. 0 = go on (*ts and *tc set, NULL
 * without a tenant); otherwise the client must be closed with *sqlstate
 * and msg ("28000": not its database / no tenant; "53300": its connection
 * cap). */
int tenant_login(const struct cfg *c, const char *user, const char *database,
                 const char *startup_tenant, struct tenant_state **ts, const struct cfg_tenant **tc,
                 const char **sqlstate, char *msg, size_t msglen);
/* A client of ts leaves: its tenant's count goes down (ts may be NULL). */
void tenant_logout(struct tenant_state *ts);
const char *tenant_id(const struct tenant_state *t);
/* The tenant's cap on its server connections per pool (0 = none; t may be
 * NULL). */
int tenant_server_cap(const struct cfg_tenant *t);
/* Its schema_prefix, "" when none (t may be NULL). */
const char *tenant_schema(const struct cfg_tenant *t);

enum rate_verdict {
	RATE_OK,     /* a token was taken from every bucket that applies */
	RATE_WAIT,   /* throttle: the tokens are reserved; run the query in *wait_ns */
	RATE_REJECT, /* refuse the query: msg names the limit (SQLSTATE 53400) */
};
/* Whose query it is, for the buckets. */
struct rate_who {
	const struct cfg *cfg; /* the client's config */
	const char *user, *database;
	struct tenant_state *tenant;         /* NULL: none */
	const struct cfg_tenant *tenant_cfg; /* its entry in cfg (NULL with tenant) */
};
/* One query at now_ns. A throttled query reserves its tokens (buckets may
 * go into debt), so waiters run in arrival order; one whose wait would
 * pass max_wait_ms is rejected instead. waited_ns is unused (kept 0). */
enum rate_verdict rate_take(const struct rate_who *who, uint64_t now_ns, uint64_t waited_ns,
                            uint64_t *wait_ns, char *msg, size_t msglen);
bool rate_enabled(const struct cfg *c);

/* The control plane's share for this data plane of a tenant's cluster-wide
 * limits (< 0: none pushed: the whole limit applies here). */
void tenant_set_share(const char *id, double conns, double qps);

/* For the stats report: the tenants' usage and the buckets' counters. */
Helios__TenantStats **tenant_stats(size_t *n);
Helios__RateBucket **rate_bucket_stats(size_t *n);

#endif
