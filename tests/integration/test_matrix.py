"""The protocol scenarios over every transport x pooling mode combination:
{plain, TLS to the client, TLS on both sides} x {session, transaction,
statement}.

One proxy per combination (module-scoped, restarted if a test kills it);
each test checks its own effects and, after it, that the proxy still runs and
its log has no sanitizer report. Statement mode cannot run transaction
blocks: there the tests expect the documented 0A000 instead.

A known bug is marked xfail for exactly the combinations it breaks
(KNOWN_BUGS below), strict where the failure is certain, so the marker must
go when the fix is merged. None is open today.
"""

import threading
import time

import psycopg
import psycopg.errors
import pytest
from psycopg import sql

from conftest import ALICE, APPDB, ProxyGroup, helios_bin, make_config, sanitizer_report

TLS = ("plain", "tls_client", "tls_both")
MODES = ("session", "transaction", "statement")
COMBOS = [(t, m) for t in TLS for m in MODES]

MB = 1024 * 1024
BIG = 70 * 1024  # over the 64 KiB the proxy once refused

# test name -> [function (tls, mode) -> (reason, strict) or None]. Only for
# tests that fail because of these bugs alone.
KNOWN_BUGS = {}
# a known bug whose reason starts with this kills the proxy: its crash log is
# set aside instead of failing the fixture
CRASH = "crash:"


def known(*names):
    """Decorator: registers a known-bug predicate for the named tests."""
    def reg(pred):
        for n in names:
            KNOWN_BUGS.setdefault(n, []).append(pred)
        return pred
    return reg


class Combo:
    """The proxy of one (tls, mode) combination and how to reach it."""

    def __init__(self, pg, tmp, tls, mode, cert):
        self.pg, self.tls, self.mode = pg, tls, mode
        self.group = ProxyGroup(tmp)
        self.table = f"mx_{tls}_{mode}"
        t = {"client_mode": "disable" if tls == "plain" else "require",
             "server_mode": "require" if tls == "tls_both" else "disable"}
        if tls != "plain":
            t["cert_file"], t["key_file"] = str(cert[0]), str(cert[1])
        self.cfg = make_config(pg, mode=mode, tls=t)
        self.proxy = None

    def ensure_running(self):
        if self.proxy is None or not self.proxy.running():
            self.proxy = self.group.start(self.cfg)

    def drop_dead(self, expected):
        """Forgets a proxy that exited; returns its problems. The log of an
        expected crash (a known bug) is set aside (expected_report)."""
        p, self.proxy = self.proxy, None
        p.check_exit = False
        problems = self.group.stop(p)
        if expected:
            expected_report(p)
        return [f"heliosproxy exited during the test with status {p.proc.returncode}; "
                f"log tail:\n{p.log_tail()}"] + problems

    def connect(self, autocommit=True, **kw):
        sslmode = "disable" if self.tls == "plain" else "require"
        conn = psycopg.connect(self.proxy.dsn(ALICE[0], ALICE[1], APPDB, sslmode=sslmode),
                               autocommit=autocommit, **kw)
        assert conn.pgconn.ssl_in_use == (self.tls != "plain")
        return conn

    @property
    def blocks(self):
        """Transaction blocks allowed?"""
        return self.mode != "statement"


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{t}-{m}" for t, m in COMBOS])
def combo(request, pg, cert, tmp_path_factory):
    if not (helios_bin() / "heliosproxy").exists():
        pytest.fail(f"{helios_bin() / 'heliosproxy'} not found (HELIOS_BIN; build with make)")
    tls, mode = request.param
    c = Combo(pg, tmp_path_factory.mktemp(f"matrix-{tls}-{mode}"), tls, mode, cert)
    with pg.superuser(APPDB) as su:
        su.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(c.table)))
        su.execute(sql.SQL("CREATE TABLE {} (id int, s text)").format(sql.Identifier(c.table)))
        su.execute(sql.SQL("ALTER TABLE {} OWNER TO alice").format(sql.Identifier(c.table)))
    yield c
    c.group.close()
    with pg.superuser(APPDB) as su:
        su.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(c.table)))


