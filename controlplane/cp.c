/*
 * Control plane core. Threads: nng's own (request callbacks, one nng
 * context per in-flight request), a timer (held requests' deadlines) and a
 * prober (node reachability). All state sits behind cp->mu; replies are
 * packed under it and sent after it is released.
 *
 * Data planes long-poll: a heartbeat is answered at once when the control
 * plane has something for that data plane, otherwise held until
 * heartbeat_interval_ms passes or something happens (cp_dp_kick_heartbeats).
 * helioctl requests that must see the data planes act (config set, reload,
 * pause, resume, drain, clients, servers) are held until every connected
 * data plane has answered, or their timeout.
 *
 * This file: start, stop and reload, the nng work contexts and message
 * dispatch, the shared helpers. The live configuration is in cp_config.c,
 * the data planes in cp_dp.c, helioctl in cp_ctl.c, node checks in
 * cp_probe.c, the admin HTTP in cp_http.c; what they share, cp_internal.h.
 */
#include "controlplane/cp.h"
#include "controlplane/cp_internal.h"

#include "common/admin_http.h"
#include "common/cfg.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/rundir.h"
#include "controlplane/probe.h"
#include "controlplane/xdp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void work_cb(void *arg);

/* ------------------------------------------------------------ helpers */

char *cp_xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* Snapshot text holds passwords: wipe before freeing. */
void cp_free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void cp_free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

bool cp_strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

int cp_strv_add(char ***v, size_t *n, const char *s)
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

void cp_strv_del(char **v, size_t *n, const char *s)
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

nng_msg *cp_pack_msg(Helios__MsgType type, uint64_t gen, const ProtobufCMessage *m)
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

/* Sends every reply taken by cp_take_ready; call without cp->mu. */
void cp_flush_sends(struct cp *cp, struct ready *ready, size_t n)
{
	(void)cp;
	for (size_t i = 0; i < n; i++) {
		nng_aio_set_msg(ready[i].w->aio, ready[i].msg);
		nng_ctx_send(ready[i].w->ctx, ready[i].w->aio);
	}
}

/* Called holding cp->mu: releases it and sends the replies that became
 * ready meanwhile. */
void cp_unlock_and_send(struct cp *cp)
{
	struct ready *ready;
	size_t n = cp_take_ready(cp, &ready);
	pthread_mutex_unlock(&cp->mu);
	cp_flush_sends(cp, ready, n);
	free(ready);
}

/* Under cp->mu: takes the replies that are ready (each exactly once: the
 * message moves out of the work, so no other thread sends it again). */
size_t cp_take_ready(struct cp *cp, struct ready **out)
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

/* ------------------------------------------------------------ who may talk */

/* A peer logged within this long is not logged again... */
#define REFUSED_QUIET_MS (10 * 60 * 1000)
/* ...and at most this many refusal lines a minute, whoever sends them (a
 * scan from many addresses). */
#define REFUSED_LINES_PER_MIN 10

/* The peer of a pipe: key (what the rate limit counts: the address without
 * port, or the uid of an ipc peer) and shown (for the log line). */
static void peer_name(nng_pipe p, char *key, size_t kcap, char *shown, size_t scap)
{
	nng_sockaddr sa;
	char addr[INET6_ADDRSTRLEN] = "";
	uint64_t uid, pid;

	snprintf(key, kcap, "unknown peer");
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET) {
			inet_ntop(AF_INET, &sa.s_in.sa_addr, addr, sizeof(addr));
			snprintf(key, kcap, "%s", addr);
			snprintf(shown, scap, "%s:%u", addr, (unsigned)ntohs(sa.s_in.sa_port));
			return;
		}
		if (sa.s_family == NNG_AF_INET6) {
			inet_ntop(AF_INET6, sa.s_in6.sa_addr, addr, sizeof(addr));
			snprintf(key, kcap, "%s", addr);
			snprintf(shown, scap, "[%s]:%u", addr, (unsigned)ntohs(sa.s_in6.sa_port));
			return;
		}
		if (sa.s_family == NNG_AF_INPROC)
			snprintf(key, kcap, "this process (inproc)");
	}
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0) {
		snprintf(key, kcap, "ipc peer uid %llu", (unsigned long long)uid);
		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0) {
			snprintf(shown, scap, "%s pid %llu", key, (unsigned long long)pid);
			return;
		}
	}
	snprintf(shown, scap, "%s", key);
}

