/*
 * helioctl, the operator CLI: one CtlRequest to the control plane (helios-cp,
 * or the one inside heliosproxy), its CtlResponse printed as a table or as
 * JSON, and an exit code scripts can branch on (see usage() and
 * docs/helioctl.md). Arguments are checked here so that a typo fails fast
 * with exit 2 instead of a round trip; keys and values are the control
 * plane's to judge, as it may be newer than this helioctl.
 */
#include "cli/helioctl.h"
#include "common/cfg.h"
#include "common/cpauth.h"
#include "common/cpwire.h"
#include "common/pbjson.h"
#include "common/rundir.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct verb {
	const char *name;
	const char *synopsis; /* arguments after the verb, "" if none */
	const char *summary;  /* one line for helioctl --help */
	const char *details;  /* body of VERB --help */
	unsigned min_args, max_args;
	render_fn *render;
};

static const struct verb verbs[] = {
    {"status", "", "control plane, config files and every data plane",
     "Shows the control plane's version, uptime and live config generation, the config\n"
     "file and its overrides file, the paused databases and drained nodes, then one row\n"
     "per data plane: connected, config generation it runs, time since it was last\n"
     "heard from, clients, I/O backend and its last config error. Keys changed with\n"
     "`config set` that need a restart are listed under the table.\n",
     0, 0, render_status},
    {"pools", "", "pools of every data plane: clients, servers, limits",
     "One row per pool (data plane, database, user, node): active and waiting clients,\n"
     "active/idle/used/logging-in servers, max_pool_size, longest current wait, paused.\n",
     0, 0, render_pools},
    {"clients", "", "client connections of every data plane",
     "One row per client connection: id, user, database, state (active, waiting, idle,\n"
     "login, paused), address, TLS, application_name, linked server pid and the\n"
     "reason it is pinned to its server, if it is.\n",
     0, 0, render_clients},
    {"servers", "", "server connections of every data plane",
     "One row per server connection: backend pid, user, database, node, state (active,\n"
     "idle, used, login), address, the client id it serves and TLS.\n",
     0, 0, render_servers},
    {"nodes", "", "database nodes: role, health, replication lag, draining",
     "One row per node of the routing table: role (configured or probed), health,\n"
     "replication lag in ms (- when unknown), draining, last probe error.\n",
     0, 0, render_nodes},
    {"stats", "", "traffic and average times per pool",
     "One row per pool: transactions, queries, bytes received from and sent to\n"
     "clients, average transaction, query and server-wait times in milliseconds,\n"
     "since the data plane started.\n",
     0, 0, render_stats},
    {"config", "get KEY | show | diff | set KEY VALUE | reset KEY",
     "read or change the live configuration",
     "  get KEY        print KEY's live value (TOML syntax), e.g. pool_mode.max_pool_size\n"
     "  show           every key and its live value; * marks keys set with helioctl\n"
     "  diff           keys whose live value differs from the config file\n"
     "  set KEY VALUE  change KEY on every data plane and keep the change in the\n"
     "                 overrides file (it survives restarts and reloads); exit 1 with\n"
     "                 the reason when the control plane refuses it (unknown key,\n"
     "                 invalid value, restart needed), 4 when a data plane did not\n"
     "                 acknowledge in time\n"
     "  reset KEY      drop the override of KEY: back to the config file's value\n"
     "\n"
     "Keys are the dotted names of docs/configuration.md. VALUE is one argument:\n"
     "quote it for the shell when it has spaces. Use -- before a VALUE that starts\n"
     "with --.\n",
     1, 3, render_config},
    {"reload", "", "re-read the config file and push it to every data plane",
     "The control plane re-reads its config file (plus the overrides file) and sends\n"
     "the new generation to every data plane. Exit 1 when the file is invalid (the\n"
     "live config stays), 4 when a data plane did not acknowledge in time.\n",
     0, 0, render_message},
    {"pause", "[DB]", "hold new work for DB (every database without DB)",
     "Clients of DB (of every database when DB is not given) are held: their next\n"
     "transactions wait until `resume`. Connections stay open.\n",
     0, 1, render_message},
    {"resume", "[DB]", "undo pause (every database without DB)",
     "Releases the clients `pause` held: for DB, or everything when DB is not given.\n", 0, 1,
     render_message},
    {"drain", "NODE", "send no new work to NODE (before maintenance)",
     "Data planes stop routing new server connections to NODE; the ones in use finish\n"
     "their work. `nodes` shows DRAINING; `undrain` ends it.\n"
     "--wait: then return once no data plane has a server connection to NODE in use\n"
     "(`servers` shows none that is not idle): exit 0 when drained, 1 when some are\n"
     "still in use after --wait-timeout S seconds (default 300).\n",
     1, 1, render_message},
    {"undrain", "NODE", "undo drain", "NODE takes new work again.\n", 1, 1, render_message},
    {"top", "[--by time|calls|p99|mean]", "statements by fingerprint: calls, time, percentiles",
     "One row per statement fingerprint (constants replaced by $n), merged over the\n"
     "workers of each data plane: calls, errors, rows, total, mean, p50/p95/p99 and max\n"
     "time in ms, cache hits, and the normalised text. Sorted by total time (default),\n"
     "calls, p99 or mean time. Needs [analytics] enabled = true.\n",
     0, 1, render_top},
    {"slowlog", "[-n N]", "the newest slow-query log lines",
     "Prints the N (default 20) newest lines of every data plane's slow query log\n"
     "(JSON, one statement each: time, duration, user, database, node, fingerprint and\n"
     "the normalised text, never literal values). Needs [analytics] enabled and\n"
     "slow_query_threshold_ms > 0.\n",
     0, 1, render_slowlog},
    {"cache", "stats | flush [TABLE]", "result cache: counters, or drop entries",
     "`cache stats`: per data plane, entries, bytes used of the limit, hits, misses,\n"
     "stores, evictions, invalidations and the other counters of docs/cache.md.\n"
     "`cache flush`: drops every entry on every data plane; `cache flush TABLE` drops\n"
     "the entries that read TABLE (by name, any schema). Prints what was removed.\n",
     1, 2, render_cache},
    {"tenants", "", "tenants: connections, servers, queries, rate-limit counters",
     "One row per tenant and data plane: client connections now and the cap\n"
     "(tenants.max_connections, or this data plane's share of it), server connections of\n"
     "its pools, queries, queries throttled and refused, refused logins, and its rate limit.\n"
     "See docs/tenants.md.\n",
     0, 0, render_tenants},
    {"rewrite", "test SQL [TENANT]", "show what a statement becomes after rewriting",
     "Runs SQL through the data planes' rewriting: [[rewrite_rules]], then TENANT's\n"
     "schema_prefix when a tenant id is given. Prints the status (rewritten, unchanged or\n"
     "failed) and the text the server would get, or why rewriting failed (the statement is\n"
     "then sent as written). See docs/rewriting.md.\n",
     2, 3, render_rewrite},
    {"xdp", "[status] | deny add CIDR | deny del CIDR | deny list",
     "XDP admission filter: state, counters, deny list",
     "  status         (the default) whether the filter is attached, to which interface\n"
     "                 and in which mode, its ports and SYN rate, and its packet counters\n"
     "  deny add CIDR  drop TCP packets from CIDR (10.0.0.0/8, 2001:db8::/32 or one\n"
     "                 address) from now on; live only: kept until the control plane\n"
     "                 stops, re-applied after configuration changes\n"
     "  deny del CIDR  remove a prefix added with `deny add`; the ones of xdp.deny\n"
     "                 change with `config set xdp.deny`\n"
     "  deny list      every prefix, where it comes from (config, runtime) and the\n"
     "                 packets it dropped\n"
     "\n"
     "The control plane (helios-cp, or heliosproxy's own) loads the filter when\n"
     "xdp.enabled is set; deny verbs fail with exit 1 when it is not. See docs/xdp.md.\n",
     0, 3, render_xdp},
    {"plugin",
     "list | load NAME PATH [--config JSON] [--on-failure continue|deny] | unload NAME | "
     "reload NAME | stats",
     "WASM plugins: list, load, unload, reload, counters",
     "  list           (the default) the control plane's plugins: where each comes from\n"
     "                 ([[plugins]] or helioctl), sha256, size, limits and config; then\n"
     "                 the plugin generation each data plane runs, or why it refused it\n"
     "  load NAME PATH read the .wasm module PATH here and send it to the control plane,\n"
     "                 which hands it (bytes and sha256) to every data plane; exit 0 when\n"
     "                 all applied it, 1 when every one refused it (the reason is shown;\n"
     "                 the load is undone and the plugins they run stay), 4 when some\n"
     "                 did not. --config JSON: the object its helios_init reads (default\n"
     "                 {}); --on-failure continue|deny: what a trap or a timeout does to\n"
     "                 the query (default continue). Loading NAME again replaces it.\n"
     "                 Kept across config reloads and restarts (beside the overrides\n"
     "                 file)\n"
     "  unload NAME    stop running a plugin loaded with helioctl (those of [[plugins]]\n"
     "                 go with the file and `helioctl reload`)\n"
     "  reload NAME    read its module again (the control plane's file for [[plugins]],\n"
     "                 PATH here for helioctl's) and give every worker a fresh instance;\n"
     "                 a plugin disabled after max_failures runs again\n"
     "  stats          per data plane and plugin: calls, mean time per call in\n"
     "                 microseconds, denials, rewrites, traps, timeouts, exhausted\n"
     "                 budgets, consecutive failures, workers with an instance, state\n"
     "\n"
     "After `plugin`, --config is the plugin's config: give helioctl's config file\n"
     "with -c or before the verb. See docs/plugins.md.\n",
     0, 4, render_plugin},
};
#define N_VERBS (sizeof(verbs) / sizeof(verbs[0]))

