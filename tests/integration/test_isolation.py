"""Session-state isolation: whatever one client leaves on its server
(settings, role, temp tables, prepared statements, cursors, advisory locks,
LISTEN, an open transaction, currval) is never seen by the next client of
that server, whichever protocol set it and however the first client left.

Pool of one server (max_pool_size = 1), so the next client gets the same
server unless the proxy closed it; one proxy per (pool mode, result cache)
group. The state is set with the simple protocol, the extended protocol
(unnamed statement) or named prepared statements, through the raw protocol
client of isolation_client.py.
"""

import json
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ALICE, APPDB, DEFAULT_USERS, PGB_AUTH, Proxy, free_port, io_backend
import isolation_client as ic
from pgwire import PgError, cstr, message

HERE = Path(__file__).resolve().parent

# kind -> (user, steps, check SQL, leaked(rows, error) -> bool, protocols)
# Steps run one statement per message; {tok} is replaced by a unique token.
KINDS = {
    "setting": (ALICE, ["SET app.iso = 'secret'"], "SELECT current_setting('app.iso', true)",
                lambda rows, err: rows == [["secret"]]),
    "search_path": (ALICE, ["SET search_path TO iso_schema, public"], "SHOW search_path",
                    lambda rows, err: "iso_schema" in rows[0][0]),
    "set_config": (ALICE, ["SELECT set_config('app.iso', 'secret', false)"],
                   "SELECT current_setting('app.iso', true)",
                   lambda rows, err: rows == [["secret"]]),
    "role": (ALICE, ["SET ROLE iso_grp"], "SELECT current_user",
             lambda rows, err: rows != [["alice"]]),
    "session_auth": (PGB_AUTH, ["SET SESSION AUTHORIZATION alice"], "SELECT session_user",
                     lambda rows, err: rows != [["pgb_auth"]]),
    "temp_table": (ALICE, ["CREATE TEMP TABLE iso_t (v text)", "INSERT INTO iso_t VALUES ('secret')"],
                   "SELECT to_regclass('pg_temp.iso_t') IS NOT NULL",
                   lambda rows, err: rows != [["f"]]),
    "sql_prepare": (ALICE, ["PREPARE iso_p AS SELECT 'secret'"], "EXECUTE iso_p",
                    lambda rows, err: err is None),
    "protocol_prepare": (ALICE, None, None, None),  # named Parse; checked by a Bind
    "hold_cursor": (ALICE, ["DECLARE iso_c CURSOR WITH HOLD FOR SELECT 'secret'"],
                    "SELECT count(*) FROM pg_cursors WHERE name = 'iso_c'",
                    lambda rows, err: rows != [["0"]]),
    "advisory_lock": (ALICE, ["SELECT pg_advisory_lock(4242)"],
                      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                      "AND pid = pg_backend_pid()",
                      lambda rows, err: rows != [["0"]]),
    "listen": (ALICE, ["LISTEN iso_ch"], "SELECT count(*) FROM pg_listening_channels()",
               lambda rows, err: rows != [["0"]]),
    "open_transaction": (ALICE, ["BEGIN", "INSERT INTO iso_tx VALUES ('{tok}')"],
                         "SELECT count(*) FROM iso_tx WHERE v = '{tok}'",
                         lambda rows, err: rows != [["0"]]),
    "currval": (ALICE, ["SELECT nextval('iso_seq')"], "SELECT currval('iso_seq')",
                lambda rows, err: err is None),
}

LEAVES = ["terminate", "close", "reset", "kill9", "protocol_error"]
PROTOS = ["simple", "extended", "prepared"]
GROUPS = [("session", False), ("session", True), ("transaction", False), ("transaction", True),
          ("statement", False)]


@pytest.fixture(scope="module")
def iso_db(pg):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'iso_grp') "
                   "THEN CREATE ROLE iso_grp; END IF; END $$")
        su.execute("GRANT iso_grp TO alice")
        su.execute("CREATE TABLE IF NOT EXISTS iso_tx (v text)")
        su.execute("GRANT ALL ON iso_tx TO PUBLIC")
        su.execute("CREATE SEQUENCE IF NOT EXISTS iso_seq")
        su.execute("GRANT ALL ON SEQUENCE iso_seq TO PUBLIC")
    return pg