/* Under cp->mu: one warning per refused peer (again after
 * REFUSED_QUIET_MS), at most REFUSED_LINES_PER_MIN a minute; the others
 * are counted and the next line says how many went unlogged. */
static void log_refused(struct cp *cp, nng_pipe p, const char *what, const char *why)
{
	char key[96], shown[128];
	uint64_t now = cpwire_mono_ms();
	struct cp_refused *slot = NULL, *oldest = &cp->refused[0];
	size_t n = sizeof(cp->refused) / sizeof(cp->refused[0]);

	peer_name(p, key, sizeof(key), shown, sizeof(shown));
	cp->refused_total++;
	for (size_t i = 0; i < n; i++) {
		struct cp_refused *r = &cp->refused[i];
		if (r->peer[0] && !strcmp(r->peer, key)) {
			slot = r;
			break;
		}
		if (r->at_ms < oldest->at_ms || (!r->peer[0] && oldest->peer[0]))
			oldest = r;
	}
	if (slot && now - slot->at_ms < REFUSED_QUIET_MS) {
		cp->refused_quiet++;
		return;
	}
	if (now - cp->refused_window_ms >= 60000 || !cp->refused_window_ms) {
		cp->refused_window_ms = now;
		cp->refused_lines = 0;
	}
	if (cp->refused_lines >= REFUSED_LINES_PER_MIN) {
		cp->refused_quiet++;
		return;
	}
	if (!slot)
		slot = oldest;
	snprintf(slot->peer, sizeof(slot->peer), "%s", key);
	slot->at_ms = now;
	cp->refused_lines++;
	char more[96] = "";
	if (cp->refused_quiet)
		snprintf(more, sizeof(more), " (%llu other refusals not logged before this one)",
		         (unsigned long long)cp->refused_quiet);
	cp->refused_quiet = 0;
	log_warn("control plane: refused %s from %s: %s; further refusals of this peer are not "
	         "logged for %d minutes%s",
	         what, shown, why, REFUSED_QUIET_MS / 60000, more);
}

static const char *msg_what(Helios__MsgType t)
{
	switch (t) {
	case HELIOS__MSG_TYPE__MSG_REGISTER:
		return "a data plane registration";
	case HELIOS__MSG_TYPE__MSG_HEARTBEAT:
		return "a data plane heartbeat";
	case HELIOS__MSG_TYPE__MSG_CTL_REQUEST:
		return "a helioctl request";
	default:
		return "a message";
	}
}

/* What a peer without the right token gets: no status, no paths, no
 * generation, only the refusal. */
static nng_msg *refusal(Helios__MsgType t)
{
	static char msg[] = "control plane refused the request: missing or wrong token "
	                    "(control_token; helioctl: --token or $HELIOS_CONTROL_TOKEN)";
	if (t == HELIOS__MSG_TYPE__MSG_CTL_REQUEST) {
		Helios__CtlResponse r = HELIOS__CTL_RESPONSE__INIT;
		r.status = 1;
		r.message = msg;
		return cp_pack_msg(HELIOS__MSG_TYPE__MSG_CTL_RESPONSE, 0, &r.base);
	}
	Helios__Reply r = HELIOS__REPLY__INIT;
	r.error = msg;
	return cp_pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, 0, &r.base);
}

