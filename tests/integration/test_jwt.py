"""The jwt hba method end to end: psql-style logins (psycopg over TLS) with real
tokens (PyJWT, keys from the openssl CLI, written by tests/unit/jwt_tokens.py):
HS256/RS256/ES256 accepted; expired, not yet valid, wrong audience, wrong
issuer, alg none, algorithm confusion, tampered signature and another user's
token refused with 28P01 and a log line that gives the reason but never the
token; a JWKS file read again on SIGHUP.

Needs auth.hba_file (the HBA part of issue 18); skipped, saying so, by a
proxy built without it."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from conftest import ALICE, helios_bin

ROOT = Path(__file__).resolve().parents[2]


def _has_hba():
    try:
        out = subprocess.run([str(helios_bin() / "heliosproxy"), "--print-config-docs"],
                             capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return False
    return "`hba_file`" in out


pytestmark = pytest.mark.skipif(not _has_hba(),
                                reason="this heliosproxy has no auth.hba_file (jwt rules)")

USER = ALICE[0]  # jwt_tokens.py issues its tokens for "alice"
assert USER == "alice"


@pytest.fixture
def jwtdir(tmp_path):
    d = tmp_path / "jwt"
    d.mkdir()
    subprocess.run(["/usr/bin/python3", str(ROOT / "tests/unit/jwt_tokens.py"), str(d)],
                   check=True, timeout=120)
    # the proxy's own TLS certificate (the jwt method needs TLS)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(d / "tls.key"), "-out",
                    str(d / "tls.crt")], check=True, capture_output=True, timeout=60)
    (d / "tls.key").chmod(0o600)
    return d


def token(d, case):
    return (d / f"{case}.jwt").read_text().strip()


def jwt_proxy(proxy, config, d, options):
    hba = d / "pg_hba.conf"
    hba.write_text(f"hostssl all all 127.0.0.1/32 jwt {options}\n")
    return proxy(config(auth={"hba_file": str(hba)},
                        tls={"client_mode": "allow", "cert_file": str(d / "tls.crt"),
                             "key_file": str(d / "tls.key")}))


def login(p, tok):
    with p.connect(USER, tok, sslmode="require") as conn:
        return conn.execute("SELECT current_user").fetchone()[0]


def refused(p, tok, reason):
    """The login fails as a wrong password does, and the log says why."""
    start = len(p.log())
    with pytest.raises(psycopg.OperationalError,
                       match=f'JWT authentication failed for user "{USER}"'):
        login(p, tok)
    assert p.wait_log(reason, start=start), (reason, p.log_tail())


KEYS = "jwt_key_file={d}/rsa1.pub jwt_key_file={d}/ec256.pub jwt_secret_file={d}/hs.secret"
CHECKS = "jwt_issuer=https://issuer.test jwt_audience=helios"


def test_valid_hs256_rs256_es256_tokens_log_in(pg, proxy, config, jwtdir):
    p = jwt_proxy(proxy, config, jwtdir, KEYS.format(d=jwtdir) + " " + CHECKS)
    for case in ("hs256_valid", "rs256_valid", "es256_valid", "hs512_valid", "rs512_valid",
                 "aud_array"):
        assert login(p, token(jwtdir, case)) == USER, case


def test_bad_tokens_are_refused_with_reason_and_never_logged(pg, proxy, config, jwtdir):
    p = jwt_proxy(proxy, config, jwtdir, KEYS.format(d=jwtdir) + " " + CHECKS)
    good = token(jwtdir, "rs256_valid")
    sig = good.rsplit(".", 1)[1]
    mid = len(sig) // 2
    tampered = good[:-len(sig)] + sig[:mid] + ("A" if sig[mid] != "A" else "B") + sig[mid + 1:]
    cases = [
        (token(jwtdir, "expired"), r"token expired"),
        (token(jwtdir, "nbf_future"), r"not valid for another .* \(nbf"),
        (token(jwtdir, "iat_future"), r"\(iat"),
        (token(jwtdir, "wrong_aud"), r"aud does not contain \\?\"helios"),
        (token(jwtdir, "wrong_iss"), r"iss .* is not the configured issuer"),
        (token(jwtdir, "alg_none"), r"alg \\?\"none\\?\" refused"),
        (token(jwtdir, "confusion"), r"bad signature \(alg HS256\)"),
        (tampered, r"bad signature \(alg RS256\)"),
        (token(jwtdir, "wrong_user"), r"is \\?\"mallory\\?\", not the login user"),
        (token(jwtdir, "rs256_other_key"), r"bad signature"),
    ]
    for tok, reason in cases:
        refused(p, tok, reason)
    log = p.log()
    for tok, _ in cases:
        assert tok not in log
        sig = tok.rsplit(".", 1)[1]
        assert not sig or sig not in log, "a token signature reached the log"
    # the proxy still takes a good token after all that
    assert login(p, good) == USER


def test_rsa_key_alone_never_verifies_an_hs256_token(pg, proxy, config, jwtdir):
    # only the RSA public key configured: the HS256 token signed with its PEM text
    # (the algorithm confusion attack) must find no key to use
    p = jwt_proxy(proxy, config, jwtdir, f"jwt_key_file={jwtdir}/rsa1.pub {CHECKS}")
    refused(p, token(jwtdir, "confusion"), r"alg HS256 does not fit the key of jwt_key_file")
    assert login(p, token(jwtdir, "rs256_valid")) == USER


def test_jwks_picks_key_by_kid_and_is_read_again_on_sighup(pg, proxy, config, jwtdir):
    live = jwtdir / "live.json"
    shutil.copy(jwtdir / "jwks.json", live)
    p = jwt_proxy(proxy, config, jwtdir, f"jwt_jwks_file={live} {CHECKS}")
    assert login(p, token(jwtdir, "kid1")) == USER
    assert login(p, token(jwtdir, "kid2")) == USER
    refused(p, token(jwtdir, "kid3"), r"no key with kid \\?\"k3")
    # the identity provider rotates its keys: a new JWKS, then SIGHUP
    shutil.copy(jwtdir / "jwks2.json", live)
    start = len(p.log())
    p.sighup()
    # the new snapshot is in place once kid3 logs in
    deadline = time.monotonic() + 10
    while True:
        try:
            assert login(p, token(jwtdir, "kid3")) == USER
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail("kid3 still refused 10 s after SIGHUP:\n" + p.log()[start:])
            time.sleep(0.2)
    refused(p, token(jwtdir, "kid1"), r"no key with kid \\?\"k1")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
