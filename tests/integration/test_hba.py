"""HBA rules (auth.hba_file, [[auth.rules]]): per database/user/address
methods with first-match order, reject, hostssl vs hostnossl over real TLS,
IPv6, PostgreSQL's 28000 texts, a log line naming the rule, the failed-login
limit per source address, and reload of an edited hba file."""

import socket
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, MD5USER, PGB_AUTH, REPL_USER, port_accepts


def startup(port, user, password, dbname=APPDB, host="127.0.0.1", source=None, tls=False):
    """Logs in with the raw protocol client; returns its result (auth
    requests seen, error fields). source binds the client's address."""
    if source:
        c = pgwire.Conn.__new__(pgwire.Conn)
        s = socket.socket()
        s.settimeout(10)
        s.bind((source, 0))
        s.connect((host, port))
        c.sock, c.timeout, c.buf = s, 10, b""
    else:
        c = pgwire.Conn(host, port, timeout=10)
    with c:
        res = c.startup(user, dbname, password)
        if res.ok:
            assert c.query("SELECT current_user") == [[user]]
        return res


def hba(tmp_path, text, name="pg_hba.conf"):
    path = tmp_path / name
    path.write_text(text)
    return path


def hba_config(config, path=None, rules=None, auth=None, **kw):
    a = dict(auth or {})
    if path is not None:
        a["hba_file"] = str(path)
    if rules is not None:
        a["rules"] = rules
    return config(auth=a, **kw)


