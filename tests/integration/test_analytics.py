"""Query analytics: per-fingerprint statistics (helioctl top, /metrics) and
the slow query log (JSON lines without literal values)."""

import json
import re
import shutil
import subprocess
import urllib.request

import psycopg

from conftest import helioctl, wait_for


def top(p):
    doc = json.loads(helioctl(p, "--json", "top").stdout)
    return [q for dp in doc["dataplanes"] for q in (dp["report"] or {}).get("queries", [])]


def analytics_config(config, tmp_path, **extra):
    cfg = config(mode="transaction")
    cfg["analytics"] = {"enabled": True, "slow_query_threshold_ms": 150,
                        "slow_query_log": str(tmp_path / "slow.jsonl"), **extra}
    return cfg


def test_statements_are_counted_per_fingerprint(proxy, config, tmp_path):
    p = proxy(analytics_config(config, tmp_path))
    with p.connect() as c:
        for i in range(30):
            c.execute(f"SELECT {i} + 1 AS n")  # different constants, one fingerprint
        for i in range(5):
            c.execute("SELECT %s::int * 2", (i,))  # extended protocol
        for _ in range(3):
            try:
                c.execute("SELECT 1 / 0")
            except psycopg.errors.DivisionByZero:
                pass
        c.execute("SELECT generate_series(1, 7)")
    qs = top(p)
    by_text = {q["query"]: q for q in qs}
    simple = [q for q in qs if re.fullmatch(r"SELECT \$1 \+ \$2 AS n", q["query"])]
    assert simple and simple[0]["calls"] == 30, by_text.keys()
    assert simple[0]["rows"] == 30
    ext = [q for q in qs if q["query"].startswith("SELECT $1::int * $2")]
    assert ext and ext[0]["calls"] == 5, by_text.keys()
    div = [q for q in qs if q["query"] == "SELECT $1 / $2"]
    assert div and div[0]["errors"] == 3 and div[0]["calls"] == 3, by_text.keys()
    series = [q for q in qs if "generate_series" in q["query"]]
    assert series and series[0]["rows"] == 7
    q = simple[0]
    assert 0 < q["min_secs"] <= q["p50_secs"] <= q["p95_secs"] <= q["p99_secs"] <= q["max_secs"] * 1.02
    assert q["node"] == "primary" and q["database"] and q["user"]
    # table output, sorted by calls
    out = helioctl(p, "top", "--by", "calls").stdout
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["DATAPLANE", "FINGERPRINT", "CALLS"]
    assert int(lines[1].split()[2]) == 30, out
    assert helioctl(p, "top", "--by", "bogus", check=2).returncode == 2


def test_metrics_export_top_fingerprints(proxy, config, tmp_path):
    p = proxy(analytics_config(config, tmp_path, metrics_top=5))
    with p.connect() as c:
        for i in range(10):
            c.execute(f"SELECT {i}")
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.read().decode()
    text = wait_for(lambda: (lambda t: t if "helios_query_calls_total{" in t else None)(scrape()),
                    timeout=5)
    assert text, "no per-fingerprint metrics"
    m = re.search(r'helios_query_calls_total\{dataplane="[^"]+",fingerprint="[0-9a-f]{16}"\} (\d+)',
                  text)
    assert m and int(m.group(1)) >= 10, text
    assert len(re.findall(r"(?m)^helios_query_calls_total\{", text)) <= 5
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr


def test_slow_log_has_json_lines_without_literals(proxy, config, tmp_path):
    p = proxy(analytics_config(config, tmp_path))
    secret = "s3cr3t-value-4711"
    with p.connect() as c:
        c.execute(f"SELECT pg_sleep(0.2), '{secret}' AS x, 987654321 AS y")
        c.execute("SELECT pg_sleep(0.01)")  # under the threshold
    log = tmp_path / "slow.jsonl"
    assert wait_for(lambda: log.exists() and log.read_text().strip(), timeout=5), "no slow log"
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    doc = json.loads(lines[0])
    assert doc["duration_ms"] >= 200 and doc["user"] and doc["database"] and doc["node"] == "primary"
    assert re.fullmatch(r"[0-9a-f]{16}", doc["fingerprint"])
    assert "pg_sleep" in doc["query"] and "$1" in doc["query"]
    assert secret not in lines[0] and "987654321" not in lines[0] and "0.2" not in doc["query"]
    out = helioctl(p, "slowlog", "-n", "5").stdout
    assert out.strip() and secret not in out
    assert json.loads(out.strip().splitlines()[-1])["fingerprint"] == doc["fingerprint"]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_analytics_off_records_nothing(proxy, config):
    p = proxy(config(mode="transaction"))
    with p.connect() as c:
        c.execute("SELECT 1")
    assert top(p) == []
