"""Admin HTTP (/healthz, /metrics) under a slowloris: half-sent requests kept
alive by a header byte now and then must not stop probes from answering,
neither the data plane's (admin_address) nor helios-cp's
(control_admin_address), which share common/admin_http.c."""

import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, helios_bin, to_toml, wait_for

ATTACKER = "127.0.0.1"
PROBER = "127.0.0.2"  # another address: a per-address limit must not block it


def get(port, path, source=PROBER, timeout=10):
    """One GET from source; (status, body), or (None, why) when the server
    closed or refused without an answer, or gave none within timeout."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                      source_address=(source, 0)) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return None, repr(e)
    if not data.startswith(b"HTTP/1."):
        return None, f"no HTTP answer: {data[:80]!r}"
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


class Slowloris:
    """n connections from ATTACKER, each with half a GET sent, renewed with
    one more header line a second for as long as it runs. It never opens new
    connections: once the server has closed all of them, closed == n."""

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.socks = []
        self.closed = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._renew, daemon=True)

    def __enter__(self):
        for _ in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                         source_address=(ATTACKER, 0))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
            self.socks.append(s)
        self._t.start()
        return self

    def _renew(self):
        open_socks = list(self.socks)
        while not self._stop.wait(1.0):
            for s in list(open_socks):
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                    s.setblocking(False)
                    try:
                        gone = s.recv(1) == b""  # the server closed it
                    except BlockingIOError:
                        gone = False
                    s.setblocking(True)
                except OSError:
                    gone = True
                if gone:
                    open_socks.remove(s)
                    self.closed += 1

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)
        for s in self.socks:
            s.close()
        return False


def assert_probes_answer(port, rounds=8):
    """/healthz and /metrics answer from PROBER, round after round, while
    the slowloris keeps renewing (each get waits at most 10 s)."""
    for i in range(rounds):
        for path in ("/healthz", "/metrics"):
            status, body = get(port, path)
            assert status == 200, f"round {i}: {path} from {PROBER}: {body}"
        time.sleep(0.5)


def assert_same_address_answers_after_the_header_timeout(port, sl):
    # Renewed or not, half-sent requests are closed once they are older
    # than the header timeout (a few seconds); the attacker's own address
    # is then served again. Generous bounds for a loaded machine.
    assert wait_for(lambda: sl.closed == sl.n, timeout=40, interval=0.5), \
        f"{sl.n - sl.closed} of {sl.n} half-sent requests still open"
    status, body = get(port, "/healthz", source=ATTACKER)
    assert status == 200, body


def test_probes_answer_while_64_half_sent_requests_are_renewed(pg, proxy, config):
    p = proxy(config())
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    assert get(port, "/healthz")[0] == 200
    with Slowloris(port, 80) as sl:
        time.sleep(1.5)  # let the server take (or refuse) every one of them
        assert_probes_answer(port)
        assert_same_address_answers_after_the_header_timeout(port, sl)
        assert_probes_answer(port, rounds=2)
    assert get(port, "/metrics")[0] == 200


def test_control_plane_probes_answer_while_64_half_sent_requests_are_renewed(pg, config,
                                                                             tmp_path):
    admin = free_port()
    cfg = config(control_admin_address=f"127.0.0.1:{admin}",
                 control_address=f"ipc://{tmp_path}/cp.sock")
    path = tmp_path / "cp.toml"
    path.write_text(to_toml(cfg))
    log = open(tmp_path / "helios-cp.log", "ab")
    cp = subprocess.Popen([str(helios_bin() / "helios-cp"), "-c", str(path)], stdout=log,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: get(admin, "/healthz", timeout=2)[0] == 200, timeout=15), \
            (tmp_path / "helios-cp.log").read_text()
        with Slowloris(admin, 80) as sl:
            time.sleep(1.5)
            assert_probes_answer(admin)
            assert_same_address_answers_after_the_header_timeout(admin, sl)
    finally:
        cp.terminate()
        try:
            assert cp.wait(15) == 0, (tmp_path / "helios-cp.log").read_text()
        finally:
            if cp.poll() is None:
                cp.kill()
            log.close()
    text = (tmp_path / "helios-cp.log").read_text(errors="replace")
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in text, text
