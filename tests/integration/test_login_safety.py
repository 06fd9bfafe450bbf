"""The login phase cannot be used against other clients: connections that
never finish logging in are closed after client_login_timeout_secs and may
hold only part of max_client_conn; unknown users get a SCRAM exchange with a
salt that is stable per name (no PBKDF2 on the event loop); auth_query
answers are cached; the protocol details before login are PostgreSQL's."""

import base64
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, PGB_AUTH


def psql_ok(p, user=ALICE[0], password=ALICE[1]):
    """One psql login through the proxy; returns (ok, output)."""
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    for k in list(env):
        if k.startswith("PG") and k not in ("PGPASSWORD", "PGCONNECT_TIMEOUT"):
            del env[k]
    r = subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-At", "-h", "127.0.0.1",
                        "-p", str(p.port), "-U", user, "-d", APPDB, "-c", "SELECT 40 + 2"],
                       env=env, capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and r.stdout.strip() == "42", r.stdout + r.stderr


def closed_within(sock, timeout):
    """Reads until the peer closes; returns (closed, bytes received)."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def error_fields(data):
    """Fields of the ErrorResponses in raw bytes (other messages skipped)."""
    out, pos = [], 0
    while pos + 5 <= len(data):
        kind = data[pos:pos + 1]
        (ln,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if kind == b"E":
            out.append(pgwire.parse_fields(data[pos + 5:pos + 1 + ln]))
        pos += 1 + ln
    return out


def scram_challenge(c, user, dbname=APPDB):
    """Startup for user up to the server-first message; returns its attributes
    and the ScramClient (the caller finishes or abandons the exchange)."""
    c.send_startup({"user": user, "database": dbname})
    kind, payload = c.read_message()
    assert kind == b"R", (kind, payload)
    (code,) = struct.unpack("!I", payload[:4])
    assert code == pgwire.AUTH_SASL, code
    sc = pgwire.ScramClient("not-the-password")
    first = sc.first_message()
    c.send_raw(pgwire.message(b"p", pgwire.cstr("SCRAM-SHA-256") + struct.pack("!i", len(first))
                              + first))
    kind, payload = c.read_message()
    assert kind == b"R", (kind, payload)
    (code,) = struct.unpack("!I", payload[:4])
    assert code == pgwire.AUTH_SASL_CONTINUE, code
    attrs = dict(kv.split("=", 1) for kv in payload[4:].decode().split(","))
    return attrs, sc, payload[4:]


def bogus_final(attrs):
    """A client-final message with the server's nonce and a random (wrong) proof."""
    proof = base64.b64encode(os.urandom(32)).decode()
    return pgwire.message(b"p", f"c=biws,r={attrs['r']},p={proof}".encode())


def scram_fail(p, user):
    """A whole SCRAM exchange with a wrong proof; returns (salt, iterations, error)."""
    with pgwire.Conn("127.0.0.1", p.port, timeout=20) as c:
        attrs, _, _ = scram_challenge(c, user)
        c.send_raw(bogus_final(attrs))
        m = c.read_message()
        assert m is not None and m[0] == b"E", m
        return attrs["s"], attrs["i"], pgwire.parse_fields(m[1])


# ---------------------------------------------------------------------------
# 1. login timeout and login slots

def test_silent_sockets_cannot_lock_out_logins(pg, proxy, config):
    # Without a timeout at all, 200 sockets that never send a byte used to
    # take every max_client_conn slot: every real login got 53300.
    p = proxy(config(max_client_conn=200, client_login_timeout_secs=0))
    silent = []
    try:
        for _ in range(200):
            try:
                silent.append(socket.create_connection(("127.0.0.1", p.port), timeout=10))
            except OSError:
                pass
        time.sleep(1.5)  # the held ones are now older than a login slot's grace
        for _ in range(3):
            ok, out = psql_ok(p)
            assert ok, f"psql login refused during the flood of silent sockets: {out}"
        with p.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert p.running()
    finally:
        for s in silent:
            s.close()
    assert p.wait_log(r"max_login_clients", timeout=5), p.log_tail()


