/*
 * Drives dataplane/auth/ldapauth against a real LDAP server for
 * tests/integration/test_ldapauth.py: the way the proxy does it, from a
 * worker's event loop, with the answer coming back through its mailbox.
 *
 *   ldapauth-probe [--log-level L] name=value ...
 *
 * The arguments are a pg_hba line's LDAP options. Each line on stdin is
 * one check, "user<TAB>password" (the tab and password may be left out:
 * empty password); the checks run one after the other and each prints one
 * line on stdout:
 *   result=OK|EACCES|EHOSTUNREACH|<errno> ms=<elapsed> why=<reason>
 * A line "sleep N" waits N ms (lets a test stop or start a server between
 * checks). Option errors print "config error: ..." and exit 2. The library's
 * log lines go to stderr.
 */
#include "common/log.h"
#include "dataplane/auth/ldapauth.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct ldap_opts opts;
static sem_t answered;

struct check {
	struct worker_msg msg;
	char user[2048];
	char password[2048];
	uint64_t t0;
	bool done_on_worker;
};

static const char *result_name(int r)
{
	switch (r) {
	case 0:
		return "OK";
	case -EACCES:
		return "EACCES";
	case -EHOSTUNREACH:
		return "EHOSTUNREACH";
	default:
		return strerrorname_np(-r) ? strerrorname_np(-r) : "?";
	}
}

static void on_done(struct worker *w, void *arg, int result, const char *why)
{
	struct check *c = arg;
	c->done_on_worker = worker_self() == w;
	printf("result=%s ms=%llu thread=%s why=%s\n", result_name(result),
	       (unsigned long long)((worker_now_ns() - c->t0) / 1000000),
	       c->done_on_worker ? "worker" : "OTHER", why);
	fflush(stdout);
	sem_post(&answered);
}

static void start_check(struct worker *w, struct worker_msg *m)
{
	struct check *c = (struct check *)m;
	c->t0 = worker_now_ns();
	int r = ldapauth_start(&opts, c->user, c->password, w, on_done, c, NULL);
	if (r) {
		printf("result=%s ms=0 thread=worker why=ldapauth_start refused\n", result_name(r));
		fflush(stdout);
		sem_post(&answered);
	}
}

static bool stop_done(struct worker *w)
{
	(void)w;
	return true;
}

static const struct worker_hooks hooks = {.done = stop_done};
static struct worker W[1];

int main(int argc, char **argv)
{
	int i = 1;
	log_set_level_str("info");
	if (i + 1 < argc && !strcmp(argv[i], "--log-level")) {
		log_set_level_str(argv[i + 1]);
		i += 2;
	}
	char err[512];
	for (; i < argc; i++) {
		if (ldap_opts_set_pair(&opts, argv[i], err, sizeof(err))) {
			printf("config error: %s\n", err);
			ldap_opts_free(&opts);
			return 2;
		}
	}
	if (ldap_opts_finish(&opts, err, sizeof(err))) {
		printf("config error: %s\n", err);
		ldap_opts_free(&opts);
		return 2;
	}
	sem_init(&answered, 0, 0);
	g_workers = W;
	g_workers_planned = 1;
	if (worker_start(&W[0], 0, IO_BACKEND_EPOLL, &hooks, err, sizeof(err)) < 0) {
		fprintf(stderr, "worker_start: %s\n", err);
		return 1;
	}
	__atomic_store_n(&g_n_workers, 1, __ATOMIC_RELEASE);

	char line[2048];
	struct check *c = calloc(1, sizeof(*c));
	while (c && fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "sleep ", 6)) {
			usleep((useconds_t)atoi(line + 6) * 1000);
			printf("slept\n");
			fflush(stdout);
			continue;
		}
		memset(c, 0, sizeof(*c));
		char *tab = strchr(line, '\t');
		if (tab)
			*tab = 0;
		snprintf(c->user, sizeof(c->user), "%s", line);
		snprintf(c->password, sizeof(c->password), "%s", tab ? tab + 1 : "");
		c->msg.fn = start_check;
		if (worker_post(&W[0], &c->msg) < 0)
			break;
		sem_wait(&answered);
	}
	free(c);
	workers_stop();
	worker_join(&W[0]);
	if (W[0].loop)
		io_loop_free(W[0].loop);
	ldapauth_shutdown();
	ldap_opts_free(&opts);
	return 0;
}
