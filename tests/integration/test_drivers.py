"""Real client drivers through the proxy: psycopg2, asyncpg, JDBC (pgjdbc),
pgx v4 (Go), ruby-pg and node-postgres, each logging in with SCRAM over TLS
(sslmode=require) in session and transaction pooling.

Each driver has a small program under tests/drivers/<lang>/ that runs the
steps named on its command line (the steps are described in
tests/drivers/README.md), prints "ok STEP" for each and exits non-zero at
the first failure. Programs that need building are built once per run into
build/drivers/ (reused while the sources are unchanged): javac for Java,
`go build` from Debian's GOPATH (/usr/share/gocode, no module proxy) for
Go, `npm ci` of tests/drivers/node/package-lock.json for node. A driver
whose toolchain or package is not installed is skipped with the reason
(scripts/deps.sh installs them all).

Poolings: session (TLS on both sides: the test cluster has ssl = on);
transaction with TLS to the client only, and a pool of 2 kept busy by two
other clients so the driver's transactions move between servers; the same
with TLS on both sides. Every driver runs every step in every pooling; the
proxy dying during a run fails it as ProxyCrashed, with its log.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import ALICE, APPDB, ROOT, run

DRIVERS_SRC = ROOT / "tests" / "drivers"
BUILD = ROOT / "build" / "drivers"
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
GOPATH_DEBIAN = Path("/usr/share/gocode")

# The steps, in order (tests/drivers/README.md says what each does and how
# each driver does it). asyncpg and node-postgres have no call that drops a
# named statement, so they have no "deallocate".
STEPS = ["connect", "prepared", "deallocate", "txn_commit", "txn_rollback", "copy_in", "copy_out",
         "cancel", "notify", "large_result", "param_small", "param_70k", "param_1mb"]
DRIVERS = {
    "psycopg2": STEPS,
    "asyncpg": [s for s in STEPS if s != "deallocate"],
    "jdbc": STEPS,
    "pgx": STEPS,
    "ruby-pg": STEPS,
    "node-pg": [s for s in STEPS if s != "deallocate"],
}

# pooling -> (pool_mode.mode, tls.server_mode). Clients always use TLS
# (sslmode=require against client_mode = require) and SCRAM; the test
# cluster has ssl = on, so "prefer" is TLS on both sides.
POOLINGS = {
    "session": ("session", "prefer"),
    "transaction": ("transaction", "disable"),
    "transaction-tls-both": ("transaction", "prefer"),
}

class ProxyCrashed(AssertionError):
    """heliosproxy died while a driver ran."""


def _stamp_ok(stamp, inputs):
    """True when stamp holds the digest of the input files."""
    return stamp.exists() and stamp.read_text() == _digest(inputs)


def _digest(inputs):
    h = hashlib.sha256()
    for f in inputs:
        h.update(str(f).encode() + b"\0" + Path(f).read_bytes())
    return h.hexdigest()


def _python_module(name):
    r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
    return r.returncode == 0


def _build_jdbc():
    if not shutil.which("javac") or not shutil.which("java"):
        return None, "javac/java not installed (default-jdk-headless)"
    if not JDBC_JAR.exists():
        return None, f"{JDBC_JAR} missing (libpostgresql-jdbc-java)"
    src = DRIVERS_SRC / "java" / "DriverSteps.java"
    out = BUILD / "java"
    stamp = out / ".stamp"
    if not _stamp_ok(stamp, [src, JDBC_JAR]):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        run(["javac", "-encoding", "UTF-8", "-cp", str(JDBC_JAR), "-d", str(out), str(src)],
            timeout=300)
        stamp.write_text(_digest([src, JDBC_JAR]))
    return ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp",
            f"{out}:{JDBC_JAR}", "DriverSteps"], None


def _build_pgx():
    if not shutil.which("go"):
        return None, "go not installed (golang-go)"
    if not (GOPATH_DEBIAN / "src" / "github.com" / "jackc" / "pgx" / "v4").exists():
        return None, f"pgx v4 not in {GOPATH_DEBIAN} (golang-github-jackc-pgx-v4-dev)"
    src = DRIVERS_SRC / "go" / "pgxsteps" / "main.go"
    exe = BUILD / "go" / "pgxsteps"
    stamp = BUILD / "go" / ".stamp"
    if not (exe.exists() and _stamp_ok(stamp, [src])):
        exe.parent.mkdir(parents=True, exist_ok=True)
        # Offline: Debian ships the Go libraries in GOPATH layout; GOPATH
        # mode (GO111MODULE=off) builds from there and never asks a proxy.
        env = dict(os.environ, GO111MODULE="off", GOPATH=str(GOPATH_DEBIAN), GOPROXY="off",
                   GOFLAGS="", GOCACHE=str(BUILD / "go" / "cache"), CGO_ENABLED="0")
        run(["go", "build", "-o", str(exe), str(src)], timeout=600, env=env)
        stamp.write_text(_digest([src]))
    return [str(exe)], None


def _build_node():
    if not shutil.which("node") or not shutil.which("npm"):
        return None, "node/npm not installed (nodejs)"
    srcdir = DRIVERS_SRC / "node"
    out = BUILD / "node"
    inputs = [srcdir / "package.json", srcdir / "package-lock.json"]
    stamp = out / ".stamp"
    if not (_stamp_ok(stamp, inputs) and (out / "node_modules").is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for f in inputs:
            shutil.copy(f, out / f.name)
        # Exactly the locked versions, from the npm registry (or npm's cache).
        run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], timeout=300, cwd=out)
        stamp.write_text(_digest(inputs))
    return ["env", f"NODE_PATH={out / 'node_modules'}", "node", str(srcdir / "steps.js")], None


def _cmd(driver):
    """(argv, None) to run the driver's program, or (None, why it is skipped)."""
    if driver == "psycopg2":
        if not _python_module("psycopg2"):
            return None, f"{sys.executable} cannot import psycopg2 (python3-psycopg2)"
        return [sys.executable, str(DRIVERS_SRC / "python" / "steps_psycopg2.py")], None
    if driver == "asyncpg":
        if not _python_module("asyncpg"):
            return None, f"{sys.executable} cannot import asyncpg (python3-asyncpg)"
        return [sys.executable, str(DRIVERS_SRC / "python" / "steps_asyncpg.py")], None
    if driver == "jdbc":
        return _build_jdbc()
    if driver == "pgx":
        return _build_pgx()
    if driver == "ruby-pg":
        if not shutil.which("ruby"):
            return None, "ruby not installed (ruby-pg)"
        r = subprocess.run(["ruby", "-e", "require 'pg'"], capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"ruby cannot load pg (ruby-pg): {r.stderr.strip()}"
        return ["ruby", str(DRIVERS_SRC / "ruby" / "steps.rb")], None
    if driver == "node-pg":
        return _build_node()
    raise ValueError(driver)


@pytest.fixture(scope="session")
def driver_cmds():
    """driver -> (argv, skip reason); each is built at most once per run."""
    cache = {}

    def get(driver):
        if driver not in cache:
            cache[driver] = _cmd(driver)
        return cache[driver]

    return get


@pytest.fixture
def driver_argv(driver_cmds, driver):
    """The driver's program, built in the test's setup (outside the time
    limit of the test body): a first Go build takes ~20 s."""
    argv, why = driver_cmds(driver)
    if argv is None:
        pytest.skip(why)
    return argv


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("drivers-tls")
    key, crt = d / "server.key", d / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


# Transaction pooling: a client alone keeps getting the server it had, so
# the pool is kept small and busy (CHURN clients running short statements)
# and the driver's transactions land on different servers.
POOL_SIZE = 2
CHURN = 2


class Churn:
    """n clients of p running short statements until stopped; .errors holds
    what they got, .cancelled how many were cancelled (57014)."""

    def __init__(self, p, n):
        self.p, self.n = p, n
        self.stop = threading.Event()
        self.errors, self.cancelled, self.statements = [], 0, 0
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(n)]

    def _loop(self):
        try:
            with self.p.connect(sslmode="require") as c:
                while not self.stop.is_set():
                    try:
                        c.execute("SELECT pg_sleep(0.002)")
                        self.statements += 1
                    except psycopg.errors.QueryCanceled:
                        self.cancelled += 1
        except psycopg.Error as e:
            self.errors.append(e)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return False