def test_login_timeout_closes_silent_slow_and_unanswered_logins(pg, proxy, config):
    # room for all of them: this is about the timeout, not the login slots
    p = proxy(config(max_client_conn=400, max_login_clients=300, client_login_timeout_secs=2))
    silent = [socket.create_connection(("127.0.0.1", p.port), timeout=10) for _ in range(200)]
    # a startup packet sent one byte at a time, slower than the timeout allows
    drip = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    pkt = pgwire.startup_packet({"user": ALICE[0], "database": APPDB})
    stop = threading.Event()

    def dripper():
        for b in pkt:
            if stop.is_set():
                return
            try:
                drip.sendall(bytes([b]))
            except OSError:
                return
            time.sleep(0.3)

    t = threading.Thread(target=dripper, daemon=True)
    t.start()
    # a SCRAM challenge that is never answered
    unanswered = pgwire.Conn("127.0.0.1", p.port, timeout=10)
    unanswered.send_startup({"user": ALICE[0], "database": APPDB})
    kind, _ = unanswered.read_message()
    assert kind == b"R"
    try:
        # meanwhile real logins work
        ok, out = psql_ok(p)
        assert ok, out
        for s in silent:
            closed, _ = closed_within(s, 20)
            assert closed, "a silent socket is still open past client_login_timeout_secs"
        closed, _ = closed_within(drip, 20)
        assert closed, "a slow-drip startup is still open past client_login_timeout_secs"
        closed, data = closed_within(unanswered.sock, 20)
        assert closed, "an unanswered SCRAM challenge is still open past the timeout"
        errs = error_fields(unanswered.buf + data)
        assert errs and errs[0]["C"] == "08P01" and "login timeout" in errs[0]["M"], errs
    finally:
        stop.set()
        for s in silent:
            s.close()
        drip.close()
        unanswered.close()
    assert p.wait_log(r"login timeout", timeout=5), p.log_tail()
    ok, out = psql_ok(p)
    assert ok, out


def make_cert(tmp_path):
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return crt, key


def test_login_timeout_during_tls_handshake_closes_silently(pg, proxy, config, tmp_path):
    crt, key = make_cert(tmp_path)
    p = proxy(config(client_login_timeout_secs=2,
                     tls={"client_mode": "allow", "cert_file": str(crt), "key_file": str(key)}))
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        assert c.ssl_request() == b"S"
        # ... and no ClientHello
        closed, data = closed_within(c.sock, 20)
        assert closed, "a connection stuck before its TLS handshake stays open"
        assert data == b"", f"plaintext sent where TLS was agreed: {data!r}"


# ---------------------------------------------------------------------------
# 2. SCRAM for unknown users, derived secrets, auth_query cache

def test_unknown_user_scram_salt_is_stable_per_name(pg, proxy, config):
    p = proxy(config())
    s1, i1, e1 = scram_fail(p, "ghost_one")
    s2, i2, e2 = scram_fail(p, "ghost_one")
    s3, _, _ = scram_fail(p, "ghost_two")
    assert s1 == s2, "the salt of an unknown user changes between attempts: it is unknown"
    assert s1 != s3, "two unknown users share a salt"
    assert len(base64.b64decode(s1)) == 16
    # like a real user's: same iterations, same error as a wrong password
    sa, ia, ea = scram_fail(p, ALICE[0])
    assert i1 == ia == "4096", (i1, ia)
    assert sa == scram_fail(p, ALICE[0])[0], "a known user's salt changes between attempts"
    assert e1["C"] == ea["C"] == "28P01", (e1, ea)
    assert e1["M"].replace("ghost_one", "U") == ea["M"].replace(ALICE[0], "U")
    # the known user still logs in (the derived keys are cached, the salt stays)
    for _ in range(2):
        with p.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unknown_user_salt_stable_across_restart_with_mock_secret(pg, proxy, config):
    cfg = config(auth={"scram_mock_secret": "k" * 32})
    p1 = proxy(cfg)
    s1 = scram_fail(p1, "ghost_restart")[0]
    p1.stop()
    p2 = proxy(cfg)
    assert scram_fail(p2, "ghost_restart")[0] == s1


