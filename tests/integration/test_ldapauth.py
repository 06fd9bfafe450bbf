"""dataplane/auth/ldapauth against a real slapd (tests/integration/ldapfix.py).

The module is driven by tests/ldap/ldapauth_probe.c (build/<mode>/tests/
ldapauth-probe): a worker's event loop starts each check and gets the answer
in its mailbox, as the login code does. The probe takes a pg_hba line's LDAP
options as arguments and one "user<TAB>password" per stdin line; it answers
result=OK|EACCES|EHOSTUNREACH ms=... thread=worker|OTHER why=...
"""

import socket
import subprocess
import time

import pytest

from conftest import helios_bin, sanitizer_report
from ldapfix import LDAP_USERS, PEOPLE, SEARCH_DN, SEARCH_PW, SUFFIX, TWIN_PW, closed_port
from ldapfix import slapd  # noqa: F401  (the fixture)

ALICE_PW = LDAP_USERS["alice"]


def probe_path():
    return helios_bin().parent / "tests" / "ldapauth-probe"


def parse_result(line):
    head, why = line.rstrip("\n").split(" why=", 1)
    out = dict(kv.split("=", 1) for kv in head.split())
    out["why"] = why
    out["ms"] = int(out["ms"])
    out["id"] = int(out["id"])
    assert out["thread"] == "worker", "done callback ran off the worker's thread"
    return out


class Probe:
    """One ldapauth-probe process: checks run one after the other in it, so
    its outage state (and log lines) span the checks."""

    def __init__(self, *opts):
        self.p = subprocess.Popen([str(probe_path()), *opts], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = None
        self.rest = None

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def line(self):
        return self.p.stdout.readline()

    def result(self):
        line = self.line()
        assert line.startswith("result="), f"probe said {line!r}: {self.close()}"
        return parse_result(line)

    def check(self, user, password, *opts):
        self.send("\t".join([user, password, " ".join(opts)]))
        return self.result()

    def close(self):
        if self.stderr is None:
            self.p.stdin.close()
            self.p.wait(30)
            self.rest = self.p.stdout.read()
            self.stderr = self.p.stderr.read()
            self.p.stdout.close()
            self.p.stderr.close()
            rep = sanitizer_report(self.stderr)
            assert rep is None, rep
            assert self.p.returncode == 0, self.stderr
        return self.stderr


def run(opts, checks):
    """Runs checks [(user, password)] in one probe; returns (results, stderr)."""
    p = Probe(*opts)
    try:
        res = [p.check(u, pw) for u, pw in checks]
    finally:
        err = p.close()
    return res, err


def simple_opts(s, **extra):
    o = {"ldapserver": "127.0.0.1", "ldapport": s.port, "ldapprefix": "uid=",
         "ldapsuffix": f",{PEOPLE}", "ldaptimeout": 2}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items() if v is not None]


def search_opts(s, **extra):
    o = {"ldapserver": "127.0.0.1", "ldapport": s.port, "ldapbasedn": SUFFIX,
         "ldapbinddn": SEARCH_DN, "ldapbindpasswd": SEARCH_PW, "ldaptimeout": 2}
    o.update(extra)
    return [f"{k}={v}" for k, v in o.items() if v is not None]


@pytest.fixture
def up(slapd):  # noqa: F811
    """slapd running and answering when the test starts and ends (a test
    that stops or pauses it gets it back even when it fails)."""
    yield slapd
    if slapd.proc is not None:
        slapd.resume()
    else:
        slapd.start()


# ---- simple bind --------------------------------------------------------------

def test_simple_bind_accepts_the_right_password_and_refuses_others(up):
    res, _ = run(simple_opts(up), [("alice", ALICE_PW), ("alice", "wrong"),
                                   ("nobody", ALICE_PW), ("carol", LDAP_USERS["carol"])])
    assert [r["result"] for r in res] == ["OK", "EACCES", "EACCES", "OK"], res
    assert "Invalid credentials" in res[1]["why"]
    assert "uid=nobody," in res[2]["why"]