def check_crash(p, driver, out=""):
    if p.running():
        return
    p.check_exit = False  # reported here, not again at teardown
    raise ProxyCrashed(f"heliosproxy exited with status {p.proc.returncode} while {driver} ran:\n"
                       f"{out}\nproxy log tail:\n{p.log_tail(60)}")


def run_driver(pg, proxy, config, tls_cert, argv, driver, pooling, steps, notify_secs=10):
    crt, key = tls_cert
    mode, server_mode = POOLINGS[pooling]
    pool = {"max_pool_size": POOL_SIZE} if mode == "transaction" else None
    p = proxy(config(mode=mode, method="scram-sha-256", pool=pool,
                     tls={"client_mode": "require", "cert_file": str(crt), "key_file": str(key),
                          "server_mode": server_mode}))
    table = f"drv_{driver.replace('-', '_')}_{mode}"
    with pg.superuser(dbname=APPDB) as su:
        su.execute(f"DROP TABLE IF EXISTS {table}")
        su.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        su.execute(f"ALTER TABLE {table} OWNER TO {ALICE[0]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DRV_HOST="127.0.0.1", DRV_PORT=str(p.port), DRV_USER=ALICE[0],
               DRV_PASSWORD=ALICE[1], DRV_DB=APPDB, DRV_TABLE=table, DRV_CHANNEL=table,
               DRV_NOTIFY_SECS=str(notify_secs))
    churn = Churn(p, CHURN if mode == "transaction" else 0)
    try:
        with churn:
            r = subprocess.run([*argv, *steps], capture_output=True, text=True, timeout=100,
                               env=env)
    except subprocess.TimeoutExpired as e:
        check_crash(p, driver)
        pytest.fail(f"{driver} did not finish in 100 s; output so far:\n{e.stdout}\n{e.stderr}\n"
                    f"proxy log tail:\n{p.log_tail()}")
    finally:
        with pg.superuser(dbname=APPDB) as su:
            su.execute(f"DROP TABLE IF EXISTS {table}")
    check_crash(p, driver, r.stdout)
    done = [line.split(" ", 1)[1] for line in r.stdout.splitlines() if line.startswith("ok ")]
    detail = (f"{driver} in {pooling} pooling exited {r.returncode}\nstdout:\n{r.stdout}\n"
              f"stderr:\n{r.stderr[-4000:]}\nproxy log tail:\n{p.log_tail()}")
    assert r.returncode == 0, detail
    assert done == list(steps), detail
    assert not churn.errors, f"a churn client failed: {churn.errors}"
    # a driver's cancel stops its own statement, never a churn client's
    assert churn.cancelled == 0, f"{churn.cancelled} statement(s) of other clients cancelled"


