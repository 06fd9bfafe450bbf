/*
 * heliosproxy: loads the config, starts the workers and handles signals
 * (SIGTERM/SIGINT drain and exit 0, SIGHUP reloads). Bad config at start
 * is fatal with a message naming file, line and key; on reload it is
 * logged and the running config stays.
 */
#include "common/cfg.h"
#include "common/log.h"
#include "dataplane/io/io.h"
#include "dataplane/snap.h"
#include "dataplane/worker.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HELIOS_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f, "usage: heliosproxy -c FILE          run with this config\n"
	           "       heliosproxy --check-config FILE  validate a config and exit\n"
	           "       heliosproxy --print-config-docs  print docs/configuration.md\n"
	           "       heliosproxy --version\n");
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

static int reload(const char *path)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_file(path, &err);
	if (!c) {
		log_error("config reload failed, keeping the running configuration: %s", err.msg);
		return -1;
	}
	char msg[512];
	struct snap *s = snap_new(c, msg, sizeof(msg));
	if (!s) {
		log_error("config reload failed, keeping the running configuration: %s", msg);
		return -1;
	}
	log_set_level_str(s->cfg->log_level);
	snap_install(s);
	log_info("configuration reloaded from %s (generation %llu)", path,
	         (unsigned long long)s->generation);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", required_argument, NULL, 'C'},
	    {"print-config-docs", no_argument, NULL, 'D'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'C': {
			struct cfg_error err;
			struct cfg *c = cfg_load_file(optarg, &err);
			if (!c) {
				fprintf(stderr, "%s\n", err.msg);
				return 1;
			}
			printf("%s: configuration is valid\n", optarg);
			cfg_free(c);
			return 0;
		}
		case 'D':
			cfg_write_docs(stdout);
			return 0;
		case 'V':
			printf("heliosproxy %s\n", HELIOS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	struct cfg_error err;
	struct cfg *c = cfg_load_file(path, &err);
	if (!c) {
		fprintf(stderr, "heliosproxy: %s\n", err.msg);
		return 1;
	}
	log_set_level_str(c->log_level);
	char msg[512];
	struct snap *s = snap_new(c, msg, sizeof(msg));
	if (!s) {
		fprintf(stderr, "heliosproxy: %s\n", msg);
		return 1;
	}
	snap_install(s);

	/* Signals go to this thread only (sigwait below); workers never see them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	const struct cfg *cur = s->cfg;
	int n = cur->workers > 0 ? cur->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	enum io_backend backend = choose_backend(cur);
	g_workers = calloc((size_t)n, sizeof(*g_workers));
	if (!g_workers)
		return 1;
	for (int i = 0; i < n; i++) {
		if (worker_start(&g_workers[i], i, backend, msg, sizeof(msg)) < 0) {
			log_error("%s", msg);
			fprintf(stderr, "heliosproxy: %s\n", msg);
			g_n_workers = i;
			workers_stop();
			for (int j = 0; j < i; j++)
				worker_join(&g_workers[j]);
			return 1;
		}
		g_n_workers = i + 1;
	}
	log_info("heliosproxy %s listening on %s%s%s: %d workers, %s, pool mode %s", HELIOS_VERSION,
	         cur->listen_address, cur->unix_socket_dir[0] ? " and " : "", cur->unix_socket_dir,
	         n, io_backend_str(g_workers[0].backend), cfg_pool_mode_str(cur->pool.mode));

	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(path);
			continue;
		}
		log_info("received %s: no new connections, waiting for clients to finish",
		         sig == SIGTERM ? "SIGTERM" : "SIGINT");
		workers_stop();
		break;
	}
	for (int i = 0; i < n; i++)
		worker_join(&g_workers[i]);
	log_info("heliosproxy stopped");
	return 0;
}