def test_simple_bind_escapes_dn_specials_in_the_user_name(up):
    # "alice,ou=people" unescaped would name another DN; escaped it is one RDN value
    res, _ = run(simple_opts(up, ldapsuffix=f",{SUFFIX}"), [("alice,ou=people", ALICE_PW)])
    assert res[0]["result"] == "EACCES", res
    assert "alice\\,ou\\=people" in res[0]["why"]


# ---- search+bind --------------------------------------------------------------

def test_search_bind_accepts_the_right_password(up):
    res, _ = run(search_opts(up), [("alice", ALICE_PW), ("bob", LDAP_USERS["bob"])])
    assert [r["result"] for r in res] == ["OK", "OK"], res


def test_search_bind_wrong_password_and_unknown_user_are_eacces(up):
    res, _ = run(search_opts(up), [("alice", "not-it"), ("nobody", ALICE_PW)])
    assert [r["result"] for r in res] == ["EACCES", "EACCES"], res
    assert 'bind as "uid=alice,ou=people,dc=helios,dc=test": Invalid credentials' in res[0]["why"]
    assert "no entry for (uid=nobody)" in res[1]["why"]


def test_search_filter_injection_does_not_match(up):
    # Unescaped, "ali*" would find exactly alice and log in with her password;
    # "*)(uid=*" would widen the filter. Escaped (RFC 4515) neither matches.
    res, _ = run(search_opts(up), [("ali*", ALICE_PW), ("*)(uid=*", ALICE_PW), ("*", ALICE_PW)])
    assert [r["result"] for r in res] == ["EACCES"] * 3, res
    assert "(uid=ali\\2a)" in res[0]["why"]
    assert "(uid=\\2a\\29\\28uid=\\2a)" in res[1]["why"]
    assert all("no entry" in r["why"] for r in res), res


def test_search_filter_with_username_placeholder(up):
    res, _ = run(search_opts(up, ldapsearchfilter="(|(mail=$username@helios.test)(uid=none))"),
                 [("bob", LDAP_USERS["bob"]), ("b*", LDAP_USERS["bob"])])
    assert [r["result"] for r in res] == ["OK", "EACCES"], res
    assert "(mail=b\\2a@helios.test)" in res[1]["why"]


def test_search_attribute_other_than_uid(up):
    res, _ = run(search_opts(up, ldapsearchattribute="mail"),
                 [("alice@helios.test", ALICE_PW), ("alice", ALICE_PW)])
    assert [r["result"] for r in res] == ["OK", "EACCES"], res
    assert "(mail=alice)" in res[1]["why"], res


def test_search_matching_two_entries_is_refused(up):
    res, _ = run(search_opts(up, ldapsearchattribute="cn"), [("twin", TWIN_PW)])
    assert res[0]["result"] == "EACCES" and "more than one entry" in res[0]["why"], res


def test_search_without_the_bind_dn_finds_nobody(up):
    # the directory lets anonymous clients read nothing: the search account matters
    res, _ = run(search_opts(up, ldapbinddn=None, ldapbindpasswd=None), [("alice", ALICE_PW)])
    # slapd hides even the base from anonymous clients: "No such object"
    assert res[0]["result"] == "EACCES" and "search (uid=alice)" in res[0]["why"], res
    assert "No such object" in res[0]["why"] or "no entry" in res[0]["why"], res


def test_wrong_search_password_is_eacces_and_not_in_the_reason(up):
    res, _ = run(search_opts(up, ldapbindpasswd="searcher-WRONG"), [("alice", ALICE_PW)])
    assert res[0]["result"] == "EACCES", res
    assert f'search DN "{SEARCH_DN}"' in res[0]["why"]
    assert "searcher-WRONG" not in res[0]["why"] and ALICE_PW not in res[0]["why"]


