/*
 * The data plane's side of the control-plane link: one thread, one nng REQ
 * socket. It registers, then sends heartbeats in a loop; the control plane
 * holds each heartbeat until it has something to say (long poll), so a
 * new snapshot arrives at once. When the control plane is gone the data
 * plane keeps serving its last good snapshot; nng redials with backoff and
 * the link registers again when it answers.
 */
#include "dataplane/report/cplink.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/rundir.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/engine/rewrite.h"
#include "dataplane/pipeline/plugin_stage.h"
#include "dataplane/plugin/plugin_set.h"
#include "dataplane/policy/control.h"
#include "dataplane/policy/snap.h"
#include "dataplane/report/stats.h"
#include "dataplane/policy/tenant.h"
#include "dataplane/rt/worker.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RESTART_KEYS 32
#define CPLINK_PLUGINS   32 /* plugins in a set (controlplane/cp_internal.h) */

static struct {
	pthread_t thread;
	bool started;
	int stop; /* atomic */
	nng_socket sock;
	char url[512];
	struct cpauth auth;
	char refused[300];        /* the control plane's last refusal, logged once */
	uint64_t refused_at_ms;   /* when it was logged */
	uint64_t unreached_at_ms; /* when "does not answer" was logged */
	bool external;
	uint32_t interval_ms;
	bool registered;
	uint64_t cmd_seen;
	/* what the next heartbeat reports once */
	Helios__ConfigAck *ack;
	Helios__ConfigReject *reject;
	Helios__CommandResult *result;
	uint64_t last_rejected;
	Helios__ConfigReject *plugin_reject; /* a refused plugin set, reported once */
	uint64_t plugin_rejected;            /* its generation: not tried again */
	uint64_t plugin_acked;               /* plugin generation the last heartbeat carried */
	bool plugins_ran;                    /* the last set applied had plugins */
	struct {
		char name[64];
		uint64_t serial; /* bumped by helioctl plugin reload */
	} serials[CPLINK_PLUGINS];
	size_t n_serials;
	struct cp_link_state st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool first_applied;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void set_state(void)
{
	ctl_link_update(&L.st);
}

/* Applies a snapshot; 0, or -1 with the reason (then it is refused). */
static int apply_snapshot(const Helios__ConfigSnapshot *s, char *err, size_t errlen)
{
	if (cpwire_check_schema(s->schema_version, err, errlen) < 0)
		return -1;
	struct cfg_error cerr;
	char name[64];
	snprintf(name, sizeof(name), "snapshot %llu", (unsigned long long)s->generation);
	struct cfg *c = cfg_load_string(name, s->toml, strlen(s->toml), &cerr);
	if (!c) {
		snprintf(err, errlen, "%s", cerr.msg);
		return -1;
	}
	const char *names[MAX_RESTART_KEYS];
	size_t n_restart = 0;
	struct snap *cur = snap_current();
	if (cur) {
		n_restart = cfg_keep_restart_keys(cur->cfg, c, names, MAX_RESTART_KEYS);
		if (n_restart > MAX_RESTART_KEYS)
			n_restart = MAX_RESTART_KEYS;
	}
	snap_unref(cur);
	struct snap *sn = snap_new(c, err, errlen);
	if (!sn)
		return -1;
	log_apply_cfg(sn->cfg);
	snap_install_gen(sn, s->generation);
	Helios__ConfigAck *ack = malloc(sizeof(*ack));
	if (ack) {
		helios__config_ack__init(ack);
		ack->dataplane_id = strdup(L.st.dataplane_id);
		ack->generation = s->generation;
		ack->restart_pending = calloc(n_restart ? n_restart : 1, sizeof(char *));
		for (size_t i = 0; ack->restart_pending && i < n_restart; i++)
			ack->restart_pending[ack->n_restart_pending++] = strdup(names[i]);
	}
	if (L.ack)
		helios__config_ack__free_unpacked(L.ack, NULL);
	L.ack = ack;
	if (n_restart) {
		char list[512] = "";
		for (size_t i = 0; i < n_restart; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         i ? ", " : "", names[i]);
		/* once per distinct list: a control plane whose file differs from
		 * this process's in a restart key would repeat it every push */
		static char last[512];
		if (strcmp(last, list)) {
			log_warn(
			    "configuration generation %llu: %s changed but needs a restart; the "
			    "running value stays",
			    (unsigned long long)s->generation, list);
			snprintf(last, sizeof(last), "%s", list);
		} else {
			log_debug("configuration generation %llu: %s still differ from the running "
			          "values (restart keys)",
			          (unsigned long long)s->generation, list);
		}
	}
	log_ev(LOG_INFO, "config_applied", NULL, "configuration generation %llu applied (%s)",
	       (unsigned long long)s->generation, s->source);
	return 0;
}

/* helioctl rewrite test: what this data plane would send for sql. */
static void rewrite_report(Helios__StatsReport *r, const char *sql, const char *tenant)
{
	struct snap *sn = snap_current();
	const char *schema = "";
	for (size_t i = 0; sn && tenant[0] && i < sn->cfg->n_tenants; i++)
		if (!strcmp(sn->cfg->tenants[i].id, tenant))
			schema = sn->cfg->tenants[i].schema_prefix;
	char *out = NULL, why[400] = "";
	enum rw_status st =
	    sn ? rw_rewrite(sn->rewrite, schema[0] ? schema : NULL, sql, &out, why, sizeof(why))
	       : RW_FAILED;
	r->rewrite_status = strdup(rw_status_str(st));
	r->rewrite_text = strdup(st == RW_REWRITTEN ? out : st == RW_UNCHANGED ? sql : why);
	free(out);
	snap_unref(sn);
}

/* A pushed plugin set to plugin/plugin_set: each module's digest checked
 * against its bytes, then applied as a whole (all or nothing); 0, or -1
 * with why (the set that runs stays). */
static int apply_plugins(const Helios__PluginSet *ps, char *err, size_t errlen)
{
	struct plugin_def *defs = calloc(ps->n_plugins ? ps->n_plugins : 1, sizeof(*defs));
	if (!defs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < ps->n_plugins && rc == 0; i++) {
		const Helios__PluginModule *m = ps->plugins[i];
		struct plugin_def *d = &defs[i];
		unsigned int n = 32;
		if (m->sha256.len != 32 ||
		    EVP_Digest(m->wasm.data, m->wasm.len, d->sha256, &n, EVP_sha256(), NULL) != 1 ||
		    memcmp(d->sha256, m->sha256.data, 32)) {
			snprintf(err, errlen, "plugin '%s': the module does not match its sha256",
			         m->name);
			rc = -1;
			break;
		}
		d->name = m->name;
		d->wasm = m->wasm.data;
		d->len = m->wasm.len;
		d->config_json = m->config_json && *m->config_json ? m->config_json : "{}";
		d->on_failure =
		    !strcmp(m->on_failure, "deny") ? PLUGIN_FAIL_DENY : PLUGIN_FAIL_CONTINUE;
		d->lim.fuel = m->fuel;
		d->lim.timeout_ms = m->timeout_ms;
		d->lim.memory_mb = m->memory_mb;
		d->max_failures = m->max_failures;
	}
	if (rc == 0)
		rc =
		    plugin_set_apply(defs, ps->n_plugins, ps->generation, err, errlen) < 0 ? -1 : 0;
	free(defs);
	if (rc < 0)
		return -1;
	/* helioctl plugin reload: the same module again, enabled again if its
	 * failures had disabled it */
	size_t n = ps->n_plugins < CPLINK_PLUGINS ? ps->n_plugins : CPLINK_PLUGINS;
	for (size_t i = 0; i < n; i++) {
		const Helios__PluginModule *m = ps->plugins[i];
		for (size_t k = 0; k < L.n_serials; k++)
			if (!strcmp(L.serials[k].name, m->name) &&
			    L.serials[k].serial != m->serial && plugin_set_reset(m->name) == 0)
				log_info("plugin %s reloaded: enabled, fresh instances", m->name);
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(L.serials[i].name, sizeof(L.serials[i].name), "%s", ps->plugins[i]->name);
		L.serials[i].serial = ps->plugins[i]->serial;
	}
	L.n_serials = n;
	return 0;
}

static void handle_plugins(const Helios__PluginSet *ps)
{
	uint64_t have = plugin_set_generation();
	if (ps->generation == have || ps->generation == L.plugin_rejected)
		return;
	char err[600];
	if (apply_plugins(ps, err, sizeof(err)) < 0) {
		log_error("refused plugin set generation %llu from the control plane, keeping "
		          "generation %llu: %s",
		          (unsigned long long)ps->generation, (unsigned long long)have, err);
		L.plugin_rejected = ps->generation;
		Helios__ConfigReject *rj = malloc(sizeof(*rj));
		if (rj) {
			helios__config_reject__init(rj);
			rj->dataplane_id = strdup(L.st.dataplane_id);
			rj->generation = ps->generation;
			rj->error = strdup(err);
		}
		if (L.plugin_reject)
			helios__config_reject__free_unpacked(L.plugin_reject, NULL);
		L.plugin_reject = rj;
		return;
	}
	char names[400] = "";
	for (size_t i = 0; i < ps->n_plugins; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         i ? ", " : "", ps->plugins[i]->name);
	/* a proxy without plugins says nothing about them */
	log_ev(ps->n_plugins || L.plugins_ran ? LOG_INFO : LOG_DEBUG, "plugins_applied", NULL,
	       "plugin set generation %llu applied: %s", (unsigned long long)ps->generation,
	       ps->n_plugins ? names : "no plugins");
	L.plugins_ran = ps->n_plugins > 0;
}

static void handle_reply(const Helios__Reply *r)
{
	if (!r->ok) {
		log_warn("control plane at %s: %s", L.url, r->error);
		return;
	}
	if (r->reregister) {
		L.registered = false;
		return;
	}
	if (r->heartbeat_interval_ms)
		L.interval_ms = r->heartbeat_interval_ms;
	/* before the snapshot: the first one lets start-up go on, and the
	 * plugins are in place by then */
	if (r->plugins)
		handle_plugins(r->plugins);
	if (r->snapshot) {
		struct snap *cur = snap_current();
		uint64_t have = cur ? cur->generation : 0;
		snap_unref(cur);
		if (r->snapshot->generation != have && r->snapshot->generation != L.last_rejected) {
			char err[600];
			if (apply_snapshot(r->snapshot, err, sizeof(err)) < 0) {
				log_error("refused configuration generation %llu from the control "
				          "plane, keeping generation %llu: %s",
				          (unsigned long long)r->snapshot->generation,
				          (unsigned long long)have, err);
				L.last_rejected = r->snapshot->generation;
				Helios__ConfigReject *rj = malloc(sizeof(*rj));
				if (rj) {
					helios__config_reject__init(rj);
					rj->dataplane_id = strdup(L.st.dataplane_id);
					rj->generation = r->snapshot->generation;
					rj->error = strdup(err);
				}
				if (L.reject)
					helios__config_reject__free_unpacked(L.reject, NULL);
				L.reject = rj;
			} else {
				pthread_mutex_lock(&L.mu);
				L.first_applied = true;
				pthread_cond_broadcast(&L.cv);
				pthread_mutex_unlock(&L.mu);
			}
		}
	}
	if (r->routing)
		ctl_set_routing(r->routing);
	for (size_t i = 0; i < r->n_tenant_shares; i++)
		tenant_set_share(r->tenant_shares[i]->id, r->tenant_shares[i]->connections,
		                 r->tenant_shares[i]->qps);
	ctl_set_paused(r->paused, r->n_paused);
	ctl_set_drained(r->drained, r->n_drained);
	for (size_t i = 0; i < r->n_commands; i++) {
		const Helios__Command *c = r->commands[i];
		if (c->id <= L.cmd_seen)
			continue;
		L.cmd_seen = c->id;
		if (!strcmp(c->verb, "report")) {
			Helios__CommandResult *res = malloc(sizeof(*res));
			if (!res)
				continue;
			helios__command_result__init(res);
			res->dataplane_id = strdup(L.st.dataplane_id);
			res->id = c->id;
			res->ok = true;
			size_t slow = 0, flushed = 0;
			if (c->n_args >= 2 && !strcmp(c->args[0], "slowlog"))
				slow = (size_t)strtoul(c->args[1], NULL, 10);
			if (c->n_args >= 1 && !strcmp(c->args[0], "cache_flush")) {
				const char *t = c->n_args >= 2 ? c->args[1] : "";
				flushed = cache_flush(t);
				log_info("cache flushed by the control plane (%s): %zu entries",
				         t[0] ? t : "all", flushed);
			}
			res->report = stats_report_ex(true, slow ? slow : 0);
			if (res->report)
				res->report->cache_flushed = flushed;
			if (res->report && c->n_args >= 2 && !strcmp(c->args[0], "rewrite"))
				rewrite_report(res->report, c->args[1],
				               c->n_args >= 3 ? c->args[2] : "");
			if (L.result)
				helios__command_result__free_unpacked(L.result, NULL);
			L.result = res;
		}
	}
}

static uint8_t *build_register(size_t *len)
{
	Helios__Register reg = HELIOS__REGISTER__INIT;
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct snap *sn = snap_current();
	reg.dataplane_id = L.st.dataplane_id;
	reg.pid = (uint32_t)getpid();
	reg.hostname = host;
	reg.version = HELIOS_VERSION;
	reg.max_schema_version = HELIOS_SCHEMA_VERSION;
	reg.generation = sn ? sn->generation : 0;
	reg.plugin_generation = plugin_set_generation();
	reg.listen_address = sn ? sn->cfg->listen_address : "";
	reg.admin_address = sn ? sn->cfg->admin_address : "";
	int nw = workers_started();
	reg.io_backend = nw ? (char *)io_backend_str(g_workers[0].backend) : "";
	reg.workers = (uint32_t)nw;
	uint8_t *buf = cpwire_pack_token(HELIOS__MSG_TYPE__MSG_REGISTER, reg.generation, &reg.base,
	                                 L.auth.token, len);
	snap_unref(sn);
	return buf;
}

static uint8_t *build_heartbeat(size_t *len)
{
	Helios__Heartbeat hb = HELIOS__HEARTBEAT__INIT;
	struct snap *sn = snap_current();
	hb.dataplane_id = L.st.dataplane_id;
	hb.generation = sn ? sn->generation : 0;
	snap_unref(sn);
	hb.report = stats_report(false);
	hb.command_seq = L.cmd_seen;
	hb.ack = L.ack;
	hb.reject = L.reject;
	hb.plugin_generation = plugin_set_generation();
	hb.plugin_reject = L.plugin_reject;
	bool plugin_news = hb.plugin_generation != L.plugin_acked;
	L.plugin_acked = hb.plugin_generation;
	Helios__CommandResult *results[1];
	if (L.result) {
		results[0] = L.result;
		hb.results = results;
		hb.n_results = 1;
	}
	/* a new plugin generation is acknowledged at once */
	hb.hold = !L.ack && !L.reject && !L.result && !L.plugin_reject && !plugin_news;
	uint8_t *buf = cpwire_pack_token(HELIOS__MSG_TYPE__MSG_HEARTBEAT, hb.generation, &hb.base,
	                                 L.auth.token, len);
	stats_report_free(hb.report);
	return buf;
}

static void clear_sent(void)
{
	if (L.ack)
		helios__config_ack__free_unpacked(L.ack, NULL);
	if (L.reject)
		helios__config_reject__free_unpacked(L.reject, NULL);
	if (L.result)
		helios__command_result__free_unpacked(L.result, NULL);
	if (L.plugin_reject)
		helios__config_reject__free_unpacked(L.plugin_reject, NULL);
	L.ack = NULL;
	L.reject = NULL;
	L.result = NULL;
	L.plugin_reject = NULL;
}

static void lost(const char *why)
{
	if (L.st.connected) {
		struct snap *sn = snap_current();
		log_warn("control plane at %s lost (%s): serving configuration generation %llu, "
		         "reconnecting",
		         L.url, why, (unsigned long long)(sn ? sn->generation : 0));
		snap_unref(sn);
		L.st.connected = false;
		set_state();
	}
	L.registered = false;
}

static void *link_main(void *arg)
{
	(void)arg;
	unsigned backoff_ms = 100;
	while (!__atomic_load_n(&L.stop, __ATOMIC_ACQUIRE)) {
		bool was_registered = L.registered;
		size_t len;
		uint8_t *buf = L.registered ? build_heartbeat(&len) : build_register(&len);
		if (!buf) {
			usleep(100000);
			continue;
		}
		/* the control plane holds a heartbeat up to one interval */
		nng_socket_set_ms(L.sock, NNG_OPT_RECVTIMEO,
		                  (nng_duration)(L.interval_ms * 3 + 500));
		int rv = nng_send(L.sock, buf, len, 0);
		explicit_bzero(buf, len); /* it holds the token */
		free(buf);
		void *in = NULL;
		size_t in_len = 0;
		if (rv == 0)
			rv = nng_recv(L.sock, &in, &in_len, NNG_FLAG_ALLOC);
		if (__atomic_load_n(&L.stop, __ATOMIC_ACQUIRE)) {
			if (rv == 0)
				nng_free(in, in_len);
			break;
		}
		if (rv != 0) {
			/* never reached: say so now and then (a TLS handshake that
			 * fails is retried inside nng and reported by nothing else) */
			uint64_t now = cpwire_mono_ms();
			if (!L.st.connected &&
			    (!L.unreached_at_ms || now - L.unreached_at_ms > 600000)) {
				log_warn(
				    "control plane at %s does not answer (%s)%s; retrying", L.url,
				    nng_strerror(rv),
				    cpauth_is_tls(L.url)
				        ? ": if it runs, check that its certificate is signed by "
				          "control_tls_ca and that it accepts this data plane's "
				          "control_tls_cert"
				        : "");
				L.unreached_at_ms = now;
			}
			lost(nng_strerror(rv));
			usleep(backoff_ms * 1000);
			backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
			continue;
		}
		char err[300];
		Helios__Envelope *e = cpwire_unpack(in, in_len, err, sizeof(err));
		nng_free(in, in_len);
		Helios__Reply *r = NULL;
		if (e && e->type == HELIOS__MSG_TYPE__MSG_REPLY)
			r = helios__reply__unpack(NULL, e->payload.len, e->payload.data);
		if (e)
			helios__envelope__free_unpacked(e, NULL);
		if (!r) {
			log_warn("control plane at %s: bad answer: %s", L.url,
			         e ? "not a Reply" : err);
			usleep(500000);
			continue;
		}
		if (!r->ok) {
			/* refused (a wrong token): not connected; say so once (again
			 * when the reason changes, or every 10 minutes), retry slowly */
			uint64_t now = cpwire_mono_ms();
			if (strcmp(L.refused, r->error) || now - L.refused_at_ms > 600000) {
				log_error("control plane at %s: %s; retrying every 5 s", L.url,
				          r->error);
				snprintf(L.refused, sizeof(L.refused), "%s", r->error);
				L.refused_at_ms = now;
			}
			lost(r->error);
			helios__reply__free_unpacked(r, NULL);
			for (int i = 0; i < 50 && !__atomic_load_n(&L.stop, __ATOMIC_ACQUIRE); i++)
				usleep(100000);
			continue;
		}
		L.refused[0] = '\0';
		backoff_ms = 100;
		if (!L.st.connected) {
			if (L.st.last_contact_ms)
				L.st.reconnects++;
			log_info("control plane at %s: connected", L.url);
		}
		L.st.connected = true;
		L.st.last_contact_ms = cpwire_mono_ms();
		if (was_registered)
			clear_sent(); /* the heartbeat carried them */
		else if (r->ok && !r->reregister)
			L.registered = true;
		handle_reply(r);
		struct snap *sn = snap_current();
		L.st.generation = sn ? sn->generation : 0;
		snap_unref(sn);
		set_state();
		helios__reply__free_unpacked(r, NULL);
	}
	return NULL;
}

int cplink_start(const char *url, bool external, const struct cpauth *auth, char *err,
                 size_t errlen)
{
	snprintf(L.url, sizeof(L.url), "%s", url);
	if (auth)
		L.auth = *auth;
	L.external = external;
	L.interval_ms = 1000;
	char host[100] = "";
	gethostname(host, sizeof(host) - 1);
	snprintf(L.st.dataplane_id, sizeof(L.st.dataplane_id), "%s:%d", host, (int)getpid());
	L.st.attached = true;
	L.st.external = external;
	set_state();
	int rv = nng_req0_open(&L.sock);
	if (rv == 0) {
		/* our own loop retries; nng must not resend a held heartbeat */
		nng_socket_set_ms(L.sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		nng_socket_set_ms(L.sock, NNG_OPT_RECONNMINT, 100);
		nng_socket_set_ms(L.sock, NNG_OPT_RECONNMAXT, 2000);
		nng_socket_set_ms(L.sock, NNG_OPT_SENDTIMEO, 2000);
		/* a plugin set carries its modules (controlplane/cp_plugin.c) */
		nng_socket_set_size(L.sock, NNG_OPT_RECVMAXSZ, 64u << 20);
		rv = rundir_guard_peer(L.sock);
	}
	nng_dialer d;
	char why[600];
	if (rv == 0 && (rv = cpauth_dialer(L.sock, url, &L.auth, &d, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "control plane %s: %s", url, why);
		return -1;
	}
	if (rv == 0)
		rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
	if (rv) {
		snprintf(err, errlen, "control plane %s: %s", url, nng_strerror(rv));
		return -1;
	}
	if (pthread_create(&L.thread, NULL, link_main, NULL) != 0) {
		snprintf(err, errlen, "cannot start the control-plane link thread");
		return -1;
	}
	L.started = true;
	return 0;
}

bool cplink_wait_first(int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&L.mu);
	while (!L.first_applied)
		if (pthread_cond_timedwait(&L.cv, &L.mu, &ts) != 0)
			break;
	bool ok = L.first_applied;
	pthread_mutex_unlock(&L.mu);
	return ok;
}

const struct cpauth *cplink_auth(void)
{
	return &L.auth;
}

const char *cplink_url(void)
{
	return L.url;
}

void cplink_stop(void)
{
	if (!L.started)
		return;
	__atomic_store_n(&L.stop, 1, __ATOMIC_RELEASE);
	nng_close(L.sock); /* wakes the blocked send/recv */
	pthread_join(L.thread, NULL);
	clear_sent();
	cpauth_wipe(&L.auth);
	L.started = false;
}
