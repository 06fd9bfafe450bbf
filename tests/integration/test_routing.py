"""Routing: hints, read/write split, replica lag, schema routes,
read-your-writes, the circuit breaker and failover, against a real primary
and streaming replica. Which node answered is read from inet_server_port()."""

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import ALICE, APPDB, ROOT, free_port, helios_bin, run, wait_for


def port_of(conn, sql="SELECT inet_server_port()", params=None, prepare=None):
    return conn.execute(sql, params, prepare=prepare).fetchone()[0]


def helioctl_json(p, *args):
    r = run([str(helios_bin() / "helioctl"), "-c", str(p.config_path), "--json", *args],
            check=False, timeout=30)
    assert r.returncode in (0, 4), r
    return json.loads(r.stdout)


def nodes(p):
    return {n["name"]: n for n in helioctl_json(p, "nodes")["nodes"]}


def metrics(p):
    port = int(p.defaults["admin_address"].rsplit(":", 1)[1])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def wait_replicated(pg, *tables):
    """Waits until alice can read the tables on the replica (created and
    granted on the primary)."""
    def visible():
        with psycopg.connect(pg.dsn(ALICE[0], ALICE[1], port=pg.replica_port),
                             autocommit=True) as a:
            return all(a.execute("SELECT to_regclass(%s) IS NOT NULL AND "
                                 "has_table_privilege(to_regclass(%s), 'select')", (t, t)
                                 ).fetchone()[0] for t in tables)
    assert wait_for(visible, timeout=15), f"{tables} not on the replica"


def routed(config, **routing):
    """Transaction pooling with the control plane checking as alice on appdb."""
    r = {"check_database": APPDB, "lag_check_interval_secs": 1, **routing}
    return config(mode="transaction", routing=r)


def wait_replica_usable(p):
    assert wait_for(lambda: nodes(p)["replica"]["healthy"] and
                    0 <= nodes(p)["replica"]["lag_ms"] < 1000, timeout=15), nodes(p)


# ---------------------------------------------------------------------------
# hints

def test_hints_route_to_the_named_node(pg, proxy, config):
    p = proxy(routed(config))
    wait_replica_usable(p)
    with p.connect() as c:
        assert port_of(c) == pg.port  # no hint, no split: the primary
        assert port_of(c, "/* helios:route=replica */ SELECT inet_server_port()") == pg.replica_port
        assert port_of(c, "SELECT inet_server_port() /*helios: route = standby */") == pg.replica_port
        assert port_of(c, "SELECT /* helios:route=primary */ inet_server_port()") == pg.port
        assert port_of(c, "/* helios:route=replica,cache=skip */ SELECT inet_server_port()") \
            == pg.replica_port
        assert port_of(c, "/* helios:route=replica */ SELECT pg_is_in_recovery()") is True
        # a hint inside a string literal is text, not a hint
        assert c.execute("SELECT '/* helios:route=replica */', inet_server_port()").fetchone()[1] \
            == pg.port
        # malformed or unknown targets are ignored, never an error
        assert port_of(c, "/* helios:route= */ SELECT inet_server_port()") == pg.port
        assert port_of(c, "/* helios:route=nosuchnode */ SELECT inet_server_port()") == pg.port
    # extended protocol, unnamed and named prepared statements
    with p.connect() as c:
        q = "/* helios:route=replica */ SELECT inet_server_port() + %s"
        assert port_of(c, q, (0,)) == pg.replica_port
        for _ in range(3):
            assert port_of(c, q, (0,), prepare=True) == pg.replica_port
        assert port_of(c, "/* helios:route=primary */ SELECT inet_server_port() + %s", (0,),
                       prepare=True) == pg.port


# ---------------------------------------------------------------------------
# read/write split

def test_read_write_split_sends_reads_to_the_replica(pg, proxy, config):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS rw_split")
        su.execute("CREATE TABLE rw_split (id int, port int)")
        su.execute("GRANT ALL ON rw_split TO alice")
    wait_replicated(pg, "rw_split")
    p = proxy(routed(config, read_write_split=True))
    wait_replica_usable(p)
    with p.connect() as c:
        assert port_of(c) == pg.replica_port
        assert port_of(c, "SELECT count(*) * 0 + inet_server_port() FROM rw_split") == pg.replica_port
        assert c.execute("INSERT INTO rw_split VALUES (1, inet_server_port()) RETURNING port"
                         ).fetchone()[0] == pg.port
        assert port_of(c, "SELECT inet_server_port() FROM rw_split FOR UPDATE") == pg.port
        with c.transaction():  # BEGIN: read-write by default, so the primary
            assert port_of(c) == pg.port
        c.execute("BEGIN READ ONLY")
        assert port_of(c) == pg.replica_port
        c.execute("COMMIT")
        # extended protocol reads too
        assert port_of(c, "SELECT inet_server_port() + %s", (0,)) == pg.replica_port
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE rw_split")


