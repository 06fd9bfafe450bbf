/*
 * Online restart (`heliosproxy --takeover`): a new process takes over from
 * the running one over a SOCK_SEQPACKET Unix socket in the run directory
 * (<rundir>/heliosproxy-<port>.takeover, mode 0600, peer uid checked).
 *
 *   new -> old  HELLO    (magic, version, pid)
 *   old         stops its admin HTTP server and control plane (their
 *               addresses are the new process's to bind), then
 *   old -> new  LISTEN   its listen_address, unix_socket_dir and the
 *                        listening sockets (SCM_RIGHTS): one per worker,
 *                        then the Unix socket if any
 *   new         starts its workers on those very sockets (no connection
 *               in a backlog is lost, nothing is re-bound), then
 *   new -> old  READY
 *   old         stops accepting; each idle logged-in client that can move
 *               (see cl_can_move) stops receiving and goes over:
 *   old -> new  SERVER   each idle pooled server (transaction pooling)
 *                        with what the proxy knows of its session, and its
 *                        socket (SCM_RIGHTS)
 *   old -> new  CLIENT   its state and its socket (a session's server's
 *                        too), one each; clients in a transaction are
 *                        finished by the old process first and move once
 *                        idle; what cannot move stays until it leaves or
 *                        shutdown_timeout_secs runs out
 *   new -> old  CANCEL   a CancelRequest for a key the new process does not
 *                        know (its client is still on the old process)
 *   old -> new  END      nothing more; the old process exits, the new one
 *               listens on the takeover socket for the next restart.
 *
 * May call: conn/, pool/, policy/, rt/, io/.
 */
#ifndef HELIOS_TAKEOVER_H
#define HELIOS_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct cfg;

/* Where the takeover socket of a proxy with this config lives (0, or
 * -ENAMETOOLONG). */
int tko_socket_path(const struct cfg *c, char *buf, size_t cap);

/* ---- the new process ---- */
/* Asks the running proxy of c to hand over; blocks until its listening
 * sockets arrived (or timeout). 0, or -errno with err saying why. */
int tko_request(const struct cfg *c, char *err, size_t errlen);
/* The listening socket handed over for worker idx (its TCP one), or for
 * the Unix socket (idx -1); -1 when none (then the worker binds its own).
 * The caller owns what it gets. */
int tko_take_listen_fd(int idx);
/* Workers run: tells the old process, and adopts the clients it sends
 * (a thread posts each to a worker); then serves the next takeover. */
int tko_ready(const struct cfg *c, char *err, size_t errlen);
/* True while a takeover this process asked for has not finished. */
bool tko_adopting(void);

/* ---- the running process ---- */
/* Listens on the takeover socket (a thread). Logged, not fatal, when it
 * cannot. */
void tko_serve(const struct cfg *c);
/* Main thread, on SIGUSR2: the pid of the process asking to take over, 0
 * when none asks. */
pid_t tko_pending(void);
/* Main thread: sends the listening sockets, waits for READY. 0: the new
 * process runs, this one hands its clients over while it drains (set
 * g_tko_handing, then workers_stop()); -errno: the takeover failed and
 * this process goes on. */
int tko_hand_listeners(char *err, size_t errlen);
/* Main thread, after the workers ended: the servers idle in the pools by
 * then (released by transactions that finished here) go too. */
void tko_hand_pools(void);
/* Main thread, after the workers ended: the last CLIENT records go, then
 * END; closes the socket. */
void tko_finish(void);
/* Removes the socket (at exit). */
void tko_close(void);

/* atomic: this process hands idle clients over instead of keeping them */
extern int g_tko_handing;

#endif
