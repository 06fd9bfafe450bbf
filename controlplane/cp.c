/*
 * Control plane core. Threads: nng's own (request callbacks, one nng
 * context per in-flight request), a timer (held requests' deadlines) and a
 * prober (node reachability). All state sits behind cp->mu; replies are
 * packed under it and sent after it is released.
 *
 * Data planes long-poll: a heartbeat is answered at once when the control
 * plane has something for that data plane, otherwise held until
 * heartbeat_interval_ms passes or something happens (kick_heartbeats).
 * helioctl requests that must see the data planes act (config set, reload,
 * pause, resume, drain, clients, servers) are held until every connected
 * data plane has answered, or their timeout.
 */
#include "controlplane/cp.h"

#include "common/admin_http.h"
#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "controlplane/probe.h"
#include "controlplane/xdp.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_DEFAULT_TIMEOUT_MS 5000
#define MAX_COMMANDS           32

enum work_state { W_RECV, W_SEND, W_PARKED, W_DONE };
enum park_kind { P_HB, P_CTL };
enum wait_kind { WAIT_NONE, WAIT_GEN, WAIT_REPORT, WAIT_PAUSE, WAIT_RESUME, WAIT_DRAIN };

struct dp;

struct work {
	struct cp *cp;
	nng_aio *aio;
	nng_ctx ctx;
	enum work_state state;
	enum park_kind kind;
	struct dp *dp;           /* P_HB */
	Helios__CtlRequest *req; /* P_CTL */
	enum wait_kind wait;     /* P_CTL */
	uint64_t wait_value;     /* generation or command id */
	char wait_arg[128];      /* database or node */
	uint64_t deadline_ms;
	char msg[1536]; /* what the answer starts with */
	nng_msg *out;   /* reply ready to go */
};

/* What a data plane reported of one tenant: for cluster-wide shares. */
#define DP_TENANTS 64
struct dp_tenant {
	char id[64];
	uint32_t clients;
	uint64_t queries, at_ms;
	double qps; /* queries per second between its last two reports */
};

struct dp {
	char id[128];
	struct dp_tenant tenants[DP_TENANTS];
	size_t n_tenants;
	Helios__Register *reg;
	Helios__Heartbeat *hb; /* last heartbeat, its summary report */
	Helios__CommandResult *result;
	uint64_t generation, reject_gen;
	char last_error[512];
	uint64_t last_seen_ms;
	uint64_t registrations;
	uint64_t cmd_seen;
	uint64_t state_sent; /* cp->state_ver last sent */
	char **restart_pending;
	size_t n_restart;
	struct work *parked;
	struct dp *next;
};

struct command {
	uint64_t id;
	char verb[32];
	char args[3][4096]; /* "" = absent; a statement for "rewrite" */
	char *argv[3];      /* into args, for the Command message */
	size_t n_args;
	uint64_t created_ms;
};

struct cp {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	bool embedded;
	nng_socket sock;
	struct work **works;
	size_t n_works;
	pthread_t timer, prober;
	bool timer_started, prober_started;

	char path[CFG_PATH_MAX];
	char ovr_path[CFG_PATH_MAX];
	struct cfg *live; /* file + overrides */
	struct cfg *file; /* file alone, for config diff */
	char **ovr_keys;  /* overrides, one TOML line each */
	char **ovr_lines;
	size_t n_ovr;
	uint64_t generation;
	char *snapshot_toml;
	char source[256];
	uint32_t schema;

	struct dp *dps;
	struct command cmds[MAX_COMMANDS];
	size_t n_cmds;
	uint64_t next_cmd;
	char **paused, **drained;
	size_t n_paused, n_drained;
	uint64_t state_ver;
	Helios__NodeStatus **nodes;
	size_t n_nodes;
	uint64_t routing_ver;
	char primary[CFG_NAME_MAX]; /* the node the routing table calls primary */
	struct seen {
		char name[CFG_NAME_MAX];
		uint64_t last_ok_ms;
	} * seen;
	size_t n_seen;
	struct prober *checker; /* libpq checks (role, lag) */

	uint64_t start_ms;
	struct admin_http *http;
	struct xf *xdp; /* the XDP admission filter, following cp->live */
};

static void work_cb(void *arg);

/* ------------------------------------------------------------ helpers */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* Snapshot text holds passwords: wipe before freeing. */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -1;
	(*n)++;
	return 0;
}

static void strv_del(char **v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++) {
		if (!strcmp(v[i], s)) {
			free(v[i]);
			memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(*v));
			(*n)--;
			return;
		}
	}
}

static uint32_t interval_ms(const struct cp *cp)
{
	return cp->live ? (uint32_t)cp->live->heartbeat_interval_ms : 1000u;
}

static bool dp_connected(const struct cp *cp, const struct dp *d, uint64_t now)
{
	return d->parked || now - d->last_seen_ms <= 3ull * interval_ms(cp);
}

static nng_msg *pack_msg(Helios__MsgType type, uint64_t gen, const ProtobufCMessage *m)
{
	size_t len;
	uint8_t *buf = cpwire_pack(type, gen, m, &len);
	if (!buf)
		return NULL;
	nng_msg *msg = NULL;
	if (nng_msg_alloc(&msg, 0) == 0 && nng_msg_append(msg, buf, len) != 0) {
		nng_msg_free(msg);
		msg = NULL;
	}
	free(buf);
	return msg;
}

/* ------------------------------------------------------------ overrides file */

static char *overrides_text(const struct cp *cp, char **skip_key, const char *add_key,
                            const char *add_line, uint64_t gen)
{
	struct sbuf b;
	sbuf_init(&b);
	sbuf_printf(&b,
	            "# HeliosProxy live configuration: changes made with `helioctl config set`,\n"
	            "# applied over %s. Written by the control plane; edit with helioctl.\n"
	            "# generation = %llu\n",
	            cp->path, (unsigned long long)gen);
	for (size_t i = 0; i < cp->n_ovr; i++) {
		if ((skip_key && *skip_key && !strcmp(cp->ovr_keys[i], *skip_key)) ||
		    (add_key && !strcmp(cp->ovr_keys[i], add_key)))
			continue;
		sbuf_printf(&b, "%s\n", cp->ovr_lines[i]);
	}
	if (add_key && add_line)
		sbuf_printf(&b, "%s\n", add_line);
	return sbuf_take(&b, NULL);
}

