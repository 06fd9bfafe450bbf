/*
 * Unit tests for the prepared statement maps of transaction pooling
 * (dataplane/conn/prep.c): statement keys and server-side names, a
 * client's name -> statement map, and a server's LRU set of keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/conn/prep.h"

#define UNUSED __attribute__((unused))

/* A Parse body after the statement name: query, NUL, int16 count of
 * parameter types, int32 type OIDs (big endian). Returns its length. */
static uint32_t parse_body(uint8_t *out, size_t cap, const char *query, const uint32_t *oids,
                           uint16_t n)
{
	size_t q = strlen(query) + 1;
	size_t len = q + 2 + 4 * (size_t)n;
	assert_true(len <= cap);
	memcpy(out, query, q);
	out[q] = (uint8_t)(n >> 8);
	out[q + 1] = (uint8_t)n;
	for (uint16_t i = 0; i < n; i++) {
		uint8_t *p = out + q + 2 + 4 * i;
		p[0] = (uint8_t)(oids[i] >> 24);
		p[1] = (uint8_t)(oids[i] >> 16);
		p[2] = (uint8_t)(oids[i] >> 8);
		p[3] = (uint8_t)oids[i];
	}
	return (uint32_t)len;
}

/* ---- keys and server-side names ---- */

static void test_key_is_stable_for_the_same_text_and_types(void **state UNUSED)
{
	uint8_t a[256], b[256];
	const uint32_t int4[] = {23};
	uint32_t la = parse_body(a, sizeof(a), "SELECT $1", int4, 1);
	/* another buffer with the same bytes: the key depends on content only */
	uint32_t lb = parse_body(b + 3, sizeof(b) - 3, "SELECT $1", int4, 1);
	assert_int_equal(la, lb);
	assert_true(prep_key(a, la) == prep_key(b + 3, lb));
	assert_true(prep_key(a, la) == prep_key(a, la));
}

static void test_key_differs_for_other_text_or_types(void **state UNUSED)
{
	uint8_t buf[256];
	const uint32_t int4[] = {23}, int8[] = {20}, two[] = {23, 23};
	uint64_t base = prep_key(buf, parse_body(buf, sizeof(buf), "SELECT $1", int4, 1));

	uint64_t text = prep_key(buf, parse_body(buf, sizeof(buf), "SELECT $2", int4, 1));
	uint64_t type = prep_key(buf, parse_body(buf, sizeof(buf), "SELECT $1", int8, 1));
	uint64_t untyped = prep_key(buf, parse_body(buf, sizeof(buf), "SELECT $1", NULL, 0));
	uint64_t more = prep_key(buf, parse_body(buf, sizeof(buf), "SELECT $1", two, 2));
	assert_true(text != base);
	assert_true(type != base);
	assert_true(untyped != base);
	assert_true(more != base);
	assert_true(type != text);
	assert_true(untyped != more);

	/* a prefix of the same body is another statement */
	uint32_t len = parse_body(buf, sizeof(buf), "SELECT $1", int4, 1);
	assert_true(prep_key(buf, len - 1) != prep_key(buf, len));
	assert_true(prep_key(buf, 0) != prep_key(buf, 1));
}

static void test_server_name_is_hp_and_16_lower_hex_digits(void **state UNUSED)
{
	char name[PREP_SERVER_NAME_LEN];
	prep_server_name(0x0123456789abcdefull, name);
	assert_string_equal(name, "hp_0123456789abcdef");
	prep_server_name(1, name);
	assert_string_equal(name, "hp_0000000000000001");
	prep_server_name(UINT64_MAX, name);
	assert_string_equal(name, "hp_ffffffffffffffff");
	assert_int_equal(strlen(name), PREP_SERVER_NAME_LEN - 1);

	uint8_t buf[64];
	const uint32_t int4[] = {23};
	uint32_t len = parse_body(buf, sizeof(buf), "SELECT $1", int4, 1);
	prep_server_name(prep_key(buf, len), name);
	assert_int_equal(strlen(name), 19);
	assert_memory_equal(name, "hp_", 3);
	for (int i = 3; i < 19; i++)
		assert_non_null(strchr("0123456789abcdef", name[i]));
}

