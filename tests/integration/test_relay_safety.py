"""The relay core of transaction and statement pooling under stress: chunk
ownership with TLS on both sides, messages of any size PostgreSQL accepts,
prepared statements another client prepared, and clients that break the
protocol (they get a FATAL and leave; nobody else notices)."""

import os
import re
import socket
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, MD5USER, run, wait_for


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("relaycert")
    key, crt = d / "server.key", d / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


def tls_both(client_cert, pg):
    """[tls] for TLS from the clients (required) and to the servers (the
    default server_mode = prefer; the test cluster has ssl = on)."""
    crt, key = client_cert
    return {"client_mode": "require", "cert_file": str(crt), "key_file": str(key)}


def psql(pg, p, *args, sql=None, user=ALICE, sslmode="prefer", timeout=120, check=True):
    env = pg.env(password=user[1])
    env["PGSSLMODE"] = sslmode
    cmd = [str(pg.bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
           str(p.port), "-U", user[0], "-d", APPDB, "-At", *args]
    if sql is not None:
        cmd += ["-c", sql]
    return run(cmd, env=env, timeout=timeout, check=check)


def pgbench(pg, p, script, *args, user=ALICE, sslmode="prefer", timeout=120):
    env = pg.env(password=user[1])
    env["PGSSLMODE"] = sslmode
    r = run([str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(p.port), "-U", user[0],
             "-f", str(script), *args, APPDB], env=env, timeout=timeout, check=False)
    return r.stdout + r.stderr


def failed_transactions(out):
    m = re.search(r"(?m)^number of failed transactions: (\d+)", out)
    return int(m.group(1)) if m else None


def processed(out):
    m = re.search(r"(?m)^number of transactions actually processed: (\d+)", out)
    return int(m.group(1)) if m else 0


def assert_no_sanitizer_report(p):
    log = p.log()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log, log[max(0, log.index(marker) - 500):][:4000]


# ---------------------------------------------------------------------------
# 1. TLS on both sides: the chunk forwarded as is belongs to the server's
#    endpoint once queued (TLS encrypts and frees it at once).

@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_tls_both_sides_transaction_blocks_keep_the_proxy_alive(pg, proxy, config, client_cert,
                                                                tmp_path, mode):
    p = proxy(config(mode=mode, tls=tls_both(client_cert, pg)))
    with p.connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone() == (True,), "the proxy should use TLS towards the server"
    if mode == "transaction":
        r = psql(pg, p, sql="BEGIN; SELECT 1; ROLLBACK;", sslmode="require")
        assert "1" in r.stdout.split(), r
        block = "BEGIN;\nSELECT 1;\nROLLBACK;\n"
    else:
        block = "SELECT 1;\nSELECT 2;\n"
    script = tmp_path / "block.sql"
    script.write_text(block)
    out = pgbench(pg, p, script, "-c", "50", "-j", "2", "-t", "40", sslmode="require")
    assert failed_transactions(out) == 0, out
    assert processed(out) == 50 * 40, out
    assert p.running(), f"the proxy died:\n{p.log_tail()}"
    with p.connect(sslmode="require") as c:
        assert c.execute("SELECT 42").fetchone() == (42,)
    assert_no_sanitizer_report(p)


# ---------------------------------------------------------------------------
# 3. A statement another client prepared on the same server is prepared
#    again transparently when its result type changed.

def recreate_shared_table(pg, coltype, value):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS relay_shared")
        su.execute(f"CREATE TABLE relay_shared (col {coltype})")
        su.execute("INSERT INTO relay_shared VALUES (%s)", (value,))
        su.execute("GRANT ALL ON relay_shared TO alice")


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_statement_prepared_by_another_client_survives_result_type_change(pg, proxy, config,
                                                                         mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 1}))
    recreate_shared_table(pg, "int", 1)
    sql = "select col from relay_shared"
    with psycopg.connect(p.dsn(ALICE[0], ALICE[1]), prepare_threshold=0, autocommit=True) as a:
        assert a.execute(sql).fetchone() == (1,)
        assert a.execute(sql).fetchone() == (1,)
        recreate_shared_table(pg, "text", "two")
        with psycopg.connect(p.dsn(ALICE[0], ALICE[1]), prepare_threshold=0,
                             autocommit=True) as b:
            # directly (or through PgBouncer) B prepares its own statement
            # and succeeds; through a shared server it must too
            assert b.execute(sql).fetchone() == ("two",)
            assert b.execute(sql).fetchone() == ("two",)
        # and A, whose statement is the same server statement, also recovers
        assert a.execute(sql).fetchone() == ("two",)


