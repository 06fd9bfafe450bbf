/*
 * Current-config pointer, snapshot lifetime and the subscriptions of the
 * features that follow the config. The swap takes a mutex; readers take it
 * only when a connection starts, never per message.
 */
#include "dataplane/policy/snap.h"
#include "dataplane/auth/hba.h"

#include "dataplane/policy/tenant.h"

#include "common/log.h"

#include "dataplane/auth/identmap.h"
#include "dataplane/tls/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER; /* one install at a time */
static struct snap *current;
static uint64_t next_generation = 1;

/* Written at start-up before any snapshot exists, read-only afterwards. */
static struct {
	snap_build_fn build;
	snap_release_fn release;
} builders[SNAP_MAX_SUBSCRIBERS];
static int n_builders;
static struct {
	snap_install_fn fn;
	void *arg;
} subs[SNAP_MAX_SUBSCRIBERS];
static int n_subs;

int snap_add_builder(snap_build_fn build, snap_release_fn release)
{
	if (n_builders == SNAP_MAX_SUBSCRIBERS)
		return -ENOSPC;
	builders[n_builders].build = build;
	builders[n_builders].release = release;
	n_builders++;
	return 0;
}

int snap_subscribe(snap_install_fn fn, void *arg)
{
	if (n_subs == SNAP_MAX_SUBSCRIBERS)
		return -ENOSPC;
	subs[n_subs].fn = fn;
	subs[n_subs].arg = arg;
	n_subs++;
	return 0;
}

void snap_subscriptions_reset(void)
{
	n_builders = 0;
	n_subs = 0;
}

static int build_rules(struct snap *s, char *err, size_t errlen)
{
	const struct cfg *c = s->cfg;
	struct hba_rule_text *rt = calloc(c->auth.n_rules, sizeof(*rt));
	if (!rt) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->auth.n_rules; i++) {
		const struct cfg_hba_rule *r = &c->auth.rules[i];
		rt[i] = (struct hba_rule_text){r->type,    r->database, r->user,
		                               r->address, r->method,   r->options};
	}
	int rc = hba_from_rules(rt, (int)c->auth.n_rules, c->path[0] ? c->path : "config", &s->hba,
	                        err, errlen);
	free(rt);
	return rc;
}

/* A cert rule needs the TLS layer to ask for a client certificate, and
 * its map= the tls.ident_file that holds the map. */
static int check_cert_rules(const struct snap *s, char *err, size_t errlen)
{
	for (int i = 0; i < s->hba->n; i++) {
		const struct hba_rule *r = &s->hba->rules[i];
		if (r->method != HBA_CERT)
			continue;
		if (s->cfg->tls.client_mode < CFG_CTLS_VERIFY_CA) {
			snprintf(err, errlen,
			         "%s: method cert needs tls.client_mode = \"verify-ca\" or "
			         "\"verify-full\" (otherwise clients are asked for no certificate)",
			         r->where);
			return -EINVAL;
		}
		const char *map = hba_opt(r, "map");
		if (map && !s->identmap) {
			snprintf(err, errlen,
			         "%s: map=%s needs tls.ident_file (the file of the maps)", r->where,
			         map);
			return -EINVAL;
		}
	}
	return 0;
}

