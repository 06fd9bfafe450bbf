/*
 * helioctl requests: status, reports (clients, servers, pools, stats, top,
 * slowlog, tenants, rewrite, cache), nodes, reload, pause/resume,
 * drain/undrain and xdp (config is in cp_config.c, plugin in cp_plugin.c);
 * and the requests held
 * until every connected data plane has done what they asked, or their
 * timeout.
 */
#include "controlplane/cp_internal.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "controlplane/xdp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_TIMEOUT_MS 5000

void cp_ctl_resp_init(struct cp *cp, Helios__CtlResponse *r)
{
	helios__ctl_response__init(r);
	r->generation = cp->generation;
	r->plugin_generation = cp->plugin_gen;
	r->version = HELIOS_VERSION;
	r->config_path = cp->path;
	r->overrides_path = cp->ovr_path;
	r->uptime_secs = (double)(cpwire_mono_ms() - cp->start_ms) / 1000.0;
	r->paused = cp->paused;
	r->n_paused = cp->n_paused;
	r->drained = cp->drained;
	r->n_drained = cp->n_drained;
}

/* Data-plane rows; reports from the last heartbeat, or from the answer to
 * command `detail` when non-zero. */
static Helios__DataPlaneStatus **dp_rows(struct cp *cp, size_t *n, uint64_t detail)
{
	size_t k = 0;
	for (struct dp *d = cp->dps; d; d = d->next)
		k++;
	Helios__DataPlaneStatus **v = calloc(k ? k : 1, sizeof(*v));
	if (!v) {
		*n = 0;
		return NULL;
	}
	uint64_t now = cpwire_mono_ms();
	size_t i = 0;
	for (struct dp *d = cp->dps; d; d = d->next) {
		Helios__DataPlaneStatus *s = malloc(sizeof(*s));
		if (!s)
			break;
		helios__data_plane_status__init(s);
		s->dataplane_id = d->id;
		s->connected = cp_dp_connected(cp, d, now);
		s->generation = d->generation;
		s->last_seen_secs = (double)(now - d->last_seen_ms) / 1000.0;
		s->last_error = d->last_error;
		s->registrations = d->registrations;
		s->info = d->reg;
		if (detail && d->result && d->result->id == detail)
			s->report = d->result->report;
		else if (d->hb)
			s->report = d->hb->report;
		s->restart_pending = d->restart_pending;
		s->n_restart_pending = d->n_restart;
		s->plugin_generation = d->plugin_gen;
		s->plugin_error = d->plugin_error;
		v[i++] = s;
	}
	*n = i;
	return v;
}

static void dp_rows_free(Helios__DataPlaneStatus **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]); /* fields point into cp state */
	free(v);
}

/* Appends why the XDP filter is not attached, if it is not, to a
 * confirmation: the change was taken, the filter did not follow. */
void cp_ctl_xdp_note(struct cp *cp, char *msg, size_t cap)
{
	struct xf_status st;
	xf_get_status(cp->xdp, &st);
	size_t len = strlen(msg);
	if (st.enabled && st.error[0] && len < cap)
		snprintf(msg + len, cap - len, "; warning: the XDP filter is not active: %s",
		         st.error);
}

nng_msg *cp_ctl_simple(struct cp *cp, int status, const char *msg)
{
	Helios__CtlResponse r;
	cp_ctl_resp_init(cp, &r);
	r.status = status;
	r.message = (char *)msg;
	return cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
}

void cp_ctl_park(struct cp *cp, struct work *w, Helios__CtlRequest *req, enum wait_kind k,
                 uint64_t value, const char *arg, const char *msg)
{
	w->state = W_PARKED;
	w->kind = P_CTL;
	w->req = req;
	w->wait = k;
	w->wait_value = value;
	snprintf(w->wait_arg, sizeof(w->wait_arg), "%s", arg ? arg : "");
	snprintf(w->msg, sizeof(w->msg), "%s", msg);
	uint32_t t = req->timeout_ms ? req->timeout_ms : CTL_DEFAULT_TIMEOUT_MS;
	if (t > 1000)
		t -= 500; /* answer before helioctl gives up */
	w->deadline_ms = cpwire_mono_ms() + t;
}

static bool node_known(const struct cp *cp, const char *name)
{
	for (size_t i = 0; i < cp->live->n_nodes; i++)
		if (!strcmp(cp->live->nodes[i].name, name))
			return true;
	return false;
}