def test_plaintext_password_keys_are_derived_ahead_of_logins(pg, proxy, config):
    # a first login would otherwise cost a PBKDF2 that an unknown user's
    # does not, telling the two apart; the four test users have plaintext
    # passwords in the config
    p = proxy(config())
    assert p.wait_log(r"deriving the SCRAM keys of 4 user\(s\) with a plaintext password",
                      timeout=15), p.log_tail()
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _flood_unknown(port, stop, counts):
    while not stop.is_set():
        try:
            with pgwire.Conn("127.0.0.1", port, timeout=10) as c:
                attrs, _, _ = scram_challenge(c, f"flood_{os.urandom(4).hex()}")
                c.send_raw(bogus_final(attrs))
                m = c.read_message()
                if m and m[0] == b"E":
                    counts["done"] += 1
        except (OSError, pgwire.ProtocolError, AssertionError):
            counts["errors"] += 1


def _pgbench(pg, p, secs, tmp_path):
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    env = pg.env(ALICE[0], ALICE[1])
    r = subprocess.run(["/usr/lib/postgresql/15/bin/pgbench", "-n", "-h", "127.0.0.1", "-p",
                        str(p.port), "-U", ALICE[0], "-c", "2", "-j", "1", "-T", str(secs),
                        "-f", str(script), APPDB],
                       env=env, capture_output=True, text=True, timeout=secs + 60)
    return r


def _pgbench_numbers(out):
    tx = failed = None
    tps = None
    for line in out.splitlines():
        if line.startswith("number of transactions actually processed:"):
            tx = int(line.split(":")[1].split()[0])
        elif line.startswith("number of failed transactions:"):
            failed = int(line.split(":")[1].split()[0])
        elif line.startswith("tps =") and tps is None:
            tps = float(line.split("=")[1].split()[0])
    return tx, failed, tps


