/*
 * Query-result cache storage (see rcache.h): a chained hash table with an
 * LRU list and a small single-flight table under one mutex, and lock-free
 * table generations in a fixed array that never moves.
 */
#include "dataplane/pipeline/engine/rcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RC_FLIGHT_BITS    10
#define RC_FLIGHT_BUCKETS 256
#define RC_NAMES_MAX      (UINT32_C(1) << 24)
#define RC_WAITERS_START  4

_Static_assert((1u << RC_FLIGHT_BITS) == RC_MAX_FLIGHTS, "flight token slot bits");

struct rc_entry {
	struct rc_entry *hnext, **hpprev;     /* bucket chain */
	struct rc_entry *lru_prev, *lru_next; /* head is the most recently used */
	uint64_t hash;
	uint64_t expire_ns;
	uint64_t epoch;
	size_t size; /* accounted: the malloc request */
	size_t key_len, data_len;
	uint32_t refs; /* rc_hit holders, under s->mu */
	uint32_t n_deps;
	bool linked; /* in the table and the LRU list */
	/* n_deps generations, then uint32_t ids[n_deps], the key, the data */
	uint64_t gens[];
};

struct rc_flight {
	struct rc_flight *next; /* bucket chain */
	uint64_t token;
	uint64_t hash;
	uint64_t started_ns;
	size_t acct; /* accounted: this malloc plus the waiter array's capacity */
	struct rc_waiter *w;
	size_t n, cap;
	size_t key_len;
	uint8_t key[];
};

struct rc_store {
	pthread_mutex_t mu; /* everything up to the generations */
	struct rc_entry **buckets;
	size_t nbuckets; /* power of two */
	struct rc_entry *lru_head, *lru_tail;
	size_t max_bytes;
	size_t max_entry; /* also read without mu (atomic) for an early refusal */
	uint64_t bytes;
	uint64_t freeable; /* sizes of linked entries with no reference */
	uint64_t flight_bytes;
	struct rc_stats st; /* the counters; the gauges are filled by rc_stats */

	struct rc_flight *fl_slot[RC_MAX_FLIGHTS]; /* by token & slot mask */
	struct rc_flight *fl_bucket[RC_FLIGHT_BUCKETS];
	uint16_t fl_free[RC_MAX_FLIGHTS]; /* stack of free slots */
	uint32_t fl_nfree;
	uint64_t fl_seq;

	/* Generations: atomics, no lock. */
	uint64_t epoch;
	uint64_t *gens; /* [name_cap], fixed at creation */
	uint32_t name_cap;
	uint32_t nnames;      /* atomic; ids 1..nnames are in use */
	uint32_t *name_slots; /* open addressing, atomic id (0 empty), published after names[id] */
	uint32_t name_mask;
	char **names;            /* [name_cap] */
	pthread_mutex_t name_mu; /* serialises interning */
};

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finaliser: the caller's hash may have weak low bits */
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint32_t *entry_ids(const struct rc_entry *e)
{
	return (uint32_t *)(e->gens + e->n_deps);
}

static uint8_t *entry_key(const struct rc_entry *e)
{
	return (uint8_t *)(entry_ids(e) + e->n_deps);
}

static uint8_t *entry_data(const struct rc_entry *e)
{
	return entry_key(e) + e->key_len;
}

size_t rc_entry_size(size_t n_deps, size_t key_len, size_t data_len)
{
	size_t size;
	if (n_deps > RC_MAX_DEPS)
		return SIZE_MAX;
	size = offsetof(struct rc_entry, gens) + n_deps * (sizeof(uint64_t) + sizeof(uint32_t));
	if (__builtin_add_overflow(size, key_len, &size) ||
	    __builtin_add_overflow(size, data_len, &size))
		return SIZE_MAX;
	return size;
}

