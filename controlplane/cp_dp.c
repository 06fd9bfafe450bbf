/*
 * The data planes as the control plane sees them: Register and Heartbeat
 * (held as a long poll while there is nothing new for that data plane),
 * the Reply with everything a data plane must hold (snapshot, routing
 * table, paused/drained state, commands, its tenant shares), the command
 * queue, and the per-tenant usage the cluster-wide shares come from.
 */
#include "controlplane/cp_internal.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t interval_ms(const struct cp *cp)
{
	return cp->live ? (uint32_t)cp->live->heartbeat_interval_ms : 1000u;
}

bool cp_dp_connected(const struct cp *cp, const struct dp *d, uint64_t now)
{
	return d->parked || now - d->last_seen_ms <= 3ull * interval_ms(cp);
}

static struct dp *dp_find(struct cp *cp, const char *id)
{
	for (struct dp *d = cp->dps; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	return NULL;
}

static bool dp_needs_reply(const struct cp *cp, const struct dp *d)
{
	if (d->generation != cp->generation && d->reject_gen != cp->generation)
		return true;
	if (d->state_sent != cp->state_ver)
		return true;
	if (d->plugin_gen != cp->plugin_gen && d->plugin_reject_gen != cp->plugin_gen)
		return true;
	for (size_t i = 0; i < cp->n_cmds; i++)
		if (cp->cmds[i].id > d->cmd_seen)
			return true;
	return false;
}

static void note_tenant_usage(struct dp *d, const Helios__StatsReport *rep)
{
	uint64_t now = cpwire_mono_ms();
	for (size_t i = 0; rep && i < rep->n_tenants; i++) {
		const Helios__TenantStats *t = rep->tenants[i];
		size_t k = 0;
		while (k < d->n_tenants && strcmp(d->tenants[k].id, t->id))
			k++;
		if (k == d->n_tenants) {
			if (k == DP_TENANTS)
				continue;
			d->n_tenants++;
			memset(&d->tenants[k], 0, sizeof(d->tenants[k]));
			snprintf(d->tenants[k].id, sizeof(d->tenants[k].id), "%s", t->id);
			d->tenants[k].queries = t->queries;
			d->tenants[k].at_ms = now;
		}
		struct dp_tenant *u = &d->tenants[k];
		if (now > u->at_ms + 200) {
			u->qps = t->queries >= u->queries ? (double)(t->queries - u->queries) *
			                                        1000.0 / (double)(now - u->at_ms)
			                                  : 0;
			u->queries = t->queries;
			u->at_ms = now;
		}
		u->clients = t->clients;
	}
}

static const struct dp_tenant *dp_tenant_of(const struct dp *d, const char *id)
{
	for (size_t k = 0; k < d->n_tenants; k++)
		if (!strcmp(d->tenants[k].id, id))
			return &d->tenants[k];
	return NULL;
}

/* Splits each tenant's cluster-wide limits over the connected data planes:
 * connections: each keeps what it holds plus an even part of what is left;
 * queries per second: in proportion to what each ran lately, with a floor
 * (5 % of the limit) so an idle one can start. The shares never add up to
 * more than the limit. */
static Helios__TenantShare **tenant_shares(struct cp *cp, const struct dp *me, size_t *n)
{
	*n = 0;
	const struct cfg *c = cp->live;
	if (!c || !c->n_tenants)
		return NULL;
	Helios__TenantShare **v = calloc(c->n_tenants, sizeof(*v));
	uint64_t now = cpwire_mono_ms();
	for (size_t i = 0; v && i < c->n_tenants; i++) {
		const struct cfg_tenant *t = &c->tenants[i];
		if (t->max_connections <= 0 && t->rate_limit <= 0)
			continue;
		double clients = 0, weights = 0, my_w = 0;
		int dps = 0;
		for (struct dp *d = cp->dps; d; d = d->next) {
			if (!cp_dp_connected(cp, d, now) && d != me)
				continue;
			dps++;
			const struct dp_tenant *u = dp_tenant_of(d, t->id);
			clients += u ? u->clients : 0;
			double w = u ? u->qps : 0;
			double floor = t->rate_limit * 0.05;
			if (w < floor)
				w = floor;
			weights += w;
			if (d == me)
				my_w = w;
		}
		Helios__TenantShare *s = malloc(sizeof(*s));
		if (!s)
			break;
		helios__tenant_share__init(s);
		s->id = (char *)t->id;
		s->connections = -1;
		s->qps = -1;
		const struct dp_tenant *mine = dp_tenant_of(me, t->id);
		if (t->max_connections > 0 && dps > 0) {
			double spare = t->max_connections - clients;
			s->connections = (mine ? mine->clients : 0) +
			                 (spare > 0 ? (double)(int)(spare / dps) : 0);
		}
		if (t->rate_limit > 0 && weights > 0)
			s->qps = t->rate_limit * my_w / weights;
		v[(*n)++] = s;
	}
	return v;
}

/* The Reply a data plane gets: everything it must hold. */
nng_msg *cp_dp_reply(struct cp *cp, struct dp *d, bool reregister)
{
	Helios__Reply r = HELIOS__REPLY__INIT;
	Helios__ConfigSnapshot snap;
	Helios__RoutingTable rt = HELIOS__ROUTING_TABLE__INIT;
	Helios__Command cmd_store[MAX_COMMANDS];
	Helios__Command *cmds[MAX_COMMANDS];
	Helios__PluginSet *ps = NULL;
	r.ok = true;
	r.reregister = reregister;
	r.heartbeat_interval_ms = interval_ms(cp);
	if (d && !reregister) {
		if (d->generation != cp->generation && d->reject_gen != cp->generation)
			r.snapshot = cp_config_snapshot_msg(cp, &snap);
		rt.version = cp->routing_ver;
		rt.nodes = cp->nodes;
		rt.n_nodes = cp->n_nodes;
		r.routing = &rt;
		r.paused = cp->paused;
		r.n_paused = cp->n_paused;
		r.drained = cp->drained;
		r.n_drained = cp->n_drained;
		for (size_t i = 0; i < cp->n_cmds; i++) {
			if (cp->cmds[i].id <= d->cmd_seen)
				continue;
			Helios__Command *c = &cmd_store[r.n_commands];
			helios__command__init(c);
			c->id = cp->cmds[i].id;
			c->verb = cp->cmds[i].verb;
			struct command *src = &cp->cmds[i];
			for (size_t k = 0; k < src->n_args; k++)
				src->argv[k] = src->args[k];
			c->args = src->argv;
			c->n_args = src->n_args;
			cmds[r.n_commands++] = c;
		}
		r.commands = cmds;
		d->state_sent = cp->state_ver;
		r.tenant_shares = tenant_shares(cp, d, &r.n_tenant_shares);
		/* the modules only to a data plane that runs another set */
		if (d->plugin_gen != cp->plugin_gen && d->plugin_reject_gen != cp->plugin_gen)
			r.plugins = ps = cp_plugins_msg(cp);
	}
	nng_msg *m = cp_pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
	cp_plugins_msg_free(ps);
	for (size_t i = 0; i < r.n_tenant_shares; i++)
		free(r.tenant_shares[i]);
	free(r.tenant_shares);
	return m;
}

void cp_dp_forget_parked(struct dp *d)
{
	d->parked = NULL;
}

/* Every held heartbeat gets its answer now (something changed). */
void cp_dp_kick_heartbeats(struct cp *cp)
{
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		if (w->state != W_PARKED || w->kind != P_HB)
			continue;
		w->out = cp_dp_reply(cp, w->dp, false);
		cp_dp_forget_parked(w->dp);
		w->state = W_SEND;
	}
}

