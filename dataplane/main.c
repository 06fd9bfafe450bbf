/*
 * heliosproxy: loads the config, starts the workers and handles signals
 * (SIGTERM/SIGINT drain and exit 0, SIGHUP reloads). Bad config at start
 * is fatal with a message naming file, line and key; on reload it is
 * logged and the running config stays.
 */
#include "common/cfg.h"
#include "common/cfgwatch.h"
#include "common/cpclient.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/rundir.h"
#include "controlplane/cp.h"
#include "dataplane/auth/authwork.h"
#include "dataplane/auth/pwhash.h"
#include "dataplane/conn/conn.h"
#include "dataplane/conn/conn_report.h"
#include "dataplane/conn/kfast.h"
#include "dataplane/conn/takeover.h"
#include "dataplane/pipeline/route.h"
#include "dataplane/policy/breaker.h"
#include "dataplane/pool/pool.h"
#include "dataplane/report/admin.h"
#include "dataplane/pipeline/analytics.h"
#include "dataplane/pipeline/cache.h"
#include "dataplane/pipeline/engine/rewrite.h"
#include "dataplane/report/cplink.h"
#include "dataplane/report/stats.h"
#include "dataplane/io/io.h"
#include "dataplane/policy/control.h"
#include "dataplane/policy/snap.h"
#include "dataplane/pool/pool.h"
#include "dataplane/pool/pool_ctr.h"
#include "dataplane/report/stats.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/pipeline/plugin_stage.h"
#include "common/cpwire.h"
#include "common/sdnotify.h"

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/opensslv.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: heliosproxy -c FILE                  run with this config (the control\n"
	           "                                            plane runs in-process unless the\n"
	           "                                            file sets control_address)\n"
	           "       heliosproxy --control-plane URL [-c FILE]\n"
	           "                                            attach to a helios-cp; FILE, if\n"
	           "                                            given, is served until it answers\n"
	           "       heliosproxy -c FILE --takeover       take over from the heliosproxy\n"
	           "                                            running with this config: its\n"
	           "                                            listening sockets and idle\n"
	           "                                            clients move here, it exits\n"
	           "       heliosproxy --check-config FILE      validate a config and exit\n"
	           "       heliosproxy --print-config-docs      print docs/configuration.md\n"
	           "       heliosproxy --print-config-man       print heliosproxy.toml(5) (roff)\n"
	           "       heliosproxy --hash-password [USER]   print a SCRAM-SHA-256 secret\n"
	           "                                            for a password from stdin (a\n"
	           "                                            terminal: asked without echo)\n"
	           "       heliosproxy --version\n"
	           "options (they win over the file, live overrides and reloads, and apply to\n"
	           "--check-config too):\n"
	           "  --listen ADDR          listen_address, host:port\n"
	           "  --admin-address ADDR   admin_address (admin HTTP: /metrics, /livez,\n"
	           "                         /readyz, /status), host:port; \"\" = off\n");
}

/* What this binary was built with, one "name=value" per feature on one line:
 * a container image has no build log, so `heliosproxy --version` is how an
 * operator (and make image, for the io.heliosproxy.bpf label) learns whether
 * the BPF fast path was compiled in (it is built out where BTF, clang or
 * bpftool was missing). io_uring is always compiled in; whether the kernel and
 * the seccomp profile allow it is probed at start (io_backend = "auto"). */
static void print_version(void)
{
	printf("heliosproxy %s\n", HELIOS_VERSION);
	printf("features: bpf-fastpath=%s io_uring=yes tls=openssl-%s nng=%s control-tls=%s\n",
#if HELIOS_HAVE_BPF
	       "yes",
#else
	       "no",
#endif
	       OPENSSL_VERSION_STR, nng_version(), nng_tls_engine_name());
}

static enum io_backend choose_backend(const struct cfg *c)
{
	if (c->io_backend == CFG_IO_EPOLL)
		return IO_BACKEND_EPOLL;
	/* probe once: containers often block io_uring by seccomp */
	int err = 0;
	struct io_loop *probe = io_loop_new(IO_BACKEND_URING, &err);
	if (probe) {
		io_loop_free(probe);
		return IO_BACKEND_URING;
	}
	if (c->io_backend == CFG_IO_URING)
		log_warn(
		    "io_backend = \"io_uring\" but io_uring cannot be set up (%s): using epoll",
		    strerror(-err));
	else
		log_info("io_uring unavailable (%s): using epoll", strerror(-err));
	return IO_BACKEND_EPOLL;
}

