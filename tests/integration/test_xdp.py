"""The XDP admission filter (docs/xdp.md) on a veth pair made for each test:
heliosproxy listens on the host side, clients run in a network namespace
on the other side from two addresses, so one can be denied while the other
is served. Needs root (namespaces, XDP) and a build with BPF; the traffic
stays in the namespace and on the pair."""

import json
import os
import random
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ALICE, APPDB, free_port, helioctl, run, wait_for
from test_control_plane import parse_strictly

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"

# Runs in the namespace: connects from a chosen source address. Argument:
# JSON {src, host, port, connects, timeout, session, sql}. With session, a
# login and sql first, then the connects, then sql again on that session.
# Prints JSON {connects: ["ok"|"timeout"|error], rows, rows_after, error}.
NS_CLIENT = r"""
import json, socket, sys, time
sys.path.insert(0, sys.argv[2])
import pgwire

a = json.loads(sys.argv[1])
out = {"connects": [], "rows": None, "rows_after": None, "error": None}

def session():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((a["src"], 0))
    s.settimeout(a["timeout"])
    s.connect((a["host"], a["port"]))
    c = pgwire.Conn.__new__(pgwire.Conn)
    c.sock, c.timeout, c.buf = s, 10.0, b""
    res = c.startup(a["user"], a["db"], password=a["password"])
    if not res.ok:
        raise RuntimeError(f"login failed: {res!r}")
    return c

try:
    c = session() if a["session"] else None
    if c:
        out["rows"] = c.query(a["sql"])
    for _ in range(a["connects"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((a["src"], 0))
        s.settimeout(a["timeout"])
        try:
            s.connect((a["host"], a["port"]))
            out["connects"].append("ok")
        except socket.timeout:
            out["connects"].append("timeout")
        except OSError as e:
            out["connects"].append(str(e))
        finally:
            s.close()
    if c:
        out["rows_after"] = c.query(a["sql"])
        c.terminate()
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


class Net:
    """A namespace and a veth pair: host side HOST_IP (.1), namespace side
    with DENIED (.2) and ALLOWED (.3)."""

    def __init__(self):
        r = random.randrange(1 << 16)
        tag = f"{os.getpid() % 1000}{r % 1000}"
        self.ns = f"hpxdp{tag}"
        self.host_if = f"hpx{tag}h"
        self.peer_if = f"hpx{tag}n"
        net = f"10.{200 + r % 50}.{r >> 8}"
        self.host_ip, self.denied, self.allowed = f"{net}.1", f"{net}.2", f"{net}.3"

    def up(self):
        sh = lambda *c: run(list(c), timeout=20)
        nse = ["ip", "netns", "exec", self.ns]
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        sh("ip", "link", "set", self.peer_if, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh(*nse, "ip", "addr", "add", f"{self.denied}/24", "dev", self.peer_if)
        sh(*nse, "ip", "addr", "add", f"{self.allowed}/24", "dev", self.peer_if)
        sh(*nse, "ip", "link", "set", self.peer_if, "up")
        sh(*nse, "ip", "link", "set", "lo", "up")

    def down(self):
        run(["ip", "netns", "del", self.ns], check=False)  # takes the pair with it
        run(["ip", "link", "del", self.host_if], check=False)

    def client(self, src, port, connects=0, timeout=1.0, session=False, sql="SELECT 1"):
        arg = {"src": src, "host": self.host_ip, "port": port, "connects": connects,
               "timeout": timeout, "session": session, "sql": sql, "user": ALICE[0],
               "password": ALICE[1], "db": APPDB}
        r = run(["ip", "netns", "exec", self.ns, PY, "-c", NS_CLIENT, json.dumps(arg), str(HERE)],
                timeout=60)
        return json.loads(r.stdout)

    def query(self, src, port):
        """Logs in from src and runs SELECT 1; the rows, or the error text."""
        out = self.client(src, port, session=True, timeout=3.0)
        return out["rows"] if out["error"] is None else out["error"]

    def connect(self, src, port, timeout=1.0):
        """One TCP connect from src: "ok", "timeout" or the error."""
        return self.client(src, port, connects=1, timeout=timeout)["connects"][0]

    def xdp_on_link(self):
        """What `ip -d link show` says of XDP on the host side: (mode word, program id)."""
        out = run(["ip", "-d", "link", "show", "dev", self.host_if]).stdout
        m = re.search(r" mtu \d+ (xdpgeneric|xdpdrv|xdpoffload|xdp) ", out)
        pid = re.search(r"prog/xdp id (\d+)", out)
        return (m.group(1) if m else None), (int(pid.group(1)) if pid else None)


@pytest.fixture
def net():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and XDP")
    if not os.path.exists("/usr/sbin/ip") and not os.path.exists("/sbin/ip"):
        pytest.skip("iproute2 (ip) is not installed")
    n = Net()
    try:
        n.up()
    except AssertionError as e:
        n.down()
        pytest.skip(f"cannot make a network namespace and a veth pair here: {e}")
    yield n
    n.down()


def start(proxy, config, net, **xdp):
    """heliosproxy on the host side of net with [xdp] on it (generic mode,
    the proxy's port filtered, plus xdp); waits until it accepts there."""
    port = free_port()
    section = {"enabled": True, "interface": net.host_if, "mode": "generic", "ports": str(port)}
    section.update(xdp)
    p = proxy(config(mode="transaction", xdp=section), wait=False,
              listen_address=f"{net.host_ip}:{port}")
    deadline = time.monotonic() + 20
    while True:
        m = p.wait_log(r"xdp: (filter attached.*|.*not active)$", timeout=0.2)
        if m and "no BPF support" in m.group(0):
            pytest.skip("this build has no BPF support")
        assert p.running(), p.log_tail()
        try:
            with socket.create_connection((net.host_ip, port), timeout=0.5):
                break
        except OSError:
            assert time.monotonic() < deadline, p.log_tail()
            time.sleep(0.05)
    assert p.wait_log(r"xdp: filter attached to " + net.host_if, timeout=5), p.log_tail()
    return p, port


def metrics(p):
    admin = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
        return parse_strictly(r.read().decode())


def xdp_status(p):
    out = helioctl(p, "xdp").stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def deny_list(p):
    """CIDR -> (source, drops) from helioctl xdp deny list."""
    rows = helioctl(p, "xdp", "deny", "list").stdout.splitlines()[1:]
    return {c: (s, int(d)) for c, s, d in (r.split() for r in rows)}


# ---------------------------------------------------------------------------

def test_denied_source_cannot_connect_while_allowed_source_runs_a_query(proxy, config, net):
    p, port = start(proxy, config, net, deny=f"{net.denied}/32")
    assert net.connect(net.denied, port) == "timeout"
    assert net.query(net.allowed, port) == [["1"]]
    # the interface shows the program, in generic mode
    mode, prog = net.xdp_on_link()
    assert mode == "xdpgeneric" and prog, run(["ip", "-d", "link", "show", net.host_if]).stdout
    st = xdp_status(p)
    assert (st["attached"], st["interface"], st["mode"]) == ("yes", net.host_if, "generic"), st
    assert int(st["program id"]) == prog
    source, drops = deny_list(p)[f"{net.denied}/32"]
    assert source == "config" and drops >= 1
    m = metrics(p)
    assert m["helios_xdp_attached"] == 1
    assert m['helios_xdp_packets_total{verdict="deny"}'] >= 1
    assert m['helios_xdp_packets_total{verdict="pass"}'] >= 5  # the allowed session
    assert m["helios_xdp_syn_total"] >= 1
    assert m["helios_xdp_deny_entries"] == 1


def test_runtime_deny_add_and_del_take_effect_live(proxy, config, net):
    p, port = start(proxy, config, net)
    assert net.connect(net.allowed, port) == "ok"
    assert helioctl(p, "xdp", "deny", "list").stdout.splitlines() == ["CIDR  SOURCE  DROPS"]

    r = helioctl(p, "xdp", "deny", "add", f"{net.allowed}")
    assert f"denied {net.allowed}/32" in r.stdout, r
    before = metrics(p)['helios_xdp_packets_total{verdict="deny"}']
    assert net.connect(net.allowed, port) == "timeout"
    assert net.connect(net.denied, port) == "ok"  # the other address is not in the list
    assert deny_list(p)[f"{net.allowed}/32"][0] == "runtime"
    assert deny_list(p)[f"{net.allowed}/32"][1] >= 1
    m = metrics(p)
    assert m['helios_xdp_packets_total{verdict="deny"}'] > before
    assert m["helios_xdp_deny_entries"] == 1

    helioctl(p, "xdp", "deny", "del", f"{net.allowed}/32")
    assert net.query(net.allowed, port) == [["1"]]
    assert metrics(p)["helios_xdp_deny_entries"] == 0

    # errors are one line with the reason, exit 1
    r = helioctl(p, "xdp", "deny", "add", "10.0.0.1/8", check=1)
    assert r.stderr.strip() == "helioctl: '10.0.0.1/8' has address bits set past the prefix length"
    r = helioctl(p, "xdp", "deny", "del", "192.0.2.0/24", check=1)
    assert r.stderr.strip() == "helioctl: 192.0.2.0/24 is not in the deny list"
    helioctl(p, "xdp", "deny", "frob", check=2)


def test_syn_rate_limit_drops_syns_beyond_the_burst(proxy, config, net):
    p, port = start(proxy, config, net)
    prog = net.xdp_on_link()[1]
    # a rate change updates the maps; the program stays attached as it was
    helioctl(p, "config", "set", "xdp.syn_rate_per_sec", "1")
    helioctl(p, "config", "set", "xdp.syn_burst", "4")
    assert net.xdp_on_link() == ("xdpgeneric", prog)
    st = xdp_status(p)
    assert st["syn rate"] == "1/s per source, burst 4", st
    before = metrics(p)

    # one session (1 SYN), then 5 quick connects: 3 fit in the burst, the
    # rest are dropped (a token comes back every second, each try waits
    # 0.2 s); the session's own packets are not SYNs and keep flowing
    out = net.client(net.allowed, port, connects=5, timeout=0.2, session=True)
    assert out["error"] is None, out
    assert out["connects"] == ["ok"] * 3 + ["timeout"] * 2, out
    assert out["rows"] == [["1"]] and out["rows_after"] == [["1"]], out
    # another source has its own bucket
    assert net.connect(net.denied, port) == "ok"

    after = metrics(p)
    assert after['helios_xdp_packets_total{verdict="syn_rate"}'] - \
        before['helios_xdp_packets_total{verdict="syn_rate"}'] == 2
    assert after["helios_xdp_syn_total"] - before["helios_xdp_syn_total"] == 7
    assert int(xdp_status(p)["packets over syn rate"]) == 2


def test_mode_change_reattaches_and_disabling_detaches(proxy, config, net):
    p, port = start(proxy, config, net, deny=f"{net.denied}/32")
    assert net.xdp_on_link()[0] == "xdpgeneric"

    # native mode: detached from generic, attached in the driver (veth has it)
    helioctl(p, "config", "set", "xdp.mode", "native")
    mode, prog = net.xdp_on_link()
    assert mode == "xdp" and prog, run(["ip", "-d", "link", "show", net.host_if]).stdout
    assert xdp_status(p)["mode"] == "native"
    assert net.connect(net.denied, port) == "timeout"
    assert net.connect(net.allowed, port) == "ok"

    # disabled: nothing left on the interface, no xdp families in /metrics
    r = helioctl(p, "config", "set", "xdp.enabled", "false")
    assert "xdp.enabled = false" in r.stdout
    assert net.xdp_on_link() == (None, None)
    assert not any(k.startswith("helios_xdp_") for k in metrics(p))
    assert net.connect(net.denied, port) == "ok"
    r = helioctl(p, "xdp", "deny", "list", check=1)
    assert r.stderr.strip() == "helioctl: xdp is not enabled (set xdp.enabled and xdp.interface)"
    assert helioctl(p, "xdp").stdout.startswith("enabled: no")

    # enabled again, then the proxy stops: it takes the program with it
    helioctl(p, "config", "set", "xdp.enabled", "true")
    assert net.xdp_on_link()[0] == "xdp"
    assert net.connect(net.denied, port) == "timeout"
    p.stop()
    assert p.wait_log(r"xdp: filter detached from " + net.host_if, timeout=1), p.log_tail()
    assert net.xdp_on_link() == (None, None)


def test_attach_failure_is_reported_and_the_proxy_keeps_running(proxy, config, net):
    port = free_port()
    p = proxy(config(mode="transaction",
                     xdp={"enabled": True, "interface": "hpxnosuch0", "mode": "generic"}),
              listen_address=f"127.0.0.1:{port}")
    if p.wait_log(r"no BPF support", timeout=1):
        pytest.skip("this build has no BPF support")
    assert p.wait_log(r"error xdp: cannot attach to hpxnosuch0: No such device; "
                      r"the filter is not active", timeout=5), p.log_tail()
    with p.connect() as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    st = xdp_status(p)
    assert st["attached"] == "no" and "No such device" in st["error"], st
    assert metrics(p)["helios_xdp_attached"] == 0
    # pointing it at a real interface attaches it
    r = helioctl(p, "config", "set", "xdp.interface", net.host_if)
    assert "warning" not in r.stdout, r
    assert net.xdp_on_link()[0] == "xdpgeneric"
    assert xdp_status(p)["attached"] == "yes"


def test_pinned_deny_list_keeps_runtime_prefixes_across_a_restart(proxy, config, net, tmp_path):
    """With xdp.pin_dir on a BPF file system (the fast-path DaemonSet mounts
    /sys/fs/bpf), a prefix added with helioctl and its drop count outlive
    the process (a rolling update), while the xdp.deny prefixes follow the
    next process's config."""
    pins = tmp_path / "bpffs"
    pins.mkdir()
    if run(["mount", "-t", "bpf", "bpf", str(pins)], check=False).returncode != 0:
        pytest.skip("cannot mount a BPF file system here")
    try:
        pin_dir = str(pins / "heliosproxy")
        p, port = start(proxy, config, net, deny=f"{net.denied}/32", pin_dir=pin_dir)
        assert p.wait_log(r"xdp: deny list pinned at .*; 0 runtime prefixes kept", timeout=5)
        helioctl(p, "xdp", "deny", "add", net.allowed)
        assert net.connect(net.allowed, port) == "timeout"
        source, drops = deny_list(p)[f"{net.allowed}/32"]
        assert source == "runtime" and drops >= 1
        assert os.path.exists(os.path.join(pin_dir, "deny"))
        p.stop()

        # the next process, whose config no longer denies net.denied
        p2, port2 = start(proxy, config, net, pin_dir=pin_dir)
        assert p2.wait_log(r"xdp: deny list pinned at .*; 1 runtime prefix kept", timeout=5)
        listed = deny_list(p2)
        assert listed[f"{net.allowed}/32"][0] == "runtime"
        assert listed[f"{net.allowed}/32"][1] >= drops  # the count went on
        assert f"{net.denied}/32" not in listed
        assert net.connect(net.allowed, port2) == "timeout"
        assert net.query(net.denied, port2) == [["1"]]

        # deleting it deletes it from the pin too
        helioctl(p2, "xdp", "deny", "del", f"{net.allowed}/32")
        p2.stop()
        p3, port3 = start(proxy, config, net, pin_dir=pin_dir)
        assert p3.wait_log(r"xdp: deny list pinned at .*; 0 runtime prefixes kept", timeout=5)
        assert net.query(net.allowed, port3) == [["1"]]
        p3.stop()
    finally:
        run(["umount", "-l", str(pins)], check=False)
