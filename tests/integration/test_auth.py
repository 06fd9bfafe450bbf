"""Client authentication: trust, md5, scram-sha-256, unknown users and
databases, auth_user + auth_query."""

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, MD5USER, PGB_AUTH


def startup(p, user, password, dbname=APPDB, params=None):
    with pgwire.Conn("127.0.0.1", p.port, timeout=10) as c:
        res = c.startup(user, dbname, password, params)
        if res.ok:
            assert c.query("SELECT current_user") == [[user]]
        return res


@pytest.mark.parametrize("method,user,password,challenge", [
    ("scram-sha-256", ALICE[0], ALICE[1], pgwire.AUTH_SASL),
    ("md5", MD5USER[0], MD5USER[1], pgwire.AUTH_MD5),
    ("md5", ALICE[0], ALICE[1], None),  # md5 method, user with a SCRAM secret on the server
    ("scram-sha-256", MD5USER[0], MD5USER[1], pgwire.AUTH_SASL),
])
def test_password_methods(pg, proxy, config, method, user, password, challenge):
    p = proxy(config(method=method))
    with p.connect(ALICE[0], ALICE[1]) as bystander:
        # right password: psycopg (libpq) and the raw client
        with p.connect(user, password) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (user,)
        res = startup(p, user, password)
        assert res.ok, res
        if challenge is not None:
            assert challenge in res.auth_requests, f"{method} should ask for {challenge}: {res}"

        # wrong password: 28P01, and the proxy keeps serving
        res = startup(p, user, password + "-wrong")
        assert not res.ok and res.error, res
        assert res.error["C"] == "28P01", res.error
        with pytest.raises(psycopg.OperationalError):
            p.connect(user, password + "-wrong").close()

        assert bystander.execute("SELECT 42").fetchone() == (42,)
        with p.connect(user, password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_trust(pg, proxy, config):
    # trust: no password asked of the client (the proxy logs into the server
    # with the configured one). There is no "wrong password" with trust.
    p = proxy(config(method="trust"))
    res = startup(p, ALICE[0], None)
    assert res.ok, res
    assert res.auth_requests == [pgwire.AUTH_OK], res
    with psycopg.connect(p.dsn(ALICE[0])) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)


def test_unknown_database_error_comes_from_server(pg, proxy, config):
    p = proxy(config())
    res = startup(p, ALICE[0], ALICE[1], dbname="no_such_db")
    assert not res.ok and res.error, res
    assert res.error["C"] == "3D000", res.error
    assert "no_such_db" in res.error["M"], res.error
    with p.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unknown_user_not_revealed(pg, proxy, config):
    p = proxy(config())
    unknown = startup(p, "no_such_user", "whatever")
    wrong = startup(p, ALICE[0], "whatever")
    assert not unknown.ok and unknown.error, unknown
    assert unknown.error["C"] in ("28P01", "28000"), unknown.error
    msg = unknown.error["M"].lower()
    for word in ("exist", "unknown", "not found", "no such"):
        assert word not in msg, f"message reveals the user is unknown: {unknown.error}"
    # Same dialogue as for a known user with a wrong password: a SCRAM
    # challenge first, the same SQLSTATE after.
    assert pgwire.AUTH_SASL in unknown.auth_requests, \
        f"an unknown user must get a password challenge like a known one: {unknown}"
    assert unknown.error["C"] == wrong.error["C"], (unknown.error, wrong.error)
    assert unknown.error["M"].replace("no_such_user", "U") == wrong.error["M"].replace(ALICE[0], "U")


def test_auth_query(pg, proxy, config):
    # alice is not in the config: the proxy looks her secret up on the
    # server as auth_user (pgb_auth is a SUPERUSER in the test cluster, since
    # only superusers can read pg_shadow).
    cfg = config(
        users=[{"name": PGB_AUTH[0], "password": PGB_AUTH[1]}],
        auth={"auth_user": PGB_AUTH[0],
              "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"})
    p = proxy(cfg)
    with p.connect(ALICE[0], ALICE[1]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    res = startup(p, ALICE[0], ALICE[1] + "-wrong")
    assert res.error and res.error["C"] == "28P01", res
    res = startup(p, ALICE[0], ALICE[1])
    assert res.ok, res