/* SIGHUP: the control plane re-reads the file (in-process, or asked).
 * -1 when it refused or could not be asked (logged with the reason). */
static int reload(struct cp *cp, const char *url)
{
	char msg[600];
	if (cp) {
		if (cp_reload(cp, msg, sizeof(msg)) < 0) {
			log_error("config reload failed, keeping the running configuration: %s",
			          msg);
			return -1;
		}
		return 0;
	}
	Helios__CtlResponse *r = NULL;
	if (cpclient_call(url, cplink_auth(), "reload", NULL, 0, 10000, &r, msg, sizeof(msg)) < 0) {
		log_error("SIGHUP: cannot ask the control plane to reload: %s", msg);
		return -1;
	}
	int rc = r->status != 0 ? -1 : 0;
	if (rc < 0)
		log_error("SIGHUP: control plane: %s", r->message);
	else
		log_info("SIGHUP: control plane: %s", r->message);
	helios__ctl_response__free_unpacked(r, NULL);
	return rc;
}

#define INPROC_URL "inproc://heliosproxy-control"

/* The in-process control plane's helioctl URL: the one helioctl -c FILE
 * computes, so from the file without --listen (whose port names the socket);
 * c (loaded with it) when the file cannot be read again. */
static void control_url_of_file(const char *path, const struct cfg *c, char *buf, size_t cap)
{
	struct cfg_error err;
	struct cfg *file;

	cfg_force_suspend(true);
	file = cfg_load_file(path, &err);
	cfg_force_suspend(false);
	cfg_control_url(file ? file : c, buf, cap);
	cfg_free(file);
}

/* ------------------------------------------------------------ workers
 * What a worker thread runs is registered here, at its start: conn/ owns
 * the sockets, clients and servers (and wakes the clients a stage parked);
 * the pipeline's per-worker work (routing table refresh) and process-wide chores (password
 * pre-derivation, the stats log line) run on timers. */

static void route_turn(struct worker *w, void *arg)
{
	(void)arg;
	route_refresh();
}

/* Once a second on worker 0: keys of plaintext passwords derived ahead. */
static void prewarm_tick(struct worker *w, void *arg)
{
	(void)w;
	(void)arg;
	struct snap *ps = snap_current();
	if (ps) {
		aw_prewarm(ps->cfg, ps->generation);
		snap_unref(ps);
	}
}

/* Once a second on worker 0: the stats line every stats_period_secs. */
static struct timespec last_stats; /* worker 0's thread only */

static void stats_tick(struct worker *w, void *arg)
{
	(void)w;
	(void)arg;
	struct timespec now;
	conn_now(&now);
	struct snap *st = snap_current();
	int period = st ? st->cfg->stats_period_secs : 0;
	snap_unref(st);
	if (period > 0 && conn_elapsed(&last_stats, &now) >= period) {
		last_stats = now;
		stats_log_line();
	}
}

static int worker_on_start(struct worker *w)
{
	int r = conn_worker_start(w);
	if (!r)
		r = worker_every(w, 0, route_turn, NULL);
	if (!r && w->idx == 0)
		r = worker_every(w, 1000, prewarm_tick, NULL);
	if (!r && w->idx == 0) {
		conn_now(&last_stats);
		r = worker_every(w, 1000, stats_tick, NULL);
	}
	return r;
}

static void worker_on_exit(struct worker *w)
{
	conn_worker_exit(w);
	route_worker_exit();
}

static const struct worker_hooks worker_hooks = {
    .start = worker_on_start,
    .stop = conn_worker_stop,
    .done = conn_worker_done,
    .exit = worker_on_exit,
};

/* Per worker: conn/'s state and sockets, then the thread. */
static int start_worker(struct worker *w, int idx, enum io_backend backend, char *err,
                        size_t errlen)
{
	int r = conn_worker_init(w, idx, err, errlen);
	if (r < 0)
		return r;
	return worker_start(w, idx, backend, &worker_hooks, err, errlen);
}

/* Clients and server connections in use now (any thread). */
static void drain_counts(unsigned *clients, int *in_use)
{
	struct conn_totals tot;
	conn_totals(&tot);
	*clients = tot.clients;
	*in_use = 0;
	for (struct pool *p = pool_first(); p; p = pool_next_of(p)) {
		struct pool_stats st;
		pool_get_stats(p, &st);
		*in_use += st.total - st.idle;
	}
}