def test_read_your_writes_keeps_reads_of_written_tables_on_the_primary(pg, proxy, config):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS ryw_a, ryw_b")
        su.execute("CREATE TABLE ryw_a (x int); CREATE TABLE ryw_b (x int)")
        su.execute("GRANT ALL ON ryw_a, ryw_b TO alice")
    wait_replicated(pg, "ryw_a", "ryw_b")
    p = proxy(routed(config, read_write_split=True, read_your_writes_ms=1500))
    wait_replica_usable(p)
    with p.connect() as c:
        assert port_of(c, "SELECT inet_server_port() + count(*) * 0 FROM ryw_a") == pg.replica_port
        c.execute("INSERT INTO ryw_a VALUES (1)")
        assert port_of(c, "SELECT inet_server_port() FROM ryw_a") == pg.port
        assert port_of(c, "SELECT inet_server_port() + count(*) * 0 FROM ryw_b") == pg.replica_port
        time.sleep(1.7)
        assert port_of(c, "SELECT inet_server_port() FROM ryw_a LIMIT 1") == pg.replica_port
    # another client's reads are not held back
    with p.connect() as c2:
        assert port_of(c2, "SELECT inet_server_port() + count(*) * 0 FROM ryw_a") == pg.replica_port
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE ryw_a, ryw_b")


# ---------------------------------------------------------------------------
# replica lag

def test_lagging_replica_loses_reads_until_it_catches_up(pg, proxy, config):
    p = proxy(routed(config, read_write_split=True, max_replica_lag_ms=800))
    wait_replica_usable(p)
    replica = pg.superuser(port=pg.replica_port)
    try:
        with p.connect() as c:
            assert port_of(c) == pg.replica_port
            replica.execute("SELECT pg_wal_replay_pause()")
            # the control plane's own heartbeat writes make the lag grow
            t0 = time.monotonic()
            moved = wait_for(lambda: port_of(c) == pg.port, timeout=8)
            assert moved, f"reads stayed on the replica: {nodes(p)}"
            assert time.monotonic() - t0 < 0.8 + 2 * 1 + 2.0  # limit + two probe intervals (+ slack)
            n = nodes(p)["replica"]
            assert n["lag_ms"] > 800, n
            assert "helios_node_replication_lag_seconds{node=\"replica\"}" in metrics(p)
            replica.execute("SELECT pg_wal_replay_resume()")
            assert wait_for(lambda: port_of(c) == pg.replica_port, timeout=8), nodes(p)
    finally:
        replica.execute("SELECT pg_wal_replay_resume()")
        replica.close()


def test_nodes_report_roles_and_lag(pg, proxy, config):
    p = proxy(routed(config))
    wait_replica_usable(p)
    n = nodes(p)
    assert n["primary"]["role"] == "primary" and n["primary"]["lag_ms"] == 0
    assert n["replica"]["role"] == "replica" and n["replica"]["healthy"]
    text = metrics(p)
    assert 'helios_node_up{node="replica",role="replica"} 1' in text
    assert 'helios_node_breaker_state{node="replica",state="closed"} 1' in text


# ---------------------------------------------------------------------------
# schema routes

def test_schema_routes_send_listed_tables_to_their_target(pg, proxy, config):
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE IF EXISTS sr_reports, sr_orders")
        su.execute("CREATE TABLE sr_reports (x int); CREATE TABLE sr_orders (x int)")
        su.execute("GRANT ALL ON sr_reports, sr_orders TO alice")
    wait_replicated(pg, "sr_reports", "sr_orders")
    cfg = routed(config)
    cfg["schema_routes"] = [
        {"tables": ["sr_reports"], "target": "replica"},
        {"tables": ["public.sr_orders"], "target": "primary"},
    ]
    p = proxy(cfg)
    wait_replica_usable(p)
    with p.connect() as c:
        assert port_of(c, "SELECT inet_server_port() + count(*) * 0 FROM sr_reports") == pg.replica_port
        assert port_of(c, "SELECT inet_server_port() + count(*) * 0 FROM public.sr_orders") == pg.port
        assert port_of(c) == pg.port  # no listed table: the usual rules
        # both routes: the first in file order
        assert port_of(c, "SELECT inet_server_port() + count(*) * 0 FROM sr_orders, sr_reports") \
            == pg.replica_port
        # a write routed to a replica goes to the primary
        assert c.execute("INSERT INTO sr_reports VALUES (1) RETURNING inet_server_port()"
                         ).fetchone()[0] == pg.port
    with pg.superuser(dbname=APPDB) as su:
        su.execute("DROP TABLE sr_reports, sr_orders")


# ---------------------------------------------------------------------------
# own clusters for the tests that stop and promote servers

