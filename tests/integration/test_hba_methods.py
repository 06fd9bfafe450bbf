"""The hba methods that check elsewhere, through a real login with libpq
(psycopg): ldap against a real slapd (ldapfix), jwt with HS256 tokens signed
by the openssl CLI over TLS, cert with client certificates from a CA the
test makes with openssl. Each failure: PostgreSQL's SQLSTATE and a log line
naming the pg_hba rule, never the secret."""

import base64
import json
import subprocess
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, MD5USER, run
from ldapfix import LDAP_USERS, PEOPLE, slapd  # noqa: F401  (the fixture)


def startup(port, user, password, dbname=APPDB):
    with pgwire.Conn("127.0.0.1", port, timeout=10) as c:
        return c.startup(user, dbname, password)


def hba_cfg(config, path, **kw):
    a = kw.pop("auth", {})
    return config(auth={"hba_file": str(path), **a}, **kw)


# ------------------------------------------------------------------ ldap

def test_ldap_rule_logs_in_with_the_directory_password(pg, proxy, config, tmp_path,
                                                       slapd):  # noqa: F811
    path = tmp_path / "pg_hba.conf"
    path.write_text(f"host all {ALICE[0]} 127.0.0.1/32 ldap ldapserver=127.0.0.1 "
                    f"ldapport={slapd.port} ldapprefix=\"uid=\" ldapsuffix=\",{PEOPLE}\"\n"
                    f"host all {MD5USER[0]} 127.0.0.1/32 md5\n")
    p = proxy(hba_cfg(config, path))
    # the LDAP password (not the PostgreSQL one) logs alice in; the proxy
    # logs into the server with the configured credential
    with p.connect(ALICE[0], LDAP_USERS["alice"]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    res = startup(p.port, ALICE[0], LDAP_USERS["alice"])
    assert res.ok and pgwire.AUTH_CLEARTEXT in res.auth_requests, res
    wrong = "not-the-ldap-pw-123"
    res = startup(p.port, ALICE[0], wrong)
    assert not res.ok and res.error["C"] == "28P01", res
    assert res.error["M"] == f'LDAP authentication failed for user "{ALICE[0]}"', res
    assert p.wait_log(rf"LDAP authentication failed for user \"{ALICE[0]}\" "
                      rf"\(pg_hba rule {path}:1, method ldap\)"), p.log_tail()
    assert wrong not in p.log() and LDAP_USERS["alice"] not in p.log()

    # LDAP down: a clear error for alice, md5user (another method) unaffected
    slapd.stop()
    try:
        res = startup(p.port, ALICE[0], LDAP_USERS["alice"])
        assert not res.ok and res.error["C"] == "08006", res
        assert "no LDAP server answered" in res.error["M"], res
        with p.connect(MD5USER[0], MD5USER[1]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        slapd.start()
    deadline = time.monotonic() + 15
    while True:
        res = startup(p.port, ALICE[0], LDAP_USERS["alice"])
        if res.ok or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert res.ok, res


# ------------------------------------------------------------------- tls

def make_ca(d, name):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         f"/CN={name}", "-keyout", str(key), "-out", str(crt)], timeout=60)
    return key, crt


def make_cert(d, ca_key, ca_crt, cn):
    key, csr, crt = d / f"{cn}.key", d / f"{cn}.csr", d / f"{cn}.crt"
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout",
         str(key), "-out", str(csr)], timeout=60)
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return key, crt


@pytest.fixture
def pki(tmp_path):
    ca_key, ca_crt = make_ca(tmp_path, "test-ca")
    srv_key, srv_crt = make_cert(tmp_path, ca_key, ca_crt, "localhost")
    return {"ca": ca_crt, "ca_key": ca_key, "key": srv_key, "crt": srv_crt, "dir": tmp_path}


# ------------------------------------------------------------------- jwt

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256_token(secret_file, claims, tmp_path):
    """A JWT signed with HMAC-SHA256 by the openssl CLI."""
    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64u(json.dumps(claims).encode())
    signing = tmp_path / "signing-input"
    signing.write_text(f"{head}.{body}")
    key_hex = secret_file.read_bytes().rstrip(b"\n").hex()
    raw = subprocess.run(["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt",
                          f"hexkey:{key_hex}", "-binary", str(signing)],
                         capture_output=True, check=True, timeout=30).stdout
    assert len(raw) == 32
    return f"{head}.{body}.{b64u(raw)}"


