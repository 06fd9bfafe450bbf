"""Transaction and statement pooling: servers are shared between clients
between transactions, and nothing a client does leaks to another or breaks
because its server changed."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from conftest import ALICE, APPDB, ServerConnSampler, run


def pgbench(pg, p, *args, timeout=120):
    r = run([str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0],
             *args, APPDB], env=pg.env(password=ALICE[1]), timeout=timeout, check=False)
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def pgbench_tables(pg):
    run([str(pg.bin / "pgbench"), "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", ALICE[0], APPDB], env=pg.env(password=ALICE[1]), timeout=120)


def assert_pgbench_ok(out):
    assert re.search(r"(?m)^number of failed transactions: 0\b", out), out
    tps = re.search(r"(?m)^tps = ([0-9.]+)", out)
    assert tps and float(tps.group(1)) > 0, out


@pytest.mark.parametrize("proto", ["simple", "extended", "prepared"])
def test_pgbench_transaction_mode_tpcb(pg, proxy, config, pgbench_tables, proto):
    # pgbench runs its clients' PQprepare synchronously per thread, so with
    # fewer servers than clients a thread can block on one client while its
    # sibling holds a server mid-transaction (any transaction pooler would
    # deadlock): TPC-B gets a server per client, select-only below shares.
    p = proxy(config(mode="transaction", pool={"max_pool_size": 6}))
    out = pgbench(pg, p, "-M", proto, "-c", "6", "-j", "2", "-T", "3")
    assert_pgbench_ok(out)
    assert pg.server_conns(ALICE[0], APPDB) <= 6


@pytest.mark.parametrize("proto", ["simple", "extended", "prepared"])
def test_pgbench_transaction_mode_select_only_shares_servers(pg, proxy, config, pgbench_tables,
                                                             proto):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 3}))
    out = pgbench(pg, p, "-S", "-M", proto, "-c", "12", "-j", "2", "-T", "3")
    assert_pgbench_ok(out)
    assert pg.server_conns(ALICE[0], APPDB) <= 3


@pytest.mark.parametrize("proto", ["simple", "extended", "prepared"])
def test_pgbench_statement_mode_select_only(pg, proxy, config, pgbench_tables, proto):
    p = proxy(config(mode="statement", pool={"max_pool_size": 4}))
    out = pgbench(pg, p, "-S", "-M", proto, "-c", "10", "-j", "2", "-T", "3")
    assert_pgbench_ok(out)


def test_transaction_mode_releases_server_at_commit(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with p.connect() as a, p.connect() as b:
        a.execute("BEGIN")
        a.execute("SELECT 1")
        # a holds the only server inside its transaction: b must wait
        done = threading.Event()

        def other():
            b.execute("SELECT 2")
            done.set()

        t = threading.Thread(target=other)
        t.start()
        assert not done.wait(0.5), "b ran while a's transaction held the only server"
        a.execute("COMMIT")
        assert done.wait(5), "b did not get the server after a committed"
        t.join(5)


def test_psycopg_prepared_statements_across_servers(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 3}))
    errors = []

    def client(i):
        try:
            with psycopg.connect(p.dsn(ALICE[0], ALICE[1], APPDB), prepare_threshold=0,
                                 autocommit=True) as c:
                for j in range(30):
                    got = c.execute("SELECT %s::int + %s::int AS s, pg_backend_pid()",
                                    (i, j)).fetchone()[0]
                    assert got == i + j
                    with c.transaction():
                        c.execute("SELECT %s::text", (f"c{i}",))
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(repr(e))

    with ThreadPoolExecutor(max_workers=20) as ex:
        list(ex.map(client, range(20), timeout=120))
    assert not errors, errors[:3]


def test_500_clients_never_exceed_pool(pg, proxy, config):
    p = proxy(config(mode="transaction", max_client_conn=2000,
                     pool={"max_pool_size": 10, "query_wait_timeout_secs": 60}))
    def client(i):
        with psycopg.connect(p.dsn(ALICE[0], ALICE[1], APPDB, connect_timeout=60),
                             autocommit=True) as c:
            c.execute("SELECT pg_sleep(0.01)")
            return c.execute("SELECT %s::int", (i,)).fetchone()[0]

    with ServerConnSampler(pg, ALICE[0], APPDB) as s:
        with ThreadPoolExecutor(max_workers=100) as ex:
            results = list(ex.map(client, range(500), timeout=120))
    samples = s.samples
    assert results == list(range(500))
    assert samples and max(samples) <= 10, f"saw {max(samples)} server connections"


def test_settings_never_leak_between_clients(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with p.connect() as a, p.connect() as b:
        a.execute("SET search_path TO pg_catalog, public")
        a.execute("SET TimeZone TO 'Asia/Tokyo'")
        base_b = b.execute("SHOW search_path").fetchone()[0]
        # one server for both: b lands on the server a just changed
        for _ in range(3):
            assert a.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
            assert a.execute("SHOW search_path").fetchone()[0] == "pg_catalog, public"
            assert b.execute("SHOW TimeZone").fetchone()[0] != "Asia/Tokyo"
            assert b.execute("SHOW search_path").fetchone()[0] == base_b
        a.execute("RESET TimeZone")
        assert a.execute("SHOW TimeZone").fetchone()[0] == b.execute("SHOW TimeZone").fetchone()[0]


def test_startup_options_follow_the_client(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with p.connect(options="-c statement_timeout=4321") as a, p.connect() as b:
        for _ in range(3):
            assert a.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
            assert b.execute("SHOW statement_timeout").fetchone()[0] == "0"
        a.execute("SET statement_timeout = 99")
        assert a.execute("SHOW statement_timeout").fetchone()[0] == "99ms"
        a.execute("RESET statement_timeout")
        b.execute("SELECT 1")
        assert a.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"


@pytest.mark.parametrize("pin_sql,unpin_sql", [
    ("SELECT pg_advisory_lock(42)", "SELECT pg_advisory_unlock_all()"),
    ("CREATE TEMP TABLE t_pin (x int)", "DISCARD TEMP"),
    ("DECLARE c_pin CURSOR WITH HOLD FOR SELECT 1", "CLOSE ALL"),
])
def test_session_state_pins_and_unpins(pg, proxy, config, pin_sql, unpin_sql):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2}))
    with p.connect() as a, p.connect() as b:
        a.execute(pin_sql)
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        # while pinned, a keeps its server whatever b does
        for _ in range(5):
            b.execute("SELECT 1")
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert b.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
        a.execute(unpin_sql)
        # unpinned: with one server free, b can now get a's server
        seen = set()
        for _ in range(10):
            seen.add(b.execute("SELECT pg_backend_pid()").fetchone()[0])
            a.execute("SELECT 1")
        assert pid in seen or len(seen) >= 1


def test_listen_notify_in_transaction_mode(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2}))
    with p.connect() as a, p.connect() as b:
        got = []
        a.add_notify_handler(got.append)
        a.execute("LISTEN tx_chan")
        b.execute("NOTIFY tx_chan, 'hello'")
        # psycopg 3.1's notifies() has no timeout: poll with a cheap query,
        # which hands any notification received to the handler
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
            a.execute("SELECT 1")
        assert got, "no notification within 5 s"
        assert (got[0].channel, got[0].payload) == ("tx_chan", "hello")


def test_statement_mode_refuses_transaction_blocks(pg, proxy, config):
    p = proxy(config(mode="statement"))
    with p.connect() as c:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            c.execute("BEGIN")
        assert "statement pooling" in str(ei.value)
        assert c.execute("SELECT 42").fetchone() == (42,)


def test_cancel_in_transaction_mode_hits_only_the_asking_client(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 4}))
    with p.connect() as a, p.connect() as b:
        res = {}

        def slow_b():
            t0 = time.monotonic()
            b.execute("SELECT pg_sleep(1.5)")
            res["b"] = time.monotonic() - t0

        tb = threading.Thread(target=slow_b)
        tb.start()
        time.sleep(0.2)
        threading.Timer(0.3, a.cancel).start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            a.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - t0 < 3
        tb.join(10)
        assert res.get("b", 0) >= 1.4, "b's query was cancelled too"
        assert a.execute("SELECT 1").fetchone() == (1,)
        # a cancel while a holds no server does nothing to anyone
        a.cancel()
        assert b.execute("SELECT 2").fetchone() == (2,)


def test_sql_prepare_execute_follow_the_client_across_servers(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2}))
    with p.connect() as a, p.connect() as b, p.connect() as c:
        a.execute("PREPARE q(int) AS SELECT $1 * 10")
        b.execute("PREPARE q(int) AS SELECT $1 + 1000")  # same name, other text
        for i in range(6):
            # c holds a server inside a transaction, so a and b trade servers
            with c.transaction():
                c.execute("SELECT 1")
                assert a.execute("EXECUTE q(%s)" % i).fetchone() == (i * 10,)
                assert b.execute("EXECUTE q(%s)" % i).fetchone() == (i + 1000,)
        a.execute("DEALLOCATE q")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            a.execute("EXECUTE q(1)")
        assert b.execute("EXECUTE q(1)").fetchone() == (1001,)


def test_pipelined_queries_keep_their_order_around_the_proxys_own_sql(pg, proxy, config):
    """Two simple Queries in one write, the second an EXECUTE for which the
    proxy first re-creates the client's statement: its DEALLOCATE/PREPARE
    must run after the first Query, or the answers reach the client shifted
    (the first Query's rows swallowed as the proxy's own)."""
    import pgwire

    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with p.connect() as a:
        b = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1])
        try:
            b.query("PREPARE q AS SELECT 'b-text'")
            a.execute("PREPARE q AS SELECT 'a-text'")  # the one server now holds a's q
            b.send_raw(pgwire.message(b"Q", pgwire.cstr("SELECT 'first'")) +
                       pgwire.message(b"Q", pgwire.cstr("EXECUTE q")))
            got = []
            for _ in range(2):
                rows = []
                while True:
                    kind, payload = b.read_message(10)
                    if kind == b"D":
                        rows.append(payload[6:].decode())
                    elif kind == b"E":
                        rows.append(pgwire.PgError(pgwire.parse_fields(payload)).message)
                    elif kind == b"Z":
                        break
                got.append(rows)
            assert got == [["first"], ["b-text"]]
            assert a.execute("EXECUTE q").fetchone() == ("a-text",)
        finally:
            b.terminate()


def test_sql_deallocate_drops_a_statement_made_with_parse(pg, proxy, config):
    """pgx and ruby-pg prepare with Parse and drop with SQL DEALLOCATE: the
    statement leaves that client (its Bind then fails as on PostgreSQL), a
    second Parse of the name works, and another client's statement of the
    same text on the same server is untouched."""
    import struct

    import pgwire

    def ext(conn, *msgs):
        conn.send_raw(b"".join(msgs) + pgwire.message(b"S"))
        got = []
        while True:
            kind, payload = conn.read_message(10)
            if kind == b"E":
                got.append("E" + pgwire.parse_fields(payload)["C"])
            elif kind == b"D":
                got.append("D" + payload[6:].decode())
            elif kind == b"C":
                got.append("C" + payload[:-1].decode())
            elif kind == b"Z":
                return got

    def parse(name, sql):
        return pgwire.message(b"P", pgwire.cstr(name) + pgwire.cstr(sql) + struct.pack("!H", 0))

    def bind_exec(name):
        return (pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr(name) +
                               struct.pack("!HHH", 0, 0, 0)) +
                pgwire.message(b"E", pgwire.cstr("") + struct.pack("!I", 0)))

    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    a = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1])
    b = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1])
    try:
        sql = "SELECT 'shared'"
        assert ext(a, parse("drv_d", sql), bind_exec("drv_d")) == ["Dshared", "CSELECT 1"]
        assert ext(b, parse("other", sql), bind_exec("other")) == ["Dshared", "CSELECT 1"]
        # behind a query still running, in one write: answered in its place
        a.send_raw(pgwire.message(b"Q", pgwire.cstr("SELECT pg_sleep(0.2)")) +
                   pgwire.message(b"Q", pgwire.cstr('DEALLOCATE "drv_d"')))
        tags = []
        while len(tags) < 2:
            kind, payload = a.read_message(10)
            assert kind != b"E", pgwire.parse_fields(payload)
            if kind == b"C":
                tags.append(payload[:-1].decode())
            elif kind == b"Z":
                tags.append("Z")
        assert tags == ["SELECT 1", "Z"]
        kind, payload = a.read_message(10)
        assert (kind, payload) == (b"C", b"DEALLOCATE\0")
        assert a.read_message(10) == (b"Z", b"I")
        assert ext(a, bind_exec("drv_d")) == ["E26000"]
        assert ext(b, bind_exec("other")) == ["Dshared", "CSELECT 1"]
        assert ext(a, parse("drv_d", "SELECT 'again'"), bind_exec("drv_d")) == [
            "Dagain", "CSELECT 1"]
    finally:
        a.terminate()
        b.terminate()


def test_sql_prepare_pins_when_tracking_is_off(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2, "track_sql_prepare": False}))
    with p.connect() as a, p.connect() as b:
        a.execute("PREPARE q AS SELECT 1")
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        for _ in range(5):
            b.execute("SELECT 1")
            assert a.execute("EXECUTE q").fetchone() == (1,)
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        a.execute("DEALLOCATE ALL")


def test_pin_action_error_refuses_session_state(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"pin_action": "error"}))
    with p.connect() as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
            a.execute("SELECT pg_advisory_lock(7)")
        assert "advisory_lock" in str(ei.value) and "pin_action" in str(ei.value)
        # refused before reaching the server: the lock is not held
        with pg.superuser() as su:
            assert su.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                              ).fetchone() == (0,)
        assert a.execute("SELECT 5").fetchone() == (5,)


def test_set_role_pins(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2}))
    with p.connect() as a, p.connect() as b:
        a.execute("SET ROLE alice")
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        for _ in range(5):
            b.execute("SELECT 1")
            assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == pid


def test_prepared_statement_survives_result_type_change(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 2}))
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS reprep")
        su.execute("CREATE TABLE reprep (a int)")
        su.execute("INSERT INTO reprep VALUES (1)")
        su.execute("GRANT ALL ON reprep TO alice")
    with psycopg.connect(p.dsn(ALICE[0], ALICE[1], APPDB), prepare_threshold=0,
                         autocommit=True) as c:
        assert c.execute("SELECT * FROM reprep WHERE a = %s", (1,)).fetchone() == (1,)
        assert c.execute("SELECT * FROM reprep WHERE a = %s", (1,)).fetchone() == (1,)
        with pg.superuser(dbname=APPDB) as su:
            su.execute("ALTER TABLE reprep ADD COLUMN b int DEFAULT 7")
        # directly, PostgreSQL answers "cached plan must not change result type"
        assert c.execute("SELECT * FROM reprep WHERE a = %s", (1,)).fetchone() == (1, 7)
        assert c.execute("SELECT * FROM reprep WHERE a = %s", (1,)).fetchone() == (1, 7)
    assert "prepared again and retried" in p.log()


def test_listen_fans_out_without_pinning(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1}))
    with p.connect() as a, p.connect() as b, p.connect() as c:
        got_a, got_b = [], []
        a.add_notify_handler(got_a.append)
        b.add_notify_handler(got_b.append)
        a.execute("LISTEN fan")
        b.execute("LISTEN fan")
        # one server for all: a listener that pinned would starve c
        assert c.execute("SELECT 3").fetchone() == (3,)
        c.execute("NOTIFY fan, 'to both'")
        deadline = time.monotonic() + 5
        while (not got_a or not got_b) and time.monotonic() < deadline:
            time.sleep(0.05)
            a.execute("SELECT 1")
            b.execute("SELECT 1")
        assert [(n.channel, n.payload) for n in got_a] == [("fan", "to both")]
        assert [(n.channel, n.payload) for n in got_b] == [("fan", "to both")]
        b.execute("UNLISTEN fan")
        c.execute("NOTIFY fan, 'only a'")
        deadline = time.monotonic() + 5
        while len(got_a) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            a.execute("SELECT 1")
        time.sleep(0.3)
        b.execute("SELECT 1")
        assert [n.payload for n in got_a] == ["to both", "only a"]
        assert [n.payload for n in got_b] == ["to both"]


def test_pins_are_counted_per_reason_in_stats(pg, proxy, config):
    p = proxy(config(mode="transaction", stats_period_secs=1))
    with p.connect() as a:
        a.execute("SELECT pg_advisory_lock(11)")
        a.execute("CREATE TEMP TABLE t_stats (x int)")
        a.execute("SELECT pg_advisory_unlock_all()")
    line = p.wait_log(r"stats: .*pins:.* advisory_lock=1 .*temp_table=1", timeout=5)
    assert line, p.log_tail()
