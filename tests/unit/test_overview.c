/*
 * Unit tests for common/overview: the /api/overview document parsed back
 * with jansson (statement texts with quotes, backslashes, control
 * characters, markup and bytes that are not UTF-8 come back as the same
 * text, or with U+FFFD for the bad bytes), the acknowledgement lists, the
 * totals over two data planes, the pool wait p99 from a histogram, and the
 * page's files (served, and naming no URL outside the process).
 */
#include <math.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/overview.h"

static const char ODD_SQL[] = "SELECT $1 AS \"</script><img src=x onerror=alert(1)>\" -- \\ "
                              "\"\" \t\n\r\x01 \xc3\xa9\xe4\xb8\xad";
/* invalid UTF-8: a lone continuation byte and a truncated sequence */
static const char BAD_UTF8[] = "SELECT \x80 x \xe4\xb8";

static double bounds[3] = {0.001, 0.01, 0.1};
static uint64_t counts[4] = {90, 9, 1, 0};

static json_t *build(const struct overview_info *in)
{
	struct sbuf out;
	json_error_t err;

	sbuf_init(&out);
	overview_json(&out, in);
	assert_false(out.oom);
	json_t *root = json_loadb(out.p, out.len, 0, &err);
	if (!root)
		fail_msg("not JSON: %s at %d: %.*s", err.text, err.position, (int)out.len, out.p);
	sbuf_free(&out);
	return root;
}

struct two {
	Helios__Histogram wait;
	Helios__PoolStats pool;
	Helios__PoolStats *pools[1];
	Helios__QueryStat q1, q2;
	Helios__QueryStat *queries[2];
	Helios__CacheStats cache_a, cache_b;
	Helios__RateBucket bucket;
	Helios__RateBucket *buckets[1];
	Helios__NodeStatus node;
	Helios__NodeStatus *nodes[1];
	Helios__StatsReport a, b;
	struct overview_dp dps[2];
	struct overview_info in;
};

static void setup_two(struct two *t)
{
	memset(t, 0, sizeof(*t));
	helios__histogram__init(&t->wait);
	t->wait.n_bounds = 3;
	t->wait.bounds = bounds;
	t->wait.n_counts = 4;
	t->wait.counts = counts;
	t->wait.count = 100;
	helios__pool_stats__init(&t->pool);
	t->pool.database = "app\"db";
	t->pool.user = "alice";
	t->pool.node = "primary";
	t->pool.mode = "transaction";
	t->pool.cl_active = 3;
	t->pool.cl_waiting = 2;
	t->pool.sv_active = 3;
	t->pool.sv_idle = 1;
	t->pool.wait_hist = &t->wait;
	t->pools[0] = &t->pool;
	helios__query_stat__init(&t->q1);
	t->q1.query = (char *)ODD_SQL;
	t->q1.calls = 4;
	t->q1.total_secs = 2;
	helios__query_stat__init(&t->q2);
	t->q2.query = (char *)BAD_UTF8;
	t->queries[0] = &t->q1;
	t->queries[1] = &t->q2;
	helios__cache_stats__init(&t->cache_a);
	t->cache_a.enabled = true;
	t->cache_a.hits = 30;
	t->cache_a.misses = 10;
	helios__cache_stats__init(&t->cache_b);
	t->cache_b.enabled = true;
	t->cache_b.hits = 10;
	t->cache_b.misses = 50;
	helios__rate_bucket__init(&t->bucket);
	t->bucket.name = "global";
	t->bucket.throttled = 7;
	t->bucket.rejected = 1;
	t->buckets[0] = &t->bucket;
	helios__node_status__init(&t->node);
	t->node.name = "primary";
	t->node.role = "primary";
	t->node.healthy = true;
	t->node.lag_ms = -1;
	t->node.breaker = "open";
	t->nodes[0] = &t->node;

	helios__stats_report__init(&t->a);
	t->a.clients = 9;
	t->a.n_pools = 1;
	t->a.pools = t->pools;
	t->a.n_queries = 2;
	t->a.queries = t->queries;
	t->a.cache = &t->cache_a;
	t->a.n_rate_buckets = 1;
	t->a.rate_buckets = t->buckets;
	t->a.n_nodes = 1;
	t->a.nodes = t->nodes;
	t->a.splice_active = 2;
	helios__stats_report__init(&t->b);
	t->b.clients = 1;
	t->b.cache = &t->cache_b;

	t->dps[0] = (struct overview_dp){.id = "dp-a",
	                                 .connected = true,
	                                 .generation = 5,
	                                 .last_seen_secs = 0.5,
	                                 .last_error = "",
	                                 .report = &t->a};
	t->dps[1] = (struct overview_dp){.id = "dp-b",
	                                 .connected = false,
	                                 .generation = 4,
	                                 .last_seen_secs = 30,
	                                 .last_error = "bad key \"x\"",
	                                 .report = &t->b};
	t->in = (struct overview_info){.role = "control-plane",
	                               .version = "0.0",
	                               .generation = 5,
	                               .has_config = true,
	                               .cp_connected = -1,
	                               .cp_last_contact_secs = -1,
	                               .dps = t->dps,
	                               .n_dps = 2};
}