static bool key_eq(const uint8_t *a, size_t a_len, const void *b, size_t b_len)
{
	return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

/* ---- Generations ---- */

static uint32_t gen_slot(const struct rc_store *s, uint32_t id)
{
	return id < s->name_cap ? id : RC_GEN_OVERFLOW;
}

uint64_t rc_gen_get(const struct rc_store *s, uint32_t id)
{
	return __atomic_load_n(&s->gens[gen_slot(s, id)], __ATOMIC_ACQUIRE);
}

void rc_gen_bump(struct rc_store *s, uint32_t id)
{
	__atomic_add_fetch(&s->gens[gen_slot(s, id)], 1, __ATOMIC_SEQ_CST);
}

static uint64_t epoch_get(const struct rc_store *s)
{
	return __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
}

void rc_epoch_bump(struct rc_store *s)
{
	__atomic_add_fetch(&s->epoch, 1, __ATOMIC_SEQ_CST);
}

void rc_deps_snapshot(const struct rc_store *s, struct rc_deps *d)
{
	if (d->n > RC_MAX_DEPS)
		d->n = RC_MAX_DEPS;
	d->epoch = epoch_get(s);
	for (uint32_t i = 0; i < d->n; i++)
		d->gens[i] = rc_gen_get(s, d->ids[i]);
}

static bool deps_current(const struct rc_store *s, const struct rc_deps *d)
{
	if (d->epoch != epoch_get(s))
		return false;
	for (uint32_t i = 0; i < d->n; i++)
		if (d->gens[i] != rc_gen_get(s, d->ids[i]))
			return false;
	return true;
}

static bool entry_current(const struct rc_store *s, const struct rc_entry *e)
{
	const uint32_t *ids = entry_ids(e);
	if (e->epoch != epoch_get(s))
		return false;
	for (uint32_t i = 0; i < e->n_deps; i++)
		if (e->gens[i] != rc_gen_get(s, ids[i]))
			return false;
	return true;
}

static uint64_t name_hash(const char *name)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * UINT64_C(0x100000001b3);
	return mix64(h);
}

/* Probes for name; returns its id, or 0 with *slot set to the empty slot
 * that ends the probe. Safe without name_mu: a slot is published (release)
 * only after names[id] is written, and never changes afterwards. */
static uint32_t name_find(const struct rc_store *s, const char *name, uint32_t *slot)
{
	uint32_t i = (uint32_t)name_hash(name) & s->name_mask;
	for (;;) {
		uint32_t id = __atomic_load_n(&s->name_slots[i], __ATOMIC_ACQUIRE);
		if (id == 0) {
			*slot = i;
			return 0;
		}
		if (strcmp(s->names[id], name) == 0)
			return id;
		i = (i + 1) & s->name_mask;
	}
}

uint32_t rc_gen_id(struct rc_store *s, const char *name)
{
	uint32_t slot, id;
	if (!name)
		return RC_GEN_OVERFLOW;
	id = name_find(s, name, &slot);
	if (id)
		return id;
	pthread_mutex_lock(&s->name_mu);
	id = name_find(s, name, &slot); /* someone may have added it meanwhile */
	if (id)
		goto out;
	uint32_t n = __atomic_load_n(&s->nnames, __ATOMIC_RELAXED);
	if (n + 1 >= s->name_cap)
		goto out; /* full: RC_GEN_OVERFLOW */
	char *copy = strdup(name);
	if (!copy)
		goto out;
	id = n + 1;
	s->names[id] = copy;
	__atomic_store_n(&s->nnames, id, __ATOMIC_RELAXED);
	__atomic_store_n(&s->name_slots[slot], id, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&s->name_mu);
	return id;
}

/* ---- Entries (all under s->mu) ---- */

static struct rc_entry **bucket_of(const struct rc_store *s, uint64_t hash)
{
	return &s->buckets[mix64(hash) & (s->nbuckets - 1)];
}

static void bucket_link(struct rc_entry **b, struct rc_entry *e)
{
	e->hnext = *b;
	if (*b)
		(*b)->hpprev = &e->hnext;
	*b = e;
	e->hpprev = b;
}

static void lru_unlink(struct rc_store *s, struct rc_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct rc_store *s, struct rc_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = s->lru_head;
	if (s->lru_head)
		s->lru_head->lru_prev = e;
	else
		s->lru_tail = e;
	s->lru_head = e;
}

static struct rc_entry *entry_find(struct rc_store *s, uint64_t hash, const void *key,
                                   size_t key_len)
{
	for (struct rc_entry *e = *bucket_of(s, hash); e; e = e->hnext)
		if (e->hash == hash && key_eq(entry_key(e), e->key_len, key, key_len))
			return e;
	return NULL;
}

/* Unlinks e from the table and the LRU list. Unreferenced, it is uncounted
 * and pushed on *dead (chained through hnext) to be freed after unlocking;
 * referenced, its last rc_release does that. */
