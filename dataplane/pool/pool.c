/*
 * Pool bookkeeping: counted connections, a LIFO idle list (the warmest
 * server first) and a FIFO of waiting clients. Hand-offs to a client of
 * another worker go through that worker's mailbox.
 */
#include "dataplane/pool/pool.h"

#include "dataplane/conn/conn.h"
#include "dataplane/policy/snap.h"
#include "dataplane/report/stats.h"
#include "dataplane/rt/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool {
	pthread_mutex_t mu;
	struct pool *next;
	char database[64];
	char user[64];
	char tenant[64];
	int cap; /* atomic: a tenant's cap, 0 = none */
	int node_idx;
	int total; /* connecting + active + idle + permits in flight */
	int n_idle;
	struct server *idle;
	struct client *wait_head, *wait_tail;
	int n_waiting;
	uint64_t served, wait_timeouts;
	char *warm_pkt;
	uint32_t warm_len;
	uint64_t warm_sig;
	char *params;
	uint32_t params_len;
	struct pool_ctr *ctr; /* one block per worker, see stats.h */
	int n_ctr;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool *registry;

const char *pool_tenant(const struct pool *p)
{
	return p->tenant;
}

int pool_max(const struct pool *p)
{
	int global = snap_max_pool_size();
	int cap = __atomic_load_n(&p->cap, __ATOMIC_RELAXED);
	return cap > 0 && cap < global ? cap : global;
}

struct pool *pool_lookup(const char *database, const char *user, const char *tenant, int node_idx,
                         int cap)
{
	pthread_mutex_lock(&registry_mu);
	struct pool *p;
	for (p = registry; p; p = p->next)
		if (p->node_idx == node_idx && !strcmp(p->database, database) &&
		    !strcmp(p->user, user) && !strcmp(p->tenant, tenant)) {
			__atomic_store_n(&p->cap, cap, __ATOMIC_RELAXED); /* follows the config */
			goto out;
		}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto out;
	/* every worker its own block, including workers still starting */
	p->n_ctr = g_workers_planned > 0 ? g_workers_planned : 1;
	p->ctr = aligned_alloc(64, sizeof(struct pool_ctr) * (size_t)p->n_ctr);
	if (!p->ctr) {
		free(p);
		p = NULL;
		goto out;
	}
	memset(p->ctr, 0, sizeof(struct pool_ctr) * (size_t)p->n_ctr);
	pthread_mutex_init(&p->mu, NULL);
	snprintf(p->database, sizeof(p->database), "%s", database);
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
	p->cap = cap;
	p->node_idx = node_idx;
	p->next = registry;
	registry = p;
out:
	pthread_mutex_unlock(&registry_mu);
	return p;
}

struct pool_ctr *pool_ctr(struct pool *p, int widx)
{
	if (widx < 0 || widx >= p->n_ctr)
		widx = 0;
	return &p->ctr[widx];
}

int pool_n_ctr(const struct pool *p)
{
	return p->n_ctr;
}

void pool_foreach_idle(struct pool *p, void (*fn)(struct server *sv, void *ud), void *ud)
{
	pthread_mutex_lock(&p->mu);
	for (struct server *sv = p->idle; sv; sv = sv->pool_next)
		fn(sv, ud);
	pthread_mutex_unlock(&p->mu);
}

const char *pool_database(const struct pool *p)
{
	return p->database;
}

const char *pool_user(const struct pool *p)
{
	return p->user;
}

int pool_node(const struct pool *p)
{
	return p->node_idx;
}

struct pool *pool_first(void)
{
	pthread_mutex_lock(&registry_mu);
	struct pool *p = registry;
	pthread_mutex_unlock(&registry_mu);
	return p;
}

struct pool *pool_next_of(struct pool *p)
{
	pthread_mutex_lock(&registry_mu);
	struct pool *n = p->next;
	pthread_mutex_unlock(&registry_mu);
	return n;
}

static struct client *pop_waiter(struct pool *p)
{
	struct client *cl = p->wait_head;
	if (!cl)
		return NULL;
	p->wait_head = cl->wait_next;
	if (!p->wait_head)
		p->wait_tail = NULL;
	cl->wait_next = NULL;
	p->n_waiting--;
	cl->wait = CLW_HANDED;
	return cl;
}

