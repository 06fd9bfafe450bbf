/*
 * Tenants and rate limits (docs/tenants.md). A client is mapped to at most
 * one [[tenants]] entry when it logs in (by database, user or the startup
 * setting helios.tenant); the tenant decides which databases it may use,
 * caps its client and server connections, and may rate-limit its queries.
 * Token buckets (per user or global, per database, per tenant) are shared
 * by every worker and checked once per query in transaction and statement
 * pooling.
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

/* Who is asking, as values (this module knows no connection). */
struct tenant_who {
	const struct cfg *cfg; /* the snapshot the client keeps for its life */
	const char *user;
	const char *database;
	const char *tenant_setting; /* its startup setting helios.tenant, NULL if none */
};

/* A client's tenant: its live state and its [[tenants]] entry in who->cfg
 * (both NULL without one). The caller keeps it for the client's life. */
struct tenant_ref {
	struct tenant_state *state;
	const struct cfg_tenant *cfg;
};

/* After authentication: finds who's tenant and checks its rules. 0 = go on
 * (*out set; NULLs without a tenant); otherwise (*out NULLs) the client
 * must be closed with *sqlstate and msg ("28000": not its database / no
 * tenant; "53300": its connection cap). A success counts one client of the
 * tenant until tenant_logout. */
int tenant_login(const struct tenant_who *who, struct tenant_ref *out, const char **sqlstate,
                 char *msg, size_t msglen);
/* The client leaves: its tenant's count goes down (NULL: none). */
void tenant_logout(struct tenant_state *t);
const char *tenant_id(const struct tenant_state *t);
/* The tenant's cap on its server connections per pool (0 = none; NULL: no
 * tenant). */
int tenant_server_cap(const struct cfg_tenant *t);
/* Its schema_prefix, "" when none. */
const char *tenant_schema(const struct cfg_tenant *t);

enum rate_verdict {
	RATE_OK,     /* a token was taken from every bucket that applies */
	RATE_WAIT,   /* throttle: the tokens are reserved; run the query in *wait_ns */
	RATE_REJECT, /* refuse the query: msg names the limit (SQLSTATE 53400) */
};
/* One query of who (tenant t) at now_ns. A throttled query reserves its
 * tokens (buckets may go into debt), so waiters run in arrival order; one
 * whose wait would pass max_wait_ms is rejected instead. waited_ns is
 * unused (kept 0). */
enum rate_verdict rate_take(const struct tenant_who *who, const struct tenant_ref *t,
                            uint64_t now_ns, uint64_t waited_ns, uint64_t *wait_ns, char *msg,
                            size_t msglen);
bool rate_enabled(const struct cfg *c);

/* The control plane's share for this data plane of a tenant's cluster-wide
 * limits (< 0: none pushed: the whole limit applies here). */
void tenant_set_share(const char *id, double conns, double qps);

/* For the stats report: the tenants' usage (servers left 0: report/ counts
 * them from the pools) and the buckets' counters. */
Helios__TenantStats **tenant_stats(size_t *n);
Helios__RateBucket **rate_bucket_stats(size_t *n);

#endif