@pytest.fixture
def mx(combo, request):
    """The combination's proxy, running; after the test: still running, no
    sanitizer report in what it logged during the test."""
    name = request.node.originalname
    bugs = [b for pred in KNOWN_BUGS.get(name, []) if (b := pred(combo.tls, combo.mode))]
    if bugs:
        request.applymarker(pytest.mark.xfail(strict=all(strict for _, strict in bugs),
                                              reason=" + ".join(r for r, _ in bugs)))
    combo.ensure_running()
    start = len(combo.proxy.log())
    with combo.pg.superuser(APPDB) as su:
        su.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(combo.table)))
    yield combo
    # give a crash the test provoked a moment to show
    time.sleep(0.05)
    # a test marked for the known crash failed already; its crash is expected
    crash_expected = (any(r.startswith(CRASH) for r, _ in bugs)
                      and not request.config.option.runxfail)
    problems = []
    if not combo.proxy.running():
        problems = combo.drop_dead(crash_expected)
    else:
        report = sanitizer_report(combo.proxy.log()[start:])
        if report:
            problems.append(f"{combo.proxy.log_path} has a sanitizer report:\n{report}")
    if problems and not crash_expected:
        pytest.fail("\n\n".join(problems))


def expected_report(p):
    """Renames p's log *.expected-report: scripts/run-integration.sh's search
    for sanitizer reports no test looked at skips those."""
    p.log_path.rename(p.log_path.with_name(p.log_path.name + ".expected-report"))


def rows(conn, q, params=None):
    return conn.execute(q, params).fetchall()


def tbl(mx):
    return sql.Identifier(mx.table)


# ---------------------------------------------------------------------------

def test_tls_is_used_where_the_combination_says(mx):
    with mx.connect() as conn:
        assert conn.pgconn.ssl_in_use == (mx.tls != "plain")
        server_ssl = conn.execute(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert server_ssl == (mx.tls == "tls_both",)


def test_simple_query_protocol_runs_several_statements(mx):
    with mx.connect() as conn:
        # no parameters: psycopg sends a simple Query; check with the raw API too
        res = conn.pgconn.exec_(b"SELECT 1; SELECT 'two'::text, 3")
        assert res.status == psycopg.pq.ExecStatus.TUPLES_OK
        assert (res.get_value(0, 0), res.get_value(0, 1)) == (b"two", b"3")
        cur = conn.execute("SELECT 'one'; SELECT 'two'")
        assert cur.fetchall() == [("one",)]
        assert cur.nextset() and cur.fetchall() == [("two",)]
        # an empty query, then an error half-way through a multi-statement query:
        # the statements after it do not run, the connection goes on
        assert conn.pgconn.exec_(b"").status == psycopg.pq.ExecStatus.EMPTY_QUERY
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'a'); SELECT 1 / 0; "
                                 "INSERT INTO {} VALUES (2, 'b')").format(tbl(mx), tbl(mx)))
        # one implicit transaction: the first INSERT is rolled back too
        assert rows(conn, sql.SQL("SELECT count(*) FROM {}").format(tbl(mx))) == [(0,)]


def test_extended_query_protocol_with_parameters(mx):
    with mx.connect() as conn:
        assert rows(conn, "SELECT %s::int + %s::int, %s::text", (40, 2, "x")) == [(42, "x")]
        cur = conn.cursor(binary=True)
        assert cur.execute("SELECT %s::bytea, %b::int8", (b"\x00\x01", 7)).fetchall() == \
            [(b"\x00\x01", 7)]
        # a statement error in the extended protocol, then the connection goes on
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / %s::int", (0,))
        assert rows(conn, "SELECT %s::text", ("after",)) == [("after",)]


def test_protocol_level_prepared_statements(mx):
    # prepare_threshold=0: every statement is Parse'd with a name, then Bind/Execute
    with mx.connect(prepare_threshold=0) as a, mx.connect(prepare_threshold=0) as b:
        for i in range(5):
            for conn, k in ((a, 1), (b, 100)):
                assert rows(conn, "SELECT %s::int * %s::int", (i, k)) == [(i * k,)]
        assert rows(a, "SELECT %s::text || 'a'", ("x",)) == [("xa",)]
        # a prepared statement that fails at run time, then it runs again
        for _ in range(2):
            with pytest.raises(psycopg.errors.DivisionByZero):
                a.execute("SELECT 10 / %s::int", (0,))
        assert rows(a, "SELECT 10 / %s::int", (5,)) == [(2,)]
        assert a._prepared._names, "psycopg prepared nothing: the test proves nothing"


def test_sql_prepare_execute_deallocate(mx):
    with mx.connect() as conn:
        conn.execute("PREPARE mxq(int) AS SELECT $1 * 2")
        for i in range(3):
            assert rows(conn, f"EXECUTE mxq({i})") == [(i * 2,)]
        conn.execute("DEALLOCATE mxq")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute("EXECUTE mxq(1)")
        assert rows(conn, "SELECT 1") == [(1,)]


