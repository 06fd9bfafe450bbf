"""Fixtures for the HeliosProxy integration tests.

Needs a running PostgreSQL primary + replica (scripts/pgcluster.sh), found
through the environment that scripts/run-integration.sh sets:
  HELIOS_PG_PORT, HELIOS_PG_REPLICA_PORT, HELIOS_PG_SOCKET  the cluster
  HELIOS_BIN                                               dir with heliosproxy
  HELIOS_IO_BACKEND                                        io_uring | epoll | auto
Without them, the cluster of run/test (run/test/pgcluster.env) and
build/release/bin are used, so after
  scripts/pgcluster.sh start run/test 25432 25433
a developer can run `/usr/bin/python3 -m pytest tests/integration -k NAME`.

Fixtures:
  pg       session-wide: the cluster, with the test roles and database made
  proxy    factory: proxy(config) starts a heliosproxy, stopped at teardown
  config   builder of the usual config dict (nodes, users, pool, auth)
  ProxyGroup  the proxy factory outside a function-scoped fixture (shared
           proxies of a module or class, e.g. test_matrix.py)

Under the ASan+UBSan build (HELIOS_BIN=build/asan/bin) a sanitizer report in a
proxy's log fails the test that started it (checked at teardown, and after each
test for shared proxies); one in helioctl's output fails the helioctl call.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("HELIOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
TEST_TIMEOUT = int(os.environ.get("HELIOS_TEST_TIMEOUT", "120"))  # per test body, seconds
START_TIMEOUT = 20.0  # seconds for a proxy to accept connections

# Sanitizer runtime options for every HeliosProxy program the tests start (the
# ASan build; the release build ignores them). A report prints its stack to
# stderr (the proxy's log) and the process exits 1 instead of aborting, so no
# core dump; UBSan stops at the first report (the build has
# -fno-sanitize-recover too). LeakSanitizer runs when a program exits (a proxy
# stopped by SIGTERM included): the whole suite exits without a leak, so a new
# leak fails the test whose proxy leaked.
os.environ.setdefault("ASAN_OPTIONS", "halt_on_error=1:abort_on_error=0:detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:abort_on_error=0:print_stacktrace=1")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")


def sanitizer_report(text):
    """The first sanitizer report in text, with context, or None."""
    hits = [text.index(m) for m in SANITIZER_MARKERS if m in text]
    if not hits:
        return None
    i = min(hits)
    return text[max(0, i - 2000):i + 6000]


# Roles made by the pg fixture: name -> password.
ALICE = ("alice", "alice-pw")  # SCRAM secret, owns appdb
MD5USER = ("md5user", "md5-pw")  # md5 hash (pg_hba: md5 for this user)
REPL_USER = ("repl_user", "repl-pw")  # LOGIN REPLICATION
PGB_AUTH = ("pgb_auth", "pgb-auth-pw")  # auth_user for auth_query (superuser: reads pg_shadow)
APPDB = "appdb"


# ---------------------------------------------------------------------------
# A bound on every test body, so a hung proxy cannot hang the run.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def on_alarm(signum, frame):
        raise TimeoutError(f"test body exceeded {TEST_TIMEOUT} s (HELIOS_TEST_TIMEOUT)")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------
def _cluster_env():
    env = {}
    f = ROOT / "run" / "test" / "pgcluster.env"
    if f.exists():
        for line in f.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip()
    port = os.environ.get("HELIOS_PG_PORT") or env.get("PG_PRIMARY_PORT") or "25432"
    rport = os.environ.get("HELIOS_PG_REPLICA_PORT") or env.get("PG_REPLICA_PORT") or "25433"
    sock = os.environ.get("HELIOS_PG_SOCKET") or env.get("PG_SOCKET_DIR")
    if not sock:
        pytest.fail("HELIOS_PG_SOCKET is not set and run/test/pgcluster.env is missing: "
                    "run scripts/run-integration.sh, or scripts/pgcluster.sh start run/test 25432 25433")
    return int(port), int(rport), sock


def helios_bin():
    return Path(os.environ.get("HELIOS_BIN") or ROOT / "build" / "release" / "bin")


def io_backend():
    return os.environ.get("HELIOS_IO_BACKEND") or "auto"


_ports_given = set()


def free_port():
    """A port free now and not handed out before in this run: the kernel may
    give the same ephemeral port to two binds in a row once the first is
    closed (a proxy's listen and admin ports once came out equal)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def dsn(**kw):
    kw.setdefault("connect_timeout", 10)
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in kw.items() if v is not None})


