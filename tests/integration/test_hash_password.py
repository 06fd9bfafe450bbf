"""heliosproxy --hash-password: the SCRAM-SHA-256 secret it prints is the one
PostgreSQL stores, so the config can hold it instead of the password; psql logs
in through the proxy with the password (SCRAM passthrough to the server, whose
role has the same secret)."""

import os
import pty
import select
import subprocess

import pytest

from conftest import APPDB, DEFAULT_USERS, PG_BIN, helios_bin

USER = "hashuser"
PASSWORD = "hash-pw-\u00e9t\u00e9 42"  # non-ASCII that SASLprep leaves alone


def hash_password(password, *args):
    r = subprocess.run([str(helios_bin() / "heliosproxy"), "--hash-password", *args],
                       input=password + "\n", capture_output=True, text=True, timeout=30)
    return r


def psql(port, user, password, sql="SELECT current_user"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    env["PGCONNECT_TIMEOUT"] = "10"
    return subprocess.run([str(PG_BIN / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(port),
                           "-U", user, "-d", APPDB, "-c", sql],
                          capture_output=True, text=True, env=env, timeout=30)


def drop_role(pg, name):
    if pg.su.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        pg.su.execute(f"REVOKE ALL ON DATABASE {APPDB} FROM {name}")
        pg.su.execute(f"DROP ROLE {name}")


@pytest.fixture
def hashed_role(pg):
    """A role whose server password is set from the printed secret itself."""
    r = hash_password(PASSWORD, USER)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    drop_role(pg, USER)
    # PostgreSQL stores a SCRAM secret given as the password as it is
    pg.su.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{secret}'")
    pg.su.execute(f"GRANT CONNECT ON DATABASE {APPDB} TO {USER}")
    yield secret
    drop_role(pg, USER)


def test_hash_password_prints_postgresql_scram_secret(pg):
    r = hash_password(PASSWORD)
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout.count("\n") == 1
    head, keys = secret.split("$", 1)[0], secret.split("$", 2)
    assert head == "SCRAM-SHA-256" and keys[1].startswith("4096:"), secret
    assert PASSWORD not in r.stdout + r.stderr
    # a fresh salt each time
    assert hash_password(PASSWORD).stdout.strip() != secret
    # PostgreSQL reads it as a SCRAM secret (rolpassword stays what we gave)
    pg.su.execute("DROP ROLE IF EXISTS hash_probe")
    try:
        pg.su.execute(f"CREATE ROLE hash_probe PASSWORD '{secret}'")
        got = pg.su.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'hash_probe'").fetchone()[0]
        assert got == secret
    finally:
        pg.su.execute("DROP ROLE IF EXISTS hash_probe")


def test_hash_password_refuses_empty_input():
    r = subprocess.run([str(helios_bin() / "heliosproxy"), "--hash-password"], input="",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no password" in r.stderr, r
    r = hash_password("")
    assert r.returncode == 1 and "empty" in r.stderr, r
    assert r.stdout == ""


def test_hash_password_on_a_terminal_asks_twice_without_echo():
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(helios_bin() / "heliosproxy"), ["heliosproxy", "--hash-password", USER])
    out = b""

    def read_until(marker):
        nonlocal out
        while marker not in out:
            ready, _, _ = select.select([fd], [], [], 10)
            assert ready, f"no {marker!r} from the prompt: {out!r}"
            out += os.read(fd, 4096)

    read_until(f"Password for {USER}: ".encode())
    os.write(fd, b"tty-secret-pw\n")
    read_until(b"Again: ")
    os.write(fd, b"tty-secret-pw\n")
    read_until(b"=\r\n")  # the secret ends in base64 padding, then the line end
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"SCRAM-SHA-256$4096:" in out, out
    assert b"tty-secret-pw" not in out, f"the password was echoed: {out!r}"


def test_psql_logs_in_through_proxy_with_hashed_secret_in_config(pg, proxy, config, hashed_role):
    secret = hashed_role
    # the secret alone works against PostgreSQL directly
    r = psql(pg.port, USER, PASSWORD)
    assert r.returncode == 0 and r.stdout.strip() == USER, r.stderr
    users = DEFAULT_USERS + [{"name": USER, "password": secret}]
    p = proxy(config(method="scram-sha-256", users=users))
    assert PASSWORD not in p.config_path.read_text()
    r = psql(p.port, USER, PASSWORD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == USER
    r = psql(p.port, USER, PASSWORD + "-wrong")
    assert r.returncode != 0
    assert "password authentication failed" in r.stderr, r.stderr
    # and the proxy still serves the right password after the failure
    r = psql(p.port, USER, PASSWORD, "SELECT 40 + 2")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr
