"""Transaction pooling, a client whose server binds late: what it sent while
every server was busy waits in the chunk it arrived in and is forwarded in
that chunk once a server comes (no copy in user space), answered in order.
Plain and TLS (both sides), simple and extended protocol, and messages
larger than one receive buffer arriving in pieces while the client waits."""

import re
import select
import ssl
import struct
import time

import pytest

import pgwire
from conftest import ALICE, APPDB, run


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("latecert")
    key, crt = d / "server.key", d / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


def one_server_config(config, tls):
    """Transaction pooling, the primary only, one server connection: a client
    that sends while another holds it in a transaction must wait."""
    cfg = config(mode="transaction", pool={"max_pool_size": 1, "query_wait_timeout_secs": 30})
    cfg["nodes"] = cfg["nodes"][:1]
    if tls:
        crt, key = tls
        # clients must use TLS; servers get it too (server_mode prefer, the
        # test cluster has ssl = on)
        cfg["tls"] = {"client_mode": "require", "cert_file": str(crt), "key_file": str(key)}
    return cfg


def wire_connect(p, tls):
    c = pgwire.Conn("127.0.0.1", p.port, timeout=30)
    if tls:
        assert c.ssl_request() == b"S"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.sock = ctx.wrap_socket(c.sock)
    res = c.startup(ALICE[0], APPDB, ALICE[1])
    assert res.ok, res
    return c


def nothing_readable(c, secs):
    if getattr(c.sock, "pending", None) and c.sock.pending():
        return False
    r, _, _ = select.select([c.sock], [], [], secs)
    return not r


def q(sql):
    return pgwire.message(b"Q", pgwire.cstr(sql))


def extended(sql):
    """Unnamed Parse, Bind, Describe, Execute, Sync."""
    return (pgwire.message(b"P", pgwire.cstr("") + pgwire.cstr(sql) + struct.pack("!H", 0)) +
            pgwire.message(b"B", pgwire.cstr("") + pgwire.cstr("") + struct.pack("!HHH", 0, 0, 0)) +
            pgwire.message(b"D", b"P" + pgwire.cstr("")) +
            pgwire.message(b"E", pgwire.cstr("") + struct.pack("!I", 0)) +
            pgwire.message(b"S"))


def read_answers(c, n_ready):
    """First column of every DataRow and each error's message, in order,
    up to the n_ready-th ReadyForQuery."""
    got = []
    while n_ready:
        m = c.read_message(30)
        assert m is not None, f"closed after {got}"
        kind, payload = m
        if kind == b"D":
            (ln,) = struct.unpack("!i", payload[2:6])
            got.append(payload[6:6 + ln].decode())
        elif kind == b"E":
            got.append("E:" + pgwire.parse_fields(payload)["M"])
        elif kind == b"Z":
            n_ready -= 1
    return got


class Holder:
    """Holds the only server connection in an open transaction."""

    def __init__(self, p, tls):
        self.c = p.connect(autocommit=False, sslmode="require" if tls else "prefer")

    def __enter__(self):
        self.c.execute("SELECT 1")
        return self

    def release(self):
        self.c.commit()

    def __exit__(self, *exc):
        self.c.close()


def relay_line(p, nbytes):
    """The debug line of the client that relayed nbytes (at its close)."""
    m = p.wait_log(rf"client \d+: relayed ({nbytes}) bytes in the chunks they arrived in, "
                   rf"(\d+) through a copy, (\d+) assembled\s*$", timeout=10)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("proto", ["simple", "extended"])
@pytest.mark.parametrize("reset_sequences", [False, True], ids=["keep-seq", "discard-seq"])
def test_late_bound_pipelined_batch_is_forwarded_in_its_chunk(pg, proxy, config, client_cert,
                                                              tls, proto, reset_sequences):
    """A batch that waited for its server goes to it in the buffer it arrived
    in; with reset_sequences (the default) the server came from another
    client, so a DISCARD SEQUENCES goes ahead of it, queued as a chunk of its
    own and sent with the batch in one gathered write: the batch is still not
    copied."""
    cfg = one_server_config(config, client_cert if tls else None)
    cfg["pool_mode"]["reset_sequences"] = reset_sequences
    p = proxy(cfg, log_level="debug")
    c = wire_connect(p, tls)  # logs in while the server is free
    try:
        with Holder(p, tls) as h:
            if proto == "simple":
                batch = b"".join(q(f"SELECT {i}") for i in range(1, 6))
                n_ready = 5
            else:
                batch = b"".join(extended(f"SELECT {i}") for i in range(1, 6))
                n_ready = 5
            c.send_raw(batch)  # one write: one chunk, waiting for the server
            assert nothing_readable(c, 0.5), "answered while the only server was held"
            h.release()
            assert read_answers(c, n_ready) == ["1", "2", "3", "4", "5"]
        # bound at once this time (the common case), same answers
        c.send_raw(batch)
        assert read_answers(c, n_ready) == ["1", "2", "3", "4", "5"]
    finally:
        c.terminate()
    # both batches went to the server in the buffers they arrived in, the
    # late-bound one behind the DISCARD SEQUENCES when reset_sequences is on
    direct, copied, assembled = relay_line(p, 2 * len(batch))
    assert (copied, assembled) == (0, 0)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("size", [100_000, 300_000])
def test_late_bound_large_message_arriving_in_pieces(pg, proxy, config, client_cert, tls, size):
    """A Query larger than 64 KiB (and one larger than what the proxy
    assembles, streamed) sent in pieces while the client waits, with small
    queries before and after it in the same stream."""
    p = proxy(one_server_config(config, client_cert if tls else None))
    c = wire_connect(p, tls)
    try:
        with Holder(p, tls) as h:
            big = q("SELECT length('" + "x" * size + "')")
            data = q("SELECT 'before'") + big + q("SELECT 'after'")
            for i in range(0, len(data), 7000):
                c.send_raw(data[i:i + 7000])
                time.sleep(0.002)
            assert nothing_readable(c, 0.3), "answered while the only server was held"
            h.release()
            assert read_answers(c, 3) == ["before", str(size), "after"]
        assert c.query("SELECT 'still here'") == [["still here"]]
    finally:
        c.terminate()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_client_closing_while_its_batch_waits(pg, proxy, config, client_cert, tls):
    """The pending chunk of a client that leaves before any server came is
    released once (ASan builds tell), and the server it never got stays
    usable."""
    p = proxy(one_server_config(config, client_cert if tls else None))
    with Holder(p, tls) as h:
        for _ in range(3):
            c = wire_connect(p, tls)
            c.send_raw(q("SELECT 1") + extended("SELECT 2"))
            time.sleep(0.05)
            c.close()
        h.release()
    c = wire_connect(p, tls)
    try:
        assert c.query("SELECT 'ok'") == [["ok"]]
    finally:
        c.terminate()
