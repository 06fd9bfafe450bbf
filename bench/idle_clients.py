#!/usr/bin/python3
"""Memory per idle client: open N authenticated, idle connections to a proxy
and measure how much its resident memory grows.

    idle_clients.py --port 6432 --user bench --password bench --db bench \
        --count 10000 --pid <proxy pid>

Steps: one warm-up connection (login, SELECT 1, Terminate) so the pool and
the proxy's one-time allocations exist; VmRSS of --pid (the baseline); then N
connections are logged in concurrently (at most --window handshakes in
flight) with a small epoll-driven PostgreSQL v3 client (SCRAM-SHA-256, md5 or
cleartext) and left idle after ReadyForQuery; after --settle seconds VmRSS
again; a few of the idle connections then run SELECT 1 to show they are
really usable; all are closed. One JSON object is printed on stdout:
baseline/loaded RSS, bytes per client, how many logged in, errors.

Standard library only; run it with /usr/bin/python3.
"""

import argparse
import base64
import collections
import errno
import hashlib
import hmac
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

PROTOCOL_3_0 = 196608


def rss_kb(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def msg(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def startup_packet(user, db):
    body = struct.pack("!I", PROTOCOL_3_0)
    for k, v in (("user", user), ("database", db), ("application_name", "idle_clients")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def error_text(payload):
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return f"{fields.get('C', '?')}: {fields.get('M', '')}"


_salted_cache = {}


def salted_password(password, salt, iterations):
    key = (salt, iterations)
    sp = _salted_cache.get(key)
    if sp is None:
        sp = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        if len(_salted_cache) < 64:  # a proxy with a fixed secret reuses one salt
            _salted_cache[key] = sp
    return sp


class Client:
    """One connection's login state machine."""

    __slots__ = ("sock", "state", "buf", "nonce", "first_bare", "error", "server_sig")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.buf = b""
        self.nonce = None
        self.first_bare = None
        self.error = None
        self.server_sig = None


class IdleOpener:
    def __init__(self, host, port, user, password, db):
        self.host, self.port = host, port
        self.user, self.password, self.db = user, password, db
        self.sel = selectors.DefaultSelector()
        self.idle = []
        self.errors = collections.Counter()
        self.in_flight = 0

    def _fail(self, c, why):
        self.errors[why] += 1
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.state = "failed"
        self.in_flight -= 1

    def _start_one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = Client(s)
        rc = s.connect_ex((self.host, self.port))
        self.in_flight += 1
        if rc not in (0, errno.EINPROGRESS):
            self._fail(c, f"connect: {os.strerror(rc)}")
            return
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _send(self, c, data):
        try:
            n = c.sock.send(data)
        except OSError as e:
            self._fail(c, f"send: {e.strerror}")
            return False
        if n != len(data):  # small messages on loopback: never partial in practice
            self._fail(c, "send: partial write")
            return False
        return True

    def _on_auth(self, c, payload):
        code = struct.unpack("!I", payload[:4])[0]
        if code == 0:  # AuthenticationOk
            c.state = "auth_ok"
        elif code == 3:  # cleartext
            self._send(c, msg(b"p", self.password.encode() + b"\0"))
        elif code == 5:  # md5
            salt = payload[4:8]
            inner = hashlib.md5(self.password.encode() + self.user.encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + salt).hexdigest()
            self._send(c, msg(b"p", b"md5" + outer.encode() + b"\0"))
        elif code == 10:  # SASL
            mechs = [m.decode() for m in payload[4:].split(b"\0") if m]
            if "SCRAM-SHA-256" not in mechs:
                self._fail(c, f"no SCRAM-SHA-256 in {mechs}")
                return
            c.nonce = base64.b64encode(os.urandom(18)).decode()
            c.first_bare = f"n=,r={c.nonce}"
            first = ("n,," + c.first_bare).encode()
            self._send(c, msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        elif code == 11:  # SASLContinue: server-first-message
            server_first = payload[4:].decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            if not attrs.get("r", "").startswith(c.nonce):
                self._fail(c, "SCRAM: server nonce does not extend ours")
                return
            salt = base64.b64decode(attrs["s"])
            iters = int(attrs["i"])
            final_wo_proof = f"c=biws,r={attrs['r']}"
            auth_msg = f"{c.first_bare},{server_first},{final_wo_proof}".encode()
            sp = salted_password(self.password, salt, iters)
            client_key = hmac.new(sp, b"Client Key", hashlib.sha256).digest()
            stored_key = hashlib.sha256(client_key).digest()
            client_sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
            server_key = hmac.new(sp, b"Server Key", hashlib.sha256).digest()
            c.server_sig = base64.b64encode(hmac.new(server_key, auth_msg, hashlib.sha256).digest()).decode()
            final = f"{final_wo_proof},p={base64.b64encode(proof).decode()}".encode()
            self._send(c, msg(b"p", final))
        elif code == 12:  # SASLFinal
            if payload[4:].decode() != f"v={c.server_sig}":
                self._fail(c, "SCRAM: wrong server signature")
        else:
            self._fail(c, f"unsupported auth request {code}")

    def _on_readable(self, c):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self._fail(c, f"recv: {e.strerror}")
            return
        if not data:
            self._fail(c, "closed by proxy during login")
            return
        c.buf += data
        while len(c.buf) >= 5 and c.state != "failed":
            kind = c.buf[:1]
            length = struct.unpack("!I", c.buf[1:5])[0]
            if len(c.buf) < 1 + length:
                break
            payload = c.buf[5 : 1 + length]
            c.buf = c.buf[1 + length :]
            if kind == b"R":
                self._on_auth(c, payload)
            elif kind == b"E":
                self._fail(c, "ErrorResponse " + error_text(payload))
            elif kind == b"Z":
                self.sel.unregister(c.sock)
                c.state = "idle"
                self.idle.append(c)
                self.in_flight -= 1
                return
            # S (ParameterStatus), K (BackendKeyData), N (notice): ignored

    def open(self, count, window, deadline):
        started = 0
        while True:
            while started < count and self.in_flight < window:
                self._start_one()
                started += 1
            if self.in_flight == 0 and started >= count:
                break
            if time.monotonic() > deadline:
                for key in list(self.sel.get_map().values()):
                    self._fail(key.data, "timed out during login")
                break
            for key, mask in self.sel.select(timeout=0.5):
                c = key.data
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._fail(c, f"connect: {os.strerror(err)}")
                        continue
                    c.state = "login"
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
                    self._send(c, startup_packet(self.user, self.db))
                else:
                    self._on_readable(c)
        return started


def simple_query(sock, sql, timeout=10.0):
    """Runs one query on a blocking socket; returns None or an error text."""
    sock.settimeout(timeout)
    sock.sendall(msg(b"Q", sql.encode() + b"\0"))
    buf = b""
    err = None
    while True:
        while len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
            data = sock.recv(65536)
            if not data:
                return "connection closed"
            buf += data
        kind = buf[:1]
        length = struct.unpack("!I", buf[1:5])[0]
        payload = buf[5 : 1 + length]
        buf = buf[1 + length :]
        if kind == b"E":
            err = error_text(payload)
        elif kind == b"Z":
            return err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--pid", type=int, required=True, help="proxy process whose VmRSS is measured")
    ap.add_argument("--window", type=int, default=64, help="logins in flight at once")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds allowed for all logins")
    ap.add_argument("--settle", type=float, default=2.0)
    args = ap.parse_args()

    nofile = raise_nofile(30000)
    out = {"requested": args.count, "nofile": nofile}
    if nofile < args.count + 64:
        out["note"] = f"RLIMIT_NOFILE is {nofile}; fewer than {args.count} connections can be opened"

    # warm-up: one full login and query, so one-time allocations are in the baseline
    opener = IdleOpener(args.host, args.port, args.user, args.password, args.db)
    opener.open(1, 1, time.monotonic() + 30)
    if not opener.idle:
        out["error"] = "warm-up login failed: " + "; ".join(f"{k} x{v}" for k, v in opener.errors.items())
        print(json.dumps(out))
        return 1
    w = opener.idle[0].sock
    w.setblocking(True)
    out["warmup_query_error"] = simple_query(w, "SELECT 1")
    w.sendall(msg(b"X"))
    w.close()
    time.sleep(1.0)
    base = rss_kb(args.pid)
    out["rss_baseline_kb"] = base

    opener = IdleOpener(args.host, args.port, args.user, args.password, args.db)
    t0 = time.monotonic()
    out["started"] = opener.open(args.count, args.window, t0 + args.timeout)
    out["login_secs"] = round(time.monotonic() - t0, 2)
    out["established"] = len(opener.idle)
    out["errors"] = dict(opener.errors.most_common(10))
    time.sleep(args.settle)
    loaded = rss_kb(args.pid)
    out["rss_loaded_kb"] = loaded
    out["hwm_kb"] = rss_kb(args.pid, "VmHWM")
    if opener.idle:
        out["bytes_per_client"] = round((loaded - base) * 1024 / len(opener.idle), 1)

    # are the idle connections usable? a few spread over the set run SELECT 1
    probe = opener.idle[:: max(1, len(opener.idle) // 5)][:5]
    ok = 0
    probe_errors = []
    for c in probe:
        c.sock.setblocking(True)
        try:
            e = simple_query(c.sock, "SELECT 1")
        except OSError as ex:
            e = str(ex)
        if e is None:
            ok += 1
        else:
            probe_errors.append(e)
    out["probe_ok"] = f"{ok}/{len(probe)}"
    if probe_errors:
        out["probe_errors"] = probe_errors
    for c in opener.idle:
        try:
            c.sock.setblocking(False)
            c.sock.send(msg(b"X"))
        except OSError:
            pass
        c.sock.close()
    time.sleep(1.0)
    try:
        out["rss_after_close_kb"] = rss_kb(args.pid)
    except (OSError, RuntimeError):
        out["rss_after_close_kb"] = None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
