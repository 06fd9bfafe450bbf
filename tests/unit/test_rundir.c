/*
 * Unit tests for the private state directory (common/rundir.c): which
 * directory each user gets, and that a directory or socket another user
 * could have made is refused with its name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/rundir.h"

#define UNUSED __attribute__((unused))

static void test_default_dir_per_user_and_state_dir_first(void **state UNUSED)
{
	char d[256];
	assert_int_equal(rundir_default("", 0, "/run/user/0", d, sizeof(d)), 0);
	assert_string_equal(d, "/run/heliosproxy");
	assert_int_equal(rundir_default("", 1000, "/run/user/1000", d, sizeof(d)), 0);
	assert_string_equal(d, "/run/user/1000/heliosproxy");
	assert_int_equal(rundir_default(NULL, 1000, "/run/user/1000/", d, sizeof(d)), 0);
	assert_string_equal(d, "/run/user/1000/heliosproxy");
	/* no XDG_RUNTIME_DIR, or a relative one: a per-user folder in /tmp */
	assert_int_equal(rundir_default("", 1000, NULL, d, sizeof(d)), 0);
	assert_string_equal(d, "/tmp/heliosproxy-1000");
	assert_int_equal(rundir_default("", 1000, "relative", d, sizeof(d)), 0);
	assert_string_equal(d, "/tmp/heliosproxy-1000");
	assert_int_equal(rundir_default("/srv/h", 0, "/run/user/0", d, sizeof(d)), 0);
	assert_string_equal(d, "/srv/h");
	assert_int_equal(rundir_default("/a/long/dir", 0, NULL, d, 5), -ENAMETOOLONG);
}

/* A fresh private folder for one test. */
static void scratch(char *dir, size_t cap)
{
	snprintf(dir, cap, "/tmp/test_rundir.XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void test_missing_dir_is_created_0700(void **state UNUSED)
{
	char base[64], dir[96], err[300];
	struct stat st;
	scratch(base, sizeof(base));
	snprintf(dir, sizeof(dir), "%s/state", base);
	mode_t old = umask(0);
	int rc = rundir_prepare(dir, geteuid(), true, err, sizeof(err));
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	/* existing and private: accepted again, created or not */
	assert_int_equal(rundir_prepare(dir, geteuid(), true, err, sizeof(err)), 0);
	assert_int_equal(rundir_prepare(dir, geteuid(), false, err, sizeof(err)), 0);
	rmdir(dir);
	/* without create, a missing one is an error naming it */
	assert_int_equal(rundir_prepare(dir, geteuid(), false, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, dir));
	rmdir(base);
}

static void test_dir_writable_by_group_or_others_is_refused(void **state UNUSED)
{
	static const mode_t modes[] = {0777, 0770, 01777, 0720};
	char dir[64], err[300];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		scratch(dir, sizeof(dir));
		assert_int_equal(chmod(dir, modes[i]), 0);
		assert_int_equal(rundir_prepare(dir, geteuid(), true, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, dir));
		assert_non_null(strstr(err, "writable"));
		rmdir(dir);
	}
	scratch(dir, sizeof(dir));
	assert_int_equal(chmod(dir, 0750), 0); /* readable by the group is fine */
	assert_int_equal(rundir_prepare(dir, geteuid(), true, err, sizeof(err)), 0);
	rmdir(dir);
}

static void test_dir_of_another_uid_is_refused(void **state UNUSED)
{
	char dir[64], err[300];
	scratch(dir, sizeof(dir));
	/* the same check whether we chown or ask for another owner */
	assert_int_equal(rundir_prepare(dir, geteuid() + 1, true, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "is owned by uid"));
	rmdir(dir);
}

static void test_symlink_or_file_is_not_a_state_dir(void **state UNUSED)
{
	char base[64], link[96], file[96], err[300];
	scratch(base, sizeof(base));
	snprintf(link, sizeof(link), "%s/link", base);
	snprintf(file, sizeof(file), "%s/file", base);
	assert_int_equal(symlink(base, link), 0);
	assert_int_equal(rundir_prepare(link, geteuid(), true, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "symbolic link"));
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(rundir_prepare(file, geteuid(), true, err, sizeof(err)), -ENOTDIR);
	unlink(link);
	unlink(file);
	rmdir(base);
}

static void test_dir_too_long_for_a_socket_path_is_refused(void **state UNUSED)
{
	char dir[RUNDIR_DIR_MAX + 8], err[300];
	memset(dir, 'a', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	assert_int_equal(rundir_prepare(dir, geteuid(), true, err, sizeof(err)), -ENAMETOOLONG);
}

static void make_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

static void test_socket_must_be_ours_or_roots_and_a_socket(void **state UNUSED)
{
	char base[64], sock[96], file[96], err[300];
	scratch(base, sizeof(base));
	snprintf(sock, sizeof(sock), "%s/s.ctl", base);
	snprintf(file, sizeof(file), "%s/f.ctl", base);
	/* nothing there: fine, the dial or listen decides */
	assert_int_equal(rundir_check_socket(sock, geteuid(), false, err, sizeof(err)), 0);
	make_socket(sock);
	assert_int_equal(rundir_check_socket(sock, geteuid(), false, err, sizeof(err)), 0);
	/* another uid's: refused, unless it is root's and root is allowed */
	uid_t other = geteuid() + 1;
	assert_int_equal(rundir_check_socket(sock, other, false, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, sock));
	assert_non_null(strstr(err, "is owned by uid"));
	assert_int_equal(rundir_check_socket(sock, other, true, err, sizeof(err)),
	                 geteuid() == 0 ? 0 : -EPERM);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(rundir_check_socket(file, geteuid(), true, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "not a socket"));
	unlink(sock);
	unlink(file);
	rmdir(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_dir_per_user_and_state_dir_first),
	    cmocka_unit_test(test_missing_dir_is_created_0700),
	    cmocka_unit_test(test_dir_writable_by_group_or_others_is_refused),
	    cmocka_unit_test(test_dir_of_another_uid_is_refused),
	    cmocka_unit_test(test_symlink_or_file_is_not_a_state_dir),
	    cmocka_unit_test(test_dir_too_long_for_a_socket_path_is_refused),
	    cmocka_unit_test(test_socket_must_be_ours_or_roots_and_a_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
