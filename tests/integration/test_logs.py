"""Logs (issue 17): log_format = "json" writes one JSON object per line for
every event kind (connect, disconnect, failed login, config applied, drain
progress, plain lines), hostile client-given names stay valid JSON,
log_connections / log_disconnections switch the per-connection lines, and
syslog = true copies lines to syslog(3)."""

import json
import re
import socket
import struct
import subprocess
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, run, wait_for

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"error", "warn", "info", "debug"}


def parse_all(p):
    """Every line of p's log as a dict; fails on any line that is not a JSON
    object with the common fields."""
    out = []
    for n, line in enumerate(p.log().splitlines(), 1):
        try:
            d = json.loads(line)
        except ValueError as e:
            pytest.fail(f"log line {n} is not JSON ({e}): {line!r}")
        assert isinstance(d, dict), line
        assert TIME_RE.match(d["time"]), line
        assert d["level"] in LEVELS, line
        assert isinstance(d["event"], str) and re.match(r"^[a-z_]+$", d["event"]), line
        assert isinstance(d["message"], str) and d["message"], line
        for k in ("user", "database", "address"):
            assert k not in d or isinstance(d[k], str), line
        assert "client_id" not in d or (isinstance(d["client_id"], int) and d["client_id"] > 0)
        out.append(d)
    return out


def events(p, kind):
    return [d for d in parse_all(p) if d["event"] == kind]


def hostile_login(port, user_bytes, password="wrong"):
    """A startup packet whose user name has quotes, a backslash, control
    characters and bytes that are not UTF-8; answers SCRAM with password."""
    body = struct.pack("!I", pgwire.PROTOCOL_3_0)
    body += b"user\0" + user_bytes + b"\0database\0" + APPDB.encode() + b"\0\0"
    with pgwire.Conn("127.0.0.1", port) as c:
        c.send_raw(struct.pack("!I", len(body) + 4) + body)
        return c.finish_startup("x", password)


def test_json_log_has_every_event_kind_as_one_parseable_object_per_line(proxy, config, cert):
    crt, key = cert
    cfg = config(log_format="json", log_connections=True, log_disconnections=True,
                 shutdown_timeout_secs=4,
                 tls={"client_mode": "allow", "cert_file": str(crt), "key_file": str(key)})
    p = proxy(cfg)
    # plain and TLS logins, each then closed by the client
    with p.connect(sslmode="disable") as conn:
        conn.execute("SELECT 1")
    with p.connect(sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        conn.execute("SELECT 1")
    # psql too (libpq's own startup)
    env = {"PGPASSWORD": ALICE[1], "PGSSLMODE": "disable", "PATH": "/usr/bin:/bin"}
    r = run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", ALICE[0],
             "-d", APPDB, "-c", "SELECT 42"], env=env)
    assert r.stdout.strip() == "42"
    # wrong password
    with pytest.raises(psycopg.OperationalError):
        p.connect(password="not-the-password", sslmode="disable").close()
    # a client-given name that is hostile to a naive JSON writer
    hostile = b'ev"il\\na\nme\x01\x7f\xff\xfe\xc3('
    res = hostile_login(p.port, hostile)
    assert res.error and res.error.get("C") == "28P01", vars(res)
    # reload: a changed key, applied
    cfg["stats_period_secs"] = 30
    p.rewrite_config(cfg)
    p.sighup()
    assert wait_for(lambda: events(p, "config_applied")[1:], timeout=10), p.log_tail()

    conns = wait_for(lambda: len(events(p, "client_connect")) >= 3 and
                     len(events(p, "client_disconnect")) >= 3 and events(p, "client_connect"))
    assert conns, p.log_tail()
    for d in conns:
        assert d["user"] == ALICE[0] and d["database"] == APPDB, d
        assert d["address"].startswith("127.0.0.1"), d
        assert d["client_id"] > 0 and d["level"] == "info", d
    tls = [d for d in conns if d["message"].endswith("connected over TLS")]
    plain = [d for d in conns if d["message"].endswith("connected without TLS")]
    assert len(tls) == 1 and len(plain) == 2, conns
    for d in events(p, "client_disconnect"):
        assert d["user"] == ALICE[0] and re.search(r"after \d+\.\d{3}s", d["message"]), d
    failed = events(p, "login_failed")
    assert len(failed) == 2, failed
    assert failed[0]["user"] == ALICE[0] and failed[0]["level"] == "warn"
    # invalid UTF-8 became U+FFFD; quotes, backslash and control characters
    # came back exactly after json.loads
    assert failed[1]["user"] == 'ev"il\\na\nme\x01\x7f\ufffd\ufffd\ufffd(', failed[1]
    assert "\n" not in json.dumps(failed[1]["message"]).strip('"')
    # the failed logins were not logged as connections
    assert all(d["client_id"] not in {f["client_id"] for f in failed} for d in conns)

    # SIGTERM with a client inside a transaction: progress once a second
    holder = p.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1")
    t0 = time.monotonic()
    p.sigterm()
    assert p.wait(20) == 0, p.log_tail()
    elapsed = time.monotonic() - t0
    holder.close()
    lines = [d for d in parse_all(p) if d["event"] == "drain_progress"]
    left = [d for d in lines if re.match(r"shutdown: 1 clients left, 1 server connections in use$",
                                         d["message"])]
    # shutdown_timeout_secs = 4: about one line a second while it waits
    assert len(left) >= 3, (elapsed, lines)
    stamps = [time.mktime(time.strptime(d["time"][:19], "%Y-%m-%dT%H:%M:%S")) +
              int(d["time"][20:23]) / 1000 for d in left]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(0.7 <= g <= 1.5 for g in gaps), gaps
    assert lines[-1]["message"] == "shutdown: all clients gone", lines[-1]
    kinds = {d["event"] for d in parse_all(p)}
    assert {"log", "client_connect", "client_disconnect", "login_failed", "config_applied",
            "drain_progress"} <= kinds, kinds


