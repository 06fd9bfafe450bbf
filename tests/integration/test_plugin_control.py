"""WASM plugins managed by the control plane (issue 20, docs/plugins.md): a
module loaded with helioctl, or named by [[plugins]], goes from helios-cp to
every data plane as bytes and sha256 and runs there; a module the data
planes cannot load is refused with the reason shown by helioctl while the
plugins they run stay; unload and reload under pgbench fail nothing; stats
come back through helioctl. Real helios-cp, heliosproxy, psql, psycopg and
pgbench; test modules written as WAT and built with wat2wasm."""

import json
import re
import shutil
import subprocess
import time

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, Proxy, free_port, helios_bin, io_backend, run, wait_for
from test_control_plane import ControlPlane, assert_no_failed, http_get, pgbench_cmd

pytestmark = pytest.mark.skipif(shutil.which("wat2wasm") is None,
                                reason="wat2wasm (package wabt) is not installed")

# Denies statements that start with /*deny*/ (SQLSTATE P0001, MESSAGE),
# lets everything else through: the ABI v1 of dataplane/plugin/plugin.h.
DENY_WAT = """
(module
  (import "helios" "field" (func $field (param i32 i32 i32) (result i32)))
  (import "helios" "deny" (func $deny (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "P0001")
  (data (i32.const 16) "MESSAGE")
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32)
    (local $n i32)
    (local.set $n (call $field (i32.const 6) (i32.const 1024) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 8)) (then (return (i32.const 0))))
    (if (i32.and (i32.eq (i32.load (i32.const 1024)) (i32.const 0x65642a2f))
                 (i32.eq (i32.load (i32.const 1028)) (i32.const 0x2f2a796e)))
      (then (call $deny (i32.const 0) (i32.const 16) (i32.const LEN))
            (return (i32.const 1))))
    (i32.const 0))
)
"""

# Imports something outside "helios": every data plane must refuse it.
BAD_IMPORT_WAT = """
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32) (i32.const 0))
)
"""


def wasm(tmp_path, name, wat):
    src = tmp_path / f"{name}.wat"
    out = tmp_path / f"{name}.wasm"
    src.write_text(wat)
    run(["wat2wasm", str(src), "-o", str(out)])
    return out


def deny_module(tmp_path, name, message):
    return wasm(tmp_path, name,
                DENY_WAT.replace("MESSAGE", message).replace("LEN", str(len(message))))


def ctl(url, *args, timeout=30):
    return run([str(helios_bin() / "helioctl"), "-a", url, "--timeout", "20000", *args],
               check=False, timeout=timeout)