def test_empty_password_is_refused_before_any_bind(up):
    before = up.binds()
    res, _ = run(search_opts(up), [("alice", "")])
    assert res[0]["result"] == "EACCES" and "empty password" in res[0]["why"], res
    res2, _ = run(simple_opts(up), [("alice", "")])
    assert res2[0]["result"] == "EACCES", res2
    time.sleep(0.2)  # slapd's log is written asynchronously
    assert up.binds() == before, "an empty password reached slapd as a BIND"
    # and the count does move for a real check (the assertion above can fail)
    run(simple_opts(up), [("alice", ALICE_PW)])
    for _ in range(50):
        if up.binds() > before:
            break
        time.sleep(0.1)
    assert up.binds() > before


# ---- TLS ----------------------------------------------------------------------

def test_starttls_and_ldaps_with_the_test_ca(up):
    res, _ = run(search_opts(up, ldaptls=1, ldapcafile=up.ca_file), [("alice", ALICE_PW),
                                                                      ("alice", "wrong")])
    assert [r["result"] for r in res] == ["OK", "EACCES"], res
    res, _ = run(simple_opts(up, ldapscheme="ldaps", ldapport=up.ldaps_port,
                             ldapcafile=up.ca_file), [("alice", ALICE_PW)])
    assert res[0]["result"] == "OK" and res[0]["why"].startswith("ldaps://"), res


def test_ipv6_server_with_starttls_checks_the_address_in_the_certificate(up):
    # ::1 is in the server certificate's IP SANs; the URI needs brackets
    res, _ = run(search_opts(up, ldapserver="::1", ldaptls=1, ldapcafile=up.ca_file),
                 [("alice", ALICE_PW)])
    assert res[0]["result"] == "OK", res
    assert res[0]["why"].startswith(f"ldap://[::1]:{up.port}:"), res


def test_a_certificate_that_does_not_name_the_server_is_refused(up):
    # same slapd, same trusted CA, but reached as 127.0.0.3, which its
    # certificate does not name (it names 127.0.0.1, ::1 and localhost)
    opts = simple_opts(up, ldapscheme="ldaps", ldapport=up.ldaps_port, ldapcafile=up.ca_file)
    res, _ = run(opts + ["ldapserver=127.0.0.3"], [("alice", ALICE_PW)])
    assert res[0]["result"] == "EHOSTUNREACH" and "TLS handshake" in res[0]["why"], res
    res, _ = run(opts + ["ldapserver=127.0.0.1"], [("alice", ALICE_PW)])
    assert res[0]["result"] == "OK", res


def test_many_tls_checks_at_once_all_answer_right(up):
    # the pool's threads run libldap (and its TLS) side by side
    p = Probe(*search_opts(up, ldaptls=1, ldapcafile=up.ca_file))
    n = 24
    try:
        for i in range(n):
            user = ("alice", "bob", "carol")[i % 3]
            pw = LDAP_USERS[user] if i % 4 else "wrong"
            p.send(f"&{user}\t{pw}")
        res = sorted((p.result() for _ in range(n)), key=lambda r: r["id"])
    finally:
        p.close()
    want = ["OK" if i % 4 else "EACCES" for i in range(n)]
    assert [r["result"] for r in res] == want, res


@pytest.mark.parametrize("tls", ["starttls", "ldaps"])
def test_a_server_certificate_from_another_ca_is_refused(up, tls):
    extra = ({"ldaptls": 1} if tls == "starttls" else
             {"ldapscheme": "ldaps", "ldapport": up.ldaps_port})
    before = up.binds()
    for ca in (up.wrong_ca_file, None):  # an unrelated CA; the system's CAs
        res, err = run(simple_opts(up, ldapcafile=ca, **extra), [("alice", ALICE_PW)])
        assert res[0]["result"] == "EHOSTUNREACH", res
        # Debian's libldap (GnuTLS) does not say which check failed
        assert "TLS handshake" in res[0]["why"], res
        assert "unreachable or unusable" in err
    time.sleep(0.2)
    assert up.binds() == before, "the password was sent over an unverified connection"


