/*
 * Unit tests for the query-result cache storage (dataplane/pipeline/engine/rcache.c):
 * hits and key comparison, staleness by generation, epoch and TTL, the
 * exact byte accounting and its limit, LRU eviction and references,
 * refused fills, single-flight, the name table's overflow id, flushes, and
 * a multi-threaded hammer. Random inputs come from fixed seeds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/pipeline/engine/rcache.h"
#include "rng_testutil.h"

#define UNUSED __attribute__((unused))

#define NOW      UINT64_C(1000000000000)
#define FOREVER  UINT64_MAX
#define MB       (1024 * 1024)
#define NO_LIMIT 0 /* flight_max_ns */

static uint64_t hash_str(const char *k)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * UINT64_C(0x100000001b3);
	return h;
}

static struct rc_stats stats(struct rc_store *s)
{
	struct rc_stats st;
	rc_stats(s, &st);
	return st;
}

/* Deps on the given ids, snapshotted now. */
static struct rc_deps deps_of(struct rc_store *s, uint32_t n, const uint32_t *ids)
{
	struct rc_deps d;
	memset(&d, 0, sizeof(d));
	d.n = n;
	for (uint32_t i = 0; i < n; i++)
		d.ids[i] = ids[i];
	rc_deps_snapshot(s, &d);
	return d;
}

static int put_h(struct rc_store *s, uint64_t h, const char *key, const char *data,
                 const struct rc_deps *d, uint64_t expire)
{
	return rc_insert(s, 0, h, key, strlen(key), data, strlen(data), d, expire, NULL, NULL);
}

static int put(struct rc_store *s, const char *key, const char *data, const struct rc_deps *d)
{
	return put_h(s, hash_str(key), key, data, d, FOREVER);
}

static enum rc_look look_h(struct rc_store *s, uint64_t h, const char *key, uint64_t now,
                           struct rc_hit *hit)
{
	uint64_t fl = 0;
	return rc_lookup(s, h, key, strlen(key), now, false, NULL, NO_LIMIT, hit, &fl);
}

static enum rc_look look(struct rc_store *s, const char *key, struct rc_hit *hit)
{
	return look_h(s, hash_str(key), key, NOW, hit);
}

/* Looks key up and, on a hit, checks the data and releases it. */
static bool has(struct rc_store *s, const char *key, const char *want)
{
	struct rc_hit hit;
	if (look(s, key, &hit) != RC_HIT)
		return false;
	assert_int_equal(hit.len, strlen(want));
	assert_memory_equal(hit.data, want, hit.len);
	rc_release(s, hit.e);
	return true;
}

static size_t esize(uint32_t n_deps, const char *key, const char *data)
{
	return rc_entry_size(n_deps, strlen(key), strlen(data));
}

/* ---- Hits and keys ---- */

static void test_hit_returns_stored_bytes(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	assert_non_null(s);
	uint32_t t = rc_gen_id(s, "public.t");
	struct rc_deps d = deps_of(s, 1, &t);
	struct rc_hit hit;

	assert_int_equal(look(s, "q1", &hit), RC_MISS);
	assert_int_equal(put(s, "q1", "answer-bytes", &d), 0);
	assert_int_equal(look(s, "q1", &hit), RC_HIT);
	assert_int_equal(hit.len, 12);
	assert_memory_equal(hit.data, "answer-bytes", 12);
	rc_release(s, hit.e);

	struct rc_stats st = stats(s);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.stores, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, st.bucket_bytes + esize(1, "q1", "answer-bytes"));
	assert_int_equal(st.bucket_bytes, RC_BUCKETS_START * sizeof(void *));
	assert_string_equal(rc_look_str(RC_MISS_WAIT), "miss_wait");
	rc_store_free(s);
	rc_store_free(NULL);
}

static void test_keys_with_same_hash_compare_by_bytes(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_hit hit;

	assert_int_equal(put_h(s, 42, "a", "data-a", &d, FOREVER), 0);
	assert_int_equal(put_h(s, 42, "b", "data-b", &d, FOREVER), 0);
	assert_int_equal(put_h(s, 42, "ab", "data-ab", &d, FOREVER), 0);
	assert_int_equal(stats(s).entries, 3);

	const char *keys[] = {"a", "b", "ab"}, *want[] = {"data-a", "data-b", "data-ab"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(look_h(s, 42, keys[i], NOW, &hit), RC_HIT);
		assert_int_equal(hit.len, strlen(want[i]));
		assert_memory_equal(hit.data, want[i], hit.len);
		rc_release(s, hit.e);
	}
	assert_int_equal(look_h(s, 42, "c", NOW, &hit), RC_MISS);
	assert_int_equal(look_h(s, 42, "", NOW, &hit), RC_MISS);
	/* the same bytes under another hash are another key */
	assert_int_equal(look_h(s, 43, "a", NOW, &hit), RC_MISS);
	rc_store_free(s);
}

static void test_insert_replaces_entry_of_same_key(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	struct rc_deps d = deps_of(s, 0, NULL);

	assert_int_equal(put(s, "k", "old", &d), 0);
	assert_int_equal(put(s, "k", "newer", &d), 0);
	assert_true(has(s, "k", "newer"));
	struct rc_stats st = stats(s);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.bytes, st.bucket_bytes + esize(0, "k", "newer"));
	rc_store_free(s);
}

/* ---- Staleness ---- */