static void handle_msg(struct cp *cp, struct work *w, nng_msg *msg)
{
	char err[300];
	nng_pipe pipe = nng_msg_get_pipe(msg);
	Helios__Envelope *e = cpwire_unpack(nng_msg_body(msg), nng_msg_len(msg), err, sizeof(err));
	nng_msg_free(msg);
	w->state = W_SEND;
	if (!e) {
		log_refused(cp, pipe, "a message", err);
		Helios__Reply r = HELIOS__REPLY__INIT;
		r.error = err;
		w->out = cp_pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
		return;
	}
	if (cp->auth.token[0] && !cpauth_token_equal(cp->auth.token, e->token ? e->token : "")) {
		log_refused(cp, pipe, msg_what(e->type),
		            e->token && e->token[0] ? "wrong control_token"
		                                    : "no control_token in the request");
		w->out = refusal(e->type);
		helios__envelope__free_unpacked(e, NULL);
		return;
	}
	bool parked = false;
	switch (e->type) {
	case HELIOS__MSG_TYPE__MSG_REGISTER:
		cp_dp_handle_register(cp, w, e);
		break;
	case HELIOS__MSG_TYPE__MSG_HEARTBEAT:
		cp_dp_handle_heartbeat(cp, w, e);
		break;
	case HELIOS__MSG_TYPE__MSG_CTL_REQUEST:
		w->out = cp_ctl_handle(cp, w, e, &parked);
		if (parked)
			w->state = W_PARKED;
		break;
	default: {
		Helios__Reply r = HELIOS__REPLY__INIT;
		snprintf(err, sizeof(err), "unexpected message type %d", (int)e->type);
		r.error = err;
		w->out = cp_pack_msg(HELIOS__MSG_TYPE__MSG_REPLY, cp->generation, &r.base);
	}
	}
	helios__envelope__free_unpacked(e, NULL);
	/* a heartbeat may have completed a held helioctl request */
	cp_ctl_check_parked(cp, false);
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
	n_ready = cp_take_ready(cp, &ready);
	pthread_mutex_unlock(&cp->mu);

	cp_flush_sends(cp, ready, n_ready);
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
		cp_ctl_check_parked(cp, true);
		cp_unlock_and_send(cp);
		pthread_mutex_lock(&cp->mu);
	}
	pthread_mutex_unlock(&cp->mu);
	return NULL;
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
		cp_free_strv(d->restart_pending, d->n_restart);
		free(d);
	}
	for (size_t i = 0; i < cp->n_nodes; i++)
		protobuf_c_message_free_unpacked(&cp->nodes[i]->base, NULL);
	free(cp->nodes);
	free(cp->seen);
	prober_free(cp->checker);
	cp_free_strv(cp->ovr_keys, cp->n_ovr);
	cp_free_strv(cp->ovr_lines, cp->n_ovr);
	cp_free_strv(cp->paused, cp->n_paused);
	cp_free_strv(cp->drained, cp->n_drained);
	cp_free_secret(cp->snapshot_toml);
	cp_plugins_free(cp);
	cfg_free(cp->live);
	cfg_free(cp->file);
	cpauth_wipe(&cp->auth);
	pthread_mutex_destroy(&cp->mu);
	pthread_cond_destroy(&cp->cv);
	free(cp);
}

