/*
 * Storage half of the query-result cache, shared by every worker thread:
 * opaque answers (protocol bytes) found by an opaque key plus a caller
 * computed 64-bit hash, with TTL, exact memory accounting, LRU eviction, a
 * maximum entry size and single-flight for concurrent identical misses.
 * Pure C: no I/O, no clock reads (the caller passes CLOCK_MONOTONIC ns), no
 * logging, no global state.
 *
 * Correctness rests on generations. Each table name is interned to a small
 * id whose generation is a counter bumped (atomically, no lock) by every
 * write to that table; a global epoch is bumped by DDL. An entry records the
 * generation of every table its query read, and the epoch, as they were
 * when the query was SENT (rc_deps_snapshot before sending). A lookup that
 * finds any of them different from the current value removes the entry and
 * reports a miss, so a stale answer is never returned. For this to hold the
 * caller must bump a table after the write that changes it is durable and
 * visible (its CommandComplete outside a transaction, COMMIT otherwise): a
 * bump made earlier would let a reader snapshot the new generation and
 * still read the old rows.
 *
 * Memory: `bytes` (rc_stats) is exact and is what max_bytes limits. It is
 * the sum of
 *   - every entry that still exists, linked or unlinked-but-referenced: one
 *     malloc holding the struct, its n deps, the key and the data, counted
 *     at its requested size (rc_entry_size);
 *   - the hash bucket array (buckets x sizeof(void *));
 *   - in-flight records (struct and key, one malloc) and their waiter arrays
 *     (capacity x sizeof(struct rc_waiter)).
 * After any call returns, bytes <= max_bytes: an insert or a new flight
 * that cannot be made room for (by evicting unreferenced entries, least
 * recently used first) is refused, and the bucket array only grows when the
 * larger array fits. The one exception is rc_store_set_limits lowering
 * max_bytes below what cannot be freed at once (referenced entries, the
 * bucket array, flights): bytes then stays above the new limit until those
 * go, and nothing new is stored meanwhile. The store struct itself and the
 * name table (fixed at creation, about 36 bytes per name of capacity plus
 * the names) are not counted.
 */
#ifndef HELIOS_RCACHE_H
#define HELIOS_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_MAX_DEPS      32
#define RC_GEN_OVERFLOW  0     /* id shared by every name once the name table is full */
#define RC_NAMES_DEFAULT 16384 /* name ids rc_store_new provides, the overflow id included */
#define RC_MAX_FLIGHTS   1024  /* concurrent single-flight queries */
#define RC_BUCKETS_START 1024  /* initial hash buckets (fewer for a tiny max_bytes) */

struct rc_store;
struct rc_entry; /* opaque */

/* Who to wake when a flight ends; the store only copies it. */
struct rc_waiter {
	int worker;
	uint64_t client_id;
};

struct rc_deps {
	uint32_t n;                 /* tables read, <= RC_MAX_DEPS */
	uint32_t ids[RC_MAX_DEPS];  /* from rc_gen_id */
	uint64_t gens[RC_MAX_DEPS]; /* their generations when the query was sent */
	uint64_t epoch;             /* the global epoch then */
};

struct rc_stats {
	uint64_t hits, misses; /* every lookup is one of the two (a wait is a miss) */
	uint64_t stores;
	uint64_t evictions;        /* LRU, to make room */
	uint64_t invalidated;      /* found stale by generation or epoch */
	uint64_t expired;          /* found past TTL */
	uint64_t too_large;        /* not stored: entry size over max_entry_bytes */
	uint64_t stale_fills;      /* not stored: a generation moved while the query ran */
	uint64_t no_room;          /* not stored: unreferenced entries could not make room */
	uint64_t waits;            /* lookups that joined a flight */
	uint64_t flights_replaced; /* abandoned flights taken over by a new leader */
	uint64_t flushes;          /* rc_flush_all and rc_flush_table calls */
	uint64_t entries;          /* linked entries (findable) */
	uint64_t bytes, max_bytes; /* bytes: exact, see the top of this file */
	uint64_t bucket_bytes;     /* part of bytes: the hash bucket array */
	uint64_t flight_bytes;     /* part of bytes: flight records and waiter arrays */
	uint64_t flights;          /* flights in progress */
	uint64_t names;            /* interned table names (the overflow id not included) */
};

/*
 * max_entry_bytes limits an entry's accounted size (rc_entry_size: struct,
 * deps, key and data), not only its data. The bucket array starts at
 * RC_BUCKETS_START buckets, halved while it would take more than a quarter
 * of max_bytes. NULL on OOM. rc_store_new_names sets the name capacity
 * (ids 1..names-1 for real names; at least 1, at most 1 << 24).
 */
struct rc_store *rc_store_new(size_t max_bytes, size_t max_entry_bytes);
struct rc_store *rc_store_new_names(size_t max_bytes, size_t max_entry_bytes, uint32_t names);
/* Every rc_hit must have been released; in-progress flights are dropped.
 * NULL is fine. */
void rc_store_free(struct rc_store *s);
/* New limits (live config). Lowering max_bytes evicts unreferenced entries,
 * least recently used first, down to it at once (see the top for what it
 * cannot free). Entries already over a lowered max_entry_bytes stay. */
void rc_store_set_limits(struct rc_store *s, size_t max_bytes, size_t max_entry_bytes);

/* The accounted size of an entry with these parts (SIZE_MAX on overflow). */
size_t rc_entry_size(size_t n_deps, size_t key_len, size_t data_len);