/* Atomic replace: temp file, fsync, rename, fsync the folder. */
static int write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[CFG_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	char dir[CFG_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Reads the overrides file: its lines ("key = value") and the generation
 * recorded in its header. Missing file = no overrides. */
static int read_overrides(struct cp *cp, char **text_out, uint64_t *gen, char *err, size_t errlen)
{
	*text_out = NULL;
	*gen = 0;
	FILE *f = fopen(cp->ovr_path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", cp->ovr_path, strerror(errno));
		return -1;
	}
	struct sbuf b;
	sbuf_init(&b);
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		sbuf_puts(&b, line);
		unsigned long long g;
		if (sscanf(line, "# generation = %llu", &g) == 1)
			*gen = g;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		char *eq = strchr(p, '=');
		if (!eq)
			continue; /* the TOML reader reports it with its line */
		char *e = eq;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		char key[256];
		snprintf(key, sizeof(key), "%.*s", (int)(e - p), p);
		p[strcspn(p, "\n")] = '\0';
		strv_add(&cp->ovr_keys, &cp->n_ovr, key);
		cp->n_ovr--;
		strv_add(&cp->ovr_lines, &cp->n_ovr, p);
	}
	fclose(f);
	*text_out = sbuf_take(&b, NULL);
	return 0;
}

/* ------------------------------------------------------------ snapshots */

/* Makes c the live config with a new generation and persists that
 * generation; the XDP filter follows it (a failure there is logged and
 * shown by helioctl xdp, the configuration stays). Takes c. */
static void install(struct cp *cp, struct cfg *c, const char *source)
{
	char *toml = cfg_to_toml(c);
	if (!toml) {
		log_error("control plane: out of memory building a snapshot");
		cfg_free(c);
		return;
	}
	cfg_free(cp->live);
	cp->live = c;
	free_secret(cp->snapshot_toml);
	cp->snapshot_toml = toml;
	cp->generation++;
	snprintf(cp->source, sizeof(cp->source), "%s", source);
	log_set_level_str(c->log_level);
	log_info("control plane: configuration generation %llu (%s)",
	         (unsigned long long)cp->generation, source);
	char err[600];
	(void)xf_apply(cp->xdp, c, err, sizeof(err));
}

static Helios__ConfigSnapshot *snapshot_msg(struct cp *cp, Helios__ConfigSnapshot *s)
{
	helios__config_snapshot__init(s);
	s->schema_version = cp->schema;
	s->generation = cp->generation;
	s->toml = cp->snapshot_toml;
	s->source = cp->source;
	return s;
}

/* ------------------------------------------------------------ data planes */

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
			if (!dp_connected(cp, d, now) && d != me)
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
static nng_msg *dp_reply(struct cp *cp, struct dp *d, bool reregister)
{
	Helios__Reply r = HELIOS__REPLY__INIT;
	Helios__ConfigSnapshot snap;
	Helios__RoutingTable rt = HELIOS__ROUTING_TABLE__INIT;
	Helios__Command cmd_store[MAX_COMMANDS];
	Helios__Command *cmds[MAX_COMMANDS];
	r.ok = true;
	r.reregister = reregister;
	r.heartbeat_interval_ms = interval_ms(cp);
	if (d && !reregister) {
		if (d->generation != cp->generation && d->reject_gen != cp->generation)
			r.snapshot = snapshot_msg(cp, &snap);
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
	}
	nng_msg *m = pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
	for (size_t i = 0; i < r.n_tenant_shares; i++)
		free(r.tenant_shares[i]);
	free(r.tenant_shares);
	return m;
}

static void dp_forget_parked(struct dp *d)
{
	d->parked = NULL;
}

/* Every held heartbeat gets its answer now (something changed). */
static void kick_heartbeats(struct cp *cp)
{
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		if (w->state != W_PARKED || w->kind != P_HB)
			continue;
		w->out = dp_reply(cp, w->dp, false);
		dp_forget_parked(w->dp);
		w->state = W_SEND;
	}
}

