"""Kernel-accelerated session mode (pool_mode.kernel_splice): session clients
spliced to their server by the sockmap program (bpf/splice.bpf.c).

Needs root (CAP_BPF + CAP_NET_ADMIN) and a build with BPF; each test skips
with the reason otherwise. TLS towards the servers is off in these configs:
TLS sessions are never spliced."""

import hashlib
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import ALICE, APPDB, helioctl, run, wait_for

COPY_MB = 50


def splice_config(config, **pool):
    return config(pool={"max_pool_size": 4, "kernel_splice": True, **pool},
                  tls={"server_mode": "disable"})


def metric(p, name):
    """Sum of a /metrics family's samples (0 when absent)."""
    port = p.defaults["admin_address"].rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    vals = re.findall(rf"(?m)^{name}(?:\{{[^}}]*\}})? (\S+)$", text)
    return sum(float(v) for v in vals)


@pytest.fixture
def spliced(proxy, config):
    """A proxy with kernel_splice on; skips when the program cannot load here."""
    if os.geteuid() != 0:
        pytest.skip("kernel_splice needs root (CAP_BPF and CAP_NET_ADMIN)")
    p = proxy(splice_config(config), log_level=os.environ.get("HELIOS_TEST_LOG_LEVEL", "info"))
    with p.connect() as c:
        c.execute("SELECT 1")
    log = p.log()
    if "no BPF support" in log or "cannot load the splice program" in log:
        pytest.skip("this build or kernel cannot load the splice program: " +
                    log[log.index("kernel_splice"):].splitlines()[0])
    assert wait_for(lambda: metric(p, "helios_splice_sessions_total") >= 1), p.log_tail()
    assert wait_for(lambda: metric(p, "helios_splice_sessions_active") == 0), p.log_tail()
    return p