/* config's subcommands and their argument counts (after the subcommand). */
static const struct {
	const char *name, *synopsis;
	unsigned nargs;
} config_subs[] = {
    {"get", "get KEY", 1},       {"show", "show", 0},       {"diff", "diff", 0},
    {"set", "set KEY VALUE", 2}, {"reset", "reset KEY", 1},
};
#define N_CONFIG_SUBS (sizeof(config_subs) / sizeof(config_subs[0]))

static const char exit_codes[] =
    "exit status:\n"
    "  0  done\n"
    "  1  refused or failed: the control plane said no (its reason is on stderr)\n"
    "  2  usage error, bad address or unreadable config file\n"
    "  3  no control plane at the address, or no answer within --timeout\n"
    "  4  partial: some data planes did not acknowledge in time\n";

/* ipc://<this user's state directory>/heliosproxy-5433.ctl */
static void default_address(char *url, size_t cap)
{
	char dir[CFG_PATH_MAX];
	rundir_current("", dir, sizeof(dir));
	snprintf(url, cap, "ipc://%s/" RUNDIR_SOCKET_FMT, dir, HELIOCTL_DEFAULT_PORT);
}

static void usage(FILE *out)
{
	char default_url[CFG_PATH_MAX + 32];
	default_address(default_url, sizeof(default_url));

	fprintf(out, "usage: helioctl [-a URL | -c CONFIG] [--json] [--timeout MS] VERB [ARGS]\n"
	             "       helioctl VERB --help\n"
	             "       helioctl --help | --version\n"
	             "\n"
	             "Asks the HeliosProxy control plane (helios-cp, or heliosproxy's own).\n"
	             "\n"
	             "verbs:\n");
	for (size_t i = 0; i < N_VERBS; i++) {
		char head[64];
		snprintf(head, sizeof(head), "%s %s", verbs[i].name, verbs[i].synopsis);
		if (strlen(head) > 22)
			fprintf(out, "  %s\n  %-22s  %s\n", head, "", verbs[i].summary);
		else
			fprintf(out, "  %-22s  %s\n", head, verbs[i].summary);
	}
	fprintf(out,
	        "  import-pgbouncer PGBOUNCER.INI [--userlist FILE] [--hba FILE] [-o OUT.toml]\n"
	        "  %-22s  pgbouncer.ini to a HeliosProxy config (local, no control plane)\n",
	        "");
	fprintf(out,
	        "\n"
	        "options:\n"
	        "  -a, --address URL  control plane address: ipc:///path or tcp://host:port\n"
	        "  -c, --config FILE  use the address a heliosproxy config file gives\n"
	        "                     (control_address, else control_socket, else\n"
	        "                     ipc://<state_dir>/heliosproxy-<listen port>.ctl)\n"
	        "      --token TOKEN  the control plane's control_token (else -c CONFIG's\n"
	        "                     control_token, else $HELIOS_CONTROL_TOKEN)\n"
	        "      --tls-ca FILE  tls+tcp://: CA that signed the control plane's certificate\n"
	        "      --tls-cert FILE, --tls-key FILE\n"
	        "                     tls+tcp://: this client's certificate and key\n"
	        "      --tls-server-name NAME\n"
	        "                     name the control plane's certificate must carry\n"
	        "                     (default: the host of the address)\n"
	        "                     (without them: -c CONFIG's control_tls_* keys)\n"
	        "      --json         print the whole response as JSON\n"
	        "      --timeout MS   give up after MS milliseconds (default %u)\n"
	        "  -h, --help         this text (VERB --help: that verb's usage)\n"
	        "      --version\n"
	        "      --completion bash\n"
	        "                     print a bash completion script\n"
	        "\n"
	        "address: -a or -c if given, else $HELIOCTL_ADDRESS, else %s\n"
	        "\n"
	        "%s",
	        HELIOCTL_DEFAULT_TIMEOUT, default_url, exit_codes);
}