def test_log_connections_off_by_default_writes_no_connection_lines(proxy, config):
    p = proxy(config(log_format="json"))
    for _ in range(3):
        with p.connect() as conn:
            conn.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        p.connect(password="nope").close()
    assert wait_for(lambda: events(p, "login_failed")), p.log_tail()
    kinds = [d["event"] for d in parse_all(p)]
    assert "client_connect" not in kinds and "client_disconnect" not in kinds, kinds


def test_log_disconnections_alone_logs_only_disconnects(proxy, config):
    p = proxy(config(log_format="json", log_disconnections=True))
    with p.connect() as conn:
        conn.execute("SELECT 1")
    d = wait_for(lambda: events(p, "client_disconnect"))
    assert d and d[0]["user"] == ALICE[0] and "client closed" in d[0]["message"], p.log_tail()
    assert not events(p, "client_connect")


def test_log_format_changes_from_text_to_json_on_reload(proxy, config):
    cfg = config(log_connections=True)
    p = proxy(cfg)
    with p.connect() as conn:
        conn.execute("SELECT 1")
    assert p.wait_log(r"^\S+Z info  client \d+ 127\.0\.0\.1:\d+ user=alice db=\w+: connected \w+ TLS$")
    first = p.log().splitlines()
    assert not any(line.startswith("{") for line in first)
    cfg["log_format"] = "json"
    p.rewrite_config(cfg)
    p.sighup()
    mark = len(p.log())
    assert p.wait_log(r'^\{.*"event":"config_applied"', start=mark - 200 if mark > 200 else 0,
                      timeout=10), p.log_tail()
    with p.connect() as conn:
        conn.execute("SELECT 1")
    assert p.wait_log(r'^\{.*"event":"client_connect"', timeout=5), p.log_tail()
    after = p.log().splitlines()[len(first):]
    json_lines = [json.loads(line) for line in after if line.startswith("{")]
    assert any(d["event"] == "client_connect" for d in json_lines)


# Runs the command with a private /dev in which /dev/log is $SYSLOG_SOCK:
# syslog(3) always writes to /dev/log, and this machine may have none (or
# the host's, which the test must not fill).
PRIVATE_DEVLOG = (
    'set -e; mount --make-rprivate /; d=$(mktemp -d); mount --rbind /dev "$d"; '
    'mount -t tmpfs -o mode=755 tmpfs /dev; '
    'for f in "$d"/* "$d"/.[!.]*; do [ -e "$f" ] && ln -s "$f" /dev/; done; '
    'ln -s "$SYSLOG_SOCK" /dev/log; exec "$@"')


def test_syslog_receives_lines_with_ident_and_priority(proxy, config, tmp_path, monkeypatch):
    sock_path = tmp_path / "devlog"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.settimeout(10)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", PRIVATE_DEVLOG, "sh", "test", "-S",
                            "/dev/log"], env={"SYSLOG_SOCK": str(sock_path),
                                              "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private /dev/log with unshare -m: {probe.stderr.strip()}")
    monkeypatch.setenv("SYSLOG_SOCK", str(sock_path))
    p = proxy(config(syslog=True, syslog_ident="hp-test", syslog_facility="local3",
                     log_connections=True),
              prefix=["unshare", "-m", "sh", "-c", PRIVATE_DEVLOG, "sh"])
    with p.connect() as conn:
        conn.execute("SELECT 1")
    got = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (any(b"user=alice" in g for g in got) and
                                               any(b"listening on" in g for g in got)):
        try:
            got.append(s.recv(8192))
        except socket.timeout:
            break
    s.close()
    # local3 = 19, info = 6: <158>; the ident and pid follow the time
    listening = [g for g in got if b"listening on" in g]
    assert listening and listening[0].startswith(b"<158>"), got
    assert re.search(rb"hp-test\[%d\]: " % p.pid, listening[0]), listening[0]
    assert any(b"<158>" in g and b"user=alice" in g and b"connected" in g for g in got), got
    # the lines still go to the log file too
    assert p.wait_log(r"listening on")