def test_trust_for_one_role_on_one_database_md5_for_another_scram_for_the_rest(
        pg, proxy, config, tmp_path):
    # the PgBouncer auth_type = hba setup from the issue
    path = hba(tmp_path, "# PgBouncer-style hba\n"
                         f"host {APPDB} {ALICE[0]} 127.0.0.1/32 trust\n"
                         f"host all {MD5USER[0]} 127.0.0.1/32 md5\n"
                         "host all all 127.0.0.1/32 scram-sha-256\n")
    p = proxy(hba_config(config, path))
    # alice on appdb: no password asked, with libpq too
    res = startup(p.port, ALICE[0], None)
    assert res.ok and res.auth_requests == [pgwire.AUTH_OK], res
    with psycopg.connect(p.dsn(ALICE[0]), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    # alice on another database: the third line, SCRAM
    res = startup(p.port, ALICE[0], ALICE[1], dbname="postgres")
    assert res.ok and pgwire.AUTH_SASL in res.auth_requests, res
    res = startup(p.port, ALICE[0], "wrong", dbname="postgres")
    assert not res.ok and res.error["C"] == "28P01", res
    # md5user: md5 challenge, wrong password 28P01
    res = startup(p.port, MD5USER[0], MD5USER[1])
    assert res.ok and pgwire.AUTH_MD5 in res.auth_requests, res
    res = startup(p.port, MD5USER[0], "wrong")
    assert not res.ok and res.error["C"] == "28P01", res
    with p.connect(MD5USER[0], MD5USER[1]) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (MD5USER[0],)
    # everybody else: SCRAM
    res = startup(p.port, REPL_USER[0], REPL_USER[1])
    assert res.ok and pgwire.AUTH_SASL in res.auth_requests, res


def test_reject_line_refuses_with_postgresql_message_and_order_decides(
        pg, proxy, config, tmp_path):
    path = hba(tmp_path, f"host all {MD5USER[0]} 127.0.0.1/32 reject\n"
                         "host all all 127.0.0.1/32 trust\n")
    p = proxy(hba_config(config, path))
    res = startup(p.port, MD5USER[0], MD5USER[1])
    assert not res.ok and res.error["C"] == "28000", res
    assert res.error["M"] == (f'pg_hba.conf rejects connection for host "127.0.0.1", '
                              f'user "{MD5USER[0]}", database "{APPDB}", no encryption'), res
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
        p.connect(MD5USER[0], MD5USER[1]).close()
    # one log line naming the file and line of the rule
    assert p.wait_log(rf"user={MD5USER[0]} .*pg_hba.conf rejects connection.*"
                      rf"pg_hba rule {path}:1, method reject")
    res = startup(p.port, ALICE[0], None)
    assert res.ok and res.auth_requests == [pgwire.AUTH_OK], res

    # the same lines the other way round: the trust line comes first and wins
    path2 = hba(tmp_path, "host all all 127.0.0.1/32 trust\n"
                          f"host all {MD5USER[0]} 127.0.0.1/32 reject\n", "swapped.conf")
    p2 = proxy(hba_config(config, path2))
    res = startup(p2.port, MD5USER[0], None)
    assert res.ok and res.auth_requests == [pgwire.AUTH_OK], res


def test_no_matching_rule_is_28000_with_postgresql_text_and_logged(pg, proxy, config, tmp_path):
    path = hba(tmp_path, f"host {APPDB} {ALICE[0]} 127.0.0.1/32 scram-sha-256\n")
    p = proxy(hba_config(config, path))
    res = startup(p.port, REPL_USER[0], REPL_USER[1])
    assert not res.ok and res.error["C"] == "28000", res
    assert res.error["M"] == (f'no pg_hba.conf entry for host "127.0.0.1", '
                              f'user "{REPL_USER[0]}", database "{APPDB}", no encryption'), res
    # nothing asked before the refusal: a client cannot probe passwords
    assert res.auth_requests == [], res
    assert p.wait_log(rf"user={REPL_USER[0]} .*no pg_hba.conf entry.*: no rule of {path} matches")
    res = startup(p.port, ALICE[0], ALICE[1])
    assert res.ok, res


def test_wrong_password_log_names_the_rule_and_never_the_password(pg, proxy, config, tmp_path):
    path = hba(tmp_path, "# comment\n\nhost all all 127.0.0.1/32 md5\n")
    p = proxy(hba_config(config, path))
    secret = "Very-Secret-Guess-4711"
    res = startup(p.port, ALICE[0], secret)
    assert not res.ok and res.error["C"] == "28P01", res
    m = p.wait_log(rf"password authentication failed for user \"{ALICE[0]}\" "
                   rf"\(pg_hba rule {path}:3, method md5\)")
    assert m, p.log_tail()
    assert secret not in p.log()


def test_inline_auth_rules_work_like_the_file(pg, proxy, config):
    rules = [
        {"type": "host", "database": APPDB, "user": ALICE[0], "address": "127.0.0.1/32",
         "method": "trust"},
        {"type": "host", "user": f"{MD5USER[0]},{REPL_USER[0]}", "address": "127.0.0.0/8",
         "method": "reject"},
        {"type": "host", "address": "all", "method": "scram-sha-256"},
    ]
    p = proxy(hba_config(config, rules=rules))
    res = startup(p.port, ALICE[0], None)
    assert res.ok and res.auth_requests == [pgwire.AUTH_OK], res
    res = startup(p.port, REPL_USER[0], REPL_USER[1])
    assert not res.ok and res.error["C"] == "28000", res
    assert p.wait_log(r"pg_hba rule .*\[\[auth.rules\]\] #2, method reject")
    res = startup(p.port, PGB_AUTH[0], PGB_AUTH[1])
    assert res.ok and pgwire.AUTH_SASL in res.auth_requests, res


def test_group_of_databases_from_a_list_and_an_at_file(pg, proxy, config, tmp_path):
    (tmp_path / "reporting.txt").write_text("# databases of the reporting group\npostgres\n")
    path = hba(tmp_path, f"host \"{APPDB}\",@reporting.txt {ALICE[0]} 127.0.0.1/32 trust\n"
                         f"host all {ALICE[0]} 127.0.0.1/32 reject\n")
    p = proxy(hba_config(config, path))
    for db in (APPDB, "postgres"):
        res = startup(p.port, ALICE[0], None, dbname=db)
        assert res.ok and res.auth_requests == [pgwire.AUTH_OK], (db, res)
    res = startup(p.port, ALICE[0], None, dbname="template1")
    assert not res.ok and "rejects connection" in res.error["M"], res


def test_hba_file_error_names_file_and_line(pg, proxy, config, tmp_path):
    path = hba(tmp_path, "host all all 127.0.0.1/32 trust\nhost all all 127.0.0.1 md5\n")
    p = proxy(hba_config(config, path), wait=False)
    assert p.wait(20) not in (None, 0), "a bad hba file must stop the start"
    assert f"{path}:2: address \"127.0.0.1\" needs a CIDR mask" in p.log(), p.log_tail()
    p.check_exit = False


def test_hostssl_and_hostnossl_follow_the_client_tls(pg, proxy, config, tmp_path, cert):
    crt, key = cert
    path = hba(tmp_path, "hostssl all all 127.0.0.1/32 password\n"
                         f"hostnossl all {ALICE[0]} 127.0.0.1/32 scram-sha-256\n")
    p = proxy(hba_config(config, path, tls={"client_mode": "allow", "cert_file": str(crt),
                                            "key_file": str(key)}))
    # over TLS: the hostssl line, cleartext password (libpq sends it)
    with p.connect(MD5USER[0], MD5USER[1], sslmode="require") as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT current_user").fetchone() == (MD5USER[0],)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        p.connect(MD5USER[0], "wrong", sslmode="require").close()
    # without TLS: hostnossl for alice (SCRAM), and no line for md5user
    res = startup(p.port, ALICE[0], ALICE[1])
    assert res.ok and pgwire.AUTH_SASL in res.auth_requests, res
    with pytest.raises(psycopg.OperationalError,
                       match=f'no pg_hba.conf entry for host "127.0.0.1", user "{MD5USER[0]}", '
                             f'database "{APPDB}", no encryption'):
        p.connect(MD5USER[0], MD5USER[1], sslmode="disable").close()
    # alice over TLS takes the first line (password) too
    with p.connect(ALICE[0], ALICE[1], sslmode="require") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_password_method_refused_without_tls(pg, proxy, config, tmp_path):
    path = hba(tmp_path, "host all all 127.0.0.1/32 password\n")
    p = proxy(hba_config(config, path))
    res = startup(p.port, ALICE[0], ALICE[1])
    assert not res.ok and res.error["C"] == "28000", res
    assert "requires an SSL/TLS connection" in res.error["M"], res
    # refused before the password was asked for: it never crossed in clear
    assert pgwire.AUTH_CLEARTEXT not in res.auth_requests, res


def test_ipv6_client_matches_ipv6_rule_not_ipv4_one(pg, proxy, config, tmp_path):
    from conftest import free_port
    path = hba(tmp_path, "host all all 0.0.0.0/0 reject\n"
                         f"host {APPDB} {ALICE[0]} ::1/128 trust\n")
    port = free_port()
    p = proxy(hba_config(config, path), wait=False, listen_address=f"[::1]:{port}")
    deadline = time.monotonic() + 20
    while not port_accepts(port, "::1"):
        assert p.running() and time.monotonic() < deadline, p.log_tail()
        time.sleep(0.05)
    res = startup(port, ALICE[0], None, host="::1")
    assert res.ok and res.auth_requests == [pgwire.AUTH_OK], res
    with psycopg.connect(f"host=::1 port={port} user={ALICE[0]} dbname={APPDB}",
                         autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ALICE[0],)
    res = startup(port, MD5USER[0], MD5USER[1], host="::1")
    assert not res.ok and res.error["C"] == "28000", res
    assert res.error["M"] == (f'no pg_hba.conf entry for host "::1", user "{MD5USER[0]}", '
                              f'database "{APPDB}", no encryption'), res


def test_failed_logins_from_one_address_are_limited_while_another_logs_in(
        pg, proxy, config, tmp_path):
    path = hba(tmp_path, "host all all 127.0.0.0/8 scram-sha-256\n")
    p = proxy(hba_config(config, path, auth={"max_failures_per_minute": 3}))
    for _ in range(3):
        res = startup(p.port, ALICE[0], "guess", source="127.0.0.2")
        assert not res.ok and res.error["C"] == "28P01", res
    # the 4th try, even with the right password, is refused without a check
    res = startup(p.port, ALICE[0], ALICE[1], source="127.0.0.2")
    assert not res.ok and res.error["C"] == "53300", res
    assert res.error["M"] == "too many failed logins from 127.0.0.2; try again later", res
    assert res.auth_requests == [], res
    assert p.wait_log(r"too many failed logins from 127.0.0.2.*max_failures_per_minute 3")
    # another address is not affected, libpq included
    res = startup(p.port, ALICE[0], ALICE[1], source="127.0.0.3")
    assert res.ok, res
    with p.connect(ALICE[0], ALICE[1]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_failure_limit_off_by_default(pg, proxy, config, tmp_path):
    path = hba(tmp_path, "host all all 127.0.0.0/8 md5\n")
    p = proxy(hba_config(config, path))
    for _ in range(6):
        res = startup(p.port, ALICE[0], "guess", source="127.0.0.4")
        assert not res.ok and res.error["C"] == "28P01", res
    res = startup(p.port, ALICE[0], ALICE[1], source="127.0.0.4")
    assert res.ok, res


def test_reload_applies_an_edited_hba_file_to_new_logins(pg, proxy, config, tmp_path):
    path = hba(tmp_path, f"host all {ALICE[0]} 127.0.0.1/32 trust\n")
    p = proxy(hba_config(config, path))
    held = p.connect(ALICE[0], None)
    res = startup(p.port, ALICE[0], None)
    assert res.ok, res
    path.write_text(f"host all {ALICE[0]} 127.0.0.1/32 reject\n")
    mark = len(p.log())
    p.sighup()
    assert p.wait_log(r"(?i)\breloaded\b", timeout=10, start=mark), p.log()[mark:]
    deadline = time.monotonic() + 10
    while True:
        res = startup(p.port, ALICE[0], None)
        if not res.ok or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not res.ok and res.error["C"] == "28000", res
    assert "rejects connection" in res.error["M"], res
    # a client logged in before keeps its session
    assert held.execute("SELECT 1").fetchone() == (1,)
    held.close()
    # a broken file on reload is refused and the rules in force stay
    path.write_text("host all all 127.0.0.1/32 bogus\n")
    mark = len(p.log())
    p.sighup()
    assert p.wait_log(rf"{path}:1: invalid authentication method \"bogus\"", timeout=10,
                      start=mark), p.log()[mark:]
    res = startup(p.port, ALICE[0], None)
    assert not res.ok and "rejects connection" in res.error["M"], res


def test_config_push_of_another_hba_file_applies_to_new_logins(pg, proxy, config, tmp_path,
                                                               short_dir):
    from conftest import helioctl
    a = hba(tmp_path, f"host all {ALICE[0]} 127.0.0.1/32 trust\n", "a.conf")
    b = hba(tmp_path, f"host all {ALICE[0]} 127.0.0.1/32 reject\n", "b.conf")
    p = proxy(hba_config(config, a, state_dir=str(short_dir / "state")))
    res = startup(p.port, ALICE[0], None)
    assert res.ok, res
    helioctl(p, "config", "set", "auth.hba_file", str(b))
    res = startup(p.port, ALICE[0], None)
    assert not res.ok and res.error["C"] == "28000", res
    assert p.wait_log(rf"pg_hba rule {b}:1, method reject"), p.log_tail()
    # a broken file: helioctl says the data plane refused it, with file:line
    bad = hba(tmp_path, "host all all 127.0.0.1/32 bogus\n", "bad.conf")
    r = helioctl(p, "config", "set", "auth.hba_file", str(bad), check=4)
    assert f'{bad}:1: invalid authentication method "bogus"' in r.stdout + r.stderr, r
    res = startup(p.port, ALICE[0], None)
    assert not res.ok and "rejects connection" in res.error["M"], res