static void add_command3(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
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

static void add_command(struct cp *cp, const char *verb, const char *arg0, const char *arg1,
                        uint64_t *id)
{
	add_command3(cp, verb, arg0, arg0 ? arg1 : NULL, NULL, id);
}

static void handle_register(struct cp *cp, struct work *w, Helios__Envelope *e)
{
	Helios__Register *reg = helios__register__unpack(NULL, e->payload.len, e->payload.data);
	if (!reg || !reg->dataplane_id[0]) {
		Helios__Reply r = HELIOS__REPLY__INIT;
		r.error = "malformed Register";
		w->out = pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
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
	d->cmd_seen = cp->next_cmd; /* older commands are not for it */
	d->state_sent = 0;
	d->registrations++;
	d->last_seen_ms = cpwire_mono_ms();
	log_info("control plane: data plane %s registered (pid %u, %s, generation %llu)", d->id,
	         reg->pid, reg->listen_address, (unsigned long long)reg->generation);
	w->out = dp_reply(cp, d, false);
}

static void handle_heartbeat(struct cp *cp, struct work *w, Helios__Envelope *e)
{
	Helios__Heartbeat *hb = helios__heartbeat__unpack(NULL, e->payload.len, e->payload.data);
	struct dp *d = hb ? dp_find(cp, hb->dataplane_id) : NULL;
	if (!d) {
		/* restarted control plane, or never registered: ask for a Register */
		if (hb)
			helios__heartbeat__free_unpacked(hb, NULL);
		w->out = dp_reply(cp, NULL, true);
		return;
	}
	if (d->parked) {
		/* a heartbeat resent after a timeout replaces the held one */
		struct work *old = d->parked;
		old->out = dp_reply(cp, d, false);
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
	if (hb->ack) {
		d->last_error[0] = '\0';
		free_strv(d->restart_pending, d->n_restart);
		d->restart_pending = NULL;
		d->n_restart = 0;
		for (size_t i = 0; i < hb->ack->n_restart_pending; i++)
			strv_add(&d->restart_pending, &d->n_restart, hb->ack->restart_pending[i]);
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
		w->out = dp_reply(cp, d, false);
		return;
	}
	w->state = W_PARKED;
	w->kind = P_HB;
	w->dp = d;
	w->deadline_ms = cpwire_mono_ms() + interval_ms(cp);
	d->parked = w;
}

/* ------------------------------------------------------------ helioctl */

static void resp_init(struct cp *cp, Helios__CtlResponse *r)
{
	helios__ctl_response__init(r);
	r->generation = cp->generation;
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
		s->connected = dp_connected(cp, d, now);
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

static const char *key_value(const struct cfg *c, const struct cfg_key *k, char *buf, size_t cap)
{
	if (cfg_format_value(c, k, buf, cap) != 0)
		snprintf(buf, cap, "?");
	return buf;
}

static bool overridden(const struct cp *cp, const char *key)
{
	return strv_has(cp->ovr_keys, cp->n_ovr, key);
}

/* Appends why the XDP filter is not attached, if it is not, to a
 * confirmation: the change was taken, the filter did not follow. */
static void xdp_note(struct cp *cp, char *msg, size_t cap)
{
	struct xf_status st;
	xf_get_status(cp->xdp, &st);
	size_t len = strlen(msg);
	if (st.enabled && st.error[0] && len < cap)
		snprintf(msg + len, cap - len, "; warning: the XDP filter is not active: %s",
		         st.error);
}

/* config get / show / diff rows. */
static Helios__ConfigItem **config_rows(struct cp *cp, const char *only, bool diff, size_t *n)
{
	size_t nk;
	const struct cfg_key *keys = cfg_key_table(&nk);
	Helios__ConfigItem **v = calloc(nk ? nk : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; v && i < nk; i++) {
		char name[128], live[2048], file[2048];
		cfg_key_name(&keys[i], name, sizeof(name));
		if (only && strcmp(only, name))
			continue;
		key_value(cp->live, &keys[i], live, sizeof(live));
		key_value(cp->file, &keys[i], file, sizeof(file));
		bool ov = overridden(cp, name);
		if (diff && !ov && !strcmp(live, file))
			continue;
		Helios__ConfigItem *it = malloc(sizeof(*it));
		if (!it)
			break;
		helios__config_item__init(it);
		it->key = xstrdup(name);
		it->value = xstrdup(live);
		it->file_value = xstrdup(file);
		it->overridden = ov;
		it->restart = (keys[i].flags & CFG_KEY_RESTART) != 0;
		it->doc = xstrdup(keys[i].doc);
		v[k++] = it;
	}
	*n = k;
	return v;
}

static void config_rows_free(Helios__ConfigItem **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

static nng_msg *ctl_simple(struct cp *cp, int status, const char *msg)
{
	Helios__CtlResponse r;
	resp_init(cp, &r);
	r.status = status;
	r.message = (char *)msg;
	return pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
}

static void park_ctl(struct cp *cp, struct work *w, Helios__CtlRequest *req, enum wait_kind k,
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

/* Loads file + overrides text; on success installs it. */
static int apply_config(struct cp *cp, const char *ovr_text, const char *source, char *msg,
                        size_t cap)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_file_with(cp->path, cp->ovr_path, ovr_text, &err);
	if (!c) {
		snprintf(msg, cap, "%s", err.msg);
		return -1;
	}
	struct cfg *f = cfg_load_file(cp->path, &err);
	if (!f) {
		cfg_free(c);
		snprintf(msg, cap, "%s", err.msg);
		return -1;
	}
	cfg_free(cp->file);
	cp->file = f;
	install(cp, c, source);
	log_info("configuration reloaded from %s (generation %llu)", cp->path,
	         (unsigned long long)cp->generation);
	return 0;
}

/* Replaces the in-memory override list after a successful change. */
static void set_override(struct cp *cp, const char *key, const char *line)
{
	for (size_t i = 0; i < cp->n_ovr; i++) {
		if (!strcmp(cp->ovr_keys[i], key)) {
			if (line) {
				free(cp->ovr_lines[i]);
				cp->ovr_lines[i] = xstrdup(line);
			} else {
				free(cp->ovr_keys[i]);
				free(cp->ovr_lines[i]);
				memmove(cp->ovr_keys + i, cp->ovr_keys + i + 1,
				        (cp->n_ovr - i - 1) * sizeof(char *));
				memmove(cp->ovr_lines + i, cp->ovr_lines + i + 1,
				        (cp->n_ovr - i - 1) * sizeof(char *));
				cp->n_ovr--;
			}
			return;
		}
	}
	if (line) {
		strv_add(&cp->ovr_keys, &cp->n_ovr, key);
		cp->n_ovr--;
		strv_add(&cp->ovr_lines, &cp->n_ovr, line);
	}
}

/* config set KEY VALUE / config reset KEY. */
static nng_msg *config_change(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	bool reset = !strcmp(req->args[0], "reset");
	if ((reset && req->n_args != 2) || (!reset && req->n_args != 3))
		return ctl_simple(
		    cp, 2, reset ? "usage: config reset KEY" : "usage: config set KEY VALUE");
	const char *key = req->args[1];
	const struct cfg_key *k = cfg_key_find(key);
	char msg[1400];
	if (k && (k->flags & CFG_KEY_RESTART)) {
		snprintf(msg, sizeof(msg),
		         "key '%s' cannot change while running: set it in %s and restart "
		         "heliosproxy",
		         key, cp->path);
		return ctl_simple(cp, 1, msg);
	}
	char line[4096];
	struct cfg_error err;
	if (reset) {
		if (!overridden(cp, key)) {
			snprintf(msg, sizeof(msg), "key '%s' has no live override to reset", key);
			return ctl_simple(cp, 1, msg);
		}
	} else if (cfg_override_line(key, req->args[2], line, sizeof(line), &err) != 0) {
		snprintf(msg, sizeof(msg), "refused: %s", err.msg);
		return ctl_simple(cp, 1, msg);
	}
	char *skip = (char *)key;
	char *text = overrides_text(cp, reset ? &skip : NULL, reset ? NULL : key,
	                            reset ? NULL : line, cp->generation + 1);
	if (!text)
		return ctl_simple(cp, 1, "out of memory");
	struct cfg *c = cfg_load_file_with(cp->path, cp->ovr_path, text, &err);
	if (!c) {
		free(text);
		snprintf(msg, sizeof(msg), "refused: %s", err.msg);
		return ctl_simple(cp, 1, msg);
	}
	char werr[1200];
	if (write_atomic(cp->ovr_path, text, werr, sizeof(werr)) < 0) {
		free(text);
		cfg_free(c);
		snprintf(msg, sizeof(msg), "refused, nothing changed: %s", werr);
		log_error("control plane: %s", msg);
		return ctl_simple(cp, 1, msg);
	}
	free(text);
	set_override(cp, key, reset ? NULL : line);
	char source[300];
	snprintf(source, sizeof(source), "helioctl config %s %s", reset ? "reset" : "set", key);
	install(cp, c, source);
	char val[512];
	key_value(cp->live, k, val, sizeof(val));
	snprintf(msg, sizeof(msg), "%s = %s", key, val);
	if (!strncmp(key, "xdp.", 4))
		xdp_note(cp, msg, sizeof(msg));
	kick_heartbeats(cp);
	park_ctl(cp, w, req, WAIT_GEN, cp->generation, NULL, msg);
	*parked = true;
	return NULL;
}

static nng_msg *handle_config(struct cp *cp, struct work *w, Helios__CtlRequest *req, bool *parked)
{
	if (req->n_args < 1)
		return ctl_simple(cp, 2,
		                  "usage: config get KEY | show | diff | set KEY VALUE | "
		                  "reset KEY");
	const char *sub = req->args[0];
	if (!strcmp(sub, "set") || !strcmp(sub, "reset"))
		return config_change(cp, w, req, parked);
	bool get = !strcmp(sub, "get");
	if (!get && strcmp(sub, "show") && strcmp(sub, "diff"))
		return ctl_simple(cp, 2, "unknown config verb: use get, show, diff, set or reset");
	if (get && req->n_args != 2)
		return ctl_simple(cp, 2, "usage: config get KEY");
	if (get && !cfg_key_find(req->args[1])) {
		char msg[512];
		struct cfg_error err;
		char line[64];
		/* the override checker names the key and suggests a spelling */
		if (cfg_override_line(req->args[1], "0", line, sizeof(line), &err) != 0)
			snprintf(msg, sizeof(msg), "%s", err.msg);
		else
			snprintf(msg, sizeof(msg), "unknown key '%s'", req->args[1]);
		return ctl_simple(cp, 1, msg);
	}
	Helios__CtlResponse r;
	resp_init(cp, &r);
	r.config = config_rows(cp, get ? req->args[1] : NULL, !strcmp(sub, "diff"), &r.n_config);
	nng_msg *m = pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	config_rows_free(r.config, r.n_config);
	return m;
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
		return ctl_simple(cp, 2, "too many arguments");
	if (pause || resume) {
		const char *db = arg ? arg : "*";
		if (pause) {
			if (!strv_has(cp->paused, cp->n_paused, db))
				strv_add(&cp->paused, &cp->n_paused, db);
		} else if (!arg) {
			free_strv(cp->paused, cp->n_paused);
			cp->paused = NULL;
			cp->n_paused = 0;
		} else {
			strv_del(cp->paused, &cp->n_paused, db);
		}
		snprintf(msg, sizeof(msg), "%s %s", pause ? "paused" : "resumed",
		         arg ? arg : "all databases");
		log_info("control plane: %s", msg);
		cp->state_ver++;
		kick_heartbeats(cp);
		park_ctl(cp, w, req, pause ? WAIT_PAUSE : WAIT_RESUME, 0, db, msg);
		*parked = true;
		return NULL;
	}
	if (!arg)
		return ctl_simple(cp, 2, drain ? "usage: drain NODE" : "usage: undrain NODE");
	if (!node_known(cp, arg)) {
		snprintf(msg, sizeof(msg), "no node named '%s' in the configuration", arg);
		return ctl_simple(cp, 1, msg);
	}
	if (drain) {
		if (!strv_has(cp->drained, cp->n_drained, arg))
			strv_add(&cp->drained, &cp->n_drained, arg);
	} else {
		strv_del(cp->drained, &cp->n_drained, arg);
	}
	snprintf(msg, sizeof(msg), "%s node %s", drain ? "draining" : "undrained", arg);
	log_info("control plane: %s", msg);
	cp->state_ver++;
	for (size_t i = 0; i < cp->n_nodes; i++)
		cp->nodes[i]->draining = strv_has(cp->drained, cp->n_drained, cp->nodes[i]->name);
	kick_heartbeats(cp);
	park_ctl(cp, w, req, WAIT_DRAIN, drain, arg, msg);
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
		return ctl_simple(cp, rc < 0 ? 1 : 0, msg);
	}
	bool list = deny && req->n_args == 2 && !strcmp(op, "list");
	if (!list && (strcmp(sub, "status") || req->n_args > 1))
		return ctl_simple(cp, 2,
		                  "usage: xdp [status] | xdp deny add CIDR | xdp deny del CIDR | "
		                  "xdp deny list");
	struct xf_entry *ents = NULL;
	size_t n = 0;
	if (list && xf_deny_list(cp->xdp, &ents, &n, msg, sizeof(msg)) < 0)
		return ctl_simple(cp, 1, msg);
	struct xf_status *st = malloc(sizeof(*st));
	Helios__XdpDenyEntry *store = calloc(n ? n : 1, sizeof(*store));
	Helios__XdpDenyEntry **rows = calloc(n ? n : 1, sizeof(*rows));
	nng_msg *m = NULL;
	if (st && store && rows) {
		Helios__CtlResponse r;
		Helios__XdpStatus xs = HELIOS__XDP_STATUS__INIT;
		resp_init(cp, &r);
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
		m = pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	}
	free(rows);
	free(store);
	free(st);
	free(ents);
	return m ? m : ctl_simple(cp, 1, "out of memory");
}

static nng_msg *handle_ctl(struct cp *cp, struct work *w, Helios__Envelope *e, bool *parked)
{
	Helios__CtlRequest *req =
	    helios__ctl_request__unpack(NULL, e->payload.len, e->payload.data);
	if (!req)
		return ctl_simple(cp, 1, "malformed CtlRequest");
	nng_msg *out = NULL;
	const char *v = req->verb;
	if (!strcmp(v, "status")) {
		Helios__CtlResponse r;
		resp_init(cp, &r);
		r.dataplanes = dp_rows(cp, &r.n_dataplanes, 0);
		r.nodes = cp->nodes;
		r.n_nodes = cp->n_nodes;
		out = pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
		dp_rows_free(r.dataplanes, r.n_dataplanes);
	} else if (!strcmp(v, "clients") || !strcmp(v, "servers") || !strcmp(v, "pools") ||
	           !strcmp(v, "stats") || !strcmp(v, "top") || !strcmp(v, "slowlog") ||
	           !strcmp(v, "tenants")) {
		/* fresh numbers: every data plane reports now */
		uint64_t id;
		char n[32] = "20";
		if (!strcmp(v, "slowlog") && req->n_args >= 1)
			snprintf(n, sizeof(n), "%s", req->args[0]);
		add_command(cp, "report", !strcmp(v, "slowlog") ? "slowlog" : NULL, n, &id);
		kick_heartbeats(cp);
		park_ctl(cp, w, req, WAIT_REPORT, id, NULL, "");
		*parked = true;
	} else if (!strcmp(v, "rewrite")) {
		/* rewrite test SQL [TENANT]: the data planes rewrite it with their rules */
		uint64_t id;
		if (req->n_args < 2 || strcmp(req->args[0], "test") ||
		    strlen(req->args[1]) >= sizeof(cp->cmds[0].args[1]) ||
		    (req->n_args >= 3 && strlen(req->args[2]) >= 64)) {
			out = ctl_simple(cp, 2, "rewrite test SQL [TENANT] (SQL under 4096 bytes)");
		} else {
			add_command3(cp, "report", "rewrite", req->args[1],
			             req->n_args >= 3 ? req->args[2] : "", &id);
			kick_heartbeats(cp);
			park_ctl(cp, w, req, WAIT_REPORT, id, NULL, "");
			*parked = true;
		}
	} else if (!strcmp(v, "cache")) {
		/* stats: fresh reports; flush: every data plane flushes, then reports */
		uint64_t id;
		bool flush = req->n_args >= 1 && !strcmp(req->args[0], "flush");
		if (req->n_args >= 1 && !flush && strcmp(req->args[0], "stats")) {
			out = ctl_simple(cp, 2, "cache wants stats or flush [TABLE]");
		} else {
			if (flush)
				log_info("control plane: cache flush %s requested",
				         req->n_args >= 2 ? req->args[1] : "(all)");
			add_command(cp, "report", flush ? "cache_flush" : NULL,
			            flush && req->n_args >= 2 ? req->args[1] : "", &id);
			kick_heartbeats(cp);
			park_ctl(cp, w, req, WAIT_REPORT, id, NULL, "");
			*parked = true;
		}
	} else if (!strcmp(v, "nodes")) {
		Helios__CtlResponse r;
		resp_init(cp, &r);
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
				if (!rep || !dp_connected(cp, d, now))
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
		out = pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
		for (size_t i = 0; i < nn; i++)
			cp->nodes[i]->breaker = saved[i];
	} else if (!strcmp(v, "config")) {
		out = handle_config(cp, w, req, parked);
	} else if (!strcmp(v, "reload")) {
		char msg[600];
		char *text = overrides_text(cp, NULL, NULL, NULL, cp->generation + 1);
		if (text && apply_config(cp, text, "reload", msg, sizeof(msg)) == 0) {
			char werr[1200];
			if (write_atomic(cp->ovr_path, text, werr, sizeof(werr)) < 0)
				log_warn("control plane: %s", werr);
			kick_heartbeats(cp);
			snprintf(msg, sizeof(msg), "reloaded %s", cp->path);
			xdp_note(cp, msg, sizeof(msg));
			park_ctl(cp, w, req, WAIT_GEN, cp->generation, NULL, msg);
			*parked = true;
		} else {
			char m2[700];
			snprintf(m2, sizeof(m2), "reload refused, configuration unchanged: %s",
			         text ? msg : "out of memory");
			log_error("control plane: %s", m2);
			out = ctl_simple(cp, 1, m2);
		}
		free(text);
	} else if (!strcmp(v, "pause") || !strcmp(v, "resume") || !strcmp(v, "drain") ||
	           !strcmp(v, "undrain")) {
		out = handle_state(cp, w, req, parked);
	} else if (!strcmp(v, "xdp")) {
		out = handle_xdp(cp, req);
	} else {
		char msg[200];
		snprintf(msg, sizeof(msg), "unknown verb '%s'", v);
		out = ctl_simple(cp, 2, msg);
	}
	if (!*parked)
		helios__ctl_request__free_unpacked(req, NULL);
	return out;
}

/* Whether data plane d has done what held request w waits for. */
static bool dp_done(const struct work *w, const struct dp *d)
{
	const Helios__StatsReport *rep = d->hb ? d->hb->report : NULL;
	switch (w->wait) {
	case WAIT_GEN:
		return d->generation == w->wait_value;
	case WAIT_REPORT:
		return d->result && d->result->id == w->wait_value;
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

/* Whether a held helioctl request can be answered, and the answer. A data
 * plane that refused a generation has answered too (with its error). */
static nng_msg *ctl_try_finish(struct cp *cp, struct work *w, bool timed_out)
{
	uint64_t now = cpwire_mono_ms();
	uint32_t expected = 0, done = 0, refused = 0;
	struct sbuf errs;
	sbuf_init(&errs);
	for (struct dp *d = cp->dps; d; d = d->next) {
		if (!dp_connected(cp, d, now))
			continue;
		expected++;
		if (dp_done(w, d)) {
			done++;
		} else if (w->wait == WAIT_GEN && d->reject_gen == w->wait_value) {
			refused++;
			sbuf_printf(&errs, "; data plane %s refused it: %s", d->id, d->last_error);
		}
	}
	if (!timed_out && done + refused < expected) {
		sbuf_free(&errs);
		return NULL;
	}
	Helios__CtlResponse r;
	resp_init(cp, &r);
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
	nng_msg *m = pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, cp->generation, &r.base);
	if (r.dataplanes)
		dp_rows_free(r.dataplanes, r.n_dataplanes);
	sbuf_free(&errs);
	return m;
}

static void check_parked_ctl(struct cp *cp, bool deadlines)
{
	uint64_t now = cpwire_mono_ms();
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		if (w->state != W_PARKED)
			continue;
		if (w->kind == P_HB) {
			if (deadlines && now >= w->deadline_ms) {
				w->out = dp_reply(cp, w->dp, false);
				dp_forget_parked(w->dp);
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

/* ------------------------------------------------------------ nng plumbing */

static struct work *work_new(struct cp *cp)
{
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cp = cp;
	if (nng_aio_alloc(&w->aio, work_cb, w) != 0 || nng_ctx_open(&w->ctx, cp->sock) != 0) {
		if (w->aio)
			nng_aio_free(w->aio);
		free(w);
		return NULL;
	}
	struct work **v = realloc(cp->works, (cp->n_works + 1) * sizeof(*v));
	if (!v) {
		nng_ctx_close(w->ctx);
		nng_aio_free(w->aio);
		free(w);
		return NULL;
	}
	cp->works = v;
	cp->works[cp->n_works++] = w;
	w->state = W_RECV;
	return w;
}

/* Keeps at least two contexts receiving, however many are held. */
static void ensure_receivers(struct cp *cp, struct work **started, size_t *n_started)
{
	size_t recv = 0;
	for (size_t i = 0; i < cp->n_works; i++)
		if (cp->works[i]->state == W_RECV)
			recv++;
	while (recv < 2 && *n_started < 4) {
		struct work *w = work_new(cp);
		if (!w)
			break;
		started[(*n_started)++] = w;
		recv++;
	}
}

struct ready {
	struct work *w;
	nng_msg *msg;
};

/* Sends every reply taken by take_ready; call without cp->mu. */
static void flush_sends(struct cp *cp, struct ready *ready, size_t n)
{
	(void)cp;
	for (size_t i = 0; i < n; i++) {
		nng_aio_set_msg(ready[i].w->aio, ready[i].msg);
		nng_ctx_send(ready[i].w->ctx, ready[i].w->aio);
	}
}

/* Under cp->mu: takes the replies that are ready (each exactly once: the
 * message moves out of the work, so no other thread sends it again). */
static size_t take_ready(struct cp *cp, struct ready **out)
{
	size_t n = 0;
	for (size_t i = 0; i < cp->n_works; i++)
		if (cp->works[i]->state == W_SEND && cp->works[i]->out)
			n++;
	*out = NULL;
	if (!n)
		return 0;
	struct ready *v = malloc(n * sizeof(*v));
	if (!v)
		return 0;
	size_t k = 0;
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		if (w->state == W_SEND && w->out) {
			v[k].w = w;
			v[k].msg = w->out;
			w->out = NULL;
			k++;
		}
	}
	*out = v;
	return k;
}

static void handle_msg(struct cp *cp, struct work *w, nng_msg *msg)
{
	char err[300];
	Helios__Envelope *e = cpwire_unpack(nng_msg_body(msg), nng_msg_len(msg), err, sizeof(err));
	nng_msg_free(msg);
	w->state = W_SEND;
	if (!e) {
		log_warn("control plane: refused a message: %s", err);
		Helios__Reply r = HELIOS__REPLY__INIT;
		r.error = err;
		w->out = pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
		return;
	}
	bool parked = false;
	switch (e->type) {
	case HELIOS__MSG_TYPE__MSG_REGISTER:
		handle_register(cp, w, e);
		break;
	case HELIOS__MSG_TYPE__MSG_HEARTBEAT:
		handle_heartbeat(cp, w, e);
		break;
	case HELIOS__MSG_TYPE__MSG_CTL_REQUEST:
		w->out = handle_ctl(cp, w, e, &parked);
		if (parked)
			w->state = W_PARKED;
		break;
	default: {
		Helios__Reply r = HELIOS__REPLY__INIT;
		snprintf(err, sizeof(err), "unexpected message type %d", (int)e->type);
		r.error = err;
		w->out = pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
	}
	}
	helios__envelope__free_unpacked(e, NULL);
	/* a heartbeat may have completed a held helioctl request */
	check_parked_ctl(cp, false);
}

static void work_cb(void *arg)
{
	struct work *w = arg;
	struct cp *cp = w->cp;
	int rv = nng_aio_result(w->aio);
	struct work *started[4];
	size_t n_started = 0;
	struct ready *ready = NULL;
	size_t n_ready = 0;
	bool rearm = false;

	pthread_mutex_lock(&cp->mu);
	if (cp->stopping || rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		if (w->state == W_SEND && nng_aio_get_msg(w->aio) && rv != 0)
			nng_msg_free(nng_aio_get_msg(w->aio));
		w->state = W_DONE;
		pthread_mutex_unlock(&cp->mu);
		return;
	}
	if (w->state == W_RECV) {
		if (rv != 0) {
			rearm = true;
		} else {
			handle_msg(cp, w, nng_aio_get_msg(w->aio));
			if (w->state == W_SEND && !w->out) {
				w->state = W_RECV; /* nothing to say (out of memory) */
				rearm = true;
			}
		}
	} else if (w->state == W_SEND) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(w->aio));
		w->state = W_RECV;
		rearm = true;
	}
	ensure_receivers(cp, started, &n_started);
	n_ready = take_ready(cp, &ready);
	pthread_mutex_unlock(&cp->mu);

	flush_sends(cp, ready, n_ready);
	free(ready);
	if (rearm)
		nng_ctx_recv(w->ctx, w->aio);
	for (size_t i = 0; i < n_started; i++)
		nng_ctx_recv(started[i]->ctx, started[i]->aio);
}

/* Held requests past their deadline; stale commands. */
static void *timer_main(void *arg)
{
	struct cp *cp = arg;
	pthread_mutex_lock(&cp->mu);
	while (!cp->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cp->cv, &cp->mu, &ts);
		if (cp->stopping)
			break;
		check_parked_ctl(cp, true);
		struct ready *ready;
		size_t n = take_ready(cp, &ready);
		pthread_mutex_unlock(&cp->mu);
		flush_sends(cp, ready, n);
		free(ready);
		pthread_mutex_lock(&cp->mu);
	}
	pthread_mutex_unlock(&cp->mu);
	return NULL;
}

/* ------------------------------------------------------------ node probes */

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

static void probe_round(struct cp *cp)
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
		s->name = xstrdup(t[i].name);
		s->host = xstrdup(t[i].host);
		s->port = (uint32_t)t[i].port;
		s->role = xstrdup(role);
		s->healthy = healthy;
		s->lag_ms = t[i].r.lag_ms;
		s->error = xstrdup(err);
		s->draining = strv_has(cp->drained, cp->n_drained, s->name);
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
		kick_heartbeats(cp);
	}
	struct ready *ready;
	size_t nr = take_ready(cp, &ready);
	pthread_mutex_unlock(&cp->mu);
	flush_sends(cp, ready, nr);
	free(ready);
	free(t);
	free(pn);
}

static void *prober_main(void *arg)
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
		probe_round(cp);
	}
}

