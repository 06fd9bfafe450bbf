/*
 * Per-fingerprint query statistics (see qstats.h). The table is a fixed
 * array of entries that stays dense (an eviction reuses the victim's slot in
 * place and nothing else removes single entries), an open-addressing index
 * with linear probing and backward-shift deletion (no tombstones, so lookups
 * never degrade however many fingerprints churn through), and an intrusive
 * doubly linked recency list so finding the eviction victim is O(1) rather
 * than a scan of every entry on each new fingerprint.
 */
#include "dataplane/pipeline/engine/qstats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

/* The index keeps the fingerprint next to the slot number so a probe does
 * not touch the (multi-kilobyte, rarely cached) entry it points to. */
struct qs_index {
	uint64_t fp;
	uint32_t slot1; /* slot + 1; 0 = empty */
};

struct qs_table {
	struct qs_entry *e; /* cap entries; e[0..n) in use */
	uint32_t cap, n;
	uint32_t *prev, *next; /* recency list: head = most recent, tail = least */
	uint32_t head, tail;
	struct qs_index *idx;
	uint32_t mask; /* index size - 1 (a power of two, at least 2 * cap) */
	uint64_t tick;
};

/* ---- Histogram ---- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t s;
	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

/* Bucket of us, or QS_HIST_BUCKETS for the overflow bucket. For us >= 32
 * with highest set bit e, the top QS_HIST_SUB_BITS + 1 bits of us are in
 * [32, 63]; (e - 5) * 32 plus them continues the exact buckets 0..31
 * without a gap: e = 5 gives 32..63, e = 6 gives 64..95, and so on. */
static uint32_t bucket_of(uint64_t us)
{
	if (us < QS_HIST_SUB)
		return (uint32_t)us;
	if (us >= QS_HIST_LIMIT)
		return QS_HIST_BUCKETS;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(us);
	uint32_t shift = e - QS_HIST_SUB_BITS;
	return shift * QS_HIST_SUB + (uint32_t)(us >> shift);
}

/* The midpoint of bucket b: the bucket holds the integers
 * [lo, lo + w) with lo >= 32 * w, so the midpoint is within w / 2, i.e.
 * 1/64 of lo, of any of them. */
static uint64_t bucket_mid(uint32_t b)
{
	uint32_t group = b >> QS_HIST_SUB_BITS;
	if (group <= 1)
		return b; /* width 1: exact */
	uint32_t shift = group - 1;
	uint64_t lo = (uint64_t)(QS_HIST_SUB + (b & (QS_HIST_SUB - 1))) << shift;
	return lo + ((UINT64_C(1) << shift) - 1) / 2;
}

static void note_min_max(struct qs_hist *h, bool first, uint64_t lo, uint64_t hi)
{
	if (first || lo < h->min_us)
		h->min_us = lo;
	if (first || hi > h->max_us)
		h->max_us = hi;
}

void qs_hist_add(struct qs_hist *h, uint64_t us)
{
	note_min_max(h, h->count == 0, us, us);
	uint32_t b = bucket_of(us);
	uint32_t *c = b < QS_HIST_BUCKETS ? &h->bucket[b] : &h->overflow;
	if (*c == UINT32_MAX)
		return; /* saturated: keep the distribution consistent with count */
	(*c)++;
	h->count++;
}

/* Adds src into *dst, saturating; returns how much was actually added. */
static uint32_t add_count(uint32_t *dst, uint32_t src)
{
	uint32_t room = UINT32_MAX - *dst;
	uint32_t add = src < room ? src : room;
	*dst += add;
	return add;
}

void qs_hist_merge(struct qs_hist *dst, const struct qs_hist *src)
{
	if (src->count == 0)
		return;
	note_min_max(dst, dst->count == 0, src->min_us, src->max_us);
	uint64_t added = add_count(&dst->overflow, src->overflow);
	for (uint32_t i = 0; i < QS_HIST_BUCKETS; i++)
		if (src->bucket[i])
			added += add_count(&dst->bucket[i], src->bucket[i]);
	dst->count += added;
}