def extended_batch(c, stmt, sql, parse=True):
    """Sends [Parse] Bind Describe Execute Sync in one write; returns the
    messages up to ReadyForQuery."""
    m = b""
    if parse:
        m += pgwire.message(b"P", pgwire.cstr(stmt) + pgwire.cstr(sql) + struct.pack("!H", 0))
    m += pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr(stmt) + struct.pack("!HHH", 0, 0, 0))
    m += pgwire.message(b"D", b"P" + pgwire.cstr(""))
    m += pgwire.message(b"E", pgwire.cstr("") + struct.pack("!I", 0))
    m += pgwire.message(b"S")
    c.send_raw(m)
    msgs = []
    while True:
        msg = c.read_message()
        assert msg is not None, f"connection closed; got {msgs}"
        msgs.append(msg)
        if msg[0] == b"Z":
            return msgs


def batch_rows(msgs):
    errors = [pgwire.parse_fields(m[1]) for m in msgs if m[0] == b"E"]
    assert not errors, errors
    rows = []
    for kind, payload in msgs:
        if kind == b"D":
            (ln,) = struct.unpack("!i", payload[2:6])
            rows.append(payload[6:6 + ln].decode())
    return rows


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_statement_prepared_by_another_client_survives_result_type_change_in_one_batch(
        pg, proxy, config, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 1}))
    recreate_shared_table(pg, "int", 1)
    sql = "select col from relay_shared"
    with pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1]) as a:
        msgs = extended_batch(a, "stmt_a", sql)
        assert [m[0] for m in msgs] == [b"1", b"2", b"T", b"D", b"C", b"Z"], msgs
        assert batch_rows(msgs) == ["1"]
        recreate_shared_table(pg, "text", "two")
        with pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1]) as b:
            # Parse, Bind, Describe, Execute, Sync in one go (JDBC, pgx,
            # node-postgres do this): one answer each, as directly
            msgs = extended_batch(b, "stmt_b", sql)
            assert batch_rows(msgs) == ["two"]
            assert [m[0] for m in msgs] == [b"1", b"2", b"T", b"D", b"C", b"Z"], msgs
            assert batch_rows(extended_batch(b, "stmt_b", sql, parse=False)) == ["two"]
        assert batch_rows(extended_batch(a, "stmt_a", sql, parse=False)) == ["two"]
    assert "prepared again and retried" in p.log()


# ---------------------------------------------------------------------------
# 4. A client that breaks the protocol gets a FATAL and leaves; its server
#    never sees the bad message, and nobody else notices.

def send_bad_message(p, raw, user=ALICE):
    """Logs in, runs a query, then sends a query and raw in one write (the
    query's ReadyForQuery used to release the server before PostgreSQL's
    answer to raw arrived); returns the messages received after the first
    query until the proxy closed the connection (a timeout if it stays
    open)."""
    c = pgwire.connect("127.0.0.1", p.port, user[0], APPDB, user[1])
    with c:
        assert c.query("SELECT 1") == [["1"]]
        c.send_raw(pgwire.message(b"Q", pgwire.cstr("SELECT 2")) + raw)
        return c.read_until_close(timeout=10)


def fatal_of(msgs):
    errors = [pgwire.parse_fields(m[1]) for m in msgs if m[0] == b"E"]
    assert errors, f"no ErrorResponse before the close: {msgs}"
    return errors[-1]


