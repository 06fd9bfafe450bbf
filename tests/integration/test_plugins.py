"""WASM plugins in the data plane (issue 20): [[plugins]] from the proxy's
config, with real PostgreSQL and real clients (psycopg, psql, pgbench).

The modules are the runtime's test modules (tests/plugins/*.wat, assembled
here with wat2wasm) and small ones written below; the samples of plugins/ are
run through psql when the build made them. Every pooling mode, the simple
and the extended protocol (psycopg prepare=True), plain and TLS clients."""

import json
import re
import subprocess
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, DEFAULT_USERS, PGB_AUTH, ROOT, helios_bin, run, wait_for

WAT = ROOT / "tests" / "plugins"

# on_query_start loops without end: the budget or the clock cuts it
SPIN = """(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32)
    (loop $again (br $again))
    (i32.const 0)))"""

# on_query_start traps at once
TRAP = """(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32) (unreachable)))"""

# on_query_start grows its memory until memory.grow says -1, then rewrites
# the statement to SELECT <pages it got> (two decimal digits at most)
HOG = """(module
  (import "helios" "rewrite" (func $rewrite (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "SELECT 00")
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32)
    (local $p i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (local.set $p (memory.size))
    (i32.store8 (i32.const 7) (i32.add (i32.const 48) (i32.div_u (local.get $p) (i32.const 10))))
    (i32.store8 (i32.const 8) (i32.add (i32.const 48) (i32.rem_u (local.get $p) (i32.const 10))))
    (call $rewrite (i32.const 0) (i32.const 9))
    (i32.const 0)))"""

# every hook logs what it sees: user, SQL, fingerprint/status, SQLSTATE/message
SPY = """(module
  (import "helios" "field" (func $field (param i32 i32 i32) (result i32)))
  (import "helios" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "conn ")
  (data (i32.const 8) "start ")
  (data (i32.const 16) "done ")
  (data (i32.const 24) "error ")
  (func $say (param $tag i32) (param $tl i32) (param $f i32)
    (local $n i32)
    (memory.copy (i32.const 1024) (local.get $tag) (local.get $tl))
    (local.set $n (call $field (local.get $f) (i32.add (i32.const 1024) (local.get $tl))
                        (i32.const 2000)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (if (i32.gt_s (local.get $n) (i32.const 2000)) (then (local.set $n (i32.const 2000))))
    (call $log (i32.const 2) (i32.const 1024) (i32.add (local.get $tl) (local.get $n))))
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_connection") (result i32)
    (call $say (i32.const 0) (i32.const 5) (i32.const 1)) (i32.const 0))
  (func (export "on_query_start") (result i32)
    (call $say (i32.const 8) (i32.const 6) (i32.const 6)) (i32.const 0))
  (func (export "on_query_complete") (result i32)
    (call $say (i32.const 16) (i32.const 5) (i32.const 10)) (i32.const 0))
  (func (export "on_error") (result i32)
    (call $say (i32.const 24) (i32.const 6) (i32.const 11)) (i32.const 0)))"""


def wasm(tmp_path, name, text=None):
    """name.wasm in tmp_path from text (WAT), or from tests/plugins/name.wat."""
    src = tmp_path / f"{name}.wat"
    src.write_text(text if text is not None else (WAT / f"{name}.wat").read_text())
    out = tmp_path / f"{name}.wasm"
    run(["wat2wasm", str(src), "-o", str(out)])
    return out


def plugin(name, path, **kw):
    return {"name": name, "path": str(path), **kw}


def metrics(p):
    with urllib.request.urlopen(f"http://{p.defaults['admin_address']}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(p, name, plugin_name):
    m = re.search(rf'^{name}{{plugin="{re.escape(plugin_name)}"}} (\S+)$', metrics(p), re.M)
    return float(m.group(1)) if m else None


def ms_since(t0):
    return (time.monotonic() - t0) * 1000


@pytest.fixture
def tls(cert):
    return cert


def replica_usable(p):
    """The control plane sees the replica healthy and its lag known."""
    def ok():
        r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), "--json", "nodes"],
                check=False, timeout=30)
        if r.returncode not in (0, 4):
            return False
        n = {x["name"]: x for x in json.loads(r.stdout)["nodes"]}
        return n["replica"]["healthy"] and 0 <= n["replica"]["lag_ms"] < 1000
    assert wait_for(ok, timeout=15)


def start(proxy, config, plugins, mode="transaction", tls=None, users=None, **top):
    top.setdefault("routing", {"check_database": APPDB, "lag_check_interval_secs": 1})
    cfg = config(mode=mode, users=users, **top)
    cfg["plugins"] = plugins
    if tls:
        crt, key = tls
        cfg["tls"] = {"client_mode": "require", "cert_file": str(crt), "key_file": str(key)}
    return proxy(cfg)