def start_proxy(pg, tmp, mode, cache, **pool):
    cfg = {
        "pool_mode": {"mode": mode, "max_pool_size": 1, "query_wait_timeout_secs": 30, **pool},
        "nodes": [
            {"name": "primary", "host": "127.0.0.1", "port": pg.port, "role": "primary"},
            {"name": "replica", "host": "127.0.0.1", "port": pg.replica_port, "role": "replica"},
        ],
        "auth": {"method": "trust", "users": DEFAULT_USERS},
    }
    if cache:
        cfg["cache"] = {"enabled": True, **(cache if isinstance(cache, dict) else {})}
    defaults = {
        "listen_address": f"127.0.0.1:{free_port()}",
        "admin_address": f"127.0.0.1:{free_port()}",
        "workers": 2,
        "io_backend": io_backend(),
        "shutdown_timeout_secs": 5,
    }
    return Proxy(tmp, f"iso-{mode}-{int(bool(cache))}-{uuid.uuid4().hex[:6]}", defaults).start(cfg)


def stop_proxy(p):
    problems = []
    try:
        p.stop()
    except (AssertionError, pytest.fail.Exception) as e:
        problems.append(str(e))
    log = p.log()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        if marker in log:
            i = log.index(marker)
            problems.append(f"{p.log_path} contains {marker!r}:\n{log[max(0, i - 2000):i + 4000]}")
    if getattr(p, "logf", None):
        p.logf.close()
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture(scope="module", params=GROUPS, ids=lambda g: f"{g[0]}-cache_{'on' if g[1] else 'off'}")
def group(request, iso_db, tmp_path_factory):
    mode, cache = request.param
    p = start_proxy(iso_db, tmp_path_factory.mktemp("iso"), mode, cache)
    p.mode = mode
    yield p
    stop_proxy(p)


def p_superuser(pg):
    return pg.superuser(dbname=APPDB)


def leave(c, how):
    """The first client goes away, as `how` says."""
    if how == "terminate":
        c.terminate()
    elif how == "close":
        c.close()
    elif how == "reset":
        # abrupt: RST instead of FIN
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    elif how == "protocol_error":
        c.send_raw(b"Q" + struct.pack("!I", 2))  # a length below 4
        try:
            c.read_until_close(timeout=10)
        except OSError:
            pass
        c.close()
    else:
        raise AssertionError(how)


def next_client_sees(p, user, check, tok):
    """(pid, rows, error, ReadyForQuery status) of a new client's check."""
    c = ic.connect(p.port, user[0], user[1])
    try:
        pid = ic.backend_pid(c)
        rows, err, status = ic.simple(c, check.replace("{tok}", tok))
        return pid, rows, err, status
    finally:
        c.terminate()


def protocol_prepare_sees(p, user):
    c = ic.connect(p.port, user[0], user[1])
    try:
        pid = ic.backend_pid(c)
        c.send_raw(ic.bind_msg("", "iso_s") + ic.execute_msg() + ic.SYNC)
        rows, err, status = ic.read_result(c)
        return pid, rows, err, status
    finally:
        c.terminate()


CASES = [(k, pr, lv) for k in KINDS for pr in PROTOS for lv in LEAVES
         if (pr == "prepared") == (k == "protocol_prepare")
         or (pr == "prepared" and lv in ("terminate", "kill9"))]