uint64_t qs_hist_quantile(const struct qs_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (!(q > 0)) /* also NaN */
		q = 0;
	if (q > 1)
		q = 1;
	double r = ceil(q * (double)h->count);
	uint64_t rank = r < 1 ? 1 : r >= (double)h->count ? h->count : (uint64_t)r;
	uint64_t seen = 0, v = h->max_us; /* rank past every bucket: the overflow */
	for (uint32_t i = 0; i < QS_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			v = bucket_mid(i);
			break;
		}
	}
	/* The sample itself lies in [min, max]: clamping can only bring the
	 * estimate closer, and makes a constant distribution exact. */
	if (v < h->min_us)
		v = h->min_us;
	if (v > h->max_us)
		v = h->max_us;
	return v;
}

/* ---- Table: index ---- */

/* Fingerprints are usually hashes already, but a finaliser (splitmix64)
 * keeps small or patterned ones (tests, fingerprint 0) from clustering. */
static uint32_t home_of(const struct qs_table *t, uint64_t fp)
{
	fp ^= fp >> 30;
	fp *= UINT64_C(0xbf58476d1ce4e5b9);
	fp ^= fp >> 27;
	fp *= UINT64_C(0x94d049bb133111eb);
	fp ^= fp >> 31;
	return (uint32_t)fp & t->mask;
}

/* The index position holding fp, or of the empty position ending its probe
 * sequence (load is at most 1/2, so there always is one). */
static uint32_t probe(const struct qs_table *t, uint64_t fp)
{
	uint32_t i = home_of(t, fp);
	while (t->idx[i].slot1 && t->idx[i].fp != fp)
		i = (i + 1) & t->mask;
	return i;
}

static void index_remove(struct qs_table *t, uint64_t fp)
{
	uint32_t i = probe(t, fp);
	if (!t->idx[i].slot1)
		return;
	/* Backward shift: pull later members of the run into the hole unless
	 * that would move one before its home position. */
	for (uint32_t j = (i + 1) & t->mask; t->idx[j].slot1; j = (j + 1) & t->mask) {
		uint32_t home = home_of(t, t->idx[j].fp);
		/* home cyclically in (i, j]: the entry must stay where it is */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			t->idx[i] = t->idx[j];
			i = j;
		}
	}
	t->idx[i].slot1 = 0;
	t->idx[i].fp = 0;
}

/* ---- Table: recency list ---- */

static void lru_unlink(struct qs_table *t, uint32_t s)
{
	uint32_t p = t->prev[s], n = t->next[s];
	if (p != NIL)
		t->next[p] = n;
	else
		t->head = n;
	if (n != NIL)
		t->prev[n] = p;
	else
		t->tail = p;
}

static void lru_push_head(struct qs_table *t, uint32_t s)
{
	t->prev[s] = NIL;
	t->next[s] = t->head;
	if (t->head != NIL)
		t->prev[t->head] = s;
	else
		t->tail = s;
	t->head = s;
}

/* ---- Table ---- */

struct qs_table *qs_table_new(size_t max_entries)
{
	if (max_entries == 0 || max_entries > QS_TABLE_MAX)
		return NULL;
	struct qs_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cap = (uint32_t)max_entries;
	uint32_t size = 8;
	while (size < 2 * t->cap)
		size *= 2;
	t->mask = size - 1;
	/* calloc: the OS hands out zero pages lazily, so a table that never
	 * fills never touches most of its entries */
	t->e = calloc(t->cap, sizeof(*t->e));
	t->prev = calloc(t->cap, sizeof(*t->prev));
	t->next = calloc(t->cap, sizeof(*t->next));
	t->idx = calloc(size, sizeof(*t->idx));
	if (!t->e || !t->prev || !t->next || !t->idx) {
		qs_table_free(t);
		return NULL;
	}
	t->head = t->tail = NIL;
	return t;
}

void qs_table_free(struct qs_table *t)
{
	if (!t)
		return;
	free(t->e);
	free(t->prev);
	free(t->next);
	free(t->idx);
	free(t);
}

