/*
 * The config file watch (see cfgwatch.h): inotify on the file's folder and
 * on the folder it resolves to, a signalfd for the signals main used to
 * sigwait() for, one poll() over both. After CFGW_DEBOUNCE_MS without
 * events the file is read through its path and compared with what was read
 * last (a hash of the bytes): writes to other files of the folder (the
 * overrides file, an editor's swap file) change nothing.
 */
#include "common/cfgwatch.h"

#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define FOLDER_EVENTS                                                                              \
	(IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY | IN_DELETE |        \
	 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

struct cfgw {
	char path[PATH_MAX];
	int ifd;                 /* inotify */
	int sfd;                 /* signalfd, made at the first wait */
	int wd_dir, wd_real;     /* the path's folder; the resolved file's (-1: none) */
	char real_dir[PATH_MAX]; /* what wd_real watches */
	bool readable;           /* the content below was read */
	uint64_t hash, size;     /* FNV-1a of the content last seen */
	uint64_t due_ms;         /* read the file then; 0 = no event pending */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The folder of p into out ("." when p has none). */
static void folder(const char *p, char *out, size_t cap)
{
	const char *slash = strrchr(p, '/');

	if (!slash)
		snprintf(out, cap, ".");
	else if (slash == p)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - p), p);
}

/* Hashes the file's content; false when it cannot be read. */
static bool content(const char *path, uint64_t *hash, uint64_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char buf[8192];
	uint64_t h = 1469598103934665603ull, n = 0;
	size_t got;

	if (!f)
		return false;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		for (size_t i = 0; i < got; i++)
			h = (h ^ buf[i]) * 1099511628211ull;
		n += got;
	}
	bool ok = !ferror(f);
	fclose(f);
	*hash = h;
	*size = n;
	return ok;
}

/* Follows the file to the folder it resolves to now (a ConfigMap's
 * "..2026_12_07_..." changes at every update) and watches that one. */
static void watch_real(struct cfgw *w)
{
	char *rp = realpath(w->path, NULL), dir[PATH_MAX];

	if (!rp)
		return; /* mid-swap: the next event comes */
	folder(rp, dir, sizeof(dir));
	free(rp);
	if (w->wd_real >= 0 && !strcmp(dir, w->real_dir))
		return;
	if (w->wd_real >= 0 && w->wd_real != w->wd_dir)
		inotify_rm_watch(w->ifd, w->wd_real);
	w->wd_real = inotify_add_watch(w->ifd, dir, FOLDER_EVENTS);
	snprintf(w->real_dir, sizeof(w->real_dir), "%s", dir);
}

struct cfgw *cfgw_new(const char *path, char *err, size_t errlen)
{
	struct cfgw *w = calloc(1, sizeof(*w));
	char dir[PATH_MAX];

	if (!w) {
		snprintf(err, errlen, "watch_config: out of memory");
		return NULL;
	}
	w->sfd = -1;
	w->wd_real = -1;
	snprintf(w->path, sizeof(w->path), "%s", path);
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		snprintf(err, errlen, "watch_config: inotify: %s", strerror(errno));
		free(w);
		return NULL;
	}
	folder(path, dir, sizeof(dir));
	w->wd_dir = inotify_add_watch(w->ifd, dir, FOLDER_EVENTS);
	if (w->wd_dir < 0) {
		snprintf(err, errlen, "watch_config: cannot watch %s: %s", dir, strerror(errno));
		cfgw_free(w);
		return NULL;
	}
	watch_real(w);
	w->readable = content(path, &w->hash, &w->size);
	return w;
}

void cfgw_free(struct cfgw *w)
{
	if (!w)
		return;
	if (w->sfd >= 0)
		close(w->sfd);
	close(w->ifd);
	free(w);
}

/* Reads every queued event; any of them makes the file due for a read
 * CFGW_DEBOUNCE_MS from now. */
static void drain_events(struct cfgw *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;
	ssize_t n;

	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (ev->wd == w->wd_real && (ev->mask & IN_IGNORED))
				w->wd_real =
				    -1; /* its folder went away: watch_real finds the new one */
			any = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (any)
		w->due_ms = now_ms() + CFGW_DEBOUNCE_MS;
}

/* The folders were quiet long enough: has the content changed? */
static bool changed(struct cfgw *w)
{
	uint64_t h, size;

	w->due_ms = 0;
	watch_real(w);
	if (!content(w->path, &h, &size))
		return false;
	if (w->readable && h == w->hash && size == w->size)
		return false;
	w->readable = true;
	w->hash = h;
	w->size = size;
	return true;
}

int cfgw_wait(struct cfgw *w, const sigset_t *set)
{
	int sig;

	if (!w) {
		while (sigwait(set, &sig) != 0)
			;
		return sig;
	}
	if (w->sfd < 0 && (w->sfd = signalfd(-1, set, SFD_CLOEXEC)) < 0) {
		log_warn("watch_config: signalfd: %s: waiting for signals only", strerror(errno));
		return cfgw_wait(NULL, set);
	}
	for (;;) {
		struct pollfd pf[2] = {{.fd = w->sfd, .events = POLLIN},
		                       {.fd = w->ifd, .events = POLLIN}};
		int timeout = -1;
		if (w->due_ms) {
			uint64_t now = now_ms();
			timeout = w->due_ms > now ? (int)(w->due_ms - now) : 0;
		}
		if (poll(pf, 2, timeout) < 0 && errno != EINTR)
			return cfgw_wait(NULL, set);
		if (pf[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(w->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				return (int)si.ssi_signo;
		}
		if (pf[1].revents & POLLIN)
			drain_events(w);
		if (w->due_ms && now_ms() >= w->due_ms && changed(w))
			return 0;
	}
}