static void entry_drop(struct rc_store *s, struct rc_entry *e, struct rc_entry **dead)
{
	*e->hpprev = e->hnext;
	if (e->hnext)
		e->hnext->hpprev = e->hpprev;
	lru_unlink(s, e);
	e->linked = false;
	s->st.entries--;
	if (e->refs == 0) {
		s->freeable -= e->size;
		s->bytes -= e->size;
		e->hnext = *dead;
		*dead = e;
	}
}

static void free_dead(struct rc_entry *dead)
{
	while (dead) {
		struct rc_entry *next = dead->hnext;
		free(dead);
		dead = next;
	}
}

/* Evicts unreferenced entries, least recently used first, while bytes is
 * over target. */
static void evict_to(struct rc_store *s, uint64_t target, struct rc_entry **dead)
{
	struct rc_entry *e = s->lru_tail;
	while (e && s->bytes > target) {
		struct rc_entry *prev = e->lru_prev;
		if (e->refs == 0) {
			entry_drop(s, e, dead);
			s->st.evictions++;
		}
		e = prev;
	}
}

/* Makes bytes + need <= max_bytes by evicting, or returns false without
 * evicting anything when even every unreferenced entry would not do. */
static bool make_room(struct rc_store *s, size_t need, struct rc_entry **dead)
{
	if (need > s->max_bytes)
		return false;
	uint64_t target = s->max_bytes - need;
	if (s->bytes <= target)
		return true;
	if (s->bytes - s->freeable > target)
		return false;
	evict_to(s, target, dead);
	return s->bytes <= target;
}

/* Doubles the bucket array when that fits under max_bytes; a failed
 * allocation only leaves the chains longer. */
static void maybe_grow(struct rc_store *s)
{
	size_t old = s->nbuckets, n = old * 2;
	size_t old_bytes = old * sizeof(*s->buckets), new_bytes;
	if (s->st.entries <= old || n > SIZE_MAX / sizeof(*s->buckets))
		return;
	new_bytes = n * sizeof(*s->buckets);
	if (new_bytes > s->max_bytes || s->bytes - old_bytes > s->max_bytes - new_bytes)
		return;
	struct rc_entry **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	struct rc_entry **ob = s->buckets;
	s->buckets = nb;
	s->nbuckets = n;
	for (size_t i = 0; i < old; i++) {
		struct rc_entry *e = ob[i];
		while (e) {
			struct rc_entry *next = e->hnext;
			bucket_link(bucket_of(s, e->hash), e);
			e = next;
		}
	}
	free(ob);
	s->bytes = s->bytes - old_bytes + new_bytes;
}

/* ---- Flights (under s->mu) ---- */

static struct rc_flight **flight_bucket(struct rc_store *s, uint64_t hash)
{
	return &s->fl_bucket[mix64(hash) & (RC_FLIGHT_BUCKETS - 1)];
}

static struct rc_flight *flight_find(struct rc_store *s, uint64_t hash, const void *key,
                                     size_t key_len)
{
	for (struct rc_flight *f = *flight_bucket(s, hash); f; f = f->next)
		if (f->hash == hash && key_eq(f->key, f->key_len, key, key_len))
			return f;
	return NULL;
}

static uint64_t flight_token(struct rc_store *s, uint32_t slot)
{
	return (++s->fl_seq << RC_FLIGHT_BITS) | slot;
}

/* Removes the flight with this token from the table; NULL if unknown. */
static struct rc_flight *flight_take(struct rc_store *s, uint64_t token)
{
	uint32_t slot = (uint32_t)(token & (RC_MAX_FLIGHTS - 1));
	struct rc_flight *f = s->fl_slot[slot];
	if (token == 0 || !f || f->token != token)
		return NULL;
	struct rc_flight **pp = flight_bucket(s, f->hash);
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	s->fl_slot[slot] = NULL;
	s->fl_free[s->fl_nfree++] = (uint16_t)slot;
	s->bytes -= f->acct;
	s->flight_bytes -= f->acct;
	return f;
}

/* Hands f's waiters to the caller (outside the lock) and frees f. */
static void flight_finish(struct rc_flight *f, struct rc_waiter **waiters, size_t *n_waiters)
{
	if (!f)
		return;
	if (f->n && waiters && n_waiters) {
		*waiters = f->w;
		*n_waiters = f->n;
	} else {
		free(f->w);
	}
	free(f);
}

