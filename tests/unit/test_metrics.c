/*
 * Unit tests for common/metrics: two data planes with pools, histograms,
 * pins and a routing table, rendered as Prometheus text (cumulative
 * buckets, escaping, HELP/TYPE before every family's samples, malformed
 * histograms skipped, numbers, link families by role, promtool's verdict)
 * and as the /status JSON (parsed back with jansson).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/metrics.h"

#define PROMTOOL "/usr/bin/promtool"

/* The fixture: everything lives in this struct, built by setup(), so the
 * tests need no frees beyond their own sbufs. */
struct fx {
	double bounds[3], bad_bounds[3];
	uint64_t wait_counts[4], query_counts[4], short_counts[3], counts_b[4];
	Helios__Histogram wait_a, query_a, short_hist, unsorted_hist, wait_b;
	Helios__PoolStats pool_a1, pool_a2, pool_b;
	Helios__PoolStats *pools_a[2], *pools_b[1];
	Helios__PinCount pin1, pin2;
	Helios__PinCount *pins_a[2];
	char *paused_a[1];
	Helios__StatsReport rep_a, rep_b;
	const Helios__StatsReport *reports[2];
	Helios__NodeStatus node0, node1;
	const Helios__NodeStatus *nodes[2];
	struct metrics_info info;
};

static void hist(Helios__Histogram *h, double *bounds, size_t nb, uint64_t *counts, size_t nc,
                 double sum)
{
	helios__histogram__init(h);
	h->n_bounds = nb;
	h->bounds = bounds;
	h->n_counts = nc;
	h->counts = counts;
	h->sum = sum;
	for (size_t i = 0; i < nc; i++)
		h->count += counts[i];
}