static void test_bump_of_dep_stales_entry_and_unrelated_bump_does_not(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	uint32_t ids[2] = {rc_gen_id(s, "orders"), rc_gen_id(s, "users")};
	uint32_t other = rc_gen_id(s, "audit");
	assert_int_not_equal(ids[0], RC_GEN_OVERFLOW);
	assert_int_not_equal(ids[0], ids[1]);
	assert_int_equal(rc_gen_id(s, "orders"), ids[0]);
	assert_int_not_equal(rc_gen_id(s, "Orders"), ids[0]); /* case-sensitive */

	struct rc_deps d = deps_of(s, 2, ids);
	assert_int_equal(put(s, "join", "rows", &d), 0);

	rc_gen_bump(s, other);
	assert_true(has(s, "join", "rows"));

	uint64_t g = rc_gen_get(s, ids[1]);
	rc_gen_bump(s, ids[1]);
	assert_int_equal(rc_gen_get(s, ids[1]), g + 1);
	assert_false(has(s, "join", "rows"));
	struct rc_stats st = stats(s);
	assert_int_equal(st.invalidated, 1);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, st.bucket_bytes);

	/* a fill snapshotted after the bump is current again */
	d = deps_of(s, 2, ids);
	assert_int_equal(put(s, "join", "rows2", &d), 0);
	assert_true(has(s, "join", "rows2"));
	rc_store_free(s);
}

static void test_epoch_bump_stales_every_entry(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	uint32_t t = rc_gen_id(s, "t");
	struct rc_deps d1 = deps_of(s, 1, &t), d0 = deps_of(s, 0, NULL);
	assert_int_equal(put(s, "a", "1", &d1), 0);
	assert_int_equal(put(s, "b", "2", &d0), 0);

	rc_epoch_bump(s);
	assert_false(has(s, "a", "1"));
	assert_false(has(s, "b", "2"));
	assert_int_equal(stats(s).invalidated, 2);
	rc_store_free(s);
}

static void test_expired_entry_not_returned(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_hit hit;
	uint64_t h = hash_str("k");

	assert_int_equal(put_h(s, h, "k", "v", &d, NOW + 100), 0);
	assert_int_equal(look_h(s, h, "k", NOW + 99, &hit), RC_HIT);
	rc_release(s, hit.e);
	assert_int_equal(look_h(s, h, "k", NOW + 100, &hit), RC_MISS);
	struct rc_stats st = stats(s);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.entries, 0);
	/* removed, not only hidden: an earlier time does not bring it back */
	assert_int_equal(look_h(s, h, "k", NOW, &hit), RC_MISS);
	rc_store_free(s);
}

static void test_insert_with_deps_moved_since_snapshot_is_refused(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	uint32_t t = rc_gen_id(s, "t");
	struct rc_deps d = deps_of(s, 1, &t);

	rc_gen_bump(s, t); /* a write committed while the query ran */
	assert_int_equal(put(s, "k", "v", &d), 1);
	d = deps_of(s, 1, &t);
	rc_epoch_bump(s); /* DDL while the query ran */
	assert_int_equal(put(s, "k", "v", &d), 1);
	d = deps_of(s, 1, &t);
	rc_flush_all(s);
	assert_int_equal(put(s, "k", "v", &d), 1);

	struct rc_stats st = stats(s);
	assert_int_equal(st.stale_fills, 3);
	assert_int_equal(st.stores, 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, st.bucket_bytes);
	rc_store_free(s);
}

static void test_insert_rejects_bad_deps(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, 64 * 1024);
	struct rc_deps d = deps_of(s, 0, NULL);
	d.n = RC_MAX_DEPS + 1;
	assert_int_equal(put(s, "k", "v", &d), -EINVAL);
	assert_int_equal(put(s, "k", "v", NULL), -EINVAL);
	assert_int_equal(stats(s).entries, 0);
	rc_store_free(s);
}

/* ---- Sizes and memory ---- */

static void test_entry_over_max_entry_not_stored_and_counted(void **state UNUSED)
{
	char data[301];
	memset(data, 'x', 300);
	data[300] = 0;
	size_t limit = esize(0, "k", data);
	struct rc_store *s = rc_store_new(MB, limit);
	struct rc_deps d = deps_of(s, 0, NULL);

	assert_int_equal(put(s, "k", data, &d), 0); /* exactly at the limit */
	assert_true(has(s, "k", data));
	data[299] = 0;
	assert_int_equal(put(s, "kk", data, &d), 0);
	data[299] = 'x';
	assert_int_equal(put(s, "kk", data, &d), 1); /* one byte over */
	struct rc_stats st = stats(s);
	assert_int_equal(st.too_large, 1);
	assert_int_equal(st.stores, 2);
	/* the refused fill left the previous entry of the key alone */
	data[299] = 0;
	assert_true(has(s, "kk", data));
	rc_store_free(s);
}

static void test_bytes_are_exact_sum_of_entries_and_buckets(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(64 * MB, MB);
	uint32_t ids[RC_MAX_DEPS];
	char key[32], data[600];
	size_t sum = 0;
	rng_state = 7;
	for (uint32_t i = 0; i < RC_MAX_DEPS; i++) {
		snprintf(key, sizeof(key), "t%u", i);
		ids[i] = rc_gen_id(s, key);
	}
	/* more entries than the initial buckets: the array grows and is counted */
	for (int i = 0; i < 3000; i++) {
		uint32_t n = (uint32_t)(rnd() % (RC_MAX_DEPS + 1));
		size_t len = rnd() % sizeof(data);
		memset(data, 'a' + i % 26, len);
		data[len] = 0;
		snprintf(key, sizeof(key), "key-%d", i);
		struct rc_deps d = deps_of(s, n, ids);
		assert_int_equal(put(s, key, data, &d), 0);
		sum += esize(n, key, data);
	}
	struct rc_stats st = stats(s);
	assert_int_equal(st.entries, 3000);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.bucket_bytes, 4096 * sizeof(void *));
	assert_int_equal(st.bytes, sum + st.bucket_bytes);
	struct rc_hit hit;
	assert_int_equal(look(s, "key-0", &hit), RC_HIT);
	rc_release(s, hit.e);
	assert_int_equal(rc_flush_all(s), 3000);
	st = stats(s);
	assert_int_equal(st.bytes, st.bucket_bytes);
	rc_store_free(s);
}

