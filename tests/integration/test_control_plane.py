"""The control plane: helioctl live config, helios-cp survival, admin HTTP
(/metrics checked with real Prometheus parsers), pause/resume, the
PgBouncer-compatible admin console and snapshot versioning."""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ALICE, APPDB, MD5USER, free_port, helios_bin, run, sanitizer_report, wait_for

PGBENCH_SELECT = "SELECT 1;\n"


# ---------------------------------------------------------------------------
# helpers

def helioctl(p_or_cfg, *args, timeout=30, check=None):
    """Runs helioctl against a proxy (its config) or a config path."""
    cfg = p_or_cfg.config_path if hasattr(p_or_cfg, "config_path") else p_or_cfg
    r = run([str(helios_bin() / "helioctl"), "-c", str(cfg), *args], timeout=timeout, check=False)
    if check is not None:
        assert r.returncode == check, f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def helioctl_json(p_or_cfg, *args):
    r = helioctl(p_or_cfg, "--json", *args)
    assert r.returncode in (0, 4), f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def config_get(p, key):
    r = helioctl(p, "config", "get", key, check=0)
    return r.stdout.strip()


def default_control_url(port):
    """Where a heliosproxy without control_socket or state_dir listens for
    helioctl (common/rundir.h)."""
    if os.geteuid() == 0:
        d = "/run/heliosproxy"
    elif os.environ.get("XDG_RUNTIME_DIR", "").startswith("/"):
        d = os.environ["XDG_RUNTIME_DIR"].rstrip("/") + "/heliosproxy"
    else:
        d = f"/tmp/heliosproxy-{os.geteuid()}"
    return f"ipc://{d}/heliosproxy-{port}.ctl"