static bool flight_add_waiter(struct rc_store *s, struct rc_flight *f, const struct rc_waiter *w,
                              struct rc_entry **dead)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : RC_WAITERS_START;
		size_t grow = (cap - f->cap) * sizeof(*f->w);
		if (cap > SIZE_MAX / sizeof(*f->w) || !make_room(s, grow, dead))
			return false;
		struct rc_waiter *nw = realloc(f->w, cap * sizeof(*nw));
		if (!nw)
			return false;
		f->w = nw;
		f->cap = cap;
		f->acct += grow;
		s->bytes += grow;
		s->flight_bytes += grow;
	}
	f->w[f->n++] = *w;
	return true;
}

static enum rc_look flight_join(struct rc_store *s, uint64_t hash, const void *key, size_t key_len,
                                uint64_t now_ns, const struct rc_waiter *waiter,
                                uint64_t flight_max_ns, uint64_t *flight, struct rc_entry **dead)
{
	struct rc_flight *f = flight_find(s, hash, key, key_len);
	if (f) {
		uint64_t age = now_ns > f->started_ns ? now_ns - f->started_ns : 0;
		if (flight_max_ns == 0 || age < flight_max_ns) {
			if (!flight_add_waiter(s, f, waiter, dead))
				return RC_MISS;
			s->st.waits++;
			return RC_MISS_WAIT;
		}
		/* Abandoned: the caller leads it now; the old leader's token
		 * stops working and the waiters stay for the new one. */
		uint32_t slot = (uint32_t)(f->token & (RC_MAX_FLIGHTS - 1));
		f->token = flight_token(s, slot);
		f->started_ns = now_ns;
		s->st.flights_replaced++;
		*flight = f->token;
		return RC_MISS_LEAD;
	}
	if (s->fl_nfree == 0)
		return RC_MISS;
	size_t acct = sizeof(*f) + key_len;
	if (acct < key_len || !make_room(s, acct, dead))
		return RC_MISS;
	f = malloc(acct);
	if (!f)
		return RC_MISS;
	memset(f, 0, sizeof(*f));
	if (key_len)
		memcpy(f->key, key, key_len);
	f->key_len = key_len;
	f->hash = hash;
	f->started_ns = now_ns;
	f->acct = acct;
	uint32_t slot = s->fl_free[--s->fl_nfree];
	f->token = flight_token(s, slot);
	s->fl_slot[slot] = f;
	struct rc_flight **b = flight_bucket(s, hash);
	f->next = *b;
	*b = f;
	s->bytes += acct;
	s->flight_bytes += acct;
	*flight = f->token;
	return RC_MISS_LEAD;
}

/* ---- Store ---- */

struct rc_store *rc_store_new_names(size_t max_bytes, size_t max_entry_bytes, uint32_t names)
{
	if (names < 1 || names > RC_NAMES_MAX)
		return NULL;
	struct rc_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->nbuckets = RC_BUCKETS_START;
	while (s->nbuckets > 1 && s->nbuckets * sizeof(*s->buckets) > max_bytes / 4)
		s->nbuckets /= 2;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	uint32_t nslots = 2;
	while (nslots < 2 * names)
		nslots *= 2;
	s->name_cap = names;
	s->name_mask = nslots - 1;
	s->gens = calloc(names, sizeof(*s->gens));
	s->names = calloc(names, sizeof(*s->names));
	s->name_slots = calloc(nslots, sizeof(*s->name_slots));
	if (!s->buckets || !s->gens || !s->names || !s->name_slots)
		goto fail;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&s->name_mu, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		goto fail;
	}
	s->max_bytes = max_bytes;
	s->max_entry = max_entry_bytes;
	s->bytes = s->nbuckets * sizeof(*s->buckets);
	for (uint32_t i = 0; i < RC_MAX_FLIGHTS; i++)
		s->fl_free[i] = (uint16_t)(RC_MAX_FLIGHTS - 1 - i);
	s->fl_nfree = RC_MAX_FLIGHTS;
	return s;
fail:
	free(s->buckets);
	free(s->gens);
	free(s->names);
	free(s->name_slots);
	free(s);
	return NULL;
}