void cp_dp_add_command3(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
                        const char *arg2, uint64_t *id)
{
	if (cp->n_cmds == MAX_COMMANDS) {
		memmove(cp->cmds, cp->cmds + 1, (MAX_COMMANDS - 1) * sizeof(cp->cmds[0]));
		cp->n_cmds--;
	}
	struct command *c = &cp->cmds[cp->n_cmds++];
	c->id = ++cp->next_cmd;
	snprintf(c->verb, sizeof(c->verb), "%s", verb);
	c->n_args = 0;
	const char *a[3] = {arg0, arg1, arg2};
	for (size_t k = 0; k < 3 && a[k]; k++) {
		snprintf(c->args[k], sizeof(c->args[k]), "%s", a[k]);
		c->n_args = k + 1;
	}
	c->created_ms = cpwire_mono_ms();
	*id = c->id;
}

void cp_dp_add_command(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
                       uint64_t *id)
{
	cp_dp_add_command3(cp, verb, arg0, arg0 ? arg1 : NULL, NULL, id);
}

void cp_dp_handle_register(struct cp *cp, struct work *w, Helios__Envelope *e)
{
	Helios__Register *reg = helios__register__unpack(NULL, e->payload.len, e->payload.data);
	if (!reg || !reg->dataplane_id[0]) {
		Helios__Reply r = HELIOS__REPLY__INIT;
		r.error = "malformed Register";
		w->out = cp_pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
		if (reg)
			helios__register__free_unpacked(reg, NULL);
		return;
	}
	struct dp *d = dp_find(cp, reg->dataplane_id);
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d) {
			helios__register__free_unpacked(reg, NULL);
			return;
		}
		snprintf(d->id, sizeof(d->id), "%s", reg->dataplane_id);
		d->next = cp->dps;
		cp->dps = d;
	}
	if (d->reg)
		helios__register__free_unpacked(d->reg, NULL);
	d->reg = reg;
	d->generation = reg->generation;
	d->reject_gen = 0;
	d->plugin_gen = reg->plugin_generation;
	d->plugin_reject_gen = 0;
	d->cmd_seen = cp->next_cmd; /* older commands are not for it */
	d->state_sent = 0;
	d->registrations++;
	d->last_seen_ms = cpwire_mono_ms();
	log_info("control plane: data plane %s registered (pid %u, %s, generation %llu)", d->id,
	         reg->pid, reg->listen_address, (unsigned long long)reg->generation);
	w->out = cp_dp_reply(cp, d, false);
}

