/*
 * Node checks for the control plane: each round asks every node whether it
 * is up and in recovery and how far behind it is (libpq, controlplane/
 * probe.c, or a bare TCP connect without a check user), picks the primary
 * (failover) and updates the routing table pushed to the data planes.
 */
#include "controlplane/cp_internal.h"

#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "controlplane/probe.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A TCP connect, closed before the startup packet: PostgreSQL logs
 * nothing for that. Role and replay lag come with routing. */
static int probe(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	int r = getaddrinfo(host, ps, &hints, &ai);
	if (r) {
		snprintf(err, errlen, "%s", gai_strerror(r));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r < 0 && errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		r = poll(&p, 1, timeout_ms);
		if (r == 0) {
			snprintf(err, errlen, "connect timed out after %d ms", timeout_ms);
			close(fd);
			return -1;
		}
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		errno = soerr;
		r = soerr ? -1 : 0;
	}
	if (r < 0)
		snprintf(err, errlen, "%s", strerror(errno));
	close(fd);
	return r < 0 ? -1 : 0;
}

struct probe_target {
	char name[CFG_NAME_MAX], host[CFG_HOST_MAX], cfg_role[16];
	int port;
	struct probe_result r;
};

/* Last time each node answered, by name (failover needs how long the
 * primary has been gone). */
static uint64_t *last_ok_slot(struct cp *cp, const char *name)
{
	for (size_t i = 0; i < cp->n_seen; i++)
		if (!strcmp(cp->seen[i].name, name))
			return &cp->seen[i].last_ok_ms;
	struct seen *v = realloc(cp->seen, (cp->n_seen + 1) * sizeof(*v));
	if (!v)
		return NULL;
	cp->seen = v;
	memset(&v[cp->n_seen], 0, sizeof(v[0]));
	snprintf(v[cp->n_seen].name, sizeof(v[0].name), "%s", name);
	return &v[cp->n_seen++].last_ok_ms;
}

/* Decides the primary from what the nodes said: the current one stays
 * while it answers as a primary; when it has not answered for
 * failover_timeout_secs (or answers as a replica) and another node reports
 * it is not in recovery, that node takes over. */
static int choose_primary(struct cp *cp, struct probe_target *t, size_t n, bool sql, uint64_t now)
{
	int cur = -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, cp->primary))
			cur = (int)i;
	if (cur < 0) /* first round, or the primary left the config */
		for (size_t i = 0; i < n; i++)
			if (!strcmp(t[i].cfg_role, "primary")) {
				cur = (int)i;
				break;
			}
	if (!sql)
		return cur; /* reachability only: roles as configured */
	if (cur >= 0 && t[cur].r.up && !t[cur].r.in_recovery)
		return cur;
	uint64_t *ok = cur >= 0 ? last_ok_slot(cp, t[cur].name) : NULL;
	bool gone = cur < 0 || (t[cur].r.up && t[cur].r.in_recovery) ||
	            (ok && now - *ok >= (uint64_t)cp->live->routing.failover_timeout_secs * 1000u);
	if (!gone)
		return cur; /* still within the timeout: wait for it */
	for (size_t i = 0; i < n; i++) {
		if ((int)i == cur || !t[i].r.up || t[i].r.in_recovery)
			continue;
		log_warn("control plane: failover: node %s is the primary now (%s %s)", t[i].name,
		         cur >= 0 ? t[cur].name : "no primary",
		         cur < 0       ? "configured"
		         : t[cur].r.up ? "is in recovery"
		                       : "has not answered");
		return (int)i;
	}
	return cur;
}

