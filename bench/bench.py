#!/usr/bin/python3
"""The measuring half of `make bench` (bench/run.sh starts the cluster and
loads the data, then runs this with /usr/bin/python3).

Runs the same pgbench loads against HeliosProxy, PgBouncer (transaction
pooling) and PostgreSQL directly, alternating targets within each round;
measures TPS, latency, failures, the proxy's CPU per transaction
(utime+stime from /proc/PID/stat) and its peak RSS (VmHWM, reset before each
run through /proc/PID/clear_refs); then memory per idle client with
bench/idle_clients.py. Prints a table per load and writes docs/benchmarks.md.

Environment (run.sh sets the first group):
  BENCH_RUN_DIR, PG_BIN, PG_PRIMARY_PORT, PG_SOCKET_DIR, HELIOS_BIN, BENCH_ROOT
  BENCH_ROUNDS=3 BENCH_SECS=15 HELIOS_MODE=transaction HELIOS_WORKERS=2
  HELIOS_IO_BACKEND=auto BENCH_POOL_SIZE=20 BENCH_IDLE_CLIENTS=10000
  BENCH_LOADS=all BENCH_TARGETS=helios,pgbouncer,direct
  BENCH_REPORT=docs/benchmarks.md ("-" = do not write)
  HELIOS_POOL_EXTRA="reset_sequences = false"  more [pool_mode] lines for the
                                               main HeliosProxy target

  bench.py --render run/bench/results.json   rewrites the report from a saved run
"""

import collections
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
USER = DB = PASSWORD = "bench"


def env(name, default):
    v = os.environ.get(name, "")
    return v if v != "" else default


ROOT = env("BENCH_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = env("BENCH_RUN_DIR", os.path.join(ROOT, "run", "bench"))
PG_BIN = env("PG_BIN", "/usr/lib/postgresql/15/bin")
PG_PORT = int(env("PG_PRIMARY_PORT", "57432"))
PG_SOCK = env("PG_SOCKET_DIR", "")
HELIOS_BIN = env("HELIOS_BIN", os.path.join(ROOT, "build", "release", "bin"))
ROUNDS = int(env("BENCH_ROUNDS", "3"))
SECS = int(env("BENCH_SECS", "15"))
HELIOS_MODE = env("HELIOS_MODE", "transaction")
HELIOS_WORKERS = int(env("HELIOS_WORKERS", "2"))
HELIOS_IO = env("HELIOS_IO_BACKEND", "auto")
HELIOS_POOL_EXTRA = env("HELIOS_POOL_EXTRA", "").replace("\\n", "\n")
POOL = int(env("BENCH_POOL_SIZE", "20"))
IDLE_CLIENTS = int(env("BENCH_IDLE_CLIENTS", "10000"))
REPORT = env("BENCH_REPORT", os.path.join(ROOT, "docs", "benchmarks.md"))
PGBOUNCER = "/usr/sbin/pgbouncer"
PGB_USER = "heliospg"


class Load:
    def __init__(self, key, title, args, clients):
        self.key, self.title, self.args, self.clients = key, title, args, clients

    def cmdline(self, secs):
        return "pgbench -n " + " ".join(self.args) + f" -T {secs}"


ALL_LOADS = [
    Load("select-simple", "SELECT only, 50 clients, simple protocol",
         ["-S", "-M", "simple", "-c", "50", "-j", "2"], 50),
    Load("select-prepared", "SELECT only, 50 clients, prepared statements",
         ["-S", "-M", "prepared", "-c", "50", "-j", "2"], 50),
    Load("tpcb", "TPC-B (pgbench default script), 20 clients",
         ["-c", "20", "-j", "2"], 20),
    Load("select-connect", "SELECT only, a new connection per transaction (-C), 20 clients",
         ["-S", "-C", "-c", "20", "-j", "2"], 20),
    Load("select-latency", "SELECT only, 1 client (latency)",
         ["-S", "-c", "1", "-j", "1"], 1),
]

_sel = env("BENCH_LOADS", "all")
LOADS = ALL_LOADS if _sel == "all" else [l for l in ALL_LOADS if l.key in _sel.split(",")]
TARGET_NAMES = [t for t in env("BENCH_TARGETS", "helios,pgbouncer,direct").split(",") if t]
LABEL = {"helios": "HeliosProxy", "pgbouncer": "PgBouncer", "direct": "direct"}


def log(*a):
    print(*a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime + stime, all threads


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Proxy:
    name = "?"

    def __init__(self):
        self.proc = None
        self.port = free_port()
        self.events = []  # crashes and restarts, for the report

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, what):
        for _ in range(150):
            if port_open(self.port):
                return
            if not self.alive():
                raise RuntimeError(f"{what} exited with code {self.proc.returncode}; log tail:\n"
                                   + tail(self.log_path))
            time.sleep(0.1)
        raise RuntimeError(f"{what} does not accept on 127.0.0.1:{self.port} after 15 s; log tail:\n"
                           + tail(self.log_path))

    def stop(self):
        if not self.alive():
            self.proc = None
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def ensure(self):
        if self.proc is not None and not self.alive():
            msg = f"{self.name} exited (code {self.proc.returncode}) during the run; restarted. Log tail:\n" \
                + tail(self.log_path, 15)
            log("WARNING: " + msg)
            self.events.append(msg)
            self.proc = None
        if self.proc is None:
            self.start()


class Helios(Proxy):
    name = "HeliosProxy"

    def __init__(self, mode, pool, extra="", pool_extra="", subdir="helios"):
        super().__init__()
        self.mode, self.pool, self.extra, self.pool_extra = mode, pool, extra, pool_extra
        self.admin_port = free_port()
        self.dir = os.path.join(RUN, subdir)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "heliosproxy.toml")
        self.log_path = os.path.join(self.dir, "heliosproxy.log")
        fresh_log(self.log_path)
        self.banner = ""

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(f"""# written by bench/bench.py
listen_address = "127.0.0.1:{self.port}"
admin_address = "127.0.0.1:{self.admin_port}"
workers = {HELIOS_WORKERS}
io_backend = "{HELIOS_IO}"
max_client_conn = 20000
shutdown_timeout_secs = 2

[pool_mode]
mode = "{self.mode}"
max_pool_size = {self.pool}
{self.pool_extra}
[[nodes]]
host = "127.0.0.1"
port = {PG_PORT}

[auth]
method = "scram-sha-256"

[[auth.users]]
name = "{USER}"
password = "{PASSWORD}"

[tls]
server_mode = "disable"
""" + self.extra)

    def check_config(self):
        self.write_config()
        p = subprocess.run([os.path.join(HELIOS_BIN, "heliosproxy"), "--check-config", self.conf],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).strip()

    def start(self):
        self.write_config()
        with open(self.log_path, "a") as logf:
            logf.write(f"---- bench: starting heliosproxy ({self.mode}, pool {self.pool}) ----\n")
            logf.flush()
            self.proc = subprocess.Popen([os.path.join(HELIOS_BIN, "heliosproxy"), "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True)
        self.wait_listening("heliosproxy")
        self.banner = "(no start-up line in the log)"
        for _ in range(30):  # the log line may trail the listening socket a little
            lines = [l for l in tail(self.log_path, 20).splitlines() if f"listening on 127.0.0.1:{self.port}" in l]
            if lines:
                self.banner = re.sub(r"^\S+\s+\w+\s+", "", lines[-1].strip())
                break
            time.sleep(0.1)
        record_pid(self)


class PgBouncer(Proxy):
    name = "PgBouncer"

    def __init__(self, pool):
        super().__init__()
        self.pool = pool
        self.dir = os.path.join(RUN, "pgbouncer")
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, PGB_USER, PGB_USER)
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.userlist = os.path.join(self.dir, "userlist.txt")
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        self.stderr_path = os.path.join(self.dir, "pgbouncer.stderr")
        fresh_log(self.log_path)
        fresh_log(self.stderr_path)
        if os.geteuid() == 0:  # pgbouncer (as heliospg) appends to its log
            shutil.chown(self.log_path, PGB_USER, PGB_USER)

    def write_config(self):
        with open(self.userlist, "w") as f:
            f.write(f'"{USER}" "{PASSWORD}"\n')
        with open(self.ini, "w") as f:
            f.write(f"""; written by bench/bench.py
[databases]
{DB} = host=127.0.0.1 port={PG_PORT} dbname={DB}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.userlist}
pool_mode = transaction
default_pool_size = {self.pool}
max_client_conn = 20000
server_tls_sslmode = disable
client_tls_sslmode = disable
logfile = {self.log_path}
; HeliosProxy logs no line per connection at info level: neither does PgBouncer here
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
""")
        if os.geteuid() == 0:
            for p in (self.ini, self.userlist):
                shutil.chown(p, PGB_USER, PGB_USER)
            os.chmod(self.userlist, 0o600)

    def start(self):
        self.write_config()
        cmd = [PGBOUNCER, self.ini]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            cmd = ["setpriv", f"--reuid={PGB_USER}", f"--regid={PGB_USER}", "--init-groups"] + cmd
        with open(self.stderr_path, "a") as errf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=errf, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True)
        self.wait_listening("pgbouncer")
        record_pid(self)

    def wait_listening(self, what):
        try:
            super().wait_listening(what)
        except RuntimeError as e:
            raise RuntimeError(str(e) + tail(self.stderr_path)) from None