void cp_dp_handle_heartbeat(struct cp *cp, struct work *w, Helios__Envelope *e)
{
	Helios__Heartbeat *hb = helios__heartbeat__unpack(NULL, e->payload.len, e->payload.data);
	struct dp *d = hb ? dp_find(cp, hb->dataplane_id) : NULL;
	if (!d) {
		/* restarted control plane, or never registered: ask for a Register */
		if (hb)
			helios__heartbeat__free_unpacked(hb, NULL);
		w->out = cp_dp_reply(cp, NULL, true);
		return;
	}
	if (d->parked) {
		/* a heartbeat resent after a timeout replaces the held one */
		struct work *old = d->parked;
		old->out = cp_dp_reply(cp, d, false);
		old->state = W_SEND;
		d->parked = NULL;
	}
	d->last_seen_ms = cpwire_mono_ms();
	d->generation = hb->generation;
	if (hb->reject) {
		d->reject_gen = hb->reject->generation;
		snprintf(d->last_error, sizeof(d->last_error), "%s", hb->reject->error);
		log_warn("control plane: data plane %s refused generation %llu: %s", d->id,
		         (unsigned long long)hb->reject->generation, hb->reject->error);
	}
	if (hb->plugin_reject) {
		d->plugin_reject_gen = hb->plugin_reject->generation;
		snprintf(d->plugin_error, sizeof(d->plugin_error), "%s", hb->plugin_reject->error);
		log_warn("control plane: data plane %s refused plugin set generation %llu: %s",
		         d->id, (unsigned long long)hb->plugin_reject->generation,
		         hb->plugin_reject->error);
	}
	if (hb->plugin_generation != d->plugin_gen && hb->plugin_generation == cp->plugin_gen)
		d->plugin_error[0] = '\0'; /* it runs the current set */
	d->plugin_gen = hb->plugin_generation;
	if (hb->ack) {
		d->last_error[0] = '\0';
		cp_free_strv(d->restart_pending, d->n_restart);
		d->restart_pending = NULL;
		d->n_restart = 0;
		for (size_t i = 0; i < hb->ack->n_restart_pending; i++)
			cp_strv_add(&d->restart_pending, &d->n_restart,
			            hb->ack->restart_pending[i]);
	}
	for (size_t i = 0; i < hb->n_results; i++) {
		Helios__CommandResult *res = hb->results[i];
		if (d->result)
			helios__command_result__free_unpacked(d->result, NULL);
		/* keep it: steal from the heartbeat */
		d->result = res;
		hb->results[i] = NULL;
	}
	hb->n_results = 0; /* the array itself is freed with hb */
	if (hb->command_seq > d->cmd_seen)
		d->cmd_seen = hb->command_seq;
	bool hold = hb->hold;
	note_tenant_usage(d, hb->report);
	if (d->hb)
		helios__heartbeat__free_unpacked(d->hb, NULL);
	d->hb = hb;
	if (!hold || dp_needs_reply(cp, d)) {
		w->out = cp_dp_reply(cp, d, false);
		return;
	}
	w->state = W_PARKED;
	w->kind = P_HB;
	w->dp = d;
	w->deadline_ms = cpwire_mono_ms() + interval_ms(cp);
	d->parked = w;
}
