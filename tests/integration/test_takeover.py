"""Online restart: `heliosproxy -c FILE --takeover` takes the listening
sockets and the idle clients of the running process (SCM_RIGHTS over the
takeover socket in state_dir); clients in a transaction finish it on the old
process first; the old process exits 0. Measured with real pgbench and
psycopg sessions whose state must survive."""

import re
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import ALICE, APPDB, dsn, helios_bin, run, wait_for


def tx_config(config, short_dir, mode="transaction", server_tls="disable", **top):
    """A session's server connection moves only in plain TCP (an OpenSSL
    session cannot cross processes): session tests ask for no server TLS."""
    return config(mode=mode, pool={"max_pool_size": 10}, state_dir=str(short_dir),
                  tls={"server_mode": server_tls}, **top)


class NewProcess:
    """The process started with --takeover, on the old one's config file."""

    def __init__(self, old, extra=()):
        self.log_path = old.dir / f"{old.name}-takeover.log"
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(helios_bin() / "heliosproxy"), "-c", str(old.config_path), "--takeover",
             *extra], stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
            cwd=old.dir)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.logf.closed:
            return
        if self.proc.returncode is None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                pytest.fail("the new heliosproxy did not exit after SIGTERM:\n" + self.log())
        self.logf.close()
        assert self.proc.returncode == 0, self.log()
        assert "ERROR: AddressSanitizer" not in self.log(), self.log()


@pytest.fixture
def takeover():
    started = []

    def start(old, extra=()):
        n = NewProcess(old, extra)
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


def wait_exit(p, timeout=20):
    rc = p.wait(timeout)
    assert rc == 0, f"old process: exit status {rc}\n{p.log_tail()}"


def test_takeover_moves_idle_client_with_settings_and_prepared_statements(
        pg, proxy, config, short_dir, takeover):
    p = proxy(tx_config(config, short_dir))
    conn = p.connect()
    conn.execute("SET application_name = 'before_takeover'")
    conn.execute("SET statement_timeout = '12345ms'")
    q = "SELECT %s::int + 1"
    assert conn.execute(q, (1,), prepare=True).fetchone() == (2,)  # named, server-side
    key_before = conn.pgconn.backend_pid  # the proxy's id for this client
    new = takeover(p)
    wait_exit(p)
    assert re.search(r"takeover: 1 client handed over", p.log()), p.log_tail()
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    # the same connection, now served by the new process
    assert conn.execute("SHOW application_name").fetchone() == ("before_takeover",)
    assert conn.execute("SHOW statement_timeout").fetchone() == ("12345ms",)
    assert conn.execute(q, (41,), prepare=True).fetchone() == (42,)
    assert conn.pgconn.backend_pid == key_before
    # a fresh login goes to the new process too (the old one is gone)
    with p.connect() as c2:
        assert c2.execute("SELECT 7").fetchone() == (7,)
    conn.close()


def test_takeover_pools_old_idle_servers_with_their_prepared_statements(
        pg, proxy, config, short_dir, takeover):
    """Transaction pooling: the old process's idle servers move into the new
    process's pool with what the proxy knows of them (applied settings,
    statements prepared there): no new backend, no second Parse."""
    p = proxy(tx_config(config, short_dir))
    conn = p.connect()
    conn.execute("SET application_name = 'idle_server_moves'")
    q = "SELECT %s::int * 3"
    assert conn.execute(q, (2,), prepare=True).fetchone() == (6,)
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    su = pg.superuser(APPDB)
    before = {r[0] for r in su.execute(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = %s",
        (ALICE[0], APPDB))}
    assert backend in before
    new = takeover(p)
    wait_exit(p)
    assert "with 1 idle server" in p.log(), p.log_tail()
    wait_for(lambda: re.search(r"takeover complete: 1 client moved in .*with 1 idle server\b",
                               new.log()), timeout=10)
    # the same backend serves it, with its statement still prepared there
    assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
    assert conn.execute(q, (5,), prepare=True).fetchone() == (15,)
    assert conn.execute("SHOW application_name").fetchone() == ("idle_server_moves",)
    after = {r[0] for r in su.execute(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = %s",
        (ALICE[0], APPDB))}
    assert after == before, (before, after)
    su.close()
    conn.close()