/* ------------------------------------------------------------ admin HTTP */

static void xdp_metrics(struct cp *cp, struct metrics_xdp *out)
{
	struct xf_status st;
	xf_get_status(cp->xdp, &st);
	out->enabled = st.enabled;
	out->attached = st.attached;
	out->passed = st.passed;
	out->denied = st.denied;
	out->syn_rate_dropped = st.syn_rate_dropped;
	out->syns = st.syns;
	out->deny_entries = st.deny_entries;
}

static void fill_info(struct cp *cp, struct metrics_info *mi, const Helios__StatsReport ***reps,
                      size_t *n)
{
	memset(mi, 0, sizeof(*mi));
	mi->role = "control-plane";
	mi->version = HELIOS_VERSION;
	mi->uptime_secs = (double)(cpwire_mono_ms() - cp->start_ms) / 1000.0;
	mi->generation = cp->generation;
	mi->cp_connected = -1;
	mi->cp_last_contact_secs = -1;
	mi->has_config = cp->live != NULL;
	mi->nodes = (const Helios__NodeStatus *const *)cp->nodes;
	mi->n_nodes = cp->n_nodes;
	xdp_metrics(cp, &mi->xdp);
	uint64_t now = cpwire_mono_ms();
	size_t k = 0;
	for (struct dp *d = cp->dps; d; d = d->next) {
		mi->dataplanes_known++;
		if (dp_connected(cp, d, now))
			mi->dataplanes_connected++;
		k++;
	}
	*reps = calloc(k ? k : 1, sizeof(**reps));
	*n = 0;
	for (struct dp *d = cp->dps; *reps && d; d = d->next)
		if (d->hb && d->hb->report && dp_connected(cp, d, now))
			(*reps)[(*n)++] = d->hb->report;
}

