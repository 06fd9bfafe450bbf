/*
 * The event loop interface, completion style, with two backends: io_uring
 * (multishot accept, multishot recv into a provided-buffer ring) and epoll.
 * One loop per worker thread; every call except io_loop_wakeup() must come
 * from the loop's own thread. Callbacks never run inside the call that
 * caused them: they are dispatched from io_loop_run_once().
 */
#ifndef HELIOS_IO_H
#define HELIOS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define IO_BUF_SIZE (16u * 1024u)
/* buffers one io_sendv() takes: a socket's queued chunks go out in one
 * system call (or one io_uring operation) */
#define IO_SEND_IOV_MAX 8u
#define IO_BUF_COUNT                                                                               \
	256u /* per loop; a power of two (buffer ring). Kept small: the                            \
	      * ring hands buffers out in FIFO order, so every buffer                              \
	      * gets touched, and each costs resident memory */

enum io_backend { IO_BACKEND_URING, IO_BACKEND_EPOLL };

struct io_loop;

/* A run of bytes: a received buffer (bid >= 0, owned by the loop's ring)
 * or a heap buffer (bid < 0). Sockets queue chunks through .next. */
struct io_chunk {
	struct io_chunk *next;
	uint8_t *data;
	uint32_t off, len; /* valid bytes are data[off .. off+len) */
	uint32_t cap;
	int32_t bid;
};

struct io_sock;

struct io_sock_ops {
	/* Data arrived. The callee owns c and must io_chunk_release() it. */
	void (*on_recv)(struct io_sock *s, struct io_chunk *c);
	/* Peer closed (err 0) or the socket failed (-errno); receiving stopped. */
	void (*on_eof)(struct io_sock *s, int err);
	/* The io_send() in progress finished: 0, or -errno. */
	void (*on_sent)(struct io_sock *s, int err);
	void (*on_connect)(struct io_sock *s, int err);
	/* After io_recv_stop(): no on_recv will follow until io_recv_start(). */
	void (*on_recv_stopped)(struct io_sock *s);
	/* After io_sock_close(): the last callback; the owner may free s. */
	void (*on_closed)(struct io_sock *s);
	/* Listeners: a new connection (fd >= 0) or an accept error (-errno). */
	void (*on_accept)(struct io_sock *s, int fd);
};

enum {
	IO_F_RECV_WANT = 1 << 0,  /* owner wants data */
	IO_F_RECV_ARMED = 1 << 1, /* a recv is posted in the kernel (uring) */
	IO_F_SEND_BUSY = 1 << 2,  /* one send at a time */
	IO_F_CONNECTING = 1 << 3,
	IO_F_CLOSING = 1 << 4,
	IO_F_LISTEN = 1 << 5,
	IO_F_EP_REG = 1 << 6,       /* registered in epoll */
	IO_F_STOP_PENDING = 1 << 7, /* on_recv_stopped owed */
	IO_F_CANCELLING = 1 << 8,
	IO_F_NOBUFS = 1 << 9,        /* waiting for free buffers to re-arm */
	IO_F_SENT_PENDING = 1 << 10, /* epoll: write done, on_sent not dispatched yet */
	IO_F_HUP_WATCH = 1 << 11,    /* watching for the peer's close only (io_hup_watch) */
	IO_F_SHARED = 1 << 12,       /* another process holds the socket too (online restart):
	                              * closing never shuts it down */
};

struct io_sock {
	int fd;
	uint16_t flags;
	uint16_t inflight; /* kernel operations that will still complete */
	struct io_loop *loop;
	const struct io_sock_ops *ops;
	void *owner;
	/* what is left of the send in progress: send_iov[send_i .. send_n) */
	struct iovec send_iov[IO_SEND_IOV_MAX];
	uint8_t send_i, send_n;
	uint32_t send_left;     /* bytes, over all of them */
	struct msghdr send_msg; /* io_uring sendmsg: must outlive the operation */
	uint32_t ep_events;
	struct io_sock *nobuf_next;
};

/* Creates a loop. want = preferred backend; returns NULL with *err set. */
struct io_loop *io_loop_new(enum io_backend want, int *err);
void io_loop_free(struct io_loop *l);
enum io_backend io_loop_backend(const struct io_loop *l);
const char *io_backend_str(enum io_backend b);

/* Waits up to timeout_ms for events and dispatches callbacks. */
int io_loop_run_once(struct io_loop *l, int timeout_ms);
/* Thread-safe: makes the loop's next wait return and calls on_wake. */
void io_loop_wakeup(struct io_loop *l);
void io_loop_set_wake(struct io_loop *l, void (*on_wake)(void *ud), void *ud);

void io_sock_init(struct io_sock *s, int fd, const struct io_sock_ops *ops, void *owner);
/* Binds a socket to a loop; it must have no operation in flight when it
 * moves (io_sock_detach, then io_sock_attach on another loop). */
void io_sock_attach(struct io_loop *l, struct io_sock *s);
void io_sock_detach(struct io_sock *s);
bool io_sock_idle(const struct io_sock *s);

int io_listen_start(struct io_sock *s);
int io_recv_start(struct io_sock *s);
void io_recv_stop(struct io_sock *s);
/* For a socket whose bytes the kernel moves itself (sockmap splice): with
 * receiving stopped, watches only for the peer closing or an error, never
 * for data. on_eof(s, 0) follows once when it happens; io_hup_unwatch()
 * ends the watch without a callback. */
int io_hup_watch(struct io_sock *s);
void io_hup_unwatch(struct io_sock *s);
/* Sends all len bytes (the memory must stay valid until on_sent). */
int io_send(struct io_sock *s, const void *p, uint32_t len);
/* Sends all bytes of n (1..IO_SEND_IOV_MAX) buffers, in order, as one
 * write where the socket takes it; one on_sent at the end. */
int io_sendv(struct io_sock *s, const struct iovec *iov, unsigned n);
int io_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len);
/* Cancels what is in flight, closes the fd, then calls on_closed. */
void io_sock_close(struct io_sock *s);

struct io_chunk *io_chunk_new(uint32_t cap);
void io_chunk_release(struct io_loop *l, struct io_chunk *c);

/* Statistics for logs and metrics. */
uint32_t io_loop_free_bufs(const struct io_loop *l);

#endif