def test_transaction_blocks(mx):
    t = tbl(mx)
    with mx.connect() as conn, mx.connect() as other:
        if not mx.blocks:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as ei:
                conn.execute("BEGIN")
            assert ei.value.sqlstate == "0A000"
            assert "statement pooling" in str(ei.value)
            assert rows(conn, "SELECT 'usable'") == [("usable",)]
            return
        conn.execute("BEGIN")
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'rolled back')").format(t))
        assert rows(conn, sql.SQL("SELECT count(*) FROM {}").format(t)) == [(1,)]
        assert rows(other, sql.SQL("SELECT count(*) FROM {}").format(t)) == [(0,)]
        conn.execute("ROLLBACK")
        assert rows(conn, sql.SQL("SELECT count(*) FROM {}").format(t)) == [(0,)]
        conn.execute("BEGIN")
        conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(t), (2, "committed"))
        conn.execute("COMMIT")
        assert rows(other, sql.SQL("SELECT id, s FROM {}").format(t)) == [(2, "committed")]
        # psycopg's own transaction handling (autocommit off: it sends BEGIN)
        with mx.connect(autocommit=False) as tx:
            tx.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(t), (3, "psycopg"))
            tx.commit()
        assert rows(other, sql.SQL("SELECT count(*) FROM {}").format(t)) == [(2,)]