static bool primary_up(struct cp *cp)
{
	for (size_t i = 0; i < cp->n_nodes; i++)
		if (!strcmp(cp->nodes[i]->role, "primary") && cp->nodes[i]->healthy)
			return true;
	return false;
}

static int http_handler(void *ctx, const char *url, struct sbuf *body, const char **ctype)
{
	struct cp *cp = ctx;
	int status = 200;
	*ctype = "text/plain; charset=utf-8";
	pthread_mutex_lock(&cp->mu);
	bool is_metrics = !strcmp(url, "/metrics");
	if (is_metrics || !strcmp(url, "/status")) {
		struct metrics_info mi;
		const Helios__StatsReport **reps;
		size_t n;
		fill_info(cp, &mi, &reps, &n);
		if (is_metrics)
			metrics_render(body, reps, n, &mi);
		else
			metrics_status_json(body, reps, n, &mi);
		free(reps);
		*ctype = is_metrics ? METRICS_CONTENT_TYPE : "application/json";
	} else if (!strcmp(url, "/healthz")) {
		sbuf_puts(body, "ok\n");
	} else if (!strcmp(url, "/readyz")) {
		if (cp->live && primary_up(cp)) {
			sbuf_puts(body, "ready\n");
		} else {
			status = 503;
			sbuf_puts(body, cp->live ? "not ready: no reachable primary node\n"
			                         : "not ready: no configuration\n");
		}
	} else {
		status = 404;
		sbuf_puts(body, "not found: try /metrics, /healthz, /readyz or /status\n");
	}
	pthread_mutex_unlock(&cp->mu);
	return status;
}

