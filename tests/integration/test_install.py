"""make install into a DESTDIR, and the systemd integration (issue 17, item 5).

The installed tree: `make install PREFIX=/usr DESTDIR=<tmp>` (the release
build), whose programs run from there, whose man pages render without a
groff warning, whose units pass `systemd-analyze verify`, and which
`make uninstall` removes again.

sd_notify readiness: heliosproxy and helios-cp (HELIOS_BIN, so the ASan
build too) with NOTIFY_SOCKET set to a unix datagram socket this test binds,
as systemd does for Type=notify units.
"""

import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (ALICE, APPDB, ROOT, free_port, helios_bin, io_backend, make_config,
                      port_accepts, run, sanitizer_report, to_toml)

PREFIX = "/usr"
PAGES = ["man1/helioctl.1", "man5/heliosproxy.toml.5", "man8/heliosproxy.8",
         "man8/helios-cp.8"]
UNITS = ["heliosproxy.service", "helios-cp.service"]


def make(*args, timeout=900):
    # not the MODE=... of a make integration this runs under (MAKEFLAGS)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return run(["make", "--no-print-directory", "-C", str(ROOT), *args], timeout=timeout, env=env)


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("destdir")
    make("install", f"PREFIX={PREFIX}", f"DESTDIR={d}")
    return d


def installed(destdir, path):
    return destdir / path.lstrip("/")


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if not p.is_dir())


def test_install_puts_programs_pages_units_and_example_config_under_destdir(destdir):
    files = set(files_under(destdir))
    want = {"usr/sbin/heliosproxy", "usr/sbin/helios-cp", "usr/bin/helioctl",
            "usr/lib/systemd/system/heliosproxy.service",
            "usr/lib/systemd/system/helios-cp.service",
            "usr/lib/sysusers.d/heliosproxy.conf",
            "usr/share/doc/heliosproxy/examples/bpf-fastpath.conf",
            "etc/heliosproxy/heliosproxy.toml.example",
            *(f"usr/share/man/{p}" for p in PAGES)}
    assert want <= files, sorted(want - files)
    # nothing outside DESTDIR's /usr and /etc, and no live config written
    assert all(f.startswith(("usr/", "etc/")) for f in files), files
    assert "etc/heliosproxy/heliosproxy.toml" not in files
    for prog in ("usr/sbin/heliosproxy", "usr/sbin/helios-cp", "usr/bin/helioctl"):
        assert os.access(destdir / prog, os.X_OK), prog
    # the units start the installed programs with the installed config path
    unit = installed(destdir, "/usr/lib/systemd/system/heliosproxy.service").read_text()
    assert "ExecStart=/usr/sbin/heliosproxy -c /etc/heliosproxy/heliosproxy.toml\n" in unit
    assert "@" not in unit.replace("@system-service", "")