/*
 * `helioctl --completion bash`: a completion script made from the verb
 * table, so it never falls behind the verbs (make install writes it to
 * share/bash-completion/completions/helioctl).
 */
static void print_bash_completion(void)
{
	printf("# bash completion for helioctl (generated by helioctl --completion bash)\n"
	       "_helioctl()\n"
	       "{\n"
	       "\tlocal cur prev verb i\n"
	       "\tcur=${COMP_WORDS[COMP_CWORD]}\n"
	       "\tprev=${COMP_WORDS[COMP_CWORD-1]}\n"
	       "\tcase $prev in\n"
	       "\t-c|--config|--tls-ca|--tls-cert|--tls-key|--userlist|--hba|-o)\n"
	       "\t\tCOMPREPLY=($(compgen -f -- \"$cur\")); return;;\n"
	       "\t-a|--address|--timeout|--token|--tls-server-name|-n|--wait-timeout)\n"
	       "\t\tCOMPREPLY=(); return;;\n"
	       "\t--by) COMPREPLY=($(compgen -W 'time calls p99 mean' -- \"$cur\")); return;;\n"
	       "\t--on-failure) COMPREPLY=($(compgen -W 'continue deny' -- \"$cur\")); return;;\n"
	       "\tesac\n"
	       "\tverb=\n"
	       "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	       "\t\tcase ${COMP_WORDS[i]} in\n"
	       "\t\t-a|-c|--address|--config|--timeout|--token|--tls-*) ((i++));;\n"
	       "\t\t-*) ;;\n"
	       "\t\t*) verb=${COMP_WORDS[i]}; break;;\n"
	       "\t\tesac\n"
	       "\tdone\n"
	       "\tif [[ $cur == -* ]]; then\n"
	       "\t\tlocal o='-a --address -c --config --token --tls-ca --tls-cert --tls-key "
	       "--tls-server-name --json --timeout -h --help'\n"
	       "\t\t[[ -z $verb ]] && o+=' --version --completion'\n"
	       "\t\tcase $verb in\n"
	       "\t\tdrain) o+=' --wait --wait-timeout';;\n"
	       "\t\tplugin) o+=' --config --on-failure';;\n"
	       "\t\ttop) o+=' --by';;\n"
	       "\t\tslowlog) o+=' -n';;\n"
	       "\t\timport-pgbouncer) o='--userlist --hba -o -h --help';;\n"
	       "\t\tesac\n"
	       "\t\tCOMPREPLY=($(compgen -W \"$o\" -- \"$cur\"))\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\tif [[ -z $verb ]]; then\n"
	       "\t\tCOMPREPLY=($(compgen -W '");
	for (size_t i = 0; i < N_VERBS; i++)
		printf("%s ", verbs[i].name);
	printf("import-pgbouncer' -- \"$cur\"))\n"
	       "\t\treturn\n"
	       "\tfi\n"
	       "\t[[ ${COMP_WORDS[COMP_CWORD-1]} != \"$verb\" ]] && return\n"
	       "\tcase $verb in\n"
	       "\tconfig) COMPREPLY=($(compgen -W '");
	for (size_t i = 0; i < N_CONFIG_SUBS; i++)
		printf("%s%s", i ? " " : "", config_subs[i].name);
	printf("' -- \"$cur\"));;\n"
	       "\tcache) COMPREPLY=($(compgen -W 'stats flush' -- \"$cur\"));;\n"
	       "\txdp) COMPREPLY=($(compgen -W 'status deny' -- \"$cur\"));;\n"
	       "\tplugin) COMPREPLY=($(compgen -W 'list load unload reload stats' -- \"$cur\"));;\n"
	       "\trewrite) COMPREPLY=($(compgen -W 'test' -- \"$cur\"));;\n"
	       "\timport-pgbouncer) COMPREPLY=($(compgen -f -- \"$cur\"));;\n"
	       "\tesac\n"
	       "}\n"
	       "complete -F _helioctl helioctl\n");
}