static nng_msg *handle_state(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	const char *v = req->verb;
	bool pause = !strcmp(v, "pause"), resume = !strcmp(v, "resume");
	bool drain = !strcmp(v, "drain");
	const char *arg = req->n_args ? req->args[0] : NULL;
	char msg[512];
	if (req->n_args > 1)
		return cp_ctl_simple(cp, 2, "too many arguments");
	if (pause || resume) {
		const char *db = arg ? arg : "*";
		if (pause) {
			if (!cp_strv_has(cp->paused, cp->n_paused, db))
				cp_strv_add(&cp->paused, &cp->n_paused, db);
		} else if (!arg) {
			cp_free_strv(cp->paused, cp->n_paused);
			cp->paused = NULL;
			cp->n_paused = 0;
		} else {
			cp_strv_del(cp->paused, &cp->n_paused, db);
		}
		snprintf(msg, sizeof(msg), "%s %s", pause ? "paused" : "resumed",
		         arg ? arg : "all databases");
		log_info("control plane: %s", msg);
		cp->state_ver++;
		cp_dp_kick_heartbeats(cp);
		cp_ctl_park(cp, w, req, pause ? WAIT_PAUSE : WAIT_RESUME, 0, db, msg);
		*parked = true;
		return NULL;
	}
	if (!arg)
		return cp_ctl_simple(cp, 2, drain ? "usage: drain NODE" : "usage: undrain NODE");
	if (!node_known(cp, arg)) {
		snprintf(msg, sizeof(msg), "no node named '%s' in the configuration", arg);
		return cp_ctl_simple(cp, 1, msg);
	}
	if (drain) {
		if (!cp_strv_has(cp->drained, cp->n_drained, arg))
			cp_strv_add(&cp->drained, &cp->n_drained, arg);
	} else {
		cp_strv_del(cp->drained, &cp->n_drained, arg);
	}
	snprintf(msg, sizeof(msg), "%s node %s", drain ? "draining" : "undrained", arg);
	log_info("control plane: %s", msg);
	cp->state_ver++;
	for (size_t i = 0; i < cp->n_nodes; i++)
		cp->nodes[i]->draining =
		    cp_strv_has(cp->drained, cp->n_drained, cp->nodes[i]->name);
	cp_dp_kick_heartbeats(cp);
	cp_ctl_park(cp, w, req, WAIT_DRAIN, drain, arg, msg);
	*parked = true;
	return NULL;
}

static void xdp_status_msg(const struct xf_status *st, Helios__XdpStatus *x)
{
	x->enabled = st->enabled;
	x->loaded = st->loaded;
	x->attached = st->attached;
	x->interface = (char *)st->interface;
	x->mode = (char *)st->mode;
	x->prog_id = st->prog_id;
	x->error = (char *)st->error;
	x->passed = st->passed;
	x->denied = st->denied;
	x->syn_rate_dropped = st->syn_rate_dropped;
	x->syns = st->syns;
	x->deny_entries = (uint32_t)st->deny_entries;
	x->ports = (char *)st->ports;
	x->syn_rate_per_sec = (uint32_t)st->syn_rate_per_sec;
	x->syn_burst = (uint32_t)st->syn_burst;
}

/* xdp [status] | xdp deny add CIDR | xdp deny del CIDR | xdp deny list */
static nng_msg *handle_xdp(struct cp *cp, Helios__CtlRequest *req)
{
	const char *sub = req->n_args ? req->args[0] : "status";
	bool deny = !strcmp(sub, "deny") && req->n_args >= 2;
	const char *op = deny ? req->args[1] : "";
	char msg[600];

	if (deny && req->n_args == 3 && (!strcmp(op, "add") || !strcmp(op, "del"))) {
		int rc = !strcmp(op, "add") ? xf_deny_add(cp->xdp, req->args[2], msg, sizeof(msg))
		                            : xf_deny_del(cp->xdp, req->args[2], msg, sizeof(msg));
		return cp_ctl_simple(cp, rc < 0 ? 1 : 0, msg);
	}
	bool list = deny && req->n_args == 2 && !strcmp(op, "list");
	if (!list && (strcmp(sub, "status") || req->n_args > 1))
		return cp_ctl_simple(
		    cp, 2,
		    "usage: xdp [status] | xdp deny add CIDR | xdp deny del CIDR | "
		    "xdp deny list");
	struct xf_entry *ents = NULL;
	size_t n = 0;
	if (list && xf_deny_list(cp->xdp, &ents, &n, msg, sizeof(msg)) < 0)
		return cp_ctl_simple(cp, 1, msg);
	struct xf_status *st = malloc(sizeof(*st));
	Helios__XdpDenyEntry *store = calloc(n ? n : 1, sizeof(*store));
	Helios__XdpDenyEntry **rows = calloc(n ? n : 1, sizeof(*rows));
	nng_msg *m = NULL;
	if (st && store && rows) {
		Helios__CtlResponse r;
		Helios__XdpStatus xs = HELIOS__XDP_STATUS__INIT;
		cp_ctl_resp_init(cp, &r);
		xf_get_status(cp->xdp, st);
		xdp_status_msg(st, &xs);
		for (size_t i = 0; i < n; i++) {
			helios__xdp_deny_entry__init(&store[i]);
			store[i].cidr = ents[i].cidr;
			store[i].config = ents[i].config;
			store[i].runtime = ents[i].runtime;
			store[i].drops = ents[i].drops;
			rows[i] = &store[i];
		}
		xs.deny = rows;
		xs.n_deny = n;
		r.xdp = &xs;
		m = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	}
	free(rows);
	free(store);
	free(st);
	free(ents);
	return m ? m : cp_ctl_simple(cp, 1, "out of memory");
}