static void pool(Helios__PoolStats *p, const char *db, const char *user, const char *node)
{
	helios__pool_stats__init(p);
	p->database = (char *)db;
	p->user = (char *)user;
	p->node = (char *)node;
	p->mode = (char *)"transaction";
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->bounds[0] = 0.001;
	f->bounds[1] = 0.01;
	f->bounds[2] = 0.1;
	memcpy(f->bad_bounds, (double[]){0.1, 0.01, 1}, sizeof(f->bad_bounds));
	memcpy(f->wait_counts, (uint64_t[]){5, 3, 2, 1}, sizeof(f->wait_counts));
	memcpy(f->query_counts, (uint64_t[]){100, 0, 7, 0}, sizeof(f->query_counts));
	memcpy(f->short_counts, (uint64_t[]){1, 2, 3}, sizeof(f->short_counts));
	memcpy(f->counts_b, (uint64_t[]){0, 0, 0, 2}, sizeof(f->counts_b));
	hist(&f->wait_a, f->bounds, 3, f->wait_counts, 4, 0.125);
	hist(&f->query_a, f->bounds, 3, f->query_counts, 4, 0.5);
	hist(&f->short_hist, f->bounds, 3, f->short_counts, 3, 1.0);
	hist(&f->unsorted_hist, f->bad_bounds, 3, f->wait_counts, 4, 1.0);
	hist(&f->wait_b, f->bounds, 3, f->counts_b, 4, 3.5);

	pool(&f->pool_a1, "app", "alice", "node0");
	f->pool_a1.cl_active = 3;
	f->pool_a1.cl_waiting = 1;
	f->pool_a1.sv_active = 3;
	f->pool_a1.sv_idle = 2;
	f->pool_a1.max_size = 20;
	f->pool_a1.maxwait_secs = 0.1;
	f->pool_a1.query_count = 107;
	f->pool_a1.xact_count = 50;
	f->pool_a1.bytes_received = 4096;
	f->pool_a1.bytes_sent = UINT64_MAX;
	f->pool_a1.query_time_secs = 0.5;
	f->pool_a1.xact_time_secs = 0.75;
	f->pool_a1.wait_time_secs = 0.125;
	f->pool_a1.wait_timeouts = 2;
	f->pool_a1.wait_hist = &f->wait_a;
	f->pool_a1.query_hist = &f->query_a;
	pool(&f->pool_a2, "app", "bob", "node1");
	f->pool_a2.query_count = 9;
	f->pool_a2.paused = 1;
	f->pool_a2.query_hist = &f->short_hist;   /* 3 counts for 3 bounds */
	f->pool_a2.wait_hist = &f->unsorted_hist; /* bounds not ascending */
	pool(&f->pool_b, "we\"ird\\db", "carol", "node0");
	f->pool_b.maxwait_secs = NAN;
	f->pool_b.wait_hist = &f->wait_b; /* query_hist NULL */
	f->pools_a[0] = &f->pool_a1;
	f->pools_a[1] = &f->pool_a2;
	f->pools_b[0] = &f->pool_b;

	helios__pin_count__init(&f->pin1);
	f->pin1.reason = (char *)"prepared_statement";
	f->pin1.total = 4;
	helios__pin_count__init(&f->pin2);
	f->pin2.reason = (char *)"advisory_lock";
	f->pin2.total = 1;
	f->pins_a[0] = &f->pin1;
	f->pins_a[1] = &f->pin2;
	f->paused_a[0] = (char *)"app";

	helios__stats_report__init(&f->rep_a);
	f->rep_a.dataplane_id = (char *)"dp-a";
	f->rep_a.generation = 7;
	f->rep_a.clients = 12;
	f->rep_a.clients_max = 10000;
	f->rep_a.queries_total = 116;
	f->rep_a.xacts_total = 50;
	f->rep_a.bytes_in = 4096;
	f->rep_a.bytes_out = 8192;
	f->rep_a.logins_total = 30;
	f->rep_a.login_failures = 2;
	f->rep_a.cp_connected = 1;
	f->rep_a.cp_reconnects = 3;
	f->rep_a.n_pools = 2;
	f->rep_a.pools = f->pools_a;
	f->rep_a.n_pins = 2;
	f->rep_a.pins = f->pins_a;
	f->rep_a.n_paused = 1;
	f->rep_a.paused = f->paused_a;
	helios__stats_report__init(&f->rep_b);
	f->rep_b.dataplane_id = (char *)"dp-b\"x\\y\nz";
	f->rep_b.generation = 6;
	f->rep_b.clients = 1;
	f->rep_b.n_pools = 1;
	f->rep_b.pools = f->pools_b;
	f->reports[0] = &f->rep_a;
	f->reports[1] = &f->rep_b;

	helios__node_status__init(&f->node0);
	f->node0.name = (char *)"node0";
	f->node0.host = (char *)"10.0.0.1";
	f->node0.port = 5432;
	f->node0.role = (char *)"primary";
	f->node0.healthy = 1;
	f->node0.lag_ms = -1;
	helios__node_status__init(&f->node1);
	f->node1.name = (char *)"node1";
	f->node1.host = (char *)"10.0.0.2";
	f->node1.port = 5432;
	f->node1.role = (char *)"replica";
	f->node1.lag_ms = 1500;
	f->node1.draining = 1;
	f->node1.error = (char *)"connection refused";
	f->nodes[0] = &f->node0;
	f->nodes[1] = &f->node1;

	f->info = (struct metrics_info){
	    .role = "control-plane",
	    .version = "0.2.0",
	    .uptime_secs = 12.5,
	    .generation = 7,
	    .dataplanes_connected = 2,
	    .dataplanes_known = 3,
	    .cp_connected = -1,
	    .cp_last_contact_secs = -1,
	    .replica_lag_limit_secs = 2.5,
	    .nodes = f->nodes,
	    .n_nodes = 2,
	    .has_config = true,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Renders the fixture; the caller frees the returned string. */
static char *render(struct fx *f, size_t n)
{
	struct sbuf b;
	char *text;

	sbuf_init(&b);
	metrics_render(&b, f->reports, n, &f->info);
	assert_false(b.oom);
	text = sbuf_take(&b, NULL);
	assert_non_null(text);
	return text;
}

/* The value of the sample whose line starts with prefix (name and labels
 * up to the space), or fails the test when there is none. */
static const char *find_sample(const char *text, const char *series)
{
	size_t len = strlen(series);

	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		if (strncmp(line, series, len) == 0 && line[len] == ' ')
			return line + len + 1;
		if (!strchr(line, '\n'))
			break;
	}
	fail_msg("no sample %s", series);
	return NULL;
}

static void assert_sample(const char *text, const char *series, const char *value)
{
	const char *v = find_sample(text, series);

	if (strncmp(v, value, strlen(value)) != 0 || v[strlen(value)] != '\n')
		fail_msg("%s: expected %s, got %.*s", series, value, (int)strcspn(v, "\n"), v);
}

#define POOL_A1                                                                                    \
	"dataplane=\"dp-a\",database=\"app\",user=\"alice\",node=\"node0\",mode=\"transaction\""
#define POOL_A2                                                                                    \
	"dataplane=\"dp-a\",database=\"app\",user=\"bob\",node=\"node1\",mode=\"transaction\""

static void test_cumulative_buckets(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	assert_sample(t, "helios_pool_wait_seconds_bucket{" POOL_A1 ",le=\"0.001\"}", "5");
	assert_sample(t, "helios_pool_wait_seconds_bucket{" POOL_A1 ",le=\"0.01\"}", "8");
	assert_sample(t, "helios_pool_wait_seconds_bucket{" POOL_A1 ",le=\"0.1\"}", "10");
	assert_sample(t, "helios_pool_wait_seconds_bucket{" POOL_A1 ",le=\"+Inf\"}", "11");
	assert_sample(t, "helios_pool_wait_seconds_count{" POOL_A1 "}", "11");
	assert_sample(t, "helios_pool_wait_seconds_sum{" POOL_A1 "}", "0.125");
	assert_sample(t, "helios_pool_query_seconds_bucket{" POOL_A1 ",le=\"0.01\"}", "100");
	assert_sample(t, "helios_pool_query_seconds_bucket{" POOL_A1 ",le=\"+Inf\"}", "107");
	assert_sample(t, "helios_pool_query_seconds_count{" POOL_A1 "}", "107");
	free(t);
}

static void test_bad_histograms_skipped(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	/* Counts of the wrong size, bounds out of order, and no histogram at
	 * all: the pool's other families are still there. */
	assert_null(strstr(t, "helios_pool_query_seconds_bucket{" POOL_A2));
	assert_null(strstr(t, "helios_pool_query_seconds_count{" POOL_A2));
	assert_null(strstr(t, "helios_pool_wait_seconds_bucket{" POOL_A2));
	assert_null(strstr(t, "helios_pool_query_seconds_sum{dataplane=\"dp-b"));
	assert_sample(t, "helios_pool_queries_total{" POOL_A2 "}", "9");
	assert_sample(t, "helios_pool_paused{" POOL_A2 "}", "1");
	free(t);
}

static void test_label_escaping(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	assert_sample(t, "helios_clients{dataplane=\"dp-b\\\"x\\\\y\\nz\"}", "1");
	assert_sample(
	    t,
	    "helios_pool_max_wait_seconds{dataplane=\"dp-b\\\"x\\\\y\\nz\","
	    "database=\"we\\\"ird\\\\db\",user=\"carol\",node=\"node0\",mode=\"transaction\"}",
	    "NaN");
	free(t);
}

static void test_invalid_utf8_replaced(void **state)
{
	struct fx *f = *state;
	char *t;

	f->rep_b.dataplane_id = (char *)"bad\xff\xc3(id\xc3\xa9";
	t = render(f, 2);
	assert_sample(t, "helios_clients{dataplane=\"bad\xef\xbf\xbd\xef\xbf\xbd(id\xc3\xa9\"}",
	              "1");
	free(t);
}

/* Every sample belongs to the family whose # TYPE came last, each family
 * has exactly one HELP and one TYPE line, in that order, and no family
 * appears twice: so families are not interleaved. */
static void test_help_type_before_samples(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);
	char seen[256][96], family[96] = "", type[16] = "", help[96] = "";
	size_t n_seen = 0, samples = 0;

	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
		char name[96];
		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%95s", help), 1);
			for (size_t i = 0; i < n_seen; i++)
				if (strcmp(seen[i], help) == 0)
					fail_msg("family %s appears twice", help);
			assert_true(n_seen < 256);
			strcpy(seen[n_seen++], help);
			family[0] = '\0';
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%95s %15s", family, type), 2);
			assert_string_equal(family, help); /* TYPE right after its HELP */
			help[0] = '\0';
			continue;
		}
		assert_true(line[0] != '#');
		assert_true(family[0] != '\0');
		size_t len = strcspn(line, "{ ");
		assert_true(len < sizeof(name));
		memcpy(name, line, len);
		name[len] = '\0';
		if (strcmp(type, "histogram") == 0) {
			size_t fl = strlen(family);
			assert_true(strncmp(name, family, fl) == 0);
			assert_true(strcmp(name + fl, "_bucket") == 0 ||
			            strcmp(name + fl, "_sum") == 0 ||
			            strcmp(name + fl, "_count") == 0);
		} else {
			assert_string_equal(name, family);
		}
		if (strcmp(type, "counter") == 0)
			assert_non_null(strstr(family, "_total"));
		/* The value parses completely. */
		const char *v = strrchr(line, ' ') + 1;
		char *end;
		strtod(v, &end);
		assert_true(*end == '\0');
		samples++;
	}
	assert_true(samples > 50);
	free(t);
}