def test_install_puts_the_bash_completion_helioctl_prints_where_bash_completion_looks(destdir):
    ctl = str(installed(destdir, "/usr/bin/helioctl"))
    comp = installed(destdir, "/usr/share/bash-completion/completions/helioctl")
    r = subprocess.run([ctl, "--completion", "bash"], capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        assert comp.read_text() == r.stdout
    else:  # a helioctl without --completion: nothing installed in its place
        assert not comp.exists()


def test_installed_programs_print_their_version(destdir):
    version = run([str(helios_bin() / "heliosproxy"), "--version"]).stdout.split()[1]
    for prog in ("usr/sbin/heliosproxy", "usr/sbin/helios-cp", "usr/bin/helioctl"):
        out = run([str(destdir / prog), "--version"]).stdout
        assert version in out, (prog, out)


def test_installed_example_config_passes_check_config(destdir):
    example = installed(destdir, "/etc/heliosproxy/heliosproxy.toml.example")
    r = run([str(installed(destdir, "/usr/sbin/heliosproxy")), "--check-config", str(example)])
    assert "configuration is valid" in r.stdout
    # and the unit's state directory is the example's state_dir
    assert 'state_dir = "/var/lib/heliosproxy"' in example.read_text()
    unit = installed(destdir, "/usr/lib/systemd/system/heliosproxy.service").read_text()
    assert "StateDirectory=heliosproxy\n" in unit


def test_installed_heliosproxy_serves_a_psql_query(destdir, pg, tmp_path, short_dir):
    port, admin = free_port(), free_port()
    cfg = make_config(pg, listen_address=f"127.0.0.1:{port}", admin_address=f"127.0.0.1:{admin}",
                      workers=1, io_backend=io_backend(), shutdown_timeout_secs=5,
                      state_dir=str(short_dir / "state"))
    path = tmp_path / "heliosproxy.toml"
    path.write_text(to_toml(cfg))
    log = tmp_path / "heliosproxy.log"
    proc = subprocess.Popen([str(installed(destdir, "/usr/sbin/heliosproxy")), "-c", str(path)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        r = run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
                 "-d", APPDB, "-c", "SELECT 40 + 2, current_user"],
                env=dict(os.environ, PGPASSWORD=ALICE[1], PGCONNECT_TIMEOUT="10"))
        assert r.stdout.strip() == "42|alice"
        # the installed helioctl finds the installed proxy's control socket
        r = run([str(installed(destdir, "/usr/bin/helioctl")), "-c", str(path), "nodes"])
        assert "primary" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()


@pytest.mark.parametrize("page", PAGES)
def test_installed_man_page_renders_without_warnings(destdir, page):
    path = destdir / "usr/share/man" / page
    r = run(["man", "--warnings", "-l", str(path)], env=dict(os.environ, MANWIDTH="80"))
    assert r.stderr == "", r.stderr
    name = Path(page).name.rsplit(".", 1)[0]
    assert name.upper() in r.stdout.splitlines()[0].replace("\u2010", "-")
    # every page is more than its header: the sections were rendered
    assert "DESCRIPTION" in r.stdout and "SEE ALSO" in r.stdout


def test_config_man_page_lists_every_key_of_the_configuration_docs(destdir):
    """heliosproxy.toml(5) comes from the same table as docs/configuration.md."""
    import re
    doc = (ROOT / "docs" / "configuration.md").read_text()
    keys = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc, re.M))
    assert len(keys) > 50
    page = (destdir / "usr/share/man/man5/heliosproxy.toml.5").read_text()
    listed = set(re.findall(r"^\.B ([a-z0-9_]+)$", page, re.M))
    assert keys == listed, (sorted(keys - listed), sorted(listed - keys))


def test_program_man_pages_carry_the_current_help_text(destdir):
    help_text = run([str(helios_bin() / "helioctl"), "--help"]).stdout
    page = run(["man", "-l", str(destdir / "usr/share/man/man1/helioctl.1")],
               env=dict(os.environ, MANWIDTH="200")).stdout
    for line in help_text.splitlines():
        if line.strip():
            assert line.strip() in page, line


def verify(unit_path, destdir):
    """systemd-analyze verify on unit_path, with the /usr paths the unit names
    moved under DESTDIR (verify checks that ExecStart= is executable and runs
    man for Documentation=)."""
    r = subprocess.run(["systemd-analyze", "verify", str(unit_path)], capture_output=True,
                       text=True, timeout=60,
                       env=dict(os.environ, MANPATH=str(destdir / "usr/share/man")))
    return r.returncode, (r.stdout + r.stderr).strip()


@pytest.mark.parametrize("unit", UNITS)
def test_installed_unit_passes_systemd_analyze_verify(destdir, tmp_path, unit):
    text = installed(destdir, f"/usr/lib/systemd/system/{unit}").read_text()
    assert "Type=notify\n" in text and "ExecReload=/bin/kill -HUP $MAINPID\n" in text
    local = tmp_path / unit
    local.write_text(text.replace("/usr/sbin/", f"{destdir}/usr/sbin/"))
    rc, out = verify(local, destdir)
    assert rc == 0 and out == "", out
    # the check is real: a misspelt key and a missing program fail it
    local.write_text(text.replace("/usr/sbin/", f"{destdir}/usr/sbin/")
                     .replace("ProtectHome=", "ProtectHomes="))
    rc, out = verify(local, destdir)
    assert "Unknown key" in out and "ProtectHomes" in out
    local.write_text(text.replace("/usr/sbin/", "/nonexistent/sbin/"))
    rc, out = verify(local, destdir)
    assert rc != 0 and "not executable" in out, out


