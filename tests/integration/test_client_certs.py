"""Client certificates (issue 18 item 4) and how the proxy logs in to servers for
users that prove themselves with a certificate (item 5).

A CA made here with the openssl CLI signs the proxy's certificate and the client
certificates; `openssl ca` revokes one and writes the CRL. Clients are real libpq
(psql and psycopg with sslcert/sslkey/sslrootcert). The proxy's own client
certificate is checked against the real PostgreSQL of the test cluster, which
gets a `hostssl ... cert` line for a dedicated role and database for the time
of the test (restored afterwards)."""

import os
import shutil
import subprocess

import ssl

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, run

PSQL = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"

CA_CNF = """
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
certificate = {d}/ca.crt
private_key = {d}/ca.key
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
default_days = 3
default_crl_days = 3
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
"""


class CA:
    """A test CA in folder d: issue(name, cn, san=None) -> (crt, key)."""

    def __init__(self, d, name):
        self.d = d
        d.mkdir()
        (d / "newcerts").mkdir()
        (d / "index.txt").write_text("")
        (d / "serial").write_text("1000\n")
        (d / "crlnumber").write_text("1000\n")
        self.cnf = d / "ca.cnf"
        self.cnf.write_text(CA_CNF.format(d=d))
        self.crt, self.key = d / "ca.crt", d / "ca.key"
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
             "-subj", f"/CN={name}", "-keyout", str(self.key), "-out", str(self.crt)])

    def issue(self, name, cn, san=None):
        key, csr, crt = self.d / f"{name}.key", self.d / f"{name}.csr", self.d / f"{name}.crt"
        cmd = ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
               "-keyout", str(key), "-out", str(csr)]
        if san:
            cmd += ["-addext", f"subjectAltName={san}"]
        run(cmd)
        run(["openssl", "ca", "-batch", "-config", str(self.cnf), "-notext", "-in", str(csr),
             "-out", str(crt)])
        key.chmod(0o600)  # libpq refuses a key others can read
        return crt, key

    def revoke(self, crt):
        run(["openssl", "ca", "-batch", "-config", str(self.cnf), "-revoke", str(crt)])

    def crl(self):
        out = self.d / "crl.pem"
        run(["openssl", "ca", "-batch", "-config", str(self.cnf), "-gencrl", "-out", str(out)])
        return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    ca = CA(base / "ca", "Helios Test Client CA")
    other = CA(base / "other", "Some Other CA")
    k = {"ca": ca, "other": other}
    k["proxy"] = ca.issue("proxy", "localhost", "DNS:localhost,IP:127.0.0.1")
    k["alice"] = ca.issue("alice", "alice")
    k["alice_email"] = ca.issue("alice_email", "alice@example.com")
    k["mallory"] = ca.issue("mallory", "mallory")
    k["san_alice"] = ca.issue("san_alice", "not-a-user", "DNS:alice,email:x@example.org")
    k["revoked"] = ca.issue("revoked", "alice")
    ca.revoke(k["revoked"][0])
    k["crl"] = ca.crl()
    k["unknown"] = other.issue("unknown", "alice")
    return k


def tls_cfg(pki, mode, **extra):
    crt, key = pki["proxy"]
    t = {"client_mode": mode, "cert_file": str(crt), "key_file": str(key),
         "client_ca_file": str(pki["ca"].crt), "client_crl_file": str(pki["crl"])}
    t.update(extra)
    return t


def cert_kw(pki, which):
    crt, key = pki[which]
    return {"sslmode": "verify-ca", "sslrootcert": str(pki["ca"].crt), "sslcert": str(crt),
            "sslkey": str(key)}


def login_fails(p, pki, which, user=ALICE[0], **kw):
    args = cert_kw(pki, which) if which else {"sslmode": "require", "sslcert": "/nonexistent",
                                              "sslkey": "/nonexistent"}
    args.update(kw)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user=user, **args).close()
    return str(ei.value)


def raw_login_error(p, pki, which, user=ALICE[0], password=ALICE[1]):
    """Logs in over TLS with the client certificate `which` using the raw protocol
    (psycopg hides a login error's SQLSTATE); returns the ErrorResponse fields."""
    crt, key = pki[which]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki["ca"].crt))
    ctx.load_cert_chain(str(crt), str(key))
    with pgwire.Conn("127.0.0.1", p.port) as c:
        assert c.ssl_request() == b"S"
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        res = c.startup(user, APPDB, password)
        assert res.error, res
        return res.error