class Direct:
    name = "direct"
    pid = None
    events = []

    def __init__(self):
        self.port = PG_PORT

    def ensure(self):
        pass

    def stop(self):
        pass


_pids = {}
_fresh = set()


def fresh_log(path):
    """Empties a log the first time this run uses it, so the report shows this run's lines."""
    if path not in _fresh:
        _fresh.add(path)
        open(path, "w").close()


def record_pid(proxy):
    """bench/run.sh's exit trap ends what is listed here if we die badly."""
    _pids[proxy.name] = proxy.pid
    with open(os.path.join(RUN, "bench.pids"), "w") as f:
        for p in _pids.values():
            if p:
                f.write(f"{p}\n")


# ---------------------------------------------------------------- pgbench

RE = {
    "tx": re.compile(r"number of transactions actually processed: (\d+)"),
    "failed": re.compile(r"number of failed transactions: (\d+)"),
    "lat": re.compile(r"latency average = ([\d.]+) ms"),
    "tps": re.compile(r"tps = ([\d.]+) \(([^)]*)\)"),
    "conn": re.compile(r"(?:initial|average) connection time = ([\d.]+) ms"),
}
CLIENT_PREFIX = re.compile(r"client \d+ (script \d+ )?aborted in command \d+ (query \d+)?:?\s*")


def pgbench_argv(port):
    """pgbench as the benchmark user against 127.0.0.1:port, no vacuum."""
    return [os.path.join(PG_BIN, "pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-n"]


PGBENCH_ENV = dict(os.environ, PGPASSWORD=PASSWORD, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")


def pgbench(port, load, secs):
    cmd = pgbench_argv(port) + ["-T", str(secs)] + load.args + [DB]
    e = PGBENCH_ENV
    r = {"timed_out": False}
    try:
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=secs + 60)
        out, err, r["rc"] = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as ex:
        out = ex.stdout.decode() if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        err = ex.stderr.decode() if isinstance(ex.stderr, bytes) else (ex.stderr or "")
        r["rc"], r["timed_out"] = None, True
    text = out + err
    for k, rx in RE.items():
        m = rx.search(text)
        r[k] = (float(m.group(1)) if k in ("lat", "tps", "conn") else int(m.group(1))) if m else None
        if k == "tps" and m:
            r["tps_kind"] = m.group(2)
    r["aborted_clients"] = len(set(re.findall(r"client (\d+) (?:script \d+ )?aborted", err)))
    r["run_aborted"] = "Run was aborted" in text
    errs = collections.Counter()
    for line in re.split(r"\n|(?=pgbench: )", err):  # two threads may share a line
        if "error:" in line or "FATAL" in line:
            msg = line.split("error:", 1)[-1].strip()
            while msg.startswith(("error: ", "pgbench:")):  # pieces of interleaved lines
                msg = msg.split(":", 1)[1].strip()
            msg = CLIENT_PREFIX.sub("", msg)
            if not msg or msg.startswith("Run was aborted"):
                continue
            errs[re.sub(r"\s+", " ", msg)[:200]] += 1
    r["errors"] = dict(errs.most_common(8))
    r["ok"] = (r["rc"] == 0 and not r["timed_out"] and not r["run_aborted"] and (r["failed"] or 0) == 0
               and r["tx"] is not None)
    if r["timed_out"]:
        r["errors"][f"pgbench did not finish within {secs + 60} s (killed)"] = 1
    return r


def measure(target, load, secs):
    target.ensure()
    pid = target.pid
    t0 = hwm_reset = None
    if pid:
        hwm_reset = reset_hwm(pid)
        t0 = cpu_ticks(pid)
    r = pgbench(target.port, load, secs)
    with open("/proc/loadavg") as f:
        r["loadavg"] = float(f.read().split()[0])
    if pid:
        try:
            r["cpu_ticks"] = cpu_ticks(pid) - t0
            r["hwm_kb"] = status_kb(pid, "VmHWM")
            r["rss_kb"] = status_kb(pid, "VmRSS")
            r["hwm_since"] = "run" if hwm_reset else "start"
        except OSError:
            r["cpu_ticks"] = r["hwm_kb"] = r["rss_kb"] = None
            r["errors"][f"{target.name} died during the run"] = 1
            r["ok"] = False
        if r.get("cpu_ticks") is not None and r.get("tx"):
            r["cpu_us_per_tx"] = r["cpu_ticks"] * 1e6 / CLK_TCK / r["tx"]
    return r


# ---------------------------------------------------------------- helpers


def fmt(v, digits=1, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v:,}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_facts():
    cpu = sh("sed -n 's/^model name\\s*: //p' /proc/cpuinfo | head -n1")
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    pgv = sh(f"{PG_BIN}/postgres --version")
    if PG_SOCK:
        pgv = sh(f"{PG_BIN}/psql -X -At -h {shlex.quote(PG_SOCK)} -p {PG_PORT} -U postgres -d postgres "
                 "-c 'SELECT version()'") or pgv
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "postgresql": pgv,
        "pgbouncer": sh(f"{PGBOUNCER} --version | head -n1"),
        "helios": sh(f"{shlex.quote(os.path.join(HELIOS_BIN, 'heliosproxy'))} --version"),
        "helios_binary": os.path.join(HELIOS_BIN, "heliosproxy"),
        "helios_mtime": datetime.datetime.fromtimestamp(
            os.path.getmtime(os.path.join(HELIOS_BIN, "heliosproxy")), datetime.timezone.utc
        ).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh(f"git -C {shlex.quote(ROOT)} rev-parse --short HEAD"),
        "pgbench": sh(f"{PG_BIN}/pgbench --version"),
        "clk_tck": CLK_TCK,
    }