static void verb_usage(FILE *out, const struct verb *v)
{
	if (v->render == render_config) {
		for (size_t i = 0; i < N_CONFIG_SUBS; i++)
			fprintf(out, "%s helioctl [OPTIONS] config %s\n",
			        i ? "      " : "usage:", config_subs[i].synopsis);
	} else {
		fprintf(out, "usage: helioctl [OPTIONS] %s%s%s\n", v->name, *v->synopsis ? " " : "",
		        v->synopsis);
	}
}

static void verb_help(const struct verb *v)
{
	verb_usage(stdout, v);
	printf("\n%s\nOPTIONS: -a URL | -c CONFIG, --token TOKEN, --tls-ca/--tls-cert/--tls-key "
	       "FILE,\n"
	       "--json, --timeout MS (see helioctl --help)\n"
	       "\n%s",
	       v->details, exit_codes);
}

/* Usage error: the problem, then the relevant usage, on stderr; exit 2. */
__attribute__((format(printf, 2, 3))) static int usage_error(const struct verb *v, const char *fmt,
                                                             ...)
{
	va_list ap;

	fputs("helioctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (v) {
		verb_usage(stderr, v);
		fprintf(stderr, "Try 'helioctl %s --help'.\n", v->name);
	} else {
		fprintf(stderr, "Try 'helioctl --help'.\n");
	}
	return HCTL_USAGE;
}

struct opts {
	const char *address, *config;
	const char *token, *tls_ca, *tls_cert, *tls_key, *tls_server_name;
	bool json;
	uint32_t timeout_ms;
	bool wait;                     /* drain --wait */
	uint32_t wait_timeout_s;       /* drain --wait-timeout */
	const char *plugin_config;     /* plugin load --config JSON */
	const char *plugin_on_failure; /* plugin load --on-failure */
	Helios__PluginModule *plugin;  /* plugin load: the module sent */
};

/* A whole number from lo to hi, all of s (no sign, no trailing junk:
 * atoi() read "5x" as 5); 0 or -1. */
