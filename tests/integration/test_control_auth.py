"""A control plane that lets no one in: control_token on tcp:// (helios-cp and
heliosproxy's own control socket), nng's tls+tcp:// with client certificates
made here with the openssl CLI, the config check that refuses a remote
control address nothing protects, and the ipc socket's file mode and group."""

import grp
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ALICE, APPDB, free_port, helios_bin, port_accepts, run, sanitizer_report, \
    to_toml, wait_for

TOKEN = "t0ken-for-the-tests-7f3a"
REFUSED = "control plane refused the request: missing or wrong token"


# ---------------------------------------------------------------------------
# helpers

def helioctl(*args, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("HELIOS_CONTROL_TOKEN", None)
    e.update(env or {})
    return run([str(helios_bin() / "helioctl"), "--timeout", "5000", *args], check=False,
               timeout=timeout, env=e)


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {args}: {r.stderr}"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Two CAs; from the first a server certificate for 127.0.0.1 and two client
    certificates (a data plane's, an operator's); from the second a client
    certificate that must be refused. EC P-256 keys, PEM."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("certs")

    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN=helios test {name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

    def leaf(name, ca_name, cn, ext):
        (d / f"{name}.ext").write_text(ext)
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem", "-CAkey",
                f"{ca_name}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=d)

    ca("ca")
    ca("otherca")
    # mbedTLS (nng's TLS engine) matches an IP address against DNS names and
    # the common name, not IP SANs: the certificate carries 127.0.0.1 in both
    leaf("server", "ca", "127.0.0.1",
         "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
         "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1,DNS:localhost\n")
    client_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    leaf("dataplane", "ca", "heliosproxy", client_ext)
    leaf("operator", "ca", "operator", client_ext)
    leaf("rogue", "otherca", "operator", client_ext)
    return d


class ControlPlane:
    """helios-cp on a tcp:// or tls+tcp:// address, from its own config file."""

    def __init__(self, tmp_path, cfg, port):
        self.port = port
        self.cfg_path = tmp_path / "helios-cp.toml"
        self.cfg_path.write_text(to_toml(cfg))
        self.log_path = tmp_path / "helios-cp.log"
        self.proc = subprocess.Popen([str(helios_bin() / "helios-cp"), "-c", str(self.cfg_path)],
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        assert wait_for(lambda: self.proc.poll() is not None or port_accepts(port), timeout=15)
        assert self.proc.poll() is None, f"helios-cp exited at start:\n{self.log()}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(15) == 0, self.log()
        report = sanitizer_report(self.log())
        assert report is None, f"{self.log_path} has a sanitizer report:\n{report}"


@pytest.fixture
def control_plane(tmp_path):
    started = []

    def start(cfg, port):
        cp = ControlPlane(tmp_path, cfg, port)
        started.append(cp)
        return cp

    yield start
    for cp in started:
        cp.stop()


def psql(pg, port, sql):
    # no SSLRequest first: the refusal then reads as the server's own words
    env = dict(pg.env(password=ALICE[1]), PGSSLMODE="disable")
    return subprocess.run([str(pg.bin / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(port),
                           "-U", ALICE[0], "-d", APPDB, "-c", sql], env=env,
                          capture_output=True, text=True, timeout=30)


def assert_config_set_reaches_the_data_plane(pg, p, ctl):
    """ctl(*args) runs helioctl with what the control plane demands.
    max_client_conn = 1 shows to a real psql: a second client is refused."""
    r = ctl("config", "set", "max_client_conn", "1")
    assert r.returncode == 0 and "applied by 1 of 1" in r.stdout, r
    with p.connect() as held:
        assert held.execute("SELECT 1").fetchone() == (1,)
        r = psql(pg, p.port, "SELECT 1")
        assert r.returncode != 0 and "too many clients" in r.stderr, r
    r = ctl("config", "reset", "max_client_conn")
    assert r.returncode == 0, r
    assert wait_for(lambda: psql(pg, p.port, "SELECT 42").stdout.strip() == "42", timeout=10)


# ---------------------------------------------------------------------------
# control_token

def test_helioctl_without_the_token_is_refused_on_tcp_and_with_it_config_set_reaches_psql(
        pg, proxy, config, control_plane, tmp_path):
    port, admin = free_port(), free_port()
    url = f"tcp://127.0.0.1:{port}"
    cfg = config(control_address=url, control_token=TOKEN,
                 control_admin_address=f"127.0.0.1:{admin}")
    cp = control_plane(cfg, port)
    p = proxy(cfg)
    assert p.wait_log(r"control plane at tcp://127\.0\.0\.1:\d+: connected", timeout=10), \
        p.log_tail()

    r = helioctl("-a", url, "status")
    assert r.returncode == 1 and REFUSED in r.stderr, r
    assert "dataplane" not in r.stdout.lower() and "generation" not in r.stdout.lower(), r
    r = helioctl("-a", url, "--token", "not-" + TOKEN, "config", "set", "max_client_conn", "1")
    assert r.returncode == 1 and REFUSED in r.stderr, r
    # what the refused peers got: nothing changed
    r = helioctl("-a", url, "--token", TOKEN, "config", "get", "max_client_conn")
    assert r.returncode == 0 and r.stdout.strip() == "10000", r
    # one log line per peer: helioctl's two refusals came from one address
    lines = re.findall(r"refused a helioctl request from 127\.0\.0\.1:\d+: (.*)", cp.log())
    assert len(lines) == 1 and "no control_token" in lines[0], cp.log()
    # both are counted
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as m:
        assert re.search(r"(?m)^helios_control_refused_total 2$", m.read().decode())

    # the token from the environment, and from the config file (-c)
    r = helioctl("-a", url, "status", env={"HELIOS_CONTROL_TOKEN": TOKEN})
    assert r.returncode == 0 and re.search(r"(?m)\syes\s", r.stdout), r
    assert_config_set_reaches_the_data_plane(pg, p, lambda *a: helioctl("-c", str(p.config_path),
                                                                         *a))


def test_data_plane_with_a_wrong_token_is_not_registered_and_logs_why(
        pg, proxy, config, control_plane):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cfg = config(control_address=url, control_token=TOKEN,
                 control_admin_address=f"127.0.0.1:{free_port()}")
    cp = control_plane(cfg, port)
    p = proxy(dict(cfg, control_token="wrong-" + TOKEN))
    assert p.wait_log(re.escape(REFUSED), timeout=10), p.log_tail()
    # it retries (every 5 s) without filling either log
    time.sleep(6)
    assert len(re.findall(re.escape(REFUSED), p.log())) == 1, p.log_tail()
    assert not re.search(r"control plane at \S+: connected", p.log()), p.log_tail()
    lines = re.findall(r"refused a data plane (?:registration|heartbeat) from 127\.0\.0\.1:\d+: "
                       r"(.*)", cp.log())
    assert len(lines) == 1 and "wrong control_token" in lines[0], cp.log()
    r = helioctl("-a", url, "--token", TOKEN, "--json", "status")
    assert r.returncode == 0, r
    assert json.loads(r.stdout).get("dataplanes", []) == [], r.stdout
    # and it serves its local file meanwhile
    assert psql(pg, p.port, "SELECT 7").stdout.strip() == "7"


def test_in_process_control_socket_demands_the_token_too(pg, proxy, config):
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    p = proxy(config(control_socket=url, control_token=TOKEN, admin_users=ALICE[0]))
    r = helioctl("-a", url, "config", "set", "max_client_conn", "1")
    assert r.returncode == 1 and REFUSED in r.stderr, r
    assert p.wait_log(r"refused a helioctl request from 127\.0\.0\.1", timeout=5), p.log_tail()
    # the data plane inside got the token (it is registered), helioctl -c too
    assert_config_set_reaches_the_data_plane(pg, p, lambda *a: helioctl("-c", str(p.config_path),
                                                                         *a))
    # the admin console's PAUSE and RESUME go through the same control plane
    for sql in (f"PAUSE {APPDB}", f"RESUME {APPDB}"):
        r = run([str(pg.bin / "psql"), "-X", "-h", "127.0.0.1", "-p", str(p.port), "-U",
                 ALICE[0], "-d", "heliosproxy", "-c", sql], env=pg.env(password=ALICE[1]),
                check=False, timeout=30)
        assert r.returncode == 0 and sql.split()[0] in r.stdout, r
    assert REFUSED not in p.log(), p.log_tail()


# ---------------------------------------------------------------------------
# tls+tcp://

def test_tls_control_plane_takes_only_clients_with_a_certificate_from_its_ca(
        pg, proxy, config, control_plane, certs):
    port = free_port()
    url = f"tls+tcp://127.0.0.1:{port}"
    base = config(control_address=url, control_admin_address=f"127.0.0.1:{free_port()}",
                  control_tls_ca=str(certs / "ca.pem"))
    cp = control_plane(dict(base, control_tls_cert=str(certs / "server.pem"),
                            control_tls_key=str(certs / "server.key")), port)
    p = proxy(dict(base, control_tls_cert=str(certs / "dataplane.pem"),
                   control_tls_key=str(certs / "dataplane.key")))
    assert p.wait_log(r"control plane at tls\+tcp://127\.0\.0\.1:\d+: connected", timeout=10), \
        p.log_tail() + "\n" + cp.log()

    ca = ["--tls-ca", str(certs / "ca.pem")]
    # no certificate at all
    r = helioctl("-a", url, "status")
    assert r.returncode == 2 and "--tls-ca" in r.stderr, r
    r = helioctl("-a", url, *ca, "status")
    assert r.returncode == 3 and "demands a client certificate and none was given" in r.stderr, r
    # a certificate from another CA
    r = helioctl("-a", url, *ca, "--tls-cert", str(certs / "rogue.pem"),
                 "--tls-key", str(certs / "rogue.key"), "config", "set", "max_client_conn", "1")
    assert r.returncode == 3 and "refused this client's certificate" in r.stderr and \
        "rogue.pem" in r.stderr, r
    # the server checked against the wrong CA
    r = helioctl("-a", url, "--tls-ca", str(certs / "otherca.pem"),
                 "--tls-cert", str(certs / "operator.pem"),
                 "--tls-key", str(certs / "operator.key"), "status")
    assert r.returncode == 3 and "certificate is not signed by a CA in" in r.stderr and \
        "otherca.pem" in r.stderr, r
    # the server's certificate does not name the host dialed
    r = helioctl("-a", url, *ca, "--tls-cert", str(certs / "operator.pem"),
                 "--tls-key", str(certs / "operator.key"), "--tls-server-name",
                 "elsewhere.example", "status")
    assert r.returncode == 3 and 'does not carry the name "elsewhere.example"' in r.stderr, r

    good = [*ca, "--tls-cert", str(certs / "operator.pem"), "--tls-key",
            str(certs / "operator.key")]
    r = helioctl("-a", url, *good, "status")
    assert r.returncode == 0 and re.search(r"(?m)\syes\s", r.stdout), r
    assert_config_set_reaches_the_data_plane(pg, p, lambda *a: helioctl("-a", url, *good, *a))


def test_tls_with_a_token_instead_of_client_certificates(pg, proxy, config, control_plane, certs):
    port = free_port()
    url = f"tls+tcp://127.0.0.1:{port}"
    cfg = config(control_address=url, control_admin_address=f"127.0.0.1:{free_port()}",
                 control_tls_ca=str(certs / "ca.pem"), control_tls_verify_client=False,
                 control_token=TOKEN)
    control_plane(dict(cfg, control_tls_cert=str(certs / "server.pem"),
                       control_tls_key=str(certs / "server.key")), port)
    p = proxy(cfg)  # a data plane with the CA and the token, no certificate
    assert p.wait_log(r"control plane at tls\+tcp://127\.0\.0\.1:\d+: connected", timeout=10), \
        p.log_tail()
    ca = ["--tls-ca", str(certs / "ca.pem")]
    r = helioctl("-a", url, *ca, "status")
    assert r.returncode == 1 and REFUSED in r.stderr, r
    r = helioctl("-a", url, *ca, "--token", TOKEN, "status")
    assert r.returncode == 0 and re.search(r"(?m)\syes\s", r.stdout), r


# ---------------------------------------------------------------------------
# the config check

def test_config_check_refuses_a_remote_control_address_nothing_protects(
        proxy, config, tmp_path):
    port = free_port()
    for key in ("control_address", "control_socket"):
        path = tmp_path / f"{key}.toml"
        path.write_text(to_toml(config(**{key: f"tcp://0.0.0.0:{port}"},
                                       listen_address=f"127.0.0.1:{free_port()}")))
        for prog in ("heliosproxy", "helios-cp"):
            r = run([str(helios_bin() / prog), "-c", str(path)], check=False, timeout=30)
            assert r.returncode == 1, (prog, r)
            assert re.search(rf"{key}\.toml:\d+: key '{key}': \"tcp://0\.0\.0\.0:\d+\" can be "
                             r"reached from other hosts", r.stderr), (prog, r.stderr)
            assert "control_token" in r.stderr and "control_allow_insecure" in r.stderr, r.stderr
            assert not port_accepts(port)
    # a data plane dialing another host is refused the same way
    path = tmp_path / "dp.toml"
    path.write_text(to_toml(config(control_address="tcp://192.0.2.1:7433")))
    r = run([str(helios_bin() / "heliosproxy"), "-c", str(path)], check=False, timeout=30)
    assert r.returncode == 1 and "key 'control_address'" in r.stderr, r
    # helios-cp --listen: the same rule
    path = tmp_path / "cp.toml"
    path.write_text(to_toml(config(control_address=f"tcp://127.0.0.1:{port}",
                                   control_admin_address="")))
    r = run([str(helios_bin() / "helios-cp"), "-c", str(path), "--listen",
             f"tcp://0.0.0.0:{port}"], check=False, timeout=30)
    assert r.returncode == 1 and "--listen tcp://0.0.0.0" in r.stderr, r
    # allowed explicitly, or with a token (only checked: tests bind loopback only)
    for extra in ({"control_allow_insecure": True}, {"control_token": TOKEN}):
        path = tmp_path / "ok.toml"
        path.write_text(to_toml(config(control_address="tcp://0.0.0.0:7433", **extra)))
        r = run([str(helios_bin() / "heliosproxy"), "--check-config", str(path)], check=False,
                timeout=30)
        assert r.returncode == 0, (extra, r)


# ---------------------------------------------------------------------------
# the ipc socket

@pytest.fixture
def sock_dir():
    d = Path(tempfile.mkdtemp(prefix="hp-auth-", dir="/tmp"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_ipc_control_socket_is_0600_by_default(proxy, config, sock_dir):
    sock = sock_dir / "ctl.sock"
    proxy(config(control_socket=f"ipc://{sock}"))
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_control_socket_group_makes_it_0660_for_that_group_only(proxy, config, sock_dir):
    group = next((g for g in grp.getgrall() if g.gr_gid not in (0, 65534)), None)
    if group is None:
        pytest.skip("no group other than root and nogroup here")
    # the default socket in state_dir: the folder lets the group through too
    state = sock_dir / "state"
    port = free_port()
    proxy(config(state_dir=str(state), control_socket_group=group.gr_name),
          listen_address=f"127.0.0.1:{port}")
    sock = state / f"heliosproxy-{port}.ctl"
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group.gr_gid, \
        (oct(st.st_mode), st.st_gid)
    st = os.stat(state)
    assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == group.gr_gid, \
        (oct(st.st_mode), st.st_gid)

    def as_nobody(*groups):
        g = ["--groups=" + ",".join(str(x) for x in groups)] if groups else ["--clear-groups"]
        return run(["setpriv", "--reuid=65534", "--regid=65534", *g,
                    str(helios_bin() / "helioctl"), "--timeout", "3000", "-a", f"ipc://{sock}",
                    "status"], check=False, timeout=30)

    r = as_nobody(group.gr_gid)
    assert r.returncode == 0 and re.search(r"(?m)\syes\s", r.stdout), r
    r = as_nobody()
    assert r.returncode == 3 and "Permission denied" in r.stderr, r


def test_config_check_refuses_a_control_socket_group_that_does_not_exist(config, tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(to_toml(config(control_socket_group="no-such-group-here")))
    r = run([str(helios_bin() / "heliosproxy"), "-c", str(path)], check=False, timeout=30)
    assert r.returncode == 1 and "key 'control_socket_group'" in r.stderr and \
        "no-such-group-here" in r.stderr, r