/* ------------------------------------------------------------ lifecycle */

static void cp_free(struct cp *cp)
{
	xf_free(cp->xdp); /* detaches: no filter outlives its control plane */
	for (size_t i = 0; i < cp->n_works; i++) {
		struct work *w = cp->works[i];
		nng_aio_free(w->aio);
		if (w->out)
			nng_msg_free(w->out);
		if (w->req)
			helios__ctl_request__free_unpacked(w->req, NULL);
		free(w);
	}
	free(cp->works);
	for (struct dp *d = cp->dps, *next; d; d = next) {
		next = d->next;
		if (d->reg)
			helios__register__free_unpacked(d->reg, NULL);
		if (d->hb)
			helios__heartbeat__free_unpacked(d->hb, NULL);
		if (d->result)
			helios__command_result__free_unpacked(d->result, NULL);
		free_strv(d->restart_pending, d->n_restart);
		free(d);
	}
	for (size_t i = 0; i < cp->n_nodes; i++)
		protobuf_c_message_free_unpacked(&cp->nodes[i]->base, NULL);
	free(cp->nodes);
	free(cp->seen);
	prober_free(cp->checker);
	free_strv(cp->ovr_keys, cp->n_ovr);
	free_strv(cp->ovr_lines, cp->n_ovr);
	free_strv(cp->paused, cp->n_paused);
	free_strv(cp->drained, cp->n_drained);
	free_secret(cp->snapshot_toml);
	cfg_free(cp->live);
	cfg_free(cp->file);
	pthread_mutex_destroy(&cp->mu);
	pthread_cond_destroy(&cp->cv);
	free(cp);
}