class OwnCluster:
    def __init__(self, tmp_path):
        self.dir = Path(f"/tmp/helios-own-{os.getpid()}-{free_port()}")
        self.port, self.replica_port = free_port(), free_port()
        run(["bash", str(ROOT / "scripts" / "pgcluster.sh"), "start", str(self.dir),
             str(self.port), str(self.replica_port)], timeout=180)
        env = dict(line.split("=", 1) for line in
                   (self.dir / "pgcluster.env").read_text().split() if "=" in line)
        self.sock = env["PG_SOCKET_DIR"]
        self.base = Path(self.sock).parent
        with self.su() as su:
            su.execute("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
            su.execute("CREATE DATABASE appdb OWNER alice")
        wait_for(lambda: self.su(self.replica_port).execute(
            "SELECT 1 FROM pg_database WHERE datname = 'appdb'").fetchone(), timeout=20)

    def su(self, port=None):
        return psycopg.connect(host=self.sock, port=port or self.port, user="postgres",
                               dbname="postgres", autocommit=True, connect_timeout=10)

    def pg_ctl(self, node, *args):
        cmd = ["runuser", "-u", "heliospg", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D",
               str(self.base / node), *args]
        if os.geteuid() != 0:
            cmd = cmd[4:]
        return run(cmd, timeout=120)

    def destroy(self):
        run(["bash", str(ROOT / "scripts" / "pgcluster.sh"), "stop", str(self.dir),
             str(self.port), str(self.replica_port)], timeout=120, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own(tmp_path):
    c = OwnCluster(tmp_path)
    yield c
    c.destroy()


def own_config(own, health_secs=1, **routing):
    return {
        "health_check_interval_secs": health_secs,
        "pool_mode": {"mode": "transaction", "max_pool_size": 5},
        "routing": {"check_database": "appdb", "lag_check_interval_secs": health_secs, **routing},
        "circuit_breaker": {"failure_threshold": 2, "recovery_timeout_secs": 2},
        "nodes": [
            {"name": "pg1", "host": "127.0.0.1", "port": own.port, "role": "primary"},
            {"name": "pg2", "host": "127.0.0.1", "port": own.replica_port, "role": "replica"},
        ],
        "auth": {"method": "scram-sha-256", "users": [{"name": "alice", "password": "alice-pw"}]},
    }


def test_circuit_breaker_opens_rejects_fast_and_closes(own, proxy):
    # the control plane checks only at start here: the data plane itself
    # meets the stopped node, which is what the breaker counts
    p = proxy(own_config(own, health_secs=600))
    hinted = "/* helios:route=pg2 */ SELECT inet_server_port()"
    with p.connect() as c:
        assert port_of(c, hinted) == own.replica_port
    own.pg_ctl("replica", "-m", "immediate", "stop")
    errors = []
    for _ in range(4):  # connection failures count; at 2 the breaker opens
        with p.connect() as c:
            errors.append(_try_port(c, hinted))
            # the failed request does not cost the connection
            assert port_of(c) == own.port
    assert errors.count(None) == 4, errors
    with p.connect() as c:
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as e:
            port_of(c, hinted)
        assert time.monotonic() - t0 < 0.05, "an open breaker must refuse at once"
        assert "circuit breaker" in str(e.value), e.value
        assert e.value.sqlstate == "08006"
        assert port_of(c) == own.port  # the connection stays usable, the primary works
        assert 'helios_node_breaker_state{node="pg2",state="open"} 1' in metrics(p)
        # helioctl shows what the data planes last reported (one heartbeat)
        assert wait_for(lambda: nodes(p)["pg2"]["breaker"] in ("open", "half-open"), timeout=5)
        own.pg_ctl("replica", "-w", "-l", str(own.base / "replica.log"), "start")
        # after recovery_timeout_secs one probe goes through and closes it
        assert wait_for(lambda: _try_port(c, hinted) == own.replica_port, timeout=20)
        assert 'helios_node_breaker_state{node="pg2",state="closed"} 1' in metrics(p)
    log = p.log()
    assert "circuit breaker for node pg2: open" in log
    assert "circuit breaker for node pg2: half-open" in log
    assert "circuit breaker for node pg2: closed" in log


def _try_port(c, sql):
    try:
        return port_of(c, sql)
    except psycopg.OperationalError:
        return None


def test_failover_to_a_promoted_replica_without_reconnecting(own, proxy):
    p = proxy(own_config(own, failover_timeout_secs=3))
    with p.connect() as c:
        c.execute("CREATE TABLE fo (x int)")
        assert c.execute("INSERT INTO fo VALUES (1) RETURNING inet_server_port()"
                         ).fetchone()[0] == own.port
        assert wait_for(lambda: nodes(p)["pg2"]["healthy"], timeout=10)
        own.pg_ctl("primary", "-m", "fast", "stop")
        assert wait_for(lambda: not nodes(p)["pg1"]["healthy"], timeout=10), nodes(p)
        own.pg_ctl("replica", "promote", "-w")
        t0 = time.monotonic()
        # arrives during the switch: waits instead of failing
        port = c.execute("INSERT INTO fo VALUES (2) RETURNING inet_server_port()").fetchone()[0]
        assert port == own.replica_port
        assert time.monotonic() - t0 < 3 + 2  # failover_timeout_secs + 2 s
        assert c.execute("SELECT count(*) FROM fo").fetchone()[0] == 2
    n = nodes(p)
    assert n["pg2"]["role"] == "primary" and n["pg2"]["healthy"], n
    assert "failover: node pg2 is the primary now" in p.log()