def test_takeover_pools_old_idle_session_server_for_next_login(pg, proxy, config, short_dir,
                                                                takeover):
    """Session pooling: a server back in the old process's pool (reset) is
    the one the next login gets from the new process."""
    p = proxy(tx_config(config, short_dir, mode="session"))
    with p.connect() as first:
        backend = first.execute("SELECT pg_backend_pid()").fetchone()[0]
    wait_for(lambda: pg.server_conns(ALICE[0], APPDB) == 1, timeout=10)
    time.sleep(0.3)  # the reset query ran, the server is idle in the pool
    new = takeover(p)
    wait_exit(p)
    assert "with 1 idle server" in p.log(), p.log_tail()
    wait_for(lambda: "takeover complete: 0 clients moved in from the old process, with 1 "
             "idle server" in new.log(), timeout=10)
    with p.connect() as second:
        assert second.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
    conn_count = pg.server_conns(ALICE[0], APPDB)
    assert conn_count == 1, conn_count


def test_takeover_cancel_key_still_cancels_on_new_process(pg, proxy, config, short_dir,
                                                          takeover):
    p = proxy(tx_config(config, short_dir))
    conn = p.connect()
    conn.execute("SELECT 1")
    new = takeover(p)
    wait_exit(p)
    wait_for(lambda: "takeover complete" in new.log(), timeout=10)
    t = threading.Timer(0.5, conn.cancel)
    t.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(20)")
    t.join()
    assert conn.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
    conn.close()


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_takeover_lets_open_transaction_finish_on_old_process(pg, proxy, config, short_dir,
                                                              takeover, mode):
    su = pg.superuser(APPDB)
    su.execute("DROP TABLE IF EXISTS tko_t")
    su.execute("CREATE TABLE tko_t (v int)")
    su.execute("GRANT ALL ON tko_t TO " + ALICE[0])
    p = proxy(tx_config(config, short_dir, mode=mode))
    conn = p.connect()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tko_t VALUES (1)")
    old_pid = p.pid
    new = takeover(p)
    wait_for(lambda: "runs: idle clients move to it" in p.log(), timeout=15)
    time.sleep(0.5)
    # the transaction's client stays with the old process, which keeps running
    assert p.running(), "the old process left with a transaction open"
    conn.execute("INSERT INTO tko_t VALUES (2)")
    conn.execute("COMMIT")
    wait_exit(p)
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    conn.execute("INSERT INTO tko_t VALUES (3)")
    assert su.execute("SELECT array_agg(v ORDER BY v) FROM tko_t").fetchone() == ([1, 2, 3],)
    # the backend that served it now is the new process's: the old pid is gone
    assert not psutil_alive(old_pid)
    conn.close()
    su.close()


def test_cancel_reaching_new_process_stops_query_of_client_on_old_process(
        pg, proxy, config, short_dir, takeover):
    """A client finishing its transaction on the old process can still be
    cancelled: its CancelRequest lands on the new process (the only one
    accepting), which passes it to the old one, where it runs on the
    client's own worker (the other may have ended its loop). Three rounds:
    the kernel picks the worker a client lands on."""
    for round_ in range(3):
        p = proxy(tx_config(config, short_dir))  # its own port: its own socket
        conn = p.connect()
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
        new = takeover(p)
        wait_for(lambda: "runs: idle clients move to it" in p.log(), timeout=15)
        time.sleep(0.3)  # the worker without clients ends its loop
        t = threading.Timer(0.5, conn.cancel)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        t.join()
        assert time.monotonic() - t0 < 4  # well before shutdown_timeout_secs
        assert p.running()  # it was still the old process's client
        conn.execute("ROLLBACK")
        wait_exit(p)
        wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
        assert conn.execute("SELECT 'moved after'").fetchone() == ("moved after",)
        conn.close()
        new.stop()


def psutil_alive(pid):
    try:
        import os
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.parametrize("mode,proto", [("transaction", "simple"),
                                        ("transaction", "prepared"),
                                        ("session", "prepared")])
