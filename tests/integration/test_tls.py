"""Client-side TLS: client_mode require / disable."""

import psycopg
import pytest

import pgwire
from conftest import ALICE


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


SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def server_ca(pg):
    # scripts/pgcluster.sh makes a self-signed certificate beside the socket dir
    from pathlib import Path
    ca = Path(pg.socket).parent / "ca.crt"
    if not ca.exists():
        pytest.skip(f"the test cluster has no TLS certificate at {ca}")
    return ca


@pytest.mark.parametrize("mode,expect_ssl", [("disable", False), ("prefer", True), ("require", True)])
def test_tls_towards_server_follows_server_mode(pg, proxy, config, mode, expect_ssl):
    server_ca(pg)
    p = proxy(config(tls={"server_mode": mode}))
    with p.connect() as conn:
        assert conn.execute(SSL_IN_USE).fetchone() == (expect_ssl,)
        # and a bulk result crosses the encrypted hop intact
        n, total = conn.execute(
            "SELECT count(*), sum(length(x)) FROM (SELECT repeat('y', 5000) AS x "
            "FROM generate_series(1, 2000)) s").fetchone()
        assert (n, total) == (2000, 10_000_000)


def test_tls_verify_full_checks_the_server_certificate(pg, proxy, config, cert, tmp_path):
    ca = server_ca(pg)
    p = proxy(config(tls={"server_mode": "verify-full", "ca_file": str(ca)}))
    with p.connect() as conn:
        assert conn.execute(SSL_IN_USE).fetchone() == (True,)
    # a CA that did not sign the server's certificate: the login must fail
    other_ca, _ = cert
    p2 = proxy(config(tls={"server_mode": "verify-full", "ca_file": str(other_ca)}))
    with pytest.raises(psycopg.OperationalError) as ei:
        p2.connect().close()
    assert "tls" in str(ei.value).lower() or "certificate" in str(ei.value).lower(), ei.value
