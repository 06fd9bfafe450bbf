"""A plugin set that goes live reaches the clients already connected (issue
20, round 2): the first plugin loaded (helioctl plugin load, or a config
reload that adds [[plugins]]) rebuilds the pipelines, and every client
logged in before moves to its snapshot's new pipeline at its next request
boundary, keeping its server in session pooling; the last one unloaded
takes the stage away from them again. Real heliosproxy (its control plane
inside, managed with helioctl -c FILE), PostgreSQL, psycopg and pgbench;
the sample plugins/query_blocker built by make."""

import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, MD5USER, helios_bin, run, wait_for
from test_plugins import connect, metric, start

BLOCKED = '"TRUNCATE" is not allowed for user alice'


def blocker_path():
    path = helios_bin().parent / "plugins" / "query_blocker.wasm"
    if not path.exists():
        pytest.skip(f"{path} not built (no wasm32 clang or wasm-ld)")
    return path


def ctl(p, *args):
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), "--timeout", "20000",
             *args], check=False, timeout=40)
    assert r.returncode == 0, f"helioctl {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def load_blocker(p):
    out = ctl(p, "plugin", "load", "blocker", str(blocker_path()), "--config",
              json.dumps({"admins": [MD5USER[0]]}))
    assert "applied by 1 of 1" in out, out


def unload_blocker(p):
    out = ctl(p, "plugin", "unload", "blocker")
    assert "applied by 1 of 1" in out, out