def ctl_ok(url, *args):
    r = ctl(url, *args)
    assert r.returncode == 0, f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def ctl_json(url, *args):
    r = ctl(url, "--json", *args)
    assert r.returncode in (0, 4), f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def psql(pg, port, sql):
    """psql through a data plane: (exit code, stdout + stderr)."""
    r = run([str(pg.bin / "psql"), "-X", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
             "-d", APPDB, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            check=False, env=pg.env(password=ALICE[1]), timeout=30)
    return r.returncode, r.stdout + r.stderr


def denied_by(pg, port, message):
    """A /*deny*/ statement fails with the plugin's message; another runs."""
    rc, out = psql(pg, port, "/*deny*/ SELECT 1")
    ok_rc, ok_out = psql(pg, port, "SELECT 41 + 1")
    return rc != 0 and message in out and ok_rc == 0 and ok_out.strip() == "42"


def not_denied(pg, port):
    rc, out = psql(pg, port, "/*deny*/ SELECT 7")
    return rc == 0 and out.strip() == "7"


@pytest.fixture
def cluster(pg, proxy, config, tmp_path):
    """cluster(cfg=None, n=2) -> (ControlPlane, [Proxy]): one helios-cp and n
    data planes attached to it, all from one file."""
    started = []

    def start(cfg=None, n=2, mode="transaction"):
        url = f"ipc://{tmp_path}/cp.sock"
        cfg = dict(cfg or config(mode=mode), control_address=url,
                   control_admin_address=f"127.0.0.1:{free_port()}")
        addrs = [(f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for _ in range(n)]
        tmp = Proxy(tmp_path, "cp-config", {"listen_address": addrs[0][0],
                                            "admin_address": addrs[0][1], "workers": 2,
                                            "io_backend": io_backend(),
                                            "shutdown_timeout_secs": 5})
        tmp.write_config(cfg)
        admin = int(cfg["control_admin_address"].rsplit(":", 1)[1])
        cp = ControlPlane(tmp_path, tmp.config_path, url, admin).start()
        started.append(cp)
        dps = [proxy(cfg, listen_address=l, admin_address=a) for l, a in addrs]
        # both registered
        assert wait_for(lambda: len([d for d in ctl_json(url, "status").get("dataplanes", [])
                                     if d.get("connected")]) == n, timeout=15)
        return cp, dps

    yield start
    for cp in started:
        cp.stop()


def test_plugin_loaded_with_helioctl_runs_on_both_data_planes(pg, cluster, tmp_path):
    cp, dps = cluster()
    mod = deny_module(tmp_path, "blocker", "blocked by the loaded plugin")
    for p in dps:
        assert not_denied(pg, p.port)
    r = ctl_ok(cp.url, "plugin", "load", "blocker", str(mod), "--config", '{"who": "ops"}')
    assert "loaded plugin blocker" in r.stdout and "applied by 2 of 2 data planes" in r.stdout, \
        r.stdout
    for p in dps:
        assert denied_by(pg, p.port, "blocked by the loaded plugin"), p.log_tail()
        # the SQLSTATE is the plugin's
        with pytest.raises(psycopg.Error) as e:
            with p.connect() as c:
                c.execute("/*deny*/ SELECT 2")
        assert e.value.sqlstate == "P0001", e.value
    lst = ctl_json(cp.url, "plugin", "list")
    (mod_row,) = lst["plugins"]
    assert mod_row["name"] == "blocker" and mod_row["source"] == "helioctl"
    assert mod_row["config_json"] == '{"who":"ops"}' and mod_row["on_failure"] == "continue"
    assert int(mod_row["size"]) == mod.stat().st_size and not mod_row.get("wasm")
    gen = lst["plugin_generation"]
    assert [d["plugin_generation"] for d in lst["dataplanes"]] == [gen, gen], lst
    text = ctl_ok(cp.url, "plugin", "list").stdout
    assert re.search(r"(?m)^blocker\s+helioctl\s+[0-9a-f]{12}\s+\d+\s+continue", text), text
    assert text.count(" current") == 2, text
    # the data planes logged the set they applied
    for p in dps:
        assert p.wait_log(r"plugin set generation \d+ applied: blocker")
    # counters through helioctl: every data plane ran it
    st = ctl_json(cp.url, "plugin", "stats")
    for d in st["dataplanes"]:
        (ps,) = d["report"]["plugins"]
        assert ps["name"] == "blocker" and int(ps["calls"]) >= 2 and int(ps["denials"]) >= 2, ps
    text = ctl_ok(cp.url, "plugin", "stats").stdout
    assert len(re.findall(r"(?m)^\S+\s+blocker\s+\d+", text)) == 2, text
    # helios-cp's /metrics: every data plane's plugin counters, labelled
    status, body, _ = http_get(cp.admin, "/metrics")
    assert status == 200
    calls = re.findall(r'(?m)^helios_plugin_calls_total\{dataplane="[^"]+",plugin="blocker"\} '
                       r'(\d+)$', body)
    assert len(calls) == 2 and all(int(c) >= 2 for c in calls), body
    gens = re.findall(r'(?m)^helios_plugin_set_generation\{dataplane="[^"]+"\} (\d+)$', body)
    assert gens == [str(gen), str(gen)], gens


def test_plugin_in_config_reaches_data_planes_without_its_file(pg, cluster, config, tmp_path):
    """[[plugins]] path is read by helios-cp only (relative to its config
    file's folder); the data planes get the bytes. reload NAME re-reads a
    changed file; a config reload of the same file sends nothing new."""
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    src = deny_module(tmp_path, "cfgblock", "blocked by config plugin v1")
    shutil.copy(src, mod_dir / "cfgblock.wasm")
    cfg = config(mode="transaction")
    cfg["plugins"] = [{"name": "cfgblock", "path": "mods/cfgblock.wasm"}]
    cp, dps = cluster(cfg)
    for p in dps:
        assert wait_for(lambda: denied_by(pg, p.port, "config plugin v1"), timeout=10), p.log_tail()
    lst = ctl_json(cp.url, "plugin", "list")
    assert lst["plugins"][0]["source"] == "config"
    assert lst["plugins"][0]["path"] == str(mod_dir / "cfgblock.wasm")
    gen = lst["plugin_generation"]
    # the file changes: reload NAME sends the new bytes
    v2 = deny_module(tmp_path, "cfgblock2", "blocked by config plugin v2")
    shutil.copy(v2, mod_dir / "cfgblock.wasm")
    r = ctl_ok(cp.url, "plugin", "reload", "cfgblock")
    assert "changed" in r.stdout and "applied by 2 of 2" in r.stdout, r.stdout
    for p in dps:
        assert denied_by(pg, p.port, "config plugin v2")
    gen2 = ctl_json(cp.url, "plugin", "list")["plugin_generation"]
    assert gen2 != gen
    # a config reload that leaves the set alone keeps its generation
    ctl_ok(cp.url, "reload")
    assert ctl_json(cp.url, "plugin", "list")["plugin_generation"] == gen2
    # a config plugin is unloaded through the file, not helioctl
    r = ctl(cp.url, "plugin", "unload", "cfgblock")
    assert r.returncode == 1 and "[[plugins]]" in r.stderr, r.stderr


def test_bad_module_is_refused_by_every_data_plane_and_the_old_set_stays(pg, cluster, tmp_path):
    cp, dps = cluster()
    good = deny_module(tmp_path, "guard", "blocked by guard")
    ctl_ok(cp.url, "plugin", "load", "guard", str(good))
    gen = ctl_json(cp.url, "plugin", "list")["plugin_generation"]
    for bad, why in ((wasm(tmp_path, "badimport", BAD_IMPORT_WAT), r"env\.system"),
                     (tmp_path / "garbage.wasm", r"WASM|wasm")):
        if bad.name == "garbage.wasm":
            bad.write_bytes(b"this is not a module")
        t0 = time.monotonic()
        r = ctl(cp.url, "plugin", "load", "extra", str(bad))
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "refused by every data plane (2)" in r.stderr, r.stderr
        assert len(re.findall(r"data plane \S+ refused it: ", r.stderr)) == 2, r.stderr
        assert re.search(why, r.stderr), r.stderr
        assert time.monotonic() - t0 < 5, "helioctl waited for a time-out instead of the refusal"
        # the control plane went back to the set the data planes run
        lst = ctl_json(cp.url, "plugin", "list")
        assert [p["name"] for p in lst["plugins"]] == ["guard"], lst
        assert lst["plugin_generation"] == gen
        for p in dps:
            assert denied_by(pg, p.port, "blocked by guard")
            assert p.wait_log(r"refused plugin set generation \d+ from the control plane, "
                              r"keeping generation %d" % gen)
    # replacing the good module with a bad one under its name: refused too
    r = ctl(cp.url, "plugin", "load", "guard", str(tmp_path / "garbage.wasm"))
    assert r.returncode == 1 and "undone" in r.stderr, r.stderr
    for p in dps:
        assert denied_by(pg, p.port, "blocked by guard")
    # the control plane went back to what they run: nothing shows as refused
    text = ctl_ok(cp.url, "plugin", "list").stdout
    assert text.count("current") == 2, text
    assert "refused plugin set" not in ctl_ok(cp.url, "status").stdout


def test_unload_and_reload_under_pgbench_fail_nothing(pg, cluster, tmp_path):
    cp, dps = cluster()
    mod = deny_module(tmp_path, "quiet", "never for pgbench")
    script = tmp_path / "q.sql"
    script.write_text("SELECT 1;\nSELECT abalance FROM (SELECT 1 AS abalance) t;\n")
    benches = [subprocess.Popen(pgbench_cmd(pg, p.port, script, "-c", "4", "-j", "2", "-T", "8"),
                                env=pg.env(password=ALICE[1]), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for p in dps]
    try:
        time.sleep(0.5)
        for i in range(3):
            ctl_ok(cp.url, "plugin", "load", "quiet", str(mod))
            time.sleep(0.3)
            ctl_ok(cp.url, "plugin", "reload", "quiet")
            time.sleep(0.3)
            ctl_ok(cp.url, "plugin", "unload", "quiet")
            time.sleep(0.3)
        ctl_ok(cp.url, "plugin", "load", "quiet", str(mod))
        for p in dps:
            assert denied_by(pg, p.port, "never for pgbench")
    finally:
        outs = [b.communicate(timeout=60)[0] for b in benches]
    for out in outs:
        assert_no_failed(out)
    st = ctl_json(cp.url, "plugin", "stats")
    assert all(int(d["report"]["plugins"][0]["calls"]) > 0 for d in st["dataplanes"]), st


def test_helioctl_plugin_refusals_are_clear(pg, cluster, tmp_path):
    cp, dps = cluster(n=1)
    mod = deny_module(tmp_path, "m", "x")
    r = ctl(cp.url, "plugin", "unload", "nosuch")
    assert r.returncode == 1 and "no plugin named 'nosuch'" in r.stderr, r.stderr
    r = ctl(cp.url, "plugin", "load", "m", str(tmp_path / "missing.wasm"))
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr
    r = ctl(cp.url, "plugin", "load", "bad name", str(mod))
    assert r.returncode == 1 and "letters, digits" in r.stderr, r.stderr
    r = ctl(cp.url, "plugin", "load", "m", str(mod), "--config", "[1, 2]")
    assert r.returncode == 1 and "JSON object" in r.stderr, r.stderr
    r = ctl(cp.url, "plugin", "load", "m", str(mod), "--on-failure", "maybe")
    assert r.returncode == 2 and "continue or deny" in r.stderr, r.stderr
    r = ctl(cp.url, "plugin", "frobnicate")
    assert r.returncode == 2, r.stderr
    r = ctl(cp.url, "plugin", "list")
    assert r.returncode == 0 and "no plugins" in r.stdout, r.stdout
    # the data plane's summary reports carry the plugin generation; the
    # control plane's /metrics too
    ctl_ok(cp.url, "plugin", "load", "m", str(mod), "--on-failure", "deny")
    assert ctl_json(cp.url, "plugin", "list")["plugins"][0]["on_failure"] == "deny"


def test_plugin_in_the_file_of_a_proxy_with_its_own_control_plane(pg, proxy, config, tmp_path):
    """heliosproxy without control_address runs the control plane inside:
    its [[plugins]] reach its workers the same way, and helioctl -c FILE
    manages them."""
    mod = deny_module(tmp_path, "embedded", "blocked in the embedded set")
    cfg = config(mode="session")
    cfg["plugins"] = [{"name": "embedded", "path": str(mod), "on_failure": "deny"}]
    p = proxy(cfg)
    assert denied_by(pg, p.port, "blocked in the embedded set"), p.log_tail()
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), "plugin", "list"],
            check=False)
    assert r.returncode == 0 and re.search(r"(?m)^embedded\s+config\s+[0-9a-f]{12}\s+\d+\s+deny",
                                           r.stdout), r.stdout + r.stderr
    assert r.stdout.count("current") == 1, r.stdout
    # the file loses its plugin: a reload takes it away
    del cfg["plugins"]
    p.rewrite_config(cfg)
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), "reload"], check=False)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: not_denied(pg, p.port), timeout=10), p.log_tail()