# ---- outages ------------------------------------------------------------------

def test_ldap_down_is_ehostunreach_at_once(up):
    res, _ = run(simple_opts(up, ldapport=closed_port()), [("alice", ALICE_PW)])
    assert res[0]["result"] == "EHOSTUNREACH", res
    assert "no LDAP server answered" in res[0]["why"] and ALICE_PW not in res[0]["why"]
    assert res[0]["ms"] < 1500, res


def test_a_hung_server_is_ehostunreach_within_the_timeout(up):
    up.pause()  # accepts connections, answers nothing
    res, _ = run(simple_opts(up, ldaptimeout=1), [("alice", ALICE_PW)])
    up.resume()
    assert res[0]["result"] == "EHOSTUNREACH", res
    # one server, ldaptimeout=1: about a second, never the system's minutes
    assert 800 <= res[0]["ms"] < 3000, res


def test_second_server_is_used_when_the_first_is_down(up):
    # 127.0.0.2 is loopback too, but slapd listens on 127.0.0.1 only
    res, err = run(simple_opts(up, ldapserver="127.0.0.2 127.0.0.1"),
                   [("alice", ALICE_PW), ("alice", "wrong")])
    assert [r["result"] for r in res] == ["OK", "EACCES"], res
    assert res[0]["why"].startswith(f"ldap://127.0.0.1:{up.port}"), res
    assert err.count(f"ldap://127.0.0.2:{up.port} is unreachable") == 1, err


def test_one_log_line_per_outage_not_per_login(up):
    p = Probe(*simple_opts(up))
    try:
        assert p.check("alice", ALICE_PW)["result"] == "OK"
        up.stop()
        for _ in range(5):
            assert p.check("alice", ALICE_PW)["result"] == "EHOSTUNREACH"
        up.start()
        assert p.check("alice", ALICE_PW)["result"] == "OK"
        assert p.check("bob", LDAP_USERS["bob"])["result"] == "OK"
        up.stop()
        assert p.check("alice", ALICE_PW)["result"] == "EHOSTUNREACH"
        up.start()
        assert p.check("alice", ALICE_PW)["result"] == "OK"
    finally:
        err = p.close()
    uri = f"ldap://127.0.0.1:{up.port}"
    down = [ln for ln in err.splitlines() if f"{uri} is unreachable" in ln]
    back = [ln for ln in err.splitlines() if f"{uri} answers again" in ln]
    assert len(down) == 2 and len(back) == 2, err
    assert "(5 failed attempts)" in back[0] and "(1 failed attempts)" in back[1], back
    assert ALICE_PW not in err


@pytest.fixture
def hung_listener():
    """listen(addr, port): a socket that completes TCP handshakes (the
    kernel's backlog) and never reads or answers: a hung LDAP server."""
    socks = []

    def listen(addr="127.0.0.1", port=0):
        s = socket.socket()
        s.bind((addr, port))
        s.listen(16)
        socks.append(s)
        return s.getsockname()[1]
    yield listen
    for s in socks:
        s.close()


def test_a_check_waiting_on_a_hung_server_does_not_hold_up_others(up, hung_listener):
    hung = hung_listener()
    p = Probe(*simple_opts(up))
    try:
        p.send(f"&alice\t{ALICE_PW}\tldapport={hung} ldaptimeout=2")
        other = p.check("bob", LDAP_USERS["bob"])
        late = p.result()
    finally:
        p.close()
    assert other["id"] == 2 and other["result"] == "OK" and other["ms"] < 1000, other
    assert late["id"] == 1 and late["result"] == "EHOSTUNREACH", late
    assert 1800 <= late["ms"] < 4000, late


def test_failover_when_the_first_server_hangs(up, hung_listener):
    hung_listener("127.0.0.2", up.port)
    res, err = run(simple_opts(up, ldapserver="127.0.0.2 127.0.0.1", ldaptimeout=1),
                   [("alice", ALICE_PW)])
    assert res[0]["result"] == "OK", res
    assert 800 <= res[0]["ms"] < 3000, res
    assert f"ldap://127.0.0.2:{up.port} is unreachable" in err