static uint32_t find(const struct qs_table *t, uint64_t fp)
{
	uint32_t i = probe(t, fp);
	return t->idx[i].slot1 ? t->idx[i].slot1 - 1 : NIL;
}

/* The entry for fp, made most recently seen; a new one is zeroed apart from
 * the fingerprint, in a fresh slot or the least recently seen one's. */
static struct qs_entry *touch(struct qs_table *t, uint64_t fp)
{
	t->tick++;
	uint32_t s = find(t, fp);
	if (s != NIL) {
		lru_unlink(t, s);
	} else {
		if (t->n < t->cap) {
			s = t->n++;
		} else {
			s = t->tail;
			lru_unlink(t, s);
			index_remove(t, t->e[s].fingerprint);
		}
		uint32_t i = probe(t, fp);
		t->idx[i].fp = fp;
		t->idx[i].slot1 = s + 1;
		memset(&t->e[s], 0, sizeof(t->e[s]));
		t->e[s].fingerprint = fp;
	}
	lru_push_head(t, s);
	t->e[s].last_seen = t->tick;
	return &t->e[s];
}

static void copy_name(char *dst, size_t size, const char *src)
{
	if (!src)
		return;
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

struct qs_entry *qs_record(struct qs_table *t, uint64_t fingerprint, uint64_t us, uint64_t rows,
                           bool error, const char *database, const char *user, const char *node)
{
	if (!t)
		return NULL;
	struct qs_entry *e = touch(t, fingerprint);
	if (e->calls == 0 || us < e->min_us)
		e->min_us = us;
	if (us > e->max_us)
		e->max_us = us;
	e->calls = sat_add(e->calls, 1);
	e->errors = sat_add(e->errors, error ? 1 : 0);
	e->rows = sat_add(e->rows, rows);
	e->total_us = sat_add(e->total_us, us);
	qs_hist_add(&e->hist, us);
	copy_name(e->database, sizeof(e->database), database);
	copy_name(e->user, sizeof(e->user), user);
	copy_name(e->node, sizeof(e->node), node);
	return e;
}

void qs_note_cache_hit(struct qs_table *t, uint64_t fingerprint)
{
	if (!t)
		return;
	uint32_t s = find(t, fingerprint);
	if (s != NIL)
		t->e[s].cache_hits = sat_add(t->e[s].cache_hits, 1);
}

const struct qs_entry *qs_lookup(const struct qs_table *t, uint64_t fingerprint)
{
	if (!t)
		return NULL;
	uint32_t s = find(t, fingerprint);
	return s != NIL ? &t->e[s] : NULL;
}

static void fill_name(char *dst, const char *src, size_t size)
{
	if (!dst[0])
		memcpy(dst, src, size);
}

void qs_merge_entry(struct qs_table *dst, const struct qs_entry *a)
{
	if (!dst || !a)
		return;
	/* One of dst's own: touch() could hand its slot to a new entry and
	 * this would then read a half-reset struct. */
	uintptr_t p = (uintptr_t)a, lo = (uintptr_t)dst->e;
	if (p >= lo && p < lo + (uintptr_t)dst->cap * sizeof(*dst->e))
		return;
	struct qs_entry *e = touch(dst, a->fingerprint);
	if (a->calls && (e->calls == 0 || a->min_us < e->min_us))
		e->min_us = a->min_us;
	if (a->max_us > e->max_us)
		e->max_us = a->max_us;
	e->calls = sat_add(e->calls, a->calls);
	e->errors = sat_add(e->errors, a->errors);
	e->rows = sat_add(e->rows, a->rows);
	e->cache_hits = sat_add(e->cache_hits, a->cache_hits);
	e->total_us = sat_add(e->total_us, a->total_us);
	qs_hist_merge(&e->hist, &a->hist);
	fill_name(e->database, a->database, sizeof(e->database));
	fill_name(e->user, a->user, sizeof(e->user));
	fill_name(e->node, a->node, sizeof(e->node));
	fill_name(e->query, a->query, sizeof(e->query));
}

void qs_table_merge(struct qs_table *dst, const struct qs_table *src)
{
	if (!dst || !src || dst == src)
		return;
	for (uint32_t s = src->tail; s != NIL; s = src->prev[s])
		qs_merge_entry(dst, &src->e[s]);
}

/* ---- Reports ---- */

struct ranked {
	uint64_t key;
	const struct qs_entry *e;
};

static uint64_t key_of(const struct qs_entry *e, enum qs_order by)
{
	switch (by) {
	case QS_BY_CALLS:
		return e->calls;
	case QS_BY_P99:
		return qs_hist_quantile(&e->hist, 0.99);
	case QS_BY_MEAN:
		return e->calls ? e->total_us / e->calls : 0;
	case QS_BY_TIME:
	default:
		return e->total_us;
	}
}

/* a ranks above b */
static bool above(const struct ranked *a, const struct ranked *b)
{
	if (a->key != b->key)
		return a->key > b->key;
	return a->e->fingerprint < b->e->fingerprint;
}

/* Min-heap on rank: the lowest-ranked of the current top n at h[0], so each
 * candidate costs one comparison unless it gets in. */
static void sift_down(struct ranked *h, size_t n, size_t i)
{
	for (;;) {
		size_t low = i, l = 2 * i + 1, r = l + 1;
		if (l < n && above(&h[low], &h[l]))
			low = l;
		if (r < n && above(&h[low], &h[r]))
			low = r;
		if (low == i)
			return;
		struct ranked tmp = h[i];
		h[i] = h[low];
		h[low] = tmp;
		i = low;
	}
}

static void sift_up(struct ranked *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!above(&h[p], &h[i]))
			return;
		struct ranked tmp = h[i];
		h[i] = h[p];
		h[p] = tmp;
		i = p;
	}
}