@pytest.mark.parametrize("pooling", list(POOLINGS))
@pytest.mark.parametrize("driver", list(DRIVERS))
def test_driver_steps_pass_over_scram_and_tls(pg, proxy, config, tls_cert, driver_argv, driver,
                                               pooling):
    run_driver(pg, proxy, config, tls_cert, driver_argv, driver, pooling, list(DRIVERS[driver]))


def test_cancel_in_transaction_pooling_stops_only_its_own_statement(pg, proxy, config, tls_cert):
    """A client cancels its own pg_sleep 30 times while two others run short
    statements on the same two servers: none of theirs may be cancelled.
    (It did, 1 in 5, while a server went back to the pool before PostgreSQL
    had closed the cancel connection: see dataplane/conn/cancel.c.)"""
    crt, key = tls_cert
    p = proxy(config(mode="transaction", pool={"max_pool_size": POOL_SIZE},
                     tls={"client_mode": "require", "cert_file": str(crt), "key_file": str(key),
                          "server_mode": "disable"}))
    with Churn(p, CHURN) as churn, p.connect(sslmode="require") as c:
        for _ in range(30):
            t = threading.Timer(0.3, c.cancel)
            t.start()
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT pg_sleep(30)")
            t.join()
    assert not churn.errors, churn.errors
    assert churn.statements > 0
    assert churn.cancelled == 0, f"{churn.cancelled} statements of other clients were cancelled"