static void test_process_and_nodes(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	assert_sample(t, "helios_up", "1");
	assert_sample(t, "helios_info{version=\"0.2.0\",role=\"control-plane\"}", "1");
	assert_sample(t, "helios_uptime_seconds", "12.5");
	assert_sample(t, "helios_config_generation", "7");
	assert_sample(t, "helios_config_loaded", "1");
	assert_sample(t, "helios_dataplanes_connected", "2");
	assert_sample(t, "helios_dataplanes_known", "3");
	assert_sample(t, "helios_node_up{node=\"node0\",role=\"primary\"}", "1");
	assert_sample(t, "helios_node_up{node=\"node1\",role=\"replica\"}", "0");
	assert_sample(t, "helios_node_draining{node=\"node1\"}", "1");
	assert_sample(t, "helios_node_replication_lag_seconds{node=\"node1\"}", "1.5");
	assert_sample(t, "helios_replica_lag_limit_seconds", "2.5");
	assert_null(strstr(t, "helios_node_replication_lag_seconds{node=\"node0\"}"));
	assert_sample(t, "helios_pins_total{dataplane=\"dp-a\",reason=\"prepared_statement\"}",
	              "4");
	assert_sample(t, "helios_pins_total{dataplane=\"dp-a\",reason=\"advisory_lock\"}", "1");
	assert_sample(t, "helios_clients{dataplane=\"dp-a\"}", "12");
	assert_sample(t, "helios_client_connections_max{dataplane=\"dp-a\"}", "10000");
	assert_sample(t, "helios_logins_total{dataplane=\"dp-a\"}", "30");
	assert_sample(t, "helios_login_failures_total{dataplane=\"dp-a\"}", "2");
	/* Integers never in exponent form; floats shortest round trip. */
	assert_sample(t, "helios_pool_sent_bytes_total{" POOL_A1 "}", "18446744073709551615");
	assert_sample(t, "helios_pool_max_wait_seconds{" POOL_A1 "}", "0.1");
	assert_sample(t, "helios_pool_transaction_time_seconds_total{" POOL_A1 "}", "0.75");
	assert_sample(t, "helios_pool_wait_timeouts_total{" POOL_A1 "}", "2");
	free(t);
}