def connect(p, tls, **kw):
    extra = {"sslmode": "require"} if tls else {"sslmode": "disable"}
    return p.connect(**extra, **kw)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_plugin_denies_rewrites_and_routes_in_every_pooling_mode(pg, proxy, config, tmp_path,
                                                               tls, mode, use_tls):
    """tests/plugins/api.wat: DROP... is denied with its SQLSTATE and message
    (simple and extended protocol; the connection goes on), select... is
    rewritten to SELECT 2, every statement gets route = replica (used in
    transaction and statement pooling), user evil is refused at login."""
    users = DEFAULT_USERS + [{"name": "evil", "password": "evil-pw"}]
    p = start(proxy, config, [plugin("api", wasm(tmp_path, "api"))], mode=mode,
              tls=tls if use_tls else None, users=users)
    if mode != "session":
        replica_usable(p)
    with connect(p, use_tls) as c:
        for prepare in (False, True):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="blocked by api"):
                c.execute("DROP TABLE IF EXISTS nothing_here", prepare=prepare)
            assert c.execute("select 1", prepare=prepare).fetchone() == (2,)
            in_recovery = c.execute("SELECT pg_is_in_recovery()", prepare=prepare).fetchone()[0]
            assert in_recovery == (mode != "session"), "route = replica hint"
        # the denied statements did not break the session
        assert c.execute("SELECT 40 + 2").fetchone() == (42,)
    with pytest.raises(psycopg.OperationalError, match="no evil allowed"):
        connect(p, use_tls, user="evil", password="evil-pw")
    assert p.wait_log(r"refused by plugin api: no evil allowed")
    assert p.wait_log(r"statement refused by plugin api: blocked by api")
    assert metric(p, "helios_plugin_denials_total", "api") == 3  # 2 statements, 1 login
    assert metric(p, "helios_plugin_rewrites_total", "api") == 2
    assert metric(p, "helios_plugin_calls_total", "api") >= 8


@pytest.mark.parametrize("on_failure", ["continue", "deny"])
def test_looping_plugin_is_cut_by_its_budget(pg, proxy, config, tmp_path, on_failure):
    """A hook that never returns is cut by its instruction budget (200,000
    instructions: about 2 ms of interpretation, far inside the 100 ms clock
    even on a loaded machine, so the cut is the budget's); the query then
    proceeds or is denied per on_failure."""
    p = start(proxy, config, [plugin("spin", wasm(tmp_path, "spin", SPIN), on_failure=on_failure,
                                     fuel=200000, max_failures=0)])
    with p.connect() as c:
        c.execute("SELECT 1") if on_failure == "continue" else None
        t0 = time.monotonic()
        if on_failure == "continue":
            assert c.execute("SELECT 7").fetchone() == (7,)
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match=r"plugin spin failed \(budget\) and its on_failure is deny"):
                c.execute("SELECT 7")
        took = ms_since(t0)
    print(f"query through a looping plugin (fuel 200000, on_failure {on_failure}): {took:.1f} ms")
    assert p.wait_log(r"plugin spin: on_query_start: over its budget of 200000 instructions")
    assert metric(p, "helios_plugin_budget_exhausted_total", "spin") >= 1


@pytest.mark.parametrize("on_failure", ["continue", "deny"])
def test_looping_plugin_is_cut_by_the_wall_clock(pg, proxy, config, tmp_path, on_failure):
    """With a budget it cannot exhaust, the loop is cut at timeout_ms of wall
    clock (measured around the query), and on_failure applies."""
    p = start(proxy, config, [plugin("spin", wasm(tmp_path, "spin", SPIN), on_failure=on_failure,
                                     fuel=4000000000, timeout_ms=100, max_failures=0)])
    with p.connect() as c:
        t0 = time.monotonic()
        if on_failure == "continue":
            assert c.execute("SELECT 7").fetchone() == (7,)
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match=r"plugin spin failed \(timeout\)"):
                c.execute("SELECT 7")
        took = ms_since(t0)
    print(f"query through a looping plugin cut at 100 ms (on_failure {on_failure}): "
          f"{took:.1f} ms")
    assert 100 <= took < 1000, "cut at the clock (the budget alone would run for tens of seconds)"
    assert p.wait_log(r"plugin spin: on_query_start: over its 100 ms limit")
    assert metric(p, "helios_plugin_timeouts_total", "spin") == 1