static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Parses a --timeout value: whole milliseconds, 1 ms to 1 hour. */
static int parse_timeout(const char *s, uint32_t *out)
{
	unsigned long v;
	if (parse_uint(s, 1, 3600000, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/*
 * If argv[*i] is one of the global options, consumes it (and its value)
 * and returns 1; 0 if it is not an option; HCTL_USAGE (message printed) if
 * it is malformed. -h/--help and --version are the caller's.
 */
static int take_option(int argc, char **argv, int *i, struct opts *o, const struct verb *v)
{
	static const struct {
		const char *shrt, *lng;
	} valued[] = {{"-a", "--address"}, {"-c", "--config"},         {NULL, "--timeout"},
	              {NULL, "--token"},   {NULL, "--tls-ca"},         {NULL, "--tls-cert"},
	              {NULL, "--tls-key"}, {NULL, "--tls-server-name"}};
	const char **strings[] = {&o->address, &o->config,   NULL,        &o->token,
	                          &o->tls_ca,  &o->tls_cert, &o->tls_key, &o->tls_server_name};
	const char *arg = argv[*i];

	if (!strcmp(arg, "--json")) {
		o->json = true;
		(*i)++;
		return 1;
	}
	for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
		size_t ll = strlen(valued[k].lng);
		const char *val;
		if ((valued[k].shrt && !strcmp(arg, valued[k].shrt)) ||
		    !strcmp(arg, valued[k].lng)) {
			if (*i + 1 >= argc)
				return usage_error(v, "%s needs a value", arg);
			val = argv[*i + 1];
			*i += 2;
		} else if (!strncmp(arg, valued[k].lng, ll) && arg[ll] == '=') {
			val = arg + ll + 1;
			(*i)++;
		} else {
			continue;
		}
		if (strings[k])
			*strings[k] = val;
		else if (parse_timeout(val, &o->timeout_ms) < 0)
			return usage_error(
			    v, "--timeout wants milliseconds from 1 to 3600000, not '%s'", val);
		return 1;
	}
	return 0;
}

static const struct verb *find_verb(const char *name)
{
	for (size_t i = 0; i < N_VERBS; i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

/* xdp [status] | xdp deny add|del CIDR | xdp deny list; 0 or HCTL_USAGE. */
static int check_xdp_args(const struct verb *v, char **args, size_t n)
{
	if (n == 0 || (n == 1 && !strcmp(args[0], "status")))
		return 0;
	if (strcmp(args[0], "deny"))
		return usage_error(v, "xdp wants status or deny, not '%s'", args[0]);
	if (n < 2)
		return usage_error(v, "xdp deny wants add, del or list");
	if (!strcmp(args[1], "list"))
		return n == 2 ? 0 : usage_error(v, "xdp deny list takes no arguments");
	if (strcmp(args[1], "add") && strcmp(args[1], "del"))
		return usage_error(v, "xdp deny wants add, del or list, not '%s'", args[1]);
	if (n != 3)
		return usage_error(v, "xdp deny %s takes one prefix (CIDR)", args[1]);
	return 0;
}

/* plugin [list] | load NAME PATH | unload NAME | reload NAME | stats */
static int check_plugin_args(const struct verb *v, char **args, size_t n)
{
	if (n == 0)
		return 0;
	const char *s = args[0];
	if (!strcmp(s, "list") || !strcmp(s, "stats"))
		return n == 1 ? 0 : usage_error(v, "plugin %s takes no arguments", s);
	if (!strcmp(s, "load"))
		return n == 3 ? 0 : usage_error(v, "plugin load takes NAME and PATH");
	if (!strcmp(s, "unload") || !strcmp(s, "reload"))
		return n == 2 ? 0 : usage_error(v, "plugin %s takes one NAME", s);
	return usage_error(v, "plugin wants list, load, unload, reload or stats, not '%s'", s);
}

/* Checks a verb's arguments; 0 or HCTL_USAGE (message printed). */
static int check_args(const struct verb *v, char **args, size_t n)
{
	if (v->render == render_config) {
		if (!n)
			return usage_error(v, "config needs a subcommand");
		for (size_t i = 0; i < N_CONFIG_SUBS; i++) {
			if (strcmp(args[0], config_subs[i].name))
				continue;
			if (n - 1 != config_subs[i].nargs)
				return usage_error(v, "config %s takes %s", args[0],
				                   config_subs[i].nargs == 0   ? "no arguments"
				                   : config_subs[i].nargs == 1 ? "one argument"
				                                               : "two arguments");
			return 0;
		}
		return usage_error(v, "unknown config subcommand '%s'", args[0]);
	}
	if (v->render == render_top && n == 1 && strcmp(args[0], "time") &&
	    strcmp(args[0], "calls") && strcmp(args[0], "p99") && strcmp(args[0], "mean"))
		return usage_error(v, "--by wants time, calls, p99 or mean, not '%s'", args[0]);
	if (v->render == render_cache && n >= 1 && strcmp(args[0], "stats") &&
	    strcmp(args[0], "flush"))
		return usage_error(v, "cache wants stats or flush, not '%s'", args[0]);
	if (v->render == render_cache && n >= 2 && strcmp(args[0], "flush"))
		return usage_error(v, "cache stats takes no arguments");
	if (v->render == render_cache && n > 2)
		return usage_error(v, "cache flush takes at most one TABLE, not %zu", n - 1);
	if (v->render == render_xdp)
		return check_xdp_args(v, args, n);
	if (v->render == render_plugin)
		return check_plugin_args(v, args, n);
	if (v->render == render_rewrite && n >= 1 && strcmp(args[0], "test"))
		return usage_error(v, "rewrite wants test, not '%s'", args[0]);
	unsigned long num;
	if (v->render == render_slowlog && n == 1 && parse_uint(args[0], 1, 10000, &num) < 0)
		return usage_error(v, "-n wants a number from 1 to 10000, not '%s'", args[0]);
	if (n < v->min_args)
		return usage_error(v, "%s needs %s", v->name, v->synopsis);
	if (n > v->max_args && !v->max_args)
		return usage_error(v, "%s takes no arguments", v->name);
	if (n > v->max_args)
		return usage_error(v, "%s takes %s %s: %s", v->name,
		                   v->min_args == v->max_args ? "exactly" : "at most",
		                   v->max_args == 1 ? "one argument" : "two arguments",
		                   v->synopsis);
	return 0;
}

/* What helioctl presents (see usage()): an explicit option beats the
 * config file's key, which beats the environment (the token only). */
static void resolve_auth(const struct opts *o, const struct cfg *c, struct cpauth *a)
{
	const char *env = getenv("HELIOS_CONTROL_TOKEN");

	memset(a, 0, sizeof(*a));
	if (c)
		cpauth_from_cfg(a, c);
	if (o->token)
		snprintf(a->token, sizeof(a->token), "%s", o->token);
	else if (!a->token[0] && env)
		snprintf(a->token, sizeof(a->token), "%s", env);
	if (o->tls_ca)
		snprintf(a->ca, sizeof(a->ca), "%s", o->tls_ca);
	if (o->tls_cert)
		snprintf(a->cert, sizeof(a->cert), "%s", o->tls_cert);
	if (o->tls_key)
		snprintf(a->key, sizeof(a->key), "%s", o->tls_key);
	if (o->tls_server_name)
		snprintf(a->server_name, sizeof(a->server_name), "%s", o->tls_server_name);
}

/* The control plane's address (see usage()) and what to present to it;
 * 0 or HCTL_USAGE, or HCTL_UNREACHABLE when the state directory it is in
 * is not private. */
static int resolve_address(const struct opts *o, char *url, size_t cap, struct cpauth *auth)
{
	const char *env = getenv("HELIOCTL_ADDRESS");
	char dir[CFG_PATH_MAX] = "";

	/* An explicit option beats the environment, which beats the default. */
	if (o->address && o->config)
		return usage_error(NULL, "-a and -c are alternatives: give one");
	if (o->address) {
		snprintf(url, cap, "%s", o->address);
	} else if (o->config) {
		struct cfg_error err;
		struct cfg *c = cfg_load_file(o->config, &err);
		if (!c) {
			/* e.g. a reload after a bad edit: the address cannot come from it */
			fprintf(stderr,
			        "helioctl: %s\nhelioctl: the control plane address cannot be read "
			        "from %s; give it with -a URL\n",
			        err.msg, o->config);
			return HCTL_USAGE;
		}
		cfg_control_url(c, url, cap);
		if (!rundir_of_config(c, dir, sizeof(dir)))
			dir[0] = '\0';
		resolve_auth(o, c, auth);
		cfg_free(c);
	} else if (env && *env) {
		snprintf(url, cap, "%s", env);
	} else {
		default_address(url, cap);
		rundir_current("", dir, sizeof(dir));
	}
	if (!o->config)
		resolve_auth(o, NULL, auth);
	if (!*url)
		return usage_error(NULL, "empty control plane address");
	/* The directory heliosproxy would have made: if it is there, it must
	 * be as private as heliosproxy demands (a missing one is "no control
	 * plane", which the dial reports). The socket is checked at the dial. */
	char err[600];
	struct stat st;
	if (dir[0] && lstat(dir, &st) == 0 &&
	    rundir_prepare(dir, geteuid(), false, err, sizeof(err)) < 0) {
		fprintf(stderr, "helioctl: %s\n", err);
		return HCTL_UNREACHABLE;
	}
	return 0;
}

/*
 * How long the control plane may wait for data planes. A little less than
 * ours, so that when a data plane is slow its partial answer (status 4)
 * reaches us before we give up on it (exit 3).
 */
static uint32_t cp_timeout(uint32_t ms)
{
	uint32_t margin = ms / 5 < 1000 ? ms / 5 : 1000;
	return ms - margin ? ms - margin : 1;
}

static int print_json(const Helios__CtlResponse *r)
{
	json_t *j = pbjson_from_message(&r->base);
	/* 16 significant digits: 0.1 prints as 0.1 (17 gives
	 * 0.10000000000000001), unix times keep their microseconds. */
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(16)) : NULL;
	int rc = s ? 0 : -1;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
	return rc;
}

/* One request; 0 with *r, or the exit status (message printed). */
static int call(const char *url, const struct cpauth *auth, const struct opts *o, const char *verb,
                char **args, size_t nargs, Helios__CtlResponse **r)
{
	Helios__CtlRequest req = HELIOS__CTL_REQUEST__INIT;
	char err[1536];

	req.verb = (char *)verb;
	req.n_args = nargs;
	req.args = args;
	req.timeout_ms = cp_timeout(o->timeout_ms);
	req.plugin = o->plugin;
	int rc = rpc_call(url, auth, o->timeout_ms, &req, r, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "helioctl: %s\n", err);
		/* a person who gave no address may not know there are other ways */
		if (rc == HCTL_UNREACHABLE && !o->address && !o->config) {
			const char *env = getenv("HELIOCTL_ADDRESS");
			fprintf(
			    stderr,
			    "helioctl: %s; give the control plane's address with -c CONFIG (the "
			    "proxy's config file), -a URL or HELIOCTL_ADDRESS=URL\n",
			    env && *env ? "that address came from HELIOCTL_ADDRESS"
			                : "that is the default address");
		}
	}
	return rc;
}

/* Server connections to node that are not idle, over every data plane. */
static size_t in_use_on(const Helios__CtlResponse *r, const char *node)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_dataplanes; i++) {
		const Helios__DataPlaneStatus *d = r->dataplanes[i];
		for (size_t k = 0; d->report && k < d->report->n_server_list; k++) {
			const Helios__ServerInfo *sv = d->report->server_list[k];
			if (!strcmp(sv->node, node) && strcmp(sv->state, "idle"))
				n++;
		}
	}
	return n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* drain --wait: polls `servers` until NODE has none in use; exit status. */
static int drain_wait(const char *url, const struct cpauth *auth, const struct opts *o,
                      const char *node)
{
	double deadline = now_s() + o->wait_timeout_s;
	size_t left = 0;
	for (;;) {
		Helios__CtlResponse *r;
		int rc = call(url, auth, o, "servers", NULL, 0, &r);
		if (rc)
			return rc;
		if (r->status != HCTL_OK && r->status != HCTL_PARTIAL) {
			fprintf(stderr, "helioctl: servers: %s\n",
			        r->message && *r->message ? r->message : "refused");
			helios__ctl_response__free_unpacked(r, NULL);
			return HCTL_REFUSED;
		}
		left = in_use_on(r, node);
		helios__ctl_response__free_unpacked(r, NULL);
		if (!left) {
			if (!o->json)
				printf("node %s drained: no server connection in use\n", node);
			return HCTL_OK;
		}
		if (now_s() >= deadline)
			break;
		usleep(250 * 1000);
	}
	fprintf(stderr,
	        "helioctl: node %s still has %zu server connection(s) in use after %u s "
	        "(--wait-timeout)\n",
	        node, left, o->wait_timeout_s);
	return HCTL_REFUSED;
}

static void plugin_module_free(Helios__PluginModule *m)
{
	if (!m)
		return;
	free(m->wasm.data);
	free(m->sha256.data);
	free(m->path);
	free(m);
}

/* Reads a module for plugin load: the bytes, their sha256, the absolute
 * path (for a later reload); NULL with the reason printed. */
static Helios__PluginModule *plugin_read(const char *name, const char *path)
{
	char abs[PATH_MAX];
	FILE *f = realpath(path, abs) ? fopen(abs, "rb") : NULL;
	if (!f) {
		fprintf(stderr, "helioctl: cannot read %s: %s\n", path, strerror(errno));
		return NULL;
	}
	Helios__PluginModule *m = calloc(1, sizeof(*m));
	struct stat st;
	bool ok = false;
	if (m && fstat(fileno(f), &st) == 0) {
		helios__plugin_module__init(m);
		if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > (8 << 20)) {
			fprintf(stderr, "helioctl: %s: %s\n", path,
			        !S_ISREG(st.st_mode) ? "not a regular file"
			        : st.st_size == 0
			            ? "empty"
			            : "more than 8 MiB (the largest module a plugin may have)");
		} else {
			m->wasm.data = malloc((size_t)st.st_size);
			m->sha256.data = malloc(32);
			m->path = strdup(abs);
			unsigned int n = 32;
			if (m->wasm.data && m->sha256.data && m->path &&
			    fread(m->wasm.data, 1, (size_t)st.st_size, f) == (size_t)st.st_size &&
			    EVP_Digest(m->wasm.data, (size_t)st.st_size, m->sha256.data, &n,
			               EVP_sha256(), NULL) == 1) {
				m->wasm.len = (size_t)st.st_size;
				m->sha256.len = 32;
				m->name = (char *)name;
				ok = true;
			} else {
				fprintf(stderr, "helioctl: cannot read %s: %s\n", path,
				        errno ? strerror(errno) : "short read");
			}
		}
	}
	fclose(f);
	if (!ok) {
		plugin_module_free(m);
		return NULL;
	}
	return m;
}