/*
 * Table generations. Names are interned case-sensitively (the caller folds);
 * ids are stable for the store's life. Looking up a known name takes no
 * lock; a new name takes the name table's own mutex. When the table is full
 * (or on OOM, or for NULL) the name maps to RC_GEN_OVERFLOW, which all such
 * names share, so bumping any of them stales every entry that read any of
 * them: conservative, still correct. Id 0 is never handed out otherwise.
 */
uint32_t rc_gen_id(struct rc_store *s, const char *name);
/* Lock-free (acquire load; bumps are seq_cst). An id out of range is
 * treated as RC_GEN_OVERFLOW. */
uint64_t rc_gen_get(const struct rc_store *s, uint32_t id);
void rc_gen_bump(struct rc_store *s, uint32_t id);
void rc_epoch_bump(struct rc_store *s); /* makes every entry stale (DDL) */
/* Fills d->gens and d->epoch from the current values for d->ids[0..n).
 * Call it before sending the query. d->n is clamped to RC_MAX_DEPS. */
void rc_deps_snapshot(const struct rc_store *s, struct rc_deps *d);

enum rc_look {
	RC_HIT,       /* *hit set: data valid until rc_release */
	RC_MISS_LEAD, /* absent; caller runs the query; *flight is its token for
	                 rc_insert/rc_flight_abort */
	RC_MISS_WAIT, /* another caller's query for this key is running; the waiter was recorded */
	RC_MISS,      /* absent, and lead was false (or no flight could be
	                 started or joined): run it without single-flight */
};
const char *rc_look_str(enum rc_look l);

struct rc_hit {
	const uint8_t *data;
	size_t len;
	struct rc_entry *e;
};

/*
 * Looks the key up at time now_ns. Keys compare by hash and full bytes. An
 * entry with now_ns >= its expire_ns (expired) or whose deps or epoch
 * differ from the current values (invalidated) is removed and counts as
 * absent. On a hit the entry moves to the LRU front and is referenced: call
 * rc_release(s, hit->e) when done with hit->data.
 *
 * When absent and `lead` (waiter must then be non-NULL; NULL is treated as
 * lead false):
 *   - a flight for the key younger than flight_max_ns (0: no age limit):
 *     *waiter is appended to it, RC_MISS_WAIT;
 *   - a flight at least that old is taken as abandoned: the caller becomes
 *     its leader under a new token, its waiters are kept (woken by the new
 *     leader), the old token becomes unknown, RC_MISS_LEAD;
 *   - no flight: one is created, RC_MISS_LEAD.
 * *flight is set (nonzero) only with RC_MISS_LEAD. RC_MISS when lead is
 * false, when RC_MAX_FLIGHTS flights are running, or when there is no room
 * or memory for the flight or the waiter.
 */
enum rc_look rc_lookup(struct rc_store *s, uint64_t hash, const void *key, size_t key_len,
                       uint64_t now_ns, bool lead, const struct rc_waiter *waiter,
                       uint64_t flight_max_ns, struct rc_hit *hit, uint64_t *flight);
/* Drops the reference of a hit; NULL is fine. An entry removed meanwhile is
 * freed (and its bytes uncounted) on its last release. */
void rc_release(struct rc_store *s, struct rc_entry *e);

/*
 * Stores a copy of data under key, expiring at expire_ns (absolute
 * monotonic ns), unless
 *   - its rc_entry_size is over max_entry_bytes (too_large),
 *   - d->epoch or any d->gens[i] is no longer current (stale_fills),
 *   - evicting unreferenced entries, least recently used first, cannot make
 *     room under max_bytes (no_room; then nothing is evicted).
 * An existing entry of the same key is replaced (removed first, not counted
 * as an eviction). Referenced entries are never evicted for room: unlinking
 * them would free nothing until their release. The copy is allocated before
 * the lock is taken.
 *
 * If flight != 0 the flight ends whether or not the entry is stored: its
 * waiters are returned as a malloc'd array in *waiters / *n_waiters (caller
 * frees; NULL/0 when none or the token is unknown, i.e. replaced or already
 * ended). waiters/n_waiters may be NULL when flight is 0.
 *
 * Returns 0 stored, 1 not stored, -EINVAL (d NULL or d->n > RC_MAX_DEPS),
 * -ENOMEM.
 */
__attribute__((warn_unused_result)) int rc_insert(struct rc_store *s, uint64_t flight,
                                                  uint64_t hash, const void *key, size_t key_len,
                                                  const void *data, size_t data_len,
                                                  const struct rc_deps *d, uint64_t expire_ns,
                                                  struct rc_waiter **waiters, size_t *n_waiters);
/* Ends a flight without storing (the query failed, the server went away):
 * returns its waiters like rc_insert. */
void rc_flight_abort(struct rc_store *s, uint64_t flight, struct rc_waiter **waiters,
                     size_t *n_waiters);

/*
 * rc_flush_all bumps the epoch and removes every entry; rc_flush_table bumps
 * table id and removes every entry that read it. Memory is freed at once
 * (referenced entries on their release), and fills in progress are refused
 * by the bump. Return the number of entries removed.
 */
size_t rc_flush_all(struct rc_store *s);
size_t rc_flush_table(struct rc_store *s, uint32_t id);
void rc_stats(struct rc_store *s, struct rc_stats *out);

#endif /* HELIOS_RCACHE_H */