static void test_odd_statement_texts_round_trip(void **state)
{
	(void)state;
	struct two t;
	setup_two(&t);
	json_t *root = build(&t.in);
	json_t *qs =
	    json_object_get(json_array_get(json_object_get(root, "dataplanes"), 0), "top_queries");
	assert_int_equal(json_array_size(qs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(qs, 0), "query")),
	                    ODD_SQL);
	assert_string_equal(json_string_value(json_object_get(json_array_get(qs, 1), "query")),
	                    "SELECT \xef\xbf\xbd x \xef\xbf\xbd\xef\xbf\xbd");
	assert_true(fabs(json_real_value(json_object_get(json_array_get(qs, 0), "mean_secs")) -
	                 0.5) < 1e-9);
	json_decref(root);
}

static void test_acks_and_totals_over_two_dataplanes(void **state)
{
	(void)state;
	struct two t;
	setup_two(&t);
	json_t *root = build(&t.in);
	json_t *cfg = json_object_get(root, "config");
	assert_int_equal(json_integer_value(json_object_get(cfg, "generation")), 5);
	assert_int_equal(json_array_size(json_object_get(cfg, "acked")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(cfg, "acked"), 0)),
	                    "dp-a");
	assert_string_equal(json_string_value(json_array_get(json_object_get(cfg, "not_acked"), 0)),
	                    "dp-b");
	json_t *dps = json_object_get(root, "dataplanes");
	assert_true(json_is_true(json_object_get(json_array_get(dps, 0), "acked")));
	assert_true(json_is_false(json_object_get(json_array_get(dps, 1), "acked")));
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(dps, 1), "last_error")),
	    "bad key \"x\"");
	json_t *tot = json_object_get(root, "totals");
	assert_int_equal(json_integer_value(json_object_get(tot, "clients")), 10);
	assert_int_equal(json_integer_value(json_object_get(tot, "clients_active")), 3);
	assert_int_equal(json_integer_value(json_object_get(tot, "clients_waiting")), 2);
	assert_int_equal(json_integer_value(json_object_get(tot, "clients_idle")), 5);
	assert_int_equal(json_integer_value(json_object_get(tot, "throttled")), 7);
	assert_int_equal(json_integer_value(json_object_get(tot, "spliced_sessions")), 2);
	/* (30 + 10) / (40 + 60) */
	assert_true(fabs(json_real_value(json_object_get(tot, "cache_hit_ratio")) - 0.4) < 1e-9);
	json_t *pool = json_array_get(json_object_get(json_array_get(dps, 0), "pools"), 0);
	assert_string_equal(json_string_value(json_object_get(pool, "database")), "app\"db");
	/* rank 99 of 100: the last of the 9 in (0.001, 0.01] */
	assert_true(fabs(json_real_value(json_object_get(pool, "wait_p99_secs")) - 0.01) < 1e-9);
	json_t *node = json_array_get(json_object_get(json_array_get(dps, 0), "nodes"), 0);
	assert_string_equal(json_string_value(json_object_get(node, "breaker")), "open");
	assert_true(json_is_null(json_object_get(node, "lag_ms")));
	/* each data plane has its own ratio too */
	json_t *cb = json_object_get(json_array_get(dps, 1), "cache");
	assert_true(fabs(json_real_value(json_object_get(cb, "hit_ratio")) - 10.0 / 60) < 1e-9);
	json_decref(root);
}

