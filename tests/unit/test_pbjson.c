/*
 * Unit tests for common/pbjson: a CtlResponse as helioctl --json prints it
 * (every field present under its .proto name, nested DataPlaneStatus /
 * StatsReport / PoolStats, repeated strings), the same after a pack/unpack
 * round trip, enums by name, bytes as base64, and the values JSON cannot
 * hold as such (uint64 above INT64_MAX, NaN, infinities, bad UTF-8).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/pbjson.h"
#include "proto/helios.pb-c.h"

static void assert_json_string(json_t *j, const char *want)
{
	assert_non_null(j);
	assert_true(json_is_string(j));
	assert_string_equal(json_string_value(j), want);
}

static void assert_json_int(json_t *j, json_int_t want)
{
	assert_non_null(j);
	assert_true(json_is_integer(j));
	assert_int_equal(json_integer_value(j), want);
}

/* Compact dump of m, compared with want. */
static void assert_dump(const ProtobufCMessage *m, const char *want)
{
	json_t *j = pbjson_from_message(m);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(16));
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
	json_decref(j);
}

/* Asserts that o has exactly d's fields, in tag order. */
static void assert_keys_are_fields(json_t *o, const ProtobufCMessageDescriptor *d)
{
	const char *key;
	json_t *v;
	unsigned i = 0;

	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), d->n_fields);
	json_object_foreach(o, key, v)
	{
		assert_string_equal(key, d->fields[i].name);
		i++;
	}
}

/*
 * A status reply with one data plane reporting one pool. The submessages
 * live in *st, which the caller keeps alive while r is used.
 */
struct fixture {
	Helios__CtlResponse r;
	Helios__DataPlaneStatus dp;
	Helios__DataPlaneStatus *dps[1];
	Helios__StatsReport rep;
	Helios__PoolStats pool;
	Helios__PoolStats *pools[1];
	Helios__Histogram hist;
	double bounds[2];
	uint64_t counts[3];
	Helios__NodeStatus node;
	Helios__NodeStatus *nodes[1];
	char *paused[2];
	char *restart[1];
};

static void fill(struct fixture *st)
{
	Helios__CtlResponse r = HELIOS__CTL_RESPONSE__INIT;
	Helios__DataPlaneStatus dp = HELIOS__DATA_PLANE_STATUS__INIT;
	Helios__StatsReport rep = HELIOS__STATS_REPORT__INIT;
	Helios__PoolStats pool = HELIOS__POOL_STATS__INIT;
	Helios__Histogram hist = HELIOS__HISTOGRAM__INIT;
	Helios__NodeStatus node = HELIOS__NODE_STATUS__INIT;

	memset(st, 0, sizeof(*st));
	st->bounds[0] = 0.001;
	st->bounds[1] = 0.5;
	st->counts[0] = 7;
	st->counts[1] = 2;
	st->counts[2] = 1;
	hist.n_bounds = 2;
	hist.bounds = st->bounds;
	hist.n_counts = 3;
	hist.counts = st->counts;
	hist.sum = 1.25;
	hist.count = 10;
	st->hist = hist;

	pool.database = "app";
	pool.user = "alice";
	pool.node = "primary";
	pool.mode = "transaction";
	pool.cl_active = 3;
	pool.cl_waiting = 1;
	pool.max_size = 20;
	pool.maxwait_secs = 0.25;
	pool.xact_count = 1000;
	pool.bytes_received = 5000000000ull; /* above 32 bits */
	pool.wait_hist = &st->hist;
	pool.paused = 1;
	st->pool = pool;
	st->pools[0] = &st->pool;

	rep.dataplane_id = "db1:4242";
	rep.generation = 7;
	rep.clients = 4;
	rep.n_pools = 1;
	rep.pools = st->pools;
	rep.io_backend = "io_uring";
	st->rep = rep;

	st->restart[0] = "workers";
	dp.dataplane_id = "db1:4242";
	dp.connected = 1;
	dp.generation = 7;
	dp.last_seen_secs = 1.5;
	dp.report = &st->rep;
	dp.n_restart_pending = 1;
	dp.restart_pending = st->restart;
	st->dp = dp;
	st->dps[0] = &st->dp;

	node.name = "primary";
	node.host = "10.0.0.1";
	node.port = 5432;
	node.role = "primary";
	node.healthy = 1;
	node.lag_ms = -1;
	st->node = node;
	st->nodes[0] = &st->node;

	st->paused[0] = "app";
	st->paused[1] = "reports";
	r.status = 4;
	r.message = "1 of 2 data planes did not answer";
	r.generation = 7;
	r.n_dataplanes = 1;
	r.dataplanes = st->dps;
	r.n_nodes = 1;
	r.nodes = st->nodes;
	r.config_path = "/etc/helios/proxy.toml";
	r.uptime_secs = 3600.5;
	r.version = "0.2.0";
	r.n_paused = 2;
	r.paused = st->paused;
	st->r = r;
}

