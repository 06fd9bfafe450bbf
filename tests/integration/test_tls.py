"""Client-side TLS: client_mode require / disable."""

import psycopg
import pytest

import pgwire
from conftest import ALICE, run


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / "server.key", tmp_path / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


def test_tls_required(pg, proxy, config, cert):
    crt, key = cert
    p = proxy(config(tls={"client_mode": "require", "cert_file": str(crt), "key_file": str(key)}))
    with p.connect(sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(sslmode="disable").close()
    msg = str(ei.value).lower()
    assert "ssl" in msg or "tls" in msg, f"refusal should mention SSL/TLS: {ei.value}"
    # the raw protocol: SSLRequest is answered 'S'
    with pgwire.Conn("127.0.0.1", p.port) as c:
        assert c.ssl_request() == b"S"


def test_tls_disabled(pg, proxy, config, cert):
    crt, key = cert
    p = proxy(config(tls={"client_mode": "disable", "cert_file": str(crt), "key_file": str(key)}))
    with pytest.raises(psycopg.OperationalError):
        p.connect(sslmode="require").close()
    with p.connect(sslmode="prefer") as conn:
        assert not conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pgwire.Conn("127.0.0.1", p.port) as c:
        assert c.ssl_request() == b"N"
        # after 'N' the same connection goes on in plain text
        res = c.startup(ALICE[0], "appdb", ALICE[1])
        assert res.ok, res