@pytest.mark.parametrize("kind,proto,how", CASES, ids=["-".join(c) for c in CASES])
def test_next_client_of_the_server_sees_none_of_the_state_left(group, kind, proto, how):
    user, steps, check, leaked = KINDS[kind]
    mode = group.mode
    if kind == "open_transaction" and mode == "statement" and proto == "simple":
        pytest.skip("statement pooling refuses BEGIN")
    tok = uuid.uuid4().hex
    nosync = kind == "open_transaction" and proto != "simple"
    if kind == "protocol_prepare":
        steps = None
    else:
        steps = [s.replace("{tok}", tok) for s in steps]

    if how == "kill9":
        if kind == "protocol_prepare":
            argv_steps = json.dumps(["SELECT 'secret'"])
            # a named statement survives as iso_stmt_0; check that name below
        else:
            argv_steps = json.dumps(steps)
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "isolation_client.py"), str(group.port), user[0], user[1],
             "prepared" if kind == "protocol_prepare" else proto, argv_steps,
             "nosync" if nosync else ""],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            assert line.startswith("pid "), (line, proc.stderr.read() if proc.poll() is not None else "")
            pid_a = int(line.split()[1])
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(20)
    else:
        c = ic.connect(group.port, user[0], user[1])
        if kind == "protocol_prepare":
            pid_a = ic.backend_pid(c)
            c.send_raw(ic.parse_msg("iso_s", "SELECT 'secret'") + ic.SYNC)
            _, err, _ = ic.read_result(c)
            assert err is None, err
        else:
            pid_a = ic.set_state(c, steps, proto, nosync)
        leave(c, how)

    if kind == "protocol_prepare":
        pid_b, rows, err, status = protocol_prepare_sees(group, user)
        if how == "kill9":
            c2 = ic.connect(group.port, user[0], user[1])
            try:
                c2.send_raw(ic.bind_msg("", "iso_stmt_0") + ic.execute_msg() + ic.SYNC)
                rows2, err2, _ = ic.read_result(c2)
            finally:
                c2.terminate()
            assert err2 is not None and rows2 == [], rows2
        assert err is not None and rows == [], (rows, err)
    else:
        pid_b, rows, err, status = next_client_sees(group, user, check, tok)
        assert not leaked(rows, err), (
            f"{kind} set by the previous client of server pid {pid_a} is visible to the next "
            f"client (pid {pid_b}): rows {rows}, error {err}")
    assert status == "I", f"the next client's server is inside a transaction ({status})"
    if kind != "open_transaction" and not (how == "protocol_error" and mode == "session"):
        # the reset keeps the server: pooled again, not closed (session
        # pooling closes a server whose client sent a bad header)
        assert pid_b == pid_a, "the server was closed instead of reset and pooled"


# ---------------------------------------------------------------------------
# The extended protocol is tracked while the client is still connected.

@pytest.fixture
def txproxy(iso_db, tmp_path):
    started = []

    def start(mode="transaction", cache=False, **pool):
        p = start_proxy(iso_db, tmp_path, mode, cache, **pool)
        started.append(p)
        return p

    yield start
    for p in started:
        stop_proxy(p)


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_unsynced_extended_transaction_is_never_handed_to_another_client(txproxy, iso_db, mode):
    """BEGIN and INSERT by Parse/Bind/Execute and Flush, then the client
    disconnects without Sync: its transaction dies with it."""
    p = txproxy(mode)
    tok = uuid.uuid4().hex
    a = ic.connect(p.port, *ALICE)
    ic.run_unsynced(a, ["BEGIN", f"INSERT INTO iso_tx VALUES ('{tok}')"], "extended")
    a.close()
    b = ic.connect(p.port, *ALICE)
    rows, err, status = ic.simple(b, f"SELECT count(*) FROM iso_tx WHERE v = '{tok}'")
    assert err is None and rows == [["0"]] and status == "I", (rows, err, status)
    _, err, status = ic.simple(b, f"INSERT INTO iso_tx VALUES ('{tok}-b')")
    assert err is None and status == "I"
    b.terminate()
    with p_superuser(iso_db) as su:
        n = su.execute("SELECT count(*) FROM iso_tx WHERE v = %s", (tok + "-b",)).fetchone()[0]
    assert n == 1, "the next client's acknowledged INSERT was lost"


