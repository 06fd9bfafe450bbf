/*
 * Tenants and rate limits; see tenant.h.
 */
#include "dataplane/policy/tenant.h"

#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/policy/snap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENANTS 1024
#define MAX_BUCKETS 4096

struct tenant_state {
	char id[64];
	int clients;                                           /* atomic */
	uint64_t queries, throttled, rejected, refused_logins; /* atomic */
};

static pthread_mutex_t ten_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tenant_state *tenants[MAX_TENANTS];
static int n_tenants; /* atomic: published after the pointer */

static struct tenant_state *state_of(const char *id)
{
	int n = __atomic_load_n(&n_tenants, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		if (!strcmp(tenants[i]->id, id))
			return tenants[i];
	pthread_mutex_lock(&ten_mu);
	struct tenant_state *t = NULL;
	for (int i = 0; i < n_tenants; i++)
		if (!strcmp(tenants[i]->id, id))
			t = tenants[i];
	if (!t && n_tenants < MAX_TENANTS && (t = calloc(1, sizeof(*t)))) {
		snprintf(t->id, sizeof(t->id), "%s", id);
		tenants[n_tenants] = t;
		__atomic_store_n(&n_tenants, n_tenants + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&ten_mu);
	return t;
}

/* Cluster-wide limits: the control plane may give this data plane a share
 * of a tenant's connections ('c') or queries per second ('q'). */
#define MAX_SHARES 1024
static struct share {
	char id[64];
	double conns, qps; /* < 0: no share pushed, the whole limit applies */
} shares[MAX_SHARES];
static int n_shares;
static pthread_mutex_t share_mu = PTHREAD_MUTEX_INITIALIZER;

static double quota_share(const char *id, char what, double whole)
{
	double v = whole;
	pthread_mutex_lock(&share_mu);
	for (int i = 0; i < n_shares; i++) {
		if (strcmp(shares[i].id, id))
			continue;
		double s = what == 'c' ? shares[i].conns : shares[i].qps;
		if (s >= 0 && whole > 0)
			v = s < whole ? s : whole;
	}
	pthread_mutex_unlock(&share_mu);
	return v;
}

void tenant_set_share(const char *id, double conns, double qps)
{
	pthread_mutex_lock(&share_mu);
	int i = 0;
	while (i < n_shares && strcmp(shares[i].id, id))
		i++;
	if (i == n_shares && n_shares < MAX_SHARES)
		snprintf(shares[n_shares++].id, sizeof(shares[0].id), "%s", id);
	if (i < n_shares) {
		shares[i].conns = conns;
		shares[i].qps = qps;
	}
	pthread_mutex_unlock(&share_mu);
}

const char *tenant_id(const struct tenant_state *t)
{
	return t ? t->id : "";
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* The [[tenants]] entry of a client under c, or NULL. */
static const struct cfg_tenant *find_tenant(const struct cfg *c, const char *user,
                                            const char *database, const char *startup_tenant)
{
	if (!c->n_tenants)
		return NULL;
	switch (c->tenancy.map_by) {
	case CFG_TENANT_BY_DATABASE:
		for (size_t i = 0; i < c->n_tenants; i++)
			if (in_list(c->tenants[i].databases, c->tenants[i].n_databases, database))
				return &c->tenants[i];
		return NULL;
	case CFG_TENANT_BY_USER:
		for (size_t i = 0; i < c->n_tenants; i++)
			if (in_list(c->tenants[i].users, c->tenants[i].n_users, user))
				return &c->tenants[i];
		return NULL;
	case CFG_TENANT_BY_STARTUP:
		for (size_t i = 0; startup_tenant && i < c->n_tenants; i++)
			if (!strcmp(c->tenants[i].id, startup_tenant))
				return &c->tenants[i];
		return NULL;
	}
	return NULL;
}

int tenant_login(const struct cfg *c, const char *user, const char *database,
                 const char *startup_tenant, struct tenant_state **out_ts,
                 const struct cfg_tenant **out_tc, const char **sqlstate, char *msg, size_t msglen)
{
	*out_ts = NULL;
	*out_tc = NULL;
	if (!c->n_tenants)
		return 0;
	const struct cfg_tenant *t = find_tenant(c, user, database, startup_tenant);
	if (!t) {
		if (c->tenancy.require) {
			*sqlstate = "28000";
			snprintf(
			    msg, msglen,
			    "user \"%s\" on database \"%s\" belongs to no tenant (tenancy.map_by = "
			    "\"%s\", tenancy.require = true)",
			    user, database,
			    c->tenancy.map_by == CFG_TENANT_BY_DATABASE ? "database"
			    : c->tenancy.map_by == CFG_TENANT_BY_USER   ? "user"
			                                                : "startup");
			return -1;
		}
		return 0;
	}
	struct tenant_state *ts = state_of(t->id);
	if (!ts) {
		*sqlstate = "53200";
		snprintf(msg, msglen, "out of memory for tenant \"%s\"", t->id);
		return -1;
	}
	if (t->n_databases && !in_list(t->databases, t->n_databases, database)) {
		__atomic_add_fetch(&ts->refused_logins, 1, __ATOMIC_RELAXED);
		*sqlstate = "28000";
		snprintf(msg, msglen,
		         "tenant \"%s\" may not use database \"%s\" (not in its tenants.databases)",
		         t->id, database);
		return -1;
	}
	int n = __atomic_add_fetch(&ts->clients, 1, __ATOMIC_ACQ_REL);
	int cap = t->max_connections;
	int share = (int)quota_share(t->id, 'c', cap);
	if (cap > 0 && n > share) {
		__atomic_sub_fetch(&ts->clients, 1, __ATOMIC_ACQ_REL);
		__atomic_add_fetch(&ts->refused_logins, 1, __ATOMIC_RELAXED);
		*sqlstate = "53300";
		snprintf(msg, msglen,
		         "too many connections for tenant \"%s\" (tenants.max_connections = %d%s)",
		         t->id, cap, share != cap ? ", this data plane's share of it" : "");
		return -1;
	}
	*out_ts = ts;
	*out_tc = t;
	return 0;
}

void tenant_logout(struct tenant_state *ts)
{
	if (ts)
		__atomic_sub_fetch(&ts->clients, 1, __ATOMIC_ACQ_REL);
}

int tenant_server_cap(const struct cfg_tenant *t)
{
	return t ? t->max_connections : 0;
}

const char *tenant_schema(const struct cfg_tenant *t)
{
	return t ? t->schema_prefix : "";
}

/* ------------------------------------------------------------ token buckets */

struct bucket {
	char name[96];
	double rate, burst;
	double tokens;
	uint64_t last_ns;
	uint64_t allowed, throttled, rejected;
};

static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bucket *buckets[MAX_BUCKETS];
static int n_buckets;

/* Under rate_mu: the bucket named name, created full; rate and burst follow
 * the configuration. */
static struct bucket *bucket(const char name[96], double rate, double burst, uint64_t now)
{
	for (int i = 0; i < n_buckets; i++) {
		struct bucket *b = buckets[i];
		if (!strcmp(b->name, name)) {
			b->rate = rate;
			b->burst = burst;
			if (b->tokens > burst)
				b->tokens = burst;
			return b;
		}
	}
	if (n_buckets == MAX_BUCKETS)
		return NULL;
	struct bucket *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	memcpy(b->name, name, sizeof(b->name));
	b->name[sizeof(b->name) - 1] = '\0';
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->last_ns = now;
	buckets[n_buckets++] = b;
	return b;
}

/* Callers' clocks differ a little (a worker's time of its turn, another
 * worker's, a fresh reading): an older now than the last refill adds
 * nothing and must not move last_ns back, or the next newer now would
 * refill that span a second time (seen: 118 queries/s through a limit of
 * 100 under load). */
static void refill(struct bucket *b, uint64_t now)
{
	if (now <= b->last_ns)
		return;
	b->tokens += (double)(now - b->last_ns) * b->rate / 1e9;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
	b->last_ns = now;
}

bool rate_enabled(const struct cfg *c)
{
	if (c->rate_limit.queries_per_second > 0 || c->rate_limit.database_queries_per_second > 0)
		return true;
	for (size_t i = 0; i < c->n_tenants; i++)
		if (c->tenants[i].rate_limit > 0)
			return true;
	return false;
}

enum rate_verdict rate_take(const struct rate_who *who, uint64_t now_ns, uint64_t waited_ns,
                            uint64_t *wait_ns, char *msg, size_t msglen)
{
	const struct cfg *c = who->cfg;
	const struct cfg_tenant *t = who->tenant_cfg;
	struct {
		char name[96];
		double rate;
		const char *what;
	} want[3];
	int nw = 0;
	int qps = c->rate_limit.queries_per_second;
	if (qps > 0) {
		if (c->rate_limit.per_user)
			snprintf(want[nw].name, sizeof(want[nw].name), "user:%s", who->user);
		else
			snprintf(want[nw].name, sizeof(want[nw].name), "global");
		want[nw].rate = qps;
		want[nw++].what = c->rate_limit.per_user ? "rate_limit.queries_per_second per user"
		                                         : "rate_limit.queries_per_second";
	}
	if (c->rate_limit.database_queries_per_second > 0) {
		snprintf(want[nw].name, sizeof(want[nw].name), "database:%s", who->database);
		want[nw].rate = c->rate_limit.database_queries_per_second;
		want[nw++].what = "rate_limit.database_queries_per_second";
	}
	if (t && t->rate_limit > 0) {
		snprintf(want[nw].name, sizeof(want[nw].name), "tenant:%s", t->id);
		want[nw].rate = quota_share(t->id, 'q', t->rate_limit);
		want[nw++].what = "tenants.rate_limit";
	}
	if (!nw)
		return RATE_OK;
	struct bucket *b[3];
	uint64_t need = 0;
	int short_of = -1;
	pthread_mutex_lock(&rate_mu);
	for (int i = 0; i < nw; i++) {
		/* the burst is a count of queries; a tenant or database bucket
		 * holds one second's worth unless burst_size says more */
		double burst =
		    c->rate_limit.burst_size > 0 ? c->rate_limit.burst_size : want[i].rate;
		if (burst < 1)
			burst = 1;
		b[i] = bucket(want[i].name, want[i].rate, burst, now_ns);
		if (!b[i])
			continue;
		refill(b[i], now_ns);
		if (b[i]->tokens < 1.0 && b[i]->rate > 0) {
			uint64_t ns = (uint64_t)((1.0 - b[i]->tokens) * 1e9 / b[i]->rate) + 1;
			if (ns > need) {
				need = ns;
				short_of = i;
			}
		}
	}
	enum rate_verdict v = RATE_OK;
	bool reject =
	    short_of >= 0 && (c->rate_limit.mode == CFG_RATE_REJECT ||
	                      waited_ns + need > (uint64_t)c->rate_limit.max_wait_ms * 1000000ull);
	if (!reject) {
		/* taken now, even when that leaves a bucket in debt: a throttled
		 * query has reserved its place and runs when the debt is paid,
		 * so waiters are served in arrival order */
		for (int i = 0; i < nw; i++)
			if (b[i]) {
				b[i]->tokens -= 1.0;
				b[i]->allowed++;
			}
		if (short_of >= 0) {
			b[short_of]->throttled++;
			v = RATE_WAIT;
			*wait_ns = need;
		}
	} else {
		struct bucket *sb = b[short_of];
		sb->rejected++;
		v = RATE_REJECT;
		snprintf(msg, msglen,
		         "rate limit exceeded: %s = %.0f queries per second (bucket \"%s\")%s",
		         want[short_of].what, want[short_of].rate, sb->name,
		         c->rate_limit.mode == CFG_RATE_REJECT
		             ? ""
		             : "; the wait would pass rate_limit.max_wait_ms");
	}
	pthread_mutex_unlock(&rate_mu);
	struct tenant_state *ts = who->tenant;
	if (ts && t) {
		if (v == RATE_REJECT) {
			__atomic_add_fetch(&ts->rejected, 1, __ATOMIC_RELAXED);
		} else {
			__atomic_add_fetch(&ts->queries, 1, __ATOMIC_RELAXED);
			if (v == RATE_WAIT)
				__atomic_add_fetch(&ts->throttled, 1, __ATOMIC_RELAXED);
		}
	}
	return v;
}

/* ------------------------------------------------------------ reports */

Helios__TenantStats **tenant_stats(size_t *n)
{
	*n = 0;
	int nt = __atomic_load_n(&n_tenants, __ATOMIC_ACQUIRE);
	struct snap *sn = snap_current();
	const struct cfg *c = sn ? sn->cfg : NULL;
	Helios__TenantStats **v = calloc(nt ? (size_t)nt : 1, sizeof(*v));
	for (int i = 0; v && c && i < (int)c->n_tenants; i++)
		state_of(c->tenants[i].id); /* every configured tenant shows, used or not */
	nt = __atomic_load_n(&n_tenants, __ATOMIC_ACQUIRE);
	free(v);
	v = calloc(nt ? (size_t)nt : 1, sizeof(*v));
	for (int i = 0; v && i < nt; i++) {
		const struct tenant_state *t = tenants[i];
		Helios__TenantStats *m = malloc(sizeof(*m));
		if (!m)
			break;
		helios__tenant_stats__init(m);
		m->id = strdup(t->id);
		m->clients = (uint32_t)__atomic_load_n(&t->clients, __ATOMIC_RELAXED);
		m->queries = __atomic_load_n(&t->queries, __ATOMIC_RELAXED);
		m->throttled = __atomic_load_n(&t->throttled, __ATOMIC_RELAXED);
		m->rejected = __atomic_load_n(&t->rejected, __ATOMIC_RELAXED);
		m->refused_logins = __atomic_load_n(&t->refused_logins, __ATOMIC_RELAXED);
		for (size_t k = 0; c && k < c->n_tenants; k++) {
			if (strcmp(c->tenants[k].id, t->id))
				continue;
			m->max_connections = (uint32_t)c->tenants[k].max_connections;
			m->rate_limit = (uint32_t)c->tenants[k].rate_limit;
		}
		/* servers: added by the report (pools are a layer above) */
		v[(*n)++] = m;
	}
	snap_unref(sn);
	return v;
}

Helios__RateBucket **rate_bucket_stats(size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&rate_mu);
	Helios__RateBucket **v = calloc(n_buckets ? (size_t)n_buckets : 1, sizeof(*v));
	for (int i = 0; v && i < n_buckets; i++) {
		Helios__RateBucket *m = malloc(sizeof(*m));
		if (!m)
			break;
		helios__rate_bucket__init(m);
		m->name = strdup(buckets[i]->name);
		m->rate = buckets[i]->rate;
		m->allowed = buckets[i]->allowed;
		m->throttled = buckets[i]->throttled;
		m->rejected = buckets[i]->rejected;
		v[(*n)++] = m;
	}
	pthread_mutex_unlock(&rate_mu);
	return v;
}