static int listen_on(struct cp *cp, const char *url, char *err, size_t errlen)
{
	nng_listener l;
	int rv = nng_listener_create(&l, cp->sock, url);
	if (rv == 0 && !strncmp(url, "ipc://", 6))
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv) {
		snprintf(
		    err, errlen, "control plane cannot listen on %s: %s%s", url, nng_strerror(rv),
		    rv == NNG_EADDRINUSE ? " (another heliosproxy or helios-cp uses it?)" : "");
		return -1;
	}
	return 0;
}

struct cp *cp_start(const struct cp_opts *o, char *err, size_t errlen)
{
	struct cp *cp = calloc(1, sizeof(*cp));
	if (!cp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&cp->mu, NULL);
	pthread_cond_init(&cp->cv, NULL);
	cp->xdp = xf_new();
	if (!cp->xdp) {
		snprintf(err, errlen, "out of memory");
		cp_free(cp);
		return NULL;
	}
	cp->embedded = o->embedded;
	cp->start_ms = cpwire_mono_ms();
	cp->schema = HELIOS_SCHEMA_VERSION;
	/* testing aid: pretend to be a newer control plane (docs/control-plane.md) */
	const char *sv = getenv("HELIOS_CP_SNAPSHOT_SCHEMA");
	if (sv && atoi(sv) > 0)
		cp->schema = (uint32_t)atoi(sv);
	if (!realpath(o->config_path, cp->path))
		snprintf(cp->path, sizeof(cp->path), "%s", o->config_path);

