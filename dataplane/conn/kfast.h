/*
 * The kernel splice for session mode (bpf/splice.bpf.c): a client and its
 * server socket go into a sockhash whose verdict program redirects each
 * one's bytes to the other and counts messages per connection (struct
 * hp_conn, bpf/pgscan.h). This file loads the program (once, on first use)
 * and manages the map entries; conn/splice.c decides when to splice and
 * takes a session apart.
 */
#ifndef HELIOS_KFAST_H
#define HELIOS_KFAST_H

#include <linux/types.h>
#include <stdbool.h>
#include <stdint.h>

#include "bpf/pgscan.h"

/* Loads and attaches the program the first time (thread-safe); false when
 * it cannot be (no BPF in this build, no privileges, a kernel without
 * sockmap), said once in the log with the reason. */
bool kfast_available(void);
/* Puts both sockets in the map with fresh state, client first. 0, or
 * -errno (nothing is left in the map then). */
int kfast_splice(int cl_fd, int sv_fd, uint64_t *cl_cookie, uint64_t *sv_cookie);
/* Copies the state of one socket; -ENOENT when it is not spliced. */
int kfast_read(uint64_t cookie, struct hp_conn *out);
/* Takes one socket out of the map (redirects stop at once; bytes that
 * arrive later stay in its receive queue for userspace). */
void kfast_remove_sock(uint64_t cookie);
/* Forgets one socket's state (after kfast_remove_sock). */
void kfast_forget(uint64_t cookie);
/* Unloads at exit. */
void kfast_shutdown(void);

/* What TCP says of a socket, for the drain checks. */
struct kf_tcp {
	uint64_t acked;    /* bytes sent and acknowledged by the peer */
	uint64_t received; /* bytes received */
};
int kfast_tcp(int fd, struct kf_tcp *out);

#endif
