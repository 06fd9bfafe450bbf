/*
 * Kernel-accelerated session mode: when a session client is spliced to its
 * server and how the splice is taken apart (see splice.c).
 */
#ifndef HELIOS_SPLICE_H
#define HELIOS_SPLICE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct client;
struct server;
struct worker;

extern uint64_t g_splice_total, g_splice_fallbacks, g_splice_reused; /* atomic */
extern int g_splice_active;                                          /* atomic */

/* pool_mode.kernel_splice is on and this session can be spliced (session
 * mode, no TLS, a pooled server, the program loaded). */
bool splice_wanted(const struct client *cl, const struct server *sv);
/* Splices cl to its server (cl->server = sv already); tail is the login
 * answer, sent once the sockets are in the map (or at once on fallback). */
void splice_start(struct client *cl, struct server *sv, const uint8_t *tail, uint32_t tail_len);
/* on_recv_stopped of either socket: true when the splice took it. */
bool splice_recv_stopped(struct client *cl, bool server_side);
/* Bytes of the client or the server reached userspace while the splice
 * was starting: it is abandoned (the login answer is sent) and the caller
 * relays them as usual. */
void splice_userspace_data(struct client *cl, bool server_side);
/* on_eof of either spliced socket: true when the splice handles it. */
bool splice_hup(struct client *cl, bool server_side);
/* Out of the map at once, no drain (the client or server is being closed
 * for another reason); the server is not reused. */
void splice_end(struct client *cl);
void splice_free(struct client *cl);
/* Worker tick: drains, and the counts folded into the pool stats. */
void splice_tick(struct worker *w, const struct timespec *now);

/* What the program counted for a spliced client (SHOW CLIENTS). */
struct splice_info {
	uint64_t requests, ready, bytes_in, bytes_out;
	char status;
};
bool splice_read(const struct client *cl, struct splice_info *out);

#endif