def test_helioctl_loaded_plugin_survives_a_control_plane_restart(pg, cluster, tmp_path):
    """Kept beside the overrides file (manifest.json and the module by its
    sha256), read back at start; an unload is kept too."""
    cp, (p,) = cluster(n=1)
    mod = deny_module(tmp_path, "kept", "blocked by the kept plugin")
    ctl_ok(cp.url, "plugin", "load", "kept", str(mod), "--config", '{"a": 1}',
           "--on-failure", "deny")
    kept = tmp_path / "cp-config.toml.live.plugins"
    manifest = json.loads((kept / "manifest.json").read_text())
    (entry,) = manifest["plugins"]
    assert entry["name"] == "kept" and entry["config"] == '{"a":1}' and entry["on_failure"] == "deny"
    assert (kept / f"{entry['sha256']}.wasm").read_bytes() == mod.read_bytes()
    assert oct(kept.stat().st_mode & 0o777) == "0o700"
    gen = ctl_json(cp.url, "plugin", "list")["plugin_generation"]
    cp.stop()
    mod.unlink()  # the control plane has its own copy
    cp.start()
    assert cp.proc.poll() is None
    lst = None

    def restored():
        nonlocal lst
        lst = ctl_json(cp.url, "plugin", "list")
        return (lst["plugins"] and lst["dataplanes"] and
                lst["dataplanes"][0]["plugin_generation"] == lst["plugin_generation"])
    assert wait_for(restored, timeout=15), lst
    (row,) = lst["plugins"]
    assert row["name"] == "kept" and row["source"] == "helioctl" and row["on_failure"] == "deny"
    assert lst["plugin_generation"] > gen  # never a number the data plane held
    assert "restored from" in cp.log()
    assert denied_by(pg, p.port, "blocked by the kept plugin")
    # an unload is kept as well: nothing comes back
    ctl_ok(cp.url, "plugin", "unload", "kept")
    assert json.loads((kept / "manifest.json").read_text())["plugins"] == []
    assert not list(kept.glob("*.wasm"))
    cp.stop()
    cp.start()
    assert wait_for(lambda: ctl_json(cp.url, "plugin", "list")["plugins"] == [], timeout=10)
    assert wait_for(lambda: not_denied(pg, p.port), timeout=10)