@pytest.mark.parametrize("mode", ["session", "transaction", "statement"])
@pytest.mark.parametrize("kind", [b"z", b"\x00"])
def test_unknown_message_type_gets_fatal_and_closes(pg, proxy, config, mode, kind):
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    msgs = send_bad_message(p, kind + struct.pack("!I", 4))
    err = fatal_of(msgs)
    assert (err["S"], err["C"]) == ("FATAL", "08P01"), err
    assert err["M"] == f"invalid frontend message type {kind[0]}", err
    # the pool's servers are still good for the next client
    with p.connect() as c:
        assert c.execute("SELECT 2").fetchone() == (2,)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_oversized_control_message_gets_fatal_and_closes(pg, proxy, config, mode):
    # PostgreSQL closes silently on a Sync longer than 10,000 bytes; the
    # proxy says why and never forwards it
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    msgs = send_bad_message(p, b"S" + struct.pack("!I", 20004) + b"\0" * 20000)
    err = fatal_of(msgs)
    assert (err["S"], err["C"]) == ("FATAL", "08P01"), err
    assert "invalid message length" in err["M"], err
    with p.connect() as c:
        assert c.execute("SELECT 2").fetchone() == (2,)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_clients_sending_unknown_messages_do_not_hurt_other_users(pg, proxy, config, tmp_path,
                                                                  mode):
    # session mode: one server per pgbench client
    p = proxy(config(mode=mode, pool={"max_pool_size": 10 if mode == "session" else 2}))
    for _ in range(8):
        err = fatal_of(send_bad_message(p, b"z" + struct.pack("!I", 4)))
        assert err["C"] == "08P01", err
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;\n")
    out = pgbench(pg, p, script, "-c", "8", "-j", "2", "-T", "4", user=MD5USER)
    assert failed_transactions(out) == 0, out
    assert processed(out) > 0, out
    assert "circuit breaker" not in p.log(), p.log_tail()
    assert p.running()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_terminated_server_fatal_reaches_the_client(pg, proxy, config, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    c = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1])
    with c:
        c.query("BEGIN")
        pid = int(c.query("SELECT pg_backend_pid()")[0][0])
        assert pg.su.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        msgs = c.read_until_close(timeout=10)
    err = fatal_of(msgs)
    assert (err["S"], err["C"]) == ("FATAL", "57P01"), err
    # and through libpq: the next statement reports the server's FATAL
    with p.connect(autocommit=False) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        pg.su.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as ei:
            wait_for(lambda: conn.execute("SELECT 1") and False, timeout=5)
        assert "terminating connection due to administrator command" in str(ei.value)


# ---------------------------------------------------------------------------
# 2. Sizes: any message PostgreSQL accepts passes in every pooling mode,
#    with bounded memory in the proxy.

MODES = ["session", "transaction", "statement"]
ASAN = "asan" in str(os.environ.get("HELIOS_BIN", ""))


def proxy_rss_kb(p):
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def big_table(pg):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS relay_big")
        su.execute("CREATE TABLE relay_big (id serial PRIMARY KEY, t text, b bytea)")
        su.execute("GRANT ALL ON relay_big, relay_big_id_seq TO alice")
    yield
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS relay_big")