	struct cfg_error cerr;
	struct cfg *file = cfg_load_file(cp->path, &cerr);
	if (!file) {
		snprintf(err, errlen, "%s", cerr.msg);
		cp_free(cp);
		return NULL;
	}
	snprintf(cp->ovr_path, sizeof(cp->ovr_path), "%s", file->overrides_file);
	cp->file = file;
	char *text;
	uint64_t gen;
	if (read_overrides(cp, &text, &gen, err, errlen) < 0) {
		cp_free(cp);
		return NULL;
	}
	cp->generation = gen;
	struct cfg *live = cfg_load_file_with(cp->path, cp->ovr_path, text, &cerr);
	free(text);
	if (!live) {
		snprintf(err, errlen, "%s", cerr.msg);
		cp_free(cp);
		return NULL;
	}
	install(cp, live, "start");
	/* persist the generation so it keeps growing across restarts */
	char *persist = overrides_text(cp, NULL, NULL, NULL, cp->generation);
	char werr[1200];
	if (!persist || write_atomic(cp->ovr_path, persist, werr, sizeof(werr)) < 0)
		log_warn("control plane: %s: live changes will not survive a restart",
		         persist ? werr : "out of memory");
	free(persist);

	cp->checker = prober_new();
	probe_round(cp);

	int rv = nng_rep0_open(&cp->sock);
	if (rv) {
		snprintf(err, errlen, "nng: %s", nng_strerror(rv));
		cp_free(cp);
		return NULL;
	}
	for (size_t i = 0; i < o->n_urls; i++) {
		if (listen_on(cp, o->urls[i], err, errlen) < 0) {
			nng_close(cp->sock);
			cp_free(cp);
			return NULL;
		}
	}
	pthread_mutex_lock(&cp->mu);
	struct work *first[4];
	size_t n_first = 0;
	ensure_receivers(cp, first, &n_first);
	pthread_mutex_unlock(&cp->mu);
	for (size_t i = 0; i < n_first; i++)
		nng_ctx_recv(first[i]->ctx, first[i]->aio);

	if (o->admin_address && o->admin_address[0]) {
		cp->http = admin_http_start(o->admin_address, http_handler, cp, err, errlen);
		if (!cp->http) {
			cp_stop(cp);
			return NULL;
		}
	}
	cp->timer_started = pthread_create(&cp->timer, NULL, timer_main, cp) == 0;
	cp->prober_started = pthread_create(&cp->prober, NULL, prober_main, cp) == 0;
	return cp;
}

void cp_stop(struct cp *cp)
{
	if (!cp)
		return;
	admin_http_stop(cp->http);
	cp->http = NULL;
	pthread_mutex_lock(&cp->mu);
	cp->stopping = true;
	pthread_cond_broadcast(&cp->cv);
	pthread_mutex_unlock(&cp->mu);
	if (cp->timer_started)
		pthread_join(cp->timer, NULL);
	if (cp->prober_started)
		pthread_join(cp->prober, NULL);
	nng_close(cp->sock);
	for (size_t i = 0; i < cp->n_works; i++)
		nng_aio_stop(cp->works[i]->aio);
	cp_free(cp);
}

int cp_reload(struct cp *cp, char *msg, size_t cap)
{
	pthread_mutex_lock(&cp->mu);
	char *text = overrides_text(cp, NULL, NULL, NULL, cp->generation + 1);
	int r = text ? apply_config(cp, text, "reload (SIGHUP)", msg, cap) : -1;
	if (r == 0) {
		char werr[1200];
		if (write_atomic(cp->ovr_path, text, werr, sizeof(werr)) < 0)
			log_warn("control plane: %s", werr);
		kick_heartbeats(cp);
	}
	free(text);
	struct ready *ready;
	size_t n = take_ready(cp, &ready);
	pthread_mutex_unlock(&cp->mu);
	flush_sends(cp, ready, n);
	free(ready);
	return r;
}

void cp_get_info(struct cp *cp, struct cp_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&cp->mu);
	out->generation = cp->generation;
	out->uptime_secs = (double)(cpwire_mono_ms() - cp->start_ms) / 1000.0;
	uint64_t now = cpwire_mono_ms();
	for (struct dp *d = cp->dps; d; d = d->next) {
		out->dataplanes_known++;
		if (dp_connected(cp, d, now))
			out->dataplanes_connected++;
	}
	xdp_metrics(cp, &out->xdp);
	pthread_mutex_unlock(&cp->mu);
}