enum pool_grant pool_acquire(struct pool *p, struct client *cl, int max_size, struct server **out)
{
	enum pool_grant g;
	pthread_mutex_lock(&p->mu);
	*out = NULL;
	/* Nobody jumps the queue: with waiters present a newcomer waits too. */
	if (!p->wait_head) {
		struct server **pp = &p->idle;
		for (; *pp; pp = &(*pp)->pool_next) {
			if ((*pp)->signature == (cl ? cl->signature : 0)) {
				*out = *pp;
				*pp = (*pp)->pool_next;
				(*out)->pool_next = NULL;
				p->n_idle--;
				p->served++;
				g = POOL_GOT;
				goto out;
			}
		}
		if (p->total < max_size) {
			p->total++;
			p->served++;
			g = POOL_CONNECT;
			goto out;
		}
		if (p->idle) {
			/* Take the coldest idle server (list tail) to replace. */
			pp = &p->idle;
			while ((*pp)->pool_next)
				pp = &(*pp)->pool_next;
			*out = *pp;
			*pp = NULL;
			p->n_idle--;
			p->served++;
			g = POOL_REPLACE;
			goto out;
		}
	}
	if (!cl) {
		g = POOL_WAIT; /* an internal request (conn/ireq.c): not queued, it retries */
		goto out;
	}
	cl->wait = CLW_QUEUED;
	cl->wait_next = NULL;
	if (p->wait_tail)
		p->wait_tail->wait_next = cl;
	else
		p->wait_head = cl;
	p->wait_tail = cl;
	p->n_waiting++;
	g = POOL_WAIT;
out:
	pthread_mutex_unlock(&p->mu);
	return g;
}

/* Takes the first waiter of worker w out of the queue, if the oldest
 * waiter (of any worker) has not waited longer than LOCAL_GRACE_NS: a local
 * hand-off needs no cross-thread wake-up, and the bound keeps it fair. */
#define LOCAL_GRACE_NS 10000000L
static struct client *pop_local_waiter(struct pool *p, struct worker *w)
{
	if (!w || !p->wait_head)
		return NULL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	const struct timespec *t0 = &p->wait_head->wait_start;
	long waited = (now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec);
	if (p->wait_head->w != w && waited > LOCAL_GRACE_NS)
		return NULL;
	struct client *prev = NULL;
	for (struct client *cl = p->wait_head; cl; prev = cl, cl = cl->wait_next) {
		if (cl->w != w)
			continue;
		if (prev)
			prev->wait_next = cl->wait_next;
		else
			p->wait_head = cl->wait_next;
		if (p->wait_tail == cl)
			p->wait_tail = prev;
		cl->wait_next = NULL;
		p->n_waiting--;
		cl->wait = CLW_HANDED;
		return cl;
	}
	return NULL;
}

int pool_busy_hint(struct pool *p)
{
	int total = __atomic_load_n(&p->total, __ATOMIC_RELAXED);
	int idle = __atomic_load_n(&p->n_idle, __ATOMIC_RELAXED);
	return total > idle ? total - idle : 0;
}

