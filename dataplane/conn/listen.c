/*
 * LISTEN/NOTIFY in transaction pooling: one listener server connection per
 * pool LISTENs on every channel its clients asked for and fans each
 * notification out to them. Clients keep no server for it, so they do not
 * pin. A notification waits on the client until it holds no server, so it
 * never lands inside a relayed message.
 */
#include "dataplane/conn/listen.h"

#include "common/log.h"
#include "dataplane/conn/conn_internal.h"
#include "dataplane/conn/conn_worker.h"
#include "dataplane/pool/pool.h"
#include "dataplane/rt/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sub {
	struct sub *next;
	struct client *cl;
	struct worker *w;
	uint64_t cl_id;
};

struct chan {
	struct chan *next;
	char *name;
	struct sub *subs;
	bool listening; /* LISTEN sent on the listener */
	bool active;    /* ... and confirmed: notifications are caught */
};

struct hub {
	struct hub *next;
	struct pool *pool;
	struct chan *chans;
	struct server *listener; /* NULL until the first subscription */
	struct worker *lw;       /* its worker */
	bool resync;             /* subscriptions changed on another worker */
	/* channels of LISTEN commands in flight, oldest first (NULL: UNLISTEN) */
	struct chan *inflight[256];
	unsigned in_head, in_len;
};

static pthread_mutex_t hub_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hub *hubs;

static struct hub *hub_of(struct pool *p, bool create)
{
	for (struct hub *h = hubs; h; h = h->next)
		if (h->pool == p)
			return h;
	if (!create)
		return NULL;
	struct hub *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->pool = p;
	h->next = hubs;
	hubs = h;
	return h;
}

static struct chan *chan_of(struct hub *h, const char *name, bool create)
{
	for (struct chan *c = h->chans; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	if (!create)
		return NULL;
	struct chan *c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return NULL;
	}
	c->next = h->chans;
	h->chans = c;
	return c;
}

/* Appends a LISTEN/UNLISTEN for name, quoted, to the listener's queue. */
static void listener_cmd(struct server *sv, const char *verb, const char *name)
{
	size_t n = strlen(name), cap = 2 * n + 32;
	char *sql = malloc(cap), *q = sql;
	if (!sql)
		return;
	q += snprintf(q, cap, "%s \"", verb);
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			*q++ = '"';
		*q++ = *p;
	}
	*q++ = '"';
	*q = 0;
	uint8_t *buf = malloc(strlen(sql) + 8);
	if (buf) {
		struct pgw_out o;
		pgw_out_init(&o, buf, strlen(sql) + 8);
		pgw_query(&o, sql);
		ep_send_bytes(&sv->ep, buf, o.len);
		free(buf);
	}
	free(sql);
}

/* Runs on the listener's worker: LISTEN on channels not yet listened to. */
static void hub_sync(struct hub *h)
{
	if (!h->listener || h->listener->state != SV_LISTENER)
		return;
	for (struct chan *c = h->chans; c; c = c->next) {
		if (h->in_len == 256)
			return; /* the rest when answers come back */
		if (!c->listening && c->subs) {
			listener_cmd(h->listener, "LISTEN", c->name);
			c->listening = true;
			h->inflight[(h->in_head + h->in_len++) % 256] = c;
		} else if (c->listening && !c->subs) {
			listener_cmd(h->listener, "UNLISTEN", c->name);
			c->listening = false;
			c->active = false;
			h->inflight[(h->in_head + h->in_len++) % 256] = NULL;
		}
	}
}

int listen_subscribe(struct client *cl, const char *channel)
{
	if (!cl->pool)
		return -EINVAL;
	pthread_mutex_lock(&hub_mu);
	struct hub *h = hub_of(cl->pool, true);
	struct chan *c = h ? chan_of(h, channel, true) : NULL;
	int r = -ENOMEM;
	if (!c)
		goto out;
	for (struct sub *s = c->subs; s; s = s->next)
		if (s->cl == cl) {
			r = 0;
			goto out;
		}
	struct sub *s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->cl = cl;
	s->w = cl->w;
	s->cl_id = cl->id;
	s->next = c->subs;
	c->subs = s;
	cl->listens++;
	r = 0;
	if (!h->listener) {
		/* the first subscriber's worker hosts the listener */
		struct server *sv = NULL;
		if (sv_connect_listener(cl->w, cl, &sv) == 0) {
			h->listener = sv;
			h->lw = cl->w;
			sv->hub = h;
		}
	} else if (h->lw == cl->w) {
		hub_sync(h);
	} else {
		h->resync = true;
		io_loop_wakeup(h->lw->loop);
	}
out:
	pthread_mutex_unlock(&hub_mu);
	return r;
}