static void test_bucket_array_does_not_grow_past_max_bytes(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	struct rc_deps d = deps_of(s, 0, NULL);
	char key[32];
	for (int i = 0; i < RC_BUCKETS_START; i++) {
		snprintf(key, sizeof(key), "%06d", i);
		assert_int_equal(put(s, key, "", &d), 0);
	}
	struct rc_stats st = stats(s);
	assert_int_equal(st.bucket_bytes, RC_BUCKETS_START * sizeof(void *));
	/* room for one more entry but not for a doubled bucket array */
	rc_store_set_limits(s, st.bytes + esize(0, "999999", "") + 100, MB);
	assert_int_equal(put(s, "999999", "", &d), 0);
	st = stats(s);
	assert_int_equal(st.entries, RC_BUCKETS_START + 1);
	assert_int_equal(st.bucket_bytes, RC_BUCKETS_START * sizeof(void *));
	assert_true(st.bytes <= st.max_bytes);
	assert_true(has(s, "999999", ""));
	assert_true(has(s, "000000", ""));
	rc_store_free(s);
}

static void test_small_store_starts_with_small_bucket_array(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(4096, 4096);
	struct rc_stats st = stats(s);
	assert_true(st.bucket_bytes <= 4096 / 4);
	assert_int_equal(st.bytes, st.bucket_bytes);
	rc_store_free(s);
}

/* A store whose max_bytes holds exactly `fit` entries of key "kN" (one
 * digit) and data of 100 bytes, besides the bucket array. */
static struct rc_store *store_for(int fit, char *data)
{
	memset(data, 'd', 100);
	data[100] = 0;
	struct rc_store *s = rc_store_new(MB, MB);
	struct rc_stats st = stats(s);
	rc_store_set_limits(s, st.bucket_bytes + (size_t)fit * esize(0, "k0", data), MB);
	return s;
}

static void test_lru_evicts_least_recently_used_and_hit_refreshes(void **state UNUSED)
{
	char data[101];
	struct rc_store *s = store_for(3, data);
	struct rc_deps d = deps_of(s, 0, NULL);

	assert_int_equal(put(s, "k1", data, &d), 0);
	assert_int_equal(put(s, "k2", data, &d), 0);
	assert_int_equal(put(s, "k3", data, &d), 0);
	assert_true(has(s, "k1", data)); /* k2 is now the least recently used */
	assert_int_equal(put(s, "k4", data, &d), 0);

	assert_false(has(s, "k2", data));
	assert_true(has(s, "k1", data));
	assert_true(has(s, "k3", data));
	assert_true(has(s, "k4", data));
	struct rc_stats st = stats(s);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.bytes, st.max_bytes);
	rc_store_free(s);
}

static void test_referenced_entry_survives_flush_until_released(void **state UNUSED)
{
	char data[101];
	struct rc_store *s = store_for(3, data);
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_hit hit;

	assert_int_equal(put(s, "k1", data, &d), 0);
	assert_int_equal(look(s, "k1", &hit), RC_HIT);
	assert_int_equal(rc_flush_all(s), 1);

	struct rc_stats st = stats(s);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, st.bucket_bytes + esize(0, "k1", data)); /* still counted */
	assert_false(has(s, "k1", data));
	/* the bytes stay readable (ASan would report a use after free) */
	assert_int_equal(hit.len, 100);
	assert_memory_equal(hit.data, data, 100);
	/* and keep their room: only two more fit (the flush bumped the
	 * epoch, so fills snapshot again) */
	d = deps_of(s, 0, NULL);
	assert_int_equal(put(s, "k2", data, &d), 0);
	assert_int_equal(put(s, "k3", data, &d), 0);
	assert_int_equal(put(s, "k4", data, &d), 0);
	assert_int_equal(stats(s).entries, 2);

	rc_release(s, hit.e);
	st = stats(s);
	assert_int_equal(st.bytes, st.bucket_bytes + 2 * esize(0, "k1", data));
	rc_store_free(s);
}

static void test_eviction_skips_referenced_entry(void **state UNUSED)
{
	char data[101];
	struct rc_store *s = store_for(2, data);
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_hit hit;

	assert_int_equal(put(s, "k1", data, &d), 0);
	assert_int_equal(put(s, "k2", data, &d), 0);
	assert_int_equal(look(s, "k1", &hit), RC_HIT);
	assert_true(has(s, "k2", data)); /* k1 is the least recently used, but held */
	assert_int_equal(put(s, "k3", data, &d), 0);

	assert_false(has(s, "k2", data)); /* evicted instead */
	assert_true(has(s, "k1", data));
	assert_true(has(s, "k3", data));
	assert_memory_equal(hit.data, data, 100);
	rc_release(s, hit.e);
	struct rc_stats st = stats(s);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.bytes, st.max_bytes);
	rc_store_free(s);
}

static void test_insert_refused_when_only_referenced_entries_hold_the_room(void **state UNUSED)
{
	char data[101];
	struct rc_store *s = store_for(2, data);
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_hit h1, h2;

	assert_int_equal(put(s, "k1", data, &d), 0);
	assert_int_equal(put(s, "k2", data, &d), 0);
	assert_int_equal(look(s, "k1", &h1), RC_HIT);
	assert_int_equal(look(s, "k2", &h2), RC_HIT);
	assert_int_equal(put(s, "k3", data, &d), 1);

	struct rc_stats st = stats(s);
	assert_int_equal(st.no_room, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.entries, 2);
	assert_true(st.bytes <= st.max_bytes);
	rc_release(s, h1.e);
	assert_int_equal(put(s, "k3", data, &d), 0); /* k1 is free to go now */
	assert_false(has(s, "k1", data));
	rc_release(s, h2.e);
	rc_store_free(s);
}