static void test_link_families_by_role(void **state)
{
	struct fx *f = *state;
	char *t;

	/* Control plane: from each report. */
	t = render(f, 2);
	assert_sample(t, "helios_control_plane_connected{dataplane=\"dp-a\"}", "1");
	assert_sample(t, "helios_control_plane_reconnects_total{dataplane=\"dp-a\"}", "3");
	assert_sample(t, "helios_control_plane_connected{dataplane=\"dp-b\\\"x\\\\y\\nz\"}", "0");
	/* no heartbeat ages given: no last-contact samples */
	assert_null(strstr(t, "helios_control_plane_last_contact_seconds{"));
	free(t);
	static const double contact[2] = {1.5, 30};
	f->info.report_contact_secs = contact;
	t = render(f, 2);
	assert_sample(t, "helios_control_plane_last_contact_seconds{dataplane=\"dp-a\"}", "1.5");
	assert_sample(
	    t, "helios_control_plane_last_contact_seconds{dataplane=\"dp-b\\\"x\\\\y\\nz\"}", "30");
	free(t);
	f->info.report_contact_secs = NULL;

	/* Data plane with an external control plane: live values from info. */
	f->info.role = "dataplane";
	f->info.dataplanes_connected = -1;
	f->info.dataplanes_known = -1;
	f->info.cp_connected = 0;
	f->info.cp_reconnects = 9;
	f->info.cp_last_contact_secs = 2.25;
	t = render(f, 1);
	assert_sample(t, "helios_control_plane_connected{dataplane=\"dp-a\"}", "0");
	assert_sample(t, "helios_control_plane_reconnects_total{dataplane=\"dp-a\"}", "9");
	assert_sample(t, "helios_control_plane_last_contact_seconds{dataplane=\"dp-a\"}", "2.25");
	assert_null(strstr(t, "helios_dataplanes_connected"));
	assert_null(strstr(t, "helios_dataplanes_known"));
	free(t);

	/* Embedded: no link at all. */
	f->info.role = "embedded";
	f->info.cp_connected = -1;
	f->info.dataplanes_connected = 1;
	t = render(f, 1);
	assert_null(strstr(t, "helios_control_plane_"));
	assert_sample(t, "helios_dataplanes_connected", "1");
	free(t);
}