nng_msg *cp_ctl_handle(struct cp *cp, struct work *w, Helios__Envelope *e, bool *parked)
{
	Helios__CtlRequest *req =
	    helios__ctl_request__unpack(NULL, e->payload.len, e->payload.data);
	if (!req)
		return cp_ctl_simple(cp, 1, "malformed CtlRequest");
	nng_msg *out = NULL;
	const char *v = req->verb;
	if (!strcmp(v, "status")) {
		Helios__CtlResponse r;
		cp_ctl_resp_init(cp, &r);
		r.dataplanes = dp_rows(cp, &r.n_dataplanes, 0);
		r.nodes = cp->nodes;
		r.n_nodes = cp->n_nodes;
		out = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
		dp_rows_free(r.dataplanes, r.n_dataplanes);
	} else if (!strcmp(v, "clients") || !strcmp(v, "servers") || !strcmp(v, "pools") ||
	           !strcmp(v, "stats") || !strcmp(v, "top") || !strcmp(v, "slowlog") ||
	           !strcmp(v, "tenants")) {
		/* fresh numbers: every data plane reports now */
		uint64_t id;
		char n[32] = "20";
		if (!strcmp(v, "slowlog") && req->n_args >= 1)
			snprintf(n, sizeof(n), "%s", req->args[0]);
		cp_dp_add_command(cp, "report", !strcmp(v, "slowlog") ? "slowlog" : NULL, n, &id);
		cp_dp_kick_heartbeats(cp);
		cp_ctl_park(cp, w, req, WAIT_REPORT, id, NULL, "");
		*parked = true;
	} else if (!strcmp(v, "rewrite")) {
		/* rewrite test SQL [TENANT]: the data planes rewrite it with their rules */
		uint64_t id;
		if (req->n_args < 2 || strcmp(req->args[0], "test") ||
		    strlen(req->args[1]) >= sizeof(cp->cmds[0].args[1]) ||
		    (req->n_args >= 3 && strlen(req->args[2]) >= 64)) {
			out = cp_ctl_simple(cp, 2,
			                    "rewrite test SQL [TENANT] (SQL under 4096 bytes)");
		} else {
			cp_dp_add_command3(cp, "report", "rewrite", req->args[1],
			                   req->n_args >= 3 ? req->args[2] : "", &id);
			cp_dp_kick_heartbeats(cp);
			cp_ctl_park(cp, w, req, WAIT_REPORT, id, NULL, "");
			*parked = true;
		}
	} else if (!strcmp(v, "cache")) {
		/* stats: fresh reports; flush: every data plane flushes, then reports */
		uint64_t id;
		bool flush = req->n_args >= 1 && !strcmp(req->args[0], "flush");
		if (req->n_args >= 1 && !flush && strcmp(req->args[0], "stats")) {
			out = cp_ctl_simple(cp, 2, "cache wants stats or flush [TABLE]");
		} else {
			if (flush)
				log_info("control plane: cache flush %s requested",
				         req->n_args >= 2 ? req->args[1] : "(all)");
			cp_dp_add_command(cp, "report", flush ? "cache_flush" : NULL,
			                  flush && req->n_args >= 2 ? req->args[1] : "", &id);
			cp_dp_kick_heartbeats(cp);
			cp_ctl_park(cp, w, req, WAIT_REPORT, id, NULL, "");
			*parked = true;
		}
	} else if (!strcmp(v, "nodes")) {
		Helios__CtlResponse r;
		cp_ctl_resp_init(cp, &r);
		/* breakers live in the data planes: show the worst one reported */
		char *saved[64];
		size_t nn = cp->n_nodes < 64 ? cp->n_nodes : 64;
		uint64_t now = cpwire_mono_ms();
		for (size_t i = 0; i < nn; i++) {
			Helios__NodeStatus *ns = cp->nodes[i];
			saved[i] = ns->breaker;
			const char *worst = "closed";
			for (struct dp *d = cp->dps; d; d = d->next) {
				const Helios__StatsReport *rep = d->hb ? d->hb->report : NULL;
				if (!rep || !cp_dp_connected(cp, d, now))
					continue;
				for (size_t k = 0; k < rep->n_nodes; k++) {
					const char *b = rep->nodes[k]->breaker;
					if (strcmp(rep->nodes[k]->name, ns->name) || !b)
						continue;
					if (!strcmp(b, "open") ||
					    (!strcmp(b, "half-open") && strcmp(worst, "open")))
						worst = b;
				}
			}
			ns->breaker = (char *)worst;
		}
		r.nodes = cp->nodes;
		r.n_nodes = cp->n_nodes;
		out = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
		for (size_t i = 0; i < nn; i++)
			cp->nodes[i]->breaker = saved[i];
	} else if (!strcmp(v, "config")) {
		out = cp_config_handle(cp, w, req, parked);
	} else if (!strcmp(v, "reload")) {
		char msg[600];
		if (cp_config_reload(cp, "reload", msg, sizeof(msg)) == 0) {
			snprintf(msg, sizeof(msg), "reloaded %s", cp->path);
			cp_ctl_xdp_note(cp, msg, sizeof(msg));
			cp_ctl_park(cp, w, req, WAIT_GEN, cp->generation, NULL, msg);
			*parked = true;
		} else {
			char m2[700];
			snprintf(m2, sizeof(m2), "reload refused, configuration unchanged: %s",
			         msg);
			log_error("control plane: %s", m2);
			out = cp_ctl_simple(cp, 1, m2);
		}
	} else if (!strcmp(v, "pause") || !strcmp(v, "resume") || !strcmp(v, "drain") ||
	           !strcmp(v, "undrain")) {
		out = handle_state(cp, w, req, parked);
	} else if (!strcmp(v, "xdp")) {
		out = handle_xdp(cp, req);
	} else if (!strcmp(v, "plugin")) {
		out = cp_plugin_handle(cp, w, req, parked);
	} else {
		char msg[200];
		snprintf(msg, sizeof(msg), "unknown verb '%s'", v);
		out = cp_ctl_simple(cp, 2, msg);
	}
	if (!*parked)
		helios__ctl_request__free_unpacked(req, NULL);
	return out;
}