static void test_set_limits_lowering_evicts_at_once(void **state UNUSED)
{
	char data[101];
	struct rc_store *s = store_for(4, data);
	struct rc_deps d = deps_of(s, 0, NULL);
	const char *keys[] = {"k1", "k2", "k3", "k4"};
	for (int i = 0; i < 4; i++)
		assert_int_equal(put(s, keys[i], data, &d), 0);
	assert_true(has(s, "k1", data)); /* order now, oldest first: k2 k3 k4 k1 */

	struct rc_stats st = stats(s);
	size_t one = esize(0, "k1", data);
	rc_store_set_limits(s, st.bucket_bytes + 2 * one + one / 2, 50);
	st = stats(s);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.bytes, st.bucket_bytes + 2 * one);
	assert_true(st.bytes <= st.max_bytes);
	assert_true(has(s, "k1", data));
	assert_true(has(s, "k4", data));
	/* the lowered max entry applies to new fills */
	assert_int_equal(put(s, "k5", data, &d), 1);
	assert_int_equal(stats(s).too_large, 1);
	rc_store_free(s);
}

static void test_bytes_never_exceed_max_across_random_workload(void **state UNUSED)
{
	enum { KEYS = 300, HELD = 8, TABLES = 6 };
	struct rc_store *s = rc_store_new(64 * 1024, 8 * 1024);
	uint32_t ids[TABLES];
	char name[16], key[32];
	static char data[10000];
	struct rc_hit held[HELD];
	int nheld = 0;
	uint64_t flights[4] = {0};
	rng_state = 12345;
	memset(data, 'z', sizeof(data));
	for (int i = 0; i < TABLES; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		ids[i] = rc_gen_id(s, name);
	}
	for (int op = 0; op < 50000; op++) {
		uint64_t r = rnd();
		snprintf(key, sizeof(key), "key-%u", (unsigned)(rnd() % KEYS));
		uint64_t h = hash_str(key);
		switch (r % 10) {
		case 0:
		case 1:
		case 2: {
			struct rc_hit hit;
			uint64_t fl = 0;
			struct rc_waiter w = {1, (uint64_t)op};
			enum rc_look l = rc_lookup(s, h, key, strlen(key), NOW + (uint64_t)op,
			                           r & 16, &w, 1000, &hit, &fl);
			if (l == RC_HIT) {
				if (nheld < HELD)
					held[nheld++] = hit;
				else
					rc_release(s, hit.e);
			} else if (l == RC_MISS_LEAD) {
				struct rc_waiter *ws;
				size_t nw;
				int slot = (int)(rnd() % 4);
				if (flights[slot]) {
					rc_flight_abort(s, flights[slot], &ws, &nw);
					free(ws);
				}
				flights[slot] = fl;
			}
			break;
		}
		case 3:
		case 4:
		case 5:
		case 6: {
			uint32_t n = (uint32_t)(rnd() % (TABLES + 1));
			size_t len = rnd() % 9000;
			struct rc_deps d = deps_of(s, n, ids);
			struct rc_waiter *ws = NULL;
			size_t nw = 0;
			int slot = (int)(rnd() % 4);
			int rc = rc_insert(s, flights[slot], h, key, strlen(key), data, len, &d,
			                   NOW + (uint64_t)op + rnd() % 2000, &ws, &nw);
			assert_true(rc == 0 || rc == 1);
			flights[slot] = 0;
			free(ws);
			break;
		}
		case 7:
			if (nheld) {
				int i = (int)(rnd() % (uint64_t)nheld);
				rc_release(s, held[i].e);
				held[i] = held[--nheld];
			}
			break;
		case 8:
			rc_gen_bump(s, ids[rnd() % TABLES]);
			break;
		default:
			if (r % 1000 == 9)
				rc_flush_table(s, ids[rnd() % TABLES]);
			else if (r % 1000 == 19) {
				/* references could hold more than a lowered limit */
				while (nheld)
					rc_release(s, held[--nheld].e);
				rc_store_set_limits(s, 16 * 1024 + rnd() % (64 * 1024), 8 * 1024);
			}
			break;
		}
		struct rc_stats st = stats(s);
		if (st.bytes > st.max_bytes)
			fail_msg("op %d: bytes %llu > max %llu", op, (unsigned long long)st.bytes,
			         (unsigned long long)st.max_bytes);
	}
	for (int i = 0; i < nheld; i++)
		rc_release(s, held[i].e);
	for (int i = 0; i < 4; i++) {
		struct rc_waiter *ws;
		size_t nw;
		rc_flight_abort(s, flights[i], &ws, &nw);
		free(ws);
	}
	struct rc_stats st = stats(s);
	assert_true(st.stores > 100);
	assert_true(st.evictions > 0);
	assert_int_equal(st.flights, 0);
	assert_int_equal(st.flight_bytes, 0);
	assert_int_equal(rc_flush_all(s), st.entries);
	st = stats(s);
	assert_int_equal(st.bytes, st.bucket_bytes);
	rc_store_free(s);
}

/* ---- Single-flight ---- */

static enum rc_look lead_look(struct rc_store *s, const char *key, uint64_t now, uint64_t client,
                              uint64_t max_ns, uint64_t *fl)
{
	struct rc_hit hit;
	struct rc_waiter w = {(int)(client % 4), client};
	*fl = 0;
	return rc_lookup(s, hash_str(key), key, strlen(key), now, true, &w, max_ns, &hit, fl);
}

