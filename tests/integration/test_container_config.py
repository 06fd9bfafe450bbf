"""Container-safe configuration and probe semantics (issue 16): ${NAME}
environment variables in the config (a password from a Kubernetes Secret, used
for a real login), --listen and --admin-address over the file, watch_config
applying a replaced file and a ConfigMap-style symlink swap without SIGHUP,
state_dir holding the overrides file (with the move from the old place), and
/livez, /readyz with ?verbose, /readyz staying 200 while a stopped primary is
within routing.failover_timeout_secs and 503 after it."""

import os
import re
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, free_port, helios_bin, helioctl, port_accepts, run, wait_for
from test_routing import OwnCluster, own_config


def http_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_port(p):
    return int(p.defaults["admin_address"].rsplit(":", 1)[1])


def config_get(p, key):
    return helioctl(p, "config", "get", key).stdout


def psql(pg, port, user, password, sql):
    return run([str(pg.bin / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", user,
                "-d", APPDB, "-c", sql], env=pg.env(password=password), timeout=30)


# ---------------------------------------------------------------------------
# ${NAME}

def test_password_from_an_environment_variable_logs_in_with_psql_and_psycopg(
        pg, proxy, config, monkeypatch):
    monkeypatch.setenv("HELIOS_TEST_ALICE_PASSWORD", ALICE[1])
    monkeypatch.setenv("HELIOS_TEST_MOCK", "mock-secret-value")
    monkeypatch.delenv("HELIOS_TEST_NOPE", raising=False)
    cfg = config(mode="transaction",
                 users=[{"name": ALICE[0], "password": "${HELIOS_TEST_ALICE_PASSWORD}"}])
    p = proxy(cfg)
    assert "${HELIOS_TEST_ALICE_PASSWORD}" in p.config_path.read_text()
    # SCRAM with the client and plaintext towards the server: both need the value
    assert psql(pg, p.port, ALICE[0], ALICE[1], "SELECT current_user").stdout.strip() == ALICE[0]
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        p.connect(password="${HELIOS_TEST_ALICE_PASSWORD}").close()
    # the secret is shown masked, and never in the log
    assert '"********"' in config_get(p, "auth.users.password")
    assert ALICE[1] not in p.log()
    # helioctl config set keeps the reference; the proxy's environment expands it
    r = helioctl(p, "config", "set", "auth.scram_mock_secret", "${HELIOS_TEST_NOPE}", check=1)
    assert re.search(r"refused: .*\.live\.toml:\d+: key 'auth\.scram_mock_secret': environment "
                     r"variable HELIOS_TEST_NOPE is not set", r.stdout + r.stderr), r
    helioctl(p, "config", "set", "auth.scram_mock_secret", "${HELIOS_TEST_MOCK}")
    assert config_get(p, "auth.scram_mock_secret").strip() == '"********"'
    ovr = p.config_path.parent / (p.config_path.name + ".live.toml")
    assert 'auth.scram_mock_secret = "${HELIOS_TEST_MOCK}"' in ovr.read_text()
    assert "mock-secret-value" not in ovr.read_text() + p.log()


def test_unset_variable_is_a_config_error_naming_file_line_and_key(pg, tmp_path, config,
                                                                     monkeypatch):
    import conftest
    monkeypatch.delenv("HELIOS_TEST_UNSET", raising=False)
    f = tmp_path / "env.toml"
    f.write_text(conftest.to_toml(config(users=[{"name": "alice",
                                                 "password": "${HELIOS_TEST_UNSET}"}])))
    line = next(i for i, l in enumerate(f.read_text().splitlines(), 1) if "HELIOS_TEST_UNSET" in l)
    r = run([str(helios_bin() / "heliosproxy"), "--check-config", str(f)], check=False)
    assert r.returncode == 1
    assert f"{f}:{line}: key 'auth.users[0].password': environment variable HELIOS_TEST_UNSET " \
           "is not set" in r.stderr, r.stderr
    # $${ is the literal
    f.write_text(f.read_text().replace("${HELIOS_TEST_UNSET}", "$${HELIOS_TEST_UNSET}"))
    assert run([str(helios_bin() / "heliosproxy"), "--check-config", str(f)]).returncode == 0


# ---------------------------------------------------------------------------
# --listen, --admin-address

def test_listen_and_admin_address_flags_win_over_the_file_and_reloads(pg, proxy, config):
    listen, admin = free_port(), free_port()
    p = proxy(config(), wait=False,
              args=["--listen", f"127.0.0.1:{listen}", "--admin-address", f"127.0.0.1:{admin}"])
    file_listen, file_admin = p.port, admin_port(p)
    p.port, p.admin_port = listen, admin
    p.wait_ready()
    assert not port_accepts(file_listen) and not port_accepts(file_admin)
    assert psql(pg, listen, ALICE[0], ALICE[1], "SELECT 1").stdout.strip() == "1"
    assert http_get(admin, "/livez")[0] == 200
    # helioctl -c FILE still finds the control socket (named after the file's port)
    assert f'"127.0.0.1:{listen}"' in config_get(p, "listen_address")
    p.sighup()
    assert p.wait_log(r"configuration reloaded", timeout=10)
    assert f'"127.0.0.1:{listen}"' in config_get(p, "listen_address")
    assert http_get(admin, "/readyz")[0] == 200


def test_flags_are_listed_by_help_and_checked_by_check_config(tmp_path, config):
    import conftest
    for prog, flags in (("heliosproxy", ["--listen", "--admin-address"]),
                        ("helios-cp", ["--admin-address"])):
        out = run([str(helios_bin() / prog), "--help"]).stdout
        for flag in flags:
            assert flag in out, (prog, flag, out)
    f = tmp_path / "ok.toml"
    f.write_text(conftest.to_toml(config()))
    r = run([str(helios_bin() / "heliosproxy"), "--listen", "nonsense", "--check-config", str(f)],
            check=False)
    assert r.returncode == 1
    assert "command line: key 'listen_address': \"nonsense\" is not host:port" in r.stderr, r.stderr
    # and a bad file value the flag replaces is not an error
    f.write_text(f.read_text().replace("[pool_mode]", 'admin_address = "nonsense"\n\n[pool_mode]'))
    run([str(helios_bin() / "heliosproxy"), "--admin-address", "127.0.0.1:1",
         "--check-config", str(f)])


# ---------------------------------------------------------------------------
# probes

def test_probes_answer_one_line_per_check_with_verbose(pg, proxy, config):
    p = proxy(config())
    port = admin_port(p)
    assert http_get(port, "/livez") == (200, "ok\n")
    assert http_get(port, "/healthz") == (200, "ok\n")
    assert http_get(port, "/readyz") == (200, "ready\n")
    status, body = http_get(port, "/readyz?verbose")
    assert status == 200
    names = [l.split()[1] for l in body.splitlines()]
    assert names == ["config", "listener", "workers", "primary"], body
    assert all(l.startswith("ok ") for l in body.splitlines()), body
    assert f"ok listener {p.defaults['listen_address']}" in body
    status, body = http_get(port, "/livez?verbose")
    assert status == 200 and body.startswith("ok workers 2 event loops"), body


def test_readyz_fails_from_sigterm_while_clients_drain(proxy, config):
    p = proxy(config())
    port = admin_port(p)
    c = p.connect()
    c.execute("SELECT 1")
    p.sigterm()
    # the client holds the drain open (shutdown_timeout_secs 5): probes still answer
    assert wait_for(lambda: http_get(port, "/readyz")[0] == 503, timeout=5)
    assert http_get(port, "/readyz?verbose")[1].splitlines()[1] == \
        "fail listener: shutting down: no new connections"
    assert http_get(port, "/livez")[0] == 200
    c.close()
    assert p.wait(10) == 0


def test_readyz_stays_ready_within_failover_timeout_then_fails(tmp_path, proxy):
    own = OwnCluster(tmp_path)
    try:
        p = proxy(own_config(own, failover_timeout_secs=5))
        port = admin_port(p)
        assert wait_for(lambda: http_get(port, "/readyz")[0] == 200, timeout=10)
        own.pg_ctl("primary", "-m", "fast", "stop")
        t0 = time.monotonic()
        seen = []  # (seconds since the stop, status, verbose body)
        while time.monotonic() - t0 < 20:
            status, body = http_get(port, "/readyz?verbose")
            seen.append((time.monotonic() - t0, status, body))
            assert http_get(port, "/livez")[0] == 200
            if status == 503:
                break
            time.sleep(0.25)
        first_503 = next((s for s in seen if s[1] == 503), None)
        assert first_503, seen[-1]
        # the data plane learns of the loss from a probe (every 1 s): the
        # window is failover_timeout_secs from then, never shorter
        assert first_503[0] >= 5, seen
        assert first_503[0] < 5 + 5, seen
        within = [s for s in seen if 1.5 < s[0] < 5]
        assert within and all(s[1] == 200 for s in within), seen
        assert any("within failover_timeout_secs 5" in s[2] for s in within), within
        assert re.search(r"(?m)^fail primary: no primary for \d+ s \(failover_timeout_secs 5\); "
                         r"last one pg1$", first_503[2]), first_503[2]
        assert "not ready: primary: no primary" in http_get(port, "/readyz")[1]
        own.pg_ctl("primary", "-w", "-l", str(own.base / "primary.log"), "start")
        assert wait_for(lambda: http_get(port, "/readyz")[0] == 200, timeout=15)
    finally:
        own.destroy()


# ---------------------------------------------------------------------------
# watch_config

def test_watch_config_applies_a_replaced_file_and_a_configmap_swap_without_sighup(proxy, config):
    cfg = config(watch_config=True, pool={"max_pool_size": 20})
    p = proxy(cfg)
    assert p.wait_log(r"watch_config: a change of .* applies like SIGHUP")
    folder = p.config_path.parent

    def replace(path, text):
        tmp = folder / "new.tmp"
        tmp.write_text(text)
        os.rename(tmp, path)

    text = p.render(cfg)
    replace(p.config_path, text.replace("max_pool_size = 20", "max_pool_size = 21"))
    assert wait_for(lambda: "21" in config_get(p, "pool_mode.max_pool_size"), timeout=10)
    assert "changed: reloading" in p.log()
    # a ConfigMap: the file becomes a symlink into ..data, then ..data is swapped
    for v, size in (("..v1", 22), ("..v2", 23)):
        (folder / v).mkdir()
        (folder / v / p.config_path.name).write_text(
            text.replace("max_pool_size = 20", f"max_pool_size = {size}"))
    os.symlink("..v1", folder / "..data")
    os.symlink(f"..data/{p.config_path.name}", folder / "link.tmp")
    os.rename(folder / "link.tmp", p.config_path)
    assert wait_for(lambda: "22" in config_get(p, "pool_mode.max_pool_size"), timeout=10)
    os.symlink("..v2", folder / "..data_tmp")
    os.rename(folder / "..data_tmp", folder / "..data")
    assert wait_for(lambda: "23" in config_get(p, "pool_mode.max_pool_size"), timeout=10)
    # the same bytes again: no reload
    n = p.log().count("changed: reloading")
    replace(folder / "..v2" / p.config_path.name, (folder / "..v2" / p.config_path.name).read_text())
    time.sleep(1)
    assert p.log().count("changed: reloading") == n


# ---------------------------------------------------------------------------
# state_dir

def test_overrides_file_lands_in_state_dir_and_moves_from_beside_the_config(proxy, config,
                                                                            tmp_path, short_dir):
    state = short_dir / "state"
    name = "heliosproxy0.toml"  # the first proxy of the fixture's group
    # an overrides file from before state_dir was set
    (tmp_path / f"{name}.live.toml").write_text("# generation = 4\npool_mode.max_pool_size = 9\n")
    p = proxy(config(state_dir=str(state), analytics={"enabled": True}))
    assert p.config_path.name == name
    assert "9" in config_get(p, "pool_mode.max_pool_size")
    assert p.wait_log(r"live overrides read from .*, their place before state_dir was set")
    helioctl(p, "config", "set", "pool_mode.max_pool_size", "7")
    moved = state / f"{name}.live.toml"
    assert "pool_mode.max_pool_size = 7" in moved.read_text()
    assert "max_pool_size = 9" in (tmp_path / f"{name}.live.toml").read_text()  # left alone
    assert (state / f"{name}.slow.jsonl").exists()
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    # a restart reads the new place only
    p.stop()
    p.start(p.config_path.read_text())
    assert "7" in config_get(p, "pool_mode.max_pool_size")


# ---------------------------------------------------------------------------
# helios-cp: --admin-address, probes, watch_config

def test_helios_cp_admin_address_flag_probes_and_watch_config(config, tmp_path):
    import signal
    import subprocess
    import conftest
    from conftest import sanitizer_report
    url = f"ipc://{tmp_path}/cp.sock"
    file_admin, flag_admin = free_port(), free_port()
    cfg = config(control_address=url, control_admin_address=f"127.0.0.1:{file_admin}",
                 watch_config=True, pool={"max_pool_size": 20})
    path = tmp_path / "cp.toml"
    text = conftest.to_toml(cfg)
    path.write_text(text)
    log = tmp_path / "helios-cp.log"
    proc = subprocess.Popen([str(helios_bin() / "helios-cp"), "-c", str(path), "--admin-address",
                             f"127.0.0.1:{flag_admin}"], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: port_accepts(flag_admin), timeout=15), log.read_text()
        assert not port_accepts(file_admin)
        assert http_get(flag_admin, "/livez") == (200, "ok\n")
        status, body = http_get(flag_admin, "/readyz?verbose")
        assert status == 200 and re.fullmatch(r"ok config generation \d+\nok listener\n", body), body

        def get(key):
            return run([str(helios_bin() / "helioctl"), "-c", str(path), "config", "get", key],
                       timeout=30).stdout.strip()
        assert get("pool_mode.max_pool_size") == "20"
        tmp = tmp_path / "new.tmp"
        tmp.write_text(text.replace("max_pool_size = 20", "max_pool_size = 31"))
        os.rename(tmp, path)
        assert wait_for(lambda: get("pool_mode.max_pool_size") == "31", timeout=10), log.read_text()
        assert get("control_admin_address") == f'"127.0.0.1:{flag_admin}"'
        assert "watch_config" in log.read_text() and "changed: reloading" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    report = sanitizer_report(log.read_text())
    assert report is None, report