/* After workers_stop(): joins the workers, and while they drain logs once
 * a second how many clients are left, so an operator watching a rolling
 * restart sees it move (and what holds it up). */
static void drain_wait(int n)
{
	struct timespec start;
	clock_gettime(CLOCK_REALTIME, &start);
	for (int i = 0; i < n; i++) {
		for (;;) {
			struct timespec now, until;
			clock_gettime(CLOCK_REALTIME, &now);
			/* the next whole second after start */
			long done = (long)(now.tv_sec - start.tv_sec) +
			            (now.tv_nsec >= start.tv_nsec ? 1 : 0);
			until.tv_sec = start.tv_sec + done;
			until.tv_nsec = start.tv_nsec;
			int r = pthread_timedjoin_np(g_workers[i].thread, NULL, &until);
			if (r != ETIMEDOUT)
				break;
			unsigned clients;
			int in_use;
			drain_counts(&clients, &in_use);
			log_ev(LOG_INFO, "drain_progress", NULL,
			       "shutdown: %u clients left, %d server connections in use", clients,
			       in_use);
		}
	}
	log_ev(LOG_INFO, "drain_progress", NULL, "shutdown: all clients gone");
}

/* A start-up failure after the control plane started: its threads end,
 * and an in-process one detaches what it attached (the XDP filter). */
static void stop_control(struct cp *cp)
{
	cplink_stop();
	cp_stop(cp);
}

/* A takeover that failed after this process stopped its control plane and
 * admin server (so that the new process could bind their addresses):
 * they start again, as at start-up. 0, or -1 with msg saying why. */
static int restart_control(const char *path, const char *url, const struct cpauth *auth,
                           struct cp **cpp, char *msg, size_t len)
{
	struct snap *s = snap_current();
	int r = -1;
	*cpp = NULL;
	if (!url) {
		char ctl[CFG_PATH_MAX + 32];
		control_url_of_file(path, s->cfg, ctl, sizeof(ctl));
		const char *urls[2] = {INPROC_URL, ctl};
		struct cp_opts co = {
		    .config_path = path, .urls = urls, .n_urls = 2, .embedded = true};
		*cpp = cp_start(&co, msg, len);
		if (!*cpp)
			goto out;
		if (cplink_start(INPROC_URL, false, auth, msg, len) < 0 ||
		    !cplink_wait_first(10000))
			goto out;
	} else if (cplink_start(url, true, auth, msg, len) < 0) {
		goto out;
	}
	if (admin_start(*cpp ? INPROC_URL : url, *cpp, s->cfg->admin_address, msg, len) < 0)
		goto out;
	r = 0;
out:
	snap_unref(s);
	return r;
}

/* ---- what follows the config: subscriptions to policy/snap ---- */

/* [[rewrite_rules]] compiled into each snapshot; a bad rule refuses the
 * config. */
static int rewrite_build(struct snap *s, char *err, size_t errlen)
{
	const struct cfg *cfg = s->cfg;
	if (!cfg->n_rewrite_rules)
		return 0;
	s->rewrite = rw_rules_new();
	if (!s->rewrite) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_rewrite_rules; i++) {
		char why[400];
		const struct cfg_rewrite_rule *r = &cfg->rewrite_rules[i];
		if (rw_rules_add(s->rewrite, r->match, r->replace, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "key 'rewrite_rules[%zu]'%s%s%s: %s", i,
			         r->name[0] ? " (" : "", r->name, r->name[0] ? ")" : "", why);
			return -1;
		}
	}
	return 0;
}

static void rewrite_release(struct snap *s)
{
	rw_rules_free(s->rewrite);
	s->rewrite = NULL;
}

/* The result cache follows the current config's limits; switched off, it
 * forgets everything (nothing kept may be trusted when it comes back). */
static void cache_on_install(const struct snap *s, const struct snap *old, void *arg)
{
	(void)arg;
	cache_apply_limits(s->cfg);
	if (old && old->cfg->cache.enabled && !s->cfg->cache.enabled)
		cache_flush(NULL);
}

/* Pause, drain or routing changed (policy/control): every worker looks at
 * its held clients again. */