static void check_status_json(json_t *j)
{
	assert_keys_are_fields(j, &helios__ctl_response__descriptor);
	assert_json_int(json_object_get(j, "status"), 4);
	assert_json_string(json_object_get(j, "message"), "1 of 2 data planes did not answer");
	assert_json_int(json_object_get(j, "generation"), 7);
	/* unset fields keep their place with proto3 defaults */
	assert_json_string(json_object_get(j, "overrides_path"), "");
	assert_true(json_is_array(json_object_get(j, "config")));
	assert_int_equal(json_array_size(json_object_get(j, "config")), 0);
	assert_json_int(json_object_get(j, "acked"), 0);
	assert_true(json_is_real(json_object_get(j, "uptime_secs")));
	assert_true(json_real_value(json_object_get(j, "uptime_secs")) == 3600.5);

	json_t *paused = json_object_get(j, "paused");
	assert_int_equal(json_array_size(paused), 2);
	assert_json_string(json_array_get(paused, 0), "app");
	assert_json_string(json_array_get(paused, 1), "reports");

	json_t *dp = json_array_get(json_object_get(j, "dataplanes"), 0);
	assert_keys_are_fields(dp, &helios__data_plane_status__descriptor);
	assert_true(json_is_true(json_object_get(dp, "connected")));
	assert_true(json_is_null(json_object_get(dp, "info"))); /* absent message */
	assert_json_string(json_array_get(json_object_get(dp, "restart_pending"), 0), "workers");

	json_t *rep = json_object_get(dp, "report");
	assert_keys_are_fields(rep, &helios__stats_report__descriptor);
	assert_json_string(json_object_get(rep, "io_backend"), "io_uring");
	assert_true(json_is_false(json_object_get(rep, "cp_connected")));
	assert_int_equal(json_array_size(json_object_get(rep, "client_list")), 0);

	json_t *pool = json_array_get(json_object_get(rep, "pools"), 0);
	assert_keys_are_fields(pool, &helios__pool_stats__descriptor);
	assert_json_string(json_object_get(pool, "database"), "app");
	assert_json_string(json_object_get(pool, "mode"), "transaction");
	assert_json_int(json_object_get(pool, "cl_active"), 3);
	assert_json_int(json_object_get(pool, "sv_idle"), 0);
	assert_json_int(json_object_get(pool, "bytes_received"), 5000000000ll);
	assert_true(json_real_value(json_object_get(pool, "maxwait_secs")) == 0.25);
	assert_true(json_is_true(json_object_get(pool, "paused")));
	assert_true(json_is_null(json_object_get(pool, "query_hist")));

	json_t *hist = json_object_get(pool, "wait_hist");
	assert_keys_are_fields(hist, &helios__histogram__descriptor);
	assert_true(json_real_value(json_array_get(json_object_get(hist, "bounds"), 1)) == 0.5);
	assert_json_int(json_array_get(json_object_get(hist, "counts"), 2), 1);

	json_t *node = json_array_get(json_object_get(j, "nodes"), 0);
	assert_json_int(json_object_get(node, "lag_ms"), -1);
	assert_json_int(json_object_get(node, "port"), 5432);
	assert_json_string(json_object_get(node, "error"), "");
}

static void test_ctl_response_every_field_nested_and_repeated(void **state)
{
	struct fixture st;
	fill(&st);
	json_t *j = pbjson_from_message(&st.r.base);
	check_status_json(j);
	json_decref(j);
}

/* What helioctl really converts is an unpacked message: same JSON. */
static void test_unpacked_message_gives_same_json(void **state)
{
	struct fixture st;
	fill(&st);
	size_t n = helios__ctl_response__get_packed_size(&st.r);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	helios__ctl_response__pack(&st.r, buf);
	Helios__CtlResponse *u = helios__ctl_response__unpack(NULL, n, buf);
	free(buf);
	assert_non_null(u);

	json_t *a = pbjson_from_message(&st.r.base);
	json_t *b = pbjson_from_message(&u->base);
	check_status_json(b);
	assert_true(json_equal(a, b));
	json_decref(a);
	json_decref(b);
	helios__ctl_response__free_unpacked(u, NULL);
}