def proxy_log_lines(path, pattern, limit=15):
    """Warning/error lines of a proxy log, numbers and addresses folded, with counts."""
    counts = collections.Counter()
    first = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if not re.search(pattern, line):
                    continue
                body = re.sub(r"^\S+ \S+ (\[\d+\] )?", "", line.strip())  # drop timestamp
                key = re.sub(r"\d+", "N", body)
                counts[key] += 1
                first.setdefault(key, line.strip())
    except OSError:
        return []
    return [(n, first[k]) for k, n in counts.most_common(limit)]


# ---------------------------------------------------------------- main parts


def probe_transaction_mode():
    """Does the binary really pool per transaction? Returns (ok, reason)."""
    h = Helios("transaction", POOL)
    rc, out = h.check_config()
    if rc != 0:
        return False, f"`heliosproxy --check-config` refuses mode = \"transaction\": {out}"
    try:
        h.start()
    except RuntimeError as e:
        return False, f"heliosproxy does not start in transaction mode: {e}"
    try:
        if "transaction" not in h.banner:
            return False, f"heliosproxy started but its banner does not say transaction mode: {h.banner!r}"
        clients = POOL + 10
        for name, args in (("SELECT", ["-S"]), ("TPC-B", [])):
            probe = Load("probe", "probe", args + ["-c", str(clients), "-j", "2"], clients)
            r = pgbench_with_timeout(h.port, probe, 2, 20)
            if r["timed_out"]:
                return False, (f"a {name} pgbench with {clients} clients (more than max_pool_size = {POOL}) "
                               f"did not finish within 20 s: clients beyond the pool size wait for a server, "
                               f"i.e. the binary still holds one server connection per client "
                               f"(session behaviour)")
            if any("timeout expired" in e for e in r["errors"]):
                return False, (f"a {name} pgbench with {clients} clients (more than max_pool_size = {POOL}) "
                               f"failed: the clients beyond the pool size did not get through login within "
                               f"connect_timeout = 10 s, i.e. the binary still holds one server connection per "
                               f"client (session behaviour). pgbench said: " + "; ".join(r["errors"]))
            if not r["ok"]:
                return False, (f"a {name} pgbench with {clients} clients through transaction mode failed: "
                               f"rc {r['rc']}, failed {r['failed']}, aborted clients {r['aborted_clients']}, "
                               f"errors {r['errors']}")
        return True, ""
    finally:
        h.stop()


def pgbench_with_timeout(port, load, secs, timeout):
    cmd = pgbench_argv(port) + ["-T", str(secs)] + load.args + [DB]
    e = PGBENCH_ENV
    try:
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "ok": False}
    text = p.stdout + p.stderr
    m = RE["failed"].search(text)
    failed = int(m.group(1)) if m else None
    aborted = "Run was aborted" in text or "aborted" in p.stderr
    errs = sorted({l.split("error:", 1)[-1].strip()[:160] for l in p.stderr.splitlines() if "error:" in l})[:3]
    return {"timed_out": False, "rc": p.returncode, "failed": failed, "aborted_clients": int(aborted),
            "errors": errs, "ok": p.returncode == 0 and not failed and not aborted}


CACHE_SQL = "SELECT abalance, filler FROM pgbench_accounts WHERE aid = 1"


def latency_run(port, sql, clients, secs, mode="simple", pid=None):
    """pgbench with one statement; per-transaction latencies from its log, and
    the proxy's CPU per statement when pid is given."""
    d = tempfile.mkdtemp(prefix="cache", dir=RUN)
    script = os.path.join(d, "q.sql")
    with open(script, "w") as f:
        f.write(sql + ";\n")
    cmd = pgbench_argv(port) + ["-T", str(secs), "-c", str(clients), "-j", str(min(clients, 2)),
                                "-M", mode, "-f", script, "-l", "--log-prefix",
                                os.path.join(d, "lat"), DB]
    e = PGBENCH_ENV
    t0 = cpu_ticks(pid) if pid else None
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=secs + 60)
    ticks = cpu_ticks(pid) - t0 if pid else None
    lats = []
    for name in os.listdir(d):
        if name.startswith("lat"):
            with open(os.path.join(d, name)) as f:
                lats += [int(line.split()[2]) for line in f if line.strip()]
    shutil.rmtree(d, ignore_errors=True)
    m = RE["tps"].search(p.stdout + p.stderr)
    lats.sort()
    q = (lambda x: lats[min(len(lats) - 1, int(x * len(lats)))] if lats else None)
    return {"rc": p.returncode, "tps": float(m.group(1)) if m else None, "n": len(lats),
            "p50_us": q(0.50), "p99_us": q(0.99), "err": p.stderr.strip()[-300:] if p.returncode else "",
            "cpu_us": ticks * 1e6 / CLK_TCK / len(lats) if ticks is not None and lats else None}


