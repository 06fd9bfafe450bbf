/*
 * Unit tests for common/cfgwatch (watch_config): on a real folder with real
 * inotify, a file replaced by rename and a Kubernetes ConfigMap style
 * "..data" symlink swap are reported once the folder is quiet; a rewrite with
 * the same bytes and writes to other files of the folder are not; a signal
 * still ends the wait.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfgwatch.h"

static char dir[64];
static sigset_t set;
static pthread_t main_thread;

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Writes name via a temporary file and rename(), as editors and
 * configuration tools do. */
static void replace(const char *name, const char *text)
{
	char from[256], to[256];

	put("tmp.new", text);
	snprintf(from, sizeof(from), "%s/tmp.new", dir);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	assert_int_equal(rename(from, to), 0);
}

static void *signal_later(void *arg)
{
	usleep((useconds_t)(uintptr_t)arg * 1000);
	pthread_kill(main_thread, SIGUSR1);
	return NULL;
}

/* cfgw_wait, with SIGUSR1 sent after ms as a time limit. */
static int wait_at_most(struct cfgw *w, unsigned ms)
{
	pthread_t t;
	int r;

	assert_int_equal(pthread_create(&t, NULL, signal_later, (void *)(uintptr_t)ms), 0);
	r = cfgw_wait(w, &set);
	pthread_cancel(t); /* in its sleep: no signal comes later */
	pthread_join(t, NULL);
	/* one it sent that the wait did not take stays pending: take it */
	sigset_t pending;
	int sig;
	sigpending(&pending);
	if (sigismember(&pending, SIGUSR1))
		sigwait(&set, &sig);
	return r;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_cfgwatch.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	main_thread = pthread_self();
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_a_file_replaced_by_rename_is_reported_after_the_quiet_period(void **state)
{
	char path[256], err[256];
	struct cfgw *w;

	(void)state;
	put("a.toml", "workers = 1\n");
	snprintf(path, sizeof(path), "%s/a.toml", dir);
	w = cfgw_new(path, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	uint64_t t0 = ms_now();
	replace("a.toml", "workers = 2\n");
	assert_int_equal(wait_at_most(w, 3000), 0);
	assert_true(ms_now() - t0 >= CFGW_DEBOUNCE_MS);
	/* written in place too */
	put("a.toml", "workers = 3\n");
	assert_int_equal(wait_at_most(w, 3000), 0);
	cfgw_free(w);
}

static void test_same_bytes_and_other_files_are_no_change(void **state)
{
	char path[256], err[256];
	struct cfgw *w;

	(void)state;
	put("b.toml", "workers = 1\n");
	snprintf(path, sizeof(path), "%s/b.toml", dir);
	w = cfgw_new(path, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	replace("b.toml", "workers = 1\n");
	put("b.toml.live.toml", "log_level = \"debug\"\n"); /* the overrides, beside it */
	assert_int_equal(wait_at_most(w, 1000), SIGUSR1);
	cfgw_free(w);
}

static void test_a_configmap_symlink_swap_is_reported(void **state)
{
	char path[256], a[256], b[256], err[256];
	struct cfgw *w;

	(void)state;
	/* what the kubelet makes: cm/c.toml -> ..data/c.toml, ..data -> ..v1 */
	snprintf(a, sizeof(a), "%s/cm", dir);
	assert_int_equal(mkdir(a, 0700), 0);
	snprintf(a, sizeof(a), "%s/cm/..v1", dir);
	assert_int_equal(mkdir(a, 0700), 0);
	snprintf(a, sizeof(a), "%s/cm/..v2", dir);
	assert_int_equal(mkdir(a, 0700), 0);
	put("cm/..v1/c.toml", "workers = 1\n");
	put("cm/..v2/c.toml", "workers = 2\n");
	snprintf(a, sizeof(a), "%s/cm/..data", dir);
	assert_int_equal(symlink("..v1", a), 0);
	snprintf(path, sizeof(path), "%s/cm/c.toml", dir);
	assert_int_equal(symlink("..data/c.toml", path), 0);
	w = cfgw_new(path, err, sizeof(err));
	if (!w)
		fail_msg("%s", err);
	/* the update: a new ..data_tmp renamed over ..data, the old folder removed */
	snprintf(b, sizeof(b), "%s/cm/..data_tmp", dir);
	assert_int_equal(symlink("..v2", b), 0);
	assert_int_equal(rename(b, a), 0);
	snprintf(a, sizeof(a), "rm -rf '%s/cm/..v1'", dir);
	assert_int_equal(system(a), 0);
	assert_int_equal(wait_at_most(w, 3000), 0);
	cfgw_free(w);
}

static void test_a_signal_ends_the_wait(void **state)
{
	(void)state;
	assert_int_equal(wait_at_most(NULL, 10), SIGUSR1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_file_replaced_by_rename_is_reported_after_the_quiet_period),
	    cmocka_unit_test(test_same_bytes_and_other_files_are_no_change),
	    cmocka_unit_test(test_a_configmap_symlink_swap_is_reported),
	    cmocka_unit_test(test_a_signal_ends_the_wait),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
