"""The control socket lives in a private state directory: another local user
cannot stop the proxy from starting by creating the socket path first, nor
receive the proxy's or helioctl's connection; a state directory that is not
private is refused with a log line naming it."""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import free_port, helios_bin, run, wait_for
from test_control_plane import default_control_url

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


@pytest.fixture
def sock_dir():
    """A short folder: a Unix socket path must fit in 108 bytes, and
    pytest's own temporary folders (one per integration run) can be longer."""
    d = Path(tempfile.mkdtemp(prefix="hp-sock-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Squatter:
    """A listening Unix socket at path owned by uid NOBODY, as another local
    user would leave it; counts the connections it receives."""

    def __init__(self, path):
        self.path = str(path)
        self.accepted = 0
        self._s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._s.bind(self.path)
        os.chown(self.path, NOBODY, NOBODY)
        os.chmod(self.path, 0o777)
        self._s.listen(16)
        self._s.settimeout(0.2)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self._s.accept()
            except OSError:
                continue
            self.accepted += 1
            c.close()

    def close(self):
        self._stop.set()
        self._t.join(5)
        self._s.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def helioctl(*args, timeout_ms=3000):
    return run([str(helios_bin() / "helioctl"), "--timeout", str(timeout_ms), *args],
               check=False, timeout=30)


def test_socket_another_user_made_in_tmp_neither_blocks_the_start_nor_gets_the_probe(
        pg, proxy, config):
    port = free_port()
    sq = Squatter(f"/tmp/heliosproxy-{port}.ctl")  # the old default path
    try:
        p = proxy(config(), listen_address=f"127.0.0.1:{port}")
        url = default_control_url(port)
        assert p.wait_log(rf"helioctl reaches it at {url}"), p.log_tail()
        r = helioctl("-c", str(p.config_path), "status")
        assert r.returncode == 0, r
        sock = url[len("ipc://"):]
        st = os.lstat(sock)
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()
        assert stat.S_IMODE(st.st_mode) == 0o600
        d = os.lstat(os.path.dirname(sock))
        assert d.st_uid == os.geteuid() and not d.st_mode & 0o022, oct(d.st_mode)
        assert sq.accepted == 0, "the squatter's socket received a connection"
    finally:
        sq.close()


def test_control_socket_path_taken_by_another_user_is_refused_without_connecting(
        pg, proxy, config, sock_dir):
    # An explicit control_socket in a shared folder: the proxy refuses to
    # start rather than probe or replace another user's socket.
    sq = Squatter(sock_dir / "taken.ctl")
    try:
        p = proxy(config(control_socket=f"ipc://{sq.path}"), wait=False)
        p.check_exit = False
        assert p.wait(20) not in (None, 0), p.log_tail()
        assert p.wait_log(rf"{sq.path} is owned by uid {NOBODY}"), p.log_tail()
        assert sq.accepted == 0, "the proxy connected to another user's socket"
    finally:
        sq.close()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_state_dir_writable_by_others_is_refused_and_named(pg, proxy, config, sock_dir, mode):
    d = sock_dir / "state"
    d.mkdir()
    os.chmod(d, mode)
    p = proxy(config(state_dir=str(d)), wait=False)
    p.check_exit = False
    assert p.wait(20) not in (None, 0), p.log_tail()
    assert p.wait_log(rf"state directory {d} is writable by .*refusing it"), p.log_tail()


def test_state_dir_owned_by_another_user_is_refused_and_named(pg, proxy, config, sock_dir):
    d = sock_dir / "state"
    d.mkdir(mode=0o700)
    os.chown(d, NOBODY, NOBODY)
    p = proxy(config(state_dir=str(d)), wait=False)
    p.check_exit = False
    assert p.wait(20) not in (None, 0), p.log_tail()
    assert p.wait_log(rf"state directory {d} is owned by uid {NOBODY}, not uid 0"), \
        p.log_tail()
    # helioctl refuses the directory as well
    r = helioctl("-c", str(p.config_path), "status")
    assert r.returncode == 3 and f"state directory {d} is owned by uid {NOBODY}" in r.stderr, r


def test_missing_state_dir_is_created_private_and_helioctl_finds_the_socket(
        pg, proxy, config, sock_dir):
    d = sock_dir / "fresh"
    p = proxy(config(state_dir=str(d)))
    st = os.lstat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert (d / f"heliosproxy-{p.port}.ctl").is_socket()
    r = helioctl("-c", str(p.config_path), "status")
    assert r.returncode == 0, r


def test_helioctl_refuses_a_socket_owned_by_another_user(sock_dir):
    sq = Squatter(sock_dir / "cp.sock")
    try:
        r = helioctl("-a", f"ipc://{sq.path}", "status")
        assert r.returncode == 3, r
        assert f"{sq.path} is owned by uid {NOBODY}" in r.stderr, r.stderr
        assert sq.accepted == 0, "helioctl connected to another user's socket"
    finally:
        sq.close()


SP_SQUATTER = r'''
import socket, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
open(out + ".ready", "w").close()
s.settimeout(20)
c, _ = s.accept()
c.sendall(b"\x00SP\x00\x00\x31\x00\x00")  # nng's SP header: a REP0 socket
c.settimeout(3)
got = b""
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += b
except OSError:
    pass
open(out, "w").write(str(len(got)))
'''


def test_helioctl_sends_nothing_to_a_control_socket_served_by_another_user():
    # The socket file is root's (as if chowned), but the process behind it
    # runs as another user and speaks nng's handshake: the connection must
    # close before helioctl's request is sent.
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:
        d = Path(shared)
        os.chmod(d, 0o777)  # a folder another user can write, like /tmp
        sock, out = d / "cp.sock", d / "received"
        proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                 "--clear-groups", "/usr/bin/python3", "-c", SP_SQUATTER,
                                 str(sock), str(out)])
        try:
            assert wait_for(lambda: (d / "received.ready").exists(), timeout=10)
            os.chown(sock, 0, 0)
            r = helioctl("-a", f"ipc://{sock}", "status", timeout_ms=3000)
            assert r.returncode == 3, r
            assert proc.wait(30) == 0
            # the 8-byte SP header is all it may have seen: no request
            assert int(out.read_text()) <= 8, out.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
