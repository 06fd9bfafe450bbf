"""A small raw PostgreSQL v3 protocol client for what libpq hides.

Used by the integration tests to send arbitrary startup packets, read the
fields of ErrorResponses sent during startup (SQLSTATE of auth failures),
send malformed bytes, CancelRequest and SSLRequest.

    c = Conn("127.0.0.1", port)
    res = c.startup("alice", "appdb", password="alice-pw")
    if res.error: print(res.error["C"])
    rows = c.query("SELECT 1")
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
CANCEL_REQUEST_CODE = 80877102
GSSENC_REQUEST_CODE = 80877104

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


class ProtocolError(Exception):
    """The peer sent something this client did not expect."""


class PgError(Exception):
    """An ErrorResponse; .fields maps the one-letter field codes to text."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')}")

    @property
    def code(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M", "")


def parse_fields(payload):
    """Fields of an ErrorResponse / NoticeResponse payload as a dict."""
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def startup_packet(params, protocol=PROTOCOL_3_0):
    body = struct.pack("!I", protocol)
    for k, v in params.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def cstr(s):
    return s.encode() + b"\0"


class StartupResult:
    def __init__(self):
        self.ok = False  # reached ReadyForQuery
        self.error = None  # ErrorResponse fields, if any
        self.auth_requests = []  # auth codes the server asked for
        self.parameters = {}  # ParameterStatus
        self.backend_pid = None
        self.backend_key = None
        self.closed = False  # peer closed the connection before ReadyForQuery
        self.notices = []

    def __repr__(self):
        return (f"StartupResult(ok={self.ok}, error={self.error}, auth={self.auth_requests}, "
                f"pid={self.backend_pid}, closed={self.closed})")


class ScramClient:
    """SCRAM-SHA-256 client side (RFC 5802/7677), no channel binding."""

    def __init__(self, password, nonce=None):
        self.password = password.encode()
        self.cnonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n=,r={self.cnonce}"
        self.server_signature = None

    def first_message(self):
        return ("n,," + self.client_first_bare).encode()

    def final_message(self, server_first):
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.cnonce):
            raise ProtocolError("SCRAM server nonce does not extend the client nonce")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.client_first_bare},{server_first},{without_proof}".encode()
        client_sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_final(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        if "e" in attrs:
            raise ProtocolError(f"SCRAM server error: {attrs['e']}")
        if base64.b64decode(attrs.get("v", "")) != self.server_signature:
            raise ProtocolError("SCRAM server signature mismatch")


def md5_password(user, password, salt):
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class Conn:
    def __init__(self, host="127.0.0.1", port=5432, timeout=10.0, unix_path=None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    # -- raw I/O -------------------------------------------------------
    def send_raw(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_bytes(self, n, timeout=None):
        """Exactly n bytes, or fewer if the peer closed."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(n, deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self, timeout=None):
        """(type byte, payload) or None when the peer closed cleanly."""
        deadline = time.monotonic() + (timeout or self.timeout)
        if not self._fill(5, deadline):
            if self.buf:
                raise ProtocolError(f"connection closed inside a message header: {self.buf!r}")
            return None
        kind = self.buf[0:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 64 * 1024 * 1024:
            raise ProtocolError(f"bad message length {length} for type {kind!r}")
        if not self._fill(1 + length, deadline):
            raise ProtocolError("connection closed inside a message")
        payload = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return kind, payload

    def read_until_close(self, timeout=None):
        """All messages until the peer closes; raises socket.timeout if it does not."""
        msgs = []
        while True:
            m = self.read_message(timeout)
            if m is None:
                return msgs
            msgs.append(m)

    # -- requests ------------------------------------------------------
    def send_startup(self, params, protocol=PROTOCOL_3_0):
        self.send_raw(startup_packet(params, protocol))

    def ssl_request(self):
        """Sends SSLRequest; returns b'S', b'N', an 'E' message start, or b'' on close."""
        self.send_raw(struct.pack("!II", 8, SSL_REQUEST_CODE))
        return self.read_bytes(1)

    def startup(self, user, database=None, password=None, params=None, protocol=PROTOCOL_3_0):
        """Sends a startup packet, answers auth, reads until ReadyForQuery or error."""
        p = {"user": user}
        if database is not None:
            p["database"] = database
        p.update(params or {})
        self.send_startup(p, protocol)
        return self.finish_startup(user, password)

    def finish_startup(self, user, password=None):
        res = StartupResult()
        scram = None
        while True:
            m = self.read_message()
            if m is None:
                res.closed = True
                return res
            kind, payload = m
            if kind == b"R":
                (code,) = struct.unpack("!I", payload[:4])
                res.auth_requests.append(code)
                if code == AUTH_OK:
                    continue
                if code == AUTH_CLEARTEXT:
                    self.send_raw(message(b"p", cstr(password or "")))
                elif code == AUTH_MD5:
                    self.send_raw(message(b"p", cstr(md5_password(user, password or "", payload[4:8]))))
                elif code == AUTH_SASL:
                    mechs = [x.decode() for x in payload[4:].split(b"\0") if x]
                    if "SCRAM-SHA-256" not in mechs:
                        raise ProtocolError(f"no SCRAM-SHA-256 in {mechs}")
                    scram = ScramClient(password or "")
                    first = scram.first_message()
                    self.send_raw(message(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first))
                elif code == AUTH_SASL_CONTINUE:
                    self.send_raw(message(b"p", scram.final_message(payload[4:])))
                elif code == AUTH_SASL_FINAL:
                    scram.verify_final(payload[4:])
                else:
                    raise ProtocolError(f"unsupported authentication request {code}")
            elif kind == b"E":
                res.error = parse_fields(payload)
                return res
            elif kind == b"N":
                res.notices.append(parse_fields(payload))
            elif kind == b"S":
                k, v = payload.split(b"\0")[:2]
                res.parameters[k.decode()] = v.decode()
            elif kind == b"K":
                res.backend_pid, res.backend_key = struct.unpack("!iI", payload[:8])
            elif kind == b"Z":
                res.ok = True
                return res
            else:
                raise ProtocolError(f"unexpected message {kind!r} during startup")

    def query(self, sql, timeout=None):
        """Simple query; returns the rows (lists of str/None) of the last result.
        Raises PgError on ErrorResponse (after ReadyForQuery, or if the peer closed)."""
        self.send_raw(message(b"Q", cstr(sql)))
        rows, error = [], None
        while True:
            m = self.read_message(timeout)
            if m is None:
                if error:
                    raise PgError(error)
                raise ProtocolError("connection closed during query")
            kind, payload = m
            if kind == b"T":
                rows = []
            elif kind == b"D":
                (n,) = struct.unpack("!H", payload[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", payload[pos:pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(payload[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif kind == b"E":
                error = parse_fields(payload)
            elif kind == b"Z":
                if error:
                    raise PgError(error)
                return rows
            # C, N, S, A, I and the like are ignored

    def terminate(self):
        try:
            self.send_raw(message(b"X"))
        except OSError:
            pass
        self.close()


def connect(host, port, user, database, password=None, params=None, timeout=10.0):
    """Connects and completes startup; raises PgError if the server refused."""
    c = Conn(host, port, timeout)
    res = c.startup(user, database, password, params)
    if not res.ok:
        c.close()
        if res.error:
            raise PgError(res.error)
        raise ProtocolError(f"startup failed: {res!r}")
    c.result = res
    return c


def cancel_request(host, port, pid, key, timeout=5.0):
    """Sends a CancelRequest; returns once the peer closed the connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack("!IIiI", 16, CANCEL_REQUEST_CODE, pid, key))
        try:
            while s.recv(1024):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
