/*
 * The cancel-key table and the short-lived connections that carry a
 * CancelRequest to a server. The table is one hash under a mutex: it is
 * touched at login, logout and cancel, never per message.
 */
#include "dataplane/conn/cancel.h"

#include "common/log.h"
#include "dataplane/conn/conn.h"
#include "dataplane/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define NBUCKETS 4096

struct cancel_ent {
	struct cancel_ent *next;
	uint32_t pid, key;
	struct client *cl;
	bool has_target;
	const char *host; /* the bound server's node_host: cleared before it goes */
	int port;
	uint32_t spid, skey;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct cancel_ent *buckets[NBUCKETS];

static unsigned bucket_of(uint32_t pid, uint32_t key)
{
	return (pid * 2654435761u ^ key) % NBUCKETS;
}

static struct cancel_ent *find(uint32_t pid, uint32_t key)
{
	for (struct cancel_ent *e = buckets[bucket_of(pid, key)]; e; e = e->next)
		if (e->pid == pid && e->key == key)
			return e;
	return NULL;
}

void cancel_register(struct client *cl, uint32_t pid)
{
	struct cancel_ent *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	pthread_mutex_lock(&mu);
	do {
		if (RAND_bytes((unsigned char *)&e->key, sizeof(e->key)) != 1)
			e->key = (uint32_t)random();
	} while (find(pid, e->key));
	e->pid = pid;
	e->cl = cl;
	unsigned b = bucket_of(pid, e->key);
	e->next = buckets[b];
	buckets[b] = e;
	cl->cancel_pid = pid;
	cl->cancel_key = e->key;
	pthread_mutex_unlock(&mu);
}

void cancel_unregister(struct client *cl)
{
	if (!cl->cancel_key && !cl->cancel_pid)
		return;
	pthread_mutex_lock(&mu);
	struct cancel_ent **pp = &buckets[bucket_of(cl->cancel_pid, cl->cancel_key)];
	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->cl == cl) {
			struct cancel_ent *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	cl->cancel_pid = cl->cancel_key = 0;
}

void cancel_set_target(struct client *cl, const struct server *sv)
{
	pthread_mutex_lock(&mu);
	struct cancel_ent *e = find(cl->cancel_pid, cl->cancel_key);
	if (e && e->cl == cl) {
		e->has_target = sv != NULL;
		if (sv) {
			e->host = sv->node_host;
			e->port = sv->node_port;
			e->spid = sv->backend_pid;
			e->skey = sv->backend_key;
		}
	}
	pthread_mutex_unlock(&mu);
}

/* A one-shot connection: connect, send 16 bytes, close. */
struct cancel_conn {
	struct io_sock sock;
	uint8_t pkt[16];
};

static void cc_on_connect(struct io_sock *s, int err)
{
	struct cancel_conn *cc = s->owner;
	if (err < 0) {
		log_warn("cancel: cannot reach server: %s", strerror(-err));
		io_sock_close(s);
		return;
	}
	if (io_send(s, cc->pkt, sizeof(cc->pkt)) < 0)
		io_sock_close(s);
}

static void cc_on_sent(struct io_sock *s, int err)
{
	io_sock_close(s);
}

static void cc_on_closed(struct io_sock *s)
{
	free(s->owner);
}

static void cc_on_eof(struct io_sock *s, int err)
{
	io_sock_close(s);
}

static const struct io_sock_ops cc_ops = {
    .on_connect = cc_on_connect,
    .on_sent = cc_on_sent,
    .on_closed = cc_on_closed,
    .on_eof = cc_on_eof,
};

/* Fills sa for a node: host "/dir" is a Unix socket folder, as in libpq. */
int conn_node_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len);

void cancel_forward(struct worker *w, uint32_t pid, uint32_t key)
{
	char host[256];
	int port;
	uint32_t spid, skey;
	pthread_mutex_lock(&mu);
	struct cancel_ent *e = find(pid, key);
	bool ok = e && e->has_target;
	if (ok) {
		snprintf(host, sizeof(host), "%s", e->host);
		port = e->port;
		spid = e->spid;
		skey = e->skey;
	}
	pthread_mutex_unlock(&mu);
	if (!ok) {
		log_debug("cancel: no active query for key %u", pid);
		return;
	}
	struct sockaddr_storage sa;
	socklen_t salen;
	if (conn_node_addr(host, port, &sa, &salen) < 0)
		return;
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	struct cancel_conn *cc = calloc(1, sizeof(*cc));
	if (!cc) {
		close(fd);
		return;
	}
	struct pgw_out o;
	pgw_out_init(&o, cc->pkt, sizeof(cc->pkt));
	pgw_cancel_packet(&o, spid, skey);
	io_sock_init(&cc->sock, fd, &cc_ops, cc);
	io_sock_attach(w->loop, &cc->sock);
	io_connect(&cc->sock, (struct sockaddr *)&sa, salen);
	log_debug("cancel: forwarded to %s:%d backend %u", host, port, spid);
}