struct rc_store *rc_store_new(size_t max_bytes, size_t max_entry_bytes)
{
	return rc_store_new_names(max_bytes, max_entry_bytes, RC_NAMES_DEFAULT);
}

void rc_store_free(struct rc_store *s)
{
	if (!s)
		return;
	struct rc_entry *e = s->lru_head;
	while (e) {
		struct rc_entry *next = e->lru_next;
		free(e);
		e = next;
	}
	for (uint32_t i = 0; i < RC_MAX_FLIGHTS; i++) {
		if (s->fl_slot[i]) {
			free(s->fl_slot[i]->w);
			free(s->fl_slot[i]);
		}
	}
	for (uint32_t i = 1; i < s->name_cap; i++)
		free(s->names[i]);
	free(s->names);
	free(s->name_slots);
	free(s->gens);
	free(s->buckets);
	pthread_mutex_destroy(&s->name_mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void rc_store_set_limits(struct rc_store *s, size_t max_bytes, size_t max_entry_bytes)
{
	struct rc_entry *dead = NULL;
	pthread_mutex_lock(&s->mu);
	s->max_bytes = max_bytes;
	__atomic_store_n(&s->max_entry, max_entry_bytes, __ATOMIC_RELAXED);
	evict_to(s, max_bytes, &dead);
	pthread_mutex_unlock(&s->mu);
	free_dead(dead);
}

const char *rc_look_str(enum rc_look l)
{
	switch (l) {
	case RC_HIT:
		return "hit";
	case RC_MISS_LEAD:
		return "miss_lead";
	case RC_MISS_WAIT:
		return "miss_wait";
	case RC_MISS:
		return "miss";
	}
	return "unknown";
}

enum rc_look rc_lookup(struct rc_store *s, uint64_t hash, const void *key, size_t key_len,
                       uint64_t now_ns, bool lead, const struct rc_waiter *waiter,
                       uint64_t flight_max_ns, struct rc_hit *hit, uint64_t *flight)
{
	struct rc_entry *dead = NULL, *e;
	enum rc_look ret = RC_MISS;

	pthread_mutex_lock(&s->mu);
	e = entry_find(s, hash, key, key_len);
	if (e && now_ns >= e->expire_ns) {
		s->st.expired++;
		entry_drop(s, e, &dead);
		e = NULL;
	} else if (e && !entry_current(s, e)) {
		s->st.invalidated++;
		entry_drop(s, e, &dead);
		e = NULL;
	}
	if (e) {
		s->st.hits++;
		lru_unlink(s, e);
		lru_push_front(s, e);
		if (e->refs++ == 0)
			s->freeable -= e->size;
		hit->data = entry_data(e);
		hit->len = e->data_len;
		hit->e = e;
		ret = RC_HIT;
	} else {
		s->st.misses++;
		if (lead && waiter)
			ret = flight_join(s, hash, key, key_len, now_ns, waiter, flight_max_ns,
			                  flight, &dead);
	}
	pthread_mutex_unlock(&s->mu);
	free_dead(dead);
	return ret;
}

void rc_release(struct rc_store *s, struct rc_entry *e)
{
	bool gone = false;
	if (!e)
		return;
	pthread_mutex_lock(&s->mu);
	if (--e->refs == 0) {
		if (e->linked) {
			s->freeable += e->size;
		} else {
			s->bytes -= e->size;
			gone = true;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (gone)
		free(e);
}

int rc_insert(struct rc_store *s, uint64_t flight, uint64_t hash, const void *key, size_t key_len,
              const void *data, size_t data_len, const struct rc_deps *d, uint64_t expire_ns,
              struct rc_waiter **waiters, size_t *n_waiters)
{
	struct rc_entry *e = NULL, *dead = NULL;
	struct rc_flight *f;
	enum { FILL, BIG, STALE, INVALID, NOMEM } early = FILL;
	size_t size = 0;
	int ret = 1;

	if (waiters)
		*waiters = NULL;
	if (n_waiters)
		*n_waiters = 0;

	/* Refusals that need no lock are decided before allocating, so the
	 * data copy is never made for nothing, nor under the lock. */
	if (!d || d->n > RC_MAX_DEPS)
		early = INVALID;
	else if ((size = rc_entry_size(d->n, key_len, data_len)) >
	         __atomic_load_n(&s->max_entry, __ATOMIC_RELAXED))
		early = BIG;
	else if (!deps_current(s, d))
		early = STALE;
	else if (!(e = malloc(size)))
		early = NOMEM;
	if (e) {
		memset(e, 0, sizeof(*e));
		e->hash = hash;
		e->expire_ns = expire_ns;
		e->epoch = d->epoch;
		e->size = size;
		e->key_len = key_len;
		e->data_len = data_len;
		e->n_deps = d->n;
		memcpy(e->gens, d->gens, d->n * sizeof(e->gens[0]));
		memcpy(entry_ids(e), d->ids, d->n * sizeof(d->ids[0]));
		if (key_len)
			memcpy(entry_key(e), key, key_len);
		if (data_len)
			memcpy(entry_data(e), data, data_len);
	}

	pthread_mutex_lock(&s->mu);
	f = flight_take(s, flight);
	if (early == INVALID) {
		ret = -EINVAL;
	} else if (early == NOMEM) {
		ret = -ENOMEM;
	} else if (early == BIG || size > s->max_entry) {
		/* (again under the lock: the limit may have been lowered) */
		s->st.too_large++;
	} else if (early == STALE || !deps_current(s, d)) {
		/* (again under the lock: a flush bumps under it, so no fill
		 * that began before a flush is linked after it) */
		s->st.stale_fills++;
	} else {
		struct rc_entry *old = entry_find(s, hash, key, key_len);
		if (old)
			entry_drop(s, old, &dead);
		if (make_room(s, size, &dead))
			ret = 0;
		else
			s->st.no_room++;
	}
	if (ret == 0) {
		bucket_link(bucket_of(s, hash), e);
		lru_push_front(s, e);
		e->linked = true;
		s->bytes += size;
		s->freeable += size;
		s->st.entries++;
		s->st.stores++;
		maybe_grow(s);
		e = NULL;
	}
	pthread_mutex_unlock(&s->mu);

	free(e); /* refused */
	free_dead(dead);
	flight_finish(f, waiters, n_waiters);
	return ret;
}

void rc_flight_abort(struct rc_store *s, uint64_t flight, struct rc_waiter **waiters,
                     size_t *n_waiters)
{
	struct rc_flight *f;
	if (waiters)
		*waiters = NULL;
	if (n_waiters)
		*n_waiters = 0;
	pthread_mutex_lock(&s->mu);
	f = flight_take(s, flight);
	pthread_mutex_unlock(&s->mu);
	flight_finish(f, waiters, n_waiters);
}

static bool entry_reads(const struct rc_store *s, const struct rc_entry *e, uint32_t id)
{
	const uint32_t *ids = entry_ids(e);
	for (uint32_t i = 0; i < e->n_deps; i++)
		if (gen_slot(s, ids[i]) == id)
			return true;
	return false;
}

size_t rc_flush_all(struct rc_store *s)
{
	struct rc_entry *dead = NULL;
	size_t n = 0;
	pthread_mutex_lock(&s->mu);
	rc_epoch_bump(s);
	while (s->lru_head) {
		entry_drop(s, s->lru_head, &dead);
		n++;
	}
	s->st.flushes++;
	pthread_mutex_unlock(&s->mu);
	free_dead(dead);
	return n;
}

size_t rc_flush_table(struct rc_store *s, uint32_t id)
{
	struct rc_entry *dead = NULL;
	size_t n = 0;
	id = gen_slot(s, id);
	pthread_mutex_lock(&s->mu);
	rc_gen_bump(s, id);
	for (struct rc_entry *e = s->lru_head, *next; e; e = next) {
		next = e->lru_next;
		if (entry_reads(s, e, id)) {
			entry_drop(s, e, &dead);
			n++;
		}
	}
	s->st.flushes++;
	pthread_mutex_unlock(&s->mu);
	free_dead(dead);
	return n;
}

void rc_stats(struct rc_store *s, struct rc_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	out->bytes = s->bytes;
	out->max_bytes = s->max_bytes;
	out->bucket_bytes = s->nbuckets * sizeof(*s->buckets);
	out->flight_bytes = s->flight_bytes;
	out->flights = RC_MAX_FLIGHTS - s->fl_nfree;
	pthread_mutex_unlock(&s->mu);
	out->names = __atomic_load_n(&s->nnames, __ATOMIC_RELAXED);
}
