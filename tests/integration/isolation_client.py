"""Raw-protocol client steps for the session-state isolation tests
(test_isolation.py): simple Query, or Parse/Bind/Execute with the unnamed or
a named statement, with or without Sync.

Run as a script it is a client to kill -9:
    python3 isolation_client.py PORT USER PASSWORD PROTO STEPS_JSON [NOSYNC]
connects, prints "pid <backend pid>" once its state is set, then sleeps.
"""

import json
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgwire import Conn, PgError, ProtocolError, cstr, message, parse_fields  # noqa: E402


def parse_msg(name, sql):
    return message(b"P", cstr(name) + cstr(sql) + struct.pack("!H", 0))


def bind_msg(portal, stmt):
    return message(b"B", cstr(portal) + cstr(stmt) + struct.pack("!HHH", 0, 0, 0))


def execute_msg(portal=""):
    return message(b"E", cstr(portal) + struct.pack("!I", 0))


def describe_portal_msg(portal=""):
    return message(b"D", b"P" + cstr(portal))


SYNC = message(b"S")
FLUSH = message(b"H")


def read_result(c, until=b"Z", count=1, timeout=None):
    """Reads answers until `count` messages of type `until`; returns
    (rows, error fields or None, ReadyForQuery status or None)."""
    rows, error, status, seen = [], None, None, 0
    while seen < count:
        m = c.read_message(timeout)
        if m is None:
            raise ProtocolError(f"connection closed (error {error})")
        kind, payload = m
        if kind == b"D":
            (n,) = struct.unpack("!H", payload[:2])
            pos, row = 2, []
            for _ in range(n):
                (ln,) = struct.unpack("!i", payload[pos:pos + 4])
                pos += 4
                row.append(None if ln < 0 else payload[pos:pos + ln].decode())
                pos += max(ln, 0)
            rows.append(row)
        elif kind == b"E":
            error = parse_fields(payload)
            if until != b"Z":
                break
        elif kind == b"Z":
            status = payload[:1].decode()
        if kind == until:
            seen += 1
    return rows, error, status


def simple(c, sql):
    c.send_raw(message(b"Q", cstr(sql)))
    return read_result(c)


def ext(c, sql, stmt=""):
    """One statement over the extended protocol, then Sync."""
    c.send_raw(parse_msg(stmt, sql) + bind_msg("", stmt) + describe_portal_msg() + execute_msg() +
               SYNC)
    return read_result(c)


def run(c, sql, proto, i=0):
    """Runs sql as proto ("simple", "extended", "prepared"); raises PgError."""
    if proto == "simple":
        rows, err, st = simple(c, sql)
    elif proto == "extended":
        rows, err, st = ext(c, sql)
    else:
        rows, err, st = ext(c, sql, stmt=f"iso_stmt_{i}")
    if err:
        raise PgError(err)
    return rows, st


def run_unsynced(c, steps, proto):
    """Extended messages for every step, ended by Flush and no Sync: the
    answers come (ParseComplete... CommandComplete), no ReadyForQuery."""
    out = b""
    for i, sql in enumerate(steps):
        stmt = "" if proto == "extended" else f"iso_stmt_{i}"
        out += parse_msg(stmt, sql) + bind_msg("", stmt) + execute_msg()
    c.send_raw(out + FLUSH)
    _, err, _ = read_result(c, until=b"C", count=len(steps))
    if err:
        raise PgError(err)


def backend_pid(c):
    return int(simple(c, "SELECT pg_backend_pid()")[0][0][0])


def set_state(c, steps, proto, nosync=False):
    """The first client: its server's pid, then its state."""
    pid = backend_pid(c)
    if nosync:
        run_unsynced(c, steps, proto)
    else:
        for i, sql in enumerate(steps):
            run(c, sql, proto, i)
    return pid


def connect(port, user, password, database="appdb"):
    c = Conn("127.0.0.1", port, timeout=20)
    res = c.startup(user, database, password)
    if not res.ok:
        raise ProtocolError(f"login failed: {res!r}")
    return c


if __name__ == "__main__":
    port, user, password, proto, steps = sys.argv[1:6]
    nosync = len(sys.argv) > 6 and sys.argv[6] == "nosync"
    conn = connect(int(port), user, password)
    pid = set_state(conn, json.loads(steps), proto, nosync)
    print(f"pid {pid}", flush=True)
    time.sleep(120)
