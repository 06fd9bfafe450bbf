"""Protocol features through the proxy (session mode): cancel, COPY,
LISTEN/NOTIFY, startup parameters, server-side termination."""

import threading
import time

import psycopg
import psycopg.errors
import pytest

import pgwire
from conftest import ALICE, APPDB


def test_cancel(pg, proxy, config):
    p = proxy(config())
    with p.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel)
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(30)")
        finally:
            timer.cancel()
        took = time.monotonic() - t0
        assert took < 2.5, f"cancel took {took - 0.5:.2f} s after the request"
        assert conn.execute("SELECT 'still usable'").fetchone() == ("still usable",)


def test_cancel_request_raw(pg, proxy, config):
    # CancelRequest with the BackendKeyData the proxy gave this client.
    p = proxy(config())
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        res = c.startup(ALICE[0], APPDB, ALICE[1])
        assert res.ok and res.backend_pid is not None, res
        timer = threading.Timer(0.5, pgwire.cancel_request, ("127.0.0.1", p.port, res.backend_pid, res.backend_key))
        timer.start()
        try:
            with pytest.raises(pgwire.PgError) as ei:
                c.query("SELECT pg_sleep(30)")
        finally:
            timer.cancel()
        assert ei.value.code == "57014", ei.value.fields
        assert c.query("SELECT 1") == [["1"]]


COPY_OUT = "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 10000)) TO STDOUT"


def copy_out(conn):
    buf = bytearray()
    with conn.cursor().copy(COPY_OUT) as copy:
        for chunk in copy:
            buf += chunk
    return bytes(buf)


def test_copy_out(pg, proxy, config):
    p = proxy(config())
    with psycopg.connect(pg.dsn(*ALICE)) as direct:
        expected = copy_out(direct)
    assert len(expected) == 10000 * 1001
    with p.connect() as conn:
        got = copy_out(conn)
        assert len(got) == len(expected)
        assert got == expected
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_copy_in(pg, proxy, config):
    p = proxy(config())
    line = b"y" * 1000
    with p.connect() as conn:
        conn.execute("CREATE TEMP TABLE copy_in (id int, s text)")
        with conn.cursor().copy("COPY copy_in (id, s) FROM STDIN") as copy:
            batch = []
            for i in range(1, 10001):
                batch.append(b"%d\t%s\n" % (i, line))
                if len(batch) == 500:
                    copy.write(b"".join(batch))
                    batch = []
            if batch:
                copy.write(b"".join(batch))
        assert conn.execute("SELECT count(*), sum(id), sum(length(s)) FROM copy_in").fetchone() == \
            (10000, 10000 * 10001 // 2, 10000 * 1000)
        # a COPY that fails on the server leaves the session usable
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor().copy("COPY copy_in (id, s) FROM STDIN") as copy:
                copy.write(b"not-a-number\tz\n")
        assert conn.execute("SELECT count(*) FROM copy_in").fetchone() == (10000,)


def test_listen_notify(pg, proxy, config):
    p = proxy(config())
    with p.connect() as a, p.connect() as b:
        got = []
        a.add_notify_handler(got.append)
        a.execute("LISTEN ch")
        b.execute("NOTIFY ch, 'hello'")
        # psycopg 3.1's notifies() has no timeout: poll with a cheap query,
        # which hands any notification received to the handler.
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
            a.execute("SELECT 1")
        assert got, "no notification within 5 s"
        assert (got[0].channel, got[0].payload) == ("ch", "hello")
        assert got[0].pid == b.info.backend_pid


def test_startup_options(pg, proxy, config):
    p = proxy(config())
    opts = "-c statement_timeout=1234 -c myapp.tag=blue"
    with p.connect(options=opts) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
        assert conn.execute("SELECT current_setting('myapp.tag')").fetchone() == ("blue",)
        conn.execute("SET statement_timeout = 5000")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        conn.execute("RESET statement_timeout")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1234ms",)


def test_startup_parameter_idle_in_transaction_timeout(pg, proxy, config):
    # A GUC as a startup packet parameter of its own (not in options).
    p = proxy(config())
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        res = c.startup(ALICE[0], APPDB, ALICE[1],
                        params={"idle_in_transaction_session_timeout": "300"})
        assert res.ok, res
        assert c.query("SHOW idle_in_transaction_session_timeout") == [["300ms"]]
        c.query("BEGIN")
        time.sleep(1.0)
        # the server ended the idle transaction's session: FATAL 25P03
        with pytest.raises((pgwire.PgError, pgwire.ProtocolError, OSError)) as ei:
            c.query("SELECT 1")
        if isinstance(ei.value, pgwire.PgError):
            assert ei.value.code == "25P03", ei.value.fields


def test_startup_values_do_not_leak(pg, proxy, config):
    # One server connection, used by one client after the other.
    p = proxy(config(pool={"max_pool_size": 1}))
    with p.connect(options="-c statement_timeout=1234 -c myapp.tag=blue") as c1:
        assert c1.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
        c1.execute("SET work_mem = '7MB'")
        c1.execute("SET application_name = 'first-client'")
    with p.connect(options="-c statement_timeout=2222") as c2:
        assert c2.execute("SHOW statement_timeout").fetchone() == ("2222ms",)
        assert c2.execute("SELECT current_setting('myapp.tag', true)").fetchone()[0] in (None, "")
        assert c2.execute("SHOW work_mem").fetchone() == ("4MB",)
        assert c2.execute("SHOW application_name").fetchone() != ("first-client",)
    with p.connect() as c3:
        assert c3.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert c3.execute("SELECT current_setting('myapp.tag', true)").fetchone()[0] in (None, "")


def test_server_side_termination(pg, proxy, config):
    p = proxy(config())
    with p.connect() as conn:
        pid = conn.info.backend_pid
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (pid,)
        assert pg.su.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError) as ei:
            conn.execute("SELECT 1")
        e = ei.value
        assert e.sqlstate == "57P01" or "terminating connection due to administrator command" in str(e), \
            f"expected the server's own message, got {e.sqlstate}: {e}"
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