void cp_probe_round(struct cp *cp)
{
	pthread_mutex_lock(&cp->mu);
	size_t n = cp->live->n_nodes;
	struct probe_target *t = calloc(n ? n : 1, sizeof(*t));
	struct probe_node *pn = calloc(n ? n : 1, sizeof(*pn));
	struct probe_settings ps;
	memset(&ps, 0, sizeof(ps));
	const struct cfg_user *u = cfg_check_user(cp->live);
	const char *pw = u ? cfg_user_plain_password(u) : NULL;
	bool sql = u && pw && cp->checker;
	if (sql) {
		snprintf(ps.user, sizeof(ps.user), "%s", u->name);
		snprintf(ps.password, sizeof(ps.password), "%s", pw);
		snprintf(ps.database, sizeof(ps.database), "%s", cp->live->routing.check_database);
		snprintf(ps.table, sizeof(ps.table), "%s", cp->live->routing.heartbeat_table);
		ps.timeout_ms = 2000;
	}
	int hint = -1;
	for (size_t i = 0; t && pn && i < n; i++) {
		const struct cfg_node *nd = &cp->live->nodes[i];
		snprintf(t[i].name, sizeof(t[i].name), "%s", nd->name);
		snprintf(t[i].host, sizeof(t[i].host), "%s", nd->host);
		snprintf(t[i].cfg_role, sizeof(t[i].cfg_role), "%s",
		         nd->role == CFG_ROLE_PRIMARY ? "primary" : "replica");
		t[i].port = nd->port;
		snprintf(pn[i].name, sizeof(pn[i].name), "%s", nd->name);
		snprintf(pn[i].host, sizeof(pn[i].host), "%s", nd->host);
		pn[i].port = nd->port;
		if (!strcmp(nd->name, cp->primary))
			hint = (int)i;
	}
	pthread_mutex_unlock(&cp->mu);
	if (!t || !pn) {
		free(t);
		free(pn);
		return;
	}
	struct probe_result *res = calloc(n ? n : 1, sizeof(*res));
	if (sql && res) {
		prober_round(cp->checker, pn, n, &ps, hint, res);
		for (size_t i = 0; i < n; i++)
			t[i].r = res[i];
	} else {
		for (size_t i = 0; i < n; i++) {
			t[i].r.up = probe(t[i].host, t[i].port, 1000, t[i].r.error,
			                  sizeof(t[i].r.error)) == 0;
			t[i].r.in_recovery = strcmp(t[i].cfg_role, "primary") != 0;
			t[i].r.lag_ms = -1;
		}
	}
	free(res);
	explicit_bzero(&ps, sizeof(ps));

	pthread_mutex_lock(&cp->mu);
	uint64_t mono = cpwire_mono_ms();
	for (size_t i = 0; i < n; i++) {
		uint64_t *ok = last_ok_slot(cp, t[i].name);
		if (ok && (t[i].r.up || !*ok))
			*ok = mono; /* never seen: the timeout starts now */
	}
	int prim = choose_primary(cp, t, n, sql, mono);
	if (prim >= 0)
		snprintf(cp->primary, sizeof(cp->primary), "%s", t[prim].name);
	bool changed = n != cp->n_nodes;
	Helios__NodeStatus **nv = calloc(n ? n : 1, sizeof(*nv));
	double now = cpwire_now();
	for (size_t i = 0; nv && i < n; i++) {
		Helios__NodeStatus *s = malloc(sizeof(*s));
		if (!s)
			break;
		helios__node_status__init(s);
		bool is_primary = (int)i == prim;
		char err[400];
		snprintf(err, sizeof(err), "%s", t[i].r.up ? "" : t[i].r.error);
		const char *role = is_primary ? "primary" : "replica";
		bool healthy = t[i].r.up;
		if (t[i].r.up && !is_primary && sql && !t[i].r.in_recovery) {
			/* a second node that says it is a primary gets no traffic;
			 * only the chosen one carries the primary role */
			healthy = false;
			snprintf(err, sizeof(err),
			         "reports it is a primary while %s is the primary: not used",
			         cp->primary);
		} else if (t[i].r.up && is_primary && t[i].r.error[0]) {
			/* the heartbeat could not be written: replicas' lag is unknown */
			snprintf(err, sizeof(err),
			         "heartbeat not written (check routing.check_user, check_database, "
			         "heartbeat_table): %s",
			         t[i].r.error);
		} else if (t[i].r.up && t[i].r.lag_ms < 0 && t[i].r.error[0]) {
			snprintf(err, sizeof(err), "lag unknown: %s", t[i].r.error);
		}
		s->name = cp_xstrdup(t[i].name);
		s->host = cp_xstrdup(t[i].host);
		s->port = (uint32_t)t[i].port;
		s->role = cp_xstrdup(role);
		s->healthy = healthy;
		s->lag_ms = t[i].r.lag_ms;
		s->error = cp_xstrdup(err);
		s->draining = cp_strv_has(cp->drained, cp->n_drained, s->name);
		s->checked_at = now;
		nv[i] = s;
		if (!changed) {
			Helios__NodeStatus *o = cp->nodes[i];
			/* lag moves every round: count a change when it crosses what
			 * routing cares about (the limit), or every 10 s of drift */
			int64_t lim = cp->live->routing.max_replica_lag_ms;
			changed = strcmp(o->name, s->name) || strcmp(o->role, s->role) ||
			          o->healthy != s->healthy || strcmp(o->error, s->error) ||
			          (o->lag_ms > lim) != (s->lag_ms > lim) ||
			          (o->lag_ms < 0) != (s->lag_ms < 0) ||
			          llabs(o->lag_ms - s->lag_ms) >= 10000 ||
			          strcmp(o->host, s->host) || o->port != s->port;
		}
		bool was_known = cp->nodes && i < cp->n_nodes;
		if (!healthy && (!was_known || cp->nodes[i]->healthy))
			log_warn("control plane: node %s (%s:%d) not usable: %s", s->name, s->host,
			         t[i].port, err);
		else if (healthy && err[0] && (!was_known || strcmp(cp->nodes[i]->error, err)))
			log_warn("control plane: node %s: %s", s->name,
			         err); /* once per new text */
	}
	/* the table always carries the latest lag figures; a push only when
	 * something routing depends on changed */
	for (size_t i = 0; i < cp->n_nodes; i++)
		protobuf_c_message_free_unpacked(&cp->nodes[i]->base, NULL);
	free(cp->nodes);
	cp->nodes = nv;
	cp->n_nodes = nv ? n : 0;
	if (changed) {
		cp->routing_ver++;
		cp->state_ver++;
		cp_dp_kick_heartbeats(cp);
	}
	cp_unlock_and_send(cp);
	free(t);
	free(pn);
}

void *cp_probe_main(void *arg)
{
	struct cp *cp = arg;
	for (;;) {
		pthread_mutex_lock(&cp->mu);
		int secs = cp->live->routing.lag_check_interval_secs;
		if (cp->live->health_check_interval_secs < secs)
			secs = cp->live->health_check_interval_secs;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += secs > 0 ? secs : 1;
		while (!cp->stopping)
			if (pthread_cond_timedwait(&cp->cv, &cp->mu, &ts) == ETIMEDOUT)
				break;
		bool stop = cp->stopping;
		pthread_mutex_unlock(&cp->mu);
		if (stop)
			return NULL;
		cp_probe_round(cp);
	}
}