/* ------------------------------------------------------------ held requests */

/* Whether data plane d has done what held request w waits for. */
static bool dp_done(const struct work *w, const struct dp *d)
{
	const Helios__StatsReport *rep = d->hb ? d->hb->report : NULL;
	switch (w->wait) {
	case WAIT_GEN:
		return d->generation == w->wait_value;
	case WAIT_REPORT:
		return d->result && d->result->id == w->wait_value;
	case WAIT_PLUGIN:
		return d->plugin_gen == w->wait_value;
	case WAIT_PAUSE:
	case WAIT_RESUME: {
		bool has = false;
		for (size_t i = 0; rep && i < rep->n_paused; i++)
			if (!strcmp(rep->paused[i], w->wait_arg))
				has = true;
		return rep && (w->wait == WAIT_PAUSE ? has : !has);
	}
	case WAIT_DRAIN: {
		bool draining = false;
		for (size_t i = 0; rep && i < rep->n_nodes; i++)
			if (!strcmp(rep->nodes[i]->name, w->wait_arg))
				draining = rep->nodes[i]->draining;
		return rep && draining == (w->wait_value != 0);
	}
	default:
		return true;
	}
}

/* The answer to a held plugin change: applied by every connected data
 * plane (0), refused by every one (1: a helioctl load is undone), or some
 * of each or late (4). */
