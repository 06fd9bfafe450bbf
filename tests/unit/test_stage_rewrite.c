/*
 * Unit tests for the statement-rewrite stage (dataplane/pipeline/stage_rewrite.c)
 * with fake requests: a Query's text and a Parse's text are replaced by a
 * whole new message (the Parse keeps its statement name and parameter
 * types), a statement no rule changes is left alone, a message seen before
 * (again) or not whole is not touched, other messages pass, the stage
 * applies only to transaction/statement pooling clients with rules or a
 * tenant schema, and without rules
 * or schema prefixes it is not in the pipeline. Links no conn/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "dataplane/pipeline/engine/rewrite.h"
#include "dataplane/pipeline/pipeline.h"
#include "dataplane/policy/snap.h"

#define UNUSED __attribute__((unused))

static struct cfg *load(const char *text)
{
	struct cfg_error err;
	struct cfg *c = cfg_load_string("test", text, strlen(text), &err);
	if (!c)
		fail_msg("config refused: %s", err.msg);
	return c;
}

#define RULES                                                                                      \
	"[[rewrite_rules]]\nmatch = \"SELECT * FROM legacy_orders WHERE id = 1\"\n"                \
	"replace = \"SELECT * FROM orders WHERE order_id = $1\"\n"                                 \
	"[[nodes]]\nhost = \"db\"\n"

struct fixture {
	struct cfg *c;
	struct snap snap;
	struct pipeline *p;
	struct pipe_client pc;
	uint8_t msg[512];
};

static void fix_init(struct fixture *f, const char *toml, bool rules)
{
	memset(f, 0, sizeof(*f));
	f->c = load(toml);
	f->snap.cfg = f->c;
	if (rules) {
		char why[200];
		f->snap.rewrite = rw_rules_new();
		assert_int_equal(rw_rules_add(f->snap.rewrite, f->c->rewrite_rules[0].match,
		                              f->c->rewrite_rules[0].replace, why, sizeof(why)),
		                 0);
	}
	const struct pipe_stage *st[] = {&stage_rewrite};
	f->p = pipe_build(f->c, st, 1);
	pipe_client_init(&f->pc);
}

static void fix_fini(struct fixture *f)
{
	pipe_free(f->p);
	rw_rules_free(f->snap.rewrite);
	cfg_free(f->c);
}

static uint32_t put_msg(uint8_t *m, uint8_t t, const void *body, uint32_t blen)
{
	m[0] = t;
	uint32_t len = blen + 4;
	m[1] = (uint8_t)(len >> 24);
	m[2] = (uint8_t)(len >> 16);
	m[3] = (uint8_t)(len >> 8);
	m[4] = (uint8_t)len;
	memcpy(m + 5, body, blen);
	return blen + 5;
}

static void fake_req(struct fixture *f, struct req *r, uint32_t total)
{
	memset(r, 0, sizeof(*r));
	r->snap = &f->snap;
	r->user = "u";
	r->database = "db";
	r->pc = &f->pc;
	r->type = f->msg[0];
	r->msg = f->msg;
	r->msg_len = total;
	r->whole = true;
}

static void test_query_text_is_replaced(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, RULES, true);
	assert_true(pipe_has(f.p, PIPE_AT_MSG));
	assert_true(f.p->replaces);
	const char sql[] = "SELECT * FROM legacy_orders WHERE id = 42";
	uint32_t n = put_msg(f.msg, 'Q', sql, sizeof(sql));
	struct req r;
	fake_req(&f, &r, n);
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_non_null(r.replace);
	const char want[] = "SELECT * FROM orders WHERE order_id = 42";
	assert_int_equal(r.replace_len, 5 + sizeof(want));
	assert_int_equal(r.replace[0], 'Q');
	assert_int_equal(((uint32_t)r.replace[1] << 24 | (uint32_t)r.replace[2] << 16 |
	                  (uint32_t)r.replace[3] << 8 | r.replace[4]),
	                 sizeof(want) + 4);
	assert_memory_equal(r.replace + 5, want, sizeof(want));
	free(r.replace);
	fix_fini(&f);
}

static void test_parse_keeps_its_name_and_parameter_types(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, RULES, true);
	uint8_t body[200];
	size_t k = 0;
	memcpy(body, "s1", 3);
	k += 3;
	const char sql[] = "SELECT * FROM legacy_orders WHERE id = 7";
	memcpy(body + k, sql, sizeof(sql));
	k += sizeof(sql);
	const uint8_t types[] = {0, 1, 0, 0, 0, 23}; /* one parameter type: int4 */
	memcpy(body + k, types, sizeof(types));
	k += sizeof(types);
	uint32_t n = put_msg(f.msg, 'P', body, (uint32_t)k);
	struct req r;
	fake_req(&f, &r, n);
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_non_null(r.replace);
	const char want[] = "SELECT * FROM orders WHERE order_id = 7";
	assert_int_equal(r.replace_len, 5 + 3 + sizeof(want) + sizeof(types));
	assert_memory_equal(r.replace + 5, "s1", 3);
	assert_memory_equal(r.replace + 8, want, sizeof(want));
	assert_memory_equal(r.replace + 8 + sizeof(want), types, sizeof(types));
	free(r.replace);
	fix_fini(&f);
}