def test_a_server_that_just_failed_is_tried_last(up, hung_listener):
    hung_listener("127.0.0.2", up.port)
    p = Probe(*simple_opts(up, ldapserver="127.0.0.2 127.0.0.1", ldaptimeout=1))
    try:
        first = p.check("alice", ALICE_PW)
        second = p.check("bob", LDAP_USERS["bob"])
    finally:
        err = p.close()
    assert first["result"] == "OK" and first["ms"] >= 800, first
    # the hung server failed a moment ago: not waited for again
    assert second["result"] == "OK" and second["ms"] < 500, second
    assert err.count("127.0.0.2") == 1, err


def test_cancelled_checks_do_not_hold_the_pool(up, hung_listener):
    hung = hung_listener()
    slow = f"ldapport={hung} ldaptimeout=2"
    p = Probe(*simple_opts(up))
    try:
        for _ in range(4):  # the pool's 4 threads wait on the hung server
            p.send(f"&alice\t{ALICE_PW}\t{slow}")
        time.sleep(0.3)
        for i in range(8):  # queued behind them, then their clients leave
            p.send(f"~alice\t{ALICE_PW}\t{slow}")
            assert p.line().startswith("cancelled id=")
        p.send(f"&bob\t{LDAP_USERS['bob']}")
        res = [p.result() for _ in range(5)]
    finally:
        p.close()
    bob = [r for r in res if r["id"] == 13]
    assert len(bob) == 1 and bob[0]["result"] == "OK", res
    # it waited for a thread (about 2 s), not for 8 more timeouts on 4 threads
    assert bob[0]["ms"] < 3000, bob
    assert p.rest == "", p.rest


def test_a_cancelled_check_never_answers(up):
    p = Probe(*simple_opts(up))
    try:
        p.send(f"~alice\t{ALICE_PW}")
        assert p.line() == "cancelled id=1\n"
        p.send("sleep 300")  # the cancelled check's answer reaches the loop meanwhile
        assert p.line() == "slept\n"
        r = p.check("bob", LDAP_USERS["bob"])
    finally:
        p.close()
    assert r["id"] == 2 and r["result"] == "OK", r
    assert p.rest == "", p.rest


# ---- options ------------------------------------------------------------------

@pytest.mark.parametrize("opts,msg", [
    (["ldapserver=127.0.0.1", "ldapport=abc", "ldapprefix=uid="], "ldapport: \"abc\""),
    (["ldapserver=127.0.0.1", "ldapscheme=ftp", "ldapprefix=uid="], "ldapscheme: \"ftp\""),
    (["ldapserver=127.0.0.1", "ldaptimeout=0", "ldapprefix=uid="], "ldaptimeout:"),
    (["ldapserver=127.0.0.1", "ldapprefix=uid=", "ldapbasedn=dc=x"], "cannot be mixed"),
    (["ldapserver=127.0.0.1"], "ldapbasedn: required"),
    (["ldapprefix=uid="], "ldapserver: required"),
    (["ldapserver=ldap://h", "ldapprefix=uid="], "ldapserver: \"ldap://h\""),
    (["ldapserver=h", "ldapscheme=ldaps", "ldaptls=1", "ldapprefix=uid="], "ldaptls:"),
    (["ldapserver=h", "ldapbasedn=dc=x", "ldapsearchattribute=uid",
      "ldapsearchfilter=(uid=$username)"], "ldapsearchattribute and ldapsearchfilter"),
    (["ldapserver=h", "ldapprefix=uid=", "ldapfoo=1"], "ldapfoo: not an LDAP option"),
])
def test_bad_options_are_refused_naming_the_option(opts, msg):
    r = subprocess.run([str(probe_path()), *opts], input="", capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout.startswith("config error: ") and msg in r.stdout, r.stdout