def test_bpf_drop_in_applied_to_the_unit_passes_systemd_analyze_verify(destdir, tmp_path):
    """The drop-in's keys are valid on top of heliosproxy.service (a drop-in
    is more [Service] lines after the unit's)."""
    text = installed(destdir, "/usr/lib/systemd/system/heliosproxy.service").read_text()
    drop = installed(destdir, "/usr/share/doc/heliosproxy/examples/bpf-fastpath.conf").read_text()
    assert "AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON" in drop
    local = tmp_path / "heliosproxy.service"
    local.write_text(text.replace("/usr/sbin/", f"{destdir}/usr/sbin/") + "\n" + drop)
    rc, out = verify(local, destdir)
    assert rc == 0 and out == "", out


def test_uninstall_removes_every_installed_file(tmp_path):
    d = tmp_path / "root"
    make("install", f"PREFIX={PREFIX}", f"DESTDIR={d}")
    before = files_under(d)
    assert len(before) >= 12
    # the operator's config stays
    (d / "etc/heliosproxy/heliosproxy.toml").write_text("# mine\n")
    make("uninstall", f"PREFIX={PREFIX}", f"DESTDIR={d}")
    assert files_under(d) == ["etc/heliosproxy/heliosproxy.toml"]


def test_install_strip_installs_programs_without_symbols_that_still_run(destdir, tmp_path):
    d = tmp_path / "root"
    make("install-strip", f"PREFIX={PREFIX}", f"DESTDIR={d}")
    for prog in ("usr/sbin/heliosproxy", "usr/sbin/helios-cp", "usr/bin/helioctl"):
        sections = run(["readelf", "-S", str(d / prog)]).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, prog
        run([str(d / prog), "--version"])
    # make install keeps them (the release build has -g, for debuggers and
    # packagers' own stripping)
    assert ".symtab" in run(["readelf", "-S", str(destdir / "usr/bin/helioctl")]).stdout


def test_install_keeps_an_existing_config(tmp_path):
    d = tmp_path / "root"
    (d / "etc/heliosproxy").mkdir(parents=True)
    (d / "etc/heliosproxy/heliosproxy.toml").write_text("# mine\n")
    make("install", f"PREFIX={PREFIX}", f"DESTDIR={d}")
    assert (d / "etc/heliosproxy/heliosproxy.toml").read_text() == "# mine\n"
    assert (d / "etc/heliosproxy/heliosproxy.toml.example").exists()


# ---------------------------------------------------------------------------
# The unit's SystemCallFilter= applied without systemd: the same syscall list
# (systemd-analyze expands the @groups), the same EPERM for anything else
# (SystemCallErrorNumber=), loaded with libseccomp by seccomp_exec.py.

_groups = {}


def expand_syscalls(name):
    if not name.startswith("@"):
        return {name}
    if name not in _groups:
        out = run(["systemd-analyze", "syscall-filter", name]).stdout.splitlines()
        names = set()
        for line in out[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                names |= expand_syscalls(line)
        _groups[name] = names
    return _groups[name]


def unit_seccomp_profile(unit_text, path, without=()):
    """An OCI seccomp profile with the unit's SystemCallFilter= allow list."""
    import json
    allowed = set()
    for line in unit_text.splitlines():
        if line.startswith("SystemCallFilter="):
            for word in line.split("=", 1)[1].split():
                allowed |= expand_syscalls(word)
    allowed -= set(without)
    rules = []
    if "\nMemoryDenyWriteExecute=yes\n" in unit_text:
        # what systemd's MemoryDenyWriteExecute= filters: no mapping both
        # writable and executable, no mprotect() that adds PROT_EXEC
        prot_write, prot_exec = 2, 4
        allowed -= {"mmap", "mprotect", "pkey_mprotect"}

        def arg2_without(bit):
            return [{"index": 2, "value": bit, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]

        rules += [{"names": ["mmap"], "action": "SCMP_ACT_ALLOW", "args": arg2_without(bit)}
                  for bit in (prot_write, prot_exec)]
        rules.append({"names": ["mprotect", "pkey_mprotect"], "action": "SCMP_ACT_ALLOW",
                      "args": arg2_without(prot_exec)})
    rules.append({"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"})
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                                "syscalls": rules}))
    return path