@pytest.mark.parametrize("mode", MODES)
def test_4mb_query_text_through_psql_file(pg, proxy, config, tmp_path, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    text = "x" * (4 * 1024 * 1024)
    f = tmp_path / "big.sql"
    f.write_text(f"SELECT length('{text}'), md5('{text}');\n")
    r = psql(pg, p, "-f", str(f))
    import hashlib
    assert r.stdout.strip() == f"{len(text)}|{hashlib.md5(text.encode()).hexdigest()}", r
    # the connection and the pool are fine afterwards
    r = psql(pg, p, sql="SELECT 7")
    assert r.stdout.strip() == "7"


@pytest.mark.parametrize("mode", MODES)
def test_70kb_literal_inside_a_transaction_block(pg, proxy, config, big_table, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    lit = "y" * (70 * 1024)
    if mode == "statement":
        sql = f"INSERT INTO relay_big (t) VALUES ('{lit}');"  # no blocks in statement mode
    else:
        sql = f"BEGIN; SELECT 1; INSERT INTO relay_big (t) VALUES ('{lit}'); COMMIT;"
    psql(pg, p, sql=sql)
    with p.connect() as c:
        assert c.execute("SELECT length(t) FROM relay_big").fetchall() == [(len(lit),)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("prepare", [None, 0], ids=["unnamed", "named"])
def test_16mb_bytea_parameter_round_trip(pg, proxy, config, big_table, mode, prepare):
    p = proxy(config(mode=mode, pool={"max_pool_size": 1}))
    data = os.urandom(16 * 1024 * 1024)
    with psycopg.connect(p.dsn(ALICE[0], ALICE[1]), autocommit=True,
                         prepare_threshold=prepare) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
        rss0 = proxy_rss_kb(p)
        for _ in range(2):  # twice: a named statement is prepared, then reused
            c.execute("INSERT INTO relay_big (b) VALUES (%b)", (data,))
        got = c.execute("SELECT b FROM relay_big ORDER BY id LIMIT 1", binary=True).fetchone()[0]
        assert bytes(got) == data
        echoed = c.execute("SELECT %b::bytea", (data,), binary=True).fetchone()[0]
        assert bytes(echoed) == data
        grew = proxy_rss_kb(p) - rss0
        if not ASAN:  # ASan keeps freed memory in quarantine
            # streamed with bounded buffers: not even one copy of the value
            assert grew < 12 * 1024, f"proxy RSS grew by {grew} kB for a 16 MB value"
        if mode != "session":
            # a Bind is not pinned by its size: another client gets the
            # only server while this one is still connected
            with p.connect() as other:
                assert other.execute("SELECT count(*) FROM relay_big").fetchone() == (2,)


@pytest.mark.parametrize("mode", ["session", "transaction"])
@pytest.mark.parametrize("size", [100 * 1024, 6 * 1024 * 1024])
def test_large_object_written_and_read_back_through_a_driver(pg, proxy, config, mode, size):
    import psycopg2
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    data = os.urandom(size)
    conn = psycopg2.connect(p.dsn(ALICE[0], ALICE[1]))
    try:
        lo = conn.lobject(0, "wb")  # lo_write: one FunctionCall message of that size
        assert lo.write(data) == len(data)
        oid = lo.oid
        lo.close()
        conn.commit()
        lo = conn.lobject(oid, "rb")
        assert lo.read() == data
        lo.unlink()
        conn.commit()
    finally:
        conn.close()


def test_large_object_from_bytea_in_statement_mode(pg, proxy, config):
    p = proxy(config(mode="statement", pool={"max_pool_size": 1}))
    data = os.urandom(5 * 1024 * 1024)
    with p.connect() as c:
        oid = c.execute("SELECT lo_from_bytea(0, %b)", (data,)).fetchone()[0]
        assert bytes(c.execute("SELECT lo_get(%s)", (oid,), binary=True).fetchone()[0]) == data
        c.execute("SELECT lo_unlink(%s)", (oid,))


def read_until_ready(c):
    msgs = []
    while True:
        m = c.read_message(timeout=30)
        assert m is not None, f"closed; got {msgs}"
        msgs.append(m)
        if m[0] == b"Z":
            return msgs


def test_large_messages_refused_with_pin_action_error_keep_the_connection(pg, proxy, config):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1, "pin_action": "error"}))
    big = "z" * (600 * 1024)
    with pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1]) as c:
        c.send_raw(pgwire.message(b"Q", pgwire.cstr(f"SELECT length('{big}')")))
        msgs = read_until_ready(c)
        err = fatal_of(msgs)
        assert (err["S"], err["C"]) == ("ERROR", "0A000"), err
        # a named Parse that large: refused, the rest of its batch ignored
        # as the server would after an error, and ReadyForQuery at its Sync
        c.send_raw(pgwire.message(b"P", pgwire.cstr("bigstmt") + pgwire.cstr(f"SELECT '{big}'")
                                  + struct.pack("!H", 0))
                   + pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr("bigstmt")
                                    + struct.pack("!HHH", 0, 0, 0))
                   + pgwire.message(b"E", pgwire.cstr("") + struct.pack("!I", 0))
                   + pgwire.message(b"S"))
        msgs = read_until_ready(c)
        assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
        assert pgwire.parse_fields(msgs[0][1])["C"] == "0A000"
        # the unnamed statement is fine: nothing to keep
        msgs = extended_batch(c, "", f"SELECT length('{big}')")
        assert batch_rows(msgs) == [str(len(big))]
        assert c.query("SELECT 5") == [["5"]]