def http_get(port, path, timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def admin_port(p):
    return int(p.defaults["admin_address"].rsplit(":", 1)[1])


def pgbench_cmd(pg, port, script, *args):
    return [str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
            "-f", str(script), *args, APPDB]


def assert_no_failed(out):
    assert re.search(r"(?m)^number of failed transactions: 0\b", out), out
    m = re.search(r"(?m)^number of transactions actually processed: (\d+)", out)
    assert m and int(m.group(1)) > 0, out


def metric_samples(text):
    """name{labels} -> value, from Prometheus text (after a strict parse)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def metric_sum(samples, name):
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


class ControlPlane:
    """A helios-cp process for one config file."""

    def __init__(self, tmp_path, cfg_path, url, admin, env=None):
        self.tmp = tmp_path
        self.cfg_path = cfg_path
        self.url = url
        self.admin = admin
        self.env = env
        self.log_path = tmp_path / "helios-cp.log"
        self.proc = None

    def start(self):
        sock = self.url[len("ipc://"):]
        if os.path.exists(sock):
            os.unlink(sock)  # a kill -9 leaves it behind; nng would reclaim it too
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen([str(helios_bin() / "helios-cp"), "-c", str(self.cfg_path)],
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"helios-cp exited at start:\n{self.log()}"
            if os.path.exists(sock):
                return self
            time.sleep(0.05)
        raise AssertionError(f"helios-cp did not listen on {self.url}:\n{self.log()}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(15) == 0, self.log()
        report = sanitizer_report(self.log())
        assert report is None, f"{self.log_path} has a sanitizer report:\n{report}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture
def external(pg, proxy, config, tmp_path):
    """external(cfg_dict, cp_env=None) -> (ControlPlane, Proxy): a helios-cp and
    a heliosproxy attached to it through control_address, from one file."""
    started = []

    def start(cfg, cp_env=None):
        url = f"ipc://{tmp_path}/cp.sock"
        cp_admin = free_port()
        cfg = dict(cfg, control_address=url, control_admin_address=f"127.0.0.1:{cp_admin}")
        # the proxy fixture writes the file; helios-cp reads the same one
        listen = f"127.0.0.1:{free_port()}"
        admin = f"127.0.0.1:{free_port()}"
        from conftest import Proxy, io_backend
        tmp = Proxy(tmp_path, "heliosproxy-ext", {
            "listen_address": listen, "admin_address": admin, "workers": 2,
            "io_backend": io_backend(), "shutdown_timeout_secs": 5})
        tmp.write_config(cfg)
        cp = ControlPlane(tmp_path, tmp.config_path, url, cp_admin, cp_env).start()
        started.append(cp)
        p = proxy(cfg, listen_address=listen, admin_address=admin)
        return cp, p

    yield start
    reports = []
    for cp in started:
        if cp.proc and cp.proc.poll() is None:
            cp.proc.kill()
            cp.proc.wait(10)
        report = sanitizer_report(cp.log())
        if report:
            reports.append(f"{cp.log_path} has a sanitizer report:\n{report}")
    if reports:
        pytest.fail("\n\n".join(reports))


# ---------------------------------------------------------------------------
# live configuration

def test_config_set_lowers_pool_cap_under_load(pg, proxy, config, tmp_path):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 8, "query_wait_timeout_secs": 60}))
    assert pg.wait_server_conns(ALICE[0], APPDB, 0) == 0, "server connections left over"
    script = tmp_path / "sleep.sql"
    script.write_text("SELECT pg_sleep(0.02);\n")
    bench = subprocess.Popen(pgbench_cmd(pg, p.port, script, "-c", "10", "-j", "2", "-T", "8"),
                             env=pg.env(password=ALICE[1]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        before = wait_for(lambda: pg.server_conns(ALICE[0], APPDB) >= 6, timeout=6)
        assert before, "the load never used more than 5 server connections with max_pool_size = 8"
        r = helioctl(p, "config", "set", "pool_mode.max_pool_size", "3", check=0)
        assert "pool_mode.max_pool_size = 3" in r.stdout and "applied by 1 of 1" in r.stdout, r.stdout
        # the lowered cap shows on the server: excess connections close as released
        assert pg.wait_server_conns(ALICE[0], APPDB, at_most=3, timeout=6) <= 3
        samples = []
        for _ in range(20):
            samples.append(pg.server_conns(ALICE[0], APPDB))
            time.sleep(0.05)
        assert max(samples) <= 3, f"server connections above the new cap: {samples}"
        assert max(samples) >= 1, "the load stopped"
    finally:
        out = bench.communicate(timeout=60)[0]
    assert bench.returncode == 0, out
    assert_no_failed(out)
    assert config_get(p, "pool_mode.max_pool_size") == "3"


def test_invalid_config_set_is_refused_and_changes_nothing(proxy, config):
    p = proxy(config(pool={"max_pool_size": 7}))
    ovr = p.config_path.parent / (p.config_path.name + ".live.toml")
    before_file = ovr.read_text()
    gen0 = helioctl_json(p, "status")["generation"]
    cases = [
        (("pool_mode.max_pool_size", "0"), r"pool_mode\.max_pool_size.*0.*out of range"),
        (("pool_mode.max_pool_size", "many"), r"pool_mode\.max_pool_size.*many"),
        (("pool_mode.mode", "bogus"), r"pool_mode\.mode.*bogus.*session, transaction, statement"),
        (("pool_mode.max_pool_sise", "5"), r"did you mean 'pool_mode\.max_pool_size'"),
        (("pool_mode.min_idle", "50"), r"min_idle"),  # above max_pool_size: a cross-key rule
    ]
    for args, pattern in cases:
        r = helioctl(p, "config", "set", *args, check=1)
        assert re.search(pattern, r.stderr), (args, r.stderr)
    r = helioctl(p, "config", "set", "listen_address", "127.0.0.1:1", check=1)
    assert "restart" in r.stderr, r.stderr
    assert config_get(p, "pool_mode.max_pool_size") == "7"
    assert config_get(p, "listen_address") == f'"{p.defaults["listen_address"]}"'
    assert helioctl_json(p, "status")["generation"] == gen0
    assert ovr.read_text() == before_file
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_config_set_is_persisted_and_survives_a_restart(proxy, config):
    p = proxy(config(pool={"max_pool_size": 7}))
    helioctl(p, "config", "set", "pool_mode.max_pool_size", "11", check=0)
    helioctl(p, "config", "set", "pool_mode.mode", "transaction", check=0)
    ovr = p.config_path.parent / (p.config_path.name + ".live.toml")
    text = ovr.read_text()
    assert "pool_mode.max_pool_size = 11" in text and 'pool_mode.mode = "transaction"' in text
    assert oct(ovr.stat().st_mode & 0o777) == "0o600"
    assert not list(p.config_path.parent.glob("*.tmp")), "temp file left behind"
    diff = helioctl(p, "config", "diff", check=0).stdout
    assert re.search(r"pool_mode\.max_pool_size\s+7\s+11", diff), diff
    gen = helioctl_json(p, "status")["generation"]
    p.stop()
    p.start(p.config_path.read_text())  # same file, same overrides
    assert config_get(p, "pool_mode.max_pool_size") == "11"
    assert config_get(p, "pool_mode.mode") == '"transaction"'
    assert helioctl_json(p, "status")["generation"] > gen
    helioctl(p, "config", "reset", "pool_mode.max_pool_size", check=0)
    assert config_get(p, "pool_mode.max_pool_size") == "7"


def test_helioctl_reload_rereads_the_file_and_refuses_a_broken_one(proxy, config):
    p = proxy(config(pool={"max_pool_size": 7}))
    good = p.config_path.read_text()
    p.rewrite_config(good.replace("max_pool_size = 7", "max_pool_size = 9"))
    r = helioctl(p, "reload", check=0)
    assert "reloaded" in r.stdout
    assert config_get(p, "pool_mode.max_pool_size") == "9"
    p.rewrite_config(good.replace("max_pool_size = 7", "max_pool_size = = 9"))
    # helioctl cannot read the address from a broken file: it says so
    r = helioctl(p, "reload", check=2)
    assert "-a URL" in r.stderr, r.stderr
    url = default_control_url(p.port)
    r = run([str(helios_bin() / "helioctl"), "-a", url, "reload"], check=False)
    assert r.returncode == 1, r
    assert re.search(rf"{re.escape(p.config_path.name)}:\d+", r.stderr), r.stderr
    r = run([str(helios_bin() / "helioctl"), "-a", url, "config", "get",
             "pool_mode.max_pool_size"], check=False)
    assert r.returncode == 0 and r.stdout.strip() == "9", r


def test_helioctl_verbs_answer_in_tables_and_json(pg, proxy, config):
    p = proxy(config(mode="transaction"))
    with p.connect() as c:
        c.execute("SELECT 1")
        status = helioctl(p, "status", check=0).stdout
        assert re.search(r"(?m)^DATAPLANE\s+CONNECTED\s+GENERATION", status), status
        assert re.search(r"(?m)\syes\s", status), status
        pools = helioctl(p, "pools", check=0).stdout
        assert re.search(rf"(?m)\s{APPDB}\s+{ALICE[0]}\s+primary\s+transaction\s", pools), pools
        clients = helioctl_json(p, "clients")
        rows = [cl for dp in clients["dataplanes"] for cl in dp["report"]["client_list"]]
        assert any(r["user"] == ALICE[0] and r["database"] == APPDB for r in rows), rows
        c.execute("BEGIN")
        c.execute("SELECT 1")
        servers = helioctl_json(p, "servers")
        srows = [s for dp in servers["dataplanes"] for s in dp["report"]["server_list"]]
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert any(s["pid"] == pid and s["state"] == "active" for s in srows), srows
        c.execute("COMMIT")
    nodes = helioctl_json(p, "nodes")["nodes"]
    assert {n["name"]: n["healthy"] for n in nodes} == {"primary": True, "replica": True}
    stats = helioctl(p, "stats", check=0).stdout
    assert re.search(rf"(?m){APPDB}\s+{ALICE[0]}\s+\d+\s+\d+", stats), stats
    for verb in ["status", "pools", "clients", "servers", "nodes", "stats", "config", "reload",
                 "pause", "resume", "drain"]:
        r = helioctl(p, verb, "--help", check=0)
        assert verb in r.stdout and "usage" in r.stdout.lower(), (verb, r.stdout)
    assert helioctl(p, "nosuchverb").returncode == 2


def test_helioctl_without_a_control_plane_exits_3(tmp_path):
    r = run([str(helios_bin() / "helioctl"), "-a", f"ipc://{tmp_path}/none.sock", "status"],
            check=False)
    assert r.returncode == 3 and "no control plane" in r.stderr, r


def test_drain_closes_idle_connections_of_the_node(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"min_idle": 0}))
    with p.connect() as c:
        c.execute("SELECT 1")
    assert wait_for(lambda: pg.server_conns(ALICE[0], APPDB) >= 1, timeout=3)
    helioctl(p, "drain", "primary", check=0)
    assert pg.wait_server_conns(ALICE[0], APPDB, at_most=0, timeout=5) == 0
    nodes = {n["name"]: n for n in helioctl_json(p, "nodes")["nodes"]}
    assert nodes["primary"]["draining"] and not nodes["replica"]["draining"]
    helioctl(p, "undrain", "primary", check=0)
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert helioctl(p, "drain", "nosuchnode").returncode == 1


# ---------------------------------------------------------------------------
# pause / resume

def test_pause_holds_new_queries_and_resume_releases_them(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"query_wait_timeout_secs": 2}))
    with p.connect() as warm:
        warm.execute("SELECT 1")  # the pool knows the login parameters
    inside = p.connect()
    inside.execute("BEGIN")
    inside.execute("SELECT 1")
    helioctl(p, "pause", APPDB, check=0)
    results, errors = [], []

    def client(i):
        try:
            t0 = time.monotonic()
            with p.connect() as c:
                v = c.execute("SELECT %s::int", (i,)).fetchone()[0]
                results.append((v, time.monotonic() - t0))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    time.sleep(3)  # longer than query_wait_timeout: a pause is not a wait timeout
    assert results == [] and errors == [], (results, errors)
    # the running transaction finishes while paused
    assert inside.execute("SELECT 2").fetchone() == (2,)
    inside.execute("COMMIT")
    inside.close()
    listed = helioctl_json(p, "clients")
    states = [cl["state"] for dp in listed["dataplanes"] for cl in dp["report"]["client_list"]]
    assert states.count("paused") == 5, states
    helioctl(p, "resume", APPDB, check=0)
    for t in threads:
        t.join(20)
    assert errors == [], errors
    assert sorted(v for v, _ in results) == list(range(5))
    assert min(d for _, d in results) >= 1.0, results


# ---------------------------------------------------------------------------
# admin HTTP

def parse_strictly(text):
    """Checks Prometheus text with promtool and with prometheus_client's parser."""
    checked = 0
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, f"promtool check metrics:\n{r.stdout}{r.stderr}"
        checked += 1
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families:
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families, "no metric families"
        checked += 1
    if not checked:
        pytest.fail("neither promtool nor python3-prometheus-client is installed (make deps)")
    return metric_samples(text)


def test_metrics_parse_as_prometheus_text_and_move_with_load(pg, proxy, config):
    p = proxy(config(mode="transaction"))
    port = admin_port(p)
    with p.connect() as c:
        c.execute("SELECT 1")
    status, body, ctype = http_get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    before = parse_strictly(body)
    with p.connect() as c:
        for _ in range(50):
            c.execute("SELECT 1")
    status, body, _ = http_get(port, "/metrics")
    after = parse_strictly(body)
    for name in ["helios_queries_total", "helios_transactions_total",
                 "helios_received_bytes_total", "helios_sent_bytes_total",
                 "helios_pool_query_seconds_count", "helios_logins_total"]:
        assert metric_sum(after, name) > metric_sum(before, name), name
    assert metric_sum(after, "helios_queries_total") - metric_sum(before, "helios_queries_total") >= 50
    assert metric_sum(after, "helios_config_generation") >= 1
    assert metric_sum(after, "helios_dataplanes_connected") == 1
    assert any(k.startswith("helios_pool_servers_idle{") for k in after), "no per-pool gauges"
    assert any(k.startswith('helios_pool_wait_seconds_bucket{') and 'le="+Inf"' in k for k in after)
    assert any(k.startswith("helios_pins_total{") for k in after)
    assert after.get('helios_node_up{node="primary",role="primary"}') == 1.0, \
        [k for k in after if k.startswith("helios_node_up")]
    status, body, ctype = http_get(port, "/status")
    doc = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert any(pl["database"] == APPDB for dp in doc["dataplanes"] for pl in dp["pools"]), doc
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/readyz")[0] == 200
    assert http_get(port, "/nope")[0] == 404


def test_readyz_fails_without_a_reachable_primary(pg, proxy, config):
    # ready while routing.failover_timeout_secs runs (clients wait for a
    # primary meanwhile), then not (test_container_config.py times it)
    cfg = config(routing={"failover_timeout_secs": 1})
    cfg["nodes"][0]["port"] = free_port()  # nothing listens there
    p = proxy(cfg)
    assert wait_for(lambda: http_get(admin_port(p), "/readyz")[0] == 503, timeout=10)
    status, body, _ = http_get(admin_port(p), "/readyz")
    assert status == 503 and "primary" in body, (status, body)
    assert http_get(admin_port(p), "/healthz")[0] == 200


# ---------------------------------------------------------------------------
# admin console

def psql_admin(pg, p, sql, user=ALICE, check=True):
    return run([str(pg.bin / "psql"), "-X", "-h", "127.0.0.1", "-p", str(p.port), "-U", user[0],
                "-d", "heliosproxy", "-c", sql], env=pg.env(password=user[1]), check=check,
               timeout=30)


def test_show_console_answers_through_psql(pg, proxy, config):
    p = proxy(config(mode="transaction", admin_users=ALICE[0]))
    with p.connect() as c:
        c.execute("SELECT 1")
        pools = psql_admin(pg, p, "SHOW POOLS").stdout
        header = pools.splitlines()[0]
        cols = [x.strip() for x in header.split("|")]
        assert cols[:8] == ["database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
                            "cl_waiting_cancel_req", "sv_active", "sv_active_cancel"], cols
        assert "pool_mode" in cols and "maxwait" in cols
        assert re.search(rf"(?m)^\s*{APPDB}\s*\|\s*{ALICE[0]}\s*\|", pools), pools
        clients = psql_admin(pg, p, "show clients;").stdout
        assert re.search(rf"(?m)^\s*C\s*\|\s*{ALICE[0]}\s*\|\s*{APPDB}\s*\|", clients), clients
    stats = psql_admin(pg, p, "SHOW STATS").stdout
    assert "total_query_count" in stats and re.search(rf"(?m)^\s*{APPDB}\s*\|\s*[1-9]", stats), stats
    for sql, needle in [("SHOW SERVERS", "remote_pid"), ("SHOW DATABASES", "pool_size"),
                        ("SHOW CONFIG", "pool_mode.max_pool_size"), ("SHOW VERSION", "HeliosProxy")]:
        assert needle in psql_admin(pg, p, sql).stdout, sql
    r = psql_admin(pg, p, "SHOW NONSENSE", check=False)
    assert r.returncode != 0 and "SHOW HELP" in r.stderr, r.stderr
    # PAUSE / RESUME from the console go through the control plane
    psql_admin(pg, p, f"PAUSE {APPDB}")
    assert helioctl_json(p, "status")["paused"] == [APPDB]
    psql_admin(pg, p, f"RESUME {APPDB}")
    assert helioctl_json(p, "status")["paused"] == []
    assert "RELOAD" in psql_admin(pg, p, "RELOAD").stdout


def test_console_refuses_users_not_in_admin_users(pg, proxy, config):
    p = proxy(config(admin_users=ALICE[0]))
    r = psql_admin(pg, p, "SHOW POOLS", user=MD5USER, check=False)
    assert r.returncode != 0 and "admin_users" in r.stderr, r.stderr
    r = psql_admin(pg, p, "SHOW POOLS", user=(ALICE[0], "wrong"), check=False)
    assert r.returncode != 0 and "password authentication failed" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# external helios-cp: survival and versioning

def test_kill9_control_plane_under_pgbench_loses_nothing(pg, external, config, tmp_path):
    cp, p = external(config(mode="transaction", pool={"max_pool_size": 10}))
    script = tmp_path / "select.sql"
    script.write_text(PGBENCH_SELECT)
    st = helioctl_json(p, "status")
    assert [d["connected"] for d in st["dataplanes"]] == [True]
    bench = subprocess.Popen(pgbench_cmd(pg, p.port, script, "-c", "10", "-j", "2", "-T", "10"),
                             env=pg.env(password=ALICE[1]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        cp.kill9()
        # the data plane notices and says so in its metrics
        assert wait_for(lambda: metric_samples(http_get(admin_port(p), "/metrics")[1]).get(
            f'helios_control_plane_connected{{dataplane="{st["dataplanes"][0]["dataplane_id"]}"}}')
            == 0.0, timeout=8), "helios_control_plane_connected stayed 1"
        assert helioctl(p, "status").returncode == 3
        time.sleep(1)
        cp.start()
        assert p.wait_log(r"control plane at .*: connected", start=0)
        st2 = wait_for(lambda: (lambda s: s if s["dataplanes"] and s["dataplanes"][0]["connected"]
                                else None)(helioctl_json(p, "status")), timeout=10)
        assert st2, "the data plane did not re-register"
    finally:
        out = bench.communicate(timeout=60)[0]
    assert bench.returncode == 0, out
    assert_no_failed(out)
    assert re.search(r"control plane at .* lost", p.log()), p.log_tail()
    m = metric_samples(http_get(admin_port(p), "/metrics")[1])
    assert metric_sum(m, "helios_control_plane_reconnects_total") >= 1
    assert metric_sum(m, "helios_control_plane_connected") == 1
    # the restarted control plane serves the cluster view
    status, body, _ = http_get(cp.admin, "/metrics")
    assert status == 200 and metric_sum(parse_strictly(body), "helios_dataplanes_connected") == 1


def test_config_change_survives_a_control_plane_restart(pg, external, config):
    cp, p = external(config(pool={"max_pool_size": 7}))
    helioctl(p, "config", "set", "pool_mode.max_pool_size", "13", check=0)
    gen = helioctl_json(p, "status")["generation"]
    cp.stop()
    cp.start()
    assert config_get(p, "pool_mode.max_pool_size") == "13"
    st = wait_for(lambda: (lambda s: s if s["dataplanes"] and s["dataplanes"][0]["generation"]
                           == s["generation"] else None)(helioctl_json(p, "status")), timeout=10)
    assert st and st["generation"] > gen, st
    stat = os.stat(cp.url[len("ipc://"):])
    assert oct(stat.st_mode & 0o777) == "0o600", oct(stat.st_mode)


def test_newer_snapshot_schema_is_refused_cleanly(pg, external, config):
    cp, p = external(config(pool={"max_pool_size": 7}), cp_env={"HELIOS_CP_SNAPSHOT_SCHEMA": "2"})
    assert p.wait_log(r"refused configuration generation \d+ .*schema version 2.*understands "
                      r"version 1", timeout=10), p.log_tail()
    st = wait_for(lambda: (lambda s: s if s["dataplanes"] and s["dataplanes"][0]["last_error"]
                           else None)(helioctl_json(p, "status")), timeout=10)
    assert st and "schema version 2" in st["dataplanes"][0]["last_error"], st
    assert st["dataplanes"][0]["generation"] != st["generation"]
    # it keeps serving its local file
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    r = helioctl(p, "config", "set", "pool_mode.max_pool_size", "8")
    assert r.returncode == 4 and "refused it" in r.stderr and "schema version 2" in r.stderr, r


def test_control_socket_may_be_tcp(proxy, config):
    port = free_port()
    p = proxy(config(control_socket=f"tcp://127.0.0.1:{port}"))
    r = run([str(helios_bin() / "helioctl"), "-a", f"tcp://127.0.0.1:{port}", "status"],
            check=False)
    assert r.returncode == 0 and re.search(r"(?m)\syes\s", r.stdout), r
    # helioctl -c finds the same address in the file
    assert helioctl(p, "config", "get", "control_socket", check=0).stdout.strip() == \
        f'"tcp://127.0.0.1:{port}"'
