/*
 * helios-cp: the control-plane daemon. Loads the config file (and the
 * overrides helioctl made), listens for data planes and helioctl on
 * control_address, serves cluster-wide admin HTTP on control_admin_address.
 * SIGHUP (or, with watch_config, a change of the file) re-reads the file;
 * SIGTERM/SIGINT stop it. Data planes keep
 * serving while it is down.
 */
#include "common/cfg.h"
#include "common/cfgwatch.h"
#include "common/cpauth.h"
#include "common/cpwire.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/rundir.h"
#include "common/sdnotify.h"
#include "controlplane/cp.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: helios-cp -c FILE [--listen URL] [--admin-address HOST:PORT]\n"
	           "  -c, --config FILE   the HeliosProxy config file\n"
	           "  --listen URL        nng URL for data planes and helioctl (default: the\n"
	           "                      file's control_address, else its control_socket)\n"
	           "  --admin-address HOST:PORT\n"
	           "                      admin HTTP (/metrics, /livez, /readyz, /status):\n"
	           "                      control_admin_address over the file's and reloads;\n"
	           "                      \"\" = off (--admin is the same)\n"
	           "  --version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"listen", required_argument, NULL, 'l'},
	    {"admin", required_argument, NULL, 'a'},
	    {"admin-address", required_argument, NULL, 'a'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *listen = NULL;
	struct cfg_error err;
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
			/* every load takes it: the file, reloads, watch_config */
			if (cfg_force_value("control_admin_address", optarg, &err) < 0) {
				fprintf(stderr, "helios-cp: --admin-address: %s\n", err.msg);
				return 2;
			}
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

	struct cfg *c = cfg_load_file(path, &err);
	if (!c) {
		fprintf(stderr, "helios-cp: %s\n", err.msg);
		return 1;
	}
	log_apply_cfg(c);
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
	snprintf(admin_addr, sizeof(admin_addr), "%s", c->control_admin_address);
	bool watch = c->watch_config;
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
	char status[sizeof(url) + 32];
	snprintf(status, sizeof(status), "control plane on %s", url);
	sdn_ready(status);
	struct cfgw *cw = NULL;
	if (watch) {
		cw = cfgw_new(path, msg, sizeof(msg));
		if (cw)
			log_info("watch_config: a change of %s applies like SIGHUP", path);
		else
			log_error("%s: changes apply only on SIGHUP", msg);
	}
	for (;;) {
		int sig = cfgw_wait(cw, &set);
		if (sig == 0)
			log_info("watch_config: %s changed: reloading", path);
		if (sig == 0 || sig == SIGHUP) {
			sdn_reloading();
			if (cp_reload(cp, msg, sizeof(msg)) < 0) {
				log_error(
				    "config reload failed, keeping the running configuration: %s",
				    msg);
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
		log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		sdn_stopping("stopping");
		break;
	}
	cfgw_free(cw);
	cp_stop(cp);
	log_info("helios-cp stopped");
	return 0;
}
