/*
 * Process set-up shared by heliosproxy and helios-cp.
 */
#ifndef HELIOS_PROC_H
#define HELIOS_PROC_H

#include <signal.h>

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (so every thread
 * started later inherits the mask and only sigwait() in main sees them)
 * and ignores SIGPIPE. set gets the blocked signals for sigwait(). */
void proc_block_signals(sigset_t *set);

#endif