def test_server_side_cursor_in_a_transaction(mx):
    with mx.connect(autocommit=False) as conn:
        if not mx.blocks:
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute("SELECT 1")
            return
        with conn.cursor(name="mx_cur") as cur:  # DECLARE, FETCH FORWARD n
            cur.itersize = 500
            cur.execute("SELECT i, repeat('c', 100) FROM generate_series(1, 5000) i")
            total = n = 0
            for i, _ in cur:
                total += i
                n += 1
        conn.commit()
        assert (n, total) == (5000, 5000 * 5001 // 2)
        assert rows(conn, "SELECT 1") == [(1,)]


def test_transaction_block_refused_in_statement_mode_through_psycopg(mx):
    if mx.blocks:
        pytest.skip("transaction blocks are allowed in this mode")
    with mx.connect(autocommit=False) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT 1")
        conn.rollback()
        conn.autocommit = True
        assert rows(conn, "SELECT 'usable'") == [("usable",)]


def test_error_inside_transaction_then_rollback(mx):
    with mx.connect() as conn:
        if not mx.blocks:
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute("BEGIN")
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
            assert rows(conn, "SELECT 'usable'") == [("usable",)]
            return
        for params in (None, (0,)):  # simple, then extended protocol
            conn.execute("BEGIN")
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0" if params is None else "SELECT 1 / %s::int", params)
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
            conn.execute("ROLLBACK")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert rows(conn, "SELECT %s::text", ("usable",)) == [("usable",)]


COPY_ROWS = 4000
COPY_WIDTH = 1000  # ~4 MB each way


def test_copy_out_a_few_megabytes(mx):
    q = f"COPY (SELECT i, repeat('x', {COPY_WIDTH}) FROM generate_series(1, {COPY_ROWS}) i) TO STDOUT"
    with mx.connect() as conn:
        buf = bytearray()
        with conn.cursor().copy(q) as copy:
            for chunk in copy:
                buf += chunk
        lines = bytes(buf).split(b"\n")
        assert lines[-1] == b"" and len(lines) == COPY_ROWS + 1
        assert lines[0] == b"1\t" + b"x" * COPY_WIDTH
        assert lines[-2] == b"%d\t" % COPY_ROWS + b"x" * COPY_WIDTH
        assert rows(conn, "SELECT 'after copy'") == [("after copy",)]


def test_copy_in_a_few_megabytes(mx):
    t = tbl(mx)
    with mx.connect() as conn:
        with conn.cursor().copy(sql.SQL("COPY {} (id, s) FROM STDIN").format(t)) as copy:
            for i in range(1, COPY_ROWS + 1):
                copy.write(b"%d\t%s\n" % (i, b"y" * COPY_WIDTH))
        assert rows(conn, sql.SQL("SELECT count(*), sum(length(s)), sum(id) FROM {}").format(t)) == \
            [(COPY_ROWS, COPY_ROWS * COPY_WIDTH, COPY_ROWS * (COPY_ROWS + 1) // 2)]
        # a COPY that fails half-way: the error comes back, the connection goes on
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor().copy(sql.SQL("COPY {} (id, s) FROM STDIN").format(t)) as copy:
                copy.write(b"1\tok\n" * 1000)
                copy.write(b"not-a-number\tz\n")
        assert rows(conn, sql.SQL("SELECT count(*) FROM {}").format(t)) == [(COPY_ROWS,)]


def test_cancel_a_running_query(mx):
    with mx.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as ei:
                conn.execute("SELECT pg_sleep(30)")
        finally:
            timer.cancel()
        assert ei.value.sqlstate == "57014"
        assert time.monotonic() - t0 < 20, "the cancel did not reach the server"
        assert rows(conn, "SELECT 'usable'") == [("usable",)]


def test_large_rows(mx):
    with mx.connect() as conn:
        (s,), = rows(conn, "SELECT repeat('r', 4 * 1024 * 1024)")
        assert s == "r" * (4 * MB)
        (b,), = rows(conn, "SELECT decode(repeat('ab', %s), 'hex')", (3 * MB,))
        assert b == b"\xab" * (3 * MB)
        # several big rows in one result
        got = rows(conn, "SELECT i, repeat(chr(64 + i), 1024 * 1024) FROM generate_series(1, 5) i")
        assert [(i, len(s), s[:1]) for i, s in got] == [(i, MB, chr(64 + i)) for i in range(1, 6)]


def test_large_query_text(mx):
    lit = "q" * BIG
    with mx.connect() as conn:
        assert rows(conn, f"SELECT length('{lit}')") == [(BIG,)]  # simple Query
        assert rows(conn, f"SELECT length('{lit}') + %s::int", (1,)) == [(BIG + 1,)]  # Parse
        assert rows(conn, "SELECT 'usable'") == [("usable",)]


def test_large_bind_parameter(mx):
    with mx.connect() as conn:
        assert rows(conn, "SELECT length(%s::text)", ("p" * BIG,)) == [(BIG,)]
        blob = bytes(range(256)) * (4 * MB // 256)
        assert rows(conn, "SELECT md5(%b::bytea)", (blob,)) == \
            rows(conn, "SELECT md5(decode(repeat(%s, %s), 'hex'))",
                 (bytes(range(256)).hex(), 4 * MB // 256))
        assert rows(conn, "SELECT 'usable'") == [("usable",)]


def test_large_statement_inside_transaction(mx):
    t = tbl(mx)
    lit = "i" * BIG
    with mx.connect() as conn:
        if mx.blocks:
            conn.execute("BEGIN")
        conn.execute(sql.SQL(f"INSERT INTO {{}} VALUES (1, '{lit}')").format(t))
        if mx.blocks:
            conn.execute("COMMIT")
        assert rows(conn, sql.SQL("SELECT length(s) FROM {}").format(t)) == [(BIG,)]


def test_listen_notify(mx):
    with mx.connect() as a, mx.connect() as b:
        got = []
        a.add_notify_handler(got.append)
        a.execute("LISTEN mx_chan")
        b.execute("NOTIFY mx_chan, 'hello'")
        b.execute("SELECT pg_notify('mx_chan', %s)", ("with params",))
        big = "n" * 7990  # PostgreSQL's limit is 8000 bytes
        b.execute("SELECT pg_notify('mx_chan', %s)", (big,))
        # psycopg 3.1's notifies() has no timeout: poll with a cheap query,
        # which hands any notification received to the handler
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            a.execute("SELECT 1")
        assert [(n.channel, n.payload) for n in got] == \
            [("mx_chan", "hello"), ("mx_chan", "with params"), ("mx_chan", big)]
        a.execute("UNLISTEN mx_chan")
        b.execute("NOTIFY mx_chan, 'not for a'")
        time.sleep(0.3)
        a.execute("SELECT 1")
        assert len(got) == 3, [(n.channel, n.payload) for n in got]


# ---------------------------------------------------------------------------
# The check itself: a report in the log fails the test even when the proxy
# keeps running and exits 0 (as UBSan's recoverable reports would)

def test_a_sanitizer_report_in_a_proxy_log_fails_its_test(pg, tmp_path):
    group = ProxyGroup(tmp_path)
    fake = 'echo "dataplane/x.c:1:2: runtime error: fake report" >&2; exec "$@"'
    p = group.start(make_config(pg), prefix=["sh", "-c", fake, "sh"])
    with p.connect() as conn:
        assert rows(conn, "SELECT 1") == [(1,)]
    with pytest.raises(pytest.fail.Exception) as ei:
        group.close()
    assert "sanitizer report" in str(ei.value) and "fake report" in str(ei.value)
    assert p.proc.returncode == 0, "the proxy itself was fine"
    expected_report(p)


def test_pipelined_extended_protocol_batches(mx):
    with mx.connect() as conn:
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
        assert [c.fetchone()[0] for c in curs] == [i * 2 for i in range(50)]
        # an error half-way: the rest of the batch is skipped up to its Sync
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute("SELECT 1 / %s::int", (0,))
                conn.execute("SELECT 2")
        assert rows(conn, "SELECT %s::text", ("usable",)) == [("usable",)]