static void test_single_flight_one_leader_and_waiters_woken_by_insert(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	uint32_t t = rc_gen_id(s, "t");
	uint64_t lead_fl, fl;

	assert_int_equal(lead_look(s, "q", NOW, 100, NO_LIMIT, &lead_fl), RC_MISS_LEAD);
	assert_int_not_equal(lead_fl, 0);
	struct rc_deps d = deps_of(s, 1, &t);
	struct rc_stats st = stats(s);
	assert_int_equal(st.flights, 1);
	assert_true(st.flight_bytes > 0);
	assert_int_equal(st.bytes, st.bucket_bytes + st.flight_bytes);

	for (uint64_t c = 1; c <= 49; c++) {
		assert_int_equal(lead_look(s, "q", NOW + c, c, NO_LIMIT, &fl), RC_MISS_WAIT);
		assert_int_equal(fl, 0);
	}
	/* another key is another flight */
	uint64_t other;
	assert_int_equal(lead_look(s, "q2", NOW, 500, NO_LIMIT, &other), RC_MISS_LEAD);
	assert_int_not_equal(other, lead_fl);
	st = stats(s);
	assert_int_equal(st.waits, 49);
	assert_int_equal(st.bytes, st.bucket_bytes + st.flight_bytes);

	struct rc_waiter *ws = NULL;
	size_t nw = 0;
	assert_int_equal(
	    rc_insert(s, lead_fl, hash_str("q"), "q", 1, "rows", 4, &d, FOREVER, &ws, &nw), 0);
	assert_int_equal(nw, 49);
	assert_non_null(ws);
	for (size_t i = 0; i < nw; i++) {
		assert_int_equal(ws[i].client_id, i + 1);
		assert_int_equal(ws[i].worker, (int)((i + 1) % 4));
	}
	free(ws);

	/* the waiters now hit */
	for (int c = 1; c <= 49; c++)
		assert_true(has(s, "q", "rows"));
	struct rc_waiter *ws2;
	rc_flight_abort(s, other, &ws2, &nw);
	assert_null(ws2);
	assert_int_equal(nw, 0);
	st = stats(s);
	assert_int_equal(st.flights, 0);
	assert_int_equal(st.flight_bytes, 0);
	rc_store_free(s);
}

static void test_flight_abort_returns_waiters_and_next_lookup_leads(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	uint64_t fl, fl2, w;

	assert_int_equal(lead_look(s, "q", NOW, 1, NO_LIMIT, &fl), RC_MISS_LEAD);
	assert_int_equal(lead_look(s, "q", NOW, 2, NO_LIMIT, &w), RC_MISS_WAIT);
	assert_int_equal(lead_look(s, "q", NOW, 3, NO_LIMIT, &w), RC_MISS_WAIT);

	struct rc_waiter *ws;
	size_t nw;
	rc_flight_abort(s, fl, &ws, &nw);
	assert_int_equal(nw, 2);
	assert_int_equal(ws[0].client_id, 2);
	assert_int_equal(ws[1].client_id, 3);
	free(ws);

	assert_int_equal(lead_look(s, "q", NOW, 2, NO_LIMIT, &fl2), RC_MISS_LEAD);
	assert_int_not_equal(fl2, fl);
	/* the ended token is unknown now: no waiters, and the entry is still
	 * stored since the data is valid */
	struct rc_deps d = deps_of(s, 0, NULL);
	assert_int_equal(rc_insert(s, fl, hash_str("q"), "q", 1, "v", 1, &d, FOREVER, &ws, &nw), 0);
	assert_null(ws);
	assert_int_equal(nw, 0);
	assert_int_equal(stats(s).flights, 1);
	rc_flight_abort(s, fl2, &ws, &nw);
	assert_int_equal(nw, 0);
	assert_true(has(s, "q", "v"));
	rc_flight_abort(s, 0, &ws, &nw); /* no flight at all */
	assert_int_equal(nw, 0);
	rc_store_free(s);
}

static void test_abandoned_flight_is_replaced_and_keeps_waiters(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	const uint64_t max_ns = 5000;
	uint64_t old_fl, new_fl, w;

	assert_int_equal(lead_look(s, "q", NOW, 1, max_ns, &old_fl), RC_MISS_LEAD);
	assert_int_equal(lead_look(s, "q", NOW + 10, 2, max_ns, &w), RC_MISS_WAIT);
	assert_int_equal(lead_look(s, "q", NOW + max_ns - 1, 3, max_ns, &w), RC_MISS_WAIT);
	assert_int_equal(lead_look(s, "q", NOW + max_ns, 4, max_ns, &new_fl), RC_MISS_LEAD);
	assert_int_not_equal(new_fl, old_fl);
	assert_int_equal(stats(s).flights_replaced, 1);
	assert_int_equal(stats(s).flights, 1);
	/* the new flight's age counts from its takeover */
	assert_int_equal(lead_look(s, "q", NOW + 2 * max_ns - 1, 5, max_ns, &w), RC_MISS_WAIT);

	/* the old leader finally answers: it learns of no waiters */
	struct rc_deps d = deps_of(s, 0, NULL);
	struct rc_waiter *ws;
	size_t nw;
	assert_int_equal(rc_insert(s, old_fl, hash_str("q"), "q", 1, "v", 1, &d, FOREVER, &ws, &nw),
	                 0);
	assert_int_equal(nw, 0);
	/* the new leader gets the old waiters and its own */
	rc_flight_abort(s, new_fl, &ws, &nw);
	assert_int_equal(nw, 3);
	assert_int_equal(ws[0].client_id, 2);
	assert_int_equal(ws[1].client_id, 3);
	assert_int_equal(ws[2].client_id, 5);
	free(ws);
	rc_store_free(s);
}

