/*
 * Private runtime directory and socket ownership checks (see rundir.h). A
 * fixed socket path in /tmp let any local user create it first: the proxy
 * then failed to start, and nng's "is it stale?" probe connected to the
 * squatter. In a directory only we can write, no one else can put anything.
 */
#include "common/rundir.h"

#include "common/cfg.h"
#include "common/log.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rundir_default(const char *state_dir, uid_t uid, const char *xdg, char *buf, size_t cap)
{
	int n;

	if (state_dir && state_dir[0])
		n = snprintf(buf, cap, "%s", state_dir);
	else if (uid == 0)
		n = snprintf(buf, cap, "/run/heliosproxy");
	else if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s%sheliosproxy", xdg,
		             xdg[strlen(xdg) - 1] == '/' ? "" : "/");
	else
		n = snprintf(buf, cap, "/tmp/heliosproxy-%u", (unsigned)uid);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int rundir_current(const char *state_dir, char *buf, size_t cap)
{
	return rundir_default(state_dir, geteuid(), getenv("XDG_RUNTIME_DIR"), buf, cap);
}

bool rundir_of_config(const struct cfg *c, char *buf, size_t cap)
{
	if (c->control_address[0] || c->control_socket[0])
		return false;
	return rundir_current(c->state_dir, buf, cap) == 0;
}

int rundir_prepare(const char *dir, uid_t uid, bool create, char *err, size_t errlen)
{
	struct stat st;

	if (strlen(dir) > RUNDIR_DIR_MAX) {
		snprintf(err, errlen,
		         "state directory %s is too long for a Unix socket path in it (at most %d "
		         "bytes): set state_dir",
		         dir, RUNDIR_DIR_MAX);
		return -ENAMETOOLONG;
	}
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create the state directory %s: %s (set state_dir)",
		         dir, strerror(e));
		return -e;
	}
	if (lstat(dir, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "state directory %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state directory %s is %s, not a directory: refusing it", dir,
		         S_ISLNK(st.st_mode) ? "a symbolic link" : "another kind of file");
		return -ENOTDIR;
	}
	if (st.st_uid != uid) {
		snprintf(
		    err, errlen,
		    "state directory %s is owned by uid %u, not uid %u that runs this: refusing "
		    "it (another user could place sockets there)",
		    dir, (unsigned)st.st_uid, (unsigned)uid);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
		         "state directory %s is writable by %s (mode %04o): refusing it (chmod "
		         "go-w, or 0700)",
		         dir, (st.st_mode & S_IWOTH) ? "every user" : "its group",
		         (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int rundir_share_with_group(const char *dir, const char *group, char *err, size_t errlen)
{
	struct group *gr;
	struct stat st;

	if (!group || !group[0])
		return 0;
	if (!(gr = getgrnam(group))) {
		snprintf(err, errlen, "control_socket_group: there is no group \"%s\"", group);
		return -ENOENT;
	}
	if (chown(dir, (uid_t)-1, gr->gr_gid) < 0 || stat(dir, &st) < 0 ||
	    chmod(dir, (st.st_mode & 07777 & ~(mode_t)(S_IWGRP | S_IWOTH)) | S_IXGRP) < 0) {
		int e = errno;
		snprintf(err, errlen, "state directory %s: cannot let group %s in (%s)", dir, group,
		         strerror(e));
		return -e;
	}
	return 0;
}

int rundir_check_socket(const char *path, uid_t uid, bool root_ok, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket: refusing to use it", path);
		return -EPERM;
	}
	if (st.st_uid != uid && !(root_ok && st.st_uid == 0)) {
		snprintf(err, errlen,
		         "socket %s is owned by uid %u, not uid %u%s: refusing to connect to it "
		         "(another user may have made it)",
		         path, (unsigned)st.st_uid, (unsigned)uid,
		         root_ok && uid ? " or root" : "");
		return -EPERM;
	}
	return 0;
}

static void check_peer(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	uint64_t peer;
	(void)ev, (void)arg;
	/* fails for tcp:// pipes, which have no peer uid */
	if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &peer) != 0)
		return;
	if (peer == (uint64_t)geteuid() || peer == 0)
		return;
	log_warn("refused a control connection whose peer runs as uid %llu, not uid %u: another "
	         "user's process listens on the control socket path",
	         (unsigned long long)peer, (unsigned)geteuid());
	nng_pipe_close(p);
}

int rundir_guard_peer(nng_socket s)
{
	return nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, check_peer, NULL);
}
