"""The relay core of transaction and statement pooling under stress: chunk
ownership with TLS on both sides, messages of any size PostgreSQL accepts,
prepared statements another client prepared, and clients that break the
protocol (they get a FATAL and leave; nobody else notices)."""

import os
import re
import socket
import struct
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from conftest import ALICE, APPDB, MD5USER, run, wait_for


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("relaycert")
    key, crt = d / "server.key", d / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


def tls_both(client_cert, pg):
    """[tls] for TLS from the clients (required) and to the servers (the
    default server_mode = prefer; the test cluster has ssl = on)."""
    crt, key = client_cert
    return {"client_mode": "require", "cert_file": str(crt), "key_file": str(key)}


def psql(pg, p, *args, sql=None, user=ALICE, sslmode="prefer", timeout=120, check=True):
    env = pg.env(password=user[1])
    env["PGSSLMODE"] = sslmode
    cmd = [str(pg.bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
           str(p.port), "-U", user[0], "-d", APPDB, "-At", *args]
    if sql is not None:
        cmd += ["-c", sql]
    return run(cmd, env=env, timeout=timeout, check=check)


def pgbench(pg, p, script, *args, user=ALICE, sslmode="prefer", timeout=120):
    env = pg.env(password=user[1])
    env["PGSSLMODE"] = sslmode
    r = run([str(pg.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(p.port), "-U", user[0],
             "-f", str(script), *args, APPDB], env=env, timeout=timeout, check=False)
    return r.stdout + r.stderr


def failed_transactions(out):
    m = re.search(r"(?m)^number of failed transactions: (\d+)", out)
    return int(m.group(1)) if m else None


def processed(out):
    m = re.search(r"(?m)^number of transactions actually processed: (\d+)", out)
    return int(m.group(1)) if m else 0


def assert_no_sanitizer_report(p):
    log = p.log()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log, log[max(0, log.index(marker) - 500):][:4000]


# ---------------------------------------------------------------------------
# 1. TLS on both sides: the chunk forwarded as is belongs to the server's
#    endpoint once queued (TLS encrypts and frees it at once).

@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_tls_both_sides_transaction_blocks_keep_the_proxy_alive(pg, proxy, config, client_cert,
                                                                tmp_path, mode):
    p = proxy(config(mode=mode, tls=tls_both(client_cert, pg)))
    with p.connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone() == (True,), "the proxy should use TLS towards the server"
    if mode == "transaction":
        r = psql(pg, p, sql="BEGIN; SELECT 1; ROLLBACK;", sslmode="require")
        assert "1" in r.stdout.split(), r
        block = "BEGIN;\nSELECT 1;\nROLLBACK;\n"
    else:
        block = "SELECT 1;\nSELECT 2;\n"
    script = tmp_path / "block.sql"
    script.write_text(block)
    out = pgbench(pg, p, script, "-c", "50", "-j", "2", "-t", "40", sslmode="require")
    assert failed_transactions(out) == 0, out
    assert processed(out) == 50 * 40, out
    assert p.running(), f"the proxy died:\n{p.log_tail()}"
    with p.connect(sslmode="require") as c:
        assert c.execute("SELECT 42").fetchone() == (42,)
    assert_no_sanitizer_report(p)
