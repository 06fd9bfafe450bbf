"""Configuration checks, SIGHUP reload, SIGTERM shutdown."""

import re
import time


import pgwire
from conftest import ALICE, APPDB, helios_bin, run

SEED_CONFIG = """\
listen_address = "127.0.0.1:6432"
admin_address = "127.0.0.1:9090"

[pool_mode]
mode = "transaction"
max_pool_size = 100

[[nodes]]
host = "127.0.0.1"
port = 5432
role = "primary"
"""


def check_config(path):
    return run([str(helios_bin() / "heliosproxy"), "--check-config", str(path)], timeout=30, check=False)


def test_check_config_accepts_seed(tmp_path):
    f = tmp_path / "seed.toml"
    f.write_text(SEED_CONFIG)
    r = check_config(f)
    assert r.returncode == 0, r.stderr


def test_check_config_accepts_full(tmp_path, config):
    import conftest
    f = tmp_path / "full.toml"
    cfg = config(pool={"min_idle": 1, "idle_timeout_secs": 60, "server_lifetime_secs": 600,
                       "query_wait_timeout_secs": 10, "server_connect_timeout_secs": 3,
                       "reset_query": "DISCARD ALL"},
                 listen_address="127.0.0.1:6432", admin_address="127.0.0.1:9090", workers=2,
                 io_backend="epoll", log_level="info", shutdown_timeout_secs=5,
                 tls={"client_mode": "disable", "server_mode": "disable"})
    f.write_text(conftest.to_toml(cfg))
    r = check_config(f)
    assert r.returncode == 0, r.stderr


def test_check_config_rejects_unknown_key(tmp_path):
    lines = SEED_CONFIG.splitlines()
    lines.insert(6, "max_pool_sise = 10")  # a typo, inside [pool_mode]
    f = tmp_path / "typo.toml"
    f.write_text("\n".join(lines) + "\n")
    r = check_config(f)
    assert r.returncode != 0
    assert f"{f.name}:7" in r.stderr, r.stderr
    assert "max_pool_sise" in r.stderr, r.stderr


def test_check_config_rejects_syntax_error(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text(SEED_CONFIG.replace('mode = "transaction"', 'mode = "transaction'))
    r = check_config(f)
    assert r.returncode != 0
    assert f"{f.name}:5" in r.stderr, r.stderr


def test_sighup_broken_then_valid(pg, proxy, config):
    p = proxy(config(pool={"max_pool_size": 3}, log_level="info"))
    good = p.render(config(pool={"max_pool_size": 3}, log_level="info"))
    with p.connect() as before:
        # 1. a syntax error: the proxy keeps the old configuration
        broken = good.replace("max_pool_size = 3", "max_pool_size = = 3")
        assert broken != good
        text = p.rewrite_config(broken)
        bad_line = text.splitlines().index("max_pool_size = = 3") + 1
        mark = len(p.log())
        p.sighup()
        m = p.wait_log(rf"{re.escape(p.config_path.name)}:{bad_line}\b", start=mark)
        assert m, f"no log line naming {p.config_path.name}:{bad_line}:\n{p.log()[mark:]}"
        assert p.running()
        assert not re.search(r"(?i)\breloaded\b", p.log()[mark:]), "broken file reported as reloaded"
        assert before.execute("SELECT 1").fetchone() == (1,)
        with p.connect() as after:
            assert after.execute("SELECT 2").fetchone() == (2,)

        # 2. a valid change is picked up
        p.rewrite_config(good.replace("max_pool_size = 3", "max_pool_size = 7"))
        mark = len(p.log())
        p.sighup()
        assert p.wait_log(r"(?i)\breloaded\b", start=mark), f"no 'reloaded' in the log:\n{p.log()[mark:]}"
        assert p.running()
        with p.connect() as after:
            assert after.execute("SELECT 3").fetchone() == (3,)
        assert before.execute("SELECT 4").fetchone() == (4,)


def refuses_new_clients(port):
    """True if a new client cannot complete a login."""
    try:
        with pgwire.Conn("127.0.0.1", port, timeout=5) as c:
            return not c.startup(ALICE[0], APPDB, ALICE[1]).ok
    except (OSError, pgwire.ProtocolError):
        return True


def test_sigterm_waits_for_client(pg, proxy, config):
    p = proxy(config(shutdown_timeout_secs=20))
    conn = p.connect()
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        p.sigterm()
        deadline = time.monotonic() + 3
        while not refuses_new_clients(p.port):
            assert time.monotonic() < deadline, "still accepting new clients 3 s after SIGTERM"
            time.sleep(0.1)
        time.sleep(0.5)
        assert p.running(), "exited while a client was still connected"
    finally:
        conn.close()
    t0 = time.monotonic()
    rc = p.wait(10)
    assert rc == 0, f"exit status {rc} (None = still running 10 s after the last client left)"
    assert time.monotonic() - t0 < 10


def test_sigterm_timeout(pg, proxy, config):
    p = proxy(config(shutdown_timeout_secs=2))
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        t0 = time.monotonic()
        p.sigterm()
        rc = p.wait(10)
        took = time.monotonic() - t0
        assert rc == 0, f"exit status {rc} (None = still running after 10 s)"
        assert 1.5 <= took < 8, f"exited {took:.2f} s after SIGTERM with shutdown_timeout_secs = 2"
