/*
 * Per-fingerprint query statistics for one worker thread: calls, errors,
 * rows, result-cache hits, total/min/max time and a latency histogram per
 * statement fingerprint, in a table of fixed capacity that evicts the least
 * recently seen fingerprint when full. No locks and no global state: the
 * owning worker records, and a report merges the workers' tables into a
 * scratch table under the caller's own synchronisation. Pure C, no I/O, and
 * no allocation after qs_table_new.
 *
 * The histogram is log-linear in microseconds: values 0..31 get a bucket
 * each (exact), and every power of two [2^e, 2^(e+1)) from 2^5 up to 2^32
 * (inclusive, so up to 2^33 - 1 us, about 143 minutes) is split into 32
 * equal sub-buckets. A quantile reports the midpoint of the bucket holding
 * the sample of that rank, clamped to the recorded min and max, so it is
 * within 1/64 (1.6 %) of the true sample. Larger values are counted in an
 * overflow bucket whose quantile is the largest value recorded.
 */
#ifndef HELIOS_QSTATS_H
#define HELIOS_QSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QS_HIST_SUB_BITS 5 /* 32 sub-buckets per power of two */
#define QS_HIST_SUB      (1u << QS_HIST_SUB_BITS)
#define QS_HIST_MAX_EXP  32 /* highest power of two covered */
#define QS_HIST_BUCKETS  (QS_HIST_SUB * (QS_HIST_MAX_EXP - QS_HIST_SUB_BITS + 2)) /* 928 */
#define QS_HIST_LIMIT    (UINT64_C(1) << (QS_HIST_MAX_EXP + 1)) /* first value that overflows */

/*
 * Zero-initialised is empty. Bucket counts are uint32 (to keep a table of
 * thousands of entries within a few MB) and saturate: a sample that would
 * wrap its bucket is left out of the distribution (count does not include
 * it) but still updates min and max.
 */
struct qs_hist {
	uint64_t count;  /* samples in bucket[] and overflow: what quantiles rank over */
	uint64_t min_us; /* of every sample added; meaningful when count > 0 */
	uint64_t max_us;
	uint32_t overflow; /* samples >= QS_HIST_LIMIT */
	uint32_t bucket[QS_HIST_BUCKETS];
};

void qs_hist_add(struct qs_hist *h, uint64_t us);
void qs_hist_merge(struct qs_hist *dst, const struct qs_hist *src);
/* Nearest rank: an estimate of the sample of rank max(1, ceil(q * count)) in
 * ascending order, i.e. the smallest value with at least q of the samples at
 * or below it. q is clamped to [0, 1] (NaN counts as 0). 0 when empty. */
uint64_t qs_hist_quantile(const struct qs_hist *h, double q);

#define QS_NAME_MAX  64
#define QS_QUERY_MAX 512

struct qs_entry {
	uint64_t fingerprint;
	uint64_t calls, errors, rows, cache_hits; /* sums saturate at UINT64_MAX */
	uint64_t total_us, min_us, max_us;
	uint64_t last_seen; /* the table's tick at the last call: higher is more recent */
	/* Of the last call; a NULL argument to qs_record keeps the previous. */
	char database[QS_NAME_MAX], user[QS_NAME_MAX], node[QS_NAME_MAX];
	/* Normalised text (constants replaced), written by the caller once:
	 * "" means not yet (a new entry starts with ""). Truncated to fit. */
	char query[QS_QUERY_MAX];
	struct qs_hist hist; /* every call's time */
};

struct qs_table;

/* Preallocates max_entries entries and the index; NULL when max_entries is
 * 0, larger than QS_TABLE_MAX, or memory is short. */
#define QS_TABLE_MAX (UINT32_C(1) << 28)
struct qs_table *qs_table_new(size_t max_entries);
void qs_table_free(struct qs_table *t); /* NULL is fine */

/*
 * Records one finished statement: creates the entry when the fingerprint is
 * new (reusing the least recently seen entry's slot when the table is full)
 * and marks it the most recently seen. Returns the entry so the caller can
 * fill query[] when it is still "". The pointer stays valid until the entry
 * is evicted (a later qs_record of another fingerprint), the table is reset
 * or freed; it always points into the table's preallocated array.
 */
struct qs_entry *qs_record(struct qs_table *t, uint64_t fingerprint, uint64_t us, uint64_t rows,
                           bool error, const char *database, const char *user, const char *node);
/* One of the fingerprint's calls was answered from the result cache (the
 * call itself is recorded with qs_record as usual). Does not change
 * recency; a fingerprint without an entry (never seen or evicted) is
 * ignored. */
void qs_note_cache_hit(struct qs_table *t, uint64_t fingerprint);
const struct qs_entry *qs_lookup(const struct qs_table *t, uint64_t fingerprint);

/*
 * Adds every entry of src into dst (same fingerprint: counters summed,
 * min/max and histograms combined; strings kept from dst when set there,
 * else taken from src). src entries go in from least to most recently seen,
 * so a dst too small for the union keeps src's most recent ones; a scratch
 * dst sized for the sum of the sources never evicts.
 */
void qs_table_merge(struct qs_table *dst, const struct qs_table *src);
/* Adds one entry (of another table) into dst the same way, e.g. only a
 * worker's top few for a summary; it becomes dst's most recently seen. An
 * entry of dst itself is ignored. */
void qs_merge_entry(struct qs_table *dst, const struct qs_entry *src);

enum qs_order {
	QS_BY_TIME,  /* total_us */
	QS_BY_CALLS, /* calls */
	QS_BY_P99,   /* the histogram's 0.99 quantile */
	QS_BY_MEAN,  /* total_us / calls */
};
/* The n largest entries by `by` into out[] (pointers into t), largest
 * first, ties broken by ascending fingerprint; returns how many (at most n
 * and qs_table_count). May allocate a scratch array when n > 64 and returns
 * at most 64 if that fails. */
size_t qs_top(const struct qs_table *t, enum qs_order by, const struct qs_entry **out, size_t n);

/* The entry's histogram quantile (see qs_hist_quantile). */
uint64_t qs_entry_quantile(const struct qs_entry *e, double q);

size_t qs_table_count(const struct qs_table *t);
size_t qs_table_capacity(const struct qs_table *t);
/* Entries are dense: i in [0, qs_table_count) visits each once, in no
 * particular order; NULL past the end. */
const struct qs_entry *qs_table_at(const struct qs_table *t, size_t i);
/* Forgets every entry; keeps the memory. */
void qs_table_reset(struct qs_table *t);

#endif