/* Removes cl from one channel, or from all when channel is NULL. */
void listen_unsubscribe(struct client *cl, const char *channel)
{
	if (!cl->pool || !cl->listens)
		return;
	pthread_mutex_lock(&hub_mu);
	struct hub *h = hub_of(cl->pool, false);
	for (struct chan *c = h ? h->chans : NULL; c; c = c->next) {
		if (channel && strcmp(c->name, channel))
			continue;
		for (struct sub **pp = &c->subs; *pp; pp = &(*pp)->next) {
			if ((*pp)->cl == cl) {
				struct sub *s = *pp;
				*pp = s->next;
				free(s);
				cl->listens--;
				break;
			}
		}
	}
	if (h && h->lw == cl->w)
		hub_sync(h);
	else if (h && h->lw)
		h->resync = true;
	pthread_mutex_unlock(&hub_mu);
}

/* On the listener's worker: a NotificationResponse body arrived. */
void listen_notify(struct server *sv, const uint8_t *body, uint32_t len)
{
	uint32_t off = 4;
	const char *channel = len > 4 ? pgw_get_str(body, len, &off) : NULL;
	if (!channel)
		return;
	pthread_mutex_lock(&hub_mu);
	struct hub *h = sv->hub;
	struct chan *c = h ? chan_of(h, channel, false) : NULL;
	for (struct sub *s = c ? c->subs : NULL; s; s = s->next)
		cw_post_notify(s->w, s->cl_id, body, len);
	pthread_mutex_unlock(&hub_mu);
}

static void wake_listen_waiters(void)
{
	conn_listen_changed();
}

/* The listener went away: the next subscription opens a new one; clients
 * waiting for a LISTEN to be confirmed are told now (cl_listen_check). */
void listen_listener_gone(struct server *sv)
{
	bool lost = false;
	pthread_mutex_lock(&hub_mu);
	struct hub *h = sv->hub;
	if (h && h->listener == sv) {
		lost = true;
		h->listener = NULL;
		h->lw = NULL;
		h->in_len = 0;
		for (struct chan *c = h->chans; c; c = c->next)
			c->listening = c->active = false;
		log_warn("LISTEN hub for %s/%s lost its server connection; notifications sent "
		         "until a client listens again are lost",
		         pool_database(h->pool), pool_user(h->pool));
	}
	pthread_mutex_unlock(&hub_mu);
	if (lost)
		wake_listen_waiters();
}

bool listen_hub_lost(struct client *cl)
{
	pthread_mutex_lock(&hub_mu);
	struct hub *h = cl->pool ? hub_of(cl->pool, false) : NULL;
	bool lost = !h || !h->listener;
	pthread_mutex_unlock(&hub_mu);
	return lost;
}

void listen_listener_ready(struct server *sv)
{
	pthread_mutex_lock(&hub_mu);
	if (sv->hub)
		hub_sync(sv->hub);
	pthread_mutex_unlock(&hub_mu);
}

void listen_worker_tick(struct worker *w)
{
	pthread_mutex_lock(&hub_mu);
	for (struct hub *h = hubs; h; h = h->next) {
		if (h->lw == w && h->resync) {
			h->resync = false;
			hub_sync(h);
		}
	}
	pthread_mutex_unlock(&hub_mu);
}

bool listen_active(struct client *cl, const char *channel)
{
	bool active = false;
	pthread_mutex_lock(&hub_mu);
	struct hub *h = cl->pool ? hub_of(cl->pool, false) : NULL;
	struct chan *c = h ? chan_of(h, channel, false) : NULL;
	active = c && c->active;
	pthread_mutex_unlock(&hub_mu);
	return active;
}

/* The listener answered one command (its ReadyForQuery): the oldest LISTEN
 * in flight is now in force; clients waiting for it may be answered. */
void listen_listener_acked(struct server *sv)
{
	pthread_mutex_lock(&hub_mu);
	struct hub *h = sv->hub;
	if (h && h->in_len) {
		struct chan *c = h->inflight[h->in_head];
		h->in_head = (h->in_head + 1) % 256;
		h->in_len--;
		if (c && c->listening)
			c->active = true;
		hub_sync(h); /* commands held back by a full queue */
	}
	pthread_mutex_unlock(&hub_mu);
	wake_listen_waiters();
}