static void test_lookup_without_lead_never_joins_a_flight(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	uint64_t fl;
	struct rc_hit hit;
	assert_int_equal(lead_look(s, "q", NOW, 1, NO_LIMIT, &fl), RC_MISS_LEAD);
	assert_int_equal(look(s, "q", &hit), RC_MISS);
	uint64_t fl2 = 0;
	/* lead without a waiter to record is no lead */
	assert_int_equal(rc_lookup(s, hash_str("q"), "q", 1, NOW, true, NULL, 0, &hit, &fl2),
	                 RC_MISS);
	assert_int_equal(stats(s).waits, 0);
	struct rc_waiter *ws;
	size_t nw;
	rc_flight_abort(s, fl, &ws, &nw);
	assert_int_equal(nw, 0);
	rc_store_free(s);
}

static void test_full_flight_table_returns_plain_miss(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	static uint64_t fls[RC_MAX_FLIGHTS];
	char key[32];
	for (int i = 0; i < RC_MAX_FLIGHTS; i++) {
		snprintf(key, sizeof(key), "q%d", i);
		assert_int_equal(lead_look(s, key, NOW, 1, NO_LIMIT, &fls[i]), RC_MISS_LEAD);
		for (int j = 0; j < i; j += 97)
			assert_int_not_equal(fls[i], fls[j]);
	}
	uint64_t fl = 0;
	assert_int_equal(lead_look(s, "one-more", NOW, 1, NO_LIMIT, &fl), RC_MISS);
	assert_int_equal(fl, 0);
	/* joining an existing flight still works */
	assert_int_equal(lead_look(s, "q7", NOW, 2, NO_LIMIT, &fl), RC_MISS_WAIT);
	for (int i = 0; i < RC_MAX_FLIGHTS; i++) {
		struct rc_waiter *ws;
		size_t nw;
		rc_flight_abort(s, fls[i], &ws, &nw);
		assert_int_equal(nw, i == 7 ? 1 : 0);
		free(ws);
	}
	assert_int_equal(lead_look(s, "one-more", NOW, 1, NO_LIMIT, &fl), RC_MISS_LEAD);
	struct rc_stats st = stats(s);
	assert_int_equal(st.flights, 1);
	assert_int_equal(st.bytes, st.bucket_bytes + st.flight_bytes);
	rc_store_free(s);
}

/* ---- Names and flushes ---- */

static void test_full_name_table_maps_to_overflow_id_sharing_a_generation(void **state UNUSED)
{
	struct rc_store *s = rc_store_new_names(MB, MB, 4); /* ids 1..3 */
	uint32_t a = rc_gen_id(s, "a"), b = rc_gen_id(s, "b"), c = rc_gen_id(s, "c");
	assert_true(a && b && c && a != b && b != c && a != c);
	uint32_t x = rc_gen_id(s, "x"), y = rc_gen_id(s, "y");
	assert_int_equal(x, RC_GEN_OVERFLOW);
	assert_int_equal(y, RC_GEN_OVERFLOW);
	assert_int_equal(rc_gen_id(s, "b"), b); /* known names keep their ids */
	assert_int_equal(rc_gen_id(s, NULL), RC_GEN_OVERFLOW);
	assert_int_equal(stats(s).names, 3);

	struct rc_deps dx = deps_of(s, 1, &x), da = deps_of(s, 1, &a);
	assert_int_equal(put(s, "reads-x", "1", &dx), 0);
	assert_int_equal(put(s, "reads-a", "2", &da), 0);
	rc_gen_bump(s, y); /* a write to y */
	assert_false(has(s, "reads-x", "1"));
	assert_true(has(s, "reads-a", "2"));
	/* out of range ids behave as the overflow id */
	assert_int_equal(rc_gen_get(s, 1000), rc_gen_get(s, RC_GEN_OVERFLOW));
	rc_store_free(s);
}

static void test_default_name_table_fills_up_then_overflows(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	char name[32];
	for (uint32_t i = 1; i < RC_NAMES_DEFAULT; i++) {
		snprintf(name, sizeof(name), "schema.table_%u", i);
		assert_int_equal(rc_gen_id(s, name), i);
	}
	assert_int_equal(rc_gen_id(s, "one.more"), RC_GEN_OVERFLOW);
	assert_int_equal(rc_gen_id(s, "schema.table_777"), 777);
	assert_int_equal(stats(s).names, RC_NAMES_DEFAULT - 1);
	rc_store_free(s);
}

static void test_flush_table_removes_only_dependents(void **state UNUSED)
{
	struct rc_store *s = rc_store_new(MB, MB);
	uint32_t ids[3] = {rc_gen_id(s, "a"), rc_gen_id(s, "b"), rc_gen_id(s, "c")};
	struct rc_deps da = deps_of(s, 1, &ids[0]), dbc = deps_of(s, 2, &ids[1]),
	               dab = deps_of(s, 2, &ids[0]), dc = deps_of(s, 1, &ids[2]);
	struct rc_hit hit;
	assert_int_equal(put(s, "a", "1", &da), 0);
	assert_int_equal(put(s, "bc", "2", &dbc), 0);
	assert_int_equal(put(s, "ab", "3", &dab), 0);
	assert_int_equal(put(s, "c", "4", &dc), 0);
	assert_int_equal(look(s, "ab", &hit), RC_HIT);

	uint64_t g = rc_gen_get(s, ids[1]);
	assert_int_equal(rc_flush_table(s, ids[1]), 2); /* bc, ab */
	assert_int_equal(rc_gen_get(s, ids[1]), g + 1);
	struct rc_stats st = stats(s);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.invalidated, 0); /* removed by the flush, not found stale */
	assert_true(has(s, "a", "1"));
	assert_true(has(s, "c", "4"));
	assert_false(has(s, "bc", "2"));
	assert_memory_equal(hit.data, "3", 1);
	rc_release(s, hit.e);
	st = stats(s);
	assert_int_equal(st.bytes, st.bucket_bytes + esize(1, "a", "1") + esize(1, "c", "4"));
	/* a fill that read b while the flush ran is refused */
	assert_int_equal(put(s, "bc", "2", &dbc), 1);
	assert_int_equal(rc_flush_all(s), 2);
	assert_int_equal(stats(s).flushes, 2);
	rc_store_free(s);
}