bool pool_release(struct pool *p, struct server *sv)
{
	struct worker *self = worker_self();
	pthread_mutex_lock(&p->mu);
	if (p->total > pool_max(p)) {
		/* the cap was lowered live: this one goes */
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	struct client *cl = pop_local_waiter(p, self);
	bool local = cl != NULL;
	if (!cl)
		cl = pop_waiter(p);
	if (cl) {
		cl->handoff = sv;
		cl->handoff_permit = false;
		p->served++;
	} else {
		sv->pool_next = p->idle;
		p->idle = sv;
		p->n_idle++;
	}
	pthread_mutex_unlock(&p->mu);
	if (cl && local)
		cl_handoff_arrived(cl); /* same thread: no mailbox, no wake-up */
	else if (cl)
		worker_post(cl->w, cl);
	return true;
}

void pool_drop(struct pool *p, int max_size)
{
	pthread_mutex_lock(&p->mu);
	struct client *cl = NULL;
	if (p->total <= max_size && p->wait_head) {
		/* the dropped slot becomes the waiter's permit */
		cl = pop_waiter(p);
		cl->handoff = NULL;
		cl->handoff_permit = true;
		p->served++;
	} else {
		p->total--;
	}
	pthread_mutex_unlock(&p->mu);
	if (cl)
		worker_post(cl->w, cl);
}

bool pool_cancel_wait(struct pool *p, struct client *cl)
{
	bool removed = false;
	pthread_mutex_lock(&p->mu);
	if (cl->wait == CLW_QUEUED) {
		struct client **pp = &p->wait_head, *prev = NULL;
		while (*pp && *pp != cl) {
			prev = *pp;
			pp = &(*pp)->wait_next;
		}
		if (*pp) {
			*pp = cl->wait_next;
			if (p->wait_tail == cl)
				p->wait_tail = prev;
			p->n_waiting--;
		}
		cl->wait = CLW_NONE;
		removed = true;
	}
	pthread_mutex_unlock(&p->mu);
	return removed;
}

void pool_note_timeout(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->wait_timeouts++;
	pthread_mutex_unlock(&p->mu);
}

struct server *pool_collect_expired(struct pool *p, const struct timespec *now, int idle_timeout,
                                    int lifetime, int min_idle)
{
	struct server *out = NULL;
	pthread_mutex_lock(&p->mu);
	struct server **pp = &p->idle;
	while (*pp) {
		struct server *sv = *pp;
		bool idle_expired = idle_timeout > 0 && p->total > min_idle &&
		                    conn_elapsed(&sv->last_used, now) > idle_timeout;
		bool too_old = lifetime > 0 && conn_elapsed(&sv->created, now) > lifetime;
		/* a backend terminated while idle: gone from the counts within a
		 * maintenance period even if no client asks for a server */
		bool dead = !idle_expired && !too_old && !sv_alive(sv);
		if (idle_expired || too_old || dead) {
			*pp = sv->pool_next;
			sv->pool_next = out;
			out = sv;
			p->n_idle--;
			p->total--;
		} else {
			pp = &sv->pool_next;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return out;
}

bool pool_want_warm(struct pool *p, int min_idle, int max_size)
{
	bool want = false;
	pthread_mutex_lock(&p->mu);
	if (p->warm_pkt && p->total < min_idle && p->total < max_size && !p->wait_head) {
		p->total++;
		want = true;
	}
	pthread_mutex_unlock(&p->mu);
	return want;
}

char *pool_warm_startup(struct pool *p, uint32_t *len, uint64_t *sig)
{
	char *copy = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->warm_pkt) {
		copy = malloc(p->warm_len);
		if (copy) {
			memcpy(copy, p->warm_pkt, p->warm_len);
			*len = p->warm_len;
			*sig = p->warm_sig;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return copy;
}

void pool_remember_startup(struct pool *p, const char *pkt, uint32_t len, uint64_t sig)
{
	char *copy = malloc(len);
	if (!copy)
		return;
	memcpy(copy, pkt, len);
	pthread_mutex_lock(&p->mu);
	free(p->warm_pkt);
	p->warm_pkt = copy;
	p->warm_len = len;
	p->warm_sig = sig;
	pthread_mutex_unlock(&p->mu);
}

void pool_remember_params(struct pool *p, const char *blob, uint32_t len)
{
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, blob, len);
	pthread_mutex_lock(&p->mu);
	free(p->params);
	p->params = copy;
	p->params_len = len;
	pthread_mutex_unlock(&p->mu);
}

char *pool_params_copy(struct pool *p, uint32_t *len)
{
	char *copy = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->params) {
		copy = malloc(p->params_len ? p->params_len : 1);
		if (copy) {
			memcpy(copy, p->params, p->params_len);
			*len = p->params_len;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return copy;
}

void pool_get_stats(struct pool *p, struct pool_stats *st)
{
	pthread_mutex_lock(&p->mu);
	st->total = p->total;
	st->idle = p->n_idle;
	st->waiting = p->n_waiting;
	st->active = p->total - p->n_idle;
	st->served = p->served;
	st->wait_timeouts = p->wait_timeouts;
	pthread_mutex_unlock(&p->mu);
}

struct server *pool_take_all_idle(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	struct server *list = p->idle;
	p->total -= p->n_idle;
	p->idle = NULL;
	p->n_idle = 0;
	pthread_mutex_unlock(&p->mu);
	return list;
}