def test_verify_ca_accepts_a_certificate_of_the_client_ca_with_psql(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-ca")))
    crt, key = pki["alice"]
    conninfo = (f"host=127.0.0.1 port={p.port} user={ALICE[0]} dbname={APPDB} "
                f"sslmode=verify-full sslrootcert={pki['ca'].crt} sslcert={crt} sslkey={key}")
    env = pg.env(password=ALICE[1])
    r = subprocess.run([PSQL, conninfo, "-AtXc", "SELECT current_user"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ALICE[0]


def test_verify_ca_refuses_a_client_without_certificate(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-ca")))
    start = len(p.log())
    err = login_fails(p, pki, None)
    assert "certificate" in err.lower(), err
    m = p.wait_log(r"TLS error: .*(peer did not return a certificate|certificate required)",
                   start=start)
    assert m, p.log_tail()


def test_verify_ca_refuses_a_certificate_of_an_unknown_ca(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-ca")))
    start = len(p.log())
    err = login_fails(p, pki, "unknown")
    assert "unknown ca" in err.lower() or "certificate" in err.lower(), err
    m = p.wait_log(r"TLS error: .*client certificate: unable to get local issuer certificate",
                   start=start)
    assert m, p.log_tail()


def test_verify_ca_refuses_a_revoked_certificate(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-ca")))
    start = len(p.log())
    err = login_fails(p, pki, "revoked")
    assert "revoked" in err.lower(), err
    m = p.wait_log(r"TLS error: .*client certificate: certificate revoked", start=start)
    assert m, p.log_tail()


def test_without_crl_the_revoked_certificate_is_accepted(pg, proxy, config, pki):
    # the CRL, not something else about that certificate, is what refused it above
    p = proxy(config(tls=tls_cfg(pki, "verify-ca", client_crl_file="")))
    with p.connect(**cert_kw(pki, "revoked")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_verify_ca_does_not_check_the_certificate_name(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-ca")))
    with p.connect(**cert_kw(pki, "mallory")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)


def test_verify_full_refuses_a_cn_that_is_not_the_login_user(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-full")))
    start = len(p.log())
    err = raw_login_error(p, pki, "mallory")
    assert err["C"] == "28000", err
    assert err["M"] == ('certificate validation (clientcert=verify-full) failed for user '
                        '"alice": CN mismatch'), err
    m = p.wait_log(r'refused by tls.client_mode = verify-full: certificate CN "mallory" '
                   r'.*does not match user "alice"', start=start)
    assert m, p.log_tail()


def test_verify_full_accepts_a_cn_equal_to_the_login_user(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-full")))
    with p.connect(**cert_kw(pki, "alice")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)


def test_verify_full_accepts_a_dns_san_equal_to_the_login_user(pg, proxy, config, pki):
    p = proxy(config(tls=tls_cfg(pki, "verify-full")))
    with p.connect(**cert_kw(pki, "san_alice")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)


def test_verify_full_maps_the_cn_through_a_regex(pg, proxy, config, pki, tmp_path):
    ident = tmp_path / "ident.conf"
    ident.write_text("# MAPNAME  SYSTEM-USERNAME           PG-USERNAME\n"
                     "certs      /^(.*)@example\\.com$     \\1\n")
    p = proxy(config(tls=tls_cfg(pki, "verify-full", ident_file=str(ident),
                                 client_map="certs")))
    with p.connect(**cert_kw(pki, "alice_email")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    # with a map, only the map counts: the bare CN "alice" is not in it
    start = len(p.log())
    assert raw_login_error(p, pki, "alice")["C"] == "28000"
    assert p.wait_log(r'certificate CN "alice" .*not mapped to user "alice" by map "certs"',
                      start=start), p.log_tail()


def test_a_broken_ident_file_stops_the_start_naming_file_and_line(pg, proxy, config, pki,
                                                                  tmp_path):
    ident = tmp_path / "ident.conf"
    ident.write_text("certs alice alice\ncerts /(unclosed alice\n")
    p = proxy(config(tls=tls_cfg(pki, "verify-full", ident_file=str(ident),
                                 client_map="certs")), wait=False)
    p.check_exit = False
    assert p.wait(15) not in (None, 0)
    assert f"{ident}:2: invalid regular expression" in p.log(), p.log_tail()


def test_verify_ca_without_client_ca_file_is_a_config_error(pg, proxy, config, pki):
    t = tls_cfg(pki, "verify-ca")
    del t["client_ca_file"]
    p = proxy(config(tls=t), wait=False)
    p.check_exit = False
    assert p.wait(15) not in (None, 0)
    assert "key 'tls.client_ca_file' is required when tls.client_mode = \"verify-ca\"" in p.log()


# ---------------------------------------------------------------------------
# Towards the server: the proxy's own certificate, and server_password.

CERT_ROLE = "helios_certuser"
CERT_DB = "helios_certdb"


@pytest.fixture
def cert_server(pg, pki):
    """The test cluster's primary accepts CERT_ROLE on CERT_DB only with a client
    certificate of the test CA (hostssl ... cert), for the time of the test."""
    su = pg.su
    if not su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CERT_ROLE,)).fetchone():
        su.execute(f"CREATE ROLE {CERT_ROLE} LOGIN")
    if not su.execute("SELECT 1 FROM pg_database WHERE datname = %s", (CERT_DB,)).fetchone():
        su.execute(f"CREATE DATABASE {CERT_DB} OWNER {CERT_ROLE}")
    hba = su.execute("SHOW hba_file").fetchone()[0]
    datadir = su.execute("SHOW data_directory").fetchone()[0]
    old_ca = su.execute("SHOW ssl_ca_file").fetchone()[0]
    ca_copy = os.path.join(datadir, "helios_test_client_ca.crt")
    shutil.copyfile(pki["ca"].crt, ca_copy)
    st = os.stat(hba)
    os.chown(ca_copy, st.st_uid, st.st_gid)
    with open(hba) as f:
        saved = f.read()
    lines = (f"hostssl {CERT_DB} {CERT_ROLE} 127.0.0.1/32 cert\n"
             f"host    {CERT_DB} {CERT_ROLE} 127.0.0.1/32 reject\n")
    try:
        with open(hba, "w") as f:  # in place: keeps the owner
            f.write(lines + saved)
        su.execute("ALTER SYSTEM SET ssl_ca_file = 'helios_test_client_ca.crt'")
        su.execute("SELECT pg_reload_conf()")
        _wait_reloaded(pg)
        yield
    finally:
        with open(hba, "w") as f:
            f.write(saved)
        if old_ca:
            su.execute("ALTER SYSTEM SET ssl_ca_file = %s", (old_ca,))
        else:
            su.execute("ALTER SYSTEM RESET ssl_ca_file")
        su.execute("SELECT pg_reload_conf()")
        _wait_reloaded(pg, want=old_ca)
        os.unlink(ca_copy)


def _wait_reloaded(pg, want="helios_test_client_ca.crt"):
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with pg.superuser() as c:
            if c.execute("SHOW ssl_ca_file").fetchone()[0] == want:
                return
        time.sleep(0.05)
    pytest.fail(f"the test cluster did not reload ssl_ca_file = {want!r}")


def cert_users():
    # alice too: the control plane checks the nodes as routing.check_user, which
    # needs a password the server takes (CERT_ROLE has none)
    return [{"name": ALICE[0], "password": ALICE[1]},
            {"name": CERT_ROLE, "password": "client-side-pw"}]


def test_the_server_refuses_cert_role_without_a_client_certificate(pg, cert_server):
    # the fixture's pg_hba line is real: without a certificate PostgreSQL says no
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(pg.dsn(CERT_ROLE, dbname=CERT_DB, sslmode="require")).close()
    assert "certificate" in str(ei.value), ei.value


def test_proxy_logs_in_to_the_server_with_its_own_certificate(pg, proxy, config, pki,
                                                              cert_server):
    crt, key = pki["ca"].issue("proxy_client", CERT_ROLE)
    cfg = config(users=cert_users(), routing={"check_user": ALICE[0]}, tls={"server_mode": "require", "server_cert_file": str(crt),
                                   "server_key_file": str(key)})
    p = proxy(cfg)
    with p.connect(user=CERT_ROLE, password="client-side-pw", dbname=CERT_DB) as conn:
        assert conn.execute("SELECT current_user, ssl, client_dn FROM pg_stat_ssl "
                            "WHERE pid = pg_backend_pid()").fetchone() == (
                                CERT_ROLE, True, f"/CN={CERT_ROLE}")


def test_without_its_certificate_the_proxy_is_refused_by_the_cert_server(pg, proxy, config,
                                                                         cert_server):
    p = proxy(config(users=cert_users(), routing={"check_user": ALICE[0]},
                     tls={"server_mode": "require"}))
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user=CERT_ROLE, password="client-side-pw", dbname=CERT_DB).close()
    assert "certificate" in str(ei.value), ei.value


def test_certificate_client_reaches_a_scram_server_with_server_password(pg, proxy, config,
                                                                        pki):
    """Item 5: a client that proved itself with a certificate (verify-full, no
    password to the proxy) has no SCRAM keys; the proxy logs in to the SCRAM
    server with the user's server_password. The stored password is alice's
    SCRAM secret, so the plaintext can only come from server_password."""
    secret = pg.su.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                           (ALICE[0],)).fetchone()[0]
    assert secret.startswith("SCRAM-SHA-256$")
    users = [{"name": ALICE[0], "password": secret, "server_password": ALICE[1]}]
    p = proxy(config(method="trust", users=users, tls=tls_cfg(pki, "verify-full")))
    with p.connect(password=None, **cert_kw(pki, "alice")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    # and without server_password the proxy has nothing to log in with
    users = [{"name": ALICE[0], "password": secret}]
    p2 = proxy(config(method="trust", users=users, tls=tls_cfg(pki, "verify-full")))
    with pytest.raises(psycopg.OperationalError) as ei:
        p2.connect(password=None, **cert_kw(pki, "alice")).close()
    assert ('the server asks for a password for user "alice" and the proxy has none it can use'
            in str(ei.value)), ei.value


# ---------------------------------------------------------------------------
# The `cert` method of the HBA rules (helper A's dispatch, this module's check)

def cert_rule_cfg(config, pki, tmp_path, hba_lines, **tls_extra):
    hba = tmp_path / "pg_hba.conf"
    hba.write_text(hba_lines)
    return config(auth={"hba_file": str(hba)}, tls=tls_cfg(pki, "verify-ca", **tls_extra))


def test_cert_method_logs_in_with_the_certificate_and_no_password(pg, proxy, config, pki,
                                                                   tmp_path):
    p = proxy(cert_rule_cfg(config, pki, tmp_path, "hostssl all all 127.0.0.1/32 cert\n"))
    with p.connect(password=None, **cert_kw(pki, "alice")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)


def test_cert_method_refuses_a_cn_that_is_not_mapped(pg, proxy, config, pki, tmp_path):
    p = proxy(cert_rule_cfg(config, pki, tmp_path, "hostssl all all 127.0.0.1/32 cert\n"))
    start = len(p.log())
    err = raw_login_error(p, pki, "mallory", password=None)
    assert err["C"] == "28000", err
    assert err["M"] == 'certificate authentication failed for user "alice"', err
    m = p.wait_log(r'certificate CN "mallory" .*does not match user "alice"', start=start)
    assert m, p.log_tail()


def test_cert_method_maps_through_a_regex_of_the_rule_map(pg, proxy, config, pki, tmp_path):
    ident = tmp_path / "ident.conf"
    ident.write_text("certs /^([a-z]+)@example\\.com$ \\1\n")
    p = proxy(cert_rule_cfg(config, pki, tmp_path,
                            "hostssl all all 127.0.0.1/32 cert map=certs\n",
                            ident_file=str(ident)))
    with p.connect(password=None, **cert_kw(pki, "alice_email")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    start = len(p.log())
    err = raw_login_error(p, pki, "alice", password=None)  # CN alice: not in map certs
    assert err["C"] == "28000", err
    assert p.wait_log(r'certificate CN "alice" .*not mapped to user "alice" by map "certs"',
                      start=start), p.log_tail()


def test_cert_method_still_refuses_a_revoked_certificate(pg, proxy, config, pki, tmp_path):
    p = proxy(cert_rule_cfg(config, pki, tmp_path, "hostssl all all 127.0.0.1/32 cert\n"))
    start = len(p.log())
    err = login_fails(p, pki, "revoked", password=None)
    assert "revoked" in err.lower(), err
    assert p.wait_log(r"client certificate: certificate revoked", start=start), p.log_tail()


def test_server_cert_file_without_its_key_is_a_config_error(pg, proxy, config, pki):
    crt, _ = pki["alice"]
    p = proxy(config(tls={"server_mode": "require", "server_cert_file": str(crt)}), wait=False)
    p.check_exit = False
    assert p.wait(15) not in (None, 0)
    assert ("keys 'tls.server_cert_file' and 'tls.server_key_file' go together: set both or "
            "neither") in p.log(), p.log_tail()


def test_a_key_that_does_not_match_server_cert_file_is_refused(pg, proxy, config, pki):
    crt, _ = pki["alice"]
    _, other_key = pki["mallory"]
    p = proxy(config(tls={"server_mode": "require", "server_cert_file": str(crt),
                          "server_key_file": str(other_key)}), wait=False)
    p.check_exit = False
    assert p.wait(15) not in (None, 0)
    assert f"tls.server_key_file {other_key}:" in p.log(), p.log_tail()