static void test_xdp_families_only_where_the_filter_is_enabled(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	assert_null(strstr(t, "helios_xdp_"));
	free(t);
	f->info.role = "embedded";
	f->info.xdp = (struct metrics_xdp){.enabled = true,
	                                   .attached = true,
	                                   .passed = 1000,
	                                   .denied = 7,
	                                   .syn_rate_dropped = 3,
	                                   .syns = 40,
	                                   .deny_entries = 2};
	t = render(f, 1);
	assert_sample(t, "helios_xdp_attached", "1");
	assert_sample(t, "helios_xdp_packets_total{verdict=\"pass\"}", "1000");
	assert_sample(t, "helios_xdp_packets_total{verdict=\"deny\"}", "7");
	assert_sample(t, "helios_xdp_packets_total{verdict=\"syn_rate\"}", "3");
	assert_sample(t, "helios_xdp_syn_total", "40");
	assert_sample(t, "helios_xdp_deny_entries", "2");
	free(t);
	f->info.xdp.attached = false;
	t = render(f, 1);
	assert_sample(t, "helios_xdp_attached", "0");
	free(t);
}

/* Read from this test's own /proc entries: plausible values, and the
 * families rendered with them (and left out when /proc was unreadable). */
static void test_process_standard_families(void **state)
{
	struct fx *f = *state;
	struct metrics_proc p;
	char *t;
	int fd = dup(0);

	assert_int_equal(metrics_proc_read(&p), 0);
	assert_true(p.valid);
	assert_true(p.rss_bytes > 0 && p.vsize_bytes >= p.rss_bytes);
	assert_true(p.open_fds >= 3 && p.max_fds >= p.open_fds);
	assert_true(p.cpu_secs >= 0);
	assert_true(p.start_time_secs > 1.5e9 && p.start_time_secs <= (double)time(NULL) + 1);
	/* one more descriptor open is one more counted */
	struct metrics_proc q;
	close(fd);
	assert_int_equal(metrics_proc_read(&q), 0);
	assert_int_equal(q.open_fds + 1, p.open_fds);

	t = render(f, 2);
	assert_null(strstr(t, "process_"));
	free(t);
	f->info.proc = (struct metrics_proc){.valid = true,
	                                     .cpu_secs = 1.25,
	                                     .rss_bytes = 4096,
	                                     .vsize_bytes = 8192,
	                                     .open_fds = 12,
	                                     .max_fds = 1024,
	                                     .start_time_secs = 1700000000.5};
	t = render(f, 2);
	assert_sample(t, "process_cpu_seconds_total", "1.25");
	assert_sample(t, "process_resident_memory_bytes", "4096");
	assert_sample(t, "process_virtual_memory_bytes", "8192");
	assert_sample(t, "process_open_fds", "12");
	assert_sample(t, "process_max_fds", "1024");
	assert_sample(t, "process_start_time_seconds", "1700000000.5");
	assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
	free(t);
}