def backend_pid(conn):
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_psql_session_is_spliced_and_answers(pg, spliced):
    before = metric(spliced, "helios_splice_sessions_total")
    r = run([str(pg.bin / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(spliced.port),
             "-U", ALICE[0], "-d", APPDB, "-c", "SELECT 40 + 2",
             "-c", "BEGIN", "-c", "SELECT string_agg(g::text, ',') FROM generate_series(1, 5) g",
             "-c", "COMMIT"], env=pg.env(password=ALICE[1]))
    assert r.stdout.split() == ["42", "BEGIN", "1,2,3,4,5", "COMMIT"], r
    assert metric(spliced, "helios_splice_sessions_total") == before + 1


def test_server_goes_back_to_the_pool_reset_after_a_spliced_session(proxy, config):
    if os.geteuid() != 0:
        pytest.skip("kernel_splice needs root")
    p = proxy(splice_config(config, max_pool_size=1))
    with p.connect() as c:
        c.autocommit = True
        pid = backend_pid(c)
        c.execute("SET work_mem = '7MB'")
    if "kernel_splice: splice program loaded" not in p.log():
        pytest.skip("the splice program cannot load here")
    assert wait_for(lambda: metric(p, "helios_splice_servers_reused_total") >= 1), p.log_tail()
    with p.connect() as c:
        assert backend_pid(c) == pid, "the server of the spliced session was not reused"
        assert c.execute("SHOW work_mem").fetchone()[0] == "4MB", "reset_query did not run"
    assert metric(p, "helios_splice_sessions_total") == 2


def test_query_counts_come_from_the_bpf_maps(spliced):
    q0 = metric(spliced, "helios_queries_total")
    with spliced.connect() as c:
        c.autocommit = True
        for i in range(25):
            c.execute(f"SELECT {i}")  # no parameters: one request each
        # folded from the maps about once a second while the session lives
        assert wait_for(lambda: metric(spliced, "helios_queries_total") - q0 == 25, timeout=5), \
            metric(spliced, "helios_queries_total") - q0
        c.execute("BEGIN")
        c.execute("SELECT 1")
        # per connection: helioctl clients reads the map for this client
        out = helioctl(spliced, "clients").stdout
        assert "q=27 tx=T" in out, out
        c.execute("COMMIT")
    assert wait_for(lambda: metric(spliced, "helios_splice_sessions_active") == 0)
    assert metric(spliced, "helios_queries_total") - q0 == 28


def test_pgbench_select_only_through_spliced_sessions(pg, spliced):
    env = pg.env(password=ALICE[1])
    run([str(pg.bin / "pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", ALICE[0], APPDB], env=env, timeout=120)
    s0 = metric(spliced, "helios_splice_sessions_total")
    r = run([str(pg.bin / "pgbench"), "-n", "-S", "-c", "4", "-j", "2", "-t", "500", "-h",
             "127.0.0.1", "-p", str(spliced.port), "-U", ALICE[0], APPDB], env=env, timeout=120)
    assert re.search(r"number of transactions actually processed: 2000/2000", r.stdout), r.stdout
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert failed is None or failed.group(1) == "0", r.stdout
    # the 4 clients, and pgbench's own first connection (it reads the scale)
    assert metric(spliced, "helios_splice_sessions_total") - s0 >= 4


@pytest.fixture
def big_table(pg):
    """A table of about COPY_MB MB, made directly on the server."""
    with psycopg.connect(pg.dsn(*ALICE), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS splice_big")
        c.execute("CREATE TABLE splice_big (id int, payload text)")
        rows = COPY_MB * 1024 * 1024 // 530
        c.execute("INSERT INTO splice_big SELECT g, repeat(md5(g::text), 16) "
                  "FROM generate_series(1, %s) g", (rows,))
    yield "splice_big"
    with psycopg.connect(pg.dsn(*ALICE), autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS splice_big")
        c.execute("DROP TABLE IF EXISTS splice_in")


def copy_out_digest(conn, sql):
    h = hashlib.sha256()
    n = 0
    with conn.cursor().copy(sql) as cp:
        for block in cp:
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def test_copy_out_and_in_of_50mb_are_byte_exact(pg, spliced, big_table):
    sql = f"COPY (SELECT * FROM {big_table} ORDER BY id) TO STDOUT"
    with psycopg.connect(pg.dsn(*ALICE)) as direct:
        want, size = copy_out_digest(direct, sql)
    assert size >= COPY_MB * 1024 * 1024 * 0.95
    with spliced.connect() as c:
        got, got_size = copy_out_digest(c, sql)
    assert (got, got_size) == (want, size), "COPY out through the splice differs"

    # COPY in: 50 MB the test makes, read back directly
    lines = [f"{i}\t{hashlib.md5(str(i).encode()).hexdigest() * 16}\n".encode()
             for i in range(size // 530 + 1)]
    data = b"".join(lines)
    with spliced.connect() as c:
        c.execute("DROP TABLE IF EXISTS splice_in")
        c.execute("CREATE TABLE splice_in (id int, payload text)")
        with c.cursor().copy("COPY splice_in FROM STDIN") as cp:
            for i in range(0, len(data), 1 << 20):
                cp.write(data[i:i + (1 << 20)])
        c.commit()
    with psycopg.connect(pg.dsn(*ALICE)) as direct:
        back, back_size = copy_out_digest(direct,
                                          "COPY (SELECT * FROM splice_in ORDER BY id) TO STDOUT")
    assert back_size == len(data) and back == hashlib.sha256(data).hexdigest(), \
        "COPY in through the splice lost or changed bytes"


def test_copy_sent_then_closed_at_once_reaches_the_server_whole(pg, spliced):
    """The client writes a whole COPY (about 20 MB), Sync and Terminate and closes
    without reading an answer: the drain must deliver every byte before the
    pair is taken apart, so the server commits all rows."""
    from pgwire import Conn, cstr, message
    rows = 40000
    with psycopg.connect(pg.dsn(*ALICE), autocommit=True) as direct:
        direct.execute("DROP TABLE IF EXISTS splice_fire")
        direct.execute("CREATE TABLE splice_fire (id int, payload text)")
    try:
        c = Conn("127.0.0.1", spliced.port, timeout=30)
        res = c.startup(ALICE[0], APPDB, password=ALICE[1])
        assert res.error is None, res.error
        data = b"".join(f"{i}\t{'y' * 500}\n".encode() for i in range(rows))
        out = [message(b"Q", cstr("COPY splice_fire FROM STDIN"))]
        out += [message(b"d", data[i:i + 65536]) for i in range(0, len(data), 65536)]
        out += [message(b"c"), message(b"X")]
        c.send_raw(b"".join(out))
        c.close()

        def committed():
            with psycopg.connect(pg.dsn(*ALICE), autocommit=True) as direct:
                return direct.execute("SELECT count(*), sum(length(payload)) "
                                      "FROM splice_fire").fetchone()
        assert wait_for(lambda: committed()[0] == rows, timeout=20), committed()
        assert committed() == (rows, rows * 500)
    finally:
        with psycopg.connect(pg.dsn(*ALICE), autocommit=True) as direct:
            direct.execute("DROP TABLE IF EXISTS splice_fire")


def test_client_killed_mid_copy_closes_its_server_and_others_go_on(pg, spliced, big_table):
    env = pg.env(password=ALICE[1])
    env["PGAPPNAME"] = "splice-killed"
    psql = subprocess.Popen([str(pg.bin / "psql"), "-X", "-h", "127.0.0.1", "-p",
                             str(spliced.port), "-U", ALICE[0], "-d", APPDB, "-c",
                             f"COPY {big_table} TO STDOUT"], env=env, stdout=subprocess.PIPE)
    assert len(psql.stdout.read(1 << 20)) == 1 << 20  # mid-stream
    psql.send_signal(signal.SIGKILL)
    psql.wait()
    # the server was mid-COPY: it is closed, not pooled
    def killed_gone():
        return pg.su.execute("SELECT count(*) FROM pg_stat_activity "
                             "WHERE application_name = 'splice-killed'").fetchone()[0] == 0
    assert wait_for(killed_gone, timeout=10), "the mid-COPY server was kept"
    with spliced.connect() as c:
        assert c.execute("SELECT 7").fetchone()[0] == 7
        assert c.execute("SHOW application_name").fetchone()[0] != "splice-killed"
    assert wait_for(lambda: metric(spliced, "helios_splice_sessions_active") == 0)


def test_server_terminated_mid_copy_delivers_its_error_to_the_client(pg, spliced, big_table):
    with spliced.connect() as c:
        pid = backend_pid(c)
        got = 0
        # the server's FATAL (57P01) is the last thing it sent before its FIN:
        # its text reaching the client shows nothing before the FIN was lost
        err = None
        try:
            with c.cursor().copy(f"COPY {big_table} TO STDOUT") as cp:
                for block in cp:
                    got += len(block)
                    if got > (1 << 20) and pid:
                        pg.su.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        pid = None
        except psycopg.OperationalError as e:
            err = e
        texts = []
        while err is not None:  # psycopg chains "connection lost" after the error
            texts.append(str(err))
            err = err.__context__
        assert any("terminating connection due to administrator command" in t
                   for t in texts), texts
        assert got > (1 << 20)
    assert wait_for(lambda: metric(spliced, "helios_splice_sessions_active") == 0)
    with spliced.connect() as c:
        assert c.execute("SELECT 8").fetchone()[0] == 8


def test_cancel_reaches_a_spliced_session(spliced):
    with spliced.connect() as c:
        t = threading.Timer(0.5, c.cancel)
        t.start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - start < 10
        c.rollback()
        assert c.execute("SELECT 9").fetchone()[0] == 9


def test_sigterm_with_a_spliced_session_drains_it_then_exits_cleanly(pg, proxy, config):
    if os.geteuid() != 0:
        pytest.skip("kernel_splice needs root")
    p = proxy(splice_config(config), shutdown_timeout_secs=2)
    c = p.connect()
    assert c.execute("SELECT 1").fetchone()[0] == 1
    if "splice program loaded" not in p.log():
        pytest.skip("the splice program cannot load here")
    p.sigterm()
    time.sleep(0.5)
    # draining: the spliced session still answers
    assert c.execute("SELECT 2").fetchone()[0] == 2
    assert p.wait(10) == 0, p.log_tail()
    with pytest.raises(psycopg.OperationalError):
        c.execute("SELECT 3")
    c.close()
    assert pg.wait_server_conns(ALICE[0], APPDB, 0) == 0, "a spliced server outlived the proxy"


def test_unix_socket_and_tls_server_sessions_are_relayed_not_spliced(pg, proxy, config):
    if os.geteuid() != 0:
        pytest.skip("kernel_splice needs root")
    with tempfile.TemporaryDirectory(prefix="hx-") as d:
        p = proxy(splice_config(config, max_pool_size=4), unix_socket_dir=d)
        r = run([str(pg.bin / "psql"), "-X", "-A", "-t", "-h", d, "-p", str(p.port), "-U",
                 ALICE[0], "-d", APPDB, "-c", "SELECT 'via unix'"], env=pg.env(password=ALICE[1]))
        assert r.stdout.strip() == "via unix"
        assert metric(p, "helios_splice_sessions_total") == 0, "a Unix-socket client was spliced"
        p.stop()
    # TLS towards the server (prefer, which the test cluster offers): relayed
    p = proxy(config(pool={"kernel_splice": True}))
    with p.connect() as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
    assert metric(p, "helios_splice_sessions_total") == 0
    assert "tls.server_mode = prefer uses TLS" in p.log()


def test_without_bpf_privileges_it_logs_once_and_relays(proxy, config):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop the capabilities for real")
    # root without any capability: loading the program fails with EPERM
    p = proxy(splice_config(config), prefix=["setpriv", "--bounding-set=-all",
                                             "--inh-caps=-all", "--"])
    for i in range(3):
        with p.connect() as c:
            assert c.execute("SELECT %s::int * 2", (i,)).fetchone()[0] == i * 2
    log = p.log()
    assert log.count("cannot load the splice program") + log.count("no BPF support") == 1, log
    assert metric(p, "helios_splice_sessions_total") == 0
    assert metric(p, "helios_splice_fallbacks_total") == 3


def test_a_session_a_rate_limit_applies_to_is_relayed_and_limited_not_spliced(spliced, proxy,
                                                                              config):
    # the kernel path cannot see queries: a session that a per-query stage
    # applies to stays with the proxy (spliced: the program loads here)
    cfg = splice_config(config)
    cfg["rate_limit"] = {"queries_per_second": 20, "burst_size": 5, "mode": "reject"}
    p = proxy(cfg)
    with p.connect() as c:
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded):
            for _ in range(200):
                c.execute("SELECT 1")
    assert metric(p, "helios_splice_sessions_total") == 0, p.log_tail()
