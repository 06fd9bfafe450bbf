"""A real slapd (Debian's slapd, seeded with ldap-utils' ldapadd) for the LDAP
authentication tests, started on loopback as a plain process of the test:
mdb database in a temp dir, suffix dc=helios,dc=test, ldap:// and ldaps://
listeners on free ports (ldap:// on ::1 too; ldaps:// on 127.0.0.3 too, an
address the server certificate does not name), TLS with a CA and a server certificate the fixture
makes with the openssl CLI (plus a second, unrelated CA to prove a wrong CA
is refused).

Use it from a test module:

    from ldapfix import slapd, LDAP_USERS, SEARCH_DN, SEARCH_PW  # noqa: F401

    def test_x(slapd):
        slapd.port, slapd.ldaps_port, slapd.ca_file, slapd.wrong_ca_file
        slapd.stop(); slapd.start(); slapd.pause(); slapd.resume()

The directory: ou=people with uid=alice, uid=bob, uid=carol (passwords in
LDAP_USERS, stored as {SSHA} hashes made by slappasswd), two entries whose
cn is "twin" (a search that matches more than one entry), and the search
account SEARCH_DN / SEARCH_PW. Anonymous clients can bind but read nothing:
a search needs the search account.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port, port_accepts

SUFFIX = "dc=helios,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret-not-for-logins"
PEOPLE = f"ou=people,{SUFFIX}"
SEARCH_DN = f"cn=searcher,{SUFFIX}"
SEARCH_PW = "searcher-pw"
LDAP_USERS = {
    "alice": "alice-ldap-pw",
    "bob": "bob-ldap-pw",
    "carol": "carol pw with spaces",
}
TWIN_PW = "twin-pw"

SLAPD = "/usr/sbin/slapd"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def make_ca(d, name):
    """A self-signed CA (key, cert) in d, made with the openssl CLI."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt),
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return key, crt


def make_server_cert(d, ca_key, ca_crt, name="slapd"):
    """A server certificate for 127.0.0.1 / ::1 / localhost signed by the CA."""
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    ext = d / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
          "-keyout", str(key), "-out", str(csr)])
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt)])
    return key, crt


def ssha(password):
    return _run(["slappasswd", "-h", "{SSHA}", "-s", password]).strip()


class Slapd:
    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "db").mkdir(exist_ok=True)
        self.ca_key, self.ca_file = make_ca(self.dir, "ldap-test-ca")
        self.key_file, self.cert_file = make_server_cert(self.dir, self.ca_key, self.ca_file)
        _, self.wrong_ca_file = make_ca(self.dir, "unrelated-ca")
        self.port = free_port()
        self.ldaps_port = free_port()
        self.conf = self.dir / "slapd.conf"
        self.log_file = self.dir / "slapd.log"
        self.proc = None
        self._write_conf()

    def _write_conf(self):
        schemas = "\n".join(f"include {SCHEMA_DIR}/{s}.schema"
                            for s in ("core", "cosine", "inetorgperson", "nis"))
        self.conf.write_text(f"""{schemas}
modulepath {MODULE_DIR}
moduleload back_mdb
pidfile {self.dir}/slapd.pid
TLSCACertificateFile {self.ca_file}
TLSCertificateFile {self.cert_file}
TLSCertificateKeyFile {self.key_file}

database mdb
maxsize 33554432
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {self.dir}/db
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none
""")

    @property
    def uri(self):
        return f"ldap://127.0.0.1:{self.port}"

    def start(self, timeout=10.0):
        assert self.proc is None
        log = open(self.log_file, "a")
        # -d: stay in the foreground (the fixture owns the process); level
        # 256 (stats) logs each connection and BIND, which tests count
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "256", "-f", str(self.conf),
             "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.ldaps_port}/ "
             f"ldap://[::1]:{self.port}/ ldaps://127.0.0.3:{self.ldaps_port}/"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited ({self.proc.returncode}): "
                                   f"{self.log_file.read_text()[-2000:]}")
            if port_accepts(self.port) and port_accepts(self.ldaps_port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen on {self.port}/{self.ldaps_port}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # the port is free again only once the listener is gone
        for _ in range(100):
            if not port_accepts(self.port):
                break
            time.sleep(0.05)

    def pause(self):
        """SIGSTOP: the kernel still accepts connections, nobody answers
        (a hung server, as opposed to one that is down)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def log(self):
        return self.log_file.read_text(errors="replace")

    def binds(self):
        """BIND operations slapd has logged so far."""
        return self.log().count(" BIND dn=")

    def ldapadd(self, ldif):
        p = self.dir / "seed.ldif"
        p.write_text(ldif)
        _run(["ldapadd", "-x", "-H", self.uri, "-D", ROOT_DN, "-w", ROOT_PW, "-f", str(p)])

    def ldapwhoami(self, dn, password):
        """ldap-utils' own bind, to check the directory independently of the proxy."""
        r = subprocess.run(["ldapwhoami", "-x", "-H", self.uri, "-D", dn, "-w", password],
                           capture_output=True, text=True)
        return r.returncode == 0

    def seed(self):
        entries = [f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: helios
o: Helios test
""", f"""dn: {PEOPLE}
objectClass: organizationalUnit
ou: people
""", f"""dn: {SEARCH_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: searcher
userPassword: {ssha(SEARCH_PW)}
"""]
        for uid, pw in LDAP_USERS.items():
            entries.append(f"""dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
uid: {uid}
cn: {uid.capitalize()}
sn: Test
mail: {uid}@helios.test
userPassword: {ssha(pw)}
""")
        for i in (1, 2):
            entries.append(f"""dn: uid=twin{i},{PEOPLE}
objectClass: inetOrgPerson
uid: twin{i}
cn: twin
sn: Twin
userPassword: {ssha(TWIN_PW)}
""")
        self.ldapadd("\n".join(entries))


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    s = Slapd(tmp_path_factory.mktemp("slapd"))
    s.start()
    try:
        s.seed()
        yield s
    finally:
        s.stop()


def closed_port():
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
