/*
 * The private directory for runtime files (the control socket), and the
 * checks that keep another local user from taking a socket path first: a
 * directory must be ours and not writable by others, and a socket must be
 * ours before anything connects to it. Shared by heliosproxy, helios-cp and
 * helioctl so that all three find the same path.
 */
#ifndef HELIOS_RUNDIR_H
#define HELIOS_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <nng/nng.h>

struct cfg;

/* Socket file name inside the directory: heliosproxy-<listen port>.ctl. */
#define RUNDIR_SOCKET_FMT "heliosproxy-%u.ctl"
/* sun_path holds 107 bytes and a NUL; the socket name takes at most 23
 * with its slash. */
#define RUNDIR_DIR_MAX 84

/*
 * The directory, into buf: state_dir when not empty; else /run/heliosproxy
 * for uid 0; else <xdg>/heliosproxy when xdg (XDG_RUNTIME_DIR) is an
 * absolute path; else /tmp/heliosproxy-<uid> (the tmux way: created private,
 * refused if someone else made it). Pure. 0, or -ENAMETOOLONG.
 */
int rundir_default(const char *state_dir, uid_t uid, const char *xdg, char *buf, size_t cap);

/* rundir_default for this process (geteuid(), $XDG_RUNTIME_DIR). */
int rundir_current(const char *state_dir, char *buf, size_t cap);

/*
 * When c's control plane listens at the default path (no control_address
 * nor control_socket), its directory into buf and true; else false.
 */
bool rundir_of_config(const struct cfg *c, char *buf, size_t cap);

/*
 * Checks that dir is a private directory of uid: a directory, not a
 * symlink, owned by uid, not writable by group or others, short enough for
 * a socket path in it. With create, a missing dir (not its parents) is made
 * with mode 0700 first. 0, or -errno with one line naming dir in err, such
 * as "state directory /run/heliosproxy is owned by uid 1000, not uid 0 that
 * runs heliosproxy: refusing it".
 */
int rundir_prepare(const char *dir, uid_t uid, bool create, char *err, size_t errlen);

/*
 * control_socket_group: gives dir (made by rundir_prepare) to group and
 * lets the group search it (g+x, never g+w), so that the group's members
 * reach the 0660 socket in it. "" = nothing to do. 0, or -errno with one
 * line in err.
 */
int rundir_share_with_group(const char *dir, const char *group, char *err, size_t errlen);

/*
 * Before connecting to or listening on the Unix socket at path: when
 * something is there, it must be a socket owned by uid (or by root, when
 * root_ok: root can take any path anyway). 0 when nothing is there or it
 * passes; else -EPERM (or -errno of lstat) with one line naming path in err.
 */
int rundir_check_socket(const char *path, uid_t uid, bool root_ok, char *err, size_t errlen);

/*
 * On a socket that dials a control plane: every ipc:// connection whose peer
 * process runs as another user than this one (root excepted) is closed
 * before any message passes, on the first dial and on every redial (a file
 * check before the dial cannot cover those). tcp:// connections are left
 * alone. 0 or an nng error.
 */
int rundir_guard_peer(nng_socket s);

#endif