struct snap *snap_new(struct cfg *cfg, char *err, size_t errlen)
{
	struct snap *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		cfg_free(cfg);
		return NULL;
	}
	s->refs = 1;
	s->cfg = cfg;
	if (cfg->tls.client_mode != CFG_CTLS_DISABLE) {
		s->client_tls =
		    tls_ctx_new_server(cfg->tls.cert_file, cfg->tls.key_file, err, errlen);
		if (!s->client_tls)
			goto fail;
		if (cfg->tls.client_mode >= CFG_CTLS_VERIFY_CA &&
		    tls_ctx_require_client_cert(s->client_tls, cfg->tls.client_ca_file,
		                                cfg->tls.client_crl_file, err, errlen) < 0)
			goto fail;
	}
	/* parsed here so a reload with a broken map file is refused whole
	 * (file:line in err) and the running one stays */
	if (cfg->tls.ident_file[0] &&
	    identmap_load(cfg->tls.ident_file, &s->identmap, err, errlen) < 0)
		goto fail;
	s->rate_limits = rate_enabled(cfg);
	if (cfg->tls.server_mode != CFG_STLS_DISABLE) {
		s->server_tls = tls_ctx_new_client(cfg->tls.server_mode == CFG_STLS_VERIFY_FULL,
		                                   cfg->tls.ca_file, err, errlen);
		if (!s->server_tls)
			goto fail;
		if (cfg->tls.server_cert_file[0] &&
		    tls_ctx_use_client_cert(s->server_tls, cfg->tls.server_cert_file,
		                            cfg->tls.server_key_file, err, errlen) < 0)
			goto fail;
	}
	/* the hba file is read with each new config, so a reload applies an
	 * edited file to the logins that follow */
	if (cfg->auth.hba_file[0]) {
		if (hba_load_file(cfg->auth.hba_file, &s->hba, err, errlen) < 0)
			goto fail;
	} else if (cfg->auth.n_rules && build_rules(s, err, errlen) < 0) {
		goto fail;
	}
	if (s->hba &&
	    (hba_prepare(s->hba, err, errlen) < 0 || check_cert_rules(s, err, errlen) < 0))
		goto fail;
	for (int i = 0; i < n_builders; i++)
		if (builders[i].build && builders[i].build(s, err, errlen) < 0)
			goto fail;
	return s;
fail:
	snap_unref(s);
	return NULL;
}

void snap_ref(struct snap *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void snap_unref(struct snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (int i = n_builders - 1; i >= 0; i--)
		if (builders[i].release)
			builders[i].release(s);
	hba_free(s->hba);
	tls_ctx_free(s->client_tls);
	tls_ctx_free(s->server_tls);
	identmap_free(s->identmap);
	cfg_free(s->cfg);
	free(s);
}

struct snap *snap_current(void)
{
	pthread_mutex_lock(&snap_mu);
	struct snap *s = current;
	if (s)
		snap_ref(s);
	pthread_mutex_unlock(&snap_mu);
	return s;
}

static int live_max_pool = 1;

/* install_mu serialises installs: s stays current, hence alive, while the
 * subscribers run, and they see the installs in order. */
static void install(struct snap *s, uint64_t generation)
{
	pthread_mutex_lock(&install_mu);
	pthread_mutex_lock(&snap_mu);
	struct snap *old = current;
	s->generation = generation;
	current = s;
	__atomic_store_n(&live_max_pool, s->cfg->pool.max_pool_size, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&snap_mu);
	for (int i = 0; i < n_subs; i++)
		subs[i].fn(s, old, subs[i].arg);
	const struct cfg *c = s->cfg;
	/* rate limits apply in session mode too (conn/session.c); rewriting
	 * does not */
	bool rewrites = c->n_rewrite_rules;
	for (size_t i = 0; i < c->n_tenants; i++)
		rewrites |= c->tenants[i].schema_prefix[0] != '\0';
	if (rewrites && c->pool.mode == CFG_POOL_SESSION)
		log_warn("pool_mode.mode is session: schema_prefix and rewrite_rules "
		         "apply only to transaction and statement pooling (docs/rewriting.md)");
	if (c->pool.kernel_splice && c->pool.mode != CFG_POOL_SESSION)
		log_warn(
		    "pool_mode.kernel_splice applies to session pooling only; pool_mode.mode is %s",
		    cfg_pool_mode_str(c->pool.mode));
	else if (c->pool.kernel_splice && c->tls.server_mode != CFG_STLS_DISABLE)
		log_warn("pool_mode.kernel_splice: sessions over TLS are not spliced, and "
		         "tls.server_mode = %s uses TLS towards servers that offer it; set it to "
		         "\"disable\" to splice",
		         c->tls.server_mode == CFG_STLS_PREFER ? "prefer" : "require");
	pthread_mutex_unlock(&install_mu);
	snap_unref(old);
}

void snap_install(struct snap *s)
{
	install(s, next_generation++);
}

void snap_install_gen(struct snap *s, uint64_t generation)
{
	install(s, generation);
}

int snap_max_pool_size(void)
{
	return __atomic_load_n(&live_max_pool, __ATOMIC_ACQUIRE);
}
