/*
 * Private to dataplane/io: the loop structure shared by both backends and
 * the deferred-callback queue that keeps callbacks out of the call stack
 * of the operation that caused them.
 */
#ifndef HELIOS_IO_INTERNAL_H
#define HELIOS_IO_INTERNAL_H

#include "dataplane/io/io.h"

#include <liburing.h>

enum io_def_kind { DEF_SENT, DEF_CONNECT, DEF_RECV_STOPPED, DEF_CLOSED, DEF_EOF };

struct io_deferred {
	struct io_sock *s;
	int kind;
	int res;
};

struct io_loop {
	enum io_backend backend;
	int wake_fd;
	void (*on_wake)(void *ud);
	void *wake_ud;

	/* received-data buffers */
	uint8_t *buf_mem;
	struct io_chunk chunks[IO_BUF_COUNT];
	uint32_t free_bufs;
	struct io_chunk *free_list; /* epoll */
	struct io_sock *nobuf_head; /* sockets waiting for a buffer to re-arm */

	struct io_deferred *defq;
	size_t def_len, def_cap, def_pos;

	/* io_uring */
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_size;
	uint64_t wake_val;
	unsigned pending_returns;

	/* epoll */
	int ep_fd;
};

void io_defer(struct io_loop *l, struct io_sock *s, int kind, int res);
void io_dispatch_deferred(struct io_loop *l);

int io_uring_backend_init(struct io_loop *l);
void io_uring_backend_fini(struct io_loop *l);
int io_uring_backend_run(struct io_loop *l, int timeout_ms);
int io_epoll_backend_init(struct io_loop *l);
void io_epoll_backend_fini(struct io_loop *l);
int io_epoll_backend_run(struct io_loop *l, int timeout_ms);

/* backend operations */
int iou_listen(struct io_sock *s);
int iou_recv_arm(struct io_sock *s);
void iou_recv_cancel(struct io_sock *s);
/* A send took done bytes: what is left moves up. */
void io_send_advance(struct io_sock *s, uint32_t done);
int iou_send(struct io_sock *s);
int iou_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len);
void iou_close(struct io_sock *s);
void iou_buf_return(struct io_loop *l, struct io_chunk *c);
void iou_hup_watch(struct io_sock *s);
void iou_hup_unwatch(struct io_sock *s);

void iep_update(struct io_sock *s);
int iep_send(struct io_sock *s);
int iep_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len);
void iep_close(struct io_sock *s);

#endif