class PG:
    """The test cluster. Superuser access is over the Unix socket (trust)."""

    host = "127.0.0.1"

    def __init__(self, port, replica_port, socket_dir):
        self.port = port
        self.replica_port = replica_port
        self.socket = socket_dir
        self.bin = PG_BIN
        self._su = None

    def superuser(self, dbname="postgres", port=None):
        """A new autocommit superuser connection (close it yourself)."""
        return psycopg.connect(host=self.socket, port=port or self.port, user="postgres",
                               dbname=dbname, autocommit=True, connect_timeout=10)

    @property
    def su(self):
        """A shared autocommit superuser connection."""
        if self._su is None or self._su.closed:
            self._su = self.superuser()
        return self._su

    def dsn(self, user, password=None, dbname=APPDB, port=None, **extra):
        """Direct TCP connection string to the primary (or port)."""
        return dsn(host=self.host, port=port or self.port, user=user, password=password,
                   dbname=dbname, **extra)

    def server_conns(self, user, dbname):
        """Client backends of user on dbname, as pg_stat_activity shows them."""
        return self.su.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE usename = %s AND datname = %s AND backend_type = 'client backend'",
            (user, dbname)).fetchone()[0]

    def wait_server_conns(self, user, dbname, at_most=0, timeout=10.0):
        """Waits until at most `at_most` server connections of user/dbname remain."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.server_conns(user, dbname)
            if n <= at_most or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def env(self, user=None, password=None):
        """Environment for PostgreSQL command line tools."""
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("PG"):
                del e[k]
        if password is not None:
            e["PGPASSWORD"] = password
        e["PGCONNECT_TIMEOUT"] = "10"
        return e


SETUP_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'alice') THEN CREATE ROLE alice; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'md5user') THEN CREATE ROLE md5user; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'repl_user') THEN CREATE ROLE repl_user; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgb_auth') THEN CREATE ROLE pgb_auth; END IF;
END $$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE alice LOGIN PASSWORD '{ALICE[1]}';
ALTER ROLE repl_user LOGIN REPLICATION PASSWORD '{REPL_USER[1]}';
-- The auth_query user must read pg_shadow, which only a superuser can:
-- pgb_auth is a SUPERUSER for the tests (a real deployment would use a
-- SECURITY DEFINER function instead).
ALTER ROLE pgb_auth LOGIN SUPERUSER PASSWORD '{PGB_AUTH[1]}';
SET password_encryption = 'md5';
ALTER ROLE md5user LOGIN PASSWORD '{MD5USER[1]}';
RESET password_encryption;
"""


@pytest.fixture(scope="session")
def pg():
    port, rport, sock = _cluster_env()
    p = PG(port, rport, sock)
    try:
        su = p.su
    except psycopg.OperationalError as e:
        pytest.fail(f"cannot reach the test cluster over {sock} port {port}: {e}")
    su.execute(SETUP_SQL)
    if not su.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APPDB,)).fetchone():
        su.execute(f"CREATE DATABASE {APPDB} OWNER alice")
    su.execute(f"GRANT CONNECT ON DATABASE {APPDB} TO md5user")
    stored = dict(su.execute(
        "SELECT rolname, left(rolpassword, 3) FROM pg_authid "
        "WHERE rolname IN ('alice', 'md5user')").fetchall())
    assert stored == {"alice": "SCR", "md5user": "md5"}, stored
    yield p
    if p._su is not None:
        p._su.close()


# ---------------------------------------------------------------------------
# Configuration files

def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(d, prefix=""):
    """Writes a dict as TOML: scalars, then [tables], then [[arrays of tables]]."""
    lines, tables, arrays = [], [], []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = prefix + k
        out += f"\n[{name}]\n" + to_toml(v, name + ".")
    for k, items in arrays:
        name = prefix + k
        for item in items:
            out += f"\n[[{name}]]\n" + to_toml(item, name + ".")
    return out


DEFAULT_USERS = [
    {"name": ALICE[0], "password": ALICE[1]},
    {"name": MD5USER[0], "password": MD5USER[1]},
    {"name": REPL_USER[0], "password": REPL_USER[1]},
    {"name": PGB_AUTH[0], "password": PGB_AUTH[1]},
]


def make_config(pg, mode="session", method="scram-sha-256", pool=None, auth=None, users=None,
                **top):
    """The usual config dict: both nodes, the test users (plaintext
    passwords), pooling mode; see the config fixture."""
    d = dict(top)
    d["pool_mode"] = {"mode": mode, "max_pool_size": 20, **(pool or {})}
    d["nodes"] = [
        {"name": "primary", "host": "127.0.0.1", "port": pg.port, "role": "primary"},
        {"name": "replica", "host": "127.0.0.1", "port": pg.replica_port, "role": "replica"},
    ]
    a = {"method": method, **(auth or {})}
    a["users"] = DEFAULT_USERS if users is None else users
    if not a["users"]:
        del a["users"]
    d["auth"] = a
    return d