def test_trapping_plugin_is_disabled_after_max_failures(pg, proxy, config, tmp_path):
    """A hook that traps: each query proceeds (on_failure continue), the
    instance is rebuilt for the next call, and after max_failures = 3 in a
    row the plugin is disabled with one log line and a metric."""
    p = start(proxy, config, [plugin("trapper", wasm(tmp_path, "trapper", TRAP),
                                     max_failures=3)])
    with p.connect() as c:
        for i in range(6):
            assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
    assert p.wait_log(r"plugin trapper disabled after 3 consecutive failures")
    assert len(re.findall(r"plugin trapper disabled", p.log())) == 1
    assert metric(p, "helios_plugin_disabled", "trapper") == 1
    assert metric(p, "helios_plugin_disabled_total", "trapper") == 1
    assert metric(p, "helios_plugin_traps_total", "trapper") == 3
    assert metric(p, "helios_plugin_calls_total", "trapper") == 3


def test_trapping_plugin_with_deny_refuses_the_query(pg, proxy, config, tmp_path):
    """on_failure = deny: a trap refuses the query (42501), in the extended
    protocol too, and the connection stays usable."""
    p = start(proxy, config, [plugin("trapper", wasm(tmp_path, "trapper", TRAP),
                                     on_failure="deny", max_failures=0)])
    with p.connect() as c:
        for prepare in (False, True):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match=r"plugin trapper failed \(trap\)"):
                c.execute("SELECT 1", prepare=prepare)
    assert metric(p, "helios_plugin_traps_total", "trapper") == 2


@pytest.mark.parametrize("memory_mb", [1, 2])
def test_memory_cap_stops_a_plugin_that_allocates_without_end(pg, proxy, config, tmp_path,
                                                              memory_mb):
    """memory.grow fails at memory_mb (16 pages of 64 KiB a MiB): the module
    learns it got exactly that much, and the proxy is unharmed."""
    p = start(proxy, config, [plugin("hog", wasm(tmp_path, "hog", HOG), memory_mb=memory_mb)])
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (16 * memory_mb,)
        assert c.execute("SELECT 1").fetchone() == (16 * memory_mb,)


def test_events_reach_on_connection_query_complete_and_error(pg, proxy, config, tmp_path):
    """on_connection sees the user, on_query_start the SQL, on_query_complete
    the status, on_error the server's SQLSTATE."""
    p = start(proxy, config, [plugin("spy", wasm(tmp_path, "spy", SPY))])
    with p.connect() as c:
        c.execute("SELECT 1")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1/0")
    assert p.wait_log(r"plugin spy: conn alice")
    assert p.wait_log(r"plugin spy: start SELECT 1/0")
    assert p.wait_log(r"plugin spy: done ok")
    assert p.wait_log(r"plugin spy: done error")
    assert p.wait_log(r"plugin spy: error 22012")


def test_reload_applies_a_changed_plugin_list(pg, proxy, config, tmp_path):
    """SIGHUP with [[plugins]] changed: the control plane (in-process here)
    pushes the new set, which runs for the clients already connected;
    removing every entry unloads them."""
    cfg = config(mode="transaction")
    cfg["plugins"] = [plugin("trapper", wasm(tmp_path, "trapper", TRAP), on_failure="deny",
                             max_failures=0)]
    p = proxy(cfg)
    with p.connect() as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT 1")
        cfg["plugins"] = [plugin("api", wasm(tmp_path, "api"))]
        p.rewrite_config(cfg)
        mark = len(p.log())
        p.sighup()
        assert p.wait_log(r"plugin set generation \d+ applied: api$", start=mark)
        assert c.execute("select 1").fetchone() == (2,)
        del cfg["plugins"]
        p.rewrite_config(cfg)
        mark = len(p.log())
        p.sighup()
        assert p.wait_log(r"plugin set generation \d+ applied: no plugins$", start=mark)
        assert c.execute("select 1").fetchone() == (1,)


def test_check_config_says_why_a_module_does_not_load(tmp_path):
    """--check-config compiles each plugin: a module importing env.* is
    refused with the reason; a good one is listed with its hooks."""
    good, bad = wasm(tmp_path, "api"), wasm(tmp_path, "bad_import")
    cfgf = tmp_path / "c.toml"
    body = ('[[nodes]]\nhost = "127.0.0.1"\n[[plugins]]\nname = "good"\npath = "api.wasm"\n'
            '[[plugins]]\nname = "bad"\npath = "bad_import.wasm"\n')
    cfgf.write_text(body)
    r = run([str(helios_bin() / "heliosproxy"), "--check-config", str(cfgf)], check=False)
    assert r.returncode == 1
    assert re.search(r"plugin good: .*api\.wasm loads \(\d+ bytes; hooks: on_connection "
                     r"on_query_start on_query_complete on_error\)", r.stdout), r.stdout
    assert re.search(r"plugin bad \(.*bad_import\.wasm\) does not load: .*helios", r.stdout), \
        r.stdout
    assert "1 plugin does not load" in r.stderr
    cfgf.write_text(body + "timeout_ms = 101\n")
    r = run([str(helios_bin() / "heliosproxy"), "--check-config", str(cfgf)], check=False)
    assert r.returncode == 1
    assert "c.toml:9: key 'plugins[1].timeout_ms': 101 is out of range (1..100)" in r.stderr


