/*
 * Pool bookkeeping: counted connections, a LIFO idle list (the warmest
 * item first) and a FIFO of waiters. A grant goes out through the
 * waiter's granted(), which moves it to the waiter's own thread (conn/
 * posts to its worker's mailbox). Includes nothing of the data plane: the
 * limit and the worker count come in through pool_init.
 */
#include "dataplane/pool/pool.h"

#include "dataplane/pool/pool_ctr.h"

#include <limits.h>
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
	struct pool_item *idle;
	struct pool_waiter *wait_head, *wait_tail;
	int n_waiting;
	uint64_t served, wait_timeouts;
	char *warm_pkt;
	uint32_t warm_len;
	uint64_t warm_sig;
	char *params;
	uint32_t params_len;
	char *ctr; /* n_ctr blocks of env.ctr_size: the reporter's, per worker */
	int n_ctr;
	/* issue 19, set by pool_set_limits (atomics: they follow the config) */
	int size;     /* own size ([[databases]] pool_size); 0 = the global max */
	int min;      /* own min idle; -1 = the caller's */
	int reserve;  /* reserve connections beyond size */
	int db_cap;   /* total of the pools of this database; 0 = none */
	int user_cap; /* total of the pools of this user; 0 = none */
	/* atomic: when its first waiter began to wait (ns, CLOCK_MONOTONIC),
	 * 0 = none; read without the lock by sibling pools under a shared cap,
	 * to serve the longest wait first across pools */
	int64_t head_ns;
	int64_t retire_ns; /* atomic: servers created before (monotonic ns) go when released */
};

/* Cross-pool caps (max_db_connections, max_user_connections): a pool that
 * has one opens a connection only under group_mu, after summing its
 * siblings' totals, so two workers cannot both take the last slot. Lock
 * order: group_mu, then a pool's mu, then registry_mu. */
static pthread_mutex_t group_mu = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool *registry;

static struct {
	int n_workers;
	size_t ctr_size;
	int (*max_size)(void);
} env = {1, 64, NULL};

void pool_init(int n_workers, size_t ctr_size, int (*max_size)(void))
{
	env.n_workers = n_workers > 0 ? n_workers : 1;
	/* a multiple of the cache line: no two workers write the same one */
	env.ctr_size = ctr_size ? (ctr_size + 63) / 64 * 64 : 64;
	env.max_size = max_size;
}

const char *pool_tenant(const struct pool *p)
{
	return p->tenant;
}

int pool_max(const struct pool *p)
{
	int own = __atomic_load_n(&p->size, __ATOMIC_RELAXED);
	int global = own > 0 ? own : env.max_size ? env.max_size() : INT_MAX;
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
	p->n_ctr = env.n_workers;
	p->ctr = aligned_alloc(64, env.ctr_size * (size_t)p->n_ctr);
	if (!p->ctr) {
		free(p);
		p = NULL;
		goto out;
	}
	memset(p->ctr, 0, env.ctr_size * (size_t)p->n_ctr);
	pthread_mutex_init(&p->mu, NULL);
	snprintf(p->database, sizeof(p->database), "%s", database);
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
	p->cap = cap;
	p->min = -1;
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
	return (struct pool_ctr *)(p->ctr + env.ctr_size * (size_t)widx);
}

int pool_n_ctr(const struct pool *p)
{
	return p->n_ctr;
}