/* ---- Threads ---- */

#define HAMMER_THREADS 4
#define HAMMER_KEYS    200
#define HAMMER_TABLES  8
#define HAMMER_HELD    4

struct hammer {
	struct rc_store *s;
	uint32_t ids[HAMMER_TABLES];
	uint64_t max_bytes;
	uint64_t stop_ns;
	uint32_t name_ids[300]; /* first id seen for "n<i>", by any thread */
};

struct hammer_thread {
	struct hammer *h;
	pthread_t tid;
	int no;
	uint64_t lookups, hits, waits, leads, woken, inserts, errors;
	char why[128];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Data: the key number and the generation of its table at snapshot time,
 * then padding. */
struct hammer_data {
	uint32_t key;
	uint64_t gen;
};

static void hammer_fail(struct hammer_thread *t, const char *why)
{
	if (!t->errors++)
		snprintf(t->why, sizeof(t->why), "%s", why);
}

static void *hammer_run(void *arg)
{
	struct hammer_thread *t = arg;
	struct hammer *h = t->h;
	struct rc_store *s = h->s;
	struct rc_hit held[HAMMER_HELD];
	int nheld = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t->no + 1);
	static const char pad[2048];
	uint8_t buf[sizeof(struct hammer_data) + sizeof(pad)];

	while (mono_ns() < h->stop_ns) {
		for (int burst = 0; burst < 64; burst++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			uint64_t r = x * UINT64_C(2685821657736338717);
			uint32_t k = (uint32_t)(r % HAMMER_KEYS);
			uint32_t table = k % HAMMER_TABLES;
			uint32_t key[2] = {k, 0xabcdef};
			uint64_t hash = k % 16; /* many collisions */
			uint64_t now = mono_ns();
			switch ((r >> 32) % 8) {
			case 0:
			case 1:
			case 2:
			case 3:
			case 4: {
				uint64_t before = rc_gen_get(s, h->ids[table]);
				struct rc_hit hit;
				uint64_t fl = 0;
				struct rc_waiter w = {t->no, r};
				/* a flight limit no run reaches: every flight is ended by
				 * its leader, so every wait is accounted for */
				enum rc_look l =
				    rc_lookup(s, hash, key, sizeof(key), now, (r >> 40) & 1, &w,
				              UINT64_C(60000000000), &hit, &fl);
				t->lookups++;
				if (l == RC_HIT) {
					struct hammer_data hd;
					t->hits++;
					if (hit.len < sizeof(hd)) {
						hammer_fail(t, "short hit");
						rc_release(s, hit.e);
						break;
					}
					memcpy(&hd, hit.data, sizeof(hd));
					if (hd.key != k)
						hammer_fail(t, "hit returned another key's data");
					/* valid at lookup, after `before` was read */
					if (hd.gen < before)
						hammer_fail(t, "hit older than a completed bump");
					if (nheld < HAMMER_HELD) {
						held[nheld++] = hit;
					} else {
						rc_release(s, hit.e);
					}
				} else if (l == RC_MISS_WAIT) {
					t->waits++;
				} else if (l == RC_MISS_LEAD || l == RC_MISS) {
					if (l == RC_MISS_LEAD)
						t->leads++;
					struct rc_deps d;
					memset(&d, 0, sizeof(d));
					d.n = 1;
					d.ids[0] = h->ids[table];
					rc_deps_snapshot(s, &d);
					struct hammer_data hd = {k, d.gens[0]};
					size_t len = sizeof(hd) + (size_t)((r >> 20) % sizeof(pad));
					memcpy(buf, &hd, sizeof(hd));
					memcpy(buf + sizeof(hd), pad, len - sizeof(hd));
					struct rc_waiter *ws = NULL;
					size_t nw = 0;
					if (((r >> 44) & 15) == 0) {
						rc_flight_abort(s, fl, &ws, &nw);
					} else {
						int rc = rc_insert(
						    s, fl, hash, key, sizeof(key), buf, len, &d,
						    now + (r >> 50) * 1000, &ws, &nw);
						t->inserts++;
						if (rc != 0 && rc != 1)
							hammer_fail(t, "insert error");
					}
					t->woken += nw;
					free(ws);
				}
				break;
			}
			case 5:
				if (nheld) {
					rc_release(s, held[--nheld].e);
				}
				break;
			case 6:
				rc_gen_bump(s, h->ids[table]);
				break;
			default:
				if (r % 8 == 1) {
					/* interning races the lock-free name lookups */
					char name[16];
					uint32_t j = (uint32_t)((r >> 24) % 300), seen = 0;
					snprintf(name, sizeof(name), "n%u", j);
					uint32_t id = rc_gen_id(s, name);
					if (id == RC_GEN_OVERFLOW)
						hammer_fail(t, "name table overflowed");
					if (!__atomic_compare_exchange_n(&h->name_ids[j], &seen, id,
					                                 false, __ATOMIC_RELAXED,
					                                 __ATOMIC_RELAXED) &&
					    seen != id)
						hammer_fail(t, "one name got two ids");
				} else if (r % 512 == 7)
					rc_flush_table(s, h->ids[table]);
				else if (r % 4096 == 8)
					rc_flush_all(s);
				else if (r % 4096 == 9)
					rc_epoch_bump(s);
				break;
			}
			struct rc_stats st;
			rc_stats(s, &st);
			if (st.bytes > h->max_bytes)
				hammer_fail(t, "bytes over max_bytes");
		}
	}
	while (nheld)
		rc_release(s, held[--nheld].e);
	return NULL;
}