def test_takeover_under_pgbench_has_no_failed_transactions(pg, proxy, config, short_dir,
                                                           takeover, mode, proto):
    run([str(pg.bin / "pgbench"), "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", ALICE[0], APPDB], env=pg.env(password=ALICE[1]), timeout=120)
    p = proxy(tx_config(config, short_dir, mode=mode))
    env = pg.env(password=ALICE[1])
    bench = [str(pg.bin / "pgbench"), "-n", "-j", "2", "-T", "12", "-M", proto,
             "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0], APPDB]
    # persistent clients (they move) and a new connection per transaction
    # (the handed-over listening sockets: no refused connect)
    steady = subprocess.Popen(bench + ["-c", "8"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    churn = subprocess.Popen(bench + ["-c", "2", "-C"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    new = takeover(p)
    wait_exit(p, timeout=30)
    out, err = steady.communicate(timeout=60)
    cout, cerr = churn.communicate(timeout=60)
    for o, e, proc in ((out, err, steady), (cout, cerr, churn)):
        assert proc.returncode == 0, o + e
        assert re.search(r"(?m)^number of failed transactions: 0\b", o), o + e
        n = re.search(r"(?m)^number of transactions actually processed: (\d+)", o)
        assert n and int(n.group(1)) > 0, o
    moved = re.search(r"takeover: (\d+) clients? handed over .*with (\d+) idle servers?",
                      p.log())
    assert moved and int(moved.group(1)) >= 8, p.log_tail()
    if mode == "transaction":
        # the servers its transactions used go to the new pool warm
        assert int(moved.group(2)) >= 1, p.log_tail()
    # the new process served transactions after the old one left: its
    # pool's servers did the work (pgbench ran 12 s, the takeover at 4 s)
    assert "takeover complete" in new.log(), new.log()


def test_takeover_moves_session_client_with_its_backend(pg, proxy, config, short_dir,
                                                       takeover):
    p = proxy(tx_config(config, short_dir, mode="session"))
    conn = p.connect()
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("CREATE TEMP TABLE tko_tmp AS SELECT 5 AS v")
    conn.execute("PREPARE tko_sql(int) AS SELECT $1 * 2")
    conn.execute("SET application_name = 'session_moves'")
    assert conn.execute("SELECT %s::int", (3,), prepare=True).fetchone() == (3,)
    new = takeover(p)
    wait_exit(p)
    assert "takeover: 1 client handed over" in p.log(), p.log_tail()
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    # the very same backend: its temporary table, SQL and protocol
    # prepared statements and settings are still there
    assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
    assert conn.execute("SELECT v FROM tko_tmp").fetchone() == (5,)
    assert conn.execute("EXECUTE tko_sql(21)").fetchone() == (42,)
    assert conn.execute("SHOW application_name").fetchone() == ("session_moves",)
    assert conn.execute("SELECT %s::int", (4,), prepare=True).fetchone() == (4,)
    # pg_stat_activity still shows one backend for it (no reconnect)
    su = pg.superuser(APPDB)
    assert su.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                      (backend,)).fetchone() == (1,)
    su.close()
    conn.close()


def test_takeover_leaves_tls_session_on_old_process_until_it_ends(pg, proxy, config,
                                                                  short_dir, takeover):
    """What cannot move: a session over a TLS server connection (the cluster
    offers TLS; server_mode = "require") stays on the old process, which
    serves it until the client leaves, then exits 0."""
    p = proxy(tx_config(config, short_dir, mode="session", server_tls="require",
                        shutdown_timeout_secs=60))
    conn = p.connect()
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    new = takeover(p)
    wait_for(lambda: "runs: idle clients move to it" in p.log(), timeout=15)
    time.sleep(1.0)
    assert p.running(), "the old process left a TLS session behind"
    # still served, by the old process, on the same backend
    assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == backend
    with p.connect() as fresh:  # new logins go to the new process meanwhile
        assert fresh.execute("SELECT 1").fetchone() == (1,)
    conn.close()
    wait_exit(p)
    assert "takeover: 0 clients handed over" in p.log(), p.log_tail()
    wait_for(lambda: "takeover complete: 0 clients moved in" in new.log(), timeout=10)


def test_takeover_moves_plain_client_and_leaves_tls_client_on_old_process(
        pg, proxy, config, short_dir, takeover, tmp_path):
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    cfg = tx_config(config, short_dir, shutdown_timeout_secs=60)
    cfg["tls"].update({"client_mode": "allow", "cert_file": str(crt), "key_file": str(key)})
    p = proxy(cfg)
    tls = p.connect(sslmode="require")
    plain = p.connect(sslmode="disable")
    assert tls.pgconn.ssl_in_use and not plain.pgconn.ssl_in_use
    tls.execute("SET application_name = 'tls_stays'")
    plain.execute("SET application_name = 'plain_moves'")
    new = takeover(p)
    wait_for(lambda: "runs: idle clients move to it" in p.log(), timeout=15)
    time.sleep(1.0)
    assert p.running(), "the old process dropped its TLS client"
    # both keep working: the TLS one on the old process, the plain one moved
    assert tls.execute("SHOW application_name").fetchone() == ("tls_stays",)
    assert plain.execute("SHOW application_name").fetchone() == ("plain_moves",)
    tls.close()
    wait_exit(p)
    assert "takeover: 1 client handed over" in p.log(), p.log_tail()
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    assert plain.execute("SHOW application_name").fetchone() == ("plain_moves",)
    plain.close()


def test_takeover_hands_over_unix_socket_and_its_clients(pg, proxy, config, short_dir,
                                                          takeover):
    p = proxy(tx_config(config, short_dir, unix_socket_dir=str(short_dir)))
    sock = short_dir / f".s.PGSQL.{p.port}"
    assert sock.exists()
    def unix_connect():
        return psycopg.connect(dsn(host=str(short_dir), port=p.port, user=ALICE[0],
                                   password=ALICE[1], dbname=APPDB), autocommit=True)

    conn = unix_connect()
    conn.execute("SET application_name = 'over_unix'")
    new = takeover(p)
    wait_exit(p)
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    assert "and its Unix socket" in new.log(), new.log()
    assert conn.execute("SHOW application_name").fetchone() == ("over_unix",)
    # the same socket file still leads to a listener (the new process's)
    with unix_connect() as fresh:
        assert fresh.execute("SELECT 3").fetchone() == (3,)
    conn.close()


def test_takeover_with_bad_config_leaves_running_process_alone(pg, proxy, config, short_dir,
                                                                tmp_path):
    p = proxy(tx_config(config, short_dir))
    conn = p.connect()
    bad = tmp_path / "bad.toml"
    bad.write_text(p.config_path.read_text() + "\nlisten_port = 6432\n")
    r = subprocess.run([str(helios_bin() / "heliosproxy"), "-c", str(bad), "--takeover"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "listen_port" in r.stderr, r.stderr
    assert p.running() and "asks to take over" not in p.log()
    assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)
    conn.close()


def test_failed_takeover_gives_old_process_its_admin_and_control_back(pg, proxy, config,
                                                                      short_dir, takeover):
    import socket
    from conftest import port_accepts
    p = proxy(tx_config(config, short_dir))
    conn = p.connect()
    conn.execute("SET application_name = 'survives_failure'")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    failing = takeover(p, extra=("--admin-address", f"127.0.0.1:{busy.getsockname()[1]}"))
    assert failing.proc.wait(30) != 0
    failing.proc.returncode = 0  # its failure is the point; the fixture checks the others
    assert p.wait_log(r"takeover failed: admin server and control plane restarted",
                      timeout=15), p.log_tail()
    busy.close()
    assert p.running()
    wait_for(lambda: port_accepts(p.admin_port), timeout=10)
    assert conn.execute("SHOW application_name").fetchone() == ("survives_failure",)
    with p.connect() as fresh:
        assert fresh.execute("SELECT 2").fetchone() == (2,)
    # a second attempt, with nothing in its way, takes over
    new = takeover(p)
    wait_exit(p)
    wait_for(lambda: "takeover complete: 1 client moved in" in new.log(), timeout=10)
    assert conn.execute("SHOW application_name").fetchone() == ("survives_failure",)
    conn.close()


def test_takeover_without_running_proxy_fails_with_reason(pg, config, short_dir, tmp_path):
    from conftest import free_port, to_toml
    cfg = tx_config(config, short_dir, listen_address=f"127.0.0.1:{free_port()}",
                    admin_address="")
    path = tmp_path / "alone.toml"
    path.write_text(to_toml(cfg))
    r = subprocess.run([str(helios_bin() / "heliosproxy"), "-c", str(path), "--takeover"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--takeover: no running heliosproxy answers on" in r.stderr, r.stderr
