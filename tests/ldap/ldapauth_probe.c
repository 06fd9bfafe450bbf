/*
 * Drives dataplane/auth/ldapauth against a real LDAP server for
 * tests/integration/test_ldapauth.py: the way the proxy does it, from a
 * worker's event loop, with the answer coming back through its mailbox.
 *
 *   ldapauth-probe [--log-level L] name=value ...
 *
 * The arguments are a pg_hba line's LDAP options. Each line on stdin is
 * one check, "user<TAB>password[<TAB>name=value ...]" (empty password when
 * left out; the options are added to the arguments' for this check only);
 * each check prints one line on stdout when it is answered:
 *   result=OK|EACCES|EHOSTUNREACH|<errno> id=<n> ms=<elapsed>
 *   thread=worker|OTHER why=<reason>
 * (id: the check's line number among checks). The next line is read once the
 * check is answered, or at once when the line starts with '&'; a line
 * starting with '~' is started and cancelled at once (prints
 * "cancelled id=<n>", never a result).
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct ldap_opts opts;
static sem_t answered;   /* a check the main thread waits for */
static sem_t async_done; /* a '&' check */

struct check {
	struct worker_msg msg;
	struct ldap_opts o;
	int id;
	bool async;  /* '&': the next line is read without waiting */
	bool cancel; /* '~': cancelled right after the start */
	char user[2048];
	char password[2048];
	uint64_t t0;
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

static void check_free(struct check *c)
{
	ldap_opts_free(&c->o);
	free(c);
}

static void answer(struct check *c, int result, const char *thread, const char *why)
{
	printf("result=%s id=%d ms=%llu thread=%s why=%s\n", result_name(result), c->id,
	       (unsigned long long)((worker_now_ns() - c->t0) / 1000000), thread, why);
	fflush(stdout);
	bool async = c->async;
	check_free(c);
	sem_post(async ? &async_done : &answered);
}

static void on_done(struct worker *w, void *arg, int result, const char *why)
{
	answer(arg, result, worker_self() == w ? "worker" : "OTHER", why);
}

static void start_check(struct worker *w, struct worker_msg *m)
{
	struct check *c = (struct check *)m;
	c->t0 = worker_now_ns();
	struct ldapauth_req *req = NULL;
	int r = ldapauth_start(&c->o, c->user, c->password, w, on_done, c, &req);
	if (r) {
		answer(c, r, "worker", "ldapauth_start refused");
		return;
	}
	if (c->cancel) {
		ldapauth_cancel(req);
		printf("cancelled id=%d\n", c->id);
		fflush(stdout);
		check_free(c);
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
	/* as the proxy (common/proc.c): a server closing mid-write is an error
	 * libldap reports, not a signal that ends the process */
	signal(SIGPIPE, SIG_IGN);
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
	sem_init(&async_done, 0, 0);
	g_workers = W;
	g_workers_planned = 1;
	if (worker_start(&W[0], 0, IO_BACKEND_EPOLL, &hooks, err, sizeof(err)) < 0) {
		fprintf(stderr, "worker_start: %s\n", err);
		return 1;
	}
	__atomic_store_n(&g_n_workers, 1, __ATOMIC_RELEASE);

	char line[8192];
	int next_id = 0, n_async = 0;
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "sleep ", 6)) {
			usleep((useconds_t)atoi(line + 6) * 1000);
			printf("slept\n");
			fflush(stdout);
			continue;
		}
		struct check *c = calloc(1, sizeof(*c));
		if (!c || ldap_opts_copy(&c->o, &opts))
			return 1;
		char *p = line;
		if (*p == '&' || *p == '~') {
			c->async = *p == '&';
			c->cancel = *p == '~';
			p++;
		}
		c->id = ++next_id;
		/* user TAB password [TAB name=value ...]: options of this check only */
		char *f[3] = {p, NULL, NULL};
		for (int k = 1; k < 3 && f[k - 1]; k++) {
			char *tab = strchr(f[k - 1], '\t');
			if (tab) {
				*tab = 0;
				f[k] = tab + 1;
			}
		}
		snprintf(c->user, sizeof(c->user), "%.2047s", f[0]);
		snprintf(c->password, sizeof(c->password), "%.2047s", f[1] ? f[1] : "");
		for (char *save = NULL, *pair = f[2] ? strtok_r(f[2], " ", &save) : NULL; pair;
		     pair = strtok_r(NULL, " ", &save)) {
			if (ldap_opts_set_pair(&c->o, pair, err, sizeof(err))) {
				printf("config error: %s\n", err);
				return 2;
			}
		}
		if (ldap_opts_finish(&c->o, err, sizeof(err))) {
			printf("config error: %s\n", err);
			return 2;
		}
		c->msg.fn = start_check;
		bool async = c->async;
		if (worker_post(&W[0], &c->msg) < 0)
			break;
		if (async)
			n_async++;
		else
			sem_wait(&answered);
	}
	while (n_async-- > 0)
		sem_wait(&async_done);
	workers_stop();
	worker_join(&W[0]);
	if (W[0].loop)
		io_loop_free(W[0].loop);
	ldapauth_shutdown();
	ldap_opts_free(&opts);
	return 0;
}
