"""Malformed input closes only the offending connection."""

import socket
import struct

import pytest

import pgwire
from conftest import ALICE, APPDB


def expect_closed(c, allowed=("08P01",), need_error=False, timeout=5.0):
    """Reads until the proxy closes; anything it says must be an ErrorResponse
    with an allowed SQLSTATE (NoticeResponses are ignored)."""
    try:
        msgs = c.read_until_close(timeout)
    except socket.timeout:
        pytest.fail(f"connection still open {timeout} s after malformed input")
    except pgwire.ProtocolError as e:
        pytest.fail(f"the proxy answered malformed input with something unparseable: {e}")
    errors = []
    for kind, payload in msgs:
        if kind == b"N":
            continue
        assert kind == b"E", f"unexpected {kind!r} message after malformed input"
        errors.append(pgwire.parse_fields(payload))
    for e in errors:
        assert e.get("C") in allowed, e
    if need_error:
        assert errors, "closed without an ErrorResponse"
    return errors


def logged_in(p):
    c = pgwire.Conn("127.0.0.1", p.port, timeout=10)
    res = c.startup(ALICE[0], APPDB, ALICE[1])
    assert res.ok, res
    return c


# Each case: (name, function(proxy) -> None) that sends bad bytes and checks
# the proxy closes that connection.

def startup_huge_length(p):
    with pgwire.Conn("127.0.0.1", p.port) as c:
        c.send_raw(struct.pack("!II", 0x7FFFFFF0, pgwire.PROTOCOL_3_0) + b"user\0alice\0")
        expect_closed(c)


def startup_too_short(p):
    with pgwire.Conn("127.0.0.1", p.port) as c:
        c.send_raw(struct.pack("!I", 4))
        expect_closed(c)


def startup_http_garbage(p):
    with pgwire.Conn("127.0.0.1", p.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        expect_closed(c)


def startup_bad_protocol(p):
    with pgwire.Conn("127.0.0.1", p.port) as c:
        c.send_raw(struct.pack("!I", 20) + b"\xde\xad\xbe\xef" * 4)
        expect_closed(c, allowed=("08P01", "0A000"))


def startup_truncated(p):
    with pgwire.Conn("127.0.0.1", p.port) as c:
        pkt = pgwire.startup_packet({"user": ALICE[0], "database": APPDB})
        c.send_raw(pkt[:len(pkt) // 2])
        c.shutdown_write()
        expect_closed(c)


def session_unknown_message_type(p):
    c = logged_in(p)
    with c:
        c.send_raw(b"\xff" + struct.pack("!I", 8) + b"abcd")
        expect_closed(c, need_error=True)


def session_huge_length(p):
    c = logged_in(p)
    with c:
        c.send_raw(b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"SELECT 1")
        expect_closed(c)


def session_truncated(p):
    c = logged_in(p)
    with c:
        c.send_raw(b"Q" + struct.pack("!I", 100) + b"SELECT")
        c.shutdown_write()
        expect_closed(c)


CASES = [startup_huge_length, startup_too_short, startup_http_garbage, startup_bad_protocol,
         startup_truncated, session_unknown_message_type, session_huge_length, session_truncated]


@pytest.mark.parametrize("case", CASES, ids=[f.__name__ for f in CASES])
def test_malformed_input(pg, proxy, config, case):
    p = proxy(config())
    with p.connect() as before:
        assert before.execute("SELECT 1").fetchone() == (1,)
        case(p)
        assert p.running(), f"proxy died:\n{p.log_tail()}"
        assert before.execute("SELECT 2").fetchone() == (2,)
        with p.connect() as after:
            assert after.execute("SELECT 3").fetchone() == (3,)