static nng_msg *plugin_finish(struct cp *cp, struct work *w, uint32_t done, uint32_t refused,
                              uint32_t expected, bool timed_out, struct sbuf *errs)
{
	Helios__CtlResponse r;
	cp_ctl_resp_init(cp, &r);
	r.acked = done;
	r.expected = expected;
	r.plugin_generation = cp->plugin_gen;
	char msg[4096];
	int status = done == expected ? 0 : 4;
	const char *why = errs->p ? errs->p + 2 : ""; /* "; data plane ..." */
	if (expected == 0) {
		snprintf(msg, sizeof(msg),
		         "%s (plugin generation %llu; no data plane is connected: they get it when "
		         "they connect)",
		         w->msg, (unsigned long long)w->wait_value);
	} else if (status == 0) {
		snprintf(msg, sizeof(msg),
		         "%s (plugin generation %llu, applied by %u of %u data planes)", w->msg,
		         (unsigned long long)w->wait_value, done, expected);
	} else if (done == 0 && refused == expected) {
		status = 1;
		bool undone = cp_plugins_undo(cp, w->wait_value);
		snprintf(msg, sizeof(msg), "%s: refused by every data plane (%u), %s: %s", w->msg,
		         expected,
		         undone ? "undone: the plugins they run stay"
		                : "they keep the plugins they run",
		         why);
	} else {
		snprintf(msg, sizeof(msg),
		         "%s (plugin generation %llu): %u of %u data planes applied it%s%s", w->msg,
		         (unsigned long long)w->wait_value, done, expected,
		         timed_out ? " in time" : "", errs->p ? errs->p : "");
	}
	r.status = status;
	r.message = msg;
	r.plugin_generation = cp->plugin_gen;
	sbuf_free(errs);
	return cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
}

/* Whether a held helioctl request can be answered, and the answer. A data
 * plane that refused a generation has answered too (with its error). */
static nng_msg *ctl_try_finish(struct cp *cp, struct work *w, bool timed_out)
{
	uint64_t now = cpwire_mono_ms();
	uint32_t expected = 0, done = 0, refused = 0;
	struct sbuf errs;
	sbuf_init(&errs);
	for (struct dp *d = cp->dps; d; d = d->next) {
		if (!cp_dp_connected(cp, d, now))
			continue;
		expected++;
		if (dp_done(w, d)) {
			done++;
		} else if (w->wait == WAIT_GEN && d->reject_gen == w->wait_value) {
			refused++;
			sbuf_printf(&errs, "; data plane %s refused it: %s", d->id, d->last_error);
		} else if (w->wait == WAIT_PLUGIN && d->plugin_reject_gen == w->wait_value) {
			refused++;
			sbuf_printf(&errs, "; data plane %s refused it: %s", d->id,
			            d->plugin_error);
		}
	}
	if (!timed_out && done + refused < expected) {
		sbuf_free(&errs);
		return NULL;
	}
	if (w->wait == WAIT_PLUGIN)
		return plugin_finish(cp, w, done, refused, expected, timed_out, &errs);
	Helios__CtlResponse r;
	cp_ctl_resp_init(cp, &r);
	r.acked = done;
	r.expected = expected;
	char msg[2048];
	int status = done == expected ? 0 : 4;
	if (w->wait == WAIT_REPORT) {
		r.dataplanes = dp_rows(cp, &r.n_dataplanes, w->wait_value);
		if (status)
			snprintf(msg, sizeof(msg), "only %u of %u data planes answered in time",
			         done, expected);
		else
			msg[0] = '\0';
	} else if (expected == 0) {
		snprintf(msg, sizeof(msg),
		         "%s (generation %llu; no data plane is connected: they get it when they "
		         "connect)",
		         w->msg, (unsigned long long)cp->generation);
	} else if (status == 0) {
		snprintf(msg, sizeof(msg), "%s (generation %llu, applied by %u of %u data planes)",
		         w->msg, (unsigned long long)cp->generation, done, expected);
	} else {
		snprintf(msg, sizeof(msg),
		         "%s (generation %llu): %u of %u data planes applied it%s%s", w->msg,
		         (unsigned long long)cp->generation, done, expected,
		         timed_out ? " in time" : "", errs.p ? errs.p : "");
	}
	r.status = status;
	r.message = msg;
	nng_msg *m = cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	if (r.dataplanes)
		dp_rows_free(r.dataplanes, r.n_dataplanes);
	sbuf_free(&errs);
	return m;
}

void cp_ctl_check_parked(struct cp *cp, bool deadlines)
{
	uint64_t now = cpwire_mono_ms();
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		if (w->state != W_PARKED)
			continue;
		if (w->kind == P_HB) {
			if (deadlines && now >= w->deadline_ms) {
				w->out = cp_dp_reply(cp, w->dp, false);
				cp_dp_forget_parked(w->dp);
				w->state = W_SEND;
			}
			continue;
		}
		nng_msg *m = ctl_try_finish(cp, w, deadlines && now >= w->deadline_ms);
		if (m) {
			helios__ctl_request__free_unpacked(w->req, NULL);
			w->req = NULL;
			w->out = m;
			w->state = W_SEND;
		}
	}
}