static void test_quantile(void **state)
{
	(void)state;
	Helios__Histogram h;
	uint64_t c[4] = {0, 0, 0, 0};
	helios__histogram__init(&h);
	h.n_bounds = 3;
	h.bounds = bounds;
	h.n_counts = 4;
	h.counts = c;
	assert_true(overview_quantile(&h, 0.99) < 0); /* empty */
	c[0] = 100;
	assert_true(fabs(overview_quantile(&h, 0.5) - 0.0005) < 1e-12); /* half way into (0, 1ms] */
	c[0] = 0;
	c[3] = 5; /* all above the last bound: the last bound is the most we know */
	assert_true(fabs(overview_quantile(&h, 0.99) - 0.1) < 1e-12);
	h.n_counts = 3; /* malformed */
	assert_true(overview_quantile(&h, 0.99) < 0);
	assert_true(overview_quantile(NULL, 0.99) < 0);
}

static void test_empty_dataplane_list(void **state)
{
	(void)state;
	struct overview_info in = {.role = "control-plane", .cp_connected = -1};
	json_t *root = build(&in);
	assert_int_equal(json_array_size(json_object_get(root, "dataplanes")), 0);
	assert_true(
	    json_is_null(json_object_get(json_object_get(root, "totals"), "cache_hit_ratio")));
	assert_true(
	    json_is_null(json_object_get(json_object_get(root, "control_plane"), "connected")));
	json_decref(root);
}

/* The page and its assets are served from the binary and name nothing
 * outside it: no scheme, no scheme-relative URL, no @import; the script
 * never parses data as markup. */
static void test_assets_are_served_and_name_no_external_url(void **state)
{
	(void)state;
	static const char *const urls[] = {"/", "/dashboard.js", "/dashboard.css"};
	regex_t re;
	assert_int_equal(regcomp(&re, "(https?|wss?|ftp):|[\"'(=][[:space:]]*//|@import",
	                         REG_EXTENDED | REG_ICASE | REG_NOSUB),
	                 0);
	for (size_t i = 0; i < 3; i++) {
		struct sbuf b;
		const char *ctype = NULL;
		sbuf_init(&b);
		assert_int_equal(overview_asset(urls[i], &b, &ctype), 200);
		assert_non_null(ctype);
		assert_true(b.len > 500);
		sbuf_putc(&b, '\0');
		assert_false(b.oom);
		assert_int_equal(strlen(b.p), b.len - 1); /* whole file, no NUL inside */
		if (regexec(&re, b.p, 0, NULL, 0) == 0)
			fail_msg("%s names an external URL", urls[i]);
		if (i == 1)
			assert_null(strstr(b.p, "innerHTML"));
		if (i == 0)
			assert_non_null(strstr(b.p, "name=\"viewport\""));
		sbuf_free(&b);
	}
	regfree(&re);
	struct sbuf b;
	const char *ctype = NULL;
	sbuf_init(&b);
	assert_int_equal(overview_asset("/api/overview", &b, &ctype), -1);
	assert_int_equal(overview_asset("/../etc/passwd", &b, &ctype), -1);
	sbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_odd_statement_texts_round_trip),
	    cmocka_unit_test(test_acks_and_totals_over_two_dataplanes),
	    cmocka_unit_test(test_quantile),
	    cmocka_unit_test(test_empty_dataplane_list),
	    cmocka_unit_test(test_assets_are_served_and_name_no_external_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