def big_named_batch(c, stmt, sql, parse=True, close=False):
    m = b""
    if close:
        m += pgwire.message(b"C", b"S" + pgwire.cstr(stmt))
    if parse:
        m += pgwire.message(b"P", pgwire.cstr(stmt) + pgwire.cstr(sql) + struct.pack("!H", 0))
    m += pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr(stmt) + struct.pack("!HHH", 0, 0, 0))
    m += pgwire.message(b"E", pgwire.cstr("") + struct.pack("!I", 0))
    m += pgwire.message(b"S")
    c.send_raw(m)
    return read_until_ready(c)


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_named_statement_too_large_to_keep_is_prepared_on_its_server(pg, proxy, config, mode):
    p = proxy(config(mode=mode, pool={"max_pool_size": 2}))
    big = "q" * (600 * 1024)
    sql = f"SELECT length('{big}')"
    with pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1]) as c:
        msgs = big_named_batch(c, "bigstmt", sql)
        assert [m[0] for m in msgs] == [b"1", b"2", b"D", b"C", b"Z"], msgs
        assert batch_rows(msgs) == [str(len(big))]
        assert batch_rows(big_named_batch(c, "bigstmt", sql, parse=False)) == [str(len(big))]
        # Close reaches the server, so the name can be prepared again
        msgs = big_named_batch(c, "bigstmt", sql, close=True)
        assert [m[0] for m in msgs] == [b"3", b"1", b"2", b"D", b"C", b"Z"], msgs
        assert c.query("SELECT 3") == [["3"]]


def test_tls_both_sides_large_messages(pg, proxy, config, client_cert, tmp_path, big_table):
    p = proxy(config(mode="transaction", pool={"max_pool_size": 1},
                     tls=tls_both(client_cert, pg)))
    data = os.urandom(16 * 1024 * 1024)
    with psycopg.connect(p.dsn(ALICE[0], ALICE[1], sslmode="require"), autocommit=True,
                         prepare_threshold=0) as c:
        assert c.pgconn.ssl_in_use
        for _ in range(2):
            echoed = c.execute("SELECT %b::bytea", (data,), binary=True).fetchone()[0]
            assert bytes(echoed) == data
    text = "w" * (3 * 1024 * 1024)
    f = tmp_path / "big.sql"
    f.write_text(f"BEGIN;\nSELECT length('{text}');\nCOMMIT;\n")
    r = psql(pg, p, "-f", str(f), sslmode="require")
    assert str(len(text)) in r.stdout.split(), r
    assert_no_sanitizer_report(p)


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_client_leaving_inside_a_streamed_message_does_not_pass_its_server_on(pg, proxy,
                                                                             config, mode):
    # CopyData outside COPY gets no answer, so nothing is queued on the
    # server; a client that leaves after 300 KB of a 1 MB message left the
    # server waiting for the rest, which the next client's query became
    p = proxy(config(mode=mode, pool={"max_pool_size": 1}))
    c = pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1])
    with c:
        assert c.query("SELECT 1") == [["1"]]
        c.send_raw(b"d" + struct.pack("!I", 1024 * 1024 + 4) + b"\0" * (300 * 1024))
        time.sleep(0.5)
    with pgwire.connect("127.0.0.1", p.port, ALICE[0], APPDB, ALICE[1], timeout=15) as other:
        assert other.query("SELECT 2") == [["2"]]


@pytest.mark.parametrize("mode", ["throttle", "reject"])
def test_rate_limited_large_messages_are_counted_and_refused_whole(pg, proxy, config, mode):
    cfg = config(mode="transaction", pool={"max_pool_size": 2})
    cfg["rate_limit"] = {"queries_per_second": 5, "burst_size": 1, "mode": mode}
    p = proxy(cfg)
    data = os.urandom(1024 * 1024)
    ok = refused = 0
    with p.connect() as c:
        for _ in range(6):
            try:
                got = c.execute("SELECT %b::bytea", (data,), binary=True).fetchone()[0]
                assert bytes(got) == data
                ok += 1
            except psycopg.errors.ConfigurationLimitExceeded:
                refused += 1  # its 1 MB was dropped, the connection goes on
        time.sleep(0.5)
        assert c.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)
    assert ok >= 1
    if mode == "throttle":
        assert refused == 0
    else:
        assert refused >= 1
