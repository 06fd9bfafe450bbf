/*
 * helios-cp: the control-plane daemon. Loads the config file (and the
 * overrides helioctl made), listens for data planes and helioctl on
 * control_address, serves cluster-wide admin HTTP on control_admin_address.
 * SIGHUP re-reads the file; SIGTERM/SIGINT stop it. Data planes keep
 * serving while it is down.
 */
#include "common/cfg.h"
#include "common/cpauth.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/rundir.h"
#include "controlplane/cp.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: helios-cp -c FILE [--listen URL] [--admin HOST:PORT]\n"
	           "  -c, --config FILE   the HeliosProxy config file\n"
	           "  --listen URL        nng URL for data planes and helioctl (default: the\n"
	           "                      file's control_address, else its control_socket)\n"
	           "  --admin HOST:PORT   admin HTTP (default: control_admin_address; \"\" = off)\n"
	           "  --version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
	    {"admin", required_argument, NULL, 'a'},  {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *listen = NULL, *admin = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'a':
			admin = optarg;
			break;
		case 'V':
			printf("helios-cp %s\n", HELIOS_VERSION);
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
	sigset_t set;
	proc_block_signals(&set);

	struct cfg_error err;
	struct cfg *c = cfg_load_file(path, &err);
	if (!c) {
		fprintf(stderr, "helios-cp: %s\n", err.msg);
		return 1;
	}
	log_set_level_str(c->log_level);
	char url[CFG_PATH_MAX + 32];
	if (listen)
		snprintf(url, sizeof(url), "%s", listen);
	else
		cfg_control_url(c, url, sizeof(url));
	char dir[CFG_PATH_MAX], msg[600];
	if (!listen && rundir_of_config(c, dir, sizeof(dir)) &&
	    (rundir_prepare(dir, geteuid(), true, msg, sizeof(msg)) < 0 ||
	     rundir_share_with_group(dir, c->control_socket_group, msg, sizeof(msg)) < 0)) {
		fprintf(stderr, "helios-cp: %s\n", msg);
		cfg_free(c);
		return 1;
	}
	/* the file's control_address passed this check when it was loaded */
	if (listen && cpauth_url_unprotected(c, listen)) {
		fprintf(stderr,
		        "helios-cp: --listen %s can be reached from other hosts and nothing "
		        "authenticates its clients: set control_token, or use tls+tcp:// with "
		        "control_tls_ca and control_tls_verify_client = true, or "
		        "control_allow_insecure = true, in %s\n",
		        listen, path);
		cfg_free(c);
		return 1;
	}
	char admin_addr[CFG_HOST_MAX];
	snprintf(admin_addr, sizeof(admin_addr), "%s", admin ? admin : c->control_admin_address);
	cfg_free(c);

	const char *urls[1] = {url};
	struct cp_opts co = {
	    .config_path = path, .urls = urls, .n_urls = 1, .admin_address = admin_addr};
	struct cp *cp = cp_start(&co, msg, sizeof(msg));
	if (!cp) {
		fprintf(stderr, "helios-cp: %s\n", msg);
		return 1;
	}
	log_info("helios-cp %s: control plane on %s%s%s", HELIOS_VERSION, url,
	         admin_addr[0] ? ", admin HTTP on " : "", admin_addr);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (cp_reload(cp, msg, sizeof(msg)) < 0)
				log_error(
				    "config reload failed, keeping the running configuration: %s",
				    msg);
			continue;
		}
		log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	cp_stop(cp);
	log_info("helios-cp stopped");
	return 0;
}