@pytest.fixture
def config(pg):
    """config(mode=..., method=..., pool={...}, auth={...}, users=[...], **top) -> dict
    with both nodes, the test users (plaintext passwords) and session pooling."""

    def build(*args, **kw):
        return make_config(pg, *args, **kw)

    return build


# ---------------------------------------------------------------------------
# The proxy under test

class Proxy:
    def __init__(self, tmp_path, name, defaults):
        self.dir = tmp_path
        self.name = name
        self.config_path = tmp_path / f"{name}.toml"
        self.log_path = tmp_path / f"{name}.log"
        self.defaults = defaults  # top-level keys the fixture adds
        self.port = int(defaults["listen_address"].rsplit(":", 1)[1])
        self.proc = None
        self.check_exit = True  # stop()/teardown assert exit status 0
        self.prefix = []  # command the proxy runs under (setpriv ...)
        self.args = []  # after "-c FILE" (--listen ...)

    # -- config --
    def render(self, cfg):
        """Final text of a config: the test's text or dict plus the fixture's keys."""
        if isinstance(cfg, dict):
            d = dict(cfg)
            for k, v in self.defaults.items():
                d.setdefault(k, v)
            return to_toml(d)
        head = "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.defaults.items()
                       if not re.search(rf"(?m)^\s*{k}\s*=", cfg))
        return head + cfg

    def write_config(self, cfg):
        text = self.render(cfg)
        m = re.search(r'(?m)^\s*shutdown_timeout_secs\s*=\s*(\d+)', text)
        self.shutdown_timeout = int(m.group(1)) if m else 30
        # the admin HTTP server starts after the workers listen: wait for it
        # too when it is the fixture's (a slow build showed the gap)
        admin = self.defaults.get("admin_address", "")
        self.admin_port = None
        if admin and re.search(rf'(?m)^\s*admin_address\s*=\s*"{re.escape(admin)}"', text):
            self.admin_port = int(admin.rsplit(":", 1)[1])
        self.config_path.write_text(text)
        return text

    def rewrite_config(self, cfg):
        """Replaces the config file (same listen port); returns the text written."""
        return self.write_config(cfg)

    # -- process --
    def start(self, cfg, wait=True):
        self.write_config(cfg)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.prefix, str(helios_bin() / "heliosproxy"), "-c",
                                      str(self.config_path), *self.args],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"heliosproxy exited with status {self.proc.returncode} at start; "
                            f"log tail:\n{self.log_tail()}")
            if port_accepts(self.port) and (self.admin_port is None or
                                            port_accepts(self.admin_port)):
                return
            time.sleep(0.05)
        pytest.fail(f"heliosproxy does not accept on 127.0.0.1:{self.port} (and admin port "
                    f"{self.admin_port}) after {timeout} s; "
                    f"log tail:\n{self.log_tail()}")

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def sigterm(self):
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=None):
        """SIGTERM; asserts exit status 0 within the shutdown timeout (+5 s)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.sigterm()
            rc = self.wait(timeout if timeout is not None else self.shutdown_timeout + 5)
            if rc is None:
                self.proc.kill()
                self.proc.wait(10)
                pytest.fail(f"heliosproxy did not exit after SIGTERM; log tail:\n{self.log_tail()}")
        rc = self.proc.returncode
        if self.check_exit:
            assert rc == 0, f"heliosproxy exited with status {rc}; log tail:\n{self.log_tail()}"
        return rc

    # -- log --
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits for a regex in the log (from character offset start); returns the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log()[start:], re.M)
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    # -- clients --
    def dsn(self, user, password=None, dbname=APPDB, **extra):
        return dsn(host="127.0.0.1", port=self.port, user=user, password=password,
                   dbname=dbname, **extra)

    def connect(self, user=ALICE[0], password=ALICE[1], dbname=APPDB, **extra):
        extra.setdefault("autocommit", True)
        autocommit = extra.pop("autocommit")
        return psycopg.connect(self.dsn(user, password, dbname, **extra), autocommit=autocommit)


class ProxyGroup:
    """Starts proxies in one folder; close() stops them and fails on a bad
    exit status or a sanitizer report in a log. The proxy fixture is one
    group per test; a module or class can keep its own for shared proxies."""

    def __init__(self, dirpath):
        self.dir = dirpath
        self.started = []
        self.count = 0  # names stay unique when a proxy is dropped

    def start(self, cfg, wait=True, prefix=(), args=(), **defaults):
        base = {
            "listen_address": f"127.0.0.1:{free_port()}",
            "admin_address": f"127.0.0.1:{free_port()}",
            "workers": 2,
            "io_backend": io_backend(),
            "shutdown_timeout_secs": 5,
        }
        base.update(defaults)
        p = Proxy(self.dir, f"heliosproxy{self.count}", base)
        self.count += 1
        p.prefix = list(prefix)
        p.args = list(args)
        self.started.append(p)
        return p.start(cfg, wait=wait)

    def stop(self, p):
        """Stops p and forgets it; returns the problems found (strings)."""
        problems = []
        if p in self.started:
            self.started.remove(p)
        try:
            p.stop()
        except (AssertionError, pytest.fail.Exception) as e:
            problems.append(str(e))
        report = sanitizer_report(p.log())
        if report:
            problems.append(f"{p.log_path} has a sanitizer report:\n{report}")
        if getattr(p, "logf", None):
            p.logf.close()
        return problems

    def close(self):
        problems = []
        for p in list(self.started):
            problems += self.stop(p)
        if problems:
            pytest.fail("\n\n".join(problems))


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    """A self-signed server certificate for CN=localhost and its key (paths),
    made once per run with the openssl CLI: for the proxy's tls.cert_file."""
    d = tmp_path_factory.mktemp("server-cert")
    key, crt = d / "server.key", d / "server.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)], timeout=60)
    key.chmod(0o600)
    return crt, key