static void test_empty(void **state)
{
	struct fx *f = *state;
	char *t;

	/* No reports, no nodes: the families without samples are left out
	 * entirely rather than left as headers. */
	f->info.n_nodes = 0;
	t = render(f, 0);
	assert_null(strstr(t, "helios_clients"));
	assert_null(strstr(t, "helios_pool_"));
	assert_null(strstr(t, "helios_node_"));
	assert_sample(t, "helios_up", "1");
	free(t);
}

/* promtool is the reference parser and linter; a nonzero exit is a
 * format error or a naming-convention complaint. */
static void check_with_promtool(const char *text, const char *what)
{
	char path[] = "/tmp/test_metrics.XXXXXX", cmd[256];
	FILE *fp;
	int fd, rc;

	if (access(PROMTOOL, X_OK) != 0) {
		print_message("promtool not installed: skipping its check of %s\n", what);
		return;
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s", path);
	rc = system(cmd);
	unlink(path);
	if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
		fail_msg("promtool check metrics failed for %s (status %d)", what, rc);
}

static void test_promtool(void **state)
{
	struct fx *f = *state;
	char *t = render(f, 2);

	check_with_promtool(t, "the control-plane exposition");
	free(t);
	assert_int_equal(metrics_proc_read(&f->info.proc), 0);
	t = render(f, 2);
	check_with_promtool(t, "the control-plane exposition with process_* families");
	free(t);
	f->info.role = "dataplane";
	f->info.dataplanes_connected = -1;
	f->info.dataplanes_known = -1;
	f->info.cp_connected = 1;
	f->info.cp_last_contact_secs = 0.5;
	t = render(f, 1);
	check_with_promtool(t, "the data-plane exposition");
	free(t);
	f->info.role = "embedded";
	f->info.cp_connected = -1;
	f->info.xdp = (struct metrics_xdp){.enabled = true, .attached = true, .passed = 5};
	t = render(f, 1);
	check_with_promtool(t, "the embedded exposition with the XDP filter");
	free(t);
}

static void test_status_json(void **state)
{
	struct fx *f = *state;
	json_error_t jerr;
	json_t *root, *dps, *pools, *p, *nodes;
	struct sbuf b;

	sbuf_init(&b);
	metrics_status_json(&b, f->reports, 2, &f->info);
	assert_false(b.oom);
	root = json_loadb(b.p, b.len, 0, &jerr);
	if (!root)
		fail_msg("status JSON does not parse: %s at line %d", jerr.text, jerr.line);
	assert_string_equal(json_string_value(json_object_get(root, "role")), "control-plane");
	assert_string_equal(json_string_value(json_object_get(root, "version")), "0.2.0");
	assert_int_equal(json_integer_value(json_object_get(root, "generation")), 7);
	assert_true(json_is_true(json_object_get(root, "has_config")));
	assert_int_equal(json_integer_value(json_object_get(root, "dataplanes_connected")), 2);
	assert_true(json_is_null(json_object_get(root, "cp_connected")));
	assert_true(json_real_value(json_object_get(root, "uptime_secs")) == 12.5);

	dps = json_object_get(root, "dataplanes");
	assert_int_equal(json_array_size(dps), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(dps, 0), "id")),
	                    "dp-a");
	assert_string_equal(json_string_value(json_object_get(json_array_get(dps, 1), "id")),
	                    "dp-b\"x\\y\nz");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(dps, 0), "clients")),
	                 12);
	assert_true(json_is_true(json_object_get(json_array_get(dps, 0), "cp_connected")));
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(json_array_get(dps, 0), "paused"), 0)),
	    "app");

	pools = json_object_get(json_array_get(dps, 0), "pools");
	assert_int_equal(json_array_size(pools), 2);
	p = json_array_get(pools, 0);
	assert_string_equal(json_string_value(json_object_get(p, "database")), "app");
	assert_string_equal(json_string_value(json_object_get(p, "user")), "alice");
	assert_string_equal(json_string_value(json_object_get(p, "mode")), "transaction");
	assert_int_equal(json_integer_value(json_object_get(p, "cl_active")), 3);
	assert_int_equal(json_integer_value(json_object_get(p, "query_count")), 107);
	assert_int_equal(json_integer_value(json_object_get(p, "wait_timeouts")), 2);
	assert_true(json_real_value(json_object_get(p, "maxwait_secs")) == 0.1);
	assert_true(json_is_false(json_object_get(p, "paused")));
	assert_null(json_object_get(p, "wait_hist"));
	assert_null(json_object_get(p, "query_hist"));
	assert_int_equal(json_object_size(p), 21); /* every PoolStats field but 2 histograms */
	/* JSON has no NaN. */
	p = json_array_get(json_object_get(json_array_get(dps, 1), "pools"), 0);
	assert_true(json_is_null(json_object_get(p, "maxwait_secs")));
	assert_string_equal(json_string_value(json_object_get(p, "database")), "we\"ird\\db");

	nodes = json_object_get(root, "nodes");
	assert_int_equal(json_array_size(nodes), 2);
	assert_true(json_is_null(json_object_get(json_array_get(nodes, 0), "lag_ms")));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(nodes, 1), "lag_ms")),
	                 1500);
	assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 1), "error")),
	                    "connection refused");
	json_decref(root);
	sbuf_free(&b);

	/* A data plane: the link fields are filled in, invalid UTF-8 mended. */
	f->info.role = "dataplane";
	f->info.cp_connected = 1;
	f->info.cp_reconnects = 4;
	f->info.cp_last_contact_secs = 0.5;
	f->rep_a.dataplane_id = (char *)"dp\xfe";
	sbuf_init(&b);
	metrics_status_json(&b, f->reports, 1, &f->info);
	assert_false(b.oom);
	root = json_loadb(b.p, b.len, 0, &jerr);
	assert_non_null(root);
	assert_true(json_is_true(json_object_get(root, "cp_connected")));
	assert_int_equal(json_integer_value(json_object_get(root, "cp_reconnects")), 4);
	assert_true(json_real_value(json_object_get(root, "cp_last_contact_secs")) == 0.5);
	dps = json_object_get(root, "dataplanes");
	assert_string_equal(json_string_value(json_object_get(json_array_get(dps, 0), "id")),
	                    "dp\xef\xbf\xbd");
	json_decref(root);
	sbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cumulative_buckets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_histograms_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_utf8_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_help_type_before_samples, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_process_and_nodes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_link_families_by_role, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_xdp_families_only_where_the_filter_is_enabled,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_process_standard_families, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promtool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