def cache_bench():
    """The same SELECT answered from the cache and (hint cache=skip) by the server."""
    px = Helios("transaction", POOL, extra="\n[cache]\nenabled = true\n")
    px.ensure()
    try:
        secs = max(3, SECS // 2)
        latency_run(px.port, CACHE_SQL, 1, 1)  # the catalog is read, the entry stored
        out = {"sql": CACHE_SQL, "secs": secs}
        for key, sql, port in (("hit", CACHE_SQL, px.port),
                               ("uncached", "/* helios:cache=skip */ " + CACHE_SQL, px.port),
                               ("direct", CACHE_SQL, PG_PORT)):
            pid = px.pid if port == px.port else None
            out[key] = latency_run(port, sql, 1, secs, pid=pid)
            out[key + "_8"] = latency_run(port, sql, 8, secs, pid=pid)
            log(f"bench: cache {key:<9} p50 {out[key]['p50_us']} us  p99 {out[key]['p99_us']} us  "
                f"tps(1) {fmt(out[key]['tps'])}  tps(8) {fmt(out[key + '_8']['tps'])}  "
                f"proxy cpu {fmt(out[key + '_8']['cpu_us'])} us/stmt")
        return out
    finally:
        px.stop()


def plugin_bench(mode):
    """One SELECT through HeliosProxy without plugins and with the noop plugin
    (plugins/noop.c: every hook exported, returning at once), so the
    difference is the plugin host's cost per statement (docs/plugins.md)."""
    wasm = os.path.join(os.path.dirname(HELIOS_BIN), "plugins", "noop.wasm")
    if not os.path.exists(wasm):
        return {"skipped": f"{os.path.relpath(wasm, ROOT)} is not built (make skips plugins without "
                           "a wasm32 clang or wasm-ld)"}
    with_plugin = Helios(mode, POOL, subdir="helios-plugin",
                         extra=f'\n[[plugins]]\nname = "noop"\npath = "{wasm}"\n')
    rc, why = with_plugin.check_config()
    if rc != 0:
        return {"skipped": f"`heliosproxy --check-config` refuses the [[plugins]] table: {why[-300:]}"}
    secs = max(3, SECS // 2)
    runs = max(1, ROUNDS)
    out = {"sql": CACHE_SQL, "secs": secs, "mode": mode, "runs": runs}
    pxs = (("none", Helios(mode, POOL, subdir="helios-noplugin")), ("noop", with_plugin))
    raw = {k: [] for k in ("none", "none_8", "noop", "noop_8")}
    try:
        for _, px in pxs:
            px.ensure()
            latency_run(px.port, CACHE_SQL, 1, 1)  # the catalog read, the instance built
        # both proxies up, runs in alternation: a shared machine's drift hits both
        for i in range(runs):
            for key, px in (pxs if i % 2 == 0 else pxs[::-1]):
                a = latency_run(px.port, CACHE_SQL, 1, secs, pid=px.pid)
                b = latency_run(px.port, CACHE_SQL, 8, secs, pid=px.pid)
                raw[key].append(a)
                raw[key + "_8"].append(b)
                log(f"bench: plugin {key:<5} run {i + 1}/{runs} p50 {a['p50_us']} us  tps(1) {fmt(a['tps'])}  "
                    f"tps(8) {fmt(b['tps'])}  proxy cpu {fmt(b['cpu_us'])} us/stmt")
    finally:
        for _, px in pxs:
            px.stop()
    for key, rs in raw.items():  # the median of each figure over the runs
        out[key] = {f: med([r.get(f) for r in rs if r.get(f) is not None])
                    for f in ("tps", "p50_us", "p99_us", "cpu_us")}
    out["raw"] = raw
    return out


def system_cpu_ticks():
    """All CPUs' busy time from /proc/stat (user, nice, system, irq, softirq,
    steal): the proxy, the kernel's work for it (kworkers, softirqs), pgbench
    and the server together."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


SPLICE_LOADS = [
    ("select", "pgbench -S, 8 clients, simple protocol", ["-S", "-M", "simple"], None),
    ("large-row", "one 256 KB row per query (SELECT repeat('x', 262144)), 8 clients",
     ["-M", "simple"], "SELECT repeat('x', 262144);\n"),
]


def splice_run(port, pid, args, script, secs):
    """One pgbench run of 8 session clients: tps, proxy and whole-system CPU per transaction."""
    d = tempfile.mkdtemp(prefix="splice", dir=RUN)
    extra = []
    if script:
        path = os.path.join(d, "q.sql")
        with open(path, "w") as f:
            f.write(script)
        extra = ["-f", path]
    cmd = pgbench_argv(port) + ["-T", str(secs), "-c", "8", "-j", "2"] + args + extra + [DB]
    e = PGBENCH_ENV
    t0, s0 = (cpu_ticks(pid) if pid else None), system_cpu_ticks()
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=secs + 60)
    s1, t1 = system_cpu_ticks(), (cpu_ticks(pid) if pid else None)
    shutil.rmtree(d, ignore_errors=True)
    text = p.stdout + p.stderr
    m, n = RE["tps"].search(text), RE["tx"].search(text)
    failed = RE["failed"].search(text)
    tx = int(n.group(1)) if n else 0
    per = (lambda ticks: ticks * 1e6 / CLK_TCK / tx if tx else None)
    return {"tps": float(m.group(1)) if m else None, "tx": tx, "rc": p.returncode,
            "failed": int(failed.group(1)) if failed else None,
            "proxy_cpu_us": per(t1 - t0) if pid else None, "system_cpu_us": per(s1 - s0),
            "err": p.stderr.strip()[-300:] if p.returncode else ""}


def splice_bench():
    """Session mode with and without pool_mode.kernel_splice, and direct, in alternation."""
    secs = max(5, SECS // 2)
    relay = Helios("session", 16)
    spliced = Helios("session", 16, pool_extra="kernel_splice = true\n", subdir="helios-splice")
    spliced.name = "HeliosProxy (kernel_splice)"
    out = {"secs": secs, "loads": {}, "loaded": None}
    try:
        relay.ensure()
        spliced.ensure()
        # one session: did the program load?
        pgbench_with_timeout(spliced.port, ALL_LOADS[-1], 1, 30)
        log_text = tail(spliced.log_path, 200)
        out["loaded"] = "splice program loaded" in log_text
        if not out["loaded"]:
            out["why"] = next((l for l in log_text.splitlines() if "kernel_splice" in l),
                              "no kernel_splice line in the log")
        for key, title, args, script in SPLICE_LOADS:
            runs = {"relay": [], "splice": [], "direct": []}
            for rnd in range(ROUNDS):
                order = [("relay", relay), ("splice", spliced), ("direct", None)]
                k = rnd % 3
                for name, px in order[k:] + order[:k]:
                    port = px.port if px else PG_PORT
                    r = splice_run(port, px.pid if px else None, args, script, secs)
                    runs[name].append(r)
                    log(f"bench: splice {key:<9} {name:<6} tps {fmt(r['tps']):>9}  "
                        f"proxy {fmt(r['proxy_cpu_us'])} us/tx  system {fmt(r['system_cpu_us'])} us/tx"
                        + (f"  <-- rc {r['rc']} failed {r['failed']}: {r['err']}" if r["rc"] else ""))
                    time.sleep(1)
            out["loads"][key] = {"title": title, "runs": runs}
        return out
    finally:
        relay.stop()
        spliced.stop()


def idle_test(proxy):
    """Fresh proxy, then bench/idle_clients.py; returns its JSON (dict)."""
    proxy.stop()
    proxy.start()
    timeout = max(60, IDLE_CLIENTS // 20)
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "idle_clients.py"), "--port", str(proxy.port),
           "--user", USER, "--password", PASSWORD, "--db", DB, "--count", str(IDLE_CLIENTS),
           "--pid", str(proxy.pid), "--timeout", str(timeout)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
        res = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {"error": p.stderr[-500:]}
    except subprocess.TimeoutExpired:
        res = {"error": f"idle_clients.py did not finish within {timeout + 120} s"}
    except json.JSONDecodeError:
        res = {"error": "bad output from idle_clients.py: " + p.stdout[-300:] + p.stderr[-300:]}
    res["alive_after"] = proxy.alive()
    proxy.stop()
    return res


def main():
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    os.makedirs(RUN, exist_ok=True)
    facts = machine_facts()
    log(f"bench: {facts['helios']} ({facts['commit']}) vs {facts['pgbouncer']} vs {facts['postgresql'][:40]}")
    log(f"bench: {ROUNDS} rounds x {len(LOADS)} loads x {len(TARGET_NAMES)} targets, {SECS} s each")

    mode = HELIOS_MODE
    fallback_reason = ""
    if "helios" in TARGET_NAMES and mode == "transaction":
        log("bench: checking HeliosProxy's transaction mode (check-config + short pgbench with "
            f"{POOL + 10} clients > pool {POOL}) ...")
        ok, why = probe_transaction_mode()
        if not ok:
            mode = "session"
            fallback_reason = why
            log("")
            log("=" * 78)
            log("HELIOSPROXY FALLS BACK TO SESSION MODE: " + why)
            log("=" * 78)
            log("")
    # A session pooler needs one server per client: below that the 50-client loads wait forever.
    helios_pool = POOL if mode != "session" else max([POOL] + [l.clients for l in LOADS])
    if mode == "session" and helios_pool != POOL:
        log(f"bench: HeliosProxy in session mode gets max_pool_size = {helios_pool} (one server per client); "
            f"PgBouncer keeps {POOL}")

    targets = []
    helios = pgb = None
    for name in TARGET_NAMES:
        if name == "helios":
            helios = Helios(mode, helios_pool, pool_extra=HELIOS_POOL_EXTRA + "\n")
            targets.append(("helios", helios))
        elif name == "pgbouncer":
            pgb = PgBouncer(POOL)
            targets.append(("pgbouncer", pgb))
        elif name == "direct":
            targets.append(("direct", Direct()))
        else:
            raise SystemExit(f"unknown target {name!r} in BENCH_TARGETS")

    results = []  # dicts with round, load, target and pgbench/proxy figures
    idle = {}
    cache = splice = plugin = None
    try:
        for _, t in targets:
            t.ensure()
        if helios:
            log(f"bench: HeliosProxy pid {helios.pid} on 127.0.0.1:{helios.port}: {helios.banner}")
        if pgb:
            log(f"bench: PgBouncer pid {pgb.pid} on 127.0.0.1:{pgb.port}")
        for rnd in range(ROUNDS):
            for li, load in enumerate(LOADS):
                k = (rnd + li) % len(targets)
                for tname, t in targets[k:] + targets[:k]:
                    r = measure(t, load, SECS)
                    r.update(round=rnd + 1, load=load.key, target=tname)
                    results.append(r)
                    flag = "" if r["ok"] else "  <-- " + (f"RUN ABORTED after {r.get('tx')} tx: " if r["run_aborted"] else "") + ("; ".join(f"{m} (x{n})" for m, n in r["errors"].items())
                                                           or f"rc {r['rc']}, failed {r['failed']}")
                    log(f"[round {rnd + 1}/{ROUNDS}] {load.key:<15} {LABEL[tname]:<11} "
                        f"tps {fmt(r.get('tps')):>10}  lat {fmt(r.get('lat'), 3):>7} ms  "
                        f"failed {fmt(r.get('failed'))}  aborted {r['aborted_clients']}  "
                        f"cpu {fmt(r.get('cpu_us_per_tx'))} us/tx  "
                        f"hwm {fmt((r.get('hwm_kb') or 0) / 1024 if r.get('hwm_kb') else None)} MiB{flag}")
                    time.sleep(1)
        if IDLE_CLIENTS > 0:
            for tname, t in targets:
                if tname == "direct":
                    continue
                if tname == "helios" and mode != "transaction":
                    idle[tname] = {"skipped": (
                        f"not possible: HeliosProxy runs in {mode} mode, where every logged-in client holds a "
                        f"server connection (max_pool_size = {helios_pool}; PostgreSQL max_connections = 400), "
                        f"so {IDLE_CLIENTS:,} idle clients cannot all log in")}
                    log(f"bench: idle clients, {LABEL[tname]}: {idle[tname]['skipped']}")
                    continue
                log(f"bench: idle clients, {LABEL[tname]}: opening {IDLE_CLIENTS:,} authenticated connections ...")
                idle[tname] = idle_test(t)
                log(f"bench: idle clients, {LABEL[tname]}: {json.dumps(idle[tname])}")
        if helios and env("BENCH_CACHE", "1") != "0":
            log("bench: result cache: one SELECT as a hit, uncached (cache=skip) and direct ...")
            cache = cache_bench()
        if helios and env("BENCH_PLUGIN", "1") != "0":
            log("bench: plugins: one SELECT without plugins and through the noop plugin ...")
            plugin = plugin_bench(mode)
            if plugin.get("skipped"):
                log(f"bench: plugins: skipped: {plugin['skipped']}")
        if helios and env("BENCH_SPLICE", "1") != "0":
            log("bench: kernel splice: session mode relayed vs spliced vs direct ...")
            splice = splice_bench()
    finally:
        for _, t in targets:
            try:
                t.stop()
            except Exception as e:  # keep stopping the others
                log(f"bench: stopping {t.name}: {e}")

    elapsed = time.monotonic() - t_start
    def proxy_info(px, pattern):
        if not px:
            return None
        return {"banner": getattr(px, "banner", ""), "events": px.events,
                "log": os.path.relpath(px.log_path, ROOT), "log_lines": proxy_log_lines(px.log_path, pattern)}

    # everything the report needs, so `bench.py --render run/bench/results.json` can redo it
    ctx = dict(facts=facts, mode=mode, requested_mode=HELIOS_MODE, fallback_reason=fallback_reason,
               helios_pool=helios_pool, results=results, idle=idle, cache=cache, splice=splice, plugin=plugin,
               started=started.isoformat(),
               elapsed=elapsed, targets=[n for n, _ in targets],
               helios=proxy_info(helios, r"\b(warn|error|fatal)\b"),
               pgb=proxy_info(pgb, r"\b(WARNING|ERROR|FATAL)\b"),
               knobs=dict(rounds=ROUNDS, secs=SECS, loads=[l.key for l in LOADS], idle_clients=IDLE_CLIENTS,
                          pool=POOL, workers=HELIOS_WORKERS, io=HELIOS_IO, note=os.environ.get("BENCH_NOTE", "")))
    with open(os.path.join(RUN, "results.json"), "w") as f:
        json.dump(ctx, f, indent=1)
    write_report(ctx)
    return 0


def write_report(ctx):
    log("")
    log(render(ctx, markdown=False))
    if REPORT != "-":
        with open(REPORT, "w") as f:
            f.write(render(ctx, markdown=True))
        log(f"bench: wrote {os.path.relpath(REPORT, ROOT)} ({ctx['elapsed'] / 60:.1f} min run)")


# ---------------------------------------------------------------- report


def cell_stats(results, load, target):
    rs = [r for r in results if r["load"] == load and r["target"] == target]
    if not rs:
        return None
    hw = [r.get("hwm_kb") for r in rs if r.get("hwm_kb")]
    # pgbench's TPS of an aborted run divides the transactions done before the
    # clients died by however long that took: meaningless, so such runs give no
    # TPS, latency or CPU/tx to the medians (their raw numbers are listed).
    done = [r for r in rs if not r["run_aborted"] and not r["timed_out"]]
    return {
        "tps": med([r.get("tps") for r in done]),
        "tps_min": min([r["tps"] for r in done if r.get("tps") is not None], default=None),
        "tps_max": max([r["tps"] for r in done if r.get("tps") is not None], default=None),
        "lat": med([r.get("lat") for r in done]),
        "cpu": med([r.get("cpu_us_per_tx") for r in done]),
        "n_aborted": len(rs) - len(done),
        "tx_aborted": [r.get("tx") for r in rs if r not in done],
        "hwm": max(hw) / 1024 if hw else None,
        "failed": sum(r.get("failed") or 0 for r in rs),
        "aborted": sum(r["aborted_clients"] for r in rs),
        "bad": sum(1 for r in rs if not r["ok"]),
        "n": len(rs),
        "conn": med([r.get("conn") for r in rs]),
        "tps_kind": rs[0].get("tps_kind") or "",
        "errors": sum((collections.Counter(r["errors"]) for r in rs), collections.Counter()),
    }


def table(headers, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda row: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def render(c, markdown):
    f, res, targets = c["facts"], c["results"], c["targets"]
    k = c["knobs"]
    ROUNDS, SECS, POOL, IDLE_CLIENTS = k["rounds"], k["secs"], k["pool"], k["idle_clients"]
    HELIOS_WORKERS, HELIOS_IO, HELIOS_MODE = k["workers"], k["io"], c["requested_mode"]
    LOADS = [l for l in ALL_LOADS if l.key in k["loads"]]
    started = datetime.datetime.fromisoformat(c["started"])
    md = markdown
    L = []
    b = (lambda s: f"**{s}**") if md else (lambda s: s)
    code = (lambda s: f"`{s}`") if md else (lambda s: s)
    helios_label = f"HeliosProxy ({c['mode']})"
    label = dict(LABEL, helios=helios_label)
    if md:
        L += ["<!-- Written by bench/bench.py (make bench); rerun instead of editing. -->",
              "# Benchmarks: HeliosProxy vs PgBouncer vs direct PostgreSQL", ""]
        L += [f"Measured {started:%Y-%m-%d %H:%M} UTC with {code('make bench')} "
              f"(`bench/run.sh`, {c['elapsed'] / 60:.1f} min), "
              f"{ROUNDS} round{'s' if ROUNDS != 1 else ''} of {SECS} s per load and target; the targets alternate within each round "
              "and every figure below is the median over the rounds unless it says otherwise.", ""]
        L += ["## Setup", ""]
        L += [f"- Machine: {f['nproc']} CPUs ({f['cpu']}), {f['memory']}, kernel {f['kernel']}, {f['os']}; "
              "pgbench, both proxies and PostgreSQL share these cores, so every TPS figure is CPU-bound "
              "on the whole stack, not on the proxy alone.",
              f"- {f['postgresql']}",
              f"- {f['pgbouncer']} (Debian), single-threaded, `pool_mode = transaction`, "
              f"`default_pool_size = {POOL}`, `auth_type = scram-sha-256` (plaintext password in userlist.txt), "
              "no TLS, `log_connections = 0` (HeliosProxy logs no line per connection either).",
              f"- {f['helios']} (`{f['helios_binary']}`, built {f['helios_mtime']}; repository HEAD "
              f"{f['commit']}), `workers = {HELIOS_WORKERS}`, "
              f"`io_backend = \"{HELIOS_IO}\"` ({c['helios']['banner'] if c['helios'] else 'not run'}), "
              f"`pool_mode.mode = \"{c['mode']}\"`, `max_pool_size = {c['helios_pool']}`, "
              "`[auth] method = \"scram-sha-256\"` (plaintext password), `[tls] server_mode = \"disable\"`.",
              (f"- Note: {k['note']}" if k["note"] else None),
              "- Direct: pgbench to PostgreSQL's TCP port, `sslmode=disable` (as for both proxies), SCRAM.",
              "- Cluster: `scripts/pgcluster.sh` primary + streaming replica (ports 57432/57433, fsync off), "
              "database `bench` owned by role `bench` (SCRAM), `pgbench -i -s 10` once per run; every load "
              "runs with `-n` against the primary.",
              f"- CPU per transaction: utime+stime of the proxy process (all threads) from /proc/PID/stat, "
              f"before and after each run, ticks ({f['clk_tck']}/s) to µs, divided by the transactions "
              "pgbench processed. Peak RSS: VmHWM from /proc/PID/status, reset before each run by writing 5 "
              "to /proc/PID/clear_refs.", ""]
        L = [x for x in L if x is not None]
        la = [r["loadavg"] for r in res if r.get("loadavg") is not None]
        if la:
            L[-1:-1] = [f"- 1-minute load average read after each run: median {statistics.median(la):.1f}, "
                        f"max {max(la):.1f} on {f['nproc']} CPUs (the loads themselves keep up to ~100 "
                        "processes runnable; values far above the run's own level mean other work shared the "
                        "machine). Rounds vary: see the min–max column and the raw numbers; ratios from the "
                        "same round are steadier than absolute figures."]
        if c["mode"] != HELIOS_MODE or c["fallback_reason"]:
            L += [f"> {b('HeliosProxy ran in session mode, not transaction mode.')} "
                  f"Why: {c['fallback_reason']}. The comparison below is therefore HeliosProxy session pooling "
                  f"(max_pool_size {c['helios_pool']}, one server connection per client) against PgBouncer "
                  f"transaction pooling (pool {POOL}). Rerun `make bench` (HELIOS_MODE=transaction is the "
                  "default) once transaction pooling lands.", ""]
    else:
        L += [f"== bench results ({ROUNDS} rounds x {SECS} s, medians) ==",
              f"HeliosProxy mode: {c['mode']}" + (f"  (FALLBACK: {c['fallback_reason']})"
                                                   if c["fallback_reason"] else "")]
    if md:
        L += ["## Results", ""]
    for load in LOADS:
        st = {t: cell_stats(res, load.key, t) for t in targets}
        kind = next((s["tps_kind"] for s in st.values() if s and s["tps_kind"]), "")
        head = f"{load.title}: `{load.cmdline(SECS)}`" if md else f"\n{load.key}: {load.cmdline(SECS)}"
        L += [("### " if md else "") + head, ""] if md else [head]
        rows = []
        for t in targets:
            s = st[t]
            if not s:
                continue
            mark = " ‡" if s["bad"] else ""
            tps = fmt(s["tps"]) + mark
            if s["n_aborted"] == s["n"]:
                tps = "aborted ‡ (" + ", ".join(fmt(x) for x in s["tx_aborted"]) + " tx)"
            elif s["n_aborted"]:
                tps += f" ({s['n_aborted']} aborted run(s) left out)"
            spread = f"{fmt(s['tps_min'], 0)}–{fmt(s['tps_max'], 0)}" if s["tps_min"] is not None else "n/a"
            rows.append([label[t], tps, spread, fmt(s["lat"], 3), fmt(s["failed"]), fmt(s["aborted"]),
                         fmt(s["cpu"]) if t != "direct" else "–", fmt(s["hwm"]) if t != "direct" else "–",
                         fmt(s["conn"], 2)])
        L.append(table(["target", f"TPS ({kind})", "TPS min–max", "latency ms", "failed tx", "aborted clients",
                        "proxy CPU µs/tx", "peak RSS MiB", "conn. time ms"], rows, md))
        h, p, d = st.get("helios"), st.get("pgbouncer"), st.get("direct")
        rr = []
        if h and p:
            rr.append(["Helios / PgBouncer", ratio(h["tps"], p["tps"]), ratio(h["cpu"], p["cpu"]),
                       ratio(h["lat"], p["lat"])])
        if h and d:
            rr.append(["Helios / direct", ratio(h["tps"], d["tps"]), "–", ratio(h["lat"], d["lat"])])
        if rr:
            L += [""] if md else []
            L.append(table(["ratio", "TPS", "CPU/tx", "latency"], rr, md))
        notes = []
        for t in targets:
            s = st[t]
            if s and s["bad"]:
                errs = "; ".join(f"{m} (x{n})" for m, n in s["errors"].most_common(4)) or "non-zero exit"
                notes.append(f"‡ {label[t]}: {s['bad']} of {s['n']} runs not clean "
                             f"(failed tx {s['failed']}, aborted clients {s['aborted']}): {errs}")
        if notes:
            L += [""] if md else []
            L += [("- " if md else "  ") + n for n in notes]
        L += [""] if md else []
    # idle clients
    L += ["## Memory per idle client" if md else "\nidle clients:", ""] if md else ["\nidle clients:"]
    if md:
        L += [f"{IDLE_CLIENTS:,} authenticated (SCRAM) client connections opened by `bench/idle_clients.py`, "
              "each left idle after ReadyForQuery, against a freshly started proxy that has served one warm-up "
              "login and `SELECT 1`. Bytes per client = (VmRSS with the clients − VmRSS before) / clients "
              "logged in. Five of the idle connections then run `SELECT 1` to show they are usable.", ""]
    if not c["idle"]:
        L.append("not measured (BENCH_IDLE_CLIENTS=0 or no proxy target)")
    else:
        rows = []
        for t in targets:
            if t not in c["idle"]:
                continue
            i = c["idle"][t]
            if "skipped" in i:
                rows.append([label[t], "–", "–", "–", "–", "–", i["skipped"]])
                continue
            extra = []
            if i.get("errors"):
                extra.append("errors: " + "; ".join(f"{m} x{n}" for m, n in i["errors"].items()))
            if i.get("error"):
                extra.append(i["error"])
            if not i.get("alive_after", True):
                extra.append("proxy died")
            if i.get("probe_errors"):
                extra.append("probe errors: " + "; ".join(i["probe_errors"]))
            rows.append([label[t], f"{i.get('established', 0):,} / {i.get('requested', IDLE_CLIENTS):,}",
                         fmt(i.get("bytes_per_client")),
                         fmt(i.get("rss_baseline_kb")), fmt(i.get("rss_loaded_kb")),
                         fmt(i.get("login_secs"), 1), (i.get("probe_ok", "") + " " + " ".join(extra)).strip()])
        L.append(table(["proxy", "logged in", "bytes / idle client", "VmRSS before KiB", "VmRSS with clients KiB",
                        "login time s", "SELECT 1 probe / notes"], rows, md))
        hi, pi = c["idle"].get("helios", {}), c["idle"].get("pgbouncer", {})
        if hi.get("bytes_per_client") and pi.get("bytes_per_client"):
            L += ["", f"Helios / PgBouncer bytes per idle client: "
                      f"{ratio(hi['bytes_per_client'], pi['bytes_per_client'])}"]
    if not md:
        return "\n".join(L)
    # anomalies, logs
    cb = c.get("cache")
    if cb:
        L += ["", "## Result cache" if md else "\nresult cache:", ""]
        L += [f"One statement, {code(cb['sql'])}, run by pgbench ({cb['secs']} s, simple protocol) "
              "through a HeliosProxy with `[cache] enabled = true`: as a cache hit, as the same "
              "statement with `/* helios:cache=skip */` (relayed to the server), and directly. "
              "Latency is per transaction at the client, from pgbench's log (`-l`).", ""]
        rows = []
        for key, title in (("hit", "HeliosProxy, cache hit"), ("uncached", "HeliosProxy, cache=skip"),
                           ("direct", "direct PostgreSQL")):
            a, b8 = cb.get(key) or {}, cb.get(key + "_8") or {}
            rows.append([title, fmt(a.get("p50_us"), 0), fmt(a.get("p99_us"), 0), fmt(a.get("tps")),
                         fmt(b8.get("tps")), fmt(b8.get("cpu_us"))])
        L.append(table(["path", "p50 us (1 client)", "p99 us", "tps 1 client", "tps 8 clients",
                        "proxy CPU us/stmt (8 clients)"], rows, md))
        h, u = (cb.get("hit") or {}).get("p50_us"), (cb.get("uncached") or {}).get("p50_us")
        if h and u:
            d = (cb.get("direct") or {}).get("p50_us")
            L += ["", f"Hit p50 / uncached p50: {h / u:.2f}" + (f"; hit p50 / direct p50: {h / d:.2f}" if d else "")
                  + ". The target was a hit p50 <= 15 us at the client; a pgbench round trip over loopback "
                  "on this machine costs more than that by itself (see the direct row, which includes the "
                  "server's work), so the proxy's own cost per hit is the CPU column."]
    pl = c.get("plugin")
    if pl:
        L += ["", "## Plugins", ""]
        if pl.get("skipped"):
            L += [f"Not measured: {pl['skipped']}."]
        else:
            L += [f"One statement, {code(pl['sql'])}, run by pgbench ({pl['secs']} s, simple protocol, "
                  f"{pl['mode']} mode; {pl.get('runs', 1)} run(s) of each, in alternation, medians) "
                  "through a HeliosProxy without plugins and through one with the "
                  "`noop` plugin (plugins/noop.c: on_query_start and on_query_complete run for every "
                  "statement and return at once): the difference is the WASM host's cost per statement "
                  "([plugins.md](plugins.md)).", ""]
            rows = []
            for key, title in (("none", "no plugin"), ("noop", "noop plugin")):
                a, b8 = pl.get(key) or {}, pl.get(key + "_8") or {}
                rows.append([title, fmt(a.get("p50_us"), 0), fmt(a.get("p99_us"), 0), fmt(a.get("tps")),
                             fmt(b8.get("tps")), fmt(b8.get("cpu_us"))])
            L.append(table(["path", "p50 us (1 client)", "p99 us", "tps 1 client", "tps 8 clients",
                            "proxy CPU us/stmt (8 clients)"], rows, md))
            n, w = (pl.get("none_8") or {}).get("cpu_us"), (pl.get("noop_8") or {}).get("cpu_us")
            if n and w:
                L += ["", f"Proxy CPU per statement with the noop plugin minus without: {w - n:.2f} us."]
    sp = c.get("splice")
    if sp:
        L += ["", "## Kernel splice (session mode)", ""]
        L += splice_report(sp, md)
    L += ["", "## Anomalies and proxy log lines", ""]
    anomalies = []
    if c["fallback_reason"]:
        anomalies.append(f"HeliosProxy transaction mode: {c['fallback_reason']}")
    for name, px in (("HeliosProxy", c["helios"]), ("PgBouncer", c["pgb"])):
        if px:
            anomalies += [f"{name}: {e}" for e in px["events"]]
    bad = [r for r in res if not r["ok"]]
    for r in bad:
        errs = "; ".join(f"{m} (x{n})" for m, n in r["errors"].items()) or "no error text"
        anomalies.append(f"round {r['round']} {r['load']} via {label[r['target']]}: rc {r['rc']}, "
                         f"failed tx {r.get('failed')}, aborted clients {r['aborted_clients']}: {errs}")
    L += [f"- {a}" for a in anomalies] or ["- none: every pgbench run exited 0 without failed transactions."]
    for name, px in (("HeliosProxy", c["helios"]), ("PgBouncer", c["pgb"])):
        if not px:
            continue
        lines = px["log_lines"]
        L += ["", f"{name} log (`{px['log']}`), warning and error lines, "
                  "most frequent first (count, first occurrence):", ""]
        if lines:
            L += ["```"] + [f"{n:>6}  {l}" for n, l in lines] + ["```"]
        else:
            L.append("none.")
    # raw
    L += ["", "## Raw per-round numbers", ""]
    rows = []
    for r in sorted(res, key=lambda r: ([l.key for l in LOADS].index(r["load"]), targets.index(r["target"]),
                                        r["round"])):
        rows.append([r["load"], label[r["target"]], r["round"], fmt(r.get("tps")), fmt(r.get("lat"), 3),
                     fmt(r.get("tx")), fmt(r.get("failed")), r["aborted_clients"],
                     fmt(r.get("cpu_us_per_tx")) if r.get("cpu_ticks") is not None else "–",
                     fmt(r["hwm_kb"] / 1024) if r.get("hwm_kb") else "–", fmt(r.get("conn"), 2),
                     "timeout" if r["timed_out"] else r["rc"], fmt(r.get("loadavg"), 2)])
    L.append(table(["load", "target", "round", "TPS", "latency ms", "transactions", "failed", "aborted",
                    "CPU µs/tx", "peak RSS MiB", "conn. ms", "rc", "loadavg after"], rows, True))
    L += ["", "## Rerunning", "",
          "```sh", "make bench                                   # defaults, ~15 min",
          "BENCH_ROUNDS=1 BENCH_SECS=5 make bench       # quick look, ~3 min", "```", "",
          "| variable | default | meaning |", "|---|---|---|",
          "| `BENCH_ROUNDS` | 3 | rounds; each runs every load against every target |",
          "| `BENCH_SECS` | 15 | `pgbench -T` per run |",
          "| `HELIOS_MODE` | transaction | HeliosProxy pool mode; transaction falls back to session (said loudly) "
          "when the binary refuses it or still holds a server per client |",
          "| `HELIOS_BIN` | build/release/bin | folder with `heliosproxy` (make passes it) |",
          "| `HELIOS_WORKERS` | 2 | HeliosProxy `workers` |",
          "| `HELIOS_IO_BACKEND` | auto | HeliosProxy `io_backend` (auto, io_uring, epoll) |",
          "| `BENCH_POOL_SIZE` | 20 | server connections per pool for both proxies (HeliosProxy in session "
          "mode gets at least the largest client count) |",
          "| `BENCH_IDLE_CLIENTS` | 10000 | idle clients per proxy in the memory test; 0 skips it |",
          "| `BENCH_LOADS` | all | comma list of select-simple, select-prepared, tpcb, select-connect, "
          "select-latency |",
          "| `BENCH_TARGETS` | helios,pgbouncer,direct | comma list |",
          "| `BENCH_REPORT` | docs/benchmarks.md | where the report goes; `-` writes none |",
          "| `BENCH_NOTE` | (none) | a sentence for the report's setup list, e.g. how the binary was built |",
          "", "Per-run files (configs, proxy logs, `results.json`) are left in `run/bench/`; "
          "`/usr/bin/python3 bench/bench.py --render run/bench/results.json` rewrites this report from the "
          "saved figures of the last run without measuring again.", ""]
    return "\n".join(L)


def splice_report(sp, md):
    """Lines of the kernel splice section: medians per load and path, and the verdict."""
    if not sp.get("loaded"):
        return [f"Not measured: the splice program did not load ({sp.get('why', '?')})."]
    L = [f"pgbench, 8 session clients, {sp['secs']} s per run, {ROUNDS} runs per cell in alternation: "
         "HeliosProxy in session mode relaying in userspace, the same with "
         "`pool_mode.kernel_splice = true`, and PostgreSQL directly. Proxy CPU is the proxy process's "
         "utime+stime; system CPU is every CPU's busy time from /proc/stat (pgbench, PostgreSQL, the "
         "proxy and the kernel's softirq/kworker time) per transaction. Medians.", ""]
    rows, verdict = [], []
    for key, d in sp["loads"].items():
        m = {}
        for name, label in (("relay", "userspace relay"), ("splice", "kernel splice"), ("direct", "direct")):
            rs = d["runs"][name]
            m[name] = {f: med([r.get(f) for r in rs]) for f in ("tps", "proxy_cpu_us", "system_cpu_us")}
            bad = sum(1 for r in rs if r["rc"] or (r["failed"] or 0))
            rows.append([d["title"] if name == "relay" else "", label, fmt(m[name]["tps"]),
                         fmt(m[name]["proxy_cpu_us"]), fmt(m[name]["system_cpu_us"]), str(bad)])
        r_, s_ = m["relay"], m["splice"]
        verdict.append((key, ratio(s_["tps"], r_["tps"]), ratio(s_["system_cpu_us"], r_["system_cpu_us"]),
                        ratio(s_["proxy_cpu_us"], r_["proxy_cpu_us"])))
    L.append(table(["load", "path", "tps", "proxy CPU us/tx", "system CPU us/tx", "failed runs"], rows, md))
    L.append("")
    for key, tps, sysr, pxr in verdict:
        L.append(f"- {key}: splice / relay TPS {tps}, system CPU per tx {sysr}, proxy CPU per tx {pxr}")
    return L


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # runs the finally blocks that stop the proxies


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # redo the report from a saved run
        with open(sys.argv[2]) as fh:
            write_report(json.load(fh))
        sys.exit(0)
    sys.exit(main())