def test_emulated_unit_filter_refuses_what_the_unit_refuses(destdir, tmp_path):
    """The profile the next test runs the proxy under is not a no-op: a
    writable+executable mapping (MemoryDenyWriteExecute=) and a syscall
    outside @system-service (bpf) fail with EPERM under it."""
    unit = installed(destdir, "/usr/lib/systemd/system/heliosproxy.service").read_text()
    profile = unit_seccomp_profile(unit, tmp_path / "seccomp.json")
    probe = ("import ctypes, mmap, os\n"
             "try:\n"
             "    mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
             "    print('wx-mapped')\n"
             "except OSError as e:\n"
             "    print('wx', e.errno)\n"
             "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             "r = libc.syscall(321, 0, 0, 0)  # bpf(2) on x86_64\n"
             "print('bpf', ctypes.get_errno() if r < 0 else 'ok')\n")
    if os.uname().machine != "x86_64":
        pytest.skip("the probe calls bpf(2) by its x86_64 number")
    r = run([sys.executable, str(Path(__file__).with_name("seccomp_exec.py")), str(profile), "--",
             sys.executable, "-c", probe])
    assert r.stdout.split("\n")[:2] == [f"wx {errno.EPERM}", f"bpf {errno.EPERM}"], r.stdout


def io_uring_enabled():
    try:
        return Path("/proc/sys/kernel/io_uring_disabled").read_text().strip() == "0"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("filtered_out", [(), ("io_uring_setup", "io_uring_enter",
                                                "io_uring_register")],
                         ids=["unit-filter", "unit-filter-without-io_uring"])
def test_unit_syscall_filter_lets_installed_heliosproxy_serve_on_io_uring(
        destdir, pg, tmp_path, filtered_out, short_dir):
    """The unit's filter is what lets io_uring through: with it the installed
    proxy serves on io_uring; without the three io_uring calls it logs why and
    serves on epoll."""
    if not io_uring_enabled():
        pytest.skip("io_uring is disabled on this kernel (kernel.io_uring_disabled)")
    unit = installed(destdir, "/usr/lib/systemd/system/heliosproxy.service").read_text()
    profile = unit_seccomp_profile(unit, tmp_path / "seccomp.json", filtered_out)
    port = free_port()
    cfg = make_config(pg, listen_address=f"127.0.0.1:{port}", admin_address="", workers=1,
                      io_backend="io_uring", shutdown_timeout_secs=5,
                      state_dir=str(short_dir / "state"))
    path = tmp_path / "heliosproxy.toml"
    path.write_text(to_toml(cfg))
    log = tmp_path / "heliosproxy.log"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("seccomp_exec.py")),
                             str(profile), "--", str(installed(destdir, "/usr/sbin/heliosproxy")),
                             "-c", str(path)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        r = run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", ALICE[0],
                 "-d", APPDB, "-c", "SELECT 1"],
                env=dict(os.environ, PGPASSWORD=ALICE[1], PGCONNECT_TIMEOUT="10"))
        assert r.stdout.strip() == "1"
        text = log.read_text()
        if filtered_out:
            assert "io_uring cannot be set up (Operation not permitted): using epoll" in text, text
            assert "1 workers, epoll" in text, text
        else:
            assert "1 workers, io_uring" in text, text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()


# ---------------------------------------------------------------------------
# sd_notify

