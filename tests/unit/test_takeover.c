/*
 * Unit tests for the online restart's CLIENT record (dataplane/conn/
 * takeover.c): what the old process packs of an idle transaction-pooled
 * client reads back the same in the new one, and the reader refuses every
 * truncated, lengthened or foreign record instead of reading past it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/conn/conn_internal.h"

#define UNUSED __attribute__((unused))

static struct pgw_param params[] = {
    {"application_name", "app one"},
    {"DateStyle", "ISO, DMY"},
    {"options", "-c search_path=s1"},
};

/* An idle transaction-pooled client as the old process holds it. */
static void make_client(struct client *cl)
{
	memset(cl, 0, sizeof(*cl));
	snprintf(cl->user, sizeof(cl->user), "alice");
	snprintf(cl->database, sizeof(cl->database), "appdb");
	snprintf(cl->peer, sizeof(cl->peer), "127.0.0.1:40000");
	cl->txn = true;
	cl->stmt_mode = true;
	cl->cancel_pid = 0x40000007u;
	cl->cancel_key = 0xdeadbeefu;
	cl->auth_method = 3;
	cl->have_client_key = true;
	for (int i = 0; i < 32; i++)
		cl->client_key[i] = (uint8_t)(i * 7);
	cl->server_password = strdup("server-secret");
	snprintf(cl->jwt_tenant, sizeof(cl->jwt_tenant), "acme");
	cl->params = params;
	cl->n_params = 3;
	cl->signature = 0x1122334455667788ull;
	guc_init(&cl->want);
	assert_int_equal(guc_put(&cl->want, "application_name", "app one", false), 0);
	assert_int_equal(
	    guc_put(&cl->want, "statement_timeout", "SET statement_timeout = '5s'", true), 0);
	static const uint8_t body1[] = "SELECT $1::int\0\0\1\0\0\0\x17";
	static const uint8_t body2[] = "SELECT now()\0\0\0";
	assert_non_null(prep_client_put(&cl->prep, "s1", body1, sizeof(body1)));
	assert_non_null(prep_client_put(&cl->prep, "stmt two", body2, sizeof(body2)));
}

static void free_client(struct client *cl)
{
	free(cl->server_password);
	guc_free(&cl->want);
	prep_client_free(&cl->prep);
}

static void test_record_reads_back_what_was_packed(void **state UNUSED)
{
	struct client cl;
	make_client(&cl);
	uint8_t *rec;
	size_t len;
	assert_int_equal(tko_pack_client(&cl, &rec, &len), 0);
	struct cl_moved m;
	assert_int_equal(tko_parse_client(rec, len, &m), 0);
	assert_string_equal(m.user, "alice");
	assert_string_equal(m.database, "appdb");
	assert_string_equal(m.peer, "127.0.0.1:40000");
	assert_true(m.stmt_mode);
	assert_false(m.is_unix);
	assert_false(m.session);
	assert_int_equal(m.cancel_pid, 0x40000007u);
	assert_int_equal(m.cancel_key, 0xdeadbeefu);
	assert_int_equal(m.auth_method, 3);
	assert_true(m.have_client_key);
	assert_memory_equal(m.client_key, cl.client_key, 32);
	assert_null(m.password); /* none: not the empty string */
	assert_string_equal(m.server_password, "server-secret");
	assert_string_equal(m.jwt_tenant, "acme");
	assert_true(m.signature == 0x1122334455667788ull);
	assert_int_equal(m.n_params, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(m.pnames[i], params[i].name);
		assert_string_equal(m.pvalues[i], params[i].value);
	}
	assert_int_equal(m.n_want, 2);
	assert_string_equal(m.want[1].name, "statement_timeout");
	assert_string_equal(m.want[1].value, "SET statement_timeout = '5s'");
	assert_true(m.want[1].is_stmt);
	assert_false(m.want[0].is_stmt);
	assert_int_equal(m.n_prep, 2);
	int seen = 0;
	for (uint32_t i = 0; i < m.n_prep; i++) {
		const struct prep_stmt *s = prep_client_get(&cl.prep, m.prep[i].name);
		assert_non_null(s);
		assert_int_equal(m.prep[i].len, s->body_len);
		assert_memory_equal(m.prep[i].body, s->body, s->body_len);
		seen++;
	}
	assert_int_equal(seen, 2);
	cl_moved_free(&m);
	free(rec);
	free_client(&cl);
}

static void test_every_truncation_is_refused(void **state UNUSED)
{
	struct client cl;
	make_client(&cl);
	uint8_t *rec;
	size_t len;
	assert_int_equal(tko_pack_client(&cl, &rec, &len), 0);
	for (size_t n = 0; n < len; n++) {
		/* a copy of exactly n bytes: ASan sees any read past it */
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, rec, n);
		struct cl_moved m;
		assert_int_equal(tko_parse_client(cut, n, &m), -EPROTO);
		free(cut);
	}
	/* trailing bytes are refused too: the record is read to its end */
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, rec, len);
	longer[len] = 0;
	struct cl_moved m;
	assert_int_equal(tko_parse_client(longer, len + 1, &m), -EPROTO);
	free(longer);
	free(rec);
	free_client(&cl);
}

static void test_other_version_or_type_is_refused(void **state UNUSED)
{
	struct client cl;
	make_client(&cl);
	uint8_t *rec;
	size_t len;
	assert_int_equal(tko_pack_client(&cl, &rec, &len), 0);
	struct cl_moved m;
	rec[1] ^= 0x40; /* version (u32 after the type byte) */
	assert_int_equal(tko_parse_client(rec, len, &m), -EPROTO);
	rec[1] ^= 0x40;
	rec[0] = 'E';
	assert_int_equal(tko_parse_client(rec, len, &m), -EPROTO);
	rec[0] = 'C';
	assert_int_equal(tko_parse_client(rec, len, &m), 0);
	cl_moved_free(&m);
	free(rec);
	free_client(&cl);
}

static void test_string_without_its_nul_is_refused(void **state UNUSED)
{
	struct client cl;
	make_client(&cl);
	uint8_t *rec;
	size_t len;
	assert_int_equal(tko_pack_client(&cl, &rec, &len), 0);
	/* the first string (user) starts after type + version + its length:
	 * its NUL is at 1 + 4 + 4 + strlen("alice") */
	size_t nul = 1 + 4 + 4 + 5;
	assert_int_equal(rec[nul], 0);
	rec[nul] = 'x';
	struct cl_moved m;
	assert_int_equal(tko_parse_client(rec, len, &m), -EPROTO);
	free(rec);
	free_client(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_reads_back_what_was_packed),
	    cmocka_unit_test(test_every_truncation_is_refused),
	    cmocka_unit_test(test_other_version_or_type_is_refused),
	    cmocka_unit_test(test_string_without_its_nul_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