void pool_foreach_idle(struct pool *p, void (*fn)(struct pool_item *it, void *ud), void *ud)
{
	pthread_mutex_lock(&p->mu);
	for (struct pool_item *it = p->idle; it; it = it->next)
		fn(it, ud);
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

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* After any change of p's queue, under p->mu. */
static void note_head(struct pool *p)
{
	int64_t ns = p->wait_head ? ts_ns(&p->wait_head->since) : 0;
	if (p->wait_head && ns == 0)
		ns = 1;
	__atomic_store_n(&p->head_ns, ns, __ATOMIC_RELAXED);
}

static bool capped(const struct pool *p)
{
	return __atomic_load_n(&p->db_cap, __ATOMIC_RELAXED) > 0 ||
	       __atomic_load_n(&p->user_cap, __ATOMIC_RELAXED) > 0;
}

/* Room under p's database and user caps for one more connection; called
 * with group_mu held (every pool with a cap grows only under it). */
static bool group_room(struct pool *p)
{
	int db_cap = __atomic_load_n(&p->db_cap, __ATOMIC_RELAXED);
	int user_cap = __atomic_load_n(&p->user_cap, __ATOMIC_RELAXED);
	int db_n = 0, user_n = 0;

	if (db_cap <= 0 && user_cap <= 0)
		return true;
	pthread_mutex_lock(&registry_mu);
	for (struct pool *q = registry; q; q = q->next) {
		int t = __atomic_load_n(&q->total, __ATOMIC_RELAXED);
		if (!strcmp(q->database, p->database))
			db_n += t;
		if (!strcmp(q->user, p->user))
			user_n += t;
	}
	pthread_mutex_unlock(&registry_mu);
	return (db_cap <= 0 || db_n < db_cap) && (user_cap <= 0 || user_n < user_cap);
}

static bool sibling(const struct pool *p, const struct pool *q)
{
	return q != p && (!strcmp(q->database, p->database) || !strcmp(q->user, p->user));
}

void pool_set_limits(struct pool *p, const struct pool_limits *l)
{
	__atomic_store_n(&p->size, l->size, __ATOMIC_RELAXED);
	__atomic_store_n(&p->min, l->min, __ATOMIC_RELAXED);
	__atomic_store_n(&p->reserve, l->reserve, __ATOMIC_RELAXED);
	__atomic_store_n(&p->db_cap, l->db_cap, __ATOMIC_RELAXED);
	__atomic_store_n(&p->user_cap, l->user_cap, __ATOMIC_RELAXED);
}

void pool_get_limits(const struct pool *p, struct pool_limits *l)
{
	l->size = __atomic_load_n(&p->size, __ATOMIC_RELAXED);
	l->min = __atomic_load_n(&p->min, __ATOMIC_RELAXED);
	l->reserve = __atomic_load_n(&p->reserve, __ATOMIC_RELAXED);
	l->db_cap = __atomic_load_n(&p->db_cap, __ATOMIC_RELAXED);
	l->user_cap = __atomic_load_n(&p->user_cap, __ATOMIC_RELAXED);
}

int pool_min(const struct pool *p, int dflt)
{
	int m = __atomic_load_n(&p->min, __ATOMIC_RELAXED);
	return m >= 0 ? m : dflt;
}

int pool_reserve(const struct pool *p)
{
	return __atomic_load_n(&p->reserve, __ATOMIC_RELAXED);
}

static struct pool_waiter *pop_waiter(struct pool *p)
{
	struct pool_waiter *wt = p->wait_head;
	if (!wt)
		return NULL;
	p->wait_head = wt->next;
	if (!p->wait_head)
		p->wait_tail = NULL;
	wt->next = NULL;
	p->n_waiting--;
	wt->state = POOL_W_HANDED;
	return wt;
}

enum pool_grant pool_acquire(struct pool *p, struct pool_waiter *wt, int max_size,
                             struct pool_item **out)
{
	enum pool_grant g;
	bool grp = capped(p);
	if (grp)
		pthread_mutex_lock(&group_mu);
	pthread_mutex_lock(&p->mu);
	*out = NULL;
	/* Nobody jumps the queue: with waiters present a newcomer waits too. */
	if (!p->wait_head) {
		struct pool_item **pp = &p->idle;
		for (; *pp; pp = &(*pp)->next) {
			if ((*pp)->signature == (wt ? wt->signature : 0)) {
				*out = *pp;
				*pp = (*pp)->next;
				(*out)->next = NULL;
				p->n_idle--;
				p->served++;
				g = POOL_GOT;
				goto out;
			}
		}
		if (p->total < max_size && (!grp || group_room(p))) {
			p->total++;
			p->served++;
			g = POOL_CONNECT;
			goto out;
		}
		if (p->idle) {
			/* Take the coldest idle item (list tail) to replace. */
			pp = &p->idle;
			while ((*pp)->next)
				pp = &(*pp)->next;
			*out = *pp;
			*pp = NULL;
			p->n_idle--;
			p->served++;
			g = POOL_REPLACE;
			goto out;
		}
	}
	if (!wt) {
		g = POOL_WAIT; /* an internal request (conn/ireq.c): not queued, it retries */
		goto out;
	}
	wt->state = POOL_W_QUEUED;
	wt->next = NULL;
	wt->item = NULL;
	wt->permit = false;
	if (p->wait_tail)
		p->wait_tail->next = wt;
	else
		p->wait_head = wt;
	p->wait_tail = wt;
	p->n_waiting++;
	g = POOL_WAIT;
out:
	note_head(p);
	pthread_mutex_unlock(&p->mu);
	if (grp)
		pthread_mutex_unlock(&group_mu);
	return g;
}

/* The pools of a group, copied out of the registry so that their locks
 * are taken without registry_mu (lock order). */
#define GROUP_SCAN_MAX 256
static int siblings_of(struct pool *p, struct pool **out)
{
	int n = 0;
	pthread_mutex_lock(&registry_mu);
	for (struct pool *q = registry; q && n < GROUP_SCAN_MAX; q = q->next)
		if (sibling(p, q))
			out[n++] = q;
	pthread_mutex_unlock(&registry_mu);
	return n;
}

/* The longest wait among p's siblings (same database or user) that have
 * room of their own: its start in ns, 0 = none waits. */
static int64_t sibling_oldest_ns(struct pool *p)
{
	struct pool *sib[GROUP_SCAN_MAX];
	int n = siblings_of(p, sib);
	int64_t best = 0;
	for (int i = 0; i < n; i++) {
		int64_t h = __atomic_load_n(&sib[i]->head_ns, __ATOMIC_RELAXED);
		if (h && (!best || h < best) &&
		    __atomic_load_n(&sib[i]->total, __ATOMIC_RELAXED) < pool_max(sib[i]))
			best = h;
	}
	return best;
}

/* Under p->mu: a sibling's client has waited longer than p's first one (or
 * p has none), so a slot p frees is due there: the longest wait is served
 * first across the pools of a shared cap, as within one pool. */
static bool sibling_first(struct pool *p)
{
	int64_t sib = sibling_oldest_ns(p);
	int64_t own = p->wait_head ? ts_ns(&p->wait_head->since) : 0;
	return sib && (!own || sib < own);
}

void pool_group_wake(struct pool *p)
{
	struct pool *sib[GROUP_SCAN_MAX + 1];
	bool tried[GROUP_SCAN_MAX + 1] = {false};
	int n;

	if (!capped(p))
		return;
	n = siblings_of(p, sib);
	sib[n++] = p;
	/* the pool whose first client has waited longest first, while slots
	 * last; each pool is tried until it has no room or no waiter */
	for (int round = 0; round < 2 * n + 4; round++) {
		int pick = -1;
		int64_t best = 0;
		for (int i = 0; i < n; i++) {
			int64_t h = __atomic_load_n(&sib[i]->head_ns, __ATOMIC_RELAXED);
			if (!tried[i] && h && (!best || h < best))
				best = h, pick = i;
		}
		if (pick < 0)
			return;
		struct pool *q = sib[pick];
		struct pool_waiter *wt = NULL;
		pthread_mutex_lock(&group_mu);
		pthread_mutex_lock(&q->mu);
		if (q->wait_head && q->total < pool_max(q) && group_room(q)) {
			wt = pop_waiter(q);
			wt->item = NULL;
			wt->permit = true;
			q->total++;
			q->served++;
		}
		note_head(q);
		pthread_mutex_unlock(&q->mu);
		pthread_mutex_unlock(&group_mu);
		if (wt)
			wt->granted(wt, false);
		else
			tried[pick] = true;
	}
}

struct pool_item *pool_evict_for(struct pool *p)
{
	struct pool *sib[GROUP_SCAN_MAX];
	struct pool_item *it = NULL;
	int n;

	if (!capped(p) || !__atomic_load_n(&p->n_waiting, __ATOMIC_RELAXED))
		return NULL;
	n = siblings_of(p, sib);
	for (int i = 0; i < n && !it; i++) {
		struct pool *q = sib[i];
		pthread_mutex_lock(&q->mu);
		if (q->idle) {
			struct pool_item **pp = &q->idle;
			while ((*pp)->next) /* the coldest */
				pp = &(*pp)->next;
			it = *pp;
			*pp = NULL;
			q->n_idle--; /* still counted: the caller's close frees the slot */
		}
		pthread_mutex_unlock(&q->mu);
	}
	return it;
}

/* Takes wt out of p's queue wherever it stands (p->mu held); false when
 * it was not there. */
static bool unlink_waiter(struct pool *p, struct pool_waiter *wt)
{
	struct pool_waiter **pp = &p->wait_head, *prev = NULL;
	while (*pp && *pp != wt) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return false;
	*pp = wt->next;
	if (p->wait_tail == wt)
		p->wait_tail = prev;
	p->n_waiting--;
	wt->next = NULL;
	return true;
}

bool pool_try_reserve(struct pool *p, struct pool_waiter *wt)
{
	bool got = false, grp = capped(p);
	int reserve = __atomic_load_n(&p->reserve, __ATOMIC_RELAXED);

	if (reserve <= 0)
		return false;
	if (grp)
		pthread_mutex_lock(&group_mu);
	pthread_mutex_lock(&p->mu);
	if (wt->state == POOL_W_QUEUED && p->total < pool_max(p) + reserve &&
	    (!grp || group_room(p))) {
		if (unlink_waiter(p, wt)) {
			wt->state = POOL_W_HANDED;
			wt->item = NULL;
			wt->permit = true;
			p->total++;
			p->served++;
			got = true;
		}
	}
	note_head(p);
	pthread_mutex_unlock(&p->mu);
	if (grp)
		pthread_mutex_unlock(&group_mu);
	if (got)
		wt->granted(wt, false);
	return got;
}

/* Takes the first waiter whose home is self out of the queue, if the
 * oldest waiter (of any home) has not waited longer than LOCAL_GRACE_NS: a
 * local hand-off needs no cross-thread wake-up, and the bound keeps it
 * fair. */
#define LOCAL_GRACE_NS 10000000L
static struct pool_waiter *pop_local_waiter(struct pool *p, const void *self)
{
	if (!self || !p->wait_head)
		return NULL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	const struct timespec *t0 = &p->wait_head->since;
	long waited = (now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec);
	if (p->wait_head->home != self && waited > LOCAL_GRACE_NS)
		return NULL;
	struct pool_waiter *prev = NULL;
	for (struct pool_waiter *wt = p->wait_head; wt; prev = wt, wt = wt->next) {
		if (wt->home != self)
			continue;
		if (prev)
			prev->next = wt->next;
		else
			p->wait_head = wt->next;
		if (p->wait_tail == wt)
			p->wait_tail = prev;
		wt->next = NULL;
		p->n_waiting--;
		wt->state = POOL_W_HANDED;
		return wt;
	}
	return NULL;
}

int pool_busy_hint(struct pool *p)
{
	int total = __atomic_load_n(&p->total, __ATOMIC_RELAXED);
	int idle = __atomic_load_n(&p->n_idle, __ATOMIC_RELAXED);
	return total > idle ? total - idle : 0;
}

bool pool_release(struct pool *p, struct pool_item *it, const void *self)
{
	pthread_mutex_lock(&p->mu);
	if (p->total > pool_max(p) || (capped(p) && sibling_first(p))) {
		/* the cap was lowered live, or (a reserve connection, or) a
		 * sibling pool waits under a shared database/user cap: this one
		 * goes, and its close passes the slot on */
		note_head(p);
		pthread_mutex_unlock(&p->mu);
		return false;
	}
	struct pool_waiter *wt = pop_local_waiter(p, self);
	bool local = wt != NULL;
	if (!wt)
		wt = pop_waiter(p);
	if (wt) {
		wt->item = it;
		wt->permit = false;
		p->served++;
	} else {
		it->next = p->idle;
		p->idle = it;
		p->n_idle++;
	}
	note_head(p);
	pthread_mutex_unlock(&p->mu);
	if (wt)
		wt->granted(wt, local); /* local: same thread, no mailbox, no wake-up */
	return true;
}

void pool_adopt(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->total++;
	p->served++;
	pthread_mutex_unlock(&p->mu);
}

void pool_drop(struct pool *p, int max_size)
{
	pthread_mutex_lock(&p->mu);
	struct pool_waiter *wt = NULL;
	if (p->total <= max_size && p->wait_head && !(capped(p) && sibling_first(p))) {
		/* the dropped slot becomes the waiter's permit */
		wt = pop_waiter(p);
		wt->item = NULL;
		wt->permit = true;
		p->served++;
	} else {
		p->total--;
	}
	note_head(p);
	pthread_mutex_unlock(&p->mu);
	if (wt)
		wt->granted(wt, false); /* the dropper may be deep in a close */
	else
		pool_group_wake(p); /* a sibling may wait for this slot */
}

bool pool_cancel_wait(struct pool *p, struct pool_waiter *wt)
{
	bool removed = false;
	pthread_mutex_lock(&p->mu);
	if (wt->state == POOL_W_QUEUED) {
		unlink_waiter(p, wt);
		wt->next = NULL;
		wt->state = POOL_W_NONE;
		removed = true;
	}
	note_head(p);
	pthread_mutex_unlock(&p->mu);
	return removed;
}

void pool_note_timeout(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->wait_timeouts++;
	pthread_mutex_unlock(&p->mu);
}

static double elapsed(const struct timespec *since, const struct timespec *now)
{
	return (double)(now->tv_sec - since->tv_sec) + (now->tv_nsec - since->tv_nsec) / 1e9;
}

struct pool_item *pool_collect_expired(struct pool *p, const struct timespec *now, int idle_timeout,
                                       int lifetime, int min_idle,
                                       bool (*alive)(struct pool_item *it))
{
	struct pool_item *out = NULL;
	pthread_mutex_lock(&p->mu);
	struct pool_item **pp = &p->idle;
	while (*pp) {
		struct pool_item *it = *pp;
		bool idle_expired = idle_timeout > 0 && p->total > min_idle &&
		                    elapsed(&it->last_used, now) > idle_timeout;
		bool too_old = lifetime > 0 && elapsed(&it->created, now) > lifetime;
		/* a backend terminated while idle: gone from the counts within a
		 * maintenance period even if no client asks for a server */
		bool dead = !idle_expired && !too_old && alive && !alive(it);
		if (idle_expired || too_old || dead) {
			*pp = it->next;
			it->next = out;
			out = it;
			p->n_idle--;
			p->total--;
		} else {
			pp = &it->next;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (out)
		pool_group_wake(p);
	return out;
}

bool pool_want_warm(struct pool *p, int min_idle, int max_size)
{
	bool want = false, grp = capped(p);
	if (grp)
		pthread_mutex_lock(&group_mu);
	pthread_mutex_lock(&p->mu);
	if (p->warm_pkt && p->total < min_idle && p->total < max_size && !p->wait_head &&
	    (!grp || group_room(p))) {
		p->total++;
		want = true;
	}
	pthread_mutex_unlock(&p->mu);
	if (grp)
		pthread_mutex_unlock(&group_mu);
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

struct pool_item *pool_take_all_idle(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	struct pool_item *list = p->idle;
	p->total -= p->n_idle;
	p->idle = NULL;
	p->n_idle = 0;
	pthread_mutex_unlock(&p->mu);
	return list;
}

void pool_retire(struct pool *p, int64_t before_ns)
{
	__atomic_store_n(&p->retire_ns, before_ns, __ATOMIC_RELAXED);
}

int64_t pool_retire_ns(const struct pool *p)
{
	return __atomic_load_n(&p->retire_ns, __ATOMIC_RELAXED);
}