class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET, with the sender's pid from
    SCM_CREDENTIALS (systemd's NotifyAccess=main checks it the same way)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="h-notify-", dir="/tmp")  # sun_path is short
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)

    def recv(self, timeout=20.0):
        """(fields dict, sender pid), or None after timeout."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        return fields, pid

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def start_notified(args, notify, log):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    return subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def expect(notify, proc, log, key, timeout=20.0):
    got = notify.recv(timeout)
    assert got is not None, f"no {key} within {timeout} s; log:\n{log.read_text()}"
    fields, pid = got
    assert fields.get(key) == "1", (key, fields)
    assert pid == proc.pid, f"{key} sent by pid {pid}, not the main process {proc.pid}"
    return fields


def check_log(log):
    report = sanitizer_report(log.read_text(errors="replace"))
    assert report is None, report


def reload_fails_then_recovers(proc, notify, log, path):
    """A SIGHUP with a bad file: READY=1 again (the old configuration keeps
    serving, systemd leaves the reloading state) with a STATUS= that says the
    reload failed, until a reload succeeds."""
    good = path.read_text()
    path.write_text(good + "\nno_such_key = 1\n")
    proc.send_signal(signal.SIGHUP)
    expect(notify, proc, log, "RELOADING")
    fields = expect(notify, proc, log, "READY")
    assert "the last reload failed" in fields.get("STATUS", ""), fields
    path.write_text(good)
    proc.send_signal(signal.SIGHUP)
    expect(notify, proc, log, "RELOADING")
    fields = expect(notify, proc, log, "READY")
    assert "failed" not in fields.get("STATUS", ""), fields


def test_heliosproxy_notifies_ready_after_it_listens_then_reloading_and_stopping(
        pg, notify, tmp_path, short_dir):
    port, admin = free_port(), free_port()
    cfg = make_config(pg, listen_address=f"127.0.0.1:{port}", admin_address=f"127.0.0.1:{admin}",
                      workers=2, io_backend=io_backend(), shutdown_timeout_secs=5,
                      state_dir=str(short_dir / "state"))
    path = tmp_path / "heliosproxy.toml"
    path.write_text(to_toml(cfg))
    log = tmp_path / "heliosproxy.log"
    proc = start_notified([str(helios_bin() / "heliosproxy"), "-c", str(path)], notify, log)
    try:
        fields = expect(notify, proc, log, "READY")
        # sent once the listeners are bound: both ports accept right now
        assert port_accepts(port) and port_accepts(admin), log.read_text()
        assert f"listening on 127.0.0.1:{port}" in fields.get("STATUS", ""), fields
        # SIGHUP: RELOADING=1 (with the time systemd >= 253 wants), then READY=1
        proc.send_signal(signal.SIGHUP)
        fields = expect(notify, proc, log, "RELOADING")
        assert int(fields["MONOTONIC_USEC"]) > 0
        fields = expect(notify, proc, log, "READY")
        assert "failed" not in fields.get("STATUS", ""), fields
        assert port_accepts(port)
        reload_fails_then_recovers(proc, notify, log, path)
        # SIGTERM: STOPPING=1 when the drain starts, then exit 0
        proc.send_signal(signal.SIGTERM)
        fields = expect(notify, proc, log, "STOPPING")
        assert "draining" in fields.get("STATUS", "")
        assert proc.wait(15) == 0, log.read_text()
        assert notify.recv(0.2) is None  # nothing after STOPPING
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    check_log(log)


def test_heliosproxy_without_a_readable_config_never_notifies_ready(notify, tmp_path):
    log = tmp_path / "heliosproxy.log"
    proc = start_notified([str(helios_bin() / "heliosproxy"), "-c", str(tmp_path / "missing.toml")],
                          notify, log)
    assert proc.wait(15) == 1
    assert notify.recv(0.5) is None
    check_log(log)


def test_helios_cp_notifies_ready_after_it_listens_then_reloading_and_stopping(
        pg, notify, tmp_path, short_dir):
    sock = short_dir / "cp.sock"
    admin = free_port()
    cfg = make_config(pg, control_address=f"ipc://{sock}",
                      control_admin_address=f"127.0.0.1:{admin}",
                      state_dir=str(short_dir / "state"))
    path = tmp_path / "helios-cp.toml"
    path.write_text(to_toml(cfg))
    log = tmp_path / "helios-cp.log"
    proc = start_notified([str(helios_bin() / "helios-cp"), "-c", str(path)], notify, log)
    try:
        expect(notify, proc, log, "READY")
        assert sock.exists() and port_accepts(admin), log.read_text()
        proc.send_signal(signal.SIGHUP)
        expect(notify, proc, log, "RELOADING")
        expect(notify, proc, log, "READY")
        reload_fails_then_recovers(proc, notify, log, path)
        proc.send_signal(signal.SIGTERM)
        expect(notify, proc, log, "STOPPING")
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    check_log(log)
