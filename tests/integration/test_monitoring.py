"""deploy/monitoring: the Prometheus alert rules pass `promtool check rules`
and their `promtool test rules` unit tests; the Grafana dashboard's and the
rules' PromQL parse and name only metrics that a running heliosproxy and
helios-cp export (scraped, with a pool, traffic, the cache, a rate limit and
a replica so that the labelled series exist); both /metrics outputs have
each family once, with HELP and TYPE (prometheus_client's parser)."""

import json
import re
import shutil
import subprocess
from collections import Counter

import pytest
import yaml

from conftest import ALICE, APPDB, ROOT, wait_for
from test_control_plane import admin_port, external, http_get  # noqa: F401 (fixture)
from test_routing import wait_replicated

MON = ROOT / "deploy" / "monitoring"
RULES = MON / "prometheus-rules.yaml"
DASHBOARD = MON / "grafana-dashboard.json"
RULE_TESTS = sorted((MON / "tests").glob("*.yaml"))

# Every family the dashboard or the rules may name starts with one of these;
# anything else (up, node_exporter's, a typo) is not the proxy's.
PREFIXES = ("helios_", "process_")


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed (Debian's prometheus package: make deps)")
    return path


def run_promtool(*args):
    r = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def load_rules():
    return yaml.safe_load(RULES.read_text())


def alert_rules():
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def dashboard_exprs():
    """(panel title, expr) for every query of every panel, and the template
    variables' queries."""
    d = json.loads(DASHBOARD.read_text())
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
            assert m, f"variable {v['name']}: unexpected query {q}"
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def concrete(expr):
    """The dashboard's expression with Grafana's variables replaced, as
    Prometheus would receive it."""
    return (expr.replace("$__rate_interval", "1m").replace("$job", ".+")
            .replace("$dataplane", ".*"))


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers outside
    label matchers, strings, ranges and grouping clauses that are not
    functions, aggregations or keywords."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, legends)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range and subquery durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if (rest.startswith("(") or re.match(r"(by|without)\b", rest)
                or word.lower() in PROMQL_WORDS):
            continue  # a function or aggregation ("sum by (...) (...)"), or a keyword
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # a number's exponent or unit (1e3, 5m)
        names.add(word)
    return names


# ---------------------------------------------------------------------------
# static: no proxy, no PostgreSQL

def test_alert_rules_pass_promtool_check():
    rc, out = run_promtool("check", "rules", str(RULES))
    assert rc == 0, out
    n = len(alert_rules())
    assert f"SUCCESS: {n} rules found" in out, out


def test_alert_rules_unit_tests_fire_every_alert_and_stay_silent_when_healthy():
    assert RULE_TESTS, "no promtool unit tests in deploy/monitoring/tests"
    rc, out = run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert rc == 0, out
    fired, silent = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fired if t.get("exp_alerts") else silent).add(t["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fired == set(), f"alerts no unit test makes fire: {names - fired}"
    assert names - silent == set(), f"alerts with no healthy (silent) case: {names - silent}"


def test_alert_rules_have_for_severity_and_templated_annotations():
    required = {"HeliosPoolExhausted", "HeliosClientsWaiting", "HeliosReplicaLagHigh",
                "HeliosBreakerOpen", "HeliosControlPlaneUnreachable",
                "HeliosConfigNotAcknowledged", "HeliosAuthFailureBurst"}
    rules = alert_rules()
    assert required <= {r["alert"] for r in rules}
    for r in rules:
        assert r.get("for"), f"{r['alert']}: no for:"
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        a = r["annotations"]
        assert "$labels." in a["summary"] + a["description"], f"{r['alert']}: no $labels"


def test_dashboard_is_grafana_json_over_the_datasource_variable():
    d = json.loads(DASHBOARD.read_text())
    assert d["schemaVersion"] >= 36 and d["uid"] and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "dataplane"} <= variables.keys()
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
    # panels do not overlap on the 24-column grid
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    # the list of panels, by the metric each one shows
    names = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    for want in ["helios_pool_servers_active", "helios_pool_servers_idle",
                 "helios_pool_clients_waiting", "helios_pool_wait_seconds_bucket",
                 "helios_transactions_total", "helios_queries_total",
                 "helios_query_errors_total", "helios_node_replication_lag_seconds",
                 "helios_node_breaker_state", "helios_cache_hits_total",
                 "helios_rate_limit_throttled_total", "helios_splice_sessions_active",
                 "helios_config_generation", "helios_dataplane_config_generation",
                 "helios_control_plane_last_contact_seconds", "process_cpu_seconds_total",
                 "process_resident_memory_bytes", "process_open_fds"]:
        assert want in names, f"no panel shows {want}"


def test_dashboard_queries_parse_as_promql(tmp_path):
    # promtool parses every expression of a rule file: each query becomes a
    # recording rule
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": concrete(e)}
        for i, (_, e) in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    rc, out = run_promtool("check", "rules", str(path))
    assert rc == 0, out


def test_metric_name_extraction_sees_selectors_not_keywords():
    # the extractor the scrape test relies on
    assert metric_names('sum by (le, dataplane) (rate(helios_pool_wait_seconds_bucket'
                        '{job=~"$job"}[5m])) / on (job) group_left () helios_x') == {
        "helios_pool_wait_seconds_bucket", "helios_x"}
    assert metric_names("time() - process_start_time_seconds > 1e3") == {
        "process_start_time_seconds"}
    assert metric_names('count(a{state="open"} == 1) or vector(0)') == {"a"}


# ---------------------------------------------------------------------------
# against running programs

def scrape(port):
    status, body, ctype = http_get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    return body


def families(text):
    from prometheus_client.parser import text_string_to_metric_families
    return list(text_string_to_metric_families(text))


def sample_names(text):
    return {s.name for f in families(text) for s in f.samples}


@pytest.fixture
def running(pg, external, config):
    """A helios-cp and a heliosproxy attached to it, with the cache, a
    throttling rate limit and read/write split over the replica; a pool used
    by traffic that hits the cache, waits for a token and fails once.
    Returns (data plane /metrics, helios-cp /metrics) once every family the
    traffic makes has a sample on both."""
    cfg = config(mode="transaction")
    cfg["cache"] = {"enabled": True}
    cfg["rate_limit"] = {"queries_per_second": 50, "burst_size": 5, "mode": "throttle"}
    cfg["routing"] = {"read_write_split": True}
    cfg["analytics"] = {"enabled": True}  # the per-fingerprint families
    cp, p = external(cfg)
    with pg.superuser(dbname=APPDB) as su:
        su.execute("CREATE TABLE IF NOT EXISTS mon_t (id int PRIMARY KEY, v text)")
        su.execute("INSERT INTO mon_t VALUES (1, 'a') ON CONFLICT DO NOTHING")
        su.execute(f"GRANT SELECT ON mon_t TO {ALICE[0]}")
    wait_replicated(pg, "mon_t")  # read_write_split sends the SELECTs there
    with p.connect() as c:
        c.autocommit = True
        for _ in range(20):  # over the burst: some wait for a token
            c.execute("SELECT v FROM mon_t WHERE id = 1").fetchall()
        with pytest.raises(Exception):
            c.execute("SELECT 1/0")
    want = ["helios_pool_servers_active", "helios_cache_hits_total",
            "helios_rate_limit_throttled_total", "helios_query_errors_total",
            "helios_node_replication_lag_seconds", "helios_control_plane_last_contact_seconds",
            "helios_dataplane_config_generation", "helios_pool_wait_seconds_bucket"]
    texts = {}

    def complete():  # helios-cp has them after the data plane's next heartbeat
        texts["dp"], texts["cp"] = scrape(admin_port(p)), scrape(cp.admin)
        have = sample_names(texts["dp"]) & sample_names(texts["cp"])
        return all(w in have for w in want)

    if not wait_for(complete, timeout=15, interval=0.5):
        have = (sample_names(texts["dp"]), sample_names(texts["cp"]))
        pytest.fail(f"missing on the data plane: {[w for w in want if w not in have[0]]}, "
                    f"on helios-cp: {[w for w in want if w not in have[1]]}")
    return texts["dp"], texts["cp"], p, cp


def test_both_metrics_outputs_have_each_family_once_with_help_and_type(running):
    dp_text, cp_text, _, _ = running
    for who, text in (("heliosproxy", dp_text), ("helios-cp", cp_text)):
        fams = families(text)
        twice = [n for n, k in Counter(f.name for f in fams).items() if k > 1]
        assert not twice, f"{who}: families that appear twice: {twice}"
        for f in fams:
            assert f.type != "unknown", f"{who}: {f.name} has no TYPE"
            assert f.documentation, f"{who}: {f.name} has no HELP"
        by_name = {f.name: f for f in fams}
        # the gauge and the counter that used to share one family name
        assert by_name["helios_splice_sessions_active"].type == "gauge", who
        assert by_name["helios_splice_sessions"].type == "counter", who
        for name in ["process_cpu_seconds", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds"]:
            assert name in by_name, f"{who}: no {name}"
        rss = by_name["process_resident_memory_bytes"].samples[0].value
        fds = by_name["process_open_fds"].samples[0].value
        assert rss > 1 << 20 and 3 <= fds <= by_name["process_max_fds"].samples[0].value, who


def test_process_metrics_are_the_programs_own(running):
    _, _, p, cp = running
    for pid, text in ((p.pid, running[0]), (cp.proc.pid, running[1])):
        got = {s.name: s.value for f in families(text) for s in f.samples}
        with open(f"/proc/{pid}/statm") as f:
            rss_pages = int(f.read().split()[1])
        import os
        page = os.sysconf("SC_PAGE_SIZE")
        # within 50% of what /proc says a moment later (it moves with load)
        assert 0.5 < got["process_resident_memory_bytes"] / (rss_pages * page) < 1.5
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert abs(got["process_open_fds"] - fds) <= 8, (got["process_open_fds"], fds)
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        with open(f"/proc/{pid}/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        assert abs(got["process_start_time_seconds"] - (btime + start)) < 1.0


def test_every_per_dataplane_series_has_the_dataplane_label(running):
    dp_text, cp_text, _, _ = running
    per_dp = re.compile(r"^helios_(pool_|cache_|rate_limit_|splice_|query_|pins_|clients|"
                        r"client_|queries|transactions|received|sent|logins|login_|control_plane_|"
                        r"dataplane_config)")
    for who, text in (("heliosproxy", dp_text), ("helios-cp", cp_text)):
        seen = 0
        for f in families(text):
            for s in f.samples:
                if per_dp.match(s.name):
                    seen += 1
                    assert s.labels.get("dataplane"), f"{who}: {s.name}{s.labels} has no dataplane"
        assert seen > 50, who
    assert 'helios_control_plane_last_contact_seconds{dataplane="' in dp_text
    assert 'helios_control_plane_last_contact_seconds{dataplane="' in cp_text


def test_config_generation_acknowledged_is_the_published_one(running):
    # the healthy case of HeliosConfigNotAcknowledged, on real output
    _, cp_text, _, _ = running
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in families(cp_text) for s in f.samples}
    live = got[("helios_config_generation", ())]
    acks = [v for (n, _), v in got.items() if n == "helios_dataplane_config_generation"]
    assert acks and all(v == live for v in acks), (live, acks)


def test_dashboard_and_rules_name_only_exported_metrics(running):
    dp_text, cp_text, _, _ = running
    exported = sample_names(dp_text) | sample_names(cp_text)
    used = {}
    for title, e in dashboard_exprs():
        for n in metric_names(e):
            used.setdefault(n, []).append(f"dashboard panel {title!r}")
    for r in load_rules()["groups"]:
        for rule in r["rules"]:
            for n in metric_names(rule["expr"]):
                used.setdefault(n, []).append(f"alert {rule['alert']}")
    assert len(used) > 40, sorted(used)
    unknown = {n: where for n, where in used.items()
               if n not in exported or not n.startswith(PREFIXES)}
    assert not unknown, f"names no program exports: {unknown}"