def test_unknown_user_scram_flood_does_not_stall_other_clients(pg, proxy, config, tmp_path):
    p = proxy(config())
    stop, counts = threading.Event(), {"done": 0, "errors": 0}
    threads = [threading.Thread(target=_flood_unknown, args=(p.port, stop, counts), daemon=True)
               for _ in range(2)]
    for t in threads:
        t.start()
    try:
        r = _pgbench(pg, p, 5, tmp_path)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    tx, failed, tps = _pgbench_numbers(r.stdout)
    print(f"\nunknown-user SCRAM flood: {counts['done']} exchanges in ~5 s "
          f"({counts['errors']} errors); pgbench alongside: {tx} tx, tps {tps}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert tx and tx > 0, r.stdout
    assert not failed, r.stdout
    assert counts["done"] > 0, counts
    assert p.running()


def test_auth_query_answers_are_cached(pg, proxy, config):
    su = pg.su
    su.execute("DROP ROLE IF EXISTS aq_cached")
    su.execute("DROP ROLE IF EXISTS aq_later")
    su.execute("SET password_encryption = 'scram-sha-256'")
    su.execute("CREATE ROLE aq_cached LOGIN PASSWORD 'first-pw'")
    try:
        cfg = config(users=[{"name": PGB_AUTH[0], "password": PGB_AUTH[1]}],
                     auth={"auth_user": PGB_AUTH[0], "auth_query_cache_secs": 300,
                           "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"})
        p = proxy(cfg)
        with p.connect("aq_cached", "first-pw") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("aq_cached",)
        # a user the lookup did not find: the negative answer is kept too
        with pytest.raises(psycopg.OperationalError):
            p.connect("aq_later", "later-pw").close()
        su.execute("ALTER ROLE aq_cached PASSWORD 'second-pw'")
        su.execute("CREATE ROLE aq_later LOGIN PASSWORD 'later-pw'")
        # the proxy checks against the answer it kept (and accepts the old
        # password itself: SASLFinal; the server may refuse it after that) ...
        res = pgwire.Conn("127.0.0.1", p.port).startup("aq_cached", APPDB, "first-pw")
        assert pgwire.AUTH_SASL_FINAL in res.auth_requests, res
        with pytest.raises(psycopg.OperationalError):
            p.connect("aq_later", "later-pw").close()
        # ... and without the cache it asks every time
        cfg["auth"]["auth_query_cache_secs"] = 0
        p2 = proxy(cfg)
        with p2.connect("aq_later", "later-pw") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("aq_later",)
        res = pgwire.Conn("127.0.0.1", p2.port).startup("aq_cached", APPDB, "first-pw")
        assert res.error and res.error["C"] == "28P01", res
        assert pgwire.AUTH_SASL_FINAL not in res.auth_requests, res
    finally:
        su.execute("DROP ROLE IF EXISTS aq_cached")
        su.execute("DROP ROLE IF EXISTS aq_later")


def _auth_query_sessions_during_flood(pg, p, n):
    """Starts n logins of distinct unknown users at once; returns the most
    auth_query sessions seen on the server while they ran, and the answers."""
    conns = [pgwire.Conn("127.0.0.1", p.port, timeout=30) for _ in range(n)]
    stop, seen = threading.Event(), [0]

    def sampler():
        with pg.superuser() as su:
            while not stop.is_set():
                k = su.execute("SELECT count(*) FROM pg_stat_activity "
                               "WHERE usename = %s AND backend_type = 'client backend'",
                               (PGB_AUTH[0],)).fetchone()[0]
                seen[0] = max(seen[0], k)
                time.sleep(0.002)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    time.sleep(0.2)
    for i, c in enumerate(conns):
        c.send_startup({"user": f"aq_flood_{i}_{os.urandom(3).hex()}", "database": APPDB})
    kinds = []
    for c in conns:
        m = c.read_message()
        kinds.append(m[0] if m else None)
        c.close()
    stop.set()
    t.join(10)
    return seen[0], kinds


def test_auth_query_lookups_at_once_are_bounded(pg, proxy, config):
    cfg = config(users=[{"name": PGB_AUTH[0], "password": PGB_AUTH[1]}],
                 auth={"auth_user": PGB_AUTH[0], "auth_query_max_running": 2,
                       "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"})
    p = proxy(cfg)
    most, kinds = _auth_query_sessions_during_flood(pg, p, 60)
    # every one of them still got its challenge (after waiting its turn)
    assert kinds == [b"R"] * 60, kinds
    # 2 per worker, 2 workers; a closing session may still show for a moment
    assert most <= 6, f"{most} auth_query sessions at once with auth_query_max_running = 2"
    with p.connect(PGB_AUTH[0], PGB_AUTH[1]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


# ---------------------------------------------------------------------------
# 3. protocol details before login

@pytest.fixture(params=["proxy", "postgres"])
def target(request, pg, proxy, config):
    """Port of the proxy or of PostgreSQL itself: the same bytes get the same answer."""
    if request.param == "postgres":
        return pg.port
    return proxy(config()).port


def test_terminate_before_startup_closes_silently(target):
    with pgwire.Conn("127.0.0.1", target, timeout=10) as c:
        c.send_raw(pgwire.message(b"X"))
        closed, data = closed_within(c.sock, 10)
        assert closed, "still open after a Terminate sent in place of a startup packet"
        assert data == b"", f"answered a Terminate before startup with {data!r}"


def test_newer_protocol_and_pq_options_get_negotiate_protocol_version(target):
    with pgwire.Conn("127.0.0.1", target, timeout=10) as c:
        c.send_startup({"user": ALICE[0], "database": APPDB, "_pq_.frobnicate": "on",
                        "application_name": "negotiate"}, protocol=(3 << 16) | 2)
        kind, payload = c.read_message()
        assert kind == b"v", (kind, payload)
        minor, n = struct.unpack("!II", payload[:8])
        names = [x.decode() for x in payload[8:].split(b"\0") if x]
        # PostgreSQL sends its whole newest version (3.0) where the protocol
        # documentation speaks of the minor version
        assert (minor, n, names) == (pgwire.PROTOCOL_3_0, 1, ["_pq_.frobnicate"]), (minor, n, names)
        res = c.finish_startup(ALICE[0], ALICE[1])
        assert res.ok, res
        assert c.query("SELECT current_setting('application_name')") == [["negotiate"]]


def test_minor_version_alone_gets_negotiate_protocol_version(target):
    with pgwire.Conn("127.0.0.1", target, timeout=10) as c:
        c.send_startup({"user": ALICE[0], "database": APPDB}, protocol=(3 << 16) | 1)
        kind, payload = c.read_message()
        assert kind == b"v", (kind, payload)
        assert struct.unpack("!II", payload[:8]) == (pgwire.PROTOCOL_3_0, 0)
        assert c.finish_startup(ALICE[0], ALICE[1]).ok


def _second_request_refused(port, first, second):
    with pgwire.Conn("127.0.0.1", port, timeout=10) as c:
        c.send_raw(struct.pack("!II", 8, first))
        assert c.read_bytes(1) == b"N"
        c.send_raw(struct.pack("!II", 8, second))
        closed, data = closed_within(c.sock, 10)
        assert closed, "a repeated encryption request is answered again"
        errs = error_fields(data)
        assert errs and errs[0]["S"] == "FATAL", data
        return errs[0]


def test_second_ssl_request_is_refused(pg, proxy, config):
    p = proxy(config())
    e = _second_request_refused(p.port, pgwire.SSL_REQUEST_CODE, pgwire.SSL_REQUEST_CODE)
    assert e["C"] == "0A000" and "unsupported frontend protocol" in e["M"], e


def test_second_gssenc_request_is_refused(pg, proxy, config):
    p = proxy(config())
    e = _second_request_refused(p.port, pgwire.GSSENC_REQUEST_CODE, pgwire.GSSENC_REQUEST_CODE)
    assert e["C"] == "0A000", e
    # one of each is fine, in either order, then the login goes on
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        for code in (pgwire.GSSENC_REQUEST_CODE, pgwire.SSL_REQUEST_CODE):
            c.send_raw(struct.pack("!II", 8, code))
            assert c.read_bytes(1) == b"N"
        assert c.startup(ALICE[0], APPDB, ALICE[1]).ok


@pytest.mark.parametrize("where", ["proxy", "postgres"])
def test_ssl_request_inside_tls_is_refused(pg, proxy, config, tmp_path, where):
    if where == "postgres":
        port = pg.port
    else:
        crt, key = make_cert(tmp_path)
        port = proxy(config(tls={"client_mode": "allow", "cert_file": str(crt),
                                 "key_file": str(key)})).port
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(struct.pack("!II", 8, pgwire.SSL_REQUEST_CODE))
    answer = raw.recv(1)
    if answer != b"S":
        raw.close()
        pytest.skip(f"{where} does not offer TLS here")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(raw) as tls:
        tls.sendall(struct.pack("!II", 8, pgwire.SSL_REQUEST_CODE))
        closed, data = closed_within(tls, 10)
        assert closed, "an SSLRequest inside TLS is answered"
        errs = error_fields(data)
        assert errs and errs[0]["S"] == "FATAL" and errs[0]["C"] == "0A000", data
        assert "unsupported frontend protocol 1234.5679" in errs[0]["M"], errs


def test_repeated_encryption_requests_are_not_answered_for_ever(pg, proxy, config):
    p = proxy(config())
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        answers = b""
        try:
            for _ in range(50):
                c.send_raw(struct.pack("!II", 8, pgwire.SSL_REQUEST_CODE))
                b = c.read_bytes(1, timeout=5)
                if b != b"N":
                    break
                answers += b
        except OSError:
            pass
        assert len(answers) <= 1, f"{len(answers)} SSLRequests answered on one connection"


@pytest.mark.parametrize("bad", [
    pgwire.message(b"Q", pgwire.cstr("SELECT 1")),
    b"p" + struct.pack("!I", 0x7FFFFFF0) + b"xx",
    b"\x00" + struct.pack("!I", 8) + b"abcd",
], ids=["query", "huge_length", "type_zero"])
def test_unexpected_message_during_authentication_gets_fatal(pg, proxy, config, bad):
    p = proxy(config())
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        c.send_startup({"user": ALICE[0], "database": APPDB})
        kind, _ = c.read_message()
        assert kind == b"R"
        c.send_raw(bad)
        closed, data = closed_within(c.sock, 10)
        assert closed
        errs = error_fields(data)
        assert errs and errs[0]["C"] == "08P01" and errs[0]["S"] == "FATAL", data
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
