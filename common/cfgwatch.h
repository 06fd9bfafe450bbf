/*
 * watch_config: the main thread of heliosproxy and helios-cp waits for a
 * signal or for the config file's content to change, whichever comes first.
 * A Kubernetes ConfigMap update does not write the file: it swaps the
 * folder's "..data" symlink, so the file's folder is watched (inotify), not
 * the file, and a change is the content read through the path, not an
 * event on an inode.
 */
#ifndef HELIOS_CFGWATCH_H
#define HELIOS_CFGWATCH_H

#include <signal.h>
#include <stddef.h>

/* How long the folders must stay quiet after an event before the file is
 * read again: an editor or a ConfigMap swap makes several events. */
#define CFGW_DEBOUNCE_MS 200

struct cfgw;

/* Starts watching path: its folder and, when path resolves elsewhere
 * (symlinks), the folder of the file it resolves to. Remembers the current
 * content. NULL with one line in err when inotify cannot be set up. */
struct cfgw *cfgw_new(const char *path, char *err, size_t errlen);
/* NULL is fine. */
void cfgw_free(struct cfgw *w);

/* Waits for a signal of set (blocked in every thread: proc_block_signals)
 * and returns its number, or returns 0 once the file's content differs from
 * the last content seen (then that is the content seen). A file that cannot
 * be read meanwhile (mid-swap) is no change. w NULL: sigwait(). */
int cfgw_wait(struct cfgw *w, const sigset_t *set);

#endif