def test_jwt_rule_takes_the_token_as_password_over_tls(pg, proxy, config, tmp_path, pki):
    secret = tmp_path / "hs.secret"
    secret.write_bytes(b"an-hs256-secret-of-32-bytes-len!\n")
    path = tmp_path / "pg_hba.conf"
    path.write_text(f"hostssl all all 127.0.0.1/32 jwt jwt_secret_file={secret} "
                    f"jwt_issuer=https://idp.test jwt_audience=helios\n")
    p = proxy(hba_cfg(config, path, tls={"client_mode": "allow", "cert_file": str(pki["crt"]),
                                         "key_file": str(pki["key"])}))
    now = int(time.time())
    good = hs256_token(secret, {"sub": ALICE[0], "iss": "https://idp.test", "aud": "helios",
                                "iat": now, "exp": now + 300}, tmp_path)
    with p.connect(ALICE[0], good, sslmode="require") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    # a token for another user, an expired one, a tampered one: 28P01
    other = hs256_token(secret, {"sub": MD5USER[0], "iss": "https://idp.test",
                                 "aud": "helios", "exp": now + 300}, tmp_path)
    expired = hs256_token(secret, {"sub": ALICE[0], "iss": "https://idp.test", "aud": "helios",
                                   "exp": now - 600}, tmp_path)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for tok in (other, expired, tampered):
        with pytest.raises(psycopg.OperationalError,
                           match=f'JWT authentication failed for user "{ALICE[0]}"'):
            p.connect(ALICE[0], tok, sslmode="require").close()
    assert p.wait_log(rf"JWT authentication failed for user \"{ALICE[0]}\" "
                      rf"\(pg_hba rule {path}:1, method jwt\)"), p.log_tail()
    log = p.log()
    for tok in (good, other, expired, tampered):
        assert tok.split(".")[2] not in log, "a token signature reached the log"
    # without TLS there is no hostssl line: refused before any token is sent
    res = startup(p.port, ALICE[0], good)
    assert not res.ok and res.error["C"] == "28000", res
    assert pgwire.AUTH_CLEARTEXT not in res.auth_requests, res


# ------------------------------------------------------------------ cert

def test_cert_rule_maps_the_certificate_name_to_the_user(pg, proxy, config, tmp_path, pki):
    d = pki["dir"]
    ckey, ccrt = make_cert(d, pki["ca_key"], pki["ca"], ALICE[0])
    ident = tmp_path / "pg_ident.conf"
    ident.write_text(f"# map  system-user  login-user\nm {ALICE[0]} {MD5USER[0]}\n")
    path = tmp_path / "pg_hba.conf"
    path.write_text(f"hostssl all {ALICE[0]} 127.0.0.1/32 cert\n"
                    f"hostssl all {MD5USER[0]} 127.0.0.1/32 cert map=m\n"
                    "hostssl all all 127.0.0.1/32 cert\n")
    p = proxy(hba_cfg(config, path, tls={
        "client_mode": "verify-ca", "cert_file": str(pki["crt"]), "key_file": str(pki["key"]),
        "client_ca_file": str(pki["ca"]), "ident_file": str(ident)}))
    kw = dict(sslmode="require", sslcert=str(ccrt), sslkey=str(ckey))
    # CN=alice logs in as alice without a password, and as md5user through the map
    with p.connect(ALICE[0], None, **kw) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    with p.connect(MD5USER[0], None, **kw) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (MD5USER[0],)
    # ... but not as another user the third line covers
    with pytest.raises(psycopg.OperationalError,
                       match='certificate authentication failed for user "repl_user"'):
        p.connect("repl_user", None, **kw).close()
    assert p.wait_log(r"certificate authentication failed for user \"repl_user\" "
                      rf"\(pg_hba rule {path}:3, method cert\)"), p.log_tail()


def test_cert_rule_without_client_certificates_is_a_config_error(pg, proxy, config, tmp_path,
                                                                 pki):
    path = tmp_path / "pg_hba.conf"
    path.write_text("hostssl all all 127.0.0.1/32 cert\n")
    p = proxy(hba_cfg(config, path, tls={"client_mode": "require", "cert_file": str(pki["crt"]),
                                         "key_file": str(pki["key"])}), wait=False)
    assert p.wait(20) not in (None, 0)
    p.check_exit = False
    assert f"{path}:1: method cert needs tls.client_mode" in p.log(), p.log_tail()