static void test_exact_compact_dump(void **state)
{
	Helios__PinCount pin = HELIOS__PIN_COUNT__INIT;
	Helios__Histogram h = HELIOS__HISTOGRAM__INIT;
	Helios__CtlRequest req = HELIOS__CTL_REQUEST__INIT;
	char *args[] = {"set", "pool_mode.max_pool_size", "50"};

	pin.reason = "prepare";
	pin.total = 3;
	assert_dump(&pin.base, "{\"reason\":\"prepare\",\"total\":3}");
	assert_dump(&h.base, "{\"bounds\":[],\"counts\":[],\"sum\":0.0,\"count\":0}");
	req.verb = "config";
	req.n_args = 3;
	req.args = args;
	req.timeout_ms = 9000;
	assert_dump(&req.base, "{\"verb\":\"config\",\"args\":[\"set\",\"pool_mode.max_pool_size\","
	                       "\"50\"],\"timeout_ms\":9000,\"plugin\":null}");
}

static void test_enum_by_name_and_bytes_as_base64(void **state)
{
	static const struct {
		const char *in, *out;
	} b64[] = {
	    {"", ""},        {"f", "Zg=="},        {"fo", "Zm8="},
	    {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"\xff\xfe\x00", "//4A"},
	};
	Helios__Envelope e = HELIOS__ENVELOPE__INIT;

	e.proto_version = 1;
	e.type = HELIOS__MSG_TYPE__MSG_CTL_RESPONSE;
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		e.payload.data = (uint8_t *)b64[i].in;
		e.payload.len = i == 5 ? 3 : strlen(b64[i].in);
		json_t *j = pbjson_from_message(&e.base);
		assert_keys_are_fields(j, &helios__envelope__descriptor);
		assert_json_string(json_object_get(j, "type"), "MSG_CTL_RESPONSE");
		assert_json_string(json_object_get(j, "payload"), b64[i].out);
		json_decref(j);
	}

	/* A value this build does not know (newer peer): the number. */
	e.type = (Helios__MsgType)99;
	e.payload.data = NULL;
	e.payload.len = 0;
	assert_dump(&e.base, "{\"proto_version\":1,\"type\":99,\"generation\":0,\"payload\":\"\","
	                     "\"token\":\"\"}");
	/* Default: the zero value by name. */
	e.type = HELIOS__MSG_TYPE__MSG_UNSPECIFIED;
	assert_dump(&e.base, "{\"proto_version\":1,\"type\":\"MSG_UNSPECIFIED\",\"generation\":0,"
	                     "\"payload\":\"\",\"token\":\"\"}");
}

static void test_values_json_cannot_hold_directly(void **state)
{
	Helios__PoolStats p = HELIOS__POOL_STATS__INIT;
	Helios__ClientInfo c = HELIOS__CLIENT_INFO__INIT;

	p.xact_count = UINT64_MAX;
	p.query_count = (uint64_t)INT64_MAX;
	p.maxwait_secs = NAN;
	p.xact_time_secs = INFINITY;
	p.query_time_secs = -INFINITY;
	p.database = NULL; /* treated as unset */
	json_t *j = pbjson_from_message(&p.base);
	assert_json_string(json_object_get(j, "xact_count"), "18446744073709551615");
	assert_json_int(json_object_get(j, "query_count"), INT64_MAX);
	assert_json_string(json_object_get(j, "maxwait_secs"), "NaN");
	assert_json_string(json_object_get(j, "xact_time_secs"), "Infinity");
	assert_json_string(json_object_get(j, "query_time_secs"), "-Infinity");
	assert_json_string(json_object_get(j, "database"), "");
	json_decref(j);

	/* Client-chosen text need not be UTF-8: bad bytes become U+FFFD,
	 * valid multi-byte characters stay. */
	c.application_name = "a\xff"
	                     "b\xc3\xa9"
	                     "c\xe2\x82";
	c.user = "\xed\xa0\x80"; /* an encoded surrogate is not valid UTF-8 */
	j = pbjson_from_message(&c.base);
	assert_json_string(json_object_get(j, "application_name"), "a\xef\xbf\xbd"
	                                                           "b\xc3\xa9"
	                                                           "c\xef\xbf\xbd\xef\xbf\xbd");
	assert_json_string(json_object_get(j, "user"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
}

static void test_null_message(void **state)
{
	assert_null(pbjson_from_message(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctl_response_every_field_nested_and_repeated),
	    cmocka_unit_test(test_unpacked_message_gives_same_json),
	    cmocka_unit_test(test_exact_compact_dump),
	    cmocka_unit_test(test_enum_by_name_and_bytes_as_base64),
	    cmocka_unit_test(test_values_json_cannot_hold_directly),
	    cmocka_unit_test(test_null_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