def test_query_blocker_sample_loaded_through_helios_cp_guards_both_data_planes(pg, cluster):
    """plugins/query_blocker (built by make) loaded with helioctl: DROP and
    TRUNCATE refused on each data plane for alice, with its message; the
    admin it names (md5user) is let through."""
    path = helios_bin().parent / "plugins" / "query_blocker.wasm"
    if not path.exists():
        pytest.skip(f"{path} not built (no wasm32 clang or wasm-ld)")
    cp, dps = cluster()
    ctl_ok(cp.url, "plugin", "load", "blocker", str(path), "--config",
           json.dumps({"admins": [MD5USER[0]]}), "--on-failure", "deny")
    for p in dps:
        rc, out = psql(pg, p.port, "DROP TABLE IF EXISTS plugin_cp_nothing")
        assert rc != 0 and '"DROP" is not allowed for user alice' in out, out
        rc, out = psql(pg, p.port, "TRUNCATE plugin_cp_nothing")
        assert rc != 0 and "is not allowed" in out, out
        with psycopg.connect(p.dsn(MD5USER[0], MD5USER[1]), autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS plugin_cp_nothing")
    st = ctl_json(cp.url, "plugin", "stats")
    assert all(int(d["report"]["plugins"][0]["denials"]) >= 2 for d in st["dataplanes"]), st


def test_bad_module_in_config_shows_as_refused_until_the_file_is_fixed(pg, cluster, config,
                                                                       tmp_path):
    """helios-cp cannot judge a module: a bad one in [[plugins]] goes out,
    both data planes refuse it (serving without it), helioctl status and
    plugin list say why; the fixed file and plugin reload end it."""
    bad = wasm(tmp_path, "cfgbad", BAD_IMPORT_WAT)
    cfg = config(mode="transaction")
    cfg["plugins"] = [{"name": "cfgbad", "path": str(bad)}]
    cp, dps = cluster(cfg)

    def both_refused():
        out = ctl_ok(cp.url, "status").stdout
        return len(re.findall(r"(?m)^\S+ refused plugin set generation \d+, runs \d+: "
                              r".*env\.system", out)) == 2
    assert wait_for(both_refused, timeout=10), ctl_ok(cp.url, "status").stdout
    text = ctl_ok(cp.url, "plugin", "list").stdout
    assert text.count("refused: ") == 2 and "env.system" in text, text
    for p in dps:
        assert not_denied(pg, p.port)
    shutil.copy(deny_module(tmp_path, "fixed", "blocked by the fixed file"), bad)
    r = ctl_ok(cp.url, "plugin", "reload", "cfgbad")
    assert "changed" in r.stdout and "applied by 2 of 2" in r.stdout, r.stdout
    for p in dps:
        assert denied_by(pg, p.port, "blocked by the fixed file")
    assert "refused plugin set" not in ctl_ok(cp.url, "status").stdout


# Lets two statements through per instance, then denies: its state is the
# instance's, so a fresh instance starts again.
QUOTA_WAT = """
(module
  (import "helios" "deny" (func $deny (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (data (i32.const 0) "P0001")
  (data (i32.const 16) "quota of 2 used")
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (i32.gt_s (global.get $n) (i32.const 2))
      (then (call $deny (i32.const 0) (i32.const 16) (i32.const 15)) (return (i32.const 1))))
    (i32.const 0))
)
"""

TRAP_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "helios_abi_version") (result i32) (i32.const 1))
  (func (export "on_query_start") (result i32) unreachable)
)
"""


def test_plugin_reload_gives_fresh_instances_and_enables_a_disabled_plugin(pg, cluster, config,
                                                                          tmp_path):
    cfg = dict(config(mode="transaction"), workers=1)  # one worker: one instance
    cp, (p,) = cluster(cfg, n=1)
    ctl_ok(cp.url, "plugin", "load", "quota", str(wasm(tmp_path, "quota", QUOTA_WAT)))

    def runs():
        return [psql(pg, p.port, f"SELECT {i}")[0] == 0 for i in range(3)]
    assert runs() == [True, True, False]
    assert runs() == [False, False, False]  # the same instance: its quota is used
    r = ctl_ok(cp.url, "plugin", "reload", "quota")
    assert "reloaded plugin quota" in r.stdout and "applied by 1 of 1" in r.stdout, r.stdout
    assert p.wait_log(r"plugin quota reloaded: enabled, fresh instances")
    assert runs() == [True, True, False]
    # a trapping plugin is disabled after max_failures (5) failures in a row;
    # reload runs it again
    ctl_ok(cp.url, "plugin", "load", "trapper", str(wasm(tmp_path, "trapper", TRAP_WAT)))
    ctl_ok(cp.url, "plugin", "unload", "quota")
    for i in range(6):
        assert psql(pg, p.port, "SELECT 1")[0] == 0  # on_failure continue
    assert p.wait_log(r"plugin trapper disabled after 5 consecutive failures")

    def trapper():
        return ctl_json(cp.url, "plugin", "stats")["dataplanes"][0]["report"]["plugins"][0]
    assert trapper()["disabled"] and int(trapper()["traps"]) == 5, trapper()
    assert re.search(r"(?m)^\S+\s+trapper\s+.*\sdisabled$",
                     ctl_ok(cp.url, "plugin", "stats").stdout)
    ctl_ok(cp.url, "plugin", "reload", "trapper")
    assert not trapper()["disabled"]
    assert psql(pg, p.port, "SELECT 1")[0] == 0
    assert int(trapper()["traps"]) == 6, trapper()