static void test_unmatched_seen_or_partial_messages_are_left_alone(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, RULES, true);
	struct req r;
	const char other[] = "SELECT 1";
	uint32_t n = put_msg(f.msg, 'Q', other, sizeof(other));
	fake_req(&f, &r, n);
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_null(r.replace);

	const char sql[] = "SELECT * FROM legacy_orders WHERE id = 1";
	n = put_msg(f.msg, 'Q', sql, sizeof(sql));
	fake_req(&f, &r, n);
	r.again = true; /* rewritten already: never twice */
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_null(r.replace);

	fake_req(&f, &r, n);
	r.whole = false; /* a large message streamed through */
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_null(r.replace);

	n = put_msg(f.msg, 'B', "\0s1\0\0\0\0\0\0\0", 10);
	fake_req(&f, &r, n);
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_null(r.replace);
	fix_fini(&f);
}

static void test_tenant_schema_prefix_qualifies_tables(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f,
	         "[[tenants]]\nid = \"a\"\nschema_prefix = \"tenant_a\"\ndatabases = [\"da\"]\n"
	         "users = []\n[[tenants]]\nid = \"b\"\ndatabases = [\"dbb\"]\nusers = []\n"
	         "[[nodes]]\nhost = \"db\"\n",
	         false);
	assert_true(pipe_has(f.p, PIPE_AT_MSG));
	const struct cfg_tenant *ta = &f.c->tenants[0], *tb = &f.c->tenants[1];

	/* applies to tenant a's clients only: b's run from the received chunk */
	struct req r;
	memset(&r, 0, sizeof(r));
	r.snap = &f.snap;
	r.mode = PIPE_MODE_TXN;
	r.tenant_cfg = tb;
	pipe_client_start(f.p, &f.pc, &r);
	assert_false(f.pc.buffered);
	assert_false(f.pc.active[PIPE_AT_MSG]);
	r.tenant_cfg = ta;
	pipe_client_start(f.p, &f.pc, &r);
	assert_true(f.pc.buffered);
	assert_true(f.pc.active[PIPE_AT_MSG]);
	/* session pooling is not rewritten (docs/rewriting.md) */
	r.mode = PIPE_MODE_SESSION;
	struct pipe_client sess;
	pipe_client_init(&sess);
	pipe_client_start(f.p, &sess, &r);
	assert_false(sess.buffered);
	assert_false(sess.active[PIPE_AT_MSG]);

	const char sql[] = "SELECT * FROM users";
	uint32_t n = put_msg(f.msg, 'Q', sql, sizeof(sql));
	fake_req(&f, &r, n);
	r.tenant_cfg = ta;
	assert_int_equal(pipe_run(f.p, PIPE_AT_MSG, &r), PIPE_CONTINUE);
	assert_non_null(r.replace);
	assert_string_equal((const char *)r.replace + 5, "SELECT * FROM tenant_a.users");
	free(r.replace);
	fix_fini(&f);
}

static void test_no_rules_no_prefix_no_stage(void **state UNUSED)
{
	struct fixture f;
	fix_init(&f, "[[nodes]]\nhost = \"db\"\n", false);
	assert_false(pipe_has(f.p, PIPE_AT_MSG));
	assert_false(f.p->replaces);
	fix_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_query_text_is_replaced),
	    cmocka_unit_test(test_parse_keeps_its_name_and_parameter_types),
	    cmocka_unit_test(test_unmatched_seen_or_partial_messages_are_left_alone),
	    cmocka_unit_test(test_tenant_schema_prefix_qualifies_tables),
	    cmocka_unit_test(test_no_rules_no_prefix_no_stage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
