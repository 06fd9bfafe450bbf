/*
 * Unit tests for the online restart's records (dataplane/conn/
 * takeover_rec.c): what the old process packs of an idle client or an idle
 * pooled server reads back the same in the new one, and the reader refuses
 * every truncated, lengthened or foreign record instead of reading past it.
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
#include "dataplane/conn/takeover_rec.h"

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

/* An idle transaction-pooling server with settings applied and statements
 * prepared there. */
static void make_server(struct server *sv)
{
	memset(sv, 0, sizeof(*sv));
	snprintf(sv->node_host, sizeof(sv->node_host), "10.0.0.5");
	sv->node_port = 5433;
	snprintf(sv->user, sizeof(sv->user), "alice");
	snprintf(sv->database, sizeof(sv->database), "appdb");
	sv->backend_pid = 4242;
	sv->backend_key = 0x5151u;
	sv->signature = 0xabcdef0123456789ull;
	sv->last_client = 17;
	sv->txn = true;
	conn_now(&sv->created);
	sv->param_name[0] = "server_version";
	sv->param_value[0] = "15.4";
	sv->n_params = 1;
	guc_init(&sv->applied);
	assert_int_equal(guc_put(&sv->applied, "timezone", "UTC", false), 0);
	prep_server_init(&sv->prep, 8);
	uint64_t ev;
	assert_false(prep_server_add(&sv->prep, 0x1111222233334444ull, &ev));
	assert_false(prep_server_add(&sv->prep, 0x5555666677778888ull, &ev));
}

static void test_server_record_reads_back_and_refuses_truncation(void **state UNUSED)
{
	struct server sv;
	make_server(&sv);
	struct tko_wbuf b = {0};
	assert_int_equal(tko_pack_server_into(&sv, "primary", &b), 0);
	struct sv_moved m;
	assert_int_equal(tko_parse_server(b.p, b.len, &m), 0);
	assert_string_equal(m.node, "primary");
	assert_string_equal(m.host, "10.0.0.5");
	assert_int_equal(m.port, 5433);
	assert_string_equal(m.user, "alice");
	assert_string_equal(m.database, "appdb");
	assert_int_equal(m.backend_pid, 4242);
	assert_int_equal(m.backend_key, 0x5151u);
	assert_true(m.signature == 0xabcdef0123456789ull);
	assert_true(m.served);
	assert_true(m.txn);
	assert_int_equal(m.n_params, 1);
	assert_string_equal(m.pvalues[0], "15.4");
	assert_int_equal(m.n_applied, 1);
	assert_string_equal(m.applied[0].name, "timezone");
	assert_int_equal(m.n_keys, 2);
	assert_true(m.keys[0] == 0x1111222233334444ull && m.keys[1] == 0x5555666677778888ull);
	sv_moved_free(&m);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		memcpy(cut, b.p, n);
		assert_int_equal(tko_parse_server(cut, n, &m), -EPROTO);
		free(cut);
	}
	b.p[0] = 'C'; /* a CLIENT record is not a server's */
	assert_int_equal(tko_parse_server(b.p, b.len, &m), -EPROTO);
	free(b.p);
	guc_free(&sv.applied);
	prep_server_free(&sv.prep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_reads_back_what_was_packed),
	    cmocka_unit_test(test_every_truncation_is_refused),
	    cmocka_unit_test(test_other_version_or_type_is_refused),
	    cmocka_unit_test(test_string_without_its_nul_is_refused),
	    cmocka_unit_test(test_server_record_reads_back_and_refuses_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