@pytest.fixture
def short_dir():
    """A fresh folder with a short path (/tmp/hp-XXXXXXXX), for a state_dir:
    the control socket inside must fit a Unix socket path (108 bytes), which
    pytest's tmp_path under make check's log folder does not; removed after."""
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="hp-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def proxy(pg, tmp_path):
    """proxy(config_text_or_dict, wait=True, prefix=(), args=()) -> Proxy, run under the
    command prefix if given (["setpriv", ...]), with args after "-c FILE". The fixture adds, unless
    the config has them: io_backend (HELIOS_IO_BACKEND), workers = 2, a free
    listen_address and admin_address on 127.0.0.1, shutdown_timeout_secs = 5."""
    if not (helios_bin() / "heliosproxy").exists():
        pytest.fail(f"{helios_bin() / 'heliosproxy'} not found (HELIOS_BIN; build with make)")
    group = ProxyGroup(tmp_path)
    yield group.start
    group.close()


class ServerConnSampler:
    """with ServerConnSampler(pg, user, db) as s: ... -> s.samples, the
    server connections of user (a name or a list of names) on db in
    pg_stat_activity every interval seconds (0: as fast as one connection
    can ask, so that a moment above a cap while a slot moves between pools
    is seen, not only a steady excess). The control plane's probe
    (application_name helios-cp) is no pool connection and is left out."""

    def __init__(self, pg, user, dbname, interval=0.05):
        self.pg, self.dbname, self.interval = pg, dbname, interval
        self.users = [user] if isinstance(user, str) else list(user)
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)

    def _run(self):
        with self.pg.superuser() as su:
            while not self._stop.is_set():
                self.samples.append(su.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s) "
                    "AND datname = %s AND backend_type = 'client backend' "
                    "AND application_name <> 'helios-cp'",
                    (self.users, self.dbname)).fetchone()[0])
                if self.interval:
                    time.sleep(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(10)
        return False


def wait_for(pred, timeout=10.0, interval=0.05):
    """Polls pred until it returns something true or timeout passes; returns
    its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def run(cmd, timeout=60, check=True, **kw):
    """subprocess.run with a timeout and captured text output."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if str(cmd[0]).startswith(str(helios_bin())):
        report = sanitizer_report((r.stdout or "") + (r.stderr or ""))
        assert report is None, f"{cmd} has a sanitizer report:\n{report}"
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def helioctl(p, *args, check=0):
    """Runs helioctl against proxy p's control plane; asserts its exit code."""
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), *args], check=False,
            timeout=30)
    assert r.returncode == check, r
    return r


# Rate limits (test_tenants.py, test_session_stages.py). A throttled client
# gets at most the limit; at least RATE_LOW of it, not all of it: from Python
# on a loaded 2-core machine, or through the ASan build, a client may not
# manage 200 queries a second at all (178/s seen). The upper bound is the
# limit's promise and stays tight.
RATE_LOW = 0.6


def run_for(conn, secs, sql="SELECT 1"):
    """Runs sql back to back for secs; returns (ok, refused: 53400) counts."""
    ok = refused = 0
    end = time.monotonic() + secs
    cur = psycopg.ClientCursor(conn)
    while time.monotonic() < end:
        try:
            cur.execute(sql)
            ok += 1
        except psycopg.errors.ConfigurationLimitExceeded:
            refused += 1
    return ok, refused


def tenants_of(p):
    """Proxy p's tenants report by id (helioctl --json tenants)."""
    doc = json.loads(helioctl(p, "--json", "tenants").stdout)
    return {t["id"]: t for dp in doc["dataplanes"] for t in (dp.get("report") or {}).get("tenants", [])}