static int listen_on(struct cp *cp, const char *url, char *err, size_t errlen)
{
	nng_listener l;
	char why[600];
	bool ipc = !strncmp(url, "ipc://", 6);
	const char *group = cp->file->control_socket_group;
	struct group *gr = NULL;
	/* nng connects to a file already at the path to see whether it is
	 * stale: never to another user's (see common/rundir.h). */
	if (ipc && rundir_check_socket(url + 6, geteuid(), false, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "control plane cannot listen on %s: %s", url, why);
		return -1;
	}
	if (ipc && group[0] && !(gr = getgrnam(group))) {
		snprintf(err, errlen,
		         "control plane cannot listen on %s: control_socket_group: no "
		         "group \"%s\"",
		         url, group);
		return -1;
	}
	int rv = cpauth_listener(cp->sock, url, &cp->auth, &l, why, sizeof(why));
	if (rv < 0) {
		snprintf(err, errlen, "control plane cannot listen on %s: %s", url, why);
		return -1;
	}
	/* the group's members may connect: rw for the group, nothing for
	 * others; nng applies the mode right after bind(2), inside the private
	 * state directory */
	if (rv == 0 && ipc)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, gr ? 0660 : 0600);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv) {
		snprintf(
		    err, errlen, "control plane cannot listen on %s: %s%s", url, nng_strerror(rv),
		    rv == NNG_EADDRINUSE ? " (another heliosproxy or helios-cp uses it?)" : "");
		return -1;
	}
	if (gr && chown(url + 6, (uid_t)-1, gr->gr_gid) < 0) {
		snprintf(err, errlen, "control plane: cannot give %s to group %s: %s", url + 6,
		         group, strerror(errno));
		nng_listener_close(l);
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
	/* absolute, symlinks kept: a Kubernetes ConfigMap update swaps the
	 * folder the file resolves to, and a reload must read the new one */
	char cwd[CFG_PATH_MAX];
	size_t cl = o->config_path[0] != '/' && getcwd(cwd, sizeof(cwd)) ? strlen(cwd) : 0;
	if (cl && cl + 1 + strlen(o->config_path) < sizeof(cp->path)) {
		memcpy(cp->path, cwd, cl);
		cp->path[cl] = '/';
		memcpy(cp->path + cl + 1, o->config_path, strlen(o->config_path) + 1);
	} else {
		snprintf(cp->path, sizeof(cp->path), "%s", o->config_path);
	}

	struct cfg_error cerr;
	struct cfg *file = cfg_load_file(cp->path, &cerr);
	if (!file) {
		snprintf(err, errlen, "%s", cerr.msg);
		cp_free(cp);
		return NULL;
	}
	snprintf(cp->ovr_path, sizeof(cp->ovr_path), "%s", file->overrides_file);
	cp->file = file;
	/* the overrides file (and the slow query log) may live there: a
	 * missing folder is made private, as the control socket's is */
	if (file->state_dir[0] && mkdir(file->state_dir, 0700) < 0 && errno != EEXIST)
		log_warn("control plane: cannot create state_dir %s: %s", file->state_dir,
		         strerror(errno));
	cpauth_from_cfg(&cp->auth, file);
	char *text;
	uint64_t gen;
	if (cp_config_read_overrides(cp, &text, &gen, err, errlen) < 0) {
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
	struct cp_plist plugins;
	if (cp_plugins_read_cfg(cp, live, &plugins, err, errlen) < 0) {
		cfg_free(live);
		cp_free(cp);
		return NULL;
	}
	cp_config_install(cp, live, "start");
	cp_plugins_install_cfg(cp, &plugins);
	cp_plugins_restore(cp); /* helioctl's, kept from the last run */
	/* persist the generation so it keeps growing across restarts */
	char *persist = cp_config_overrides_text(cp, NULL, NULL, NULL, cp->generation);
	char werr[1200];
	if (!persist || cp_config_write_atomic(cp->ovr_path, persist, werr, sizeof(werr)) < 0)
		log_warn("control plane: %s: live changes will not survive a restart",
		         persist ? werr : "out of memory");
	free(persist);

	cp->checker = prober_new();
	cp_probe_round(cp);

	int rv = nng_rep0_open(&cp->sock);
	if (rv == 0) /* helioctl plugin load sends a module (at most 8 MiB) */
		rv = nng_socket_set_size(cp->sock, NNG_OPT_RECVMAXSZ,
		                         CP_PLUGIN_MAX_BYTES + (1u << 20));
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
		cp->http = admin_http_start(o->admin_address, cp_http_handler, cp, err, errlen);
		if (!cp->http) {
			cp_stop(cp);
			return NULL;
		}
	}
	cp->timer_started = pthread_create(&cp->timer, NULL, timer_main, cp) == 0;
	cp->prober_started = pthread_create(&cp->prober, NULL, cp_probe_main, cp) == 0;
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
	int r = cp_config_reload(cp, "reload (SIGHUP)", msg, cap);
	cp_unlock_and_send(cp);
	return r;
}