def test_unsynced_batch_keeps_the_server_while_the_client_stays(txproxy):
    """A client inside an unsynced batch keeps its server: another client
    neither joins its transaction nor sees its row."""
    p = txproxy("transaction", max_pool_size=2)
    tok = uuid.uuid4().hex
    a = ic.connect(p.port, *ALICE)
    ic.run_unsynced(a, ["BEGIN", f"INSERT INTO iso_tx VALUES ('{tok}')"], "extended")
    b = ic.connect(p.port, *ALICE)
    for _ in range(3):
        rows, err, status = ic.simple(b, f"SELECT count(*) FROM iso_tx WHERE v = '{tok}'")
        assert rows == [["0"]] and status == "I", (rows, err, status)
    a.send_raw(message(b"S"))
    _, err, status = ic.read_result(a)
    assert status == "T"
    _, err, status = ic.simple(a, "COMMIT")
    assert status == "I"
    rows, _, _ = ic.simple(b, f"SELECT count(*) FROM iso_tx WHERE v = '{tok}'")
    assert rows == [["1"]]
    a.terminate()
    b.terminate()


def test_extended_set_role_does_not_apply_to_other_clients(txproxy):
    """SET ROLE by Parse/Bind/Execute pins the client: a second client gets
    another server and runs as itself."""
    p = txproxy("transaction", max_pool_size=2)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "SET ROLE iso_grp", "extended")
    b = ic.connect(p.port, *ALICE)
    for _ in range(3):
        rows, _ = ic.run(b, "SELECT current_user", "simple")
        assert rows == [["alice"]]
    rows, _ = ic.run(a, "SELECT current_user", "extended")
    assert rows == [["iso_grp"]], "the client lost its own role"
    a.terminate()
    b.terminate()


@pytest.mark.parametrize("proto", ["extended", "prepared"])
def test_extended_set_follows_the_client_and_not_the_server(txproxy, proto):
    """SET by Parse/Bind/Execute is tracked like a simple SET: the client
    keeps its value on any server; another client on the same server does
    not get it."""
    p = txproxy("transaction", max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "SET app.ext = 'mine'", proto)
    ic.run(a, "SET search_path TO iso_ext_schema, public", proto)
    b = ic.connect(p.port, *ALICE)
    rows, _ = ic.run(b, "SELECT current_setting('app.ext', true), current_setting('search_path')",
                     "simple")
    assert rows[0][0] != "mine" and "iso_ext" not in rows[0][1], rows
    rows, _ = ic.run(a, "SELECT current_setting('app.ext', true), current_setting('search_path')",
                     "simple")
    assert rows == [["mine", "iso_ext_schema, public"]], rows
    ic.run(a, "RESET app.ext", proto)
    rows, _ = ic.run(a, "SELECT current_setting('app.ext', true)", "simple")
    assert rows[0][0] in ("", None), rows
    a.terminate()
    b.terminate()


def test_listen_over_extended_protocol_gets_its_notifications(txproxy, iso_db):
    """LISTEN by Parse/Bind/Execute: the client gets the NOTIFY, and another
    client of the same pool does not."""
    p = txproxy("transaction", max_pool_size=2)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "LISTEN iso_ext_ch", "extended")
    b = ic.connect(p.port, *ALICE)
    ic.run(b, "SELECT 1", "simple")
    with p_superuser(iso_db) as su:
        su.execute("NOTIFY iso_ext_ch, 'hello'")
    got = None
    deadline = time.monotonic() + 15
    while got is None and time.monotonic() < deadline:
        try:
            m = a.read_message(timeout=1)
        except OSError:
            continue
        if m and m[0] == b"A":
            got = m[1]
    assert got is not None and b"hello" in got, "the listener never got its notification"
    # b: nothing but the answers to its own queries
    b.send_raw(message(b"Q", cstr("SELECT 2")))
    kinds = []
    while True:
        m = b.read_message(timeout=10)
        kinds.append(m[0])
        if m[0] == b"Z":
            break
    assert b"A" not in kinds, kinds
    a.terminate()
    b.terminate()