def test_a_bad_module_at_reload_leaves_the_loaded_plugins(pg, proxy, config, tmp_path):
    """A reload whose plugin does not load: the data plane refuses the set
    as a whole, the old plugins keep running and the log says why."""
    cfg = config(mode="transaction")
    cfg["plugins"] = [plugin("api", wasm(tmp_path, "api"))]
    p = proxy(cfg)
    with p.connect() as c:
        assert c.execute("select 1").fetchone() == (2,)
        cfg["plugins"] = [plugin("bad", wasm(tmp_path, "bad_import"))]
        p.rewrite_config(cfg)
        mark = len(p.log())
        p.sighup()
        assert p.wait_log(r"refused plugin set generation \d+ from the control plane, keeping "
                          r"generation \d+: plugin bad: .*helios", start=mark)
        assert c.execute("select 1").fetchone() == (2,)


def test_pgbench_through_a_plugin_loses_no_transaction(pg, proxy, config, tmp_path):
    """pgbench (simple and prepared protocol) through a no-op plugin in
    transaction pooling: every transaction succeeds."""
    p = start(proxy, config, [plugin("noop", wasm(tmp_path, "noop"))])
    env = pg.env(*ALICE)
    for proto in ("simple", "prepared"):
        r = run(["pgbench", "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0], "-n",
                 "-c", "4", "-j", "2", "-T", "3", "-M", proto, "-f", "/dev/stdin", APPDB],
                check=False, env=env, input="SELECT 1;\n", timeout=60)
        assert r.returncode == 0, r.stderr
        assert "number of failed transactions: 0" in r.stdout, r.stdout
    assert metric(p, "helios_plugin_calls_total", "noop") > 0


SAMPLES = ROOT / "build" / "release" / "plugins"


def sample(name):
    path = helios_bin().parent / "plugins" / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path} not built (no wasm32 clang or wasm-ld)")
    return path