#define TOP_STACK 64

size_t qs_top(const struct qs_table *t, enum qs_order by, const struct qs_entry **out, size_t n)
{
	if (!t || !out || n == 0)
		return 0;
	if (n > t->n)
		n = t->n;
	/* The key is computed once per entry (a p99 walks the histogram), so
	 * the heap keeps keys beside the pointers. */
	struct ranked stack[TOP_STACK], *h = stack;
	if (n > TOP_STACK) {
		h = malloc(n * sizeof(*h));
		if (!h) {
			h = stack;
			n = TOP_STACK;
		}
	}
	size_t k = 0;
	for (uint32_t s = 0; s < t->n; s++) {
		struct ranked c = {key_of(&t->e[s], by), &t->e[s]};
		if (k < n) {
			h[k] = c;
			sift_up(h, k++);
		} else if (above(&c, &h[0])) {
			h[0] = c;
			sift_down(h, k, 0);
		}
	}
	/* Heapsort: repeatedly moving the lowest-ranked to the end leaves the
	 * highest first. */
	for (size_t m = k; m > 1; m--) {
		struct ranked tmp = h[0];
		h[0] = h[m - 1];
		h[m - 1] = tmp;
		sift_down(h, m - 1, 0);
	}
	for (size_t i = 0; i < k; i++)
		out[i] = h[i].e;
	if (h != stack)
		free(h);
	return k;
}

uint64_t qs_entry_quantile(const struct qs_entry *e, double q)
{
	return qs_hist_quantile(&e->hist, q);
}

size_t qs_table_count(const struct qs_table *t)
{
	return t ? t->n : 0;
}

size_t qs_table_capacity(const struct qs_table *t)
{
	return t ? t->cap : 0;
}

const struct qs_entry *qs_table_at(const struct qs_table *t, size_t i)
{
	return t && i < t->n ? &t->e[i] : NULL;
}

void qs_table_reset(struct qs_table *t)
{
	if (!t)
		return;
	memset(t->idx, 0, ((size_t)t->mask + 1) * sizeof(*t->idx));
	t->n = 0;
	t->head = t->tail = NIL;
	t->tick = 0;
}