static void subscribe_to_config(void)
{
	/* before the first snapshot is built; cannot fail (far below the cap) */
	snap_add_builder(rewrite_build, rewrite_release);
	snap_subscribe(cache_on_install, NULL);
	ctl_on_change(conn_hold_changed); /* held clients look again */
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"control-plane", required_argument, NULL, 'P'},
	    {"check-config", required_argument, NULL, 'C'},
	    {"print-config-docs", no_argument, NULL, 'D'},
	    {"print-config-man", no_argument, NULL, 'M'},
	    {"listen", required_argument, NULL, 'L'},
	    {"admin-address", required_argument, NULL, 'A'},
	    {"version", no_argument, NULL, 'V'},
	    {"hash-password", no_argument, NULL, 'H'},
	    {"takeover", no_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *cp_arg = NULL, *check = NULL;
	bool hash_pw = false, takeover = false;
	struct cfg_error ferr;
	int o;
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'P':
			cp_arg = optarg;
			break;
		case 'C':
			check = optarg;
			break;
		case 'L':
		case 'A':
			/* before anything loads a config: every load takes it */
			if (cfg_force_value(o == 'L' ? "listen_address" : "admin_address", optarg,
			                    &ferr) < 0) {
				fprintf(stderr, "heliosproxy: --%s: %s\n",
				        o == 'L' ? "listen" : "admin-address", ferr.msg);
				return 2;
			}
			break;
		case 'D':
			cfg_write_docs(stdout);
			return 0;
		case 'M':
			cfg_write_man(stdout, HELIOS_VERSION);
			return 0;
		case 'V':
			print_version();
			return 0;
		case 'H':
			hash_pw = true;
			break;
		case 'T':
			takeover = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (hash_pw) {
		/* getopt has moved the operands to the end: at most one, the user */
		if (argc - optind > 1) {
			usage(stderr);
			return 2;
		}
		return pwhash_main(optind < argc ? argv[optind] : NULL);
	}
	if (check) {
		struct cfg_error err;
		struct cfg *c = cfg_load_file(check, &err);
		if (!c) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		/* each plugin is compiled and instantiated with its config */
		int bad = plugins_check_config(c, stdout);
		cfg_free(c);
		if (bad) {
			fprintf(stderr, "%s: %d plugin%s do%s not load\n", check, bad,
			        bad == 1 ? "" : "s", bad == 1 ? "es" : "");
			return 1;
		}
		printf("%s: configuration is valid\n", check);
		return 0;
	}
	if ((!path && !cp_arg) || (takeover && !path)) {
		usage(stderr);
		return 2;
	}
	/* Signals go to this thread only (sigwait below); workers, nng and
	 * libmicrohttpd threads never see them. */
	sigset_t set;
	proc_block_signals(&set);
	/* SIGUSR2: the takeover socket's thread says a new process asks */
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	char msg[512] = "";
	struct cfg *c = NULL;
	bool watch = false;
	if (path) {
		struct cfg_error err;
		c = cfg_load_file(path, &err);
		if (!c) {
			fprintf(stderr, "heliosproxy: %s\n", err.msg);
			return 1;
		}
		log_apply_cfg(c);
		watch = c->watch_config;
		/* before the control plane and the admin server: the running
		 * process frees their addresses before it answers */
		if (takeover && tko_request(c, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "heliosproxy: %s\n", msg);
			cfg_free(c);
			return 1;
		}
	}
	/* the router learns the control plane's table and drained nodes
	 * from the report layer (it may not call up into it) */
	static const struct route_source rsrc = {
	    .version = ctl_routing_version,
	    .copy = ctl_routing_copy,
	    .any_drained = ctl_any_drained,
	    .node_drained = ctl_node_drained,
	};
	route_set_source(&rsrc);
	/* before any thread that reports on it; limits follow each config */
	ireq_conn_install(); /* internal requests (the cache's catalog) use the pools */
	tx_req_install();    /* the cache wakes parked clients through conn/ */
	if (cache_start(c) < 0) {
		fprintf(stderr, "heliosproxy: out of memory for the result cache\n");
		return 1;
	}
	subscribe_to_config();
	/* the plugin stage follows the live set's emptiness; the set itself
	 * comes from the control plane (report/cplink.c) */
	plugin_stage_install();
	conn_pipes_install(); /* ... and the clients already in move over */
	/* a copy: c goes to the first snapshot, which a control plane's push
	 * may free before start-up is done (admin_start, reload read url) */
	static char url_copy[sizeof(c->control_address)];
	if (!cp_arg && c && c->control_address[0])
		snprintf(url_copy, sizeof(url_copy), "%s", c->control_address);
	const char *url = cp_arg ? cp_arg : (url_copy[0] ? url_copy : NULL);
	struct cp *cp = NULL;
	/* what the link presents to the control plane: the file's control_*
	 * keys; without a file (--control-plane alone) the token may come from
	 * $HELIOS_CONTROL_TOKEN */
	static struct cpauth auth;
	if (c) {
		cpauth_from_cfg(&auth, c);
	} else if (getenv("HELIOS_CONTROL_TOKEN")) {
		snprintf(auth.token, sizeof(auth.token), "%s", getenv("HELIOS_CONTROL_TOKEN"));
	}
	if (!url) {
		/* embedded: the control plane runs here, data plane link over
		 * inproc://, helioctl on control_socket */
		char ctl[CFG_PATH_MAX + 32], dir[CFG_PATH_MAX];
		control_url_of_file(path, c, ctl, sizeof(ctl));
		if (rundir_of_config(c, dir, sizeof(dir)) &&
		    (rundir_prepare(dir, geteuid(), true, msg, sizeof(msg)) < 0 ||
		     rundir_share_with_group(dir, c->control_socket_group, msg, sizeof(msg)) < 0)) {
			fprintf(stderr, "heliosproxy: %s\n", msg);
			cfg_free(c);
			return 1;
		}
		/* the data plane's own checks of the file (hba, ident map, key
		 * files: snap builders) before any thread starts; otherwise the
		 * control plane hands the config over, the data plane refuses it,
		 * and the start ends only when waiting for it times out */
		struct snap *probe = snap_new(c, msg, sizeof(msg)); /* takes c */
		c = NULL;
		if (!probe) {
			fprintf(stderr, "heliosproxy: %s\n", msg);
			return 1;
		}
		snap_unref(probe);
		const char *urls[2] = {INPROC_URL, ctl};
		struct cp_opts co = {
		    .config_path = path, .urls = urls, .n_urls = 2, .embedded = true};
		cp = cp_start(&co, msg, sizeof(msg));
		if (!cp) {
			fprintf(stderr, "heliosproxy: %s\n", msg);
			return 1;
		}
		if (cplink_start(INPROC_URL, false, &auth, msg, sizeof(msg)) < 0 ||
		    !cplink_wait_first(10000)) {
			fprintf(stderr,
			        "heliosproxy: the in-process control plane did not answer%s%s\n",
			        msg[0] ? ": " : "", msg);
			cplink_stop();
			cp_stop(cp); /* its threads end before the process does */
			return 1;
		}
		log_info("control plane running in-process; helioctl reaches it at %s", ctl);
	} else {
		if (c) {
			/* serve the local file until the control plane answers */
			struct snap *s = snap_new(c, msg, sizeof(msg));
			if (!s) {
				fprintf(stderr, "heliosproxy: %s\n", msg);
				return 1;
			}
			snap_install_gen(s, 0);
			/* and its [[plugins]]: the control plane's set replaces them
			 * when it answers (report/cplink.c) */
			if (plugins_from_config(s->cfg, msg, sizeof(msg)) < 0)
				log_error("plugins of %s: %s; none run until the control plane "
				          "sends its set",
				          path, msg);
		}
		if (cplink_start(url, true, &auth, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "heliosproxy: %s\n", msg);
			return 1;
		}
		if (!path) {
			log_info("waiting for a configuration from the control plane at %s", url);
			while (!cplink_wait_first(10000))
				log_warn("still waiting for a configuration from the control plane "
				         "at %s",
				         url);
		}
	}
	/* held until start-up is done: a push may replace it meanwhile */
	struct snap *s = snap_current();

	const struct cfg *cur = s->cfg;
	int n = cur->workers > 0 ? cur->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	enum io_backend backend = choose_backend(cur);
	g_workers_planned = n;
	/* every pool: a counter block per worker, the live max_pool_size */
	pool_init(n, sizeof(struct pool_ctr), snap_max_pool_size);
	cache_apply_limits(cur);
	g_workers = calloc((size_t)n, sizeof(*g_workers));
	if (!g_workers)
		return 1;
	for (int i = 0; i < n; i++) {
		if (start_worker(&g_workers[i], i, backend, msg, sizeof(msg)) < 0) {
			log_error("%s", msg);
			fprintf(stderr, "heliosproxy: %s\n", msg);
			__atomic_store_n(&g_n_workers, i, __ATOMIC_RELEASE);
			workers_stop();
			for (int j = 0; j < i; j++)
				worker_join(&g_workers[j]);
			stop_control(cp);
			return 1;
		}
		__atomic_store_n(&g_n_workers, i + 1, __ATOMIC_RELEASE);
	}
	/* the slow query log defaults to state_dir, which nothing else makes
	 * when a helios-cp holds the control socket (a pod's emptyDir subfolder) */
	if (cur->state_dir[0] && mkdir(cur->state_dir, 0700) == 0)
		log_info("created state_dir %s", cur->state_dir);
	if (analytics_start(cur, msg, sizeof(msg)) < 0 ||
	    admin_start(cp ? INPROC_URL : url, cp, cur->admin_address, msg, sizeof(msg)) < 0) {
		log_error("%s", msg);
		fprintf(stderr, "heliosproxy: %s\n", msg);
		workers_stop();
		for (int i = 0; i < n; i++)
			worker_join(&g_workers[i]);
		stop_control(cp);
		return 1;
	}
	log_info("heliosproxy %s listening on %s%s%s: %d workers, %s, pool mode %s", HELIOS_VERSION,
	         cur->listen_address, cur->unix_socket_dir[0] ? " and " : "", cur->unix_socket_dir,
	         n, io_backend_str(g_workers[0].backend), cfg_pool_mode_str(cur->pool.mode));
	/* the workers' listeners are bound: systemd (Type=notify) may start
	 * what comes After= us */
	char status[CFG_HOST_MAX + 64];
	snprintf(status, sizeof(status), "listening on %s, %d workers", cur->listen_address, n);
	sdn_ready(status);
	if (takeover) {
		if (tko_ready(cur, msg, sizeof(msg)) < 0)
			log_error("%s", msg);
	} else {
		tko_serve(cur);
	}
	snap_unref(s);

	struct cfgw *cw = NULL;
	if (watch && path) {
		cw = cfgw_new(path, msg, sizeof(msg));
		if (cw)
			log_info("watch_config: a change of %s applies like SIGHUP", path);
		else
			log_error("%s: changes apply only on SIGHUP", msg);
	}
	bool control_down = false; /* a takeover failed after stopping it */
	for (;;) {
		int sig = cfgw_wait(cw, &set);
		if (sig == SIGUSR2) {
			pid_t by = tko_pending();
			if (!by)
				continue;
			log_info(
			    "takeover: process %d asks to take over: stopping the admin server and "
			    "the control plane",
			    (int)by);
			admin_stop();
			stop_control(cp);
			cp = NULL;
			if (tko_hand_listeners(msg, sizeof(msg)) < 0) {
				log_error("takeover by process %d failed: %s; this process goes on",
				          (int)by, msg);
				if (restart_control(path, url, &auth, &cp, msg, sizeof(msg)) == 0) {
					log_info("takeover failed: admin server and control plane "
					         "restarted");
					continue;
				}
				control_down = true;
				log_error(
				    "the admin server or the control plane could not start again: "
				    "%s; restart this process to get them back",
				    msg);
				continue;
			}
			log_info("takeover: process %d runs: idle clients move to it, clients in a "
			         "transaction finish it here first",
			         (int)by);
			sdn_stopping("handing over to a new process");
			__atomic_store_n(&g_tko_handing, 1, __ATOMIC_RELEASE);
			workers_stop();
			break;
		}
		if ((sig == 0 || sig == SIGHUP) && control_down) {
			log_error(
			    "reload ignored: the control plane was stopped by a failed takeover");
			continue;
		}
		if (sig == 0 || sig == SIGHUP) {
			if (sig == 0)
				log_info("watch_config: %s changed: reloading", path);
			sdn_reloading();
			if (reload(cp, url) < 0) {
				/* systemctl status shows it until the next reload */
				char failed[sizeof(status) + 64];
				snprintf(failed, sizeof(failed),
				         "%s; the last reload failed (see the log)", status);
				sdn_ready(failed);
			} else {
				sdn_ready(status);
			}
			continue;
		}
		log_info("received %s: no new connections, waiting for clients to finish",
		         sig == SIGTERM ? "SIGTERM" : "SIGINT");
		sdn_stopping("draining: waiting for clients to finish");
		workers_stop();
		break;
	}
	cfgw_free(cw);
	drain_wait(n);
	tko_hand_pools(); /* servers released while it drained, warm */
	tko_finish();     /* the last records, then END */
	tko_close();
	admin_stop();
	cplink_stop();
	cp_stop(cp);
	analytics_stop();
	cache_stop();
	plugin_set_shutdown();
	kfast_shutdown();
	log_info("heliosproxy stopped");
	return 0;
}