def test_extended_advisory_lock_and_temp_table_pin_until_the_client_leaves(txproxy, iso_db):
    """pg_advisory_lock and CREATE TEMP TABLE by Parse/Bind/Execute keep
    the client on its server (its temp table stays usable) and are gone
    for the next client of that server."""
    p = txproxy("transaction", max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    pid_a = ic.backend_pid(a)
    ic.run(a, "SELECT pg_advisory_lock(4243)", "extended")
    ic.run(a, "CREATE TEMP TABLE iso_ext_t (v text)", "extended")
    ic.run(a, "INSERT INTO iso_ext_t VALUES ('secret')", "extended")
    rows, _ = ic.run(a, "SELECT v FROM iso_ext_t", "extended")
    assert rows == [["secret"]]
    a.terminate()
    b = ic.connect(p.port, *ALICE)
    assert ic.backend_pid(b) == pid_a
    rows, _ = ic.run(b, "SELECT to_regclass('pg_temp.iso_ext_t') IS NULL, "
                        "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid())", "simple")
    assert rows == [["t", "0"]], rows
    b.terminate()


def test_result_cache_keys_on_settings_set_by_the_extended_protocol(txproxy, iso_db):
    """cache_rls_tables = true, rows filtered by a setting each tenant sets
    with Parse/Bind/Execute: each tenant gets its own rows, never the
    other's cached answer."""
    t = "iso_rls_" + uuid.uuid4().hex[:8]
    with p_superuser(iso_db) as su:
        su.execute(f"CREATE TABLE {t} (tenant text, secret text)")
        su.execute(f"INSERT INTO {t} VALUES ('t1', 't1-secret'), ('t2', 't2-secret')")
        su.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
        su.execute(f"CREATE POLICY by_tenant ON {t} "
                   "USING (tenant = current_setting('app.tenant', true))")
        su.execute(f"GRANT SELECT ON {t} TO alice")
    p = txproxy("transaction", cache={"cache_rls_tables": True}, max_pool_size=2)
    c1 = ic.connect(p.port, *ALICE)
    c2 = ic.connect(p.port, *ALICE)
    ic.run(c1, "SET app.tenant = 't1'", "extended")
    ic.run(c2, "SET app.tenant = 't2'", "extended")
    for _ in range(3):
        rows, _ = ic.run(c1, f"SELECT secret FROM {t}", "simple")
        assert rows == [["t1-secret"]], rows
        rows, _ = ic.run(c2, f"SELECT secret FROM {t}", "simple")
        assert rows == [["t2-secret"]], rows
    c1.terminate()
    c2.terminate()


@pytest.mark.parametrize("proto", ["extended", "prepared"])
def test_sql_execute_over_extended_protocol_never_runs_another_clients_statement(txproxy, proto):
    """A client's SQL PREPARE stays on the server it ran on (track_sql_prepare);
    another client's EXECUTE of the same name with Parse/Bind/Execute gets
    PostgreSQL's "does not exist", or its own statement, never the first's."""
    p = txproxy("transaction", max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "PREPARE iso_q AS SELECT 'secret-a'", "simple")
    rows, _ = ic.run(a, "EXECUTE iso_q", "simple")
    assert rows == [["secret-a"]]
    b = ic.connect(p.port, *ALICE)
    with pytest.raises(PgError) as e:
        ic.run(b, "EXECUTE iso_q", proto)
    assert e.value.code == "26000", e.value
    ic.run(b, "PREPARE iso_q AS SELECT 'mine-b'", "simple")
    rows, _ = ic.run(b, "EXECUTE iso_q", proto, i=1)
    assert rows == [["mine-b"]], rows
    # and the first client still gets its own
    rows, _ = ic.run(a, "EXECUTE iso_q", proto, i=2)
    assert rows == [["secret-a"]], rows
    a.terminate()
    b.terminate()


def test_pgbench_extended_set_role_does_not_reach_a_later_psql(txproxy, iso_db, tmp_path):
    """pgbench -M extended running SET ROLE: a psql session afterwards, on
    the same pooled server, runs as itself."""
    from conftest import run
    p = txproxy("transaction", max_pool_size=1)
    script = tmp_path / "role.sql"
    script.write_text("SET ROLE iso_grp;\nSELECT current_user;\n")
    env = iso_db.env(password=ALICE[1])
    run([str(iso_db.bin / "pgbench"), "-n", "-M", "extended", "-h", "127.0.0.1", "-p", str(p.port),
         "-U", ALICE[0], "-c", "1", "-t", "5", "-f", str(script), APPDB], env=env, timeout=60)
    r = run([str(iso_db.bin / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(p.port),
             "-U", ALICE[0], "-d", APPDB, "-c", "SELECT current_user"], env=env, timeout=30)
    assert r.stdout.strip() == "alice", r.stdout


def test_psycopg_extended_session_state_is_gone_for_the_next_client(txproxy):
    """psycopg 3 sends statements with parameters (or prepare=True) through
    Parse/Bind/Execute: set_config, an advisory lock and a temp table made
    that way are gone for the next client of the same server."""
    import psycopg
    p = txproxy("transaction", max_pool_size=1)
    dsn = f"host=127.0.0.1 port={p.port} user={ALICE[0]} password={ALICE[1]} dbname={APPDB}"
    with psycopg.connect(dsn, autocommit=True) as a:
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        a.execute("SELECT set_config('app.iso', %s, false)", ["secret"])
        a.execute("SELECT pg_advisory_lock(%s)", [4244])
        a.execute("CREATE TEMP TABLE iso_pg_t (v text)", prepare=True)
        a.execute("INSERT INTO iso_pg_t VALUES (%s)", ["secret"])
        assert a.execute("SELECT v FROM iso_pg_t").fetchone() == ("secret",)
    with psycopg.connect(dsn, autocommit=True) as b:
        assert b.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        row = b.execute("SELECT current_setting('app.iso', true), "
                        "to_regclass('pg_temp.iso_pg_t') IS NULL, "
                        "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid())").fetchone()
        assert row[0] in ("", None) and row[1] is True and row[2] == 0, row


def test_unlisten_all_stops_a_listen_sent_over_the_extended_protocol(txproxy, iso_db):
    """LISTEN by Parse/Bind/Execute (the server listens, the client is
    pinned), then a simple UNLISTEN *: no notification of either channel
    arrives afterwards."""
    p = txproxy("transaction", max_pool_size=2)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "LISTEN iso_u1", "extended")
    ic.run(a, "LISTEN iso_u2", "simple")
    ic.run(a, "UNLISTEN *", "simple")
    with p_superuser(iso_db) as su:
        su.execute("NOTIFY iso_u1, 'x'")
        su.execute("NOTIFY iso_u2, 'y'")
    time.sleep(0.5)
    a.send_raw(message(b"Q", cstr("SELECT 1")))
    kinds = []
    while True:
        m = a.read_message(timeout=10)
        kinds.append(m[0])
        if m[0] == b"Z":
            break
    assert b"A" not in kinds, kinds
    a.terminate()


@pytest.mark.parametrize("proto", ["simple", "extended"])
def test_rolled_back_set_never_lets_a_server_keep_another_clients_value(txproxy, proto):
    """Client b's SET inside a transaction that rolls back leaves the server
    with b's earlier value; the proxy must not believe the server has the
    rolled-back value, or client a, who set exactly that value, would run
    with b's."""
    p = txproxy("transaction", max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    ic.run(a, "SET app.tenant = 'a'", "simple")
    b = ic.connect(p.port, *ALICE)
    ic.run(b, "SET app.tenant = 'b'", "simple")
    ic.run(b, "BEGIN", "simple")
    ic.run(b, "SET app.tenant = 'a'", proto)
    ic.run(b, "ROLLBACK", "simple")
    rows, _ = ic.run(a, "SELECT current_setting('app.tenant', true)", "simple")
    assert rows == [["a"]], f"client a runs with another client's setting: {rows}"
    a.terminate()
    b.terminate()


def test_a_failing_set_of_one_client_never_keeps_another_clients_setting(txproxy):
    """Client b's SET of an unknown parameter fails, but is replayed before
    each of its transactions; that failure must not stop the RESET of client
    a's setting that the same settings sync carries."""
    p = txproxy("transaction", max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    b = ic.connect(p.port, *ALICE)
    with pytest.raises(PgError):
        ic.run(b, "SET iso_no_such_parameter = 1", "simple")
    ic.run(a, "SET app.tenant = 'a'", "simple")
    rows, _ = ic.run(b, "SELECT current_setting('app.tenant', true)", "simple")
    assert rows[0][0] in ("", None), f"client b runs with client a's setting: {rows}"
    rows, _ = ic.run(a, "SELECT current_setting('app.tenant', true)", "simple")
    assert rows == [["a"]]
    a.terminate()
    b.terminate()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_client_leaving_in_the_middle_of_a_message_never_pools_its_server(txproxy, mode):
    """A client's last message went only partly to the server (a large
    message passed through as it arrives) when the client disconnects: the
    server waits for the rest, so it must be closed, never reset or pooled;
    the next client gets a working server at once."""
    p = txproxy(mode, max_pool_size=1)
    a = ic.connect(p.port, *ALICE)
    if mode == "session":
        # the whole half message is relayed before the slow query's answer
        # says the server is idle again
        q2 = message(b"Q", cstr("SELECT '" + "x" * 300000 + "'"))
        a.send_raw(message(b"Q", cstr("SELECT pg_sleep(0.5), 1")) + q2[:200000])
        rows, err, status = ic.read_result(a)
        assert err is None and status == "I"
    else:
        # CopyData larger than the assembly limit streams through
        ic.simple(a, "SELECT 1")
        a.send_raw(b"d" + struct.pack("!I", 600004) + b"x" * 400000)
        time.sleep(0.5)
    a.close()
    b = ic.connect(p.port, *ALICE)
    rows, err, status = ic.simple(b, "SELECT 2")
    assert rows == [["2"]] and status == "I", (rows, err, status)
    b.terminate()


# ---------------------------------------------------------------------------
# A client's settings change only when PostgreSQL made the change its own:
# the statement completed and its transaction committed. Each scenario runs
# on a direct connection and through the proxy (transaction pooling, pool
# of one); between the scenario and the check another client takes the
# server (and sets the same setting), so the first client's next
# transaction gets the server from the proxy's idea of its settings, which
# must be what PostgreSQL itself would show.

CHECK = "SELECT current_setting('app.h9', true), current_setting('statement_timeout')"
BEFORE = ["SET app.h9 = 'before'", "SET statement_timeout = '5s'"]

# name -> (steps, protocols: simple Query, the unnamed statement, named
# statements); a step is SQL (one message; an error is
# expected or not, the result must simply match PostgreSQL's), or a list
# of SQL sent as one extended batch (Parse/Bind/Execute each, one Sync)
SETTING_SCENARIOS = {
    "failing_set_changes_nothing": (["SET statement_timeout = 'abc'"],
                                    ("simple", "extended", "prepared")),
    "failing_set_in_transaction_changes_nothing": (
        ["BEGIN", "SET statement_timeout = 'abc'", "ROLLBACK"], ("simple", "extended")),
    "set_rolled_back_is_gone": (["BEGIN", "SET app.h9 = 'rolled back'", "ROLLBACK"],
                                ("simple", "extended", "prepared")),
    "reset_rolled_back_is_gone": (["BEGIN", "RESET app.h9", "RESET ALL", "ROLLBACK"],
                                  ("simple", "extended")),
    "set_committed_persists": (["BEGIN", "SET app.h9 = 'committed'", "COMMIT"],
                               ("simple", "extended", "prepared")),
    "set_after_an_error_in_the_transaction_does_nothing": (
        ["BEGIN", "SELECT 1/0", "SET app.h9 = 'after error'", "ROLLBACK"], ("simple", "extended")),
    "set_in_failed_transaction_ended_by_commit_is_gone": (
        ["BEGIN", "SET app.h9 = 'doomed'", "SELECT 1/0", "COMMIT"], ("simple", "extended")),
    "set_after_a_failing_statement_of_the_same_query_never_runs": (
        ["SELECT 1/0; SET app.h9 = 'z'"], ("simple",)),
    "set_before_a_failing_statement_of_the_same_query_is_rolled_back": (
        ["SET app.h9 = 'z'; SELECT 1/0"], ("simple",)),
    "set_then_commit_in_one_query_persists": (
        ["BEGIN; SET app.h9 = 'one query'; COMMIT; SELECT 1/0"], ("simple",)),
    "set_before_a_failing_execute_of_the_same_batch_is_rolled_back": (
        [["SET app.h9 = 'batch'", "SELECT 1/0"]], ("extended",)),
    "set_after_savepoint_rolled_back_to_is_gone": (
        ["BEGIN", "SAVEPOINT s", "SET app.h9 = 'after savepoint'", "ROLLBACK TO SAVEPOINT s",
         "COMMIT"], ("simple", "extended")),
    "set_before_savepoint_survives_rollback_to_it": (
        ["BEGIN", "SET app.h9 = 'kept'", "SAVEPOINT s", "SELECT 1/0", "ROLLBACK TO SAVEPOINT s",
         "COMMIT"], ("simple", "extended")),
    "set_before_savepoint_is_gone_after_full_rollback": (
        ["BEGIN", "SET app.h9 = 'gone'", "SAVEPOINT s", "ROLLBACK"], ("simple", "extended")),
}


def run_steps(c, steps, proto):
    for i, step in enumerate(steps):
        if isinstance(step, list):
            out = b""
            for sql in step:
                out += ic.parse_msg("", sql) + ic.bind_msg("", "") + ic.execute_msg()
            c.send_raw(out + ic.SYNC)
            ic.read_result(c)
        elif proto == "simple":
            ic.simple(c, step)
        else:
            ic.ext(c, step, stmt="" if proto == "extended" else f"h9_stmt_{i}")


@pytest.fixture(scope="module")
def setting_proxy(iso_db, tmp_path_factory):
    p = start_proxy(iso_db, tmp_path_factory.mktemp("iso"), "transaction", False)
    yield p
    stop_proxy(p)


@pytest.mark.parametrize("scenario,proto", [(s, pr) for s, (_, prs) in SETTING_SCENARIOS.items()
                                            for pr in prs])
def test_settings_follow_the_client_only_once_postgresql_made_them_its_own(
        iso_db, setting_proxy, scenario, proto):
    steps = SETTING_SCENARIOS[scenario][0]
    d = ic.connect(iso_db.port, *ALICE)
    for sql in BEFORE:
        ic.run(d, sql, "simple")
    run_steps(d, steps, proto)
    want, _ = ic.run(d, CHECK, "simple")
    d.terminate()

    a = ic.connect(setting_proxy.port, *ALICE)
    for sql in BEFORE:
        ic.run(a, sql, "simple")
    run_steps(a, steps, proto)
    _, _, status = ic.simple(a, "SELECT 1")
    assert status == "I", status
    # another client takes the (only) server in between
    b = ic.connect(setting_proxy.port, *ALICE)
    ic.run(b, "SET app.h9 = 'other client'", "simple")
    ic.run(b, "SET statement_timeout = '9s'", "simple")
    rows, _ = ic.run(b, CHECK, "simple")
    assert rows == [["other client", "9s"]], rows
    got, _ = ic.run(a, CHECK, "simple")
    assert got == want, f"through the proxy {got}, on PostgreSQL {want}"
    # and again after the other client, on its next transaction
    ic.run(b, "SELECT 1", "simple")
    got, _ = ic.run(a, CHECK, "simple")
    assert got == want, f"through the proxy {got}, on PostgreSQL {want}"
    a.terminate()
    b.terminate()


def test_psycopg_rolled_back_set_is_gone_and_committed_set_stays(iso_db, setting_proxy):
    """psycopg 3 (Parse/Bind/Execute, its own BEGIN): a SET in a transaction
    it rolls back is gone, one it commits stays, as on PostgreSQL, while
    another client uses the only server in between."""
    import psycopg
    dsn = (f"host=127.0.0.1 port={setting_proxy.port} user={ALICE[0]} password={ALICE[1]} "
           f"dbname={APPDB}")
    with psycopg.connect(dsn) as a, psycopg.connect(dsn, autocommit=True) as b:
        a.execute("SET app.h9 = 'before'")
        a.commit()
        a.execute("SET app.h9 = 'rolled back'")
        a.rollback()
        b.execute("SET app.h9 = 'other client'")
        assert a.execute("SHOW app.h9").fetchone() == ("before",)
        a.rollback()
        a.execute("SET app.h9 = 'committed'")
        a.commit()
        b.execute("SET app.h9 = 'other client'")
        assert a.execute("SHOW app.h9").fetchone() == ("committed",)
        a.rollback()