/* ---- a client's statements ---- */

static void test_client_put_copies_body_and_derives_key_and_name(void **state UNUSED)
{
	struct prep_client pc = {0};
	uint8_t buf[64];
	char sname[PREP_SERVER_NAME_LEN];
	const uint32_t int4[] = {23};
	uint32_t len = parse_body(buf, sizeof(buf), "SELECT $1", int4, 1);

	assert_null(prep_client_get(&pc, "s1")); /* never used */
	prep_client_del(&pc, "s1");

	struct prep_stmt *s = prep_client_put(&pc, "s1", buf, len);
	assert_non_null(s);
	assert_int_equal(pc.count, 1);
	assert_string_equal(s->name, "s1");
	assert_int_equal(s->body_len, len);
	assert_ptr_not_equal(s->body, buf);
	assert_memory_equal(s->body, buf, len);
	assert_true(s->key == prep_key(buf, len));
	prep_server_name(s->key, sname);
	assert_string_equal(s->sname, sname);

	memset(buf, 0, sizeof(buf)); /* the caller's buffer is reused */
	assert_ptr_equal(prep_client_get(&pc, "s1"), s);
	assert_memory_equal(s->body, "SELECT $1", 10);
	assert_null(prep_client_get(&pc, "s2"));
	assert_null(prep_client_get(&pc, "S1")); /* statement names are case-sensitive */

	/* the unnamed statement is a name like any other here */
	assert_non_null(prep_client_put(&pc, "", buf, 0));
	assert_int_equal(prep_client_get(&pc, "")->body_len, 0);
	assert_int_equal(pc.count, 2);
	prep_client_free(&pc);
	assert_int_equal(pc.count, 0);
	assert_null(pc.buckets);
}

static void test_client_put_of_a_known_name_replaces_and_frees_it(void **state UNUSED)
{
	struct prep_client pc = {0};
	uint8_t a[64], b[64];
	const uint32_t int4[] = {23};
	uint32_t la = parse_body(a, sizeof(a), "SELECT 1", NULL, 0);
	uint32_t lb = parse_body(b, sizeof(b), "SELECT $1 + 1", int4, 1);

	assert_non_null(prep_client_put(&pc, "s1", a, la));
	assert_non_null(prep_client_put(&pc, "other", a, la));
	struct prep_stmt *s = prep_client_put(&pc, "s1", b, lb);
	assert_non_null(s);
	/* one entry for s1, with the new statement; the old one is freed
	 * (LeakSanitizer reports it otherwise) */
	assert_int_equal(pc.count, 2);
	assert_ptr_equal(prep_client_get(&pc, "s1"), s);
	assert_int_equal(s->body_len, lb);
	assert_memory_equal(s->body, b, lb);
	assert_true(s->key == prep_key(b, lb));
	assert_int_equal(prep_client_get(&pc, "other")->body_len, la);

	prep_client_del(&pc, "s1");
	assert_null(prep_client_get(&pc, "s1"));
	assert_int_equal(pc.count, 1);
	prep_client_free(&pc);
}

static void test_client_del_removes_one_name_only(void **state UNUSED)
{
	struct prep_client pc = {0};
	uint8_t buf[64];
	uint32_t len = parse_body(buf, sizeof(buf), "SELECT 1", NULL, 0);
	assert_non_null(prep_client_put(&pc, "a", buf, len));
	assert_non_null(prep_client_put(&pc, "b", buf, len));
	assert_non_null(prep_client_put(&pc, "c", buf, len));

	prep_client_del(&pc, "missing");
	assert_int_equal(pc.count, 3);
	prep_client_del(&pc, "b");
	assert_int_equal(pc.count, 2);
	assert_null(prep_client_get(&pc, "b"));
	assert_non_null(prep_client_get(&pc, "a"));
	assert_non_null(prep_client_get(&pc, "c"));
	prep_client_del(&pc, "b"); /* twice */
	assert_int_equal(pc.count, 2);
	prep_client_free(&pc);
}