/*
 * plugin load NAME PATH: the module read here goes with the request.
 * plugin reload NAME of a module loaded with helioctl: its PATH is read
 * again here and loaded with the same settings (one of [[plugins]] the
 * control plane reads itself). 0 with the arguments to send in *out and
 * *nout and o->plugin set (or not), else the exit status.
 */
static int plugin_prepare(const char *url, const struct cpauth *auth, struct opts *o, char **args,
                          size_t nargs, char **buf, char ***out, size_t *nout)
{
	const char *name = args[1];
	if (!strcmp(args[0], "load")) {
		o->plugin = plugin_read(name, args[2]);
		if (!o->plugin)
			return HCTL_REFUSED;
		o->plugin->config_json = (char *)(o->plugin_config ? o->plugin_config : "{}");
		o->plugin->on_failure =
		    (char *)(o->plugin_on_failure ? o->plugin_on_failure : "continue");
		return 0;
	}
	/* reload: where does NAME come from? */
	Helios__CtlResponse *r;
	char *list[1] = {"list"};
	int rc = call(url, auth, o, "plugin", list, 1, &r);
	if (rc)
		return rc;
	const Helios__PluginModule *p = NULL;
	for (size_t i = 0; i < r->n_plugins; i++)
		if (!strcmp(r->plugins[i]->name, name))
			p = r->plugins[i];
	if (p && !strcmp(p->source, "helioctl") && p->path && *p->path) {
		o->plugin = plugin_read(name, p->path);
		if (!o->plugin) {
			helios__ctl_response__free_unpacked(r, NULL);
			return HCTL_REFUSED;
		}
		/* the same settings; the strings outlive r */
		static char cfg[65536 + 1], of[16];
		snprintf(cfg, sizeof(cfg), "%s", p->config_json);
		snprintf(of, sizeof(of), "%s", p->on_failure);
		o->plugin->config_json = cfg;
		o->plugin->on_failure = of;
		o->plugin->fuel = p->fuel;
		o->plugin->timeout_ms = p->timeout_ms;
		o->plugin->memory_mb = p->memory_mb;
		buf[0] = "load";
		buf[1] = (char *)name;
		buf[2] = o->plugin->path;
		buf[3] = "reload";
		*out = buf;
		*nout = 4;
	}
	(void)nargs;
	helios__ctl_response__free_unpacked(r, NULL);
	return 0;
}