def truncate_denied(c, prepare):
    """TRUNCATE is refused by the plugin (42501, its message), not by the
    server (which would say the table does not exist); the connection goes
    on."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=BLOCKED):
        c.execute("TRUNCATE plugin_live_nothing", prepare=prepare)
    assert c.execute("SELECT 40 + 2", prepare=prepare).fetchone() == (42,)


def drop_runs(c, prepare):
    c.execute("DROP TABLE IF EXISTS plugin_live_nothing", prepare=prepare)
    assert c.execute("SELECT 40 + 2", prepare=prepare).fetchone() == (42,)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_client_connected_before_a_load_is_denied_after_it_and_free_after_the_unload(
        pg, proxy, config, cert, mode, use_tls):
    """Clients logged in (and idle) before helioctl plugin load: the next
    TRUNCATE of each is denied by query_blocker, in the simple and the
    extended protocol; in session pooling on the same backend (the session
    was not logged in again). After the unload the same clients run DROP
    freely."""
    p = start(proxy, config, [], mode=mode, tls=cert if use_tls else None)
    simple = connect(p, use_tls, autocommit=True)
    ext = connect(p, use_tls, autocommit=True)
    try:
        pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in (simple, ext)]
        drop_runs(simple, False)
        drop_runs(ext, True)
        load_blocker(p)
        truncate_denied(simple, False)
        truncate_denied(ext, True)
        if mode == "session":
            assert [c.execute("SELECT pg_backend_pid()").fetchone()[0]
                    for c in (simple, ext)] == pids
        assert metric(p, "helios_plugin_denials_total", "blocker") == 2
        # its admin is let through (the plugin's config reached the instance)
        with psycopg.connect(p.dsn(MD5USER[0], MD5USER[1]), autocommit=True) as admin:
            drop_runs(admin, False)
        unload_blocker(p)
        drop_runs(simple, False)
        drop_runs(ext, True)
        # and back: a second load reaches them again
        load_blocker(p)
        truncate_denied(simple, False)
        truncate_denied(ext, True)
    finally:
        simple.close()
        ext.close()
    assert p.wait_log(r"plugin set generation \d+ applied: blocker")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_client_inside_a_transaction_is_denied_at_its_next_statement(pg, proxy, config, mode):
    """A client that holds its server in an open transaction when the plugin
    arrives: its next statement in that transaction is denied (the server is
    idle between its statements), and the transaction ends as PostgreSQL's
    would after an error."""
    p = start(proxy, config, [], mode=mode)
    with p.connect() as c:  # psycopg: BEGIN at the first statement
        assert c.execute("SELECT 1").fetchone() == (1,)
        load_blocker(p)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=BLOCKED):
            c.execute("TRUNCATE plugin_live_nothing")
        c.rollback()
        assert c.execute("SELECT 2").fetchone() == (2,)
        c.rollback()



@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_client_busy_during_the_load_is_denied_at_its_next_request(pg, proxy, config, mode):
    """A client whose statement is running when the plugin arrives (not at a
    request boundary then) is moved when its next request starts: that
    statement finishes as it was sent, the next TRUNCATE is denied."""
    p = start(proxy, config, [], mode=mode)
    with p.connect(autocommit=True) as c:
        t = threading.Thread(target=lambda: c.execute("SELECT pg_sleep(1.5)"))
        t.start()
        try:
            time.sleep(0.3)
            load_blocker(p)
        finally:
            t.join(timeout=30)
        truncate_denied(c, False)
        truncate_denied(c, True)



def read_msg(sock):
    def exactly(n):
        b = b""
        while len(b) < n:
            chunk = sock.recv(n - len(b))
            assert chunk, "the proxy closed the connection"
            b += chunk
        return b
    hdr = exactly(5)
    return hdr[0:1], exactly(struct.unpack("!I", hdr[1:])[0] - 4)


def test_client_still_logging_in_during_the_load_gets_the_plugin(pg, proxy, config):
    """A client whose TCP connection was accepted before the load (its
    pipeline taken then) but whose startup packet comes after: it logs in
    under the rebuilt pipeline, and its TRUNCATE is denied (raw protocol,
    trust authentication)."""
    p = start(proxy, config, [], mode="transaction", method="trust")
    host, port = p.defaults["listen_address"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        time.sleep(0.2)  # accepted: waiting for its startup packet
        load_blocker(p)
        params = b"user\0" + ALICE[0].encode() + b"\0database\0" + APPDB.encode() + b"\0\0"
        s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
        while read_msg(s)[0] != b"Z":
            pass
        q = b"TRUNCATE plugin_live_nothing\0"
        s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
        t, body = read_msg(s)
        assert t == b"E", (t, body)
        assert b"C42501\0" in body and BLOCKED.encode() in body, body
        assert read_msg(s)[0] == b"Z"


def test_config_reload_that_adds_plugins_reaches_connected_clients(pg, proxy, config):
    """The other way a first plugin goes live: [[plugins]] added to the file
    and the config reloaded; removed again, the clients run freely."""
    p = start(proxy, config, [], mode="transaction")
    cfg = config(mode="transaction")
    with p.connect(autocommit=True) as c:
        drop_runs(c, False)
        cfg["plugins"] = [{"name": "blocker", "path": str(blocker_path())}]
        p.rewrite_config(cfg)
        ctl(p, "reload")
        assert wait_for(lambda: p.log().count("applied: blocker") >= 1, timeout=10), p.log_tail()
        truncate_denied(c, False)
        truncate_denied(c, True)
        del cfg["plugins"]
        p.rewrite_config(cfg)
        ctl(p, "reload")
        assert wait_for(lambda: re.search(r"plugin set generation \d+ applied: no plugins",
                                          p.log()), timeout=10), p.log_tail()
        drop_runs(c, False)
        drop_runs(c, True)


def pgbench(pg, port, script, mode_args):
    return subprocess.Popen(
        [str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
         "-f", str(script), *mode_args, APPDB],
        env=pg.env(password=ALICE[1]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
def test_pgbench_across_load_and_unload_fails_nothing_and_its_clients_run_the_plugin(
        pg, proxy, config, tmp_path, mode):
    """pgbench's connections are all made before the first load (no -C):
    the plugin's call count grows while only they run, so they moved to the
    new pipeline mid-run; loads and unloads under them fail 0 transactions,
    simple and extended protocol."""
    p = start(proxy, config, [], mode=mode)
    script = tmp_path / "q.sql"
    script.write_text("SELECT 1;\nSELECT abalance FROM (SELECT 1 AS abalance) t;\n")
    benches = [pgbench(pg, p.port, script, ["-c", "3", "-j", "1", "-T", "7", "-M", proto])
               for proto in ("simple", "extended")]
    try:
        time.sleep(1)
        for _ in range(3):
            load_blocker(p)
            assert wait_for(lambda: (metric(p, "helios_plugin_calls_total", "blocker") or 0) > 20,
                            timeout=5)
            time.sleep(0.3)
            unload_blocker(p)
            time.sleep(0.3)
        load_blocker(p)
        time.sleep(0.5)
        calls = metric(p, "helios_plugin_calls_total", "blocker")
        time.sleep(0.5)
        assert metric(p, "helios_plugin_calls_total", "blocker") > calls
    finally:
        outs = [b.communicate(timeout=60)[0] for b in benches]
    for out in outs:
        assert re.search(r"(?m)^number of failed transactions: 0\b", out), out
        m = re.search(r"(?m)^number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 0, out


def test_session_spliced_in_the_kernel_keeps_its_pipeline_and_the_worker_says_so(pg, proxy,
                                                                                 config):
    """kernel_splice: a session spliced before the load passes no byte
    through the proxy, so it cannot get the plugin stage: the worker logs
    how many keep running without it, and sessions that log in afterwards
    are not spliced and are denied. (Skips where the splice program cannot
    load.)"""
    if os.geteuid() != 0:
        pytest.skip("kernel_splice needs root (CAP_BPF and CAP_NET_ADMIN)")
    p = proxy(config(mode="session", pool={"max_pool_size": 4, "kernel_splice": True},
                     tls={"server_mode": "disable"}))
    with p.connect(autocommit=True) as old:
        old.execute("SELECT 1")
        log = p.log()
        if "no BPF support" in log or "cannot load the splice program" in log:
            pytest.skip("this build or kernel cannot load the splice program")
        assert wait_for(lambda: re.search(r'(?m)^helios_splice_sessions_active(\{[^}]*\})? 1$',
                                          urllib.request.urlopen(
                                              f"http://{p.defaults['admin_address']}/metrics",
                                              timeout=10).read().decode())), p.log_tail()
        load_blocker(p)
        assert p.wait_log(r"worker \d+: 1 session\(s\) spliced in the kernel keep running "
                          r"without the rebuilt pipeline's stages")
        drop_runs(old, False)  # the documented limit: it never reached the proxy
        with p.connect(autocommit=True) as new:
            truncate_denied(new, False)