static void test_client_clear_drops_all_and_stays_usable(void **state UNUSED)
{
	struct prep_client pc = {0};
	uint8_t buf[64];
	uint32_t len = parse_body(buf, sizeof(buf), "SELECT 1", NULL, 0);
	assert_non_null(prep_client_put(&pc, "a", buf, len));
	assert_non_null(prep_client_put(&pc, "b", buf, len));

	prep_client_clear(&pc);
	assert_int_equal(pc.count, 0);
	assert_null(prep_client_get(&pc, "a"));
	assert_null(prep_client_get(&pc, "b"));

	assert_non_null(prep_client_put(&pc, "a", buf, len));
	assert_int_equal(pc.count, 1);
	assert_non_null(prep_client_get(&pc, "a"));
	prep_client_free(&pc);
}

static void test_client_keeps_a_thousand_names_apart(void **state UNUSED)
{
	struct prep_client pc = {0};
	char name[32], query[64];
	uint8_t buf[128];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(query, sizeof(query), "SELECT %d", i);
		uint32_t len = parse_body(buf, sizeof(buf), query, NULL, 0);
		assert_non_null(prep_client_put(&pc, name, buf, len));
	}
	assert_int_equal(pc.count, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		snprintf(query, sizeof(query), "SELECT %d", i);
		const struct prep_stmt *s = prep_client_get(&pc, name);
		if (!s)
			fail_msg("%s is missing", name);
		assert_string_equal(s->name, name);
		assert_string_equal((const char *)s->body, query);
	}
	for (int i = 1; i < 1000; i += 2) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		prep_client_del(&pc, name);
	}
	assert_int_equal(pc.count, 500);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		if ((prep_client_get(&pc, name) != NULL) != (i % 2 == 0))
			fail_msg("%s: wrong presence after deleting the odd ones", name);
	}
	prep_client_free(&pc);
}

/* ---- a server's statements ---- */

static void test_server_add_has_forget(void **state UNUSED)
{
	struct prep_server ps;
	uint64_t evicted = 0xdead;
	prep_server_init(&ps, 4);
	assert_false(prep_server_has(&ps, 1)); /* nothing allocated yet */
	prep_server_forget(&ps, 1);

	assert_false(prep_server_add(&ps, 1, &evicted));
	assert_false(prep_server_add(&ps, 2, &evicted));
	assert_false(prep_server_add(&ps, 3, &evicted));
	assert_true(evicted == 0xdead); /* nothing evicted, nothing written */
	assert_int_equal(ps.n, 3);
	assert_true(prep_server_has(&ps, 1));
	assert_true(prep_server_has(&ps, 2));
	assert_true(prep_server_has(&ps, 3));
	assert_false(prep_server_has(&ps, 4));

	prep_server_forget(&ps, 1);
	assert_int_equal(ps.n, 2);
	assert_false(prep_server_has(&ps, 1));
	assert_true(prep_server_has(&ps, 2));
	assert_true(prep_server_has(&ps, 3));
	prep_server_forget(&ps, 42);
	assert_int_equal(ps.n, 2);

	/* a forgotten slot is free again: two more fit without eviction */
	assert_false(prep_server_add(&ps, 4, &evicted));
	assert_false(prep_server_add(&ps, 5, &evicted));
	assert_true(evicted == 0xdead);
	assert_int_equal(ps.n, 4);
	prep_server_free(&ps);
}