static int run(const struct verb *v, const struct opts *o, char **args, size_t nargs)
{
	Helios__CtlResponse *r;
	char url[1024];
	struct cpauth auth;
	int rc;

	rc = resolve_address(o, url, sizeof(url), &auth);
	if (rc)
		return rc;
	char *load_args[4];
	struct opts po = *o;
	if (v->render == render_plugin && nargs >= 2 &&
	    (!strcmp(args[0], "load") || !strcmp(args[0], "reload"))) {
		rc = plugin_prepare(url, &auth, &po, args, nargs, load_args, &args, &nargs);
		if (rc) {
			cpauth_wipe(&auth);
			return rc;
		}
		o = &po;
	}
	rc = call(url, &auth, o, v->name, args, nargs, &r);
	plugin_module_free(po.plugin);
	if (rc) {
		cpauth_wipe(&auth);
		return rc;
	}

	/* The control plane decides 0, 1 or 4; anything else it might send
	 * (a newer one) counts as failure rather than as 2 or 3, which mean
	 * something on this side. */
	rc = r->status == HCTL_OK || r->status == HCTL_PARTIAL ? r->status : HCTL_REFUSED;
	if (o->json) {
		if (print_json(r) < 0)
			fprintf(stderr, "helioctl: out of memory\n");
	} else if (rc != HCTL_REFUSED && v->render(stdout, r, args, nargs) < 0) {
		fprintf(stderr, "helioctl: out of memory\n");
	}
	if (rc != HCTL_OK) {
		const char *msg = r->message && *r->message ? r->message
		                  : rc == HCTL_PARTIAL
		                      ? "some data planes did not acknowledge in time"
		                      : "the control plane refused the request";
		fprintf(stderr, "helioctl: %s\n", msg);
	}
	helios__ctl_response__free_unpacked(r, NULL);
	if (rc == HCTL_OK && o->wait)
		rc = drain_wait(url, &auth, o, args[0]);
	cpauth_wipe(&auth);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = {.timeout_ms = HELIOCTL_DEFAULT_TIMEOUT, .wait_timeout_s = 300};
	const struct verb *v;
	char **args;
	size_t nargs = 0;
	int i = 1, rc;

	/* Options before the verb. */
	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return HCTL_OK;
		}
		if (!strcmp(a, "--completion")) {
			if (i + 1 >= argc || strcmp(argv[i + 1], "bash"))
				return usage_error(NULL, "--completion wants bash");
			print_bash_completion();
			return HCTL_OK;
		}
		if (!strcmp(a, "--version")) {
			printf("helioctl %s (control protocol %d)\n", HELIOS_VERSION,
			       HELIOS_PROTO_VERSION);
			return HCTL_OK;
		}
		rc = take_option(argc, argv, &i, &o, NULL);
		if (rc == HCTL_USAGE)
			return rc;
		if (!rc)
			return usage_error(NULL, "unknown option '%s'", a);
	}
	if (i >= argc)
		return usage_error(NULL, "no verb given");
	/* A local verb: reads files, asks no control plane. */
	if (!strcmp(argv[i], "import-pgbouncer"))
		return pgbimport_main(argc - i, argv + i);
	v = find_verb(argv[i]);
	if (!v) {
		fprintf(stderr, "helioctl: unknown verb '%s'; verbs:", argv[i]);
		for (size_t k = 0; k < N_VERBS; k++)
			fprintf(stderr, " %s", verbs[k].name);
		fprintf(stderr, "\nTry 'helioctl --help'.\n");
		return HCTL_USAGE;
	}
	i++;

	/*
	 * After the verb: its arguments, --help, and the global options again
	 * (`helioctl pools --json` reads naturally). A single dash is an
	 * argument, so `config set KEY -1` works; after "--" everything is.
	 */
	args = calloc((size_t)argc, sizeof(*args));
	if (!args) {
		fprintf(stderr, "helioctl: out of memory\n");
		return HCTL_REFUSED;
	}
	bool only_args = false;
	while (i < argc) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || !a[1]) {
			args[nargs++] = argv[i++];
			continue;
		}
		if (!strcmp(a, "--")) {
			only_args = true;
			i++;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			verb_help(v);
			free(args);
			return HCTL_OK;
		}
		if (!strcmp(v->name, "drain") && !strcmp(a, "--wait")) {
			o.wait = true;
			i++;
			continue;
		}
		if (!strcmp(v->name, "drain") && !strcmp(a, "--wait-timeout")) {
			unsigned long s;
			if (i + 1 >= argc || parse_uint(argv[i + 1], 1, 86400, &s) < 0) {
				free(args);
				return usage_error(
				    v, "--wait-timeout wants seconds from 1 to 86400, not '%s'",
				    i + 1 < argc ? argv[i + 1] : "");
			}
			o.wait_timeout_s = (uint32_t)s;
			i += 2;
			continue;
		}
		/* plugin load --config JSON --on-failure X (after `plugin`, --config is
		 * the plugin's: helioctl's own file then goes with -c) */
		if (v->render == render_plugin &&
		    (!strcmp(a, "--config") || !strcmp(a, "--on-failure"))) {
			if (i + 1 >= argc) {
				free(args);
				return usage_error(v, "%s needs a value", a);
			}
			if (!strcmp(a, "--config")) {
				o.plugin_config = argv[i + 1];
			} else if (strcmp(argv[i + 1], "continue") && strcmp(argv[i + 1], "deny")) {
				free(args);
				return usage_error(v,
				                   "--on-failure wants continue or deny, not '%s'",
				                   argv[i + 1]);
			} else {
				o.plugin_on_failure = argv[i + 1];
			}
			i += 2;
			continue;
		}
		/* the verbs' own options become their argument */
		if ((v->render == render_top && !strcmp(a, "--by")) ||
		    (v->render == render_slowlog && !strcmp(a, "-n"))) {
			if (i + 1 >= argc) {
				free(args);
				return usage_error(v, "%s needs a value", a);
			}
			args[nargs++] = argv[i + 1];
			i += 2;
			continue;
		}
		rc = take_option(argc, argv, &i, &o, v);
		if (rc == HCTL_USAGE) {
			free(args);
			return rc;
		}
		if (rc)
			continue;
		if (a[1] == '-') {
			free(args);
			return usage_error(v, "unknown option '%s'", a);
		}
		args[nargs++] = argv[i++]; /* "-1" and the like */
	}

	rc = check_args(v, args, nargs);
	if (!rc && (o.plugin_config || o.plugin_on_failure) &&
	    (nargs == 0 || strcmp(args[0], "load")))
		rc = usage_error(v, "--config and --on-failure go with plugin load");
	if (!rc)
		rc = run(v, &o, args, nargs);
	free(args);
	if (fflush(stdout) == EOF && !rc) {
		fprintf(stderr, "helioctl: writing the output: %s\n", strerror(errno));
		rc = HCTL_REFUSED;
	}
	return rc;
}