static void test_threads_keep_bytes_under_max_and_stats_consistent(void **state UNUSED)
{
	struct hammer h;
	struct hammer_thread t[HAMMER_THREADS];
	char name[16];
	memset(&h, 0, sizeof(h));
	memset(t, 0, sizeof(t));
	h.max_bytes = 96 * 1024;
	h.s = rc_store_new(h.max_bytes, 4096);
	assert_non_null(h.s);
	for (int i = 0; i < HAMMER_TABLES; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		h.ids[i] = rc_gen_id(h.s, name);
	}
	h.stop_ns = mono_ns() + 500000000u;
	for (int i = 0; i < HAMMER_THREADS; i++) {
		t[i].h = &h;
		t[i].no = i;
		assert_int_equal(pthread_create(&t[i].tid, NULL, hammer_run, &t[i]), 0);
	}
	uint64_t lookups = 0, hits = 0, waits = 0, woken = 0, inserts = 0, leads = 0;
	for (int i = 0; i < HAMMER_THREADS; i++) {
		pthread_join(t[i].tid, NULL);
		if (t[i].errors)
			fail_msg("thread %d: %llu errors, first: %s", i,
			         (unsigned long long)t[i].errors, t[i].why);
		lookups += t[i].lookups;
		hits += t[i].hits;
		waits += t[i].waits;
		woken += t[i].woken;
		inserts += t[i].inserts;
		leads += t[i].leads;
	}
	struct rc_stats st = stats(h.s);
	printf("hammer: %llu lookups, %llu hits, %llu leads, %llu waits, %llu stores, "
	       "%llu evictions, %llu invalidated, %llu stale fills, %llu no room\n",
	       (unsigned long long)lookups, (unsigned long long)hits, (unsigned long long)leads,
	       (unsigned long long)waits, (unsigned long long)st.stores,
	       (unsigned long long)st.evictions, (unsigned long long)st.invalidated,
	       (unsigned long long)st.stale_fills, (unsigned long long)st.no_room);
	assert_true(lookups > 1000);
	assert_true(hits > 0);
	assert_int_equal(st.hits, hits);
	assert_int_equal(st.hits + st.misses, lookups);
	assert_int_equal(st.waits, waits);
	assert_int_equal(woken, waits); /* every waiter handed back to some leader */
	assert_int_equal(st.stores + st.too_large + st.stale_fills + st.no_room, inserts);
	assert_int_equal(st.flights, 0);
	assert_int_equal(st.flight_bytes, 0);
	assert_true(st.bytes <= st.max_bytes);
	assert_int_equal(rc_flush_all(h.s), st.entries);
	st = stats(h.s);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, st.bucket_bytes);
	uint32_t named = 0;
	for (int i = 0; i < 300; i++)
		named += h.name_ids[i] != 0;
	assert_int_equal(st.names, HAMMER_TABLES + named);
	rc_store_free(h.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit_returns_stored_bytes),
	    cmocka_unit_test(test_keys_with_same_hash_compare_by_bytes),
	    cmocka_unit_test(test_insert_replaces_entry_of_same_key),
	    cmocka_unit_test(test_bump_of_dep_stales_entry_and_unrelated_bump_does_not),
	    cmocka_unit_test(test_epoch_bump_stales_every_entry),
	    cmocka_unit_test(test_expired_entry_not_returned),
	    cmocka_unit_test(test_insert_with_deps_moved_since_snapshot_is_refused),
	    cmocka_unit_test(test_insert_rejects_bad_deps),
	    cmocka_unit_test(test_entry_over_max_entry_not_stored_and_counted),
	    cmocka_unit_test(test_bytes_are_exact_sum_of_entries_and_buckets),
	    cmocka_unit_test(test_bucket_array_does_not_grow_past_max_bytes),
	    cmocka_unit_test(test_small_store_starts_with_small_bucket_array),
	    cmocka_unit_test(test_lru_evicts_least_recently_used_and_hit_refreshes),
	    cmocka_unit_test(test_referenced_entry_survives_flush_until_released),
	    cmocka_unit_test(test_eviction_skips_referenced_entry),
	    cmocka_unit_test(test_insert_refused_when_only_referenced_entries_hold_the_room),
	    cmocka_unit_test(test_set_limits_lowering_evicts_at_once),
	    cmocka_unit_test(test_bytes_never_exceed_max_across_random_workload),
	    cmocka_unit_test(test_single_flight_one_leader_and_waiters_woken_by_insert),
	    cmocka_unit_test(test_flight_abort_returns_waiters_and_next_lookup_leads),
	    cmocka_unit_test(test_abandoned_flight_is_replaced_and_keeps_waiters),
	    cmocka_unit_test(test_lookup_without_lead_never_joins_a_flight),
	    cmocka_unit_test(test_full_flight_table_returns_plain_miss),
	    cmocka_unit_test(test_full_name_table_maps_to_overflow_id_sharing_a_generation),
	    cmocka_unit_test(test_default_name_table_fills_up_then_overflows),
	    cmocka_unit_test(test_flush_table_removes_only_dependents),
	    cmocka_unit_test(test_threads_keep_bytes_under_max_and_stats_consistent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