static void test_server_at_cap_evicts_and_reports_the_oldest(void **state UNUSED)
{
	struct prep_server ps;
	uint64_t evicted = 0;
	prep_server_init(&ps, 3);
	assert_false(prep_server_add(&ps, 10, &evicted));
	assert_false(prep_server_add(&ps, 20, &evicted));
	assert_false(prep_server_add(&ps, 30, &evicted));

	assert_true(prep_server_add(&ps, 40, &evicted));
	assert_true(evicted == 10);
	assert_true(prep_server_add(&ps, 50, &evicted));
	assert_true(evicted == 20);
	assert_int_equal(ps.n, 3);
	assert_false(prep_server_has(&ps, 10));
	assert_false(prep_server_has(&ps, 20));
	assert_true(prep_server_has(&ps, 30));
	assert_true(prep_server_has(&ps, 40));
	assert_true(prep_server_has(&ps, 50));
	prep_server_free(&ps);
}

static void test_server_has_refreshes_use_so_lru_is_evicted(void **state UNUSED)
{
	struct prep_server ps;
	uint64_t evicted = 0;
	prep_server_init(&ps, 3);
	assert_false(prep_server_add(&ps, 10, &evicted));
	assert_false(prep_server_add(&ps, 20, &evicted));
	assert_false(prep_server_add(&ps, 30, &evicted));

	/* 10 is the oldest added but used last: 20 goes first, then 30 */
	assert_true(prep_server_has(&ps, 10));
	assert_true(prep_server_add(&ps, 40, &evicted));
	assert_true(evicted == 20);
	assert_true(prep_server_add(&ps, 50, &evicted));
	assert_true(evicted == 30);
	/* now 10, 40, 50 by age of use; using 10 and 40 leaves 50 */
	assert_true(prep_server_has(&ps, 10));
	assert_true(prep_server_has(&ps, 40));
	assert_true(prep_server_add(&ps, 60, &evicted));
	assert_true(evicted == 50);
	/* a failed lookup refreshes nothing: 10 is the least recent now */
	assert_false(prep_server_has(&ps, 50));
	assert_true(prep_server_add(&ps, 70, &evicted));
	assert_true(evicted == 10);
	prep_server_free(&ps);
}

static void test_server_clear_forgets_all_keys(void **state UNUSED)
{
	struct prep_server ps;
	uint64_t evicted = 0xdead;
	prep_server_init(&ps, 2);
	assert_false(prep_server_add(&ps, 1, &evicted));
	assert_false(prep_server_add(&ps, 2, &evicted));

	prep_server_clear(&ps);
	assert_int_equal(ps.n, 0);
	assert_false(prep_server_has(&ps, 1));
	assert_false(prep_server_has(&ps, 2));
	/* the full capacity is free again, and the old keys are not evicted */
	assert_false(prep_server_add(&ps, 3, &evicted));
	assert_false(prep_server_add(&ps, 4, &evicted));
	assert_true(evicted == 0xdead);
	assert_true(prep_server_add(&ps, 5, &evicted));
	assert_true(evicted == 3);
	prep_server_free(&ps);
	assert_int_equal(ps.cap, 0);
	assert_null(ps.keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_is_stable_for_the_same_text_and_types),
	    cmocka_unit_test(test_key_differs_for_other_text_or_types),
	    cmocka_unit_test(test_server_name_is_hp_and_16_lower_hex_digits),
	    cmocka_unit_test(test_client_put_copies_body_and_derives_key_and_name),
	    cmocka_unit_test(test_client_put_of_a_known_name_replaces_and_frees_it),
	    cmocka_unit_test(test_client_del_removes_one_name_only),
	    cmocka_unit_test(test_client_clear_drops_all_and_stays_usable),
	    cmocka_unit_test(test_client_keeps_a_thousand_names_apart),
	    cmocka_unit_test(test_server_add_has_forget),
	    cmocka_unit_test(test_server_at_cap_evicts_and_reports_the_oldest),
	    cmocka_unit_test(test_server_has_refreshes_use_so_lru_is_evicted),
	    cmocka_unit_test(test_server_clear_forgets_all_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