def psql(p, sql, user=ALICE[0], password=ALICE[1], **env_extra):
    env = {"PGPASSWORD": password, "PATH": "/usr/bin:/bin", **env_extra}
    return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(p.port), "-U", user,
                           "-d", APPDB, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_audit_logger_writes_who_ran_what_through_psql(pg, proxy, config, mode):
    """plugins/audit_logger: one JSON line per connection, statement and
    completion, with the user, database, application_name and SQL."""
    p = start(proxy, config, [plugin("audit_logger", sample("audit_logger"),
                                     config={"log_level": "info"})], mode=mode)
    r = psql(p, "SELECT 'audited' AS x", PGAPPNAME="auditapp")
    assert r.returncode == 0 and r.stdout.strip() == "audited", r.stderr
    lines = [json.loads(m) for m in re.findall(r"plugin audit_logger: (\{.*\})$", p.log(), re.M)]
    for _ in range(50):
        if any(x["event"] == "complete" for x in lines):
            break
        time.sleep(0.1)
        lines = [json.loads(m) for m in
                 re.findall(r"plugin audit_logger: (\{.*\})$", p.log(), re.M)]
    events = {x["event"]: x for x in lines}
    assert events["connect"]["user"] == ALICE[0] and events["connect"]["database"] == APPDB
    assert events["query"]["sql"] == "SELECT 'audited' AS x"
    assert events["query"]["application_name"] == "auditapp"
    assert events["query"]["mode"] == mode
    assert events["complete"]["status"] == "ok" and events["complete"]["rows"] == "1"
    assert re.fullmatch(r"[0-9a-f]{16}", events["complete"]["fingerprint"])


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_query_blocker_denies_drop_and_truncate_for_non_admins_through_psql(pg, proxy, config,
                                                                          mode):
    """plugins/query_blocker with its defaults and admins = [pgb_auth]: alice
    gets 42501 for DROP and TRUNCATE (the pattern named), other statements
    run; the admin is not blocked."""
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS qb_t; CREATE TABLE qb_t (i int); "
                   "GRANT ALL ON qb_t TO alice")
    p = start(proxy, config, [plugin("query_blocker", sample("query_blocker"),
                                     config={"admins": [PGB_AUTH[0]]})], mode=mode)
    r = psql(p, "TRUNCATE qb_t")
    assert r.returncode != 0
    assert "ERROR:" in r.stderr and "TRUNCATE" in r.stderr, r.stderr
    r = psql(p, "  drop   table qb_t")
    assert r.returncode != 0 and "DROP" in r.stderr, r.stderr
    r = psql(p, "INSERT INTO qb_t VALUES (1); SELECT count(*) FROM qb_t")
    assert r.returncode == 0 and r.stdout.split() == ["INSERT", "0", "1", "1"], r.stderr
    with psycopg.connect(p.dsn(ALICE[0], ALICE[1], sslmode="disable"), autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("DROP TABLE qb_t")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("TRUNCATE qb_t", prepare=True)
    r = psql(p, "TRUNCATE qb_t; SELECT count(*) FROM qb_t", user=PGB_AUTH[0],
             password=PGB_AUTH[1])
    assert r.returncode == 0 and r.stdout.split() == ["TRUNCATE", "TABLE", "0"], r.stderr
    assert metric(p, "helios_plugin_denials_total", "query_blocker") == 4


def test_tenant_tagger_routes_by_application_name_through_psql(pg, proxy, config):
    """plugins/tenant_tagger: application_name reporting goes to the replica,
    billing to the primary (transaction pooling)."""
    p = start(proxy, config, [plugin("tenant_tagger", sample("tenant_tagger"),
                                     config={"map": {"reporting": "replica",
                                                     "billing": "primary"}})])
    replica_usable(p)
    r = psql(p, "SELECT inet_server_port()", PGAPPNAME="reporting")
    assert r.returncode == 0 and r.stdout.strip() == str(pg.replica_port), r.stderr
    r = psql(p, "SELECT inet_server_port()", PGAPPNAME="billing")
    assert r.returncode == 0 and r.stdout.strip() == str(pg.port), r.stderr
    r = psql(p, "SELECT inet_server_port()", PGAPPNAME="other")
    assert r.returncode == 0 and r.stdout.strip() == str(pg.port), r.stderr


def test_cache_skip_hint_keeps_the_result_cache_out(pg, proxy, config, tmp_path):
    """tenant_tagger's cache_skip: statements of application "nocache" always
    reach the server; the same statement from another application is served
    by the result cache after its first run (the hook runs before the cache
    looks the request up)."""
    import uuid
    t = "pl" + uuid.uuid4().hex[:10]
    with pg.superuser(dbname=APPDB) as su:
        su.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        su.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
        su.execute(f"INSERT INTO {t} VALUES (1, 'one')")
        su.execute(f"ALTER TABLE {t} OWNER TO alice")

        def server_calls():
            return su.execute(
                "SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements s JOIN "
                "pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.query LIKE %s "
                "AND s.query ILIKE 'select%%'", (APPDB, f"%{t}%")).fetchone()[0]

        p = start(proxy, config, [plugin("tenant_tagger", sample("tenant_tagger"),
                                         config={"map": {"x": "primary"},
                                                 "cache_skip": ["nocache"]})],
                  cache={"enabled": True})
        for app, runs, calls in (("nocache", 5, 5), ("cached", 5, 6)):
            with p.connect(application_name=app) as c:
                cur = psycopg.ClientCursor(c)
                cur.execute("SELECT 1")  # the catalog is read at a database's first
                for _ in range(runs):
                    cur.execute(f"SELECT v FROM {t} WHERE id = 1")
                    assert cur.fetchall() == [("one",)]
            assert server_calls() == calls, app
        su.execute(f"DROP TABLE {t}")


@pytest.mark.parametrize("on_failure", ["continue", "deny"])
def test_a_statement_too_large_to_hold_follows_on_failure(pg, proxy, config, tmp_path,
                                                          on_failure):
    """A 300 KiB statement is streamed to the server, never held whole, so
    no plugin can see it: a plugin with on_failure = deny refuses it (it
    could not check it), with continue it runs."""
    p = start(proxy, config, [plugin("api", wasm(tmp_path, "api"), on_failure=on_failure)])
    big = "SELECT length('" + "x" * (300 * 1024) + "')"
    with p.connect() as c:
        if on_failure == "deny":
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="plugin api cannot see a statement this large"):
                c.execute(big)
        else:
            assert c.execute(big).fetchone() == (300 * 1024,)
        assert c.execute("SELECT 5").fetchone() == (5,)
